//! Turning a logical line into an [`Instruction`] with BuildKit's per
//! instruction rules.

use super::ast::{
    Add, ArgDecl, CommandLine, Copy, Flag, From, Healthcheck, HealthcheckCmd, Instruction,
    InstructionKind, KeyValue, NetworkMode, Run, SecurityMode, Source, Words,
};
use super::diag::{Diagnostic, Span};
use super::flags::{self, FlagSet, Kind};
use super::heredoc::{self, Marker};
use super::limits::{MAX_FLAGS, MAX_HEREDOCS};
use super::lines::Logical;
use super::mount;
use super::words::{self, Json};

/// A heredoc marker found on the instruction line, waiting for its body.
#[derive(Debug, Clone)]
pub(crate) struct PendingHeredoc {
    pub marker: Marker,
    pub span: Span,
}

/// Context for building one instruction.
struct Ctx<'a> {
    line: &'a Logical,
    escape: char,
    /// Keyword to end of the logical line.
    span: Span,
    diags: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn error(&mut self, code: &'static str, message: String) {
        self.diags.push(Diagnostic::error(code, self.span, message));
    }
}

/// Build the instruction starting at byte `from` of `line`; also returns the
/// heredoc markers whose bodies follow the line.
pub(crate) fn build(
    line: &Logical,
    from: usize,
    escape: char,
    comments: Vec<String>,
    diags: &mut Vec<Diagnostic>,
) -> (Instruction, Vec<PendingHeredoc>) {
    let text = &line.text;
    let (ks, ke, rs) = words::split_command(&text[from..]);
    let (ks, ke, rs) = (from + ks, from + ke, from + rs);
    let keyword = text[ks..ke].to_owned();
    let (mut flag_words, args_start) = words::extract_flags(text, rs, escape);
    let span = Span::new(line.pos(ks), line.end());
    if flag_words.len() > MAX_FLAGS {
        diags.push(Diagnostic::error(
            "too-many-flags",
            line.span(flag_words[MAX_FLAGS].start, flag_words[MAX_FLAGS].end),
            format!("{keyword} has more than {MAX_FLAGS} flags"),
        ));
        flag_words.truncate(MAX_FLAGS);
    }
    let flags: Vec<Flag> = flag_words
        .iter()
        .map(|w| {
            let body = w.text.strip_prefix("--").unwrap_or(&w.text);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (body.to_owned(), None),
            };
            Flag {
                name,
                value,
                span: line.span(w.start, w.end),
            }
        })
        .collect();
    let args = text[args_start..].trim();
    let args_offset =
        args_start + (text[args_start..].len() - text[args_start..].trim_start().len());
    let mut ctx = Ctx {
        line,
        escape,
        span,
        diags,
    };
    let lower = keyword.to_ascii_lowercase();
    let kind = match lower.as_str() {
        "from" => from_cmd(&mut ctx, &flags, args),
        "run" => run(&mut ctx, &flags, args),
        "cmd" | "entrypoint" => {
            flags::check(&flags, &[], &keyword.to_ascii_uppercase(), ctx.diags);
            let c = maybe_json(&mut ctx, args);
            if lower == "cmd" {
                InstructionKind::Cmd(c)
            } else {
                InstructionKind::Entrypoint(c)
            }
        }
        "shell" => shell(&mut ctx, &flags, args),
        "label" | "env" => {
            let name = keyword.to_ascii_uppercase();
            flags::check(&flags, &[], &name, ctx.diags);
            let kv = name_values(&mut ctx, &name, args);
            if lower == "env" {
                InstructionKind::Env(kv)
            } else {
                InstructionKind::Label(kv)
            }
        }
        "maintainer" | "user" | "workdir" | "stopsignal" => {
            let name = keyword.to_ascii_uppercase();
            // BuildKit does not look at STOPSIGNAL's flags.
            if lower != "stopsignal" {
                flags::check(&flags, &[], &name, ctx.diags);
            }
            if args.is_empty() {
                ctx.error(
                    "invalid-arguments",
                    format!("{name} requires exactly one argument"),
                );
            }
            let s = args.to_owned();
            match lower.as_str() {
                "maintainer" => InstructionKind::Maintainer(s),
                "user" => InstructionKind::User(s),
                "workdir" => InstructionKind::Workdir(s),
                _ => InstructionKind::StopSignal(s),
            }
        }
        "expose" => {
            flags::check(&flags, &[], "EXPOSE", ctx.diags);
            let ports = words::fields(args);
            if ports.is_empty() {
                ctx.error(
                    "invalid-arguments",
                    "EXPOSE requires at least one argument".into(),
                );
            }
            InstructionKind::Expose(ports)
        }
        "add" | "copy" => copy_or_add(&mut ctx, &lower, &flags, args),
        "volume" => {
            flags::check(&flags, &[], "VOLUME", ctx.diags);
            let w = json_or_fields(&mut ctx, args);
            if w.words.is_empty() {
                ctx.error(
                    "invalid-arguments",
                    "VOLUME requires at least one argument".into(),
                );
            } else if w.words.iter().any(|v| v.trim().is_empty()) {
                ctx.error(
                    "invalid-arguments",
                    "VOLUME paths cannot be empty strings".into(),
                );
            }
            InstructionKind::Volume(w)
        }
        "arg" => arg(&mut ctx, &flags, args),
        "onbuild" => {
            return onbuild(ctx, keyword, flags, args, args_offset, comments);
        }
        "healthcheck" => healthcheck(&mut ctx, &flags, args),
        _ => {
            ctx.diags.push(Diagnostic::error(
                "unknown-instruction",
                line.span(ks, ke),
                unknown_instruction(&keyword),
            ));
            InstructionKind::Unknown(args.to_owned())
        }
    };
    let markers = heredoc_markers(&mut ctx, &kind, from);
    let instruction = Instruction {
        keyword,
        kind,
        flags,
        heredocs: Vec::new(),
        comments,
        span,
        original: text[from..].trim().to_owned(),
    };
    (instruction, markers)
}

