//! Builder instances: named sets of nodes that run builds, stored as
//! `$MANIFOLD_CONFIG/builders/<name>.json`, and which one is selected
//! (`--builder`/`MANIFOLD_BUILDER`, then `builders/current`, then `default`).
//!
//! `default` is implicit: a local instance with one node, never stored and never
//! removed. Names are checked against `[a-zA-Z0-9][a-zA-Z0-9_.-]*` before they
//! become part of a path.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use oci::Platform;
use serde::{Deserialize, Serialize};

use crate::cli::Global;
use crate::render::Hinted;

/// The implicit local instance.
pub const DEFAULT: &str = "default";

/// How an instance's nodes run builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// In this process, on the state root (`--root`).
    Local,
    /// On `manifold daemon`s, reached through each node's endpoint.
    Remote,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Local => "local",
            Driver::Remote => "remote",
        })
    }
}

/// Files for mutual TLS to a `tcp://` endpoint (absolute paths, PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsPaths {
    /// CA certificate(s) the daemon's certificate must chain to.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client private key.
    pub key: PathBuf,
}

/// One machine (or daemon) of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// `None` for the local driver; always set for the remote driver.
    pub endpoint: Option<remote::Endpoint>,
    /// Platforms declared with `--platform` (normalised), preferred for scheduling.
    pub platforms: Vec<Platform>,
    pub tls: Option<TlsPaths>,
}

/// A builder instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub driver: Driver,
    pub nodes: Vec<Node>,
}

impl Instance {
    /// The implicit `default` instance: local, one node named `default`.
    pub fn default_local() -> Instance {
        Instance {
            name: DEFAULT.to_owned(),
            driver: Driver::Local,
            nodes: vec![Node {
                name: DEFAULT.to_owned(),
                endpoint: None,
                platforms: Vec::new(),
                tls: None,
            }],
        }
    }
}

/// Check an instance or node name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(what: &str, name: &str) -> anyhow::Result<()> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Ok(());
    }
    Err(Hinted::new(
        format!("invalid {what} name {name:?}"),
        "names start with a letter or digit, then letters, digits, '_', '.' or '-'",
    )
    .into())
}

/// The instance builds use: `--builder`/`MANIFOLD_BUILDER`, else the one
/// `manifold use` selected, else `default`.
pub fn current(global: &Global) -> anyhow::Result<Instance> {
    let store = Builders::new(&crate::config::config_dir(global));
    let (name, from) = selected(global, &store)?;
    store
        .load(&name)
        .with_context(|| format!("cannot use the builder instance selected by {from}"))
}

/// The selected instance's name and what selected it.
pub fn selected(global: &Global, store: &Builders) -> anyhow::Result<(String, &'static str)> {
    if let Some(name) = global.builder.as_deref().filter(|n| !n.is_empty()) {
        validate_name("builder instance", name)?;
        return Ok((name.to_owned(), "--builder (or MANIFOLD_BUILDER)"));
    }
    Ok(match store.current_name()? {
        Some(name) => (name, "`manifold use`"),
        None => (DEFAULT.to_owned(), "default"),
    })
}

/// The on-disk form of an instance.
#[derive(Debug, Serialize, Deserialize)]
struct InstanceFile {
    name: String,
    driver: Driver,
    nodes: Vec<NodeFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NodeFile {
    name: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    platforms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<TlsPaths>,
}

impl InstanceFile {
    fn from_instance(i: &Instance) -> InstanceFile {
        InstanceFile {
            name: i.name.clone(),
            driver: i.driver,
            nodes: i
                .nodes
                .iter()
                .map(|n| NodeFile {
                    name: n.name.clone(),
                    endpoint: n.endpoint.as_ref().map(ToString::to_string),
                    platforms: n.platforms.iter().map(ToString::to_string).collect(),
                    tls: n.tls.clone(),
                })
                .collect(),
        }
    }

