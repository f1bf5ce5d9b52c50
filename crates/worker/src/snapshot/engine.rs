//! The operations both drivers share; the driver decides how a snapshot's files are
//! made (overlay mount or tree copy), diffed and unpacked into.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use archive::{
    Change, Expected, OverlayXattr, Root, WhiteoutMode, apply_blob, diff_dirs, diff_overlay_upper,
};

use super::copy::copy_tree;
use super::error::SnapshotError;
use super::mount::{self, MountGuard, Upper};
use super::store::{Kind, Lock, Record, Store, now, try_lock};
use super::{Active, Applied, Committed, Driver, Key, ReadOnlyMount, Usage, driver_root};

type Result<T> = std::result::Result<T, SnapshotError>;

#[derive(Debug)]
pub(crate) struct Inner {
    store: Store,
    driver: Driver,
    root_user: bool,
}

/// What an [`Active`] holds.
#[derive(Debug)]
pub(crate) struct ActiveState {
    pub id: u64,
    pub path: PathBuf,
    pub parent: Option<(Key, u64)>,
    guard: Option<MountGuard>,
    _owner: Lock,
}

/// What a [`ReadOnlyMount`] holds.
#[derive(Debug)]
pub(crate) struct ViewState {
    pub id: u64,
    pub path: PathBuf,
    guard: Option<MountGuard>,
    _owner: Lock,
}

/// A just-recorded active or view.
struct NewRecord {
    id: u64,
    /// The parent's key and id.
    parent: Option<(Key, u64)>,
    /// The fs dirs of the parent chain, top-most first.
    chain: Vec<PathBuf>,
    owner: Lock,
}

fn find<'a>(records: &'a [Record], key: &Key) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.kind == Kind::Committed && r.key.as_deref() == Some(key.as_str()))
}

fn key_of(records: &[Record], id: u64) -> Option<Key> {
    records
        .iter()
        .find(|r| r.id == id)
        .and_then(|r| r.key.clone())
        .map(Key)
}

fn committed(records: &[Record], r: &Record) -> Committed {
    Committed {
        key: Key(r.key.clone().unwrap_or_default()),
        parent: r.parent.and_then(|p| key_of(records, p)),
        id: r.id,
    }
}

impl Inner {
    pub fn open(state_root: &Path, driver: Driver) -> Result<Arc<Inner>> {
        let inner = Inner {
            store: Store::open(driver_root(state_root, driver))?,
            driver,
            root_user: content::identity::privilege() == content::identity::Privilege::HostRoot,
        };
        inner.reap()?;
        Ok(Arc::new(inner))
    }

    pub fn root(&self) -> &Path {
        self.store.root()
    }

    /// Remove actives and views whose process is gone, and directories without a
    /// record (a crash between steps).
    fn reap(&self) -> Result<()> {
        let _lock = self.store.lock(true)?;
        let records = self.store.records()?;
        for r in &records {
            if r.kind == Kind::Committed {
                continue;
            }
            let owner = self.store.owner_lock_path(r.id);
            if !owner.exists() || try_lock(&owner)?.is_some() {
                let _ = mount::unmount_path(&self.store.snap_dir(r.id).join("m"));
                self.store.delete(r.id)?;
                self.store.remove_dir(r.id)?;
            }
        }
        for id in self.store.orphans(&records)? {
            let _ = mount::unmount_path(&self.store.snap_dir(id).join("m"));
            self.store.remove_dir(id)?;
        }
        Ok(())
    }

