//! The snapshotter conformance suite, run against both drivers (root required:
//! overlay mounts, owners and devices).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use archive::{Change, Compression, Expected, WriteOptions, compress, write_layer};
use worker::snapshot::{self, Driver, Key, SnapshotError, Snapshotter};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (snapshots mount overlayfs and keep owners and devices)"
    );
}

fn open(driver: Driver, state: &Path) -> Box<dyn Snapshotter> {
    match driver {
        Driver::Overlay => Box::new(snapshot::Overlay::open(state).expect("open overlay")),
        Driver::FuseOverlay => {
            testkit::require_tool("fuse-overlayfs");
            Box::new(snapshot::FuseOverlay::open(state).expect("open fuse-overlayfs"))
        }
        _ => Box::new(snapshot::Copy::open(state).expect("open copy")),
    }
}

fn other(driver: Driver) -> Driver {
    match driver {
        Driver::Overlay => Driver::Copy,
        _ => Driver::Overlay,
    }
}

fn key(s: &str) -> Key {
    Key::new(s).expect("valid key")
}

/// Mount points below `dir` in this process's mount table.
fn mounts_under(dir: &Path) -> Vec<String> {
    let table = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let prefix = dir.to_string_lossy().into_owned();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

/// Run `test` on a fresh state root with `driver`, then check that no mount is left.
fn with_state(driver: Driver, test: impl FnOnce(&Path, Box<dyn Snapshotter>)) {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().to_owned();
    test(&state, open(driver, &state));
    assert_eq!(
        mounts_under(&state),
        Vec::<String>::new(),
        "mounts left behind"
    );
}

/// A comparable description of every entry below `root` (overlay xattrs and
/// directory mtimes left out; file mtimes in whole seconds, as layers carry them).
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(root.join(&rel))
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for name in names {
            let rel = rel.join(name);
            let p = root.join(&rel);
            let md = fs::symlink_metadata(&p).expect("lstat");
            let ft = md.file_type();
            let what = if ft.is_dir() {
                stack.push(rel.clone());
                "dir".to_owned()
            } else if ft.is_symlink() {
                format!("symlink {}", fs::read_link(&p).expect("readlink").display())
            } else if ft.is_file() {
                let bytes = fs::read(&p).expect("read");
                format!(
                    "file {} mtime={}",
                    String::from_utf8_lossy(&bytes),
                    md.mtime()
                )
            } else {
                format!("special rdev={}", md.rdev())
            };
            let mut xattrs: Vec<String> = xattr_names(&p)
                .into_iter()
                .filter(|n| !n.contains(".overlay."))
                .collect();
            xattrs.sort();
            out.insert(
                rel.display().to_string(),
                format!(
                    "{what} mode={:o} owner={}:{} xattrs={xattrs:?}",
                    md.mode() & 0o7777,
                    md.uid(),
                    md.gid()
                ),
            );
        }
    }
    out
}

fn xattr_names(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut buf[..]).unwrap_or(0);
    buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir -p");
    fs::write(&p, content).expect("write");
}

