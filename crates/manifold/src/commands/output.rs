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
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use content::Store;
use export::Compression;
use oci::{Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform, RawDocument, Reference};

use crate::cli::{BuildArgs, Global};
use crate::render::Hinted;

/// The exporter an `-o` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `type=image` (and `type=registry`, `--push`): names in the local store,
    /// pushed when `push` is set.
    Image { push: bool },
    /// `type=oci`: an OCI image layout, as a tar (default) or a directory.
    Oci { tar: bool },
    /// `type=docker`: a `docker save` archive of one platform.
    Docker,
    /// `type=local`: each platform's root filesystem unpacked into a directory.
    Local,
    /// `type=tar`: the same filesystem as one tar.
    Tar,
}

/// Where a file output is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Stdout,
    Path(PathBuf),
}

/// One parsed `-o`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub kind: Kind,
    /// `None` for `type=image`.
    pub dest: Option<Dest>,
    /// `name=` (comma-separated names, in order).
    pub names: Vec<String>,
    pub export: ExportSettings,
}

/// The image-encoding options an output may set (one build makes one encoding, so
/// all outputs must agree).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSettings {
    pub compression: Option<Codec>,
    pub level: Option<i32>,
    pub force: bool,
    pub oci_mediatypes: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Uncompressed,
    Gzip,
    Zstd,
}

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

/// Split one CSV record as Go's `encoding/csv` (and so buildx) does: fields are
/// separated by commas; a field that starts with `"` runs to the closing quote,
/// `""` inside it is one quote; a quote inside an unquoted field is an error.
pub fn csv_fields(s: &str) -> anyhow::Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => bail!("unterminated quote in {s:?}"),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(c) => bail!("unexpected {c:?} after a quoted field in {s:?}"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => bail!("bare \" in a non-quoted field in {s:?}"),
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(key: &str, v: &str) -> anyhow::Result<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => bail!(Hinted::new(
            format!("{key}={v}: not a boolean"),
            format!("write {key}=true or {key}=false"),
        )),
    }
}

fn split_names(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parse one `-o` value.
pub fn parse_output(spec: &str) -> anyhow::Result<Output> {
    let invalid = |why: String, hint: &str| {
        anyhow::Error::new(Hinted::new(
            format!("invalid --output {spec:?}: {why}"),
            hint,
        ))
    };
    const SYNTAX: &str = "write -o type=image|registry|oci|docker|local|tar[,KEY=VALUE…], \
                          -o DIR or -o -";
    if spec == "-" {
        return Ok(Output {
            kind: Kind::Tar,
            dest: Some(Dest::Stdout),
            names: Vec::new(),
            export: ExportSettings::default(),
        });
    }
    let fields = csv_fields(spec).map_err(|e| invalid(e.to_string(), SYNTAX))?;
    if !spec.contains('=') {
        // A bare path: the local exporter into that directory.
        return Ok(Output {
            kind: Kind::Local,
            dest: Some(Dest::Path(PathBuf::from(spec))),
            names: Vec::new(),
            export: ExportSettings::default(),
        });
    }
    let mut ty = None;
    let mut rest = Vec::new();
    for f in fields {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| invalid(format!("{f:?} is not KEY=VALUE"), SYNTAX))?;
        let k = k.trim().to_ascii_lowercase();
        if k == "type" {
            ty = Some(v.to_owned());
        } else {
            rest.push((k, v.to_owned()));
        }
    }
    let ty = ty.ok_or_else(|| invalid("no type=".into(), SYNTAX))?;
    let mut out = Output {
        kind: match ty.as_str() {
            "image" => Kind::Image { push: false },
            "registry" => Kind::Image { push: true },
            "oci" => Kind::Oci { tar: true },
            "docker" => Kind::Docker,
            "local" => Kind::Local,
            "tar" => Kind::Tar,
            other => {
                return Err(invalid(
                    format!("unknown type {other:?}"),
                    "type is image, registry, oci, docker, local or tar",
                ));
            }
        },
        dest: None,
        names: Vec::new(),
        export: ExportSettings::default(),
    };
    let image_like = !matches!(out.kind, Kind::Local | Kind::Tar);
    for (k, v) in rest {
        match (k.as_str(), &mut out.kind) {
            ("dest", Kind::Oci { .. } | Kind::Docker | Kind::Local | Kind::Tar) => {
                out.dest = Some(if v == "-" {
                    Dest::Stdout
                } else {
                    Dest::Path(PathBuf::from(v))
                });
            }
            ("tar", Kind::Oci { tar }) => *tar = parse_bool("tar", &v)?,
            ("tar", Kind::Docker) => {
                if !parse_bool("tar", &v)? {
                    return Err(invalid(
                        "the docker exporter only writes a tar".into(),
                        "use type=oci,tar=false for a directory",
                    ));
                }
            }
            ("push", Kind::Image { push }) => *push = parse_bool("push", &v)?,
            ("name", _) if image_like => out.names.extend(split_names(&v)),
            ("compression", _) if image_like => {
                out.export.compression = Some(match v.as_str() {
                    "gzip" => Codec::Gzip,
                    "zstd" => Codec::Zstd,
                    "uncompressed" => Codec::Uncompressed,
                    other => {
                        return Err(invalid(
                            format!("unknown compression {other:?}"),
                            "compression is gzip, zstd or uncompressed",
                        ));
                    }
                });
            }
            ("compression-level", _) if image_like => {
                out.export.level = Some(v.parse().map_err(|_| {
                    invalid(
                        format!("compression-level={v} is not a number"),
                        "gzip takes 0-9, zstd 1-22",
                    )
                })?);
            }
            ("force-compression", _) if image_like => {
                out.export.force = parse_bool("force-compression", &v)?;
            }
            ("oci-mediatypes", _) if image_like => {
                out.export.oci_mediatypes = Some(parse_bool("oci-mediatypes", &v)?);
            }
            _ => {
                return Err(invalid(
                    format!("type={ty} does not take {k}="),
                    &format!("type={ty} takes {}", keys_of(&out.kind)),
                ));
            }
        }
    }
    Ok(out)
}

