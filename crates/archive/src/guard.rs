//! A reader under the `tar` crate that follows the stream's framing and refuses an
//! extension record (GNU long name/link, PAX header) or a sparse map that declares more
//! than [`Limits`] allow, before its body is read.
//!
//! The `tar` crate reads a whole `L`, `K`, `x` (and, through `Entry::pax_extensions`,
//! `g`) record into memory, whatever size its header declares. The guard sees every
//! byte the crate reads, in order, and walks the same framing the crate walks (header,
//! PAX `size` override, GNU sparse extension blocks, body rounded up to 512 bytes),
//! using the crate's own header field parsers so that both agree on where each header
//! starts. When a header declaring too much is complete, the read that completes it
//! fails: the crate never sees that header, let alone its body.
//!
//! **Invariant**: the guard never buffers more than one header block, one PAX record
//! set (at most `max_pax_size` bytes) and the first line of a PAX 1.0 sparse map.

use std::io::{self, Read};

use tar::{EntryType, GnuExtSparseHeader, Header, PaxExtensions};

use crate::entry::Limits;
use crate::error::ArchiveError;

const BLOCK: usize = 512;
/// Bytes of a PAX 1.0 sparse map's first line (a decimal block count) that are read.
const SPARSE_HEAD: usize = 32;

/// Wraps the uncompressed tar stream read by the `tar` crate; see the module docs.
/// Errors it raises are [`ArchiveError`]s inside an [`io::Error`]
/// (see [`ArchiveError::from_stream`]).
#[derive(Debug)]
pub struct HeaderGuard<R> {
    inner: R,
    limits: Limits,
    state: State,
    /// The last recognised PAX record set, for the next entry (as the crate keeps it).
    pending: Option<Pending>,
}

#[derive(Debug)]
enum State {
    /// Collecting a 512-byte header.
    Header {
        buf: Box<[u8; BLOCK]>,
        filled: usize,
    },
    /// Collecting a GNU sparse extension block; `then` bytes of body follow the last.
    SparseExt {
        buf: Box<[u8; BLOCK]>,
        filled: usize,
        then: u64,
        entries: u64,
    },
    /// Inside an entry's body (`left` bytes, padding included); `capture` keeps the
    /// first `want` bytes.
    Body { left: u64, capture: Option<Capture> },
    /// After the end-of-archive block or a header the crate refuses itself: the
    /// crate reads no more headers, so the rest is passed through.
    Done,
}

