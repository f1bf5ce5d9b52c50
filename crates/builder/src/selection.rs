//! Cache keys for what a step reads from a build context: only the paths it
//! selects, so an edit elsewhere in the context (or a mode that `COPY --chmod`
//! overrides) keeps the step cached.

use std::collections::BTreeMap;

use oci::{Digest, Hasher};
use worker::context::{Context, Entry, Kind};

/// What a step reads from a context: a path (its literal part, up to the first
/// wildcard component) and whether file modes matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Relative, `/`-separated, no `.`/`..`; empty = the whole context.
    pub prefix: String,
    /// `false` when the step sets modes itself (`COPY --chmod`).
    pub modes: bool,
}

fn has_meta(component: &str) -> bool {
    component.contains(['*', '?', '[', '\\'])
}

impl Selection {
    /// The selection of `path` (absolute or relative, as in the op).
    pub fn new(path: &str, modes: bool) -> Selection {
        let mut parts = Vec::new();
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c if has_meta(c) => break,
                c => parts.push(c),
            }
        }
        Selection {
            prefix: parts.join("/"),
            modes,
        }
    }

    fn covers(&self, path: &str) -> bool {
        self.prefix.is_empty()
            || path == self.prefix
            || path
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Whether a symlink on the way could lead the step elsewhere in the
    /// context: then only the whole context's digest is a safe key.
    fn through_symlink(&self, entries: &BTreeMap<String, Entry>) -> bool {
        let mut at = String::new();
        for c in self.prefix.split('/').filter(|c| !c.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(c);
            if matches!(
                entries.get(&at).map(|e| &e.kind),
                Some(Kind::Symlink { .. })
            ) {
                return true;
            }
        }
        entries
            .iter()
            .filter(|(p, _)| self.covers(p))
            .any(|(_, e)| matches!(e.kind, Kind::Symlink { .. }))
    }

    /// The digest of the selected entries (paths, types, contents, and modes
    /// when they matter).
    pub fn digest(&self, ctx: &Context) -> Digest {
        if self.through_symlink(&ctx.entries) {
            return ctx.digest.clone();
        }
        let mut h = Hasher::new(oci::Algorithm::Sha256);
        h.update(format!("selection {:?} modes={}\n", self.prefix, self.modes).as_bytes());
        for (path, e) in ctx.entries.iter().filter(|(p, _)| self.covers(p)) {
            let what = match &e.kind {
                Kind::File { digest, .. } => format!("file {digest}"),
                Kind::Dir => "dir".to_owned(),
                Kind::Symlink { target } => format!("symlink {target}"),
                Kind::Other => "other".to_owned(),
            };
            let mode = if self.modes {
                format!("{:o}", e.mode)
            } else {
                String::new()
            };
            h.update(format!("{path}\0{mode}\0{what}\n").as_bytes());
        }
        h.finish()
    }

    /// The paths of `changed` this selection covers.
    pub fn changed<'a>(&self, changed: &'a [String]) -> Vec<&'a String> {
        changed.iter().filter(|p| self.covers(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(files: &[(&str, &str, u32)]) -> Context {
        let mut entries = BTreeMap::new();
        for (p, content, mode) in files {
            let kind = if let Some(target) = content.strip_prefix("->") {
                Kind::Symlink {
                    target: target.to_owned(),
                }
            } else if content.is_empty() {
                Kind::Dir
            } else {
                Kind::File {
                    digest: Digest::sha256(content.as_bytes()),
                    size: content.len() as u64,
                }
            };
            entries.insert((*p).to_owned(), Entry { kind, mode: *mode });
        }
        Context {
            digest: Digest::sha256(format!("{entries:?}").as_bytes()),
            entries,
            hashed: 0,
        }
    }

    #[test]
    fn an_edit_outside_the_selection_keeps_the_key() {
        let a = ctx(&[
            ("src", "", 0o755),
            ("src/a.c", "a", 0o644),
            ("b.txt", "b", 0o644),
        ]);
        let b = ctx(&[
            ("src", "", 0o755),
            ("src/a.c", "a", 0o644),
            ("b.txt", "B", 0o644),
        ]);
        let s = Selection::new("/src", true);
        assert_eq!(s.digest(&a), s.digest(&b));
        let c = ctx(&[
            ("src", "", 0o755),
            ("src/a.c", "A", 0o644),
            ("b.txt", "b", 0o644),
        ]);
        assert_ne!(s.digest(&a), s.digest(&c));
        // A sibling that shares the prefix's spelling is not inside it.
        let d = ctx(&[
            ("src", "", 0o755),
            ("src/a.c", "a", 0o644),
            ("srcx", "x", 0o644),
        ]);
        assert_eq!(s.digest(&a), Selection::new("/src", true).digest(&d));
    }

    #[test]
    fn modes_count_unless_the_step_sets_them() {
        let a = ctx(&[("run.sh", "x", 0o644)]);
        let b = ctx(&[("run.sh", "x", 0o755)]);
        assert_ne!(
            Selection::new("run.sh", true).digest(&a),
            Selection::new("run.sh", true).digest(&b)
        );
        assert_eq!(
            Selection::new("run.sh", false).digest(&a),
            Selection::new("run.sh", false).digest(&b)
        );
    }

    #[test]
    fn wildcards_select_their_literal_directory() {
        let s = Selection::new("/app/*.go", true);
        assert_eq!(s.prefix, "app");
        assert_eq!(Selection::new("*.go", true).prefix, "");
        assert_eq!(Selection::new("./a/../b/c", true).prefix, "b/c");
    }

    #[test]
    fn symlinks_fall_back_to_the_whole_context() {
        let a = ctx(&[
            ("link", "->real", 0o777),
            ("real", "", 0o755),
            ("real/f", "1", 0o644),
        ]);
        let s = Selection::new("link/f", true);
        assert_eq!(s.digest(&a), a.digest);
    }
}
