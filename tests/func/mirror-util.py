# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the mirror tests (t-mirror.sh, t-mirror-fault.sh), run with the
# python3 that has libnbd (NBDPY).  They read a leaf's layout from its label
# (docs/FORMAT.md sections 1, 2, 4) so that corruption lands in the data area
# only, and compare leaves over their allocated sectors:
#
#   layout IMG                      data_start data_end ashift (bytes)
#   alloc IMG                       allocated bytes of the data area (bitmap)
#   corrupt IMG N SEED OUT [AVOID]  garble N random ranges (512 B..64 KiB) inside
#                                   allocated sectors of the data area; ranges
#                                   (file offsets) go to OUT; none comes within
#                                   256 KiB of a range listed in AVOID
#   pick IMG N SEED OUT             the same ranges as corrupt, not garbled
#   garble IMG RANGES               garble the ranges (file offsets) listed in RANGES
#   units IMG MAGIC OUT             find the 4 KiB units "MAGIC"+u64 index of an
#                                   uncompressed volume: "index fileoffset" lines
#   cmp IMG IMG...                  the allocated sectors (by the first leaf's
#                                   bitmap) are identical on every leaf; exit 1
#                                   and list the first differences otherwise
#                                   (differences only where the first leaf has
#                                   the zero padding after a block's stored
#                                   bytes are counted apart, not failed)
#   readcheck URI EXPECTED BS [EIO_OUT]
#                                   read the volume in BS blocks: each must equal
#                                   EXPECTED or fail with EIO (never wrong data);
#                                   prints "ok N eio M wrong K", EIO block
#                                   indices to EIO_OUT
#   mkunits FILE MAGIC N            N unique 4 KiB units (incompressible)
import errno
import os
import random
import struct
import sys

LABEL_MAGIC = 0x4C424C4854524542
MAP_MAGIC = 0x50414D5448545245


def layout(img):
    with open(img, "rb") as f:
        h = f.read(512)
    magic, = struct.unpack_from("<Q", h, 0)
    if magic != LABEL_MAGIC:
        sys.exit("%s: no berth label at offset 0" % img)
    d = {"ashift": h[128]}
    (d["dev_size"], d["data_start"], d["data_end"], d["bitmap_off"], d["nchunks"]) = \
        struct.unpack_from("<QQQQQ", h, 136)
    d["slotsize"], d["bits"] = struct.unpack_from("<II", h, 176)
    return d


def alloc_runs(img, L=None):
    """Allocated runs [start, end) as file offsets, from the newest valid
    slot of every bitmap chunk (the pool must be synced or exported)."""
    L = L or layout(img)
    sec = 1 << L["ashift"]
    runs = []
    with open(img, "rb") as f:
        for i in range(L["nchunks"]):
            best = None
            for s in (0, 1):
                f.seek(L["bitmap_off"] + (2 * i + s) * L["slotsize"])
                slot = f.read(L["slotsize"])
                if len(slot) < 64:
                    continue
                magic, txg, idx, nbits = struct.unpack_from("<QQQI", slot, 0)
                if magic == MAP_MAGIC and idx == i and (best is None or txg > best[0]):
                    best = (txg, nbits, slot)
            if not best:
                continue
            nbits, bits = best[1], best[2][64:]
            base = i * L["bits"]
            j = 0
            while j < nbits:
                byte = bits[j >> 3]
                if byte == 0 and (j & 7) == 0:
                    j += 8
                    continue
                if byte >> (j & 7) & 1:
                    st = L["data_start"] + (base + j) * sec
                    if runs and runs[-1][1] == st:
                        runs[-1][1] = st + sec
                    else:
                        runs.append([st, st + sec])
                j += 1
    return runs


def garble(fd, off, ln, rnd):
    old = os.pread(fd, ln, off)
    new = bytes(b ^ rnd.randint(1, 255) for b in old)
    os.pwrite(fd, new, off)


def cmd_corrupt(img, n, seed, out, avoid=None, pick_only=False):
    rnd = random.Random(seed)
    runs = alloc_runs(img)
    total = sum(e - s for s, e in runs)
    bad = []
    if avoid:
        for line in open(avoid):
            a, b = map(int, line.split())
            bad.append((a - (256 << 10), a + b + (256 << 10)))
    chosen = []
    tries = 0
    while len(chosen) < n and tries < 100000:
        tries += 1
        k = rnd.randrange(total)
        for s, e in runs:
            if k < e - s:
                pos = s + k
                break
            k -= e - s
        ln = min(rnd.randint(512, 64 << 10), e - pos)
        if any(pos < b and pos + ln > a for a, b in bad + [(c - (64 << 10), c + l + (64 << 10)) for c, l in chosen]):
            continue
        chosen.append((pos, ln))
    if len(chosen) < n:
        sys.exit("corrupt: only %d of %d ranges fit" % (len(chosen), n))
    with open(out, "w") as o:
        o.write("".join("%d %d\n" % c for c in sorted(chosen)))
    if pick_only:
        return
    fd = os.open(img, os.O_RDWR)
    for pos, ln in chosen:
        garble(fd, pos, ln, rnd)
    os.fsync(fd)
    os.close(fd)
    print("garbled %d ranges (%d bytes) in %s (seed %s), %d bytes allocated" %
          (n, sum(l for _, l in chosen), os.path.basename(img), seed, total))


