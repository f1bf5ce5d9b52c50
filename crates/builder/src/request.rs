//! [`BuildRequest`]: one build, as the command line asks for it, the same value for a
//! build in this process and on a daemon (where it arrives as JSON, unchanged).
//!
//! Only what cannot cross a wire stays out of it, in [`Session`]: the directories
//! the local contexts are read from on this side, and the tap a push streams
//! layers through.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use export::Compression;
use export::output::{Output, SpecError, csv_fields, needs_client, parse_bool};
use serde::{Deserialize, Serialize};
use worker::exec::Entitlements;

use crate::secret::Secret;

/// Everything one build is asked to do: what to build (the Dockerfile and the
/// frontend's options), what it may use (secrets, entitlements, `--pull`), and where
/// the result goes (tags, outputs, export encoding, cache, attestations).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The Dockerfile's file name (`Dockerfile` when empty), as provenance names it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dockerfile_name: String,
    pub options: frontend::BuildOptions,
    /// `--secret id=…`: the values, for this build only (`Debug` shows none).
    pub secrets: BTreeMap<String, Secret>,
    /// What `--allow` asks for (a daemon grants only what it was started with).
    pub allow: Entitlements,
    /// `--pull`: ask the registry for every base image.
    pub pull: bool,
    /// `-t`: the names of the image, in the store where the build was asked for,
    /// and for the outputs that have none of their own.
    pub tags: Vec<String>,
    /// `-o`, `--push`, `--load` (a `type=docker` output without destination).
    pub outputs: Vec<Output>,
    pub export: ExportOptions,
    /// `--cache-from`: where earlier builds' cache is read from.
    pub cache_from: Vec<CacheSpec>,
    /// `--cache-to`: where this build's cache is written.
    pub cache_to: Vec<CacheSpec>,
    /// `--provenance`, `--sbom`, `--attest`.
    pub attestations: Vec<Attestation>,
}

impl BuildRequest {
    /// The Dockerfile's file name, `Dockerfile` when the request names none.
    pub fn dockerfile_file_name(&self) -> &str {
        match self.dockerfile_name.as_str() {
            "" => "Dockerfile",
            n => n,
        }
    }

    /// The request as JSON, each secret's value replaced by `sha256:<hex>` of its
    /// bytes: what an audit log may keep.
    pub fn audit_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("invariant: a request serialises");
        if let Some(serde_json::Value::Object(secrets)) = v.get_mut("secrets") {
            for (id, value) in secrets.iter_mut() {
                let bytes = &self.secrets[id].0;
                *value = oci::Digest::sha256(bytes).to_string().into();
            }
        }
        v
    }

    /// Whether the result is needed where the build was asked for (a file output,
    /// `--load`, names in that store), not only pushed.
    pub fn needs_client(&self) -> bool {
        needs_client(&self.outputs, &self.tags)
    }
}

/// How images are encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportOptions {
    pub compression: Compression,
    pub oci_mediatypes: bool,
    /// `SOURCE_DATE_EPOCH`: file times in new layers and `created` times.
    pub source_date_epoch: Option<i64>,
    /// `--annotation` and the outputs' `annotation*` keys.
    #[serde(default)]
    pub annotations: Vec<export::annotation::Annotation>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            compression: Compression::DEFAULT,
            oci_mediatypes: true,
            source_date_epoch: None,
            annotations: Vec::new(),
        }
    }
}

/// A directory a `Source::Local` of that name reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDir {
    pub dir: PathBuf,
}

/// What a build uses on the side it runs on, beyond its request.
#[derive(Debug, Default, Clone)]
pub struct Session {
    /// `context` and each `--build-context NAME=DIR`, by the names the request's
    /// named contexts use.
    pub locals: HashMap<String, LocalDir>,
    /// The build runs for a client elsewhere (a daemon's): the result is not named
    /// by the request's tags or image names in this store; the client names it in
    /// its own.
    pub for_remote_client: bool,
}

