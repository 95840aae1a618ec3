#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Scheduled replication (docs/REPLICATION.md): two file pools in one berthd,
# a job every 2s with small grids.  Several cycles run while data changes;
# the target then holds the job's snapshots, byte-identical to the source's
# (read through NBD); retention pruned each side exactly as its grid says
# (checked against an independent implementation of the grid), and kept a
# held and a foreign snapshot; status reports success, lag and bytes.  A
# failing target command is reported and recovers; jobs survive a restart;
# a transfer cut short by a stop resumes at the next start; a target reached
# through --remote (berth on the other host) is replicated, listed and pruned
# by commands; bad input is refused.
. "$(dirname "$0")/functions.sh"
requires qemu-io
requires_nbdpy
start_berthd
mkpool src 1G
mkpool dst 1G
berth vol create -V 32M src/v >/dev/null || fail "vol create"
qemu-io -f raw "$(uri src/v)" -c 'write -P 1 0 1M' >/dev/null || fail "write"

# jget NAME FIELD: a field of the replication's JSON
jget() { api GET "/replications/$1" | jfield "$2"; }
runs_above() { [ "$(jget "$1" runs)" -gt "$2" ]; }
state_is() { [ "$(jget "$1" state)" = "$2" ]; }
# snaps POOL VOL: the snapshot names (after '@') of POOL/VOL, oldest first
snaps() {
  api GET "/pools/$1/snapshots" | nbdpy -c '
import json, sys
for s in json.load(sys.stdin)["snapshots"]:
    if s["volume"] == sys.argv[1]:
        print(s["snapshot"])' "$2"
}

echo "== bad input"
C=(berth replicate create)
expect_fail "${C[@]}" j --source src/v --target dst/v --every 0s --keep 2s:3
expect_fail "${C[@]}" j --source src/v --target dst/v --every 5 --keep 2s:3   # no unit
expect_fail "${C[@]}" j --source src/v --target dst/v --every 2s --keep 2s:0
expect_fail "${C[@]}" j --source src/v --target dst/v --every 2s --keep weekly
expect_fail "${C[@]}" j --source src/v --target dst/v --target-cmd cat --every 2s --keep 2s:3
expect_fail "${C[@]}" j --source src/v --every 2s --keep 2s:3                  # no target
expect_fail "${C[@]}" j --source src/ghost --target dst/v --every 2s --keep 2s:3
expect_fail "${C[@]}" j --source src/v --target ghost/v --every 2s --keep 2s:3
expect_fail "${C[@]}" j --source src/v --target src/v --every 2s --keep 2s:3
expect_fail "${C[@]}" j --source src/v --target dst/v --every 2s --keep 2s:3 --prefix 'a@b'
expect_fail "${C[@]}" 'bad/name' --source src/v --target dst/v --every 2s --keep 2s:3
[ "$(api_status POST /replications '{"name":"j","source":"src/v","target":"dst/v","every":"2s","keep":"2s:3","colour":"red"}')" = 400 ] ||
  fail "unknown field not refused"
[ "$(api_status GET /replications/ghost)" = 404 ] || fail "GET unknown replication"
[ "$(api_status POST /replications/ghost/run)" = 404 ] || fail "run unknown replication"
[ "$(api_status DELETE /replications/bad@name)" = 400 ] || fail "invalid name in the path"
berth replicate list | grep -qx "no replications" || fail "empty list"

echo "== a job every 2s"
berth replicate create j --source src/v --target dst/v --every 2s --keep 2s:3,10s:1 \
  --keep-target 2s:2,30s:1 | grep -qx "replication j created" || fail "create"
