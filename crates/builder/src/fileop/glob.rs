//! Wildcard sources: Go's `filepath.Match` per path component, resolved against a
//! tree in-root, as fsutil's `ResolveWildcards`.

use archive::{CleanPath, Root};
use ignore::Matcher;

use super::{Ctx, FileOpError};

/// Whether `comp` holds a wildcard character (Go's `hasMeta` on Unix).
pub(super) fn has_meta(comp: &[u8]) -> bool {
    comp.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

/// The paths of `tree` that `pattern` matches, sorted per directory, leaving out
/// what `exclude` hides. A pattern without wildcards names one path, returned only if
/// it exists.
pub(super) fn resolve(
    ctx: &Ctx<'_>,
    tree: &Root,
    pattern: &CleanPath,
    exclude: Option<&Matcher>,
) -> Result<Vec<CleanPath>, FileOpError> {
    let fs = |e| ctx.fs(e);
    let mut found = vec![CleanPath::default()];
    for comp in pattern.components() {
        let mut next = Vec::new();
        for base in found {
            if !has_meta(comp) {
                next.push(base.join(comp));
                continue;
            }
            // Validate the pattern even when there is nothing to match it against.
            matches(comp, b"").map_err(|()| FileOpError::BadPattern {
                action: ctx.action.clone(),
                pattern: String::from_utf8_lossy(&pattern.to_bytes()).into_owned(),
            })?;
            if tree.open_dir(&base).is_err() {
                continue;
            }
            for name in tree.read_dir(&base).map_err(fs)? {
                if matches(comp, &name) == Ok(true) {
                    next.push(base.join(&name));
                }
            }
        }
        found = next;
    }
    let mut out = Vec::new();
    for p in found {
        if tree.lstat(&p).map_err(fs)?.is_some() && !excluded(exclude, &p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Whether `.dockerignore` (or another matcher) hides `p` of a tree.
pub(super) fn excluded(exclude: Option<&Matcher>, p: &CleanPath) -> bool {
    exclude.is_some_and(|m| m.is_excluded(&rel(p)))
}

/// `a/b/c` (`.` for the root), as ignore matchers take paths.
pub(super) fn rel(p: &CleanPath) -> String {
    String::from_utf8_lossy(&p.to_bytes()).into_owned()
}

/// Go's `filepath.Match` for one component: `*`, `?`, `[...]` (with `^` negation and
/// ranges) and `\` escapes. `Err` is `ErrBadPattern`.
pub(super) fn matches(pattern: &[u8], name: &[u8]) -> Result<bool, ()> {
    let (mut p, mut n) = (0, 0);
    // Where to resume after the last `*`: pattern index after it, name index.
    let mut star: Option<(usize, usize)> = None;
    let mut ok = true;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, n));
                    p += 1;
                    continue;
                }
                b'?' if n < name.len() => {
                    p += 1;
                    n += utf8_len(name[n]);
                    continue;
                }
                b'[' => {
                    let (hit, len) = class(&pattern[p..], name.get(n).copied())?;
                    if hit {
                        p += len;
                        n += 1;
                        continue;
                    }
                }
                b'\\' => {
                    let c = *pattern.get(p + 1).ok_or(())?;
                    if name.get(n) == Some(&c) {
                        p += 2;
                        n += 1;
                        continue;
                    }
                }
                c if c != b'?' && name.get(n) == Some(&c) => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        } else if n == name.len() {
            break;
        }
        match star {
            Some((sp, sn)) if sn < name.len() => {
                star = Some((sp, sn + 1));
                p = sp;
                n = sn + 1;
            }
            _ => {
                ok = false;
                break;
            }
        }
    }
    // Go reports a malformed pattern even when the name already failed to match.
    check_syntax(&pattern[p.min(pattern.len())..])?;
    Ok(ok)
}

/// Bytes of the UTF-8 character starting with `lead` (`?` matches one character).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xf0..=0xf7 => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// Check the rest of a pattern for syntax errors (an unclosed class, a trailing `\`).
fn check_syntax(mut rest: &[u8]) -> Result<(), ()> {
    while let Some(&c) = rest.first() {
        match c {
            b'[' => {
                let (_, len) = class(rest, None)?;
                rest = &rest[len..];
            }
            b'\\' => {
                if rest.len() < 2 {
                    return Err(());
                }
                rest = &rest[2..];
            }
            _ => rest = &rest[1..],
        }
    }
    Ok(())
}

/// Match `c` against the class at the start of `pat` (`[...]`); returns whether it
/// matched and the class's length in bytes.
fn class(pat: &[u8], c: Option<u8>) -> Result<(bool, usize), ()> {
    let mut i = 1;
    let negate = pat.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let &b = pat.get(i).ok_or(())?;
        if b == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        let (lo, next) = class_char(pat, i)?;
        i = next;
        let mut hi = lo;
        if pat.get(i) == Some(&b'-') {
            let (h, next) = class_char(pat, i + 1)?;
            hi = h;
            i = next;
        }
        if c.is_some_and(|c| lo <= c && c <= hi) {
            hit = true;
        }
    }
    Ok((c.is_some() && hit != negate, i))
}

fn class_char(pat: &[u8], i: usize) -> Result<(u8, usize), ()> {
    match pat.get(i) {
        None | Some(b'-' | b']') => Err(()),
        Some(b'\\') => pat.get(i + 1).map(|&c| (c, i + 2)).ok_or(()),
        Some(&c) => Ok((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn go_match_cases() {
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "ab", Ok(true)),
            ("a*b*c*d*e*", "axbxcxdxe", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abe", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("*.txt", ".hidden.txt", Ok(true)),
            ("[", "a", Err(())),
            ("[^", "a", Err(())),
            ("a[", "x", Err(())),
            ("[]a]", "]", Err(())),
            ("[-]", "-", Err(())),
            ("a\\", "a", Err(())),
            ("*x", "xxx", Ok(true)),
        ];
        for (pat, name, want) in cases {
            assert_eq!(
                matches(pat.as_bytes(), name.as_bytes()),
                *want,
                "{pat} vs {name}"
            );
        }
    }
}
