//! What a step holds while it runs, and its mounts: in-root bind sources staged
//! in manifold's mount namespace, throwaway copies for writable binds of the
//! context, cache mounts keyed by the hash of their id, secret files, and the
//! mount points the runtime creates, removed from the layer afterwards.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use graph::op::{self, MountKind as OpMount};
use oci::{Digest, Platform};
use worker::exec::{MountKind, MountSpec};
use worker::snapshot::{ReadOnlyMount, Snapshotter};

use crate::error::BuildError;
use crate::fileop::SourceTree;
use crate::refs::Ref;
use crate::refs::step_key;
use crate::secret::Secret;

/// Snapshot views and scratch dirs a step holds while it runs.
#[derive(Default)]
pub(crate) struct Held {
    /// Staging bind mounts of in-root sources; unmounted first.
    binds: Vec<PathBuf>,
    /// In-root handles of bind sources, open until the step ends. First, so that
    /// they are dropped before the mounts they pin.
    leaves: Vec<archive::Leaf>,
    files: Vec<std::fs::File>,
    views: Vec<ReadOnlyMount>,
    actives: Vec<worker::snapshot::Active>,
    dirs: Vec<PathBuf>,
    locks: Vec<content::lock::FileLock>,
}

impl Held {
    pub(crate) fn release(mut self) -> Result<(), BuildError> {
        self.unwind()
    }

    /// Undo everything, in dependency order: staging binds, then the handles that
    /// pin their sources, then views and throwaway snapshots, then scratch dirs.
    fn unwind(&mut self) -> Result<(), BuildError> {
        // Never removed recursively: if an unmount failed, the source stays
        // reachable below the staging path, and only empty entries are removed.
        for b in std::mem::take(&mut self.binds) {
            let _ = rustix::mount::unmount(&b, rustix::mount::UnmountFlags::DETACH);
            let _ = std::fs::remove_dir(&b).or_else(|_| std::fs::remove_file(&b));
            if let Some(parent) = b.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        self.leaves.clear();
        self.files.clear();
        let mut first = None;
        for v in std::mem::take(&mut self.views) {
            if let Err(e) = v.close() {
                first.get_or_insert(BuildError::from(e));
            }
        }
        for a in std::mem::take(&mut self.actives) {
            if let Err(e) = a.abort() {
                first.get_or_insert(BuildError::from(e));
            }
        }
        for d in std::mem::take(&mut self.dirs) {
            let _ = std::fs::remove_dir_all(&d);
        }
        self.locks.clear();
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.unwind();
    }
}

pub(crate) struct Parts {
    pub(crate) snapshotter: Arc<dyn Snapshotter>,
    pub(crate) tmp: PathBuf,
}

impl Parts {
    /// The tree of a result, for reading.
    pub(crate) fn tree(
        &self,
        input: &Ref,
        views: &mut Vec<ReadOnlyMount>,
    ) -> Result<SourceTree, BuildError> {
        match input {
            Ref::Local(l) => Ok(SourceTree {
                root: l.dir.clone(),
                exclude: l.exclude.clone(),
                keep_owner: false,
            }),
            Ref::Fs(f) => match f.top_key() {
                Some(k) => {
                    let v = self.snapshotter.view(&k)?;
                    let root = v.path().to_owned();
                    views.push(v);
                    Ok(SourceTree {
                        root,
                        exclude: None,
                        keep_owner: true,
                    })
                }
                None => {
                    let dir = self.scratch_dir("empty")?;
                    Ok(SourceTree {
                        root: dir,
                        exclude: None,
                        keep_owner: true,
                    })
                }
            },
        }
    }

