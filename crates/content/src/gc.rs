//! Reachability, garbage collection, fsck and disk usage.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::PathBuf;

use oci::document::ManifestOrIndex;
use oci::media::{self, Kind};
use oci::{Algorithm, Descriptor, Digest, Hasher, Platform};

use crate::error::{Result, StoreError};
use crate::lease;
use crate::lock::{self, Mode};
use crate::store::Store;

/// What garbage collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub removed: Vec<Digest>,
    pub bytes_freed: u64,
    pub stale_ingests: usize,
    pub stale_leases_seen: bool,
}

/// What fsck found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FsckReport {
    pub checked: usize,
    /// Blobs whose bytes do not hash to their name: (name, actual digest).
    pub corrupt: Vec<(Digest, Digest)>,
    /// Files under `blobs/` that are not named by a valid digest.
    pub stray: Vec<PathBuf>,
    /// Referenced blobs that are absent: (referrer, missing digest).
    pub missing: Vec<(String, Digest)>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.stray.is_empty() && self.missing.is_empty()
    }
}

/// Disk usage of the store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Usage {
    pub blobs: usize,
    pub bytes: u64,
    pub reachable_blobs: usize,
    pub reachable_bytes: u64,
    pub ingest_bytes: u64,
}

/// A named image for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub name: String,
    pub descriptor: Descriptor,
    /// Platforms of the image's manifests (one for a single-platform image, if known).
    pub platforms: Vec<Platform>,
    /// Bytes of every distinct blob the image reaches that is present.
    pub size: u64,
}

impl Store {
    /// Every blob reachable from `roots`, following manifests and indexes. Absent
    /// children are reported through `missing` (referrer, digest).
    fn walk(
        &self,
        roots: impl IntoIterator<Item = (String, Descriptor)>,
        missing: &mut Vec<(String, Digest)>,
    ) -> Result<BTreeMap<Digest, u64>> {
        let mut seen = BTreeMap::new();
        let mut stack: Vec<(String, Descriptor)> = roots.into_iter().collect();
        while let Some((from, desc)) = stack.pop() {
            if seen.contains_key(&desc.digest) {
                continue;
            }
            let size = match self.blob_size(&desc.digest) {
                Ok(s) => s,
                Err(StoreError::NotFound(d)) => {
                    missing.push((from, d));
                    continue;
                }
                Err(e) => return Err(e),
            };
            seen.insert(desc.digest.clone(), size);
            if !media::is_manifest_like(&desc.media_type) && !desc.media_type.is_empty() {
                continue;
            }
            if desc.media_type.is_empty() && size > crate::DOCUMENT_CAP {
                continue; // unknown type and too big for a document: a layer
            }
            let bytes = self.read_document(&desc.digest)?;
            let Ok(doc) = ManifestOrIndex::parse(&desc.media_type, bytes) else {
                continue; // not a document we understand: keep it, follow nothing
            };
            let here = desc.digest.to_string();
            match doc {
                ManifestOrIndex::Manifest(m) => {
                    let v = m.value();
                    stack.push((here.clone(), v.config.clone()));
                    stack.extend(v.layers.iter().map(|l| (here.clone(), l.clone())));
                    stack.extend(v.subject.iter().map(|s| (here.clone(), s.clone())));
                }
                ManifestOrIndex::Index(i) => {
                    stack.extend(
                        i.value()
                            .manifests
                            .iter()
                            .map(|m| (here.clone(), m.clone())),
                    );
                }
            }
        }
        Ok(seen)
    }

    fn name_roots(&self) -> Result<Vec<(String, Descriptor)>> {
        self.names().map(|v| v.into_iter().collect())
    }

    fn lease_roots(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(lease::live_roots(&self.leases_dir())?
            .into_iter()
            .map(|d| {
                // Media type unknown: walk treats "" as "maybe a document".
                ("lease".to_owned(), Descriptor::new("", d, 0))
            })
            .collect())
    }

