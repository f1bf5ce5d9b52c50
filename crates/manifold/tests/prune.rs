//! `manifold prune --all --force` leaves a cold state root: a real build (base image
//! pulled from Debian's distribution registry, COPY, RUN with a cache mount), then
//! prune, then the same build again runs every step and pulls the base again. Then
//! `prune --filter`/`--keep-storage`, the `[gc]` policy after builds and
//! `du --verbose` on real builds. Needs root (runc, overlay mounts).

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

// Filters, --keep-storage, the [gc] policy and `du --verbose`, on builds of the
// local busybox base: each build's records, snapshots and cache mounts are read
// back through `builder::inventory`, the listing the commands use.

use std::time::{Duration, SystemTime};

use builder::inventory::Inventory;

const HOUR: Duration = Duration::from_secs(3600);

/// A context whose Dockerfile copies `name.txt`, then writes `kb` KiB to
/// `/name.bin` in a RUN with a cache mount of id `name`.
fn context(name: &str, kb: u32) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY {name}.txt /\n\
             RUN --mount=type=cache,id={name},target=/c echo {name} > /c/x && \
             dd if=/dev/zero of=/{name}.bin bs=1024 count={kb}\n",
            common::BASE
        ),
    )
    .unwrap();
    std::fs::write(ctx.path().join(format!("{name}.txt")), name).unwrap();
    ctx
}

fn build(root: &Path, ctx: &Path, tag: &str) -> String {
    ok(&common::build(root, ctx, tag, &[]))
}

