//! Where a build's result goes once it is in the local store, and what is reported
//! about it: `-o/--output`, `--push`, `--load`, `--iidfile`, `--metadata-file`,
//! `-q/--quiet`.
//!
//! `-o` takes buildx's syntax: one CSV record of `KEY=VALUE` fields (a field may be
//! quoted, so `"name=a,b"` is one field), or a bare directory (`type=local`), or `-`
//! (`type=tar` on standard output). The outputs are parsed and checked before the
//! build ([`Plan::from_args`]); [`Plan::emit`] writes them after it.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use content::Store;
use export::Compression;
use export::output::{Codec, Dest, ExportSettings, Kind, Output, parse_output};
use oci::{Descriptor, Reference};

use crate::cli::BuildArgs;
use crate::render::Hinted;

/// Everything `manifold build` does with its result after the build.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub outputs: Vec<Output>,
    /// `-t` names, as given.
    pub tags: Vec<String>,
    pub load: bool,
    pub iidfile: Option<PathBuf>,
    pub metadata_file: Option<PathBuf>,
    export: ExportSettings,
}

impl Plan {
    /// Parse and check the output flags before anything is built.
    pub fn from_args(args: &BuildArgs) -> anyhow::Result<Plan> {
        let mut outputs = args
            .outputs
            .iter()
            .map(|o| parse_output(o))
            .collect::<Result<Vec<_>, _>>()?;
        if args.push {
            match outputs
                .iter_mut()
                .find(|o| matches!(o.kind, Kind::Image { .. }))
            {
                Some(o) => o.kind = Kind::Image { push: true },
                None => outputs.push(Output::push()),
            }
        }
        let mut plan = Plan {
            outputs,
            tags: args.tags.clone(),
            load: args.load,
            iidfile: args.iidfile.clone(),
            metadata_file: args.metadata_file.clone(),
            export: ExportSettings::default(),
        };
        plan.export = plan.merged_export()?;
        plan.check(args.platform.len())?;
        Ok(plan)
    }

    fn merged_export(&self) -> anyhow::Result<ExportSettings> {
        let mut merged = ExportSettings::default();
        for o in &self.outputs {
            let e = &o.export;
            merge(&mut merged.compression, e.compression, "compression")?;
            merge(&mut merged.level, e.level, "compression-level")?;
            merge(
                &mut merged.oci_mediatypes,
                e.oci_mediatypes,
                "oci-mediatypes",
            )?;
            merged.force |= e.force;
        }
        Ok(merged)
    }

    fn check(&mut self, platforms: usize) -> anyhow::Result<()> {
        // `type=docker` without dest loads into docker (or podman), as in buildx.
        self.load |= self
            .outputs
            .iter()
            .any(|o| o.kind == Kind::Docker && o.dest.is_none());
        let mut to_stdout = 0;
        for o in &mut self.outputs {
            if o.kind == (Kind::Image { push: true }) && o.names.is_empty() && self.tags.is_empty()
            {
                bail!(Hinted::new(
                    "nothing to push to: the image has no name",
                    "name it with -t REGISTRY/REPOSITORY[:TAG] (or -o type=image,name=…,push=true)",
                ));
            }
            for n in &o.names {
                check_name(n)?;
            }
            if o.kind == Kind::Docker && o.dest.is_some() && platforms > 1 {
                bail!(docker_platforms_error());
            }
            match (&o.kind, &o.dest) {
                (Kind::Image { .. }, _) | (Kind::Docker, None) => {}
                (Kind::Local, None) => bail!(Hinted::new(
                    "type=local needs dest=DIR",
                    "write -o type=local,dest=DIR, or -o DIR",
                )),
                (Kind::Local, Some(Dest::Stdout)) => bail!(Hinted::new(
                    "type=local cannot write to standard output",
                    "use -o - (type=tar) for a tar on standard output",
                )),
                (Kind::Oci { tar: false }, Some(Dest::Stdout) | None) => bail!(Hinted::new(
                    "type=oci,tar=false needs dest=DIR",
                    "give a directory, or drop tar=false for a tar",
                )),
                (_, None) => {
                    if io::stdout().is_terminal() {
                        bail!(Hinted::new(
                            "refusing to write a tar to the terminal",
                            "give dest=FILE, or redirect standard output",
                        ));
                    }
                    o.dest = Some(Dest::Stdout);
                }
                _ => {}
            }
            if o.dest == Some(Dest::Stdout) {
                to_stdout += 1;
            }
        }
        if to_stdout > 1 {
            bail!(Hinted::new(
                "more than one output writes to standard output",
                "give all but one of them dest=FILE",
            ));
        }
        for t in &self.tags {
            check_name(t)?;
        }
        if let (Some(Codec::Zstd), Some(false)) =
            (self.export.compression, self.export.oci_mediatypes)
        {
            bail!(Hinted::new(
                "zstd layers need OCI media types",
                "drop oci-mediatypes=false, or use compression=gzip",
            ));
        }
        self.export_compression()?;
        Ok(())
    }

