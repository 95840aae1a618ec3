#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# berthd lifecycle: bad options (exit 2), a second instance refused (same run
# dir or same state dir), SIGTERM exits 0 and a restart re-imports the pools
# with their data, SIGKILL likewise, a pool whose vdev vanished is UNAVAIL
# (not fatal) and comes back with `pool import`, a corrupt pools.json is moved
# aside, --nbd-tcp gives TCP URIs.
. "$(dirname "$0")/functions.sh"
requires qemu-io nbdinfo

echo "== bad options"
for args in "--bogus" "--log-level loud" "--cache-size lots" "--state-dir" "extra-arg"; do
  out=$("$BERTHD_BIN" $args 2>&1); rc=$?
  [ $rc -eq 2 ] || fail "berthd $args: exit $rc, want 2 ($out)"
  echo "  ok: berthd $args -> $out"
done
"$BERTHD_BIN" --help | grep -q -- "--state-dir" || fail "berthd --help"
"$BERTHD_BIN" --version | grep -q "^berthd " || fail "berthd --version"

start_berthd --cache-size 64M --log-level debug
mkpool tank 512M
berth vol create -V 64M tank/v >/dev/null || fail "vol create"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x42 0 8M' -c flush >/dev/null || fail "write"
[ "$(stat -c %a "$BERTH_SOCKET")" = 600 ] || fail "API socket mode $(stat -c %a "$BERTH_SOCKET")"
grep -q '"tank"' "$STATE/pools.json" || fail "pools.json does not list tank"

echo "== a second instance is refused"
out=$("$BERTHD_BIN" --state-dir "$STATE" --run-dir "$RUN" 2>&1); rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"another berthd (pid $BERTHD_PID) is already running with run dir"* ]] || fail "same run dir: $rc $out"
echo "  ok: $out"
out=$("$BERTHD_BIN" --state-dir "$STATE" --run-dir "$T/run2" 2>&1); rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"already running with state dir"* ]] || fail "same state dir: $rc $out"
echo "  ok: $out"
berthd_alive

echo "== SIGTERM: exit 0, restart re-imports"
stop_berthd
grep -q "pool tank: closing" "$T/berthd.log" || fail "no clean close logged"
[ -S "$BERTH_SOCKET" ] && fail "API socket left behind after SIGTERM"
start_berthd
[ "$(pool_names)" = tank ] || fail "tank not re-imported: $(pool_names)"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x42 0 8M' >/dev/null || fail "data after restart"

echo "== SIGKILL: restart re-imports"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x43 8M 8M' -c flush >/dev/null || fail "write 2"
kill_berthd
start_berthd
[ "$(pool_names)" = tank ] || fail "tank not re-imported after SIGKILL"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x42 0 8M' -c 'read -P 0x43 8M 8M' >/dev/null || fail "flushed data lost after SIGKILL"

echo "== a vanished vdev: UNAVAIL, not fatal"
mkpool other 256M
stop_berthd
mv "$T/other.img" "$T/other.moved"
start_berthd
berth pool list | grep -q "^other .*UNAVAIL$" || fail "other not UNAVAIL: $(berth pool list)"
berth pool status other | grep -q "No such file" || fail "UNAVAIL reason not shown"
[ "$(berth --json pool status other | jfield state)" = UNAVAIL ] || fail "UNAVAIL in JSON"
expect_fail berth vol create -V 1M other/v
expect_fail berth pool destroy other
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x42 0 8M' >/dev/null || fail "tank unaffected"
mv "$T/other.moved" "$T/other.img"
berth pool import other >/dev/null || fail "re-import of the UNAVAIL pool"
berth pool list | grep -q "^other .*ONLINE$" || fail "other not ONLINE after import"
berth pool export other >/dev/null || fail "export other"
grep -q '"other"' "$STATE/pools.json" || fail "exported pool location not remembered"

echo "== corrupt pools.json is moved aside"
stop_berthd
echo '{"pools": [garbage' >"$STATE/pools.json"
start_berthd
[ "$(pool_names)" = "" ] || fail "pools from a corrupt registry: $(pool_names)"
ls "$STATE"/pools.json.corrupt-* >/dev/null 2>&1 || fail "corrupt pools.json not moved aside"
berth pool import -d "$T" tank >/dev/null || fail "import after registry loss"
stop_berthd

echo "== --nbd-tcp"
start_berthd --nbd-tcp 127.0.0.1:0
turi=$(berth vol uri --tcp tank/v) || fail "vol uri --tcp"
[[ "$turi" =~ ^nbd://127\.0\.0\.1:[0-9]+/tank/v$ ]] || fail "tcp uri: $turi"
nbdinfo --size "$turi" | grep -qx $((64 << 20)) || fail "nbdinfo over TCP"
stop_berthd
echo PASS
