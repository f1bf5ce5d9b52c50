//! SECURITY-CASES section A, cases A.10–A.15: malformed streams, bombs, special
//! files, hostile values and digest/size checks. Every test checks that nothing
//! outside the root changed.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::mpsc;
use std::time::Duration;

use archive::{
    ApplyOptions, ArchiveError, Compression, Expected, Limits, Root, SpecialFiles, apply_blob,
    apply_into_new_dir, compress,
};
use common::{H, MODES, Sandbox, Tar, assert_err_mentions, require_root};
use tar::EntryType;

fn opts() -> ApplyOptions {
    common::privileged_or_namespaced()
}

/// Every case again as a rootless build applies layers: root of a user namespace.
#[test]
fn every_stream_case_holds_as_root_of_a_user_namespace() {
    common::rerun_in_a_user_namespace("every_stream_case_holds_as_root_of_a_user_namespace");
}

#[test]
fn a10_pax_size_disagreeing_with_the_header_is_refused() {
    let sb = Sandbox::new();
    let mut t = Tar::new();
    t.pax(&[("size", b"1024")]).header(H {
        data: b"0123456789",
        ..H::new(b"desync", EntryType::Regular)
    });
    let err = sb.apply(MODES[0], &t.finish(), &opts()).unwrap_err();
    assert!(matches!(err, ArchiveError::Malformed { .. }), "{err}");
    assert_err_mentions(&err, &["desync", "PAX size 1024", "header size 10"]);
    sb.assert_outside_unchanged();
}

#[test]
fn a10_malformed_pax_and_bogus_gnu_long_names_are_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("pax record without length", {
            let mut t = Tar::new();
            t.pax_raw(b"path=evil\n").file("f", b"");
            t.finish()
        }),
        ("pax record with a wrong length", {
            let mut t = Tar::new();
            t.pax_raw(b"99 path=evil\n").file("f", b"");
            t.finish()
        }),
        ("long name with no member", {
            let mut t = Tar::new();
            t.header(H {
                data: b"some/long/name\0",
                ..H::new(b"././@LongLink", EntryType::GNULongName)
            });
            t.finish()
        }),
        ("two long names for one member", {
            let mut t = Tar::new();
            for _ in 0..2 {
                t.header(H {
                    data: b"n\0",
                    ..H::new(b"././@LongLink", EntryType::GNULongName)
                });
            }
            t.file("f", b"");
            t.finish()
        }),
        ("bad header checksum", {
            let mut tar = Tar::new().file("f", b"data").finish();
            tar[0] ^= 0x20;
            tar
        }),
    ];
    for (what, tar) in cases {
        let sb = Sandbox::new();
        let err = sb.apply(MODES[0], &tar, &opts()).expect_err(what);
        assert!(
            matches!(
                err,
                ArchiveError::Malformed { .. } | ArchiveError::Tar { .. }
            ),
            "{what}: {err}"
        );
        assert!(!sb.at("evil").exists(), "{what}");
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a10_valid_archive_applies_as_gnu_tar_extracts_it() {
    require_root();
    let gnu = testkit::require_tool("tar");
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
    let mut t = Tar::new();
    t.dir("etc/", 0o755)
        .file("etc/hosts", b"127.0.0.1 localhost\n");
    t.pax(&[("path", long.as_bytes()), ("mtime", b"1700000000.5")])
        .file("placeholder", b"long");
    t.header(H {
        data: format!("{long}2\0").as_bytes(),
        ..H::new(b"././@LongLink", EntryType::GNULongName)
    })
    .file("placeholder2", b"gnu long");
    t.symlink("etc/link", "hosts")
        .hardlink("etc/hard", "etc/hosts");
    t.header(H {
        mode: 0o4755,
        uid: 1000,
        gid: 1000,
        data: b"#!/bin/sh\n",
        ..H::new(b"bin/suid", EntryType::Regular)
    });
    let tar = t.finish();
    let ours = Sandbox::new();
    ours.apply(MODES[0], &tar, &opts()).unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(gnu)
        .args(["-xpf", "-", "--numeric-owner", "-C"])
        .arg(theirs.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "GNU tar extracts the archive"
    );
    let mut a = common::fingerprint(&ours.root);
    let mut b = common::fingerprint(theirs.path());
    // Directory records differ by design: implicit parents get each extractor's
    // defaults, and GNU tar creates symlinks after setting directory times. Files,
    // links, modes, owners, mtimes and contents must agree.
    for m in [&mut a, &mut b] {
        m.retain(|k, _| !k.ends_with("/."));
    }
    assert_eq!(a, b);
    assert_eq!(fs::metadata(ours.at("etc")).unwrap().mtime(), 1_600_000_000);
}

fn bomb_tar(len: usize) -> Vec<u8> {
    let zeros = vec![0u8; len];
    Tar::new().file("zeros", &zeros).finish()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = compress(Vec::new(), Compression::GZIP).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn a11_decompression_bomb_hits_the_byte_cap_and_the_new_dir_is_removed() {
    let sb = Sandbox::new();
    let blob = gzip(&bomb_tar(64 << 20));
    assert!(blob.len() < 200_000, "a small blob ({} bytes)", blob.len());
    let mut o = opts();
    o.limits.max_bytes = 1 << 20;
    let dir = sb.at("snapshot");
    let err = apply_into_new_dir(&dir, |root| {
        apply_blob(
            root,
            &blob[..],
            Some("application/vnd.oci.image.layer.v1.tar+gzip"),
            &Expected::default(),
            &o,
        )
    })
    .unwrap_err();
    assert!(
        matches!(err, ArchiveError::LimitExceeded { limit: 1048576, .. }),
        "{err}"
    );
    assert_err_mentions(&err, &["layer exceeds limit"]);
    assert!(!dir.exists(), "the partial snapshot is removed");
    sb.assert_outside_unchanged();
}

#[test]
fn a11_entry_count_cap() {
    let sb = Sandbox::new();
    let mut t = Tar::new();
    for i in 0..100_000 {
        t.header(H::new(
            format!("d{}/f{i}", i % 100).as_bytes(),
            EntryType::Regular,
        ));
    }
    let mut o = opts();
    o.limits.max_entries = 1000;
    let err = sb.apply(MODES[0], &t.finish(), &o).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::LimitExceeded {
                what: "entries",
                limit: 1000
            }
        ),
        "{err}"
    );
    sb.assert_outside_unchanged();
}

