/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The allocation map's digest and its rebuild (docs/FORMAT.md 3, 4).
 *
 * A small pool (ashift 9, so ~16 MiB per bitmap chunk and about ten chunks)
 * gets data written over several txgs; then the map on disk is damaged:
 *  (a) the newest slot of a chunk the last map-changing txg wrote: its older
 *      slot is valid but stale (it lacks that txg's allocations);
 *  (b) both slots of a chunk;  (c) both slots of every chunk;
 *  (f) (a) on a pool imported read-only: rebuilt in memory, file untouched;
 *  (g) (b) plus an unreadable indirect block: the map cannot be rebuilt
 *      exactly, so the pool is imported read-only and nothing is written.
 * Import must succeed with the map rebuilt from the trees, bs_pool_check
 * must pass, and after much more writing every earlier block must read back
 * exactly (a stale map would have handed out live sectors).  (d) An intact
 * pool is never rebuilt: after many txgs, re-imports and crash-like
 * abandonment (pool_abandon, torn writes) the digest always matches.
 * First, the pieces: the uberblock fields, alloc_digest against
 * alloc_load_checked, alloc_reset and alloc_mark_allocated. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/le.h"
#include "common/util.h"
#include "store/codec.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 16384u
#define NBLK 3072u /* volume v: 48 MiB */
#define WBLK 1536u /* volume w: 24 MiB */

static const char *img;
#define UNKNOWN UINT32_MAX /* written, not flushed before a crash: old or new */

static uint32_t *tags; /* expected tag of each block of v (0 = zeros) */
static uint64_t seed = 42;
static uint32_t next_tag = 1;

static void fill(uint8_t *b, uint32_t blk, uint32_t tag)
{
    pattern(b, BS, (uint64_t)blk * BS, tag);
    memcpy(b, &tag, sizeof tag);
}

static int write_blocks(bs_vol *v, uint32_t *exp, uint32_t nblk, uint32_t first, uint32_t n,
                        bool random)
{
    uint8_t *b = malloc(BS);
    int r = 0;
    for (uint32_t i = 0; r == 0 && i < n; i++) {
        uint32_t blk = random ? (uint32_t)(xrand(&seed) % nblk) : (first + i) % nblk;
        uint32_t t = next_tag++;
        fill(b, blk, t);
        r = bs_vol_pwrite(v, b, BS, (uint64_t)blk * BS, 0);
        if (r == 0 && exp)
            exp[blk] = t;
    }
    free(b);
    return r < 0 ? r : bs_vol_flush(v);
}

/* Number of blocks of volume `name` whose contents differ from exp[]. */
static uint32_t verify_vol(bs_pool *p, const char *name, const uint32_t *exp, uint32_t nblk)
{
    struct berr e = {0};
    bs_vol *v;
    if (bs_vol_open(p, name, &v, &e) < 0)
        return nblk;
    uint8_t *b = malloc(BS), *x = malloc(BS);
    uint32_t bad = 0;
    for (uint32_t i = 0; i < nblk; i++) {
        if (exp[i] == UNKNOWN)
            continue;
        if (bs_vol_pread(v, b, BS, (uint64_t)i * BS) < 0) {
            bad++;
            continue;
        }
        if (exp[i])
            fill(x, i, exp[i]);
        else
            memset(x, 0, BS);
        bad += memcmp(b, x, BS) != 0;
    }
    bs_vol_close(v);
    free(b);
    free(x);
    return bad;
}

static uint32_t verify(bs_pool *p)
{
    return verify_vol(p, "v", tags, NBLK);
}

static bs_pool *import(void)
{
    struct berr e = {0};
    const char *v[] = {img};
    bs_pool *p = NULL;
    if (bs_pool_import(v, 1, "sm", &p, &e) < 0) {
        diag("import: %s", e.msg);
        return NULL;
    }
    return p;
}

/* A fresh pool: v written whole, then five txgs of random overwrites. */
static bs_pool *make_pool(void)
{
    struct berr e = {0};
    const char *v[] = {img};
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.force = true;
    o.ashift = 9;
    o.compression = BS_COMPRESS_OFF;
    bs_pool *p;
    if (bs_pool_create("sm", v, 1, 160 * MiB, &o, &p, &e) < 0) {
        diag("create: %s", e.msg);
        return NULL;
    }
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = (uint64_t)NBLK * BS;
    vp.volblocksize = BS;
    vp.compression = BS_COMPRESS_OFF;
    bs_vol *vol;
    if (bs_vol_create(p, &vp, false, &e) < 0 || bs_vol_open(p, "v", &vol, &e) < 0) {
        diag("volume: %s", e.msg);
        bs_pool_close(p);
        return NULL;
    }
    memset(tags, 0, NBLK * sizeof *tags);
    int r = 0;
    for (uint32_t k = 0; r == 0 && k < 4; k++)
        r = write_blocks(vol, tags, NBLK, k * (NBLK / 4), NBLK / 4, false);
    for (int k = 0; r == 0 && k < 5; k++)
        r = write_blocks(vol, tags, NBLK, 0, 400, true);
    bs_vol_close(vol);
    if (r < 0) {
        diag("writes failed: %d", r);
        bs_pool_close(p);
        return NULL;
    }
    return p;
}

/* ---- the map on disk ---- */

struct geo {
    struct label_hdr h;
    uint64_t ub_txg;
};

static int read_geo(struct geo *g)
{
    struct berr e = {0};
    struct vdev *v;
    if (vdev_open(img, 0, true, &v, &e) < 0)
        return -1;
    struct uberblock *ubs = NULL;
    int r = label_read_hdr(v, &g->h, &e);
    int n = r == 0 ? label_read_ubs(v, &g->h, &ubs) : -1;
    g->ub_txg = n > 0 ? ubs[0].txg : 0;
    free(ubs);
    vdev_close(v);
    return n > 0 ? 0 : -1;
}

static uint64_t slot_off(const struct geo *g, uint64_t c, int s)
{
    return g->h.bitmap_offset + (2 * c + (uint64_t)s) * g->h.bitmap_slot_size;
}

static uint32_t nbits_of(const struct geo *g, uint64_t c)
{
    uint64_t nsect = (g->h.data_end - g->h.data_start) >> g->h.ashift;
    uint64_t left = nsect - c * g->h.bits_per_chunk;
    return left < g->h.bits_per_chunk ? (uint32_t)left : g->h.bits_per_chunk;
}

/* Decode slot s of chunk c: its txg (0 if not valid) and set-bit count. */
static uint64_t slot_txg(const struct geo *g, uint64_t c, int s, uint32_t *nset)
{
    uint32_t ss = g->h.bitmap_slot_size;
    uint8_t *b = malloc(ss);
    uint64_t t = 0;
    int fd = open(img, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && pread(fd, b, ss, (off_t)slot_off(g, c, s)) == (ssize_t)ss &&
        alloc_chunk_decode(b, ss, ss, c, nbits_of(g, c), &t, NULL) != 0)
        t = 0;
    if (nset)
        *nset = get_le32(b + 28);
    if (fd >= 0)
        close(fd);
    free(b);
    return t;
}

static void smash(const struct geo *g, uint64_t c, int s)
{
    uint8_t junk[32];
    memset(junk, 0xa5, sizeof junk);
    int fd = open(img, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, junk, sizeof junk, (off_t)(slot_off(g, c, s) + 64 + 200)) !=
                      (ssize_t)sizeof junk)
        diag("cannot damage chunk %llu slot %d", (unsigned long long)c, s);
    if (fd >= 0)
        close(fd);
}

