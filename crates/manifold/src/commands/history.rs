//! `history ls|inspect|logs|rm`: past builds on the state root
//! ([`builder::history`]).

use std::io::Write;
use std::process::ExitCode;

use builder::history::{History, Record};
use content::Store;

use crate::cli::{Format, HistoryCmd};

pub fn run(store: &Store, cmd: &HistoryCmd) -> anyhow::Result<ExitCode> {
    let history = History::for_root(store.root());
    let mut out = crate::out::stdout();
    match cmd {
        HistoryCmd::Ls(args) => {
            let all = history.list()?;
            if args.format == Format::Json {
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let w = all.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
            writeln!(
                out,
                "{:<26}  {:<w$}  {:<9}  {:<20}  {:>8}  CACHED",
                "BUILD ID", "NAME", "STATUS", "CREATED AT", "DURATION"
            )?;
            for r in &all {
                writeln!(
                    out,
                    "{:<26}  {:<w$}  {:<9}  {:<20}  {:>8}  {}/{}",
                    r.reference,
                    r.name,
                    r.status.name(),
                    oci::rfc3339((r.started_ms / 1000) as i64),
                    seconds(r),
                    r.cached,
                    r.steps
                )?;
            }
        }
        HistoryCmd::Inspect(args) => {
            let r = history.find(&args.reference)?;
            if args.format == Format::Json {
                writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let req = &r.request;
            let opts = &req["options"];
            writeln!(out, "Build ID:    {}", r.reference)?;
            writeln!(out, "Name:        {}", r.name)?;
            writeln!(out, "Status:      {}", r.status.name())?;
            writeln!(
                out,
                "Created at:  {}",
                oci::rfc3339((r.started_ms / 1000) as i64)
            )?;
            writeln!(out, "Duration:    {}", seconds(&r))?;
            writeln!(out, "Steps:       {} ({} cached)", r.steps, r.cached)?;
            if let Some(t) = opts["target"].as_str() {
                writeln!(out, "Target:      {t}")?;
            }
            if let Some(ps) = opts["platforms"].as_array().filter(|p| !p.is_empty()) {
                let ps: Vec<String> = ps.iter().map(platform_text).collect();
                writeln!(out, "Platforms:   {}", ps.join(", "))?;
            }
            if let Some(args) = opts["build_args"].as_array().filter(|a| !a.is_empty()) {
                writeln!(out, "Build args:")?;
                for a in args {
                    let k = a[0].as_str().unwrap_or("");
                    match a[1].as_str() {
                        Some(v) => writeln!(out, "  {k}={v}")?,
                        None => writeln!(out, "  {k}")?,
                    }
                }
            }
            if let Some(tags) = req["tags"].as_array().filter(|t| !t.is_empty()) {
                let tags: Vec<&str> = tags.iter().filter_map(|t| t.as_str()).collect();
                writeln!(out, "Tags:        {}", tags.join(", "))?;
            }
            if let Some(image) = &r.image {
                writeln!(out, "Image:       {image}")?;
            }
            for p in &r.pushed {
                writeln!(out, "Pushed:      {p}")?;
            }
            if let Some(e) = &r.error {
                writeln!(out, "Error:       {e}")?;
            }
        }
        HistoryCmd::Logs(args) => {
            let r = history.find(&args.reference)?;
            out.write_all(history.log(&r)?.as_bytes())?;
        }
        HistoryCmd::Rm(args) => {
            let doomed: Vec<Record> = if args.all {
                history.list()?
            } else {
                args.references
                    .iter()
                    .map(|r| history.find(r))
                    .collect::<Result<_, _>>()?
            };
            for r in &doomed {
                history.remove(&r.reference)?;
                writeln!(out, "{}", r.reference)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn seconds(r: &Record) -> String {
    format!("{:.1}s", r.duration_ms as f64 / 1000.0)
}

/// A platform as the request's JSON holds it, as `os/arch[/variant]`.
fn platform_text(p: &serde_json::Value) -> String {
    match p.as_str() {
        Some(s) => s.to_owned(),
        None => {
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap_or("?"),
                p["architecture"].as_str().unwrap_or("?")
            );
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            s
        }
    }
}
