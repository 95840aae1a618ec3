#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Snapshots, rollback, clones and send/receive through the CLI: usage errors;
# snapshot (one, several atomically, -r), list, get, hold, release, destroy;
# a snapshot's NBD export is read-only and keeps the old bytes while the
# volume is overwritten; rollback (to an older snapshot, keeping the newer
# ones) restores byte-for-byte; clone + promote; send | recv into a second
# pool, full and incremental, byte-identical; a corrupted or truncated stream
# is refused and leaves the target as it was.
. "$(dirname "$0")/functions.sh"
requires qemu-io nbdinfo nbdcopy cmp script
requires_nbdpy

# put FILE EXPORT: write FILE over the start of an export
put() { nbdcopy "$1" "$(uri "$2")" || fail "nbdcopy $1 -> $2"; }
# same EXPORT FILE: the export reads exactly as FILE
same() {
  rm -f "$T/read.img"
  nbdcopy "$(uri "$1")" "$T/read.img" || fail "nbdcopy $1"
  cmp "$T/read.img" "$2" || fail "$1 differs from $(basename "$2")"
}
snap_prop() { berth -p -H snapshot get "$2" "$1" | cut -f3; }
clients_are() { [ "$(vol_prop "$1" nbd_clients)" = "$2" ]; }

start_berthd
mkpool tank 1G
mkpool tank2 1G
berth vol create -V 16M tank/a >/dev/null || fail "vol create tank/a"
berth vol create -V 16M tank/b >/dev/null || fail "vol create tank/b"
mkdata "$T/d1.img" 16 random
mkdata "$T/d2.img" 16 mixed
mkdata "$T/d3.img" 16 text

echo "== usage errors: exit 2, named"
rc_of 2 "Usage: berth snapshot" berth snapshot
rc_of 2 "unknown snapshot command 'tank/a'" berth snapshot tank/a
rc_of 2 "expected POOL/VOLUME@NAME" berth snapshot tank@s1
rc_of 2 "expected POOL/VOLUME@NAME" berth snapshot tank/a@
rc_of 2 "must be in one pool" berth snapshot tank/a@s tank2/a@s
rc_of 2 "neither POOL@NAME" berth snapshot -r tank@s@t
rc_of 2 "unknown snapshot property 'colour'" berth snapshot get colour tank/a@s1
rc_of 2 "needs TAG and POOL/VOL@NAME" berth snapshot hold tank/a@s1
rc_of 2 "expected POOL/VOLUME@NAME" berth rollback tank/a
rc_of 2 "different pools" berth clone tank/a@s1 tank2/c
rc_of 2 "needs exactly one POOL/VOL" berth promote
rc_of 2 "give one of -i and -I" berth send -i @a -I @b tank/a@s1
rc_of 2 "-A and --token go alone" berth recv -A -F tank2/a
rc_of 2 "unknown option '-z'" berth recv -z tank2/a
rc_of 2 "vol list -o takes only 'space'" berth vol list -o bogus
# send refuses a terminal as its stdout (script gives it one)
out=$(script -qec "$BERTH_BIN send tank/a@s1" /dev/null </dev/null 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"refusing to write a stream to a terminal"* ]] ||
  fail "send to a terminal: exit $rc: $out"
echo "  ok (2): send to a terminal refused"
berth help snapshot | grep -q "hold TAG" || fail "berth help snapshot"
berth send --help | grep -q "recv \[-F\] \[-s\]" || fail "berth send --help"

echo "== snapshot, list, get"
put "$T/d1.img" tank/a
berth snapshot tank/a@s1 | grep -qx "snapshot tank/a@s1 created" || fail "snapshot"
rc_of 1 "" berth snapshot tank/a@s1                              # exists
rc_of 1 "" berth snapshot tank/ghost@s1
berth snapshot tank/a@m tank/b@m >/dev/null || fail "two snapshots at once"
[ "$(snap_prop tank/a@m createtxg)" = "$(snap_prop tank/b@m createtxg)" ] ||
  fail "snapshots taken together have different txgs"
berth snapshot -r tank@r | sort | tr '\n' ' ' | grep -qx "snapshot tank/a@r created snapshot tank/b@r created " ||
  fail "snapshot -r"