    /// The outputs a build request carries: `--load` as the `type=docker` output
    /// without destination it stands for.
    pub fn request_outputs(&self) -> Vec<Output> {
        let mut outputs = self.outputs.clone();
        if self.load
            && !outputs
                .iter()
                .any(|o| o.kind == Kind::Docker && o.dest.is_none())
        {
            outputs.push(Output {
                kind: Kind::Docker,
                dest: None,
                names: Vec::new(),
                export: ExportSettings::default(),
                push_by_digest: false,
            });
        }
        outputs
    }

    /// Whether the outputs are only pushes of the `-t` names (`--push`): a remote
    /// build's daemon then pushes, and nothing comes back.
    pub fn push_only(&self) -> bool {
        let outputs = self.request_outputs();
        !outputs.is_empty() && outputs.iter().all(Output::only_pushes)
    }

    /// Whether the image is needed on this side: for a file output, `--load`, or
    /// names in the local store (`-t` without `--push`). Reports alone need only the
    /// digest.
    pub fn needs_image(&self) -> bool {
        export::output::needs_client(&self.request_outputs(), &self.tags)
    }

    /// Name `index` by the `-t` names in `store` (what the builder does for a build in
    /// this process).
    pub fn name_tags(&self, store: &Store, index: &Descriptor) -> anyhow::Result<()> {
        for t in &self.tags {
            let name = normal(t);
            export::tag(store, &name, index)
                .with_context(|| format!("cannot name the image {name}"))?;
        }
        Ok(())
    }

    /// Whether an output writes to standard output (then nothing else does).
    pub fn uses_stdout(&self) -> bool {
        self.outputs.iter().any(|o| o.dest == Some(Dest::Stdout))
    }

    fn export_compression(&self) -> anyhow::Result<Option<Compression>> {
        let level = self.export.level;
        Ok(match self.export.compression {
            None if level.is_none() => None,
            None | Some(Codec::Gzip) => {
                let level = level.unwrap_or(export::DEFAULT_GZIP_LEVEL as i32);
                if !(0..=9).contains(&level) {
                    bail!(Hinted::new(
                        format!("compression-level={level} is out of range for gzip"),
                        "gzip takes 0-9",
                    ));
                }
                Some(Compression::Gzip {
                    level: level.unsigned_abs(),
                })
            }
            Some(Codec::Zstd) => {
                let level = level.unwrap_or(3);
                if !(1..=22).contains(&level) {
                    bail!(Hinted::new(
                        format!("compression-level={level} is out of range for zstd"),
                        "zstd takes 1-22",
                    ));
                }
                Some(Compression::Zstd { level })
            }
            Some(Codec::Uncompressed) => Some(Compression::Uncompressed),
        })
    }

    /// The encoding options for the builder: `base` with what the outputs set.
    pub fn export_options(&self, base: builder::ExportOptions) -> builder::ExportOptions {
        let compression = self
            .export_compression()
            .expect("invariant: checked by Plan::from_args")
            .unwrap_or(base.compression);
        builder::ExportOptions {
            compression,
            oci_mediatypes: self.export.oci_mediatypes.unwrap_or(base.oci_mediatypes),
            ..base
        }
    }

