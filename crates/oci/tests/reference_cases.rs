//! Table-driven tests for image reference parsing and normalisation.
//!
//! Each valid case states the fully normalised string and every component; each
//! invalid case states the exact error.

use std::collections::HashSet;

use oci::{Digest, DigestError, Reference, ReferenceError as E};
use rstest::rstest;

/// sha256 of the empty string.
const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const D256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// sha256 of "manifold".
const D256_B: &str = "sha256:4dd5b6e2bf3bfd4f6a273018b06a65680ef9631f8e0156e6ddd6a06ca0510172";
/// sha512 of the empty string.
const D512: &str = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

fn a(n: usize) -> String {
    "a".repeat(n)
}

/// A `&'static str` for case arguments that must outlive the case's statement.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[rstest]
// docker hub spellings and library/ insertion
#[case::official_bare(
    "alpine",
    "docker.io/library/alpine:latest",
    "docker.io",
    "library/alpine",
    Some("latest"),
    None
)]
#[case::official_tag(
    "alpine:3.20",
    "docker.io/library/alpine:3.20",
    "docker.io",
    "library/alpine",
    Some("3.20"),
    None
)]
#[case::official_library_explicit(
    "library/alpine",
    "docker.io/library/alpine:latest",
    "docker.io",
    "library/alpine",
    Some("latest"),
    None
)]
#[case::user_repo(
    "user/app",
    "docker.io/user/app:latest",
    "docker.io",
    "user/app",
    Some("latest"),
    None
)]
#[case::user_repo_tag(
    "user/app:1.0",
    "docker.io/user/app:1.0",
    "docker.io",
    "user/app",
    Some("1.0"),
    None
)]
#[case::docker_io_official(
    "docker.io/alpine",
    "docker.io/library/alpine:latest",
    "docker.io",
    "library/alpine",
    Some("latest"),
    None
)]
#[case::docker_io_library(
    "docker.io/library/alpine:edge",
    "docker.io/library/alpine:edge",
    "docker.io",
    "library/alpine",
    Some("edge"),
    None
)]
#[case::docker_io_user(
    "docker.io/user/app",
    "docker.io/user/app:latest",
    "docker.io",
    "user/app",
    Some("latest"),
    None
)]
#[case::docker_io_deep(
    "docker.io/a/b/c",
    "docker.io/a/b/c:latest",
    "docker.io",
    "a/b/c",
    Some("latest"),
    None
)]
#[case::index_docker_io_official(
    "index.docker.io/alpine",
    "docker.io/library/alpine:latest",
    "docker.io",
    "library/alpine",
    Some("latest"),
    None
)]
#[case::index_docker_io_user(
    "index.docker.io/user/app:v2",
    "docker.io/user/app:v2",
    "docker.io",
    "user/app",
    Some("v2"),
    None
)]
#[case::index_docker_io_library(
    "index.docker.io/library/busybox:1",
    "docker.io/library/busybox:1",
    "docker.io",
    "library/busybox",
    Some("1"),
    None
)]
#[case::fully_qualified_is_stable(
    "docker.io/library/alpine:latest",
    "docker.io/library/alpine:latest",
    "docker.io",
    "library/alpine",
    Some("latest"),
    None
)]
#[case::docker_io_without_slash_is_a_repo(
    "docker.io",
    "docker.io/library/docker.io:latest",
    "docker.io",
    "library/docker.io",
    Some("latest"),
    None
)]
#[case::first_part_without_dot_is_not_a_domain(
    "foo/bar",
    "docker.io/foo/bar:latest",
    "docker.io",
    "foo/bar",
    Some("latest"),
    None
)]
#[case::dot_in_later_part_is_path(
    "foo/bar.baz/qux",
    "docker.io/foo/bar.baz/qux:latest",
    "docker.io",
    "foo/bar.baz/qux",
    Some("latest"),
    None
)]
#[case::dot_in_first_part_is_domain(
    "foo.bar/baz",
    "foo.bar/baz:latest",
    "foo.bar",
    "baz",
    Some("latest"),
    None
)]
#[case::hub_deep_path(
    "a/b/c/d",
    "docker.io/a/b/c/d:latest",
    "docker.io",
    "a/b/c/d",
    Some("latest"),
    None
)]
#[case::digits_only_parts(
    "0/1",
    "docker.io/0/1:latest",
    "docker.io",
    "0/1",
    Some("latest"),
    None
)]
// localhost
#[case::localhost_no_port(
    "localhost/a",
    "localhost/a:latest",
    "localhost",
    "a",
    Some("latest"),
    None
)]
#[case::localhost_port_deep_tag(
    "localhost:5000/a/b:t",
    "localhost:5000/a/b:t",
    "localhost:5000",
    "a/b",
    Some("t"),
    None
)]
#[case::localhost_keeps_library(
    "localhost/library/alpine",
    "localhost/library/alpine:latest",
    "localhost",
    "library/alpine",
    Some("latest"),
    None
)]
#[case::localhost_alone_is_a_repo(
    "localhost",
    "docker.io/library/localhost:latest",
    "docker.io",
    "library/localhost",
    Some("latest"),
    None
)]
#[case::localhost_port_alone_is_a_tag(
    "localhost:5000",
    "docker.io/library/localhost:5000",
    "docker.io",
    "library/localhost",
    Some("5000"),
    None
)]
// IP addresses
#[case::ipv4_port(
    "127.0.0.1:5000/x",
    "127.0.0.1:5000/x:latest",
    "127.0.0.1:5000",
    "x",
    Some("latest"),
    None
)]
#[case::ipv4_no_port(
    "10.0.0.1/team/app:prod",
    "10.0.0.1/team/app:prod",
    "10.0.0.1",
    "team/app",
    Some("prod"),
    None
)]
#[case::ipv6_loopback_port(
    "[::1]:5000/x",
    "[::1]:5000/x:latest",
    "[::1]:5000",
    "x",
    Some("latest"),
    None
)]
#[case::ipv6_no_port(
    "[2001:db8::1]/x:1",
    "[2001:db8::1]/x:1",
    "[2001:db8::1]",
    "x",
    Some("1"),
    None
)]
#[case::ipv6_uppercase_hex(
    "[FE80::1]:443/a",
    "[FE80::1]:443/a:latest",
    "[FE80::1]:443",
    "a",
    Some("latest"),
    None
)]
// other registries and domains
#[case::ghcr(
    "ghcr.io/owner/app:v1.2.3",
    "ghcr.io/owner/app:v1.2.3",
    "ghcr.io",
    "owner/app",
    Some("v1.2.3"),
    None
)]
#[case::port_and_deep_path(
    "registry.example.com:8443/a/b/c/d/e:tag",
    "registry.example.com:8443/a/b/c/d/e:tag",
    "registry.example.com:8443",
    "a/b/c/d/e",
    Some("tag"),
    None
)]
#[case::uppercase_domain_ok(
    "Registry.Example.COM/a/b",
    "Registry.Example.COM/a/b:latest",
    "Registry.Example.COM",
    "a/b",
    Some("latest"),
    None
)]
#[case::hyphenated_domain(
    "my-registry.local/app",
    "my-registry.local/app:latest",
    "my-registry.local",
    "app",
    Some("latest"),
    None
)]
#[case::punycode_domain(
    "xn--bcher-kva.example/app",
    "xn--bcher-kva.example/app:latest",
    "xn--bcher-kva.example",
    "app",
    Some("latest"),
    None
)]
#[case::single_label_with_port(
    "myhost:5000/app",
    "myhost:5000/app:latest",
    "myhost:5000",
    "app",
    Some("latest"),
    None
)]
#[case::max_port(
    "example.com:65535/a",
    "example.com:65535/a:latest",
    "example.com:65535",
    "a",
    Some("latest"),
    None
)]
#[case::port_and_numeric_tag(
    "example.com:5000/a:5000",
    "example.com:5000/a:5000",
    "example.com:5000",
    "a",
    Some("5000"),
    None
)]
// path separators
#[case::sep_dot(
    "a.b",
    "docker.io/library/a.b:latest",
    "docker.io",
    "library/a.b",
    Some("latest"),
    None
)]
#[case::sep_underscore(
    "a_b",
    "docker.io/library/a_b:latest",
    "docker.io",
    "library/a_b",
    Some("latest"),
    None
)]
#[case::sep_double_underscore(
    "a__b",
    "docker.io/library/a__b:latest",
    "docker.io",
    "library/a__b",
    Some("latest"),
    None
)]
#[case::sep_dash(
    "a-b",
    "docker.io/library/a-b:latest",
    "docker.io",
    "library/a-b",
    Some("latest"),
    None
)]
#[case::sep_triple_dash(
    "a---b",
    "docker.io/library/a---b:latest",
    "docker.io",
    "library/a---b",
    Some("latest"),
    None
)]
#[case::sep_mixed(
    "x/a.b_c__d-e---f9",
    "docker.io/x/a.b_c__d-e---f9:latest",
    "docker.io",
    "x/a.b_c__d-e---f9",
    Some("latest"),
    None
)]
// tags
#[case::tag_single_char(
    "alpine:1",
    "docker.io/library/alpine:1",
    "docker.io",
    "library/alpine",
    Some("1"),
    None
)]
#[case::tag_underscore_first(
    "alpine:_x",
    "docker.io/library/alpine:_x",
    "docker.io",
    "library/alpine",
    Some("_x"),
    None
)]
#[case::tag_only_underscores(
    "alpine:__",
    "docker.io/library/alpine:__",
    "docker.io",
    "library/alpine",
    Some("__"),
    None
)]
#[case::tag_uppercase_ok(
    "alpine:V1.0-RC_2",
    "docker.io/library/alpine:V1.0-RC_2",
    "docker.io",
    "library/alpine",
    Some("V1.0-RC_2"),
    None
)]
#[case::tag_ends_with_dot_dash(
    "alpine:1.-",
    "docker.io/library/alpine:1.-",
    "docker.io",
    "library/alpine",
    Some("1.-"),
    None
)]
#[case::tag_128(&format!("alpine:{}", a(128)), &format!("docker.io/library/alpine:{}", a(128)), "docker.io", "library/alpine", Some(leak(a(128))), None)]
// digests
#[case::digest_only(&format!("alpine@{D256}"), &format!("docker.io/library/alpine@{D256}"), "docker.io", "library/alpine", None, Some(D256))]
#[case::tag_and_digest(&format!("alpine:3@{D256}"), &format!("docker.io/library/alpine:3@{D256}"), "docker.io", "library/alpine", Some("3"), Some(D256))]
#[case::digest_sha512(&format!("ghcr.io/a/b@{D512}"), &format!("ghcr.io/a/b@{D512}"), "ghcr.io", "a/b", None, Some(D512))]
#[case::digest_with_port(&format!("localhost:5000/a@{D256}"), &format!("localhost:5000/a@{D256}"), "localhost:5000", "a", None, Some(D256))]
#[case::digest_hub_user_tag(&format!("docker.io/user/app:v1@{D256}"), &format!("docker.io/user/app:v1@{D256}"), "docker.io", "user/app", Some("v1"), Some(D256))]
#[case::digest_ipv6_tag(&format!("[::1]:5000/x:t@{D512}"), &format!("[::1]:5000/x:t@{D512}"), "[::1]:5000", "x", Some("t"), Some(D512))]
// 64-hex only refused when it is the whole input
#[case::hex_name_with_tag(&format!("{H}:v1"), &format!("docker.io/library/{H}:v1"), "docker.io", &format!("library/{H}"), Some("v1"), None)]
#[case::hex_name_under_user(&format!("user/{H}"), &format!("docker.io/user/{H}:latest"), "docker.io", &format!("user/{H}"), Some("latest"), None)]
#[case::hex_63_chars(&H[..63], &format!("docker.io/library/{}:latest", &H[..63]), "docker.io", &format!("library/{}", &H[..63]), Some("latest"), None)]
// length boundary (the normalised name counts)
#[case::name_255(&format!("example.com/{}", a(243)), &format!("example.com/{}:latest", a(243)), "example.com", &a(243), Some("latest"), None)]
#[case::normalised_name_255(&a(237), &format!("docker.io/library/{}:latest", a(237)), "docker.io", &format!("library/{}", a(237)), Some("latest"), None)]
#[case::name_255_tag_does_not_count(&format!("example.com/{}:{}", a(243), a(128)), &format!("example.com/{}:{}", a(243), a(128)), "example.com", &a(243), Some(leak(a(128))), None)]
fn valid(
    #[case] input: &str,
    #[case] display: &str,
    #[case] registry: &str,
    #[case] repository: &str,
    #[case] tag: Option<&str>,
    #[case] digest: Option<&str>,
) {
    let r = Reference::parse(input).unwrap();
    assert_eq!(r.to_string(), display);
    assert_eq!(r.registry(), registry);
    assert_eq!(r.repository(), repository);
    assert_eq!(r.tag(), tag);
    assert_eq!(r.digest().map(Digest::to_string).as_deref(), digest);
    assert_eq!(r.name(), format!("{registry}/{repository}"));
    // The normalised form is a fixed point, and FromStr agrees with parse.
    assert_eq!(Reference::parse(display).unwrap(), r);
    assert_eq!(input.parse::<Reference>().unwrap(), r);
    // So is the familiar form.
    assert_eq!(Reference::parse(&r.familiar()).unwrap(), r);
}

