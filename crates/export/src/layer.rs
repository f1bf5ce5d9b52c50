//! Layer blobs: a change list (or an uncompressed tar stream) → a compressed blob in
//! the store, with its diff_id.
//!
//! The data path is streamed: tar writer → sha256 of the uncompressed bytes (the
//! diff_id) → compressor → the store's [`content::BlobWriter`] on a thread of its
//! own (a temp file under `ingest/`, verified and renamed on commit). No copy of the whole layer is held in
//! memory.
//!
//! **Determinism**: the compressed bytes are a pure function of the uncompressed tar
//! and [`Compression`]. `archive::compress_with` cuts the tar into content-defined
//! runs and writes each as one gzip member or zstd frame with fixed headers, compressed
//! on a thread pool and written in order; nothing depends on the thread count, the
//! time or the caches. A layer cache hit returns the blob a cold export of the same tar
//! made earlier with the same options and codec epoch ([`crate::LayerCache`]); a run
//! index hit copies one run's member out of an earlier blob ([`crate::runs_dir`]), the
//! bytes a cold export makes for that run. Warm and cold give the same digest.

use std::io::{self, Read, Write};

use archive::{Change, WriteOptions};
use content::{Lease, Store};
use oci::{Algorithm, Descriptor, Digest, Hasher, media};

use crate::cache::LayerCache;
pub use crate::desc::{Compression, DEFAULT_GZIP_LEVEL, DOCKER_LAYER_TAR, LayerDesc, LayerOptions};
use crate::error::{ExportError, Result};
use crate::runs::RunIndex;
use crate::tap::LayerTap;

/// What compressing a layer did: runs written, and how many of them were copied
/// from earlier blobs instead of compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompressStats {
    /// Runs in the blob (gzip members or zstd frames); 0 uncompressed.
    pub runs: usize,
    /// Runs whose compressed bytes came from the run index.
    pub reused: usize,
}

/// Write `changes` as a layer blob into `store` under `lease`.
///
/// Returns `None` when there are no changes: like BuildKit, an empty layer is not
/// written, and [`crate::assemble_image`] marks its history entry `empty_layer`.
///
/// With the cache on, the tar is written twice: once only to hash it (the diff_id is
/// the cache key), then, on a miss, through the compressor into the store. A hit
/// costs one hashing pass and no compression. If the second pass hashes differently
/// (a file changed in between), the export fails with
/// [`ExportError::LayerChanged`] and nothing is recorded.
pub fn export_layer(
    store: &Store,
    lease: &Lease,
    changes: Vec<Change>,
    opts: &LayerOptions,
) -> Result<Option<LayerDesc>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let wopts = WriteOptions {
        source_date_epoch: opts.source_date_epoch,
    };
    let cache = LayerCache::for_store(store);
    let mut first = None;
    if opts.use_cache {
        let mut hw = HashingWriter::new(io::sink());
        archive::write_layer(&mut hw, changes.clone(), &wopts)?;
        let (diff_id, _, _) = hw.finish();
        if let Some(d) = cache.get(store, lease, &diff_id, opts)? {
            return Ok(Some(d));
        }
        first = Some(diff_id);
    }
    let (diff_id, digest, size, _) =
        compress_into(store, lease, opts.compression, None, None, |w| {
            archive::write_layer(w, changes, &wopts).map(|_| ())
        })?;
    if let Some(first) = first
        && first != diff_id
    {
        return Err(ExportError::LayerChanged {
            first,
            second: diff_id,
        });
    }
    finish(&cache, opts, diff_id, digest, size).map(Some)
}

/// Write `changes` as a layer blob in one pass, its bytes also given to `tap`.
///
/// For changes that were never exported (a step that just ran): unlike
/// [`export_layer`], the layer cache is not consulted first, which would cost a
/// second pass over the files that only a layer exported before can repay; the run
/// index still spares compressing the runs an earlier blob has. With `use_cache`,
/// the layer is recorded for later [`export_layer`] calls. The blob is the one
/// [`export_layer`] makes.
pub fn export_layer_once(
    store: &Store,
    lease: &Lease,
    changes: Vec<Change>,
    opts: &LayerOptions,
    tap: Option<&dyn LayerTap>,
) -> Result<Option<LayerDesc>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let wopts = WriteOptions {
        source_date_epoch: opts.source_date_epoch,
    };
    let (diff_id, digest, size, _) =
        compress_into(store, lease, opts.compression, None, tap, |w| {
            archive::write_layer(w, changes, &wopts).map(|_| ())
        })?;
    finish(&LayerCache::for_store(store), opts, diff_id, digest, size).map(Some)
}

/// Write an uncompressed layer tar read from `tar` as a layer blob.
///
/// One pass: the stream is hashed and compressed as it is read, so the cache is only
/// recorded, never consulted, and the tar is taken as it is (entries, order and
/// metadata are the producer's).
pub fn export_tar(
    store: &Store,
    lease: &Lease,
    tar: impl Read,
    opts: &LayerOptions,
) -> Result<LayerDesc> {
    export_tar_with(store, lease, tar, opts, None).map(|(l, _)| l)
}

