#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Corruption: bytes flipped in the vdev file while berthd is stopped.
#  1. targeted: flips inside known data blocks (found by their content in an
#     uncompressed volume): exactly those blocks read as EIO, everything else
#     reads right, the errors are counted in `pool status`, a full rewrite of a
#     bad block heals it, berthd keeps serving;
#  2. random: flips anywhere in the allocated part of the file (labels, maps,
#     metadata, data), several rounds: the pool imports or fails with a clear
#     error, every read returns the right data or EIO, berthd never dies;
#  3. garbage, zeroed and truncated pool files: import gives a clear error;
#  4. hostile label and uberblock fields: a clear refusal or sane data;
#  5. one damaged copy of the newest state's MOS root imports plainly from
#     its ditto copy (FORMAT.md 5), counted and healed; both copies damaged
#     (or a hostile MOS pointer) is refused (no silent step back to an
#     older txg, which would drop acknowledged writes); --rewind takes it
#     back.
# BERTH_CORRUPT_ROUNDS (default 4, 20 with BERTH_LONG=1) sets the rounds of 2.
. "$(dirname "$0")/functions.sh"
requires cmp nbdcopy
requires_nbdpy

M=$((1 << 20))
ROUNDS=${BERTH_CORRUPT_ROUNDS:-$([ "${BERTH_LONG:-0}" = 1 ] && echo 20 || echo 4)}

# readcheck URI EXPECTED_FILE BLOCKSIZE [EIO_LIST_OUT]: read the volume block by
# block; each block must equal the expected data or fail with EIO.  Prints
# "ok N eio M" and writes the indices of EIO blocks to EIO_LIST_OUT.
cat >"$T/readcheck.py" <<'EOF'
import errno, nbd, sys
uri, exp, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = sys.argv[4] if len(sys.argv) > 4 else None
data = open(exp, "rb").read()
h = nbd.NBD()
h.connect_uri(uri)
ok, eio, wrong = 0, [], []
for i in range(len(data) // bs):
    try:
        got = h.pread(bs, i * bs)
    except nbd.Error as e:
        if e.errnum != errno.EIO:
            wrong.append("block %d: error %s (want EIO)" % (i, e))
        eio.append(i)
        continue
    if got != data[i * bs:(i + 1) * bs]:
        wrong.append("block %d: WRONG DATA returned" % i)
    else:
        ok += 1
print("ok %d eio %d wrong %d" % (ok, len(eio), len(wrong)))
for w in wrong[:20]:
    print("  " + w)
if out:
    open(out, "w").write("".join("%d\n" % i for i in eio))
sys.exit(1 if wrong else 0)
EOF

# unique 4K units: "BCORRUPT" + index + random bytes
cat >"$T/mkunits.py" <<'EOF'
import random, struct, sys
path, n = sys.argv[1], int(sys.argv[2])
r = random.Random(4242)
with open(path, "wb") as f:
    for i in range(n):
        f.write(struct.pack("<8sQ", b"BCORRUPT", i) + r.randbytes(4096 - 16))
EOF

# flip_units IMG COUNT OUT: flip bytes in COUNT random 4K units of the
# uncompressed volume found in IMG; write the unit indices hit to OUT
cat >"$T/flip_units.py" <<'EOF'
import os, random, struct, sys
img, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fd = os.open(img, os.O_RDWR)
size = os.fstat(fd).st_size
found = {}
dup = set()   # units found twice (a stale copy): their flips prove nothing
off = 0
while off < size:
    try:
        off = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, off, os.SEEK_HOLE)
    p = off & ~4095
    while p < end:
        buf = os.pread(fd, 1 << 20, p)
        for k in range(0, len(buf) - 15, 4096):
            m, idx = struct.unpack_from("<8sQ", buf, k)
            if m == b"BCORRUPT":
                dup.add(idx) if idx in found else None
                found[idx] = p + k
        p += len(buf) if buf else 1 << 20
    off = end
r = random.Random()
if len(found) < count:
    sys.exit("only %d data units found in %s" % (len(found), img))
