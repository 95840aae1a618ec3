#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Growing a pool online: a mirror pool, fio (nbd engine, verify=crc32c,
# flushes so txgs commit while it runs) writing a volume, and during the run
# `berth pool add POOL mirror C D`.  fio's verify passes; status shows two
# top-level vdevs (mirror-0, mirror-1) with data on both; a second fio run
# after the add writes more to the new (emptier) top; export/import and
# everything verifies again; pool check passes.  Also: creating with two
# mirrors, a stripe (warning: no redundancy), a mismatched add refused
# without -f, usable space of a raidz1 of 4, and a pool whose added top is
# missing does not import (clear error).
. "$(dirname "$0")/functions.sh"
requires fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"
requires_nbdpy

M=$((1 << 20))
top_field() { berth --json pool status "$1" | nbdpy -c 'import json,sys; t=json.load(sys.stdin)["tops"]; print(len(t) if sys.argv[1] == "n" else t[int(sys.argv[1])][sys.argv[2]])' "$2" "${3:-}"; }

declare -A REGION
REGION[r1]="--rw=randwrite --bs=8k --numjobs=2 --size=24M --offset=0 --offset_increment=24M --fsync=32"
REGION[r2]="--rw=randwrite --bs=16k --numjobs=1 --size=32M --offset=48M --fsync=32"
fio_start() {
  local name=$1 reg=$2; shift 2
  # shellcheck disable=SC2086
  (cd "$T" && exec fio --name="$name" --ioengine=nbd --uri="$(uri pa/v)" --iodepth=16 \
      --group_reporting --output-format=terse --terse-version=3 --verify=crc32c \
      --verify_fatal=1 --verify_state_save=0 --do_verify=1 ${REGION[$reg]} "$@") \
      >"$T/fio-$name.out" 2>&1 &
  FIO_PID=$!
  add_cleanup "kill $FIO_PID"
}
fio_wait() {
  local name=$1 rc=0
  wait "$FIO_PID" || rc=$?
  if [ $rc -ne 0 ] || grep -qiE 'verify: bad|verify failed|bad magic|error' "$T/fio-$name.out"; then
    cat "$T/fio-$name.out"; fail "fio $name failed (exit $rc)"
  fi
  grep '^3;' "$T/fio-$name.out" | awk -F';' '{printf "  fio %s: write %s KiB/s, read %s KiB/s, no errors\n", $3, $48, $7}' | tail -1
}
fio_run() { fio_start "$@"; fio_wait "$1"; }
verify_all() {
  local r
  for r in "$@"; do fio_run "verify-$r" "$r" --verify_only=1; done
}

start_berthd
mkdir -p "$T/d"
A=$T/d/a.img B=$T/d/b.img C=$T/d/c.img D=$T/d/d.img

echo "== 1. pool add during fio"
berth pool create -o size=160M pa mirror "$A" "$B" >/dev/null || fail "pool create pa mirror"
berth vol create -V 80M pa/v >/dev/null || fail "vol create pa/v"
size0=$(pool_field pa size)
fio_start w1 r1
sleep 0.5
kill -0 "$FIO_PID" 2>/dev/null || fail "fio finished before the add"
truncate -s 160M "$C" "$D"
berth pool add pa mirror "$C" "$D" || fail "pool add pa mirror C D"
running=no; kill -0 "$FIO_PID" 2>/dev/null && running=yes
fio_wait w1
echo "  fio was still running after the add: $running"
[ "$(top_field pa n)" = 2 ] || fail "pa has $(top_field pa n) top-level vdevs, want 2"
[ "$(top_field pa 1 name)" = mirror-1 ] || fail "the new top is $(top_field pa 1 name)"
size1=$(pool_field pa size)
echo "  usable size $((size0 / M)) MiB -> $((size1 / M)) MiB"
[ "$size1" -gt $((size0 * 3 / 2)) ] || fail "the pool did not grow: $size0 -> $size1"
fio_run w2 r2
berth pool status pa
a0=$(top_field pa 0 alloc_bytes) a1=$(top_field pa 1 alloc_bytes)
echo "  allocated since open: mirror-0 $((a0 / 1024)) KiB, mirror-1 $((a1 / 1024)) KiB"
[ "$(top_field pa 1 allocated)" -gt $((4 * M)) ] || fail "no data on the new top: $(top_field pa 1 allocated)"
[ "$(top_field pa 0 allocated)" -gt $((4 * M)) ] || fail "no data on the old top"
berth pool status pa | grep -q "mirror-1" || fail "status does not show mirror-1"
verify_all r1 r2
check=$(berth --json pool check pa) || fail "pool check pa"
echo "$check" | grep -q '"consistent": *true' || fail "pool check: $check"

