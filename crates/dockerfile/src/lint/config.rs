//! Which rules run: `skip=<rules|all>;error=<bool>;experimental=<rules|all>`,
//! from the `# check=` directive or the `BUILDKIT_DOCKERFILE_CHECK` build arg.

use std::collections::BTreeSet;

use super::Rule;
use crate::parser::{CheckDirective, RuleSet};

/// A parsed check configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckConfig {
    pub skip_all: bool,
    /// Rule names as written (unknown names are kept and ignored).
    pub skip: BTreeSet<String>,
    pub experimental_all: bool,
    pub experimental: BTreeSet<String>,
    /// Fail the build when there is any warning.
    pub error: bool,
}

/// Why a check configuration string is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckConfigError {
    #[error("invalid check option {0:?}: expected key=value")]
    MissingEquals(String),
    #[error("unknown check option {0:?}: expected skip, error or experimental")]
    UnknownOption(String),
    #[error("invalid check option {0:?}: error must be true or false")]
    InvalidBool(String),
}

impl CheckConfig {
    /// Parse `skip=a,b|all;error=bool;experimental=a,b|all` (any part may be
    /// left out; an empty string is the default configuration).
    pub fn parse(s: &str) -> Result<CheckConfig, CheckConfigError> {
        let mut c = CheckConfig::default();
        let s = s.trim();
        if s.is_empty() {
            return Ok(c);
        }
        for part in s.splitn(3, ';') {
            let Some((k, v)) = part.split_once('=') else {
                return Err(CheckConfigError::MissingEquals(part.to_owned()));
            };
            let v = v.trim();
            match k.trim() {
                "skip" => (c.skip_all, c.skip) = rule_list(v),
                "experimental" => (c.experimental_all, c.experimental) = rule_list(v),
                "error" => {
                    c.error =
                        go_bool(v).ok_or_else(|| CheckConfigError::InvalidBool(part.to_owned()))?;
                }
                k => return Err(CheckConfigError::UnknownOption(k.to_owned())),
            }
        }
        Ok(c)
    }

    /// The configuration of a parsed `# check=` directive.
    pub fn from_directive(d: &CheckDirective) -> CheckConfig {
        let (skip_all, skip) = rule_set(&d.skip);
        let (experimental_all, experimental) = rule_set(&d.experimental);
        CheckConfig {
            skip_all,
            skip,
            experimental_all,
            experimental,
            error: d.error,
        }
    }

    /// Whether warnings of `rule` are reported.
    pub fn enabled(&self, rule: Rule) -> bool {
        if rule.is_experimental() {
            self.experimental_all || self.experimental.contains(rule.name())
        } else {
            !(self.skip_all || self.skip.contains(rule.name()))
        }
    }

    /// This configuration with `other`'s skipped and experimental rules
    /// added (`error` stays).
    pub fn merged(&self, other: &CheckConfig) -> CheckConfig {
        let mut c = self.clone();
        c.skip_all |= other.skip_all;
        c.experimental_all |= other.experimental_all;
        c.skip.extend(other.skip.iter().cloned());
        c.experimental.extend(other.experimental.iter().cloned());
        c
    }
}

/// A comment (without `#`) of the form `check=<config>`: its configuration.
/// Like BuildKit, the value ends at the first space.
pub(super) fn comment_config(comment: &str) -> Option<Result<CheckConfig, CheckConfigError>> {
    let rest = comment.trim_start();
    let key = rest.get(..5)?;
    if !key.eq_ignore_ascii_case("check") {
        return None;
    }
    let value = rest[5..].trim_start().strip_prefix('=')?.trim();
    let value = value.split(' ').next().unwrap_or_default();
    Some(CheckConfig::parse(value))
}

fn rule_list(v: &str) -> (bool, BTreeSet<String>) {
    if v == "all" {
        return (true, BTreeSet::new());
    }
    (false, v.split(',').map(|r| r.trim().to_owned()).collect())
}

fn rule_set(r: &RuleSet) -> (bool, BTreeSet<String>) {
    match r {
        RuleSet::All => (true, BTreeSet::new()),
        RuleSet::Rules(v) => (false, v.iter().cloned().collect()),
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::empty("", false, &[], false)]
    #[case::skip_two("skip=A, B", false, &["A", "B"], false)]
    #[case::skip_all_error("skip=all;error=true", true, &[], true)]
    #[case::error_go_bool("error=T", false, &[], true)]
    #[case::spaces(" skip = X ; error = 0 ", false, &["X"], false)]
    fn parses(#[case] s: &str, #[case] all: bool, #[case] skip: &[&str], #[case] error: bool) {
        let c = CheckConfig::parse(s).unwrap();
        assert_eq!(c.skip_all, all);
        assert_eq!(c.skip, skip.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(c.error, error);
    }

    #[rstest]
    #[case::no_equals("skip", CheckConfigError::MissingEquals("skip".into()))]
    #[case::unknown("foo=bar", CheckConfigError::UnknownOption("foo".into()))]
    #[case::bad_bool("error=maybe", CheckConfigError::InvalidBool("error=maybe".into()))]
    fn rejects(#[case] s: &str, #[case] want: CheckConfigError) {
        assert_eq!(CheckConfig::parse(s), Err(want));
    }

    #[rstest]
    #[case::stable_on(Rule::UndefinedVar, "", true)]
    #[case::stable_skipped(Rule::UndefinedVar, "skip=UndefinedVar", false)]
    #[case::stable_skip_all(Rule::UndefinedVar, "skip=all", false)]
    #[case::experimental_off(Rule::InvalidDefinitionDescription, "", false)]
    #[case::experimental_named(
        Rule::InvalidDefinitionDescription,
        "skip=all;experimental=InvalidDefinitionDescription",
        true
    )]
    #[case::experimental_all(Rule::InvalidDefinitionDescription, "experimental=all", true)]
    fn enabled(#[case] rule: Rule, #[case] cfg: &str, #[case] want: bool) {
        assert_eq!(CheckConfig::parse(cfg).unwrap().enabled(rule), want);
    }

    #[rstest]
    #[case::plain("check=skip=A", Some(true))]
    #[case::spaced("Check = skip=A trailing words", Some(true))]
    #[case::bad("check=nope", Some(false))]
    #[case::other("checkout the code", None)]
    #[case::short("chk", None)]
    fn comments(#[case] c: &str, #[case] want: Option<bool>) {
        assert_eq!(comment_config(c).map(|r| r.is_ok()), want);
    }
}
