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
//! **Invariant:** the solver's callback only updates state and queues text;
//! all writing to the terminal happens on a thread of its own, so a slow or
//! stopped terminal never holds up the build.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;
use oci::Digest;
use solver::{Event, EventSink, LogStream, MissReason};

use crate::render::Hinted;

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
}

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
    match mode {
        Mode::Quiet => (EventSink::none(), Printer { inner: None }),
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
            let inner = Running::Stream { state, tx, thread };
            (sink, Printer { inner: Some(inner) })
        }
        Mode::Tty => {
            let board = Arc::new(Mutex::new(Board::new(Instant::now())));
            let (stop, stopped) = mpsc::channel();
            let thread = {
                let board = board.clone();
                std::thread::spawn(move || draw_loop(&board, &stopped))
            };
            let sink = EventSink::new(move |e| lock(&board).apply(&e, Instant::now()));
            let inner = Running::Tty { stop, thread };
            (sink, Printer { inner: Some(inner) })
        }
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

// ---------------------------------------------------------------- plain

#[derive(Debug, Default)]
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

/// The output lines still waiting for their newline.
fn flush_partial(st: &mut State) -> String {
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

// -------------------------------------------------------------- rawjson

/// The version of the rawjson schema (docs/progress.md). Adding a field or an
/// event kind keeps it; changing or removing one raises it.
const RAWJSON_VERSION: u32 = 1;

/// One event as a line of JSON; `None` for event kinds this version does not
/// know (consumers are promised only documented kinds).
fn raw_json(e: &Event, now: SystemTime) -> Option<String> {
    use serde_json::{Value, json};
    let (kind, digest, fields): (&str, &Digest, Value) = match e {
        Event::VertexStarted {
            digest,
            name,
            platform,
        } => (
            "started",
            digest,
            json!({"name": name, "platform": platform.as_ref().map(ToString::to_string)}),
        ),
        Event::VertexCached { digest, name, key } => (
            "cached",
            digest,
            json!({"name": name, "key": key.to_string()}),
        ),
        Event::CacheMiss {
            digest,
            key,
            reason,
        } => (
            "cache_miss",
            digest,
            json!({"key": key.to_string(), "cause": miss_cause(reason), "reason": reason.to_string()}),
        ),
        Event::VertexLog {
            digest,
            stream,
            bytes,
        } => (
            "log",
            digest,
            json!({"stream": if *stream == LogStream::Stdout { "stdout" } else { "stderr" },
                "data": String::from_utf8_lossy(bytes)}),
        ),
        Event::VertexCompleted { digest, duration } => (
            "completed",
            digest,
            json!({"seconds": duration.as_secs_f64()}),
        ),
        Event::VertexFailed { digest, error } => ("failed", digest, json!({"error": error})),
        Event::VertexCancelled { digest } => ("cancelled", digest, json!({})),
        _ => return None,
    };
    let time = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut v =
        json!({"v": RAWJSON_VERSION, "event": kind, "time": time, "vertex": digest.to_string()});
    if let (Value::Object(v), Value::Object(fields)) = (&mut v, fields) {
        v.extend(fields);
    }
    Some(v.to_string())
}

/// A stable code for why a step missed the cache.
fn miss_cause(r: &MissReason) -> &'static str {
    match r {
        MissReason::NoCache => "no_cache",
        MissReason::IgnoreCache => "ignore_cache",
        MissReason::NewStep => "new_step",
        MissReason::ContentChanged { .. } => "content_changed",
        MissReason::InputChanged { .. } => "input_changed",
        MissReason::RecordMissing => "record_missing",
        MissReason::RecordCorrupt { .. } => "record_corrupt",
        MissReason::Unloadable => "unloadable",
        _ => "other",
    }
}

// ------------------------------------------------------------------ tty

/// Output lines kept under a running step.
const TAIL: usize = 6;
/// The longest unfinished output line kept, in bytes.
const PARTIAL_MAX: usize = 4096;
const FRAME_INTERVAL: Duration = Duration::from_millis(100);
/// How often the terminal size is asked again, in frames.
const SIZE_EVERY: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Numbered (a cache miss) but not started yet.
    Waiting,
    Running,
    Cached,
    Done,
    Failed,
    Cancelled,
}