/* The chunk whose newest slot was written by the last txg that changed the
 * map and that lost the most allocations to its older slot; -1 if none. */
static int64_t pick_chunk(const struct geo *g, int *newest)
{
    uint64_t last = 0;
    for (uint64_t c = 0; c < g->h.bitmap_chunks; c++)
        for (int s = 0; s < 2; s++)
            last = MAX(last, slot_txg(g, c, s, NULL));
    int64_t best = -1;
    int64_t gain = -1;
    for (uint64_t c = 0; c < g->h.bitmap_chunks; c++) {
        uint32_t n[2];
        uint64_t t[2] = {slot_txg(g, c, 0, &n[0]), slot_txg(g, c, 1, &n[1])};
        int s = t[0] == last ? 0 : t[1] == last ? 1 : -1;
        if (s < 0 || !t[1 - s])
            continue;
        if ((int64_t)n[s] - (int64_t)n[1 - s] > gain) {
            gain = (int64_t)n[s] - (int64_t)n[1 - s];
            best = (int64_t)c;
            *newest = s;
        }
    }
    if (best >= 0)
        diag("chunk %lld: newest slot %d @%llu holds %lld more allocated sectors than the older",
             (long long)best, *newest, (unsigned long long)last, (long long)gain);
    return best;
}

/* ---- after a rebuild ---- */

