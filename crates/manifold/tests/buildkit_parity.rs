//! Same images as BuildKit: one Dockerfile and context built by Docker 20.10's
//! embedded BuildKit (a private `dockerd`) and by `manifold build`, both saved as
//! docker archives; the root filesystems their layers make (whiteouts applied) are
//! compared path by path (type, permission bits, owner, content, link target; not
//! mtimes), and so are the configs (Env, Cmd, Entrypoint, WorkingDir, User, Labels,
//! ExposedPorts, history, layer count). Needs root, runc, dockerd and /usr/bin/docker.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use testkit::docker::Dockerd;

const BASE: &str = "localhost/busybox:test";

const DOCKERFILE: &str = r#"FROM localhost/busybox:test
ARG GREETING=hello
ENV APP_HOME=/app MODE=parity
WORKDIR /app/work
COPY hello.txt run.sh ./
COPY tree /app/tree
COPY --chown=1000:1000 owned.txt /app/owned.txt
COPY --chmod=640 secret.txt /app/secret.txt
ADD bundle.tar.gz /opt/
RUN mkdir -p /data/sub && echo "$GREETING $MODE" > /data/sub/greeting && ln -s /data/sub/greeting /data/link && chmod 700 /data/sub && rm /bin/true
RUN echo 'builder:x:1234:1234::/home/builder:/bin/sh' >> /etc/passwd && echo 'builder:x:1234:' >> /etc/group && echo 'extra:x:2345:builder' >> /etc/group && mkdir -m 777 /ids
USER builder
RUN id > /ids/builder
USER 1000:1000
LABEL org.example.name="parity" version="1"
EXPOSE 8080/tcp 53/udp
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
"#;

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (runc, dockerd, owners in unpacked layers)"
    );
    testkit::require_tool("runc");
    testkit::require_tool("dockerd");
    assert!(
        Path::new("/usr/bin/docker").is_file(),
        "this test needs the docker client that comes with dockerd at /usr/bin/docker"
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn write(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The build context: plain files, a directory with a nested file, an executable and
/// a symlink, and a .tar.gz for ADD to extract.
fn context(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    write(&ctx.join("hello.txt"), "hello, world\n", 0o644);
    write(&ctx.join("run.sh"), "#!/bin/sh\necho run\n", 0o755);
    write(&ctx.join("owned.txt"), "owned by app\n", 0o600);
    write(&ctx.join("secret.txt"), "s3cret\n", 0o644);
    let tree = ctx.join("tree");
    std::fs::create_dir_all(tree.join("nested/deeper")).unwrap();
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(tree.join("nested"), std::fs::Permissions::from_mode(0o750)).unwrap();
    write(&tree.join("top.txt"), "top\n", 0o644);
    write(&tree.join("nested/deeper/file.txt"), "deep\n", 0o640);
    write(&tree.join("nested/tool"), "#!/bin/sh\necho tool\n", 0o755);
    symlink("nested/deeper/file.txt", tree.join("link")).unwrap();

    // The tarball ADD extracts: its own owners and modes are kept by both builders.
    let src = dir.join("bundle");
    std::fs::create_dir_all(src.join("bundle/etc")).unwrap();
    write(&src.join("bundle/etc/conf"), "key=value\n", 0o600);
    write(&src.join("bundle/bin-tool"), "#!/bin/sh\n", 0o750);
    symlink("etc/conf", src.join("bundle/conf-link")).unwrap();
    run(Command::new("tar")
        .arg("-czf")
        .arg(ctx.join("bundle.tar.gz"))
        .args([
            "--numeric-owner",
            "--owner=1234",
            "--group=5678",
            "--sort=name",
        ])
        .arg("-C")
        .arg(&src)
        .arg("bundle"));
    ctx
}

/// An image of a docker archive: its config and its root filesystem, unpacked.
struct Unpacked {
    config: Value,
    layers: usize,
    root: PathBuf,
}

/// Unpack the docker archive `archive` under `dir`: the layers in order into
/// `dir/rootfs`, whiteouts applied (`.wh.NAME` deletes NAME from the layers below,
/// `.wh..wh..opq` empties its directory of what the layers below put there).
fn unpack(archive: &Path, dir: &Path) -> Unpacked {
    let outer = dir.join("archive");
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&outer).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&outer));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(outer.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest.as_array().expect("manifest.json is an array")[0];
    let config: Value = serde_json::from_slice(
        &std::fs::read(outer.join(entry["Config"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layers = entry["Layers"].as_array().unwrap();
    for layer in layers {
        let layer = outer.join(layer.as_str().unwrap());
        let listed = run(Command::new("tar").arg("-tf").arg(&layer));
        let mut whiteouts = Vec::new();
        for name in text(&listed.stdout).lines() {
            let name = name.trim_start_matches("./").trim_end_matches('/');
            let (parent, base) = match name.rsplit_once('/') {
                Some((p, b)) => (p, b),
                None => ("", name),
            };
            if base == ".wh..wh..opq" {
                let d = root.join(parent);
                if let Ok(entries) = std::fs::read_dir(&d) {
                    for e in entries {
                        let p = e.unwrap().path();
                        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                            std::fs::remove_dir_all(&p).unwrap();
                        } else {
                            std::fs::remove_file(&p).unwrap();
                        }
                    }
                }
                whiteouts.push(root.join(name));
            } else if let Some(hidden) = base.strip_prefix(".wh.") {
                let p = root.join(parent).join(hidden);
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).unwrap(),
                    Ok(_) => std::fs::remove_file(&p).unwrap(),
                    Err(_) => panic!("{}: whiteout of a missing path {name}", layer.display()),
                }
                whiteouts.push(root.join(name));
            }
        }
        run(Command::new("tar")
            .args(["-xpf"])
            .arg(&layer)
            .args(["--numeric-owner", "--same-owner", "-C"])
            .arg(&root));
        for w in whiteouts {
            std::fs::remove_file(&w).unwrap();
        }
    }
    Unpacked {
        config,
        layers: layers.len(),
        root,
    }
}

/// One path of an unpacked root filesystem, as compared.
#[derive(PartialEq, Eq, Clone)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    /// sha256 of a file, target of a symlink, empty for directories and others.
    data: String,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} mode {:04o} owner {}:{} {}",
            self.kind, self.mode, self.uid, self.gid, self.data
        )
    }
}

