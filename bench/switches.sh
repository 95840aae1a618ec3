#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# berthd's context switches and system calls during one workload of
# bench/run.sh: starts a one-target run, waits until fio runs WORKLOAD,
# counts for 3 s with perf stat on berthd, prints the counts and the run's
# result line.  Divide by (IOPS * 3) for per-request figures.
#
#   bench/switches.sh WORKLOAD [BUILD]     e.g. bench/switches.sh randwrite-4k
#
# Hold the bench lock (flock /tmp/berth-bench.lock ...) on a shared machine.
set -u
wl=${1:?usage: bench/switches.sh WORKLOAD [BUILD]}
build=${2:-$PWD/build}
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "switches: perf is not installed" >&2; exit 1; }
log=$(mktemp)
BERTH_BUILD=$build bench/run.sh --runtime 8 --size 4G --targets berth-lz4 --workloads "$wl" >"$log" 2>&1 &
bp=$!
for _ in $(seq 1 600); do pgrep -f "fio.*--name=$wl" >/dev/null && break; sleep 0.5; done
sleep 3
pid=$(pgrep -x berthd | head -1)
ev=context-switches,page-faults
for s in futex recvfrom sendmsg pwritev pread64 preadv2 sync_file_range fallocate clock_nanosleep; do
  ev+=,syscalls:sys_enter_$s
done
perf stat -e "$ev" -p "$pid" -- sleep 3 2>&1 | grep -E "^\s+[0-9]"
wait $bp
grep -E "^\S*\s+berth-lz4 $wl:" "$log"
rm -f "$log"
