//! `manifold build` against the hostile inputs of docs/SECURITY-CASES.md that reach
//! the build through RUN steps (cases 23, 26–30, 32 and 35: secret, cache, tmpfs and
//! bind mounts, entitlements, a step that fills the disk): each test is a real build
//! with real runc on a busybox base image, and checks the documented safe behaviour
//! plus that nothing outside the state root changed (a sentinel tree hashed before
//! and after). Needs root. The COPY and context cases are in `build_security.rs`.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    Sentinel, add_base, all_output, assert_clean, build, contains, decompressed, fails, manifest,
    manifold, ok, read, require_root, root_with_base, snapshot_tree, text, unique, unpack, write,
};
use content::Store;
use oci::ImageManifest;

/// The entry names of the layers the build added on top of the base.
fn added_entries(root: &Path, m: &ImageManifest) -> Vec<String> {
    let store = Store::open(root).unwrap();
    let mut names = Vec::new();
    for l in &m.layers[1..] {
        let out = Command::new("tar")
            .arg("-tf")
            .arg(store.blob_path(&l.digest))
            .output()
            .unwrap();
        assert!(out.status.success());
        names.extend(text(&out.stdout).lines().map(str::to_owned));
    }
    names
}

/// Every regular file under `dir`, without following symlinks.
fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if meta.is_file() {
            found.push(p);
        }
    }
    found
}

// Case 23: a secret reaches the step but no layer, cache record, log, progress
// output or step name, and its mount stubs are not left in the layer.
#[test]
fn case23_secret_mount_leaves_no_trace() {
    require_root();
    let root = root_with_base();
    let sentinel = Sentinel::new(&[("keep.txt", "keep\n")]);
    let value = unique("s3cr3t");
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("tok");
    std::fs::write(&secret_file, &value).unwrap();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\n\
         RUN --mount=type=secret,id=tok --mount=type=secret,id=tok,target=/srv/deep/tok \
         --mount=type=secret,id=tok,env=TOK_ENV \
         sh -c 'test \"$(cat /run/secrets/tok)\" = \"$(cat /srv/deep/tok)\" && test \"$TOK_ENV\" = \"$(cat /srv/deep/tok)\" \
         && wc -c < /run/secrets/tok > /count && echo step ran'\n",
    );
    let spec = format!("id=tok,src={}", secret_file.display());
    let plain = build(
        root.path(),
        ctx.path(),
        "localhost/case23:1",
        &["--secret", &spec],
    );
    ok(&plain);
    assert!(
        text(&plain.stderr).contains("step ran"),
        "{}",
        all_output(&plain)
    );
    let raw = manifold(
        root.path(),
        &[
            "build",
            "--progress=rawjson",
            "--no-cache",
            "--secret",
            &spec,
            "-t",
            "localhost/case23:2",
            ctx.path().to_str().unwrap(),
        ],
    );
    ok(&raw);
    assert!(
        all_output(&raw).contains("step ran"),
        "rawjson shows the step's log: {}",
        all_output(&raw)
    );
    for out in [&plain, &raw] {
        assert!(
            !all_output(out).contains(&value),
            "the secret is in the output:\n{}",
            all_output(out)
        );
    }
    for tag in ["localhost/case23:1", "localhost/case23:2"] {
        let m = manifest(root.path(), tag);
        let fs = unpack(root.path(), &m);
        assert_eq!(read(fs.path(), "count").trim(), value.len().to_string());
        let entries = added_entries(root.path(), &m);
        assert!(
            !entries
                .iter()
                .any(|e| e.starts_with("run/secrets") || e.starts_with("srv")),
            "{tag}: mount stubs left in the layer: {entries:?}"
        );
    }
    // No file of the state root (blobs, cache records, snapshots, context index,
    // logs) holds the value, gzip blobs decompressed.
    assert!(
        !regular_files(&root.path().join("cache")).is_empty(),
        "no cache records were written, so their check would be vacuous"
    );
    let found: Vec<_> = regular_files(root.path())
        .into_iter()
        .filter(|p| contains(&decompressed(p), value.as_bytes()))
        .collect();
    assert!(found.is_empty(), "the secret is stored in {found:?}");
    sentinel.check();
    assert_clean(root.path());
}

