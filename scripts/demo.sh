#!/usr/bin/env bash
# The seed's workflow with manifold, offline, end to end:
#   register QEMU → make busybox base images (amd64, arm64) from Debian's packages →
#   start manifold's own registry on 127.0.0.1 → build examples/hello for
#   linux/amd64,linux/arm64 and push it behind one index → inspect it → run each
#   platform's image by digest (printing x86_64 and aarch64).
#
#   scripts/demo.sh              # after scripts/setup.sh; as root, or as a user once root
#                                # has run `manifold binfmt install arm64` (rootless)
#   scripts/demo.sh --with-gcc   # also the seed's C example, compiled with gcc under
#                                # emulation on Debian bases made by mmdebstrap (minutes)
#
# MANIFOLD (the binary, default target/release/manifold, else target/debug/manifold) and
# MANIFOLD_ROOT (default: a temporary state root, removed afterwards) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
with_gcc=false
[ "${1:-}" = --with-gcc ] && with_gcc=true

manifold=${MANIFOLD:-}
if [ -z "$manifold" ]; then
  for m in target/release/manifold target/debug/manifold; do
    [ -x "$m" ] && { manifold=$PWD/$m; break; }
  done
fi
[ -n "$manifold" ] || { echo "no manifold binary: cargo build --release" >&2; exit 1; }
work=$(mktemp -d /tmp/manifold-demo.XXXXXX)
export MANIFOLD_ROOT=${MANIFOLD_ROOT:-$work/root}
export MANIFOLD_CONFIG=$work/config
registered=""
cleanup() {
  [ -f "$work/registry.pid" ] && kill "$(cat "$work/registry.pid")" 2>/dev/null || true
  [ -n "$registered" ] && "$manifold" binfmt uninstall $registered >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" = 0 ]; then
  step "register QEMU for arm64 (binfmt_misc, F flag)"
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || registered=arm64
  "$manifold" binfmt install arm64
else
  # Rootless: registering emulators is root's job, once (sudo manifold binfmt install).
  step "rootless: QEMU for arm64 must be registered already"
  "$manifold" binfmt ls | grep -q '^linux/arm64 *emulated' ||
    { echo "linux/arm64 has no emulator: run 'sudo $manifold binfmt install arm64' once" >&2; exit 1; }
fi
"$manifold" binfmt ls

step "busybox base images for amd64 and arm64, from Debian's busybox-static"
debs=${MANIFOLD_TEST_CACHE:-/var/cache/manifold-test}/debs
python3 bench/make-busybox.py "$debs" "$work/base" busybox amd64 arm64

step "start manifold's registry on 127.0.0.1"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
"$manifold" --root "$work/registry" registry serve --addr "$reg" >"$work/registry.log" 2>&1 &
echo $! > "$work/registry.pid"
for _ in $(seq 100); do curl -fs "http://$reg/v2/" >/dev/null && break; sleep 0.05; done
"$manifold" imagetools copy "oci-layout://$work/base:busybox" "$reg/library/busybox:latest"

step "manifold build --platform linux/amd64,linux/arm64 -t $reg/hello --push examples/hello"
"$manifold" build --platform linux/amd64,linux/arm64 \
  --build-arg BASE="$reg/library/busybox:latest" \
  -t "$reg/hello" --push --progress=plain examples/hello

step "manifold imagetools inspect $reg/hello"
"$manifold" imagetools inspect "$reg/hello"

step "run each platform's image by digest"
"$manifold" imagetools inspect --raw "$reg/hello" > "$work/index.json"
python3 - "$work/index.json" > "$work/digests" <<'PY'
import json, sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    p = m["platform"]
    if p["os"] == "unknown":  # an attestation manifest (the provenance), not an image
        continue
    print(p["os"] + "/" + p["architecture"], m["digest"])
PY
while read -r platform digest; do
  echo "--- $platform: manifold run $reg/hello@$digest"
  "$manifold" run --rm "$reg/hello@$digest" </dev/null
done < "$work/digests"

if $with_gcc; then
  command -v mmdebstrap >/dev/null || { echo "--with-gcc needs mmdebstrap: apt-get install mmdebstrap" >&2; exit 1; }
  step "the seed's C example: Debian bases with gcc (mmdebstrap), compiled under emulation"
  for arch in amd64 arm64; do
    mmdebstrap --quiet --variant=apt --architectures="$arch" --include=gcc,libc6-dev \
      bookworm "$work/debian-$arch.tar"
  done
  python3 scripts/rootfs-image.py "$work/gcc-base" debian-gcc \
    amd64="$work/debian-amd64.tar" arm64="$work/debian-arm64.tar"
  "$manifold" imagetools copy "oci-layout://$work/gcc-base:debian-gcc" "$reg/library/debian-gcc:bookworm"
  "$manifold" build --platform linux/amd64,linux/arm64 \
    --build-arg BASE="$reg/library/debian-gcc:bookworm" \
    -t "$reg/hello-c" --push --progress=plain examples/hello-c
  "$manifold" imagetools inspect "$reg/hello-c"
  "$manifold" run --rm --platform linux/arm64 "$reg/hello-c"
  "$manifold" run --rm --platform linux/amd64 "$reg/hello-c"
fi
step "done"
