//! Builder instances: `create`, `use`, `inspect`, `ls`, `rm`, `stop`, and which
//! instance is selected (`--builder`/`MANIFOLD_BUILDER`, `use`, `default`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A configuration directory and a state root, both fresh.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_manifold"));
        cmd.args(args)
            .env("MANIFOLD_CONFIG", self.config())
            .env("MANIFOLD_ROOT", self.root())
            .env_remove("MANIFOLD_BUILDER")
            .env_remove("MANIFOLD_RUNTIME")
            .stdin(Stdio::null());
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.cmd(args))
    }

    fn fails(&self, args: &[&str]) -> String {
        fails(&mut self.cmd(args))
    }

    fn builder_file(&self, name: &str) -> PathBuf {
        self.config().join("builders").join(format!("{name}.json"))
    }

    /// A socket path under the test directory that nothing listens on.
    fn socket(&self, name: &str) -> String {
        format!("unix://{}", self.dir.path().join(name).display())
    }
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; its standard error.
fn fails(cmd: &mut Command) -> String {
    let out: Output = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "{cmd:?} unexpectedly succeeded\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{cmd:?}: not a clean error exit"
    );
    String::from_utf8(out.stderr).unwrap()
}

/// The value of `Label:` lines in `inspect` output.
fn field<'a>(out: &'a str, label: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.strip_prefix(&format!("{label}:")))
        .map(str::trim)
        .collect()
}

/// The selected instance, as `inspect` reports it.
fn inspected_name(cmd: &mut Command) -> String {
    let out = ok(cmd);
    field(&out, "Name")[0].to_owned()
}

#[test]
fn seed_sequence_create_use_inspect_bootstrap() {
    let env = Env::new();
    assert_eq!(env.ok(&["create", "builder"]).trim(), "builder");
    env.ok(&["use", "builder"]);
    assert_eq!(
        std::fs::read_to_string(env.config().join("builders/current")).unwrap(),
        "builder\n"
    );
    assert!(
        !env.root().exists(),
        "create and use leave the state root alone"
    );

    let out = env.ok(&["inspect", "--bootstrap"]);
    assert_eq!(field(&out, "Name"), ["builder", "builder0"]);
    assert_eq!(field(&out, "Driver"), ["local"]);
    assert_eq!(field(&out, "Endpoint"), ["in-process"]);
    assert_eq!(field(&out, "Status"), ["running"]);
    assert_eq!(field(&out, "Version"), [env!("CARGO_PKG_VERSION")]);
    assert_eq!(
        field(&out, "State root"),
        [env.root().display().to_string()]
    );
    let platforms = field(&out, "Platforms")[0];
    let host = oci::Platform::host().to_string();
    assert!(
        platforms.split(", ").any(|p| p == host),
        "the host platform {host} is listed: {platforms}"
    );
    assert!(field(&out, "Cache usage")[0].ends_with('B'), "{out}");
    assert!(
        env.root().join("oci/index.json").is_file(),
        "--bootstrap creates the store"
    );
}

#[test]
fn inspect_without_bootstrap_reports_inactive_and_creates_nothing() {
    let env = Env::new();
    let out = env.ok(&["inspect"]);
    assert_eq!(field(&out, "Name"), ["default", "default"]);
    assert_eq!(field(&out, "Status"), ["inactive"]);
    assert!(!env.root().exists());
    env.ok(&["inspect", "--bootstrap"]);
    assert_eq!(field(&env.ok(&["inspect"]), "Status"), ["running"]);
}

#[test]
fn declared_platforms_come_first_marked_with_a_star() {
    let env = Env::new();
    env.ok(&[
        "create",
        "--name",
        "b",
        "--platform",
        "linux/s390x,linux/arm64/v8",
    ]);
    let out = env.ok(&["inspect", "b"]);
    let platforms: Vec<&str> = field(&out, "Platforms")[0].split(", ").collect();
    assert_eq!(platforms[..2], ["linux/s390x*", "linux/arm64*"]);
    let host = oci::Platform::host().to_string();
    assert!(platforms.contains(&host.as_str()), "{platforms:?}");
    let stored = std::fs::read_to_string(env.builder_file("b")).unwrap();
    assert!(
        stored.contains("\"linux/arm64\""),
        "stored normalised: {stored}"
    );
}

