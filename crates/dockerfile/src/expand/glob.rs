//! The patterns of `${v#p}`, `${v%p}` and `${v/p/r}`.
//!
//! BuildKit turns a pattern into a Go regular expression: `*` becomes `.*`
//! (greedy) or `.*?` (lazy), `?` becomes `.`, and every other character is
//! literal. Go's `.` does not match a newline, and Go picks the leftmost match
//! and, among those, the first by priority (Perl semantics). This module
//! compiles the same patterns to a tiny program run by a Pike VM, which has
//! exactly those semantics, in time linear in text × pattern and with a step
//! budget (by default [`super::MAX_MATCH_STEPS`]).

use super::{ExpandError, is_digit, is_letter};

#[derive(Debug, Clone, Copy)]
enum Inst {
    Char(char),
    /// Any character but `\n`.
    Any,
    /// Try the first target, then the second.
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// Matching steps used and allowed.
#[derive(Debug)]
pub(super) struct Budget {
    pub used: u64,
    pub limit: u64,
}

/// What [`replace`] may use.
pub(super) struct Limits<'a> {
    pub max_len: usize,
    pub budget: &'a mut Budget,
}

/// Compile `pattern` with stars `greedy` or lazy.
fn compile(pattern: &str, greedy: bool) -> Result<Vec<Inst>, ExpandError> {
    // Go's text/scanner drops a byte order mark at the start.
    let body = pattern.strip_prefix('\u{feff}').unwrap_or(pattern);
    let mut prog = Vec::with_capacity(body.len() + 1);
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                let l = prog.len();
                if greedy {
                    prog.push(Inst::Split(l + 1, l + 3));
                } else {
                    prog.push(Inst::Split(l + 3, l + 1));
                }
                prog.push(Inst::Any);
                prog.push(Inst::Jmp(l));
            }
            '?' => prog.push(Inst::Any),
            '\\' => {
                // `\}` and `\/` escape for `${…}`; the `\` is not part of the pattern.
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => prog.push(Inst::Char(e)),
                    other => {
                        return Err(ExpandError::InvalidPattern {
                            word: String::new(),
                            pattern: pattern.to_owned(),
                            escaped: other.unwrap_or('\u{fffd}'),
                        });
                    }
                }
            }
            c => prog.push(Inst::Char(c)),
        }
    }
    prog.push(Inst::Match);
    Ok(prog)
}

/// A Pike VM over one program.
struct Vm<'p> {
    prog: &'p [Inst],
    /// Per instruction, the stamp of the last thread list that holds it.
    mark: Vec<u64>,
    stamp: u64,
    stack: Vec<usize>,
}

impl<'p> Vm<'p> {
    fn new(prog: &'p [Inst]) -> Self {
        Vm {
            prog,
            mark: vec![0; prog.len()],
            stamp: 0,
            stack: Vec::new(),
        }
    }

    /// Add the thread at `pc` and what it reaches without input to `list`,
    /// in priority order.
    fn add(&mut self, list: &mut Vec<(usize, usize)>, pc: usize, start: usize) {
        self.stack.push(pc);
        while let Some(pc) = self.stack.pop() {
            if self.mark[pc] == self.stamp {
                continue;
            }
            self.mark[pc] = self.stamp;
            match self.prog[pc] {
                Inst::Jmp(x) => self.stack.push(x),
                Inst::Split(x, y) => {
                    self.stack.push(y);
                    self.stack.push(x);
                }
                _ => list.push((pc, start)),
            }
        }
    }

