/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sector bitmap allocator of one top-level vdev (docs/FORMAT.md 4).
 *
 * In memory there are two bitmaps over the sectors of the data area, as 64-bit
 * words whose little-endian bytes are exactly the on-disk bit order:
 *   committed  referenced by the tree of the txg being built (persisted);
 *   inuse      committed, or freed and still deferred, or reserved for a
 *              discard in flight; only sectors clear here are handed out;
 *   warm       free sectors released since this map was loaded and not
 *              discarded since: the vdev still backs them (a pool file's
 *              blocks stay allocated by the host file system, its pages
 *              may still be cached), so the allocator prefers them.
 * Invariants (under a->lock):
 *  - committed ⊆ inuse; chunk_free[c] = clear bits of inuse in chunk c and
 *    inuse_free their sum; sectors past the data area are set in inuse;
 *  - deferred[] holds exactly the sectors freed and not yet released, each
 *    with the txg F that freed it.  THE DEFERRED-REUSE RULE: a sector freed in
 *    txg F is released (becomes allocatable) by alloc_txg_done(D) once
 *    D >= F + ALLOC_DEFER_TXGS - 1, i.e. after txgs F, F+1 and F+2 are all
 *    durable; it can then first be rewritten by txg F+3, so the trees of the
 *    three newest durable uberblocks never lose a block;
 *  - slot_txg[c][s] is the txg stamped in slot s of chunk c on disk (0 = not
 *    valid).  A changed chunk is written (alloc_sync(T)) to the slot already
 *    stamped T if there is one (a retry), otherwise to the slot that does NOT
 *    hold the newest version <= durable_txg; so the version a crash falls back
 *    to is never overwritten;
 *  - after alloc_load(L), slots stamped > L are leftovers of txgs that never
 *    committed: they count as not valid (slot_txg 0) and their chunks are
 *    marked dirty so the next sync replaces them before any uberblock > L can
 *    be written;
 *  - the uberblock of T carries alloc_digest(T), the digest of the txgs of
 *    the chunk versions current at T; import recomputes it from the versions
 *    it chose (alloc_load_checked), so a damaged or stale newest version is
 *    noticed and the map is rebuilt from the block trees (maprebuild.c).
 *  - warm ∩ inuse = ∅: a release sets warm only where it cleared inuse; an
 *    allocation clears warm over what it takes; a discard clears warm over
 *    the range it reserves (sets in inuse) before the discard is issued.
 *
 * Placement (where allocations go: policy, not an invariant): alloc_place.c.
 *
 * Lazy autotrim: alloc_trim.c.
 *
 * Contract: alloc_sync(T) writes the state as it is; callers do not allocate
 * or free for T+1 until it returns (the sync thread serialises this).
 * Device I/O (chunk writes, discards) happens with the lock dropped; ranges
 * being discarded stay set in inuse so no allocation can race the discard. */
#include "store/alloc.h"
#include "store/alloc_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/le.h"
#include "store/codec.h"

#define FRAG_RUN_BYTES (1ULL << 20)
#define IO_BATCH_CHUNKS 64u

/* ---- bit helpers ---- */

static uint64_t range_mask(uint64_t s, uint64_t e, uint64_t wi)
{
    /* Bits of word wi that lie in [s, e). */
    uint64_t lo = wi << 6, m = ~0ULL;
    if (s > lo)
        m &= ~0ULL << (s - lo);
    if (e < lo + 64)
        m &= ~0ULL >> (lo + 64 - e);
    return m;
}

/* First bit in [pos, end) equal to `one`, or end. */
uint64_t alloc_next_bit(const uint64_t *w, uint64_t pos, uint64_t end, bool one)
{
    while (pos < end) {
        uint64_t wi = pos >> 6;
        uint64_t word = (one ? w[wi] : ~w[wi]) & (~0ULL << (pos & 63));
        if (word) {
            uint64_t r = (wi << 6) + (uint64_t)__builtin_ctzll(word);
            return r < end ? r : end;
        }
        pos = (wi + 1) << 6;
    }
    return end;
}

