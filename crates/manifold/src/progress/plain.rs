//! The `plain` progress format: BuildKit's numbered lines.

use std::collections::HashMap;
use std::time::Instant;

use oci::Digest;
use solver::{Event, LogStream};

#[derive(Debug, Default)]
pub(super) struct State {
    numbers: HashMap<Digest, usize>,
    started: HashMap<Digest, Instant>,
    /// Partial output lines per step and stream.
    partial: HashMap<(Digest, bool), Vec<u8>>,
    /// When each status of a step was first and last printed.
    statuses: HashMap<(Digest, String), (Instant, Instant)>,
}

/// The shortest time between two lines of one running status.
const STATUS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl State {
    fn number(&mut self, d: &Digest) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(d.clone()).or_insert(next)
    }
}

/// The output lines still waiting for their newline.
pub(super) fn flush_partial(st: &mut State) -> String {
    let rest: Vec<_> = st.partial.drain().collect();
    let mut out = String::new();
    for ((d, _), bytes) in rest {
        if !bytes.is_empty() {
            let n = st.numbers.get(&d).copied().unwrap_or(0);
            out.push_str(&format!("#{n} {}\n", String::from_utf8_lossy(&bytes)));
        }
    }
    out
}

pub(super) fn plain(st: &mut State, e: &Event) -> String {
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
        Event::VertexStatus { digest, status } => {
            let n = st.number(digest);
            let now = Instant::now();
            let text = super::status_text(status);
            let done = &status.done;
            let key = (digest.clone(), status.id.clone());
            match st.statuses.get_mut(&key) {
                // A note: over as soon as it is said.
                None if *done => {
                    st.statuses.insert(key, (now, now));
                    format!("#{n} {text} done\n")
                }
                None => {
                    st.statuses.insert(key, (now, now));
                    format!("#{n} {text}\n")
                }
                Some((first, last)) if *done || now.duration_since(*last) >= STATUS_EVERY => {
                    *last = now;
                    let secs = now.duration_since(*first).as_secs_f64();
                    let end = if *done { " done" } else { "" };
                    format!("#{n} {text} {secs:.1}s{end}\n")
                }
                Some(_) => String::new(),
            }
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
