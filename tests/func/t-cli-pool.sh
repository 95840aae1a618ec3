#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every `berth pool` command through the CLI, checking its text output, -p,
# -H and --json: create, list, status, set, sync, trim, check, debug, export,
# import (listing, -d, by name, remembered location), destroy (-f with a
# connected NBD client).
. "$(dirname "$0")/functions.sh"
requires qemu-io
# clients_are POOL/VOL N: the volume has N NBD clients (for wait_until)
clients_are() { [ "$(vol_prop "$1" nbd_clients)" = "$2" ]; }
start_berthd

echo "== create / list"
out=$(berth pool create -o size=512M tank "$T/tank.img") || fail "create"
[ "$out" = "pool tank created" ] || fail "create output: $out"
cd "$T" && berth pool create -o size=256M -O compression=zstd-5 -O checksum=sha256 rel rel.img >/dev/null && cd - >/dev/null || fail "create with a relative vdev path"
[ "$(berth --json pool status rel | jfield path)" = "$T/rel.img" ] || fail "relative vdev not made absolute"
berth pool list | tee "$T/list"
head -1 "$T/list" | grep -q "^NAME *SIZE *ALLOC *FREE *FRAG *CAP *RATIO *HEALTH$" || fail "pool list header"
grep -q "^tank .*ONLINE$" "$T/list" || fail "tank not listed"
berth pool list -H | grep -qP "^rel\t" || fail "-H output is not tab-separated"
size_p=$(berth -p pool list -H tank | cut -f2)
[[ "$size_p" =~ ^[0-9]+$ ]] && [ "$size_p" -gt $((400 << 20)) ] || fail "-p size: $size_p"
berth pool list --json | jfield pools >/dev/null || fail "--json after the command"
expect_fail berth pool list ghost

echo "== status"
berth pool status tank | tee "$T/st"
for k in "pool: tank" "state: ONLINE" "guid:" "txg:" "size:" "allocated:" "fragmentation:" \
         "ratio:" "compression=lz4" "checksum=xxh3" "READ WRITE CKSUM" "$T/tank.img" "errors: No known data errors"; do
  grep -qF -- "$k" "$T/st" || fail "pool status lacks '$k'"
done
berth pool status | grep -c "^  pool:" | grep -qx 2 || fail "pool status without NAME shows every pool"
[ "$(berth --json pool status rel | jfield compression)" = zstd-5 ] || fail "rel compression"
for f in guid txg ashift autotrim size allocated free fragmentation capacity logical_bytes physical_bytes \
         compressratio read_errors write_errors checksum_errors nvols compression checksum cache_bytes \
         cache_hits cache_misses nbd_clients reads writes bytes_read bytes_written; do
  berth --json pool status tank | jfield "$f" >/dev/null || fail "status JSON lacks $f"
done

echo "== set"
berth pool set autotrim=off tank >/dev/null || fail "set autotrim"
[ "$(pool_field tank autotrim)" = off ] || fail "autotrim not off"
berth pool set compression=zstd checksum=sha256 tank >/dev/null || fail "set two props"
[[ "$(pool_field tank compression)" == zstd* ]] || fail "compression not zstd"
expect_fail berth pool set compression=gzip tank
expect_fail berth pool set ashift=9 tank
expect_fail berth pool set colour=red tank

echo "== sync / trim / check / debug"
berth vol create -V 64M tank/v >/dev/null || fail "vol create"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x5a 0 32M' >/dev/null || fail "write"
berth pool sync tank | grep -q "^pool tank: synced, txg [0-9]*$" || fail "sync output"
berth pool trim tank | grep -q "^pool tank: trimmed " || fail "trim output"
berth pool check tank | grep -q "consistent" || fail "check output"
berth pool debug tank fail_reads=off | grep -q "debug knob fail_reads=off set" || fail "debug"
expect_fail berth pool debug tank bogus_knob

echo "== destroy refuses with an NBD client, -f kicks it"
qemu-io -f raw "$(uri tank/v)" -c 'sleep 60000' >/dev/null 2>&1 &
qpid=$!
add_cleanup "kill $qpid"
wait_until 10 clients_are tank/v 1 || fail "NBD client not counted"
out=$(berth pool destroy tank 2>&1); rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"in use by 1 NBD client (tank/v)"* ]] || fail "destroy while busy: $rc $out"
out=$(berth pool export tank 2>&1); rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"in use"* ]] || fail "export while busy: $rc $out"
[ "$(pool_field tank nbd_clients)" = 1 ] || fail "pool nbd_clients"

echo "== export -f / import"
berth pool export -f tank | grep -qx "pool tank exported" || fail "export -f"
kill $qpid 2>/dev/null   # qemu-io only notices the disconnect at its next request
berth pool list | grep -q "^tank " && fail "tank still listed after export"
berth pool import | tee "$T/imp"
grep -q "pool: tank" "$T/imp" || fail "remembered exported pool not offered for import"
berth pool import -d "$T" | grep -q "vdev: $T/tank.img" || fail "import -d listing"
berth pool import -d "$T" | grep -q "pool: rel" && fail "an imported pool is offered for import"
berth --json pool import -d "$T" | jfield guid >/dev/null || fail "import listing JSON"
expect_fail berth pool import nosuchpool
berth pool import tank | grep -qx "pool tank imported" || fail "import tank"
[ "$(vol_prop tank/v nbd_clients)" = 0 ] || fail "the kicked NBD client is still counted"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x5a 0 32M' >/dev/null || fail "data after export/import"
berth pool export tank >/dev/null || fail "export"
berth pool import -d "$T" tank >/dev/null || fail "import -d DIR NAME"
expect_fail berth pool import -d "$T" tank

echo "== destroy"
berth pool destroy rel | grep -qx "pool rel destroyed" || fail "destroy"
berth pool import -d "$T" | grep -q "pool: rel" && fail "a destroyed pool is importable"
expect_fail berth pool destroy rel
berth pool destroy -f tank >/dev/null || fail "destroy -f"
[ "$(pool_names)" = "" ] || fail "pools left: $(pool_names)"
berthd_alive
stop_berthd
echo PASS
