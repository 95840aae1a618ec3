/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/vdev.c on temporary files: creation, locking,
 * close-on-exec, counters, range checks, fault injection, discard. */
#include "store/vdev.h"
#include "tap.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1ULL << 20)

static uint64_t blocks_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_blocks : 0;
}

static void test_open(const char *dir)
{
    char path[256];
    struct vdev *v, *w;
    struct berr e = {0};
    snprintf(path, sizeof path, "%s/a.img", dir);
    ok(vdev_open(path, 0, false, &v, &e) == -ENOENT, "missing file without size: ENOENT");
    ok(vdev_open(path, 64 * MiB, false, &v, &e) == 0, "create 64M: %s", e.msg);
    ok(v->size == 64 * MiB && !v->is_blockdev && v->phys_sector_shift == 12,
       "size, kind, sector shift 12 for files");
    ok(blocks_of(path) < 64, "created sparse");
    ok(fcntl(v->fd, F_GETFD) & FD_CLOEXEC, "descriptor is close-on-exec");
    ok(vdev_open(path, 0, false, &w, &e) == -EBUSY && strstr(e.msg, "in use"),
       "second open: EBUSY: %s", e.msg);
    ok(vdev_open(path, 0, true, &w, &e) == -EBUSY, "second read-only open: EBUSY too");
    vdev_close(v);
    ok(vdev_open(path, 128 * MiB, false, &v, &e) == 0 && v->size == 128 * MiB,
       "reopen after close; a shorter file is extended");
    vdev_close(v);
    ok(vdev_open(path, 0, true, &v, &e) == 0 && v->readonly, "read-only open");
    char b[512] = {0};
    ok(vdev_pwrite(v, b, sizeof b, 0) < 0, "write on read-only fails");
    vdev_close(v);
    ok(vdev_open(dir, 0, false, &v, &e) < 0, "a directory is refused: %s", e.msg);
    vdev_close(NULL);
    unlink(path);
}

static void test_io(const char *dir)
{
    char path[256];
    struct vdev *v;
    struct berr e = {0};
    snprintf(path, sizeof path, "%s/io.img", dir);
    vdev_open(path, 64 * MiB, false, &v, &e);
    static uint8_t w[65536], r[65536];
    for (size_t i = 0; i < sizeof w; i++)
        w[i] = (uint8_t)(i * 31 + 7);
    ok(vdev_pwrite(v, w, sizeof w, 1 * MiB) == 0, "write 64K");
    ok(vdev_pread(v, r, sizeof r, 1 * MiB) == 0 && memcmp(w, r, sizeof w) == 0, "read back");
    ok(v->ctr.writes == 1 && v->ctr.bytes_written == sizeof w && v->ctr.reads == 1 &&
           v->ctr.bytes_read == sizeof r,
       "counters");
    ok(vdev_pread(v, r, 4096, 64 * MiB - 2048) == -EINVAL, "read past the end: EINVAL");
    ok(vdev_pwrite(v, w, 4096, 64 * MiB) == -EINVAL, "write at the end: EINVAL");
    ok(vdev_pwrite(v, w, 4096, UINT64_MAX - 100) == -EINVAL, "overflowing offset: EINVAL");
    ok(v->ctr.read_errors == 1 && v->ctr.write_errors == 2, "errors counted");
    ok(vdev_pwrite(v, w, 4096, 64 * MiB - 4096) == 0, "write the last 4K");
    ok(vdev_flush(v) == 0, "flush");
    vdev_close(v);
    unlink(path);
}

