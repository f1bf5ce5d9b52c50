//! `docs/cli.md` is generated from the clap definitions (through `--help`) and must
//! stay current. Regenerate with `UPDATE_DOCS=1 cargo nextest run -p manifold cli_reference`.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(args)
        .arg("--help")
        .env_remove("MANIFOLD_ROOT")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Verb names from the top-level help's "Commands:" section.
fn verbs(top: &str) -> Vec<String> {
    top.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|v| v != "help")
        .collect()
}

fn render() -> String {
    let top = help(&[]);
    let mut doc = String::from(
        "# CLI reference\n\nGenerated from the command definitions by \
         `crates/manifold/tests/cli_reference.rs`; do not edit by hand.\n\n## manifold\n\n```text\n",
    );
    doc.push_str(&top);
    doc.push_str("```\n");
    for verb in verbs(&top) {
        doc.push_str(&format!(
            "\n## manifold {verb}\n\n```text\n{}```\n",
            help(&[&verb])
        ));
    }
    doc
}

#[test]
fn cli_reference_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");
    let want = render();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/cli.md is stale; regenerate with UPDATE_DOCS=1 cargo nextest run -p manifold cli_reference"
    );
    assert!(
        want.contains("## manifold prune"),
        "every verb is documented"
    );
}
