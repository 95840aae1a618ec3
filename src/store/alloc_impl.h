/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internals of the allocator shared by alloc.c (maps, allocation, deferred
 * frees) and alloc_trim.c (lazy autotrim, trim of all free space).  The
 * invariants are at the top of alloc.c; everything here is under a->lock
 * unless said otherwise. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dfree {
    uint64_t start, n, txg; /* sectors */
};

struct alloc {
    pthread_mutex_t lock;
    struct vdev *v;
    int ashift;
    uint64_t nsect;
    uint64_t bitmap_offset, nchunks;
    uint32_t slot_size, bpc; /* bits per chunk (a multiple of 64) */
    uint64_t *committed, *inuse, *warm;
    uint32_t *chunk_free, *chunk_warm; /* clear inuse / set warm bits per chunk */
    uint64_t (*slot_txg)[2];
    bool *dirty;
    uint64_t cursor, durable_txg, committed_sect, inuse_free;
    struct dfree *deferred;
    size_t ndef, capdef;
    uint64_t hold;           /* != 0: frees of txgs > hold are not released (scrub) */
    uint64_t warm_cursor;    /* next fit among warm sectors */
    uint64_t far_cursor;     /* next fit of ditto copies (alloc_alloc_far) */
    uint64_t warm_total;     /* set warm bits */
    uint64_t busy_txgs;      /* durable txgs that allocated (the trim delay's clock) */
    bool allocated;          /* something was allocated since the last txg_done */
    uint64_t warm_fail;      /* a warm run this long was not found since warm grew */
    struct dfree *trimq;     /* runs awaiting lazy autotrim, .txg = busy_txgs at release */
    size_t ntq, captq;
};

/* First bit in [pos, end) equal to `one`, or end. */
uint64_t alloc_next_bit(const uint64_t *w, uint64_t pos, uint64_t end, bool one);
/* Set bits of w in [s, e). */
uint64_t alloc_count_bits(const uint64_t *w, uint64_t s, uint64_t e);

/* Apply an operation over the bits [s, e) of map w (inuse or warm), keeping
 * the per-chunk counters; returns the number of bits that changed. */
enum bitop { OP_SET, OP_CLEAR, OP_RELEASE, OP_WARM };
uint64_t alloc_bits_apply(struct alloc *a, uint64_t *w, uint64_t s, uint64_t e, enum bitop op);

/* Sectors covered by chunk c (the last one may be short). */
uint32_t alloc_chunk_nbits(const struct alloc *a, uint64_t c);

/* Sort runs by start and merge those that touch; returns the new count. */
size_t alloc_sort_merge_runs(struct dfree *r, size_t n);

/* Queue released runs for lazy autotrim (alloc_trim.c); -ENOMEM leaves them
 * warm and unqueued (alloc_trim_all still gets them). */
int alloc_trimq_add(struct alloc *a, const struct dfree *r, size_t n);
