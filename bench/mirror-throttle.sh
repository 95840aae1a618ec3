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
set -u
set -o pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${BERTH_BUILD:-$top/build}
runtime=10
size=1G
iops_limit=400
layouts="single mirror2 mirror3"
ra=
dir=${BENCH_DIR:-/var/tmp/berth-bench}
cmdline="bench/mirror-throttle.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --iops) iops_limit=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    --readahead) ra=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
for c in fio curl python3 numfmt losetup blockdev; do
  command -v $c >/dev/null || { echo "bench: $c is not installed" >&2; exit 1; }
done
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "bench: this fio has no nbd engine" >&2; exit 1; }
[ -x "$build/src/daemon/berthd" ] || { echo "bench: no berthd in $build (make)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench: needs root (loop devices, cgroups, drop_caches)" >&2; exit 1; }
blkroot=/sys/fs/cgroup/blkio
[ -f $blkroot/blkio.throttle.read_iops_device ] || { echo "bench: no cgroup v1 blkio throttling" >&2; exit 1; }

mkdir -p "$dir"
W=$(mktemp -d "$dir/mthrottle.XXXXXX")
bytes=$(numfmt --from=iec "$size")
berthd_pid=
cg=$blkroot/berth-throttle-$$
loops=()
cleanup() {
  [ -n "$berthd_pid" ] && { kill "$berthd_pid" 2>/dev/null; wait "$berthd_pid" 2>/dev/null; }
  local l
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
  [ -d "$cg" ] && rmdir "$cg" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }
berth() { "$build/src/cli/berth" "$@"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

mkdir "$cg" || exit 1
export BERTH_SOCKET=$W/run/berthd.sock
# berthd (and so all its threads) starts inside the blkio group
( echo $BASHPID >"$cg/cgroup.procs"
  exec "$build/src/daemon/berthd" --state-dir "$W/state" --run-dir "$W/run" --cache-size 64M ) >"$W/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 200); do
  curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1 && break
  kill -0 "$berthd_pid" 2>/dev/null || { cat "$W/berthd.log"; echo "bench: berthd died" >&2; exit 1; }
  sleep 0.05
done
grep -q "^$berthd_pid\$" "$cg/cgroup.procs" || { echo "bench: berthd is not in $cg" >&2; exit 1; }

# new_loop FILE -> /dev/loopN, read-IOPS limited in the group
new_loop() {
  truncate -s $((bytes * 2)) "$1" || exit 1
  local l
  l=$(losetup -f --show --direct-io=on "$1") || exit 1
  loops+=("$l")
  [ -n "$ra" ] && blockdev --setra "$ra" "$l"
  echo "$(lsblk -dno MAJ:MIN "$l" | tr -d ' ') $iops_limit" >"$cg/blkio.throttle.read_iops_device" || exit 1
  echo "$l"
}
free_loops() {
  local l
  for l in "${loops[@]}"; do
    echo "$(lsblk -dno MAJ:MIN "$l" | tr -d ' ') 0" >"$cg/blkio.throttle.read_iops_device" 2>/dev/null
    losetup -d "$l"
  done
  loops=()
  rm -f "$W"/d*.img
}
# reads the group issued per device (to show that both members served reads)
serviced() {
  local l mm out=
  for l in "${loops[@]}"; do
    mm=$(lsblk -dno MAJ:MIN "$l" | tr -d ' ')
    out+="$(awk -v d="$mm" '$1 == d && $2 == "Read" {print $3}' "$cg/blkio.throttle.io_serviced") "
  done
  echo "$out"
}

declare -A R
for lay in $layouts; do
  case $lay in
    single) n=1 ;;
    mirror*) n=${lay#mirror} ;;
    *) echo "bench: unknown layout $lay" >&2; exit 2 ;;
  esac
  devs=()
  for i in $(seq 0 $((n - 1))); do
    d=$(new_loop "$W/d$i.img") && [ -n "$d" ] || exit 1
    devs+=("$d")
  done
  # new_loop ran in a subshell: record the devices here for the cleanup
  loops=("${devs[@]}")
  R[ra]=$(blockdev --getra "${devs[0]}")
  log "== $lay on ${devs[*]} ($iops_limit read IOPS each)"
  if [ $n = 1 ]; then
    berth pool create -f p "${devs[0]}" >/dev/null || exit 1
  else
    berth pool create -f p mirror "${devs[@]}" >/dev/null || exit 1
  fi
  berth vol create -V "$size" -o compression=off p/v >/dev/null || exit 1
  uri=$(berth vol uri p/v)
  fio --name=prefill --ioengine=nbd --uri="$uri" --rw=write --bs=1M --iodepth=16 \
      --size="$size" >/dev/null 2>"$W/fio-prefill.err" || { cat "$W/fio-prefill.err" >&2; exit 1; }
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
  free_loops
done

ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print('%.2fx' % (a / b) if b else 'n/a')" "$1" "$2"; }
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
echo
echo "command: $cmdline"
echo
cat "$W/table.md"
mkdir -p "$dir/results"
cp "$W/table.md" "$dir/results/mirror-throttle-$(date +%Y%m%d-%H%M%S).md"