uint64_t alloc_count_bits(const uint64_t *w, uint64_t s, uint64_t e)
{
    uint64_t n = 0;
    for (uint64_t wi = s >> 6; s < e && wi <= (e - 1) >> 6; wi++)
        n += (uint64_t)__builtin_popcountll(w[wi] & range_mask(s, e, wi));
    return n;
}

/* Apply w = (w & ~clear) | set over [s, e) with per-word masks computed by
 * `op`; returns the number of bits that changed. */

uint64_t alloc_bits_apply(struct alloc *a, uint64_t *w, uint64_t s, uint64_t e, enum bitop op)
{
    uint64_t changed = 0;
    for (uint64_t wi = s >> 6; s < e && wi <= (e - 1) >> 6; wi++) {
        uint64_t m = range_mask(s, e, wi), before = w[wi];
        if (op == OP_SET)
            w[wi] |= m;
        else if (op == OP_CLEAR)
            w[wi] &= ~m;
        else if (op == OP_RELEASE) /* clear inuse only where nothing is committed */
            w[wi] &= ~(m & ~a->committed[wi]);
        else /* OP_WARM on warm: set where inuse is clear */
            w[wi] |= m & ~a->inuse[wi];
        uint64_t diff = (uint64_t)__builtin_popcountll(before ^ w[wi]);
        changed += diff;
        if (diff && w == a->inuse) {
            uint64_t c = (wi << 6) / a->bpc;
            if (op == OP_SET)
                a->chunk_free[c] -= (uint32_t)diff;
            else
                a->chunk_free[c] += (uint32_t)diff;
        }
        if (diff && w == a->committed)
            a->dirty[(wi << 6) / a->bpc] = true;
        if (diff && w == a->warm) {
            uint64_t c = (wi << 6) / a->bpc;
            if (op == OP_CLEAR) {
                a->chunk_warm[c] -= (uint32_t)diff;
                a->warm_total -= diff;
            } else {
                a->chunk_warm[c] += (uint32_t)diff;
                a->warm_total += diff;
            }
        }
    }
    if (w == a->inuse)
        a->inuse_free = op == OP_SET ? a->inuse_free - changed : a->inuse_free + changed;
    return changed;
}

/* The sectors [s, e) of a byte range: false if misaligned, empty or outside. */
static bool to_sectors(const struct alloc *a, uint64_t off, uint64_t asize, uint64_t *s,
                       uint64_t *e)
{
    uint64_t mask = (1ULL << a->ashift) - 1;
    *s = off >> a->ashift;
    *e = *s + (asize >> a->ashift);
    return asize && !(off & mask) && !(asize & mask) && *s < a->nsect && *e <= a->nsect &&
           *e > *s;
}

uint32_t alloc_chunk_nbits(const struct alloc *a, uint64_t c)
{
    uint64_t left = a->nsect - c * a->bpc;
    return left < a->bpc ? (uint32_t)left : a->bpc;
}

/* ---- chunk slots (the slot codec is in allocslot.c) ---- */

static uint64_t slot_offset(const struct alloc *a, uint64_t c, int s)
{
    return a->bitmap_offset + (2 * c + (uint64_t)s) * a->slot_size;
}

/* ---- construction ---- */

/* Everything free, nothing deferred; all chunks dirty if `dirty`. */
static void clear_maps(struct alloc *a, bool dirty)
{
    size_t nwords = (size_t)(a->nchunks * a->bpc / 64);
    memset(a->committed, 0, nwords * 8);
    memset(a->inuse, 0, nwords * 8);
    memset(a->warm, 0, nwords * 8);
    for (uint64_t c = 0; c < a->nchunks; c++) {
        a->chunk_free[c] = alloc_chunk_nbits(a, c);
        a->chunk_warm[c] = 0;
        a->dirty[c] = dirty;
    }
    a->ntq = 0;
    a->warm_cursor = 0;
    a->warm_total = 0;
    a->warm_fail = UINT64_MAX;
    a->inuse_free = a->nsect;
    a->committed_sect = 0;
    a->ndef = 0;
    a->cursor = 0;
    /* Sectors past the end of the data area are never handed out. */
    for (uint64_t s = a->nsect; s < nwords * 64; s++)
        a->inuse[s >> 6] |= 1ULL << (s & 63);
}

