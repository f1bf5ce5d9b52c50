//! Reads tried at each mirror of a registry in order, then at the registry itself.
//!
//! A mirror gets one attempt per request: whatever goes wrong there (no answer, a
//! 5xx, a 404, refused credentials, bytes that do not match their digest) moves the
//! read on to the next source at once, and only the registry itself gets the retry
//! policy. What a mirror serves is verified exactly as the registry's answer would
//! be, by the read function, before it counts as served.

use crate::client::{Client, Repo, RetryPolicy};
use crate::error::{MirrorFailure, RegistryError, Result, redact};

impl Client {
    /// Run `read` on each source of `repo` (its mirrors, then `repo` itself) until
    /// one succeeds. Returns the index of the source that served it
    /// ([`Repo::sources`] order) with the value. Without mirrors, `read`'s own error
    /// is returned; otherwise [`RegistryError::AllSources`] names `what` and every
    /// failure.
    pub(crate) async fn read_from_sources<T, F>(
        &self,
        repo: &Repo,
        what: impl Fn() -> String,
        read: impl Fn(Client, Repo) -> F,
    ) -> Result<(usize, T)>
    where
        F: Future<Output = Result<T>>,
    {
        // `read` takes its client and source by value: a future borrowing them
        // through a higher-ranked closure would not be `Send`.
        if repo.mirrors.is_empty() {
            return read(self.clone(), repo.clone()).await.map(|v| (0, v));
        }
        let mut once = self.clone();
        once.retry = RetryPolicy {
            attempts: 1,
            ..self.retry
        };
        let mut failures = Vec::new();
        for (n, mirror) in repo.mirrors.iter().enumerate() {
            match read(once.clone(), mirror.clone()).await {
                Ok(v) => return Ok((n, v)),
                Err(error) => failures.push(MirrorFailure {
                    mirror: redact(&mirror.base),
                    error,
                }),
            }
        }
        match read(self.clone(), repo.registry_only()).await {
            Ok(v) => Ok((repo.mirrors.len(), v)),
            Err(e) => Err(RegistryError::AllSources {
                what: what(),
                mirrors: failures,
                registry: Box::new(e),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use oci::{Descriptor, Reference, media};

    use crate::{Anonymous, Client, RegistryConfig};

    fn is_send<T: Send>(_: &T) {}

    /// The reads that try mirrors stay `Send`, so a daemon can spawn them. (The
    /// operations that fetch blobs through `buffer_unordered`, `pull` and `copy`,
    /// are not checked here: rustc cannot prove their futures `Send` for any
    /// lifetime, with or without mirrors.)
    #[test]
    fn reads_through_mirrors_are_send() {
        let config = RegistryConfig::parse(
            "[registry.\"127.0.0.1:1\"]\nmirrors = [\"127.0.0.1:2\"]\n",
            std::path::Path::new("config.toml"),
        )
        .unwrap();
        let c = Client::new(config, Arc::new(Anonymous)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = content::Store::open(dir.path()).unwrap();
        let lease = store.lease().unwrap();
        let r = Reference::parse("127.0.0.1:1/x:y").unwrap();
        let repo = c.repo(&r);
        assert_eq!(repo.sources().count(), 2);
        let desc = Descriptor::new(media::OCI_LAYER_TAR, oci::Digest::sha256(b""), 0);
        is_send(&c.get_manifest(&r));
        is_send(&c.get_blob_bytes(&repo, &desc));
        is_send(&c.fetch_blob(&repo, &desc, &store, &lease));
    }
}
