//! The client side: ask a daemon about itself, or send it a build.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use crate::RemoteError;
use crate::conn::connect;
use crate::endpoint::Endpoint;
use crate::protocol::{
    BuildCall, Done, Info, PROTOCOL, Reply, Request, WireEvent, version_mismatch,
};
use crate::tls::TlsFiles;
use crate::{transfer, wire};

fn protocol(endpoint: &Endpoint, message: impl Into<String>) -> RemoteError {
    RemoteError::Protocol {
        endpoint: endpoint.to_string(),
        message: message.into(),
    }
}

/// Ask the daemon at `endpoint` what it is and what it runs.
pub async fn info(endpoint: &Endpoint, tls: Option<&TlsFiles>) -> Result<Info, RemoteError> {
    let mut conn = connect(endpoint, tls).await?;
    wire::write_json(&mut conn, &Request::Info)
        .await
        .map_err(|e| protocol(endpoint, e.to_string()))?;
    match wire::read_json::<_, Reply>(&mut conn).await {
        Ok(Some(Reply::Info(i))) => Ok(i),
        Ok(Some(Reply::Error { message })) => Err(protocol(endpoint, message)),
        Ok(_) => Err(protocol(endpoint, "unexpected answer to an info request")),
        Err(e) => Err(protocol(endpoint, e.to_string())),
    }
}

/// Whether a daemon that said `info` speaks this side's protocol; the error names
/// both versions.
pub fn check_protocol(endpoint: &Endpoint, info: &Info) -> Result<(), RemoteError> {
    match info.protocol == PROTOCOL {
        true => Ok(()),
        false => Err(protocol(
            endpoint,
            version_mismatch(
                (PROTOCOL, env!("CARGO_PKG_VERSION")),
                (info.protocol, &info.version),
            ),
        )),
    }
}

/// One build sent to a daemon: the call and where each context's files are.
#[derive(Debug, Clone)]
pub struct BuildHandle {
    pub call: BuildCall,
    /// Local directory of each context named in `call.contexts`.
    pub dirs: Vec<(String, PathBuf)>,
    /// The OCI layout of each of `call.layouts`, in order.
    pub layouts: Vec<content::Store>,
    /// Where the built image goes when the request leaves work to the client
    /// ([`builder::BuildRequest::needs_client`]).
    pub fetch: Option<Fetch>,
}

/// The client's store and the lease that keeps a fetched image until it is named.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub store: content::Store,
    pub lease: Arc<content::Lease>,
}

/// Send `job` to the daemon, feed it the files it asks for, pass its progress to
/// `on_event`, and return the result. Dropping the future closes the connection,
/// which cancels the build on the daemon.
pub async fn build(
    endpoint: &Endpoint,
    tls: Option<&TlsFiles>,
    job: BuildHandle,
    on_event: impl Fn(WireEvent) + Send,
) -> Result<Done, RemoteError> {
    let err = |e: std::io::Error| protocol(endpoint, e.to_string());
    if job.call.request.needs_client() && job.fetch.is_none() {
        return Err(protocol(
            endpoint,
            "the build's result is needed here, but there is no store to fetch it into",
        ));
    }
    let mut conn = connect(endpoint, tls).await?;
    wire::write_json(&mut conn, &Request::Build(Box::new(job.call.clone())))
        .await
        .map_err(err)?;
    let need = match wire::read_json::<_, Reply>(&mut conn).await.map_err(err)? {
        Some(Reply::Need { digests }) => digests,
        Some(Reply::Error { message }) => return Err(protocol(endpoint, message)),
        _ => return Err(protocol(endpoint, "the daemon closed the connection")),
    };
    // Where each needed content is on this side: a context file or a layout blob.
    for d in &need {
        if let Some(path) = context_file(&job, d) {
            let mut f = tokio::fs::File::open(&path)
                .await
                .map_err(|e| protocol(endpoint, format!("{}: {e}", path.display())))?;
            let mut buf = vec![0u8; wire::MAX_DATA];
            loop {
                let n = f.read(&mut buf).await.map_err(err)?;
                if n == 0 {
                    break;
                }
                wire::write_data(&mut conn, &buf[..n]).await.map_err(err)?;
            }
            wire::write_end(&mut conn).await.map_err(err)?;
            continue;
        }
        let layout = job
            .call
            .layouts
            .iter()
            .zip(&job.layouts)
            .find(|(l, _)| l.blobs.iter().any(|b| b.digest.to_string() == *d))
            .map(|(_, store)| store)
            .ok_or_else(|| {
                protocol(
                    endpoint,
                    format!("the daemon asked for unknown content {d}"),
                )
            })?;
        let digest: oci::Digest = d
            .parse()
            .map_err(|_| protocol(endpoint, format!("bad digest {d:?}")))?;
        transfer::send(&mut conn, layout, &digest)
            .await
            .map_err(|e| protocol(endpoint, e.to_string()))?;
    }
    let mut fetched = None;
    loop {
        match wire::read_json::<_, Reply>(&mut conn).await.map_err(err)? {
            Some(Reply::Event(e)) => on_event(e),
            Some(Reply::Result { index, blobs }) => {
                let fetch = job.fetch.as_ref().ok_or_else(|| {
                    protocol(endpoint, "the daemon sent an image that was not asked for")
                })?;
                let want = transfer::missing(&fetch.store, &blobs);
                let digests = want.iter().map(|d| d.digest.to_string()).collect();
                wire::write_json(&mut conn, &Request::Want { digests })
                    .await
                    .map_err(err)?;
                transfer::receive(&mut conn, &fetch.store, &fetch.lease, &want)
                    .await
                    .map_err(|e| protocol(endpoint, e.to_string()))?;
                fetched = Some(index);
            }
            Some(Reply::Done(d)) => {
                if let Some(fetch) = &job.fetch {
                    if fetched.as_ref() != Some(&d.index) {
                        return Err(protocol(
                            endpoint,
                            format!("the daemon did not send the image {}", d.index.digest),
                        ));
                    }
                    transfer::complete(&fetch.store, &d.index)
                        .map_err(|e| protocol(endpoint, e.to_string()))?;
                }
                return Ok(d);
            }
            Some(Reply::Error { message }) => return Err(protocol(endpoint, message)),
            Some(_) => return Err(protocol(endpoint, "unexpected message during a build")),
            None => {
                return Err(protocol(
                    endpoint,
                    "the daemon closed the connection mid-build",
                ));
            }
        }
    }
}

/// The local file of context content `digest`, if a context lists it.
fn context_file(job: &BuildHandle, digest: &str) -> Option<PathBuf> {
    job.call.contexts.iter().find_map(|m| {
        m.entries.iter().find_map(|e| match &e.kind {
            crate::protocol::FileKind::File { digest: d, .. } if d == digest => {
                let dir = job.dirs.iter().find(|(n, _)| *n == m.name)?;
                Some(dir.1.join(&e.path))
            }
            _ => None,
        })
    })
}