static int alloc_init(struct vdev *v, const struct label_hdr *h, struct alloc **out,
                      struct berr *err)
{
    struct alloc *a = calloc(1, sizeof(*a));
    *out = NULL;
    if (!a)
        return berr_set(err, ENOMEM, "out of memory for the allocation map");
    pthread_mutex_init(&a->lock, NULL);
    a->v = v;
    a->ashift = h->ashift;
    a->nsect = label_data_size(h) >> h->ashift;
    a->bitmap_offset = h->bitmap_offset;
    a->nchunks = h->bitmap_chunks;
    a->slot_size = h->bitmap_slot_size;
    a->bpc = h->bits_per_chunk;
    if (a->bpc == 0 || a->bpc % 64 || a->nchunks != (a->nsect + a->bpc - 1) / a->bpc) {
        alloc_destroy(a);
        return berr_set(err, EILSEQ, "inconsistent allocation map layout in the label");
    }
    size_t nwords = (size_t)(a->nchunks * a->bpc / 64);
    a->committed = calloc(nwords, 8);
    a->inuse = calloc(nwords, 8);
    a->warm = calloc(nwords, 8);
    a->chunk_free = calloc(a->nchunks, sizeof(*a->chunk_free));
    a->chunk_warm = calloc(a->nchunks, sizeof(*a->chunk_warm));
    a->slot_txg = calloc(a->nchunks, sizeof(*a->slot_txg));
    a->dirty = calloc(a->nchunks, sizeof(*a->dirty));
    if (!a->committed || !a->inuse || !a->warm || !a->chunk_free || !a->chunk_warm ||
        !a->slot_txg || !a->dirty) {
        alloc_destroy(a);
        return berr_set(err, ENOMEM, "out of memory for the allocation map");
    }
    clear_maps(a, false);
    *out = a;
    return 0;
}

int alloc_create(struct vdev *v, const struct label_hdr *h, uint64_t txg, struct alloc **out,
                 struct berr *err)
{
    struct alloc *a;
    int r = alloc_init(v, h, &a, err);
    if (r < 0)
        return r;
    size_t pair = 2 * (size_t)a->slot_size;
    uint8_t *buf = calloc(IO_BATCH_CHUNKS, pair);
    uint64_t *zero = calloc(a->bpc / 64, 8);
    for (uint64_t c0 = 0; buf && zero && r == 0 && c0 < a->nchunks; c0 += IO_BATCH_CHUNKS) {
        uint64_t n = MIN(IO_BATCH_CHUNKS, a->nchunks - c0);
        /* Slot 1 is zeroed: a leftover slot of an older pool on this device
         * must never be taken for a version of this one. */
        memset(buf, 0, n * pair);
        for (uint64_t i = 0; i < n; i++) {
            alloc_chunk_encode(buf + i * pair, a->slot_size, c0 + i, alloc_chunk_nbits(a, c0 + i), txg,
                               zero);
            a->slot_txg[c0 + i][0] = txg;
        }
        r = vdev_pwrite(v, buf, n * pair, slot_offset(a, c0, 0));
    }
    if (!buf || !zero)
        r = -ENOMEM;
    free(buf);
    free(zero);
    if (r < 0) {
        alloc_destroy(a);
        return berr_set(err, -r, "cannot write the allocation map: %s", strerror(-r));
    }
    a->durable_txg = txg;
    *out = a;
    return 0;
}

static int defer_add(struct alloc *a, uint64_t start, uint64_t n, uint64_t txg)
{
    if (a->ndef) {
        struct dfree *l = &a->deferred[a->ndef - 1];
        if (l->txg == txg && l->start + l->n == start) {
            l->n += n;
            return 0;
        }
    }
    if (a->ndef == a->capdef) {
        size_t cap = a->capdef ? a->capdef * 2 : 256;
        struct dfree *d = realloc(a->deferred, cap * sizeof(*d));
        if (!d)
            return -ENOMEM;
        a->deferred = d;
        a->capdef = cap;
    }
    a->deferred[a->ndef++] = (struct dfree){start, n, txg};
    return 0;
}

/* Install the chosen version of chunk c; sectors the older valid version
 * had allocated but the chosen one freed may still be referenced by trees
 * just before L, so they stay deferred as if freed in the chosen txg. */
