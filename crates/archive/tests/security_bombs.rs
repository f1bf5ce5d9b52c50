//! SECURITY-CASES A.11, header bombs: GNU long names and PAX headers of a GiB, sparse
//! maps of a million regions, and layers that decompress past their budget. Each is
//! refused with a clear error while the process stays small: the tests read the peak
//! RSS (VmHWM) of their own process, so run them one per process (nextest does).
//!
//! The layers are made on the fly: the repeated body (zeros, or `a`s) is compressed
//! once in 1 MiB pieces, each its own gzip member or zstd frame, and a reader repeats
//! that piece; a few MB of compressed bytes carry GiBs.

mod common;

use std::io::{self, Read, Write};

use archive::{
    ApplyOptions, ArchiveError, Budget, CleanPath, Compression, Expected, HashingReader,
    apply_blob, apply_into_new_dir, compress,
};
use common::{H, MODES, Sandbox, Tar, assert_err_mentions};
use tar::EntryType;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// What a refused bomb may add to the process's peak RSS.
const MAX_GROWTH: u64 = 64 * MIB;

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

fn opts() -> ApplyOptions {
    ApplyOptions::privileged()
}

/// A compressed layer: `head`, `fill_len` bytes of `fill`, then `tail`.
struct Bomb {
    /// Compressed pieces and how often each is repeated.
    parts: Vec<(Vec<u8>, u64)>,
    media_type: &'static str,
}

impl Bomb {
    fn new(codec: Compression, head: &[u8], fill: u8, fill_len: u64, tail: &[u8]) -> Bomb {
        let pack = |data: &[u8]| {
            let mut enc = compress(Vec::new(), codec).unwrap();
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        let piece = vec![fill; MIB as usize];
        let rest = vec![fill; (fill_len % MIB) as usize];
        let parts = vec![
            (pack(head), 1),
            (pack(&piece), fill_len / MIB),
            (pack(&rest), 1),
            (pack(tail), 1),
        ];
        let media_type = if codec == Compression::ZSTD {
            ZSTD
        } else {
            GZIP
        };
        Bomb { parts, media_type }
    }

    fn reader(&self) -> Pieces<'_> {
        Pieces {
            parts: &self.parts,
            i: 0,
            rep: 0,
            off: 0,
        }
    }

    fn compressed_len(&self) -> u64 {
        self.parts.iter().map(|(p, n)| p.len() as u64 * n).sum()
    }

    fn digest(&self) -> oci::Digest {
        HashingReader::new(self.reader()).finish().unwrap().0
    }
}

/// Reads a [`Bomb`]'s pieces in order, repeating each as often as it says.
struct Pieces<'a> {
    parts: &'a [(Vec<u8>, u64)],
    i: usize,
    rep: u64,
    off: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some((data, reps)) = self.parts.get(self.i) else {
                return Ok(0);
            };
            if self.rep >= *reps || data.is_empty() {
                (self.i, self.rep, self.off) = (self.i + 1, 0, 0);
                continue;
            }
            let n = buf.len().min(data.len() - self.off);
            buf[..n].copy_from_slice(&data[self.off..self.off + n]);
            self.off += n;
            if self.off == data.len() {
                (self.rep, self.off) = (self.rep + 1, 0);
            }
            return Ok(n);
        }
    }
}

/// The header of an entry whose `size` bytes of body follow separately.
fn header(name: &[u8], ty: EntryType, size: u64) -> Vec<u8> {
    Tar::new()
        .header(H {
            size: Some(size),
            ..H::new(name, ty)
        })
        .unterminated()
}

/// Padding to the next block after `len` bytes of body, a file `f` and the end.
fn tail_after(len: u64) -> Vec<u8> {
    let mut tail = vec![0u8; ((512 - len % 512) % 512) as usize];
    tail.extend(Tar::new().file("f", b"after").finish());
    tail
}

/// Peak RSS tracking for this process: the peak is reset (where the kernel allows)
/// when created, and [`Peak::growth`] is how far it rose above the RSS of then.
struct Peak {
    start: u64,
}

impl Peak {
    fn start() -> Peak {
        // "5" resets VmHWM to the current RSS (Linux >= 4.0).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        Peak {
            start: status_kib("VmHWM:") * 1024,
        }
    }

    fn growth(&self) -> u64 {
        (status_kib("VmHWM:") * 1024).saturating_sub(self.start)
    }

    fn assert_small(&self, what: &str) {
        let growth = self.growth();
        eprintln!("{what}: peak RSS grew by {} KiB", growth / 1024);
        assert!(
            growth < MAX_GROWTH,
            "{what}: peak RSS grew by {growth} bytes (limit {MAX_GROWTH})"
        );
    }
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

