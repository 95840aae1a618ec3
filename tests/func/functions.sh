# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for functional tests (source this file).  A test is a bash
# script tests/func/t-NAME.sh: exit 0 = pass, 77 = skip, anything else = fail.
#
#   requires CMD...          skip (77) loudly if a tool is missing
#   start_berthd [ARGS]      start a berthd (with --test) on a private state and
#                            run dir; exports BERTH_SOCKET, NBD_SOCK, STATE, RUN
#   stop_berthd              SIGTERM and wait; fails on sanitizer reports
#   kill_berthd              SIGKILL (crash)
#   berth ARGS               the CLI against that berthd
#   expect_fail CMD...       the command must fail; its stderr is shown
#   rc_of RC NEEDLE CMD...   the command exits RC and its stderr names NEEDLE
#   fail MSG                 print and exit 1
#   uri POOL/VOL             the NBD URI of a volume
#   mkpool NAME [SIZE]       create a file-backed pool $T/NAME.img
# $T is a private temp dir removed at exit (kept if BERTH_KEEP=1).
set -u
set -o pipefail

BERTH_TOP=${BERTH_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BERTH_BUILD=${BERTH_BUILD:-$BERTH_TOP/build}
BERTHD_BIN=$BERTH_BUILD/src/daemon/berthd
BERTH_BIN=$BERTH_BUILD/src/cli/berth
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=66}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=67}
export LSAN_OPTIONS=${LSAN_OPTIONS:-exitcode=68}

T=$(mktemp -d /tmp/berth-test.XXXXXX)
BERTHD_PID=
_cleanups=()

