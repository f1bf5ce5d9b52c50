//! A per-layer decompression budget: a cap on the uncompressed bytes of a layer and
//! on its compression ratio, checked as the bytes are decompressed.

use std::io::{self, BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec::{Compression, Decoder, decompress};
use crate::error::ArchiveError;

/// Caps on one layer's decompression. Exceeding one is
/// [`ArchiveError::UncompressedTooLarge`] or [`ArchiveError::CompressionRatio`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Uncompressed bytes of the layer, trailing bytes included.
    pub max_uncompressed: u64,
    /// Uncompressed bytes per compressed byte, over the stream read so far.
    pub max_ratio: u64,
    /// The ratio is only checked once this many uncompressed bytes were read (small
    /// layers of zeros compress far better than any real image does at scale).
    pub ratio_after: u64,
}

impl Default for Budget {
    /// Far above any real image: 64 GiB, and 1000:1 once past 16 MiB.
    fn default() -> Self {
        Budget {
            max_uncompressed: 64 << 30,
            max_ratio: 1000,
            ratio_after: 16 << 20,
        }
    }
}

impl Budget {
    /// No limit at all (for streams manifold wrote itself).
    pub fn unlimited() -> Self {
        Budget {
            max_uncompressed: u64::MAX,
            max_ratio: u64::MAX,
            ratio_after: u64::MAX,
        }
    }

    /// Count the compressed bytes of `compressed`; give the returned [`Meter`] the
    /// decompressed stream to check it against this budget.
    pub fn meter<R>(&self, compressed: R) -> (Metered<R>, Meter) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Metered {
                inner: compressed,
                count: count.clone(),
            },
            Meter {
                count,
                budget: self.clone(),
            },
        )
    }
}

/// Counts the compressed bytes a decoder takes from `R`.
#[derive(Debug)]
pub struct Metered<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Metered<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.count.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

/// The compressed side's count, waiting for the decompressed stream.
#[derive(Debug)]
pub struct Meter {
    count: Arc<AtomicU64>,
    budget: Budget,
}

impl Meter {
    pub fn limit<R>(self, decompressed: R) -> Limited<R> {
        Limited {
            inner: decompressed,
            compressed: self.count,
            read: 0,
            budget: self.budget,
        }
    }
}

/// A decompressed stream that fails once past its [`Budget`]. The error is an
/// [`ArchiveError`] inside an [`io::Error`] (see [`ArchiveError::from_stream`]).
#[derive(Debug)]
pub struct Limited<R> {
    inner: R,
    compressed: Arc<AtomicU64>,
    read: u64,
    budget: Budget,
}

impl<R> Limited<R> {
    /// Uncompressed bytes read so far.
    pub fn count(&self) -> u64 {
        self.read
    }

    fn check(&self) -> Result<(), ArchiveError> {
        let compressed = self.compressed.load(Ordering::Relaxed);
        if self.read > self.budget.max_uncompressed {
            return Err(ArchiveError::UncompressedTooLarge {
                layer: None,
                limit: self.budget.max_uncompressed,
                compressed,
            });
        }
        if self.read > self.budget.ratio_after
            && self.read > compressed.saturating_mul(self.budget.max_ratio)
        {
            return Err(ArchiveError::CompressionRatio {
                layer: None,
                ratio: self.budget.max_ratio,
                uncompressed: self.read,
                compressed,
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.check().map_err(io::Error::other)?;
        Ok(n)
    }
}

/// [`decompress`] checked against `budget`.
pub fn decompress_limited<R: BufRead>(
    reader: R,
    compression: Option<Compression>,
    budget: &Budget,
) -> Result<Limited<Decoder<Metered<R>>>, ArchiveError> {
    let (metered, meter) = budget.meter(reader);
    Ok(meter.limit(decompress(metered, compression)?))
}
