# Shared by the build benchmarks (bench/build.sh, bench/cache.sh): sourced, not run.
# The caller sets `manifold`, `debs` and `work`, and `B` (its buildah command line).

# bench_preflight SCRIPT TOOL...: root, the tools and a release build, or exit.
bench_preflight() {
  local script=$1; shift
  [ "$(id -u)" = 0 ] || { echo "$script needs root (builds run containers)" >&2; exit 1; }
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "missing $t: run scripts/setup.sh" >&2; exit 1; }
  done
  [ -x "$manifold" ] || { echo "no release build at $manifold: cargo build --release -p manifold" >&2; exit 1; }
}

# The binfmt_misc entries that exist before the run, so the cleanup removes only
# what the run registered.
binfmt=/proc/sys/fs/binfmt_misc
binfmt_mounted=$(mountpoint -q $binfmt && echo yes || echo no)
binfmt_before=$(ls $binfmt 2>/dev/null | tr '\n' ' ' || true)

# bench_cleanup: stop the registries, empty both stores, remove the QEMU entries the
# run added, unmount what a tool left behind, remove the work directory.
bench_cleanup() {
  for p in "$work"/*.pid; do [ -e "$p" ] && kill "$(cat "$p")" 2>/dev/null; done || true
  # The rootless scenario's pause process (it holds the user's namespace).
  pkill -f "^$work/rl/bin/manifold __rootless-pause" 2>/dev/null || true
  $B rmi -a -f >/dev/null 2>&1 || true
  "$manifold" prune --all --force >/dev/null 2>&1 || true
  for e in $binfmt/qemu-*; do
    [ -e "$e" ] || continue
    case " $binfmt_before " in *" ${e##*/} "*) ;; *) echo -1 > "$e" || true ;; esac
  done
  [ "$binfmt_mounted" = yes ] || umount $binfmt 2>/dev/null || true
  $B rm -a >/dev/null 2>&1 || true
  # Never delete through a mount that a tool left behind.
  awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r umount -l
  rm -rf "$work"
}

bench_machine() {
  echo "==> machine"
  date -u '+%Y-%m-%d %H:%M UTC'
  lscpu | grep -E '^(Model name|CPU\(s\)):' | sed 's/  */ /g'
  grep MemTotal /proc/meminfo
  . /etc/os-release && echo "$PRETTY_NAME, kernel $(uname -r)"
  "$manifold" version; buildah --version; hyperfine --version
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# bench_registry NAME: Debian's distribution registry on a free port of 127.0.0.1,
# storing under $work/NAME; prints its address.
bench_registry() {
  local name=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$work/$name.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/$name}}
http: {addr: 127.0.0.1:$port}
YML
  docker-registry serve "$work/$name.yml" >"$work/$name.log" 2>&1 & echo $! > "$work/$name.pid"
  until curl -fs "http://127.0.0.1:$port/v2/" >/dev/null; do sleep 0.05; done
  echo "127.0.0.1:$port"
}

# bench_base REGISTRY ARCH...: a busybox index for the Debian architectures made
# offline and pushed as REGISTRY/library/busybox:1; prints its reference.
bench_base() {
  local reg=$1; shift
  python3 bench/make-busybox.py "$debs" "$work/layout" busybox "$@" >&2
  MANIFOLD_ROOT=$work/push "$manifold" imagetools copy "oci-layout://$work/layout:busybox" \
    "$reg/library/busybox:1" >&2
  echo "$reg/library/busybox:1"
}

# bench_run NAME HYPERFINE-ARGS...: hyperfine with $runs runs, results in NAME.json.
bench_run() {
  local name=$1; shift
  echo "==> $name"
  hyperfine --runs "$runs" --export-json "$work/$name.json" "$@"
}

# The build commands; `base` and the contexts under $work/ctx/TOOL/ are the caller's.
# mb SCENARIO CONTEXT [FLAG...]: a manifold build command, peak RSS to rss-SCENARIO.
mb() {
  local scen=$1 ctx=$2; shift 2
  echo "/usr/bin/time -a -o $work/rss-$scen -f %M $manifold build --progress=quiet $* \
--build-arg BASE=$base -t localhost/bench-$scen:1 $work/ctx/manifold/$ctx"
}
# bb CONTEXT [--platform P --manifest NAME | -t NAME]: a buildah build command.
bb() {
  local ctx=$1; shift
  echo "$B build -q --layers --runtime runc --ulimit nofile=20000:20000 --tls-verify=false $* \
--build-arg BASE=$base $work/ctx/buildah/$ctx"
}
m_cold="$manifold prune --all --force"
b_cold="$B rmi -a -f"
# A --manifest list that exists is added to, so warm runs start without it.
b_list() { echo "sh -c '$B manifest rm $1 >/dev/null 2>&1 || true'"; }
change() { echo "sh -c 'date +%s%N >> $work/ctx/$1/multi-stage/src/main.txt'"; }