hit = r.sample(sorted(set(found) - dup), count)
for idx in hit:
    for _ in range(r.randint(1, 3)):
        pos = found[idx] + r.randrange(4096)
        b = os.pread(fd, 1, pos)[0]
        os.pwrite(fd, bytes([b ^ r.randint(1, 255)]), pos)
os.fsync(fd)
open(out, "w").write("".join("%d\n" % i for i in sorted(hit)))
print("found %d units on disk, flipped bytes in %d" % (len(found), count))
EOF

# flip_random IMG COUNT SEED: flip COUNT random bytes in allocated extents
cat >"$T/flip_random.py" <<'EOF'
import os, random, sys
img, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(img, os.O_RDWR)
size = os.fstat(fd).st_size
ext, off = [], 0
while off < size:
    try:
        off = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, off, os.SEEK_HOLE)
    ext.append((off, end)); off = end
total = sum(e - s for s, e in ext)
r = random.Random(seed)
for _ in range(count):
    k = r.randrange(total)
    for s, e in ext:
        if k < e - s:
            pos = s + k; break
        k -= e - s
    b = os.pread(fd, 1, pos)[0]
    os.pwrite(fd, bytes([b ^ r.randint(1, 255)]), pos)
os.fsync(fd)
print("flipped %d bytes over %d allocated bytes (seed %d)" % (count, total, seed))
EOF

start_berthd

echo "== 1. targeted flips in data blocks"
mkpool tank 1G
berth vol create -V 16M -o compression=off tank/a >/dev/null || fail "vol create tank/a"
berth vol create -V 16M tank/b >/dev/null || fail "vol create tank/b"
nbdpy "$T/mkunits.py" "$T/a.data" 4096
mkdata "$T/b.data" 16 mixed
nbdcopy --flush "$T/a.data" "$(uri tank/a)" || fail "fill tank/a"
nbdcopy --flush "$T/b.data" "$(uri tank/b)" || fail "fill tank/b"
pool_sync tank 2
stop_berthd
nbdpy "$T/flip_units.py" "$T/tank.img" 24 "$T/hit" || fail "could not find the data blocks in the pool file"
nbad=$(awk '{print int($1 / 4)}' "$T/hit" | sort -u | wc -l)     # 16K volume blocks hit
start_berthd
[ "$(pool_field tank state)" = ONLINE ] || fail "tank not ONLINE after data-only corruption"
nbdpy "$T/readcheck.py" "$(uri tank/a)" "$T/a.data" 16384 "$T/eio" || fail "tank/a returned wrong data"
awk '{print int($1 / 4)}' "$T/hit" | sort -un >"$T/want-eio"
sort -n "$T/eio" >"$T/got-eio"
diff "$T/want-eio" "$T/got-eio" || fail "EIO blocks (right) differ from the corrupted blocks (left)"
nbdpy "$T/readcheck.py" "$(uri tank/a)" "$T/a.data" 16384 "$T/eio2" || fail "tank/a returned wrong data on a second read"
cmp -s "$T/eio" "$T/eio2" || fail "a second read gave different EIO blocks"
nbdpy "$T/readcheck.py" "$(uri tank/b)" "$T/b.data" 16384 || fail "tank/b (not corrupted) read wrong"
ce=$(pool_field tank checksum_errors)
berth pool status tank
echo "corrupted 16K blocks: $nbad, checksum errors counted: $ce"
[ "$ce" -ge "$nbad" ] || fail "pool status counts $ce checksum errors for $nbad corrupted blocks"
berth pool status tank | grep -E "$T/tank.img" | grep -qw "$ce" || echo "  (note: the vdev line does not show $ce; see above)"
echo "== a full rewrite of a bad block heals it"
first=$(head -1 "$T/want-eio")
nbdpy - "$(uri tank/a)" "$T/a.data" "$first" <<'EOF' || fail "rewriting a corrupted block failed"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
b = int(sys.argv[3]); d = open(sys.argv[2], "rb").read()[b * 16384:(b + 1) * 16384]
h.pwrite(d, b * 16384); h.flush()
assert h.pread(16384, b * 16384) == d
print("block %d rewritten and read back" % b)
EOF
berthd_alive

