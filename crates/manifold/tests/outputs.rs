//! `manifold build` outputs end to end: OCI layouts read by skopeo and umoci, docker
//! archives loaded by podman, root filesystems as directories and tars, pushes to a
//! real distribution registry read back by skopeo, `--load` into podman, and the
//! reports (`--iidfile`, `--metadata-file`, `-q`). Needs root (runc) and the tools of
//! `scripts/setup.sh`; podman runs on a private root per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use content::Store;
use oci::{Descriptor, ImageIndex, ImageManifest, RawDocument, media};

const BASE: &str = "localhost/busybox:test";

const DOCKERFILE: &str = r#"
FROM localhost/busybox:test
RUN uname -m > /arch && echo hello > /hello && rm /bin/true
"#;

/// PATH for manifold: `bin` (a private podman), then the system's directories
/// without /usr/local/bin (docker's client).
fn path_with(bin: &Path) -> String {
    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display())
}

/// PATH for manifold with runc and nothing else: no docker, no podman.
fn bare_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let runc = testkit::require_tool("runc");
    let _ = std::os::unix::fs::symlink(runc, bin.join("runc"));
    bin.display().to_string()
}

fn manifold_cmd(root: &Path, path: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_manifold"));
    c.args(args)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("DOCKER_CONFIG", root.join("docker"))
        .env("PATH", path)
        .env_remove("MANIFOLD_RUNTIME")
        .stdin(Stdio::null());
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    ok(&out);
    out
}

/// A state root whose store holds a busybox index for `arches` named [`BASE`].
fn root_with_base(arches: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(dir.path(), BASE, arches);
    dir
}

fn context() -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), DOCKERFILE).unwrap();
    ctx
}

