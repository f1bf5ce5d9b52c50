//! HTTPS with a certificate made per run by the openssl CLI.

mod conformance;

use std::process::Command;
use std::sync::Arc;

use conformance::Target;
use registry_server::{Config, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_suite_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = dir.path().join("ca.pem");
    let p = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(
        dir.path().join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let openssl = testkit::require_tool("openssl");
    let cmds: [Vec<String>; 3] = [
        vec![
            "req".into(),
            "-x509".into(),
            "-newkey".into(),
            "rsa:2048".into(),
            "-nodes".into(),
            "-days".into(),
            "1".into(),
            "-subj".into(),
            "/CN=manifold test ca".into(),
            "-keyout".into(),
            p("ca.key"),
            "-out".into(),
            p("ca.pem"),
        ],
        vec![
            "req".into(),
            "-newkey".into(),
            "rsa:2048".into(),
            "-nodes".into(),
            "-subj".into(),
            "/CN=127.0.0.1".into(),
            "-keyout".into(),
            p("key.pem"),
            "-out".into(),
            p("leaf.csr"),
        ],
        vec![
            "x509".into(),
            "-req".into(),
            "-in".into(),
            p("leaf.csr"),
            "-CA".into(),
            p("ca.pem"),
            "-CAkey".into(),
            p("ca.key"),
            "-CAcreateserial".into(),
            "-days".into(),
            "1".into(),
            "-extfile".into(),
            p("ext"),
            "-out".into(),
            p("cert.pem"),
        ],
    ];
    for args in cmds {
        let out = Command::new(&openssl).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let reg = Registry::open(Config {
        root: dir.path().join("root"),
        delete: true,
        auth: None,
        access_log: None,
        limits: registry_server::Limits {
            tls_handshake_timeout: std::time::Duration::from_secs(1),
            ..registry_server::Limits::default()
        },
    })
    .unwrap();
    let config = registry_server::load_tls(&cert, &key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(registry_server::serve_tls(
        listener,
        Arc::clone(&reg),
        config,
    ));

    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let t = Target {
        base: format!("https://{addr}"),
        http: reqwest::Client::builder()
            .add_root_certificate(root)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    for name in [
        "ping",
        "push_chunked",
        "manifest_by_tag_and_digest",
        "referrers",
    ] {
        conformance::run(name, &t)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::get(format!("http://{addr}/v2/")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A client that connects and never starts the handshake is dropped after the
    // handshake timeout (1 s here).
    {
        use tokio::io::AsyncReadExt;
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let t = std::time::Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            idle.read_to_end(&mut buf),
        )
        .await;
        assert!(read.is_ok(), "the idle connection was kept past 10 s");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }
}

#[test]
fn bad_tls_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = registry_server::load_tls(&cert, &dir.path().join("key.pem")).unwrap_err();
    assert!(err.to_string().contains("cert.pem"), "{err}");
}
