//! Builder instances: named sets of nodes that run builds, stored as
//! `<config>/builders/<name>.json`, and which one `manifold use` selected
//! (`builders/current`).
//!
//! `default` is implicit: a local instance with one node, never stored and never
//! removed. Names are checked against `[a-zA-Z0-9][a-zA-Z0-9_.-]*` before they
//! become part of a path.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci::Platform;
use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;

/// The implicit local instance.
pub const DEFAULT: &str = "default";

/// Why an instance could not be read, written or named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstanceError {
    #[error("invalid {what} name {name:?}")]
    InvalidName { what: &'static str, name: String },
    #[error("no builder instance named {name:?}")]
    NotFound { name: String },
    #[error("cannot parse {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid builder instance file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("the default instance is implicit and never stored")]
    DefaultIsImplicit,
    #[error("invalid --driver-opt {opt:?}: {why}")]
    DriverOpt { opt: String, why: String },
    #[error("--driver-opt {key}: no file at {}", .path.display())]
    DriverOptFile { key: String, path: PathBuf },
    #[error("unknown --driver-opt {name:?}")]
    UnknownDriverOpt { name: String },
    #[error("the local driver takes no --driver-opt")]
    LocalDriverOpts,
    #[error("TLS files are for tcp:// endpoints; {endpoint} is protected by its file permissions")]
    UnixTls { endpoint: String },
    #[error("{endpoint} needs a CA certificate, a client certificate and its key (mutual TLS)")]
    TcpNeedsTls { endpoint: String },
    #[error("builder {name} has no remote node")]
    NoRemoteNode { name: String },
    #[error("--append needs the instance to add a node to")]
    AppendNeedsName,
    #[error("the name \"default\" is taken by the implicit local instance")]
    DefaultTaken,
    #[error("builder instance {name} already exists")]
    Exists { name: String },
    #[error("the local driver takes no endpoint (given {endpoint})")]
    LocalEndpoint { endpoint: String },
    #[error("the remote driver needs the daemon's endpoint")]
    RemoteNeedsEndpoint,
    #[error("builder instance {name} uses the {has} driver; a {given} node cannot join it")]
    DriverMismatch {
        name: String,
        has: Driver,
        given: Driver,
    },
    #[error("builder instance {name} uses the local driver, which has one node")]
    LocalHasOneNode { name: String },
    #[error("node {node} of {name} already uses the endpoint {endpoint}")]
    EndpointInUse {
        name: String,
        node: String,
        endpoint: String,
    },
    #[error("builder instance {name} already has a node named {node}")]
    NodeExists { name: String, node: String },
    #[error("builder instance {name} has no node {node} (its nodes: {})", .nodes.join(", "))]
    NoSuchNode {
        name: String,
        node: String,
        nodes: Vec<String>,
    },
    #[error("{node} is the only node of {name}")]
    OnlyNode { name: String, node: String },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl InstanceError {
    /// How to fix it, when that is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            InstanceError::InvalidName { .. } => Some(
                "names start with a letter or digit, then letters, digits, '_', '.' or '-'"
                    .to_owned(),
            ),
            InstanceError::NotFound { name } => Some(format!(
                "`manifold ls` lists the instances; `manifold create {name}` makes this one"
            )),
            InstanceError::UnknownDriverOpt { .. } => Some(
                "the remote driver takes cacert=FILE, cert=FILE and key=FILE".to_owned(),
            ),
            InstanceError::TcpNeedsTls { .. } => {
                Some("pass --driver-opt cacert=ca.pem,cert=cert.pem,key=key.pem".to_owned())
            }
            InstanceError::AppendNeedsName => Some(
                "pass --name NAME (or NAME as the argument when no endpoint is given)".to_owned(),
            ),
            InstanceError::DefaultTaken => Some("choose another name".to_owned()),
            InstanceError::Exists { name } => Some(format!(
                "`manifold create --append --name {name} ENDPOINT` adds a node; `manifold rm {name}` removes it"
            )),
            InstanceError::LocalEndpoint { .. } => Some(
                "drop the endpoint to build in this process, or pass --driver remote".to_owned(),
            ),
            InstanceError::RemoteNeedsEndpoint => Some(
                "pass unix:///PATH or tcp://HOST:PORT, e.g. `manifold create --driver remote --name farm unix:///run/manifold.sock`"
                    .to_owned(),
            ),
            InstanceError::LocalHasOneNode { .. } => Some(
                "local builds run in this process; add remote nodes to an instance made with --driver remote"
                    .to_owned(),
            ),
            InstanceError::OnlyNode { name, .. } => {
                Some(format!("`manifold rm {name}` removes the instance"))
            }
            _ => None,
        }
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstanceError {
        let path = path.to_owned();
        move |source| InstanceError::Io { op, path, source }
    }
}

