#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Thin provisioning and TRIM: 256 MiB of random data raise the volume's `used`
# and the pool file's allocated size; discarding it makes block status report
# holes, `used` drop and (autotrim, lazily) the file's allocated size drop again.
# Also: all-zero writes and WRITE_ZEROES are stored as holes; with autotrim off
# the space is kept until `berth pool trim`.
. "$(dirname "$0")/functions.sh"
requires nbdinfo nbdcopy qemu-io
requires_nbdpy

M=$((1 << 20))
start_berthd
mkpool tank 1G
img=$T/tank.img
berth vol create -V 384M tank/v >/dev/null || fail "vol create"
U=$(uri tank/v)
pool_sync tank
f0=$(file_alloc "$img") u0=$(vol_prop tank/v used) a0=$(pool_field tank allocated)
echo "empty: file allocated $f0, vol used $u0, pool allocated $a0"

# wait_for_drop DESC CMD LIMIT: sync the pool until CMD prints a value <= LIMIT
# (autotrim is lazy: freed space is punched once the pool has written no data
# for 5 s; while it keeps writing, only beyond what rewrites are likely to
# take back, or 32 txgs after the free at the latest; so allow ~15 s)
wait_for_drop() {
  local desc=$1 cmd=$2 limit=$3 i v
  for i in $(seq 100); do
    v=$($cmd)
    [ "$v" -le "$limit" ] && { echo "  $desc: $v <= $limit (after $i syncs)"; return 0; }
    pool_sync tank
    sleep 0.1
  done
  fail "$desc did not drop to <= $limit: it is $v"
}
img_alloc() { file_alloc "$img"; }
vol_used() { vol_prop tank/v used; }

echo "== write 256 MiB of random data"
head -c $((256 * M)) /dev/urandom >"$T/rand"
nbdcopy --flush "$T/rand" "$U" || fail "nbdcopy"
pool_sync tank 2
f1=$(file_alloc "$img") u1=$(vol_prop tank/v used) a1=$(pool_field tank allocated)
echo "written: file allocated $f1, vol used $u1, pool allocated $a1, logicalused $(vol_prop tank/v logicalused)"
[ "$u1" -ge $((255 * M)) ] || fail "256 MiB of random data: used is only $u1"
[ "$u1" -le $((270 * M)) ] || fail "256 MiB of random data: used is $u1 (more than 5% overhead)"
[ $((f1 - f0)) -ge $((250 * M)) ] || fail "the pool file grew by only $((f1 - f0)) bytes"
[ "$(vol_prop tank/v logicalused)" -ge $((256 * M)) ] || fail "logicalused $(vol_prop tank/v logicalused)"
nbdinfo --map "$U" | head -5

echo "== discard it (NBD TRIM)"
PATH=/usr/bin:/bin nbdsh -u "$U" -c 'h.trim(256 << 20, 0); h.flush()' || fail "trim"
map=$(nbdinfo --map "$U") || fail "nbdinfo --map"
echo "$map"
[ "$(echo "$map" | awk '{print $1, $2, $3}')" = "0 $((384 * M)) 3" ] || fail "after discarding everything the map is not one hole"
nbdcopy "$U" - | cmp -n $((384 * M)) - /dev/zero || fail "a discarded range does not read as zeros"
wait_for_drop "volume used" vol_used $((2 * M))
wait_for_drop "pool file allocated size" img_alloc $((f0 + 16 * M))
[ "$(vol_prop tank/v logicalused)" -eq 0 ] || fail "logicalused after discard $(vol_prop tank/v logicalused)"
a2=$(pool_field tank allocated)
[ "$a2" -le $((a0 + 4 * M)) ] || fail "pool allocated $a2 after discarding everything (was $a0 empty)"

