//! Pushing a build's result: to every name of the outputs that push, each shown as a
//! progress step, the first after the uploads the build's [`PushTap`] began.

use std::collections::BTreeSet;

use anyhow::Context;
use content::Store;
use oci::{Descriptor, Reference};
use registry::progress::StatusReporter;

use super::{Emitting, Kind, Plan, PushTap};
use crate::cli::Global;

impl Plan {
    /// The names the outputs that push push to, as shown; by digest (`REPO@DIGEST`)
    /// for `push-by-digest`.
    fn push_names(&self, index: Option<&Descriptor>) -> BTreeSet<String> {
        self.outputs
            .iter()
            .filter(|o| o.kind == (Kind::Image { push: true }))
            .flat_map(|o| {
                self.names_of(o)
                    .iter()
                    .map(move |n| match (o.push_by_digest, index) {
                        (true, Some(index)) => Reference::parse(n).map_or_else(
                            |_| n.clone(),
                            |r| format!("{}/{}@{}", r.registry(), r.repository(), index.digest),
                        ),
                        _ => n.clone(),
                    })
            })
            .collect()
    }

    /// A tap that uploads the build's new layers to the first push name while they
    /// are compressed ([`PushTap`]); `None` when nothing is pushed or the pushed
    /// layers are not the built ones (`force-compression`).
    pub fn push_tap(
        &self,
        global: &Global,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Option<std::sync::Arc<PushTap>>> {
        let Some(first) = self.push_names(None).into_iter().next() else {
            return Ok(None);
        };
        let Ok(r) = Reference::parse(&first) else {
            // The push reports the invalid name.
            return Ok(None);
        };
        if self.recompresses() {
            return Ok(None);
        }
        let client = crate::commands::registry::client(global)?;
        let repo = client.repo(&r);
        Ok(Some(std::sync::Arc::new(PushTap::new(
            client, repo, runtime,
        ))))
    }

    /// Push `index` to every name of the outputs that push, each shown as a step
    /// (`pushing NAME`) with its blobs' bytes. The first waits for `tap`'s uploads.
    pub(super) fn push(
        &self,
        global: &Global,
        store: &Store,
        rt: &tokio::runtime::Runtime,
        index: &Descriptor,
        emitting: &mut Emitting<'_>,
    ) -> anyhow::Result<()> {
        let names = self.push_names(Some(index));
        if names.is_empty() {
            return Ok(());
        }
        let mut client = crate::commands::registry::client(global)?;
        let mut tap = emitting.tap;
        rt.block_on(async {
            for name in names {
                let r = Reference::parse(&name)
                    .with_context(|| format!("invalid image name {name:?}"))?;
                let phase = solver::Phase::start(emitting.events, &format!("pushing {name}"));
                client.progress = Some(std::sync::Arc::new(StatusReporter::new(phase.status_fn())));
                if let Some(tap) = tap.take() {
                    const TAPPED: &str = "layers streamed during the export";
                    let status = phase.status_fn();
                    tap.finish(&|sent, total, done| status(TAPPED, sent, Some(total), done))
                        .await;
                }
                match export::push(&client, store, index, &r).await {
                    Ok(_) => {
                        phase.note(&format!("pushing manifest {} for {name}", index.digest));
                        phase.done();
                    }
                    Err(e) => {
                        phase.failed(&e);
                        return Err(e.into());
                    }
                }
                emitting
                    .notes
                    .push(format!("pushed {name}@{}", index.digest));
            }
            anyhow::Ok(())
        })
    }
}
