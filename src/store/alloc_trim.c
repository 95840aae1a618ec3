/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Trimming the free space of one top-level vdev's allocator (alloc.c holds
 * the maps and their invariants).
 *
 * Lazy autotrim (as ZFS's zfs_trim_txg_batch): a release does not discard.
 * With autotrim on it queues the released runs in `trimq`, each stamped with
 * busy_txgs, the count of durable txgs that allocated space.  alloc_trim_ripe,
 * on the pool's trim thread, takes the runs ALLOC_TRIM_DELAY_TXGS or more
 * such txgs old (empty txgs, e.g. those draining deferred frees, do not
 * age them: they give nothing a chance to reuse the space), or all runs when
 * the pool idles, and discards whatever of them is still warm, in runs of
 * at least AUTOTRIM_MIN_BYTES.
 *
 * THE BUSY RULE: while the pool is busy (not an idle pass), ripe runs are
 * discarded oldest first only while more than `keep` bytes of the queue are
 * still warm (the caller passes two txgs' worth of dirty data; at most 1/8
 * of the top).  A stream of rewrites frees about what it writes, and the
 * allocator takes that space back a few txgs later (the sequential-stream
 * rule); punching it first cost the stream a hole punch under the file's
 * locks, then a fresh block allocation and new page-cache pages for the
 * same range: 1 MiB writes after random writes ran at 1040-1190 MB/s with
 * 25-180 MiB punched per txg, ~1400 without (docs/PERFORMANCE.md, ninth
 * round).  Runs wholly taken back leave the queue at each pass.  A run is
 * discarded ALLOC_TRIM_MAX_AGE_TXGS busy txgs after its release whatever
 * `keep` says (ZFS's zfs_trim_txg_batch): a guest's discard on a pool that
 * never idles (one VM writing a log) comes back then, not never; a stream
 * of rewrites takes its runs back long before.  So a busy pool keeps at
 * most `keep` of freed space in the host file beyond what it will soon
 * rewrite, none of it for long, and an idle pool gives all of it back.
 * What the
 * allocator took back meanwhile is no longer warm and is not discarded: a
 * rewrite lands on blocks the host file system still has (an overwrite, not
 * a fresh block allocation plus a hole punch per txg).  Safety: a sector is
 * only ever discarded while free in both bitmaps and reserved in inuse, and
 * a free sector was released, i.e. its free is durable and past the
 * deferred-reuse rule; discarding free space loses nothing.  The queue is
 * not persistent: an export or close punches all of it (txg_fini's final
 * pass, tests/unit/test-closetrim.c); after a crash what was still queued
 * stays allocated in the host file until `berth pool trim` (alloc_trim_all).
 *
 * Both paths here discard the same way (discard_reserved): runs are
 * reserved in inuse (and taken out of warm) under the lock, discarded
 * without it, then cleared in inuse again; so no allocation can race a
 * discard. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "store/alloc.h"
#include "store/alloc_impl.h"
#include "store/vdev.h"

/* Autotrim skips freed runs shorter than this (ZFS's
 * zfs_trim_extent_bytes_min is 32K): punching a hole costs a syscall and a
 * file system transaction each, and takes the file's invalidate lock that
 * readers and writers of the page cache need.  Punching the scattered runs
 * a random-write workload frees (mostly 16-64K) took ~9 ms per MiB here
 * (docs/PERFORMANCE.md), only for the space to be allocated again by the
 * next writes; such runs stay warm (the allocator reuses them first) and
 * `berth pool trim` gets them all back.  A guest's discard of a file or a
 * volume's range frees long runs, which go back at once. */
#define AUTOTRIM_MIN_BYTES (128u << 10)

/* The busy rule's `keep` is at most this fraction of the top's sectors. */
#define ALLOC_TRIM_KEEP_DIV 8u

int alloc_trimq_add(struct alloc *a, const struct dfree *r, size_t n)
{
    if (a->ntq + n > a->captq) {
        size_t cap = MAX(a->captq * 2, a->ntq + n);
        struct dfree *q = realloc(a->trimq, cap * sizeof(*q));
        if (!q)
            return -ENOMEM; /* not queued: stays warm until trim_all */
        a->trimq = q;
        a->captq = cap;
    }
    memcpy(a->trimq + a->ntq, r, n * sizeof(*r));
    a->ntq += n;
    return 0;
}

/* Discard runs reserved in inuse by the caller (lock not held), then free
 * them again; returns the sectors discarded. */
static uint64_t discard_reserved(struct alloc *a, const struct dfree *runs, size_t n)
{
    uint64_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (vdev_discard_block(a->v, runs[i].start << a->ashift, runs[i].n << a->ashift) == 0)
            done += runs[i].n;
    }
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < n; i++)
        alloc_bits_apply(a, a->inuse, runs[i].start, runs[i].start + runs[i].n, OP_CLEAR);
    pthread_mutex_unlock(&a->lock);
    return done;
}

/* Discard the warm runs of at least min sectors inside [s, e), a batch at
 * a time: reserved in inuse and taken out of warm under the lock, discarded
 * without it, then freed again.  Returns the sectors discarded. */
