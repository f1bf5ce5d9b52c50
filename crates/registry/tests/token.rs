//! Bearer token auth against the real distribution registry, with the test token
//! server (`testkit::token`) as its issuer.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use content::Store;
use oci::{Descriptor, ImageIndex, Platform, RawDocument, Reference, media};
use registry::ops::Platforms;
use registry::{BlobPush, Client, DockerConfig, RegistryConfig, RegistryError, Secret};
use testkit::registry::DistRegistry;
use testkit::token::TokenServer;

const USER: &str = "tokenuser";
const PASSWORD: &str = "t0ken-pw";

/// A registry whose token realm is a token server on `realm_ip`.
fn token_registry(realm_ip: &str) -> (TokenServer, DistRegistry) {
    let tokens = TokenServer::start(realm_ip, USER, PASSWORD);
    let reg = DistRegistry::start(tokens.registry_auth());
    (tokens, reg)
}

/// A client whose credentials come from a docker config holding `password`.
fn client_with(reg: &DistRegistry, password: &str) -> (tempfile::TempDir, Client) {
    let conf = tempfile::tempdir().unwrap();
    DockerConfig::load(conf.path())
        .unwrap()
        .store(&reg.addr, USER, &Secret::new(password))
        .unwrap();
    let creds = DockerConfig::load(conf.path()).unwrap();
    let c = Client::new(RegistryConfig::default(), Arc::new(creds)).unwrap();
    (conf, c)
}

fn reference(reg: &DistRegistry, path: &str) -> Reference {
    Reference::parse(&format!("{}/{path}", reg.addr)).unwrap()
}

/// A multi-platform image with content unique to this run.
fn random_image(platforms: &[&str]) -> (tempfile::TempDir, Store, Descriptor) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    let lease = s.lease().unwrap();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let manifests = platforms
        .iter()
        .map(|p| {
            let p = Platform::parse(p).unwrap();
            testkit::write_image(&s, &lease, &p, &format!("{p} {nonce}"))
        })
        .collect();
    let index = RawDocument::from_value(ImageIndex {
        manifests,
        ..ImageIndex::new()
    });
    let idx = s
        .put_bytes(&lease, media::OCI_INDEX, index.bytes())
        .unwrap();
    s.set_name("src", &idx).unwrap();
    (d, s, idx)
}

