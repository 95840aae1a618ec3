/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Block trees through volumes with 4K blocks: growth across levels (1 -> 2
 * -> 3 -> 4, exercising the in-memory "virtual" upper nodes), shrink back,
 * holes collapsing whole indirect subtrees, exact accounting (checked by
 * bs_pool_check), fill counts and lookups of holes high in the tree; the
 * patched rewrite of level-1 indirects (objtree.c patch_level1) against a
 * model over several txgs of scattered writes, zeroes and an import. */
#include <string.h>

#include "common/util.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 4096u

static int write_tag(bs_vol *v, uint64_t blk, uint32_t tag)
{
    uint8_t b[BS];
    pattern(b, BS, blk * BS, tag);
    return bs_vol_pwrite(v, b, BS, blk * BS, 0);
}

static int check_tag(bs_vol *v, uint64_t blk, uint32_t tag)
{
    uint8_t b[BS], w[BS];
    pattern(w, BS, blk * BS, tag);
    if (bs_vol_pread(v, b, BS, blk * BS) < 0)
        return 0;
    return tag ? memcmp(b, w, BS) == 0 : buf_is_zero(b, BS);
}

static struct objdesc od_of(bs_vol *v)
{
    pthread_mutex_lock(&v->ds->lock);
    struct objdesc od = v->ds->od;
    pthread_mutex_unlock(&v->ds->lock);
    return od;
}