/// [`export_tar`] on `threads` compression threads (`None`: the available
/// parallelism), also returning what the compression did. The blob does not depend
/// on `threads`.
pub fn export_tar_with(
    store: &Store,
    lease: &Lease,
    mut tar: impl Read,
    opts: &LayerOptions,
    threads: Option<usize>,
) -> Result<(LayerDesc, CompressStats)> {
    let (diff_id, digest, size, stats) =
        compress_into(store, lease, opts.compression, threads, None, |w| {
            io::copy(&mut tar, w)
                .map(|_| ())
                .map_err(archive::ArchiveError::Write)
        })?;
    let layer = finish(&LayerCache::for_store(store), opts, diff_id, digest, size)?;
    Ok((layer, stats))
}

fn finish(
    cache: &LayerCache,
    opts: &LayerOptions,
    diff_id: Digest,
    digest: Digest,
    size: u64,
) -> Result<LayerDesc> {
    if opts.use_cache {
        cache.put(&diff_id, opts.compression, &digest, size)?;
    }
    Ok(LayerDesc {
        descriptor: Descriptor::new(
            opts.compression.media_type(opts.oci_mediatypes),
            digest,
            size,
        ),
        diff_id,
        from_cache: false,
    })
}

/// Run `produce` into hasher → compressor (runs on `threads`, unchanged runs copied
/// through the run index) → blob writer (and `tap`); returns (diff_id, blob digest,
/// blob size, stats). The new blob's runs are recorded in the index.
fn compress_into(
    store: &Store,
    lease: &Lease,
    compression: Compression,
    threads: Option<usize>,
    tap: Option<&dyn LayerTap>,
    produce: impl FnOnce(
        &mut HashedOffThread<archive::Encoder<Sink>>,
    ) -> Result<(), archive::ArchiveError>,
) -> Result<(Digest, Digest, u64, CompressStats)> {
    let index = match compression {
        Compression::Uncompressed => None,
        _ => Some(std::sync::Arc::new(RunIndex::new(store, compression))),
    };
    let copts = archive::CompressOptions {
        threads,
        runs: index
            .clone()
            .map(|i| i as std::sync::Arc<dyn archive::RunSource>),
    };
    let mut blob = store.writer(None)?;
    let mut tap = tap.and_then(|t| t.begin(blob.file()));
    let (diff_id, runs, digest, size) = std::thread::scope(|s| {
        // The blob is hashed and written on its own thread, beside the one that
        // makes, hashes and cuts the tar.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(WRITES_IN_FLIGHT);
        let writer = s.spawn(move || -> Result<_> {
            for bytes in rx {
                blob.write(&bytes)?;
                if let Some(tap) = &mut tap {
                    tap.written(blob.written());
                }
            }
            Ok((blob, tap))
        });
        // The tar's digest (the diff_id) is taken on a thread of its own too: the
        // thread that makes the tar and cuts it into runs is the export's slowest
        // when the runs' compressed bytes are reused.
        let (hash_tx, hash_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_CHUNKS_IN_FLIGHT);
        let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let hasher = s.spawn(move || {
            let mut h = Hasher::new(Algorithm::Sha256);
            for mut chunk in hash_rx {
                h.update(&chunk);
                chunk.clear();
                // The writer may be gone; the buffer is then dropped.
                let _ = spare_tx.send(chunk);
            }
            h.finish()
        });
        let produced = (|| {
            let encoder = archive::compress_with(Sink(tx), compression.codec(), copts)?;
            let mut hw = HashedOffThread {
                inner: encoder,
                chunk: Vec::with_capacity(HASH_CHUNK),
                to_hasher: hash_tx,
                spare: spare_rx,
            };
            produce(&mut hw)?;
            let encoder = hw.finish().map_err(archive::ArchiveError::Write)?;
            let (_sink, runs) = encoder.finish_runs()?;
            Ok::<_, ExportError>(runs)
        })();
        // The hasher's sender is gone (with `hw`): it ends.
        let diff_id = hasher.join().expect("the tar hasher does not panic");
        let produced = produced.map(|runs| (diff_id, runs));
        // The sender is gone: the writer ends. Its error explains a failed send.
        let (blob, tap) = writer.join().expect("the blob writer does not panic")?;
        let (diff_id, runs) = produced?;
        // The registry closes a tapped upload while the store syncs the blob.
        if let Some(tap) = tap {
            tap.commit(&blob.digest(), blob.written());
        }
        let (digest, size) = blob.commit(lease)?;
        Ok::<_, ExportError>((diff_id, runs, digest, size))
    })?;
    if let Some(index) = index {
        index.record(&digest, &runs)?;
    }
    let stats = CompressStats {
        runs: runs.len(),
        reused: runs.iter().filter(|r| r.reused).count(),
    };
    Ok((diff_id, digest, size, stats))
}