/// How an instance's nodes run builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// In the client's process, on its state root.
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
pub type TlsPaths = crate::TlsFiles;

/// One machine (or daemon) of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// `None` for the local driver; always set for the remote driver.
    pub endpoint: Option<Endpoint>,
    /// Platforms declared with `--platform` (normalised), preferred for scheduling.
    pub platforms: Vec<Platform>,
    pub tls: Option<TlsPaths>,
}

impl Node {
    /// The TLS files to reach this node with.
    pub fn tls_files(&self) -> Option<crate::TlsFiles> {
        self.tls.clone()
    }
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

impl Instance {
    /// The nodes reached over the network (a remote build's).
    pub fn remote_nodes(&self) -> Result<Vec<Node>, InstanceError> {
        let nodes: Vec<Node> = self
            .nodes
            .iter()
            .filter(|n| n.endpoint.is_some())
            .cloned()
            .collect();
        if nodes.is_empty() {
            return Err(InstanceError::NoRemoteNode {
                name: self.name.clone(),
            });
        }
        Ok(nodes)
    }
}

/// TLS files from `--driver-opt cacert=…,cert=…,key=…` (made absolute, each a file):
/// only for `tcp://` endpoints, which need all three (mutual TLS).
pub fn tls_from_driver_opts(
    driver: Driver,
    endpoint: Option<&Endpoint>,
    opts: &[String],
) -> Result<Option<TlsPaths>, InstanceError> {
    let (mut ca, mut cert, mut key) = (None, None, None);
    for opt in opts.iter().filter(|o| !o.is_empty()) {
        let bad = |why: String| InstanceError::DriverOpt {
            opt: opt.clone(),
            why,
        };
        let Some((name, value)) = opt.split_once('=') else {
            return Err(bad("want KEY=VALUE".into()));
        };
        let slot = match name {
            "cacert" => &mut ca,
            "cert" => &mut cert,
            "key" => &mut key,
            _ => {
                return Err(InstanceError::UnknownDriverOpt {
                    name: name.to_owned(),
                });
            }
        };
        let path = std::path::absolute(value).map_err(|e| bad(e.to_string()))?;
        if !path.is_file() {
            return Err(InstanceError::DriverOptFile {
                key: name.to_owned(),
                path,
            });
        }
        *slot = Some(path);
    }
    let given = ca.is_some() || cert.is_some() || key.is_some();
    match (driver, endpoint) {
        (Driver::Local, _) if given => Err(InstanceError::LocalDriverOpts),
        (_, Some(e @ Endpoint::Unix(_))) if given => Err(InstanceError::UnixTls {
            endpoint: e.to_string(),
        }),
        (_, Some(e @ Endpoint::Tcp(_))) => match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsPaths { ca, cert, key })),
            _ => Err(InstanceError::TcpNeedsTls {
                endpoint: e.to_string(),
            }),
        },
        _ => Ok(None),
    }
}

/// Check an instance or node name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), InstanceError> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Ok(());
    }
    Err(InstanceError::InvalidName {
        what,
        name: name.to_owned(),
    })
}

/// A node to add with `manifold create`.
#[derive(Debug, Clone, Default)]
pub struct NewNode {
    /// The instance: a new one (a free `builderN` when `None`), or with `append` the
    /// one to add to.
    pub instance: Option<String>,
    pub append: bool,
    /// `--driver`; else the instance's, else remote with an endpoint, else local.
    pub driver: Option<Driver>,
    /// `--node`; else the first free `<instance>N`.
    pub node: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub platforms: Vec<Platform>,
    pub tls: Option<TlsPaths>,
}

