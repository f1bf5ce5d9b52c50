//! Word expansion cases: BuildKit's shell lexer semantics, one row per case.

use dockerfile::expand::{ExpandError, Lexer};
use rstest::rstest;

type Env = &'static [(&'static str, &'static str)];

const NONE: Env = &[];
const STD: Env = &[
    ("v", "abc"),
    ("e", ""),
    ("sp", "a  b"),
    ("path", "/usr/local/bin"),
    ("file", "archive.tar.gz"),
    ("star", "*"),
    ("nl", "x\ny"),
    ("rep", "aXbaXb"),
    ("pct", "%a"),
    ("bs", "a\\"),
];

fn word(input: &str, env: Env) -> Result<String, ExpandError> {
    Lexer::new('\\').process_word(input, &env).map(|e| e.value)
}

#[rstest]
// plain references
#[case::dollar_name("$v", STD, "abc")]
#[case::braced_name("${v}", STD, "abc")]
#[case::name_stops_at_dash("$v-x", STD, "abc-x")]
#[case::name_takes_underscore_and_digits("$v_1", STD, "")]
#[case::braced_then_text("${v}_1", STD, "abc_1")]
#[case::unset_is_empty("a${nope}b", STD, "ab")]
#[case::set_empty("[$e]", STD, "[]")]
#[case::lone_dollar("$", STD, "$")]
#[case::dollar_space("a $ b", STD, "a $ b")]
#[case::dollar_punct("$.$/", STD, "$.$/")]
#[case::double_dollar_is_a_name("$$", STD, "")]
#[case::digit_param("$1x", STD, "x")]
#[case::digits_read_together("$12", &[("12", "twelve")], "twelve")]
#[case::special_at("$@", &[("@", "all")], "all")]
#[case::special_hash("${#}", &[("#", "3")], "3")]
#[case::unicode_name("$é!", &[("é", "acc")], "acc!")]
#[case::value_not_rescanned("$star$v", &[("star", "$v"), ("v", "x")], "$vx")]
#[case::dollar_then_quote("$'v'", STD, "$v")]
// defaults and alternatives
#[case::default_unset("${nope:-d}", STD, "d")]
#[case::default_empty_colon("${e:-d}", STD, "d")]
#[case::default_empty_no_colon("${e-d}", STD, "")]
#[case::default_unset_no_colon("${nope-d}", STD, "d")]
#[case::default_set("${v:-d}", STD, "abc")]
#[case::alt_set("${v:+yes}", STD, "yes")]
#[case::alt_empty_colon("${e:+yes}", STD, "")]
#[case::alt_empty_no_colon("${e+yes}", STD, "yes")]
#[case::alt_unset("${nope+yes}", STD, "")]
#[case::required_set("${v:?boom}", STD, "abc")]
#[case::required_empty_no_colon("[${e?boom}]", STD, "[]")]
#[case::nested_default("${a:-${b:-c}}", STD, "c")]
#[case::nested_default_set("${a:-${v:-c}}", STD, "abc")]
#[case::default_with_spaces("${nope:-a b  c}", STD, "a b  c")]
#[case::default_quoted_brace("${nope:-'}'}", STD, "}")]
#[case::default_escaped_brace("${nope:-a\\}b}", STD, "a}b")]
#[case::default_double_quoted("${nope:-\"$v x\"}", STD, "abc x")]
#[case::default_stops_at_first_brace("${nope:-a}b}", STD, "ab}")]
// prefix and suffix removal
#[case::prefix_shortest("${file#*.}", STD, "tar.gz")]
#[case::prefix_longest("${file##*.}", STD, "gz")]
#[case::suffix_shortest("${file%.*}", STD, "archive.tar")]
#[case::suffix_longest("${file%%.*}", STD, "archive")]
#[case::prefix_no_match("${v#x}", STD, "abc")]
#[case::prefix_literal("${path#/usr}", STD, "/local/bin")]
#[case::question_one_char("${v#?}", STD, "bc")]
#[case::escaped_star_literal("${star#\\*}", STD, "")]
#[case::brackets_are_literal("${x#[a]}", &[("x", "[a]b")], "b")]
#[case::bracket_not_a_class("${x#[a]}", &[("x", "ab")], "ab")]
#[case::star_stops_at_newline("${nl##*}", STD, "\ny")]
#[case::lazy_star_matches_empty("${nl#*}", STD, "x\ny")]
#[case::longest_suffix_newline("${nl%%*}", STD, "x\n")]
#[case::pattern_from_variable("${v#$star}", STD, "abc")]
#[case::greedy_from_expanded_word("${rep%$pct}", STD, "aXbaXb")]
#[case::quoted_star_still_glob("${v#\"*\"}", STD, "abc")]
#[case::unset_trim_is_empty("${nope%%*}", STD, "")]
#[case::suffix_multibyte("${x%ü*}", &[("x", "aüb")], "a")]
// replacement
#[case::replace_first("${rep/X/-}", STD, "a-baXb")]
#[case::replace_all("${rep//X/-}", STD, "a-ba-b")]
#[case::replace_greedy_star("${rep/a*b/_}", STD, "_")]
#[case::replace_empty_replacement("${rep//X/}", STD, "abab")]
#[case::replace_empty_pattern_all("${v///-}", STD, "-a-b-c-")]
#[case::replace_empty_pattern_first("${v/''/-}", STD, "-abc")]
#[case::replace_star_on_unset("${nope/*/x}", STD, "x")]
#[case::replace_all_star_per_line("${nl//*/L}", STD, "L\nL")]
#[case::replace_group_zero("${v//?/'<$0>'}", STD, "<a><b><c>")]
#[case::replace_first_is_literal("${v/b/'$0'}", STD, "a$0c")]
#[case::replace_escaped_slash("${path//\\//:}", STD, ":usr:local:bin")]
#[case::replacement_keeps_escape("${v/b/\\/}", STD, "a\\/c")]
#[case::replacement_expands("${v/b/$v}", STD, "aabcc")]
// quotes and escapes
#[case::single_quotes_literal("'$v ${v}'", STD, "$v ${v}")]
#[case::double_quotes_expand("\"$v ${v}\"", STD, "abc abc")]
#[case::adjacent_quotes_join("a'b'\"c\"d", STD, "abcd")]
#[case::escaped_dollar("\\$v", STD, "$v")]
#[case::escaped_escape("\\\\$v", STD, "\\abc")]
#[case::escape_any_char("\\a\\ b", STD, "a b")]
#[case::trailing_escape_dropped("ab\\", STD, "ab")]
#[case::dq_escape_dollar("\"\\$v\"", STD, "$v")]
#[case::dq_escape_quote("\"a\\\"b\"", STD, "a\"b")]
#[case::dq_escape_escape("\"a\\\\b\"", STD, "a\\b")]
#[case::dq_other_escape_kept("\"a\\tb\"", STD, "a\\tb")]
#[case::sq_escape_kept("'a\\'", STD, "a\\")]
#[case::dq_keeps_single_quote("\"it's\"", STD, "it's")]
#[case::heredoc_marker_kept("<<  EOF", STD, "<<  EOF")]
#[case::leading_bom_dropped("\u{feff}$v", STD, "abc")]
fn expands(#[case] input: &str, #[case] env: Env, #[case] expected: &str) {
    assert_eq!(word(input, env).as_deref(), Ok(expected), "input {input:?}");
}

