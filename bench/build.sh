#!/usr/bin/env bash
# manifold build vs Buildah (Debian's 1.28, `buildah build --layers`), same machine,
# same run, each into its own store under a temp dir, nothing pushed. The base image
# is a busybox index for six platforms made offline from Debian's busybox-static debs
# (bench/make-busybox.py) and served by Debian's distribution registry on 127.0.0.1;
# both tools pull it from there. Scenarios (Dockerfiles under bench/build/):
#   a  multi-stage, linux/amd64 + linux/arm64, one RUN per platform (arm64 emulated):
#      cold, no-op rebuild, one source file changed
#   b  50 sequential RUN steps (host platform): cold, no-op rebuild
#   c  8 independent stages gathered by a final stage (host platform): cold
#   d  the multi-stage Dockerfile of (a) for six platforms: cold
#   a-attest  (a) cold with `--provenance=mode=max --sbom=true` next to (a) cold
#      without, both manifold, same run (what attestations add), and the no-op
#      rebuild with them next to Buildah's no-op
#   a-rootless  (a) cold and no-op as the unprivileged user manifold-rootless (made by
#      scripts/setup.sh, with a subordinate id range) next to the same builds as root,
#      both manifold, same run (what rootless costs)
# Cold = after `manifold prune --all --force` / `buildah rmi -a -f` (build cache and
# pulled base gone). manifold runs under /usr/bin/time for its peak RSS.
# Needs root, hyperfine, buildah, runc, docker-registry, qemu-user-static, python3,
# dpkg-deb, the busybox-static debs and a release build (scripts/setup.sh). Registers
# QEMU with `manifold binfmt install` when needed and removes what it registered.
# Not run in CI.
#
#   bench/build.sh [RUNS] [SCENARIO...]   (scenarios: a b c d a-attest a-rootless;
#                                          default all)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
only=" ${*:-a b c d a-attest a-rootless} "
want() { case "$only" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
repo=$PWD
manifold=${MANIFOLD:-$repo/target/release/manifold}
debs=${MANIFOLD_TEST_CACHE:-/var/cache/manifold-test}/debs
work=$(mktemp -d /tmp/manifold-bench.XXXXXX)
export MANIFOLD_ROOT=$work/manifold MANIFOLD_CONFIG=$work/manifold-config DOCKER_CONFIG=$work/docker
B="buildah --root $work/buildah/root --runroot $work/buildah/run --storage-driver overlay"
. bench/lib.sh
bench_preflight bench/build.sh hyperfine buildah runc docker-registry python3 dpkg-deb
trap bench_cleanup EXIT
bench_machine

echo "==> QEMU (binfmt_misc)"
"$manifold" binfmt install arm64 arm ppc64le s390x >/dev/null
"$manifold" binfmt ls | grep -E 'linux/(amd64|arm64|arm/v7|386|ppc64le|s390x) '

echo "==> base image: busybox for six platforms, pushed to a local registry"
reg=$(bench_registry registry)
base=$(bench_base "$reg" amd64 arm64 armhf i386 ppc64el s390x)

# Each tool gets its own copy of each context, so a changed file is new to both.
for t in manifold buildah; do
  for s in multi-stage steps stages; do
    mkdir -p "$work/ctx/$t"; cp -r "bench/build/$s" "$work/ctx/$t/$s"
  done
done
two=linux/amd64,linux/arm64
six=linux/amd64,linux/arm64,linux/arm/v7,linux/386,linux/ppc64le,linux/s390x

attest="--provenance=mode=max --sbom=true"
if want a; then
bench_run a-cold \
  --prepare "$m_cold" -n manifold "$(mb a multi-stage --platform $two)" \
  --prepare "$b_cold" -n buildah "$(bb multi-stage --platform $two --manifest bench-a)"
bench_run a-noop --warmup 1 \
  --prepare true -n manifold "$(mb a multi-stage --platform $two)" \
  --prepare "$(b_list bench-a)" -n buildah "$(bb multi-stage --platform $two --manifest bench-a)"
bench_run a-change \
  --prepare "$(change manifold)" -n manifold "$(mb a multi-stage --platform $two)" \
  --prepare "$(change buildah); $(b_list bench-a)" -n buildah "$(bb multi-stage --platform $two --manifest bench-a)"
fi
if want b; then
bench_run b-cold \
  --prepare "$m_cold" -n manifold "$(mb b steps)" \
  --prepare "$b_cold" -n buildah "$(bb steps -t bench-b)"
bench_run b-noop --warmup 1 \
  -n manifold "$(mb b steps)" -n buildah "$(bb steps -t bench-b)"
fi
if want c; then
bench_run c-cold \
  --prepare "$m_cold" -n manifold "$(mb c stages)" \
  --prepare "$b_cold" -n buildah "$(bb stages -t bench-c)"
fi
if want d; then
bench_run d-cold \
  --prepare "$m_cold" -n manifold "$(mb d multi-stage --platform $six)" \
  --prepare "$b_cold" -n buildah "$(bb multi-stage --platform $six --manifest bench-d)"
fi
if want a-attest; then
# Both manifold: "buildah" below is the column of the plain build, for the summary.
bench_run a-attest-cold \
  --prepare "$m_cold" -n manifold "$(mb e multi-stage --platform $two $attest)" \
  --prepare "$m_cold" -n buildah "$(mb a multi-stage --platform $two)"
bench_run a-attest-noop --warmup 1 \
  --prepare true -n manifold "$(mb e multi-stage --platform $two $attest)" \
  --prepare "$(b_list bench-a)" -n buildah "$(bb multi-stage --platform $two --manifest bench-a)"
fi

if want a-rootless; then
# The user's own copy of manifold, state root and context, under a work dir it may enter.
chmod 711 "$work"
rl_user=manifold-rootless
id "$rl_user" >/dev/null || { echo "no user $rl_user: run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$work/rl/bin" "$work/rl/home" "$work/rl/root"
cp "$manifold" "$work/rl/bin/manifold"; chmod 755 "$work/rl" "$work/rl/bin" "$work/rl/bin/manifold"
cp -r bench/build/multi-stage "$work/rl/home/multi-stage"
chown -R "$rl_user:" "$work/rl/home" "$work/rl/root"
rl() {
  echo "setpriv --reuid=$rl_user --regid=$(id -g $rl_user) --init-groups env -i PATH=$PATH HOME=$work/rl/home MANIFOLD_ROOT=$work/rl/root MANIFOLD_CONFIG=$work/rl/home/config $*"
}
rl_build="$(rl /usr/bin/time -a -o $work/rl/home/rss-f -f %M $work/rl/bin/manifold build --progress=quiet --platform $two --build-arg BASE=$base -t localhost/bench-f:1 $work/rl/home/multi-stage)"
# Both manifold: "buildah" below is the column of the build as root, for the summary.
bench_run a-rootless-cold \
  --prepare "$(rl $work/rl/bin/manifold prune --all --force)" -n manifold "$rl_build" \
  --prepare "$m_cold" -n buildah "$(mb a multi-stage --platform $two)"
bench_run a-rootless-noop --warmup 1 \
  --prepare true -n manifold "$rl_build" \
  --prepare true -n buildah "$(mb a multi-stage --platform $two)"
cp "$work/rl/home/rss-f" "$work/rss-f"
fi

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> results (medians of $runs runs; ratio = manifold / buildah wall time)"
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
targets = [("a-cold", "a: 2 platforms, multi-stage, cold", 0.2),
           ("a-noop", "a: no-op rebuild", 0.03),
           ("a-change", "a: one source file changed", 0.07),
           ("b-cold", "b: 50 RUN steps, cold", 0.1),
           ("b-noop", "b: no-op rebuild", 0.03),
           ("c-cold", "c: 8 independent stages, cold", 0.35),
           ("d-cold", "d: 6 platforms, cold", 0.5),
           ("a-attest-cold", "a with provenance (max) + SBOM, cold, next to a without (manifold / manifold)", 1.10),
           ("a-attest-noop", "a with provenance (max) + SBOM: no-op rebuild", 0.03),
           ("a-rootless-cold", "a rootless, cold, next to a as root (manifold / manifold)", 1.15),
           ("a-rootless-noop", "a rootless, no-op rebuild, next to a as root (manifold / manifold)", 1.15)]
print("| scenario | manifold | Buildah | ratio | target | met |")
print("|---|---|---|---|---|---|")
for key, label, target in targets:
    if not os.path.exists(f"{work}/{key}.json"):
        continue
    r = {x["command"]: x for x in json.load(open(f"{work}/{key}.json"))["results"]}
    m, b = r["manifold"]["median"], r["buildah"]["median"]
    ratio = m / b
    print(f"| {label} | {m:.2f} s | {b:.2f} s | {ratio:.3f} | ≤ {target} | {'yes' if ratio <= target else 'no'} |")
rss = {}
for s in "abcdef":
    p = f"{work}/rss-{s}"
    if os.path.exists(p):
        rss[s] = max(int(x) for x in open(p).read().split() if x.isdigit())
peak = max(rss.values())
print()
print("peak RSS of manifold build (KiB, max over all runs): "
      + ", ".join(f"{s}: {v}" for s, v in rss.items())
      + f" -> {peak/1024:.1f} MiB, target ≤ 64 MB: {'yes' if peak * 1024 <= 64e6 else 'no'}")
PY
