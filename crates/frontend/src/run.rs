//! `RUN`: the process, its environment and its mounts.

use dockerfile::parser::{
    CommandLine, Instruction, Mount as DfMount, MountType, NetworkMode, Run, SecurityMode, Sharing,
    Span,
};
use graph::Op;
use graph::op::{
    CacheSharing, Exec, File, FileAction, Mkdir, Mkfile, Mount, MountKind, Network, SecretEnv,
    Security,
};
use oci::Digest;

use crate::dispatch::{base_name, with_shell};
use crate::error::FrontendError;
use crate::lowering::Lowering;
use crate::paths;
use crate::state::{StageState, upper_first_word};

/// The mounts of one `RUN` being built: inputs in order, mounts.
struct Mounts {
    inputs: Vec<Digest>,
    mounts: Vec<Mount>,
    secret_env: Vec<SecretEnv>,
}

impl Mounts {
    fn input(&mut self, d: Digest) -> usize {
        if let Some(i) = self.inputs.iter().position(|x| *x == d) {
            return i;
        }
        self.inputs.push(d);
        self.inputs.len() - 1
    }
}

impl Lowering<'_, '_> {
    pub fn run_instruction(
        &mut self,
        i: usize,
        st: &mut StageState,
        ins: &Instruction,
        run: &Run,
    ) -> Result<(), FrontendError> {
        let mut m = Mounts {
            inputs: vec![st.root.clone()],
            mounts: vec![Mount {
                input: Some(0),
                dest: "/".to_owned(),
                selector: "/".to_owned(),
                readonly: false,
                kind: MountKind::Bind,
            }],
            secret_env: Vec::new(),
        };
        let args = self.run_args(st, ins, &run.command, &mut m)?;
        for mount in &run.mounts {
            self.mount(i, st, mount, ins.span, &mut m)?;
        }
        let history = run_history(st, &args);
        let exec = Exec {
            args,
            env: st.env.vars(),
            cwd: st.dir.clone(),
            user: st.user.clone(),
            hostname: None,
            network: match run.network {
                None => self.cx.opts.network,
                Some(NetworkMode::Default) => Network::Default,
                Some(NetworkMode::None) => Network::None,
                Some(NetworkMode::Host) => Network::Host,
            },
            security: match run.security {
                Some(SecurityMode::Insecure) => Security::Insecure,
                _ => Security::Sandbox,
            },
            proxy_env: self.cx.proxy.clone(),
            secret_env: m.secret_env,
            platform: st.platform.clone(),
            mounts: m.mounts,
            extra_hosts: self.cx.opts.extra_hosts.clone(),
            ulimits: self.cx.opts.ulimits.clone(),
            shm_size: self.cx.opts.shm_size,
        };
        let shown = self.shown_platform(&st.platform);
        let text = upper_first_word(&self.display_text(st, ins));
        let desc = st.describe(&text, shown.as_ref());
        st.root = self.add(
            Op::Exec(exec),
            m.inputs,
            desc,
            Some(ins.span),
            shown.as_ref(),
            st.ignore_cache,
        )?;
        st.commit(format!("RUN {history}"), true, true, self.cx.epoch);
        Ok(())
    }

