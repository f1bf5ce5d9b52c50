//! Data-driven cases for `oci::platform`: parsing and normalisation,
//! invalid specifiers, host matchers, preference order and JSON shape.

use oci::{Platform, PlatformError, PlatformMatcher};
use rstest::rstest;

fn p(s: &str) -> Platform {
    Platform::parse(s).unwrap_or_else(|e| panic!("test platform {s:?}: {e}"))
}

// ---------------------------------------------------------------------------
// Parsing and normalisation: input → (Display, os, architecture, variant)
// ---------------------------------------------------------------------------

#[rstest]
#[case::linux_amd64("linux/amd64", "linux/amd64", "linux", "amd64", None)]
#[case::linux_arm64("linux/arm64", "linux/arm64", "linux", "arm64", None)]
#[case::arm64_v8_is_default("linux/arm64/v8", "linux/arm64", "linux", "arm64", None)]
#[case::arm64_bare_8("linux/arm64/8", "linux/arm64", "linux", "arm64", None)]
#[case::arm64_v8_0("linux/arm64/v8.0", "linux/arm64", "linux", "arm64", None)]
#[case::arm64_v8_2_kept("linux/arm64/v8.2", "linux/arm64/v8.2", "linux", "arm64", Some("v8.2"))]
#[case::arm64_bare_9("linux/arm64/9", "linux/arm64/v9", "linux", "arm64", Some("v9"))]
#[case::arm64_v9_0("linux/arm64/v9.0", "linux/arm64/v9", "linux", "arm64", Some("v9"))]
#[case::aarch64("linux/aarch64", "linux/arm64", "linux", "arm64", None)]
#[case::aarch64_v8("linux/aarch64/v8", "linux/arm64", "linux", "arm64", None)]
#[case::arm_defaults_to_v7("linux/arm", "linux/arm/v7", "linux", "arm", Some("v7"))]
#[case::arm_bare_7("linux/arm/7", "linux/arm/v7", "linux", "arm", Some("v7"))]
#[case::arm_v6("linux/arm/v6", "linux/arm/v6", "linux", "arm", Some("v6"))]
#[case::arm_bare_5("linux/arm/5", "linux/arm/v5", "linux", "arm", Some("v5"))]
#[case::arm_bare_8("linux/arm/8", "linux/arm/v8", "linux", "arm", Some("v8"))]
#[case::armhf("linux/armhf", "linux/arm/v7", "linux", "arm", Some("v7"))]
#[case::armel("linux/armel", "linux/arm/v6", "linux", "arm", Some("v6"))]
#[case::x86_64("linux/x86_64", "linux/amd64", "linux", "amd64", None)]
#[case::x86_dash_64("linux/x86-64", "linux/amd64", "linux", "amd64", None)]
#[case::amd64_v1_is_default("linux/amd64/v1", "linux/amd64", "linux", "amd64", None)]
#[case::amd64_v3("linux/amd64/v3", "linux/amd64/v3", "linux", "amd64", Some("v3"))]
#[case::amd64_variant_lowercased("linux/amd64/V2", "linux/amd64/v2", "linux", "amd64", Some("v2"))]
#[case::i386("linux/i386", "linux/386", "linux", "386", None)]
#[case::i386_drops_variant("linux/i386/sse2", "linux/386", "linux", "386", None)]
#[case::go_386("linux/386", "linux/386", "linux", "386", None)]
#[case::windows_amd64("windows/amd64", "windows/amd64", "windows", "amd64", None)]
#[case::macos_is_darwin("macos/arm64", "darwin/arm64", "darwin", "arm64", None)]
#[case::freebsd("freebsd/amd64", "freebsd/amd64", "freebsd", "amd64", None)]
#[case::uppercase("Linux/AMD64", "linux/amd64", "linux", "amd64", None)]
#[case::uppercase_arm_variant("LINUX/ARM/V7", "linux/arm/v7", "linux", "arm", Some("v7"))]
#[case::ppc64le("linux/ppc64le", "linux/ppc64le", "linux", "ppc64le", None)]
#[case::s390x("linux/s390x", "linux/s390x", "linux", "s390x", None)]
#[case::riscv64("linux/riscv64", "linux/riscv64", "linux", "riscv64", None)]
#[case::mips64("linux/mips64", "linux/mips64", "linux", "mips64", None)]
#[case::loong64("linux/loong64", "linux/loong64", "linux", "loong64", None)]
#[case::unknown_arch_kept("linux/weird_arch", "linux/weird_arch", "linux", "weird_arch", None)]
#[case::unknown_os_kept("plan10/amd64", "plan10/amd64", "plan10", "amd64", None)]
#[case::arch_only_arm64("arm64", "linux/arm64", "linux", "arm64", None)]
#[case::arch_only_aarch64("aarch64", "linux/arm64", "linux", "arm64", None)]
#[case::arch_only_amd64("amd64", "linux/amd64", "linux", "amd64", None)]
#[case::arch_only_x86_64("x86_64", "linux/amd64", "linux", "amd64", None)]
#[case::arch_only_arm("arm", "linux/arm/v7", "linux", "arm", Some("v7"))]
#[case::arch_only_armhf("armhf", "linux/arm/v7", "linux", "arm", Some("v7"))]
#[case::arch_only_armel("armel", "linux/arm/v6", "linux", "arm", Some("v6"))]
#[case::arch_only_i386("i386", "linux/386", "linux", "386", None)]
#[case::arch_only_ppc64le("ppc64le", "linux/ppc64le", "linux", "ppc64le", None)]
#[case::arch_only_s390x("s390x", "linux/s390x", "linux", "s390x", None)]
#[case::arch_only_riscv64("riscv64", "linux/riscv64", "linux", "riscv64", None)]
fn parses_and_normalises(
    #[case] input: &str,
    #[case] display: &str,
    #[case] os: &str,
    #[case] arch: &str,
    #[case] variant: Option<&str>,
) {
    let got = Platform::parse(input).unwrap();
    assert_eq!(got.to_string(), display);
    assert_eq!(got.os, os);
    assert_eq!(got.architecture, arch);
    assert_eq!(got.variant.as_deref(), variant);
    assert_eq!(got.os_version, None);
    assert!(got.os_features.is_empty());
    // Normalised, stable under re-parsing and reachable through FromStr/new.
    assert!(got.is_normalized());
    assert_eq!(got.normalize(), got);
    assert_eq!(Platform::parse(display).unwrap(), got);
    assert_eq!(input.parse::<Platform>().unwrap(), got);
    assert_eq!(Platform::new(os, arch, variant), got);
}

