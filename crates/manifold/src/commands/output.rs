//! Where a build's result goes once it is in the local store, and what is reported
//! about it: `-o/--output`, `--push`, `--load` ([`export::output::Outputs`], checked
//! before the build), `--iidfile`, `--metadata-file`, `-q/--quiet`.

use std::fs;
use std::io::{self, IsTerminal};
use std::path::PathBuf;

use anyhow::Context;
use content::Store;
use export::annotation::Annotations;
use export::output::{Dest, OutputFlags, Outputs, normal};
use oci::Descriptor;

use crate::cli::BuildArgs;

/// Everything `manifold build` does with its result after the build.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    set: Outputs,
    pub iidfile: Option<PathBuf>,
    pub metadata_file: Option<PathBuf>,
}

impl std::ops::Deref for Plan {
    type Target = Outputs;

    fn deref(&self) -> &Outputs {
        &self.set
    }
}

impl Plan {
    /// Parse and check the output flags before anything is built.
    pub fn from_args(args: &BuildArgs) -> anyhow::Result<Plan> {
        let set = Outputs::new(&OutputFlags {
            specs: &args.outputs,
            push: args.push,
            tags: &args.tags,
            load: args.load,
            platforms: args.platform.len(),
            stdout_is_terminal: io::stdout().is_terminal(),
            annotations: &args.annotations,
            // A bad attestation flag is reported where the request is made.
            attestations: builder::Attestation::from_flags(
                args.provenance.as_deref(),
                args.sbom.as_deref(),
                &args.attest,
            )
            .is_ok_and(|a| a.iter().any(|a| !a.disabled)),
        })?;
        Ok(Plan {
            set,
            iidfile: args.iidfile.clone(),
            metadata_file: args.metadata_file.clone(),
        })
    }

    /// The encoding options for the builder: `base` with what the outputs set.
    pub fn export_options(&self, base: builder::ExportOptions) -> builder::ExportOptions {
        builder::ExportOptions {
            compression: self.compression().unwrap_or(base.compression),
            oci_mediatypes: self.oci_mediatypes().unwrap_or(base.oci_mediatypes),
            annotations: self.annotations.clone(),
            ..base
        }
    }

    /// Write every file output and `--load` of the built image `image` (the outputs'
    /// names given in the store first when `name`: a build elsewhere did not), then
    /// the reports; `quiet` prints the image digest on standard output unless an
    /// output uses it. What there is to say goes to `notes`, for the caller to print
    /// once progress output is over.
    pub fn emit(
        &self,
        store: &Store,
        built: &builder::BuildOutput,
        name: bool,
        quiet: bool,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let image = &built.image;
        if name {
            for name in self
                .tags
                .iter()
                .map(|t| normal(t))
                .chain(self.image_names())
            {
                export::tag(store, &name, image)
                    .with_context(|| format!("cannot name the image {name}"))?;
            }
        }
        let manifests = export::sink::index_manifests(store, image)?;
        // An OCI layout's entry for an index carries the index-descriptor annotations.
        let mut entry = image.clone();
        if built.config.is_none() {
            entry
                .annotations
                .extend(Annotations(&self.annotations).index_descriptor());
        }
        for o in &self.outputs {
            let what = match &o.dest {
                Some(Dest::Path(p)) => format!("{} {}", o.describe(), p.display()),
                _ => format!("{} to standard output", o.describe()),
            };
            // A closed pipe here is an export not delivered: an error, unlike a listing's.
            export::sink::write_output(
                store,
                &entry,
                &manifests,
                o,
                self.names_of(o),
                &mut io::stdout().lock(),
            )
            .with_context(|| format!("cannot write the {what}"))?;
        }
        if self.load {
            let names = self.load_names();
            notes.push(export::sink::load(store, image, &manifests, &names)?);
        }
        let provenance = provenance_metadata(store, image)?;
        self.report(image, built.config.as_ref(), provenance, quiet)
    }

    /// `--iidfile`, `--metadata-file` (of `image`, whose config is `config` when it
    /// is a manifest), and with `quiet` the digest on standard output unless an
    /// output uses it.
    pub fn report(
        &self,
        image: &Descriptor,
        config: Option<&Descriptor>,
        extra: serde_json::Map<String, serde_json::Value>,
        quiet: bool,
    ) -> anyhow::Result<()> {
        if let Some(path) = &self.iidfile {
            fs::write(path, image.digest.to_string())
                .with_context(|| format!("cannot write --iidfile {}", path.display()))?;
        }
        if let Some(path) = &self.metadata_file {
            let mut meta = self.metadata(image, config);
            meta.extend(extra);
            let text = serde_json::to_string_pretty(&meta).expect("JSON values serialise");
            fs::write(path, text + "\n")
                .with_context(|| format!("cannot write --metadata-file {}", path.display()))?;
        }
        if quiet && !self.uses_stdout() {
            crate::out::outln!("{}", image.digest)?;
        }
        Ok(())
    }

