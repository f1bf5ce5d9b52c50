//! The run index: where the runs of earlier layer blobs sit, so that exporting a
//! changed layer copies its unchanged runs' compressed bytes out of those blobs
//! instead of compressing them again (`archive::RunSource`).
//!
//! ```text
//! <state root>/export/runs/<compression key>-e<CODEC_EPOCH>/<blob hex>
//! ```
//!
//! One file per layer blob of two or more runs: a header line
//! (`manifold.export.runs.v1 <compression key> <epoch> <blob digest>`), then one line
//! per run: `<sha256 hex of the uncompressed run> <length> <offset> <compressed length>`.
//!
//! The index holds no compressed bytes, only offsets into blobs of the content
//! store, which are immutable and verified; a blob that GC removed is a miss, and its
//! index file is deleted. The files of a directory are read newest first up to
//! [`INDEX_BUDGET`] bytes; older ones are deleted when a new one is written.
//!
//! **Invariant**: the bytes returned for a run are the member or frame that a cold
//! export wrote for the same run bytes, compression and [`CODEC_EPOCH`], so a layer
//! made with reused runs is byte for byte the layer a cold export makes.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::OnceLock;

use archive::{MAX_COMPRESSED_RUN, Run, RunSource};
use content::Store;
use oci::Digest;

use crate::cache::{CODEC_EPOCH, write_atomic};
use crate::desc::Compression;
use crate::error::Result;

/// Index bytes read (and kept) per compression: about 20 000 runs, some 15 GiB of
/// layers, and a few MiB of memory when loaded.
pub const INDEX_BUDGET: u64 = 2 * 1024 * 1024;

const HEADER: &str = "manifold.export.runs.v1";

/// Where a run's compressed bytes are.
#[derive(Debug, Clone, Copy)]
struct Loc {
    blob: usize,
    len: u64,
    offset: u64,
    compressed_len: u64,
}

#[derive(Debug, Default)]
struct Loaded {
    blobs: Vec<Digest>,
    runs: HashMap<Digest, Loc>,
}

/// The run index of one state root and compression.
#[derive(Debug)]
pub(crate) struct RunIndex {
    store: Store,
    compression: Compression,
    dir: PathBuf,
    loaded: OnceLock<Loaded>,
}

/// `<root>/export/runs`: the run index of `store`'s state root.
pub fn runs_dir(store: &Store) -> PathBuf {
    store.root().join("export").join("runs")
}

impl RunIndex {
    pub(crate) fn new(store: &Store, compression: Compression) -> Self {
        let dir = runs_dir(store).join(format!("{}-e{CODEC_EPOCH}", compression.key()));
        RunIndex {
            store: store.clone(),
            compression,
            dir,
            loaded: OnceLock::new(),
        }
    }

    /// Record where the runs of `blob` are, then trim the directory to the budget.
    /// Blobs of fewer than two runs are not recorded (the layer cache covers them).
    pub(crate) fn record(&self, blob: &Digest, runs: &[Run]) -> Result<()> {
        if runs.len() < 2 {
            return Ok(());
        }
        let mut text = format!("{HEADER} {} {CODEC_EPOCH} {blob}\n", self.compression.key());
        for r in runs {
            if let Some(d) = &r.digest {
                text.push_str(&format!(
                    "{} {} {} {}\n",
                    d.hex(),
                    r.len,
                    r.offset,
                    r.compressed_len
                ));
            }
        }
        fs::create_dir_all(&self.dir)
            .map_err(crate::ExportError::io("create directory", &self.dir))?;
        write_atomic(&self.dir.join(blob.hex()), text.as_bytes())?;
        self.trim();
        Ok(())
    }

    /// Index files, newest first.
    fn files(&self) -> Vec<(PathBuf, u64)> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<_> = rd
            .filter_map(|e| {
                let e = e.ok()?;
                if e.file_name().to_string_lossy().starts_with('.') {
                    return None;
                }
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, e.path(), m.len()))
            })
            .collect();
        files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        files.into_iter().map(|(_, p, n)| (p, n)).collect()
    }

    /// Delete the files past the budget, oldest first.
    fn trim(&self) {
        let mut total = 0;
        for (path, len) in self.files() {
            total += len;
            if total > INDEX_BUDGET {
                let _ = fs::remove_file(path);
            }
        }
    }

    fn load(&self) -> Loaded {
        let mut loaded = Loaded::default();
        let mut total = 0;
        for (path, len) in self.files() {
            total += len;
            if total > INDEX_BUDGET {
                break;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            match self.parse(&text) {
                Some((blob, _)) if !self.store.contains(&blob) => {
                    // Collected: the index of a missing blob is of no use.
                    let _ = fs::remove_file(&path);
                }
                Some((blob, runs)) => {
                    let i = loaded.blobs.len();
                    loaded.blobs.push(blob);
                    for (d, mut loc) in runs {
                        loc.blob = i;
                        // Newer files come first and win.
                        loaded.runs.entry(d).or_insert(loc);
                    }
                }
                None => {}
            }
        }
        loaded
    }

    /// An index file's blob and runs; `None` if it is damaged or of other options.
    fn parse(&self, text: &str) -> Option<(Digest, Vec<(Digest, Loc)>)> {
        let mut lines = text.lines();
        let mut header = lines.next()?.split(' ');
        if header.next()? != HEADER
            || header.next()? != self.compression.key()
            || header.next()?.parse::<u32>().ok()? != CODEC_EPOCH
        {
            return None;
        }
        let blob = Digest::parse(header.next()?).ok()?;
        let mut runs = Vec::new();
        for line in lines {
            let mut f = line.split(' ');
            let digest = Digest::parse(&format!("sha256:{}", f.next()?)).ok()?;
            let loc = Loc {
                blob: 0,
                len: f.next()?.parse().ok()?,
                offset: f.next()?.parse().ok()?,
                compressed_len: f.next()?.parse().ok()?,
            };
            if loc.compressed_len > MAX_COMPRESSED_RUN as u64 || f.next().is_some() {
                return None;
            }
            runs.push((digest, loc));
        }
        Some((blob, runs))
    }

    /// Read the run at `loc` of `blob` into `out`.
    fn read(&self, blob: &Digest, loc: Loc, out: &mut Vec<u8>) -> Option<()> {
        let mut f = self.store.open_blob(blob).ok()?;
        if f.metadata().ok()?.len() < loc.offset.checked_add(loc.compressed_len)? {
            return None;
        }
        f.seek(SeekFrom::Start(loc.offset)).ok()?;
        out.resize(usize::try_from(loc.compressed_len).ok()?, 0);
        f.read_exact(out).ok()?;
        let magic: &[u8] = match self.compression {
            Compression::Gzip { .. } => &[0x1f, 0x8b],
            Compression::Zstd { .. } => &[0x28, 0xb5, 0x2f, 0xfd],
            Compression::Uncompressed => return None,
        };
        out.starts_with(magic).then_some(())
    }
}

impl RunSource for RunIndex {
    fn compressed(&self, digest: &Digest, len: u64, out: &mut Vec<u8>) -> bool {
        let loaded = self.loaded.get_or_init(|| self.load());
        match loaded.runs.get(digest) {
            Some(&loc) if loc.len == len => self.read(&loaded.blobs[loc.blob], loc, out).is_some(),
            _ => false,
        }
    }
}
