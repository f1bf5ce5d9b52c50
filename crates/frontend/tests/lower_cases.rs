//! Data-driven lowering tests: each directory under `tests/data/lower/<case>/`
//! holds a `Dockerfile`, optionally `options.json` (target, platforms, build
//! args, …) and the `expected.json` result (the graph dump, the parser's warnings
//! and, when there are any, the build checks' warnings; or the error with its
//! rendering). Run with `UPDATE_EXPECT=1` to rewrite the
//! expected files.
//!
//! Base images come from [`FakeResolver`]; the target and build platforms
//! default to `linux/amd64` so results do not depend on the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use frontend::{BuildOptions, NamedContext};
use graph::{ImageResolver, ResolveError, ResolvedImage};
use oci::document::{ContainerConfig, History};
use oci::{Digest, ImageConfig, Platform};
use serde_json::{Value, json};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lower")
}

/// Fixed configs for a few references; anything else is not found.
struct FakeResolver;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn fake_config(name: &str) -> Option<ContainerConfig> {
    let mut c = ContainerConfig::default();
    match name {
        "docker.io/library/busybox:latest" => {
            c.env = Some(strings(&["PATH=/bin:/usr/bin"]));
            c.cmd = Some(strings(&["sh"]));
        }
        "docker.io/library/alpine:3.20" | "docker.io/library/alpine:latest" => {
            c.env = Some(strings(&[
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ]));
            c.cmd = Some(strings(&["/bin/sh"]));
        }
        "docker.io/library/golang:1.22" => {
            c.env = Some(strings(&[
                "PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin",
                "GOPATH=/go",
            ]));
            c.working_dir = Some("/go".to_owned());
        }
        "example.com/app-base:1" => {
            c.env = Some(strings(&["APP_HOME=/srv"]));
            c.user = Some("app".to_owned());
            c.working_dir = Some("/srv".to_owned());
            c.entrypoint = Some(strings(&["/entry"]));
            c.cmd = Some(strings(&["serve"]));
            c.labels = Some(BTreeMap::from([("org.base".to_owned(), "yes".to_owned())]));
            c.shell = Some(strings(&["/bin/bash", "-eu", "-c"]));
        }
        "example.com/onbuild:1" => {
            c.on_build = Some(strings(&["RUN echo triggered", "ENV TRIGGERED=yes"]));
        }
        "example.com/onbuild-from:1" => {
            c.on_build = Some(strings(&["COPY --from=builder /out /out"]));
        }
        "example.com/empty:1" => {}
        _ => return None,
    }
    Some(c)
}

impl ImageResolver for FakeResolver {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError> {
        let config = fake_config(reference).ok_or_else(|| ResolveError::NotFound {
            reference: reference.to_owned(),
        })?;
        let layered = reference != "example.com/empty:1";
        let diff_ids = if layered {
            vec![Digest::sha256(
                format!("layer of {reference} {platform}").as_bytes(),
            )]
        } else {
            Vec::new()
        };
        let mut config = ImageConfig {
            created: Some("2024-01-01T00:00:00Z".to_owned()),
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            config: Some(config),
            history: vec![History {
                created_by: Some(format!("base layer of {reference}")),
                empty_layer: !layered,
                ..History::default()
            }],
            ..ImageConfig::default()
        };
        config.rootfs.diff_ids = diff_ids;
        Ok(ResolvedImage {
            digest: Digest::sha256(format!("manifest of {reference} {platform}").as_bytes()),
            config,
        })
    }
}

fn platform(v: &Value) -> Platform {
    Platform::parse(v.as_str().expect("platform is a string")).expect("valid platform")
}

