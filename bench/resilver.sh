#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Resilver rate against scrub rate (issue 5), not a timed test.  Per layout
# (a 2-way mirror of files, a raidz1 of 4 files; all in DIR, so on one disk)
# one berthd makes the pool, a volume of SIZE (compression=off) prefilled
# sequentially with fio's incompressible buffers, syncs, drops the page cache
# (when root), then `berth pool replace`s member 1 by a new file and waits
# for the resilver: bytes copied, allocated bytes, rate (copied / wall time
# from the replace to the end); then drops the page cache again and scrubs:
# the scrub's rate (examined / scan time, from `berth --json pool status`).
#
#   bench/resilver.sh [--size SIZE] [--dir DIR] [--layouts "mirror2 raidz4"]
# Environment: BERTH_BUILD (default ./build).
set -u
set -o pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${BERTH_BUILD:-$top/build}
size=1G
layouts="mirror2 raidz4"
dir=${BENCH_DIR:-/var/tmp/berth-bench}
cmdline="bench/resilver.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
for c in fio curl python3 numfmt; do
  command -v $c >/dev/null || { echo "bench: skipped: $c is not installed" >&2; exit 77; }
done
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "bench: skipped: this fio has no nbd engine" >&2; exit 77; }
[ -x "$build/src/daemon/berthd" ] || { echo "bench: no berthd in $build (make)" >&2; exit 1; }
cold=1
if [ "$(id -u)" != 0 ] || [ ! -w /proc/sys/vm/drop_caches ]; then
  echo "bench: not root: the page cache is not dropped (warm figures)" >&2
  cold=0
fi
mkdir -p "$dir"
W=$(mktemp -d "$dir/resilver.XXXXXX")
bytes=$(numfmt --from=iec "$size")
berthd_pid=
cleanup() {
  [ -n "$berthd_pid" ] && { kill "$berthd_pid" 2>/dev/null; wait "$berthd_pid" 2>/dev/null; }
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }
berth() { "$build/src/cli/berth" "$@"; }
drop_caches() { [ $cold = 1 ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }; return 0; }
scan() { berth --json pool status p | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["scan"]; print(s["func"], s["state"], s["resilvered"], s["examined"], s["rate"], d["allocated"])'; }

export BERTH_SOCKET=$W/run/berthd.sock
"$build/src/daemon/berthd" --state-dir "$W/state" --run-dir "$W/run" --cache-size 64M >"$W/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 200); do
  curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1 && break
  kill -0 "$berthd_pid" 2>/dev/null || { cat "$W/berthd.log"; echo "bench: berthd died" >&2; exit 1; }
  sleep 0.05
done

declare -A R
for lay in $layouts; do
  case $lay in
    mirror*) n=${lay#mirror}; spec=mirror ;;
    raidz*) n=${lay#raidz}; spec=raidz1 ;;
    *) echo "bench: unknown layout $lay" >&2; exit 2 ;;
  esac
  devs=()
  for i in $(seq 0 $((n - 1))); do
    truncate -s $((bytes * 2)) "$W/d$i.img"
    devs+=("$W/d$i.img")
  done
  log "== $lay"
  berth pool create -f p $spec "${devs[@]}" >/dev/null || exit 1
  berth vol create -V "$size" -o compression=off p/v >/dev/null || exit 1
  fio --name=prefill --ioengine=nbd --uri="$(berth vol uri p/v)" --rw=write --bs=1M --iodepth=16 \
      --size="$size" >/dev/null 2>"$W/fio.err" || { cat "$W/fio.err" >&2; exit 1; }
  berth pool sync p >/dev/null || exit 1
  drop_caches
  t0=$(date +%s.%N)
  berth pool replace p "$W/d1.img" "$W/new.img" >/dev/null || exit 1
  while read -r fn st rs _ _ alloc < <(scan); [ "$st" = scanning ]; do sleep 0.1; done
  t1=$(date +%s.%N)
  [ "$fn $st" = "resilver finished" ] || { echo "bench: resilver ended $fn $st" >&2; exit 1; }
  R[$lay.rs]=$rs R[$lay.alloc]=$alloc
  R[$lay.rsrate]=$(python3 -c "print('%.0f' % ($rs / ($t1 - $t0) / 1e6))")
  R[$lay.rstime]=$(python3 -c "print('%.1f' % ($t1 - $t0))")
  log "  replace: resilvered $rs of $alloc allocated bytes in ${R[$lay.rstime]} s, ${R[$lay.rsrate]} MB/s"
  berth pool sync p >/dev/null || exit 1
  drop_caches
  berth pool scrub p >/dev/null || exit 1
  while read -r fn st _ ex rate _ < <(scan); [ "$st" = scanning ]; do sleep 0.1; done
  [ "$fn $st" = "scrub finished" ] || { echo "bench: scrub ended $fn $st" >&2; exit 1; }
  R[$lay.scrub]=$(python3 -c "print('%.0f' % ($rate / 1e6))")
  log "  scrub: ${R[$lay.scrub]} MB/s over $ex bytes"
  berth pool destroy -f p >/dev/null || exit 1
  rm -f "$W"/*.img
done
{
  echo "| layout | resilver: bytes copied / allocated | resilver MB/s | scrub MB/s (same pool after) | resilver / scrub |"
  echo "|---|---|---|---|---|"
  for lay in $layouts; do
    echo "| $lay | ${R[$lay.rs]} / ${R[$lay.alloc]} | ${R[$lay.rsrate]} | ${R[$lay.scrub]} | $(python3 -c "print('%.2f' % (${R[$lay.rsrate]} / max(1, ${R[$lay.scrub]})))") |"
  done
  echo
  echo "- $(nproc) CPUs, files on $(df -T "$dir" | awk 'NR==2 {print $2}'), volume $size compression=off prefilled, page cache $([ $cold = 1 ] && echo dropped || echo warm) before each scan, build $build"
} >"$W/table.md"
echo
echo "command: $cmdline"
echo
cat "$W/table.md"
