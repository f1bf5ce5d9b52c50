//! One lowering pass for one target platform.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use dockerfile::Lexer;
use dockerfile::parser::{Dockerfile, Instruction, InstructionKind, Span};
use graph::op::{EnvVar, ResolveMode, Source};
use graph::{Graph, ImageResolver, Location, Metadata, Op, ResolvedImage};
use oci::{Digest, ImageConfig, Platform, Reference};

use crate::args;
use crate::error::FrontendError;
use crate::options::{BuildOptions, NamedContext};
use crate::paths;
use crate::stages::{self, StageDecl};
use crate::state::{Base, DEFAULT_PATH, EnvList, StageState};

/// What all platforms share.
pub(crate) struct Ctx<'a> {
    pub df: &'a Dockerfile,
    pub opts: &'a BuildOptions,
    resolver: &'a dyn ImageResolver,
    cache: RefCell<HashMap<(String, Platform), ResolvedImage>>,
    pub lexer: Lexer,
    pub build_platform: Platform,
    pub multi: bool,
    pub build_args: BTreeMap<String, String>,
    pub proxy: Vec<EnvVar>,
    pub epoch: Option<i64>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        df: &'a Dockerfile,
        opts: &'a BuildOptions,
        resolver: &'a dyn ImageResolver,
    ) -> Result<Self, FrontendError> {
        let build_args: BTreeMap<String, String> = opts
            .build_args
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        let epoch = args::epoch(opts.source_date_epoch, &build_args)?;
        let mut build_args = build_args;
        if let Some(e) = epoch {
            build_args.insert("SOURCE_DATE_EPOCH".to_owned(), e.to_string());
        }
        Ok(Ctx {
            df,
            opts,
            resolver,
            cache: RefCell::default(),
            lexer: Lexer::new(df.directives.escape),
            build_platform: opts
                .build_platform
                .as_ref()
                .map_or_else(Platform::host, Platform::normalize),
            multi: opts.platforms.len() > 1,
            proxy: args::proxy_env(&build_args),
            build_args,
            epoch,
        })
    }

    pub fn target_platforms(&self) -> Vec<Platform> {
        if self.opts.platforms.is_empty() {
            vec![Platform::host()]
        } else {
            self.opts
                .platforms
                .iter()
                .map(Platform::normalize)
                .collect()
        }
    }

    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
        span: Span,
    ) -> Result<ResolvedImage, FrontendError> {
        let key = (reference.to_owned(), platform.clone());
        if let Some(r) = self.cache.borrow().get(&key) {
            return Ok(r.clone());
        }
        let r = self
            .resolver
            .resolve(reference, platform)
            .map_err(|source| FrontendError::Resolve {
                reference: reference.to_owned(),
                platform: Box::new(platform.clone()),
                span,
                source,
            })?;
        self.cache.borrow_mut().insert(key, r.clone());
        Ok(r)
    }

    /// The image `reference` (normalised) as lowering resolved it for `platform`;
    /// `None` when lowering did not ask for it. Never a new lookup.
    pub fn resolved(&self, reference: &str, platform: &Platform) -> Option<ResolvedImage> {
        let want = platform.normalize();
        self.cache
            .borrow()
            .iter()
            .find(|((r, p), _)| r == reference && p.normalize() == want)
            .map(|(_, image)| image.clone())
    }
}

/// The result of one pass.
/// The argument that asks for the SBOM of a stage other than the target.
const SBOM_SCAN_STAGE: &str = "BUILDKIT_SBOM_SCAN_STAGE";

pub(crate) struct Done {
    pub root: Digest,
    pub config: ImageConfig,
    pub ctx_paths: BTreeSet<String>,
    /// The stages other than the target that ask for an SBOM of their own
    /// (`BUILDKIT_SBOM_SCAN_STAGE`), by name, with their roots.
    pub sbom_stages: Vec<(String, Digest)>,
}

pub(crate) struct Lowering<'a, 'g> {
    pub cx: &'a Ctx<'a>,
    pub graph: &'g mut Graph,
    pub target: Platform,
    pub globals: EnvList,
    pub decls: Vec<StageDecl<'a>>,
    pub done: Vec<Option<StageState>>,
    pub ctx_paths: BTreeSet<String>,
    follow_paths: Vec<String>,
    context: Option<Digest>,
}

