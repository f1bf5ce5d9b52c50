//! The fuzz targets' bodies: each takes arbitrary bytes and must return without a
//! panic, a hang or unbounded memory, whatever the bytes. `fuzz/` runs them under
//! libFuzzer (nightly, `cargo fuzz run TARGET`); `tests/corpus.rs` replays the corpus
//! kept in `fuzz/corpus/TARGET/` through them on stable Rust in every test run.

use std::sync::OnceLock;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets, by the name of their corpus directory.
pub const TARGETS: [(&str, Target); 6] = [
    ("dockerfile", dockerfile),
    ("ignore", ignore_patterns),
    ("tar", tar),
    ("oci_documents", oci_documents),
    ("registry_server", registry_server),
    ("daemon_protocol", daemon_protocol),
];

/// Every base image is an empty one for the platform asked for.
struct AnyImage;

impl graph::ImageResolver for AnyImage {
    fn resolve(
        &self,
        reference: &str,
        platform: &oci::Platform,
    ) -> Result<graph::ResolvedImage, graph::ResolveError> {
        Ok(graph::ResolvedImage {
            digest: oci::Digest::sha256(format!("{reference} {platform}").as_bytes()),
            config: oci::ImageConfig {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                ..oci::ImageConfig::default()
            },
        })
    }
}

/// A Dockerfile, parsed and lowered to a build graph for the host's platform and
/// linux/arm64 (stages, `ARG` and `ENV` expansion, heredocs, mounts, checks).
pub fn dockerfile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = dockerfile::parser::parse(text);
    let _ = parsed.has_errors();
    let opts = frontend::BuildOptions {
        platforms: vec![
            oci::Platform::parse("linux/amd64").expect("a platform"),
            oci::Platform::parse("linux/arm64").expect("a platform"),
        ],
        ..frontend::BuildOptions::default()
    };
    let _ = frontend::lower(text, &opts, &AnyImage);
}

/// `.dockerignore` patterns, then a path matched against them: the text before the
/// first NUL is the file, the rest the path.
pub fn ignore_patterns(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, path) = text.split_once('\0').unwrap_or((text, "a/b/c"));
    let Ok(patterns) = ignore::parse_ignore_file(file) else {
        return;
    };
    let Ok(m) = ignore::Matcher::new(patterns) else {
        return;
    };
    let _ = m.is_excluded(path);
}

/// An uncompressed layer applied into a new directory, with small limits.
pub fn tar(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let opts = archive::ApplyOptions {
        limits: archive::Limits {
            max_bytes: 64 << 20,
            max_entries: 10_000,
            ..archive::Limits::default()
        },
        ..archive::ApplyOptions::default()
    };
    let _ = archive::apply_into_new_dir(&dir.path().join("root"), |root| {
        archive::apply_layer(root, data, &opts)
    });
}

/// An image manifest, an index and an image config, parsed and read back.
pub fn oci_documents(data: &[u8]) {
    if let Ok(m) = oci::RawDocument::<oci::ImageManifest>::parse(data.to_vec()) {
        let _ = m.value().layers.len();
    }
    if let Ok(i) = oci::RawDocument::<oci::ImageIndex>::parse(data.to_vec()) {
        let _ = i.value().manifests.len();
    }
    if let Ok(c) = oci::RawDocument::<oci::ImageConfig>::parse(data.to_vec()) {
        let _ = c.value().platform();
    }
}

struct Server {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _root: tempfile::TempDir,
}

/// One registry for the whole run (its state grows a little with each input).
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let root = tempfile::tempdir().expect("a temporary directory");
        let registry = registry_server::Registry::open(registry_server::Config {
            root: root.path().to_owned(),
            delete: true,
            auth: None,
            access_log: None,
            limits: registry_server::Limits {
                max_blob_size: 1 << 20,
                max_upload_sessions: 64,
                ..registry_server::Limits::default()
            },
        })
        .expect("a registry");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        Server {
            router: registry.router(),
            runtime,
            _root: root,
        }
    })
}

/// One HTTP request to the embedded registry: the first byte picks the method, the
/// rest up to the first newline is the path and query, then `Name: value` header
/// lines up to an empty line, then the body.
pub fn registry_server(data: &[u8]) {
    use tower::ServiceExt as _;
    const METHODS: [&str; 6] = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"];
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let target = lines.next().unwrap_or("/v2/");
    let mut req = axum::http::Request::builder()
        .method(METHODS[m as usize % METHODS.len()])
        .uri(target);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            req = req.header(k.trim(), v.trim());
        }
    }
    let Ok(req) = req.body(axum::body::Body::from(body.to_owned())) else {
        return;
    };
    let s = server();
    let router = s.router.clone();
    let _ = s.runtime.block_on(async move {
        let resp = router.oneshot(req).await.ok()?;
        axum::body::to_bytes(resp.into_body(), 4 << 20).await.ok()
    });
}

/// Bytes a daemon reads from a client: frames, each frame's JSON as a request.
pub fn daemon_protocol(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut r = data;
        for _ in 0..16 {
            let Ok(Some(frame)) = remote::wire::read_frame(&mut r).await else {
                return;
            };
            let remote::wire::Frame::Json(payload) = frame else {
                continue;
            };
            if let Ok(req) = serde_json::from_slice::<remote::protocol::Request>(&payload)
                && let remote::protocol::Request::Build(call) = req
            {
                for m in &call.contexts {
                    let _ = remote::sync::validate(m);
                }
            }
        }
    });
}
