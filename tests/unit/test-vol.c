/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Volume data path against an in-memory model: random writes, zeroes and
 * trims at random offsets and sizes (partial blocks, across boundaries),
 * syncs, close/import round trips and bs_pool_check after every sync; holes
 * and space accounting; compression; grow/shrink; block status; concurrent
 * writers and readers; corruption of data blocks on disk. */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)

static bs_pool *reopen(bs_pool *p, const char *path)
{
    struct berr e = {0};
    const char *v[] = { path };
    bs_pool_close(p);
    bs_pool *np = NULL;
    if (bs_pool_import(v, 1, NULL, &np, &e) < 0)
        diag("import failed: %s", e.msg);
    return np;
}

/* Write like the NBD server does with bs_vol_pwrite_bufs: the unaligned
 * head and tail copied, the whole blocks in between handed over as block
 * buffers. */
static int pwrite_split(bs_vol *vol, const uint8_t *buf, uint64_t len, uint64_t off)
{
    uint32_t bs = bs_vol_blocksize(vol);
    uint64_t head = MIN((bs - off % bs) % bs, len);
    uint64_t n = (len - head) / bs, tail = len - head - n * bs;
    int r = head ? bs_vol_pwrite(vol, buf, head, off, 0) : 0;
    if (r == 0 && n) {
        bs_wbuf **bufs = calloc(n, sizeof *bufs);
        if (!bufs)
            return -ENOMEM;
        for (uint64_t i = 0; i < n; i++) {
            if (!(bufs[i] = bs_vol_wbuf_new(vol)))
                r = -ENOMEM;
            else
                memcpy(bs_wbuf_data(bufs[i]), buf + head + i * bs, bs);
        }
        if (r == 0) {
            r = bs_vol_pwrite_bufs(vol, bufs, n, off + head, 0);
        } else {
            for (uint64_t i = 0; i < n; i++)
                bs_wbuf_free(bufs[i]);
        }
        free(bufs);
    }
    if (r == 0 && tail)
        r = bs_vol_pwrite(vol, buf + head + n * bs, tail, off + head + n * bs, 0);
    return r;
}

/* Random operations against a model; returns the number of mismatches. */
static void model_test(uint32_t bs, uint64_t size, int ops, uint64_t seed)
{
    struct berr e = {0};
    char name[64];
    snprintf(name, sizeof name, "model-%u.img", bs);
    const char *path = tmp_path(name);
    const char *v[] = { path };
    bs_pool *p;
    if (bs_pool_create("m", v, 1, 256 * MiB, NULL, &p, &e) < 0) {
        ok(0, "create: %s", e.msg);
        return;
    }
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "vol");
    vp.volsize = size;
    vp.volblocksize = bs;
    ok(bs_vol_create(p, &vp, false, &e) == 0, "create %uK volume: %s", bs / 1024, e.msg);
    uint8_t *model = calloc(1, size), *buf = malloc(512 * 1024), *rd = malloc(512 * 1024);
    bs_vol *vol = NULL;
    bs_vol_open(p, "vol", &vol, &e);
    int bad_reads = 0, bad_ops = 0, checks = 0, bad_checks = 0, reopens = 0;
    for (int i = 0; i < ops; i++) {
        uint64_t k = xrand(&seed) % 100;
        uint64_t len = 1 + xrand(&seed) % (k < 10 ? 512 * 1024 : 70000);
        uint64_t off = xrand(&seed) % (size - len);
        if (xrand(&seed) % 4 == 0) { /* aligned ops are common in practice */
            off &= ~(uint64_t)(bs - 1);
            len = ROUND_UP(len, bs);
            if (off + len > size)
                len = size - off;
        }
        int r = 0;
        if (k < 55) {
            pattern(buf, len, off, (uint32_t)i);
            if (k < 8) /* all-zero writes must become holes */
                memset(buf, 0, len);
            /* a third of the writes hand whole blocks over (NBD) */
            r = xrand(&seed) % 3 == 0 ? pwrite_split(vol, buf, len, off)
                                      : bs_vol_pwrite(vol, buf, len, off, 0);
            memcpy(model + off, buf, len);
        } else if (k < 65) {
            r = (k & 1) ? bs_vol_zero(vol, len, off, 0) : bs_vol_trim(vol, len, off, 0);
            memset(model + off, 0, len);
        } else if (k < 95) {
            r = bs_vol_pread(vol, rd, len, off);
            if (r == 0 && memcmp(rd, model + off, len) != 0)
                bad_reads++;
        } else if (k < 98) {
            r = bs_pool_sync(p, &e);
            checks++;
            if (bs_pool_check(p, &e) != 0) {
                bad_checks++;
                diag("check: %s", e.msg);
            }
        } else {
            bs_vol_close(vol);
            vol = NULL;
            p = reopen(p, path);
            reopens++;
            if (!p || bs_vol_open(p, "vol", &vol, &e) < 0)
                break;
        }
        if (r < 0) {
            bad_ops++;
            diag("op %d (k=%llu) failed: %d %s", i, (unsigned long long)k, r, e.msg);
        }
    }
    ok(bad_ops == 0, "%d random ops without errors", ops);
    ok(bad_reads == 0, "reads matched the model (%d mismatches)", bad_reads);
    ok(bad_checks == 0, "%d pool checks passed (%d reopens)", checks, reopens);
    /* full verification after a final round trip */
    bs_vol_close(vol);
    p = reopen(p, path);
    ok(p && bs_vol_open(p, "vol", &vol, &e) == 0, "final import");
    int mism = 0;
    for (uint64_t off = 0; p && off < size; off += 512 * 1024) {
        uint64_t n = MIN(512 * 1024, size - off);
        if (bs_vol_pread(vol, rd, n, off) < 0 || memcmp(rd, model + off, n) != 0)
            mism++;
    }
    ok(mism == 0, "whole volume matches the model after import");
    ok(p && bs_pool_check(p, &e) == 0, "final check: %s", e.msg);
    bs_vol_close(vol);
    bs_pool_close(p);
    free(model);
    free(buf);
    free(rd);
}

