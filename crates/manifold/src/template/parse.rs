//! Lexing and parsing: text and `{{actions}}` into the tree the parent runs.

use serde_json::Value;

use super::{Arg, ArgKind, FUNCTIONS, Node, Pipe, R, fail, fail_hint};

fn unclosed<T>(pos: usize, keyword: &str) -> R<T> {
    fail_hint(
        pos,
        format!("{{{{{keyword}}}}} without {{{{end}}}}"),
        format!("end each {{{{{keyword}}}}} with {{{{end}}}}"),
    )
}

/// Parse `src`, an error naming its byte offset.
pub(super) fn parse(src: &str) -> R<Vec<Node>> {
    let items = split(src)?;
    match (Parser { items, at: 0 }).list()? {
        (nodes, Stop::Eof) => Ok(nodes),
        (_, Stop::End(pos)) => fail(pos, "unexpected {{end}}"),
        (_, Stop::Else(pos, _)) => fail(pos, "unexpected {{else}}"),
    }
}

#[derive(Debug)]
enum Item {
    Text(String),
    Action(usize, Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq)]
enum T {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Ident(String),
    Open,
    Close,
    Bar,
    Comma,
    Declare,
}

#[derive(Debug, Clone)]
struct Tok {
    pos: usize,
    t: T,
}

/// Text and actions, with `{{- -}}` trimming applied and comments dropped.
fn split(src: &str) -> R<Vec<Item>> {
    let mut items = Vec::new();
    let mut at = 0;
    let mut trim_next = false;
    while let Some(open) = src[at..].find("{{").map(|i| at + i) {
        let mut text = &src[at..open];
        let mut body = open + 2;
        if trim_next {
            text = text.trim_start();
        }
        if src[body..].starts_with('-') && src[body + 1..].starts_with(char::is_whitespace) {
            text = text.trim_end();
            body += 1;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_owned()));
        }
        let (toks, end, trim) = lex_action(src, open, body)?;
        if !toks.is_empty() {
            items.push(Item::Action(open, toks));
        }
        at = end;
        trim_next = trim;
    }
    let rest = if trim_next {
        src[at..].trim_start()
    } else {
        &src[at..]
    };
    if !rest.is_empty() {
        items.push(Item::Text(rest.to_owned()));
    }
    Ok(items)
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The tokens of the action opened at `open` (body from `i`), where it ends, and
/// whether it trims the text after it.
fn lex_action(src: &str, open: usize, mut i: usize) -> R<(Vec<Tok>, usize, bool)> {
    let mut toks = Vec::new();
    let after_ws = |s: &str, i: usize| s[i..].trim_start().len();
    let comment_at = src.len() - after_ws(src, i);
    let comment = src[comment_at..].starts_with("/*");
    if comment {
        let Some(close) = src[comment_at..].find("*/") else {
            return fail(open, "unclosed comment");
        };
        i = comment_at + close + 2;
    }
    loop {
        let start = src.len() - after_ws(src, i);
        let spaced = start > i;
        i = start;
        let rest = &src[i..];
        let end = if rest.starts_with("}}") {
            Some((i + 2, false))
        } else if spaced && rest.starts_with("-}}") {
            Some((i + 3, true))
        } else {
            None
        };
        if let Some((end, trim)) = end {
            if toks.is_empty() && !comment {
                return fail(open, "missing value in empty action");
            }
            return Ok((toks, end, trim));
        }
        let Some(c) = rest.chars().next() else {
            return fail(open, "unclosed action: no }}");
        };
        let word = |from: usize| {
            let len = src[from..]
                .find(|c: char| !ident_char(c))
                .unwrap_or(src.len() - from);
            (src[from..from + len].to_owned(), from + len)
        };
        let chain = |mut j: usize| {
            let mut names = Vec::new();
            while src[j..].starts_with('.') && src[j + 1..].starts_with(ident_char) {
                let (name, next) = word(j + 1);
                names.push(name);
                j = next;
            }
            (names, j)
        };
        let (t, next) = match c {
            '(' => (T::Open, i + 1),
            ')' => (T::Close, i + 1),
            '|' => (T::Bar, i + 1),
            ',' => (T::Comma, i + 1),
            ':' if rest.starts_with(":=") => (T::Declare, i + 2),
            '"' => {
                let mut j = i + 1;
                let bytes = src.as_bytes();
                while j < src.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if j >= src.len() {
                    return fail(i, "unterminated quoted string");
                }
                match serde_json::from_str::<String>(&src[i..=j]) {
                    Ok(s) => (T::Str(s), j + 1),
                    Err(_) => return fail(i, "malformed quoted string"),
                }
            }
            '`' => match rest[1..].find('`') {
                Some(len) => (T::Str(rest[1..=len].to_owned()), i + len + 2),
                None => return fail(i, "unterminated raw string"),
            },
            '.' => {
                let (names, j) = chain(i);
                (T::Field(names), j.max(i + 1))
            }
            '$' => {
                let (name, j) = word(i + 1);
                let (names, j) = chain(j);
                (T::Var(format!("${name}"), names), j)
            }
            c if c.is_ascii_digit()
                || (c == '-' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) =>
            {
                let len = rest[1..]
                    .find(|c: char| !(ident_char(c) || c == '.'))
                    .map_or(rest.len(), |n| n + 1);
                let j = i + len;
                match rest[..len].parse() {
                    Ok(n) => (T::Int(n), j),
                    Err(_) => return fail(i, "bad number (integers only)"),
                }
            }
            c if ident_char(c) => {
                let (name, j) = word(i);
                (T::Ident(name), j)
            }
            c => return fail(i, format!("unexpected {c:?} in action")),
        };
        toks.push(Tok { pos: i, t });
        i = next;
    }
}