const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

fn unknown_instruction(keyword: &str) -> String {
    let upper = keyword.to_uppercase();
    let best = KEYWORDS
        .iter()
        .map(|k| (flags::edit_distance(&upper, k), *k))
        .min()
        .filter(|(d, _)| *d <= 2 && upper.chars().count() > 2);
    match best {
        Some((_, k)) => format!("unknown instruction {keyword} (did you mean {k}?)"),
        None => format!("unknown instruction {keyword}"),
    }
}

/// Heredocs are recognised in non-JSON RUN, COPY and ADD (also under ONBUILD).
fn heredoc_markers(ctx: &mut Ctx<'_>, kind: &InstructionKind, from: usize) -> Vec<PendingHeredoc> {
    let capable = match kind {
        InstructionKind::Run(r) => !r.command.is_exec(),
        InstructionKind::Copy(c) => !c.json,
        InstructionKind::Add(a) => !a.json,
        _ => false,
    };
    let text = &ctx.line.text[from..];
    if !capable || !text.contains("<<") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for w in heredoc::raw_words(text) {
        let Some(marker) = heredoc::parse_marker(w.text) else {
            continue;
        };
        let span = ctx.line.span(from + w.start, from + w.start + w.text.len());
        if out.len() == MAX_HEREDOCS {
            ctx.diags.push(Diagnostic::error(
                "too-many-heredocs",
                span,
                format!("more than {MAX_HEREDOCS} heredocs in one instruction"),
            ));
            break;
        }
        out.push(PendingHeredoc { marker, span });
    }
    out
}

