//! manifold's registry client (OCI distribution spec v1.1) and the operations built
//! on it: pull, push, copy, and `imagetools` (`create`: an index from what registries
//! hold).
//!
//! **Invariant**: credentials are sent only to the registry's own site; never to a
//! token realm or redirect target elsewhere, never to a private or link-local address
//! the server pointed at.
//! **Invariant**: every byte received is verified against a digest before it is
//! stored or trusted; manifests are pushed as the exact bytes that were hashed.
//! That holds for bytes from a mirror too ([`config::Mirror`]).
//! **Invariant**: pushes, mounts, uploads and login checks go to the registry
//! itself, never to a mirror; a mirror is sent its own host's credentials only.

pub mod auth;
pub mod client;
pub mod config;
pub mod create;
pub mod credentials;
pub mod dns;
pub mod error;
pub mod login;
pub mod ops;
pub mod progress;
pub mod pull;
pub mod push;
pub mod referrers;
pub mod signature;
mod sources;

pub use client::{Access, Anonymous, Client, CredentialSource, Limits, Repo, RetryPolicy};
pub use config::{HostConfig, Mirror, RegistryConfig};
pub use credentials::{Credential, DockerConfig, Secret};
pub use error::{MirrorFailure, RegistryError, Result, SpecError};
pub use login::StaticCredentials;
pub use progress::{Direction, Transfer, TransferProgress, TransferState};
pub use pull::Fetched;
pub use push::BlobPush;
