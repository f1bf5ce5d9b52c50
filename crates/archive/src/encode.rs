//! Layer compression in runs.
//!
//! The uncompressed stream is cut into runs at content-defined boundaries (a gear
//! rolling hash over the last 64 bytes, [`MIN_RUN`] ≤ run ≤ [`MAX_RUN`], about 768 KiB
//! on average). Each run becomes one complete gzip member or zstd frame, compressed
//! single-threaded with fixed headers; runs are compressed in parallel and written in
//! order. The result is a multi-member gzip or multi-frame zstd stream, which every
//! gzip/zstd reader decodes as the concatenation of the runs.
//!
//! **Invariant**: the output is a pure function of the input bytes and the
//! [`Compression`]: cut points depend only on the bytes (never on write sizes, thread
//! count or timing), each run's bytes only on the run, and runs are written in input
//! order. A run taken from a [`RunSource`] must be what compressing it would give.
//!
//! A run's boundaries depend only on its own bytes and the previous boundary, and an
//! edit moves boundaries only until the hash resynchronises (usually at the next cut
//! after the edit), so an edit in one file of a large layer changes one to three runs:
//! with a [`RunSource`] the unchanged runs' compressed bytes are copied, not made
//! again.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use oci::Digest;

use crate::codec::Compression;
use crate::error::ArchiveError;

/// The size of every write a codec sees within a run (but the last).
///
/// flate2's gzip encoder (on zlib-rs) emits different bytes for the same input
/// written in different pieces (e.g. 512-byte tar headers vs 8 KiB copies), so each
/// run reaches the codec in blocks of exactly this size. Changing it changes gzip
/// output.
pub const COMPRESS_CHUNK: usize = 64 * 1024;

/// No run is shorter (but the last of a stream).
pub const MIN_RUN: usize = 256 * 1024;

/// No run is longer: a run is cut here when the hash finds no boundary (about 3% of
/// runs in random data).
pub const MAX_RUN: usize = 2 * 1024 * 1024;

/// The largest member or frame a run of [`MAX_RUN`] bytes compresses to (stored
/// deflate blocks and raw zstd blocks add a few bytes per block), with room to spare.
pub const MAX_COMPRESSED_RUN: usize = MAX_RUN + MAX_RUN / 8 + 4096;

/// A boundary follows a byte when the top this-many bits of the rolling hash are
/// zero: one position in 2^19, so runs average about `MIN_RUN` + 512 KiB.
const BOUNDARY_BITS: u32 = 19;

/// The gear hash sees the last 64 bytes: older bytes are shifted out of the u64.
const WINDOW: usize = 64;

/// At most this many uncompressed bytes are handed to threads and not yet written
/// (and at most one run per thread, plus one).
const MAX_IN_FLIGHT: usize = 32 * 1024 * 1024;

/// More threads than this would wait on [`MAX_IN_FLIGHT`] anyway.
const MAX_THREADS: usize = 16;

/// The gear table: 256 fixed pseudo-random words (splitmix64 from a fixed seed).
/// Part of the output format: changing it moves every cut point.
const GEAR: [u64; 256] = gear_table();

const fn gear_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut state: u64 = 0x6d61_6e69_666f_6c64; // "manifold"
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
}

/// Finds run boundaries: a gear hash that restarts at every cut.
#[derive(Debug, Default)]
struct Chunker {
    hash: u64,
}

impl Chunker {
    /// How many bytes of `buf` belong to the current run, `len` bytes long so far,
    /// and whether the run ends after them.
    fn scan(&mut self, len: usize, buf: &[u8]) -> (usize, bool) {
        let mut pos = len;
        let mut i = 0;
        // Bytes before the first window that can end a run are not hashed: they
        // would be shifted out before any boundary test.
        let hash_from = MIN_RUN - WINDOW;
        if pos < hash_from {
            let skip = (hash_from - pos).min(buf.len());
            i += skip;
            pos += skip;
        }
        while i < buf.len() {
            self.hash = (self.hash << 1).wrapping_add(GEAR[buf[i] as usize]);
            i += 1;
            pos += 1;
            if (pos >= MIN_RUN && self.hash >> (64 - BOUNDARY_BITS) == 0) || pos == MAX_RUN {
                self.hash = 0;
                return (i, true);
            }
        }
        (i, false)
    }
}

