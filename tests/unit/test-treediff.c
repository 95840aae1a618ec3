/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* treediff over trees built directly with objtree_sync in three txgs: a
 * full walk reports every block exactly once (data or hole) in order; an
 * incremental walk reports exactly the changed blocks, reads only the
 * indirects on changed paths, and applied to the old contents gives the
 * new ones, also across an indirect that became a hole and was refilled;
 * start_blk skips what lies before it; a damaged indirect is -EIO. */
#include <string.h>

#include "common/util.h"
#include "store/pool_impl.h"
#include "store/treediff.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 4096u
#define NBLK 70000u /* four levels: 256^3 > NBLK > 256^2 */

static struct blkio *io;
static struct blk_scratch scratch;

/* Tags per block: 0 = hole, else the pattern the block holds. */
static uint32_t *model[4];

static int build(struct objdesc *od, uint64_t txg, const uint64_t *blk, const uint32_t *tag,
                 size_t n)
{
    struct leaf_update *u = calloc(n, sizeof *u);
    uint8_t b[BS];
    const struct blk_wprops wp = { .type = BP_TYPE_VOL_DATA, .comp = BS_COMPRESS_LZ4,
                                   .cksum = BS_CHECKSUM_XXH3, .zero_is_hole = true };
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        u[i].blkid = blk[i];
        if (tag[i]) {
            pattern(b, BS, blk[i] * BS, tag[i]);
            r = blk_write(io, b, NULL, BS, &wp, txg, &scratch, &u[i].bp);
        } else {
            bp_make_hole(&u[i].bp, txg, 0, BP_TYPE_VOL_DATA);
        }
    }
    const struct objtree_wctx w = { .io = io, .txg = txg, .cksum = BS_CHECKSUM_XXH3,
                                    .dtype = BP_TYPE_VOL_DATA, .s = &scratch };
    if (r == 0)
        r = objtree_sync(&w, od, u, n, NBLK);
    free(u);
    return r;
}

/* What a walk reported, checked as it comes. */
struct seen {
    uint32_t *apply;    /* model being updated (may be NULL) */
    const uint32_t *want; /* the tree's contents */
    uint64_t next;      /* every event must start at or after this */
    uint64_t data, holes, events;
    bool order_ok, data_ok;
    int stop_at;        /* return this from the data callback (0: go on) */
};

static int on_data(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct seen *s = opaque;
    struct cbuf *c;
    uint8_t b[BS];
    s->order_ok &= blkid >= s->next;
    s->next = blkid + 1;
    s->data++;
    s->events++;
    if (blk_read(io, bp, 0, &c) < 0) {
        s->data_ok = false;
        return 0;
    }
    pattern(b, BS, blkid * BS, s->want[blkid]);
    s->data_ok &= s->want[blkid] != 0 && memcmp(c->data, b, BS) == 0;
    cbuf_unref(c);
    if (s->apply)
        s->apply[blkid] = s->want[blkid];
    return s->stop_at;
}

static int on_hole(uint64_t blkid, uint64_t count, void *opaque)
{
    struct seen *s = opaque;
    s->order_ok &= blkid >= s->next && count > 0 && blkid + count <= NBLK;
    s->next = blkid + count;
    s->holes += count;
    s->events++;
    for (uint64_t b = blkid; b < blkid + count && b < NBLK; b++) {
        s->data_ok &= s->want[b] == 0; /* reported holes are holes now */
        if (s->apply)
            s->apply[b] = 0;
    }
    return 0;
}

static const struct treediff_ops ops = { .data = on_data, .hole = on_hole };

static struct seen walk(const struct objdesc *od, uint64_t min, uint64_t start, int want,
                        uint32_t *apply, struct treediff_stats *st)
{
    struct seen s = { .apply = apply, .want = model[want], .next = start, .order_ok = true,
                      .data_ok = true };
    int r = treediff(io, od, min, start, &ops, &s, st);
    if (r < 0)
        s.order_ok = false;
    return s;
}

static size_t count_data(const uint32_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i < NBLK; i++)
        n += m[i] != 0;
    return n;
}

