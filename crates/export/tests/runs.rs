//! Large layers: compressed in runs on several threads, the same bytes on any thread
//! count, and an edit in one file recompresses only the runs around it.

mod common;

use std::io::Read;

use common::*;
use export::{Compression, LayerOptions, export_tar_with};
use oci::Digest;
use testkit::noise;

/// A tar of `files` files of 64 KiB, random and text alternately; file `edit` (if
/// any) has one byte changed.
fn big_tar(files: usize, edit: Option<usize>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..files {
        let mut data = if i % 2 == 0 {
            noise(64 * 1024, i as u64 + 1)
        } else {
            format!("line {i} of some text that compresses well\n")
                .repeat(1600)
                .into_bytes()[..64 * 1024]
                .to_vec()
        };
        if edit == Some(i) {
            data[1000] ^= 0xff;
        }
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("srv/file-{i:04}")).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(EPOCH as u64);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn opts(c: Compression) -> LayerOptions {
    LayerOptions {
        use_cache: false,
        ..layer_opts(c, true)
    }
}

fn blob(store: &content::Store, d: &Digest) -> Vec<u8> {
    store.read_document(d).unwrap()
}

#[test]
fn the_blob_does_not_depend_on_the_thread_count() {
    let tar = big_tar(200, None);
    for c in [Compression::GZIP, Compression::ZSTD] {
        let mut seen = Vec::new();
        for threads in [1, 2, 3] {
            let (_d, store) = store();
            let lease = store.lease().unwrap();
            let (l, stats) =
                export_tar_with(&store, &lease, &tar[..], &opts(c), Some(threads)).unwrap();
            assert!(stats.runs > 4, "{stats:?}");
            assert_eq!(stats.reused, 0, "a cold store has nothing to reuse");
            assert_eq!(l.diff_id, Digest::sha256(&tar));
            seen.push(l.descriptor);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{c:?}: {seen:?}");
    }
}

#[test]
fn an_edit_in_one_file_recompresses_only_its_runs_and_equals_a_cold_export() {
    for c in [Compression::GZIP, Compression::ZSTD] {
        let (_d, store) = store();
        let lease = store.lease().unwrap();
        let first = big_tar(200, None);
        let (_, cold_stats) =
            export_tar_with(&store, &lease, &first[..], &opts(c), Some(2)).unwrap();
        let edited = big_tar(200, Some(100));
        let (warm, stats) =
            export_tar_with(&store, &lease, &edited[..], &opts(c), Some(2)).unwrap();
        assert_eq!(stats.runs, cold_stats.runs);
        assert!(
            stats.runs - stats.reused <= 3,
            "{c:?}: {} of {} runs compressed again",
            stats.runs - stats.reused,
            stats.runs
        );
        // A cold export of the edited tar elsewhere gives the same blob.
        let (_d2, other) = common::store();
        let lease2 = other.lease().unwrap();
        let (cold, _) = export_tar_with(&other, &lease2, &edited[..], &opts(c), Some(1)).unwrap();
        assert_eq!(warm.descriptor, cold.descriptor, "{c:?}: warm vs cold");
        // And it decompresses to the edited tar.
        let bytes = blob(&store, &warm.descriptor.digest);
        let mut out = Vec::new();
        archive::decompress(&bytes[..], None)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == edited);
    }
}

#[test]
fn a_run_index_whose_blob_is_gone_is_a_miss_and_is_removed() {
    let (_d, store) = store();
    let tar = big_tar(120, None);
    let first = {
        let lease = store.lease().unwrap();
        export_tar_with(&store, &lease, &tar[..], &opts(Compression::GZIP), Some(2))
            .unwrap()
            .0
    };
    let dir = export::runs_dir(&store);
    let count = || {
        walk(&dir)
            .into_iter()
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .count()
    };
    assert_eq!(count(), 1, "one index file for the blob");
    store.gc().unwrap();
    assert!(!store.contains(&first.descriptor.digest));
    let lease = store.lease().unwrap();
    let (again, stats) =
        export_tar_with(&store, &lease, &tar[..], &opts(Compression::GZIP), Some(2)).unwrap();
    assert_eq!(stats.reused, 0);
    assert_eq!(again.descriptor, first.descriptor);
    assert_eq!(count(), 1, "the stale index was replaced by the new blob's");
}

#[test]
fn a_damaged_run_index_is_ignored() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let tar = big_tar(120, None);
    let o = opts(Compression::ZSTD);
    let (first, _) = export_tar_with(&store, &lease, &tar[..], &o, Some(2)).unwrap();
    for p in walk(&export::runs_dir(&store)) {
        let text = std::fs::read_to_string(&p).unwrap();
        // Shift every offset: reads would start mid-frame.
        let damaged: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    return format!("{l}\n");
                }
                let f: Vec<&str> = l.split(' ').collect();
                format!("{} {} 1{} {}\n", f[0], f[1], f[2], f[3])
            })
            .collect();
        std::fs::write(&p, damaged).unwrap();
    }
    let (again, stats) = export_tar_with(&store, &lease, &tar[..], &o, Some(2)).unwrap();
    assert_eq!(stats.reused, 0, "{stats:?}");
    assert_eq!(again.descriptor, first.descriptor);
}