/// Where the compressed bytes of earlier runs can be found.
///
/// **Contract**: [`RunSource::compressed`] returns exactly the bytes this module
/// would make for the run (same codec, level and format epoch), or `None`.
pub trait RunSource: Send + Sync + std::fmt::Debug {
    /// Put the compressed bytes of the run of `len` bytes whose sha256 is `digest`
    /// into the empty `out` and return true, or return false (`out` is then ignored).
    fn compressed(&self, digest: &Digest, len: u64, out: &mut Vec<u8>) -> bool;
}

/// Options of [`compress_with`]. None of them changes the output bytes.
#[derive(Debug, Clone, Default)]
pub struct CompressOptions {
    /// Compression threads; `None`: the available parallelism (at most 16). They
    /// start at the stream's first cut: a stream of one run is compressed on the
    /// writing thread.
    pub threads: Option<usize>,
    /// Earlier runs to copy instead of compressing. Runs are hashed (sha256) only
    /// when this is set.
    pub runs: Option<Arc<dyn RunSource>>,
}

/// One run of a compressed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// sha256 of the uncompressed run, when [`CompressOptions::runs`] is set and the
    /// run is compressed (stored gzip runs are not looked up: storing is cheaper).
    pub digest: Option<Digest>,
    /// Uncompressed length.
    pub len: u64,
    /// Where the run's member or frame starts in the output.
    pub offset: u64,
    /// Its compressed length.
    pub compressed_len: u64,
    /// Whether its bytes came from the [`RunSource`].
    pub reused: bool,
}

/// The number of compression threads `compress` uses by default.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(MAX_THREADS)
}

/// Compress into `out` with the default options (no run source). The bytes written
/// depend only on the input and `c`.
pub fn compress<W: Write>(out: W, c: Compression) -> Result<Encoder<W>, ArchiveError> {
    compress_with(out, c, CompressOptions::default())
}

/// Compress into `out`, in runs, on `opts.threads` threads, copying runs that
/// `opts.runs` already has. The bytes written depend only on the input and `c`.
pub fn compress_with<W: Write>(
    out: W,
    c: Compression,
    opts: CompressOptions,
) -> Result<Encoder<W>, ArchiveError> {
    // Fail early on options the codec refuses (the runs would fail later).
    if !matches!(c, Compression::None) {
        compress_run(c, &[], &mut Vec::new()).map_err(ArchiveError::Write)?;
    }
    let threads = opts
        .threads
        .unwrap_or_else(default_threads)
        .clamp(1, MAX_THREADS);
    Ok(Encoder {
        out,
        c,
        run: Vec::new(),
        chunker: Chunker::default(),
        threads,
        // One run per thread, and the next one waiting: each run in flight holds
        // an input and an output buffer of up to ~2 MiB.
        budget: MAX_IN_FLIGHT.min((threads + 1) * MAX_RUN),
        max_runs: threads + 1,
        spare_in: Vec::new(),
        spare_out: Vec::new(),
        source: opts.runs,
        pool: None,
        submitted: 0,
        pending: BTreeMap::new(),
        in_flight: 0,
        offset: 0,
        runs: Vec::new(),
    })
}

