#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Raw replication jobs (docs/REPLICATION.md "Encrypted volumes: --raw"): an
# encrypted volume, locked on the source, is replicated by `berth replicate
# create --raw` into another pool of the same berthd and, through --remote,
# "on another host" (the same berthd through the CLI).  Every cycle (full,
# then incremental) leaves the target locked and not exported; `berth key
# load` there opens it and its snapshots read through NBD equal the
# source's.  `berth key change` / `key add` on the source followed by a cycle:
# the new keys open the target, the changed-away one no longer does.
# Refused: --raw for a plaintext source, a plain job (or its cycles) on a
# locked source, a non-boolean raw; a plain job on an encrypted source to a
# --remote target warns.
. "$(dirname "$0")/functions.sh"
requires nbdcopy nbdinfo cmp
requires_nbdpy
start_berthd
mkpool src 256M
mkpool dst 256M
mkdata "$T/d1.img" 4 mixed
mkdata "$T/d2.img" 2 random
mkdata "$T/d3.img" 2 random
mkdata "$T/d4.img" 1 random

prop() { berth -H vol get "$2" "$1" | cut -f3; }
jget() { api GET "/replications/$1" | jfield "$2"; }
state_is() { [ "$(jget "$1" state)" = "$2" ]; }
# same SRC DST: the two NBD exports hold the same bytes
same() {
  nbdcopy "$(uri "$1")" "$T/a.img" && nbdcopy "$(uri "$2")" "$T/b.img" &&
    cmp "$T/a.img" "$T/b.img" || fail "$2 differs from $1"
  echo "  $2 == $1"
}
locked() {
  [ "$(prop "$1" keystatus)" = unavailable ] || fail "$1 is not locked"
  nbdinfo "$(uri "$1")" >/dev/null 2>&1 && fail "locked $1 is exported"
  return 0
}
# write SRC IMG: load the source key, write IMG at offset 0, lock it again
# (then a second passes: a job's snapshot names have a 1s resolution)
write() {
  berth key load src/v >/dev/null || fail "key load src/v"
  nbdcopy "$2" "$(uri "$1")" || fail "write $2 into $1"
  berth key unload src/v >/dev/null || fail "key unload src/v"
  sleep 1
}

echo "== an encrypted source, locked"
head -c 32 /dev/urandom >"$T/k.key"
head -c 32 /dev/urandom >"$T/k2.key"
head -c 32 /dev/urandom >"$T/k3.key"
berth vol create -V 8M -o encryption=on -o keyformat=raw -o keylocation="file://$T/k.key" \
  src/v >/dev/null || fail "create"
nbdcopy "$T/d1.img" "$(uri src/v)" || fail "write 1"
berth key unload src/v >/dev/null || fail "unload source"
berth vol create -V 8M src/plain >/dev/null || fail "plain volume"

echo "== refusals"
C=(berth replicate create)
rc_of 1 "not encrypted" "${C[@]}" p --source src/plain --target dst/p --raw --every 1h --keep 1h:3
rc_of 1 "key is not loaded" "${C[@]}" q --source src/v --target dst/q --every 1h --keep 1h:3
[ "$(api_status POST /replications '{"name":"j","source":"src/v","target":"dst/v","every":"1h","keep":"1h:3","raw":"yes"}')" = 400 ] ||
  fail "a non-boolean raw is not refused"
berth replicate list | grep -qx "no replications" || fail "a refused job was created"

echo "== a raw job to a local pool: the source stays locked, so does the target"
berth replicate create j --source src/v --target dst/v --raw --every 1h --keep 1s:1000 \
  | grep -qx "replication j created" || fail "create j"
wait_until 30 state_is j ok || fail "first cycle: $(api GET /replications/j)"
berth replicate status j | grep -qE '^raw: +yes' || fail "status does not say raw"
[ "$(jget j raw)" = on ] || fail "API raw"
[ "$(prop dst/v encryption)" = aes-256-gcm ] || fail "target not encrypted"
locked dst/v
locked src/v
first=$(jget j newest_target_snapshot)
write src/v "$T/d2.img"
berth replicate run j | grep -q "cycle done" || fail "second cycle (incremental)"
second=$(jget j newest_target_snapshot)
[ "$second" != "$first" ] || fail "no new snapshot on the target"
locked dst/v
[ "$(berth -H snapshot list dst/v | wc -l)" -ge 2 ] || fail "target snapshots"

