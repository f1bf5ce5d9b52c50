//! Cache keys, hits and misses, and damaged records.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use common::*;
use graph::Graph;
use graph::op::EnvVar;
use solver::{Event, MissReason, SolveOptions};

fn runner_with_source() -> FakeRunner {
    let runner = FakeRunner::new();
    runner.write_file("app/main.c", "int main() { return 0; }");
    runner
}

/// Pins the keys of a fixed graph: op digests, input result keys and
/// content keys together. If this fails every cache record is lost; bump
/// `solver::key::KEY_PREFIX` on purpose and update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_keys_of_a_fixed_graph_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), runner_with_source(), 2);
    let (opts, mut rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    let keys = keys(&drain(&mut rx));
    let hex = |d: &oci::Digest| keys[d].hex().to_owned();
    assert_eq!(
        [hex(&app.base), hex(&app.context), hex(&app.test)],
        [
            // Checked by hashing the documented bytes with Python's hashlib.
            "c4711d6bcafd16efe0f5b392e7956dc3cf9eb8c53e19f35bf98b5ac47a7fe75d",
            "bbd479416c9e214f7b195fa8822f2f336b8d3c58dc5293bc50fb37e84e8b5406",
            "0daffe0488fecbc50097a498839386d66fd325830cd64a567e8b7105d9f2f7b0",
        ]
    );
}

/// `solve_keyed` names every vertex's key, the same the events named, each with
/// its record in the store: what a cache export reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solve_keyed_returns_every_vertex_key_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), runner_with_source(), 2);
    let (opts, mut rx) = options();
    let solved = solver
        .solve_keyed(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    let events = keys(&drain(&mut rx));
    assert_eq!(solved.keys, events);
    assert!(solved.keys.len() >= 3, "{:?}", solved.keys);
    for key in solved.keys.values() {
        assert!(solver.store().get(key).unwrap().found().is_some(), "{key}");
    }
    assert_eq!(solved.outputs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_solve_takes_everything_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let first = solver_at(dir.path(), runner_with_source(), 2);
    let (opts, _rx) = options();
    let built = first
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    assert_eq!(first.runner().total_runs(), 6);

    // A new solver on the same directory: nothing in memory carries over.
    let second = solver_at(dir.path(), runner_with_source(), 2);
    let (opts, mut rx) = options();
    let cached = second
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    assert_eq!(second.runner().total_runs(), 0);
    assert_eq!(cached, built);
    let events = drain(&mut rx);
    let hits = events
        .iter()
        .filter(|e| matches!(e, Event::VertexCached { .. }))
        .count();
    assert_eq!(hits, 6);
    assert!(misses(&events).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_source_file_reruns_exactly_its_dependents_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), runner_with_source(), 2);
    let (opts, _rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();

    // The same content again: all cached.
    solver.runner().reset_runs();
    solver
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    assert_eq!(solver.runner().total_runs(), 0);

    solver
        .runner()
        .write_file("app/main.c", "int main() { return 1; }");
    let (opts, mut rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    let expected: HashSet<_> = [&app.context, &app.copy, &app.build, &app.test]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(solver.runner().ran(), expected, "base and deps stay cached");
    let misses = misses(&drain(&mut rx));
    assert_eq!(misses.len(), 4);
    assert_eq!(
        misses[&app.context],
        MissReason::ContentChanged {
            name: "local context file app/main.c".to_owned()
        }
    );
    assert_eq!(
        misses[&app.copy].to_string(),
        "input 1 (local context file app/main.c) changed"
    );
    assert_eq!(
        misses[&app.build].to_string(),
        "input 0 ([build 3/4] COPY app/main.c /src/) changed"
    );
    assert_eq!(
        misses[&app.test].to_string(),
        "input 0 ([build 4/4] RUN cc /src/main.c) changed"
    );

    // Back to the first content: its records are still there.
    solver.runner().reset_runs();
    solver
        .runner()
        .write_file("app/main.c", "int main() { return 0; }");
    solver
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    assert_eq!(solver.runner().total_runs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_step_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), runner_with_source(), 2);
    let (opts, mut rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&app.deps), &opts)
        .await
        .unwrap();
    let misses = misses(&drain(&mut rx));
    assert_eq!(misses[&app.deps], MissReason::NewStep);
    assert_eq!(
        misses[&app.deps].to_string(),
        "no earlier build of this step"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_reruns_everything_and_refreshes_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), runner_with_source(), 2);
    solver
        .solve(
            &graph,
            std::slice::from_ref(&app.test),
            &SolveOptions::default(),
        )
        .await
        .unwrap();
    solver.runner().reset_runs();
    let (mut opts, mut rx) = options();
    opts.no_cache = true;
    solver
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    assert_eq!(solver.runner().total_runs(), 6);
    let misses = misses(&drain(&mut rx));
    assert_eq!(misses.len(), 6);
    assert!(
        misses.values().all(|r| *r == MissReason::NoCache),
        "{misses:?}"
    );

    solver.runner().reset_runs();
    opts.no_cache = false;
    solver
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    assert_eq!(solver.runner().total_runs(), 0);
}

