//! The file sinks of a built image: an [`Output`] written from the store where the
//! build was asked for. OCI layouts (a directory or a tar), a docker archive, each
//! platform's root filesystem unpacked in-root or as one deterministic tar, and
//! `--load` into docker or podman; `force-compression` rewrites the image first.
//!
//! Files are written to a temporary file beside the destination, synced and
//! renamed, so a failed export leaves no partial file.

use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use content::Store;
use oci::{Descriptor, ImageConfig, ImageIndex, Platform, RawDocument, Reference};

use crate::error::{ExportError, Result};
use crate::image::read_manifest;
use crate::layer::{Compression, LayerOptions, export_tar};
use crate::output::{Dest, Kind, Output};

/// Write the file output `o` of the image `index` (whose manifests are `manifests`),
/// named `names`, to its destination; standard output is `stdout`. Image outputs
/// and `type=docker` without a destination (a load) write nothing here.
pub fn write_output(
    store: &Store,
    index: &Descriptor,
    manifests: &[Descriptor],
    o: &Output,
    names: &[String],
    stdout: &mut dyn Write,
) -> Result<()> {
    match (&o.kind, &o.dest) {
        (Kind::Image { .. }, _) | (Kind::Docker, None) | (_, None) => Ok(()),
        (Kind::Oci { tar: false }, Some(Dest::Path(dir))) => {
            let name = names.first().map(|n| oci_ref_name(n));
            crate::write_oci_layout_dir(store, index, dir, name.as_deref())
        }
        (Kind::Oci { .. }, Some(dest)) => {
            let name = names.first().map(|n| oci_ref_name(n));
            write_to(dest, stdout, "OCI layout tar", &mut |w| {
                crate::write_oci_layout_tar(store, index, w, name.as_deref()).map(drop)
            })
        }
        (Kind::Docker, Some(dest)) => {
            let [manifest] = manifests else {
                return Err(ExportError::MultiplePlatforms {
                    digest: index.digest.clone(),
                    count: manifests.len(),
                });
            };
            let tags: Vec<&str> = names.iter().map(String::as_str).collect();
            write_to(dest, stdout, "docker archive", &mut |w| {
                crate::write_docker_archive(store, manifest, &tags, w).map(drop)
            })
        }
        (Kind::Local, Some(Dest::Path(dir))) => {
            for (m, sub) in per_platform(store, manifests)? {
                let target = match &sub {
                    Some(s) => dir.join(s),
                    None => dir.clone(),
                };
                unpack(store, &m, &target)?;
            }
            Ok(())
        }
        (Kind::Local, Some(Dest::Stdout)) => Err(ExportError::Destination {
            what: "a directory",
            dest: "standard output".into(),
        }),
        (Kind::Tar, Some(dest)) => write_to(dest, stdout, "filesystem tar", &mut |w| {
            write_fs_tar(store, manifests, w)
        }),
    }
}

/// The `org.opencontainers.image.ref.name` buildx gives an OCI layout's entry: the
/// tag of the image's name.
pub fn oci_ref_name(name: &str) -> String {
    Reference::parse(name)
        .ok()
        .and_then(|r| r.tag().map(str::to_owned))
        .unwrap_or_else(|| "latest".to_owned())
}

