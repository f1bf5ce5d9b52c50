//! Build checks on every build: the warnings printed after a build's progress
//! (`plain` here; `tty` and `rawjson` in tests/progress.rs, daemon builders in
//! tests/daemon.rs), nothing for a clean Dockerfile, nothing with `-q`, `# check=`
//! and `BUILDKIT_DOCKERFILE_CHECK` honoured, and `check=error=true` failing the
//! build before any step runs. Needs root and runc, like tests/build.rs.

mod common;

use std::path::Path;
use std::process::Output;

use common::{fails, manifold, ok, require_root, root_with_base, text, write};

const CASING: &str = " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)";
const ONE: &str = "1 warning found (use --call=check for details)";

/// A context whose Dockerfile is `dockerfile`.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", dockerfile);
    ctx
}

/// `manifold build [extra…] CTX` with plain progress.
fn build(root: &Path, ctx: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    manifold(root, &args)
}

/// The lines of `stderr` that come from the build checks.
fn warning_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with(" - ") || l.contains("found (use --call=check for details)"))
        .collect()
}

/// Plain progress lines of steps (`#3 [stage-0 2/2] RUN …`, `#3 DONE 0.1s`).
fn step_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.strip_prefix('#')
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect()
}

#[test]
fn a_build_prints_each_warning_then_how_many_after_its_progress() {
    require_root();
    let root = root_with_base();
    let ctx = context("FROM localhost/busybox:test as x\nRUN echo built > /marker\n");
    let out = build(root.path(), ctx.path(), &[]);
    ok(&out);
    let err = text(&out.stderr);
    assert_eq!(warning_lines(&err), [CASING, ONE], "{err}");
    // After the last step of the progress, before the build's own report.
    let lines: Vec<&str> = err.lines().collect();
    let warning_at = lines.iter().position(|l| *l == CASING).unwrap();
    let last_step = lines
        .iter()
        .rposition(|l| l.starts_with('#'))
        .unwrap_or_else(|| panic!("no progress:\n{err}"));
    let built = lines
        .iter()
        .position(|l| l.starts_with("built sha256:"))
        .unwrap_or_else(|| panic!("no report:\n{err}"));
    assert!(last_step < warning_at && warning_at < built, "{err}");
    // The checks' warnings are not printed a second time as the parser's.
    assert!(!err.contains("warning:"), "{err}");

    // Several warnings: each once, and the count in the plural.
    let ctx =
        context("FROM localhost/busybox:test as x\nMAINTAINER someone\nRUN echo built > /marker\n");
    let out = build(root.path(), ctx.path(), &[]);
    ok(&out);
    let err = text(&out.stderr);
    assert_eq!(
        warning_lines(&err),
        [
            CASING,
            " - MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)",
            "2 warnings found (use --call=check for details)",
        ],
        "{err}"
    );
}