/// The ignore patterns of the context `dir` for the Dockerfile named `dockerfile`
/// (`<Dockerfile>.dockerignore`, else `.dockerignore`), as lines for the frontend.
/// Read as [`read_context_file`] reads: in the context, a regular file, bounded.
pub fn context_ignore_patterns(
    dir: &std::path::Path,
    dockerfile: &str,
) -> Result<Vec<String>, SpecError> {
    for c in ignore::ignore_file_candidates(dockerfile) {
        let Some(bytes) = read_context_file(dir, &c, "ignore file", MAX_IGNORE_FILE)? else {
            continue;
        };
        let p = dir.join(&c);
        let text = String::from_utf8(bytes).map_err(|e| {
            SpecError::new(
                format!(
                    "ignore file {} is not UTF-8 (byte {})",
                    p.display(),
                    e.utf8_error().valid_up_to()
                ),
                "save it as UTF-8",
            )
        })?;
        ignore::parse_ignore_file(&text)
            .map_err(|e| SpecError::new(format!("invalid ignore file {}: {e}", p.display()), ""))?;
        return Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect());
    }
    Ok(Vec::new())
}

/// The largest `.dockerignore` read (a real one is a few KiB).
pub const MAX_IGNORE_FILE: u64 = 1 << 20;
/// The largest Dockerfile read (a real one is a few KiB).
pub const MAX_DOCKERFILE: u64 = 4 << 20;

/// The file `name` of the build context `dir`, as the client reads its control files
/// (the Dockerfile in it, `.dockerignore`): `None` when there is none. A symbolic link
/// that leads out of the context, a FIFO, a device or a directory, and a file over
/// `limit` bytes are refused, naming the file; nothing is read from outside the
/// context and nothing blocks.
pub fn read_context_file(
    dir: &std::path::Path,
    name: &str,
    what: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, SpecError> {
    let path = dir.join(name);
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(None);
    };
    if meta.file_type().is_symlink() {
        let inside = match (std::fs::canonicalize(&path), std::fs::canonicalize(dir)) {
            (Ok(target), Ok(root)) => target.starts_with(&root).then_some(target),
            // A dangling link: nothing to read.
            (Err(_), _) => return Ok(None),
            (_, Err(_)) => None,
        };
        if inside.is_none() {
            let to = std::fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            return Err(SpecError::new(
                format!(
                    "{what} {} is a symbolic link out of the build context (to {to})",
                    path.display()
                ),
                "replace the link with the file itself, inside the context",
            ));
        }
    }
    read_bounded(&path, what, limit).map(Some)
}

/// The regular file at `path` (followed if a link), at most `limit` bytes: a FIFO, a
/// device or a directory is refused without blocking, and a longer file is refused.
pub fn read_bounded(path: &std::path::Path, what: &str, limit: u64) -> Result<Vec<u8>, SpecError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let fail =
        |why: String| SpecError::new(format!("cannot read {what} {}: {why}", path.display()), "");
    // Non-blocking, so a FIFO opens at once and is refused below instead of waiting
    // for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    let meta = f.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(SpecError::new(
            format!("{what} {} is not a regular file", path.display()),
            "a FIFO, a socket, a device or a directory is never read as one",
        ));
    }
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(SpecError::new(
            format!(
                "{what} {} is larger than {} MiB",
                path.display(),
                limit >> 20
            ),
            "no real one is; check what the path names",
        ));
    }
    Ok(bytes)
}

/// `--allow`: the entitlements a build asks for.
pub fn parse_allow(given: &[String]) -> Result<Entitlements, SpecError> {
    let mut e = Entitlements::default();
    for a in given {
        match a.as_str() {
            "network.host" => e.network_host = true,
            "security.insecure" => e.security_insecure = true,
            other => {
                return Err(SpecError::new(
                    format!("unknown entitlement {other:?}"),
                    "--allow takes network.host or security.insecure",
                ));
            }
        }
    }
    Ok(e)
}

/// `--network`: the network of `RUN`s that do not choose one.
pub fn parse_network(given: Option<&str>) -> Result<graph::op::Network, SpecError> {
    Ok(match given {
        None | Some("default") => graph::op::Network::Default,
        Some("none") => graph::op::Network::None,
        Some("host") => graph::op::Network::Host,
        Some(other) => {
            return Err(SpecError::new(
                format!("unknown network mode {other:?}"),
                "--network takes default, none or host",
            ));
        }
    })
}

/// The store name of the image an `oci-layout://` named context `name` chose:
/// where a build here imports it, and where a daemon puts what its client sends.
pub fn layout_context_name(name: &str, digest: &oci::Digest) -> String {
    format!(
        "manifold.local/build-context/{}:{}",
        name.to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>(),
        &digest.hex()[..12]
    )
}

/// A cache backend, as `--cache-from` and `--cache-to` name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    Registry,
    Local,
    Inline,
    Gha,
    S3,
    Azblob,
}

