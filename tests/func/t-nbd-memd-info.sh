#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbd-memd seen by nbdinfo and qemu-io: sizes, block sizes, can_* flags,
# read-only exports, export listing, base:allocation maps before and after
# writes/trims, pattern writes and reads, and a clean shutdown.
. "$(dirname "$0")/functions.sh"
requires nbdinfo qemu-io
MEMD=$BERTH_BUILD/src/nbd/nbd-memd
[ -x "$MEMD" ] || skip "no $MEMD"
S=$T/nbd.sock

"$MEMD" --socket "$S" --export disk:64M --export ro:8M:ro --export al:1M:bs=512 \
  >"$T/memd.log" 2>&1 &
MEMD_PID=$!
add_cleanup "kill -KILL $MEMD_PID"
for _ in $(seq 100); do [ -S "$S" ] && break; sleep 0.05; done
[ -S "$S" ] || fail "nbd-memd did not start"
[ "$(stat -c %a "$S")" = 600 ] || fail "socket mode is not 0600"

u() { echo "nbd+unix:///$1?socket=$S"; }
info=$(nbdinfo --json "$(u disk)") || fail "nbdinfo disk"
py() { python3 -c "import json,sys; d=json.load(sys.stdin); e=d['exports'][0]; print($1)"; }
[ "$(py "e['export-size']" <<<"$info")" = 67108864 ] || fail "size"
[ "$(py "e['block_size_minimum'],e['block_size_preferred'],e['block_size_maximum']" <<<"$info")" = "1 4096 33554432" ] || fail "block sizes"
for f in can_trim can_zero can_fast_zero can_flush can_fua can_multi_conn can_cache can_df; do
  [ "$(py "e['$f']" <<<"$info")" = True ] || fail "$f not set"
done
[ "$(py "e['is_read_only']" <<<"$info")" = False ] || fail "disk read-only"
[ "$(py "e['description']" <<<"$info")" = "memory export disk" ] || fail "description"

info=$(nbdinfo --json "$(u ro)") || fail "nbdinfo ro"
[ "$(py "e['is_read_only'],e['can_trim'],e['can_zero']" <<<"$info")" = "True False False" ] || fail "ro flags"
info=$(nbdinfo --json "$(u al)") || fail "nbdinfo al"
[ "$(py "e['block_size_minimum']" <<<"$info")" = 512 ] || fail "al min block"

nbdinfo --list "$(u "")" >"$T/list" || fail "list"
for e in disk ro al; do grep -q "export=\"$e\"" "$T/list" || fail "list lacks $e"; done
expect_fail nbdinfo "$(u nosuch)"

# a fresh export is one hole
[ "$(nbdinfo --map "$(u disk)" | awk '{print $1,$2,$3}')" = "0 67108864 3" ] || fail "fresh map"

qemu-io -f raw "$(u disk)" -c 'write -P 0xab 0 1M' -c 'write -P 0xcd 4M 64k' \
  -c 'write -z -u 0 64k' >/dev/null || fail "qemu-io write"
qemu-io -f raw "$(u disk)" -c 'read -P 0 0 64k' -c 'read -P 0xab 64k 960k' \
  -c 'read -P 0xcd 4M 64k' -c 'read -P 0 5M 1M' >"$T/qio" || fail "qemu-io read"
grep -q "Pattern verification failed" "$T/qio" && fail "pattern mismatch"
nbdinfo --map "$(u disk)" >"$T/map"
cat "$T/map"
grep -qE '^ +65536 +983040 +0 +data' "$T/map" || fail "map: data at 64k"
grep -qE '^ +4194304 +65536 +0 +data' "$T/map" || fail "map: data at 4M"
qemu-io -f raw "$(u disk)" -c 'discard 0 1M' >/dev/null || fail "discard"
nbdinfo --map "$(u disk)" | grep -qE '^ +0 +4194304 +3 +hole,zero' || fail "trim did not punch"

# writes to the read-only export fail, reads work
expect_fail qemu-io -f raw "$(u ro)" -c 'write 0 4k'
qemu-io -f raw -r "$(u ro)" -c 'read -P 0 0 1M' >/dev/null || fail "ro read"
# unaligned I/O to a 512-byte export: qemu aligns itself, data must survive
qemu-io -f raw "$(u al)" -c 'write -P 0x11 100 1000' -c 'read -P 0x11 100 1000' \
  -c 'read -P 0 0 100' >"$T/qio" || fail "al io"
grep -q "Pattern verification failed" "$T/qio" && fail "al pattern"

kill -TERM $MEMD_PID; rc=0; wait $MEMD_PID || rc=$?
grep -E "Sanitizer|runtime error" "$T/memd.log" && fail "sanitizer report"
[ $rc = 0 ] || fail "nbd-memd exit status $rc"
[ ! -e "$S" ] || fail "socket not removed"
exit 0
