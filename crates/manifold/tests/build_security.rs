//! `manifold build` against the hostile inputs of docs/SECURITY-CASES.md that reach
//! the build through COPY and the context (cases 17 and 18) and through the store
//! (case 57): each test is a real build with real runc on a busybox base image, and
//! checks the documented safe behaviour plus that nothing outside the state root
//! changed (a sentinel tree hashed before and after). Case 20 and its kin: the
//! client's control files (the Dockerfile, `.dockerignore`) that are symlinks out of
//! the context, FIFOs or huge are refused, naming the file. Needs root. The RUN-step cases
//! (mounts, secrets, entitlements, a full disk) are in `build_security_run.rs`.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::{
    Sentinel, all_output, assert_clean, build, contains, decompressed, fails, manifest, manifold,
    ok, read, require_root, root_with_base, unique, unpack, write,
};
use content::Store;

// Case 17: context symlinks are copied as symlinks, never followed on the client.
/// The cases below again as a rootless build runs them: this binary rerun by the
/// unprivileged test user as root of a user namespace, with a copy of manifold.
#[test]
fn every_case_holds_rootless() {
    common::require_root();
    // The shared base-image cache is made by root; the user only reads it.
    testkit::base::busybox_layer("amd64");
    testkit::rootless::rerun_in_a_user_namespace(
        "every_case_holds_rootless",
        &[],
        Some(Path::new(env!("CARGO_BIN_EXE_manifold"))),
    );
}

#[test]
fn case17_context_symlinks_are_copied_as_links_not_followed() {
    require_root();
    let root = root_with_base();
    let host_secret = unique("host-secret");
    let sentinel = Sentinel::new(&[
        ("secret.txt", &host_secret),
        ("dir/inner.txt", &host_secret),
    ]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/busybox:test\nCOPY . /ctx/\n",
    );
    write(ctx.path(), "plain.txt", "plain\n");
    std::fs::create_dir(ctx.path().join("sub")).unwrap();
    let up = format!("../../../../../../../../..{}/secret.txt", sentinel.s());
    let abs = format!("{}/secret.txt", sentinel.s());
    let links = [
        ("foo", "/etc/passwd"),
        ("sub/bar", "../../../etc/group"),
        ("abs", abs.as_str()),
        ("up", up.as_str()),
        ("dirlink", sentinel.s()),
    ];
    for (name, target) in links {
        symlink(target, ctx.path().join(name)).unwrap();
    }
    ok(&build(root.path(), ctx.path(), "localhost/case17:1", &[]));

    let m = manifest(root.path(), "localhost/case17:1");
    let fs = unpack(root.path(), &m);
    for (name, target) in links {
        let p = fs.path().join("ctx").join(name);
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert!(meta.file_type().is_symlink(), "{name} is not a symlink");
        assert_eq!(std::fs::read_link(&p).unwrap(), Path::new(target), "{name}");
    }
    assert_eq!(read(fs.path(), "ctx/plain.txt"), "plain\n");
    // No layer holds the bytes of a link target on the host.
    let store = Store::open(root.path()).unwrap();
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let host_only = host_passwd
        .lines()
        .find(|l| !testkit::base::PASSWD.contains(l))
        .map(str::to_owned);
    for l in &m.layers {
        let bytes = decompressed(&store.blob_path(&l.digest));
        assert!(
            !contains(&bytes, host_secret.as_bytes()),
            "layer {} holds a host file's content",
            l.digest
        );
        if let Some(line) = &host_only {
            assert!(
                !contains(&bytes, line.as_bytes()),
                "layer {} holds the host's /etc/passwd",
                l.digest
            );
        }
    }
    sentinel.check();
    assert_clean(root.path());
}

