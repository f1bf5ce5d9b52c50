//! What a `imagetools inspect --format TEMPLATE` reads: buildx's fields, named as
//! buildx's Go types name them (`.Manifest.Manifests`, `.Platform.Architecture`),
//! over the JSON of the manifest or index and the image configs.

use anyhow::Context;
use oci::Descriptor;
use registry::Fetched;
use serde_json::{Map, Value};

use crate::template::{Data, Field, Shape, Template, TemplateError};

static PLAIN: Shape = Shape::Plain;
static STRINGS: Shape = Shape::List(&PLAIN);
static STRING_MAP: Shape = Shape::Map(&PLAIN);

static PLATFORM: Shape = Shape::Struct(&[
    Field::new("Architecture", "architecture", &PLAIN),
    Field::new("OS", "os", &PLAIN),
    Field::new("OSVersion", "os.version", &PLAIN),
    Field::new("OSFeatures", "os.features", &STRINGS),
    Field::new("Variant", "variant", &PLAIN),
]);

static DESCRIPTOR: Shape = Shape::Struct(&[
    Field::new("MediaType", "mediaType", &PLAIN),
    Field::new("Digest", "digest", &PLAIN),
    Field::new("Size", "size", &PLAIN),
    Field::new("URLs", "urls", &STRINGS),
    Field::new("Annotations", "annotations", &STRING_MAP),
    Field::new("Data", "data", &PLAIN),
    Field::new("Platform", "platform", &PLATFORM),
    Field::new("ArtifactType", "artifactType", &PLAIN),
]);
static DESCRIPTORS: Shape = Shape::List(&DESCRIPTOR);

/// buildx's `.Manifest`: the manifest or index with its own digest and size.
static MANIFEST: Shape = Shape::Struct(&[
    Field::new("SchemaVersion", "schemaVersion", &PLAIN),
    Field::new("MediaType", "mediaType", &PLAIN),
    Field::new("ArtifactType", "artifactType", &PLAIN),
    Field::new("Digest", "digest", &PLAIN),
    Field::new("Size", "size", &PLAIN),
    Field::new("Manifests", "manifests", &DESCRIPTORS),
    Field::new("Config", "config", &DESCRIPTOR),
    Field::new("Layers", "layers", &DESCRIPTORS),
    Field::new("Subject", "subject", &DESCRIPTOR),
    Field::new("Annotations", "annotations", &STRING_MAP),
]);

/// The image config's `config`: Go's field names are its JSON keys.
static IMAGE_CONFIG: Shape = Shape::Struct(&[
    Field::new("User", "User", &PLAIN),
    Field::new("ExposedPorts", "ExposedPorts", &STRING_MAP),
    Field::new("Env", "Env", &STRINGS),
    Field::new("Entrypoint", "Entrypoint", &STRINGS),
    Field::new("Cmd", "Cmd", &STRINGS),
    Field::new("Volumes", "Volumes", &STRING_MAP),
    Field::new("WorkingDir", "WorkingDir", &PLAIN),
    Field::new("Labels", "Labels", &STRING_MAP),
    Field::new("StopSignal", "StopSignal", &PLAIN),
    Field::new("ArgsEscaped", "ArgsEscaped", &PLAIN),
    Field::new("Healthcheck", "Healthcheck", &PLAIN),
    Field::new("OnBuild", "OnBuild", &STRINGS),
    Field::new("Shell", "Shell", &STRINGS),
]);

static ROOTFS: Shape = Shape::Struct(&[
    Field::new("Type", "type", &PLAIN),
    Field::new("DiffIDs", "diff_ids", &STRINGS),
]);

static HISTORY: Shape = Shape::List(&Shape::Struct(&[
    Field::new("Created", "created", &PLAIN),
    Field::new("CreatedBy", "created_by", &PLAIN),
    Field::new("Author", "author", &PLAIN),
    Field::new("Comment", "comment", &PLAIN),
    Field::new("EmptyLayer", "empty_layer", &PLAIN),
]));

