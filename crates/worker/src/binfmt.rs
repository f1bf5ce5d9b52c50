//! Foreign-architecture steps through QEMU user-mode emulation and binfmt_misc.
//!
//! A platform counts as emulated when a tiny static program of its architecture really
//! runs from an empty root directory (see [`probe`]), whoever registered the entry and
//! wherever its interpreter lives: Debian's systemd-binfmt entries (`POF`, interpreter
//! `/usr/libexec/qemu-binfmt/<arch>-binfmt-P`), a CI system's entries registered from
//! inside a container (F, interpreter absent from the host), or manifold's own.
//!
//! manifold registers Debian's `qemu-user-static` emulators
//! (`/usr/bin/qemu-<arch>-static`) under the names Debian uses (`qemu-<arch>`), with
//! the P and F flags: the kernel opens the emulator at registration, so it runs inside
//! containers whose root filesystem has no emulator. It never sets the C (credentials)
//! flag unless asked, and leaves an entry that already serves a platform as it is.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci::{Platform, PlatformMatcher};

mod probe;
pub use probe::PROBE_EXIT;

/// Where binfmt_misc is mounted.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";
/// Where Debian's qemu-user-static puts its registration files.
pub const DEBIAN_BINFMT_D: &str = "/usr/lib/binfmt.d";
/// Where Debian's qemu-user-static puts the emulators.
pub const QEMU_DIR: &str = "/usr/bin";

/// One architecture QEMU can emulate: the platform, QEMU's name for it, and the ELF
/// header fields that identify its binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arch {
    /// OCI architecture (and variant for arm).
    oci: &'static str,
    variant: Option<&'static str>,
    qemu: &'static str,
    class64: bool,
    big_endian: bool,
    machine: u16,
}

const fn arch(oci: &'static str, qemu: &'static str, c64: bool, be: bool, m: u16) -> Arch {
    Arch {
        oci,
        variant: None,
        qemu,
        class64: c64,
        big_endian: be,
        machine: m,
    }
}

/// The architectures manifold knows how to register (ELF machine numbers from the ELF
/// specification and its processor supplements).
const ARCHES: [Arch; 10] = [
    arch("amd64", "x86_64", true, false, 62),
    arch("386", "i386", false, false, 3),
    arch("arm64", "aarch64", true, false, 183),
    Arch {
        variant: Some("v7"),
        ..arch("arm", "arm", false, false, 40)
    },
    arch("ppc64le", "ppc64le", true, false, 21),
    arch("s390x", "s390x", true, true, 22),
    arch("riscv64", "riscv64", true, false, 243),
    arch("loong64", "loongarch64", true, false, 258),
    arch("mips64le", "mips64el", true, false, 8),
    arch("ppc64", "ppc64", true, true, 21),
];

impl Arch {
    fn platform(&self) -> Platform {
        Platform::new("linux", self.oci, self.variant)
    }

    fn entry_name(&self) -> String {
        format!("qemu-{}", self.qemu)
    }

    fn interpreter(&self) -> PathBuf {
        Path::new(QEMU_DIR).join(format!("qemu-{}-static", self.qemu))
    }

    /// The first 20 bytes of an executable of this architecture, and the mask that
    /// ignores OS ABI and allows ET_EXEC or ET_DYN.
    fn elf_magic(&self) -> (Vec<u8>, Vec<u8>) {
        let mut magic = vec![0x7f, b'E', b'L', b'F'];
        magic.push(if self.class64 { 2 } else { 1 });
        magic.push(if self.big_endian { 2 } else { 1 });
        magic.push(1);
        magic.extend([0; 9]);
        let (etype, machine) = if self.big_endian {
            (2u16.to_be_bytes(), self.machine.to_be_bytes())
        } else {
            (2u16.to_le_bytes(), self.machine.to_le_bytes())
        };
        magic.extend(etype);
        magic.extend(machine);
        let mut mask = vec![0xff; 20];
        mask[7] = 0;
        mask[if self.big_endian { 17 } else { 16 }] = 0xfe;
        (magic, mask)
    }

