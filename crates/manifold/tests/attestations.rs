//! Provenance attestations as buildx users meet them: on by default for pushed
//! images, in BuildKit's layout (an `unknown/unknown` attestation manifest per
//! platform, pointing at its image), statements that validate against JSON schemas
//! written from the in-toto and SLSA specifications and (v1) PyPI's
//! in-toto-attestation, `mode=min` leaving out build arguments and labels, no
//! secret in any of them, and deterministic: the same index from two roots with
//! SOURCE_DATE_EPOCH, and from a no-op rebuild without it. A real registry
//! (distribution) receives the pushes and skopeo reads them back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use testkit::registry::{Auth, DistRegistry};

const BASE: &str = "localhost/busybox:test";
const MANIFOLD: &str = env!("CARGO_BIN_EXE_manifold");
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SECRET: &str = "s3cr3t-attest-bytes-7f1c";

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
    text(&out.stdout)
}

/// A state root with the busybox base for `arches`.
fn root(arches: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    testkit::base::busybox_index(&dir.path().join("root"), BASE, arches);
    dir
}

fn manifold(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(MANIFOLD);
    cmd.args(args)
        .env("MANIFOLD_ROOT", dir.join("root"))
        .env("MANIFOLD_CONFIG", dir.join("config"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env_remove("MANIFOLD_BUILDER")
        .env_remove("BUILDX_NO_DEFAULT_ATTESTATIONS")
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.path().join("hello"), "hello\n").unwrap();
    dir
}

/// `skopeo inspect --raw` of `reference`, parsed, with the digest of its bytes.
fn raw(reference: &str) -> (Value, String) {
    let out = Command::new(testkit::require_tool("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .unwrap();
    ok(&out);
    let digest = oci::Digest::sha256(&out.stdout).to_string();
    (serde_json::from_slice(&out.stdout).unwrap(), digest)
}

/// Everything `reference` holds, copied by skopeo into an OCI layout.
fn copy_all(reference: &str) -> tempfile::TempDir {
    let dest = tempfile::tempdir().unwrap();
    ok(&Command::new(testkit::require_tool("skopeo"))
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:img", dest.path().display()))
        .output()
        .unwrap());
    dest
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The index's image entries and, per image digest, the statements of its
/// attestation manifest (checked to be in BuildKit's layout), written to files.
fn attestations(index: &Value, layout: &Path, out: &Path) -> Vec<(Value, Value, PathBuf)> {
    let entries = index["manifests"].as_array().unwrap();
    let images: Vec<&Value> = entries
        .iter()
        .filter(|e| e["platform"]["os"] != "unknown")
        .collect();
    let attests: Vec<&Value> = entries
        .iter()
        .filter(|e| e["platform"]["os"] == "unknown")
        .collect();
    assert_eq!(
        images.len(),
        attests.len(),
        "one attestation per image: {index}"
    );
    let mut found = Vec::new();
    for a in attests {
        assert_eq!(a["mediaType"], OCI_MANIFEST, "{a}");
        assert_eq!(a["platform"]["architecture"], "unknown", "{a}");
        assert_eq!(
            a["annotations"]["vnd.docker.reference.type"], "attestation-manifest",
            "{a}"
        );
        let subject = a["annotations"]["vnd.docker.reference.digest"].clone();
        let image = images
            .iter()
            .find(|i| i["digest"] == subject)
            .unwrap_or_else(|| panic!("{a} names no image of {index}"));
        let m = json(&blob(layout, a["digest"].as_str().unwrap()));
        let config = json(&blob(layout, m["config"]["digest"].as_str().unwrap()));
        assert_eq!(
            (&config["architecture"], &config["os"]),
            (&Value::from("unknown"), &Value::from("unknown")),
            "{config}"
        );
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{m}");
        let layer = &layers[0];
        assert_eq!(layer["mediaType"], "application/vnd.in-toto+json", "{m}");
        let bytes = blob(layout, layer["digest"].as_str().unwrap());
        let statement = json(&bytes);
        assert_eq!(
            layer["annotations"]["in-toto.io/predicate-type"], statement["predicateType"],
            "{m}"
        );
        let subject_hex = subject.as_str().unwrap().strip_prefix("sha256:").unwrap();
        for s in statement["subject"].as_array().unwrap() {
            assert_eq!(s["digest"]["sha256"], subject_hex, "{statement}");
        }
        let file = out.join(format!("{subject_hex}.json"));
        std::fs::write(&file, &bytes).unwrap();
        found.push(((*image).clone(), statement, file));
    }
    found
}

/// Run the validators on the statement files; their output.
fn validate(files: &[PathBuf]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attest/validate.py");
    let out = Command::new(testkit::python_validators())
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    ok(&out)
}

#[test]
fn a_pushed_two_platform_image_carries_min_provenance_per_platform_in_buildkits_layout() {
    let reg = DistRegistry::start(Auth::Open);
    let dir = root(&["amd64", "arm64"]);
    let ctx = context("FROM localhost/busybox:test\nARG FLAVOUR=plain\nCOPY hello /hello\n");
    let target = format!("{}/attest/two:1", reg.addr);
    ok(&manifold(
        dir.path(),
        &[
            "build",
            "--platform=linux/amd64,linux/arm64",
            "--push",
            "-t",
            &target,
            "--build-arg",
            "FLAVOUR=spicy",
            "--label",
            "team=core",
            "--metadata-file",
            dir.path().join("meta.json").to_str().unwrap(),
            ctx.path().to_str().unwrap(),
        ],
        &[],
    ));
    let (index, digest) = raw(&target);
    assert_eq!(index["mediaType"], OCI_INDEX, "{index}");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 4, "{index}");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["containerimage.digest"], digest.as_str(), "{meta}");
    // buildx's metadata keys: each platform's provenance predicate.
    for arch in ["amd64", "arm64"] {
        let p = &meta[format!("buildx.build.provenance/linux/{arch}")];
        assert_eq!(
            p["buildType"], "https://mobyproject.org/buildkit@v1",
            "{meta}"
        );
    }
    // Read back as buildx prints them: per platform, under SLSA.
    let out = manifold(
        dir.path(),
        &[
            "imagetools",
            "inspect",
            &target,
            "--format",
            "{{json .Provenance}}",
        ],
        &[],
    );
    let shown: Value = serde_json::from_str(&ok(&out)).unwrap();
    for arch in ["amd64", "arm64"] {
        let p = &shown[format!("linux/{arch}")]["SLSA"];
        assert_eq!(
            p["invocation"]["parameters"]["frontend"], "dockerfile.v0",
            "{shown}"
        );
    }
    let out = manifold(
        dir.path(),
        &[
            "imagetools",
            "inspect",
            &target,
            "--format",
            "{{json .SBOM}}",
        ],
        &[],
    );
    assert_eq!(ok(&out).trim(), "null", "no SBOM was asked for");

    let layout = copy_all(&target);
    let found = attestations(&index, &layout.path().join(""), dir.path());
    assert_eq!(found.len(), 2);
    let base_digest = {
        let store = content::Store::open(dir.path().join("root")).unwrap();
        store.resolve(BASE).unwrap().digest
    };
    for (image, statement, _) in &found {
        let arch = image["platform"]["architecture"].as_str().unwrap();
        assert_eq!(statement["_type"], "https://in-toto.io/Statement/v0.1");
        assert_eq!(
            statement["predicateType"],
            "https://slsa.dev/provenance/v0.2"
        );
        let name = statement["subject"][0]["name"].as_str().unwrap();
        assert_eq!(
            name,
            format!(
                "pkg:docker/{}/attest/two@1?platform=linux%2F{arch}",
                reg.addr
            ),
            "{statement}"
        );
        let p = &statement["predicate"];
        assert_eq!(p["buildType"], "https://mobyproject.org/buildkit@v1");
        assert_eq!(p["invocation"]["configSource"]["entryPoint"], "Dockerfile");
        assert_eq!(p["invocation"]["parameters"]["frontend"], "dockerfile.v0");
        // mode=min: no build arguments, no labels, and it says so.
        let args = p["invocation"]["parameters"]["args"].as_object().unwrap();
        assert!(
            args.keys()
                .all(|k| !k.starts_with("build-arg:") && !k.starts_with("label:")),
            "{p}"
        );
        assert_eq!(p["metadata"]["completeness"]["parameters"], false);
        assert!(
            p.get("buildConfig").is_none(),
            "min has no build definition"
        );
        assert_eq!(
            p["invocation"]["environment"]["platform"],
            oci::Platform::host().to_string()
        );
        // The build context by the digest of what it holds, and the base image by
        // package URL and the digest it was pinned to.
        let materials = p["materials"].as_array().unwrap();
        assert_eq!(materials.len(), 2, "{p}");
        assert_eq!(materials[0]["uri"], "local:context", "{p}");
        assert_eq!(
            materials[0]["digest"]["sha256"].as_str().unwrap().len(),
            64,
            "{p}"
        );
        let base = &materials[1];
        assert!(
            base["uri"]
                .as_str()
                .unwrap()
                .starts_with("pkg:docker/localhost/busybox@test?digest=sha256%3A"),
            "{p}"
        );
        assert_eq!(base["digest"]["sha256"], base_digest.hex());
        assert!(
            base["uri"]
                .as_str()
                .unwrap()
                .ends_with(&format!("&platform=linux%2F{arch}")),
            "{p}"
        );
    }
    let files: Vec<PathBuf> = found.into_iter().map(|(_, _, f)| f).collect();
    let report = validate(&files);
    assert_eq!(report.matches(" valid").count(), 2, "{report}");
}

#[test]
fn max_and_v1_statements_validate_and_never_carry_a_secret() {
    testkit::require_root_and_runc();
    let reg = DistRegistry::start(Auth::Open);
    let dir = root(&["amd64"]);
    let ctx = context(
        "FROM localhost/busybox:test\n\
         ARG FLAVOUR=plain\n\
         COPY hello /hello\n\
         RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /toklen\n",
    );
    let secret = dir.path().join("tok");
    std::fs::write(&secret, SECRET).unwrap();
    let secret_flag = format!("id=tok,src={}", secret.display());
    let mut files = Vec::new();
    for (n, attest) in [
        (1, "type=provenance,mode=max,version=v1"),
        (2, "type=provenance,mode=max"),
    ] {
        let target = format!("{}/attest/max:{n}", reg.addr);
        ok(&manifold(
            dir.path(),
            &[
                "build",
                "--platform=linux/amd64",
                "--push",
                "-t",
                &target,
                "--build-arg",
                "FLAVOUR=spicy",
                "--label",
                "team=core",
                "--secret",
                &secret_flag,
                "--attest",
                attest,
                ctx.path().to_str().unwrap(),
            ],
            &[],
        ));
        let (index, _) = raw(&target);
        let layout = copy_all(&target);
        // No blob of the image or its attestations holds the secret's bytes.
        for e in std::fs::read_dir(layout.path().join("blobs/sha256")).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "a blob of {target} holds the secret"
            );
        }
        let out = dir.path().join(format!("v{n}"));
        std::fs::create_dir_all(&out).unwrap();
        let found = attestations(&index, layout.path(), &out);
        assert_eq!(found.len(), 1);
        let (_, s, file) = found.into_iter().next().unwrap();
        let dockerfile_b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .encode(std::fs::read(ctx.path().join("Dockerfile")).unwrap())
        };
        let p = &s["predicate"];
        match n {
            1 => {
                assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
                assert_eq!(s["predicateType"], "https://slsa.dev/provenance/v1");
                let req = &p["buildDefinition"]["externalParameters"]["request"];
                assert_eq!(req["args"]["build-arg:FLAVOUR"], "spicy", "{p}");
                assert_eq!(req["args"]["label:team"], "core", "{p}");
                let steps =
                    &p["buildDefinition"]["internalParameters"]["buildConfig"]["definition"];
                assert!(steps.as_array().unwrap().len() >= 3, "{p}");
                let meta = &p["runDetails"]["metadata"];
                assert_eq!(meta["buildkit_completeness"]["request"], true);
                assert_eq!(
                    meta["buildkit_metadata"]["source"]["infos"][0]["data"],
                    dockerfile_b64.as_str()
                );
                // The context and the base image.
                assert_eq!(
                    p["buildDefinition"]["resolvedDependencies"]
                        .as_array()
                        .unwrap()
                        .len(),
                    2
                );
            }
            _ => {
                assert_eq!(s["predicateType"], "https://slsa.dev/provenance/v0.2");
                let args = &p["invocation"]["parameters"]["args"];
                assert_eq!(args["build-arg:FLAVOUR"], "spicy", "{p}");
                assert_eq!(p["metadata"]["completeness"]["parameters"], true);
                assert!(p["buildConfig"]["definition"].is_array(), "{p}");
                assert_eq!(
                    p["metadata"]["https://mobyproject.org/buildkit@v1#metadata"]["source"]["infos"]
                        [0]["data"],
                    dockerfile_b64.as_str()
                );
            }
        }
        files.push(file);
    }
    let report = validate(&files);
    assert_eq!(report.matches(" valid").count(), 2, "{report}");
}

