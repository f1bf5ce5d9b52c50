//! Progress events, and the audience of one running op.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oci::{Digest, Platform};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What happened to a vertex. Every event names the vertex by digest, but for a
/// [`Event::Warning`], which names the build's definition.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Its op began to run (or this build joined a run another build began).
    VertexStarted {
        digest: Digest,
        name: String,
        platform: Option<Platform>,
    },
    /// Its result came from the cache; nothing ran.
    VertexCached {
        digest: Digest,
        name: String,
        key: Digest,
    },
    /// Output of its op.
    VertexLog {
        digest: Digest,
        stream: LogStream,
        bytes: Vec<u8>,
    },
    /// Its op finished; `duration` is measured from when the op started.
    VertexCompleted { digest: Digest, duration: Duration },
    /// Its op failed; `error` is the error and its causes, joined by `: `.
    VertexFailed { digest: Digest, error: String },
    /// It stopped, or never started, because the build was cancelled or
    /// another vertex failed.
    VertexCancelled { digest: Digest },
    /// Progress of one part of its work (a layer being pulled, exported or pushed).
    /// A later status with the same `id` replaces the earlier one.
    VertexStatus { digest: Digest, status: Status },
    /// It has to run: no usable record for `key`, for `reason`.
    CacheMiss {
        digest: Digest,
        key: Digest,
        reason: MissReason,
    },
    /// Something about the build's definition that is worth fixing but does not
    /// stop the build (a Dockerfile build check). `digest` names the definition
    /// (the sha256 of the Dockerfile's bytes), not a vertex of the graph.
    Warning { digest: Digest, warning: Warning },
}

/// One warning about a build's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The stable name of what found it (a build check's rule, `FromAsCasing`).
    pub rule: String,
    /// What is wrong, for people.
    pub message: String,
    /// Where the rule is explained, when somewhere is.
    pub url: Option<String>,
    /// The first line of the definition it is about (from 1), when known.
    pub line: Option<u32>,
}

/// Which output stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// Where one part of a vertex's work stands: `current` of `total` bytes, or a note
/// when `current` is 0 and `total` unknown; `done` once that part is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: String,
    pub current: u64,
    pub total: Option<u64>,
    pub done: bool,
}

impl Status {
    pub fn new(id: &str, current: u64, total: Option<u64>, done: bool) -> Status {
        Status {
            id: id.to_owned(),
            current,
            total,
            done,
        }
    }
}

/// Why a vertex was not taken from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissReason {
    /// The build asked for no cache at all (`--no-cache`).
    NoCache,
    /// The vertex is marked to ignore the cache (`--no-cache-filter`).
    IgnoreCache,
    /// No earlier build of this vertex is recorded.
    NewStep,
    /// The content key the runner gave changed since the last build.
    ContentChanged { name: String },
    /// Input `index` gave a different result than in the last build.
    InputChanged { index: usize, name: String },
    /// The inputs are as in the last build, but the record is gone (pruned).
    RecordMissing,
    /// The record was damaged and was moved to `set_aside`.
    RecordCorrupt { set_aside: PathBuf },
    /// The runner could not load the recorded result any more.
    Unloadable,
    /// A reason given as text by another solver (a remote builder's).
    Reported { text: String },
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissReason::NoCache => f.write_str("the cache is disabled (--no-cache)"),
            MissReason::IgnoreCache => {
                f.write_str("the step ignores the cache (--no-cache-filter)")
            }
            MissReason::NewStep => f.write_str("no earlier build of this step"),
            MissReason::ContentChanged { name } => write!(f, "{name} changed"),
            MissReason::InputChanged { index, name } => write!(f, "input {index} ({name}) changed"),
            MissReason::RecordMissing => {
                f.write_str("the inputs are unchanged but the cache record is gone")
            }
            MissReason::RecordCorrupt { set_aside } => write!(
                f,
                "the cache record was damaged and moved to {}",
                set_aside.display()
            ),
            MissReason::Unloadable => f.write_str("the cached result can no longer be loaded"),
            MissReason::Reported { text } => f.write_str(text),
        }
    }
}

type Callback = Arc<dyn Fn(Event) + Send + Sync>;