int main(void)
{
    struct berr e = {0};
    const char *path = tmp_path("treediff.img");
    const char *pv[] = { path };
    bs_pool *p;
    ok(bs_pool_create("t", pv, 1, 256 * MiB, NULL, &p, &e) == 0, "create: %s", e.msg);
    io = &p->io;
    blk_scratch_init(&scratch, BS, io->ashift);
    for (int i = 0; i < 4; i++)
        model[i] = calloc(NBLK, sizeof(uint32_t));

    /* txg 100: blocks 0..9, 300, 65541, 69999 */
    struct objdesc od;
    objdesc_init(&od, 12, NBLK);
    uint64_t b1[13];
    uint32_t t1[13];
    for (int i = 0; i < 10; i++)
        b1[i] = (uint64_t)i, t1[i] = 1;
    b1[10] = 300, b1[11] = 65541, b1[12] = 69999;
    t1[10] = t1[11] = t1[12] = 1;
    ok(build(&od, 100, b1, t1, 13) == 0 && od.levels == 4, "txg 100 tree, 4 levels");
    struct objdesc od1 = od;
    for (int i = 0; i < 13; i++)
        model[1][b1[i]] = 1;

    /* txg 200: overwrite 5, zero 300 (its indirect becomes a hole), write 66000 */
    const uint64_t b2[] = { 5, 300, 66000 };
    const uint32_t t2[] = { 2, 0, 2 };
    ok(build(&od, 200, b2, t2, 3) == 0, "txg 200 changes");
    struct objdesc od2 = od;
    memcpy(model[2], model[1], NBLK * sizeof(uint32_t));
    model[2][5] = 2, model[2][300] = 0, model[2][66000] = 2;

    /* txg 300: write 260, refilling the indirect that became a hole */
    const uint64_t b3[] = { 260 };
    const uint32_t t3[] = { 3 };
    ok(build(&od, 300, b3, t3, 1) == 0, "txg 300 refills the hole indirect");
    struct objdesc od3 = od;
    memcpy(model[3], model[2], NBLK * sizeof(uint32_t));
    model[3][260] = 3;

    /* full walks: every block once, data where data is */
    struct treediff_stats full;
    struct seen s = walk(&od1, 0, 0, 1, NULL, &full);
    ok(s.order_ok && s.data_ok && s.data == 13 && s.data + s.holes == NBLK && s.next == NBLK,
       "full walk of txg 100: 13 data + %llu hole blocks = every block, in order",
       (unsigned long long)s.holes);
    /* root, two level-2 and four level-1 indirects */
    ok(full.data_blocks == 13 && full.ind_blocks == 7, "full walk read %llu indirects",
       (unsigned long long)full.ind_blocks);
    s = walk(&od3, 0, 0, 3, NULL, NULL);
    ok(s.order_ok && s.data_ok && s.data == count_data(model[3]) && s.data + s.holes == NBLK,
       "full walk of txg 300 covers every block");

    /* incremental 100 -> 200 */
    struct treediff_stats inc;
    memcpy(model[0], model[1], NBLK * sizeof(uint32_t));
    s = walk(&od2, 100, 0, 2, model[0], &inc);
    ok(s.order_ok && s.data_ok && s.data == 2, "100 -> 200: 2 data blocks (5, 66000)");
    ok(s.holes >= 1 && model[0][300] == 0, "100 -> 200: the zeroed block is reported as hole");
    ok(memcmp(model[0], model[2], NBLK * sizeof(uint32_t)) == 0,
       "txg 100 + diff = txg 200");
    /* root, both level-2, the level-1 over 0..255 and over 66000; the ones
     * over 256..511 (now a hole) and 65536.., 69888.. (unchanged) are not */
    ok(inc.ind_blocks == 5,
       "only indirects on changed paths read (%llu of %llu, %llu bytes)",
       (unsigned long long)inc.ind_blocks, (unsigned long long)full.ind_blocks,
       (unsigned long long)inc.ind_bytes);

    /* incremental 200 -> 300: the refilled indirect's siblings are
     * zeroed pointers; they must come out as holes */
    memcpy(model[0], model[2], NBLK * sizeof(uint32_t));
    s = walk(&od3, 200, 0, 3, model[0], NULL);
    ok(s.order_ok && s.data_ok && s.data == 1, "200 -> 300: 1 data block");
    ok(memcmp(model[0], model[3], NBLK * sizeof(uint32_t)) == 0, "txg 200 + diff = txg 300");
    /* 100 -> 300 across the hole and its refill: block 300 was data at 100 */
    memcpy(model[0], model[1], NBLK * sizeof(uint32_t));
    s = walk(&od3, 100, 0, 3, model[0], NULL);
    ok(s.order_ok && s.data_ok && s.data == 3, "100 -> 300: 3 data blocks");
    ok(memcmp(model[0], model[3], NBLK * sizeof(uint32_t)) == 0 && model[0][300] == 0,
       "txg 100 + diff = txg 300 (block 300 freed through the refilled indirect)");
    /* nothing changed */
    s = walk(&od3, 300, 0, 3, NULL, &inc);
    ok(s.events == 0 && inc.ind_blocks == 0, "300 -> 300: nothing reported, nothing read");

    /* start_blk: nothing before it, everything after it */
    s = walk(&od3, 0, 261, 3, NULL, NULL);
    size_t after = 0;
    for (size_t b = 261; b < NBLK; b++)
        after += model[3][b] != 0;
    ok(s.order_ok && s.data_ok && s.data == after && s.data + s.holes == NBLK - 261,
       "resume at 261: %llu data blocks, none before", (unsigned long long)s.data);
    s = walk(&od3, 0, 5, 3, NULL, NULL);
    ok(s.order_ok && s.data + s.holes == NBLK - 5, "resume inside a data run");

    /* a callback's value stops the walk */
    struct seen st = { .want = model[3], .order_ok = true, .data_ok = true, .stop_at = 7 };
    ok(treediff(io, &od3, 0, 0, &ops, &st, NULL) == 7 && st.data == 1,
       "a callback's non-zero return stops the walk");

    /* damaged indirect: EIO, not a wrong answer */
    struct objdesc bad = od3;
    bad.root.checksum[3] ^= 0x40;
    bcache_remove(io->cache, io->cache_id, bad.root.dva[0].offset, bad.root.birth);
    s = walk(&bad, 0, 0, 3, NULL, NULL);
    ok(!s.order_ok && s.events == 0, "an indirect that fails its checksum gives -EIO");

    /* a one-level tree: the root is the data block */
    objdesc_init(&od, 12, 1);
    uint32_t *m = model[3];
    memset(m, 0, NBLK * sizeof(uint32_t));
    m[0] = 9;
    /* build() resizes to NBLK, so write the single block by hand */
    struct leaf_update u = { .blkid = 0 };
    uint8_t b[BS];
    pattern(b, BS, 0, 9);
    const struct blk_wprops wp = { .type = BP_TYPE_VOL_DATA, .comp = BS_COMPRESS_LZ4,
                                   .cksum = BS_CHECKSUM_XXH3, .zero_is_hole = true };
    blk_write(io, b, NULL, BS, &wp, 400, &scratch, &u.bp);
    const struct objtree_wctx w = { .io = io, .txg = 400, .cksum = BS_CHECKSUM_XXH3,
                                    .dtype = BP_TYPE_VOL_DATA, .s = &scratch };
    ok(objtree_sync(&w, &od, &u, 1, 1) == 0 && od.levels == 1, "one-block tree");
    s = walk(&od, 0, 0, 3, NULL, NULL);
    ok(s.order_ok && s.data_ok && s.data == 1 && s.holes == 0, "one-block tree walked");
    s = walk(&od, 400, 0, 3, NULL, NULL);
    ok(s.events == 0, "one-block tree unchanged since 400");

    for (int i = 0; i < 4; i++)
        free(model[i]);
    blk_scratch_free(&scratch);
    /* the trees above were never committed: drop the pool as a crash would */
    pool_abandon(p);
    tmp_cleanup();
    return done_testing();
}