    /// Magic and mask: Debian's registration file when installed, else our own.
    fn magic_and_mask(&self) -> (Vec<u8>, Vec<u8>) {
        let conf = Path::new(DEBIAN_BINFMT_D).join(format!("qemu-{}.conf", self.qemu));
        std::fs::read_to_string(conf)
            .ok()
            .and_then(|t| parse_conf_line(t.trim()))
            .map(|e| (e.magic, e.mask))
            .unwrap_or_else(|| self.elf_magic())
    }

    /// A static program of this architecture that exits with [`PROBE_EXIT`].
    fn probe_program(&self) -> Vec<u8> {
        probe::program(self.qemu, self.class64, self.big_endian, self.machine)
            .expect("every known architecture has a probe program")
    }

    /// Short name for messages and the CLI (`arm64`, `arm`, `386`).
    fn cli_name(&self) -> &'static str {
        self.oci
    }
}

fn arch_for(p: &Platform) -> Option<&'static Arch> {
    let p = p.normalize();
    if p.os != "linux" {
        return None;
    }
    ARCHES.iter().find(|a| a.oci == p.architecture)
}

/// Parse an architecture name as the CLI accepts it: OCI (`arm64`, `arm/v7`, `386`),
/// Debian (`armhf`, `i386`, `ppc64el`) or QEMU (`aarch64`, `x86_64`) spellings.
fn parse_arch(name: &str) -> Result<&'static Arch, BinfmtError> {
    let unknown = || BinfmtError::UnknownArch(name.to_owned());
    if let Some(a) = ARCHES.iter().find(|a| a.qemu == name) {
        return Ok(a);
    }
    let spelled = match name {
        "ppc64el" => "ppc64le",
        "mips64el" => "mips64le",
        "loongarch64" => "loong64",
        other => other,
    };
    let p = if spelled.contains('/') && !spelled.starts_with("linux/") {
        Platform::parse(&format!("linux/{spelled}"))
    } else {
        Platform::parse(spelled)
    };
    p.ok().as_ref().and_then(arch_for).ok_or_else(unknown)
}

/// The probe program of the architecture `name` (any spelling [`install`] accepts) and
/// QEMU's name for that architecture (`aarch64`).
pub fn probe_program(name: &str) -> Result<(&'static str, Vec<u8>), BinfmtError> {
    let a = parse_arch(name)?;
    Ok((a.qemu, a.probe_program()))
}

/// The names of every architecture manifold knows (`amd64`, `386`, `arm64`, …).
pub fn known_arches() -> impl Iterator<Item = &'static str> {
    ARCHES.iter().map(|a| a.cli_name())
}

/// A binfmt_misc registration, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub enabled: bool,
    pub interpreter: PathBuf,
    pub flags: String,
    pub offset: usize,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
    /// An `E` (extension) entry instead of `M` (magic); manifold never makes these.
    pub extension: Option<String>,
}

impl Entry {
    /// The line that registers this entry again (`:name:M:offset:magic:mask:interp:flags`).
    pub fn register_line(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>();
        match &self.extension {
            Some(ext) => format!(
                ":{}:E::{}::{}:{}",
                self.name,
                ext,
                self.interpreter.display(),
                self.flags
            ),
            None => format!(
                ":{}:M:{}:{}:{}:{}:{}",
                self.name,
                self.offset,
                hex(&self.magic),
                hex(&self.mask),
                self.interpreter.display(),
                self.flags
            ),
        }
    }

