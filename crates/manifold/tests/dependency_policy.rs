//! The dependency policy, checked over `cargo metadata` of the locked workspace (no
//! network): every crate from crates.io (or this workspace), minimum versions where
//! a version had a known hole, crates that must never enter the tree, licenses from
//! an allow-list, and no second major version of a crate beyond the ones listed with
//! the reason they are there. Advisory databases cannot be fetched on these
//! machines, so no test pretends to check them (docs/security.md).

use std::collections::{BTreeMap, BTreeSet};

struct Package {
    name: String,
    version: String,
    source: Option<String>,
    license: Option<String>,
}

/// The packages of the locked build graph (every target, every feature in use).
fn resolved() -> Vec<Package> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--manifest-path", manifest])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_id: BTreeMap<&str, &serde_json::Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let p = by_id[n["id"].as_str().unwrap()];
            Package {
                name: p["name"].as_str().unwrap().to_owned(),
                version: p["version"].as_str().unwrap().to_owned(),
                source: p["source"].as_str().map(str::to_owned),
                license: p["license"].as_str().map(str::to_owned),
            }
        })
        .collect()
}

/// `(major, minor, patch)` of a semver version (pre-release ignored).
fn triple(v: &str) -> (u64, u64, u64) {
    let core = v.split(['-', '+']).next().unwrap();
    let mut n = core.split('.').map(|x| x.parse::<u64>().unwrap());
    (n.next().unwrap(), n.next().unwrap(), n.next().unwrap_or(0))
}

/// The semver-compatible series: `1`, or `0.x` below 1.0.
fn series(v: &str) -> String {
    match triple(v) {
        (0, minor, _) => format!("0.{minor}"),
        (major, _, _) => major.to_string(),
    }
}

#[test]
fn every_crate_comes_from_crates_io_or_the_workspace() {
    let foreign: Vec<String> = resolved()
        .into_iter()
        .filter(|p| {
            p.source.as_deref().is_some_and(|s| {
                s != "registry+https://github.com/rust-lang/crates.io-index"
                    && s != "sparse+https://index.crates.io/"
            })
        })
        .map(|p| format!("{} {} from {}", p.name, p.version, p.source.unwrap()))
        .collect();
    assert!(foreign.is_empty(), "crates from elsewhere: {foreign:?}");
}

#[test]
fn versions_with_known_holes_and_banned_crates_stay_out() {
    // The minimum versions the project's crate notes set (tar's header handling,
    // zstd-safe's decoder) after holes in earlier releases.
    let minimum = [("tar", (0, 4, 46)), ("zstd-safe", (8, 2, 0))];
    // Async tar readers skip the checks this project relies on; TLS is rustls only.
    let banned = [
        "tokio-tar",
        "async-tar",
        "astral-tokio-tar",
        "openssl",
        "openssl-sys",
        "native-tls",
    ];
    let pkgs = resolved();
    for (name, min) in minimum {
        let versions: Vec<&str> = pkgs
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.version.as_str())
            .collect();
        assert!(
            !versions.is_empty(),
            "{name} is no longer in the tree: update the policy"
        );
        for v in versions {
            assert!(triple(v) >= min, "{name} {v} is below {min:?}");
        }
    }
    let found: Vec<&str> = pkgs
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| banned.contains(n))
        .collect();
    assert!(found.is_empty(), "banned crates in the tree: {found:?}");
}

/// The licenses a dependency may be used under.
const ALLOWED: [&str; 15] = [
    "MIT",
    "MIT-0",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "Unicode-3.0",
    "Unlicense",
    "CC0-1.0",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CDLA-Permissive-2.0",
    "0BSD",
];

