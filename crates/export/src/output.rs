//! Where a build's result goes: the exporters an `-o` names, in buildx's syntax.
//!
//! `-o` takes one CSV record of `KEY=VALUE` fields (a field may be quoted, so
//! `"name=a,b"` is one field), or a bare directory (`type=local`), or `-`
//! (`type=tar` on standard output). [`parse_output`] turns one into an [`Output`],
//! which is what a build request carries, to a builder here or on a daemon.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod annotation;
mod plan;

use annotation::Annotation;

pub use plan::{OutputFlags, Outputs, normal, single_platform_annotations};

/// The exporter an `-o` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Kind {
    /// `type=image` (and `type=registry`, `--push`): names in the local store,
    /// pushed when `push` is set.
    Image { push: bool },
    /// `type=oci`: an OCI image layout, as a tar (default) or a directory.
    Oci { tar: bool },
    /// `type=docker`: a `docker save` archive of one platform; without a
    /// destination, loaded into docker (`--load`).
    Docker,
    /// `type=local`: each platform's root filesystem unpacked into a directory.
    Local,
    /// `type=tar`: the same filesystem as one tar.
    Tar,
}

/// Where a file output is written, on the client's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dest {
    Stdout,
    Path(PathBuf),
}

/// One exporter of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub kind: Kind,
    /// `None` for `type=image`.
    pub dest: Option<Dest>,
    /// `name=` (comma-separated names, in order).
    pub names: Vec<String>,
    pub export: ExportSettings,
    /// `push-by-digest=true`: pushed to each name's repository by digest, no tag.
    #[serde(default)]
    pub push_by_digest: bool,
    /// `name-canonical=true`: each name is also reported (and stored) as
    /// `REPOSITORY@DIGEST`.
    #[serde(default)]
    pub name_canonical: bool,
    /// `annotation.*` and `annotation-TYPE.*` keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
}

impl Output {
    /// `type=image,push=true` with no names of its own: pushes the `-t` names.
    pub fn push() -> Output {
        Output {
            kind: Kind::Image { push: true },
            dest: None,
            names: Vec::new(),
            export: ExportSettings::default(),
            push_by_digest: false,
            name_canonical: false,
            annotations: Vec::new(),
        }
    }

    /// What the output writes, for messages: `filesystem tar`, `OCI layout tar`, …
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Image { .. } => "image",
            Kind::Oci { tar: true } => "OCI layout tar",
            Kind::Oci { tar: false } => "OCI layout",
            Kind::Docker => "docker archive",
            Kind::Local => "root filesystem",
            Kind::Tar => "filesystem tar",
        }
    }

    /// Whether this output pushes and leaves nothing to write on the client's
    /// side: no names in its store, no file.
    pub fn only_pushes(&self) -> bool {
        self.kind == (Kind::Image { push: true }) && (self.names.is_empty() || self.push_by_digest)
    }
}

/// Whether a build with `outputs` and the `-t` names `tags` leaves anything to do
/// where it was asked for, besides pushing: a file output, `--load`, or names in the
/// client's store. A daemon sends such a build's image back.
pub fn needs_client(outputs: &[Output], tags: &[String]) -> bool {
    let push_only = !outputs.is_empty() && outputs.iter().all(Output::only_pushes);
    !push_only && (!outputs.is_empty() || !tags.is_empty())
}

/// The image-encoding options an output may set (one build makes one encoding, so
/// all outputs must agree).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSettings {
    pub compression: Option<Codec>,
    pub level: Option<i32>,
    pub force: bool,
    pub oci_mediatypes: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    Uncompressed,
    Gzip,
    Zstd,
}

/// A flag value that does not parse: what is wrong, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub message: String,
    /// The fix, shown as a `hint:` line; empty when there is none to give.
    pub hint: String,
}

