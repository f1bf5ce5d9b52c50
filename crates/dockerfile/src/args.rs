//! The build arguments BuildKit defines automatically.

use oci::Platform;

/// `BUILDPLATFORM`, `BUILDOS`, …, `TARGETVARIANT` and `TARGETSTAGE`, in BuildKit's
/// order, before any build argument of the same name overrides them.
pub fn automatic(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
) -> [(&'static str, String); 11] {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    [
        ("BUILDPLATFORM", build.to_string()),
        ("BUILDOS", build.os.clone()),
        ("BUILDOSVERSION", opt(&build.os_version)),
        ("BUILDARCH", build.architecture.clone()),
        ("BUILDVARIANT", opt(&build.variant)),
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os.clone()),
        ("TARGETOSVERSION", opt(&target.os_version)),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", opt(&target.variant)),
        ("TARGETSTAGE", target_stage.to_owned()),
    ]
}