/// RUN/CMD/ENTRYPOINT: a JSON array of strings, else the raw text.
fn maybe_json(ctx: &mut Ctx<'_>, args: &str) -> CommandLine {
    if args.is_empty() {
        return CommandLine::Shell(String::new());
    }
    match words::parse_json_array(args) {
        Json::Strings(v) => CommandLine::Exec(v),
        Json::No => CommandLine::Shell(args.to_owned()),
        Json::NotStrings => {
            not_strings(ctx);
            CommandLine::Shell(args.to_owned())
        }
    }
}

fn not_strings(ctx: &mut Ctx<'_>) {
    ctx.error(
        "invalid-json",
        "json array arguments must contain strings only".into(),
    );
}

/// ADD/COPY/VOLUME: a JSON array of strings, else whitespace-separated fields.
fn json_or_fields(ctx: &mut Ctx<'_>, args: &str) -> Words {
    match words::parse_json_array(args) {
        Json::Strings(words) => Words { words, json: true },
        Json::NotStrings => {
            not_strings(ctx);
            Words {
                words: words::fields(args),
                json: false,
            }
        }
        Json::No => Words {
            words: words::fields(args),
            json: false,
        },
    }
}

fn from_cmd(ctx: &mut Ctx<'_>, flags: &[Flag], args: &str) -> InstructionKind {
    let set = flags::check(flags, &[("platform", Kind::Str)], "FROM", ctx.diags);
    let a = words::fields(args);
    let mut f = From {
        image: a.first().cloned().unwrap_or_default(),
        platform: set.string("platform"),
        name: None,
    };
    match a.len() {
        1 => {}
        3 if a[1].eq_ignore_ascii_case("as") => {
            let name = a[2].to_ascii_lowercase();
            if !valid_stage_name(&name) {
                ctx.error(
                    "invalid-stage-name",
                    format!(
                        "invalid stage name {:?}: it must start with a letter and contain only letters, digits, '-', '_' and '.'",
                        a[2]
                    ),
                );
            }
            f.name = Some(name);
        }
        _ => ctx.error(
            "invalid-arguments",
            "FROM requires either one argument (image) or three (image AS name)".into(),
        ),
    }
    InstructionKind::From(f)
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn run(ctx: &mut Ctx<'_>, flags: &[Flag], args: &str) -> InstructionKind {
    let spec = [
        ("mount", Kind::Strs),
        ("network", Kind::Str),
        ("security", Kind::Str),
    ];
    let set = flags::check(flags, &spec, "RUN", ctx.diags);
    let mut mounts = Vec::new();
    for f in set.all("mount") {
        match mount::parse_mount(f.value.as_deref().unwrap_or_default()) {
            Ok(m) => mounts.push(m),
            Err(e) => ctx
                .diags
                .push(Diagnostic::error("invalid-flag-value", f.span, e)),
        }
    }
    let network = set.flag("network").and_then(|f| {
        let v = f.value.as_deref().unwrap_or_default();
        let mode = match v {
            "default" => Some(NetworkMode::Default),
            "none" => Some(NetworkMode::None),
            "host" => Some(NetworkMode::Host),
            _ => None,
        };
        if mode.is_none() {
            ctx.diags.push(Diagnostic::error(
                "invalid-flag-value",
                f.span,
                format!("invalid --network value {v:?} (expected default, none or host)"),
            ));
        }
        mode
    });
    let security = set.flag("security").and_then(|f| {
        let v = f.value.as_deref().unwrap_or_default();
        let mode = match v {
            "sandbox" => Some(SecurityMode::Sandbox),
            "insecure" => Some(SecurityMode::Insecure),
            _ => None,
        };
        if mode.is_none() {
            ctx.diags.push(Diagnostic::error(
                "invalid-flag-value",
                f.span,
                format!("invalid --security value {v:?} (expected sandbox or insecure)"),
            ));
        }
        mode
    });
    InstructionKind::Run(Run {
        command: maybe_json(ctx, args),
        mounts,
        network,
        security,
    })
}

fn shell(ctx: &mut Ctx<'_>, flags: &[Flag], args: &str) -> InstructionKind {
    flags::check(flags, &[], "SHELL", ctx.diags);
    match maybe_json(ctx, args) {
        CommandLine::Exec(v) => {
            if v.is_empty() {
                ctx.error(
                    "invalid-arguments",
                    "SHELL requires at least one argument".into(),
                );
            }
            InstructionKind::Shell(v)
        }
        CommandLine::Shell(s) => {
            if s.is_empty() {
                ctx.error(
                    "invalid-arguments",
                    "SHELL requires at least one argument".into(),
                );
            } else {
                ctx.error(
                    "json-required",
                    format!("SHELL requires the arguments in JSON form, not {s:?}"),
                );
            }
            InstructionKind::Shell(Vec::new())
        }
    }
}

/// ENV and LABEL: `k=v ...` or legacy `k v`.
fn name_values(ctx: &mut Ctx<'_>, name: &str, args: &str) -> Vec<KeyValue> {
    let w = words::parse_words(args, ctx.escape);
    let Some(first) = w.first() else {
        ctx.error(
            "invalid-arguments",
            format!("{name} requires at least one argument"),
        );
        return Vec::new();
    };
    if !first.contains('=') {
        let Some((key, value)) = args.split_once(words::is_field_sep) else {
            ctx.error(
                "invalid-arguments",
                format!("{name} {args} has no value: use {name} {args}=<value>"),
            );
            return vec![KeyValue {
                key: args.to_owned(),
                value: String::new(),
                legacy: true,
            }];
        };
        return vec![KeyValue {
            key: key.to_owned(),
            value: value.trim_start_matches(words::is_field_sep).to_owned(),
            legacy: true,
        }];
    }
    let mut out = Vec::new();
    for word in w {
        let Some((k, v)) = word.split_once('=') else {
            ctx.error(
                "invalid-arguments",
                format!("{name} {word:?} has no '=': it must be of the form name=value"),
            );
            continue;
        };
        if k.is_empty() {
            ctx.error(
                "invalid-arguments",
                format!("{name} names cannot be blank in {word:?}"),
            );
        }
        out.push(KeyValue {
            key: k.to_owned(),
            value: v.to_owned(),
            legacy: false,
        });
    }
    out
}

fn arg(ctx: &mut Ctx<'_>, flags: &[Flag], args: &str) -> InstructionKind {
    for f in flags {
        ctx.diags.push(Diagnostic::warning(
            "ignored-flag",
            f.span,
            format!("flag --{} is ignored by ARG", f.name),
        ));
    }
    let w = words::parse_words(args, ctx.escape);
    if w.is_empty() {
        ctx.error(
            "invalid-arguments",
            "ARG requires at least one argument".into(),
        );
    }
    let decls = w
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((k, v)) => {
                if k.is_empty() {
                    ctx.error(
                        "invalid-arguments",
                        format!("ARG names cannot be blank in {word:?}"),
                    );
                }
                ArgDecl {
                    name: k.to_owned(),
                    default: Some(v.to_owned()),
                }
            }
            None => ArgDecl {
                name: word,
                default: None,
            },
        })
        .collect();
    InstructionKind::Arg(decls)
}

