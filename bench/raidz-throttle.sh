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
set -u
set -o pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${BERTH_BUILD:-$top/build}
size=512M
bps=20M
layouts="single raidz4 mirror2"
dir=${BENCH_DIR:-/var/tmp/berth-bench}
cmdline="bench/raidz-throttle.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --bps) bps=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
skip() { echo "bench: skipped: $*" >&2; exit 77; }
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
for c in fio curl python3 numfmt losetup lsblk; do
  command -v $c >/dev/null || skip "$c is not installed"
done
fio --enghelp 2>/dev/null | grep -qw nbd || skip "this fio has no nbd engine"
[ -x "$build/src/daemon/berthd" ] || { echo "bench: no berthd in $build (make)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root (loop devices, cgroups)"
blkroot=/sys/fs/cgroup/blkio
[ -f $blkroot/blkio.throttle.write_bps_device ] || skip "no cgroup v1 blkio throttling"
[ -e /dev/loop-control ] || skip "no loop devices (/dev/loop-control)"

mkdir -p "$dir"
W=$(mktemp -d "$dir/rzthrottle.XXXXXX")
bytes=$(numfmt --from=iec "$size")
limit=$(numfmt --from=iec "$bps")
berthd_pid=
cg=$blkroot/berth-rzthrottle-$$
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

# a loop device must be creatable here (containers often have none)
probe=$W/probe.img
truncate -s 16M "$probe"
l=$(losetup -f --show --direct-io=on "$probe" 2>/dev/null) || skip "cannot create loop devices"
losetup -d "$l"
rm -f "$probe"

mkdir "$cg" || skip "cannot create a blkio cgroup"
export BERTH_SOCKET=$W/run/berthd.sock
( echo $BASHPID >"$cg/cgroup.procs"
  exec "$build/src/daemon/berthd" --state-dir "$W/state" --run-dir "$W/run" --cache-size 64M ) >"$W/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 200); do
  curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1 && break
  kill -0 "$berthd_pid" 2>/dev/null || { cat "$W/berthd.log"; echo "bench: berthd died" >&2; exit 1; }
  sleep 0.05
done
grep -q "^$berthd_pid\$" "$cg/cgroup.procs" || { echo "bench: berthd is not in $cg" >&2; exit 1; }

mm() { lsblk -dno MAJ:MIN "$1" | tr -d ' '; }
# written bytes the group issued per device, in MiB
written() {
  local l out=
  for l in "${loops[@]}"; do
    out+="$(awk -v d="$(mm "$l")" '$1 == d && $2 == "Write" {print $3}' "$cg/blkio.throttle.io_service_bytes") "
  done
  echo "$out"
}
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
  loops=()
  for i in $(seq 0 $((n - 1))); do
    truncate -s $((bytes * 2)) "$W/d$i.img" || exit 1
    d=$(losetup -f --show --direct-io=on "$W/d$i.img") || exit 1
    loops+=("$d")
    echo "$(mm "$d") $limit" >"$cg/blkio.throttle.write_bps_device" || exit 1
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
  for l in "${loops[@]}"; do
    echo "$(mm "$l") 0" >"$cg/blkio.throttle.write_bps_device" 2>/dev/null
    losetup -d "$l"
  done
  loops=()
  rm -f "$W"/d*.img
done

ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print('%.2fx' % (a / b) if b else 'n/a')" "$1" "$2"; }
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
echo
echo "command: $cmdline"
echo
cat "$W/table.md"
mkdir -p "$dir/results"
cp "$W/table.md" "$dir/results/raidz-throttle-$(date +%Y%m%d-%H%M%S).md"
