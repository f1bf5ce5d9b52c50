//! Reading one tar entry's header and extended records into checked values.

use std::io::Read;

use crate::error::{ArchiveError, show};
use crate::path::{CleanPath, NAME_MAX};

/// Caps on what one layer may contain. Reaching one is
/// [`ArchiveError::LimitExceeded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the uncompressed tar stream, and separately of file content written.
    pub max_bytes: u64,
    pub max_entries: u64,
    /// Bytes of an entry's full path (after PAX/GNU long names).
    pub max_path_len: usize,
    /// Components of an entry's cleaned path.
    pub max_depth: usize,
    /// Bytes of one xattr value.
    pub max_xattr_size: usize,
    /// Bytes a GNU long name or long link record (`L`, `K`) may declare.
    pub max_long_name: u64,
    /// Bytes a PAX header (`x`, `g`) may declare.
    pub max_pax_size: u64,
    /// Entries of one sparse map (GNU `S` headers with their extension blocks, PAX
    /// 0.x and 1.0 maps).
    pub max_sparse_entries: u64,
    /// The real (expanded) size a sparse file may declare.
    pub max_sparse_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 256 << 30,
            max_entries: 4_000_000,
            max_path_len: 4096,
            max_depth: 512,
            max_xattr_size: 65536,
            max_long_name: 64 << 10,
            max_pax_size: 1 << 20,
            max_sparse_entries: 1 << 16,
            max_sparse_size: 64 << 30,
        }
    }
}

/// What an entry creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
    /// A PAX global header: no file, skipped.
    Global,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::File => "regular file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Hardlink => "hardlink",
            Kind::Char => "character device",
            Kind::Block => "block device",
            Kind::Fifo => "fifo",
            Kind::Global => "pax global header",
        }
    }
}

/// An entry's header, validated.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub raw_path: Vec<u8>,
    pub path: CleanPath,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub link: Option<Vec<u8>>,
    pub dev: (u32, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// PAX records manifold reads itself (the tar crate has already applied `path`,
/// `linkpath`, `size`, `uid` and `gid`).
#[derive(Default)]
struct Pax {
    size: Option<u64>,
    mtime: Option<(i64, u32)>,
    xattrs: Vec<(String, Vec<u8>)>,
}

pub(crate) fn parse<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    limits: &Limits,
) -> Result<Parsed, ArchiveError> {
    let raw_path = entry.path_bytes().into_owned();
    if raw_path.len() > limits.max_path_len {
        return Err(ArchiveError::LimitExceeded {
            what: "path length",
            limit: limits.max_path_len as u64,
        });
    }
    let shown = show(&raw_path);
    let malformed = |reason: String| ArchiveError::Malformed {
        path: shown.clone(),
        reason,
    };
    let pax = read_pax(entry, limits, &shown)?;
    let header = entry.header();
    if let Some(pax_size) = pax.size {
        let ustar = header.entry_size().map_err(|e| malformed(e.to_string()))?;
        if ustar != 0 && ustar != pax_size {
            return Err(malformed(format!(
                "PAX size {pax_size} differs from header size {ustar}"
            )));
        }
    }
    let kind = kind_of(header.entry_type(), &raw_path, &shown)?;
    let path = CleanPath::new(&raw_path)?;
    // The V7 "regular file ending in `/`" rule never turns `/` or `./` into a directory.
    let kind = if kind == Kind::Dir
        && header.entry_type() != tar::EntryType::Directory
        && path.is_root()
    {
        Kind::File
    } else {
        kind
    };
    if path.depth() > limits.max_depth {
        return Err(ArchiveError::LimitExceeded {
            what: "path depth",
            limit: limits.max_depth as u64,
        });
    }
    let mode = header.mode().map_err(|e| malformed(e.to_string()))? & 0o7777;
    let uid = id(
        header.uid().map_err(|e| malformed(e.to_string()))?,
        "uid",
        &shown,
    )?;
    let gid = id(
        header.gid().map_err(|e| malformed(e.to_string()))?,
        "gid",
        &shown,
    )?;
    let mtime = match pax.mtime {
        Some(t) => t,
        None => {
            let t = header.mtime().map_err(|e| malformed(e.to_string()))?;
            let t = i64::try_from(t).map_err(|_| invalid(&shown, "mtime", t.to_string()))?;
            (t, 0)
        }
    };
    let link = match kind {
        Kind::Symlink | Kind::Hardlink => {
            let l = entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default();
            if l.is_empty() {
                return Err(malformed("link entry without a target".into()));
            }
            if l.contains(&0) || l.len() > limits.max_path_len {
                return Err(malformed(
                    "link target has a NUL byte or is too long".into(),
                ));
            }
            Some(l)
        }
        _ => None,
    };
    let dev = match kind {
        Kind::Char | Kind::Block => {
            let major = header
                .device_major()
                .map_err(|e| malformed(e.to_string()))?;
            let minor = header
                .device_minor()
                .map_err(|e| malformed(e.to_string()))?;
            (major.unwrap_or(0), minor.unwrap_or(0))
        }
        _ => (0, 0),
    };
    Ok(Parsed {
        raw_path,
        path,
        kind,
        size: entry.size(),
        mode,
        uid,
        gid,
        mtime,
        link,
        dev,
        xattrs: pax.xattrs,
    })
}

