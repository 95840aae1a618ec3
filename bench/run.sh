#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Benchmarks: fio over NBD (ioengine=nbd, 1 job, iodepth 16) on a 4 GiB disk
# served by
#   berth-lz4   berthd, a volume with the defaults (lz4 + xxh3 checksums)
#   berth-off   berthd, a volume with compression=off (checksums stay on)
#   berth-enc   berthd, the defaults plus encryption=aes-256-gcm (raw key file);
#               not in the default list: compare it with berth-lz4 in one run
#   qsd-raw     qemu-storage-daemon exporting a raw file
#   qsd-qcow2   qemu-storage-daemon exporting a qcow2 file
#   nbdkit      nbdkit's file plugin
# all on files in the same directory, in the same run.  Workloads: 4 KiB
# random write, 4 KiB random read, 1 MiB sequential write, 1 MiB sequential
# read, each for RUNTIME seconds after a full sequential prefill (so reads hit
# real data, not holes).  Then berthd's peak RSS and the metadata overhead of
# 1 GiB of incompressible data.
#
#   bench/run.sh [--runtime S] [--size SIZE] [--targets "a b ..."] [--dir DIR]
#                [--repeat N] [--workloads "w ..."] [--durable] [--doc]
#
#   --repeat N  N rounds, each running every target back to back; the tables
#               show medians (a shared machine's load moves single runs 2x)
#   --workloads only these of randwrite-4k randread-4k write-1m read-1m (the
#               prefill always runs; default all four, in that order)
#   --durable   after write-1m, a write-1m-durable line: the same 1 MiB
#               sequential writes with fio --end_fsync=1, the figure being
#               bytes written / wall time of the whole job including the
#               final flush (what is on the disk, not in a page cache)
#   --doc       also write the results into docs/PERFORMANCE.md
# berthd's log of the run is kept next to the results (NAME.berthd.log).
# Environment: BERTH_BUILD (default ./build), BERTHD_ARGS (extra berthd options),
# BENCH_POOL_ARGS (extra "berth pool create" options, e.g. "-o autotrim=off").
set -u
set -o pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${BERTH_BUILD:-$top/build}
runtime=${BENCH_RUNTIME:-15}
size=${BENCH_SIZE:-4G}
targets=${BENCH_TARGETS:-"berth-lz4 berth-off qsd-raw qsd-qcow2 nbdkit"}
dir=${BENCH_DIR:-/var/tmp/berth-bench}
repeat=${BENCH_REPEAT:-1}
workloads=${BENCH_WORKLOADS:-"randwrite-4k randread-4k write-1m read-1m"}
durable=0
doc=0
cmdline="bench/run.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --durable) durable=1; shift ;;
    --doc) doc=1; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
for c in fio qemu-storage-daemon qemu-img nbdkit nbdcopy curl; do
  command -v $c >/dev/null || { echo "bench: $c is not installed (make deps)" >&2; exit 1; }
done
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "bench: this fio has no nbd engine" >&2; exit 1; }
[ -x "$build/src/daemon/berthd" ] || { echo "bench: no berthd in $build (make)" >&2; exit 1; }

mkdir -p "$dir"
W=$(mktemp -d "$dir/run.XXXXXX")
results=$W/results
: >"$results"
pids=()
berthd_pid=
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }

# ---- servers ----
start_berthd() {
  export BERTH_SOCKET=$W/run/berthd.sock
  # shellcheck disable=SC2086 # BERTHD_ARGS: extra options, e.g. "--cache-size 1G"
  "$build/src/daemon/berthd" --state-dir "$W/state" --run-dir "$W/run" ${BERTHD_ARGS:-} >"$W/berthd.log" 2>&1 &
  berthd_pid=$!
  pids+=("$berthd_pid")
  local i
  for i in $(seq 200); do
    curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1 && return 0
    kill -0 "$berthd_pid" 2>/dev/null || { cat "$W/berthd.log"; echo "bench: berthd died" >&2; exit 1; }
    sleep 0.05
  done
  echo "bench: berthd did not start" >&2; exit 1
}
berth() { "$build/src/cli/berth" "$@"; }

wait_sock() {
  local i
  for i in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done
  echo "bench: no socket $1" >&2; exit 1
}

