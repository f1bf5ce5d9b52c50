//! Data-driven cases for `ignore`: matching decisions, invalid
//! patterns, walker pruning, ignore-file names and the matching work bound.

use ignore::{
    IgnoreError, Matcher, PatternErrorKind, ignore_file_candidates, match_steps, parse_ignore_file,
};
use rstest::rstest;

fn matcher(lines: &[&str]) -> Matcher {
    Matcher::from_lines(lines).unwrap_or_else(|e| panic!("test patterns {lines:?}: {e}"))
}

// ---------------------------------------------------------------------------
// Matching: patterns (one per line) + path → excluded?
// ---------------------------------------------------------------------------

#[rstest]
// `*`
#[case::star_matches_name(&["*.md"], "README.md", true)]
#[case::star_does_not_cross_slash(&["*.md"], "docs/guide.md", false)]
#[case::star_matches_empty_run(&["foo*"], "foo", true)]
#[case::star_in_middle(&["a*z"], "abcz", true)]
#[case::star_excludes_children_of_matching_dir(&["*"], "src/main.rs", true)]
#[case::star_slash_prefix_file(&["*/temp*"], "somedir/temporary.txt", true)]
#[case::star_slash_prefix_dir(&["*/temp*"], "somedir/temp", true)]
#[case::star_slash_prefix_not_at_root(&["*/temp*"], "temporary.txt", false)]
#[case::two_levels_down(&["*/*/temp*"], "a/b/temp.txt", true)]
#[case::two_levels_not_one(&["*/*/temp*"], "a/temp.txt", false)]
// `?`
#[case::question_one_char(&["temp?"], "tempa", true)]
#[case::question_not_zero_chars(&["temp?"], "temp", false)]
#[case::question_not_two_chars(&["temp?"], "tempab", false)]
#[case::question_not_slash(&["a?b"], "a/b", false)]
#[case::question_one_unicode_char(&["caf?"], "café", true)]
// classes
#[case::class_range(&["file[0-9].txt"], "file7.txt", true)]
#[case::class_range_miss(&["file[0-9].txt"], "filex.txt", false)]
#[case::class_negated(&["file[^0-9].txt"], "filex.txt", true)]
#[case::class_negated_miss(&["file[^0-9].txt"], "file3.txt", false)]
#[case::class_bang_is_a_member(&["[!a]b"], "!b", true)]
#[case::class_bang_does_not_negate(&["[!a]b"], "cb", false)]
#[case::class_set(&["[abc].log"], "b.log", true)]
#[case::class_can_match_slash(&["a[^x]b"], "a/b", true)]
#[case::class_escaped_close_bracket(&["[\\]]x"], "]x", true)]
#[case::class_escaped_dash(&["[a\\-z]"], "-", true)]
#[case::class_escaped_dash_not_range(&["[a\\-z]"], "m", false)]
#[case::class_unicode_range(&["[α-ω].txt"], "λ.txt", true)]
#[case::class_two_ranges(&["[a-cx-z]1"], "y1", true)]
// escapes
#[case::escaped_star(&["\\*.txt"], "*.txt", true)]
#[case::escaped_star_is_not_wild(&["\\*.txt"], "a.txt", false)]
#[case::escaped_question(&["what\\?"], "what?", true)]
#[case::escaped_hash_is_a_pattern(&["\\#notes"], "#notes", true)]
#[case::escaped_bang_is_a_pattern(&["\\!important"], "!important", true)]
#[case::escaped_letter_is_literal(&["\\d"], "d", true)]
#[case::escaped_backslash(&["a\\\\b"], "a\\b", true)]
#[case::close_bracket_alone_is_literal(&["a]"], "a]", true)]
// `**`
#[case::globstar_start_matches_root_file(&["**/*.go"], "main.go", true)]
#[case::globstar_start_matches_deep_file(&["**/*.go"], "a/b/c/main.go", true)]
#[case::globstar_start_other_extension(&["**/*.go"], "a/main.rs", false)]
#[case::globstar_middle_zero_dirs(&["a/**/b"], "a/b", true)]
#[case::globstar_middle_many_dirs(&["a/**/b"], "a/x/y/z/b", true)]
#[case::globstar_middle_miss(&["a/**/b"], "a/x/c", false)]
#[case::globstar_end_matches_below(&["a/**"], "a/x/y", true)]
#[case::globstar_end_not_the_dir_itself(&["a/**"], "a", false)]
#[case::globstar_alone_matches_all(&["**"], "any/thing/here", true)]
#[case::globstar_leading_suffix_quirk(&["**.log"], "logs/app.log", true)]
#[case::globstar_leading_suffix_inside_name(&["**x"], "dir/yx", true)]
#[case::globstar_named_dir_anywhere(&["**/node_modules"], "pkg/web/node_modules/x/i.js", true)]
#[case::globstar_named_dir_at_root(&["**/node_modules"], "node_modules", true)]
#[case::globstar_named_dir_not_suffix_of_name(&["**/node_modules"], "my_node_modules", false)]
#[case::globstar_in_name_spans_dirs(&["a**b"], "ax/b", true)]
#[case::globstar_in_name_needs_slash(&["a**b"], "axb", false)]
#[case::globstar_absorbs_slash(&["a**/b"], "ab", true)]
#[case::globstar_end_of_name(&["foo**"], "foobar/baz", true)]
#[case::globstar_then_star(&["src/**/test_*.py"], "src/a/b/test_x.py", true)]
#[case::hostile_globstars_match(&["**/**/**/**/**/**/a"], "x/y/z/a", true)]
// `!` and order
#[case::bang_reincludes(&["*.md", "!README.md"], "README.md", false)]
#[case::bang_leaves_others_excluded(&["*.md", "!README.md"], "CHANGES.md", true)]
#[case::later_pattern_reexcludes(&["*.md", "!README*.md", "README-secret.md"], "README-secret.md", true)]
#[case::later_pattern_spares_others(&["*.md", "!README*.md", "README-secret.md"], "README.md", false)]
#[case::bang_last_wins(&["*.md", "README-secret.md", "!README*.md"], "README-secret.md", false)]
#[case::inclusion_after_bang_wins(&["!a", "a"], "a", true)]
#[case::bang_alone_excludes_nothing(&["!a"], "a", false)]
#[case::bang_without_earlier_match(&["b", "!a"], "a", false)]
#[case::double_bang_is_literal_bang(&["*", "!!keep"], "!keep", false)]
#[case::double_bang_does_not_match_plain(&["*", "!!keep"], "keep", true)]
// directories
#[case::dir_excludes_descendants(&["build"], "build/out/app.bin", true)]
#[case::dir_name_prefix_is_not_parent(&["build"], "builder/x", false)]
#[case::nested_dir_excludes_descendants(&["a/b"], "a/b/c/d", true)]
#[case::nested_dir_not_sibling(&["a/b"], "a/bc", false)]
#[case::keep_under_excluded_dir(&["dir", "!dir/keep"], "dir/keep", false)]
#[case::other_under_excluded_dir(&["dir", "!dir/keep"], "dir/other", true)]
#[case::excluded_dir_itself_stays_excluded(&["dir", "!dir/keep"], "dir", true)]
#[case::below_kept_dir_is_kept(&["dir", "!dir/keep"], "dir/keep/deep.txt", false)]
#[case::reexcluded_inside_kept_dir(&["dir", "!dir/keep", "dir/keep/*.tmp"], "dir/keep/x.tmp", true)]
#[case::parent_reexcluded_last_wins(&["a", "!a/b", "a"], "a/b", true)]
#[case::bang_globstar_under_dir(&["logs", "!logs/**/*.keep"], "logs/2024/01/.keep", false)]
#[case::bang_dir_reincludes_subtree(&["*", "!src"], "src/lib/mod.rs", false)]
// cleaning
#[case::leading_slash_dropped(&["/secret.txt"], "secret.txt", true)]
#[case::leading_dot_slash_dropped(&["./secret.txt"], "secret.txt", true)]
#[case::trailing_slash_dropped(&["tmp/"], "tmp/file", true)]
#[case::trailing_slash_matches_dir(&["tmp/"], "tmp", true)]
#[case::double_slash_collapsed(&["a//b"], "a/b", true)]
#[case::dotdot_resolved(&["a/../b"], "b", true)]
#[case::bang_leading_slash_dropped(&["*", "!/keep"], "keep", false)]
#[case::path_leading_slash_ignored(&["a"], "/a", true)]
#[case::path_dot_slash_ignored(&["a/b"], "./a/b", true)]
#[case::root_never_excluded(&["*"], ".", false)]
#[case::empty_path_is_root(&["**"], "", false)]
#[case::slash_pattern_matches_nothing(&["/"], "a", false)]
// comments and whitespace
#[case::comment_line_ignored(&["# secret"], "# secret", false)]
#[case::indented_hash_is_a_pattern(&["  # secret"], "# secret", true)]
#[case::blank_lines_ignored(&["", "   ", "a"], "a", true)]
#[case::surrounding_whitespace_trimmed(&["  a.txt \t"], "a.txt", true)]
#[case::space_after_bang_trimmed(&["*", "!  keep"], "keep", false)]
#[case::bom_dropped(&["\u{feff}a"], "a", true)]
#[case::only_comments(&["# nothing here"], "a", false)]
// special files, spaces, dotfiles, unicode, literal punctuation
#[case::dockerfile_matchable(&["Dockerfile"], "Dockerfile", true)]
#[case::dockerignore_matchable(&[".dockerignore"], ".dockerignore", true)]
#[case::star_matches_dockerignore(&["*"], ".dockerignore", true)]
#[case::space_in_name(&["my file.txt"], "my file.txt", true)]
#[case::space_with_star(&["* copy.*"], "report copy.pdf", true)]
#[case::dotfiles_star(&[".*"], ".env", true)]
#[case::dotfiles_star_needs_dot(&[".*"], "env", false)]
#[case::dot_git_subtree(&[".git"], ".git/objects/ab/cdef", true)]
#[case::star_covers_leading_dot(&["*.swp"], ".main.rs.swp", true)]
#[case::unicode_dir(&["données/*"], "données/été.csv", true)]
#[case::unicode_star(&["*.日本"], "ファイル.日本", true)]
#[case::regexp_punctuation_is_literal(&["a+b(1).{x}$"], "a+b(1).{x}$", true)]
#[case::dot_is_literal(&["a.b"], "axb", false)]
#[case::caret_is_literal(&["a^b"], "a^b", true)]
fn excluded(#[case] lines: &[&str], #[case] path: &str, #[case] expected: bool) {
    assert_eq!(
        matcher(lines).is_excluded(path),
        expected,
        "patterns {lines:?}, path {path:?}"
    );
}

