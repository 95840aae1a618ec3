/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where the allocator of one top-level vdev places blocks (the maps, their
 * invariants and the deferred-free rule are at the top of alloc.c; this
 * file only takes clear sectors of inuse, under a->lock, and keeps
 * warm ∩ inuse = ∅ by clearing warm over what it takes).
 *
 * Policy, not an invariant: warm space first, crumbs too, for
 * single blocks and random batches; a batch of consecutive blocks of one
 * dataset takes one warm run that long, else pieces of warm extents of at
 * least 128 KiB in address order, else one fresh run, never crumbs (the
 * sequential-stream rule, alloc_alloc_blocks / place_stream): warm space
 * is still in the page cache, and a write into fresh space costs new page
 * cache pages, a write into crumbs a syscall and an extent per 16K.
 *
 * Ditto copies (alloc_alloc_far) go at least 1/8 of the data area away from
 * the first copy, from their own next-fit cursor. */
#include "store/alloc.h"
#include "store/alloc_impl.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/cleanup.h"

/* First run of n clear inuse bits starting in [start, end) and ending by
 * end; chunks with no free sector are skipped without looking at them. */
static bool find_run(const struct alloc *a, uint64_t start, uint64_t end, uint64_t n,
                     uint64_t *out)
{
    uint64_t pos = start;
    while (pos < end) {
        uint64_t c = pos / a->bpc;
        uint64_t cend = MIN((c + 1) * a->bpc, end);
        if (a->chunk_free[c] == 0) {
            pos = cend;
            continue;
        }
        uint64_t z = alloc_next_bit(a->inuse, pos, cend, false);
        if (z >= cend) {
            pos = cend;
            continue;
        }
        uint64_t o = alloc_next_bit(a->inuse, z, MIN(z + n, end), true);
        if (o - z >= n) {
            *out = z;
            return true;
        }
        pos = o;
    }
    return false;
}

/* Warm space first (top of file): rewriting blocks the vdev still backs
 * costs a file system no block allocation.  This is the one place that
 * looks for it, for single blocks (alloc_alloc) and runs of blocks
 * (alloc_alloc_blocks): the next warm extent from warm_cursor on (next fit,
 * wrapping once) that holds `need` sectors, in [*z, *o) (*o is looked for
 * no further than `want` >= need sectors: what the caller can use; a
 * giant warm extent costs no scan to its end).  Extents too small
 * are passed over and the cursor moves past them, so the next search does
 * not look at them again; with a budget, at most *budget of them per call
 * (a map of crumbs then costs a bounded scan, and the search goes on from
 * there next time).  A search that looked at every warm extent remembers
 * `need` in warm_fail: nothing that long or longer is searched for again
 * until a release makes more space warm. */
static bool warm_extent(struct alloc *a, uint64_t need, uint64_t want, unsigned *budget,
                        uint64_t *z, uint64_t *o)
{
    if (need >= a->warm_fail || a->warm_total < need)
        return false;
    uint64_t start = MIN(a->warm_cursor, a->nsect), pos = start;
    bool wrapped = false;
    for (;;) {
        uint64_t c = pos / a->bpc;
        if (pos >= a->nsect || (wrapped && pos >= start)) {
            if (wrapped)
                break;
            wrapped = true;
            pos = 0;
            continue;
        }
        if (a->chunk_warm[c] == 0) {
            pos = (c + 1) * a->bpc;
            continue;
        }
        uint64_t cend = MIN((c + 1) * a->bpc, a->nsect);
        uint64_t s = alloc_next_bit(a->warm, pos, cend, true);
        if (s >= cend) {
            pos = cend;
            continue;
        }
        uint64_t e = alloc_next_bit(a->warm, s, MIN(s + want, a->nsect), false);
        if (e - s >= need) {
            *z = s;
            *o = e;
            return true;
        }
        pos = a->warm_cursor = e;
        if (budget && --*budget == 0)
            return false; /* not every extent seen: no warm_fail */
    }
    a->warm_fail = need;
    return false;
}

/* Give [s, e) to the txg being built: it leaves warm, joins inuse and
 * committed. */