#[test]
fn small_layers_are_one_member_and_keep_no_run_index() {
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let tar = big_tar(2, None);
    let (_, stats) =
        export_tar_with(&store, &lease, &tar[..], &opts(Compression::GZIP), None).unwrap();
    assert_eq!(stats.runs, 1);
    assert!(walk(&export::runs_dir(&store)).is_empty());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The blobs of [`big_tar`]`(200)`: pins the run format (gear table, run bounds,
/// one member or frame per run) and the codecs. If these change, large layers are no
/// longer reproducible across manifold versions: bump `CODEC_EPOCH` and say why.
const GOLDEN_GZIP: &str = "sha256:fafa5443d9a4223da4894b31a9bc2b7c174bfe2d823549eb589470200d6f0b9b";
const GOLDEN_ZSTD: &str = "sha256:20839d1206a0e7ce5d561350d73780967c5ed2132ded702367cf5f267f9166e2";

#[test]
fn large_layer_digests_are_golden() {
    let tar = big_tar(200, None);
    let (_d, store) = store();
    let lease = store.lease().unwrap();
    let mut got = Vec::new();
    for c in [Compression::GZIP, Compression::ZSTD] {
        let (l, _) = export_tar_with(&store, &lease, &tar[..], &opts(c), None).unwrap();
        got.push(l.descriptor.digest.to_string());
    }
    assert_eq!(got, [GOLDEN_GZIP, GOLDEN_ZSTD]);
}

/// An OCI layout in a temporary directory holding one image of one layer, `tar`.
fn layout_of(tar: &[u8], c: Compression) -> (tempfile::TempDir, std::path::PathBuf, Digest) {
    let (d, store) = store();
    let lease = store.lease().unwrap();
    let (layer, stats) = export_tar_with(&store, &lease, tar, &opts(c), None).unwrap();
    assert!(stats.runs > 4, "{stats:?}");
    let diff_id = layer.diff_id.clone();
    let platform = oci::Platform::parse("linux/amd64").unwrap();
    let desc = export::assemble_image(
        &store,
        &lease,
        None,
        &[Some(layer)],
        config(&platform, 1),
        &image_opts(true),
    )
    .unwrap();
    assert_valid(&store, &desc);
    let dir = d.path().join("layout");
    export::write_oci_layout_dir(&store, &desc, &dir, Some("app")).unwrap();
    (d, dir, diff_id)
}

/// skopeo (containers/image: Go's gzip, klauspost's zstd) decompresses a layer of
/// many gzip members or zstd frames to the whole tar.
#[test]
fn skopeo_decompresses_a_layer_of_many_runs() {
    testkit::require_tool("skopeo");
    let tar = big_tar(100, None);
    for c in [Compression::GZIP, Compression::ZSTD] {
        let (d, dir, diff_id) = layout_of(&tar, c);
        let out = d.path().join("out");
        run(std::process::Command::new("skopeo")
            .args(["copy", "-q", "--dest-decompress"])
            .arg(format!("oci:{}:app", dir.display()))
            .arg(format!("dir:{}", out.display())));
        let found = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .any(|b| Digest::sha256(&b) == diff_id);
        assert!(found, "{c:?}: no file in {} is the tar", out.display());
    }
}

/// umoci (Go's gzip reader, as containerd's and docker's) unpacks a layer of many
/// gzip members. umoci 0.4.7 reads no zstd layers.
#[test]
fn umoci_unpacks_a_gzip_layer_of_many_runs() {
    testkit::require_tool("umoci");
    let tar = big_tar(100, None);
    let (d, dir, _) = layout_of(&tar, Compression::GZIP);
    let bundle = d.path().join("bundle");
    run(std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:app", dir.display()))
        .arg(&bundle));
    let mut entries = tar::Archive::new(&tar[..]);
    for e in entries.entries().unwrap() {
        let mut e = e.unwrap();
        let path = bundle.join("rootfs").join(e.path().unwrap());
        let mut want = Vec::new();
        e.read_to_end(&mut want).unwrap();
        assert!(std::fs::read(&path).unwrap() == want, "{}", path.display());
    }
}
