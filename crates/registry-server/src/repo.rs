//! Per-repository state: which blobs and manifests belong to a repository, its tags and
//! its referrers. Content itself lives in the content store.
//!
//! ```text
//! <root>/registry/repos/<name>/_blobs/<alg>/<hex>        link (empty file)
//! <root>/registry/repos/<name>/_manifests/<alg>/<hex>    link holding the media type
//! <root>/registry/repos/<name>/_tags/<tag>               the digest it points at
//! <root>/registry/repos/<name>/_referrers/<alg>-<hex>/<alg>-<hex>  referrer descriptor
//! <root>/registry/tmp/                                   atomic writes in progress
//! ```
//!
//! Name components never start with `_`, so these directories never collide with a
//! nested repository. Every file is replaced whole: written under `tmp/`, fsynced,
//! renamed, directory fsynced.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oci::{Descriptor, Digest};

/// The repositories' state directory.
#[derive(Debug, Clone)]
pub struct Repos {
    repos: PathBuf,
    tmp: PathBuf,
}

fn digest_file(d: &Digest) -> String {
    format!("{}-{}", d.algorithm().as_str(), d.hex())
}

fn read_opt(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn remove_opt(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn list_dir(dir: &Path) -> io::Result<Option<Vec<String>>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        if let Some(n) = e?.file_name().to_str() {
            out.push(n.to_owned());
        }
    }
    out.sort();
    Ok(Some(out))
}

impl Repos {
    pub fn open(registry_dir: &Path) -> io::Result<Repos> {
        let r = Repos {
            repos: registry_dir.join("repos"),
            tmp: registry_dir.join("tmp"),
        };
        fs::create_dir_all(&r.repos)?;
        fs::create_dir_all(&r.tmp)?;
        Ok(r)
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.repos.join(name)
    }
    fn blob_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo(name)
            .join("_blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }
    fn manifest_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo(name)
            .join("_manifests")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }
    fn tag_file(&self, name: &str, tag: &str) -> PathBuf {
        self.repo(name).join("_tags").join(tag)
    }