/// A compressing writer; [`Encoder::finish`] ends the stream and returns the writer.
///
/// **Invariant**: the bytes produced depend only on the bytes written and the
/// [`Compression`], never on how the writes were split, the thread count or the
/// run source; `flush` does not flush the compressor.
pub struct Encoder<W: Write> {
    out: W,
    c: Compression,
    /// The run being filled.
    run: Vec<u8>,
    chunker: Chunker,
    threads: usize,
    /// Bytes of runs that may be submitted and not yet written.
    budget: usize,
    /// Runs that may be submitted and not yet written.
    max_runs: usize,
    /// Buffers of written runs, used again: memory stays at what the runs in flight
    /// need.
    spare_in: Vec<Vec<u8>>,
    spare_out: Vec<Vec<u8>>,
    source: Option<Arc<dyn RunSource>>,
    /// Started at the first cut. Compression state is never allocated on the
    /// writing thread for long streams: interleaved with the writer's small
    /// allocations, freed deflate windows fragmented glibc's main arena (230 MiB
    /// peak RSS for 512 MiB of tar on one thread, against 9 MiB on workers).
    pool: Option<Pool>,
    /// Runs handed out so far (inline or to the pool); `runs.len()` are written.
    submitted: u64,
    /// Finished runs waiting for an earlier one.
    pending: BTreeMap<u64, Done>,
    in_flight: usize,
    offset: u64,
    runs: Vec<Run>,
}

