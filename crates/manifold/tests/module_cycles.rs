//! No module of any workspace crate depends, through others, on itself.
//!
//! Each crate's modules come from its file tree (`src/a.rs` or `src/a/mod.rs` is `a`,
//! `src/a/b.rs` is `a::b`). A reference is a `crate::…`, `super::…` or `self::…` path
//! in a module's code (`use` lines and paths in expressions; comments are skipped).
//! A reference counts between the two sibling modules under the deepest module both
//! lie in: `a::x` naming `b::y` is an edge `a → b`. A module naming its own ancestor
//! or descendant is no edge (a parent declares its children; a child reads what its
//! parent keeps for it). A file's `#[cfg(test)] mod tests` is left out: a test may
//! use any module. Any cycle among siblings fails the test, named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["commands", "build"]`) → the source text of its file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let mut parts: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            let last = parts.pop().unwrap();
            let stem = last.trim_end_matches(".rs");
            if !matches!(stem, "lib" | "main" | "mod") || !parts.is_empty() && stem != "mod" {
                parts.push(stem.to_owned());
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            out.insert(parts, code);
        }
    }
    out
}

/// The paths a module's code names, as written after `crate::`, `super::` or
/// `self::`, resolved to absolute module-relative segments.
fn references(module: &[String], text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < line.len() {
            let rest = &line[i..];
            let boundary =
                i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            let base: Option<(Vec<String>, usize)> = if !boundary {
                None
            } else if rest.starts_with("crate::") {
                Some((Vec::new(), "crate::".len()))
            } else if rest.starts_with("self::") {
                Some((module.to_vec(), "self::".len()))
            } else if rest.starts_with("super::") {
                let mut up = module.to_vec();
                let mut n = 0;
                while rest[n..].starts_with("super::") {
                    up.pop();
                    n += "super::".len();
                }
                Some((up, n))
            } else {
                None
            };
            let Some((mut path, skip)) = base else {
                i += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            };
            let tail = &rest[skip..];
            for group in expand(tail) {
                let mut p = path.clone();
                p.extend(group);
                out.push(p);
            }
            path.clear();
            i += skip;
        }
    }
    out
}

/// The paths `tail` (what follows `crate::`) names: `a::b::c` → `[a, b, c]`;
/// `{a::x, b}` → `[a, x]` and `[b]` (first level of a group only).
fn expand(tail: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut segs = Vec::new();
    let mut rest = tail;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            return group[..end]
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| {
                    let mut p = segs.clone();
                    for s in item.split("::") {
                        let s = ident(s.trim());
                        if s.is_empty() || s == "self" {
                            break;
                        }
                        p.push(s);
                    }
                    p
                })
                .collect();
        }
        let s = ident(rest);
        if s.is_empty() {
            break;
        }
        rest = &rest[s.len()..];
        segs.push(s);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    vec![segs]
}

/// The longest prefix of `path` that is a module.
fn module_of(path: &[String], known: &BTreeMap<Vec<String>, String>) -> Option<Vec<String>> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains_key(p))
}

/// Sibling edges `(parent, from child, to child)` of one crate.
fn edges(known: &BTreeMap<Vec<String>, String>) -> BTreeSet<(Vec<String>, String, String)> {
    let mut out = BTreeSet::new();
    for (m, text) in known {
        for r in references(m, text) {
            let Some(target) = module_of(&r, known) else {
                continue;
            };
            let common = m.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == m.len() || common == target.len() {
                continue; // ancestor or descendant
            }
            out.insert((
                m[..common].to_vec(),
                m[common].clone(),
                target[common].clone(),
            ));
        }
    }
    out
}

/// Cycles among the children of each module, each as `a → b → a`.
fn cycles(edges: &BTreeSet<(Vec<String>, String, String)>) -> Vec<String> {
    let mut by_parent: BTreeMap<&Vec<String>, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for (p, a, b) in edges {
        by_parent
            .entry(p)
            .or_default()
            .entry(a.as_str())
            .or_default()
            .insert(b.as_str());
    }
    let mut found = Vec::new();
    for (parent, graph) in by_parent {
        let mut reported = BTreeSet::new();
        for &start in graph.keys() {
            // Depth-first search for a path back to `start`.
            let mut stack = vec![(start, vec![start])];
            let mut seen = BTreeSet::new();
            while let Some((at, path)) = stack.pop() {
                for &next in graph.get(at).into_iter().flatten() {
                    if next == start {
                        let mut members: Vec<&str> = path.clone();
                        members.sort_unstable();
                        if reported.insert(members) {
                            let prefix = match parent.is_empty() {
                                true => String::new(),
                                false => format!("{}::", parent.join("::")),
                            };
                            let shown: Vec<String> = path
                                .iter()
                                .chain([&start])
                                .map(|m| format!("{prefix}{m}"))
                                .collect();
                            found.push(shown.join(" → "));
                        }
                    } else if seen.insert(next) {
                        let mut p = path.clone();
                        p.push(next);
                        stack.push((next, p));
                    }
                }
            }
        }
    }
    found
}

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for e in std::fs::read_dir(crates_dir()).unwrap() {
        let src = e.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let known = modules(&src);
        checked += known.len();
        for c in cycles(&edges(&known)) {
            problems.push(format!("{}: {c}", src.display()));
        }
    }
    assert!(
        checked > 100,
        "only {checked} modules found: the walk is broken"
    );
    assert!(
        problems.is_empty(),
        "module cycles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_cycle_between_siblings_is_found_and_parent_child_use_is_not_one() {
    let mut known = BTreeMap::new();
    let m = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    known.insert(
        m(&[]),
        "mod commands;\nuse crate::commands::run;\n".to_owned(),
    );
    known.insert(
        m(&["commands"]),
        "mod build;\nmod remote;\npub fn open() { build::go(); }\n".to_owned(),
    );
    known.insert(
        m(&["commands", "build"]),
        "use super::open;\nuse super::{remote::send, flags};\n".to_owned(),
    );
    known.insert(
        m(&["commands", "remote"]),
        "// crate::commands::build::x in a comment\nfn f() { crate::commands::build::go() }\n"
            .to_owned(),
    );
    let found = cycles(&edges(&known));
    assert_eq!(
        found,
        ["commands::build → commands::remote → commands::build"]
    );
    // Without the back edge there is none.
    known.insert(m(&["commands", "remote"]), "fn f() {}\n".to_owned());
    assert!(cycles(&edges(&known)).is_empty());
}
