#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Real NBD clients against berth volumes: nbdinfo (sizes, block sizes, flags,
# base:allocation), qemu-img convert in and out (byte-exact), qemu-io pattern
# I/O, nbdcopy (multi-conn), libnbd in strict mode, many clients at once.
. "$(dirname "$0")/functions.sh"
requires nbdinfo nbdcopy qemu-img qemu-io nbdsh cmp
requires_nbdpy

start_berthd
mkpool tank 2G
MiB=$((1 << 20))
berth vol create -V 64M tank/v >/dev/null || fail "vol create tank/v"
U=$(uri tank/v)

echo "== nbdinfo: size, block sizes, flags"
nbdinfo --json "$U" >"$T/info.json" || fail "nbdinfo $U"
nbdpy - "$T/info.json" <<'EOF' || fail "nbdinfo reported unexpected export properties (above)"
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
bad = []
def want(k, v):
    if e.get(k) != v:
        bad.append("%s = %r, want %r" % (k, e.get(k), v))
want("export-size", 64 << 20)
want("is_read_only", False)
for k in ("can_trim", "can_zero", "can_flush", "can_fua", "can_multi_conn", "can_df", "can_fast_zero", "can_cache"):
    want(k, True)
if "base:allocation" not in e.get("contexts", []):
    bad.append("no base:allocation context: %r" % e.get("contexts"))
mn, pref, mx = e.get("block_size_minimum"), e.get("block_size_preferred"), e.get("block_size_maximum")
if None in (mn, pref, mx):
    bad.append("block sizes not advertised: min=%r pref=%r max=%r" % (mn, pref, mx))
else:
    p2 = lambda x: x > 0 and x & (x - 1) == 0
    if not (p2(mn) and p2(pref) and mn <= 4096 and mn <= pref <= mx and mx >= 1 << 20):
        bad.append("block sizes inconsistent: min=%d pref=%d max=%d" % (mn, pref, mx))
    if pref != 16384:
        bad.append("preferred block size %d, want the volblocksize 16384" % pref)
print("\n".join(bad) or "ok: %s" % {k: e.get(k) for k in ("export-size", "block_size_minimum", "block_size_preferred", "block_size_maximum")})
sys.exit(1 if bad else 0)
EOF

echo "== nbdinfo --list shows the export"
nbdinfo --list --json "nbd+unix://?socket=$NBD_SOCK" >"$T/list.json" || fail "nbdinfo --list"
grep -q '"export-name": "tank/v"' "$T/list.json" || { cat "$T/list.json"; fail "tank/v not in the export list"; }

echo "== a fresh volume is one hole"
map=$(nbdinfo --map "$U") || fail "nbdinfo --map"
echo "$map"
[ "$(echo "$map" | awk '{print $1, $2, $3}')" = "0 $((64 * MiB)) 3" ] || fail "fresh volume map is not a single hole: $map"

echo "== qemu-img convert in and out (64 MiB of random + zero + text)"
mkdata "$T/src.raw" 64 mixed
qemu-img convert -n -f raw -O raw "$T/src.raw" "$U" || fail "qemu-img convert into $U"
qemu-img convert -f raw -O raw "$U" "$T/out.raw" || fail "qemu-img convert out of $U"
cmp "$T/src.raw" "$T/out.raw" || fail "data read back differs from what qemu-img wrote"
qemu-img compare -f raw -F raw "$T/src.raw" "$U" || fail "qemu-img compare"
echo "== block status after the copy: zero MiBs are holes, data is data"
nbdinfo --map "$U" >"$T/map" || fail "nbdinfo --map"
nbdpy - "$T/map" "$T/src.raw" <<'EOF' || fail "block status does not match the data"
import sys
ext = [tuple(int(x) for x in l.split()[:3]) for l in open(sys.argv[1])]
data = open(sys.argv[2], "rb").read()
pos = 0
for off, ln, typ in ext:
    assert off == pos, "extents not contiguous at %d" % off
    pos += ln
    if typ & 2:  # zero
        assert data[off:off + ln] == bytes(ln), "extent %d+%d said zero but is not" % (off, ln)