    /// Every blob present on disk, with its size. Files that are not digests are
    /// returned separately.
    fn all_blobs(&self) -> Result<(BTreeMap<Digest, u64>, Vec<PathBuf>)> {
        let mut blobs = BTreeMap::new();
        let mut stray = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.layout_dir().join("blobs").join(alg.as_str());
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(StoreError::Io {
                        op: "list",
                        path: dir,
                        source: e,
                    });
                }
            };
            for entry in rd {
                let entry = entry.map_err(StoreError::io("list", &dir))?;
                let name = entry.file_name();
                let parsed = name
                    .to_str()
                    .and_then(|n| Digest::parse(&format!("{}:{n}", alg.as_str())).ok());
                let meta = entry
                    .metadata()
                    .map_err(StoreError::io("stat", entry.path()))?;
                match parsed {
                    Some(d) if meta.is_file() => {
                        blobs.insert(d, meta.len());
                    }
                    _ => stray.push(entry.path()),
                }
            }
        }
        Ok((blobs, stray))
    }

    /// Remove every blob that no name and no live lease reaches, and writes left
    /// behind by dead processes.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_with_roots(|| Ok(Vec::new()))
    }

    /// [`Store::gc`] with more roots, which `extra` reads under the GC lock after the
    /// leases. A writer that records its blob elsewhere before dropping its lease is
    /// therefore always seen by one of the two.
    pub fn gc_with_roots(
        &self,
        extra: impl FnOnce() -> Result<Vec<Descriptor>>,
    ) -> Result<GcReport> {
        let _gc = self.lock_gc(Mode::Exclusive)?;
        let mut roots = self.name_roots()?;
        roots.extend(self.lease_roots()?);
        roots.extend(extra()?.into_iter().map(|d| ("extra".to_owned(), d)));
        let keep = self.walk(roots, &mut Vec::new())?;
        let (all, _stray) = self.all_blobs()?;
        let mut report = GcReport::default();
        for (digest, size) in all {
            if keep.contains_key(&digest) {
                continue;
            }
            let path = self.blob_path(&digest);
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.removed.push(digest);
                    report.bytes_freed += size;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Io {
                        op: "remove",
                        path,
                        source: e,
                    });
                }
            }
        }
        report.stale_ingests = self.remove_stale_ingests()?;
        Ok(report)
    }

    /// Temp files under `ingest/` whose writer is gone (their flock is free).
    fn remove_stale_ingests(&self) -> Result<usize> {
        let dir = self.ingest_dir();
        let mut n = 0;
        for entry in fs::read_dir(&dir).map_err(StoreError::io("list", &dir))? {
            let path = entry.map_err(StoreError::io("list", &dir))?.path();
            let Ok(file) = fs::File::open(&path) else {
                continue;
            };
            if lock::try_lock_file(&file, &path)? && fs::remove_file(&path).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Re-hash every blob and check that every name's graph is complete.
    pub fn fsck(&self) -> Result<FsckReport> {
        let (all, stray) = self.all_blobs()?;
        let mut report = FsckReport {
            stray,
            ..FsckReport::default()
        };
        let mut buf = vec![0u8; 1 << 20];
        for digest in all.keys() {
            let actual = self.hash_blob(digest, &mut buf)?;
            if actual != *digest {
                report.corrupt.push((digest.clone(), actual));
            }
            report.checked += 1;
        }
        let names = self.name_roots()?;
        self.walk(names, &mut report.missing)?;
        Ok(report)
    }

    /// Re-hash every blob and move each whose bytes do not hash to its name out of
    /// the store into `<root>/corrupt/` (kept for inspection, never served), so the
    /// next write of that digest stores good bytes again. For a store that may have
    /// lost writes: a daemon that did not stop cleanly runs it at startup. Returns
    /// what was set aside: (name, where it went).
    pub fn set_aside_corrupt_blobs(&self) -> Result<Vec<(Digest, PathBuf)>> {
        let (all, _) = self.all_blobs()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut corrupt = Vec::new();
        for digest in all.keys() {
            if self.hash_blob(digest, &mut buf)? != *digest {
                corrupt.push(digest.clone());
            }
        }
        if corrupt.is_empty() {
            return Ok(Vec::new());
        }
        let dir = self.root().join("corrupt");
        fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
        // Writers check presence under the shared lock: none sees a blob vanish
        // half-way through making content visible.
        let _gc = self.lock_gc(Mode::Exclusive)?;
        let mut moved = Vec::new();
        for digest in corrupt {
            let from = self.blob_path(&digest);
            let to = dir.join(format!("{}-{}", digest.algorithm().as_str(), digest.hex()));
            fs::rename(&from, &to).map_err(StoreError::io("set aside", &from))?;
            moved.push((digest, to));
        }
        Ok(moved)
    }

    /// The digest of a present blob's bytes, by the algorithm of `digest`.
    fn hash_blob(&self, digest: &Digest, buf: &mut [u8]) -> Result<Digest> {
        let mut f = self.open_blob(digest)?;
        let mut h = Hasher::new(digest.algorithm());
        loop {
            let n = f
                .read(buf)
                .map_err(StoreError::io("read", self.blob_path(digest)))?;
            if n == 0 {
                return Ok(h.finish());
            }
            h.update(&buf[..n]);
        }
    }

    /// Disk usage: all blobs, what names reach, and writes in progress.
    pub fn usage(&self) -> Result<Usage> {
        let (all, _) = self.all_blobs()?;
        let reach = self.walk(self.name_roots()?, &mut Vec::new())?;
        let ingest_dir = self.ingest_dir();
        let ingest_bytes = fs::read_dir(&ingest_dir)
            .map_err(StoreError::io("list", &ingest_dir))?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        Ok(Usage {
            blobs: all.len(),
            bytes: all.values().sum(),
            reachable_blobs: reach.len(),
            reachable_bytes: reach.values().sum(),
            ingest_bytes,
        })
    }

    /// Named images with their platforms and sizes.
    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        let mut out = Vec::new();
        for (name, desc) in self.names()? {
            let reach = self.walk([(name.clone(), desc.clone())], &mut Vec::new())?;
            let platforms = self.platforms_of(&desc)?;
            out.push(ImageSummary {
                name,
                size: reach.values().sum(),
                platforms,
                descriptor: desc,
            });
        }
        Ok(out)
    }

    /// Platforms an image serves: from an index's descriptors, or a manifest's config.
    fn platforms_of(&self, desc: &Descriptor) -> Result<Vec<Platform>> {
        if let Some(p) = &desc.platform {
            return Ok(vec![p.clone()]);
        }
        if !self.contains(&desc.digest) {
            return Ok(Vec::new());
        }
        let bytes = self.read_document(&desc.digest)?;
        let Ok(doc) = ManifestOrIndex::parse(&desc.media_type, bytes) else {
            return Ok(Vec::new());
        };
        Ok(match doc {
            ManifestOrIndex::Index(i) => {
                let mut set = BTreeSet::new();
                for m in &i.value().manifests {
                    // Attestation manifests carry unknown/unknown; they are no platform.
                    if let Some(p) = &m.platform
                        && p.os != "unknown"
                    {
                        set.insert(p.clone());
                    }
                }
                set.into_iter().collect()
            }
            ManifestOrIndex::Manifest(m) => {
                let cfg = &m.value().config;
                if media::kind(&cfg.media_type) != Kind::Config || !self.contains(&cfg.digest) {
                    return Ok(Vec::new());
                }
                let bytes = self.read_document(&cfg.digest)?;
                match oci::RawDocument::<oci::ImageConfig>::parse(bytes) {
                    Ok(c) => vec![c.value().platform()],
                    Err(_) => Vec::new(),
                }
            }
        })
    }
}
