//! `ADD` of a local archive: a regular file whose (decompressed) bytes start with a
//! valid tar header is extracted into the destination directory.
//!
//! As BuildKit's `chrootarchive.Untar`, the destination directory is the root of the
//! extraction: the entries are applied by [`archive::apply_layer`] onto a [`Root`]
//! opened at that directory, so `..`, absolute names and symlinks in the archive stay
//! below it. Entries keep the archive's owners (when running as root), modes and times.
//!
//! Known difference: `apply_layer` reads `.wh.` entries as whiteouts (deleting, in the
//! destination directory only, what they name) where docker extracts them as files.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use archive::{CleanPath, Root};

use super::{Ctx, FileOpError, show};

/// A decompressing reader for the stream's format, told by its magic bytes: gzip,
/// zstd, bzip2, xz, or none.
fn decoder<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    let magic = r.fill_buf()?;
    if magic.starts_with(b"BZh") {
        return Ok(Box::new(bzip2::bufread::MultiBzDecoder::new(r)));
    }
    if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Ok(Box::new(lzma_rust2::XzReader::new(r, true)));
    }
    archive::decompress(r, None)
        .map(|d| Box::new(d) as Box<dyn Read>)
        .map_err(io::Error::other)
}

/// Whether the regular file `p` of `tree` is a tar archive, compressed or not: its
/// first 512 decompressed bytes are a tar header with a valid checksum (what Go's
/// `tar.Reader.Next` accepts). A file that fails to decompress is no archive.
pub(super) fn is_archive(ctx: &Ctx<'_>, tree: &Root, p: &CleanPath) -> Result<bool, FileOpError> {
    let file = tree.open_regular(p).map_err(|e| ctx.fs(e))?;
    let Ok(mut r) = decoder(BufReader::new(file)) else {
        return Ok(false);
    };
    let mut block = [0u8; 512];
    let mut got = 0;
    while got < block.len() {
        match r.read(&mut block[got..]) {
            Ok(0) | Err(_) => return Ok(false),
            Ok(n) => got += n,
        }
    }
    Ok(is_tar_header(&block))
}

/// A tar header block: not all zeros, and its checksum field (octal) equals the
/// sum of its bytes with that field read as spaces (unsigned, or signed as old tars
/// wrote it).
fn is_tar_header(block: &[u8; 512]) -> bool {
    if block.iter().all(|b| *b == 0) {
        return false;
    }
    let field = &block[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == 0)
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    let Ok(text) = std::str::from_utf8(&digits) else {
        return false;
    };
    let Ok(want) = i64::from_str_radix(text, 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    want == unsigned || want == signed
}

/// Extract the archive `p` of `tree` into the existing directory `dest` of the
/// destination root.
pub(super) fn extract(
    ctx: &Ctx<'_>,
    tree: &Root,
    p: &CleanPath,
    dest: &CleanPath,
) -> Result<(), FileOpError> {
    let unpack_err = |source| FileOpError::Unpack {
        action: ctx.action.clone(),
        path: show(p),
        source: Box::new(source),
    };
    let dir = ctx.root.mkdir_all(dest).map_err(|e| ctx.fs(e))?;
    // The directory just resolved in-root becomes the extraction's root: the magic
    // link names that very inode, whatever happens to the path meanwhile.
    let at = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let root = Root::open(&at).map_err(|e| ctx.fs(e))?;
    let file = tree.open_regular(p).map_err(|e| ctx.fs(e))?;
    let opts = worker::snapshot::apply_options();
    // The archive's decompression is held to the same budget as a layer's.
    let (file, meter) = opts.budget.meter(BufReader::new(file));
    let reader = decoder(file).map_err(|e| {
        unpack_err(archive::ArchiveError::Tar {
            after: String::new(),
            source: e,
        })
    })?;
    archive::apply_layer(&root, meter.limit(reader), &opts).map_err(unpack_err)?;
    Ok(())
}
