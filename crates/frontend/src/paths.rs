//! Unix path handling as BuildKit does it for Linux targets.

/// `path.Clean` of Go: lexical, `/`-separated, `..` at the root dropped.
pub(crate) fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

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
    fn cleaning_and_joining() {
        assert_eq!(clean("/a/./b/../c/"), "/a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("a/.."), ".");
        assert_eq!(resolve("/w", "x/y"), "/w/x/y");
        assert_eq!(resolve("/w", "/abs"), "/abs");
        assert_eq!(resolve_keep_slash("/w", "."), "/w/");
        assert_eq!(resolve_keep_slash("/", "dir/"), "/dir/");
        assert_eq!(resolve_keep_slash("/w", "f"), "/w/f");
        assert_eq!(base("/run/x/"), "x");
        assert_eq!(base("id"), "id");
    }
}