/// Apply `bomb` into a new directory of a sandbox with `o`; the error, after checking
/// that the directory is gone and nothing outside changed.
fn refuse(bomb: &Bomb, o: &ApplyOptions) -> ArchiveError {
    let sb = Sandbox::new();
    let dir = sb.at("snapshot");
    let err = apply_into_new_dir(&dir, |root| {
        apply_blob(
            root,
            bomb.reader(),
            Some(bomb.media_type),
            &Expected::default(),
            o,
        )
    })
    .unwrap_err();
    assert!(!dir.exists(), "the partial snapshot is removed");
    sb.assert_outside_unchanged();
    err
}

#[test]
fn a11_gnu_long_name_of_1_gib_is_refused_before_it_is_read() {
    let peak = Peak::start();
    for (ty, what) in [
        (EntryType::GNULongName, "GNU long name"),
        (EntryType::GNULongLink, "GNU long link name"),
    ] {
        let bomb = Bomb::new(
            Compression::GZIP,
            &header(b"././@LongLink", ty, GIB),
            0,
            GIB,
            &tail_after(GIB),
        );
        assert!(bomb.compressed_len() < 4 * MIB, "{}", bomb.compressed_len());
        let err = refuse(&bomb, &opts());
        assert!(
            matches!(
                err,
                ArchiveError::HeaderTooLarge {
                    size: GIB,
                    limit: 65536,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "layer {}: {what} of 1073741824 bytes exceeds the 65536-byte limit",
                bomb.digest()
            )
        );
    }
    peak.assert_small("1 GiB GNU long name and long link");
}

#[test]
fn a11_pax_header_of_1_gib_is_refused_before_it_is_read() {
    let peak = Peak::start();
    for (ty, what) in [
        (EntryType::XHeader, "PAX extended header"),
        (EntryType::XGlobalHeader, "PAX global header"),
    ] {
        // One well-formed record of exactly 1 GiB: `1073741824 comment=aaa…a\n`.
        let mut head = header(b"PaxHeaders/f", ty, GIB);
        let prefix = b"1073741824 comment=";
        head.extend_from_slice(prefix);
        let fill = GIB - prefix.len() as u64 - 1;
        let mut tail = b"\n".to_vec();
        tail.extend(tail_after(GIB));
        let bomb = Bomb::new(Compression::GZIP, &head, b'a', fill, &tail);
        assert!(bomb.compressed_len() < 4 * MIB, "{}", bomb.compressed_len());
        let err = refuse(&bomb, &opts());
        assert!(
            matches!(
                err,
                ArchiveError::HeaderTooLarge {
                    size: GIB,
                    limit: 1048576,
                    ..
                }
            ),
            "{err}"
        );
        assert_err_mentions(
            &err,
            &[
                &format!("layer {}: ", bomb.digest()),
                &format!("{what} of 1073741824 bytes exceeds the 1048576-byte limit"),
            ],
        );
    }
    peak.assert_small("1 GiB PAX headers");
}

/// An old-style GNU sparse header (`S`) with `regions` regions of one block each,
/// the first four inline and the rest in extension blocks, then the data.
fn gnu_sparse(regions: u64, real_size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path("sparse").unwrap();
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    let stored = regions.min(4) * 512;
    h.set_size(stored);
    let gnu = h.as_gnu_mut().unwrap();
    let region = |s: &mut tar::GnuSparseHeader, i: u64| {
        s.set_offset(i * 1024);
        s.set_length(if i < 4 { 512 } else { 0 });
    };
    for i in 0..regions.min(4) {
        region(&mut gnu.sparse[i as usize], i);
    }
    gnu.set_real_size(real_size);
    gnu.set_is_extended(regions > 4);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    let mut i = 4;
    while i < regions {
        let mut ext = tar::GnuExtSparseHeader::new();
        for s in ext.sparse_mut().iter_mut() {
            if i == regions {
                break;
            }
            region(s, i);
            i += 1;
        }
        ext.set_is_extended(i < regions);
        out.extend_from_slice(ext.as_bytes());
    }
    out.extend(std::iter::repeat_n(1u8, stored as usize));
    out.extend(Tar::new().finish());
    out
}

#[test]
fn a11_sparse_map_bombs_are_refused() {
    let peak = Peak::start();
    // A million regions of an old GNU sparse header (47 619 extension blocks).
    let tar = gnu_sparse(1_000_000, 1 << 30);
    let err = Sandbox::new().apply(MODES[0], &tar, &opts()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::SparseMapTooLarge {
                what: "GNU sparse map",
                limit: 65536,
                ..
            }
        ),
        "{err}"
    );
    assert_err_mentions(
        &err,
        &["GNU sparse map of ", "exceeds the 65536-entry limit"],
    );

    // A sparse file declaring a real size of 1 PiB.
    let tar = gnu_sparse(4, 1 << 50);
    let err = Sandbox::new().apply(MODES[0], &tar, &opts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "GNU sparse file real size of 1125899906842624 bytes exceeds the 68719476736-byte limit"
    );

    // PAX 0.1 and 0.0 maps, and a 1.0 map whose block count opens the file's data.
    // A PAX header of 1 MiB holds fewer than 65536 `GNU.sparse.offset` records, so
    // these run with a cap of 1000 entries.
    let mut o = opts();
    o.limits.max_sparse_entries = 1000;
    let many = vec!["0,512"; 70_000].join(",");
    let offsets: Vec<(&str, &[u8])> = (0..1001)
        .map(|_| ("GNU.sparse.offset", &b"0"[..]))
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "0.1 numblocks",
            pax_then_file(&[("GNU.sparse.numblocks", b"1000000")], b""),
            "PAX sparse map of 1000000 entries exceeds the 1000-entry limit",
        ),
        (
            "0.1 map",
            pax_then_file(&[("GNU.sparse.map", many.as_bytes())], b""),
            "PAX sparse map of 70000 entries exceeds the 1000-entry limit",
        ),
        (
            "0.0 offsets",
            pax_then_file(&offsets, b""),
            "PAX sparse map of 1001 entries exceeds the 1000-entry limit",
        ),
        (
            "realsize",
            pax_then_file(&[("GNU.sparse.realsize", b"1125899906842624")], b""),
            "PAX sparse file real size of 1125899906842624 bytes exceeds",
        ),
        (
            "1.0 map",
            pax_then_file(
                &[("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0")],
                b"1000000\n0\n512\n",
            ),
            "PAX sparse map of 1000000 entries exceeds the 1000-entry limit",
        ),
    ];
    for (what, tar, mention) in cases {
        let sb = Sandbox::new();
        let err = sb.apply(MODES[0], &tar, &o).expect_err(what);
        assert!(
            matches!(
                err,
                ArchiveError::SparseMapTooLarge { .. } | ArchiveError::HeaderTooLarge { .. }
            ),
            "{what}: {err}"
        );
        assert_err_mentions(&err, &[mention]);
        if what != "1.0 map" {
            // (A 1.0 map is in the file's data: `f` was created, and is discarded
            // with the tree by the caller.)
            assert!(!sb.at("f").exists(), "{what}");
        }
        sb.assert_outside_unchanged();
    }
    peak.assert_small("sparse map bombs");
}