    fn into_instance(self) -> anyhow::Result<Instance> {
        validate_name("builder instance", &self.name)?;
        if self.nodes.is_empty() {
            bail!("instance {} has no nodes", self.name);
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for n in self.nodes {
            validate_name("node", &n.name)?;
            let endpoint = n
                .endpoint
                .as_deref()
                .map(remote::Endpoint::parse)
                .transpose()
                .with_context(|| format!("node {}", n.name))?;
            match (self.driver, &endpoint) {
                (Driver::Local, Some(e)) => {
                    bail!("node {}: the local driver takes no endpoint ({e})", n.name)
                }
                (Driver::Remote, None) => {
                    bail!("node {}: the remote driver needs an endpoint", n.name)
                }
                _ => {}
            }
            let platforms = n
                .platforms
                .iter()
                .map(|p| Platform::parse(p))
                .collect::<Result<_, _>>()
                .with_context(|| format!("node {}", n.name))?;
            nodes.push(Node {
                name: n.name,
                endpoint,
                platforms,
                tls: n.tls,
            });
        }
        Ok(Instance {
            name: self.name,
            driver: self.driver,
            nodes,
        })
    }
}

/// `$MANIFOLD_CONFIG/builders`: one JSON file per instance and `current`.
#[derive(Debug, Clone)]
pub struct Builders {
    dir: PathBuf,
}

/// Held while an instance file is read, changed and written back.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code, reason = "held for its flock")] fs::File);

impl Builders {
    pub fn new(config_dir: &Path) -> Builders {
        Builders {
            dir: config_dir.join("builders"),
        }
    }

    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where instance `name` is stored (`name` is checked first).
    pub fn path(&self, name: &str) -> anyhow::Result<PathBuf> {
        validate_name("builder instance", name)?;
        Ok(self.dir.join(format!("{name}.json")))
    }

    fn current_path(&self) -> PathBuf {
        self.dir.join("current")
    }

    /// Serialise changes to the directory (an exclusive flock on `builders/.lock`).
    pub fn lock(&self) -> anyhow::Result<Lock> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.dir.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(io::Error::from)
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Lock(file))
    }

    /// Whether instance `name` exists (`default` always does).
    pub fn exists(&self, name: &str) -> anyhow::Result<bool> {
        Ok(name == DEFAULT || self.path(name)?.is_file())
    }