fn walk(root: &Path, rel: &str, out: &mut BTreeMap<String, Node>) {
    let path = root.join(rel.trim_start_matches('/'));
    let meta = std::fs::symlink_metadata(&path).unwrap();
    let ft = meta.file_type();
    let (kind, data) = if ft.is_symlink() {
        (
            "symlink",
            std::fs::read_link(&path).unwrap().display().to_string(),
        )
    } else if ft.is_dir() {
        ("dir", String::new())
    } else if ft.is_file() {
        (
            "file",
            oci::Digest::sha256(&std::fs::read(&path).unwrap()).to_string(),
        )
    } else {
        ("other", format!("rdev {}", meta.rdev()))
    };
    out.insert(
        if rel.is_empty() {
            "/".into()
        } else {
            rel.into()
        },
        Node {
            kind,
            // Symlinks' permission bits mean nothing (and are 0777 on Linux).
            mode: if ft.is_symlink() {
                0
            } else {
                meta.mode() & 0o7777
            },
            uid: meta.uid(),
            gid: meta.gid(),
            data,
        },
    );
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            walk(root, &format!("{rel}/{n}"), out);
        }
    }
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

/// Differences between the two trees, one line each, keyed by path.
fn tree_differences(
    bk: &BTreeMap<String, Node>,
    mf: &BTreeMap<String, Node>,
) -> BTreeMap<String, String> {
    let mut diffs = BTreeMap::new();
    for (path, b) in bk {
        match mf.get(path) {
            None => {
                diffs.insert(path.clone(), format!("{path}: only in BuildKit's {b:?}"));
            }
            Some(m) if m != b => {
                diffs.insert(
                    path.clone(),
                    format!("{path}: BuildKit {b:?}, manifold {m:?}"),
                );
            }
            Some(_) => {}
        }
    }
    for (path, m) in mf {
        if !bk.contains_key(path) {
            diffs.insert(path.clone(), format!("{path}: only in manifold's {m:?}"));
        }
    }
    diffs
}