fn options(dir: &Path) -> BuildOptions {
    let amd64 = Platform::new("linux", "amd64", None);
    let mut o = BuildOptions {
        platforms: vec![amd64.clone()],
        build_platform: Some(amd64),
        ..BuildOptions::default()
    };
    let Ok(text) = std::fs::read_to_string(dir.join("options.json")) else {
        return o;
    };
    let v: Value = serde_json::from_str(&text).expect("options.json is JSON");
    let obj = v.as_object().expect("options.json is an object");
    for (key, value) in obj {
        let str_map = |v: &Value| -> BTreeMap<String, String> {
            v.as_object()
                .expect("an object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_owned()))
                .collect()
        };
        match key.as_str() {
            "target" => o.target = value.as_str().map(str::to_owned),
            "platforms" => {
                o.platforms = value
                    .as_array()
                    .expect("array")
                    .iter()
                    .map(platform)
                    .collect()
            }
            "build_platform" => o.build_platform = Some(platform(value)),
            "build_args" => {
                o.build_args = value
                    .as_object()
                    .expect("build_args is an object")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
                    .collect();
            }
            "labels" => o.labels = str_map(value),
            "named_contexts" => {
                o.named_contexts = str_map(value)
                    .into_iter()
                    .map(|(k, v)| {
                        let nc = match v.strip_prefix("docker-image://") {
                            Some(r) => NamedContext::Image {
                                reference: r.to_owned(),
                            },
                            None => NamedContext::Local { name: v },
                        };
                        (k, nc)
                    })
                    .collect();
            }
            "no_cache_filter" => {
                o.no_cache_filter = value
                    .as_array()
                    .expect("array")
                    .iter()
                    .map(|s| s.as_str().expect("string").to_owned())
                    .collect();
            }
            "source_date_epoch" => o.source_date_epoch = value.as_i64(),
            "context_excludes" => {
                o.context_excludes = value
                    .as_array()
                    .expect("array")
                    .iter()
                    .map(|s| s.as_str().expect("string").to_owned())
                    .collect();
            }
            other => panic!("unknown option {other:?} in {}", dir.display()),
        }
    }
    o
}

fn actual(src: &str, opts: &BuildOptions) -> Value {
    match frontend::lower(src, opts, &FakeResolver) {
        Ok(l) => {
            let graph: Value =
                serde_json::from_str(&l.graph.to_json_pretty()).expect("dump is JSON");
            let warnings: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
            let mut v = json!({ "graph": graph, "warnings": warnings });
            if !l.checks.is_empty() {
                let checks: Vec<String> = l.checks.iter().map(ToString::to_string).collect();
                v["checks"] = json!(checks);
            }
            v
        }
        Err(e) => {
            let rendered: Vec<String> = e
                .diagnostics()
                .iter()
                .flat_map(|d| {
                    d.render("Dockerfile", src)
                        .lines()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            json!({ "error": { "code": e.code(), "message": e.to_string(), "rendered": rendered } })
        }
    }
}

fn run_case(name: &str) {
    let dir = data_dir().join(name);
    let src = std::fs::read_to_string(dir.join("Dockerfile"))
        .unwrap_or_else(|e| panic!("case {name}: cannot read Dockerfile: {e}"));
    let got =
        serde_json::to_string_pretty(&actual(&src, &options(&dir))).expect("serialise") + "\n";
    testkit::golden::compare(name, &dir.join("expected.json"), &got);
}

// ---- case list (one test per directory) ----
testkit::golden_cases! {
    data_dir(), run_case;
    add_local_tar_unpacks,
    arg_build_arg_overrides_default,
    arg_global_only_in_from,
    arg_global_redeclared,
    arg_not_persisted_in_config,
    arg_same_line_sequential,
    arg_scope_ends_with_stage,
    arg_without_value_build_arg,
    base_config_inherited,
    checks_base_env_known,
    checks_build_arg_replaces_directive,
    checks_empty_continuation_once,
    checks_once_for_all_platforms,
    cmd_then_entrypoint_keeps_cmd,
    copy_chown_chmod,
    copy_from_image,
    copy_heredoc,
    copy_link_merge,
    default_path_when_base_has_none,
    entrypoint_resets_cmd,
    env_overrides_arg,
    env_same_line,
    err_add_git_not_supported,
    err_add_url_not_supported,
    err_bad_chmod,
    err_bad_chown,
    err_base_onbuild_from_not_supported,
    err_blank_base,
    err_check_build_arg_invalid,
    err_checks_error_true,
    err_copy_from_later_stage,
    err_no_stages,
    err_parse_error,
    err_ssh_mount_not_supported,
    err_syntax_build_arg_foreign,
    err_syntax_foreign_frontend,
    err_target_not_found,
    err_unknown_image,
    from_stage_inherits_state,
    base_onbuild_triggers_run,
    heredoc_run_shebang,
    metadata_history_strings,
    multi_stage_copy_from,
    named_context_replaces_image,
    no_cache_filter_and_labels,
    platform_fanout_shared_build_stage,
    proxy_args_not_in_history,
    run_mount_from_stage,
    run_mounts,
    scratch_and_empty_image,
    secrets_by_id_only,
    shell_used_for_run,
    single_run,
    source_date_epoch,
    syntax_build_arg_replaces_directive,
    syntax_labs_digest_built_in,
    syntax_newer_version_warns,
    target_platform_args,
    target_prunes_unneeded_stages,
    workdir_relative,
    workdir_root_no_layer,
    workdir_with_user_chowns,
}
