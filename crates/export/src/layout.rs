//! OCI image layouts (a directory or a tar of one) holding one image or index and
//! exactly the blobs it reaches.
//!
//! ```text
//! oci-layout        {"imageLayoutVersion":"1.0.0"}
//! index.json        one entry: the exported descriptor, named when a name is given
//! blobs/<alg>/<hex> every reachable blob, nothing else
//! ```
//!
//! The tar form is deterministic: fixed entry order (the two files, then blobs by
//! digest), owner 0:0, mtime 0, modes 0644 and 0755.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use content::Store;
use oci::descriptor::ANNOTATION_REF_NAME;
use oci::{Descriptor, ImageIndex, media};

use crate::cache::write_atomic;
use crate::error::{ExportError, Result};
use crate::walk::reachable;

const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn index_json(desc: &Descriptor, name: Option<&str>) -> Vec<u8> {
    let mut entry = desc.clone();
    entry.annotations.remove(ANNOTATION_REF_NAME);
    if let Some(name) = name {
        entry
            .annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), name.to_owned());
    }
    let index = ImageIndex {
        media_type: Some(media::OCI_INDEX.to_owned()),
        manifests: vec![entry],
        ..ImageIndex::new()
    };
    serde_json::to_vec(&index).expect("an index always serialises")
}

/// Write `desc` (a manifest or an index) and everything it reaches as an OCI image
/// layout in `dir`, which must be absent or empty. `name` becomes the
/// `org.opencontainers.image.ref.name` of the entry (`oci:DIR:NAME` for skopeo).
pub fn write_oci_layout_dir(
    store: &Store,
    desc: &Descriptor,
    dir: &Path,
    name: Option<&str>,
) -> Result<()> {
    let blobs = reachable(store, desc)?;
    if dir
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        return Err(ExportError::DestinationNotEmpty {
            path: dir.to_owned(),
        });
    }
    for digest in blobs.keys() {
        let alg_dir = dir.join("blobs").join(digest.algorithm().as_str());
        fs::create_dir_all(&alg_dir).map_err(ExportError::io("create directory", &alg_dir))?;
        let src = store.blob_path(digest);
        let dst = alg_dir.join(digest.hex());
        let mut from = store.open_blob(digest)?;
        let mut to = fs::File::create(&dst).map_err(ExportError::io("create", &dst))?;
        io::copy(&mut from, &mut to)
            .and_then(|_| to.sync_all())
            .map_err(ExportError::io("copy", src))?;
    }
    write_atomic(&dir.join("oci-layout"), LAYOUT)?;
    // Last: a layout whose index.json exists is complete.
    write_atomic(&dir.join("index.json"), &index_json(desc, name))
}

/// Write `desc` and what it reaches into the OCI layout `dir` (created when
/// missing), which may hold an earlier export: blobs it already has are kept, the
/// new ones copied, `index.json` replaced by one entry named `name`, and then every
/// blob the new index does not reach removed (buildx rotates a local cache so).
/// Until `index.json` is replaced the layout stays the old one, complete.
pub fn rotate_oci_layout(store: &Store, desc: &Descriptor, dir: &Path, name: &str) -> Result<()> {
    let blobs = reachable(store, desc)?;
    for digest in blobs.keys() {
        let alg_dir = dir.join("blobs").join(digest.algorithm().as_str());
        let dst = alg_dir.join(digest.hex());
        if dst.is_file() {
            continue;
        }
        fs::create_dir_all(&alg_dir).map_err(ExportError::io("create directory", &alg_dir))?;
        let tmp = alg_dir.join(format!(".{}.tmp-{}", digest.hex(), std::process::id()));
        let copied = (|| {
            let mut from = store.open_blob(digest)?;
            let mut to = fs::File::create(&tmp).map_err(ExportError::io("create", &tmp))?;
            io::copy(&mut from, &mut to)
                .and_then(|_| to.sync_all())
                .map_err(ExportError::io("copy", &tmp))?;
            fs::rename(&tmp, &dst).map_err(ExportError::io("rename into place", &tmp))
        })();
        if copied.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        copied?;
    }
    write_atomic(&dir.join("oci-layout"), LAYOUT)?;
    write_atomic(&dir.join("index.json"), &index_json(desc, Some(name)))?;
    let root = dir.join("blobs");
    for alg in fs::read_dir(&root).map_err(ExportError::io("read", &root))? {
        let alg = alg.map_err(ExportError::io("read", &root))?.path();
        let Ok(entries) = fs::read_dir(&alg) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let keep = path
                .file_name()
                .and_then(|n| n.to_str())
                .zip(alg.file_name().and_then(|a| a.to_str()))
                .and_then(|(hex, a)| oci::Digest::parse(&format!("{a}:{hex}")).ok())
                .is_some_and(|d| blobs.contains_key(&d));
            if !keep && path.is_file() {
                fs::remove_file(&path).map_err(ExportError::io("remove", &path))?;
            }
        }
    }
    Ok(())
}

/// Write the same layout as [`write_oci_layout_dir`] as a tar stream into `out`
/// (what `docker buildx build --output type=oci` writes). Returns the writer.
pub fn write_oci_layout_tar<W: Write>(
    store: &Store,
    desc: &Descriptor,
    out: W,
    name: Option<&str>,
) -> Result<W> {
    let blobs = reachable(store, desc)?;
    let mut tar = tar::Builder::new(out);
    append_file(&mut tar, "oci-layout", LAYOUT)?;
    append_file(&mut tar, "index.json", &index_json(desc, name))?;
    append_dir(&mut tar, "blobs/")?;
    let mut last_alg = None;
    for digest in blobs.keys() {
        let alg = digest.algorithm().as_str();
        if last_alg != Some(alg) {
            append_dir(&mut tar, &format!("blobs/{alg}/"))?;
            last_alg = Some(alg);
        }
        let path = format!("blobs/{alg}/{}", digest.hex());
        append_blob(&mut tar, store, digest, &path)?;
    }
    tar.into_inner()
        .map_err(ExportError::output("oci layout tar"))
}

pub(crate) fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

pub(crate) fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
    tar.append_data(&mut h, path, bytes)
        .map_err(ExportError::output("archive entry"))
}

pub(crate) fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, path, io::empty())
        .map_err(ExportError::output("archive entry"))
}

pub(crate) fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    store: &Store,
    digest: &oci::Digest,
    path: &str,
) -> Result<()> {
    let size = store.blob_size(digest)?;
    let file = store.open_blob(digest)?;
    let mut h = header(tar::EntryType::Regular, 0o644, size);
    tar.append_data(&mut h, path, file)
        .map_err(ExportError::output("archive entry"))
}
