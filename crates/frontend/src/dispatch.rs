//! Starting a stage, and the instructions that only change the image config
//! or the stage's state (everything but `RUN`, `COPY` and `ADD`).

use std::collections::BTreeMap;
use std::time::Duration;

use dockerfile::parser::{
    ArgDecl, CommandLine, Healthcheck, HealthcheckCmd, Instruction, InstructionKind, KeyValue, Span,
};
use graph::Op;
use graph::op::{File, FileAction, Mkdir};
use oci::document::Healthcheck as ConfigHealthcheck;

use crate::error::FrontendError;
use crate::golang;
use crate::lowering::{Lowering, normalize_workdir};
use crate::paths;
use crate::state::{DEFAULT_PATH, EnvList, StageState, progress, upper_first_word};

/// Linux signal names `STOPSIGNAL` accepts (without `SIG`).
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

impl Lowering<'_, '_> {
    pub fn expand(&self, env: &EnvList, word: &str, span: Span) -> Result<String, FrontendError> {
        self.cx
            .lexer
            .process_word(word, env)
            .map(|e| e.value)
            .map_err(|source| FrontendError::Expand {
                word: word.to_owned(),
                span,
                source: Box::new(source),
            })
    }

    /// The state a stage starts from: its base stage, named context or image.
    pub fn init_stage(&mut self, i: usize) -> Result<StageState, FrontendError> {
        let decl = self.decls[i].clone();
        let span = decl.stage.from.span;
        let name = decl.display(i);
        let from_image = decl.base_stage.is_none() && decl.base != "scratch";
        let steps = usize::from(from_image)
            + decl
                .stage
                .instructions
                .iter()
                .filter(|ins| {
                    matches!(
                        ins.kind,
                        InstructionKind::Run(_)
                            | InstructionKind::Copy(_)
                            | InstructionKind::Add(_)
                            | InstructionKind::Workdir(_)
                    )
                })
                .count();
        let ignore_cache = self.cx.opts.is_no_cache(decl.name.as_deref());
        let mut st = if let Some(b) = decl.base_stage {
            let mut st = self.done[b]
                .clone()
                .expect("invariant: a base stage is lowered before the stages built on it");
            st.args.clear();
            st.cmd_set = false;
            st
        } else {
            let platform = decl.platform.clone().unwrap_or_else(|| self.target.clone());
            let shown = self.shown_platform(&platform);
            let base = self.image(&decl.base, &platform, span, |p| {
                progress(&name, 1, steps, shown.as_ref(), &format!("FROM {p}"))
            })?;
            StageState::from_base(String::new(), base)
        };
        st.name = name;
        st.ignore_cache = ignore_cache;
        st.step = usize::from(from_image);
        st.steps = steps;
        self.inherit_config(&mut st, span)?;
        Ok(st)
    }

    /// Take `ENV`, `WORKDIR` and `USER` from the base's config.
    fn inherit_config(&self, st: &mut StageState, span: Span) -> Result<(), FrontendError> {
        if st.platform.os == "windows" {
            return Err(FrontendError::NotSupported {
                feature: "building for windows".to_owned(),
                span,
            });
        }
        // The base's ONBUILD triggers run in this stage and are not inherited.
        st.triggers = st.config().on_build.take().unwrap_or_default();
        let config = st.config().clone();
        let env = config.env.clone().unwrap_or_default();
        if !env.iter().any(|e| e.split('=').next() == Some("PATH")) {
            st.set_config_env("PATH", DEFAULT_PATH);
        }
        for e in st.config().env.clone().unwrap_or_default() {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            st.env.set(k, v);
        }
        if let Some(wd) = config.working_dir.filter(|w| !w.is_empty()) {
            st.dir = normalize_workdir("/", &wd);
            st.config().working_dir = Some(st.dir.clone());
        }
        if let Some(user) = config.user.filter(|u| !u.is_empty()) {
            st.user = user;
        }
        Ok(())
    }

    /// One instruction of stage `i`.
    pub fn dispatch(
        &mut self,
        i: usize,
        st: &mut StageState,
        ins: &Instruction,
    ) -> Result<(), FrontendError> {
        let span = ins.span;
        let epoch = self.cx.epoch;
        match &ins.kind {
            InstructionKind::Arg(decls) => self.arg(st, decls, span)?,
            InstructionKind::Env(kvs) => {
                let kvs = self.expand_pairs(st, kvs, span)?;
                for (k, v) in &kvs {
                    st.env.set(k, v);
                    st.set_config_env(k, v);
                }
                st.commit(format!("ENV {}", join_pairs(&kvs)), false, false, epoch);
            }
            InstructionKind::Label(kvs) => {
                let kvs = self.expand_pairs(st, kvs, span)?;
                let labels = st.config().labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in &kvs {
                    labels.insert(k.clone(), v.clone());
                }
                st.commit(format!("LABEL {}", join_pairs(&kvs)), false, false, epoch);
            }
            InstructionKind::Workdir(w) => self.workdir(st, ins, w)?,
            InstructionKind::User(u) => {
                let user = self.expand(&st.env, u, span)?;
                st.user.clone_from(&user);
                st.config().user = Some(user.clone());
                st.commit(format!("USER {user}"), false, false, epoch);
            }
            InstructionKind::Expose(ports) => self.expose(st, ports, span)?,
            InstructionKind::Run(run) => self.run_instruction(i, st, ins, run)?,
            InstructionKind::Copy(c) => self.copy(i, st, ins, c)?,
            InstructionKind::Add(a) => self.add_files(st, ins, a)?,
            _ => self.config_instruction(st, ins)?,
        }
        Ok(())
    }

