//! Shell word expansion with the behaviour of BuildKit's Dockerfile shell lexer
//! (the "Environment replacement" rules of the Dockerfile reference).
//!
//! A [`Lexer`] removes quotes, handles the escape character and expands
//! `$name`, `${name}` and the `${name<op>word}` forms below, either into one
//! string ([`Lexer::process_word`]) or into whitespace-separated words
//! ([`Lexer::process_words`]).
//!
//! | form | result |
//! | --- | --- |
//! | `${v:-w}` / `${v-w}` | `w` if `v` is unset or empty / unset, else `$v` |
//! | `${v:+w}` / `${v+w}` | `w` if `v` is set and non-empty / set, else empty |
//! | `${v:?m}` / `${v?m}` | `$v`, or the error `v: m` if unset or empty / unset |
//! | `${v#p}` / `${v##p}` | `$v` without the shortest / longest prefix matching `p` |
//! | `${v%p}` / `${v%%p}` | `$v` without the shortest / longest suffix matching `p` |
//! | `${v/p/r}` / `${v//p/r}` | first / every match of `p` in `$v` replaced by `r` |
//!
//! Patterns are BuildKit's globs: `*` is any run of characters, `?` one
//! character (neither matches a newline), `\*`, `\?`, `\\` are literal and
//! every other character, `[` and `]` included, is literal: there are no
//! bracket classes. Matching follows Go's leftmost-first regexp semantics.
//!
//! BuildKit quirks kept on purpose (a Dockerfile must mean the same here):
//! `$$`, `$#`, `$@`, `$*`, `$?`, `$-`, `$!` and `$0`..`$99…` are looked up as
//! variables of that name (so usually expand to nothing); `$` before any other
//! character stays literal; an empty quoted word (`""`) yields no word from
//! [`Lexer::process_words`]; text before a `${v<op>…}` form in the same word is
//! lost by [`Lexer::process_words`]; in `${v//p/r}` a `$0` or `${0}` in `r`
//! (after expansion) stands for the match and other `$name` for nothing;
//! patterns and replacements keep their escape characters; `${v` reports an
//! unsupported modifier `(\u{FFFD})`.
//!
//! **Invariant**: expansion is bounded. Brace nesting deeper than
//! [`MAX_DEPTH`] fails with [`ExpandError::TooDeep`], any string longer than
//! [`MAX_LEN`] bytes with [`ExpandError::TooLong`], and pattern matching that
//! needs more than [`MAX_MATCH_STEPS`] steps with [`ExpandError::TooComplex`]
//! (each limit can be changed per lexer), so no input can overflow the stack,
//! grow without limit or match for hours. BuildKit has none of these limits.

mod error;
mod glob;
mod tables;

pub use error::ExpandError;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

/// Default limit of `${…}` nesting (see [`Lexer::with_max_depth`]).
pub const MAX_DEPTH: usize = 64;
/// Default limit in bytes of any expanded string (see [`Lexer::with_max_len`]).
pub const MAX_LEN: usize = 1 << 20;
/// Default limit of pattern-matching steps for one word (see
/// [`Lexer::with_max_steps`]).
pub const MAX_MATCH_STEPS: u64 = 1 << 27;

/// Variables visible to expansion.
pub trait Env {
    /// The value of `name`, or `None` if it is unset (empty is set).
    fn get(&self, name: &str) -> Option<&str>;
}

impl<E: Env + ?Sized> Env for &E {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// A list of `(name, value)`; when a name repeats, the last one wins.
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A list of `(name, value)`; when a name repeats, the last one wins.
impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// A list of `(name, value)`; when a name repeats, the last one wins.
impl Env for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

/// A list of `(name, value)`; when a name repeats, the last one wins.
impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// No variables at all.
impl Env for () {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// The result of [`Lexer::process_word`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The word with quotes removed and variables expanded.
    pub value: String,
    /// Names that were looked up and set (even if empty).
    pub matched: BTreeSet<String>,
    /// Names that were looked up and unset (for the `UndefinedVar` lint).
    pub unmatched: BTreeSet<String>,
}

/// BuildKit's shell lexer: quote removal, escapes and variable expansion.
///
/// Stateless; one lexer can serve many words and threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
    max_depth: usize,
    max_len: usize,
    max_steps: u64,
}

