//! Persistent cache records: one checksummed file per key.
//!
//! ```text
//! <root>/records/<key hex>      a CacheRecord
//! <root>/history/<vertex hex>   a History: the keys of a vertex's last build
//! <root>/tmp/                   files being written
//! <root>/locks/<key hex>        run locks: one process runs a key at a time
//! ```
//!
//! Each file is `manifold.cache.v1 sha256:<hex>\n` followed by a JSON
//! payload whose sha256 the first line gives. A file is written under
//! `tmp/`, fsynced, renamed into place and its directory fsynced, so readers
//! in any process see a whole old file or a whole new one, and two
//! processes writing the same key both succeed (the last rename wins; both
//! wrote an equivalent record). No lock is needed. A file that fails its
//! checksum or does not parse (a crash before the data reached the disk) is
//! renamed to `<name>.corrupt-<unix seconds>` and treated as absent.
//!
//! A record's last use is its file's modification time, set on each hit,
//! so a hit never rewrites the record.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oci::Digest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

const MAGIC: &str = "manifold.cache.v1";
const RECORDS: &str = "records";
const HISTORY: &str = "history";
const TMP: &str = "tmp";
const LOCKS: &str = "locks";
/// Temp files older than this belong to a writer that died.
const STALE_TMP: Duration = Duration::from_secs(24 * 60 * 60);

/// A cached result: the runner's description of it, and bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub key: Digest,
    /// What [`crate::OpRunner::save`] returned; opaque to the solver.
    pub value: serde_json::Value,
    /// Bytes the result holds, for pruning.
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The vertex description when it was recorded, for listings.
    #[serde(default)]
    pub description: String,
    /// The file's modification time: set on every cache hit.
    #[serde(skip, default = "epoch")]
    pub last_used: SystemTime,
}

fn epoch() -> SystemTime {
    UNIX_EPOCH
}

/// The keys a vertex had in its last build: what a cache miss is explained
/// against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub vertex: Digest,
    pub key: Digest,
    /// The result keys of its inputs, in order.
    pub inputs: Vec<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Digest>,
}

/// What reading a file found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<T> {
    Found(T),
    Missing,
    /// The file was damaged; it was moved to `set_aside`.
    Corrupt {
        set_aside: PathBuf,
    },
}

impl<T> Lookup<T> {
    pub fn found(self) -> Option<T> {
        match self {
            Lookup::Found(t) => Some(t),
            _ => None,
        }
    }
}

/// The cache directory. Cheap to clone; safe to share between threads and
/// processes.
#[derive(Debug, Clone)]
pub struct CacheStore {
    root: Arc<PathBuf>,
}

