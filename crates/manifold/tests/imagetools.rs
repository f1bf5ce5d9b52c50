//! `login`, `logout` and `imagetools` against the real distribution registry.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use content::Store;
use oci::Reference;
use registry::{Anonymous, Client, RegistryConfig};
use testkit::registry::{Auth, DistRegistry};

struct Env {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    docker: std::path::PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let docker = dir.path().join("docker");
    Env {
        _dir: dir,
        root,
        docker,
    }
}

fn manifold(env: &Env, args: &[&str], stdin: &str) -> Output {
    manifold_with_path(env, args, stdin, &std::env::var("PATH").unwrap())
}

fn manifold_with_path(env: &Env, args: &[&str], stdin: &str, path: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(args)
        .env("MANIFOLD_ROOT", &env.root)
        .env("MANIFOLD_CONFIG", env.root.join("config"))
        .env("DOCKER_CONFIG", &env.docker)
        .env("PATH", path)
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

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Push a fixture index for `platforms` to `reference`; returns its digest.
fn push_fixture(reference: &str, platforms: &[&str]) -> oci::Digest {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let idx = testkit::write_index(&store, &lease, platforms);
    let client = Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(client.push(&store, &idx, &Reference::parse(reference).unwrap(), None))
        .unwrap();
    idx.digest
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    testkit::require_tool("skopeo");
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn login_writes_a_file_skopeo_accepts_and_logout_removes_it() {
    let reg = DistRegistry::start(Auth::Basic {
        user: "bob".into(),
        password: "hunter22".into(),
    });
    let e = env();
    let bad = manifold(
        &e,
        &["login", &reg.addr, "-u", "bob", "--password-stdin"],
        "wrong\n",
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(&format!("login to {} failed", reg.addr)),
        "{err}"
    );
    assert!(
        err.contains("hint: log in with `manifold login 127.0.0.1`"),
        "{err}"
    );
    assert!(
        !e.docker.join("config.json").exists(),
        "nothing stored after a failed login"
    );

    let out = ok(manifold(
        &e,
        &["login", &reg.addr, "-u", "bob", "--password-stdin"],
        "hunter22\n",
    ));
    assert_eq!(out, "Login Succeeded\n");
    let authfile = e.docker.join("config.json");
    let text = std::fs::read_to_string(&authfile).unwrap();
    assert!(
        !text.contains("hunter22"),
        "stored base64-encoded as docker does"
    );

    push_fixture_with_auth(&reg, &authfile);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--authfile",
        authfile.to_str().unwrap(),
        &format!("docker://{}/auth/app:1", reg.addr),
    ]);
    assert!(!raw.is_empty());

    let out = ok(manifold(&e, &["logout", &reg.addr], ""));
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.addr)
    );
    let again = ok(manifold(&e, &["logout", &reg.addr], ""));
    assert!(again.starts_with("Not logged in"), "{again}");
}

/// skopeo pushes with the stored credentials: proves the file is usable for writing.
fn push_fixture_with_auth(reg: &DistRegistry, authfile: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let idx = testkit::write_index(&store, &lease, &["linux/amd64"]);
    store.set_name("app", &idx).unwrap();
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--authfile",
        authfile.to_str().unwrap(),
        &format!("oci:{}:app", store.layout_dir().display()),
        &format!("docker://{}/auth/app:1", reg.addr),
    ]);
}