#[test]
fn provenance_keeps_builds_reproducible_and_no_op_rebuilds_push_nothing_new() {
    let reg = DistRegistry::start(Auth::Open);
    let ctx = context("FROM localhost/busybox:test\nCOPY hello /hello\n");
    let ctx = ctx.path().to_str().unwrap();
    let build = |dir: &Path, target: &str, env: &[(&str, &str)]| {
        let iid = dir.join("iid");
        ok(&manifold(
            dir,
            &[
                "build",
                "--platform=linux/amd64,linux/arm64",
                "--push",
                "-t",
                target,
                "--iidfile",
                iid.to_str().unwrap(),
                ctx,
            ],
            env,
        ));
        std::fs::read_to_string(iid).unwrap()
    };
    // Two roots, one SOURCE_DATE_EPOCH: the same index, attestations included.
    let (a, b) = (root(&["amd64", "arm64"]), root(&["amd64", "arm64"]));
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let target = format!("{}/attest/repro:1", reg.addr);
    let first = build(a.path(), &target, &epoch);
    let second = build(b.path(), &target, &epoch);
    assert_eq!(first, second, "two roots, one epoch, one index");
    let (index, _) = raw(&target);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 4);

    // Without it: the rebuild states the first build's times, so the index is the
    // same and the push uploads nothing.
    let c = root(&["amd64", "arm64"]);
    let target = format!("{}/attest/noop:1", reg.addr);
    let first = build(c.path(), &target, &[]);
    let uploads =
        |log: &str| log.matches("\"POST /v2/").count() + log.matches("method=POST").count();
    let before = uploads(&reg.log());
    assert!(
        before > 0,
        "the registry log shows no uploads:\n{}",
        reg.log()
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = build(c.path(), &target, &[]);
    assert_eq!(first, again, "a no-op rebuild gives the same index");
    assert_eq!(
        uploads(&reg.log()),
        before,
        "a no-op rebuild uploaded blobs"
    );
}

