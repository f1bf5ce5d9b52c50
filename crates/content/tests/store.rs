//! Content-store behaviour: verified writes, concurrency, names, leases, GC, fsck.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use content::{Expected, Store, StoreError};
use oci::{Descriptor, Digest, Platform, media};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    (dir, store)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn blob_files(store: &Store) -> Vec<String> {
    files_in(&store.layout_dir().join("blobs/sha256"))
}

/// Deterministic content for blob `i` (some overlap between writers on purpose).
fn content_of(i: usize) -> Vec<u8> {
    let mut v = format!("blob number {i}\n").into_bytes();
    v.resize(1000 + i * 997 % 300_000, (i % 251) as u8);
    v
}

#[test]
fn layout_is_created_on_open() {
    let (_d, store) = store();
    let layout = store.layout_dir();
    assert_eq!(
        std::fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let idx = store.index().unwrap();
    assert!(idx.manifests.is_empty());
    // Opening again changes nothing.
    let again = Store::open(store.root()).unwrap();
    assert!(again.names().unwrap().is_empty());
}

#[test]
fn write_then_read_back() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let desc = store.put_bytes(&lease, media::OCI_CONFIG, b"{}").unwrap();
    assert_eq!(desc.digest, Digest::sha256(b"{}"));
    assert_eq!(store.read_document(&desc.digest).unwrap(), b"{}");
    assert_eq!(store.blob_size(&desc.digest).unwrap(), 2);
    assert_eq!(files_in(&store.root().join("ingest")), Vec::<String>::new());
}

#[test]
fn sha512_content_is_verified_with_sha512() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let d = Digest::of(oci::Algorithm::Sha512, b"hello");
    let exp = Expected {
        digest: d.clone(),
        size: Some(5),
    };
    store
        .write_blob(&lease, &mut &b"hello"[..], Some(&exp))
        .unwrap();
    assert!(
        store
            .blob_path(&d)
            .starts_with(store.layout_dir().join("blobs/sha512"))
    );
    assert!(store.contains(&d));
}

#[test]
fn digest_mismatch_leaves_nothing_visible() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let claimed = Digest::sha256(b"what was promised");
    let exp = Expected {
        digest: claimed.clone(),
        size: None,
    };
    let err = store
        .write_blob(&lease, &mut &b"something else"[..], Some(&exp))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DigestMismatch { ref expected, .. } if *expected == claimed),
        "{err}"
    );
    assert!(err.to_string().contains(&claimed.to_string()));
    assert!(blob_files(&store).is_empty());
    assert!(files_in(&store.root().join("ingest")).is_empty());
}

#[test]
fn size_mismatch_is_refused_short_and_long() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let data = b"0123456789";
    for claimed in [9u64, 11] {
        let exp = Expected {
            digest: Digest::sha256(data),
            size: Some(claimed),
        };
        let err = store
            .write_blob(&lease, &mut &data[..], Some(&exp))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::SizeMismatch { expected, .. } if expected == claimed),
            "{err}"
        );
    }
    assert!(blob_files(&store).is_empty());
}

/// A reader that yields `good` bytes and then fails, like a dropped connection.
struct Broken {
    left: usize,
}

impl Read for Broken {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset",
            ));
        }
        let n = buf.len().min(self.left);
        buf[..n].fill(7);
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn write_interrupted_half_way_leaves_nothing_visible() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let full = vec![7u8; 4 << 20];
    let exp = Expected {
        digest: Digest::sha256(&full),
        size: Some(full.len() as u64),
    };
    let err = store
        .write_blob(&lease, &mut Broken { left: 2 << 20 }, Some(&exp))
        .unwrap_err();
    assert!(matches!(err, StoreError::Read { .. }), "{err}");
    assert!(!store.contains(&exp.digest));
    assert!(blob_files(&store).is_empty());
    assert!(
        files_in(&store.root().join("ingest")).is_empty(),
        "temp file removed"
    );
}