// ---------------------------------------------------------------------------
// Invalid patterns: file contents → (line, pattern as written, kind)
// ---------------------------------------------------------------------------

#[rstest]
#[case::unterminated_class("a[b", 1, "a[b", PatternErrorKind::UnterminatedClass)]
#[case::unterminated_range("[a-z", 1, "[a-z", PatternErrorKind::UnterminatedClass)]
#[case::open_bracket_alone("[", 1, "[", PatternErrorKind::UnterminatedClass)]
#[case::class_escape_at_end("[a\\", 1, "[a\\", PatternErrorKind::UnterminatedClass)]
#[case::empty_class("x[]", 1, "x[]", PatternErrorKind::EmptyClass)]
#[case::empty_negated_class("[^]", 1, "[^]", PatternErrorKind::EmptyClass)]
#[case::dash_at_class_end("[a-]", 1, "[a-]", PatternErrorKind::StrayDash)]
#[case::dash_at_class_start("[-a]", 1, "[-a]", PatternErrorKind::StrayDash)]
#[case::reversed_range("[z-a]", 1, "[z-a]", PatternErrorKind::ReversedRange { lo: 'z', hi: 'a' })]
#[case::trailing_backslash("foo\\", 1, "foo\\", PatternErrorKind::TrailingBackslash)]
#[case::escaped_trailing_space_is_trimmed(
    "foo\\ ",
    1,
    "foo\\",
    PatternErrorKind::TrailingBackslash
)]
#[case::bare_bang("!", 1, "!", PatternErrorKind::EmptyExclusion)]
#[case::bang_then_slash("! /", 1, "! /", PatternErrorKind::EmptyExclusion)]
#[case::line_counts_comments_and_blanks(
    "# c\n\nok\n  bad[\n",
    4,
    "bad[",
    PatternErrorKind::UnterminatedClass
)]
#[case::error_in_exclusion("a\n!b[", 2, "!b[", PatternErrorKind::UnterminatedClass)]
#[case::crlf_lines("a\r\nb[c-a]\r\n", 2, "b[c-a]", PatternErrorKind::ReversedRange { lo: 'c', hi: 'a' })]
#[case::first_error_wins("ok\n[\n]\n[]", 2, "[", PatternErrorKind::UnterminatedClass)]
fn invalid(
    #[case] contents: &str,
    #[case] line: usize,
    #[case] pattern: &str,
    #[case] kind: PatternErrorKind,
) {
    let err = parse_ignore_file(contents).expect_err("pattern must be rejected");
    assert_eq!(
        (err.line(), err.pattern(), err.kind()),
        (line, pattern, kind)
    );
    let msg = err.to_string();
    assert!(msg.contains(&format!("line {line}")), "{msg}");
    assert!(msg.contains(&format!("{pattern:?}")), "{msg}");
    // The same lines given one by one fail the same way.
    let by_lines = Matcher::from_lines(contents.lines()).expect_err("from_lines too");
    assert_eq!(by_lines, err);
}

