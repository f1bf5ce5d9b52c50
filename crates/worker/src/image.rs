//! Running an image from the content store (`manifold run`): its layers are unpacked
//! as snapshots keyed by chain id (shared with every other user of the same layers),
//! and the process runs on a writable snapshot on top that is discarded afterwards.

use std::path::Path;

use archive::Expected;
use content::Store;
use oci::{Descriptor, Digest, ImageConfig, ImageManifest, RawDocument};

use crate::exec::{CancelToken, DEFAULT_PATH, ExecError, ExecIo, ExecSpec, Executor, ExitStatus};
use crate::snapshot::{Key, SnapshotError, Snapshotter, chain_id};

/// Why an image could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] content::StoreError),
    #[error("image {digest} is not a usable image manifest")]
    Document {
        digest: Digest,
        #[source]
        source: oci::DocumentError,
    },
    #[error("image {digest} has {layers} layers but its config lists {diff_ids} diff_ids")]
    LayerCount {
        digest: Digest,
        layers: usize,
        diff_ids: usize,
    },
    #[error("image {digest} has neither an entrypoint nor a command, and none was given")]
    NoCommand { digest: Digest },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// The manifest and config of an image in the store.
fn read_image(
    store: &Store,
    manifest: &Descriptor,
) -> Result<(ImageManifest, ImageConfig), ImageError> {
    let doc = |digest: &Digest, e| ImageError::Document {
        digest: digest.clone(),
        source: e,
    };
    let m = RawDocument::<ImageManifest>::parse(store.read_document(&manifest.digest)?)
        .map_err(|e| doc(&manifest.digest, e))?;
    let m = m.value().clone();
    let c = RawDocument::<ImageConfig>::parse(store.read_document(&m.config.digest)?)
        .map_err(|e| doc(&manifest.digest, e))?;
    let c = c.value().clone();
    if c.rootfs.diff_ids.len() != m.layers.len() {
        return Err(ImageError::LayerCount {
            digest: manifest.digest.clone(),
            layers: m.layers.len(),
            diff_ids: c.rootfs.diff_ids.len(),
        });
    }
    Ok((m, c))
}

/// An image unpacked as snapshots.
#[derive(Debug)]
pub struct Unpacked {
    /// The key of the top layer (`None` for an image without layers).
    pub top: Option<Key>,
    pub config: ImageConfig,
    /// Layers unpacked by this call that named some path more than once (the last
    /// entry wins), with how many entries did: worth a warning to the user.
    pub duplicate_paths: Vec<(Digest, u64)>,
}

/// Unpack the image's layers (each once, shared by chain id).
pub fn unpack(
    store: &Store,
    snapshotter: &dyn Snapshotter,
    manifest: &Descriptor,
) -> Result<Unpacked, ImageError> {
    let (m, config) = read_image(store, manifest)?;
    let mut chain: Option<Digest> = None;
    let mut parent: Option<Key> = None;
    let mut duplicate_paths = Vec::new();
    for (layer, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
        let id = chain_id(chain.as_ref(), diff_id);
        let key = Key::new(id.to_string())?;
        if snapshotter.get(&key)?.is_none() {
            let mut blob = store.open_blob(&layer.digest)?;
            let expected = Expected {
                digest: Some(layer.digest.clone()),
                size: Some(layer.size),
                diff_id: Some(diff_id.clone()),
            };
            let applied = snapshotter.apply_layer(
                parent.as_ref(),
                &key,
                &mut blob,
                Some(&layer.media_type),
                &expected,
            )?;
            if applied.duplicate_paths > 0 {
                duplicate_paths.push((layer.digest.clone(), applied.duplicate_paths));
            }
        }
        chain = Some(id);
        parent = Some(key);
        content::crash::point("unpack");
    }
    Ok(Unpacked {
        top: parent,
        config,
        duplicate_paths,
    })
}

/// The process an image runs: entrypoint + (`cmd` or the image's command), with the
/// image's environment (BuildKit's default `PATH` when it has none), working
/// directory, user and platform.
pub fn exec_spec(config: &ImageConfig, cmd: &[String]) -> Option<ExecSpec> {
    let c = config.config.clone().unwrap_or_default();
    let mut args = c.entrypoint.clone().unwrap_or_default();
    if cmd.is_empty() {
        args.extend(c.cmd.clone().unwrap_or_default());
    } else {
        args.extend(cmd.iter().cloned());
    }
    if args.is_empty() {
        return None;
    }
    let mut spec = ExecSpec::new(args);
    spec.env = c.env.unwrap_or_default();
    if !spec.env.iter().any(|e| e.starts_with("PATH=")) {
        spec.env.push(format!("PATH={DEFAULT_PATH}"));
    }
    spec.cwd = c
        .working_dir
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    spec.user = c.user.unwrap_or_default();
    spec.platform = config.platform();
    Some(spec)
}

/// Run `cmd` (or the image's own command) in the image `manifest` from `store`.
/// The container's writes are discarded when it exits.
pub fn run_image(
    store: &Store,
    snapshotter: &dyn Snapshotter,
    executor: &dyn Executor,
    manifest: &Descriptor,
    cmd: &[String],
    io: ExecIo,
    cancel: &CancelToken,
) -> Result<ExitStatus, ImageError> {
    let Unpacked { top, config, .. } = unpack(store, snapshotter, manifest)?;
    let spec = exec_spec(&config, cmd).ok_or_else(|| ImageError::NoCommand {
        digest: manifest.digest.clone(),
    })?;
    let active = snapshotter.prepare(top.as_ref())?;
    let result = executor.run(&spec, Path::new(active.path()), &[], io, cancel);
    active.abort()?;
    Ok(result?)
}
