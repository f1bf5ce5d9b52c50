//! A subset of Go's `text/template`, enough for `imagetools inspect --format` as
//! buildx documents it.
//!
//! Written here because no sound crate implements Go templates: the Rust template
//! engines (tera, minijinja, handlebars) speak other languages, and the one attempt at
//! Go's (`gtmpl`) is unmaintained and brings its own value model. The subset is small
//! and its behaviour is taken from Go's and buildx's documentation.
//!
//! Supported: literal text; `{{pipeline}}`; `{{if}}`, `{{else if}}`, `{{else}}`,
//! `{{end}}`; `{{range}}` over lists and maps (keys sorted, `$i, $v :=`, `{{else}}`);
//! `{{with}}`; `{{$x := pipeline}}`; `{{- ` and ` -}}` trimming; `{{/* comments */}}`.
//! Operands: `.`, `.A.B`, `$`, `$x.A`, `"strings"`, `` `raw` ``, integers, `true`,
//! `false`, `(pipeline).A`. Pipelines `x | f`. Functions: `json` (indented, as buildx
//! prints it), `index`, `eq`, `ne`, `not`, `and`, `or`, `len`.
//! Not supported: `define`/`template`/`block`, `break`/`continue`, `lt`/`le`/`gt`/`ge`,
//! `print`/`printf`/`println`, `html`/`js`/`urlquery`, floats, assignment with `=`.
//! An undefined variable is found when its action runs, not when the template parses.
//!
//! Data is a `serde_json::Value` seen through a [`Shape`]: fields are named as Go
//! names them (`.Platform.OS`) and found under their JSON key (`platform.os`); `json`
//! prints the JSON form, in the Go struct's field order.
//!
//! **Invariant**: a template only reads its data; it does no IO.

mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::{Map, Value};

/// How a value's fields are named and ordered.
#[derive(Debug)]
pub enum Shape<'s> {
    /// A scalar, or an object whose field names are its keys.
    Plain,
    List(&'s Shape<'s>),
    /// String keys to values of one shape; `.key` reads a key, as for Go maps.
    Map(&'s Shape<'s>),
    Struct(&'s [Field<'s>]),
}

/// A struct field: its Go name, its JSON key and its shape.
#[derive(Debug)]
pub struct Field<'s> {
    pub go: &'static str,
    pub json: &'static str,
    pub shape: &'s Shape<'s>,
}

impl<'s> Field<'s> {
    pub const fn new(go: &'static str, json: &'static str, shape: &'s Shape<'s>) -> Self {
        Field { go, json, shape }
    }
}

/// A value and its shape: what a template reads.
#[derive(Debug, Clone)]
pub struct Data<'s> {
    pub value: Value,
    pub shape: &'s Shape<'s>,
}

impl<'s> Data<'s> {
    pub fn new(value: Value, shape: &'s Shape<'s>) -> Self {
        Data { value, shape }
    }

    fn plain(value: Value) -> Self {
        Data::new(value, &Shape::Plain)
    }
}

/// A template error at a line and column (1-based, in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for TemplateError {}

/// An error at a byte offset; [`Template`] turns the offset into a line and column.
struct Fail {
    pos: usize,
    message: String,
    hint: Option<String>,
}

type R<T> = Result<T, Fail>;

fn fail<T>(pos: usize, message: impl Into<String>) -> R<T> {
    let message = message.into();
    Err(Fail {
        pos,
        message,
        hint: None,
    })
}

fn fail_hint<T>(pos: usize, message: impl Into<String>, hint: impl Into<String>) -> R<T> {
    let (message, hint) = (message.into(), Some(hint.into()));
    Err(Fail { pos, message, hint })
}

const FUNCTIONS: &[&str] = &["and", "eq", "index", "json", "len", "ne", "not", "or"];

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    src: String,
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug)]
struct Pipe {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug)]
struct Arg {
    pos: usize,
    kind: ArgKind,
}