    /// Names the image gets in the local store beyond `-t` (from `type=image,name=`),
    /// normalised as the builder stores `-t` names.
    fn image_names(&self) -> Vec<String> {
        let mut seen: BTreeSet<String> = self.tags.iter().map(|t| normal(t)).collect();
        self.outputs
            .iter()
            .filter(|o| matches!(o.kind, Kind::Image { .. }))
            .flat_map(|o| o.names.iter())
            .map(|n| normal(n))
            .filter(|n| seen.insert(n.clone()))
            .collect()
    }

    /// An output's names, or the `-t` names when it has none.
    fn names_of<'a>(&'a self, o: &'a Output) -> &'a [String] {
        if o.names.is_empty() {
            &self.tags
        } else {
            &o.names
        }
    }

    /// Write every file output and `--load` of the built image `index` (the outputs'
    /// names given in the store first when `name`: a build elsewhere did not), then
    /// the reports; `quiet` prints the image digest (the index's) on standard output
    /// unless an output uses it. What there is to say goes to `notes`, for the
    /// caller to print once progress output is over.
    pub fn emit(
        &self,
        store: &Store,
        index: &Descriptor,
        name: bool,
        quiet: bool,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        if name {
            self.name_tags(store, index)?;
            for name in self.image_names() {
                export::tag(store, &name, index)
                    .with_context(|| format!("cannot name the image {name}"))?;
            }
        }
        let manifests = export::sink::index_manifests(store, index)?;
        for o in &self.outputs {
            let what = match &o.dest {
                Some(Dest::Path(p)) => format!("{} {}", o.describe(), p.display()),
                _ => format!("{} to standard output", o.describe()),
            };
            // A closed pipe here is an export not delivered: an error, unlike a listing's.
            export::sink::write_output(
                store,
                index,
                &manifests,
                o,
                self.names_of(o),
                &mut io::stdout().lock(),
            )
            .with_context(|| format!("cannot write the {what}"))?;
        }
        if self.load {
            let named: Vec<String> = self
                .outputs
                .iter()
                .filter(|o| o.kind == Kind::Docker && o.dest.is_none())
                .flat_map(|o| o.names.iter().cloned())
                .collect();
            let names = if named.is_empty() { &self.tags } else { &named };
            notes.push(export::sink::load(store, index, &manifests, names)?);
        }
        self.report(index, quiet)
    }

    /// `--iidfile`, `--metadata-file`, and with `quiet` the digest on standard output
    /// unless an output uses it.
    pub fn report(&self, index: &Descriptor, quiet: bool) -> anyhow::Result<()> {
        if let Some(path) = &self.iidfile {
            fs::write(path, index.digest.to_string())
                .with_context(|| format!("cannot write --iidfile {}", path.display()))?;
        }
        if let Some(path) = &self.metadata_file {
            self.write_metadata(path, index)?;
        }
        if quiet && !self.uses_stdout() {
            crate::out::outln!("{}", index.digest)?;
        }
        Ok(())
    }

    /// `--metadata-file`: buildx's keys for the image.
    fn write_metadata(&self, path: &std::path::Path, index: &Descriptor) -> anyhow::Result<()> {
        let mut names: Vec<String> = self.tags.iter().map(|t| normal(t)).collect();
        names.extend(self.image_names());
        let mut meta = serde_json::Map::new();
        meta.insert(
            "containerimage.descriptor".into(),
            serde_json::to_value(index).expect("a descriptor always serialises"),
        );
        meta.insert(
            "containerimage.digest".into(),
            index.digest.to_string().into(),
        );
        if !names.is_empty() {
            meta.insert("image.name".into(), names.join(",").into());
        }
        let text = serde_json::to_string_pretty(&meta).expect("JSON values serialise");
        fs::write(path, text + "\n")
            .with_context(|| format!("cannot write --metadata-file {}", path.display()))
    }
}