impl Builders {
    /// Add `new` as a node (of a new instance, or appended), under the directory's
    /// lock; the instance as stored.
    pub fn add_node(&self, new: NewNode) -> Result<Instance, InstanceError> {
        if new.append && new.instance.is_none() {
            return Err(InstanceError::AppendNeedsName);
        }
        let _lock = self.lock()?;
        let existing = match &new.instance {
            Some(n) if new.append => Some(self.load(n)?),
            Some(n) => {
                self.check_new_name(n)?;
                None
            }
            None => None,
        };
        let name = match &new.instance {
            Some(n) => n.clone(),
            None => self.free_name()?,
        };
        let driver = match (new.driver, &existing, &new.endpoint) {
            (Some(d), _, _) => d,
            (None, Some(i), _) => i.driver,
            (None, None, Some(_)) => Driver::Remote,
            (None, None, None) => Driver::Local,
        };
        match (driver, &new.endpoint) {
            (Driver::Local, Some(e)) => {
                return Err(InstanceError::LocalEndpoint {
                    endpoint: e.to_string(),
                });
            }
            (Driver::Remote, None) => return Err(InstanceError::RemoteNeedsEndpoint),
            _ => {}
        }
        let mut instance = existing.unwrap_or_else(|| Instance {
            name: name.clone(),
            driver,
            nodes: Vec::new(),
        });
        if instance.driver != driver {
            return Err(InstanceError::DriverMismatch {
                name,
                has: instance.driver,
                given: driver,
            });
        }
        if driver == Driver::Local && !instance.nodes.is_empty() {
            return Err(InstanceError::LocalHasOneNode { name });
        }
        let node = node_name(&instance, new.node.as_deref())?;
        if let Some(e) = &new.endpoint
            && let Some(other) = instance
                .nodes
                .iter()
                .find(|n| n.endpoint.as_ref() == Some(e))
        {
            return Err(InstanceError::EndpointInUse {
                name,
                node: other.name.clone(),
                endpoint: e.to_string(),
            });
        }
        instance.nodes.push(Node {
            name: node,
            endpoint: new.endpoint,
            platforms: new.platforms,
            tls: new.tls,
        });
        self.save(&instance)?;
        Ok(instance)
    }

    /// Remove node `node` of instance `name` (`create --leave`), under the lock.
    pub fn remove_node(&self, name: &str, node: &str) -> Result<(), InstanceError> {
        let _lock = self.lock()?;
        let mut instance = self.load(name)?;
        let Some(at) = instance.nodes.iter().position(|n| n.name == node) else {
            return Err(InstanceError::NoSuchNode {
                name: name.to_owned(),
                node: node.to_owned(),
                nodes: instance.nodes.iter().map(|n| n.name.clone()).collect(),
            });
        };
        if instance.nodes.len() == 1 {
            return Err(InstanceError::OnlyNode {
                name: name.to_owned(),
                node: node.to_owned(),
            });
        }
        instance.nodes.remove(at);
        self.save(&instance)
    }

