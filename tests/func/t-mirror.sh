#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Mirrors: self-healing reads and scrub, through berthd and NBD clients.
#  1. 2-way mirror: random ranges of one device file's allocated data area
#     garbled while the pool is exported; every read through NBD returns the
#     right bytes, that device's CKSUM counter rises (the other's does not), a
#     scrub repairs the rest, a second scrub finds nothing, and both devices
#     then hold identical allocated sectors; `pool check` passes;
#  2. the same with the fault injection knob `vdev=N corrupt=OFF:LEN` while
#     the pool is imported (the scrub reads past the block cache);
#  3. both copies of some blocks damaged: reads of exactly those blocks fail
#     with EIO (never wrong data), the scrub lists them by volume and offset
#     (JSON and `pool status`), rewriting them heals the pool;
#  4. 3-way mirror: the same ranges garbled on two devices and other ranges on
#     the third: everything reads back right, a scrub makes all three
#     identical.
. "$(dirname "$0")/functions.sh"
requires nbdcopy cmp
requires_nbdpy

MU() { nbdpy "$BERTH_TOP/tests/func/mirror-util.py" "$@"; }
M=$((1 << 20))

# scan_field POOL KEY: a field of the pool's scan object
scan_field() { berth --json pool status "$1" | nbdpy -c 'import json,sys; print(json.load(sys.stdin)["scan"][sys.argv[1]])' "$2"; }
# vdev_field POOL INDEX KEY: a field of one leaf
vdev_field() { berth --json pool status "$1" | nbdpy -c 'import json,sys; v=json.load(sys.stdin)["vdevs"][int(sys.argv[1])][sys.argv[2]]; print(str(v).lower() if isinstance(v, bool) else v)' "$2" "$3"; }
scrub_done() { local s; s=$(scan_field "$1" state) && [ "$s" != scanning ]; }

# scrub POOL: start a scrub, wait until it has finished; prints
# "repaired ERRORS" of that scrub
scrub() {
  berth pool scrub "$1" >/dev/null || fail "pool scrub $1"
  wait_until 60 scrub_done "$1" || fail "the scrub of $1 did not finish in 60 s: $(berth pool status "$1" | grep scan:)"
  [ "$(scan_field "$1" state)" = finished ] || fail "the scrub of $1 ended $(scan_field "$1" state)"
  [ "$(scan_field "$1" examined)" = "$(scan_field "$1" total)" ] ||
    fail "scrub of $1 finished having examined $(scan_field "$1" examined) of $(scan_field "$1" total) bytes"
  echo "$(scan_field "$1" repaired) $(scan_field "$1" errors)"
}

# check_pool POOL: pool check passes
check_pool() { berth pool check "$1" >/dev/null || fail "pool check $1: $(berth pool check "$1" 2>&1)"; }

start_berthd

echo "== 1. 2-way mirror: one device garbled while exported"
mkdir -p "$T/m2"
berth pool create -o size=256M m2 mirror "$T/m2/a.img" "$T/m2/b.img" >/dev/null || fail "pool create m2 mirror"
[ "$(pool_field m2 layout)" = mirror ] || fail "layout of m2 is $(pool_field m2 layout)"
[ "$(pool_field m2 state)" = ONLINE ] || fail "m2 is $(pool_field m2 state)"
berth vol create -V 48M -o compression=off m2/u >/dev/null || fail "vol create m2/u"
berth vol create -V 32M m2/x >/dev/null || fail "vol create m2/x"
MU mkunits "$T/u.data" BMIRROR $((48 * 256))
mkdata "$T/x.data" 32 mixed
nbdcopy --flush "$T/u.data" "$(uri m2/u)" || fail "fill m2/u"
nbdcopy --flush "$T/x.data" "$(uri m2/x)" || fail "fill m2/x"
berth pool export m2 || fail "export m2"
MU cmp "$T/m2/a.img" "$T/m2/b.img" || fail "the two devices of a fresh mirror differ"
MU corrupt "$T/m2/a.img" 40 "$RANDOM" "$T/ranges.a" || fail "garbling a.img"
berth pool import m2 >/dev/null || fail "import m2 with a.img garbled"
[ "$(pool_field m2 state)" = ONLINE ] || fail "m2 is $(pool_field m2 state) after import"
MU readcheck "$(uri m2/u)" "$T/u.data" 16384 "$T/eio" || fail "m2/u returned wrong data"
[ ! -s "$T/eio" ] || fail "m2/u: EIO with a good copy on b.img (blocks $(tr '\n' ' ' <"$T/eio"))"
MU readcheck "$(uri m2/x)" "$T/x.data" 65536 "$T/eio" || fail "m2/x returned wrong data"
[ ! -s "$T/eio" ] || fail "m2/x: EIO with a good copy on b.img"
berth pool status m2
ca=$(vdev_field m2 0 checksum_errors) cb=$(vdev_field m2 1 checksum_errors)
echo "  CKSUM: a.img $ca, b.img $cb; self-healed $(vdev_field m2 0 repaired_bytes) bytes of a.img"
[ "$ca" -gt 0 ] || fail "no checksum errors counted on a.img after reading 40 garbled ranges"
[ "$cb" = 0 ] || fail "checksum errors counted on the intact b.img: $cb"
[ "$(vdev_field m2 0 state)" = ONLINE ] || fail "a.img is $(vdev_field m2 0 state) after checksum errors"
berth pool status m2 | grep "$T/m2/a.img" | grep -qw "$ca" || fail "pool status does not show a.img's CKSUM $ca"
read -r rep errs < <(scrub m2)
echo "  scrub: repaired $rep bytes, $errs errors; a.img CKSUM now $(vdev_field m2 0 checksum_errors)"
[ "$errs" = 0 ] || fail "scrub of m2 found $errs unrepairable blocks (only a.img was damaged)"
berth pool status m2 | grep -q 'scan: scrub finished' || fail "pool status does not show the finished scrub"
[ "$(vdev_field m2 1 checksum_errors)" = 0 ] || fail "the scrub counted checksum errors on b.img"
ca=$(vdev_field m2 0 checksum_errors)
read -r rep errs < <(scrub m2)
echo "  second scrub: repaired $rep bytes, $errs errors"
[ "$rep" = 0 ] && [ "$errs" = 0 ] || fail "a second scrub repaired $rep bytes / found $errs errors"
[ "$(vdev_field m2 0 checksum_errors)" = "$ca" ] || fail "the second scrub found new checksum errors"
check_pool m2
berth pool sync m2 >/dev/null
MU cmp "$T/m2/a.img" "$T/m2/b.img" || fail "a.img and b.img differ after the scrub"
MU readcheck "$(uri m2/u)" "$T/u.data" 16384 || fail "m2/u after the scrub"