impl<W: Write> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("compression", &self.c)
            .field("threads", &self.threads)
            .field("runs", &self.runs.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> Encoder<W> {
    /// Write the last run and return the writer.
    pub fn finish(self) -> Result<W, ArchiveError> {
        self.finish_runs().map(|(w, _)| w)
    }

    /// Write the last run; return the writer and the runs written, in order (none
    /// for [`Compression::None`]).
    pub fn finish_runs(mut self) -> Result<(W, Vec<Run>), ArchiveError> {
        if !matches!(self.c, Compression::None) {
            // An empty input still makes one (empty) member, a valid gzip file.
            if !self.run.is_empty() || self.submitted == 0 {
                let last = std::mem::take(&mut self.run);
                self.dispatch(last, true).map_err(ArchiveError::Write)?;
            }
            while (self.runs.len() as u64) < self.submitted {
                self.wait_one().map_err(ArchiveError::Write)?;
            }
            if let Some(pool) = self.pool.take() {
                pool.join().map_err(ArchiveError::Write)?;
            }
        }
        Ok((self.out, self.runs))
    }

    /// Compress `data` inline or hand it to the pool.
    fn dispatch(&mut self, data: Vec<u8>, last: bool) -> io::Result<()> {
        let out = self.spare_out.pop().unwrap_or_default();
        if last && self.pool.is_none() {
            let seq = self.submitted;
            self.submitted += 1;
            let done = process(self.c, self.source.as_deref(), data, out)?;
            self.pending.insert(seq, done);
            return self.write_ready();
        }
        if self.pool.is_none() {
            self.pool = Some(Pool::start(self.threads, self.c, self.source.clone())?);
        }
        while self.in_flight > 0
            && (self.in_flight + data.len() > self.budget
                || self.submitted - self.runs.len() as u64 >= self.max_runs as u64)
        {
            self.wait_one()?;
        }
        self.in_flight += data.len();
        let seq = self.submitted;
        self.submitted += 1;
        self.pool
            .as_ref()
            .expect("the pool was started above")
            .send(Job { seq, data, out })
    }

    /// Wait for one run from the pool, then write what is ready.
    fn wait_one(&mut self) -> io::Result<()> {
        let pool = self
            .pool
            .as_ref()
            .expect("runs are only outstanding when the pool runs");
        let (seq, done) = pool.recv()?;
        self.pending.insert(seq, done?);
        self.write_ready()
    }

    /// Write finished runs in order, as far as they are contiguous.
    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(mut done) = self.pending.remove(&(self.runs.len() as u64)) {
            self.out.write_all(&done.bytes)?;
            if self.pool.is_some() {
                self.in_flight -= done.len as usize;
            }
            let compressed_len = done.bytes.len() as u64;
            done.input.clear();
            done.bytes.clear();
            self.spare_in.push(std::mem::take(&mut done.input));
            self.spare_out.push(std::mem::take(&mut done.bytes));
            self.runs.push(Run {
                digest: done.digest,
                len: done.len,
                offset: self.offset,
                compressed_len,
                reused: done.reused,
            });
            self.offset += compressed_len;
        }
        Ok(())
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if matches!(self.c, Compression::None) {
            return self.out.write(buf);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.run.capacity() == 0 {
            // A written run's buffer, or a new one (its pages are touched as it fills).
            self.run = self
                .spare_in
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(MAX_RUN));
        }
        let (n, cut) = self.chunker.scan(self.run.len(), buf);
        self.run.extend_from_slice(&buf[..n]);
        if cut {
            let run = std::mem::take(&mut self.run);
            self.dispatch(run, false)?;
        }
        Ok(n)
    }

    /// Buffered bytes stay buffered: flushing the compressor would change its output.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A finished run.
#[derive(Debug)]
struct Done {
    len: u64,
    digest: Option<Digest>,
    /// The uncompressed bytes' buffer, to be used again.
    input: Vec<u8>,
    bytes: Vec<u8>,
    reused: bool,
}

struct Job {
    seq: u64,
    data: Vec<u8>,
    /// An empty buffer for the output.
    out: Vec<u8>,
}

/// Hash `data` (with a source), take its compressed bytes from the source or
/// compress it, into `out`.
fn process(
    c: Compression,
    source: Option<&dyn RunSource>,
    data: Vec<u8>,
    mut out: Vec<u8>,
) -> io::Result<Done> {
    let len = data.len() as u64;
    let stored = stored(c, &data);
    // A stored run costs less to store again than to hash and look up.
    let digest = source.filter(|_| !stored).map(|_| Digest::sha256(&data));
    out.clear();
    if out.capacity() == 0 {
        // Never grown by copying; pages are touched as it fills.
        out.reserve_exact(MAX_COMPRESSED_RUN);
    }
    // Short runs (a stream's last) are cheap to compress and rarely repeat.
    let reused = match (source, &digest) {
        (Some(source), Some(digest)) if data.len() >= MIN_RUN => {
            source.compressed(digest, len, &mut out)
        }
        _ => false,
    };
    if !reused {
        out.clear();
        encode_run(c, &data, &mut out, stored)?;
    }
    Ok(Done {
        len,
        digest,
        input: data,
        bytes: out,
        reused,
    })
}

/// Whether run `data` is stored rather than compressed: gzip runs that look
/// [`incompressible`].
fn stored(c: Compression, data: &[u8]) -> bool {
    matches!(c, Compression::Gzip { .. }) && incompressible(data)
}

/// Append one complete gzip member or zstd frame for `data` to `out`.
pub(crate) fn compress_run(c: Compression, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    encode_run(c, data, out, stored(c, data))
}

/// [`compress_run`] with the [`stored`] decision made.
fn encode_run(c: Compression, data: &[u8], out: &mut Vec<u8>, stored: bool) -> io::Result<()> {
    match c {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip { level } => {
            let level = if stored { 0 } else { level.min(MAX_GZIP_LEVEL) };
            gzip_member(level, data, out)?;
        }
        Compression::Zstd { level } => {
            let mut z = zstd::stream::write::Encoder::new(&mut *out, level)?;
            z.include_checksum(false)?;
            for block in data.chunks(COMPRESS_CHUNK) {
                z.write_all(block)?;
            }
            z.finish()?;
        }
    }
    Ok(())
}

/// The highest gzip level (libdeflate's scale: 1 fastest, 6 medium, 12 slowest).
pub const MAX_GZIP_LEVEL: u32 = 12;

/// Append one gzip member of `data` at libdeflate `level` (0 = stored blocks) to
/// `out`: header with mtime 0 and OS 255 (unknown), as before.
///
/// libdeflate compresses whole buffers, which is what a run is, and is two to
/// three times faster than zlib at a similar ratio (docs/benchmarks.md). Its output
/// depends only on the input, the level and libdeflate's version (pinned, bundled
/// source), not on the CPU's features: the SIMD paths only find the same matches
/// faster.
fn gzip_member(level: u32, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    thread_local! {
        /// One compressor per thread and level: allocating one costs more than a
        /// small run's compression.
        static COMPRESSOR: std::cell::RefCell<Option<(u32, libdeflater::Compressor)>> =
            const { std::cell::RefCell::new(None) };
    }
    let lvl = libdeflater::CompressionLvl::new(level as i32).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gzip level {level} is out of range 0-{MAX_GZIP_LEVEL}"),
        )
    })?;
    COMPRESSOR.with_borrow_mut(|slot| {
        let c = match slot {
            Some((l, c)) if *l == level => c,
            _ => &mut slot.insert((level, libdeflater::Compressor::new(lvl))).1,
        };
        let start = out.len();
        out.resize(start + c.gzip_compress_bound(data.len()), 0);
        let n = c
            .gzip_compress(data, &mut out[start..])
            .map_err(|e| io::Error::other(format!("gzip compression failed: {e:?}")))?;
        out.truncate(start + n);
        Ok(())
    })
}