#[derive(Debug)]
struct Step {
    number: usize,
    name: Option<String>,
    platform: Option<String>,
    status: Status,
    started: Option<Instant>,
    /// How long it ran, once it is over.
    took: Option<Duration>,
    tail: VecDeque<String>,
    partial: HashMap<bool, Vec<u8>>,
}

/// What the tty display shows; the solver's callback updates it, the draw
/// thread reads it.
#[derive(Debug)]
struct Board {
    begun: Instant,
    steps: Vec<Step>,
    index: HashMap<Digest, usize>,
    dirty: bool,
}

impl Board {
    fn new(begun: Instant) -> Board {
        Board {
            begun,
            steps: Vec::new(),
            index: HashMap::new(),
            dirty: true,
        }
    }

    fn step(&mut self, d: &Digest) -> &mut Step {
        let next = self.steps.len();
        let i = *self.index.entry(d.clone()).or_insert(next);
        if i == next {
            self.steps.push(Step {
                number: next + 1,
                name: None,
                platform: None,
                status: Status::Waiting,
                started: None,
                took: None,
                tail: VecDeque::new(),
                partial: HashMap::new(),
            });
        }
        &mut self.steps[i]
    }

    fn apply(&mut self, e: &Event, now: Instant) {
        self.dirty = true;
        match e {
            Event::VertexStarted {
                digest,
                name,
                platform,
            } => {
                let s = self.step(digest);
                s.name = Some(name.clone());
                s.platform = platform.as_ref().map(ToString::to_string);
                if s.status != Status::Running {
                    s.status = Status::Running;
                    s.started = Some(now);
                }
            }
            Event::VertexCached { digest, name, .. } => {
                let s = self.step(digest);
                s.name = Some(name.clone());
                s.status = Status::Cached;
            }
            Event::CacheMiss { digest, .. } => {
                self.step(digest);
            }
            Event::VertexLog {
                digest,
                stream,
                bytes,
            } => self.step(digest).log(*stream == LogStream::Stderr, bytes),
            Event::VertexCompleted { digest, duration } => {
                let s = self.step(digest);
                s.status = Status::Done;
                s.took = Some(*duration);
            }
            Event::VertexFailed { digest, .. } => self.step(digest).end(Status::Failed, now),
            Event::VertexCancelled { digest } => {
                let s = self.step(digest);
                if matches!(s.status, Status::Waiting | Status::Running) {
                    s.end(Status::Cancelled, now);
                }
            }
            _ => self.dirty = false,
        }
    }
}

impl Step {
    fn log(&mut self, stderr: bool, bytes: &[u8]) {
        let buf = self.partial.entry(stderr).or_default();
        buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            lines.push(clean(&buf[..pos]));
            buf.drain(..=pos);
        }
        if buf.len() > PARTIAL_MAX {
            buf.drain(..buf.len() - PARTIAL_MAX);
        }
        for l in lines {
            if self.tail.len() == TAIL {
                self.tail.pop_front();
            }
            self.tail.push_back(l);
        }
    }

    fn end(&mut self, status: Status, now: Instant) {
        self.status = status;
        self.took = self.started.map(|t| now.duration_since(t));
    }

    /// The last output lines, the unfinished one included.
    fn last_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.tail.iter().cloned().collect();
        for buf in self.partial.values().filter(|b| !b.is_empty()) {
            lines.push(clean(buf));
        }
        let skip = lines.len().saturating_sub(TAIL);
        lines.split_off(skip)
    }
}