echo "== 2. garbled while imported (debug knob corrupt=): the scrub repairs past the cache"
read -r ds _ < <(MU layout "$T/m2/b.img")
# three allocated ranges of b.img (data area offsets), from its bitmap
MU pick "$T/m2/b.img" 3 "$RANDOM" "$T/ranges.probe" || fail "picking ranges"
while read -r off len; do
  berth pool debug m2 "vdev=1 corrupt=$((off - ds)):$len" >/dev/null || fail "debug vdev=1 corrupt=$((off - ds)):$len"
done <"$T/ranges.probe"
expect_fail berth pool debug m2 "vdev=1 corrupt=$((512 * M)):4096"
expect_fail berth pool debug m2 "vdev=2 corrupt=0:4096"
read -r rep errs < <(scrub m2)
echo "  scrub: repaired $rep bytes, $errs errors; b.img CKSUM $(vdev_field m2 1 checksum_errors)"
[ "$errs" = 0 ] && [ "$rep" -gt 0 ] || fail "scrub after corrupt=: repaired $rep, errors $errs"
[ "$(vdev_field m2 1 checksum_errors)" -gt 0 ] || fail "no checksum errors counted on b.img"
berth pool sync m2 >/dev/null
MU cmp "$T/m2/a.img" "$T/m2/b.img" || fail "a.img and b.img differ after the second repair"

echo "== 3. both copies of some blocks damaged: EIO for exactly those, named by the scrub"
berth pool export m2 || fail "export m2 (3)"
MU units "$T/m2/a.img" BMIRROR "$T/units.a" >/dev/null
MU units "$T/m2/b.img" BMIRROR "$T/units.b" >/dev/null
cmp -s "$T/units.a" "$T/units.b" || fail "the units of m2/u lie at different offsets on a.img and b.img"
[ "$(wc -l <"$T/units.a")" -eq $((48 * 256)) ] || fail "found $(wc -l <"$T/units.a") of $((48 * 256)) units of m2/u"
# 6 units (in different 16K blocks), the same 4 KiB on both devices
shuf -n 6 --random-source=<(yes 42) "$T/units.a" | sort -n >"$T/hit"
awk '{print $2, 4096}' "$T/hit" >"$T/hit.ranges"
MU garble "$T/m2/a.img" "$T/hit.ranges"
MU garble "$T/m2/b.img" "$T/hit.ranges"
awk '{print int($1 / 4)}' "$T/hit" | sort -un >"$T/want-eio"
nbad=$(wc -l <"$T/want-eio")
berth pool import m2 >/dev/null || fail "import m2 (3)"
MU readcheck "$(uri m2/u)" "$T/u.data" 16384 "$T/eio" || fail "m2/u returned wrong data with both copies damaged"
sort -n "$T/eio" | diff "$T/want-eio" - || fail "EIO blocks (right) differ from the damaged ones (left)"
MU readcheck "$(uri m2/x)" "$T/x.data" 65536 || fail "m2/x (intact) read wrong"
read -r rep errs < <(scrub m2)
berth pool status m2
echo "  scrub: repaired $rep bytes, $errs errors (want $nbad)"
[ "$errs" = "$nbad" ] || fail "the scrub reports $errs unrepairable blocks, $nbad were damaged on both devices"
berth --json pool status m2 | nbdpy -c '
import json, sys
errs = json.load(sys.stdin)["scan_errors"]
got = sorted((e["dataset"], e["what"], e["offset"], e["length"]) for e in errs)
want = sorted(("u", "data", int(l) * 16384, 16384) for l in open(sys.argv[1]))
if got != want:
    sys.exit("scan_errors %s, want %s" % (got, want))