#[test]
fn eight_threads_write_overlapping_blobs() {
    let (_d, store) = store();
    let store = Arc::new(store);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let lease = store.lease().unwrap();
                // Thread t writes blobs t..t+24: each blob is written by up to 8 threads.
                for i in t..t + 24 {
                    let data = content_of(i);
                    let exp = Expected {
                        digest: Digest::sha256(&data),
                        size: Some(data.len() as u64),
                    };
                    store
                        .write_blob(&lease, &mut &data[..], Some(&exp))
                        .unwrap();
                }
                let desc = store.put_bytes(&lease, media::OCI_CONFIG, b"{}").unwrap();
                store.set_name(&format!("thread-{t}"), &desc).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for i in 0..31 {
        let data = content_of(i);
        let mut got = Vec::new();
        store
            .open_blob(&Digest::sha256(&data))
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, data, "blob {i}");
    }
    assert_eq!(blob_files(&store).len(), 32);
    assert_eq!(
        store.names().unwrap().len(),
        8,
        "every name survived concurrent index updates"
    );
    assert!(store.fsck().unwrap().is_clean());
}

const CHILD_ROOT: &str = "MANIFOLD_TEST_CHILD_ROOT";
const CHILD_MODE: &str = "MANIFOLD_TEST_CHILD_MODE";
const CHILD_OUT: &str = "MANIFOLD_TEST_CHILD_OUT";

/// The file a child reports through (libtest owns its stdout).
fn report_path(root: &Path) -> std::path::PathBuf {
    root.with_extension("child-report")
}

fn report(msg: &str) {
    let path = std::env::var_os(CHILD_OUT).unwrap();
    std::fs::write(path, msg).unwrap();
}

