//! Golden tests of `--call=targets` and `--call=outline`: each directory under
//! `tests/data/call/<case>/` holds a `Dockerfile`, optionally an `options`
//! file (`target NAME`, `build-arg NAME=VALUE`, one a line) and the
//! `expected` rendering of both. Run with `UPDATE_EXPECT=1` to rewrite the
//! expected files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dockerfile::call::{OutlineOptions, outline, render_outline, render_targets, targets};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/call")
}

fn actual(src: &str, options: &str) -> String {
    let parsed = dockerfile::parser::parse(src);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    let mut opts = OutlineOptions::default();
    for line in options.lines().filter(|l| !l.trim().is_empty()) {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "target" => opts.target = Some(rest.to_owned()),
            "build-arg" => {
                let (k, v) = rest.split_once('=').expect("build-arg NAME=VALUE");
                opts.build_args.insert(k.to_owned(), v.to_owned());
            }
            other => panic!("unknown option {other:?}"),
        }
    }
    let mut out = String::from("--- targets\n");
    out.push_str(&render_targets(&targets(&parsed.dockerfile)));
    out.push_str("--- outline\n");
    match outline(&parsed.dockerfile, &opts) {
        Ok(o) => out.push_str(&render_outline(&o)),
        Err(e) => out.push_str(&format!("error: {e}\n")),
    }
    out
}

fn run_case(name: &str) {
    let dir = data_dir().join(name);
    let src = std::fs::read_to_string(dir.join("Dockerfile"))
        .unwrap_or_else(|e| panic!("case {name}: cannot read Dockerfile: {e}"));
    let options = std::fs::read_to_string(dir.join("options")).unwrap_or_default();
    let got = actual(&src, &options);
    let expected_path = dir.join("expected");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, &got).expect("write expected");
        return;
    }
    let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert!(
        got == want,
        "case {name}: output differs (UPDATE_EXPECT=1 to accept)\n--- expected\n{want}\n--- actual\n{got}"
    );
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name));
            }
        )*
        const ALL_CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

#[test]
fn every_case_directory_is_listed() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(data_dir())
        .expect("read tests/data/call")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let listed: BTreeSet<String> = ALL_CASES.iter().map(|s| (*s).to_owned()).collect();
    let missing: Vec<_> = on_disk.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "not listed in cases!: {missing:?}; listed without a directory: {stale:?}"
    );
}

// ---- case list (one test per directory) ----
cases! {
    arg_deps,
    copy_from_cycle,
    copy_from_index,
    docs_example,
    multi_stage,
    stage_arg_inherits_global,
    target_option,
    unknown_target,
    unnamed_default,
}