/// Write through `f` to `stdout` or to a file (a temp file beside it, synced and
/// renamed into place when complete, removed otherwise).
fn write_to(
    dest: &Dest,
    stdout: &mut dyn Write,
    what: &'static str,
    f: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let path = match dest {
        Dest::Stdout => {
            let mut w = BufWriter::new(stdout);
            f(&mut w)?;
            return w.flush().map_err(ExportError::output(what));
        }
        Dest::Path(path) => path,
    };
    let Some(name) = path.file_name() else {
        return Err(ExportError::Destination {
            what: "a file name",
            dest: path.clone(),
        });
    };
    if path.is_dir() {
        return Err(ExportError::Destination {
            what: "a file, not a directory",
            dest: path.clone(),
        });
    }
    let tmp = path.with_file_name(format!(
        ".{}.manifold-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = fs::File::create(&tmp).map_err(ExportError::io("create", &tmp))?;
        let mut w = BufWriter::new(file);
        f(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| ExportError::io("write", &tmp)(e.into_error()))?;
        file.sync_all().map_err(ExportError::io("write", &tmp))?;
        fs::rename(&tmp, path).map_err(ExportError::io("rename into place", &tmp))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn read_config(store: &Store, manifest: &Descriptor) -> Result<(oci::ImageManifest, ImageConfig)> {
    let m = read_manifest(store, manifest)?.value().clone();
    let bytes = store.read_document(&m.config.digest)?;
    let config = RawDocument::<ImageConfig>::parse(bytes)
        .map_err(|source| ExportError::Document {
            what: "image config",
            digest: m.config.digest.clone(),
            source,
        })?
        .value()
        .clone();
    Ok((m, config))
}

/// The image manifests an index lists, attestation manifests left out (a manifest
/// stands for itself).
pub fn index_manifests(store: &Store, index: &Descriptor) -> Result<Vec<Descriptor>> {
    if oci::media::kind(&index.media_type) != oci::media::Kind::Index {
        return Ok(vec![index.clone()]);
    }
    Ok(crate::walk::read_index(store, &index.digest)?
        .value()
        .manifests
        .iter()
        .filter(|m| !crate::attest::is_attestation(m))
        .cloned()
        .collect())
}

/// The config of `image` when it is a manifest; `None` for an index.
pub fn config_of(store: &Store, image: &Descriptor) -> Result<Option<Descriptor>> {
    if oci::media::kind(&image.media_type) != oci::media::Kind::Manifest {
        return Ok(None);
    }
    Ok(Some(read_manifest(store, image)?.value().config.clone()))
}

/// The platform of manifest `m`: its descriptor's, else its config's.
pub fn platform_of(store: &Store, m: &Descriptor) -> Result<Platform> {
    match &m.platform {
        Some(p) => Ok(p.clone()),
        None => Ok(read_config(store, m)?.1.platform()),
    }
}

/// Each manifest with its subdirectory (`linux_amd64`, as buildx names them) when
/// there are several platforms.
fn per_platform(
    store: &Store,
    manifests: &[Descriptor],
) -> Result<Vec<(Descriptor, Option<String>)>> {
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
/// whiteouts applied; owners kept when running as root.
pub fn unpack(store: &Store, manifest: &Descriptor, dir: &Path) -> Result<()> {
    let (m, config) = read_config(store, manifest)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != m.layers.len() {
        return Err(ExportError::BaseLayers {
            manifest: manifest.digest.clone(),
            layers: m.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    fs::create_dir_all(dir).map_err(ExportError::io("create", dir))?;
    let root = archive::Root::open(dir).map_err(|source| ExportError::Unpack {
        layer: None,
        dir: dir.to_owned(),
        source: Box::new(source),
    })?;
    // The host's root writes the image's owners; anyone else (a rootless build too)
    // gets files of its own, as a client writing buildx's local output would.
    let opts = if content::identity::identity().is_host_root() {
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
        archive::apply_blob(&root, blob, Some(&layer.media_type), &expected, &opts).map_err(
            |source| ExportError::Unpack {
                layer: Some(layer.digest.clone()),
                dir: dir.to_owned(),
                source: Box::new(source),
            },
        )?;
    }
    Ok(())
}

/// A directory under the state root removed (with its contents) on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(store: &Store) -> Result<ScratchDir> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = store
            .root()
            .join("tmp")
            .join(format!("output-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).map_err(ExportError::io("create", &dir))?;
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
pub fn write_fs_tar(store: &Store, manifests: &[Descriptor], w: &mut dyn Write) -> Result<()> {
    let scratch = ScratchDir::new(store)?;
    let empty = scratch.0.join("empty");
    fs::create_dir(&empty).map_err(ExportError::io("create", &empty))?;
    let mut changes = Vec::new();
    for (i, (m, sub)) in per_platform(store, manifests)?.into_iter().enumerate() {
        let fs_dir = scratch.0.join(format!("fs{i}"));
        unpack(store, &m, &fs_dir)?;
        let diff = archive::diff_dirs(&empty, &fs_dir)?;
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
    archive::write_layer(w, changes, &archive::WriteOptions::default())?;
    Ok(())
}

/// `force-compression=true`: every layer of `manifests` in `compression`. Base
/// layers in another compression are recompressed and the manifests written anew
/// (their descriptors keep platform and annotations); `None` when every layer
/// already was.
pub fn force_compression(
    store: &Store,
    lease: &content::Lease,
    manifests: &[Descriptor],
    compression: Compression,
    oci_mediatypes: bool,
) -> Result<Option<Vec<Descriptor>>> {
    let want = compression.media_type(oci_mediatypes);
    let lopts = LayerOptions {
        compression,
        source_date_epoch: None,
        oci_mediatypes,
        use_cache: true,
    };
    let mut changed = false;
    let mut out = Vec::new();
    for desc in manifests {
        let mut m = read_manifest(store, desc)?.value().clone();
        let mut touched = false;
        for layer in &mut m.layers {
            if oci::media::kind(&layer.media_type) == oci::media::kind(want) {
                store.protect(lease, &layer.digest)?;
                continue;
            }
            let codec =
                archive::Compression::from_media_type(&layer.media_type).ok_or_else(|| {
                    ExportError::LayerMediaType {
                        digest: layer.digest.clone(),
                        media_type: layer.media_type.clone(),
                    }
                })?;
            let blob = io::BufReader::new(store.open_blob(&layer.digest)?);
            let tar = archive::decompress_limited(blob, Some(codec), &archive::Budget::default())?;
            *layer = export_tar(store, lease, tar, &lopts)?.descriptor;
            touched = true;
        }
        if !touched {
            out.push(desc.clone());
            continue;
        }
        changed = true;
        store.protect(lease, &m.config.digest)?;
        let media_type = m
            .media_type
            .clone()
            .unwrap_or_else(|| desc.media_type.clone());
        let doc = RawDocument::from_value(m);
        let mut new = store.put_bytes(lease, &media_type, doc.bytes())?;
        new.platform = desc.platform.clone();
        new.annotations = desc.annotations.clone();
        out.push(new);
    }
    Ok(changed.then_some(out))
}

/// `--load`: hand the host platform's image (of `manifests`, under `tags`) to
/// docker or podman when one answers. What happened, in a sentence.
pub fn load(
    store: &Store,
    index: &Descriptor,
    manifests: &[Descriptor],
    tags: &[String],
) -> Result<String> {
    let Some(cli) = ["docker", "podman"].into_iter().find(|c| engine_answers(c)) else {
        let shown = tags
            .first()
            .cloned()
            .unwrap_or_else(|| index.digest.to_string());
        return Ok(format!(
            "no docker or podman engine answered: the image is in manifold's store \
             (`manifold run {shown}` runs it)"
        ));
    };
    let host = Platform::host();
    let chosen = match manifests {
        [one] => one.clone(),
        _ => {
            let listed = ImageIndex {
                manifests: manifests.to_vec(),
                ..ImageIndex::new()
            };
            listed
                .manifest_for(&host)
                .cloned()
                .unwrap_or_else(|| manifests[0].clone())
        }
    };
    let platform = platform_of(store, &chosen)?;
    let failed = |source| ExportError::Load {
        cli,
        message: String::new(),
        source: Some(source),
    };
    let mut child = engine(cli)
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stdin = child.stdin.take().expect("invariant: stdin was piped");
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let written = crate::write_docker_archive(store, &chosen, &tag_refs, BufWriter::new(stdin))
        .and_then(|w| {
            w.into_inner()
                .map(drop)
                .map_err(|e| ExportError::output("the image to the engine")(e.into_error()))
        });
    let status = child.wait().map_err(failed)?;
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        return Err(ExportError::Load {
            cli,
            message: format!(
                "{status}: {}",
                format!("{}{}", err.trim(), out.trim()).trim()
            ),
            source: None,
        });
    }
    written?;
    Ok(match manifests.len() {
        1 => format!("loaded {platform} into {cli}"),
        _ => format!("loaded {platform} into {cli}; the other platforms stay in manifold's store"),
    })
}

/// Whether `cli` is on PATH and `cli info` succeeds within 30 s.
/// `cli args…`. Inside manifold's rootless user namespace podman would take itself for
/// the host's root (uid 0); told that its namespace is set up already, it uses the
/// user's own rootless storage, as when it makes the same namespace itself.
fn engine(cli: &str) -> Command {
    let mut cmd = Command::new(cli);
    if let content::identity::Identity::Namespaced {
        outer_uid,
        outer_gid,
        ..
    } = content::identity::identity()
    {
        cmd.env("_CONTAINERS_USERNS_CONFIGURED", "done")
            .env("_CONTAINERS_ROOTLESS_UID", outer_uid.to_string())
            .env("_CONTAINERS_ROOTLESS_GID", outer_gid.to_string());
    }
    cmd
}

fn engine_answers(cli: &str) -> bool {
    let Ok(mut child) = engine(cli)
        .arg("info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn oci_ref_name_is_the_tag() {
        assert_eq!(super::oci_ref_name("localhost:5000/app:v1"), "v1");
        assert_eq!(super::oci_ref_name("app"), "latest");
    }
}