/* Every chunk has a valid slot stamped with the pool's current txg. */
static bool all_rewritten(bs_pool *p)
{
    struct geo g = {.h = p->top_hdr[0]}; /* read_geo: the pool holds the device's lock */
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    for (uint64_t c = 0; c < g.h.bitmap_chunks; c++)
        if (slot_txg(&g, c, 0, NULL) != st.txg && slot_txg(&g, c, 1, NULL) != st.txg)
            return false;
    return true;
}

/* The imported pool was rebuilt: check it, write much more, verify v. */
static void after_rebuild(bs_pool *p, const char *what)
{
    struct berr e = {0};
    struct alloc_stats as;
    alloc_stats(p->io.top[0].alloc, &as);
    ok(p->map_rebuilt && !p->readonly, "%s: map rebuilt, pool writable", what);
    ok(as.available == as.free, "%s: nothing deferred after the rebuild", what);
    ok(all_rewritten(p), "%s: the next txg rewrote every chunk", what);
    ok(bs_pool_check(p, &e) == 0, "%s: check passes: %s", what, e.msg);
    ok(verify(p) == 0, "%s: every block reads back", what);

    /* much more data: a new volume plus overwrites of half of v */
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "w");
    vp.volsize = (uint64_t)WBLK * BS;
    vp.volblocksize = BS;
    vp.compression = BS_COMPRESS_OFF;
    bs_vol *w = NULL, *v = NULL;
    uint32_t *wtags = calloc(WBLK, sizeof *wtags);
    int r = bs_vol_create(p, &vp, false, &e);
    if (r == 0)
        r = bs_vol_open(p, "w", &w, &e);
    if (r == 0)
        r = bs_vol_open(p, "v", &v, &e);
    for (uint32_t k = 0; r == 0 && k < 6; k++) {
        r = write_blocks(w, wtags, WBLK, k * (WBLK / 6), WBLK / 6, false);
        if (r == 0)
            r = write_blocks(v, tags, NBLK, 0, NBLK / 12, true);
    }
    bs_vol_close(w);
    bs_vol_close(v);
    ok(r == 0, "%s: 24 MiB more written over 12 txgs: %s", what, e.msg);
    uint32_t bad = verify(p), wbad = verify_vol(p, "w", wtags, WBLK);
    ok(bad == 0 && wbad == 0, "%s: no live block was overwritten (%u + %u bad)", what, bad, wbad);
    ok(bs_pool_check(p, &e) == 0, "%s: check passes after the writes: %s", what, e.msg);
    bs_pool_close(p);
    p = import();
    ok(p && !p->map_rebuilt, "%s: the next import finds the map intact", what);
    if (p) {
        ok(verify(p) == 0 && verify_vol(p, "w", wtags, WBLK) == 0 && bs_pool_check(p, &e) == 0,
           "%s: and consistent", what);
        bs_pool_close(p);
    }
    free(wtags);
}

static void test_newest_slot(void)
{
    bs_pool *p = make_pool();
    if (!p)
        return;
    bs_pool_close(p);
    struct geo g;
    int s = 0;
    int64_t c = read_geo(&g) == 0 ? pick_chunk(&g, &s) : -1;
    ok(c >= 0, "a chunk changed by the last txg has two valid slots");
    if (c < 0)
        return;
    smash(&g, (uint64_t)c, s);
    p = import();
    ok(p != NULL, "(a) newest slot damaged: import succeeds");
    if (p)
        after_rebuild(p, "(a) newest slot damaged");
}

static void test_both_slots(void)
{
    bs_pool *p = make_pool();
    if (!p)
        return;
    bs_pool_close(p);
    struct geo g;
    read_geo(&g);
    uint64_t c = g.h.bitmap_chunks / 2;
    smash(&g, c, 0);
    smash(&g, c, 1);
    p = import();
    ok(p != NULL, "(b) both slots of chunk %llu damaged: import succeeds",
       (unsigned long long)c);
    if (p)
        after_rebuild(p, "(b) both slots damaged");
}

static void test_all_chunks(void)
{
    bs_pool *p = make_pool();
    if (!p)
        return;
    bs_pool_close(p);
    struct geo g;
    read_geo(&g);
    diag("%llu chunks", (unsigned long long)g.h.bitmap_chunks);
    for (uint64_t c = 0; c < g.h.bitmap_chunks; c++) {
        smash(&g, c, 0);
        smash(&g, c, 1);
    }
    p = import();
    ok(p != NULL, "(c) every slot of every chunk damaged: import succeeds");
    if (p)
        after_rebuild(p, "(c) all chunks damaged");
}