def cmd_garble(img, ranges):
    rnd = random.Random(ranges)
    fd = os.open(img, os.O_RDWR)
    for line in open(ranges):
        off, ln = map(int, line.split())
        garble(fd, off, ln, rnd)
    os.fsync(fd)
    os.close(fd)


def cmd_units(img, magic, out):
    magic = magic.encode().ljust(8, b"\0")[:8]
    L = layout(img)
    found, dup = {}, set()
    with open(img, "rb") as f:
        for s, e in alloc_runs(img, L):
            f.seek(s)
            buf = f.read(e - s)
            for k in range(0, len(buf) - 15, 4096):
                m, idx = struct.unpack_from("<8sQ", buf, k)
                if m == magic:
                    if idx in found:
                        dup.add(idx)
                    found[idx] = s + k
    with open(out, "w") as o:
        o.write("".join("%d %d\n" % (i, found[i]) for i in sorted(set(found) - dup)))
    print("%d units found (%d twice)" % (len(found), len(dup)))


def cmd_cmp(imgs):
    L = layout(imgs[0])
    sec = 1 << L["ashift"]
    runs = alloc_runs(imgs[0], L)
    fds = [os.open(i, os.O_RDONLY) for i in imgs]
    diffs, pads, total = [], 0, 0
    for s, e in runs:
        pos = s
        while pos < e:
            ln = min(e - pos, 4 << 20)
            bufs = [os.pread(fd, ln, pos) for fd in fds]
            total += ln
            pos += ln
            if all(b == bufs[0] for b in bufs[1:]):
                continue
            for q in range(0, ln, sec):
                secs = [b[q:q + sec] for b in bufs]
                if all(x == secs[0] for x in secs[1:]):
                    continue
                d0 = min(j for j in range(sec) if any(x[j] != secs[0][j] for x in secs[1:]))
                # the zero padding after a compressed block's psize bytes is
                # outside its checksum: garbage there is never read, so
                # neither detected nor repaired.  It starts inside the
                # block's last sector (psize is not a multiple of it): the
                # copies agree up to there, and one is zero after it
                # (never a whole sector: that is a missing write)
                if d0 > 0 and any(not any(x[d0:]) for x in secs):
                    pads += 1
                    continue
                k = next(k for k in range(1, len(secs)) if secs[k] != secs[0])
                d = [j for j in range(sec) if secs[k][j] != secs[0][j]]
                diffs.append((k, pos - ln + q, d[0], d[-1] + 1))
    print("compared %d allocated bytes of the data area on %d leaves: %d sectors differ%s" %
          (total, len(imgs), len(diffs),
           " (and %d only in the zero padding past a block's stored bytes, which no checksum "
           "covers)" % pads if pads else ""))
    for k, off, b0, b1 in diffs[:10]:
        print("  %s differs from %s in the sector at file offset %d, bytes %d..%d" %
              (imgs[k], imgs[0], off, b0, b1))
    sys.exit(1 if diffs or total == 0 else 0)


def cmd_readcheck(uri, exp, bs, out=None):
    import nbd
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


def cmd_mkunits(path, magic, n):
    r = random.Random(4243)
    m = magic.encode().ljust(8, b"\0")[:8]
    with open(path, "wb") as f:
        for i in range(n):
            f.write(struct.pack("<8sQ", m, i) + r.randbytes(4096 - 16))


def main():
    a = sys.argv[1:]
    cmd = a[0] if a else ""
    if cmd == "layout":
        L = layout(a[1])
        print(L["data_start"], L["data_end"], L["ashift"])
    elif cmd == "alloc":
        print(sum(e - s for s, e in alloc_runs(a[1])))
    elif cmd == "corrupt":
        cmd_corrupt(a[1], int(a[2]), a[3], a[4], a[5] if len(a) > 5 else None)
    elif cmd == "pick":
        cmd_corrupt(a[1], int(a[2]), a[3], a[4], None, True)
    elif cmd == "garble":
        cmd_garble(a[1], a[2])
    elif cmd == "units":
        cmd_units(a[1], a[2], a[3])
    elif cmd == "cmp":
        cmd_cmp(a[1:])
    elif cmd == "readcheck":
        cmd_readcheck(a[1], a[2], int(a[3]), a[4] if len(a) > 4 else None)
    elif cmd == "mkunits":
        cmd_mkunits(a[1], a[2], int(a[3]))
    else:
        sys.exit("usage: mirror-util.py layout|alloc|corrupt|pick|garble|units|cmp|readcheck|mkunits ...")


main()