    fn scratch_dir(&self, what: &str) -> Result<PathBuf, BuildError> {
        std::fs::create_dir_all(&self.tmp).map_err(|e| BuildError::io(&self.tmp, e))?;
        let dir = self.tmp.join(format!(
            "{what}-{}",
            step_key(&Digest::sha256(what.as_bytes())).as_str()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| BuildError::io(&dir, e))?;
        Ok(dir)
    }

    /// `selector` inside `root` as a path the runtime can bind. Symlinks on the way
    /// are resolved in-root (a link to `/` is the tree's own root); the handle opened
    /// there is bind-mounted onto a staging path under the state root's `tmp/`, in
    /// this process's mount namespace, so what runc mounts is exactly what was
    /// checked, and no path can be swapped in between. (runc cannot mount a
    /// `/proc/<pid>/fd/<n>` of another mount namespace itself.)
    fn in_tree(&self, root: &Path, selector: &str, held: &mut Held) -> Result<PathBuf, BuildError> {
        use std::os::fd::AsRawFd;
        let p = archive::CleanPath::new(selector.as_bytes())?;
        if p.is_root() {
            return Ok(root.to_owned());
        }
        let tree = archive::Root::open(root)?;
        let (fd, is_dir) = match tree.open_dir(&p) {
            Ok(dir) => {
                let fd = dir.fd().as_raw_fd();
                held.leaves.push(dir);
                (fd, true)
            }
            Err(_) => {
                let file = tree.open_regular(&p)?;
                let fd = file.as_raw_fd();
                held.files.push(file);
                (fd, false)
            }
        };
        // Not in `held.dirs`: those are removed recursively.
        let staging = self.scratch_dir("bind")?.join("src");
        if is_dir {
            std::fs::create_dir(&staging).map_err(|e| BuildError::io(&staging, e))?;
        } else {
            std::fs::File::create(&staging).map_err(|e| BuildError::io(&staging, e))?;
        }
        held.binds.push(staging.clone());
        rustix::mount::mount_bind(format!("/proc/self/fd/{fd}").as_str(), &staging)
            .map_err(|e| BuildError::io(&staging, e.into()))?;
        Ok(staging)
    }

    /// A throwaway copy of `source` for a writable bind of the build context:
    /// the step's writes must never reach the client's files.
    fn scratch_copy(&self, source: &Path, held: &mut Held) -> Result<PathBuf, BuildError> {
        let dir = self.scratch_dir("rw-bind")?;
        held.dirs.push(dir.clone());
        let copy = dir.join("copy");
        copy_tree(source, &copy)?;
        Ok(copy)
    }

    /// One `RUN --mount` as a runtime mount.
    pub(crate) fn mount(
        &self,
        m: &op::Mount,
        inputs: &[Ref],
        secrets: &BTreeMap<String, Secret>,
        cache_dir: &Path,
        platform: &Platform,
        held: &mut Held,
    ) -> Result<Option<MountSpec>, BuildError> {
        let kind = match &m.kind {
            OpMount::Bind => {
                let input = m.input.map(|i| &inputs[i]);
                let source = match input {
                    Some(Ref::Local(l)) if m.readonly => self.in_tree(&l.dir, &m.selector, held)?,
                    Some(Ref::Local(l)) => {
                        let src = self.in_tree(&l.dir, &m.selector, held)?;
                        self.scratch_copy(&src, held)?
                    }
                    Some(Ref::Fs(f)) if m.readonly => match f.top_key() {
                        Some(k) => {
                            let v = self.snapshotter.view(&k)?;
                            let p = self.in_tree(v.path(), &m.selector, held)?;
                            held.views.push(v);
                            p
                        }
                        None => {
                            let d = self.scratch_dir("bind")?;
                            held.dirs.push(d.clone());
                            d
                        }
                    },
                    Some(Ref::Fs(f)) => {
                        // Writable: a throwaway snapshot, dropped after the step.
                        let a = self.snapshotter.prepare(f.top_key().as_ref())?;
                        let p = self.in_tree(a.path(), &m.selector, held)?;
                        held.actives.push(a);
                        p
                    }
                    None => {
                        let d = self.scratch_dir("bind")?;
                        held.dirs.push(d.clone());
                        d
                    }
                };
                MountKind::Bind {
                    source,
                    readonly: m.readonly,
                }
            }
            OpMount::Cache { id, sharing } => {
                // Ids are hashed: never used as paths.
                let base = Digest::sha256(format!("{id}\n{platform}").as_bytes());
                std::fs::create_dir_all(cache_dir).map_err(|e| BuildError::io(cache_dir, e))?;
                let name = match sharing {
                    op::CacheSharing::Private => private_instance(cache_dir, base.hex(), held)?,
                    _ => base.hex().to_owned(),
                };
                let dir = cache_dir.join(&name);
                if !dir.exists() {
                    let seed = match m
                        .input
                        .and_then(|i| inputs[i].fs())
                        .and_then(|f| f.top_key())
                    {
                        Some(k) => {
                            let v = self.snapshotter.view(&k)?;
                            let src = self.in_tree(v.path(), &m.selector, held)?;
                            held.views.push(v);
                            Some(src)
                        }
                        None => None,
                    };
                    new_cache(cache_dir, &dir, seed.as_deref())?;
                }
                // Its last use, for garbage collection (best effort: a cache that
                // keeps an old time is only collected sooner).
                if let Ok(d) = std::fs::File::open(&dir) {
                    let _ = d.set_modified(std::time::SystemTime::now());
                }
                if *sharing == op::CacheSharing::Locked {
                    let lock_path = cache_dir.join(format!("{name}.lock"));
                    let f = content::lock::lock(&lock_path, content::lock::Mode::Exclusive)
                        .map_err(|e| BuildError::io(&lock_path, e.source))?;
                    held.locks.push(f);
                }
                MountKind::Bind {
                    source: dir,
                    readonly: m.readonly,
                }
            }
            OpMount::Tmpfs { size } => MountKind::Tmpfs {
                size: size.unwrap_or(0),
            },
            OpMount::Secret {
                id,
                required,
                uid,
                gid,
                mode,
            } => {
                let Some(secret) = secrets.get(id) else {
                    if *required {
                        return Err(BuildError::Secret {
                            id: id.clone(),
                            message: "was not given (pass --secret id=…)".into(),
                        });
                    }
                    return Ok(None);
                };
                // On a tmpfs of its own, never on disk; the runtime removes the
                // file from the host once the step's process runs, and the tmpfs
                // goes when the step ends.
                let dir = self.scratch_dir("secret")?;
                held.dirs.push(dir.clone());
                let size = secret.0.len() as u64 + 64 * 1024;
                let data = std::ffi::CString::new(format!("mode=0700,size={size}"))
                    .expect("invariant: no NUL in mount options");
                rustix::mount::mount(
                    "tmpfs",
                    &dir,
                    "tmpfs",
                    rustix::mount::MountFlags::NOSUID
                        | rustix::mount::MountFlags::NODEV
                        | rustix::mount::MountFlags::NOEXEC,
                    Some(data.as_c_str()),
                )
                .map_err(|e| BuildError::io(&dir, e.into()))?;
                held.binds.push(dir.clone());
                let file = dir.join("secret");
                let mut f = std::fs::OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .mode(0o400)
                    .open(&file)
                    .map_err(|e| BuildError::io(&file, e))?;
                f.write_all(&secret.0)
                    .map_err(|e| BuildError::io(&file, e))?;
                drop(f);
                std::os::unix::fs::chown(&file, Some(*uid), Some(*gid))
                    .map_err(|e| BuildError::io(&file, e))?;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode & 0o7777))
                    .map_err(|e| BuildError::io(&file, e))?;
                MountKind::Secret { source: file }
            }
            OpMount::Ssh { .. } => {
                return Err(BuildError::Unsupported {
                    what: "RUN --mount=type=ssh".into(),
                });
            }
            _ => {
                return Err(BuildError::Unsupported {
                    what: "this RUN --mount type".into(),
                });
            }
        };
        Ok(Some(MountSpec {
            destination: m.dest.clone(),
            kind,
        }))
    }
}