assert pos == len(data), "extents cover %d of %d" % (pos, len(data))
holes = sum(ln for off, ln, typ in ext if typ & 1)
print("holes: %d MiB of %d" % (holes >> 20, len(data) >> 20))
assert holes >= 16 << 20, "expected at least 16 MiB of holes (the zero MiBs), got %d" % holes
EOF

echo "== qemu-io pattern writes and reads"
qemu-io -f raw "$U" -c 'write -P 0xab 0 1M' -c 'read -P 0xab 0 1M' \
  -c 'write -P 0xcd 1000 5000' -c 'read -P 0xcd 1000 5000' -c 'read -P 0xab 0 1000' -c 'read -P 0xab 6000 10000' \
  -c 'write -z 2M 1M' -c 'read -P 0 2M 1M' \
  -c 'write -f -P 0x5a 3M 64k' -c 'read -P 0x5a 3M 64k' \
  -c 'aio_write -P 0x11 4M 512k' -c 'aio_write -P 0x22 5M 512k' -c aio_flush \
  -c 'read -P 0x11 4M 512k' -c 'read -P 0x22 5M 512k' \
  -c 'discard 6M 1M' -c 'read -P 0 6M 1M' -c flush >"$T/qio.out" 2>&1
rc=$?
cat "$T/qio.out"
[ $rc -eq 0 ] && ! grep -qiE 'fail|error' "$T/qio.out" || fail "qemu-io pattern test failed (rc $rc)"

echo "== nbdcopy in and out, 4 connections (multi-conn)"
berth vol create -V 64M tank/w >/dev/null || fail "vol create tank/w"
W=$(uri tank/w)
nbdcopy --connections=4 --flush "$T/src.raw" "$W" || fail "nbdcopy into $W"
nbdcopy --connections=4 "$W" "$T/out2.raw" || fail "nbdcopy out of $W"
cmp "$T/src.raw" "$T/out2.raw" || fail "nbdcopy round trip differs"
echo "== nbdcopy volume to volume"
berth vol create -V 64M tank/x >/dev/null || fail "vol create tank/x"
nbdcopy "$W" "$(uri tank/x)" || fail "nbdcopy volume to volume"
nbdcopy "$(uri tank/x)" - | cmp - "$T/src.raw" || fail "volume-to-volume copy differs"

echo "== libnbd strict mode (nbdsh)"
PATH=/usr/bin:/bin nbdsh --base-allocation -u "$U" -c - <<'EOF' || fail "nbdsh strict-mode checks failed"
import errno
h.set_strict_mode(nbd.STRICT_COMMANDS | nbd.STRICT_FLAGS | nbd.STRICT_BOUNDS |
                  nbd.STRICT_ZERO_SIZE | nbd.STRICT_ALIGN)
assert h.can_df() and h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "no structured replies / base:allocation"
assert h.can_fua() and h.can_flush() and h.can_trim() and h.can_zero() and h.can_fast_zero() and h.can_cache()
size = h.get_size()
assert size == 64 << 20, size
mn = h.get_block_size(nbd.SIZE_MINIMUM); pref = h.get_block_size(nbd.SIZE_PREFERRED); mx = h.get_block_size(nbd.SIZE_MAXIMUM)
print("block sizes", mn, pref, mx)
buf = bytes(range(256)) * 256          # 64 KiB
h.trim(2 << 20, 8 << 20)                # 8..10 MiB: a hole
h.pwrite(buf, 8 << 20, nbd.CMD_FLAG_FUA)
assert h.pread(len(buf), 8 << 20) == buf
# structured read: chunks must tile the request, holes as holes
seen = []
def chunk(sub, off, status, err):
    seen.append((off, len(sub), status))
    return 0
out = h.pread_structured(2 << 20, 8 << 20, chunk)
assert out[:len(buf)] == buf and out[len(buf):1 << 20] == bytes((1 << 20) - len(buf)) and out[1 << 20:] == bytes(1 << 20)
cov = sorted((o, l) for o, l, s in seen)
pos = 8 << 20
for o, l in cov:
    assert o == pos, "chunks do not tile the read: %r" % cov
    pos += l
