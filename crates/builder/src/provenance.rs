//! SLSA provenance of one platform's image, as BuildKit writes it (an in-toto
//! Statement v0.1 with an SLSA v0.2 predicate, or with `version=v1` a Statement v1
//! with an SLSA v1 predicate), so the readers of buildx's provenance read manifold's.
//!
//! **Deterministic, unlike BuildKit's**: the invocation id is derived from the
//! request and the result, nothing names the host, a path or a user, and the build
//! times are `SOURCE_DATE_EPOCH` when set, else those of the build that first
//! produced this image ([`Times`]), so a no-op rebuild writes the same statement.

use std::collections::BTreeMap;

use base64::Engine;
use graph::Graph;
use graph::op::{Op, Source};
use oci::{Descriptor, Digest, Platform, Reference};
use serde_json::{Value, json};

use crate::request::{Attestation, AttestationKind, BuildRequest};
use export::output::SpecError;

/// BuildKit's build type for v0.2 predicates: the parameters follow its definitions.
pub const BUILD_TYPE_V02: &str = "https://mobyproject.org/buildkit@v1";
/// BuildKit's build type for v1 predicates.
pub const BUILD_TYPE_V1: &str =
    "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md";
pub const PREDICATE_V02: &str = "https://slsa.dev/provenance/v0.2";
pub const PREDICATE_V1: &str = "https://slsa.dev/provenance/v1";
const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The key of BuildKit's own metadata in a v0.2 predicate.
const BUILDKIT_METADATA: &str = "https://mobyproject.org/buildkit@v1#metadata";

/// How much the provenance says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No build arguments or labels, no build definition.
    Min,
    /// Also build arguments and labels, the build definition and the Dockerfile.
    Max,
}

/// Which SLSA predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V02,
    V1,
}

/// What `--provenance` / `--attest type=provenance` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenanceOptions {
    pub mode: Mode,
    pub version: Version,
    /// `builder-id=`: the predicate's builder id (empty, as BuildKit's, when unset).
    pub builder_id: String,
}

impl ProvenanceOptions {
    /// The options of a provenance attestation's keys; an unknown key or value is
    /// an error naming it and the known ones.
    pub fn from_attestation(a: &Attestation) -> Result<ProvenanceOptions, SpecError> {
        let mut o = ProvenanceOptions {
            mode: Mode::Min,
            version: Version::V02,
            builder_id: String::new(),
        };
        for (k, v) in &a.attrs {
            let bad = |known: &str| {
                SpecError::new(
                    format!("invalid provenance option {k}={v:?}"),
                    format!("write {known}"),
                )
            };
            match k.as_str() {
                "mode" => {
                    o.mode = match v.as_str() {
                        "min" => Mode::Min,
                        "max" => Mode::Max,
                        _ => return Err(bad("mode=min or mode=max")),
                    }
                }
                "version" => {
                    o.version = match v.as_str() {
                        "v0.2" => Version::V02,
                        "v1" => Version::V1,
                        _ => return Err(bad("version=v0.2 or version=v1")),
                    }
                }
                "builder-id" => o.builder_id = v.clone(),
                // The build's, read by `requested`.
                "referrers" => {}
                _ => {
                    return Err(SpecError::new(
                        format!("unknown provenance option {k:?}"),
                        "the provenance options are mode=min|max, version=v0.2|v1, builder-id=URI, referrers=true|false and disabled=true|false",
                    ));
                }
            }
        }
        Ok(o)
    }
}

/// The attestations a request asks for, in effect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    pub provenance: Option<ProvenanceOptions>,
    /// An SPDX SBOM of each image, made by manifold itself.
    pub sbom: bool,
    /// `referrers=true` (on any of them): the attestations are OCI 1.1 referrers of
    /// their images instead of entries of the index.
    pub referrers: bool,
}

impl Requested {
    pub fn any(&self) -> bool {
        self.provenance.is_some() || self.sbom
    }
}

