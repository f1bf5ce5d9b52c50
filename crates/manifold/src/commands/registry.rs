//! `login`, `logout` and `imagetools`: registries.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use oci::document::ManifestOrIndex;
use oci::{Platform, Reference};
use registry::create::{CreateOptions, DescriptorAnnotation, Source, SourceSpec};
use registry::credentials::{DockerConfig, Secret, auth_key, default_config_dir, server_name};
use registry::ops::Platforms;
use registry::{Client, Credential, RegistryConfig, StaticCredentials};

use crate::cli::{
    CopyArgs, CreateArgs, Global, InspectArgs, KeygenArgs, LoginArgs, LogoutArgs, SignArgs,
    VerifyArgs,
};
use crate::commands::inspect_data;
use crate::render::Hinted;
use crate::template::{Template, TemplateError};

pub(crate) fn registry_config(global: &Global) -> anyhow::Result<RegistryConfig> {
    let mut config = RegistryConfig::load(&crate::config::config_dir(global))?;
    for host in &global.insecure_registries {
        config.add_insecure(host);
    }
    Ok(config)
}

/// A client with docker's stored credentials.
pub fn client(global: &Global) -> anyhow::Result<Client> {
    let creds = DockerConfig::load(&default_config_dir())?;
    Ok(Client::new(registry_config(global)?, Arc::new(creds))?)
}

fn parse_ref(s: &str) -> anyhow::Result<Reference> {
    Reference::parse(s).with_context(|| format!("invalid image reference {s:?}"))
}

