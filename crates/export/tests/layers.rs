//! Layer blobs: determinism, the layer cache, empty layers, codecs and media types.

mod common;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use common::*;
use export::{
    Compression, LayerOptions, LayerTap, TapWriter, export_layer, export_layer_once, export_tar,
};
use oci::{Digest, media};
use testkit::noise;

#[test]
fn the_same_changes_twice_give_the_same_digest() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let opts = LayerOptions {
        use_cache: false,
        ..layer_opts(Compression::GZIP, true)
    };
    let a = export_layer(&store, &lease, steps("x")[0].clone(), &opts)
        .unwrap()
        .unwrap();
    let b = export_layer(&store, &lease, steps("x")[0].clone(), &opts)
        .unwrap()
        .unwrap();
    assert_eq!(a, b);
    assert!(!a.from_cache && !b.from_cache);
    let (_d2, other) = common::store();
    let lease2 = other.lease().unwrap();
    let c = export_layer(&other, &lease2, steps("x")[0].clone(), &opts)
        .unwrap()
        .unwrap();
    assert_eq!(
        a.descriptor, c.descriptor,
        "another state root gives the same blob"
    );
}

#[test]
fn a_warm_cache_returns_the_cold_digest_without_compressing() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let opts = layer_opts(Compression::ZSTD, true);
    let cold = export_layer(&store, &lease, steps("x")[0].clone(), &opts)
        .unwrap()
        .unwrap();
    assert!(!cold.from_cache);
    let warm = export_layer(&store, &lease, steps("x")[0].clone(), &opts)
        .unwrap()
        .unwrap();
    assert!(warm.from_cache, "the second export is a cache hit");
    assert_eq!(warm.descriptor, cold.descriptor);
    assert_eq!(warm.diff_id, cold.diff_id);
    // An export with the cache off agrees too.
    let uncached = LayerOptions {
        use_cache: false,
        ..opts.clone()
    };
    let off = export_layer(&store, &lease, steps("x")[0].clone(), &uncached)
        .unwrap()
        .unwrap();
    assert_eq!(off.descriptor, cold.descriptor);
    // One entry per (diff_id, compression) under the state root.
    let cache = export::LayerCache::for_store(&store);
    assert!(cache.dir().starts_with(store.root()));
    let entries: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn a_cache_entry_for_another_compression_is_not_used() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let gz = export_layer(
        &store,
        &lease,
        steps("x")[0].clone(),
        &layer_opts(Compression::GZIP, true),
    )
    .unwrap()
    .unwrap();
    let gz1 = export_layer(
        &store,
        &lease,
        steps("x")[0].clone(),
        &layer_opts(Compression::Gzip { level: 1 }, true),
    )
    .unwrap()
    .unwrap();
    assert!(!gz1.from_cache);
    assert_eq!(gz.diff_id, gz1.diff_id);
    assert_ne!(gz.descriptor.digest, gz1.descriptor.digest);
}

#[test]
fn a_cache_entry_whose_blob_is_gone_is_a_miss() {
    let (_d, store) = store();
    let opts = layer_opts(Compression::GZIP, true);
    let first = {
        let lease = store.lease().unwrap();
        export_layer(&store, &lease, steps("x")[0].clone(), &opts)
            .unwrap()
            .unwrap()
    };
    // Nothing names the blob and its lease is gone: GC removes it.
    store.gc().unwrap();
    assert!(!store.contains(&first.descriptor.digest));
    let lease = store.lease().unwrap();
    let again = export_layer(&store, &lease, steps("x")[0].clone(), &opts)
        .unwrap()
        .unwrap();
    assert!(!again.from_cache);
    assert_eq!(again.descriptor, first.descriptor);
    assert!(store.contains(&again.descriptor.digest));
}