' "$T/want-eio" || fail "scan_errors do not name exactly the damaged blocks of u"
st=$(berth pool status m2)
while read -r b; do
  grep -qE "^\s+u data at offset $((b * 16384))\$" <<<"$st" || fail "pool status does not list u at offset $((b * 16384))"
done <"$T/want-eio"
# pool check verifies every block too: it must name the damage, not pass
out=$(berth pool check m2 2>&1) && fail "pool check passes with $nbad unreadable blocks: $out"
echo "  pool check: $out"
[[ "$out" == *"'u'"* ]] || fail "pool check does not name volume u: $out"
# the damaged blocks are rewritten whole: the pool is clean again
nbdpy - "$(uri m2/u)" "$T/u.data" "$T/want-eio" <<'EOF' || fail "rewriting the damaged blocks"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
d = open(sys.argv[2], "rb").read()
for l in open(sys.argv[3]):
    b = int(l)
    h.pwrite(d[b * 16384:(b + 1) * 16384], b * 16384)
h.flush()
EOF
MU readcheck "$(uri m2/u)" "$T/u.data" 16384 "$T/eio" || fail "m2/u after the rewrite"
[ ! -s "$T/eio" ] || fail "EIO after rewriting the damaged blocks: $(tr '\n' ' ' <"$T/eio")"
read -r rep errs < <(scrub m2)
[ "$errs" = 0 ] || fail "scrub after the rewrite: $errs errors"
berth pool status m2 | grep -q 'No known data errors' || echo "  (note: pool status still shows device error counters, as zpool does until clear)"
check_pool m2

echo "== 4. 3-way mirror: the same ranges garbled on two devices, others on the third"
mkdir -p "$T/m3"
berth pool create -o size=192M m3 mirror "$T/m3/c0.img" "$T/m3/c1.img" "$T/m3/c2.img" >/dev/null ||
  fail "pool create m3 (3-way mirror)"
[ "$(berth --json pool status m3 | nbdpy -c 'import json,sys; print(len(json.load(sys.stdin)["vdevs"]))')" = 3 ] ||
  fail "m3 does not show 3 devices"
berth vol create -V 32M m3/v >/dev/null || fail "vol create m3/v"
mkdata "$T/v.data" 32 mixed
nbdcopy --flush "$T/v.data" "$(uri m3/v)" || fail "fill m3/v"
berth pool export m3 || fail "export m3"
MU corrupt "$T/m3/c0.img" 25 "$RANDOM" "$T/r3.01" || fail "garbling c0"
MU garble "$T/m3/c1.img" "$T/r3.01"
MU corrupt "$T/m3/c2.img" 15 "$RANDOM" "$T/r3.2" "$T/r3.01" || fail "garbling c2"
berth pool import m3 >/dev/null || fail "import m3"
MU readcheck "$(uri m3/v)" "$T/v.data" 16384 "$T/eio" || fail "m3/v returned wrong data"
[ ! -s "$T/eio" ] || fail "m3/v: EIO although one copy of every block was intact"
read -r rep errs < <(scrub m3)
echo "  scrub: repaired $rep bytes, $errs errors; CKSUM $(vdev_field m3 0 checksum_errors) $(vdev_field m3 1 checksum_errors) $(vdev_field m3 2 checksum_errors)"
[ "$errs" = 0 ] || fail "scrub of m3: $errs errors"
for i in 0 1 2; do
  [ "$(vdev_field m3 $i checksum_errors)" -gt 0 ] || fail "no checksum errors counted on c$i"
done
read -r rep errs < <(scrub m3)
[ "$rep" = 0 ] && [ "$errs" = 0 ] || fail "second scrub of m3: repaired $rep, errors $errs"
check_pool m3
berth pool export m3 || fail "export m3 (2)"
MU cmp "$T/m3/c0.img" "$T/m3/c1.img" "$T/m3/c2.img" || fail "the three devices differ after the scrub"
berth pool import m3 >/dev/null || fail "import m3 (2)"
MU readcheck "$(uri m3/v)" "$T/v.data" 65536 || fail "m3/v after the scrub"

berthd_alive
stop_berthd
echo PASS
