//! Recognising heredoc markers (`<<EOF`, `<<-EOF`, `3<<"EOF"`) in a line.

/// A heredoc marker found in a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub fd: Option<u32>,
    pub chomp: bool,
    pub expand: bool,
}

/// A word of `line` with quotes and escapes kept, and its byte range.
#[derive(Debug, Clone)]
pub(crate) struct RawWord<'a> {
    pub text: &'a str,
    pub start: usize,
}

/// Split `line` into shell words, keeping quotes and escapes (backslash is the
/// escape here whatever the escape directive says, as in BuildKit).
pub(crate) fn raw_words(line: &str) -> Vec<RawWord<'_>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut it = line.char_indices();
    while let Some((i, c)) = it.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' && q == '"' {
                it.next();
            }
            continue;
        }
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(RawWord {
                    text: &line[s..i],
                    start: s,
                });
            }
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '\\' => {
                it.next();
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(RawWord {
            text: &line[s..],
            start: s,
        });
    }
    out
}

/// Match `^(\d*)<<(-?)\s*([^<]*)$` and decode the delimiter like BuildKit.
pub(crate) fn parse_marker(word: &str) -> Option<Marker> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\r', '\u{c}']);
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote_single_word(rest)?;
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '"' | '\'')).count();
    let expand = quotes(&name) == quotes(rest);
    let fd = (digits > 0).then(|| word[..digits].parse().unwrap_or(0));
    Some(Marker {
        name,
        fd,
        chomp,
        expand,
    })
}

/// Remove shell quoting from `s`; `None` if it is not exactly one word
/// (unquoted blanks) or has an unterminated quote.
fn unquote_single_word(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\'' => loop {
                match it.next()? {
                    '\'' => break,
                    c => out.push(c),
                }
            },
            '"' => loop {
                match it.next()? {
                    '"' => break,
                    '\\' => {
                        let n = it.next()?;
                        if !matches!(n, '"' | '\\' | '$' | '`') {
                            out.push('\\');
                        }
                        out.push(n);
                    }
                    c => out.push(c),
                }
            },
            '\\' => {
                if let Some(n) = it.next() {
                    out.push(n);
                }
            }
            c if c.is_whitespace() => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn m(name: &str, fd: Option<u32>, chomp: bool, expand: bool) -> Option<Marker> {
        Some(Marker {
            name: name.into(),
            fd,
            chomp,
            expand,
        })
    }

    #[rstest]
    #[case::plain("<<EOF", m("EOF", None, false, true))]
    #[case::chomp("<<-EOF", m("EOF", None, true, true))]
    #[case::fd("3<<EOF", m("EOF", Some(3), false, true))]
    #[case::double_quoted(r#"<<"EOF""#, m("EOF", None, false, false))]
    #[case::single_quoted("<<-'EOF'", m("EOF", None, true, false))]
    #[case::partly_quoted(r#"<<E"O"F"#, m("EOF", None, false, false))]
    #[case::escaped(r"<<\EOF", m("EOF", None, false, true))]
    #[case::triple("<<<EOF", None)]
    #[case::empty("<<", None)]
    #[case::prefixed("cat<<EOF", None)]
    #[case::unterminated_quote(r#"<<"EOF"#, None)]
    fn markers(#[case] word: &str, #[case] want: Option<Marker>) {
        assert_eq!(parse_marker(word), want);
    }

    #[test]
    fn words_keep_quotes_and_offsets() {
        let w = raw_words(r#"RUN cat <<"A B" 'x y'"#);
        let t: Vec<_> = w.iter().map(|w| w.text).collect();
        assert_eq!(t, ["RUN", "cat", r#"<<"A B""#, "'x y'"]);
        assert_eq!(w[2].start, 8);
    }
}
