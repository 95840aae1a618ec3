/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool checker: walk every tree (the MOS and every volume), verify every
 * block against its checksum from the device (bypassing the cache), check
 * each tree's accounting, and compare the set of referenced extents with the
 * allocator's committed map.  It runs between two txgs (holding the sync
 * mutex), where the committed map must equal exactly the blocks of the last
 * committed trees: any difference is a leak, a dangling reference or a
 * double reference, reported as -EILSEQ with the first one found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "store/pool_impl.h"

/* A referenced extent; `off` carries the top's index in its top 8 bits
 * (data areas are far below 2^56 bytes), so sorting groups them by top. */
struct extent {
    uint64_t off, len;
};
#define EXT_TOP_SHIFT 56
#define EXT_OFF(o) ((unsigned long long)((o) & ((1ULL << EXT_TOP_SHIFT) - 1)))
#define EXT_TOP(o) ((unsigned)((o) >> EXT_TOP_SHIFT))

struct cwalk {
    bs_pool *p;
    struct extent *ext;
    size_t n, cap;
    struct objdesc sum; /* accounting recomputed for the tree being walked */
    struct berr *err;
    const char *what;
};

static int visit(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct cwalk *w = opaque;
    /* every copy is an allocation of its own (a ditto copy: DVA 1) */
    for (int c = 0; c < bp_ncopies(bp); c++) {
        if (w->n == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 1024;
            struct extent *e = realloc(w->ext, cap * sizeof *e);
            if (!e)
                return -ENOMEM;
            w->ext = e;
            w->cap = cap;
        }
        w->ext[w->n].off = bp->dva[c].offset | (uint64_t)bp->dva[c].vdev << EXT_TOP_SHIFT;
        w->ext[w->n].len = bp->dva[c].asize;
        w->n++;
    }
    w->sum.allocated += bp_asize(bp);
    if (bp->level == 0) {
        w->sum.logical += bp->lsize;
        w->sum.physical += bp_asize(bp);
        /* encrypted blocks: the checksum covers the ciphertext, so they are
         * verified without a key */
        struct cbuf *c = NULL;
        uint8_t *raw = NULL;
        int r = !(bp->flags & BP_FLAG_ENCRYPTED) ? blk_read(&w->p->io, bp, BLK_NOCACHE, &c)
                : !(raw = malloc(bp->psize)) ? -ENOMEM
                : blk_read_raw(&w->p->io, bp, raw, bp->psize);
        free(raw);
        if (r < 0)
            return berr_set(w->err, EILSEQ, "%s: data block %llu at offset %llu fails "
                            "verification", w->what, (unsigned long long)blkid,
                            (unsigned long long)bp->dva[0].offset);
        cbuf_unref(c);
    }
    return 0;
}

/* Walk the blocks of od born after min_birth (0: all, and then check the
 * tree's accounting if asked). */
static int walk_tree(struct cwalk *w, const struct objdesc *od, uint64_t min_birth,
                     bool check_acct)
{
    memset(&w->sum, 0, sizeof w->sum);
    int r = objtree_walk_since(&w->p->io, od, min_birth, BLK_NOCACHE, visit, w);
    if (r < 0) {
        if (w->err && w->err->code)
            return r;
        return berr_set(w->err, EILSEQ, "%s: tree is unreadable (%s)", w->what, strerror(-r));
    }
    if (check_acct && min_birth == 0 && (w->sum.allocated != od->allocated || w->sum.logical != od->logical ||
                       w->sum.physical != od->physical))
        return berr_set(w->err, EILSEQ,
                        "%s: accounting is off: allocated %llu/%llu logical %llu/%llu "
                        "physical %llu/%llu (recorded/found)", w->what,
                        (unsigned long long)od->allocated, (unsigned long long)w->sum.allocated,
                        (unsigned long long)od->logical, (unsigned long long)w->sum.logical,
                        (unsigned long long)od->physical, (unsigned long long)w->sum.physical);
    return 0;
}