// Case 26: cache mount ids are hashed, never used as paths.
#[test]
fn case26_cache_mount_ids_never_name_host_paths() {
    require_root();
    let root = root_with_base();
    let sentinel = Sentinel::new(&[("keep.txt", "keep\n")]);
    let marker = unique("case26");
    let up = format!("../../../../../../../..{}", sentinel.s());
    let ids = ["../../../../root", "/etc", "..", ".", up.as_str()];
    let ctx = tempfile::tempdir().unwrap();
    let mut run = String::from("RUN");
    let mut script = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        run.push_str(&format!(" --mount=type=cache,id={id},target=/c{i}"));
        script.push(format!(
            "echo {i} > /c{i}/{marker} && ls -A /c{i} >> /listing"
        ));
    }
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:test\n{run} sh -c '{}'\n",
            script.join(" && ")
        ),
    );
    ok(&build(root.path(), ctx.path(), "localhost/case26:1", &[]));
    let fs = unpack(root.path(), &manifest(root.path(), "localhost/case26:1"));
    assert_eq!(
        read(fs.path(), "listing"),
        format!("{marker}\n").repeat(ids.len()),
        "each cache starts empty (not the host's /root, /etc, …)"
    );
    for host in [Path::new("/root"), Path::new("/etc"), Path::new("/")] {
        assert!(
            !host.join(&marker).exists(),
            "{} was written",
            host.display()
        );
    }
    assert!(!root.path().parent().unwrap().join(&marker).exists());
    // The markers are in the cache-mounts dir, one hashed directory per id.
    let caches = root.path().join("cache-mounts");
    let mut seen = Vec::new();
    for e in std::fs::read_dir(&caches).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let hex = name.trim_end_matches(".lock");
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "cache-mounts entry {name:?} is not a hash"
        );
        if e.file_type().unwrap().is_dir() {
            seen.push(read(&e.path(), &marker));
        }
    }
    seen.sort();
    let want: Vec<String> = (0..ids.len()).map(|i| format!("{i}\n")).collect();
    assert_eq!(seen, want);

    // The same id finds the same cache in a later build.
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:test\n\
             RUN --mount=type=cache,id=/etc,target=/again cat /again/{marker} > /again.txt\n"
        ),
    );
    ok(&build(root.path(), ctx.path(), "localhost/case26:2", &[]));
    let fs = unpack(root.path(), &manifest(root.path(), "localhost/case26:2"));
    assert_eq!(read(fs.path(), "again.txt"), "1\n");
    sentinel.check();
    assert_clean(root.path());
}

// Case 26, sources: a cache mount seeded `from=` a stage with `source=..` or with a
// `source` that is a symlink to an absolute host path takes its seed inside that
// stage's tree (`..` stops at its root, the link resolves in it), never from the host.
#[test]
fn case26_cache_mount_sources_resolve_inside_their_stage() {
    require_root();
    let root = root_with_base();
    let sentinel = Sentinel::new(&[("keep.txt", "keep\n")]);
    let marker = unique("case26src");
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:test AS seed\n\
             RUN mkdir -p /data/sub /{sentinel} && echo stage > /data/sub/where \\\n\
              && echo stage > /{sentinel}/keep.txt && ln -s {host} /data/link\n\
             FROM localhost/busybox:test\n\
             RUN --mount=type=cache,id=up,target=/up,from=seed,source=../../.. \\\n\
                 --mount=type=cache,id=link,target=/link,from=seed,source=/data/link \\\n\
                 sh -c 'ls -A /up > /up.txt; cat /link/keep.txt > /link.txt; echo {marker} > /link/written'\n",
            sentinel = sentinel.s().trim_start_matches('/'),
            host = sentinel.s(),
        ),
    );
    ok(&build(
        root.path(),
        ctx.path(),
        "localhost/case26src:1",
        &[],
    ));
    let fs = unpack(root.path(), &manifest(root.path(), "localhost/case26src:1"));
    // `..` from the stage's root is its root: its top-level entries, data among them.
    let up = read(fs.path(), "up.txt");
    assert!(up.lines().any(|l| l == "data"), "{up}");
    // The link to the sentinel's host path resolved inside the stage.
    assert_eq!(read(fs.path(), "link.txt"), "stage\n");
    // Nothing was written to the host's directory the link names.
    assert!(!Path::new(sentinel.s()).join("written").exists());
    sentinel.check();
    assert_clean(root.path());
}

