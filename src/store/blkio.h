/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Block I/O: the one place where block pointers turn into bytes and back.
 *
 * Reading a pointer: range check -> cache lookup (vdev, offset, birth) ->
 * vdev read of the stored bytes -> checksum against the pointer ->
 * decompress -> cache insert; encrypted volume data with its key loaded:
 * vdev read of the ciphertext -> GCM tag (in the checksum's place: it is
 * what picks a good copy) decrypting into the cache buffer -> decompress ->
 * cache insert (blkcrypt.h).  The vdev tree tries every copy until one
 * verifies and rewrites the bad ones (self-healing, vdev_mirror.c); when no
 * copy verifies the leaves count checksum errors and the read is -EIO: wrong
 * data is never handed out.
 *
 * Ditto copies (FORMAT.md section 5): a metadata block (indirect, MOS or
 * deadlist data) is written twice when io->ditto, DVA 1 on the same top
 * far from DVA 0 (alloc_alloc_far); a read tries DVA 0, then DVA 1, and
 * rewrites a copy that failed from the one that verified (vdev_heal_block,
 * under the heal fence); a scrub reads and repairs both.  The errors are
 * counted on the leaves by the vdev read, as for any bad copy.
 *
 * Writing a block: all-zero data becomes a hole (no storage) when asked,
 * otherwise compress (kept only if it saves 1/8), pad to the sector,
 * [encrypt (blkcrypt.h; blk_write_batch only, each block with its own IV
 * and AAD)], checksum the stored bytes, allocate, write, fill the pointer.
 * Each writer
 * thread brings its own scratch buffer so nothing is allocated per block. */
#ifndef BERTH_STORE_BLKIO_H
#define BERTH_STORE_BLKIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/alloc.h"
#include "store/bp.h"
#include "store/cache.h"
#include "store/vdev.h"

/* One top-level vdev as block I/O sees it.  Entries of blkio.top below
 * ntops are fixed once published; `active` turns true once the txg that
 * added the top is durable (blocks go there only from then on). */
#define BLK_MAX_TOPS 16
struct blk_top {
    struct vdev *vd;     /* a leaf, a mirror or a raidz */
    struct alloc *alloc; /* its allocation map (in its own metadata region) */
    uint64_t data_size;  /* bytes in its data area (DVA offsets) */
    _Atomic bool active; /* takes new allocations */
};

/* Where new blocks go (blk_pick_top): ZFS-metaslab-style rotation over the
 * active tops, each receiving a quota of bytes in turn; the quota scales with
 * the top's free bytes, so an emptier (newly added) top fills faster. */
struct blk_rotor {
    pthread_mutex_t lock;
    unsigned cur;        /* top receiving allocations */
    uint64_t left;       /* bytes of its quota left */
    _Atomic uint64_t allocated[BLK_MAX_TOPS]; /* bytes allocated per top (since open) */
};

/* The I/O context of one pool.  A DVA's `vdev` is the index into top[];
 * tops are only ever added (pool add): readers load ntops (acquire) and use
 * the entries below it without a lock. */
struct blkio {
    struct blk_top top[BLK_MAX_TOPS];
    _Atomic unsigned ntops;
    struct blk_rotor *rotor;
    struct bcache *cache;
    uint32_t cache_id;   /* distinguishes pools in the shared cache */
    int ashift;
    /* write a ditto copy (DVA 1) of every metadata block (bp_type_is_meta):
     * set once the labels carry LABEL_FEAT_RO_DITTO (pool.c) */
    bool ditto;
    /* the pool is imported read-only: a bad ditto copy is not rewritten */
    bool readonly;
};

/* The top of a DVA's vdev field, or NULL if there is none such. */
static inline const struct blk_top *blk_top_of(const struct blkio *io, uint32_t vdev)
{
    unsigned n = atomic_load_explicit(&io->ntops, memory_order_acquire);
    return vdev < n ? &io->top[vdev] : NULL;
}

/* Choose the top for the next allocation of about `bytes` bytes (advancing
 * the rotation); returns its index.  Only active tops are chosen. */
unsigned blk_pick_top(const struct blkio *io, uint64_t bytes);