    /// The leftmost-first match starting at `from` or later (only at `from`
    /// if `anchored`), as character indices.
    fn find(
        &mut self,
        text: &[char],
        from: usize,
        anchored: bool,
        budget: &mut Budget,
    ) -> Result<Option<(usize, usize)>, ExpandError> {
        let mut clist = Vec::new();
        let mut nlist = Vec::new();
        let mut found = None;
        self.stamp += 1;
        for i in from..=text.len() {
            if found.is_none() && (!anchored || i == from) {
                self.add(&mut clist, 0, i);
            }
            if clist.is_empty() {
                break;
            }
            budget.used += clist.len() as u64;
            if budget.used > budget.limit {
                return Err(ExpandError::TooComplex {
                    word: String::new(),
                    limit: budget.limit,
                });
            }
            self.stamp += 1;
            let c = text.get(i).copied();
            for &(pc, start) in &clist {
                match (self.prog[pc], c) {
                    (Inst::Match, _) => {
                        // Threads after this one have lower priority.
                        found = Some((start, i));
                        break;
                    }
                    (Inst::Char(want), Some(c)) if want == c => self.add(&mut nlist, pc + 1, start),
                    (Inst::Any, Some(c)) if c != '\n' => self.add(&mut nlist, pc + 1, start),
                    _ => {}
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
            nlist.clear();
        }
        Ok(found)
    }
}

/// `value` without the prefix that `pattern` matches (`${v#p}`, `${v##p}`).
pub(super) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
    budget: &mut Budget,
) -> Result<String, ExpandError> {
    let prog = compile(pattern, greedy)?;
    let text: Vec<char> = value.chars().collect();
    Ok(match Vm::new(&prog).find(&text, 0, true, budget)? {
        Some((_, end)) => text[end..].iter().collect(),
        None => value.to_owned(),
    })
}

/// `value` without the suffix that `pattern` matches (`${v%p}`, `${v%%p}`):
/// BuildKit reverses both and trims a prefix.
pub(super) fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
    budget: &mut Budget,
) -> Result<String, ExpandError> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy, budget)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverse a pattern, keeping each `\x` pair in order (`a\*c` → `c\*a`);
/// a lone `\` at the end is an ordinary character.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = chars.clone();
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        let o = last - i;
        if chars[i] == '\\' && i != last {
            out[o - 1] = '\\';
            out[o] = chars[i + 1];
            i += 2;
        } else {
            out[o] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn push(out: &mut String, s: &str, max_len: usize) -> Result<(), ExpandError> {
    if out.len() + s.len() > max_len {
        return Err(ExpandError::TooLong {
            word: String::new(),
            limit: max_len,
        });
    }
    out.push_str(s);
    Ok(())
}

/// `${v/p/r}` (`all` false) and `${v//p/r}` (`all` true), with stars greedy.
///
/// The first replacement is literal; replacing all follows Go's
/// `Regexp.ReplaceAllString`: an empty match right after a match is not
/// replaced, and `r` is a template where `$$` is `$`, `$0`/`${0}` the match
/// and any other `$name`/`${name}` nothing.
pub(super) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
    limits: Limits<'_>,
) -> Result<String, ExpandError> {
    let prog = compile(pattern, true)?;
    let mut vm = Vm::new(&prog);
    let text: Vec<char> = value.chars().collect();
    let max = limits.max_len;
    let mut out = String::new();
    if !all {
        return Ok(match vm.find(&text, 0, false, limits.budget)? {
            Some((a, b)) => {
                push(&mut out, &text[..a].iter().collect::<String>(), max)?;
                push(&mut out, replacement, max)?;
                push(&mut out, &text[b..].iter().collect::<String>(), max)?;
                out
            }
            None => value.to_owned(),
        });
    }
    let n = text.len();
    let (mut last_end, mut search) = (0, 0);
    while search <= n {
        let Some((a, b)) = vm.find(&text, search, false, limits.budget)? else {
            break;
        };
        push(&mut out, &text[last_end..a].iter().collect::<String>(), max)?;
        if b > last_end || a == 0 {
            let matched: String = text[a..b].iter().collect();
            expand_template(&mut out, replacement, &matched, max)?;
        }
        last_end = b;
        let width = usize::from(search < n);
        if search + width > b {
            search += width;
        } else if search + 1 > b {
            search += 1;
        } else {
            search = b;
        }
    }
    push(&mut out, &text[last_end..].iter().collect::<String>(), max)?;
    Ok(out)
}