#[test]
fn quiet_builds_and_clean_dockerfiles_print_no_warnings() {
    require_root();
    let root = root_with_base();
    let ctx = context("FROM localhost/busybox:test as x\nRUN echo built > /marker\n");
    let out = build(root.path(), ctx.path(), &["-q"]);
    ok(&out);
    assert_eq!(text(&out.stderr), "", "-q prints nothing on stderr");
    assert!(
        text(&out.stdout).trim().starts_with("sha256:"),
        "{}",
        text(&out.stdout)
    );

    let clean = context("FROM localhost/busybox:test AS x\nRUN echo built > /marker\n");
    let out = build(root.path(), clean.path(), &[]);
    ok(&out);
    let err = text(&out.stderr);
    assert!(!step_lines(&err).is_empty(), "{err}");
    assert_eq!(warning_lines(&err), Vec::<&str>::new(), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn check_directives_and_the_build_argument_choose_the_rules() {
    require_root();
    let root = root_with_base();
    let skipped = context(
        "# check=skip=FromAsCasing\nFROM localhost/busybox:test as x\nRUN echo built > /marker\n",
    );
    let out = build(root.path(), skipped.path(), &[]);
    ok(&out);
    let err = text(&out.stderr);
    assert_eq!(warning_lines(&err), Vec::<&str>::new(), "{err}");

    // The build argument replaces the directive whole.
    let failing = context("# check=error=true\nFROM localhost/busybox:test as x\nRUN true\n");
    let out = build(
        root.path(),
        failing.path(),
        &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=FromAsCasing"],
    );
    ok(&out);
    assert_eq!(
        warning_lines(&text(&out.stderr)),
        Vec::<&str>::new(),
        "{}",
        text(&out.stderr)
    );
    let out = build(
        root.path(),
        failing.path(),
        &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=error=false"],
    );
    ok(&out);
    let err = text(&out.stderr);
    assert_eq!(
        warning_lines(&err),
        [
            " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)",
            ONE
        ],
        "{err}"
    );

    let out = build(
        root.path(),
        skipped.path(),
        &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=error=maybe"],
    );
    let err = fails(&out);
    assert!(
        err.contains("invalid BUILDKIT_DOCKERFILE_CHECK build argument \"error=maybe\""),
        "{err}"
    );
}

#[test]
fn check_error_true_fails_the_build_before_any_step_runs() {
    require_root();
    let root = root_with_base();
    let ctx =
        context("# check=error=true\nFROM localhost/busybox:test as x\nRUN echo ran > /marker\n");
    let out = build(root.path(), ctx.path(), &["-t", "checked:1"]);
    let err = fails(&out);
    assert_eq!(step_lines(&err), Vec::<&str>::new(), "no step ran:\n{err}");
    assert_eq!(
        warning_lines(&err),
        [
            " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)",
            ONE
        ],
        "{err}"
    );
    // The offending line, marked, and an error that names the warnings.
    assert!(
        err.contains(" 2 | >>> FROM localhost/busybox:test as x"),
        "{err}"
    );
    assert!(
        err.contains("error: build checks failed with check=error=true: FromAsCasing (line 2)"),
        "{err}"
    );
    assert!(err.contains("hint: fix the warnings"), "{err}");
    let images = text(&manifold(root.path(), &["images"]).stdout);
    assert!(!images.contains("checked"), "{images}");

    // Quiet: no warning lines, the error still names them.
    let out = build(root.path(), ctx.path(), &["-q"]);
    let err = fails(&out);
    assert_eq!(warning_lines(&err), Vec::<&str>::new(), "{err}");
    assert!(err.contains("FromAsCasing (line 2)"), "{err}");

    // The step never ran: the first build that may run it finds no earlier build.
    let out = build(
        root.path(),
        ctx.path(),
        &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=error=false"],
    );
    ok(&out);
    let err = text(&out.stderr);
    let run = err
        .lines()
        .find(|l| l.ends_with("RUN echo ran > /marker"))
        .unwrap_or_else(|| panic!("no RUN step:\n{err}"));
    let n = run.split_once(' ').unwrap().0;
    assert!(
        err.contains(&format!("{n} cache miss: no earlier build of this step")),
        "{err}"
    );
}

#[test]
fn an_empty_continuation_line_is_reported_once_as_a_check() {
    require_root();
    let root = root_with_base();
    let ctx = context("FROM localhost/busybox:test\nRUN echo a \\\n\n  && echo b\n");
    let out = build(root.path(), ctx.path(), &[]);
    ok(&out);
    let err = text(&out.stderr);
    assert_eq!(
        warning_lines(&err),
        [
            " - NoEmptyContinuation: Empty continuation line (line 3)",
            ONE
        ],
        "{err}"
    );
    assert!(!err.contains("warning: empty continuation"), "{err}");

    let skipped = context(
        "# check=skip=NoEmptyContinuation\nFROM localhost/busybox:test\nRUN echo a \\\n\n  && echo b\n",
    );
    let out = build(root.path(), skipped.path(), &[]);
    ok(&out);
    let err = text(&out.stderr);
    assert!(!err.contains("ontinuation"), "{err}");
}

#[test]
fn call_check_reads_base_images_from_the_store_as_a_build_does() {
    require_root();
    // The base is only in the local store (no registry serves it), for amd64 only.
    let root = root_with_base();
    let ctx = context("FROM --platform=linux/arm64 localhost/busybox:test\nRUN echo \"$PATH\"\n");
    let out = manifold(
        root.path(),
        &["build", "--call=check", ctx.path().to_str().unwrap()],
    );
    let err = text(&out.stderr);
    let report = text(&out.stdout);
    assert!(!err.contains("cannot read base image"), "{err}");
    // The image it has is read, so the platform check can say which one it is.
    assert!(
        report.contains("InvalidBaseImagePlatform")
            && report.contains("Base image localhost/busybox:test was pulled with platform \"linux/amd64\", expected \"linux/arm64\""),
        "{report}\n{err}"
    );
}