impl Lexer {
    /// A lexer with escape character `escape` (the Dockerfile's `# escape=`
    /// directive: `\` or `` ` ``) and all options off.
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
            max_depth: MAX_DEPTH,
            max_len: MAX_LEN,
            max_steps: MAX_MATCH_STEPS,
        }
    }

    /// Keep the quote characters in the output (BuildKit `RawQuotes`).
    pub fn with_raw_quotes(mut self, on: bool) -> Self {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output (BuildKit `RawEscapes`).
    pub fn with_raw_escapes(mut self, on: bool) -> Self {
        self.raw_escapes = on;
        self
    }

    /// Treat `'` and `"` as ordinary characters (BuildKit `SkipProcessQuotes`).
    pub fn with_skip_process_quotes(mut self, on: bool) -> Self {
        self.skip_process_quotes = on;
        self
    }

    /// Leave references to unset variables as written (BuildKit
    /// `SkipUnsetEnv`), e.g. `${v:-w}` stays `${v:-w}` with `w` expanded.
    pub fn with_skip_unset_env(mut self, on: bool) -> Self {
        self.skip_unset_env = on;
        self
    }

    /// Limit of `${…}` nesting; deeper fails with [`ExpandError::TooDeep`].
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Limit in bytes of any expanded string; longer fails with
    /// [`ExpandError::TooLong`].
    pub fn with_max_len(mut self, len: usize) -> Self {
        self.max_len = len;
        self
    }

    /// Limit of pattern-matching steps (threads × characters) for one word;
    /// more fails with [`ExpandError::TooComplex`].
    pub fn with_max_steps(mut self, steps: u64) -> Self {
        self.max_steps = steps;
        self
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expand `word` into one string, like BuildKit's `ProcessWord`: whitespace
    /// is kept, and the names looked up are reported.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<Expanded, ExpandError> {
        let mut run = Run::new(self, word, env, false);
        let (value, _) = run
            .process_stop_on(None, self.raw_escapes)
            .map_err(|e| e.with_word(word))?;
        Ok(Expanded {
            value,
            matched: run.matched,
            unmatched: run.unmatched,
        })
    }

    /// Expand `word` and split it into words, like BuildKit's `ProcessWords`:
    /// unquoted whitespace (also inside unquoted expansions) separates words;
    /// quoted and escaped whitespace does not; adjacent parts join.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        let mut run = Run::new(self, word, env, true);
        let (_, words) = run
            .process_stop_on(None, self.raw_escapes)
            .map_err(|e| e.with_word(word))?;
        Ok(words)
    }
}

/// Go's `unicode.IsLetter`.
fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_ranges(tables::LETTERS, c)
}

/// Go's `unicode.IsDigit`.
fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_ranges(tables::DIGITS, c)
}

fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The words being split by [`Lexer::process_words`]. Its buffer lives in
/// [`Run::word_buf`], shared by all nesting levels as in BuildKit.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

