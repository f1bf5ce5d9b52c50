//! File ops against real trees: `COPY`/`ADD` semantics, ownership and modes, and
//! that no path of a tree leads outside it. Needs root for `chown` (the tests say so
//! when it is missing).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use builder::fileop::{FileOpError, SourceTree, apply};
use dockerfile::ignore::Matcher;
use graph::op::{Chmod, Copy, FileAction, Mkdir, Mkfile, Rm};
use tempfile::TempDir;

/// A source tree, a destination tree, and a directory outside both.
struct Fx {
    _tmp: TempDir,
    src: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
    ignore: Option<Arc<Matcher>>,
}

impl Fx {
    fn new() -> Fx {
        assert!(
            rustix::process::geteuid().is_root(),
            "the file op tests need root (chown)"
        );
        let tmp = TempDir::new().unwrap();
        let (src, dest, outside) = (
            tmp.path().join("src"),
            tmp.path().join("dest"),
            tmp.path().join("outside"),
        );
        for d in [&src, &dest, &outside] {
            fs::create_dir(d).unwrap();
        }
        Fx {
            _tmp: tmp,
            src,
            dest,
            outside,
            ignore: None,
        }
    }

    fn run(&self, actions: Vec<FileAction>) -> Result<(), FileOpError> {
        let tree = SourceTree {
            keep_owner: false,
            root: self.src.clone(),
            exclude: self.ignore.clone(),
        };
        apply(&self.dest, &actions, &[Some(tree)])
    }

    fn copy(&self, c: Copy) -> Result<(), FileOpError> {
        self.run(vec![FileAction::Copy(c)])
    }

    fn d(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }

    fn outside_is_empty(&self) -> bool {
        fs::read_dir(&self.outside).unwrap().next().is_none()
    }
}

/// An error and its causes, for failure messages.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

