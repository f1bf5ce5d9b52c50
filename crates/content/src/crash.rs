//! Crash points: named places where a test stops the process as a power cut or a
//! `kill -9` would, to check that what is on disk then is consistent (`fsck`) and
//! that the next run finishes the work. A point aborts the process when the
//! environment variable `MANIFOLD_CRASH_AT` names it. Only debug builds (the test
//! suite's) have them; release builds compile them away.
//!
//! The points: `blob-renamed` (a blob is in place, before the write that references
//! it returns), `write:<file name>` (an atomic state file's new bytes are written
//! and synced, before the rename: `write:index.json` for a tag), `unpack` (a base
//! image's first layer is applied, before the rest), `export` (an image's layers
//! are exported, before its manifest), `push` (an image's blobs are uploaded, before
//! its manifests), `cache-record` (a step ran, before its cache record is written).

/// Abort here if `MANIFOLD_CRASH_AT` is `name` (debug builds only).
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("MANIFOLD_CRASH_AT").is_some_and(|v| v == name) {
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