    /// Instructions that only change the image config.
    fn config_instruction(
        &self,
        st: &mut StageState,
        ins: &Instruction,
    ) -> Result<(), FrontendError> {
        let span = ins.span;
        let epoch = self.cx.epoch;
        match &ins.kind {
            InstructionKind::Volume(words) => {
                let mut vols = Vec::new();
                for w in &words.words {
                    let v = self.expand(&st.env, w, span)?;
                    if v.is_empty() {
                        return Err(FrontendError::EmptyVolume { span });
                    }
                    vols.push(v);
                }
                let map = st.config().volumes.get_or_insert_with(BTreeMap::new);
                for v in &vols {
                    map.insert(v.clone(), serde_json::json!({}));
                }
                st.commit(
                    format!("VOLUME {}", golang::plain_list(&vols)),
                    false,
                    false,
                    epoch,
                );
            }
            InstructionKind::StopSignal(s) => {
                let signal = self.expand(&st.env, s, span)?;
                if !valid_signal(&signal) {
                    return Err(FrontendError::InvalidSignal { signal, span });
                }
                st.config().stop_signal = Some(signal.clone());
                st.commit(format!("STOPSIGNAL {signal}"), false, false, epoch);
            }
            InstructionKind::Shell(shell) => {
                st.config().shell = Some(shell.clone());
                st.commit(
                    format!("SHELL {}", golang::plain_list(shell)),
                    false,
                    false,
                    epoch,
                );
            }
            InstructionKind::Cmd(cmd) => {
                let args = with_shell(st, cmd);
                st.config().cmd = Some(args.clone());
                st.config().args_escaped = Some(true);
                st.cmd_set = true;
                st.commit(
                    format!("CMD {}", golang::quoted_list(&args)),
                    false,
                    false,
                    epoch,
                );
            }
            InstructionKind::Entrypoint(cmd) => {
                let args = with_shell(st, cmd);
                st.config().entrypoint = Some(args.clone());
                if !st.cmd_set {
                    st.config().cmd = None;
                }
                let msg = format!("ENTRYPOINT {}", golang::quoted_list(&args));
                st.commit(msg, false, false, epoch);
            }
            InstructionKind::Healthcheck(h) => {
                let (hc, msg) = healthcheck(h);
                st.config().healthcheck = Some(hc);
                st.commit(format!("HEALTHCHECK {msg}"), false, false, epoch);
            }
            InstructionKind::Onbuild(Some(inner)) => {
                st.config()
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(inner.original.clone());
            }
            InstructionKind::Maintainer(m) => {
                st.image.author = Some(m.clone());
                st.commit(format!("MAINTAINER {m}"), false, false, epoch);
            }
            other => {
                return Err(FrontendError::NotSupported {
                    feature: format!("the {} instruction here", other.name()),
                    span,
                });
            }
        }
        Ok(())
    }

    fn expand_pairs(
        &self,
        st: &StageState,
        kvs: &[KeyValue],
        span: Span,
    ) -> Result<Vec<(String, String)>, FrontendError> {
        // Every pair sees the variables from before the instruction.
        kvs.iter()
            .map(|kv| {
                Ok((
                    self.expand(&st.env, &kv.key, span)?,
                    self.expand(&st.env, &kv.value, span)?,
                ))
            })
            .collect()
    }

    /// `ARG` in a stage: a build argument wins, else the default (expanded
    /// with what came before, this line's earlier names included), else the
    /// global value of that name.
    fn arg(&self, st: &mut StageState, decls: &[ArgDecl], span: Span) -> Result<(), FrontendError> {
        let mut shown = Vec::new();
        for d in decls {
            let value = if let Some(v) = self.cx.build_args.get(&d.name) {
                Some(v.clone())
            } else if let Some(default) = &d.default {
                Some(self.expand(&st.env, default, span)?)
            } else {
                self.globals.get(&d.name).map(str::to_owned)
            };
            if let Some(v) = &value {
                st.env.set(&d.name, v);
                shown.push(format!("{}={v}", d.name));
            } else {
                shown.push(d.name.clone());
            }
            st.args.push((d.name.clone(), value));
        }
        st.commit(
            format!("ARG {}", shown.join(" ")),
            false,
            false,
            self.cx.epoch,
        );
        Ok(())
    }