#define BLK_NOCACHE 1u /* read from the device even if cached, do not insert */
#define BLK_SCRUB 2u   /* verify every copy and repair bad ones (scrub; with BLK_NOCACHE) */
/* -EAGAIN rather than wait for a device: a cached block, or one whose stored
 * bytes the page cache holds (vdev.h vdev_rio.nowait); nothing is counted or
 * healed on -EAGAIN, the caller retries without the flag.  Not with
 * BLK_SCRUB. */
#define BLK_NOWAIT 4u

/* Read and verify the block `bp` (not a hole).  On success *out holds a new
 * reference to a buffer of bp->lsize bytes; the caller unrefs it. */
int blk_read(const struct blkio *io, const struct blkptr *bp, unsigned flags, struct cbuf **out);

/* Encryption context of a data block of an encrypted volume (blkcrypt.h). */
struct blk_crypt;

/* blk_read for a data block of a volume that may be encrypted: `bc` NULL for
 * a plaintext volume, else its key and the block's identity; the MAC is
 * verified after the checksum and before decompression (blkcrypt.h). */
int blk_read_crypt(const struct blkio *io, const struct blkptr *bp, unsigned flags,
                   const struct blk_crypt *bc, struct cbuf **out);

/* blk_read_crypt into the caller's buffer dst (dst->size must be
 * bp->lsize, else -EIO): a copy of the cached block if there is one, else
 * read and verified straight into dst, and not cached.  For a block about
 * to be replaced (the read-modify-write of a partial write): no second
 * buffer, no copy, and no cache room taken by a block that is dead once
 * its replacement is written.  On failure dst's contents are undefined. */
int blk_read_copy(const struct blkio *io, const struct blkptr *bp, const struct blk_crypt *bc,
                  unsigned flags, struct cbuf *dst);

/* One whole data block of blk_read_blocks. */
struct blk_rreq {
    struct blkptr bp;           /* not a hole */
    const struct blk_crypt *bc; /* as blk_read_crypt's (NULL: plaintext volume) */
    uint8_t *dst;               /* bp.lsize bytes */
};
#define BLK_READ_MAX VDEV_IOV_MAX /* blocks per blk_read_blocks call */

/* blk_read_crypt of n (<= BLK_READ_MAX) whole blocks into the callers'
 * buffers: a cached block is copied; the others are read straight into
 * dst, a run allocated back to back on a leaf in one system call, and
 * verified block by block; a block that fails is read again the way
 * blk_read_crypt reads (every copy, counted, healed).  With `cache` every
 * block read from the device is also inserted into the cache (a copy;
 * without it a stream larger than the cache does not evict everything
 * else).  0, or the first error (-EIO for a block no copy of which
 * verifies: never wrong data); on failure the buffers' contents are
 * undefined. */
int blk_read_blocks(const struct blkio *io, const struct blk_rreq *r, size_t n, bool cache);

/* Read and verify the stored bytes of `bp` (not a hole) without
 * decompressing them: bp->psize bytes into buf (cap >= bp->psize), exactly
 * as the checksum in bp covers them.  For send streams, which carry
 * compressed blocks as they are.  Bypasses the cache (it holds decompressed
 * blocks).  -EIO (and a counted checksum error) on any mismatch. */
int blk_read_raw(const struct blkio *io, const struct blkptr *bp, void *buf, size_t cap);

/* Verify the stored bytes of `bp` (not a hole) against its checksum without
 * decoding them (`flags`: BLK_SCRUB checks and repairs every copy): how a
 * scrub checks an encrypted block, whose checksum covers the ciphertext, so
 * no key is needed.  0, or -EIO (counted) if no copy verifies. */
int blk_verify_stored(const struct blkio *io, const struct blkptr *bp, unsigned flags);

/* Hint that `bp` will be read soon: starts read-ahead of its stored bytes
 * into the page cache without waiting (a sequential reader of scattered
 * blocks, such as send, keeps the device busy this way).  Holes and bad
 * pointers are ignored; so are errors: the read itself reports them. */
void blk_prefetch(const struct blkio *io, const struct blkptr *bp);

/* Per-thread scratch space for blk_write and blk_write_batch (the batch
 * area is allocated on the first batch). */
struct blk_scratch {
    uint8_t *buf;
    size_t cap;
    uint8_t *bbuf;      /* compressed/padded blocks of one batch run */
    size_t bcap;
    uint64_t no_run_txg; /* a run allocation failed in this txg: stop trying */
};
int blk_scratch_init(struct blk_scratch *s, uint32_t max_lsize, int ashift);
void blk_scratch_free(struct blk_scratch *s);

