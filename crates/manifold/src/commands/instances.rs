//! `create`, `use`, `inspect`, `ls`, `rm`, `stop`: builder instances.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use oci::Platform;

use crate::cli::{
    BuilderCreateArgs, BuilderInspectArgs, BuilderLsArgs, BuilderRmArgs, BuilderStopArgs,
    BuilderUseArgs, DriverArg, Format, Global,
};
use crate::instances::{self, Builders, DEFAULT, Driver, Instance, Node};
use crate::render::{Hinted, chain_text, human_size};

use remote::probe::{Probe, Report, Status};

fn builders(global: &Global) -> Builders {
    Builders::new(&crate::config::config_dir(global))
}

/// `manifold create`.
pub fn create(global: &Global, args: &BuilderCreateArgs) -> anyhow::Result<ExitCode> {
    let store = builders(global);
    let (name, endpoint) = name_and_endpoint(args)?;
    if args.leave {
        let (Some(name), Some(node)) = (name.as_deref(), args.node.as_deref()) else {
            bail!("--leave needs the instance (--name NAME or NAME) and the node (--node)");
        };
        if let Some(e) = endpoint {
            bail!("--leave takes no endpoint (given {e}): the node is named by --node");
        }
        store.remove_node(name, node)?;
        eprintln!("removed node {node} from {name}");
        return Ok(ExitCode::SUCCESS);
    }
    let driver = args.driver.map(|d| match d {
        DriverArg::Local => Driver::Local,
        DriverArg::Remote => Driver::Remote,
    });
    let tls_driver = driver.unwrap_or(match endpoint {
        Some(_) => Driver::Remote,
        None => Driver::Local,
    });
    let instance = store.add_node(instances::NewNode {
        instance: name,
        append: args.append,
        driver,
        node: args.node.clone(),
        tls: instances::tls_from_driver_opts(tls_driver, endpoint.as_ref(), &args.driver_opts)?,
        endpoint,
        platforms: parse_platforms(&args.platform)?,
    })?;
    let name = &instance.name;
    let node = instance.nodes.last().expect("a node was just added");
    if args.select {
        store.select(name)?;
    }
    if args.append {
        eprintln!("added node {} to {name}", node.name);
    }
    crate::out::outln!("{name}")?;
    if args.bootstrap {
        let report = reports(global, &[(instance.driver, node)], true)?.remove(0);
        if let Status::Error(e) = &report.status {
            return Err(not_ready(&instance, node, e));
        }
        eprintln!("{}: {}", node.name, report.status);
    }
    Ok(ExitCode::SUCCESS)
}

/// The name and endpoint from `--name` and the positional argument: the
/// positional is an endpoint when it has a scheme (`unix://`, `tcp://`), else a name.
fn name_and_endpoint(
    args: &BuilderCreateArgs,
) -> anyhow::Result<(Option<String>, Option<remote::Endpoint>)> {
    let mut name = args.name.clone();
    let mut endpoint = None;
    match args.target.as_deref() {
        Some(t) if t.contains("://") => {
            endpoint = Some(remote::Endpoint::parse(t)?);
        }
        Some(t) => {
            if let Some(n) = &name {
                return Err(Hinted::new(
                    format!("two names given: --name {n} and {t:?}"),
                    "the argument is a daemon endpoint (unix:///PATH or tcp://HOST:PORT) when --name is given",
                )
                .into());
            }
            name = Some(t.to_owned());
        }
        None => {}
    }
    if let Some(n) = &name {
        instances::validate_name("builder instance", n)?;
    }
    Ok((name, endpoint))
}

