//! Deterministic layer tar writing.
//!
//! The format is POSIX ustar with PAX extended headers where ustar cannot hold a
//! value: paths and link targets past the ustar fields, ids past 7 octal digits,
//! mtimes outside 11 octal digits, and every xattr (`SCHILY.xattr.<name>`). No GNU
//! extensions are written. Entries are sorted component-wise (a directory's subtree
//! follows it), `uname`/`gname` are empty, there is no atime or ctime, mtimes are
//! whole seconds and, with `source_date_epoch`, clamped to it. Files sharing a
//! `link_key` are written once and then as hardlinks to the first name.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{ArchiveError, show};
use crate::path::CleanPath;
use crate::root::Root;

/// Where a regular file's bytes come from.
#[derive(Debug, Clone)]
pub enum ContentSource {
    Bytes(Arc<[u8]>),
    /// A regular file inside a root, opened in-root without following symlinks.
    InRoot(Arc<Root>, PathBuf),
}

/// The type of a layer entry.
#[derive(Debug, Clone)]
pub enum EntryKind {
    File { size: u64, content: ContentSource },
    Dir,
    Symlink { target: Vec<u8> },
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
}

/// Metadata written for an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Files with the same key are one inode: written once, then as hardlinks.
    pub link_key: Option<(u64, u64)>,
}

/// One path with its type and metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub kind: EntryKind,
    pub meta: Metadata,
}

/// One change of a layer.
#[derive(Debug, Clone)]
pub enum Change {
    Add(Entry),
    Modify(Entry),
    /// Written as `<dir>/.wh.<name>`.
    Delete(PathBuf),
    /// Written as `<dir>/.wh..wh..opq`.
    OpaqueDir(PathBuf),
}

/// Options of [`write_layer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Clamp every mtime to at most this (`SOURCE_DATE_EPOCH`); whiteouts get it too
    /// (else 0).
    pub source_date_epoch: Option<i64>,
}

/// What [`write_layer`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteStats {
    pub entries: u64,
    pub content_bytes: u64,
}

/// A ustar header and the PAX records that go before it.
type Headers = (tar::Header, Vec<(String, Vec<u8>)>);

enum Item {
    Entry(Entry),
    Marker,
}

/// Write `changes` as an uncompressed layer tar into `out`; returns counts. Two
/// changes with the same tar name are an error.
pub fn write_layer<W: Write>(
    out: W,
    changes: impl IntoIterator<Item = Change>,
    opts: &WriteOptions,
) -> Result<WriteStats, ArchiveError> {
    let mut items: Vec<(CleanPath, Item)> = Vec::new();
    for change in changes {
        let (path, item) = match change {
            Change::Add(e) | Change::Modify(e) => (CleanPath::from_path(&e.path)?, Item::Entry(e)),
            Change::Delete(p) => {
                let p = CleanPath::from_path(&p)?;
                let name = p.file_name().ok_or_else(|| root_change(&p))?;
                let marker = [b".wh.".as_slice(), name].concat();
                (p.parent().join(&marker), Item::Marker)
            }
            Change::OpaqueDir(p) => (
                CleanPath::from_path(&p)?.join(b".wh..wh..opq"),
                Item::Marker,
            ),
        };
        items.push((path, item));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = items.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ArchiveError::DuplicatePath {
            path: w[0].0.display(),
        });
    }
    let mut b = tar::Builder::new(out);
    let mut stats = WriteStats::default();
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    for (path, item) in items {
        let name = path.to_bytes();
        match item {
            Item::Marker => {
                let meta = Metadata {
                    mode: 0o644,
                    mtime: opts.source_date_epoch.unwrap_or(0),
                    ..Metadata::default()
                };
                append(
                    &mut b,
                    &name,
                    tar::EntryType::Regular,
                    &meta,
                    0,
                    None,
                    opts,
                    io::empty(),
                )?;
            }
            Item::Entry(e) => {
                stats.content_bytes += write_entry(&mut b, &path, e, opts, &mut links)?;
            }
        }
        stats.entries += 1;
    }
    b.finish().map_err(ArchiveError::Write)?;
    Ok(stats)
}

fn root_change(p: &CleanPath) -> ArchiveError {
    ArchiveError::InvalidPath {
        path: p.display(),
        reason: "a layer cannot delete the root",
    }
}