#[derive(Debug)]
enum ArgKind {
    /// `.A.B` (empty: `.`).
    Dot(Vec<String>),
    /// `$x.A.B` (`$` alone is the root).
    Var(String, Vec<String>),
    Lit(Value),
    Func(String),
    Sub(Pipe, Vec<String>),
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let nodes = parse::parse(src).map_err(|f| locate(src, f))?;
        Ok(Template {
            src: src.into(),
            nodes,
        })
    }

    /// Render with `root` as `.` and `$`. All or nothing: an error leaves no output.
    pub fn render(&self, root: &Data<'_>) -> Result<String, TemplateError> {
        let mut ex = Exec {
            vars: vec![("$".to_owned(), root.clone())],
            out: String::new(),
        };
        ex.list(&self.nodes, root)
            .map_err(|f| locate(&self.src, f))?;
        Ok(ex.out)
    }
}

fn locate(src: &str, f: Fail) -> TemplateError {
    let before = &src[..f.pos.min(src.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    TemplateError {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
        message: f.message,
        hint: f.hint,
    }
}

struct Exec<'s> {
    vars: Vec<(String, Data<'s>)>,
    out: String,
}

impl<'s> Exec<'s> {
    fn list(&mut self, nodes: &[Node], dot: &Data<'s>) -> R<()> {
        let mark = self.vars.len();
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipe(pipe, dot)?;
                    match pipe.decl.first() {
                        Some(name) => self.vars.push((name.clone(), v)),
                        None => {
                            let text = print(&v).or_else(|h| {
                                fail_hint(pipe_pos(pipe), "cannot print a struct", h)
                            })?;
                            self.out.push_str(&text);
                        }
                    }
                }
                Node::If(cond, body, alt) => {
                    let branch = if truth(&self.pipe(cond, dot)?) {
                        body
                    } else {
                        alt
                    };
                    self.list(branch, dot)?;
                }
                Node::With(pipe, body, alt) => {
                    let v = self.pipe(pipe, dot)?;
                    if truth(&v) {
                        self.list(body, &v)?;
                    } else {
                        self.list(alt, dot)?;
                    }
                }
                Node::Range(pipe, body, alt) => self.range(pipe, body, alt, dot)?,
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn range(&mut self, pipe: &Pipe, body: &[Node], alt: &[Node], dot: &Data<'s>) -> R<()> {
        let v = self.pipe(pipe, dot)?;
        let e = elem_shape(v.shape);
        let elems: Vec<(Value, Data<'s>)> = match (&v.value, v.shape) {
            (Value::Null, _) => Vec::new(),
            (_, Shape::Struct(_)) => return fail(pipe_pos(pipe), "cannot range over a struct"),
            (Value::Array(a), _) => a
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::from(i), Data::new(x.clone(), e)))
                .collect(),
            (Value::Object(m), _) => sorted(m)
                .map(|(k, x)| (Value::from(k.as_str()), Data::new(x.clone(), e)))
                .collect(),
            _ => return fail(pipe_pos(pipe), format!("cannot range over {}", kind(&v))),
        };
        if elems.is_empty() {
            return self.list(alt, dot);
        }
        for (key, elem) in elems {
            let mark = self.vars.len();
            match pipe.decl.as_slice() {
                [v] => self.vars.push((v.clone(), elem.clone())),
                [k, v] => {
                    self.vars.push((k.clone(), Data::plain(key)));
                    self.vars.push((v.clone(), elem.clone()));
                }
                _ => {}
            }
            self.list(body, &elem)?;
            self.vars.truncate(mark);
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &Data<'s>) -> R<Data<'s>> {
        let mut last = None;
        for cmd in &pipe.cmds {
            last = Some(self.command(cmd, dot, last)?);
        }
        Ok(last.expect("the parser makes no empty pipeline"))
    }

    fn command(&mut self, cmd: &[Arg], dot: &Data<'s>, piped: Option<Data<'s>>) -> R<Data<'s>> {
        let first = &cmd[0];
        let ArgKind::Func(name) = &first.kind else {
            if piped.is_some() {
                return fail(
                    first.pos,
                    "a value is not a function: it takes no piped argument",
                );
            }
            return self.arg(first, dot);
        };
        let mut args = cmd[1..]
            .iter()
            .map(|a| self.arg(a, dot))
            .collect::<R<Vec<_>>>()?;
        args.extend(piped);
        call(name, args, first.pos)
    }

    fn arg(&mut self, arg: &Arg, dot: &Data<'s>) -> R<Data<'s>> {
        let (base, chain) = match &arg.kind {
            ArgKind::Dot(chain) => (dot.clone(), chain),
            ArgKind::Var(name, chain) => {
                let found = self.vars.iter().rev().find(|(n, _)| n == name);
                let Some((_, v)) = found else {
                    return fail(arg.pos, format!("undefined variable {name}"));
                };
                (v.clone(), chain)
            }
            ArgKind::Lit(v) => return Ok(Data::plain(v.clone())),
            ArgKind::Sub(pipe, chain) => (self.pipe(pipe, dot)?, chain),
            ArgKind::Func(_) => unreachable!("the parser puts functions first"),
        };
        chain
            .iter()
            .try_fold(base, |d, name| field(&d, name, arg.pos))
    }
}

/// The shape of a list's or map's elements.
fn elem_shape<'s>(shape: &'s Shape<'s>) -> &'s Shape<'s> {
    match shape {
        Shape::List(e) | Shape::Map(e) => e,
        _ => &Shape::Plain,
    }
}

/// A map's entries by key, as Go visits and prints them.
fn sorted(m: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by_key(|(k, _)| *k);
    entries.into_iter()
}

fn pipe_pos(pipe: &Pipe) -> usize {
    pipe.cmds[0][0].pos
}

fn kind(d: &Data<'_>) -> &'static str {
    match (&d.value, d.shape) {
        (_, Shape::Struct(_)) => "a struct",
        (Value::Null, _) => "nothing",
        (Value::Bool(_), _) => "a boolean",
        (Value::Number(_), _) => "a number",
        (Value::String(_), _) => "a string",
        (Value::Array(_), _) => "a list",
        (Value::Object(_), _) => "a map",
    }
}

fn field<'s>(d: &Data<'s>, name: &str, pos: usize) -> R<Data<'s>> {
    let get = |key: &str| d.value.get(key).cloned().unwrap_or(Value::Null);
    match d.shape {
        Shape::Struct(fields) => match fields.iter().find(|f| f.go == name) {
            Some(f) => Ok(Data::new(get(f.json), f.shape)),
            None => {
                let known: Vec<String> = fields.iter().map(|f| format!(".{}", f.go)).collect();
                fail_hint(
                    pos,
                    format!("unknown field .{name}"),
                    format!("the fields here are {}", known.join(", ")),
                )
            }
        },
        Shape::Map(elem) => Ok(Data::new(get(name), elem)),
        Shape::Plain if d.value.is_object() || d.value.is_null() => Ok(Data::plain(get(name))),
        _ => fail_hint(
            pos,
            format!("cannot read field .{name} of {}", kind(d)),
            "use `range` or `index` for the elements of a list",
        ),
    }
}