echo "== 2. random flips anywhere in the allocated file ($ROUNDS rounds)"
mkdir -p "$T/qdir"
berth pool create -o size=512M q "$T/qdir/q.img" >/dev/null || fail "pool create q"
berth vol create -V 32M q/v >/dev/null || fail "vol create q/v"
mkdata "$T/q.data" 32 mixed
nbdcopy --flush "$T/q.data" "$(uri q/v)" || fail "fill q/v"
berth pool export q || fail "export q"
cp --sparse=always "$T/qdir/q.img" "$T/q.pristine"
for ((r = 1; r <= ROUNDS; r++)); do
  cp --sparse=always "$T/q.pristine" "$T/qdir/q.img"
  nbdpy "$T/flip_random.py" "$T/qdir/q.img" $((r * 40)) "$r$RANDOM"
  if out=$(berth pool import -d "$T/qdir" q 2>&1); then
    echo "  round $r: imported; state $(pool_field q state)"
    berth pool status q >/dev/null || fail "pool status q failed after import of a corrupted pool"
    nbdpy "$T/readcheck.py" "$(uri q/v)" "$T/q.data" 16384 || fail "round $r: wrong data from a corrupted pool"
    berth --json pool check q >/dev/null 2>&1
    berthd_alive
    berth pool export -f q >/dev/null 2>&1 || berth pool export q || fail "round $r: export q failed"
  else
    echo "  round $r: import refused: $out"
    [ -n "$out" ] || fail "round $r: import failed without a message"
    berthd_alive
  fi
done

echo "== 3. garbage, zeroed and truncated pool files"
mkdir -p "$T/g"
head -c $((64 * M)) /dev/urandom >"$T/g/garbage.img"
truncate -s 256M "$T/g/zero.img"
cp --sparse=always "$T/q.pristine" "$T/g/tiny.img"; truncate -s 100K "$T/g/tiny.img"
out=$(berth pool import -d "$T/g" 2>&1) || true
echo "$out"
echo "$out" | grep -qw q && fail "a pool was found in garbage/zero/tiny files"
berthd_alive
for f in garbage zero tiny; do
  expect_fail berth pool import -d "$T/g" "$f"
done
# a truncated real pool: labels 2/3 and half the data missing
mkdir -p "$T/t"
cp --sparse=always "$T/q.pristine" "$T/t/q.img"
truncate -s 256M "$T/t/q.img"
if out=$(berth pool import -d "$T/t" q 2>&1); then
  echo "  truncated pool imported: $(pool_field q state); reads must be right or EIO"
  nbdpy "$T/readcheck.py" "$(uri q/v)" "$T/q.data" 16384 || fail "wrong data from a truncated pool"
  berth pool export -f q >/dev/null 2>&1 || berth pool export q
else
  echo "  truncated pool refused: $out"
fi
# importing those files by path (API: POST /pools/import {"vdevs": [...]}) names the file and the problem
cp "$T/g/garbage.img" "$T/t/garbage.img"; cp "$T/g/tiny.img" "$T/t/tiny.img"
for f in q garbage tiny; do
  st=$(api_status POST /pools/import "{\"vdevs\": [\"$T/t/$f.img\"]}")
  out=$(curl -s -X POST --unix-socket "$BERTH_SOCKET" --data-binary "{\"vdevs\": [\"$T/t/$f.img\"]}" http://b/api/v1/pools/import)
  echo "  import $f.img by path -> $st $out"
  case "$st" in 4??|5??) ;; *) fail "import of $f.img by path: HTTP $st" ;; esac
  echo "$out" | grep -q "$T/t/$f.img" || fail "the error for $f.img does not name the file: $out"
  berth pool list | grep -qw q && { berth pool export -f q >/dev/null 2>&1; fail "a damaged $f.img was imported"; }