expect_fail "${C[@]}" j --source src/v --target dst/v --every 2s --keep 2s:3   # exists
expect_fail "${C[@]}" j2 --source src/v --target dst/v --every 2s --keep 2s:3  # same target
wait_until 20 runs_above j 1 || fail "no cycle ran: $(api GET /replications/j)"
# a snapshot of the user's and a held one of the job's: never pruned
api POST /pools/src/snapshots '{"names":["v@manual"]}' >/dev/null || fail "manual snapshot"
held=$(snaps src v | grep '^repl_' | head -1)
api POST "/pools/src/snapshots/v@$held/hold" '{"tag":"test"}' >/dev/null || fail "hold $held"
echo "  held src/v@$held"
for i in 2 3 4 5 6 7 8; do
  qemu-io -f raw "$(uri src/v)" -c "write -P $i $((i))M 1M" >/dev/null || fail "write $i"
  r=$(jget j runs)
  wait_until 20 runs_above j "$r" || fail "cycle after write $i"
done
sleep 12  # past the source grid's span (16s): the oldest go
berth replicate list | tee "$T/list"
grep -qE '^j +src/v +dst/v +2s +(ok|running) ' "$T/list" || fail "list row"
berth replicate status j | tee "$T/status"
grep -qE '^state: +(ok|running)$' "$T/status" || fail "state"
grep -qE '^last success: +20[0-9-]+T[0-9:]+Z$' "$T/status" || fail "last success"
grep -qE '^lag: +[0-9]+s$' "$T/status" || fail "lag"
[ "$(jget j lag)" -le 10 ] || fail "lag $(jget j lag)s with a 2s schedule"
[ "$(jget j bytes_sent_total)" -gt 65536 ] || fail "bytes sent: $(jget j bytes_sent_total)"
[ "$(jget j snapshots_pruned)" -gt 0 ] || fail "nothing pruned"
[ "$(jget j failures)" = 0 ] || fail "failures: $(jget j last_error)"
berth replicate destroy j | grep -q "replication j destroyed" || fail "destroy"
[ "$(api_status GET /replications/j)" = 404 ] || fail "destroyed job still listed"

echo "== one more cycle, then a still picture"
# the same job with a long period: its first cycle runs now, then nothing
# moves while the result is checked (the 2s job may have been cut short by
# destroy: this cycle also cleans up after it)
qemu-io -f raw "$(uri src/v)" -c 'write -P 9 9M 1M' >/dev/null || fail "write 9"
berth replicate create j --source src/v --target dst/v --every 1h --keep 2s:3,10s:1 \
  --keep-target 2s:2,30s:1 >/dev/null || fail "re-create"
wait_until 30 state_is j ok || fail "cycle: $(api GET /replications/j)"
snaps src v | tee "$T/src.snaps" | tr '\n' ' '; echo " (src)"
snaps dst v | tee "$T/dst.snaps" | tr '\n' ' '; echo " (dst)"
newest=$(jget j newest_target_snapshot)
[ "$(grep '^repl_' "$T/src.snaps" | tail -1)" = "$newest" ] || fail "source newest is not $newest"
[ "$(grep '^repl_' "$T/dst.snaps" | tail -1)" = "$newest" ] || fail "target newest is not $newest"
grep -qx manual "$T/src.snaps" || fail "foreign snapshot pruned on the source"
grep -qx manual "$T/dst.snaps" || fail "foreign snapshot not sent along (-I) or pruned on the target"
grep -qx "$held" "$T/src.snaps" || fail "held snapshot $held pruned"

# Retention: each side is exactly what its grid keeps (zrepl semantics, an
# independent implementation): the newest per bucket, buckets laid back from
# the newest job snapshot, plus the protected (held, newest shared).
cat >"$T/grid.py" <<'EOF'
import calendar, re, sys, time
grid, protect = sys.argv[1], set(sys.argv[2].split(","))
names = [l.strip() for l in open(sys.argv[3]) if l.strip()]
secs = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
steps = []
for item in grid.split(","):
    p, c = item.split(":")
    steps += [secs[p[-1]] * int(p[:-1])] * int(c)
t = {n: calendar.timegm(time.strptime(n[5:], "%Y%m%dT%H%M%SZ")) for n in names
     if re.fullmatch(r"repl_\d{8}T\d{6}Z", n)}