echo "== partial discard: unaligned edges keep their data"
nbdcopy --flush "$T/rand" "$U" || fail "nbdcopy (2)"
PATH=/usr/bin:/bin nbdsh -u "$U" -c 'h.trim((64 << 20) - 1000, (16 << 20) + 1000); h.flush()' || fail "partial trim"
nbdcopy "$U" "$T/back" || fail "read back"
nbdpy - "$T/rand" "$T/back" <<'PY' || fail "partial discard is wrong"
import sys
a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read()
s, e = (16 << 20) + 1000, (80 << 20)
assert b[:s] == a[:s], "data before the discarded range changed"
# berth returns zeros for trimmed ranges (store.h): whole blocks must be zero,
# partial blocks at the edges may hold zeros or the old data
bs = 16384
fs, fe = -(-s // bs) * bs, e // bs * bs
assert b[fs:fe] == bytes(fe - fs), "whole blocks inside the discard do not read as zeros"
assert b[e:256 << 20] == a[e:256 << 20], "data after the discarded range changed"
print("partial discard ok")
PY
nbdinfo --map "$U" >"$T/map" || fail "nbdinfo --map"
nbdpy - "$T/map" <<'PY2' || { cat "$T/map"; fail "the discarded 16..80 MiB is not reported as holes"; }
import sys
ext = [tuple(int(x) for x in l.split()[:3]) for l in open(sys.argv[1])]
s, e = (16 << 20) + 16384, 80 << 20
h = sum(max(0, min(o + l, e) - max(o, s)) for o, l, t in ext if t & 1)
assert h == e - s, "only %d of %d bytes are holes" % (h, e - s)
PY2

echo "== WRITE_ZEROES and all-zero data become holes"
qemu-io -f raw "$U" -c 'write -z 0 16M' -c 'write -P 0 128M 32M' -c flush >/dev/null || fail "zero writes"
nbdinfo --map "$U" >"$T/map"
cat "$T/map"
nbdpy - "$T/map" <<'PY' || fail "zeroed ranges are not holes"
import sys
ext = [tuple(int(x) for x in l.split()[:3]) for l in open(sys.argv[1])]
def holes(s, e):
    return sum(max(0, min(o + l, e) - max(o, s)) for o, l, t in ext if t & 1)
assert holes(0, 16 << 20) == 16 << 20, "WRITE_ZEROES 0..16M not a hole"
assert holes(128 << 20, 160 << 20) == 32 << 20, "all-zero data 128..160M not stored as a hole"
PY
qemu-io -f raw "$U" -c 'read -P 0 0 16M' -c 'read -P 0 128M 32M' >/dev/null || fail "zeroed ranges do not read as zeros"

echo "== discard everything, everything goes back"
PATH=/usr/bin:/bin nbdsh -u "$U" -c 'h.trim(h.get_size(), 0); h.flush()' || fail "trim all"
wait_for_drop "volume used" vol_used $((2 * M))
wait_for_drop "pool file allocated size" img_alloc $((f0 + 16 * M))

echo "== autotrim off: space stays until pool trim"
berth pool create -o size=1G -o autotrim=off nt "$T/nt.img" >/dev/null || fail "pool create autotrim=off"
berth vol create -V 128M nt/v >/dev/null || fail "vol create nt/v"
head -c $((96 * M)) "$T/rand" >"$T/rand96"
nbdcopy --flush "$T/rand96" "$(uri nt/v)" || fail "nbdcopy nt/v"
pool_sync nt 2
g1=$(file_alloc "$T/nt.img")
PATH=/usr/bin:/bin nbdsh -u "$(uri nt/v)" -c 'h.trim(h.get_size(), 0); h.flush()' || fail "trim nt/v"
pool_sync nt 5
g2=$(file_alloc "$T/nt.img")
echo "autotrim off: file allocated $g1 -> $g2 after discard"
[ "$g2" -ge $((g1 - 8 * M)) ] || fail "with autotrim off the file shrank from $g1 to $g2"
[ "$(vol_prop nt/v used)" -le $((2 * M)) ] || fail "used did not drop with autotrim off: $(vol_prop nt/v used)"
berth pool trim nt || fail "pool trim nt"
g3=$(file_alloc "$T/nt.img")
echo "after pool trim: $g3"
[ "$g3" -le $((g1 - 80 * M)) ] || fail "pool trim gave back only $((g1 - g3)) bytes"

berthd_alive
berth pool check tank || fail "pool check tank"
stop_berthd
echo PASS
