//! Offline base images for tests: a static busybox per architecture, from the
//! `busybox-static` .debs that `scripts/setup.sh` downloads.
//!
//! Each root filesystem is built once per machine under
//! `$MANIFOLD_TEST_CACHE/rootfs/<arch>` (default `/var/cache/manifold-test`), under a
//! lock so parallel tests build it once. The cached tree is shared: tests that let a
//! step write into a root filesystem take a private copy ([`busybox_rootfs_copy`]).

use std::fs::{self, File};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use content::{Lease, Store};
use oci::document::ContainerConfig;
use oci::{Descriptor, Platform};

/// The test architectures, as Debian names them.
pub const ARCHES: [&str; 6] = ["amd64", "arm64", "armhf", "i386", "ppc64el", "s390x"];

/// `/etc/passwd` of the test images: root, nobody, and `app` (uid 1000).
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          app:x:1000:1000:app:/home/app:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
/// `/etc/group` of the test images.
pub const GROUP: &str = "root:x:0:\napp:x:1000:\nusers:x:100:app\nnogroup:x:65534:\n";

/// The shared test cache: `$MANIFOLD_TEST_CACHE`, else `/var/cache/manifold-test`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("MANIFOLD_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/manifold-test"))
}

/// Debian's name for an architecture given in Debian or OCI spelling.
pub fn debian_arch(arch: &str) -> &'static str {
    match arch {
        "amd64" | "linux/amd64" | "x86_64" => "amd64",
        "arm64" | "linux/arm64" | "aarch64" => "arm64",
        "armhf" | "arm" | "arm/v7" | "linux/arm/v7" | "linux/arm" => "armhf",
        "i386" | "386" | "linux/386" => "i386",
        "ppc64el" | "ppc64le" | "linux/ppc64le" => "ppc64el",
        "s390x" | "linux/s390x" => "s390x",
        other => panic!("no busybox test image for architecture {other:?} (have {ARCHES:?})"),
    }
}

/// The OCI platform of a test architecture.
pub fn platform(arch: &str) -> Platform {
    let p = match debian_arch(arch) {
        "amd64" => "linux/amd64",
        "arm64" => "linux/arm64",
        "armhf" => "linux/arm/v7",
        "i386" => "linux/386",
        "ppc64el" => "linux/ppc64le",
        _ => "linux/s390x",
    };
    Platform::parse(p).expect("fixture platforms are valid")
}

fn find_deb(arch: &str) -> PathBuf {
    let dir = cache_dir().join("debs");
    let suffix = format!("_{arch}.deb");
    fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("busybox-static_") && name.ends_with(&suffix)
        })
        .unwrap_or_else(|| {
            panic!(
                "this test needs busybox-static_*{suffix} in {}; run scripts/setup.sh",
                dir.display()
            )
        })
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The applets of busybox, as paths relative to the root (`bin/sh`, `usr/bin/wget`),
/// asked from the amd64 busybox (the same Debian build for every architecture), so no
/// emulator is needed to build a foreign root filesystem.
fn applets() -> Vec<String> {
    let amd64 = busybox_rootfs("amd64");
    let out = run(Command::new(amd64.join("bin/busybox")).arg("--list-full"));
    String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty() && l != "bin/busybox")
        .collect()
}

fn build(arch: &str, dir: &Path) {
    crate::require_tool("dpkg-deb");
    fs::create_dir_all(dir).expect("create rootfs dir");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(find_deb(arch))
        .arg(dir));
    let list = if arch == "amd64" {
        let out = run(Command::new(dir.join("bin/busybox")).arg("--list-full"));
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty() && *l != "bin/busybox")
            .map(str::to_owned)
            .collect()
    } else {
        applets()
    };
    for applet in list {
        let path = dir.join(&applet);
        fs::create_dir_all(path.parent().expect("applets have a directory")).expect("mkdir");
        if fs::symlink_metadata(&path).is_err() {
            symlink("/bin/busybox", &path).expect("symlink applet");
        }
    }
    for d in [
        "etc", "tmp", "root", "home/app", "proc", "sys", "dev", "var", "run",
    ] {
        fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::set_permissions(dir.join("root"), fs::Permissions::from_mode(0o700)).expect("chmod");
    std::os::unix::fs::chown(dir.join("home/app"), Some(1000), Some(1000)).expect("chown");
    fs::write(dir.join("etc/passwd"), PASSWD).expect("write passwd");
    fs::write(dir.join("etc/group"), GROUP).expect("write group");
}