static int cmp_ext(const void *a, const void *b)
{
    const struct extent *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

struct cmp_state {
    const struct extent *runs;
    size_t nruns, i;
    uint64_t top;     /* in EXT position: the top whose map is compared */
    struct berr *err;
};

/* The allocator's runs must be exactly the merged referenced runs. */
static int compare_run(uint64_t off, uint64_t len, void *opaque)
{
    struct cmp_state *s = opaque;
    off |= s->top; /* the extents carry their top (and the messages show it) */
    if (s->i >= s->nruns || s->runs[s->i].off > off)
        return berr_set(s->err, EILSEQ, "leak: %llu bytes at top %u offset %llu are allocated "
                        "but referenced by no block", (unsigned long long)(s->i < s->nruns
                        ? MIN(len, s->runs[s->i].off - off) : len), EXT_TOP(off), EXT_OFF(off));
    const struct extent *e = &s->runs[s->i];
    if (e->off < off)
        return berr_set(s->err, EILSEQ, "block at top %u offset %llu is referenced but not "
                        "allocated", EXT_TOP(e->off), EXT_OFF(e->off));
    if (e->len != len) {
        uint64_t at = e->len < len ? off + e->len : off + len;
        return berr_set(s->err, EILSEQ, "%s at top %u offset %llu",
                        e->len < len ? "leak: allocated, unreferenced bytes"
                                     : "referenced block not allocated",
                        EXT_TOP(at), EXT_OFF(at));
    }
    s->i++;
    return 0;
}

int bs_pool_check(bs_pool *p, struct berr *err)
{
    struct cwalk w = { .p = p, .err = err };
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->txg.sync_mutex);
    pthread_mutex_lock(&p->lock);
    size_t nds = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        nds++;
    struct ds **dss = calloc(nds ? nds : 1, sizeof *dss);
    int r = dss ? 0 : -ENOMEM;
    nds = 0;
    for (struct ds *d = p->ds_list; dss && d; d = d->next) {
        ds_ref(d);
        dss[nds++] = d;
    }
    pthread_mutex_unlock(&p->lock);
    char what[128];
    if (r == 0) {
        w.what = "pool directory (MOS)";
        r = walk_tree(&w, &p->mos_od, 0, true);
    }
    /* each dataset walks the blocks it owns (born after its previous
     * snapshot): shared blocks are seen once, in their owner, and the bytes
     * found must be its recorded `born` */
    for (size_t i = 0; r == 0 && i < nds; i++) {
        struct ds *d = dss[i];
        pthread_mutex_lock(&d->lock);
        struct objdesc od = d->od;
        pthread_mutex_unlock(&d->lock);
        snprintf(what, sizeof what, "%s '%s'", ds_is_snap(d) ? "snapshot" : "volume",
                 d->rec.name);
        w.what = what;
        r = walk_tree(&w, &od, d->rec.lin.prev_txg, true);
        if (r == 0 && w.sum.allocated != d->rec.lin.born)
            r = berr_set(err, EILSEQ, "%s: space accounting is off: %llu bytes owned, %llu found",
                         what, (unsigned long long)d->rec.lin.born,
                         (unsigned long long)w.sum.allocated);
        if (r == 0) {
            snprintf(what, sizeof what, "deadlist of '%s'", d->rec.name);
            r = walk_tree(&w, &d->rec.lin.dl, 0, false);
        }
    }
    if (r == 0) {
        qsort(w.ext, w.n, sizeof *w.ext, cmp_ext);
        size_t m = 0;
        for (size_t i = 0; r == 0 && i < w.n; i++) {
            const struct extent *e = &w.ext[i];
            const struct blk_top *bt = blk_top_of(&p->io, EXT_TOP(e->off));
            if (!bt || !alloc_is_allocated(bt->alloc, EXT_OFF(e->off), e->len)) {
                r = berr_set(err, EILSEQ, "block at top %u offset %llu (%llu bytes) is "
                             "referenced but not allocated", EXT_TOP(e->off), EXT_OFF(e->off),
                             (unsigned long long)e->len);
            } else if (m > 0 && w.ext[m - 1].off + w.ext[m - 1].len > e->off) {
                r = berr_set(err, EILSEQ, "block at top %u offset %llu is referenced twice",
                             EXT_TOP(e->off), EXT_OFF(e->off));
            } else if (m > 0 && w.ext[m - 1].off + w.ext[m - 1].len == e->off) {
                w.ext[m - 1].len += e->len; /* merge adjacent into runs */
            } else {
                w.ext[m++] = *e;
            }
        }
        /* note: the overlap test above runs against merged runs, which is
         * exact because extents are sorted by offset */
        /* every top's map, in order: the sorted runs are grouped by top */
        struct cmp_state s = { .runs = w.ext, .nruns = m, .err = err };
        for (unsigned t = 0; r == 0 && t < atomic_load(&p->io.ntops); t++) {
            s.top = (uint64_t)t << EXT_TOP_SHIFT;
            r = alloc_foreach_allocated(p->io.top[t].alloc, compare_run, &s);
        }
        if (r == 0 && s.i != m)
            r = berr_set(err, EILSEQ, "block at top %u offset %llu is referenced but not "
                         "allocated", EXT_TOP(w.ext[s.i].off), EXT_OFF(w.ext[s.i].off));
        if (r > 0)
            r = -EILSEQ;
    }
    pthread_mutex_unlock(&p->txg.sync_mutex);
    pthread_mutex_unlock(&p->admin_lock);
    for (size_t i = 0; i < nds; i++)
        ds_unref(dss[i]);
    free(dss);
    free(w.ext);
    if (r < 0 && err && !err->code)
        berr_set(err, -r, "pool check failed: %s", strerror(-r));
    return r;
}
