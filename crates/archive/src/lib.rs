//! Layer tars: in-root path resolution, applying layers (with whiteouts), writing
//! them deterministically, diffing trees, and the gzip/zstd codecs.
//!
//! Every path taken from a layer, or from a tree being diffed, is resolved inside a
//! [`Root`] with chroot semantics: `..` and absolute symlinks stay in the root.
//! Metadata is changed through file descriptors, never through a path resolved again.

mod apply;
mod blob;
mod budget;
mod codec;
mod diff;
mod encode;
mod entry;
mod error;
mod guard;
mod path;
mod root;
mod write;

pub use apply::{
    ApplyOptions, ApplyStats, OverlayXattr, SpecialFiles, WhiteoutMode, apply_into_new_dir,
    apply_layer,
};
pub use blob::{AppliedBlob, Expected, apply_blob};
pub use budget::{Budget, Limited, Meter, Metered, decompress_limited};
pub use codec::{Compression, Decoder, HashingReader, decompress};
pub use diff::{diff_dirs, diff_overlay_upper};
pub use encode::{
    COMPRESS_CHUNK, CompressOptions, Encoder, MAX_COMPRESSED_RUN, MAX_RUN, MIN_RUN, Run, RunSource,
    compress, compress_with, default_threads,
};
pub use entry::Limits;
pub use error::ArchiveError;
pub use guard::HeaderGuard;
pub use path::{CleanPath, NAME_MAX};
pub use root::{Leaf, NodeKind, ResolveMode, Root};
pub use write::{
    Change, ContentSource, Entry, EntryKind, Metadata, WriteOptions, WriteStats, write_layer,
};
