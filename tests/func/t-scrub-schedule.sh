#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Scheduled scrubs (berth pool set NAME scrub-schedule=...) and scrubs that
# survive a crash: bad values are
# refused; with a 2 s period scrubs start by themselves and finish (the
# pool's last_scrub moves on), data stays intact; the schedule and the time
# of the last scrub survive a restart (pools.json), and "off" stops it; a
# paused scrub comes back paused at its position after kill -9 and finishes.
. "$(dirname "$0")/functions.sh"
requires nbdcopy

# jpool POOL FIELD: a top-level field of the pool's JSON
jpool() { berth --json pool status "$1" | nbdpy -c 'import json,sys; d=json.load(sys.stdin); d=d.get("pool", d); v=d; [v:=v[k] for k in sys.argv[1].split(".")]; print(v)' "$2"; }

start_berthd
mkpool tank 512M
berth vol create -V 32M tank/v >/dev/null || fail "vol create"
head -c 32M /dev/urandom >"$T/data"
nbdcopy "$T/data" "$(uri tank/v)" || fail "write"
for bad in "sometimes" "0s" "5x" "-1d" ""; do
  expect_fail berth pool set "scrub-schedule=$bad" tank
done
berth pool set scrub-schedule=2s tank >/dev/null || fail "set scrub-schedule=2s"
[ "$(jpool tank scrub_schedule_seconds)" = 2 ] || fail "schedule not shown"
berth pool status tank | grep -q "scrub-schedule: every 2 s" || fail "status does not show the schedule"
l0=$(jpool tank last_scrub)
moved() { l=$(jpool tank last_scrub); [ "$l" != "$l0" ] && [ "$(jpool tank scan.state)" = finished ]; }
wait_until 30 moved || fail "no scheduled scrub finished: $(berth pool status tank | grep scan)"
l1=$(jpool tank last_scrub)
echo "  scheduled scrub finished; last_scrub $l0 -> $l1"
grep -q '"scrub_every": 2' "$STATE/pools.json" || fail "schedule not in pools.json"
stop_berthd
start_berthd
[ "$(jpool tank scrub_schedule_seconds)" = 2 ] || fail "schedule lost over a restart"
wait_until 30 moved || fail "no scheduled scrub after the restart"
berth pool set scrub-schedule=off tank >/dev/null || fail "set off"
[ "$(jpool tank scrub_schedule_seconds)" = 0 ] || fail "schedule not off"
grep -q '"scrub_every"' "$STATE/pools.json" && fail "schedule still in pools.json after off"
[ "$(nbdcopy "$(uri tank/v)" - | sha256sum)" = "$(sha256sum <"$T/data" | sed 's/ .*/  -/')" ] ||
  fail "data changed"
berth pool check tank >/dev/null || fail "pool check"

echo "== a scrub interrupted by a crash goes on where it was after the restart"
berth vol create -V 384M tank/big >/dev/null || fail "vol create big"
nbdcopy <(head -c 384M /dev/urandom) "$(uri tank/big)" || fail "fill big"
berth pool sync tank >/dev/null
paused=0
for try in 1 2 3; do
  berth pool scrub tank >/dev/null || fail "scrub"
  if berth pool scrub --pause tank >/dev/null 2>&1 && [ "$(jpool tank scan.state)" = paused ]; then
    paused=1; break
  fi
  wait_until 30 eval '[ "$(jpool tank scan.state)" != scanning ]'
done
if [ $paused = 1 ]; then
  pos=$(jpool tank scan.pos.blk)
  # the pause itself must be saved, not only the scanning position before it
  saved() { grep -q '"scrub_in_progress"' "$STATE/pools.json" && grep -Eq '"paused": ?true' "$STATE/pools.json"; }
  wait_until 10 saved || fail "the paused scrub is not in pools.json"
  kill_berthd
  start_berthd
  [ "$(jpool tank scan.state)" = paused ] || fail "the scrub did not come back paused: $(jpool tank scan.state)"
  echo "  paused at block $pos of some dataset; after the crash: $(jpool tank scan.state) at $(jpool tank scan.pos.id)/$(jpool tank scan.pos.part)/$(jpool tank scan.pos.blk)"
  berth pool scrub tank >/dev/null || fail "resume the scrub"
  done_() { [ "$(jpool tank scan.state)" = finished ]; }
  wait_until 60 done_ || fail "the resumed scrub did not finish: $(jpool tank scan.state)"
  [ "$(jpool tank scan.errors)" = 0 ] || fail "the resumed scrub found errors"
  wait_until 10 eval '! grep -q "\"scrub_in_progress\"" "$STATE/pools.json"' || fail "finished scrub still saved"
else
  echo "  SKIP part: the scrub always finished before it could be paused"
fi
berth pool check tank >/dev/null || fail "pool check"
stop_berthd
echo PASS