// A lone OS takes the architecture (and variant) of the host, as in containerd.
#[rstest]
#[case::linux("linux", "linux")]
#[case::linux_uppercase("LINUX", "linux")]
#[case::windows("windows", "windows")]
#[case::darwin("darwin", "darwin")]
#[case::macos("macos", "darwin")]
#[case::freebsd("freebsd", "freebsd")]
fn os_only_uses_host_architecture(#[case] input: &str, #[case] os: &str) {
    let host = Platform::host();
    let got = Platform::parse(input).unwrap();
    assert_eq!(got.os, os);
    assert_eq!(got.architecture, host.architecture);
    assert_eq!(got.variant, host.variant);
    assert!(got.is_normalized());
}

// ---------------------------------------------------------------------------
// Platform::new and normalize on hand-built values
// ---------------------------------------------------------------------------

#[rstest]
#[case::empty_os_is_linux("", "amd64", None, "linux/amd64")]
#[case::empty_variant_is_none("linux", "amd64", Some(""), "linux/amd64")]
#[case::arm64_variant_uppercase_v8("linux", "ARM64", Some("V8"), "linux/arm64")]
#[case::amd64_keeps_unknown_variant("linux", "amd64", Some("foo"), "linux/amd64/foo")]
#[case::arm_keeps_unknown_variant("linux", "arm", Some("v4"), "linux/arm/v4")]
#[case::armhf_overrides_variant("linux", "armhf", Some("v6"), "linux/arm/v7")]
fn new_normalises(
    #[case] os: &str,
    #[case] arch: &str,
    #[case] variant: Option<&str>,
    #[case] display: &str,
) {
    let got = Platform::new(os, arch, variant);
    assert_eq!(got.to_string(), display);
    assert!(got.is_normalized());
}