#[test]
fn a11_long_paths_and_deep_trees_are_capped() {
    let sb = Sandbox::new();
    let long = "x/".repeat(50_000);
    let mut t = Tar::new();
    t.pax(&[("path", long.as_bytes())]).file("f", b"");
    let err = sb.apply(MODES[0], &t.finish(), &opts()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::LimitExceeded {
                what: "path length",
                ..
            }
        ),
        "{err}"
    );

    let deep = "a/".repeat(10_000);
    let mut t = Tar::new();
    t.pax(&[("path", deep.as_bytes())]).file("f", b"");
    let mut o = opts();
    o.limits.max_path_len = 1 << 20;
    let err = sb.apply(MODES[0], &t.finish(), &o).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::LimitExceeded {
                what: "path depth",
                limit: 512
            }
        ),
        "{err}"
    );
    assert!(!sb.at("a").exists());
    sb.assert_outside_unchanged();
}

#[test]
fn a12_devices_and_fifos_follow_policy_and_are_never_opened() {
    require_root();
    let sb = Sandbox::new();
    let mut t = Tar::new();
    t.header(H {
        dev: (1, 3),
        mode: 0o666,
        ..H::new(b"dev/null2", EntryType::Char)
    })
    .header(H {
        dev: (7, 0),
        mode: 0o660,
        ..H::new(b"dev/loop9", EntryType::Block)
    })
    .header(H::new(b"fifo", EntryType::Fifo));
    let tar = t.finish();

    let stats = sb.apply(MODES[0], &tar, &opts()).unwrap();
    if common::namespaced() {
        // Root of a user namespace may not make device nodes: they are skipped, the
        // FIFO is made, and nothing was opened.
        assert_eq!((stats.specials_skipped, stats.specials_created), (2, 1));
        assert!(fs::symlink_metadata(sb.at("dev/null2")).is_err());
        assert!(
            fs::symlink_metadata(sb.at("fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        sb.assert_outside_unchanged();
        return;
    }
    assert_eq!(stats.specials_created, 3);
    let m = fs::symlink_metadata(sb.at("dev/null2")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(
        (m.rdev(), m.mode() & 0o7777),
        (rustix::fs::makedev(1, 3), 0o666)
    );
    assert!(
        fs::symlink_metadata(sb.at("dev/loop9"))
            .unwrap()
            .file_type()
            .is_block_device()
    );
    assert!(
        fs::symlink_metadata(sb.at("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );

    // A regular file over the existing FIFO: opening it would block forever.
    let over = Tar::new()
        .file("fifo", b"now a file")
        .file("dev/null2", b"f")
        .finish();
    let root = sb.root.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = archive::apply_layer(
            &Root::open(&root).unwrap(),
            &over[..],
            &ApplyOptions::privileged(),
        );
        tx.send(r.map(|_| ())).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("no FIFO was opened")
        .unwrap();
    assert_eq!(fs::read(sb.at("fifo")).unwrap(), b"now a file");

    let rootless = Sandbox::new();
    let stats = rootless
        .apply(MODES[0], &tar, &ApplyOptions::rootless())
        .unwrap();
    assert_eq!((stats.specials_skipped, stats.specials_created), (2, 1));
    assert!(!rootless.at("dev/null2").exists());

    let mut refuse = opts();
    refuse.devices = SpecialFiles::Refuse;
    let err = Sandbox::new().apply(MODES[0], &tar, &refuse).unwrap_err();
    assert_err_mentions(&err, &["dev/null2", "refused"]);
    sb.assert_outside_unchanged();
}

#[test]
fn a13_hostile_names_and_values_are_clean_errors() {
    require_root();
    let sb = Sandbox::new();
    sb.apply(
        MODES[0],
        &Tar::new()
            .file("caf\u{e9}", b"")
            .header(H::new(b"bad\xff\xfe", EntryType::Regular))
            .finish(),
        &opts(),
    )
    .expect("non-UTF-8 names are plain bytes");
    use std::os::unix::ffi::OsStrExt;
    assert!(
        sb.root
            .join(std::ffi::OsStr::from_bytes(b"bad\xff\xfe"))
            .exists()
    );
    assert!(sb.at("caf\u{e9}").exists());

    let long_comp = format!("d/{}", "n".repeat(256));
    let long_xattr = format!("SCHILY.xattr.user.{}", "k".repeat(251));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "component > 255",
            pax_file(&[("path", long_comp.as_bytes())]),
            "255",
        ),
        ("NUL in a PAX path", pax_file(&[("path", b"a\0b")]), "NUL"),
        (
            "empty xattr name",
            pax_file(&[("SCHILY.xattr.", b"v")]),
            "xattr name",
        ),
        (
            "xattr name of 256 bytes",
            pax_file(&[(&long_xattr, b"v")]),
            "xattr name",
        ),
        (
            "uid past u32",
            pax_file(&[("uid", b"1099511627776")]),
            "uid",
        ),
        (
            "mtime past i64",
            pax_file(&[("mtime", b"99999999999999999999999")]),
            "mtime",
        ),
        ("negative uid", pax_file(&[("uid", b"-1")]), "uid"),
    ];
    for (what, tar, mention) in cases {
        let sb = Sandbox::new();
        let err = sb.apply(MODES[0], &tar, &opts()).expect_err(what);
        assert_err_mentions(&err, &[mention]);
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a14_trailing_bytes_are_hashed_and_a_digest_mismatch_is_reported() {
    let sb = Sandbox::new();
    let tar = Tar::new().file("f", b"content").finish();
    let mut blob = tar.clone();
    blob.extend_from_slice(&[b'X'; 1000]);
    let root = sb.open(MODES[0]);
    let mt = Some("application/vnd.oci.image.layer.v1.tar");
    let applied = apply_blob(&root, &blob[..], mt, &Expected::default(), &opts()).unwrap();
    assert_eq!(
        applied.stats.trailing_bytes, 1000,
        "bytes after the two zero blocks"
    );
    assert_eq!(applied.digest, oci::Digest::sha256(&blob));
    assert_eq!(applied.size, blob.len() as u64);

    let expected = Expected {
        digest: Some(oci::Digest::sha256(&tar)),
        ..Expected::default()
    };
    let err = apply_blob(&root, &blob[..], mt, &expected, &opts()).unwrap_err();
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
    assert_err_mentions(
        &err,
        &["digest mismatch", &oci::Digest::sha256(&tar).to_string()],
    );

    let gz = gzip(&tar);
    let expected = Expected {
        diff_id: Some(oci::Digest::sha256(b"other")),
        ..Expected::default()
    };
    let err = apply_blob(&root, &gz[..], None, &expected, &opts()).unwrap_err();
    assert_err_mentions(&err, &["digest mismatch", "uncompressed"]);
    sb.assert_outside_unchanged();
}

#[test]
fn a15_truncated_blob_is_a_size_mismatch_and_nothing_is_kept() {
    let sb = Sandbox::new();
    let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let blob = gzip(&Tar::new().file("big", &data).finish());
    let cut = &blob[..blob.len() / 2];
    let expected = Expected {
        size: Some(blob.len() as u64),
        digest: Some(oci::Digest::sha256(&blob)),
        ..Expected::default()
    };
    let dir = sb.at("snap");
    let err = apply_into_new_dir(&dir, |root| apply_blob(root, cut, None, &expected, &opts()))
        .unwrap_err();
    assert!(matches!(err, ArchiveError::SizeMismatch { .. }), "{err}");
    assert_err_mentions(&err, &["size mismatch", &blob.len().to_string()]);
    assert!(!dir.exists());
    sb.assert_outside_unchanged();
}

#[test]
fn byte_cap_also_bounds_sparse_or_declared_file_sizes() {
    let sb = Sandbox::new();
    let mut o = opts();
    o.limits = Limits {
        max_bytes: 10_000,
        ..Limits::default()
    };
    let tar = Tar::new()
        .file("a", &[1u8; 6000])
        .file("b", &[2u8; 6000])
        .finish();
    let err = sb.apply(MODES[0], &tar, &o).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::LimitExceeded {
                what: "file content bytes",
                ..
            }
        ),
        "{err}"
    );
}

/// A tar with one PAX header of `records` before a file `f`.
fn pax_file(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = Tar::new();
    t.pax(records).file("f", b"");
    t.finish()
}