#[test]
fn error_message_names_pattern_and_line() {
    let err = parse_ignore_file("# header\nsrc/[abc").unwrap_err();
    assert_eq!(
        err.to_string(),
        "ignore file line 2: invalid pattern \"src/[abc\": unterminated character class (missing ']')"
    );
    assert!(matches!(err, IgnoreError::InvalidPattern { line: 2, .. }));
}

// ---------------------------------------------------------------------------
// Reading: cleaned text, `!`, line numbers
// ---------------------------------------------------------------------------

#[test]
fn parse_keeps_order_lines_and_cleaned_text() {
    let contents = "\u{feff}# comment\n\n/build/\n  !./build/keep//x  \n**/*.o\r\n";
    let patterns = parse_ignore_file(contents).unwrap();
    let seen: Vec<(&str, bool, usize, String)> = patterns
        .iter()
        .map(|p| (p.as_str(), p.is_exclusion(), p.line(), p.to_string()))
        .collect();
    assert_eq!(
        seen,
        [
            ("build", false, 3, "build".to_owned()),
            ("build/keep/x", true, 4, "!build/keep/x".to_owned()),
            ("**/*.o", false, 5, "**/*.o".to_owned()),
        ]
    );
    let m = Matcher::new(patterns).unwrap();
    assert_eq!(m.patterns().len(), 3);
    assert!(m.is_excluded("build/a.o"));
    assert!(!m.is_excluded("build/keep/x"));
    assert!(m.is_excluded("build/keep/x/y.o"));
    assert!(m.patterns()[0].matches("build/sub/file"));
}