static uint64_t discard_warm(struct alloc *a, uint64_t s, uint64_t e, uint64_t min,
                             bool (*stop)(void *), void *sctx)
{
    uint64_t done = 0;
    while (s < e && !(stop && stop(sctx))) {
        struct dfree runs[64];
        size_t n = 0;
        pthread_mutex_lock(&a->lock);
        while (n < ARRAY_SIZE(runs) && (s = alloc_next_bit(a->warm, s, e, true)) < e) {
            uint64_t z = alloc_next_bit(a->warm, s, e, false);
            if (z - s >= min) {
                alloc_bits_apply(a, a->warm, s, z, OP_CLEAR);
                alloc_bits_apply(a, a->inuse, s, z, OP_SET);
                runs[n++] = (struct dfree){s, z - s, 0};
            }
            s = z;
        }
        pthread_mutex_unlock(&a->lock);
        done += discard_reserved(a, runs, n);
        if (n < ARRAY_SIZE(runs))
            break;
    }
    return done;
}

/* The sectors of queued run i still warm, for the busy rule's count; 0 for
 * a run shorter than min (a pass discards nothing of it unless merged with
 * a neighbour, so it leaves the queue once ripe, busy or not). */
static uint64_t queued_warm(const struct alloc *a, size_t i, uint64_t min)
{
    const struct dfree *r = &a->trimq[i];
    return r->n >= min ? alloc_count_bits(a->warm, r->start, r->start + r->n) : 0;
}

uint64_t alloc_trim_ripe(struct alloc *a, bool autotrim, bool all, uint64_t keep_bytes,
                         bool (*stop)(void *), void *sctx)
{
    struct dfree *ripe = NULL;
    size_t nr = 0, k = 0;
    const uint64_t min = MAX(AUTOTRIM_MIN_BYTES >> a->ashift, 1);
    pthread_mutex_lock(&a->lock);
    if (a->ntq)
        ripe = malloc(a->ntq * sizeof(*ripe));
    /* runs wholly allocated again (nothing warm: nothing to discard there)
     * leave the queue; `queued` is what the rest still holds warm */
    uint64_t queued = 0;
    for (size_t i = 0; ripe && i < a->ntq; i++) {
        const struct dfree *r = &a->trimq[i];
        if (alloc_next_bit(a->warm, r->start, r->start + r->n, true) < r->start + r->n) {
            a->trimq[k] = *r;
            queued += queued_warm(a, k++, min);
        }
    }
    if (ripe)
        a->ntq = k;
    uint64_t keep = MIN(keep_bytes >> a->ashift, a->nsect / ALLOC_TRIM_KEEP_DIV);
    k = 0;
    for (size_t i = 0; ripe && i < a->ntq; i++) {
        /* THE BUSY RULE: while the pool is busy, ripe runs are discarded
         * only while more than `keep` sectors are queued, oldest first, or
         * once ALLOC_TRIM_MAX_AGE_TXGS old (stamps never pass busy_txgs) */
        uint64_t age = a->busy_txgs - a->trimq[i].txg, w = queued_warm(a, i, min);
        if (all || (age >= ALLOC_TRIM_DELAY_TXGS &&
                    (w == 0 || queued > keep || age >= ALLOC_TRIM_MAX_AGE_TXGS))) {
            ripe[nr++] = a->trimq[i];
            queued -= w;
        } else {
            a->trimq[k++] = a->trimq[i];
        }
    }
    if (ripe)
        a->ntq = k;
    if (a->ntq == 0 && a->captq > 4096) { /* a burst's queue: give it back */
        free(a->trimq);
        a->trimq = NULL;
        a->captq = 0;
    }
    pthread_mutex_unlock(&a->lock);
    uint64_t done = 0;
    if (nr && autotrim) {
        nr = alloc_sort_merge_runs(ripe, nr);
        size_t i = 0;
        for (; i < nr && !(stop && stop(sctx)); i++)
            done += discard_warm(a, ripe[i].start, ripe[i].start + ripe[i].n, min, stop, sctx);
        if (i < nr) { /* stopped: the rest (the interrupted run too) waits again */
            size_t from = i ? i - 1 : 0;
            pthread_mutex_lock(&a->lock);
            (void)alloc_trimq_add(a, ripe + from, nr - from);
            pthread_mutex_unlock(&a->lock);
        }
    }
    free(ripe);
    return done << a->ashift;
}

void alloc_warm_stats(struct alloc *a, uint64_t *warm, uint64_t *queued)
{
    pthread_mutex_lock(&a->lock);
    uint64_t w = a->warm_total, q = 0;
    for (size_t i = 0; i < a->ntq; i++)
        q += a->trimq[i].n;
    pthread_mutex_unlock(&a->lock);
    *warm = w << a->ashift;
    *queued = q << a->ashift;
}

int alloc_trim_all(struct alloc *a, uint64_t *bytes)
{
    uint64_t total = 0;
    for (uint64_t c = 0; c < a->nchunks; c++) {
        uint64_t pos = c * a->bpc, e = pos + alloc_chunk_nbits(a, c);
        while (pos < e) {
            struct dfree runs[64];
            size_t n = 0;
            pthread_mutex_lock(&a->lock);
            /* Reserve free runs (set them in inuse) so that nothing is
             * allocated into a range while it is being discarded. */
            while (n < ARRAY_SIZE(runs) && (pos = alloc_next_bit(a->inuse, pos, e, false)) < e) {
                uint64_t z = alloc_next_bit(a->inuse, pos, e, true);
                alloc_bits_apply(a, a->warm, pos, z, OP_CLEAR);
                alloc_bits_apply(a, a->inuse, pos, z, OP_SET);
                runs[n++] = (struct dfree){pos, z - pos, 0};
                pos = z;
            }
            pthread_mutex_unlock(&a->lock);
            if (!n)
                break;
            total += discard_reserved(a, runs, n);
        }
    }
    if (bytes)
        *bytes = total << a->ashift;
    return 0;
}