    /// Whether the kernel would hand an ELF header `header` to this entry.
    fn handles(&self, header: &[u8]) -> bool {
        if !self.enabled || self.extension.is_some() {
            return false;
        }
        self.magic.iter().enumerate().all(|(i, m)| {
            let mask = self.mask.get(i).copied().unwrap_or(0xff);
            header.get(self.offset + i).is_some_and(|h| h & mask == *m)
        })
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// Parse a `/proc/sys/fs/binfmt_misc/<name>` file.
fn parse_entry(name: &str, text: &str) -> Option<Entry> {
    let mut e = Entry {
        name: name.to_owned(),
        enabled: false,
        interpreter: PathBuf::new(),
        flags: String::new(),
        offset: 0,
        magic: Vec::new(),
        mask: Vec::new(),
        extension: None,
    };
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "enabled" => e.enabled = true,
            "disabled" => e.enabled = false,
            "interpreter" => e.interpreter = PathBuf::from(value),
            "flags:" => e.flags = value.trim().to_owned(),
            "offset" => e.offset = value.trim().parse().ok()?,
            "magic" => e.magic = unhex(value.trim())?,
            "mask" => e.mask = unhex(value.trim())?,
            "extension" => e.extension = Some(value.trim().trim_start_matches('.').to_owned()),
            _ => {}
        }
    }
    Some(e)
}

/// Decode the `\xHH` escapes of a registration line field.
fn unescape(field: &str) -> Option<Vec<u8>> {
    let b = field.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            out.push(u8::from_str_radix(field.get(i + 2..i + 4)?, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Parse a registration line (`:name:M:offset:magic:mask:interpreter:flags`).
fn parse_conf_line(line: &str) -> Option<Entry> {
    let f: Vec<&str> = line.strip_prefix(':')?.split(':').collect();
    if f.len() < 7 || f[1] != "M" {
        return None;
    }
    Some(Entry {
        name: f[0].to_owned(),
        enabled: true,
        offset: if f[2].is_empty() {
            0
        } else {
            f[2].parse().ok()?
        },
        magic: unescape(f[3])?,
        mask: unescape(f[4])?,
        interpreter: PathBuf::from(f[5]),
        flags: f[6].to_owned(),
        extension: None,
    })
}

/// How this host runs a platform's binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunsHow {
    /// The host's own platform.
    Native,
    /// Runs without emulation (`linux/386` on `linux/amd64`).
    Compatible,
    /// Through a binfmt_misc entry.
    Emulated {
        entry: String,
        interpreter: PathBuf,
        flags: String,
    },
}

/// What registrations are acceptable for running steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BinfmtPolicy {
    /// Refuse entries with the C (credentials) flag. Off by default: CI systems
    /// register QEMU with it (flags `POCF`), and it raises a guest setuid program's
    /// credentials inside its own container only.
    pub refuse_credentials_flag: bool,
}

/// Errors of the emulation layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BinfmtError {
    #[error("cannot run {platform} binaries on this {host} host: {reason}")]
    NotRunnable {
        platform: Box<Platform>,
        host: Box<Platform>,
        reason: String,
        /// A command that fixes it (`manifold binfmt install arm64`).
        hint: String,
    },
    #[error("unknown architecture {0:?} (known: {known})", known = known_names())]
    UnknownArch(String),
    #[error("no emulator for {arch} at {path} (install Debian's qemu-user-static)")]
    MissingEmulator { arch: String, path: PathBuf },
    #[error("cannot mount binfmt_misc at {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BinfmtError {
    /// The command line that fixes this, when one is known.
    pub fn hint(&self) -> Option<&str> {
        match self {
            BinfmtError::NotRunnable { hint, .. } if !hint.is_empty() => Some(hint),
            _ => None,
        }
    }
}