#[test]
fn bootstrap_fails_without_the_oci_runtime() {
    let env = Env::new();
    env.ok(&["create", "--use", "builder"]);
    let mut cmd = env.cmd(&["inspect", "--bootstrap"]);
    cmd.env("MANIFOLD_RUNTIME", env.dir.path().join("no-runc"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        field(&stdout, "Status")[0].starts_with("error: OCI runtime"),
        "{stdout}"
    );
    assert!(stderr.contains("node builder0 is not ready"), "{stderr}");
    assert!(stderr.contains("hint: install runc"), "{stderr}");
}

#[test]
fn create_append_ls_rm() {
    let env = Env::new();
    let a = env.socket("a.sock");
    let b = env.socket("b.sock");
    assert_eq!(
        env.ok(&["create", "--name", "farm", "--platform", "linux/arm64", &a])
            .trim(),
        "farm"
    );
    let stored = std::fs::read_to_string(env.builder_file("farm")).unwrap();
    assert!(
        stored.contains("\"driver\": \"remote\""),
        "an endpoint means remote: {stored}"
    );
    env.ok(&["create", "--append", "--name", "farm", &b]);
    env.ok(&[
        "create",
        "--append",
        "--name",
        "farm",
        "--node",
        "big",
        &env.socket("c.sock"),
    ]);
    env.ok(&["create", "local1"]);
    // Without a name, the first free builderN.
    assert_eq!(env.ok(&["create"]).trim(), "builder0");
    assert_eq!(env.ok(&["create"]).trim(), "builder1");

    let out = env.ok(&["inspect", "farm"]);
    assert_eq!(field(&out, "Name"), ["farm", "farm0", "farm1", "big"]);
    assert_eq!(field(&out, "Endpoint")[..2], [a.as_str(), b.as_str()]);

    let ls = env.ok(&["ls"]);
    let firsts: Vec<&str> = ls
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with(' '))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        firsts,
        ["default", "builder0", "builder1", "farm", "local1"],
        "{ls}"
    );
    assert!(ls.lines().any(|l| l.starts_with("default *")), "{ls}");
    assert!(ls.contains(&format!("\\_ {a}")), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.contains("\\_ farm1") && l.contains(" error")),
        "unreachable nodes show an error: {ls}"
    );

    env.ok(&["use", "farm"]);
    assert!(env.ok(&["ls"]).lines().any(|l| l.starts_with("farm *")));
    let mut rm = env.cmd(&["rm", "farm", "local1"]);
    let out = rm.output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("builds now use the default instance"),
        "{stderr}"
    );
    assert!(!env.builder_file("farm").exists());
    assert!(!env.config().join("builders/current").exists());
    let ls = env.ok(&["ls"]);
    assert!(!ls.contains("farm") && !ls.contains("local1"), "{ls}");
    assert!(ls.lines().any(|l| l.starts_with("default *")), "{ls}");
    let leftovers: Vec<_> = std::fs::read_dir(env.config().join("builders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn create_use_selects_and_builder_flag_and_env_take_precedence() {
    let env = Env::new();
    env.ok(&["create", "one"]);
    env.ok(&["create", "--use", "two"]);
    assert_eq!(inspected_name(&mut env.cmd(&["inspect"])), "two");
    env.ok(&["use", "one"]);
    assert_eq!(inspected_name(&mut env.cmd(&["inspect"])), "one");

    let mut with_env = env.cmd(&["inspect"]);
    with_env.env("MANIFOLD_BUILDER", "two");
    assert_eq!(inspected_name(&mut with_env), "two", "env over `use`");

    let mut flag_and_env = env.cmd(&["--builder", "default", "inspect"]);
    flag_and_env.env("MANIFOLD_BUILDER", "two");
    assert_eq!(
        inspected_name(&mut flag_and_env),
        "default",
        "flag over env"
    );

    // The flag works after the verb too, and `ls` marks what it selects.
    let ls = env.ok(&["ls", "--builder", "two"]);
    assert!(ls.lines().any(|l| l.starts_with("two *")), "{ls}");
    assert!(ls.lines().any(|l| l.starts_with("one ")), "{ls}");

    let stderr = env.fails(&["--builder", "nope", "inspect"]);
    assert!(stderr.contains("selected by --builder"), "{stderr}");
    assert!(
        stderr.contains("no builder instance named \"nope\""),
        "{stderr}"
    );
    assert!(stderr.contains("hint: `manifold ls`"), "{stderr}");

    env.ok(&["use", "default"]);
    assert!(!env.config().join("builders/current").exists());
    assert_eq!(inspected_name(&mut env.cmd(&["inspect"])), "default");
    env.ok(&["use", "--default", "one"]);
    assert_eq!(inspected_name(&mut env.cmd(&["inspect"])), "one");
}

#[test]
fn remote_inspect_shows_the_node_error_naming_the_endpoint() {
    let env = Env::new();
    let sock = env.socket("daemon.sock");
    env.ok(&["create", "--name", "farm", "--driver", "remote", &sock]);
    let out = env.ok(&["inspect", "farm"]);
    assert_eq!(field(&out, "Driver"), ["remote"]);
    assert_eq!(field(&out, "Endpoint"), [sock.as_str()]);
    let status = field(&out, "Status")[0];
    assert!(
        status.starts_with("error: ") && status.contains(&sock),
        "status names the endpoint: {status}"
    );
    let stderr = env.fails(&["inspect", "--bootstrap", "farm"]);
    assert!(stderr.contains("node farm0 is not ready"), "{stderr}");
    assert!(
        stderr.contains(&format!("hint: start `manifold daemon` at {sock}")),
        "{stderr}"
    );
    // create --bootstrap creates the instance, then reports the node is not ready.
    let stderr = env.fails(&["create", "--bootstrap", "--name", "f2", &sock]);
    assert!(stderr.contains("node f20 is not ready"), "{stderr}");
    assert!(env.builder_file("f2").exists());
}

#[test]
fn tcp_endpoints_need_tls_files() {
    let env = Env::new();
    let stderr = env.fails(&["create", "--name", "t", "tcp://127.0.0.1:1"]);
    assert!(stderr.contains("needs a CA certificate"), "{stderr}");
    assert!(
        stderr.contains("hint: pass --driver-opt cacert="),
        "{stderr}"
    );
    let stderr = env.fails(&[
        "create",
        "--name",
        "t",
        "--driver-opt",
        "cacert=nope.pem",
        "tcp://127.0.0.1:1",
    ]);
    assert!(
        stderr.contains("--driver-opt cacert: no file at"),
        "{stderr}"
    );

    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(env.dir.path().join(f), b"").unwrap();
    }
    let mut cmd = env.cmd(&[
        "create",
        "--name",
        "t",
        "--driver-opt",
        "cacert=ca.pem,cert=cert.pem",
        "--driver-opt",
        "key=key.pem",
        "tcp://127.0.0.1:1",
    ]);
    ok(cmd.current_dir(env.dir.path()));
    let out = env.ok(&["inspect", "t"]);
    let ca = env.dir.path().join("ca.pem");
    assert_eq!(
        field(&out, "TLS CA"),
        [ca.display().to_string()],
        "stored absolute"
    );
    assert!(field(&out, "Status")[0].starts_with("error: "), "{out}");
    assert!(field(&out, "Status")[0].contains("127.0.0.1:1"), "{out}");

    let stderr = env.fails(&[
        "create",
        "--name",
        "u",
        "--driver-opt",
        &format!("cacert={}", ca.display()),
        &env.socket("s"),
    ]);
    assert!(
        stderr.contains("TLS files are for tcp:// endpoints"),
        "{stderr}"
    );
}

