#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Resilver rate against scrub rate (issue 5), not a timed test.  Per layout
# (a 2-way mirror of files, a raidz1 of 4 files; all in DIR, so on one disk)
# one berthd makes the pool, a volume of SIZE (compression=off) prefilled
# sequentially with fio's incompressible buffers, syncs, drops the page cache
# (when root), then `berth pool replace`s member 1 by a new file and waits
# for the resilver: bytes copied, allocated bytes, rates (copied / wall time
# from the replace to the end, and the raw bytes of the allocation it walked,
# parity included, / that time: a raidz member gets only its columns but
# the resilver reads the others; and the scan's own rate, the walk without
# the replace before it and the final flush); then drops the page cache again and scrubs:
# the scrub's rate (examined / scan time, from `berth --json pool status`).
#
#   bench/resilver.sh [--size SIZE] [--dir DIR] [--layouts "mirror2 raidz4"] [--warm]
#                     [--throttle IOPS:BPS]
# --warm keeps the page cache (the pool files stay cached: CPU, not disk).
# --throttle puts every member (and the new one) on a loop device of its own
# (direct I/O) and berthd in a cgroup v1 blkio group that limits each loop
# device to IOPS reads/s and BPS bytes/s of writes (as bench/mirror-throttle.sh
# and bench/raidz-throttle.sh): independent devices, where a resilver that
# waits for each block in turn is bound by one device's latency.
# Environment: BERTH_BUILD (default ./build).
set -u
set -o pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${BERTH_BUILD:-$top/build}
size=1G
layouts="mirror2 raidz4"
warm=0
throttle=
dir=${BENCH_DIR:-/var/tmp/berth-bench}
cmdline="bench/resilver.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    --warm) warm=1; shift ;;
    --throttle) throttle=$2; shift 2 ;;
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
if [ $warm = 1 ]; then
  cold=0
elif [ "$(id -u)" != 0 ] || [ ! -w /proc/sys/vm/drop_caches ]; then
  echo "bench: not root: the page cache is not dropped (warm figures)" >&2
  cold=0
fi
mkdir -p "$dir"
W=$(mktemp -d "$dir/resilver.XXXXXX")
bytes=$(numfmt --from=iec "$size")
berthd_pid=
loops=()
cg=
cleanup() {
  [ -n "$berthd_pid" ] && { kill "$berthd_pid" 2>/dev/null; wait "$berthd_pid" 2>/dev/null; }
  local l
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
  [ -n "$cg" ] && rmdir "$cg" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }
