//! A registry cache's blobs uploaded while the build runs: each step's layer as soon
//! as the step has run, and the base image's blobs as soon as it is pulled. The
//! export then finds them in the registry and only puts its documents, so a
//! `--cache-to type=registry` adds little to the build (bench/cache.sh).
//!
//! Best effort: an upload that fails is not an error here. The export pushes every
//! blob the registry does not report as present, as it would without this.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use content::{Lease, Store};
use export::LayerDesc;
use oci::{Descriptor, Digest};

use crate::error::BuildError;
use crate::refs::FsRef;

/// The layer of step snapshot `step` in the cache's encoding, under `lease`
/// (remembered by the layer cache, so the export finds it made).
pub(crate) type MakeLayer =
    dyn Fn(&Lease, &str) -> Result<Option<LayerDesc>, BuildError> + Send + Sync;

/// Uploads to one registry cache's repository, begun during the build.
pub(crate) struct EarlyUploads {
    client: registry::Client,
    repo: registry::Repo,
    store: Store,
    /// Keeps the layers made here until the export references them.
    lease: Lease,
    make_layer: Box<MakeLayer>,
    /// At most as many uploads at once as the client's pushes.
    permits: Arc<tokio::sync::Semaphore>,
    begun: Mutex<BTreeSet<Digest>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<Option<Digest>>>>,
}

impl std::fmt::Debug for EarlyUploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarlyUploads")
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl EarlyUploads {
    pub(crate) fn new(
        client: registry::Client,
        target: &oci::Reference,
        store: Store,
        make_layer: Box<MakeLayer>,
    ) -> Result<Arc<EarlyUploads>, BuildError> {
        let lease = store.lease()?;
        Ok(Arc::new(EarlyUploads {
            repo: client.repo(target),
            permits: Arc::new(tokio::sync::Semaphore::new(client.concurrency.max(1))),
            client,
            store,
            lease,
            make_layer,
            begun: Mutex::default(),
            tasks: Mutex::default(),
        }))
    }

    /// A base image was pulled: upload its config and layers (the ones here).
    pub(crate) fn base(self: &Arc<Self>, fs: &FsRef) {
        let Some(manifest) = &fs.base else {
            return;
        };
        let Ok(bytes) = self.store.read_document(&manifest.digest) else {
            return;
        };
        let Ok(m) = oci::RawDocument::<oci::ImageManifest>::parse(bytes) else {
            return;
        };
        let m = m.value();
        for blob in m.layers.iter().chain([&m.config]) {
            if blob.urls.is_empty() && self.store.contains(&blob.digest) {
                self.upload(blob.clone());
            }
        }
    }

    /// Step snapshot `step` was made: make its layer beside the build, then upload it.
    pub(crate) fn step(self: &Arc<Self>, step: &str) {
        let me = self.clone();
        let step = step.to_owned();
        let task = tokio::spawn(async move {
            let made = {
                let me = me.clone();
                tokio::task::spawn_blocking(move || (me.make_layer)(&me.lease, &step)).await
            };
            if let Ok(Ok(Some(layer))) = made {
                me.upload(layer.descriptor);
            }
            None
        });
        self.tasks.lock().expect("not poisoned").push(task);
    }

    fn upload(self: &Arc<Self>, blob: Descriptor) {
        if !self
            .begun
            .lock()
            .expect("not poisoned")
            .insert(blob.digest.clone())
        {
            return;
        }
        let me = self.clone();
        let task = tokio::spawn(async move {
            let _permit = me.permits.clone().acquire_owned().await.ok()?;
            me.client
                .push_blob(&me.repo, &blob, &me.store, None)
                .await
                .ok()
                .map(|_| blob.digest)
        });
        self.tasks.lock().expect("not poisoned").push(task);
    }

    /// Wait for every upload begun (and those the layers made meanwhile began): the
    /// digests the registry now has.
    pub(crate) async fn finish(&self) -> BTreeSet<Digest> {
        let mut present = BTreeSet::new();
        loop {
            let tasks = std::mem::take(&mut *self.tasks.lock().expect("not poisoned"));
            if tasks.is_empty() {
                return present;
            }
            for t in tasks {
                if let Ok(Some(d)) = t.await {
                    present.insert(d);
                }
            }
        }
    }
}
