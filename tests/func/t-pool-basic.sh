#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Pools: create (ashift detection and -o ashift, -o autotrim, -O compression /
# checksum), list, status fields, export/import (by name, -d DIR, listing),
# never overwriting a pool device without -f, trim, destroy, berthd re-importing
# its pools on restart, SIGTERM exiting 0.
. "$(dirname "$0")/functions.sh"
requires qemu-io nbdinfo truncate
requires_nbdpy

start_berthd
G=$((1 << 30))

echo "== create with defaults: ashift detected (12 for a file)"
berth pool create -o size=1G tank "$T/tank.img" || fail "pool create tank"
[ -f "$T/tank.img" ] || fail "pool create did not create $T/tank.img"
[ "$(stat -c %s "$T/tank.img")" -eq $G ] || fail "tank.img is not 1 GiB: $(stat -c %s "$T/tank.img")"
[ "$(file_alloc "$T/tank.img")" -lt $((64 << 20)) ] || fail "a new pool file should be sparse: $(file_alloc "$T/tank.img") bytes allocated"
[ "$(pool_field tank ashift)" = 12 ] || fail "ashift of a file pool is $(pool_field tank ashift), want 12"
[ "$(pool_field tank autotrim)" = on ] || fail "autotrim should default to on, is $(pool_field tank autotrim)"
[ "$(pool_field tank compression)" = lz4 ] || fail "compression should default to lz4, is $(pool_field tank compression)"
[ "$(pool_field tank checksum)" = xxh3 ] || fail "checksum should default to xxh3, is $(pool_field tank checksum)"
[ "$(pool_field tank state)" = ONLINE ] || fail "state $(pool_field tank state)"

echo "== create with -o ashift=9 -o autotrim=off"
berth pool create -o size=1G -o ashift=9 -o autotrim=off p9 "$T/p9.img" || fail "pool create -o ashift=9"
[ "$(pool_field p9 ashift)" = 9 ] || fail "ashift of p9 is $(pool_field p9 ashift), want 9"
[ "$(pool_field p9 autotrim)" = off ] || fail "autotrim of p9 is $(pool_field p9 autotrim), want off"

echo "== create with -O compression=zstd -O checksum=sha256: volumes inherit"
berth pool create -o size=1G -O compression=zstd -O checksum=sha256 pz "$T/pz.img" || fail "pool create -O"
[[ "$(pool_field pz compression)" == zstd* ]] || fail "pz compression $(pool_field pz compression)"
[ "$(pool_field pz checksum)" = sha256 ] || fail "pz checksum $(pool_field pz checksum)"
berth vol create -V 16M pz/v >/dev/null || fail "vol create pz/v"
[[ "$(vol_prop pz/v compression)" == zstd* ]] || fail "pz/v did not inherit zstd: $(vol_prop pz/v compression)"
[ "$(vol_prop pz/v checksum)" = sha256 ] || fail "pz/v did not inherit sha256: $(vol_prop pz/v checksum)"
qemu-io -f raw "$(uri pz/v)" -c 'write -P 0x61 0 4M' -c 'read -P 0x61 0 4M' >/dev/null || fail "I/O on a zstd/sha256 volume"

echo "== bad create options"
expect_fail berth pool create -o size=1G -o ashift=8 bad "$T/bad.img"
expect_fail berth pool create -o size=1G -o ashift=17 bad "$T/bad.img"
expect_fail berth pool create -o size=1G -O compression=gzip bad "$T/bad.img"
expect_fail berth pool create -o size=1G -O checksum=md5 bad "$T/bad.img"
expect_fail berth pool create -o size=1G tank "$T/tank2.img"            # name taken
expect_fail berth pool create -o size=1G "bad/name" "$T/bad.img"
expect_fail berth pool create nosize "$T/does-not-exist.img"             # no size, no file
[ ! -e "$T/bad.img" ] || [ "$(file_alloc "$T/bad.img")" -eq 0 ] || true

echo "== create on an existing file without -o size"
truncate -s 512M "$T/existing.img"
berth pool create ex "$T/existing.img" || fail "pool create on an existing file"
sz=$(pool_field ex size)
[ "$sz" -gt $((400 << 20)) ] && [ "$sz" -le $((512 << 20)) ] || fail "pool ex size $sz for a 512 MiB file"