#[rstest]
#[case::empty_braces("${}", NONE, "BadSubstitution", "syntax error: bad substitution")]
#[case::colon_first("${:-x}", NONE, "BadSubstitution", "syntax error: bad substitution")]
#[case::brace_first("${{v}}", NONE, "BadSubstitution", "syntax error: bad substitution")]
#[case::nested_bad("${a:-${}}", NONE, "BadSubstitution", "syntax error: bad substitution")]
#[case::open_at_end("a${", NONE, "UnterminatedBrace", "syntax error: missing '}'")]
#[case::default_unclosed("${v:-abc", STD, "UnterminatedBrace", "syntax error: missing '}'")]
#[case::quote_in_unclosed("${v:-\"x}", STD, "UnterminatedBrace", "syntax error: missing '}'")]
#[case::escaped_close("${v:-x\\}", STD, "UnterminatedBrace", "syntax error: missing '}'")]
#[case::required_in_unclosed("${a:-${b?}", NONE, "UnterminatedBrace", "syntax error: missing '}'")]
#[case::replace_no_slash("${v/abc}", STD, "MissingSlash", "syntax error: missing '/' in ${}")]
#[case::replace_all_no_slash("${v//}", STD, "MissingSlash", "syntax error: missing '/' in ${}")]
#[case::replace_needs_replacement(
    "${v/b}",
    STD,
    "MissingSlash",
    "syntax error: missing '/' in ${}"
)]
#[case::replace_unclosed("${v/a/b", STD, "UnterminatedBrace", "syntax error: missing '}'")]
#[case::name_then_end(
    "${abc",
    NONE,
    "UnsupportedModifier",
    "unsupported modifier (\u{fffd}) in substitution"
)]
#[case::dot_modifier(
    "${a.b}",
    NONE,
    "UnsupportedModifier",
    "unsupported modifier (.) in substitution"
)]
#[case::space_modifier(
    "${a b}",
    NONE,
    "UnsupportedModifier",
    "unsupported modifier ( ) in substitution"
)]
#[case::colon_hash(
    "${v:#a}",
    STD,
    "UnsupportedModifier",
    "unsupported modifier (:#) in substitution"
)]
#[case::colon_percent(
    "${v:%a}",
    STD,
    "UnsupportedModifier",
    "unsupported modifier (:%) in substitution"
)]
#[case::colon_slash(
    "${v:/a/b}",
    STD,
    "UnsupportedModifier",
    "unsupported modifier (:/) in substitution"
)]
#[case::colon_letter(
    "${v:x}",
    STD,
    "UnsupportedModifier",
    "unsupported modifier (:x) in substitution"
)]
#[case::special_then_letter(
    "${#v}",
    STD,
    "UnsupportedModifier",
    "unsupported modifier (v) in substitution"
)]
#[case::unterminated_single(
    "a'bc",
    NONE,
    "UnterminatedQuote",
    "unexpected end of statement while looking for matching single-quote"
)]
#[case::unterminated_double(
    "\"abc",
    NONE,
    "UnterminatedQuote",
    "unexpected end of statement while looking for matching double-quote"
)]
#[case::double_trailing_escape(
    "\"abc\\",
    NONE,
    "UnterminatedQuote",
    "unexpected end of statement while looking for matching double-quote"
)]
#[case::required_unset_default(
    "${nope?}",
    STD,
    "MissingRequired",
    "nope: is not allowed to be unset"
)]
#[case::required_empty_default("${e:?}", STD, "MissingRequired", "e: is not allowed to be empty")]
#[case::required_unset_colon(
    "${nope:?}",
    STD,
    "MissingRequired",
    "nope: is not allowed to be unset"
)]
#[case::required_message("${nope:?need $v here}", STD, "MissingRequired", "nope: need abc here")]
#[case::required_nested("${a:-${nope?gone}}x", STD, "MissingRequired", "nope: gone")]
#[case::bad_pattern_escape(
    "${v#\\x}",
    STD,
    "InvalidPattern",
    "invalid pattern (\\x) in substitution: invalid escape '\\x'"
)]
#[case::bad_pattern_trailing(
    "${v#$bs}",
    STD,
    "InvalidPattern",
    "invalid pattern (a\\) in substitution: invalid escape '\\\u{fffd}'"
)]
#[case::bad_suffix_pattern_reversed(
    "${v%$bs}",
    STD,
    "InvalidPattern",
    "invalid pattern (\\a) in substitution: invalid escape '\\a'"
)]
#[case::bad_replace_pattern(
    "${v/\\a/b}",
    STD,
    "InvalidPattern",
    "invalid pattern (\\a) in substitution: invalid escape '\\a'"
)]
fn fails(#[case] input: &str, #[case] env: Env, #[case] variant: &str, #[case] message: &str) {
    let err = word(input, env).expect_err(input);
    let debug = format!("{err:?}");
    assert!(
        debug.starts_with(&format!("{variant} {{")),
        "{input:?}: {debug}"
    );
    assert_eq!(
        err.to_string(),
        format!("failed to process {input:?}: {message}")
    );
}

