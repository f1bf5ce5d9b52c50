//! Applying a (compressed) layer blob and verifying both of its digests.

use std::io::{self, BufReader, Read};

use oci::Digest;

use crate::apply::{ApplyOptions, ApplyStats, apply_layer};
use crate::budget::decompress_limited;
use crate::codec::{Compression, HashingReader};
use crate::error::ArchiveError;
use crate::root::Root;

/// What the caller knows about a blob (from its descriptor and the image config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The descriptor's digest (of the compressed bytes).
    pub digest: Option<Digest>,
    /// The descriptor's size.
    pub size: Option<u64>,
    /// The config's `rootfs.diff_ids` entry (digest of the uncompressed tar).
    pub diff_id: Option<Digest>,
}

/// The result of [`apply_blob`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppliedBlob {
    pub stats: ApplyStats,
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

/// Decompress (per `media_type`, or sniffed when `None`) and apply a layer blob,
/// read both streams to their end, and check what `expected` names.
///
/// The tree is changed before the digests can be known: on any error (a mismatch
/// included) the caller discards it, e.g. through
/// [`apply_into_new_dir`](crate::apply_into_new_dir).
pub fn apply_blob<R: Read>(
    root: &Root,
    reader: R,
    media_type: Option<&str>,
    expected: &Expected,
    opts: &ApplyOptions,
) -> Result<AppliedBlob, ArchiveError> {
    let compression = match media_type {
        Some(mt) => Some(Compression::from_media_type(mt).ok_or_else(|| {
            ArchiveError::UnsupportedCompression {
                format: mt.to_owned(),
            }
        })?),
        None => None,
    };
    let mut blob = HashingReader::new(reader);
    let applied = (|| {
        let decoder = decompress_limited(BufReader::new(&mut blob), compression, &opts.budget)?;
        let mut raw = HashingReader::new(decoder);
        let stats = apply_layer(root, &mut raw, opts)?;
        let (diff_id, uncompressed_size, _) = raw
            .finish()
            .map_err(|e| ArchiveError::from_stream(e).unwrap_or_else(stream))?;
        Ok((stats, diff_id, uncompressed_size))
    })();
    // Whatever happened, read the blob to its end so size and digest cover it all.
    let drained = io::copy(&mut blob, &mut io::sink());
    let (digest, size, _) = blob.finish().map_err(stream)?;
    // Limit errors name the layer: by its descriptor's digest, else by what was read.
    let applied = applied
        .map_err(|e: ArchiveError| e.with_layer(expected.digest.as_ref().unwrap_or(&digest)));
    if let Some(want) = expected.size
        && want != size
    {
        return Err(ArchiveError::SizeMismatch {
            what: "compressed",
            expected: want,
            actual: size,
        });
    }
    let (stats, diff_id, uncompressed_size) = applied?;
    drained.map_err(stream)?;
    check("compressed", expected.digest.as_ref(), &digest)?;
    check("uncompressed", expected.diff_id.as_ref(), &diff_id)?;
    Ok(AppliedBlob {
        stats,
        digest,
        size,
        diff_id,
        uncompressed_size,
    })
}

fn stream(e: io::Error) -> ArchiveError {
    ArchiveError::Tar {
        after: String::new(),
        source: e,
    }
}

fn check(what: &'static str, want: Option<&Digest>, got: &Digest) -> Result<(), ArchiveError> {
    match want {
        Some(want) if want != got => Err(ArchiveError::DigestMismatch {
            what,
            expected: want.clone(),
            actual: got.clone(),
        }),
        _ => Ok(()),
    }
}
