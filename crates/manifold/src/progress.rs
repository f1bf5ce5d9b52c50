//! Build progress on standard error, from the solver's events.
//!
//! `tty` redraws a display in place: a header (`[+] Building 3.1s (4/9)`), one
//! line per step (number, platform and name, elapsed time, `CACHED` / `DONE` /
//! `ERROR` / `CANCELED`) and the last lines of output of each running step.
//! `plain` prints BuildKit's plain format: every step gets a number when it
//! first shows up (`#3 [stage 2/4] RUN make`), its output lines are prefixed
//! with the number and the seconds since the step started, and it ends with
//! `CACHED`, `DONE 1.2s`, `ERROR: …` or `CANCELED`. A cache miss is explained
//! on its own line. `rawjson` prints one JSON object per event (schema in
//! docs/progress.md). `quiet` prints nothing. `auto` is `tty` when standard
//! error is a terminal, else `plain`.
//!
//! Warnings about the Dockerfile (its build checks) are collected, each once, and
//! `tty` and `plain` print them when the progress ends, one line each and then
//! how many there were, as buildx does; `rawjson` prints each as an event.
//!
//! **Invariant:** the solver's callback only updates state and queues text;
//! all writing to the terminal happens on a thread of its own, so a slow or
//! stopped terminal never holds up the build.

mod plain;
mod rawjson;
#[cfg(test)]
mod tests;
mod tty;

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use anyhow::bail;
use solver::{Event, EventSink};

use crate::render::Hinted;
use plain::{State, flush_partial, plain};
use rawjson::raw_json;
use tty::{Board, draw_loop};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tty,
    Plain,
    RawJson,
    Quiet,
}

impl Mode {
    pub fn parse(s: &str) -> anyhow::Result<Mode> {
        Ok(match s {
            "auto" if stderr_is_terminal() => Mode::Tty,
            "auto" | "plain" => Mode::Plain,
            "tty" => Mode::Tty,
            "rawjson" => Mode::RawJson,
            "quiet" | "none" => Mode::Quiet,
            other => bail!(Hinted::new(
                format!("unknown progress type {other:?}"),
                "--progress takes auto, plain, tty, rawjson or quiet",
            )),
        })
    }
}

fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Ends the progress output when the build is over (also when dropped).
#[derive(Debug)]
pub struct Printer {
    inner: Option<Running>,
    /// The build's warnings, printed after the progress (`None`: not printed).
    warnings: Option<Warnings>,
}

type Warnings = Arc<Mutex<Vec<solver::Warning>>>;

#[derive(Debug)]
enum Running {
    Stream {
        state: Arc<Mutex<State>>,
        tx: mpsc::Sender<Msg>,
        thread: JoinHandle<()>,
    },
    Tty {
        stop: mpsc::Sender<()>,
        thread: JoinHandle<()>,
    },
}

#[derive(Debug)]
enum Msg {
    Text(String),
    Stop,
}

