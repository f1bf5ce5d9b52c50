//! OCI platforms (`os/arch[/variant]`): parsing, normalisation and matching.
//!
//! The semantics follow containerd's `platforms` package (as of 2026-03), which
//! is what BuildKit, containerd and Docker use to pick an image out of an index:
//!
//! * [`Platform::parse`] accepts the specifier syntax `<os>`, `<arch>`,
//!   `<os>/<arch>` and `<os>/<arch>/<variant>` and always returns a
//!   **normalised** platform (see [`Platform::normalize`] for the rules).
//! * [`Platform::matches`] is containerd's matcher for one specific platform:
//!   equality of os, architecture and variant after normalising both sides.
//! * [`PlatformMatcher::only`] is containerd's `Only`: what a host of a given
//!   platform can run, in order of preference (`Ordered`).
//!
//! Where manifold deliberately differs from containerd, the item's
//! documentation says so; every difference is about being independent of the
//! build host or about not returning a matcher that matches nothing.

use std::fmt;
use std::str::FromStr;

/// Operating systems known to the Go toolchain (and thus to containerd), used
/// to tell `linux` from `arm64` in a one-component specifier.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

/// Architectures known to the Go toolchain (normalised names).
const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// The operating system an empty `os` normalises to, and the one an
/// architecture-only specifier such as `arm64` gets.
///
/// containerd uses the OS of the machine it runs on; manifold builds Linux
/// images and keeps normalisation independent of the build host.
const DEFAULT_OS: &str = "linux";

/// Why a string is not a valid platform specifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    #[error("invalid platform: empty string")]
    Empty,
    #[error(
        "invalid platform {0:?}: too many components (expected <os>, <arch>, <os>/<arch> or <os>/<arch>/<variant>)"
    )]
    TooManyComponents(String),
    #[error("invalid platform {0:?}: empty component between '/' separators")]
    EmptyComponent(String),
    #[error(
        "invalid platform {input:?}: component {component:?} may only contain [A-Za-z0-9_.-] ([A-Za-z0-9_-] for the os)"
    )]
    InvalidComponent { input: String, component: String },
    #[error("invalid platform {0:?}: unknown operating system or architecture")]
    UnknownOsOrArch(String),
}

/// An OCI image-spec platform, as found in image indexes and image configs.
///
/// The fields are public and are kept as written when deserialised, so a
/// `Platform` read from JSON may not be normalised; [`Platform::new`],
/// [`Platform::parse`] and [`Platform::host`] always return normalised values,
/// and matching normalises both sides.
///
/// JSON field order is `architecture`, `os`, `os.version`, `os.features`,
/// `variant`, the order containerd and BuildKit emit; empty optional fields are
/// omitted.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", skip_serializing_if = "Vec::is_empty", default)]
    pub os_features: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
}

