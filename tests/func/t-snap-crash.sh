#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Crashes (SIGKILL of berthd) during snapshot work and during a receive.
#  1. A writer overwrites tank/v through NBD while a loop creates snapshots,
#     destroys old ones, rolls back, clones and destroys clones; berthd is
#     killed at a random moment, restarted, and `berth pool check` must find
#     the pool consistent (no leak, exact per-dataset space); every listed
#     snapshot must read back without error and the ones that existed before
#     the round (and were not destroyed) must be byte-identical to before.
#  2. A resumable receive into a second pool is killed half way; after the
#     restart the volume does not exist yet, `berth recv --token` gives the
#     resume point, `berth send -t` continues it, and the result is
#     byte-identical to the source snapshot; both pools check clean.
# BERTH_SNAPCRASH_ITER overrides the number of rounds of part 1.
. "$(dirname "$0")/functions.sh"
requires_nbdpy
requires nbdcopy

ITER=${BERTH_SNAPCRASH_ITER:-$([ "${BERTH_LONG:-0}" = 1 ] && echo 20 || echo 5)}

# sha POOL/VOL[@SNAP]: sha256 of the whole volume read through NBD
sha() { nbdcopy "$(uri "$1")" - | sha256sum | cut -d' ' -f1; }

start_berthd
mkpool tank 1G
berth vol create -V 32M tank/v >/dev/null || fail "vol create"
nbdcopy <(head -c 32M /dev/urandom) "$(uri tank/v)" || fail "fill tank/v"

cat >"$T/writer.py" <<'EOF'
import nbd, os, random, sys
uri = sys.argv[1]
rnd = random.Random(os.getpid())
try:
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    while True:
        off = rnd.randrange(size // 65536) * 65536
        h.pwrite(rnd.randbytes(65536), off)
        if rnd.random() < 0.1:
            h.flush()
except Exception:
    pass
EOF

cat >"$T/admin.sh" <<'EOF'
# snapshot churn until berthd dies (errors are expected then)
berth() { "$BERTH_BIN" "$@"; }
n=$1
while :; do
  n=$((n + 1))
  berth snapshot tank/v@c$n >/dev/null 2>&1 || exit 0
  old=$((n - 3))
  berth snapshot destroy tank/v@c$old >/dev/null 2>&1
  case $((n % 5)) in
    0) berth clone tank/v@c$n tank/k$n >/dev/null 2>&1 ;;
    2) berth vol destroy -r tank/k$((n - 2)) >/dev/null 2>&1 ;;
  esac
done
EOF

declare -A before
for round in $(seq 1 "$ITER"); do
  # the snapshots that exist now, with their contents
  before=()
  for s in $(berth -H snapshot list tank/v 2>/dev/null | cut -f1); do
    before[$s]=$(sha "$s" 2>/dev/null || echo unreadable)
  done
  nbdpy "$T/writer.py" "$(uri tank/v)" &
  wpid=$!
  BERTH_BIN=$BERTH_BIN BERTH_SOCKET=$BERTH_SOCKET bash "$T/admin.sh" $((round * 1000)) &
  apid=$!
  sleep "$(nbdpy -c 'import random; print(round(random.uniform(0.5, 2.5), 2))')"
  kill_berthd
  wait $wpid $apid 2>/dev/null
  start_berthd
  berth pool check tank >/dev/null || fail "round $round: pool check after SIGKILL: $(berth pool check tank 2>&1)"
  nsnap=0
  for s in $(berth -H snapshot list tank/v | cut -f1); do
    nsnap=$((nsnap + 1))
    h=$(sha "$s") || fail "round $round: snapshot $s unreadable"
    if [ -n "${before[$s]:-}" ] && [ "${before[$s]}" != "$h" ]; then
      fail "round $round: snapshot $s changed across the crash"
    fi
  done
  echo "round $round: consistent, $nsnap snapshots, ${#before[@]} compared"
done

# ---- 2. a killed resumable receive, resumed from its token ----
mkpool tank2 1G
# 192M: a receive records its resume point every 64 MiB
berth vol create -V 192M tank/big >/dev/null || fail "vol create big"
nbdcopy <(head -c 192M /dev/urandom) "$(uri tank/big)" || fail "fill tank/big"
berth snapshot tank/big@base >/dev/null || fail "snapshot base"
want=$(sha tank/big@base)
berth send tank/big@base >"$T/full.stream" || fail "send"
size=$(stat -c %s "$T/full.stream")
# feed the stream slowly (~8 s) so the kill lands in the middle: once the
# receive has recorded its first resume point (the token changes; a
# recorded point is durable, recvsup.c recv_set_offset), not after a fixed
# time, which on a loaded machine came before the first 64 MiB
nbdpy - "$T/full.stream" <<'EOF' | berth recv -s tank2/r >/dev/null 2>&1 &
import sys, time
data = open(sys.argv[1], "rb").read()
step = len(data) // 80
for i in range(0, len(data), step):
    try:
        sys.stdout.buffer.write(data[i:i + step]); sys.stdout.buffer.flush(); time.sleep(0.1)
    except BrokenPipeError:
        break
EOF
rpid=$!
first= moved=
for _ in $(seq 300); do
  if tk=$(berth recv --token tank2/r 2>/dev/null); then
    [ -n "$first" ] || first=$tk
    [ "$tk" != "$first" ] && { moved=1; break; }
  fi
  sleep 0.1
done
[ -n "$moved" ] || fail "the receive recorded no resume point within 30 s"
kill_berthd
wait $rpid 2>/dev/null
start_berthd
berth vol get volsize tank2/r >/dev/null 2>&1 && fail "a half-received volume is visible"
token=$(berth recv --token tank2/r) || fail "no resume token after the crash"
echo "resume token: ${token:0:40}..."
berth send -t "$token" tank/big@base >"$T/rest.stream" || fail "send -t"
rest=$(stat -c %s "$T/rest.stream")
echo "full stream $size bytes, resumed stream $rest bytes"
[ "$rest" -lt "$size" ] || fail "the resumed stream is not shorter than the full one"
berth recv -s tank2/r <"$T/rest.stream" || fail "resumed receive"
[ "$(sha tank2/r@base)" = "$want" ] || fail "received snapshot differs from the source"
berth pool check tank >/dev/null || fail "tank check"
berth pool check tank2 >/dev/null || fail "tank2 check"
stop_berthd
echo "PASS"