// Case 27 (lowered from 1000 to 200 iterations): two steps run at once on one cache
// mount, one swapping a directory for a symlink to `/`, the other writing through
// it; nothing lands on the host outside the state root.
#[test]
fn case27_parallel_steps_racing_a_cache_symlink_stay_in_root() {
    require_root();
    let root = root_with_base();
    let sentinel = Sentinel::new(&[("keep.txt", "keep\n"), ("d/", "")]);
    let marker = unique("case27");
    let s = sentinel.s();
    // Each step announces itself and waits (up to 15 s) for the other, so the two
    // loops overlap; `saw` records whether they did.
    let meet = |me: &str, other: &str| {
        format!(
            "touch /cache/{me}-ready; n=0; while [ ! -e /cache/{other}-ready ] && [ $n -lt 150 ]; \
             do sleep 0.1; n=$((n+1)); done; \
             if [ -e /cache/{other}-ready ]; then echo yes > /saw-{other}; else echo no > /saw-{other}; fi"
        )
    };
    let swapper = "i=0; while [ $i -lt 200 ]; do rm -rf /cache/d; mkdir -p /cache/d; rm -rf /cache/d; \
                   ln -s / /cache/d; rm -f /cache/d; ln -s ../../../../../../.. /cache/d; i=$((i+1)); done";
    let writer = format!(
        "i=0; while [ $i -lt 200 ]; do mkdir -p /cache/d/{marker}-dir 2>/dev/null; \
         echo x > /cache/d/{marker}-$i 2>/dev/null; echo x > /cache/d{s}/d/{marker} 2>/dev/null; \
         i=$((i+1)); done"
    );
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:test AS a\n\
             RUN --mount=type=cache,id=race,target=/cache sh -c '{}; {swapper}; sleep 1; rm -f /cache/a-ready'\n\
             FROM localhost/busybox:test AS b\n\
             RUN --mount=type=cache,id=race,target=/cache sh -c '{}; {writer}; sleep 1; rm -f /cache/b-ready'\n\
             FROM localhost/busybox:test\n\
             COPY --from=a /saw-b /\n\
             COPY --from=b /saw-a /\n",
            meet("a", "b"),
            meet("b", "a"),
        ),
    );
    ok(&build(root.path(), ctx.path(), "localhost/case27:1", &[]));
    let fs = unpack(root.path(), &manifest(root.path(), "localhost/case27:1"));
    assert_eq!(
        read(fs.path(), "saw-b"),
        "yes\n",
        "the two steps did not overlap"
    );
    assert_eq!(
        read(fs.path(), "saw-a"),
        "yes\n",
        "the two steps did not overlap"
    );
    let on_host: Vec<_> = std::fs::read_dir("/")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&marker))
        .map(|e| e.path())
        .collect();
    assert!(on_host.is_empty(), "written on the host: {on_host:?}");
    sentinel.check();
    assert_clean(root.path());
}

// Case 28: a step replaces the parents of its mount points with symlinks to a host
// directory; the mount-stub cleanup resolves in-root and leaves the host alone.
#[test]
fn case28_mount_stub_cleanup_never_follows_replaced_parents() {
    require_root();
    let root = root_with_base();
    // Only empty dirs and files: what a stub cleanup that followed the links would
    // delete.
    let sentinel = Sentinel::new(&[("b/c/", ""), ("f/g/", ""), ("x/y/", ""), ("empty", "")]);
    let s = sentinel.s();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:test\n\
             RUN --mount=type=tmpfs,target=/a/b/c sh -c 'mv /a /a.old && ln -s {s} /a'\n\
             RUN --mount=type=tmpfs,target=/e/f/g sh -c 'mv /e /e.old && ln -s ../../../../../../../..{s} /e'\n\
             RUN --mount=type=tmpfs,target=/p/x/y --mount=type=cache,id=c28,target=/q/b/c \
             sh -c 'mv /p /p.old && ln -s {s} /p && mv /q /q.old && ln -s / /q'\n"
        ),
    );
    ok(&build(root.path(), ctx.path(), "localhost/case28:1", &[]));
    sentinel.check();
    let fs = unpack(root.path(), &manifest(root.path(), "localhost/case28:1"));
    for (link, target) in [
        ("a", s.to_owned()),
        ("e", format!("../../../../../../../..{s}")),
        ("p", s.to_owned()),
        ("q", "/".to_owned()),
    ] {
        assert_eq!(
            std::fs::read_link(fs.path().join(link)).unwrap(),
            Path::new(&target),
            "the step's {link} is kept"
        );
    }
    assert_clean(root.path());
}