#[test]
fn normalize_sorts_and_dedups_features_and_keeps_os_version() {
    let raw = Platform {
        architecture: "x86_64".into(),
        os: "Windows".into(),
        os_version: Some("10.0.17763.1234".into()),
        os_features: vec!["win32k".into(), "a".into(), "win32k".into()],
        variant: Some("".into()),
    };
    assert!(!raw.is_normalized());
    let n = raw.normalize();
    assert_eq!(n.os, "windows");
    assert_eq!(n.architecture, "amd64");
    assert_eq!(n.variant, None);
    assert_eq!(n.os_version.as_deref(), Some("10.0.17763.1234"));
    assert_eq!(n.os_features, ["a", "win32k"]);
    assert_eq!(n.normalize(), n);
}

#[rstest]
#[case::empty_os_is_unknown("", "amd64", None, "unknown")]
#[case::empty_arch_skipped("linux", "", None, "linux")]
#[case::raw_fields_not_normalised("Linux", "aarch64", Some("v8"), "Linux/aarch64/v8")]
fn display_of_raw_fields(
    #[case] os: &str,
    #[case] arch: &str,
    #[case] variant: Option<&str>,
    #[case] want: &str,
) {
    let raw = Platform {
        architecture: arch.into(),
        os: os.into(),
        os_version: None,
        os_features: vec![],
        variant: variant.map(Into::into),
    };
    assert_eq!(raw.to_string(), want);
}

// ---------------------------------------------------------------------------
// Invalid specifiers
// ---------------------------------------------------------------------------

#[rstest]
#[case::empty("", PlatformError::Empty)]
#[case::four_components("linux/amd64/v3/x", PlatformError::TooManyComponents("linux/amd64/v3/x".into()))]
#[case::trailing_slash_after_variant("linux/arm/v7/", PlatformError::TooManyComponents("linux/arm/v7/".into()))]
#[case::trailing_slash("linux/", PlatformError::EmptyComponent("linux/".into()))]
#[case::leading_slash("/amd64", PlatformError::EmptyComponent("/amd64".into()))]
#[case::double_slash("linux//v7", PlatformError::EmptyComponent("linux//v7".into()))]
#[case::lone_slash("/", PlatformError::EmptyComponent("/".into()))]
#[case::space("linux/amd 64", PlatformError::InvalidComponent { input: "linux/amd 64".into(), component: "amd 64".into() })]
#[case::surrounding_space(" linux/amd64", PlatformError::InvalidComponent { input: " linux/amd64".into(), component: " linux".into() })]
#[case::wildcard("linux/*", PlatformError::InvalidComponent { input: "linux/*".into(), component: "*".into() })]
#[case::dot_in_os("lin.ux/amd64", PlatformError::InvalidComponent { input: "lin.ux/amd64".into(), component: "lin.ux".into() })]
#[case::os_options_unsupported("windows(10.0.17763)/amd64", PlatformError::InvalidComponent { input: "windows(10.0.17763)/amd64".into(), component: "windows(10.0.17763)".into() })]
#[case::plus_in_variant("linux/amd64/v2+", PlatformError::InvalidComponent { input: "linux/amd64/v2+".into(), component: "v2+".into() })]
#[case::colon("linux:amd64", PlatformError::InvalidComponent { input: "linux:amd64".into(), component: "linux:amd64".into() })]
#[case::non_ascii("linüx/amd64", PlatformError::InvalidComponent { input: "linüx/amd64".into(), component: "linüx".into() })]
#[case::backslash("linux\\amd64", PlatformError::InvalidComponent { input: "linux\\amd64".into(), component: "linux\\amd64".into() })]
#[case::unknown_single("foo", PlatformError::UnknownOsOrArch("foo".into()))]
#[case::unknown_single_variantish("v7", PlatformError::UnknownOsOrArch("v7".into()))]
fn rejects_invalid(#[case] input: &str, #[case] want: PlatformError) {
    assert_eq!(Platform::parse(input).unwrap_err(), want);
    assert!(input.parse::<Platform>().is_err());
}

#[test]
fn error_messages_carry_the_input() {
    let e = Platform::parse("linux/amd 64").unwrap_err().to_string();
    assert!(e.contains("\"linux/amd 64\""), "{e}");
    assert!(e.contains("\"amd 64\""), "{e}");
    let e = Platform::parse("foo").unwrap_err().to_string();
    assert!(e.contains("\"foo\""), "{e}");
}

// ---------------------------------------------------------------------------
// PlatformMatcher::only: (host, candidate) → can the host run it?
// ---------------------------------------------------------------------------