/// Files the executor bind-mounts into every step (see `worker::exec`): runc
/// creates them when the image lacks them, and they must not end up in a layer.
const EXECUTOR_MOUNTS: [&str; 2] = ["/etc/resolv.conf", "/etc/hosts"];

/// For each mount, the first component of its destination that the root lacks:
/// the runtime creates it as a mount point, and it must not end up in the layer.
pub(crate) fn missing_mount_points(
    root: &Path,
    mounts: &[MountSpec],
) -> Result<Vec<archive::CleanPath>, BuildError> {
    let tree = archive::Root::open(root)?;
    let mut out = Vec::new();
    // The executor's own binds come on top of the step's mounts.
    let dests = mounts
        .iter()
        .map(|m| m.destination.as_str())
        .chain(EXECUTOR_MOUNTS);
    for d in dests {
        let dest = archive::CleanPath::new(d.as_bytes())?;
        for depth in 1..=dest.depth() {
            let p = dest.prefix(depth);
            if tree.lstat(&p)?.is_none() {
                if !out.contains(&p) {
                    out.push(p);
                }
                break;
            }
        }
    }
    Ok(out)
}

/// Remove the mount points [`missing_mount_points`] found, when the step left
/// them empty (a step that wrote files there keeps them, as BuildKit does).
pub(crate) fn remove_stubs(root: &Path, stubs: &[archive::CleanPath]) -> Result<(), BuildError> {
    let tree = archive::Root::open(root)?;
    for p in stubs {
        if only_stubs(&tree, p)? {
            tree.remove_all(p)?;
        }
    }
    Ok(())
}

