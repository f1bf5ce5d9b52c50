//! Dockerfile parser with BuildKit's (Dockerfile 1.x stable) semantics.
//!
//! [`parse`] never fails and never panics: it returns a [`Dockerfile`] tree
//! (best effort when the input is wrong) and [`Diagnostic`]s with positions.
//! Arguments stay unexpanded; [`crate::expand`] does word expansion later.
//!
//! Hostile input stays bounded by the caps in [`limits`].

mod ast;
mod diag;
mod directives;
mod dump;
mod flags;
mod heredoc;
mod instr;
pub mod limits;
mod lines;
mod mount;
mod words;

pub use ast::*;
pub use diag::{Diagnostic, Pos, Severity, Span};

use instr::PendingHeredoc;
use limits::{
    MAX_DIAGNOSTICS, MAX_INSTRUCTION_BYTES, MAX_INSTRUCTIONS, MAX_LINE_BYTES, MAX_SOURCE_BYTES,
};
use lines::{Logical, Physical, is_comment, strip_continuation, width};

/// Parse a Dockerfile.
pub fn parse(src: &str) -> Parsed {
    let mut diags = Vec::new();
    let src = truncate(src, &mut diags);
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines = lines::physical_lines(src);
    let mut dockerfile = Dockerfile::default();
    let first = directives::read(&lines, &mut dockerfile.directives, &mut diags);
    let escape = dockerfile.directives.escape;
    let mut state = State {
        lines: &lines,
        next: first,
        escape,
        diags,
        instructions: Vec::new(),
    };
    state.run();
    let State {
        mut diags,
        instructions,
        ..
    } = state;
    dockerfile.instructions = instructions;
    check_stages(&dockerfile, &mut diags);
    if dockerfile.instructions.is_empty() && !diags.iter().any(Diagnostic::is_error) {
        let line = u32::try_from(lines.len().max(1)).unwrap_or(u32::MAX);
        diags.push(Diagnostic::error(
            "no-instructions",
            Span::new(Pos::new(line, 1), Pos::new(line, 1)),
            "the dockerfile has no instructions",
        ));
    }
    diags.sort_by_key(|d| d.span.start);
    if diags.len() > MAX_DIAGNOSTICS {
        let span = diags[MAX_DIAGNOSTICS].span;
        let more = diags.len() - MAX_DIAGNOSTICS;
        diags.truncate(MAX_DIAGNOSTICS);
        diags.push(Diagnostic::error(
            "too-many-diagnostics",
            span,
            format!("{more} more diagnostics not shown"),
        ));
    }
    Parsed {
        dockerfile,
        diagnostics: diags,
    }
}

fn truncate<'a>(src: &'a str, diags: &mut Vec<Diagnostic>) -> &'a str {
    if src.len() <= MAX_SOURCE_BYTES {
        return src;
    }
    diags.push(Diagnostic::error(
        "source-too-large",
        Span::new(Pos::new(1, 1), Pos::new(1, 1)),
        format!(
            "the dockerfile is {} bytes, more than the limit of {MAX_SOURCE_BYTES}: only the start is parsed",
            src.len()
        ),
    ));
    let mut end = MAX_SOURCE_BYTES;
    while !src.is_char_boundary(end) {
        end -= 1;
    }
    &src[..end]
}