    /// Replace `path` whole with `bytes`.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let dir = path.parent().expect("state files have a parent");
        fs::create_dir_all(dir)?;
        content::atomic::AtomicWrite::default()
            .tmp_in(&self.tmp)
            .write(path, &[bytes])
            .map_err(|e| e.source)
    }

    pub fn exists(&self, name: &str) -> bool {
        let r = self.repo(name);
        r.join("_blobs").is_dir() || r.join("_manifests").is_dir()
    }

    pub fn link_blob(&self, name: &str, d: &Digest) -> io::Result<()> {
        self.write_atomic(&self.blob_link(name, d), b"")
    }
    pub fn has_blob(&self, name: &str, d: &Digest) -> bool {
        self.blob_link(name, d).is_file()
    }
    pub fn unlink_blob(&self, name: &str, d: &Digest) -> io::Result<bool> {
        remove_opt(&self.blob_link(name, d))
    }

    pub fn link_manifest(&self, name: &str, d: &Digest, media_type: &str) -> io::Result<()> {
        self.write_atomic(&self.manifest_link(name, d), media_type.as_bytes())
    }
    /// The media type of a manifest linked to `name`.
    pub fn manifest(&self, name: &str, d: &Digest) -> io::Result<Option<String>> {
        read_opt(&self.manifest_link(name, d))
    }
    pub fn unlink_manifest(&self, name: &str, d: &Digest) -> io::Result<bool> {
        remove_opt(&self.manifest_link(name, d))
    }

    pub fn set_tag(&self, name: &str, tag: &str, d: &Digest) -> io::Result<()> {
        self.write_atomic(&self.tag_file(name, tag), d.to_string().as_bytes())
    }
    pub fn tag(&self, name: &str, tag: &str) -> io::Result<Option<Digest>> {
        Ok(read_opt(&self.tag_file(name, tag))?.and_then(|s| Digest::parse(s.trim()).ok()))
    }
    pub fn remove_tag(&self, name: &str, tag: &str) -> io::Result<bool> {
        remove_opt(&self.tag_file(name, tag))
    }
    /// Sorted tags, `None` when the repository does not exist.
    pub fn tags(&self, name: &str) -> io::Result<Option<Vec<String>>> {
        if !self.exists(name) {
            return Ok(None);
        }
        Ok(Some(
            list_dir(&self.repo(name).join("_tags"))?.unwrap_or_default(),
        ))
    }
    /// Remove every tag of `name` pointing at `d`.
    pub fn untag_digest(&self, name: &str, d: &Digest) -> io::Result<()> {
        for t in self.tags(name)?.unwrap_or_default() {
            if self.tag(name, &t)?.as_ref() == Some(d) {
                self.remove_tag(name, &t)?;
            }
        }
        Ok(())
    }

    /// Record `desc` as a referrer of `subject` (written before the manifest's link, so
    /// a crash leaves at most an entry whose manifest is not linked, which is filtered).
    pub fn add_referrer(&self, name: &str, subject: &Digest, desc: &Descriptor) -> io::Result<()> {
        let path = self
            .repo(name)
            .join("_referrers")
            .join(digest_file(subject))
            .join(digest_file(&desc.digest));
        let bytes = serde_json::to_vec(desc).expect("descriptors serialise");
        self.write_atomic(&path, &bytes)
    }

    /// Referrers of `subject` whose manifests are still linked.
    pub fn referrers(&self, name: &str, subject: &Digest) -> io::Result<Vec<Descriptor>> {
        let dir = self
            .repo(name)
            .join("_referrers")
            .join(digest_file(subject));
        let mut out = Vec::new();
        for f in list_dir(&dir)?.unwrap_or_default() {
            let Some(bytes) = read_opt(&dir.join(&f))? else {
                continue;
            };
            let Ok(desc) = serde_json::from_str::<Descriptor>(&bytes) else {
                continue;
            };
            if self.manifest(name, &desc.digest)?.is_some() {
                out.push(desc);
            }
        }
        Ok(out)
    }

    /// Every repository name, sorted.
    pub fn catalog(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.repos.clone(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for entry in list_dir(&dir)?.unwrap_or_default() {
                if entry.starts_with('_') {
                    continue;
                }
                let name = if prefix.is_empty() {
                    entry.clone()
                } else {
                    format!("{prefix}/{entry}")
                };
                let path = dir.join(&entry);
                if !path.is_dir() {
                    continue;
                }
                if self.exists(&name) {
                    out.push(name.clone());
                }
                stack.push((path, name));
            }
        }
        out.sort();
        Ok(out)
    }

    /// GC roots: every linked manifest, and every blob linked less than `grace` ago
    /// (a push links its layers before its manifest arrives).
    pub fn gc_roots(&self, grace: Duration) -> io::Result<Vec<Descriptor>> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for name in self.catalog()? {
            for (sub, manifests) in [("_manifests", true), ("_blobs", false)] {
                for alg in ["sha256", "sha512"] {
                    let dir = self.repo(&name).join(sub).join(alg);
                    for hex in list_dir(&dir)?.unwrap_or_default() {
                        let Ok(d) = Digest::parse(&format!("{alg}:{hex}")) else {
                            continue;
                        };
                        let path = dir.join(&hex);
                        if manifests {
                            let mt = read_opt(&path)?.unwrap_or_default();
                            out.push(Descriptor::new(&mt, d, 0));
                        } else {
                            let age = fs::metadata(&path)?
                                .modified()
                                .ok()
                                .and_then(|m| now.duration_since(m).ok())
                                .unwrap_or_default();
                            if age < grace {
                                // Media type unknown: the walk reads it if it is a document.
                                out.push(Descriptor::new("", d, 0));
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Remove temporary files of writes a crash interrupted, older than `idle`.
    pub fn purge_tmp(&self, idle: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut n = 0;
        for e in fs::read_dir(&self.tmp)? {
            let path = e?.path();
            let age = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if age >= idle && remove_opt(&path)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Remove blob links whose blob is gone from the store (after GC).
    pub fn prune_links(&self, present: impl Fn(&Digest) -> bool) -> io::Result<usize> {
        let mut n = 0;
        for name in self.catalog()? {
            for alg in ["sha256", "sha512"] {
                let dir = self.repo(&name).join("_blobs").join(alg);
                for hex in list_dir(&dir)?.unwrap_or_default() {
                    if let Ok(d) = Digest::parse(&format!("{alg}:{hex}"))
                        && !present(&d)
                        && remove_opt(&dir.join(&hex))?
                    {
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }
}