echo "== 2. export/import, verify again"
berth pool export pa >/dev/null || fail "export pa"
berth pool import pa >/dev/null || fail "import pa"
[ "$(top_field pa n)" = 2 ] || fail "2 tops expected after import"
verify_all r1 r2
echo "== 3. berthd restart imports it from pools.json with all four devices"
stop_berthd
start_berthd
[ "$(pool_field pa state)" = ONLINE ] || fail "pa is $(pool_field pa state) after a restart"
verify_all r1
berth pool export pa >/dev/null || fail "export pa"
echo "== 4. the added top missing: import refused"
mv "$C" "$T/c.away"; mv "$D" "$T/d.away"
out=$(berth pool import pa 2>&1) && fail "pa imported without its second top"
echo "  $out"
echo "$out" | grep -q "top-level vdev 1" || fail "the error does not name the missing top: $out"
mv "$T/c.away" "$C"; mv "$T/d.away" "$D"
berth pool import -d "$T/d" pa >/dev/null || fail "import pa with all devices back"
verify_all r2
berth pool destroy -f pa >/dev/null

echo "== 5. create with several tops; mismatched add; stripe warning; raidz1 space"
E=$T/d/e.img F=$T/d/f.img G=$T/d/g.img H=$T/d/h.img
berth pool create -o size=96M mm mirror "$A" "$B" mirror "$C" "$D" >/dev/null || fail "create two mirrors"
[ "$(top_field mm n)" = 2 ] || fail "mm has $(top_field mm n) tops"
out=$(berth pool add mm "$E" 2>&1) && fail "a single device added to a mirror pool without -f"
echo "  $out"
echo "$out" | grep -q "mismatched replication level" || fail "no mismatch message: $out"
# bad API bodies: clear 400s, nothing added
for body in '{"spec":["relative.img"]}' '{"spec":[]}' '{"spec":["mirror"]}' '{"spec":[7]}' \
            '{"spec":["raidz4","/x","/y","/z","/w","/v"]}' '{"force":true}'; do
  st=$(api_status POST /pools/mm/add "$body")
  [ "$st" = 400 ] || fail "POST /pools/mm/add $body: HTTP $st, want 400"
done
[ "$(api_status POST /pools/nope/add '{"spec":["/x"]}')" = 404 ] || fail "add to a missing pool is not 404"
[ "$(top_field mm n)" = 2 ] || fail "a refused add changed mm"
echo "  bad add bodies: 400, a missing pool 404"
berth pool destroy -f mm >/dev/null
out=$(berth pool create -f -o size=96M st "$E" "$F" 2>&1) || fail "create a stripe: $out"
echo "$out" | grep -q "without redundancy" || fail "no redundancy warning for a stripe: $out"
[ "$(top_field st n)" = 2 ] || fail "the stripe has $(top_field st n) tops"
berth pool status st | sed -n '/config:/,$p'
berth pool destroy -f st >/dev/null
berth pool create -f -o size=96M rz raidz1 "$E" "$F" "$G" "$H" >/dev/null || fail "create raidz1 of 4"
usable=$(pool_field rz size) raw=$(berth --json pool status rz | nbdpy -c 'import json,sys; print(json.load(sys.stdin)["raw_size"])')
echo "  raidz1 of 4 x 96 MiB: usable $((usable / M)) MiB of raw $((raw / M)) MiB"
fcmp "$usable" ">" "$((raw * 73 / 100))" && fcmp "$usable" "<" "$((raw * 77 / 100))" ||
  fail "raidz1 of 4: usable $usable is not ~3/4 of raw $raw"
berth pool list rz
berth pool status rz | sed -n '/config:/,$p'
berth pool destroy -f rz >/dev/null
echo "PASS"
