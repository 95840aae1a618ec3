#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# raidz through berthd and NBD: a raidz1 of 3 files and a raidz2 of 4.
# Known data is written through NBD; then parity-many device files get
# garbage over 20 MiB of their data area (labels are at
# both ends); every byte still reads back right through NBD, the damaged
# devices' checksum counters rise, a scrub repairs everything, a second scrub
# repairs nothing, and `berth pool check` passes.  Then one device file more
# than parity is damaged on raidz1 over a small range: reads of the affected
# blocks fail (EIO), never return wrong data, and the scrub names them.
. "$(dirname "$0")/functions.sh"
requires_nbdpy
requires nbdcopy

# sha POOL/VOL: sha256 of the volume read through NBD
sha() { nbdcopy "$(uri "$1")" - | sha256sum | cut -d' ' -f1; }

# garble FILE FROM LEN SEED: overwrite LEN bytes at FROM with random bytes
garble() {
  nbdpy - "$@" <<'EOF'
import random, sys
path, off, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with open(path, "r+b") as f:
    f.seek(off); f.write(random.Random(seed).randbytes(n))
EOF
}

# scrub_wait POOL: start a scrub and wait until it is done; prints its JSON scan
scrub_wait() {
  berth pool scrub "$1" >/dev/null || fail "scrub $1"
  local i st
  for i in $(seq 600); do
    st=$(berth --json pool status "$1" | nbdpy -c 'import json,sys; d=json.load(sys.stdin); d=d.get("pool", d); print(d["scan"]["state"])')
    [ "$st" != scanning ] && break
    sleep 0.1
  done
  berth --json pool status "$1" | nbdpy -c 'import json,sys; d=json.load(sys.stdin); d=d.get("pool", d); s=d["scan"]; print(s["state"], s["repaired"], s["errors"])'
}

cksum_errors() {
  berth --json pool status "$1" | nbdpy -c 'import json,sys; d=json.load(sys.stdin); d=d.get("pool", d); print(sum(v["checksum_errors"] for v in d["vdevs"]))'
}

start_berthd
head -c 48M /dev/urandom >"$T/data"
want=$(sha256sum <"$T/data" | cut -d' ' -f1)
for spec in "raidz1 3" "raidz2 4"; do
  set -- $spec
  layout=$1 n=$2
  pool=p$layout
  devs=()
  for i in $(seq 1 "$n"); do devs+=("$T/$pool.$i.img"); done
  berth pool create -o size=256M "$pool" "$layout" "${devs[@]}" >/dev/null || fail "create $pool"
  berth pool status "$pool" | grep -q "$layout-0" || fail "status does not show the $layout tree"
  berth vol create -V 48M "$pool/v" >/dev/null || fail "vol create"
  nbdcopy "$T/data" "$(uri "$pool/v")" || fail "write"
  berth pool sync "$pool" >/dev/null
  parity=${layout#raidz}
  # damage parity-many devices over 20 MiB of their data area (labels are at the ends)
  for i in $(seq 1 "$parity"); do
    garble "${devs[$i]}" $((4 << 20)) $((20 << 20)) "$i"
  done
  # export/import: nothing of the volume is left in the block cache
  berth pool export "$pool" >/dev/null || fail "export $pool"
  berth pool import -d "$T" "$pool" >/dev/null || fail "import $pool"
  [ "$(sha "$pool/v")" = "$want" ] || fail "$pool: data read back wrong with $parity damaged devices"
  e=$(cksum_errors "$pool")
  [ "$e" -gt 0 ] || fail "$pool: no checksum errors counted"
  read -r st rep errs <<<"$(scrub_wait "$pool")"
  echo "$pool: $e checksum errors seen by reads; scrub: $st, repaired $rep bytes, $errs unrepairable"
  [ "$errs" = 0 ] || fail "$pool: scrub left errors"
  read -r st rep errs <<<"$(scrub_wait "$pool")"
  [ "$rep" = 0 ] && [ "$errs" = 0 ] || fail "$pool: second scrub repaired $rep, errors $errs"
  berth pool check "$pool" >/dev/null || fail "$pool: pool check"
  ratio=$(pool_field "$pool" compressratio)
  echo "$pool: compressratio $ratio (random data: parity must not count as stored data)"
  # (raidz padding of small blocks still shows: 16K in a raidz2 of 4 takes 9 sectors for 4)
  fcmp "$ratio" ">=" 0.85 || fail "$pool: compressratio $ratio counts parity"
  [ "$(sha "$pool/v")" = "$want" ] || fail "$pool: data wrong after scrub"
done

# more damage than parity on raidz1: a small range on all three devices
pool=praidz1
for i in 0 1 2; do garble "$T/$pool.$((i + 1)).img" $((10 << 20)) $((256 << 10)) $((i + 10)); done
berth pool export "$pool" >/dev/null || fail "export"
berth pool import -d "$T" "$pool" >/dev/null || fail "import"
nbdpy - "$(uri $pool/v)" "$T/data" <<'EOF' || fail "reads past parity: wrong data or no EIO"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
ref = open(sys.argv[2], "rb").read()
bad = good = 0
for off in range(0, len(ref), 16384):
    try:
        b = h.pread(16384, off)
    except nbd.Error:
        bad += 1
        continue
    if b != ref[off:off + 16384]:
        print("WRONG DATA at", off); sys.exit(1)
    good += 1
print("blocks readable %d, EIO %d" % (good, bad))
sys.exit(0 if bad > 0 and good > 0 else 1)
EOF
read -r st rep errs <<<"$(scrub_wait "$pool")"
echo "$pool after damage past parity: scrub $st, $errs unrepairable"
[ "$errs" -gt 0 ] || fail "scrub did not report the unrepairable blocks"
berth pool status "$pool" | grep -q "v data at offset" || fail "status does not name the damaged blocks"
stop_berthd
echo PASS
