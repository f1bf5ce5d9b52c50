//! SPDX 2.3 SBOMs of an image's root filesystem, made by manifold itself (the
//! `builtin` generator): the OS packages of the dpkg status database (licenses from
//! the packages' DEP-5 `copyright` files) and of Alpine's `lib/apk/db/installed`,
//! with versions, architectures and package URLs.
//!
//! Everything is read through [`archive::Root`] (in-root resolution; a database that
//! is a symlink, a FIFO or larger than [`MAX_DATABASE`] is not read) and parsed
//! defensively: what cannot be used becomes a warning, never an error of the build.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use archive::{CleanPath, Root};
use serde_json::{Value, json};

/// The predicate type of an SPDX statement, as BuildKit writes it.
pub const PREDICATE_SPDX: &str = "https://spdx.dev/Document";
/// The SPDX id of the image's own package in the document.
const IMAGE_ID: &str = "SPDXRef-Image";
/// The largest package database read (a real one is a few MiB).
pub const MAX_DATABASE: u64 = 64 << 20;
/// The largest `copyright` file read for a package's licenses.
const MAX_COPYRIGHT: u64 = 1 << 20;
/// At most this many packages (a real image has a few thousand).
const MAX_PACKAGES: usize = 100_000;

/// Which package database a package is from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Manager {
    Deb,
    Apk,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub manager: Manager,
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    /// The source package (dpkg `Source:`, apk `o:`), when it differs.
    pub source: Option<String>,
    pub maintainer: Option<String>,
    /// License names as the package states them (DEP-5 short names, apk `L:`).
    pub licenses: Vec<String>,
}

/// What a scan found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scan {
    pub packages: Vec<Package>,
    /// The distribution, from `etc/os-release` (`ID`, `VERSION_ID`).
    pub distro: Option<(String, String)>,
    /// What could not be read, for people.
    pub warnings: Vec<String>,
}

/// The scan of the committed snapshot `key` (a root filesystem): remembered under
/// `dir` by key, since a snapshot never changes, else made by `scan_now` and
/// remembered. So a no-op rebuild mounts nothing to make its SBOM.
pub fn scan_snapshot(
    dir: &std::path::Path,
    key: &str,
    scan_now: impl FnOnce() -> Result<Scan, String>,
) -> Result<Scan, String> {
    let path = dir.join(format!(
        "{}.json",
        oci::Digest::sha256(key.as_bytes()).hex()
    ));
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(s) = serde_json::from_slice::<Scan>(&bytes)
    {
        return Ok(s);
    }
    let s = scan_now()?;
    // Best effort: without the record, the next build scans again.
    let _ = std::fs::create_dir_all(dir).and_then(|()| {
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&s).expect("invariant: a scan serialises"),
        )?;
        std::fs::rename(&tmp, &path)
    });
    Ok(s)
}

/// Scan the root filesystem at `root`.
pub fn scan(root: &Root) -> Scan {
    let distro = read_small(root, "etc/os-release", 64 << 10, &mut Vec::new()).map(|t| {
        let field = |k: &str| {
            t.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_owned())
                .unwrap_or_default()
        };
        (field("ID"), field("VERSION_ID"))
    });
    let mut s = Scan {
        distro,
        ..Scan::default()
    };
    if let Some(text) = read_small(root, "var/lib/dpkg/status", MAX_DATABASE, &mut s.warnings) {
        let mut found = parse_dpkg_status(&text, &mut s.warnings);
        for p in &mut found {
            p.licenses = deb_licenses(root, &p.name);
        }
        s.packages.extend(found);
    }
    if let Some(text) = read_small(root, "lib/apk/db/installed", MAX_DATABASE, &mut s.warnings) {
        s.packages
            .extend(parse_apk_installed(&text, &mut s.warnings));
    }
    if s.packages.len() > MAX_PACKAGES {
        s.warnings.push(format!(
            "more than {MAX_PACKAGES} packages; the SBOM lists the first {MAX_PACKAGES}"
        ));
        s.packages.truncate(MAX_PACKAGES);
    }
    s.packages.sort();
    s.packages.dedup();
    s
}