fn known_names() -> String {
    ARCHES
        .iter()
        .map(|a| a.cli_name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BinfmtError {
    let path = path.to_owned();
    move |source| BinfmtError::Io {
        action,
        path,
        source,
    }
}

/// Whether binfmt_misc is mounted at [`BINFMT_MISC`].
pub fn is_mounted() -> bool {
    Path::new(BINFMT_MISC).join("register").exists()
}

/// Mount binfmt_misc at [`BINFMT_MISC`] unless it is; returns whether it mounted.
pub fn ensure_mounted() -> Result<bool, BinfmtError> {
    if is_mounted() {
        return Ok(false);
    }
    rustix::mount::mount(
        "binfmt_misc",
        BINFMT_MISC,
        "binfmt_misc",
        rustix::mount::MountFlags::NOSUID
            | rustix::mount::MountFlags::NODEV
            | rustix::mount::MountFlags::NOEXEC,
        None,
    )
    .map_err(|e| BinfmtError::Mount {
        path: BINFMT_MISC.into(),
        source: e.into(),
    })?;
    Ok(true)
}

/// Every registered entry (empty when binfmt_misc is not mounted).
pub fn entries() -> Result<Vec<Entry>, BinfmtError> {
    let dir = Path::new(BINFMT_MISC);
    if !is_mounted() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for d in std::fs::read_dir(dir).map_err(io_err("read", dir))? {
        let d = d.map_err(io_err("read", dir))?;
        let name = d.file_name().to_string_lossy().into_owned();
        if name == "register" || name == "status" {
            continue;
        }
        // An entry removed meanwhile is simply gone.
        if let Ok(text) = std::fs::read_to_string(d.path())
            && let Some(e) = parse_entry(&name, &text)
        {
            out.push(e);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Register `entry` (binfmt_misc must be mounted).
pub fn register(entry: &Entry) -> Result<(), BinfmtError> {
    let path = Path::new(BINFMT_MISC).join("register");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    // One write: the kernel parses each write as one registration.
    f.write_all(entry.register_line().as_bytes())
        .map_err(io_err("register an entry through", &path))
}

/// Remove the entry called `name`.
pub fn remove(name: &str) -> Result<(), BinfmtError> {
    let path = Path::new(BINFMT_MISC).join(name);
    std::fs::write(&path, "-1").map_err(io_err("remove", &path))
}

fn host_runs(p: &Platform) -> Option<RunsHow> {
    let host = Platform::host();
    if host.matches(p) {
        Some(RunsHow::Native)
    } else if PlatformMatcher::only(&host).matches(p) {
        Some(RunsHow::Compatible)
    } else {
        None
    }
}

/// How this host runs `platform`, with the default policy.
pub fn check_platform(platform: &Platform) -> Result<RunsHow, BinfmtError> {
    check_platform_with(platform, &BinfmtPolicy::default())
}

/// The entries whose probe passed in this process, keyed by architecture and the
/// entry's registration line: a changed or replaced entry is probed again.
static PROBED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Run `arch`'s probe program, through whichever entry the kernel picks; `served_by`
/// (the entry that handles the program's header) keys the memo of successes.
fn probe_through(arch: &Arch, served_by: &Entry) -> Result<(), String> {
    let key = format!("{}|{}", arch.qemu, served_by.register_line());
    let seen =
        |set: &mut Option<HashSet<String>>| set.get_or_insert_with(HashSet::new).contains(&key);
    if seen(&mut PROBED.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(());
    }
    probe::run(&arch.probe_program())?;
    PROBED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(key);
    Ok(())
}

/// The enabled entry the kernel hands `arch`'s binaries to, if any.
fn serving<'a>(arch: &Arch, entries: &'a [Entry]) -> Option<&'a Entry> {
    let (header, _) = arch.elf_magic();
    entries.iter().find(|e| e.handles(&header))
}

/// How this host runs `platform`: natively, compatibly, or through a binfmt_misc entry
/// whose probe program runs from an empty root (so only an interpreter opened at
/// registration, the F flag, can serve it). Entries with the C flag are accepted unless
/// `policy` refuses them. (An entry without P runs most programs, but multi-call
/// binaries such as busybox read argv[0]: `binfmt ls` says so.)
pub fn check_platform_with(
    platform: &Platform,
    policy: &BinfmtPolicy,
) -> Result<RunsHow, BinfmtError> {
    if let Some(how) = host_runs(platform) {
        return Ok(how);
    }
    let not_runnable = |reason: String, hint: String| BinfmtError::NotRunnable {
        platform: Box::new(platform.normalize()),
        host: Box::new(Platform::host()),
        reason,
        hint,
    };
    let Some(arch) = arch_for(platform) else {
        return Err(not_runnable(
            "manifold knows no emulator for this architecture".into(),
            String::new(),
        ));
    };
    let install = format!("manifold binfmt install {}", arch.cli_name());
    if !is_mounted() {
        return Err(not_runnable("binfmt_misc is not mounted".into(), install));
    }
    let status = Path::new(BINFMT_MISC).join("status");
    if std::fs::read_to_string(&status).is_ok_and(|s| s.trim() == "disabled") {
        return Err(not_runnable("binfmt_misc is disabled".into(), install));
    }
    let all = entries()?;
    let Some(e) = serving(arch, &all) else {
        return Err(not_runnable(
            "no binfmt_misc emulator is registered for it".into(),
            install,
        ));
    };
    let replace = format!("manifold binfmt install --force {}", arch.cli_name());
    if e.flags.contains('C') && policy.refuse_credentials_flag {
        let reason = format!(
            "binfmt_misc entry {} has the C (credentials) flag: setuid programs would \
             run the emulator {} with raised privileges",
            e.name,
            e.interpreter.display()
        );
        return Err(not_runnable(reason, replace));
    }
    if let Err(why) = probe_through(arch, e) {
        let reason = if e.flags.contains('F') {
            format!(
                "binfmt_misc entry {} (interpreter {}, flags {}) did not run a test \
                 {} program: {why}",
                e.name,
                e.interpreter.display(),
                flags_shown(&e.flags),
                platform.normalize()
            )
        } else {
            format!(
                "binfmt_misc entry {} has flags {} without F (fix-binary), so its \
                 interpreter {} would be looked up inside the container ({why})",
                e.name,
                flags_shown(&e.flags),
                e.interpreter.display()
            )
        };
        return Err(not_runnable(reason, replace));
    }
    Ok(RunsHow::Emulated {
        entry: e.name.clone(),
        interpreter: e.interpreter.clone(),
        flags: e.flags.clone(),
    })
}

/// Flags as messages show them: `POF`, or `none`.
fn flags_shown(flags: &str) -> &str {
    if flags.is_empty() { "none" } else { flags }
}

/// What a user should know about an entry that works: the flags that change behaviour.
pub fn entry_notes(flags: &str, interpreter: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    if !flags.contains('P') {
        notes.push(
            "without P: multi-call programs (busybox applets) may run as the wrong command"
                .to_owned(),
        );
    }
    if flags.contains('C') {
        notes.push("C: setuid programs run the emulator with raised credentials".to_owned());
    }
    if !interpreter.exists() {
        notes.push("interpreter not on this host: opened by the kernel at registration".to_owned());
    }
    notes
}

/// One line of [`list`].
#[derive(Debug)]
pub struct PlatformStatus {
    pub platform: Platform,
    pub runs: Result<RunsHow, BinfmtError>,
}

/// Every platform manifold knows, and how this host runs it (each emulated one probed).
pub fn list() -> Vec<PlatformStatus> {
    ARCHES
        .iter()
        .map(|a| {
            let platform = a.platform();
            let runs = check_platform(&platform);
            PlatformStatus { platform, runs }
        })
        .collect()
}

/// What [`install`] did for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Installed {
    /// Registered now; `replaced` is the entry removed for it (`--force`, or
    /// manifold's own older registration).
    Registered {
        platform: Platform,
        entry: Entry,
        replaced: Option<Entry>,
    },
    /// Our registration was already there.
    AlreadyRegistered { platform: Platform, entry: Entry },
    /// Another entry serves the platform (its probe ran); left as it is.
    Served { platform: Platform, entry: Entry },
    /// The host runs it without emulation; nothing registered.
    NotNeeded { platform: Platform, runs: RunsHow },
    /// An entry is in the way and does not serve the platform; left alone without
    /// `force`.
    Conflict {
        platform: Platform,
        existing: Entry,
        wanted: Entry,
        reason: String,
    },
}

/// Which architectures to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archs {
    /// Every known architecture served here or whose emulator is installed.
    All,
    /// These, by name (`arm64`, `arm/v7`, `armhf`, `aarch64`, …).
    Named(Vec<String>),
}

/// Options of [`install`] and [`uninstall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InstallOptions {
    /// Add the C (credentials) flag; off by default.
    pub credentials: bool,
    /// Replace (install) or remove (uninstall) entries registered by someone else.
    pub force: bool,
}

