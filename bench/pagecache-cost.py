#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a buffered write costs by where it lands in a file (CPU of the
writer per GiB, and the machine's page allocations per GiB), the way berthd
writes its pool file: pwrite, and sync_file_range(WRITE) every 64 MiB.

    bench/pagecache-cost.py FILE [--region GIB] [--each MIB]

FILE is created (sparse, 8 GiB) and removed.  The first REGION GiB are
written with 1 MiB writes first (resident pages, as a pool's old data);
then EACH MiB per case: 1 MiB rewrites of that region, pieces of 16K-256K
of it in address order (what the allocator's warm extents give a stream),
128K pieces in random order, and 1 MiB writes into fresh file space past
it, three times (new page-cache pages: their price depends on the host,
docs/PERFORMANCE.md, seventh round).  Hold the bench lock while it runs."""
import argparse
import ctypes
import os
import random
import resource
import time

G, M = 1 << 30, 1 << 20
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--region", type=int, default=2)
    ap.add_argument("--each", type=int, default=512)
    a = ap.parse_args()
    region, each = a.region * G, a.each * M
    fd = os.open(a.file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, 8 * G)
        buf = os.urandom(M)
        for off in range(0, region, M):
            os.pwrite(fd, buf, off)
        os.fdatasync(fd)

        def pgalloc():
            with open("/proc/vmstat") as f:
                return sum(int(l.split()[1]) for l in f if l.startswith("pgalloc_"))

        def run(name, offs, size):
            mv = memoryview(buf)[:size]
            r0, a0, t0, n = resource.getrusage(resource.RUSAGE_SELF), pgalloc(), time.time(), 0
            for off in offs:
                os.pwrite(fd, mv, off)
                n += size
                if n % (64 * M) == 0:
                    libc.sync_file_range(fd, ctypes.c_long(0), ctypes.c_long(0), 2)
            libc.sync_file_range(fd, ctypes.c_long(0), ctypes.c_long(0), 2)
            r1, a1 = resource.getrusage(resource.RUSAGE_SELF), pgalloc()
            g = n / G
            cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
            print("%-22s %.3f s CPU/GiB  %7d pgalloc/GiB  %.2f s" %
                  (name, cpu / g, (a1 - a0) / g, time.time() - t0), flush=True)
            os.fdatasync(fd)

        run("1M rewrite, resident", range(0, each, M), M)
        for sz in (16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10):
            offs = sorted(random.sample(range(region // sz), each // sz))
            run("%dK pieces, in order" % (sz >> 10), [o * sz for o in offs], sz)
        sz = 128 << 10
        run("128K pieces, random", [random.randrange(region // sz) * sz for _ in range(each // sz)], sz)
        fresh = region + G
        for _ in range(3):
            run("1M into fresh space", range(fresh, fresh + each, M), M)
            fresh += each
    finally:
        os.close(fd)
        os.unlink(a.file)


if __name__ == "__main__":
    main()
