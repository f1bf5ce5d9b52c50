//! What a layer blob is and how it is made: [`Compression`], [`LayerOptions`] and
//! [`LayerDesc`], shared by the export, the layer cache and the run index.

use oci::{Descriptor, Digest, media};

/// Docker's media type for an uncompressed layer.
pub use oci::media::DOCKER_LAYER_TAR;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    Uncompressed,
    /// gzip, level 0–9 (higher values are clamped to 9).
    Gzip {
        level: u32,
    },
    /// zstd, level 1–22 (libzstd's range; negative levels are its fast modes).
    Zstd {
        level: i32,
    },
}

/// On the wire, as its [`Compression::key`].
impl serde::Serialize for Compression {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

impl<'de> serde::Deserialize<'de> for Compression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        Compression::from_key(&key)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown compression {key:?}")))
    }
}

/// The gzip level of builds that set none: deflate's fastest level. Layers come
/// out a few percent larger than at zlib's default 6 (on text about a tenth), in a
/// quarter of the time; go-containerregistry (crane, ko) picks it too.
/// `compression-level` sets another.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;

impl Compression {
    /// gzip at level 6, zlib's default (docker's and BuildKit's).
    pub const GZIP: Compression = Compression::Gzip { level: 6 };
    /// gzip at [`DEFAULT_GZIP_LEVEL`], what builds use unless told otherwise.
    pub const DEFAULT: Compression = Compression::Gzip {
        level: DEFAULT_GZIP_LEVEL,
    };
    /// zstd at level 3, BuildKit's default.
    pub const ZSTD: Compression = Compression::Zstd { level: 3 };

    pub(crate) fn codec(self) -> archive::Compression {
        match self {
            Compression::Uncompressed => archive::Compression::None,
            Compression::Gzip { level } => archive::Compression::Gzip {
                level: level.min(9),
            },
            Compression::Zstd { level } => archive::Compression::Zstd { level },
        }
    }

    /// A stable text form (`gzip-6`, `zstd-3`, `none`), part of the cache key.
    pub fn key(self) -> String {
        match self {
            Compression::Uncompressed => "none".to_owned(),
            Compression::Gzip { level } => format!("gzip-{}", level.min(9)),
            Compression::Zstd { level } => format!("zstd-{level}"),
        }
    }

    /// The compression [`Compression::key`] names (`gzip-6`, `zstd-3`, `none`).
    pub fn from_key(key: &str) -> Option<Compression> {
        Some(match key.split_once('-') {
            None if key == "none" => Compression::Uncompressed,
            Some(("gzip", l)) => Compression::Gzip {
                level: l.parse().ok()?,
            },
            Some(("zstd", l)) => Compression::Zstd {
                level: l.parse().ok()?,
            },
            _ => return None,
        })
    }

    /// The layer media type for this compression, OCI or Docker.
    pub fn media_type(self, oci_mediatypes: bool) -> &'static str {
        match (self, oci_mediatypes) {
            (Compression::Uncompressed, true) => media::OCI_LAYER_TAR,
            (Compression::Gzip { .. }, true) => media::OCI_LAYER_GZIP,
            (Compression::Zstd { .. }, true) => media::OCI_LAYER_ZSTD,
            (Compression::Uncompressed, false) => DOCKER_LAYER_TAR,
            (Compression::Gzip { .. }, false) => media::DOCKER_LAYER_GZIP,
            (Compression::Zstd { .. }, false) => media::DOCKER_LAYER_ZSTD,
        }
    }
}

impl Default for Compression {
    fn default() -> Self {
        Compression::DEFAULT
    }
}

/// Options of [`export_layer`] and [`export_tar`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    pub compression: Compression,
    /// Clamp every mtime in the tar to this (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
    /// OCI media types (else Docker schema 2 ones). The blob bytes do not depend on it.
    pub oci_mediatypes: bool,
    /// Look up and record layers in the store's layer cache ([`LayerCache`]).
    pub use_cache: bool,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::default(),
            source_date_epoch: None,
            oci_mediatypes: true,
            use_cache: true,
        }
    }
}

/// A layer blob in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDesc {
    /// The compressed blob (media type per the options).
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar, for the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Whether the blob came from the layer cache instead of being compressed now.
    pub from_cache: bool,
}

impl LayerDesc {
    pub fn media_type(&self) -> &str {
        &self.descriptor.media_type
    }
}
