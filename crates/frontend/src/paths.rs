//! Unix path handling as BuildKit does it for Linux targets.

pub(crate) use dockerfile::path::clean;

/// `path.Join(dir, p)` then absolute: `p` when absolute, else under `dir`.
pub(crate) fn resolve(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean(p)
    } else {
        clean(&format!("/{dir}/{p}"))
    }
}

/// BuildKit's `NormalizePath(parent, p, keepSlash=true)`: absolute, cleaned,
/// with a trailing `/` kept (it means "into this directory").
pub(crate) fn resolve_keep_slash(dir: &str, p: &str) -> String {
    let p = if p.is_empty() || p == "." { "./" } else { p };
    let mut out = resolve(dir, p);
    let wants_slash = p.ends_with('/') || p.ends_with("/.");
    if wants_slash && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The last element of a path (`path.Base`).
pub(crate) fn base(p: &str) -> String {
    let c = clean(p);
    match c.rsplit_once('/') {
        Some((_, "")) => "/".to_owned(),
        Some((_, last)) => last.to_owned(),
        None => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining() {
        assert_eq!(resolve("/w", "x/y"), "/w/x/y");
        assert_eq!(resolve("/w", "/abs"), "/abs");
        assert_eq!(resolve_keep_slash("/w", "."), "/w/");
        assert_eq!(resolve_keep_slash("/", "dir/"), "/dir/");
        assert_eq!(resolve_keep_slash("/w", "f"), "/w/f");
        assert_eq!(base("/run/x/"), "x");
        assert_eq!(base("id"), "id");
    }
}
