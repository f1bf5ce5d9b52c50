//! Pushing a build's result as its request asks: to every name of the outputs that
//! push (the output's names, else the tags; by digest to each name's repository with
//! `push-by-digest`), each shown as a progress step with its blobs' bytes. The first
//! waits for the uploads its [`PushTap`] began while the layers were exported.
//!
//! The same code pushes a build in this process and on a daemon.

use std::sync::Arc;

use export::PushTap;
use export::output::Kind;
use oci::{Descriptor, Reference};
use solver::{EventSink, Phase};

use crate::error::BuildError;
use crate::request::BuildRequest;

/// The status of a push waiting for the uploads its tap began during the export.
pub const TAPPED: &str = "layers streamed during the export";

/// Where `req`'s pushing outputs push: each name, parsed, and whether by digest; in
/// order, each once.
pub fn push_targets(req: &BuildRequest) -> Result<Vec<(String, Reference, bool)>, BuildError> {
    let mut targets: Vec<(String, Reference, bool)> = Vec::new();
    for o in &req.outputs {
        if o.kind != (Kind::Image { push: true }) {
            continue;
        }
        let names = if o.names.is_empty() {
            &req.tags
        } else {
            &o.names
        };
        for name in names {
            let r = Reference::parse(name).map_err(|e| BuildError::Reference {
                reference: name.clone(),
                message: e.to_string(),
            })?;
            if !targets
                .iter()
                .any(|(n, _, d)| n == name && *d == o.push_by_digest)
            {
                targets.push((name.clone(), r, o.push_by_digest));
            }
        }
    }
    Ok(targets)
}

/// A tap that uploads the build's new layers to the first push target while they
/// are exported; `None` when nothing is pushed, or the pushed layers are not the
/// built ones (`force-compression`).
pub(crate) fn push_tap(
    client: Option<&registry::Client>,
    req: &BuildRequest,
) -> Result<Option<Arc<PushTap>>, BuildError> {
    let Some(client) = client else {
        return Ok(None);
    };
    if req.outputs.iter().any(|o| o.export.force) {
        return Ok(None);
    }
    let Some((_, first, _)) = push_targets(req)?.into_iter().next() else {
        return Ok(None);
    };
    let repo = client.repo(&first);
    Ok(Some(Arc::new(PushTap::new(
        client.clone(),
        repo,
        tokio::runtime::Handle::current(),
    ))))
}

/// Push `index` to every target of `req`, each shown as a step (`pushing NAME`) in
/// `events`; the first waits for `tap`'s uploads. The names pushed, as
/// `NAME@DIGEST`.
pub async fn push(
    client: &registry::Client,
    store: &content::Store,
    req: &BuildRequest,
    (index, referrers): (&Descriptor, &[(Descriptor, oci::Digest)]),
    events: &EventSink,
    tap: Option<&PushTap>,
) -> Result<Vec<String>, BuildError> {
    let mut tap = tap;
    let mut pushed = Vec::new();
    for (name, r, by_digest) in push_targets(req)? {
        let (shown, target) = match by_digest {
            true => (
                format!("{}/{}@{}", r.registry(), r.repository(), index.digest),
                r.with_digest(index.digest.clone()),
            ),
            false => (name, r),
        };
        let phase = Phase::start(events, &format!("pushing {shown}"));
        if let Some(tap) = tap.take() {
            let status = phase.status_fn();
            tap.finish(&|sent, total, done| status(TAPPED, sent, Some(total), done))
                .await;
        }
        let mut client = client.clone();
        client.progress = Some(Arc::new(registry::progress::StatusReporter::new(
            phase.status_fn(),
        )));
        let pushed_one = async {
            push_one(&client, store, index, target.clone()).await?;
            for (referrer, subject) in referrers {
                let how = push_referrer(&client, store, referrer, subject, &target).await?;
                phase.note(&format!(
                    "pushing attestations {} of {subject} ({})",
                    referrer.digest,
                    match how {
                        registry::referrers::ReferrerIndex::Api => "a referrer",
                        registry::referrers::ReferrerIndex::FallbackTag => {
                            "a referrer, listed under its fallback tag"
                        }
                    }
                ));
            }
            Ok::<(), BuildError>(())
        };
        match pushed_one.await {
            Ok(()) => {
                phase.note(&format!("pushing manifest {} for {shown}", index.digest));
                phase.done();
            }
            Err(e) => {
                phase.failed(&e);
                return Err(e);
            }
        }
        pushed.push(match by_digest {
            true => shown,
            false => format!("{shown}@{}", index.digest),
        });
    }
    Ok(pushed)
}

/// Push one attestation as a referrer of `subject`, on a blocking thread as
/// [`push_one`] does.
async fn push_referrer(
    client: &registry::Client,
    store: &content::Store,
    referrer: &Descriptor,
    subject: &oci::Digest,
    target: &Reference,
) -> Result<registry::referrers::ReferrerIndex, BuildError> {
    let (client, store, referrer, subject, target) = (
        client.clone(),
        store.clone(),
        referrer.clone(),
        subject.clone(),
        target.clone(),
    );
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle
            .block_on(client.push_referrer(&store, &referrer, &subject, &target))
            .map_err(|source| {
                BuildError::Export(export::ExportError::Push {
                    reference: target.to_string(),
                    source: Box::new(source),
                })
            })
    })
    .await
    .unwrap_or_else(|e| Err(BuildError::Internal(format!("the push thread failed: {e}"))))
}

/// Push on a blocking thread: the registry client's push future is not provably
/// `Send` (higher-ranked closures inside), and a daemon runs builds on spawned tasks.
/// Layers a lazy cache import left in a registry are mounted from there when the
/// target is on the same registry, else fetched first.
async fn push_one(
    client: &registry::Client,
    store: &content::Store,
    desc: &Descriptor,
    target: Reference,
) -> Result<(), BuildError> {
    let (client, store, desc) = (client.clone(), store.clone(), desc.clone());
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mount = crate::cache_io::prepare_push(&store, &client, &desc, &target)?;
        handle
            .block_on(client.push(&store, &desc, &target, mount.as_deref()))
            .map(drop)
            .map_err(|source| {
                BuildError::Export(export::ExportError::Push {
                    reference: target.to_string(),
                    source: Box::new(source),
                })
            })
    })
    .await
    .unwrap_or_else(|e| Err(BuildError::Internal(format!("the push thread failed: {e}"))))
}
