#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Device replacement and resilver through berthd and the CLI, under fio
# (nbd engine, verify=crc32c):
#  1. a mirror device file is deleted while fio writes: fio sees no error;
#     export/import without it: DEGRADED;
#  2. `berth pool replace` with a new file while fio writes again: the
#     resilver copies the allocated bytes (about the pool's allocation, never
#     more), status shows the progress and then "resilvered"; ONLINE, fio
#     verifies everything, a scrub is clean;
#  3. a device offline while fio writes 16 MiB, online: the resilver copies
#     only about what was written (its DTL), far less than allocated;
#  4. `berth pool replace` of a healthy member: it stays ("replacing") while
#     the new one resilvers; kill -9 of berthd in the middle of that resilver
#     (slowed by a test knob): after the restart the resilver resumes from
#     where it got (copies less than a full one) and finishes, then the old
#     member is detached; everything verifies, a scrub is clean;
#  5. attach / detach, and the errors: detaching the last valid copy,
#     replacing an unknown device, a too small device;
#  6. raidz2 of 4 files: two deleted while fio writes, DEGRADED, both
#     replaced; each resilver copies about a quarter of the allocation (the
#     member's columns); fio verifies, a scrub is clean.
# The byte counts go to docs/PERFORMANCE.md.
. "$(dirname "$0")/functions.sh"
requires fio nbdcopy
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"
requires_nbdpy

M=$((1 << 20))
scan_field() { berth --json pool status "$1" | nbdpy -c 'import json,sys; print(json.load(sys.stdin)["scan"][sys.argv[1]])' "$2"; }
vdev_field() { berth --json pool status "$1" | nbdpy -c 'import json,sys; v=json.load(sys.stdin)["vdevs"][int(sys.argv[1])][sys.argv[2]]; print(str(v).lower() if isinstance(v, bool) else v)' "$2" "$3"; }
scan_idle() { local s; s=$(scan_field "$1" state) && [ "$s" != scanning ]; }
state_is() { [ "$(pool_field "$1" state)" = "$2" ]; }
resilver_wait() {
  wait_until 120 scan_idle "$1" || fail "the resilver of $1 did not finish in 120 s"
  [ "$(scan_field "$1" func)" = resilver ] && [ "$(scan_field "$1" state)" = finished ] ||
    fail "no finished resilver on $1: $(scan_field "$1" func) $(scan_field "$1" state)"
  scan_field "$1" resilvered
}
scrub_clean() {
  wait_until 120 scan_idle "$1" || fail "a scan of $1 did not finish"
  berth pool scrub "$1" >/dev/null || fail "pool scrub $1"
  wait_until 120 scan_idle "$1" || fail "the scrub of $1 did not finish in 120 s"
  local st rep errs
  st=$(scan_field "$1" state) rep=$(scan_field "$1" repaired) errs=$(scan_field "$1" errors)
  [ "$st" = finished ] && [ "$rep" = 0 ] && [ "$errs" = 0 ] ||
    fail "scrub of $1: $st, repaired $rep, $errs errors"
  echo "  scrub: clean"
}

