/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The batched read path of volumes (vol.c "reads", blk_read_blocks,
 * objtree_lookup_run): runs of whole blocks read straight into the caller's
 * buffer in one system call per contiguous run, raw and lz4-compressed
 * blocks, holes, dirty blocks and partial blocks around them, requests of
 * every alignment; a sequential stream does not fill the block cache while
 * a read elsewhere still does; a corrupt block inside a run fails its
 * request with EIO and a counted checksum error while its neighbours read
 * back; objtree_lookup_run agrees with objtree_lookup everywhere. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/objtree.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB     (1ULL << 20)
#define BS      16384u
#define VOLSIZE (256 * MiB)
#define FAR     (200 * MiB) /* far from the rest: reads there are no stream */

static uint8_t *model;

#define BAIL_OUT(...)                                                                              \
    do {                                                                                           \
        printf("Bail out! ");                                                                      \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        exit(1);                                                                                   \
    } while (0)

static bs_pool *reopen(bs_pool *p, const char *path, bs_vol **v)
{
    struct berr e = {0};
    const char *pv[] = {path};
    bs_vol_close(*v);
    bs_pool_close(p);
    if (bs_pool_import(pv, 1, NULL, &p, &e) < 0 || bs_vol_open(p, "v", v, &e) < 0) {
        BAIL_OUT("reimport: %s", e.msg);
    }
    return p;
}

/* Read [off, off+len) in requests of req bytes; 0 if all match the model. */
static int read_check(bs_vol *v, uint64_t off, uint64_t len, uint64_t req)
{
    uint8_t *b = malloc(req);
    int bad = 0;
    for (uint64_t o = off; o < off + len && !bad; o += req) {
        uint64_t n = MIN(req, off + len - o);
        int r = bs_vol_pread(v, b, n, o);
        if (r < 0 || memcmp(b, model + o, n) != 0) {
            diag("read of %llu at %llu: %d%s", (unsigned long long)n, (unsigned long long)o, r,
                 r < 0 ? "" : ", wrong data");
            bad = r < 0 ? r : -EILSEQ;
        }
    }
    free(b);
    return bad;
}

static uint64_t vdev_reads(bs_pool *p)
{
    return atomic_load(&p->io.top[0].vd->ctr.reads);
}

static uint64_t cache_entries(bs_pool *p)
{
    struct bcache_stats st;
    bcache_stats(p->io.cache, &st);
    return st.entries;
}

static struct objdesc od_of(bs_vol *v)
{
    pthread_mutex_lock(&v->ds->lock);
    struct objdesc od = v->ds->od;
    pthread_mutex_unlock(&v->ds->lock);
    return od;
}

/* objtree_lookup_run against objtree_lookup, from every start in [lo, hi)
 * with run lengths 1, 7 and BLK_READ_MAX. */
static int lookup_agrees(bs_pool *p, const struct objdesc *od, uint64_t lo, uint64_t hi)
{
    static const size_t ns[] = {1, 7, BLK_READ_MAX};
    struct blkptr run[BLK_READ_MAX], one;
    for (uint64_t b = lo; b < hi; b++) {
        for (size_t t = 0; t < 3; t++) {
            uint64_t hb, hb1;
            int m = objtree_lookup_run(&p->io, od, b, ns[t], run, &hb);
            if (m < 1 || (size_t)m > ns[t])
                return diag("run at %llu: %d", (unsigned long long)b, m), 0;
            /* a run never crosses a level-1 indirect block (256 children) */
            if (!bp_is_hole(&run[0]) && (b & 255) + (uint64_t)m > 256)
                return diag("run at %llu crosses an indirect", (unsigned long long)b), 0;
            for (int i = 0; i < m; i++) {
                if (objtree_lookup(&p->io, od, b + (uint64_t)i, 0, &one, i ? NULL : &hb1) < 0 ||
                    memcmp(&one, &run[i], sizeof one) != 0)
                    return diag("block %llu differs", (unsigned long long)(b + (uint64_t)i)), 0;
            }
            if (hb != (bp_is_hole(&run[0]) ? hb1 : 1))
                return diag("hole span at %llu: %llu vs %llu", (unsigned long long)b,
                            (unsigned long long)hb, (unsigned long long)hb1),
                       0;
        }
    }
    return 1;
}

/* Flip a byte in the middle of block blkid's stored bytes on disk. */
static void corrupt_block(bs_pool *p, bs_vol *v, const char *path, uint64_t blkid)
{
    struct objdesc od = od_of(v);
    struct blkptr bp;
    if (objtree_lookup(&p->io, &od, blkid, 0, &bp, NULL) < 0 || bp_is_hole(&bp)) {
        diag("no block %llu", (unsigned long long)blkid);
        return;
    }
    uint64_t at = p->top_hdr[0].data_start + bp.dva[0].offset + bp.psize / 2;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    uint8_t c = 0;
    if (fd < 0 || pread(fd, &c, 1, (off_t)at) != 1)
        diag("cannot read the pool file");
    c ^= 0x5a;
    if (fd < 0 || pwrite(fd, &c, 1, (off_t)at) != 1)
        diag("cannot write the pool file");
    if (fd >= 0)
        close(fd);
}

