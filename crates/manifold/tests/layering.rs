//! Architectural layering check for the workspace.
//!
//! Every member declares `[package.metadata.manifold] layer = <integer>` (0 is
//! the lowest) or `layer = "test"` for dev-only fixture crates. Dependencies
//! must point strictly down; "test" crates may only be dev-dependencies, and
//! may themselves depend on anything. Beyond the layers: `oci`, `ignore`,
//! `dockerfile`, `graph` and `frontend` do no IO (no tokio, reqwest, rustix,
//! tempfile or walkdir anywhere below them, no files, sockets or processes in their
//! own code), only the binary uses `anyhow` and `clap`, and `worker` does not need
//! the Dockerfile parser.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use DepKind::{Build, Dev, Normal};
use Layer::{Number, Test};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Number(u32),
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DepKind {
    Normal,
    Dev,
    Build,
}

#[derive(Debug)]
struct CrateNode {
    name: String,
    /// `Err` describes a missing or malformed layer declaration.
    layer: Result<Layer, String>,
    /// Dependencies on other workspace members: (package name, kind).
    deps: Vec<(String, DepKind)>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation(String);

fn parse_layer(metadata: &Value) -> Result<Layer, String> {
    match metadata.pointer("/manifold/layer") {
        None | Some(Value::Null) => Err("missing `[package.metadata.manifold] layer`".to_string()),
        Some(Value::String(s)) if s == "test" => Ok(Layer::Test),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Layer::Number)
            .ok_or_else(|| {
                format!("malformed layer `{v}` (expected a non-negative integer or \"test\")")
            }),
    }
}

/// Builds the graph from `cargo metadata --format-version 1 --no-deps` output.
fn graph_from_metadata(meta: &Value) -> Vec<CrateNode> {
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages: Vec<&Value> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
        .collect();
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|p| CrateNode {
            name: p["name"].as_str().expect("package name").to_string(),
            layer: parse_layer(&p["metadata"]),
            deps: p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                // `name` is the package name even when renamed (`rename` holds
                // the alias); workspace path deps have no registry `source`.
                .filter(|d| d["source"].is_null())
                .filter_map(|d| {
                    let name = d["name"].as_str()?;
                    let kind = match d["kind"].as_str() {
                        None => DepKind::Normal,
                        Some("dev") => DepKind::Dev,
                        Some("build") => DepKind::Build,
                        Some(other) => panic!("unknown dependency kind {other:?}"),
                    };
                    names.contains(&name).then(|| (name.to_string(), kind))
                })
                .collect(),
        })
        .collect()
}

/// Checks the layering rules and returns every violation found.
fn check(graph: &[CrateNode]) -> Vec<Violation> {
    let layers: HashMap<&str, &Result<Layer, String>> =
        graph.iter().map(|c| (c.name.as_str(), &c.layer)).collect();
    let mut out = Vec::new();
    for krate in graph {
        if let Err(problem) = &krate.layer {
            out.push(Violation(format!("{}: {problem}", krate.name)));
        }
        for (dep, kind) in &krate.deps {
            let via = match kind {
                DepKind::Normal => "",
                DepKind::Dev => " (dev-dependency)",
                DepKind::Build => " (build-dependency)",
            };
            // Unknown crates and missing/malformed layers are reported elsewhere.
            let Some(Ok(dep_layer)) = layers.get(dep.as_str()).copied() else {
                continue;
            };
            match (&krate.layer, dep_layer, kind) {
                (Ok(Layer::Test), _, _) | (_, Layer::Test, DepKind::Dev) => {}
                (_, Layer::Test, _) => out.push(Violation(format!(
                    "{} depends on {dep} (layer test){via}: test crates may only be dev-dependencies",
                    krate.name
                ))),
                (Ok(Layer::Number(own)), Layer::Number(theirs), _) if theirs >= own => {
                    let what = if theirs == own { " (same layer)" } else { "" };
                    out.push(Violation(format!(
                        "{} (layer {own}) depends on {dep} (layer {theirs}){via}: \
                         dependencies must point down{what}",
                        krate.name
                    )));
                }
                _ => {}
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn workspace_dependencies_point_down() {
    let meta = metadata(&["--no-deps"]);
    let graph = graph_from_metadata(&meta);
    for expected in ["manifold-oci", "manifold-content", "manifold"] {
        assert!(
            graph.iter().any(|c| c.name == expected),
            "workspace member {expected} not found in cargo metadata"
        );
    }
    // Renamed workspace deps (e.g. `oci = { package = "manifold-oci" }`) must be seen.
    let manifold = graph.iter().find(|c| c.name == "manifold").unwrap();
    assert!(
        manifold
            .deps
            .contains(&("manifold-oci".into(), DepKind::Normal))
    );
    let violations = check(&graph);
    let report: Vec<String> = violations.iter().map(|v| format!("  - {}", v.0)).collect();
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        report.join("\n")
    );
}

fn node(name: &str, layer: Result<Layer, &str>, deps: &[(&str, DepKind)]) -> CrateNode {
    CrateNode {
        name: name.to_string(),
        layer: layer.map_err(str::to_string),
        deps: deps.iter().map(|(d, k)| (d.to_string(), *k)).collect(),
    }
}

#[test]
fn upward_dependency_detected() {
    let graph = [
        node(
            "manifold-oci",
            Ok(Number(0)),
            &[("manifold-content", Normal)],
        ),
        node("manifold-content", Ok(Number(1)), &[]),
    ];
    assert_eq!(
        check(&graph),
        [Violation(
            "manifold-oci (layer 0) depends on manifold-content (layer 1): dependencies must point down"
                .into()
        )]
    );
}

#[test]
fn same_layer_dependency_detected() {
    let graph = [
        node("a", Ok(Number(2)), &[("b", Dev)]),
        node("b", Ok(Number(2)), &[]),
    ];
    let v = check(&graph);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].0.contains("a (layer 2) depends on b (layer 2)"),
        "{v:?}"
    );
    assert!(v[0].0.contains("same layer"), "{v:?}");
}

#[test]
fn missing_layer_detected() {
    let meta = serde_json::json!({
        "workspace_members": ["id-a", "id-b"],
        "packages": [
            { "id": "id-a", "name": "a", "metadata": null, "dependencies": [] },
            { "id": "id-b", "name": "b", "metadata": { "manifold": { "layer": "x" } },
              "dependencies": [] },
        ],
    });
    let v = check(&graph_from_metadata(&meta));
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].0.starts_with("a: missing"), "{v:?}");
    assert!(v[1].0.starts_with("b: malformed layer"), "{v:?}");
}

