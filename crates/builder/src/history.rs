//! Past builds on a state root, as `buildx history` keeps them: each build's request
//! (secrets as digests), outcome, duration, cache hits, outputs and its plain log,
//! under `<root>/history/<ref>.json` and `<ref>.log`, as many and as long as a
//! [`Retention`] says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How many builds a root remembers by default.
pub const KEEP: usize = 50;

/// How long a root remembers a build by default (BuildKit's two days).
pub const MAX_AGE: Duration = Duration::from_secs(48 * 3600);

/// Which builds are kept: the newest `max_entries`, none older than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_entries: usize,
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_entries: KEEP,
            max_age: MAX_AGE,
        }
    }
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Completed,
    Failed,
    Canceled,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Completed => "Completed",
            Status::Failed => "Error",
            Status::Canceled => "Canceled",
        }
    }
}

/// One build, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The build's reference: 26 lower-case letters and digits, unique per root.
    pub reference: String,
    /// What the build is called in listings: the context directory's name, with
    /// `--target` when given.
    pub name: String,
    /// Milliseconds since the Unix epoch when the build started (builds a second
    /// apart still list in order).
    pub started_ms: u64,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    pub status: Status,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Steps that ran, and steps taken from the cache.
    pub steps: u64,
    pub cached: u64,
    /// The image digest, when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// What was pushed, as `NAME@DIGEST`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pushed: Vec<String>,
    /// The request ([`crate::BuildRequest::audit_json`]: secrets as digests).
    pub request: serde_json::Value,
}

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no build {reference:?} in the history")]
    NotFound { reference: String },
    #[error("{reference:?} names {count} builds")]
    Ambiguous { reference: String, count: usize },
}

impl HistoryError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            HistoryError::NotFound { .. } => Some("`manifold history ls` lists the builds"),
            HistoryError::Ambiguous { .. } => Some("give more characters of the reference"),
            HistoryError::Io { .. } => None,
        }
    }
}

/// The history of the state root `root`.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
}

impl History {
    pub fn for_root(root: &Path) -> History {
        History {
            dir: root.join("history"),
        }
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HistoryError {
        let path = path.to_owned();
        move |source| HistoryError::Io { op, path, source }
    }

    /// A new reference: the time and process make it unique on one root.
    pub fn new_reference() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!("{nanos} {}", std::process::id());
        let digest = oci::Digest::sha256(seed.as_bytes());
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        digest
            .hex()
            .as_bytes()
            .chunks(2)
            .take(26)
            .map(|c| {
                let byte =
                    u8::from_str_radix(std::str::from_utf8(c).unwrap_or("0"), 16).unwrap_or(0);
                ALPHABET[usize::from(byte) % ALPHABET.len()] as char
            })
            .collect()
    }