/// The attestations a request asks for, in effect: the last of each kind wins, and
/// a disabled one asks for none. An SBOM generator other than the built-in one is
/// refused (generator images are not run).
pub fn requested(req: &BuildRequest) -> Result<Requested, SpecError> {
    let mut out = Requested::default();
    for a in &req.attestations {
        if let Some(v) = a.attrs.get("referrers") {
            out.referrers |= export::output::parse_bool("referrers", v)?;
        }
        match a.kind {
            AttestationKind::Provenance => {
                out.provenance = (!a.disabled)
                    .then(|| ProvenanceOptions::from_attestation(a))
                    .transpose()?;
            }
            AttestationKind::Sbom => {
                for (k, v) in &a.attrs {
                    match (k.as_str(), v.as_str()) {
                        ("generator", "builtin") | ("referrers", _) => {}
                        ("generator", other) => {
                            return Err(SpecError::new(
                                format!("SBOM generator {other:?}: generator images are not run"),
                                "drop generator= (or write generator=builtin): manifold makes SBOMs itself",
                            ));
                        }
                        _ => {
                            return Err(SpecError::new(
                                format!("unknown SBOM option {k:?}"),
                                "the SBOM options are generator=builtin, referrers=true|false and disabled=true|false",
                            ));
                        }
                    }
                }
                out.sbom = !a.disabled;
            }
        }
    }
    Ok(out)
}

/// `attestations` with buildx's default added: a `mode=min` provenance for a build
/// that pushes (`pushes`) when no provenance was asked for or refused, unless
/// `BUILDX_NO_DEFAULT_ATTESTATIONS` is true (`no_default`, its value) or the
/// images use Docker media types (which cannot carry one).
pub fn with_default(
    mut attestations: Vec<Attestation>,
    pushes: bool,
    oci_mediatypes: bool,
    no_default: Option<&str>,
) -> Vec<Attestation> {
    let off =
        no_default.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "t" | "true"));
    let given = attestations
        .iter()
        .any(|a| a.kind == AttestationKind::Provenance);
    if pushes && oci_mediatypes && !off && !given {
        attestations.push(Attestation {
            kind: AttestationKind::Provenance,
            disabled: false,
            attrs: BTreeMap::from([("mode".to_owned(), "min".to_owned())]),
        });
    }
    attestations
}

/// When the build that produced an image ran, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Times {
    pub started: i64,
    pub finished: i64,
}

/// What the provenance of one platform's image is made from.
#[derive(Debug)]
pub struct Input<'a> {
    pub request: &'a BuildRequest,
    pub graph: &'a Graph,
    pub output: &'a graph::Output,
    /// The image manifest the statement is about.
    pub manifest: &'a Descriptor,
    /// The platform the build ran on.
    pub builder_platform: &'a Platform,
    /// The content digest of each local context the build read, by name.
    pub contexts: &'a BTreeMap<String, Digest>,
    pub times: Times,
}

/// The statement, serialised, and its predicate type.
pub fn statement(opts: &ProvenanceOptions, input: &Input<'_>) -> (String, Vec<u8>) {
    let req = input.request;
    let platform = input.output.platform.clone();
    let subject = subjects(&req.tags, &platform, &input.manifest.digest);
    let materials = materials(input.graph, &input.output.root, input.contexts);
    let (args, complete_params) = args(req, opts.mode);
    let locals = locals(input.graph, &input.output.root);
    let entry_point = req.dockerfile_file_name();
    let id = invocation_id(opts, input, &args);
    let started = oci::time::rfc3339(input.times.started);
    let finished = oci::time::rfc3339(input.times.finished);
    let request = json!({
        "frontend": "dockerfile.v0",
        "args": args,
        "locals": locals,
    });
    let max = (opts.mode == Mode::Max).then(|| definition(input, entry_point));
    let (predicate_type, statement) = match opts.version {
        Version::V02 => {
            let mut metadata = json!({
                "buildInvocationID": id,
                "buildStartedOn": started,
                "buildFinishedOn": finished,
                "completeness": {
                    "parameters": complete_params,
                    "environment": true,
                    "materials": false,
                },
                "reproducible": false,
            });
            let mut predicate = json!({
                "builder": {"id": opts.builder_id},
                "buildType": BUILD_TYPE_V02,
                "materials": materials,
                "invocation": {
                    "configSource": {"entryPoint": entry_point},
                    "parameters": request,
                    "environment": {"platform": input.builder_platform.to_string()},
                },
                "metadata": metadata.take(),
            });
            if let Some((build_config, source)) = max {
                predicate["buildConfig"] = build_config;
                predicate["metadata"][BUILDKIT_METADATA] = json!({ "source": source });
            }
            (
                PREDICATE_V02,
                json!({
                    "_type": STATEMENT_V01,
                    "predicateType": PREDICATE_V02,
                    "subject": subject,
                    "predicate": predicate,
                }),
            )
        }
        Version::V1 => {
            let mut internal = json!({
                "builderPlatform": input.builder_platform.to_string(),
            });
            let mut metadata = json!({
                "invocationID": id,
                "startedOn": started,
                "finishedOn": finished,
                "buildkit_completeness": {
                    "request": complete_params,
                    "resolvedDependencies": false,
                },
                "buildkit_hermetic": false,
                "buildkit_reproducible": false,
            });
            if let Some((build_config, source)) = max {
                internal["buildConfig"] = build_config;
                metadata["buildkit_metadata"] = json!({ "source": source });
            }
            (
                PREDICATE_V1,
                json!({
                    "_type": STATEMENT_V1,
                    "predicateType": PREDICATE_V1,
                    "subject": subject,
                    "predicate": {
                        "buildDefinition": {
                            "buildType": BUILD_TYPE_V1,
                            "externalParameters": {
                                "configSource": {"path": entry_point},
                                "request": request,
                            },
                            "internalParameters": internal,
                            "resolvedDependencies": materials,
                        },
                        "runDetails": {
                            "builder": {"id": opts.builder_id},
                            "metadata": metadata,
                        },
                    },
                }),
            )
        }
    };
    let bytes = serde_json::to_vec(&statement).expect("invariant: JSON values serialise");
    (predicate_type.to_owned(), bytes)
}