int main(void)
{
    struct berr e = {0};
    const char *path = tmp_path("tree.img");
    const char *pv[] = { path };
    bs_pool *p;
    ok(bs_pool_create("t", pv, 1, 512 * MiB, NULL, &p, &e) == 0, "create: %s", e.msg);
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = BS; /* one block: the root is the data block */
    vp.volblocksize = BS;
    ok(bs_vol_create(p, &vp, false, &e) == 0, "one-block volume");
    bs_vol *v;
    bs_vol_open(p, "v", &v, &e);
    ok(write_tag(v, 0, 1) == 0 && bs_pool_sync(p, &e) == 0, "write block 0");
    struct objdesc od = od_of(v);
    ok(od.levels == 1 && od.root.level == 0 && od.root.fill == 1, "levels 1: root is data");
    static const uint64_t sizes[] = { 200, 256, 257, 70000, 65536 * 256 + 1 };
    static const int levels[] = { 2, 2, 3, 4, 5 };
    for (size_t i = 0; i < 5; i++) {
        uint64_t n = sizes[i];
        ok(bs_vol_resize(p, "v", n * BS, false, &e) == 0, "grow to %llu blocks: %s",
           (unsigned long long)n, e.msg);
        ok(write_tag(v, n - 1, (uint32_t)(10 + i)) == 0 && bs_pool_sync(p, &e) == 0,
           "write the last block");
        od = od_of(v);
        ok(od.levels == levels[i] && od.root.fill == i + 2,
           "levels %d, fill %llu", od.levels, (unsigned long long)od.root.fill);
        ok(bs_pool_check(p, &e) == 0, "check: %s", e.msg);
        int good = check_tag(v, 0, 1);
        for (size_t k = 0; k <= i; k++)
            good &= check_tag(v, sizes[k] - 1, (uint32_t)(10 + k));
        ok(good, "every block reads back");
    }
    /* reopen: the grown tree is on disk */
    bs_vol_close(v);
    bs_pool_close(p);
    ok(bs_pool_import(pv, 1, NULL, &p, &e) == 0, "import");
    bs_vol_open(p, "v", &v, &e);
    ok(check_tag(v, 0, 1) && check_tag(v, 69999, 13) && check_tag(v, 65536 * 256, 14),
       "grown tree survives import");
    /* holes collapse subtrees */
    struct bs_vol_props got;
    bs_vol_get(p, "v", &got, &e);
    uint64_t before = got.used;
    ok(bs_vol_trim(v, BS, 65536ULL * 256 * BS, 0) == 0 && bs_pool_sync(p, &e) == 0,
       "trim the far block");
    bs_vol_get(p, "v", &got, &e);
    ok(got.used < before - BS, "its data and indirect chain are freed (%llu -> %llu)",
       (unsigned long long)before, (unsigned long long)got.used);
    ok(bs_pool_check(p, &e) == 0, "check: %s", e.msg);
    /* shrink back to a few blocks */
    ok(bs_vol_resize(p, "v", 100 * BS, true, &e) == 0, "shrink to 100 blocks");
    od = od_of(v);
    ok(od.root.fill == 1 && od.nblocks == 100, "only block 0 remains (fill %llu)",
       (unsigned long long)od.root.fill);
    bs_vol_get(p, "v", &got, &e);
    ok(got.logicalused == BS, "logical = one block");
    ok(bs_pool_check(p, &e) == 0, "check after shrink: %s", e.msg);
    ok(check_tag(v, 0, 1) && check_tag(v, 99, 0), "contents after shrink");
    /* fill a whole indirect, then zero it: it becomes a hole */
    uint8_t *big = calloc(1, 100 * BS);
    for (uint64_t b = 0; b < 100; b++)
        pattern(big + b * BS, BS, b * BS, 20);
    ok(bs_vol_pwrite(v, big, 100 * BS, 0, 0) == 0 && bs_pool_sync(p, &e) == 0, "fill 100");
    od = od_of(v);
    ok(od.root.fill == 100, "fill 100");
    ok(bs_vol_zero(v, 100 * BS, 0, 0) == 0 && bs_pool_sync(p, &e) == 0, "zero all");
    od = od_of(v);
    ok(bp_is_hole(&od.root) && od.allocated == 0 && od.logical == 0,
       "root is a hole, nothing allocated");
    ok(bs_pool_check(p, &e) == 0, "check: %s", e.msg);
    free(big);
    bs_vol_close(v);

    /* level-1 indirects patched in place: 1024 blocks = 4 of them under a
     * level-2 root; each txg changes a few entries of some of them */
    snprintf(vp.name, sizeof vp.name, "w");
    vp.volsize = 1024 * BS;
    ok(bs_vol_create(p, &vp, false, &e) == 0, "1024-block volume");
    bs_vol_open(p, "w", &v, &e);
    static uint32_t model[1024];
    big = calloc(1, 1024 * BS);
    for (uint64_t b = 0; b < 1024; b++) {
        model[b] = 30;
        pattern(big + b * BS, BS, b * BS, 30);
    }
    ok(bs_vol_pwrite(v, big, 1024 * BS, 0, 0) == 0 && bs_pool_sync(p, &e) == 0, "fill 1024");
    free(big);
    uint64_t rng = 12345;
    int bad = 0, io = 0;
    for (int round = 0; round < 6; round++) {
        for (int k = 0; k < 40; k++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t b = (rng >> 33) % 1024;
            /* a third become holes, the rest new data (holes refilled too) */
            uint32_t tag = (rng >> 20) % 3 == 0 ? 0 : (uint32_t)(31 + round);
            io |= tag ? write_tag(v, b, tag) : bs_vol_zero(v, BS, b * BS, 0);
            model[b] = tag;
        }
        io |= bs_pool_sync(p, &e);
        uint64_t fill = 0;
        for (uint64_t b = 0; b < 1024; b++) {
            fill += model[b] != 0;
            bad += !check_tag(v, b, model[b]);
        }
        od = od_of(v);
        bad += od.root.fill != fill || od.levels != 3;
        bad += bs_pool_check(p, &e) != 0;
    }
    ok(io == 0 && bad == 0, "6 txgs of scattered writes and zeroes: contents, fill, check (%d bad)",
       bad);
    /* a hole written over a hole changes nothing: no indirect is rewritten */
    ok(bs_vol_zero(v, 256 * BS, 256 * BS, 0) == 0 && bs_pool_sync(p, &e) == 0, "zero blocks 256-511");
    od = od_of(v);
    uint64_t fill = 0;
    for (uint64_t b = 0; b < 1024; b++) {
        if (b >= 256 && b < 512)
            model[b] = 0;
        fill += model[b] != 0;
    }
    ok(od.root.fill == fill, "the zeroed indirect became a hole (fill %llu, want %llu)",
       (unsigned long long)od.root.fill, (unsigned long long)fill);
    struct blkptr l1;
    ok(objtree_lookup(&p->io, &od, 300, 0, &l1, NULL) == 0 && bp_is_hole(&l1), "block 300 is a hole");
    ok(bs_pool_check(p, &e) == 0, "check: %s", e.msg);
    uint64_t birth = od.root.birth;
    ok(bs_vol_zero(v, BS, 300 * BS, 0) == 0 && bs_pool_sync(p, &e) == 0, "zero a hole again");
    od = od_of(v);
    ok(od.root.birth == birth, "the tree was not rewritten");
    bs_vol_close(v);
    bs_pool_close(p);
    ok(bs_pool_import(pv, 1, NULL, &p, &e) == 0, "import");
    bs_vol_open(p, "w", &v, &e);
    bad = 0;
    for (uint64_t b = 0; b < 1024; b++)
        bad += !check_tag(v, b, model[b]);
    ok(bad == 0 && bs_pool_check(p, &e) == 0, "patched trees survive import (%d bad)", bad);
    bs_vol_close(v);
    bs_pool_close(p);
    tmp_cleanup();
    return done_testing();
}
