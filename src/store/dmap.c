/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dirty maps of a volume: per txg, blkid -> the block's buffer (a hash
 * table of chains, doubled when it holds as many entries as buckets;
 * entries carved from slabs the map owns, freed together by dmap_clear).  The rules for who may read or
 * change which map are vol.c's (its top comment); this file only keeps the
 * table. */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/pool_impl.h"

static inline size_t dhash(uint64_t blkid)
{
    uint64_t h = blkid * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h ^ (h >> 29));
}

struct dirty_ent *dmap_find(const struct dmap *m, uint64_t blkid)
{
    if (!m->tab)
        return NULL;
    for (struct dirty_ent *e = m->tab[dhash(blkid) & m->mask]; e; e = e->next)
        if (e->blkid == blkid)
            return e;
    return NULL;
}

static int dmap_grow(struct dmap *m)
{
    size_t nb = m->tab ? (m->mask + 1) * 2 : 256;
    struct dirty_ent **t = calloc(nb, sizeof *t);
    if (!t)
        return -ENOMEM;
    if (m->tab) {
        for (size_t i = 0; i <= m->mask; i++) {
            struct dirty_ent *e = m->tab[i], *next;
            for (; e; e = next) {
                next = e->next;
                size_t b = dhash(e->blkid) & (nb - 1);
                e->next = t[b];
                t[b] = e;
            }
        }
        free(m->tab);
    }
    m->tab = t;
    m->mask = nb - 1;
    return 0;
}

/* A new entry for blkid holding buf (taken only on success), in m; NULL on
 * ENOMEM.  Entries are carved from the map's slabs: one malloc per
 * DENT_SLAB_N blocks instead of one per block (the workers' mallocs of
 * entries and the sync thread's frees of a whole txg of them were ~3% of
 * a sequential write's CPU, most of it in malloc's consolidation). */
struct dirty_ent *dmap_add(struct dmap *m, uint64_t blkid, struct cbuf *buf)
{
    if ((!m->tab || m->count > m->mask) && dmap_grow(m) < 0 && !m->tab)
        return NULL;
    struct dent_slab *s = m->slabs;
    if (!s || s->used == DENT_SLAB_N) {
        if (!(s = malloc(sizeof *s)))
            return NULL;
        s->used = 0;
        s->next = m->slabs;
        m->slabs = s;
    }
    struct dirty_ent *e = &s->ents[s->used++];
    e->blkid = blkid;
    e->buf = buf;
    e->sealed = NULL;
    size_t b = dhash(blkid) & m->mask;
    e->next = m->tab[b];
    m->tab[b] = e;
    m->count++;
    return e;
}

void dmap_clear(struct dmap *m)
{
    /* The buffers' headers were last touched when they were written, a
     * txg's worth of data ago: fetch a batch of them at once rather than
     * wait for each one's miss in turn (the reference drop was ~2 % of a
     * 1 MiB write stream's CPU, nearly all of it that miss). */
    struct cbuf *batch[16];
    size_t nb = 0;
    if (m->tab) {
        for (size_t i = 0; i <= m->mask; i++) {
            for (struct dirty_ent *e = m->tab[i]; e; e = e->next) {
                if (e->buf) {
                    __builtin_prefetch(e->buf, 1);
                    batch[nb++] = e->buf;
                }
                free(e->sealed);
                if (nb == ARRAY_SIZE(batch)) {
                    for (size_t k = 0; k < nb; k++)
                        cbuf_unref(batch[k]);
                    nb = 0;
                }
            }
            m->tab[i] = NULL;
        }
    }
    for (size_t k = 0; k < nb; k++)
        cbuf_unref(batch[k]);
    while (m->slabs) {
        struct dent_slab *s = m->slabs;
        m->slabs = s->next;
        free(s);
    }
    m->count = 0;
    m->bytes = 0;
}

static int cmp_ent(const void *a, const void *b)
{
    const struct dirty_ent *x = *(struct dirty_ent *const *)a, *y = *(struct dirty_ent *const *)b;
    return x->blkid < y->blkid ? -1 : x->blkid > y->blkid;
}

/* A txg's blocks are mostly dense runs (sequential writes; random writes
 * over a volume of a few times the dirty limit): then each entry goes
 * straight to its place in a table of the blkid span (a map has one entry
 * per blkid), O(n) instead of qsort's n log n calls of cmp_ent (1-2% of a
 * sequential write's CPU).  Sparse maps are sorted. */
size_t dmap_sorted(const struct dmap *m, uint64_t nblocks, struct dirty_ent **out)
{
    size_t n = 0;
    uint64_t lo = UINT64_MAX, hi = 0;
    if (!m->tab)
        return 0;
    for (size_t b = 0; b <= m->mask; b++)
        for (struct dirty_ent *e = m->tab[b]; e; e = e->next)
            if (e->blkid < nblocks) {
                out[n++] = e;
                lo = MIN(lo, e->blkid);
                hi = MAX(hi, e->blkid);
            }
    if (n < 2)
        return n;
    uint64_t span = hi - lo + 1;
    struct dirty_ent **t = span <= 4 * (uint64_t)n ? calloc(span, sizeof *t) : NULL;
    if (!t) {
        qsort(out, n, sizeof *out, cmp_ent);
        return n;
    }
    for (size_t i = 0; i < n; i++)
        t[out[i]->blkid - lo] = out[i];
    size_t k = 0;
    for (uint64_t i = 0; i < span; i++)
        if (t[i])
            out[k++] = t[i];
    free(t);
    return k;
}
