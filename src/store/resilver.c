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
 * raidz member its column(s) recomputed from the data (vdev_resilver_write,
 * or for a run of adjacent blocks vdev_resilver_write_blocks).  Blocks are
 * copied in batches, several at once ("batches" below); the walk's
 * position is saved only past blocks whose batch has run.
 *
 * Blocks born after the DTLs (hi) were written to the targets by their own
 * txgs; blocks born before them (lo) were on them all along.  So when a pass
 * over the committed txg has ended, and the targets are flushed, every
 * allocated block is on them: the DTLs and stale marks are cleared and the
 * labels rewritten (resilver_done).  A target that failed or came back
 * again (stale_gen changed) meanwhile keeps its DTL and is resilvered by the
 * next pass: the comparison of stale_gen and the clear are one step under
 * the pool's dtl_lock, as every growth of a DTL is (dtl.c top), so a miss
 * the sync thread notes while the pass ends is never wiped. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "store/resilver.h"
#include "store/workpool.h"

unsigned resilver_targets(bs_pool *p, struct rsv_target *tg)
{
    memset(tg, 0, sizeof *tg);
    unsigned n = 0;
    for (unsigned t = 0; t < atomic_load(&p->io.ntops); t++) {
        struct vdev *top = p->io.top[t].vd;
        for (unsigned i = 0; i < vdev_nleaves(top) && i < 32; i++) {
            struct vdev *l = vdev_leaf(top, i);
            uint64_t lo, hi;
            /* one snapshot: a DTL without the growth its generation counts
             * would let resilver_done clear a txg this pass never copied */
            uint32_t gen = dtl_snapshot(p, l, &lo, &hi);
            if (!hi || !vdev_usable(l) || top->kind == VDEV_KIND_LEAF)
                continue;
            tg->mask[t] |= 1u << i;
            tg->gen[t][i] = gen;
            tg->lo = n ? MIN(tg->lo, lo) : lo;
            tg->hi = MAX(tg->hi, hi);
            n++;
        }
    }
    return n;
}

/* Which targets lack bp (bit i: leaf i of its top); 0 if none. */
static uint32_t lacking(bs_pool *p, const struct rsv_target *tg, const struct blkptr *bp)
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
    return mask;
}

/* Read bp verified from a copy outside the targets, write it to them. */
static int copy_block(bs_pool *p, const struct blkptr *bp, uint32_t mask, uint64_t *copied)
{
    struct vdev *top = p->io.top[bp->dva[0].vdev].vd;
    _cleanup_free_ uint8_t *buf = malloc(bp->psize ? bp->psize : 1);
    if (!buf)
        return -ENOMEM;
    int r = blk_read_raw(&p->io, bp, buf, bp->psize);
    if (r < 0)
        return r;
    return vdev_resilver_write(top, buf, bp->psize, bp->dva[0].asize, bp->dva[0].offset, mask,
                               copied);
}

/* ---- batches ----
 *
 * One block at a time, the resilver waited for each read and then for each
 * write.  A batch collects up to RSV_BATCH_BLOCKS blocks (or RSV_BATCH_BYTES
 * allocated) the walk visits, sorted by top and offset (the walk's order is
 * the tree's, the device's is this one), starts read-ahead of all of them,
 * and copies them with RSV_THREADS threads (the caller's and the helpers of
 * a worker pool, workpool.c) that take the next job in that order: reads
 * and writes of several blocks are in flight at once.  The helpers live as
 * long as the batch (the pool's scan state, until the pool closes); they
 * are started by the first batch with more than one job, so a pool that
 * never resilvers has none, and sleep between batches.  A job is a block, or a run of adjacent blocks
 * missing on the same targets, written to each with one write (a new
 * device gets a few large writes instead of one per block).  A batch
 * is always run to its end before the walk's position may be recorded past
 * its blocks (scrub.c runs it before it saves the position and after each
 * unit). */
#define RSV_BATCH_BLOCKS 256
#define RSV_BATCH_BYTES (32u << 20)
#define RSV_THREADS 4
#define RSV_RUN_BLOCKS 64
#define RSV_RUN_BYTES (1u << 20)

struct rsv_item {
    struct blkptr bp;
    uint32_t mask;
    const char *name; /* the unit's, for an error */
};

struct rsv_batch {
    struct rsv_item it[RSV_BATCH_BLOCKS];
    unsigned n;
    uint64_t bytes;
    /* while running: the copy jobs, runs of items it[first .. first+n) */
    unsigned run_first[RSV_BATCH_BLOCKS], run_n[RSV_BATCH_BLOCKS], nruns;
    bs_pool *p;
    _Atomic uint64_t copied;
    _Atomic unsigned data; /* data blocks copied */
    pthread_mutex_t fail_lock;
    rsv_fail_fn fail;
    void *fctx;
    struct wpool *wp; /* RSV_THREADS - 1 helpers, once a batch needed them */
    bool wp_failed;   /* could not start them: the scan thread copies alone */
};

