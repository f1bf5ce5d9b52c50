//! The build checks every build runs, as BuildKit's frontend runs them while it
//! converts the Dockerfile: after lowering, with the base images the lowering
//! resolved (their platform for `InvalidBaseImagePlatform`, their environment for
//! `UndefinedVar`), never with a lookup of its own.

use dockerfile::ignore::Matcher;
use dockerfile::lint::{self, BaseImage, CheckConfig, CheckOptions, LintWarning};
use dockerfile::parser::Parsed;
use oci::{Platform, Reference};

use crate::error::FrontendError;
use crate::lowering::Ctx;

/// The build argument that replaces the `# check=` directive.
const CHECK_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// `BUILDKIT_DOCKERFILE_CHECK`, parsed; `None` when it is not given.
pub(crate) fn config(cx: &Ctx<'_>) -> Result<Option<CheckConfig>, FrontendError> {
    cx.build_args
        .get(CHECK_ARG)
        .map(|value| {
            CheckConfig::parse(value).map_err(|source| FrontendError::InvalidCheckConfig {
                value: value.clone(),
                source,
            })
        })
        .transpose()
}

/// The warnings of every target platform's checks, each once, in source order;
/// [`FrontendError::ChecksFailed`] when the configuration says warnings fail
/// the build.
pub(crate) fn run(
    parsed: &Parsed,
    cx: &Ctx<'_>,
    config: Option<&CheckConfig>,
) -> Result<Vec<LintWarning>, FrontendError> {
    let mut build_args = cx.build_args.clone();
    build_args.remove(CHECK_ARG);
    let ignore = Matcher::from_lines(&cx.opts.context_excludes).ok();
    let images = Resolved { cx };
    let mut warnings: Vec<LintWarning> = Vec::new();
    let mut error = false;
    for platform in cx.target_platforms() {
        let opts = CheckOptions {
            config: config.cloned(),
            build_args: build_args.clone(),
            target: cx.opts.target.clone(),
            build_platform: cx.build_platform.clone(),
            target_platform: platform,
            images: Some(&images),
            ignore: ignore.as_ref(),
        };
        let report = lint::check(parsed, &opts);
        error |= report.error;
        for w in report.warnings {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    warnings.sort_by_key(|w| w.span.start);
    if error {
        return Err(FrontendError::ChecksFailed { warnings });
    }
    Ok(warnings)
}

/// The base images the lowering resolved, as the checks see them. An image it
/// did not resolve (a stage the target does not need) is unknown.
struct Resolved<'a, 'b> {
    cx: &'a Ctx<'b>,
}

impl lint::ImageResolver for Resolved<'_, '_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Option<BaseImage> {
        let reference = Reference::parse(reference).ok()?.to_string();
        let config = self.cx.resolved(&reference, platform)?.config;
        Some(BaseImage::from_config(config))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use graph::{ImageResolver, ResolveError, ResolvedImage};
    use oci::document::ContainerConfig;
    use oci::{Digest, ImageConfig};

    use crate::{BuildOptions, lower};

    use super::*;

    /// Every image is an arm64 image with `BASE_HOME` set; the references
    /// asked for are recorded.
    #[derive(Default)]
    struct Arm64Only {
        asked: RefCell<Vec<String>>,
    }

    impl ImageResolver for Arm64Only {
        fn resolve(&self, reference: &str, _: &Platform) -> Result<ResolvedImage, ResolveError> {
            self.asked.borrow_mut().push(reference.to_owned());
            Ok(ResolvedImage {
                digest: Digest::sha256(reference.as_bytes()),
                config: ImageConfig {
                    architecture: "arm64".into(),
                    os: "linux".into(),
                    config: Some(ContainerConfig {
                        env: Some(vec!["BASE_HOME=/home/base".into()]),
                        ..ContainerConfig::default()
                    }),
                    ..ImageConfig::default()
                },
            })
        }
    }

    fn amd64() -> BuildOptions {
        let amd64 = Platform::new("linux", "amd64", None);
        BuildOptions {
            platforms: vec![amd64.clone()],
            build_platform: Some(amd64),
            ..BuildOptions::default()
        }
    }

    fn rules(warnings: &[LintWarning]) -> Vec<&'static str> {
        warnings.iter().map(LintWarning::name).collect()
    }

    #[test]
    fn checks_see_the_base_images_lowering_resolved() {
        let r = Arm64Only::default();
        let src = "FROM example.com/base:1\nWORKDIR $BASE_HOME/app\nENV X=$NOT_SET\n";
        let lowered = lower(src, &amd64(), &r).unwrap();
        // The base's platform and environment come from the one lookup lowering made.
        assert_eq!(
            rules(&lowered.checks),
            ["InvalidBaseImagePlatform", "UndefinedVar"]
        );
        assert!(lowered.checks[1].message.contains("NOT_SET"));
        assert_eq!(*r.asked.borrow(), ["example.com/base:1"]);
    }

    #[test]
    fn checks_look_up_no_image_the_target_does_not_need() {
        let r = Arm64Only::default();
        let src = "FROM example.com/unused:1 AS other\nENV X=$BASE_HOME\n\
                   FROM example.com/base:1 AS final\nRUN true\n";
        let mut opts = amd64();
        opts.target = Some("final".into());
        let lowered = lower(src, &opts, &r).unwrap();
        assert_eq!(*r.asked.borrow(), ["example.com/base:1"]);
        // An image nobody resolved is unknown to the checks: only `PATH` is assumed.
        assert!(
            lowered
                .checks
                .iter()
                .any(|w| w.name() == "UndefinedVar" && w.span.start.line == 2),
            "{:?}",
            lowered.checks
        );
    }

    #[test]
    fn a_clean_dockerfile_has_no_checks() {
        let r = Arm64Only::default();
        let mut opts = amd64();
        opts.platforms = vec![Platform::new("linux", "arm64", None)];
        let lowered = lower("FROM example.com/base:1 AS base\nRUN true\n", &opts, &r).unwrap();
        assert!(lowered.checks.is_empty(), "{:?}", lowered.checks);
    }
}