# the machine's page allocations (/proc/vmstat) and the server's minor page
# faults so far: per GiB moved they show page-cache and anonymous-memory churn
vm_counts() {
  echo "$(awk '/^pgalloc_/ {a += $2} END {printf "%.0f", a}' /proc/vmstat) $(awk '{print $10}' "/proc/$1/stat" 2>/dev/null || echo 0)"
}

# CPU time (user + system, clock ticks) a process has used so far
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

# setup_target T: start T's server; sets $uri and $srv_pid (not in a subshell:
# $pids must see the server)
setup_target() {
  local t=$1
  case "$t" in
    berth-lz4|berth-off|berth-enc)
      [ -n "$berthd_pid" ] || start_berthd
      local p=${t#berth-}
      # shellcheck disable=SC2086 # BENCH_POOL_ARGS: extra pool create options, e.g. "-o autotrim=off"
      berth pool create -o size=$(( $(numfmt --from=iec "$size") * 4 )) ${BENCH_POOL_ARGS:-} "b$p" "$W/b$p.img" >/dev/null || exit 1
      if [ "$p" = off ]; then
        berth vol create -V "$size" -o compression=off "b$p/disk" >/dev/null || exit 1
      elif [ "$p" = enc ]; then
        head -c 32 /dev/urandom >"$W/enc.key"
        berth vol create -V "$size" -o encryption=aes-256-gcm -o keyformat=raw \
          -o keylocation="file://$W/enc.key" "b$p/disk" >/dev/null || exit 1
      else
        berth vol create -V "$size" "b$p/disk" >/dev/null || exit 1
      fi
      uri=$(berth vol uri "b$p/disk") || exit 1
      srv_pid=$berthd_pid ;;
    qsd-raw|qsd-qcow2)
      local f=$W/$t.img sock=$W/$t.sock
      rm -f "$sock" # an earlier round's socket would pass wait_sock at once
      if [ "$t" = qsd-raw ]; then
        truncate -s "$size" "$f"
        qemu-storage-daemon --blockdev driver=file,node-name=f,filename="$f" \
          --nbd-server addr.type=unix,addr.path="$sock" --export type=nbd,id=e,node-name=f,name=x,writable=on \
          >"$W/$t.log" 2>&1 &
      else
        qemu-img create -q -f qcow2 "$f" "$size"
        qemu-storage-daemon --blockdev driver=file,node-name=f,filename="$f" --blockdev driver=qcow2,node-name=q,file=f \
          --nbd-server addr.type=unix,addr.path="$sock" --export type=nbd,id=e,node-name=q,name=x,writable=on \
          >"$W/$t.log" 2>&1 &
      fi
      pids+=($!)
      srv_pid=$!
      wait_sock "$sock"
      uri="nbd+unix:///x?socket=$sock" ;;
    nbdkit)
      local f=$W/nbdkit.img sock=$W/nbdkit.sock
      rm -f "$sock"
      truncate -s "$size" "$f"
      nbdkit -f -U "$sock" file "$f" >"$W/nbdkit.log" 2>&1 &
      pids+=($!)
      srv_pid=$!
      wait_sock "$sock"
      uri="nbd+unix:///?socket=$sock" ;;
    *) echo "bench: unknown target $t" >&2; exit 2 ;;
  esac
}

