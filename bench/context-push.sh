#!/usr/bin/env bash
# A ~560 MB build context built and pushed to a local registry: manifold vs Buildah
# (Debian's 1.28), same machine, same run (issue 6). The context (bench/make-context.py)
# is 10,000 small text files, 256 MiB of random bytes and 256 MiB of text; the
# Dockerfile is `FROM <busybox base>` + `COPY . /data/`. The base is a linux/amd64
# busybox made offline (bench/make-busybox.py) and served by one distribution registry;
# the image is pushed to a second one, whose storage is emptied before every cold run.
#   manifold: manifold build --progress=quiet -t REG/ctx:1 --push CONTEXT
#   Buildah:  buildah build -q --layers … -t REG/ctx:1 CONTEXT && buildah push REG/ctx:1
# Both push gzip layers (their defaults). Scenarios:
#   cold     manifold prune --all --force / buildah rmi -a -f, registry emptied
#   change   one small file changed before each run; caches warm, the registry keeps
#            the previous push
# manifold and each Buildah command run under /usr/bin/time for their peak RSS.
# Needs root, hyperfine, buildah, runc, docker-registry, python3, dpkg-deb, the
# busybox-static debs and a release build (scripts/setup.sh). Not run in CI.
#
#   bench/context-push.sh [RUNS]      (CTX_FILES=10000 CTX_MIB=256 by default;
#                                      HF_OPTS=--show-output shows the tools' output)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
files=${CTX_FILES:-10000}
mib=${CTX_MIB:-256}
repo=$PWD
manifold=${MANIFOLD:-$repo/target/release/manifold}
debs=${MANIFOLD_TEST_CACHE:-/var/cache/manifold-test}/debs
[ "$(id -u)" = 0 ] || { echo "bench/context-push.sh needs root" >&2; exit 1; }
for t in hyperfine buildah runc docker-registry python3 dpkg-deb; do
  command -v "$t" >/dev/null || { echo "missing $t: run scripts/setup.sh" >&2; exit 1; }
done
[ -x "$manifold" ] || { echo "no release build at $manifold: cargo build --release -p manifold" >&2; exit 1; }

work=$(mktemp -d /tmp/manifold-bench.XXXXXX)
export MANIFOLD_ROOT=$work/manifold MANIFOLD_CONFIG=$work/manifold-config DOCKER_CONFIG=$work/docker
mkdir -p "$work/docker" && echo '{}' > "$work/docker/config.json"   # buildah push reads it
B="buildah --root $work/buildah/root --runroot $work/buildah/run --storage-driver overlay"