static void load_chunk(struct alloc *a, uint64_t c, const uint64_t *cur, uint64_t *old,
                       uint64_t tc, uint64_t L)
{
    uint64_t w0 = c * a->bpc / 64, nbits = alloc_chunk_nbits(a, c), nw = (nbits + 63) / 64;
    uint64_t freebits = 0;
    for (uint64_t i = 0; i < nw; i++) {
        a->committed[w0 + i] = cur[i];
        a->inuse[w0 + i] |= cur[i];
        a->committed_sect += (uint64_t)__builtin_popcountll(cur[i]);
    }
    if (old && tc + ALLOC_DEFER_TXGS - 1 > L) {
        for (uint64_t i = 0; i < nw; i++) {
            old[i] &= ~cur[i]; /* freed between the two versions */
            a->inuse[w0 + i] |= old[i];
        }
        for (uint64_t s = 0; (s = alloc_next_bit(old, s, nbits, true)) < nbits;) {
            uint64_t z = alloc_next_bit(old, s, nbits, false);
            (void)defer_add(a, c * a->bpc + s, z - s, tc);
            s = z;
        }
    }
    for (uint64_t i = 0; i < nw; i++)
        freebits += 64 - (uint64_t)__builtin_popcountll(a->inuse[w0 + i]);
    a->inuse_free -= a->chunk_free[c] - freebits;
    a->chunk_free[c] = (uint32_t)freebits;
}

