#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Mirror random-read IOPS on modelled independent devices (issue 5 target:
# mirror >= 1.5x one device), not a timed test.  On a machine whose files all
# sit on one disk, each "device" is a loop device (--direct-io=on, readahead
# default: with 0 a buffered multi-page read becomes one I/O per page) over
# its own file, and berthd runs in a cgroup v1 blkio group that limits each
# loop device separately to IOPS read IOPS (blkio.throttle.read_iops_device),
# so every member behaves like a disk of its own with that many random reads
# per second.  Per layout (single device, 2-way mirror, 3-way mirror) the script creates the pool on the loop devices,
# a volume of SIZE (compression=off) prefilled with fio's incompressible
# buffers, syncs, drops the page cache and runs fio (nbd engine) 4 KiB random
# read, iodepth 16, RUNTIME s; it prints the IOPS and the ratio to single.
# Reads only: cgroup v1 does not throttle buffered writeback, which is how
# berthd writes its devices.  Needs root, cgroup v1 blkio, losetup.
#
#   bench/mirror-throttle.sh [--iops N] [--runtime S] [--size SIZE] [--dir DIR]
#                            [--layouts "single mirror2 mirror3"] [--readahead SECTORS]
# Environment: BERTH_BUILD (default ./build).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
runtime=10
size=1G
iops_limit=400
layouts="single mirror2 mirror3"
ra=
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --iops) iops_limit=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    --readahead) ra=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_option "$1" ;;
  esac
done
bench_needs fio-nbd curl python3 numfmt blockdev root loop build
bench_blkio_group
bench_workdir
bytes=$(numfmt --from=iec "$size")
bench_start_berthd --cgroup "$blkio_cg" --cache-size 64M

# new_loop FILE: a loop device ($LOOP), read-IOPS limited in the group
new_loop() {
  bench_loop "$1" $((bytes * 2))
  [ -n "$ra" ] && blockdev --setra "$ra" "$LOOP"
  bench_throttle "$LOOP" read_iops "$iops_limit"
}
# reads the group issued per device (to show that both members served reads)
serviced() { bench_group_stat io_serviced Read; }

declare -A R
for lay in $layouts; do
  case $lay in
    single) n=1 ;;
    mirror*) n=${lay#mirror} ;;
    *) echo "bench: unknown layout $lay" >&2; exit 2 ;;
  esac
  devs=()
  for i in $(seq 0 $((n - 1))); do
    new_loop "$W/d$i.img"
    devs+=("$LOOP")
  done
  R[ra]=$(blockdev --getra "${devs[0]}")
  log "== $lay on ${devs[*]} ($iops_limit read IOPS each)"
  if [ $n = 1 ]; then
    berth pool create -f p "${devs[0]}" >/dev/null || exit 1
  else
    berth pool create -f p mirror "${devs[@]}" >/dev/null || exit 1
  fi
  berth vol create -V "$size" -o compression=off p/v >/dev/null || exit 1
  uri=$(berth vol uri p/v)
  bench_fill "$uri" "$size"
  berth pool sync p >/dev/null || exit 1
  drop_caches
  before=$(serviced)
  fio --name=randread --ioengine=nbd --uri="$uri" --rw=randread --bs=4k --iodepth=16 \
      --numjobs=1 --size="$size" --time_based --runtime="$runtime" --ramp_time=1 \
      --randrepeat=0 --norandommap --output-format=json >"$W/fio-$lay.json" 2>"$W/fio-$lay.err" || {
    cat "$W/fio-$lay.err" >&2; echo "bench: fio on $lay failed" >&2; exit 1; }
  after=$(serviced)
  read -r iops _ < <("$top/bench/fio-summary.py" "$W/fio-$lay.json" read) || exit 1
  R[$lay]=$iops
  R[$lay.dev]=$(python3 -c "import sys; a=sys.argv[1].split(); b=sys.argv[2].split(); print(' / '.join(str(int(y)-int(x)) for x, y in zip(a, b)))" "$before" "$after")
  log "  4 KiB random read: $iops IOPS (device reads: ${R[$lay.dev]})"
  berth pool destroy -f p >/dev/null || exit 1
  bench_loops_free
  rm -f "$W"/d*.img
done

{
  echo "| layout | 4 KiB random read (IOPS) | vs single | reads per device during the run |"
  echo "|---|---|---|---|"
  for lay in $layouts; do
    echo "| $lay | ${R[$lay]} | $([ -n "${R[single]:-}" ] && ratio "${R[$lay]}" "${R[single]}") | ${R[$lay.dev]} |"
  done
  echo
  echo "- environment: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r), backing files on $(df -T "$dir" | awk 'NR==2 {print $2}') ($(df "$dir" | awk 'NR==2 {print $1}')), $(fio --version)"
  echo "- settings: each device a loop device (direct I/O, readahead ${R[ra]} sectors) over its own file, limited to $iops_limit read IOPS by cgroup v1 blkio throttling of berthd's group; fio ioengine=nbd 4 KiB randread numjobs=1 iodepth=16 ${runtime} s; volume $size compression=off prefilled; berthd --cache-size 64M; page cache dropped before each run"
} >"$W/table.md"
bench_report
