//! Named images: entries of the layout's `index.json` carrying the
//! `org.opencontainers.image.ref.name` annotation.
//!
//! **Invariant**: `index.json` is only replaced whole (temp file, fsync, rename) under
//! `locks/index.lock`, so readers see the old or the new list, never a mix.

use oci::descriptor::ANNOTATION_REF_NAME;
use oci::{Descriptor, ImageIndex, RawDocument};

use crate::error::{Result, StoreError};
use crate::lease::Lease;
use crate::lock::Mode;
use crate::store::{Store, write_atomic};

impl Store {
    /// Start a lease: blobs written or protected under it survive GC until it drops.
    pub fn lease(&self) -> Result<Lease> {
        // Under the GC lock so GC never sees the file before it is locked.
        let _gc = self.lock_gc(Mode::Shared)?;
        Lease::create(&self.leases_dir())
    }

    /// Protect an existing blob with `lease`; `Ok(false)` if the store lacks it.
    pub fn protect(&self, lease: &Lease, digest: &oci::Digest) -> Result<bool> {
        let _gc = self.lock_gc(Mode::Shared)?;
        if !self.contains(digest) {
            return Ok(false);
        }
        lease.add(digest)?;
        Ok(true)
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let bytes = std::fs::read(&path).map_err(StoreError::io("read", &path))?;
        let doc = RawDocument::<ImageIndex>::parse(bytes)
            .map_err(|source| StoreError::CorruptIndex { path, source })?;
        Ok(doc.value().clone())
    }

    /// All named images, sorted by name.
    pub fn names(&self) -> Result<Vec<(String, Descriptor)>> {
        let mut out: Vec<_> = self
            .index()?
            .manifests
            .into_iter()
            .filter_map(|d| d.ref_name().map(|n| (n.to_owned(), d.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The descriptor named `name`.
    pub fn resolve(&self, name: &str) -> Result<Descriptor> {
        self.index()?
            .manifests
            .into_iter()
            .find(|d| d.ref_name() == Some(name))
            .ok_or_else(|| StoreError::NameNotFound(name.to_owned()))
    }

    /// Point `name` at `desc` (replacing what it named). The blob must be present.
    pub fn set_name(&self, name: &str, desc: &Descriptor) -> Result<()> {
        check_name(name)?;
        if !self.contains(&desc.digest) {
            return Err(StoreError::NotFound(desc.digest.clone()));
        }
        let mut entry = desc.clone();
        entry
            .annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), name.to_owned());
        self.update_index(|idx| {
            // Already so: `index.json` is not rewritten (a no-op rebuild tags again).
            if idx.manifests.contains(&entry) {
                return false;
            }
            idx.manifests.retain(|d| d.ref_name() != Some(name));
            idx.manifests.push(entry);
            idx.manifests
                .sort_by(|a, b| a.ref_name().cmp(&b.ref_name()));
            true
        })
    }

    /// Remove `name`; its blobs go at the next GC unless something else reaches them.
    pub fn remove_name(&self, name: &str) -> Result<()> {
        let mut found = false;
        self.update_index(|idx| {
            let before = idx.manifests.len();
            idx.manifests.retain(|d| d.ref_name() != Some(name));
            found = idx.manifests.len() != before;
            found
        })?;
        if found {
            Ok(())
        } else {
            Err(StoreError::NameNotFound(name.to_owned()))
        }
    }

    /// Remove every entry of `index.json`.
    pub fn remove_all_names(&self) -> Result<usize> {
        let mut n = 0;
        self.update_index(|idx| {
            n = idx.manifests.len();
            idx.manifests.clear();
            n > 0
        })?;
        Ok(n)
    }

    /// Read-modify-write `index.json` under its lock; `f` returns whether it changed.
    fn update_index(&self, f: impl FnOnce(&mut ImageIndex) -> bool) -> Result<()> {
        let _guard = self.lock_index()?;
        let mut idx = self.index()?;
        if f(&mut idx) {
            let bytes = serde_json::to_vec(&idx).expect("an index always serialises");
            write_atomic(&self.index_path(), &bytes)?;
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(StoreError::InvalidName(name.to_owned()));
    }
    Ok(())
}
