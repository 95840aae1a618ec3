#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sequential write throughput of a raidz1 of 4 on modelled independent
# devices (issue 5 target: raidz1 of 4 >= 2x one device), not a timed test.
# As in bench/mirror-throttle.sh, each "device" is a loop device
# (--direct-io=on) over its own file and berthd runs in a cgroup v1 blkio
# group; here the group limits each loop device separately to BPS bytes/s of
# writes (blkio.throttle.write_bps_device).  The limit holds for berthd's
# writes (a one-device pool runs at BPS, and the per-device byte counts of
# the group show every byte of the run): berthd starts the writeback of what
# it wrote itself (sync_file_range, then fdatasync at the txg's end), so the
# writes are issued by its threads, inside the group.  Per layout (single device, raidz1 of 4, 2-way mirror for
# reference) the script creates the pool on the loop devices, a volume of
# SIZE (compression=off), writes it once sequentially with fio (nbd engine,
# 1 MiB, iodepth 16) and then `berth pool sync`; the rate is SIZE over the
# time of both (what reached the devices, not what sits in berthd's dirty
# buffers).  It prints MB/s, the ratio to single, and the bytes each device
# took during the run (blkio.throttle.io_service_bytes).
# Needs root, cgroup v1 blkio, losetup; exits 77 (skip) without them.
#
#   bench/raidz-throttle.sh [--bps RATE] [--size SIZE] [--dir DIR]
#                           [--layouts "single raidz4 mirror2"]
# RATE and SIZE take k/M/G suffixes (powers of 1024).  Environment:
# BERTH_BUILD (default ./build).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
size=512M
bps=20M
layouts="single raidz4 mirror2"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --bps) bps=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_option "$1" ;;
  esac
done
bench_needs fio-nbd curl python3 numfmt root loop build
bench_blkio_group
bench_workdir
bytes=$(numfmt --from=iec "$size")
limit=$(numfmt --from=iec "$bps")
bench_start_berthd --cgroup "$blkio_cg" --cache-size 64M

# written bytes the group issued per device
written() { bench_group_stat io_service_bytes Write; }
now() { date +%s.%N; }

declare -A R
for lay in $layouts; do
  case $lay in
    single) n=1; spec= ;;
    raidz4) n=4; spec=raidz1 ;;
    raidz*) n=${lay#raidz}; spec=raidz1 ;;
    mirror*) n=${lay#mirror}; spec=mirror ;;
    *) echo "bench: unknown layout $lay" >&2; exit 2 ;;
  esac
  for i in $(seq 0 $((n - 1))); do
    bench_loop "$W/d$i.img" $((bytes * 2))
    bench_throttle "$LOOP" write_bps "$limit"
  done
  log "== $lay on ${loops[*]} ($bps/s of writes each)"
  berth pool create -f p $spec "${loops[@]}" >/dev/null || exit 1
  berth vol create -V "$size" -o compression=off p/v >/dev/null || exit 1
  uri=$(berth vol uri p/v)
  berth pool sync p >/dev/null || exit 1
  before=$(written)
  t0=$(now)
  fio --name=seqwrite --ioengine=nbd --uri="$uri" --rw=write --bs=1M --iodepth=16 \
      --numjobs=1 --size="$size" --output-format=json >"$W/fio-$lay.json" 2>"$W/fio-$lay.err" || {
    cat "$W/fio-$lay.err" >&2; echo "bench: fio on $lay failed" >&2; exit 1; }
  t1=$(now)
  berth pool sync p >/dev/null || exit 1
  t2=$(now)
  after=$(written)
  read -r _ fbw _ < <("$top/bench/fio-summary.py" "$W/fio-$lay.json" write) || exit 1
  R[$lay]=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2])) / 1e6))" "$bytes" "$t0" "$t2")
  R[$lay.fio]=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[1]) / 1e6))" "$fbw")
  R[$lay.sync]=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t1" "$t2")
  R[$lay.dev]=$(python3 -c "import sys; a=sys.argv[1].split(); b=sys.argv[2].split(); print(' / '.join('%d' % ((int(y)-int(x)) >> 20) for x, y in zip(a, b)))" "$before" "$after")
  log "  1 MiB sequential write: ${R[$lay]} MB/s to the devices (fio alone ${R[$lay.fio]} MB/s, final sync ${R[$lay.sync]} s; MiB per device: ${R[$lay.dev]})"
  berth pool destroy -f p >/dev/null || exit 1
  bench_loops_free
  rm -f "$W"/d*.img
done

{
  echo "| layout | 1 MiB seq write incl. sync (MB/s) | vs single | fio alone (MB/s) | final sync (s) | MiB written per device |"
  echo "|---|---|---|---|---|---|"
  for lay in $layouts; do
    echo "| $lay | ${R[$lay]} | $([ -n "${R[single]:-}" ] && ratio "${R[$lay]}" "${R[single]}") | ${R[$lay.fio]} | ${R[$lay.sync]} | ${R[$lay.dev]} |"
  done
  echo
  echo "- environment: $(nproc) CPUs, kernel $(uname -r), backing files on $(df -T "$dir" | awk 'NR==2 {print $2}'), $(fio --version)"
  echo "- settings: each device a loop device (direct I/O) over its own file, limited to $bps/s of writes by cgroup v1 blkio throttling of berthd's group; fio ioengine=nbd 1 MiB write iodepth=16 over a $size volume (compression=off) then berth pool sync; berthd --cache-size 64M"
} >"$W/table.md"
bench_report