static uint64_t vol_used(bs_pool *p, const char *name, struct bs_vol_props *out)
{
    struct berr e = {0};
    bs_vol_get(p, name, out, &e);
    return out->used;
}

static int count_extents(uint64_t off, uint64_t len, unsigned flags, void *opaque)
{
    uint64_t *acc = opaque; /* [0] = hole bytes, [1] = data bytes, [2] = calls, [3] = next */
    if (off != acc[3])
        acc[4]++;
    acc[3] = off + len;
    acc[(flags & BS_EXTENT_HOLE) ? 0 : 1] += len;
    acc[2]++;
    return 0;
}

static void space_test(void)
{
    struct berr e = {0};
    const char *path = tmp_path("space.img");
    const char *v[] = { path };
    bs_pool *p = NULL;
    ok(bs_pool_create("s", v, 1, 256 * MiB, NULL, &p, &e) == 0, "create: %s", e.msg);
    if (!p)
        return;
    struct bs_vol_props vp, got;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "a");
    vp.volsize = 64 * MiB;
    bs_vol *vol = NULL;
    ok(bs_vol_create(p, &vp, false, &e) == 0 && bs_vol_open(p, "a", &vol, &e) == 0,
       "create thin 64M: %s", e.msg);
    if (!vol) {
        bs_pool_close(p);
        return;
    }
    uint8_t *buf = malloc(16 * MiB), *rd = malloc(16 * MiB);
    uint64_t seed = 99;
    random_bytes(buf, 16 * MiB, &seed);
    ok(bs_vol_pwrite(vol, buf, 16 * MiB, 0, 0) == 0, "16M random data");
    bs_pool_sync(p, &e);
    vol_used(p, "a", &got);
    ok(got.logicalused == 16 * MiB && got.used >= 16 * MiB && got.used < 17 * MiB &&
           got.compressratio < 1.01,
       "random data stored raw: used %llu logical %llu ratio %.2f",
       (unsigned long long)got.used, (unsigned long long)got.logicalused, got.compressratio);
    struct bs_pool_stats st0, st1;
    bs_pool_stats(p, &st0);
    /* compressible data */
    memset(buf, ' ', 16 * MiB);
    for (uint64_t i = 0; i < 16 * MiB; i += 64)
        snprintf((char *)buf + i, 64, "line %llu of a very compressible text ........\n",
                 (unsigned long long)i);
    uint64_t phys0 = got.used;
    ok(bs_vol_pwrite(vol, buf, 16 * MiB, 32 * MiB, 0) == 0, "16M text");
    bs_pool_sync(p, &e);
    vol_used(p, "a", &got);
    ok(got.used - phys0 < 6 * MiB && got.compressratio > 1.3,
       "text compresses: 16M stored in %llu bytes, volume ratio %.2f",
       (unsigned long long)(got.used - phys0), got.compressratio);
    ok(bs_vol_pread(vol, rd, 16 * MiB, 32 * MiB) == 0 && memcmp(rd, buf, 16 * MiB) == 0,
       "compressed data reads back");
    uint64_t used_before = got.used;
    bs_pool_stats(p, &st0);
    ok(bs_vol_trim(vol, 8 * MiB, 0, 0) == 0 && bs_vol_zero(vol, 8 * MiB + 100, 32 * MiB, 0) == 0,
       "trim 8M + zero 8M");
    bs_pool_sync(p, &e);
    vol_used(p, "a", &got);
    ok(got.used < used_before - 8 * MiB, "used drops: %llu -> %llu",
       (unsigned long long)used_before, (unsigned long long)got.used);
    ok(bs_vol_pread(vol, rd, 8 * MiB, 0) == 0 && buf_is_zero(rd, 8 * MiB), "trimmed reads zero");
    /* the allocator releases after ALLOC_DEFER_TXGS more txgs */
    for (int i = 0; i < 4; i++) {
        uint8_t b[4096] = { (uint8_t)i + 1 };
        bs_vol_pwrite(vol, b, 4096, 60 * MiB, 0);
        bs_pool_sync(p, &e);
    }
    bs_pool_stats(p, &st1);
    ok(st1.allocated < st0.allocated - 8 * MiB, "pool allocated drops: %llu -> %llu",
       (unsigned long long)st0.allocated, (unsigned long long)st1.allocated);
    /* block status: holes and data */
    uint64_t acc[5] = { 0, 0, 0, 0, 0 };
    int bsr = bs_vol_block_status(vol, 64 * MiB, 0, count_extents, acc);
    ok(bsr == 0 && acc[4] == 0 && acc[0] + acc[1] == 64 * MiB,
       "block status covers the range: hole %llu data %llu in %llu extents",
       (unsigned long long)acc[0], (unsigned long long)acc[1], (unsigned long long)acc[2]);
    ok(acc[1] >= 16 * MiB - 100 && acc[1] <= 17 * MiB, "data extents = what was written");
    /* grow, then shrink with force */
    ok(bs_vol_resize(p, "a", 40 * MiB, false, &e) == -EINVAL, "shrink needs force: %s", e.msg);
    ok(bs_vol_resize(p, "a", 64 * MiB + 1, false, &e) == -EINVAL, "resize not a multiple");
    ok(bs_vol_resize(p, "a", 2048 * MiB, false, &e) == 0, "grow to 2G: %s", e.msg);
    ok(bs_vol_size(vol) == 2048 * MiB, "handle sees the new size");
    memset(buf, 0x5a, MiB);
    ok(bs_vol_pwrite(vol, buf, MiB, 2047 * MiB, 0) == 0, "write at the new end");
    bs_pool_sync(p, &e);
    ok(bs_pool_check(p, &e) == 0, "check after grow: %s", e.msg);
    ok(bs_vol_resize(p, "a", 40 * MiB, true, &e) == 0, "shrink to 40M");
    ok(bs_vol_pwrite(vol, buf, MiB, 40 * MiB, 0) == -EINVAL, "write past the end: EINVAL");
    ok(bs_pool_check(p, &e) == 0, "check after shrink: %s", e.msg);
    vol_used(p, "a", &got);
    ok(got.logicalused <= 8 * MiB + 100, "data past the end freed: logical %llu",
       (unsigned long long)got.logicalused);
    ok(bs_vol_resize(p, "a", 64 * MiB, false, &e) == 0, "grow again");
    ok(bs_vol_pread(vol, rd, 16 * MiB, 40 * MiB) == 0 && buf_is_zero(rd, 16 * MiB) &&
           bs_vol_pread(vol, rd, 8 * MiB, 56 * MiB) == 0 && buf_is_zero(rd, 8 * MiB),
       "regrown area reads zero");
    ok(bs_vol_pread(vol, rd, 8 * MiB, 8 * MiB) == 0, "old data inside still readable");
    bs_vol_close(vol);
    ok(bs_vol_destroy(p, "a", false, &e) == 0, "destroy");
    bs_pool_stats(p, &st1);
    ok(bs_pool_check(p, &e) == 0, "check after destroy: %s", e.msg);
    ok(st1.logical_bytes == 0 && st1.nvols == 0, "nothing left");
    bs_pool_close(p);
    free(buf);
    free(rd);
}