// Case 18: COPY through symlinked directories, in the context and in another
// stage, resolves in-root.
#[test]
fn case18_copy_through_symlinked_dirs_resolves_in_root() {
    require_root();
    let root = root_with_base();
    let sentinel = Sentinel::new(&[("secret.txt", "host-version\n")]);
    let s = sentinel.s();
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "etc/passwd", "context passwd\n");
    symlink("/etc", ctx.path().join("link")).unwrap();
    symlink(s, ctx.path().join("hostdir")).unwrap();
    symlink("../../../../../../../..", ctx.path().join("up")).unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM localhost/busybox:test AS st\n\
             RUN mkdir -p /data {s} && echo in-stage > /data/f && echo stage-version > {s}/secret.txt \
             && ln -s / /rootlink && ln -s ../../.. /data/up && ln -s /etc /etclink\n\
             FROM localhost/busybox:test\n\
             COPY link/passwd /from-ctx-link\n\
             COPY --from=st /rootlink/data/f /from-stage-rootlink\n\
             COPY --from=st /data/up{s}/secret.txt /from-stage-up\n\
             COPY --from=st /rootlink{s}/secret.txt /from-stage-abs\n\
             COPY --from=st /etclink/passwd /from-stage-etc\n"
        ),
    );
    ok(&build(root.path(), ctx.path(), "localhost/case18:1", &[]));
    let fs = unpack(root.path(), &manifest(root.path(), "localhost/case18:1"));
    assert_eq!(read(fs.path(), "from-ctx-link"), "context passwd\n");
    assert_eq!(read(fs.path(), "from-stage-rootlink"), "in-stage\n");
    assert_eq!(read(fs.path(), "from-stage-up"), "stage-version\n");
    assert_eq!(read(fs.path(), "from-stage-abs"), "stage-version\n");
    assert_eq!(read(fs.path(), "from-stage-etc"), testkit::base::PASSWD);

    // Paths that exist only on the host, reached through context links: not found.
    for (src, shown) in [
        ("link/hostname", "hostname"),
        ("hostdir/secret.txt", "secret.txt"),
        (&format!("up{s}/secret.txt") as &str, "secret.txt"),
    ] {
        write(
            ctx.path(),
            "Dockerfile",
            &format!("FROM localhost/busybox:test\nCOPY {src} /got\n"),
        );
        let out = build(root.path(), ctx.path(), "localhost/case18:bad", &[]);
        let err = fails(&out);
        assert!(err.contains(shown), "{src}: {err}");
        assert!(
            err.contains("not found") || err.contains("no such file"),
            "{src}: {err}"
        );
        assert!(
            Store::open(root.path())
                .unwrap()
                .resolve("localhost/case18:bad")
                .is_err(),
            "{src}: a failed build named an image"
        );
    }
    sentinel.check();
    assert_clean(root.path());
}