#[test]
fn errors_carry_their_fields() {
    let err = word("${nope:?missing it}", STD).unwrap_err();
    assert_eq!(
        err,
        ExpandError::MissingRequired {
            word: "${nope:?missing it}".to_owned(),
            name: "nope".to_owned(),
            message: "missing it".to_owned(),
        }
    );
    let err = word("'x", NONE).unwrap_err();
    assert_eq!(
        err,
        ExpandError::UnterminatedQuote {
            word: "'x".to_owned(),
            quote: '\'',
        }
    );
}

#[rstest]
#[case::simple("a b  c", STD, &["a", "b", "c"])]
#[case::leading_trailing_space("  a  ", STD, &["a"])]
#[case::empty_input("", STD, &[])]
#[case::only_spaces(" \t ", STD, &[])]
#[case::quoted_space_kept("'a b' \"c  d\"", STD, &["a b", "c  d"])]
#[case::escaped_space_kept("a\\ b c", STD, &["a b", "c"])]
#[case::adjacent_quotes_join("a'b c'\"d\"e f", STD, &["ab cde", "f"])]
#[case::empty_quotes_dropped("a '' \"\" b", STD, &["a", "b"])]
#[case::only_empty_quotes("\"\"", STD, &[])]
#[case::empty_quotes_join("x\"\"y", STD, &["xy"])]
#[case::unquoted_value_splits("[$sp]", STD, &["[a", "b]"])]
#[case::quoted_value_kept("\"[$sp]\"", STD, &["[a  b]"])]
#[case::braced_value_splits("x${sp}y", STD, &["xa", "by"])]
#[case::newline_separates("a\nb", STD, &["a", "b"])]
#[case::text_before_modifier_lost("pre${nope:-x} y", STD, &["x", "y"])]
#[case::text_before_quoted_modifier_lost("pre\"${v#a}\"", STD, &["bc"])]
#[case::default_value_splits("${nope:-a b}", STD, &["a", "b"])]
#[case::heredoc_keeps_space("cat << EOF", STD, &["cat", "<< EOF"])]
#[case::nbsp_is_space("a\u{a0}b", STD, &["a", "b"])]
fn splits(#[case] input: &str, #[case] env: Env, #[case] expected: &[&str]) {
    let words = Lexer::new('\\').process_words(input, &env).expect(input);
    assert_eq!(words, expected, "input {input:?}");
}