fn selected(archs: &Archs, existing: &[Entry]) -> Result<Vec<&'static Arch>, BinfmtError> {
    match archs {
        Archs::All => Ok(ARCHES
            .iter()
            .filter(|a| {
                host_runs(&a.platform()).is_none()
                    && (a.interpreter().is_file() || serving(a, existing).is_some())
            })
            .collect()),
        Archs::Named(names) => names.iter().map(|n| parse_arch(n)).collect(),
    }
}

fn wanted_entry(a: &Arch, opts: InstallOptions) -> Entry {
    let (magic, mask) = a.magic_and_mask();
    Entry {
        name: a.entry_name(),
        enabled: true,
        interpreter: a.interpreter(),
        // P (preserve argv[0], which QEMU ≥ 6 reads from AT_FLAGS): multi-call
        // binaries such as busybox pick their applet from argv[0]. The kernel shows
        // flags in the order P, O, C, F.
        flags: if opts.credentials { "PCF" } else { "PF" }.to_owned(),
        offset: 0,
        magic,
        mask,
        extension: None,
    }
}

/// Whether `e` is a registration manifold makes for `a` (any flags of ours).
fn is_ours(a: &Arch, e: &Entry) -> bool {
    e.name == a.entry_name() && e.interpreter == a.interpreter()
}

