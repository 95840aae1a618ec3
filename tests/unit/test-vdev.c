/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/vdev.c on temporary files: creation, locking,
 * close-on-exec, counters, range checks, fault injection, discard; and, as
 * root where loop devices can be made, the direct writes of block device
 * leaves (a leaf, and a raidz of four writing its children at once). */
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

/* A loop device over a new file of `size` bytes; "" when none can be made. */
static void make_loop(const char *file, uint64_t size, char *dev, size_t len)
{
    dev[0] = 0;
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int r = ftruncate(fd, (off_t)size);
    close(fd);
    if (r != 0 || getuid() != 0 || access("/dev/loop-control", F_OK) != 0)
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "PATH=/usr/sbin:/sbin:$PATH losetup -f --show --direct-io=on %s "
             "2>/dev/null", file);
    FILE *f = popen(cmd, "r");
    if (!f)
        return;
    if (!fgets(dev, (int)len, f))
        dev[0] = 0;
    pclose(f);
    dev[strcspn(dev, "\n")] = 0;
}

static void drop_loop(const char *dev, const char *file)
{
    char cmd[512];
    if (dev[0]) {
        snprintf(cmd, sizeof cmd, "PATH=/usr/sbin:/sbin:$PATH losetup -d %s", dev);
        if (system(cmd) != 0)
            diag("losetup -d %s failed", dev);
    }
    unlink(file);
}

/* What the backing file holds at off (the loop device's page cache not
 * consulted: a buffered write not yet written back is not there). */
static bool file_has(const char *file, const void *want, size_t len, uint64_t off)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    uint8_t *b = malloc(len);
    bool same = fd >= 0 && b && pread(fd, b, len, (off_t)off) == (ssize_t)len &&
                memcmp(b, want, len) == 0;
    if (fd >= 0)
        close(fd);
    free(b);
    return same;
}

static bool same_bytes(void *ctx, const void *buf, size_t len)
{
    return memcmp(ctx, buf, len) == 0;
}

static void test_direct(const char *dir)
{
    char file[4][256], dev[4][64];
    struct vdev *l[4] = {NULL};
    struct berr e = {0};
    int n = 0;
    for (; n < 4; n++) {
        snprintf(file[n], sizeof file[n], "%s/loop%d.img", dir, n);
        make_loop(file[n], 32 * MiB, dev[n], sizeof dev[n]);
        if (!dev[n][0])
            break;
    }
    if (n < 4) {
        ok(1, "# SKIP direct writes: cannot make loop devices here (needs root)");
        for (int i = 0; i <= n && i < 4; i++)
            drop_loop(dev[i], file[i]);
        return;
    }
    for (int i = 0; i < 4; i++)
        vdev_open(dev[i], 0, false, &l[i], &e);
    ok(l[0] && l[0]->is_blockdev && l[0]->direct && l[0]->dio_align >= 512,
       "a block device leaf writes directly (alignment %u)", l[0] ? l[0]->dio_align : 0);
    /* 64-byte aligned memory (as the block buffers): copied to an aligned
     * buffer, on the device without any flush */
    uint8_t *raw = aligned_alloc(64, 1 * MiB + 64), *buf = raw + 64, *r = malloc(1 * MiB);
    for (size_t i = 0; i < 1 * MiB; i++)
        buf[i] = (uint8_t)(i * 13 + (i >> 12));
    ok(vdev_pwrite(l[0], buf, 256 * 1024, 4 * MiB) == 0 &&
           file_has(file[0], buf, 256 * 1024, 4 * MiB),
       "unaligned buffer: written through to the device");
    struct iovec iov[3] = {{buf, 4096}, {buf + 8192, 8192}, {buf + 4096, 4096}};
    ok(vdev_pwritev(l[0], iov, 3, 5 * MiB) == 0 && file_has(file[0], buf, 4096, 5 * MiB) &&
           file_has(file[0], buf + 8192, 8192, 5 * MiB + 4096) &&
           file_has(file[0], buf + 4096, 4096, 5 * MiB + 12288),
       "a vector of pieces: written through");
    ok(vdev_pwrite(l[0], buf, 1000, 6 * MiB + 100) == 0 &&
           vdev_pread(l[0], r, 1000, 6 * MiB + 100) == 0 && memcmp(r, buf, 1000) == 0,
       "an unaligned offset and length: buffered, reads back");
    ok(vdev_pread(l[0], r, 256 * 1024, 4 * MiB) == 0 && memcmp(r, buf, 256 * 1024) == 0,
       "buffered reads see the direct writes");
    ok(vdev_flush(l[0]) == 0 && file_has(file[0], buf, 1000, 6 * MiB + 100), "flush");

    /* a raidz1 of the four: blocks back to back, each child one direct
     * write, all at once */
    struct vdev *rz;
    ok(vdev_raidz_new(l, 4, 1, &rz, &e) == 0, "raidz1 of 4 loop devices");
    vdev_set_data(rz, 12, 1 * MiB, 16 * MiB);
    struct iovec blk[16];
    for (int i = 0; i < 16; i++)
        blk[i] = (struct iovec){buf + (size_t)i * 16384, 16384};
    ok(vdev_write_blocks(rz, blk, 16, 0) == 0, "16 blocks of 16K written");
    uint64_t off = 0, asz = vdev_asize(rz, 16384);
    bool all = true;
    for (int i = 0; i < 16; i++, off += asz) {
        struct vdev_rio rq = {.off = off, .psize = 16384, .asize = asz, .buf = r,
                              .verify = same_bytes, .vctx = buf + (size_t)i * 16384};
        all &= vdev_read_block(rz, &rq) == 0;
    }
    ok(all, "every block reads back verified");
    uint64_t cw = 0;
    for (int i = 0; i < 4; i++)
        cw += rz->child[i]->ctr.bytes_written;
    ok(cw == 16 * asz + 256 * 1024 + 16384 + 1000,
       "the children took data and parity (%llu bytes)", (unsigned long long)cw);
    /* every child's share reached its device without a flush: the first
     * row of the data area on each */
    bool through = true;
    for (int i = 0; i < 4; i++) {
        uint8_t want[4096];
        through &= vdev_pread(rz->child[i], want, 4096, 1 * MiB) == 0 &&
                   file_has(file[i], want, 4096, 1 * MiB);
    }
    ok(through, "each child's columns are on its device");
    vdev_close(rz);
    free(raw);
    free(r);
    for (int i = 0; i < 4; i++)
        drop_loop(dev[i], file[i]);
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
    test_direct(dir);
    rmdir(dir);
    return done_testing();
}