#[test]
fn test_crate_as_normal_dependency_detected() {
    let graph = [
        node("lib", Ok(Number(3)), &[("kit", Normal)]),
        node("tool", Ok(Number(4)), &[("kit", Build)]),
        node("kit", Ok(Test), &[]),
    ];
    let v = check(&graph);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(
        v.iter()
            .all(|v| v.0.contains("test crates may only be dev-dependencies"))
    );
}

#[test]
fn dev_dependency_on_test_crate_allowed() {
    let graph = [
        node("lib", Ok(Number(0)), &[("kit", Dev)]),
        node("kit", Ok(Test), &[("lib", Normal)]),
    ];
    assert_eq!(check(&graph), []);
}

#[test]
fn valid_graph_has_no_violations() {
    let graph = [
        node("oci", Ok(Number(0)), &[]),
        node("content", Ok(Number(1)), &[("oci", Normal), ("kit", Dev)]),
        node("cli", Ok(Number(6)), &[("content", Normal), ("oci", Build)]),
        node("kit", Ok(Test), &[("content", Normal), ("cli", Normal)]),
    ];
    assert_eq!(check(&graph), []);
}

/// `cargo metadata` of the workspace, with the resolved dependency graph.
fn full_metadata() -> Value {
    metadata(&["--locked"])
}

/// `cargo metadata --format-version 1 [extra…]` of the workspace.
fn metadata(extra: &[&str]) -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .args(extra)
        .current_dir(&root)
        .output()
        .expect("failed to run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata JSON")
}

/// The names of every package `name` needs to run (normal dependencies, transitively;
/// not dev- or build-dependencies).
fn runtime_closure(meta: &Value, name: &str) -> std::collections::BTreeSet<String> {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = names
        .iter()
        .find(|(_, n)| **n == name)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("no package {name}"));
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[dep_id].to_owned()) {
                todo.push(dep_id);
            }
        }
    }
    seen
}

/// The Rust sources under `crates/<dir>/src`.
fn sources(dir: &str) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(dir)
            .join("src"),
    ];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under crates/{dir}/src");
    out
}

/// The crates that only compute: no files, sockets, processes or runtimes, in their
/// own code or anything they depend on.
const PURE: [(&str, &str); 5] = [
    ("manifold-oci", "oci"),
    ("manifold-ignore", "ignore"),
    ("manifold-dockerfile", "dockerfile"),
    ("manifold-graph", "graph"),
    ("manifold-frontend", "frontend"),
];

#[test]
fn pure_crates_do_no_io() {
    let meta = full_metadata();
    for (package, dir) in PURE {
        let closure = runtime_closure(&meta, package);
        for io in ["tokio", "reqwest", "rustix", "tempfile", "walkdir"] {
            assert!(
                !closure.contains(io),
                "{package} depends (transitively) on {io}: it must do no IO"
            );
        }
        for (path, text) in sources(dir) {
            // Address types (`std::net::Ipv6Addr`) are values; sockets are IO.
            for io in [
                "std::fs",
                "std::process",
                "std::io::stdin",
                "std::io::stdout",
                "TcpStream",
                "TcpListener",
                "UdpSocket",
                "std::env::var",
            ] {
                assert!(
                    !text.contains(io),
                    "{} uses {io}: {package} must do no IO",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn only_the_binary_uses_anyhow_and_clap_and_worker_reads_no_dockerfile() {
    let meta = full_metadata();
    let members: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"].is_null())
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(members.len() >= 15, "{members:?}");
    for member in members.iter().filter(|m| *m != "manifold") {
        let closure = runtime_closure(&meta, member);
        for cli in ["anyhow", "clap"] {
            assert!(
                !closure.contains(cli),
                "{member} depends on {cli}: only the binary may"
            );
        }
    }
    let worker = runtime_closure(&meta, "manifold-worker");
    assert!(
        !worker.contains("manifold-dockerfile"),
        "the worker runs steps; it must not need the Dockerfile parser"
    );
    assert!(worker.contains("manifold-ignore"), "{worker:?}");
}