/// The SBOM statement (in-toto v0.1, an SPDX 2.3 predicate, as BuildKit writes it)
/// of `scan`, the root filesystem of `output`'s image `manifest`.
///
/// `part` names what was scanned when it is not the image itself (`context`, for
/// `BUILDKIT_SBOM_SCAN_CONTEXT`): the document is then `sbom-NAME-PART`.
pub fn sbom_statement(
    req: &BuildRequest,
    output: &graph::Output,
    manifest: &Descriptor,
    (scan, part): (&crate::sbom::Scan, Option<&str>),
    times: Times,
) -> Vec<u8> {
    let image = req.tags.first().map_or("_", String::as_str);
    let name = match part {
        Some(p) => format!("{image}-{p}"),
        None => image.to_owned(),
    };
    let doc = crate::sbom::document(
        scan,
        &name,
        &oci::time::rfc3339(times.finished),
        &format!(
            "{} {} {}",
            manifest.digest,
            output.platform,
            part.unwrap_or("")
        ),
    );
    let statement = json!({
        "_type": STATEMENT_V01,
        "predicateType": crate::sbom::PREDICATE_SPDX,
        "subject": subjects(&req.tags, &output.platform, &manifest.digest),
        "predicate": doc,
    });
    serde_json::to_vec(&statement).expect("invariant: JSON values serialise")
}

/// The image by each of its names (`pkg:docker/NAME@TAG?platform=…`), or `_` when
/// it has none, as BuildKit names a statement's subjects.
fn subjects(tags: &[String], platform: &Platform, digest: &Digest) -> Value {
    let digest = json!({ digest.algorithm().as_str(): digest.hex() });
    let mut names: Vec<String> = tags
        .iter()
        .filter_map(|t| Reference::parse(t).ok())
        .map(|r| purl(&r, Some(platform), false))
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        names.push("_".to_owned());
    }
    Value::Array(
        names
            .into_iter()
            .map(|name| json!({"name": name, "digest": digest}))
            .collect(),
    )
}

/// The vertices `root` reaches, in the graph's (topological) order.
fn reached<'g>(graph: &'g Graph, root: &Digest) -> Vec<(&'g Digest, &'g graph::Vertex)> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        if seen.insert(d.clone())
            && let Some(v) = graph.get(d)
        {
            stack.extend(v.inputs.iter());
        }
    }
    graph
        .vertices()
        .filter(|(d, _)| seen.contains(*d))
        .collect()
}