    /// Record a build and its log, then forget what `keep` no longer keeps.
    pub fn record(&self, record: &Record, log: &str, keep: Retention) -> Result<(), HistoryError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io("create", &self.dir))?;
        let log_path = self.dir.join(format!("{}.log", record.reference));
        content::atomic::write_atomic(&log_path, log.as_bytes()).map_err(|e| HistoryError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        })?;
        let path = self.dir.join(format!("{}.json", record.reference));
        let bytes = serde_json::to_vec_pretty(record).expect("invariant: a record serialises");
        content::atomic::write_atomic(&path, &bytes).map_err(|e| HistoryError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let oldest = now.saturating_sub(keep.max_age.as_secs());
        for (i, old) in self.list()?.iter().enumerate() {
            // The build just recorded always stays.
            let expired = old.started_ms / 1000 < oldest && old.reference != record.reference;
            if i >= keep.max_entries.max(1) || expired {
                self.remove(&old.reference)?;
            }
        }
        Ok(())
    }

    /// Every recorded build, newest first (unreadable files are skipped).
    pub fn list(&self) -> Result<Vec<Record>, HistoryError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io("read", &self.dir)(e)),
        };
        let mut out: Vec<Record> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a, b| (b.started_ms, &b.reference).cmp(&(a.started_ms, &a.reference)));
        Ok(out)
    }

    /// The build `reference` names: a reference or a unique prefix of one, or
    /// `^N`, the Nth build before the newest (`^0` is the newest).
    pub fn find(&self, reference: &str) -> Result<Record, HistoryError> {
        let all = self.list()?;
        let not_found = || HistoryError::NotFound {
            reference: reference.to_owned(),
        };
        if let Some(n) = reference.strip_prefix('^') {
            let n: usize = n.parse().map_err(|_| not_found())?;
            return all.into_iter().nth(n).ok_or_else(not_found);
        }
        let matching: Vec<Record> = all
            .into_iter()
            .filter(|r| !reference.is_empty() && r.reference.starts_with(reference))
            .collect();
        match matching.len() {
            0 => Err(not_found()),
            1 => Ok(matching.into_iter().next().expect("one")),
            count => Err(HistoryError::Ambiguous {
                reference: reference.to_owned(),
                count,
            }),
        }
    }

    /// The log of build `reference` (as found by [`History::find`]).
    pub fn log(&self, record: &Record) -> Result<String, HistoryError> {
        let path = self.dir.join(format!("{}.log", record.reference));
        std::fs::read_to_string(&path).map_err(Self::io("read", &path))
    }

    /// Forget build `reference` (an exact reference).
    pub fn remove(&self, reference: &str) -> Result<(), HistoryError> {
        for ext in ["json", "log"] {
            let path = self.dir.join(format!("{reference}.{ext}"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Self::io("remove", &path)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reference: &str, started: u64) -> Record {
        let started_ms = started * 1000;
        Record {
            reference: reference.to_owned(),
            name: "app".into(),
            started_ms,
            duration_ms: 10,
            status: Status::Completed,
            error: None,
            steps: 2,
            cached: 1,
            image: Some("sha256:00".into()),
            pushed: Vec::new(),
            request: serde_json::json!({}),
        }
    }

    #[test]
    fn records_are_found_by_prefix_and_offset_and_the_oldest_go() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::for_root(dir.path());
        assert!(h.list().unwrap().is_empty());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let keep = Retention::default();
        h.record(&record("abc111", now - 10), "one\n", keep)
            .unwrap();
        h.record(&record("abd222", now - 5), "two\n", keep).unwrap();
        assert_eq!(h.find("^0").unwrap().reference, "abd222");
        assert_eq!(h.find("^1").unwrap().reference, "abc111");
        assert_eq!(h.find("abc").unwrap().reference, "abc111");
        assert!(matches!(
            h.find("ab"),
            Err(HistoryError::Ambiguous { count: 2, .. })
        ));
        assert!(matches!(h.find("zz"), Err(HistoryError::NotFound { .. })));
        assert!(matches!(h.find("^9"), Err(HistoryError::NotFound { .. })));
        assert_eq!(h.log(&h.find("abc").unwrap()).unwrap(), "one\n");
        h.remove("abc111").unwrap();
        assert_eq!(h.list().unwrap().len(), 1);
        h.remove("abd222").unwrap();
        for i in 0..(KEEP as u64 + 3) {
            h.record(&record(&format!("r{i:03}"), now - 100 + i), "", keep)
                .unwrap();
        }
        let all = h.list().unwrap();
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].reference, format!("r{:03}", KEEP + 2));
        // Too old: gone at the next record, whatever the count.
        let short = Retention {
            max_entries: 10,
            max_age: Duration::from_secs(60),
        };
        h.record(&record("fresh", now), "", short).unwrap();
        let left: Vec<String> = h.list().unwrap().into_iter().map(|r| r.reference).collect();
        // r000-r039 are over a minute old; of the rest, the newest ten stay.
        assert_eq!(left.len(), 10, "{left:?}");
        assert_eq!(left[0], "fresh");
        assert!(left[1..].iter().all(|r| r.as_str() >= "r044"), "{left:?}");
    }

    #[test]
    fn references_are_26_letters_and_digits() {
        let a = History::new_reference();
        assert_eq!(a.len(), 26);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(a, History::new_reference());
    }
}