struct thr {
    bs_vol *vol;
    int id;
    uint64_t region, size;
    int errors;
};

static void *writer(void *arg)
{
    struct thr *t = arg;
    uint8_t buf[65536], rd[65536];
    uint64_t seed = (uint64_t)t->id * 77 + 1;
    for (int i = 0; i < 1500; i++) {
        uint64_t len = 1 + xrand(&seed) % sizeof buf;
        uint64_t off = t->region + xrand(&seed) % (t->size - len);
        pattern(buf, len, off, 0xabc);
        if (bs_vol_pwrite(t->vol, buf, len, off, 0) < 0)
            t->errors++;
        if (bs_vol_pread(t->vol, rd, len, off) < 0 || memcmp(rd, buf, len) != 0)
            t->errors++;
        if (i % 300 == 0 && bs_vol_flush(t->vol) < 0)
            t->errors++;
    }
    return NULL;
}

static void *reader(void *arg)
{
    struct thr *t = arg;
    uint8_t buf[65536], want[65536];
    uint64_t seed = (uint64_t)t->id * 31 + 5;
    for (int i = 0; i < 3000; i++) {
        uint64_t len = 1 + xrand(&seed) % sizeof buf;
        uint64_t off = t->region + xrand(&seed) % (t->size - len);
        if (bs_vol_pread(t->vol, buf, len, off) < 0) {
            t->errors++;
            continue;
        }
        /* every byte is either still zero or the writers' pattern */
        pattern(want, len, off, 0xabc);
        for (uint64_t k = 0; k < len; k++)
            if (buf[k] != 0 && buf[k] != want[k]) {
                t->errors++;
                break;
            }
    }
    return NULL;
}

