//! Helpers for the archive tests: hand-built tars, a sandbox with a sentinel tree
//! outside the root, and a tree fingerprint.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use archive::{ApplyOptions, ApplyStats, ArchiveError, ResolveMode, Root, apply_layer};

/// Panics unless the test runs as root (CI does).
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (CI runs as root): it sets owners, creates devices or mounts"
    );
}

/// The options the security cases apply with: the host root's, or, when the suite runs
/// itself again as root of a user namespace (`MANIFOLD_TEST_APPLY=namespaced`, see
/// [`rerun_in_a_user_namespace`]), a rootless build's.
pub fn privileged_or_namespaced() -> ApplyOptions {
    if namespaced() {
        ApplyOptions::namespaced()
    } else {
        ApplyOptions::privileged()
    }
}

/// Whether this run is the rerun inside a user namespace.
pub fn namespaced() -> bool {
    testkit::rootless::is_rerun()
}

/// Run this test binary again as root of a user namespace (see
/// `testkit::rootless::rerun_in_a_user_namespace`), skipping `this_test`.
pub fn rerun_in_a_user_namespace(this_test: &str) {
    require_root();
    testkit::rootless::rerun_in_a_user_namespace(this_test, &[], None);
}

/// Both resolvers, so every security case covers the `O_PATH` walk fallback too.
pub const MODES: [ResolveMode; 2] = [ResolveMode::Openat2, ResolveMode::Walk];

/// A temp dir holding `root/` (where layers go) and, beside it, a sentinel tree that
/// no test may change: `outside/` plus the temp dir's own entries.
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub outside: PathBuf,
    before: BTreeMap<String, String>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir_all(outside.join("etc")).unwrap();
        fs::create_dir_all(outside.join("sub/deeper")).unwrap();
        fs::write(outside.join("etc/passwd"), "sentinel passwd\n").unwrap();
        fs::write(outside.join("target"), "sentinel target\n").unwrap();
        fs::write(outside.join("victim"), "sentinel victim\n").unwrap();
        fs::write(outside.join("sub/deeper/file"), "deep\n").unwrap();
        symlink("../target", outside.join("sub/link")).unwrap();
        let mut sb = Sandbox {
            tmp,
            root,
            outside,
            before: BTreeMap::new(),
        };
        sb.before = sb.fingerprint_outside();
        sb
    }

    fn fingerprint_outside(&self) -> BTreeMap<String, String> {
        let mut all = fingerprint(self.tmp.path());
        all.retain(|k, _| k != "root" && !k.starts_with("root/"));
        all
    }

    /// The absolute path of the sentinel dir, as an in-layer symlink target.
    pub fn outside_abs(&self) -> String {
        self.outside.to_str().unwrap().to_owned()
    }

    pub fn open(&self, mode: ResolveMode) -> Root {
        Root::open_with(&self.root, mode).expect("open root")
    }

    pub fn apply(
        &self,
        mode: ResolveMode,
        tar: &[u8],
        opts: &ApplyOptions,
    ) -> Result<ApplyStats, ArchiveError> {
        apply_layer(&self.open(mode), tar, opts)
    }

    /// Fails the test if anything outside `root/` changed.
    pub fn assert_outside_unchanged(&self) {
        let now = self.fingerprint_outside();
        assert_eq!(self.before, now, "the tree outside the root changed");
    }

    pub fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// A fingerprint of every inode under `dir`: type, mode, owner, mtime, size,
/// content hash, link target, device, xattrs, and hardlink group.
pub fn fingerprint(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    walk(dir, dir, &mut out, &mut inodes, true);
    out
}

/// Like [`fingerprint`] without directory mtimes (which a diff cannot pin for `/`).
pub fn fingerprint_no_root_mtime(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    walk(dir, dir, &mut out, &mut inodes, false);
    out
}

fn walk(
    base: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    inodes: &mut BTreeMap<(u64, u64), String>,
    root_mtime: bool,
) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    if root_mtime || dir != base {
        let m = fs::symlink_metadata(dir).unwrap();
        let rel = dir
            .strip_prefix(base)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        out.insert(
            format!("{rel}/."),
            format!(
                "dir {:o} {}:{} {}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.mtime()
            ),
        );
    }
    for name in names {
        let p = dir.join(&name);
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let xattrs = xattrs(&p);
        let common = format!(
            "{:o} {}:{} {} x={xattrs:?}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            m.mtime()
        );
        let desc = if ft.is_dir() {
            walk(base, &p, out, inodes, root_mtime);
            format!("dir x={xattrs:?}")
        } else if ft.is_symlink() {
            format!(
                "symlink -> {:?} {}:{} x={xattrs:?}",
                fs::read_link(&p).unwrap(),
                m.uid(),
                m.gid()
            )
        } else if ft.is_file() {
            let group = inodes
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| rel.clone())
                .clone();
            let content = oci::Digest::sha256(&fs::read(&p).unwrap());
            format!(
                "file {common} {} {} group={group}",
                m.size(),
                content.short()
            )
        } else {
            format!("special {common} {:?} rdev={}", ft, m.rdev())
        };
        out.insert(rel, desc);
    }
}

