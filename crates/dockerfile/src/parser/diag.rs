//! Diagnostics: positions, spans, severities and BuildKit-like rendering.

use std::fmt;
use std::fmt::Write as _;

/// A position in the source: 1-based line, 1-based column counted in chars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub fn new(line: u32, column: u32) -> Self {
        Pos { line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A range of source text; `end` is exclusive (the position just after the
/// last char).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    pub fn new(start: Pos, end: Pos) -> Self {
        Span { start, end }
    }

    /// A span covering whole lines `first..=last` (column 1 to column 1 of
    /// the next line is avoided: the end is the start of `last`).
    pub fn lines(first: u32, last: u32) -> Self {
        Span::new(Pos::new(first, 1), Pos::new(last, 1))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// BuildKit would refuse the Dockerfile.
    Error,
    /// BuildKit accepts the Dockerfile but warns (lint-like).
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found while parsing.
///
/// `code` is stable (kebab-case, e.g. `unknown-flag`) and meant for programs;
/// `message` is lowercase, names the culprit and is meant for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub span: Span,
}

/// Lines of context shown before and after the offending lines.
const CONTEXT_LINES: u32 = 2;
/// At most this many offending lines are shown.
const MAX_SHOWN_LINES: u32 = 12;

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            code,
            message: message.into(),
            span,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Render like BuildKit's CLI: `file:line:col: error: msg` then the source
    /// lines around the problem, offending lines marked with `>>>`.
    ///
    /// `src` must be the text that was parsed (for the excerpt); this is pure
    /// string building. A diagnostic on line 0 is about no line of the file (a
    /// build argument, say): `file: error: msg`, without an excerpt.
    pub fn render(&self, file_name: &str, src: &str) -> String {
        let mut out = String::new();
        if self.span.start.line == 0 {
            let _ = writeln!(out, "{file_name}: {}: {}", self.severity, self.message);
            return out;
        }
        let _ = writeln!(
            out,
            "{file_name}:{}:{}: {}: {}",
            self.span.start.line, self.span.start.column, self.severity, self.message
        );
        let first = self.span.start.line.max(1);
        let mut last = self.span.end.line.max(first);
        // An exclusive end at column 1 of a later line does not include that line.
        if last > first && self.span.end.column <= 1 {
            last -= 1;
        }
        let last = last.min(first.saturating_add(MAX_SHOWN_LINES - 1));
        let from = first.saturating_sub(CONTEXT_LINES).max(1);
        let to = last.saturating_add(CONTEXT_LINES);
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        let width = to.to_string().len();
        for (i, line) in src.lines().enumerate() {
            let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if n < from {
                continue;
            }
            if n > to {
                break;
            }
            let marker = if (first..=last).contains(&n) {
                ">>> "
            } else {
                "    "
            };
            let row = format!(" {n:>width$} | {marker}{line}");
            let _ = writeln!(out, "{}", row.trim_end());
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}: {}",
            self.span.start, self.severity, self.code, self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_marks_the_offending_line() {
        let d = Diagnostic::error("x", Span::lines(2, 2), "bad");
        assert_eq!(
            d.render("Dockerfile", "FROM a\nRUN b\nRUN c\n"),
            "Dockerfile:2:1: error: bad\n 1 |     FROM a\n 2 | >>> RUN b\n 3 |     RUN c\n"
        );
    }

    #[test]
    fn render_of_line_zero_has_no_excerpt() {
        let d = Diagnostic::warning("x", Span::default(), "about a build argument");
        assert_eq!(
            d.render("Dockerfile", "FROM a\n"),
            "Dockerfile: warning: about a build argument\n"
        );
    }
}
