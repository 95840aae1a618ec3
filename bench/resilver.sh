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
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
size=1G
layouts="mirror2 raidz4"
warm=0
throttle=
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    --warm) warm=1; shift ;;
    --throttle) throttle=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_option "$1" ;;
  esac
done
bench_needs fio-nbd curl python3 numfmt build
cold=1
if [ $warm = 1 ]; then
  cold=0
elif ! bench_cold_ok; then
  echo "$bench_name: not root: the page cache is not dropped (warm figures)" >&2
  cold=0
fi
if [ -n "$throttle" ]; then
  bench_needs root loop
  t_iops=${throttle%%:*}
  t_bps=$(numfmt --from=iec "${throttle#*:}")
  bench_blkio_group
fi
bench_workdir
bytes=$(numfmt --from=iec "$size")
cold_drop() { [ $cold = 1 ] && drop_caches; return 0; }
scan() { berth --json pool status p | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["scan"]; print(s["func"], s["state"], s["resilvered"], s["examined"], s["rate"], d["allocated"])'; }

# dev FILE: the path the pool uses ($DEV): the file, or a throttled loop
# device over it
dev() {
  truncate -s $((bytes * 2)) "$1" || exit 1
  DEV=$1
  [ -n "$throttle" ] || return 0
  bench_loop "$1" $((bytes * 2))
  bench_throttle "$LOOP" read_iops "$t_iops"
  bench_throttle "$LOOP" write_bps "$t_bps"
  DEV=$LOOP
}
if [ -n "$throttle" ]; then
  bench_start_berthd --cgroup "$blkio_cg" --cache-size 64M
else
  bench_start_berthd --cache-size 64M
fi

declare -A R
for lay in $layouts; do
  case $lay in
    mirror*) n=${lay#mirror}; spec=mirror ;;
    raidz*) n=${lay#raidz}; spec=raidz1 ;;
    *) echo "bench: unknown layout $lay" >&2; exit 2 ;;
  esac
  devs=()
  for i in $(seq 0 $((n - 1))); do
    dev "$W/d$i.img"
    devs+=("$DEV")
  done
  dev "$W/new.img"
  newdev=$DEV
  log "== $lay"
  berth pool create -f p $spec "${devs[@]}" >/dev/null || exit 1
  berth vol create -V "$size" -o compression=off p/v >/dev/null || exit 1
  bench_fill "$(berth vol uri p/v)" "$size"
  berth pool sync p >/dev/null || exit 1
  cold_drop
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
  cold_drop
  berth pool scrub p >/dev/null || exit 1
  while read -r fn st _ ex rate _ < <(scan); [ "$st" = scanning ]; do sleep 0.1; done
  [ "$fn $st" = "scrub finished" ] || { echo "bench: scrub ended $fn $st" >&2; exit 1; }
  R[$lay.scrub]=$(python3 -c "print('%.0f' % ($rate / 1e6))")
  log "  scrub: ${R[$lay.scrub]} MB/s over $ex bytes"
  berth pool destroy -f p >/dev/null || exit 1
  bench_loops_free
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
bench_report