/// `name=value` pairs of `p`'s xattrs, not following symlinks.
pub fn xattrs(p: &Path) -> Vec<String> {
    let mut list = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut list[..]).unwrap_or(0);
    let mut out = Vec::new();
    for name in list[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 65536];
        let name = OsStr::from_bytes(name);
        let k = rustix::fs::lgetxattr(p, name, &mut v[..]).unwrap_or(0);
        out.push(format!(
            "{}={:?}",
            name.to_string_lossy(),
            String::from_utf8_lossy(&v[..k])
        ));
    }
    out.sort();
    out
}

/// A hand-built tar stream; every header field is set explicitly and names are
/// written raw (the `tar` crate's setters refuse `..`).
#[derive(Default)]
pub struct Tar {
    buf: Vec<u8>,
}

pub struct H<'a> {
    pub name: &'a [u8],
    pub ty: tar::EntryType,
    pub link: &'a [u8],
    pub data: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev: (u32, u32),
    /// Overrides the size field (to forge a mismatch); `None` = data length.
    pub size: Option<u64>,
}

impl<'a> H<'a> {
    pub fn new(name: &'a [u8], ty: tar::EntryType) -> H<'a> {
        H {
            name,
            ty,
            link: b"",
            data: b"",
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            dev: (0, 0),
            size: None,
        }
    }
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    pub fn header(&mut self, h: H<'_>) -> &mut Tar {
        let mut hdr = tar::Header::new_ustar();
        let n = h.name.len().min(100);
        hdr.as_old_mut().name[..n].copy_from_slice(&h.name[..n]);
        let l = h.link.len().min(100);
        hdr.as_old_mut().linkname[..l].copy_from_slice(&h.link[..l]);
        hdr.set_entry_type(h.ty);
        hdr.set_mode(h.mode);
        hdr.set_uid(h.uid);
        hdr.set_gid(h.gid);
        hdr.set_mtime(h.mtime);
        hdr.set_size(h.size.unwrap_or(h.data.len() as u64));
        if matches!(h.ty, tar::EntryType::Char | tar::EntryType::Block) {
            hdr.set_device_major(h.dev.0).unwrap();
            hdr.set_device_minor(h.dev.1).unwrap();
        }
        hdr.set_cksum();
        self.buf.extend_from_slice(hdr.as_bytes());
        self.buf.extend_from_slice(h.data);
        let pad = (512 - h.data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Tar {
        self.header(H {
            data,
            ..H::new(name.as_bytes(), tar::EntryType::Regular)
        })
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Tar {
        self.header(H {
            mode,
            ..H::new(name.as_bytes(), tar::EntryType::Directory)
        })
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.header(H {
            link: target.as_bytes(),
            mode: 0o777,
            ..H::new(name.as_bytes(), tar::EntryType::Symlink)
        })
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.header(H {
            link: target.as_bytes(),
            ..H::new(name.as_bytes(), tar::EntryType::Link)
        })
    }

    /// A PAX `x` header with raw `records` (already encoded, possibly malformed).
    pub fn pax_raw(&mut self, records: &[u8]) -> &mut Tar {
        self.header(H {
            data: records,
            ..H::new(b"PaxHeaders/x", tar::EntryType::XHeader)
        })
    }

    /// A PAX `x` header from key/value pairs.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        let mut enc = Vec::new();
        for (k, v) in records {
            let body = k.len() + v.len() + 3;
            let mut len = body + body.to_string().len();
            if len.to_string().len() != body.to_string().len() {
                len = body + len.to_string().len();
            }
            enc.extend_from_slice(format!("{len} {k}=").as_bytes());
            enc.extend_from_slice(v);
            enc.push(b'\n');
        }
        self.pax_raw(&enc)
    }

    /// The stream with its two end-of-archive blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.buf.clone();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }

    /// The stream without end-of-archive blocks.
    pub fn unterminated(&self) -> Vec<u8> {
        self.buf.clone()
    }
}

/// Assert `err`'s message contains every one of `parts`.
pub fn assert_err_mentions(err: &ArchiveError, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} does not mention {p:?}");
    }
}