#[rstest]
#[case::amd64_runs_amd64("linux/amd64", "linux/amd64", true)]
#[case::amd64_runs_386("linux/amd64", "linux/386", true)]
#[case::amd64_runs_x86_64_alias("linux/amd64", "linux/x86_64", true)]
#[case::amd64_runs_amd64_v1("linux/amd64", "linux/amd64/v1", true)]
#[case::amd64_not_amd64_v2("linux/amd64", "linux/amd64/v2", false)]
#[case::amd64_not_arm64("linux/amd64", "linux/arm64", false)]
#[case::amd64_not_windows("linux/amd64", "windows/amd64", false)]
#[case::amd64_v3_runs_v2("linux/amd64/v3", "linux/amd64/v2", true)]
#[case::amd64_v3_runs_v1("linux/amd64/v3", "linux/amd64", true)]
#[case::amd64_v3_runs_386("linux/amd64/v3", "linux/386", true)]
#[case::amd64_v3_not_v4("linux/amd64/v3", "linux/amd64/v4", false)]
#[case::amd64_v2_not_v3("linux/amd64/v2", "linux/amd64/v3", false)]
#[case::i386_not_amd64("linux/386", "linux/amd64", false)]
#[case::arm_v7_runs_v7("linux/arm/v7", "linux/arm/v7", true)]
#[case::arm_v7_runs_bare_arm("linux/arm/v7", "linux/arm", true)]
#[case::arm_v7_runs_armhf("linux/arm/v7", "linux/armhf", true)]
#[case::arm_v7_runs_v6("linux/arm/v7", "linux/arm/v6", true)]
#[case::arm_v7_runs_v5("linux/arm/v7", "linux/arm/v5", true)]
#[case::arm_v7_not_v8("linux/arm/v7", "linux/arm/v8", false)]
#[case::arm_v7_not_arm64("linux/arm/v7", "linux/arm64", false)]
#[case::arm_v6_runs_armel("linux/arm/v6", "linux/armel", true)]
#[case::arm_v6_runs_v5("linux/arm/v6", "linux/arm/v5", true)]
#[case::arm_v6_not_v7("linux/arm/v6", "linux/arm/v7", false)]
#[case::arm_v5_not_v6("linux/arm/v5", "linux/arm/v6", false)]
#[case::arm_v8_runs_v5("linux/arm/v8", "linux/arm/v5", true)]
#[case::arm64_runs_arm64("linux/arm64", "linux/arm64", true)]
#[case::arm64_runs_arm64_v8("linux/arm64", "linux/arm64/v8", true)]
#[case::arm64_runs_aarch64("linux/arm64", "linux/aarch64", true)]
#[case::arm64_runs_arm_v8("linux/arm64", "linux/arm/v8", true)]
#[case::arm64_runs_arm_v7("linux/arm64", "linux/arm/v7", true)]
#[case::arm64_runs_arm_v5("linux/arm64", "linux/arm/v5", true)]
#[case::arm64_not_v8_1("linux/arm64", "linux/arm64/v8.1", false)]
#[case::arm64_not_amd64("linux/arm64", "linux/amd64", false)]
#[case::arm64_v8_2_runs_v8_1("linux/arm64/v8.2", "linux/arm64/v8.1", true)]
#[case::arm64_v8_2_runs_v8("linux/arm64/v8.2", "linux/arm64", true)]
#[case::arm64_v8_2_not_v8_3("linux/arm64/v8.2", "linux/arm64/v8.3", false)]
#[case::arm64_v8_2_runs_arm_v7("linux/arm64/v8.2", "linux/arm/v7", true)]
#[case::arm64_v9_runs_v8_5("linux/arm64/v9", "linux/arm64/v8.5", true)]
#[case::arm64_v9_not_v8_6("linux/arm64/v9", "linux/arm64/v8.6", false)]
#[case::arm64_v9_not_v9_1("linux/arm64/v9", "linux/arm64/v9.1", false)]
#[case::arm64_v9_2_runs_v8_7("linux/arm64/v9.2", "linux/arm64/v8.7", true)]
#[case::arm64_v9_5_runs_v8_9("linux/arm64/v9.5", "linux/arm64/v8.9", true)]
#[case::arm64_v9_runs_arm_v8("linux/arm64/v9", "linux/arm/v8", true)]
#[case::arm64_unknown_variant_runs_itself("linux/arm64/v10", "linux/arm64/v10", true)]
#[case::arm64_unknown_variant_not_v8("linux/arm64/v10", "linux/arm64", false)]
#[case::ppc64le_runs_itself("linux/ppc64le", "linux/ppc64le", true)]
#[case::ppc64le_not_ppc64("linux/ppc64le", "linux/ppc64", false)]
#[case::s390x_runs_itself("linux/s390x", "linux/s390x", true)]
#[case::riscv64_runs_itself("linux/riscv64", "linux/riscv64", true)]
#[case::riscv64_not_arm64("linux/riscv64", "linux/arm64", false)]
#[case::windows_amd64_runs_windows_386("windows/amd64", "windows/386", true)]
#[case::darwin_arm64_not_linux("darwin/arm64", "linux/arm64", false)]
fn only_matches(#[case] host: &str, #[case] candidate: &str, #[case] want: bool) {
    let m = PlatformMatcher::only(&p(host));
    assert_eq!(m.matches(&p(candidate)), want, "{host} running {candidate}");
}

