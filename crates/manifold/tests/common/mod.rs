//! Helpers shared by the end-to-end tests (`build_security`, `build_security_run`,
//! `cache_mounts`, `prune`): running `manifold build` as root on a busybox base,
//! reading the images it writes, and a [`Sentinel`] host tree that must not change.

#![allow(dead_code)] // each suite uses its own part

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use content::Store;
use oci::{Digest, ImageManifest, RawDocument};

#[allow(unused_imports)] // not every suite needs it
pub use testkit::require_root_and_runc as require_root;

pub const BASE: &str = "localhost/busybox:test";

/// The manifold binary: this build's, or the user's copy when the suite is rerun as
/// root of a user namespace (`testkit::rootless::rerun_in_a_user_namespace`).
pub fn manifold_bin() -> std::path::PathBuf {
    std::env::var_os("MANIFOLD_TEST_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_manifold").into())
}

pub fn manifold(root: &Path, args: &[&str]) -> Output {
    Command::new(manifold_bin())
        .args(args)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("DOCKER_CONFIG", root.join("docker"))
        .env_remove("MANIFOLD_RUNTIME")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `manifold build --progress=plain [extra…] -t tag ctx`.
pub fn build(root: &Path, ctx: &Path, tag: &str, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-t", tag, ctx.to_str().unwrap()]);
    manifold(root, &args)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn all_output(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[track_caller]
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "manifold failed ({:?})\n{}",
        out.status,
        all_output(out)
    );
}

#[track_caller]
pub fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "manifold succeeded where it must fail\n{}",
        all_output(out)
    );
    text(&out.stderr)
}

/// Put the busybox base image into the store at `dir`, named [`BASE`].
pub fn add_base(dir: &Path) {
    testkit::base::busybox_index(dir, BASE, &["amd64"]);
}

pub fn root_with_base() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    add_base(dir.path());
    dir
}

/// The manifest of the single-platform image `name` (which a build stores as a
/// manifest, not an index, as BuildKit does).
pub fn manifest(root: &Path, name: &str) -> ImageManifest {
    let store = Store::open(root).unwrap();
    let top = store.resolve(name).unwrap();
    assert_eq!(
        top.media_type,
        oci::media::OCI_MANIFEST,
        "a one-platform build makes a manifest"
    );
    RawDocument::<ImageManifest>::parse(store.read_document(&top.digest).unwrap())
        .unwrap()
        .value()
        .clone()
}

/// Unpack every layer of `m` into a fresh directory (with GNU tar).
pub fn unpack(root: &Path, m: &ImageManifest) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let store = Store::open(root).unwrap();
    for l in &m.layers {
        let path = store.blob_path(&l.digest);
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&path)
            .arg("-C")
            .arg(out.path())
            .status()
            .unwrap();
        assert!(st.success(), "tar -xf {}", path.display());
    }
    out
}

pub fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

pub fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// A name no other test run uses.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("manifold-{tag}-{}-{nanos:x}", std::process::id())
}

/// Everything under `dir` (type, mode, owner, size, content digest, link target),
/// by relative path, without following symlinks.
pub fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let path = root.join(rel);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let what = if ft.is_symlink() {
            format!("link {}", std::fs::read_link(&path).unwrap().display())
        } else if ft.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            format!("file {}", Digest::sha256(&bytes))
        } else if ft.is_dir() {
            "dir".to_owned()
        } else {
            "other".to_owned()
        };
        out.insert(
            rel.to_owned(),
            format!(
                "{what} {:o} {}:{} {}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.size()
            ),
        );
        if ft.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                walk(root, &rel.join(e.unwrap().file_name()), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), &mut out);
    out
}

/// A host directory outside the state root, whose tree must not change. Hostile
/// links point into it.
pub struct Sentinel {
    pub dir: tempfile::TempDir,
    pub before: BTreeMap<PathBuf, String>,
}

impl Sentinel {
    /// A tree of `files` (path, content; a path ending in `/` is an empty dir).
    pub fn new(files: &[(&str, &str)]) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        for (p, content) in files {
            if let Some(d) = p.strip_suffix('/') {
                std::fs::create_dir_all(dir.path().join(d)).unwrap();
            } else {
                write(dir.path(), p, content);
            }
        }
        let before = snapshot_tree(dir.path());
        Sentinel { dir, before }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn s(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    #[track_caller]
    pub fn check(&self) {
        assert_eq!(
            snapshot_tree(self.path()),
            self.before,
            "the host tree {} changed",
            self.path().display()
        );
    }
}

/// Mount points strictly below `root`.
pub fn mounts_below(root: &Path) -> Vec<String> {
    let prefix = format!("{}/", root.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&prefix)))
        .map(str::to_owned)
        .collect()
}

/// No mounts, bundles or scratch dirs left behind by a finished build.
#[track_caller]
pub fn assert_clean(root: &Path) {
    assert!(mounts_below(root).is_empty(), "{:?}", mounts_below(root));
    for dir in ["bundles", "tmp"] {
        let p = root.join(dir);
        let left: Vec<_> = std::fs::read_dir(&p)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{} holds {left:?}", p.display());
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A file's bytes, gunzipped when they are gzip.
pub fn decompressed(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return bytes;
    }
    let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success(), "gzip -dc {}", path.display());
    out.stdout
}