/// Set the last use of every record whose description contains `what`.
fn age_records(root: &Path, what: &str, ago: Duration) {
    let inv = Inventory::read(root).unwrap();
    let mut n = 0;
    for r in inv.records.iter().filter(|r| r.description.contains(what)) {
        let path = root.join("cache/records").join(r.key.hex());
        set_mtime(&path, SystemTime::now() - ago);
        n += 1;
    }
    assert!(n > 0, "no record of {what:?}");
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .read(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// The record whose description contains `what`, and its top snapshot's key.
fn record(inv: &Inventory, what: &str) -> Option<(String, String)> {
    inv.records
        .iter()
        .find(|r| r.description.contains(what))
        .map(|r| (r.key.hex().to_owned(), r.top.clone().unwrap_or_default()))
}

/// Whether the step whose progress title contains `what` was cached.
fn cached(progress: &str, what: &str) -> bool {
    let id = progress
        .lines()
        .find(|l| l.contains("[stage") && l.contains(what))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no step {what:?}: {progress}"));
    progress.lines().any(|l| l == format!("{id} CACHED"))
}

fn has_snapshot(inv: &Inventory, key: &str) -> bool {
    inv.snapshots.iter().any(|s| s.key.as_str() == key)
}

#[test]
fn prune_until_removes_a_stale_step_and_keeps_the_snapshots_others_use() {
    common::require_root();
    let root = common::root_with_base();
    let (a, b) = (context("a", 64), context("b", 64));
    build(root.path(), a.path(), "localhost/a:1");
    // b shares the base with a, and a's COPY snapshot is the parent of a's RUN.
    build(root.path(), b.path(), "localhost/b:1");
    let before = Inventory::read(root.path()).unwrap();
    let (run_a, run_a_top) = record(&before, "/a.bin").unwrap();
    let (_, copy_a_top) = record(&before, "COPY a.txt").unwrap();
    let run_a_parent = before
        .snapshots
        .iter()
        .find(|s| s.key.as_str() == run_a_top)
        .and_then(|s| s.parent.clone())
        .unwrap();
    assert_eq!(run_a_parent.as_str(), copy_a_top);
    age_records(root.path(), "/a.bin", 48 * HOUR);

    let out = ok(&manifold(
        root.path(),
        &[
            "prune",
            "--force",
            "--filter",
            "until=24h",
            "--filter",
            "type=step",
        ],
    ));
    assert!(
        out.contains("1 build cache record(s) and 1 snapshot(s)"),
        "{out}"
    );
    let after = Inventory::read(root.path()).unwrap();
    assert!(record(&after, "/a.bin").is_none(), "{run_a} was stale");
    assert!(!has_snapshot(&after, &run_a_top));
    // Its parent is the COPY record's result: it stays, and so does everything b uses.
    assert!(has_snapshot(&after, &copy_a_top));
    assert_eq!(after.records.len(), before.records.len() - 1);
    assert_eq!(after.snapshots.len(), before.snapshots.len() - 1);
    // type=step leaves cache mounts alone; the images are untouched.
    assert_eq!(after.cache_mounts.len(), 2);
    assert!(Store::open(root.path()).unwrap().fsck().unwrap().is_clean());

    // The rebuild runs the RUN again on the cached COPY.
    let again = build(root.path(), a.path(), "localhost/a:1");
    assert!(cached(&again, "COPY a.txt"), "{again}");
    assert!(!cached(&again, "RUN"), "{again}");
}

#[test]
fn prune_type_filters_remove_only_their_kind() {
    common::require_root();
    let root = common::root_with_base();
    let a = context("a", 16);
    build(root.path(), a.path(), "localhost/a:1");
    let before = Inventory::read(root.path()).unwrap();
    assert_eq!(before.cache_mounts.len(), 1);

    let out = ok(&manifold(
        root.path(),
        &["prune", "--force", "--filter", "type=cache-mount"],
    ));
    assert!(out.contains("removed 1 cache mount(s)"), "{out}");
    let mid = Inventory::read(root.path()).unwrap();
    assert!(mid.cache_mounts.is_empty());
    assert_eq!(mid.records.len(), before.records.len());
    assert_eq!(mid.snapshots.len(), before.snapshots.len());

    // A cache mount used recently survives until=.
    let b = context("b", 16);
    build(root.path(), b.path(), "localhost/b:1");
    ok(&manifold(
        root.path(),
        &[
            "prune",
            "--force",
            "--filter",
            "type=cache-mount",
            "--filter",
            "until=1h",
        ],
    ));
    assert_eq!(Inventory::read(root.path()).unwrap().cache_mounts.len(), 1);

    ok(&manifold(
        root.path(),
        &["prune", "--force", "--filter", "type=step"],
    ));
    let after = Inventory::read(root.path()).unwrap();
    assert!(
        after.records.is_empty() && after.snapshots.is_empty(),
        "{after:?}"
    );
    assert_eq!(after.cache_mounts.len(), 1);
    // Names and their content stay: the image is still whole.
    let store = Store::open(root.path()).unwrap();
    assert!(store.resolve("localhost/a:1").is_ok());
    assert!(store.fsck().unwrap().is_clean());
    assert!(mounts_under(root.path()).is_empty());
}

#[test]
fn prune_keep_storage_removes_the_least_recently_used_first() {
    common::require_root();
    let root = common::root_with_base();
    let (a, b) = (context("a", 2048), context("b", 2048));
    build(root.path(), a.path(), "localhost/a:1");
    build(root.path(), b.path(), "localhost/b:1");
    // a's steps were used longest ago; its COPY before its RUN.
    age_records(root.path(), "COPY a.txt", 4 * HOUR);
    age_records(root.path(), "/a.bin", 3 * HOUR);
    let before = Inventory::read(root.path()).unwrap();
    let total = before.snapshot_bytes() + before.cache_mount_bytes();
    let (_, run_a_top) = record(&before, "/a.bin").unwrap();
    let (_, run_b_top) = record(&before, "/b.bin").unwrap();
    let keep = (total - 1).to_string();

    ok(&manifold(
        root.path(),
        &["prune", "--force", "--keep-storage", &keep],
    ));
    let after = Inventory::read(root.path()).unwrap();
    // a's COPY record went first without freeing its snapshot (a's RUN used it),
    // then a's RUN record took both; that was enough.
    assert!(record(&after, "COPY a.txt").is_none());
    assert!(!has_snapshot(&after, &run_a_top));
    assert!(record(&after, "/b.bin").is_some());
    assert!(has_snapshot(&after, &run_b_top));
    assert_eq!(after.cache_mounts.len(), 2);
    assert!(after.snapshot_bytes() + after.cache_mount_bytes() < total);

    // Keeping nothing removes all build state.
    ok(&manifold(
        root.path(),
        &["prune", "--force", "--keep-storage", "0"],
    ));
    let empty = Inventory::read(root.path()).unwrap();
    assert!(empty.records.is_empty() && empty.snapshots.is_empty());
    assert!(empty.cache_mounts.is_empty());
}

#[test]
fn gc_policy_runs_after_a_build() {
    common::require_root();
    let root = common::root_with_base();
    let config = root.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let (a, b) = (context("a", 64), context("b", 64));
    build(root.path(), a.path(), "localhost/a:1");
    age_records(root.path(), "/a.bin", 3 * HOUR);
    for m in Inventory::read(root.path()).unwrap().cache_mounts {
        set_mtime(&m.path, SystemTime::now() - 3 * HOUR);
    }

    // Disabled: nothing goes.
    std::fs::write(
        config.join("config.toml"),
        "[gc]\nenabled = false\nkeep-duration = \"1h\"\n",
    )
    .unwrap();
    build(root.path(), b.path(), "localhost/b:1");
    assert!(record(&Inventory::read(root.path()).unwrap(), "/a.bin").is_some());

    // A policy that cannot be read warns; the build still succeeds.
    std::fs::write(config.join("config.toml"), "[gc]\nkeep-duration = \"2d\"\n").unwrap();
    let out = build(root.path(), b.path(), "localhost/b:1");
    assert!(
        out.contains("warning: garbage collection after the build failed"),
        "{out}"
    );
    assert!(out.contains("keep-duration"), "{out}");

    std::fs::write(
        config.join("config.toml"),
        "[registry.\"localhost:5000\"]\nhttp = true\n\n[gc]\nkeep-duration = \"1h\"\n",
    )
    .unwrap();
    let out = build(root.path(), b.path(), "localhost/b:1");
    assert!(
        out.contains("garbage collection ([gc] in config.toml): removed"),
        "{out}"
    );
    let inv = Inventory::read(root.path()).unwrap();
    assert!(record(&inv, "/a.bin").is_none(), "a's RUN was stale");
    assert!(record(&inv, "/b.bin").is_some(), "b's RUN was just used");
    // a's cache mount was stale; b's was just mounted.
    assert_eq!(inv.cache_mounts.len(), 1);
    assert!(
        Store::open(root.path())
            .unwrap()
            .resolve("localhost/a:1")
            .is_ok()
    );
}

#[test]
fn du_verbose_lists_what_a_build_made() {
    common::require_root();
    let root = common::root_with_base();
    let a = context("a", 512);
    build(root.path(), a.path(), "localhost/a:1");
    let inv = Inventory::read(root.path()).unwrap();
    let out = ok(&manifold(root.path(), &["du", "--verbose"]));
    let (run, top) = record(&inv, "/a.bin").unwrap();
    assert!(
        out.contains(&format!("ID:           {}", &run[..12])),
        "{out}"
    );
    assert!(out.contains("Type:         step"), "{out}");
    assert!(out.contains("dd if=/dev/zero of=/a.bin"), "{out}");
    assert!(out.contains(&format!("Snapshot:     {top}")), "{out}");
    assert!(out.contains(&format!("ID:           {top}")), "{out}");
    assert!(out.contains("Type:         cache-mount"), "{out}");
    assert!(out.contains("Instance:     0"), "{out}");
    assert!(out.contains("Last used:    "), "{out}");
    let ids = out.matches("ID:  ").count();
    assert_eq!(
        ids,
        inv.records.len() + inv.snapshots.len() + inv.cache_mounts.len(),
        "{out}"
    );
    // The summary counts build state; the RUN's 512 KiB is in its snapshot.
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row: {out}"))
            .to_owned()
    };
    assert!(
        row("snapshots ").contains(&format!(" {} ", inv.snapshots.len())),
        "{out}"
    );
    assert!(row("cache mounts").contains(" 1 "), "{out}");
    assert!(inv.snapshot_bytes() >= 512 * 1024);
    let summary = ok(&manifold(root.path(), &["du"]));
    assert!(!summary.contains("ID:"), "{summary}");
    assert!(summary.contains("total"), "{summary}");

    // The total is what `du -sb` counts for the whole root, within 1 %.
    let total_line = summary
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap()
        .to_owned();
    let shown = total_line.split_whitespace().last().unwrap();
    let digits = shown.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale = match &shown[digits.len()..] {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unit {other} in {total_line}"),
    };
    let ours = digits.parse::<f64>().unwrap() * scale;
    let du = std::process::Command::new("du")
        .arg("-sb")
        .arg(root.path())
        .output()
        .unwrap();
    let theirs: f64 = text(&du.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (ours - theirs).abs() <= theirs * 0.01,
        "manifold du says {ours}, du -sb {theirs}\n{summary}"
    );
}

#[test]
fn prune_filter_keeps_build_state_while_a_build_holds_it() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache/records");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(root.path().join("cache-mounts/abc")).unwrap();
    std::fs::create_dir_all(root.path().join("locks")).unwrap();
    let lock = std::fs::File::create(root.path().join("locks/builds.lock")).unwrap();
    lock.lock_shared().unwrap();
    let out = ok(&manifold(
        root.path(),
        &["prune", "--force", "--filter", "type=cache-mount"],
    ));
    assert!(out.contains("a build is running"), "{out}");
    assert!(root.path().join("cache-mounts/abc").is_dir());
    drop(lock);
    let out = ok(&manifold(
        root.path(),
        &["prune", "--force", "--filter", "type=cache-mount"],
    ));
    assert!(out.contains("removed 1 cache mount(s)"), "{out}");
    assert!(!root.path().join("cache-mounts/abc").exists());
}