/// Three layers, each a prepared snapshot written and committed.
fn chain(s: &dyn Snapshotter) {
    let a = s.prepare(None).expect("prepare base");
    let r = a.path();
    write(r, "etc/conf", "one");
    write(r, "bin/tool", "elf");
    fs::set_permissions(r.join("bin/tool"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    lchown(r.join("bin/tool"), Some(1000), Some(1001)).expect("chown");
    fs::set_permissions(r.join("bin/tool"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    rustix::fs::lsetxattr(
        r.join("bin/tool"),
        "user.note",
        b"x",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    symlink("../etc/conf", r.join("bin/link")).expect("symlink");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r.join("etc/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .expect("mknod");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r.join("etc/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    a.commit(&key("l1")).expect("commit l1");

    let b = s.prepare(Some(&key("l1"))).expect("prepare l2");
    assert_eq!(b.parent(), Some(&key("l1")));
    write(b.path(), "etc/conf", "two");
    write(b.path(), "usr/two", "2");
    b.commit(&key("l2")).expect("commit l2");

    let c = s.prepare(Some(&key("l2"))).expect("prepare l3");
    write(c.path(), "usr/three", "3");
    c.commit(&key("l3")).expect("commit l3");
}

fn chain_of_three(driver: Driver) {
    with_state(driver, |_, s| {
        chain(&*s);
        let v = s.view(&key("l3")).expect("view l3");
        let t = tree(v.path());
        assert!(t["etc/conf"].starts_with("file two "), "{t:?}");
        assert!(t["usr/two"].starts_with("file 2 "));
        assert!(t["usr/three"].starts_with("file 3 "));
        assert!(
            t["bin/tool"].contains("mode=4755 owner=1000:1001 xattrs=[\"user.note\"]"),
            "{}",
            t["bin/tool"]
        );
        assert!(t["bin/link"].starts_with("symlink ../etc/conf "));
        assert!(t["etc/null"].starts_with(&format!("special rdev={} ", rustix::fs::makedev(1, 3))));
        assert!(t["etc/fifo"].starts_with("special rdev=0 mode=600"));
        assert!(
            fs::write(v.path().join("new"), "x").is_err(),
            "a view is read-only"
        );
        // A committed snapshot never changes: l1 still has its own content.
        let v1 = s.view(&key("l1")).expect("view l1");
        let t1 = tree(v1.path());
        assert!(t1["etc/conf"].starts_with("file one "));
        assert!(!t1.contains_key("usr/two"));
        drop((v, v1));
        let list: Vec<_> = s
            .list()
            .expect("list")
            .into_iter()
            .map(|c| (c.key().to_string(), c.parent().map(ToString::to_string)))
            .collect();
        assert_eq!(
            list,
            [
                ("l1".to_owned(), None),
                ("l2".to_owned(), Some("l1".to_owned())),
                ("l3".to_owned(), Some("l2".to_owned()))
            ]
        );
    });
}

/// Base with `d/{x,y}`, `f`, `keep`; then `f` deleted and `d` replaced by a new
/// directory holding only `z`.
fn whiteout_layers(s: &dyn Snapshotter) {
    let a = s.prepare(None).expect("prepare");
    for f in ["d/x", "d/y", "f", "keep"] {
        write(a.path(), f, f);
    }
    a.commit(&key("base")).expect("commit base");
    let b = s.prepare(Some(&key("base"))).expect("prepare");
    fs::remove_file(b.path().join("f")).expect("rm f");
    fs::remove_dir_all(b.path().join("d")).expect("rm -r d");
    write(b.path(), "d/z", "z");
    b.commit(&key("top")).expect("commit top");
}

fn whiteouts_and_opaque_dirs(driver: Driver) {
    with_state(driver, |_, s| {
        whiteout_layers(&*s);
        let c = s.prepare(Some(&key("top"))).expect("prepare third");
        write(c.path(), "f", "again");
        c.commit(&key("third")).expect("commit third");
        let v = s.view(&key("top")).expect("view");
        let names: Vec<_> = tree(v.path()).into_keys().collect();
        assert_eq!(names, ["d", "d/z", "keep"]);
        let v3 = s.view(&key("third")).expect("view");
        let names: Vec<_> = tree(v3.path()).into_keys().collect();
        assert_eq!(names, ["d", "d/z", "f", "keep"]);
    });
}

/// (path, what) for every change but directories that are only parents.
fn summary(changes: &[Change]) -> Vec<(String, &'static str)> {
    let mut out: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Add(e) | Change::Modify(e) if matches!(e.kind, archive::EntryKind::Dir) => None,
            Change::Add(e) | Change::Modify(e) => Some((e.path.display().to_string(), "write")),
            Change::Delete(p) => Some((p.display().to_string(), "delete")),
            Change::OpaqueDir(p) => Some((p.display().to_string(), "opaque")),
        })
        .collect();
    out.sort();
    out
}

fn layer_tar(changes: Vec<Change>) -> Vec<u8> {
    let mut tar = Vec::new();
    write_layer(&mut tar, changes, &WriteOptions::default()).expect("write layer");
    tar
}

fn diff_is_exact_and_reapplies_on_the_other_driver(driver: Driver) {
    with_state(driver, |state, s| {
        let a = s.prepare(None).expect("prepare");
        for f in ["m", "del", "d/old1", "d/old2", "same"] {
            write(a.path(), f, f);
        }
        a.commit(&key("base")).expect("commit");
        let b = s.prepare(Some(&key("base"))).expect("prepare");
        write(b.path(), "new", "new");
        write(b.path(), "m", "modified");
        fs::remove_file(b.path().join("del")).expect("rm");
        fs::remove_dir_all(b.path().join("d")).expect("rm -r");
        write(b.path(), "d/new", "n");
        let got = summary(&s.diff(&b).expect("diff"));
        let mut want = vec![
            ("d/new".to_owned(), "write"),
            ("del".to_owned(), "delete"),
            ("m".to_owned(), "write"),
            ("new".to_owned(), "write"),
        ];
        match driver {
            // A directory made where one was deleted is opaque in the upper dir.
            Driver::Overlay | Driver::FuseOverlay => want.push(("d".to_owned(), "opaque")),
            _ => want.extend([
                ("d/old1".to_owned(), "delete"),
                ("d/old2".to_owned(), "delete"),
            ]),
        }
        want.sort();
        assert_eq!(got, want);
        b.commit(&key("top")).expect("commit");
        assert_eq!(summary(&s.diff_committed(&key("top")).expect("diff")), want);

        // Both layers, written and re-applied by the other driver, give the same tree.
        let base_tar = layer_tar(s.diff_committed(&key("base")).expect("diff base"));
        let top_tar = layer_tar(s.diff_committed(&key("top")).expect("diff top"));
        let o = open(other(driver), state);
        let none = Expected::default();
        o.apply_layer(None, &key("base"), &mut &base_tar[..], None, &none)
            .expect("apply base");
        o.apply_layer(
            Some(&key("base")),
            &key("top"),
            &mut &top_tar[..],
            None,
            &none,
        )
        .expect("apply top");
        let mine = s.view(&key("top")).expect("view");
        let theirs = o.view(&key("top")).expect("view");
        assert_eq!(tree(mine.path()), tree(theirs.path()));
        assert_eq!(tree(mine.path()).len(), 5, "{:?}", tree(mine.path()));
    });
}

fn base_layer_is_unpacked_once(driver: Driver) {
    with_state(driver, |state, s| {
        let a = s.prepare(None).expect("prepare");
        write(a.path(), "etc/os-release", "manifold");
        let tar = layer_tar(s.diff(&a).expect("diff"));
        a.abort().expect("abort");
        let mut gz = compress(Vec::new(), Compression::GZIP).expect("gzip");
        std::io::Write::write_all(&mut gz, &tar).expect("compress");
        let gz = gz.finish().expect("gzip");
        let diff_id = oci::Digest::sha256(&tar);
        let expected = Expected {
            digest: Some(oci::Digest::sha256(&gz)),
            size: Some(gz.len() as u64),
            diff_id: Some(diff_id.clone()),
        };
        let chain = key(&snapshot::chain_id(None, &diff_id).to_string());
        // A blob that does not match its digest leaves nothing.
        let bad = Expected {
            diff_id: Some(oci::Digest::sha256(b"other")),
            ..expected.clone()
        };
        let err = s
            .apply_layer(
                None,
                &chain,
                &mut &gz[..],
                Some(oci::media::OCI_LAYER_GZIP),
                &bad,
            )
            .expect_err("a wrong diff_id is refused");
        assert!(matches!(err, SnapshotError::Archive { .. }), "{err}");
        let u = s.usage().expect("usage");
        assert_eq!((u.committed, u.active), (0, 0));
        assert_eq!(snapshot_dirs(state, driver), Vec::<String>::new());

        // Two builders (another process would see the same lock files) ask at once.
        let s2 = open(driver, state);
        let (one, two) = std::thread::scope(|scope| {
            let t1 = scope.spawn(|| {
                s.apply_layer(
                    None,
                    &chain,
                    &mut &gz[..],
                    Some(oci::media::OCI_LAYER_GZIP),
                    &expected,
                )
            });
            let t2 = scope.spawn(|| {
                s2.apply_layer(
                    None,
                    &chain,
                    &mut &gz[..],
                    Some(oci::media::OCI_LAYER_GZIP),
                    &expected,
                )
            });
            (t1.join().expect("thread"), t2.join().expect("thread"))
        });
        let (one, two) = (one.expect("apply"), two.expect("apply"));
        assert_eq!(one.committed, two.committed);
        let again = s
            .apply_layer(None, &chain, &mut &gz[..], None, &expected)
            .expect("apply again");
        assert_eq!(again.committed.id(), one.committed.id());
        assert_eq!(again.duplicate_paths, 0);
        assert_eq!(s.usage().expect("usage").committed, 1);
        let v = s.view(&chain).expect("view");
        assert_eq!(
            fs::read(v.path().join("etc/os-release")).expect("read"),
            b"manifold"
        );
    });
}

fn snapshot_dirs(state: &Path, driver: Driver) -> Vec<String> {
    let dir = state.join("snapshots").join(driver.name()).join("snaps");
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("read snaps")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn abort_and_drop_leave_nothing(driver: Driver) {
    with_state(driver, |state, s| {
        let a = s.prepare(None).expect("prepare");
        write(a.path(), "x/y", "y");
        a.commit(&key("base")).expect("commit");
        let before = snapshot_dirs(state, driver);
        let b = s.prepare(Some(&key("base"))).expect("prepare");
        write(b.path(), "junk", "junk");
        assert_eq!(s.usage().expect("usage").active, 1);
        b.abort().expect("abort");
        let c = s.prepare(Some(&key("base"))).expect("prepare");
        write(c.path(), "junk", "junk");
        drop(c);
        let err = s
            .prepare(Some(&key("missing")))
            .expect_err("no such parent");
        assert!(matches!(err, SnapshotError::NotFound { .. }), "{err}");
        assert!(s.view(&key("missing")).is_err());
        assert_eq!(snapshot_dirs(state, driver), before);
        let u = s.usage().expect("usage");
        assert_eq!((u.committed, u.active, u.views), (1, 0, 0));
        assert!(u.bytes > 0);
        assert_eq!(mounts_under(state), Vec::<String>::new());
    });
}

fn remove_refuses_a_parent_in_use(driver: Driver) {
    with_state(driver, |state, s| {
        chain(&*s);
        let in_use = |k: &str| matches!(s.remove(&key(k)), Err(SnapshotError::InUse { .. }));
        assert!(in_use("l1"));
        assert!(in_use("l2"));
        let active = s.prepare(Some(&key("l3"))).expect("prepare");
        assert!(in_use("l3"), "an active child holds its parent");
        drop(active);
        let view = s.view(&key("l3")).expect("view");
        assert!(in_use("l3"), "a view holds its snapshot");
        view.close().expect("close view");
        for k in ["l3", "l2", "l1"] {
            s.remove(&key(k))
                .unwrap_or_else(|e| panic!("remove {k}: {e}"));
            assert_eq!(s.get(&key(k)).expect("get"), None);
        }
        assert!(matches!(
            s.remove(&key("l1")),
            Err(SnapshotError::NotFound { .. })
        ));
        assert_eq!(snapshot_dirs(state, driver), Vec::<String>::new());
    });
}

fn metadata_survives_reopening(driver: Driver) {
    with_state(driver, |state, s| {
        chain(&*s);
        let before = s.list().expect("list");
        drop(s);
        let s = open(driver, state);
        assert_eq!(s.list().expect("list"), before);
        let l3 = s.get(&key("l3")).expect("get").expect("l3 exists");
        assert_eq!(l3.parent(), Some(&key("l2")));
        let v = s.view(&key("l3")).expect("view");
        assert!(tree(v.path())["etc/conf"].starts_with("file two "));
        let err = s
            .prepare(Some(&key("l3")))
            .and_then(|a| a.commit(&key("l2")));
        assert!(matches!(err, Err(SnapshotError::Exists { .. })));
    });
}

fn two_threads_prepare_from_one_parent(driver: Driver) {
    with_state(driver, |_, s| {
        chain(&*s);
        let s = &*s;
        let made: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|i| {
                    scope.spawn(move || {
                        let a = s.prepare(Some(&key("l3"))).expect("prepare");
                        write(a.path(), &format!("t{i}"), "mine");
                        a.commit(&key(&format!("t{i}"))).expect("commit")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert_ne!(made[0].id(), made[1].id());
        for i in 0..2 {
            let v = s.view(&key(&format!("t{i}"))).expect("view");
            let t = tree(v.path());
            assert!(t.contains_key(&format!("t{i}")));
            assert!(!t.contains_key(&format!("t{}", 1 - i)));
            assert!(t["usr/three"].starts_with("file 3 "));
        }
    });
}

/// A layer that names neither the parent directories of its entries nor the
/// targets of its hardlinks (they are in the layer below), as other tools write them.
fn sparse_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut file = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).expect("append");
    };
    file("tmp/y", b"y");
    file("tmp/.wh.x", b"");
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Link);
    b.append_link(&mut h, "lib/b", "lib/a")
        .expect("append link");
    b.into_inner().expect("finish tar")
}

fn layer_without_parents_keeps_lower_metadata(driver: Driver) {
    with_state(driver, |_, s| {
        let a = s.prepare(None).expect("prepare");
        write(a.path(), "tmp/x", "x");
        write(a.path(), "lib/a", "A");
        fs::set_permissions(a.path().join("tmp"), fs::Permissions::from_mode(0o1777))
            .expect("chmod");
        lchown(a.path().join("lib"), Some(7), Some(8)).expect("chown");
        a.commit(&key("base")).expect("commit");
        let tar = sparse_layer();
        s.apply_layer(
            Some(&key("base")),
            &key("top"),
            &mut &tar[..],
            None,
            &Expected::default(),
        )
        .expect("apply a layer with a hardlink into the layer below");
        let v = s.view(&key("top")).expect("view");
        let t = tree(v.path());
        assert!(t["tmp"].contains("mode=1777 owner=0:0"), "{}", t["tmp"]);
        assert!(t["lib"].contains("owner=7:8"), "{}", t["lib"]);
        assert!(!t.contains_key("tmp/x"));
        assert!(t["tmp/y"].starts_with("file y "));
        assert!(t["lib/b"].starts_with("file A "));
    });
}

/// Overlay's option page (4 KiB) would not hold this chain's lower dirs.
fn long_chain_on_a_long_state_path(driver: Driver) {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("s".repeat(200)).join("t".repeat(200));
    let s = open(driver, &state);
    let mut parent: Option<Key> = None;
    for i in 0..24 {
        let a = s.prepare(parent.as_ref()).expect("prepare");
        write(a.path(), &format!("layer{i}"), "x");
        let k = key(&format!("layer{i}"));
        a.commit(&k).expect("commit");
        parent = Some(k);
    }
    let v = s.view(parent.as_ref().expect("a chain")).expect("view");
    assert_eq!(tree(v.path()).len(), 24);
    drop(v);
    assert_eq!(mounts_under(dir.path()), Vec::<String>::new());
}

const CHILD_STATE: &str = "MANIFOLD_SNAPSHOT_TEST_CHILD_STATE";

/// A process that dies holding an active snapshot and a view leaves mounts and
/// records; the next open removes them.
fn crashed_process_is_reaped(driver: Driver) {
    require_root();
    if let Some(state) = std::env::var_os(CHILD_STATE) {
        let s = open(driver, Path::new(&state));
        let a = s.prepare(Some(&key("base"))).expect("prepare");
        write(a.path(), "junk", "junk");
        let v = s.view(&key("base")).expect("view");
        assert!(v.path().join("f").exists());
        // Die without unmounting anything.
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().to_owned();
    let s = open(driver, &state);
    let a = s.prepare(None).expect("prepare");
    write(a.path(), "f", "f");
    a.commit(&key("base")).expect("commit");
    let test = format!(
        "{}::crashed_process_is_reaped",
        driver.name().replace('-', "_")
    );
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(CHILD_STATE, &state)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert!(status.success(), "child failed: {status}");
    assert!(
        !mounts_under(&state).is_empty(),
        "the child left its mounts"
    );
    let u = s.usage().expect("usage");
    assert_eq!((u.active, u.views), (1, 1));
    drop(s);
    let s = open(driver, &state);
    let u = s.usage().expect("usage");
    assert_eq!((u.committed, u.active, u.views), (1, 0, 0));
    assert_eq!(mounts_under(&state), Vec::<String>::new());
    s.remove(&key("base")).expect("remove, no longer in use");
    assert_eq!(snapshot_dirs(&state, driver), Vec::<String>::new());
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod overlay {
            $(#[test] fn $name() { super::$name(super::Driver::Overlay) })*
        }
        mod copy {
            $(#[test] fn $name() { super::$name(super::Driver::Copy) })*
        }
        mod fuse_overlayfs {
            $(#[test] fn $name() { super::$name(super::Driver::FuseOverlay) })*
        }
    };
}

conformance!(
    chain_of_three,
    whiteouts_and_opaque_dirs,
    diff_is_exact_and_reapplies_on_the_other_driver,
    base_layer_is_unpacked_once,
    abort_and_drop_leave_nothing,
    remove_refuses_a_parent_in_use,
    metadata_survives_reopening,
    two_threads_prepare_from_one_parent,
    long_chain_on_a_long_state_path,
    crashed_process_is_reaped,
    layer_without_parents_keeps_lower_metadata,
);

#[test]
fn detect_picks_overlay_here_and_honours_the_override() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let env = std::env::var(snapshot::SNAPSHOTTER_ENV).ok();
    match env.as_deref() {
        Some("copy") => {
            let s = snapshot::detect(dir.path()).expect("detect");
            assert_eq!(s.driver(), Driver::Copy);
        }
        Some("bogus") => {
            let err = snapshot::detect(dir.path()).expect_err("an unknown driver");
            assert!(matches!(err, SnapshotError::UnknownDriver { .. }), "{err}");
        }
        _ => {
            let s = snapshot::detect(dir.path()).expect("detect");
            assert_eq!(s.driver(), Driver::Overlay);
            let leftovers: Vec<_> = fs::read_dir(dir.path().join("snapshots/overlay"))
                .expect("read")
                .map(|e| e.expect("entry").file_name())
                .filter(|n| n.to_string_lossy().starts_with("probe."))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
            assert_eq!(mounts_under(dir.path()), Vec::<String>::new());
            // Detected once per root: the choice is kept, and a later detect reads it.
            let marker = fs::read_to_string(dir.path().join("snapshots/detected")).expect("marker");
            assert!(marker.ends_with("driver overlay\n"), "{marker}");
            fs::write(
                dir.path().join("snapshots/detected"),
                marker.replace("driver overlay", "driver copy"),
            )
            .expect("rewrite marker");
            let again = snapshot::detect(dir.path()).expect("detect again");
            assert_eq!(again.driver(), Driver::Copy, "the kept choice is used");
            if env.is_none() {
                for value in ["copy", "bogus"] {
                    let status =
                        std::process::Command::new(std::env::current_exe().expect("test binary"))
                            .args([
                                "--exact",
                                "detect_picks_overlay_here_and_honours_the_override",
                                "--test-threads=1",
                            ])
                            .env(snapshot::SNAPSHOTTER_ENV, value)
                            .stdout(std::process::Stdio::null())
                            .status()
                            .expect("run child");
                    assert!(status.success(), "with {value}: {status}");
                }
            }
        }
    }
}

#[test]
fn keys_are_checked() {
    assert!(Key::new("").is_err());
    assert!(Key::new("a\nb").is_err());
    assert!(Key::new("x".repeat(2000)).is_err());
    assert_eq!(Key::new("sha256:abc").expect("key").as_str(), "sha256:abc");
}
