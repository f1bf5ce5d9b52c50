//! The `manifold` binary as a user runs it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use content::Store;

fn manifold(root: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_manifold"));
    cmd.env("MANIFOLD_ROOT", root).stdin(Stdio::null());
    cmd
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

fn fails(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} unexpectedly succeeded");
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn version_prints_the_package_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(manifold(dir.path()).arg("version"));
    assert_eq!(
        out.trim(),
        format!("manifold {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_verb_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let top = ok(manifold(dir.path()).arg("--help"));
    let verbs = ["version", "images", "du", "prune", "fsck"];
    for verb in verbs {
        assert!(top.contains(verb), "top-level help lists {verb}");
        let help = ok(manifold(dir.path()).args([verb, "--help"]));
        assert!(help.contains("Usage: manifold"), "{verb} --help: {help}");
    }
    assert!(ok(manifold(dir.path()).args(["prune", "--help"])).contains("--force"));
}

#[test]
fn images_on_an_empty_root_creates_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new-root");
    let out = ok(manifold(&root).arg("images"));
    assert!(out.starts_with("NAME"), "{out}");
    assert_eq!(out.lines().count(), 1);
    assert!(root.join("oci/oci-layout").is_file());
    assert!(root.join("oci/index.json").is_file());
    assert!(root.join("oci/blobs/sha256").is_dir());
}

#[test]
fn images_lists_names_platforms_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let idx = testkit::write_index(
        &store,
        &lease,
        &["linux/amd64", "linux/arm64", "linux/arm/v7"],
    );
    store.set_name("localhost:5000/hello:latest", &idx).unwrap();
    drop(lease);
    let table = ok(manifold(dir.path()).arg("images"));
    let row = table.lines().nth(1).unwrap();
    assert!(row.starts_with("localhost:5000/hello:latest"), "{table}");
    assert!(row.contains(idx.digest.short()), "{table}");
    assert!(
        row.ends_with("linux/amd64,linux/arm/v7,linux/arm64"),
        "{table}"
    );

    let json = ok(manifold(dir.path()).args(["images", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["digest"], idx.digest.to_string());
    let size = v[0]["size"].as_u64().unwrap();
    let blobs: u64 = std::fs::read_dir(dir.path().join("oci/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(size, blobs, "size counts every blob of the image once");

    let quiet = ok(manifold(dir.path()).args(["images", "-q"]));
    assert_eq!(quiet, "localhost:5000/hello:latest\n");
}

#[test]
fn prune_asks_first_and_removes_only_unused_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    {
        let lease = store.lease().unwrap();
        let idx = testkit::write_index(&store, &lease, &["linux/amd64"]);
        store.set_name("kept", &idx).unwrap();
        store
            .put_bytes(&lease, "application/octet-stream", b"unused")
            .unwrap();
    }
    let out = fails(manifold(dir.path()).arg("prune"));
    let err = stderr(&out);
    assert!(err.contains("standard input is not a terminal"), "{err}");
    assert!(err.contains("hint: pass --force"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("oci/blobs/sha256"))
            .unwrap()
            .count(),
        5
    );

    let out = ok(manifold(dir.path()).args(["prune", "--force"]));
    assert!(out.contains("(1 blob(s))"), "{out}");
    assert_eq!(store.names().unwrap().len(), 1);
    assert!(store.fsck().unwrap().is_clean());

    let out = ok(manifold(dir.path()).args(["prune", "--all", "--force"]));
    assert!(out.contains("(4 blob(s))"), "{out}");
    assert!(store.names().unwrap().is_empty());
}

#[test]
fn du_reports_reachable_and_reclaimable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    store
        .put_bytes(&lease, "application/octet-stream", &[0u8; 2500])
        .unwrap();
    let out = ok(manifold(dir.path()).arg("du"));
    let reclaimable = out.lines().find(|l| l.starts_with("reclaimable")).unwrap();
    assert!(reclaimable.contains("2.5kB"), "{out}");
}

#[test]
fn fsck_fails_on_a_corrupt_blob_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let d = store
        .put_bytes(&lease, "application/octet-stream", b"precious")
        .unwrap();
    ok(manifold(dir.path()).arg("fsck"));
    std::fs::write(store.blob_path(&d.digest), b"Precious").unwrap();
    let out = fails(manifold(dir.path()).arg("fsck"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("corrupt: blob {}", d.digest)),
        "{stdout}"
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("error: store check failed: 1 corrupt"),
        "{err}"
    );
    assert!(err.contains("\nhint: "), "{err}");
}

#[test]
fn an_unusable_root_prints_the_cause_chain() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let out = fails(manifold(&file.join("root")).arg("images"));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: cannot open the state root"),
        "{err}"
    );
    assert!(err.contains("caused by: cannot create directory"), "{err}");
    assert!(err.contains("a-file/root/oci/blobs/sha256"), "{err}");
}

#[test]
fn unknown_verbs_and_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = fails(manifold(dir.path()).arg("bogus"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unrecognized subcommand 'bogus'"));
    let out = fails(manifold(dir.path()).args(["images", "--format", "yaml"]));
    assert!(stderr(&out).contains("invalid value 'yaml'"));
}

/// Commands other than building work for any user; the default root is under $HOME.
#[test]
fn a_non_root_user_gets_a_store_in_their_home() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    // Let the unprivileged user into the temp dir and own its home.
    open_to_nobody(dir.path(), &home);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_manifold"))
        .arg("images")
        .env_remove("MANIFOLD_ROOT")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.join(".local/share/manifold/oci/index.json").is_file());
}

fn open_to_nobody(tmp: &Path, home: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let status = Command::new("chown")
        .arg("65534:65534")
        .arg(home)
        .status()
        .unwrap();
    assert!(status.success());
}