/// Mount binfmt_misc if needed and make sure `archs` run: an entry that already serves
/// a platform (its probe runs) is left as it is unless `opts.force`.
pub fn install(archs: &Archs, opts: InstallOptions) -> Result<Vec<Installed>, BinfmtError> {
    ensure_mounted()?;
    let existing = entries()?;
    let chosen = selected(archs, &existing)?;
    let mut out = Vec::new();
    for a in chosen {
        let platform = a.platform();
        if let Some(runs) = host_runs(&platform) {
            out.push(Installed::NotNeeded { platform, runs });
            continue;
        }
        let wanted = wanted_entry(a, opts);
        let serves = serving(a, &existing);
        let named = existing.iter().find(|e| e.name == wanted.name);
        if let Some(e) = named
            && e.interpreter == wanted.interpreter
            && e.flags == wanted.flags
            && serves.is_some_and(|s| s.name == e.name)
        {
            out.push(Installed::AlreadyRegistered {
                platform,
                entry: e.clone(),
            });
            continue;
        }
        // manifold's own older registration (F without P) is replaced without asking.
        let ours_older = named
            .filter(|e| is_ours(a, e) && e.flags.replace('P', "") == wanted.flags.replace('P', ""));
        if !opts.force && ours_older.is_none() {
            if let Some(e) = serves {
                match probe_through(a, e) {
                    Ok(()) => out.push(Installed::Served {
                        platform,
                        entry: e.clone(),
                    }),
                    Err(reason) => out.push(Installed::Conflict {
                        platform,
                        existing: e.clone(),
                        wanted,
                        reason,
                    }),
                }
                continue;
            }
            if let Some(e) = named {
                let reason = if e.enabled {
                    "it does not match this architecture's programs".to_owned()
                } else {
                    "it is disabled".to_owned()
                };
                out.push(Installed::Conflict {
                    platform,
                    existing: e.clone(),
                    wanted,
                    reason,
                });
                continue;
            }
        }
        if !a.interpreter().is_file() {
            return Err(BinfmtError::MissingEmulator {
                arch: a.cli_name().to_owned(),
                path: a.interpreter(),
            });
        }
        let mut replaced = None;
        for old in [serves, named].into_iter().flatten() {
            if replaced.as_ref().is_none_or(|r: &Entry| r.name != old.name) {
                remove(&old.name)?;
                replaced.get_or_insert_with(|| old.clone());
            }
        }
        register(&wanted)?;
        out.push(Installed::Registered {
            platform,
            entry: wanted,
            replaced,
        });
    }
    Ok(out)
}

