//! Content-store blobs over a connection: a built image from the daemon to the
//! client, an `oci-layout://` build context from the client to the daemon.
//!
//! The sender lists an image's tree ([`tree`]); the receiver asks for the blobs its
//! store lacks and the sender streams each as data frames ending in an end frame.
//! The receiver writes each through the store's verified writer: a blob that does
//! not hash to its digest (or is longer or shorter than its size) is never visible.

use std::io::Read;

use content::{Expected, Lease, Store};
use oci::document::ManifestOrIndex;
use oci::{Descriptor, Digest};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::wire::{self, Frame};

/// Why blobs could not be listed, sent or received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    #[error("blob {digest}: {source}")]
    Store {
        digest: Digest,
        #[source]
        source: content::StoreError,
    },
    #[error("blob {digest} does not match its digest or size: {source}")]
    Mismatch {
        digest: Digest,
        #[source]
        source: content::StoreError,
    },
    #[error("blob {digest}: {reason}")]
    Stream { digest: Digest, reason: String },
    #[error("{digest} is not a blob of the image being sent")]
    NotListed { digest: Digest },
    #[error("blob {digest} is missing after the transfer")]
    Missing { digest: Digest },
}

fn store_err(digest: &Digest) -> impl FnOnce(content::StoreError) -> TransferError + '_ {
    move |source| TransferError::Store {
        digest: digest.clone(),
        source,
    }
}

/// Copy the image `desc` (and what it references) that `from` holds into `to`,
/// under `lease`: only the blobs `to` lacks, each verified as it is written.
pub fn copy(
    from: &Store,
    to: &Store,
    lease: &content::Lease,
    desc: &Descriptor,
) -> Result<(), TransferError> {
    for d in tree(from, desc)? {
        if !to.contains(&d.digest) {
            let mut f = from.open_blob(&d.digest).map_err(store_err(&d.digest))?;
            to.write_blob(lease, &mut f, Some(&content::Expected::from(&d)))
                .map_err(|source| TransferError::Mismatch {
                    digest: d.digest.clone(),
                    source,
                })?;
        }
    }
    Ok(())
}

/// `desc` and everything it references that `store` holds, children before their
/// parents (layers and config, then the manifest; the manifests, then the index).
/// An index's manifests the store lacks are left out (a layout may hold one
/// platform of a multi-platform index); a manifest's config and layers are not.
pub fn tree(store: &Store, desc: &Descriptor) -> Result<Vec<Descriptor>, TransferError> {
    let mut out = Vec::new();
    walk(store, desc, &mut out, 0)?;
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|d| seen.insert(d.digest.clone()));
    Ok(out)
}

fn walk(
    store: &Store,
    desc: &Descriptor,
    out: &mut Vec<Descriptor>,
    depth: usize,
) -> Result<(), TransferError> {
    let bytes = store
        .read_document(&desc.digest)
        .map_err(store_err(&desc.digest))?;
    match ManifestOrIndex::parse(&desc.media_type, bytes) {
        Ok(ManifestOrIndex::Index(i)) if depth < 2 => {
            for m in &i.value().manifests {
                if store.contains(&m.digest) {
                    walk(store, m, out, depth + 1)?;
                }
            }
        }
        Ok(ManifestOrIndex::Manifest(m)) => {
            out.push(m.value().config.clone());
            out.extend(m.value().layers.iter().cloned());
        }
        _ => {}
    }
    out.push(desc.clone());
    Ok(())
}

/// Those of `blobs` that `store` lacks, each once.
pub fn missing(store: &Store, blobs: &[Descriptor]) -> Vec<Descriptor> {
    let mut seen = std::collections::BTreeSet::new();
    blobs
        .iter()
        .filter(|d| !store.contains(&d.digest) && seen.insert(d.digest.clone()))
        .cloned()
        .collect()
}

/// Send the blob `digest` of `store` as data frames and an end frame.
pub async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    store: &Store,
    digest: &Digest,
) -> Result<(), TransferError> {
    let stream = |e: std::io::Error| TransferError::Stream {
        digest: digest.clone(),
        reason: e.to_string(),
    };
    let mut f = store.open_blob(digest).map_err(store_err(digest))?;
    let mut buf = vec![0u8; wire::MAX_DATA];
    loop {
        // Blob files are local and reads short; a blocking read here is one chunk.
        let n = f.read(&mut buf).map_err(stream)?;
        if n == 0 {
            break;
        }
        wire::write_data(w, &buf[..n]).await.map_err(stream)?;
    }
    wire::write_end(w).await.map_err(stream)
}

/// Receive `wanted` in order from `r` into `store` under `lease`, each verified
/// against its descriptor before it becomes visible.
pub async fn receive<R: AsyncRead + Unpin>(
    r: &mut R,
    store: &Store,
    lease: &Lease,
    wanted: &[Descriptor],
) -> Result<(), TransferError> {
    for desc in wanted {
        let stream = |reason: String| TransferError::Stream {
            digest: desc.digest.clone(),
            reason,
        };
        let mut writer = store
            .writer(Some(&Expected::from(desc)))
            .map_err(store_err(&desc.digest))?;
        loop {
            match wire::read_frame(r)
                .await
                .map_err(|e| stream(e.to_string()))?
            {
                Some(Frame::Data(d)) => {
                    writer.write(&d).map_err(|source| TransferError::Mismatch {
                        digest: desc.digest.clone(),
                        source,
                    })?;
                }
                Some(Frame::End) => break,
                Some(Frame::Json(_)) => return Err(stream("a message inside blob data".into())),
                None => return Err(stream("the connection closed inside blob data".into())),
            }
        }
        writer
            .commit(lease)
            .map_err(|source| TransferError::Mismatch {
                digest: desc.digest.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Check `store` holds all of `desc`'s tree (after a transfer), and return it.
pub fn complete(store: &Store, desc: &Descriptor) -> Result<Vec<Descriptor>, TransferError> {
    if !store.contains(&desc.digest) {
        return Err(TransferError::Missing {
            digest: desc.digest.clone(),
        });
    }
    let all = tree(store, desc)?;
    if let Some(d) = all.iter().find(|d| !store.contains(&d.digest)) {
        return Err(TransferError::Missing {
            digest: d.digest.clone(),
        });
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blob_that_does_not_match_its_digest_is_refused_and_not_stored() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let (src, dst) = (
            Store::open(src.path()).unwrap(),
            Store::open(dst.path()).unwrap(),
        );
        let lease = src.lease().unwrap();
        let good = src
            .put_bytes(&lease, "application/octet-stream", b"good")
            .unwrap();
        let mut buf = Vec::new();
        send(&mut buf, &src, &good.digest).await.unwrap();
        // A second blob claiming a digest its bytes do not have.
        let mut claimed = Descriptor::for_bytes("application/octet-stream", b"right");
        claimed.size = 5;
        wire::write_data(&mut buf, b"wrong").await.unwrap();
        wire::write_end(&mut buf).await.unwrap();
        let dlease = dst.lease().unwrap();
        let err = receive(
            &mut &buf[..],
            &dst,
            &dlease,
            &[good.clone(), claimed.clone()],
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains(&claimed.digest.to_string()),
            "{err}"
        );
        assert!(dst.contains(&good.digest));
        assert!(!dst.contains(&claimed.digest));
    }
}
