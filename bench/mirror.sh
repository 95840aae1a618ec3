#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Mirror benchmarks (issue 5 targets), not a timed test.  One berthd; a pool
# on one file ("single") and a 2-way mirror of two files ("mirror"), all in the
# same directory (so on the same disk); a volume of SIZE (compression=off,
# fio's incompressible buffers) in each, prefilled sequentially.  Per pool:
#
#  seq-write   fio 1 MiB sequential write, iodepth 16, RUNTIME s (+ the txg
#              sync it leaves behind), MB/s
#  rand-read   fio 4 KiB random read, iodepth 16, RUNTIME s, IOPS, twice:
#              "warm" (the files in the page cache: CPU-bound) and "cold"
#              (page cache dropped first, and berthd in a memory cgroup whose
#              limit, MEMCG, is well below the files' size, so reads keep
#              going to the disk; berthd --cache-size 64M)
#  seq-read    fio 1 MiB sequential read of the whole volume once, cold, MB/s
#  scrub       `berth pool scrub`, cold: the scan's rate (examined bytes / scan
#              time, from `berth --json pool status`), MB/s
#  resilver    mirror only: `berth pool replace` of a member by a new file,
#              the bytes the resilver copied vs the pool's allocated bytes and
#              its rate (copied bytes / wall time); then a member offline while
#              fio writes 256 MiB, online: the bytes the DTL resilver copied
#
# and prints the ratios: mirror/single random-read IOPS (target >= 1.5),
# mirror/single sequential write, scrub rate / sequential read (target >= 0.8)
# for each pool.  Needs root for the cold runs (drop_caches, cgroup); without
# root only the warm figures are measured.
#
#   bench/mirror.sh [--runtime S] [--size SIZE] [--dir DIR] [--memcg SIZE]
# Environment: BERTH_BUILD (default ./build).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
runtime=15
size=4G
memcg=1G
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --memcg) memcg=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_option "$1" ;;
  esac
done
bench_needs fio-nbd curl python3 numfmt build
cold=1
if ! bench_cold_ok; then
  echo "$bench_name: not root: cold-cache figures skipped" >&2
  cold=0
fi
bench_workdir
bytes=$(numfmt --from=iec "$size")
cg=
bench_start_berthd --cache-size 64M

# a memory cgroup (v1 or v2) for berthd during the cold runs: the page cache
# its reads fill is charged to it and stays below the limit
if [ $cold = 1 ]; then
  if [ -d /sys/fs/cgroup/memory ] && mkdir "/sys/fs/cgroup/memory/berth-bench-$$" 2>/dev/null; then
    cg=/sys/fs/cgroup/memory/berth-bench-$$
    cgroups+=("$cg")
    numfmt --from=iec "$memcg" >"$cg/memory.limit_in_bytes"
  elif [ -f /sys/fs/cgroup/cgroup.controllers ] && mkdir "/sys/fs/cgroup/berth-bench-$$" 2>/dev/null; then
    cg=/sys/fs/cgroup/berth-bench-$$
    cgroups+=("$cg")
    numfmt --from=iec "$memcg" >"$cg/memory.max"
  else
    log "no memory cgroup available: cold reads only start with an empty page cache"
  fi
