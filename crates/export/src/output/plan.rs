//! [`Outputs`]: every output of one build, checked together before the build (names,
//! destinations, one encoding for all), as `-o`, `--push`, `--load` and `-t` give
//! them.

use std::collections::BTreeSet;

use oci::Reference;

use super::Annotation;
use super::{Codec, Dest, ExportSettings, Kind, Output, SpecError, parse_output};
use crate::layer::{Compression, DEFAULT_GZIP_LEVEL};

/// The outputs of one build, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    pub outputs: Vec<Output>,
    /// `-t` names, as given.
    pub tags: Vec<String>,
    /// `--load`, or a `type=docker` output without destination.
    pub load: bool,
    /// The encoding the outputs agree on.
    export: ExportSettings,
    /// `--annotation` values, then every output's `annotation*` keys: one build
    /// makes one image, so all apply to it.
    pub annotations: Vec<Annotation>,
}

/// How [`Outputs::new`] is asked.
#[derive(Debug, Clone, Default)]
pub struct OutputFlags<'a> {
    /// `-o` values.
    pub specs: &'a [String],
    /// `--push`.
    pub push: bool,
    /// `-t` values.
    pub tags: &'a [String],
    /// `--load`.
    pub load: bool,
    /// How many platforms were asked for.
    pub platforms: usize,
    /// Whether standard output is a terminal (a tar is not written there).
    pub stdout_is_terminal: bool,
    /// `--annotation` values.
    pub annotations: &'a [String],
    /// Whether attestations were asked for (the image is then an index).
    pub attestations: bool,
}

impl Outputs {
    /// Parse and check the output flags before anything is built.
    pub fn new(flags: &OutputFlags<'_>) -> Result<Outputs, SpecError> {
        let mut outputs = flags
            .specs
            .iter()
            .map(|o| parse_output(o))
            .collect::<Result<Vec<_>, _>>()?;
        if flags.push {
            match outputs
                .iter_mut()
                .find(|o| matches!(o.kind, Kind::Image { .. }))
            {
                Some(o) => o.kind = Kind::Image { push: true },
                None => outputs.push(Output::push()),
            }
        }
        let mut annotations = Vec::new();
        for a in flags.annotations {
            annotations.extend(super::annotation::parse_flag(a)?);
        }
        annotations.extend(outputs.iter().flat_map(|o| o.annotations.iter().cloned()));
        if flags.platforms <= 1 && !flags.attestations {
            single_platform_annotations(&annotations)?;
        }
        let mut plan = Outputs {
            outputs,
            tags: flags.tags.to_vec(),
            load: flags.load,
            export: ExportSettings::default(),
            annotations,
        };
        plan.export = plan.merged_export()?;
        plan.check(flags.platforms, flags.stdout_is_terminal)?;
        Ok(plan)
    }