    fn check_new_name(&self, name: &str) -> Result<(), InstanceError> {
        if name == DEFAULT {
            return Err(InstanceError::DefaultTaken);
        }
        if self.exists(name)? {
            return Err(InstanceError::Exists {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// The first of builder0, builder1, … not taken.
    fn free_name(&self) -> Result<String, InstanceError> {
        for i in 0.. {
            let n = format!("builder{i}");
            if !self.exists(&n)? {
                return Ok(n);
            }
        }
        unreachable!("some builderN is free")
    }
}

/// `given`, checked and free in `instance`, else the first free `<instance>N`.
fn node_name(instance: &Instance, given: Option<&str>) -> Result<String, InstanceError> {
    let taken = |n: &str| instance.nodes.iter().any(|node| node.name == n);
    if let Some(n) = given {
        validate_name("node", n)?;
        if taken(n) {
            return Err(InstanceError::NodeExists {
                name: instance.name.clone(),
                node: n.to_owned(),
            });
        }
        return Ok(n.to_owned());
    }
    Ok((0..)
        .map(|i| format!("{}{i}", instance.name))
        .find(|n| !taken(n))
        .expect("some index is free"))
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

    /// The instance, or why the file contradicts itself.
    fn into_instance(self) -> Result<Instance, String> {
        validate_name("builder instance", &self.name).map_err(|e| e.to_string())?;
        if self.nodes.is_empty() {
            return Err(format!("instance {} has no nodes", self.name));
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for n in self.nodes {
            validate_name("node", &n.name).map_err(|e| e.to_string())?;
            let endpoint = n
                .endpoint
                .as_deref()
                .map(Endpoint::parse)
                .transpose()
                .map_err(|e| format!("node {}: {e}", n.name))?;
            match (self.driver, &endpoint) {
                (Driver::Local, Some(e)) => {
                    return Err(format!(
                        "node {}: the local driver takes no endpoint ({e})",
                        n.name
                    ));
                }
                (Driver::Remote, None) => {
                    return Err(format!(
                        "node {}: the remote driver needs an endpoint",
                        n.name
                    ));
                }
                _ => {}
            }
            let platforms = n
                .platforms
                .iter()
                .map(|p| Platform::parse(p))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("node {}: {e}", n.name))?;
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

/// A stored instance's name, and the instance or why its file does not read.
pub type Listed = (String, Result<Instance, InstanceError>);

/// `<config>/builders`: one JSON file per instance and `current`.
#[derive(Debug, Clone)]
pub struct Builders {
    dir: PathBuf,
}

impl Builders {
    pub fn new(config_dir: &Path) -> Builders {
        Builders {
            dir: config_dir.join("builders"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where instance `name` is stored (`name` is checked first).
    pub fn path(&self, name: &str) -> Result<PathBuf, InstanceError> {
        validate_name("builder instance", name)?;
        Ok(self.dir.join(format!("{name}.json")))
    }

    fn current_path(&self) -> PathBuf {
        self.dir.join("current")
    }

    /// Serialise changes to the directory (an exclusive flock on `builders/.lock`),
    /// for as long as the lock is held.
    pub fn lock(&self) -> Result<content::lock::FileLock, InstanceError> {
        fs::create_dir_all(&self.dir).map_err(InstanceError::io("create", &self.dir))?;
        let path = self.dir.join(".lock");
        content::lock::lock(&path, content::lock::Mode::Exclusive)
            .map_err(|e| InstanceError::io(e.op, &e.path)(e.source))
    }

    /// Whether instance `name` exists (`default` always does).
    pub fn exists(&self, name: &str) -> Result<bool, InstanceError> {
        Ok(name == DEFAULT || self.path(name)?.is_file())
    }

    /// Read instance `name`; `default` is the implicit local instance.
    pub fn load(&self, name: &str) -> Result<Instance, InstanceError> {
        if name == DEFAULT {
            return Ok(Instance::default_local());
        }
        let path = self.path(name)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(InstanceError::NotFound {
                    name: name.to_owned(),
                });
            }
            Err(e) => return Err(InstanceError::io("read", &path)(e)),
        };
        let invalid = |message: String| InstanceError::Invalid {
            path: path.clone(),
            message,
        };
        let file: InstanceFile =
            serde_json::from_slice(&bytes).map_err(|source| InstanceError::Parse {
                path: path.clone(),
                source,
            })?;
        if file.name != name {
            return Err(invalid(format!(
                "it names the instance {:?}, not {name:?}",
                file.name
            )));
        }
        file.into_instance().map_err(invalid)
    }

    /// Every stored instance, by name (not `default`); files that do not read
    /// are listed with their error.
    pub fn list(&self) -> Result<Vec<Listed>, InstanceError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(InstanceError::io("list", &self.dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(InstanceError::io("list", &self.dir))?;
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
    pub fn save(&self, instance: &Instance) -> Result<(), InstanceError> {
        if instance.name == DEFAULT {
            return Err(InstanceError::DefaultIsImplicit);
        }
        let path = self.path(&instance.name)?;
        let mut bytes = serde_json::to_vec_pretty(&InstanceFile::from_instance(instance))
            .expect("invariant: an instance file serialises");
        bytes.push(b'\n');
        self.write_atomic(&path, &bytes)
    }

    /// Remove a stored instance; whether it existed.
    pub fn remove(&self, name: &str) -> Result<bool, InstanceError> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(InstanceError::io("remove", &path)(e)),
        }
    }

    /// The name in `builders/current`, if there is one.
    pub fn current_name(&self) -> Result<Option<String>, InstanceError> {
        let path = self.current_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(InstanceError::io("read", &path)(e)),
        };
        let name = text.trim();
        if name.is_empty() {
            return Ok(None);
        }
        validate_name("builder instance", name).map_err(|e| InstanceError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Some(name.to_owned()))
    }

    /// Select `name` (`default` clears the selection).
    pub fn select(&self, name: &str) -> Result<(), InstanceError> {
        validate_name("builder instance", name)?;
        let path = self.current_path();
        if name == DEFAULT {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(InstanceError::io("remove", &path)(e))
                }
                _ => Ok(()),
            };
        }
        self.write_atomic(&path, format!("{name}\n").as_bytes())
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), InstanceError> {
        fs::create_dir_all(&self.dir).map_err(InstanceError::io("create", &self.dir))?;
        content::atomic::write_atomic(path, bytes)
            .map_err(|e| InstanceError::io("write", &e.path)(e.source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, endpoint: Option<&str>, platforms: &[&str]) -> Node {
        Node {
            name: name.to_owned(),
            endpoint: endpoint.map(|e| crate::Endpoint::parse(e).unwrap()),
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
            let err = b.load(name).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
            fs::remove_file(b.dir().join(format!("{name}.json"))).unwrap();
        }
    }
}