static void concurrency_test(void)
{
    struct berr e = {0};
    const char *path = tmp_path("conc.img");
    const char *v[] = { path };
    bs_pool *p = NULL;
    struct bs_tunables tun, old;
    bs_tunables_get(&old);
    tun = old;
    tun.txg_timeout_ms = 50; /* many txgs under load */
    tun.dirty_max_bytes = 8 * MiB;
    bs_tunables_set(&tun);
    ok(bs_pool_create("c", v, 1, 256 * MiB, NULL, &p, &e) == 0, "create: %s", e.msg);
    if (!p) {
        bs_tunables_set(&old);
        return;
    }
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "c");
    vp.volsize = 32 * MiB;
    vp.volblocksize = 8192;
    if (bs_vol_create(p, &vp, false, &e) < 0) {
        ok(false, "concurrency: volume: %s", e.msg);
        bs_pool_close(p);
        bs_tunables_set(&old);
        return;
    }
    pthread_t th[8];
    struct thr t[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (struct thr){ .id = i, .region = (uint64_t)(i % 4) * 8 * MiB, .size = 8 * MiB };
        bs_vol_open(p, "c", &t[i].vol, &e);
        pthread_create(&th[i], NULL, i < 4 ? writer : reader, &t[i]);
    }
    int errs = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        errs += t[i].errors;
        bs_vol_close(t[i].vol);
    }
    ok(errs == 0, "4 writers + 4 readers, no errors or torn data (%d)", errs);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(st.txg > 5, "several txgs synced under load (txg %llu)", (unsigned long long)st.txg);
    ok(bs_pool_sync(p, &e) == 0 && bs_pool_check(p, &e) == 0, "check: %s", e.msg);
    bs_pool_close(p);
    bs_tunables_set(&old);
}

/* Flip bytes inside data blocks on disk: reads give -EIO or correct data. */
static int collect(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    uint64_t *offs = opaque;
    if (bp->level == 0 && offs[0] < 63)
        offs[1 + offs[0]++] = bp->dva[0].offset + bp->dva[0].asize / 2;
    return 0;
}

static void corruption_test(void)
{
    struct berr e = {0};
    const char *path = tmp_path("corrupt.img");
    const char *v[] = { path };
    bs_pool *p = NULL;
    ok(bs_pool_create("x", v, 1, 128 * MiB, NULL, &p, &e) == 0, "create");
    if (!p)
        return;
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "x");
    vp.volsize = 8 * MiB;
    bs_vol *vol = NULL;
    if (bs_vol_create(p, &vp, false, &e) < 0 || bs_vol_open(p, "x", &vol, &e) < 0) {
        ok(false, "corrupt: volume: %s", e.msg);
        bs_pool_close(p);
        return;
    }
    uint8_t *buf = malloc(8 * MiB), *rd = malloc(8 * MiB);
    uint64_t seed = 5;
    random_bytes(buf, 4 * MiB, &seed);
    pattern(buf + 4 * MiB, 4 * MiB, 0, 9); /* compressible half */
    bs_vol_pwrite(vol, buf, 8 * MiB, 0, 0);
    bs_vol_flush(vol);
    uint64_t offs[64] = { 0 };
    struct ds *d = vol->ds;
    objtree_walk(&p->io, &d->od, 0, collect, offs);
    uint64_t data_start = p->top_hdr[0].data_start;
    bs_vol_close(vol);
    bs_pool_close(p);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    for (uint64_t i = 0; i < offs[0]; i += 3) {
        uint8_t b;
        if (pread(fd, &b, 1, (off_t)(data_start + offs[1 + i])) == 1) {
            b ^= 0x41;
            if (pwrite(fd, &b, 1, (off_t)(data_start + offs[1 + i])) != 1)
                break;
        }
    }
    close(fd);
    ok(bs_pool_import(v, 1, NULL, &p, &e) == 0, "import corrupted pool: %s", e.msg);
    bs_vol_open(p, "x", &vol, &e);
    int eio = 0, good = 0, wrong = 0;
    for (uint64_t off = 0; off < 8 * MiB; off += 16384) {
        int r = bs_vol_pread(vol, rd, 16384, off);
        if (r == -EIO)
            eio++;
        else if (r == 0 && memcmp(rd, buf + off, 16384) == 0)
            good++;
        else
            wrong++;
    }
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(wrong == 0 && eio > 0, "corrupt blocks: %d EIO, %d good, %d wrong", eio, good, wrong);
    ok(st.checksum_errors >= (uint64_t)eio, "checksum errors counted: %llu",
       (unsigned long long)st.checksum_errors);
    ok(bs_pool_check(p, &e) == -EILSEQ, "check reports it: %s", e.msg);
    bs_vol_close(vol);
    bs_pool_close(p);
    free(buf);
    free(rd);
}

