#!/usr/bin/env bash
# Register QEMU as a Debian/Ubuntu host does at boot: systemd-binfmt writes each line of
# /usr/lib/binfmt.d/qemu-<arch>.conf (qemu-user-static; flags POF, interpreter
# /usr/libexec/qemu-binfmt/<arch>-binfmt-P) to /proc/sys/fs/binfmt_misc/register.
# Machines without systemd (containers, some CI VMs) do not; this imitates it.
#
#   scripts/distro-binfmt.sh register     # register the entries not registered yet;
#                                         # prints the names it registered
#   scripts/distro-binfmt.sh unregister NAME…   # remove those entries again
set -euo pipefail
dir=/proc/sys/fs/binfmt_misc
case "${1:-}" in
  register)
    [ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir"
    for conf in /usr/lib/binfmt.d/qemu-*.conf; do
      line=$(grep -v '^[#;]' "$conf" | head -n1)
      name=$(printf '%s' "$line" | cut -d: -f2)
      [ -n "$name" ] && [ ! -e "$dir/$name" ] || continue
      printf '%s' "$line" > "$dir/register"
      echo "$name"
    done
    ;;
  unregister)
    shift
    for name in "$@"; do
      if [ -e "$dir/$name" ]; then echo -1 > "$dir/$name"; fi
    done
    ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
