//! Instruction flags (`--name[=value]`) with BuildKit's semantics, and the
//! value validators shared by several instructions.

use super::ast::{Chmod, Flag};
use super::diag::Diagnostic;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--link`, `--link=true|false`.
    Bool,
    /// `--from=x`, at most once.
    Str,
    /// `--mount=x`, repeatable.
    Strs,
}

/// The flags of one instruction, checked against what it accepts.
#[derive(Debug, Default)]
pub(crate) struct FlagSet<'a> {
    used: Vec<(&'static str, &'a Flag)>,
}

/// Check `flags` against `spec`, reporting unknown, duplicate and malformed
/// flags. Bad flags are left out of the result.
pub(crate) fn check<'a>(
    flags: &'a [Flag],
    spec: &[(&'static str, Kind)],
    instruction: &str,
    diags: &mut Vec<Diagnostic>,
) -> FlagSet<'a> {
    let mut set = FlagSet::default();
    for flag in flags {
        let Some(&(name, kind)) = spec.iter().find(|(n, _)| *n == flag.name) else {
            diags.push(Diagnostic::error(
                "unknown-flag",
                flag.span,
                unknown_message(&flag.name, spec, instruction),
            ));
            continue;
        };
        if kind != Kind::Strs && set.used.iter().any(|(n, _)| *n == name) {
            diags.push(Diagnostic::error(
                "duplicate-flag",
                flag.span,
                format!("duplicate flag --{name} for {instruction}"),
            ));
            continue;
        }
        match (kind, flag.value.as_deref()) {
            (Kind::Bool, Some("")) | (Kind::Str | Kind::Strs, None) => {
                diags.push(Diagnostic::error(
                    "missing-flag-value",
                    flag.span,
                    format!("missing a value on flag --{name}"),
                ));
                continue;
            }
            (Kind::Bool, Some(v))
                if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
            {
                diags.push(Diagnostic::error(
                    "invalid-flag-value",
                    flag.span,
                    format!("expecting a boolean value for flag --{name}, not {v:?}"),
                ));
                continue;
            }
            _ => {}
        }
        set.used.push((name, flag));
    }
    set
}

fn unknown_message(name: &str, spec: &[(&'static str, Kind)], instruction: &str) -> String {
    if spec.is_empty() {
        return format!("unknown flag --{name}: {instruction} takes no flags");
    }
    let best = spec
        .iter()
        .map(|(n, _)| (edit_distance(name, n), *n))
        .min()
        .filter(|(d, _)| *d <= 2);
    match best {
        Some((_, n)) => format!("unknown flag --{name} for {instruction} (did you mean --{n}?)"),
        None => format!("unknown flag --{name} for {instruction}"),
    }
}

/// Levenshtein distance, for suggestions (inputs are short: names are capped).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl<'a> FlagSet<'a> {
    /// The single flag `name`, if given.
    pub fn flag(&self, name: &str) -> Option<&'a Flag> {
        self.used.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// The value of string flag `name`.
    pub fn string(&self, name: &str) -> Option<String> {
        self.flag(name).and_then(|f| f.value.clone())
    }

    /// The value of boolean flag `name`, if given.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.flag(name).map(|f| match &f.value {
            None => true,
            Some(v) => v.eq_ignore_ascii_case("true"),
        })
    }

    /// Every occurrence of repeatable flag `name`.
    pub fn all(&self, name: &str) -> Vec<&'a Flag> {
        self.used
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .collect()
    }
}

/// Decode a `--chmod` value: octal up to `07777`, symbolic (`u+x`,
/// `u=rwX,go=rX`), or unexpanded when it holds a variable.
pub(crate) fn parse_chmod(v: &str) -> Result<Chmod, String> {
    if v.contains('$') {
        return Ok(Chmod::Unexpanded(v.to_owned()));
    }
    let bad_octal =
        || format!("invalid --chmod value {v:?}: it should be an octal number between 0 and 07777");
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return match u32::from_str_radix(v, 8) {
            Ok(m) if m <= 0o7777 => Ok(Chmod::Octal(m)),
            _ => Err(bad_octal()),
        };
    }
    if is_symbolic_mode(v) {
        Ok(Chmod::Symbolic(v.to_owned()))
    } else {
        Err(format!(
            "invalid --chmod value {v:?}: expected an octal number or a symbolic mode like u+x or u=rwX,go=rX"
        ))
    }
}

/// chmod(1) symbolic mode: `clause[,clause...]`, clause = `[ugoa]*` followed by
/// one or more `[-+=]` each with `[rwxXst]*` or one of `[ugo]`.
fn is_symbolic_mode(v: &str) -> bool {
    !v.is_empty()
        && v.split(',').all(|clause| {
            let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
            if rest.is_empty() {
                return false;
            }
            let mut chars = rest.chars().peekable();
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return false;
                }
                if chars.next_if(|c| matches!(c, 'u' | 'g' | 'o')).is_some() {
                    continue;
                }
                while chars
                    .next_if(|c| matches!(c, 'r' | 'w' | 'x' | 'X' | 's' | 't'))
                    .is_some()
                {}
            }
            true
        })
}

/// Parse a Go duration (`300ms`, `1h30m`, `-1.5s`, `0`) into nanoseconds.
pub(crate) fn go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    let mut exact: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        exact = exact.checked_add(int.checked_mul(unit)?)?;
        if !frac.is_empty() {
            let f: f64 = format!("0.{frac}").parse().ok()?;
            total += f * unit as f64;
        }
        if exact > i128::from(i64::MAX) {
            return None;
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    let n = exact + total as i128;
    if n > i128::from(i64::MAX) {
        return None;
    }
    Some(if neg { -n } else { n })
}

/// Go's `strconv.ParseInt(s, 10, 32)`.
pub(crate) fn go_int32(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.strip_prefix('+').unwrap_or(s).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::zero("0", Some(0))]
    #[case::seconds("30s", Some(30_000_000_000))]
    #[case::compound("1m30s", Some(90_000_000_000))]
    #[case::fraction("1.5h", Some(5_400_000_000_000))]
    #[case::micro("10\u{b5}s", Some(10_000))]
    #[case::negative("-1s", Some(-1_000_000_000))]
    #[case::no_unit("10", None)]
    #[case::bad_unit("10d", None)]
    #[case::empty("", None)]
    #[case::dot_only(".s", None)]
    #[case::overflow("9999999999999h", None)]
    fn durations(#[case] s: &str, #[case] want: Option<i128>) {
        assert_eq!(go_duration(s), want);
    }

    #[rstest]
    #[case::octal("755", Ok(Chmod::Octal(0o755)))]
    #[case::max("7777", Ok(Chmod::Octal(0o7777)))]
    #[case::plus_x("+x", Ok(Chmod::Symbolic("+x".into())))]
    #[case::clauses("u=rwX,go=rX", Ok(Chmod::Symbolic("u=rwX,go=rX".into())))]
    #[case::copy_perm("g=u", Ok(Chmod::Symbolic("g=u".into())))]
    #[case::var("$MODE", Ok(Chmod::Unexpanded("$MODE".into())))]
    fn chmod_ok(#[case] v: &str, #[case] want: Result<Chmod, String>) {
        assert_eq!(parse_chmod(v), want);
    }

    #[rstest]
    #[case::too_big("17777")]
    #[case::not_octal("9999")]
    #[case::eight("8")]
    #[case::who_only("u")]
    #[case::bad_perm("u+z")]
    #[case::empty_clause("u+x,")]
    #[case::empty("")]
    fn chmod_bad(#[case] v: &str) {
        assert!(parse_chmod(v).is_err(), "{v}");
    }

    #[rstest]
    #[case::plain("3", Some(3))]
    #[case::plus("+3", Some(3))]
    #[case::negative("-3", Some(-3))]
    #[case::too_big("3000000000", None)]
    #[case::junk("3x", None)]
    fn int32(#[case] s: &str, #[case] want: Option<i32>) {
        assert_eq!(go_int32(s), want);
    }
}