#[test]
fn a_damaged_cache_entry_is_ignored_and_replaced() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let opts = layer_opts(Compression::GZIP, true);
    let first = export_layer(&store, &lease, steps("x")[0].clone(), &opts)
        .unwrap()
        .unwrap();
    let dir = export::LayerCache::for_store(&store).dir().to_owned();
    for e in std::fs::read_dir(&dir).unwrap() {
        std::fs::write(e.unwrap().path(), b"{not json").unwrap();
    }
    let again = export_layer(&store, &lease, steps("x")[0].clone(), &opts)
        .unwrap()
        .unwrap();
    assert!(!again.from_cache);
    assert_eq!(again.descriptor, first.descriptor);
    let warm = export_layer(&store, &lease, steps("x")[0].clone(), &opts)
        .unwrap()
        .unwrap();
    assert!(warm.from_cache, "the entry was rewritten");
}

#[test]
fn no_changes_means_no_layer() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let got = export_layer(
        &store,
        &lease,
        Vec::new(),
        &layer_opts(Compression::GZIP, true),
    )
    .unwrap();
    assert!(got.is_none());
}

fn decompressed(store: &content::Store, l: &export::LayerDesc) -> Vec<u8> {
    let blob = std::io::BufReader::new(store.open_blob(&l.descriptor.digest).unwrap());
    let mut out = Vec::new();
    archive::decompress(blob, None)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn each_codec_has_its_media_type_and_decompresses_to_the_diff_id() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let cases = [
        (
            Compression::GZIP,
            true,
            media::OCI_LAYER_GZIP,
            &[0x1f, 0x8b][..],
        ),
        (
            Compression::ZSTD,
            true,
            media::OCI_LAYER_ZSTD,
            &[0x28, 0xb5, 0x2f, 0xfd][..],
        ),
        (
            Compression::Uncompressed,
            true,
            media::OCI_LAYER_TAR,
            &b"app/"[..],
        ),
        (
            Compression::GZIP,
            false,
            media::DOCKER_LAYER_GZIP,
            &[0x1f, 0x8b][..],
        ),
        (
            Compression::ZSTD,
            false,
            media::DOCKER_LAYER_ZSTD,
            &[0x28, 0xb5][..],
        ),
        (
            Compression::Uncompressed,
            false,
            export::DOCKER_LAYER_TAR,
            &b"app/"[..],
        ),
    ];
    let mut diff_ids = Vec::new();
    for (c, oci, mt, magic) in cases {
        let l = export_layer(&store, &lease, steps("x")[0].clone(), &layer_opts(c, oci))
            .unwrap()
            .unwrap();
        assert_eq!(l.media_type(), mt, "{c:?} oci={oci}");
        let blob = store.read_document(&l.descriptor.digest).unwrap();
        assert!(
            blob.starts_with(magic),
            "{c:?}: blob starts {:x?}",
            &blob[..4]
        );
        let tar = decompressed(&store, &l);
        assert_eq!(Digest::sha256(&tar), l.diff_id);
        diff_ids.push(l.diff_id);
    }
    diff_ids.dedup();
    assert_eq!(diff_ids.len(), 1, "the codec never changes the diff_id");
}

#[test]
fn source_date_epoch_clamps_mtimes() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let l = export_layer(
        &store,
        &lease,
        steps("x")[0].clone(),
        &layer_opts(Compression::GZIP, true),
    )
    .unwrap()
    .unwrap();
    let tar = decompressed(&store, &l);
    let mut archive = tar::Archive::new(&tar[..]);
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), EPOCH as u64, "{:?}", e.path());
    }
}

/// Yields at most `n` bytes per read.
struct Trickle<'a>(&'a [u8], usize);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(self.1).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Regression: flate2's gzip encoder gave other bytes for the same tar written in
/// other pieces (tar headers of 512 bytes vs 8 KiB copies), so a change list and
/// its tar stream gave two blobs.
#[test]
fn gzip_bytes_do_not_depend_on_how_the_tar_is_chunked() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    for c in [
        Compression::GZIP,
        Compression::Gzip { level: 9 },
        Compression::ZSTD,
    ] {
        let opts = LayerOptions {
            use_cache: false,
            ..layer_opts(c, true)
        };
        let changes = steps("x")[0].clone();
        let from_changes = export_layer(&store, &lease, changes.clone(), &opts)
            .unwrap()
            .unwrap();
        let mut tar = Vec::new();
        let wopts = archive::WriteOptions {
            source_date_epoch: Some(EPOCH),
        };
        archive::write_layer(&mut tar, changes, &wopts).unwrap();
        for piece in [1, 7, 512, 8192, 100_000] {
            let from_tar = export_tar(&store, &lease, Trickle(&tar, piece), &opts).unwrap();
            assert_eq!(from_tar, from_changes, "{c:?}, {piece}-byte reads");
        }
    }
}

