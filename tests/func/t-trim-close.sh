#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The final autotrim pass at export: space freed in the last txgs before
# `berth pool export` (a discard and an overwrite), still queued for lazy
# autotrim, is punched from the pool file by the export itself, not left
# allocated in the host file until `berth pool trim`.  The export comes well
# before the trim thread's 5 s idle pass: a 4K write left unflushed after the
# last sync keeps the pool from counting as idle (its txg commits only after
# the 5 s txg timeout, the idle pass waits 5 s more), so the drop can only
# come from the export.  After import the data is intact, the checker and a
# scrub find nothing.  (tests/unit/test-closetrim covers export and close
# with the queue checked directly.)
. "$(dirname "$0")/functions.sh"
requires nbdcopy
requires_nbdpy

M=$((1 << 20))
start_berthd
mkpool tank 512M
img=$T/tank.img
berth vol create -V 64M tank/v >/dev/null || fail "vol create"
U=$(uri tank/v)
head -c $((48 * M)) /dev/urandom >"$T/data"
nbdcopy --flush "$T/data" "$U" || fail "fill 48 MiB"
pool_sync tank

echo "== discard 0..16 MiB, overwrite 16..32 MiB, sync, export at once"
head -c $((16 * M)) /dev/urandom >"$T/new"
PATH=/usr/bin:/bin nbdsh -u "$U" -c "
h.trim(16 << 20, 0)
h.pwrite(open('$T/new', 'rb').read(), 16 << 20)
h.flush()" || fail "discard + overwrite"
pool_sync tank # commits until the old copies' frees are released (queued for autotrim)
t0=$(date +%s.%N)
PATH=/usr/bin:/bin nbdsh -u "$U" -c "h.pwrite(b'\x5c' * 4096, (64 << 20) - 4096)" ||
  fail "unflushed 4K write"
before=$(file_alloc "$img")
berth pool export tank || fail "pool export"
after=$(file_alloc "$img")
secs=$(nbdpy -c "import sys, time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$t0")
echo "  pool file allocated: before export $((before / M)) MiB, after $((after / M)) MiB (export ${secs} s after the last sync)"
[ $((before - after)) -ge $((30 * M)) ] ||
  fail "export did not punch the 32 MiB freed just before it: $((before / M)) -> $((after / M)) MiB"

echo "== import: data intact, checker and scrub clean"
berth pool import tank >/dev/null || fail "pool import"
nbdcopy "$U" "$T/back" || fail "read back"
nbdpy - "$T/data" "$T/new" "$T/back" <<'PY' || fail "data after export/import differs"
import sys
d, n, b = (open(f, "rb").read() for f in sys.argv[1:4])
M = 1 << 20
assert b[:16 * M] == bytes(16 * M), "the discarded range does not read as zeros"
assert b[16 * M:32 * M] == n, "the overwritten range does not hold the new data"
assert b[32 * M:48 * M] == d[32 * M:48 * M], "the untouched range changed"
assert b[48 * M:64 * M - 4096] == bytes(16 * M - 4096), "the unwritten range is not zeros"
assert b[64 * M - 4096:] == b"\x5c" * 4096, "the write left unflushed at export is missing"
print("data ok")
PY
berth pool check tank >/dev/null || fail "pool check: $(berth pool check tank 2>&1)"
scan_field() { berth --json pool status tank | nbdpy -c 'import json,sys; print(json.load(sys.stdin)["scan"][sys.argv[1]])' "$1"; }
scrub_done() { [ "$(scan_field state)" != scanning ]; }
berth pool scrub tank >/dev/null || fail "pool scrub"
wait_until 60 scrub_done || fail "the scrub did not finish in 60 s"
[ "$(scan_field state)" = finished ] || fail "the scrub ended $(scan_field state)"
[ "$(scan_field errors)" = 0 ] && [ "$(scan_field repaired)" = 0 ] ||
  fail "scrub: $(scan_field errors) errors, $(scan_field repaired) repaired"
[ "$(pool_field tank checksum_errors)" = 0 ] || fail "checksum errors: $(pool_field tank checksum_errors)"
echo "  scrub examined $(scan_field examined) of $(scan_field total) bytes, no errors"