// Case 32: `--security=insecure` and `--network=host` need their entitlement, from
// the Dockerfile and from the command line; unknown values are refused. A denied
// step never starts a container.
#[test]
fn case32_privileged_modes_need_their_entitlement() {
    require_root();
    let root = root_with_base();
    let tools = tempfile::tempdir().unwrap();
    let counter = tools.path().join("runs");
    let runtime = testkit::counting_runtime(tools.path(), &counter);
    let rt = runtime.to_str().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    let denied = [
        ("RUN --security=insecure true", &[][..], "security.insecure"),
        ("RUN --network=host true", &[][..], "network.host"),
        ("RUN true", &["--network=host"][..], "network.host"),
        (
            "RUN --network=host true",
            &["--allow", "security.insecure"][..],
            "network.host",
        ),
        (
            "RUN --security=insecure true",
            &["--allow", "network.host"][..],
            "security.insecure",
        ),
        ("RUN --network=bogus true", &[][..], "bogus"),
        ("RUN --security=bogus true", &[][..], "bogus"),
        ("RUN true", &["--network=bogus"][..], "bogus"),
        ("RUN true", &["--allow", "bogus"][..], "bogus"),
    ];
    for (i, (run, flags, named)) in denied.iter().enumerate() {
        write(
            ctx.path(),
            "Dockerfile",
            &format!("FROM localhost/busybox:test\n{run}\n"),
        );
        let mut extra = vec!["--runtime", rt];
        extra.extend_from_slice(flags);
        let tag = format!("localhost/case32:denied{i}");
        let out = build(root.path(), ctx.path(), &tag, &extra);
        let err = fails(&out);
        assert!(err.contains(named), "{run} {flags:?}: {err}");
        assert_eq!(
            testkit::counted_runs(&counter),
            0,
            "{run} {flags:?} started a container"
        );
        assert!(Store::open(root.path()).unwrap().resolve(&tag).is_err());
    }
    // Granted, both run.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN --network=host true\nRUN --security=insecure true\n",
    );
    ok(&build(
        root.path(),
        ctx.path(),
        "localhost/case32:granted",
        &[
            "--runtime",
            rt,
            "--allow",
            "network.host",
            "--allow",
            "security.insecure",
        ],
    ));
    assert_eq!(testkit::counted_runs(&counter), 2);
    assert_clean(root.path());
}

/// A tmpfs mounted on a fresh directory for the test's life.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "manifold-test"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs -o {options}");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Used bytes and inodes.
    fn used(&self) -> (u64, u64) {
        let s = rustix::fs::statvfs(self.path()).unwrap();
        ((s.f_blocks - s.f_bfree) * s.f_frsize, s.f_files - s.f_ffree)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Whatever a failed build left mounted inside first, deepest first.
        for line in common::mounts_below(self.dir.path()).iter().rev() {
            if let Some(point) = line.split(' ').nth(4) {
                let _ = Command::new("umount").args(["-l", point]).status();
            }
        }
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

// Case 35 (lowered: a 64 MiB / 4000-inode tmpfs as the state root instead of a full
// disk, 10^4 files instead of 10^6): a step that runs out of space or inodes
// fails, its snapshot is discarded (the space comes back), nothing is left
// mounted, and the cache still works for the next builds.
#[test]
fn case35_a_step_that_fills_the_disk_fails_cleanly() {
    require_root();
    let fs = Tmpfs::mount("size=64m,nr_inodes=4000,mode=0700");
    let root = fs.path();
    add_base(root);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN echo small > /small\n",
    );
    ok(&build(root, ctx.path(), "localhost/case35:small", &[]));
    let before = fs.used();

    for (what, run) in [
        (
            "bytes",
            "RUN dd if=/dev/zero of=/big bs=1M count=256 && echo wrote-$((6*7))",
        ),
        (
            "inodes",
            "RUN mkdir /many && cd /many && seq 1 10000 | xargs touch && echo wrote-$((6*7))",
        ),
    ] {
        write(
            ctx.path(),
            "Dockerfile",
            &format!("FROM localhost/busybox:test\n{run}\n"),
        );
        let out = build(root, ctx.path(), "localhost/case35:full", &[]);
        let err = fails(&out);
        assert!(!err.contains("wrote-42"), "{what}: {err}");
        assert!(err.contains("No space left on device"), "{what}: {err}");
        assert!(err.contains("exit code"), "{what}: {err}");
        assert!(
            Store::open(root)
                .unwrap()
                .resolve("localhost/case35:full")
                .is_err(),
            "{what}: a failed build named an image"
        );
        assert_clean(root);
        let after = fs.used();
        assert!(
            after.0 <= before.0 + (2 << 20) && after.1 <= before.1 + 100,
            "{what}: the failed step's files were kept: used {before:?} before, {after:?} after"
        );
    }

    // The cache and the store still work: the first build is cached, a new one runs.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN echo small > /small\n",
    );
    let out = build(root, ctx.path(), "localhost/case35:small", &[]);
    ok(&out);
    assert!(text(&out.stderr).contains("CACHED"), "{}", all_output(&out));
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nRUN echo after > /after\n",
    );
    ok(&build(root, ctx.path(), "localhost/case35:after", &[]));
    let img = unpack(root, &manifest(root, "localhost/case35:after"));
    assert_eq!(read(img.path(), "after"), "after\n");
    assert_clean(root);
}