#[test]
fn defaults_and_flags_follow_buildx() {
    testkit::require_root_and_runc();
    let reg = DistRegistry::start(Auth::Open);
    let dir = root(&["amd64"]);
    let ctx = context("FROM localhost/busybox:test\nCOPY hello /hello\n");
    let ctx = ctx.path().to_str().unwrap();
    let push = |tag: &str, extra: &[&str], env: &[(&str, &str)]| -> Value {
        let target = format!("{}/attest/flags:{tag}", reg.addr);
        let mut args = vec!["build", "--push", "-t", &target];
        args.extend_from_slice(extra);
        args.push(ctx);
        ok(&manifold(dir.path(), &args, env));
        raw(&target).0
    };
    // A pushed single-platform image: an index with its provenance, as buildx.
    let m = push("default", &[], &[]);
    assert_eq!(m["mediaType"], OCI_INDEX, "{m}");
    assert_eq!(m["manifests"].as_array().unwrap().len(), 2, "{m}");
    // Turned off by the environment, or by the flag: a manifest.
    for (tag, extra, env) in [
        (
            "env",
            &[][..],
            &[("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")][..],
        ),
        ("flag", &["--provenance=false"][..], &[][..]),
        (
            "attest",
            &["--attest", "type=provenance,disabled=true"][..],
            &[][..],
        ),
    ] {
        let m = push(tag, extra, env);
        assert_eq!(m["mediaType"], OCI_MANIFEST, "{tag}: {m}");
    }
    // With --sbom=true too: one attestation manifest holds both statements, and
    // imagetools shows the SBOM as buildx does.
    let m = push("sbom", &["--sbom=true"], &[]);
    let attestation = m["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["platform"]["os"] == "unknown")
        .unwrap()
        .clone();
    let target = format!(
        "{}/attest/flags@{}",
        reg.addr,
        attestation["digest"].as_str().unwrap()
    );
    let (am, _) = raw(&target);
    let types: Vec<&str> = am["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        types,
        [
            "https://slsa.dev/provenance/v0.2",
            "https://spdx.dev/Document"
        ],
        "{am}"
    );
    let out = manifold(
        dir.path(),
        &[
            "imagetools",
            "inspect",
            &format!("{}/attest/flags:sbom", reg.addr),
            "--format",
            "{{json .SBOM}}",
        ],
        &[],
    );
    let shown: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(shown["SPDX"]["spdxVersion"], "SPDX-2.3", "{shown}");

    // A build that is not pushed carries none unless asked.
    let out = manifold(
        dir.path(),
        &["build", "-t", "localhost/att:plain", ctx],
        &[],
    );
    ok(&out);
    let store = content::Store::open(dir.path().join("root")).unwrap();
    assert_eq!(
        store.resolve("localhost/att:plain").unwrap().media_type,
        OCI_MANIFEST
    );
    // Asked for: an index, and `--load`-style docker archives leave it out.
    let tar = dir.path().join("img.tar");
    ok(&manifold(
        dir.path(),
        &[
            "build",
            "--provenance=true",
            "-t",
            "localhost/att:asked",
            "-o",
            &format!("type=docker,dest={}", tar.display()),
            ctx,
        ],
        &[],
    ));
    let store = content::Store::open(dir.path().join("root")).unwrap();
    assert_eq!(
        store.resolve("localhost/att:asked").unwrap().media_type,
        OCI_INDEX
    );
    // `run` picks the image of the host's platform, never the attestation.
    let out = manifold(
        dir.path(),
        &["run", "--rm", "localhost/att:asked", "cat", "/hello"],
        &[],
    );
    assert_eq!(ok(&out), "hello\n");
    let listing = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("manifest.json")
        .output()
        .unwrap();
    let manifest_json = json(ok(&listing).as_bytes());
    assert_eq!(
        manifest_json.as_array().unwrap().len(),
        1,
        "{manifest_json}"
    );

    // Bad values name themselves and the way out.
    for (flag, wanted) in [
        ("--provenance=mode=most", "mode=\"most\""),
        ("--provenance=version=v9", "version=\"v9\""),
        (
            "--provenance=colour=red",
            "unknown provenance option \"colour\"",
        ),
        (
            "--sbom=generator=docker/buildkit-syft-scanner",
            "generator images are not run",
        ),
    ] {
        let out = manifold(dir.path(), &["build", flag, ctx], &[]);
        assert!(!out.status.success(), "{flag}");
        assert!(
            text(&out.stderr).contains(wanted),
            "{flag}: {}",
            text(&out.stderr)
        );
    }
}

/// The referrers list of `subject` in `repo` from the registry's API, parsed.
fn referrers_api(addr: &str, repo: &str, subject: &str) -> Value {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /v2/{repo}/referrers/{subject} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The body may be chunked: take the JSON object in it.
    let start = body.find('{').unwrap();
    let end = body.rfind('}').unwrap();
    serde_json::from_str(&body[start..=end]).unwrap()
}

// `referrers=true`: the attestations are OCI 1.1 referrers of their images, not
// index entries; manifold's registry lists them through its referrers API, and
// distribution 2.8 (which has none) holds them under the fallback tag. imagetools
// finds them either way.
#[test]
fn referrer_attestations_are_found_through_the_api_or_the_fallback_tag() {
    let dir = root(&["amd64", "arm64"]);
    let ctx = context("FROM localhost/busybox:test\nCOPY hello /hello\n");
    let own = testkit::registry::OwnRegistry::start(Path::new(MANIFOLD));
    let dist = DistRegistry::start(Auth::Open);
    for (addr, api) in [(own.addr.as_str(), true), (dist.addr.as_str(), false)] {
        let target = format!("{addr}/attest/refs:1");
        let out = manifold(
            dir.path(),
            &[
                "build",
                "--progress=plain",
                "--platform=linux/amd64,linux/arm64",
                "--push",
                "-t",
                &target,
                "--provenance=mode=min,referrers=true",
                ctx.path().to_str().unwrap(),
            ],
            &[],
        );
        ok(&out);
        let (index, _) = raw(&target);
        let images = index["manifests"].as_array().unwrap();
        assert_eq!(images.len(), 2, "no attestation in the index: {index}");
        for image in images {
            assert_ne!(image["platform"]["os"], "unknown", "{index}");
            let digest = image["digest"].as_str().unwrap();
            let list = match api {
                true => referrers_api(addr, "attest/refs", digest),
                false => {
                    let tag = digest.replace(':', "-");
                    raw(&format!("{addr}/attest/refs:{tag}")).0
                }
            };
            let refs = list["manifests"].as_array().unwrap();
            assert_eq!(refs.len(), 1, "{list}");
            assert_eq!(
                refs[0]["artifactType"], "application/vnd.in-toto+json",
                "{list}"
            );
            let (m, _) = raw(&format!(
                "{addr}/attest/refs@{}",
                refs[0]["digest"].as_str().unwrap()
            ));
            assert_eq!(m["subject"]["digest"], digest, "{m}");
            assert_eq!(
                m["config"]["mediaType"],
                "application/vnd.oci.empty.v1+json"
            );
            assert_eq!(
                m["layers"][0]["annotations"]["in-toto.io/predicate-type"],
                "https://slsa.dev/provenance/v0.2"
            );
        }
        let stderr = text(&out.stderr);
        let via = match api {
            true => "(a referrer)",
            false => "(a referrer, listed under its fallback tag)",
        };
        assert!(stderr.contains(via), "{stderr}");
        let out = manifold(
            dir.path(),
            &[
                "imagetools",
                "inspect",
                &target,
                "--format",
                "{{json .Provenance}}",
            ],
            &[],
        );
        let shown: Value = serde_json::from_str(&ok(&out)).unwrap();
        for arch in ["amd64", "arm64"] {
            assert_eq!(
                shown[format!("linux/{arch}")]["SLSA"]["buildType"],
                "https://mobyproject.org/buildkit@v1",
                "{shown}"
            );
        }
    }
}
