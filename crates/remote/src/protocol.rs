//! The messages between client and daemon.

use serde::{Deserialize, Serialize};

/// What a daemon reports about itself (`manifold inspect --bootstrap`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// manifold's version on the daemon.
    pub version: String,
    /// Platforms it runs natively (or compatibly, like 386 on amd64).
    pub native: Vec<String>,
    /// Platforms it runs under QEMU.
    pub emulated: Vec<String>,
    /// Snapshot driver in use (`overlay`, `copy`).
    pub snapshotter: String,
    /// Bytes the daemon's state root holds.
    pub cache_bytes: u64,
    /// Builds running now.
    pub running: u32,
}
