#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Crash consistency.  Three libnbd writers write numbered 4K blocks (content
# derived from block number and sequence number; some are TRIMs or
# WRITE_ZEROES instead) with FLUSH every few writes and occasional FUA, one of
# them with many writes in flight, on two volumes (16K blocks + lz4, 4K blocks
# + zstd), logging which writes were acknowledged durable.
# berthd is killed with SIGKILL at random moments (10 times, 40 with
# BERTH_LONG=1), then restarted; every acknowledged write must be there (or a
# later write of the same block), nothing else may appear, nothing may fail
# with EIO, and `berth pool check` must find the pool consistent.  Then the
# same with torn writes injected at the vdev layer before the kill.
# BERTH_CRASH_ITER / BERTH_TORN_ITER override the number of rounds.
. "$(dirname "$0")/functions.sh"
requires_nbdpy

ITER=${BERTH_CRASH_ITER:-$([ "${BERTH_LONG:-0}" = 1 ] && echo 40 || echo 10)}
TORN=${BERTH_TORN_ITER:-$([ "${BERTH_LONG:-0}" = 1 ] && echo 20 || echo 5)}
NW=3            # writers: 2 synchronous on tank/v, 1 with many writes in flight on tank/w
NB=4096         # 4K blocks per writer (16 MiB each)
BS=4096

cat >"$T/writer.py" <<'EOF'
# writer URI LOG RUN FIRSTBLOCK NBLOCKS BS MODE: write until the connection dies.
# MODE sync: one write at a time, 5% of them FUA; MODE aio: batches of up to 32
# writes in flight at once (to distinct blocks, so their order does not matter).
import nbd, os, random, struct, sys
uri, logp, run, first, nb, bs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
mode = sys.argv[7] if len(sys.argv) > 7 else "sync"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blocks import content
rnd = random.Random(run * 1000 + first)
log = open(logp, "a", buffering=1)
seq = run * 10**9 + first * 10**5
try:
    h = nbd.NBD()
    h.connect_uri(uri)
    log.write("C\n")
    while True:
        if mode == "aio":
            cookies = []
            for b in rnd.sample(range(first, first + nb), rnd.randint(1, 32)):
                seq += 1
                log.write("I %d %d\n" % (b, seq))
                cookies.append(h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(content(b, seq, bs))), b * bs))
            pending = set(cookies)
            while pending:
                h.poll(-1)
                pending = {c for c in pending if not h.aio_command_completed(c)}
        else:
            for _ in range(rnd.randint(1, 48)):
                seq += 1
                b = first + rnd.randrange(nb)
                fua = nbd.CMD_FLAG_FUA if rnd.random() < 0.05 else 0
                op = rnd.random()
                if op < 0.06:                                   # discard / write zeroes
                    log.write("Z %d %d\n" % (b, seq))
                    if op < 0.03:
                        h.trim(bs, b * bs, fua)
                    else:
                        h.zero(bs, b * bs, fua)
                else:
                    log.write("I %d %d\n" % (b, seq))          # intent: sent, maybe lost
                    h.pwrite(content(b, seq, bs), b * bs, fua)
                if fua:
                    log.write("A %d\n" % seq)              # this write is durable
        h.flush()
        log.write("F %d\n" % seq)                      # all writes of this run <= seq are durable
except nbd.Error as e:
    log.write("E %s\n" % str(e).replace("\n", " "))
EOF