echo "== list"
berth pool list >"$T/list" || fail "pool list"
cat "$T/list"
for p in tank p9 pz ex; do grep -qw "$p" "$T/list" || fail "pool list lacks $p"; done
berth --json pool list >"$T/list.json" || fail "pool list --json"
nbdpy -c 'import json,sys; d=json.load(open(sys.argv[1])); d=d.get("pools", d) if isinstance(d, dict) else d; n=sorted(p["name"] for p in d); assert n == ["ex","p9","pz","tank"], n' "$T/list.json" ||
  fail "pool list --json does not list exactly ex p9 pz tank: $(cat "$T/list.json")"

echo "== status: fields"
berth pool status tank >"$T/status" || fail "pool status tank"
cat "$T/status"
for w in tank ONLINE "$T/tank.img" READ WRITE CKSUM; do grep -q -- "$w" "$T/status" || fail "pool status lacks '$w'"; done
grep -qiE 'size' "$T/status" && grep -qiE 'alloc' "$T/status" && grep -qiE 'free' "$T/status" && grep -qiE 'ratio' "$T/status" ||
  fail "pool status lacks size/alloc/free/compressratio"
berth pool status >"$T/status-all" || fail "pool status (all)"
for p in tank p9 pz ex; do grep -qw "$p" "$T/status-all" || fail "pool status (all) lacks $p"; done
size=$(pool_field tank size) alloc=$(pool_field tank allocated) free=$(pool_field tank free)
echo "size=$size allocated=$alloc free=$free ratio=$(pool_field tank compressratio)"
[ "$size" -gt $((G * 9 / 10)) ] && [ "$size" -le $G ] || fail "pool size $size for a 1 GiB file"
[ "$alloc" -lt $((32 << 20)) ] || fail "an empty pool has $alloc bytes allocated"
[ $((size - alloc - free)) -ge 0 ] && [ $((size - alloc - free)) -le $((16 << 20)) ] || fail "size $size != allocated $alloc + free $free"
fcmp "$(pool_field tank compressratio)" == 1 || fail "compressratio of an empty pool $(pool_field tank compressratio)"
for f in read_errors write_errors checksum_errors; do
  [ "$(pool_field tank $f)" = 0 ] || fail "$f = $(pool_field tank $f) on a fresh pool"
done

echo "== data, then export/import by name"
berth vol create -V 64M tank/v >/dev/null || fail "vol create tank/v"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x77 0 8M' -c 'write -P 0x78 60M 4M' -c flush >/dev/null || fail "write tank/v"
berth pool export tank || fail "pool export tank"
berth pool list | grep -qw tank && fail "tank still listed after export"
nbdinfo "$(uri tank/v)" >/dev/null 2>&1 && fail "tank/v still exported over NBD after pool export"
berth pool import >"$T/importable" || fail "pool import (list importable)"
cat "$T/importable"
grep -qw tank "$T/importable" || fail "exported tank not listed as importable"
berth pool import tank || fail "pool import tank"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x77 0 8M' -c 'read -P 0x78 60M 4M' -c 'read -P 0 8M 52M' >/dev/null ||
  fail "data differs after export/import"

echo "== export, import -d DIR"
berth pool export tank || fail "pool export tank (2)"
berth pool import -d "$T" >"$T/importable2" || fail "pool import -d $T"
cat "$T/importable2"
grep -qw tank "$T/importable2" || fail "pool import -d does not list tank"
grep -qw p9 "$T/importable2" && fail "pool import -d lists p9, which is imported"
berth pool import -d "$T" tank || fail "pool import -d $T tank"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x77 0 8M' >/dev/null || fail "data differs after import -d"
expect_fail berth pool import nosuchpool
expect_fail berth pool import -d "$T/nodir" tank
expect_fail berth pool import tank                                       # already imported

echo "== a device holding a pool is not overwritten without -f"
berth pool export p9 || fail "export p9"
expect_fail berth pool create -o size=1G other "$T/p9.img"
out=$(berth pool create -o size=1G other "$T/p9.img" 2>&1)
echo "$out" | grep -qiE 'p9|pool|label|-f|force' || fail "the refusal does not say why: $out"
berth pool import p9 >/dev/null || fail "p9 not importable after the refused create"
berth pool export p9 || fail "export p9 (2)"
berth pool create -f -o size=1G other "$T/p9.img" || fail "pool create -f over an exported pool"
berth pool import -d "$T" | grep -qw p9 && fail "p9 still importable after being overwritten with -f"
expect_fail berth pool create -f -o size=1G other2 "$T/tank.img"         # in use by tank: never

echo "== trim"
berth pool trim tank || fail "pool trim"