/// BuildKit's `normalizeContextPaths`: relative, sorted; `/` means all.
pub(crate) fn follow_paths(paths: &BTreeSet<String>) -> Vec<String> {
    if paths.contains("/") {
        return Vec::new();
    }
    paths
        .iter()
        .map(|p| p.trim_start_matches('/').to_owned())
        .collect()
}

pub(crate) fn location(span: Span) -> Location {
    Location {
        start_line: span.start.line,
        start_column: span.start.column,
        end_line: span.end.line,
        end_column: span.end.column,
    }
}

impl<'a, 'g> Lowering<'a, 'g> {
    pub fn new(
        cx: &'a Ctx<'a>,
        graph: &'g mut Graph,
        target: Platform,
        follow_paths: Vec<String>,
    ) -> Result<Self, FrontendError> {
        let stage_names: Vec<_> = cx.df.stages();
        let last = stage_names
            .last()
            .and_then(|s| match &s.from.kind {
                dockerfile::parser::InstructionKind::From(f) => f.name.clone(),
                _ => None,
            })
            .unwrap_or_default();
        let target_stage = cx.opts.target.clone().unwrap_or(last);
        let target_stage = if target_stage.is_empty() {
            "default".to_owned()
        } else {
            target_stage
        };
        let mut globals =
            args::platform_args(&cx.build_platform, &target, &target_stage, &cx.build_args);
        args::global_args(cx.df.preamble(), &cx.lexer, &cx.build_args, &mut globals)?;
        let decls = stages::declare(cx.df, &cx.lexer, &globals)?;
        Ok(Lowering {
            cx,
            graph,
            target,
            globals,
            done: vec![None; decls.len()],
            decls,
            ctx_paths: BTreeSet::new(),
            follow_paths,
            context: None,
        })
    }

    pub fn run(mut self) -> Result<Done, FrontendError> {
        let target = stages::target(&self.decls, self.cx.opts.target.as_deref())?;
        let needed = stages::reachable(&self.decls, target);
        for i in 0..self.decls.len() {
            if needed.contains(&i) {
                self.lower_stage(i)?;
            }
        }
        // `BUILDKIT_SBOM_SCAN_STAGE=true`: declared in a stage, it asks for that
        // stage's SBOM; given as a build argument, for every stage the build makes.
        let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "1" | "true");
        let all = self.cx.opts.build_arg(SBOM_SCAN_STAGE).is_some_and(truthy);
        let sbom_stages = (0..self.decls.len())
            .filter(|i| *i != target && needed.contains(i))
            .filter_map(|i| self.done[i].as_ref())
            .filter(|st| {
                all || st
                    .args
                    .iter()
                    .any(|(k, v)| k == SBOM_SCAN_STAGE && v.as_deref().is_some_and(truthy))
            })
            .map(|st| (st.name.clone(), st.root.clone()))
            .collect();
        let mut st = self.done[target]
            .take()
            .expect("invariant: the target stage was lowered");
        let labels = &self.cx.opts.labels;
        if !labels.is_empty() {
            let l = st.config().labels.get_or_insert_with(BTreeMap::new);
            l.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        st.image.os.clone_from(&self.target.os);
        st.image.architecture.clone_from(&self.target.architecture);
        st.image.variant.clone_from(&self.target.variant);
        Ok(Done {
            root: st.root,
            config: st.image,
            ctx_paths: self.ctx_paths,
            sbom_stages,
        })
    }

    /// Progress platform prefix when several platforms are built.
    pub fn shown_platform(&self, p: &Platform) -> Option<Platform> {
        self.cx.multi.then(|| p.clone())
    }

    pub fn add(
        &mut self,
        op: Op,
        inputs: Vec<Digest>,
        description: String,
        span: Option<Span>,
        platform: Option<&Platform>,
        ignore_cache: bool,
    ) -> Result<Digest, FrontendError> {
        let metadata = Metadata {
            description,
            location: span.map(location),
            platform: platform.cloned(),
            ignore_cache,
        };
        Ok(self.graph.add_op(op, inputs, metadata)?)
    }

