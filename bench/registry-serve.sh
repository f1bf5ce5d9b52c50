#!/usr/bin/env bash
# Push and pull a 1 GiB image (4 × 256 MiB uncompressed layers) with skopeo through
# manifold's embedded registry and through Debian's distribution registry: same
# machine, same run, fresh registry storage before every push. Needs: docker-registry,
# skopeo, hyperfine, python3, curl, and a release build (scripts/setup.sh). Not run in CI.
#
#   bench/registry-serve.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
manifold=${MANIFOLD:-$PWD/target/release/manifold}
work=$(mktemp -d /tmp/manifold-bench.XXXXXX)
trap 'for p in "$work"/*.pid; do kill "$(cat "$p")" 2>/dev/null || true; done; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dport=$(free_port)
mport=$(free_port)
cat > "$work/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/dist}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$dport}
YML
# restart-<name>.sh: empty the registry's storage and start it again.
cat > "$work/restart-dist.sh" <<SH
#!/bin/sh
kill \$(cat $work/dist.pid 2>/dev/null) 2>/dev/null; sleep 0.2
rm -rf $work/dist
docker-registry serve $work/config.yml >/dev/null 2>&1 & echo \$! > $work/dist.pid
until curl -fs http://127.0.0.1:$dport/v2/ >/dev/null; do sleep 0.05; done
SH
cat > "$work/restart-manifold.sh" <<SH
#!/bin/sh
kill \$(cat $work/manifold.pid 2>/dev/null) 2>/dev/null; sleep 0.2
rm -rf $work/mroot
$manifold --root $work/mroot registry serve --addr 127.0.0.1:$mport --access-log /dev/null >/dev/null 2>&1 & echo \$! > $work/manifold.pid
until curl -fs http://127.0.0.1:$mport/v2/ >/dev/null; do sleep 0.05; done
SH
chmod +x "$work"/restart-*.sh

echo "==> making a 1 GiB OCI layout"
python3 bench/make-layout.py "$work/layout" img 4 256
sync

push() { echo "skopeo copy -q --dest-tls-verify=false oci:$work/layout:img docker://127.0.0.1:$1/bench:1"; }
pull() { echo "sh -c 'rm -rf $work/pulled; skopeo copy -q --src-tls-verify=false docker://127.0.0.1:$1/bench:1 oci:$work/pulled:img'"; }

echo "==> pushing (registry storage emptied before each run)"
hyperfine --runs "$runs" --export-json "$work/push.json" \
  --prepare "$work/restart-manifold.sh" -n manifold "$(push "$mport")" \
  --prepare "$work/restart-dist.sh" -n distribution "$(push "$dport")"

echo "==> pulling"
hyperfine --runs "$runs" --export-json "$work/pull.json" \
  -n manifold "$(pull "$mport")" -n distribution "$(pull "$dport")"

python3 - "$work/push.json" "$work/pull.json" <<'PY'
import json, sys
for name, path in (("push", sys.argv[1]), ("pull", sys.argv[2])):
    r = {x["command"]: x for x in json.load(open(path))["results"]}
    m, d = r["manifold"]["median"], r["distribution"]["median"]
    print(f"{name}: manifold {1024/m:.0f} MiB/s (median {m:.2f}s)   "
          f"distribution {1024/d:.0f} MiB/s (median {d:.2f}s)   ratio {d/m:.2f}x")
PY
