//! `.dockerignore` files with the semantics of BuildKit (moby's pattern matcher
//! and ignore-file reader).
//!
//! Reading a file ([`parse_ignore_file`]): a UTF-8 BOM is dropped; a line whose
//! *first column* is `#` is a comment (`  # x` is the pattern `# x`); every
//! other line is trimmed of whitespace and skipped if empty. A leading `!`
//! (whitespace after it trimmed too) makes an *exclusion* that re-includes what
//! it matches. The rest is cleaned like Go's `filepath.Clean` (`./a` → `a`,
//! `a//b/` → `a/b`, `a/../b` → `b`) and one leading `/` is dropped.
//!
//! Pattern syntax is Go's `filepath.Match`: `*` is any run of characters but
//! `/`, `?` one character but `/`, `[…]` a class of characters and ranges
//! (`[^…]` negates; a class may match `/`), `\c` the literal `c`. On top of it,
//! `**` (a following `/` is absorbed) stands for any number of whole
//! directories, none included, and for anything at all at the end of a pattern:
//! `a/**/b` matches `a/b` and `a/x/y/b`, `a/**` matches `a/x/y` but not `a`.
//!
//! Deciding ([`Matcher::is_excluded`]): patterns are tried in order and the last
//! one that matches wins. A pattern matches a path if it matches the path or any
//! of its parent directories, so excluding `dir` excludes everything below it,
//! and `!dir/keep` after `dir` brings `dir/keep` (and what is below it) back.
//! A walker that meets an excluded directory asks
//! [`Matcher::may_reinclude_under`] whether it still has to descend.
//!
//! BuildKit quirks kept on purpose: a pattern that *starts* with `**` and has no
//! other wildcard is a plain suffix test (`**.log` matches `a/b.log`, `**x`
//! matches `yx`); `**` inside a name spans directories (`a**b` matches `ax/b`,
//! `a**/b` matches `ab`); `[!a]` is a class of `!` and `a`, not a negation;
//! the pattern `/` matches nothing; the root itself is never excluded.
//!
//! Deliberate differences (BuildKit translates patterns to regular expressions
//! with a few leaks; here the `filepath.Match` reading is used throughout):
//! `\c` is always the literal `c` (BuildKit lets `\d`, `\b`… act as regexp
//! escapes); `^` outside a class is literal (an anchor in BuildKit); `*` and
//! `?` inside a class are members of the class; `**` also crosses names
//! containing a newline; reversed ranges such as `[z-a]` are rejected when
//! reading, where BuildKit fails only when matching; after `a`, `!a/b`, `a`
//! everything below `a` is excluded (last match wins), as moby's
//! `MatchesOrParentMatches` decides, while BuildKit's incremental walker keeps
//! `a/b`.
//!
//! **Invariant**: matching is bounded. A pattern is run as a set of states over
//! the path's characters (no backtracking), so matching one pattern costs at
//! most `(chars + 1) × (2 × tokens + 2)` steps (see [`match_steps`]), whatever
//! the `*` and `**` in it.

pub mod path;

use std::fmt;

/// Name of the ignore file at the root of the build context.
pub const DEFAULT_IGNORE_FILE: &str = ".dockerignore";

/// Why a pattern could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternErrorKind {
    /// `!` with nothing (or only `/`) after it.
    EmptyExclusion,
    /// `[` without the `]` that closes it.
    UnterminatedClass,
    /// `[]` or `[^]`: a class must name a character before its `]`.
    EmptyClass,
    /// A `-` where a class character is expected, as in `[-a]` or `[a-]`.
    StrayDash,
    /// A range whose start comes after its end, as in `[z-a]`.
    ReversedRange { lo: char, hi: char },
    /// A `\` at the very end of the pattern.
    TrailingBackslash,
}

impl fmt::Display for PatternErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternErrorKind::EmptyExclusion => f.write_str("'!' must be followed by a pattern"),
            PatternErrorKind::UnterminatedClass => {
                f.write_str("unterminated character class (missing ']')")
            }
            PatternErrorKind::EmptyClass => {
                f.write_str("character class has no character before ']'")
            }
            PatternErrorKind::StrayDash => {
                f.write_str("unescaped '-' in character class (write '\\-' for a literal '-')")
            }
            PatternErrorKind::ReversedRange { lo, hi } => {
                write!(f, "reversed range {lo:?}-{hi:?} in character class")
            }
            PatternErrorKind::TrailingBackslash => f.write_str("trailing '\\' escapes nothing"),
        }
    }
}

/// Why an ignore file (or list of pattern lines) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IgnoreError {
    /// `line` is 1-based and counts comments and blank lines; `pattern` is the
    /// line as written, trimmed.
    #[error("ignore file line {line}: invalid pattern {pattern:?}: {kind}")]
    InvalidPattern {
        line: usize,
        pattern: String,
        kind: PatternErrorKind,
    },
}