fn wait_for_report(root: &Path) -> String {
    let path = report_path(root);
    for _ in 0..3000 {
        if let Ok(s) = std::fs::read_to_string(&path)
            && !s.is_empty()
        {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("child never reported to {}", path.display());
}

/// Run this test binary again as a child doing `mode` on the store at `root`.
fn child(test: &str, root: &Path, mode: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ROOT, root)
        .env(CHILD_MODE, mode)
        .env(CHILD_OUT, report_path(root))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

/// Work a child process does; `None` when this process is not a child.
fn child_work() -> Option<()> {
    let root = std::env::var_os(CHILD_ROOT)?;
    let mode = std::env::var(CHILD_MODE).unwrap();
    let store = Store::open(root).unwrap();
    let lease = store.lease().unwrap();
    match mode.as_str() {
        "writer-0" | "writer-1" => {
            let offset = if mode == "writer-0" { 0 } else { 10 };
            for i in offset..offset + 30 {
                let data = content_of(i);
                let exp = Expected {
                    digest: Digest::sha256(&data),
                    size: Some(data.len() as u64),
                };
                store
                    .write_blob(&lease, &mut &data[..], Some(&exp))
                    .unwrap();
            }
            let desc = store
                .put_bytes(&lease, media::OCI_CONFIG, mode.as_bytes())
                .unwrap();
            store.set_name(&mode, &desc).unwrap();
        }
        "slow-writer" => {
            // Write 1 MiB, announce it, then stall until killed.
            struct Stall(usize);
            impl Read for Stall {
                fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                    if self.0 == 0 {
                        report("half-written");
                        std::thread::sleep(std::time::Duration::from_secs(600));
                    }
                    let n = buf.len().min(self.0);
                    buf[..n].fill(1);
                    self.0 -= n;
                    Ok(n)
                }
            }
            store.write_blob(&lease, &mut Stall(1 << 20), None).unwrap();
        }
        "leaser" => {
            let desc = store
                .put_bytes(&lease, media::OCI_CONFIG, b"leased by a dead process")
                .unwrap();
            report(&desc.digest.to_string());
            std::mem::forget(lease); // exit without dropping: as after a crash
        }
        other => panic!("unknown child mode {other}"),
    }
    Some(())
}

#[test]
fn two_processes_write_overlapping_blobs() {
    if child_work().is_some() {
        return;
    }
    let (_d, store) = store();
    let kids: Vec<_> = ["writer-0", "writer-1"]
        .iter()
        .map(|m| {
            child("two_processes_write_overlapping_blobs", store.root(), m)
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
    }
    for i in 0..40 {
        let data = content_of(i);
        assert!(store.contains(&Digest::sha256(&data)), "blob {i} missing");
    }
    assert_eq!(store.names().unwrap().len(), 2);
    let report = store.fsck().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.checked, 42);
}

#[test]
fn writer_killed_mid_write_leaves_nothing_and_gc_cleans_its_temp_file() {
    if child_work().is_some() {
        return;
    }
    let (_d, store) = store();
    let mut kid = child(
        "writer_killed_mid_write_leaves_nothing_and_gc_cleans_its_temp_file",
        store.root(),
        "slow-writer",
    )
    .spawn()
    .unwrap();
    assert_eq!(wait_for_report(store.root()), "half-written");
    // While the writer lives, GC leaves its temp file alone.
    assert_eq!(store.gc().unwrap().stale_ingests, 0);
    assert_eq!(files_in(&store.root().join("ingest")).len(), 1);
    kid.kill().unwrap();
    kid.wait().unwrap();
    assert!(
        blob_files(&store).is_empty(),
        "nothing unverified is visible"
    );
    let report = store.gc().unwrap();
    assert_eq!(report.stale_ingests, 1);
    assert!(files_in(&store.root().join("ingest")).is_empty());
}

#[test]
fn gc_keeps_named_and_leased_blobs_and_removes_the_rest() {
    if child_work().is_some() {
        return;
    }
    let (_d, store) = store();
    let named_index = {
        let lease = store.lease().unwrap();
        let idx = testkit::write_index(&store, &lease, &["linux/amd64", "linux/arm64"]);
        store.set_name("example.com/app:1", &idx).unwrap();
        idx
    };
    let live_lease = store.lease().unwrap();
    let leased_image = testkit::write_image(&store, &live_lease, &Platform::host(), "leased");
    let garbage = {
        let lease = store.lease().unwrap();
        store
            .put_bytes(&lease, "application/octet-stream", b"nobody wants me")
            .unwrap()
    };
    // A lease whose process died protects nothing.
    let out = child(
        "gc_keeps_named_and_leased_blobs_and_removes_the_rest",
        store.root(),
        "leaser",
    )
    .status()
    .unwrap();
    assert!(out.success());
    let dead_leased = Digest::parse(&wait_for_report(store.root())).unwrap();
    assert!(store.contains(&dead_leased));

    let before = blob_files(&store).len();
    // index + 2 × (manifest, config, layer) + leased image (3) + garbage + dead-leased
    assert_eq!(before, 1 + 6 + 3 + 1 + 1);
    let report = store.gc().unwrap();
    let mut removed = report.removed.clone();
    removed.sort();
    let mut want = vec![garbage.digest.clone(), dead_leased.clone()];
    want.sort();
    assert_eq!(removed, want);
    assert!(store.contains(&named_index.digest));
    assert!(store.contains(&leased_image.digest));
    assert_eq!(blob_files(&store).len(), before - 2);
    assert!(store.fsck().unwrap().is_clean());

    // Once the lease ends its blobs go too; the named image stays whole.
    drop(live_lease);
    let report = store.gc().unwrap();
    assert_eq!(report.removed.len(), 3);
    assert_eq!(blob_files(&store).len(), 7);
    let images = store.images().unwrap();
    assert_eq!(images.len(), 1);
    let platforms: Vec<_> = images[0]
        .platforms
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    // Removing the name frees everything.
    store.remove_name("example.com/app:1").unwrap();
    assert_eq!(store.gc().unwrap().removed.len(), 7);
    assert!(blob_files(&store).is_empty());
}

#[test]
fn fsck_finds_a_flipped_byte() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let desc = testkit::write_image(&store, &lease, &Platform::host(), "intact");
    store.set_name("flip", &desc).unwrap();
    assert!(store.fsck().unwrap().is_clean());
    let manifest: oci::ImageManifest =
        serde_json::from_slice(&store.read_document(&desc.digest).unwrap()).unwrap();
    let layer = &manifest.layers[0].digest;
    let path = store.blob_path(layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[600] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let report = store.fsck().unwrap();
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(&report.corrupt[0].0, layer);
    assert!(!report.is_clean());
}

#[test]
fn damaged_blobs_are_set_aside_and_written_again() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let desc = testkit::write_image(&store, &lease, &Platform::host(), "whole");
    store.set_name("aside", &desc).unwrap();
    assert_eq!(store.set_aside_corrupt_blobs().unwrap(), vec![]);
    let manifest: oci::ImageManifest =
        serde_json::from_slice(&store.read_document(&desc.digest).unwrap()).unwrap();
    let layer = manifest.layers[0].digest.clone();
    let path = store.blob_path(&layer);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    bad[600] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();

    let moved = store.set_aside_corrupt_blobs().unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].0, layer);
    assert!(moved[0].1.starts_with(store.root().join("corrupt")));
    assert_eq!(
        std::fs::read(&moved[0].1).unwrap(),
        bad,
        "kept for inspection"
    );
    assert!(!store.contains(&layer));
    // Only the damaged blob went; fsck now names it as missing, not corrupt.
    let report = store.fsck().unwrap();
    assert!(report.corrupt.is_empty());
    assert_eq!(report.missing.len(), 1);
    // Writing the good bytes again makes the image whole.
    store
        .put_bytes(&lease, oci::media::OCI_LAYER_TAR, &good)
        .unwrap();
    assert!(store.fsck().unwrap().is_clean());
}