/// What the output is made from: the base images by package URL and digest, and
/// each local context it reads as `local:NAME` with the digest of its content
/// (paths, modes and file digests, as the build read them).
fn materials(graph: &Graph, root: &Digest, contexts: &BTreeMap<String, Digest>) -> Value {
    let mut out = BTreeMap::new();
    for (_, v) in reached(graph, root) {
        if let Op::Source(Source::Local { name, .. }) = &v.op
            && let Some(d) = contexts.get(name)
        {
            let uri = format!("local:{name}");
            out.insert(
                uri.clone(),
                json!({"uri": uri, "digest": { d.algorithm().as_str(): d.hex() }}),
            );
        }
        if let Op::Source(Source::Image {
            reference,
            platform,
            ..
        }) = &v.op
            && let Ok(r) = Reference::parse(reference)
            && let Some(d) = r.digest()
        {
            let uri = purl(&r, Some(platform), true);
            out.insert(
                uri.clone(),
                json!({"uri": uri, "digest": { d.algorithm().as_str(): d.hex() }}),
            );
        }
    }
    Value::Array(out.into_values().collect())
}

/// The local sources the output reads, by name, and the Dockerfile's.
fn locals(graph: &Graph, root: &Digest) -> Value {
    let mut names = std::collections::BTreeSet::new();
    for (_, v) in reached(graph, root) {
        if let Op::Source(Source::Local { name, .. }) = &v.op {
            names.insert(name.clone());
        }
    }
    names.insert("dockerfile".to_owned());
    Value::Array(names.into_iter().map(|n| json!({ "name": n })).collect())
}

/// The frontend's arguments as BuildKit records them (`build-arg:NAME`,
/// `label:KEY`, `target`, `context:NAME`), and whether none was left out: `min`
/// leaves out build arguments and labels.
fn args(req: &BuildRequest, mode: Mode) -> (BTreeMap<String, String>, bool) {
    let o = &req.options;
    let mut out = BTreeMap::new();
    let mut complete = true;
    for (k, v) in &o.build_args {
        if let Some(v) = v {
            match mode {
                Mode::Max => {
                    out.insert(format!("build-arg:{k}"), v.clone());
                }
                Mode::Min => complete = false,
            }
        }
    }
    for (k, v) in &o.labels {
        match mode {
            Mode::Max => {
                out.insert(format!("label:{k}"), v.clone());
            }
            Mode::Min => complete = false,
        }
    }
    if let Some(t) = &o.target {
        out.insert("target".to_owned(), t.clone());
    }
    for (name, c) in &o.named_contexts {
        let v = match c {
            frontend::NamedContext::Local { name } => format!("local:{name}"),
            frontend::NamedContext::Image { reference } => format!("docker-image://{reference}"),
            _ => continue,
        };
        out.insert(format!("context:{name}"), v);
    }
    if o.no_cache {
        out.insert("no-cache".to_owned(), String::new());
    }
    (out, complete)
}

/// `mode=max`: the build definition (each vertex the output reaches, as
/// `step<N>` with its op and inputs) and the Dockerfile with each step's lines.
fn definition(input: &Input<'_>, file_name: &str) -> (Value, Value) {
    let steps = reached(input.graph, &input.output.root);
    let ids: BTreeMap<&Digest, String> = steps
        .iter()
        .enumerate()
        .map(|(i, (d, _))| (*d, format!("step{i}")))
        .collect();
    let mut definition = Vec::new();
    let mut locations = serde_json::Map::new();
    for (d, v) in &steps {
        let id = &ids[d];
        definition.push(json!({
            "id": id,
            "digest": d.to_string(),
            "name": v.metadata.description,
            "op": v.op,
            "inputs": v.inputs.iter().filter_map(|i| ids.get(i)).collect::<Vec<_>>(),
        }));
        if let Some(l) = &v.metadata.location {
            locations.insert(
                id.clone(),
                json!({"locations": [{"ranges": [{
                    "start": {"line": l.start_line},
                    "end": {"line": l.end_line},
                }]}]}),
            );
        }
    }
    let data = base64::engine::general_purpose::STANDARD.encode(&input.request.dockerfile);
    (
        json!({ "definition": definition }),
        json!({
            "locations": locations,
            "infos": [{"filename": file_name, "language": "Dockerfile", "data": data}],
        }),
    )
}

/// An id for this invocation made from what the statement says (never random, never
/// the time), so the same request and result give the same id.
fn invocation_id(
    opts: &ProvenanceOptions,
    input: &Input<'_>,
    args: &BTreeMap<String, String>,
) -> String {
    let seed = json!({
        "mode": matches!(opts.mode, Mode::Max),
        "args": args,
        "platform": input.output.platform.to_string(),
        "manifest": input.manifest.digest.to_string(),
        "dockerfile": oci::Digest::sha256(input.request.dockerfile.as_bytes()).to_string(),
        "tags": input.request.tags,
    });
    let d = oci::Digest::sha256(seed.to_string().as_bytes());
    d.hex()[..26].to_owned()
}