/// One output line made safe to show: the text after its last carriage
/// return, without escape sequences or control characters, tabs expanded.
fn clean(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.rsplit('\r').find(|p| !p.is_empty()).unwrap_or("");
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next_if_eq(&'[').is_some() {
                    // A CSI sequence ends with a byte in @..~.
                    while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                } else {
                    chars.next();
                }
            }
            '\t' => {
                let n = 8 - out.chars().count() % 8;
                out.extend(std::iter::repeat_n(' ', n));
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// How one frame is drawn.
#[derive(Debug, Clone, Copy)]
struct Screen {
    width: usize,
    /// The most lines a live frame may take (the final one takes what it needs).
    height: Option<usize>,
    colour: bool,
}

const RESET: &str = "\x1b[0m";

/// The lines of one frame, without escape sequences for cursor movement.
fn frame(b: &Board, now: Instant, screen: Screen, last: bool) -> Vec<String> {
    let shown: Vec<&Step> = b.steps.iter().filter(|s| s.name.is_some()).collect();
    let platforms: HashSet<&str> = shown.iter().filter_map(|s| s.platform.as_deref()).collect();
    let finished = shown
        .iter()
        .filter(|s| matches!(s.status, Status::Cached | Status::Done))
        .count();
    let mut header = format!(
        "[+] Building {:.1}s ({finished}/{})",
        now.duration_since(b.begun).as_secs_f64(),
        shown.len()
    );
    if last {
        let failed = |st| shown.iter().any(|s| s.status == st);
        header.push_str(if failed(Status::Failed) {
            " ERROR"
        } else if failed(Status::Cancelled) {
            " CANCELED"
        } else {
            " FINISHED"
        });
    }
    let mut blocks: Vec<(bool, String, Vec<String>)> = shown
        .iter()
        .map(|s| {
            let line = step_line(s, platforms.len() > 1, now, screen);
            let tail = match s.status {
                Status::Running if !last => s.last_lines(),
                Status::Failed => s.last_lines(),
                _ => Vec::new(),
            };
            let tail = tail
                .into_iter()
                .map(|t| paint(&fit(&format!("    > {t}"), screen.width), "\x1b[2m", screen))
                .collect();
            (s.status == Status::Running, line, tail)
        })
        .collect();
    if let Some(height) = screen.height.filter(|_| !last) {
        squeeze(&mut blocks, height.saturating_sub(1));
    }
    let mut lines = vec![fit(&header, screen.width)];
    for (_, line, tail) in blocks {
        lines.push(line);
        lines.extend(tail);
    }
    lines
}

/// Drop lines until the frame (a header and `blocks`) fits in `max` lines:
/// finished steps first, oldest first, then output lines, then the oldest
/// running steps.
fn squeeze(blocks: &mut Vec<(bool, String, Vec<String>)>, max: usize) {
    let size =
        |b: &[(bool, String, Vec<String>)]| 1 + b.iter().map(|b| 1 + b.2.len()).sum::<usize>();
    while size(blocks) > max {
        match blocks.iter().position(|b| !b.0) {
            Some(i) => {
                blocks.remove(i);
            }
            None => break,
        }
    }
    while size(blocks) > max {
        match blocks.iter_mut().max_by_key(|b| b.2.len()) {
            Some(b) if !b.2.is_empty() => {
                b.2.remove(0);
            }
            _ => break,
        }
    }
    while size(blocks) > max.max(2) {
        blocks.remove(0);
    }
}

fn step_line(s: &Step, with_platform: bool, now: Instant, screen: Screen) -> String {
    let name = s.name.as_deref().unwrap_or_default();
    // The frontend names the steps of multi-platform builds `[linux/386 …]`;
    // a name without that prefix gets it here.
    let named = name
        .strip_prefix('[')
        .and_then(|rest| rest.split([' ', ']']).next())
        .is_some_and(|word| word.contains('/'));
    let label = match (&s.platform, with_platform && !named) {
        (Some(p), true) => match name.strip_prefix('[') {
            Some(rest) => format!("[{p} {rest}"),
            None => format!("[{p}] {name}"),
        },
        _ => name.to_owned(),
    };
    let secs = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64();
    let (right, colour) = match s.status {
        Status::Waiting => (String::new(), ""),
        Status::Running => (
            format!("{:.1}s", secs(s.started.map(|t| now.duration_since(t)))),
            "",
        ),
        Status::Cached => ("CACHED".to_owned(), "\x1b[34m"),
        Status::Done => (format!("{:.1}s DONE", secs(s.took)), "\x1b[34m"),
        Status::Failed => (format!("{:.1}s ERROR", secs(s.took)), "\x1b[31m"),
        Status::Cancelled => ("CANCELED".to_owned(), "\x1b[33m"),
    };
    let left = format!("#{} {label}", s.number);
    let room = screen.width.saturating_sub(right.chars().count() + 1);
    let left = fit(&left, room);
    let pad = room.saturating_sub(left.chars().count());
    let line = format!("{left}{:pad$} {right}", "");
    paint(line.trim_end(), colour, screen)
}

/// `s` cut to `width` characters, with `…` marking the cut.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn paint(s: &str, colour: &str, screen: Screen) -> String {
    if screen.colour && !colour.is_empty() {
        format!("{colour}{s}{RESET}")
    } else {
        s.to_owned()
    }
}

