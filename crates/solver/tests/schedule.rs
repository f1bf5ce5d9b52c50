//! Scheduling: dedup, parallelism, cancellation, failure, events.

mod common;

use common::*;
use graph::{Graph, Location};
use solver::{Event, LogStream, SolveError, SolverConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vertex_shared_by_two_targets_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), FakeRunner::new(), 4);
    let (opts, _rx) = options();
    let out = solver
        .solve(&graph, &[app.build.clone(), app.test.clone()], &opts)
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    let runner = solver.runner();
    for d in [
        &app.base,
        &app.context,
        &app.deps,
        &app.copy,
        &app.build,
        &app.test,
    ] {
        assert_eq!(runner.runs(d), 1, "{d}");
    }
    assert_eq!(runner.total_runs(), 6);
    assert!(
        out[&app.test].contains(&out[&app.build]),
        "inputs reach the op in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_the_targets_need_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let solver = solver_at(dir.path(), FakeRunner::new(), 4);
    let (opts, _rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&app.deps), &opts)
        .await
        .unwrap();
    let expected = [app.base.clone(), app.deps.clone()].into_iter().collect();
    assert_eq!(solver.runner().ran(), expected);
}

/// Two builds in one process that need the same step at the same time
/// share one run of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_solves_share_a_step_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut g1 = Graph::new();
    let base = add(
        &mut g1,
        image("docker.io/library/alpine:3.20"),
        &[],
        "FROM alpine",
    );
    let shared = add(
        &mut g1,
        exec("make deps", 1),
        &[&base],
        "[a 2/3] RUN make deps",
    );
    let t1 = add(&mut g1, exec("make a", 1), &[&shared], "[a 3/3] RUN make a");
    let mut g2 = Graph::new();
    add(
        &mut g2,
        image("docker.io/library/alpine:3.20"),
        &[],
        "FROM alpine",
    );
    let shared2 = add(
        &mut g2,
        exec("make deps", 1),
        &[&base],
        "[b 2/3] RUN make deps",
    );
    let t2 = add(
        &mut g2,
        exec("make b", 1),
        &[&shared2],
        "[b 3/3] RUN make b",
    );
    assert_eq!(shared, shared2);

    let solver = solver_at(dir.path(), FakeRunner::new(), 4);
    solver.runner().gate(&shared);
    let (opts1, mut rx1) = options();
    let (opts2, mut rx2) = options();
    let s1 = solver.clone();
    let one = tokio::spawn(async move { s1.solve(&g1, &[t1], &opts1).await });
    let s2 = solver.clone();
    let two = tokio::spawn(async move { s2.solve(&g2, &[t2], &opts2).await });
    // Both builds wait on the step before it may finish.
    wait_for(&mut rx1, started(&shared)).await;
    wait_for(&mut rx2, started(&shared)).await;
    solver.runner().release(&shared);
    one.await.unwrap().unwrap();
    two.await.unwrap().unwrap();
    assert_eq!(solver.runner().runs(&shared), 1);
    assert_eq!(solver.runner().total_runs(), 4, "base, shared, a, b");
    for rx in [&mut rx1, &mut rx2] {
        let finished = |e: &Event| {
            matches!(e, Event::VertexLog { digest, bytes, .. }
                if *digest == shared && bytes == b"finished")
        };
        assert!(drain(rx).iter().any(finished), "both builds get the log");
    }
}