// Raw (not normalised) values coming from an index still match.
#[test]
fn only_normalises_raw_candidates() {
    let m = PlatformMatcher::only(&p("linux/arm64"));
    let raw = Platform {
        architecture: "AArch64".into(),
        os: "Linux".into(),
        os_version: None,
        os_features: vec![],
        variant: Some("v8".into()),
    };
    assert!(m.matches(&raw));
}

// ---------------------------------------------------------------------------
// Platform::matches: exactly this platform
// ---------------------------------------------------------------------------

#[rstest]
#[case::same("linux/amd64", "linux/amd64", true)]
#[case::amd64_v1("linux/amd64/v1", "linux/amd64", true)]
#[case::arm_default_v7("linux/arm", "linux/arm/v7", true)]
#[case::arm64_default_v8("linux/arm64", "linux/arm64/v8", true)]
#[case::no_386_fallback("linux/amd64", "linux/386", false)]
#[case::no_lower_arm("linux/arm/v7", "linux/arm/v6", false)]
#[case::no_arm_on_arm64("linux/arm64", "linux/arm/v8", false)]
#[case::os_differs("linux/amd64", "windows/amd64", false)]
fn exact_matches(#[case] a: &str, #[case] b: &str, #[case] want: bool) {
    assert_eq!(p(a).matches(&p(b)), want, "{a} vs {b}");
}

fn with_os(base: &str, version: Option<&str>, features: &[&str]) -> Platform {
    Platform {
        os_version: version.map(Into::into),
        os_features: features.iter().map(|f| (*f).to_owned()).collect(),
        ..p(base)
    }
}

#[rstest]
#[case::linux_ignores_os_version(with_os("linux/amd64", Some("1"), &[]), with_os("linux/amd64", Some("2"), &[]), true)]
#[case::features_subset(with_os("linux/amd64", None, &["a", "b"]), with_os("linux/amd64", None, &["b"]), true)]
#[case::features_not_subset(with_os("linux/amd64", None, &["a"]), with_os("linux/amd64", None, &["b"]), false)]
#[case::candidate_feature_host_none(with_os("linux/amd64", None, &[]), with_os("linux/amd64", None, &["a"]), false)]
#[case::host_feature_candidate_none(with_os("linux/amd64", None, &["a"]), with_os("linux/amd64", None, &[]), true)]
#[case::windows_ignores_win32k(with_os("windows/amd64", None, &[]), with_os("windows/amd64", None, &["win32k"]), true)]
#[case::windows_same_build(with_os("windows/amd64", Some("10.0.17763.1"), &[]), with_os("windows/amd64", Some("10.0.17763.5820"), &[]), true)]
#[case::windows_old_host_newer_image(with_os("windows/amd64", Some("10.0.17763.1"), &[]), with_os("windows/amd64", Some("10.0.20348.1"), &[]), false)]
#[case::windows_2025_runs_2022(with_os("windows/amd64", Some("10.0.26100.1"), &[]), with_os("windows/amd64", Some("10.0.20348.2"), &[]), true)]
#[case::windows_2025_not_2019(with_os("windows/amd64", Some("10.0.26100.1"), &[]), with_os("windows/amd64", Some("10.0.17763.2"), &[]), false)]
#[case::windows_2022_not_23h2(with_os("windows/amd64", Some("10.0.20348.1"), &[]), with_os("windows/amd64", Some("10.0.25398.1"), &[]), false)]
#[case::windows_major_differs(with_os("windows/amd64", Some("10.0.20348.1"), &[]), with_os("windows/amd64", Some("11.0.20348.1"), &[]), false)]
#[case::windows_image_without_version(with_os("windows/amd64", Some("10.0.20348.1"), &[]), with_os("windows/amd64", None, &[]), true)]
#[case::windows_host_without_version(with_os("windows/amd64", None, &[]), with_os("windows/amd64", Some("10.0.20348.1"), &[]), true)]
fn os_version_and_features(
    #[case] host: Platform,
    #[case] candidate: Platform,
    #[case] want: bool,
) {
    assert_eq!(host.matches(&candidate), want);
    assert_eq!(PlatformMatcher::only(&host).matches(&candidate), want);
}

