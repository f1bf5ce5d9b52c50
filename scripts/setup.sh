#!/usr/bin/env bash
# Set up a Debian/Ubuntu machine to build, test and run manifold. Idempotent.
#
#   scripts/setup.sh               install tools, fetch test fixtures, build the release binary
#   scripts/setup.sh --no-release  the same without the release build (CI builds in test mode)
#
# Installs: runc (the OCI runtime manifold drives), uidmap (rootless id mapping),
# slirp4netns and passt (rootless step networks), fuse-overlayfs (a rootless snapshotter), qemu-user-static (foreign RUN steps),
# skopeo, umoci and podman (independent readers of manifold's outputs), docker-registry (a real
# registry for tests), openssl (signs the test token server's JWTs), busybox-static for
# every test architecture (offline base images), hyperfine (benchmarks), and a Python venv
# with the attestation validators the tests run (scripts/python-requirements.txt). Needs root
# (or sudo).
set -euo pipefail

release=1
for arg in "$@"; do
  case "$arg" in
    --no-release) release=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Architectures the tests build for, as Debian names them (manifold platform in comments).
FOREIGN_ARCHS="arm64 armhf i386 ppc64el s390x"   # linux/arm64 linux/arm/v7 linux/386 linux/ppc64le linux/s390x
PACKAGES="runc qemu-user-static skopeo umoci podman docker-registry docker.io busybox-static hyperfine
          apache2-utils openssl ca-certificates util-linux iproute2 tar gzip zstd tmux time
          python3-venv uidmap slirp4netns passt fuse-overlayfs"

need_apt=0
for a in $FOREIGN_ARCHS; do
  dpkg --print-foreign-architectures | grep -qx "$a" || { $SUDO dpkg --add-architecture "$a"; need_apt=1; }
done
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  echo "==> apt: installing $(echo $PACKAGES | tr '\n' ' ')"
  # Mirrors are sometimes mid-sync for one architecture's index; retry, then go on with
  # what was fetched (the install below fails loudly if a package is really missing).
  for attempt in 1 2 3; do
    $SUDO apt-get update -qq && break
    echo "setup.sh: apt-get update failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 5))
  done
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
fi

# busybox-static .deb for each test architecture: the offline source of base images.
cache="${MANIFOLD_TEST_CACHE:-/var/cache/manifold-test}"
$SUDO mkdir -p "$cache/debs"
# apt downloads as the unprivileged _apt user when it can write the directory.
id _apt >/dev/null 2>&1 && $SUDO chown _apt "$cache/debs"
for a in amd64 $FOREIGN_ARCHS; do
  if ! ls "$cache/debs/"busybox-static_*_"$a".deb >/dev/null 2>&1; then
    echo "==> fetching busybox-static:$a"
    (cd "$cache/debs" && $SUDO apt-get download -qq "busybox-static:$a")
  fi
done

# Validators of attestations (in-toto-attestation, spdx-tools, jsonschema), pinned.
venv="$cache/venv"
if ! cmp -s scripts/python-requirements.txt "$venv/requirements.txt" 2>/dev/null; then
  echo "==> python validators into $venv"
  $SUDO rm -rf "$venv"
  $SUDO python3 -m venv "$venv"
  $SUDO "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r scripts/python-requirements.txt
  $SUDO cp scripts/python-requirements.txt "$venv/requirements.txt"
fi

# Users the rootless tests run manifold as: one with a subordinate id range (as useradd
# gives new users), one without (the single-id mode).
if ! id manifold-rootless >/dev/null 2>&1; then
  $SUDO useradd --create-home --shell /bin/sh manifold-rootless
fi
for f in /etc/subuid /etc/subgid; do
  grep -q '^manifold-rootless:' "$f" 2>/dev/null ||
    echo 'manifold-rootless:300000:65536' | $SUDO tee -a "$f" >/dev/null
done
if ! id manifold-nosub >/dev/null 2>&1; then
  $SUDO useradd --create-home --shell /bin/sh manifold-nosub
fi
$SUDO sed -i '/^manifold-nosub:/d' /etc/subuid /etc/subgid

# Rootless steps reach the network through slirp4netns, which opens /dev/net/tun: udev
# makes it 0666 on Debian and Ubuntu; do the same where there is no udev.
# fuse-overlayfs opens /dev/fuse, which udev makes 0666 too.
for dev in /dev/net/tun /dev/fuse; do
  if [ -c "$dev" ] && [ "$(stat -c %a "$dev")" != 666 ]; then
    $SUDO chmod 0666 "$dev"
  fi
done

if ! command -v cargo >/dev/null; then
  echo "setup.sh: cargo not found; install Rust with rustup (https://rustup.rs) and rerun" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

if [ "$release" = 1 ]; then
  echo "==> building the release binary"
  cargo build --release --locked -p manifold
  echo "==> done: $(pwd)/target/release/manifold"
fi