#[test]
fn inspect_pretty_raw_and_json() {
    let reg = DistRegistry::start(Auth::Open);
    let name = format!("{}/hello:latest", reg.addr);
    let digest = push_fixture(&name, &["linux/amd64", "linux/arm64"]);
    let e = env();

    let pretty = ok(manifold(&e, &["imagetools", "inspect", &name], ""));
    let lines: Vec<&str> = pretty.lines().collect();
    assert_eq!(lines[0], format!("Name:      {name}"));
    assert_eq!(
        lines[1],
        "MediaType: application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(lines[2], format!("Digest:    {digest}"));
    assert!(lines.contains(&"Manifests: "), "{pretty}");
    let platforms: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("  Platform:    "))
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert!(
        pretty.contains(&format!("  Name:        {}/hello@sha256:", reg.addr)),
        "{pretty}"
    );

    let raw = manifold(&e, &["imagetools", "inspect", "--raw", &name], "");
    assert!(raw.status.success());
    assert_eq!(oci::Digest::sha256(&raw.stdout), digest);

    let json: serde_json::Value = serde_json::from_str(&ok(manifold(
        &e,
        &["imagetools", "inspect", "--format", "json", &name],
        "",
    )))
    .unwrap();
    assert_eq!(json["digest"], digest.to_string());
    assert_eq!(json["image"]["linux/arm64"]["architecture"], "arm64");
}

/// Push the single-platform image `platform` (a manifest, no index) to `reference`.
fn push_image(reference: &str, platform: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let p = oci::Platform::parse(platform).unwrap();
    let desc = testkit::write_image(&store, &lease, &p, "one platform");
    let client = Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(client.push(&store, &desc, &Reference::parse(reference).unwrap(), None))
        .unwrap();
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// buildx's documented `--format` templates, checked against what skopeo reads.
#[test]
fn inspect_format_templates_match_skopeo() {
    let reg = DistRegistry::start(Auth::Open);
    let name = format!("{}/tmpl/app:1", reg.addr);
    push_fixture(&name, &["linux/amd64", "linux/arm64"]);
    let e = env();
    let inspect = |format: &str, name: &str| {
        ok(manifold(
            &e,
            &["imagetools", "inspect", "--format", format, name],
            "",
        ))
    };
    let docker = format!("docker://{name}");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &docker]);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();

    // `.Manifest` is the index with its digest and size.
    let mut want = index.clone();
    want["digest"] = oci::Digest::sha256(&raw).to_string().into();
    want["size"] = raw.len().into();
    assert_eq!(json(&inspect("{{json .Manifest}}", &name)), want);

    let listed = inspect(
        "{{range .Manifest.Manifests}}{{.Digest}} {{.Platform.OS}}/{{.Platform.Architecture}}\n{{end}}",
        &name,
    );
    let want: String = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            format!(
                "{} {}/{}\n",
                m["digest"].as_str().unwrap(),
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            )
        })
        .collect();
    // The template's last newline, then the one every template output ends with.
    assert_eq!(listed, format!("{want}\n"));

    for arch in ["amd64", "arm64"] {
        let config = skopeo(&[
            "--override-os",
            "linux",
            "--override-arch",
            arch,
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            &docker,
        ]);
        let want: serde_json::Value = serde_json::from_slice(&config).unwrap();
        let got = inspect(
            &format!("{{{{json (index .Image \"linux/{arch}\")}}}}"),
            &name,
        );
        assert_eq!(json(&got), want, "linux/{arch}");
        let all = json(&inspect("{{json .}}", &name));
        assert_eq!(all["image"][format!("linux/{arch}")], want);
    }
    let keys = inspect(
        "{{range $p, $_ := .Image}}{{$p}} {{end}}{{if eq (len .Image) 2}}two{{end}}",
        &name,
    );
    assert_eq!(keys, "linux/amd64 linux/arm64 two\n");

    // buildx prints these two as it does by default.
    assert_eq!(inspect("{{.Name}}", &name), format!("Name: {name}\n"));
    assert_eq!(
        inspect("{{.Manifest}}", &name),
        ok(manifold(&e, &["imagetools", "inspect", &name], ""))
    );

    // One platform, no index: `.Image` is the config itself.
    let single = format!("{}/tmpl/single:1", reg.addr);
    push_image(&single, "linux/arm64");
    let config = skopeo(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{single}"),
    ]);
    let want: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(json(&inspect("{{json .Image}}", &single)), want);
    assert_eq!(
        inspect("{{.Image.Architecture}} {{len .Manifest.Layers}}", &single),
        "arm64 1\n"
    );

    // An unknown field: exit 1, nothing on stdout, the field and the known ones named.
    let bad = manifold(
        &e,
        &[
            "imagetools",
            "inspect",
            "--format",
            "{{.Name}} {{.Nope}}",
            &name,
        ],
        "",
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        bad.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown field .Nope at line 1, column 13"),
        "{err}"
    );
    assert!(
        err.contains("hint: the fields here are .Name, .Manifest, .Image"),
        "{err}"
    );
}

