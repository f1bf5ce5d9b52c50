//! An image checker in the spirit of go-containerregistry's `validate`: it reads
//! everything an image references and reports each problem it finds instead of
//! stopping at the first.

use std::collections::HashSet;
use std::io::{self, BufReader, Read};

use archive::{Compression, HashingReader};
use content::Store;
use oci::{
    Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform, RawDocument, media,
};

/// One thing wrong with an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("{what} {digest} is missing from the store")]
    MissingBlob { what: &'static str, digest: Digest },
    #[error("{what} {digest} hashes to {actual}")]
    DigestMismatch {
        what: &'static str,
        digest: Digest,
        actual: Digest,
    },
    #[error("{what} {digest} is {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        what: &'static str,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{what} {digest} cannot be read: {reason}")]
    Unreadable {
        what: &'static str,
        digest: Digest,
        reason: String,
    },
    #[error(
        "{what} {digest} has media type {media_type:?}, not of the {family} family of its parent"
    )]
    MixedMediaTypes {
        what: &'static str,
        digest: Digest,
        media_type: String,
        family: &'static str,
    },
    #[error("{what} {digest} has unexpected media type {media_type:?}")]
    UnexpectedMediaType {
        what: &'static str,
        digest: Digest,
        media_type: String,
    },
    #[error("manifest {manifest} has {layers} layers but its config lists {diff_ids} diff_ids")]
    DiffIdCount {
        manifest: Digest,
        layers: usize,
        diff_ids: usize,
    },
    #[error("layer {layer} decompresses to {actual}, the config says {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("config {config} has {history} history entries that add a layer, for {layers} layers")]
    HistoryMismatch {
        config: Digest,
        history: usize,
        layers: usize,
    },
    #[error("layer {layer} has {path:?} more than once")]
    DuplicatePath { layer: Digest, path: String },
    #[error("index entry {manifest} has no platform")]
    MissingPlatform { manifest: Digest },
    #[error("attestation manifest {manifest} is about {subject}, which the index does not list")]
    AttestationSubject { manifest: Digest, subject: String },
    #[error("index entry {manifest} says {index} but its config says {config}")]
    PlatformMismatch {
        manifest: Digest,
        index: String,
        config: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Oci,
    Docker,
}

impl Family {
    fn of(media_type: &str) -> Option<Family> {
        if media_type.starts_with("application/vnd.oci.") {
            Some(Family::Oci)
        } else if media_type.starts_with("application/vnd.docker.") {
            Some(Family::Docker)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Oci => "oci",
            Family::Docker => "docker",
        }
    }
}

/// Check the image or index `desc` names in `store`; an empty list means valid.
///
/// Every referenced blob must be present and hash to its descriptor's digest and
/// size; manifests, configs and layers must use one media type family; the config
/// must list one diff_id per layer, each layer must decompress to its diff_id and
/// hold no path twice; a non-empty history must have one entry per layer that adds
/// one; index entries must carry the platform their config declares.
pub fn validate(store: &Store, desc: &Descriptor) -> Vec<Problem> {
    let mut v = Validator {
        store,
        problems: Vec::new(),
    };
    match media::kind(&desc.media_type) {
        media::Kind::Index => v.index(desc),
        media::Kind::Manifest => v.manifest(desc, None),
        _ => v.problems.push(Problem::UnexpectedMediaType {
            what: "image",
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
        }),
    }
    v.problems
}

