//! manifold's content store: an OCI image layout on disk.
//!
//! **Invariant**: no unverified byte becomes visible under `blobs/`: content is
//! written to a temporary file, checked for size and digest, fsynced and renamed.
//! **Invariant**: a blob reachable from a name or a live lease is never collected.

pub mod atomic;
pub mod crash;
mod error;
mod gc;
pub mod identity;
pub mod layout;
mod lease;
pub mod lock;
mod names;
mod root;
mod store;

pub use error::{Result, StoreError};
pub use gc::{FsckReport, GcReport, ImageSummary, Usage};
pub use lease::Lease;
pub use root::{RootError, default_root};
pub use store::{BlobWriter, DOCUMENT_CAP, Expected, Store};