impl IgnoreError {
    /// The 1-based line of the offending pattern.
    pub fn line(&self) -> usize {
        match self {
            IgnoreError::InvalidPattern { line, .. } => *line,
        }
    }

    /// The offending pattern as written (trimmed).
    pub fn pattern(&self) -> &str {
        match self {
            IgnoreError::InvalidPattern { pattern, .. } => pattern,
        }
    }

    /// What is wrong with it.
    pub fn kind(&self) -> PatternErrorKind {
        match self {
            IgnoreError::InvalidPattern { kind, .. } => *kind,
        }
    }
}

/// One step of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character but `/`.
    AnyChar,
    /// `*`: any run of characters but `/`.
    Star,
    /// `[…]`: one character (possibly `/`) in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` before more pattern: nothing, or anything ending in `/`.
    AnyDirs,
    /// `**` at the end: anything.
    AnyTail,
}

impl Token {
    /// Whether the token can match the empty string (an epsilon move).
    fn skippable(&self) -> bool {
        matches!(self, Token::Star | Token::AnyDirs | Token::AnyTail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Program {
    /// BuildKit's leading-`**` shortcut: the path ends with the text, or the
    /// text is `/x` and the path is `x`.
    Suffix(String),
    Tokens(Vec<Token>),
}

/// One cleaned, validated ignore pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    exclusion: bool,
    line: usize,
    program: Program,
}

impl Pattern {
    /// The cleaned pattern, without its `!`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern started with `!` (re-includes what it matches).
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// The 1-based line the pattern was read from.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether the pattern matches `path` (slash-separated, relative to the
    /// context root) or one of its parent directories, ignoring `!`.
    pub fn matches(&self, path: &str) -> bool {
        let path = clean_relative(path);
        path != "." && self.matches_clean(&path, &mut 0)
    }

    fn matches_clean(&self, path: &str, steps: &mut u64) -> bool {
        match &self.program {
            Program::Suffix(suffix) => {
                let hit = |p: &str| {
                    p.ends_with(suffix.as_str())
                        || suffix.strip_prefix('/').is_some_and(|rest| p == rest)
                };
                let mut found = false;
                for (i, _) in path.match_indices('/') {
                    *steps += 1;
                    if hit(&path[..i]) {
                        found = true;
                        break;
                    }
                }
                *steps += 1;
                found || hit(path)
            }
            Program::Tokens(tokens) => {
                let mut nfa = Nfa::new(tokens);
                for c in path.chars() {
                    if c == '/' && nfa.accepting() {
                        *steps += nfa.steps;
                        return true; // a parent directory matches
                    }
                    if !nfa.step(c) {
                        break;
                    }
                }
                *steps += nfa.steps;
                nfa.accepting()
            }
        }
    }

    /// Whether the pattern could match some path strictly below `dir` (or
    /// matches `dir` or a parent, which covers everything below it). May say
    /// yes too often, never too rarely.
    fn could_match_below(&self, dir: &str) -> bool {
        let Program::Tokens(tokens) = &self.program else {
            return true;
        };
        let mut nfa = Nfa::new(tokens);
        for c in dir.chars().chain(std::iter::once('/')) {
            if c == '/' && nfa.accepting() {
                return true;
            }
            if !nfa.step(c) {
                return false;
            }
        }
        true
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exclusion {
            f.write_str("!")?;
        }
        f.write_str(&self.text)
    }
}

/// Reads the patterns of an ignore file. Errors name the pattern and its line.
pub fn parse_ignore_file(contents: &str) -> Result<Vec<Pattern>, IgnoreError> {
    read_lines(contents.lines())
}

fn read_lines<I: IntoIterator<Item = S>, S: AsRef<str>>(
    lines: I,
) -> Result<Vec<Pattern>, IgnoreError> {
    let mut patterns = Vec::new();
    for (index, raw) in lines.into_iter().enumerate() {
        let mut line = raw.as_ref();
        if index == 0 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if let Some(p) = parse_line(line, index + 1)? {
            patterns.push(p);
        }
    }
    Ok(patterns)
}

/// One line of an ignore file: `None` for comments and blank lines.
fn parse_line(raw: &str, line: usize) -> Result<Option<Pattern>, IgnoreError> {
    if raw.starts_with('#') {
        return Ok(None);
    }
    let written = raw.trim();
    if written.is_empty() {
        return Ok(None);
    }
    let err = |kind| IgnoreError::InvalidPattern {
        line,
        pattern: written.to_owned(),
        kind,
    };
    let (exclusion, body) = match written.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, written),
    };
    // BuildKit cleans `!` + the cleaned body once more, so `!` and `!/` both
    // end up as a bare `!`, which it rejects.
    if exclusion && (body.is_empty() || body == "/") {
        return Err(err(PatternErrorKind::EmptyExclusion));
    }
    let mut text = clean_path(body);
    if text.len() > 1 && text.starts_with('/') {
        text.remove(0);
    }
    let program = compile(&text).map_err(err)?;
    Ok(Some(Pattern {
        text,
        exclusion,
        line,
        program,
    }))
}