#[test]
fn duplicate_paths_in_a_change_list_are_refused() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let changes = vec![file("a", b"1"), file("a", b"2")];
    let e = export_layer(
        &store,
        &lease,
        changes,
        &layer_opts(Compression::GZIP, true),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            export::ExportError::Archive(archive::ArchiveError::DuplicatePath { .. })
        ),
        "{e:?}"
    );
}

/// What a [`RecordingTap`] was told.
#[derive(Debug, Default)]
struct Tapped {
    begun: usize,
    written: Vec<u64>,
    /// The commit's digest and size, and the whole file read back through the
    /// tap's own handle at that moment.
    committed: Option<(Digest, u64, Vec<u8>)>,
}

/// A tap that records every call and reads the blob back at commit.
#[derive(Debug, Default, Clone)]
struct RecordingTap(Arc<Mutex<Tapped>>);

struct RecordingWriter {
    file: std::fs::File,
    tapped: Arc<Mutex<Tapped>>,
}

impl LayerTap for RecordingTap {
    fn begin(&self, blob: &std::fs::File) -> Option<Box<dyn TapWriter>> {
        self.0.lock().unwrap().begun += 1;
        Some(Box::new(RecordingWriter {
            file: blob.try_clone().unwrap(),
            tapped: self.0.clone(),
        }))
    }
}

impl TapWriter for RecordingWriter {
    fn written(&mut self, total: u64) {
        self.tapped.lock().unwrap().written.push(total);
    }

    fn commit(self: Box<Self>, digest: &Digest, size: u64) {
        // Positioned reads: the handle shares its offset with the store's writer.
        let mut bytes = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.file.read_at(&mut buf, bytes.len() as u64).unwrap();
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        self.tapped.lock().unwrap().committed = Some((digest.clone(), size, bytes));
    }
}

