//! Reading from a registry: manifests (capped, verified) and blobs (streamed into the
//! store, verified, resumed with `Range` after a dropped connection).

use reqwest::{StatusCode, header};

use content::{Expected, Lease, Store};
use oci::{Descriptor, Digest, Hasher, ImageConfig, ManifestOrIndex, RawDocument};

use crate::client::{Access, Client, Repo, manifest_accept, read_capped};
use crate::error::{RegistryError, Result, redact};
use crate::progress::{Direction::Pull, TransferState};

/// A manifest or index as the registry served it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub document: ManifestOrIndex,
    /// Descriptor of the exact bytes (media type from the response).
    pub descriptor: Descriptor,
}

/// What a manifest request for `reference` asks for: its digest, else its tag.
pub(crate) fn manifest_target(reference: &oci::Reference) -> String {
    reference
        .digest()
        .map(ToString::to_string)
        .or_else(|| reference.tag().map(str::to_owned))
        .unwrap_or_else(|| "latest".into())
}

impl Client {
    /// Fetch the manifest or index `reference` names (tag or digest), from the
    /// registry's mirrors first. The bytes are verified: against the requested
    /// digest, and against `Docker-Content-Digest`.
    pub async fn get_manifest(&self, reference: &oci::Reference) -> Result<Fetched> {
        let repo = self.repo(reference);
        self.get_manifest_at(&repo, &manifest_target(reference), reference.digest())
            .await
    }

    pub(crate) async fn get_manifest_at(
        &self,
        repo: &Repo,
        target: &str,
        want: Option<&Digest>,
    ) -> Result<Fetched> {
        Ok(self.fetch_manifest(repo, target, want).await?.1)
    }

    /// The manifest `target` of `repo` from the first of its sources that serves
    /// it, and `repo` read from that source on: the rest of the image is asked
    /// there first.
    pub(crate) async fn fetch_manifest(
        &self,
        repo: &Repo,
        target: &str,
        want: Option<&Digest>,
    ) -> Result<(Repo, Fetched)> {
        let what = || format!("manifest {target} of {}/{}", repo.registry, repo.name);
        let (n, fetched) = self
            .read_from_sources(repo, what, |c, r| async move {
                c.manifest_from(&r, target, want).await
            })
            .await?;
        Ok((repo.starting_at(n), fetched))
    }

    /// The manifest from `repo`'s own base (not its mirrors), verified.
    async fn manifest_from(
        &self,
        repo: &Repo,
        target: &str,
        want: Option<&Digest>,
    ) -> Result<Fetched> {
        let url = repo
            .base
            .join(&format!("manifests/{target}"))
            .expect("valid path");
        let resp = self
            .send(repo, Access::Pull, None, |http| {
                http.get(url.clone()).headers(manifest_accept())
            })
            .await?;
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        let claimed = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_capped(
            resp,
            self.limits.manifest,
            "manifest",
            &url,
            self.limits.read_timeout,
        )
        .await?;
        let algorithm = want.map_or(oci::Algorithm::Sha256, Digest::algorithm);
        let actual = Digest::of(algorithm, &bytes);
        if let Some(want) = want
            && *want != actual
        {
            return Err(RegistryError::DigestMismatch {
                url: redact(&url),
                expected: want.clone(),
                actual,
            });
        }
        if let Some(claimed) = claimed
            && let Ok(claimed) = Digest::parse(&claimed)
        {
            let check = Digest::of(claimed.algorithm(), &bytes);
            if check != claimed {
                return Err(RegistryError::DigestMismatch {
                    url: redact(&url),
                    expected: claimed,
                    actual: check,
                });
            }
        }
        let document = ManifestOrIndex::parse(&media_type, bytes).map_err(|source| {
            RegistryError::Document {
                url: redact(&url),
                source,
            }
        })?;
        let media_type = if oci::media::is_manifest_like(&media_type) {
            media_type
        } else {
            document.media_type().to_owned()
        };
        let descriptor = Descriptor::new(&media_type, actual, document.bytes().len() as u64);
        Ok(Fetched {
            document,
            descriptor,
        })
    }

    /// Download blob `desc` of `repo` into `store` unless present, from the
    /// registry's mirrors first. The stream is hashed as it arrives and committed
    /// only if size and digest match; a dropped connection resumes where it stopped
    /// (`Range`), or restarts if the server ignores ranges.
    pub async fn fetch_blob(
        &self,
        repo: &Repo,
        desc: &Descriptor,
        store: &Store,
        lease: &Lease,
    ) -> Result<()> {
        if store.protect(lease, &desc.digest)? {
            return Ok(());
        }
        let what = || format!("blob {} of {}/{}", desc.digest, repo.registry, repo.name);
        self.read_from_sources(repo, what, |c, r| async move {
            c.blob_from(&r, desc, store, lease).await
        })
        .await?;
        Ok(())
    }