cleanup() {
  for p in "$work"/*.pid; do [ -e "$p" ] && kill "$(cat "$p")" 2>/dev/null; done || true
  $B rmi -a -f >/dev/null 2>&1 || true
  $B rm -a >/dev/null 2>&1 || true
  "$manifold" prune --all --force >/dev/null 2>&1 || true
  # Never delete through a mount that a tool left behind.
  awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r umount -l
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# registry NAME PORT: a config and a restart script that empties the storage first.
registry() {
  local name=$1 port=$2
  cat > "$work/$name.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/$name}}
http: {addr: 127.0.0.1:$port}
YML
  cat > "$work/$name-restart.sh" <<SH
#!/bin/sh
kill \$(cat $work/$name.pid 2>/dev/null) 2>/dev/null && sleep 0.2
rm -rf $work/$name
docker-registry serve $work/$name.yml >$work/$name.log 2>&1 & echo \$! > $work/$name.pid
until curl -fs http://127.0.0.1:$port/v2/ >/dev/null; do sleep 0.05; done
SH
  chmod +x "$work/$name-restart.sh"
  "$work/$name-restart.sh"
}

echo "==> machine"
date -u '+%Y-%m-%d %H:%M UTC'
lscpu | grep -E '^(Model name|CPU\(s\)):' | sed 's/  */ /g'
grep MemTotal /proc/meminfo
. /etc/os-release && echo "$PRETTY_NAME, kernel $(uname -r)"
"$manifold" version; buildah --version; hyperfine --version; docker-registry --version
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "==> base image (linux/amd64 busybox) in one registry, an empty registry to push to"
base_port=$(free_port); registry base "$base_port"
python3 bench/make-busybox.py "$debs" "$work/layout" busybox amd64
base=127.0.0.1:$base_port/library/busybox:1
MANIFOLD_ROOT=$work/push "$manifold" imagetools copy "oci-layout://$work/layout:busybox" "$base" >/dev/null
port=$(free_port); registry target "$port"
target=127.0.0.1:$port/ctx:1

echo "==> context: $files small files, $mib MiB random, $mib MiB text"
ctx=$work/context
python3 bench/make-context.py "$ctx" "$files" "$mib"
printf 'ARG BASE\nFROM $BASE\nCOPY . /data/\n' > "$work/Dockerfile"
echo "$(find "$ctx" -type f | wc -l) files, $(du -sb "$ctx" | cut -f1) bytes"
small=$(find "$ctx/small" -type f | sort | sed -n "$(( files / 2 + 1 ))p")
sync

# m_build SCENARIO: the manifold command, its peak RSS appended to rss-manifold-SCENARIO.
m_build() { echo "/usr/bin/time -a -o $work/rss-manifold-$1 -f %M $manifold build --progress=quiet \
--build-arg BASE=$base -f $work/Dockerfile -t $target --push $ctx"; }
b_build="/usr/bin/time -a -o $work/rss-buildah-build -f %M $B build -q --layers --runtime runc \
--ulimit nofile=20000:20000 --tls-verify=false --build-arg BASE=$base -f $work/Dockerfile \
-t $target $ctx >/dev/null && /usr/bin/time -a -o $work/rss-buildah-push -f %M $B push -q \
--tls-verify=false $target"
reset_registry="$work/target-restart.sh"
change="echo \$(date +%s%N) >> $small"

run() {
  local name=$1; shift
  echo "==> $name"
  hyperfine ${HF_OPTS:-} --runs "$runs" --export-json "$work/$name.json" "$@"
}

run cold \
  --prepare "$manifold prune --all --force >/dev/null; $reset_registry; sync" -n manifold "$(m_build cold)" \
  --prepare "$B rmi -a -f >/dev/null; $reset_registry; sync" -n buildah "$b_build"
# The warm-up run of each tool pushes once to the emptied registry after the other
# tool's cold runs, so the measured runs find that tool's previous push there.
run change --warmup 1 \
  --prepare "$change; sync" -n manifold "$(m_build change)" \
  --prepare "$change; sync" -n buildah "$b_build"

echo "==> one more changed-file build of each, with step times and CPU"
sh -c "$change"; sync
/usr/bin/time -f 'manifold: %e s wall, %U s user, %S s sys, %M KiB peak' \
  "$manifold" build --progress=plain --build-arg BASE="$base" -f "$work/Dockerfile" -t "$target" --push "$ctx" 2>&1 | tail -n 25
sh -c "$change"; sync
/usr/bin/time -f 'manifold without --push (export into its store only): %e s wall, %U s user, %S s sys, %M KiB peak' \
  "$manifold" build --progress=quiet --build-arg BASE="$base" -f "$work/Dockerfile" -t "$target" "$ctx" >/dev/null
sh -c "$change"; sync
/usr/bin/time -f 'buildah build: %e s wall, %U s user, %S s sys, %M KiB peak' \
  $B build -q --layers --runtime runc --ulimit nofile=20000:20000 --tls-verify=false \
  --build-arg BASE="$base" -f "$work/Dockerfile" -t "$target" "$ctx" >/dev/null
/usr/bin/time -f 'buildah push: %e s wall, %U s user, %S s sys, %M KiB peak' \
  $B push -q --tls-verify=false "$target"
echo "blob sizes over 1 MB in the registry (every push since Buildah's last cold run):"
find "$work/target/docker/registry/v2/blobs" -name data -size +1M -printf '%s\n' | sort -n | tr '\n' ' '; echo

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> results (medians of $runs runs; ratio = manifold / buildah wall time)"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
print("| scenario | manifold | Buildah | ratio | target | met |")
print("|---|---|---|---|---|---|")
for key, label, target in [("cold", "cold", 0.2), ("change", "one small file changed", 0.07)]:
    r = {x["command"]: x for x in json.load(open(f"{work}/{key}.json"))["results"]}
    m, b = r["manifold"], r["buildah"]
    ratio = m["median"] / b["median"]
    print(f"| {label} | {m['median']:.2f} s ({m['min']:.2f}–{m['max']:.2f}; "
          f"{m['user']:.1f} s user, {m['system']:.1f} s sys) | {b['median']:.2f} s "
          f"({b['min']:.2f}–{b['max']:.2f}; {b['user']:.1f} s user, {b['system']:.1f} s sys) "
          f"| {ratio:.3f} | ≤ {target} | {'yes' if ratio <= target else 'no'} |")
def peak(name):
    return max(int(x) for x in open(f"{work}/rss-{name}").read().split() if x.isdigit())
def runs(name):
    return [int(x) for x in open(f"{work}/rss-{name}").read().split() if x.isdigit()]
m = max(runs("manifold-cold") + runs("manifold-change"))
print()
print(f"manifold peak RSS per run (KiB): cold {runs('manifold-cold')}, "
      f"changed file (warm-up first) {runs('manifold-change')}")
print(f"peak RSS, max over all timed runs: manifold {m} KiB ({m/1024:.1f} MiB, target ≤ 64 MB: "
      f"{'yes' if m * 1024 <= 64e6 else 'no'}); buildah build {peak('buildah-build')} KiB, "
      f"buildah push {peak('buildah-push')} KiB")
PY
