//! The conformance suite against Debian's distribution registry (2.8), which is known
//! to fail some checks. Those are listed by name and asserted to fail, so the list
//! stays true.

mod conformance;

use conformance::Target;
use testkit::registry::{Auth, DistRegistry};

/// Checks distribution 2.8 fails, and why.
const KNOWN_FAILING: &[(&str, &str)] = &[
    (
        "push_monolithic",
        "POST ?digest= opens a session (202) instead of storing the blob",
    ),
    (
        "chunk_out_of_order",
        "PATCH ignores Content-Range and appends",
    ),
    (
        "chunk_size_mismatch",
        "PATCH ignores Content-Range and appends",
    ),
    (
        "blob_digest_mismatch",
        "POST ?digest= opens a session, so the wrong digest is not refused",
    ),
    (
        "upload_resume",
        "the signed _state in Location goes stale after each PATCH",
    ),
    (
        "manifest_subject_unknown",
        "2.8 predates v1.1: no OCI-Subject header",
    ),
    ("manifest_too_large", "over-size manifests are 400, not 413"),
    ("tags_pagination", "the full tag list is unsorted"),
    (
        "tags_pagination_bad_n",
        "a negative or malformed n is ignored",
    ),
    ("referrers", "2.8 has no referrers API"),
    (
        "names_invalid",
        "%2e%2e is decoded and redirected (301) instead of refused",
    ),
    (
        "digests_invalid",
        "unknown algorithms are 404 BLOB_UNKNOWN, not DIGEST_INVALID",
    ),
    (
        "sha512_blob",
        "a sha512 blob is served with a sha256 Docker-Content-Digest",
    ),
    ("deletes", "tag DELETE is 400 (only digests can be deleted)"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_failures_are_exactly_the_listed_ones() {
    let reg = DistRegistry::start(Auth::Open);
    let t = Target::new(&reg.addr);
    let mut report = Vec::new();
    let mut failing = Vec::new();
    for name in conformance::ALL {
        if let Err(e) = conformance::run(name, &t).await {
            report.push(format!("{name}: {e}"));
            failing.push(*name);
        }
    }
    let known: Vec<&str> = KNOWN_FAILING.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        failing,
        known,
        "distribution's failures changed:\n{}",
        report.join("\n")
    );
}