/// `base → step (ignore_cache) → after`.
fn filtered_graph() -> (Graph, [oci::Digest; 3]) {
    let mut g = Graph::new();
    let base = add(
        &mut g,
        image("docker.io/library/alpine:3.20"),
        &[],
        "FROM alpine",
    );
    let mut m = meta("[deps 2/2] RUN apk update");
    m.ignore_cache = true;
    let step = g
        .add_op(exec("apk update", 1), vec![base.clone()], m)
        .unwrap();
    let after = add(&mut g, exec("make", 1), &[&step], "[build 2/2] RUN make");
    (g, [base, step, after])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_filter_reruns_the_marked_step_and_keeps_dependents_of_an_equal_result() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, [base, step, after]) = filtered_graph();
    let solver = solver_at(dir.path(), FakeRunner::new(), 2);
    let (opts, _rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&after), &opts)
        .await
        .unwrap();
    assert_eq!(solver.runner().total_runs(), 3);

    solver.runner().reset_runs();
    let (opts, mut rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&after), &opts)
        .await
        .unwrap();
    let expected: HashSet<_> = [step.clone()].into_iter().collect();
    assert_eq!(solver.runner().ran(), expected, "{base} and {after} cached");
    assert_eq!(misses(&drain(&mut rx))[&step], MissReason::IgnoreCache);

    // The step now gives a different result: what uses it runs again.
    solver.runner().reset_runs();
    solver.runner().set_salt(&step, "+new index");
    let (opts, mut rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&after), &opts)
        .await
        .unwrap();
    let expected: HashSet<_> = [step.clone(), after.clone()].into_iter().collect();
    assert_eq!(solver.runner().ran(), expected);
    assert_eq!(
        misses(&drain(&mut rx))[&after].to_string(),
        "input 0 ([deps 2/2] RUN apk update) changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_do_not_bust_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let build = |proxy: Vec<EnvVar>| {
        let mut g = Graph::new();
        let base = add(
            &mut g,
            image("docker.io/library/alpine:3.20"),
            &[],
            "FROM alpine",
        );
        let run = add(
            &mut g,
            exec_with_proxy("apk add curl", 1, proxy),
            &[&base],
            "RUN apk add curl",
        );
        (g, run)
    };
    let (plain, plain_run) = build(vec![]);
    let (proxied, proxied_run) = build(vec![EnvVar::new("HTTPS_PROXY", "http://proxy:3128")]);
    assert_ne!(plain_run, proxied_run, "different vertices");
    let solver = solver_at(dir.path(), FakeRunner::new(), 2);
    solver
        .solve(&plain, &[plain_run], &SolveOptions::default())
        .await
        .unwrap();
    solver.runner().reset_runs();
    solver
        .solve(&proxied, &[proxied_run], &SolveOptions::default())
        .await
        .unwrap();
    assert_eq!(solver.runner().total_runs(), 0, "one cache key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_is_set_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), runner_with_source(), 2);
    let (opts, mut rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    let key = keys(&drain(&mut rx))[&app.deps].clone();
    let path = solver.store().record_path(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 5); // a write cut short by power loss
    std::fs::write(&path, &bytes).unwrap();

    let again = solver_at(dir.path(), runner_with_source(), 2);
    let (opts, mut rx) = options();
    again
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    let expected: HashSet<_> = [app.deps.clone()].into_iter().collect();
    assert_eq!(
        again.runner().ran(),
        expected,
        "the same result: dependents stay cached"
    );
    let MissReason::RecordCorrupt { set_aside } = &misses(&drain(&mut rx))[&app.deps] else {
        panic!("expected a corrupt record");
    };
    assert_eq!(
        std::fs::read(set_aside).unwrap(),
        bytes,
        "the damaged file is kept aside"
    );
    let name = set_aside.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(&format!("{}.corrupt-", key.hex())),
        "{name}"
    );
    assert!(
        again.store().get(&key).unwrap().found().is_some(),
        "rebuilt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_runner_cannot_load_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), runner_with_source(), 2);
    solver
        .solve(
            &graph,
            std::slice::from_ref(&app.deps),
            &SolveOptions::default(),
        )
        .await
        .unwrap();
    solver.runner().reset_runs();
    solver.runner().unloadable.store(true, Ordering::SeqCst);
    let (opts, mut rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&app.deps), &opts)
        .await
        .unwrap();
    assert_eq!(solver.runner().total_runs(), 2);
    assert_eq!(misses(&drain(&mut rx))[&app.deps], MissReason::Unloadable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_size_description_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), runner_with_source(), 2);
    let out = solver
        .solve(
            &graph,
            std::slice::from_ref(&app.deps),
            &SolveOptions::default(),
        )
        .await
        .unwrap();
    let records = solver.store().records().unwrap();
    assert_eq!(records.len(), 2);
    let deps = records
        .iter()
        .find(|r| r.description == "[build 2/4] RUN apk add gcc")
        .expect("a record for deps");
    assert_eq!(deps.size, out[&app.deps].len() as u64);
    assert_eq!(deps.value["result"], out[&app.deps].as_str());
    assert!(deps.created > 1_700_000_000);
    assert!(deps.last_used > std::time::UNIX_EPOCH);
}
