/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Space allocation for one top-level vdev: a bitmap of sectors, persisted as
 * double-slotted chunks (docs/FORMAT.md section 4).
 *
 * Invariants:
 *  - `committed` bit set  <=> the block is referenced by the tree of the txg
 *    being built (what will be written with that txg);
 *  - `inuse` bit set      <=> committed, or freed less than ALLOC_DEFER_TXGS
 *    synced txgs ago; the allocator only hands out sectors clear in `inuse`;
 *  - a chunk slot holding the newest durable version of a chunk is never
 *    overwritten; changed chunks go to the other slot.
 * All functions are thread-safe (one internal mutex); alloc_alloc is called
 * from several sync workers at once. */
#ifndef BERTH_STORE_ALLOC_H
#define BERTH_STORE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/label.h"
#include "store/vdev.h"

#define ALLOC_DEFER_TXGS 3
/* Lazy autotrim: a released run is discarded (what of it is still free and
 * not rewritten) once this many more txgs that allocated space are durable. */
#define ALLOC_TRIM_DELAY_TXGS 4
/* ... and at the latest this many (alloc_trim.c, the busy rule), as ZFS's
 * zfs_trim_txg_batch. */
#define ALLOC_TRIM_MAX_AGE_TXGS 32

struct alloc;

/* A fresh map: everything free.  Writes every chunk's slot 0 stamped `txg`
 * (the pool's create txg) so that import finds a valid version. */
int alloc_create(struct vdev *v, const struct label_hdr *h, uint64_t txg, struct alloc **out,
                 struct berr *err);
/* Load the state as of committed txg `txg`. -EILSEQ with a message if a chunk
 * has no valid slot. */
int alloc_load(struct vdev *v, const struct label_hdr *h, uint64_t txg, struct alloc **out,
               struct berr *err);
void alloc_destroy(struct alloc *a); /* frees memory only; NULL accepted */

/* What alloc_load_checked found. */
struct alloc_load_info {
    uint8_t digest[16];     /* ub_map_digest of the chosen versions' txgs (0: none) */
    uint32_t nchunks;
    uint64_t nbad;          /* chunks with no valid version <= txg */
    uint64_t first_bad;
    uint64_t ndamaged;      /* slots neither valid nor blank (all zero) */
    uint64_t first_damaged;
    unsigned bad_top;       /* pool_tops_load_maps: the top of first_bad/first_damaged */
};
/* alloc_load for import: a chunk with no valid version does not fail the
 * load; it is counted in *info and loaded as fully allocated (nothing in it
 * is handed out).  The caller compares info->digest with the uberblock's and,
 * on any difference or bad chunk, rebuilds the map (alloc_reset, then
 * alloc_mark_allocated for every block of every tree).  Fails only on I/O
 * errors, a bad layout or no memory. */
int alloc_load_checked(struct vdev *v, const struct label_hdr *h, uint64_t txg,
                       struct alloc **out, struct alloc_load_info *info, struct berr *err);

/* The digest of the map as of txg, for its uberblock (call after
 * alloc_sync(txg) succeeded): ub_map_digest over, per chunk, the highest txg
 * <= txg stamped in a valid slot.  Returns the chunk count, or 0 (digest
 * zeroed: none recorded) if out of memory. */
uint32_t alloc_digest(struct alloc *a, uint64_t txg, uint8_t out[16]);

/* Rebuild, step 1: forget every allocation and deferred free (everything
 * free), mark every chunk dirty so that the next alloc_sync rewrites all of
 * them; the slot txgs are kept, so that rewrite still never overwrites the
 * newest durable version. */
void alloc_reset(struct alloc *a);
/* Rebuild, step 2: mark [off, off+asize) allocated.  0; -EINVAL if misaligned
 * or outside the data area (nothing marked); -EEXIST if a sector of it was
 * already marked: two blocks overlap (the range is marked anyway). */
int alloc_mark_allocated(struct alloc *a, uint64_t off, uint64_t asize);

/* Allocate `asize` bytes (multiple of the sector) for txg, warm free space
 * first (alloc.c top: a run the vdev still backs), else fresh free space
 * (next fit).  Returns the offset from the start of the data area in *off,
 * or -ENOSPC. */
int alloc_alloc(struct alloc *a, uint64_t asize, uint64_t txg, uint64_t *off);
/* alloc_alloc for the ditto copy of a block at `avoid` (docs/FORMAT.md
 * section 5): a run at least 1/8 of the data area away from
 * [avoid, avoid + asize) (ZFS's ditto distance), searched next fit from
 * its own cursor, which starts in the middle of the data area (metadata
 * copies gather there, away from the data written from the start); only
 * if no free run is that far, anywhere not overlapping the first copy.
 * -ENOSPC if none. */
