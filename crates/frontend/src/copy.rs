//! `COPY` and `ADD`: file ops (or a merge for `--link`).

use dockerfile::parser::{Add, Chmod as DfChmod, Copy as DfCopy, Instruction, Source as DfSource};
use graph::Op;
use graph::op::{Chmod, Copy, File, FileAction, Merge, Mkfile};
use oci::Digest;

use crate::error::FrontendError;
use crate::lowering::Lowering;
use crate::paths;
use crate::state::{StageState, upper_first_word};

/// What `COPY` and `ADD` have in common, after expansion.
struct Spec<'i> {
    ins: &'i Instruction,
    add: bool,
    from: Option<String>,
    sources: Vec<Src>,
    dest: String,
    chown: Option<String>,
    chmod: Option<String>,
    link: bool,
    parents: bool,
    unpack: Option<bool>,
    exclude: Vec<String>,
}

enum Src {
    Path(String),
    /// Heredoc name and (expanded) content.
    Inline(String, String),
}

impl Lowering<'_, '_> {
    pub fn copy(
        &mut self,
        i: usize,
        st: &mut StageState,
        ins: &Instruction,
        c: &DfCopy,
    ) -> Result<(), FrontendError> {
        let spec = Spec {
            ins,
            add: false,
            from: c.from.clone(),
            sources: self.sources(st, ins, &c.sources)?,
            dest: self.expand(&st.env, &c.dest, ins.span)?,
            chown: check_chown(self.opt_expand(st, c.chown.as_deref(), ins)?, ins)?,
            chmod: self.chmod_text(st, c.chmod.as_ref(), ins)?,
            link: c.link,
            parents: c.parents,
            unpack: None,
            exclude: c.exclude.clone(),
        };
        self.files(i, st, spec)
    }

    pub fn add_files(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        a: &Add,
    ) -> Result<(), FrontendError> {
        let sources = self.sources(st, ins, &a.sources)?;
        for s in &sources {
            if let Src::Path(p) = s
                && is_remote(p)
            {
                return Err(FrontendError::NotSupported {
                    feature: format!("ADD from a URL or git repository ({p})"),
                    span: ins.span,
                });
            }
        }
        if a.checksum.is_some() {
            return Err(FrontendError::InvalidSource {
                what: "ADD --checksum",
                reason: "checksum requires HTTP(S) or Git sources".to_owned(),
                span: ins.span,
            });
        }
        let spec = Spec {
            ins,
            add: true,
            from: None,
            sources,
            dest: self.expand(&st.env, &a.dest, ins.span)?,
            chown: check_chown(self.opt_expand(st, a.chown.as_deref(), ins)?, ins)?,
            chmod: self.chmod_text(st, a.chmod.as_ref(), ins)?,
            link: a.link,
            parents: false,
            unpack: a.unpack,
            exclude: a.exclude.clone(),
        };
        // ADD has no --from: the stage index is only used for --from.
        self.files(usize::MAX, st, spec)
    }

    fn opt_expand(
        &self,
        st: &StageState,
        v: Option<&str>,
        ins: &Instruction,
    ) -> Result<Option<String>, FrontendError> {
        v.map(|v| self.expand(&st.env, v, ins.span))
            .transpose()
            .map(|o| o.filter(|s| !s.is_empty()))
    }

    fn chmod_text(
        &self,
        st: &StageState,
        c: Option<&DfChmod>,
        ins: &Instruction,
    ) -> Result<Option<String>, FrontendError> {
        Ok(match c {
            None => None,
            Some(DfChmod::Octal(n)) => Some(format!("{n:o}")),
            Some(DfChmod::Symbolic(s)) => Some(s.clone()),
            Some(DfChmod::Unexpanded(s)) => self.opt_expand(st, Some(s), ins)?,
        })
    }

