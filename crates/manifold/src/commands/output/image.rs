//! Reading the built images back out of the store: manifests and configs, root
//! filesystems unpacked in-root or written as one tar, and `force-compression`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use content::Store;
use export::Compression;
use oci::{Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform, RawDocument};

use super::normal;

pub(super) fn read_manifest(store: &Store, desc: &Descriptor) -> anyhow::Result<ImageManifest> {
    let bytes = store.read_document(&desc.digest)?;
    Ok(RawDocument::<ImageManifest>::parse(bytes)
        .with_context(|| format!("manifest {} is unreadable", desc.digest))?
        .value()
        .clone())
}

pub(super) fn read_config(store: &Store, m: &ImageManifest) -> anyhow::Result<ImageConfig> {
    let bytes = store.read_document(&m.config.digest)?;
    Ok(RawDocument::<ImageConfig>::parse(bytes)
        .with_context(|| format!("image config {} is unreadable", m.config.digest))?
        .value()
        .clone())
}

/// The manifests an index lists (a manifest stands for itself).
pub(super) fn index_manifests(
    store: &Store,
    index: &Descriptor,
) -> anyhow::Result<Vec<Descriptor>> {
    if oci::media::kind(&index.media_type) != oci::media::Kind::Index {
        return Ok(vec![index.clone()]);
    }
    let bytes = store.read_document(&index.digest)?;
    Ok(RawDocument::<ImageIndex>::parse(bytes)
        .with_context(|| format!("index {} is unreadable", index.digest))?
        .value()
        .manifests
        .clone())
}

pub(super) fn platform_of(store: &Store, m: &Descriptor) -> anyhow::Result<Platform> {
    match &m.platform {
        Some(p) => Ok(p.clone()),
        None => Ok(read_config(store, &read_manifest(store, m)?)?.platform()),
    }
}

/// Each manifest with its subdirectory (`linux_amd64`, as buildx names them) when
/// there are several platforms.
pub(super) fn per_platform(
    store: &Store,
    manifests: &[Descriptor],
) -> anyhow::Result<Vec<(Descriptor, Option<String>)>> {
    if let [one] = manifests {
        return Ok(vec![(one.clone(), None)]);
    }
    manifests
        .iter()
        .map(|m| {
            let dir = platform_of(store, m)?.to_string().replace('/', "_");
            Ok((m.clone(), Some(dir)))
        })
        .collect()
}

