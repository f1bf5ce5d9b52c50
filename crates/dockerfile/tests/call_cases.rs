//! Golden tests of `--call=targets` and `--call=outline`: each directory under
//! `tests/data/call/<case>/` holds a `Dockerfile`, optionally an `options`
//! file (`target NAME`, `build-arg NAME=VALUE`, one a line) and the
//! `expected` rendering of both. Run with `UPDATE_EXPECT=1` to rewrite the
//! expected files.

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
    testkit::golden::compare(name, &dir.join("expected"), &got);
}

// ---- case list (one test per directory) ----
testkit::golden_cases! {
    data_dir(), run_case;
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