struct rsv_batch *rsv_batch_new(void)
{
    struct rsv_batch *b = calloc(1, sizeof *b);
    if (b)
        pthread_mutex_init(&b->fail_lock, NULL);
    return b;
}

void rsv_batch_free(struct rsv_batch *b)
{
    if (!b)
        return;
    wp_free(b->wp);
    pthread_mutex_destroy(&b->fail_lock);
    free(b);
}

bool rsv_batch_add(bs_pool *p, struct rsv_batch *b, const struct rsv_target *tg,
                   const struct blkptr *bp, const char *name)
{
    uint32_t mask = lacking(p, tg, bp);
    if (mask) {
        struct rsv_item *it = &b->it[b->n++];
        it->bp = *bp;
        it->mask = mask;
        it->name = name;
        b->bytes += bp->dva[0].asize;
        if (bp_ncopies(bp) == 2) {
            /* the ditto copy is an item of its own: the same pointer with
             * its copies swapped, so that the copy is written at DVA 1's
             * place (same top, same size) from bytes read and verified
             * from DVA 1 or, failing that, DVA 0 */
            struct rsv_item *d = &b->it[b->n++];
            *d = *it;
            d->bp.dva[0] = bp->dva[1];
            d->bp.dva[1] = bp->dva[0];
            b->bytes += bp->dva[1].asize;
        }
    }
    /* full one item early: a block may add two */
    return b->n >= RSV_BATCH_BLOCKS - 1 || b->bytes >= RSV_BATCH_BYTES;
}

static int item_order(const void *x, const void *y)
{
    const struct dva *a = &((const struct rsv_item *)x)->bp.dva[0];
    const struct dva *c = &((const struct rsv_item *)y)->bp.dva[0];
    if (a->vdev != c->vdev)
        return a->vdev < c->vdev ? -1 : 1;
    return a->offset < c->offset ? -1 : a->offset > c->offset;
}

static void item_done(struct rsv_batch *b, const struct rsv_item *it, int r, bool wrote)
{
    if (r == 0 && wrote && it->bp.level == 0)
        atomic_fetch_add(&b->data, 1);
    if (r < 0 && b->fail) {
        pthread_mutex_lock(&b->fail_lock);
        b->fail(b->fctx, it->name, &it->bp);
        pthread_mutex_unlock(&b->fail_lock);
    }
}

/* Adjacent blocks lacking on the same targets: each read verified into its
 * place in one zeroed buffer (its allocation's place), then each target
 * gets its part of all of them in one write (vdev_resilver_write_blocks:
 * a mirror's copies, a raidz's columns); if a block cannot be read, the
 * others are written one by one. */
static void copy_run(struct rsv_batch *b, const struct rsv_item *it, unsigned n)
{
    bs_pool *p = b->p;
    struct vdev *top = p->io.top[it[0].bp.dva[0].vdev].vd;
    size_t sector = (size_t)1 << top->ashift;
    uint64_t off0 = it[0].bp.dva[0].offset;
    const struct dva *last = &it[n - 1].bp.dva[0];
    size_t total = (size_t)(last->offset + last->asize - off0);
    int r[RSV_RUN_BLOCKS];
    struct iovec iov[RSV_RUN_BLOCKS] = {{0}};
    uint8_t *buf = calloc(1, total);
    bool all = buf != NULL;
    for (unsigned k = 0; k < n; k++) {
        const struct blkptr *bp = &it[k].bp;
        uint8_t *at = buf ? buf + (bp->dva[0].offset - off0) : NULL;
        r[k] = at ? blk_read_raw(&p->io, bp, at, bp->psize) : -ENOMEM;
        iov[k].iov_base = at;
        iov[k].iov_len = top->kind == VDEV_KIND_RAIDZ ? ROUND_UP((size_t)bp->psize, sector)
                                                      : bp->dva[0].asize;
        all &= r[k] == 0;
    }
    uint64_t copied = 0;
    if (all) {
        int w = vdev_resilver_write_blocks(top, iov, (int)n, off0, it[0].mask, &copied);
        for (unsigned k = 0; k < n; k++)
            item_done(b, &it[k], w, copied > 0);
    } else {
        for (unsigned k = 0; k < n; k++) {
            uint64_t c = 0;
            if (r[k] == 0)
                r[k] = vdev_resilver_write_blocks(top, &iov[k], 1, it[k].bp.dva[0].offset,
                                                  it[k].mask, &c);
            copied += c;
            item_done(b, &it[k], r[k], c > 0);
        }
    }
    atomic_fetch_add(&b->copied, copied);
    free(buf);
}