/* Uncompressed blocks smaller than their allocation (4K blocks on an
 * ashift-13 pool: asize 8K > psize 4K) are read into a scratch buffer, not
 * straight into the destination; they must still reach it (once returned
 * the caller's buffer untouched as success) and the cache. */
static void padded_blocks(void)
{
    struct berr e = {0};
    const char *path = tmp_path("pad.img");
    const char *pv[] = {path};
    struct bs_pool_opts po = {
        .ashift = 13, .autotrim = true, .compression = BS_COMPRESS_OFF, .checksum = BS_CHECKSUM_XXH3};
    bs_pool *p;
    bs_vol *v = NULL;
    if (bs_pool_create("pad", pv, 1, 256 * MiB, &po, &p, &e) < 0)
        BAIL_OUT("create ashift 13: %s", e.msg);
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = 8 * MiB;
    vp.volblocksize = 4096;
    vp.compression = BS_COMPRESS_OFF;
    ok(bs_vol_create(p, &vp, false, &e) == 0 && bs_vol_open(p, "v", &v, &e) == 0,
       "4K volume, no compression, on an ashift-13 pool: %s", e.msg);
    uint64_t seed = 11;
    random_bytes(model, 2 * MiB, &seed);
    ok(bs_vol_pwrite(v, model, 2 * MiB, 0, 0) == 0 && bs_pool_sync(p, &e) == 0,
       "2 MiB written and synced");
    p = reopen(p, path, &v);
    ok(read_check(v, 0, 2 * MiB, MiB) == 0, "read cold as a stream (1 MiB requests): right data");
    p = reopen(p, path, &v);
    ok(read_check(v, MiB, 64 * 1024, 4096) == 0 && read_check(v, MiB, 64 * 1024, 4096) == 0,
       "read cold in 4K requests (cached), then again from the cache: right data");
    uint8_t part[100];
    ok(bs_vol_pread(v, part, sizeof part, MiB + 1000) == 0 &&
           memcmp(part, model + MiB + 1000, sizeof part) == 0,
       "a partial read of a cached block: right data");
    bs_vol_close(v);
    bs_pool_close(p);
}