/* A fresh pool `name` on the vdev spec v[0..nv) (files of 64 MiB) with one
 * volume "vol" of size bytes and blocksize bs, opened in *vol; NULL (and
 * *vol NULL) on failure, reported under `tag`. */
static bs_pool *pool_with_vol(const char *name, const char *const *v, size_t nv, uint64_t size,
                              uint32_t bs, bs_vol **vol, const char *tag)
{
    struct test_pool tp = {.name = name, .spec = v, .nspec = nv, .filesize = 64 * MiB,
                           .volsize = size, .volblocksize = bs};
    return test_pool_create(&tp, vol, tag);
}

/* Close *vol, import the pool on path again: the volume must read as model
 * and the pool check clean.  Returns the new pool (NULL if the import
 * failed), with *vol open again if it could be. */
static bs_pool *reimport_verify(bs_pool *p, bs_vol **vol, const char *path, const uint8_t *model,
                                uint8_t *rd, uint64_t size, const char *tag)
{
    struct berr e = {0};
    bs_vol_close(*vol);
    *vol = NULL;
    p = reopen(p, path);
    ok(p && bs_vol_open(p, "vol", vol, &e) == 0 && bs_vol_pread(*vol, rd, size, 0) == 0 &&
           memcmp(rd, model, size) == 0,
       "%s: and after an import", tag);
    ok(p && bs_pool_check(p, &e) == 0, "%s: pool check: %s", tag, e.msg);
    return p;
}

/* Partial writes into committed blocks that are not cached (after an
 * import): the old block is read straight into the new dirty buffer
 * (blk_read_copy) and not inserted into the cache, both for raw and
 * lz4-compressed blocks; a cached block is copied.  Contents are checked
 * against a model before and after the sync and after another import. */
static void rmw_test(void)
{
    struct berr e = {0};
    const char *path = tmp_path("rmw.img");
    const uint32_t bs = 16384;
    const uint64_t nblk = 128, size = nblk * bs;
    bs_vol *vol;
    bs_pool *p = pool_with_vol("r", &path, 1, size, bs, &vol, "rmw");
    if (!p)
        return;
    uint8_t *model = malloc(size), *rd = malloc(size);
    uint64_t seed = 42;
    random_bytes(model, size / 2, &seed);                 /* stored raw */
    pattern(model + size / 2, size / 2, size / 2, 7);     /* compressed */
    int r = bs_vol_pwrite(vol, model, size, 0, 0);
    ok(r == 0 && bs_pool_sync(p, &e) == 0, "rmw: %llu full blocks written", (unsigned long long)nblk);
    bs_vol_close(vol);
    p = reopen(p, path);
    ok(p && bs_vol_open(p, "vol", &vol, &e) == 0, "rmw: reopened with a cold cache");
    if (!p || !vol)
        goto out;
    /* warm the indirect blocks (a read of the first byte of each block
     * would cache the data too: look at one block only) */
    uint8_t one;
    bs_vol_pread(vol, &one, 1, 0);
    struct bs_pool_stats st0, st1;
    bs_pool_stats(p, &st0);
    int bad = 0;
    uint8_t piece[4096];
    for (uint64_t b = 1; b < nblk; b++) {
        uint64_t off = b * bs + (b % 4) * 4096;
        pattern(piece, sizeof piece, off, (uint32_t)b + 100);
        memcpy(model + off, piece, sizeof piece);
        bad += bs_vol_pwrite(vol, piece, sizeof piece, off, 0) != 0;
    }
    bs_pool_stats(p, &st1);
    ok(bad == 0, "rmw: %llu partial writes into uncached committed blocks", (unsigned long long)nblk - 1);
    ok(st1.cache_bytes - st0.cache_bytes < 8 * bs,
       "rmw: the old blocks did not go into the cache (+%llu bytes)",
       (unsigned long long)(st1.cache_bytes - st0.cache_bytes));
    ok(bs_vol_pread(vol, rd, size, 0) == 0 && memcmp(rd, model, size) == 0,
       "rmw: dirty blocks read back merged");
    /* block 0 is cached now: its partial write copies the cached block */
    pattern(piece, sizeof piece, 8192, 999);
    memcpy(model + 8192, piece, sizeof piece);
    ok(bs_vol_pwrite(vol, piece, sizeof piece, 8192, 0) == 0, "rmw: partial write into a cached block");
    ok(bs_pool_sync(p, &e) == 0 && bs_vol_pread(vol, rd, size, 0) == 0 &&
           memcmp(rd, model, size) == 0,
       "rmw: synced blocks read back");
    p = reimport_verify(p, &vol, path, model, rd, size, "rmw");
out:
    if (vol)
        bs_vol_close(vol);
    if (p)
        bs_pool_close(p);
    free(model);
    free(rd);
}