fn kind_of(t: tar::EntryType, raw: &[u8], shown: &str) -> Result<Kind, ArchiveError> {
    use tar::EntryType as T;
    Ok(match t {
        // A V7 regular entry whose name ends in `/` is a directory.
        T::Regular | T::Continuous if raw.ends_with(b"/") => Kind::Dir,
        T::Regular | T::Continuous | T::GNUSparse => Kind::File,
        T::Directory => Kind::Dir,
        T::Symlink => Kind::Symlink,
        T::Link => Kind::Hardlink,
        T::Char => Kind::Char,
        T::Block => Kind::Block,
        T::Fifo => Kind::Fifo,
        T::XGlobalHeader => Kind::Global,
        other => {
            return Err(ArchiveError::UnsupportedEntry {
                path: shown.to_owned(),
                kind: char::from(other.as_byte()),
            });
        }
    })
}

fn read_pax<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    limits: &Limits,
    shown: &str,
) -> Result<Pax, ArchiveError> {
    let malformed = |reason: String| ArchiveError::Malformed {
        path: shown.to_owned(),
        reason,
    };
    let mut pax = Pax::default();
    let exts = entry
        .pax_extensions()
        .map_err(|e| ArchiveError::from_stream(e).unwrap_or_else(|e| malformed(e.to_string())))?;
    let Some(exts) = exts else {
        return Ok(pax);
    };
    for ext in exts {
        let ext = ext.map_err(|e| malformed(format!("malformed PAX record: {e}")))?;
        let key = ext
            .key()
            .map_err(|_| malformed("PAX key is not UTF-8".into()))?;
        let value = ext.value_bytes();
        let text =
            || std::str::from_utf8(value).map_err(|_| malformed(format!("PAX {key} is not UTF-8")));
        match key {
            "size" => pax.size = Some(number(text()?, key, shown)?),
            "uid" | "gid" => {
                number(text()?, key, shown)?;
            }
            "mtime" => pax.mtime = Some(pax_time(text()?, shown)?),
            k if k.starts_with("SCHILY.xattr.") => {
                let name = &k["SCHILY.xattr.".len()..];
                if name.is_empty() || name.len() > NAME_MAX {
                    return Err(malformed(format!(
                        "xattr name of {} bytes (must be 1 to 255)",
                        name.len()
                    )));
                }
                if value.len() > limits.max_xattr_size {
                    return Err(ArchiveError::LimitExceeded {
                        what: "xattr value size",
                        limit: limits.max_xattr_size as u64,
                    });
                }
                pax.xattrs.push((name.to_owned(), value.to_vec()));
            }
            _ => {}
        }
    }
    Ok(pax)
}

fn number(s: &str, key: &str, shown: &str) -> Result<u64, ArchiveError> {
    s.parse::<u64>()
        .map_err(|_| invalid(shown, "PAX record", format!("{key}={s}")))
}

/// A PAX time: `[-]seconds[.fraction]`.
fn pax_time(s: &str, shown: &str) -> Result<(i64, u32), ArchiveError> {
    let bad = || invalid(shown, "mtime", s.to_owned());
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let mut nanos: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    if !neg {
        return Ok((secs, nanos));
    }
    // -1.5 is 2.5 seconds before 1970-01-01T00:00:01, i.e. (-2, 500_000_000).
    if nanos == 0 {
        Ok((-secs, 0))
    } else {
        Ok((-secs - 1, 1_000_000_000 - nanos))
    }
}

fn id(v: u64, field: &'static str, shown: &str) -> Result<u32, ArchiveError> {
    match u32::try_from(v) {
        Ok(v) if v != u32::MAX => Ok(v),
        _ => Err(invalid(shown, field, v.to_string())),
    }
}

fn invalid(shown: &str, field: &'static str, value: String) -> ArchiveError {
    ArchiveError::InvalidMetadata {
        path: shown.to_owned(),
        field,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_with_fractions_and_signs() {
        assert_eq!(pax_time("1700000000", "x").unwrap(), (1_700_000_000, 0));
        assert_eq!(pax_time("12.5", "x").unwrap(), (12, 500_000_000));
        assert_eq!(pax_time("-1.5", "x").unwrap(), (-2, 500_000_000));
        assert!(pax_time("1e9", "x").is_err());
        assert!(pax_time("99999999999999999999999", "x").is_err());
    }

    #[test]
    fn ids_outside_u32_are_refused() {
        assert_eq!(id(0, "uid", "f").unwrap(), 0);
        assert!(id(u64::from(u32::MAX), "uid", "f").is_err());
        let e = id(1 << 40, "gid", "f").unwrap_err();
        assert!(e.to_string().contains("gid"), "{e}");
    }
}
