#!/usr/bin/env bash
# Push a 1 GiB image (4 × 256 MiB uncompressed layers) from an OCI layout to a local
# distribution registry: manifold vs skopeo, same machine, same run, fresh registry
# storage before every run. Needs: docker-registry, skopeo, hyperfine, python3, and a
# release build (scripts/setup.sh). Not run in CI.
#
#   bench/registry-push.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
manifold=${MANIFOLD:-$PWD/target/release/manifold}
work=$(mktemp -d /tmp/manifold-bench.XXXXXX)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
cat > "$work/restart.sh" <<SH
#!/bin/sh
kill \$(cat $work/pid 2>/dev/null) 2>/dev/null; sleep 0.2
rm -rf $work/data
docker-registry serve $work/config.yml >/dev/null 2>&1 & echo \$! > $work/pid
until curl -fs http://127.0.0.1:$port/v2/ >/dev/null; do sleep 0.05; done
SH
chmod +x "$work/restart.sh"

echo "==> making a 1 GiB OCI layout"
python3 bench/make-layout.py "$work/layout" img 4 256
sync

echo "==> pushing (registry storage emptied before each run)"
hyperfine --runs "$runs" --prepare "$work/restart.sh" --export-json "$work/result.json" \
  -n manifold "$manifold imagetools copy oci-layout://$work/layout:img 127.0.0.1:$port/bench:1" \
  -n skopeo "skopeo copy -q --dest-tls-verify=false oci:$work/layout:img docker://127.0.0.1:$port/bench:1"

python3 - "$work/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
m, s = r["manifold"]["median"], r["skopeo"]["median"]
gib = 1.0
print(f"manifold: {gib/m*1024:.0f} MiB/s (median {m:.2f}s)   skopeo: {gib/s*1024:.0f} MiB/s (median {s:.2f}s)")
print(f"throughput ratio manifold/skopeo: {s/m:.2f}x")
PY
