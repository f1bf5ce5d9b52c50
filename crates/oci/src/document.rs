//! Manifests, indexes and image configs, each kept with the exact bytes it was
//! parsed from.
//!
//! **Invariant**: a [`RawDocument`] never re-serialises. Its digest is the digest of
//! the bytes it holds, and those bytes are what the store writes and the registry
//! client pushes.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Descriptor, Digest, Platform, media};

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    #[error("invalid {what} JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} has media type {found:?}, expected one of {expected:?}")]
    WrongMediaType {
        what: &'static str,
        found: String,
        expected: &'static [&'static str],
    },
    #[error(
        "document has both \"manifests\" and \"layers\"/\"config\": it is neither an index nor a manifest"
    )]
    Ambiguous,
    #[error("{what} has unsupported schemaVersion {found} (expected 2)")]
    SchemaVersion { what: &'static str, found: u32 },
}

/// A parsed document and the exact bytes it came from.
#[derive(Clone)]
pub struct RawDocument<T> {
    bytes: Vec<u8>,
    digest: Digest,
    value: T,
}

impl<T: fmt::Debug> fmt::Debug for RawDocument<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDocument")
            .field("digest", &self.digest)
            .field("size", &self.bytes.len())
            .field("value", &self.value)
            .finish()
    }
}

/// A document type with a name for error messages and the media types it may carry.
pub trait Document: DeserializeOwned + Serialize {
    const WHAT: &'static str;
    /// Media types a document of this type may declare; empty means any.
    const MEDIA_TYPES: &'static [&'static str];
    /// The media type declared inside the document, if any.
    fn declared_media_type(&self) -> Option<&str>;
    /// Checks beyond JSON shape.
    fn check(&self, _raw: &serde_json::Value) -> Result<(), DocumentError> {
        Ok(())
    }
}

impl<T: Document> RawDocument<T> {
    /// Parse `bytes`, keeping them verbatim.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, DocumentError> {
        let raw: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| DocumentError::Json {
                what: T::WHAT,
                source,
            })?;
        let value: T =
            serde_json::from_value(raw.clone()).map_err(|source| DocumentError::Json {
                what: T::WHAT,
                source,
            })?;
        if let Some(mt) = value.declared_media_type()
            && !T::MEDIA_TYPES.is_empty()
            && !T::MEDIA_TYPES.contains(&mt)
        {
            return Err(DocumentError::WrongMediaType {
                what: T::WHAT,
                found: mt.to_owned(),
                expected: T::MEDIA_TYPES,
            });
        }
        value.check(&raw)?;
        let digest = Digest::sha256(&bytes);
        Ok(RawDocument {
            bytes,
            digest,
            value,
        })
    }

    /// Serialise `value` once (compact JSON) and keep those bytes.
    pub fn from_value(value: T) -> Self {
        let bytes = serde_json::to_vec(&value).expect("document types always serialise");
        let digest = Digest::sha256(&bytes);
        RawDocument {
            bytes,
            digest,
            value,
        }
    }
}

impl<T> RawDocument<T> {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    pub fn value(&self) -> &T {
        &self.value
    }
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    /// A descriptor of these bytes with `media_type`.
    pub fn descriptor(&self, media_type: &str) -> Descriptor {
        Descriptor::new(media_type, self.digest.clone(), self.size())
    }
}

fn check_schema(what: &'static str, v: u32) -> Result<(), DocumentError> {
    if v == 2 {
        Ok(())
    } else {
        Err(DocumentError::SchemaVersion { what, found: v })
    }
}

fn has_key(raw: &serde_json::Value, key: &str) -> bool {
    raw.get(key).is_some_and(|v| !v.is_null())
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Document for ImageManifest {
    const WHAT: &'static str = "image manifest";
    const MEDIA_TYPES: &'static [&'static str] = &[media::OCI_MANIFEST, media::DOCKER_MANIFEST];
    fn declared_media_type(&self) -> Option<&str> {
        self.media_type.as_deref()
    }
    fn check(&self, raw: &serde_json::Value) -> Result<(), DocumentError> {
        if has_key(raw, "manifests") {
            return Err(DocumentError::Ambiguous);
        }
        check_schema(Self::WHAT, self.schema_version)
    }
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Document for ImageIndex {
    const WHAT: &'static str = "image index";
    const MEDIA_TYPES: &'static [&'static str] = &[media::OCI_INDEX, media::DOCKER_MANIFEST_LIST];
    fn declared_media_type(&self) -> Option<&str> {
        self.media_type.as_deref()
    }
    fn check(&self, raw: &serde_json::Value) -> Result<(), DocumentError> {
        if has_key(raw, "layers") || has_key(raw, "config") {
            return Err(DocumentError::Ambiguous);
        }
        check_schema(Self::WHAT, self.schema_version)
    }
}

