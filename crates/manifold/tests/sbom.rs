//! SBOMs (`--sbom=true`): manifold's own SPDX 2.3 document of each image's packages,
//! as an in-toto statement in the image's attestation manifest. Checked against
//! tools manifold did not write: `dpkg-query` over the same database (this
//! machine's real `/var/lib/dpkg/status`, with its packages' copyright files, in a
//! busybox image) and PyPI's `spdx-tools` (`pyspdxtools`), which validates the
//! document. An Alpine database fixture likewise; hostile databases (huge,
//! malformed, a symlink out of the image) give a warning and no entries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BASE: &str = "localhost/busybox:test";
const MANIFOLD: &str = env!("CARGO_BIN_EXE_manifold");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// Build `ctx` with `--sbom=true` on a fresh root as `tag`; the build's stderr and
/// the image's SPDX statement.
fn build_sbom(ctx: &Path, tag: &str) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    testkit::base::busybox_index(&root, BASE, &["amd64"]);
    let out = Command::new(MANIFOLD)
        .args(["build", "--progress=plain", "--sbom=true", "-t", tag])
        .arg(ctx)
        .env("MANIFOLD_ROOT", &root)
        .env("MANIFOLD_CONFIG", dir.path().join("config"))
        .env_remove("MANIFOLD_BUILDER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = ok(&out);
    let store = content::Store::open(&root).unwrap();
    let index = store.resolve(tag).unwrap();
    let index: oci::ImageIndex =
        serde_json::from_slice(&store.read_document(&index.digest).unwrap()).unwrap();
    let attestation = index
        .manifests
        .iter()
        .find(|m| export::attest::is_attestation(m))
        .expect("an attestation manifest");
    let statements = export::attest::read_statements(&store, attestation).unwrap();
    assert_eq!(statements.len(), 1, "the SBOM alone was asked for");
    let (_, s) = &statements[0];
    assert_eq!(s.predicate_type, "https://spdx.dev/Document");
    let statement: Value = serde_json::from_slice(&s.bytes).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v0.1");
    let image = index
        .manifests
        .iter()
        .find(|m| !export::attest::is_attestation(m))
        .unwrap();
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        image.digest.hex(),
        "{statement}"
    );
    (stderr, statement["predicate"].clone())
}

/// pyspdxtools' verdict on `doc`.
fn pyspdxtools(doc: &Value, dir: &Path) -> Output {
    let file = dir.join("sbom.spdx.json");
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let tool: PathBuf = testkit::python_validators().with_file_name("pyspdxtools");
    Command::new(tool).arg("-i").arg(&file).output().unwrap()
}

