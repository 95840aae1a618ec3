#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Bulk data through nbd-memd: qemu-img convert in and out, nbdcopy in, out
# and export to export (several connections), each compared byte for byte;
# a sparse image must stay sparse (holes survive as holes).
. "$(dirname "$0")/functions.sh"
requires qemu-img nbdcopy nbdinfo cmp
MEMD=$BERTH_BUILD/src/nbd/nbd-memd
[ -x "$MEMD" ] || skip "no $MEMD"
S=$T/nbd.sock
"$MEMD" --socket "$S" --export a:64M --export b:64M --export c:64M >"$T/memd.log" 2>&1 &
MEMD_PID=$!
add_cleanup "kill -KILL $MEMD_PID"
for _ in $(seq 100); do [ -S "$S" ] && break; sleep 0.05; done
[ -S "$S" ] || fail "nbd-memd did not start"
u() { echo "nbd+unix:///$1?socket=$S"; }

# a sparse source: random data islands of odd sizes in zeroes
truncate -s 64M "$T/src.img"
for off in 0 1 7 1000 4095 16383; do
  head -c $(( (off % 7 + 1) * 65537 )) /dev/urandom |
    dd of="$T/src.img" bs=4096 seek=$off conv=notrunc status=none
done
truncate -s 64M "$T/src.img"
qemu-img convert -n -f raw -O raw "$T/src.img" "$(u a)" || fail "convert in"
qemu-img convert -f raw -O raw "$(u a)" "$T/out1.img" || fail "convert out"
cmp "$T/src.img" "$T/out1.img" || fail "qemu-img round trip differs"

nbdcopy --connections=4 "$(u a)" "$(u b)" || fail "nbdcopy a->b"
nbdcopy "$(u b)" "$T/out2.img" || fail "nbdcopy out"
cmp "$T/src.img" "$T/out2.img" || fail "nbdcopy round trip differs"
nbdcopy "$T/src.img" "$(u c)" || fail "nbdcopy in"
nbdcopy "$(u c)" - | cmp - "$T/src.img" || fail "nbdcopy stdout differs"

# sparseness survived: b's map has holes, and about as much data as the source
data=$(nbdinfo --map --totals "$(u b)" | awk '$3==0 {print $1}')
[ -n "$data" ] && [ "$data" -lt $((8 * 1024 * 1024)) ] || fail "b not sparse (data=$data)"
qemu-img compare -f raw -F raw "$T/src.img" "$(u b)" || fail "qemu-img compare"

kill -TERM $MEMD_PID; rc=0; wait $MEMD_PID || rc=$?
grep -E "Sanitizer|runtime error" "$T/memd.log" && fail "sanitizer report"
[ $rc = 0 ] || fail "nbd-memd exit status $rc"
exit 0