/// Unpack the image `manifest` into `dir` (created when missing), in-root, with
/// whiteouts applied.
pub(super) fn unpack(store: &Store, manifest: &Descriptor, dir: &Path) -> anyhow::Result<()> {
    let m = read_manifest(store, manifest)?;
    let config = read_config(store, &m)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != m.layers.len() {
        bail!(
            "image {} has {} layers but {} diff_ids",
            manifest.digest,
            m.layers.len(),
            diff_ids.len()
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let root =
        archive::Root::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let opts = if rustix::process::geteuid().is_root() {
        archive::ApplyOptions::privileged()
    } else {
        archive::ApplyOptions::rootless()
    };
    for (layer, diff_id) in m.layers.iter().zip(diff_ids) {
        let blob = store.open_blob(&layer.digest)?;
        let expected = archive::Expected {
            digest: Some(layer.digest.clone()),
            size: Some(layer.size),
            diff_id: Some(diff_id.clone()),
        };
        archive::apply_blob(&root, blob, Some(&layer.media_type), &expected, &opts).with_context(
            || {
                format!(
                    "cannot unpack layer {} into {}",
                    layer.digest,
                    dir.display()
                )
            },
        )?;
    }
    Ok(())
}

/// A directory under the state root removed (with its contents) on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(store: &Store) -> anyhow::Result<ScratchDir> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = store
            .root()
            .join("tmp")
            .join(format!("output-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The root filesystem of each platform as one deterministic tar (under
/// `linux_amd64/`… when there are several).
pub(super) fn write_fs_tar(
    store: &Store,
    manifests: &[Descriptor],
    w: &mut dyn Write,
) -> anyhow::Result<()> {
    let scratch = ScratchDir::new(store)?;
    let empty = scratch.0.join("empty");
    fs::create_dir(&empty).with_context(|| format!("cannot create {}", empty.display()))?;
    let mut changes = Vec::new();
    for (i, (m, sub)) in per_platform(store, manifests)?.into_iter().enumerate() {
        let fs_dir = scratch.0.join(format!("fs{i}"));
        unpack(store, &m, &fs_dir)?;
        let diff = archive::diff_dirs(&empty, &fs_dir)
            .with_context(|| format!("cannot read {}", fs_dir.display()))?;
        let Some(sub) = sub else {
            changes.extend(diff);
            continue;
        };
        changes.push(archive::Change::Add(archive::Entry {
            path: PathBuf::from(&sub),
            kind: archive::EntryKind::Dir,
            meta: archive::Metadata {
                mode: 0o755,
                ..archive::Metadata::default()
            },
        }));
        let prefixed = |p: PathBuf| {
            let rel = p.strip_prefix("/").map(Path::to_path_buf).unwrap_or(p);
            Path::new(&sub).join(rel)
        };
        changes.extend(diff.into_iter().map(|c| match c {
            archive::Change::Add(mut e) => {
                e.path = prefixed(e.path);
                archive::Change::Add(e)
            }
            archive::Change::Modify(mut e) => {
                e.path = prefixed(e.path);
                archive::Change::Modify(e)
            }
            archive::Change::Delete(p) => archive::Change::Delete(prefixed(p)),
            archive::Change::OpaqueDir(p) => archive::Change::OpaqueDir(prefixed(p)),
        }));
    }
    archive::write_layer(w, changes, &archive::WriteOptions::default())
        .context("cannot write the filesystem tar")?;
    Ok(())
}

/// `force-compression=true`: every layer in `compression`. Base layers in another
/// compression are recompressed; the manifests and the index are written anew and
/// the `-t` names moved to the new index. Returns the index to output.
pub(super) fn force_compression(
    store: &Store,
    built: &builder::BuildOutput,
    compression: Compression,
    oci_mediatypes: bool,
    tags: &[String],
) -> anyhow::Result<Descriptor> {
    let want = compression.media_type(oci_mediatypes);
    let lease = store.lease()?;
    let lopts = export::LayerOptions {
        compression,
        source_date_epoch: None,
        oci_mediatypes,
        use_cache: true,
    };
    let mut changed = false;
    let mut manifests = Vec::new();
    for desc in &built.manifests {
        let mut m = read_manifest(store, desc)?;
        let mut touched = false;
        for layer in &mut m.layers {
            if oci::media::kind(&layer.media_type) == oci::media::kind(want) {
                store.protect(&lease, &layer.digest)?;
                continue;
            }
            let codec =
                archive::Compression::from_media_type(&layer.media_type).with_context(|| {
                    format!("layer {} has media type {}", layer.digest, layer.media_type)
                })?;
            let blob = io::BufReader::new(store.open_blob(&layer.digest)?);
            let tar = archive::decompress(blob, Some(codec))?;
            let l = export::export_tar(store, &lease, tar, &lopts)
                .with_context(|| format!("cannot recompress layer {}", layer.digest))?;
            *layer = l.descriptor;
            touched = true;
        }
        if !touched {
            manifests.push(desc.clone());
            continue;
        }
        changed = true;
        store.protect(&lease, &m.config.digest)?;
        let media_type = m
            .media_type
            .clone()
            .unwrap_or_else(|| desc.media_type.clone());
        let doc = RawDocument::from_value(m);
        let mut new = store.put_bytes(&lease, &media_type, doc.bytes())?;
        new.platform = desc.platform.clone();
        manifests.push(new);
    }
    if !changed {
        return Ok(built.index.clone());
    }
    let index = export::assemble_index(store, &lease, manifests, Default::default())?;
    for t in tags {
        export::tag(store, &normal(t), &index)?;
    }
    Ok(index)
}
