//! The bridge a frontend uses to read base images.

use oci::{Digest, ImageConfig, Platform};

/// Reads the config of an image for one platform.
///
/// The frontend needs a base image's config (its `ENV`, `WORKDIR`, `USER`,
/// …) while it lowers a Dockerfile, but it must not know registries, stores
/// or the solver. The crate that wires the builder together implements this
/// trait (with the registry client and the content store; BuildKit's
/// `ImageMetaResolver` plays the same part), and tests use a fake.
///
/// `reference` is normalised (`docker.io/library/alpine:latest`).
pub trait ImageResolver {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError>;
}

/// What [`ImageResolver::resolve`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// The digest of the manifest (or index) the reference pointed at; the
    /// image source is pinned to it.
    pub digest: Digest,
    pub config: ImageConfig,
}

/// Why an image could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("image {reference} not found")]
    NotFound { reference: String },
    #[error("image {reference} has no variant for platform {platform}")]
    NoMatchingPlatform {
        reference: String,
        platform: Box<Platform>,
    },
    /// Anything else (network, authentication, …), from the implementation.
    #[error("cannot resolve image {reference}")]
    Other {
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