impl Platform {
    /// A normalised platform from its parts (see [`Platform::normalize`]).
    ///
    /// `Platform::new("linux", "aarch64", None)` is `linux/arm64`;
    /// `Platform::new("linux", "arm", None)` is `linux/arm/v7`.
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let (architecture, variant) = normalize_arch(arch, variant.unwrap_or(""));
        Platform {
            architecture,
            os: normalize_os(os),
            os_version: None,
            os_features: Vec::new(),
            variant,
        }
    }

    /// Parse a platform specifier: `<os>`, `<arch>`, `<os>/<arch>` or
    /// `<os>/<arch>/<variant>`; the result is normalised.
    ///
    /// * A single component is an OS if it is one Go knows (`linux`, `windows`,
    ///   `darwin`, `macos`, …): the architecture is then the host's
    ///   ([`Platform::host`]), as in containerd. Otherwise it must be a known
    ///   architecture (after normalisation, so `aarch64` and `armhf` work) and
    ///   the OS is `linux` (containerd uses the host's OS here).
    /// * With two or three components, unknown OS and architecture names are
    ///   accepted (and normalised), as in containerd.
    /// * Every component must be non-empty and only use `[A-Za-z0-9_.-]`; the
    ///   OS component may not contain `.`. containerd's OS options
    ///   (`windows(10.0.17763+win32k)`) and wildcards are not supported.
    ///
    /// Unlike containerd's `Parse`, which keeps `linux/arm` without a variant
    /// and `linux/arm64/v8` with one, the result is fully normalised
    /// (`linux/arm/v7`, `linux/arm64`); both forms match the same platforms.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        if s.is_empty() {
            return Err(PlatformError::Empty);
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 3 {
            return Err(PlatformError::TooManyComponents(s.to_owned()));
        }
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() {
                return Err(PlatformError::EmptyComponent(s.to_owned()));
            }
            let allowed =
                |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (i > 0 && b == b'.');
            if !part.bytes().all(allowed) {
                return Err(PlatformError::InvalidComponent {
                    input: s.to_owned(),
                    component: (*part).to_owned(),
                });
            }
        }
        match parts.as_slice() {
            [single] => {
                let os = normalize_os(single);
                if KNOWN_OS.contains(&os.as_str()) {
                    let host = Platform::host();
                    return Ok(Platform {
                        os,
                        ..Platform::new(DEFAULT_OS, &host.architecture, host.variant.as_deref())
                    });
                }
                let p = Platform::new(DEFAULT_OS, single, None);
                if KNOWN_ARCH.contains(&p.architecture.as_str()) {
                    Ok(p)
                } else {
                    Err(PlatformError::UnknownOsOrArch(s.to_owned()))
                }
            }
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => unreachable!("between 1 and 3 components"),
        }
    }

    /// The canonical form of this platform (containerd's `Normalize`, plus the
    /// default variants containerd's `Parse` leaves implicit):
    ///
    /// * os: lowercased; `macos` → `darwin`; empty → `linux` (containerd: the
    ///   host's OS).
    /// * architecture and variant are lowercased, then
    ///   * `i386` → `386` (variant dropped);
    ///   * `x86_64`, `x86-64`, `amd64` → `amd64`, variant `v1` dropped
    ///     (`amd64` ≡ `amd64/v1`);
    ///   * `aarch64`, `arm64` → `arm64`, variant `8`, `v8`, `v8.0` dropped
    ///     (`arm64` ≡ `arm64/v8`), and `9`, `9.0`, `v9.0` → `v9`;
    ///   * `armhf` → `arm/v7`, `armel` → `arm/v6`;
    ///   * `arm`: no variant or `7` → `v7`; `5`, `6`, `8` → `v5`, `v6`, `v8`;
    ///   * anything else (`ppc64le`, `s390x`, `riscv64`, `mips64`, `loong64`,
    ///     …) is kept as is.
    /// * An empty variant is no variant.
    /// * `os.features` are sorted and deduplicated; `os.version` is kept.
    pub fn normalize(&self) -> Platform {
        let (architecture, variant) =
            normalize_arch(&self.architecture, self.variant.as_deref().unwrap_or(""));
        let mut os_features = self.os_features.clone();
        os_features.sort();
        os_features.dedup();
        Platform {
            architecture,
            os: normalize_os(&self.os),
            os_version: self.os_version.clone(),
            os_features,
            variant,
        }
    }

    /// Whether this platform is already in canonical form.
    pub fn is_normalized(&self) -> bool {
        self.normalize() == *self
    }

    /// The platform manifold itself was compiled for, in OCI names.
    ///
    /// Decided at compile time from `std::env::consts` (no IO): `x86_64` →
    /// `amd64`, `x86` → `386`, `aarch64` → `arm64`, `arm` → `arm/v7`,
    /// `powerpc64` → `ppc64le` / `ppc64` by endianness, `powerpc` → `ppc`,
    /// `mips`/`mips64` → `mipsle`/`mips64le` when little-endian,
    /// `loongarch64` → `loong64`, `wasm32` → `wasm`; `s390x`, `riscv64`,
    /// `sparc64` are kept. containerd reads the arm variant from
    /// `/proc/cpuinfo`; manifold assumes v7 for 32-bit arm and no variant
    /// elsewhere (as containerd does for amd64).
    pub fn host() -> Platform {
        use std::env::consts::{ARCH, OS};
        let little = cfg!(target_endian = "little");
        let (arch, variant) = match ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if little => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "powerpc" => ("ppc", None),
            "mips" if little => ("mipsle", None),
            "mips64" if little => ("mips64le", None),
            "loongarch64" => ("loong64", None),
            "wasm32" => ("wasm", None),
            other => (other, None),
        };
        Platform::new(OS, arch, variant)
    }

    /// Whether `other` is this very platform: os, architecture and variant are
    /// equal once both are normalised (containerd's `NewMatcher(self).Match`).
    ///
    /// As in containerd, the relation is not symmetric in two details:
    /// * `other`'s `os.features` must be a subset of this platform's (a
    ///   `win32k` feature on a Windows candidate is ignored);
    /// * for Windows, if both carry an `os.version`, they must be compatible
    ///   (same major.minor and build; from Windows Server 2022 on, a host also
    ///   runs containers from the previous LTSC build up to its own build).
    ///   `os.version` is ignored for other operating systems.
    pub fn matches(&self, other: &Platform) -> bool {
        matches_normalized(&self.normalize(), other)
    }
}

