//! CLI goldens: `tests/data/cli/<case>/{Dockerfile, args}` run as
//! `manifold <args> CONTEXT` in a context holding the Dockerfile (and empty files
//! `a`, `b`); `expected` holds the exit code, stdout and stderr. Regenerate with
//! `UPDATE_EXPECT=1 cargo nextest run -p manifold --test cli_goldens`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cli")
}

fn check(case: &str) {
    let dir = data().join(case);
    let args = std::fs::read_to_string(dir.join("args")).unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("Dockerfile"), ctx.path().join("Dockerfile")).unwrap();
    for f in ["a", "b"] {
        std::fs::write(ctx.path().join(f), b"").unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(args.split_whitespace())
        .arg(ctx.path())
        .env("MANIFOLD_ROOT", ctx.path().join(".state"))
        .env("MANIFOLD_CONFIG", ctx.path().join(".config"))
        .env("DOCKER_CONFIG", ctx.path().join(".docker"))
        .output()
        .unwrap();
    let got = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).replace(&ctx.path().display().to_string(), "CONTEXT"),
    );
    let expected = dir.join("expected");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected, &got).unwrap();
    }
    let want = std::fs::read_to_string(&expected).unwrap_or_default();
    assert_eq!(
        got, want,
        "case {case}: output differs (UPDATE_EXPECT=1 regenerates)"
    );
}

testkit::golden_cases!(
    data(), check;
    attest_bad_type,
    build_add_host_bad,
    build_annotation_bad_type,
    build_annotation_index_single_platform,
    build_cache_from_bad_ref,
    build_cache_to_bad_mode,
    build_cache_to_gha,
    build_cache_to_inline,
    build_cache_to_mounts_max_size_bad,
    build_cache_to_no_dest,
    build_check_error_true,
    build_name_canonical_bad,
    build_output_annotation_key,
    build_shm_size_bad,
    build_ulimit_bad,
    build_unknown_network,
    check_build_arg_override,
    check_clean,
    check_error_true,
    check_skip,
    check_warnings,
    error_marked_lines,
    imagetools_create_annotation_manifest,
    imagetools_create_file_missing,
    imagetools_create_file_not_descriptor,
    imagetools_create_platform_bad,
    imagetools_create_prefer_index_bad,
    inspect_format_bad_template,
    inspect_format_unknown,
    outline,
    output_docker_several_platforms,
    provenance_bad_mode,
    provenance_unknown_key,
    prune_filter_bad,
    prune_keep_storage_bad,
    push_without_name,
    sbom_generator_image,
    ssh_not_supported,
    syntax_foreign_frontend,
    syntax_foreign_frontend_outline,
    targets,
    unknown_target,
    unsupported_add_url,
);
