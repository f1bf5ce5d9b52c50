//! Data-driven build-check tests: each directory under `tests/data/lint/<case>/`
//! holds a `Dockerfile`, optionally an `options` file, and the `expected`
//! report. Run with `UPDATE_EXPECT=1` to rewrite the expected files.
//!
//! `options` has one setting a line:
//! - `check <config>`: the `BUILDKIT_DOCKERFILE_CHECK` override;
//! - `build-arg NAME=VALUE`;
//! - `target NAME`, `target-platform P`;
//! - `image REF PLATFORM [NAME=VALUE...]`: what the image resolver knows;
//! - `ignore PATTERN`: a line of the context's `.dockerignore`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dockerfile::ignore::Matcher;
use dockerfile::lint::{BaseImage, CheckConfig, CheckOptions, check};
use oci::Platform;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lint")
}

fn actual(src: &str, options: &str) -> String {
    let parsed = dockerfile::parser::parse(src);
    let mut images: BTreeMap<String, BaseImage> = BTreeMap::new();
    let mut ignore_lines: Vec<String> = Vec::new();
    let mut opts = CheckOptions::default();
    for line in options.lines().filter(|l| !l.trim().is_empty()) {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "check" => opts.config = Some(CheckConfig::parse(rest).expect("check option")),
            "build-arg" => {
                let (k, v) = rest.split_once('=').expect("build-arg NAME=VALUE");
                opts.build_args.insert(k.to_owned(), v.to_owned());
            }
            "target" => opts.target = Some(rest.to_owned()),
            "target-platform" => opts.target_platform = Platform::parse(rest).expect("platform"),
            "image" => {
                let mut words = rest.split_whitespace();
                let reference = words.next().expect("image reference").to_owned();
                let platform =
                    Platform::parse(words.next().expect("image platform")).expect("image platform");
                let env = words
                    .map(|w| {
                        let (k, v) = w.split_once('=').expect("NAME=VALUE");
                        (k.to_owned(), v.to_owned())
                    })
                    .collect();
                images.insert(reference, BaseImage { platform, env });
            }
            "ignore" => ignore_lines.push(rest.to_owned()),
            other => panic!("unknown option {other:?}"),
        }
    }
    let matcher = Matcher::from_lines(&ignore_lines).expect("ignore patterns");
    if !images.is_empty() {
        opts.images = Some(&images);
    }
    if !ignore_lines.is_empty() {
        opts.ignore = Some(&matcher);
    }
    let report = check(&parsed, &opts);
    let mut out = format!("error={}\n", report.error);
    let errors = parsed.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        let _ = writeln!(out, "parse errors: {errors}");
    }
    for w in &report.warnings {
        let _ = writeln!(out, "{} {}: {}", w.span, w.name(), w.message);
    }
    out
}

fn run_case(name: &str) {
    let dir = data_dir().join(name);
    let src = std::fs::read_to_string(dir.join("Dockerfile"))
        .unwrap_or_else(|e| panic!("case {name}: cannot read Dockerfile: {e}"));
    let options = std::fs::read_to_string(dir.join("options")).unwrap_or_default();
    let got = actual(&src, &options);
    testkit::golden::compare(name, &dir.join("expected"), &got);
}

/// Every rule has a case named after it that triggers it (`<rule>_bad`) and
/// one that does not (`<rule>_good`).
#[test]
fn every_rule_has_cases() {
    for rule in dockerfile::lint::Rule::ALL {
        let stem = rule.kebab_name().replace('-', "_");
        for suffix in ["bad", "good"] {
            let case = format!("{stem}_{suffix}");
            assert!(
                ALL_CASES.contains(&case.as_str()),
                "no lint case {case} for {rule}"
            );
        }
        let bad = std::fs::read_to_string(data_dir().join(format!("{stem}_bad/expected")))
            .unwrap_or_default();
        assert!(
            bad.contains(&format!(" {}: ", rule.name())),
            "{stem}_bad does not trigger {rule}"
        );
        let good = std::fs::read_to_string(data_dir().join(format!("{stem}_good/expected")))
            .unwrap_or_default();
        assert!(
            !good.contains(&format!(" {}: ", rule.name())),
            "{stem}_good triggers {rule}"
        );
    }
}

// ---- case list (one test per directory) ----
testkit::golden_cases! {
    data_dir(), run_case;
    check_comment_on_instruction,
    check_error_false_default,
    check_error_true,
    check_error_true_clean,
    check_override_replaces_directive,
    check_override_skip,
    check_skip_all,
    check_skip_rules,
    check_skip_unknown_rule,
    clean,
    consistent_instruction_casing_bad,
    consistent_instruction_casing_good,
    consistent_instruction_casing_majority,
    consistent_instruction_casing_preamble_not_counted,
    copy_ignored_file_bad,
    copy_ignored_file_exclusions,
    copy_ignored_file_good,
    copy_ignored_file_root,
    duplicate_stage_name_bad,
    duplicate_stage_name_good,
    expose_invalid_format_bad,
    expose_invalid_format_good,
    expose_proto_casing_bad,
    expose_proto_casing_good,
    from_as_casing_bad,
    from_as_casing_good,
    from_platform_flag_const_disallowed_bad,
    from_platform_flag_const_disallowed_good,
    invalid_base_image_platform_bad,
    invalid_base_image_platform_good,
    invalid_default_arg_in_from_bad,
    invalid_default_arg_in_from_build_arg,
    invalid_default_arg_in_from_good,
    invalid_definition_description_bad,
    invalid_definition_description_good,
    invalid_definition_description_not_enabled,
    invalid_definition_description_skip_all_still_runs,
    json_args_recommended_bad,
    json_args_recommended_good,
    json_args_recommended_shell_inherited,
    json_args_recommended_shell_set,
    legacy_key_value_format_bad,
    legacy_key_value_format_good,
    maintainer_deprecated_bad,
    maintainer_deprecated_good,
    multiple_instructions_disallowed_bad,
    multiple_instructions_disallowed_good,
    no_empty_continuation_bad,
    no_empty_continuation_good,
    redundant_target_platform_bad,
    redundant_target_platform_good,
    reserved_stage_name_bad,
    reserved_stage_name_good,
    secrets_used_in_arg_or_env_bad,
    secrets_used_in_arg_or_env_good,
    stage_name_casing_bad,
    stage_name_casing_good,
    undefined_arg_in_from_bad,
    undefined_arg_in_from_good,
    undefined_arg_in_from_suggest,
    undefined_var_bad,
    undefined_var_base_stage,
    undefined_var_env_same_instruction,
    undefined_var_good,
    undefined_var_image_env,
    undefined_var_suggest,
    workdir_relative_path_bad,
    workdir_relative_path_expanded,
    workdir_relative_path_good,
}