fn put(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

fn mode(p: impl AsRef<Path>) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn owner(p: impl AsRef<Path>) -> (u32, u32) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

fn mtime(p: impl AsRef<Path>) -> i64 {
    fs::symlink_metadata(p).unwrap().mtime()
}

fn set_mtime(p: &Path, secs: u64) {
    let f = fs::File::open(p).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// A `COPY src dest` as the Dockerfile frontend lowers it.
fn copy(src: &str, dest: &str) -> Copy {
    Copy {
        src: 0,
        src_path: src.to_owned(),
        dest: dest.to_owned(),
        chown: None,
        chmod: None,
        follow_symlinks: true,
        dir_contents_only: true,
        create_dest_path: true,
        allow_wildcard: true,
        allow_empty_wildcard: true,
        unpack: false,
        parents: false,
        include: Vec::new(),
        exclude: Vec::new(),
        created: None,
    }
}

#[test]
fn file_to_new_name_and_into_slash_dir() {
    let fx = Fx::new();
    put(&fx.src, "a.txt", "A");
    fs::set_permissions(fx.src.join("a.txt"), fs::Permissions::from_mode(0o751)).unwrap();
    set_mtime(&fx.src.join("a.txt"), 1_234_567);
    fx.copy(copy("/a.txt", "/b.txt")).unwrap();
    fx.copy(copy("/a.txt", "/x/y/")).unwrap();
    assert_eq!(read(fx.d("b.txt")), "A");
    assert_eq!(read(fx.d("x/y/a.txt")), "A");
    assert_eq!(mode(fx.d("x/y/a.txt")), 0o751, "mode is kept");
    assert_eq!(mtime(fx.d("x/y/a.txt")), 1_234_567, "mtime is kept");
    assert_eq!(mode(fx.d("x")), 0o755, "created parents are 0755");
    assert_eq!(owner(fx.d("b.txt")), (0, 0));
}

#[test]
fn file_onto_existing_dir_goes_inside_and_replaces_files() {
    let fx = Fx::new();
    put(&fx.src, "a.txt", "new");
    fs::create_dir(fx.d("d")).unwrap();
    put(&fx.dest, "f", "old");
    fx.copy(copy("/a.txt", "/d")).unwrap();
    fx.copy(copy("/a.txt", "/f")).unwrap();
    assert_eq!(read(fx.d("d/a.txt")), "new");
    assert_eq!(read(fx.d("f")), "new");
}

#[test]
fn dir_contents_only_copies_what_is_inside() {
    let fx = Fx::new();
    put(&fx.src, "bin/x", "x");
    put(&fx.src, "bin/y/z", "z");
    fs::create_dir_all(fx.d("usr/local/bin")).unwrap();
    fx.copy(copy("/bin", "/usr/local/bin/")).unwrap();
    assert_eq!(read(fx.d("usr/local/bin/x")), "x");
    assert_eq!(read(fx.d("usr/local/bin/y/z")), "z");
    assert!(!fx.d("usr/local/bin/bin").exists());

    // Without dir_contents_only an existing destination gets the directory itself.
    let mut c = copy("/bin", "/opt");
    c.dir_contents_only = false;
    fs::create_dir(fx.d("opt")).unwrap();
    fx.copy(c).unwrap();
    assert_eq!(read(fx.d("opt/bin/y/z")), "z");
}

#[test]
fn without_create_dest_path_the_parent_must_exist() {
    let fx = Fx::new();
    put(&fx.src, "a.txt", "A");
    let mut c = copy("/a.txt", "/no/where");
    c.create_dest_path = false;
    let err = fx.copy(c.clone()).unwrap_err();
    assert!(matches!(err, FileOpError::NoParent { .. }), "{err}");
    assert!(!fx.d("no").exists());
    c.dest = "/there".into();
    fx.copy(c).unwrap();
    assert_eq!(read(fx.d("there")), "A");
}

#[test]
fn copying_a_directory_onto_a_file_fails() {
    let fx = Fx::new();
    put(&fx.src, "dir/sub/f", "f");
    put(&fx.dest, "t/sub", "a file");
    let err = fx.copy(copy("/dir", "/t/")).unwrap_err();
    assert!(
        matches!(err, FileOpError::Conflict { ref path, .. } if path == "/t/sub"),
        "{err}"
    );
}

#[test]
fn a_large_tree_is_copied_whole_with_modes_times_and_links() {
    // Past the size where files are copied on several threads.
    let fx = Fx::new();
    for i in 0..300 {
        put(
            &fx.src,
            &format!("t/d{}/f{i:03}", i % 7),
            &format!("file {i}\n"),
        );
        let p = fx.src.join(format!("t/d{}/f{i:03}", i % 7));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600 + (i % 2) * 0o55)).unwrap();
        set_mtime(&p, 1_000_000 + i as u64);
    }
    symlink("d0/f000", fx.src.join("t/link")).unwrap();
    // Large enough to be flushed once copied.
    put(&fx.src, "t/big", &"b".repeat(17 << 20));
    fx.copy(copy("/t", "/out/")).unwrap();
    for i in 0..300u32 {
        let p = fx.d(&format!("out/d{}/f{i:03}", i % 7));
        assert_eq!(read(&p), format!("file {i}\n"));
        assert_eq!(mode(&p), 0o600 + (i % 2) * 0o55, "{}", p.display());
        assert_eq!(mtime(&p), 1_000_000 + i64::from(i), "{}", p.display());
        assert_eq!(owner(&p), (0, 0));
    }
    assert_eq!(
        fs::read_link(fx.d("out/link")).unwrap(),
        Path::new("d0/f000")
    );
    assert_eq!(
        fs::read(fx.d("out/big")).unwrap(),
        fs::read(fx.src.join("t/big")).unwrap()
    );
    assert_eq!(
        fs::read_dir(fx.d("out")).unwrap().count(),
        9,
        "7 dirs, the big file and the link"
    );
}

#[test]
fn a_large_copy_reports_its_first_conflict_and_stops() {
    let fx = Fx::new();
    // Four directories: four batches, copied on several threads.
    for i in 0..200 {
        put(&fx.src, &format!("t/d{}/f{i:03}", i / 50), "x");
    }
    // Two files of the plan meet directories in the destination.
    fs::create_dir_all(fx.d("out/d1/f060")).unwrap();
    fs::create_dir_all(fx.d("out/d3/f160")).unwrap();
    let err = fx.copy(copy("/t", "/out/")).unwrap_err();
    assert!(
        matches!(err, FileOpError::Conflict { ref path, .. } if path == "/out/d1/f060"),
        "{err}"
    );
    assert!(fx.d("out/d3/f160").is_dir() && fx.d("out/d1/f060").is_dir());
}