/// A PAX header of `records`, then a file `f` holding `data`.
fn pax_then_file(records: &[(&str, &[u8])], data: &[u8]) -> Vec<u8> {
    let mut t = Tar::new();
    t.pax(records).file("f", data);
    t.finish()
}

#[test]
fn a11_sparse_files_within_the_limits_still_apply() {
    let sb = Sandbox::new();
    let stats = sb
        .apply(MODES[0], &gnu_sparse(40, 39 * 1024), &opts())
        .unwrap();
    assert_eq!(stats.files, 1);
    let data = std::fs::read(sb.at("sparse")).unwrap();
    assert_eq!(data.len(), 39 * 1024);
    assert_eq!(&data[..512], &[1u8; 512][..]);
    assert!(data[512..1024].iter().all(|b| *b == 0));
    assert_eq!(&data[3072..3584], &[1u8; 512][..]);
    assert!(data[3584..].iter().all(|b| *b == 0));
}

/// A layer holding one file `zeros` of `len` zero bytes.
fn zeros(codec: Compression, len: u64) -> Bomb {
    Bomb::new(
        codec,
        &header(b"zeros", EntryType::Regular, len),
        0,
        len,
        &tail_after(len),
    )
}

/// zstd reaches ratios of 10^4:1 and more on zeros, far past the default budget's
/// 1000:1. Deflate cannot pass ~1030:1 (gzip of zeros measures 964:1 here), so a gzip
/// bomb is bound by the total instead, or by a lower ratio where one is configured.
#[test]
fn a11_zeros_past_the_ratio_limit_are_refused() {
    let peak = Peak::start();
    let lower = Budget {
        max_ratio: 100,
        ..Budget::default()
    };
    for (codec, budget, ratio) in [
        (Compression::ZSTD, Budget::default(), 1000),
        (Compression::GZIP, lower, 100),
    ] {
        let bomb = zeros(codec, 8 * GIB);
        assert!(
            bomb.compressed_len() < 16 * MIB,
            "{}",
            bomb.compressed_len()
        );
        let mut o = opts();
        o.budget = budget;
        let started = std::time::Instant::now();
        let err = refuse(&bomb, &o);
        assert!(
            matches!(err, ArchiveError::CompressionRatio { ratio: r, .. } if r == ratio),
            "{codec:?}: {err}"
        );
        assert_err_mentions(
            &err,
            &[
                &format!("layer {}: ", bomb.digest()),
                &format!("decompression ratio exceeds {ratio}:1"),
            ],
        );
        assert!(
            started.elapsed().as_secs() < 20,
            "refused early, not after 8 GiB"
        );
    }
    peak.assert_small("8 GiB of zeros");
}