    /// The process arguments; a heredoc becomes the shell's script, or a
    /// file run from `/dev/pipes/` when it starts with `#!`.
    fn run_args(
        &mut self,
        st: &StageState,
        ins: &Instruction,
        cmd: &CommandLine,
        m: &mut Mounts,
    ) -> Result<Vec<String>, FrontendError> {
        let CommandLine::Shell(line) = cmd else {
            return Ok(with_shell(st, cmd));
        };
        if ins.heredocs.is_empty() {
            return Ok(with_shell(st, cmd));
        }
        let only_marker =
            ins.heredocs.len() == 1 && line.trim().starts_with("<<") && !line.trim().contains(' ');
        if !only_marker {
            let mut script = line.clone();
            for h in &ins.heredocs {
                script.push('\n');
                script.push_str(&h.chomped());
                script.push_str(&h.name);
            }
            return Ok(with_shell(st, &CommandLine::Shell(script)));
        }
        let doc = &ins.heredocs[0];
        let data = doc.chomped();
        if !data.starts_with("#!") {
            return Ok(with_shell(st, &CommandLine::Shell(data)));
        }
        let op = Op::File(File {
            base: None,
            actions: vec![FileAction::Mkfile(Mkfile {
                path: format!("/{}", doc.name),
                data,
                mode: 0o755,
                chown: None,
                created: None,
            })],
        });
        let file = self.add(
            op,
            vec![],
            "preparing inline document".to_owned(),
            Some(ins.span),
            None,
            false,
        )?;
        let input = m.input(file);
        m.mounts.push(Mount {
            input: Some(input),
            dest: "/dev/pipes/".to_owned(),
            selector: "/".to_owned(),
            readonly: true,
            kind: MountKind::Bind,
        });
        Ok(with_shell(
            st,
            &CommandLine::Shell(format!("/dev/pipes/{}", doc.name)),
        ))
    }

    fn mount(
        &mut self,
        i: usize,
        st: &StageState,
        raw: &DfMount,
        span: Span,
        m: &mut Mounts,
    ) -> Result<(), FrontendError> {
        let mount = self.expand_mount(st, raw, span)?;
        let invalid = |reason: &str| FrontendError::InvalidMount {
            value: raw.raw.clone(),
            reason: reason.to_owned(),
            span,
        };
        match mount.kind {
            MountType::Ssh => {
                return Err(FrontendError::NotSupported {
                    feature: "RUN --mount=type=ssh".to_owned(),
                    span,
                });
            }
            MountType::Secret => return self.secret(st, &mount, span, m),
            _ => {}
        }
        let target = mount
            .target
            .clone()
            .ok_or_else(|| invalid("a target is required"))?;
        let dest = paths::resolve(&st.dir, &target);
        if dest == "/" {
            return Err(invalid("the target cannot be /"));
        }
        let source = paths::resolve("/", mount.source.as_deref().unwrap_or(""));
        let (input, kind) = match mount.kind {
            MountType::Tmpfs => (None, MountKind::Tmpfs { size: mount.size }),
            MountType::Cache => {
                let input = match &mount.from {
                    Some(f) => Some(self.source_root(f, i, span)?),
                    None => None,
                };
                let id = mount.id.clone().unwrap_or_else(|| paths::clean(&target));
                let sharing = match mount.sharing {
                    None | Some(Sharing::Shared) => CacheSharing::Shared,
                    Some(Sharing::Private) => CacheSharing::Private,
                    Some(Sharing::Locked) => CacheSharing::Locked,
                };
                (input, MountKind::Cache { id, sharing })
            }
            _ => {
                let input = match &mount.from {
                    Some(f) => self.source_root(f, i, span)?,
                    None => {
                        self.ctx_paths.insert(source.clone());
                        self.context()?
                    }
                };
                (Some(input), MountKind::Bind)
            }
        };
        let (input, selector) = self.seed_cache(&mount, input, source, span)?;
        let input = input.map(|d| m.input(d));
        m.mounts.push(Mount {
            input,
            dest,
            selector,
            readonly: mount.read_only,
            kind,
        });
        Ok(())
    }

    /// A cache mount with an owner or mode but no source starts from a
    /// directory made with them, as BuildKit does.
    fn seed_cache(
        &mut self,
        mount: &DfMount,
        input: Option<Digest>,
        selector: String,
        span: Span,
    ) -> Result<(Option<Digest>, String), FrontendError> {
        let owned = mount.uid.is_some() || mount.gid.is_some() || mount.mode.is_some();
        if mount.kind != MountType::Cache || selector != "/" || !owned {
            return Ok((input, selector));
        }
        let op = Op::File(File {
            base: input.as_ref().map(|_| 0),
            actions: vec![FileAction::Mkdir(Mkdir {
                path: "/cache".to_owned(),
                mode: mount.mode.unwrap_or(0o755),
                make_parents: false,
                chown: Some(format!(
                    "{}:{}",
                    mount.uid.unwrap_or(0),
                    mount.gid.unwrap_or(0)
                )),
                created: None,
            })],
        });
        let desc = "[internal] setting cache mount permissions".to_owned();
        let seeded = self.add(
            op,
            input.into_iter().collect(),
            desc,
            Some(span),
            None,
            false,
        )?;
        Ok((Some(seeded), "/cache".to_owned()))
    }

