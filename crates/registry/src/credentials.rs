//! Credentials from docker's `config.json`: `auths`, `credsStore`, `credHelpers`
//! (through `docker-credential-*` helpers), written back the way `docker login` does.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What to authenticate with at one registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credential {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token realm.
    IdentityToken {
        username: String,
        token: Secret,
    },
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the \"auth\" entry for {registry} in {path} is not base64 of user:password")]
    BadAuth { path: PathBuf, registry: String },
    #[error("credential helper docker-credential-{helper} failed for {registry}: {message}")]
    Helper {
        helper: String,
        registry: String,
        message: String,
    },
}

/// Docker Hub's key in `auths`, as docker writes it.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Where docker's config lives: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn default_config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".docker")
}

/// The key under which `registry` (as in a reference: `docker.io`, `host:port`) is stored.
pub fn auth_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_owned(),
        other => other.to_owned(),
    }
}

/// The registry a `login`/`logout` argument names (`docker.io` when none): a host,
/// or a URL (`https://index.docker.io/v1/` is `docker.io`).
pub fn server_name(arg: Option<&str>) -> String {
    let s = arg.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let s = s
        .strip_suffix("/v1")
        .or_else(|| s.strip_suffix("/v2"))
        .unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// Keys that may hold `registry`'s credentials, best first.
fn lookup_keys(registry: &str) -> Vec<String> {
    let key = auth_key(registry);
    let mut keys = vec![key.clone()];
    if key == DOCKER_HUB_KEY {
        keys.extend(
            [
                "index.docker.io",
                "docker.io",
                "registry-1.docker.io",
                "https://index.docker.io/v1",
            ]
            .map(String::from),
        );
    } else {
        keys.push(format!("https://{registry}"));
        keys.push(format!("http://{registry}"));
        keys.push(format!("https://{registry}/v1/"));
        keys.push(format!("https://{registry}/v2/"));
    }
    keys
}

/// A docker `config.json`, with every field it had kept as it was.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    value: Map<String, Value>,
}

