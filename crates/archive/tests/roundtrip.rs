//! write_layer → apply_layer round trips, whiteouts in both modes, tree diffs (plain
//! and overlayfs), determinism, and GNU tar's view of what we write.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use archive::{
    ApplyOptions, Change, ContentSource, Entry, EntryKind, Metadata, OverlayXattr, Root,
    WhiteoutMode, WriteOptions, apply_layer, diff_dirs, diff_overlay_upper, write_layer,
};
use common::{fingerprint_no_root_mtime, require_root};

/// A v2 `security.capability` granting CAP_NET_BIND_SERVICE (effective).
const CAP_NET_BIND: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn set_times(p: &Path, secs: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let ts = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// A tree with every entry type, special modes, owners, xattrs and a hardlink pair.
fn sample_tree(dir: &Path, mtime: i64) {
    fs::create_dir_all(dir.join("etc/ssl")).unwrap();
    fs::create_dir_all(dir.join("usr/bin")).unwrap();
    fs::create_dir(dir.join("tmp")).unwrap();
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(dir.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(dir.join("etc/ssl/key"), "secret").unwrap();
    fs::set_permissions(dir.join("etc/ssl/key"), fs::Permissions::from_mode(0o600)).unwrap();
    chown(&dir.join("etc/ssl/key"), 1000, 1001);
    fs::write(dir.join("usr/bin/ping"), "#!/bin/true\n").unwrap();
    fs::set_permissions(dir.join("usr/bin/ping"), fs::Permissions::from_mode(0o4755)).unwrap();
    rustix::fs::setxattr(
        dir.join("usr/bin/ping"),
        "security.capability",
        &CAP_NET_BIND,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        dir.join("etc/hosts"),
        "user.note",
        b"hello",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        dir.join("etc/hosts"),
        "trusted.tag",
        b"t",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    fs::hard_link(dir.join("usr/bin/ping"), dir.join("usr/bin/ping6")).unwrap();
    symlink("../etc/hosts", dir.join("usr/hosts-link")).unwrap();
    let long = dir.join("usr").join("l".repeat(120)).join("m".repeat(120));
    fs::create_dir_all(long.parent().unwrap()).unwrap();
    fs::write(&long, "long name").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let dev = rustix::fs::makedev(1, 3);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("etc/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        dev,
    )
    .unwrap();
    // Children first so directory times stick.
    let mut all = Vec::new();
    collect(dir, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in all {
        set_times(&p, mtime);
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            collect(&p, out);
        }
        out.push(p);
    }
}

fn layer_of(upper: &Path, opts: &WriteOptions) -> Vec<u8> {
    let empty = tempfile::tempdir().unwrap();
    let changes = diff_dirs(empty.path(), upper).unwrap();
    let mut out = Vec::new();
    write_layer(&mut out, changes, opts).unwrap();
    out
}

#[test]
fn write_then_apply_reproduces_the_tree() {
    require_root();
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path(), 1_650_000_000);
    let tar = layer_of(src.path(), &WriteOptions::default());
    let dst = tempfile::tempdir().unwrap();
    let stats = apply_layer(
        &Root::open(dst.path()).unwrap(),
        &tar[..],
        &ApplyOptions::privileged(),
    )
    .unwrap();
    assert_eq!((stats.hardlinks, stats.specials_created), (1, 2));
    assert_eq!(
        fingerprint_no_root_mtime(src.path()),
        fingerprint_no_root_mtime(dst.path())
    );
    let ping = fs::metadata(dst.path().join("usr/bin/ping")).unwrap();
    assert_eq!((ping.mode() & 0o7777, ping.nlink()), (0o4755, 2));
    assert_eq!(
        common::xattrs(&dst.path().join("usr/bin/ping")).len(),
        1,
        "security.capability survived"
    );
}

#[test]
fn rootless_apply_skips_trusted_xattrs_and_devices() {
    require_root();
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path(), 1_650_000_000);
    let tar = layer_of(src.path(), &WriteOptions::default());
    let dst = tempfile::tempdir().unwrap();
    let stats = apply_layer(
        &Root::open(dst.path()).unwrap(),
        &tar[..],
        &ApplyOptions::rootless(),
    )
    .unwrap();
    assert_eq!((stats.specials_skipped, stats.xattrs_skipped), (1, 1));
    let x = common::xattrs(&dst.path().join("etc/hosts"));
    assert_eq!(x, vec!["user.note=\"hello\"".to_owned()]);
    assert!(!dst.path().join("etc/null").exists());
}

fn file_entry(path: &str, content: &'static [u8]) -> Change {
    Change::Add(Entry {
        path: path.into(),
        kind: EntryKind::File {
            size: content.len() as u64,
            content: ContentSource::Bytes(Arc::from(content)),
        },
        meta: Metadata {
            mode: 0o644,
            mtime: 1_700_000_000,
            ..Metadata::default()
        },
    })
}

fn whiteout_layer() -> Vec<u8> {
    let changes = vec![
        Change::Delete("a/x".into()),
        Change::OpaqueDir("b".into()),
        file_entry("b/new", b"new"),
        Change::Delete("gone".into()),
    ];
    let mut out = Vec::new();
    write_layer(&mut out, changes, &WriteOptions::default()).unwrap();
    out
}

fn lower_tree(dir: &Path) {
    fs::create_dir_all(dir.join("a")).unwrap();
    fs::create_dir_all(dir.join("b/sub")).unwrap();
    for f in ["a/x", "a/y", "b/old", "b/sub/deep", "gone"] {
        fs::write(dir.join(f), f).unwrap();
    }
}

#[test]
fn whiteouts_and_opaque_dirs_in_flat_mode_delete() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    lower_tree(dir.path());
    let stats = apply_layer(
        &Root::open(dir.path()).unwrap(),
        &whiteout_layer()[..],
        &ApplyOptions::privileged(),
    )
    .unwrap();
    assert_eq!((stats.whiteouts, stats.opaque_dirs), (2, 1));
    assert!(!dir.path().join("a/x").exists() && dir.path().join("a/y").exists());
    assert!(!dir.path().join("gone").exists());
    let names: Vec<_> = fs::read_dir(dir.path().join("b"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["new"]);
}

#[test]
fn whiteouts_and_opaque_dirs_in_overlay_mode_become_markers() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ApplyOptions::privileged();
    opts.whiteouts = WhiteoutMode::Overlay(OverlayXattr::Trusted);
    apply_layer(
        &Root::open(dir.path()).unwrap(),
        &whiteout_layer()[..],
        &opts,
    )
    .unwrap();
    for w in ["a/x", "gone"] {
        let m = fs::symlink_metadata(dir.path().join(w)).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()),
            "{w}"
        );
        assert_eq!((m.rdev(), m.uid(), m.gid()), (0, 0, 0));
    }
    assert_eq!(
        common::xattrs(&dir.path().join("b")),
        vec!["trusted.overlay.opaque=\"y\"".to_owned()]
    );
    assert_eq!(fs::read(dir.path().join("b/new")).unwrap(), b"new");

    opts.whiteouts = WhiteoutMode::Overlay(OverlayXattr::User);
    let dir = tempfile::tempdir().unwrap();
    apply_layer(
        &Root::open(dir.path()).unwrap(),
        &whiteout_layer()[..],
        &opts,
    )
    .unwrap();
    assert_eq!(
        common::xattrs(&dir.path().join("b")),
        vec!["user.overlay.opaque=\"y\"".to_owned()]
    );
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a");
}

