/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Verifying the allocation map at import, and rebuilding it from the block
 * trees (docs/FORMAT.md 4).
 *
 * The uberblock of txg T carries a digest of the txgs of the chunk versions
 * current at T (alloc_digest).  alloc_load_checked recomputes it from the
 * versions it chose.  A chunk without a valid version, or a different
 * digest, means the map on disk is damaged or stale: a newest slot lost to
 * bit rot or a stray write makes the loader take an older version that lacks
 * recent allocations, and trusting it would let the allocator hand out
 * sectors that live blocks use.  So the map is rebuilt from what it
 * summarises: the MOS tree and every volume tree of T.
 *
 * Invariants of a rebuilt map:
 *  - committed = inuse = exactly the sectors of the blocks referenced by the
 *    trees of T; there are no deferred frees (blocks only older trees used
 *    are free at once: after a rebuild, import can no longer fall back past
 *    T, which the damaged map could not support anyway);
 *  - every chunk is dirty, and map_rebuild_commit commits a txg right after
 *    import, so the whole map is rewritten under a matching digest; a crash
 *    before that finds the same damage and rebuilds again;
 *  - if a tree cannot be walked (an unreadable indirect block hides which
 *    sectors it references), a pointer lies outside the data area, or two
 *    blocks overlap, the map cannot be trusted: the pool is imported
 *    read-only and nothing is written;
 *  - a read-only import rebuilds in memory only.
 * Each top-level vdev has its own map: a DVA marks the map of the top its
 * vdev field names (none: outside the data area).
 * Snapshots and clones share blocks: each dataset marks only the blocks it
 * owns (born after its previous snapshot, objtree_walk_since), so every
 * block is marked once and an overlap is still damage.  Deadlist objects
 * are trees of their own.
 * Runs during import, before the sync thread starts: nothing else touches
 * the pool, and the allocator takes its own lock. */
#include "store/maprebuild.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "store/pool_impl.h"

struct rebuild {
    const struct blkio *io;   /* a DVA's vdev picks the top whose map it marks */
    uint64_t blocks, bytes;
    uint64_t overlaps, first_overlap;
    uint64_t outside, first_outside;
};

static int mark(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct rebuild *rb = opaque;
    (void)blkid;
    rb->blocks++;
    for (int i = 0; i < 3; i++) {
        const struct dva *d = &bp->dva[i];
        if (d->asize == 0)
            continue;
        const struct blk_top *t = blk_top_of(rb->io, d->vdev);
        int r = t ? alloc_mark_allocated(t->alloc, d->offset, d->asize) : -EINVAL;
        if (r == -EINVAL) {
            if (rb->outside++ == 0)
                rb->first_outside = d->offset;
            continue;
        }
        if (r == -EEXIST && rb->overlaps++ == 0)
            rb->first_overlap = d->offset;
        rb->bytes += d->asize;
    }
    return 0;
}

/* Mark every block of the pool; the name of the first tree that cannot be
 * walked goes to `bad` (empty if all could). */
static void mark_all(bs_pool *p, struct rebuild *rb, char *bad, size_t badlen)
{
    bad[0] = 0;
    int r = objtree_walk(&p->io, &p->mos_od, BLK_NOCACHE, mark, rb);
    if (r < 0) {
        snprintf(bad, badlen, "pool directory (MOS): %s", strerror(-r));
        return;
    }
    for (struct ds *d = p->ds_list; d; d = d->next) {
        r = objtree_walk_since(&p->io, &d->od, d->rec.lin.prev_txg, BLK_NOCACHE, mark, rb);
        if (r == 0)
            r = objtree_walk(&p->io, &d->rec.lin.dl, BLK_NOCACHE, mark, rb);
        if (r < 0) {
            snprintf(bad, badlen, "volume '%s': %s", d->rec.name, strerror(-r));
            return;
        }
    }
}

int map_verify(bs_pool *p, const struct uberblock *ub, const struct alloc_load_info *li)
{
    bool stale = ub->map_chunks != 0 &&
                 (ub->map_chunks != li->nchunks || memcmp(ub->map_digest, li->digest, 16) != 0);
    if (li->nbad == 0 && !stale)
        return 0;
    char why[192], bad[160], top[32] = "";
    if (atomic_load(&p->io.ntops) > 1)
        snprintf(top, sizeof top, "top-level vdev %u: ", li->bad_top);
    if (li->nbad)
        snprintf(why, sizeof why, "%schunk %llu has no valid copy%s", top,
                 (unsigned long long)li->first_bad, li->nbad > 1 ? ", and more" : "");
    else if (li->ndamaged)
        snprintf(why, sizeof why, "%schunk %llu has a damaged slot; the versions found do not "
                 "match uberblock %llu", top, (unsigned long long)li->first_damaged,
                 (unsigned long long)ub->txg);
    else
        snprintf(why, sizeof why, "the chunk versions found are stale for uberblock %llu",
                 (unsigned long long)ub->txg);

    struct rebuild rb = { .io = &p->io };
    for (unsigned t = 0; t < atomic_load(&p->io.ntops); t++)
        alloc_reset(p->io.top[t].alloc);
    mark_all(p, &rb, bad, sizeof bad);
    p->map_rebuilt = true;
    if (bad[0] || rb.overlaps || rb.outside) {
        if (!bad[0] && rb.overlaps)
            snprintf(bad, sizeof bad, "%llu blocks overlap others, the first at offset %llu",
                     (unsigned long long)rb.overlaps, (unsigned long long)rb.first_overlap);
        else if (!bad[0])
            snprintf(bad, sizeof bad, "%llu block pointers lie outside the data area (offset "
                     "%llu)", (unsigned long long)rb.outside,
                     (unsigned long long)rb.first_outside);
        p->readonly = p->io.readonly = true;
        blog_err("pool %s: allocation map damaged (%s) and the block trees are damaged too "
                 "(%s): imported read-only; copy the data off", p->name, why, bad);
        return 0;
    }
    blog_warn("pool %s: allocation map damaged (%s); rebuilt from the block trees: %llu blocks, "
              "%llu bytes%s", p->name, why, (unsigned long long)rb.blocks,
              (unsigned long long)rb.bytes, p->readonly ? " (in memory only: read-only import)"
                                                        : "");
    return 0;
}

void map_rebuild_commit(bs_pool *p)
{
    if (!p->map_rebuilt || p->readonly)
        return;
    pthread_mutex_lock(&p->lock);
    uint64_t t = txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    if (txg_wait(p, t) == 0)
        blog_info("pool %s: rebuilt allocation map written in txg %llu", p->name,
                  (unsigned long long)t);
}