/// podman on a private root and storage (vfs), behind a `podman` wrapper in `bin`.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        let podman = testkit::require_tool("podman");
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let wrapper = bin.join("podman");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} {} \"$@\"\n",
                podman.display(),
                Podman::flags(dir.path()).join(" ")
            ),
        )
        .unwrap();
        // runc, minus the rlimits podman always asks for (nofile 1048576, nproc):
        // this machine refuses to set them on another process, even to the
        // current values.
        let runc = testkit::require_tool("runc");
        let runtime = dir.path().join("runc-without-rlimits");
        std::fs::write(
            &runtime,
            format!(
                "#!/bin/sh\nprev=\nfor a in \"$@\"; do\n  \
                 case \"$prev\" in --bundle|-b) b=\"$a\";; esac\n  prev=\"$a\"\ndone\n\
                 if [ -n \"$b\" ] && [ -f \"$b/config.json\" ]; then\n  \
                 sed -i -e 's/\"rlimits\":\\[[^]]*\\],//' -e 's/,\"rlimits\":\\[[^]]*\\]//' \"$b/config.json\"\n\
                 fi\nexec {} \"$@\"\n",
                runc.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        for f in [&wrapper, &runtime] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Podman { dir }
    }

    /// `podman run` with runc (see [`Podman::new`]).
    fn run(&self, args: &[&str]) -> Command {
        let runtime = self.dir.path().join("runc-without-rlimits");
        let mut all = vec![
            "run".to_owned(),
            "--rm".to_owned(),
            format!("--runtime={}", runtime.display()),
            "--network=none".to_owned(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let mut c = Command::new(self.bin().join("podman"));
        c.args(all).stdin(Stdio::null());
        c
    }

    fn flags(dir: &Path) -> Vec<String> {
        vec![
            format!("--root={}", dir.join("root").display()),
            format!("--runroot={}", dir.join("run").display()),
            format!("--tmpdir={}", dir.join("tmp").display()),
            "--storage-driver=vfs".into(),
            "--cgroup-manager=cgroupfs".into(),
            "--events-backend=file".into(),
        ]
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin().join("podman"));
        c.args(args).stdin(Stdio::null());
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // vfs layers may hold read-only directories; podman removes its own state.
        let _ = self
            .cmd(&["system", "reset", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn read_index(store: &Store, desc: &Descriptor) -> ImageIndex {
    RawDocument::<ImageIndex>::parse(store.read_document(&desc.digest).unwrap())
        .unwrap()
        .value()
        .clone()
}

fn read_manifest(store: &Store, desc: &Descriptor) -> ImageManifest {
    RawDocument::<ImageManifest>::parse(store.read_document(&desc.digest).unwrap())
        .unwrap()
        .value()
        .clone()
}

/// Check `layout` (an OCI layout directory) holds one valid image whose digest is
/// `digest`; returns its manifests (the image itself when it is a manifest).
fn check_layout(layout: &Path, digest: &str) -> (Store, Vec<Descriptor>) {
    let store = Store::read_layout(layout).unwrap();
    let top = store.index().unwrap();
    assert_eq!(top.manifests.len(), 1, "{}", layout.display());
    let desc = top.manifests[0].clone();
    assert_eq!(desc.digest.to_string(), digest);
    let problems = export::validate(&store, &desc);
    assert!(problems.is_empty(), "{}: {problems:?}", layout.display());
    let manifests = match desc.media_type.as_str() {
        media::OCI_INDEX => read_index(&store, &desc).manifests,
        _ => vec![desc],
    };
    (store, manifests)
}

fn untar(file: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(file)
        .arg("-C")
        .arg(dir.path()));
    dir
}

fn tar_list(file: &Path) -> Vec<String> {
    let out = run(Command::new("tar").arg("-tf").arg(file));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

fn skopeo(args: &[&str]) -> Output {
    let skopeo = testkit::require_tool("skopeo");
    run(Command::new(skopeo).args(args))
}

#[test]
fn single_platform_outputs_are_read_by_skopeo_umoci_and_podman() {
    testkit::require_root_and_runc();
    testkit::require_tool("umoci");
    let root = root_with_base(&["amd64"]);
    let ctx = context();
    let out_dir = tempfile::tempdir().unwrap();
    let o = |p: &str| out_dir.path().join(p);
    let s = |p: &str| o(p).to_str().unwrap().to_owned();
    let podman = Podman::new();
    let path = path_with(&podman.bin());
    let out = run(&mut manifold_cmd(
        root.path(),
        &path,
        &[
            "build",
            "-q",
            "-t",
            "localhost/outputs:one",
            "--platform=linux/amd64",
            "-o",
            &format!("type=oci,dest={}", s("image.tar")),
            "-o",
            &format!("type=oci,dest={},tar=false", s("layout")),
            "-o",
            &format!("type=docker,dest={}", s("docker.tar")),
            "-o",
            &format!("type=local,dest={}", s("rootfs")),
            "-o",
            &format!("type=tar,dest={}", s("rootfs.tar")),
            "-o",
            r#"type=image,"name=localhost/outputs:two,localhost/outputs:three""#,
            "--iidfile",
            &s("iid"),
            "--metadata-file",
            &s("meta.json"),
            "--load",
            ctx.path().to_str().unwrap(),
        ],
    ));
    // -q: only the digest on stdout, the same as --iidfile and the store's name.
    let digest = std::fs::read_to_string(o("iid")).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(text(&out.stdout), format!("{digest}\n"));
    let store = Store::open(root.path()).unwrap();
    for name in [
        "localhost/outputs:one",
        "localhost/outputs:two",
        "localhost/outputs:three",
    ] {
        let named = store
            .resolve(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(named.digest.to_string(), digest, "{name}");
    }
    // --metadata-file: buildx's keys.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(o("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["containerimage.digest"], digest.as_str());
    assert_eq!(meta["containerimage.descriptor"]["digest"], digest.as_str());
    // One platform, no attestations: a manifest, as BuildKit makes it.
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        media::OCI_MANIFEST
    );
    assert_eq!(
        meta["image.name"],
        "localhost/outputs:one,localhost/outputs:two,localhost/outputs:three"
    );

    // type=oci (tar): skopeo reads it; the index is the one in the store.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", s("image.tar")),
    ]);
    assert_eq!(oci::Digest::sha256(&raw.stdout).to_string(), digest);
    let inspected = skopeo(&["inspect", &format!("oci-archive:{}", s("image.tar"))]);
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspected["Architecture"], "amd64");
    let unpacked = untar(&o("image.tar"));
    check_layout(unpacked.path(), &digest);

    // type=oci,tar=false: umoci and skopeo read the directory, named by the tag.
    let umoci = run(Command::new("umoci").args(["ls", "--layout", &s("layout")]));
    assert_eq!(text(&umoci.stdout).trim(), "one");
    skopeo(&["inspect", &format!("oci:{}:one", s("layout"))]);
    let (layout, manifests) = check_layout(&o("layout"), &digest);
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].media_type, media::OCI_MANIFEST);
    let manifest = read_manifest(&layout, &manifests[0]);

    // type=docker: podman loads it, tagged, and runs it.
    let loaded = run(&mut podman.cmd(&["load", "-i", &s("docker.tar")]));
    assert!(
        text(&loaded.stdout).contains("localhost/outputs:one"),
        "{}",
        text(&loaded.stdout)
    );
    let ran = run(&mut podman.run(&["localhost/outputs:one", "cat", "/hello", "/arch"]));
    assert_eq!(text(&ran.stdout), "hello\nx86_64\n");
    skopeo(&["inspect", &format!("docker-archive:{}", s("docker.tar"))]);

    // --load: the host's image went into the (private) podman too.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("loaded linux/amd64 into podman"),
        "{stderr}"
    );
    let images = run(&mut podman.cmd(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(
        text(&images.stdout).contains("localhost/outputs:one"),
        "{}",
        text(&images.stdout)
    );

    // type=local: the final filesystem, the base's deleted file gone.
    assert!(
        testkit::base::busybox_rootfs("amd64")
            .join("bin/true")
            .symlink_metadata()
            .is_ok(),
        "the base image has /bin/true"
    );
    let rootfs = o("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("arch")).unwrap(),
        "x86_64\n"
    );
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(rootfs.join("bin/true").symlink_metadata().is_err());
    assert!(!rootfs.join("linux_amd64").exists());

    // type=tar: the same tree.
    let listed = tar_list(&o("rootfs.tar"));
    assert!(listed.iter().any(|l| l == "hello"), "{listed:?}");
    assert!(listed.iter().any(|l| l == "bin/busybox"), "{listed:?}");
    assert!(!listed.iter().any(|l| l == "bin/true"), "{listed:?}");
    assert!(!listed.iter().any(|l| l.contains(".wh.")), "{listed:?}");
    let from_tar = untar(&o("rootfs.tar"));
    assert_eq!(
        std::fs::read(from_tar.path().join("bin/busybox")).unwrap(),
        std::fs::read(rootfs.join("bin/busybox")).unwrap()
    );

    // -o - : the same tar on stdout (the build is cached now).
    let out = run(&mut manifold_cmd(
        root.path(),
        &path,
        &[
            "build",
            "--progress=quiet",
            "--platform=linux/amd64",
            "-o",
            "-",
            ctx.path().to_str().unwrap(),
        ],
    ));
    assert_eq!(out.stdout, std::fs::read(o("rootfs.tar")).unwrap());

    // Encoding options: zstd for every layer, the base's recompressed.
    assert!(
        manifest
            .layers
            .iter()
            .any(|l| l.media_type == media::OCI_LAYER_TAR),
        "the base layer is uncompressed: {:?}",
        manifest.layers
    );
    let zout = run(&mut manifold_cmd(
        root.path(),
        &path,
        &[
            "build",
            "--progress=quiet",
            "--platform=linux/amd64",
            "--iidfile",
            &s("zstd.iid"),
            "-o",
            &format!(
                "type=oci,dest={},compression=zstd,compression-level=9,force-compression=true",
                s("zstd.tar")
            ),
            "-o",
            &format!("type=oci,tar=false,dest={},compression=zstd", s("zstd")),
            ctx.path().to_str().unwrap(),
        ],
    ));
    let zdigest = std::fs::read_to_string(o("zstd.iid")).unwrap();
    let stderr = text(&zout.stderr);
    assert!(
        stderr.contains(&format!(
            "built {zdigest} (1 platform(s); base layers recompressed to zstd-9)"
        )),
        "{stderr}"
    );
    // One digest is announced: the image's, not the build's before recompression.
    assert_eq!(stderr.matches("built sha256:").count(), 1, "{stderr}");
    let (zstore, zindex) = check_layout(&o("zstd"), &zdigest);
    let zmanifest = read_manifest(&zstore, &zindex[0]);
    assert_eq!(zmanifest.layers.len(), manifest.layers.len());
    for l in &zmanifest.layers {
        assert_eq!(l.media_type, media::OCI_LAYER_ZSTD, "{zmanifest:?}");
    }
    skopeo(&["inspect", &format!("oci:{}", s("zstd"))]);
    let zraw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", s("zstd.tar")),
    ]);
    assert_eq!(oci::Digest::sha256(&zraw.stdout).to_string(), zdigest);
}