impl fmt::Display for Platform {
    /// `os/arch[/variant]` (containerd's `Format`): `linux/arm64`,
    /// `linux/arm/v7`. Empty parts are skipped and an empty OS formats as
    /// `unknown`; `os.version` and `os.features` are not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.os.is_empty() {
            return f.write_str("unknown");
        }
        f.write_str(&self.os)?;
        for part in [Some(self.architecture.as_str()), self.variant.as_deref()] {
            match part {
                Some(p) if !p.is_empty() => write!(f, "/{p}")?,
                _ => {}
            }
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

/// What a host of a given platform can run, best first (containerd's `Only`,
/// which is `Ordered` over the host's compatibility list).
///
/// The list for a (normalised) host platform is:
/// * `amd64/vN`: `amd64/vN`, `amd64/vN-1`, …, `amd64` (v1), then `386`;
///   plain `amd64` runs `amd64` then `386`;
/// * `arm/vN` (N ≥ 6): `arm/vN` down to `arm/v5`; so `arm/v7` runs v7, v6, v5;
/// * `arm64` (= v8): `arm64`, then `arm/v8`, `arm/v7`, `arm/v6`, `arm/v5`;
/// * `arm64/v8.x`: `arm64/v8.x` down to `arm64` (v8.0), then `arm/v8` … `arm/v5`;
/// * `arm64/v9.x`: `arm64/v9.x` down to `arm64/v9`, then `arm64/v8.(x+5)`
///   (at most v8.9) down to `arm64`, then `arm/v8` … `arm/v5`;
/// * anything else: only itself.
///
/// (For absurd numbered variants such as `amd64/v1000`, only `v31` and below
/// are listed after the host itself, to keep the list small.)
///
/// Each entry carries the host's `os`, `os.version` and `os.features` and
/// matches as [`Platform::matches`] does. containerd returns an empty list
/// for an `arm64` variant it does not know (so the host matches nothing,
/// not even itself); manifold lets such a host run exactly its own platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformMatcher {
    preference: Vec<Platform>,
}

impl PlatformMatcher {
    /// The matcher for a host of platform `p` (normalised first).
    pub fn only(p: &Platform) -> PlatformMatcher {
        let host = p.normalize();
        let mut preference = Vec::new();
        compatibility_list(&host, &mut preference);
        PlatformMatcher { preference }
    }

    /// The platforms this matcher accepts, most preferred first (normalised).
    pub fn preference(&self) -> &[Platform] {
        &self.preference
    }

