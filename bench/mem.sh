#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# berthd's peak resident memory (VmHWM) against its memory limit: one berthd
# with --cache-size LIMIT, a volume of SIZE (default 4 GiB) in a pool 4 times
# that, a sequential 1 MiB prefill of the whole volume, then fio
# (ioengine=nbd, iodepth 16) 4 KiB random write, 4 KiB random read, 1 MiB
# sequential write and read for SECS seconds each; VmHWM and VmRSS after each phase, and the verdict.
#
#   bench/mem.sh [--cache-size LIMIT] [--runtime SECS] [--size SIZE] [--dir DIR]
#
# Environment: BERTH_BUILD (default ./build).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
limit=4G
secs=6
size=4G
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-size) limit=$2; shift 2 ;;
    --runtime) secs=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_option "$1" ;;
  esac
done
bench_needs fio-nbd curl numfmt build
bench_workdir
bench_start_berthd --cache-size "$limit"
pid=$berthd_pid
berth pool create -o size=$(( $(numfmt --from=iec "$size") * 4 )) m "$W/m.img" >/dev/null || exit 1
berth vol create -V "$size" m/v >/dev/null || exit 1
uri=$(berth vol uri m/v) || exit 1
status() { awk '/VmHWM/ {h = $2} /VmRSS/ {r = $2} END {printf "peak %d MiB, now %d MiB", h / 1024, r / 1024}' "/proc/$pid/status"; }
run() {
  fio --name=m --ioengine=nbd --uri="$uri" --iodepth=16 --size="$size" "$@" >"$W/fio.out" 2>&1 ||
    { cat "$W/fio.out"; exit 1; }
}
run --rw=write --bs=1M
printf '%-24s %s\n' "prefill $size:" "$(status)"
for w in randwrite:4k randread:4k write:1M read:1M; do
  run --rw="${w%:*}" --bs="${w#*:}" --time_based --runtime="$secs"
  printf '%-24s %s\n' "${w%:*} ${w#*:}:" "$(status)"
done
berth pool sync m >/dev/null
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
lim=$(( $(numfmt --from=iec "$limit") / 1024 ))
echo "$(grep -o 'memory limit.*' "$W/berthd.log" | head -1)"
if [ "$hwm" -le "$lim" ]; then
  echo "peak RSS $((hwm / 1024)) MiB <= limit $((lim / 1024)) MiB"
else
  echo "peak RSS $((hwm / 1024)) MiB > limit $((lim / 1024)) MiB: OVER"
  exit 1
fi