fn describe(changes: &[Change]) -> Vec<String> {
    let mut v: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Add(e) => format!("add {}", e.path.display()),
            Change::Modify(e) => format!("modify {}", e.path.display()),
            Change::Delete(p) => format!("delete {}", p.display()),
            Change::OpaqueDir(p) => format!("opaque {}", p.display()),
        })
        .collect();
    v.sort();
    v
}

#[test]
fn diff_dirs_lists_changes_and_reapplies_to_the_upper_tree() {
    require_root();
    let (lower, upper) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    lower_tree(lower.path());
    copy_tree(lower.path(), upper.path());
    let u = upper.path();
    fs::remove_file(u.join("a/x")).unwrap();
    fs::remove_dir_all(u.join("b/sub")).unwrap();
    fs::write(u.join("a/y"), "changed").unwrap();
    fs::create_dir(u.join("c")).unwrap();
    fs::write(u.join("c/new"), "n").unwrap();
    fs::set_permissions(u.join("gone"), fs::Permissions::from_mode(0o600)).unwrap();
    let changes = diff_dirs(lower.path(), u).unwrap();
    assert_eq!(
        describe(&changes),
        [
            "add c",
            "add c/new",
            "delete a/x",
            "delete b/sub",
            "modify a",
            "modify a/y",
            "modify b",
            "modify gone"
        ]
    );
    let mut tar = Vec::new();
    write_layer(&mut tar, changes, &WriteOptions::default()).unwrap();
    apply_layer(
        &Root::open(lower.path()).unwrap(),
        &tar[..],
        &ApplyOptions::privileged(),
    )
    .unwrap();
    assert_eq!(
        fingerprint_no_root_mtime(lower.path()),
        fingerprint_no_root_mtime(u)
    );
}

/// An overlay mount, unmounted on drop.
struct Overlay {
    merged: PathBuf,
}

impl Overlay {
    fn mount(lower: &Path, upper: &Path, work: &Path, merged: &Path) -> Overlay {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(merged)
            .status()
            .unwrap();
        assert!(st.success(), "mounting overlayfs (needs root)");
        Overlay {
            merged: merged.to_path_buf(),
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.merged).status();
    }
}