    fn sources(
        &self,
        st: &StageState,
        ins: &Instruction,
        sources: &[DfSource],
    ) -> Result<Vec<Src>, FrontendError> {
        let raw = self.cx.lexer.clone().with_skip_process_quotes(true);
        sources
            .iter()
            .map(|s| match s {
                DfSource::Path(p) => Ok(Src::Path(self.expand(&st.env, p, ins.span)?)),
                DfSource::Heredoc(n) => {
                    let h = &ins.heredocs[*n];
                    let mut data = h.chomped();
                    if h.expand {
                        data = raw
                            .process_word(&data, &st.env)
                            .map_err(|source| FrontendError::Expand {
                                word: data.clone(),
                                span: ins.span,
                                source: Box::new(source),
                            })?
                            .value;
                    }
                    Ok(Src::Inline(h.name.clone(), data))
                }
            })
            .collect()
    }

    fn files(
        &mut self,
        i: usize,
        st: &mut StageState,
        spec: Spec<'_>,
    ) -> Result<(), FrontendError> {
        let span = spec.ins.span;
        let chmod = spec
            .chmod
            .as_deref()
            .map(|c| parse_chmod(c, span))
            .transpose()?;
        let dest = paths::resolve_keep_slash(&st.dir, &spec.dest);
        let merge = spec.link && chmod.is_none();
        let mut inputs: Vec<Digest> = if merge {
            Vec::new()
        } else {
            vec![st.root.clone()]
        };
        let mut actions = Vec::new();
        let mut shown_sources = Vec::new();
        for src in &spec.sources {
            let (root, copy) =
                self.copy_source(i, &spec, src, &dest, chmod.as_ref(), &mut shown_sources)?;
            let idx = match inputs.iter().position(|d| *d == root) {
                Some(idx) => idx,
                None => {
                    inputs.push(root);
                    inputs.len() - 1
                }
            };
            actions.push(FileAction::Copy(Copy { src: idx, ..copy }));
        }
        let op = Op::File(File {
            base: (!merge).then_some(0),
            actions,
        });
        let shown = self.shown_platform(&st.platform);
        let text = upper_first_word(&self.display_text(st, spec.ins));
        let desc = st.describe(&text, shown.as_ref());
        let file = self.add(
            op,
            inputs,
            desc.clone(),
            Some(span),
            shown.as_ref(),
            st.ignore_cache,
        )?;
        st.root = if merge {
            let inputs = vec![st.root.clone(), file];
            let desc = desc.replacen("] ", "] LINK ", 1);
            self.add(
                Op::Merge(Merge {}),
                inputs,
                desc,
                Some(span),
                shown.as_ref(),
                st.ignore_cache,
            )?
        } else {
            file
        };
        st.commit(history(&spec, &shown_sources), true, true, self.cx.epoch);
        Ok(())
    }
}

impl Lowering<'_, '_> {
    /// The filesystem a source is copied from, and the copy action.
    fn copy_source(
        &mut self,
        i: usize,
        spec: &Spec<'_>,
        src: &Src,
        dest: &str,
        chmod: Option<&Chmod>,
        shown: &mut Vec<String>,
    ) -> Result<(Digest, Copy), FrontendError> {
        let span = spec.ins.span;
        let epoch = self.cx.epoch;
        match src {
            Src::Path(p) => {
                shown.push(p.clone());
                let root = match &spec.from {
                    Some(f) => self.source_root(f, i, span)?,
                    None => {
                        self.ctx_paths.insert(paths::resolve("/", p));
                        self.context()?
                    }
                };
                Ok((root, path_copy(spec, p, dest, chmod.cloned(), epoch)))
            }
            Src::Inline(name, data) => {
                shown.push(format!("<<{name}"));
                let op = Op::File(File {
                    base: None,
                    actions: vec![FileAction::Mkfile(Mkfile {
                        path: format!("/{name}"),
                        data: data.clone(),
                        mode: 0o644,
                        chown: None,
                        created: None,
                    })],
                });
                let desc = "preparing inline document".to_owned();
                let root = self.add(op, vec![], desc, Some(span), None, false)?;
                Ok((root, inline_copy(spec, name, dest, chmod.cloned(), epoch)))
            }
        }
    }
}