struct blk_wprops {
    uint8_t type;  /* enum bp_type */
    uint8_t level;
    uint8_t comp;  /* enum bs_compress */
    int comp_level;
    uint8_t cksum; /* enum bs_checksum */
    bool zero_is_hole;
    /* non-NULL: the volume is encrypted; blk_write_batch seals every block
     * after compression (blkcrypt.h) with this key and key guid and the
     * request's own blkid (crypt->blkid is not used).  blk_write refuses it
     * (-EINVAL): encrypted data is written by batches only. */
    const struct blk_crypt *crypt;
    struct comp_hist *hist; /* the dataset's compression history, or NULL (codec.h) */
};

/* Write lsize bytes from `data` (or from cb->data when data is NULL) for txg.
 * Fills *bp (fill = 1 for data; the caller sets fill of indirects).  When `cb`
 * is given and a block was written, the cache takes a reference to it under
 * the new key, so the next read of the block is a hit. */
int blk_write(const struct blkio *io, const void *data, struct cbuf *cb, uint32_t lsize,
              const struct blk_wprops *wp, uint64_t txg, struct blk_scratch *s,
              struct blkptr *bp);

/* Blocks per blk_write_batch call, and the bytes of compressed or padded
 * output one run keeps in the scratch area before it is written. */
#define BLK_BATCH_MAX VDEV_IOV_MAX
#define BLK_BATCH_BYTES (1u << 20)

struct blk_sealed;
struct blk_wreq {
    struct cbuf *cb;      /* the block's data: lsize bytes of cb->data */
    uint32_t lsize;
    struct blkptr *bp;    /* filled as by blk_write */
    uint64_t blkid;       /* the block's id: bound into its AAD when wp->crypt */
    /* raw receive: cb holds this sealed block's sealed->psize bytes of
     * ciphertext, stored as they are (blk_sealed_prepare; no key, no
     * compression, no hole check, not cached); NULL for everything else */
    const struct blk_sealed *sealed;
};

/* blk_write(io, NULL, r[i].cb, r[i].lsize, ...) for n <= BLK_BATCH_MAX blocks
 * of one dataset, with the same result per block (plus encryption with
 * wp->crypt: each block sealed on its own, with its own IV, AAD and MAC, by
 * the calling thread; sealed blocks of a raw receive stored as they came),
 * but the blocks that are
 * stored get one allocated run and one vdev write (a pwritev) where
 * possible: fewer system calls, and page-cache writes of up to 1 MiB that
 * the kernel can back with large folios.  Falls back to one allocation per
 * block when no run is free (fragmented space; then not tried again in this
 * txg with this scratch).  *written += the bytes written.  On an error some
 * blocks may already be written (as with a failing blk_write in a loop);
 * the caller fails the txg. */
int blk_write_batch(const struct blkio *io, struct blk_wreq *r, size_t n,
                    const struct blk_wprops *wp, uint64_t txg, struct blk_scratch *s,
                    uint64_t *written);

/* Allocate room for a prepared block of len bytes (its stored bytes padded
 * to the sector) on a top-level vdev (blk_pick_top, then any other with
 * room), write it there and fill *dva (offset, vdev, asize).  -ENOSPC, or
 * -EIO after a failed write (the room is freed again).  The one way to
 * place a block: callers that build the rest of the pointer themselves (raw
 * receive) use it too. */
int blk_alloc_write(const struct blkio *io, const void *src, uint32_t len, uint64_t txg,
                    struct dva *dva);

/* Free the storage of bp (every copy; nothing for a hole) in txg. */
void blk_free(const struct blkio *io, const struct blkptr *bp, uint64_t txg);

/* Count a checksum error (used by decoders of read blocks that have no
 * block pointer at hand): counted on top-level vdev 0; blkio itself, and
 * decoders that know the block (blk_count_bp_error), count on the top of
 * the block's DVA. */
void blk_count_cksum_error(const struct blkio *io);
/* The same for a block whose pointer is known: counted on the top-level
 * vdev its DVA names (top 0 if none). */
void blk_count_bp_error(const struct blkio *io, const struct blkptr *bp);

#endif