    fn merged_export(&self) -> Result<ExportSettings, SpecError> {
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

    fn check(&mut self, platforms: usize, stdout_is_terminal: bool) -> Result<(), SpecError> {
        // `type=docker` without dest loads into docker (or podman), as in buildx.
        self.load |= self
            .outputs
            .iter()
            .any(|o| o.kind == Kind::Docker && o.dest.is_none());
        let mut to_stdout = 0;
        for o in &mut self.outputs {
            if o.kind == (Kind::Image { push: true }) && o.names.is_empty() && self.tags.is_empty()
            {
                return Err(SpecError::new(
                    "nothing to push to: the image has no name",
                    "name it with -t REGISTRY/REPOSITORY[:TAG] (or -o type=image,name=…,push=true)",
                ));
            }
            for n in &o.names {
                check_name(n)?;
            }
            if o.kind == Kind::Docker && o.dest.is_some() && platforms > 1 {
                return Err(docker_platforms_error());
            }
            let refused = |message: &str, hint: &str| Err(SpecError::new(message, hint));
            match (&o.kind, &o.dest) {
                (Kind::Image { .. }, _) | (Kind::Docker, None) => {}
                (Kind::Local, None) => {
                    return refused(
                        "type=local needs dest=DIR",
                        "write -o type=local,dest=DIR, or -o DIR",
                    );
                }
                (Kind::Local, Some(Dest::Stdout)) => {
                    return refused(
                        "type=local cannot write to standard output",
                        "use -o - (type=tar) for a tar on standard output",
                    );
                }
                (Kind::Oci { tar: false }, Some(Dest::Stdout) | None) => {
                    return refused(
                        "type=oci,tar=false needs dest=DIR",
                        "give a directory, or drop tar=false for a tar",
                    );
                }
                (_, None) => {
                    if stdout_is_terminal {
                        return refused(
                            "refusing to write a tar to the terminal",
                            "give dest=FILE, or redirect standard output",
                        );
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
            return Err(SpecError::new(
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
            return Err(SpecError::new(
                "zstd layers need OCI media types",
                "drop oci-mediatypes=false, or use compression=gzip",
            ));
        }
        self.checked_compression()?;
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
                name_canonical: false,
                annotations: Vec::new(),
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

    /// Whether the image is needed where the build was asked for: for a file
    /// output, `--load`, or names in the local store (`-t` without `--push`).
    pub fn needs_client(&self) -> bool {
        super::needs_client(&self.request_outputs(), &self.tags)
    }

    /// Whether an output writes to standard output (then nothing else does).
    pub fn uses_stdout(&self) -> bool {
        self.outputs.iter().any(|o| o.dest == Some(Dest::Stdout))
    }

    fn checked_compression(&self) -> Result<Option<Compression>, SpecError> {
        let level = self.export.level;
        Ok(match self.export.compression {
            None if level.is_none() => None,
            None | Some(Codec::Gzip) => {
                let level = level.unwrap_or(DEFAULT_GZIP_LEVEL as i32);
                if !(0..=9).contains(&level) {
                    return Err(SpecError::new(
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
                    return Err(SpecError::new(
                        format!("compression-level={level} is out of range for zstd"),
                        "zstd takes 1-22",
                    ));
                }
                Some(Compression::Zstd { level })
            }
            Some(Codec::Uncompressed) => Some(Compression::Uncompressed),
        })
    }

    /// The layer compression the outputs ask for, if any.
    pub fn compression(&self) -> Option<Compression> {
        self.checked_compression()
            .expect("invariant: checked by Outputs::new")
    }

    /// Whether the outputs ask for OCI (or Docker) media types, if they say.
    pub fn oci_mediatypes(&self) -> Option<bool> {
        self.export.oci_mediatypes
    }

    /// Names the image gets in the local store beyond `-t` (from `type=image,name=`,
    /// except outputs pushed by digest, which name no tag), normalised as the store
    /// names images.
    pub fn image_names(&self) -> Vec<String> {
        let mut seen: BTreeSet<String> = self.tags.iter().map(|t| normal(t)).collect();
        self.outputs
            .iter()
            .filter(|o| matches!(o.kind, Kind::Image { .. }) && !o.push_by_digest)
            .flat_map(|o| o.names.iter())
            .map(|n| normal(n))
            .filter(|n| seen.insert(n.clone()))
            .collect()
    }

    /// An output's names, or the `-t` names when it has none.
    pub fn names_of<'a>(&'a self, o: &'a Output) -> &'a [String] {
        if o.names.is_empty() {
            &self.tags
        } else {
            &o.names
        }
    }

    /// The names `--load` gives the image: its `type=docker` outputs', else `-t`.
    pub fn load_names(&self) -> Vec<String> {
        let named: Vec<String> = self
            .outputs
            .iter()
            .filter(|o| o.kind == Kind::Docker && o.dest.is_none())
            .flat_map(|o| o.names.iter().cloned())
            .collect();
        if named.is_empty() {
            self.tags.clone()
        } else {
            named
        }
    }
}

/// A build of one platform without attestations makes an image manifest, with no
/// index to annotate: BuildKit's error, with the fix.
pub fn single_platform_annotations(annotations: &[Annotation]) -> Result<(), SpecError> {
    match super::annotation::Annotations(annotations).need_index() {
        true => Err(SpecError::new(
            "index annotations not supported for single platform export",
            "build several platforms (--platform A,B) to make an index, or annotate the \
             manifest (manifest:KEY=VALUE)",
        )),
        false => Ok(()),
    }
}

fn merge<T: PartialEq + Copy + std::fmt::Debug>(
    into: &mut Option<T>,
    value: Option<T>,
    key: &str,
) -> Result<(), SpecError> {
    match (*into, value) {
        (Some(a), Some(b)) if a != b => Err(SpecError::new(
            format!("outputs ask for different {key} ({a:?} and {b:?})"),
            "one build makes one encoding: give every output the same value",
        )),
        (None, Some(b)) => {
            *into = Some(b);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `name` as the store names images (`alpine` → `docker.io/library/alpine:latest`).
pub fn normal(name: &str) -> String {
    Reference::parse(name).map_or_else(|_| name.to_owned(), |r| r.to_string())
}

fn check_name(name: &str) -> Result<(), SpecError> {
    let r = Reference::parse(name)
        .map_err(|e| SpecError::new(format!("invalid image name {name:?}: {e}"), ""))?;
    if r.digest().is_some() {
        return Err(SpecError::new(
            format!("image name {name:?} has a digest"),
            "name images by tag: REGISTRY/REPOSITORY[:TAG]",
        ));
    }
    Ok(())
}

fn docker_platforms_error() -> SpecError {
    SpecError::new(
        "docker exporter does not support multiple platforms",
        "use type=oci, or --platform with one platform",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outputs of a `manifold build` with these flags (`-o`, `--push`, `-t`,
    /// `--load`, `--platform`), standard output not a terminal.
    fn outputs(args: &[&str]) -> Result<Outputs, SpecError> {
        let (mut specs, mut tags, mut push, mut load, mut platforms) =
            (Vec::new(), Vec::new(), false, false, 0);
        let mut annotations = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match *a {
                "-o" => specs.push(it.next().unwrap().to_string()),
                "-t" => tags.push(it.next().unwrap().to_string()),
                "--push" => push = true,
                "--load" => load = true,
                "--platform" => platforms = it.next().unwrap().split(',').count(),
                "--annotation" => annotations.push(it.next().unwrap().to_string()),
                other => panic!("unknown test flag {other}"),
            }
        }
        Outputs::new(&OutputFlags {
            specs: &specs,
            push,
            tags: &tags,
            load,
            platforms,
            stdout_is_terminal: false,
            annotations: &annotations,
            attestations: false,
        })
    }

    #[test]
    fn annotations_come_from_the_flag_and_every_output() {
        let o = outputs(&[
            "--annotation",
            "a=1",
            "-o",
            "type=image,name=r/x,annotation-manifest-descriptor.b=2",
            "-o",
            "type=oci,dest=x.tar,annotation.Case=3",
        ])
        .unwrap();
        let keys: Vec<_> = o.annotations.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "Case"]);
        for index in ["index:k=v", "index-descriptor:k=v"] {
            let e = outputs(&["--annotation", index]).unwrap_err();
            assert_eq!(
                e.message,
                "index annotations not supported for single platform export"
            );
            outputs(&[
                "--annotation",
                index,
                "--platform",
                "linux/amd64,linux/arm64",
            ])
            .unwrap();
        }
        let e = outputs(&["-o", "type=image,name=r/x,annotation-index.k=v"]).unwrap_err();
        assert!(e.message.contains("single platform"), "{e}");
        let e = outputs(&["-o", "type=local,dest=d,annotation.k=v"]).unwrap_err();
        assert!(e.message.contains("annotation.k"), "{e}");
    }

    #[test]
    fn push_marks_the_image_output_or_adds_one() {
        let p = outputs(&["--push", "-o", "type=image,name=r/a:1"]).unwrap();
        assert_eq!(p.outputs.len(), 1);
        assert_eq!(p.outputs[0].kind, Kind::Image { push: true });
        let p = outputs(&["--push", "-t", "r/a:1", "-o", "type=oci,dest=x.tar"]).unwrap();
        assert_eq!(p.outputs.len(), 2);
        assert_eq!(p.outputs[1].kind, Kind::Image { push: true });
        assert_eq!(p.names_of(&p.outputs[1]), ["r/a:1"]);
        assert!(outputs(&["--push"]).is_err());
        assert!(
            outputs(&[
                "--push",
                "-t",
                "r/a@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            ])
            .is_err()
        );
    }

    #[test]
    fn a_remote_build_fetches_its_image_unless_it_only_pushes_or_reports() {
        let fetches = |args: &[&str]| outputs(args).unwrap().needs_client();
        assert!(!fetches(&[]));
        assert!(!fetches(&[]));
        assert!(!fetches(&["-t", "r/a:1", "--push"]));
        assert!(outputs(&["-t", "r/a:1", "--push"]).unwrap().push_only());
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
        let p = outputs(&[
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
        assert!(outputs(&["-o", "type=local"]).is_err());
        assert!(outputs(&["-o", "type=local,dest=-"]).is_err());
        assert!(outputs(&["-o", "type=oci,tar=false,dest=-"]).is_err());
        assert!(outputs(&["-o", "-", "-o", "type=docker,dest=-"]).is_err());
        assert!(
            outputs(&[
                "--platform",
                "linux/amd64,linux/arm64",
                "-o",
                "type=docker,dest=x"
            ])
            .is_err()
        );
        let p = outputs(&["-o", "-"]).unwrap();
        assert!(p.uses_stdout());
        // type=docker without dest is --load, for the host's platform.
        let p = outputs(&[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "type=docker,name=a",
        ])
        .unwrap();
        assert!(p.load && !p.uses_stdout());
    }

    #[test]
    fn one_build_makes_one_encoding() {
        let o = outputs(&["-o", "type=image,compression=zstd,compression-level=12"]).unwrap();
        assert_eq!(o.compression(), Some(Compression::Zstd { level: 12 }));
        assert_eq!(o.oci_mediatypes(), None);
        let o = outputs(&[
            "-o",
            "type=oci,dest=x,compression-level=1,oci-mediatypes=false",
        ])
        .unwrap();
        assert_eq!(o.compression(), Some(Compression::Gzip { level: 1 }));
        assert_eq!(o.oci_mediatypes(), Some(false));
        assert_eq!(outputs(&[]).unwrap().compression(), None);
        for bad in [
            &[
                "-o",
                "type=image,compression=zstd",
                "-o",
                "type=oci,dest=x,compression=gzip",
            ][..],
            &["-o", "type=image,compression=zstd,oci-mediatypes=false"],
            &["-o", "type=image,compression=gzip,compression-level=10"],
            &["-o", "type=image,compression=zstd,compression-level=0"],
        ] {
            let e = outputs(bad).unwrap_err();
            assert!(!e.hint.is_empty(), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_tar_is_not_written_to_a_terminal() {
        let e = Outputs::new(&OutputFlags {
            specs: &["-".to_owned()],
            stdout_is_terminal: true,
            ..OutputFlags::default()
        });
        assert!(e.is_ok(), "`-o -` names standard output itself");
        let e = Outputs::new(&OutputFlags {
            specs: &["type=tar".to_owned()],
            stdout_is_terminal: true,
            ..OutputFlags::default()
        })
        .unwrap_err();
        assert!(e.message.contains("terminal"), "{e}");
    }
}