#[test]
fn fsck_reports_missing_children_and_stray_files() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let desc = testkit::write_image(&store, &lease, &Platform::host(), "x");
    store.set_name("m", &desc).unwrap();
    let manifest: oci::ImageManifest =
        serde_json::from_slice(&store.read_document(&desc.digest).unwrap()).unwrap();
    std::fs::remove_file(store.blob_path(&manifest.config.digest)).unwrap();
    std::fs::write(store.layout_dir().join("blobs/sha256/not-a-digest"), b"?").unwrap();
    let report = store.fsck().unwrap();
    assert_eq!(
        report.missing,
        vec![(desc.digest.to_string(), manifest.config.digest.clone())]
    );
    assert_eq!(report.stray.len(), 1);
}

#[test]
fn names_point_at_present_blobs_only() {
    let (_d, store) = store();
    let absent = Descriptor::for_bytes(media::OCI_MANIFEST, b"never written");
    assert!(matches!(
        store.set_name("x", &absent),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.resolve("x"),
        Err(StoreError::NameNotFound(_))
    ));
    assert!(matches!(
        store.remove_name("x"),
        Err(StoreError::NameNotFound(_))
    ));
    let lease = store.lease().unwrap();
    let d = store.put_bytes(&lease, media::OCI_CONFIG, b"{}").unwrap();
    assert!(matches!(
        store.set_name("a b", &d),
        Err(StoreError::InvalidName(_))
    ));
    assert!(matches!(
        store.set_name("", &d),
        Err(StoreError::InvalidName(_))
    ));
    store.set_name("x", &d).unwrap();
    store.set_name("x", &d).unwrap();
    assert_eq!(store.names().unwrap().len(), 1, "re-tagging replaces");
    assert_eq!(store.resolve("x").unwrap().digest, d.digest);
}

#[test]
fn a_corrupt_index_json_is_reported_with_its_path() {
    let (_d, store) = store();
    std::fs::write(store.layout_dir().join("index.json"), b"{not json").unwrap();
    let err = store.names().unwrap_err();
    assert!(matches!(err, StoreError::CorruptIndex { .. }));
    assert!(err.to_string().contains("index.json"), "{err}");
}

#[test]
fn gc_with_roots_keeps_the_extra_roots_and_what_they_reach() {
    let (_d, s) = store();
    let lease = s.lease().unwrap();
    let idx = testkit::write_index(&s, &lease, &["linux/amd64"]);
    let big = vec![7u8; (content::DOCUMENT_CAP + 1) as usize];
    let big = s.put_bytes(&lease, "", &big).unwrap();
    let lone = s
        .put_bytes(&lease, "application/octet-stream", b"unreferenced")
        .unwrap();
    drop(lease);
    // A root of unknown type too big to be a document is kept, not read.
    let report = s
        .gc_with_roots(|| {
            Ok(vec![
                idx.clone(),
                oci::Descriptor::new("", big.digest.clone(), 0),
            ])
        })
        .unwrap();
    assert_eq!(report.removed, vec![lone.digest.clone()]);
    assert!(s.contains(&big.digest));
    assert_eq!(
        blob_files(&s).len(),
        5,
        "index, manifest, config, layer, big blob"
    );
}

#[test]
fn adopt_file_renames_a_verified_file_and_leaves_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let upload = dir.path().join("upload");
    std::fs::write(&upload, b"adopted bytes").unwrap();
    let digest = Digest::sha256(b"adopted bytes");

    // A wrong digest: refused, nothing stored, the file kept.
    let wrong = Expected {
        digest: Digest::sha256(b"other"),
        size: None,
    };
    let err = store.adopt_file(&lease, &upload, &wrong).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(upload.exists());
    assert!(!store.contains(&digest));

    let ok = Expected {
        digest: digest.clone(),
        size: Some(13),
    };
    let (d, size) = store.adopt_file(&lease, &upload, &ok).unwrap();
    assert_eq!((d, size), (digest.clone(), 13));
    assert!(!upload.exists(), "the file was moved, not copied");
    assert_eq!(
        std::fs::read(store.blob_path(&digest)).unwrap(),
        b"adopted bytes"
    );
    assert!(store.fsck().unwrap().is_clean());
}