done
rm -f "$T/t/garbage.img" "$T/t/tiny.img"
# a pool whose first two labels are wiped (labels 2/3 remain)
cp --sparse=always "$T/q.pristine" "$T/t/q.img"
dd if=/dev/zero of="$T/t/q.img" bs=256K count=2 conv=notrunc status=none
if berth pool import -d "$T/t" q; then
  nbdpy "$T/readcheck.py" "$(uri q/v)" "$T/q.data" 16384 || fail "wrong data after import from labels 2/3"
  nbdcopy "$(uri q/v)" - | cmp - "$T/q.data" || fail "pool with labels 0/1 wiped: data differs"
  berth pool export q || fail "export q"
else
  fail "a pool with labels 0 and 1 wiped should import from labels 2 and 3"
fi
# every label wiped: not a pool any more
sz=$(stat -c %s "$T/t/q.img")
for o in 0 1 $(( sz / 262144 - 2 )) $(( sz / 262144 - 1 )); do
  dd if=/dev/zero of="$T/t/q.img" bs=256K seek=$o count=1 conv=notrunc status=none
done
expect_fail berth pool import -d "$T/t" q

echo "== 4. hostile labels and uberblocks (fields changed, checksums recomputed)"
# hostile.py IMG WHAT: change one field of every label header (or of the newest
# uberblock in every label) and recompute its SHA-256, as an attacker would
cat >"$T/hostile.py" <<'EOF'
import hashlib, os, struct, sys
img, what = sys.argv[1], sys.argv[2]
fd = os.open(img, os.O_RDWR)
size = os.fstat(fd).st_size // (256 << 10) * (256 << 10)
labels = [0, 256 << 10, size - (512 << 10), size - (256 << 10)]
HDR = {  # field: (offset, struct format, value)
    "version": (8, "<I", 99), "hdrlen": (12, "<I", 0xffffffff),
    "incompat": (16, "<Q", 1 << 63), "ro_compat": (24, "<Q", 1 << 62), "compat": (32, "<Q", 1 << 61),
    "ashift": (128, "<B", 40), "state": (129, "<B", 77), "vdevtype": (130, "<B", 99),
    "devsize": (136, "<Q", 1 << 62), "data_start": (144, "<Q", 1 << 62), "data_end": (152, "<Q", 1 << 62),
    "bitmap_off": (160, "<Q", (1 << 63) - 4096), "bitmap_chunks": (168, "<Q", 1 << 40),
    "slotsize": (176, "<I", 0), "bits_per_chunk": (180, "<I", 0xffffffff),
    "nchildren": (192, "<Q", 1 << 32), "leaf_index": (200, "<Q", 1 << 40),
    "name": (64, "64s", b"A" * 64),
}
UB = {  # uberblock field: (offset, format, value); the block pointer of the MOS root is at 56
    "ub_mos_levels": (184, "<I", 200), "ub_mos_bsize": (188, "<I", 0x80000000),
    "ub_mos_size": (192, "<Q", 1 << 60), "ub_bp_offset": (56, "<Q", 1 << 50),
    "ub_bp_asize": (68, "<I", 0xfffff000), "ub_bp_lsize": (56 + 56, "<I", 0xffffffff),
    "ub_bp_comp": (56 + 64, "<B", 9), "ub_bp_level": (56 + 67, "<B", 200),
    "ub_features": (48, "<Q", 1 << 63), "ub_txg": (16, "<Q", (1 << 64) - 1),
}
if what in HDR:
    off, fmt, val = HDR[what]
    for base in labels:
        h = bytearray(os.pread(fd, 16384, base))
        struct.pack_into(fmt, h, off, val)
        h[16352:16384] = hashlib.sha256(bytes(h[:16352])).digest()
        os.pwrite(fd, bytes(h), base)
