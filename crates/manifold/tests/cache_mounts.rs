//! `RUN --mount=type=cache`: a cache seeded `from=` a stage, its owner and mode, and
//! the three sharing modes, each a real build with real runc on a busybox base.
//! The result is read back through `-o type=local`. Needs root.

mod common;

use std::path::Path;
use std::process::Output;

use common::{BASE, manifold, ok, read, root_with_base};

/// `manifold build -o type=local,dest=OUT CTX` on a state root holding [`BASE`].
fn build_local(root: &Path, ctx: &Path, out: &Path) -> Output {
    let dest = format!("type=local,dest={}", out.display());
    let ctx = ctx.to_str().unwrap();
    manifold(root, &["build", "--progress=plain", "-o", &dest, ctx])
}

/// Build `dockerfile` on a fresh root; the root (for its cache mounts) and the
/// final stage's files.
fn run(dockerfile: &str) -> (tempfile::TempDir, tempfile::TempDir) {
    testkit::require_root_and_runc();
    let root = root_with_base();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let out = tempfile::tempdir().unwrap();
    ok(&build_local(root.path(), ctx.path(), out.path()));
    (root, out)
}

/// The directories under `<root>/cache-mounts`.
fn cache_dirs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("cache-mounts"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_cache_from_a_stage_starts_as_a_copy_of_it_and_then_persists() {
    let (root, out) = run(&format!(
        "FROM {BASE} AS seed\n\
         RUN mkdir -p /s/sub && echo seeded > /s/sub/a && ln -s /etc/passwd /s/link \
             && chown -R 123:456 /s && chmod 750 /s\n\
         FROM {BASE}\n\
         RUN --mount=type=cache,id=seeded,from=seed,source=/s,target=/c \
             cat /c/sub/a > /a.txt && stat -c '%u:%g %a' /c > /owner.txt \
             && readlink /c/link > /link.txt && echo more > /c/added\n\
         RUN --mount=type=cache,id=seeded,from=seed,source=/s,target=/c \
             cat /c/added > /added.txt && ls /c > /listing.txt\n"
    ));
    assert_eq!(read(out.path(), "a.txt"), "seeded\n");
    assert_eq!(read(out.path(), "owner.txt"), "123:456 750\n");
    // The seed's symlink is copied as a link, never followed.
    assert_eq!(read(out.path(), "link.txt"), "/etc/passwd\n");
    // The second step got the same cache, with what the first one left.
    assert_eq!(read(out.path(), "added.txt"), "more\n");
    assert_eq!(read(out.path(), "listing.txt"), "added\nlink\nsub\n");
    // One cache, and no temporary copy left beside it.
    assert_eq!(
        cache_dirs(root.path()).len(),
        1,
        "{:?}",
        cache_dirs(root.path())
    );
}

#[test]
fn a_new_cache_takes_uid_gid_and_mode() {
    let (_root, out) = run(&format!(
        "FROM {BASE}\n\
         RUN --mount=type=cache,id=owned,uid=1000,gid=2000,mode=0700,target=/o \
             stat -c '%u:%g %a' /o > /o.txt\n"
    ));
    assert_eq!(read(out.path(), "o.txt"), "1000:2000 700\n");
}

/// Two stages that each write `/c/who`, then wait for each other (through a shared
/// rendezvous cache, up to 20 s) while holding the cache `id` mounted with
/// `sharing`, then read `/c/who` back; the final image holds what each read.
fn two_at_once(sharing: &str) -> (tempfile::TempDir, String, String) {
    let step = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=meet,target=/meet \
                 --mount=type=cache,id=under-test,sharing={sharing},target=/c \
                 echo {me} > /c/who && touch /meet/{me} \
                 && i=0; while [ ! -e /meet/{other} ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
                 [ -e /meet/{other} ] || {{ echo 'the other step never came' >&2; exit 1; }}; \
                 sleep 0.5; cat /c/who > /who\n"
        )
    };
    let (root, out) = run(&format!(
        "FROM {BASE} AS a\n{}\
         FROM {BASE} AS b\n{}\
         FROM {BASE}\n\
         COPY --from=a /who /a\n\
         COPY --from=b /who /b\n",
        step("a", "b"),
        step("b", "a"),
    ));
    let (a, b) = (read(out.path(), "a"), read(out.path(), "b"));
    (root, a, b)
}

#[test]
fn private_caches_give_steps_running_at_once_an_instance_each() {
    let (root, a, b) = two_at_once("private");
    assert_eq!((a.as_str(), b.as_str()), ("a\n", "b\n"));
    // The rendezvous cache, and two instances of the private one.
    let dirs = cache_dirs(root.path());
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    assert!(
        dirs.iter().any(|d| d.ends_with("-1")),
        "no second instance: {dirs:?}"
    );
}

#[test]
fn shared_caches_are_one_directory_for_steps_running_at_once() {
    // The contrast for the test above: both steps see the last write.
    let (root, a, b) = two_at_once("shared");
    assert_eq!(a, b);
    assert_eq!(cache_dirs(root.path()).len(), 2);
}

#[test]
fn locked_caches_let_one_step_at_a_time_in() {
    let step = |me: &str| {
        format!(
            "RUN --mount=type=cache,id=log,sharing=locked,target=/c \
                 echo start {me} >> /c/log && sleep 1 && echo end {me} >> /c/log && touch /done\n"
        )
    };
    let (_root, out) = run(&format!(
        "FROM {BASE} AS a\n{}\
         FROM {BASE} AS b\n{}\
         FROM {BASE}\n\
         COPY --from=a /done /a\n\
         COPY --from=b /done /b\n\
         RUN --mount=type=cache,id=log,sharing=locked,target=/c cp /c/log /log\n",
        step("a"),
        step("b"),
    ));
    let log = read(out.path(), "log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    for pair in lines.chunks(2) {
        let who = pair[0].strip_prefix("start ").expect(&log);
        assert_eq!(pair[1], format!("end {who}"), "steps interleaved:\n{log}");
    }
}
