//! Why a build failed. Every error names what it is about: the step, the path,
//! the image, the secret.

use std::path::{Path, PathBuf};

/// A build error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The step's process failed; `detail` has the exit code (and the emulator
    /// when a signal killed an emulated process).
    #[error("{detail} (platform {platform})")]
    StepFailed {
        platform: String,
        code: i32,
        detail: String,
    },
    #[error("build context {name:?} was not given")]
    NoLocal { name: String },
    #[error("invalid ignore patterns: {message}")]
    Ignore { message: String },
    #[error("invalid image reference {reference:?}: {message}")]
    Reference { reference: String, message: String },
    #[error("cannot pull {reference}: no registry client")]
    Offline { reference: String },
    #[error("cannot pull {reference}")]
    Pull {
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("secret {id:?} {message}")]
    Secret { id: String, message: String },
    #[error("{what} is not supported yet")]
    Unsupported { what: String },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Store(#[from] content::StoreError),
    #[error(transparent)]
    Records(#[from] solver::StoreError),
    #[error(transparent)]
    Snapshot(#[from] worker::snapshot::SnapshotError),
    #[error(transparent)]
    Image(#[from] worker::image::ImageError),
    #[error(transparent)]
    Exec(#[from] worker::exec::ExecError),
    #[error(transparent)]
    Context(#[from] worker::context::ContextError),
    #[error(transparent)]
    File(#[from] crate::fileop::FileOpError),
    #[error(transparent)]
    Export(#[from] export::ExportError),
    #[error("{name} has no image for {want} (it has {})", .have.join(", "))]
    NoPlatform {
        name: String,
        want: String,
        have: Vec<String>,
    },
    /// The request asks for what cannot be made (checked by the client too; a
    /// daemon checks again).
    #[error(transparent)]
    Request(export::output::SpecError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl BuildError {
    /// How to fix it, when that is known.
    pub fn hint(&self) -> Option<&str> {
        match self {
            BuildError::NoPlatform { .. } => Some("choose one with --platform"),
            BuildError::Request(e) if !e.hint.is_empty() => Some(&e.hint),
            _ => None,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> BuildError {
        BuildError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