/* Does the file system under path do preadv2(RWF_NOWAIT)?  (tmpfs, NFS
 * and FUSE do not: the engine then always takes the blocking path.) */
static bool has_rwf_nowait(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    uint8_t b[512];
    struct iovec iov = {.iov_base = b, .iov_len = sizeof b};
    ssize_t n = preadv2(fd, &iov, 1, 0, RWF_NOWAIT);
    bool yes = n >= 0 || errno == EAGAIN;
    close(fd);
    return yes;
}

/* Drop (or load) the pool file's pages from (into) the page cache. */
static void page_cache(const char *path, bool load)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    fdatasync(fd); /* only clean pages can be dropped */
    if (load) {
        static uint8_t buf[1 << 20];
        while (read(fd, buf, sizeof buf) > 0)
            ;
    } else {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    }
    close(fd);
}

/* BS_IO_NOWAIT (the NBD reader's small writes): a partial write whose old
 * block only the device has fails with -EAGAIN, changes nothing and counts
 * no error; with the pool file in the page cache, or the block dirty, it
 * is done; FUA with it is refused; a blocking retry writes the block. */
static void nowait_test(void)
{
    struct berr e = {0};
    const char *path = tmp_path("nowait.img");
    const uint32_t bs = 16384;
    const uint64_t nblk = 64, size = nblk * bs;
    bs_vol *vol;
    bs_pool *p = pool_with_vol("nw", &path, 1, size, bs, &vol, "nowait");
    if (!p)
        return;
    uint8_t *model = malloc(size), *rd = malloc(size), piece[4096];
    uint64_t seed = 7;
    random_bytes(model, size, &seed);
    ok(bs_vol_pwrite(vol, model, size, 0, 0) == 0 && bs_pool_sync(p, &e) == 0,
       "nowait: %llu blocks written", (unsigned long long)nblk);
    bs_vol_close(vol);
    vol = NULL;
    p = reopen(p, path);
    if (!p || bs_vol_open(p, "vol", &vol, &e) < 0) {
        ok(0, "nowait: reopen: %s", e.msg);
        goto out;
    }
    const bool nowait_fs = has_rwf_nowait(path);
    page_cache(path, false);
    /* block 1: neither cached nor in the page cache */
    pattern(piece, sizeof piece, bs + 4096, 1);
    int r = bs_vol_pwrite(vol, piece, sizeof piece, bs + 4096, BS_IO_NOWAIT);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(r == -EAGAIN && st.read_errors == 0 && st.checksum_errors == 0,
       "nowait: a cold block's partial write would wait: -EAGAIN (%d), no error counted", r);
    ok(bs_vol_pwrite(vol, piece, sizeof piece, bs + 4096, BS_IO_NOWAIT | BS_IO_FUA) == -EINVAL,
       "nowait: not with FUA");
    /* a whole block needs no old contents; block 2 is then dirty, and a
     * partial write into it needs none either */
    pattern(model + 2 * bs, bs, 2 * bs, 2);
    ok(bs_vol_pwrite(vol, model + 2 * bs, bs, 2 * bs, BS_IO_NOWAIT) == 0,
       "nowait: a whole block is written");
    pattern(piece, sizeof piece, 2 * bs + 8192, 3);
    memcpy(model + 2 * bs + 8192, piece, sizeof piece);
    ok(bs_vol_pwrite(vol, piece, sizeof piece, 2 * bs + 8192, BS_IO_NOWAIT) == 0,
       "nowait: a partial write into a dirty block is done");
    /* the retry of block 1, blocking, reads the device */
    pattern(piece, sizeof piece, bs + 4096, 1);
    memcpy(model + bs + 4096, piece, sizeof piece);
    ok(bs_vol_pwrite(vol, piece, sizeof piece, bs + 4096, 0) == 0,
       "nowait: the blocking retry is done");
    /* with the pool file in the page cache the rest goes without waiting
     * (the data blocks are still not in the block cache) */
    page_cache(path, true);
    int bad = 0;
    for (uint64_t b = 3; b < nblk; b++) {
        uint64_t off = b * bs + (b % 4) * 4096;
        pattern(piece, sizeof piece, off, (uint32_t)b + 100);
        int w = bs_vol_pwrite(vol, piece, sizeof piece, off, BS_IO_NOWAIT);
        if (w == -EAGAIN && !nowait_fs) /* the blocking retry, as the NBD server does */
            w = bs_vol_pwrite(vol, piece, sizeof piece, off, 0);
        if (w == 0)
            memcpy(model + off, piece, sizeof piece);
        bad += w != 0;
    }
    if (!nowait_fs)
        diag("nowait: %s has no RWF_NOWAIT: every cold partial write took the blocking retry",
             path);
    ok(bad == 0, "nowait: %llu partial writes of blocks in the page cache done",
       (unsigned long long)nblk - 3);
    ok(bs_vol_pread(vol, rd, size, 0) == 0 && memcmp(rd, model, size) == 0,
       "nowait: everything reads back merged");
    p = reimport_verify(p, &vol, path, model, rd, size, "nowait");
out:
    if (vol)
        bs_vol_close(vol);
    if (p)
        bs_pool_close(p);
    free(model);
    free(rd);
}