#[test]
fn empty_file_excludes_nothing() {
    let m = Matcher::new(parse_ignore_file("").unwrap()).unwrap();
    assert!(m.patterns().is_empty());
    assert!(!m.is_excluded("anything"));
    assert!(!m.may_reinclude_under("anything"));
}

// ---------------------------------------------------------------------------
// Walker pruning: patterns + excluded directory → must the walker descend?
// ---------------------------------------------------------------------------

#[rstest]
#[case::no_exclusions(&["dir"], "dir", false)]
#[case::keep_below(&["dir", "!dir/keep"], "dir", true)]
#[case::keep_elsewhere(&["dir", "!other/keep"], "dir", false)]
#[case::bang_before_exclusion(&["!dir/keep", "dir"], "dir", false)]
#[case::reexcluded_after_bang(&["dir", "!dir/keep", "dir"], "dir", false)]
#[case::bang_globstar(&["dir", "!**/*.keep"], "dir", true)]
#[case::bang_leading_globstar_suffix(&["dir", "!**.keep"], "dir", true)]
#[case::bang_star_dir(&["dir", "!*/keep"], "dir", true)]
#[case::bang_star_dir_mismatch(&["dir", "!x*/keep"], "dir", false)]
#[case::bang_class_could_match(&["dir", "![d]ir/k"], "dir", true)]
#[case::bang_class_cannot_match(&["dir", "![e]ir/k"], "dir", false)]
#[case::nested_dir_on_the_way(&["a", "!a/b/c"], "a/b", true)]
#[case::nested_dir_off_the_way(&["a", "!a/b/c"], "a/x", false)]
#[case::bang_deep_license(&["node_modules", "!node_modules/**/LICENSE"], "node_modules", true)]
#[case::bang_matching_only_the_dir_name(&["dir*", "!dir"], "dirt", false)]
#[case::root_with_bang(&["*", "!a"], ".", true)]
#[case::root_without_bang(&["*"], "", false)]
fn reinclude_under(#[case] lines: &[&str], #[case] dir: &str, #[case] expected: bool) {
    assert_eq!(
        matcher(lines).may_reinclude_under(dir),
        expected,
        "patterns {lines:?}, dir {dir:?}"
    );
}