#[test]
fn stop_is_honest_about_what_it_does() {
    let env = Env::new();
    let out = env.cmd(&["stop"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to stop"));
    let sock = env.socket("d.sock");
    env.ok(&["create", "--name", "farm", &sock]);
    // As buildx's remote driver: a daemon it did not start is left running, and
    // that is said per node.
    let out = env.cmd(&["stop", "farm"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is a remote daemon manifold does not manage: left running"),
        "{stderr}"
    );
    assert!(stderr.contains(&sock), "{stderr}");
}

#[test]
fn bad_input_is_refused_with_the_culprit_named() {
    let env = Env::new();
    env.ok(&["create", "builder"]);
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["create", "builder"],
            &[
                "builder instance builder already exists",
                "hint: `manifold create --append",
            ],
        ),
        (&["create", "default"], &["\"default\" is taken"]),
        (
            &["create", "../etc"],
            &[
                "invalid builder instance name \"../etc\"",
                "hint: names start",
            ],
        ),
        (
            &["create", "--name", "a", "b"],
            &["two names given: --name a and \"b\""],
        ),
        (
            &["create", "--append", "--name", "nope", "unix:///s"],
            &["no builder instance named \"nope\"", "hint: `manifold ls`"],
        ),
        (&["create", "--append"], &["--append needs the instance"]),
        (
            &["create", "--append", "builder"],
            &["uses the local driver, which has one node"],
        ),
        (
            &["create", "--driver", "local", "--name", "x", "unix:///s"],
            &[
                "the local driver takes no endpoint (given unix:///s)",
                "hint: drop the endpoint",
            ],
        ),
        (
            &["create", "--driver", "remote", "x"],
            &[
                "the remote driver needs the daemon's endpoint",
                "hint: pass unix:///PATH",
            ],
        ),
        (
            &["create", "--name", "x", "unix://rel.sock"],
            &["invalid daemon address \"unix://rel.sock\""],
        ),
        (
            &["create", "--platform", "linux/arm64/v8/x", "x"],
            &["invalid --platform", "too many components"],
        ),
        (
            &["create", "--node", "a/b", "x"],
            &["invalid node name \"a/b\""],
        ),
        (
            &[
                "create",
                "--driver-opt",
                "foo=1",
                "--name",
                "x",
                "unix:///s",
            ],
            &["unknown --driver-opt \"foo\""],
        ),
        (
            &["create", "--driver-opt", "cacert=/etc/passwd", "x"],
            &["the local driver takes no --driver-opt"],
        ),
        (&["use", "nope"], &["no builder instance named \"nope\""]),
        (&["use", "a/b"], &["invalid builder instance name \"a/b\""]),
        (
            &["inspect", "nope"],
            &["no builder instance named \"nope\""],
        ),
        (
            &["rm", "default"],
            &[
                "the default instance cannot be removed",
                "hint: it is the implicit local instance",
            ],
        ),
        (&["rm", "nope"], &["no builder instance named \"nope\""]),
        (
            &["--builder", "../x", "inspect"],
            &["invalid builder instance name \"../x\""],
        ),
    ];
    for (args, wants) in cases {
        let stderr = env.fails(args);
        for want in *wants {
            assert!(
                stderr.contains(want),
                "manifold {args:?}: want {want:?} in\n{stderr}"
            );
        }
    }
    // Nothing was written by the refused commands.
    let files: Vec<_> = std::fs::read_dir(env.config().join("builders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(files, ["builder.json"]);
}

#[test]
fn a_broken_instance_file_is_named_and_the_rest_still_list() {
    let env = Env::new();
    env.ok(&["create", "good"]);
    std::fs::write(env.builder_file("bad"), b"{not json").unwrap();
    let mut cmd = env.cmd(&["ls"]);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("good ")), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("bad ") && l.contains("error")),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot parse {}",
            env.builder_file("bad").display()
        )),
        "{stderr}"
    );
    let stderr = env.fails(&["inspect", "bad"]);
    assert!(stderr.contains("cannot parse"), "{stderr}");
    // rm still removes it.
    env.ok(&["rm", "bad"]);
    assert!(!Path::new(&env.builder_file("bad")).exists());
}