static void take(struct alloc *a, uint64_t s, uint64_t e)
{
    alloc_bits_apply(a, a->warm, s, e, OP_CLEAR);
    alloc_bits_apply(a, a->inuse, s, e, OP_SET);
    alloc_bits_apply(a, a->committed, s, e, OP_SET);
    a->committed_sect += e - s;
    a->allocated = true;
}

/* n sectors back to back in fresh space (next fit: continue where the last
 * fresh allocation ended, so blocks written one after another land one
 * after another on disk); not taken yet. */
static bool fresh_run(struct alloc *a, uint64_t n, uint64_t *s)
{
    if (a->inuse_free < n || !(find_run(a, a->cursor, a->nsect, n, s) ||
                               find_run(a, 0, MIN(a->cursor + n - 1, a->nsect), n, s)))
        return false;
    a->cursor = *s + n;
    return true;
}

/* n sectors back to back, warm if an extent that long is warm, else fresh. */
static bool alloc_run(struct alloc *a, uint64_t n, uint64_t *s)
{
    uint64_t o;
    if (warm_extent(a, n, n, NULL, s, &o))
        a->warm_cursor = *s + n;
    else if (!fresh_run(a, n, s))
        return false;
    take(a, *s, *s + n);
    return true;
}

int alloc_alloc(struct alloc *a, uint64_t asize, uint64_t txg, uint64_t *off)
{
    (void)txg;
    uint64_t mask = (1ULL << a->ashift) - 1, s;
    if (asize == 0 || (asize & mask))
        return -EINVAL;
    pthread_mutex_lock(&a->lock);
    bool found = alloc_run(a, asize >> a->ashift, &s);
    pthread_mutex_unlock(&a->lock);
    if (!found)
        return -ENOSPC;
    *off = s << a->ashift;
    return 0;
}

/* First run of n free sectors in [start, end) wrapping once from `from`
 * (clamped into the window); false if the window holds none. */
static bool find_run_from(const struct alloc *a, uint64_t start, uint64_t end, uint64_t from,
                          uint64_t n, uint64_t *s)
{
    if (end <= start || end - start < n)
        return false;
    if (from < start || from >= end)
        from = start;
    return find_run(a, from, end, n, s) || find_run(a, start, MIN(from + n - 1, end), n, s);
}

int alloc_alloc_far(struct alloc *a, uint64_t asize, uint64_t avoid, uint64_t *off)
{
    uint64_t mask = (1ULL << a->ashift) - 1, s = 0;
    if (asize == 0 || (asize & mask) || (avoid & mask))
        return -EINVAL;
    uint64_t n = asize >> a->ashift, v = avoid >> a->ashift;
    uint64_t dist = a->nsect / 8;
    pthread_mutex_lock(&a->lock);
    if (a->far_cursor == 0 || a->far_cursor >= a->nsect)
        a->far_cursor = a->nsect / 2;
    bool found = false;
    if (a->inuse_free >= n) {
        /* far enough: [v + n + dist, nsect) and [0, v - dist - n] */
        uint64_t hi = v + n + dist;
        uint64_t lo_end = v > dist ? v - dist : 0; /* runs must end by here */
        found = (hi < a->nsect && find_run_from(a, hi, a->nsect, a->far_cursor, n, &s)) ||
                find_run_from(a, 0, lo_end, a->far_cursor, n, &s);
        /* else anywhere that does not overlap the first copy */
        if (!found)
            found = find_run_from(a, v + n, a->nsect, a->far_cursor, n, &s) ||
                    find_run_from(a, 0, v, 0, n, &s);
    }
    if (found) {
        take(a, s, s + n);
        a->far_cursor = s + n;
    }
    pthread_mutex_unlock(&a->lock);
    if (!found)
        return -ENOSPC;
    *off = s << a->ashift;
    return 0;
}

/* Most warm crumbs too small for the next block that one alloc_alloc_blocks
 * call passes over. */
#define WARM_CRUMBS_PER_CALL 64u