/* BS_IO_NOWAIT on a mirror: a committed block the block cache holds is
 * merged without waiting; one it does not hold is -EAGAIN even with both
 * files in the page cache (the blocking path picks the copy and heals). */
static void nowait_mirror_test(void)
{
    struct berr e = {0};
    const char *a = tmp_path("nwm-a.img"), *b = tmp_path("nwm-b.img");
    const char *spec[] = { "mirror", a, b }, *both[] = { a, b };
    const uint32_t bs = 16384;
    bs_vol *vol;
    bs_pool *p = pool_with_vol("nwm", spec, 3, 16 * bs, bs, &vol, "nowait mirror");
    if (!p)
        return;
    static uint8_t data[16 * 16384], rd[16 * 16384];
    uint64_t seed = 9;
    random_bytes(data, sizeof data, &seed);
    ok(bs_vol_pwrite(vol, data, sizeof data, 0, 0) == 0 && bs_pool_sync(p, &e) == 0,
       "nowait mirror: a mirrored volume written and synced: %s", e.msg);
    uint8_t piece[4096];
    pattern(piece, sizeof piece, 4096, 5);
    memcpy(data + 4096, piece, sizeof piece);
    ok(bs_vol_pwrite(vol, piece, sizeof piece, 4096, BS_IO_NOWAIT) == 0,
       "nowait mirror: a cached committed block is merged without waiting");
    bs_vol_close(vol);
    vol = NULL;
    bs_pool_close(p);
    p = NULL;
    page_cache(a, true);
    page_cache(b, true);
    if (bs_pool_import(both, 2, NULL, &p, &e) < 0 || bs_vol_open(p, "vol", &vol, &e) < 0) {
        ok(0, "nowait mirror: import: %s", e.msg);
        goto out;
    }
    pattern(piece, sizeof piece, bs + 8192, 6);
    int r = bs_vol_pwrite(vol, piece, sizeof piece, bs + 8192, BS_IO_NOWAIT);
    ok(r == -EAGAIN, "nowait mirror: an uncached block is -EAGAIN (%d)", r);
    memcpy(data + bs + 8192, piece, sizeof piece);
    ok(bs_vol_pwrite(vol, piece, sizeof piece, bs + 8192, 0) == 0 &&
           bs_vol_pread(vol, rd, sizeof rd, 0) == 0 && memcmp(rd, data, sizeof rd) == 0,
       "nowait mirror: the blocking retry merges it; everything reads back");
out:
    if (vol)
        bs_vol_close(vol);
    if (p)
        bs_pool_close(p);
}

