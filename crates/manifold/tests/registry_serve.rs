//! `manifold registry serve` as a child process: kill -9 during 50 concurrent pushes,
//! restart on the same state root, and every tag resolves to a manifest that verifies.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use content::Store;
use oci::{Platform, Reference};
use registry::ops::Platforms;
use registry::{Anonymous, Client, Credential, RegistryConfig, Secret, StaticCredentials};
use testkit::token::{ISSUER, SERVICE, TokenServer};

/// Start the server on a free port; returns the child and its address.
fn serve(root: &Path) -> (Child, String) {
    serve_with(root, &[])
}

/// Start the server on a free port with more flags.
fn serve_with(root: &Path, flags: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_manifold"))
        .arg("--root")
        .arg(root)
        .args(["registry", "serve", "--addr", "127.0.0.1:0", "--access-log"])
        .arg(root.join("access.log"))
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|l| l.strip_suffix(" (http)"))
        .expect("the listen line")
        .to_owned();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_during_concurrent_pushes_leaves_every_tag_valid() {
    let root = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(root.path());

    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    let lease = src.lease().unwrap();
    let platform = Platform::parse("linux/amd64").unwrap();
    let images: Vec<_> = (0..50)
        .map(|i| {
            testkit::write_image(
                &src,
                &lease,
                &platform,
                &format!("image {i} {}", "x".repeat(i * 1000)),
            )
        })
        .collect();
    let src = Arc::new(src);
    let client = Arc::new(Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap());
    let done = Arc::new(AtomicUsize::new(0));
    // Kill (SIGKILL) once some pushes have finished and others are in flight.
    let killer = std::thread::spawn({
        let done = done.clone();
        move || {
            while done.load(Ordering::SeqCst) < 10 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            child.kill().unwrap();
            child.wait().unwrap();
        }
    });
    // The client's push future is not `Send`: run the 50 pushes on one local set.
    let local = tokio::task::LocalSet::new();
    let mut tasks = Vec::new();
    for (i, desc) in images.into_iter().enumerate() {
        let (src, client, done) = (src.clone(), client.clone(), done.clone());
        let target = Reference::parse(&format!("{addr}/kill/img-{}:v{i}", i % 10)).unwrap();
        tasks.push(local.spawn_local(async move {
            let r = client.push(&src, &desc, &target, None).await;
            done.fetch_add(1, Ordering::SeqCst);
            r.is_ok()
        }));
    }
    let ok = local
        .run_until(async {
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.unwrap());
            }
            ok
        })
        .await;
    killer.join().unwrap();
    assert!(
        (10..50).contains(&ok),
        "the kill must land mid-run: {ok} pushes finished"
    );

    // Restart on the same root: every tag resolves and its whole image verifies.
    let (mut child, addr) = serve(root.path());
    let repos = root.path().join("registry/repos/kill");
    let mut pulled = Vec::new();
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = Store::open(dst_dir.path()).unwrap();
    let lease = dst.lease().unwrap();
    for repo in std::fs::read_dir(&repos).unwrap() {
        let repo = repo.unwrap().file_name().into_string().unwrap();
        let Ok(entries) = std::fs::read_dir(repos.join(&repo).join("_tags")) else {
            continue;
        };
        for tag in entries {
            let tag = tag.unwrap().file_name().into_string().unwrap();
            let r = Reference::parse(&format!("{addr}/kill/{repo}:{tag}")).unwrap();
            client
                .pull(&dst, &lease, &r, &Platforms::All)
                .await
                .unwrap();
            pulled.push((repo.clone(), tag));
        }
    }
    assert!(
        pulled.len() >= ok,
        "{} tags for {ok} finished pushes",
        pulled.len()
    );
    // No blob on the server's side differs from its digest.
    let report = Store::open(root.path()).unwrap().fsck().unwrap();
    assert!(
        report.corrupt.is_empty() && report.stray.is_empty(),
        "{report:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // `registry gc` without a grace period keeps everything a tag reaches.
    let out = Command::new(env!("CARGO_BIN_EXE_manifold"))
        .arg("--root")
        .arg(root.path())
        .args(["registry", "gc", "--grace", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("removed "));
    let (mut child, addr) = serve(root.path());
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = Store::open(dst_dir.path()).unwrap();
    let lease = dst.lease().unwrap();
    for (repo, tag) in &pulled {
        let r = Reference::parse(&format!("{addr}/kill/{repo}:{tag}")).unwrap();
        client
            .pull(&dst, &lease, &r, &Platforms::All)
            .await
            .unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// manifold's own client against manifold's registry (in-process): a multi-platform
/// image pushed, mounted into a second repository, and pulled back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_client_round_trips_a_multi_platform_image() {
    let root = tempfile::tempdir().unwrap();
    let reg = registry_server::Registry::open(registry_server::Config {
        root: root.path().to_owned(),
        delete: false,
        auth: None,
        access_log: None,
        limits: registry_server::Limits::default(),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(registry_server::serve(listener, reg));

    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    let lease = src.lease().unwrap();
    let idx = testkit::write_index(
        &src,
        &lease,
        &["linux/amd64", "linux/arm64", "linux/arm/v7"],
    );
    let c = Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap();
    let target = Reference::parse(&format!("{addr}/multi/arch:v1")).unwrap();
    let stats = c.push(&src, &idx, &target, None).await.unwrap();
    assert_eq!(stats.manifests, 4);
    let other = Reference::parse(&format!("{addr}/multi/copy:v1")).unwrap();
    c.push(&src, &idx, &other, Some("multi/arch"))
        .await
        .unwrap();

    let dst_dir = tempfile::tempdir().unwrap();
    let dst = Store::open(dst_dir.path()).unwrap();
    let lease = dst.lease().unwrap();
    for t in [&target, &other] {
        let got = c.pull(&dst, &lease, t, &Platforms::All).await.unwrap();
        assert_eq!(got.digest, idx.digest);
    }
    dst.set_name("copy", &idx).unwrap();
    let report = dst.fsck().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.checked, 10);
}

/// Case 49: GC without a grace period, in a loop, while 20 pushes run. Pushes may fail
/// (their layers can go before their manifest arrives), but every tag that exists
/// afterwards resolves and verifies, and HEAD never claims a blob that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_during_pushes_never_leaves_a_dangling_tag() {
    let root = tempfile::tempdir().unwrap();
    let reg = registry_server::Registry::open(registry_server::Config {
        root: root.path().to_owned(),
        delete: false,
        auth: None,
        access_log: None,
        limits: registry_server::Limits::default(),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(registry_server::serve(listener, reg));

    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    let lease = src.lease().unwrap();
    let platform = Platform::parse("linux/amd64").unwrap();
    let images: Vec<_> = (0..20)
        .map(|i| testkit::write_image(&src, &lease, &platform, &format!("gc image {i}")))
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = std::thread::spawn({
        let (root, stop) = (root.path().to_owned(), stop.clone());
        move || {
            let mut runs = 0;
            while !stop.load(Ordering::SeqCst) {
                registry_server::gc(&root, std::time::Duration::ZERO).unwrap();
                runs += 1;
            }
            runs
        }
    });
    let client = Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap();
    let local = tokio::task::LocalSet::new();
    let src = Arc::new(src);
    let client = Arc::new(client);
    let mut tasks = Vec::new();
    for (i, desc) in images.into_iter().enumerate() {
        let (src, client) = (src.clone(), client.clone());
        let target = Reference::parse(&format!("{addr}/gc/img:v{i}")).unwrap();
        tasks.push(
            local.spawn_local(async move { client.push(&src, &desc, &target, None).await.is_ok() }),
        );
    }
    local
        .run_until(async {
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    assert!(collector.join().unwrap() > 0);

    let tags = root.path().join("registry/repos/gc/img/_tags");
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = Store::open(dst_dir.path()).unwrap();
    let lease = dst.lease().unwrap();
    for tag in std::fs::read_dir(tags).into_iter().flatten() {
        let tag = tag.unwrap().file_name().into_string().unwrap();
        let r = Reference::parse(&format!("{addr}/gc/img:{tag}")).unwrap();
        client
            .pull(&dst, &lease, &r, &Platforms::All)
            .await
            .unwrap();
    }
    let report = Store::open(root.path()).unwrap().fsck().unwrap();
    assert!(report.corrupt.is_empty(), "{report:?}");
}

/// GC with its grace period, looping while 20 clients each push an image and pull it
/// back: every push and every pull succeeds (in-flight uploads and blobs linked a
/// moment ago survive), and afterwards a HEAD of every blob each manifest names
/// answers 200 (HEAD never lies), and the store is consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_with_a_grace_period_during_pushes_and_pulls_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let reg = registry_server::Registry::open(registry_server::Config {
        root: root.path().to_owned(),
        delete: false,
        auth: None,
        access_log: None,
        limits: registry_server::Limits::default(),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(registry_server::serve(listener, reg));

    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    let lease = src.lease().unwrap();
    let platform = Platform::parse("linux/amd64").unwrap();
    let images: Vec<_> = (0..20)
        .map(|i| testkit::write_image(&src, &lease, &platform, &format!("grace image {i}")))
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = std::thread::spawn({
        let (root, stop) = (root.path().to_owned(), stop.clone());
        move || {
            let mut runs = 0;
            while !stop.load(Ordering::SeqCst) {
                registry_server::gc(&root, std::time::Duration::from_secs(60)).unwrap();
                runs += 1;
            }
            runs
        }
    });
    let client = Arc::new(Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap());
    let src = Arc::new(src);
    let local = tokio::task::LocalSet::new();
    let mut tasks = Vec::new();
    for (i, desc) in images.iter().cloned().enumerate() {
        let (src, client) = (src.clone(), client.clone());
        let target = Reference::parse(&format!("{addr}/grace/img{}:v{i}", i % 4)).unwrap();
        tasks.push(local.spawn_local(async move {
            client
                .push(&src, &desc, &target, None)
                .await
                .map_err(|e| format!("push {target}: {e}"))?;
            let dst_dir = tempfile::tempdir().unwrap();
            let dst = Store::open(dst_dir.path()).unwrap();
            let lease = dst.lease().unwrap();
            client
                .pull(&dst, &lease, &target, &Platforms::All)
                .await
                .map_err(|e| format!("pull {target}: {e}"))?;
            Ok::<_, String>(())
        }));
    }
    let failed: Vec<String> = local
        .run_until(async {
            let mut failed = Vec::new();
            for t in tasks {
                if let Err(e) = t.await.unwrap() {
                    failed.push(e);
                }
            }
            failed
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    assert!(collector.join().unwrap() > 0);
    assert!(failed.is_empty(), "{failed:#?}");

    // One more collection after the fact: nothing pushed is unreferenced, so HEAD of
    // every blob still answers 200.
    registry_server::gc(root.path(), std::time::Duration::from_secs(60)).unwrap();
    for (i, desc) in images.iter().enumerate() {
        let m: oci::ImageManifest =
            serde_json::from_slice(&src.read_document(&desc.digest).unwrap()).unwrap();
        let repo = client.repo(&Reference::parse(&format!("{addr}/grace/img{}:x", i % 4)).unwrap());
        for blob in m.layers.iter().chain([&m.config]) {
            assert!(
                client.blob_exists(&repo, &blob.digest).await.unwrap(),
                "HEAD grace/img{} {} after GC",
                i % 4,
                blob.digest
            );
        }
    }
    let report = Store::open(root.path()).unwrap().fsck().unwrap();
    assert!(report.corrupt.is_empty(), "{report:?}");
}

/// `manifold registry serve --token-*` with manifold's client: Basic credentials go to
/// the token server, the bearer token it returns to the registry; without credentials
/// the push is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_client_pushes_and_pulls_with_tokens() {
    let tokens = TokenServer::start("127.0.0.1", "tok-user", "tok-pw");
    let root = tempfile::tempdir().unwrap();
    let certs = tokens.cert_path();
    let (mut child, addr) = serve_with(
        root.path(),
        &[
            "--token-realm",
            &tokens.realm(),
            "--token-service",
            SERVICE,
            "--token-issuer",
            ISSUER,
            "--token-root-certs",
            certs.to_str().unwrap(),
        ],
    );
    let src_dir = tempfile::tempdir().unwrap();
    let src = Store::open(src_dir.path()).unwrap();
    let lease = src.lease().unwrap();
    let idx = testkit::write_index(&src, &lease, &["linux/amd64", "linux/arm64"]);
    let target = Reference::parse(&format!("{addr}/tok/img:v1")).unwrap();

    let anonymous = Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap();
    let err = anonymous.push(&src, &idx, &target, None).await.unwrap_err();
    assert!(
        matches!(err, registry::RegistryError::Auth { .. }) || err.status() == Some(401),
        "{err:?}"
    );

    let mut creds = StaticCredentials::new();
    creds.insert(
        &addr,
        Credential::Basic {
            username: "tok-user".into(),
            password: Secret::new("tok-pw"),
        },
    );
    let c = Client::new(RegistryConfig::default(), Arc::new(creds)).unwrap();
    c.push(&src, &idx, &target, None).await.unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = Store::open(dst_dir.path()).unwrap();
    let lease = dst.lease().unwrap();
    let got = c
        .pull(&dst, &lease, &target, &Platforms::All)
        .await
        .unwrap();
    assert_eq!(got.digest, idx.digest);
    let issued = tokens.requests();
    assert!(
        issued.iter().any(
            |r| r.authorization && r.scopes.iter().any(|s| s == "repository:tok/img:pull,push")
        ),
        "{issued:?}"
    );
    let log = std::fs::read_to_string(root.path().join("access.log")).unwrap();
    assert!(log.contains("\"user\":\"tok-user\""), "{log}");
    child.kill().unwrap();
    child.wait().unwrap();
}
