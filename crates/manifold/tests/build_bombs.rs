//! SECURITY-CASES A.11 end to end: a base image in the store whose gzip layer (about
//! 1 MB) carries a GNU long name of 1 GiB. `manifold build` must refuse it with an
//! error naming the layer, while its peak RSS (measured by `/usr/bin/time -v`) stays
//! small. Before the header guard the tar crate read the whole name into memory.

mod common;

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{BASE, all_output, fails, ok, require_root, root_with_base, write};
use content::Store;
use oci::{Digest, media};

const GIB: u64 = 1 << 30;
const MIB: usize = 1 << 20;
/// The peak RSS a refused bomb may reach.
const MAX_PEAK_KIB: u64 = 64 * 1024;

/// A 512-byte ustar header block of type `ty` declaring `size` bytes of body.
fn header(name: &str, ty: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = ty;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// The layer's uncompressed tar: a long-name header of 1 GiB, the name (zeros), a
/// file `f` and the end-of-archive blocks. Made as it is read, never held whole.
fn layer_parts() -> (Vec<u8>, u64, Vec<u8>) {
    let head = header("././@LongLink", b'L', GIB).to_vec();
    let mut tail = header("f", b'0', 0).to_vec();
    tail.extend([0u8; 1024]);
    (head, GIB, tail)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = archive::compress(Vec::new(), archive::Compression::GZIP).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// The gzip layer: one gzip member per piece (head, each MiB of zeros, tail); the
/// members of zeros are one member compressed once and repeated.
fn gzip_layer() -> Vec<u8> {
    let (head, zeros, tail) = layer_parts();
    let piece = gzip(&vec![0u8; MIB]);
    let mut out = gzip(&head);
    for _ in 0..zeros / MIB as u64 {
        out.extend_from_slice(&piece);
    }
    out.extend(gzip(&tail));
    out
}

/// The diff_id of the layer, hashed as the bytes are made.
fn diff_id() -> Digest {
    let (head, zeros, tail) = layer_parts();
    let body = io::repeat(0).take(zeros);
    let stream = io::Cursor::new(head)
        .chain(body)
        .chain(io::Cursor::new(tail));
    archive::HashingReader::new(stream).finish().unwrap().0
}

/// Store the bomb image under `name`; returns its layer's digest.
fn add_bomb(root: &Path, name: &str) -> Digest {
    let store = Store::open(root).unwrap();
    let lease = store.lease().unwrap();
    let blob = gzip_layer();
    assert!(blob.len() < 4 * MIB, "a small layer ({} bytes)", blob.len());
    let layer = store
        .put_bytes(&lease, media::OCI_LAYER_GZIP, &blob)
        .unwrap();
    let config = oci::RawDocument::from_value(oci::ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: oci::document::RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id()],
        },
        ..oci::ImageConfig::default()
    });
    let config = store
        .put_bytes(&lease, media::OCI_CONFIG, config.bytes())
        .unwrap();
    let manifest = oci::RawDocument::from_value(oci::ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config,
        layers: vec![layer.clone()],
        subject: None,
        annotations: Default::default(),
    });
    let desc = store
        .put_bytes(&lease, media::OCI_MANIFEST, manifest.bytes())
        .unwrap();
    store.set_name(name, &desc).unwrap();
    layer.digest
}

/// `manifold build` under `/usr/bin/time -v`: its output and peak RSS in KiB.
fn timed_build(root: &Path, ctx: &Path, tag: &str) -> (Output, u64) {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_manifold"))
        .args(["build", "--progress=plain", "-t", tag])
        .arg(ctx)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("DOCKER_CONFIG", root.join("docker"))
        .env_remove("MANIFOLD_RUNTIME")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time\n{}", all_output(&out)))
        .trim()
        .parse()
        .unwrap();
    (out, peak)
}

#[test]
fn case11_base_image_with_a_1_gib_gnu_long_name_is_refused_and_the_build_stays_small() {
    require_root();
    let root = root_with_base();
    let layer = add_bomb(root.path(), "localhost/bomb:test");

    // A normal build of the same shape first: the bomb's peak is compared with it.
    let normal = tempfile::tempdir().unwrap();
    write(normal.path(), "a", "a\n");
    write(
        normal.path(),
        "Dockerfile",
        &format!("FROM {BASE}\nCOPY a /a\n"),
    );
    let (out, normal_peak) = timed_build(root.path(), normal.path(), "normal:latest");
    ok(&out);

    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "a", "a\n");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/bomb:test\nCOPY a /a\n",
    );
    let started = std::time::Instant::now();
    let (out, bomb_peak) = timed_build(root.path(), ctx.path(), "bomb:latest");
    let stderr = fails(&out);
    let want =
        format!("layer {layer}: GNU long name of 1073741824 bytes exceeds the 65536-byte limit");
    assert!(
        stderr.contains(&want),
        "{want:?} not in\n{}",
        all_output(&out)
    );
    eprintln!(
        "peak RSS: normal build {normal_peak} KiB, bomb {bomb_peak} KiB, refused in {:?}",
        started.elapsed()
    );
    // A normal build peaks near 22 MB, so the bomb's peak is held to 64 MB outright,
    // and to 64 MB above a normal build should that baseline ever grow past it.
    let limit = if normal_peak < MAX_PEAK_KIB {
        MAX_PEAK_KIB
    } else {
        normal_peak + MAX_PEAK_KIB
    };
    assert!(
        bomb_peak < limit,
        "peak RSS {bomb_peak} KiB, a normal build {normal_peak} KiB"
    );
}