else:
    off, fmt, val = UB[what]
    ashift = os.pread(fd, 1, 128)[0]
    slot = max(4096, 1 << ashift)
    for base in labels:
        best = None
        for s in range((240 << 10) // slot):
            u = os.pread(fd, 1024, base + (16 << 10) + s * slot)
            if u[:8] == struct.pack("<Q", 0x0042555448545245):
                txg = struct.unpack_from("<Q", u, 16)[0]
                if best is None or txg > best[0]:
                    best = (txg, s, bytearray(u))
        txg, s, u = best
        struct.pack_into(fmt, u, off, val)
        u[992:1024] = hashlib.sha256(bytes(u[:992])).digest()
        os.pwrite(fd, bytes(u), base + (16 << 10) + s * slot)
os.fsync(fd)
EOF
cat >"$T/readall.py" <<'EOF'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
n, eio = h.get_size(), 0
for off in range(0, n, 1 << 20):
    try:
        h.pread(min(1 << 20, n - off), off)
    except nbd.Error:
        eio += 1
print("read %d MiB, %d MiB failed" % (n >> 20, eio))
EOF
mkdir -p "$T/h"
problems=()
for what in version hdrlen incompat ro_compat compat ashift state vdevtype devsize data_start data_end \
            bitmap_off bitmap_chunks slotsize bits_per_chunk nchildren leaf_index name \
            ub_mos_levels ub_mos_bsize ub_mos_size ub_bp_offset ub_bp_asize ub_bp_lsize ub_bp_comp \
            ub_bp_level ub_features ub_txg; do
  cp --sparse=always "$T/q.pristine" "$T/h/q.img"
  nbdpy "$T/hostile.py" "$T/h/q.img" "$what" || fail "hostile.py $what"
  if out=$(timeout 60 "$BERTH_BIN" pool import -d "$T/h" q 2>&1); then
    # accepted (e.g. an older uberblock or an ignorable feature bit): it must serve sane data
    echo "  $what: imported ($(pool_field q state))"
    if [ "$what" = ro_compat ]; then   # FORMAT.md: unknown ro_compat features import read-only
      qemu-io -f raw "$(uri q/v)" -c 'write -P 1 0 4k' >/dev/null 2>&1 &&
        problems+=("ro_compat: a pool with an unknown read-only-compatible feature bit was imported writable (FORMAT.md: read-only)")
    fi
    timeout 120 "$NBDPY" "$T/readall.py" "$(uri q/v)" | sed 's/^/    /' || problems+=("$what: reading the imported pool failed")
    timeout 60 "$BERTH_BIN" pool export -f q >/dev/null 2>&1 || timeout 60 "$BERTH_BIN" pool export q >/dev/null ||
      fail "$what: export failed"
  else
    rc=$?
    [ $rc -ne 124 ] || fail "$what: import hung (60 s)"
    echo "  $what: refused: $out"
    [ -n "$out" ] || problems+=("$what: refused without a message")
  fi
  berthd_alive
done
if [ ${#problems[@]} -gt 0 ]; then
  printf '  PROBLEM: %s\n' "${problems[@]}"
  fail "${#problems[@]} problem(s) with hostile labels/uberblocks (above)"
fi

# mosroot.py IMG dva0|dva1|both|same: damage copies of the newest uberblock's
# MOS root block (bytes flipped in the data area, as bit rot would), or
# print "same" if its two copies hold the same bytes ("differ" otherwise)
cat >"$T/mosroot.py" <<'EOF'
import os, struct, sys
img, what = sys.argv[1], sys.argv[2]
fd = os.open(img, os.O_RDWR)
ashift = os.pread(fd, 1, 128)[0]
data_start = struct.unpack("<Q", os.pread(fd, 8, 144))[0]
slot = max(4096, 1 << ashift)
best = None
for s in range((240 << 10) // slot):
    u = os.pread(fd, 1024, (16 << 10) + s * slot)
    if u[:8] == struct.pack("<Q", 0x0042555448545245):
        txg = struct.unpack_from("<Q", u, 16)[0]
        if best is None or txg > best[0]:
            best = (txg, u)
bp = best[1][56:56 + 128]
dvas = [struct.unpack_from("<QII", bp, 16 * i) for i in range(2)]  # offset, vdev, asize
if dvas[1][2] == 0 or dvas[1][2] != dvas[0][2]:
    sys.exit("the MOS root of txg %d has no ditto copy" % best[0])
if what == "same":
    a, b = (os.pread(fd, d[2], data_start + d[0]) for d in dvas)
    print("same" if a == b else "differ")
    sys.exit(0)
for i in {"dva0": [0], "dva1": [1], "both": [0, 1]}[what]:
    at = data_start + dvas[i][0] + 64
    os.pwrite(fd, bytes(x ^ 0xff for x in os.pread(fd, 32, at)), at)
os.fsync(fd)
EOF

echo "== 5. the newest state's MOS root: one damaged copy imports plainly (ditto copy)"
cp --sparse=always "$T/q.pristine" "$T/h/q.img"
nbdpy "$T/mosroot.py" "$T/h/q.img" dva0 || fail "mosroot.py dva0"
[ "$(nbdpy "$T/mosroot.py" "$T/h/q.img" same)" = differ ] || fail "mosroot.py did not damage DVA 0"
out=$(berth pool import -d "$T/h" q 2>&1) || fail "one damaged copy of the newest MOS root made the import fail: $out"
ce=$(pool_field q checksum_errors)
[ "$ce" -ge 1 ] || fail "the damaged MOS copy was not counted (checksum errors: $ce)"
echo "  imported plainly, checksum errors counted: $ce"
nbdpy "$T/readall.py" "$(uri q/v)" | sed 's/^/    /' || fail "reading the pool failed"
berth pool export q || fail "export q"
[ "$(nbdpy "$T/mosroot.py" "$T/h/q.img" same)" = same ] || fail "the damaged MOS copy was not healed"
echo "  the bad copy was rewritten from the good one"
out=$(berth pool import -d "$T/h" q 2>&1) || fail "re-import after the heal: $out"
ce=$(pool_field q checksum_errors)
[ "$ce" -eq 0 ] || fail "checksum errors after the heal: $ce"
berth pool export q || fail "export q"

echo "== 5b. a damaged newest state (both copies): refused, unless --rewind takes an older txg"
# (a byte flip in the newest txg's pool directory did this in round 2 above:
# the import went back to an empty older txg without a word)
mkdir -p "$T/h2"
cp --sparse=always "$T/q.pristine" "$T/h2/q.img"
nbdpy "$T/hostile.py" "$T/h2/q.img" ub_bp_offset || fail "hostile.py ub_bp_offset"
out=$(berth pool import -d "$T/h2" q 2>&1) && fail "a pool whose newest uberblock holds a hostile MOS pointer was imported without --rewind: $out"
echo "$out" | grep -q -- "--rewind" || fail "the refusal of a hostile MOS pointer does not say --rewind: $out"
rm -rf "$T/h2"
cp --sparse=always "$T/q.pristine" "$T/h/q.img"
nbdpy "$T/mosroot.py" "$T/h/q.img" both || fail "mosroot.py both"
out=$(berth pool import -d "$T/h" q 2>&1) && fail "a pool whose newest MOS root is damaged in both copies was imported without --rewind: $out"
echo "  refused: $out"
echo "$out" | grep -q -- "--rewind" || fail "the refusal does not say how to go back (--rewind): $out"
berth pool list | grep -qw q && fail "pool q listed after a refused import"
st=$(api_status POST /pools/import "{\"name\": \"q\", \"dir\": \"$T/h\", \"rewind\": 1}")
[ "$st" = 400 ] || fail "\"rewind\": 1 (not a boolean) gave HTTP $st, want 400"
expect_fail berth pool import --rewind
out=$(berth pool import -d "$T/h" --rewind q 2>&1) || fail "import --rewind failed: $out"
echo "  $out"
echo "$out" | grep -q "rewound from txg" || fail "import --rewind did not say that it went back: $out"
grep -q "pool 'q' rewound from txg" "$T/berthd.log" || fail "berthd did not log the rewind"
nbdpy "$T/readall.py" "$(uri q/v)" | sed 's/^/    /' || fail "reading the rewound pool failed"
berth pool export q || fail "export of the rewound pool"
out=$(berth pool import -d "$T/h" q 2>&1) || fail "the rewound pool (its new txgs committed) did not import plainly: $out"
berth pool export q || fail "export q"
stop_berthd
echo PASS