    /// The fs dirs of `id` and its ancestors, top-most first.
    fn chain(&self, records: &[Record], id: u64) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut next = Some(id);
        while let Some(id) = next {
            out.push(self.store.fs_dir(id));
            next = records.iter().find(|r| r.id == id).and_then(|r| r.parent);
        }
        out
    }

    /// Record a new active or view on `parent`; returns its id, the parent's chain
    /// and the held owner lock.
    fn new_record(&self, kind: Kind, parent: Option<&Key>) -> Result<NewRecord> {
        let _lock = self.store.lock(true)?;
        let records = self.store.records()?;
        let parent = match parent {
            Some(key) => {
                let r = find(&records, key).ok_or_else(|| self.not_found(key))?;
                Some((key.clone(), r.id))
            }
            None => None,
        };
        let chain = parent
            .as_ref()
            .map(|(_, id)| self.chain(&records, *id))
            .unwrap_or_default();
        let id = self.store.alloc(&records)?;
        let owner = try_lock(&self.store.owner_lock_path(id))?
            .expect("a new snapshot directory has no lock holder");
        self.store.write(&Record {
            id,
            kind,
            key: None,
            parent: parent.as_ref().map(|(_, id)| *id),
            created: now(),
        })?;
        Ok(NewRecord {
            id,
            parent,
            chain,
            owner,
        })
    }

    fn not_found(&self, key: &Key) -> SnapshotError {
        SnapshotError::NotFound {
            key: key.to_string(),
            root: self.root().to_owned(),
        }
    }

    /// Drop a record and its directory (after its mount is gone).
    fn discard(&self, id: u64) -> Result<()> {
        let _lock = self.store.lock(true)?;
        self.store.delete(id)?;
        self.store.remove_dir(id)
    }

    fn mkdir(p: &Path) -> Result<()> {
        fs::create_dir(p).map_err(SnapshotError::io("create directory", p))
    }

    pub fn prepare(self: &Arc<Self>, parent: Option<&Key>) -> Result<Active> {
        let NewRecord {
            id,
            parent,
            chain,
            owner,
        } = self.new_record(Kind::Active, parent)?;
        let dir = self.store.snap_dir(id);
        let fs_dir = self.store.fs_dir(id);
        let made = (|| match self.driver {
            Driver::Overlay | Driver::FuseOverlay => {
                let (work, m) = (dir.join("work"), dir.join("m"));
                for d in [&fs_dir, &work, &m] {
                    Self::mkdir(d)?;
                }
                let lowers = if chain.is_empty() {
                    vec![self.store.empty_dir()]
                } else {
                    chain
                };
                let upper = Upper {
                    upper: &fs_dir,
                    work: &work,
                };
                let guard = mount_overlay(self.driver, &lowers, Some(upper), &m)?;
                Ok((m, Some(guard)))
            }
            _ => {
                Self::mkdir(&fs_dir)?;
                if let Some(src) = chain.first() {
                    copy_tree(src, &fs_dir)?;
                }
                Ok((fs_dir.clone(), None))
            }
        })();
        match made {
            Ok((path, guard)) => Ok(Active {
                inner: self.clone(),
                state: Some(ActiveState {
                    id,
                    path,
                    parent,
                    guard,
                    _owner: owner,
                }),
            }),
            Err(e) => {
                let _ = self.discard(id);
                Err(e)
            }
        }
    }

    pub fn commit(&self, mut state: ActiveState, key: &Key) -> Result<Committed> {
        let id = state.id;
        let unmounted = (|| {
            if let Some(g) = state.guard.take() {
                g.unmount()?;
                let dir = self.store.snap_dir(id);
                for sub in ["work", "m"] {
                    let p = dir.join(sub);
                    fs::remove_dir_all(&p).map_err(SnapshotError::io("remove", &p))?;
                }
            }
            Ok(())
        })();
        if let Err(e) = unmounted {
            let _ = self.abort(state);
            return Err(e);
        }
        let parent_id = state.parent.as_ref().map(|(_, id)| *id);
        let result = self.mark_committed(id, parent_id, key);
        if result.is_err() {
            let _ = self.discard(id);
        }
        drop(state);
        result
    }

    fn mark_committed(&self, id: u64, parent: Option<u64>, key: &Key) -> Result<Committed> {
        let _lock = self.store.lock(true)?;
        let records = self.store.records()?;
        if find(&records, key).is_some() {
            return Err(SnapshotError::Exists {
                key: key.to_string(),
                root: self.root().to_owned(),
            });
        }
        let rec = Record {
            id,
            kind: Kind::Committed,
            key: Some(key.to_string()),
            parent,
            created: now(),
        };
        self.store.write(&rec)?;
        let _ = fs::remove_file(self.store.owner_lock_path(id));
        Ok(Committed {
            key: key.clone(),
            parent: parent.and_then(|p| key_of(&records, p)),
            id,
        })
    }

    pub fn abort(&self, mut state: ActiveState) -> Result<()> {
        if let Some(g) = state.guard.take() {
            g.unmount()?;
        }
        let id = state.id;
        drop(state);
        self.discard(id)
    }

    pub fn view(self: &Arc<Self>, key: &Key) -> Result<ReadOnlyMount> {
        let NewRecord {
            id, chain, owner, ..
        } = self.new_record(Kind::View, Some(key))?;
        let m = self.store.snap_dir(id).join("m");
        let made = Self::mkdir(&m).and_then(|()| match self.driver {
            Driver::Overlay | Driver::FuseOverlay => {
                // Two lowers at least: a single one would show its whiteouts.
                let mut lowers = chain;
                lowers.push(self.store.empty_dir());
                mount_overlay(self.driver, &lowers, None, &m)
            }
            _ => mount::bind_ro(&chain[0], &m),
        });
        match made {
            Ok(guard) => Ok(ReadOnlyMount {
                inner: self.clone(),
                state: Some(ViewState {
                    id,
                    path: m,
                    guard: Some(guard),
                    _owner: owner,
                }),
            }),
            Err(e) => {
                let _ = self.discard(id);
                Err(e)
            }
        }
    }

    pub fn close_view(&self, mut state: ViewState) -> Result<()> {
        if let Some(g) = state.guard.take() {
            g.unmount()?;
        }
        let id = state.id;
        drop(state);
        self.discard(id)
    }

    pub fn get(&self, key: &Key) -> Result<Option<Committed>> {
        let _lock = self.store.lock(false)?;
        let records = self.store.records()?;
        Ok(find(&records, key).map(|r| committed(&records, r)))
    }

    pub fn list(&self) -> Result<Vec<Committed>> {
        let _lock = self.store.lock(false)?;
        let records = self.store.records()?;
        Ok(records
            .iter()
            .filter(|r| r.kind == Kind::Committed)
            .map(|r| committed(&records, r))
            .collect())
    }

    fn diff_of(&self, id: u64, parent: Option<u64>) -> Result<Vec<Change>> {
        let upper = self.store.fs_dir(id);
        match self.driver {
            Driver::Overlay | Driver::FuseOverlay => diff_overlay_upper(&upper),
            _ => {
                let lower = parent.map_or_else(|| self.store.empty_dir(), |p| self.store.fs_dir(p));
                diff_dirs(&lower, &upper)
            }
        }
        .map_err(SnapshotError::archive("diff", upper))
    }

    pub fn diff_active(&self, state: &ActiveState) -> Result<Vec<Change>> {
        self.diff_of(state.id, state.parent.as_ref().map(|(_, id)| *id))
    }

    pub fn diff_committed(&self, key: &Key) -> Result<Vec<Change>> {
        let rec = {
            let _lock = self.store.lock(false)?;
            let records = self.store.records()?;
            find(&records, key)
                .cloned()
                .ok_or_else(|| self.not_found(key))?
        };
        self.diff_of(rec.id, rec.parent)
    }

    pub fn apply_layer(
        self: &Arc<Self>,
        parent: Option<&Key>,
        key: &Key,
        blob: &mut dyn Read,
        media_type: Option<&str>,
        expected: &Expected,
    ) -> Result<Applied> {
        // One unpack per key across threads and processes; the others wait and share it.
        let _key_lock = self.store.key_lock(key.as_str())?;
        if let Some(committed) = self.get(key)? {
            return Ok(Applied {
                committed,
                duplicate_paths: 0,
            });
        }
        let NewRecord {
            id,
            parent,
            chain,
            owner,
        } = self.new_record(Kind::Active, parent)?;
        let fs_dir = self.store.fs_dir(id);
        let mut opts = super::apply_options();
        // A base layer goes straight into its upper dir with overlay whiteouts. A
        // layer on a parent is applied flat through an overlay mount of the chain:
        // its hardlinks may name files of lower layers, and directories it does not
        // list must keep the lower layers' owners and modes (an upper dir would
        // create them 0755).
        opts.whiteouts = match self.driver {
            Driver::Overlay if chain.is_empty() && self.root_user => {
                WhiteoutMode::Overlay(OverlayXattr::Trusted)
            }
            Driver::Overlay if chain.is_empty() => WhiteoutMode::Overlay(OverlayXattr::User),
            _ => WhiteoutMode::Flat,
        };
        let dir = self.store.snap_dir(id);
        let applied = (|| {
            Self::mkdir(&fs_dir)?;
            let mut guard = None;
            let target = match (self.driver, chain.first()) {
                (Driver::Copy, Some(src)) => {
                    copy_tree(src, &fs_dir)?;
                    fs_dir.clone()
                }
                (Driver::Overlay | Driver::FuseOverlay, Some(_)) => {
                    let (work, m) = (dir.join("work"), dir.join("m"));
                    Self::mkdir(&work)?;
                    Self::mkdir(&m)?;
                    let upper = Upper {
                        upper: &fs_dir,
                        work: &work,
                    };
                    guard = Some(mount_overlay(self.driver, &chain, Some(upper), &m)?);
                    m
                }
                _ => fs_dir.clone(),
            };
            let root = Root::open(&target).map_err(SnapshotError::archive("open", &target))?;
            let result = apply_blob(&root, blob, media_type, expected, &opts)
                .map_err(SnapshotError::archive("apply layer", &target));
            drop(root);
            if let Some(g) = guard {
                g.unmount()?;
                for sub in ["work", "m"] {
                    let p = dir.join(sub);
                    fs::remove_dir_all(&p).map_err(SnapshotError::io("remove", &p))?;
                }
            }
            result.map(|a| a.stats.duplicates)
        })();
        let duplicate_paths = match applied {
            Ok(n) => n,
            Err(e) => {
                let _ = self.discard(id);
                return Err(e);
            }
        };
        let result = self.mark_committed(id, parent.map(|(_, id)| id), key);
        if result.is_err() {
            let _ = self.discard(id);
        }
        // Held until the record says committed, so no other process reaps it first.
        drop(owner);
        result.map(|committed| Applied {
            committed,
            duplicate_paths,
        })
    }

    pub fn remove(&self, key: &Key) -> Result<()> {
        let _lock = self.store.lock(true)?;
        let records = self.store.records()?;
        let rec = find(&records, key).ok_or_else(|| self.not_found(key))?;
        let users = records.iter().filter(|r| r.parent == Some(rec.id)).count();
        if users > 0 {
            return Err(SnapshotError::InUse {
                key: key.to_string(),
                users,
                root: self.root().to_owned(),
            });
        }
        // The record goes first: a crash leaves an orphan directory, never a record
        // without files.
        self.store.delete(rec.id)?;
        self.store.remove_dir(rec.id)
    }

    pub fn usage(&self) -> Result<Usage> {
        let _lock = self.store.lock(false)?;
        let records = self.store.records()?;
        let count = |k| records.iter().filter(|r| r.kind == k).count();
        Ok(Usage {
            committed: count(Kind::Committed),
            active: count(Kind::Active),
            views: count(Kind::View),
            bytes: self.store.disk_bytes()?,
        })
    }
}

