//! Streams of many runs (gzip members, zstd frames) are read by every decoder: our
//! own, flate2's multi-member reader, and the `gzip` and `zstd` tools.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use archive::{CompressOptions, Compression, compress_with};

/// Half pseudo-random, half text: several runs of each kind.
fn sample() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut data: Vec<u8> = (0..5 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    for i in 0..120_000 {
        data.extend(format!("{i}: the quick brown fox jumps over the lazy dog\n").as_bytes());
    }
    data
}

fn encode(data: &[u8], c: Compression, threads: usize) -> Vec<u8> {
    let opts = CompressOptions {
        threads: Some(threads),
        runs: None,
    };
    let mut enc = compress_with(Vec::new(), c, opts).unwrap();
    enc.write_all(data).unwrap();
    let (out, runs) = enc.finish_runs().unwrap();
    assert!(runs.len() > 4, "{} runs", runs.len());
    out
}

/// Run `tool args` with `input` on stdin; its stdout.
fn tool(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("this test needs `{tool}` (scripts/setup.sh): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{tool} {args:?} failed");
    out.stdout
}

#[test]
fn gzip_runs_decode_with_flate2_and_the_gzip_tool() {
    let data = sample();
    let packed = encode(&data, Compression::GZIP, 2);
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&packed[..])
        .read_to_end(&mut out)
        .unwrap();
    assert!(out == data, "flate2 MultiGzDecoder");
    out.clear();
    archive::decompress(&packed[..], None)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert!(out == data, "archive::decompress");
    assert!(tool("gzip", &["-dc"], &packed) == data, "gzip -d");
    assert!(tool("gzip", &["-t"], &packed).is_empty(), "gzip -t");
}

#[test]
fn zstd_runs_decode_with_the_zstd_crate_and_tool() {
    let data = sample();
    let packed = encode(&data, Compression::ZSTD, 2);
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(&packed[..])
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert!(out == data, "zstd crate");
    out.clear();
    archive::decompress(&packed[..], None)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert!(out == data, "archive::decompress");
    assert!(tool("zstd", &["-dc"], &packed) == data, "zstd -d");
}

#[test]
fn one_thread_and_two_give_the_same_bytes() {
    let data = sample();
    for c in [
        Compression::GZIP,
        Compression::Gzip { level: 1 },
        Compression::ZSTD,
    ] {
        assert!(encode(&data, c, 1) == encode(&data, c, 2), "{c:?}");
    }
}