fn path_copy(
    spec: &Spec<'_>,
    src: &str,
    dest: &str,
    chmod: Option<Chmod>,
    epoch: Option<i64>,
) -> Copy {
    let (src_path, include) = if spec.parents {
        match src.split_once("/./") {
            Some((parent, pattern)) => (
                paths::resolve("/", parent),
                vec![
                    paths::resolve("/", pattern)
                        .trim_start_matches('/')
                        .to_owned(),
                ],
            ),
            None => (
                "/".to_owned(),
                vec![paths::resolve("/", src).trim_start_matches('/').to_owned()],
            ),
        }
    } else {
        (paths::resolve("/", src), Vec::new())
    };
    Copy {
        src: 0,
        src_path,
        dest: dest.to_owned(),
        chown: spec.chown.clone(),
        chmod,
        follow_symlinks: true,
        dir_contents_only: true,
        create_dest_path: true,
        allow_wildcard: true,
        allow_empty_wildcard: true,
        unpack: spec.unpack.unwrap_or(spec.add),
        parents: spec.parents,
        include,
        exclude: spec.exclude.clone(),
        created: epoch,
    }
}

fn inline_copy(
    spec: &Spec<'_>,
    name: &str,
    dest: &str,
    chmod: Option<Chmod>,
    epoch: Option<i64>,
) -> Copy {
    Copy {
        src: 0,
        src_path: format!("/{name}"),
        dest: dest.to_owned(),
        chown: spec.chown.clone(),
        chmod,
        follow_symlinks: false,
        dir_contents_only: false,
        create_dest_path: true,
        allow_wildcard: false,
        allow_empty_wildcard: false,
        unpack: false,
        parents: false,
        include: Vec::new(),
        exclude: spec.exclude.clone(),
        created: epoch,
    }
}

/// `COPY [--parents] [--chown=…] [--chmod=…] src… dest`.
fn history(spec: &Spec<'_>, sources: &[String]) -> String {
    let mut out = String::from(if spec.add { "ADD" } else { "COPY" });
    if spec.parents {
        out.push_str(" --parents");
    }
    if let Some(c) = &spec.chown {
        out.push_str(&format!(" --chown={c}"));
    }
    if let Some(c) = &spec.chmod {
        out.push_str(&format!(" --chmod={c}"));
    }
    for s in sources {
        out.push(' ');
        out.push_str(s);
    }
    out.push(' ');
    out.push_str(&spec.dest);
    out
}

/// `--chown=USER[:GROUP]` after expansion, refused while lowering when a part cannot
/// be an owner: more than one `:`, an id past 4294967294, or a name that starts with
/// `-` or holds whitespace, `/` or a control character. Names are looked up in the
/// image at build time; empty parts are left to that too.
fn check_chown(value: Option<String>, ins: &Instruction) -> Result<Option<String>, FrontendError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let part_ok = |p: &str| {
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            return p.parse::<u64>().is_ok_and(|n| n < u64::from(u32::MAX));
        }
        !p.starts_with('-')
            && !p
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    };
    let parts: Vec<&str> = v.split(':').collect();
    match parts.len() <= 2 && parts.iter().all(|p| part_ok(p)) {
        true => Ok(Some(v)),
        false => Err(FrontendError::InvalidChown {
            value: v,
            span: ins.span,
        }),
    }
}

/// An octal mode up to `07777`, or a symbolic mode (`u+x`, `go=rX`).
fn parse_chmod(value: &str, span: dockerfile::parser::Span) -> Result<Chmod, FrontendError> {
    let invalid = || FrontendError::InvalidChmod {
        value: value.to_owned(),
        span,
    };
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return match u32::from_str_radix(value, 8) {
            Ok(n) if n <= 0o7777 => Ok(Chmod::Octal(n)),
            _ => Err(invalid()),
        };
    }
    let clause_ok = |c: &str| {
        let ops = c.trim_start_matches(['u', 'g', 'o', 'a']);
        !ops.is_empty()
            && ops.starts_with(['+', '-', '='])
            && ops.chars().all(|ch| "+-=rwxXstugo".contains(ch))
    };
    if value.split(',').all(clause_ok) {
        Ok(Chmod::Symbolic(value.to_owned()))
    } else {
        Err(invalid())
    }
}

/// A URL or a git repository (BuildKit fetches these; manifold does not yet).
fn is_remote(src: &str) -> bool {
    src.starts_with("http://")
        || src.starts_with("https://")
        || src.starts_with("git@")
        || src.starts_with("git://")
        || src.starts_with("ssh://")
}
