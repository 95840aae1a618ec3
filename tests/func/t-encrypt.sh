#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Encrypted volumes through the CLI and a real berthd: a passphrase volume
# (key from stdin) and a raw key file volume; `vol get` shows encryption,
# keystatus, keyformat, keylocation; no 16-byte run of the written data in
# the pool file; key unload makes the NBD export disappear and a VM disk
# check refuse; wrong passphrase refused; key add/list/remove/change; after a
# berthd restart the file:// key is loaded again and the prompt one is not;
# pool-level defaults (-O encryption=on) with an opt-out child.
. "$(dirname "$0")/functions.sh"
requires nbdcopy nbdinfo cmp python3

start_berthd
mkpool tank 128M
mkdata "$T/d.img" 4 random

prop() { berth -H vol get "$2" "$1" | cut -f3; }

echo "== create: passphrase from stdin, raw key file"
printf 'correct horse battery staple\n' |
  berth vol create -V 16M -o encryption=on -o keyformat=passphrase -o keylocation=prompt \
    tank/secret >/dev/null || fail "create passphrase volume"
head -c 32 /dev/urandom >"$T/raw.key"
berth vol create -V 16M -o encryption=on -o keyformat=raw \
  -o keylocation="file://$T/raw.key" tank/rawv >/dev/null || fail "create raw volume"
[ "$(prop tank/secret encryption)" = aes-256-gcm ] || fail "encryption property"
[ "$(prop tank/secret keystatus)" = available ] || fail "keystatus"
[ "$(prop tank/secret keyformat)" = passphrase ] || fail "keyformat"
[ "$(prop tank/secret keylocation)" = prompt ] || fail "keylocation"
[ "$(prop tank/rawv keylocation)" = "file://$T/raw.key" ] || fail "raw keylocation"
rc_of 1 "passphrase must be 8 to 512 bytes" \
  sh -c "printf 'short' | $BERTH_BIN vol create -V 16M -o encryption=on -o keyformat=passphrase tank/x"

echo "== data is ciphertext on disk"
nbdcopy "$T/d.img" "$(uri tank/secret)" || fail "write"
nbdcopy "$T/d.img" "$(uri tank/rawv)" || fail "write raw"
berth pool sync tank >/dev/null
# (the unit test test-encvol searches every offset; here: every 16-byte-aligned
# run, where a block's plaintext would sit in a sector-aligned block)
python3 - "$T/d.img" "$T/tank.img" <<'PY' || fail "plaintext found in the pool file"
import sys
plain = open(sys.argv[1], "rb").read()
runs = {plain[i:i + 16] for i in range(0, len(plain) - 16, 16)}
data = open(sys.argv[2], "rb").read()
hits = sum(1 for i in range(0, len(data) - 16, 16) if data[i:i + 16] in runs)
print("plaintext hits:", hits)
sys.exit(1 if hits else 0)
PY
echo "== unload: locked volumes are not exported"
berth key unload tank/secret >/dev/null || fail "unload"
[ "$(prop tank/secret keystatus)" = unavailable ] || fail "keystatus after unload"
nbdinfo "$(uri tank/secret)" >/dev/null 2>&1 && fail "a locked volume is exported"
rc_of 1 "wrong key or passphrase" sh -c "printf 'incorrect horse\n' | $BERTH_BIN key load tank/secret"
printf 'correct horse battery staple\n' | berth key load tank/secret >/dev/null || fail "load"
nbdcopy "$(uri tank/secret)" "$T/r.img" && cmp -n 4194304 "$T/r.img" "$T/d.img" || fail "read back"

echo "== slots: add, list, remove, change"
printf 'second passphrase\n' | berth key add tank/secret >/dev/null || fail "key add"
[ "$(berth -H key list tank/secret | wc -l)" = 2 ] || fail "2 slots"
berth key remove tank/secret 1 >/dev/null || fail "remove slot 1"
rc_of 1 "last one" berth key remove tank/secret 0
printf 'third passphrase!\n' | berth key change tank/secret >/dev/null || fail "change"
berth key unload tank/secret >/dev/null
rc_of 1 "wrong key" sh -c "printf 'correct horse battery staple\n' | $BERTH_BIN key load tank/secret"
printf 'third passphrase!\n' | berth key load tank/secret >/dev/null || fail "new passphrase"

echo "== restart: file:// keys load at import, prompt keys do not"
stop_berthd
start_berthd
[ "$(prop tank/rawv keystatus)" = available ] || fail "raw key auto-loaded"
[ "$(prop tank/secret keystatus)" = unavailable ] || fail "passphrase volume locked"
nbdcopy "$(uri tank/rawv)" "$T/r2.img" && cmp -n 4194304 "$T/r2.img" "$T/d.img" || fail "raw volume reads"
echo "== a VM whose disk is locked refuses to start"
berth vm create 100 --name enc --memory 128 --bios seabios --scsi0 tank:secret >/dev/null ||
  fail "vm create"
rc_of 1 "key is not loaded" berth vm start 100
berth vm destroy 100 >/dev/null 2>&1
berth key load --key-file <(printf 'third passphrase!\n') tank/secret >/dev/null ||
  fail "load from --key-file"

echo "== pool defaults"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/hex.key"
berth pool create -o size=256M -O encryption=on -O keyformat=hex \
  -O keylocation="file://$T/hex.key" enc "$T/enc.img" >/dev/null || fail "encrypted pool"
berth vol create -V 8M enc/a >/dev/null || fail "inherited"
berth vol create -V 8M -o encryption=off enc/b >/dev/null || fail "opt-out child"
[ "$(prop enc/a encryption)" = aes-256-gcm ] && [ "$(prop enc/a keyformat)" = hex ] ||
  fail "a inherits"
[ "$(prop enc/b encryption)" = off ] || fail "b is plaintext"
berth key unload enc/a >/dev/null || fail "unload a"
berth key load enc >/dev/null || fail "key load POOL"
[ "$(prop enc/a keystatus)" = available ] || fail "pool-wide load"
stop_berthd
echo PASS
