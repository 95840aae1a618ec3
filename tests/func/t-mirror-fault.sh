#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Mirror device faults under load: fio (nbd engine, verify=crc32c, FLUSH every
# 64 writes so txgs commit while it runs) writes to a volume of a 2-way mirror
#  1. while one device starts failing every write (debug knob fail_writes):
#     the pool goes DEGRADED during the run, the device FAULTED, fio sees no
#     error and its verify passes;
#  2. the device comes back (knob off, online): a resilver copies what it
#     missed (its DTL), it is ONLINE, both devices hold identical allocated
#     sectors; everything fio wrote verifies;
#  3. reads failing on one device (fail_reads) are served from the other;
#  4. a device file moved away while fio writes, then export and import
#     without it: the pool imports DEGRADED (the member shown missing) and
#     serves reads and writes; the file put back, export/import: resilvered,
#     ONLINE, identical copies, all data verifies;
#  5. kill -9 of berthd during a scrub that is repairing a damaged device:
#     after a restart `pool check` passes, a new scrub completes and repairs,
#     a second finds nothing;
#  6. a member that missed writes is resilvered at import and alone then
#     gives the new data, never old data; berthd restarted with a member
#     missing brings the pool up DEGRADED, and the member is taken back by
#     export/import (resilver).
. "$(dirname "$0")/functions.sh"
requires fio cmp nbdcopy
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio has no nbd engine"
requires_nbdpy

MU() { nbdpy "$BERTH_TOP/tests/func/mirror-util.py" "$@"; }
M=$((1 << 20))
scan_field() { berth --json pool status "$1" | nbdpy -c 'import json,sys; print(json.load(sys.stdin)["scan"][sys.argv[1]])' "$2"; }
vdev_field() { berth --json pool status "$1" | nbdpy -c 'import json,sys; v=json.load(sys.stdin)["vdevs"][int(sys.argv[1])][sys.argv[2]]; print(str(v).lower() if isinstance(v, bool) else v)' "$2" "$3"; }
scrub_done() { local s; s=$(scan_field "$1" state) && [ "$s" != scanning ]; }
# resilver_wait POOL: wait for the resilver a device's return started; prints
# the bytes it copied
resilver_wait() {
  wait_until 60 scrub_done "$1" || fail "the resilver of $1 did not finish in 60 s"
  [ "$(scan_field "$1" func)" = resilver ] && [ "$(scan_field "$1" state)" = finished ] ||
    fail "no finished resilver on $1: $(scan_field "$1" func) $(scan_field "$1" state)"
  scan_field "$1" resilvered
}
state_is() { [ "$(pool_field "$1" state)" = "$2" ]; }
scrub() {
  wait_until 60 scrub_done "$1" || fail "a scan of $1 did not finish in 60 s"
  berth pool scrub "$1" >/dev/null || fail "pool scrub $1"
  wait_until 60 scrub_done "$1" || fail "the scrub of $1 did not finish in 60 s"
  [ "$(scan_field "$1" state)" = finished ] || fail "the scrub of $1 ended $(scan_field "$1" state)"
  echo "$(scan_field "$1" repaired) $(scan_field "$1" errors)"
}
# `berth pool online|offline` exist only once the API has the routes; until
# then a device comes back through export/import (it is found stale)
have_online=0
berth pool --help 2>&1 | grep -qE '^\s+online' && have_online=1

# fio job groups; each region is written once and verified again later with
# the same arguments (verify_only replays the same random sequence)
declare -A REGION
REGION[r1]="--rw=randwrite --bs=4k --numjobs=2 --size=40M --offset=0 --offset_increment=40M --fsync=64"
REGION[r2]="--rw=randwrite --bs=16k --numjobs=1 --size=32M --offset=80M --fsync=64"
REGION[r4a]="--rw=randwrite --bs=8k --numjobs=1 --size=32M --offset=112M --fsync=64"
REGION[r4b]="--rw=write --bs=64k --numjobs=1 --size=32M --offset=144M --fsync=16"