/// The cached busybox root filesystem of `arch` (Debian or OCI spelling); built on
/// first use. Treat it as read-only.
pub fn busybox_rootfs(arch: &str) -> PathBuf {
    let arch = debian_arch(arch);
    let base = cache_dir().join("rootfs");
    fs::create_dir_all(&base).unwrap_or_else(|e| {
        panic!(
            "cannot create {} (this test needs root): {e}",
            base.display()
        )
    });
    let dir = base.join(arch);
    let done = base.join(format!("{arch}.done"));
    if done.exists() {
        // Built: readable by anyone (an unprivileged user's rerun of a suite too).
        return dir;
    }
    let lock = File::create(base.join(format!("{arch}.lock"))).expect("create lock file");
    lock.lock().expect("lock the rootfs cache");
    if !done.exists() {
        let _ = fs::remove_dir_all(&dir);
        let tmp = base.join(format!("{arch}.tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        build(arch, &tmp);
        fs::rename(&tmp, &dir).expect("publish rootfs");
        File::create(&done).expect("mark rootfs done");
    }
    dir
}

/// A private, writable copy of the busybox root filesystem of `arch`.
pub fn busybox_rootfs_copy(arch: &str) -> tempfile::TempDir {
    let src = busybox_rootfs(arch);
    let dst = tempfile::tempdir().expect("tempdir");
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dst.path()));
    dst
}

fn append_tree(b: &mut tar::Builder<Vec<u8>>, root: &Path, rel: &Path) {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))
        .expect("read rootfs dir")
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path).expect("stat");
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&meta);
        h.set_mtime(0);
        if meta.file_type().is_symlink() {
            h.set_size(0);
            let target = fs::read_link(&path).expect("readlink");
            b.append_link(&mut h, &rel, target).expect("tar symlink");
        } else if meta.is_dir() {
            b.append_data(&mut h, &rel, std::io::empty())
                .expect("tar dir");
            append_tree(b, root, &rel);
        } else {
            let f = File::open(&path).expect("open file");
            b.append_data(&mut h, &rel, f).expect("tar file");
        }
    }
}

/// An uncompressed layer tar of the busybox root filesystem of `arch`, kept beside the
/// tree once made (world-readable: the tree's `/root` is not, and an unprivileged
/// user's rerun of a suite reads the layer).
pub fn busybox_layer(arch: &str) -> Vec<u8> {
    let root = busybox_rootfs(arch);
    let cached = root.with_file_name(format!("{}.layer.tar", debian_arch(arch)));
    if let Ok(layer) = fs::read(&cached) {
        return layer;
    }
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    append_tree(&mut b, &root, Path::new(""));
    let layer = b.into_inner().expect("writing to a Vec cannot fail");
    let tmp = cached.with_extension(format!("tmp-{}", std::process::id()));
    if fs::write(&tmp, &layer).is_ok() {
        let _ = fs::rename(&tmp, &cached);
    }
    layer
}

/// A single-layer busybox image of `arch` in `store` (layer, config, manifest), for
/// end-to-end tests; returns the manifest descriptor with its platform.
pub fn busybox_image(store: &Store, lease: &Lease, arch: &str) -> Descriptor {
    let container = ContainerConfig {
        env: Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ]),
        cmd: Some(vec!["sh".into()]),
        ..ContainerConfig::default()
    };
    crate::single_layer_image(
        store,
        lease,
        &platform(arch),
        &busybox_layer(arch),
        container,
        "testkit busybox rootfs",
    )
}

/// A multi-platform busybox image (one manifest per arch of `arches`, behind an OCI
/// index) in the store at `root`, named `name`; returns the index descriptor.
pub fn busybox_index(root: &Path, name: &str, arches: &[&str]) -> Descriptor {
    let store = Store::open(root).expect("open store");
    let lease = store.lease().expect("lease");
    let manifests = arches
        .iter()
        .map(|a| busybox_image(&store, &lease, a))
        .collect();
    let index = oci::RawDocument::from_value(oci::ImageIndex {
        manifests,
        ..oci::ImageIndex::new()
    });
    let desc = store
        .put_bytes(&lease, oci::media::OCI_INDEX, index.bytes())
        .expect("store index");
    store.set_name(name, &desc).expect("name index");
    desc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_image_of_a_foreign_arch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lease = store.lease().unwrap();
        let desc = busybox_image(&store, &lease, "arm64");
        assert_eq!(desc.platform, Some(platform("linux/arm64")));
        assert_eq!(desc.media_type, oci::media::OCI_MANIFEST);

        let layer = busybox_layer("arm64");
        let mut archive = tar::Archive::new(&layer[..]);
        let mut seen = std::collections::BTreeMap::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            seen.insert(path, (e.header().uid().unwrap(), link));
        }
        assert_eq!(seen["bin/sh"].1.as_deref(), Some("/bin/busybox"));
        assert_eq!(seen["usr/bin/wget"].1.as_deref(), Some("/bin/busybox"));
        assert_eq!(seen["home/app"].0, 1000);
        assert!(seen.contains_key("etc/passwd") && seen.contains_key("bin/busybox"));
        // The busybox in the layer is the arm64 one (ELF machine 183 = aarch64).
        let bb = std::fs::read(busybox_rootfs("arm64").join("bin/busybox")).unwrap();
        assert_eq!(u16::from_le_bytes([bb[18], bb[19]]), 183);
    }
}
