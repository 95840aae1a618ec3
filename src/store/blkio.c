/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Block I/O: reading verified blocks through the cache and writing new
 * blocks (see blkio.h for the pipeline).  The invariant this file guards is
 * DESIGN.md 2: a block is only returned after its stored bytes matched the
 * checksum held by its parent; any failure is -EIO plus a counted checksum
 * error, never wrong data. */
#include "store/blkio.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/codec.h"

void blk_count_cksum_error(const struct blkio *io)
{
    atomic_fetch_add(&io->vd->ctr.checksum_errors, 1);
}

/* Can bp be read at all?  (A pointer that fails this is corrupt.) */
static bool bp_readable(const struct blkio *io, const struct blkptr *bp)
{
    return !bp_is_hole(bp) && bp->lsize != 0 && bp->psize != 0 && bp->psize <= bp->lsize &&
           bp->lsize <= BP_MAX_LSIZE && bp->psize <= bp->dva[0].asize &&
           (bp->comp != BS_COMPRESS_OFF || bp->psize == bp->lsize) &&
           bp_check_range(bp, io->data_size, io->ashift, 1) == 0;
}

/* Read bp's psize stored bytes into `stored` and verify them. */
static int read_stored(const struct blkio *io, const struct blkptr *bp, uint8_t *stored)
{
    if (vdev_pread(io->vd, stored, bp->psize, io->data_start + bp->dva[0].offset) < 0)
        return -EIO;
    uint8_t sum[32];
    checksum_compute(bp->cksum, stored, bp->psize, sum);
    if (!blk_sum_ok(bp, sum)) {
        blk_count_cksum_error(io);
        return -EIO;
    }
    return 0;
}

int blk_read_raw(const struct blkio *io, const struct blkptr *bp, void *buf, size_t cap)
{
    if (!bp_readable(io, bp)) {
        blk_count_cksum_error(io);
        return -EIO;
    }
    if (bp->psize > cap)
        return -EOVERFLOW;
    return read_stored(io, bp, buf);
}

void blk_prefetch(const struct blkio *io, const struct blkptr *bp)
{
    if (bp_readable(io, bp))
        (void)posix_fadvise(io->vd->fd, (off_t)(io->data_start + bp->dva[0].offset),
                            (off_t)bp->psize, POSIX_FADV_WILLNEED);
}

int blk_read(const struct blkio *io, const struct blkptr *bp, unsigned flags, struct cbuf **out)
{
    return blk_read_crypt(io, bp, flags, NULL, out);
}

int blk_read_crypt(const struct blkio *io, const struct blkptr *bp, unsigned flags,
                   const struct blk_crypt *bc, struct cbuf **out)
{
    *out = NULL;
    if (!bp_readable(io, bp) || !blk_crypt_match(bp, bc)) {
        blk_count_cksum_error(io);
        return -EIO;
    }
    uint64_t off = bp->dva[0].offset;
    if (!(flags & BLK_NOCACHE)) {
        struct cbuf *c = bcache_get(io->cache, io->cache_id, off, bp->birth);
        if (c) {
            if (c->size == bp->lsize) {
                *out = c;
                return 0;
            }
            /* A key maps to one immutable block; a size mismatch means the
             * pointer is not the one that wrote this block: distrust it. */
            cbuf_unref(c);
            blk_count_cksum_error(io);
            return -EIO;
        }
    }
    struct cbuf *c = cbuf_new(bp->lsize);
    if (!c)
        return -ENOMEM;
    bool raw = bp->comp == BS_COMPRESS_OFF;
    uint8_t *stored = raw ? c->data : malloc(bp->psize);
    if (!stored) {
        cbuf_unref(c);
        return -ENOMEM;
    }
    int r = read_stored(io, bp, stored);
    if (r == 0 && bc)
        r = blk_unseal(io, bp, bc, stored);
    if (r < 0)
        goto fail;
    if (!raw) {
        r = decompress_block(bp->comp, stored, bp->psize, c->data, bp->lsize);
        if (r < 0) {
            /* checksummed yet undecodable: written corrupt or a hostile pool */
            blk_count_cksum_error(io);
            r = -EIO;
            goto fail;
        }
        free(stored);
    }
    if (!(flags & BLK_NOCACHE))
        bcache_put(io->cache, io->cache_id, off, bp->birth, c);
    *out = c;
    return 0;
fail:
    if (!raw)
        free(stored);
    cbuf_unref(c);
    return r;
}

int blk_scratch_init(struct blk_scratch *s, uint32_t max_lsize, int ashift)
{
    size_t sector = (size_t)1 << ashift;
    size_t cap = compress_bound(max_lsize);
    if (cap < max_lsize)
        cap = max_lsize;
    s->cap = ROUND_UP(cap, sector);
    s->buf = aligned_alloc(64, ROUND_UP(s->cap, 64));
    return s->buf ? 0 : -ENOMEM;
}

void blk_scratch_free(struct blk_scratch *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

int blk_write(const struct blkio *io, const void *data, struct cbuf *cb, uint32_t lsize,
              const struct blk_wprops *wp, uint64_t txg, struct blk_scratch *s,
              struct blkptr *bp)
{
    if (!data)
        data = cb->data;
    if (wp->zero_is_hole && buf_is_zero(data, lsize)) {
        bp_make_hole(bp, txg, wp->level, wp->type);
        return 0;
    }
    /* compress_bound may be smaller than the sector padding of a raw block;
     * leave room for both. */
    long c = compress_block(wp->comp, wp->comp_level, data, lsize, s->buf, s->cap);
    if (c < 0)
        return (int)c;
    const uint8_t *src = data;
    uint32_t psize = lsize;
    uint8_t comp = BS_COMPRESS_OFF;
    if (c > 0) {
        src = s->buf;
        psize = (uint32_t)c;
        comp = wp->comp;
    }
    uint32_t sector = 1u << io->ashift;
    uint32_t asize = (uint32_t)ROUND_UP((uint64_t)psize, sector);
    if (asize != psize) {
        if (asize > s->cap)
            return -EOVERFLOW;
        if (src != s->buf)
            memcpy(s->buf, src, psize);
        memset(s->buf + psize, 0, asize - psize);
        src = s->buf;
    }
    memset(bp, 0, sizeof *bp);
    if (!wp->crypt)
        checksum_compute(wp->cksum, src, psize, bp->checksum);
    else if ((c = blk_seal(wp, comp, lsize, psize, txg, s, &src, bp)) < 0) /* checksums too */
        return (int)c;
    uint64_t off;
    int r = alloc_alloc(io->alloc, asize, txg, &off);
    if (r < 0)
        return r;
    r = vdev_pwrite(io->vd, src, asize, io->data_start + off);
    if (r < 0) {
        alloc_free(io->alloc, off, asize, txg);
        return -EIO;
    }
    bp->dva[0].offset = off;
    bp->dva[0].vdev = 0;
    bp->dva[0].asize = asize;
    bp->birth = txg;
    bp->lsize = lsize;
    bp->psize = psize;
    bp->comp = comp;
    bp->cksum = wp->cksum;
    bp->type = wp->type;
    bp->level = wp->level;
    bp->fill = 1;
    if (cb)
        bcache_put(io->cache, io->cache_id, off, txg, cb);
    return 0;
}

void blk_free(const struct blkio *io, const struct blkptr *bp, uint64_t txg)
{
    if (bp_is_hole(bp))
        return;
    alloc_free(io->alloc, bp->dva[0].offset, bp->dva[0].asize, txg);
}