/// Whether an SPDX expression (`A OR B`, `A AND (B OR C)`, `A WITH X`, and the old
/// `A/B` for OR) can be satisfied with [`ALLOWED`] licenses.
fn allowed(spdx: &str) -> bool {
    fn tokens(s: &str) -> Vec<String> {
        s.replace('(', " ( ")
            .replace(')', " ) ")
            .replace('/', " OR ")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
    // expr := term (OR term)* ; term := factor (AND factor)* ;
    // factor := '(' expr ')' | ID [WITH ID]
    fn expr(t: &[String], i: &mut usize) -> bool {
        let mut ok = term(t, i);
        while t.get(*i).is_some_and(|x| x == "OR") {
            *i += 1;
            ok |= term(t, i);
        }
        ok
    }
    fn term(t: &[String], i: &mut usize) -> bool {
        let mut ok = factor(t, i);
        while t.get(*i).is_some_and(|x| x == "AND") {
            *i += 1;
            ok &= factor(t, i);
        }
        ok
    }
    fn factor(t: &[String], i: &mut usize) -> bool {
        let Some(tok) = t.get(*i) else {
            return false;
        };
        *i += 1;
        if tok == "(" {
            let ok = expr(t, i);
            *i += 1; // ')'
            return ok;
        }
        let mut id = tok.clone();
        if t.get(*i).is_some_and(|x| x == "WITH") {
            id = format!("{id} WITH {}", t.get(*i + 1).cloned().unwrap_or_default());
            *i += 2;
        }
        ALLOWED.contains(&id.as_str())
    }
    let t = tokens(spdx.trim());
    let mut i = 0;
    expr(&t, &mut i) && i == t.len()
}

#[test]
fn the_license_check_reads_spdx_expressions() {
    assert!(allowed("MIT OR Apache-2.0"));
    assert!(allowed("MIT/Apache-2.0"));
    assert!(allowed("(MIT OR Apache-2.0) AND Unicode-3.0"));
    assert!(allowed(
        "Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT"
    ));
    assert!(allowed("MIT OR Apache-2.0 OR LGPL-2.1-or-later"));
    assert!(!allowed("GPL-3.0-only"));
    assert!(!allowed("MIT AND GPL-2.0-only"));
    assert!(!allowed("SSPL-1.0 OR BUSL-1.1"));
}

#[test]
fn every_license_is_on_the_allow_list() {
    let refused: Vec<String> = resolved()
        .into_iter()
        .filter(|p| p.source.is_some())
        .filter(|p| !p.license.as_deref().is_some_and(allowed))
        .map(|p| format!("{} {}: {:?}", p.name, p.version, p.license))
        .collect();
    assert!(refused.is_empty(), "licenses not allowed: {refused:#?}");
}

/// Crates the tree holds in two semver series, and why. An entry that is no longer
/// true fails too, so the list stays what the tree is.
const DUPLICATES: [(&str, &str); 11] = [
    (
        "base64",
        "bcrypt and this workspace on 0.22; reqwest 0.13 and hyper-util on 0.23",
    ),
    (
        "block-buffer",
        "RustCrypto's two generations (digest 0.10 and 0.11)",
    ),
    (
        "cpufeatures",
        "RustCrypto's two generations (sha2 0.10 and 0.11)",
    ),
    (
        "crypto-common",
        "RustCrypto's two generations (bcrypt's cipher 0.4 is on 0.1)",
    ),
    (
        "digest",
        "RustCrypto's two generations (sha2 0.10 and 0.11)",
    ),
    ("sha2", "0.10 in oci; 0.11 through lzma-rust2 (ADD's xz)"),
    (
        "getrandom",
        "0.3 (bcrypt), 0.4 (tempfile, jobserver); 0.2 only in the lock file",
    ),
    ("r-efi", "getrandom 0.3 and 0.4 (UEFI targets only)"),
    (
        "syn",
        "syn 3 for most derives; derive_builder, strum and getset still on syn 2",
    ),
    ("windows-sys", "Windows targets only, never built here"),
    ("winnow", "toml_parser on 1, toml 0.9 on 0.7"),
];

#[test]
fn second_major_versions_are_only_the_listed_ones() {
    let mut series_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in resolved() {
        series_of
            .entry(p.name.clone())
            .or_default()
            .insert(series(&p.version));
    }
    let dups: BTreeSet<&str> = series_of
        .iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(n, _)| n.as_str())
        .collect();
    let listed: BTreeSet<&str> = DUPLICATES.iter().map(|(n, _)| *n).collect();
    let unlisted: Vec<_> = dups.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "crates in two semver series, not in DUPLICATES with a reason: {unlisted:?} ({:?})",
        unlisted
            .iter()
            .map(|n| (n, &series_of[**n]))
            .collect::<Vec<_>>()
    );
    let stale: Vec<_> = listed.difference(&dups).collect();
    assert!(
        stale.is_empty(),
        "DUPLICATES lists crates no longer doubled: {stale:?}"
    );
}