anchor = max(t.values())
def bucket(age):
    lo = 0
    for i, w in enumerate(steps):
        if age < lo + w:
            return i
        lo += w
    return None
best = {}
for n, v in t.items():
    b = bucket(anchor - v)
    if b is not None and (b not in best or v > t[best[b]]):
        best[b] = n
keep = set(best.values()) | (set(t) & protect)
extra = sorted(set(t) - keep)
if extra:
    sys.exit("should have been pruned: %s" % " ".join(extra))
print("  %d job snapshots kept in %d buckets (+%d protected)" % (len(t), len(best), len(keep) - len(best)))
EOF
nbdpy "$T/grid.py" 2s:3,10s:1 "$held,$newest" "$T/src.snaps" || fail "source retention"
nbdpy "$T/grid.py" 2s:2,30s:1 "$newest" "$T/dst.snaps" || fail "target retention"
[ "$(grep -c '^repl_' "$T/src.snaps")" -le 5 ] || fail "source keeps too many"
[ "$(grep -c '^repl_' "$T/dst.snaps")" -le 4 ] || fail "target keeps too many"

echo "== contents: target snapshots byte-identical to the source's"
cat >"$T/hash.py" <<'EOF'
import hashlib, nbd, sys
sock = sys.argv[1]
for name in sys.argv[2:]:
    h = nbd.NBD()
    h.connect_uri("nbd+unix:///%s?socket=%s" % (name, sock))
    size, off, d = h.get_size(), 0, hashlib.sha256()
    while off < size:
        n = min(4 << 20, size - off)
        d.update(h.pread(n, off))
        off += n
    h.shutdown()
    print(name.split("/", 1)[1], d.hexdigest())
EOF
both=$(comm -12 <(sort "$T/src.snaps") <(sort "$T/dst.snaps"))
[ "$(echo "$both" | wc -w)" -ge 2 ] || fail "fewer than 2 snapshots on both sides: $both"
args=()
for s in $both; do args+=("src/v@$s" "dst/v@$s"); done
nbdpy "$T/hash.py" "$NBD_SOCK" "${args[@]}" dst/v src/v | tee "$T/hashes" >/dev/null || fail "reading snapshots over NBD"
for s in $both; do
  a=$(awk -v n="v@$s" '$1 == n {print $2}' "$T/hashes" | sort -u | wc -l)
  [ "$a" = 1 ] || fail "v@$s differs between source and target"
done
echo "  $(echo "$both" | wc -w) snapshots identical"
[ "$(awk -v n="v@$newest" '$1 == n {print $2; exit}' "$T/hashes")" = \
  "$(awk '$1 == "v" {print $2; exit}' "$T/hashes")" ] || fail "newest snapshot is not the source's data"
first=$(echo "$both" | head -1)
[ "$(awk -v n="v@$first" '$1 == n {print $2; exit}' "$T/hashes")" != \
  "$(awk -v n="v@$newest" '$1 == n {print $2; exit}' "$T/hashes")" ] || fail "all snapshots hold the same data"

echo "== a failing target command is reported and recovers"
berth vol create -V 16M src/w >/dev/null || fail "vol create w"
berth replicate create k --source src/w --every 1s --keep 1s:3 --prefix k_ --target-cmd \
  "test -e $T/ok && cat > $T/stream.\$\$ || { echo 'target unreachable' >&2; exit 3; }" >/dev/null ||
  fail "create k"
failing() { [ "$(jget k failures)" -ge 2 ]; }
wait_until 20 failing || fail "target command failures not counted: $(api GET /replications/k)"
berth replicate status k | tee "$T/kstatus"
grep -qE '^state: +(failing|running)$' "$T/kstatus" || fail "state not failing"
grep -q "target command exited with status 3: target unreachable" "$T/kstatus" || fail "error not reported"
out=$(berth replicate run k 2>&1) && fail "run of a failing job succeeded: $out"
[[ "$out" == *"target unreachable"* ]] || fail "run error: $out"
echo "  expected failure: $out"
berthd_alive
touch "$T/ok"
wait_until 30 state_is k ok || fail "did not recover: $(api GET /replications/k)"
[ "$(jget k last_success)" -ge "$(jget k last_error_time)" ] || fail "last success before the error"
ls "$T"/stream.* >/dev/null 2>&1 || fail "the target command got no stream"
berth replicate run k | grep -q "replication k: cycle done" || fail "run k"

