//! Layer codecs (gzip, zstd, none): decompression and a hashing reader.
//! Compression is in `encode.rs`.
//!
//! Decompression accepts concatenated gzip members and zstd frames (the compressor
//! writes one per run).

use std::io::{self, BufRead, Read};

use oci::{Algorithm, Digest, Hasher};

use crate::error::ArchiveError;

/// A layer's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    None,
    Gzip { level: u32 },
    Zstd { level: i32 },
}

impl Compression {
    /// gzip at the level docker and BuildKit default to.
    pub const GZIP: Compression = Compression::Gzip { level: 6 };
    /// zstd at the level BuildKit defaults to.
    pub const ZSTD: Compression = Compression::Zstd { level: 3 };

    /// The compression a layer media type names (`+gzip`, `+zstd`, `.tar`); `None`
    /// for a media type that names no tar layer.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        // One classification of layer media types for the whole project.
        match oci::media::kind(media_type.trim()) {
            oci::media::Kind::Layer(oci::media::Compression::Gzip) => Some(Compression::GZIP),
            oci::media::Kind::Layer(oci::media::Compression::Zstd) => Some(Compression::ZSTD),
            oci::media::Kind::Layer(oci::media::Compression::None) => Some(Compression::None),
            _ => None,
        }
    }

    /// The compression of a stream starting with `magic`. bzip2 and xz are
    /// recognised and refused; anything else is taken as an uncompressed tar.
    pub fn sniff(magic: &[u8]) -> Result<Compression, ArchiveError> {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::GZIP)
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::ZSTD)
        } else if magic.starts_with(b"BZh") {
            Err(ArchiveError::UnsupportedCompression {
                format: "bzip2".into(),
            })
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err(ArchiveError::UnsupportedCompression {
                format: "xz".into(),
            })
        } else {
            Ok(Compression::None)
        }
    }
}

/// A decompressing reader that gives its inner reader back.
#[derive(Debug)]
pub struct Decoder<R: BufRead> {
    inner: DecoderKind<R>,
}

enum DecoderKind<R: BufRead> {
    None(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> std::fmt::Debug for DecoderKind<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecoderKind::None(_) => "None",
            DecoderKind::Gzip(_) => "Gzip",
            DecoderKind::Zstd(_) => "Zstd",
        })
    }
}

impl<R: BufRead> Decoder<R> {
    /// The underlying (compressed) reader.
    pub fn into_inner(self) -> R {
        match self.inner {
            DecoderKind::None(r) => r,
            DecoderKind::Gzip(d) => (*d).into_inner(),
            DecoderKind::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            DecoderKind::None(r) => r.read(buf),
            DecoderKind::Gzip(d) => d.read(buf),
            DecoderKind::Zstd(d) => d.read(buf),
        }
    }
}

/// Decompress `reader` as `compression`, or as sniffed from its first bytes when
/// `compression` is `None` (no media type known).
pub fn decompress<R: BufRead>(
    mut reader: R,
    compression: Option<Compression>,
) -> Result<Decoder<R>, ArchiveError> {
    let compression = match compression {
        Some(c) => c,
        None => {
            let magic = reader
                .fill_buf()
                .map_err(|e| ArchiveError::Tar {
                    after: String::new(),
                    source: e,
                })?
                .to_vec();
            Compression::sniff(&magic)?
        }
    };
    let inner = match compression {
        Compression::None => DecoderKind::None(reader),
        Compression::Gzip { .. } => {
            DecoderKind::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
        }
        Compression::Zstd { .. } => DecoderKind::Zstd(
            zstd::stream::read::Decoder::with_buffer(reader).map_err(|e| {
                ArchiveError::UnsupportedCompression {
                    format: format!("zstd ({e})"),
                }
            })?,
        ),
    };
    Ok(Decoder { inner })
}

/// Hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R> std::fmt::Debug for HashingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingReader")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<R: Read> HashingReader<R> {
    /// A sha256 hashing reader.
    pub fn new(inner: R) -> Self {
        HashingReader::with_algorithm(inner, Algorithm::Sha256)
    }

    pub fn with_algorithm(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Read the rest of the stream (so the digest covers all of it), then return
    /// the digest, the byte count and the inner reader.
    pub fn finish(mut self) -> io::Result<(Digest, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.count, self.inner))
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for HashingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let n = amt.min(buf.len());
            self.hasher.update(&buf[..n]);
            self.count += n as u64;
        }
        self.inner.consume(amt);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::encode::compress;

    #[test]
    fn sniffing_names_each_format() {
        assert_eq!(
            Compression::sniff(&[0x1f, 0x8b, 8]).unwrap(),
            Compression::GZIP
        );
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]).unwrap(),
            Compression::ZSTD
        );
        assert_eq!(Compression::sniff(b"etc/\0\0").unwrap(), Compression::None);
        let e = Compression::sniff(b"BZh91AY").unwrap_err();
        assert!(e.to_string().contains("bzip2"), "{e}");
        let e = Compression::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]).unwrap_err();
        assert!(e.to_string().contains("xz"), "{e}");
    }

    #[test]
    fn compressed_bytes_do_not_depend_on_write_sizes() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for c in [Compression::GZIP, Compression::ZSTD] {
            let mut whole = compress(Vec::new(), c).unwrap();
            whole.write_all(&data).unwrap();
            let whole = whole.finish().unwrap();
            let mut pieces = compress(Vec::new(), c).unwrap();
            for chunk in data.chunks(512) {
                pieces.write_all(chunk).unwrap();
                pieces.flush().unwrap();
            }
            assert_eq!(pieces.finish().unwrap(), whole, "{c:?}");
        }
    }

    #[test]
    fn media_types_map_to_codecs() {
        let c = |m| Compression::from_media_type(m);
        assert_eq!(
            c("application/vnd.oci.image.layer.v1.tar+gzip"),
            Some(Compression::GZIP)
        );
        assert_eq!(
            c("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::GZIP)
        );
        assert_eq!(
            c("application/vnd.docker.image.rootfs.diff.tar.zstd"),
            Some(Compression::ZSTD),
            "docker's zstd layers (regression)"
        );
        assert_eq!(
            c("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::ZSTD)
        );
        assert_eq!(
            c("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        assert_eq!(c("application/json"), None);
    }

    fn roundtrip(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut enc = compress(Vec::new(), c).unwrap();
        enc.write_all(data).unwrap();
        let packed = enc.finish().unwrap();
        let mut out = Vec::new();
        decompress(&packed[..], None)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        packed
    }

    #[test]
    fn compression_round_trips_and_is_a_pure_function() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [
            Compression::None,
            Compression::GZIP,
            Compression::ZSTD,
            Compression::Gzip { level: 1 },
        ] {
            assert_eq!(roundtrip(c, &data), roundtrip(c, &data), "{c:?}");
        }
        assert_ne!(roundtrip(Compression::GZIP, &data), data);
    }

    #[test]
    fn hashing_reader_drains_and_hashes_everything() {
        let data = b"hello world".to_vec();
        let mut r = HashingReader::new(&data[..]);
        let mut first = [0u8; 5];
        r.read_exact(&mut first).unwrap();
        let (digest, count, _) = r.finish().unwrap();
        assert_eq!(count, 11);
        assert_eq!(digest, Digest::sha256(&data));
    }
}
