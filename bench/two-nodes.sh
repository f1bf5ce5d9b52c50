#!/usr/bin/env bash
# A two-node builder (issue 7): two `manifold daemon`s on unix sockets, each with its
# own state root and pinned to one core (`taskset -c 0` and `taskset -c 1`), joined in
# one builder instance, `pair`: node 0 declares linux/amd64, node 1 linux/386 (386 runs
# natively on amd64, no QEMU). A CPU-bound Dockerfile (one RUN hashing COUNT MiB of
# zeros with busybox sha256sum, TARGETPLATFORM in the step) is built for
# linux/amd64,linux/386 and pushed to a local distribution registry, which also serves
# the base (a busybox index for amd64 and i386, bench/make-busybox.py). Compared, with
# --no-cache so every run hashes:
#   pair     both platforms on the two-node builder (one platform per node)
#   single   both platforms on one node: a builder whose only node is the daemon on core 0
#   amd64    linux/amd64 alone on `pair` (node 0)
#   386      linux/386 alone on `pair` (node 1)
# The target: pair's wall time close to the slower of amd64 and 386, not their sum.
# Needs root, hyperfine, taskset, runc, docker-registry, python3, dpkg-deb, the
# busybox-static debs and a release build (scripts/setup.sh). Not run in CI.
#
#   bench/two-nodes.sh [RUNS]       (COUNT=1500 MiB hashed per platform by default)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
count=${COUNT:-1500}
repo=$PWD
manifold=${MANIFOLD:-$repo/target/release/manifold}
debs=${MANIFOLD_TEST_CACHE:-/var/cache/manifold-test}/debs
[ "$(id -u)" = 0 ] || { echo "bench/two-nodes.sh needs root (builds run containers)" >&2; exit 1; }
for t in hyperfine taskset runc docker-registry python3 dpkg-deb; do
  command -v "$t" >/dev/null || { echo "missing $t: run scripts/setup.sh" >&2; exit 1; }
done
[ -x "$manifold" ] || { echo "no release build at $manifold: cargo build --release -p manifold" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "needs two cores" >&2; exit 1; }

work=$(mktemp -d /tmp/manifold-bench.XXXXXX)
# The client's own root and config (builder instances live in the config directory).
export MANIFOLD_ROOT=$work/client MANIFOLD_CONFIG=$work/client-config DOCKER_CONFIG=$work/docker