#[test]
fn multi_platform_push_local_and_tar_and_the_arm64_image_runs_in_podman() {
    testkit::require_root_and_runc();
    let _binfmt =
        testkit::binfmt::Guard::ensure(Path::new(env!("CARGO_BIN_EXE_manifold")), &["arm64"]);
    let registry = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    let root = root_with_base(&["amd64", "arm64"]);
    let ctx = context();
    let out_dir = tempfile::tempdir().unwrap();
    let o = |p: &str| out_dir.path().join(p);
    let s = |p: &str| o(p).to_str().unwrap().to_owned();
    let name = format!("{}/outputs/multi:v1", registry.addr);
    let out = run(&mut manifold_cmd(
        root.path(),
        &bare_path(out_dir.path()),
        &[
            "build",
            "--progress=plain",
            "--platform=linux/amd64,linux/arm64",
            "-t",
            &name,
            "--push",
            "-o",
            &s("rootfs"),
            "-o",
            &format!("type=tar,dest={}", s("rootfs.tar")),
            "--metadata-file",
            &s("meta.json"),
            "--load",
            ctx.path().to_str().unwrap(),
        ],
    ));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(o("meta.json")).unwrap()).unwrap();
    let digest = meta["containerimage.digest"].as_str().unwrap().to_owned();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("pushed {name}@{digest}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("no docker or podman engine answered"),
        "{stderr}"
    );
    // The registry serves the very index in the store.
    let store = Store::open(root.path()).unwrap();
    let local = store.resolve(&name).unwrap();
    assert_eq!(local.digest.to_string(), digest);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    assert_eq!(oci::Digest::sha256(&raw.stdout).to_string(), digest);
    assert_eq!(raw.stdout, store.read_document(&local.digest).unwrap());
    // Two images, and the provenance of each (pushed by default).
    let index = read_index(&store, &local);
    assert_eq!(index.manifests.len(), 4);
    assert_eq!(
        index
            .manifests
            .iter()
            .filter(|m| !export::attest::is_attestation(m))
            .count(),
        2
    );
    assert!(export::validate(&store, &local).is_empty());

    // type=local and type=tar: one directory per platform, named as buildx does.
    for (dir, uname) in [("linux_amd64", "x86_64\n"), ("linux_arm64", "aarch64\n")] {
        let arch = o("rootfs").join(dir).join("arch");
        assert_eq!(std::fs::read_to_string(&arch).unwrap(), uname, "{dir}");
        assert!(o("rootfs").join(dir).join("bin/busybox").is_file());
    }
    let from_tar = untar(&o("rootfs.tar"));
    for (dir, uname) in [("linux_amd64", "x86_64\n"), ("linux_arm64", "aarch64\n")] {
        let arch = from_tar.path().join(dir).join("arch");
        assert_eq!(std::fs::read_to_string(&arch).unwrap(), uname, "{dir}");
        assert!(!from_tar.path().join(dir).join("bin/true").exists());
    }
    assert_eq!(
        std::fs::read(from_tar.path().join("linux_arm64/bin/busybox")).unwrap(),
        std::fs::read(testkit::base::busybox_rootfs("arm64").join("bin/busybox")).unwrap()
    );

    // podman pulls the arm64 image from the registry and runs it under QEMU.
    let podman = Podman::new();
    let ran = run(&mut podman.run(&[
        "--tls-verify=false",
        "--platform=linux/arm64",
        &name,
        "uname",
        "-m",
    ]));
    assert_eq!(text(&ran.stdout), "aarch64\n");

    // -o type=docker without dest (--load) with several platforms: the host's goes
    // to podman, by the output's name.
    let local_name = "localhost/outputs:multi";
    let out = run(&mut manifold_cmd(
        root.path(),
        &path_with(&podman.bin()),
        &[
            "build",
            "--progress=quiet",
            "--platform=linux/amd64,linux/arm64",
            "-o",
            &format!("type=docker,name={local_name}"),
            ctx.path().to_str().unwrap(),
        ],
    ));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "loaded linux/amd64 into podman; the other platforms stay in manifold's store"
        ),
        "{stderr}"
    );
    let ran = run(&mut podman.run(&[local_name, "cat", "/arch"]));
    assert_eq!(text(&ran.stdout), "x86_64\n");
}