    /// [`Client::fetch_blob`] from `repo`'s own base (not its mirrors).
    async fn blob_from(
        &self,
        repo: &Repo,
        desc: &Descriptor,
        store: &Store,
        lease: &Lease,
    ) -> Result<()> {
        let url = repo
            .base
            .join(&format!("blobs/{}", desc.digest))
            .expect("valid path");
        let mut writer = store.writer(Some(&Expected::from(desc)))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.fetch_into(repo, &url, &mut writer, desc).await {
                Ok(()) => break,
                Err(e) if e.is_temporary() && attempt < self.retry.attempts => {
                    tokio::time::sleep(self.retry.delay(attempt, None)).await;
                }
                Err(e) => return Err(e),
            }
        }
        match writer.commit(lease) {
            Ok(_) => {
                self.report(
                    Pull,
                    &desc.digest,
                    desc.size,
                    desc.size,
                    TransferState::Done,
                );
                Ok(())
            }
            // The registry sent other bytes than the descriptor names.
            Err(content::StoreError::DigestMismatch { expected, actual }) => {
                Err(RegistryError::DigestMismatch {
                    url: redact(&url),
                    expected,
                    actual,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn fetch_into(
        &self,
        repo: &Repo,
        url: &url::Url,
        writer: &mut content::BlobWriter<'_>,
        desc: &Descriptor,
    ) -> Result<()> {
        let size = desc.size;
        let from = writer.written();
        if from == size && size > 0 {
            return Ok(());
        }
        let resp = self
            .send(repo, Access::Pull, None, |http| {
                let req = http.get(url.clone());
                if from > 0 {
                    req.header(header::RANGE, format!("bytes={from}-"))
                } else {
                    req
                }
            })
            .await?;
        if from > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
            // The server ignored the range and sends the whole blob: start over.
            writer.reset()?;
        }
        let mut stream = resp.bytes_stream();
        while let Some(chunk) =
            crate::client::next_chunk(&mut stream, "GET", url, self.limits.read_timeout).await?
        {
            writer.write(&chunk)?;
            let at = writer.written();
            self.report(Pull, &desc.digest, at, size, TransferState::Running);
        }
        Ok(())
    }

    /// Fetch the config of image manifest `manifest` into `store`. An image config
    /// (OCI or Docker media type) must parse, say `rootfs.type` "layers" and list one
    /// diff_id per layer; other configs (artifacts) are stored as they are.
    pub(crate) async fn fetch_config(
        &self,
        repo: &Repo,
        manifest: &oci::ImageManifest,
        store: &Store,
        lease: &Lease,
    ) -> Result<()> {
        let desc = &manifest.config;
        if !matches!(
            desc.media_type.as_str(),
            oci::media::OCI_CONFIG | oci::media::DOCKER_CONFIG
        ) {
            return self.fetch_blob(repo, desc, store, lease).await;
        }
        let url = repo
            .base
            .join(&format!("blobs/{}", desc.digest))
            .expect("valid path");
        let present = store.protect(lease, &desc.digest)?;
        let bytes = if present {
            store.read_document(&desc.digest)?
        } else {
            self.get_blob_bytes(repo, desc).await?
        };
        let config =
            RawDocument::<ImageConfig>::parse(bytes).map_err(|source| RegistryError::Document {
                url: redact(&url),
                source,
            })?;
        let rootfs = &config.value().rootfs;
        let (diff_ids, layers) = (rootfs.diff_ids.len(), manifest.layers.len());
        if rootfs.kind != "layers" || diff_ids != layers {
            return Err(RegistryError::Protocol {
                url: redact(&url),
                reason: format!(
                    "image config {} has rootfs type {:?} with {diff_ids} diff_ids for {layers} layers",
                    desc.digest, rootfs.kind
                ),
            });
        }
        if !present {
            store.put_bytes(lease, &desc.media_type, config.bytes())?;
        }
        Ok(())
    }

    /// Read a small blob (config) into memory, from the registry's mirrors first,
    /// verified, capped like manifests: the descriptor's size is the server's
    /// claim, so it never raises the cap.
    pub async fn get_blob_bytes(&self, repo: &Repo, desc: &Descriptor) -> Result<Vec<u8>> {
        let what = || format!("blob {} of {}/{}", desc.digest, repo.registry, repo.name);
        let (_, bytes) = self
            .read_from_sources(repo, what, |c, r| async move {
                c.blob_bytes_from(&r, desc).await
            })
            .await?;
        Ok(bytes)
    }

    /// [`Client::get_blob_bytes`] from `repo`'s own base (not its mirrors).
    async fn blob_bytes_from(&self, repo: &Repo, desc: &Descriptor) -> Result<Vec<u8>> {
        let url = repo
            .base
            .join(&format!("blobs/{}", desc.digest))
            .expect("valid path");
        if desc.size > self.limits.manifest {
            return Err(RegistryError::TooLarge {
                what: "blob read into memory",
                url: redact(&url),
                cap: self.limits.manifest,
            });
        }
        let resp = self
            .send(repo, Access::Pull, None, |http| http.get(url.clone()))
            .await?;
        let bytes = read_capped(resp, desc.size, "blob", &url, self.limits.read_timeout).await?;
        let mut h = Hasher::new(desc.digest.algorithm());
        h.update(&bytes);
        let actual = h.finish();
        if actual != desc.digest {
            return Err(RegistryError::DigestMismatch {
                url: redact(&url),
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}
