//! Two processes on one cache directory. The test binary re-executes itself
//! as a child that builds [`app_graph`] with the cache at `CHILD_ROOT`,
//! appending the digest of every vertex it runs to `<root>/runs.log`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use solver::SolveOptions;

const CHILD_ROOT: &str = "MANIFOLD_TEST_CHILD_ROOT";

fn run_log(root: &Path) -> PathBuf {
    root.join("runs.log")
}

/// Run this test binary again as a child building into `root`.
fn child(test: &str, root: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ROOT, root)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// The build a child does; `false` when this process is not a child.
fn child_work() -> bool {
    let Some(root) = std::env::var_os(CHILD_ROOT) else {
        return false;
    };
    let root = PathBuf::from(root);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let runner = FakeRunner::with_run_log(run_log(&root));
        runner.write_file("app/main.c", "int main() {}");
        let solver = solver_at(&root.join("cache"), runner, 2);
        let (graph, app) = app_graph();
        let out = solver
            .solve(
                &graph,
                std::slice::from_ref(&app.test),
                &SolveOptions::default(),
            )
            .await
            .unwrap();
        assert!(out[&app.test].contains("exec"));
    });
    true
}

/// How many times each vertex ran, across every child so far.
fn runs(root: &Path) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let log = std::fs::read_to_string(run_log(root)).unwrap_or_default();
    for line in log.lines() {
        *out.entry(line.to_owned()).or_default() += 1;
    }
    out
}

fn succeed(mut cmd: Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "child failed: {status:?}");
}

#[test]
fn second_process_takes_what_the_first_recorded() {
    if child_work() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let test = "second_process_takes_what_the_first_recorded";
    succeed(child(test, dir.path()));
    let after_first = runs(dir.path());
    assert_eq!(after_first.len(), 6, "{after_first:?}");
    assert!(after_first.values().all(|&n| n == 1), "{after_first:?}");
    succeed(child(test, dir.path()));
    assert_eq!(
        runs(dir.path()),
        after_first,
        "the second process ran nothing"
    );
}

#[test]
fn two_processes_build_at_once_on_one_cache() {
    if child_work() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let test = "two_processes_build_at_once_on_one_cache";
    let kids: Vec<_> = (0..2)
        .map(|_| child(test, dir.path()).spawn().unwrap())
        .collect();
    for mut kid in kids {
        let status = kid.wait().unwrap();
        assert!(status.success(), "child failed: {status:?}");
    }
    let both = runs(dir.path());
    assert_eq!(both.len(), 6, "{both:?}");
    assert!(
        both.values().all(|&n| n == 1),
        "each step ran once across both processes: {both:?}"
    );
    // Whatever interleaving happened, the records are whole: a third
    // process finds everything.
    succeed(child(test, dir.path()));
    assert_eq!(runs(dir.path()), both);
}