teardown_target() {
  local t=$1
  case "$t" in
    berth-*) berth pool destroy -f "b${t#berth-}" >/dev/null 2>&1 || berth pool destroy "b${t#berth-}" >/dev/null; rm -f "$W/b${t#berth-}.img" ;;
    *) local n=$((${#pids[@]} - 1)); local p=${pids[$n]}; kill "$p"; wait "$p" 2>/dev/null; unset "pids[$n]"; rm -f "$W/$t.img" ;;
  esac
}

# fio_job T URI NAME RW BS [time] [durable]: run fio, append a result line
fio_job() {
  local t=$1 uri=$2 name=$3 rw=$4 bs=$5 timed=${6:-1} dur=${7:-0}
  local args=(--name="$name" --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" --iodepth=16 --numjobs=1
              --size="$size" --output-format=json --randrepeat=0 --norandommap)
  if [ "$dur" = 1 ]; then
    # no ramp: fio's byte count must cover the whole wall time
    args+=(--time_based --runtime="$runtime" --end_fsync=1)
  elif [ "$timed" = 1 ]; then
    args+=(--time_based --runtime="$runtime" --ramp_time=1)
  fi
  local c0 c1 w0 w1 vm0 vm1
  vm0=$(vm_counts "$srv_pid")
  c0=$(cpu_ticks "$srv_pid")
  w0=$(date +%s.%N)
  fio "${args[@]}" >"$W/fio-$t-$name.json" 2>"$W/fio-$t-$name.err" || {
    cat "$W/fio-$t-$name.err" >&2; echo "bench: fio $name on $t failed" >&2; return 1; }
  w1=$(date +%s.%N)
  # berthd: count the txg sync the writes left behind too (all the work they
  # caused); qsd/nbdkit leave theirs to the kernel's flusher threads
  case "$t:$rw" in berth-*:*write) [ "$timed" = 1 ] && berth pool sync "b${t#berth-}" >/dev/null ;; esac
  c1=$(cpu_ticks "$srv_pid")
  vm1=$(vm_counts "$srv_pid")
  local dir=write
  case "$rw" in read|randread) dir=read ;; esac
  local s
  s=$("$top/bench/fio-summary.py" "$W/fio-$t-$name.json" "$dir") || return 1
  if [ "$dur" = 1 ]; then
    # durable: everything fio wrote (the ramp second too) over the wall time
    # of the whole job, its final flush included
    s=$("$top/bench/fio-summary.py" "$W/fio-$t-$name.json" "$dir" "$(python3 -c "print($w1 - $w0)")") || return 1
  fi
  # the server's CPU per request over the whole job (the ramp second too, so
  # the divisor counts its requests as well: IOPS * (runtime + 1)); steadier
  # than throughput on a shared machine
  local cpu="" vmpg=""
  if [ "$timed" = 1 ]; then
    cpu=$(python3 -c "print('%.1f' % (($c1 - $c0) / $hz * 1e6 / (${s%% *} * ($runtime + 1))) if ${s%% *} else 'n/a')")
    local bw=${s#* }; bw=${bw%% *}
    local gib
    gib=$(python3 -c "print('%.2f' % (($c1 - $c0) / $hz / ($bw * ($runtime + 1) / 2**30)) if $bw else 'n/a')")
    echo "$t $name $s" >>"$results"
    echo "extra server_CPU_us_per_request_${t}_${name} $cpu" >>"$results"
    echo "extra server_CPU_s_per_GiB_${t}_${name} $gib" >>"$results"
    local maxlat
    maxlat=$(python3 -c "
import json, sys
t = open('$W/fio-$t-$name.json').read()
d = json.loads(t[t.index('{'):])
print('%.1f' % (max(j['$dir']['clat_ns']['max'] for j in d['jobs']) / 1e6))") || maxlat=n/a
    echo "extra max_completion_latency_ms_${t}_${name} $maxlat" >>"$results"
    # pages the whole machine allocated (fio and anything else running too)
    # and the server's minor faults, per GiB moved
    vmpg=$(python3 -c "
a0, f0 = map(int, '$vm0'.split()); a1, f1 = map(int, '$vm1'.split())
g = $bw * ($runtime + 1) / 2**30
print('%d pgalloc/GiB (machine), %d server minflt/GiB' % ((a1 - a0) / g, (f1 - f0) / g) if g else 'n/a')")
  fi
  log "  $t $name: $s (IOPS B/s lat-us), server CPU ${cpu:-?} us/request, ${gib:-?} s/GiB, max latency ${maxlat:-?} ms, ${vmpg:-}"
}

for round in $(seq "$repeat"); do
  for t in $targets; do
    log "== $t (round $round of $repeat)"
    setup_target "$t"
    log "  prefill $size sequentially ($uri)"
    fio_job "$t" "$uri" prefill write 1M 0 || exit 1
    for w in $workloads; do
      case "$w" in
        randwrite-4k) fio_job "$t" "$uri" randwrite-4k randwrite 4k || exit 1 ;;
        randread-4k) fio_job "$t" "$uri" randread-4k randread 4k || exit 1 ;;
        write-1m) fio_job "$t" "$uri" write-1m write 1M || exit 1
                  if [ "$durable" = 1 ]; then
                    fio_job "$t" "$uri" write-1m-durable write 1M 1 1 || exit 1
                  fi ;;
        read-1m) fio_job "$t" "$uri" read-1m read 1M || exit 1 ;;
        *) echo "bench: unknown workload $w" >&2; exit 2 ;;
      esac
    done
    teardown_target "$t"
  done
