#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Raw send of encrypted volumes through the CLI and a real berthd (docs/STREAM.md,
# issue 6 item 4): a volume with a raw key file is locked, `berth send --raw`
# (full, -i, -I) pipes into `berth recv` on a pool that never had the key; the
# received volume is encrypted, locked and not exported; `berth key load
# --key-file` there unlocks it and every snapshot read through NBD equals the
# source's.  A plain send of the locked volume, a plain stream into the locked
# copy, a raw stream into a plaintext volume and a damaged raw stream are
# refused with a message and change nothing; the copy stays loadable after a
# berthd restart; a clone of it works.
. "$(dirname "$0")/functions.sh"
requires nbdcopy nbdinfo cmp
start_berthd
mkpool src 256M
mkpool dst 256M
mkdata "$T/d1.img" 8 mixed
mkdata "$T/d2.img" 3 random
mkdata "$T/d3.img" 2 text

prop() { berth -H vol get "$2" "$1" | cut -f3; }
# same SRC DST: the two NBD exports hold the same bytes
same() {
  nbdcopy "$(uri "$1")" "$T/a.img" && nbdcopy "$(uri "$2")" "$T/b.img" &&
    cmp "$T/a.img" "$T/b.img" || fail "$2 differs from $1"
  echo "  $2 == $1"
}

echo "== an encrypted source, snapshots, then locked"
head -c 32 /dev/urandom >"$T/k.key"
berth vol create -V 8M -o encryption=on -o keyformat=raw -o keylocation="file://$T/k.key" \
  src/v >/dev/null || fail "create"
nbdcopy "$T/d1.img" "$(uri src/v)" || fail "write 1"
berth snapshot src/v@a >/dev/null || fail "snap a"
nbdcopy "$T/d2.img" "$(uri src/v)" || fail "write 2"
berth snapshot src/v@b >/dev/null || fail "snap b"
nbdcopy "$T/d3.img" "$(uri src/v)" || fail "write 3"
berth snapshot src/v@c >/dev/null || fail "snap c"
berth snapshot src/v@d >/dev/null || fail "snap d"
berth key unload src/v >/dev/null || fail "unload source"
[ "$(prop src/v keystatus)" = unavailable ] || fail "source locked"

echo "== refused sends"
rc_of 1 "key is not loaded" sh -c "$BERTH_BIN send src/v@a > $T/plain.stream"
rc_of 2 "exactly one" sh -c "$BERTH_BIN send --raw > $T/x.stream"

echo "== raw full, -i and -I into a pool that never had the key"
berth send --raw src/v@a >"$T/full.stream" || fail "raw send of the locked volume"
berth recv dst/r <"$T/full.stream" | grep -q "received dst/r@a" || fail "raw recv"
[ "$(prop dst/r encryption)" = aes-256-gcm ] || fail "received volume is encrypted"
[ "$(prop dst/r keystatus)" = unavailable ] || fail "received volume is locked"
[ "$(prop dst/r keylocation)" = prompt ] || fail "keylocation of the copy"
nbdinfo "$(uri dst/r)" >/dev/null 2>&1 && fail "a locked received volume is exported"
berth send -w -i @a src/v@b | berth recv dst/r >/dev/null || fail "raw -i"
berth send --raw -I @b src/v@d | berth recv dst/r >/dev/null || fail "raw -I"
[ "$(berth -H snapshot list dst/r | wc -l)" = 4 ] || fail "4 snapshots on dst/r"

echo "== refused receives change nothing"
head -c 32 /dev/urandom >"$T/other.key"
berth vol create -V 8M src/plain >/dev/null || fail "plain volume"
nbdcopy "$T/d2.img" "$(uri src/plain)" || fail "write plain"
berth snapshot src/plain@p1 >/dev/null && berth snapshot src/plain@p2 >/dev/null
berth send src/plain@p1 | berth recv dst/plain >/dev/null || fail "plain recv"
rc_of 1 "not encrypted" sh -c "$BERTH_BIN send --raw src/plain@p2 > $T/x.stream"
# a raw incremental of v onto the plaintext copy of `plain`: wrong base first,
# so make the base right: send v@a plain into dst/pv, then raw -i onto it
berth key load src/v >/dev/null || fail "load source"
berth send src/v@a | berth recv dst/pv >/dev/null || fail "plain copy of v@a"
berth key unload src/v >/dev/null
berth send --raw -i @a src/v@b >"$T/ab.stream" || fail "raw a->b"
rc_of 1 "not encrypted" sh -c "$BERTH_BIN recv dst/pv < $T/ab.stream"
berth key load src/v >/dev/null
mkdata "$T/d4.img" 1 random
nbdcopy "$T/d4.img" "$(uri src/v)" || fail "write 4"
berth snapshot src/v@e >/dev/null
berth send -i @d src/v@e >"$T/de-plain.stream" || fail "plain d->e"
berth send --raw -i @d src/v@e >"$T/de.stream" || fail "raw d->e"
rc_of 1 "not loaded" sh -c "$BERTH_BIN recv dst/r < $T/de-plain.stream"
python3 - "$T/de.stream" "$T/bad.stream" <<'PY' || fail "damage"
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x08
open(sys.argv[2], "wb").write(b)
PY
rc_of 1 "corrupt" sh -c "$BERTH_BIN recv dst/r < $T/bad.stream"
head -c $(( $(stat -c %s "$T/de.stream") - 100 )) "$T/de.stream" >"$T/short.stream"
rc_of 1 "truncated" sh -c "$BERTH_BIN recv dst/r < $T/short.stream"
[ "$(berth -H snapshot list dst/r | wc -l)" = 4 ] || fail "dst/r changed"
berth recv dst/r <"$T/de.stream" >/dev/null || fail "the good raw stream"

echo "== key load on the receiver, compare every snapshot through NBD"
berth key load --key-file "$T/k.key" dst/r >/dev/null || fail "key load on dst"
[ "$(prop dst/r keystatus)" = available ] || fail "dst/r unlocked"
for s in a b c d e; do same "src/v@$s" "dst/r@$s"; done
same src/v dst/r

echo "== restart: still loadable; a clone of the copy"
stop_berthd
start_berthd
[ "$(prop dst/r keystatus)" = unavailable ] || fail "locked after restart (prompt)"
rc_of 1 "wrong key" berth key load --key-file "$T/other.key" dst/r
berth key load --key-file "$T/k.key" dst/r >/dev/null || fail "key load after restart"
same src/v@c dst/r@c
berth clone dst/r@b dst/rc >/dev/null || fail "clone"
same src/v@b dst/rc
nbdcopy "$T/d2.img" "$(uri dst/rc)" || fail "write the clone"
nbdcopy "$(uri dst/rc)" "$T/c.img" && cmp -n $((3 << 20)) "$T/c.img" "$T/d2.img" ||
  fail "clone reads back"
same src/v@b dst/r@b
stop_berthd
echo PASS