/// One build giving up does not stop a step another build still waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_solve_keeps_a_shared_step_running_for_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new();
    let base = add(
        &mut g,
        image("docker.io/library/alpine:3.20"),
        &[],
        "FROM alpine",
    );
    let shared = add(&mut g, exec("make deps", 1), &[&base], "RUN make deps");
    let solver = solver_at(dir.path(), FakeRunner::new(), 4);
    solver.runner().gate(&shared);
    let (opts1, mut rx1) = options();
    let (opts2, mut rx2) = options();
    let cancel1 = opts1.cancel.clone();
    let (s1, g1, t1) = (solver.clone(), g.clone(), shared.clone());
    let one = tokio::spawn(async move { s1.solve(&g1, &[t1], &opts1).await });
    let (s2, g2, t2) = (solver.clone(), g.clone(), shared.clone());
    let two = tokio::spawn(async move { s2.solve(&g2, &[t2], &opts2).await });
    wait_for(&mut rx1, started(&shared)).await;
    wait_for(&mut rx2, started(&shared)).await;
    cancel1.cancel();
    let err = one.await.unwrap().unwrap_err();
    assert!(matches!(err, SolveError::Cancelled), "{err:?}");
    solver.runner().release(&shared);
    two.await.unwrap().unwrap();
    assert_eq!(solver.runner().interrupted(&shared), 0);
    assert_eq!(solver.runner().runs(&shared), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelism_bound_is_never_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new();
    let base = add(
        &mut g,
        image("docker.io/library/alpine:3.20"),
        &[],
        "FROM alpine",
    );
    let targets: Vec<_> = (0..6)
        .map(|i| {
            add(
                &mut g,
                exec(&format!("job {i}"), 1),
                &[&base],
                &format!("RUN job {i}"),
            )
        })
        .collect();
    // Exec runs meet in pairs, so two must run together for any to finish:
    // the bound is reached, and the yields inside each run would let a
    // third start if the bound leaked.
    let solver = solver_at(dir.path(), FakeRunner::with_barrier(2), 2);
    let (opts, _rx) = options();
    solver.solve(&g, &targets, &opts).await.unwrap();
    assert_eq!(solver.runner().total_runs(), 7);
    assert_eq!(solver.runner().max_concurrent(), 2);
}