/// A regular file of the image, at most `max` bytes, as text; `None` (with a
/// warning unless it is simply absent) otherwise.
fn read_small(root: &Root, path: &str, max: u64, warnings: &mut Vec<String>) -> Option<String> {
    let p = CleanPath::new(path.as_bytes()).ok()?;
    match root.lstat(&p) {
        Ok(None) => return None,
        Ok(Some(_)) => {}
        Err(e) => {
            warnings.push(format!("/{path}: {e}; not read"));
            return None;
        }
    }
    let f = match root.open_regular(&p) {
        Ok(f) => f,
        Err(e) => {
            warnings.push(format!(
                "/{path} is not a regular file in the image ({e}); not read"
            ));
            return None;
        }
    };
    let mut bytes = Vec::new();
    if let Err(e) = f.take(max + 1).read_to_end(&mut bytes) {
        warnings.push(format!("/{path}: {e}; not read"));
        return None;
    }
    if bytes.len() as u64 > max {
        warnings.push(format!("/{path} is larger than {max} bytes; not read"));
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// RFC 822-style paragraphs: `(field, value)` lists, continuation lines joined.
fn paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn field<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The installed packages of a dpkg status database (`Status: … installed`).
pub fn parse_dpkg_status(text: &str, warnings: &mut Vec<String>) -> Vec<Package> {
    let mut out = Vec::new();
    let mut malformed = 0;
    for p in paragraphs(text) {
        let installed =
            field(&p, "Status").is_some_and(|s| s.split_whitespace().nth(2) == Some("installed"));
        if !installed {
            continue;
        }
        let (Some(name), Some(version)) = (field(&p, "Package"), field(&p, "Version")) else {
            malformed += 1;
            continue;
        };
        if !valid_token(name) || !valid_token(version) {
            malformed += 1;
            continue;
        }
        let source = field(&p, "Source")
            // `Source: name (version)`
            .and_then(|s| s.split_whitespace().next())
            .filter(|s| *s != name && valid_token(s))
            .map(str::to_owned);
        out.push(Package {
            manager: Manager::Deb,
            name: name.to_owned(),
            version: version.to_owned(),
            arch: field(&p, "Architecture").map(str::to_owned),
            source,
            maintainer: field(&p, "Maintainer").map(str::to_owned),
            licenses: Vec::new(),
        });
    }
    if malformed > 0 {
        warnings.push(format!(
            "/var/lib/dpkg/status: {malformed} installed package entr(ies) without a usable Package or Version were left out"
        ));
    }
    out
}

/// The packages of Alpine's `lib/apk/db/installed`.
pub fn parse_apk_installed(text: &str, warnings: &mut Vec<String>) -> Vec<Package> {
    let mut out = Vec::new();
    let mut malformed = 0;
    for p in paragraphs(text) {
        // Single-letter keys, case-sensitive: `P` is the name, `p` what it provides.
        let get = |k: &str| p.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let (Some(name), Some(version)) = (get("P"), get("V")) else {
            malformed += 1;
            continue;
        };
        if !valid_token(name) || !valid_token(version) {
            malformed += 1;
            continue;
        }
        out.push(Package {
            manager: Manager::Apk,
            name: name.to_owned(),
            version: version.to_owned(),
            arch: get("A").map(str::to_owned),
            source: get("o").filter(|o| *o != name).map(str::to_owned),
            maintainer: get("m").map(str::to_owned),
            licenses: get("L").map(|l| vec![l.to_owned()]).unwrap_or_default(),
        });
    }
    if malformed > 0 {
        warnings.push(format!(
            "/lib/apk/db/installed: {malformed} entr(ies) without a usable P: or V: were left out"
        ));
    }
    out
}

/// A name or version as package managers write them: printable, no spaces, short.
fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.chars().all(|c| c.is_ascii_graphic())
}

/// The license short names of a DEP-5 (machine-readable) `copyright` file of
/// package `name`, in order of appearance; none when the file is absent, not
/// machine-readable, or not a regular file.
fn deb_licenses(root: &Root, name: &str) -> Vec<String> {
    if !valid_token(name) || name.contains('/') {
        return Vec::new();
    }
    let path = format!("usr/share/doc/{name}/copyright");
    let Some(text) = read_small(root, &path, MAX_COPYRIGHT, &mut Vec::new()) else {
        return Vec::new();
    };
    dep5_licenses(&text)
}

/// The `License:` short names of a DEP-5 document's paragraphs.
pub fn dep5_licenses(text: &str) -> Vec<String> {
    if !text.starts_with("Format:") {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for p in paragraphs(text) {
        if let Some(l) = field(&p, "License") {
            let first = l.lines().next().unwrap_or_default().trim();
            for name in first.split(|c: char| c.is_whitespace() || c == ',') {
                let name = name.trim_matches(|c| c == '(' || c == ')');
                if name.is_empty()
                    || ["or", "and", "with"].contains(&name.to_ascii_lowercase().as_str())
                {
                    continue;
                }
                if valid_token(name) && !out.iter().any(|o| o == name) {
                    out.push(name.to_owned());
                }
            }
        }
    }
    out
}

/// An SPDX license id for a name a package states: an SPDX id as it is, Debian's
/// GNU short names (`GPL-2+`, `LGPL-2.1`), `Expat`; else `None`.
pub fn spdx_id(name: &str) -> Option<String> {
    if name == "Expat" {
        return Some("MIT".to_owned());
    }
    if let Some(id) = spdx::license_id(name).filter(|_| !name.ends_with('+')) {
        return Some(id.name.to_owned());
    }
    // Debian's GNU names: GPL-2, GPL-2+, LGPL-2.1+, AGPL-3, GFDL-1.3+.
    let (base, later) = match name.strip_suffix('+') {
        Some(b) => (b, true),
        None => (name, false),
    };
    if let Some((family, version)) = base.split_once('-')
        && ["GPL", "LGPL", "AGPL", "GFDL"].contains(&family)
    {
        let version = if version.contains('.') {
            version.to_owned()
        } else {
            format!("{version}.0")
        };
        return spdx::gnu_license_id(&format!("{family}-{version}"), later)
            .map(|id| id.name.to_owned());
    }
    // Case differences (`BSD-3-clause`).
    let lower = name.to_ascii_lowercase();
    spdx::identifiers::LICENSES
        .iter()
        .find(|l| l.name.to_ascii_lowercase() == lower)
        .map(|l| l.name.to_owned())
}

/// `LicenseRef-` with what SPDX allows of `name` (letters, digits, `.` and `-`).
fn license_ref(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("LicenseRef-{clean}")
}

/// The SPDX expression of a package's stated licenses (each an id or a
/// `LicenseRef-`, joined with AND) and the references it made; `NOASSERTION` for none.
fn declared(p: &Package, refs: &mut BTreeMap<String, String>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for l in &p.licenses {
        // apk states an expression; it is kept when it parses as one.
        if p.manager == Manager::Apk
            && let Ok(e) = spdx::Expression::parse(l)
        {
            parts.push(e.to_string());
            continue;
        }
        let id = spdx_id(l).unwrap_or_else(|| {
            let r = license_ref(l);
            refs.insert(r.clone(), l.clone());
            r
        });
        if !parts.contains(&id) {
            parts.push(id);
        }
    }
    match parts.len() {
        0 => "NOASSERTION".to_owned(),
        1 => parts.remove(0),
        _ => parts
            .iter()
            .map(|p| {
                if p.contains(' ') {
                    format!("({p})")
                } else {
                    p.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" AND "),
    }
}

/// A package URL: `pkg:deb/debian/NAME@VERSION?arch=…&distro=debian-12`,
/// `pkg:apk/alpine/NAME@VERSION?arch=…`.
pub fn purl(p: &Package, distro: Option<&(String, String)>) -> String {
    let (kind, default_ns) = match p.manager {
        Manager::Deb => ("deb", "debian"),
        Manager::Apk => ("apk", "alpine"),
    };
    let ns = distro
        .map(|(id, _)| id.as_str())
        .filter(|id| !id.is_empty() && valid_token(id))
        .unwrap_or(default_ns);
    let mut q = Vec::new();
    if let Some(a) = &p.arch {
        q.push(format!("arch={}", pct(a)));
    }
    if let Some((id, version)) = distro
        && !id.is_empty()
        && !version.is_empty()
    {
        q.push(format!("distro={}", pct(&format!("{id}-{version}"))));
    }
    if let Some(s) = &p.source {
        q.push(format!("upstream={}", pct(s)));
    }
    let mut out = format!(
        "pkg:{kind}/{}/{}@{}",
        pct(ns),
        pct(&p.name),
        pct(&p.version)
    );
    if !q.is_empty() {
        out.push('?');
        out.push_str(&q.join("&"));
    }
    out
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The SPDX 2.3 document of `scan` for the image `name`, created at `created`
/// (RFC 3339), its namespace derived from `seed` (so the same image gives the same
/// document).
pub fn document(scan: &Scan, name: &str, created: &str, seed: &str) -> Value {
    let mut refs = BTreeMap::new();
    let mut ids = BTreeSet::new();
    // The image itself, which the document describes and which contains the rest.
    let mut packages = vec![json!({
        "SPDXID": IMAGE_ID,
        "name": name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": IMAGE_ID,
    })];
    for p in &scan.packages {
        let kind = match p.manager {
            Manager::Deb => "deb",
            Manager::Apk => "apk",
        };
        let purl = purl(p, scan.distro.as_ref());
        let hash = oci::Digest::sha256(purl.as_bytes());
        let id = format!(
            "SPDXRef-Package-{kind}-{}-{}",
            license_ref(&p.name).trim_start_matches("LicenseRef-"),
            &hash.hex()[..16]
        );
        if !ids.insert(id.clone()) {
            continue;
        }
        let mut pkg = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared(p, &mut refs),
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }],
        });
        if let Some(m) = &p.maintainer {
            let m: String = m.chars().filter(|c| !c.is_control()).collect();
            if !m.is_empty() {
                pkg["supplier"] = Value::from(format!("Person: {m}"));
            }
        }
        if let Some(s) = &p.source {
            pkg["sourceInfo"] = Value::from(format!("built from the source package {s}"));
        }
        relationships.push(json!({
            "spdxElementId": IMAGE_ID,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
        packages.push(pkg);
    }
    let extracted: Vec<Value> = refs
        .iter()
        .map(|(id, name)| {
            json!({
                "licenseId": id,
                "name": name,
                "extractedText": format!("The license the package names {name:?}; see its copyright file."),
            })
        })
        .collect();
    let namespace = oci::Digest::sha256(seed.as_bytes());
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("sbom-{name}"),
        "documentNamespace": format!("https://manifold.invalid/spdx/{}", namespace.hex()),
        "creationInfo": {
            "creators": [format!("Tool: manifold-{}", env!("CARGO_PKG_VERSION"))],
            "created": created,
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(extracted);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_license_names_map_to_spdx_ids() {
        for (name, id) in [
            ("GPL-2+", Some("GPL-2.0-or-later")),
            ("GPL-2", Some("GPL-2.0-only")),
            ("LGPL-2.1+", Some("LGPL-2.1-or-later")),
            ("GPL-3.0-only", Some("GPL-3.0-only")),
            ("Expat", Some("MIT")),
            ("BSD-3-clause", Some("BSD-3-Clause")),
            ("Apache-2.0", Some("Apache-2.0")),
            ("public-domain", None),
        ] {
            assert_eq!(spdx_id(name).as_deref(), id, "{name}");
        }
    }

    #[test]
    fn dep5_files_give_their_license_names() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                    Upstream-Name: x\n\n\
                    Files: *\nCopyright: 2020 A\nLicense: GPL-2+\n\n\
                    Files: lib/*\nLicense: BSD-3-clause or Expat\n\n\
                    License: GPL-2+\n On Debian systems, see /usr/share/common-licenses/GPL-2.\n";
        assert_eq!(dep5_licenses(text), ["GPL-2+", "BSD-3-clause", "Expat"]);
        assert!(dep5_licenses("This is not machine-readable.\nLicense: MIT\n").is_empty());
    }

    #[test]
    fn dpkg_status_keeps_installed_packages_and_warns_of_broken_ones() {
        let text = "Package: a\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\nSource: srca (1.0)\n\n\
                    Package: gone\nStatus: deinstall ok config-files\nVersion: 2\n\n\
                    Status: install ok installed\nVersion: 3\n\n\
                    Package: b\nStatus: install ok installed\nVersion: 2:4.1\nDescription: x\n more\n";
        let mut w = Vec::new();
        let got = parse_dpkg_status(text, &mut w);
        let names: Vec<(&str, &str)> = got
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(names, [("a", "1.0-1"), ("b", "2:4.1")]);
        assert_eq!(got[0].source.as_deref(), Some("srca"));
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn a_snapshots_scan_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let found = Scan {
            distro: Some(("debian".into(), "12".into())),
            ..Scan::default()
        };
        let first = scan_snapshot(dir.path(), "sha256:aa", || Ok(found.clone())).unwrap();
        assert_eq!(first, found);
        let again = scan_snapshot(dir.path(), "sha256:aa", || panic!("scanned twice")).unwrap();
        assert_eq!(again, found);
        let other = scan_snapshot(dir.path(), "sha256:bb", || Ok(Scan::default())).unwrap();
        assert_eq!(other, Scan::default());
        assert!(scan_snapshot(dir.path(), "sha256:cc", || Err("no".into())).is_err());
    }

    #[test]
    fn package_urls_are_escaped() {
        let p = Package {
            manager: Manager::Deb,
            name: "libc6".into(),
            version: "2.36-9+deb12u4".into(),
            arch: Some("amd64".into()),
            source: Some("glibc".into()),
            maintainer: None,
            licenses: Vec::new(),
        };
        assert_eq!(
            purl(&p, Some(&("debian".into(), "12".into()))),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"
        );
    }
}
