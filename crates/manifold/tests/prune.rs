//! `manifold prune --all --force` leaves a cold state root: a real build (base image
//! pulled from Debian's distribution registry, COPY, RUN with a cache mount), then
//! prune, then the same build again runs every step and pulls the base again. Needs
//! root (runc, overlay mounts).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{manifold, text};
use content::Store;
use oci::{ImageIndex, RawDocument, media};
use testkit::registry::{Auth, DistRegistry};

/// [`common::ok`], and what the command printed (stdout, then stderr).
#[track_caller]
fn ok(out: &Output) -> String {
    common::ok(out);
    text(&out.stdout) + &text(&out.stderr)
}

/// Push a one-platform (host) busybox index to `reg` as `library/busybox:1`.
fn push_base(reg: &DistRegistry) -> String {
    let seed = tempfile::tempdir().unwrap();
    let store = Store::open(seed.path()).unwrap();
    let lease = store.lease().unwrap();
    let manifest = testkit::base::busybox_image(&store, &lease, "amd64");
    let index = RawDocument::from_value(ImageIndex {
        manifests: vec![manifest],
        ..ImageIndex::new()
    });
    let desc = store
        .put_bytes(&lease, media::OCI_INDEX, index.bytes())
        .unwrap();
    store.set_name("busybox", &desc).unwrap();
    let reference = format!("{}/library/busybox:1", reg.addr);
    let layout = format!("oci-layout://{}", store.layout_dir().display());
    ok(&manifold(
        seed.path(),
        &["imagetools", "copy", &layout, &reference],
    ));
    reference
}

/// Entries of `dir`, or none when it does not exist.
fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn mounts_under(root: &Path) -> Vec<String> {
    let root = root.canonicalize().unwrap().to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .map(str::to_owned)
        .collect()
}

/// Blob GETs the registry served so far.
fn blob_gets(reg: &DistRegistry) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("\"GET /v2/library/busybox/blobs/"))
        .count()
}

const BUILD_STATE: [&str; 8] = [
    "cache",
    "contexts",
    "layers",
    "cache-mounts",
    "tmp",
    "bundles",
    "export",
    "snapshots",
];

#[test]
fn prune_all_leaves_a_cold_root_and_the_rebuild_runs_every_step() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it runs containers with runc)"
    );
    testkit::require_tool("runc");
    let reg = DistRegistry::start(Auth::Open);
    let base = push_base(&reg);
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {base}\nCOPY a.txt /src/\nCOPY big.txt /src/\n\
             RUN --mount=type=cache,target=/var/cache/app echo warm > /var/cache/app/x && cp /src/a.txt /b.txt\n"
        ),
    )
    .unwrap();
    std::fs::write(ctx.path().join("a.txt"), "a\n").unwrap();
    // A layer of several compression runs: the export keeps a run index for it.
    let big: String = (0..200_000u32)
        .map(|i| format!("{:x}\n", i.wrapping_mul(2_654_435_761)))
        .collect();
    std::fs::write(ctx.path().join("big.txt"), big).unwrap();
    let build = || {
        ok(&manifold(
            root.path(),
            &[
                "build",
                "--progress=plain",
                "-t",
                "localhost/pruned:1",
                ctx.path().to_str().unwrap(),
            ],
        ))
    };
    build();
    for dir in [
        "cache",
        "contexts",
        "export/steps",
        "cache-mounts",
        "export",
        "snapshots",
    ] {
        assert!(
            !entries(&root.path().join(dir)).is_empty(),
            "the build left nothing in {dir}/: the test no longer covers it"
        );
    }
    let warm = build();
    assert!(warm.contains("CACHED"), "{warm}");
    let pulls = blob_gets(&reg);
    assert!(pulls > 0, "the first build pulled the base");

    let out = ok(&manifold(root.path(), &["prune", "--all", "--force"]));
    assert!(out.contains("image name(s)"), "{out}");
    assert!(out.contains("snapshot(s)"), "{out}");
    assert!(out.contains("removed build cache records"), "{out}");
    assert!(out.contains("Total reclaimed"), "{out}");
    for dir in BUILD_STATE {
        assert!(
            entries(&root.path().join(dir)).is_empty(),
            "{dir}/ after prune --all: {:?}",
            entries(&root.path().join(dir))
        );
    }
    assert!(entries(&root.path().join("oci/blobs/sha256")).is_empty());
    assert!(
        ok(&manifold(root.path(), &["images", "-q"]))
            .trim()
            .is_empty()
    );
    assert!(mounts_under(root.path()).is_empty());

    // Cold: no step is cached and the base comes from the registry again.
    let cold = build();
    assert!(!cold.contains("CACHED"), "{cold}");
    assert!(blob_gets(&reg) > pulls, "the rebuild pulled the base again");
    let store = Store::open(root.path()).unwrap();
    assert!(store.resolve("localhost/pruned:1").is_ok());
    assert!(store.fsck().unwrap().is_clean());

    // Pruning a cold root again is harmless.
    ok(&manifold(root.path(), &["prune", "--all", "--force"]));
    ok(&manifold(root.path(), &["prune", "--all", "--force"]));
}

#[test]
fn prune_all_keeps_build_state_while_a_build_holds_it() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache/records");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(root.path().join("locks")).unwrap();
    let lock = std::fs::File::create(root.path().join("locks/builds.lock")).unwrap();
    lock.lock_shared().unwrap();
    let out = ok(&manifold(root.path(), &["prune", "--all", "--force"]));
    assert!(out.contains("a build is running"), "{out}");
    assert!(cache.is_dir());
    drop(lock);
    ok(&manifold(root.path(), &["prune", "--all", "--force"]));
    assert!(!cache.exists());
}