# fio_start NAME REGION [ARGS]: run fio in the background (FIO_PID)
fio_start() {
  local name=$1 reg=$2; shift 2
  # shellcheck disable=SC2086
  (cd "$T" && exec fio --name="$name" --ioengine=nbd --uri="$(uri fm/v)" --iodepth=16 \
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
mkdir -p "$T/d" "$T/away"
A=$T/d/a.img B=$T/d/b.img
berth pool create -o size=384M fm mirror "$A" "$B" >/dev/null || fail "pool create fm mirror"
berth vol create -V 176M fm/v >/dev/null || fail "vol create fm/v"

echo "== 1. device 1 fails every write while fio writes"
fio_start w1 r1
sleep 0.5
kill -0 "$FIO_PID" 2>/dev/null || fail "fio finished before the fault could be injected"
berth pool debug fm "vdev=1 fail_writes=on" >/dev/null || fail "debug vdev=1 fail_writes=on"
wait_until 30 state_is fm DEGRADED || fail "fm is $(pool_field fm state), not DEGRADED, with device 1 failing writes"
running=no; kill -0 "$FIO_PID" 2>/dev/null && running=yes
fio_wait w1
echo "  DEGRADED while fio was still running: $running"
berth pool status fm
[ "$(vdev_field fm 1 state)" = FAULTED ] || fail "device 1 is $(vdev_field fm 1 state), want FAULTED"
[ "$(vdev_field fm 1 write_errors)" -gt 0 ] || fail "no write errors counted on device 1"
[ "$(vdev_field fm 0 state)" = ONLINE ] || fail "device 0 is $(vdev_field fm 0 state)"
[ "$(vdev_field fm 0 write_errors)" = 0 ] || fail "write errors counted on device 0"
fio_run w2 r2                       # more writes that device 1 misses
berth pool debug fm "vdev=1 fail_writes=off" >/dev/null || fail "debug vdev=1 fail_writes=off"
berth pool sync fm >/dev/null
[ "$(vdev_field fm 1 state)" = FAULTED ] || fail "device 1 came back by itself (knob off): $(vdev_field fm 1 state)"

echo "== 2. device 1 back: a resilver copies what it missed"
if [ $have_online = 1 ]; then
  berth pool online fm "$B" || fail "pool online fm $B"
else
  echo "  (no 'berth pool online': export and import bring it back)"
  berth pool export fm >/dev/null || fail "export fm"
  berth pool import fm >/dev/null || fail "import fm"
fi
[ "$(vdev_field fm 1 state)" = ONLINE ] || fail "device 1 is $(vdev_field fm 1 state) after coming back"
rs=$(resilver_wait fm)
echo "  resilvered $rs bytes (allocated $(pool_field fm allocated))"
[ "$rs" -gt $((16 * M)) ] || fail "the resilver copied only $rs bytes"
state_is fm ONLINE || fail "fm is $(pool_field fm state) after the resilver"
[ "$(vdev_field fm 1 stale)" = false ] || fail "device 1 still stale after the resilver"
read -r rep errs < <(scrub fm)
[ "$errs" = 0 ] && [ "$rep" = 0 ] || fail "scrub after the resilver: repaired $rep bytes, $errs errors"
berth pool sync fm >/dev/null
MU cmp "$A" "$B" || fail "the devices differ after the resilvering scrub"
verify_all r1 r2

echo "== 3. device 0 fails every read: served from device 1"
berth pool export fm >/dev/null && berth pool import fm >/dev/null || fail "export/import (cold cache)"
berth pool debug fm "vdev=0 fail_reads=on" >/dev/null || fail "debug vdev=0 fail_reads=on"
verify_all r1
re=$(vdev_field fm 0 read_errors)
echo "  device 0: $re read errors; pool $(pool_field fm state)"
[ "$re" -gt 0 ] || fail "no read errors counted on device 0"
[ "$(vdev_field fm 1 read_errors)" = 0 ] || fail "read errors counted on device 1"
berth pool debug fm "vdev=0 fail_reads=off" >/dev/null || fail "debug vdev=0 fail_reads=off"
read -r rep errs < <(scrub fm)
[ "$errs" = 0 ] || fail "scrub after fail_reads: $errs errors"

echo "== 4. device file moved away while fio writes; import without it"
fio_start w4a r4a
sleep 0.3
mv "$B" "$T/away/b.img"
fio_wait w4a
berth pool export fm >/dev/null || fail "export fm with b.img moved away"
berth pool import fm >/dev/null || fail "import fm without b.img: $(berth pool import fm 2>&1)"
berth pool status fm
state_is fm DEGRADED || fail "fm imported without b.img is $(pool_field fm state), want DEGRADED"
[ "$(vdev_field fm 1 state)" = UNAVAIL ] || fail "the missing device is $(vdev_field fm 1 state), want UNAVAIL"
[[ "$(vdev_field fm 1 path)" == missing-* ]] || fail "the missing device is shown as $(vdev_field fm 1 path)"
fio_run w4b r4b                     # writes while DEGRADED
verify_all r1 r2 r4a
berth pool check fm >/dev/null || fail "pool check (DEGRADED)"
mv "$T/away/b.img" "$B"
berth pool export fm >/dev/null || fail "export fm (4)"
berth pool import fm >/dev/null || fail "import fm with b.img back"
rs=$(resilver_wait fm)
echo "  resilvered $rs bytes at import"
[ "$rs" -gt 0 ] || fail "b.img came back after missing txgs but nothing was resilvered"
state_is fm ONLINE || fail "fm is $(pool_field fm state) after the resilver (4)"
berth pool sync fm >/dev/null
MU cmp "$A" "$B" || fail "the devices differ after the scrub (4)"
verify_all r1 r2 r4a r4b

echo "== 5. kill -9 during a scrub"
# damage device 1 in 8 allocated places so that the scrub has repairs to do
read -r ds _ < <(MU layout "$B")
MU pick "$B" 8 "$RANDOM" "$T/ranges" >/dev/null || fail "picking ranges"
while read -r off len; do
  berth pool debug fm "vdev=1 corrupt=$((off - ds)):$len" >/dev/null || fail "debug corrupt"
done <"$T/ranges"
berth pool scrub fm >/dev/null || fail "pool scrub fm (5)"
berth --json pool status fm >"$T/before-kill.json"
kill_berthd
st=$(jfield state <<<"$(nbdpy -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["scan"]))' "$T/before-kill.json")")
echo "  scan at the kill: $(nbdpy -c 'import json,sys; s=json.load(open(sys.argv[1]))["scan"]; print("%s, %d of %d bytes examined" % (s["state"], s["examined"], s["total"]))' "$T/before-kill.json")"
[ "$st" = scanning ] || fail "the scrub was not running any more when berthd was killed ($st): use more data"
start_berthd
state_is fm ONLINE || fail "fm is $(pool_field fm state) after kill -9 and restart"
berth pool check fm >/dev/null || fail "pool check after kill -9 during a scrub: $(berth pool check fm 2>&1)"
read -r rep errs < <(scrub fm)
echo "  scrub after the restart: repaired $rep bytes, $errs errors"
[ "$errs" = 0 ] || fail "scrub after the restart: $errs errors"
read -r rep errs < <(scrub fm)
[ "$rep" = 0 ] && [ "$errs" = 0 ] || fail "a second scrub after the restart: repaired $rep, errors $errs"
berth pool check fm >/dev/null || fail "pool check at the end"
verify_all r1 r2 r4a r4b
berth pool export fm >/dev/null || fail "export fm (5)"
MU cmp "$A" "$B" || fail "the devices differ at the end"

echo "== 6. a member that missed writes is resilvered at import, then alone gives new data; a restart with a member missing comes up DEGRADED"
berth pool import fm >/dev/null || fail "import fm (6)"
# a) a device that came back stale must stay stale until a scrub has
#    repaired it, across export/import (and restarts): it misses the blocks
#    written while it was away.  Volume w: 0x11 everywhere, then 0x22 while
#    b.img fails writes
berth vol create -V 16M -o compression=off fm/w >/dev/null || fail "vol create fm/w"
# pat URI BYTE: write BYTE over the volume, flush
pat() { nbdpy -c 'import nbd,sys; h=nbd.NBD(); h.connect_uri(sys.argv[1]); h.pwrite(bytes([int(sys.argv[2], 0)]) * (16 << 20), 0); h.flush()' "$1" "$2"; }
pat "$(uri fm/w)" 0x11 || fail "write 0x11 to fm/w"
berth pool sync fm >/dev/null
berth pool debug fm "vdev=1 fail_writes=on" >/dev/null || fail "debug (6a)"
pat "$(uri fm/w)" 0x22 || fail "write 0x22 to fm/w"
berth pool sync fm >/dev/null
state_is fm DEGRADED || fail "fm did not go DEGRADED (6a)"
berth pool debug fm "vdev=1 fail_writes=off" >/dev/null
berth pool export fm >/dev/null && berth pool import fm >/dev/null || fail "export/import (6a)"
rs=$(resilver_wait fm)
[ "$rs" -ge $((16 * M)) ] || fail "b.img missed 16 MiB but $rs bytes were resilvered (6a)"
[ "$(vdev_field fm 1 stale)" = false ] || fail "b.img still stale after the resilver (6a)"
# with a.img gone, b.img alone must give 0x22 or EIO (or refuse to import),
# never the overwritten 0x11
berth pool export fm >/dev/null || fail "export (6a, 3)"
mv "$A" "$T/away/a.img"
b_alone_ok() {
  berth pool import fm >/dev/null 2>&1 || return 0      # refusing is right
  echo "  b.img alone imported $(pool_field fm state) at txg $(pool_field fm txg)"
  nbdpy - "$(uri fm/w)" <<'EOF'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
new = eio = old = 0
for off in range(0, 16 << 20, 65536):
    try:
        d = h.pread(65536, off)
    except nbd.Error:
        eio += 1
        continue
    if d == b"\x22" * 65536: new += 1
    else: old += 1
print("  fm/w from b.img alone: %d blocks new data, %d EIO, %d old or wrong data" % (new, eio, old))
sys.exit(1 if old else 0)
EOF
}
# (here it gives EIO, which is right; on a pool with fewer txgs it imported an
# old txg and served 0x11: see the bug report)
b_alone_ok || fail "b.img alone served the overwritten data (a silent rollback)"
berth pool export fm >/dev/null 2>&1
mv "$T/away/a.img" "$A"
berth pool import fm >/dev/null || fail "import fm with both devices (6a)"
read -r rep errs < <(scrub fm)
[ "$errs" = 0 ] || fail "scrub (6a): $errs errors"
nbdpy -c 'import nbd,sys; h=nbd.NBD(); h.connect_uri(sys.argv[1]); assert h.pread(16 << 20, 0) == b"\x22" * (16 << 20)' "$(uri fm/w)" ||
  fail "fm/w does not read 0x22 after the scrub"
# b) berthd restarted while a mirror member is missing: the pool must come up
#    DEGRADED, not UNAVAIL
stop_berthd
mv "$B" "$T/away/b.img"
start_berthd
state_is fm DEGRADED || fail "berthd restarted with one mirror member missing: pool is $(pool_field fm state), want DEGRADED"
mv "$T/away/b.img" "$B"
# the member is back: an export and import by name takes it again (stale)
berth pool export fm >/dev/null && berth pool import fm >/dev/null || fail "re-import fm with both devices (6b)"
read -r rep errs < <(scrub fm)
[ "$errs" = 0 ] || fail "scrub (6b): $errs errors"
state_is fm ONLINE || berth pool import fm >/dev/null || fail "import fm with both devices back (6b)"
state_is fm ONLINE || fail "fm is $(pool_field fm state) at the end"
verify_all r1 r2 r4a r4b

berthd_alive
stop_berthd
echo PASS