pub async fn login(global: &Global, args: &LoginArgs) -> anyhow::Result<ExitCode> {
    let server = server_name(args.server.as_deref());
    let username = match &args.username {
        Some(u) => u.clone(),
        None => prompt("Username: ")?,
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else if let Some(p) = &args.password {
        eprintln!(
            "WARNING! Using --password on the command line is insecure; use --password-stdin"
        );
        p.clone()
    } else {
        prompt("Password: ")?
    };
    if username.is_empty() || password.is_empty() {
        bail!(Hinted::new(
            "username and password must not be empty",
            "pass -u USER and --password-stdin",
        ));
    }
    let secret = Secret::new(password);
    let mut creds = StaticCredentials::new();
    creds.insert(
        &server,
        Credential::Basic {
            username: username.clone(),
            password: secret.clone(),
        },
    );
    let client = Client::new(registry_config(global)?, Arc::new(creds))?;
    client
        .check_login(&server)
        .await
        .with_context(|| format!("login to {server} failed"))?;
    let dir = default_config_dir();
    let mut config = DockerConfig::load(&dir)?;
    config.store(&server, &username, &secret)?;
    eprintln!(
        "credentials for {} saved in {}",
        auth_key(&server),
        config.path().display()
    );
    crate::out::outln!("Login Succeeded")?;
    Ok(ExitCode::SUCCESS)
}

fn prompt(what: &str) -> anyhow::Result<String> {
    eprint!("{what}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        bail!(Hinted::new(
            "no credentials given: standard input is closed",
            "pass -u USER and --password-stdin",
        ));
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub fn logout(args: &LogoutArgs) -> anyhow::Result<ExitCode> {
    let server = server_name(args.server.as_deref());
    let mut config = DockerConfig::load(&default_config_dir())?;
    if config.erase(&server)? {
        crate::out::outln!("Removing login credentials for {}", auth_key(&server))?;
    } else {
        crate::out::outln!("Not logged in to {}", auth_key(&server))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `imagetools inspect --format` asks for.
enum InspectFormat {
    Pretty,
    Json,
    /// `{{.Name}}`: buildx prints `Name: NAME`.
    NameLine,
    Template(Template),
}

impl InspectFormat {
    fn parse(format: Option<&str>) -> anyhow::Result<InspectFormat> {
        Ok(match format {
            // `{{.Manifest}}` is buildx's default: its pretty listing.
            None | Some("pretty" | "{{.Manifest}}") => InspectFormat::Pretty,
            Some("json") => InspectFormat::Json,
            Some("{{.Name}}") => InspectFormat::NameLine,
            Some(t) if t.contains("{{") => {
                InspectFormat::Template(Template::parse(t).map_err(|e| {
                    template_error(format!("invalid --format template {t:?}: {e}"), &e)
                })?)
            }
            Some(other) => bail!(Hinted::new(
                format!("unknown --format {other:?}"),
                "use `pretty`, `json`, or a Go template such as '{{json .Manifest}}'",
            )),
        })
    }
}

fn template_error(message: String, e: &TemplateError) -> anyhow::Error {
    match &e.hint {
        Some(hint) => Hinted::new(message, hint).into(),
        None => anyhow::anyhow!(message),
    }
}

pub async fn inspect(global: &Global, args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let format = InspectFormat::parse(args.format.as_deref())?;
    let reference = parse_ref(&args.name)?;
    let client = client(global)?;
    let fetched = client.get_manifest(&reference).await?;
    let mut out = crate::out::stdout();
    if args.raw {
        out.write_all(fetched.document.bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        InspectFormat::Pretty => {}
        InspectFormat::Json => {
            let v = client.inspect_json(&reference, &fetched).await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        InspectFormat::NameLine => {
            writeln!(out, "Name: {reference}")?;
            return Ok(ExitCode::SUCCESS);
        }
        InspectFormat::Template(template) => {
            let configs = client.image_configs(&reference, &fetched).await?;
            let statements = client.attestation_statements(&reference, &fetched).await?;
            let text = inspect_data::render(
                &template,
                &reference.to_string(),
                &fetched,
                configs,
                &statements,
            )?
            .map_err(|e| {
                template_error(
                    format!(
                        "cannot render --format template {:?}: {e}",
                        args.format.as_deref().unwrap_or_default()
                    ),
                    &e,
                )
            })?;
            writeln!(out, "{text}")?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let d = &fetched.descriptor;
    writeln!(out, "Name:      {reference}")?;
    writeln!(out, "MediaType: {}", d.media_type)?;
    writeln!(out, "Digest:    {}", d.digest)?;
    if let ManifestOrIndex::Index(index) = &fetched.document {
        writeln!(out, "           ")?;
        writeln!(out, "Manifests: ")?;
        let name = reference.name();
        for (i, m) in index.value().manifests.iter().enumerate() {
            if i > 0 {
                writeln!(out, "           ")?;
            }
            writeln!(out, "  Name:        {name}@{}", m.digest)?;
            writeln!(out, "  MediaType:   {}", m.media_type)?;
            if let Some(p) = &m.platform {
                writeln!(out, "  Platform:    {p}")?;
            }
            if !m.annotations.is_empty() {
                writeln!(out, "  Annotations: ")?;
                for (k, v) in &m.annotations {
                    writeln!(out, "    {k}: {v}")?;
                }
            }
        }
    }
    if let ManifestOrIndex::Index(index) = &fetched.document
        && !index.value().annotations.is_empty()
    {
        writeln!(out, "           ")?;
        writeln!(out, "Annotations: ")?;
        for (k, v) in &index.value().annotations {
            writeln!(out, "  {k}: {v}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn create(
    global: &Global,
    store: &content::Store,
    args: &CreateArgs,
) -> anyhow::Result<ExitCode> {
    if args.sources.is_empty() && args.files.is_empty() && !args.append {
        bail!(Hinted::new(
            "no source images given",
            "name at least one SOURCE or -f FILE, or use --append"
        ));
    }
    let tags = args
        .tags
        .iter()
        .map(|s| parse_ref(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = &tags[0];
    let (index_annotations, descriptor_annotations) = create_annotations(&args.annotations)?;
    let platforms = args
        .platforms
        .iter()
        .map(|p| {
            Platform::parse(p).map_err(|e| {
                Hinted::new(
                    e.to_string(),
                    "give -p OS/ARCH[/VARIANT], such as linux/arm64 or linux/arm/v7",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Files first, then the arguments, as buildx orders them.
    let mut sources = Vec::new();
    for f in &args.files {
        sources.push(Source::new(SourceSpec::read_file(f)?, first, Some(f)));
    }
    for s in &args.sources {
        sources.push(Source::new(SourceSpec::parse_arg(s)?, first, None));
    }
    let opts = CreateOptions {
        append: args.append,
        platforms,
        index_annotations,
        descriptor_annotations,
        prefer_index: args.prefer_index,
        dry_run: args.dry_run,
    };
    let client = client(global)?;
    let created = client.create(store, &sources, first, &opts).await?;
    if args.dry_run {
        let value: serde_json::Value = serde_json::from_slice(&created.bytes)?;
        crate::out::outln!("{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for extra in &tags[1..] {
        client.tag_created(store, &created, first, extra).await?;
    }
    let what = if created.carbon_copy {
        "a copy of the source"
    } else {
        "a new index"
    };
    for t in &tags {
        eprintln!("pushed {t} ({what})");
    }
    crate::out::outln!("{}", created.descriptor.digest)?;
    Ok(ExitCode::SUCCESS)
}

/// `imagetools create --annotation`: index annotations (the default type) and
/// manifest-descriptor ones. The manifests are not rewritten, so their own
/// annotations cannot be set, nor those of a layout's entry.
fn create_annotations(
    list: &[String],
) -> anyhow::Result<(BTreeMap<String, String>, Vec<DescriptorAnnotation>)> {
    use export::annotation::{Level, parse_flag_as};
    let mut index = BTreeMap::new();
    let mut descriptors = Vec::new();
    for flag in list {
        for a in parse_flag_as(flag, Level::Index)? {
            match a.level {
                Level::Index => {
                    index.insert(a.key, a.value);
                }
                Level::ManifestDescriptor => descriptors.push(DescriptorAnnotation {
                    platform: a.platform,
                    key: a.key,
                    value: a.value,
                }),
                Level::Manifest | Level::IndexDescriptor => {
                    let why = if a.level == Level::Manifest {
                        "it lists the manifests without changing them"
                    } else {
                        "they belong to an OCI layout, and it writes to a registry"
                    };
                    bail!(Hinted::new(
                        format!(
                            "invalid --annotation {flag:?}: imagetools create cannot set {} \
                             annotations: {why}",
                            a.level.name()
                        ),
                        "use index:KEY=VALUE or manifest-descriptor[[PLATFORM]]:KEY=VALUE; set \
                         manifest annotations when building (manifold build --annotation \
                         manifest:KEY=VALUE)",
                    ))
                }
            }
        }
    }
    Ok((index, descriptors))
}

pub async fn copy(
    global: &Global,
    store: &content::Store,
    args: &CopyArgs,
) -> anyhow::Result<ExitCode> {
    let dst = parse_ref(&args.destination)?;
    if let Some(layout) = args.source.strip_prefix("oci-layout://") {
        return copy_from_layout(global, layout, &dst, args).await;
    }
    let src = parse_ref(&args.source)?;
    let platforms = if args.platform.is_empty() {
        Platforms::All
    } else {
        Platforms::Only(
            args.platform
                .iter()
                .map(|p| Platform::parse(p).with_context(|| format!("invalid platform {p:?}")))
                .collect::<anyhow::Result<_>>()?,
        )
    };
    let client = client(global)?;
    let (desc, stats) = client.copy(store, &src, &dst, &platforms).await?;
    eprintln!(
        "copied {src} to {dst}: {} blob(s) uploaded, {} mounted, {} already there",
        stats.blobs_uploaded, stats.blobs_mounted, stats.blobs_existing
    );
    crate::out::outln!("{}", desc.digest)?;
    Ok(ExitCode::SUCCESS)
}

/// `oci-layout://DIR[:NAME]`: push an image from an OCI layout on disk.
async fn copy_from_layout(
    global: &Global,
    spec: &str,
    dst: &Reference,
    args: &CopyArgs,
) -> anyhow::Result<ExitCode> {
    if !args.platform.is_empty() {
        bail!(Hinted::new(
            "--platform is not supported with an oci-layout:// source",
            "copy the whole layout, then select platforms registry to registry",
        ));
    }
    let (layout, desc) = content::layout::open_image(spec)?;
    let client = client(global)?;
    let stats = client.push(&layout, &desc, dst, None).await?;
    if stats.already_there {
        eprintln!("{dst} already is {}: nothing to push", desc.digest);
    } else {
        eprintln!(
            "pushed {dst}: {} blob(s) uploaded, {} already there",
            stats.blobs_uploaded, stats.blobs_existing
        );
    }
    crate::out::outln!("{}", desc.digest)?;
    Ok(ExitCode::SUCCESS)
}

/// `imagetools keygen`: PREFIX.key (0600) and PREFIX.pub, never over existing files.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt;
    let (private, public) = registry::signature::generate_key_pair()?;
    let key = format!("{}.key", args.output_key_prefix);
    let pubkey = format!("{}.pub", args.output_key_prefix);
    for p in [&key, &pubkey] {
        if std::path::Path::new(p).exists() {
            bail!(Hinted::new(
                format!("{p} exists; keygen never overwrites a key"),
                "remove it, or give another --output-key-prefix",
            ));
        }
    }
    let write = |path: &str, text: &str, mode: u32| -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot create {path}"))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("cannot write {path}"))
    };
    write(&key, &private, 0o600)?;
    write(&pubkey, &public, 0o644)?;
    eprintln!("Private key written to {key}");
    eprintln!("Public key written to {pubkey}");
    Ok(ExitCode::SUCCESS)
}

fn read_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() || meta.len() > 64 << 10 {
        bail!(
            "{} is not a key file (a regular file of at most 64 KiB)",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `imagetools sign --key KEY IMAGE`.
pub async fn sign(
    global: &Global,
    store: &content::Store,
    args: &SignArgs,
) -> anyhow::Result<ExitCode> {
    let text = read_key_file(&args.key)?;
    let key = registry::signature::private_key(&text, &args.key.display().to_string())?;
    let image = parse_ref(&args.image)?;
    let client = client(global)?;
    let lease = store.lease()?;
    let digest = client
        .sign(store, &lease, &image, &key, args.referrer)
        .await?;
    let how = match args.referrer {
        true => "a referrer".to_owned(),
        false => format!("tag {}", registry::signature::signature_tag(&digest)),
    };
    eprintln!("signed {}@{digest} ({how})", image.name());
    Ok(ExitCode::SUCCESS)
}

/// `imagetools verify --key PUB IMAGE`.
pub async fn verify(global: &Global, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = read_key_file(&args.key)?;
    let shown = args.key.display().to_string();
    let public = registry::signature::public_key(&text, &shown)?;
    let image = parse_ref(&args.image)?;
    let client = client(global)?;
    let verified = client.verify(&image, &public, &shown).await?;
    let mut out = crate::out::stdout();
    for v in &verified {
        writeln!(
            out,
            "Verified OK: {}@{} (signed for {}, payload {})",
            image.name(),
            v.digest,
            v.repository,
            v.payload
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