static bool blank(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Load chunk c from its two slots; with info (alloc_load_checked), a chunk
 * without a valid version is counted and taken as fully allocated, and
 * chosen[c] gets the txg of the version taken (0: none). */
static int load_pair(struct alloc *a, const uint8_t *pair, uint64_t c, uint64_t L, uint64_t *w[2],
                     struct alloc_load_info *info, uint64_t *chosen, struct berr *err)
{
    uint64_t t[2] = {0, 0};
    uint32_t nbits = alloc_chunk_nbits(a, c);
    bool ok[2];
    for (int s = 0; s < 2; s++) {
        const uint8_t *slot = pair + (size_t)s * a->slot_size;
        ok[s] = alloc_chunk_decode(slot, a->slot_size, a->slot_size, c, nbits, &t[s], w[s]) == 0;
        a->slot_txg[c][s] = ok[s] && t[s] <= L ? t[s] : 0;
        if (ok[s] && t[s] > L)
            a->dirty[c] = true; /* a leftover of a txg that never committed */
        if (!ok[s] && info && !blank(slot, a->slot_size) && info->ndamaged++ == 0)
            info->first_damaged = c;
    }
    bool u0 = ok[0] && t[0] <= L, u1 = ok[1] && t[1] <= L;
    if (!u0 && !u1 && !info)
        return berr_set(err, EILSEQ,
                        "allocation map chunk %llu has no valid copy at txg %llu (both slots "
                        "damaged); the pool cannot be imported",
                        (unsigned long long)c, (unsigned long long)L);
    if (!u0 && !u1) {
        if (info->nbad++ == 0)
            info->first_bad = c;
        for (uint32_t i = 0; i < (nbits + 63) / 64; i++)
            w[0][i] = i == nbits / 64 ? ~0ULL >> (64 - nbits % 64) : ~0ULL;
        load_chunk(a, c, w[0], NULL, 0, L);
        chosen[c] = 0;
        return 0;
    }
    int best = u0 && (!u1 || t[0] >= t[1]) ? 0 : 1;
    bool both = u0 && u1 && t[0] != t[1];
    load_chunk(a, c, w[best], both ? w[1 - best] : NULL, t[best], L);
    if (chosen)
        chosen[c] = t[best];
    return 0;
}

static int load_map(struct vdev *v, const struct label_hdr *h, uint64_t txg, struct alloc **out,
                    struct alloc_load_info *info, struct berr *err)
{
    struct alloc *a;
    int r = alloc_init(v, h, &a, err);
    if (r < 0)
        return r;
    size_t pair = 2 * (size_t)a->slot_size;
    uint8_t *buf = malloc(IO_BATCH_CHUNKS * pair);
    uint64_t *w0 = calloc(a->bpc / 64, 8), *w1 = calloc(a->bpc / 64, 8);
    uint64_t *w[2] = {w0, w1};
    uint64_t *chosen = info ? calloc(a->nchunks, 8) : NULL;
    if (!buf || !w0 || !w1 || (info && !chosen))
        r = berr_set(err, ENOMEM, "out of memory loading the allocation map");
    for (uint64_t c0 = 0; r == 0 && c0 < a->nchunks; c0 += IO_BATCH_CHUNKS) {
        uint64_t n = MIN(IO_BATCH_CHUNKS, a->nchunks - c0);
        r = vdev_pread(v, buf, n * pair, slot_offset(a, c0, 0));
        if (r < 0) {
            r = berr_set(err, -r, "cannot read the allocation map: %s", strerror(-r));
            break;
        }
        for (uint64_t i = 0; r == 0 && i < n; i++)
            r = load_pair(a, buf + i * pair, c0 + i, txg, w, info, chosen, err);
    }
    if (r == 0 && info) {
        ub_map_digest(chosen, a->nchunks, info->digest);
        info->nchunks = (uint32_t)a->nchunks;
    }
    free(buf);
    free(w0);
    free(w1);
    free(chosen);
    if (r < 0) {
        alloc_destroy(a);
        return r;
    }
    a->durable_txg = txg;
    *out = a;
    return 0;
}

int alloc_load(struct vdev *v, const struct label_hdr *h, uint64_t txg, struct alloc **out,
               struct berr *err)
{
    return load_map(v, h, txg, out, NULL, err);
}

int alloc_load_checked(struct vdev *v, const struct label_hdr *h, uint64_t txg,
                       struct alloc **out, struct alloc_load_info *info, struct berr *err)
{
    memset(info, 0, sizeof *info);
    return load_map(v, h, txg, out, info, err);
}

uint32_t alloc_digest(struct alloc *a, uint64_t txg, uint8_t out[16])
{
    uint64_t *cur = malloc(a->nchunks * 8);
    memset(out, 0, 16);
    if (!cur || a->nchunks > UINT32_MAX) {
        free(cur);
        return 0;
    }
    pthread_mutex_lock(&a->lock);
    for (uint64_t c = 0; c < a->nchunks; c++) {
        const uint64_t *t = a->slot_txg[c];
        uint64_t b0 = t[0] <= txg ? t[0] : 0, b1 = t[1] <= txg ? t[1] : 0;
        cur[c] = MAX(b0, b1); /* what a load at txg chooses */
    }
    pthread_mutex_unlock(&a->lock);
    ub_map_digest(cur, a->nchunks, out);
    free(cur);
    return (uint32_t)a->nchunks;
}

void alloc_reset(struct alloc *a)
{
    pthread_mutex_lock(&a->lock);
    clear_maps(a, true);
    pthread_mutex_unlock(&a->lock);
}

int alloc_mark_allocated(struct alloc *a, uint64_t off, uint64_t asize)
{
    uint64_t s, e;
    if (!to_sectors(a, off, asize, &s, &e))
        return -EINVAL;
    pthread_mutex_lock(&a->lock);
    bool overlap = alloc_next_bit(a->committed, s, e, true) < e;
    alloc_bits_apply(a, a->warm, s, e, OP_CLEAR); /* warm ∩ inuse = ∅ (top of file) */
    alloc_bits_apply(a, a->inuse, s, e, OP_SET);
    a->committed_sect += alloc_bits_apply(a, a->committed, s, e, OP_SET);
    pthread_mutex_unlock(&a->lock);
    return overlap ? -EEXIST : 0;
}

void alloc_destroy(struct alloc *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    free(a->committed);
    free(a->inuse);
    free(a->warm);
    free(a->chunk_free);
    free(a->chunk_warm);
    free(a->slot_txg);
    free(a->dirty);
    free(a->deferred);
    free(a->trimq);
    free(a);
}

void alloc_free(struct alloc *a, uint64_t off, uint64_t asize, uint64_t txg)
{
    uint64_t s, e;
    if (!to_sectors(a, off, asize, &s, &e))
        return;
    pthread_mutex_lock(&a->lock);
    /* Only sectors actually allocated are freed and deferred: a bogus free
     * must never let a later release discard somebody else's block. */
    while ((s = alloc_next_bit(a->committed, s, e, true)) < e) {
        uint64_t z = alloc_next_bit(a->committed, s, e, false);
        alloc_bits_apply(a, a->committed, s, z, OP_CLEAR);
        a->committed_sect -= z - s;
        if (defer_add(a, s, z - s, txg) < 0) /* no memory: leak until next import */
            break;
        s = z;
    }
    pthread_mutex_unlock(&a->lock);
}

int alloc_sync(struct alloc *a, uint64_t txg)
{
    size_t nd = 0, cap = 0;
    uint64_t *list = NULL;
    int *slots = NULL;
    uint8_t *bufs = NULL;
    int ret = 0;

    pthread_mutex_lock(&a->lock);
    if (txg < a->durable_txg) {
        pthread_mutex_unlock(&a->lock);
        return -EINVAL;
    }
    for (uint64_t c = 0; c < a->nchunks; c++)
        cap += a->dirty[c];
    if (cap) {
        list = malloc(cap * sizeof(*list));
        slots = malloc(cap * sizeof(*slots));
        bufs = malloc(cap * a->slot_size);
    }
    if (cap && (!list || !slots || !bufs)) {
        ret = -ENOMEM;
        cap = 0;
    }
    for (uint64_t c = 0; c < a->nchunks && nd < cap; c++) {
        if (!a->dirty[c])
            continue;
        uint64_t *t = a->slot_txg[c];
        int s;
        if (t[0] == txg || t[1] == txg) {
            s = t[0] == txg ? 0 : 1;
        } else {
            bool d0 = t[0] && t[0] <= a->durable_txg, d1 = t[1] && t[1] <= a->durable_txg;
            int newest = d0 && (!d1 || t[0] >= t[1]) ? 0 : d1 ? 1 : -1;
            s = newest == 0 ? 1 : 0;
        }
        alloc_chunk_encode(bufs + nd * a->slot_size, a->slot_size, c, alloc_chunk_nbits(a, c), txg,
                           a->committed + c * a->bpc / 64);
        a->dirty[c] = false;
        a->slot_txg[c][s] = 0; /* being overwritten: not a valid version now */
        list[nd] = c;
        slots[nd++] = s;
    }
    pthread_mutex_unlock(&a->lock);

    for (size_t i = 0; i < nd; i++) {
        int r = vdev_pwrite(a->v, bufs + i * a->slot_size, a->slot_size,
                            slot_offset(a, list[i], slots[i]));
        pthread_mutex_lock(&a->lock);
        if (r == 0) {
            a->slot_txg[list[i]][slots[i]] = txg;
        } else {
            a->dirty[list[i]] = true;
            if (ret == 0)
                ret = r;
        }
        pthread_mutex_unlock(&a->lock);
    }
    free(list);
    free(slots);
    free(bufs);
    return ret;
}

static int dfree_cmp(const void *x, const void *y)
{
    const struct dfree *p = x, *q = y;
    return p->start < q->start ? -1 : p->start > q->start;
}

/* Sort runs by start and merge those that touch; returns the new count. */
size_t alloc_sort_merge_runs(struct dfree *r, size_t n)
{
    qsort(r, n, sizeof(*r), dfree_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && r[k - 1].start + r[k - 1].n == r[i].start)
            r[k - 1].n += r[i].n;
        else
            r[k++] = r[i];
    }
    return k;
}

