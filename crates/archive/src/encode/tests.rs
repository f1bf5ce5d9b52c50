use super::*;

pub(crate) use testkit::noise;

fn cuts(data: &[u8]) -> Vec<usize> {
    let mut c = Chunker::default();
    let (mut len, mut at, mut out) = (0, 0, Vec::new());
    while at < data.len() {
        // Odd piece sizes: cut points must not depend on them.
        let end = (at + 7919).min(data.len());
        let (n, cut) = c.scan(len, &data[at..end]);
        at += n;
        len += n;
        if cut {
            out.push(at);
            len = 0;
        }
    }
    out
}

#[test]
fn the_gear_table_is_fixed() {
    // Part of the output format: a change here needs a new CODEC_EPOCH.
    assert_eq!(GEAR[0], 0xcbcb_de69_fe8d_d146, "{:#x}", GEAR[0]);
    assert_eq!(GEAR[255], 0x7bc1_5adf_43d1_2068, "{:#x}", GEAR[255]);
}

#[test]
fn runs_respect_their_bounds_and_resynchronise_after_an_edit() {
    let mut data = noise(24 << 20, 1);
    let before = cuts(&data);
    assert!(before.len() > 8, "{before:?}");
    let mut prev = 0;
    for &c in &before {
        assert!((MIN_RUN..=MAX_RUN).contains(&(c - prev)), "{}", c - prev);
        prev = c;
    }
    // Insert 100 bytes in the middle: cut points before it stay, and after it
    // they come back shifted by 100 within a couple of runs.
    let mid = 12 << 20;
    data.splice(mid..mid, std::iter::repeat_n(0xab, 100));
    let after = cuts(&data);
    let kept_before = before.iter().filter(|&&c| c < mid).count();
    assert_eq!(&after[..kept_before], &before[..kept_before]);
    let shifted: Vec<usize> = before
        .iter()
        .filter(|&&c| c > mid)
        .map(|c| c + 100)
        .collect();
    let common = after.iter().filter(|c| shifted.contains(c)).count();
    assert!(common + 2 >= shifted.len(), "{after:?} vs {shifted:?}");
}

#[test]
fn zeros_are_cut_at_a_bound() {
    let c = cuts(&vec![0u8; 10 << 20]);
    assert!(!c.is_empty());
    assert!(c.windows(2).all(|w| w[1] - w[0] == c[0]), "{c:?}");
}

fn encode(data: &[u8], c: Compression, threads: usize, piece: usize) -> (Vec<u8>, Vec<Run>) {
    let mut enc = compress_with(
        Vec::new(),
        c,
        CompressOptions {
            threads: Some(threads),
            runs: None,
        },
    )
    .unwrap();
    for p in data.chunks(piece) {
        enc.write_all(p).unwrap();
    }
    enc.finish_runs().unwrap()
}

#[test]
fn output_does_not_depend_on_threads_or_write_sizes() {
    let mut data = noise(6 << 20, 7);
    data.extend(b"text, text, text\n".repeat(300_000));
    for c in [Compression::GZIP, Compression::ZSTD] {
        let (one, runs) = encode(&data, c, 1, 1 << 20);
        assert!(runs.len() > 3, "{}", runs.len());
        for (threads, piece) in [(2, 512), (3, 65_536), (5, 1_000_003)] {
            let (many, runs2) = encode(&data, c, threads, piece);
            assert!(one == many, "{c:?} with {threads} threads");
            assert_eq!(runs, runs2);
        }
    }
}

#[test]
fn a_short_stream_is_one_member_as_before_runs() {
    // One run is exactly what the single-stream encoder of CODEC_EPOCH 1 made.
    let data = noise(100_000, 3);
    for c in [Compression::GZIP, Compression::ZSTD] {
        let (out, runs) = encode(&data, c, 2, 4096);
        assert_eq!(runs.len(), 1);
        let mut one = Vec::new();
        compress_run(c, &data, &mut one).unwrap();
        assert_eq!(out, one);
    }
}

#[test]
fn an_empty_stream_is_one_empty_member() {
    for c in [Compression::GZIP, Compression::ZSTD] {
        let (out, runs) = encode(&[], c, 2, 1);
        assert_eq!(runs.len(), 1);
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut crate::codec::decompress(&out[..], None).unwrap(),
            &mut back,
        )
        .unwrap();
        assert!(back.is_empty(), "{c:?}");
    }
}