fn copy_or_add(ctx: &mut Ctx<'_>, lower: &str, flags: &[Flag], args: &str) -> InstructionKind {
    let is_add = lower == "add";
    let name = if is_add { "ADD" } else { "COPY" };
    let spec: &[(&str, Kind)] = if is_add {
        &[
            ("chown", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("keep-git-dir", Kind::Bool),
            ("checksum", Kind::Str),
            ("unpack", Kind::Bool),
            ("exclude", Kind::Strs),
        ]
    } else {
        &[
            ("chown", Kind::Str),
            ("from", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("exclude", Kind::Strs),
            ("parents", Kind::Bool),
        ]
    };
    let set = flags::check(flags, spec, name, ctx.diags);
    let w = json_or_fields(ctx, args);
    if w.words.len() < 2 {
        ctx.error(
            "invalid-arguments",
            format!(
                "{name} requires at least two arguments: one or more sources and a destination"
            ),
        );
    }
    let (sources, dest) = sources_and_dest(ctx, name, &w);
    let chmod = chmod(ctx, &set);
    let exclude = set
        .all("exclude")
        .into_iter()
        .filter_map(|f| f.value.clone())
        .collect();
    if is_add {
        InstructionKind::Add(Add {
            sources,
            dest,
            json: w.json,
            chown: set.string("chown"),
            chmod,
            link: set.bool("link").unwrap_or(false),
            keep_git_dir: set.bool("keep-git-dir"),
            checksum: set.string("checksum"),
            unpack: set.bool("unpack"),
            exclude,
        })
    } else {
        InstructionKind::Copy(Copy {
            sources,
            dest,
            json: w.json,
            from: set.string("from"),
            chown: set.string("chown"),
            chmod,
            link: set.bool("link").unwrap_or(false),
            parents: set.bool("parents").unwrap_or(false),
            exclude,
        })
    }
}

fn chmod(ctx: &mut Ctx<'_>, set: &FlagSet<'_>) -> Option<super::ast::Chmod> {
    let f = set.flag("chmod")?;
    match flags::parse_chmod(f.value.as_deref().unwrap_or_default()) {
        Ok(c) => Some(c),
        Err(e) => {
            ctx.diags
                .push(Diagnostic::error("invalid-flag-value", f.span, e));
            None
        }
    }
}

fn sources_and_dest(ctx: &mut Ctx<'_>, name: &str, w: &Words) -> (Vec<Source>, String) {
    let Some((dest, srcs)) = w.words.split_last() else {
        return (Vec::new(), String::new());
    };
    if srcs.is_empty() {
        return (Vec::new(), dest.clone());
    }
    if heredoc::parse_marker(dest).is_some() {
        ctx.error(
            "invalid-arguments",
            format!("{name} cannot take a heredoc ({dest}) as its destination"),
        );
    }
    // Heredoc indices follow their order on the line; BuildKit looks them up
    // by name (the last one of a name wins).
    let markers: Vec<Marker> = if w.json {
        Vec::new()
    } else {
        heredoc::raw_words(&ctx.line.text)
            .iter()
            .filter_map(|rw| heredoc::parse_marker(rw.text))
            .take(MAX_HEREDOCS)
            .collect()
    };
    let sources = srcs
        .iter()
        .map(|s| {
            let idx = heredoc::parse_marker(s)
                .and_then(|m| markers.iter().rposition(|x| x.name == m.name));
            match idx {
                Some(i) => Source::Heredoc(i),
                None => Source::Path(s.clone()),
            }
        })
        .collect();
    (sources, dest.clone())
}

fn healthcheck(ctx: &mut Ctx<'_>, flags: &[Flag], args: &str) -> InstructionKind {
    let typ_len = args.find(char::is_whitespace).unwrap_or(args.len());
    let typ = &args[..typ_len];
    let rest = args[typ_len..].trim_start();
    if typ.eq_ignore_ascii_case("none") {
        flags::check(flags, &[], "HEALTHCHECK NONE", ctx.diags);
        if !rest.is_empty() {
            ctx.error(
                "invalid-arguments",
                format!("HEALTHCHECK NONE takes no arguments, found {rest:?}"),
            );
        }
        return InstructionKind::Healthcheck(Healthcheck::None);
    }
    let spec = [
        ("interval", Kind::Str),
        ("timeout", Kind::Str),
        ("start-period", Kind::Str),
        ("start-interval", Kind::Str),
        ("retries", Kind::Str),
    ];
    let set = flags::check(flags, &spec, "HEALTHCHECK", ctx.diags);
    if typ.is_empty() {
        ctx.error(
            "invalid-arguments",
            "HEALTHCHECK requires at least one argument".into(),
        );
    } else if !typ.eq_ignore_ascii_case("cmd") {
        ctx.error(
            "invalid-arguments",
            format!("unknown HEALTHCHECK type {typ:?} (expected CMD or NONE)"),
        );
    }
    let command = maybe_json(ctx, rest);
    let empty = match &command {
        CommandLine::Shell(s) => s.is_empty(),
        CommandLine::Exec(v) => v.is_empty(),
    };
    if empty && typ.eq_ignore_ascii_case("cmd") {
        ctx.error(
            "invalid-arguments",
            "HEALTHCHECK CMD requires a command".into(),
        );
    }
    let mut duration = |name: &str| {
        let f = set.flag(name)?;
        let v = f.value.as_deref().unwrap_or_default();
        if v.is_empty() {
            return None;
        }
        match flags::go_duration(v) {
            None => {
                ctx.diags.push(Diagnostic::error(
                    "invalid-flag-value",
                    f.span,
                    format!("invalid --{name} value {v:?}: expected a duration like 30s or 1m30s"),
                ));
                None
            }
            Some(0) => Some(std::time::Duration::ZERO),
            Some(n) if n < 1_000_000 => {
                ctx.diags.push(Diagnostic::error(
                    "invalid-flag-value",
                    f.span,
                    format!("invalid --{name} value {v:?}: it cannot be less than 1ms"),
                ));
                None
            }
            Some(n) => u64::try_from(n).ok().map(std::time::Duration::from_nanos),
        }
    };
    let interval = duration("interval");
    let timeout = duration("timeout");
    let start_period = duration("start-period");
    let start_interval = duration("start-interval");
    let retries = set.flag("retries").and_then(|f| {
        let v = f.value.as_deref().unwrap_or_default();
        if v.is_empty() {
            return None;
        }
        let r = flags::go_int32(v).and_then(|n| u32::try_from(n).ok());
        if r.is_none() {
            ctx.diags.push(Diagnostic::error(
                "invalid-flag-value",
                f.span,
                format!("invalid --retries value {v:?}: expected a non-negative integer"),
            ));
        }
        r
    });
    InstructionKind::Healthcheck(Healthcheck::Cmd(HealthcheckCmd {
        command,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    }))
}

fn onbuild(
    mut ctx: Ctx<'_>,
    keyword: String,
    flags: Vec<Flag>,
    args: &str,
    args_offset: usize,
    comments: Vec<String>,
) -> (Instruction, Vec<PendingHeredoc>) {
    flags::check(&flags, &[], "ONBUILD", ctx.diags);
    let line = ctx.line;
    let span = ctx.span;
    let original = line.text[line.text.len() - line.text.trim_start().len()..]
        .trim()
        .to_owned();
    let trigger = args
        .split(char::is_whitespace)
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let mut inner = None;
    let mut markers = Vec::new();
    match trigger.as_str() {
        "" => ctx.error(
            "invalid-arguments",
            "ONBUILD requires at least one argument".into(),
        ),
        "ONBUILD" => ctx.error(
            "invalid-onbuild",
            "chaining ONBUILD via ONBUILD ONBUILD is not allowed".into(),
        ),
        "FROM" | "MAINTAINER" => ctx.error(
            "invalid-onbuild",
            format!("{trigger} is not allowed as an ONBUILD trigger"),
        ),
        _ => {
            let (i, m) = build(line, args_offset, ctx.escape, Vec::new(), ctx.diags);
            inner = Some(Box::new(i));
            markers = m;
        }
    }
    let instruction = Instruction {
        keyword,
        kind: InstructionKind::Onbuild(inner),
        flags,
        heredocs: Vec::new(),
        comments,
        span,
        original,
    };
    (instruction, markers)
}
