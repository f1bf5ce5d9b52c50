//! A stable, human-readable text dump of a parse result (used by tests and
//! for debugging). One line per instruction, details indented below it, then
//! one line per diagnostic.

use std::fmt::Write as _;

use super::ast::{
    Chmod, CommandLine, Healthcheck, Instruction, InstructionKind, Mount, NetworkMode, Parsed,
    RuleSet, SecurityMode, Sharing, Source,
};

impl Parsed {
    /// The stable text dump of the tree and the diagnostics.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let d = &self.dockerfile.directives;
        if let Some(s) = &d.syntax {
            let _ = writeln!(out, "directive syntax {:?}", s.value);
        }
        if d.escape != '\\' {
            let _ = writeln!(out, "directive escape {:?}", d.escape);
        }
        if let Some(c) = &d.check {
            let _ = writeln!(
                out,
                "directive check skip={} error={} experimental={}",
                rules(&c.skip),
                c.error,
                rules(&c.experimental)
            );
        }
        for i in &self.dockerfile.instructions {
            instruction(&mut out, i, "");
        }
        for g in &self.diagnostics {
            let _ = writeln!(
                out,
                "diag {} {} {}: {}",
                g.span, g.severity, g.code, g.message
            );
        }
        out
    }
}

fn rules(r: &RuleSet) -> String {
    match r {
        RuleSet::All => "all".into(),
        RuleSet::Rules(v) => format!("{v:?}"),
    }
}

fn command(c: &CommandLine) -> String {
    match c {
        CommandLine::Shell(s) => format!("shell {s:?}"),
        CommandLine::Exec(v) => format!("exec {v:?}"),
    }
}

fn chmod(c: &Option<Chmod>) -> String {
    match c {
        None => String::new(),
        Some(Chmod::Octal(m)) => format!(" chmod={m:#o}"),
        Some(Chmod::Symbolic(s)) => format!(" chmod=symbolic:{s:?}"),
        Some(Chmod::Unexpanded(s)) => format!(" chmod=unexpanded:{s:?}"),
    }
}

fn opt(name: &str, v: &Option<String>) -> String {
    v.as_ref()
        .map(|v| format!(" {name}={v:?}"))
        .unwrap_or_default()
}