/// The config fields compared, with null for absent (and for empty, which both
/// builders may write either way and docker reads alike).
fn config_fields(config: &Value) -> BTreeMap<&'static str, Value> {
    let c = &config["config"];
    let norm = |v: &Value| match v {
        Value::Array(a) if a.is_empty() => Value::Null,
        Value::Object(o) if o.is_empty() => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        v => v.clone(),
    };
    let mut out = BTreeMap::new();
    for k in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
    ] {
        out.insert(k, norm(&c[k]));
    }
    out.insert("architecture", config["architecture"].clone());
    out.insert("os", config["os"].clone());
    out
}

/// The history as (created_by, empty_layer) pairs.
fn history(config: &Value) -> Vec<(String, bool)> {
    config["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| {
                    (
                        e["created_by"].as_str().unwrap_or("").to_owned(),
                        e["empty_layer"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn manifold_builds_the_image_buildkit_builds() {
    require_root();
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let base = testkit::base::busybox_index(&state, BASE, &["amd64"]);
    let ctx = context(dir.path());

    // The same base image in docker: a docker archive of the single amd64 manifest.
    let base_tar = dir.path().join("base.tar");
    {
        let store = content::Store::open(&state).unwrap();
        let f = std::fs::File::create(&base_tar).unwrap();
        let mut f = export::write_docker_archive(&store, &base, &[BASE], f).unwrap();
        std::io::Write::flush(&mut f).unwrap();
    }
    let d = Dockerd::start();
    let loaded = d.ok(&["load", "-i", base_tar.to_str().unwrap()]);
    assert!(loaded.contains(BASE), "{loaded}");
    // docker load tagged it from the archive's RepoTags; BuildKit finds it there.
    d.ok(&["image", "inspect", BASE]);

    // BuildKit (docker 20.10's embedded one).
    let built = d
        .command()
        .env("DOCKER_BUILDKIT", "1")
        .args([
            "build",
            "--network=none",
            "--progress=plain",
            "-t",
            "parity:bk",
        ])
        .arg(&ctx)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "docker build: {}\n{}\ndockerd log:\n{}",
        text(&built.stdout),
        text(&built.stderr),
        d.log()
    );
    let bk_tar = dir.path().join("bk.tar");
    d.ok(&["save", "parity:bk", "-o", bk_tar.to_str().unwrap()]);

    // manifold, with runc and nothing else on PATH.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    symlink(testkit::require_tool("runc"), bin.join("runc")).unwrap();
    let mf_tar = dir.path().join("mf.tar");
    run(Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(["build", "-o"])
        .arg(format!("type=docker,dest={}", mf_tar.display()))
        .arg(&ctx)
        .env("MANIFOLD_ROOT", &state)
        .env("MANIFOLD_CONFIG", state.join("config"))
        .env("DOCKER_CONFIG", state.join("docker"))
        .env("PATH", bin.display().to_string())
        .env_remove("MANIFOLD_RUNTIME")
        .stdin(Stdio::null()));

    let bk = unpack(&bk_tar, &dir.path().join("bk"));
    let mf = unpack(&mf_tar, &dir.path().join("mf"));

    // --- Root filesystems.
    let bk_tree = tree(&bk.root);
    let mf_tree = tree(&mf.root);
    // What the Dockerfile made is there at all (so an empty comparison cannot pass).
    for p in [
        "/app/work/hello.txt",
        "/app/work/run.sh",
        "/app/tree/nested/deeper/file.txt",
        "/app/tree/link",
        "/app/owned.txt",
        "/app/secret.txt",
        "/opt/bundle/etc/conf",
        "/opt/bundle/conf-link",
        "/data/sub/greeting",
        "/data/link",
        "/bin/sh",
        "/ids/builder",
    ] {
        assert!(bk_tree.contains_key(p), "BuildKit's image lacks {p}");
    }
    // A RUN under `USER name` has the user's groups, its primary group among them
    // (compared with BuildKit's below, and spelled out here).
    assert_eq!(
        std::fs::read_to_string(mf.root.join("ids/builder")).unwrap(),
        "uid=1234(builder) gid=1234(builder) groups=1234(builder),2345(extra)\n"
    );
    assert!(
        !bk_tree.contains_key("/bin/true"),
        "the RUN deleted /bin/true"
    );
    let mut diffs = tree_differences(&bk_tree, &mf_tree);
    // KNOWN DIFFERENCE (BuildKit version, not a manifold bug): BuildKit before 0.11.4
    // (Docker 20.10 embeds 0.8) left the primary group out of a step's supplementary
    // groups; 0.11.4 and containerd 1.6.18 added it (CVE-2023-25173), as manifold does.
    // Exactly this pair of contents is mapped.
    let bk_ids = std::fs::read_to_string(bk.root.join("ids/builder")).unwrap();
    eprintln!("BuildKit: id under USER builder: {}", bk_ids.trim_end());
    let (b, m) = (&bk_tree["/ids/builder"], &mf_tree["/ids/builder"]);
    if bk_ids == "uid=1234(builder) gid=1234(builder) groups=2345(extra)\n"
        && (b.kind, b.mode, b.uid, b.gid) == (m.kind, m.mode, m.uid, m.gid)
    {
        diffs.remove("/ids/builder");
    }
    // The mount points runc creates for the step's /etc/hosts and /etc/resolv.conf
    // (when the base has none) are removed from the layer, as BuildKit does: no
    // path may differ.
    let unexpected: Vec<&String> = diffs.values().collect();
    eprintln!(
        "compared {} paths of BuildKit's image with {} of manifold's",
        bk_tree.len(),
        mf_tree.len()
    );
    for d in diffs.values() {
        eprintln!("tree difference: {d}");
    }
    assert!(
        unexpected.is_empty(),
        "{} paths differ from BuildKit's image:\n{}",
        unexpected.len(),
        unexpected
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );

    // --- Configs.
    let bk_fields = config_fields(&bk.config);
    let mf_fields = config_fields(&mf.config);
    for (k, b) in &bk_fields {
        eprintln!("config {k}: BuildKit {b}, manifold {}", mf_fields[k]);
    }
    assert_eq!(bk_fields, mf_fields, "config fields");
    assert_eq!(bk.layers, mf.layers, "number of layers");
    assert_eq!(
        bk.config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        mf.config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        "number of diff_ids"
    );
    // KNOWN DIFFERENCE (BuildKit version, not a manifold bug): manifold writes the
    // history of current BuildKit, Docker 20.10's embedded BuildKit (v0.8) an older
    // one. Its COPY history leaves out --chown/--chmod, and its EXPOSE history prints
    // Go's map (`map[53/udp:{} 8080/tcp:{}]`, sorted) where current BuildKit prints the
    // ports as listed (`[8080/tcp 53/udp]`). Exactly these pairs are mapped; every
    // other entry must be equal.
    let version_pairs: &[(&str, &str)] = &[
        (
            "COPY owned.txt /app/owned.txt # buildkit",
            "COPY --chown=1000:1000 owned.txt /app/owned.txt # buildkit",
        ),
        (
            "COPY secret.txt /app/secret.txt # buildkit",
            "COPY --chmod=640 secret.txt /app/secret.txt # buildkit",
        ),
        (
            "EXPOSE map[53/udp:{} 8080/tcp:{}]",
            "EXPOSE [8080/tcp 53/udp]",
        ),
    ];
    let bk_raw = history(&bk.config);
    let mf_history = history(&mf.config);
    for (i, h) in bk_raw.iter().enumerate() {
        eprintln!(
            "history {i}: BuildKit {h:?}, manifold {:?}",
            mf_history.get(i)
        );
    }
    let bk_history: Vec<(String, bool)> = bk_raw
        .into_iter()
        .map(|(by, empty)| {
            let by = version_pairs
                .iter()
                .find(|(old, _)| *old == by)
                .map_or(by, |(_, new)| (*new).to_owned());
            (by, empty)
        })
        .collect();
    assert_eq!(bk_history, mf_history, "history (created_by, empty_layer)");
    eprintln!("parity test took {:?}", started.elapsed());
}