#[rstest]
#[case::empty("", |_| E::Empty)]
#[case::only_hex_is_an_image_id(H, |input| E::AmbiguousHexName { input })]
// missing parts
#[case::tag_without_name(":tag", |input| E::MissingName { input })]
#[case::lone_colon(":", |input| E::MissingName { input })]
#[case::digest_without_name(&format!("@{D256}"), |input| E::MissingName { input })]
#[case::lone_at("@", |input| E::MissingName { input })]
#[case::empty_tag("alpine:", |input| E::EmptyTag { input })]
#[case::empty_tag_before_digest(&format!("alpine:@{D256}"), |input| E::EmptyTag { input })]
#[case::trailing_at("alpine@", |input| E::EmptyDigest { input })]
#[case::trailing_at_after_tag("alpine:1@", |input| E::EmptyDigest { input })]
// path structure
#[case::leading_slash("/a", |input| E::EmptyPathComponent { input })]
#[case::double_slash("a//b", |input| E::EmptyPathComponent { input })]
#[case::trailing_slash("a/", |input| E::EmptyPathComponent { input })]
#[case::trailing_slash_before_tag("a/:t", |input| E::EmptyPathComponent { input })]
#[case::domain_without_repo("example.com/", |input| E::EmptyPathComponent { input })]
#[case::localhost_port_without_repo("localhost:5000/", |input| E::EmptyPathComponent { input })]
// path components
#[case::double_dot("a..b", |input| E::InvalidPathComponent { input, component: "a..b".into() })]
#[case::triple_underscore("a___b", |input| E::InvalidPathComponent { input, component: "a___b".into() })]
#[case::dot_then_underscore("a._b", |input| E::InvalidPathComponent { input, component: "a._b".into() })]
#[case::dash_then_dot("a-.b", |input| E::InvalidPathComponent { input, component: "a-.b".into() })]
#[case::leading_dash("-a", |input| E::InvalidPathComponent { input, component: "-a".into() })]
#[case::leading_underscore("_a", |input| E::InvalidPathComponent { input, component: "_a".into() })]
#[case::leading_dot(".a", |input| E::InvalidPathComponent { input, component: ".a".into() })]
#[case::trailing_dash("user/a-", |input| E::InvalidPathComponent { input, component: "a-".into() })]
#[case::trailing_underscore("a_", |input| E::InvalidPathComponent { input, component: "a_".into() })]
#[case::space_inside("al pine", |input| E::InvalidPathComponent { input, component: "al pine".into() })]
#[case::leading_space(" alpine", |input| E::InvalidPathComponent { input, component: " alpine".into() })]
#[case::space_before_tag("alpine :latest", |input| E::InvalidPathComponent { input, component: "alpine ".into() })]
#[case::tab("alpine\t", |input| E::InvalidPathComponent { input, component: "alpine\t".into() })]
#[case::non_ascii("alpíne", |input| E::InvalidPathComponent { input, component: "alpíne".into() })]
#[case::two_colons("a:b:c", |input| E::InvalidPathComponent { input, component: "a:b".into() })]
#[case::uppercase_and_invalid("Al pine", |input| E::InvalidPathComponent { input, component: "Al pine".into() })]
// uppercase repository
#[case::uppercase_official("Alpine", |input| E::UppercaseRepository { input, repository: "Alpine".into() })]
#[case::uppercase_user("user/App:1", |input| E::UppercaseRepository { input, repository: "user/App".into() })]
#[case::uppercase_first_part_is_not_a_domain("Foo/bar", |input| E::UppercaseRepository { input, repository: "Foo/bar".into() })]
#[case::uppercase_after_domain("ghcr.io/Owner/app", |input| E::UppercaseRepository { input, repository: "Owner/app".into() })]
// domains and ports
#[case::domain_leading_hyphen("-bad.com/a", |input| E::InvalidDomain { input, domain: "-bad.com".into() })]
#[case::domain_trailing_hyphen("bad-.com/a", |input| E::InvalidDomain { input, domain: "bad-.com".into() })]
#[case::domain_empty_label("a..com/x", |input| E::InvalidDomain { input, domain: "a..com".into() })]
#[case::domain_trailing_dot("example.com./x", |input| E::InvalidDomain { input, domain: "example.com.".into() })]
#[case::domain_underscore("my_host.com/x", |input| E::InvalidDomain { input, domain: "my_host.com".into() })]
#[case::domain_without_host(":5000/a", |input| E::InvalidDomain { input, domain: ":5000".into() })]
#[case::ipv6_unclosed("[::1:5000/a", |input| E::InvalidDomain { input, domain: "[::1:5000".into() })]
#[case::ipv6_not_hex("[::g]/a", |input| E::InvalidDomain { input, domain: "[::g]".into() })]
#[case::ipv6_too_many_colons("[1:::2]/a", |input| E::InvalidDomain { input, domain: "[1:::2]".into() })]
#[case::ipv6_garbage_after_bracket("[::1]x/a", |input| E::InvalidDomain { input, domain: "[::1]x".into() })]
#[case::ipv6_unbracketed("::1/a", |input| E::InvalidDomain { input, domain: "::1".into() })]
#[case::empty_port("localhost:/a", |input| E::InvalidPort { input, domain: "localhost:".into(), port: "".into() })]
#[case::named_port("localhost:http/a", |input| E::InvalidPort { input, domain: "localhost:http".into(), port: "http".into() })]
#[case::ipv6_empty_port("[::1]:/a", |input| E::InvalidPort { input, domain: "[::1]:".into(), port: "".into() })]
#[case::tag_with_slash_reads_as_port("alpine:a/b", |input| E::InvalidPort { input, domain: "alpine:a".into(), port: "a".into() })]
// tags
#[case::tag_leading_dot("alpine:.x", |input| E::InvalidTag { input, tag: ".x".into() })]
#[case::tag_leading_dash("alpine:-x", |input| E::InvalidTag { input, tag: "-x".into() })]
#[case::tag_plus("alpine:1+2", |input| E::InvalidTag { input, tag: "1+2".into() })]
#[case::tag_trailing_space("alpine:latest ", |input| E::InvalidTag { input, tag: "latest ".into() })]
#[case::tag_129(&format!("alpine:{}", a(129)), |input| E::TagTooLong { input, len: 129 })]
// digests
#[case::digest_dotdot("alpine@sha256:../x", |input| E::InvalidDigest { input, source: DigestError::BadHex { input: "sha256:../x".into() } })]
#[case::digest_uppercase_hex(&format!("alpine@sha256:{}", H.to_uppercase()), |input| E::InvalidDigest { input, source: DigestError::BadHex { input: format!("sha256:{}", H.to_uppercase()) } })]
#[case::digest_unknown_algorithm(&format!("alpine@md5:{H}"), |input| E::InvalidDigest { input, source: DigestError::UnknownAlgorithm { input: format!("md5:{H}"), algorithm: "md5".into() } })]
#[case::digest_short(&format!("alpine@sha256:{}", &H[..10]), |input| E::InvalidDigest { input, source: DigestError::BadLength { input: format!("sha256:{}", &H[..10]), algorithm: oci::Algorithm::Sha256, expected: 64, found: 10 } })]
#[case::digest_missing_algorithm(&format!("alpine@{H}"), |input| E::InvalidDigest { input, source: DigestError::MissingSeparator(H.into()) })]
#[case::double_at(&format!("alpine@@{D256}"), |input| E::InvalidDigest { input, source: DigestError::UnknownAlgorithm { input: format!("@{D256}"), algorithm: "@sha256".into() } })]
// length boundary
#[case::name_256(&format!("example.com/{}", a(244)), |input| E::NameTooLong { input, len: 256 })]
#[case::normalised_name_256(&a(238), |input| E::NameTooLong { input, len: 256 })]
#[case::name_256_with_tag(&format!("example.com/{}:latest", a(244)), |input| E::NameTooLong { input, len: 256 })]
fn invalid(#[case] input: &str, #[case] want: fn(String) -> E) {
    let err = Reference::parse(input).unwrap_err();
    assert_eq!(err, want(input.to_owned()));
    let msg = err.to_string();
    assert!(msg.starts_with("invalid reference"), "{msg}");
    assert!(!msg.ends_with('.'), "{msg}");
}