echo "== a remote target (--remote: berth on the other host; here the same berthd through the CLI)"
berth vol create -V 16M src/x >/dev/null || fail "vol create x"
nbdpy -c 'import nbd,sys,os; h=nbd.NBD(); h.connect_uri(sys.argv[1]); h.pwrite(os.urandom(1 << 20), 0); h.flush()' "$(uri src/x)" ||
  fail "write src/x"
berth replicate create r --source src/x --target dst/rx --remote "$BERTH_BIN --socket $BERTH_SOCKET" \
  --every 1s --keep 1s:2 --keep-target 1s:3 --prefix r_ >/dev/null || fail "create r"
cycles() { [ "$(jget r runs)" -ge 5 ] && [ "$(jget r state)" = ok ]; }
wait_until 60 cycles || fail "remote job did not run: $(api GET /replications/r)"
berth replicate destroy r >/dev/null || fail "destroy r"
sleep 1
rs=$(snaps dst rx)
n=$(echo "$rs" | wc -w)
echo "  remote target has $n snapshots: $(echo $rs)"
[ "$n" -ge 1 ] && [ "$n" -le 4 ] || fail "remote target not pruned to its grid (1s:3 + the base): $n"
last=$(echo "$rs" | tail -1)
nbdpy "$T/hash.py" "$NBD_SOCK" "src/x@$last" "dst/rx@$last" | awk '{print $2}' | sort -u | wc -l |
  grep -qx 1 || fail "dst/rx@$last differs from src/x@$last"
berth pool check dst >/dev/null || fail "pool check dst after remote replication"

echo "== restart: jobs and their history survive"
runs=$(jget k runs)
stop_berthd
start_berthd
berth replicate list -H | awk '{print $1}' | tr '\n' ' ' | grep -qx "j k " || fail "jobs after restart: $(berth replicate list)"
[ "$(jget k runs)" -ge "$runs" ] || fail "history lost"
[ "$(jget j newest_target_snapshot)" = "$newest" ] || fail "state of j lost"
berth replicate destroy k >/dev/null && berth replicate destroy j >/dev/null || fail "destroy"
berth replicate list | grep -qx "no replications" || fail "list after destroy"

echo "== a transfer cut short by a stop resumes at the next start"
berth vol create -o compression=off -V 256M src/big >/dev/null || fail "vol create big"
nbdpy - "$(uri src/big)" <<'EOF' || fail "writing src/big"
import nbd, random, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
r = random.Random(7)
for off in range(0, 256 << 20, 4 << 20):
    h.pwrite(r.randbytes(4 << 20), off)
h.flush()
h.shutdown()
EOF
berth replicate create big --source src/big --target dst/big --every 1h --keep 1h:2 >/dev/null ||
  fail "create big"
sleep 0.3 # its first cycle is sending 256M now
stop_berthd
start_berthd
wait_until 60 state_is big ok || fail "big: $(api GET /replications/big)"
if grep -q "replication big: cycle stopped: .*partial receive is kept" "$T/berthd.log"; then
  grep -q "replication big: resuming the receive of" "$T/berthd.log" || fail "the kept receive was not resumed"
  echo "  resumed after the restart"
else
  echo "  (the first cycle ended before the stop: nothing to resume)"
fi
s=$(jget big newest_target_snapshot)
nbdpy "$T/hash.py" "$NBD_SOCK" "src/big@$s" "dst/big@$s" | awk '{print $2}' | sort -u | wc -l |
  grep -qx 1 || fail "big@$s differs after the resume"
berthd_alive
stop_berthd
echo "PASS"