/* The shortest warm extent a sequential stream's batch takes a piece of,
 * and how many shorter ones one batch passes over looking for them (a
 * crumb costs a few bit operations; a search that saw every warm extent
 * is not repeated until the next release, warm_fail).  Measured on this
 * machine's ext4 (docs/PERFORMANCE.md, seventh round): writing 1 GiB into
 * resident page-cache pages in address order costs 0.97 s of CPU in 16K
 * pieces, 0.68 in 32K, 0.64 in 64K, 0.39 in 128K, 0.24 in 256K, 0.17-0.23
 * in 1M; into fresh file space 0.29-1.6 (new page-cache pages, whose first
 * touch the VM's host may have to back again: bimodal). */
#define STREAM_MIN_BYTES (128u << 10)
#define STREAM_CRUMBS_PER_CALL 1024u

/* The sequential-stream rule for a batch of n blocks, *rest sectors in
 * all: one warm extent that long; else the warm extents of at least
 * STREAM_MIN_BYTES (and at least the next block) from the warm cursor on,
 * in address order, each taking as many of the next blocks as fit; the
 * rest in one fresh run.  Returns the blocks placed (offs[]): n, or fewer
 * when no fresh run was long enough for the rest (*rest: its sectors). */
static int place_stream(struct alloc *a, const uint32_t *asize, int n, uint64_t *rest,
                        uint64_t *offs)
{
    uint64_t s, z, o;
    int placed = 0;
    if (warm_extent(a, *rest, *rest, NULL, &s, &o)) {
        a->warm_cursor = s + *rest;
    } else {
        unsigned budget = STREAM_CRUMBS_PER_CALL;
        uint64_t min = STREAM_MIN_BYTES >> a->ashift;
        for (;;) {
            uint64_t need = MAX(min, asize[placed] >> a->ashift);
            if (!warm_extent(a, need, MAX(need, *rest), &budget, &z, &o))
                break;
            s = z;
            while (placed < n && s + (asize[placed] >> a->ashift) <= o) {
                offs[placed] = s << a->ashift;
                s += asize[placed] >> a->ashift;
                *rest -= asize[placed++] >> a->ashift;
            }
            take(a, z, s);
            a->warm_cursor = s;
            if (placed == n)
                return n;
        }
        if (!fresh_run(a, *rest, &s))
            return placed;
    }
    take(a, s, s + *rest);
    *rest = 0;
    for (; placed < n; placed++) {
        offs[placed] = s << a->ashift;
        s += asize[placed] >> a->ashift;
    }
    return n;
}

int alloc_alloc_blocks(struct alloc *a, const uint32_t *asize, int n, uint64_t txg, bool run,
                       bool seq, uint64_t *offs)
{
    (void)txg;
    int placed = 0;
    unsigned budget = WARM_CRUMBS_PER_CALL;
    uint64_t z, o, rest = 0, s;
    for (int i = 0; i < n; i++)
        rest += asize[i] >> a->ashift;
    pthread_mutex_lock(&a->lock);
    /* THE SEQUENTIAL-STREAM RULE: consecutive blocks of a sequential stream
     * go into one run if an extent that long is warm, else into warm
     * extents of at least STREAM_MIN_BYTES, else fresh, never into crumbs:
     * spread over the crumbs random writes left, a 1 MiB stream became up
     * to 64 scattered writes (docs/PERFORMANCE.md, sixth round); always
     * fresh, it grew the page cache by what it wrote, at up to 1.4 s of CPU
     * per GiB for the new pages (seventh round).  The crumbs stay warm for
     * small and random writes. */
    if (seq && run && n > 1)
        placed = place_stream(a, asize, n, &rest, offs);
    /* warm extents first, each taking as many of the next blocks as fit */
    while (placed < n && warm_extent(a, asize[placed] >> a->ashift, rest, &budget, &z, &o)) {
        s = z;
        while (placed < n && s + (asize[placed] >> a->ashift) <= o) {
            offs[placed] = s << a->ashift;
            s += asize[placed] >> a->ashift;
            rest -= asize[placed++] >> a->ashift;
        }
        take(a, z, s);
        a->warm_cursor = s;
    }
    /* the rest back to back: one write for the caller */
    if (rest && run && alloc_run(a, rest, &s)) {
        for (; placed < n; placed++) {
            offs[placed] = s << a->ashift;
            s += asize[placed] >> a->ashift;
        }
    }
    pthread_mutex_unlock(&a->lock);
    return placed;
}