/// An overlay mount by the kernel, or by fuse-overlayfs for that driver.
fn mount_overlay(
    driver: Driver,
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> Result<MountGuard> {
    match driver {
        Driver::FuseOverlay => mount::fuse_overlay(lowers, upper, target),
        _ => mount::overlay(lowers, upper, target),
    }
}

/// Mount a two-lower overlay with an upper under `state_root` once and check that a
/// write lands in the upper dir. Everything is unmounted and removed afterwards.
pub(crate) fn probe_overlay(state_root: &Path, driver: Driver) -> std::result::Result<(), String> {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = driver_root(state_root, driver);
    let dir = base.join(format!(
        "probe.{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let [l1, l2, u, w, m] = ["l1", "l2", "u", "w", "m"].map(|s| dir.join(s));
        for d in [&l1, &l2, &u, &w, &m] {
            fs::create_dir(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        fs::write(l1.join("a"), b"a").map_err(|e| e.to_string())?;
        let guard = mount_overlay(
            driver,
            &[l2, l1],
            Some(Upper {
                upper: &u,
                work: &w,
            }),
            &m,
        )
        .map_err(|e| e.to_string())?;
        let wrote = fs::read(m.join("a"))
            .and_then(|_| fs::write(m.join("b"), b"b"))
            .map_err(|e| e.to_string());
        guard.unmount().map_err(|e| e.to_string())?;
        wrote?;
        if !u.join("b").exists() {
            return Err("a write did not land in the upper dir".to_owned());
        }
        Ok(())
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}