enum Stop {
    Eof,
    End(usize),
    Else(usize, Option<Pipe>),
}

struct Parser {
    items: Vec<Item>,
    at: usize,
}

impl Parser {
    fn list(&mut self) -> R<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        let stop = loop {
            let Some(item) = self.items.get(self.at) else {
                break Stop::Eof;
            };
            self.at += 1;
            let (pos, toks) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Item::Action(pos, toks) => (*pos, toks.clone()),
            };
            let keyword = match &toks[0].t {
                T::Ident(k) => k.as_str(),
                _ => "",
            };
            match keyword {
                "end" if toks.len() == 1 => break Stop::End(pos),
                "else" if toks.len() == 1 => break Stop::Else(pos, None),
                "else" if matches!(&toks[1].t, T::Ident(k) if k == "if") => {
                    break Stop::Else(pos, Some(self.pipe(&toks[2..], pos, false)?));
                }
                "end" | "else" => {
                    return fail(toks[1].pos, format!("unexpected tokens after {keyword}"));
                }
                "if" => {
                    let cond = self.pipe(&toks[1..], pos, false)?;
                    nodes.push(self.if_rest(cond, pos)?);
                }
                "range" | "with" => {
                    let pipe = self.pipe(&toks[1..], pos, keyword == "range")?;
                    let (body, stop) = self.list()?;
                    let (alt, stop) = match stop {
                        Stop::Else(_, None) => self.list()?,
                        stop => (Vec::new(), stop),
                    };
                    if !matches!(stop, Stop::End(_)) {
                        return unclosed(pos, keyword);
                    }
                    nodes.push(match keyword {
                        "range" => Node::Range(pipe, body, alt),
                        _ => Node::With(pipe, body, alt),
                    });
                }
                _ => {
                    let pipe = self.pipe(&toks, pos, true)?;
                    if pipe.decl.len() > 1 {
                        return fail(pos, "only range declares two variables");
                    }
                    nodes.push(Node::Action(pipe));
                }
            }
        };
        Ok((nodes, stop))
    }

    /// The rest of an `if` whose condition is parsed: body, `else if`s, `else`, `end`.
    fn if_rest(&mut self, cond: Pipe, pos: usize) -> R<Node> {
        let (body, stop) = self.list()?;
        let alt = match stop {
            Stop::End(_) => Vec::new(),
            Stop::Else(_, None) => match self.list()? {
                (alt, Stop::End(_)) => alt,
                _ => return unclosed(pos, "if"),
            },
            Stop::Else(at, Some(next)) => vec![self.if_rest(next, at)?],
            Stop::Eof => return unclosed(pos, "if"),
        };
        Ok(Node::If(cond, body, alt))
    }

    fn pipe(&self, toks: &[Tok], pos: usize, declares: bool) -> R<Pipe> {
        let mut decl = Vec::new();
        let mut rest = toks;
        if let Some(i) = toks.iter().position(|t| t.t == T::Declare) {
            for (j, t) in toks[..i].iter().enumerate() {
                match &t.t {
                    T::Var(name, chain) if chain.is_empty() && j % 2 == 0 => {
                        decl.push(name.clone())
                    }
                    T::Comma if j % 2 == 1 => {}
                    _ => return fail(t.pos, "bad variable declaration"),
                }
            }
            if !declares || decl.len() > 2 {
                return fail(pos, "bad variable declaration");
            }
            rest = &toks[i + 1..];
        }
        let mut cmds = Vec::new();
        let mut start = 0;
        let mut depth = 0usize;
        for (i, t) in rest.iter().enumerate() {
            match t.t {
                T::Open => depth += 1,
                T::Close => depth = depth.saturating_sub(1),
                T::Bar if depth == 0 => {
                    cmds.push(self.command(&rest[start..i], t.pos)?);
                    start = i + 1;
                }
                _ => {}
            }
        }
        let end = rest.last().map_or(pos, |t| t.pos);
        cmds.push(self.command(&rest[start..], end)?);
        Ok(Pipe { decl, cmds })
    }

    fn command(&self, toks: &[Tok], pos: usize) -> R<Vec<Arg>> {
        let mut args = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let Tok { pos, t } = &toks[i];
            i += 1;
            let kind = match t {
                T::Field(chain) => ArgKind::Dot(chain.clone()),
                T::Var(name, chain) => ArgKind::Var(name.clone(), chain.clone()),
                T::Str(s) => ArgKind::Lit(Value::from(s.as_str())),
                T::Int(n) => ArgKind::Lit(Value::from(*n)),
                T::Ident(w) if w == "true" || w == "false" => {
                    ArgKind::Lit(Value::Bool(w == "true"))
                }
                T::Ident(f) if FUNCTIONS.contains(&f.as_str()) => {
                    if !args.is_empty() {
                        return fail_hint(
                            *pos,
                            format!("function {f} used as an argument"),
                            format!("call it in parentheses: ({f} …)"),
                        );
                    }
                    ArgKind::Func(f.clone())
                }
                T::Ident(f) => {
                    return fail_hint(
                        *pos,
                        format!("function {f:?} not defined"),
                        format!("the functions are {}", FUNCTIONS.join(", ")),
                    );
                }
                T::Open => {
                    let mut depth = 1;
                    let start = i;
                    while i < toks.len() && depth > 0 {
                        match toks[i].t {
                            T::Open => depth += 1,
                            T::Close => depth -= 1,
                            _ => {}
                        }
                        i += 1;
                    }
                    if depth > 0 {
                        return fail(*pos, "unclosed parenthesis");
                    }
                    let inner = self.pipe(&toks[start..i - 1], *pos, false)?;
                    let close = toks[i - 1].pos;
                    let chain = match toks.get(i) {
                        Some(Tok {
                            pos,
                            t: T::Field(c),
                        }) if *pos == close + 1 && !c.is_empty() => {
                            i += 1;
                            c.clone()
                        }
                        _ => Vec::new(),
                    };
                    ArgKind::Sub(inner, chain)
                }
                T::Close => return fail(*pos, "unexpected )"),
                T::Bar | T::Comma | T::Declare => return fail(*pos, "unexpected token"),
            };
            args.push(Arg { pos: *pos, kind });
        }
        match args.first() {
            None => fail(pos, "missing value for command"),
            Some(Arg {
                kind: ArgKind::Func(_),
                ..
            }) => Ok(args),
            Some(_) if args.len() > 1 => fail(
                args[1].pos,
                "a value is not a function: it takes no arguments",
            ),
            Some(_) => Ok(args),
        }
    }
}