[ "$(snap_prop tank/a@r createtxg)" = "$(snap_prop tank/b@r createtxg)" ] || fail "-r not atomic"
berth snapshot list | tee "$T/list"
head -1 "$T/list" | grep -q "^NAME *USED *REFER *CREATION *HOLDS$" || fail "list header"
[ "$(berth -H snapshot list | wc -l)" = 5 ] || fail "5 snapshots expected"
[ "$(berth -H snapshot list tank/b | cut -f1 | tr '\n' ' ')" = "tank/b@m tank/b@r " ] ||
  fail "snapshot list tank/b: $(berth -H snapshot list tank/b)"
[ "$(berth -H snapshot list tank2 | wc -l)" = 0 ] || fail "tank2 has no snapshots"
berth snapshot get all tank/a@s1 | tee "$T/get"
for p in used referenced logicalreferenced compressratio volsize volblocksize creation \
         createtxg guid userrefs holds clones defer_destroy nbd_clients uri; do
  grep -q "^tank/a@s1 *$p " "$T/get" || fail "snapshot get all lacks $p"
done
[ "$(snap_prop tank/a@s1 volsize)" = $((16 << 20)) ] || fail "snapshot volsize"
[ "$(snap_prop tank/a@s1 uri)" = "$(uri tank/a@s1)" ] || fail "snapshot uri"
berth --json snapshot get all tank/a@s1 | jfield full_name | grep -qx "tank/a@s1" || fail "--json get"
[ "$(vol_prop tank/a snapshot_count)" = 3 ] || fail "vol snapshot_count"
berth vol get all tank/a | grep -q "usedbysnapshots" || fail "vol get all lacks usedbysnapshots"
berth vol list -o space | grep -q "^NAME *USED *USEDSNAP *USEDDS *USEDREFRESERV *WRITTEN *SNAPS *ORIGIN$" ||
  fail "vol list -o space header"

echo "== hold, release, destroy"
berth snapshot hold keep tank/a@m | grep -qx "snapshot tank/a@m: hold 'keep' added" || fail "hold"
[ "$(snap_prop tank/a@m userrefs)" = 1 ] && [ "$(snap_prop tank/a@m holds)" = keep ] || fail "hold not shown"
rc_of 1 "" berth snapshot hold keep tank/a@m                     # already held
rc_of 1 "" berth snapshot destroy tank/a@m                       # held
berth snapshot release keep tank/a@m >/dev/null || fail "release"
rc_of 1 "" berth snapshot release keep tank/a@m                  # not held any more
berth snapshot destroy tank/a@m | grep -qx "snapshot tank/a@m destroyed" || fail "destroy"
berth snapshot destroy tank/b@m >/dev/null || fail "destroy b@m"
rc_of 1 "" berth snapshot destroy tank/a@m
[ "$(berth -H snapshot list | wc -l)" = 3 ] || fail "3 snapshots left"

echo "== the snapshot export: read-only, old bytes while the volume is overwritten"
nbdinfo "$(uri tank/a@s1)" | grep -q "is_read_only: true" || fail "snapshot export not read-only"
nbdinfo --list "$(uri tank/a)" | grep -q 'export="tank/a@s1"' || fail "NBD_OPT_LIST lacks tank/a@s1"
nbdpy - "$(uri tank/a@s1)" <<'EOF' || fail "write to the snapshot export was not refused with EPERM"
import errno, nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
try:
    h.pwrite(b"x" * 4096, 0)
except nbd.Error as e:
    # libnbd gives the errno as a name ("EPERM") or a number, by version
    sys.exit(0 if e.errno in (errno.EPERM, "EPERM") else "wrong errno %s" % e.errno)
sys.exit("write succeeded")
EOF
put "$T/d2.img" tank/a &
wpid=$!
same tank/a@s1 "$T/d1.img"
wait $wpid || fail "overwriting tank/a"
same tank/a@s1 "$T/d1.img"
same tank/a "$T/d2.img"

echo "== rollback"
berth snapshot tank/a@s2 >/dev/null || fail "snapshot s2"
put "$T/d3.img" tank/a
berth rollback tank/a@s1 | grep -qx "volume tank/a rolled back to tank/a@s1" || fail "rollback to s1"
same tank/a "$T/d1.img"
same tank/a@s2 "$T/d2.img"                                      # the newer one is kept
berth rollback tank/a@s2 >/dev/null || fail "rollback to s2"
same tank/a "$T/d2.img"
qemu-io -f raw "$(uri tank/a)" -c 'sleep 60000' >/dev/null 2>&1 &
qpid=$!
add_cleanup "kill $qpid"
wait_until 10 clients_are tank/a 1 || fail "NBD client not counted"
rc_of 1 "is in use by 1 NBD client" berth rollback tank/a@s1
berth rollback -f tank/a@s1 >/dev/null || fail "rollback -f"
kill $qpid 2>/dev/null
same tank/a "$T/d1.img"
berth rollback tank/a@s2 >/dev/null || fail "rollback to s2 again"