static void test_faults(const char *dir)
{
    char path[256];
    struct vdev *v;
    struct berr e = {0};
    snprintf(path, sizeof path, "%s/f.img", dir);
    vdev_open(path, 64 * MiB, false, &v, &e);
    static uint8_t ones[8192], r[8192], zero[8192];
    memset(ones, 0xaa, sizeof ones);

    ok(vdev_debug(v, "torn_write_after=2", &e) == 0, "arm torn write at the 2nd write");
    ok(vdev_pwrite(v, ones, 4096, 0) == 0, "1st write succeeds");
    ok(vdev_pwrite(v, ones, 8192, 1 * MiB) == -EIO, "2nd write is torn: EIO");
    vdev_pread(v, r, 8192, 1 * MiB);
    ok(memcmp(r, ones, 4096) == 0 && memcmp(r + 4096, zero, 4096) == 0,
       "only the first half reached the file");
    ok(vdev_pwrite(v, ones, 512, 2 * MiB) == -EIO, "every later write fails");
    ok(vdev_flush(v) == -EIO, "flush after the power cut fails");
    ok(vdev_discard(v, 0, 4096) == -EIO, "discard after the power cut does nothing");
    vdev_pread(v, r, 512, 2 * MiB);
    ok(memcmp(r, zero, 512) == 0, "nothing written after the cut");
    ok(vdev_pread(v, r, 4096, 0) == 0 && memcmp(r, ones, 4096) == 0, "reads still work");
    ok(vdev_debug(v, "reset", &e) == 0 && vdev_pwrite(v, ones, 512, 2 * MiB) == 0,
       "reset: writes work again");

    ok(vdev_debug(v, "torn_write_after=1", &e) == 0, "arm for the next write");
    ok(vdev_pwrite(v, ones, 1000, 3 * MiB) == -EIO, "torn 1000-byte write");
    vdev_pread(v, r, 1000, 3 * MiB);
    ok(memcmp(r, zero, 1000) == 0, "half rounded down to 512: nothing written");
    vdev_debug(v, "reset", &e);
    ok(vdev_debug(v, "torn_write_after=0", &e) == 0 && vdev_pwrite(v, ones, 512, 0) == 0,
       "torn_write_after=0 is off");

    ok(vdev_debug(v, "fail_reads=on", &e) == 0 && vdev_pread(v, r, 512, 0) == -EIO,
       "fail_reads=on");
    ok(vdev_debug(v, "fail_reads=off", &e) == 0 && vdev_pread(v, r, 512, 0) == 0,
       "fail_reads=off");
    ok(vdev_debug(v, "fail_writes=on", &e) == 0 && vdev_pwrite(v, r, 512, 0) == -EIO,
       "fail_writes=on");
    ok(vdev_debug(v, "fail_writes=off", &e) == 0 && vdev_pwrite(v, r, 512, 0) == 0,
       "fail_writes=off");
    ok(vdev_debug(v, "explode=1", &e) == -EINVAL && strstr(e.msg, "explode") &&
           strstr(e.msg, "torn_write_after"),
       "unknown knob: %s", e.msg);
    ok(vdev_debug(v, "fail_reads=maybe", &e) == -EINVAL, "bad on/off: %s", e.msg);
    ok(vdev_debug(v, "torn_write_after=x", &e) == -EINVAL, "bad count: %s", e.msg);
    ok(vdev_debug(v, "fail_reads", &e) == -EINVAL, "knob without value");
    vdev_close(v);
    unlink(path);
}

static void test_discard(const char *dir)
{
    char path[256];
    struct vdev *v;
    struct berr e = {0};
    snprintf(path, sizeof path, "%s/d.img", dir);
    vdev_open(path, 64 * MiB, false, &v, &e);
    uint8_t *buf = malloc(4 * MiB), *r = malloc(4 * MiB);
    memset(buf, 0x5c, 4 * MiB);
    vdev_pwrite(v, buf, 4 * MiB, 8 * MiB);
    vdev_flush(v);
    uint64_t before = blocks_of(path);
    ok(before >= 8192, "4 MiB written (%llu blocks)", (unsigned long long)before);
    ok(vdev_discard(v, 8 * MiB, 4 * MiB) == 0, "discard 4 MiB");
    uint64_t after = blocks_of(path);
    ok(after + 8000 <= before, "st_blocks went down (%llu -> %llu)", (unsigned long long)before,
       (unsigned long long)after);
    vdev_pread(v, r, 4 * MiB, 8 * MiB);
    int zero = 1;
    for (size_t i = 0; i < 4 * MiB; i++)
        zero &= r[i] == 0;
    ok(zero, "discarded range reads as zeros");
    ok(v->size == 64 * MiB, "size kept");
    ok(vdev_discard(v, 64 * MiB, 4096) == -EINVAL, "discard past the end: EINVAL");
    ok(vdev_discard(v, 0, 0) == 0, "empty discard");
    free(buf);
    free(r);
    vdev_close(v);
    unlink(path);
}

int main(void)
{
    char dir[] = "/tmp/berth-test-vdev-XXXXXX";
    if (!mkdtemp(dir))
        tap_skip_all("cannot make a temp dir");
    test_open(dir);
    test_io(dir);
    test_faults(dir);
    test_discard(dir);
    rmdir(dir);
    return done_testing();
}
