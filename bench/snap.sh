#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Snapshot benchmarks (issue 4 targets), not timed tests:
#
#  1. engine (bench/engine/snapbench.c): snapshot create time for 1/4/16/64
#     GiB volumes and with 0/100/999 existing snapshots, listing 1000
#     snapshots, destroying 500;
#  2. `berth snapshot list` with 1000 snapshots through berthd (CLI wall time
#     and API time, median of 20; target < 50 ms);
#  3. incremental send of 1 GiB of random 16K changes in a 16 GiB volume
#     (bench/engine/send.c): bytes read and speed against a sequential read
#     (target >= 80 %).
#
#   bench/snap.sh [--dir DIR] [--quick]
# Environment: BERTH_BUILD (default ./build).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) bench_help ;;
    *) bench_bad_option "$1" ;;
  esac
done
bench_needs gcc curl python3 build
mkdir -p "$dir"
libs="$build/src/store/libberth_store.a $build/src/common/libberth_common.a -llz4 -lzstd -lxxhash -lcrypto -largon2 -lpthread -lm"
cc() { gcc -O2 -D_GNU_SOURCE -Iinclude -Isrc "$1" $libs -o "$2" || exit 1; }
cc bench/engine/snapbench.c "$dir/snapbench"
cc bench/engine/send.c "$dir/send-bench"

echo "## engine"
"$dir/snapbench" "$dir/snapbench.img"

echo
echo "## berth snapshot list, 1000 snapshots"
bench_workdir
bench_start_berthd
berth pool create -o size=4G bench "$W/snap-pool.img" >/dev/null
berth vol create -V 1G bench/v >/dev/null
for i in $(seq 1000); do
  curl -s -o /dev/null --unix-socket "$BERTH_SOCKET" -H 'Content-Type: application/json' \
    -X POST --data "{\"names\":[\"v@s$i\"]}" http://b/api/v1/pools/bench/snapshots
done
n=$(berth -H snapshot list bench/v | wc -l)
python3 - "$build/src/cli/berth" "$BERTH_SOCKET" "$n" <<'EOF'
import statistics, subprocess, sys, time
berth, sock, n = sys.argv[1], sys.argv[2], sys.argv[3]
def med(cmd):
    t = []
    for _ in range(20):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        t.append((time.perf_counter() - t0) * 1000)
    return statistics.median(t), max(t)
cli = med([berth, "--socket", sock, "snapshot", "list", "bench/v"])
api = med(["curl", "-s", "--unix-socket", sock, "http://b/api/v1/pools/bench/snapshots"])
print("| measure | median | max |\n|---|---|---|")
print("| `berth snapshot list` (%s snapshots, CLI wall time) | %.1f ms | %.1f ms |" % (n, *cli))
print("| `GET /pools/bench/snapshots` (curl wall time) | %.1f ms | %.1f ms |" % api)
EOF
bench_stop_berthd

echo
echo "## incremental send"
if [ $quick = 1 ]; then
  VOL=4 CHANGE=0.25 "$dir/send-bench" "$dir/send-bench.img"
else
  VOL=16 CHANGE=1 "$dir/send-bench" "$dir/send-bench.img"
fi
rm -f "$dir/send-bench.img"