    fn secret(
        &mut self,
        st: &StageState,
        mount: &DfMount,
        span: Span,
        m: &mut Mounts,
    ) -> Result<(), FrontendError> {
        let id = match (&mount.source, &mount.id, &mount.target) {
            (Some(s), _, _) => s.clone(),
            (None, Some(id), _) => id.clone(),
            (None, None, Some(t)) => base_name(t),
            (None, None, None) => {
                return Err(FrontendError::InvalidMount {
                    value: mount.raw.clone(),
                    reason: "one of source, target or id is required".to_owned(),
                    span,
                });
            }
        };
        if let Some(name) = &mount.env {
            m.secret_env.push(SecretEnv {
                id: id.clone(),
                name: name.clone(),
                required: mount.required,
            });
        }
        let dest = match (&mount.target, &mount.env) {
            (Some(t), _) => Some(paths::resolve(&st.dir, t)),
            (None, None) => Some(format!("/run/secrets/{}", base_name(&id))),
            (None, Some(_)) => None,
        };
        if let Some(dest) = dest {
            m.mounts.push(Mount {
                input: None,
                dest,
                selector: "/".to_owned(),
                readonly: true,
                kind: MountKind::Secret {
                    id,
                    required: mount.required,
                    uid: mount.uid.unwrap_or(0),
                    gid: mount.gid.unwrap_or(0),
                    mode: mount.mode.unwrap_or(0o400),
                },
            });
        }
        Ok(())
    }

    /// Expand the `--mount` values that held variables and decode them.
    fn expand_mount(
        &self,
        st: &StageState,
        raw: &DfMount,
        span: Span,
    ) -> Result<DfMount, FrontendError> {
        let mut m = raw.clone();
        for (key, value) in std::mem::take(&mut m.unexpanded) {
            let v = self.expand(&st.env, &value, span)?;
            let bad = |what: &str| FrontendError::InvalidMount {
                value: raw.raw.clone(),
                reason: format!("{key}={v:?} is not {what}"),
                span,
            };
            match key.as_str() {
                "type" => {
                    m.kind = match v.to_ascii_lowercase().as_str() {
                        "bind" => MountType::Bind,
                        "cache" => MountType::Cache,
                        "tmpfs" => MountType::Tmpfs,
                        "secret" => MountType::Secret,
                        "ssh" => MountType::Ssh,
                        _ => return Err(bad("a mount type")),
                    };
                    m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
                }
                "source" | "src" => m.source = Some(v),
                "target" | "dst" | "destination" => m.target = Some(v),
                "id" => m.id = Some(v),
                "env" => m.env = Some(v),
                "mode" => {
                    m.mode = Some(u32::from_str_radix(&v, 8).map_err(|_| bad("an octal mode"))?)
                }
                "uid" => m.uid = Some(v.parse().map_err(|_| bad("a number"))?),
                "gid" => m.gid = Some(v.parse().map_err(|_| bad("a number"))?),
                _ => {
                    return Err(FrontendError::NotSupported {
                        feature: format!("variables in --mount {key}"),
                        span,
                    });
                }
            }
        }
        Ok(m)
    }
}

/// BuildKit's `runCommandString`: `|N NAME=value … args…` with the stage's
/// ARGs (their current values), then the arguments.
fn run_history(st: &StageState, args: &[String]) -> String {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (name, value) in &st.args {
        let v = st
            .env
            .get(name)
            .map(str::to_owned)
            .unwrap_or_else(|| value.clone().unwrap_or_default());
        match seen.iter_mut().find(|(k, _)| k == name) {
            Some(e) => e.1 = v,
            None => seen.push((name.clone(), v)),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    if !seen.is_empty() {
        parts.push(format!("|{}", seen.len()));
        parts.extend(seen.iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}
