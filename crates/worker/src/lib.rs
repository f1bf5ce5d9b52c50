//! Runs build steps: [`snapshot`] (the root filesystems steps run on and layers unpack
//! into: overlayfs, or whole copies), the [`exec`] layer (an OCI runtime bundle per
//! step, run by runc) and [`binfmt`] (QEMU user-mode emulation for foreign platforms).
//!
//! [`image`] runs an image from the content store on top of its unpacked layers.
//!
//! This crate never prints; output of steps goes to the caller's callback.

pub mod binfmt;
pub mod context;
pub mod exec;
pub mod image;
pub mod snapshot;

pub use exec::{
    CancelToken, Entitlements, ExecError, ExecIo, ExecSpec, Executor, ExitStatus, MountKind,
    MountSpec, NetworkMode, Runc, RuncConfig, SecurityMode, Stream,
};