impl CacheStore {
    /// Open (creating if needed) the cache at `root`, and remove temp files
    /// of writers that died long ago.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in [RECORDS, HISTORY, TMP, LOCKS] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(StoreError::io("create", &path))?;
        }
        let store = CacheStore {
            root: Arc::new(root),
        };
        store.clean_tmp();
        Ok(store)
    }

    /// Hold the key's run lock, shared by every process on this cache: the holder
    /// runs the op and records it; the others wait, then find the record. Released
    /// on drop (and by the kernel if the holder dies).
    pub fn lock_key(&self, key: &Digest) -> Result<fs::File, StoreError> {
        let dir = self.root.join(LOCKS);
        let path = dir.join(key.hex());
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                op: "open",
                path: path.clone(),
                source,
            })?;
        file.lock().map_err(|source| StoreError::Io {
            op: "lock",
            path,
            source,
        })?;
        Ok(file)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding the record for `key`.
    pub fn record_path(&self, key: &Digest) -> PathBuf {
        self.root.join(RECORDS).join(key.hex())
    }

    fn history_path(&self, vertex: &Digest) -> PathBuf {
        self.root.join(HISTORY).join(vertex.hex())
    }

    /// The record for `key`.
    pub fn get(&self, key: &Digest) -> Result<Lookup<CacheRecord>, StoreError> {
        let path = self.record_path(key);
        let found = read_checked::<CacheRecord>(&path, |r| &r.key == key)?;
        Ok(match found {
            Lookup::Found((mut record, modified)) => {
                record.last_used = modified;
                Lookup::Found(record)
            }
            Lookup::Missing => Lookup::Missing,
            Lookup::Corrupt { set_aside } => Lookup::Corrupt { set_aside },
        })
    }

    /// Write `record`, durably, replacing any record for its key.
    pub fn put(&self, record: &CacheRecord) -> Result<(), StoreError> {
        content::crash::point("cache-record");
        let payload = serde_json::to_vec(record).map_err(|source| StoreError::Encode {
            what: record.key.to_string(),
            source,
        })?;
        self.write_atomic(&self.record_path(&record.key), &payload)
    }

    /// Mark the record for `key` as used now. A record removed meanwhile
    /// is no error.
    pub fn touch(&self, key: &Digest) -> Result<(), StoreError> {
        let path = self.record_path(key);
        let file = match File::options().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("open", &path)(e)),
        };
        file.set_modified(SystemTime::now())
            .map_err(StoreError::io("set the modification time of", &path))
    }

    /// Remove the record for `key`; whether there was one.
    pub fn remove(&self, key: &Digest) -> Result<bool, StoreError> {
        let path = self.record_path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("remove", &path)(e)),
        }
    }

    /// Every readable record (damaged ones are set aside on the way), for
    /// listing and pruning.
    pub fn records(&self) -> Result<Vec<CacheRecord>, StoreError> {
        let dir = self.root.join(RECORDS);
        let entries = fs::read_dir(&dir).map_err(StoreError::io("read", &dir))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(StoreError::io("read", &dir))?;
            let name = entry.file_name();
            let Some(key) = name
                .to_str()
                .and_then(|n| Digest::parse(&format!("sha256:{n}")).ok())
            else {
                continue; // a set-aside file, or something not ours
            };
            if let Lookup::Found(record) = self.get(&key)? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// The last recorded build of `vertex`.
    pub fn history(&self, vertex: &Digest) -> Result<Lookup<History>, StoreError> {
        let path = self.history_path(vertex);
        Ok(
            match read_checked::<History>(&path, |h| &h.vertex == vertex)? {
                Lookup::Found((history, _)) => Lookup::Found(history),
                Lookup::Missing => Lookup::Missing,
                Lookup::Corrupt { set_aside } => Lookup::Corrupt { set_aside },
            },
        )
    }

    pub fn set_history(&self, history: &History) -> Result<(), StoreError> {
        let payload = serde_json::to_vec(history).map_err(|source| StoreError::Encode {
            what: history.vertex.to_string(),
            source,
        })?;
        // Histories only explain misses, and a torn one fails its checksum and
        // is set aside: no fsync (it is written on every changed step).
        self.write_file(&self.history_path(&history.vertex), &payload, false)
    }

    fn write_atomic(&self, dest: &Path, payload: &[u8]) -> Result<(), StoreError> {
        self.write_file(dest, payload, true)
    }

    fn write_file(&self, dest: &Path, payload: &[u8], durable: bool) -> Result<(), StoreError> {
        let tmp_dir = self.root.join(TMP);
        let header = format!("{MAGIC} {}\n", Digest::sha256(payload));
        let write = content::atomic::AtomicWrite::default().tmp_in(&tmp_dir);
        let write = if durable { write } else { write.not_durable() };
        write
            .write(dest, &[header.as_bytes(), payload])
            .map_err(|e| StoreError::Io {
                op: e.op,
                path: e.path,
                source: e.source,
            })
    }

    /// Best effort: a temp file that cannot be removed now will be next time.
    fn clean_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.root.join(TMP)) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > STALE_TMP);
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// The payload of a cache file, if its checksum holds.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..newline]).ok()?;
    let (magic, digest) = header.split_once(' ')?;
    let payload = &bytes[newline + 1..];
    if magic != MAGIC || Digest::parse(digest).ok()? != Digest::sha256(payload) {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// Read, verify and parse the file at `path`, with its modification time.
/// `belongs` checks the payload names what the file name says.
fn read_checked<T: DeserializeOwned>(
    path: &Path,
    belongs: impl Fn(&T) -> bool,
) -> Result<Lookup<(T, SystemTime)>, StoreError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lookup::Missing),
        Err(e) => return Err(StoreError::io("open", path)(e)),
    };
    let mut bytes = Vec::new();
    let modified = file
        .read_to_end(&mut bytes)
        .and_then(|_| file.metadata())
        .and_then(|m| m.modified())
        .map_err(StoreError::io("read", path))?;
    match decode::<T>(&bytes) {
        Some(value) if belongs(&value) => Ok(Lookup::Found((value, modified))),
        _ => set_aside(path),
    }
}