int alloc_alloc_far(struct alloc *a, uint64_t asize, uint64_t avoid, uint64_t *off);
/* Place blocks 0, 1, ... of sizes asize[] (non-zero sector multiples) for
 * txg, warm free space first as alloc_alloc does, but fragments too:
 * consecutive blocks back to back while a warm extent lasts (warm crumbs
 * too small for the next block are passed over, at most 64 per call), so
 * that a rewrite reuses space the vdev still backs even when it is
 * fragmented; then, if `run`, the rest back to back in one run (warm if one
 * that long is, else fresh).  Returns how many leading blocks were placed
 * (offs[i] for each); fewer than n when no run was long enough for the
 * rest (or !run): the caller allocates those otherwise (alloc_alloc).
 * `seq` (consecutive blocks of a sequential stream) with `run`: all n blocks
 * in one warm extent that long, else in warm extents of at least 128 KiB
 * (address order) and the rest in one fresh run; crumbs only if no fresh
 * run that long is free (alloc.c, the sequential-stream rule). */
int alloc_alloc_blocks(struct alloc *a, const uint32_t *asize, int n, uint64_t txg, bool run,
                       bool seq, uint64_t *offs);
/* Free a block in txg (deferred reuse, see invariants). */
void alloc_free(struct alloc *a, uint64_t off, uint64_t asize, uint64_t txg);
/* Write the chunks changed in txg to their free slots (no flush). */
int alloc_sync(struct alloc *a, uint64_t txg);
/* txg is durable: frees from txg - ALLOC_DEFER_TXGS + 1 and older become
 * reusable (and warm: preferred by alloc_alloc, the vdev still backs them);
 * if autotrim, their ranges are queued for alloc_trim_ripe.  No I/O. */
void alloc_txg_done(struct alloc *a, uint64_t txg, bool autotrim);

/* Lazy autotrim (alloc_trim.c top): discard what is still free and warm of
 * the queued runs released ALLOC_TRIM_DELAY_TXGS or more allocating txgs
 * ago, oldest first, while more than `keep_bytes` (at most 1/8 of the top)
 * of the queue is still warm, and those ALLOC_TRIM_MAX_AGE_TXGS old in any
 * case; or of all queued runs if `all` (the pool idles).  Runs of at least 128 KiB only; without autotrim just drop them
 * from the queue.  Stops early when stop(sctx) returns true (stop may be
 * NULL; what was not done stays queued).  Returns the bytes discarded.
 * Runs on the pool's trim thread, concurrently with allocations. */
uint64_t alloc_trim_ripe(struct alloc *a, bool autotrim, bool all, uint64_t keep_bytes,
                         bool (*stop)(void *), void *sctx);
/* Bytes free and warm, and bytes queued for lazy autotrim (for tests). */
void alloc_warm_stats(struct alloc *a, uint64_t *warm, uint64_t *queued);

/* Are frees still waiting for their deferral to expire?  (The sync thread
 * keeps committing txgs until they drain, so freed space always comes back.) */
bool alloc_deferred_pending(struct alloc *a);

/* Have the next alloc_sync write every chunk (to every leaf of a mirror):
 * a leaf that missed txgs gets the current map at once. */
void alloc_dirty_all(struct alloc *a);

/* Keep every block of the tree of committed txg `txg` on disk: frees made in
 * txgs after it are not released (not handed out again, not trimmed) until
 * the hold is lifted with txg 0.  A scrub walks that tree without locks
 * meanwhile.  Blocks of the tree of txg T are only ever freed in txgs > T. */
void alloc_hold_frees(struct alloc *a, uint64_t txg);

/* Discard every free range (berth pool trim), queued for lazy trim or not. */
int alloc_trim_all(struct alloc *a, uint64_t *bytes);

struct alloc_stats {
    uint64_t size;          /* bytes in the data area */
    uint64_t allocated;     /* committed bytes */
    uint64_t free;
    uint64_t available;     /* free and not deferred: what new writes can get now */
    unsigned fragmentation; /* percent of free bytes in runs shorter than 1 MiB */
};
void alloc_stats(struct alloc *a, struct alloc_stats *st);
/* Cheap part of alloc_stats (no scan): data area bytes and `available`. */
void alloc_space(struct alloc *a, uint64_t *size, uint64_t *available);

/* For the leak checker: is every sector of the range set in `committed`? */
bool alloc_is_allocated(struct alloc *a, uint64_t off, uint64_t asize);
/* For the leak checker: iterate committed extents. cb returns non-zero to stop. */
int alloc_foreach_allocated(struct alloc *a, int (*cb)(uint64_t off, uint64_t len, void *o),
                            void *opaque);

/* One on-disk chunk slot (FORMAT.md section 4), exposed for tests and the
 * fuzzer.  encode fills buf[0..slot_size) from `words` (ceil(nbits/64)
 * words, LSB first).  decode validates magic, chunk index, bit count, the
 * XXH3-128 self checksum, the set-bit count and that bits past nbits and the
 * reserved bytes are zero; it returns 0 (filling *txg and, if non-NULL,
 * ceil(nbits/64) words) or -EILSEQ.  Never reads past buf[len). */
void alloc_chunk_encode(uint8_t *buf, uint32_t slot_size, uint64_t chunk, uint32_t nbits,
                        uint64_t txg, const uint64_t *words);
int alloc_chunk_decode(const uint8_t *buf, size_t len, uint32_t slot_size, uint64_t chunk,
                       uint32_t nbits, uint64_t *txg, uint64_t *words);

#endif
