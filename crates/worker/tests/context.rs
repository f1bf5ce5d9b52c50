//! The build context index: content-hashed, re-checked from stamps, ignore files
//! applied, symlinks never followed.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use ignore::Matcher;
use worker::context::{Index, Kind, scan};

fn tree(dir: &Path) {
    fs::create_dir_all(dir.join("src/deep")).unwrap();
    fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    fs::write(dir.join("src/main.c"), "int main(){}\n").unwrap();
    fs::write(dir.join("src/deep/data.txt"), "x".repeat(10_000)).unwrap();
    fs::write(dir.join("notes.log"), "noise").unwrap();
}

#[test]
fn an_unchanged_context_is_rechecked_without_reading_files() {
    let ctx = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    tree(ctx.path());
    let mut index = Index::open(state.path(), ctx.path());
    let first = scan(ctx.path(), None, &mut index).unwrap();
    assert_eq!(first.hashed, 4);
    index.save().unwrap();

    let mut index = Index::open(state.path(), ctx.path());
    let again = scan(ctx.path(), None, &mut index).unwrap();
    assert_eq!(again.hashed, 0, "stamps unchanged: nothing read");
    assert_eq!(again.digest, first.digest);
    assert!(first.changed(&again).is_empty());
}

#[test]
fn a_rewrite_that_keeps_size_and_mtime_is_still_seen() {
    let ctx = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    tree(ctx.path());
    let mut index = Index::open(state.path(), ctx.path());
    let before = scan(ctx.path(), None, &mut index).unwrap();
    let file = ctx.path().join("src/main.c");
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();
    fs::write(&file, "int main(){1}").unwrap(); // same length
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = scan(ctx.path(), None, &mut index).unwrap();
    assert_eq!(after.hashed, 1, "only the rewritten file is read");
    assert_ne!(after.digest, before.digest);
    assert_eq!(
        before.changed(&after),
        ["src/main.c"],
        "the change names the file"
    );
}

#[test]
fn ignore_patterns_keep_files_out_of_the_context_and_its_digest() {
    let ctx = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    tree(ctx.path());
    let m = Matcher::from_lines(["*.log", "src/deep", "!src/deep/data.txt"]).unwrap();
    let mut index = Index::open(state.path(), ctx.path());
    let c = scan(ctx.path(), Some(&m), &mut index).unwrap();
    let paths: Vec<&str> = c.entries.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        ["Dockerfile", "src", "src/deep/data.txt", "src/main.c"]
    );
    // Changing an ignored file changes nothing.
    fs::write(ctx.path().join("notes.log"), "more noise").unwrap();
    let again = scan(ctx.path(), Some(&m), &mut index).unwrap();
    assert_eq!(again.digest, c.digest);
    assert_eq!(again.hashed, 0);
}

/// SECURITY-CASES 17: context symlinks are recorded, never followed.
#[test]
fn symlinks_out_of_the_context_are_recorded_not_followed() {
    let ctx = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    fs::create_dir(ctx.path().join("sub")).unwrap();
    symlink("/etc/passwd", ctx.path().join("foo")).unwrap();
    symlink("../../../etc/group", ctx.path().join("sub/bar")).unwrap();
    let mut index = Index::open(state.path(), ctx.path());
    let c = scan(ctx.path(), None, &mut index).unwrap();
    assert_eq!(c.hashed, 0, "no file outside the context was read");
    assert_eq!(
        c.entries["foo"].kind,
        Kind::Symlink {
            target: "/etc/passwd".into()
        }
    );
    assert_eq!(
        c.entries["sub/bar"].kind,
        Kind::Symlink {
            target: "../../../etc/group".into()
        }
    );
}

#[test]
fn a_corrupt_index_is_rebuilt() {
    let ctx = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    tree(ctx.path());
    let mut index = Index::open(state.path(), ctx.path());
    let first = scan(ctx.path(), None, &mut index).unwrap();
    index.save().unwrap();
    for e in fs::read_dir(state.path()).unwrap() {
        fs::write(e.unwrap().path(), b"{torn").unwrap();
    }
    let mut index = Index::open(state.path(), ctx.path());
    let again = scan(ctx.path(), None, &mut index).unwrap();
    assert_eq!(again.hashed, 4, "everything read again");
    assert_eq!(again.digest, first.digest);
}

#[test]
fn mode_changes_change_the_digest() {
    use std::os::unix::fs::PermissionsExt;
    let ctx = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    tree(ctx.path());
    let mut index = Index::open(state.path(), ctx.path());
    let before = scan(ctx.path(), None, &mut index).unwrap();
    fs::set_permissions(
        ctx.path().join("src/main.c"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let after = scan(ctx.path(), None, &mut index).unwrap();
    assert_ne!(before.digest, after.digest);
    assert_eq!(before.changed(&after), ["src/main.c"]);
}

#[test]
fn files_hashed_in_parallel_each_get_their_own_digest() {
    let ctx = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // Sizes around the 1 MiB read buffer, so buffers are reused across files.
    let sizes = [0usize, 1, 4095, 1 << 20, (1 << 20) + 1, 3 << 19, 77];
    for i in 0..60 {
        let size = sizes[i % sizes.len()];
        let body: Vec<u8> = (0..size).map(|j| (i * 31 + j * 7) as u8).collect();
        fs::create_dir_all(ctx.path().join(format!("d{}", i % 5))).unwrap();
        fs::write(ctx.path().join(format!("d{}/f{i}", i % 5)), body).unwrap();
    }
    let mut index = Index::open(state.path(), ctx.path());
    let c = scan(ctx.path(), None, &mut index).unwrap();
    assert_eq!(c.hashed, 60);
    for i in 0..60 {
        let rel = format!("d{}/f{i}", i % 5);
        let body = fs::read(ctx.path().join(&rel)).unwrap();
        match &c.entries[&rel].kind {
            Kind::File { digest, size } => {
                assert_eq!(*digest, oci::Digest::sha256(&body), "{rel}");
                assert_eq!(*size, body.len() as u64);
            }
            other => panic!("{rel}: {other:?}"),
        }
    }
    // The index holds the same digests: a second scan reads nothing and agrees.
    index.save().unwrap();
    let mut index = Index::open(state.path(), ctx.path());
    let again = scan(ctx.path(), None, &mut index).unwrap();
    assert_eq!(again.hashed, 0);
    assert_eq!(again.digest, c.digest);
}
