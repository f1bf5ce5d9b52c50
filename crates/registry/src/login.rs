//! Checking credentials before they are stored (`manifold login`), and credentials
//! held in memory (given on the command line, or sent with a request).

use std::collections::BTreeMap;

use crate::client::{Access, Client, CredentialSource};
use crate::credentials::{Credential, CredentialError, auth_key};
use crate::error::Result;

/// Credentials held in memory, keyed by registry as references name it.
#[derive(Debug, Default, Clone)]
pub struct StaticCredentials(BTreeMap<String, Credential>);

impl StaticCredentials {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, registry: &str, credential: Credential) {
        self.0.insert(auth_key(registry), credential);
    }
}

impl CredentialSource for StaticCredentials {
    fn credential(&self, registry: &str) -> Result<Credential, CredentialError> {
        Ok(self.0.get(&auth_key(registry)).cloned().unwrap_or_default())
    }
}

impl Client {
    /// Authenticate at `registry`'s API root (`GET /v2/`) with this client's
    /// credentials: Ok when the registry accepts them.
    pub async fn check_login(&self, registry: &str) -> Result<()> {
        let repo = self.repo_at(registry, "");
        let url = repo.base.clone();
        self.send(&repo, Access::Pull, None, |http| http.get(url.clone()))
            .await?;
        Ok(())
    }
}
