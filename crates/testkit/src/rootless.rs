//! Running manifold as an unprivileged user, as the rootless tests do.
//!
//! `scripts/setup.sh` creates the users: `manifold-rootless` with a subordinate id range
//! in `/etc/subuid` and `/etc/subgid`, and `manifold-nosub` without one. A test (as
//! root) makes a [`User`]: a work directory the user owns, and a world-readable copy of
//! the binary (the checkout may sit under a 0700 home). Commands run through
//! `setpriv` with the user's ids and groups, a clean environment, `HOME` in the work
//! directory and no `XDG_RUNTIME_DIR` (manifold's fallback, `/tmp/manifold-<uid>`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The user with a subordinate id range.
pub const WITH_SUBUIDS: &str = "manifold-rootless";
/// The user without one.
pub const WITHOUT_SUBUIDS: &str = "manifold-nosub";

/// An unprivileged user for one test.
#[derive(Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    work: tempfile::TempDir,
    exe: PathBuf,
}

fn id_of(name: &str, flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, name])
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "the test user {name} does not exist: run scripts/setup.sh (it creates it)"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a numeric id")
}

impl User {
    /// `name` (created by setup.sh), with a fresh work directory and a copy of
    /// `manifold` (or another program: a test binary that runs itself as the user). Fails loudly when not root or when the user is missing.
    pub fn new(name: &str, manifold: &Path) -> User {
        assert!(
            rustix::process::geteuid().is_root(),
            "the rootless tests start as root (to create users' directories and switch to them)"
        );
        crate::require_tool("setpriv");
        let (uid, gid) = (id_of(name, "-u"), id_of(name, "-g"));
        let work = tempfile::Builder::new()
            .prefix("manifold-rootless-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod work dir");
        let bin = work.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        let exe = bin.join(manifold.file_name().expect("a program file name"));
        std::fs::copy(manifold, &exe).expect("copy the program");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))
            .expect("chmod manifold");
        for d in ["home", "root", "config"] {
            let p = work.path().join(d);
            std::fs::create_dir(&p).expect("mkdir");
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown");
        }
        User {
            name: name.to_owned(),
            uid,
            gid,
            work,
            exe,
        }
    }

    /// A directory the user owns (its `HOME`).
    pub fn home(&self) -> PathBuf {
        self.work.path().join("home")
    }

    /// The user's state root (`MANIFOLD_ROOT`).
    pub fn root(&self) -> PathBuf {
        self.work.path().join("root")
    }

    /// The world-readable copy of the program given to [`User::new`].
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// A world-readable copy of another program, beside the first.
    pub fn copy_program(&self, program: &Path) -> PathBuf {
        let dest = self
            .exe
            .with_file_name(program.file_name().expect("a program file name"));
        std::fs::copy(program, &dest).expect("copy the program");
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the program");
        dest
    }

    /// Make `path` (a file or tree the test wrote as root) the user's.
    pub fn give(&self, path: &Path) {
        let out = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(path)
            .output()
            .expect("run chown");
        assert!(out.status.success(), "chown {}", path.display());
    }

    /// `program args…` as the user, with a clean environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.home())
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .current_dir(self.home())
            .stdin(Stdio::null());
        cmd
    }

    /// `program args…` as the user, as root of a user namespace of its own (with a mount
    /// namespace) that maps the user's subordinate range, as manifold's rootless mode
    /// makes it.
    pub fn in_namespace(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let range = |file: &str| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            text.lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() == 3 && f[0] == self.name).then(|| format!("{},1,{}", f[1], f[2]))
                })
                .unwrap_or_else(|| panic!("{} has no range in {file}", self.name))
        };
        let mut cmd = self.command("unshare");
        cmd.args(["--user", "--map-root-user"])
            .arg(format!("--map-users={}", range("/etc/subuid")))
            .arg(format!("--map-groups={}", range("/etc/subgid")))
            .args(["--mount", "--propagation", "private", "--"])
            .arg(program);
        cmd
    }

    /// `manifold args…` as the user, on its own state root and config.
    pub fn manifold(&self) -> Command {
        let mut cmd = self.command(&self.exe);
        cmd.env("MANIFOLD_ROOT", self.root())
            .env("MANIFOLD_CONFIG", self.work.path().join("config"));
        cmd
    }

    /// Run `manifold args…` as the user.
    pub fn run(&self, args: &[&str]) -> Output {
        self.manifold().args(args).output().expect("run manifold")
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // A daemon or build the test left behind must not keep the user's runtime dir
        // busy; files owned by subordinate ids are removed by root with the work dir.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(self.exe.as_os_str())
            .status();
    }
}

/// The environment variable a test binary rerun by [`rerun_in_a_user_namespace`] sees.
pub const RERUN_ENV: &str = "MANIFOLD_TEST_APPLY";

/// Whether this process is such a rerun.
pub fn is_rerun() -> bool {
    std::env::var(RERUN_ENV).as_deref() == Ok("namespaced")
}

/// Run this test binary again as the unprivileged test user, as root of a user
/// namespace with the user's subordinate range (a rootless build's view), with `args`
/// (filters; `this_test` is skipped) and `env`. With `manifold`, a copy of it is named
/// by `MANIFOLD_TEST_BIN` for the rerun's tests to run. Every test run must pass.
pub fn rerun_in_a_user_namespace(this_test: &str, args: &[&str], manifold: Option<&Path>) {
    let exe = std::env::current_exe().expect("this test binary");
    let user = User::new(WITH_SUBUIDS, &exe);
    let mut cmd = user.in_namespace(user.exe());
    cmd.env(RERUN_ENV, "namespaced")
        .env("TMPDIR", user.home())
        // skopeo and podman in the tests: the user's rootless configuration, not root's.
        .env("_CONTAINERS_USERNS_CONFIGURED", "done")
        .env("_CONTAINERS_ROOTLESS_UID", user.uid.to_string())
        .env("_CONTAINERS_ROOTLESS_GID", user.gid.to_string())
        .args(["--skip", this_test, "--test-threads", "2"])
        .args(args);
    if let Some(m) = manifold {
        cmd.env("MANIFOLD_TEST_BIN", user.copy_program(m));
    }
    let out = cmd.output().expect("run the test binary as the user");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success(),
        "the tests failed as root of a user namespace:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("test result: ok") && !stdout.contains("running 0 tests"),
        "{stdout}"
    );
}