    /// Whether a host described by this matcher can run `p`.
    pub fn matches(&self, p: &Platform) -> bool {
        self.preference
            .iter()
            .any(|want| matches_normalized(want, p))
    }

    /// Whether `a` is strictly preferred over `b` (containerd's `Ordered.Less`).
    ///
    /// Walking the preference list, the first entry that matches either
    /// decides: `a` is preferred if it matches and `b` does not; if both match
    /// it, the one with more `os.features` is preferred. If neither matches any
    /// entry and one has `os.features`, they are compared again without them.
    pub fn less(&self, a: &Platform, b: &Platform) -> bool {
        for want in &self.preference {
            let am = matches_normalized(want, a);
            let bm = matches_normalized(want, b);
            if am && !bm {
                return true;
            }
            if am && bm {
                return a.os_features.len() > b.os_features.len();
            }
            if bm {
                return false;
            }
        }
        if !a.os_features.is_empty() || !b.os_features.is_empty() {
            let strip = |p: &Platform| Platform {
                os_features: Vec::new(),
                ..p.clone()
            };
            return self.less(&strip(a), &strip(b));
        }
        false
    }

    /// The most preferred candidate this host can run; among equally good
    /// candidates, the first one.
    pub fn best<'a>(
        &self,
        candidates: impl IntoIterator<Item = &'a Platform>,
    ) -> Option<&'a Platform> {
        let mut best: Option<&'a Platform> = None;
        for c in candidates {
            if !self.matches(c) {
                continue;
            }
            match best {
                Some(b) if !self.less(c, b) => {}
                _ => best = Some(c),
            }
        }
        best
    }
}

fn normalize_os(os: &str) -> String {
    if os.is_empty() {
        return DEFAULT_OS.to_owned();
    }
    let os = os.to_ascii_lowercase();
    if os == "macos" {
        "darwin".to_owned()
    } else {
        os
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (arch, variant): (&str, &str) = match arch.as_str() {
        "i386" => ("386", ""),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { "" } else { &variant }),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "8" | "v8" | "v8.0" => "",
                "9" | "9.0" | "v9.0" => "v9",
                v => v,
            },
        ),
        "armhf" => ("arm", "v7"),
        "armel" => ("arm", "v6"),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7",
                "5" => "v5",
                "6" => "v6",
                "8" => "v8",
                v => v,
            },
        ),
        a => (a, &variant),
    };
    let variant = (!variant.is_empty()).then(|| variant.to_owned());
    (arch.to_owned(), variant)
}

/// containerd's single-platform matcher; `want` must be normalised.
fn matches_normalized(want: &Platform, candidate: &Platform) -> bool {
    let mut c = candidate.normalize();
    let windows = want.os == "windows";
    if windows {
        c.os_features.retain(|f| f != "win32k");
    }
    want.os == c.os
        && want.architecture == c.architecture
        && want.variant == c.variant
        && (!windows
            || windows_version_matches(want.os_version.as_deref(), candidate.os_version.as_deref()))
        && c.os_features
            .iter()
            .all(|f| want.os_features.binary_search(f).is_ok())
}

/// Highest numbered amd64/arm variant below which lower variants are listed.
const MAX_NUMBERED_VARIANT: i64 = 32;

