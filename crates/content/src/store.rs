//! The store: an OCI image layout under a state root, with verified atomic writes.
//!
//! ```text
//! <root>/oci/oci-layout            {"imageLayoutVersion":"1.0.0"}
//! <root>/oci/index.json            named images (org.opencontainers.image.ref.name)
//! <root>/oci/blobs/<alg>/<hex>     verified content only
//! <root>/ingest/                   writes in progress (each flocked by its writer)
//! <root>/leases/                   leases (each flocked by its holder)
//! <root>/locks/                    index.lock, gc.lock
//! ```

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci::{Algorithm, Descriptor, Digest, Hasher};

use crate::error::{Result, StoreError};
use crate::lease::Lease;
use crate::lock::{self, FileLock, Mode};

/// Largest manifest, index or config read into memory.
pub const DOCUMENT_CAP: u64 = 16 << 20;

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const EMPTY_INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

/// What a writer expects the content to be.
#[derive(Debug, Clone)]
pub struct Expected {
    pub digest: Digest,
    pub size: Option<u64>,
}

impl From<&Descriptor> for Expected {
    fn from(d: &Descriptor) -> Self {
        Expected {
            digest: d.digest.clone(),
            size: Some(d.size),
        }
    }
}

/// A content store rooted at a state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    layout: PathBuf,
}

