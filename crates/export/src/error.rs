//! The crate's error type: one variant per cause, each naming its operand.

use std::path::PathBuf;

use oci::Digest;

/// What went wrong while exporting an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The content store failed.
    #[error("content store")]
    Store(#[from] content::StoreError),
    /// Writing a layer tar or its compressed stream failed.
    #[error("cannot write layer")]
    Archive(#[from] archive::ArchiveError),
    /// A file of the exporter's own (cache, layout, archive) could not be read or written.
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing an output stream (a tar of a layout or a docker archive) failed.
    #[error("cannot write {what}")]
    Output {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A stored manifest, index or config is not a valid document.
    #[error("{what} {digest} is not a valid document")]
    Document {
        what: &'static str,
        digest: Digest,
        #[source]
        source: oci::DocumentError,
    },
    /// The layer tar changed between the pass that hashed it and the pass that
    /// compressed it (a file under a root was modified during export).
    #[error("layer content changed during export: first {first}, then {second}")]
    LayerChanged { first: Digest, second: Digest },
    /// The base image's manifest and config disagree on its layers.
    #[error("base image {manifest} has {layers} layers but its config lists {diff_ids} diff_ids")]
    BaseLayers {
        manifest: Digest,
        layers: usize,
        diff_ids: usize,
    },
    /// The config's history names more layers than the image has.
    #[error(
        "image history has {history} entries that add a layer, but the image has only {layers} layers"
    )]
    HistoryMismatch { history: usize, layers: usize },
    /// Manifest-level annotations asked for with Docker media types.
    #[error("annotations need OCI media types; docker schema 2 has no annotations")]
    AnnotationsNeedOci,
    /// An index entry without a platform.
    #[error("manifest {digest} has no platform; an index entry needs one")]
    MissingPlatform { digest: Digest },
    /// Manifests of both media type families in one index.
    #[error("cannot put {found} manifest {digest} in an index of {expected} manifests")]
    MixedMediaTypes {
        digest: Digest,
        found: &'static str,
        expected: &'static str,
    },
    /// A descriptor that is not a manifest or index where one was needed.
    #[error("{digest} has media type {media_type:?}, expected a manifest or an index")]
    NotAnImage { digest: Digest, media_type: String },
    /// An index nested in an index.
    #[error("index {digest} contains another index; nested indexes are not supported")]
    NestedIndex { digest: Digest },
    /// A docker archive holds one platform.
    #[error(
        "a docker archive holds one platform, but {digest} has {count} (hint: build one platform with --platform, or export an OCI layout)"
    )]
    MultiplePlatforms { digest: Digest, count: usize },
    /// An image name that docker cannot use as a repository tag.
    #[error("invalid tag {tag:?} for a docker archive")]
    InvalidTag {
        tag: String,
        #[source]
        source: oci::ReferenceError,
    },
    /// A docker archive tag that carries a digest instead of a tag.
    #[error("tag {tag:?} names a digest; a docker archive needs name:tag")]
    DigestTag { tag: String },
    /// The destination directory of an OCI layout is not empty.
    #[error("{path} is not empty; an OCI layout is written into a new or empty directory")]
    DestinationNotEmpty { path: PathBuf },
    /// An output's destination is not what it has to be.
    #[error("{dest}: the destination must be {what}")]
    Destination { what: &'static str, dest: PathBuf },
    /// A layer (or the directory itself) could not be unpacked into a directory.
    #[error("cannot unpack {} into {}", layer.as_ref().map_or_else(|| "the image".to_owned(), |d| format!("layer {d}")), dir.display())]
    Unpack {
        layer: Option<Digest>,
        dir: PathBuf,
        #[source]
        source: Box<archive::ArchiveError>,
    },
    /// A layer whose media type names no compression manifold reads.
    #[error("layer {digest} has media type {media_type:?}, which names no known compression")]
    LayerMediaType { digest: Digest, media_type: String },
    /// `docker load` (or podman's) could not be run, or failed.
    #[error("`{cli} load` failed{}{message}", if message.is_empty() { "" } else { ": " })]
    Load {
        cli: &'static str,
        message: String,
        #[source]
        source: Option<std::io::Error>,
    },
    /// Pushing to a registry failed.
    #[error("cannot push {reference}")]
    Push {
        reference: String,
        #[source]
        source: Box<registry::RegistryError>,
    },
}

impl ExportError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ExportError::Io { op, path, source }
    }

    pub(crate) fn output(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| ExportError::Output { what, source }
    }
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;