#[test]
fn random_runs_are_stored_and_text_runs_compressed() {
    let random = noise(1 << 20, 5);
    assert!(incompressible(&random));
    let text: Vec<u8> = (0..(1u32 << 20))
        .map(|i| b"the quick brown fox jumps over a lazy dog\n"[(i % 42) as usize])
        .collect();
    assert!(!incompressible(&text));
    // Short runs and runs of one byte are always compressed.
    assert!(!incompressible(&random[..1000]));
    assert!(!incompressible(&vec![0u8; 1 << 20]));
    let mut out = Vec::new();
    compress_run(Compression::GZIP, &random, &mut out).unwrap();
    // Stored blocks: a few bytes per 64 KiB block plus the gzip frame.
    assert!(
        out.len() > random.len() && out.len() < random.len() + 1024,
        "{}",
        out.len()
    );
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&out[..]), &mut back).unwrap();
    assert_eq!(back, random);
    out.clear();
    compress_run(Compression::GZIP, &text, &mut out).unwrap();
    assert!(out.len() < text.len() / 20, "{}", out.len());
    // The gzip header: no name, mtime 0, OS unknown.
    assert_eq!(&out[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&out[4..8], &[0, 0, 0, 0]);
    assert_eq!(out[9], 255);
}

#[test]
fn every_gzip_level_round_trips() {
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i * 7 % 251) as u8 ^ (i >> 9) as u8)
        .collect();
    for level in 0..=MAX_GZIP_LEVEL {
        let mut out = Vec::new();
        compress_run(Compression::Gzip { level }, &data, &mut out).unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&out[..]), &mut back).unwrap();
        assert_eq!(back, data, "level {level}");
    }
}

#[derive(Debug, Default)]
struct Remember(Mutex<std::collections::HashMap<Digest, Vec<u8>>>);

impl RunSource for Remember {
    fn compressed(&self, digest: &Digest, _len: u64, out: &mut Vec<u8>) -> bool {
        match self.0.lock().unwrap().get(digest) {
            Some(b) => {
                out.extend_from_slice(b);
                true
            }
            None => false,
        }
    }
}

/// Compressible pseudo-random text: 16 letters.
fn letters(len: usize, seed: u64) -> Vec<u8> {
    noise(len, seed)
        .into_iter()
        .map(|b| b'a' + (b & 15))
        .collect()
}

#[test]
fn unchanged_runs_come_from_the_source_and_give_the_cold_bytes() {
    let mut data = letters(16 << 20, 11);
    let source = Arc::new(Remember::default());
    let opts = CompressOptions {
        threads: Some(2),
        runs: Some(source.clone()),
    };
    let mut enc = compress_with(Vec::new(), Compression::GZIP, opts.clone()).unwrap();
    enc.write_all(&data).unwrap();
    let (first, runs) = enc.finish_runs().unwrap();
    for r in &runs {
        let bytes = first[r.offset as usize..(r.offset + r.compressed_len) as usize].to_vec();
        source
            .0
            .lock()
            .unwrap()
            .insert(r.digest.clone().unwrap(), bytes);
    }
    data[8 << 20] ^= 1;
    let mut enc = compress_with(Vec::new(), Compression::GZIP, opts).unwrap();
    enc.write_all(&data).unwrap();
    let (warm, runs) = enc.finish_runs().unwrap();
    let fresh = runs.iter().filter(|r| !r.reused).count();
    assert!(fresh <= 3, "{fresh} of {} runs compressed", runs.len());
    let (cold, _) = encode(&data, Compression::GZIP, 1, 1 << 16);
    assert!(warm == cold, "a warm stream equals a cold one");
}

#[test]
fn stored_runs_are_not_hashed_and_compressed_runs_are() {
    let mut data = noise(4 << 20, 12);
    data.extend(letters(4 << 20, 13));
    let opts = CompressOptions {
        threads: Some(1),
        runs: Some(Arc::new(Remember::default())),
    };
    let mut enc = compress_with(Vec::new(), Compression::GZIP, opts).unwrap();
    enc.write_all(&data).unwrap();
    let (_, runs) = enc.finish_runs().unwrap();
    let (mut stored, mut hashed, mut at) = (0, 0, 0);
    for r in &runs {
        let bytes = &data[at..][..r.len as usize];
        at += r.len as usize;
        match incompressible(bytes) {
            true => {
                assert!(r.digest.is_none(), "a stored run is not hashed");
                stored += 1;
            }
            false => {
                assert_eq!(r.digest, Some(Digest::sha256(bytes)));
                hashed += 1;
            }
        }
    }
    assert!(stored > 1 && hashed > 1, "{stored} stored, {hashed} hashed");
}