impl Store {
    /// Open the store at `root`, creating the layout on first use.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let layout = root.join("oci");
        let store = Store { root, layout };
        for dir in [
            store.layout.join("blobs").join("sha256"),
            store.layout.join("blobs").join("sha512"),
            store.ingest_dir(),
            store.leases_dir(),
            store.locks_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        }
        let layout_file = store.layout.join(LAYOUT_FILE);
        if !layout_file.exists() {
            write_atomic(&layout_file, LAYOUT_CONTENT)?;
        }
        let index = store.index_path();
        if !index.exists() {
            let _guard = store.lock_index()?;
            if !index.exists() {
                write_atomic(&index, EMPTY_INDEX)?;
            }
        }
        Ok(store)
    }

    /// Read an existing OCI image layout at `dir` (any tool's). Nothing is created:
    /// reads work, writes fail.
    pub fn read_layout(dir: impl Into<PathBuf>) -> Result<Self> {
        let layout: PathBuf = dir.into();
        let marker = layout.join(LAYOUT_FILE);
        if !marker.is_file() {
            return Err(StoreError::Io {
                op: "read OCI layout marker",
                path: marker,
                source: io::Error::new(io::ErrorKind::NotFound, "not an OCI image layout"),
            });
        }
        Ok(Store {
            root: layout.clone(),
            layout,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The OCI image layout directory (readable by skopeo, umoci, …).
    pub fn layout_dir(&self) -> &Path {
        &self.layout
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.layout.join("index.json")
    }
    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }
    pub(crate) fn leases_dir(&self) -> PathBuf {
        self.root.join("leases")
    }
    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }
    pub(crate) fn lock_index(&self) -> Result<FileLock> {
        Ok(lock::lock(
            &self.locks_dir().join("index.lock"),
            Mode::Exclusive,
        )?)
    }
    /// Writers hold this shared while they make content visible and protect it;
    /// garbage collection holds it exclusively.
    pub(crate) fn lock_gc(&self, mode: Mode) -> Result<FileLock> {
        Ok(lock::lock(&self.locks_dir().join("gc.lock"), mode)?)
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.layout
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Size of a present blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(digest.clone()))
            }
            Err(e) => Err(StoreError::Io {
                op: "stat",
                path,
                source: e,
            }),
        }
    }

    /// Open a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound(digest.clone())
            } else {
                StoreError::Io {
                    op: "open",
                    path,
                    source: e,
                }
            }
        })
    }

    /// Read a small blob (manifest, index, config) into memory, at most
    /// [`DOCUMENT_CAP`] bytes.
    pub fn read_document(&self, digest: &Digest) -> Result<Vec<u8>> {
        let size = self.blob_size(digest)?;
        if size > DOCUMENT_CAP {
            return Err(StoreError::TooLarge {
                digest: digest.clone(),
                size,
                cap: DOCUMENT_CAP,
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.open_blob(digest)?
            .take(DOCUMENT_CAP)
            .read_to_end(&mut buf)
            .map_err(StoreError::io("read", self.blob_path(digest)))?;
        Ok(buf)
    }

    /// Store `bytes`, protected by `lease`, and return their sha256 descriptor.
    pub fn put_bytes(&self, lease: &Lease, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let desc = Descriptor::for_bytes(media_type, bytes);
        self.write_blob(lease, &mut &bytes[..], Some(&Expected::from(&desc)))?;
        Ok(desc)
    }

    /// Stream `reader` into the store, protected by `lease`.
    ///
    /// With `expected`, the content must hash to its digest (and have its size);
    /// otherwise it is hashed with sha256. Nothing becomes visible unless it is
    /// complete and verified; on any error the temporary file is removed.
    /// Returns the digest and size written.
    pub fn write_blob(
        &self,
        lease: &Lease,
        reader: &mut dyn Read,
        expected: Option<&Expected>,
    ) -> Result<(Digest, u64)> {
        let what = expected.map_or_else(|| "new blob".to_owned(), |e| e.digest.to_string());
        // A blob already present is still read to the end and verified: the caller's
        // stream is always drained, and the store never trusts a claim unseen.
        let mut writer = self.writer(expected)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StoreError::Read {
                        expected: what,
                        source,
                    });
                }
            };
            writer.write(&buf[..n])?;
        }
        writer.commit(lease)
    }

    /// Move the complete file at `path` into the store as a blob, verified
    /// against `expected` first (hashed with its algorithm, one read pass). On
    /// the store's filesystem the file is renamed into place, so its bytes are
    /// never copied; elsewhere it is copied like [`Store::write_blob`]. On a
    /// mismatch nothing is stored and the file stays where it was.
    pub fn adopt_file(
        &self,
        lease: &Lease,
        path: &Path,
        expected: &Expected,
    ) -> Result<(Digest, u64)> {
        let mut f = File::open(path).map_err(StoreError::io("open", path))?;
        let mut hasher = Hasher::new(expected.digest.algorithm());
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io("read", path)(e)),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let actual = hasher.finish();
        if let Some(want) = expected.size
            && want != size
        {
            return Err(StoreError::SizeMismatch {
                digest: expected.digest.clone(),
                expected: want,
                actual: size,
            });
        }
        if actual != expected.digest {
            return Err(StoreError::DigestMismatch {
                expected: expected.digest.clone(),
                actual,
            });
        }
        let final_path = self.blob_path(&actual);
        let _gc = self.lock_gc(Mode::Shared)?;
        lease.add(&actual)?;
        if final_path.is_file() {
            return Ok((actual, size));
        }
        f.sync_all().map_err(StoreError::io("fsync", path))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644))
            .map_err(StoreError::io("chmod", path))?;
        match fs::rename(path, &final_path) {
            Ok(()) => {
                sync_dir(final_path.parent().expect("blob paths have a parent"))?;
                crate::crash::point("blob-renamed");
                Ok((actual, size))
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                drop(_gc);
                let mut f = File::open(path).map_err(StoreError::io("open", path))?;
                self.write_blob(lease, &mut f, Some(expected))
            }
            Err(e) => Err(StoreError::io("rename into place", path)(e)),
        }
    }

    /// Start writing a blob piece by piece (e.g. from a network stream that may
    /// need resuming). Dropping the writer without [`BlobWriter::commit`] discards
    /// everything written.
    pub fn writer(&self, expected: Option<&Expected>) -> Result<BlobWriter<'_>> {
        BlobWriter::new(self, expected.cloned())
    }
}

/// A write in progress: a flocked temporary file under `ingest/`, hashed as it grows.
#[derive(Debug)]
pub struct BlobWriter<'a> {
    store: &'a Store,
    file: tempfile::NamedTempFile,
    hasher: Hasher,
    size: u64,
    expected: Option<Expected>,
}