    /// The build context source, created on first use.
    pub fn context(&mut self) -> Result<Digest, FrontendError> {
        if let Some(d) = &self.context {
            return Ok(d.clone());
        }
        let op = Op::Source(Source::Local {
            name: "context".to_owned(),
            include: Vec::new(),
            exclude: self.cx.opts.context_excludes.clone(),
            follow_paths: self.follow_paths.clone(),
        });
        let d = self.add(
            op,
            vec![],
            "[internal] load build context".to_owned(),
            None,
            None,
            false,
        )?;
        self.context = Some(d.clone());
        Ok(d)
    }

    pub fn scratch(&mut self) -> Result<Digest, FrontendError> {
        self.add(
            Op::Source(Source::Scratch),
            vec![],
            "scratch".to_owned(),
            None,
            None,
            false,
        )
    }

    /// The named context for `name` (a stage name or an image reference,
    /// compared as BuildKit does: familiar form without `:latest`).
    pub fn named_context(&self, name: &str) -> Option<(String, NamedContext)> {
        let key = match Reference::parse(name) {
            Ok(r) => {
                let f = r.familiar();
                f.strip_suffix(":latest").map_or(f.clone(), str::to_owned)
            }
            Err(_) => name.to_owned(),
        };
        let ncs = &self.cx.opts.named_contexts;
        ncs.get(name)
            .or_else(|| ncs.get(&key))
            .map(|nc| (key, nc.clone()))
    }

    /// An image source for `name`, resolved for `platform`.
    pub fn image(
        &mut self,
        name: &str,
        platform: &Platform,
        span: Span,
        describe: impl FnOnce(&str) -> String,
    ) -> Result<Base, FrontendError> {
        if let Some((key, nc)) = self.named_context(name) {
            return self.context_base(&key, &nc, platform, span);
        }
        self.registry_image(name, platform, span, describe)
    }

    /// [`Lowering::image`] without looking at named contexts.
    fn registry_image(
        &mut self,
        name: &str,
        platform: &Platform,
        span: Span,
        describe: impl FnOnce(&str) -> String,
    ) -> Result<Base, FrontendError> {
        if name == "scratch" {
            return Ok(Base {
                root: self.scratch()?,
                config: empty_image(platform),
                platform: platform.clone(),
            });
        }
        let reference =
            Reference::parse(name).map_err(|source| FrontendError::InvalidReference {
                reference: name.to_owned(),
                span,
                source,
            })?;
        let resolved = self.cx.resolve(&reference.to_string(), platform, span)?;
        let pinned = reference.with_digest(resolved.digest.clone()).to_string();
        let mut config = resolved.config;
        config.created = None;
        let is_scratch =
            config.rootfs.diff_ids.is_empty() && config.history.iter().all(|h| h.empty_layer);
        let root = if is_scratch {
            self.scratch()?
        } else {
            let op = Op::Source(Source::Image {
                reference: pinned.clone(),
                platform: platform.clone(),
                resolve_mode: ResolveMode::Default,
            });
            let shown = self.shown_platform(platform);
            self.add(
                op,
                vec![],
                describe(&pinned),
                Some(span),
                shown.as_ref(),
                false,
            )?
        };
        Ok(Base {
            root,
            config,
            platform: platform.clone(),
        })
    }

    fn context_base(
        &mut self,
        key: &str,
        nc: &NamedContext,
        platform: &Platform,
        span: Span,
    ) -> Result<Base, FrontendError> {
        match nc {
            NamedContext::Image { reference } => {
                let reference = reference.clone();
                self.registry_image(&reference, platform, span, |p| format!("FROM {p}"))
            }
            NamedContext::Local { name } => {
                let op = Op::Source(Source::Local {
                    name: name.clone(),
                    include: Vec::new(),
                    exclude: Vec::new(),
                    follow_paths: Vec::new(),
                });
                let root = self.add(
                    op,
                    vec![],
                    format!("[context {key}] load from client"),
                    Some(span),
                    None,
                    false,
                )?;
                Ok(Base {
                    root,
                    config: empty_image(platform),
                    platform: platform.clone(),
                })
            }
        }
    }