/// Whether `data` looks incompressible (random bytes, or data compressed already):
/// its byte histogram is within 1/64 of flat, measured by the collision sum
/// (Σ count² · 256 ≤ N² · 65/64; a flat histogram gives N² · (1 + 256/N), text
/// several times N²). Such a run is stored rather than compressed: deflate would
/// spend its time finding nothing and emit stored blocks anyway. Integer arithmetic
/// only, so the decision, and so the output, is the same on every machine. Runs
/// under 64 KiB are always compressed.
pub(crate) fn incompressible(data: &[u8]) -> bool {
    if data.len() < 64 * 1024 {
        return false;
    }
    // Four tables break the store-to-load dependency on repeated bytes.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        counts[0][q[0] as usize] += 1;
        counts[1][q[1] as usize] += 1;
        counts[2][q[2] as usize] += 1;
        counts[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        counts[0][b as usize] += 1;
    }
    let collisions: u128 = (0..256)
        .map(|i| {
            let c = u128::from(counts[0][i] + counts[1][i] + counts[2][i] + counts[3][i]);
            c * c
        })
        .sum();
    let n = data.len() as u128;
    collisions * 256 * 64 <= n * n * 65
}

/// Compression threads for one stream. Dropping it closes the job queue; the
/// threads end after their current run.
struct Pool {
    jobs: mpsc::Sender<Job>,
    results: mpsc::Receiver<(u64, io::Result<Done>)>,
    handles: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(
        threads: usize,
        c: Compression,
        source: Option<Arc<dyn RunSource>>,
    ) -> io::Result<Pool> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, results) = mpsc::channel();
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let job_rx = Arc::clone(&job_rx);
            let result_tx = result_tx.clone();
            let source = source.clone();
            let handle = std::thread::Builder::new()
                .name(format!("compress-{i}"))
                .spawn(move || worker(&job_rx, &result_tx, c, source.as_deref()))?;
            handles.push(handle);
        }
        Ok(Pool {
            jobs,
            results,
            handles,
        })
    }

    fn send(&self, job: Job) -> io::Result<()> {
        self.jobs
            .send(job)
            .map_err(|_| io::Error::other("compression threads ended early"))
    }

    fn recv(&self) -> io::Result<(u64, io::Result<Done>)> {
        self.results
            .recv()
            .map_err(|_| io::Error::other("compression threads ended early"))
    }

    fn join(self) -> io::Result<()> {
        drop(self.jobs);
        for h in self.handles {
            h.join()
                .map_err(|_| io::Error::other("a compression thread panicked"))?;
        }
        Ok(())
    }
}

fn worker(
    jobs: &Mutex<mpsc::Receiver<Job>>,
    results: &mpsc::Sender<(u64, io::Result<Done>)>,
    c: Compression,
    source: Option<&dyn RunSource>,
) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Job { seq, data, out }) = job else {
            return;
        };
        let done = catch_unwind(AssertUnwindSafe(|| process(c, source, data, out)))
            .unwrap_or_else(|_| Err(io::Error::other("a compression thread panicked")));
        if results.send((seq, done)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