impl ImageIndex {
    /// An empty OCI index.
    pub fn new() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

impl ImageIndex {
    /// The manifest a host of `platform` runs best (containerd's preference order),
    /// among entries that declare a platform.
    pub fn manifest_for(&self, platform: &Platform) -> Option<&Descriptor> {
        let matcher = crate::PlatformMatcher::only(platform);
        let best = matcher.best(self.manifests.iter().filter_map(|m| m.platform.as_ref()))?;
        self.manifests
            .iter()
            .find(|m| m.platform.as_ref() == Some(best))
    }

    /// The platforms the index lists, in order (attestations' `unknown/unknown` left out).
    pub fn platforms(&self) -> Vec<&Platform> {
        self.manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            .filter(|p| p.os != "unknown")
            .collect()
    }
}

impl Default for ImageIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// An image config (OCI image spec `config.json`, identical in Docker's format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// A build cache the image carries (`--cache-to type=inline`): manifold's cache
    /// records document, under a key of its own, as BuildKit keeps its inline cache.
    #[serde(
        rename = "manifold.cache.v1",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub inline_cache: Option<serde_json::Value>,
}

impl Document for ImageConfig {
    const WHAT: &'static str = "image config";
    const MEDIA_TYPES: &'static [&'static str] = &[];
    fn declared_media_type(&self) -> Option<&str> {
        None
    }
}

impl ImageConfig {
    /// The platform this config declares.
    pub fn platform(&self) -> Platform {
        let mut p = Platform::new(&self.os, &self.architecture, self.variant.as_deref());
        p.os_version.clone_from(&self.os_version);
        p.os_features.clone_from(&self.os_features);
        p
    }

    /// Number of history entries that produced a layer.
    pub fn layer_history_len(&self) -> usize {
        self.history.iter().filter(|h| !h.empty_layer).count()
    }
}

/// The execution parameters of an image (`config` in the image config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// `HEALTHCHECK` settings; durations in nanoseconds as Docker writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// The layers of an image as uncompressed-tar digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One step of an image's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// A manifest or an index, as found behind a tag.
#[derive(Debug, Clone)]
pub enum ManifestOrIndex {
    Manifest(Box<RawDocument<ImageManifest>>),
    Index(Box<RawDocument<ImageIndex>>),
}