fn truth(d: &Data<'_>) -> bool {
    match &d.value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => matches!(d.shape, Shape::Struct(_)) || !m.is_empty(),
    }
}

/// How an action prints a value: Go's `%v` for scalars, lists and maps; a struct has
/// no readable form (the error is the hint to use `json`).
fn print(d: &Data<'_>) -> Result<String, String> {
    let inner = elem_shape(d.shape);
    let elem = |v: &Value| print(&Data::new(v.clone(), inner));
    Ok(match &d.value {
        Value::Null => String::new(),
        _ if matches!(d.shape, Shape::Struct(_)) => {
            return Err("print its JSON form: {{json …}}".into());
        }
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => d.value.to_string(),
        Value::Array(a) => {
            let parts = a.iter().map(elem).collect::<Result<Vec<_>, _>>()?;
            format!("[{}]", parts.join(" "))
        }
        Value::Object(m) => {
            let parts = sorted(m)
                .map(|(k, v)| Ok(format!("{k}:{}", elem(v)?)))
                .collect::<Result<Vec<_>, String>>()?;
            format!("map[{}]", parts.join(" "))
        }
    })
}

/// The JSON form, struct fields in their declared order (keys not declared follow).
pub fn to_json(d: &Data<'_>) -> Value {
    match (&d.value, d.shape) {
        (Value::Object(m), Shape::Struct(fields)) => {
            let mut out = Map::new();
            for f in fields.iter() {
                if let Some(v) = m.get(f.json) {
                    out.insert(f.json.to_owned(), to_json(&Data::new(v.clone(), f.shape)));
                }
            }
            for (k, v) in m {
                if !out.contains_key(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
            Value::Object(out)
        }
        (Value::Object(m), Shape::Map(e)) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_json(&Data::new(v.clone(), e))))
                .collect(),
        ),
        (Value::Array(a), Shape::List(e)) => Value::Array(
            a.iter()
                .map(|v| to_json(&Data::new(v.clone(), e)))
                .collect(),
        ),
        (v, _) => v.clone(),
    }
}

