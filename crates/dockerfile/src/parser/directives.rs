//! Parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of the file.

use super::ast::{CheckDirective, Directives, RuleSet, SyntaxDirective};
use super::diag::{Diagnostic, Pos, Span};
use super::lines::{Physical, width};
use super::mount::go_bool;

/// Read the directives at the start of `lines`; returns how many lines they
/// take. Directives stop at the first line that is not a known directive.
pub(crate) fn read(
    lines: &[Physical<'_>],
    out: &mut Directives,
    diags: &mut Vec<Diagnostic>,
) -> usize {
    let mut seen: Vec<String> = Vec::new();
    let mut n = 0;
    for ph in lines {
        let Some((key, value)) = directive(ph.body) else {
            break;
        };
        let span = Span::new(
            Pos::new(ph.line, 1),
            Pos::new(ph.line, width(ph.body).saturating_add(1)),
        );
        n += 1;
        if seen.contains(&key) {
            diags.push(Diagnostic::error(
                "duplicate-directive",
                span,
                format!("only one {key} parser directive can be used"),
            ));
            continue;
        }
        seen.push(key.clone());
        match key.as_str() {
            "syntax" => {
                out.syntax = Some(SyntaxDirective {
                    value: value.to_owned(),
                    span,
                });
            }
            "escape" => match value {
                "\\" => out.escape = '\\',
                "`" => out.escape = '`',
                _ => diags.push(Diagnostic::error(
                    "invalid-directive",
                    span,
                    format!("invalid escape directive value {value:?}: expected \\ or `"),
                )),
            },
            _ => match parse_check(value) {
                Ok(c) => out.check = Some(c),
                Err(m) => diags.push(Diagnostic::error("invalid-directive", span, m)),
            },
        }
    }
    n
}

/// `# key=value` with a known key (case-insensitive) → (lowercase key, value).
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let key = rest[..key_len].to_ascii_lowercase();
    let value = rest[key_len..]
        .trim_start_matches(is_re_space)
        .strip_prefix('=')?
        .trim_start_matches(is_re_space)
        .trim_end_matches(is_re_space);
    if value.is_empty() || !matches!(key.as_str(), "syntax" | "escape" | "check") {
        return None;
    }
    Some((key, value))
}

/// RE2's `\s`.
fn is_re_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r')
}

/// `skip=a,b|all;error=bool;experimental=a,b|all`.
fn parse_check(v: &str) -> Result<CheckDirective, String> {
    let mut c = CheckDirective::default();
    let v = v.trim();
    if v.is_empty() {
        return Ok(c);
    }
    for part in v.splitn(3, ';') {
        let Some((k, val)) = part.split_once('=') else {
            return Err(format!(
                "invalid check directive option {part:?}: expected key=value"
            ));
        };
        let val = val.trim();
        let rules = || {
            if val == "all" {
                RuleSet::All
            } else {
                RuleSet::Rules(val.split(',').map(|r| r.trim().to_owned()).collect())
            }
        };
        match k.trim() {
            "skip" => c.skip = rules(),
            "experimental" => c.experimental = rules(),
            "error" => {
                c.error = go_bool(val).ok_or_else(|| {
                    format!("invalid check directive option {part:?}: error must be true or false")
                })?;
            }
            k => return Err(format!("invalid check directive option {k:?}")),
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("# syntax=docker/dockerfile:1", Some(("syntax", "docker/dockerfile:1")))]
    #[case::spaces("#  Escape =  `  ", Some(("escape", "`")))]
    #[case::unknown("# foo=bar", None)]
    #[case::no_value("# escape=", None)]
    #[case::not_comment("escape=`", None)]
    #[case::digit_start("# 1syntax=x", None)]
    fn directives(#[case] line: &str, #[case] want: Option<(&str, &str)>) {
        let got = directive(line);
        assert_eq!(got.as_ref().map(|(k, v)| (k.as_str(), *v)), want);
    }

    #[test]
    fn check_options() {
        let c = parse_check("skip=A, B;error=true").unwrap();
        assert_eq!(c.skip, RuleSet::Rules(vec!["A".into(), "B".into()]));
        assert!(c.error);
        assert_eq!(parse_check("skip=all").unwrap().skip, RuleSet::All);
        assert!(parse_check("error=maybe").is_err());
        assert!(parse_check("nope").is_err());
    }
}
