/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Walking the blocks of a tree born after a txg (see treediff.h).
 *
 * Invariants this walk relies on:
 *  - copy-on-write: a pointer whose birth is <= min_birth heads a subtree
 *    unchanged since min_birth, so it is pruned unread;
 *  - holes carry the txg they were made in, so a block that became a hole
 *    after min_birth is reported like a written one;
 *  - a zeroed pointer (birth 0) says "hole, age unknown": inside an indirect
 *    rewritten after min_birth it may stand for a block that was data at
 *    min_birth (objtree fills the children of a re-used hole indirect with
 *    zeroed pointers), so it is reported as a hole whenever its parent was
 *    visited.  Reporting a hole the receiver already has costs nothing;
 *    missing one would leave stale data behind.
 * The walk is depth-first in index order, so callbacks come in block order
 * and one array of 256 children per level is enough. */
#include "store/treediff.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

struct tdiff {
    const struct blkio *io;
    uint64_t min_birth, start, nblocks;
    uint32_t dsize;
    const struct treediff_ops *ops;
    void *opaque;
    struct treediff_stats st;
    uint64_t h0, hn; /* pending hole run, merged until something else comes */
    struct blkptr (*kids)[IND_NBP];
};

static inline uint64_t span(int level)
{
    return 1ULL << (8 * level);
}

static int flush_hole(struct tdiff *t)
{
    if (!t->hn)
        return 0;
    uint64_t n = t->hn;
    t->hn = 0;
    return t->ops->hole(t->h0, n, t->opaque);
}

static int add_hole(struct tdiff *t, uint64_t b, uint64_t n)
{
    t->st.hole_blocks += n;
    if (t->hn && t->h0 + t->hn == b) {
        t->hn += n;
        return 0;
    }
    int r = flush_hole(t);
    t->h0 = b;
    t->hn = n;
    return r;
}

static int corrupt(struct tdiff *t)
{
    blk_count_cksum_error(t->io);
    return -EIO;
}

/* Read the indirect bp (level L) into kids[], checking every child. */
static int load(struct tdiff *t, const struct blkptr *bp, int L, struct blkptr *kids)
{
    if (bp->level != L || bp->type != BP_TYPE_INDIRECT || bp->lsize != IND_SIZE)
        return corrupt(t);
    struct cbuf *c;
    int r = blk_read(t->io, bp, 0, &c);
    if (r == 0 && (r = objtree_auth_check(t->io, bp, c)) < 0) /* encrypted volumes */
        cbuf_unref(c);
    if (r < 0)
        return r;
    t->st.ind_blocks++;
    t->st.ind_bytes += bp->psize;
    for (unsigned i = 0; i < IND_NBP; i++) {
        if (bp_decode(c->data + i * BP_SIZE, &kids[i]) < 0 ||
            (!bp_is_hole(&kids[i]) && kids[i].level != L - 1)) {
            cbuf_unref(c);
            return corrupt(t);
        }
    }
    cbuf_unref(c);
    return 0;
}

static int visit(struct tdiff *t, const struct blkptr *bp, int L, uint64_t base,
                 bool parent_visited)
{
    uint64_t end = MIN(base + span(L), t->nblocks);
    if (base >= end || end <= t->start)
        return 0;
    if (bp->birth <= t->min_birth && !(bp->birth == 0 && parent_visited))
        return 0; /* unchanged since min_birth: not read */
    if (bp_is_hole(bp)) {
        uint64_t b = MAX(base, t->start);
        return add_hole(t, b, end - b);
    }
    if (L == 0) {
        if (bp->lsize != t->dsize)
            return corrupt(t);
        int r = flush_hole(t);
        if (r)
            return r;
        t->st.data_blocks++;
        return t->ops->data(bp, base, t->opaque);
    }
    struct blkptr *kids = t->kids[L];
    int r = load(t, bp, L, kids);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < IND_NBP; i++) {
        r = visit(t, &kids[i], L - 1, base + i * span(L - 1), true);
        if (r)
            return r;
    }
    return 0;
}

int treediff(const struct blkio *io, const struct objdesc *od, uint64_t min_birth,
             uint64_t start_blk, const struct treediff_ops *ops, void *opaque,
             struct treediff_stats *st)
{
    struct tdiff t = {
        .io = io, .min_birth = min_birth, .start = start_blk, .nblocks = od->nblocks,
        .dsize = 1u << od->dshift, .ops = ops, .opaque = opaque,
    };
    if (od->levels < 1 || od->levels > OBJ_MAX_LEVELS)
        return -EIO;
    t.kids = malloc(sizeof(*t.kids) * OBJ_MAX_LEVELS);
    if (!t.kids)
        return -ENOMEM;
    /* a full walk (min_birth 0) reports never-written holes too: the root
     * counts as visited */
    int r = visit(&t, &od->root, od->levels - 1, 0, min_birth == 0);
    if (!r)
        r = flush_hole(&t);
    free(t.kids);
    if (st)
        *st = t.st;
    return r;
}