assert pos == 10 << 20
assert any(s == nbd.READ_HOLE for o, l, s in seen), "no hole chunk for a trimmed MiB: %r" % seen
# block status
ext = []
def bs(meta, off, entries, err):
    assert meta == nbd.CONTEXT_BASE_ALLOCATION
    ext.extend(zip(entries[0::2], entries[1::2]))
    return 0
h.block_status(2 << 20, 8 << 20, bs)
assert ext and ext[0][1] & 1 == 0, "written data reported as hole: %r" % ext[:4]
assert sum(l for l, f in ext) > 0
# write zeroes: with NO_HOLE, with FAST_ZERO (may fail with ENOTSUP only)
h.zero(1 << 20, 12 << 20, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(1 << 20, 12 << 20) == bytes(1 << 20)
try:
    h.zero(1 << 20, 13 << 20, nbd.CMD_FLAG_FAST_ZERO)
except nbd.Error as e:
    assert e.errnum == errno.ENOTSUP, "FAST_ZERO failed with %s" % e
h.cache(1 << 20, 8 << 20)
h.flush()
# strict mode refuses bad requests on the client side; the server must
# refuse them too when we lift strictness
h.set_strict_mode(0)
for what, fn in (("read past end", lambda: h.pread(4096, size)),
                 ("write past end", lambda: h.pwrite(bytes(4096), size - 2048)),
                 ("trim past end", lambda: h.trim(8192, size - 4096)),
                 ("zero-length read", lambda: h.pread(0, 0))):
    try:
        fn()
        if what != "zero-length read":
            raise AssertionError("server accepted: " + what)
    except nbd.Error as e:
        print("server refused %s: %s" % (what, e))
assert h.pread(len(buf), 8 << 20) == buf   # the connection still works
print("strict mode ok")
EOF

echo "== several concurrent clients on one volume (distinct regions) and on several volumes"
pids=()
for i in 0 1 2 3 4 5; do
  pat=$(printf '0x%02x' $((0x30 + i)))
  qemu-io -f raw "$(uri tank/w)" -c "write -P $pat $((i * 8))M 8M" -c "read -P $pat $((i * 8))M 8M" >"$T/c$i.out" 2>&1 &
  pids+=($!)
done
nbdcopy "$(uri tank/x)" - >"$T/x.out" &
pids+=($!)
PATH=/usr/bin:/bin nbdsh -u "$(uri tank/v)" -c 'for i in range(200): h.pwrite(bytes([i % 256]) * 4096, i * 4096); h.flush()' &
pids+=($!)
i=0
for p in "${pids[@]}"; do
  wait "$p" || { cat "$T"/c*.out; fail "concurrent client $i (pid $p) failed"; }
  i=$((i + 1))
done
cmp "$T/x.out" "$T/src.raw" || fail "concurrent reader of tank/x got wrong data"
cmds=()
for i in 0 1 2 3 4 5; do cmds+=(-c "$(printf 'read -P 0x%02x %dM 8M' $((0x30 + i)) $((i * 8)))"); done
qemu-io -f raw "$(uri tank/w)" "${cmds[@]}" >"$T/cv.out" 2>&1 ||
  { cat "$T/cv.out"; fail "concurrent writes did not all land"; }
PATH=/usr/bin:/bin nbdsh -u "$(uri tank/v)" -c 'assert all(h.pread(4096, i * 4096) == bytes([i % 256]) * 4096 for i in range(200))' ||
  fail "nbdsh writer data not read back"

echo "== 32 simultaneous connections"
nbdpy - "$(uri tank/w)" <<'EOF' || fail "32 simultaneous connections failed"
import nbd, sys
hs = []
for i in range(32):
    h = nbd.NBD(); h.connect_uri(sys.argv[1]); hs.append(h)
for i, h in enumerate(hs):
    assert h.pread(4096, i * 4096) == bytes([0x30]) * 4096
for h in hs:
    h.shutdown()
print("32 connections ok")
EOF

echo "== ext4 through nbdfuse + loop mount: files survive, fsck is clean, fstrim gives space back"
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && command -v nbdfuse >/dev/null && command -v fusermount3 >/dev/null &&
   command -v mkfs.ext4 >/dev/null && command -v fstrim >/dev/null && losetup -f >/dev/null 2>&1; then
  berth vol create -V 256M tank/fs >/dev/null || fail "vol create tank/fs"
  mkdir -p "$T/fuse" "$T/mnt"
  nbdfuse -P "$T/nbdfuse.pid" "$T/fuse" "$(uri tank/fs)" >"$T/nbdfuse.log" 2>&1 &
  add_cleanup "fusermount3 -u $T/fuse"
  wait_until 10 test -s "$T/nbdfuse.pid" || { cat "$T/nbdfuse.log"; fail "nbdfuse did not start"; }
  mkfs.ext4 -q -F "$T/fuse/nbd" || fail "mkfs.ext4 on the volume"
  mount -o loop "$T/fuse/nbd" "$T/mnt" || fail "loop mount of the volume"
  add_cleanup "umount $T/mnt"
  mkdata "$T/mnt/text" 32 text
  mkdata "$T/mnt/random" 48 random
  cp -r /usr/share/common-licenses "$T/mnt/" 2>/dev/null || true
  (cd "$T/mnt" && find . -type f ! -name random -print0 | sort -z | xargs -0 sha256sum) >"$T/sums"
  sync -f "$T/mnt"
  pool_sync tank
  u1=$(vol_prop tank/fs used)
  rm "$T/mnt/random"
  sync -f "$T/mnt"
  fstrim "$T/mnt" || fail "fstrim"
  ok=0
  for i in $(seq 10); do
    pool_sync tank
    u2=$(vol_prop tank/fs used)
    [ "$u2" -le $((u1 - 40 * MiB)) ] && { ok=1; break; }
    sleep 0.2
  done
  echo "  used $u1 -> $u2 after deleting 48 MiB and fstrim"
  [ $ok = 1 ] || fail "fstrim through loop + nbdfuse did not free the deleted file's space (used $u1 -> $u2)"
  umount "$T/mnt" || fail "umount"
  fsck.ext4 -fn "$T/fuse/nbd" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "fsck.ext4 found errors"; }
  fusermount3 -u "$T/fuse" || fail "fusermount3 -u"
  # a second, independent client: the filesystem image read with qemu-img
  qemu-img convert -f raw -O raw "$(uri tank/fs)" "$T/fs.img" || fail "qemu-img convert of the filesystem"
  mount -o loop,ro "$T/fs.img" "$T/mnt" || fail "loop mount of the copied image"
  (cd "$T/mnt" && sha256sum -c --quiet "$T/sums") || fail "files differ after umount / copy"
  umount "$T/mnt"
  rm -f "$T/fs.img"
else
  echo "  skipped: needs root, /dev/fuse, nbdfuse, fusermount3, mkfs.ext4, fstrim and a free loop device"
fi

echo "== NBD on loopback TCP (berthd --nbd-tcp 127.0.0.1:0)"
stop_berthd
start_berthd --nbd-tcp 127.0.0.1:0
ut=$(berth --json vol get all tank/w | jfield uri_tcp) || fail "no uri_tcp for tank/w"
echo "  $ut"
[[ "$ut" == nbd://127.0.0.1:*/tank/w ]] || fail "uri_tcp is '$ut'"
[ "$(nbdinfo --size "$ut")" -eq $((64 * MiB)) ] || fail "nbdinfo over TCP"
qemu-io -f raw "$ut" -c 'write -P 0x7e 0 1M' -c 'read -P 0x7e 0 1M' >/dev/null || fail "qemu-io over TCP"
qemu-io -f raw "$(uri tank/w)" -c 'read -P 0x7e 0 1M' >/dev/null || fail "a TCP write is not seen over the unix socket"

berthd_alive
stop_berthd
echo "PASS"
