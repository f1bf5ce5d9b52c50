//! `manifold build` against the hostile inputs of docs/SECURITY-CASES.md (cases 17,
//! 18, 23, 26–28, 32 and 35): each test is a real build with real runc on a busybox
//! base image, and checks the documented safe behaviour plus that nothing outside
//! the state root changed (a sentinel tree hashed before and after). Needs root.
//!
//! Cases 29 (bind-mount source through a symlink) and 30 (`rw` bind mounts are
//! throwaway) are not here yet: the engine fails them today.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use content::Store;
use oci::{Digest, ImageIndex, ImageManifest, RawDocument};

const BASE: &str = "localhost/busybox:test";

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it runs containers with runc)"
    );
    testkit::require_tool("runc");
}

fn manifold(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(args)
        .env("MANIFOLD_ROOT", root)
        .env("MANIFOLD_CONFIG", root.join("config"))
        .env("DOCKER_CONFIG", root.join("docker"))
        .env_remove("MANIFOLD_RUNTIME")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `manifold build --progress=plain [extra…] -t tag ctx`.
fn build(root: &Path, ctx: &Path, tag: &str, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-t", tag, ctx.to_str().unwrap()]);
    manifold(root, &args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn all_output(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[track_caller]
fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "manifold failed ({:?})\n{}",
        out.status,
        all_output(out)
    );
}

#[track_caller]
fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "manifold succeeded where it must fail\n{}",
        all_output(out)
    );
    text(&out.stderr)
}

/// Put the busybox base image into the store at `dir`, named [`BASE`].
fn add_base(dir: &Path) {
    testkit::base::busybox_index(dir, BASE, &["amd64"]);
}

fn root_with_base() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    add_base(dir.path());
    dir
}

/// The manifest of the single-platform image `name`.
fn manifest(root: &Path, name: &str) -> ImageManifest {
    let store = Store::open(root).unwrap();
    let index = store.resolve(name).unwrap();
    let index = RawDocument::<ImageIndex>::parse(store.read_document(&index.digest).unwrap())
        .unwrap()
        .value()
        .clone();
    assert_eq!(index.manifests.len(), 1);
    RawDocument::<ImageManifest>::parse(store.read_document(&index.manifests[0].digest).unwrap())
        .unwrap()
        .value()
        .clone()
}

/// Unpack every layer of `m` into a fresh directory (with GNU tar).
fn unpack(root: &Path, m: &ImageManifest) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let store = Store::open(root).unwrap();
    for l in &m.layers {
        let path = store.blob_path(&l.digest);
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&path)
            .arg("-C")
            .arg(out.path())
            .status()
            .unwrap();
        assert!(st.success(), "tar -xf {}", path.display());
    }
    out
}

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

fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// A name no other test run uses.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("manifold-{tag}-{}-{nanos:x}", std::process::id())
}

/// Everything under `dir` (type, mode, owner, size, content digest, link target),
/// by relative path, without following symlinks.
fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let path = root.join(rel);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let what = if ft.is_symlink() {
            format!("link {}", std::fs::read_link(&path).unwrap().display())
        } else if ft.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            format!("file {}", Digest::sha256(&bytes))
        } else if ft.is_dir() {
            "dir".to_owned()
        } else {
            "other".to_owned()
        };
        out.insert(
            rel.to_owned(),
            format!(
                "{what} {:o} {}:{} {}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.size()
            ),
        );
        if ft.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                walk(root, &rel.join(e.unwrap().file_name()), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), &mut out);
    out
}

/// A host directory outside the state root, whose tree must not change. Hostile
/// links point into it.
struct Sentinel {
    dir: tempfile::TempDir,
    before: BTreeMap<PathBuf, String>,
}

impl Sentinel {
    /// A tree of `files` (path, content; a path ending in `/` is an empty dir).
    fn new(files: &[(&str, &str)]) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        for (p, content) in files {
            if let Some(d) = p.strip_suffix('/') {
                std::fs::create_dir_all(dir.path().join(d)).unwrap();
            } else {
                write(dir.path(), p, content);
            }
        }
        let before = snapshot_tree(dir.path());
        Sentinel { dir, before }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn s(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    #[track_caller]
    fn check(&self) {
        assert_eq!(
            snapshot_tree(self.path()),
            self.before,
            "the host tree {} changed",
            self.path().display()
        );
    }
}

/// Mount points strictly below `root`.
fn mounts_below(root: &Path) -> Vec<String> {
    let prefix = format!("{}/", root.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&prefix)))
        .map(str::to_owned)
        .collect()
}

/// No mounts, bundles or scratch dirs left behind by a finished build.
#[track_caller]
fn assert_clean(root: &Path) {
    assert!(mounts_below(root).is_empty(), "{:?}", mounts_below(root));
    for dir in ["bundles", "tmp"] {
        let p = root.join(dir);
        let left: Vec<_> = std::fs::read_dir(&p)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{} holds {left:?}", p.display());
    }
}

// Case 17: context symlinks are copied as symlinks, never followed on the client.
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

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A file's bytes, gunzipped when they are gzip.
fn decompressed(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return bytes;
    }
    let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success(), "gzip -dc {}", path.display());
    out.stdout
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

/// A `runc` wrapper that counts `runc run` calls in `counter`.
fn counting_runtime(dir: &Path, counter: &Path) -> PathBuf {
    let runc = testkit::require_tool("runc");
    let script = dir.join("counting-runc");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = run ] && echo run >> {}; done\nexec {} \"$@\"\n",
            counter.display(),
            runc.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn runs(counter: &Path) -> usize {
    std::fs::read_to_string(counter)
        .map(|s| s.lines().count())
        .unwrap_or(0)
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
    let runtime = counting_runtime(tools.path(), &counter);
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
        assert_eq!(runs(&counter), 0, "{run} {flags:?} started a container");
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
    assert_eq!(runs(&counter), 2);
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