use crate::path::clean as clean_path;

/// Turns a cleaned pattern into a program, validating it as `filepath.Match`
/// does.
fn compile(pattern: &str) -> Result<Program, PatternErrorKind> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut leading_globstar = false;
    let mut only_literals_after = true;
    let mut i = 0;
    while i < chars.len() {
        let first = i == 0;
        let c = chars[i];
        i += 1;
        let token = match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if first {
                    leading_globstar = true;
                } else {
                    only_literals_after = false;
                }
                if i == chars.len() {
                    Token::AnyTail
                } else {
                    Token::AnyDirs
                }
            }
            '*' => Token::Star,
            '?' => Token::AnyChar,
            '\\' => match chars.get(i) {
                Some(&escaped) => {
                    i += 1;
                    Token::Literal(escaped)
                }
                None => return Err(PatternErrorKind::TrailingBackslash),
            },
            '[' => {
                let (token, next) = parse_class(&chars, i)?;
                i = next;
                token
            }
            other => Token::Literal(other),
        };
        if !first && !matches!(token, Token::Literal(l) if l != ']' && c != '\\') {
            only_literals_after = false;
        }
        tokens.push(token);
    }
    if leading_globstar && only_literals_after {
        // Byte 2 is a char boundary: the pattern starts with the ASCII `**`.
        return Ok(Program::Suffix(pattern[2..].to_owned()));
    }
    Ok(Program::Tokens(tokens))
}

/// Parses a class whose `[` is just before `start`; returns the token and the
/// index after its `]`.
fn parse_class(chars: &[char], start: usize) -> Result<(Token, usize), PatternErrorKind> {
    let mut i = start;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Ok((Token::Class { negated, ranges }, i + 1));
        }
        let lo = class_char(chars, &mut i, ranges.is_empty(), false)?;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            i += 1;
            hi = class_char(chars, &mut i, false, true)?;
        }
        if lo > hi {
            return Err(PatternErrorKind::ReversedRange { lo, hi });
        }
        ranges.push((lo, hi));
    }
}

/// One (possibly escaped) character of a class; like Go, something must
/// follow it.
fn class_char(
    chars: &[char],
    i: &mut usize,
    first: bool,
    range_end: bool,
) -> Result<char, PatternErrorKind> {
    let c = match chars.get(*i) {
        None => return Err(PatternErrorKind::UnterminatedClass),
        Some('-') => return Err(PatternErrorKind::StrayDash),
        Some(']') if first => return Err(PatternErrorKind::EmptyClass),
        Some(']') if range_end => return Err(PatternErrorKind::StrayDash),
        Some('\\') => {
            *i += 1;
            *chars.get(*i).ok_or(PatternErrorKind::UnterminatedClass)?
        }
        Some(&c) => c,
    };
    *i += 1;
    if *i >= chars.len() {
        return Err(PatternErrorKind::UnterminatedClass);
    }
    Ok(c)
}

/// A set-of-states run of a token program (Thompson simulation): one pass over
/// the input, each step touching each state at most twice.
struct Nfa<'a> {
    tokens: &'a [Token],
    /// `at[i]`: before token `i` (`at[len]` accepts).
    at: Vec<bool>,
    /// `inside[i]`: within the `.*` part of the `AnyDirs` token `i`.
    inside: Vec<bool>,
    next_at: Vec<bool>,
    next_inside: Vec<bool>,
    steps: u64,
}

impl<'a> Nfa<'a> {
    fn new(tokens: &'a [Token]) -> Self {
        let n = tokens.len() + 1;
        let mut nfa = Nfa {
            tokens,
            at: vec![false; n],
            inside: vec![false; n],
            next_at: vec![false; n],
            next_inside: vec![false; n],
            steps: 1,
        };
        nfa.at[0] = true;
        close(tokens, &mut nfa.at);
        nfa
    }

    fn accepting(&self) -> bool {
        self.at[self.tokens.len()]
    }