fn sources(s: &[Source], i: &Instruction) -> String {
    let parts: Vec<String> = s
        .iter()
        .map(|s| match s {
            Source::Path(p) => format!("{p:?}"),
            Source::Heredoc(n) => match i.heredocs.get(*n) {
                Some(h) => format!("heredoc#{n}({:?})", h.name),
                None => format!("heredoc#{n}"),
            },
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn instruction(out: &mut String, i: &Instruction, indent: &str) {
    let _ = write!(out, "{indent}{} ", i.span);
    let body = match &i.kind {
        InstructionKind::From(f) => format!(
            "FROM image={:?}{}{}",
            f.image,
            opt("platform", &f.platform),
            opt("name", &f.name)
        ),
        InstructionKind::Run(r) => {
            let mut s = "RUN".to_owned();
            if let Some(n) = r.network {
                let n = match n {
                    NetworkMode::Default => "default",
                    NetworkMode::None => "none",
                    NetworkMode::Host => "host",
                };
                let _ = write!(s, " network={n}");
            }
            if let Some(m) = r.security {
                let m = match m {
                    SecurityMode::Sandbox => "sandbox",
                    SecurityMode::Insecure => "insecure",
                };
                let _ = write!(s, " security={m}");
            }
            let _ = write!(s, " {}", command(&r.command));
            s
        }
        InstructionKind::Cmd(c) => format!("CMD {}", command(c)),
        InstructionKind::Entrypoint(c) => format!("ENTRYPOINT {}", command(c)),
        InstructionKind::Shell(v) => format!("SHELL {v:?}"),
        InstructionKind::Label(kv) | InstructionKind::Env(kv) => {
            let mut s = i.kind.name().to_owned();
            for p in kv {
                let sep = if p.legacy { " legacy " } else { "=" };
                let _ = write!(s, " {:?}{sep}{:?}", p.key, p.value);
            }
            s
        }
        InstructionKind::Maintainer(v) => format!("MAINTAINER {v:?}"),
        InstructionKind::User(v) => format!("USER {v:?}"),
        InstructionKind::Workdir(v) => format!("WORKDIR {v:?}"),
        InstructionKind::StopSignal(v) => format!("STOPSIGNAL {v:?}"),
        InstructionKind::Expose(v) => format!("EXPOSE {v:?}"),
        InstructionKind::Volume(w) => {
            format!("VOLUME {}{:?}", if w.json { "json " } else { "" }, w.words)
        }
        InstructionKind::Arg(a) => {
            let mut s = "ARG".to_owned();
            for d in a {
                match &d.default {
                    Some(v) => {
                        let _ = write!(s, " {:?}={v:?}", d.name);
                    }
                    None => {
                        let _ = write!(s, " {:?}", d.name);
                    }
                }
            }
            s
        }
        InstructionKind::Copy(c) => format!(
            "COPY{}{}{}{}{}{}{} sources={} dest={:?}",
            if c.json { " json" } else { "" },
            opt("from", &c.from),
            opt("chown", &c.chown),
            chmod(&c.chmod),
            if c.link { " link" } else { "" },
            if c.parents { " parents" } else { "" },
            if c.exclude.is_empty() {
                String::new()
            } else {
                format!(" exclude={:?}", c.exclude)
            },
            sources(&c.sources, i),
            c.dest
        ),
        InstructionKind::Add(a) => format!(
            "ADD{}{}{}{}{}{}{}{} sources={} dest={:?}",
            if a.json { " json" } else { "" },
            opt("chown", &a.chown),
            chmod(&a.chmod),
            if a.link { " link" } else { "" },
            a.keep_git_dir
                .map(|b| format!(" keep-git-dir={b}"))
                .unwrap_or_default(),
            opt("checksum", &a.checksum),
            a.unpack.map(|b| format!(" unpack={b}")).unwrap_or_default(),
            if a.exclude.is_empty() {
                String::new()
            } else {
                format!(" exclude={:?}", a.exclude)
            },
            sources(&a.sources, i),
            a.dest
        ),
        InstructionKind::Onbuild(_) => "ONBUILD".to_owned(),
        InstructionKind::Healthcheck(Healthcheck::None) => "HEALTHCHECK NONE".to_owned(),
        InstructionKind::Healthcheck(Healthcheck::Cmd(h)) => {
            let mut s = "HEALTHCHECK".to_owned();
            for (n, d) in [
                ("interval", h.interval),
                ("timeout", h.timeout),
                ("start-period", h.start_period),
                ("start-interval", h.start_interval),
            ] {
                if let Some(d) = d {
                    let _ = write!(s, " {n}={d:?}");
                }
            }
            if let Some(r) = h.retries {
                let _ = write!(s, " retries={r}");
            }
            let _ = write!(s, " CMD {}", command(&h.command));
            s
        }
        InstructionKind::Unknown(a) => format!("UNKNOWN keyword={:?} args={a:?}", i.keyword),
    };
    let _ = writeln!(out, "{body}");
    let sub = format!("{indent}  ");
    if let InstructionKind::Run(r) = &i.kind {
        for m in &r.mounts {
            let _ = writeln!(out, "{sub}{}", mount(m));
        }
    }
    for c in &i.comments {
        let _ = writeln!(out, "{sub}comment {c:?}");
    }
    for (n, h) in i.heredocs.iter().enumerate() {
        let fd = h.fd.map(|f| format!(" fd={f}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{sub}heredoc#{n} {} {:?}{fd}{}{} content={:?}",
            h.span,
            h.name,
            if h.chomp { " chomp" } else { "" },
            if h.expand { "" } else { " no-expand" },
            h.content
        );
    }
    if let InstructionKind::Onbuild(Some(inner)) = &i.kind {
        instruction(out, inner, &sub);
    }
}

fn mount(m: &Mount) -> String {
    let mut s = format!("mount type={}", m.kind.as_str());
    s += &opt("target", &m.target);
    s += &opt("source", &m.source);
    s += &opt("from", &m.from);
    s += &opt("id", &m.id);
    s += &format!(" ro={}", m.read_only);
    if let Some(sh) = m.sharing {
        s += match sh {
            Sharing::Shared => " sharing=shared",
            Sharing::Private => " sharing=private",
            Sharing::Locked => " sharing=locked",
        };
    }
    if let Some(v) = m.mode {
        s += &format!(" mode={v:#o}");
    }
    if let Some(v) = m.uid {
        s += &format!(" uid={v}");
    }
    if let Some(v) = m.gid {
        s += &format!(" gid={v}");
    }
    if m.required {
        s += " required";
    }
    if let Some(v) = m.size {
        s += &format!(" size={v}");
    }
    s += &opt("env", &m.env);
    if !m.unexpanded.is_empty() {
        s += &format!(" unexpanded={:?}", m.unexpanded);
    }
    s
}
