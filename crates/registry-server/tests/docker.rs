//! Docker Engine (Debian's 20.10 `dockerd`) against manifold's registry: a private
//! daemon per test loads a busybox image, pushes it, forgets it, pulls it back and
//! runs it; once anonymously, once through token auth after `docker login`.
//! (127.0.0.0/8 registries are insecure by default in docker: plain HTTP is fine.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use registry_server::{Auth, TokenAuth};
use testkit::token::{ISSUER, SERVICE, TokenServer};

/// A dockerd with its own data root, exec root, socket and client config, all under
/// one directory. Stopped, unmounted and removed on drop, also when a test fails.
struct Dockerd {
    child: Child,
    dir: PathBuf,
    client: PathBuf,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dockerd = testkit::require_tool("dockerd");
        // Short path: the socket's must fit in sun_path.
        let dir = tempfile::Builder::new()
            .prefix("mf-dockerd-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        for sub in ["data", "exec", "config"] {
            std::fs::create_dir(dir.join(sub)).unwrap();
        }
        // An empty daemon.json of its own: the machine's /etc/docker does not apply.
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("sock").display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--storage-driver=vfs",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // The client that comes with the daemon (a newer one may be first on PATH).
        let client = Some(PathBuf::from("/usr/bin/docker"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| testkit::require_tool("docker"));
        let mut d = Dockerd { child, dir, client };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("dockerd exited ({status}):\n{}", d.log());
            }
            if d.docker(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer in 60 s:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn docker_with(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.client)
            .arg("--config")
            .arg(self.dir.join("config"))
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("sock").display()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.docker_with(args, "")
    }

    /// Run docker; its stdout, or a panic with its stderr and the daemon's log.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}\n{}\ndockerd log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd and undo its mounts.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let pidfile = self.dir.join("exec/containerd/containerd.pid");
                if let Ok(pid) = std::fs::read_to_string(pidfile) {
                    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Whatever is still mounted under the directory, deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// A docker archive of testkit's busybox image (amd64), written by skopeo from an OCI
/// layout, tagged `manifold-test/busybox:latest`.
fn busybox_archive(dir: &Path) -> PathBuf {
    let store = content::Store::open(dir).unwrap();
    let lease = store.lease().unwrap();
    let image = testkit::base::busybox_image(&store, &lease, "amd64");
    store.set_name("busybox", &image).unwrap();
    let archive = dir.join("busybox.tar");
    let out = Command::new(testkit::require_tool("skopeo"))
        .arg("copy")
        .arg(format!("oci:{}:busybox", dir.join("oci").display()))
        .arg(format!(
            "docker-archive:{}:manifold-test/busybox:latest",
            archive.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    archive
}

/// The `sha256:…` digest in `docker push`/`docker pull` output.
fn digest_in(out: &str) -> String {
    let at = out
        .find("sha256:")
        .unwrap_or_else(|| panic!("no digest in {out}"));
    out[at..at + 71].to_owned()
}

/// load, tag, push, forget, pull, run: the round trip both tests make.
fn round_trip(d: &Dockerd, addr: &str, repo: &str) -> String {
    let src = tempfile::tempdir().unwrap();
    let archive = busybox_archive(src.path());
    let loaded = d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("manifold-test/busybox:latest"), "{loaded}");
    let image = format!("{addr}/{repo}:v1");
    d.ok(&["tag", "manifold-test/busybox:latest", &image]);
    let pushed = d.ok(&["push", &image]);
    let digest = digest_in(&pushed);

    d.ok(&["rmi", &image, "manifold-test/busybox:latest"]);
    assert!(
        !d.docker(&["image", "inspect", &image]).status.success(),
        "the image is gone before the pull"
    );
    let pulled = d.ok(&["pull", &image]);
    assert!(pulled.contains(&digest), "{pulled}");
    let repo_digests = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &image,
    ]);
    assert!(repo_digests.contains(&digest), "{repo_digests}");
    let said = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "true && echo ran",
    ]);
    assert_eq!(said.trim(), "ran");
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pushes_pulls_and_runs() {
    let reg = common::start(false, None).await;
    let d = Dockerd::start();
    let digest = round_trip(&d, &reg.addr, "docker/busybox");

    // The registry serves what docker pushed, under the digest docker reported.
    let http = reqwest::Client::new();
    let r = http
        .get(format!(
            "http://{}/v2/docker/busybox/manifests/v1",
            reg.addr
        ))
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    let body = r.bytes().await.unwrap();
    assert_eq!(oci::Digest::sha256(&body).to_string(), digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_logs_in_through_the_token_server() {
    let tokens = TokenServer::start("127.0.0.1", "docker-user", "docker-pw");
    let auth = TokenAuth::load(&tokens.realm(), SERVICE, ISSUER, &tokens.cert_path()).unwrap();
    let reg = common::start(false, Some(Auth::Token(auth))).await;
    let d = Dockerd::start();

    let src = tempfile::tempdir().unwrap();
    let archive = busybox_archive(src.path());
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    let image = format!("{}/private/busybox:v1", reg.addr);
    d.ok(&["tag", "manifold-test/busybox:latest", &image]);
    let refused = d.docker(&["push", &image]);
    let said = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(!refused.status.success(), "a push without login is refused");
    assert!(
        said.contains("unauthorized") || said.contains("authentication required"),
        "{said}"
    );
    d.ok(&["rmi", &image, "manifold-test/busybox:latest"]);

    let login = d.docker_with(
        &["login", "-u", "docker-user", "--password-stdin", &reg.addr],
        "docker-pw\n",
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    round_trip(&d, &reg.addr, "private/busybox");
    let asked = tokens.requests();
    assert!(
        asked.iter().any(|r| r.authorization
            && r.scopes
                .iter()
                .any(|s| s == "repository:private/busybox:push,pull")),
        "{asked:?}"
    );
}
