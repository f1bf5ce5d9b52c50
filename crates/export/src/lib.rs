//! Image export: layer blobs, image configs, manifests and indexes in the content
//! store, a validator, and the outputs (OCI layout, docker archive, registry push).
//!
//! Sync, except [`push`] and [`PushTap`]; callers run the rest on blocking threads.
//!
//! **Invariant**: a layer blob's bytes are a pure function of its uncompressed tar
//! and its [`Compression`]: never of the thread count, the time, the layer cache or
//! the run index (a hit returns what a cold export produced).
//! **Invariant**: documents are serialised once and stored as those bytes; the
//! digest returned is the digest of the stored bytes.
//! **Invariant**: with `SOURCE_DATE_EPOCH`, the same changes and config give the
//! same index digest on any state root, cache warm or cold.

pub mod attest;
mod cache;
mod desc;
mod docker;
mod error;
mod image;
mod layer;
mod layout;
pub mod output;
mod push;
mod push_tap;
mod runs;
pub mod sink;
mod tap;
mod validate;
mod walk;

pub use cache::{CODEC_EPOCH, LayerCache};
pub use docker::write_docker_archive;
pub use error::{ExportError, Result};
pub use image::{
    ADDED_HISTORY_COMMENT, BaseImage, ImageOptions, assemble_image, assemble_index, rfc3339, tag,
};
pub use layer::{
    COMPRESS_CHUNK, CompressStats, Compression, DEFAULT_GZIP_LEVEL, DOCKER_LAYER_TAR, LayerDesc,
    LayerOptions, convert_layer_media_type, export_layer, export_layer_once, export_tar,
    export_tar_with,
};
pub use layout::{rotate_oci_layout, write_oci_layout_dir, write_oci_layout_tar};
pub use output::annotation;
pub use push::{push, push_known};
pub use push_tap::PushTap;
pub use runs::{INDEX_BUDGET, runs_dir};
pub use tap::{LayerTap, TapWriter};
pub use validate::{Problem, validate};