on_exit() {
  local rc=$?
  local i
  for ((i=${#_cleanups[@]}-1; i>=0; i--)); do eval "${_cleanups[$i]}" >/dev/null 2>&1 || true; done
  if [ -n "$BERTHD_PID" ] && kill -0 "$BERTHD_PID" 2>/dev/null; then
    kill -TERM "$BERTHD_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$BERTHD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BERTHD_PID" 2>/dev/null
  fi
  if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -f "$T/berthd.log" ]; then
    echo "---- berthd log (last 40 lines) ----"; tail -n 40 "$T/berthd.log"
  fi
  if [ "${BERTH_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
  exit $rc
}
trap on_exit EXIT

add_cleanup() { _cleanups+=("$*"); }

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

requires() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || skip "requires $c (not installed)"
  done
}

berth() { "$BERTH_BIN" "$@"; }

# rc_of EXPECTED NEEDLE CMD...: run, check the exit status and that stderr
# mentions NEEDLE ("" for any)
rc_of() {
  local want=$1 needle=$2 out rc; shift 2
  out=$("$@" 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq "$want" ] || fail "$*: exit $rc, want $want (stderr: $out)"
  [[ "$out" == *"$needle"* ]] || fail "$*: stderr does not mention '$needle': $out"
  echo "  ok ($rc): $* -> ${out%%$'\n'*}"
}

expect_fail() {
  local out rc
  out=$("$@" 2>&1); rc=$?
  [ $rc -ne 0 ] || fail "expected failure: $* (got: $out)"
  echo "  expected failure ($rc): $out" | head -c 400; echo
}

# start_berthd [extra berthd args]
start_berthd() {
  STATE=${STATE:-$T/state}
  RUN=${RUN:-$T/run}
  export BERTH_SOCKET=$RUN/berthd.sock
  export NBD_SOCK=$RUN/nbd.sock
  [ -x "$BERTHD_BIN" ] || fail "no berthd at $BERTHD_BIN"
  "$BERTHD_BIN" --state-dir "$STATE" --run-dir "$RUN" --test "$@" >>"$T/berthd.log" 2>&1 &
  BERTHD_PID=$!
  local i secs=${BERTH_START_TIMEOUT:-30}
  for ((i = 0; i < secs * 20; i++)); do
    if [ -S "$BERTH_SOCKET" ] && curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$BERTHD_PID" 2>/dev/null || { cat "$T/berthd.log"; fail "berthd exited at start"; }
    sleep 0.05
  done
  fail "berthd did not come up in $secs s"
}

# True in a sanitizer build (ASan/UBSan: meson's b_sanitize is set): the
# long crash matrices sample their cases there (BERTH_LONG=1 runs all).
sanitized_build() {
  python3 -c 'import json,sys; o=[x for x in json.load(open(sys.argv[1])) if x["name"]=="b_sanitize"]; sys.exit(0 if o and o[0]["value"] not in ("none", "") else 1)' \
    "$BERTH_BUILD/meson-info/intro-buildoptions.json" 2>/dev/null
}

check_sanitizer_log() {
  if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T/berthd.log" 2>/dev/null; then
    grep -E -A 30 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T/berthd.log" | head -80
    fail "sanitizer report in berthd log"
  fi
}

stop_berthd() {
  [ -n "$BERTHD_PID" ] || return 0
  kill -TERM "$BERTHD_PID" 2>/dev/null
  local rc=0
  wait "$BERTHD_PID" || rc=$?
  BERTHD_PID=
  check_sanitizer_log
  [ $rc -eq 0 ] || fail "berthd exited with status $rc on SIGTERM"
}

kill_berthd() {
  [ -n "$BERTHD_PID" ] || return 0
  kill -KILL "$BERTHD_PID" 2>/dev/null
  wait "$BERTHD_PID" 2>/dev/null
  BERTHD_PID=
  check_sanitizer_log
}

uri() { echo "nbd+unix:///$1?socket=$NBD_SOCK"; }

# rc_of EXPECTED NEEDLE CMD...: run, check the exit status and that stderr
# names NEEDLE
rc_of() {
  local want=$1 needle=$2 out rc; shift 2
  out=$("$@" 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq "$want" ] || fail "$*: exit $rc, want $want (stderr: $out)"
  [[ "$out" == *"$needle"* ]] || fail "$*: stderr does not mention '$needle': $out"
  echo "  ok ($rc): $* -> ${out%%$'\n'*}"
}

mkpool() {
  local name=$1 size=${2:-1G}
  berth pool create -o size="$size" "$name" "$T/$name.img" >/dev/null || fail "pool create $name"
}

# file_alloc FILE: allocated bytes of a file
file_alloc() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

# api METHOD PATH [JSON]: raw API call; prints the body, returns 0 on 2xx
api() {
  local m=$1 p=$2 body=${3:-}
  local args=(-s --fail-with-body -X "$m" --unix-socket "$BERTH_SOCKET")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  curl "${args[@]}" "http://b/api/v1$p"
}

# api_status METHOD PATH [JSON]: prints the HTTP status code only
api_status() {
  local m=$1 p=$2 body=${3:-}
  if [ -n "$body" ]; then
    curl -s -o /dev/null -w '%{http_code}' -X "$m" --unix-socket "$BERTH_SOCKET" \
      -H 'Content-Type: application/json' --data-binary "$body" "http://b/api/v1$p"
  else
    curl -s -o /dev/null -w '%{http_code}' -X "$m" --unix-socket "$BERTH_SOCKET" "http://b/api/v1$p"
  fi
}

# ---- helpers added for the engine/NBD tests (t-pool-basic ... t-bad-input) ----
#   jfield KEY [--bytes]     read JSON on stdin, print the first value of KEY
#                            found anywhere in it (also {"property":KEY,"value":V})
#   vol_prop POOL/VOL PROP   a volume property (sizes in bytes, ratios as 2.50)
#   pool_field POOL FIELD    a field of `pool status` (same normalisation)
#   pool_sync POOL [N]       force N (default 1) txg commits
#   wait_until SECS CMD...   poll CMD every 0.1 s until it succeeds (1 on timeout)
#   requires_nbdpy           skip unless Debian's python3 has the libnbd module
#   nbdpy ARGS               that python3 (Debian's, with libnbd)
#   berthd_alive             fail unless berthd still runs and answers the API
#   mkdata FILE MIB KIND     deterministic test data: random|text|zero|mixed
NBDPY=/usr/bin/python3
nbdpy() { "$NBDPY" "$@"; }
requires_nbdpy() {
  "$NBDPY" -c 'import nbd' 2>/dev/null || skip "requires python3-libnbd (import nbd failed for $NBDPY)"
}

jfield() {
  "$NBDPY" -c '
import json, re, sys
key = sys.argv[1]; want_bytes = len(sys.argv) > 2 and sys.argv[2] == "--bytes"
try:
    d = json.load(sys.stdin)
except Exception as e:
    sys.exit("jfield: not JSON: %s" % e)
def find(o):
    if isinstance(o, dict):
        if key in o:
            v = o[key]
            if isinstance(v, dict) and "value" in v:
                v = v["value"]
            return (v,)
        if (o.get("property") == key or o.get("name") == key) and "value" in o:
            return (o["value"],)
        for v in o.values():
            r = find(v)
            if r: return r
    elif isinstance(o, list):
        for v in o:
            r = find(v)
            if r: return r
    return None
r = find(d)
if not r:
    sys.exit("jfield: no %s in %s" % (key, json.dumps(d)[:300]))
v = r[0]
units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
if isinstance(v, bool):
    print("on" if v else "off")
elif isinstance(v, (int, float)):
    print(int(v) if float(v).is_integer() and not isinstance(v, float) else v)
elif v is None:
    print("")
elif isinstance(v, str):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGTP]?)(i?B)?\s*", v, re.I) if want_bytes else None
    m2 = re.fullmatch(r"\s*([0-9.]+)x\s*", v)
    if m:
        print(int(float(m.group(1)) * units[m.group(2).upper()]))
    elif m2:
        print(m2.group(1))
    else:
        print(v)
else:
    print(json.dumps(v))
' "$@"
}

