#!/usr/bin/env bash
# manifold next to what the machine itself allows: each floor is a plain command, run in
# the same run as manifold, and each result a ratio to it. Not run in CI.
#
#   1 pull+unpack  floor: for both platforms at once, each layer blob of the base
#                  `curl`ed from the registry through `gzip -d` into `tar -x` (in order)
#                  manifold: the FROM steps of a cold two-platform build (their wall
#                  time in --progress=rawjson: first start to last completion)
#   2 RUN overhead floor: `runc run` of busybox `true` from a prepared bundle, 50 times
#                  manifold: 50 sequential RUN steps (bench/build/steps), cold
#   3 no-op push   floor: one HEAD of the index with curl
#                  manifold: a no-op rebuild with --push, two platforms
#   5 emulated RUN floor: `runc run` of arm64 busybox `true` under QEMU, prepared bundle
#                  manifold: one emulated `RUN true` step (rawjson), the base unpacked
# (Target 4, a changed file in a large COPY, is bench/context-push.sh.)
#
# The base is made offline by bench/make-base.py: busybox plus LAYERS gzip layers of
# FILES 64 KiB files for amd64 and arm64 (default 4 x 1500, about 375 MB a platform, as
# the seed's gcc base), served by Debian's distribution registry on 127.0.0.1.
# Needs root, hyperfine, runc, curl, docker-registry, qemu-user-static, python3 and a
# release build (scripts/setup.sh).
#
#   bench/floors.sh [RUNS] [LAYERS FILES]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
layers=${2:-4}
files=${3:-1500}
repo=$PWD
manifold=${MANIFOLD:-$repo/target/release/manifold}
debs=${MANIFOLD_TEST_CACHE:-/var/cache/manifold-test}/debs
work=$(mktemp -d /tmp/manifold-floors.XXXXXX)
export MANIFOLD_ROOT=$work/manifold MANIFOLD_CONFIG=$work/manifold-config DOCKER_CONFIG=$work/docker
B=true   # no Buildah here; bench_cleanup calls $B
. bench/lib.sh
bench_preflight bench/floors.sh hyperfine runc curl docker-registry python3
trap bench_cleanup EXIT
bench_machine
"$manifold" binfmt install arm64 >/dev/null

echo "==> base: busybox + $layers x $files files for amd64 and arm64, in a local registry"
reg=$(bench_registry registry)
python3 bench/make-base.py "$debs" "$work/layout" base "$layers" "$files"
MANIFOLD_ROOT=$work/push "$manifold" imagetools copy "oci-layout://$work/layout:base" \
  "$reg/library/base:1" >/dev/null
base=$reg/library/base:1
# Each platform's layer digests, in order, for the floor.
python3 - "$work/layout" > "$work/layers" <<'PY'
import json, os, sys
root = sys.argv[1]
read = lambda d: json.load(open(os.path.join(root, "blobs/sha256", d.split(":")[1])))
top = json.load(open(os.path.join(root, "index.json")))
for m in read(top["manifests"][0]["digest"])["manifests"]:
    for l in read(m["digest"])["layers"]:
        print(m["platform"]["architecture"], l["digest"])
PY
cat > "$work/pull-floor.sh" <<SH
#!/bin/sh
# Both platforms at once; each one's layers in order, each streamed through gzip into tar.
rm -rf $work/floor; mkdir -p $work/floor/amd64 $work/floor/arm64
for arch in amd64 arm64; do
  (grep "^\$arch " $work/layers | while read -r a d; do
     curl -fsS "http://$reg/v2/library/base/blobs/\$d" | gzip -d | tar -x -C $work/floor/\$arch
   done) &
done
wait
SH
chmod +x "$work/pull-floor.sh"

mkdir -p "$work/ctx/from" "$work/ctx/emu"
printf 'ARG BASE\nFROM $BASE\nRUN true\n' > "$work/ctx/from/Dockerfile"
printf 'ARG BASE\nFROM --platform=linux/arm64 $BASE AS emu\nRUN true\n' > "$work/ctx/emu/Dockerfile"
cp -r bench/build/steps "$work/ctx/steps"

# timed_phase TEXT PREPARE CMD: RUNS times PREPARE then CMD with --progress=rawjson; the
# wall time of the vertices whose name holds TEXT, first start to last completion.
timed_phase() {
  local prefix=$1 prepare=$2; shift 2
  for _ in $(seq "$runs"); do
    sh -c "$prepare" >/dev/null 2>&1
    "$@" --progress=rawjson 2>&1 >/dev/null | python3 -c '
import json, sys
prefix = sys.argv[1]
start, name, first, last = {}, {}, None, None
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "started" and prefix in (e.get("name") or ""):
        start[e["vertex"]] = e["time"]
        first = e["time"] if first is None else min(first, e["time"])
    if e.get("event") == "completed" and e["vertex"] in start:
        last = e["time"] if last is None else max(last, e["time"])
if first is None or last is None:
    sys.exit(f"no vertex named like {prefix!r} ran (did the build fail?)")
print(f"{last - first:.4f}")
' "$prefix"
  done
}