#[test]
fn copy_keeps_the_digest_and_create_combines() {
    let reg = DistRegistry::start(Auth::Open);
    let src = format!("{}/src/app:1", reg.addr);
    let digest = push_fixture(&src, &["linux/amd64", "linux/arm64"]);
    let e = env();
    let dst = format!("{}/dst/app:copy", reg.addr);
    let out = ok(manifold(&e, &["imagetools", "copy", &src, &dst], ""));
    assert_eq!(out.trim(), digest.to_string());
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dst}"),
    ]);
    assert_eq!(oci::Digest::sha256(&raw), digest);

    // Only one platform: a new, smaller index.
    let one = format!("{}/dst/app:arm", reg.addr);
    ok(manifold(
        &e,
        &[
            "imagetools",
            "copy",
            "--platform",
            "linux/arm64",
            &src,
            &one,
        ],
        "",
    ));
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{one}"),
    ]);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");

    // create: the arm-only index plus an s390x image, annotated.
    let other = format!("{}/other/img:1", reg.addr);
    push_fixture(&other, &["linux/s390x"]);
    let combined = format!("{}/combined/app:2", reg.addr);
    let dry = ok(manifold(
        &e,
        &[
            "imagetools",
            "create",
            "--dry-run",
            "-t",
            &combined,
            "--annotation",
            "index:org.example.note=hi",
            &one,
            &other,
        ],
        "",
    ));
    let v: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(v["annotations"]["org.example.note"], "hi");
    ok(manifold(
        &e,
        &["imagetools", "create", "-t", &combined, &one, &other],
        "",
    ));
    let pretty = ok(manifold(&e, &["imagetools", "inspect", &combined], ""));
    assert!(
        pretty.contains("Platform:    linux/arm64") && pretty.contains("Platform:    linux/s390x"),
        "{pretty}"
    );

    let bad = manifold(
        &e,
        &[
            "imagetools",
            "create",
            "-t",
            &combined,
            "--annotation",
            "manifest:a=b",
            &one,
        ],
        "",
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("imagetools create cannot set manifest annotations")
    );
}

/// Push the single-platform image `platform` to `repo` by digest (no tag), as
/// `push-by-digest=true` does; returns its manifest's descriptor (with the platform).
fn push_by_digest(repo: &str, platform: &str) -> oci::Descriptor {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let p = oci::Platform::parse(platform).unwrap();
    let desc = testkit::write_image(&store, &lease, &p, &format!("by digest {platform}"));
    let target = Reference::parse(&format!("{repo}@{}", desc.digest)).unwrap();
    let client = Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(client.push(&store, &desc, &target, None))
        .unwrap();
    desc
}

fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// `-f` descriptor files and bare digests name the first -t's repository; platforms
/// come from the files, else from the image configs; annotations go to the index
/// (the default type) and its entries (`manifest-descriptor[PLATFORM]`); `-p`
/// keeps platforms; every mistake names what is wrong.
#[test]
fn create_from_descriptor_files_and_digests() {
    let reg = DistRegistry::start(Auth::Open);
    let repo = format!("{}/ci/app", reg.addr);
    let amd = push_by_digest(&repo, "linux/amd64");
    let arm = push_by_digest(&repo, "linux/arm64");
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    // An OCI descriptor with no platform, and annotations of its own.
    let amd_file = file(
        "amd.json",
        &format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{},"annotations":{{"org.example.from":"file"}}}}"#,
            amd.media_type, amd.digest, amd.size
        ),
    );
    let target = format!("{repo}:multi");
    let out = ok(manifold(
        &e,
        &[
            "imagetools",
            "create",
            "-t",
            &target,
            "-f",
            &amd_file,
            &arm.digest.to_string(),
            "--annotation",
            "org.example.note=on the index",
            "--annotation",
            "manifest-descriptor[linux/arm64]:org.example.arch=arm",
        ],
        "",
    ));
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]);
    assert_eq!(out.trim(), oci::Digest::sha256(&raw).to_string());
    let index = json(std::str::from_utf8(&raw).unwrap());
    assert_eq!(index["mediaType"], oci::media::OCI_INDEX);
    assert_eq!(index["annotations"]["org.example.note"], "on the index");
    let m = index["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0]["digest"], amd.digest.to_string());
    assert_eq!(m[0]["platform"]["architecture"], "amd64", "from the config");
    assert_eq!(m[0]["annotations"]["org.example.from"], "file");
    assert!(m[0]["annotations"].get("org.example.arch").is_none());
    assert_eq!(m[1]["digest"], arm.digest.to_string());
    assert_eq!(m[1]["platform"]["architecture"], "arm64");
    assert_eq!(m[1]["annotations"]["org.example.arch"], "arm");

    // A descriptor's own platform is kept; -p keeps only what is asked for.
    let arm_file = file(
        "arm.json",
        &format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}"#,
            arm.media_type, arm.digest, arm.size
        ),
    );
    let dry = ok(manifold(
        &e,
        &[
            "imagetools",
            "create",
            "--dry-run",
            "-t",
            &target,
            "-p",
            "linux/arm64",
            "-f",
            &amd_file,
            "-f",
            &arm_file,
        ],
        "",
    ));
    let v = json(&dry);
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["platform"]["variant"], "v8");

    // What is wrong, named.
    let missing = oci::Digest::sha256(b"not pushed");
    let missing_file = file(
        "missing.json",
        &format!(
            r#"{{"containerimage.descriptor":{{"mediaType":"{}","digest":"{missing}","size":3}}}}"#,
            oci::media::OCI_MANIFEST
        ),
    );
    let err = fails(manifold(
        &e,
        &["imagetools", "create", "-t", &target, "-f", &missing_file],
        "",
    ));
    assert!(
        err.contains(&format!(
            "error: source {missing} (from {missing_file}) not found in {repo}"
        )),
        "{err}"
    );
    assert!(
        err.contains(
            "hint: digests and descriptor files name content in the first -t's repository"
        ),
        "{err}"
    );
    let wrong_size = file(
        "size.json",
        &format!(
            r#"{{"mediaType":"{}","digest":"{}","size":1}}"#,
            amd.media_type, amd.digest
        ),
    );
    let err = fails(manifold(
        &e,
        &["imagetools", "create", "-t", &target, "-f", &wrong_size],
        "",
    ));
    assert!(
        err.contains(&format!(
            "error: {wrong_size}: the descriptor says {} is 1 bytes, {repo} has {}",
            amd.digest, amd.size
        )),
        "{err}"
    );
    let err = fails(manifold(
        &e,
        &[
            "imagetools",
            "create",
            "-t",
            &target,
            "-p",
            "linux/s390x",
            &amd.digest.to_string(),
            &arm.digest.to_string(),
        ],
        "",
    ));
    assert!(
        err.contains(
            "error: no source has platform linux/s390x (the sources have linux/amd64, linux/arm64)"
        ),
        "{err}"
    );
}