#[derive(Debug)]
struct Capture {
    what: CaptureKind,
    want: usize,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaptureKind {
    /// A recognised PAX `x` record set, for the next entry.
    Pax,
    /// The first line of a PAX 1.0 sparse file's data: its map's block count.
    SparseHead,
}

/// What a recognised PAX header says about the next entry.
#[derive(Debug, Default)]
struct Pending {
    size: Option<u64>,
    sparse_v1: bool,
}

impl<R> HeaderGuard<R> {
    pub fn new(inner: R, limits: &Limits) -> Self {
        HeaderGuard {
            inner,
            limits: limits.clone(),
            state: State::header(),
            pending: None,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl State {
    fn header() -> State {
        State::Header {
            buf: Box::new([0; BLOCK]),
            filled: 0,
        }
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut at = 0;
        while at < n {
            at += self.advance(&buf[at..n]).map_err(io::Error::other)?;
        }
        Ok(n)
    }
}

impl<R> HeaderGuard<R> {
    /// Feed the bytes `data` (read in stream order) to the framing; returns how many
    /// were used (at least one).
    fn advance(&mut self, data: &[u8]) -> Result<usize, ArchiveError> {
        match &mut self.state {
            State::Done => Ok(data.len()),
            State::Header { buf, filled } => {
                let n = (BLOCK - *filled).min(data.len());
                buf[*filled..*filled + n].copy_from_slice(&data[..n]);
                *filled += n;
                if *filled == BLOCK {
                    let block = std::mem::replace(buf, Box::new([0; BLOCK]));
                    self.header(&block)?;
                }
                Ok(n)
            }
            State::SparseExt {
                buf,
                filled,
                then,
                entries,
            } => {
                let n = (BLOCK - *filled).min(data.len());
                buf[*filled..*filled + n].copy_from_slice(&data[..n]);
                *filled += n;
                if *filled == BLOCK {
                    let mut ext = GnuExtSparseHeader::new();
                    ext.as_mut_bytes().copy_from_slice(&buf[..]);
                    *entries += ext.sparse().iter().filter(|s| !s.is_empty()).count() as u64;
                    sparse_entries(*entries, "GNU sparse map", &self.limits)?;
                    *filled = 0;
                    if !ext.is_extended() {
                        self.state = body(*then, None);
                    }
                }
                Ok(n)
            }
            State::Body { left, capture } => {
                let n = (*left).min(data.len() as u64) as usize;
                *left -= n as u64;
                if let Some(c) = capture {
                    let take = (c.want - c.bytes.len()).min(n);
                    c.bytes.extend_from_slice(&data[..take]);
                }
                if capture
                    .as_ref()
                    .is_some_and(|c| c.bytes.len() == c.want || *left == 0)
                {
                    let c = capture.take().expect("checked just above");
                    let done = *left == 0;
                    if done {
                        self.state = State::header();
                    }
                    self.captured(c)?;
                    return Ok(n);
                }
                if *left == 0 {
                    self.state = State::header();
                }
                Ok(n)
            }
        }
    }

    /// A complete header block: check it, and set up what follows it.
    fn header(&mut self, block: &[u8; BLOCK]) -> Result<(), ArchiveError> {
        if block.iter().all(|b| *b == 0) {
            self.state = State::Done;
            return Ok(());
        }
        let header = Header::from_byte_slice(block);
        let sum = block[..148]
            .iter()
            .chain(&block[156..])
            .fold(0u32, |a, b| a + u32::from(*b))
            + 8 * 32;
        if header.cksum().ok() != Some(sum) {
            // The crate refuses this header and reads nothing further.
            self.state = State::Done;
            return Ok(());
        }
        let t = header.entry_type();
        let recognised = header.as_gnu().is_some() || header.as_ustar().is_some();
        let extension = t.is_gnu_longname()
            || t.is_gnu_longlink()
            || t.is_pax_local_extensions()
            || t.is_pax_global_extensions();
        let declared = header.entry_size().map_err(|e| malformed(e.to_string()))?;
        if let Some((what, limit)) = self.extension_limit(t)
            && declared > limit
        {
            return Err(ArchiveError::HeaderTooLarge {
                layer: None,
                what,
                size: declared,
                limit,
            });
        }
        // The crate applies a PAX `size` to the next header that is no extension
        // header, and hands the records to the next entry it returns.
        let mut size = declared;
        let mut sparse_v1 = false;
        if !extension && let Some(p) = &self.pending {
            size = p.size.unwrap_or(size);
            sparse_v1 = p.sparse_v1;
        }
        let consumed_by_crate = recognised
            && (t.is_gnu_longname() || t.is_gnu_longlink() || t.is_pax_local_extensions());
        if !consumed_by_crate {
            self.pending = None;
        }
        let capture = if recognised && t.is_pax_local_extensions() {
            Some(Capture {
                what: CaptureKind::Pax,
                want: size as usize,
                bytes: Vec::with_capacity(size as usize),
            })
        } else if sparse_v1 && t == EntryType::Regular {
            Some(Capture {
                what: CaptureKind::SparseHead,
                want: SPARSE_HEAD.min(size as usize),
                bytes: Vec::new(),
            })
        } else {
            None
        };
        let padded = size
            .checked_add(BLOCK as u64 - 1)
            .ok_or_else(|| malformed("entry size overflows".into()))?
            & !(BLOCK as u64 - 1);
        if t.is_gnu_sparse() {
            let Some(gnu) = header.as_gnu() else {
                // The crate refuses a sparse entry without a GNU header.
                self.state = State::Done;
                return Ok(());
            };
            let real = gnu.real_size().map_err(|e| malformed(e.to_string()))?;
            sparse_size(real, "GNU sparse file real size", &self.limits)?;
            let entries = gnu.sparse.iter().filter(|s| !s.is_empty()).count() as u64;
            if gnu.is_extended() {
                self.state = State::SparseExt {
                    buf: Box::new([0; BLOCK]),
                    filled: 0,
                    then: padded,
                    entries,
                };
                return Ok(());
            }
        }
        match capture {
            // Nothing to collect: check the empty record set (or map) now.
            Some(c) if c.want == 0 => {
                self.state = body(padded, None);
                self.captured(c)
            }
            capture => {
                self.state = body(padded, capture);
                Ok(())
            }
        }
    }

    fn captured(&mut self, c: Capture) -> Result<(), ArchiveError> {
        match c.what {
            CaptureKind::Pax => self.pending = Some(pending(&c.bytes, &self.limits)?),
            CaptureKind::SparseHead => sparse_head(&c.bytes, &self.limits)?,
        }
        Ok(())
    }

    fn extension_limit(&self, t: EntryType) -> Option<(&'static str, u64)> {
        let l = &self.limits;
        if t.is_gnu_longname() {
            Some(("GNU long name", l.max_long_name))
        } else if t.is_gnu_longlink() {
            Some(("GNU long link name", l.max_long_name))
        } else if t.is_pax_local_extensions() {
            Some(("PAX extended header", l.max_pax_size))
        } else if t.is_pax_global_extensions() {
            Some(("PAX global header", l.max_pax_size))
        } else {
            None
        }
    }
}

fn body(left: u64, capture: Option<Capture>) -> State {
    if left == 0 {
        // An entry without body (a capture of nothing has nothing to check).
        return State::header();
    }
    State::Body { left, capture }
}

/// The records of a PAX header, read as the crate reads them for the next entry's
/// size, and checked for sparse maps.
fn pending(bytes: &[u8], limits: &Limits) -> Result<Pending, ArchiveError> {
    let mut p = Pending {
        size: size_as_crate_reads_it(bytes),
        sparse_v1: false,
    };
    let mut offsets = 0u64;
    for ext in PaxExtensions::new(bytes) {
        let Ok(ext) = ext else { break };
        let Ok(key) = ext.key() else { continue };
        let value = ext.value().ok();
        let num = || value.and_then(|v| v.trim().parse::<u64>().ok());
        match key {
            "GNU.sparse.numblocks" => match num() {
                Some(n) => sparse_entries(n, "PAX sparse map", limits)?,
                None => return Err(malformed(format!("invalid {key}"))),
            },
            "GNU.sparse.offset" => {
                offsets += 1;
                sparse_entries(offsets, "PAX sparse map", limits)?;
            }
            "GNU.sparse.map" => {
                let fields = value.map_or(0, |v| v.split(',').count() as u64);
                sparse_entries(fields.div_ceil(2), "PAX sparse map", limits)?;
            }
            "GNU.sparse.size" | "GNU.sparse.realsize" => match num() {
                Some(n) => sparse_size(n, "PAX sparse file real size", limits)?,
                None => return Err(malformed(format!("invalid {key}"))),
            },
            "GNU.sparse.major" => p.sparse_v1 = value == Some("1"),
            _ => {}
        }
    }
    Ok(p)
}

/// The crate's reading of a PAX `size` (its `pax_extensions_value`): the first
/// `size` record parsed as a `u64`, or nothing when any record before it, or its
/// value, does not parse.
fn size_as_crate_reads_it(bytes: &[u8]) -> Option<u64> {
    for ext in PaxExtensions::new(bytes) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse::<u64>().ok();
    }
    None
}

/// The first line of a PAX 1.0 sparse file's data: the number of map entries.
fn sparse_head(bytes: &[u8], limits: &Limits) -> Result<(), ArchiveError> {
    let line = bytes
        .iter()
        .position(|b| *b == b'\n')
        .map(|end| &bytes[..end])
        .ok_or_else(|| malformed("PAX 1.0 sparse map without a block count".into()))?;
    let n = std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| malformed("PAX 1.0 sparse map with an invalid block count".into()))?;
    sparse_entries(n, "PAX sparse map", limits)
}

fn sparse_entries(n: u64, what: &'static str, limits: &Limits) -> Result<(), ArchiveError> {
    if n > limits.max_sparse_entries {
        return Err(ArchiveError::SparseMapTooLarge {
            layer: None,
            what,
            entries: n,
            limit: limits.max_sparse_entries,
        });
    }
    Ok(())
}

fn sparse_size(n: u64, what: &'static str, limits: &Limits) -> Result<(), ArchiveError> {
    if n > limits.max_sparse_size {
        return Err(ArchiveError::HeaderTooLarge {
            layer: None,
            what,
            size: n,
            limit: limits.max_sparse_size,
        });
    }
    Ok(())
}

fn malformed(reason: String) -> ArchiveError {
    ArchiveError::Malformed {
        path: String::new(),
        reason,
    }
}
