//! Build progress on standard error, from the solver's events.
//!
//! `plain` prints BuildKit's plain format: every step gets a number when it first
//! shows up (`#3 [stage 2/4] RUN make`), its output lines are prefixed with the
//! number and the seconds since the step started, and it ends with `CACHED`,
//! `DONE 1.2s`, `ERROR: …` or `CANCELED`. A cache miss is explained on its own
//! line. `rawjson` prints one JSON object per event. `quiet` prints nothing.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::bail;
use oci::Digest;
use solver::{Event, EventSink, LogStream};

use crate::render::Hinted;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    RawJson,
    Quiet,
}

impl Mode {
    pub fn parse(s: &str) -> anyhow::Result<Mode> {
        Ok(match s {
            // The interactive display is the plain one for now.
            "auto" | "tty" | "plain" => Mode::Plain,
            "rawjson" => Mode::RawJson,
            "quiet" | "none" => Mode::Quiet,
            other => bail!(Hinted::new(
                format!("unknown progress type {other:?}"),
                "--progress takes auto, plain, tty, rawjson or quiet",
            )),
        })
    }
}

#[derive(Default)]
struct State {
    numbers: HashMap<Digest, usize>,
    started: HashMap<Digest, Instant>,
    /// Partial output lines per step and stream.
    partial: HashMap<(Digest, bool), Vec<u8>>,
}

impl State {
    fn number(&mut self, d: &Digest) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(d.clone()).or_insert(next)
    }
}

/// Flushes partial lines when the build ends.
pub struct Printer {
    state: Arc<Mutex<State>>,
}

impl Printer {
    pub fn finish(self) {
        let mut st = self.state.lock().expect("progress lock");
        let rest: Vec<_> = st.partial.drain().collect();
        let mut err = std::io::stderr().lock();
        for ((d, _), bytes) in rest {
            if !bytes.is_empty() {
                let n = st.numbers.get(&d).copied().unwrap_or(0);
                let _ = writeln!(err, "#{n} {}", String::from_utf8_lossy(&bytes));
            }
        }
    }
}

pub fn start(mode: Mode) -> (EventSink, Printer) {
    let state = Arc::new(Mutex::new(State::default()));
    let printer = Printer {
        state: state.clone(),
    };
    let _ = std::io::stderr().is_terminal();
    let sink = match mode {
        Mode::Quiet => EventSink::none(),
        Mode::RawJson => EventSink::new(|e| {
            let line = raw_json(&e);
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }),
        Mode::Plain => EventSink::new(move |e| {
            let mut st = state.lock().expect("progress lock");
            let text = plain(&mut st, &e);
            if !text.is_empty() {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        }),
    };
    (sink, printer)
}

fn plain(st: &mut State, e: &Event) -> String {
    match e {
        Event::VertexStarted { digest, name, .. } => {
            let n = st.number(digest);
            st.started.insert(digest.clone(), Instant::now());
            format!("#{n} {name}\n")
        }
        Event::VertexCached { digest, name, .. } => {
            let n = st.number(digest);
            format!("#{n} {name}\n#{n} CACHED\n")
        }
        Event::CacheMiss { digest, reason, .. } => {
            let n = st.number(digest);
            format!("#{n} cache miss: {reason}\n")
        }
        Event::VertexLog {
            digest,
            stream,
            bytes,
        } => {
            let n = st.number(digest);
            let secs = st
                .started
                .get(digest)
                .map_or(0.0, |t| t.elapsed().as_secs_f64());
            let key = (digest.clone(), *stream == LogStream::Stderr);
            let buf = st.partial.entry(key).or_default();
            buf.extend_from_slice(bytes);
            let mut out = String::new();
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                out.push_str(&format!(
                    "#{n} {secs:.3} {}\n",
                    String::from_utf8_lossy(&line[..line.len() - 1])
                ));
            }
            out
        }
        Event::VertexCompleted { digest, duration } => {
            let n = st.number(digest);
            format!("#{n} DONE {:.1}s\n", duration.as_secs_f64())
        }
        Event::VertexFailed { digest, error } => {
            let n = st.number(digest);
            format!("#{n} ERROR: {error}\n")
        }
        Event::VertexCancelled { digest } => match st.numbers.get(digest) {
            Some(n) => format!("#{n} CANCELED\n"),
            None => String::new(),
        },
        _ => String::new(),
    }
}

fn raw_json(e: &Event) -> String {
    use serde_json::json;
    let v = match e {
        Event::VertexStarted {
            digest,
            name,
            platform,
        } => json!({"event": "started", "vertex": digest.to_string(), "name": name,
            "platform": platform.as_ref().map(ToString::to_string)}),
        Event::VertexCached { digest, name, key } => {
            json!({"event": "cached", "vertex": digest.to_string(), "name": name, "key": key.to_string()})
        }
        Event::VertexLog {
            digest,
            stream,
            bytes,
        } => json!({"event": "log", "vertex": digest.to_string(),
            "stream": if *stream == LogStream::Stdout { "stdout" } else { "stderr" },
            "data": String::from_utf8_lossy(bytes)}),
        Event::VertexCompleted { digest, duration } => json!({"event": "completed",
            "vertex": digest.to_string(), "seconds": duration.as_secs_f64()}),
        Event::VertexFailed { digest, error } => {
            json!({"event": "failed", "vertex": digest.to_string(), "error": error})
        }
        Event::VertexCancelled { digest } => {
            json!({"event": "cancelled", "vertex": digest.to_string()})
        }
        Event::CacheMiss {
            digest,
            key,
            reason,
        } => json!({"event": "cache_miss", "vertex": digest.to_string(),
            "key": key.to_string(), "reason": reason.to_string()}),
        _ => json!({"event": "other"}),
    };
    v.to_string()
}