/* (f): a read-only import (unknown ro_compat feature) rebuilds in memory. */
static void test_readonly(void)
{
    struct berr e = {0};
    bs_pool *p = make_pool();
    if (!p)
        return;
    bs_pool_close(p);
    struct geo g;
    int s = 0;
    int64_t c = read_geo(&g) == 0 ? pick_chunk(&g, &s) : -1;
    struct vdev *v;
    if (c < 0 || vdev_open(img, 0, false, &v, &e) < 0)
        return;
    g.h.features_ro_compat |= 1ULL << 40;
    label_write_hdr(v, &g.h);
    vdev_close(v);
    smash(&g, (uint64_t)c, s);
    struct stat before, after;
    uint64_t t0 = slot_txg(&g, (uint64_t)c, 1 - s, NULL);
    stat(img, &before);
    p = import();
    ok(p && p->readonly && p->map_rebuilt, "(f) read-only import rebuilds the damaged map");
    if (!p)
        return;
    ok(bs_pool_check(p, &e) == 0, "(f) check passes: %s", e.msg);
    ok(verify(p) == 0, "(f) every block reads back");
    bs_pool_close(p);
    stat(img, &after);
    ok(slot_txg(&g, (uint64_t)c, s, NULL) == 0 && slot_txg(&g, (uint64_t)c, 1 - s, NULL) == t0 &&
           after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
           after.st_mtim.tv_nsec == before.st_mtim.tv_nsec,
       "(f) nothing was written to the device");
}

/* (g): the map and a tree are damaged: read-only import. */
static int find_indirect(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    (void)blkid;
    if (bp->level == 1) {
        /* both copies: one bad ditto copy leaves the tree readable */
        ((uint64_t *)opaque)[0] = bp->dva[0].offset;
        ((uint64_t *)opaque)[1] = bp->dva[1].asize ? bp->dva[1].offset : bp->dva[0].offset;
        return 1;
    }
    return 0;
}

static void test_tree_damaged(void)
{
    struct berr e = {0};
    bs_pool *p = make_pool();
    if (!p)
        return;
    uint64_t copies[2] = {UINT64_MAX, UINT64_MAX}, ind;
    for (struct ds *d = p->ds_list; d; d = d->next)
        objtree_walk(&p->io, &d->od, 0, find_indirect, copies);
    ind = copies[0];
    uint64_t data_start = p->top_hdr[0].data_start;
    bs_pool_close(p);
    struct geo g;
    read_geo(&g);
    ok(ind != UINT64_MAX, "(g) found an indirect block of v at %llu", (unsigned long long)ind);
    uint8_t junk[16];
    memset(junk, 0x5a, sizeof junk);
    int fd = open(img, O_WRONLY | O_CLOEXEC);
    for (int c = 0; c < 2; c++)
        if (fd < 0 || pwrite(fd, junk, sizeof junk, (off_t)(data_start + copies[c] + 1000)) != 16)
            diag("cannot damage the indirect block");
    if (fd >= 0)
        close(fd);
    smash(&g, 1, 0);
    smash(&g, 1, 1);
    struct stat before, after;
    stat(img, &before);
    p = import();
    ok(p && p->readonly && p->map_rebuilt, "(g) map and tree damaged: imported read-only");
    if (!p)
        return;
    bs_vol *v;
    ok(bs_vol_open(p, "v", &v, &e) == 0 && bs_vol_pwrite(v, junk, 16, 0, 0) < 0,
       "(g) writes are refused");
    bs_vol_close(v);
    bs_pool_close(p);
    stat(img, &after);
    ok(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
           after.st_mtim.tv_nsec == before.st_mtim.tv_nsec,
       "(g) nothing was written to the device");
}

