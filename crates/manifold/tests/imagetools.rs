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
    assert!(String::from_utf8_lossy(&bad.stderr).contains("index annotations only"));
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