struct Validator<'a> {
    store: &'a Store,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    /// Read a document blob and check it against its descriptor.
    fn document(&mut self, what: &'static str, d: &Descriptor) -> Option<Vec<u8>> {
        let bytes = match self.store.read_document(&d.digest) {
            Ok(b) => b,
            Err(content::StoreError::NotFound(_)) => {
                self.problems.push(Problem::MissingBlob {
                    what,
                    digest: d.digest.clone(),
                });
                return None;
            }
            Err(e) => {
                self.unreadable(what, &d.digest, e);
                return None;
            }
        };
        let actual = Digest::of(d.digest.algorithm(), &bytes);
        if actual != d.digest {
            self.problems.push(Problem::DigestMismatch {
                what,
                digest: d.digest.clone(),
                actual,
            });
        }
        if bytes.len() as u64 != d.size {
            self.problems.push(Problem::SizeMismatch {
                what,
                digest: d.digest.clone(),
                expected: d.size,
                actual: bytes.len() as u64,
            });
        }
        Some(bytes)
    }

    fn unreadable(&mut self, what: &'static str, digest: &Digest, e: impl std::fmt::Display) {
        self.problems.push(Problem::Unreadable {
            what,
            digest: digest.clone(),
            reason: e.to_string(),
        });
    }

    fn family(&mut self, what: &'static str, d: &Descriptor, family: Option<Family>) {
        if let (Some(want), got) = (family, Family::of(&d.media_type))
            && got != Some(want)
        {
            self.problems.push(Problem::MixedMediaTypes {
                what,
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                family: want.name(),
            });
        }
    }

    fn index(&mut self, desc: &Descriptor) {
        let Some(bytes) = self.document("index", desc) else {
            return;
        };
        let index = match RawDocument::<ImageIndex>::parse(bytes) {
            Ok(i) => i,
            Err(e) => return self.unreadable("index", &desc.digest, e),
        };
        let family = Family::of(&desc.media_type);
        let images: Vec<String> = index
            .value()
            .manifests
            .iter()
            .filter(|m| !crate::attest::is_attestation(m))
            .map(|m| m.digest.to_string())
            .collect();
        for m in &index.value().manifests {
            if crate::attest::is_attestation(m) {
                self.attestation(m, &images);
                continue;
            }
            if media::kind(&m.media_type) != media::Kind::Manifest {
                self.problems.push(Problem::UnexpectedMediaType {
                    what: "index entry",
                    digest: m.digest.clone(),
                    media_type: m.media_type.clone(),
                });
                continue;
            }
            self.family("manifest", m, family);
            if m.platform.is_none() {
                self.problems.push(Problem::MissingPlatform {
                    manifest: m.digest.clone(),
                });
            }
            self.manifest(m, m.platform.as_ref());
        }
    }

    /// An attestation manifest (BuildKit's layout): its documents whole, its layers
    /// in-toto statements, and about an image the index lists.
    fn attestation(&mut self, desc: &Descriptor, images: &[String]) {
        let subject = desc
            .annotations
            .get(crate::attest::REFERENCE_DIGEST)
            .cloned()
            .unwrap_or_default();
        if !images.contains(&subject) {
            self.problems.push(Problem::AttestationSubject {
                manifest: desc.digest.clone(),
                subject,
            });
        }
        let Some(bytes) = self.document("attestation manifest", desc) else {
            return;
        };
        let manifest = match RawDocument::<ImageManifest>::parse(bytes) {
            Ok(m) => m,
            Err(e) => return self.unreadable("attestation manifest", &desc.digest, e),
        };
        let m = manifest.value();
        self.document("attestation config", &m.config);
        for l in &m.layers {
            if l.media_type != crate::attest::IN_TOTO {
                self.problems.push(Problem::UnexpectedMediaType {
                    what: "attestation layer",
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                });
                continue;
            }
            if let Some(b) = self.document("attestation statement", l)
                && serde_json::from_slice::<serde_json::Value>(&b).is_err()
            {
                self.unreadable("attestation statement", &l.digest, "not JSON");
            }
        }
    }

    fn manifest(&mut self, desc: &Descriptor, platform: Option<&Platform>) {
        let Some(bytes) = self.document("manifest", desc) else {
            return;
        };
        let manifest = match RawDocument::<ImageManifest>::parse(bytes) {
            Ok(m) => m,
            Err(e) => return self.unreadable("manifest", &desc.digest, e),
        };
        let m = manifest.value();
        let family = Family::of(&desc.media_type);
        if media::kind(&m.config.media_type) != media::Kind::Config {
            self.problems.push(Problem::UnexpectedMediaType {
                what: "config",
                digest: m.config.digest.clone(),
                media_type: m.config.media_type.clone(),
            });
        }
        self.family("config", &m.config, family);
        for l in &m.layers {
            self.family("layer", l, family);
        }
        let config =
            self.document("config", &m.config).and_then(
                |b| match RawDocument::<ImageConfig>::parse(b) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.unreadable("config", &m.config.digest, e);
                        None
                    }
                },
            );
        let Some(config) = config else {
            // Without a config, still check the layer blobs themselves.
            for l in &m.layers {
                self.layer(l, None);
            }
            return;
        };
        let c = config.value();
        if c.rootfs.diff_ids.len() != m.layers.len() {
            self.problems.push(Problem::DiffIdCount {
                manifest: desc.digest.clone(),
                layers: m.layers.len(),
                diff_ids: c.rootfs.diff_ids.len(),
            });
        }
        if !c.history.is_empty() && c.layer_history_len() != m.layers.len() {
            self.problems.push(Problem::HistoryMismatch {
                config: m.config.digest.clone(),
                history: c.layer_history_len(),
                layers: m.layers.len(),
            });
        }
        if let Some(p) = platform {
            let (want, got) = (p.normalize(), c.platform().normalize());
            if (&want.os, &want.architecture, &want.variant)
                != (&got.os, &got.architecture, &got.variant)
            {
                self.problems.push(Problem::PlatformMismatch {
                    manifest: desc.digest.clone(),
                    index: want.to_string(),
                    config: got.to_string(),
                });
            }
        }
        for (i, l) in m.layers.iter().enumerate() {
            self.layer(l, c.rootfs.diff_ids.get(i));
        }
    }

    fn layer(&mut self, d: &Descriptor, diff_id: Option<&Digest>) {
        if !d.urls.is_empty() && !self.store.contains(&d.digest) {
            return; // a foreign layer lives elsewhere
        }
        let Some(compression) = crate::layer::codec_of(&d.media_type) else {
            self.problems.push(Problem::UnexpectedMediaType {
                what: "layer",
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
            });
            return;
        };
        let file = match self.store.open_blob(&d.digest) {
            Ok(f) => f,
            Err(content::StoreError::NotFound(_)) => {
                self.problems.push(Problem::MissingBlob {
                    what: "layer",
                    digest: d.digest.clone(),
                });
                return;
            }
            Err(e) => return self.unreadable("layer", &d.digest, e),
        };
        let mut blob = HashingReader::with_algorithm(file, d.digest.algorithm());
        let scanned = scan_tar(&mut blob, compression);
        let drained = io::copy(&mut blob, &mut io::sink());
        let (actual, size, _) = match blob.finish() {
            Ok(r) => r,
            Err(e) => return self.unreadable("layer", &d.digest, e),
        };
        if let Err(e) = drained {
            return self.unreadable("layer", &d.digest, e);
        }
        if actual != d.digest {
            self.problems.push(Problem::DigestMismatch {
                what: "layer",
                digest: d.digest.clone(),
                actual,
            });
        }
        if size != d.size {
            self.problems.push(Problem::SizeMismatch {
                what: "layer",
                digest: d.digest.clone(),
                expected: d.size,
                actual: size,
            });
        }
        match scanned {
            Err(reason) => self.problems.push(Problem::Unreadable {
                what: "layer",
                digest: d.digest.clone(),
                reason,
            }),
            Ok((got, dups)) => {
                for path in dups {
                    self.problems.push(Problem::DuplicatePath {
                        layer: d.digest.clone(),
                        path,
                    });
                }
                if let Some(want) = diff_id
                    && *want != got
                {
                    self.problems.push(Problem::DiffIdMismatch {
                        layer: d.digest.clone(),
                        expected: want.clone(),
                        actual: got,
                    });
                }
            }
        }
    }
}