/// Go's `Regexp.Expand` for a regexp without groups: only group 0 exists.
fn expand_template(
    out: &mut String,
    template: &str,
    matched: &str,
    max_len: usize,
) -> Result<(), ExpandError> {
    let mut t = template;
    while let Some(i) = t.find('$') {
        push(out, &t[..i], max_len)?;
        t = &t[i + 1..];
        if let Some(rest) = t.strip_prefix('$') {
            push(out, "$", max_len)?;
            t = rest;
            continue;
        }
        match extract_name(t) {
            None => push(out, "$", max_len)?,
            Some((name, rest)) => {
                t = rest;
                if name == "0" {
                    push(out, matched, max_len)?;
                }
            }
        }
    }
    push(out, t, max_len)
}

/// A template reference `name` or `{name}` at the start of `s`, and the rest.
fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (brace, s) = match s.strip_prefix('{') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let end = s
        .char_indices()
        .find(|&(_, c)| !is_letter(c) && !is_digit(c) && c != '_')
        .map_or(s.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let rest = &s[end..];
    let rest = if brace { rest.strip_prefix('}')? } else { rest };
    Some((&s[..end], rest))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::pair_kept("a\\*c", "c\\*a")]
    #[case::trailing_escape("ab\\", "\\ba")]
    #[case::double_escape("\\\\b", "b\\\\")]
    #[case::multibyte("é\\?ü", "ü\\?é")]
    #[case::empty("", "")]
    fn reverses_patterns(#[case] pattern: &str, #[case] expected: &str) {
        assert_eq!(reverse_pattern(pattern), expected);
    }

    #[rstest]
    #[case::greedy_star("a*b", "aXbYb", true, Some((0, 5)))]
    #[case::lazy_star("a*b", "aXbYb", false, Some((0, 3)))]
    #[case::dot_skips_newline("a?b", "a\nb", true, None)]
    #[case::star_stops_at_newline("*", "ab\ncd", true, Some((0, 2)))]
    #[case::no_match("x", "abc", true, None)]
    fn anchored_matches(
        #[case] pattern: &str,
        #[case] text: &str,
        #[case] greedy: bool,
        #[case] expected: Option<(usize, usize)>,
    ) {
        let prog = compile(pattern, greedy).unwrap();
        let text: Vec<char> = text.chars().collect();
        let mut budget = Budget {
            used: 0,
            limit: 1000,
        };
        let got = Vm::new(&prog).find(&text, 0, true, &mut budget).unwrap();
        assert_eq!(got, expected);
    }

    #[rstest]
    #[case::dollar_dollar("[$$]", "[$]")]
    #[case::group_zero("<$0>", "<m>")]
    #[case::braced_group_zero("${0}!", "m!")]
    #[case::other_names_empty("$1$x${y}", "")]
    #[case::leading_zero_is_a_name("$00", "")]
    #[case::malformed_kept("$}${x", "$}${x")]
    fn expands_templates(#[case] template: &str, #[case] expected: &str) {
        let mut out = String::new();
        expand_template(&mut out, template, "m", 100).unwrap();
        assert_eq!(out, expected);
    }

    #[test]
    fn step_budget_stops_quadratic_matching() {
        let text: Vec<char> = "a".repeat(2_000).chars().collect();
        let pattern = format!("{}b", "?".repeat(200));
        let prog = compile(&pattern, true).unwrap();
        let mut budget = Budget {
            used: 0,
            limit: 100_000,
        };
        let err = Vm::new(&prog)
            .find(&text, 0, false, &mut budget)
            .unwrap_err();
        assert!(matches!(err, ExpandError::TooComplex { .. }), "{err:?}");
    }
}
