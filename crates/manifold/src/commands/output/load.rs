//! `--load`: the host platform's image handed to docker or podman.

use std::io::{BufWriter, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use content::Store;
use oci::{Descriptor, ImageIndex, Platform};

use super::image::platform_of;

/// `--load`: hand the host platform's image to docker or podman when one answers.
pub(super) fn load(
    store: &Store,
    index: &Descriptor,
    manifests: &[Descriptor],
    tags: &[String],
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some(cli) = ["docker", "podman"].into_iter().find(|c| engine_answers(c)) else {
        let how = match tags.first() {
            Some(t) => format!("`manifold run {t}` runs it"),
            None => format!("`manifold run {}` runs it", index.digest),
        };
        notes.push(format!(
            "no docker or podman engine answered: the image is in manifold's store ({how})"
        ));
        return Ok(());
    };
    let host = Platform::host();
    let chosen = match manifests {
        [one] => one.clone(),
        _ => {
            let listed = ImageIndex {
                manifests: manifests.to_vec(),
                ..ImageIndex::new()
            };
            listed
                .manifest_for(&host)
                .cloned()
                .unwrap_or_else(|| manifests[0].clone())
        }
    };
    let platform = platform_of(store, &chosen)?;
    let mut child = Command::new(cli)
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{cli} load`"))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stdin = child.stdin.take().expect("invariant: stdin was piped");
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let written = export::write_docker_archive(store, &chosen, &tag_refs, BufWriter::new(stdin))
        .map_err(anyhow::Error::from)
        .and_then(|w| {
            w.into_inner()
                .map_err(|e| anyhow::Error::new(e.into_error()))
                .map(drop)
        });
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{cli} load`"))?;
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "`{cli} load` failed ({status}): {}",
            format!("{}{}", err.trim(), out.trim()).trim()
        );
    }
    written.with_context(|| format!("cannot send the image to `{cli} load`"))?;
    if manifests.len() > 1 {
        notes.push(format!(
            "loaded {platform} into {cli}; the other platforms stay in manifold's store"
        ));
    } else {
        notes.push(format!("loaded {platform} into {cli}"));
    }
    Ok(())
}

/// Whether `cli` is on PATH and `cli info` succeeds within 30 s.
fn engine_answers(cli: &str) -> bool {
    let Ok(mut child) = Command::new(cli)
        .arg("info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}