impl RecordingTap {
    fn take(&self) -> Tapped {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A layer of `n` files of 64 KiB of noise (seeded by `seed`) after steps("x")[0].
fn noisy_changes(n: usize, seed: u64) -> Vec<archive::Change> {
    let mut changes = steps("x")[0].clone();
    changes.extend((0..n).map(|i| {
        file(
            &format!("app/noise-{i:03}"),
            &noise(64 * 1024, seed + i as u64),
        )
    }));
    changes
}

/// Check what `tap` saw of the tapped export `l` in `store`.
fn assert_tapped(tap: &RecordingTap, store: &content::Store, l: &export::LayerDesc, what: &str) {
    let t = tap.take();
    assert_eq!(t.begun, 1, "{what}: one blob, one begin");
    let (digest, size, bytes) = t.committed.expect("the tap is committed");
    assert_eq!(digest, l.descriptor.digest, "{what}: commit digest");
    assert_eq!(size, l.descriptor.size, "{what}: commit size");
    assert!(
        bytes == store.read_document(&l.descriptor.digest).unwrap(),
        "{what}: the tap's handle reads the store blob's exact bytes ({} read, {size} expected)",
        bytes.len()
    );
    assert!(
        t.written.len() > 1,
        "{what}: progress is told while the blob grows: {:?}",
        t.written
    );
    assert!(
        t.written.windows(2).all(|w| w[0] <= w[1]),
        "{what}: written totals never decrease: {:?}",
        t.written
    );
    assert_eq!(
        t.written.last(),
        Some(&size),
        "{what}: written ends at the size"
    );
}

#[test]
fn a_tapped_export_gives_the_tap_the_blob_and_matches_export_layer() {
    for c in [
        Compression::GZIP,
        Compression::ZSTD,
        Compression::Uncompressed,
    ] {
        let what = format!("{c:?}");
        let opts = layer_opts(c, true);
        let (_d, store) = store();
        let lease = store.lease().unwrap();
        let tap = RecordingTap::default();
        let once = export_layer_once(&store, &lease, noisy_changes(8, 1), &opts, Some(&tap))
            .unwrap()
            .expect("changes give a layer");
        assert!(!once.from_cache, "{what}: a one-pass export compresses");
        assert_tapped(&tap, &store, &once, &what);

        let (_d2, other) = common::store();
        let lease2 = other.lease().unwrap();
        let two_pass = export_layer(&other, &lease2, noisy_changes(8, 1), &opts)
            .unwrap()
            .unwrap();
        assert_eq!(once.descriptor, two_pass.descriptor, "{what}: same blob");
        assert_eq!(once.diff_id, two_pass.diff_id, "{what}: same diff_id");

        let again = export_layer(&store, &lease, noisy_changes(8, 1), &opts)
            .unwrap()
            .unwrap();
        assert!(
            again.from_cache,
            "{what}: the one-pass export recorded the layer"
        );
        assert_eq!(again.descriptor, once.descriptor);
    }
}

#[test]
fn a_tapped_export_reusing_runs_of_an_earlier_blob_gives_the_tap_every_byte() {
    for c in [Compression::GZIP, Compression::ZSTD] {
        let what = format!("{c:?}");
        let opts = layer_opts(c, true);
        let (_d, store) = store();
        let lease = store.lease().unwrap();
        // An earlier blob of the same files but one, whose runs the index keeps.
        let mut earlier = noisy_changes(16, 1);
        earlier.push(file("app/zz-last", b"before"));
        let earlier_tar = tar_of(earlier.clone());
        export_layer(&store, &lease, earlier, &opts)
            .unwrap()
            .unwrap();
        let mut changes = noisy_changes(16, 1);
        changes.push(file("app/zz-last", b"after"));
        let changes_tar = tar_of(changes.clone());
        let tap = RecordingTap::default();
        let once = export_layer_once(&store, &lease, changes.clone(), &opts, Some(&tap))
            .unwrap()
            .unwrap();
        assert_tapped(&tap, &store, &once, &what);
        let (_d2, other) = common::store();
        let lease2 = other.lease().unwrap();
        let cold = export_layer(&other, &lease2, changes, &opts)
            .unwrap()
            .unwrap();
        assert_eq!(
            once.descriptor, cold.descriptor,
            "{what}: same blob as cold"
        );
        assert!(
            reused_runs(earlier_tar, changes_tar, &opts) > 0,
            "{what}: the second layer reuses runs of the first (else this test tests nothing)"
        );
    }
}

/// The uncompressed layer tar of `changes`.
fn tar_of(changes: Vec<archive::Change>) -> Vec<u8> {
    let mut tar = Vec::new();
    let wopts = archive::WriteOptions {
        source_date_epoch: Some(EPOCH),
    };
    archive::write_layer(&mut tar, changes, &wopts).unwrap();
    tar
}

/// How many runs of layer tar `second` a fresh store reuses from `first` (the
/// statistic [`export_layer_once`] does not return).
fn reused_runs(first: Vec<u8>, second: Vec<u8>, opts: &LayerOptions) -> usize {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    export::export_tar_with(&store, &lease, &first[..], opts, None).unwrap();
    let (_, stats) = export::export_tar_with(&store, &lease, &second[..], opts, None).unwrap();
    stats.reused
}

#[test]
fn a_tapped_export_of_no_changes_is_no_layer_and_no_tap() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let tap = RecordingTap::default();
    let got = export_layer_once(
        &store,
        &lease,
        Vec::new(),
        &layer_opts(Compression::GZIP, true),
        Some(&tap),
    )
    .unwrap();
    assert!(got.is_none(), "no changes, no layer: {got:?}");
    let t = tap.take();
    assert_eq!(t.begun, 0, "the tap never begins a blob");
    assert!(t.written.is_empty() && t.committed.is_none(), "{t:?}");
}
