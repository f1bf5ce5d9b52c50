//! Where a hostile registry points the client: token realms and redirects on other
//! hosts (127.0.0.2 stands for "another machine") get no credentials; realms,
//! redirects and upload locations at private or link-local addresses are refused
//! before any connection.
//!
//! The private addresses used here have nothing listening: had the client tried
//! to connect, the error would be a transport error (or a timeout), not
//! `Forbidden`.

mod common;

use common::*;
use oci::media;
use registry::RegistryError;
use testkit::http::{Exchange, Server};

const PRIVATE_TARGETS: &[&str] = &[
    "http://10.0.0.1:5000/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00::1]:5000/x",
];

/// A registry on 127.0.0.1 that wants `USER`/`PASSWORD` (Basic) and then answers
/// with `then`.
fn basic_registry(then: impl Fn(Exchange) + Send + Sync + 'static) -> Server {
    Server::start("127.0.0.1", move |mut ex| {
        if ex.request.header("authorization") != Some(basic_header().as_str()) {
            ex.respond(401, &[("WWW-Authenticate", "Basic realm=\"faults\"")], b"");
            return;
        }
        then(ex);
    })
}

/// A registry on 127.0.0.1 whose token realm is `realm`; it accepts `Bearer good`.
fn bearer_registry(realm: String, image: &Image) -> Server {
    let files = image_files(image, "r", "v1");
    Server::start("127.0.0.1", move |mut ex| {
        if ex.request.header("authorization") == Some("Bearer good") {
            serve_file(ex, &files);
            return;
        }
        let challenge = format!("Bearer realm=\"{realm}\",service=\"faults\"");
        ex.respond(401, &[("WWW-Authenticate", &challenge)], b"");
    })
}

#[tokio::test]
async fn token_realm_on_another_host_gets_no_credentials() {
    let img = image();
    let realm = Server::start("127.0.0.2", |mut ex| {
        ex.respond(
            200,
            &[("Content-Type", "application/json")],
            br#"{"token":"good"}"#,
        );
    });
    let reg = bearer_registry(realm.url("/token"), &img);
    let (_conf, c) = client_with_password(&reg.addr());
    // An anonymous token is fine; the password is what must not travel.
    let got = within(c.get_manifest(&at(&reg, "r:v1"))).await.unwrap();
    assert_eq!(got.descriptor.digest, img.manifest.digest);
    let asked = realm.requests();
    assert!(!asked.is_empty());
    assert!(
        asked.iter().all(|r| r.header("authorization").is_none()),
        "{asked:#?}"
    );
}

#[tokio::test]
async fn redirect_to_another_host_drops_authorization() {
    let img = image();
    let blob_path = format!("/v2/r/blobs/{}", img.layer.digest);
    let mut files = common::Files::new();
    files.insert(
        "/storage/layer".into(),
        ("application/octet-stream".into(), img.layer_bytes.clone()),
    );
    let storage = static_server("127.0.0.2", files);
    let target = storage.url("/storage/layer");
    let reg = basic_registry(move |mut ex| {
        if ex.request.path() == blob_path {
            ex.respond(307, &[("Location", &target)], b"");
        } else {
            ex.respond(404, &[], b"");
        }
    });
    let (_conf, c) = client_with_password(&reg.addr());
    let (_d, dst) = store();
    let lease = dst.lease().unwrap();
    let repo = c.repo(&at(&reg, "r:v1"));
    within(c.fetch_blob(&repo, &img.layer, &dst, &lease))
        .await
        .unwrap();
    assert!(dst.contains(&img.layer.digest));
    assert!(
        reg.requests()
            .iter()
            .any(|r| r.header("authorization") == Some(basic_header().as_str())),
        "the registry itself got the credentials"
    );
    let fetched = storage.requests();
    assert_eq!(fetched.len(), 1);
    assert_eq!(
        fetched[0].header("authorization"),
        None,
        "no credentials crossed the redirect"
    );
}

#[tokio::test]
async fn token_realm_at_a_private_address_is_refused_before_connecting() {
    let img = image();
    for realm in PRIVATE_TARGETS {
        let reg = bearer_registry((*realm).to_owned(), &img);
        let (_conf, c) = client_with_password(&reg.addr());
        let err = within(c.get_manifest(&at(&reg, "r:v1"))).await.unwrap_err();
        match &err {
            RegistryError::Forbidden { target, .. } => {
                let host = url::Url::parse(realm).unwrap();
                assert!(target.contains(host.host_str().unwrap()), "{realm}: {err}");
            }
            other => panic!("{realm}: expected Forbidden, got {other:?}"),
        }
        assert!(
            err.to_string().contains(&reg.addr()),
            "names the registry: {err}"
        );
    }
}

#[tokio::test]
async fn redirect_to_a_private_address_is_refused_before_connecting() {
    let img = image();
    for location in PRIVATE_TARGETS {
        let loc = (*location).to_owned();
        let reg = basic_registry(move |mut ex| {
            ex.respond(302, &[("Location", &loc)], b"");
        });
        let (_conf, c) = client_with_password(&reg.addr());
        let (_d, dst) = store();
        let lease = dst.lease().unwrap();
        let repo = c.repo(&at(&reg, "r:v1"));
        let err = within(c.fetch_blob(&repo, &img.layer, &dst, &lease))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Forbidden { .. }),
            "{location}: expected Forbidden, got {err:?}"
        );
        assert!(!dst.contains(&img.layer.digest));
    }
}

#[tokio::test]
async fn upload_location_at_a_private_address_is_refused() {
    let (_d, src) = store();
    let lease = src.lease().unwrap();
    let blob = src
        .put_bytes(&lease, media::OCI_LAYER_TAR, b"upload me")
        .unwrap();
    for location in PRIVATE_TARGETS {
        let loc = (*location).to_owned();
        let reg = basic_registry(move |mut ex| match ex.request.method.as_str() {
            "POST" => ex.respond(202, &[("Location", &loc)], b""),
            _ => ex.respond(404, &[], b""),
        });
        let (_conf, c) = client_with_password(&reg.addr());
        let repo = c.repo(&at(&reg, "r:x"));
        let err = within(c.push_blob(&repo, &blob, &src, None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Forbidden { .. }),
            "{location}: expected Forbidden, got {err:?}"
        );
        let methods: Vec<_> = reg.requests().into_iter().map(|r| r.method).collect();
        assert!(
            !methods.iter().any(|m| m == "PUT" || m == "PATCH"),
            "nothing was uploaded anywhere: {methods:?}"
        );
    }
}