static IMAGE: Shape = Shape::Struct(&[
    Field::new("Created", "created", &PLAIN),
    Field::new("Author", "author", &PLAIN),
    Field::new("Architecture", "architecture", &PLAIN),
    Field::new("OS", "os", &PLAIN),
    Field::new("OSVersion", "os.version", &PLAIN),
    Field::new("OSFeatures", "os.features", &STRINGS),
    Field::new("Variant", "variant", &PLAIN),
    Field::new("Config", "config", &IMAGE_CONFIG),
    Field::new("RootFS", "rootfs", &ROOTFS),
    Field::new("History", "history", &HISTORY),
]);
static IMAGES: Shape = Shape::Map(&IMAGE);

/// buildx's `.Provenance` of one image: its SLSA predicate.
static PROVENANCE: Shape = Shape::Struct(&[Field::new("SLSA", "SLSA", &PLAIN)]);
static PROVENANCES: Shape = Shape::Map(&PROVENANCE);
/// buildx's `.SBOM` of one image: its SPDX document.
static SBOM: Shape = Shape::Struct(&[Field::new("SPDX", "SPDX", &PLAIN)]);
static SBOMS: Shape = Shape::Map(&SBOM);

/// Render `template` for the image `name` (`fetched`, whose image manifests have
/// `configs`). The outer error is ours; the inner one the template's.
pub fn render(
    template: &Template,
    name: &str,
    fetched: &Fetched,
    configs: Vec<(Descriptor, Value)>,
    statements: &[(oci::Digest, String, Value)],
) -> anyhow::Result<Result<String, TemplateError>> {
    let images: Vec<Descriptor> = configs
        .iter()
        .map(|(d, _)| d.clone())
        .filter(|d| !is_attestation(d))
        .collect();
    let (image, image_shape) = per_platform(configs);
    let (provenance, provenance_shape) = predicates(
        &images,
        statements,
        "https://slsa.dev/provenance/",
        "SLSA",
        (&PROVENANCE, &PROVENANCES),
    );
    let (sbom, sbom_shape) = predicates(
        &images,
        statements,
        "https://spdx.dev/Document",
        "SPDX",
        (&SBOM, &SBOMS),
    );
    // The top-level fields, in `{{json .}}` order.
    let top: [(&str, &str, &Shape, Value); 5] = [
        ("Name", "name", &PLAIN, Value::from(name)),
        ("Manifest", "manifest", &MANIFEST, manifest(fetched)?),
        ("Image", "image", image_shape, image),
        ("Provenance", "Provenance", provenance_shape, provenance),
        ("SBOM", "SBOM", sbom_shape, sbom),
    ];
    let fields: Vec<Field<'_>> = top.iter().map(|(g, j, s, _)| Field::new(g, j, s)).collect();
    let shape = Shape::Struct(&fields);
    // As buildx's `omitempty`: `{{json .}}` leaves out what an image does not have.
    let value = Value::Object(
        top.into_iter()
            .filter(|(_, _, _, v)| !v.is_null())
            .map(|(_, json, _, v)| (json.to_owned(), v))
            .collect(),
    );
    Ok(template.render(&Data::new(value, &shape)))
}

/// The document's JSON with the digest and size of its bytes.
fn manifest(fetched: &Fetched) -> anyhow::Result<Value> {
    let mut doc: Map<String, Value> = serde_json::from_slice(fetched.document.bytes())
        .context("the manifest is not a JSON object")?;
    let d = &fetched.descriptor;
    doc.entry("mediaType")
        .or_insert_with(|| Value::from(d.media_type.as_str()));
    doc.insert("digest".to_owned(), Value::from(d.digest.to_string()));
    doc.insert("size".to_owned(), Value::from(d.size));
    Ok(doc.into())
}