fi
cg_enter() { [ -n "$cg" ] && echo "$berthd_pid" >"$cg/cgroup.procs"; return 0; }
cg_leave() {
  [ -n "$cg" ] || return 0
  local root=${cg%/*}
  echo "$berthd_pid" >"$root/cgroup.procs"
}

declare -A R
# fio_job POOL NAME RW BS [timed] -> prints "iops bw_bytes_per_s"
fio_job() {
  local pool=$1 name=$2 rw=$3 bs=$4 timed=${5:-1}
  local args=(--name="$name" --ioengine=nbd --uri="$(berth vol uri "$pool/v")" --rw="$rw" --bs="$bs"
              --iodepth=16 --numjobs=1 --size="$size" --output-format=json --randrepeat=0 --norandommap)
  [ "$timed" = 1 ] && args+=(--time_based --runtime="$runtime" --ramp_time=1)
  fio "${args[@]}" >"$W/fio-$pool-$name.json" 2>"$W/fio-$pool-$name.err" || {
    cat "$W/fio-$pool-$name.err" >&2; echo "bench: fio $name on $pool failed" >&2; exit 1; }
  local d=write
  case "$rw" in read|randread) d=read ;; esac
  "$top/bench/fio-summary.py" "$W/fio-$pool-$name.json" $d || exit 1
}

scan_json() {
  berth --json pool status "$1" | python3 -c 'import json,sys; s=json.load(sys.stdin)["scan"]; print(s["state"], s["examined"], s["rate"])'
}

for pool in single mirror; do
  log "== $pool"
  psize=$((bytes * 4))
  if [ $pool = single ]; then
    berth pool create -o size=$psize single "$W/s0.img" >/dev/null || exit 1
  else
    berth pool create -o size=$psize mirror mirror "$W/m0.img" "$W/m1.img" >/dev/null || exit 1
  fi
  berth vol create -V "$size" -o compression=off "$pool/v" >/dev/null || exit 1
  t0=$(date +%s.%N)
  fio_job $pool prefill write 1M 0 >/dev/null
  berth pool sync $pool >/dev/null
  t1=$(date +%s.%N)
  R[$pool.prefill]=$(python3 -c "print('%.0f' % ($bytes / ($t1 - $t0) / 1e6))")
  log "  prefill $size: ${R[$pool.prefill]} MB/s (incl. the final sync)"

  read -r _ bw _ < <(fio_job $pool seq-write write 1M)
  t0=$(date +%s.%N); berth pool sync $pool >/dev/null; t1=$(date +%s.%N)
  R[$pool.seqwrite]=$(python3 -c "print('%.0f' % ($bw / 1e6))")
  log "  seq write 1M: ${R[$pool.seqwrite]} MB/s (then a $(python3 -c "print('%.1f' % ($t1 - $t0))") s sync)"

  read -r iops _ < <(fio_job $pool randread-warm randread 4k)
  R[$pool.rr_warm]=$iops
  log "  rand read 4K, warm: $iops IOPS"

  if [ $cold = 1 ]; then
    drop_caches; cg_enter
    read -r iops _ < <(fio_job $pool randread-cold randread 4k)
    cg_leave
    R[$pool.rr_cold]=$iops
    log "  rand read 4K, cold: $iops IOPS"

    drop_caches; cg_enter
    t0=$(date +%s.%N)
    read -r _ bw _ < <(fio_job $pool seq-read read 1M 0)
    cg_leave
    R[$pool.seqread]=$(python3 -c "print('%.0f' % ($bw / 1e6))")
    log "  seq read 1M (whole volume, cold): ${R[$pool.seqread]} MB/s"

    drop_caches; cg_enter
    berth pool scrub $pool >/dev/null || exit 1
    while read -r st ex rate < <(scan_json $pool); [ "$st" = scanning ]; do sleep 0.2; done
    cg_leave
    [ "$st" = finished ] || { echo "bench: scrub of $pool ended $st" >&2; exit 1; }
    R[$pool.scrub]=$(python3 -c "print('%.0f' % ($rate / 1e6))")
    R[$pool.scrub_bytes]=$ex
    log "  scrub (cold): ${R[$pool.scrub]} MB/s over $ex bytes"
  fi
  if [ $pool = mirror ]; then
    alloc=$(berth --json pool status mirror | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated"])')
    resilver_wait() {
      local st
      while st=$(berth --json pool status mirror | python3 -c 'import json,sys; s=json.load(sys.stdin)["scan"]; print(s["func"], s["state"], s["resilvered"])'); [[ "$st" == *" scanning "* ]]; do sleep 0.1; done
      echo "$st"
    }
    t0=$(date +%s.%N)
    berth pool replace mirror "$W/m1.img" "$W/m2.img" >/dev/null || exit 1
    read -r fn st rs < <(resilver_wait)
    t1=$(date +%s.%N)
    [ "$fn $st" = "resilver finished" ] || { echo "bench: resilver ended $fn $st" >&2; exit 1; }
    R[rs.bytes]=$rs R[rs.alloc]=$alloc
    R[rs.rate]=$(python3 -c "print('%.0f' % ($rs / ($t1 - $t0) / 1e6))")
    log "  replace: resilvered $rs of $alloc allocated bytes, ${R[rs.rate]} MB/s"
    berth pool offline mirror "$W/m0.img" >/dev/null || exit 1
    fio --name=dtl --ioengine=nbd --uri="$(berth vol uri mirror/v)" --rw=randwrite --bs=16k \
        --iodepth=16 --size=256M --randrepeat=0 >/dev/null 2>&1 || { echo "bench: fio dtl" >&2; exit 1; }
    berth pool sync mirror >/dev/null
    berth pool online mirror "$W/m0.img" >/dev/null || exit 1
    read -r fn st rs < <(resilver_wait)
    R[dtl.bytes]=$rs
    R[dtl.alloc]=$(berth --json pool status mirror | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated"])')
    log "  offline, 256 MiB written, online: resilvered $rs of ${R[dtl.alloc]} allocated bytes"
  fi
  # the files are gone before the next pool is filled
  berth pool destroy -f $pool >/dev/null || exit 1
  rm -f "$W"/s0.img "$W"/m?.img
done

{
  echo "| measure | single | mirror | mirror/single |"
  echo "|---|---|---|---|"
  echo "| sequential prefill of $size, 1 MiB (MB/s, incl. final sync) | ${R[single.prefill]} | ${R[mirror.prefill]} | $(ratio "${R[mirror.prefill]}" "${R[single.prefill]}") |"
  echo "| 1 MiB sequential write, ${runtime} s (MB/s) | ${R[single.seqwrite]} | ${R[mirror.seqwrite]} | $(ratio "${R[mirror.seqwrite]}" "${R[single.seqwrite]}") |"
  echo "| 4 KiB random read, warm page cache (IOPS) | ${R[single.rr_warm]} | ${R[mirror.rr_warm]} | $(ratio "${R[mirror.rr_warm]}" "${R[single.rr_warm]}") |"
  if [ $cold = 1 ]; then
    echo "| 4 KiB random read, cold (IOPS) | ${R[single.rr_cold]} | ${R[mirror.rr_cold]} | $(ratio "${R[mirror.rr_cold]}" "${R[single.rr_cold]}") |"
    echo "| 1 MiB sequential read, whole volume, cold (MB/s) | ${R[single.seqread]} | ${R[mirror.seqread]} | $(ratio "${R[mirror.seqread]}" "${R[single.seqread]}") |"
    echo "| scrub rate, cold (MB/s of allocated data) | ${R[single.scrub]} | ${R[mirror.scrub]} | $(ratio "${R[mirror.scrub]}" "${R[single.scrub]}") |"
    echo "| scrub rate / sequential read | $(ratio "${R[single.scrub]}" "${R[single.seqread]}") | $(ratio "${R[mirror.scrub]}" "${R[mirror.seqread]}") | |"
  fi
  echo
  echo "| resilver (mirror) | bytes copied | allocated | copied/allocated |"
  echo "|---|---|---|---|"
  echo "| replace a member by a new file | ${R[rs.bytes]} | ${R[rs.alloc]} | $(ratio "${R[rs.bytes]}" "${R[rs.alloc]}") (${R[rs.rate]} MB/s) |"
  echo "| member offline while 256 MiB written, online (DTL) | ${R[dtl.bytes]} | ${R[dtl.alloc]} | $(ratio "${R[dtl.bytes]}" "${R[dtl.alloc]}") |"
  echo
  echo "- environment: $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r), files on $(df -T "$dir" | awk 'NR==2 {print $2}') ($(df "$dir" | awk 'NR==2 {print $1}')), $(fio --version)"
  echo "- settings: fio ioengine=nbd numjobs=1 iodepth=16, volume $size compression=off, pools 4x the volume; berthd --cache-size 64M; cold = page cache dropped before the run$([ -n "$cg" ] && echo " and berthd in a memory cgroup limited to $memcg")"
} >"$W/table.md"
bench_report