/// A package URL of an image reference (`pkg:docker/NS/NAME@TAG?…`) as BuildKit
/// writes them: the familiar name, `latest` when untagged, the digest (`with_digest`)
/// and the platform as qualifiers in key order.
pub fn purl(r: &Reference, platform: Option<&Platform>, with_digest: bool) -> String {
    let familiar = Reference::parse(&r.name())
        .map(|n| n.familiar())
        .unwrap_or_else(|_| r.name());
    let familiar = familiar.strip_suffix(":latest").unwrap_or(&familiar);
    let path: Vec<String> = familiar.split('/').map(escape_segment).collect();
    let version = r.tag().unwrap_or("latest");
    let mut qualifiers = Vec::new();
    if with_digest && let Some(d) = r.digest() {
        qualifiers.push(format!("digest={}", escape_query(&d.to_string())));
    }
    if let Some(p) = platform {
        qualifiers.push(format!("platform={}", escape_query(&p.to_string())));
    }
    let mut out = format!("pkg:docker/{}@{}", path.join("/"), escape_segment(version));
    if !qualifiers.is_empty() {
        out.push('?');
        out.push_str(&qualifiers.join("&"));
    }
    out
}

fn escape(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn escape_segment(s: &str) -> String {
    escape(s, |b| b"-._~:".contains(&b))
}

fn escape_query(s: &str) -> String {
    escape(s, |b| b"-._~".contains(&b))
}

/// The times to state for the image `manifest` in the attestations of `kind`:
/// `SOURCE_DATE_EPOCH` for both when set; else those recorded under `dir` by the
/// build that first made this image with these attestations; else `started` and
/// now, recorded for the next.
pub fn times_for(
    dir: &std::path::Path,
    manifest: &Digest,
    kind: &str,
    source_date_epoch: Option<i64>,
    started: i64,
) -> Times {
    if let Some(t) = source_date_epoch {
        return Times {
            started: t,
            finished: t,
        };
    }
    let key = Digest::sha256(format!("{manifest} {kind}").as_bytes());
    let path = dir.join(key.hex());
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(t) = serde_json::from_slice::<Times>(&bytes)
    {
        return t;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(started, |d| d.as_secs() as i64);
    let t = Times {
        started,
        finished: now.max(started),
    };
    // Best effort: without the record, a rebuild states new times (and a new
    // attestation), which is what BuildKit always does.
    let _ = std::fs::create_dir_all(dir).and_then(|()| {
        let tmp = dir.join(format!(".{}.{}", key.hex(), std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&t).expect("invariant: times serialise"),
        )?;
        std::fs::rename(&tmp, &path)
    });
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_name_images_as_buildkit_does() {
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let r = Reference::parse("alpine:3.20").unwrap();
        assert_eq!(
            purl(&r, Some(&amd64), true),
            "pkg:docker/alpine@3.20?platform=linux%2Famd64"
        );
        let d = Digest::sha256(b"x");
        let r = Reference::parse(&format!("localhost:5000/team/app:1@{d}")).unwrap();
        assert_eq!(
            purl(&r, Some(&Platform::parse("linux/arm/v7").unwrap()), true),
            format!(
                "pkg:docker/localhost:5000/team/app@1?digest=sha256%3A{}&platform=linux%2Farm%2Fv7",
                d.hex()
            )
        );
        let r = Reference::parse("docker.io/user/tool").unwrap();
        assert_eq!(purl(&r, None, false), "pkg:docker/user/tool@latest");
    }

    #[test]
    fn options_name_what_is_wrong() {
        let a = |s: &str| Attestation::parse(s).unwrap();
        let o =
            ProvenanceOptions::from_attestation(&a("type=provenance,mode=max,version=v1")).unwrap();
        assert_eq!((o.mode, o.version), (Mode::Max, Version::V1));
        let e = ProvenanceOptions::from_attestation(&a("type=provenance,mode=most")).unwrap_err();
        assert!(e.to_string().contains("mode=\"most\""), "{e}");
        let e = ProvenanceOptions::from_attestation(&a("type=provenance,colour=red")).unwrap_err();
        assert!(e.to_string().contains("\"colour\""), "{e}");
    }
}