declare -A REGION
REGION[r1]="--rw=randwrite --bs=16k --numjobs=2 --size=32M --offset=0 --offset_increment=32M --fsync=64"
REGION[r2]="--rw=randwrite --bs=16k --numjobs=1 --size=32M --offset=64M --fsync=64"
REGION[r3]="--rw=write --bs=64k --numjobs=1 --size=16M --offset=96M --fsync=16"
fio_start() {
  local name=$1 reg=$2; shift 2
  # shellcheck disable=SC2086
  (cd "$T" && exec fio --name="$name" --ioengine=nbd --uri="$(uri "${VOL:-rp/v}")" --iodepth=16 \
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
}
fio_run() { fio_start "$@"; fio_wait "$1"; }
verify_all() {
  local r
  for r in "$@"; do fio_run "verify-$r" "$r" --verify_only=1; done
  echo "  fio verify $*: pass"
}

start_berthd
mkdir -p "$T/d"
A=$T/d/a.img B=$T/d/b.img C=$T/d/c.img D=$T/d/d.img E=$T/d/e.img
berth pool create -o size=256M rp mirror "$A" "$B" >/dev/null || fail "pool create rp mirror"
berth vol create -V 112M -o compression=off rp/v >/dev/null || fail "vol create rp/v"

echo "== 1. b.img deleted while fio writes"
fio_start w1 r1
sleep 0.5
kill -0 "$FIO_PID" 2>/dev/null || fail "fio finished before the device could be deleted"
rm -f "$B"
fio_wait w1
echo "  fio: no error"
berth pool export rp >/dev/null || fail "export rp"
berth pool import rp >/dev/null || fail "import rp without b.img: $(berth pool import rp 2>&1)"
state_is rp DEGRADED || fail "rp without b.img is $(pool_field rp state), want DEGRADED"
[ "$(vdev_field rp 1 state)" = UNAVAIL ] || fail "b.img is $(vdev_field rp 1 state), want UNAVAIL"

echo "== 2. replace it by c.img while fio writes"
alloc=$(pool_field rp allocated)
fio_start w2 r2
sleep 0.3
berth pool replace rp 1 "$C" || fail "pool replace rp 1 $C"
fio_wait w2
rs=$(resilver_wait rp)
alloc2=$(pool_field rp allocated)
echo "  resilvered $rs bytes; allocated $alloc before the replace, $alloc2 after fio"
[ "$rs" -gt $((alloc / 2)) ] && [ "$rs" -le "$alloc2" ] ||
  fail "resilvered $rs bytes: not about the allocation ($alloc .. $alloc2)"
echo "resilver-replace mirror resilvered=$rs allocated=$alloc" >>"$T/numbers"
berth pool status rp | tee "$T/status2"
grep -q "scan: resilvered" "$T/status2" || fail "pool status does not say resilvered"
state_is rp ONLINE || fail "rp is $(pool_field rp state) after the resilver"
[ "$(vdev_field rp 1 path)" = "$C" ] || fail "device 1 is $(vdev_field rp 1 path), not $C"
verify_all r1 r2
scrub_clean rp

echo "== 3. a.img offline while fio writes 16 MiB, online: only that is resilvered"
berth pool offline rp "$A" >/dev/null || fail "pool offline rp $A"
state_is rp DEGRADED || fail "rp is $(pool_field rp state) with a.img offline"
fio_run w3 r3
berth pool sync rp >/dev/null
berth pool online rp "$A" >/dev/null || fail "pool online rp $A"
rs=$(resilver_wait rp)
alloc=$(pool_field rp allocated)
echo "  resilvered $rs bytes after 16 MiB written while offline (allocated $alloc)"
[ "$rs" -ge $((16 * M)) ] && [ "$rs" -lt $((20 * M)) ] && [ "$rs" -lt $((alloc / 3)) ] ||
  fail "DTL resilver copied $rs bytes for 16 MiB written"
echo "resilver-dtl mirror resilvered=$rs written=$((16 * M)) allocated=$alloc" >>"$T/numbers"
state_is rp ONLINE || fail "rp is $(pool_field rp state) after the DTL resilver"
verify_all r1 r2 r3
scrub_clean rp

echo "== 4. kill -9 of berthd during a resilver"
berth pool debug rp "resilver_delay_ms=4" >/dev/null || fail "debug resilver_delay_ms"
berth pool replace rp "$C" "$D" || fail "pool replace rp $C $D"
berth pool status rp | tee "$T/status4" | grep -q "resilver in progress" ||
  fail "pool status does not show the resilver in progress"
grep -q "(resilvering)" "$T/status4" && grep -q "replacing $C" "$T/status4" ||
  fail "pool status does not show d.img resilvering, replacing c.img"
[ "$(vdev_field rp 1 state)" = ONLINE ] && [ "$(vdev_field rp 2 path)" = "$D" ] ||
  fail "c.img should stay ONLINE while d.img resilvers"
half() { [ "$(scan_field rp resilvered)" -gt $((alloc / 4)) ]; }
wait_until 60 half || fail "the slowed resilver did not reach a quarter"
sleep 1.2 # its position reaches the labels every second
before=$(scan_field rp resilvered)
[ "$(scan_field rp state)" = scanning ] || fail "the resilver finished before the kill: slow it more"
kill_berthd
start_berthd
state_is rp DEGRADED || state_is rp ONLINE || fail "rp is $(pool_field rp state) after the restart"
rs=$(resilver_wait rp)
echo "  resilvered $before bytes before the kill, $rs after the restart (allocated $alloc)"
[ "$rs" -gt 0 ] && [ "$rs" -lt $((alloc - before / 2)) ] ||
  fail "the resilver did not resume: $rs bytes after the restart, $before before"
echo "resilver-resume mirror before_kill=$before after_restart=$rs allocated=$alloc" >>"$T/numbers"
state_is rp ONLINE || fail "rp is $(pool_field rp state) after the resumed resilver"
[ "$(vdev_field rp 1 path)" = "$D" ] || fail "device 1 is $(vdev_field rp 1 path), not $D"
c_forgotten() { ! grep -q "d/c.img" "$STATE/pools.json"; }
wait_until 10 c_forgotten || fail "pools.json still lists the detached c.img"
verify_all r1 r2 r3
scrub_clean rp

echo "== 5. attach, detach, errors"
berth pool attach rp "$D" "$E" >/dev/null || fail "pool attach rp $D $E"
resilver_wait rp >/dev/null
[ "$(pool_field rp state)" = ONLINE ] && [ "$(vdev_field rp 2 path)" = "$E" ] ||
  fail "after attach: $(pool_field rp state), device 2 $(vdev_field rp 2 path)"
berth pool detach rp "$A" >/dev/null || fail "pool detach rp $A"
berth pool detach rp "$D" >/dev/null || fail "pool detach rp $D"
rc_of 1 "only device" berth pool detach rp "$E"
rc_of 1 "has no device" berth pool replace rp /nonexistent "$T/d/x.img"
truncate -s 32M "$T/d/small.img"
rc_of 1 "too small" berth pool attach rp "$E" "$T/d/small.img"
rc_of 2 "usage" berth pool replace rp "$E"
# the only device of a mirror replaced: it stays until the new one holds all
X=$T/d/x.img
berth pool replace rp "$E" "$X" >/dev/null || fail "pool replace rp $E $X (the only device)"
resilver_wait rp >/dev/null
[ "$(vdev_field rp 0 path)" = "$X" ] && [ "$(pool_field rp state)" = ONLINE ] ||
  fail "after replacing the only device: $(vdev_field rp 0 path) $(pool_field rp state)"
berth pool status rp | grep -q "$E" && fail "e.img is still shown after its replacement"
verify_all r1 r2 r3
# berthd imports it from the devices it has now (e.img, wiped, is ignored)
stop_berthd
start_berthd
state_is rp ONLINE || fail "rp is $(pool_field rp state) after a restart with x.img alone"
verify_all r1
echo "== 6. raidz2: two devices deleted while fio writes, both replaced"
Z=$T/z
mkdir -p "$Z"
berth pool create -o size=192M rz raidz2 "$Z/0.img" "$Z/1.img" "$Z/2.img" "$Z/3.img" >/dev/null ||
  fail "pool create rz raidz2"
berth vol create -V 112M -o compression=off rz/v >/dev/null || fail "vol create rz/v"
VOL=rz/v
fio_start z1 r1
sleep 0.5
kill -0 "$FIO_PID" 2>/dev/null || fail "fio finished before the devices could be deleted"
rm -f "$Z/0.img" "$Z/2.img"
fio_wait z1
berth pool export rz >/dev/null || fail "export rz"
berth pool import rz >/dev/null || fail "import rz without two devices: $(berth pool import rz 2>&1)"
state_is rz DEGRADED || fail "rz without two devices is $(pool_field rz state)"
alloc=$(berth --json pool status rz | nbdpy -c 'import json,sys; print(json.load(sys.stdin)["raw_allocated"])')
for k in 0 2; do
  berth pool replace rz "$k" "$Z/new$k.img" >/dev/null || fail "pool replace rz $k"
  rs=$(resilver_wait rz)
  echo "  raidz2 member $k: resilvered $rs bytes of $alloc allocated"
  [ "$rs" -gt $((alloc / 5)) ] && [ "$rs" -lt $((alloc / 3)) ] ||
    fail "raidz2 member $k: resilvered $rs bytes, not about a quarter of $alloc"
  echo "resilver-replace raidz2/4 member=$k resilvered=$rs allocated=$alloc" >>"$T/numbers"
done
state_is rz ONLINE || fail "rz is $(pool_field rz state) after the replacements"
verify_all r1
scrub_clean rz
berthd_alive
stop_berthd
cat "$T/numbers"
echo PASS