echo "==> 1: pull and unpack"
hyperfine --runs "$runs" --export-json "$work/f1.json" -n floor "$work/pull-floor.sh" >/dev/null
timed_phase "FROM " "$manifold prune --all --force" \
  "$manifold" build --platform linux/amd64,linux/arm64 --build-arg BASE="$base" "$work/ctx/from" \
  > "$work/m1"

echo "==> bundles for runc (busybox true, amd64 and arm64)"
for arch in amd64 arm64; do
  b=$work/bundle-$arch; mkdir -p "$b/rootfs"
  d=$(grep "^$arch " "$work/layers" | head -1 | cut -d' ' -f2)
  curl -fsS "http://$reg/v2/library/base/blobs/$d" | gzip -d | tar -x -C "$b/rootfs"
  (cd "$b" && runc spec)
  python3 - "$b/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["process"].pop("rlimits", None)
json.dump(c, open(p, "w"))
PY
done
cat > "$work/runc50.sh" <<SH
#!/bin/sh
i=0
while [ \$i -lt 50 ]; do runc run --bundle $work/bundle-amd64 floor-\$\$-\$i >/dev/null; i=\$((i+1)); done
SH
chmod +x "$work/runc50.sh"

echo "==> 2: 50 RUN steps"
hyperfine --runs "$runs" --export-json "$work/f2.json" \
  -n floor "$work/runc50.sh" \
  --prepare "$manifold prune --all --force" \
  -n manifold "$manifold build --progress=quiet --build-arg BASE=$base $work/ctx/steps" >/dev/null

echo "==> 3: no-op rebuild with --push"
"$manifold" build --progress=quiet --platform linux/amd64,linux/arm64 --build-arg BASE="$base" \
  -t "$reg/floors/noop:1" --push "$work/ctx/from" >/dev/null
hyperfine --runs $((runs * 5)) --warmup 2 --export-json "$work/f3.json" \
  -n floor "curl -fsSI -H 'Accept: application/vnd.oci.image.index.v1+json' http://$reg/v2/floors/noop/manifests/1" \
  -n manifold "$manifold build --progress=quiet --platform linux/amd64,linux/arm64 --build-arg BASE=$base -t $reg/floors/noop:1 --push $work/ctx/from" >/dev/null

echo "==> 5: one emulated RUN step"
hyperfine --runs $((runs * 3)) --export-json "$work/f5.json" -n floor \
  "runc run --bundle $work/bundle-arm64 floor-emu" >/dev/null
"$manifold" build --progress=quiet --build-arg BASE="$base" "$work/ctx/emu" >/dev/null
timed_phase "RUN true" "true" \
  "$manifold" build --no-cache-filter emu --build-arg BASE="$base" "$work/ctx/emu" > "$work/m5"

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> results (medians of the runs; ratio = manifold / floor)"
python3 - "$work" <<'PY'
import json, statistics, sys
w = sys.argv[1]
def hf(name, cmd):
    r = {x["command"]: x for x in json.load(open(f"{w}/{name}.json"))["results"]}
    return r[cmd]["median"]
def own(name):
    return statistics.median(float(x) for x in open(f"{w}/{name}").read().split())
rows = [
    ("1 pull and unpack, 2 platforms (FROM steps)", own("m1"), hf("f1", "floor"), "≤ 1.2×"),
    ("2 50 RUN steps, cold (whole build)", hf("f2", "manifold"), hf("f2", "floor"), "≤ 1.5×"),
    ("3 no-op rebuild with --push, 2 platforms", hf("f3", "manifold"), hf("f3", "floor"), "≤ floor + 15 ms"),
    ("5 one emulated RUN step", own("m5"), hf("f5", "floor"), "≤ 1.2×"),
]
print("| target | manifold | floor | ratio | target | met |")
print("|---|---|---|---|---|---|")
for label, m, f, t in rows:
    met = (m <= f + 0.015) if "+" in t else (m / f <= float(t.strip("≤ ×")))
    print(f"| {label} | {m*1000:.0f} ms | {f*1000:.0f} ms | {m/f:.2f} | {t} | {'yes' if met else 'no'} |")
PY