/// `[gc] keep-storage` bounds the whole state root: after each of several builds of
/// changing content, `du -sb` of the root stays under it, and the image still named
/// is whole (`fsck` clean, it runs).
#[test]
fn keep_storage_keeps_the_root_under_the_limit_across_builds() {
    common::require_root();
    let root = common::root_with_base();
    let config = root.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        "[gc]\nkeep-storage = \"50MB\"\n",
    )
    .unwrap();
    let ctx = churn_context();
    let du_sb = || du_sb(root.path());
    let mut sizes = Vec::new();
    for n in 0..6 {
        let arg = format!("N={n}");
        ok(&common::build(
            root.path(),
            ctx.path(),
            "localhost/churn:1",
            &["--build-arg", &arg],
        ));
        sizes.push(du_sb());
    }
    // Without collection six builds would hold 6 × 12 MB of layers and as much again
    // in snapshots.
    assert!(
        sizes.iter().all(|s| *s <= 50_000_000),
        "state root sizes after each build: {sizes:?}"
    );
    ok(&manifold(root.path(), &["fsck"]));
    let ran = manifold(
        root.path(),
        &["run", "--rm", "localhost/churn:1", "cat", "/n"],
    );
    assert_eq!(text(&ran.stdout), "5\n", "{}", text(&ran.stderr));
}