/// Appends the platforms a normalised `host` can run, best first.
fn compatibility_list(host: &Platform, out: &mut Vec<Platform>) {
    let with = |arch: &str, variant: Option<String>| {
        let (architecture, variant) = normalize_arch(arch, variant.as_deref().unwrap_or(""));
        Platform {
            architecture,
            variant,
            ..host.clone()
        }
    };
    // Numbered variants, clamped so that a silly `amd64/v99999999` cannot make
    // the list huge (real levels are amd64 v1-v4 and arm v5-v8).
    let numbered = |v: Option<&str>| -> Option<i64> {
        let v = v?;
        let n: i64 = v.strip_prefix('v').unwrap_or(v).parse().ok()?;
        Some(n.min(MAX_NUMBERED_VARIANT))
    };
    match host.architecture.as_str() {
        "amd64" => {
            out.push(host.clone());
            if let Some(n) = numbered(host.variant.as_deref()) {
                for lower in (1..n).rev() {
                    out.push(with("amd64", Some(format!("v{lower}"))));
                }
            }
            out.push(with("386", None));
        }
        "arm" => {
            out.push(host.clone());
            if let Some(n) = numbered(host.variant.as_deref()) {
                for lower in (5..n).rev() {
                    out.push(with("arm", Some(format!("v{lower}"))));
                }
            }
        }
        "arm64" => {
            let Some(ranges) = arm64_ranges(host.variant.as_deref().unwrap_or("v8")) else {
                out.push(host.clone());
                return;
            };
            for (major, top_minor) in ranges {
                for minor in (0..=top_minor).rev() {
                    let v = if minor == 0 {
                        format!("v{major}")
                    } else {
                        format!("v{major}.{minor}")
                    };
                    out.push(with("arm64", Some(v)));
                }
            }
            compatibility_list(&with("arm", Some("v8".to_owned())), out);
        }
        _ => out.push(host.clone()),
    }
}

/// For an arm64 variant, the `(major, highest minor)` ranges it can run, best
/// first: v8.x runs v8.x..v8.0; v9.x runs v9.x..v9.0 and then v8.(x+5)..v8.0
/// (capped at v8.9). `None` for variants containerd does not know.
fn arm64_ranges(variant: &str) -> Option<Vec<(u32, u32)>> {
    let rest = variant.strip_prefix('v')?;
    let (major, minor) = match rest.split_once('.') {
        Some((major, minor)) => (major, minor),
        None => (rest, "0"),
    };
    // Only single digits, as in containerd's table (v8.0 … v8.9, v9.0 … v9.7).
    let digit = |s: &str| (s.len() == 1).then(|| s.parse::<u32>().ok()).flatten();
    match (digit(major)?, digit(minor)?) {
        (8, minor) => Some(vec![(8, minor)]),
        (9, minor) if minor <= 7 => Some(vec![(9, minor), (8, (minor + 5).min(9))]),
        _ => None,
    }
}

/// Windows `os.version` compatibility between a host and a container image
/// (`major.minor.build[.revision]`). Either side missing or the host's version
/// unparseable means compatible.
fn windows_version_matches(host: Option<&str>, container: Option<&str>) -> bool {
    /// Windows Server 2022 (LTSC, build 20348): first release with a stable
    /// container ABI; later hosts run containers back to the previous LTSC.
    const LTSC2022: u16 = 20348;
    /// LTSC builds with a stable ABI, ascending (Server 2022, Server 2025).
    const STABLE_LTSC: [u16; 2] = [LTSC2022, 26100];

    let host = windows_version(host.unwrap_or(""));
    let Some(container) = container.filter(|c| !c.is_empty()) else {
        return true;
    };
    if host == (0, 0, 0) {
        return true;
    }
    let ctr = windows_version(container);
    if (host.0, host.1) != (ctr.0, ctr.1) {
        return false;
    }
    if host.2 < LTSC2022 {
        return host.2 == ctr.2;
    }
    let oldest = STABLE_LTSC
        .iter()
        .rev()
        .find(|&&ltsc| host.2 > ltsc)
        .copied()
        .unwrap_or(LTSC2022);
    (oldest..=host.2).contains(&ctr.2)
}

/// `(major, minor, build)` of a Windows version string; zeros if unparseable.
fn windows_version(v: &str) -> (u8, u8, u16) {
    let mut parts = v.split('.');
    let parsed = (|| {
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let build = parts.next()?.parse().ok()?;
        Some((major, minor, build))
    })();
    parsed.unwrap_or((0, 0, 0))
}