int main(void)
{
    struct berr e = {0};
    const char *path = tmp_path("read.img");
    const char *pv[] = {path};
    bs_pool *p;
    bs_vol *v = NULL;
    if (bs_pool_create("r", pv, 1, 512 * MiB, NULL, &p, &e) < 0)
        BAIL_OUT("create: %s", e.msg);
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = VOLSIZE;
    vp.volblocksize = BS;
    ok(bs_vol_create(p, &vp, false, &e) == 0 && bs_vol_open(p, "v", &v, &e) == 0,
       "16K volume of 256 MiB (lz4): %s", e.msg);
    /* [0,4M) random (stored raw), [4M,8M) compressible (lz4, padded to the
     * sector), [8M,9M) never written (holes), [9M,10M) random, 1M far away */
    model = calloc(1, VOLSIZE);
    uint64_t seed = 7;
    random_bytes(model, 4 * MiB, &seed);
    pattern(model + 4 * MiB, 4 * MiB, 4 * MiB, 3);
    random_bytes(model + 9 * MiB, MiB, &seed);
    random_bytes(model + FAR, MiB, &seed);
    ok(bs_vol_pwrite(v, model, 8 * MiB, 0, 0) == 0 &&
           bs_vol_pwrite(v, model + 9 * MiB, MiB, 9 * MiB, 0) == 0 &&
           bs_vol_pwrite(v, model + FAR, MiB, FAR, 0) == 0 && bs_pool_sync(p, &e) == 0,
       "write and sync");

    struct objdesc od = od_of(v);
    ok(lookup_agrees(p, &od, 0, 700) && lookup_agrees(p, &od, FAR / BS - 300, FAR / BS + 100) &&
           lookup_agrees(p, &od, VOLSIZE / BS - 70, VOLSIZE / BS + 5),
       "objtree_lookup_run = objtree_lookup (data, holes, indirect edges, the end)");

    /* the walk keeps this thread's last indirect per level: looking up
     * blocks under the same indirects again asks the block cache nothing */
    struct blkptr one;
    struct bcache_stats s0, s1;
    int same = objtree_lookup(&p->io, &od, 5, 0, &one, NULL) == 0;
    bcache_stats(p->io.cache, &s0);
    for (uint64_t b = 0; b < 200; b++)
        same &= objtree_lookup(&p->io, &od, b, 0, &one, NULL) == 0;
    bcache_stats(p->io.cache, &s1);
    ok(same && s1.hits + s1.misses == s0.hits + s0.misses,
       "200 lookups under the same indirects: %llu cache lookups",
       (unsigned long long)(s1.hits + s1.misses - s0.hits - s0.misses));

    /* cold cache: a stream of 1 MiB reads takes a few reads per MiB, not
     * one per 16K block, and inserts no data block into the cache */
    p = reopen(p, path, &v);
    uint64_t r0 = vdev_reads(p), c0 = cache_entries(p);
    ok(read_check(v, 0, 10 * MiB, MiB) == 0, "10 MiB in 1 MiB requests read back");
    uint64_t nreads = vdev_reads(p) - r0, grown = cache_entries(p) - c0;
    ok(nreads < 10 * 8, "%llu device reads for 576 data blocks", (unsigned long long)nreads);
    ok(grown < 64, "the stream left %llu entries in the cache (indirect blocks only)",
       (unsigned long long)grown);
    /* a read far from the stream: its blocks are cached, and read again
     * they come from the cache */
    c0 = cache_entries(p);
    ok(read_check(v, FAR, MiB, MiB) == 0, "1 MiB far away reads back");
    ok(cache_entries(p) - c0 >= 64, "its 64 blocks entered the cache (%llu)",
       (unsigned long long)(cache_entries(p) - c0));
    r0 = vdev_reads(p);
    ok(read_check(v, FAR, MiB, MiB) == 0 && vdev_reads(p) == r0, "read again: from the cache");

    /* every alignment: partial first and last blocks, runs cut by holes,
     * by the compressed region and by BLK_READ_MAX */
    p = reopen(p, path, &v);
    static const uint64_t reqs[] = {MiB + 5 * 1024, 3 * BS + 512, 10 * MiB, 4096, 2 * MiB - 1};
    int good = 1;
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
        good &= read_check(v, 3 * 1024 + i, 10 * MiB - 4096, reqs[i]) == 0;
    ok(good, "unaligned requests of 5 sizes read back");

    /* dirty blocks amid committed ones (not synced: in the open map) */
    uint8_t w[3 * BS];
    random_bytes(w, sizeof w, &seed);
    memcpy(model + 2 * MiB + BS + 100, w, sizeof w - 200);
    ok(bs_vol_pwrite(v, w, sizeof w - 200, 2 * MiB + BS + 100, 0) == 0, "partial writes");
    memset(model + 5 * MiB, 0, 2 * BS);
    ok(bs_vol_zero(v, 2 * BS, 5 * MiB, 0) == 0, "zero two compressed blocks");
    ok(read_check(v, 0, 10 * MiB, MiB) == 0 && read_check(v, 0, 10 * MiB, 10 * MiB) == 0,
       "dirty, zeroed and committed blocks read back together");
    ok(bs_pool_sync(p, &e) == 0 && read_check(v, 0, 10 * MiB, MiB) == 0, "and after the sync");

    /* corrupt one raw block and one compressed block in the middle of runs */
    uint64_t bad_raw = 10, bad_lz4 = 4 * MiB / BS + 10;
    corrupt_block(p, v, path, bad_raw);
    corrupt_block(p, v, path, bad_lz4);
    p = reopen(p, path, &v);
    struct bs_pool_stats st0, st1;
    bs_pool_stats(p, &st0);
    uint8_t *b = malloc(MiB);
    ok(bs_vol_pread(v, b, MiB, 0) == -EIO, "a 1 MiB read over the corrupt raw block: EIO");
    ok(bs_vol_pread(v, b, MiB, 4 * MiB) == -EIO, "a 1 MiB read over the corrupt lz4 block: EIO");
    ok(bs_vol_pread(v, b, 100, bad_raw * BS + 7) == -EIO, "a partial read of it: EIO");
    bs_pool_stats(p, &st1);
    ok(st1.checksum_errors >= st0.checksum_errors + 2, "checksum errors counted (%llu -> %llu)",
       (unsigned long long)st0.checksum_errors, (unsigned long long)st1.checksum_errors);
    ok(read_check(v, 0, bad_raw * BS, bad_raw * BS) == 0 &&
           read_check(v, (bad_raw + 1) * BS, MiB - (bad_raw + 1) * BS, MiB) == 0 &&
           read_check(v, 4 * MiB, (bad_lz4 - 256) * BS, MiB) == 0 &&
           read_check(v, (bad_lz4 + 1) * BS, 4 * MiB - (bad_lz4 + 1 - 256) * BS, MiB) == 0,
       "the blocks around them read back, in runs");
    free(b);
    bs_vol_close(v);
    bs_pool_close(p);
    padded_blocks();
    free(model);
    tmp_cleanup();
    return done_testing();
}