/* (d): an intact pool is never rebuilt. */
static void test_intact(void)
{
    struct berr e = {0};
    bs_pool *p = make_pool();
    if (!p)
        return;
    int rebuilt = 0, bad = 0, imports = 0;
    for (int round = 0; round < 6; round++) {
        bs_vol *v;
        if (bs_vol_open(p, "v", &v, &e) < 0)
            break;
        for (int k = 0; k < 6; k++) { /* 6 txgs: writes and trims */
            uint32_t blk = (uint32_t)(xrand(&seed) % NBLK);
            if (bs_vol_trim(v, 8 * BS, (uint64_t)(blk & ~7u) * BS, 0) == 0)
                for (uint32_t i = blk & ~7u; i < (blk & ~7u) + 8 && i < NBLK; i++)
                    tags[i] = 0;
            write_blocks(v, tags, NBLK, 0, 100, true);
        }
        /* crash-like: abandon after a flush, or with unflushed writes */
        uint8_t *b = malloc(BS);
        for (int k = 0; round % 2 && k < 30; k++) {
            uint32_t blk = (uint32_t)(xrand(&seed) % NBLK);
            fill(b, blk, next_tag++);
            if (bs_vol_pwrite(v, b, BS, (uint64_t)blk * BS, 0) == 0)
                tags[blk] = UNKNOWN;
        }
        free(b);
        bs_vol_close(v);
        if (round % 3 == 0)
            bs_pool_close(p);
        else
            pool_abandon(p);
        p = import();
        if (!p)
            return;
        imports++;
        rebuilt += p->map_rebuilt;
        bad += verify(p) != 0 || bs_pool_check(p, &e) != 0;
    }
    ok(imports == 6 && rebuilt == 0 && bad == 0,
       "(d) 36 txgs, 6 re-imports (4 after abandonment): %d rebuilt, %d inconsistent", rebuilt,
       bad);

    /* torn writes at many points of a txg, then abandonment */
    int crashes = 0;
    rebuilt = bad = 0;
    for (int torn = 1; p && torn <= 100; torn += 3) {
        bs_vol *v;
        char knob[64];
        snprintf(knob, sizeof knob, "torn_write_after=%d", torn);
        bs_pool_debug(p, knob, &e);
        if (bs_vol_open(p, "v", &v, &e) < 0)
            break;
        uint32_t *scratch = calloc(NBLK, sizeof *scratch);
        write_blocks(v, scratch, NBLK, 0, 40, true);
        write_blocks(v, scratch, NBLK, 0, 40, true);
        free(scratch);
        bs_vol_close(v);
        pool_abandon(p);
        p = import();
        crashes++;
        rebuilt += p && p->map_rebuilt;
        bad += !p || bs_pool_check(p, &e) != 0;
    }
    ok(crashes == 34 && rebuilt == 0 && bad == 0,
       "(d) %d torn-write crashes: %d rebuilt, %d failed the check", crashes, rebuilt, bad);
    bs_pool_close(p);
}

/* ---- the pieces ---- */

static void test_ub_fields(void)
{
    uint8_t b[UB_SIZE];
    struct uberblock u, d;
    memset(&u, 0, sizeof u);
    u.version = BERTH_FORMAT_VERSION;
    u.txg = 9;
    u.pool_guid = 1;
    u.mos_root.flags = BP_FLAG_HOLE;
    u.mos_levels = 1;
    for (int i = 0; i < 16; i++)
        u.map_digest[i] = (uint8_t)(i * 17 + 1);
    u.map_chunks = 11;
    ub_encode(&u, b);
    ok(b[200] == 1 && b[215] == u.map_digest[15] && get_le32(b + 216) == 11,
       "map digest at uberblock bytes 200..215, chunk count at 216");
    ok(ub_decode(b, sizeof b, &d) == 0 && memcmp(d.map_digest, u.map_digest, 16) == 0 &&
           d.map_chunks == 11, "map digest round trip");
    put_le32(b + 216, 0);
    sha256(b, UB_SIZE - 32, b + UB_SIZE - 32);
    ok(ub_decode(b, sizeof b, &d) == -EILSEQ, "a digest without a chunk count is rejected");
    b[216] = 0;
    b[220] = 1;
    sha256(b, UB_SIZE - 32, b + UB_SIZE - 32);
    ok(ub_decode(b, sizeof b, &d) == -EILSEQ, "bytes from 220 stay reserved");
}

