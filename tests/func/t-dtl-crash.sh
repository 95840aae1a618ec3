#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A member that missed the writes of a txg, then a crash while that txg's
# uberblock is written: after the restart the member must be resilvered
# (its DTL), not taken as whole.  For each case: a pool of files whose volume
# holds 8 MiB written and flushed; one member stops taking writes (debug knob
# fail_writes: it is FAULTED in the next txg; `pool offline`; missing); a new write
# and its flush start txg T, and berthd is killed (crash_at=any_ub_leaf:N)
# after uberblock T reached the first N leaves only.  berthd restarts:
#   - the pool imports; a resilver runs and finishes (the member missed T),
#     and the member is ONLINE and not stale at the end;
#   - a scrub then repairs nothing and finds no error; `pool check` passes;
#   - the member's own copy is right: exported, a healthy member moved away,
#     imported DEGRADED, the volume reads back what it read with every member
#     (so blocks of T are read from the member itself).
# Cases:
#   zfault    raidz1 a b c, c fails writes, T's uberblock on a only (b and c
#             one txg behind: a commit cut short, b holds T's blocks, c not)
#   zoffline  the same with c taken offline
#   zmissing  the same with c missing when berthd started (its file back
#             before the crash, so the restart finds it)
#   z2fault   raidz2 a b c d, c fails writes, T's uberblock on a only
#   mfault    mirror a b, b fails writes, T's uberblock on a only
#   m2fault   two mirrors (a b) (c d), d fails writes, T's uberblock on the
#             first top only (the second one whole txg behind)
#   zlabel    raidz2 a b c d, c fails writes and b fails to write the label
#             recording that (fail_label_writes: b is FAULTED before uberblock
#             T), T's uberblock on a only
#   mlabel    mirror a b c, c fails writes, b fails its label write, T's
#             uberblock on a only
# BERTH_DTL_CRASH=REGEX runs only the cases whose name matches.
. "$(dirname "$0")/functions.sh"
requires nbdcopy cmp
requires_nbdpy

M=$((1 << 20))
ONLY=${BERTH_DTL_CRASH:-}
mkdata "$T/v1.data" 8 random
mkdata "$T/v2.data" 6 random

scan_field() {
  berth --json pool status "$1" | nbdpy -c '
import json, sys
s = json.load(sys.stdin).get("scan") or {}
print(s.get(sys.argv[1], ""))' "$2"
}
# a device's field by path (its basename)
dev_field() {
  berth --json pool status "$1" | nbdpy -c '
import json, os, sys
for v in json.load(sys.stdin)["vdevs"]:
    if os.path.basename(v["path"]) == sys.argv[1]:
        x = v[sys.argv[2]]
        print(str(x).lower() if isinstance(x, bool) else x)' "$2" "$3"
}
scan_busy() {
  berth --json pool status "$1" | nbdpy -c '
import json, sys
d = json.load(sys.stdin)
s = d.get("scan") or {}
busy = s.get("state") == "scanning" or any(v.get("resilvering") for v in d["vdevs"])
sys.exit(0 if busy else 1)'
}
scan_idle() { ! scan_busy "$1"; }
berthd_dead() { ! kill -0 "$BERTHD_PID" 2>/dev/null; }

NCASES=0
# leaf index of a device (its basename) in pool $1
dev_index() {
  berth --json pool status "$1" | nbdpy -c '
import json, os, sys
print([os.path.basename(v["path"]) for v in json.load(sys.stdin)["vdevs"]].index(sys.argv[1]))' "$2"
}