/// As buildx documents `.Image`: the config when there is one image (attestation
/// manifests aside), else a map of configs by `os/arch[/variant]`.
fn per_platform(configs: Vec<(Descriptor, Value)>) -> (Value, &'static Shape<'static>) {
    let mut images: Vec<(Descriptor, Value)> = configs
        .into_iter()
        .filter(|(d, _)| !is_attestation(d))
        .collect();
    if images.len() == 1 {
        return (images.remove(0).1, &IMAGE);
    }
    let map = images
        .into_iter()
        .map(|(d, config)| {
            let key = d
                .platform
                .map_or_else(|| "unknown".to_owned(), |p| p.to_string());
            (key, config)
        })
        .collect();
    (Value::Object(map), &IMAGES)
}

/// As buildx documents `.Provenance` and `.SBOM`: `{KEY: predicate}` of the one
/// image's statement whose predicate type starts with `prefix`, else a map of those
/// by `os/arch[/variant]`; null when no image has one.
fn predicates(
    images: &[Descriptor],
    statements: &[(oci::Digest, String, Value)],
    prefix: &str,
    key: &str,
    (one, many): (&'static Shape<'static>, &'static Shape<'static>),
) -> (Value, &'static Shape<'static>) {
    let of = |d: &Descriptor| {
        statements
            .iter()
            .find(|(about, t, _)| *about == d.digest && t.starts_with(prefix))
            .map(|(_, _, s)| {
                let mut m = Map::new();
                m.insert(key.to_owned(), s["predicate"].clone());
                Value::Object(m)
            })
    };
    if let [image] = images {
        return (of(image).unwrap_or(Value::Null), one);
    }
    let map: Map<String, Value> = images
        .iter()
        .filter_map(|d| {
            let p = d.platform.as_ref()?.to_string();
            Some((p, of(d)?))
        })
        .collect();
    match map.is_empty() {
        true => (Value::Null, many),
        false => (Value::Object(map), many),
    }
}

fn is_attestation(d: &Descriptor) -> bool {
    d.platform.as_ref().is_some_and(|p| p.os == "unknown")
        || d.annotations
            .get("vnd.docker.reference.type")
            .map(String::as_str)
            == Some("attestation-manifest")
}

#[cfg(test)]
mod tests {
    use oci::ManifestOrIndex;
    use serde_json::json;

    use super::*;

    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

    fn descriptor(digest: char, platform: Value) -> Value {
        json!({"mediaType": MANIFEST_TYPE, "digest": format!("sha256:{}", digest.to_string().repeat(64)),
               "size": 500, "platform": platform})
    }

    fn config(os: &str, arch: &str) -> Value {
        json!({"os": os, "architecture": arch, "config": {"Env": ["PATH=/bin"]},
               "rootfs": {"type": "layers", "diff_ids": []}})
    }