void alloc_txg_done(struct alloc *a, uint64_t txg, bool autotrim)
{
    struct dfree *rel = NULL;
    size_t nrel = 0, k = 0;

    pthread_mutex_lock(&a->lock);
    if (txg > a->durable_txg)
        a->durable_txg = txg;
    if (a->allocated)
        a->busy_txgs++;
    a->allocated = false;
    if (a->ndef)
        rel = malloc(a->ndef * sizeof(*rel));
    for (size_t i = 0; rel && i < a->ndef; i++) {
        /* The deferred-reuse rule (top of file): F + DEFER - 1 <= durable. */
        if (a->deferred[i].txg + ALLOC_DEFER_TXGS - 1 <= txg &&
            (!a->hold || a->deferred[i].txg <= a->hold))
            rel[nrel++] = a->deferred[i];
        else
            a->deferred[k++] = a->deferred[i];
    }
    if (rel)
        a->ndef = k;
    pthread_mutex_unlock(&a->lock);
    if (!nrel) {
        free(rel);
        return;
    }
    /* no self-healing rewrite that began before this may land on them */
    vdev_heal_fence(a->v);
    nrel = alloc_sort_merge_runs(rel, nrel);
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < nrel; i++) {
        uint64_t s = rel[i].start, e = s + rel[i].n;
        alloc_bits_apply(a, a->inuse, s, e, OP_RELEASE);
        alloc_bits_apply(a, a->warm, s, e, OP_WARM);
        rel[i].txg = a->busy_txgs;
    }
    a->warm_fail = UINT64_MAX;
    if (autotrim)
        (void)alloc_trimq_add(a, rel, nrel);
    pthread_mutex_unlock(&a->lock);
    free(rel);
}