#[test]
fn default_parallelism_is_the_number_of_cores() {
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(SolverConfig::default().parallelism, cores);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_the_running_op_and_starts_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new();
    let base = add(
        &mut g,
        image("docker.io/library/alpine:3.20"),
        &[],
        "FROM alpine",
    );
    let jobs: Vec<_> = (0..4)
        .map(|i| {
            add(
                &mut g,
                exec(&format!("job {i}"), 1),
                &[&base],
                &format!("RUN job {i}"),
            )
        })
        .collect();
    let solver = solver_at(dir.path(), FakeRunner::new(), 1);
    for j in &jobs {
        solver.runner().gate(j);
    }
    let (opts, mut rx) = options();
    let cancel = opts.cancel.clone();
    let s = solver.clone();
    let (g2, targets) = (g.clone(), jobs.clone());
    let solve = tokio::spawn(async move { s.solve(&g2, &targets, &opts).await });
    let first = wait_for(
        &mut rx,
        |e| matches!(e, Event::VertexStarted { digest, .. } if jobs.contains(digest)),
    )
    .await;
    let Event::VertexStarted { digest: first, .. } = first else {
        unreachable!()
    };
    cancel.cancel();
    let err = solve.await.unwrap().unwrap_err();
    assert!(matches!(err, SolveError::Cancelled), "{err:?}");
    assert_eq!(
        solver.runner().interrupted(&first),
        1,
        "the running op was told"
    );
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        solver.runner().total_runs(),
        2,
        "base and the first job only"
    );
    let cancelled = drain(&mut rx)
        .into_iter()
        .filter(|e| matches!(e, Event::VertexCancelled { .. }))
        .count();
    assert_eq!(cancelled, 4, "every job reports it stopped");

    // Nothing of the cancelled build lingers: the same solver builds again.
    for j in &jobs {
        solver.runner().release(j);
    }
    let (opts, _rx) = options();
    solver.solve(&g, &jobs, &opts).await.unwrap();
    assert_eq!(solver.runner().runs(&first), 2);
    assert_eq!(solver.runner().total_runs(), 6, "base came from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_reports_the_vertex_and_cancels_its_siblings() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new();
    let base = add(
        &mut g,
        image("docker.io/library/alpine:3.20"),
        &[],
        "FROM alpine",
    );
    let location = Location {
        start_line: 4,
        start_column: 1,
        end_line: 4,
        end_column: 13,
    };
    let mut failing_meta = meta("[build 2/3] RUN make");
    failing_meta.location = Some(location);
    let failing = g
        .add_op(exec("make", 1), vec![base.clone()], failing_meta)
        .unwrap();
    let after = add(
        &mut g,
        exec("make install", 1),
        &[&failing],
        "[build 3/3] RUN make install",
    );
    let sibling = add(
        &mut g,
        exec("sleep forever", 1),
        &[&base],
        "[other 2/2] RUN sleep",
    );

    let solver = solver_at(dir.path(), FakeRunner::new(), 4);
    let runner = solver.runner();
    runner.fail(&failing);
    runner.gate(&failing);
    runner.gate(&sibling); // never released
    let (opts, mut rx) = options();
    let s = solver.clone();
    let targets = [after.clone(), sibling.clone()];
    let solve = tokio::spawn(async move { s.solve(&g, &targets, &opts).await });
    wait_started(&mut rx, &[&failing, &sibling]).await;
    solver.runner().release(&failing);
    let err = solve.await.unwrap().unwrap_err();

    let SolveError::Run { vertex, source } = &err else {
        panic!("expected a run failure, got {err:?}");
    };
    assert_eq!(vertex.digest, failing);
    assert_eq!(vertex.description, "[build 2/3] RUN make");
    assert_eq!(vertex.location, Some(location));
    assert_eq!(err.to_string(), "step `[build 2/3] RUN make` failed");
    assert!(
        source.to_string().starts_with("process exited with code 2"),
        "{source}"
    );
    let runner = solver.runner();
    assert_eq!(runner.interrupted(&sibling), 1, "the sibling was cancelled");
    assert_eq!(runner.runs(&after), 0, "nothing after the failure ran");
    let events = drain(&mut rx);
    assert!(events.iter().any(|e| matches!(e,
        Event::VertexFailed { digest, error } if *digest == failing && error.contains("exited with code 2"))));
    assert!(events.iter().any(|e| matches!(e,
        Event::VertexLog { digest, stream: LogStream::Stderr, bytes } if *digest == failing && bytes.starts_with(b"make: ***"))));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::VertexCancelled { digest } if *digest == sibling))
    );
    assert!(
        solver
            .store()
            .records()
            .unwrap()
            .iter()
            .all(|r| r.description == "FROM alpine"),
        "no record of a failed or cancelled op"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_each_vertex_story_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, app) = app_graph();
    let runner = FakeRunner::new();
    runner.write_file("app/main.c", "int main() {}");
    let solver = solver_at(dir.path(), runner, 2);
    let (opts, mut rx) = options();
    solver
        .solve(&graph, std::slice::from_ref(&app.test), &opts)
        .await
        .unwrap();
    let events = drain(&mut rx);
    let of = |d: &oci::Digest| -> Vec<&'static str> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::CacheMiss { digest, .. } if digest == d => Some("miss"),
                Event::VertexStarted { digest, .. } if digest == d => Some("started"),
                Event::VertexLog { digest, .. } if digest == d => Some("log"),
                Event::VertexCompleted { digest, .. } if digest == d => Some("completed"),
                Event::VertexCached { digest, .. } if digest == d => Some("cached"),
                Event::VertexFailed { digest, .. } | Event::VertexCancelled { digest }
                    if digest == d =>
                {
                    Some("failed")
                }
                _ => None,
            })
            .collect()
    };
    for d in [
        &app.base,
        &app.context,
        &app.deps,
        &app.copy,
        &app.build,
        &app.test,
    ] {
        assert_eq!(of(d), ["miss", "started", "log", "log", "completed"], "{d}");
    }
    let started = events.iter().find_map(|e| match e {
        Event::VertexStarted {
            digest,
            name,
            platform,
        } if *digest == app.build => Some((name.clone(), platform.clone())),
        _ => None,
    });
    assert_eq!(
        started,
        Some(("[build 4/4] RUN cc /src/main.c".to_owned(), Some(amd64())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_target_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, _) = app_graph();
    let solver = solver_at(dir.path(), FakeRunner::new(), 2);
    let missing = oci::Digest::sha256(b"nope");
    let err = solver
        .solve(&graph, std::slice::from_ref(&missing), &Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("target {missing} is not in the graph")
    );
    assert_eq!(solver.runner().total_runs(), 0);
}