    /// An index of `platforms` (`unknown` is an attestation manifest) and its configs.
    fn index(platforms: &[(&str, &str, Option<&str>)]) -> (Fetched, Vec<(Descriptor, Value)>) {
        let manifests: Vec<Value> = platforms
            .iter()
            .zip('a'..)
            .map(|((os, arch, variant), d)| {
                let mut p = json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    p["variant"] = json!(v);
                }
                descriptor(d, p)
            })
            .collect();
        let doc = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
        let configs = manifests
            .iter()
            .map(|m| {
                let p = &m["platform"];
                let d = serde_json::from_value(m.clone()).unwrap();
                (
                    d,
                    config(
                        p["os"].as_str().unwrap(),
                        p["architecture"].as_str().unwrap(),
                    ),
                )
            })
            .collect();
        (fetched(INDEX, &doc), configs)
    }

    fn fetched(media_type: &str, doc: &Value) -> Fetched {
        let bytes = serde_json::to_vec(doc).unwrap();
        Fetched {
            descriptor: Descriptor::for_bytes(media_type, &bytes),
            document: ManifestOrIndex::parse(media_type, bytes).unwrap(),
        }
    }

    /// Render `template` for `r.example/app:1`; `$DIGEST` and `$SIZE` in `want` stand
    /// for the document's.
    fn check(image: &(Fetched, Vec<(Descriptor, Value)>), template: &str, want: &str) {
        let (fetched, configs) = image;
        let t = Template::parse(template).unwrap();
        let got = render(&t, "r.example/app:1", fetched, configs.clone(), &[])
            .unwrap()
            .unwrap_or_else(|e| format!("error: {e}"));
        let want = want
            .replace("$DIGEST", &fetched.descriptor.digest.to_string())
            .replace("$SIZE", &fetched.descriptor.size.to_string());
        assert_eq!(got, want, "template {template:?}");
    }

    #[test]
    fn buildx_fields_over_an_index() {
        let two = index(&[
            ("linux", "amd64", None),
            ("linux", "arm", Some("v7")),
            ("unknown", "unknown", None),
        ]);
        let cases = [
            ("{{.Name}}", "r.example/app:1"),
            (
                "{{.Manifest.MediaType}} {{.Manifest.Size}}",
                "application/vnd.oci.image.index.v1+json $SIZE",
            ),
            ("{{.Manifest.Digest}}", "$DIGEST"),
            (
                "{{range .Manifest.Manifests}}{{.Platform.OS}}/{{.Platform.Architecture}}\
                 {{with .Platform.Variant}}/{{.}}{{end}} {{end}}",
                "linux/amd64 linux/arm/v7 unknown/unknown ",
            ),
            (
                "{{range $p, $img := .Image}}{{$p}}={{$img.Architecture}} {{end}}",
                "linux/amd64=amd64 linux/arm/v7=arm ",
            ),
            (
                r#"{{(index .Image "linux/arm/v7").Config.Env}}"#,
                "[PATH=/bin]",
            ),
            (r#"{{(index .Image "linux/amd64").RootFS.Type}}"#, "layers"),
            (
                "{{json (index .Manifest.Manifests 1).Platform}}",
                "{\n  \"architecture\": \"arm\",\n  \"os\": \"linux\",\n  \"variant\": \"v7\"\n}",
            ),
            // A map's key, as in Go: absent, it prints nothing.
            ("{{.Image.Nope}}", ""),
            (
                "{{.Image.Nope.Nope}}",
                "error: unknown field .Nope at line 1, column 3",
            ),
        ];
        for (template, want) in cases {
            check(&two, template, want);
        }
        // One platform and its attestation: `.Image` is the config, as buildx shows.
        let one = index(&[("linux", "amd64", None), ("unknown", "unknown", None)]);
        check(&one, "{{.Image.OS}}/{{.Image.Architecture}}", "linux/amd64");
    }

    #[test]
    fn buildx_fields_over_a_manifest() {
        let layer = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": format!("sha256:{}", "c".repeat(64)), "size": 42});
        let doc =
            json!({"schemaVersion": 2, "config": descriptor('b', Value::Null), "layers": [layer]});
        let image = (
            fetched(MANIFEST_TYPE, &doc),
            vec![(
                Descriptor::for_bytes(MANIFEST_TYPE, b"m"),
                config("linux", "arm64"),
            )],
        );
        let cases = [
            ("{{.Manifest.MediaType}}", MANIFEST_TYPE),
            ("{{range .Manifest.Layers}}{{.Size}}{{end}}", "42"),
            ("{{.Image.Architecture}}", "arm64"),
            (
                "{{.Manifest.Nope}}",
                "error: unknown field .Nope at line 1, column 3",
            ),
        ];
        for (template, want) in cases {
            check(&image, template, want);
        }
    }

    /// `{{json .}}` lists buildx's fields in its order, and each document in its Go
    /// struct's order, whatever the order of the registry's bytes.
    #[test]
    fn json_keeps_buildx_order() {
        let image = index(&[("linux", "amd64", None), ("linux", "arm64", None)]);
        let t = Template::parse("{{json .}}").unwrap();
        let text = render(&t, "r.example/app:1", &image.0, image.1, &[])
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&v), ["name", "manifest", "image"]);
        assert_eq!(
            keys(&v["manifest"]),
            ["schemaVersion", "mediaType", "digest", "size", "manifests"]
        );
        assert_eq!(
            keys(&v["image"]["linux/arm64"]),
            ["architecture", "os", "config", "rootfs"]
        );
    }
}
