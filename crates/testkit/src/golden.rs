//! Golden-file tests: one test per case directory, `UPDATE_EXPECT=1` rewrites the
//! expected files, and a check that every directory on disk is listed (so no case
//! is silently skipped).
//!
//! ```ignore
//! fn run_case(name: &str) { /* compute `got`, then */ testkit::golden::compare(name, &path, &got); }
//! testkit::golden_cases!(data_dir(), run_case; case_a, case_b);
//! ```

use std::collections::BTreeSet;
use std::path::Path;

/// Compare `got` with the file at `expected`, or rewrite it under `UPDATE_EXPECT`.
pub fn compare(case: &str, expected: &Path, got: &str) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(expected, got)
            .unwrap_or_else(|e| panic!("write {}: {e}", expected.display()));
        return;
    }
    let want = std::fs::read_to_string(expected).unwrap_or_default();
    assert!(
        got == want,
        "case {case}: output differs from {} (UPDATE_EXPECT=1 to accept)\n--- expected\n{want}\n--- actual\n{got}",
        expected.display()
    );
}

/// Every directory under `dir` is a listed case, and every listed case exists.
pub fn assert_all_listed(dir: &Path, listed: &[&str]) {
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let listed: BTreeSet<String> = listed.iter().map(|s| (*s).to_owned()).collect();
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "cases in {} not listed: {missing:?}; listed without a directory: {stale:?}",
        dir.display()
    );
}

/// One `#[test]` per case name calling `$run(name)`, plus
/// `every_case_directory_is_listed` over `$dir`, and `ALL_CASES` listing the names.
#[macro_export]
macro_rules! golden_cases {
    ($dir:expr, $run:path; $($name:ident),* $(,)?) => {
        #[allow(dead_code)]
        const ALL_CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                $run(stringify!($name));
            }
        )*
        #[test]
        fn every_case_directory_is_listed() {
            $crate::golden::assert_all_listed(&$dir, ALL_CASES);
        }
    };
}