/// Where a solve sends its events: a callback, or nowhere. The callback is
/// called from the solver's tasks and must not block.
#[derive(Clone, Default)]
pub struct EventSink(Option<Callback>);

impl EventSink {
    /// Drop every event.
    pub fn none() -> Self {
        EventSink(None)
    }

    pub fn new(callback: impl Fn(Event) + Send + Sync + 'static) -> Self {
        EventSink(Some(Arc::new(callback)))
    }

    /// Events into an unbounded channel: the solver never waits for a
    /// slow reader.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = EventSink::new(move |event| {
            // A receiver that hung up wants no more events.
            let _ = tx.send(event);
        });
        (sink, rx)
    }

    pub fn emit(&self, event: Event) {
        if let Some(callback) = &self.0 {
            callback(event);
        }
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "EventSink(callback)"
        } else {
            "EventSink(none)"
        })
    }
}

/// Work of a build outside its graph (exporting, pushing), shown as a step of its
/// own: started when made, then statuses, then completed or failed.
#[derive(Debug)]
pub struct Phase {
    events: EventSink,
    digest: Digest,
    began: std::time::Instant,
    over: bool,
}

impl Phase {
    /// Start the phase `name`. Its digest is unique to this phase: the exports of
    /// two builds (two daemons building for one client) stay two steps.
    pub fn start(events: &EventSink, name: &str) -> Phase {
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let id = format!("phase\n{name}\n{}\n{n}\n{now}", std::process::id());
        let digest = Digest::sha256(id.as_bytes());
        events.emit(Event::VertexStarted {
            digest: digest.clone(),
            name: name.to_owned(),
            platform: None,
        });
        Phase {
            events: events.clone(),
            digest,
            began: std::time::Instant::now(),
            over: false,
        }
    }

    /// Progress of part `id`: see [`Event::VertexStatus`].
    pub fn status(&self, id: &str, current: u64, total: Option<u64>, done: bool) {
        (self.status_fn())(id, current, total, done);
    }

    /// The digest its events carry.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// A part that is a note, finished at once (`exporting manifest sha256:…`).
    pub fn note(&self, id: &str) {
        self.status(id, 0, None, true);
    }

    /// [`Phase::status`] as a function of its own, for code that outlives a borrow.
    pub fn status_fn(&self) -> impl Fn(&str, u64, Option<u64>, bool) + Send + Sync + 'static {
        let (events, digest) = (self.events.clone(), self.digest.clone());
        move |id: &str, current, total, done| {
            events.emit(Event::VertexStatus {
                digest: digest.clone(),
                status: Status::new(id, current, total, done),
            });
        }
    }

    pub fn done(mut self) {
        self.over = true;
        self.events.emit(Event::VertexCompleted {
            digest: self.digest.clone(),
            duration: self.began.elapsed(),
        });
    }

    pub fn failed(mut self, error: &(dyn std::error::Error + 'static)) {
        self.over = true;
        self.events.emit(Event::VertexFailed {
            digest: self.digest.clone(),
            error: crate::error::chain(error),
        });
    }
}

impl Drop for Phase {
    /// A phase left without `done` or `failed` was cut short.
    fn drop(&mut self) {
        if !self.over {
            self.events.emit(Event::VertexCancelled {
                digest: self.digest.clone(),
            });
        }
    }
}

/// One build waiting for a running op.
#[derive(Debug, Clone)]
pub(crate) struct Watcher {
    pub digest: Digest,
    pub name: String,
    pub platform: Option<Platform>,
    pub events: EventSink,
    /// The build's own cancellation.
    pub cancel: CancellationToken,
}

