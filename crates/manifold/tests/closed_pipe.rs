//! A closed pipe is not a crash: every listing command exits 0, with nothing on
//! stderr, when the reader of its stdout goes away (`manifold images | head -1`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use content::Store;
use oci::Reference;
use registry::{Anonymous, Client, RegistryConfig};
use testkit::registry::{Auth, DistRegistry};

fn command(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_manifold"));
    c.args(args)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("DOCKER_CONFIG", root.join("docker"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn finish(args: &[&str], out: Output) {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "manifold {args:?} with a closed stdout: {:?}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The reader is gone before the command writes a byte: its first write fails.
fn closed_before_any_output(root: &Path, args: &[&str]) {
    let mut child = command(root, args).spawn().unwrap();
    drop(child.stdout.take());
    finish(args, child.wait_with_output().unwrap());
}

/// As `| head -1`: one line read, then the reader goes away.
fn closed_after_one_line(root: &Path, args: &[&str]) {
    let mut child = command(root, args).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty(), "manifold {args:?} printed nothing");
    finish(args, child.wait_with_output().unwrap());
}

#[test]
fn listing_commands_exit_0_when_their_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A store with many images, so that a listing is longer than one line.
    for i in 0..40 {
        testkit::base::busybox_index(root, &format!("localhost/busybox:t{i:02}"), &["amd64"]);
    }
    let reg = DistRegistry::start(Auth::Open);
    let name = format!("{}/hello:latest", reg.addr);
    {
        let src = tempfile::tempdir().unwrap();
        let store = Store::open(src.path()).unwrap();
        let lease = store.lease().unwrap();
        let idx = testkit::write_index(&store, &lease, &["linux/amd64", "linux/arm64"]);
        let client = Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(client.push(&store, &idx, &Reference::parse(&name).unwrap(), None))
            .unwrap();
    }
    let listings: Vec<Vec<&str>> = vec![
        vec!["version"],
        vec!["binfmt", "ls"],
        vec!["images"],
        vec!["images", "-q"],
        vec!["du"],
        vec!["ls"],
        vec!["imagetools", "inspect", &name],
        vec!["imagetools", "inspect", "--raw", &name],
        vec!["imagetools", "inspect", "--format", "json", &name],
    ];
    for args in &listings {
        closed_before_any_output(root, args);
        closed_after_one_line(root, args);
    }
}

#[test]
fn an_export_to_a_closed_stdout_is_still_an_error() {
    // A listing cut short loses nothing; an image written to a pipe nobody reads is
    // not delivered, and says so.
    let dir = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    std::fs::write(ctx.path().join("f"), vec![b'x'; 1 << 20]).unwrap();
    let args = [
        "build",
        "-q",
        "-o",
        "type=tar,dest=-",
        ctx.path().to_str().unwrap(),
    ];
    let mut child = command(dir.path(), &args).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: cannot write the filesystem tar") && stderr.contains("Broken pipe"),
        "{stderr}"
    );
}