cat >"$T/blocks.py" <<'EOF'
import random, struct
MAGIC = b"BCRASH01"
def content(b, seq, bs):
    hdr = struct.pack("<8sQQ", MAGIC, b, seq)
    n = bs - len(hdr)
    if seq % 2:
        body = random.Random(seq).randbytes(n)           # incompressible
    else:
        body = (struct.pack("<Q", seq) * (n // 8 + 1))[:n] # compressible
    return hdr + body
EOF

# verify URI STATEFILE NBLOCKS BS LOG...: check the volume against the logs of
# the runs since the last verification; record what is there now as the new
# baseline (it is the committed state that the pool imported).
cat >"$T/verify.py" <<'EOF'
import json, nbd, os, struct, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blocks import content, MAGIC
uri, statep, nblocks, bs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
logs = sys.argv[5:]
base = json.load(open(statep)) if os.path.exists(statep) else {}
base = {int(k): v for k, v in base.items()}
writes = {}        # block -> [seq...] of this round
zeros = set()      # seqs that were a TRIM or WRITE_ZEROES
durable = {}       # block -> highest durable seq of this round
nacked = 0
for lp in logs:
    ws = []        # (block, seq) in order
    acked = set()
    flushed = 0
    for line in open(lp):
        f = line.split()
        if not f: continue
        if f[0] in ("I", "Z") and len(f) == 3:
            ws.append((int(f[1]), int(f[2])))
            if f[0] == "Z":
                zeros.add(int(f[2]))
        elif f[0] == "A" and len(f) == 2:
            acked.add(int(f[1]))
        elif f[0] == "F" and len(f) == 2:
            flushed = int(f[1])
    for b, s in ws:
        writes.setdefault(b, []).append(s)
        if s <= flushed or s in acked:
            nacked += 1
            if s > durable.get(b, 0):
                durable[b] = s
h = nbd.NBD()
h.connect_uri(uri)
bad = []
now = {}
chunk = 1 << 20
per = chunk // bs
for c in range(nblocks * bs // chunk):
    try:
        data = h.pread(chunk, c * chunk)
    except nbd.Error as e:
        bad.append("read of %d+%d failed: %s" % (c * chunk, chunk, e))
        continue
    for i in range(per):
        b = c * per + i
        blk = data[i * bs:(i + 1) * bs]
        if blk == bytes(bs):
            got = 0
        else:
            m, bb, s = struct.unpack_from("<8sQQ", blk)
            if m != MAGIC or bb != b or blk != content(b, s, bs):
                bad.append("block %d: garbage (header %r %d %d)" % (b, m, bb, s))
                continue
            got = s
        now[b] = got
        old = base.get(b, 0)
        d = max(old, durable.get(b, 0))
        # what may be there: the newest durable state, or anything written after it
        cands = [d] + [x for x in writes.get(b, ()) if x > d]
        ok = any(got == (0 if (x == 0 or x in zeros) else x) for x in cands)
        if not ok:
            bad.append("block %d holds seq %d; durable was %d (baseline %d, writes since %s)" %
                       (b, got, d, old, writes.get(b, [])[-5:]))
json.dump(now, open(statep + ".new", "w"))
os.replace(statep + ".new", statep)
print("verified %d blocks against %d acknowledged writes: %d problems" % (nblocks, nacked, len(bad)))
for x in bad[:20]:
    print("  " + x)
sys.exit(1 if bad else 0)
EOF

pool_consistent() {
  local out
  out=$(berth --json pool check tank 2>&1) || { echo "$out"; return 1; }
  [ "$(jfield consistent <<<"$out")" = on ] || { echo "$out"; return 1; }
}

start_berthd
mkpool tank 1G
berth vol create -V 64M tank/v >/dev/null || fail "vol create"   # 16K blocks, lz4: 2 x 16 MiB used
berth vol create -V 32M -b 4K -o compression=zstd tank/w >/dev/null || fail "vol create tank/w"  # 16 MiB used
U=$(uri tank/v)
UW=$(uri tank/w)
run=0

# one_round TORN: start writers, crash berthd, restart, verify
one_round() {
  local torn=$1 i pids=() logs=()
  run=$((run + 1))
  for ((i = 0; i < NW; i++)); do
    logs+=("$T/log.$run.$i")
    if [ $i = 2 ]; then
      nbdpy "$T/writer.py" "$UW" "$T/log.$run.$i" "$run" 0 "$NB" "$BS" aio &
    else
      nbdpy "$T/writer.py" "$U" "$T/log.$run.$i" "$run" $((i * NB)) "$NB" "$BS" sync &
    fi
    pids+=($!)
  done
  # let the writers get going: wait for their first flush (or 5 s)
  wait_until 5 grep -q '^F' "${logs[0]}"
  if [ "$torn" = 1 ]; then
    local n=$((RANDOM % 200 + 1))
    berth pool debug tank "torn_write_after=$n" >/dev/null || fail "pool debug torn_write_after=$n"
    sleep "0.$((RANDOM % 8 + 2))"
    echo "  round $run: torn write after $n vdev writes, then SIGKILL"
  else
    sleep "$((RANDOM % 2)).$((RANDOM % 10))"
    echo "  round $run: SIGKILL"
  fi
  kill_berthd
  for i in "${pids[@]}"; do wait "$i"; done
  grep -h '^E' "${logs[@]}" | head -3 | sed 's/^/    writer: /'
  for i in "${logs[@]}"; do
    tail -1 "$i" | grep -q '^E' || fail "writer $i stopped for another reason than a lost connection (a bug in the writer?)"
    grep -q '^I' "$i" || fail "writer $i wrote nothing"
  done
  start_berthd
  [ "$(pool_field tank state)" = ONLINE ] || { berth pool status tank; fail "tank is not ONLINE after the crash"; }
  nbdpy "$T/verify.py" "$U" "$T/state.json" $((2 * NB)) "$BS" "${logs[0]}" "${logs[1]}" ||
    fail "round $run: tank/v: acknowledged writes lost or garbage read"
  nbdpy "$T/verify.py" "$UW" "$T/state-w.json" "$NB" "$BS" "${logs[2]}" ||
    fail "round $run: tank/w: acknowledged writes lost or garbage read"
  pool_consistent || fail "round $run: pool check failed"
  # torn or lost writes belong to uncommitted txgs: nothing committed may fail verification
  [ "$(pool_field tank checksum_errors)" = 0 ] || { berth pool status tank; fail "round $run: checksum errors after a crash"; }
}

echo "== $ITER rounds of SIGKILL under a flushing write load"
for ((k = 0; k < ITER; k++)); do one_round 0; done
echo "== $TORN rounds of torn writes + SIGKILL"
for ((k = 0; k < TORN; k++)); do one_round 1; done

echo "== clean shutdown after all that"
berthd_alive
stop_berthd
start_berthd
nbdpy "$T/verify.py" "$U" "$T/state.json" $((2 * NB)) "$BS" || fail "tank/v changed over a clean restart"
nbdpy "$T/verify.py" "$UW" "$T/state-w.json" "$NB" "$BS" || fail "tank/w changed over a clean restart"
pool_consistent || fail "pool check after clean restart"
stop_berthd
echo PASS