/// A Dockerfile whose build makes 12 MB of new data for each value of the argument N.
fn churn_context() -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nARG N\nRUN head -c 12000000 /dev/urandom > /data && echo $N > /n\n",
            common::BASE
        ),
    )
    .unwrap();
    ctx
}

/// `du -sb DIR`: the apparent bytes under it.
fn du_sb(dir: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .arg("-sb")
        .arg(dir)
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A daemon applies the `[gc]` policy of its own config.toml to its own state root
/// after each build: several builds of changing content through it keep that root
/// under `keep-storage`, and the root stays consistent (`fsck` clean).
#[test]
fn a_daemon_collects_its_own_root_after_builds() {
    common::require_root();
    let daemon = testkit::daemon::Daemon::start(
        Path::new(env!("CARGO_BIN_EXE_manifold")),
        common::BASE,
        &["amd64"],
    );
    std::fs::create_dir_all(daemon.config()).unwrap();
    std::fs::write(
        daemon.config().join("config.toml"),
        "[gc]\nkeep-storage = \"40MB\"\n",
    )
    .unwrap();
    let client = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_manifold"))
            .args(args)
            .env("MANIFOLD_ROOT", client.path().join("root"))
            .env("MANIFOLD_CONFIG", client.path().join("config"))
            .env_remove("MANIFOLD_BUILDER")
            .output()
            .unwrap()
    };
    ok(&run(&[
        "create",
        "--name",
        "far",
        "--use",
        &daemon.endpoint(),
    ]));
    // "40MB" as Docker and BuildKit read sizes: 40 MiB.
    const LIMIT: u64 = 40 << 20;
    let ctx = churn_context();
    let mut sizes = Vec::new();
    for n in 0..5 {
        let arg = format!("N={n}");
        ok(&run(&[
            "build",
            "--progress=plain",
            "--build-arg",
            &arg,
            ctx.path().to_str().unwrap(),
        ]));
        // The daemon collects once the client has its reply: wait for it.
        let t = std::time::Instant::now();
        while du_sb(&daemon.root()) > LIMIT && t.elapsed().as_secs() < 20 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        sizes.push(du_sb(&daemon.root()));
    }
    // Without collection the root grows by about 12 MB a build: 28, 40, 52, 64, 76 MB.
    assert!(
        sizes.iter().all(|s| *s <= LIMIT),
        "the daemon's root after each build: {sizes:?}"
    );
    ok(&manifold(&daemon.root(), &["fsck"]));
}