/// The push-by-digest CI flow: each platform built on its own machine (state root)
/// and pushed by digest with its `--metadata-file`, then `imagetools create -f` over
/// those files, gives the very index (same bytes) that one multi-platform build pushes.
#[test]
fn push_by_digest_then_imagetools_create_equals_a_multi_platform_build() {
    testkit::require_root_and_runc();
    let _binfmt =
        testkit::binfmt::Guard::ensure(Path::new(env!("CARGO_BIN_EXE_manifold")), &["arm64"]);
    let registry = testkit::registry::DistRegistry::start(testkit::registry::Auth::Open);
    let repo = format!("{}/ci/app", registry.addr);
    let ctx = context();
    let out_dir = tempfile::tempdir().unwrap();
    let o = |p: &str| out_dir.path().join(p);
    let s = |p: &str| o(p).to_str().unwrap().to_owned();
    let path = bare_path(out_dir.path());
    // Each command on a state root of its own, as on separate CI machines; without
    // the default provenance, whose statements name what each push was called.
    let manifold = |args: &[&str]| {
        let root = root_with_base(&["amd64", "arm64"]);
        let out = run(manifold_cmd(root.path(), &path, args)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1"));
        text(&out.stdout)
    };
    let raw = |reference: &str| {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .stdout
    };
    let by_digest =
        format!("type=image,name={repo},push-by-digest=true,name-canonical=true,push=true");
    let mut digests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let meta_file = s(&format!("meta-{arch}.json"));
        manifold(&[
            "build",
            "--progress=quiet",
            "--platform",
            &format!("linux/{arch}"),
            "-o",
            &by_digest,
            "--metadata-file",
            &meta_file,
            ctx.path().to_str().unwrap(),
        ]);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&meta_file).unwrap()).unwrap();
        let digest = meta["containerimage.digest"].as_str().unwrap().to_owned();
        // The registry serves that manifest under that digest.
        let manifest = raw(&format!("{repo}@{digest}"));
        assert_eq!(oci::Digest::sha256(&manifest).to_string(), digest, "{arch}");
        assert_eq!(meta["containerimage.descriptor"]["digest"], digest.as_str());
        assert_eq!(
            meta["containerimage.descriptor"]["mediaType"],
            media::OCI_MANIFEST
        );
        let canonical = format!("{repo}@{digest}");
        let names = meta["image.name"].as_str().unwrap();
        assert!(names.split(',').any(|n| n == canonical), "{arch}: {names}");
        digests.push(digest);
    }

    let merged = format!("{repo}:merged");
    let created = manifold(&[
        "imagetools",
        "create",
        "-t",
        &merged,
        "-f",
        &s("meta-amd64.json"),
        "-f",
        &s("meta-arm64.json"),
    ]);
    let both = format!("{repo}:both");
    manifold(&[
        "build",
        "--progress=quiet",
        "--platform=linux/amd64,linux/arm64",
        "-o",
        &format!("type=image,name={both},push=true"),
        ctx.path().to_str().unwrap(),
    ]);
    let merged_raw = raw(&merged);
    let both_raw = raw(&both);
    assert_eq!(
        text(&merged_raw),
        text(&both_raw),
        "imagetools create and the multi-platform build push the same index"
    );
    assert_eq!(created.trim(), oci::Digest::sha256(&merged_raw).to_string());
    let index: ImageIndex = serde_json::from_slice(&merged_raw).unwrap();
    let listed: Vec<(String, String)> = index
        .manifests
        .iter()
        .map(|m| {
            (
                m.digest.to_string(),
                m.platform.as_ref().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (digests[0].clone(), "linux/amd64".to_owned()),
            (digests[1].clone(), "linux/arm64".to_owned())
        ]
    );
}