/// What [`uninstall`] did for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Uninstalled {
    Removed {
        platform: Platform,
        entry: Entry,
    },
    NotRegistered {
        platform: Platform,
        name: String,
    },
    /// Someone else's entry (another interpreter); left without `force`.
    NotOurs {
        platform: Platform,
        entry: Entry,
    },
}

/// Remove the `qemu-<arch>` entries of `archs` (`All`: every known one present) that
/// manifold registered; others' entries too with `opts.force`.
pub fn uninstall(archs: &Archs, opts: InstallOptions) -> Result<Vec<Uninstalled>, BinfmtError> {
    let existing = entries()?;
    let chosen: Vec<&Arch> = match archs {
        Archs::All => ARCHES.iter().collect(),
        Archs::Named(_) => selected(archs, &existing)?,
    };
    let mut out = Vec::new();
    for a in chosen {
        let platform = a.platform();
        let name = a.entry_name();
        match existing.iter().find(|e| e.name == name) {
            Some(e) if is_ours(a, e) || opts.force => {
                remove(&name)?;
                out.push(Uninstalled::Removed {
                    platform,
                    entry: e.clone(),
                });
            }
            Some(e) => out.push(Uninstalled::NotOurs {
                platform,
                entry: e.clone(),
            }),
            None if matches!(archs, Archs::Named(_)) => {
                out.push(Uninstalled::NotRegistered { platform, name })
            }
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_magic_matches_debian_for_aarch64_and_arm() {
        let debian = ":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\
                      \\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\
                      \\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:\
                      /usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF";
        let e = parse_conf_line(debian).unwrap();
        let a = parse_arch("arm64").unwrap();
        assert_eq!(a.elf_magic(), (e.magic.clone(), e.mask.clone()));
        assert_eq!(e.flags, "OPF");
        assert_eq!(e.name, "qemu-aarch64");
        // Round trip through the kernel's line format.
        assert_eq!(parse_conf_line(&e.register_line()).unwrap(), e);
    }

    #[test]
    fn arch_spellings() {
        for (name, qemu) in [
            ("arm64", "aarch64"),
            ("aarch64", "aarch64"),
            ("linux/arm64", "aarch64"),
            ("armhf", "arm"),
            ("arm/v7", "arm"),
            ("arm", "arm"),
            ("386", "i386"),
            ("i386", "i386"),
            ("ppc64el", "ppc64le"),
            ("s390x", "s390x"),
            ("x86_64", "x86_64"),
        ] {
            assert_eq!(parse_arch(name).unwrap().qemu, qemu, "{name}");
        }
        let err = parse_arch("z80").unwrap_err().to_string();
        assert!(
            err.starts_with("unknown architecture \"z80\" (known: amd64, 386"),
            "{err}"
        );
    }

    #[test]
    fn kernel_entry_file() {
        let text = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\n\
                    magic 7f454c460201010000000000000000000200b700\n\
                    mask ffffffffffffff00fffffffffffffffffeffffff\n";
        let e = parse_entry("qemu-aarch64", text).unwrap();
        assert!(e.enabled);
        assert_eq!(e.flags, "F");
        let (header, _) = parse_arch("arm64").unwrap().elf_magic();
        assert!(e.handles(&header));
        let (arm, _) = parse_arch("arm").unwrap().elf_magic();
        assert!(!e.handles(&arm));
        // A shared object (ET_DYN) matches too.
        let mut dyn_header = header.clone();
        dyn_header[16] = 3;
        assert!(e.handles(&dyn_header));
    }

    #[test]
    fn host_platforms_need_no_emulation() {
        if Platform::host().architecture == "amd64" {
            let p = Platform::parse("linux/386").unwrap();
            assert_eq!(check_platform(&p).unwrap(), RunsHow::Compatible);
        }
        assert_eq!(check_platform(&Platform::host()).unwrap(), RunsHow::Native);
    }
}