impl CacheKind {
    /// As `type=` names it.
    pub fn name(self) -> &'static str {
        match self {
            CacheKind::Registry => "registry",
            CacheKind::Local => "local",
            CacheKind::Inline => "inline",
            CacheKind::Gha => "gha",
            CacheKind::S3 => "s3",
            CacheKind::Azblob => "azblob",
        }
    }
}

/// One `--cache-from` or `--cache-to`: `type=registry,ref=…,mode=max`, or a bare
/// reference (`type=registry,ref=VALUE`), as buildx parses them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSpec {
    pub kind: CacheKind,
    /// The other keys, as given (`ref`, `mode`, `dest`, `src`, …).
    pub attrs: BTreeMap<String, String>,
}

impl CacheSpec {
    /// Each of `specs`, parsed.
    pub fn parse_all(specs: &[String]) -> Result<Vec<CacheSpec>, SpecError> {
        specs.iter().map(|s| CacheSpec::parse(s)).collect()
    }

    pub fn parse(spec: &str) -> Result<CacheSpec, SpecError> {
        let syntax = "write type=registry|local|inline|gha|s3|azblob[,KEY=VALUE…], or a reference";
        let invalid =
            |why: String| SpecError::new(format!("invalid cache {spec:?}: {why}"), syntax);
        if !spec.contains('=') {
            if spec.is_empty() {
                return Err(invalid("empty".into()));
            }
            return Ok(CacheSpec {
                kind: CacheKind::Registry,
                attrs: BTreeMap::from([("ref".to_owned(), spec.to_owned())]),
            });
        }
        let attrs = key_values(spec).map_err(|e| invalid(e.message))?;
        let mut attrs = attrs;
        let kind = match attrs.remove("type").as_deref() {
            Some("registry") => CacheKind::Registry,
            Some("local") => CacheKind::Local,
            Some("inline") => CacheKind::Inline,
            Some("gha") => CacheKind::Gha,
            Some("s3") => CacheKind::S3,
            Some("azblob") => CacheKind::Azblob,
            Some(other) => return Err(invalid(format!("unknown type {other:?}"))),
            None => return Err(invalid("no type=".into())),
        };
        Ok(CacheSpec { kind, attrs })
    }
}

/// What an attestation states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationKind {
    Provenance,
    Sbom,
}

/// One attestation to attach (or, `disabled`, not to attach) to each image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub kind: AttestationKind,
    pub disabled: bool,
    /// The other keys, as given (`mode`, `generator`, …).
    pub attrs: BTreeMap<String, String>,
}

impl Attestation {
    /// `--attest type=provenance|sbom[,KEY=VALUE…]`.
    pub fn parse(spec: &str) -> Result<Attestation, SpecError> {
        let invalid = |why: String| {
            SpecError::new(
                format!("invalid --attest {spec:?}: {why}"),
                "write --attest type=provenance|sbom[,KEY=VALUE…]",
            )
        };
        let mut attrs = key_values(spec).map_err(|e| invalid(e.message))?;
        let kind = match attrs.remove("type").as_deref() {
            Some("provenance") => AttestationKind::Provenance,
            Some("sbom") => AttestationKind::Sbom,
            Some(other) => return Err(invalid(format!("unknown type {other:?}"))),
            None => return Err(invalid("no type=".into())),
        };
        let disabled = match attrs.remove("disabled") {
            Some(v) => parse_bool("disabled", &v)?,
            None => false,
        };
        Ok(Attestation {
            kind,
            disabled,
            attrs,
        })
    }

    /// Every attestation `--provenance`, `--sbom` and `--attest` ask for, in that order.
    pub fn from_flags(
        provenance: Option<&str>,
        sbom: Option<&str>,
        attest: &[String],
    ) -> Result<Vec<Attestation>, SpecError> {
        let mut out = Vec::new();
        for (kind, value) in [
            (AttestationKind::Provenance, provenance),
            (AttestationKind::Sbom, sbom),
        ] {
            if let Some(v) = value {
                out.push(Attestation::parse_flag(kind, v)?);
            }
        }
        for a in attest {
            out.push(Attestation::parse(a)?);
        }
        Ok(out)
    }

