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
  local i
  for i in $(seq 200); do
    if [ -S "$BERTH_SOCKET" ] && curl -sf --unix-socket "$BERTH_SOCKET" http://b/api/v1/health >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$BERTHD_PID" 2>/dev/null || { cat "$T/berthd.log"; fail "berthd exited at start"; }
    sleep 0.05
  done
  fail "berthd did not come up in 10 s"
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

mkpool() {
  local name=$1 size=${2:-1G}
  berth pool create -o size="$size" "$name" "$T/$name.img" >/dev/null || fail "pool create $name"
}

# file_blocks FILE: allocated bytes of a file
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