/// Decompress and read a layer tar: its diff_id and the paths it holds twice.
fn scan_tar(blob: &mut impl Read, c: Compression) -> Result<(Digest, Vec<String>), String> {
    let decoder =
        archive::decompress_limited(BufReader::new(blob), Some(c), &archive::Budget::default())
            .map_err(|e| e.to_string())?;
    let mut raw = HashingReader::new(decoder);
    let mut seen = HashSet::new();
    let mut dups = Vec::new();
    {
        // The guard bounds GNU long names and PAX headers before the crate reads them.
        let guarded = archive::HeaderGuard::new(&mut raw, &archive::Limits::default());
        let mut tar = tar::Archive::new(guarded);
        for entry in tar.entries().map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let path = normalize(&entry.path_bytes());
            if !seen.insert(path.clone()) {
                dups.push(path);
            }
        }
    }
    let (diff_id, _, _) = raw.finish().map_err(|e| e.to_string())?;
    Ok((diff_id, dups))
}

/// A tar name as a path in the image: no leading `./` or `/`, no trailing `/`.
fn normalize(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    let mut s: &str = &s;
    loop {
        let t = s.trim_start_matches('/');
        let t = t.strip_prefix("./").unwrap_or(t);
        if t == s {
            break;
        }
        s = t;
    }
    let s = s.trim_end_matches('/');
    if s.is_empty() || s == "." {
        ".".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn tar_names_normalize_to_one_spelling() {
        assert_eq!(normalize(b"./etc/"), "etc");
        assert_eq!(normalize(b"/etc"), "etc");
        assert_eq!(normalize(b"etc/passwd"), "etc/passwd");
        assert_eq!(normalize(b"./"), ".");
        assert_eq!(normalize(b"/"), ".");
    }
}