#[rstest]
#[case::official("alpine", "alpine:latest")]
#[case::official_qualified("docker.io/library/alpine:3", "alpine:3")]
#[case::user("user/x:1", "user/x:1")]
#[case::legacy_hub_user("index.docker.io/user/app", "user/app:latest")]
#[case::library_deep_keeps_prefix("library/a/b", "library/a/b:latest")]
#[case::localhost_port("localhost:5000/a/b:t", "localhost:5000/a/b:t")]
#[case::other_registry_keeps_library("localhost/library/alpine", "localhost/library/alpine:latest")]
#[case::ghcr("ghcr.io/o/a:1", "ghcr.io/o/a:1")]
#[case::digest_only(&format!("alpine@{D256}"), &format!("alpine@{D256}"))]
#[case::tag_and_digest(&format!("docker.io/library/alpine:3@{D256}"), &format!("alpine:3@{D256}"))]
fn familiar(#[case] input: &str, #[case] want: &str) {
    let r = Reference::parse(input).unwrap();
    assert_eq!(r.familiar(), want);
    assert_eq!(Reference::parse(want).unwrap(), r);
}

#[test]
fn with_tag_replaces_tag_and_drops_digest() {
    let r = Reference::parse(&format!("ghcr.io/o/a:1@{D256}")).unwrap();
    let t = r.with_tag("2.0").unwrap();
    assert_eq!(t.to_string(), "ghcr.io/o/a:2.0");
    assert_eq!(t.tag(), Some("2.0"));
    assert_eq!(t.digest(), None);
    assert_eq!(t.name(), r.name());
    // r itself is unchanged
    assert_eq!(r.to_string(), format!("ghcr.io/o/a:1@{D256}"));
}

