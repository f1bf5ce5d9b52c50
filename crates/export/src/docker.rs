//! `docker save` archives (what `docker load` and `skopeo … docker-archive:` read).
//!
//! ```text
//! <config hex>.json          the image config, exact bytes
//! <diff_id hex>/layer.tar    each layer, uncompressed (docker's classic format)
//! manifest.json              [{"Config":…,"RepoTags":[…],"Layers":[…]}]
//! repositories               {"<repo>":{"<tag>":"<top layer id>"}} (when tagged)
//! ```
//!
//! Deterministic like the layout tar: fixed order, owner 0:0, mtime 0.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};

use archive::HashingReader;
use content::Store;
use oci::{Descriptor, Digest, ImageConfig, RawDocument, Reference};

use crate::error::{ExportError, Result};
use crate::layout::{append_dir, append_file, header};
use crate::walk::{image_blobs, manifests};

/// Write the image `desc` names as a docker archive into `out`, tagged with `tags`
/// (`name:tag`, docker's short forms accepted). `desc` may be an index with one
/// manifest; several platforms are an error, as docker's archive holds one.
pub fn write_docker_archive<W: Write>(
    store: &Store,
    desc: &Descriptor,
    tags: &[&str],
    out: W,
) -> Result<W> {
    let tags = parse_tags(tags)?;
    let mut found = manifests(store, desc)?;
    // A docker archive holds images only: attestations are dropped, as `--load` does.
    found.retain(|m| !crate::attest::is_attestation(m));
    if found.len() != 1 {
        return Err(ExportError::MultiplePlatforms {
            digest: desc.digest.clone(),
            count: found.len(),
        });
    }
    let blobs = image_blobs(store, &found.remove(0))?;
    let config_bytes = store.read_document(&blobs.config.digest)?;
    let config = RawDocument::<ImageConfig>::parse(config_bytes.clone()).map_err(|source| {
        ExportError::Document {
            what: "config",
            digest: blobs.config.digest.clone(),
            source,
        }
    })?;
    let diff_ids = &config.value().rootfs.diff_ids;
    if diff_ids.len() != blobs.layers.len() {
        return Err(ExportError::BaseLayers {
            manifest: blobs.manifest.digest.clone(),
            layers: blobs.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let mut tar = tar::Builder::new(out);
    let config_name = format!("{}.json", blobs.config.digest.hex());
    append_file(&mut tar, &config_name, &config_bytes)?;
    let mut layer_names = Vec::new();
    let mut written = std::collections::HashSet::new();
    for (layer, diff_id) in blobs.layers.iter().zip(diff_ids) {
        let name = format!("{}/layer.tar", diff_id.hex());
        if written.insert(diff_id.clone()) {
            append_dir(&mut tar, &format!("{}/", diff_id.hex()))?;
            append_uncompressed(&mut tar, store, layer, diff_id, &name)?;
        }
        layer_names.push(name);
    }
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
        "Layers": layer_names,
    }]);
    let manifest = serde_json::to_vec(&manifest).expect("JSON values always serialise");
    append_file(&mut tar, "manifest.json", &manifest)?;
    if let Some(top) = diff_ids.last().filter(|_| !tags.is_empty()) {
        let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for t in &tags {
            let familiar = t.familiar();
            let tag = t.tag().unwrap_or("latest");
            let repo = familiar
                .strip_suffix(&format!(":{tag}"))
                .unwrap_or(&familiar);
            repos
                .entry(repo.to_owned())
                .or_default()
                .insert(tag.to_owned(), top.hex().to_owned());
        }
        let repos = serde_json::to_vec(&repos).expect("maps of strings always serialise");
        append_file(&mut tar, "repositories", &repos)?;
    }
    tar.into_inner()
        .map_err(ExportError::output("docker archive"))
}

fn parse_tags(tags: &[&str]) -> Result<Vec<Reference>> {
    tags.iter()
        .map(|t| {
            let r = Reference::parse(t).map_err(|source| ExportError::InvalidTag {
                tag: (*t).to_owned(),
                source,
            })?;
            if r.digest().is_some() {
                return Err(ExportError::DigestTag {
                    tag: (*t).to_owned(),
                });
            }
            Ok(r)
        })
        .collect()
}

/// Append `layer` decompressed. The tar header needs the size first, so the blob
/// is decompressed twice: once to count (and check the diff_id), once to copy.
fn append_uncompressed<W: Write>(
    tar: &mut tar::Builder<W>,
    store: &Store,
    layer: &Descriptor,
    diff_id: &Digest,
    name: &str,
) -> Result<()> {
    let compression =
        crate::layer::codec_of(&layer.media_type).ok_or_else(|| ExportError::NotAnImage {
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
        })?;
    let open = || -> Result<Box<dyn Read>> {
        let file = BufReader::new(store.open_blob(&layer.digest)?);
        let budget = archive::Budget::default();
        Ok(Box::new(archive::decompress_limited(
            file,
            Some(compression),
            &budget,
        )?))
    };
    let mut counted = HashingReader::new(open()?);
    io::copy(&mut counted, &mut io::sink()).map_err(ExportError::io(
        "decompress layer",
        store.blob_path(&layer.digest),
    ))?;
    let (actual, size, _) = counted.finish().map_err(ExportError::io(
        "decompress layer",
        store.blob_path(&layer.digest),
    ))?;
    if actual != *diff_id {
        return Err(archive::ArchiveError::DigestMismatch {
            what: "uncompressed",
            expected: diff_id.clone(),
            actual,
        }
        .into());
    }
    let mut h = header(tar::EntryType::Regular, 0o644, size);
    tar.append_data(&mut h, name, open()?)
        .map_err(ExportError::output("docker archive"))
}