#[test]
fn leave_removes_one_node_but_never_the_last() {
    let env = Env::new();
    env.ok(&["create", "--name", "farm", &env.socket("a.sock")]);
    env.ok(&[
        "create",
        "--append",
        "--name",
        "farm",
        &env.socket("b.sock"),
    ]);
    let stderr = env.fails(&["create", "--leave", "--name", "farm", "--node", "nope"]);
    assert!(
        stderr.contains("has no node nope (its nodes: farm0, farm1)"),
        "{stderr}"
    );
    env.ok(&["create", "--leave", "--name", "farm", "--node", "farm0"]);
    assert_eq!(
        field(&env.ok(&["inspect", "farm"]), "Name"),
        ["farm", "farm1"]
    );
    let stderr = env.fails(&["create", "--leave", "farm", "--node", "farm1"]);
    assert!(
        stderr.contains("farm1 is the only node of farm"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: `manifold rm farm`"), "{stderr}");
    // The freed name is reused by the next node.
    env.ok(&[
        "create",
        "--append",
        "--name",
        "farm",
        &env.socket("c.sock"),
    ]);
    assert_eq!(
        field(&env.ok(&["inspect", "farm"]), "Name"),
        ["farm", "farm1", "farm0"]
    );
}

#[test]
fn ls_json_lists_instances_nodes_and_errors() {
    let env = Env::new();
    let sock = env.socket("a.sock");
    env.ok(&[
        "create",
        "--use",
        "--name",
        "farm",
        "--platform",
        "linux/arm64",
        &sock,
    ]);
    std::fs::write(env.builder_file("bad"), b"[]").unwrap();
    let out = env.ok(&["ls", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "bad", "farm"]);
    assert_eq!(v[0]["driver"], "local");
    assert_eq!(v[0]["selected"], false);
    assert_eq!(v[0]["nodes"][0]["endpoint"], serde_json::Value::Null);
    assert!(
        v[1]["error"].as_str().unwrap().contains("cannot parse"),
        "{v}"
    );
    let farm = &v[2];
    assert_eq!(farm["selected"], true);
    assert_eq!(farm["driver"], "remote");
    let node = &farm["nodes"][0];
    assert_eq!(node["name"], "farm0");
    assert_eq!(node["endpoint"], sock.as_str());
    assert_eq!(node["status"], "error");
    assert!(node["error"].as_str().unwrap().contains(&sock), "{node}");
    assert_eq!(
        node["declared_platforms"],
        serde_json::json!(["linux/arm64"])
    );
}

#[test]
fn concurrent_appends_all_land() {
    let env = Env::new();
    env.ok(&["create", "--name", "farm", &env.socket("s0")]);
    let children: Vec<_> = (1..=6)
        .map(|i| {
            env.cmd(&[
                "create",
                "--append",
                "--name",
                "farm",
                &env.socket(&format!("s{i}")),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let out = env.ok(&["inspect", "farm"]);
    let mut nodes = field(&out, "Name")[1..].to_vec();
    nodes.sort();
    assert_eq!(
        nodes,
        [
            "farm0", "farm1", "farm2", "farm3", "farm4", "farm5", "farm6"
        ],
        "each append saw the others' nodes (the flock serialises them)"
    );
    assert_eq!(field(&out, "Endpoint").len(), 7);
}
