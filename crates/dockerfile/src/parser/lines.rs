//! Physical lines, logical lines (continuations joined) and source positions.

use super::diag::{Pos, Span};

/// One line of the source, without its line terminator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Physical<'a> {
    /// 1-based line number.
    pub line: u32,
    /// The text without the trailing `\r`/`\n` characters.
    pub body: &'a str,
    /// The text with its `\n` (what a heredoc body keeps).
    pub raw: &'a str,
}

/// Split `src` into lines the way BuildKit's scanner does: on `\n`, with any
/// trailing `\r` and `\n` trimmed from the body.
pub(crate) fn physical_lines(src: &str) -> Vec<Physical<'_>> {
    let mut out = Vec::new();
    let mut n: u32 = 0;
    for raw in src.split_inclusive('\n') {
        n = n.saturating_add(1);
        let body = raw.trim_end_matches(['\r', '\n']);
        out.push(Physical { line: n, body, raw });
    }
    out
}

/// Whether the line is a comment (first non-space char is `#`).
pub(crate) fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// If `line` ends with the escape char (optionally followed by blanks) and that
/// escape char is not itself escaped, return the text before it.
pub(crate) fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end_matches([' ', '\t']);
    let before = t.strip_suffix(escape)?;
    match before.chars().next_back() {
        None => Some(before),
        Some(c) if c != escape => Some(before),
        Some(_) => None,
    }
}

/// Number of chars in `s` as a column delta.
pub(crate) fn width(s: &str) -> u32 {
    u32::try_from(s.chars().count()).unwrap_or(u32::MAX)
}

/// A stretch of a logical line copied from one physical line.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Byte offset in the logical text where the segment starts.
    offset: usize,
    line: u32,
    /// Column of the segment's first char.
    column: u32,
}

/// An instruction's text with continuations joined, remembering where each
/// piece came from so byte offsets map back to source positions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Logical {
    pub text: String,
    segments: Vec<Segment>,
    /// Position just after the last char taken.
    end: Pos,
}

impl Logical {
    pub fn push(&mut self, piece: &str, line: u32, column: u32) {
        self.segments.push(Segment {
            offset: self.text.len(),
            line,
            column,
        });
        self.text.push_str(piece);
        self.end = Pos::new(line, column.saturating_add(width(piece)));
    }

    /// Mark the logical line as ending at `line` (after a trailing
    /// continuation or comment lines).
    pub fn extend_to(&mut self, end: Pos) {
        if end > self.end {
            self.end = end;
        }
    }

    pub fn end(&self) -> Pos {
        self.end
    }

    /// Source position of byte offset `offset` of `text` (clamped).
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let i = self
            .segments
            .partition_point(|s| s.offset <= offset)
            .saturating_sub(1);
        let Some(seg) = self.segments.get(i) else {
            return self.end;
        };
        let mut o = offset;
        while !self.text.is_char_boundary(o) {
            o -= 1;
        }
        let start = seg.offset.min(o);
        Pos::new(
            seg.line,
            seg.column.saturating_add(width(&self.text[start..o])),
        )
    }

    /// Span of `text[start..end]`.
    pub fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.pos(start), self.pos(end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("RUN a \\", Some("RUN a "))]
    #[case::trailing_blanks("RUN a \\ \t ", Some("RUN a "))]
    #[case::only_escape("\\", Some(""))]
    #[case::escaped_escape("RUN a \\\\", None)]
    #[case::none("RUN a", None)]
    fn continuation(#[case] line: &str, #[case] want: Option<&str>) {
        assert_eq!(strip_continuation(line, '\\'), want);
    }

    #[test]
    fn positions_follow_segments() {
        let mut l = Logical::default();
        l.push("RUN a ", 3, 1);
        l.push("  bé c", 4, 1);
        assert_eq!(l.pos(0), Pos::new(3, 1));
        assert_eq!(l.pos(4), Pos::new(3, 5));
        assert_eq!(l.pos(6), Pos::new(4, 1));
        let c = l.text.find('c').unwrap();
        assert_eq!(l.pos(c), Pos::new(4, 6));
    }
}