impl ManifestOrIndex {
    /// Parse bytes whose media type is `media_type` (from a descriptor or a
    /// `Content-Type` header); when it is empty or unknown, the document's own
    /// `mediaType` field decides, then its shape.
    pub fn parse(media_type: &str, bytes: Vec<u8>) -> Result<Self, DocumentError> {
        match media::kind(media_type) {
            media::Kind::Manifest => {
                return RawDocument::parse(bytes).map(|d| Self::Manifest(Box::new(d)));
            }
            media::Kind::Index => {
                return RawDocument::parse(bytes).map(|d| Self::Index(Box::new(d)));
            }
            _ => {}
        }
        let raw: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| DocumentError::Json {
                what: "manifest or index",
                source,
            })?;
        let declared = raw.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
        let is_index = match media::kind(declared) {
            media::Kind::Index => true,
            media::Kind::Manifest => false,
            _ => has_key(&raw, "manifests"),
        };
        if is_index {
            RawDocument::parse(bytes).map(|d| Self::Index(Box::new(d)))
        } else {
            RawDocument::parse(bytes).map(|d| Self::Manifest(Box::new(d)))
        }
    }

    pub fn digest(&self) -> &Digest {
        match self {
            Self::Manifest(m) => m.digest(),
            Self::Index(i) => i.digest(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Manifest(m) => m.bytes(),
            Self::Index(i) => i.bytes(),
        }
    }

    /// The media type to use for this document: its own, else the OCI default.
    pub fn media_type(&self) -> &str {
        match self {
            Self::Manifest(m) => m
                .value()
                .media_type
                .as_deref()
                .unwrap_or(media::OCI_MANIFEST),
            Self::Index(i) => i.value().media_type.as_deref().unwrap_or(media::OCI_INDEX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest_json(spaces: bool) -> Vec<u8> {
        let s = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{CFG}","size":0}},"layers":[]}}"#,
            media::OCI_MANIFEST,
            media::OCI_CONFIG
        );
        if spaces {
            s.replace(',', ", ").into_bytes()
        } else {
            s.into_bytes()
        }
    }

    #[test]
    fn raw_bytes_are_kept_verbatim() {
        let a = RawDocument::<ImageManifest>::parse(manifest_json(false)).unwrap();
        let b = RawDocument::<ImageManifest>::parse(manifest_json(true)).unwrap();
        assert_eq!(a.value(), b.value());
        assert_ne!(
            a.digest(),
            b.digest(),
            "digest follows the bytes, not the value"
        );
        assert_eq!(b.bytes(), manifest_json(true).as_slice());
        assert_eq!(*b.digest(), Digest::sha256(&manifest_json(true)));
    }

    #[test]
    fn manifest_with_manifests_key_is_ambiguous() {
        let mut v: serde_json::Value = serde_json::from_slice(&manifest_json(false)).unwrap();
        v["manifests"] = serde_json::json!([]);
        let err = RawDocument::<ImageManifest>::parse(serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(matches!(err, DocumentError::Ambiguous), "{err}");
    }

    #[test]
    fn wrong_media_type_is_refused() {
        let bytes = String::from_utf8(manifest_json(false)).unwrap().replacen(
            media::OCI_MANIFEST,
            media::OCI_INDEX,
            1,
        );
        let err = RawDocument::<ImageManifest>::parse(bytes.into_bytes()).unwrap_err();
        assert!(matches!(err, DocumentError::WrongMediaType { .. }), "{err}");
    }

    #[test]
    fn missing_media_type_is_accepted_and_shape_decides() {
        let bytes = br#"{"schemaVersion":2,"manifests":[]}"#.to_vec();
        let doc = ManifestOrIndex::parse("", bytes).unwrap();
        assert!(matches!(doc, ManifestOrIndex::Index(_)));
        assert_eq!(doc.media_type(), media::OCI_INDEX);
    }

    #[test]
    fn wrong_json_types_and_nulls_are_errors_not_panics() {
        for bad in [
            &br#"{"schemaVersion":"2","config":null,"layers":[]}"#[..],
            br#"{"schemaVersion":2,"config":{"mediaType":1,"digest":"x","size":-1},"layers":{}}"#,
            br#"null"#,
            br#"[]"#,
            br#"{"schemaVersion":2,"layers":[]}"#,
            br#"{"schemaVersion":1,"config":{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#,
        ] {
            assert!(RawDocument::<ImageManifest>::parse(bad.to_vec()).is_err());
        }
    }

    #[test]
    fn manifest_for_prefers_the_closest_platform() {
        let d = |p: &str, b: &[u8]| {
            let mut d = Descriptor::for_bytes(media::OCI_MANIFEST, b);
            d.platform = Some(Platform::parse(p).unwrap());
            d
        };
        let index = ImageIndex {
            manifests: vec![
                d("linux/arm/v6", b"6"),
                d("linux/arm/v7", b"7"),
                d("linux/amd64", b"a"),
            ],
            ..ImageIndex::new()
        };
        let pick = |p: &str| {
            index
                .manifest_for(&Platform::parse(p).unwrap())
                .map(|m| m.digest.clone())
        };
        assert_eq!(pick("linux/arm/v7"), Some(Digest::sha256(b"7")));
        assert_eq!(pick("linux/arm/v6"), Some(Digest::sha256(b"6")));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(index.platforms().len(), 3);
    }

    #[test]
    fn config_round_trips_with_docker_field_names() {
        let json = br#"{"architecture":"arm64","os":"linux","variant":"v8","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/w"},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"x","empty_layer":true}]}"#;
        let doc = RawDocument::<ImageConfig>::parse(json.to_vec()).unwrap();
        let c = doc.value();
        assert_eq!(c.platform().to_string(), "linux/arm64");
        assert_eq!(
            c.config.as_ref().unwrap().working_dir.as_deref(),
            Some("/w")
        );
        assert_eq!(c.layer_history_len(), 0);
        let again = serde_json::to_vec(c).unwrap();
        assert_eq!(again, json.to_vec());
    }
}