vol_prop() {
  local out
  out=$(berth --json vol get "$2" "$1") || { echo "vol_prop: berth --json vol get $2 $1 failed" >&2; return 1; }
  case "$2" in
    volsize|volblocksize|used|referenced|logicalused|refreservation) jfield "$2" --bytes <<<"$out" ;;
    *) jfield "$2" <<<"$out" ;;
  esac
}

pool_field() {
  local out
  out=$(berth --json pool status "$1") || { echo "pool_field: berth --json pool status $1 failed" >&2; return 1; }
  case "$2" in
    size|allocated|free) jfield "$2" --bytes <<<"$out" ;;
    *) jfield "$2" <<<"$out" ;;
  esac
}

pool_sync() {
  local i
  for ((i = 0; i < ${2:-1}; i++)); do berth pool sync "$1" >/dev/null || return 1; done
}

wait_until() {
  local secs=$1 i; shift
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

berthd_alive() {
  [ -n "$BERTHD_PID" ] && kill -0 "$BERTHD_PID" 2>/dev/null || fail "berthd is not running any more"
  curl -sf --max-time 10 --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null ||
    fail "berthd does not answer /api/v1/health"
}

# float comparison: fcmp A OP B (OP: < <= > >= ==)
fcmp() { "$NBDPY" -c 'import sys, operator as o; a, op, b = sys.argv[1:]; sys.exit(0 if {"<": o.lt, "<=": o.le, ">": o.gt, ">=": o.ge, "==": o.eq}[op](float(a), float(b)) else 1)' "$1" "$2" "$3"; }

mkdata() {
  "$NBDPY" - "$@" <<'PYEOF'
import random, sys
path, mib, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rnd = random.Random(mib * 7919 + len(kind))
with open(path, "wb") as f:
    for i in range(mib):
        if kind == "random" or (kind == "mixed" and i % 3 == 1):
            f.write(rnd.randbytes(1 << 20))
        elif kind == "text" or (kind == "mixed" and i % 3 == 2):
            lines = []
            n = 0
            while n < (1 << 20):
                l = "%08d berth test line: the quick brown fox jumps over the lazy dog, status=%s\n" % (
                    i * 100000 + len(lines), ("ok", "warn", "error")[len(lines) % 3])
                lines.append(l); n += len(l)
            f.write("".join(lines).encode()[: 1 << 20])
        else:  # zero (sparse)
            f.seek(1 << 20, 1)
        if kind == "mixed" and i % 3 == 0 and i % 2 == 0:
            # a small random island inside a zero MiB, at an odd 4K offset
            pos = f.tell()
            f.seek(pos - (1 << 20) + 4096 * 37)
            f.write(rnd.randbytes(8192))
            f.seek(pos)
    f.truncate(mib << 20)
PYEOF
}

# pool_names: the names of the pools berthd has, sorted, one a line
pool_names() {
  berth --json pool list | "$NBDPY" -c 'import json,sys; d=json.load(sys.stdin); d=d.get("pools", d) if isinstance(d, dict) else d; print("\n".join(sorted(p["name"] for p in d)))'
}

# ---- helpers for the VM tests (t-vm-*) ----
#   requires_vm              skip unless QEMU and the test guest are available;
#                            sets GUEST (vmlinuz, initrd.img) and registers a
#                            cleanup that stops every VM of this berthd
#   guest_boot_opts SCRIPT [CMDLINE...]
#                            `berth vm create` options (one a line, for mapfile)
#                            for a direct kernel boot of the test guest running
#                            /scripts/SCRIPT
#   vm_field VMID FIELD      a field of `berth --json vm status` (last_exit.X too)
#   wait_vm_status SECS VMID STATUS...
#                            wait until the VM's status is one of STATUS (fails
#                            with the status and the VM log)
#   console_capture VMID FILE
#                            copy the VM's serial console into FILE in the
#                            background (until the VM stops); sets CONSOLE_PID
#   wait_console SECS FILE REGEX
#                            wait until FILE matches REGEX (fails with its tail)
#   vm_log VMID              the VM's log (QEMU stderr, berthd's lines)
requires_vm() {
  requires qemu-system-x86_64
  GUEST=$("$BERTH_TOP/tests/guest/build-guest.sh") || {
    [ $? = 77 ] && skip "cannot build the test guest (tests/guest/build-guest.sh)"
    fail "tests/guest/build-guest.sh failed"
  }
  add_cleanup vm_stop_all
}

guest_boot_opts() {
  local script=$1; shift
  printf '%s\n' --kernel "$GUEST/vmlinuz" --initrd "$GUEST/initrd.img" --append \
    "console=ttyS0 panic=-1 quiet berth.script=$script${*:+ $*}"
}

vm_log() { cat "$STATE/log/vm-$1.log" 2>/dev/null; }

vm_field() {
  local out
  out=$(berth --json vm status "$1" 2>/dev/null) || return 1
  jfield "$2" <<<"$out"
}

# (polls without python, every 0.25 s: under TCG every CPU cycle counts)
wait_vm_status() {
  local secs=$1 vmid=$2 i s want; shift 2
  for ((i = 0; i < secs * 4; i++)); do
    s=$("$BERTH_BIN" --json vm status "$vmid" 2>/dev/null | sed -n 's/^  "status": "\([a-z-]*\)",*$/\1/p')
    for want in "$@"; do [ "$s" = "$want" ] && return 0; done
    sleep 0.25
  done
  echo "---- VM $vmid log (tail) ----"; vm_log "$vmid" | tail -n 30
  berth vm status "$vmid"
  fail "VM $vmid: status '$s' after $secs s, waited for: $*"
}

console_capture() {
  "$BERTH_BIN" vm console "$1" </dev/null >"$2" 2>&1 &
  CONSOLE_PID=$!
  add_cleanup "kill $CONSOLE_PID"
}

wait_console() {
  local secs=$1 file=$2 re=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    grep -aqE "$re" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "---- console $file (tail) ----"; tail -n 25 "$file" | sed 's/^/  | /'
  fail "console: no '$re' after $secs s"
}

# every VM of this berthd stopped (through berthd if it answers, else by the
# pids in its run dir), so no QEMU or swtpm outlives the test
vm_stop_all() {
  local id p
  if [ -n "${BERTH_SOCKET:-}" ] && [ -S "$BERTH_SOCKET" ]; then
    for id in $("$BERTH_BIN" -H vm list 2>/dev/null | awk '$3 != "stopped" {print $1}'); do
      timeout 30 "$BERTH_BIN" vm stop "$id" >/dev/null 2>&1
    done
  fi
  for p in "${RUN:-$T/run}"/vm/*/*.pid; do
    [ -f "$p" ] || continue
    id=$(cat "$p" 2>/dev/null)
    # only a process that belongs to this run dir (pids get reused)
    [ -n "$id" ] && tr '\0' ' ' <"/proc/$id/cmdline" 2>/dev/null | grep -qF "${RUN:-$T/run}/" &&
      kill -KILL "$id" 2>/dev/null
  done
  return 0
}
