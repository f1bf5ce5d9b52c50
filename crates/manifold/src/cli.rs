//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build multi-platform container images.
#[derive(Debug, Parser)]
#[command(name = "manifold", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// State directory (content store, cache) [default: /var/lib/manifold for root,
    /// else ~/.local/share/manifold]
    #[arg(long, global = true, env = "MANIFOLD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Configuration directory (config.toml, builders) [default: ~/.config/manifold]
    #[arg(long, global = true, env = "MANIFOLD_CONFIG", value_name = "DIR")]
    pub config: Option<PathBuf>,
    /// Talk to this registry over plain HTTP, or HTTPS without certificate
    /// verification (repeatable)
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Builder instance to use [default: the one `manifold use` selected, else
    /// `default`]
    #[arg(long, global = true, env = "MANIFOLD_BUILDER", value_name = "NAME")]
    pub builder: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the version of manifold
    Version,
    /// List images in the local store
    Images(ImagesArgs),
    /// Show disk usage of the local store and the build state
    Du(DuArgs),
    /// Remove unused content from the local store
    Prune(PruneArgs),
    /// Verify every blob of the local store against its digest
    Fsck,
    /// Build an image from a Dockerfile
    Build(Box<BuildArgs>),
    /// Run a command in an image (from the local store or a registry)
    Run(RunArgs),
    /// Log in to a registry (credentials are stored as docker stores them)
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Work with images and indexes in registries
    #[command(subcommand)]
    Imagetools(Imagetools),
    /// Manage QEMU emulators for foreign platforms (binfmt_misc)
    #[command(subcommand)]
    Binfmt(Binfmt),
    /// Run the embedded registry (OCI distribution spec v1.1) on the state root
    #[command(subcommand)]
    Registry(RegistryCmd),
    /// Past builds on this state root, as `docker buildx history`
    #[command(subcommand)]
    History(HistoryCmd),
    /// Serve builds to remote clients (a node of a remote builder)
    Daemon(DaemonArgs),
    /// Create a builder instance, or add a node to one (--append)
    Create(BuilderCreateArgs),
    /// Select the builder instance that builds use
    Use(BuilderUseArgs),
    /// Show a builder instance: its nodes, their status, platforms and version
    Inspect(BuilderInspectArgs),
    /// List builder instances and their nodes (`*` marks the selected one)
    Ls(BuilderLsArgs),
    /// Remove builder instances
    Rm(BuilderRmArgs),
    /// Stop a builder instance's nodes (remote daemons are not managed: left running)
    Stop(BuilderStopArgs),
}

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Serve the registry until interrupted
    Serve(Box<RegistryServeArgs>),
    /// Remove blobs no repository's manifests reach (uploads in progress are kept)
    Gc(RegistryGcArgs),
}

