//! Unix path handling shared by the build checks, ignore patterns and the frontend.

/// Go's `path.Clean`: lexical, `/`-separated, no `.` or empty elements, `..`
/// resolved (and dropped at the root); the empty path is `.`.
pub fn clean(p: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::clean;
    use rstest::rstest;

    #[rstest]
    #[case::dot_slash("./tmp/a", "tmp/a")]
    #[case::dot(".", ".")]
    #[case::empty("", ".")]
    #[case::root("/", "/")]
    #[case::dotdot("a/../../b", "../b")]
    #[case::rooted_dotdot("/../a//b/", "/a/b")]
    #[case::inner("/a/./b/../c/", "/a/c")]
    #[case::to_dot("a/..", ".")]
    fn cleans(#[case] p: &str, #[case] want: &str) {
        assert_eq!(clean(p), want);
    }
}