echo "== destroy (busy with a client, then really)"
berth vol create -V 16M other/v >/dev/null || fail "vol create other/v"
"$NBDPY" -c 'import nbd,sys,time; h=nbd.NBD(); h.connect_uri(sys.argv[1]); open(sys.argv[2],"w").close(); time.sleep(60)' "$(uri other/v)" "$T/connected" &
holder=$!
add_cleanup "kill $holder"
wait_until 10 test -e "$T/connected" || fail "nbd client did not connect"
expect_fail berth pool destroy other
berth pool list | grep -qw other || fail "a refused destroy removed the pool"
kill "$holder"; wait "$holder" 2>/dev/null
wait_until 10 "$BERTH_BIN" pool destroy other || fail "pool destroy other (after the client left): $(berth pool destroy other 2>&1)"
berth pool list | grep -qw other && fail "other still listed after destroy"
berth pool import -d "$T" | grep -qw other && fail "a destroyed pool is still importable"
expect_fail berth pool destroy other

echo "== berthd restart re-imports its pools (SIGTERM exits 0)"
pool_names >"$T/before"
stop_berthd
start_berthd
pool_names >"$T/after"
diff "$T/before" "$T/after" || fail "pools after restart differ from before"
for p in tank pz ex; do [ "$(pool_field $p state)" = ONLINE ] || fail "$p not ONLINE after restart"; done
[ "$(pool_field pz checksum)" = sha256 ] || fail "pz lost its checksum property over a restart"
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x77 0 8M' -c 'read -P 0x78 60M 4M' >/dev/null || fail "data differs after restart"

echo "== kill -9 and restart re-imports too"
qemu-io -f raw "$(uri tank/v)" -c 'write -P 0x79 16M 4M' -c flush >/dev/null || fail "write before kill"
kill_berthd
start_berthd
qemu-io -f raw "$(uri tank/v)" -c 'read -P 0x79 16M 4M' -c 'read -P 0x77 0 8M' >/dev/null || fail "flushed data lost after kill -9"
berth pool check tank || fail "pool check after kill -9"

echo "== a second berthd on the same run/state dir refuses to start"
out=$("$BERTHD_BIN" --state-dir "$STATE" --run-dir "$RUN" --test 2>&1); rc=$?
echo "  $out"
[ $rc -eq 1 ] || fail "a second berthd exited with $rc, want 1"
echo "$out" | grep -qi 'already running' || fail "unclear message from a second berthd: $out"
berthd_alive

echo "== a pool whose file is missing at start is UNAVAIL, then importable again"
stop_berthd
mv "$T/existing.img" "$T/moved.img"
start_berthd
[ "$(pool_field ex state)" = UNAVAIL ] || fail "ex with its file gone is $(pool_field ex state), want UNAVAIL"
berth pool list | grep -w ex | grep -q UNAVAIL || fail "pool list does not show ex as UNAVAIL"
berth --json pool status ex | grep -q 'existing.img' || fail "the UNAVAIL pool does not say which file is missing"
expect_fail berth vol create -V 16M ex/v
[ "$(pool_field tank state)" = ONLINE ] || fail "tank is not ONLINE next to an UNAVAIL pool"
mv "$T/moved.img" "$T/existing.img"
berth pool import ex || fail "retrying the import of ex"
[ "$(pool_field ex state)" = ONLINE ] || fail "ex is $(pool_field ex state) after the retried import"

echo "== a pool whose labels are all damaged: import by name says why"
mkdir -p "$T/dmg"
berth pool create -o size=128M dmg "$T/dmg/dmg.img" >/dev/null || fail "pool create dmg"
berth pool export dmg || fail "pool export dmg"
"$NBDPY" - "$T/dmg/dmg.img" <<'PY' || fail "damaging the labels"
import sys
f = open(sys.argv[1], "r+b"); size = f.seek(0, 2) // (256 << 10) * (256 << 10)
for off in (0, 256 << 10, size - (512 << 10), size - (256 << 10)):
    f.seek(off + 8); f.write(b"\x63\x00\x00\x00")  # format version 99: checksum now wrong
PY
out=$(berth pool import -d "$T/dmg" dmg 2>&1) && fail "a pool with damaged labels imported: $out"
echo "  $out"
[[ "$out" == *"damaged berth label"* ]] || fail "import by name does not say why: $out"
berth pool import -d "$T/dmg" | grep -q "damaged: $T/dmg/dmg.img" || fail "listing does not show the damaged device"

berthd_alive
stop_berthd
echo PASS