    /// The filesystem `from` names in `COPY --from` or `RUN --mount=from=`:
    /// an earlier stage, a named context or an image.
    pub fn source_root(
        &mut self,
        from: &str,
        current: usize,
        span: Span,
    ) -> Result<Digest, FrontendError> {
        if from.contains('$') {
            return Err(FrontendError::FromVariable {
                from: from.to_owned(),
                span,
            });
        }
        if let Some(i) = stages::find(&self.decls, from) {
            return match self.done.get(i).and_then(Option::as_ref) {
                Some(st) if i < current => Ok(st.root.clone()),
                _ => Err(FrontendError::StageNotYetDefined {
                    from: from.to_owned(),
                    stage: self.decls[current].display(current),
                    span,
                }),
            };
        }
        let platform = self.target.clone();
        Ok(self
            .image(from, &platform, span, |p| format!("FROM {p}"))?
            .root)
    }

    /// The base image's ONBUILD triggers as instructions of stage `i`, located at its
    /// `FROM`. Triggers that read another stage (`--from`) are refused: stage order
    /// is settled before base images are read.
    fn triggers(&self, i: usize, st: &mut StageState) -> Result<Vec<Instruction>, FrontendError> {
        let span = self.decls[i].stage.from.span;
        let mut out = Vec::new();
        for text in std::mem::take(&mut st.triggers) {
            // A trigger is one instruction: parse it inside a stage.
            let parsed = dockerfile::parser::parse(&format!("FROM scratch\n{text}"));
            if let Some(d) = parsed.diagnostics.iter().find(|d| d.is_error()) {
                return Err(FrontendError::BadTrigger {
                    trigger: text.clone(),
                    message: d.message.clone(),
                    span,
                });
            }
            for mut ins in parsed.dockerfile.instructions.into_iter().skip(1) {
                let reads_stage = ins.flags.iter().any(|f| f.name == "from")
                    || matches!(&ins.kind, InstructionKind::Run(r) if r.mounts.iter().any(|m| m.from.is_some()));
                if reads_stage
                    || matches!(
                        ins.kind,
                        InstructionKind::From(_) | InstructionKind::Onbuild(_)
                    )
                {
                    return Err(FrontendError::NotSupported {
                        feature: format!("the base image's ONBUILD trigger {text:?}"),
                        span,
                    });
                }
                ins.span = span;
                out.push(ins);
            }
        }
        Ok(out)
    }

    /// Lower stage `i` (its dependencies are lowered).
    fn lower_stage(&mut self, i: usize) -> Result<(), FrontendError> {
        let replaced = self.decls[i]
            .name
            .clone()
            .and_then(|n| self.named_context(&n));
        if let Some((key, nc)) = replaced {
            // A named context of the stage's name replaces the whole stage.
            let span = self.decls[i].stage.from.span;
            let platform = self.decls[i]
                .platform
                .clone()
                .unwrap_or_else(|| self.target.clone());
            let base = self.context_base(&key, &nc, &platform, span)?;
            let mut st = StageState::from_base(self.decls[i].display(i), base);
            st.steps = 0;
            self.done[i] = Some(st);
            return Ok(());
        }
        let mut st = self.init_stage(i)?;
        let triggers = self.triggers(i, &mut st)?;
        st.steps += triggers
            .iter()
            .filter(|t| {
                matches!(
                    t.kind,
                    InstructionKind::Run(_)
                        | InstructionKind::Copy(_)
                        | InstructionKind::Add(_)
                        | InstructionKind::Workdir(_)
                )
            })
            .count();
        for ins in &triggers {
            self.dispatch(i, &mut st, ins)?;
        }
        let instructions = self.decls[i].stage.instructions;
        for ins in instructions {
            self.dispatch(i, &mut st, ins)?;
        }
        self.done[i] = Some(st);
        Ok(())
    }
}

/// BuildKit's config for `scratch` (and for a local named context).
pub(crate) fn empty_image(platform: &Platform) -> ImageConfig {
    let mut config = ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        os_version: platform.os_version.clone(),
        os_features: platform.os_features.clone(),
        ..ImageConfig::default()
    };
    config.config = Some(oci::document::ContainerConfig {
        working_dir: Some("/".to_owned()),
        env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
        ..Default::default()
    });
    config
}

/// Clean a workdir against the current one (used for the base's `WorkingDir`).
pub(crate) fn normalize_workdir(current: &str, wd: &str) -> String {
    paths::resolve(if current.is_empty() { "/" } else { current }, wd)
}
