//! SECURITY-CASES section A, cases A.1–A.9 and A.16 (A.10–A.15 are in security_stream.rs), each against both
//! resolvers where resolution matters. Every test checks that nothing outside the
//! root changed.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use archive::{ApplyOptions, ArchiveError};
use common::{H, MODES, Sandbox, Tar, assert_err_mentions, require_root};
use tar::EntryType;

fn opts() -> ApplyOptions {
    common::privileged_or_namespaced()
}

/// Every case again as a rootless build applies layers: root of a user namespace.
#[test]
fn every_case_holds_as_root_of_a_user_namespace() {
    common::rerun_in_a_user_namespace("every_case_holds_as_root_of_a_user_namespace");
}

#[test]
fn a01_dotdot_and_absolute_entry_names_are_clamped_into_the_root() {
    require_root();
    for mode in MODES {
        let sb = Sandbox::new();
        let tar = Tar::new()
            .file("../../etc/x", b"x")
            .file("/etc/y", b"y")
            .file("a/../../z", b"z")
            .file("../outside/victim", b"overwritten?")
            .finish();
        sb.apply(mode, &tar, &opts())
            .expect("clamped entries apply");
        assert_eq!(fs::read(sb.at("etc/x")).unwrap(), b"x", "{mode:?}");
        assert_eq!(fs::read(sb.at("etc/y")).unwrap(), b"y");
        assert_eq!(fs::read(sb.at("z")).unwrap(), b"z");
        assert_eq!(fs::read(sb.at("outside/victim")).unwrap(), b"overwritten?");
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a02_symlink_up_and_out_then_child_lands_in_the_root() {
    require_root();
    for mode in MODES {
        let sb = Sandbox::new();
        let tar = Tar::new()
            .symlink("l", "../../..")
            .file("l/x", b"x")
            .symlink("m", "../outside/nonexistent/deeper")
            .file("m/newdir/f", b"f")
            .finish();
        sb.apply(mode, &tar, &opts())
            .expect("clamped symlinks apply");
        assert_eq!(fs::read(sb.at("x")).unwrap(), b"x", "{mode:?}");
        assert_eq!(
            fs::read(sb.at("outside/nonexistent/deeper/newdir/f")).unwrap(),
            b"f"
        );
        assert!(
            fs::symlink_metadata(sb.at("l"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a03_entry_through_absolute_symlinked_dir_succeeds_inside_the_root() {
    require_root();
    for mode in MODES {
        let sb = Sandbox::new();
        let abs = sb.outside_abs();
        let tar = Tar::new()
            .dir("var/", 0o755)
            .symlink("var/run", "/run")
            .file("var/run/a/b", b"b")
            .symlink("s", &abs)
            .file("s/pwn", b"pwn")
            .finish();
        sb.apply(mode, &tar, &opts())
            .expect("absolute symlinked dirs are followed in-root");
        assert_eq!(fs::read(sb.at("run/a/b")).unwrap(), b"b", "{mode:?}");
        let inside = sb.root.join(abs.trim_start_matches('/')).join("pwn");
        assert_eq!(fs::read(inside).unwrap(), b"pwn");
        assert!(!sb.outside.join("pwn").exists());
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a04_hardlinks_resolve_to_in_root_files_and_dangling_ones_fail() {
    require_root();
    for mode in MODES {
        let sb = Sandbox::new();
        fs::create_dir(sb.at("etc")).unwrap();
        fs::write(sb.at("etc/passwd"), "inside").unwrap();
        let abs = format!("{}/etc", sb.outside_abs());
        fs::create_dir_all(sb.root.join(abs.trim_start_matches('/'))).unwrap();
        fs::write(
            sb.root.join(abs.trim_start_matches('/')).join("passwd"),
            "in-root copy",
        )
        .unwrap();
        let tar = Tar::new()
            .hardlink("h1", "../../etc/passwd")
            .hardlink("h2", "/etc/passwd")
            .symlink("abs", "/etc")
            .hardlink("h3", "abs/passwd")
            .symlink("out", &abs)
            .hardlink("h4", "out/passwd")
            .finish();
        sb.apply(mode, &tar, &opts())
            .expect("in-root hardlinks apply");
        let ino = fs::metadata(sb.at("etc/passwd")).unwrap().ino();
        for h in ["h1", "h2", "h3"] {
            assert_eq!(
                fs::symlink_metadata(sb.at(h)).unwrap().ino(),
                ino,
                "{h} {mode:?}"
            );
        }
        assert_eq!(fs::read(sb.at("h4")).unwrap(), b"in-root copy");
        assert_ne!(
            fs::metadata(sb.at("h1")).unwrap().ino(),
            fs::metadata("/etc/passwd").unwrap().ino()
        );

        let dangling = Tar::new().hardlink("h5", "no/such/file").finish();
        let err = sb.apply(mode, &dangling, &opts()).unwrap_err();
        assert!(matches!(err, ArchiveError::Hardlink { .. }), "{err}");
        assert_err_mentions(&err, &["h5", "no/such/file", "does not exist"]);
        assert!(!sb.at("h5").exists());
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a05_regular_file_after_a_link_replaces_the_link_not_its_target() {
    require_root();
    for mode in MODES {
        let sb = Sandbox::new();
        fs::write(sb.at("orig"), "orig").unwrap();
        let target = format!("{}/target", sb.outside_abs());
        let tar = Tar::new()
            .symlink("f", &target)
            .file("f", b"new")
            .symlink("rel", "../outside/victim")
            .file("rel", b"new2")
            .hardlink("g", "orig")
            .file("g", b"new3")
            .finish();
        sb.apply(mode, &tar, &opts())
            .expect("replacing links applies");
        for (name, want) in [("f", "new"), ("rel", "new2"), ("g", "new3")] {
            let m = fs::symlink_metadata(sb.at(name)).unwrap();
            assert!(m.file_type().is_file(), "{name} is a regular file");
            assert_eq!(fs::read_to_string(sb.at(name)).unwrap(), want);
        }
        assert_eq!(
            fs::read_to_string(sb.at("orig")).unwrap(),
            "orig",
            "{mode:?}"
        );
        assert_eq!(fs::metadata(sb.at("orig")).unwrap().nlink(), 1);
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a06_directory_entry_over_an_outward_symlink_changes_nothing_outside() {
    require_root();
    for mode in MODES {
        let sb = Sandbox::new();
        let abs = sb.outside_abs();
        let mut t = Tar::new();
        t.symlink("d", &abs).symlink("e", "../outside/sub");
        for name in ["d/", "e"] {
            t.pax(&[("SCHILY.xattr.user.evil", b"1")]).header(H {
                mode: 0o777,
                mtime: 1234,
                uid: 4242,
                ..H::new(name.as_bytes(), EntryType::Directory)
            });
        }
        sb.apply(mode, &t.finish(), &opts())
            .expect("dir entries replace symlinks");
        for name in ["d", "e"] {
            let m = fs::symlink_metadata(sb.at(name)).unwrap();
            assert!(m.is_dir(), "{name} became a directory ({mode:?})");
            assert_eq!(m.mode() & 0o7777, 0o777);
            assert_eq!((m.mtime(), m.uid()), (1234, 4242));
        }
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a07_root_named_entries_must_be_directories() {
    require_root();
    for mode in MODES {
        for name in [".", "./", "/"] {
            for kind in ["symlink", "file"] {
                let sb = Sandbox::new();
                let mut t = Tar::new();
                if kind == "symlink" {
                    t.symlink(name, &sb.outside_abs());
                } else {
                    t.file(name, b"x");
                }
                let err = sb.apply(mode, &t.finish(), &opts()).unwrap_err();
                assert!(
                    matches!(err, ArchiveError::RootEntry { .. }),
                    "{name} {kind}: {err}"
                );
                assert_err_mentions(&err, &[&format!("{name:?}"), "root directory"]);
                assert!(fs::symlink_metadata(&sb.root).unwrap().is_dir());
                sb.assert_outside_unchanged();
            }
        }
        let sb = Sandbox::new();
        sb.apply(mode, &Tar::new().dir("./", 0o750).finish(), &opts())
            .expect("./ as a dir is fine");
        assert_eq!(fs::metadata(&sb.root).unwrap().mode() & 0o7777, 0o750);
    }
}

#[test]
fn a08_invalid_whiteouts_are_refused() {
    require_root();
    for name in [".wh..", ".wh...", "x/.wh..", ".wh."] {
        let sb = Sandbox::new();
        let err = sb
            .apply(MODES[0], &Tar::new().file(name, b"").finish(), &opts())
            .unwrap_err();
        assert!(
            matches!(err, ArchiveError::InvalidWhiteout { .. }),
            "{name}: {err}"
        );
        assert_err_mentions(&err, &[name]);
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a08_whiteout_through_symlinked_parent_stays_in_the_root() {
    require_root();
    for mode in MODES {
        let sb = Sandbox::new();
        fs::create_dir(sb.at("real")).unwrap();
        fs::write(sb.at("real/victim"), "v").unwrap();
        let tar = Tar::new()
            .symlink("p", &sb.outside_abs())
            .file("p/.wh.victim", b"")
            .symlink("up", "../outside")
            .file("up/.wh.victim", b"")
            .file("up/.wh..wh..opq", b"")
            .symlink("q", "real")
            .file("q/.wh.victim", b"")
            .finish();
        let stats = sb.apply(mode, &tar, &opts()).expect("whiteouts apply");
        assert_eq!(stats.whiteouts, 3);
        assert!(!sb.at("real/victim").exists(), "{mode:?}");
        assert!(
            sb.at("outside").is_dir(),
            "the opaque marker made an in-root dir"
        );
        sb.assert_outside_unchanged();
    }
}

#[test]
fn a08_many_opaque_markers_take_linear_time() {
    require_root();
    let sb = Sandbox::new();
    fs::create_dir(sb.at("d")).unwrap();
    for i in 0..2000 {
        fs::write(sb.at(&format!("d/lower{i}")), "").unwrap();
    }
    let mut t = Tar::new();
    t.dir("d/", 0o755);
    for i in 0..2000 {
        t.file(&format!("d/new{i}"), b"");
    }
    for _ in 0..100_000 {
        t.file("d/.wh..wh..opq", b"");
    }
    let start = Instant::now();
    let stats = sb
        .apply(MODES[0], &t.finish(), &opts())
        .expect("opaque markers apply");
    assert_eq!(stats.opaque_dirs, 100_000);
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
    let names = fs::read_dir(sb.at("d")).unwrap().count();
    assert_eq!(names, 2000, "lower files gone, this layer's kept");
    assert!(sb.at("d/new1999").exists() && !sb.at("d/lower0").exists());
    sb.assert_outside_unchanged();
}

#[test]
fn a09_duplicate_paths_are_last_wins_and_counted() {
    require_root();
    let sb = Sandbox::new();
    let tar = Tar::new()
        .file("a", b"1")
        .file("a", b"2")
        .dir("d/", 0o755)
        .file("d/child", b"c")
        .file("d", b"now a file")
        .symlink("s", "a")
        .dir("s/", 0o700)
        .finish();
    let stats = sb.apply(MODES[0], &tar, &opts()).unwrap();
    assert_eq!(stats.duplicates, 3);
    assert_eq!(fs::read(sb.at("a")).unwrap(), b"2");
    assert_eq!(fs::read(sb.at("d")).unwrap(), b"now a file");
    assert!(fs::symlink_metadata(sb.at("s")).unwrap().is_dir());

    let dup = [
        archive::Change::Delete("x".into()),
        archive::Change::Add(archive::Entry {
            path: ".wh.x".into(),
            kind: archive::EntryKind::Fifo,
            meta: archive::Metadata::default(),
        }),
    ];
    let err = archive::write_layer(Vec::new(), dup, &archive::WriteOptions::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::DuplicatePath { .. }), "{err}");
    assert_err_mentions(&err, &[".wh.x"]);
    sb.assert_outside_unchanged();
}

#[test]
fn a16_concurrent_swap_of_a_dir_for_a_symlink_never_escapes() {
    require_root();
    for mode in MODES {
        let sb = Sandbox::new();
        fs::create_dir(sb.at("d")).unwrap();
        symlink(sb.outside_abs(), sb.at("evil")).unwrap();
        let mut t = Tar::new();
        for i in 0..3000 {
            t.file(&format!("d/f{i}"), b"x")
                .dir(&format!("d/sub{i}/"), 0o777);
        }
        let tar = t.finish();
        let racer = Racer::start(root_fd(&sb.root));
        // An apply raced when at least one whole exchange happened while it
        // ran: two swaps counted during it, the second begun after it began.
        // How many applies that takes depends on the scheduler, not on the
        // machine's speed, so apply until enough did (bounded, not timed).
        let (mut raced, mut applies) = (0, 0);
        while raced < RACED_APPLIES && applies < MAX_APPLIES {
            let before = racer.swaps();
            // Errors are fine (a path may vanish mid-way); escapes are not.
            let _ = sb.apply(mode, &tar, &opts());
            applies += 1;
            if racer.swaps() - before >= 2 {
                raced += 1;
            }
        }
        racer.stop();
        assert_eq!(
            raced, RACED_APPLIES,
            "{mode:?}: only {raced} of {applies} applies ran while the racer swapped"
        );
        sb.assert_outside_unchanged();
    }
}

/// Applies that must have run while `d` and `evil` were being swapped.
const RACED_APPLIES: u32 = 5;
/// Applies tried before deciding the racer never got to run beside one.
const MAX_APPLIES: u32 = 200;

/// A thread exchanging the names `d` and `evil` in a root until stopped,
/// counting the exchanges that succeeded.
struct Racer {
    swaps: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Racer {
    /// Returns once the first exchange has happened.
    fn start(root: std::os::fd::OwnedFd) -> Racer {
        let swaps = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (swaps, stop) = (swaps.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let swapped = rustix::fs::renameat_with(
                        &root,
                        "d",
                        &root,
                        "evil",
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                    match swapped {
                        Ok(()) => {
                            swaps.fetch_add(1, Ordering::SeqCst);
                        }
                        // Both names always exist: only an apply may get in the way.
                        Err(e) => assert!(
                            swaps.load(Ordering::SeqCst) > 0,
                            "exchanging d and evil before any apply: {e}"
                        ),
                    }
                }
            })
        };
        let racer = Racer {
            swaps,
            stop,
            thread,
        };
        while racer.swaps() == 0 {
            assert!(
                !racer.thread.is_finished(),
                "the racer stopped before its first swap"
            );
            std::thread::yield_now();
        }
        racer
    }

    fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::SeqCst)
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the racer does not panic");
    }
}

/// The racer swaps names relative to an fd of the root directory itself.
fn root_fd(root: &std::path::Path) -> std::os::fd::OwnedFd {
    rustix::fs::open(
        root,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap()
}