/// Pruning is sound: wherever a walker would skip an excluded directory,
/// everything below it is excluded too.
#[test]
fn pruning_never_loses_a_reincluded_path() {
    let sets: &[&[&str]] = &[
        &["dir", "!dir/keep"],
        &["dir", "!dir/keep", "dir"],
        &["*", "!*/b", "a/b/c"],
        &["a", "!a/**/x", "a/b"],
        &["**/tmp", "!a/tmp/k?ep"],
        &["a", "![ab]/b/x"],
        &["a/b", "!a/b*"],
        &["a", "!a/b", "a"],
    ];
    let names = ["a", "b", "c", "x", "dir", "keep", "kiep", "tmp", "b2"];
    let mut paths: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    for _ in 0..2 {
        let longer: Vec<String> = paths
            .iter()
            .flat_map(|p| names.iter().map(move |n| format!("{p}/{n}")))
            .collect();
        paths.extend(longer);
    }
    for lines in sets {
        let m = matcher(lines);
        for dir in &paths {
            if !m.is_excluded(dir) || m.may_reinclude_under(dir) {
                continue;
            }
            let prefix = format!("{dir}/");
            for p in paths.iter().filter(|p| p.starts_with(&prefix)) {
                assert!(m.is_excluded(p), "{lines:?}: {p} kept under pruned {dir}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Which ignore file applies
// ---------------------------------------------------------------------------

#[rstest]
#[case::default_name("Dockerfile", "Dockerfile.dockerignore")]
#[case::empty_means_default("", "Dockerfile.dockerignore")]
#[case::in_subdir("docker/build.Dockerfile", "docker/build.Dockerfile.dockerignore")]
#[case::dot_slash_cleaned("./app/Dockerfile", "app/Dockerfile.dockerignore")]
#[case::leading_slash_dropped("/Dockerfile.dev", "Dockerfile.dev.dockerignore")]
#[case::lowercase_kept("dockerfile", "dockerfile.dockerignore")]
#[case::redundant_parts_cleaned("a/./b//Containerfile", "a/b/Containerfile.dockerignore")]
fn candidates(#[case] dockerfile: &str, #[case] specific: &str) {
    assert_eq!(
        ignore_file_candidates(dockerfile),
        [specific.to_owned(), ".dockerignore".to_owned()]
    );
}

// ---------------------------------------------------------------------------
// Work bound: hostile patterns stay linear in the path (counted, not timed)
// ---------------------------------------------------------------------------

/// The documented bound: `(chars + 1) × (2 × tokens + 2)`.
fn bound(path: &str, tokens: usize) -> u64 {
    (path.chars().count() as u64 + 1) * (2 * tokens as u64 + 2)
}

#[rstest]
#[case::globstars_deep_miss("**/**/**/**/**/**/a", "x", "x", 7, false)]
#[case::globstars_deep_hit("**/**/**/**/**/**/a", "x", "a", 7, true)]
#[case::globstars_between_names_miss("**/a/**/a/**/a/**/b", "a", "a", 11, false)]
#[case::globstars_between_names_hit("**/a/**/a/**/a/**/b", "a", "b", 11, true)]
#[case::globstars_in_names("a**a**a**a**a**c", "a", "a", 11, false)]
fn hostile_pattern_on_200_components(
    #[case] pattern: &str,
    #[case] filler: &str,
    #[case] last: &str,
    #[case] tokens: usize,
    #[case] expected: bool,
) {
    let mut parts = vec![filler; 199];
    parts.push(last);
    let path = parts.join("/");
    let (matched, steps) = match_steps(pattern, &path).unwrap();
    assert_eq!(matched, expected);
    assert!(
        steps <= bound(&path, tokens),
        "{steps} steps > bound {}",
        bound(&path, tokens)
    );
}

#[test]
fn hostile_stars_in_one_long_name() {
    let path = "a".repeat(2000);
    let pattern = "*a*a*a*a*a*a*a*a*a*a*b";
    let (matched, steps) = match_steps(pattern, &path).unwrap();
    assert!(!matched);
    assert!(steps <= bound(&path, 22), "{steps} steps");
}

#[test]
fn matcher_over_many_hostile_patterns_still_decides() {
    let lines = vec!["**/**/**/**/**/**/**/**/z"; 50];
    let m = matcher(&lines);
    let deep = vec!["q"; 200].join("/");
    assert!(!m.is_excluded(&deep));
    assert!(m.is_excluded(&format!("{deep}/z")));
}

// ---------------------------------------------------------------------------
// Differential check: the state-set matcher against a naive backtracking one
// ---------------------------------------------------------------------------

/// Elements of BuildKit's regular-expression reading of a pattern.
#[derive(Debug)]
enum El {
    Lit(char),
    /// `?` → `[^/]`
    One,
    /// `*` → `[^/]*`
    Run,
    /// `**` before more pattern → `(.*/)?`
    Dirs,
    /// `**` at the end → `.*`
    Tail,
}

/// Reads a pattern made only of letters, `/`, `*` and `?`; `None` when
/// BuildKit takes its suffix shortcut instead.
fn reference_program(pattern: &str) -> Option<Vec<El>> {
    let chars: Vec<char> = pattern.chars().collect();
    let (mut out, mut i, mut plain_after_lead) = (Vec::new(), 0, true);
    let lead = pattern.starts_with("**");
    while i < chars.len() {
        let at_start = i == 0;
        if chars[i] == '*' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            if chars.get(i) == Some(&'/') {
                i += 1;
            }
            out.push(if i == chars.len() { El::Tail } else { El::Dirs });
            plain_after_lead &= at_start;
            continue;
        }
        out.push(match chars[i] {
            '*' => El::Run,
            '?' => El::One,
            c => El::Lit(c),
        });
        plain_after_lead &= matches!(out.last(), Some(El::Lit(_)));
        i += 1;
    }
    (!(lead && plain_after_lead)).then_some(out)
}

fn backtrack(els: &[El], s: &[char]) -> bool {
    let Some((first, rest)) = els.split_first() else {
        return s.is_empty();
    };
    match first {
        El::Lit(c) => s.first() == Some(c) && backtrack(rest, &s[1..]),
        El::One => s.first().is_some_and(|&c| c != '/') && backtrack(rest, &s[1..]),
        El::Run => {
            let run = s.iter().take_while(|&&c| c != '/').count();
            (0..=run).any(|k| backtrack(rest, &s[k..]))
        }
        El::Dirs => {
            backtrack(rest, s) || (0..s.len()).any(|j| s[j] == '/' && backtrack(rest, &s[j + 1..]))
        }
        El::Tail => (0..=s.len()).any(|k| backtrack(rest, &s[k..])),
    }
}

fn reference_matches(pattern: &str, path: &str) -> bool {
    let hit = |p: &str| match reference_program(pattern) {
        Some(els) => backtrack(&els, &p.chars().collect::<Vec<_>>()),
        None => {
            let suffix = &pattern[2..];
            p.ends_with(suffix) || suffix.strip_prefix('/') == Some(p)
        }
    };
    path.match_indices('/').any(|(i, _)| hit(&path[..i])) || hit(path)
}

#[test]
fn state_set_matcher_agrees_with_backtracking() {
    let parts = [
        "a", "b", "*", "?", "a*", "*b", "**", "a**", "**b", "a?b", "*a*",
    ];
    let names = ["a", "b", "ab", "ba", "aab"];
    let mut paths: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    for _ in 0..2 {
        let longer: Vec<String> = paths
            .iter()
            .flat_map(|p| names.iter().map(move |n| format!("{p}/{n}")))
            .collect();
        paths.extend(longer);
    }
    // A fixed linear congruential sequence: the same patterns on every run.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize % n
    };
    for _ in 0..300 {
        let len = 1 + next(3);
        let pattern = (0..len)
            .map(|_| parts[next(parts.len())])
            .collect::<Vec<_>>();
        let pattern = pattern.join("/");
        for path in &paths {
            let (got, _) = match_steps(&pattern, path).unwrap();
            let want = reference_matches(&pattern, path);
            assert_eq!(got, want, "pattern {pattern:?}, path {path:?}");
        }
    }
}