// Case 29: a bind mount's source that is a symlink to `/` (or up and out) in the
// stage or context it comes from shows that tree's root, never the host's.
#[test]
fn case29_bind_mount_source_symlinks_resolve_in_their_tree() {
    require_root();
    let root = root_with_base();
    let sentinel = Sentinel::new(&[("host-only", "host\n")]);
    let s = sentinel.s();
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "ctx-marker", "context-root\n");
    symlink("/", ctx.path().join("clink")).unwrap();
    symlink("../../../../../../..", ctx.path().join("cup")).unwrap();
    let mounts = [
        "type=bind,from=st,source=/link,target=/m",
        "type=bind,from=st,source=/up,target=/u",
        "type=bind,from=st,source=/link/up/link,target=/mm",
        "type=bind,from=st,source=/link,target=/w,rw",
        "type=bind,source=clink,target=/c",
        "type=bind,source=cup,target=/cu",
    ];
    let flags: String = mounts.iter().map(|m| format!(" --mount={m}")).collect();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:test AS st\n\
             RUN ln -s / /link && ln -s ../../../.. /up && echo stage-root > /stage-marker \
             && mkdir -p {s} && echo stage > {s}/stage-only\n\
             FROM localhost/busybox:test\n\
             RUN{flags} sh -c 'for d in /m /u /mm /w; do cat $d/stage-marker; ls -A $d{s}; done > /got; \
             for d in /c /cu; do cat $d/ctx-marker; test -e $d/Dockerfile && echo dockerfile; done >> /got'\n"
        ),
    );
    ok(&build(root.path(), ctx.path(), "localhost/case29:1", &[]));
    let fs = unpack(root.path(), &manifest(root.path(), "localhost/case29:1"));
    assert_eq!(
        read(fs.path(), "got"),
        format!(
            "{}{}",
            "stage-root\nstage-only\n".repeat(4),
            "context-root\ndockerfile\n".repeat(2)
        )
    );
    sentinel.check();
    assert_clean(root.path());
}