/* bs_vol_pwrite_bufs: block buffers become dirty blocks without a copy;
 * bad calls fail cleanly and free the buffers (ASan/LSan check that); a
 * buffer never backs two blocks, even as buffers are recycled through the
 * idle pool while others are still dirty. */
static void wbuf_test(void)
{
    struct berr e = {0};
    const char *path = tmp_path("wbuf.img");
    bs_vol *vol;
    const uint32_t bs = 16384;
    const uint64_t size = 4 * MiB, nblk = size / bs;
    uint8_t *model = calloc(1, size), *rd = malloc(size);
    bs_pool *p = pool_with_vol("w", &path, 1, size, bs, &vol, "wbuf");
    if (!vol)
        goto out;

    bs_wbuf *b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = bs_vol_wbuf_new(vol);
        pattern(bs_wbuf_data(b[i]), bs, (uint64_t)i * bs, 1);
    }
    ok(((uintptr_t)bs_wbuf_data(b[0]) & 63) == 0, "wbuf: data is 64-byte aligned");
    ok(bs_vol_pwrite_bufs(vol, b, 2, 100, 0) == -EINVAL, "wbuf: unaligned offset refused");
    bs_wbuf_free(b[2]);
    bs_wbuf_free(b[3]);
    for (int i = 0; i < 4; i++) {
        b[i] = bs_vol_wbuf_new(vol);
        pattern(bs_wbuf_data(b[i]), bs, (uint64_t)i * bs, 1);
    }
    ok(bs_vol_pwrite_bufs(vol, b, 2, size - bs, 0) == -EINVAL, "wbuf: past the end refused");
    ok(bs_vol_pwrite_bufs(vol, b + 2, 0, 0, 0) == -EINVAL, "wbuf: no buffers refused");
    bs_wbuf_free(b[2]);
    bs_wbuf_free(b[3]);
    bs_wbuf_free(NULL);
    /* the same buffer twice: the first place writes it, the second is
     * refused, nothing is freed twice */
    bs_wbuf *twice[3] = {bs_vol_wbuf_new(vol), NULL, bs_vol_wbuf_new(vol)};
    twice[1] = twice[0];
    pattern(bs_wbuf_data(twice[0]), bs, 0, 2);
    memcpy(model, bs_wbuf_data(twice[0]), bs);
    ok(bs_vol_pwrite_bufs(vol, twice, 3, 0, 0) == -EINVAL, "wbuf: a buffer given twice refused");
    ok(bs_vol_pread(vol, rd, size, 0) == 0 && memcmp(rd, model, size) == 0,
       "wbuf: its first block written, nothing after it");

    /* many rounds of whole-block writes over a few blocks, syncs between
     * some: replaced buffers go back to the pool and come out again as new
     * buffers while other blocks still hold theirs */
    uint64_t seed = 7;
    int bad = 0, mism = 0;
    for (int round = 0; round < 200; round++) {
        uint64_t first = xrand(&seed) % nblk;
        uint64_t n = 1 + xrand(&seed) % MIN(nblk - first, 8);
        bs_wbuf *w[8];
        for (uint64_t i = 0; i < n; i++) {
            w[i] = bs_vol_wbuf_new(vol);
            pattern(bs_wbuf_data(w[i]), bs, (first + i) * bs, (uint32_t)round + 10);
            memcpy(model + (first + i) * bs, bs_wbuf_data(w[i]), bs);
        }
        bad += bs_vol_pwrite_bufs(vol, w, n, first * bs, round % 7 == 0 ? BS_IO_FUA : 0) != 0;
        if (round % 20 == 19)
            bad += bs_pool_sync(p, &e) != 0;
        if (round % 10 == 9)
            mism += bs_vol_pread(vol, rd, size, 0) != 0 || memcmp(rd, model, size) != 0;
    }
    ok(bad == 0, "wbuf: 200 rounds of block-buffer writes, FUA and syncs");
    ok(mism == 0, "wbuf: every block read back its own data while dirty and synced");
    p = reimport_verify(p, &vol, path, model, rd, size, "wbuf");
out:
    if (vol)
        bs_vol_close(vol);
    if (p)
        bs_pool_close(p);
    free(model);
    free(rd);
}

int main(void)
{
    model_test(16384, 48 * MiB, 3000, 1);
    model_test(4096, 24 * MiB, 2000, 2);
    model_test(131072, 64 * MiB, 1500, 3);
    space_test();
    concurrency_test();
    corruption_test();
    rmw_test();
    nowait_test();
    nowait_mirror_test();
    wbuf_test();
    tmp_cleanup();
    return done_testing();
}