// ---------------------------------------------------------------------------
// Preference order
// ---------------------------------------------------------------------------

#[rstest]
#[case::amd64("linux/amd64", &["linux/amd64", "linux/386"])]
#[case::amd64_v3("linux/amd64/v3", &["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"])]
#[case::arm_v7("linux/arm/v7", &["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"])]
#[case::arm_v5("linux/arm/v5", &["linux/arm/v5"])]
#[case::arm64(
    "linux/arm64",
    &["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
)]
#[case::arm64_v8_2(
    "linux/arm64/v8.2",
    &["linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
)]
#[case::arm64_v9_1(
    "linux/arm64/v9.1",
    &[
        "linux/arm64/v9.1", "linux/arm64/v9",
        "linux/arm64/v8.6", "linux/arm64/v8.5", "linux/arm64/v8.4", "linux/arm64/v8.3",
        "linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64",
        "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5",
    ]
)]
#[case::s390x("linux/s390x", &["linux/s390x"])]
#[case::arm64_unknown_variant("linux/arm64/v10", &["linux/arm64/v10"])]
fn preference_lists(#[case] host: &str, #[case] want: &[&str]) {
    let m = PlatformMatcher::only(&p(host));
    let got: Vec<String> = m.preference().iter().map(ToString::to_string).collect();
    assert_eq!(got, want);
    assert!(m.preference().iter().all(Platform::is_normalized));
}

#[test]
fn absurd_variant_keeps_list_small() {
    let m = PlatformMatcher::only(&p("linux/amd64/v4000000000"));
    assert!(m.preference().len() < 40);
    assert!(m.matches(&p("linux/amd64/v4000000000")));
    assert!(m.matches(&p("linux/amd64/v2")));
}

#[rstest]
#[case::arm_v7_prefers_v7("linux/arm/v7", &["linux/arm/v5", "linux/arm/v6", "linux/arm/v7"], Some("linux/arm/v7"))]
#[case::arm_v7_then_v6("linux/arm/v7", &["linux/arm/v5", "linux/arm/v6"], Some("linux/arm/v6"))]
#[case::arm_v7_then_v5("linux/arm/v7", &["linux/amd64", "linux/arm/v5", "linux/arm64"], Some("linux/arm/v5"))]
#[case::arm_v7_nothing("linux/arm/v7", &["linux/amd64", "linux/arm64", "linux/arm/v8"], None)]
#[case::amd64_over_386("linux/amd64", &["linux/386", "linux/amd64"], Some("linux/amd64"))]
#[case::amd64_falls_back_to_386("linux/amd64", &["linux/arm64", "linux/386"], Some("linux/386"))]
#[case::amd64_v3_best_level("linux/amd64/v3", &["linux/386", "linux/amd64", "linux/amd64/v4", "linux/amd64/v2"], Some("linux/amd64/v2"))]
#[case::arm64_over_arm("linux/arm64", &["linux/arm/v7", "linux/arm64", "linux/arm/v8"], Some("linux/arm64"))]
#[case::arm64_arm_v8_over_v7("linux/arm64", &["linux/arm/v7", "linux/arm/v8"], Some("linux/arm/v8"))]
#[case::arm64_v8_2_exact_first("linux/arm64/v8.2", &["linux/arm64", "linux/arm64/v8.2", "linux/arm64/v8.1"], Some("linux/arm64/v8.2"))]
#[case::other_os_ignored("linux/amd64", &["windows/amd64", "darwin/amd64"], None)]
#[case::empty("linux/amd64", &[], None)]
fn best_picks_preferred(
    #[case] host: &str,
    #[case] candidates: &[&str],
    #[case] want: Option<&str>,
) {
    let m = PlatformMatcher::only(&p(host));
    let cands: Vec<Platform> = candidates.iter().map(|c| p(c)).collect();
    let got = m.best(&cands).map(ToString::to_string);
    assert_eq!(got.as_deref(), want);
}