    /// Consumes `c`; returns whether any state is still alive.
    fn step(&mut self, c: char) -> bool {
        self.next_at.fill(false);
        self.next_inside.fill(false);
        self.steps += 1;
        for (i, token) in self.tokens.iter().enumerate() {
            if self.at[i] {
                self.steps += 1;
                match token {
                    Token::Literal(l) => self.next_at[i + 1] |= c == *l,
                    Token::AnyChar => self.next_at[i + 1] |= c != '/',
                    Token::Star => self.next_at[i] |= c != '/',
                    Token::Class { negated, ranges } => {
                        let hit = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                        self.next_at[i + 1] |= hit != *negated;
                    }
                    Token::AnyDirs => {
                        self.next_inside[i] = true;
                        self.next_at[i + 1] |= c == '/';
                    }
                    Token::AnyTail => self.next_at[i] = true,
                }
            }
            if self.inside[i] {
                self.steps += 1;
                self.next_inside[i] = true;
                self.next_at[i + 1] |= c == '/';
            }
        }
        close(self.tokens, &mut self.next_at);
        std::mem::swap(&mut self.at, &mut self.next_at);
        std::mem::swap(&mut self.inside, &mut self.next_inside);
        self.at.iter().chain(&self.inside).any(|&s| s)
    }
}

/// Follows the empty moves (`*` and `**` matching nothing); they only go
/// forward, so one ascending pass suffices.
fn close(tokens: &[Token], at: &mut [bool]) {
    for (i, token) in tokens.iter().enumerate() {
        if at[i] && token.skippable() {
            at[i + 1] = true;
        }
    }
}

/// An ordered list of patterns deciding which paths of a build context are
/// left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// A matcher over already read patterns, in file order. Never fails today;
    /// fallible so that limits can be added without breaking callers.
    pub fn new(patterns: Vec<Pattern>) -> Result<Matcher, IgnoreError> {
        Ok(Matcher { patterns })
    }

    /// A matcher from the lines of an ignore file, one item per line, read
    /// exactly as [`parse_ignore_file`] reads a file's lines.
    pub fn from_lines<I: IntoIterator<Item = S>, S: AsRef<str>>(
        lines: I,
    ) -> Result<Matcher, IgnoreError> {
        Matcher::new(read_lines(lines)?)
    }

    /// Whether `path` (slash-separated, relative to the context root) is left
    /// out of the context: the last pattern matching it or one of its parent
    /// directories decides, and an exclusion (`!`) re-includes. The root (`.`,
    /// empty) is never excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean_relative(path);
        if path == "." {
            return false;
        }
        let mut excluded = false;
        let mut steps = 0;
        for pattern in &self.patterns {
            // Only a pattern that can flip the current decision is worth trying.
            if pattern.exclusion == excluded && pattern.matches_clean(&path, &mut steps) {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Whether a walker that found the directory `dir` excluded must still
    /// descend into it, because an exclusion (`!`) pattern after the last
    /// pattern excluding `dir` could match something below it. Conservative:
    /// may answer yes when nothing below ends up re-included, never no when
    /// something does. For a directory no pattern excludes, it answers whether
    /// any exclusion pattern could match below it.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let dir = clean_relative(dir);
        if dir == "." {
            return self.patterns.iter().any(|p| p.exclusion);
        }
        let mut steps = 0;
        let start = self
            .patterns
            .iter()
            .rposition(|p| !p.exclusion && p.matches_clean(&dir, &mut steps))
            .map_or(0, |last| last + 1);
        self.patterns[start..]
            .iter()
            .any(|p| p.exclusion && p.could_match_below(&dir))
    }

    /// The patterns, in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }
}

/// A path as the matcher sees it: cleaned, without a leading `/`.
fn clean_relative(path: &str) -> String {
    let cleaned = clean_path(path);
    match cleaned.strip_prefix('/') {
        Some("") => ".".to_owned(),
        Some(rest) => rest.to_owned(),
        None => cleaned,
    }
}

/// Matches one pattern line against `path` (parent directories included, `!`
/// ignored) and returns the result with the number of steps it took. For
/// tests of the work bound.
#[doc(hidden)]
pub fn match_steps(pattern: &str, path: &str) -> Result<(bool, u64), IgnoreError> {
    let Some(pattern) = parse_line(pattern, 1)? else {
        return Ok((false, 0));
    };
    let path = clean_relative(path);
    let mut steps = 0;
    let matched = path != "." && pattern.matches_clean(&path, &mut steps);
    Ok((matched, steps))
}

/// The ignore files that may apply to a build with the Dockerfile at
/// `dockerfile` (relative to the context; empty means `Dockerfile`), in
/// priority order: `<dockerfile>.dockerignore` next to it, then the context's
/// `.dockerignore`. The first that exists is used and the others are not read.
pub fn ignore_file_candidates(dockerfile: &str) -> Vec<String> {
    let mut path = clean_relative(dockerfile);
    if path == "." {
        path = "Dockerfile".to_owned();
    }
    vec![
        format!("{path}{DEFAULT_IGNORE_FILE}"),
        DEFAULT_IGNORE_FILE.to_owned(),
    ]
}