#[derive(Debug, Args)]
pub struct RegistryServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "HOST:PORT")]
    pub addr: String,
    /// Require Basic auth against this htpasswd file (bcrypt entries)
    #[arg(long, value_name = "FILE", conflicts_with = "token_realm")]
    pub htpasswd: Option<PathBuf>,
    /// Require bearer tokens, and send clients without one to this token server URL
    /// (distribution's auth.token); needs --token-service, --token-issuer and
    /// --token-root-certs
    #[arg(
        long,
        value_name = "URL",
        requires_all = ["token_service", "token_issuer", "token_root_certs"]
    )]
    pub token_realm: Option<String>,
    /// The service tokens must be issued for (their `aud`)
    #[arg(long, value_name = "NAME", requires = "token_realm")]
    pub token_service: Option<String>,
    /// The issuer tokens must name (their `iss`)
    #[arg(long, value_name = "NAME", requires = "token_realm")]
    pub token_issuer: Option<String>,
    /// Certificates (PEM) whose keys sign the tokens; keys a token carries itself are
    /// never used
    #[arg(long, value_name = "FILE", requires = "token_realm")]
    pub token_root_certs: Option<PathBuf>,
    /// TLS certificate chain (PEM); needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow deleting manifests, tags and blobs
    #[arg(long)]
    pub delete: bool,
    /// Write the access log (one JSON object per request) here [default: stderr]
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// The largest blob accepted, e.g. 10g [default: 64g]
    #[arg(long, value_name = "SIZE")]
    pub max_blob_size: Option<String>,
    /// Upload sessions open at once; a client past it gets 429 [default: 1024]
    #[arg(long, value_name = "N")]
    pub max_upload_sessions: Option<usize>,
    /// Upload sessions one client address may hold open [default: 256]
    #[arg(long, value_name = "N")]
    pub max_upload_sessions_per_client: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RegistryGcArgs {
    /// Keep blobs linked, and upload sessions touched, less than this many seconds ago
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub grace: u64,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry to log in to [default: docker.io]
    pub server: Option<String>,
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin: a password on the command line is visible
    /// to other users)
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry to log out from [default: docker.io]
    pub server: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Imagetools {
    /// Show an image or index in a registry
    Inspect(InspectArgs),
    /// Combine images and indexes into one index and push it
    Create(CreateArgs),
    /// Copy an image or index between repositories or registries, keeping digests
    Copy(CopyArgs),
    /// Make a key pair for `sign` and `verify` (ECDSA P-256 PEM files, as
    /// `cosign generate-key-pair` makes, unencrypted): PREFIX.key and PREFIX.pub
    Keygen(KeygenArgs),
    /// Sign an image in a registry with a private key, in cosign's layout (a
    /// simple-signing payload in the tag sha256-<hex>.sig), offline: no
    /// transparency log
    Sign(SignArgs),
    /// Check that an image in a registry has a signature that verifies with a public
    /// key and names the image's digest
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write PREFIX.key (the private key, mode 0600) and PREFIX.pub, as
    /// `cosign generate-key-pair --output-key-prefix`; existing files are never
    /// overwritten
    #[arg(long, value_name = "PREFIX", default_value = "manifold")]
    pub output_key_prefix: String,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Private key: PEM, PKCS#8 or SEC1, ECDSA P-256 (cosign's encrypted key files
    /// are not read)
    #[arg(long, value_name = "KEY.pem")]
    pub key: std::path::PathBuf,
    /// Attach the signature as an OCI 1.1 referrer of the image (artifact type
    /// application/vnd.dev.cosign.artifact.sig.v1+json; the fallback tag
    /// sha256-<hex> on registries without the referrers API) instead of the tag
    /// sha256-<hex>.sig
    #[arg(long)]
    pub referrer: bool,
    /// Image reference (NAME[:TAG|@DIGEST]); the digest the registry gives is signed
    pub image: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Public key: PEM SubjectPublicKeyInfo, ECDSA P-256
    #[arg(long, value_name = "PUB.pem")]
    pub key: std::path::PathBuf,
    /// Image reference (NAME[:TAG|@DIGEST])
    pub image: String,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image reference (NAME[:TAG|@DIGEST])
    pub name: String,
    /// Print the manifest or index exactly as the registry sent it
    #[arg(long, conflicts_with = "format")]
    pub raw: bool,
    /// `pretty` (the default), `json`, or a Go template (any value with `{{`), as
    /// `docker buildx imagetools inspect --format` takes it.
    ///
    /// A template reads .Name, .Manifest (the manifest or index: .MediaType, .Digest,
    /// .Manifests with .Digest, .Platform.Architecture, .Annotations, …) and .Image
    /// (the config; for several platforms a map by os/arch[/variant]), and may use
    /// if/else/end, range, with, `{{- -}}` and the functions json, index, eq, ne, not,
    /// and, or and len. `{{.Manifest}}` and `{{.Name}}` print as buildx prints them:
    /// the pretty listing, and `Name: NAME`. Examples: '{{json .Manifest}}',
    /// '{{json (index .Image "linux/amd64")}}',
    /// '{{range .Manifest.Manifests}}{{.Digest}} {{end}}'
    #[arg(long, value_name = "pretty|json|TEMPLATE")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Sources: images or indexes (NAME[:TAG|@DIGEST]), or digests (sha256:…) in the
    /// first -t's repository
    pub sources: Vec<String>,
    /// Read a source from FILE, as `docker buildx imagetools create --file`: an OCI
    /// descriptor (JSON; its platform and annotations are kept), the --metadata-file
    /// of a build (its containerimage.descriptor), a digest or a reference. Digests
    /// and descriptors name content in the first -t's repository; a descriptor
    /// without a platform gets its image config's. Files come before the SOURCE
    /// arguments (repeatable)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Reference to push the result to (repeatable), as `docker buildx imagetools
    /// create --tag`
    #[arg(short, long = "tag", required = true)]
    pub tags: Vec<String>,
    /// Keep only these platforms of the sources, and the manifests that refer to
    /// them (attestations), as `docker buildx imagetools create --platform`
    /// (comma-separated or repeated)
    #[arg(
        short,
        long = "platform",
        value_delimiter = ',',
        value_name = "PLATFORM"
    )]
    pub platforms: Vec<String>,
    /// With one source that is an image manifest and nothing to change, wrap it in
    /// an index (true) or push the manifest itself, same digest (false), as `docker
    /// buildx imagetools create --prefer-index`. One index is always copied as it
    /// is unless -p or annotations change it
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub prefer_index: bool,
    /// Add the target's existing manifests first, as `docker buildx imagetools
    /// create --append`
    #[arg(long)]
    pub append: bool,
    /// Print the result instead of pushing it, as `docker buildx imagetools create
    /// --dry-run`
    #[arg(long)]
    pub dry_run: bool,
    /// Add an annotation, as `docker buildx imagetools create --annotation`:
    /// KEY=VALUE or index:KEY=VALUE on the index, manifest-descriptor:KEY=VALUE on
    /// each of its entries, manifest-descriptor[PLATFORM]:KEY=VALUE on that
    /// platform's (repeatable). Manifests are not changed, so manifest: and
    /// index-descriptor: cannot be set here
    #[arg(long = "annotation", value_name = "[TYPE[[PLATFORM]]:]KEY=VALUE")]
    pub annotations: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source: a reference, or oci-layout://DIR[:NAME] for an OCI layout on disk
    pub source: String,
    /// Destination reference
    pub destination: String,
    /// Copy only these platforms (comma-separated; default: all, digest-preserving)
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCmd {
    /// List the builds, newest first (the last 50 are kept)
    Ls(HistoryLsArgs),
    /// Show one build: its request, outcome, cache hits and outputs
    Inspect(HistoryRefArgs),
    /// Print one build's log (plain progress)
    Logs(HistoryRefArgs),
    /// Forget builds
    Rm(HistoryRmArgs),
}

