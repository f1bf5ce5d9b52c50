//! Helpers shared by the executor test binaries (root and runc required).

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use worker::{
    CancelToken, ExecError, ExecIo, ExecSpec, Executor, ExitStatus, MountSpec, Runc, RuncConfig,
    Stream,
};

pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it runs containers with runc)"
    );
}

/// A runc executor with its bundles in a private directory.
pub struct Fixture {
    pub runc: Runc,
    pub bundles: tempfile::TempDir,
}

pub fn fixture() -> Fixture {
    require_root();
    let runtime = testkit::require_tool("runc");
    let bundles = tempfile::tempdir().expect("tempdir");
    let mut config = RuncConfig::new(bundles.path());
    config.runtime = runtime;
    Fixture {
        runc: Runc::new(config),
        bundles,
    }
}

/// Output of one run, with when each chunk arrived.
#[derive(Debug, Default)]
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub chunks: Vec<(Stream, Instant, Vec<u8>)>,
}

impl Captured {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

pub fn capture() -> (ExecIo, Arc<Mutex<Captured>>) {
    let out = Arc::new(Mutex::new(Captured::default()));
    let sink = out.clone();
    let io = ExecIo::new(move |stream, data| {
        let mut c = sink.lock().unwrap();
        match stream {
            Stream::Stdout => c.stdout.extend_from_slice(data),
            Stream::Stderr => c.stderr.extend_from_slice(data),
        }
        c.chunks.push((stream, Instant::now(), data.to_vec()));
    });
    (io, out)
}

impl Fixture {
    pub fn run_with(
        &self,
        spec: &ExecSpec,
        rootfs: &Path,
        mounts: &[MountSpec],
        cancel: &CancelToken,
    ) -> (Result<ExitStatus, ExecError>, Captured) {
        let (io, out) = capture();
        let res = self.runc.run(spec, rootfs, mounts, io, cancel);
        let captured = std::mem::take(&mut *out.lock().unwrap());
        (res, captured)
    }

    /// Run `sh -c script` as `spec` says; panics when the step cannot start.
    pub fn sh(&self, spec: &ExecSpec, rootfs: &Path, script: &str) -> (ExitStatus, Captured) {
        let mut spec = spec.clone();
        spec.args = vec!["/bin/sh".into(), "-c".into(), script.into()];
        let (res, out) = self.run_with(&spec, rootfs, &[], &CancelToken::new());
        match res {
            Ok(status) => (status, out),
            Err(e) => panic!(
                "step `{script}` did not run: {e} (stderr: {})",
                out.stderr()
            ),
        }
    }

    /// The bundle directory holds nothing once a step is over.
    pub fn assert_no_bundles(&self) {
        let left: Vec<_> = std::fs::read_dir(self.bundles.path()).unwrap().collect();
        assert!(left.is_empty(), "bundles left behind: {left:?}");
    }
}

/// Containers runc still knows by this id.
pub fn runc_has(id: &str) -> bool {
    let out = std::process::Command::new("runc")
        .args(["list", "-q"])
        .output()
        .expect("runc list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == id)
}

pub fn mountinfo_mentions(needle: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(needle)
}

pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