cleanup() {
  for p in "$work"/*.pid; do [ -e "$p" ] && kill "$(cat "$p")" 2>/dev/null; done || true
  sleep 0.5
  for n in a b; do
    MANIFOLD_ROOT=$work/$n "$manifold" prune --all --force >/dev/null 2>&1 || true
  done
  # Never delete through a mount that a tool left behind.
  awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r umount -l
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> machine"
date -u '+%Y-%m-%d %H:%M UTC'
lscpu | grep -E '^(Model name|CPU\(s\)):' | sed 's/  */ /g'
grep MemTotal /proc/meminfo
. /etc/os-release && echo "$PRETTY_NAME, kernel $(uname -r)"
"$manifold" version; hyperfine --version; docker-registry --version
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "==> registry and base image (busybox for linux/amd64 and linux/386)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 & echo $! > "$work/registry.pid"
until curl -fs "http://127.0.0.1:$port/v2/" >/dev/null; do sleep 0.05; done
python3 bench/make-busybox.py "$debs" "$work/layout" busybox amd64 i386
reg=127.0.0.1:$port
base=$reg/library/busybox:1
MANIFOLD_ROOT=$work/push "$manifold" imagetools copy "oci-layout://$work/layout:busybox" "$base" >/dev/null

echo "==> two daemons, each pinned to one core"
for n in a:0 b:1; do
  name=${n%:*} cpu=${n#*:}
  MANIFOLD_ROOT=$work/$name MANIFOLD_CONFIG=$work/$name-config \
    taskset -c "$cpu" "$manifold" daemon --addr "unix://$work/$name.sock" >"$work/daemon-$name.log" 2>&1 &
  echo $! > "$work/daemon-$name.pid"
done
for name in a b; do
  for _ in $(seq 200); do [ -S "$work/$name.sock" ] && break; sleep 0.05; done
  [ -S "$work/$name.sock" ] || { echo "daemon $name did not start:"; cat "$work/daemon-$name.log"; exit 1; }
  taskset -cp "$(cat "$work/daemon-$name.pid")"
done

echo "==> builders"
"$manifold" create --name pair --platform linux/amd64 "unix://$work/a.sock"
"$manifold" create --name pair --append --platform linux/386 "unix://$work/b.sock"
"$manifold" create --name single --platform linux/amd64,linux/386 "unix://$work/a.sock"
"$manifold" inspect --bootstrap pair
"$manifold" inspect --bootstrap single

mkdir -p "$work/ctx"
cat > "$work/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
ARG TARGETPLATFORM
ARG COUNT
RUN echo "$TARGETPLATFORM $(uname -m) $(grep Cpus_allowed_list /proc/self/status)" > /platform && \
    dd if=/dev/zero bs=1M count=$COUNT 2>/dev/null | sha256sum > /sum
DF

# mb BUILDER PLATFORMS TAG: a build command.
mb() {
  echo "$manifold build --builder $1 --progress=quiet --no-cache --build-arg BASE=$base \
--build-arg COUNT=$count --platform $2 -t $reg/cpu:$3 --push $work/ctx"
}

echo "==> one build of each with step times (also pulls the base into both daemons)"
for b in "pair linux/amd64,linux/386 pair" "single linux/amd64,linux/386 single"; do
  set -- $b
  echo "-- $1 $2"
  /usr/bin/time -f '%e s wall' $(mb "$@" | sed 's/--progress=quiet/--progress=plain/') 2>&1 | grep -vE '^#[0-9]+ (sha256|extracting|resolve)' | tail -n 20
done

echo "==> what each platform's RUN saw (/platform of the pushed images)"
python3 - "$reg" <<'PY'
import gzip, io, json, sys, tarfile, urllib.request
reg = sys.argv[1]
def get(path, accept):
    req = urllib.request.Request(f"http://{reg}/v2/{path}", headers={"Accept": accept})
    return urllib.request.urlopen(req).read()
for tag in ("pair", "single"):
    index = json.loads(get(f"cpu/manifests/{tag}", "application/vnd.oci.image.index.v1+json"))
    for m in index["manifests"]:
        man = json.loads(get(f"cpu/manifests/{m['digest']}", m["mediaType"]))
        layer = get(f"cpu/blobs/{man['layers'][-1]['digest']}", "*/*")
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as t:
            print(f"{tag}: " + t.extractfile("platform").read().decode().strip())
PY

echo "==> timed"
hyperfine --runs "$runs" --export-json "$work/result.json" \
  -n pair "$(mb pair linux/amd64,linux/386 pair)" \
  -n single "$(mb single linux/amd64,linux/386 single)" \
  -n amd64 "$(mb pair linux/amd64 amd64)" \
  -n 386 "$(mb pair linux/386 386)"

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> results (medians of $runs runs)"
python3 - "$work/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
for k in ("pair", "single", "amd64", "386"):
    x = r[k]
    print(f"{k:>7}: {x['median']:.2f} s median ({x['min']:.2f}–{x['max']:.2f})")
slow = max(r["amd64"]["median"], r["386"]["median"])
both = r["amd64"]["median"] + r["386"]["median"]
p, s = r["pair"]["median"], r["single"]["median"]
print(f"pair / slower single-platform build: {p / slow:.2f}  (target ≈ 1)")
print(f"pair / sum of the two single-platform builds: {p / both:.2f}")
print(f"pair / both platforms on one node: {p / s:.2f}")
PY