fn write_entry<W: Write>(
    b: &mut tar::Builder<W>,
    path: &CleanPath,
    e: Entry,
    opts: &WriteOptions,
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> Result<u64, ArchiveError> {
    use tar::EntryType as T;
    let mut name = path.to_bytes();
    let none = io::empty();
    match e.kind {
        EntryKind::Dir => {
            if !path.is_root() {
                name.push(b'/');
            } else {
                name = b"./".to_vec();
            }
            append(b, &name, T::Directory, &e.meta, 0, None, opts, none)?;
        }
        _ if path.is_root() => return Err(root_change(path)),
        EntryKind::File { size, content } => {
            if let Some(key) = e.meta.link_key {
                if let Some(first) = links.get(&key) {
                    append(b, &name, T::Link, &e.meta, 0, Some(first), opts, none)?;
                    return Ok(0);
                }
                links.insert(key, name.clone());
            }
            let reader: Box<dyn Read> = match &content {
                ContentSource::Bytes(bytes) => Box::new(io::Cursor::new(bytes.clone())),
                ContentSource::InRoot(root, p) => {
                    Box::new(root.open_regular(&CleanPath::from_path(p)?)?)
                }
            };
            let mut exact = Exact {
                inner: reader,
                left: size,
                path: path.display(),
            };
            append(b, &name, T::Regular, &e.meta, size, None, opts, &mut exact)?;
            return Ok(size);
        }
        EntryKind::Symlink { target } => {
            append(b, &name, T::Symlink, &e.meta, 0, Some(&target), opts, none)?
        }
        EntryKind::CharDevice { major, minor } => {
            append_dev(b, &name, T::Char, &e.meta, (major, minor), opts)?;
        }
        EntryKind::BlockDevice { major, minor } => {
            append_dev(b, &name, T::Block, &e.meta, (major, minor), opts)?;
        }
        EntryKind::Fifo => append(b, &name, T::Fifo, &e.meta, 0, None, opts, none)?,
    }
    Ok(0)
}

/// Yields exactly `left` bytes of `inner`, failing if it has fewer or more.
struct Exact {
    inner: Box<dyn Read>,
    left: u64,
    path: String,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(io::Error::other(format!(
                    "{} grew while being written",
                    self.path
                )));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while being written", self.path),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn append_dev<W: Write>(
    b: &mut tar::Builder<W>,
    name: &[u8],
    t: tar::EntryType,
    meta: &Metadata,
    dev: (u32, u32),
    opts: &WriteOptions,
) -> Result<(), ArchiveError> {
    let mut h = base_header(name, t, meta, 0, None, opts)?;
    h.0.set_device_major(dev.0).map_err(ArchiveError::Write)?;
    h.0.set_device_minor(dev.1).map_err(ArchiveError::Write)?;
    emit(b, h, io::empty(), name)
}

#[allow(clippy::too_many_arguments)]
fn append<W: Write>(
    b: &mut tar::Builder<W>,
    name: &[u8],
    t: tar::EntryType,
    meta: &Metadata,
    size: u64,
    link: Option<&[u8]>,
    opts: &WriteOptions,
    data: impl Read,
) -> Result<(), ArchiveError> {
    let h = base_header(name, t, meta, size, link, opts)?;
    emit(b, h, data, name)
}

fn emit<W: Write>(
    b: &mut tar::Builder<W>,
    (mut h, pax): Headers,
    data: impl Read,
    name: &[u8],
) -> Result<(), ArchiveError> {
    if !pax.is_empty() {
        let records = pax_records(&pax);
        let mut ph = tar::Header::new_ustar();
        set_ustar_name(&mut ph, &pax_header_name(name));
        ph.set_entry_type(tar::EntryType::XHeader);
        ph.set_mode(0o644);
        ph.set_mtime(0);
        ph.set_size(records.len() as u64);
        ph.set_cksum();
        b.append(&ph, &records[..]).map_err(ArchiveError::Write)?;
    }
    h.set_cksum();
    b.append(&h, data).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("grew while") {
            ArchiveError::FileChanged {
                path: show(name),
                expected: h.size().unwrap_or(0),
            }
        } else {
            ArchiveError::Write(e)
        }
    })
}