/// One expansion: the input, the cursor and what was looked up.
struct Run<'a> {
    lexer: &'a Lexer,
    src: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    split: bool,
    word_buf: String,
    depth: usize,
    budget: glob::Budget,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl<'a> Run<'a> {
    fn new(lexer: &'a Lexer, word: &str, env: &'a dyn Env, split: bool) -> Self {
        // Go's text/scanner drops a byte order mark at the start.
        let word = word.strip_prefix('\u{feff}').unwrap_or(word);
        Run {
            lexer,
            src: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: lexer.raw_escapes,
            split,
            word_buf: String::new(),
            depth: 0,
            budget: glob::Budget {
                used: 0,
                limit: lexer.max_steps,
            },
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn too_long(&self) -> ExpandError {
        ExpandError::TooLong {
            word: String::new(),
            limit: self.lexer.max_len,
        }
    }

    /// Append to an output string, within the length limit.
    fn push(&self, out: &mut String, s: &str) -> Result<(), ExpandError> {
        if out.len() + s.len() > self.lexer.max_len {
            return Err(self.too_long());
        }
        out.push_str(s);
        Ok(())
    }

    fn push_char(&self, out: &mut String, c: char) -> Result<(), ExpandError> {
        self.push(out, c.encode_utf8(&mut [0; 4]))
    }

    fn get_env(&mut self, name: &str) -> Option<&'a str> {
        let v = self.env.get(name);
        if !self.split {
            let set = if v.is_some() {
                &mut self.matched
            } else {
                &mut self.unmatched
            };
            if !set.contains(name) {
                set.insert(name.to_owned());
            }
        }
        v
    }

    fn add_char(&mut self, w: &mut Words, c: char) {
        if !self.split {
            return;
        }
        if c.is_whitespace() {
            if w.in_word && !self.word_buf.is_empty() {
                w.words.push(std::mem::take(&mut self.word_buf));
                w.in_word = false;
            }
        } else {
            self.word_buf.push(c);
            w.in_word = true;
        }
    }

    fn add_raw(&mut self, w: &mut Words, s: &str) {
        if self.split {
            self.word_buf.push_str(s);
            w.in_word = true;
        }
    }

    /// BuildKit's `processStopOn`: read up to `stop` (consumed) or the end.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let res = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        res
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ExpandError> {
        let mut result = String::new();
        // Every level clears the shared word buffer (BuildKit does).
        self.word_buf.clear();
        let mut w = Words::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                if !self.word_buf.is_empty() {
                    w.words.push(std::mem::take(&mut self.word_buf));
                }
                return Ok((result, w.words));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' if quotes => Some(self.process_single_quote()?),
                '"' if quotes => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                self.push(&mut result, &tmp)?;
                if ch == '$' {
                    for c in tmp.chars() {
                        self.add_char(&mut w, c);
                    }
                } else {
                    self.add_raw(&mut w, &tmp);
                }
                continue;
            }
            let mut ch = ch;
            self.next();
            if ch == self.lexer.escape {
                if self.raw_escapes {
                    self.add_raw(&mut w, ch.encode_utf8(&mut [0; 4]));
                    self.push_char(&mut result, ch)?;
                }
                // The escape character escapes anything but the end.
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                self.add_raw(&mut w, ch.encode_utf8(&mut [0; 4]));
            } else {
                self.add_char(&mut w, ch);
            }
            self.push_char(&mut result, ch)?;
        }
        if stop.is_some() {
            // Callers replace this with their own end-of-input error.
            return Err(ExpandError::UnterminatedBrace {
                word: String::new(),
            });
        }
        if !self.word_buf.is_empty() {
            w.words.push(std::mem::take(&mut self.word_buf));
        }
        Ok((result, w.words))
    }

    /// A nested word up to `stop`, within the depth limit; at the end of the
    /// input any failure (but a limit) becomes `at_end`, as in BuildKit.
    fn nested(
        &mut self,
        stop: char,
        raw: bool,
        at_end: ExpandError,
    ) -> Result<String, ExpandError> {
        if self.depth >= self.lexer.max_depth {
            return Err(ExpandError::TooDeep {
                word: String::new(),
                limit: self.lexer.max_depth,
            });
        }
        self.depth += 1;
        let res = self.process_stop_on(Some(stop), raw);
        self.depth -= 1;
        match res {
            Ok((s, _)) => Ok(s),
            Err(e) if self.peek().is_none() && !e.is_limit() => Err(at_end),
            Err(e) => Err(e),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, ExpandError> {
        let raw = self.lexer.raw_quotes;
        let mut result = String::new();
        self.next();
        if raw {
            result.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(ExpandError::UnterminatedQuote {
                        word: String::new(),
                        quote: '\'',
                    });
                }
                Some('\'') => {
                    if raw {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ExpandError> {
        let raw = self.lexer.raw_quotes;
        let esc = self.lexer.escape;
        let mut result = String::new();
        self.next();
        if raw {
            result.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ExpandError::UnterminatedQuote {
                        word: String::new(),
                        quote: '"',
                    });
                }
                Some('"') => {
                    self.next();
                    if raw {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    self.push(&mut result, &value)?;
                }
                Some(mut ch) => {
                    self.next();
                    if ch == esc {
                        if self.raw_escapes {
                            self.push_char(&mut result, ch)?;
                        }
                        match self.peek() {
                            // A trailing escape is dropped (then the quote is unterminated).
                            None => continue,
                            // Only `"`, `$` and the escape itself are escaped;
                            // otherwise the escape stays (twice with raw escapes).
                            Some(c) if c == '"' || c == '$' || c == esc => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    self.push_char(&mut result, ch)?;
                }
            }
        }
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_owned();
        }
        self.next();
        let mut result = "<<".to_owned();
        while let Some(c @ (' ' | '\t' | '\r')) = self.peek() {
            result.push(c);
            self.next();
        }
        result
    }

    /// A name after `$`: digits, one special character, or letters, digits
    /// and `_`; empty if none.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(c) = self.peek().filter(|&c| is_digit(c)) {
                    name.push(c);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !is_letter(ch) && !is_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, ExpandError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get_env(&name) {
                None if self.lexer.skip_unset_env => format!("${name}"),
                v => v.unwrap_or_default().to_owned(),
            });
        }
        self.next();
        match self.peek() {
            None => {
                return Err(ExpandError::UnterminatedBrace {
                    word: String::new(),
                });
            }
            Some('{' | '}' | ':') => {
                return Err(ExpandError::BadSubstitution {
                    word: String::new(),
                });
            }
            Some(_) => {}
        }
        let name = self.process_name();
        let first = self.next();
        // Go prints the end of input (rune -1) as U+FFFD.
        let mut chs = String::from(first.unwrap_or('\u{fffd}'));
        match first {
            Some('}') => Ok(match self.get_env(&name) {
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                v => v.unwrap_or_default().to_owned(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let null_is_unset = first == Some(':');
                let mut op = first;
                if null_is_unset {
                    op = self.next();
                    chs.push(op.unwrap_or('\u{fffd}'));
                }
                let pattern = matches!(op, Some('#' | '%'));
                if null_is_unset && pattern {
                    return Err(unsupported(chs));
                }
                let at_end = ExpandError::UnterminatedBrace {
                    word: String::new(),
                };
                let word = self.nested('}', pattern, at_end)?;
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let empty = value.is_none() || (null_is_unset && value == Some(""));
                match op {
                    Some('-') => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default().to_owned()
                    }),
                    Some('+') => Ok(if empty { String::new() } else { word }),
                    Some('?') if empty => {
                        let message = if !word.is_empty() {
                            word
                        } else if value.is_none() {
                            "is not allowed to be unset".to_owned()
                        } else {
                            "is not allowed to be empty".to_owned()
                        };
                        Err(ExpandError::MissingRequired {
                            word: String::new(),
                            name,
                            message,
                        })
                    }
                    Some('?') => Ok(value.unwrap_or_default().to_owned()),
                    Some(c @ ('%' | '#')) => {
                        let value = value.unwrap_or_default();
                        let (greedy, pat) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        if c == '%' {
                            glob::trim_suffix(pat, value, greedy, &mut self.budget)
                        } else {
                            glob::trim_prefix(pat, value, greedy, &mut self.budget)
                        }
                    }
                    _ => Err(unsupported(chs)),
                }
            }
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let at_end = ExpandError::MissingSlash {
                    word: String::new(),
                };
                let pattern = self.nested('/', true, at_end)?;
                let at_end = ExpandError::UnterminatedBrace {
                    word: String::new(),
                };
                let replacement = self.nested('}', true, at_end)?;
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    // BuildKit writes one `/` here even for `//`.
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let limits = glob::Limits {
                    max_len: self.lexer.max_len,
                    budget: &mut self.budget,
                };
                glob::replace(&pattern, value, &replacement, all, limits)
            }
            _ => Err(unsupported(chs)),
        }
    }
}

fn unsupported(modifier: String) -> ExpandError {
    ExpandError::UnsupportedModifier {
        word: String::new(),
        modifier,
    }
}