/// The draw thread: a frame every [`FRAME_INTERVAL`] while something changes
/// or runs, then the final frame once `stop` says the build is over.
fn draw_loop(board: &Mutex<Board>, stop: &mpsc::Receiver<()>) {
    let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut screen = Screen {
        width: 79,
        height: Some(24),
        colour,
    };
    let mut err = std::io::stderr();
    // Hide the cursor and turn off line wrapping, so that every line of a
    // frame takes exactly one row even if the terminal narrows.
    let _ = err.write_all(b"\x1b[?25l\x1b[?7l");
    let mut drawn = 0;
    let mut frames = 0u32;
    loop {
        let last = match stop.recv_timeout(FRAME_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        if (frames.is_multiple_of(SIZE_EVERY) || last)
            && let Some((rows, cols)) = terminal_size()
        {
            // The last column stays empty: with wrapping off, the cursor
            // stays on it after it is written, and `\x1b[K` would erase it.
            (screen.width, screen.height) = (cols - 1, Some(rows));
        }
        frames = frames.wrapping_add(1);
        let lines = {
            let mut b = lock(board);
            let running = b.steps.iter().any(|s| s.status == Status::Running);
            if !(b.dirty || running || last) {
                continue;
            }
            b.dirty = false;
            frame(&b, Instant::now(), screen, last)
        };
        let mut out = String::new();
        if drawn > 0 {
            out.push_str(&format!("\r\x1b[{drawn}A"));
        }
        for l in &lines {
            out.push_str(l);
            out.push_str("\x1b[K\n");
        }
        out.push_str("\x1b[J");
        if last {
            out.push_str("\x1b[?7h\x1b[?25h");
        }
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
        drawn = lines.len();
        if last {
            return;
        }
    }
}

/// Rows and columns of the terminal on standard error, from `stty size` (the
/// binary allows no unsafe code for the ioctl), else `LINES`/`COLUMNS`.
fn terminal_size() -> Option<(usize, usize)> {
    use std::os::fd::AsFd;
    let from_stty = || {
        let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
        let out = std::process::Command::new("stty")
            .arg("size")
            .stdin(fd)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let (rows, cols) = text.trim().split_once(' ')?;
        Some((rows.parse().ok()?, cols.parse().ok()?))
    };
    let from_env = || {
        let var = |k| std::env::var(k).ok()?.parse::<usize>().ok();
        Some((var("LINES")?, var("COLUMNS")?))
    };
    from_stty()
        .or_else(from_env)
        .filter(|&(rows, cols)| rows > 0 && cols > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    const SCREEN: Screen = Screen {
        width: 60,
        height: None,
        colour: false,
    };

    fn started(n: u8, name: &str, platform: &str) -> Event {
        Event::VertexStarted {
            digest: digest(n),
            name: name.into(),
            platform: Some(oci::Platform::parse(platform).unwrap()),
        }
    }

    fn log(n: u8, text: &str) -> Event {
        Event::VertexLog {
            digest: digest(n),
            stream: LogStream::Stdout,
            bytes: text.as_bytes().to_vec(),
        }
    }

    /// A board after `events`, each one a tenth of a second after the last.
    fn board(events: &[Event]) -> (Board, Instant) {
        let t0 = Instant::now();
        let mut b = Board::new(t0);
        let mut t = t0;
        for e in events {
            t += Duration::from_millis(100);
            b.apply(e, t);
        }
        (b, t)
    }

    #[test]
    fn frame_shows_steps_platforms_markers_and_output_tails() {
        let mut events = vec![
            Event::VertexCached {
                digest: digest(1),
                name: "[stage-0 1/2] FROM busybox".into(),
                key: digest(9),
            },
            started(2, "[stage-0 2/2] RUN make", "linux/amd64"),
            started(3, "[stage-0 2/2] RUN make", "linux/386"),
        ];
        for i in 0..8 {
            events.push(log(2, &format!("line {i}\n")));
        }
        events.push(log(2, "partial"));
        events.push(Event::VertexCompleted {
            digest: digest(3),
            duration: Duration::from_millis(1500),
        });
        let (b, now) = board(&events);
        let lines = frame(&b, now, SCREEN, false);
        assert_eq!(
            lines,
            [
                "[+] Building 1.3s (2/3)",
                "#1 [stage-0 1/2] FROM busybox                         CACHED",
                "#2 [linux/amd64 stage-0 2/2] RUN make                   1.1s",
                "    > line 3",
                "    > line 4",
                "    > line 5",
                "    > line 6",
                "    > line 7",
                "    > partial",
                "#3 [linux/386 stage-0 2/2] RUN make                1.5s DONE",
            ]
        );
    }

    #[test]
    fn a_name_that_carries_its_platform_keeps_it_once() {
        let (b, now) = board(&[
            started(1, "[linux/386 stage-0 2/2] RUN make", "linux/386"),
            started(2, "[linux/amd64 stage-0 2/2] RUN make", "linux/amd64"),
        ]);
        let lines = frame(&b, now, SCREEN, false);
        assert!(
            lines[1].starts_with("#1 [linux/386 stage-0 2/2] RUN make "),
            "{lines:#?}"
        );
    }

    #[test]
    fn final_frame_says_how_the_build_ended_and_keeps_the_failed_output() {
        let (b, now) = board(&[
            started(1, "[2/2] RUN false", "linux/amd64"),
            log(1, "about to fail\n"),
            Event::VertexFailed {
                digest: digest(1),
                error: "exit code 1".into(),
            },
            Event::CacheMiss {
                digest: digest(2),
                key: digest(9),
                reason: MissReason::NewStep,
            },
            Event::VertexCancelled { digest: digest(2) },
        ]);
        let lines = frame(&b, now, SCREEN, true);
        assert_eq!(
            lines,
            [
                "[+] Building 0.5s (0/1) ERROR",
                "#1 [2/2] RUN false                                0.2s ERROR",
                "    > about to fail",
            ]
        );
    }

    #[test]
    fn a_live_frame_fits_the_terminal_height() {
        let mut events = Vec::new();
        for n in 1..=5 {
            events.push(started(n, &format!("step {n}"), "linux/amd64"));
            events.push(log(n, "a\nb\nc\n"));
        }
        for n in 1..=3 {
            events.push(Event::VertexCompleted {
                digest: digest(n),
                duration: Duration::from_secs(1),
            });
        }
        let (b, now) = board(&events);
        let screen = Screen {
            height: Some(7),
            ..SCREEN
        };
        let lines = frame(&b, now, screen, false);
        assert_eq!(lines.len(), 6, "{lines:#?}");
        assert!(lines[1].starts_with("#4 step 4"), "{lines:#?}");
        assert_eq!(
            frame(&b, now, screen, true).len(),
            6,
            "the final frame shows every step"
        );
    }

    #[test]
    fn output_lines_are_cleaned_and_lines_cut_to_the_width() {
        assert_eq!(clean(b"\x1b[1;31mred\x1b[0m\tx"), "red     x");
        assert_eq!(clean(b"10%\r50%\r100%\r"), "100%");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }

    #[test]
    fn rawjson_objects_carry_version_kind_time_and_vertex() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1500);
        let e = Event::CacheMiss {
            digest: digest(1),
            key: digest(2),
            reason: MissReason::NewStep,
        };
        let v: serde_json::Value = serde_json::from_str(&raw_json(&e, t).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"v": 1, "event": "cache_miss", "time": 1.5,
                "vertex": digest(1).to_string(), "key": digest(2).to_string(),
                "cause": "new_step", "reason": "no earlier build of this step"})
        );
    }

    #[test]
    fn plain_numbers_steps_and_prefixes_output() {
        let mut st = State::default();
        let text: String = [
            started(1, "[1/1] RUN echo", "linux/amd64"),
            log(1, "hi\nthere"),
        ]
        .iter()
        .map(|e| plain(&mut st, e))
        .collect();
        assert!(text.starts_with("#1 [1/1] RUN echo\n#1 0.0"), "{text}");
        assert!(text.ends_with(" hi\n"), "{text}");
        assert_eq!(flush_partial(&mut st), "#1 there\n");
    }
}
