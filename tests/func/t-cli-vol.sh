#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every `berth vol` command through the CLI with its output: create (-b,
# --thick, -o), list, get (one, several, all; -p), set, resize (grow, shrink
# only with --force), uri, destroy (refused with a connected NBD client, -f
# disconnects it).
. "$(dirname "$0")/functions.sh"
requires qemu-io nbdinfo
# clients_are POOL/VOL N: the volume has N NBD clients (for wait_until)
clients_are() { [ "$(vol_prop "$1" nbd_clients)" = "$2" ]; }
start_berthd
mkpool tank 1G

echo "== create"
berth vol create -V 64M tank/thin | grep -qx "volume tank/thin created" || fail "create"
berth vol create -b 4K --thick -o compression=off -o checksum=sha256 -V 32M tank/thick >/dev/null || fail "create --thick"
berth vol create -s -o readonly=on -o refreservation=8M -V 16M tank/ro >/dev/null || fail "create -o readonly"
expect_fail berth vol create -V 16M tank/thin                  # exists
expect_fail berth vol create -b 3K -V 16M tank/badbs            # not a power of two
expect_fail berth vol create -b 256K -V 16M tank/badbs          # too large
expect_fail berth vol create -V lots tank/badsize
expect_fail berth vol create -o colour=red -V 16M tank/badprop
expect_fail berth vol create -V 16M ghost/v

echo "== list"
berth vol list | tee "$T/list"
head -1 "$T/list" | grep -q "^NAME *USED *REFER *VOLSIZE *RATIO$" || fail "vol list header"
grep -q "^tank/thin .* 64M .*1.00x$" "$T/list" || fail "tank/thin row"
[ "$(berth vol list tank | wc -l)" = 4 ] || fail "vol list tank"
[ "$(berth -p vol list -H tank | awk '$1 == "tank/thick" {print $4}')" = $((32 << 20)) ] || fail "-p volsize"

echo "== get"
berth vol get all tank/thick | tee "$T/get"
for p in volsize volblocksize compression checksum refreservation readonly used referenced \
         logicalused compressratio createtxg guid nbd_clients uri; do
  grep -q "^tank/thick *$p " "$T/get" || fail "vol get all lacks $p"
done
grep -q "volblocksize *4K$" "$T/get" || fail "volblocksize 4K"
grep -q "compression *off$" "$T/get" || fail "compression off"
grep -q "checksum *sha256$" "$T/get" || fail "checksum sha256"
grep -q "refreservation *32M$" "$T/get" || fail "thick refreservation"
[ "$(berth vol get used,volsize tank/thin | wc -l)" = 3 ] || fail "vol get a,b"
[ "$(berth -p -H vol get volsize tank/thin | cut -f3)" = $((64 << 20)) ] || fail "vol get -p -H"
[ "$(berth vol get readonly tank/ro | awk 'NR==2 {print $3}')" = on ] || fail "readonly on"
berth --json vol get all tank/thin | jfield full_name | grep -qx tank/thin || fail "--json vol get"

echo "== set"
berth vol set compression=zstd-7 tank/thin >/dev/null || fail "set compression"
[ "$(vol_prop tank/thin compression)" = zstd-7 ] || fail "compression not zstd-7"
berth vol set refreservation=16M readonly=on tank/thin >/dev/null || fail "set two props"
[ "$(vol_prop tank/thin readonly)" = on ] || fail "readonly not on"
berth vol set readonly=off refreservation=none tank/thin >/dev/null || fail "set back"
berth vol set volsize=128M tank/thin >/dev/null || fail "set volsize"
[ "$(vol_prop tank/thin volsize)" = $((128 << 20)) ] || fail "volsize 128M"
expect_fail berth vol set used=1 tank/thin
expect_fail berth vol set volblocksize=8K tank/thin
expect_fail berth vol set compression=gzip tank/thin
expect_fail berth vol set compression=lz4 tank/ghost

echo "== resize"
berth vol resize tank/thin 256M | grep -qx "volume tank/thin: volsize 256M" || fail "grow"
out=$(berth vol resize tank/thin 64M 2>&1) && fail "shrink without --force succeeded: $out"
echo "  expected failure: $out"
berth vol resize --force tank/thin 64M >/dev/null || fail "shrink --force"
[ "$(vol_prop tank/thin volsize)" = $((64 << 20)) ] || fail "volsize after shrink"

echo "== uri"
[ "$(berth vol uri tank/thin)" = "nbd+unix:///tank/thin?socket=$NBD_SOCK" ] || fail "uri: $(berth vol uri tank/thin)"
nbdinfo --size "$(berth vol uri tank/thin)" | grep -qx $((64 << 20)) || fail "nbdinfo via vol uri"
expect_fail berth vol uri --tcp tank/thin           # no --nbd-tcp
expect_fail berth vol uri tank/ghost

echo "== destroy"
qemu-io -f raw "$(uri tank/thin)" -c 'write -P 1 0 1M' -c 'sleep 60000' >/dev/null 2>&1 &
qpid=$!
add_cleanup "kill $qpid"
wait_until 10 clients_are tank/thin 1 || fail "NBD client not counted"
out=$(berth vol destroy tank/thin 2>&1); rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"volume tank/thin is in use by 1 NBD client"* ]] || fail "destroy busy: $rc $out"
echo "  expected failure: $out"
berth vol destroy -f tank/thin | grep -qx "volume tank/thin destroyed" || fail "destroy -f"
kill $qpid 2>/dev/null
berth vol list | grep -q "tank/thin" && fail "tank/thin still listed"
berth vol destroy tank/ro >/dev/null || fail "destroy"
expect_fail berth vol destroy tank/ro
[ "$(berth -H vol list | wc -l)" = 1 ] || fail "volumes left: $(berth vol list)"
berthd_alive
stop_berthd
echo PASS