fn parse_platforms(given: &[String]) -> anyhow::Result<Vec<Platform>> {
    let mut out: Vec<Platform> = Vec::new();
    for p in given.iter().filter(|p| !p.is_empty()) {
        let p = Platform::parse(p).context("invalid --platform")?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// `manifold use`.
pub fn use_(global: &Global, args: &BuilderUseArgs) -> anyhow::Result<ExitCode> {
    let store = builders(global);
    let _lock = store.lock()?;
    store.load(&args.name)?;
    store.select(&args.name)?;
    if let Some(b) = global
        .builder
        .as_deref()
        .filter(|b| !b.is_empty() && *b != args.name)
    {
        eprintln!("note: --builder (or MANIFOLD_BUILDER) {b} still overrides this selection");
    }
    Ok(ExitCode::SUCCESS)
}

/// The instance a verb names, else the selected one.
fn named_or_selected(global: &Global, name: Option<&str>) -> anyhow::Result<Instance> {
    match name {
        Some(n) => Ok(builders(global).load(n)?),
        None => instances::current(global),
    }
}

/// What each node reports: this host for local ones (the state root, the runtime
/// `MANIFOLD_RUNTIME` names, default runc), the daemon for remote ones.
fn reports(
    global: &Global,
    nodes: &[(Driver, &Node)],
    bootstrap: bool,
) -> anyhow::Result<Vec<Report>> {
    let root = super::state_root(global).map_err(|e| format!("{e:#}"));
    let runtime = std::env::var_os("MANIFOLD_RUNTIME")
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "runc".into());
    let probe = Probe::new(root, runtime.into());
    Ok(super::runtime()?.block_on(probe.reports(nodes, bootstrap)))
}

/// `manifold inspect`.
pub fn inspect(global: &Global, args: &BuilderInspectArgs) -> anyhow::Result<ExitCode> {
    let instance = named_or_selected(global, args.name.as_deref())?;
    let mut out = crate::out::stdout();
    writeln!(out, "Name:          {}", instance.name)?;
    writeln!(out, "Driver:        {}", instance.driver)?;
    writeln!(out)?;
    writeln!(out, "Nodes:")?;
    let mut failed = None;
    let nodes: Vec<_> = instance
        .nodes
        .iter()
        .map(|n| (instance.driver, n))
        .collect();
    let reports = reports(global, &nodes, args.bootstrap)?;
    for (i, (node, report)) in instance.nodes.iter().zip(reports).enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "Name:          {}", node.name)?;
        match &node.endpoint {
            Some(e) => writeln!(out, "Endpoint:      {e}")?,
            None => {
                writeln!(out, "Endpoint:      in-process")?;
                let root = match super::state_root(global) {
                    Ok(r) => r.display().to_string(),
                    Err(e) => format!("unknown ({e})"),
                };
                writeln!(out, "State root:    {root}")?;
            }
        }
        if let Some(tls) = &node.tls {
            writeln!(out, "TLS CA:        {}", tls.ca.display())?;
            writeln!(out, "TLS cert:      {}", tls.cert.display())?;
            writeln!(out, "TLS key:       {}", tls.key.display())?;
        }
        writeln!(out, "Status:        {}", report.status)?;
        if let Some(v) = &report.version {
            writeln!(out, "Version:       {v}")?;
        }
        writeln!(
            out,
            "Platforms:     {}",
            platforms_text(node, &report.detected)
        )?;
        if let Some(s) = &report.snapshotter {
            writeln!(out, "Snapshotter:   {s}")?;
        }
        if let Some(n) = report.running {
            writeln!(out, "Builds:        {n} running")?;
        }
        if let Some(b) = report.cache_bytes {
            writeln!(out, "Cache usage:   {}", human_size(b))?;
        }
        if let Status::Error(e) = &report.status
            && failed.is_none()
        {
            failed = Some((node, e.clone()));
        }
    }
    out.flush()?;
    match failed {
        Some((node, e)) if args.bootstrap => Err(not_ready(&instance, node, &e)),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn not_ready(instance: &Instance, node: &Node, error: &str) -> anyhow::Error {
    let hint = match &node.endpoint {
        Some(e) => {
            format!("start `manifold daemon` at {e}, or check the endpoint and its TLS files")
        }
        None => "install runc (scripts/setup.sh does), or set MANIFOLD_RUNTIME to an OCI runtime"
            .to_owned(),
    };
    Hinted::new(
        format!(
            "builder instance {}: node {} is not ready: {error}",
            instance.name, node.name
        ),
        hint,
    )
    .into()
}

/// Declared platforms first, marked `*` as BuildKit does, then the detected ones.
fn platforms_text(node: &Node, detected: &[String]) -> String {
    let declared: Vec<String> = node.platforms.iter().map(ToString::to_string).collect();
    let mut out: Vec<String> = declared.iter().map(|p| format!("{p}*")).collect();
    out.extend(detected.iter().filter(|p| !declared.contains(p)).cloned());
    if out.is_empty() {
        "-".to_owned()
    } else {
        out.join(", ")
    }
}

/// `manifold ls`.
pub fn ls(global: &Global, args: &BuilderLsArgs) -> anyhow::Result<ExitCode> {
    let store = builders(global);
    let (selected, _) = instances::selected(global, &store)?;
    let mut listed = vec![(DEFAULT.to_owned(), Ok(Instance::default_local()))];
    listed.extend(store.list()?);
    // Every node is asked at once: unreachable daemons cost one timeout, not one each.
    let nodes: Vec<(Driver, &Node)> = listed
        .iter()
        .filter_map(|(_, loaded)| loaded.as_ref().ok())
        .flat_map(|i| i.nodes.iter().map(|n| (i.driver, n)))
        .collect();
    let mut reports = reports(global, &nodes, false)?.into_iter();
    if args.format == Format::Json {
        return ls_json(&listed, &selected, &mut reports);
    }
    ls_table(&listed, &selected, &mut reports)
}

/// The `ls` table; errors follow it on standard error.
fn ls_table(
    listed: &[remote::instances::Listed],
    selected: &str,
    reports: &mut impl Iterator<Item = Report>,
) -> anyhow::Result<ExitCode> {
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut errors = Vec::new();
    for (name, loaded) in listed {
        let mark = if name == selected { " *" } else { "" };
        let instance = match loaded {
            Ok(i) => i,
            Err(e) => {
                errors.push(format!("{name}: {}", chain_text(e)));
                let row = [
                    format!("{name}{mark}"),
                    "?".into(),
                    "error".into(),
                    "".into(),
                    "".into(),
                ];
                rows.push(row);
                continue;
            }
        };
        let row = [
            format!("{name}{mark}"),
            instance.driver.to_string(),
            "".into(),
            "".into(),
            "".into(),
        ];
        rows.push(row);
        for node in &instance.nodes {
            let report = reports.next().expect("one report per node");
            let status = match report.status {
                Status::Error(e) => {
                    errors.push(format!("{name}/{}: {e}", node.name));
                    "error".to_owned()
                }
                s => s.to_string(),
            };
            rows.push([
                format!(" \\_ {}", node.name),
                format!(
                    " \\_ {}",
                    node.endpoint
                        .as_ref()
                        .map_or_else(|| "in-process".to_owned(), ToString::to_string)
                ),
                status,
                report.version.unwrap_or_default(),
                platforms_text(node, &report.detected),
            ]);
        }
    }
    let header = [
        "NAME/NODE",
        "DRIVER/ENDPOINT",
        "STATUS",
        "VERSION",
        "PLATFORMS",
    ];
    let widths: Vec<usize> = (0..4)
        .map(|c| {
            let cells = rows.iter().map(|r| r[c].chars().count());
            cells.chain([header[c].len()]).max().unwrap_or(0)
        })
        .collect();
    let mut out = crate::out::stdout();
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    out.flush()?;
    for e in errors {
        eprintln!("{e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ls --format json`: one object per instance, nodes with their status.
fn ls_json(
    listed: &[remote::instances::Listed],
    selected: &str,
    reports: &mut impl Iterator<Item = Report>,
) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    for (name, loaded) in listed {
        let instance = match loaded {
            Ok(i) => i,
            Err(e) => {
                out.push(serde_json::json!({
                    "name": name,
                    "selected": name == selected,
                    "error": chain_text(e),
                }));
                continue;
            }
        };
        let nodes: Vec<serde_json::Value> = instance
            .nodes
            .iter()
            .map(|node| {
                let report = reports.next().expect("one report per node");
                let (status, error) = match report.status {
                    Status::Error(e) => ("error".to_owned(), Some(e)),
                    s => (s.to_string(), None),
                };
                serde_json::json!({
                    "name": node.name,
                    "endpoint": node.endpoint.as_ref().map(ToString::to_string),
                    "status": status,
                    "error": error,
                    "version": report.version,
                    "declared_platforms": node.platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "platforms": report.detected,
                })
            })
            .collect();
        out.push(serde_json::json!({
            "name": name,
            "selected": name == selected,
            "driver": instance.driver.to_string(),
            "nodes": nodes,
        }));
    }
    crate::out::outln!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `manifold rm`.
pub fn rm(global: &Global, args: &BuilderRmArgs) -> anyhow::Result<ExitCode> {
    let store = builders(global);
    let _lock = store.lock()?;
    for name in &args.names {
        if name == DEFAULT {
            return Err(Hinted::new(
                "the default instance cannot be removed",
                "it is the implicit local instance; `manifold use default` selects it",
            )
            .into());
        }
        instances::validate_name("builder instance", name)?;
        if !store.remove(name)? {
            return Err(Hinted::new(
                format!("no builder instance named {name:?}"),
                "`manifold ls` lists the instances",
            )
            .into());
        }
        if store.current_name()?.as_deref() == Some(name.as_str()) {
            store.select(DEFAULT)?;
            eprintln!("{name} removed; builds now use the default instance");
        } else {
            eprintln!("{name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `manifold stop`.
pub fn stop(global: &Global, args: &BuilderStopArgs) -> anyhow::Result<ExitCode> {
    let instance = named_or_selected(global, args.name.as_deref())?;
    match instance.driver {
        Driver::Local => {
            eprintln!(
                "{}: nothing to stop: the local driver builds in this process, and no daemon runs",
                instance.name
            );
            Ok(ExitCode::SUCCESS)
        }
        Driver::Remote => {
            // As buildx's remote driver: a daemon started by someone else is not ours
            // to stop.
            for n in &instance.nodes {
                match &n.endpoint {
                    Some(ep) => eprintln!(
                        "{}: node {}: {ep} is a remote daemon manifold does not manage: left running",
                        instance.name, n.name
                    ),
                    None => eprintln!("{}: node {}: nothing to stop", instance.name, n.name),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