    /// `--provenance VALUE` or `--sbom VALUE`: a boolean, or the attestation's keys
    /// (`mode=max`, `generator=…`) without `type=`.
    pub fn parse_flag(kind: AttestationKind, value: &str) -> Result<Attestation, SpecError> {
        let (disabled, attrs) = match parse_bool("", value) {
            Ok(on) => (!on, BTreeMap::new()),
            Err(_) => {
                let flag = match kind {
                    AttestationKind::Provenance => "--provenance",
                    AttestationKind::Sbom => "--sbom",
                };
                let mut attrs = key_values(value).map_err(|e| {
                    SpecError::new(
                        format!("invalid {flag} {value:?}: {}", e.message),
                        format!("write {flag}=true|false, or {flag}=KEY=VALUE[,…]"),
                    )
                })?;
                let disabled = match attrs.remove("disabled") {
                    Some(v) => parse_bool("disabled", &v)?,
                    None => false,
                };
                (disabled, attrs)
            }
        };
        Ok(Attestation {
            kind,
            disabled,
            attrs,
        })
    }
}

/// A CSV record of `KEY=VALUE` fields; keys lowercased, a later key wins.
fn key_values(spec: &str) -> Result<BTreeMap<String, String>, SpecError> {
    let mut out = BTreeMap::new();
    for f in csv_fields(spec)? {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| SpecError::new(format!("{f:?} is not KEY=VALUE"), ""))?;
        out.insert(k.trim().to_ascii_lowercase(), v.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn cache_specs_parse_as_buildx_does() {
        let c = CacheSpec::parse("registry.example/app:cache").unwrap();
        assert_eq!(c.kind, CacheKind::Registry);
        assert_eq!(c.attrs["ref"], "registry.example/app:cache");
        let c = CacheSpec::parse("type=local,dest=/tmp/c,mode=max").unwrap();
        assert_eq!(c.kind, CacheKind::Local);
        assert_eq!(c.attrs["dest"], "/tmp/c");
        assert_eq!(c.attrs["mode"], "max");
        assert!(!c.attrs.contains_key("type"));
        assert_eq!(
            CacheSpec::parse("type=inline").unwrap().kind,
            CacheKind::Inline
        );
        let e = CacheSpec::parse("type=floppy").unwrap_err();
        assert!(e.message.contains("floppy"), "{e}");
        assert!(CacheSpec::parse("mode=max").is_err());
        assert!(CacheSpec::parse("").is_err());
        assert!(CacheSpec::parse("type=local,\"dest").is_err());
    }

    #[test]
    fn attestations_parse_from_each_flag() {
        let a = Attestation::parse_flag(AttestationKind::Provenance, "false").unwrap();
        assert!(a.disabled);
        let a = Attestation::parse_flag(AttestationKind::Provenance, "mode=max").unwrap();
        assert!(!a.disabled);
        assert_eq!(a.attrs["mode"], "max");
        let a = Attestation::parse_flag(AttestationKind::Sbom, "true").unwrap();
        assert_eq!((a.kind, a.disabled), (AttestationKind::Sbom, false));
        let a = Attestation::parse("type=sbom,generator=img:1,disabled=true").unwrap();
        assert_eq!(a.kind, AttestationKind::Sbom);
        assert!(a.disabled);
        assert_eq!(a.attrs["generator"], "img:1");
        assert!(Attestation::parse("type=signature").is_err());
        assert!(Attestation::parse("mode=max").is_err());
        assert!(Attestation::parse_flag(AttestationKind::Sbom, "maybe").is_err());
    }

    #[test]
    fn a_request_never_prints_a_secret() {
        let req = BuildRequest {
            secrets: BTreeMap::from([(
                "token".to_owned(),
                Secret(Arc::new(b"s3cr3t-bytes".to_vec())),
            )]),
            ..BuildRequest::default()
        };
        for shown in [format!("{req:?}"), format!("{req:#?}")] {
            assert!(shown.contains("token"), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            // Nor as the numbers a byte vector prints as.
            assert!(!shown.contains("115, 51, 99"), "{shown}");
        }
        let wire = serde_json::to_vec(&req).unwrap();
        let back: BuildRequest = serde_json::from_slice(&wire).unwrap();
        assert_eq!(back, req);
        assert_eq!(*back.secrets["token"].0, b"s3cr3t-bytes");
        // The audit form keeps the id and a digest, never the bytes.
        let audit = req.audit_json().to_string();
        assert!(
            !audit.contains("115,51,99") && !audit.contains("s3cr3t"),
            "{audit}"
        );
        assert!(
            audit.contains(&oci::Digest::sha256(b"s3cr3t-bytes").to_string()),
            "{audit}"
        );
    }
}