    /// Read instance `name`; `default` is the implicit local instance.
    pub fn load(&self, name: &str) -> anyhow::Result<Instance> {
        if name == DEFAULT {
            return Ok(Instance::default_local());
        }
        let path = self.path(name)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Hinted::new(
                    format!("no builder instance named {name:?}"),
                    format!(
                        "`manifold ls` lists the instances; `manifold create {name}` makes this one"
                    ),
                )
                .into());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let file: InstanceFile = serde_json::from_slice(&bytes)
            .with_context(|| format!("cannot parse {}", path.display()))?;
        if file.name != name {
            bail!(
                "{} names the instance {:?}, not {name:?}",
                path.display(),
                file.name
            );
        }
        file.into_instance()
            .with_context(|| format!("invalid builder instance file {}", path.display()))
    }

    /// Every stored instance, by name (not `default`); files that do not read
    /// are listed with their error.
    pub fn list(&self) -> anyhow::Result<Vec<(String, anyhow::Result<Instance>)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", self.dir.display())),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", self.dir.display()))?;
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if name != DEFAULT && validate_name("builder instance", name).is_ok() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names
            .into_iter()
            .map(|n| {
                let loaded = self.load(&n);
                (n, loaded)
            })
            .collect())
    }

    /// Write an instance (temporary file, fsync, rename).
    pub fn save(&self, instance: &Instance) -> anyhow::Result<()> {
        if instance.name == DEFAULT {
            bail!("the default instance is implicit and never stored");
        }
        let path = self.path(&instance.name)?;
        let mut bytes = serde_json::to_vec_pretty(&InstanceFile::from_instance(instance))
            .context("cannot serialise the builder instance")?;
        bytes.push(b'\n');
        self.write_atomic(&path, &bytes)
    }

    /// Remove a stored instance; whether it existed.
    pub fn remove(&self, name: &str) -> anyhow::Result<bool> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }

    /// The name in `builders/current`, if there is one.
    pub fn current_name(&self) -> anyhow::Result<Option<String>> {
        let path = self.current_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let name = text.trim();
        if name.is_empty() {
            return Ok(None);
        }
        validate_name("builder instance", name)
            .with_context(|| format!("in {}", path.display()))?;
        Ok(Some(name.to_owned()))
    }

    /// Select `name` (`default` clears the selection).
    pub fn select(&self, name: &str) -> anyhow::Result<()> {
        validate_name("builder instance", name)?;
        let path = self.current_path();
        if name == DEFAULT {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            };
        }
        self.write_atomic(&path, format!("{name}\n").as_bytes())
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        content::atomic::write_atomic(path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, endpoint: Option<&str>, platforms: &[&str]) -> Node {
        Node {
            name: name.to_owned(),
            endpoint: endpoint.map(|e| remote::Endpoint::parse(e).unwrap()),
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
            tls: None,
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "builder", "B-1", "x.y_z", "0"] {
            assert!(validate_name("builder instance", good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".x", "../x", "a/b", "a b", "é", "_a"] {
            assert!(validate_name("builder instance", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn instances_round_trip_and_list_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let b = Builders::new(dir.path());
        let remote = Instance {
            name: "farm".into(),
            driver: Driver::Remote,
            nodes: vec![
                node("farm0", Some("unix:///run/m.sock"), &["linux/arm64/v8"]),
                Node {
                    tls: Some(TlsPaths {
                        ca: "/c/ca.pem".into(),
                        cert: "/c/cert.pem".into(),
                        key: "/c/key.pem".into(),
                    }),
                    ..node("farm1", Some("tcp://10.0.0.2:7000"), &[])
                },
            ],
        };
        let local = Instance {
            name: "builder".into(),
            driver: Driver::Local,
            nodes: vec![node("builder0", None, &["linux/amd64"])],
        };
        b.save(&remote).unwrap();
        b.save(&local).unwrap();
        assert_eq!(b.load("farm").unwrap(), remote);
        assert_eq!(
            b.load("farm").unwrap().nodes[0].platforms[0].to_string(),
            "linux/arm64"
        );
        let listed: Vec<String> = b.list().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(listed, ["builder", "farm"]);
        assert_eq!(b.load(DEFAULT).unwrap(), Instance::default_local());
        assert!(b.remove("farm").unwrap());
        assert!(!b.remove("farm").unwrap());
        assert!(b.load("farm").is_err());
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(b.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["builder.json"]);
    }

    #[test]
    fn selection_is_stored_and_default_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let b = Builders::new(dir.path());
        assert_eq!(b.current_name().unwrap(), None);
        b.select("builder").unwrap();
        assert_eq!(b.current_name().unwrap().as_deref(), Some("builder"));
        b.select(DEFAULT).unwrap();
        assert_eq!(b.current_name().unwrap(), None);
        assert!(b.select("../etc").is_err());
        fs::write(b.dir().join("current"), "../../x\n").unwrap();
        assert!(b.current_name().is_err());
    }

    #[test]
    fn files_that_contradict_themselves_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = Builders::new(dir.path());
        fs::create_dir_all(b.dir()).unwrap();
        let cases = [
            (
                "other",
                r#"{"name":"x","driver":"local","nodes":[{"name":"x0"}]}"#,
                "names the instance",
            ),
            (
                "x",
                r#"{"name":"x","driver":"remote","nodes":[{"name":"x0"}]}"#,
                "needs an endpoint",
            ),
            (
                "x",
                r#"{"name":"x","driver":"local","nodes":[{"name":"x0","endpoint":"unix:///s"}]}"#,
                "takes no endpoint",
            ),
            (
                "x",
                r#"{"name":"x","driver":"local","nodes":[]}"#,
                "no nodes",
            ),
            (
                "x",
                r#"{"name":"x","driver":"local","nodes":[{"name":"x0","platforms":["a/b/c/d"]}]}"#,
                "too many components",
            ),
        ];
        for (name, json, want) in cases {
            fs::write(b.dir().join(format!("{name}.json")), json).unwrap();
            let err = format!("{:#}", b.load(name).unwrap_err());
            assert!(err.contains(want), "{json}: {err}");
            fs::remove_file(b.dir().join(format!("{name}.json"))).unwrap();
        }
    }
}