/// Re-exported: the compressor's block size is part of [`crate::CODEC_EPOCH`].
pub use archive::COMPRESS_CHUNK;

/// Compressed runs queued for the blob's writer thread (besides the one it writes).
const WRITES_IN_FLIGHT: usize = 1;

/// Bytes of tar handed to the diff_id's hasher at once, and how many such chunks may
/// wait for it.
const HASH_CHUNK: usize = 256 << 10;
const HASH_CHUNKS_IN_FLIGHT: usize = 2;

/// Passes writes to `inner` and their bytes, in order and in chunks, to a hasher on
/// another thread. Dropping it (or [`HashedOffThread::finish`]) ends the hasher's
/// input.
struct HashedOffThread<W> {
    inner: W,
    chunk: Vec<u8>,
    to_hasher: std::sync::mpsc::SyncSender<Vec<u8>>,
    /// Chunks the hasher is done with, to fill again.
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl<W> HashedOffThread<W> {
    fn hand_over(&mut self) -> io::Result<()> {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(HASH_CHUNK));
        let full = std::mem::replace(&mut self.chunk, next);
        self.to_hasher
            .send(full)
            .map_err(|_| io::Error::other("the tar hasher stopped"))
    }

    /// Hand over the last bytes; return the inner writer.
    fn finish(mut self) -> io::Result<W> {
        if !self.chunk.is_empty() {
            self.hand_over()?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for HashedOffThread<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() >= HASH_CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `io::Write` into the channel of the blob's writer thread.
struct Sink(std::sync::mpsc::SyncSender<Vec<u8>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::other("the blob writer stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hashes (sha256) and counts every byte written through it.
#[derive(Debug)]
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(Algorithm::Sha256),
            count: 0,
        }
    }

    pub(crate) fn finish(self) -> (Digest, u64, W) {
        (self.hasher.finish(), self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The codec of a layer media type, OCI or Docker (`archive`'s own mapping misses
/// Docker's `.tar.zstd`).
pub(crate) fn codec_of(media_type: &str) -> Option<archive::Compression> {
    match media::kind(media_type) {
        media::Kind::Layer(media::Compression::None) => Some(archive::Compression::None),
        media::Kind::Layer(media::Compression::Gzip) => Some(archive::Compression::GZIP),
        media::Kind::Layer(media::Compression::Zstd) => Some(archive::Compression::ZSTD),
        _ if media_type == DOCKER_LAYER_TAR => Some(archive::Compression::None),
        _ => None,
    }
}

/// The same layer media type in the other family (OCI ↔ Docker), for base layers
/// of an image exported with the other family; other types are kept.
pub fn convert_layer_media_type(media_type: &str, oci_mediatypes: bool) -> String {
    const PAIRS: [(&str, &str); 4] = [
        (media::OCI_LAYER_GZIP, media::DOCKER_LAYER_GZIP),
        (media::OCI_LAYER_ZSTD, media::DOCKER_LAYER_ZSTD),
        (media::OCI_LAYER_TAR, DOCKER_LAYER_TAR),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            media::DOCKER_LAYER_FOREIGN,
        ),
    ];
    for (oci, docker) in PAIRS {
        if oci_mediatypes && media_type == docker {
            return oci.to_owned();
        }
        if !oci_mediatypes && media_type == oci {
            return docker.to_owned();
        }
    }
    media_type.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_follow_compression_and_family() {
        assert_eq!(Compression::GZIP.media_type(true), media::OCI_LAYER_GZIP);
        assert_eq!(
            Compression::ZSTD.media_type(false),
            media::DOCKER_LAYER_ZSTD
        );
        assert_eq!(
            Compression::Uncompressed.media_type(false),
            DOCKER_LAYER_TAR
        );
        assert_eq!(
            convert_layer_media_type(media::DOCKER_LAYER_GZIP, true),
            media::OCI_LAYER_GZIP
        );
        assert_eq!(
            convert_layer_media_type(media::OCI_LAYER_ZSTD, false),
            media::DOCKER_LAYER_ZSTD
        );
        assert_eq!(convert_layer_media_type("text/plain", true), "text/plain");
    }

    #[test]
    fn cache_keys_clamp_gzip_levels_like_the_codec() {
        assert_eq!(Compression::Gzip { level: 12 }.key(), "gzip-9");
        assert_eq!(Compression::ZSTD.key(), "zstd-3");
        assert_eq!(Compression::Uncompressed.key(), "none");
        for c in [
            Compression::Uncompressed,
            Compression::GZIP,
            Compression::DEFAULT,
            Compression::Zstd { level: 19 },
            Compression::Zstd { level: -3 },
        ] {
            assert_eq!(Compression::from_key(&c.key()), Some(c));
            let wire = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Compression>(&wire).unwrap(), c);
        }
        for bad in ["", "gzip", "gzip-x", "lz4-1", "zstd-"] {
            assert_eq!(Compression::from_key(bad), None, "{bad}");
        }
    }
}