echo "== key load on the target, NBD compare"
berth key load --key-file "$T/k.key" dst/v >/dev/null || fail "key load on the target"
berth key load src/v >/dev/null || fail "key load on the source"
same "src/v@$first" "dst/v@$first"
same "src/v@$second" "dst/v@$second"
berth key unload dst/v >/dev/null || fail "unload target"

echo "== key change and key add on the source reach the target with the next run"
berth key change --key-file "$T/k2.key" -o keylocation="file://$T/k2.key" src/v >/dev/null ||
  fail "key change on the source"
berth key add --key-file "$T/k3.key" src/v >/dev/null || fail "key add on the source"
nbdcopy "$T/d3.img" "$(uri src/v)" || fail "write 3"
berth key unload src/v >/dev/null || fail "unload source"
sleep 1
rc_of 1 "wrong key" berth key load --key-file "$T/k2.key" dst/v  # not yet
berth replicate run j | grep -q "cycle done" || fail "cycle after the key change"
third=$(jget j newest_target_snapshot)
locked dst/v
rc_of 1 "wrong key" berth key load --key-file "$T/k.key" dst/v
berth key load --key-file "$T/k3.key" dst/v >/dev/null || fail "the added key does not open the target"
berth key unload dst/v >/dev/null
berth key load --key-file "$T/k2.key" dst/v >/dev/null || fail "the new key does not open the target"
berth key list dst/v | tee "$T/keys"
[ "$(grep -cE '^[0-9]+ ' "$T/keys")" = 2 ] || fail "the target does not list the source's two slots"
berth key load src/v >/dev/null || fail "key load source (new location)"
same "src/v@$third" "dst/v@$third"
same "src/v@$third" dst/v

echo "== a locked source replicates only raw"
berth replicate create pl --source src/v --target dst/pl --every 1h --keep 1h:3 --prefix pl_ >/dev/null ||
  fail "plain job with the key loaded"
wait_until 30 state_is pl ok || fail "plain job: $(api GET /replications/pl)"
[ "$(prop dst/pl encryption)" = off ] || fail "a plain job's target is plaintext"
berth key unload dst/v >/dev/null
berth key unload src/v >/dev/null || fail "unload source"
rc_of 1 "a job with --raw replicates it locked" berth replicate run pl
berth replicate destroy pl >/dev/null || fail "destroy pl"

echo "== a raw job through --remote (berth on the target host)"
berth replicate create r --source src/v --target dst/rv --raw \
  --remote "$BERTH_BIN --socket $BERTH_SOCKET" --every 1h --keep 1s:1000 --prefix r_ 2>"$T/r.err" >/dev/null ||
  fail "create r: $(cat "$T/r.err")"
grep -q warning "$T/r.err" && fail "a raw job warns: $(cat "$T/r.err")"
wait_until 30 state_is r ok || fail "remote job: $(api GET /replications/r)"
write src/v "$T/d4.img"
berth replicate run r | grep -q "cycle done" || fail "second remote cycle"
rnew=$(jget r newest_target_snapshot)
locked dst/rv
berth key load --key-file "$T/k2.key" dst/rv >/dev/null || fail "key load dst/rv"
berth key load src/v >/dev/null
same "src/v@$rnew" "dst/rv@$rnew"
same src/v dst/rv
berth replicate destroy r >/dev/null || fail "destroy r"

echo "== a plain job on an encrypted source to a remote target warns"
berth replicate create w --source src/v --target dst/w --remote "$BERTH_BIN --socket $BERTH_SOCKET" \
  --every 1h --keep 1h:3 --prefix w_ 2>"$T/w.err" >/dev/null || fail "create w: $(cat "$T/w.err")"
grep -q "warning: .*encrypted.*--raw" "$T/w.err" || fail "no warning: $(cat "$T/w.err")"
echo "  $(cat "$T/w.err")"
berth replicate destroy w >/dev/null || fail "destroy w"

