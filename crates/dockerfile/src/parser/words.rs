//! Word splitting the way BuildKit's line parsers do it: command/flags split,
//! quote-aware words (quotes kept), whitespace fields and JSON arrays.

/// BuildKit's `[\t\v\f\r ]+` separator.
pub(crate) fn is_field_sep(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Split `text` into the keyword and the offset where the rest starts.
/// Returns `(keyword_start, keyword_end, rest_start)` as byte offsets.
pub(crate) fn split_command(text: &str) -> (usize, usize, usize) {
    let start = text.len() - text.trim_start().len();
    let end_all = text.trim_end().len().max(start);
    let body = &text[start..end_all];
    let kw_len = body.find(is_field_sep).unwrap_or(body.len());
    let after = &body[kw_len..];
    let rest = kw_len + (after.len() - after.trim_start_matches(is_field_sep).len());
    (start, start + kw_len, start + rest)
}

/// A `--flag` word found before the arguments; offsets into the logical text.
#[derive(Debug, Clone)]
pub(crate) struct FlagWord {
    /// With quotes and escapes removed, e.g. `--from=build`.
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// Extract leading `--flag` words from `text[from..]` (BuildKit's
/// `extractBuilderFlags`). Returns the flags and the offset where the
/// arguments start. A lone `--` ends the flags.
pub(crate) fn extract_flags(text: &str, from: usize, escape: char) -> (Vec<FlagWord>, usize) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut start = from;
    let mut it = text[from..].char_indices().peekable();
    while let Some((rel, c)) = it.next() {
        let pos = from + rel;
        match phase {
            Phase::Spaces => {
                if c.is_whitespace() {
                    continue;
                }
                if c != '-' || !text[pos + 1..].starts_with('-') {
                    return (flags, pos);
                }
                phase = Phase::Word;
                start = pos;
                word.push(c);
            }
            Phase::Word => {
                if c.is_whitespace() {
                    if word == "--" {
                        return (flags, pos);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(FlagWord {
                            text: std::mem::take(&mut word),
                            start,
                            end: pos,
                        });
                    }
                    word.clear();
                    blank_ok = false;
                    phase = Phase::Spaces;
                } else if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                } else if c == escape {
                    if let Some((_, n)) = it.next() {
                        word.push(n);
                    }
                } else {
                    word.push(c);
                }
            }
            Phase::Quote(q) => {
                if c == q {
                    phase = Phase::Word;
                } else if c == escape {
                    match it.next() {
                        Some((_, n)) => word.push(n),
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(c);
                }
            }
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        flags.push(FlagWord {
            text: word,
            start,
            end: text.len(),
        });
    }
    (flags, text.len())
}

/// Quote-aware words (BuildKit's `parseWords`): whitespace separates words
/// except inside quotes; quotes and escapes are kept in the words.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut it = rest.chars().peekable();
    while let Some(c) = it.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            if c == escape && q != '\'' {
                match it.next() {
                    None => {
                        quote = None;
                        continue;
                    }
                    Some(n) => {
                        word.push(c);
                        word.push(n);
                        continue;
                    }
                }
            }
            word.push(c);
            continue;
        }
        if !in_word {
            if c.is_whitespace() {
                continue;
            }
            in_word = true;
        }
        if c.is_whitespace() {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            word.clear();
            blank_ok = false;
            in_word = false;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            blank_ok = true;
        }
        if c == escape {
            match it.next() {
                None => continue,
                Some(n) => {
                    word.push(c);
                    word.push(n);
                    continue;
                }
            }
        }
        word.push(c);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Fields separated by `[\t\v\f\r ]+` (no quoting).
pub(crate) fn fields(rest: &str) -> Vec<String> {
    rest.split(is_field_sep)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Outcome of trying the JSON (exec) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Json {
    /// Not JSON at all: use the shell form.
    No,
    /// Valid JSON array with a non-string element: an error in BuildKit.
    NotStrings,
    Strings(Vec<String>),
}

/// Go's `encoding/json` nesting limit.
const MAX_JSON_DEPTH: usize = 10_000;

/// Parse `rest` as a JSON array of strings, like BuildKit's `parseJSON`.
pub(crate) fn parse_json_array(rest: &str) -> Json {
    let b = rest.trim_start().as_bytes();
    if b.first() != Some(&b'[') {
        return Json::No;
    }
    let mut i = ws(b, 1);
    let mut out = Vec::new();
    let mut strings_only = true;
    if b.get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            i = ws(b, i);
            if b.get(i) == Some(&b'"') {
                let Some((s, n)) = json_string(b, i) else {
                    return Json::No;
                };
                out.push(s);
                i = n;
            } else {
                let Some(n) = skip_value(b, i) else {
                    return Json::No;
                };
                strings_only = false;
                i = n;
            }
            i = ws(b, i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b']') => {
                    i += 1;
                    break;
                }
                _ => return Json::No,
            }
        }
    }
    if ws(b, i) != b.len() {
        return Json::No;
    }
    if strings_only {
        Json::Strings(out)
    } else {
        Json::NotStrings
    }
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Skip one JSON value starting at `i` without recursion.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    let mut stack: Vec<u8> = Vec::new();
    loop {
        // A value starts at i.
        i = ws(b, i);
        match *b.get(i)? {
            b'"' => i = json_string(b, i)?.1,
            b'{' => {
                i = ws(b, i + 1);
                if b.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    stack.push(b'{');
                    i = object_key(b, i)?;
                    continue;
                }
            }
            b'[' => {
                i = ws(b, i + 1);
                if b.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    stack.push(b'[');
                    continue;
                }
            }
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number(b, i)?,
            _ => return None,
        }
        if stack.len() > MAX_JSON_DEPTH {
            return None;
        }
        // A value ended at i: close containers or move to the next element.
        loop {
            let Some(&top) = stack.last() else {
                return Some(i);
            };
            i = ws(b, i);
            match (*b.get(i)?, top) {
                (b',', b'{') => {
                    i = object_key(b, ws(b, i + 1))?;
                    break;
                }
                (b',', _) => {
                    i += 1;
                    break;
                }
                (b']', b'[') | (b'}', b'{') => {
                    stack.pop();
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

fn object_key(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = ws(b, json_string(b, i)?.1);
    (b.get(i) == Some(&b':')).then_some(i + 1)
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b.get(i..i + word.len())
        .filter(|s| *s == word)
        .map(|_| i + word.len())
}

fn number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| {
        let s = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > s).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    if b.get(i) == Some(&b'0') {
        i += 1;
    } else {
        i = digits(b, i)?;
    }
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some(i)
}

/// Decode the JSON string starting at the quote at `i`; returns the string
/// and the offset after the closing quote.
fn json_string(b: &[u8], i: usize) -> Option<(String, usize)> {
    let mut out: Vec<u8> = Vec::new();
    let mut i = i + 1;
    loop {
        let c = *b.get(i)?;
        match c {
            b'"' => break,
            0..=0x1f => return None,
            b'\\' => {
                let e = *b.get(i + 1)?;
                i += 2;
                let simple = match e {
                    b'"' => Some(b'"'),
                    b'\\' => Some(b'\\'),
                    b'/' => Some(b'/'),
                    b'b' => Some(8),
                    b'f' => Some(12),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'u' => None,
                    _ => return None,
                };
                if let Some(s) = simple {
                    out.push(s);
                    continue;
                }
                let hi = hex4(b, i)?;
                i += 4;
                let ch = if (0xD800..0xDC00).contains(&hi) {
                    let lo = (b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u'))
                        .then(|| hex4(b, i + 2))
                        .flatten()
                        .filter(|lo| (0xDC00..0xE000).contains(lo));
                    match lo {
                        Some(lo) => {
                            i += 6;
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        }
                        None => None,
                    }
                } else {
                    char::from_u32(hi)
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.unwrap_or('\u{fffd}').encode_utf8(&mut buf).as_bytes());
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some((String::from_utf8_lossy(&out).into_owned(), i + 1))
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let s = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
    if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::strings(r#"["a", "b c"]"#, Json::Strings(vec!["a".into(), "b c".into()]))]
    #[case::empty("[]", Json::Strings(vec![]))]
    #[case::escapes(r#"["\u00e9\n\ud83d\ude00"]"#, Json::Strings(vec!["é\n😀".into()]))]
    #[case::lone_surrogate(r#"["\ud800x"]"#, Json::Strings(vec!["\u{fffd}x".into()]))]
    #[case::number("[1]", Json::NotStrings)]
    #[case::nested(r#"["a", {"k": [1, {"x": null}]}]"#, Json::NotStrings)]
    #[case::unterminated(r#"["a""#, Json::No)]
    #[case::single_quotes("['a']", Json::No)]
    #[case::trailing_comma(r#"["a",]"#, Json::No)]
    #[case::trailing_text(r#"["a"] x"#, Json::No)]
    #[case::not_array("echo [", Json::No)]
    #[case::bad_number("[01]", Json::No)]
    fn json(#[case] s: &str, #[case] want: Json) {
        assert_eq!(parse_json_array(s), want);
    }

    #[test]
    fn deep_json_does_not_overflow() {
        let s = format!("[{}{}]", "[".repeat(200_000), "]".repeat(200_000));
        assert_eq!(parse_json_array(&s), Json::No);
        let s = format!("[{}{}]", "[".repeat(500), "]".repeat(500));
        assert_eq!(parse_json_array(&s), Json::NotStrings);
    }

    #[rstest]
    #[case::quotes_kept(r#"a="b c" d"#, &[r#"a="b c""#, "d"])]
    #[case::escaped_space(r"a\ b c", &[r"a\ b", "c"])]
    #[case::single_no_escape(r"'a\' b", &[r"'a\'", "b"])]
    #[case::empty_quotes(r#""" x"#, &[r#""""#, "x"])]
    fn words(#[case] s: &str, #[case] want: &[&str]) {
        assert_eq!(parse_words(s, '\\'), want);
    }

    #[test]
    fn flags_stop_at_first_argument() {
        let t = "COPY --from=a --link x --y";
        let (_, _, rest) = split_command(t);
        let (flags, args) = extract_flags(t, rest, '\\');
        let names: Vec<_> = flags.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(names, ["--from=a", "--link"]);
        assert_eq!(&t[args..], "x --y");
        assert_eq!(&t[flags[0].start..flags[0].end], "--from=a");
    }

    #[test]
    fn double_dash_ends_flags() {
        let t = "RUN --network=none -- --not-a-flag";
        let (_, _, rest) = split_command(t);
        let (flags, args) = extract_flags(t, rest, '\\');
        assert_eq!(flags.len(), 1);
        assert_eq!(t[args..].trim(), "--not-a-flag");
    }
}
