//! What blob transfers report as they go, for progress displays.
//!
//! A client with [`Client::progress`] set tells it about every blob it pulls
//! (`fetch_blob`) or pushes (`push_blob`): bytes as they are written to the store or
//! taken by the connection, then how the transfer ended. Reports are best effort and
//! come from the transfer's task: an observer must not block.

use oci::Digest;

/// Which way a blob goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferState {
    /// `current` bytes of `total` are through (an upload counts what the connection
    /// took, so it can end a little before the registry has it all).
    Running,
    /// Transferred and checked.
    Done,
    /// The registry already had the blob: nothing was sent.
    Existed,
    /// Mounted from another repository of the same registry: nothing was sent.
    Mounted,
}

/// One report of one blob.
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'a> {
    pub direction: Direction,
    pub digest: &'a Digest,
    pub current: u64,
    pub total: u64,
    pub state: TransferState,
}

/// Receives [`Transfer`] reports.
pub trait TransferProgress: Send + Sync + std::fmt::Debug {
    fn update(&self, transfer: &Transfer<'_>);
}

impl crate::Client {
    /// Tell the progress observer, if any, about `digest`.
    pub(crate) fn report(
        &self,
        direction: Direction,
        digest: &Digest,
        current: u64,
        total: u64,
        state: TransferState,
    ) {
        if let Some(p) = &self.progress {
            p.update(&Transfer {
                direction,
                digest,
                current,
                total,
                state,
            });
        }
    }
}

/// A [`TransferProgress`] that turns reports into progress statuses:
/// `f(id, current, total, done)` with ids like BuildKit's (`sha256:0123456789ab`,
/// and `sha256:0123456789ab already in the registry` for a blob not sent). A
/// running blob is reported at most every [`STATUS_INTERVAL`]; its end always.
pub struct StatusReporter<F> {
    f: F,
    running: std::sync::Mutex<std::collections::HashMap<Digest, Throttle>>,
}

/// The shortest time between two reports of one running transfer.
pub const STATUS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Lets a running transfer's report through at most every [`STATUS_INTERVAL`].
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<std::time::Instant>,
}

impl Throttle {
    /// Whether a report is due now; if so, it is noted as made.
    pub fn due(&mut self) -> bool {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < STATUS_INTERVAL)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

impl<F> StatusReporter<F> {
    pub fn new(f: F) -> Self {
        StatusReporter {
            f,
            running: Default::default(),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Digest, Throttle>> {
        // Each update is one map operation: a poisoned lock is still usable.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<F> std::fmt::Debug for StatusReporter<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusReporter")
    }
}

/// A digest as progress shows it: algorithm and the first 12 hex digits.
pub fn short_id(d: &Digest) -> String {
    let hex = d.hex();
    format!("{}:{}", d.algorithm(), &hex[..hex.len().min(12)])
}

impl<F: Fn(&str, u64, Option<u64>, bool) + Send + Sync> TransferProgress for StatusReporter<F> {
    fn update(&self, t: &Transfer<'_>) {
        let id = short_id(t.digest);
        match t.state {
            TransferState::Running if self.running().entry(t.digest.clone()).or_default().due() => {
                (self.f)(&id, t.current, Some(t.total), false);
            }
            TransferState::Running => {}
            TransferState::Done => {
                self.running().remove(t.digest);
                (self.f)(&id, t.total, Some(t.total), true);
            }
            TransferState::Existed => {
                (self.f)(&format!("{id} already in the registry"), 0, None, true);
            }
            TransferState::Mounted => (self.f)(&format!("{id} mounted"), 0, None, true),
        }
    }
}