#[test]
fn diff_overlay_upper_reads_a_real_overlayfs_upper_dir() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| {
        let p = tmp.path().join(d);
        fs::create_dir(&p).unwrap();
        p
    });
    lower_tree(&lower);
    let expected = {
        let ov = Overlay::mount(&lower, &upper, &work, &merged);
        let m = &ov.merged;
        fs::remove_file(m.join("a/x")).unwrap();
        fs::remove_dir_all(m.join("b")).unwrap();
        fs::create_dir(m.join("b")).unwrap();
        fs::write(m.join("b/fresh"), "f").unwrap();
        fs::write(m.join("top"), "t").unwrap();
        fingerprint_no_root_mtime(m)
    };
    let changes = diff_overlay_upper(&upper).unwrap();
    let d = describe(&changes);
    for want in ["delete a/x", "opaque b", "add b/fresh", "add top", "add b"] {
        assert!(d.contains(&want.to_owned()), "{want} in {d:?}");
    }
    let mut tar = Vec::new();
    write_layer(&mut tar, changes, &WriteOptions::default()).unwrap();
    let flat = tmp.path().join("flat");
    fs::create_dir(&flat).unwrap();
    copy_tree(&lower, &flat);
    apply_layer(
        &Root::open(&flat).unwrap(),
        &tar[..],
        &ApplyOptions::privileged(),
    )
    .unwrap();
    assert_eq!(fingerprint_no_root_mtime(&flat), expected);
}

#[test]
fn layers_are_deterministic_and_clamped_to_source_date_epoch() {
    require_root();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    sample_tree(one.path(), 1_700_000_000);
    sample_tree(two.path(), 1_800_000_000);
    let plain = WriteOptions::default();
    assert_eq!(layer_of(one.path(), &plain), layer_of(one.path(), &plain));
    assert_ne!(layer_of(one.path(), &plain), layer_of(two.path(), &plain));
    let epoch = WriteOptions {
        source_date_epoch: Some(1_600_000_000),
    };
    let (a, b) = (layer_of(one.path(), &epoch), layer_of(two.path(), &epoch));
    assert_eq!(a, b, "mtimes past SOURCE_DATE_EPOCH are clamped");
    let gz = |t: &[u8]| {
        let mut e = archive::compress(Vec::new(), archive::Compression::GZIP).unwrap();
        std::io::Write::write_all(&mut e, t).unwrap();
        e.finish().unwrap()
    };
    assert_eq!(gz(&a), gz(&b));
    let dst = tempfile::tempdir().unwrap();
    apply_layer(
        &Root::open(dst.path()).unwrap(),
        &a[..],
        &ApplyOptions::privileged(),
    )
    .unwrap();
    assert_eq!(
        fs::metadata(dst.path().join("etc/hosts")).unwrap().mtime(),
        1_600_000_000
    );
}

#[test]
fn gnu_tar_lists_a_written_layer_as_expected() {
    let gnu = testkit::require_tool("tar");
    let meta = |mode, uid| Metadata {
        mode,
        uid,
        gid: uid,
        mtime: 1_700_000_000,
        ..Metadata::default()
    };
    let long = format!("d/{}", "x".repeat(150));
    let changes = vec![
        Change::Add(Entry {
            path: "d".into(),
            kind: EntryKind::Dir,
            meta: meta(0o755, 0),
        }),
        file_entry("d/file", b"hello"),
        Change::Modify(Entry {
            path: "d/run".into(),
            kind: EntryKind::File {
                size: 2,
                content: ContentSource::Bytes(Arc::from(&b"#!"[..])),
            },
            meta: Metadata {
                link_key: Some((1, 1)),
                ..meta(0o4755, 1000)
            },
        }),
        Change::Add(Entry {
            path: "d/run2".into(),
            kind: EntryKind::File {
                size: 2,
                content: ContentSource::Bytes(Arc::from(&b"#!"[..])),
            },
            meta: Metadata {
                link_key: Some((1, 1)),
                ..meta(0o4755, 1000)
            },
        }),
        Change::Add(Entry {
            path: "d/sym".into(),
            kind: EntryKind::Symlink {
                target: b"file".to_vec(),
            },
            meta: meta(0o777, 0),
        }),
        Change::Add(Entry {
            path: long.clone().into(),
            kind: EntryKind::Fifo,
            meta: meta(0o600, 5_000_000),
        }),
        Change::Delete("d/old".into()),
        Change::OpaqueDir("e".into()),
    ];
    let mut tar = Vec::new();
    write_layer(&mut tar, changes, &WriteOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("layer.tar");
    fs::write(&file, &tar).unwrap();
    let out = Command::new(gnu)
        .args(["--numeric-owner", "-tvf"])
        .arg(&file)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {} {}", f[0], f[1], f[2], f[5..].join(" "))
        })
        .collect();
    let expected = [
        "drwxr-xr-x 0/0 0 d/".to_owned(),
        "-rw-r--r-- 0/0 0 d/.wh.old".to_owned(),
        "-rw-r--r-- 0/0 5 d/file".to_owned(),
        "-rwsr-xr-x 1000/1000 2 d/run".to_owned(),
        "hrwsr-xr-x 1000/1000 0 d/run2 link to d/run".to_owned(),
        "lrwxrwxrwx 0/0 0 d/sym -> file".to_owned(),
        format!("prw------- 5000000/5000000 0 {long}"),
        "-rw-r--r-- 0/0 0 e/.wh..wh..opq".to_owned(),
    ];
    assert_eq!(listing, expected);
    assert!(
        out.stderr.is_empty(),
        "GNU tar warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
