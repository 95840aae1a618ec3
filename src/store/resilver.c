/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Resilver: fill leaves that lack blocks (new after replace/attach, back
 * after an outage) with exactly the allocated blocks they miss.
 *
 * The walk is the scrub's (scrub.c, SCAN_RESILVER): the blocks of the
 * committed txg, frees held, pruned to the subtrees born after the targets'
 * DTL starts; this file decides per block what to copy and where.  A block
 * is read verified from a copy outside the targets (normal reads skip a
 * leaf whose DTL holds the block's birth) and its stored bytes written to
 * each target that lacks it: a mirror member gets the whole allocation, a
 * raidz member its column(s) recomputed from the data (vdev_resilver_write).
 *
 * Blocks born after the DTLs (hi) were written to the targets by their own
 * txgs; blocks born before them (lo) were on them all along.  So when a pass
 * over the committed txg has ended, and the targets are flushed, every
 * allocated block is on them: the DTLs and stale marks are cleared and the
 * labels rewritten (resilver_done).  A target that failed or came back
 * again (stale_gen changed) meanwhile keeps its DTL and is resilvered by the
 * next pass. */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "store/resilver.h"

unsigned resilver_targets(bs_pool *p, struct rsv_target *tg)
{
    memset(tg, 0, sizeof *tg);
    unsigned n = 0;
    for (unsigned t = 0; t < atomic_load(&p->io.ntops); t++) {
        struct vdev *top = p->io.top[t].vd;
        for (unsigned i = 0; i < vdev_nleaves(top) && i < 32; i++) {
            struct vdev *l = vdev_leaf(top, i);
            uint64_t hi = atomic_load(&l->dtl_hi), lo = atomic_load(&l->dtl_lo);
            if (!hi || !vdev_usable(l) || top->kind == VDEV_KIND_LEAF)
                continue;
            tg->mask[t] |= 1u << i;
            tg->gen[t][i] = atomic_load(&l->stale_gen);
            tg->lo = n ? MIN(tg->lo, lo) : lo;
            tg->hi = MAX(tg->hi, hi);
            n++;
        }
    }
    return n;
}

int resilver_block(bs_pool *p, const struct rsv_target *tg, const struct blkptr *bp,
                   uint64_t *copied)
{
    if (bp_is_hole(bp) || bp->birth < tg->lo || bp->birth > tg->hi || !bp->dva[0].asize)
        return 0;
    /* the block lives on the top its DVA names: its targets there */
    unsigned t = bp->dva[0].vdev;
    if (t >= atomic_load(&p->io.ntops) || !tg->mask[t])
        return 0;
    struct vdev *top = p->io.top[t].vd;
    uint32_t mask = 0;
    for (unsigned i = 0; i < vdev_nleaves(top) && i < 32; i++)
        if ((tg->mask[t] >> i & 1) && vdev_dtl_has(vdev_leaf(top, i), bp->birth))
            mask |= 1u << i;
    if (!mask)
        return 0;
    _cleanup_free_ uint8_t *buf = malloc(bp->psize ? bp->psize : 1);
    if (!buf)
        return -ENOMEM;
    int r = blk_read_raw(&p->io, bp, buf, bp->psize);
    if (r < 0)
        return r;
    return vdev_resilver_write(top, buf, bp->psize, bp->dva[0].asize, bp->dva[0].offset, mask,
                               copied);
}

int resilver_flush(bs_pool *p, const struct rsv_target *tg)
{
    int ret = 0;
    for (unsigned t = 0; t < atomic_load(&p->io.ntops); t++) {
        struct vdev *top = p->io.top[t].vd;
        for (unsigned i = 0; i < vdev_nleaves(top) && i < 32; i++) {
            struct vdev *l = vdev_leaf(top, i);
            if ((tg->mask[t] >> i & 1) && vdev_usable(l) && vdev_flush(l) < 0)
                ret = -EIO;
        }
    }
    return ret;
}

void resilver_done(bs_pool *p, const struct rsv_target *tg)
{
    bool cleared = false;
    for (unsigned t = 0; t < atomic_load(&p->io.ntops); t++) {
        struct vdev *top = p->io.top[t].vd;
        for (unsigned i = 0; i < vdev_nleaves(top) && i < 32; i++) {
            struct vdev *l = vdev_leaf(top, i);
            if (!(tg->mask[t] >> i & 1) || !vdev_usable(l) ||
                atomic_load(&l->stale_gen) != tg->gen[t][i])
                continue;
            dtl_clear(l);
            atomic_store(&l->stale, false);
            cleared = true;
        }
    }
    pool_tops_state(p);
    p->top_hdr[0].rsv_valid = 0;
    if (cleared && !p->readonly)
        (void)pool_write_labels(p, false);
}

int resilver_request(bs_pool *p, const struct bs_scrub_pos *from)
{
    struct berr err = {0};
    int r = scan_resilver(p, from, &err);
    if (r < 0)
        blog_warn("pool '%s': cannot start the resilver: %s", p->name, err.msg);
    return r;
}