/// A ustar header for the entry, plus the PAX records it needs.
fn base_header(
    name: &[u8],
    t: tar::EntryType,
    meta: &Metadata,
    size: u64,
    link: Option<&[u8]>,
    opts: &WriteOptions,
) -> Result<Headers, ArchiveError> {
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(t);
    if !set_ustar_name(&mut h, name) {
        pax.push(("path".into(), name.to_vec()));
    }
    if let Some(link) = link {
        if link.len() <= 100 {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        } else {
            pax.push(("linkpath".into(), link.to_vec()));
            let cut = &link[..100];
            h.as_old_mut().linkname.copy_from_slice(cut);
        }
    }
    h.set_mode(meta.mode & 0o7777);
    for (key, v) in [("uid", meta.uid), ("gid", meta.gid)] {
        let fits = u64::from(v) <= 0o7777777;
        let value = if fits { u64::from(v) } else { 0 };
        if key == "uid" {
            h.set_uid(value);
        } else {
            h.set_gid(value);
        }
        if !fits {
            pax.push((key.into(), v.to_string().into_bytes()));
        }
    }
    let mtime = match opts.source_date_epoch {
        Some(epoch) => meta.mtime.min(epoch),
        None => meta.mtime,
    };
    if (0..=0o77777777777).contains(&mtime) {
        h.set_mtime(mtime as u64);
    } else {
        h.set_mtime(0);
        pax.push(("mtime".into(), mtime.to_string().into_bytes()));
    }
    h.set_size(size);
    for (k, v) in &meta.xattrs {
        if k.is_empty() || k.len() > 255 || k.contains('=') || k.contains('\0') {
            return Err(ArchiveError::InvalidMetadata {
                path: show(name),
                field: "xattr name",
                value: k.clone(),
            });
        }
        pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
    }
    Ok((h, pax))
}

/// Put `name` into the ustar name/prefix fields; false (and a truncated name) when it
/// does not fit.
fn set_ustar_name(h: &mut tar::Header, name: &[u8]) -> bool {
    let u = h.as_ustar_mut().expect("new_ustar makes a ustar header");
    if name.len() <= 100 {
        u.name[..name.len()].copy_from_slice(name);
        return true;
    }
    // Split at a '/' so the prefix holds at most 155 bytes and the name at most 100.
    let split = name
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            **c == b'/' && *i <= 155 && name.len() - i - 1 <= 100 && name.len() - i - 1 > 0
        })
        .map(|(i, _)| i)
        .next();
    match split {
        Some(i) => {
            u.prefix[..i].copy_from_slice(&name[..i]);
            u.name[..name.len() - i - 1].copy_from_slice(&name[i + 1..]);
            true
        }
        None => {
            u.name.copy_from_slice(&name[..100]);
            false
        }
    }
}

/// The name of a PAX header: `PaxHeaders/<base name>` cut to 100 bytes.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let base = trimmed.rsplit(|b| *b == b'/').next().unwrap_or(trimmed);
    let mut out = b"PaxHeaders/".to_vec();
    out.extend_from_slice(base);
    out.truncate(100);
    out
}

/// Encode records as `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_records(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = body + body.to_string().len();
        if len.to_string().len() != body.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        for vlen in [0usize, 1, 5, 6, 7, 90, 95, 96, 97, 98, 990, 995, 996] {
            let v = vec![b'x'; vlen];
            let rec = pax_records(&[("k".into(), v)]);
            let (len, _) = std::str::from_utf8(&rec).unwrap().split_once(' ').unwrap();
            assert_eq!(
                len.parse::<usize>().unwrap(),
                rec.len(),
                "value of {vlen} bytes"
            );
        }
    }

    #[test]
    fn long_names_split_or_fall_back_to_pax() {
        let mut h = tar::Header::new_ustar();
        let name = format!("{}/{}", "d".repeat(150), "f".repeat(99));
        assert!(set_ustar_name(&mut h, name.as_bytes()));
        assert_eq!(h.path_bytes().as_ref(), name.as_bytes());
        let mut h = tar::Header::new_ustar();
        assert!(!set_ustar_name(&mut h, "x".repeat(300).as_bytes()));
    }
}