/// `json`: indented as buildx prints it, with `<`, `>`, `&` escaped as Go's encoder
/// does (they only occur inside strings, so the replacement is safe).
fn json_text(d: &Data<'_>) -> String {
    serde_json::to_string_pretty(&to_json(d))
        .expect("a JSON value always serialises")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn call<'s>(name: &str, args: Vec<Data<'s>>, pos: usize) -> R<Data<'s>> {
    let arity = |want: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            fail(pos, format!("{name} takes {want}, got {}", args.len()))
        }
    };
    match name {
        "json" => {
            arity("1 argument", args.len() == 1)?;
            Ok(Data::plain(Value::String(json_text(&args[0]))))
        }
        "len" => {
            arity("1 argument", args.len() == 1)?;
            let n = match &args[0].value {
                Value::Null => 0,
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) if !matches!(args[0].shape, Shape::Struct(_)) => m.len(),
                _ => return fail(pos, format!("len of {}", kind(&args[0]))),
            };
            Ok(Data::plain(Value::from(n)))
        }
        "not" => {
            arity("1 argument", args.len() == 1)?;
            Ok(Data::plain(Value::Bool(!truth(&args[0]))))
        }
        "and" | "or" => {
            arity("at least 1 argument", !args.is_empty())?;
            let stop = |d: &Data<'_>| truth(d) == (name == "or");
            let last = args.len() - 1;
            Ok(args
                .into_iter()
                .enumerate()
                .find(|(i, d)| stop(d) || *i == last)
                .expect("not empty")
                .1)
        }
        "eq" | "ne" => {
            arity(
                "at least 2 arguments",
                args.len() >= 2 && (name == "eq" || args.len() == 2),
            )?;
            let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            };
            let any = args[1..].iter().any(|b| same(&args[0].value, &b.value));
            Ok(Data::plain(Value::Bool(any == (name == "eq"))))
        }
        "index" => {
            arity("at least 1 argument", !args.is_empty())?;
            let mut it = args.into_iter();
            let first = it.next().expect("not empty");
            it.try_fold(first, |d, key| index(&d, &key.value, pos))
        }
        _ => unreachable!("the parser admits only FUNCTIONS"),
    }
}

fn index<'s>(d: &Data<'s>, key: &Value, pos: usize) -> R<Data<'s>> {
    let e = elem_shape(d.shape);
    match (&d.value, d.shape, key) {
        (_, Shape::Struct(_), _) => {
            fail_hint(pos, "cannot index a struct", "read its fields: .Field")
        }
        (Value::Null, _, _) => Ok(Data::new(Value::Null, e)),
        (Value::Object(m), _, Value::String(k)) => {
            Ok(Data::new(m.get(k).cloned().unwrap_or(Value::Null), e))
        }
        (Value::Array(a), _, Value::Number(n)) => {
            match n.as_u64().and_then(|i| a.get(usize::try_from(i).ok()?)) {
                Some(v) => Ok(Data::new(v.clone(), e)),
                None => fail(
                    pos,
                    format!("index {n} out of range: the list has {}", a.len()),
                ),
            }
        }
        _ => fail(pos, format!("cannot index {} with {key}", kind(d))),
    }
}