#[test]
fn wildcards_match_per_component() {
    let fx = Fx::new();
    put(&fx.src, "a.txt", "a");
    put(&fx.src, "b.txt", "b");
    put(&fx.src, "c.md", "c");
    put(&fx.src, "d1/f.txt", "1");
    put(&fx.src, "d2/f.txt", "2");
    fx.copy(copy("/*.txt", "/out")).unwrap();
    assert_eq!(
        read(fx.d("out/a.txt")),
        "a",
        "several sources: dest is a dir"
    );
    assert_eq!(read(fx.d("out/b.txt")), "b");
    assert!(!fx.d("out/c.md").exists());
    fx.copy(copy("/d[12]/f.tx?", "/one/")).unwrap();
    // Both are named f.txt; the last wins, as in BuildKit.
    assert_eq!(read(fx.d("one/f.txt")), "2");
}

#[test]
fn wildcard_without_match_fails_unless_allowed_and_missing_path_fails() {
    let fx = Fx::new();
    let mut c = copy("/*.none", "/out/");
    fx.copy(c.clone()).unwrap();
    assert!(!fx.d("out").exists(), "an empty match copies nothing");
    c.allow_empty_wildcard = false;
    let err = fx.copy(c).unwrap_err();
    assert!(matches!(err, FileOpError::NoMatch { .. }), "{err}");

    let err = fx.copy(copy("/missing.txt", "/")).unwrap_err();
    assert!(matches!(err, FileOpError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("/missing.txt"), "{err}");

    let err = fx.copy(copy("/[", "/")).unwrap_err();
    assert!(matches!(err, FileOpError::BadPattern { .. }), "{err}");
}

#[test]
fn chown_numeric_applies_to_copies_and_created_parents() {
    let fx = Fx::new();
    put(&fx.src, "dir/f", "f");
    let mut c = copy("/dir", "/app/");
    c.chown = Some("1000:1001".into());
    fx.copy(c).unwrap();
    assert_eq!(owner(fx.d("app")), (1000, 1001));
    assert_eq!(owner(fx.d("app/f")), (1000, 1001));
    let mut c = copy("/dir/f", "/g");
    c.chown = Some("1234".into());
    fx.copy(c).unwrap();
    assert_eq!(
        owner(fx.d("g")),
        (1234, 1234),
        "a uid alone is also the gid"
    );
}

#[test]
fn chown_names_resolve_in_the_destination() {
    let fx = Fx::new();
    put(&fx.src, "f", "f");
    // The source's passwd must not be read.
    put(&fx.src, "etc/passwd", "app:x:1:1::/:/bin/sh\n");
    put(
        &fx.dest,
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n",
    );
    put(&fx.dest, "etc/group", "root:x:0:\nstaff:x:3456:app\n");
    let mut c = copy("/f", "/a");
    c.chown = Some("app".into());
    fx.copy(c).unwrap();
    assert_eq!(owner(fx.d("a")), (1234, 2345));
    let mut c = copy("/f", "/b");
    c.chown = Some("app:staff".into());
    fx.copy(c).unwrap();
    assert_eq!(owner(fx.d("b")), (1234, 3456));
    let mut c = copy("/f", "/c");
    c.chown = Some("ghost".into());
    let err = fx.copy(c).unwrap_err();
    assert!(matches!(err, FileOpError::UnknownId { .. }), "{err}");
    assert!(err.to_string().contains("ghost"), "{err}");
    assert!(!fx.d("c").exists());
}

#[test]
fn chmod_octal_and_symbolic() {
    let fx = Fx::new();
    put(&fx.src, "bin/plain", "p");
    put(&fx.src, "bin/tool", "t");
    fs::set_permissions(fx.src.join("bin/plain"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(fx.src.join("bin/tool"), fs::Permissions::from_mode(0o700)).unwrap();
    put(&fx.src, "bin/sub/x", "x");
    fs::set_permissions(fx.src.join("bin/sub"), fs::Permissions::from_mode(0o700)).unwrap();

    let mut c = copy("/bin", "/oct/");
    c.chmod = Some(Chmod::Octal(0o640));
    fx.copy(c).unwrap();
    assert_eq!(mode(fx.d("oct/tool")), 0o640);
    assert_eq!(
        mode(fx.d("oct/sub")),
        0o640,
        "octal applies to directories too"
    );

    let mut c = copy("/bin", "/sym/");
    c.chmod = Some(Chmod::Symbolic("u=rwX,go=rX".into()));
    fx.copy(c).unwrap();
    assert_eq!(mode(fx.d("sym/plain")), 0o644);
    assert_eq!(mode(fx.d("sym/tool")), 0o755, "X for executables");
    assert_eq!(mode(fx.d("sym/sub")), 0o755, "X for directories");

    let mut c = copy("/bin/plain", "/plus");
    c.chmod = Some(Chmod::Symbolic("u+x,go=rX".into()));
    fx.copy(c).unwrap();
    assert_eq!(mode(fx.d("plus")), 0o744);

    let mut c = copy("/bin/plain", "/bad");
    c.chmod = Some(Chmod::Symbolic("u*x".into()));
    assert!(matches!(
        fx.copy(c).unwrap_err(),
        FileOpError::BadChmod { .. }
    ));
}

#[test]
fn created_sets_every_copied_mtime() {
    let fx = Fx::new();
    put(&fx.src, "d/e/f", "f");
    let mut c = copy("/d", "/out/");
    c.created = Some(1_000_000);
    fx.copy(c).unwrap();
    for p in ["out", "out/e", "out/e/f"] {
        assert_eq!(mtime(fx.d(p)), 1_000_000, "{p}");
    }
}

#[test]
fn dockerignored_paths_are_invisible() {
    let mut fx = Fx::new();
    put(&fx.src, "keep.txt", "k");
    put(&fx.src, "secret.txt", "s");
    put(&fx.src, "dir/public", "p");
    put(&fx.src, "dir/private", "x");
    put(&fx.src, "logs/a.log", "a");
    put(&fx.src, "logs/keep.log", "keep");
    fx.ignore = Some(Arc::new(
        Matcher::from_lines(["secret*", "dir/private", "logs", "!logs/keep.log"]).unwrap(),
    ));
    fx.copy(copy("/", "/ctx/")).unwrap();
    assert!(fx.d("ctx/keep.txt").exists());
    assert!(fx.d("ctx/dir/public").exists());
    assert!(!fx.d("ctx/secret.txt").exists());
    assert!(!fx.d("ctx/dir/private").exists());
    assert!(!fx.d("ctx/logs/a.log").exists());
    assert_eq!(read(fx.d("ctx/logs/keep.log")), "keep", "re-included");

    fx.copy(copy("/*.txt", "/w/")).unwrap();
    assert!(fx.d("w/keep.txt").exists());
    assert!(!fx.d("w/secret.txt").exists());

    let err = fx.copy(copy("/secret.txt", "/s")).unwrap_err();
    assert!(matches!(err, FileOpError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(".dockerignore"), "{err}");
}

#[test]
fn include_and_exclude_filter_below_the_source() {
    let fx = Fx::new();
    put(&fx.src, "a/x.go", "x");
    put(&fx.src, "a/x.md", "m");
    put(&fx.src, "b/y.go", "y");
    let mut c = copy("/", "/ex/");
    c.exclude = vec!["*/*.md".into()];
    fx.copy(c).unwrap();
    assert!(fx.d("ex/a/x.go").exists());
    assert!(!fx.d("ex/a/x.md").exists());

    // COPY --parents a/*.go /par/ lowers to src "/" with include "a/*.go".
    let mut c = copy("/", "/par/");
    c.parents = true;
    c.include = vec!["a/*.go".into()];
    fx.copy(c).unwrap();
    assert!(fx.d("par/a/x.go").exists());
    assert!(!fx.d("par/a/x.md").exists());
    assert!(
        !fx.d("par/b").exists(),
        "a directory with nothing included is left out"
    );
}

#[test]
fn symlinks_are_copied_as_symlinks_and_top_level_ones_followed() {
    let fx = Fx::new();
    put(&fx.src, "real/f", "f");
    symlink("real/f", fx.src.join("link")).unwrap();
    symlink("../real/f", fx.src.join("real/rel")).unwrap();
    fx.copy(copy("/link", "/followed")).unwrap();
    assert!(fs::symlink_metadata(fx.d("followed")).unwrap().is_file());
    assert_eq!(read(fx.d("followed")), "f");
    fx.copy(copy("/real", "/r/")).unwrap();
    assert_eq!(
        fs::read_link(fx.d("r/rel")).unwrap(),
        Path::new("../real/f"),
        "a symlink below the source is copied as is"
    );
    let mut c = copy("/link", "/kept");
    c.follow_symlinks = false;
    fx.copy(c).unwrap();
    assert_eq!(fs::read_link(fx.d("kept")).unwrap(), Path::new("real/f"));
}

#[test]
fn source_symlink_pointing_outside_is_not_followed_out() {
    let fx = Fx::new();
    put(&fx.outside, "secret", "host secret");
    let target = fx.outside.join("secret");
    symlink(&target, fx.src.join("abs")).unwrap();
    symlink(
        "../../../../../../../..".to_owned() + target.to_str().unwrap(),
        fx.src.join("rel"),
    )
    .unwrap();
    for name in ["/abs", "/rel"] {
        let err = fx.copy(copy(name, "/got")).unwrap_err();
        assert!(matches!(err, FileOpError::NotFound { .. }), "{name}: {err}");
    }
    assert!(!fx.d("got").exists());
    // A directory symlink on the way is resolved in the source tree too.
    symlink(&fx.outside, fx.src.join("dirlink")).unwrap();
    let err = fx.copy(copy("/dirlink/secret", "/got")).unwrap_err();
    assert!(matches!(err, FileOpError::NotFound { .. }), "{err}");
}

#[test]
fn destination_symlink_pointing_outside_stays_inside() {
    let fx = Fx::new();
    put(&fx.src, "a.txt", "A");
    let escape = format!("/../../..{}", fx.outside.display());
    symlink(&escape, fx.d("link")).unwrap();
    fx.copy(copy("/a.txt", "/link/")).unwrap();
    assert!(
        fx.outside_is_empty(),
        "nothing may be written outside the tree"
    );
    let inside = fx.dest.join(fx.outside.strip_prefix("/").unwrap());
    assert_eq!(
        read(inside.join("a.txt")),
        "A",
        "the link resolves in the root"
    );

    // A file symlink as the destination: followed in-root, never out.
    symlink(format!("{escape}/file"), fx.d("flink")).unwrap();
    fx.copy(copy("/a.txt", "/flink")).unwrap();
    fx.run(vec![FileAction::Mkfile(Mkfile {
        path: "/link/made".into(),
        data: "m".into(),
        mode: 0o600,
        chown: None,
        created: None,
    })])
    .unwrap();
    fx.run(vec![FileAction::Mkdir(Mkdir {
        path: "/link/newdir/sub".into(),
        mode: 0o755,
        make_parents: true,
        chown: None,
        created: None,
    })])
    .unwrap();
    assert!(
        fx.outside_is_empty(),
        "nothing may be written outside the tree"
    );
    assert_eq!(read(inside.join("file")), "A");
    assert_eq!(read(inside.join("made")), "m");
    assert!(inside.join("newdir/sub").is_dir());

    // A symlinked directory in the destination (merged /usr) is written through.
    fs::create_dir_all(fx.d("usr/lib")).unwrap();
    symlink("usr/lib", fx.d("lib")).unwrap();
    fx.copy(copy("/a.txt", "/lib/")).unwrap();
    assert_eq!(read(fx.d("usr/lib/a.txt")), "A");
    assert!(fs::symlink_metadata(fx.d("lib")).unwrap().is_symlink());
}

// --- ADD of local archives -------------------------------------------------------

/// A tar with `hello.txt`, `sub/x` (mode 0750, uid 42), a `../escape` entry, and a
/// symlink `evil -> /../../` followed by `evil/pwn`.
fn tar_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &[u8], data: &[u8], mode: u32, uid: u64| {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..path.len()].copy_from_slice(path);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(0);
        h.set_mtime(1_500_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    file(&mut b, b"hello.txt", b"hello", 0o644, 0);
    file(&mut b, b"sub/x", b"x", 0o750, 42);
    file(&mut b, b"../escape", b"escaped", 0o644, 0);
    file(&mut b, b"/abs", b"abs", 0o644, 0);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_path("evil").unwrap();
    h.set_link_name("/../../../../").unwrap();
    h.set_mode(0o777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    file(&mut b, b"evil/pwn", b"pwn", 0o644, 0);
    b.into_inner().unwrap()
}

fn compressed(kind: &str, tar: &[u8]) -> Vec<u8> {
    match kind {
        "tar" => tar.to_vec(),
        "gzip" | "zstd" => {
            let c = if kind == "gzip" {
                archive::Compression::GZIP
            } else {
                archive::Compression::ZSTD
            };
            let mut enc = archive::compress(Vec::new(), c).unwrap();
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        "bzip2" => {
            let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        "xz" => {
            let opts = lzma_rust2::XzOptions::with_preset(1);
            let mut enc = lzma_rust2::XzWriter::new(Vec::new(), opts).unwrap();
            enc.write_all(tar).unwrap();
            enc.finish().unwrap()
        }
        _ => unreachable!("{kind}"),
    }
}

#[test]
fn add_extracts_archives_of_every_format_in_root() {
    let tar = tar_bytes();
    for kind in ["tar", "gzip", "zstd", "bzip2", "xz"] {
        let fx = Fx::new();
        // The name says nothing: the bytes decide.
        fs::write(fx.src.join("archive.bin"), compressed(kind, &tar)).unwrap();
        let mut c = copy("/archive.bin", "/opt/");
        c.unpack = true;
        fx.copy(c)
            .unwrap_or_else(|e| panic!("{kind}: {}", chain(&e)));
        assert_eq!(read(fx.d("opt/hello.txt")), "hello", "{kind}");
        assert_eq!(read(fx.d("opt/sub/x")), "x", "{kind}");
        assert_eq!(mode(fx.d("opt/sub/x")), 0o750, "{kind}");
        assert_eq!(owner(fx.d("opt/sub/x")).0, 42, "{kind}: the tar's owner");
        assert_eq!(mtime(fx.d("opt/sub/x")), 1_500_000_000, "{kind}");
        assert_eq!(read(fx.d("opt/escape")), "escaped", "{kind}: `..` clamped");
        assert_eq!(read(fx.d("opt/abs")), "abs", "{kind}");
        assert_eq!(read(fx.d("opt/pwn")), "pwn", "{kind}: symlink clamped");
        assert!(!fx.d("escape").exists() && !fx.d("pwn").exists(), "{kind}");
        assert!(!fx.dest.parent().unwrap().join("escape").exists(), "{kind}");
        assert!(!fx.d("opt/archive.bin").exists(), "{kind}");
    }
}

#[test]
fn add_copies_non_archives_and_unpack_false_keeps_archives() {
    let fx = Fx::new();
    fs::write(fx.src.join("data.tar.gz"), b"not really a tarball").unwrap();
    let mut gz = archive::compress(Vec::new(), archive::Compression::GZIP).unwrap();
    gz.write_all(b"gzip, but no tar inside").unwrap();
    fs::write(fx.src.join("plain.gz"), gz.finish().unwrap()).unwrap();
    fs::write(fx.src.join("real.tar"), tar_bytes()).unwrap();
    for name in ["data.tar.gz", "plain.gz"] {
        let mut c = copy(&format!("/{name}"), "/add/");
        c.unpack = true;
        fx.copy(c).unwrap();
        assert!(
            fx.d("add").join(name).is_file(),
            "{name} is copied as a file"
        );
    }
    fx.copy(copy("/real.tar", "/keep/")).unwrap();
    assert!(fx.d("keep/real.tar").is_file());
    assert!(!fx.d("keep/hello.txt").exists());
}

// --- mkdir, mkfile, rm -------------------------------------------------------------

#[test]
fn mkdir_with_parents_owner_and_times() {
    let fx = Fx::new();
    fx.run(vec![FileAction::Mkdir(Mkdir {
        path: "/home/app".into(),
        mode: 0o750,
        make_parents: true,
        chown: Some("1000:1000".into()),
        created: Some(77),
    })])
    .unwrap();
    assert_eq!(mode(fx.d("home/app")), 0o750);
    assert_eq!(owner(fx.d("home/app")), (1000, 1000));
    assert_eq!(owner(fx.d("home")), (1000, 1000));
    assert_eq!(mtime(fx.d("home")), 77);
    // An existing directory is kept as it is.
    fx.run(vec![FileAction::Mkdir(Mkdir {
        path: "/home/app".into(),
        mode: 0o700,
        make_parents: false,
        chown: None,
        created: None,
    })])
    .unwrap();
    assert_eq!(mode(fx.d("home/app")), 0o750);
    let err = fx
        .run(vec![FileAction::Mkdir(Mkdir {
            path: "/no/such/dir".into(),
            mode: 0o755,
            make_parents: false,
            chown: None,
            created: None,
        })])
        .unwrap_err();
    assert!(matches!(err, FileOpError::NoParent { .. }), "{err}");
    assert!(err.to_string().contains("/no/such/dir"), "{err}");
}

#[test]
fn mkfile_writes_data_mode_owner_and_time() {
    let fx = Fx::new();
    fx.run(vec![FileAction::Mkfile(Mkfile {
        path: "/EOF".into(),
        data: "hello world\n".into(),
        mode: 0o640,
        chown: Some("5:6".into()),
        created: Some(99),
    })])
    .unwrap();
    assert_eq!(read(fx.d("EOF")), "hello world\n");
    assert_eq!(mode(fx.d("EOF")), 0o640);
    assert_eq!(owner(fx.d("EOF")), (5, 6));
    assert_eq!(mtime(fx.d("EOF")), 99);
}

#[test]
fn rm_plain_missing_and_wildcard() {
    let fx = Fx::new();
    put(&fx.dest, "a.log", "a");
    put(&fx.dest, "b.log", "b");
    put(&fx.dest, "dir/f", "f");
    put(&fx.outside, "keep", "k");
    symlink(&fx.outside, fx.d("out")).unwrap();
    let rm = |path: &str, allow_not_found: bool, allow_wildcard: bool| {
        FileAction::Rm(Rm {
            path: path.into(),
            allow_not_found,
            allow_wildcard,
        })
    };
    fx.run(vec![rm("/dir", false, false)]).unwrap();
    assert!(!fx.d("dir").exists());
    fx.run(vec![rm("/*.log", false, true)]).unwrap();
    assert!(!fx.d("a.log").exists() && !fx.d("b.log").exists());
    let err = fx.run(vec![rm("/gone", false, false)]).unwrap_err();
    assert!(matches!(err, FileOpError::RmNotFound { .. }), "{err}");
    fx.run(vec![rm("/gone", true, false)]).unwrap();
    // Removing through a symlink pointing outside removes nothing outside.
    fx.run(vec![rm("/out/keep", true, false)]).unwrap();
    fx.run(vec![rm("/out", false, false)]).unwrap();
    assert_eq!(read(fx.outside.join("keep")), "k");
    assert!(fs::symlink_metadata(fx.d("out")).is_err());
}

#[test]
fn missing_input_is_an_error() {
    let fx = Fx::new();
    let mut c = copy("/a", "/b");
    c.src = 3;
    let err = fx.copy(c).unwrap_err();
    assert!(matches!(err, FileOpError::NoSource { index: 3 }), "{err}");
}

/// The value of xattr `name` of `p` (not following a symlink), if set.
fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(p, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn extended_attributes_are_copied_after_the_owner_and_mode() {
    let fx = Fx::new();
    put(&fx.src, "tagged.txt", "with xattrs");
    put(&fx.src, "plain.txt", "without");
    put(&fx.src, "dir/inner.txt", "inner");
    let set = |p: &Path, name: &str, value: &[u8]| {
        rustix::fs::setxattr(p, name, value, rustix::fs::XattrFlags::empty())
            .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", p.display()));
    };
    set(&fx.src.join("tagged.txt"), "user.origin", b"context");
    set(&fx.src.join("tagged.txt"), "user.empty", b"");
    set(&fx.src.join("dir"), "user.kind", b"a directory");
    fs::set_permissions(
        fx.src.join("tagged.txt"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fx.copy(copy("/", "/out/")).unwrap();
    let out = fx.dest.join("out");
    let tagged = out.join("tagged.txt");
    assert_eq!(
        xattr(&tagged, "user.origin").as_deref(),
        Some(&b"context"[..])
    );
    assert_eq!(xattr(&tagged, "user.empty").as_deref(), Some(&b""[..]));
    // The mode survives the owner change (chown clears setuid).
    assert_eq!(mode(&tagged) & 0o7777, 0o4755);
    assert_eq!(xattr(&out.join("plain.txt"), "user.origin"), None);
    assert_eq!(
        xattr(&out.join("dir"), "user.kind").as_deref(),
        Some(&b"a directory"[..])
    );
    assert_eq!(read(out.join("dir/inner.txt")), "inner");
}
