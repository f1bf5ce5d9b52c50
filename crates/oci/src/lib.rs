//! OCI core types for manifold: digests, descriptors, media types, platforms,
//! manifests, indexes, image configs and image references.
//!
//! **Invariant**: this crate does no IO and never prints.
//! **Invariant**: parsed documents ([`RawDocument`]) keep their exact bytes; what is
//! hashed is what is stored and pushed.

mod chain;
pub mod descriptor;
pub mod digest;
pub mod document;
pub mod media;
pub mod platform;
pub mod reference;
pub mod time;

pub use chain::error_chain;
pub use descriptor::Descriptor;
pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use document::{
    DocumentError, ImageConfig, ImageIndex, ImageManifest, ManifestOrIndex, RawDocument,
};
pub use platform::{Platform, PlatformError, PlatformMatcher};
pub use reference::{Reference, ReferenceError};
pub use time::rfc3339;