/* ---- inspection ---- */

bool alloc_deferred_pending(struct alloc *a)
{
    pthread_mutex_lock(&a->lock);
    bool pending = false;
    /* held frees wait for alloc_hold_frees(a, 0), not for more txgs */
    for (size_t i = 0; i < a->ndef && !pending; i++)
        pending = !a->hold || a->deferred[i].txg <= a->hold;
    pthread_mutex_unlock(&a->lock);
    return pending;
}

void alloc_dirty_all(struct alloc *a)
{
    pthread_mutex_lock(&a->lock);
    for (uint64_t c = 0; c < a->nchunks; c++)
        a->dirty[c] = true;
    pthread_mutex_unlock(&a->lock);
}

void alloc_hold_frees(struct alloc *a, uint64_t txg)
{
    pthread_mutex_lock(&a->lock);
    a->hold = txg;
    pthread_mutex_unlock(&a->lock);
}

void alloc_stats(struct alloc *a, struct alloc_stats *st)
{
    uint64_t small = 0, frag_run = FRAG_RUN_BYTES >> a->ashift;
    pthread_mutex_lock(&a->lock);
    uint64_t freesect = a->nsect - a->committed_sect;
    for (uint64_t s = 0; (s = alloc_next_bit(a->committed, s, a->nsect, false)) < a->nsect;) {
        uint64_t z = alloc_next_bit(a->committed, s, a->nsect, true);
        if (z - s < frag_run)
            small += z - s;
        s = z;
    }
    st->size = a->nsect << a->ashift;
    st->allocated = a->committed_sect << a->ashift;
    st->free = freesect << a->ashift;
    st->available = a->inuse_free << a->ashift;
    st->fragmentation = freesect ? (unsigned)(small * 100 / freesect) : 0;
    pthread_mutex_unlock(&a->lock);
}

void alloc_space(struct alloc *a, uint64_t *size, uint64_t *available)
{
    pthread_mutex_lock(&a->lock);
    *size = a->nsect << a->ashift;
    *available = a->inuse_free << a->ashift;
    pthread_mutex_unlock(&a->lock);
}

bool alloc_is_allocated(struct alloc *a, uint64_t off, uint64_t asize)
{
    uint64_t s, e;
    if (!to_sectors(a, off, asize, &s, &e))
        return false;
    pthread_mutex_lock(&a->lock);
    bool all = alloc_next_bit(a->committed, s, e, false) == e;
    pthread_mutex_unlock(&a->lock);
    return all;
}

int alloc_foreach_allocated(struct alloc *a, int (*cb)(uint64_t off, uint64_t len, void *o),
                            void *opaque)
{
    /* Work on a copy so that cb may call back into the allocator. */
    size_t nwords = (size_t)(a->nchunks * a->bpc / 64);
    _cleanup_free_ uint64_t *snap = malloc(nwords * 8);
    if (!snap)
        return -ENOMEM;
    pthread_mutex_lock(&a->lock);
    memcpy(snap, a->committed, nwords * 8);
    pthread_mutex_unlock(&a->lock);
    for (uint64_t s = 0; (s = alloc_next_bit(snap, s, a->nsect, true)) < a->nsect;) {
        uint64_t z = alloc_next_bit(snap, s, a->nsect, false);
        int r = cb(s << a->ashift, (z - s) << a->ashift, opaque);
        if (r)
            return r;
        s = z;
    }
    return 0;
}
