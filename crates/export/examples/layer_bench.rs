//! Layer compression micro-benchmark, driven by `bench/layer-compress.sh`.
//!
//! ```text
//! layer_bench gen TAR SIZE_MIB [EDIT]    a tar of 1 MiB files, random and text by turns;
//!                                        EDIT: the file whose one byte differs
//! layer_bench export STORE TAR gzip|zstd THREADS
//! ```
//!
//! `export` prints one line: codec, threads, seconds, MiB/s of tar, blob bytes, runs,
//! runs reused, peak RSS (MiB) of the process.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use export::{Compression, LayerOptions, export_tar_with};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gen") if args.len() >= 3 => {
            let mib: usize = args[2].parse().expect("SIZE_MIB is a number");
            let edit = args.get(3).map(|e| e.parse().expect("EDIT is a number"));
            generate(&args[1], mib, edit);
        }
        Some("export") if args.len() == 5 => {
            let c = match args[3].as_str() {
                "gzip" => Compression::GZIP,
                "zstd" => Compression::ZSTD,
                other => panic!("unknown codec {other}"),
            };
            let threads: usize = args[4].parse().expect("THREADS is a number");
            export(&args[1], &args[2], c, threads, &args[3]);
        }
        _ => {
            eprintln!(
                "usage: layer_bench gen TAR SIZE_MIB [EDIT] | export STORE TAR gzip|zstd THREADS"
            );
            std::process::exit(2);
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: [&str; 32] = [
    "layer", "image", "build", "cache", "export", "digest", "manifest", "config", "tar", "gzip",
    "zstd", "run", "member", "frame", "registry", "push", "pull", "blob", "index", "platform",
    "arm64", "amd64", "snapshot", "overlay", "mount", "copy", "file", "the", "a", "of", "and",
    "to",
];

fn file_data(i: usize, len: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
    if i.is_multiple_of(2) {
        (0..len).map(|_| (rng.next() >> 24) as u8).collect()
    } else {
        let mut out = Vec::with_capacity(len + 64);
        while out.len() < len {
            let r = rng.next();
            out.extend_from_slice(WORDS[(r % 32) as usize].as_bytes());
            out.push(if r >> 60 == 0 { b'\n' } else { b' ' });
        }
        out.truncate(len);
        out
    }
}

fn generate(path: &str, mib: usize, edit: Option<usize>) {
    let out = BufWriter::new(File::create(path).expect("create the tar"));
    let mut b = tar::Builder::new(out);
    for i in 0..mib {
        let mut data = file_data(i, 1 << 20);
        if edit == Some(i) {
            data[4096] ^= 0xff;
        }
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("srv/data/file-{i:05}"))
            .expect("a short path");
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, &data[..]).expect("write the tar");
    }
    b.into_inner()
        .expect("finish the tar")
        .flush()
        .expect("flush the tar");
}

fn export(store: &str, tar: &str, c: Compression, threads: usize, name: &str) {
    let store = content::Store::open(store).expect("open the store");
    let lease = store.lease().expect("a lease");
    let tar_len = std::fs::metadata(tar).expect("the tar").len();
    let input = BufReader::with_capacity(1 << 16, File::open(tar).expect("open the tar"));
    let opts = LayerOptions {
        compression: c,
        source_date_epoch: None,
        oci_mediatypes: true,
        use_cache: true,
    };
    let start = Instant::now();
    let (layer, stats) =
        export_tar_with(&store, &lease, input, &opts, Some(threads)).expect("export the layer");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name} threads={threads} secs={secs:.2} mib_s={:.1} blob={} runs={} reused={} peak_rss_mib={:.1} digest={}",
        tar_len as f64 / (1 << 20) as f64 / secs,
        layer.descriptor.size,
        stats.runs,
        stats.reused,
        peak_rss_kib() as f64 / 1024.0,
        layer.descriptor.digest,
    );
}

/// VmHWM of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