impl<'a> BlobWriter<'a> {
    fn new(store: &'a Store, expected: Option<Expected>) -> Result<Self> {
        let algorithm = expected
            .as_ref()
            .map_or(Algorithm::Sha256, |e| e.digest.algorithm());
        let dir = store.ingest_dir();
        // GC removes ingest files whose flock is free, under its exclusive lock:
        // create and lock under the shared one, or GC can take a file in between.
        let _gc = store.lock_gc(Mode::Shared)?;
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .permissions(fs::Permissions::from_mode(0o644))
            .tempfile_in(&dir)
            .map_err(StoreError::io("create temporary file in", &dir))?;
        // Mark the file as owned by a live writer; GC removes only unlocked ones.
        lock::lock_file(file.as_file(), file.path())?;
        Ok(BlobWriter {
            store,
            file,
            hasher: Hasher::new(algorithm),
            size: 0,
            expected,
        })
    }

    /// Bytes written so far (where a resumed download continues).
    pub fn written(&self) -> u64 {
        self.size
    }

    /// The digest of what was written so far (of the blob, once complete).
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// The file being written, to read back what was written so far (e.g. to upload
    /// it meanwhile). A handle to it stays valid after the commit renames it.
    pub fn file(&self) -> &fs::File {
        self.file.as_file()
    }

    /// Throw away what was written and start again (a server ignored a range request).
    pub fn reset(&mut self) -> Result<()> {
        let path = self.file.path().to_owned();
        self.file
            .as_file()
            .set_len(0)
            .and_then(|()| std::io::Seek::rewind(self.file.as_file_mut()))
            .map_err(StoreError::io("truncate", path))?;
        self.hasher = Hasher::new(self.hasher.algorithm());
        self.size = 0;
        Ok(())
    }

    /// Append `bytes`. Fails as soon as the content outgrows the expected size.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.size += bytes.len() as u64;
        if let Some(Expected {
            digest,
            size: Some(size),
        }) = &self.expected
            && self.size > *size
        {
            return Err(StoreError::SizeMismatch {
                digest: digest.clone(),
                expected: *size,
                actual: self.size,
            });
        }
        self.hasher.update(bytes);
        let path = self.file.path().to_owned();
        self.file
            .write_all(bytes)
            .map_err(StoreError::io("write", path))
    }

    /// Verify size and digest, then make the blob visible, protected by `lease`.
    pub fn commit(self, lease: &Lease) -> Result<(Digest, u64)> {
        let actual = self.hasher.finish();
        if let Some(exp) = &self.expected {
            if let Some(size) = exp.size
                && size != self.size
            {
                return Err(StoreError::SizeMismatch {
                    digest: exp.digest.clone(),
                    expected: size,
                    actual: self.size,
                });
            }
            if exp.digest != actual {
                return Err(StoreError::DigestMismatch {
                    expected: exp.digest.clone(),
                    actual,
                });
            }
        }
        let final_path = self.store.blob_path(&actual);
        let _gc = self.store.lock_gc(Mode::Shared)?;
        lease.add(&actual)?;
        if final_path.is_file() {
            // Same digest, same bytes: keep the existing file, drop ours.
            return Ok((actual, self.size));
        }
        self.file
            .as_file()
            .sync_all()
            .map_err(StoreError::io("fsync", self.file.path()))?;
        let tmp_path = self.file.path().to_owned();
        self.file.persist(&final_path).map_err(|e| StoreError::Io {
            op: "rename into place",
            path: tmp_path,
            source: e.error,
        })?;
        sync_dir(final_path.parent().expect("blob paths have a parent"))?;
        crate::crash::point("blob-renamed");
        Ok((actual, self.size))
    }
}

/// Write `bytes` to `path` atomically (see [`crate::atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(crate::atomic::write_atomic(path, bytes)?)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    crate::atomic::sync_dir(dir).map_err(StoreError::io("fsync directory", dir))
}