fn assert_auth_error(err: &RegistryError, reg: &DistRegistry) {
    let msg = err.to_string();
    assert!(
        matches!(err, RegistryError::Auth { .. }) || err.status() == Some(401),
        "expected an authentication error, got {err:?}"
    );
    assert!(
        msg.contains(&reg.addr),
        "the error names the registry: {msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_round_trip_is_byte_exact() {
    let (tokens, reg) = token_registry("127.0.0.1");
    let (_conf, c) = client_with(&reg, PASSWORD);
    let (_d, src, idx) = random_image(&["linux/amd64", "linux/arm64", "linux/s390x"]);
    let target = reference(&reg, "tok/app:v1");

    let stats = c.push(&src, &idx, &target, None).await.unwrap();
    assert_eq!((stats.blobs_uploaded, stats.manifests), (6, 4));

    let d2 = tempfile::tempdir().unwrap();
    let dst = Store::open(d2.path()).unwrap();
    let lease = dst.lease().unwrap();
    let got = c
        .pull(&dst, &lease, &target, &Platforms::All)
        .await
        .unwrap();
    assert_eq!(got.digest, idx.digest);
    dst.set_name("copy", &got).unwrap();
    let report = dst.fsck().unwrap();
    assert!(report.is_clean(), "{report:?}");

    // skopeo, with the same user at the same token server, sees the pushed bytes.
    testkit::require_tool("skopeo");
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!("docker://{}/tok/app:v1", reg.addr))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, src.read_document(&idx.digest).unwrap());

    let requests = tokens.requests();
    assert!(requests.iter().all(|r| r.authorization), "{requests:?}");
    assert!(
        requests
            .iter()
            .any(|r| r.scopes == ["repository:tok/app:pull,push"]),
        "push asked for pull,push: {requests:?}"
    );
    assert!(
        !reg.log().contains(PASSWORD),
        "the registry never saw the password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_auth_error_naming_the_registry() {
    let (tokens, reg) = token_registry("127.0.0.1");
    let (_conf, c) = client_with(&reg, "not-the-password");
    let (_d, src, idx) = random_image(&["linux/amd64"]);
    let err = c
        .push(&src, &idx, &reference(&reg, "tok/denied:1"), None)
        .await
        .unwrap_err();
    assert_auth_error(&err, &reg);
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(tokens.issued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_refreshed_mid_push() {
    let (tokens, reg) = token_registry("127.0.0.1");
    tokens.set_expires_in(2);
    let (_conf, mut c) = client_with(&reg, PASSWORD);
    c.monolithic_max = 16; // blobs go through the streamed PATCH as well
    let (_d, src, idx) = random_image(&["linux/amd64"]);
    let index = RawDocument::<ImageIndex>::parse(src.read_document(&idx.digest).unwrap()).unwrap();
    let manifest = index.value().manifests[0].clone();
    let m = RawDocument::<oci::ImageManifest>::parse(src.read_document(&manifest.digest).unwrap())
        .unwrap();
    let target = reference(&reg, "tok/slow:1");
    let repo = c.repo(&target);

    // The first blob goes up with fresh tokens ...
    let layer = &m.value().layers[0];
    assert_eq!(
        c.push_blob(&repo, layer, &src, None).await.unwrap(),
        BlobPush::Uploaded
    );
    let issued = tokens.issued();
    // ... then the tokens the client holds run out at the registry.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let stats = c.push(&src, &idx, &target, None).await.unwrap();
    assert_eq!(
        (stats.blobs_existing, stats.blobs_uploaded, stats.manifests),
        (1, 1, 2)
    );
    assert!(
        tokens.issued() > issued,
        "the client fetched new tokens after the old ones expired"
    );
    // The client keeps a token at least 5 s whatever `expires_in` says (the spec
    // tells servers never to go below 60 s), so the registry saw the stale one and
    // the refresh was the answer to its 401.
    assert!(
        reg.log().contains("invalid token"),
        "the registry refused the expired token at least once"
    );
    let got = c.get_manifest(&target).await.unwrap();
    assert_eq!(got.descriptor.digest, idx.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mount_with_token_auth() {
    let (tokens, reg) = token_registry("127.0.0.1");
    let (_conf, c) = client_with(&reg, PASSWORD);
    let (_d, src, idx) = random_image(&["linux/amd64", "linux/arm64"]);
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
    let mount_scope = tokens.requests().into_iter().find(|r| {
        r.scopes.contains(&"repository:team/b:pull,push".to_owned())
            && r.scopes.contains(&"repository:team/a:pull".to_owned())
    });
    assert!(
        mount_scope.is_some(),
        "the mount token covers both repositories: {:?}",
        tokens.requests()
    );
    let got = c.get_manifest(&reference(&reg, "team/b:1")).await.unwrap();
    assert_eq!(got.descriptor.digest, idx.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_go_to_a_realm_on_another_host() {
    let (tokens, reg) = token_registry("127.0.0.2");
    let (_conf, c) = client_with(&reg, PASSWORD);
    let (_d, src, idx) = random_image(&["linux/amd64"]);
    let err = c
        .push(&src, &idx, &reference(&reg, "tok/elsewhere:1"), None)
        .await
        .unwrap_err();
    assert_auth_error(&err, &reg);
    let requests = tokens.requests();
    assert!(!requests.is_empty(), "the realm was asked (anonymously)");
    assert!(
        requests.iter().all(|r| !r.authorization),
        "no credentials went to 127.0.0.2: {requests:?}"
    );
}