#[test]
fn split_errors_like_word() {
    let err = Lexer::new('\\').process_words("a 'b", &NONE).unwrap_err();
    assert!(matches!(
        err,
        ExpandError::UnterminatedQuote { quote: '\'', .. }
    ));
}

/// `flags`: `` ` `` backtick escape, `q` raw quotes, `e` raw escapes,
/// `s` skip unset, `p` skip quote processing.
#[rstest]
#[case::backtick_escapes_dollar("`", "`$v", "$v")]
#[case::backtick_backslash_literal("`", "C:\\dir\\$v", "C:\\dir\\abc")]
#[case::backtick_in_double_quotes("`", "\"`\"x`$v\"", "\"x$v")]
#[case::backtick_other_kept("`", "\"a`b\"", "a`b")]
#[case::raw_quotes("q", "'$v' \"$v\"", "'$v' \"abc\"")]
#[case::raw_escapes("e", "\\$v \\a", "\\$v \\a")]
#[case::raw_escapes_in_quotes("e", "\"\\$v \\a\"", "\\$v \\\\a")]
#[case::skip_unset_plain("s", "$nope ${nope} $v", "$nope ${nope} abc")]
#[case::skip_unset_default("s", "${nope:-$v}", "${nope:-abc}")]
#[case::skip_unset_replace_all_loses_slash("s", "${nope//a/b}", "${nope/a/b}")]
#[case::skip_unset_set_empty("s", "[${e:-d}]", "[d]")]
#[case::skip_quotes("p", "'$v' \"x\"", "'abc' \"x\"")]
fn with_flags(#[case] flags: &str, #[case] input: &str, #[case] expected: &str) {
    let escape = if flags.contains('`') { '`' } else { '\\' };
    let lexer = Lexer::new(escape)
        .with_raw_quotes(flags.contains('q'))
        .with_raw_escapes(flags.contains('e'))
        .with_skip_unset_env(flags.contains('s'))
        .with_skip_process_quotes(flags.contains('p'));
    let got = lexer.process_word(input, &STD).map(|e| e.value);
    assert_eq!(got.as_deref(), Ok(expected), "input {input:?}");
}