/// `(name, version)` of each package the document lists (the image's own entry,
/// which contains them, aside).
fn packages(doc: &Value) -> BTreeSet<(String, String)> {
    let image = &doc["packages"][0];
    assert_eq!(image["primaryPackagePurpose"], "CONTAINER", "{doc}");
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["versionInfo"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_machines_dpkg_database_in_an_image_gives_dpkg_querys_packages() {
    testkit::require_root_and_runc();
    let ctx = tempfile::tempdir().unwrap();
    let status = std::fs::read("/var/lib/dpkg/status").expect("this machine's dpkg status");
    std::fs::create_dir_all(ctx.path().join("var/lib/dpkg")).unwrap();
    std::fs::write(ctx.path().join("var/lib/dpkg/status"), &status).unwrap();
    // Each package's copyright file, where it has one (licenses come from them).
    for e in std::fs::read_dir("/usr/share/doc").unwrap() {
        let e = e.unwrap();
        let c = e.path().join("copyright");
        if std::fs::symlink_metadata(&c).is_ok_and(|m| m.is_file()) {
            let dest = ctx.path().join("usr/share/doc").join(e.file_name());
            std::fs::create_dir_all(&dest).unwrap();
            std::fs::copy(&c, dest.join("copyright")).unwrap();
        }
    }
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM localhost/busybox:test\nCOPY var /var\nCOPY usr /usr\n",
    )
    .unwrap();
    let (_, doc) = build_sbom(ctx.path(), "localhost/sbom:deb");

    // dpkg-query over the same database: the installed packages and versions.
    let want = Command::new(testkit::require_tool("dpkg-query"))
        .arg(format!(
            "--admindir={}",
            ctx.path().join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", "${db:Status-Status} ${Package} ${Version}\n"])
        .output()
        .unwrap();
    assert!(want.status.success(), "{}", text(&want.stderr));
    let want: BTreeSet<(String, String)> = text(&want.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            if f.next()? != "installed" {
                return None;
            }
            Some((f.next()?.to_owned(), f.next()?.to_owned()))
        })
        .collect();
    assert!(want.len() > 50, "this machine has {} packages", want.len());
    assert_eq!(packages(&doc), want);

    // Package URLs and a license from a DEP-5 file (dpkg's own is machine-readable).
    let dpkg = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "dpkg")
        .expect("dpkg is installed");
    let purl = dpkg["externalRefs"][0]["referenceLocator"]
        .as_str()
        .unwrap();
    assert!(purl.starts_with("pkg:deb/debian/dpkg@"), "{purl}");
    assert!(purl.contains("arch=amd64"), "{purl}");
    assert!(
        dpkg["licenseDeclared"]
            .as_str()
            .unwrap()
            .contains("GPL-2.0"),
        "{dpkg}"
    );
    let out = pyspdxtools(&doc, ctx.path());
    assert!(
        out.status.success() && !text(&out.stdout).contains("invalid"),
        "pyspdxtools: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn an_alpine_database_gives_its_packages_and_licenses() {
    testkit::require_root_and_runc();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ctx.path().join("lib/apk/db")).unwrap();
    std::fs::write(
        ctx.path().join("lib/apk/db/installed"),
        "C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nS:383152\nI:622592\nT:the musl c library\n\
         U:https://musl.libc.org/\nL:MIT\no:musl\nm:Natanael Copa <ncopa@alpinelinux.org>\n\n\
         P:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\no:busybox\n\n\
         P:ca-certificates-bundle\nV:20240705-r0\nA:x86_64\nL:MPL-2.0 AND MIT\no:ca-certificates\n\n",
    )
    .unwrap();
    std::fs::write(
        ctx.path().join("etc-os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n",
    )
    .unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM localhost/busybox:test\nCOPY lib /lib\nCOPY etc-os-release /etc/os-release\n",
    )
    .unwrap();
    let (_, doc) = build_sbom(ctx.path(), "localhost/sbom:apk");
    let want: BTreeSet<(String, String)> = [
        ("busybox", "1.36.1-r29"),
        ("ca-certificates-bundle", "20240705-r0"),
        ("musl", "1.2.5-r0"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(packages(&doc), want);
    let by_name = |n: &str| {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    let bundle = by_name("ca-certificates-bundle");
    assert_eq!(bundle["licenseDeclared"], "MPL-2.0 AND MIT");
    assert_eq!(
        bundle["externalRefs"][0]["referenceLocator"],
        "pkg:apk/alpine/ca-certificates-bundle@20240705-r0?arch=x86_64&distro=alpine-3.20.3&upstream=ca-certificates"
    );
    let out = pyspdxtools(&doc, ctx.path());
    assert!(
        out.status.success() && !text(&out.stdout).contains("invalid"),
        "pyspdxtools: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn hostile_databases_give_a_warning_and_no_entries() {
    testkit::require_root_and_runc();
    // A symlink out of the image (made by a step: COPY follows a context symlink),
    // a malformed file, and one too large to read.
    const COPY: &str = "COPY status /var/lib/dpkg/status\n";
    // (name, what goes in the context, the Dockerfile's step, the warning)
    type Case<'a> = (&'a str, &'a dyn Fn(&Path), &'a str, &'a str);
    let cases: [Case<'_>; 3] = [
        (
            "symlink",
            &|_: &Path| {},
            "RUN mkdir -p /var/lib/dpkg && ln -s ../../../../../../../etc/passwd /var/lib/dpkg/status\n",
            "/var/lib/dpkg/status is not a regular file in the image",
        ),
        (
            "malformed",
            &|ctx: &Path| {
                let mut junk = b"Status: install ok installed\nVersion: \x01\x02\n\n".repeat(1000);
                junk.extend_from_slice(b"Package: \xff\xfe\nStatus: install ok installed\n");
                std::fs::write(ctx.join("status"), junk).unwrap();
            },
            COPY,
            "installed package entr(ies) without a usable Package or Version were left out",
        ),
        (
            "huge",
            &|ctx: &Path| {
                let f = std::fs::File::create(ctx.join("status")).unwrap();
                f.set_len((64 << 20) + 1).unwrap();
            },
            COPY,
            "/var/lib/dpkg/status is larger than 67108864 bytes; not read",
        ),
    ];
    for (what, make, step, warning) in cases {
        let ctx = tempfile::tempdir().unwrap();
        make(ctx.path());
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM localhost/busybox:test\n{step}"),
        )
        .unwrap();
        let (stderr, doc) = build_sbom(ctx.path(), &format!("localhost/sbom:{what}"));
        assert!(stderr.contains(warning), "{what}: {stderr}");
        assert!(packages(&doc).is_empty(), "{what}: {doc}");
        let out = pyspdxtools(&doc, ctx.path());
        assert!(out.status.success(), "{what}: {}", text(&out.stdout));
    }
}

/// Build `ctx` with `--sbom=true` and `extra` flags on a fresh root; the SPDX
/// documents of the image's attestation manifest, in order.
fn sbom_documents(ctx: &Path, extra: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    testkit::base::busybox_index(&root, BASE, &["amd64"]);
    let out = Command::new(MANIFOLD)
        .args([
            "build",
            "--progress=plain",
            "--sbom=true",
            "-t",
            "localhost/sbom:docs",
        ])
        .args(extra)
        .arg(ctx)
        .env("MANIFOLD_ROOT", &root)
        .env("MANIFOLD_CONFIG", dir.path().join("config"))
        .env_remove("MANIFOLD_BUILDER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(&out);
    let store = content::Store::open(&root).unwrap();
    let index = store.resolve("localhost/sbom:docs").unwrap();
    let index: oci::ImageIndex =
        serde_json::from_slice(&store.read_document(&index.digest).unwrap()).unwrap();
    let attestation = index
        .manifests
        .iter()
        .find(|m| export::attest::is_attestation(m))
        .unwrap();
    export::attest::read_statements(&store, attestation)
        .unwrap()
        .into_iter()
        .map(|(_, s)| serde_json::from_slice::<Value>(&s.bytes).unwrap()["predicate"].clone())
        .collect()
}

// BUILDKIT_SBOM_SCAN_STAGE: a stage that declares it true (or every stage the build
// makes, given as a build argument) gets a document of its own next to the image's.
#[test]
fn scan_stage_adds_a_document_per_stage_asked_for() {
    testkit::require_root_and_runc();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ctx.path().join("lib/apk/db")).unwrap();
    std::fs::write(
        ctx.path().join("lib/apk/db/installed"),
        "P:gcc\nV:13.2.1-r0\nA:x86_64\nL:GPL-2.0-or-later\n\n",
    )
    .unwrap();
    let gcc = BTreeSet::from([("gcc".to_owned(), "13.2.1-r0".to_owned())]);
    for (dockerfile, extra) in [
        (
            "FROM localhost/busybox:test AS build\nARG BUILDKIT_SBOM_SCAN_STAGE=true\n\
             COPY lib /lib\nFROM localhost/busybox:test\nCOPY --from=build /lib/apk /apk-copy\n",
            &[][..],
        ),
        (
            "FROM localhost/busybox:test AS build\nCOPY lib /lib\n\
             FROM localhost/busybox:test\nCOPY --from=build /lib/apk /apk-copy\n",
            &["--build-arg", "BUILDKIT_SBOM_SCAN_STAGE=true"][..],
        ),
    ] {
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        let docs = sbom_documents(ctx.path(), extra);
        assert_eq!(docs.len(), 2, "{extra:?}");
        assert!(
            packages(&docs[0]).is_empty(),
            "the image has no database of its own"
        );
        assert_eq!(docs[1]["name"], "sbom-localhost/sbom:docs-stage-build");
        assert_eq!(packages(&docs[1]), gcc);
    }
    // Not asked for: the image's document alone.
    let docs = sbom_documents(ctx.path(), &[]);
    assert_eq!(docs.len(), 1);
}

// BUILDKIT_SBOM_SCAN_CONTEXT=true: the build context is scanned too, as a document
// of its own next to the image's, in the same attestation manifest.
#[test]
fn scan_context_adds_the_contexts_packages_as_a_second_document() {
    testkit::require_root_and_runc();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ctx.path().join("lib/apk/db")).unwrap();
    std::fs::write(
        ctx.path().join("lib/apk/db/installed"),
        "P:zlib\nV:1.3.1-r1\nA:x86_64\nL:Zlib\n\n",
    )
    .unwrap();
    std::fs::write(ctx.path().join("hello"), "hi\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM localhost/busybox:test\nCOPY hello /hello\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    testkit::base::busybox_index(&root, BASE, &["amd64"]);
    let out = Command::new(MANIFOLD)
        .args([
            "build",
            "--progress=plain",
            "--sbom=true",
            "--build-arg",
            "BUILDKIT_SBOM_SCAN_CONTEXT=true",
            "-t",
            "localhost/sbom:context",
        ])
        .arg(ctx.path())
        .env("MANIFOLD_ROOT", &root)
        .env("MANIFOLD_CONFIG", dir.path().join("config"))
        .env_remove("MANIFOLD_BUILDER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(&out);
    let store = content::Store::open(&root).unwrap();
    let index = store.resolve("localhost/sbom:context").unwrap();
    let index: oci::ImageIndex =
        serde_json::from_slice(&store.read_document(&index.digest).unwrap()).unwrap();
    let attestation = index
        .manifests
        .iter()
        .find(|m| export::attest::is_attestation(m))
        .unwrap();
    let docs: Vec<Value> = export::attest::read_statements(&store, attestation)
        .unwrap()
        .into_iter()
        .map(|(_, s)| serde_json::from_slice::<Value>(&s.bytes).unwrap()["predicate"].clone())
        .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["name"], "sbom-localhost/sbom:context");
    assert!(
        packages(&docs[0]).is_empty(),
        "the image has no package database"
    );
    assert_eq!(docs[1]["name"], "sbom-localhost/sbom:context-context");
    assert_eq!(
        packages(&docs[1]),
        BTreeSet::from([("zlib".to_owned(), "1.3.1-r1".to_owned())])
    );
    for d in &docs {
        let out = pyspdxtools(d, dir.path());
        assert!(out.status.success(), "{}", text(&out.stdout));
    }
}
