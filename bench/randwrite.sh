#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# berthd's CPU per 4 KiB random write with the sync side's autotrim out of
# the way: one berthd, a pool created with -o autotrim=off (16 GiB file), a
# volume of SIZE with the defaults (lz4, xxh3, 16K volblocksize), a
# sequential 1 MiB prefill, then fio (ioengine=nbd, iodepth 16) 4 KiB random
# writes for SECS seconds (+1 s ramp) and a `berth pool sync`.  Prints IOPS,
# berthd's CPU (user + system) per request including that sync, its context
# switches and minor faults per request, and the pool's allocated bytes.
#
#   bench/randwrite.sh [--runtime SECS] [--size SIZE] [--perf FILE] [--dir DIR]
#                      [-- FIO_OPTIONS...]
#
#   --perf FILE   also `perf record -g` berthd during the random writes
#   FIO_OPTIONS   extra fio options for both jobs, e.g. --refill_buffers
#                 (fresh random data for every write: nothing compresses)
# Environment: BERTH_BUILD (default ./build), BERTHD_ARGS.  For an A/B, run
# it alternately with two builds under the bench lock:
#   for b in OLD NEW OLD NEW; do BERTH_BUILD=$b flock /tmp/berth-bench.lock bench/randwrite.sh; done
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
secs=8
size=4G
perf_out=
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) secs=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --perf) perf_out=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) bench_help ;;
    *) bench_bad_option "$1" ;;
  esac
done
bench_needs fio-nbd curl python3 numfmt build
[ -z "$perf_out" ] || bench_needs perf
bench_workdir
# shellcheck disable=SC2086 # BERTHD_ARGS: extra options
bench_start_berthd ${BERTHD_ARGS:-}
bp=$berthd_pid
berth pool create -o autotrim=off -o size=$(( $(numfmt --from=iec "$size") * 4 )) p "$W/p.img" >/dev/null || exit 1
berth vol create -V "$size" p/d >/dev/null || exit 1
uri=$(berth vol uri p/d) || exit 1
bench_fill "$uri" "$size" "$@"
berth pool sync p >/dev/null
stat_sum() { # field of /proc/PID/stat (14+15: CPU ticks, 10: minor faults)
  awk -v f="$1" '{ n = split(f, a, "+"); s = 0; for (i = 1; i <= n; i++) s += $a[i]; print s }' "/proc/$bp/stat"
}
ctx() { cat /proc/$bp/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
c0=$(stat_sum 14+15) f0=$(stat_sum 10) x0=$(ctx)
pp=
if [ -n "$perf_out" ]; then
  perf record -g -o "$perf_out" -p $bp -- sleep "$secs" >/dev/null 2>&1 &
  pp=$!
fi
fio --name=randwrite --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k --iodepth=16 --size="$size" \
  --time_based --runtime="$secs" --ramp_time=1 --randrepeat=0 --norandommap --output-format=json "$@" \
  >"$W/fio.json" 2>"$W/fio.err" || { cat "$W/fio.err"; exit 1; }
berth pool sync p >/dev/null
c1=$(stat_sum 14+15) f1=$(stat_sum 10) x1=$(ctx)
[ -n "$pp" ] && wait $pp
s=$(bench/fio-summary.py "$W/fio.json" write) || exit 1
iops=${s%% *}
alloc=$(berth --json pool status p | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d["pools"][0] if "pools" in d else d; print(d["allocated"])')
python3 - "$iops" "$secs" "$(getconf CLK_TCK)" "$c0" "$c1" "$f0" "$f1" "$x0" "$x1" "$alloc" <<'EOF'
import sys
iops, secs, hz, c0, c1, f0, f1, x0, x1, alloc = (float(a) for a in sys.argv[1:])
n = iops * (secs + 1)  # the ramp second's requests count too
print("4K randwrite: %.0f IOPS, berthd CPU %.1f us/request, %.2f context switches and "
      "%.2f minor faults per request, pool allocated %d bytes"
      % (iops, (c1 - c0) / hz * 1e6 / n, (x1 - x0) / n, (f1 - f0) / n, alloc))
EOF