#[test]
fn refusals_come_before_the_build_with_hints() {
    testkit::require_root_and_runc();
    let root = tempfile::tempdir().unwrap();
    let ctx = context();
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &[
                "--platform=linux/amd64,linux/arm64",
                "-o",
                "type=docker,dest=x.tar",
            ],
            "error: docker exporter does not support multiple platforms",
            "hint: use type=oci, or --platform with one platform",
        ),
        (
            &["--push"],
            "error: nothing to push to: the image has no name",
            "hint: name it with -t",
        ),
        (
            &["-o", "type=registry"],
            "error: nothing to push to: the image has no name",
            "hint: name it with -t",
        ),
        (
            &["-o", "type=local,name=x,dest=d"],
            "type=local does not take name=",
            "hint: type=local takes dest",
        ),
        (
            &["-o", "type=tar,dest=-", "-o", "type=oci,dest=-"],
            "error: more than one output writes to standard output",
            "hint:",
        ),
    ];
    for (args, error, hint) in cases {
        let mut all = vec!["build"];
        all.extend(args);
        all.push(ctx.path().to_str().unwrap());
        let out = manifold_cmd(root.path(), &bare_path(root.path()), &all)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(error), "{args:?}: {stderr}");
        assert!(stderr.contains(hint), "{args:?}: {stderr}");
        // Refused before anything ran: no step output.
        assert!(!stderr.contains("RUN"), "{args:?}: {stderr}");
    }
}