impl SpecError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> SpecError {
        SpecError {
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn plain(message: String) -> SpecError {
        SpecError::new(message, "")
    }
}

/// Split one CSV record as Go's `encoding/csv` (and so buildx) does: fields are
/// separated by commas; a field that starts with `"` runs to the closing quote,
/// `""` inside it is one quote; a quote inside an unquoted field is an error.
pub fn csv_fields(s: &str) -> Result<Vec<String>, SpecError> {
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
                    None => return Err(SpecError::plain(format!("unterminated quote in {s:?}"))),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(c) => {
                    return Err(SpecError::plain(format!(
                        "unexpected {c:?} after a quoted field in {s:?}"
                    )));
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err(SpecError::plain(format!(
                            "bare \" in a non-quoted field in {s:?}"
                        )));
                    }
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(key: &str, v: &str) -> Result<bool, SpecError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(SpecError::new(
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
pub fn parse_output(spec: &str) -> Result<Output, SpecError> {
    let invalid =
        |why: String, hint: &str| SpecError::new(format!("invalid --output {spec:?}: {why}"), hint);
    let boolean = |k: &str, v: &str| parse_bool(k, v).map_err(|e| invalid(e.message, &e.hint));
    const SYNTAX: &str = "write -o type=image|registry|oci|docker|local|tar[,KEY=VALUE…], \
                          -o DIR or -o -";
    if spec == "-" {
        return Ok(Output {
            kind: Kind::Tar,
            dest: Some(Dest::Stdout),
            names: Vec::new(),
            export: ExportSettings::default(),
            push_by_digest: false,
            name_canonical: false,
            annotations: Vec::new(),
        });
    }
    let fields = csv_fields(spec).map_err(|e| invalid(e.message, SYNTAX))?;
    if !spec.contains('=') {
        // A bare path: the local exporter into that directory.
        return Ok(Output {
            kind: Kind::Local,
            dest: Some(Dest::Path(PathBuf::from(spec))),
            names: Vec::new(),
            export: ExportSettings::default(),
            push_by_digest: false,
            name_canonical: false,
            annotations: Vec::new(),
        });
    }
    let mut ty = None;
    let mut rest = Vec::new();
    for f in fields {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| invalid(format!("{f:?} is not KEY=VALUE"), SYNTAX))?;
        if k.trim().eq_ignore_ascii_case("type") {
            ty = Some(v.to_owned());
        } else {
            rest.push((k.trim().to_owned(), v.to_owned()));
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
        push_by_digest: false,
        name_canonical: false,
        annotations: Vec::new(),
    };
    let image_like = !matches!(out.kind, Kind::Local | Kind::Tar);
    for (key, v) in rest {
        // Annotation keys keep their case; the exporter's own keys do not care.
        if image_like && let Some(a) = annotation::parse_output_key(&key, &v) {
            out.annotations
                .push(a.map_err(|e| invalid(e.message, &e.hint))?);
            continue;
        }
        let k = key.to_ascii_lowercase();
        match (k.as_str(), &mut out.kind) {
            ("dest", Kind::Oci { .. } | Kind::Docker | Kind::Local | Kind::Tar) => {
                out.dest = Some(if v == "-" {
                    Dest::Stdout
                } else {
                    Dest::Path(PathBuf::from(v))
                });
            }
            ("tar", Kind::Oci { tar }) => *tar = boolean("tar", &v)?,
            ("tar", Kind::Docker) => {
                if !boolean("tar", &v)? {
                    return Err(invalid(
                        "the docker exporter only writes a tar".into(),
                        "use type=oci,tar=false for a directory",
                    ));
                }
            }
            ("push", Kind::Image { push }) => *push = boolean("push", &v)?,
            ("push-by-digest", Kind::Image { .. }) => {
                out.push_by_digest = boolean("push-by-digest", &v)?;
            }
            ("name-canonical", Kind::Image { .. }) => {
                out.name_canonical = boolean("name-canonical", &v)?;
            }
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
                out.export.force = boolean("force-compression", &v)?;
            }
            ("oci-mediatypes", _) if image_like => {
                out.export.oci_mediatypes = Some(boolean("oci-mediatypes", &v)?);
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
            "name, push, push-by-digest, name-canonical, compression, compression-level, \
             force-compression, oci-mediatypes, annotation.*"
        }
        Kind::Oci { .. } => {
            "dest, tar, name, compression, compression-level, force-compression, \
             oci-mediatypes, annotation.*"
        }
        Kind::Docker => {
            "dest, name, compression, compression-level, force-compression, oci-mediatypes, \
             annotation.*"
        }
        Kind::Local | Kind::Tar => "dest",
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
}