echo "== berth recv says what a raw stream did to the key slots"
# (a pool of its own: in dst the copies v and rv share their key record,
# so a stream into one of them keeps the slots: docs/STREAM.md 11.4)
mkpool cp 128M
berth snapshot src/v@m1 >/dev/null || fail "snap m1"
berth send --raw src/v@m1 | berth recv cp/m >/dev/null || fail "raw full into cp/m"
head -c 32 /dev/urandom >"$T/k4.key"
berth key add --key-file "$T/k4.key" src/v >/dev/null || fail "key add k4"
berth snapshot src/v@m2 >/dev/null || fail "snap m2"
berth send --raw -i @m1 src/v@m2 | berth recv cp/m >"$T/m.out" || fail "raw -i into cp/m"
grep -qx "key slots updated from the sender" "$T/m.out" || fail "recv output: $(cat "$T/m.out")"
berth key load --key-file "$T/k4.key" cp/m >/dev/null || fail "k4 does not open cp/m"
# back into the source pool: cp/m's chain shares src/v's key record there,
# so a key added on the copy does not reach src/v's slots
berth send --raw cp/m@m1 | berth recv src/back >/dev/null || fail "raw full back into src"
head -c 32 /dev/urandom >"$T/k5.key"
berth key add --key-file "$T/k5.key" cp/m >/dev/null || fail "key add on the copy"
berth send --raw -i @m1 cp/m@m2 | berth recv src/back 2>"$T/back.err" >/dev/null ||
  fail "raw -i back into src"
grep -q "warning: the sender's key slots were not taken: the key record is shared with v" \
  "$T/back.err" || fail "no 'kept' warning: $(cat "$T/back.err")"
cat "$T/back.err"
berth key unload src/v >/dev/null || fail "unload src/v"
rc_of 1 "wrong key" berth key load --key-file "$T/k5.key" src/v
berth key load src/v >/dev/null || fail "src/v's own key"

echo "== restart: the raw job and the locked target"
stop_berthd
start_berthd
sleep 1
[ "$(jget j raw)" = on ] || fail "raw lost over a restart"
berth replicate run j | grep -q "cycle done" || fail "cycle after the restart"
locked dst/v
berth key load --key-file "$T/k2.key" dst/v >/dev/null || fail "key load after restart"
s=$(jget j newest_target_snapshot)
same "src/v@$s" "dst/v@$s"
berth replicate destroy j >/dev/null

echo "== a raw transfer cut short by a stop resumes raw at the next start"
head -c 32 /dev/urandom >"$T/big.key"
berth vol create -V 128M -o compression=off -o encryption=on -o keyformat=raw \
  -o keylocation="file://$T/big.key" src/big >/dev/null || fail "create big"
nbdpy - "$(uri src/big)" <<'EOF' || fail "writing src/big"
import nbd, random, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
r = random.Random(11)
for off in range(0, 128 << 20, 4 << 20):
    h.pwrite(r.randbytes(4 << 20), off)
h.flush()
h.shutdown()
EOF
berth key unload src/big >/dev/null || fail "unload big"
berth replicate create big --source src/big --target dst/big --raw --every 1h --keep 1h:2 \
  --prefix b_ >/dev/null || fail "create big"
sleep 0.3 # its first cycle is sending 128M now
stop_berthd
start_berthd
wait_until 60 state_is big ok || fail "big: $(api GET /replications/big)"
if grep -q "replication big: cycle stopped: .*partial receive is kept" "$T/berthd.log"; then
  grep -q "replication big: resuming the receive of" "$T/berthd.log" || fail "the kept receive was not resumed"
  echo "  resumed after the restart"
else
  echo "  (the first cycle ended before the stop: nothing to resume)"
fi
locked dst/big
berth key load --key-file "$T/big.key" dst/big >/dev/null || fail "key load dst/big"
s=$(jget big newest_target_snapshot)
same "src/big@$s" "dst/big@$s"
berth replicate destroy big >/dev/null
berth pool check dst >/dev/null || fail "pool check dst"
berthd_alive
stop_berthd
echo PASS