impl DockerConfig {
    /// Load `<dir>/config.json`; a missing file is an empty config.
    pub fn load(dir: &Path) -> Result<Self, CredentialError> {
        let path = dir.join("config.json");
        let value = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| CredentialError::Json {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => return Err(CredentialError::Read { path, source }),
        };
        Ok(DockerConfig { path, value })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn helper_for(&self, registry: &str) -> Option<String> {
        let key = auth_key(registry);
        self.value
            .get("credHelpers")
            .and_then(|h| h.get(&key).or_else(|| h.get(registry)))
            .or_else(|| self.value.get("credsStore"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// The credential for `registry`, or `Anonymous` if none is stored.
    pub fn get(&self, registry: &str) -> Result<Credential, CredentialError> {
        if let Some(helper) = self.helper_for(registry) {
            return helper_get(&helper, registry);
        }
        let Some(auths) = self.value.get("auths").and_then(Value::as_object) else {
            return Ok(Credential::Anonymous);
        };
        for key in lookup_keys(registry) {
            if let Some(entry) = auths.get(&key) {
                return self.parse_entry(registry, entry);
            }
        }
        Ok(Credential::Anonymous)
    }

    fn parse_entry(&self, registry: &str, entry: &Value) -> Result<Credential, CredentialError> {
        let field = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or("");
        let bad = || CredentialError::BadAuth {
            path: self.path.clone(),
            registry: registry.to_owned(),
        };
        let (mut username, mut password) =
            (field("username").to_owned(), field("password").to_owned());
        if !field("auth").is_empty() {
            let decoded = STANDARD.decode(field("auth").trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (u, p) = decoded.split_once(':').ok_or_else(bad)?;
            (username, password) = (u.to_owned(), p.to_owned());
        }
        if !field("identitytoken").is_empty() {
            return Ok(Credential::IdentityToken {
                username,
                token: Secret::new(field("identitytoken")),
            });
        }
        if username.is_empty() && password.is_empty() {
            return Ok(Credential::Anonymous);
        }
        Ok(Credential::Basic {
            username,
            password: Secret::new(password),
        })
    }

    /// Store a login: in the helper if one is configured, else base64 in `auths`.
    pub fn store(
        &mut self,
        registry: &str,
        username: &str,
        password: &Secret,
    ) -> Result<(), CredentialError> {
        let key = auth_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            let input =
                json!({"ServerURL": key, "Username": username, "Secret": password.expose()});
            helper_call(&helper, "store", registry, &input.to_string())?;
            // docker leaves an empty entry in auths so `docker info` lists the login.
            self.auths_mut().insert(key, json!({}));
        } else {
            let auth = STANDARD.encode(format!("{username}:{}", password.expose()));
            self.auths_mut().insert(key, json!({ "auth": auth }));
        }
        self.save()
    }

    /// Forget `registry`'s credentials; `Ok(false)` when there were none.
    pub fn erase(&mut self, registry: &str) -> Result<bool, CredentialError> {
        let mut found = false;
        if let Some(helper) = self.helper_for(registry) {
            found = helper_call(&helper, "erase", registry, &auth_key(registry)).is_ok();
        }
        let keys = lookup_keys(registry);
        let auths = self.auths_mut();
        for k in keys {
            found |= auths.remove(&k).is_some();
        }
        self.save()?;
        Ok(found)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let entry = self.value.entry("auths").or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        entry.as_object_mut().expect("just made an object")
    }

    /// Write the file atomically, owner-only, as docker does.
    fn save(&self) -> Result<(), CredentialError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let werr = |source| CredentialError::Write {
            path: self.path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(werr)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(werr)?;
        let mut bytes = serde_json::to_vec_pretty(&self.value).expect("JSON values serialise");
        bytes.push(b'\n');
        tmp.write_all(&bytes).map_err(werr)?;
        tmp.persist(&self.path).map_err(|e| werr(e.error))?;
        Ok(())
    }
}

fn helper_call(
    helper: &str,
    verb: &str,
    registry: &str,
    input: &str,
) -> Result<String, CredentialError> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| CredentialError::Helper {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        message,
    };
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| fail(format!("cannot write to {program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("{program} did not finish: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(fail(if stdout.is_empty() { stderr } else { stdout }));
    }
    Ok(stdout)
}

fn helper_get(helper: &str, registry: &str) -> Result<Credential, CredentialError> {
    let out = match helper_call(helper, "get", registry, &auth_key(registry)) {
        Ok(out) => out,
        // Helpers say "credentials not found" with a failure status.
        Err(CredentialError::Helper { message, .. })
            if message
                .to_ascii_lowercase()
                .contains("credentials not found") =>
        {
            return Ok(Credential::Anonymous);
        }
        Err(e) => return Err(e),
    };
    let v: Value = serde_json::from_str(&out).map_err(|e| CredentialError::Helper {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        message: format!("unreadable answer: {e}"),
    })?;
    let username = v["Username"].as_str().unwrap_or("").to_owned();
    let secret = Secret::new(v["Secret"].as_str().unwrap_or(""));
    Ok(if username == "<token>" {
        Credential::IdentityToken {
            username,
            token: secret,
        }
    } else if username.is_empty() && secret.expose().is_empty() {
        Credential::Anonymous
    } else {
        Credential::Basic {
            username,
            password: secret,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        let c = DockerConfig::load(dir.path()).unwrap();
        (dir, c)
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        let c = Credential::Basic {
            username: "u".into(),
            password: s,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn auths_entry_and_docker_hub_spellings() {
        let auth = STANDARD.encode("alice:pw:with:colons");
        let (_d, c) = config(&format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#
        ));
        for reg in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                c.get(reg).unwrap(),
                Credential::Basic {
                    username: "alice".into(),
                    password: Secret::new("pw:with:colons")
                }
            );
        }
        assert_eq!(c.get("ghcr.io").unwrap(), Credential::Anonymous);
    }

    #[test]
    fn identity_token_wins() {
        let (_d, c) =
            config(r#"{"auths":{"r.example":{"auth":"dTpw","identitytoken":"refresh"}}}"#);
        assert!(
            matches!(c.get("r.example").unwrap(), Credential::IdentityToken { username, .. } if username == "u")
        );
    }

    #[test]
    fn bad_auth_names_the_registry() {
        let (_d, c) = config(r#"{"auths":{"r.example":{"auth":"!!!"}}}"#);
        let err = c.get("r.example").unwrap_err();
        assert!(err.to_string().contains("r.example"), "{err}");
    }

    #[test]
    fn store_and_erase_keep_other_fields() {
        let (dir, mut c) =
            config(r#"{"psFormat":"table","auths":{"other.example":{"auth":"eDp5"}}}"#);
        c.store("localhost:5000", "bob", &Secret::new("pw"))
            .unwrap();
        let again = DockerConfig::load(dir.path()).unwrap();
        assert_eq!(again.value["psFormat"], "table");
        assert!(
            matches!(again.get("localhost:5000").unwrap(), Credential::Basic { username, .. } if username == "bob")
        );
        let mut again = again;
        assert!(again.erase("localhost:5000").unwrap());
        assert!(!again.erase("localhost:5000").unwrap());
        let last = DockerConfig::load(dir.path()).unwrap();
        assert_eq!(last.get("localhost:5000").unwrap(), Credential::Anonymous);
        assert!(matches!(
            last.get("other.example").unwrap(),
            Credential::Basic { .. }
        ));
    }

    #[test]
    fn missing_and_empty_files_are_empty_configs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            DockerConfig::load(dir.path()).unwrap().get("x").unwrap(),
            Credential::Anonymous
        );
        std::fs::write(dir.path().join("config.json"), "\n").unwrap();
        assert_eq!(
            DockerConfig::load(dir.path()).unwrap().get("x").unwrap(),
            Credential::Anonymous
        );
    }
}
