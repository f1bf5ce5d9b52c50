//! Data-driven parser tests: each directory under `tests/data/parser/<case>/`
//! holds a `Dockerfile` and the `expected` dump (tree, diagnostics and their
//! rendering). Run with `UPDATE_EXPECT=1` to rewrite the expected files.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parser")
}

fn actual(src: &str) -> String {
    let parsed = dockerfile::parser::parse(src);
    let mut out = parsed.dump();
    for d in &parsed.diagnostics {
        out.push_str("---\n");
        for line in d.render("Dockerfile", src).lines() {
            let _ = writeln!(out, "| {line}");
        }
    }
    out
}

fn run_case(name: &str) {
    let dir = data_dir().join(name);
    let src = std::fs::read_to_string(dir.join("Dockerfile"))
        .unwrap_or_else(|e| panic!("case {name}: cannot read Dockerfile: {e}"));
    let got = actual(&src);
    let expected_path = dir.join("expected");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, &got).expect("write expected");
        return;
    }
    let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert!(
        got == want,
        "case {name}: dump differs (UPDATE_EXPECT=1 to accept)\n--- expected\n{want}\n--- actual\n{got}"
    );
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name));
            }
        )*
        const ALL_CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

#[test]
fn every_case_directory_is_listed() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(data_dir())
        .expect("read tests/data/parser")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let listed: BTreeSet<String> = ALL_CASES.iter().map(|s| (*s).to_owned()).collect();
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "not listed in cases!: {missing:?}; listed without a directory: {stale:?}"
    );
}

// ---- case list (one test per directory) ----
cases! {
    add_all_flags,
    add_basic,
    add_json,
    arg_forms,
    arg_only_preamble_then_from,
    blank_lines_and_spaces,
    bom,
    bom_columns,
    cmd_forms,
    cmd_no_args,
    comments_attached,
    continuation_at_eof,
    continuation_basic,
    continuation_comment_inside,
    continuation_escaped_escape,
    continuation_flags_across_lines,
    continuation_only_escape_line,
    continuation_trailing_whitespace,
    copy_all_flags,
    copy_chmod_symbolic,
    copy_chmod_variable,
    copy_chown_raw,
    copy_flag_quoted_value,
    copy_json_spaces,
    copy_link_false,
    copy_quotes_not_grouped,
    crlf_line_endings,
    directive_after_blank_is_comment,
    directive_after_comment_is_comment,
    directive_after_instruction_is_comment,
    directive_after_unknown_is_comment,
    directive_all_three,
    directive_case_and_spaces,
    directive_check,
    directive_check_skip_all,
    directive_escape_backtick,
    directive_syntax,
    entrypoint_forms,
    env_empty_value,
    env_legacy,
    env_legacy_spaces_kept,
    env_pairs,
    err_add_has_no_from,
    err_arg_blank_name,
    err_bool_flag_bad_value,
    err_bool_flag_empty_value,
    err_chmod_bad_symbolic,
    err_chmod_not_octal,
    err_chmod_too_big,
    err_copy_heredoc_dest,
    err_copy_one_arg,
    err_duplicate_directive,
    err_duplicate_flag,
    err_duplicate_stage_name,
    err_empty_file,
    err_env_blank_name,
    err_env_missing_equals,
    err_env_missing_value,
    err_expose_empty,
    err_flag_missing_value,
    err_flag_on_env,
    err_from_bad_stage_name,
    err_from_no_args,
    err_from_wrong_count,
    err_healthcheck_bad_duration,
    err_healthcheck_bad_retries,
    err_healthcheck_cmd_missing,
    err_healthcheck_none_with_args,
    err_healthcheck_none_with_flag,
    err_healthcheck_too_short,
    err_healthcheck_unknown_type,
    err_instruction_before_from,
    err_invalid_check_directive,
    err_invalid_escape_directive,
    err_json_non_string,
    err_line_too_long,
    err_mount_bad_csv,
    err_mount_bad_sharing,
    err_mount_bad_type,
    err_mount_bare_field,
    err_mount_from_variable,
    err_mount_mode_on_bind,
    err_mount_required_on_cache,
    err_mount_secret_without_id,
    err_mount_size_on_cache,
    err_mount_unknown_key,
    err_network_bad,
    err_network_duplicate,
    err_no_instructions,
    err_onbuild_empty,
    err_onbuild_from,
    err_onbuild_inner_bad_flag,
    err_onbuild_onbuild,
    err_security_bad,
    err_several_errors_one_file,
    err_shell_not_json,
    err_single_arg_instructions_empty,
    err_too_many_flags,
    err_too_many_heredocs,
    err_unknown_flag_copy,
    err_unknown_flag_no_flags_instruction,
    err_unknown_flag_run,
    err_unknown_instruction,
    err_unknown_instruction_suggest,
    err_unterminated_heredoc,
    err_unterminated_heredoc_chomp_tab,
    err_unterminated_heredoc_second,
    err_volume_empty,
    expose_ports,
    from_as_case_insensitive,
    from_as_lowercased,
    from_platform,
    from_simple,
    healthcheck_cmd_all_flags,
    healthcheck_cmd_exec,
    healthcheck_fractional,
    healthcheck_none,
    healthcheck_zero_durations,
    heredoc_add,
    heredoc_after_continuation,
    heredoc_body_looks_like_instruction,
    heredoc_cat_redirect,
    heredoc_chomp,
    heredoc_copy,
    heredoc_copy_multiple_files,
    heredoc_crlf,
    heredoc_empty_body,
    heredoc_in_cmd_not_heredoc,
    heredoc_in_json_not_heredoc,
    heredoc_multiple,
    heredoc_quoted_double,
    heredoc_quoted_single,
    heredoc_run_basic,
    heredoc_terminator_exact,
    heredoc_triple_lt_not_heredoc,
    heredoc_with_fd,
    indented_instructions,
    json_with_whitespace,
    keyword_mixed_case,
    label_multiline,
    label_pairs,
    maintainer,
    multi_stage,
    no_trailing_newline,
    onbuild_flags_inner,
    onbuild_heredoc,
    onbuild_run,
    run_dash_word_is_command,
    run_double_dash_ends_flags,
    run_empty_array,
    run_exec_form,
    run_json_escapes,
    run_json_malformed_falls_back,
    run_json_single_quotes_is_shell,
    run_json_trailing_text_is_shell,
    run_mount_bind,
    run_mount_cache_all,
    run_mount_multiple,
    run_mount_quoted_csv,
    run_mount_secret_env,
    run_mount_ssh,
    run_mount_tmpfs_size,
    run_mount_variables,
    run_network_modes,
    run_security_insecure,
    run_shell_form,
    shell_json,
    stages_and_preamble,
    stopsignal,
    unicode_columns,
    user_forms,
    volume_forms,
    warn_arg_flag_ignored,
    warn_empty_continuation,
    workdir,
}
