//! Upload sessions: `<root>/registry/uploads/<id>/{repo,data}`.
//!
//! A session is only files, so it survives a server restart and its status (`Range`)
//! is the data file's length. Content reaches the store only at the final PUT, through
//! the store's verified write under a lease. Sessions are outside the store, so store
//! GC never touches them; `gc` purges sessions idle for longer than a grace period.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::error::ApiError;
use crate::route::check_upload_id;

#[derive(Debug)]
pub struct Uploads {
    dir: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn new_id() -> io::Result<String> {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Uploads {
    pub fn open(registry_dir: &Path) -> io::Result<Uploads> {
        let dir = registry_dir.join("uploads");
        fs::create_dir_all(&dir)?;
        Ok(Uploads {
            dir,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// How many sessions are open.
    pub fn count(&self) -> io::Result<usize> {
        Ok(fs::read_dir(&self.dir)?.count())
    }

    /// How many sessions `client` (an address) holds.
    pub fn count_of(&self, client: &str) -> io::Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(&self.dir)? {
            if fs::read_to_string(e?.path().join("client")).is_ok_and(|c| c == client) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Start a session for repository `name`, for `client` (an address) when known;
    /// returns its id.
    pub fn create(&self, name: &str, client: Option<&str>) -> io::Result<String> {
        let id = new_id()?;
        let dir = self.dir.join(&id);
        fs::create_dir(&dir)?;
        fs::write(dir.join("data"), b"")?;
        fs::write(dir.join("repo"), name)?;
        if let Some(c) = client {
            fs::write(dir.join("client"), c)?;
        }
        Ok(id)
    }

    /// The data file of session `id`, which must belong to `name`.
    pub fn data(&self, name: &str, id: &str) -> Result<PathBuf, ApiError> {
        check_upload_id(id)?;
        let dir = self.dir.join(id);
        match fs::read_to_string(dir.join("repo")) {
            Ok(repo) if repo == name => Ok(dir.join("data")),
            Ok(_) => Err(ApiError::upload_unknown(id)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ApiError::upload_unknown(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Serialise requests on one session.
    pub async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, m| Arc::strong_count(m) > 1);
            locks.entry(id.to_owned()).or_default().clone()
        };
        m.lock_owned().await
    }

    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.dir.join(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Remove sessions untouched for longer than `idle`; returns how many.
    pub fn purge(&self, idle: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut n = 0;
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let touched = fs::metadata(e.path().join("data"))
                .or_else(|_| e.metadata())
                .and_then(|m| m.modified())
                .ok();
            let age = touched
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            // A session a server is writing right now may refuse to go (a file appears
            // while the directory is removed); the next GC takes it.
            if age >= idle && fs::remove_dir_all(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}