impl Printer {
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stop_progress();
        if let Some(warnings) = self.warnings.take() {
            let text = warnings_text(&lock(&warnings));
            if !text.is_empty() {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                let _ = err.flush();
            }
        }
    }

    fn stop_progress(&mut self) {
        match self.inner.take() {
            None => {}
            Some(Running::Stream { state, tx, thread }) => {
                let rest = flush_partial(&mut lock(&state));
                let _ = tx.send(Msg::Text(rest));
                let _ = tx.send(Msg::Stop);
                let _ = thread.join();
            }
            Some(Running::Tty { stop, thread }) => {
                let _ = stop.send(());
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn start(mode: Mode) -> (EventSink, Printer) {
    let (sink, inner) = match mode {
        Mode::Quiet => {
            return (
                EventSink::none(),
                Printer {
                    inner: None,
                    warnings: None,
                },
            );
        }
        Mode::Plain | Mode::RawJson => {
            let state = Arc::new(Mutex::new(State::default()));
            let (tx, rx) = mpsc::channel();
            let thread = std::thread::spawn(move || write_lines(rx));
            let sink = {
                let (state, tx) = (state.clone(), tx.clone());
                EventSink::new(move |e| {
                    let text = if mode == Mode::RawJson {
                        raw_json(&e, SystemTime::now()).map_or(String::new(), |l| l + "\n")
                    } else {
                        plain(&mut lock(&state), &e)
                    };
                    if !text.is_empty() {
                        // After `finish` the writer is gone; later events are dropped.
                        let _ = tx.send(Msg::Text(text));
                    }
                })
            };
            (sink, Running::Stream { state, tx, thread })
        }
        Mode::Tty => {
            let board = Arc::new(Mutex::new(Board::new(Instant::now())));
            let (stop, stopped) = mpsc::channel();
            let thread = {
                let board = board.clone();
                std::thread::spawn(move || draw_loop(&board, &stopped))
            };
            let sink = EventSink::new(move |e| lock(&board).apply(&e, Instant::now()));
            (sink, Running::Tty { stop, thread })
        }
    };
    let warnings = Warnings::default();
    let sink = {
        let warnings = warnings.clone();
        EventSink::new(move |e| {
            if let Event::Warning { warning, .. } = &e {
                let mut all = lock(&warnings);
                if all.contains(warning) {
                    // Another node, or another platform, found it too.
                    return;
                }
                all.push(warning.clone());
            }
            sink.emit(e);
        })
    };
    let printer = Printer {
        inner: Some(inner),
        // Programs reading rawjson have the events.
        warnings: (mode != Mode::RawJson).then_some(warnings),
    };
    (sink, printer)
}

/// The build's warnings after its progress: ` - Rule: message (line N)` each,
/// then `N warnings found (use --call=check for details)`; empty when there are
/// none.
fn warnings_text(warnings: &[solver::Warning]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for w in warnings {
        let _ = write!(out, " - {}: {}", w.rule, w.message);
        if let Some(line) = w.line {
            let _ = write!(out, " (line {line})");
        }
        out.push('\n');
    }
    match warnings.len() {
        0 => {}
        1 => out.push_str("1 warning found (use --call=check for details)\n"),
        n => {
            let _ = writeln!(out, "{n} warnings found (use --call=check for details)");
        }
    }
    out
}

/// A status as text: `ID 12.3MB / 45.6MB`, `ID 12.3MB` (no total known) or `ID` (a
/// note: no bytes).
fn status_text(s: &solver::Status) -> String {
    use crate::render::human_size;
    let id = &s.id;
    match (s.current, s.total) {
        (0, None) => id.to_owned(),
        (c, None) => format!("{id} {}", human_size(c)),
        (c, Some(t)) => format!("{id} {} / {}", human_size(c), human_size(t)),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update leaves the state consistent, so a poisoned lock is usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer thread of `plain` and `rawjson`.
fn write_lines(rx: mpsc::Receiver<Msg>) {
    while let Ok(Msg::Text(text)) = rx.recv() {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

/// A build's plain log and step counts, kept while it runs for `manifold history`.
#[derive(Debug, Default)]
pub struct Recorder {
    state: Mutex<State>,
    log: Mutex<String>,
    steps: std::sync::atomic::AtomicU64,
    cached: std::sync::atomic::AtomicU64,
}

impl Recorder {
    /// `events`, with every event also written to the recorder's log.
    pub fn tee(events: EventSink) -> (EventSink, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        let r = rec.clone();
        let sink = EventSink::new(move |e| {
            use std::sync::atomic::Ordering::Relaxed;
            match &e {
                Event::VertexCompleted { .. } => {
                    r.steps.fetch_add(1, Relaxed);
                }
                Event::VertexCached { .. } => {
                    r.steps.fetch_add(1, Relaxed);
                    r.cached.fetch_add(1, Relaxed);
                }
                _ => {}
            }
            let text = plain(&mut lock(&r.state), &e);
            lock(&r.log).push_str(&text);
            events.emit(e);
        });
        (sink, rec)
    }

    /// The log so far (partial output lines included), steps, and cached steps.
    pub fn take(&self) -> (String, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut log = std::mem::take(&mut *lock(&self.log));
        log.push_str(&flush_partial(&mut lock(&self.state)));
        (log, self.steps.load(Relaxed), self.cached.load(Relaxed))
    }
}
