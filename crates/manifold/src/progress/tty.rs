//! The `tty` progress display, redrawn in place by a thread of its own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use oci::Digest;
use solver::{Event, LogStream};

use super::lock;

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
    /// Progress of its parts (layers pulled, exported, pushed), in first-seen order.
    statuses: Vec<Stat>,
}

/// One status of a step.
#[derive(Debug)]
struct Stat {
    status: solver::Status,
    first: Instant,
    /// How long it took, once done.
    took: Option<Duration>,
}

/// What the tty display shows; the solver's callback updates it, the draw
/// thread reads it.
#[derive(Debug)]
pub(super) struct Board {
    begun: Instant,
    steps: Vec<Step>,
    index: HashMap<Digest, usize>,
    dirty: bool,
}

impl Board {
    pub(super) fn new(begun: Instant) -> Board {
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
                statuses: Vec::new(),
            });
        }
        &mut self.steps[i]
    }

    pub(super) fn apply(&mut self, e: &Event, now: Instant) {
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
            Event::VertexStatus { digest, status } => {
                let s = self.step(digest);
                let i = match s.statuses.iter().position(|t| t.status.id == status.id) {
                    Some(i) => i,
                    None => {
                        s.statuses.push(Stat {
                            status: status.clone(),
                            first: now,
                            took: None,
                        });
                        s.statuses.len() - 1
                    }
                };
                let t = &mut s.statuses[i];
                t.status = status.clone();
                if status.done && t.took.is_none() {
                    t.took = Some(now.duration_since(t.first));
                }
            }
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
pub(super) fn clean(bytes: &[u8]) -> String {
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
pub(super) struct Screen {
    pub(super) width: usize,
    /// The most lines a live frame may take (the final one takes what it needs).
    pub(super) height: Option<usize>,
    pub(super) colour: bool,
}

const RESET: &str = "\x1b[0m";

/// The lines of one frame, without escape sequences for cursor movement.
pub(super) fn frame(b: &Board, now: Instant, screen: Screen, last: bool) -> Vec<String> {
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
            let mut tail: Vec<String> = tail
                .into_iter()
                .map(|t| paint(&fit(&format!("    > {t}"), screen.width), "\x1b[2m", screen))
                .collect();
            let statuses = s.statuses.iter().map(|t| status_line(t, now, screen));
            tail.splice(0..0, statuses);
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

/// `    => ID 1.2MB / 3.4MB 0.5s`, ending in `done` once it is over.
fn status_line(t: &Stat, now: Instant, screen: Screen) -> String {
    let text = super::status_text(&t.status);
    let line = match t.took {
        // A note, over when it was said.
        Some(d) if d.is_zero() => format!("    => {text} done"),
        Some(d) => format!("    => {text} {:.1}s done", d.as_secs_f64()),
        None => format!(
            "    => {text} {:.1}s",
            now.duration_since(t.first).as_secs_f64()
        ),
    };
    fit(&line, screen.width)
}

/// `s` cut to `width` characters, with `…` marking the cut.
pub(super) fn fit(s: &str, width: usize) -> String {
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
pub(super) fn draw_loop(board: &Mutex<Board>, stop: &mpsc::Receiver<()>) {
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
