//! Which frontend a Dockerfile asks for: the `# syntax=` directive, replaced by
//! the `BUILDKIT_SYNTAX` build argument when that is given (as in BuildKit).
//!
//! BuildKit pulls the frontend image the reference names and runs it. Manifold
//! runs no frontend images: `docker/dockerfile` (also `docker/dockerfile-upstream`,
//! the same frontend built from BuildKit's main branch), with or without
//! `docker.io/`, at any `1.x` version or channel (`-labs`) or digest, is what the
//! built-in frontend stands for; a `1.x` newer than [`BUILTIN_VERSION`] is built
//! too, with a warning; any other image is an error on the directive's line.

use oci::{Reference, ReferenceError};

use crate::parser::{Diagnostic, Directives, Parsed, Span};

/// The build argument that replaces the `# syntax=` directive.
pub const BUILD_ARG: &str = "BUILDKIT_SYNTAX";

/// The newest `docker/dockerfile` version (major, minor) whose stable syntax the
/// built-in frontend implements: every instruction and flag of 1.26 is parsed
/// (1.27 made `RUN --device` stable, which is not).
pub const BUILTIN_VERSION: (u32, u32) = (1, 26);

/// The repositories (on `docker.io`) of the frontend that is built in.
const BUILTIN_REPOSITORIES: [&str; 2] = ["docker/dockerfile", "docker/dockerfile-upstream"];

/// What a frontend reference asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frontend {
    /// The Dockerfile frontend at a version the built-in one implements (or no
    /// version: `1`, `latest`, `labs`, a digest).
    BuiltIn,
    /// The Dockerfile frontend at a version newer than [`BUILTIN_VERSION`]:
    /// `version` as the tag writes it (`1.27`, `1.27.0-labs`, `master`).
    Newer { version: String },
    /// A frontend the built-in one does not stand for.
    Unsupported(Unsupported),
}

/// Why a frontend reference is not the built-in frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// An image other than `docker/dockerfile`.
    Image,
    /// `docker/dockerfile` at a tag that is no `1.x` version or channel.
    Version { tag: String },
    /// Not an image reference at all.
    Reference(ReferenceError),
}

/// What the frontend image `reference` stands for.
pub fn classify(reference: &str) -> Frontend {
    let r = match Reference::parse(reference) {
        Ok(r) => r,
        Err(e) => return Frontend::Unsupported(Unsupported::Reference(e)),
    };
    if r.registry() != "docker.io" || !BUILTIN_REPOSITORIES.contains(&r.repository()) {
        return Frontend::Unsupported(Unsupported::Image);
    }
    // A digest alone pins some build of the frontend; it cannot be checked offline.
    let Some(tag) = r.tag() else {
        return Frontend::BuiltIn;
    };
    match version(tag) {
        Some(Version::Unpinned) => Frontend::BuiltIn,
        Some(Version::Unreleased) => Frontend::Newer {
            version: tag.to_owned(),
        },
        Some(Version::Release(1, minor)) if minor > BUILTIN_VERSION.1 => Frontend::Newer {
            version: tag.to_owned(),
        },
        Some(Version::Release(1, _)) => Frontend::BuiltIn,
        Some(Version::Release(..)) | None => Frontend::Unsupported(Unsupported::Version {
            tag: tag.to_owned(),
        }),
    }
}

/// A frontend tag, read.
enum Version {
    /// `latest`, `labs`, `experimental`, `1`, `1-labs`: the newest release of a channel.
    Unpinned,
    /// `master`, `master-labs` (of `dockerfile-upstream`).
    Unreleased,
    /// `MAJOR.MINOR[.PATCH][-rcN][-labs]`.
    Release(u32, u32),
}