#[derive(Debug, Args)]
pub struct HistoryLsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct HistoryRefArgs {
    /// A build: its reference (or a unique prefix), or ^N for the Nth before the
    /// newest [default: ^0, the newest]
    #[arg(default_value = "^0", value_name = "REF")]
    pub reference: String,
    /// Output format (inspect)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct HistoryRmArgs {
    /// Builds to forget (references, prefixes or ^N)
    #[arg(value_name = "REF", required_unless_present = "all")]
    pub references: Vec<String>,
    /// Forget every build
    #[arg(long, conflicts_with = "references")]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only print image names
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DuArgs {
    /// List every cache record, snapshot and cache mount with its size and last use
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove everything: all images and all cache, not only unused content (with
    /// --filter or --keep-storage: accepted as buildx does, and no name is removed)
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Remove only what matches: `until=DURATION` (not used for that long: 24h,
    /// 30m), `type=step` (build cache records and their snapshots),
    /// `type=cache-mount`, `type=image` (content no name uses); repeatable, types add up
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Remove the least recently used build state until it takes at most SIZE
    /// (10GB, 512MB)
    #[arg(long = "keep-storage", value_name = "SIZE")]
    pub keep_storage: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Call {
    /// Build the image
    Build,
    /// Run the build checks and report their warnings
    Check,
    /// Show the build arguments, secrets and SSH mounts the target uses
    Outline,
    /// List the stages that can be built
    Targets,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build context directory
    #[arg(default_value = ".")]
    pub context: PathBuf,
    /// Dockerfile ("-" reads standard input) [default: CONTEXT/Dockerfile]
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// Name and optionally tag the image (repeatable)
    #[arg(short, long = "tag")]
    pub tags: Vec<String>,
    /// Target platforms, comma-separated (e.g. linux/amd64,linux/arm64)
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Output: type=image|registry|oci|docker|local|tar[,KEY=VALUE…], a directory
    /// (type=local) or "-" (a tar of the filesystem on standard output) (repeatable)
    #[arg(short, long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Push the image to the registry its -t names point at (shorthand for
    /// --output=type=registry)
    #[arg(long)]
    pub push: bool,
    /// Also load the host platform's image into docker or podman, when one answers
    /// (as --output=type=docker without dest)
    #[arg(long)]
    pub load: bool,
    /// Write the image digest (of the index, or of the manifest of a one-platform
    /// image) to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write the build result's metadata (JSON, buildx's keys: containerimage.digest,
    /// containerimage.descriptor, containerimage.config.digest, image.name) to this
    /// file, as `docker buildx build --metadata-file`
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Add an OCI annotation, as `docker buildx build --annotation`: KEY=VALUE on
    /// each manifest, or TYPE[,TYPE][[PLATFORM]]:KEY=VALUE with TYPE manifest, index,
    /// manifest-descriptor or index-descriptor (repeatable)
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Add NAME:IP to the /etc/hosts of RUN steps, as `docker buildx build
    /// --add-host` (repeatable)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_hosts: Vec<String>,
    /// Resource limit of RUN steps, as `docker buildx build --ulimit`:
    /// NAME=SOFT[:HARD], e.g. nofile=1024:2048 (repeatable)
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Size of /dev/shm in RUN steps, as `docker buildx build --shm-size`: bytes,
    /// or a number with b, k, m or g (e.g. 128m) [default: 64m]
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Print only the image digest on standard output (no progress)
    #[arg(short, long)]
    pub quiet: bool,
    /// Build-time variable NAME=VALUE, or NAME to take it from the environment
    /// (repeatable)
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_args: Vec<String>,
    /// Stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// What to do instead of building
    #[arg(long, value_enum, default_value_t = Call::Build)]
    pub call: Call,
    /// Shorthand for --call=check
    #[arg(long, conflicts_with = "call")]
    pub check: bool,
    /// SLSA provenance attached to each image, as `docker buildx build
    /// --provenance`: true, false, or mode=min|max[,version=v0.2|v1][,builder-id=URI].
    /// On (mode=min) by default for pushed images; BUILDX_NO_DEFAULT_ATTESTATIONS=1
    /// turns that off
    #[arg(long, value_name = "BOOL|KEY=VALUE,…")]
    pub provenance: Option<String>,
    /// SPDX SBOM attached to each image, as `docker buildx build --sbom`: true,
    /// false, or generator=builtin (manifold lists the image's dpkg and apk packages
    /// itself; generator images are not run)
    #[arg(long, value_name = "BOOL|KEY=VALUE,…")]
    pub sbom: Option<String>,
    /// SSH agent socket or keys to expose to the build (not supported yet)
    #[arg(long, value_name = "default|ID[=SOCKET|KEY…]")]
    pub ssh: Vec<String>,
    /// Read build cache exported by another build, as `docker buildx build
    /// --cache-from`: type=registry,ref=REF (or just REF), type=local,src=DIR
    /// (repeatable)
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export the build cache, as `docker buildx build --cache-to`:
    /// type=registry,ref=REF[,mode=min|max][,compression=…] or
    /// type=local,dest=DIR[,mode=min|max] (repeatable)
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// An attestation to attach, as `docker buildx build --attest`:
    /// type=provenance[,mode=min|max][,version=v0.2|v1][,disabled=true] or
    /// type=sbom[,generator=builtin] (repeatable)
    #[arg(long, value_name = "SPEC")]
    pub attest: Vec<String>,
    /// Do not use the cache for any step
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for the steps of these stages (comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// Always look up base images in their registry
    #[arg(long)]
    pub pull: bool,
    /// Secret for RUN --mount=type=secret: id=ID[,src=FILE|,env=VAR] (repeatable)
    #[arg(long, value_name = "id=ID[,src=FILE|env=VAR]")]
    pub secret: Vec<String>,
    /// Network of RUN steps that do not choose one: default, none or host
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Grant an entitlement: network.host or security.insecure (repeatable)
    #[arg(long, value_name = "ENTITLEMENT", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Extra context: NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://DIR[:TAG|@DIGEST]
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Progress output: auto, plain, tty, rawjson or quiet
    #[arg(long, default_value = "auto", value_name = "TYPE")]
    pub progress: String,
    /// Set a label on the image (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// The OCI runtime binary that runs steps
    #[arg(
        long,
        env = "MANIFOLD_RUNTIME",
        default_value = "runc",
        value_name = "PATH"
    )]
    pub runtime: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Binfmt {
    /// Register QEMU emulators (Debian's qemu-user-static) with binfmt_misc
    Install(BinfmtInstallArgs),
    /// Show each platform and how this host runs it
    Ls,
    /// Remove emulators that `manifold binfmt install` registered
    Uninstall(BinfmtUninstallArgs),
}

#[derive(Debug, Args)]
pub struct BinfmtInstallArgs {
    /// Architectures (arm64, arm, 386, ppc64le, s390x, riscv64, …) or `all`
    #[arg(value_name = "ARCH", default_value = "all")]
    pub archs: Vec<String>,
    /// Also set the C (credentials) flag: setuid programs then run the emulator with
    /// raised privileges
    #[arg(long)]
    pub credentials: bool,
    /// Replace an entry registered by someone else (the distribution's, a CI
    /// system's), even when it serves the platform
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BinfmtUninstallArgs {
    /// Architectures to remove [default: every known emulator]
    #[arg(value_name = "ARCH")]
    pub archs: Vec<String>,
    /// Also remove `qemu-<arch>` entries registered by someone else
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Platform of the image to run (default: the host's, or the manifest's own for
    /// IMAGE@sha256:…)
    #[arg(long)]
    pub platform: Option<String>,
    /// Remove the container when it exits (always done today)
    #[arg(long)]
    pub rm: bool,
    /// Image: a local name or NAME[:TAG|@DIGEST]
    pub image: String,
    /// Command and arguments (default: the image's entrypoint and command)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    /// Build in this process, on the state root
    Local,
    /// Build on a `manifold daemon` at the endpoint
    Remote,
}

#[derive(Debug, Args)]
pub struct BuilderCreateArgs {
    /// A remote daemon's endpoint (unix:///PATH or tcp://HOST:PORT); anything else is
    /// taken as the instance's name
    #[arg(value_name = "ENDPOINT|NAME")]
    pub target: Option<String>,
    /// Instance name [default: the first free builderN]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Driver [default: remote with an endpoint, else local; with --append, the
    /// instance's]
    #[arg(long, value_enum)]
    pub driver: Option<DriverArg>,
    /// Node name [default: NAME0, NAME1, …]
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Platforms the node runs natively, comma-separated (e.g. linux/amd64,linux/arm64)
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Add a node to an existing instance
    #[arg(long)]
    pub append: bool,
    /// Remove the node named by --node from the instance
    #[arg(
        long,
        requires = "node",
        conflicts_with_all = ["append", "driver", "platform", "driver_opts", "select", "bootstrap"]
    )]
    pub leave: bool,
    /// TLS files for a tcp:// endpoint: cacert=FILE, cert=FILE, key=FILE
    /// (comma-separated or repeated)
    #[arg(long = "driver-opt", value_delimiter = ',', value_name = "KEY=VALUE")]
    pub driver_opts: Vec<String>,
    /// Select the instance, as `manifold use` does
    #[arg(long = "use")]
    pub select: bool,
    /// Check the node is ready once created, as `manifold inspect --bootstrap` does
    #[arg(long)]
    pub bootstrap: bool,
}

#[derive(Debug, Args)]
pub struct BuilderUseArgs {
    /// Instance name (`default` is the implicit local instance)
    pub name: String,
    /// Accepted for buildx compatibility: manifold has no docker contexts, so the
    /// selection is always the default one
    #[arg(long)]
    pub default: bool,
}

#[derive(Debug, Args)]
pub struct BuilderInspectArgs {
    /// Instance name [default: the selected instance]
    pub name: Option<String>,
    /// Make the nodes ready (local: create the state root, find the OCI runtime;
    /// remote: reach the daemon) and fail if one is not
    #[arg(long)]
    pub bootstrap: bool,
}

#[derive(Debug, Args)]
pub struct BuilderLsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct BuilderRmArgs {
    /// Instances to remove (their daemons are left running)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BuilderStopArgs {
    /// Instance name [default: the selected instance]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Where to listen: unix:///PATH or tcp://HOST:PORT (TCP needs the TLS files)
    /// [default: unix:///run/manifold/manifold.sock for root, else
    /// unix://$XDG_RUNTIME_DIR/manifold/manifold.sock]
    #[arg(long)]
    pub addr: Option<String>,
    /// CA certificate (PEM) that signed the clients' certificates
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// The daemon's certificate (PEM)
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The daemon's private key (PEM)
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Grant an entitlement to builds that also ask for it: network.host or
    /// security.insecure (repeatable)
    #[arg(long, value_name = "ENTITLEMENT", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Append each build request received to FILE, one JSON line each, secrets
    /// shown only as their sha256 (an audit trail; a request that cannot be logged
    /// is refused)
    #[arg(long, value_name = "FILE")]
    pub log_requests: Option<PathBuf>,
    /// The OCI runtime binary that runs steps
    #[arg(
        long,
        env = "MANIFOLD_RUNTIME",
        default_value = "runc",
        value_name = "PATH"
    )]
    pub runtime: PathBuf,
}