impl Watcher {
    fn started(&self) -> Event {
        Event::VertexStarted {
            digest: self.digest.clone(),
            name: self.name.clone(),
            platform: self.platform.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct AudienceState {
    watchers: Vec<(u64, Watcher)>,
    next_id: u64,
    started: bool,
    /// The last watcher left before the op finished: it was cancelled.
    closed: bool,
    finished: bool,
}

/// The builds waiting for one running op. The op is cancelled when the
/// last of them leaves before it finishes.
#[derive(Debug, Default)]
pub(crate) struct Audience {
    state: Mutex<AudienceState>,
    cancel: CancellationToken,
}

impl Audience {
    fn state(&self) -> MutexGuard<'_, AudienceState> {
        // A panic while holding this lock leaves consistent data (each
        // change is one assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Add a watcher; `None` when the op was already cancelled.
    pub fn join(&self, watcher: Watcher) -> Option<u64> {
        let mut state = self.state();
        if state.closed {
            return None;
        }
        if state.started && !state.finished {
            watcher.events.emit(watcher.started());
        }
        let id = state.next_id;
        state.next_id += 1;
        state.watchers.push((id, watcher));
        Some(id)
    }

    /// Remove a watcher; the op is cancelled if it was the last one.
    /// Returns whether that happened.
    pub fn leave(&self, id: u64) -> bool {
        let mut state = self.state();
        state.watchers.retain(|(i, _)| *i != id);
        if state.watchers.is_empty() && !state.finished && !state.closed {
            state.closed = true;
            self.cancel.cancel();
            return true;
        }
        false
    }

    /// The op begins: tell every watcher. Returns `false`, and cancels the
    /// op instead, when every watcher's build is being cancelled (they may
    /// not have left yet).
    pub fn start(&self) -> bool {
        let mut state = self.state();
        if state.closed || state.watchers.iter().all(|(_, w)| w.cancel.is_cancelled()) {
            state.closed = true;
            self.cancel.cancel();
            return false;
        }
        state.started = true;
        for (_, w) in &state.watchers {
            w.events.emit(w.started());
        }
        true
    }

    /// The op is over.
    pub fn finish(&self) {
        self.state().finished = true;
    }

    pub fn status(&self, id: &str, current: u64, total: Option<u64>, done: bool) {
        let state = self.state();
        for (_, w) in &state.watchers {
            w.events.emit(Event::VertexStatus {
                digest: w.digest.clone(),
                status: Status::new(id, current, total, done),
            });
        }
    }

    pub fn log(&self, stream: LogStream, bytes: Vec<u8>) {
        let state = self.state();
        for (_, w) in &state.watchers {
            w.events.emit(Event::VertexLog {
                digest: w.digest.clone(),
                stream,
                bytes: bytes.clone(),
            });
        }
    }
}

#[cfg(test)]
mod phase_tests {
    use super::*;

    fn recorded() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let seen = seen.clone();
            EventSink::new(move |e| seen.lock().unwrap().push(e))
        };
        (sink, seen)
    }

    #[test]
    fn a_phase_starts_reports_and_ends_as_one_step() {
        let (sink, seen) = recorded();
        let phase = Phase::start(&sink, "exporting to image");
        phase.status("exporting layers", 10, None, false);
        phase.note("naming to x");
        let digest = phase.digest().clone();
        phase.done();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            matches!(&seen[0], Event::VertexStarted { digest: d, name, platform: None }
            if *d == digest && name == "exporting to image")
        );
        assert_eq!(
            seen[1],
            Event::VertexStatus {
                digest: digest.clone(),
                status: Status::new("exporting layers", 10, None, false),
            }
        );
        assert!(matches!(&seen[2], Event::VertexStatus { status, .. }
            if status.id == "naming to x" && status.done));
        assert!(matches!(&seen[3], Event::VertexCompleted { digest: d, .. } if *d == digest));
    }

    #[test]
    fn phases_of_one_name_are_distinct_and_a_dropped_one_is_cancelled() {
        let (sink, seen) = recorded();
        let a = Phase::start(&sink, "pushing r/x:1");
        let b = Phase::start(&sink, "pushing r/x:1");
        assert_ne!(a.digest(), b.digest());
        let gone = b.digest().clone();
        drop(b);
        let failed = a.digest().clone();
        a.failed(&std::io::Error::other("refused"));
        let seen = seen.lock().unwrap();
        assert!(
            seen.contains(&Event::VertexCancelled { digest: gone }),
            "{seen:?}"
        );
        assert!(
            seen.contains(&Event::VertexFailed {
                digest: failed,
                error: "refused".into()
            }),
            "{seen:?}"
        );
    }
}