#[test]
fn with_tag_on_digest_only_reference() {
    let r = Reference::parse(&format!("alpine@{D256}")).unwrap();
    assert_eq!(
        r.with_tag("edge").unwrap().to_string(),
        "docker.io/library/alpine:edge"
    );
}

#[test]
fn with_tag_rejects_bad_tags() {
    let r = Reference::parse("alpine").unwrap();
    assert_eq!(
        r.with_tag("").unwrap_err(),
        E::EmptyTag {
            input: "docker.io/library/alpine:".into()
        }
    );
    assert_eq!(
        r.with_tag("-x").unwrap_err(),
        E::InvalidTag {
            input: "docker.io/library/alpine:-x".into(),
            tag: "-x".into()
        }
    );
    assert_eq!(
        r.with_tag("a/b").unwrap_err(),
        E::InvalidTag {
            input: "docker.io/library/alpine:a/b".into(),
            tag: "a/b".into()
        }
    );
    assert!(matches!(
        r.with_tag(&a(129)),
        Err(E::TagTooLong { len: 129, .. })
    ));
    assert_eq!(r.with_tag(&a(128)).unwrap().tag(), Some(a(128).as_str()));
}

#[test]
fn with_digest_keeps_tag() {
    let d = Digest::parse(D256).unwrap();
    let r = Reference::parse("user/app:v1")
        .unwrap()
        .with_digest(d.clone());
    assert_eq!(r.to_string(), format!("docker.io/user/app:v1@{D256}"));
    assert_eq!(r.tag(), Some("v1"));
    assert_eq!(r.digest(), Some(&d));
    assert_eq!(r.familiar(), format!("user/app:v1@{D256}"));
}