echo "== send | recv into another pool"
berth send tank/a@s1 | berth recv tank2/a | grep -qx "received tank2/a@s1 (.*)" || fail "full send | recv"
same tank2/a@s1 "$T/d1.img"
same tank2/a "$T/d1.img"
berth send -i @s1 tank/a@s2 >"$T/incr.stream" || fail "incremental send"
[ -s "$T/incr.stream" ] || fail "empty incremental stream"
# a flipped byte and a cut stream are refused, and the target stays as it was
python3 - "$T/incr.stream" "$T/bad.stream" <<'EOF'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[len(d) // 2] ^= 0x10
open(sys.argv[2], "wb").write(d)
EOF
rc_of 1 "corrupt" berth recv tank2/a <"$T/bad.stream"
head -c $(($(stat -c %s "$T/incr.stream") - 100)) "$T/incr.stream" >"$T/cut.stream"
rc_of 1 "truncated" berth recv tank2/a <"$T/cut.stream"
[ "$(berth -H snapshot list tank2/a | cut -f1)" = "tank2/a@s1" ] || fail "a bad stream left a snapshot"
same tank2/a "$T/d1.img"
api_status POST /pools/tank2/volumes/a/recv '{"x":1}' | grep -qx 400 || fail "JSON as a stream: not 400"
berth recv tank2/a <"$T/incr.stream" | grep -qx "received tank2/a@s2 (.*)" || fail "incremental recv"
same tank2/a@s2 "$T/d2.img"
same tank2/a "$T/d2.img"
same tank2/a@s1 "$T/d1.img"
rc_of 1 "" berth recv tank2/a <"$T/incr.stream"                 # applied already
rc_of 1 "" berth send tank/a@nope
rc_of 1 "" berth recv --token tank2/a                            # nothing interrupted

echo "== clone, promote"
berth clone tank/a@s1 tank/c | grep -qx "volume tank/c cloned from tank/a@s1" || fail "clone"
same tank/c "$T/d1.img"
[ "$(vol_prop tank/c origin)" = "tank/a@s1" ] || fail "clone origin: $(vol_prop tank/c origin)"
[ "$(snap_prop tank/a@s1 clones)" = 1 ] || fail "s1 has one clone"
put "$T/d3.img" tank/c
same tank/a@s1 "$T/d1.img"
rc_of 1 "" berth snapshot destroy tank/a@s1                      # it has a clone
berth clone -o compression=zstd tank/a@s2 tank/z >/dev/null || fail "clone -o"
[ "$(vol_prop tank/z compression)" = zstd-3 ] || [ "$(vol_prop tank/z compression)" = zstd ] ||
  fail "clone -o compression: $(vol_prop tank/z compression)"
berth vol destroy tank/z >/dev/null || fail "destroy clone z"
berth promote tank/c | grep -qx "volume tank/c promoted" || fail "promote"
[ "$(vol_prop tank/c origin)" = "" ] || fail "promoted clone still has an origin"
[ "$(vol_prop tank/a origin)" = "tank/c@s1" ] || fail "origin of a after promote: $(vol_prop tank/a origin)"
same tank/c@s1 "$T/d1.img"
same tank/c "$T/d3.img"
same tank/a "$T/d2.img"

echo "== destroy -r"
rc_of 1 "" berth vol destroy tank/b                              # has snapshots
berth vol destroy -r tank/b | grep -qx "volume tank/b destroyed" || fail "vol destroy -r"
[ "$(berth -H snapshot list tank | grep -c '^tank/b@')" = 0 ] || fail "b's snapshots left"
rc_of 1 "" berth vol destroy -r tank/c                           # tank/a is its clone
berth vol destroy -r tank/a >/dev/null || fail "destroy -r a"
berth vol destroy -r tank/c >/dev/null || fail "destroy -r c"
berth pool check tank >/dev/null || fail "pool check tank: $(berth pool check tank)"
berth pool check tank2 >/dev/null || fail "pool check tank2"
berthd_alive
stop_berthd
echo PASS