berth() { "$build/src/cli/berth" "$@"; }
drop_caches() { [ $cold = 1 ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }; return 0; }
scan() { berth --json pool status p | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["scan"]; print(s["func"], s["state"], s["resilvered"], s["examined"], s["rate"], d["allocated"])'; }

if [ -n "$throttle" ]; then
  [ "$(id -u)" = 0 ] || { echo "bench: skipped: --throttle needs root" >&2; exit 77; }
  [ -f /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device ] || { echo "bench: skipped: no cgroup v1 blkio throttling" >&2; exit 77; }
  command -v losetup >/dev/null && [ -e /dev/loop-control ] || { echo "bench: skipped: no loop devices" >&2; exit 77; }
  t_iops=${throttle%%:*}
  t_bps=$(numfmt --from=iec "${throttle#*:}")
  cg=/sys/fs/cgroup/blkio/berth-resilver-$$
  mkdir "$cg" || { echo "bench: skipped: cannot create a blkio cgroup" >&2; cg=; exit 77; }
fi
# dev FILE -> the path the pool uses: the file, or a throttled loop device over it
dev() {
  truncate -s $((bytes * 2)) "$1" || exit 1
  if [ -z "$throttle" ]; then echo "$1"; return; fi
  local l mm
  l=$(losetup -f --show --direct-io=on "$1") || exit 1
  mm=$(lsblk -dno MAJ:MIN "$l" | tr -d ' ')
  echo "$mm $t_iops" >"$cg/blkio.throttle.read_iops_device" || exit 1
  echo "$mm $t_bps" >"$cg/blkio.throttle.write_bps_device" || exit 1
  echo "$l"
}
export BERTH_SOCKET=$W/run/berthd.sock
( [ -n "$cg" ] && echo $BASHPID >"$cg/cgroup.procs"
  exec "$build/src/daemon/berthd" --state-dir "$W/state" --run-dir "$W/run" --cache-size 64M ) >"$W/berthd.log" 2>&1 &
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
    d=$(dev "$W/d$i.img") && [ -n "$d" ] || exit 1
    devs+=("$d")
  done
  newdev=$(dev "$W/new.img") && [ -n "$newdev" ] || exit 1
  [ -n "$throttle" ] && loops=("${devs[@]}" "$newdev")
  log "== $lay"
  berth pool create -f p $spec "${devs[@]}" >/dev/null || exit 1
  berth vol create -V "$size" -o compression=off p/v >/dev/null || exit 1
  fio --name=prefill --ioengine=nbd --uri="$(berth vol uri p/v)" --rw=write --bs=1M --iodepth=16 \
      --size="$size" >/dev/null 2>"$W/fio.err" || { cat "$W/fio.err" >&2; exit 1; }
  berth pool sync p >/dev/null || exit 1
  drop_caches
  t0=$(date +%s.%N)
  berth pool replace p "${devs[1]}" "$newdev" >/dev/null || exit 1
  while read -r fn st rs rex rrate alloc < <(scan); [ "$st" = scanning ]; do sleep 0.1; done
  t1=$(date +%s.%N)
  [ "$fn $st" = "resilver finished" ] || { echo "bench: resilver ended $fn $st" >&2; exit 1; }
  R[$lay.rs]=$rs R[$lay.alloc]=$alloc
  R[$lay.rsrate]=$(python3 -c "print('%.0f' % ($rs / ($t1 - $t0) / 1e6))")
  R[$lay.rstime]=$(python3 -c "print('%.1f' % ($t1 - $t0))")
  R[$lay.rsex]=$(python3 -c "print('%.0f' % ($rex / ($t1 - $t0) / 1e6))")
  R[$lay.rswalk]=$(python3 -c "print('%.0f' % ($rrate / 1e6))")
  log "  replace: resilvered $rs of $alloc allocated bytes in ${R[$lay.rstime]} s, ${R[$lay.rsrate]} MB/s written, ${R[$lay.rsex]} MB/s of the allocation walked (the walk alone: ${R[$lay.rswalk]} MB/s)"
  berth pool sync p >/dev/null || exit 1
  drop_caches
  berth pool scrub p >/dev/null || exit 1
  while read -r fn st _ ex rate _ < <(scan); [ "$st" = scanning ]; do sleep 0.1; done
  [ "$fn $st" = "scrub finished" ] || { echo "bench: scrub ended $fn $st" >&2; exit 1; }
  R[$lay.scrub]=$(python3 -c "print('%.0f' % ($rate / 1e6))")
  log "  scrub: ${R[$lay.scrub]} MB/s over $ex bytes"
  berth pool destroy -f p >/dev/null || exit 1
  for l in "${loops[@]}"; do losetup -d "$l"; done
  loops=()
  rm -f "$W"/*.img
done
{
  echo "| layout | resilver: bytes copied / allocated (usable) | resilver written MB/s | resilver walked MB/s (walk alone) | scrub MB/s (same pool after) | resilver walked / scrub |"
  echo "|---|---|---|---|---|---|"
  for lay in $layouts; do
    echo "| $lay | ${R[$lay.rs]} / ${R[$lay.alloc]} | ${R[$lay.rsrate]} | ${R[$lay.rsex]} (${R[$lay.rswalk]}) | ${R[$lay.scrub]} | $(python3 -c "print('%.2f' % (${R[$lay.rsex]} / max(1, ${R[$lay.scrub]})))") |"
  done
  echo
  echo "- $(nproc) CPUs, files on $(df -T "$dir" | awk 'NR==2 {print $2}'), volume $size compression=off prefilled, page cache $([ $cold = 1 ] && echo dropped || echo warm) before each scan, $([ -n "$throttle" ] && echo "each device a loop device limited to $t_iops read IOPS and ${throttle#*:}/s of writes" || echo "pool files directly"), build $build"
} >"$W/table.md"
echo
echo "command: $cmdline"
echo
cat "$W/table.md"