/// Instructions outside a stage and duplicate stage names.
fn check_stages(d: &Dockerfile, diags: &mut Vec<Diagnostic>) {
    for i in d.preamble() {
        if !matches!(
            i.kind,
            InstructionKind::Arg(_) | InstructionKind::Unknown(_)
        ) {
            diags.push(Diagnostic::error(
                "no-build-stage",
                i.span,
                format!(
                    "{} comes before the first FROM: only ARG may come before FROM",
                    i.kind.name()
                ),
            ));
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for s in d.stages() {
        if let InstructionKind::From(From { name: Some(n), .. }) = &s.from.kind {
            if names.contains(&n.as_str()) {
                diags.push(Diagnostic::error(
                    "duplicate-stage-name",
                    s.from.span,
                    format!("duplicate stage name {n:?}"),
                ));
            }
            names.push(n);
        }
    }
}

fn line_end(ph: &Physical<'_>) -> Pos {
    Pos::new(ph.line, width(ph.body).saturating_add(1))
}

struct State<'a, 'l> {
    lines: &'l [Physical<'a>],
    /// Index of the next physical line to read.
    next: usize,
    escape: char,
    diags: Vec<Diagnostic>,
    instructions: Vec<Instruction>,
}

impl<'a> State<'a, '_> {
    fn take_line(&mut self) -> Option<Physical<'a>> {
        let ph = *self.lines.get(self.next)?;
        self.next += 1;
        if ph.body.len() > MAX_LINE_BYTES {
            self.diags.push(Diagnostic::error(
                "line-too-long",
                Span::new(Pos::new(ph.line, 1), Pos::new(ph.line, 1)),
                format!(
                    "line {} is {} bytes long, more than the limit of {MAX_LINE_BYTES}: it is ignored",
                    ph.line,
                    ph.body.len()
                ),
            ));
            return Some(Physical {
                body: "",
                raw: "\n",
                ..ph
            });
        }
        Some(ph)
    }

    fn run(&mut self) {
        let mut comments: Vec<String> = Vec::new();
        while let Some(ph) = self.take_line() {
            let trimmed = ph.body.trim_start();
            if let Some(c) = trimmed.strip_prefix('#') {
                let c = c.trim();
                if c.is_empty() {
                    comments.clear();
                } else {
                    comments.push(c.to_owned());
                }
                continue;
            }
            if trimmed.is_empty() {
                continue;
            }
            if self.instructions.len() >= MAX_INSTRUCTIONS {
                self.diags.push(Diagnostic::error(
                    "too-many-instructions",
                    Span::new(Pos::new(ph.line, 1), line_end(&ph)),
                    format!(
                        "more than {MAX_INSTRUCTIONS} instructions: the rest of the file is ignored"
                    ),
                ));
                return;
            }
            let col = 1 + width(&ph.body[..ph.body.len() - trimmed.len()]);
            self.instruction(ph, trimmed, col, std::mem::take(&mut comments));
        }
    }

    /// Read one instruction starting with `first` (already taken).
    fn instruction(&mut self, first: Physical<'a>, trimmed: &str, col: u32, comments: Vec<String>) {
        let mut logical = Logical::default();
        let mut empty_line: Option<u32> = None;
        let mut too_long = false;
        let mut end = line_end(&first);
        match strip_continuation(trimmed, self.escape) {
            None => logical.push(trimmed, first.line, col),
            Some(piece) => {
                logical.push(piece, first.line, col);
                while let Some(ph) = self.take_line() {
                    end = line_end(&ph);
                    if is_comment(ph.body) {
                        continue;
                    }
                    if ph.body.trim_start().is_empty() {
                        empty_line.get_or_insert(ph.line);
                        continue;
                    }
                    let (piece, more) = match strip_continuation(ph.body, self.escape) {
                        Some(p) => (p, true),
                        None => (ph.body, false),
                    };
                    if logical.text.len() + piece.len() > MAX_INSTRUCTION_BYTES {
                        too_long = true;
                    } else if !too_long {
                        logical.push(piece, ph.line, 1);
                    }
                    if !more {
                        break;
                    }
                }
            }
        }
        logical.extend_to(end);
        let span = Span::new(Pos::new(first.line, col), end);
        if too_long {
            self.diags.push(Diagnostic::error(
                "instruction-too-long",
                span,
                format!("instruction is longer than the limit of {MAX_INSTRUCTION_BYTES} bytes: it is ignored"),
            ));
            return;
        }
        if logical.text.trim().is_empty() {
            return;
        }
        let (mut ins, pending) = instr::build(&logical, 0, self.escape, comments, &mut self.diags);
        if let Some(l) = empty_line {
            self.diags.push(Diagnostic::warning(
                "empty-continuation",
                Span::new(Pos::new(l, 1), Pos::new(l, 1)),
                format!(
                    "empty continuation line in {} instruction (empty continuation lines will become errors)",
                    ins.keyword.to_uppercase()
                ),
            ));
        }
        let heredocs = self.heredoc_bodies(pending, &mut end);
        ins.span.end = end;
        match &mut ins.kind {
            InstructionKind::Onbuild(Some(inner)) => {
                inner.heredocs = heredocs;
                inner.span.end = end;
            }
            _ => ins.heredocs = heredocs,
        }
        self.instructions.push(ins);
    }

    /// Read the bodies of the heredocs announced on the instruction line.
    fn heredoc_bodies(&mut self, pending: Vec<PendingHeredoc>, end: &mut Pos) -> Vec<Heredoc> {
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            let mut content = String::new();
            let mut terminated = false;
            while let Some(ph) = self.lines.get(self.next) {
                self.next += 1;
                *end = line_end(ph);
                let candidate = if p.marker.chomp {
                    ph.body.trim_start_matches('\t')
                } else {
                    ph.body
                };
                if candidate == p.marker.name {
                    terminated = true;
                    break;
                }
                content.push_str(ph.raw);
            }
            if !terminated {
                self.diags.push(Diagnostic::error(
                    "unterminated-heredoc",
                    Span::new(p.span.start, *end),
                    format!(
                        "unterminated heredoc {:?}: the file ends before a line {:?}",
                        p.marker.name, p.marker.name
                    ),
                ));
            }
            out.push(Heredoc {
                name: p.marker.name,
                fd: p.marker.fd,
                chomp: p.marker.chomp,
                expand: p.marker.expand,
                content,
                span: p.span,
            });
        }
        out
    }
}