    /// `--metadata-file`'s document: buildx's keys for the image. Later issues add
    /// theirs (provenance, bake targets) here.
    pub fn metadata(
        &self,
        image: &Descriptor,
        config: Option<&Descriptor>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut names: Vec<String> = self.tags.iter().map(|t| normal(t)).collect();
        names.extend(self.image_names());
        let mut add = |n: String| {
            if !names.contains(&n) {
                names.push(n);
            }
        };
        for o in &self.outputs {
            for r in self
                .names_of(o)
                .iter()
                .filter_map(|n| oci::Reference::parse(n).ok())
            {
                let repository = format!("{}/{}", r.registry(), r.repository());
                // Pushed by digest: the repository, no tag (none was pushed).
                if o.push_by_digest {
                    add(repository.clone());
                }
                if o.name_canonical {
                    add(format!("{repository}@{}", image.digest));
                }
            }
        }
        let mut meta = serde_json::Map::new();
        if let Some(config) = config {
            meta.insert(
                "containerimage.config.digest".into(),
                config.digest.to_string().into(),
            );
        }
        let mut top = image.clone();
        top.platform = None;
        meta.insert(
            "containerimage.descriptor".into(),
            serde_json::to_value(&top).expect("a descriptor always serialises"),
        );
        meta.insert(
            "containerimage.digest".into(),
            image.digest.to_string().into(),
        );
        if !names.is_empty() {
            meta.insert("image.name".into(), names.join(",").into());
        }
        meta
    }
}

/// `--metadata-file`'s `buildx.build.provenance` (one image) or
/// `buildx.build.provenance/OS/ARCH[/VARIANT]` (several): the predicate of each
/// image's provenance statement, as buildx writes it.
pub fn provenance_metadata(
    store: &Store,
    image: &Descriptor,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    if oci::media::kind(&image.media_type) != oci::media::Kind::Index {
        return Ok(serde_json::Map::new());
    }
    let index: oci::ImageIndex = serde_json::from_slice(&store.read_document(&image.digest)?)
        .context("the built index does not parse")?;
    let mut statements = Vec::new();
    for a in index
        .manifests
        .iter()
        .filter(|m| export::attest::is_attestation(m))
    {
        let Some(subject) = a
            .annotations
            .get(export::attest::REFERENCE_DIGEST)
            .and_then(|d| oci::Digest::parse(d).ok())
        else {
            continue;
        };
        for (_, st) in export::attest::read_statements(store, a)? {
            let v: serde_json::Value = serde_json::from_slice(&st.bytes)
                .context("a provenance statement does not parse")?;
            statements.push((subject.clone(), st.predicate_type, v));
        }
    }
    Ok(provenance_keys(&index.manifests, &statements))
}

/// buildx's provenance keys of the images among `entries` (attestation manifests
/// aside) from `statements` (about which image, predicate type, statement): the
/// predicate under `buildx.build.provenance`, or `buildx.build.provenance/PLATFORM`
/// when there are several images.
pub fn provenance_keys(
    entries: &[Descriptor],
    statements: &[(oci::Digest, String, serde_json::Value)],
) -> serde_json::Map<String, serde_json::Value> {
    let images: Vec<&Descriptor> = entries
        .iter()
        .filter(|m| !export::attest::is_attestation(m))
        .collect();
    let mut out = serde_json::Map::new();
    for (about, predicate_type, v) in statements {
        if !predicate_type.starts_with("https://slsa.dev/provenance/") {
            continue;
        }
        let Some(img) = images.iter().find(|i| i.digest == *about) else {
            continue;
        };
        let key = match (images.len(), &img.platform) {
            (1, _) | (_, None) => "buildx.build.provenance".to_owned(),
            (_, Some(p)) => format!("buildx.build.provenance/{p}"),
        };
        out.insert(key, v["predicate"].clone());
    }
    out
}

/// `built DIGEST (N platform(s))`, and how `force-compression` changed it.
pub fn built_line(out: &builder::BuildOutput) -> String {
    let how = match out.recompressed {
        Some(c) => format!("; base layers recompressed to {}", c.key()),
        None => String::new(),
    };
    format!(
        "built {} ({} platform(s){how})",
        out.image.digest,
        out.manifests.len()
    )
}

#[cfg(test)]
mod tests {
    use export::Compression;

    use super::*;

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(
            ["manifold", "build"].iter().chain(args).chain(&["ctx"]),
        )
        .unwrap();
        match cli.command {
            crate::cli::Command::Build(b) => Plan::from_args(&b),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn encoding_options_reach_the_builder() {
        let base = builder::ExportOptions::default();
        let p = plan(&["-o", "type=image,compression=zstd,compression-level=12"]).unwrap();
        let e = p.export_options(base.clone());
        assert_eq!(e.compression, Compression::Zstd { level: 12 });
        assert!(e.oci_mediatypes);
        let p = plan(&[
            "-o",
            "type=oci,dest=x,compression-level=1,oci-mediatypes=false",
        ])
        .unwrap();
        let e = p.export_options(base.clone());
        assert_eq!(e.compression, Compression::Gzip { level: 1 });
        assert!(!e.oci_mediatypes);
        let p = plan(&["-o", "type=image,compression=uncompressed"]).unwrap();
        assert_eq!(
            p.export_options(base.clone()).compression,
            Compression::Uncompressed
        );
        let p = plan(&[]).unwrap();
        assert_eq!(p.export_options(base.clone()).compression, base.compression);
        // One build, one encoding.
        assert!(
            plan(&[
                "-o",
                "type=image,compression=zstd",
                "-o",
                "type=oci,dest=x,compression=gzip"
            ])
            .is_err()
        );
        assert!(plan(&["-o", "type=image,compression=zstd,oci-mediatypes=false"]).is_err());
        assert!(plan(&["-o", "type=image,compression=gzip,compression-level=10"]).is_err());
        assert!(plan(&["-o", "type=image,compression=zstd,compression-level=0"]).is_err());
    }
}