/// Whether `p` is an empty file, or a directory holding only such files and dirs.
fn only_stubs(tree: &archive::Root, p: &archive::CleanPath) -> Result<bool, BuildError> {
    let Some(st) = tree.lstat(p)? else {
        return Ok(false);
    };
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::Directory => {
            for name in tree.read_dir(p)? {
                if !only_stubs(tree, &p.join(&name))? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        rustix::fs::FileType::RegularFile => Ok(st.st_size == 0),
        _ => Ok(false),
    }
}

/// The most instances one private cache id gets (one per step using it at once).
const MAX_PRIVATE_INSTANCES: usize = 64;

/// `sharing=private`: the first instance of the cache (`HEX`, then `HEX-1`, `HEX-2`,
/// …) that no other step holds, locked for this step. Instances persist, so a later
/// step gets one of them back, with what earlier steps left in it.
fn private_instance(cache_dir: &Path, hex: &str, held: &mut Held) -> Result<String, BuildError> {
    for n in 0..MAX_PRIVATE_INSTANCES {
        let name = if n == 0 {
            hex.to_owned()
        } else {
            format!("{hex}-{n}")
        };
        let lock_path = cache_dir.join(format!("{name}.lock"));
        match content::lock::try_lock(&lock_path) {
            Ok(Some(f)) => {
                held.locks.push(f);
                return Ok(name);
            }
            Ok(None) => continue,
            Err(e) => return Err(BuildError::io(&lock_path, e.source)),
        }
    }
    Err(BuildError::io(
        cache_dir,
        std::io::Error::other(format!(
            "{MAX_PRIVATE_INSTANCES} steps already hold instances of a private cache mount"
        )),
    ))
}

/// Make the cache directory `dir`: empty, or a copy of `seed` (`from=`/`source=`,
/// or the directory the frontend made for `uid=`/`gid=`/`mode=`) with its owner and
/// mode. It is made under a temporary name and renamed into place without
/// replacing: a concurrent step that made it first wins and this copy is removed,
/// so no step ever sees a half-seeded cache.
fn new_cache(cache_dir: &Path, dir: &Path, seed: Option<&Path>) -> Result<(), BuildError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staged = cache_dir.join(format!(".new-{}-{n}", std::process::id()));
    // Whatever is left under the temporary name (a lost race, a failed copy) goes.
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            if self.0.exists() {
                let _ = std::fs::remove_dir_all(self.0);
            }
        }
    }
    let _cleanup = Cleanup(&staged);
    match seed {
        Some(src) => {
            let meta = std::fs::metadata(src).map_err(|e| BuildError::io(src, e))?;
            if !meta.is_dir() {
                return Err(BuildError::io(
                    src,
                    std::io::Error::other("the source of a cache mount must be a directory"),
                ));
            }
            copy_tree(src, &staged)?;
        }
        None => std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&staged)
            .map_err(|e| BuildError::io(&staged, e))?,
    }
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        &staged,
        rustix::fs::CWD,
        dir,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(BuildError::io(dir, e.into())),
    }
}

/// Copy the tree `source` to the new path `dest` with `cp -a --no-dereference`:
/// owners, modes and times kept, and no symlink in it followed.
fn copy_tree(source: &Path, dest: &Path) -> Result<(), BuildError> {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg("--no-dereference")
        .arg("--")
        .arg(source)
        .arg(dest)
        .output()
        .map_err(|e| BuildError::io(source, e))?;
    if !out.status.success() {
        return Err(BuildError::io(
            source,
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        ));
    }
    Ok(())
}