#[test]
fn with_digest_keeps_default_tag_and_replaces_digest() {
    let r = Reference::parse("alpine")
        .unwrap()
        .with_digest(Digest::parse(D256).unwrap());
    assert_eq!(
        r.to_string(),
        format!("docker.io/library/alpine:latest@{D256}")
    );
    let r = r.with_digest(Digest::parse(D256_B).unwrap());
    assert_eq!(
        r.to_string(),
        format!("docker.io/library/alpine:latest@{D256_B}")
    );
}

#[test]
fn with_digest_on_digest_only_reference_has_no_tag() {
    let r = Reference::parse(&format!("alpine@{D256}")).unwrap();
    let r = r.with_digest(Digest::parse(D512).unwrap());
    assert_eq!(r.tag(), None);
    assert_eq!(r.to_string(), format!("docker.io/library/alpine@{D512}"));
}

#[rstest]
#[case::short("alpine")]
#[case::tag_and_digest(&format!("localhost:5000/a/b:t@{D256}"))]
#[case::digest_only(&format!("[::1]:5000/x@{D512}"))]
fn serde_round_trip(#[case] input: &str) {
    let r = Reference::parse(input).unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, format!("\"{r}\""));
    assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
}

#[test]
fn serde_normalises_and_rejects() {
    let r: Reference = serde_json::from_str("\"alpine\"").unwrap();
    assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
    assert!(serde_json::from_str::<Reference>("\"Alpine\"").is_err());
    assert!(serde_json::from_str::<Reference>("\"alpine@sha256:../x\"").is_err());
    assert!(serde_json::from_str::<Reference>("42").is_err());
}

#[test]
fn equal_spellings_hash_equal() {
    let spellings = [
        "alpine",
        "alpine:latest",
        "library/alpine",
        "docker.io/alpine",
        "index.docker.io/library/alpine:latest",
    ];
    let set: HashSet<Reference> = spellings.iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(set.len(), 1);
}

#[test]
fn uppercase_error_suggests_lowercase() {
    let msg = Reference::parse("user/MyApp").unwrap_err().to_string();
    assert!(msg.contains("must be lowercase"), "{msg}");
    assert!(msg.contains("\"user/myapp\""), "{msg}");
}

#[test]
fn digest_error_keeps_its_source() {
    use std::error::Error as _;
    let err = Reference::parse("alpine@sha256:../x").unwrap_err();
    let source = err.source().expect("digest error as source");
    assert!(source.to_string().contains("sha256:../x"));
}