    fn workdir(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        w: &str,
    ) -> Result<(), FrontendError> {
        let path = self.expand(&st.env, w, ins.span)?;
        let wd = normalize_workdir(&st.dir, &path);
        st.dir.clone_from(&wd);
        st.config().working_dir = Some(wd.clone());
        let layer = wd != "/";
        if layer {
            let op = Op::File(File {
                base: Some(0),
                actions: vec![FileAction::Mkdir(Mkdir {
                    path: wd.clone(),
                    mode: 0o755,
                    make_parents: true,
                    chown: (!st.user.is_empty()).then(|| st.user.clone()),
                    created: self.cx.epoch,
                })],
            });
            let shown = self.shown_platform(&st.platform);
            let text = upper_first_word(&self.display_text(st, ins));
            let desc = st.describe(&text, shown.as_ref());
            st.root = self.add(
                op,
                vec![st.root.clone()],
                desc,
                Some(ins.span),
                shown.as_ref(),
                st.ignore_cache,
            )?;
        }
        st.commit(format!("WORKDIR {wd}"), layer, false, self.cx.epoch);
        Ok(())
    }

    /// The instruction as shown in progress: variables expanded where set.
    pub fn display_text(&self, st: &StageState, ins: &Instruction) -> String {
        let lexer = self
            .cx
            .lexer
            .clone()
            .with_raw_quotes(true)
            .with_skip_unset_env(true);
        lexer
            .process_word(&ins.original, &st.env)
            .map_or_else(|_| ins.original.clone(), |e| e.value)
    }

    fn expose(
        &self,
        st: &mut StageState,
        ports: &[String],
        span: Span,
    ) -> Result<(), FrontendError> {
        let mut specs = Vec::new();
        for p in ports {
            let words = self.cx.lexer.process_words(p, &st.env).map_err(|source| {
                FrontendError::Expand {
                    word: p.clone(),
                    span,
                    source: Box::new(source),
                }
            })?;
            for w in words {
                specs.extend(parse_port(&w).ok_or(FrontendError::InvalidPort { port: w, span })?);
            }
        }
        let map = st.config().exposed_ports.get_or_insert_with(BTreeMap::new);
        for s in &specs {
            map.insert(s.clone(), serde_json::json!({}));
        }
        st.commit(
            format!("EXPOSE {}", golang::plain_list(&specs)),
            false,
            false,
            self.cx.epoch,
        );
        Ok(())
    }
}

fn join_pairs(kvs: &[(String, String)]) -> String {
    kvs.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Shell form wrapped with the stage's `SHELL` (default `/bin/sh -c`).
pub(crate) fn with_shell(st: &StageState, cmd: &CommandLine) -> Vec<String> {
    match cmd {
        CommandLine::Exec(args) => args.clone(),
        CommandLine::Shell(s) => {
            let mut shell = st
                .image
                .config
                .as_ref()
                .and_then(|c| c.shell.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".to_owned(), "-c".to_owned()]);
            shell.push(s.clone());
            shell
        }
    }
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return n > 0;
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.contains(&name)
        || name
            .strip_prefix("RTMIN")
            .or_else(|| name.strip_prefix("RTMAX"))
            .is_some_and(|r| {
                r.is_empty() || r.trim_start_matches(['+', '-']).parse::<u32>().is_ok()
            })
}

/// `[ip:][host:]port[-end][/proto]` → `port/proto` for each port.
fn parse_port(spec: &str) -> Option<Vec<String>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let port = rest.rsplit(':').next()?;
    let (lo, hi) = match port.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?),
        None => {
            let p = port.parse::<u16>().ok()?;
            (p, p)
        }
    };
    (lo <= hi).then(|| (lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn nanos(d: Option<Duration>) -> Option<i64> {
    d.filter(|d| !d.is_zero())
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The config's healthcheck and BuildKit's `%+v` rendering of it.
fn healthcheck(h: &Healthcheck) -> (ConfigHealthcheck, String) {
    let empty = HealthcheckCmd {
        command: CommandLine::Exec(Vec::new()),
        interval: None,
        timeout: None,
        start_period: None,
        start_interval: None,
        retries: None,
    };
    let (test, c) = match h {
        Healthcheck::None => (vec!["NONE".to_owned()], &empty),
        Healthcheck::Cmd(c) => {
            let test = match &c.command {
                CommandLine::Shell(s) => vec!["CMD-SHELL".to_owned(), s.clone()],
                CommandLine::Exec(a) => std::iter::once("CMD".to_owned())
                    .chain(a.iter().cloned())
                    .collect(),
            };
            (test, c)
        }
    };
    let d = |d: Option<Duration>| golang::duration(d.unwrap_or_default());
    let msg = format!(
        "{{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        golang::plain_list(&test),
        d(c.interval),
        d(c.timeout),
        d(c.start_period),
        d(c.start_interval),
        c.retries.unwrap_or(0)
    );
    let hc = ConfigHealthcheck {
        test: Some(test),
        interval: nanos(c.interval),
        timeout: nanos(c.timeout),
        start_period: nanos(c.start_period),
        start_interval: nanos(c.start_interval),
        retries: c.retries.filter(|r| *r != 0).map(i64::from),
    };
    (hc, msg)
}

/// `path.Base` for secret ids.
pub(crate) fn base_name(p: &str) -> String {
    paths::base(p)
}