/// `--prefer-index`: one manifest is wrapped in an index, or with `false` pushed as it
/// is; one index is copied as it is unless `-p` or an annotation changes it; other
/// tags, in other repositories too, get the same document.
#[test]
fn create_carbon_copies_a_lone_source_unless_told_otherwise() {
    let reg = DistRegistry::start(Auth::Open);
    let repo = format!("{}/cc/app", reg.addr);
    let amd = push_by_digest(&repo, "linux/amd64");
    let e = env();
    let create = |args: &[&str]| {
        let mut all = vec!["imagetools", "create"];
        all.extend(args);
        ok(manifold(&e, &all, "")).trim().to_owned()
    };
    let raw = |reference: &str| {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
    };
    let digest = amd.digest.to_string();

    // One manifest, --prefer-index=false: the manifest itself, under the tag, and in
    // another repository (its blobs copied).
    let copy = format!("{repo}:copy");
    let elsewhere = format!("{}/elsewhere/app:copy", reg.addr);
    let got = create(&[
        "--prefer-index=false",
        "-t",
        &copy,
        "-t",
        &elsewhere,
        &digest,
    ]);
    assert_eq!(got, digest);
    for r in [&copy, &elsewhere] {
        assert_eq!(oci::Digest::sha256(&raw(r)), amd.digest, "{r}");
    }
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{elsewhere}"),
        &format!("oci:{}:x", tempfile::tempdir().unwrap().path().display()),
    ]);

    // The default (and --prefer-index alone): an index over it.
    for flag in [None, Some("--prefer-index")] {
        let wrapped = format!("{repo}:wrapped");
        let mut args = vec!["-t", wrapped.as_str(), digest.as_str()];
        args.extend(flag);
        let got = create(&args);
        let bytes = raw(&wrapped);
        assert_eq!(got, oci::Digest::sha256(&bytes).to_string());
        let index = json(std::str::from_utf8(&bytes).unwrap());
        assert_eq!(index["mediaType"], oci::media::OCI_INDEX);
        assert_eq!(index["manifests"][0]["digest"], digest);
        assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
    }

    // One index: copied as it is, even with -p naming all its platforms.
    let src = format!("{}/cc/multi:1", reg.addr);
    let index_digest = push_fixture(&src, &["linux/amd64", "linux/arm64"]);
    let same = format!("{repo}:same");
    assert_eq!(create(&["-t", &same, &src]), index_digest.to_string());
    assert_eq!(
        create(&["-t", &same, "-p", "linux/arm64,linux/amd64", &src]),
        index_digest.to_string()
    );
    assert_eq!(oci::Digest::sha256(&raw(&same)), index_digest);
    // ... and changed by -p or an annotation.
    let arm_only = create(&["-t", &same, "-p", "linux/arm64", &src]);
    assert_ne!(arm_only, index_digest.to_string());
    let index = json(std::str::from_utf8(&raw(&same)).unwrap());
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    let annotated = create(&["-t", &same, "--annotation", "index:k=v", &src]);
    assert_ne!(annotated, index_digest.to_string());
    let index = json(std::str::from_utf8(&raw(&same)).unwrap());
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(index["annotations"]["k"], "v");
}

#[test]
fn tls_to_a_plain_http_registry_fails_with_a_hint_and_insecure_registry_fixes_it() {
    let reg = DistRegistry::start(Auth::Open);
    let name = format!("{}/plain:1", reg.addr);
    push_fixture(&name, &["linux/amd64"]);
    let e = env();
    // Configured explicitly for HTTPS, the loopback default no longer applies.
    std::fs::create_dir_all(e.root.join("config")).unwrap();
    std::fs::write(
        e.root.join("config/config.toml"),
        format!("[registry.\"{}\"]\nhttp = false\n", reg.addr),
    )
    .unwrap();
    let out = manifold(&e, &["imagetools", "inspect", &name], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("GET https://{}/v2/plain/manifests/1", reg.addr)),
        "{err}"
    );
    assert!(
        err.contains(&format!("hint: if {} speaks plain HTTP", reg.addr)),
        "{err}"
    );
    assert!(
        err.contains(&format!("--insecure-registry {}", reg.addr)),
        "{err}"
    );

    let fixed = manifold(
        &e,
        &[
            "--insecure-registry",
            &reg.addr,
            "imagetools",
            "inspect",
            &name,
        ],
        "",
    );
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stderr)
    );

    let bad_config = e.root.join("config/config.toml");
    std::fs::write(&bad_config, "[registry.x]\nhtps = true\n").unwrap();
    let out = manifold(&e, &["imagetools", "inspect", &name], "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml") && err.contains("htps"), "{err}");
}

