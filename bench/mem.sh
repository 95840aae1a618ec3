#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# berthd's peak resident memory (VmHWM) against its memory limit: one berthd
# with --cache-size LIMIT, a 4 GiB volume in a 16 GiB pool, a sequential 1 MiB
# prefill of the whole volume, then fio (ioengine=nbd, iodepth 16) 4 KiB
# random write, 4 KiB random read, 1 MiB sequential write and read for SECS
# seconds each; VmHWM and VmRSS after each phase, and the verdict.
#
#   bench/mem.sh [--cache-size LIMIT] [--runtime SECS] [--dir DIR]
#
# Environment: BERTH_BUILD (default ./build).
set -u
set -o pipefail
cd "$(dirname "$0")/.."
build=${BERTH_BUILD:-$PWD/build}
limit=4G
secs=6
dir=/var/tmp/berth-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --cache-size) limit=$2; shift 2 ;;
    --runtime) secs=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "mem: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
command -v fio >/dev/null || { echo "mem: fio is not installed" >&2; exit 1; }
mkdir -p "$dir"
W=$(mktemp -d "$dir/mem.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
"$build/src/daemon/berthd" --state-dir "$W/state" --run-dir "$W/run" --cache-size "$limit" \
  >"$W/berthd.log" 2>&1 &
pid=$!
export BERTH_SOCKET=$W/run/berthd.sock
for _ in $(seq 200); do
  curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$W/berthd.log"; exit 1; }
  sleep 0.05
done
berth() { "$build/src/cli/berth" "$@"; }
berth pool create -o size=16G m "$W/m.img" >/dev/null || exit 1
berth vol create -V 4G m/v >/dev/null || exit 1
uri=$(berth vol uri m/v) || exit 1
status() { awk '/VmHWM/ {h = $2} /VmRSS/ {r = $2} END {printf "peak %d MiB, now %d MiB", h / 1024, r / 1024}' "/proc/$pid/status"; }
run() {
  fio --name=m --ioengine=nbd --uri="$uri" --iodepth=16 --size=4G "$@" >"$W/fio.out" 2>&1 ||
    { cat "$W/fio.out"; exit 1; }
}
run --rw=write --bs=1M
echo "prefill 4 GiB:           $(status)"
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