fn keys_of(kind: &Kind) -> &'static str {
    match kind {
        Kind::Image { .. } => {
            "name, push, compression, compression-level, force-compression, oci-mediatypes"
        }
        Kind::Oci { .. } => {
            "dest, tar, name, compression, compression-level, force-compression, oci-mediatypes"
        }
        Kind::Docker => {
            "dest, name, compression, compression-level, force-compression, oci-mediatypes"
        }
        Kind::Local | Kind::Tar => "dest",
    }
}

impl Plan {
    /// Parse and check the output flags before anything is built.
    pub fn from_args(args: &BuildArgs) -> anyhow::Result<Plan> {
        let mut outputs = args
            .outputs
            .iter()
            .map(|o| parse_output(o))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if args.push {
            match outputs
                .iter_mut()
                .find(|o| matches!(o.kind, Kind::Image { .. }))
            {
                Some(o) => o.kind = Kind::Image { push: true },
                None => outputs.push(Output {
                    kind: Kind::Image { push: true },
                    dest: None,
                    names: Vec::new(),
                    export: ExportSettings::default(),
                }),
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
            if o.kind == Kind::Docker && platforms > 1 {
                bail!(docker_platforms_error());
            }
            match (&o.kind, &o.dest) {
                (Kind::Image { .. }, _) => {}
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

    /// Whether an output writes to standard output (then nothing else does).
    pub fn uses_stdout(&self) -> bool {
        self.outputs.iter().any(|o| o.dest == Some(Dest::Stdout))
    }

    fn export_compression(&self) -> anyhow::Result<Option<Compression>> {
        let level = self.export.level;
        Ok(match self.export.compression {
            None if level.is_none() => None,
            None | Some(Codec::Gzip) => {
                let level = level.unwrap_or(6);
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

    /// Write every output of the build `built`, then the reports; `quiet` prints the
    /// image digest (the index's) on standard output unless an output uses it.
    pub fn emit(
        &self,
        global: &Global,
        store: &Store,
        rt: &tokio::runtime::Runtime,
        built: &builder::BuildOutput,
        quiet: bool,
    ) -> anyhow::Result<()> {
        let opts = self.export_options(builder::ExportOptions::default());
        let index = if self.export.force {
            let c = opts.compression;
            force_compression(store, built, c, opts.oci_mediatypes, &self.tags)?
        } else {
            built.index.clone()
        };
        let manifests = index_manifests(store, &index)?;
        for name in self.image_names() {
            export::tag(store, &name, &index)
                .with_context(|| format!("cannot name the image {name}"))?;
        }
        let pushes: Vec<&String> = self
            .outputs
            .iter()
            .filter(|o| o.kind == (Kind::Image { push: true }))
            .flat_map(|o| self.names_of(o))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !pushes.is_empty() {
            let client = super::registry::client(global)?;
            rt.block_on(async {
                for name in pushes {
                    let r = Reference::parse(name)
                        .with_context(|| format!("invalid image name {name:?}"))?;
                    export::push(&client, store, &index, &r).await?;
                    eprintln!("pushed {name}@{}", index.digest);
                }
                anyhow::Ok(())
            })?;
        }
        for o in &self.outputs {
            self.write_output(store, &index, &manifests, o)?;
        }
        if self.load {
            load(store, &index, &manifests, &self.tags)?;
        }
        if let Some(path) = &self.iidfile {
            fs::write(path, index.digest.to_string())
                .with_context(|| format!("cannot write --iidfile {}", path.display()))?;
        }
        if let Some(path) = &self.metadata_file {
            let mut names: Vec<String> = self.tags.iter().map(|t| normal(t)).collect();
            names.extend(self.image_names());
            let mut meta = serde_json::Map::new();
            meta.insert(
                "containerimage.descriptor".into(),
                serde_json::to_value(&index).expect("a descriptor always serialises"),
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
                .with_context(|| format!("cannot write --metadata-file {}", path.display()))?;
        }
        if quiet && !self.uses_stdout() {
            println!("{}", index.digest);
        }
        Ok(())
    }

    fn write_output(
        &self,
        store: &Store,
        index: &Descriptor,
        manifests: &[Descriptor],
        o: &Output,
    ) -> anyhow::Result<()> {
        let names = self.names_of(o);
        match (&o.kind, &o.dest) {
            (Kind::Image { .. }, _) => Ok(()),
            (Kind::Oci { tar: false }, Some(Dest::Path(dir))) => {
                let name = names.first().map(|n| oci_ref_name(n));
                export::write_oci_layout_dir(store, index, dir, name.as_deref())
                    .with_context(|| format!("cannot write the OCI layout {}", dir.display()))?;
                Ok(())
            }
            (Kind::Oci { .. }, Some(dest)) => {
                let name = names.first().map(|n| oci_ref_name(n));
                write_to(dest, "OCI layout tar", |w| {
                    export::write_oci_layout_tar(store, index, w, name.as_deref())?;
                    Ok(())
                })
            }
            (Kind::Docker, Some(dest)) => {
                let [manifest] = manifests else {
                    bail!(docker_platforms_error());
                };
                let tags: Vec<&str> = names.iter().map(String::as_str).collect();
                write_to(dest, "docker archive", |w| {
                    export::write_docker_archive(store, manifest, &tags, w)?;
                    Ok(())
                })
            }
            (Kind::Local, Some(Dest::Path(dir))) => {
                for (m, sub) in per_platform(store, manifests)? {
                    let target = match &sub {
                        Some(s) => dir.join(s),
                        None => dir.clone(),
                    };
                    unpack(store, &m, &target)?;
                }
                Ok(())
            }
            (Kind::Tar, Some(dest)) => write_to(dest, "filesystem tar", |w| {
                write_fs_tar(store, manifests, w)
            }),
            _ => unreachable!("invariant: Plan::check gives every file output a destination"),
        }
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

/// The `org.opencontainers.image.ref.name` buildx gives an OCI layout's entry: the
/// tag of the image's name.
fn oci_ref_name(name: &str) -> String {
    Reference::parse(name)
        .ok()
        .and_then(|r| r.tag().map(str::to_owned))
        .unwrap_or_else(|| "latest".to_owned())
}

/// Write through `f` to standard output or to a file (a temp file beside it,
/// renamed when complete).
fn write_to(
    dest: &Dest,
    what: &str,
    f: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match dest {
        Dest::Stdout => {
            let mut w = BufWriter::new(io::stdout().lock());
            f(&mut w)?;
            w.flush()
                .with_context(|| format!("cannot write the {what} to standard output"))
        }
        Dest::Path(path) => {
            let name = path
                .file_name()
                .with_context(|| format!("{} is not a file name", path.display()))?;
            if path.is_dir() {
                bail!(Hinted::new(
                    format!("{} is a directory", path.display()),
                    "give dest= a file name",
                ));
            }
            let tmp = path.with_file_name(format!(
                ".{}.manifold-{}",
                name.to_string_lossy(),
                std::process::id()
            ));
            let result = (|| {
                let file = fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                let mut w = BufWriter::new(file);
                f(&mut w)?;
                let file = w
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                file.sync_all()
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                fs::rename(&tmp, path)
                    .with_context(|| format!("cannot rename {} into place", tmp.display()))
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result.with_context(|| format!("cannot write the {what} {}", path.display()))
        }
    }
}

fn read_manifest(store: &Store, desc: &Descriptor) -> anyhow::Result<ImageManifest> {
    let bytes = store.read_document(&desc.digest)?;
    Ok(RawDocument::<ImageManifest>::parse(bytes)
        .with_context(|| format!("manifest {} is unreadable", desc.digest))?
        .value()
        .clone())
}

fn read_config(store: &Store, m: &ImageManifest) -> anyhow::Result<ImageConfig> {
    let bytes = store.read_document(&m.config.digest)?;
    Ok(RawDocument::<ImageConfig>::parse(bytes)
        .with_context(|| format!("image config {} is unreadable", m.config.digest))?
        .value()
        .clone())
}

/// The manifests an index lists (a manifest stands for itself).
fn index_manifests(store: &Store, index: &Descriptor) -> anyhow::Result<Vec<Descriptor>> {
    if oci::media::kind(&index.media_type) != oci::media::Kind::Index {
        return Ok(vec![index.clone()]);
    }
    let bytes = store.read_document(&index.digest)?;
    Ok(RawDocument::<ImageIndex>::parse(bytes)
        .with_context(|| format!("index {} is unreadable", index.digest))?
        .value()
        .manifests
        .clone())
}

fn platform_of(store: &Store, m: &Descriptor) -> anyhow::Result<Platform> {
    match &m.platform {
        Some(p) => Ok(p.clone()),
        None => Ok(read_config(store, &read_manifest(store, m)?)?.platform()),
    }
}

/// Each manifest with its subdirectory (`linux_amd64`, as buildx names them) when
/// there are several platforms.
fn per_platform(
    store: &Store,
    manifests: &[Descriptor],
) -> anyhow::Result<Vec<(Descriptor, Option<String>)>> {
    if let [one] = manifests {
        return Ok(vec![(one.clone(), None)]);
    }
    manifests
        .iter()
        .map(|m| {
            let dir = platform_of(store, m)?.to_string().replace('/', "_");
            Ok((m.clone(), Some(dir)))
        })
        .collect()
}

/// Unpack the image `manifest` into `dir` (created when missing), in-root, with
/// whiteouts applied.
fn unpack(store: &Store, manifest: &Descriptor, dir: &Path) -> anyhow::Result<()> {
    let m = read_manifest(store, manifest)?;
    let config = read_config(store, &m)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != m.layers.len() {
        bail!(
            "image {} has {} layers but {} diff_ids",
            manifest.digest,
            m.layers.len(),
            diff_ids.len()
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let root =
        archive::Root::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let opts = if rustix::process::geteuid().is_root() {
        archive::ApplyOptions::privileged()
    } else {
        archive::ApplyOptions::rootless()
    };
    for (layer, diff_id) in m.layers.iter().zip(diff_ids) {
        let blob = store.open_blob(&layer.digest)?;
        let expected = archive::Expected {
            digest: Some(layer.digest.clone()),
            size: Some(layer.size),
            diff_id: Some(diff_id.clone()),
        };
        archive::apply_blob(&root, blob, Some(&layer.media_type), &expected, &opts).with_context(
            || {
                format!(
                    "cannot unpack layer {} into {}",
                    layer.digest,
                    dir.display()
                )
            },
        )?;
    }
    Ok(())
}

/// A directory under the state root removed (with its contents) on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(store: &Store) -> anyhow::Result<ScratchDir> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = store
            .root()
            .join("tmp")
            .join(format!("output-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The root filesystem of each platform as one deterministic tar (under
/// `linux_amd64/`… when there are several).
fn write_fs_tar(store: &Store, manifests: &[Descriptor], w: &mut dyn Write) -> anyhow::Result<()> {
    let scratch = ScratchDir::new(store)?;
    let empty = scratch.0.join("empty");
    fs::create_dir(&empty).with_context(|| format!("cannot create {}", empty.display()))?;
    let mut changes = Vec::new();
    for (i, (m, sub)) in per_platform(store, manifests)?.into_iter().enumerate() {
        let fs_dir = scratch.0.join(format!("fs{i}"));
        unpack(store, &m, &fs_dir)?;
        let diff = archive::diff_dirs(&empty, &fs_dir)
            .with_context(|| format!("cannot read {}", fs_dir.display()))?;
        let Some(sub) = sub else {
            changes.extend(diff);
            continue;
        };
        changes.push(archive::Change::Add(archive::Entry {
            path: PathBuf::from(&sub),
            kind: archive::EntryKind::Dir,
            meta: archive::Metadata {
                mode: 0o755,
                ..archive::Metadata::default()
            },
        }));
        let prefixed = |p: PathBuf| {
            let rel = p.strip_prefix("/").map(Path::to_path_buf).unwrap_or(p);
            Path::new(&sub).join(rel)
        };
        changes.extend(diff.into_iter().map(|c| match c {
            archive::Change::Add(mut e) => {
                e.path = prefixed(e.path);
                archive::Change::Add(e)
            }
            archive::Change::Modify(mut e) => {
                e.path = prefixed(e.path);
                archive::Change::Modify(e)
            }
            archive::Change::Delete(p) => archive::Change::Delete(prefixed(p)),
            archive::Change::OpaqueDir(p) => archive::Change::OpaqueDir(prefixed(p)),
        }));
    }
    archive::write_layer(w, changes, &archive::WriteOptions::default())
        .context("cannot write the filesystem tar")?;
    Ok(())
}

/// `force-compression=true`: every layer in `compression`. Base layers in another
/// compression are recompressed; the manifests and the index are written anew and
/// the `-t` names moved to the new index. Returns the index to output.
fn force_compression(
    store: &Store,
    built: &builder::BuildOutput,
    compression: Compression,
    oci_mediatypes: bool,
    tags: &[String],
) -> anyhow::Result<Descriptor> {
    let want = compression.media_type(oci_mediatypes);
    let lease = store.lease()?;
    let lopts = export::LayerOptions {
        compression,
        source_date_epoch: None,
        oci_mediatypes,
        use_cache: true,
    };
    let mut changed = false;
    let mut manifests = Vec::new();
    for desc in &built.manifests {
        let mut m = read_manifest(store, desc)?;
        let mut touched = false;
        for layer in &mut m.layers {
            if oci::media::kind(&layer.media_type) == oci::media::kind(want) {
                store.protect(&lease, &layer.digest)?;
                continue;
            }
            let codec =
                archive::Compression::from_media_type(&layer.media_type).with_context(|| {
                    format!("layer {} has media type {}", layer.digest, layer.media_type)
                })?;
            let blob = io::BufReader::new(store.open_blob(&layer.digest)?);
            let tar = archive::decompress(blob, Some(codec))?;
            let l = export::export_tar(store, &lease, tar, &lopts)
                .with_context(|| format!("cannot recompress layer {}", layer.digest))?;
            *layer = l.descriptor;
            touched = true;
        }
        if !touched {
            manifests.push(desc.clone());
            continue;
        }
        changed = true;
        store.protect(&lease, &m.config.digest)?;
        let media_type = m
            .media_type
            .clone()
            .unwrap_or_else(|| desc.media_type.clone());
        let doc = RawDocument::from_value(m);
        let mut new = store.put_bytes(&lease, &media_type, doc.bytes())?;
        new.platform = desc.platform.clone();
        manifests.push(new);
    }
    if !changed {
        return Ok(built.index.clone());
    }
    let index = export::assemble_index(store, &lease, manifests, Default::default())?;
    for t in tags {
        export::tag(store, &normal(t), &index)?;
    }
    Ok(index)
}

/// `--load`: hand the host platform's image to docker or podman when one answers.
fn load(
    store: &Store,
    index: &Descriptor,
    manifests: &[Descriptor],
    tags: &[String],
) -> anyhow::Result<()> {
    let Some(cli) = ["docker", "podman"].into_iter().find(|c| engine_answers(c)) else {
        let how = match tags.first() {
            Some(t) => format!("`manifold run {t}` runs it"),
            None => format!("`manifold run {}` runs it", index.digest),
        };
        eprintln!("no docker or podman engine answered: the image is in manifold's store ({how})");
        return Ok(());
    };
    let host = Platform::host();
    let chosen = match manifests {
        [one] => one.clone(),
        _ => {
            let listed = ImageIndex {
                manifests: manifests.to_vec(),
                ..ImageIndex::new()
            };
            listed
                .manifest_for(&host)
                .cloned()
                .unwrap_or_else(|| manifests[0].clone())
        }
    };
    let platform = platform_of(store, &chosen)?;
    let mut child = Command::new(cli)
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{cli} load`"))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stdin = child.stdin.take().expect("invariant: stdin was piped");
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let written = export::write_docker_archive(store, &chosen, &tag_refs, BufWriter::new(stdin))
        .map_err(anyhow::Error::from)
        .and_then(|w| {
            w.into_inner()
                .map_err(|e| anyhow::Error::new(e.into_error()))
                .map(drop)
        });
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{cli} load`"))?;
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "`{cli} load` failed ({status}): {}",
            format!("{}{}", err.trim(), out.trim()).trim()
        );
    }
    written.with_context(|| format!("cannot send the image to `{cli} load`"))?;
    if manifests.len() > 1 {
        eprintln!("loaded {platform} into {cli}; the other platforms stay in manifold's store");
    } else {
        eprintln!("loaded {platform} into {cli}");
    }
    Ok(())
}

/// Whether `cli` is on PATH and `cli info` succeeds within 30 s.
fn engine_answers(cli: &str) -> bool {
    let Ok(mut child) = Command::new(cli)
        .arg("info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_follow_go_csv() {
        assert_eq!(
            csv_fields(r#"type=image,"name=a:1,b:2",push=true"#).unwrap(),
            ["type=image", "name=a:1,b:2", "push=true"]
        );
        assert_eq!(csv_fields(r#""a""b",c"#).unwrap(), ["a\"b", "c"]);
        assert_eq!(csv_fields("a,,b").unwrap(), ["a", "", "b"]);
        assert!(csv_fields(r#"a"b"#).is_err());
        assert!(csv_fields(r#""ab"#).is_err());
        assert!(csv_fields(r#""a"b"#).is_err());
    }

    #[test]
    fn outputs_parse_as_buildx_does() {
        let o = parse_output("-").unwrap();
        assert_eq!((o.kind, o.dest), (Kind::Tar, Some(Dest::Stdout)));
        let o = parse_output("out/dir").unwrap();
        assert_eq!(
            (o.kind, o.dest),
            (Kind::Local, Some(Dest::Path("out/dir".into())))
        );
        let o = parse_output(r#"type=image,"name=r/a:1,r/b:2",push=true"#).unwrap();
        assert_eq!(o.kind, Kind::Image { push: true });
        assert_eq!(o.names, ["r/a:1", "r/b:2"]);
        let o = parse_output("type=registry").unwrap();
        assert_eq!(o.kind, Kind::Image { push: true });
        let o = parse_output("type=oci,dest=x.tar").unwrap();
        assert_eq!(o.kind, Kind::Oci { tar: true });
        let o = parse_output("type=oci,dest=d,tar=false").unwrap();
        assert_eq!(o.kind, Kind::Oci { tar: false });
        let o = parse_output("type=docker,dest=-").unwrap();
        assert_eq!(o.dest, Some(Dest::Stdout));
        let o = parse_output("type=image,compression=zstd,compression-level=5,oci-mediatypes=true")
            .unwrap();
        assert_eq!(o.export.compression, Some(Codec::Zstd));
        assert_eq!(o.export.level, Some(5));
        assert_eq!(o.export.oci_mediatypes, Some(true));
        assert!(parse_output("type=local,name=x,dest=d").is_err());
        assert!(parse_output("type=image,push=maybe").is_err());
        assert!(parse_output("type=nope").is_err());
        assert!(parse_output("dest=x").is_err());
        assert!(parse_output("type=image,compression=lz4").is_err());
    }

    #[test]
    fn oci_ref_name_is_the_tag() {
        assert_eq!(oci_ref_name("localhost:5000/app:v1"), "v1");
        assert_eq!(oci_ref_name("app"), "latest");
    }
}