#[test]
fn best_keeps_first_of_equals() {
    let a = p("linux/amd64");
    let b = Platform::new("linux", "x86_64", Some("v1"));
    assert_eq!(a, b);
    let cands = [a, b];
    let m = PlatformMatcher::only(&p("linux/amd64"));
    assert!(std::ptr::eq(m.best(&cands).unwrap(), &cands[0]));
}

#[rstest]
#[case::amd64_before_386("linux/amd64", "linux/amd64", "linux/386", true)]
#[case::not_386_before_amd64("linux/amd64", "linux/386", "linux/amd64", false)]
#[case::equal_is_not_less("linux/amd64", "linux/amd64", "linux/amd64", false)]
#[case::match_before_non_match("linux/amd64", "linux/386", "linux/arm64", true)]
#[case::non_match_not_before_match("linux/amd64", "linux/arm64", "linux/386", false)]
#[case::neither_matches("linux/amd64", "linux/arm64", "linux/s390x", false)]
#[case::arm_v6_before_v5("linux/arm/v7", "linux/arm/v6", "linux/arm/v5", true)]
fn less_orders(#[case] host: &str, #[case] a: &str, #[case] b: &str, #[case] want: bool) {
    let m = PlatformMatcher::only(&p(host));
    assert_eq!(m.less(&p(a), &p(b)), want);
}

#[test]
fn more_os_features_preferred_among_equals() {
    let host = with_os("linux/amd64", None, &["a", "b"]);
    let m = PlatformMatcher::only(&host);
    let plain = with_os("linux/amd64", None, &[]);
    let featured = with_os("linux/amd64", None, &["a"]);
    assert!(m.less(&featured, &plain));
    assert!(!m.less(&plain, &featured));
    assert_eq!(m.best([&plain, &featured]), Some(&featured));
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

#[rstest]
#[case::minimal(p("linux/arm64"), r#"{"architecture":"arm64","os":"linux"}"#)]
#[case::with_variant(
    p("linux/arm/v7"),
    r#"{"architecture":"arm","os":"linux","variant":"v7"}"#
)]
#[case::all_fields(
    with_os("windows/amd64/v3", Some("10.0.17763.5820"), &["win32k"]),
    r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.5820","os.features":["win32k"],"variant":"v3"}"#
)]
fn serde_round_trip(#[case] platform: Platform, #[case] json: &str) {
    assert_eq!(serde_json::to_string(&platform).unwrap(), json);
    assert_eq!(serde_json::from_str::<Platform>(json).unwrap(), platform);
}

#[test]
fn deserialise_keeps_fields_as_written() {
    let json = r#"{"variant":"v8","os":"linux","architecture":"aarch64","x-extra":1}"#;
    let got: Platform = serde_json::from_str(json).unwrap();
    assert_eq!(got.architecture, "aarch64");
    assert_eq!(got.variant.as_deref(), Some("v8"));
    assert!(!got.is_normalized());
    assert_eq!(got.normalize(), p("linux/arm64"));
    assert!(serde_json::from_str::<Platform>(r#"{"architecture":"amd64"}"#).is_err());
}

// ---------------------------------------------------------------------------
// Host
// ---------------------------------------------------------------------------

#[test]
fn host_is_normalised_and_round_trips() {
    let host = Platform::host();
    assert!(host.is_normalized(), "{host:?}");
    assert!(!host.os.is_empty() && !host.architecture.is_empty());
    assert_eq!(Platform::parse(&host.to_string()).unwrap(), host);
    assert!(PlatformMatcher::only(&host).matches(&host));
    assert_eq!(PlatformMatcher::only(&host).preference()[0], host);
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn host_on_linux_x86_64() {
    assert_eq!(Platform::host().to_string(), "linux/amd64");
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
#[test]
fn host_on_linux_aarch64() {
    assert_eq!(Platform::host().to_string(), "linux/arm64");
}

#[cfg(target_os = "macos")]
#[test]
fn host_on_macos_is_darwin() {
    assert_eq!(Platform::host().os, "darwin");
}