/* Copy job i of the batch (a worker pool job: no scratch needed). */
static void copy_job(void *arg, size_t i, struct blk_scratch *s)
{
    (void)s;
    struct rsv_batch *b = arg;
    struct rsv_item *it = &b->it[b->run_first[i]];
    if (b->run_n[i] > 1) {
        copy_run(b, it, b->run_n[i]);
        return;
    }
    uint64_t copied = 0;
    int r = copy_block(b->p, &it->bp, it->mask, &copied);
    atomic_fetch_add(&b->copied, copied);
    item_done(b, it, r, copied > 0);
}

/* Group the sorted items into copy jobs: runs of adjacent blocks with the
 * same targets (up to RSV_RUN_BLOCKS, RSV_RUN_BYTES), each other block
 * alone. */
static void make_runs(bs_pool *p, struct rsv_batch *b)
{
    b->nruns = 0;
    for (unsigned i = 0, j; i < b->n; i = j) {
        const struct dva *d = &b->it[i].bp.dva[0];
        uint64_t end = d->offset + d->asize;
        j = i + 1;
        if (d->vdev < atomic_load(&p->io.ntops) &&
            p->io.top[d->vdev].vd->kind != VDEV_KIND_LEAF) {
            while (j < b->n && j - i < RSV_RUN_BLOCKS && b->it[j].bp.dva[0].vdev == d->vdev &&
                   b->it[j].mask == b->it[i].mask && b->it[j].bp.dva[0].offset == end &&
                   end + b->it[j].bp.dva[0].asize - d->offset <= RSV_RUN_BYTES)
                end += b->it[j++].bp.dva[0].asize;
        }
        b->run_first[b->nruns] = i;
        b->run_n[b->nruns++] = j - i;
    }
}

void rsv_batch_run(bs_pool *p, struct rsv_batch *b, uint64_t *copied, unsigned *data,
                   rsv_fail_fn fail, void *fctx)
{
    *copied = 0;
    *data = 0;
    if (b->n == 0)
        return;
    qsort(b->it, b->n, sizeof *b->it, item_order);
    /* read-ahead of each run of adjacent blocks as one range: the device
     * gets a few large reads instead of one per block */
    for (unsigned i = 0, j; i < b->n; i = j) {
        const struct dva *d = &b->it[i].bp.dva[0];
        uint64_t end = d->offset + d->asize;
        for (j = i + 1; j < b->n && b->it[j].bp.dva[0].vdev == d->vdev &&
                        b->it[j].bp.dva[0].offset == end && end - d->offset < (8u << 20);
             j++)
            end += b->it[j].bp.dva[0].asize;
        if (j == i + 1) {
            blk_prefetch(&p->io, &b->it[i].bp);
        } else if (d->vdev < atomic_load(&p->io.ntops)) {
            struct vdev *top = p->io.top[d->vdev].vd;
            if (end <= top->data_size)
                vdev_prefetch_block(top, d->offset, end - d->offset);
        }
    }
    b->p = p;
    b->fail = fail;
    b->fctx = fctx;
    atomic_store(&b->copied, 0);
    atomic_store(&b->data, 0);
    make_runs(p, b);
    if (b->nruns > 1 && !b->wp && !b->wp_failed && wp_new_bare(RSV_THREADS - 1, &b->wp) < 0) {
        b->wp = NULL;
        b->wp_failed = true; /* slower, not wrong */
        blog_warn("pool '%s': cannot start resilver threads: copying with one", p->name);
    }
    if (b->nruns > 1 && b->wp) {
        wp_run(b->wp, copy_job, b, b->nruns, NULL);
    } else {
        for (unsigned i = 0; i < b->nruns; i++)
            copy_job(b, i, NULL);
    }
    /* start writing the copies back now: the flush before the position is
     * saved (every second) then finds little left, instead of stalling
     * the walk while it writes a second's worth */
    uint32_t wrote[BLK_MAX_TOPS] = {0};
    for (unsigned i = 0; i < b->n; i++)
        if (b->it[i].bp.dva[0].vdev < BLK_MAX_TOPS)
            wrote[b->it[i].bp.dva[0].vdev] |= b->it[i].mask;
    for (unsigned t = 0; t < atomic_load(&p->io.ntops) && t < BLK_MAX_TOPS; t++) {
        struct vdev *top = p->io.top[t].vd;
        for (unsigned i = 0; i < vdev_nleaves(top) && i < 32; i++)
            if ((wrote[t] >> i & 1) && vdev_usable(vdev_leaf(top, i)))
                vdev_writeback_hint(vdev_leaf(top, i), 0, 0);
    }
    *copied = atomic_load(&b->copied);
    *data = atomic_load(&b->data);
    b->n = 0;
    b->bytes = 0;
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
            /* the generation is compared and the DTL cleared in one step
             * (dtl.c top): a miss noted by a commit meanwhile stays */
            if ((tg->mask[t] >> i & 1) && vdev_usable(l) && dtl_clear_if(p, l, tg->gen[t][i]) >= 0)
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
