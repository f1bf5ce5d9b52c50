#!/usr/bin/env bash
# Layer compression: a ~512 MiB layer tar (1 MiB files, random and text by turns)
# exported into a fresh store with 1 and 2 compression threads, then again after a
# one-byte change in one file (run index warm), then unchanged (layer cache hit);
# gzip-6 and zstd-3. The gzip and zstd tools on the same tar are the peers. Needs a
# release build of the example (below) and gzip, zstd. Not run in CI.
#
#   bench/layer-compress.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-512}
cargo build --release -q -p manifold-export --example layer_bench
bin=$PWD/target/release/examples/layer_bench
work=$(mktemp -d /tmp/manifold-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "==> making $mib MiB tars (and one with file $((mib / 2)) changed)"
"$bin" gen "$work/base.tar" "$mib"
"$bin" gen "$work/edit.tar" "$mib" $((mib / 2))

# CPU time next to wall time: other work on the machine stretches the latter.
timed() { /usr/bin/time -f '    wall=%es user=%Us sys=%Ss maxrss=%MKiB' "$@"; }

peer() { # label, command...
  local label=$1; shift
  echo "$label blob=$(timed "$@" < "$work/base.tar" | wc -c)"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
for codec in gzip zstd; do
  echo "==> $codec"
  rm -rf "$work/s1" "$work/s2"
  echo -n "cold      "; timed "$bin" export "$work/s1" "$work/base.tar" "$codec" 1
  echo -n "cold      "; timed "$bin" export "$work/s2" "$work/base.tar" "$codec" 2
  echo -n "one edit  "; timed "$bin" export "$work/s2" "$work/edit.tar" "$codec" 2
  echo -n "unchanged "; timed "$bin" export "$work/s2" "$work/edit.tar" "$codec" 2
done
echo "==> peers (one stream)"
peer "gzip -6       " gzip -6 -c
peer "zstd -3 -T1   " zstd -3 -T1 -q -c
peer "zstd -3 -T2   " zstd -3 -T2 -q -c
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
