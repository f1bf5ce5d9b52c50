//! Runs build steps: the [`exec`] layer (an OCI runtime bundle per step, run by runc)
//! and [`binfmt`] (QEMU user-mode emulation for foreign platforms).
//!
//! This crate never prints; output of steps goes to the caller's callback.

pub mod binfmt;
pub mod exec;

pub use exec::{
    CancelToken, Entitlements, ExecError, ExecIo, ExecSpec, Executor, ExitStatus, MountKind,
    MountSpec, NetworkMode, Runc, RuncConfig, SecurityMode, Stream,
};