/// Move a damaged file out of the way.
fn set_aside<T>(path: &Path) -> Result<Lookup<T>, StoreError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".corrupt-{secs}"));
    let aside = path.with_file_name(name);
    match fs::rename(path, &aside) {
        Ok(()) => Ok(Lookup::Corrupt { set_aside: aside }),
        // Another process set it aside first.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Lookup::Missing),
        Err(e) => Err(StoreError::io("set aside", path)(e)),
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &Digest) -> CacheRecord {
        CacheRecord {
            key: key.clone(),
            value: serde_json::json!({"snapshot": "s1"}),
            size: 42,
            created: 1_700_000_000,
            description: "RUN make".to_owned(),
            last_used: UNIX_EPOCH,
        }
    }

    fn store() -> (tempfile::TempDir, CacheStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = CacheStore::open(dir.path().join("cache")).unwrap();
        (dir, store)
    }

    #[test]
    fn put_then_get_round_trips_and_touch_moves_last_used() {
        let (_d, store) = store();
        let key = Digest::sha256(b"k");
        assert_eq!(store.get(&key).unwrap(), Lookup::Missing);
        store.put(&record(&key)).unwrap();
        let got = store.get(&key).unwrap().found().unwrap();
        assert_eq!(got.value, record(&key).value);
        assert_eq!((got.size, got.created), (42, 1_700_000_000));
        let file = File::options()
            .write(true)
            .open(store.record_path(&key))
            .unwrap();
        file.set_modified(UNIX_EPOCH + Duration::from_secs(1000))
            .unwrap();
        store.touch(&key).unwrap();
        let touched = store.get(&key).unwrap().found().unwrap();
        assert!(touched.last_used > UNIX_EPOCH + Duration::from_secs(1000));
        assert_eq!(store.records().unwrap().len(), 1);
        assert!(store.remove(&key).unwrap());
        assert!(!store.remove(&key).unwrap());
        assert!(store.records().unwrap().is_empty());
    }

    fn corrupt_case(mangle: impl Fn(&mut Vec<u8>)) {
        let (_d, store) = store();
        let key = Digest::sha256(b"k");
        store.put(&record(&key)).unwrap();
        let path = store.record_path(&key);
        let mut bytes = fs::read(&path).unwrap();
        mangle(&mut bytes);
        fs::write(&path, &bytes).unwrap();
        let Lookup::Corrupt { set_aside } = store.get(&key).unwrap() else {
            panic!("damage not detected");
        };
        assert!(!path.exists(), "the damaged file is moved away");
        assert_eq!(fs::read(&set_aside).unwrap(), bytes, "and kept as it was");
        let name = set_aside.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with(&format!("{}.corrupt-", key.hex())),
            "{name}"
        );
        assert_eq!(store.get(&key).unwrap(), Lookup::Missing);
        assert!(
            store.records().unwrap().is_empty(),
            "set-aside files are not records"
        );
        store.put(&record(&key)).unwrap();
        assert!(store.get(&key).unwrap().found().is_some(), "rebuilt");
    }

    #[test]
    fn flipped_payload_byte_is_set_aside() {
        corrupt_case(|b| {
            let last = b.len() - 3;
            b[last] ^= 0x20;
        });
    }

    #[test]
    fn truncated_file_is_set_aside() {
        corrupt_case(|b| b.truncate(b.len() / 2));
    }

    #[test]
    fn empty_file_is_set_aside() {
        corrupt_case(Vec::clear);
    }

    #[test]
    fn record_under_the_wrong_name_is_set_aside() {
        corrupt_case(|b| {
            let (_d, other) = store();
            let key = Digest::sha256(b"other");
            other.put(&record(&key)).unwrap();
            *b = fs::read(other.record_path(&key)).unwrap();
        });
    }

    #[test]
    fn history_round_trips() {
        let (_d, store) = store();
        let h = History {
            vertex: Digest::sha256(b"v"),
            key: Digest::sha256(b"k"),
            inputs: vec![Digest::sha256(b"i")],
            content: None,
        };
        assert_eq!(store.history(&h.vertex).unwrap(), Lookup::Missing);
        store.set_history(&h).unwrap();
        assert_eq!(store.history(&h.vertex).unwrap(), Lookup::Found(h));
    }
}
