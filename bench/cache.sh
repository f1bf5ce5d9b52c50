#!/usr/bin/env bash
# Registry build caches: manifold's `--cache-to/--cache-from type=registry` next to
# Buildah 1.28's `--cache-to/--cache-from REPOSITORY`, same machine, same run. The
# Dockerfile is scenario a of bench/build.sh (bench/build/multi-stage: two stages, a
# COPY of src/, one RUN per platform, then COPY --from and one more COPY) for
# linux/amd64 and linux/arm64 (arm64 emulated). The base is a busybox index made
# offline (bench/make-busybox.py) and served by Debian's distribution registry on
# 127.0.0.1; the caches go to a second one. Scenarios:
#   ci      the CI runner: an empty state (`manifold prune --all --force`,
#           `buildah rmi -a -f`), one source file changed since the cache was written
#           (a line appended to src/main.txt), the build imports the cache from the
#           registry. Each tool's cache was written once before, by a cold build with
#           `mode=max` (manifold) or `--cache-to` (Buildah).
#   export  a cold build, then the same cold build exporting its cache with
#           `mode=max` to a repository the registry has never seen (so every blob is
#           uploaded), then to the reference an earlier export wrote (what a CI
#           pipeline does from its second run on: the blobs are there): what the
#           export adds. Buildah's `--cache-to` to a new repository alike.
# manifold runs under /usr/bin/time for its peak RSS.
# Needs root, hyperfine, buildah, runc, docker-registry, qemu-user-static, python3,
# dpkg-deb, the busybox-static debs and a release build (scripts/setup.sh). Registers
# QEMU with `manifold binfmt install` when needed and removes what it registered.
# Not run in CI.
#
#   bench/cache.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
manifold=${MANIFOLD:-$PWD/target/release/manifold}
debs=${MANIFOLD_TEST_CACHE:-/var/cache/manifold-test}/debs
work=$(mktemp -d /tmp/manifold-bench.XXXXXX)
export MANIFOLD_ROOT=$work/manifold MANIFOLD_CONFIG=$work/manifold-config DOCKER_CONFIG=$work/docker
B="buildah --root $work/buildah/root --runroot $work/buildah/run --storage-driver overlay"
. bench/lib.sh
bench_preflight bench/cache.sh hyperfine buildah runc docker-registry python3 dpkg-deb
trap bench_cleanup EXIT
bench_machine

echo "==> QEMU (binfmt_misc)"
"$manifold" binfmt install arm64 >/dev/null
"$manifold" binfmt ls | grep -E 'linux/(amd64|arm64) '

echo "==> registries: the base, and the caches"
base=$(bench_base "$(bench_registry registry)" amd64 arm64)
caches=$(bench_registry caches)
for t in manifold buildah; do
  mkdir -p "$work/ctx/$t"; cp -r bench/build/multi-stage "$work/ctx/$t/multi-stage"
done
two=linux/amd64,linux/arm64
m_cache=$caches/cache/manifold:a
b_cache=$caches/cache/buildah

echo "==> each tool writes its cache once (cold build)"
$m_cold >/dev/null
$(mb prime multi-stage --platform $two --cache-to "type=registry,ref=$m_cache,mode=max")
$b_cold >/dev/null
$(bb multi-stage --platform $two --manifest bench-prime --cache-to "$b_cache")
echo "manifold's cache:"; skopeo inspect --tls-verify=false --raw "docker://$m_cache" | head -c 600; echo
echo "Buildah's cache tags: $(curl -fs "http://$caches/v2/cache/buildah/tags/list")"

bench_run ci \
  --prepare "sh -c '$m_cold >/dev/null'; $(change manifold)" \
  -n manifold "$(mb ci multi-stage --platform $two --cache-from "type=registry,ref=$m_cache")" \
  --prepare "sh -c '$b_cold >/dev/null'; $(change buildah); $(b_list bench-ci)" \
  -n buildah "$(bb multi-stage --platform $two --manifest bench-ci --cache-from "$b_cache")"

# A repository the cache registry has not seen for every export run.
n=$work/export-count; echo 0 > "$n"
fresh="sh -c 'echo \$((\$(cat $n) + 1)) > $n'"
again="type=registry,ref=$caches/again/m:a,mode=max"
$m_cold >/dev/null
$(mb again multi-stage --platform $two --cache-to "$again")
bench_run export \
  --prepare "$m_cold" -n manifold "$(mb cold multi-stage --platform $two)" \
  --prepare "$m_cold; $fresh" \
  -n manifold-cache-to "$(mb export multi-stage --platform $two \
    --cache-to "type=registry,ref=$caches/fresh/m\$(cat $n):a,mode=max")" \
  --prepare "$m_cold" \
  -n manifold-cache-to-again "$(mb again multi-stage --platform $two --cache-to "$again")" \
  --prepare "$b_cold; $(b_list bench-x)" \
  -n buildah "$(bb multi-stage --platform $two --manifest bench-x)" \
  --prepare "$b_cold; $(b_list bench-x); $fresh" \
  -n buildah-cache-to "$(bb multi-stage --platform $two --manifest bench-x \
    --cache-to "$caches/fresh/b\$(cat $n)")"

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> results (medians of $runs runs)"
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
def med(key):
    return {x["command"]: x["median"] for x in json.load(open(f"{work}/{key}.json"))["results"]}
ci, ex = med("ci"), med("export")
r = ci["manifold"] / ci["buildah"]
print("| scenario | manifold | Buildah | ratio | target | met |")
print("|---|---|---|---|---|---|")
print(f"| CI: fresh root, cache from the registry, one file changed | {ci['manifold']:.2f} s "
      f"| {ci['buildah']:.2f} s | {r:.3f} | ≤ 0.3 | {'yes' if r <= 0.3 else 'no'} |")
b = ex["buildah-cache-to"] / ex["buildah"]
for key, what in (("manifold-cache-to", "to a new repository"),
                  ("manifold-cache-to-again", "to the reference of an earlier export")):
    m = ex[key] / ex["manifold"]
    print(f"| cold build with a mode=max cache export {what}, over the cold build | "
          f"{ex[key]:.3f} s / {ex['manifold']:.3f} s | "
          f"{ex['buildah-cache-to']:.2f} s / {ex['buildah']:.2f} s (new repository) | "
          f"{(m - 1) * 100:+.0f} % (Buildah {(b - 1) * 100:+.0f} %) | ≤ +15 % | "
          f"{'yes' if m <= 1.15 else 'no'} |")
peak = 0
for s in ("ci", "cold", "export", "again"):
    p = f"{work}/rss-{s}"
    if os.path.exists(p):
        v = max(int(x) for x in open(p).read().split() if x.isdigit())
        print(f"peak RSS, {s}: {v} KiB")
        peak = max(peak, v)
print(f"peak RSS of manifold: {peak/1024:.1f} MiB, target ≤ 64 MB: "
      f"{'yes' if peak * 1024 <= 64e6 else 'no'}")
PY
