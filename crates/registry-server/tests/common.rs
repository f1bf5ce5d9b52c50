//! Starting manifold's registry in-process for a test.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use registry_server::{AccessLog, Auth, Config, Registry};

/// A registry on 127.0.0.1:0 and its state root.
#[derive(Debug)]
pub struct Running {
    pub addr: String,
    pub root: tempfile::TempDir,
    pub log: Arc<Mutex<Vec<u8>>>,
}

#[derive(Debug)]
struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn start(delete: bool, auth: Option<Auth>) -> Running {
    let root = tempfile::tempdir().unwrap();
    start_on(root, registry_server::Limits::default(), delete, auth).await
}

/// A registry whose state root is `root` (which may hold a mount the test made),
/// with `limits`.
pub async fn start_on(
    root: tempfile::TempDir,
    limits: registry_server::Limits,
    delete: bool,
    auth: Option<Auth>,
) -> Running {
    let log = Arc::new(Mutex::new(Vec::new()));
    let reg = Registry::open(Config {
        root: root.path().to_owned(),
        delete,
        auth,
        access_log: Some(AccessLog::new(Box::new(SharedLog(log.clone())))),
        limits,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(registry_server::serve(listener, reg));
    Running { addr, root, log }
}

impl Running {
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }
}