#[test]
fn a11_uncompressed_total_is_capped() {
    let peak = Peak::start();
    let mut o = opts();
    o.budget = Budget {
        max_uncompressed: 64 * MIB,
        ..Budget::unlimited()
    };
    let bomb = zeros(Compression::GZIP, 4 * GIB);
    let expected = Expected {
        digest: Some(bomb.digest()),
        ..Expected::default()
    };
    let sb = Sandbox::new();
    let dir = sb.at("snapshot");
    let err = apply_into_new_dir(&dir, |root| {
        apply_blob(root, bomb.reader(), Some(GZIP), &expected, &o)
    })
    .unwrap_err();
    assert!(
        matches!(err, ArchiveError::UncompressedTooLarge { limit, .. } if limit == 64 * MIB),
        "{err}"
    );
    assert_err_mentions(
        &err,
        &[
            &format!("layer {}: ", bomb.digest()),
            "uncompressed stream exceeds the 67108864-byte limit",
        ],
    );
    assert!(!dir.exists());
    peak.assert_small("4 GiB of zeros under a 64 MiB budget");
}

#[test]
fn names_and_pax_headers_up_to_the_limits_still_apply() {
    let sb = Sandbox::new();
    // A GNU long name as long as a path may be (4096 bytes).
    let component = "n".repeat(254);
    let mut long = String::new();
    while long.len() + 255 < 4096 {
        long.push_str(&component);
        long.push('/');
    }
    long.push_str(&"f".repeat(4096 - long.len()));
    let mut name = long.clone().into_bytes();
    name.push(0);
    // A PAX header of exactly 1 MiB: a comment filling it, an xattr, uid, gid, mtime.
    let pax = |comment_len: usize| {
        let comment = "c".repeat(comment_len);
        let mut t = Tar::new();
        t.pax(&[
            ("comment", comment.as_bytes()),
            ("SCHILY.xattr.user.k", b"v"),
            ("uid", b"1234"),
            ("gid", b"5678"),
            ("mtime", b"1700000000.25"),
        ]);
        t.unterminated()
    };
    let declared = |t: &[u8]| {
        tar::Header::from_byte_slice(&t[..512])
            .entry_size()
            .unwrap()
    };
    let mut comment_len = 1 << 20;
    while declared(&pax(comment_len)) > 1 << 20 {
        comment_len -= 1;
    }
    let mut tar = pax(comment_len);
    assert_eq!(declared(&tar), 1 << 20);
    tar.extend(
        Tar::new()
            .file("pax", b"pax")
            .header(H {
                data: &name,
                ..H::new(b"././@LongLink", EntryType::GNULongName)
            })
            .file("placeholder", b"long")
            .finish(),
    );
    sb.apply(MODES[0], &tar, &opts()).unwrap();
    let mut content = String::new();
    sb.open(MODES[0])
        .open_regular(&CleanPath::new(long.as_bytes()).unwrap())
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "long");
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(sb.at("pax")).unwrap();
    assert_eq!(m.mtime(), 1_700_000_000);
    assert_eq!(common::xattrs(&sb.at("pax")), ["user.k=\"v\""]);
    if rustix::process::geteuid().is_root() {
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
    }

    // A long name record of 64 KiB passes the header guard (and meets the path
    // length cap); one byte more is refused before it is read.
    for (len, mention) in [
        (65536, "layer exceeds limit: path length"),
        (
            65537,
            "GNU long name of 65537 bytes exceeds the 65536-byte limit",
        ),
    ] {
        let mut name = vec![b'n'; len - 1];
        name.push(0);
        let mut t = Tar::new();
        t.header(H {
            data: &name,
            ..H::new(b"././@LongLink", EntryType::GNULongName)
        })
        .file("placeholder", b"long");
        let err = Sandbox::new()
            .apply(MODES[0], &t.finish(), &opts())
            .unwrap_err();
        assert_err_mentions(&err, &[mention]);
    }
}
