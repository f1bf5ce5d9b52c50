//! The client against the real distribution registry, started per test.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use content::Store;
use oci::{Descriptor, Digest, Platform, Reference, media};
use registry::ops::Platforms;
use registry::{Anonymous, Client, DockerConfig, RegistryConfig, RegistryError, Secret};
use testkit::registry::{Auth, DistRegistry};

fn client() -> Client {
    Client::new(RegistryConfig::default(), Arc::new(Anonymous)).unwrap()
}

fn reference(reg: &DistRegistry, path: &str) -> Reference {
    Reference::parse(&format!("{}/{path}", reg.addr)).unwrap()
}

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

/// A store holding a multi-platform image named "src".
fn source_image(platforms: &[&str]) -> (tempfile::TempDir, Store, oci::Descriptor) {
    let (d, s) = store();
    let lease = s.lease().unwrap();
    let idx = testkit::write_index(&s, &lease, platforms);
    s.set_name("src", &idx).unwrap();
    (d, s, idx)
}

fn skopeo_raw(target: &str, extra: &[&str]) -> Vec<u8> {
    testkit::require_tool("skopeo");
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .args(extra)
        .arg(format!("docker://{target}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_platform_round_trip_is_byte_exact() {
    let reg = DistRegistry::start(Auth::Open);
    let (_d, src, idx) = source_image(&["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    let target = reference(&reg, "round/trip:v1");
    let c = client();
    let stats = c.push(&src, &idx, &target, None).await.unwrap();
    assert_eq!(stats.blobs_uploaded, 6, "3 layers + 3 configs");
    assert_eq!(stats.manifests, 4);

    // skopeo sees exactly the bytes manifold pushed.
    let raw = skopeo_raw(&format!("{}/round/trip:v1", reg.addr), &[]);
    assert_eq!(raw, src.read_document(&idx.digest).unwrap());

    // Pulling everything back gives the same index digest and a complete graph.
    let (_d2, dst) = store();
    let lease = dst.lease().unwrap();
    let got = c
        .pull(&dst, &lease, &target, &Platforms::All)
        .await
        .unwrap();
    assert_eq!(got.digest, idx.digest);
    dst.set_name("copy", &got).unwrap();
    let report = dst.fsck().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.checked, 10);

    // A second push finds the tag already at this index: one HEAD, nothing sent.
    let again = c.push(&src, &idx, &target, None).await.unwrap();
    assert!(again.already_there, "{again:?}");
    assert_eq!((again.blobs_uploaded, again.manifests), (0, 0));
    // The same image under another tag of the repository: every blob is there, the
    // manifests are put again.
    let other = reference(&reg, "round/trip:v2");
    let again = c.push(&src, &idx, &other, None).await.unwrap();
    assert!(!again.already_there);
    assert_eq!((again.blobs_uploaded, again.blobs_existing), (0, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_picks_the_platform_and_by_digest_works() {
    let reg = DistRegistry::start(Auth::Open);
    let (_d, src, idx) = source_image(&["linux/amd64", "linux/arm64"]);
    let target = reference(&reg, "pick:1");
    let c = client();
    c.push(&src, &idx, &target, None).await.unwrap();
    let (_d2, dst) = store();
    let lease = dst.lease().unwrap();
    let arm = c
        .pull(
            &dst,
            &lease,
            &target,
            &Platforms::Best(Platform::parse("linux/arm64/v8").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(arm.platform.as_ref().unwrap().to_string(), "linux/arm64");
    // By digest: the manifest alone, with its platform read from the config.
    let by_digest = target.with_digest(arm.digest.clone());
    let again = c
        .pull(&dst, &lease, &by_digest, &Platforms::All)
        .await
        .unwrap();
    assert_eq!(again.digest, arm.digest);
    assert_eq!(again.platform.unwrap().to_string(), "linux/arm64");

    let err = c
        .pull(
            &dst,
            &lease,
            &target,
            &Platforms::Best(Platform::parse("linux/s390x").unwrap()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_push_mounts_instead_of_uploading() {
    let reg = DistRegistry::start(Auth::Open);
    let (_d, src, idx) = source_image(&["linux/amd64", "linux/arm64"]);
    let c = client();
    c.push(&src, &idx, &reference(&reg, "team/a:1"), None)
        .await
        .unwrap();
    let stats = c
        .push(&src, &idx, &reference(&reg, "team/b:1"), Some("team/a"))
        .await
        .unwrap();
    assert_eq!(
        (stats.blobs_mounted, stats.blobs_uploaded),
        (4, 0),
        "{stats:?}"
    );
    let log = reg.log();
    assert!(log.contains("mount="), "the registry saw mount requests");
    let uploads_to_b = log
        .lines()
        .filter(|l| {
            l.contains("\"PUT /v2/team/b/blobs/uploads")
                || l.contains("\"PATCH /v2/team/b/blobs/uploads")
        })
        .count();
    assert_eq!(uploads_to_b, 0, "no blob bytes were uploaded to team/b");
    let raw = skopeo_raw(&format!("{}/team/b:1", reg.addr), &[]);
    assert_eq!(raw, src.read_document(&idx.digest).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_are_streamed_in_a_patch() {
    let reg = DistRegistry::start(Auth::Open);
    let (_d, src, idx) = source_image(&["linux/amd64"]);
    let mut c = client();
    c.monolithic_max = 16; // every blob takes the streamed path
    c.push(&src, &idx, &reference(&reg, "streamed:1"), None)
        .await
        .unwrap();
    assert!(reg.log().contains("\"PATCH /v2/streamed/blobs/uploads/"));
    let (_d2, dst) = store();
    let lease = dst.lease().unwrap();
    let got = c
        .pull(
            &dst,
            &lease,
            &reference(&reg, "streamed:1"),
            &Platforms::All,
        )
        .await
        .unwrap();
    assert_eq!(got.digest, idx.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_needs_the_credentials_from_docker_config() {
    let reg = DistRegistry::start(Auth::Basic {
        user: "alice".into(),
        password: "s3cret-pw".into(),
    });
    let (_d, src, idx) = source_image(&["linux/amd64"]);
    let target = reference(&reg, "private/app:1");

    let err = client().push(&src, &idx, &target, None).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(
        err.to_string().contains("private/app"),
        "the error names the repository: {err}"
    );

    let conf = tempfile::tempdir().unwrap();
    let mut docker = DockerConfig::load(conf.path()).unwrap();
    docker
        .store(&reg.addr, "alice", &Secret::new("s3cret-pw"))
        .unwrap();
    let c = Client::new(
        RegistryConfig::default(),
        Arc::new(DockerConfig::load(conf.path()).unwrap()),
    )
    .unwrap();
    c.push(&src, &idx, &target, None).await.unwrap();

    // skopeo accepts the auth file manifold wrote.
    let authfile = conf.path().join("config.json");
    let raw = skopeo_raw(
        &format!("{}/private/app:1", reg.addr),
        &["--authfile", authfile.to_str().unwrap()],
    );
    assert_eq!(raw, src.read_document(&idx.digest).unwrap());
    assert!(!reg.log().contains("s3cret-pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_index_combines_single_platform_images_across_repositories() {
    let reg = DistRegistry::start(Auth::Open);
    let c = client();
    let (_d, src) = store();
    let lease = src.lease().unwrap();
    let amd = testkit::write_image(&src, &lease, &Platform::parse("linux/amd64").unwrap(), "a");
    let arm = testkit::write_image(&src, &lease, &Platform::parse("linux/arm64").unwrap(), "b");
    c.push(&src, &amd, &reference(&reg, "parts/amd:1"), None)
        .await
        .unwrap();
    c.push(&src, &arm, &reference(&reg, "parts/arm:1"), None)
        .await
        .unwrap();

    let (_d2, work) = store();
    let target = reference(&reg, "combined/app:1");
    let mut ann = BTreeMap::new();
    ann.insert(
        "org.opencontainers.image.title".to_owned(),
        "combined".to_owned(),
    );
    let dry = c
        .create_index(
            &work,
            &[
                reference(&reg, "parts/amd:1"),
                reference(&reg, "parts/arm:1"),
            ],
            &target,
            false,
            ann.clone(),
            true,
        )
        .await
        .unwrap();
    assert_eq!(dry.value().manifests.len(), 2);
    assert!(
        c.get_manifest(&target).await.unwrap_err().is_not_found(),
        "dry run writes nothing"
    );

    let index = c
        .create_index(
            &work,
            &[
                reference(&reg, "parts/amd:1"),
                reference(&reg, "parts/arm:1"),
            ],
            &target,
            false,
            ann,
            false,
        )
        .await
        .unwrap();
    assert_eq!(index.digest(), dry.digest());
    let platforms: Vec<_> = index
        .value()
        .manifests
        .iter()
        .map(|m| m.platform.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    // The combined index is complete in its own repository.
    let (_d3, dst) = store();
    let lease = dst.lease().unwrap();
    let got = c
        .pull(&dst, &lease, &target, &Platforms::All)
        .await
        .unwrap();
    assert_eq!(&got.digest, index.digest());

    // --append adds to what is there.
    let amd2 = testkit::write_image(
        &src,
        &lease_of(&src),
        &Platform::parse("linux/s390x").unwrap(),
        "c",
    );
    c.push(&src, &amd2, &reference(&reg, "parts/s390x:1"), None)
        .await
        .unwrap();
    let appended = c
        .create_index(
            &work,
            &[reference(&reg, "parts/s390x:1")],
            &target,
            true,
            BTreeMap::new(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(appended.value().manifests.len(), 3);
}

fn lease_of(store: &Store) -> content::Lease {
    store.lease().unwrap()
}

/// `chunks` as an upload body, each handed over by a task a few milliseconds after
/// the one before (as a layer export produces its blob); the task ends after the last.
fn paced_body(
    chunks: Vec<Bytes>,
) -> (
    impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let producer = tokio::spawn(async move {
        for c in chunks {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(Ok(c))
                .await
                .expect("the upload reads the whole body");
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (body, producer)
}

/// Five distinct 40 KiB chunks.
fn blob_chunks() -> (Vec<Bytes>, Vec<u8>) {
    let chunks: Vec<Bytes> = (0u8..5)
        .map(|i| Bytes::from(vec![i.wrapping_mul(37).wrapping_add(1); 40 * 1024]))
        .collect();
    let all = chunks.concat();
    (chunks, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_stream_stores_a_body_produced_over_time() {
    let reg = DistRegistry::start(Auth::Open);
    let c = client();
    let repo = c.repo(&reference(&reg, "streamed/blob:1"));
    let (chunks, all) = blob_chunks();
    let digest = Digest::sha256(&all);
    let (body, producer) = paced_body(chunks);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let upload = tokio::spawn({
        let (c, repo) = (c.clone(), repo.clone());
        async move { c.upload_stream(&repo, body, rx).await }
    });
    producer.await.unwrap();
    tx.send(digest.clone()).unwrap();
    let got = upload.await.unwrap().expect("the registry takes the blob");
    assert_eq!(got, digest, "upload_stream returns the digest it was given");
    assert!(
        c.blob_exists(&repo, &digest).await.unwrap(),
        "the blob is in the registry after the upload"
    );
    let pulled = c
        .get_blob_bytes(
            &repo,
            &Descriptor::new(media::OCI_LAYER_TAR, digest, all.len() as u64),
        )
        .await
        .unwrap();
    assert!(
        pulled == all,
        "the registry serves exactly the bytes streamed"
    );
    assert!(
        reg.log()
            .contains("\"PATCH /v2/streamed/blob/blobs/uploads/"),
        "the body went in a PATCH"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_stream_without_a_digest_is_cancelled() {
    let reg = DistRegistry::start(Auth::Open);
    let c = client();
    let repo = c.repo(&reference(&reg, "abandoned:1"));
    let (chunks, all) = blob_chunks();
    let (body, producer) = paced_body(chunks);
    let (tx, rx) = tokio::sync::oneshot::channel::<Digest>();
    let upload = tokio::spawn({
        let (c, repo) = (c.clone(), repo.clone());
        async move { c.upload_stream(&repo, body, rx).await }
    });
    producer.await.unwrap();
    drop(tx);
    let err = upload.await.unwrap().unwrap_err();
    assert!(
        matches!(err, RegistryError::Cancelled { .. }),
        "a dropped digest sender cancels the upload: {err:?}"
    );
    assert!(
        !c.blob_exists(&repo, &Digest::sha256(&all)).await.unwrap(),
        "a cancelled upload leaves no blob"
    );
    assert!(
        reg.log().contains("\"DELETE /v2/abandoned/blobs/uploads/"),
        "the upload session was deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_stream_with_a_wrong_digest_is_refused() {
    let reg = DistRegistry::start(Auth::Open);
    let c = client();
    let repo = c.repo(&reference(&reg, "wrong:1"));
    let (chunks, all) = blob_chunks();
    let wrong = Digest::sha256(b"not the streamed bytes");
    let (body, producer) = paced_body(chunks);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let upload = tokio::spawn({
        let (c, repo) = (c.clone(), repo.clone());
        async move { c.upload_stream(&repo, body, rx).await }
    });
    producer.await.unwrap();
    tx.send(wrong.clone()).unwrap();
    let err = upload.await.unwrap().unwrap_err();
    assert!(
        matches!(err, RegistryError::Http { status: 400, .. }),
        "the registry refuses bytes that do not match the digest: {err:?}"
    );
    for d in [&wrong, &Digest::sha256(&all)] {
        assert!(
            !c.blob_exists(&repo, d).await.unwrap(),
            "no blob {d} after a refused upload"
        );
    }
}

/// One report: direction, digest, current, total, state.
type Report = (
    registry::Direction,
    Digest,
    u64,
    u64,
    registry::TransferState,
);

/// Every report a client gave.
#[derive(Debug, Default)]
struct Recorded(std::sync::Mutex<Vec<Report>>);

impl registry::TransferProgress for Recorded {
    fn update(&self, t: &registry::Transfer<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((t.direction, t.digest.clone(), t.current, t.total, t.state));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_report_bytes_as_they_go_and_how_they_ended() {
    use registry::{Direction, TransferState};
    let reg = DistRegistry::start(Auth::Open);
    let (_d, src) = store();
    let lease = src.lease().unwrap();
    let big = testkit::noise(3 << 20, 11);
    let blob = src.put_bytes(&lease, media::OCI_LAYER_GZIP, &big).unwrap();
    let repo_ref = reference(&reg, "progress/blob:1");
    let seen = Arc::new(Recorded::default());
    let mut c = client();
    c.monolithic_max = 1 << 20; // streamed: counted as the connection takes it
    c.progress = Some(seen.clone());
    let repo = c.repo(&repo_ref);
    c.push_blob(&repo, &blob, &src, None).await.unwrap();
    c.push_blob(&repo, &blob, &src, None).await.unwrap();
    let (_d2, dst) = store();
    let dst_lease = dst.lease().unwrap();
    c.fetch_blob(&repo, &blob, &dst, &dst_lease).await.unwrap();
    assert!(dst.contains(&blob.digest));

    let seen = seen.0.lock().unwrap();
    let of = |dir: Direction| -> Vec<(u64, u64, TransferState)> {
        seen.iter()
            .filter(|r| r.0 == dir && r.1 == blob.digest)
            .map(|r| (r.2, r.3, r.4))
            .collect()
    };
    let size = blob.size;
    for (dir, ending) in [
        (
            Direction::Push,
            [
                (size, size, TransferState::Done),
                (0, size, TransferState::Existed),
            ]
            .as_slice(),
        ),
        (
            Direction::Pull,
            [(size, size, TransferState::Done)].as_slice(),
        ),
    ] {
        let reports = of(dir);
        assert!(reports.ends_with(ending), "{dir:?}: {reports:?}");
        let running: Vec<u64> = reports
            .iter()
            .filter(|r| r.2 == TransferState::Running)
            .map(|r| r.0)
            .collect();
        assert!(
            running.iter().any(|&c| c > 0 && c < size),
            "{dir:?}: bytes in between: {reports:?}"
        );
        assert!(
            running.windows(2).all(|w| w[0] <= w[1]),
            "{dir:?}: {reports:?}"
        );
        assert!(reports.iter().all(|r| r.1 == size), "{dir:?}: {reports:?}");
    }
}