# run_case NAME LAYOUT... -- MEMBER HOW CRASH_N HEALTHY [NOLABEL]
#   MEMBER misses T (HOW: fault or offline); HEALTHY is moved away for the
#   degraded read; NOLABEL fails to write its label in T's commit
run_case() {
  local name=$1; shift
  local spec=() member how n healthy nolabel
  while [ "$1" != -- ]; do spec+=("$1"); shift; done
  shift
  member=$1 how=$2 n=$3 healthy=$4 nolabel=${5:-}
  [ -z "$ONLY" ] || [[ "$name" =~ $ONLY ]] || return 0
  NCASES=$((NCASES + 1))
  echo "== $name: ${spec[*]}; $member misses txg T ($how), crash after $n uberblock(s) of T"
  berth pool destroy -f cr >/dev/null 2>&1
  rm -rf "$T/d" "$T/away" && mkdir -p "$T/d" "$T/away"
  local devs=() s
  for s in "${spec[@]}"; do
    case "$s" in mirror|raidz*) devs+=("$s") ;; *) devs+=("$T/d/$s") ;; esac
  done
  berth pool create -o size=80M cr "${devs[@]}" >/dev/null || fail "$name: create cr"
  berth vol create -V 16M cr/v >/dev/null || fail "$name: vol create"
  nbdcopy --flush "$T/v1.data" "$(uri cr/v)" || fail "$name: fill cr/v"
  pool_sync cr 2 || fail "$name: pool sync"
  if [ "$how" = offline ]; then
    berth pool offline cr "$T/d/$member" >/dev/null || fail "$name: offline $member"
  elif [ "$how" = missing ]; then
    # berthd restarted without it (DEGRADED), then the file is back
    stop_berthd
    mv "$T/d/$member" "$T/away/"
    start_berthd
    [ "$(pool_field cr state)" = DEGRADED ] || fail "$name: $(pool_field cr state) without $member"
    mv "$T/away/$member" "$T/d/"
  else
    berth pool debug cr "vdev=$(dev_index cr "$member") fail_writes=on" >/dev/null ||
      fail "$name: fail_writes"
  fi
  if [ -n "$nolabel" ]; then
    berth pool debug cr "vdev=$(dev_index cr "$nolabel") fail_label_writes=on" >/dev/null ||
      fail "$name: fail_label_writes"
  fi
  local logl
  logl=$(wc -l <"$T/berthd.log")
  berth pool debug cr "crash_at=any_ub_leaf:$n" >/dev/null || fail "$name: crash_at"
  nbdcopy --flush "$T/v2.data" "$(uri cr/v)" >/dev/null 2>&1 &
  local cp=$!
  wait_until 60 berthd_dead 2>/dev/null || fail "$name: berthd did not reach the crash point"
  wait "$BERTHD_PID" 2>/dev/null
  BERTHD_PID=
  wait "$cp" 2>/dev/null
  check_sanitizer_log
  grep -q "crash point any_ub_leaf reached" "$T/berthd.log" || fail "$name: berthd died elsewhere"
  if [ -n "$nolabel" ]; then
    tail -n +$((logl + 1)) "$T/berthd.log" | grep -q "could not write its label before txg .*: FAULTED" ||
      fail "$name: $nolabel was not faulted for its failed label write"
  fi
  start_berthd
  local st
  st=$(pool_field cr state)
  [ "$st" = ONLINE ] || [ "$st" = DEGRADED ] || { berth pool status cr; fail "$name: pool $st"; }
  wait_until 60 scan_idle cr || fail "$name: the resilver did not finish"
  [ "$(scan_field cr func)" = resilver ] && [ "$(scan_field cr state)" = finished ] || {
    berth pool status cr
    fail "$name: no resilver after the restart (scan: $(scan_field cr func) $(scan_field cr state)): $member's miss of txg T was lost"
  }
  [ "$(dev_field cr "$member" state)" = ONLINE ] && [ "$(dev_field cr "$member" stale)" = false ] ||
    fail "$name: $member is $(dev_field cr "$member" state), stale $(dev_field cr "$member" stale)"
  [ "$(pool_field cr state)" = ONLINE ] || fail "$name: pool $(pool_field cr state) after the resilver"
  local rs
  rs=$(scan_field cr resilvered)
  [ "$rs" -gt 0 ] || fail "$name: the resilver copied nothing"
  echo "  imported $st, resilvered $rs bytes, $member ONLINE"
  rm -f "$T/ref.data" "$T/out.data"
  nbdcopy "$(uri cr/v)" "$T/ref.data" || fail "$name: read cr/v"
  cmp -n $((2 * M)) "$T/ref.data" "$T/v1.data" >/dev/null ||
    cmp -n $((2 * M)) "$T/ref.data" "$T/v2.data" >/dev/null ||
    fail "$name: cr/v holds neither the first nor the second write"
  berth pool scrub cr >/dev/null || fail "$name: scrub"
  wait_until 60 scan_idle cr || fail "$name: the scrub did not finish"
  [ "$(scan_field cr func)" = scrub ] && [ "$(scan_field cr state)" = finished ] ||
    fail "$name: scrub $(scan_field cr func) $(scan_field cr state)"
  local rep err
  rep=$(scan_field cr repaired) err=$(scan_field cr errors)
  [ "$rep" = 0 ] && [ "$err" = 0 ] ||
    fail "$name: the scrub after the resilver repaired $rep bytes, $err errors"
  berth --json pool check cr | grep -q '"consistent": *true' || fail "$name: pool check"
  echo "  scrub: 0 repaired, 0 errors; pool check consistent"
  # the member's own copy: without a healthy member the blocks of T come from it
  berth pool export cr >/dev/null || fail "$name: export"
  mv "$T/d/$healthy" "$T/away/"
  berth pool import -d "$T/d" cr >/dev/null || fail "$name: import without $healthy"
  [ "$(pool_field cr state)" = DEGRADED ] || fail "$name: $(pool_field cr state) without $healthy"
  nbdcopy "$(uri cr/v)" "$T/out.data" || fail "$name: cr/v unreadable without $healthy"
  cmp "$T/ref.data" "$T/out.data" || fail "$name: cr/v differs without $healthy"
  berth pool export cr >/dev/null || fail "$name: export (2)"
  mv "$T/away/$healthy" "$T/d/"
  berth pool import -d "$T/d" cr >/dev/null || fail "$name: import with $healthy back"
  wait_until 60 scan_idle cr || fail "$name: the resilver of $healthy did not finish"
  [ "$(pool_field cr state)" = ONLINE ] || fail "$name: pool $(pool_field cr state) at the end"
  echo "  without $healthy: DEGRADED, cr/v reads back the same from $member"
}

start_berthd
run_case zfault raidz1 a.img b.img c.img -- c.img fault 1 a.img
run_case zoffline raidz1 a.img b.img c.img -- c.img offline 1 a.img
run_case zmissing raidz1 a.img b.img c.img -- c.img missing 1 a.img
run_case z2fault raidz2 a.img b.img c.img d.img -- c.img fault 1 a.img
run_case mfault mirror a.img b.img -- b.img fault 1 a.img
run_case m2fault mirror a.img b.img mirror c.img d.img -- d.img fault 2 c.img
run_case zlabel raidz2 a.img b.img c.img d.img -- c.img fault 1 a.img b.img
run_case mlabel mirror a.img b.img c.img -- c.img fault 1 a.img b.img
[ "$NCASES" -gt 0 ] || fail "no case matched '$ONLY'"
berth pool destroy -f cr >/dev/null
stop_berthd
echo "PASS ($NCASES cases)"