done

if [ -n "$berthd_pid" ]; then
  hwm=$(awk '/VmHWM/ {print $2, $3}' "/proc/$berthd_pid/status")
  echo "extra berthd_peak_RSS_(VmHWM,_after_all_berth_runs) $hwm" >>"$results"
  echo "extra berthd_memory_limit_(--cache-size) $(grep -o 'memory limit [0-9]* MiB' "$W/berthd.log" | head -1 | cut -d' ' -f3-)" >>"$results"
  log "== metadata overhead: 1 GiB of incompressible data in a fresh volume"
  berth pool create -o size=4G meta "$W/meta.img" >/dev/null || exit 1
  berth vol create -V 2G meta/v >/dev/null || exit 1
  berth pool sync meta >/dev/null
  a0=$(berth --json pool status meta | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d["pools"][0] if "pools" in d else d; print(d["allocated"])')
  head -c 1G /dev/urandom >"$W/rand1g"
  nbdcopy --flush "$W/rand1g" "$(berth vol uri meta/v)" || exit 1
  rm -f "$W/rand1g"
  for _ in 1 2 3 4; do berth pool sync meta >/dev/null; done
  a1=$(berth --json pool status meta | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d["pools"][0] if "pools" in d else d; print(d["allocated"])')
  fa=$(( $(stat -c %b "$W/meta.img") * $(stat -c %B "$W/meta.img") ))
  G=$((1 << 30))
  echo "extra metadata_overhead_(pool_allocated_-_1_GiB)/1_GiB $(python3 -c "print('%.2f%% (allocated %d bytes; empty pool %d bytes; pool file on disk %d bytes)' % (($a1 - $G) * 100 / $G, $a1, $a0, $fa))")" >>"$results"
  echo "extra metadata_overhead_excluding_the_empty_pool_baseline $(python3 -c "print('%.2f%%' % (($a1 - $a0 - $G) * 100 / $G))")" >>"$results"
  hwm2=$(awk '/VmHWM/ {print $2, $3}' "/proc/$berthd_pid/status")
  echo "extra berthd_peak_RSS_(VmHWM,_at_the_end) $hwm2" >>"$results"
fi

env_desc="$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r), files on $(df -T "$dir" | awk 'NR==2 {print $2}'), $(fio --version), $(qemu-storage-daemon --version | head -1), $(nbdkit --version)"
echo "extra environment $env_desc" >>"$results"
echo "extra settings fio ioengine=nbd numjobs=1 iodepth=16 size=$size runtime=${runtime}s each (+1 s ramp), after a sequential 1M prefill of the whole disk; fio's default (incompressible) buffers; all servers use the page cache (no O_DIRECT)${BERTHD_ARGS:+; berthd $BERTHD_ARGS}${BENCH_POOL_ARGS:+; berth pools created with $BENCH_POOL_ARGS}" >>"$results"

table=$("$top/bench/report.py" "$results")
echo
echo "$table"
mkdir -p "$dir/results"
stamp=$(date +%Y%m%d-%H%M%S)
{ echo "command: $cmdline"; echo; echo "$table"; } >"$dir/results/$stamp.md"
cp "$results" "$dir/results/$stamp.raw"
[ -f "$W/berthd.log" ] && cp "$W/berthd.log" "$dir/results/$stamp.berthd.log"
echo
echo "saved $dir/results/$stamp.md"

if [ "$doc" = 1 ]; then
  "$top/bench/update-doc.py" "$top/docs/PERFORMANCE.md" "$cmdline" "$(date -u +%F)" "$dir/results/$stamp.md" ||
    echo "bench: could not update docs/PERFORMANCE.md" >&2
  echo "updated docs/PERFORMANCE.md"
fi