#[rstest]
#[case::plain("$v $nope", &["v"], &["nope"])]
#[case::default_looks_up_both("${v:-$other}", &["v"], &["other"])]
#[case::quoted_skipped("'$v' \\$nope", &[], &[])]
#[case::specials_recorded("$$ $1 ${e}", &["e"], &["$", "1"])]
#[case::replace_looks_up_all("${nope/$v/$e}", &["e", "v"], &["nope"])]
fn reports_names(#[case] input: &str, #[case] matched: &[&str], #[case] unmatched: &[&str]) {
    let got = Lexer::new('\\').process_word(input, &STD).expect(input);
    assert_eq!(got.matched.iter().collect::<Vec<_>>(), matched);
    assert_eq!(got.unmatched.iter().collect::<Vec<_>>(), unmatched);
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    let depth = 10_000;
    let input = format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    let err = word(&input, NONE).unwrap_err();
    assert!(
        matches!(err, ExpandError::TooDeep { limit: 64, .. }),
        "{err:?}"
    );

    let ok = format!("{}x{}", "${a:-".repeat(64), "}".repeat(64));
    assert_eq!(word(&ok, NONE).as_deref(), Ok("x"));
    let deep = format!("{}x{}", "${a:-".repeat(65), "}".repeat(65));
    assert!(matches!(
        word(&deep, NONE),
        Err(ExpandError::TooDeep { .. })
    ));
}

#[test]
fn exponential_growth_is_refused() {
    // Each level doubles: ${v//?/$v$v} squares the length, nested it explodes.
    let mut input = "$v".to_owned();
    for _ in 0..12 {
        input = format!("${{v//?/{input}{input}}}");
    }
    let err = Lexer::new('\\')
        .process_word(&input, &[("v", "0123456789")])
        .unwrap_err();
    assert!(
        matches!(err, ExpandError::TooLong { limit, .. } if limit == 1 << 20),
        "{err:?}"
    );
}

#[test]
fn length_limit_applies_to_plain_concatenation() {
    let lexer = Lexer::new('\\').with_max_len(8);
    assert_eq!(
        lexer.process_word("$v$v", &STD).map(|e| e.value).as_deref(),
        Ok("abcabc")
    );
    let err = lexer.process_word("$v$v$v", &STD).unwrap_err();
    assert_eq!(
        err,
        ExpandError::TooLong {
            word: "$v$v$v".to_owned(),
            limit: 8,
        }
    );
}

#[test]
fn quadratic_matching_is_refused() {
    let value = "a".repeat(3_000);
    let pattern = format!("'{}b'", "?".repeat(300));
    let input = format!("${{v//{pattern}/x}}");
    let env = [("v", value.as_str())];
    let lexer = Lexer::new('\\').with_max_steps(100_000);
    let err = lexer.process_word(&input, &env).unwrap_err();
    assert!(
        matches!(err, ExpandError::TooComplex { limit: 100_000, .. }),
        "{err:?}"
    );
    // The same work fits the default budget.
    let ok = Lexer::new('\\').process_word(&input, &env).unwrap();
    assert_eq!(ok.value, value);
}

#[test]
fn envs_last_definition_wins() {
    let list = vec![
        ("v".to_owned(), "1".to_owned()),
        ("v".to_owned(), "2".to_owned()),
    ];
    assert_eq!(
        Lexer::new('\\').process_word("$v", &list).unwrap().value,
        "2"
    );
    let map: std::collections::BTreeMap<String, String> = list.into_iter().collect();
    assert_eq!(
        Lexer::new('\\').process_word("$v", &map).unwrap().value,
        "2"
    );
}