fn merge<T: PartialEq + Copy + std::fmt::Debug>(
    into: &mut Option<T>,
    value: Option<T>,
    key: &str,
) -> anyhow::Result<()> {
    match (*into, value) {
        (Some(a), Some(b)) if a != b => bail!(Hinted::new(
            format!("outputs ask for different {key} ({a:?} and {b:?})"),
            "one build makes one encoding: give every output the same value",
        )),
        (None, Some(b)) => *into = Some(b),
        _ => {}
    }
    Ok(())
}

/// `name` as the store names images (`alpine` → `docker.io/library/alpine:latest`).
fn normal(name: &str) -> String {
    Reference::parse(name).map_or_else(|_| name.to_owned(), |r| r.to_string())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let r = Reference::parse(name).with_context(|| format!("invalid image name {name:?}"))?;
    if r.digest().is_some() {
        bail!(Hinted::new(
            format!("image name {name:?} has a digest"),
            "name images by tag: REGISTRY/REPOSITORY[:TAG]",
        ));
    }
    Ok(())
}

fn docker_platforms_error() -> Hinted {
    Hinted::new(
        "docker exporter does not support multiple platforms",
        "use type=oci, or --platform with one platform",
    )
}

#[cfg(test)]
mod tests {
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
    fn push_marks_the_image_output_or_adds_one() {
        let p = plan(&["--push", "-o", "type=image,name=r/a:1"]).unwrap();
        assert_eq!(p.outputs.len(), 1);
        assert_eq!(p.outputs[0].kind, Kind::Image { push: true });
        let p = plan(&["--push", "-t", "r/a:1", "-o", "type=oci,dest=x.tar"]).unwrap();
        assert_eq!(p.outputs.len(), 2);
        assert_eq!(p.outputs[1].kind, Kind::Image { push: true });
        assert_eq!(p.names_of(&p.outputs[1]), ["r/a:1"]);
        assert!(plan(&["--push"]).is_err());
        assert!(
            plan(&[
                "--push",
                "-t",
                "r/a@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            ])
            .is_err()
        );
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

    #[test]
    fn a_remote_build_fetches_its_image_unless_it_only_pushes_or_reports() {
        let fetches = |args: &[&str]| plan(args).unwrap().needs_image();
        assert!(!fetches(&[]));
        assert!(!fetches(&["--iidfile", "iid", "--metadata-file", "m.json"]));
        assert!(!fetches(&["-t", "r/a:1", "--push"]));
        assert!(plan(&["-t", "r/a:1", "--push"]).unwrap().push_only());
        assert!(fetches(&["-t", "r/a:1"]));
        assert!(fetches(&["--load"]));
        assert!(fetches(&["-o", "type=oci,dest=x.tar"]));
        assert!(fetches(&[
            "-t",
            "r/a:1",
            "--push",
            "-o",
            "type=local,dest=d"
        ]));
        assert!(fetches(&["-o", "type=image,name=r/a:1,push=true"]));
    }

    #[test]
    fn names_in_the_store_are_normalised_and_not_repeated() {
        let p = plan(&[
            "-t",
            "app",
            "-o",
            r#"type=image,"name=app,docker.io/library/app:latest,localhost/b""#,
        ])
        .unwrap();
        assert_eq!(p.image_names(), ["localhost/b:latest"]);
    }

    #[test]
    fn file_outputs_need_a_destination_and_share_stdout_with_none() {
        assert!(plan(&["-o", "type=local"]).is_err());
        assert!(plan(&["-o", "type=local,dest=-"]).is_err());
        assert!(plan(&["-o", "type=oci,tar=false,dest=-"]).is_err());
        assert!(plan(&["-o", "-", "-o", "type=docker,dest=-"]).is_err());
        assert!(
            plan(&[
                "--platform",
                "linux/amd64,linux/arm64",
                "-o",
                "type=docker,dest=x"
            ])
            .is_err()
        );
        let p = plan(&["-o", "-"]).unwrap();
        assert!(p.uses_stdout());
        // type=docker without dest is --load, for the host's platform.
        let p = plan(&[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "type=docker,name=a",
        ])
        .unwrap();
        assert!(p.load && !p.uses_stdout());
    }
}
