#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM control-plane benchmarks against a private berthd (not timed tests):
#
#  1. `berth vm start` latency: wall time of `berth vm start` (CLI included)
#     and of the bare API call (curl's time_total), from the call until berthd
#     answers that QEMU runs the guest; then QEMU's own start with the very
#     same argv (read from /proc/PID/cmdline of berthd's QEMU) measured from
#     exec until QMP query-status says "running".  The difference is berthd's
#     overhead (issue target: <= 50 ms).  VM: SeaBIOS, 256 MB, a 1 GiB disk on
#     a berth volume (NBD), direct kernel boot of the test guest, TCG.
#  2. `berth vm list` with 200 defined (never started) VMs: CLI wall time and
#     API time, median and max of 20 (target: <= 20 ms), and berthd's RSS
#     growth per defined VM.
#
#   bench/vm-start.sh [--runs N] [--vms N] [--dir DIR]
# Environment: BERTH_BUILD (default ./build).
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
runs=10
nvms=200
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --vms) nvms=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_option "$1" ;;
  esac
done
bench_needs qemu-system-x86_64 curl python3 bc build
guest=$("$top/tests/guest/build-guest.sh") || bench_die "cannot build the test guest"

bench_workdir
# the VMs still running are stopped before berthd
stop_vms() {
  [ -n "$berthd_pid" ] || return 0
  for id in $(berth -H vm list 2>/dev/null | awk '$3 != "stopped" {print $1}'); do
    berth vm stop "$id" >/dev/null 2>&1
  done
}
bench_at_exit stop_vms
die() { bench_die "$@"; }
ms() { echo "scale=1; ($2 - $1) / 1000000" | bc; }  # ns -> ms
stats() { # print "median X ms, min Y, max Z" of the numbers on stdin
  python3 -c 'import sys, statistics as s; v = sorted(float(x) for x in sys.stdin.read().split()); print("median %.1f ms, min %.1f, max %.1f (n=%d)" % (s.median(v), v[0], v[-1], len(v)))'
}
median() { python3 -c 'import sys, statistics as s; print("%.1f" % s.median(float(x) for x in sys.stdin.read().split()))'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$berthd_pid/status"; }

bench_start_berthd
berth pool create -o size=4G bench "$W/bench.img" >/dev/null || die "pool create"

echo "berth VM benchmarks: $(qemu-system-x86_64 --version | head -1), $(nproc) CPUs"
ID=100
berth vm create $ID --name bench --memory 256 --bios seabios --scsi0 bench:1 \
  --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" \
  --append "console=ttyS0 quiet panic=-1 berth.script=hello berth.stay=1" >/dev/null ||
  die "vm create"
accel=

# 1a. berth vm start, CLI and API
cli=() api=()
for ((i = 0; i < runs; i++)); do
  t0=$(date +%s%N)
  berth vm start $ID >/dev/null 2>&1 || die "vm start"
  t1=$(date +%s%N)
  cli+=("$(ms "$t0" "$t1")")
  [ -z "$accel" ] && accel=$(berth --json vm status $ID | python3 -c 'import json,sys; print(json.load(sys.stdin).get("accel"))')
  [ $i = 0 ] && tr '\0' '\n' <"/proc/$(berth --json vm status $ID | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')/cmdline" >"$W/argv"
  berth vm stop $ID >/dev/null || die "vm stop"
  sleep 0.3  # let the previous QEMU's exit settle
  t=$(curl -s -o "$W/start.json" -w '%{time_total}' -X POST --unix-socket "$BERTH_SOCKET" \
        "http://b/api/v1/vms/$ID/start")
  grep -q '"status"' "$W/start.json" || die "API start: $(cat "$W/start.json")"
  api+=("$(echo "$t * 1000" | bc)")
  berth vm stop $ID >/dev/null || die "vm stop"
  sleep 0.3
done

# 1b. the same argv, started directly
python3 - "$W/argv" "$runs" >"$W/direct" <<'PY' || die "direct QEMU start failed"
import json, os, socket, subprocess, sys, time
argv = open(sys.argv[1]).read().split("\n")
argv = [a for a in argv if a != ""]
runs = int(sys.argv[2])
def qmp_path(argv):
    for i, a in enumerate(argv):
        if a == "-qmp" and argv[i + 1].startswith("unix:"):
            return argv[i + 1][5:].split(",")[0]
    mons = [argv[i + 1] for i, a in enumerate(argv) if a == "-mon" and "mode=control" in argv[i + 1]]
    for m in mons:
        cid = dict(kv.split("=", 1) for kv in m.split(",") if "=" in kv)["chardev"]
        for i, a in enumerate(argv):
            if a == "-chardev" and ("id=%s," % cid in argv[i + 1] or argv[i + 1].endswith("id=" + cid)):
                return dict(kv.split("=", 1) for kv in argv[i + 1].split(",") if "=" in kv)["path"]
    sys.exit("no QMP socket in the argv")
path = qmp_path(argv)
def once():
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    s = None
    while True:
        if p.poll() is not None:
            sys.exit("QEMU exited: " + p.stderr.read().decode())
        try:
            s = socket.socket(socket.AF_UNIX); s.connect(path); break
        except OSError:
            s.close(); time.sleep(0.0005)
    f = s.makefile("rw")
    json.loads(f.readline())
    def cmd(c):
        f.write(json.dumps({"execute": c}) + "\n"); f.flush()
        while True:
            m = json.loads(f.readline())
            if "return" in m or "error" in m:
                return m
    cmd("qmp_capabilities")
    while cmd("query-status")["return"]["status"] != "running":
        cmd("cont")
    t1 = time.perf_counter()
    cmd("quit"); p.wait()
    time.sleep(0.3)
    return (t1 - t0) * 1000
once()  # warm the page cache
print(" ".join("%.1f" % once() for _ in range(runs)))
PY

echo
echo "== vm start latency (accel $accel; $runs runs each)"
echo "  berth vm start (CLI):   $(printf '%s\n' "${cli[@]}" | stats)"
echo "  POST /vms/$ID/start:     $(printf '%s\n' "${api[@]}" | stats)"
echo "  QEMU alone, same argv:  $(stats <"$W/direct")"
overhead=$(printf '%.1f' "$(echo "$(printf '%s\n' "${api[@]}" | median) - $(median <"$W/direct")" | bc)")
echo "  berthd overhead (API median - QEMU median): $overhead ms (target <= 50 ms)"

# 2. vm list with many defined VMs
r0=$(rss_kb)
t0=$(date +%s%N)
for ((i = 0; i < nvms; i++)); do
  curl -sf -o /dev/null -X POST --unix-socket "$BERTH_SOCKET" -H 'Content-Type: application/json' \
    --data-binary "{\"vmid\": $((1000 + i)), \"options\": {\"name\": \"vm$i\", \"memory\": \"256\", \"bios\": \"seabios\"}}" \
    http://b/api/v1/vms || die "create VM $((1000 + i))"
done
t1=$(date +%s%N)
r1=$(rss_kb)
n=$(berth -H vm list | wc -l)
cli=() api=()
for ((i = 0; i < 20; i++)); do
  t0l=$(date +%s%N); berth vm list >/dev/null || die "vm list"; t1l=$(date +%s%N)
  cli+=("$(ms "$t0l" "$t1l")")
  t=$(curl -s -o /dev/null -w '%{time_total}' --unix-socket "$BERTH_SOCKET" http://b/api/v1/vms)
  api+=("$(echo "$t * 1000" | bc)")
done
echo
echo "== vm list with $n defined VMs"
echo "  created $nvms VMs in $(ms "$t0" "$t1") ms ($(echo "scale=2; ($t1 - $t0) / 1000000 / $nvms" | bc) ms each, API)"
echo "  berth vm list (CLI):    $(printf '%s\n' "${cli[@]}" | stats) (target <= 20 ms)"
echo "  GET /vms:               $(printf '%s\n' "${api[@]}" | stats)"
echo "  berthd RSS: $r0 KiB -> $r1 KiB: $(( (r1 - r0) * 1024 / nvms )) bytes per defined VM"