/// `tag` as a version: `[latest|labs|experimental|master|MAJOR[.MINOR[.PATCH]][-rcN]]`
/// then an optional `-labs` or `-experimental` channel.
fn version(tag: &str) -> Option<Version> {
    if matches!(tag, "latest" | "labs" | "experimental") {
        return Some(Version::Unpinned);
    }
    let base = tag
        .strip_suffix("-labs")
        .or_else(|| tag.strip_suffix("-experimental"))
        .unwrap_or(tag);
    if base == "master" {
        return Some(Version::Unreleased);
    }
    let (numbers, pre) = match base.split_once('-') {
        Some((n, pre)) => (n, Some(pre)),
        None => (base, None),
    };
    if let Some(pre) = pre {
        let n = pre.strip_prefix("rc")?.trim_start_matches('.');
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let parts: Vec<u32> = numbers
        .split('.')
        .map(|p| {
            p.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    match parts[..] {
        [major] if pre.is_none() => Some(if major == 1 {
            Version::Unpinned
        } else {
            Version::Release(major, 0)
        }),
        [major, minor] | [major, minor, _] => Some(Version::Release(major, minor)),
        _ => None,
    }
}

/// What the Dockerfile's frontend request means for a build by the built-in
/// frontend: nothing, a warning (a newer version) or an error (another frontend).
///
/// `build_arg` is the `BUILDKIT_SYNTAX` build argument; when given (and not empty)
/// it replaces the directive. A diagnostic about the directive spans its line; one
/// about the build argument has the empty span (line 0: no line of the file).
pub fn check(directives: &Directives, build_arg: Option<&str>) -> Option<Diagnostic> {
    let (value, span, what) = match build_arg.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => (v, Span::default(), "BUILDKIT_SYNTAX build argument"),
        None => {
            let d = directives.syntax.as_ref()?;
            (d.value.as_str(), d.span, "syntax directive")
        }
    };
    // BuildKit passes the words after the reference to the frontend image.
    let reference = value.split_whitespace().next().unwrap_or(value);
    let (major, minor) = BUILTIN_VERSION;
    match classify(reference) {
        Frontend::BuiltIn => None,
        Frontend::Newer { version } => Some(Diagnostic::warning(
            "newer-frontend",
            span,
            format!(
                "{what} asks for {reference:?}, newer than the built-in Dockerfile frontend \
                 ({major}.{minor}): the build uses the built-in one, which does not know what \
                 {version} added"
            ),
        )),
        Frontend::Unsupported(Unsupported::Reference(e)) => Some(Diagnostic::error(
            "unsupported-frontend",
            span,
            format!("invalid {what}: {e}"),
        )),
        Frontend::Unsupported(Unsupported::Version { tag }) => Some(Diagnostic::error(
            "unsupported-frontend",
            span,
            format!(
                "unsupported {what} {reference:?}: the built-in Dockerfile frontend is \
                 docker/dockerfile 1.x (up to {major}.{minor}), not {tag:?}"
            ),
        )),
        Frontend::Unsupported(Unsupported::Image) => Some(Diagnostic::error(
            "unsupported-frontend",
            span,
            format!(
                "unsupported {what} {reference:?}: frontend images are not run; only the \
                 built-in Dockerfile frontend (docker/dockerfile 1.x) builds"
            ),
        )),
    }
}

/// Add [`check`]'s diagnostic to `parsed`: a warning joins the parser's, an error
/// replaces them (the Dockerfile is written for another frontend, whose syntax the
/// parser may not know), so the build fails on the directive alone.
pub fn apply(parsed: &mut Parsed, build_arg: Option<&str>) {
    match check(&parsed.dockerfile.directives, build_arg) {
        Some(d) if d.is_error() => parsed.diagnostics = vec![d],
        Some(d) => parsed.diagnostics.push(d),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{Pos, Severity, parse};
    use rstest::rstest;

    const DIGEST: &str = "sha256:9857836c9ee4268391bb5b09f9f157f3c91bb15821bb77969642813b0d00518d";

    #[rstest]
    #[case::major("docker/dockerfile:1")]
    #[case::minor("docker/dockerfile:1.7")]
    #[case::patch("docker/dockerfile:1.7.1")]
    #[case::known("docker/dockerfile:1.26")]
    #[case::known_patch("docker/dockerfile:1.26.3")]
    #[case::old("docker/dockerfile:1.0")]
    #[case::labs("docker/dockerfile:1.7-labs")]
    #[case::major_labs("docker/dockerfile:1-labs")]
    #[case::patch_labs("docker/dockerfile:1.7.0-labs")]
    #[case::channel_labs("docker/dockerfile:labs")]
    #[case::experimental("docker/dockerfile:1.2-experimental")]
    #[case::rc("docker/dockerfile:1.8.0-rc1")]
    #[case::untagged("docker/dockerfile")]
    #[case::latest("docker/dockerfile:latest")]
    #[case::docker_io("docker.io/docker/dockerfile:1")]
    #[case::docker_io_untagged("docker.io/docker/dockerfile")]
    #[case::index_docker_io("index.docker.io/docker/dockerfile:1")]
    #[case::upstream("docker/dockerfile-upstream:1.7.0")]
    fn the_dockerfile_frontend_is_built_in(#[case] reference: &str) {
        assert_eq!(classify(reference), Frontend::BuiltIn, "{reference}");
        let pinned = format!("{reference}@{DIGEST}");
        assert_eq!(classify(&pinned), Frontend::BuiltIn, "{pinned}");
    }

    #[test]
    fn a_digest_alone_is_built_in() {
        assert_eq!(
            classify(&format!("docker/dockerfile@{DIGEST}")),
            Frontend::BuiltIn
        );
    }

    #[rstest]
    #[case::minor("docker/dockerfile:1.27", "1.27")]
    #[case::patch_labs("docker.io/docker/dockerfile:1.27.0-labs", "1.27.0-labs")]
    #[case::master("docker/dockerfile-upstream:master", "master")]
    #[case::master_labs("docker/dockerfile-upstream:master-labs", "master-labs")]
    fn a_newer_version_is_built_in_with_a_warning(#[case] reference: &str, #[case] want: &str) {
        assert_eq!(
            classify(reference),
            Frontend::Newer {
                version: want.into()
            }
        );
    }

    #[rstest]
    #[case::registry("example.com/my/frontend:1")]
    #[case::hub_image("tonistiigi/dockerfile:1")]
    #[case::other_registry("ghcr.io/docker/dockerfile:1")]
    #[case::official_name("dockerfile:1")]
    fn other_images_are_unsupported(#[case] reference: &str) {
        assert_eq!(
            classify(reference),
            Frontend::Unsupported(Unsupported::Image)
        );
    }

    #[rstest]
    #[case::major_two("docker/dockerfile:2", "2")]
    #[case::zero("docker/dockerfile:0.9", "0.9")]
    #[case::two_minor("docker/dockerfile:2.0-labs", "2.0-labs")]
    #[case::word("docker/dockerfile:stable", "stable")]
    #[case::four_parts("docker/dockerfile:1.2.3.4", "1.2.3.4")]
    #[case::bad_pre("docker/dockerfile:1.7-beta", "1.7-beta")]
    #[case::rc_of_major("docker/dockerfile:1-rc1", "1-rc1")]
    fn other_versions_are_unsupported(#[case] reference: &str, #[case] tag: &str) {
        assert_eq!(
            classify(reference),
            Frontend::Unsupported(Unsupported::Version { tag: tag.into() })
        );
    }

    #[test]
    fn a_malformed_reference_is_unsupported() {
        assert!(matches!(
            classify("Docker/Dockerfile:1"),
            Frontend::Unsupported(Unsupported::Reference(_))
        ));
    }

    fn check_src(src: &str, build_arg: Option<&str>) -> Option<Diagnostic> {
        let parsed = parse(src);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        check(&parsed.dockerfile.directives, build_arg)
    }

    #[test]
    fn no_directive_and_no_build_arg_is_the_built_in_frontend() {
        assert_eq!(check_src("FROM scratch\n", None), None);
        assert_eq!(check_src("FROM scratch\n", Some("")), None);
    }

    #[test]
    fn a_foreign_directive_is_an_error_on_its_line() {
        let d = check_src(
            "# escape=`\n# syntax=example.com/my/frontend:1\nFROM scratch\n",
            None,
        )
        .unwrap();
        assert_eq!(d.severity, Severity::Error);
        assert_eq!(d.code, "unsupported-frontend");
        assert_eq!(d.span.start, Pos::new(2, 1));
        assert!(
            d.message.contains("\"example.com/my/frontend:1\""),
            "{}",
            d.message
        );
    }

    #[test]
    fn words_after_the_reference_are_not_part_of_it() {
        assert_eq!(
            check_src("# syntax=docker/dockerfile:1 --opt\nFROM scratch\n", None),
            None
        );
    }

    #[test]
    fn an_error_replaces_the_parsers_diagnostics_and_a_warning_joins_them() {
        let foreign = "# syntax=example.com/my/frontend:1\nFROM scratch\nFROBNICATE x\n";
        let mut parsed = parse(foreign);
        assert!(
            parsed.has_errors(),
            "the built-in parser refuses FROBNICATE"
        );
        apply(&mut parsed, None);
        let codes: Vec<_> = parsed.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["unsupported-frontend"]);

        let newer = "# syntax=docker/dockerfile:1.99\nFROM scratch\nFROBNICATE x\n";
        let mut parsed = parse(newer);
        let before = parsed.diagnostics.len();
        apply(&mut parsed, None);
        assert_eq!(parsed.diagnostics.len(), before + 1);
        assert_eq!(parsed.diagnostics[before].code, "newer-frontend");

        let mut parsed = parse("FROM scratch\n");
        apply(&mut parsed, Some("docker/dockerfile:1"));
        assert!(parsed.diagnostics.is_empty());
    }

    #[test]
    fn a_newer_directive_is_a_warning_on_its_line() {
        let d = check_src("# syntax=docker/dockerfile:1.99\nFROM scratch\n", None).unwrap();
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(d.code, "newer-frontend");
        assert_eq!(d.span.start.line, 1);
        assert!(d.message.contains("(1.26)"), "{}", d.message);
    }

    #[test]
    fn the_build_arg_replaces_the_directive() {
        let foreign = "# syntax=example.com/my/frontend:1\nFROM scratch\n";
        assert_eq!(check_src(foreign, Some("docker/dockerfile:1")), None);
        let builtin = "# syntax=docker/dockerfile:1\nFROM scratch\n";
        let d = check_src(builtin, Some("example.com/my/frontend:1")).unwrap();
        assert!(d.is_error());
        assert_eq!(d.span, Span::default(), "the build arg is on no line");
        assert!(d.message.contains("BUILDKIT_SYNTAX"), "{}", d.message);
        let d = check_src("FROM scratch\n", Some("docker/dockerfile:2")).unwrap();
        assert!(d.is_error());
        assert!(d.message.contains("\"2\""), "{}", d.message);
    }
}
