//! Layer blobs: determinism, the layer cache, empty layers, codecs and media types.

mod common;

use std::io::Read;

use common::*;
use export::{Compression, LayerOptions, export_layer, export_tar};
use oci::{Digest, media};

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