// Case 30: what a step writes into an `rw` bind mount is discarded: it reaches
// neither the image nor the stage or context the mount came from.
#[test]
fn case30_rw_bind_mount_writes_are_discarded() {
    require_root();
    let root = root_with_base();
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "file.txt", "original\n");
    write(ctx.path(), "keep.txt", "keep\n");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test AS st\n\
         RUN mkdir /data && echo original > /data/file && echo keep > /data/keep\n\
         FROM localhost/busybox:test\n\
         RUN --mount=type=bind,from=st,target=/m,rw --mount=type=bind,target=/ctx,rw \
         sh -c 'echo changed > /m/data/file && echo new > /m/data/new && rm /m/data/keep && rm -r /m/etc \
         && echo changed > /ctx/file.txt && echo new > /ctx/new.txt && rm /ctx/keep.txt && mkdir /ctx/newdir'\n\
         RUN --mount=type=bind,from=st,target=/m2 --mount=type=bind,target=/ctx2 \
         sh -c 'ls -A /ctx2 /m2/data > /seen && cat /m2/data/file /ctx2/file.txt >> /seen \
         && test -d /m2/etc && echo etc-kept >> /seen'\n\
         COPY --from=st /data/ /st-data/\n",
    );
    let context = Sentinel {
        before: snapshot_tree(ctx.path()),
        dir: ctx,
    };
    ok(&build(
        root.path(),
        context.path(),
        "localhost/case30:1",
        &[],
    ));
    context.check();
    let m = manifest(root.path(), "localhost/case30:1");
    let fs = unpack(root.path(), &m);
    assert_eq!(
        read(fs.path(), "seen"),
        "/ctx2:\nDockerfile\nfile.txt\nkeep.txt\n\n/m2/data:\nfile\nkeep\noriginal\noriginal\netc-kept\n"
    );
    assert_eq!(read(fs.path(), "st-data/file"), "original\n");
    assert_eq!(read(fs.path(), "st-data/keep"), "keep\n");
    assert!(!fs.path().join("st-data/new").exists());
    let entries = added_entries(root.path(), &m);
    assert!(
        !entries.iter().any(|e| e == "m"
            || e.starts_with("m/")
            || e.starts_with("ctx")
            || e.starts_with("m2")),
        "mount contents or stubs in the image: {entries:?}"
    );
    assert_clean(root.path());
}

// Case 23, killed mid-step: the secret lives on a tmpfs of its own and its file is
// removed from the host once the step's process runs, so `kill -9` of manifold while
// the step runs leaves the secret in no file of the state root or of /tmp.
#[test]
fn case23_a_build_killed_during_a_secret_step_leaves_the_secret_on_no_disk() {
    use std::io::BufRead;
    require_root();
    let root = root_with_base();
    let value = unique("k1ll3d-s3cr3t");
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\n\
         RUN --mount=type=secret,id=tok sh -c 'test -s /run/secrets/tok && echo holding-$((6 * 7)) && sleep 120'\n",
    );
    // From the environment: no file of the test holds the value either.
    let mut child = Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args([
            "build",
            "--progress=plain",
            "--secret",
            "id=tok,env=CASE23_TOK",
        ])
        .arg(ctx.path())
        .env("CASE23_TOK", &value)
        .env("MANIFOLD_ROOT", root.path())
        .env("MANIFOLD_CONFIG", root.path().join("config"))
        .env_remove("MANIFOLD_BUILDER")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        // The step's own output, not its name (which shows the arithmetic).
        let started = line.contains("holding-42");
        seen.push(line);
        if started {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("holding-42")),
        "the step never ran:\n{}",
        seen.join("\n")
    );
    // The step runs and holds the secret: kill manifold as a crash would.
    child.kill().unwrap();
    child.wait().unwrap();

    let found = |dir: &Path| {
        let out = Command::new("grep")
            .args(["-r", "-l", "-s", "-F", "--devices=skip"])
            .args(["--exclude-dir=target", "--exclude-dir=.git"])
            .arg(&value)
            .arg(dir)
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let in_root = found(root.path());
    let in_tmp = found(Path::new("/tmp"));

    // Stop the orphaned step and undo its mounts before anything can fail.
    let listed = Command::new("runc")
        .args(["list", "--format", "json"])
        .output()
        .unwrap();
    let containers: serde_json::Value =
        serde_json::from_slice(&listed.stdout).unwrap_or(serde_json::Value::Null);
    for c in containers.as_array().into_iter().flatten() {
        let bundle = c["bundle"].as_str().unwrap_or_default();
        if bundle.starts_with(root.path().to_str().unwrap()) {
            let id = c["id"].as_str().unwrap();
            let _ = Command::new("runc").args(["kill", id, "KILL"]).output();
            let _ = Command::new("runc")
                .args(["delete", "--force", id])
                .output();
        }
    }
    for line in common::mounts_below(root.path()).iter().rev() {
        if let Some(point) = line.split(' ').nth(4) {
            let _ = Command::new("umount").args(["-l", point]).output();
        }
    }

    assert_eq!(in_root, "", "the secret is in a file of the state root");
    assert_eq!(in_tmp, "", "the secret is in a file under /tmp");
}