static void test_alloc_pieces(void)
{
    struct berr e = {0};
    struct vdev *v;
    struct label_hdr h;
    const char *path = tmp_path("alloc.img");
    memset(&h, 0, sizeof h);
    h.ashift = 12;
    if (vdev_open(path, 512 * MiB, false, &v, &e) < 0 || label_layout(&h, 512 * MiB) < 0)
        return;
    struct alloc *a, *b;
    struct alloc_load_info li;
    uint8_t dg[16];
    uint64_t off, off2;
    alloc_create(v, &h, 1, &a, &e);
    alloc_alloc(a, 64 * 4096, 2, &off);
    alloc_sync(a, 2);
    alloc_txg_done(a, 2, false);
    alloc_alloc(a, 200 * MiB, 3, &off2); /* spans chunks */
    alloc_free(a, off, 4096, 3);
    alloc_sync(a, 3);
    alloc_txg_done(a, 3, false);
    uint32_t n = alloc_digest(a, 3, dg);
    ok(n == h.bitmap_chunks, "alloc_digest covers %u chunks", n);
    ok(alloc_load_checked(v, &h, 3, &b, &li, &e) == 0 && li.nbad == 0 && li.nchunks == n &&
           memcmp(li.digest, dg, 16) == 0, "load at 3: same digest");
    alloc_destroy(b);
    uint8_t d2[16];
    alloc_digest(a, 2, d2);
    ok(alloc_load_checked(v, &h, 2, &b, &li, &e) == 0 && memcmp(li.digest, d2, 16) == 0 &&
           memcmp(d2, dg, 16) != 0, "load at 2: the digest of txg 2");
    alloc_destroy(b);
    /* damage the newest slot of chunk 0: txgs 1, 3 went to slot 0, 2 to slot 1 */
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    vdev_pwrite(v, junk, sizeof junk, h.bitmap_offset + 300);
    ok(alloc_load_checked(v, &h, 3, &b, &li, &e) == 0 && li.nbad == 0 && li.ndamaged == 1 &&
           li.first_damaged == 0 && memcmp(li.digest, dg, 16) != 0,
       "newest slot damaged: an older version loads, the digest differs");
    alloc_destroy(b);
    vdev_pwrite(v, junk, sizeof junk, h.bitmap_offset + h.bitmap_slot_size + 300);
    ok(alloc_load_checked(v, &h, 3, &b, &li, &e) == 0 && li.nbad == 1 && li.first_bad == 0 &&
           alloc_is_allocated(b, 0, 4096) && alloc_alloc(b, 4096, 4, &off) == 0 &&
           off >= (uint64_t)h.bits_per_chunk << h.ashift,
       "no valid copy: loaded as fully allocated, nothing handed out from it");
    alloc_destroy(b);
    b = NULL;
    ok(alloc_load(v, &h, 3, &b, &e) == -EILSEQ,
       "alloc_load still refuses it: %s", e.msg);

    alloc_reset(a);
    struct alloc_stats st;
    alloc_stats(a, &st);
    ok(st.allocated == 0 && st.available == st.size, "reset: everything free, nothing deferred");
    ok(alloc_mark_allocated(a, 8192, 8192) == 0 && alloc_is_allocated(a, 8192, 8192) &&
           !alloc_is_allocated(a, 0, 4096), "mark_allocated");
    ok(alloc_mark_allocated(a, 12288, 8192) == -EEXIST && alloc_is_allocated(a, 8192, 12288),
       "an overlap: -EEXIST, marked anyway");
    ok(alloc_mark_allocated(a, 100, 4096) == -EINVAL &&
           alloc_mark_allocated(a, st.size, 4096) == -EINVAL &&
           alloc_mark_allocated(a, st.size - 4096, 8192) == -EINVAL &&
           alloc_mark_allocated(a, 0, 0) == -EINVAL, "bad ranges: -EINVAL");
    alloc_stats(a, &st);
    ok(st.allocated == 12288 && alloc_alloc(a, 4096, 4, &off) == 0 && off == 0 &&
           alloc_alloc(a, 4096, 4, &off) == 0 && off == 4096 &&
           alloc_alloc(a, 4096, 4, &off) == 0 && off == 20480, "the allocator skips marked blocks");
    ok(alloc_sync(a, 4) == 0 && alloc_load_checked(v, &h, 4, &b, &li, &e) == 0 && li.nbad == 0 &&
           alloc_digest(a, 4, dg) && memcmp(li.digest, dg, 16) == 0,
       "after a reset every chunk is rewritten, the digest matches");
    alloc_stats(b, &st);
    ok(st.allocated == 24576, "and the map holds exactly the marked blocks");
    alloc_destroy(b);
    alloc_destroy(a);
    vdev_close(v);
}

int main(void)
{
    tags = calloc(NBLK, sizeof *tags);
    test_ub_fields();
    test_alloc_pieces();
    img = tmp_path("sm.img");
    test_newest_slot();
    test_both_slots();
    test_all_chunks();
    test_readonly();
    test_tree_damaged();
    test_intact();
    free(tags);
    tmp_cleanup();
    return done_testing();
}