// Case 57: garbage collection running while a build exports and pushes. Leases keep
// every blob the build still needs: the build succeeds, the pushed image is whole,
// and the store verifies.
#[test]
fn case57_gc_during_export_and_push_keeps_what_the_build_uses() {
    use testkit::registry::{Auth, DistRegistry};
    require_root();
    let root = root_with_base();
    let reg = DistRegistry::start(Auth::Open);
    let ctx = tempfile::tempdir().unwrap();
    // Several layers of a few MiB each, so export and push take a while.
    let mut dockerfile = String::from("FROM localhost/busybox:test\n");
    for i in 0..6 {
        let data: Vec<u8> = (0..3 << 20)
            .map(|j: u32| (j.wrapping_mul(2654435761) >> (i + 7)) as u8)
            .collect();
        std::fs::write(ctx.path().join(format!("blob{i}")), data).unwrap();
        dockerfile.push_str(&format!("COPY blob{i} /data/blob{i}\n"));
    }
    write(ctx.path(), "Dockerfile", &dockerfile);
    let target = format!("{}/gc/race:1", reg.addr);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let (root, stop) = (root.path().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = manifold(&root, &["prune", "--force"]);
                assert!(out.status.success(), "{}", all_output(&out));
                runs += 1;
            }
            runs
        })
    };
    let out = build(root.path(), ctx.path(), &target, &["--push"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = gc.join().unwrap();
    ok(&out);
    assert!(runs > 0, "garbage collection ran during the build");
    ok(&manifold(root.path(), &["fsck"]));
    // Every blob of the pushed image can be fetched back.
    let dest = tempfile::tempdir().unwrap();
    let copied = Command::new(testkit::require_tool("skopeo"))
        .args(["copy", "--src-tls-verify=false", "--all"])
        .arg(format!("docker://{target}"))
        .arg(format!("oci:{}:img", dest.path().display()))
        .output()
        .unwrap();
    assert!(copied.status.success(), "{}", all_output(&copied));
    assert_clean(root.path());
}

/// A build of `ctx` on a fresh root with `extra` flags, killed if it has not ended
/// in 60 s (a FIFO read would block forever).
fn bounded_build(ctx: &Path, extra: &[&str]) -> std::process::Output {
    let root = root_with_base();
    let bin = common::manifold_bin();
    let mut args = vec!["timeout", "60", bin.to_str().unwrap(), "build"];
    args.extend_from_slice(extra);
    let ctx = ctx.to_str().unwrap().to_owned();
    args.push(&ctx);
    Command::new(args[0])
        .args(&args[1..])
        .env("MANIFOLD_ROOT", root.path())
        .env("MANIFOLD_CONFIG", root.path().join("config"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

// Case 20 and its kin: a Dockerfile or .dockerignore that is a symlink out of the
// context, a FIFO, or huge is refused with an error that names it; nothing of the
// link's target reaches the output; a symlink inside the context is followed.
#[test]
fn case20_control_files_out_of_the_context_fifos_and_huge_ones_are_refused() {
    require_root();
    let outside = tempfile::tempdir().unwrap();
    let marker = unique("outside-content");
    write(outside.path(), "secret.txt", &format!("{marker}\n"));
    let dockerfile = "FROM localhost/busybox:test\nCOPY . /ctx/\n";

    // The context's Dockerfile links out of it.
    let ctx = tempfile::tempdir().unwrap();
    symlink(
        outside.path().join("secret.txt"),
        ctx.path().join("Dockerfile"),
    )
    .unwrap();
    let out = bounded_build(ctx.path(), &[]);
    let msg = fails(&out);
    assert!(
        msg.contains("symbolic link out of the build context"),
        "{msg}"
    );
    assert!(msg.contains("Dockerfile"), "{msg}");
    assert!(!all_output(&out).contains(&marker), "{}", all_output(&out));

    // The .dockerignore links out of it.
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", dockerfile);
    symlink(
        outside.path().join("secret.txt"),
        ctx.path().join(".dockerignore"),
    )
    .unwrap();
    let out = bounded_build(ctx.path(), &[]);
    let msg = fails(&out);
    assert!(msg.contains(".dockerignore"), "{msg}");
    assert!(
        msg.contains("symbolic link out of the build context"),
        "{msg}"
    );
    assert!(!all_output(&out).contains(&marker), "{}", all_output(&out));

    // A FIFO as the Dockerfile, in the context and with -f, and as .dockerignore:
    // refused at once (the 60 s timeout would say 124).
    for (name, flags) in [
        ("Dockerfile", false),
        ("other.fifo", true),
        (".dockerignore", false),
    ] {
        let ctx = tempfile::tempdir().unwrap();
        if name != "Dockerfile" {
            write(ctx.path(), "Dockerfile", dockerfile);
        }
        let fifo = ctx.path().join(name);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let f = fifo.to_str().unwrap().to_owned();
        let extra: Vec<&str> = if flags { vec!["-f", &f] } else { vec![] };
        let t = std::time::Instant::now();
        let out = bounded_build(ctx.path(), &extra);
        assert_ne!(
            out.status.code(),
            Some(124),
            "{name}: the build hung on the FIFO"
        );
        let msg = fails(&out);
        assert!(msg.contains("not a regular file"), "{name}: {msg}");
        assert!(msg.contains(name), "{name}: {msg}");
        assert!(t.elapsed() < std::time::Duration::from_secs(30));
    }

    // A huge .dockerignore (over 1 MiB of patterns) is refused, naming it.
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", dockerfile);
    write(ctx.path(), ".dockerignore", &"ignored/**\n".repeat(200_000));
    let msg = fails(&bounded_build(ctx.path(), &[]));
    assert!(msg.contains(".dockerignore is larger than"), "{msg}");

    // A Dockerfile that links inside the context is read.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctx.path().join("docker")).unwrap();
    write(ctx.path(), "docker/Dockerfile.real", dockerfile);
    symlink("docker/Dockerfile.real", ctx.path().join("Dockerfile")).unwrap();
    ok(&bounded_build(ctx.path(), &[]));
}

// Case 9, input side: a base image whose layer names one path twice unpacks with the
// last entry winning, and the build says so on the FROM step (naming the layer),
// rather than silently.
#[test]
fn case09_a_base_layer_with_a_path_twice_keeps_the_last_and_warns() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let layer = {
        let mut bytes = testkit::base::busybox_layer("amd64");
        // Drop the end-of-archive blocks and go on writing entries after the tree.
        bytes.truncate(bytes.len() - 1024);
        let mut b = tar::Builder::new(bytes);
        for content in [&b"first\n"[..], b"last\n"] {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, "etc/twice", content).unwrap();
        }
        b.into_inner().unwrap()
    };
    let layer_digest = oci::Digest::sha256(&layer);
    {
        let store = Store::open(root.path()).unwrap();
        let lease = store.lease().unwrap();
        let desc = testkit::single_layer_image(
            &store,
            &lease,
            &testkit::base::platform("amd64"),
            &layer,
            oci::document::ContainerConfig::default(),
            "a layer with a path twice",
        );
        store.set_name("localhost/twice:test", &desc).unwrap();
    }
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM localhost/twice:test\nRUN cat /etc/twice > /seen\n",
    );
    let dest = tempfile::tempdir().unwrap();
    let out = build(
        root.path(),
        ctx.path(),
        "localhost/twice-out:test",
        &[
            "--output",
            &format!("type=local,dest={}", dest.path().display()),
        ],
    );
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warning = format!("warning: layer {layer_digest} of localhost/twice:test@");
    assert!(stderr.contains(&warning), "{}", all_output(&out));
    assert!(
        stderr.contains("names 1 path(s) more than once; the last entry of each was kept"),
        "{}",
        all_output(&out)
    );
    assert_eq!(read(dest.path(), "seen"), "last\n");
    assert_eq!(read(dest.path(), "etc/twice"), "last\n");
    // The layer is unpacked once; a second build finds it and says nothing again.
    let again = build(
        root.path(),
        ctx.path(),
        "localhost/twice-out:test",
        &["--no-cache"],
    );
    ok(&again);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("more than once"));
    ok(&manifold(root.path(), &["fsck"]));
}