#[test]
fn copy_from_an_oci_layout_pushes_it_byte_exact() {
    let reg = DistRegistry::start(Auth::Open);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let idx = testkit::write_index(&store, &lease, &["linux/amd64", "linux/arm/v7"]);
    store.set_name("bench", &idx).unwrap();
    let e = env();
    let layout = format!("oci-layout://{}:bench", store.layout_dir().display());
    let dst = format!("{}/from/layout:1", reg.addr);
    let out = ok(manifold(&e, &["imagetools", "copy", &layout, &dst], ""));
    assert_eq!(out.trim(), idx.digest.to_string());
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dst}"),
    ]);
    assert_eq!(oci::Digest::sha256(&raw), idx.digest);

    let missing = manifold(
        &e,
        &[
            "imagetools",
            "copy",
            &format!("oci-layout://{}:nope", store.layout_dir().display()),
            &dst,
        ],
        "",
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no image named \"nope\""), "{err}");
    let not_layout = manifold(
        &e,
        &["imagetools", "copy", "oci-layout:///nonexistent/dir", &dst],
        "",
    );
    let err = String::from_utf8_lossy(&not_layout.stderr);
    assert!(
        err.contains("cannot read OCI layout /nonexistent/dir"),
        "{err}"
    );
}

/// `credsStore`: credentials go through a `docker-credential-*` helper, not the file.
#[test]
fn login_and_pulls_go_through_a_credential_helper() {
    use std::os::unix::fs::PermissionsExt;
    let reg = DistRegistry::start(Auth::Basic {
        user: "carol".into(),
        password: "pw-in-helper".into(),
    });
    let e = env();
    let bin = e.root.with_file_name("helper-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let vault = e.root.with_file_name("vault");
    std::fs::create_dir_all(&vault).unwrap();
    let helper = bin.join("docker-credential-mtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nv={}\ncase \"$1\" in\n  store) cat > \"$v/cred.json\" ;;\n  \
             get) read url; if [ -f \"$v/cred.json\" ]; then cat \"$v/cred.json\"; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n  \
             erase) rm -f \"$v/cred.json\" ;;\nesac\n",
            vault.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(&e.docker).unwrap();
    std::fs::write(e.docker.join("config.json"), r#"{"credsStore":"mtest"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = |args: &[&str], stdin: &str| manifold_with_path(&e, args, stdin, &path);
    ok(run(
        &["login", &reg.addr, "-u", "carol", "--password-stdin"],
        "pw-in-helper\n",
    ));
    let stored = std::fs::read_to_string(vault.join("cred.json")).unwrap();
    assert!(stored.contains("\"Username\":\"carol\""), "{stored}");
    let config = std::fs::read_to_string(e.docker.join("config.json")).unwrap();
    assert!(
        !config.contains("pw-in-helper"),
        "the secret is only in the helper: {config}"
    );

    let name = format!("{}/helper/app:1", reg.addr);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lease = store.lease().unwrap();
    let idx = testkit::write_index(&store, &lease, &["linux/amd64"]);
    store.set_name("app", &idx).unwrap();
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        "carol:pw-in-helper",
        &format!("oci:{}:app", store.layout_dir().display()),
        &format!("docker://{name}"),
    ]);
    let out = ok(run(&["imagetools", "inspect", &name], ""));
    assert!(out.contains("Platform:    linux/amd64"), "{out}");

    ok(run(&["logout", &reg.addr], ""));
    assert!(!vault.join("cred.json").exists());
    let denied = run(&["imagetools", "inspect", &name], "");
    assert!(!denied.status.success());
}
