//! Runs builds: the solver's [`solver::OpRunner`] over snapshots, runc and the
//! content store ([`Runner`]), and [`Builder`], which lowers a Dockerfile, solves
//! it for every platform and exports the results as one index in the store.
//!
//! **Invariant**: a step reads and writes only through snapshots and in-root
//! file operations; the build context is read in place, never copied first.
//! **Invariant**: secret values never reach a layer, a cache key, a log or the
//! graph: only their ids do.

mod base;
mod build;
mod cache_early;
mod cache_io;
mod error;
pub mod fileop;
pub mod gc;
pub mod history;
pub mod inventory;
mod mounts;
pub mod provenance;
pub mod prune;
pub mod push;
mod refs;
mod request;
mod run;
pub mod run_flags;
mod runner;
pub mod sbom;
mod secret;
mod selection;
pub mod state;

pub use base::BaseImages;
pub use build::{BuildFailure, BuildOutput, Builder};
pub use cache_io::{CACHE_ARTIFACT, RECORDS_MEDIA_TYPE, check_specs as check_cache_specs};
pub use error::BuildError;
pub use refs::{FsRef, LocalRef, Ref};
pub use request::{
    Attestation, AttestationKind, BuildRequest, CacheKind, CacheSpec, ExportOptions, LocalDir,
    MAX_DOCKERFILE, MAX_IGNORE_FILE, Session, context_ignore_patterns, layout_context_name,
    parse_allow, parse_network, read_bounded, read_context_file,
};
pub use run::image_to_run;
pub use runner::Runner;
pub use secret::Secret;
