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
#include <sys/uio.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/codec.h"

void blk_count_cksum_error(const struct blkio *io)
{
    atomic_fetch_add(&io->top[0].vd->ctr.checksum_errors, 1);
}

/* The cache key of a block: its DVA offset with the top's index in the top
 * 8 bits (data areas are far below 2^56 bytes), so that blocks of one txg at
 * the same offset of two tops never share a key. */
static inline uint64_t cache_key(uint32_t vdev, uint64_t off)
{
    return off | (uint64_t)vdev << 56;
}

/* Count a checksum error on the top bp names (top 0 if none). */
void blk_count_bp_error(const struct blkio *io, const struct blkptr *bp)
{
    const struct blk_top *t = blk_top_of(io, bp->dva[0].vdev);
    atomic_fetch_add(&(t ? t : &io->top[0])->vd->ctr.checksum_errors, 1);
}

/* Can bp be read at all?  (A pointer that fails this is corrupt.)  Its DVA
 * must name a top of the pool and lie inside that top's data area. */
static const struct blk_top *bp_readable(const struct blkio *io, const struct blkptr *bp)
{
    const struct blk_top *t = blk_top_of(io, bp->dva[0].vdev);
    bool ok = t && !bp_is_hole(bp) && bp->lsize != 0 && bp->psize != 0 &&
              bp->psize <= bp->lsize && bp->lsize <= BP_MAX_LSIZE &&
              bp->psize <= bp->dva[0].asize &&
              (bp->comp != BS_COMPRESS_OFF || bp->psize == bp->lsize) &&
              bp_check_range(bp, t->data_size, io->ashift, BLK_MAX_TOPS) == 0;
    return ok ? t : NULL;
}

/* The heal generation of the top bp names (0 if none: the read fails). */
static uint64_t bp_heal_gen(const struct blkio *io, const struct blkptr *bp)
{
    const struct blk_top *t = blk_top_of(io, bp->dva[0].vdev);
    return t ? vdev_heal_gen(t->vd) : 0;
}

unsigned blk_pick_top(const struct blkio *io, uint64_t bytes)
{
    unsigned n = atomic_load_explicit(&io->ntops, memory_order_acquire);
    struct blk_rotor *ro = io->rotor;
    if (n == 1 || !ro)
        return 0;
    pthread_mutex_lock(&ro->lock);
    unsigned cur = ro->cur < n ? ro->cur : 0;
    if (ro->left < bytes || !atomic_load(&io->top[cur].active)) {
        /* next active top; its quota: 4 MiB scaled by its share of free
         * bytes relative to the emptiest top (at least 256 KiB) */
        uint64_t avail[BLK_MAX_TOPS], best = 0;
        for (unsigned i = 0; i < n; i++) {
            uint64_t size = 0;
            avail[i] = 0;
            if (atomic_load(&io->top[i].active))
                alloc_space(io->top[i].alloc, &size, &avail[i]);
            best = MAX(best, avail[i]);
        }
        for (unsigned k = 1; k <= n; k++) {
            unsigned i = (cur + k) % n;
            if (atomic_load(&io->top[i].active) && avail[i] > 0) {
                cur = i;
                break;
            }
        }
        uint64_t q = best ? (uint64_t)((double)(4u << 20) * (double)avail[cur] / (double)best) : 0;
        ro->left = MAX(q, (uint64_t)256 << 10);
        ro->cur = cur;
    }
    ro->left = ro->left > bytes ? ro->left - bytes : 0;
    pthread_mutex_unlock(&ro->lock);
    return cur;
}

/* Allocate asize(top) bytes for a block of len bytes on some top: the
 * rotation's choice first, then any other active top with room. */
static int alloc_on_top(const struct blkio *io, uint64_t len, uint64_t txg, unsigned *top,
                        uint64_t *asize, uint64_t *off)
{
    unsigned n = atomic_load_explicit(&io->ntops, memory_order_acquire);
    unsigned first = blk_pick_top(io, len);
    int r = -ENOSPC;
    for (unsigned k = 0; k < n && r == -ENOSPC; k++) {
        unsigned i = (first + k) % n;
        const struct blk_top *t = &io->top[i];
        if (k > 0 && !atomic_load(&t->active))
            continue;
        *asize = vdev_asize(t->vd, len);
        r = alloc_alloc(t->alloc, *asize, txg, off);
        if (r == 0) {
            *top = i;
            if (io->rotor)
                atomic_fetch_add(&io->rotor->allocated[i], *asize);
        }
    }
    return r;
}

static bool verify_bp(void *ctx, const void *buf, size_t len)
{
    const struct blkptr *bp = ctx;
    uint8_t sum[32];
    checksum_compute(bp->cksum, buf, len, sum);
    return blk_sum_ok(bp, sum); /* an encrypted pointer keeps part of it */
}

/* Rewrite ditto copy c of bp with the verified stored bytes in `good`
 * (psize bytes), padded to the sector as blk_write wrote it. */
static void heal_copy(const struct blkio *io, const struct blk_top *t, const struct blkptr *bp,
                      int c, const uint8_t *good, uint64_t gen)
{
    if (io->readonly)
        return;
    /* Heal only space the map gives to a block: a pointer into free space
     * (a bug, or a crafted pool whose checksums still verify) must not
     * make a read write there.  (A crafted pointer into another live
     * block passes this check; the checksum chain from the uberblock is
     * what vouches for pointers, as in ZFS.)  The heal generation covers
     * reuse after the read. */
    if (!alloc_is_allocated(t->alloc, bp->dva[c].offset, bp->dva[c].asize))
        return;
    size_t len = ROUND_UP((size_t)bp->psize, (size_t)1 << io->ashift);
    uint8_t *buf = malloc(len);
    if (!buf)
        return;
    memcpy(buf, good, bp->psize);
    memset(buf + bp->psize, 0, len - bp->psize);
    (void)vdev_heal_block(t->vd, buf, len, bp->dva[c].asize, bp->dva[c].offset, gen);
    free(buf);
}

/* Read bp's copies (DVA 0, then the ditto copy DVA 1) with rq (psize, buf,
 * verify, scrub, gen, birth set; off and asize are each copy's) until one
 * verifies; with rq->scrub every copy is read and verified (into a scratch
 * buffer once one verified).  Within a copy the vdev tries every mirror
 * leaf or raidz reconstruction, counts bad ones on their leaves and heals
 * them (vdev_read_block); a copy none of which verified is rewritten from
 * the good one here.  0 with the verified bytes in rq->buf, else -EIO. */
static int read_copies(const struct blkio *io, const struct blkptr *bp, struct vdev_rio *rq)
{
    const struct blk_top *t = blk_top_of(io, bp->dva[0].vdev);
    if (!t)
        return -EIO;
    int nc = bp_ncopies(bp), good = -1, res[2] = {0, 0};
    uint8_t *tmp = NULL;
    for (int c = 0; c < nc; c++) {
        if (good >= 0 && !rq->scrub)
            break;
        struct vdev_rio q = *rq;
        q.off = bp->dva[c].offset;
        q.asize = bp->dva[c].asize;
        if (good >= 0) { /* scrub: keep the verified bytes where they are */
            tmp = malloc(rq->psize);
            if (!tmp)
                break;
            q.buf = tmp;
        }
        int r = vdev_read_block(t->vd, &q);
        if (r == -EAGAIN && q.nowait) { /* untouched, the caller retries */
            free(tmp);
            return r;
        }
        res[c] = r == 0 ? 1 : -1;
        if (res[c] > 0 && good < 0)
            good = c;
    }
    if (good >= 0)
        for (int c = 0; c < nc; c++)
            if (res[c] < 0)
                heal_copy(io, t, bp, c, rq->buf, rq->gen);
    free(tmp);
    return good >= 0 ? 0 : -EIO;
}

/* Read bp's psize stored bytes into `stored`, verified (read_copies); gen is
 * vdev_heal_gen from when the caller got bp. */
static int read_stored(const struct blkio *io, const struct blkptr *bp, uint8_t *stored,
                       unsigned flags, uint64_t gen)
{
    struct vdev_rio rq = {
        .psize = bp->psize, .buf = stored, .verify = verify_bp, .vctx = (void *)bp,
        .scrub = (flags & BLK_SCRUB) != 0, .gen = gen, .birth = bp->birth,
        .nowait = (flags & BLK_NOWAIT) != 0,
    };
    return read_copies(io, bp, &rq);
}

int blk_read_raw(const struct blkio *io, const struct blkptr *bp, void *buf, size_t cap)
{
    uint64_t gen = bp_heal_gen(io, bp);
    if (!bp_readable(io, bp)) {
        blk_count_bp_error(io, bp);
        return -EIO;
    }
    if (bp->psize > cap)
        return -EOVERFLOW;
    return read_stored(io, bp, buf, 0, gen);
}

int blk_verify_stored(const struct blkio *io, const struct blkptr *bp, unsigned flags)
{
    uint64_t gen = bp_heal_gen(io, bp);
    if (!bp_readable(io, bp)) {
        blk_count_bp_error(io, bp);
        return -EIO;
    }
    uint8_t *buf = malloc(bp->psize);
    if (!buf)
        return -ENOMEM;
    int r = read_stored(io, bp, buf, flags, gen);
    free(buf);
    return r;
}

void blk_prefetch(const struct blkio *io, const struct blkptr *bp)
{
    const struct blk_top *t = bp_readable(io, bp);
    if (t)
        vdev_prefetch_block(t->vd, bp->dva[0].offset, bp->psize);
}

/* Verifier of an encrypted block read with its key: the GCM tag instead of
 * the checksum, decrypting out of place into `plain` (so a copy that fails
 * leaves the stored bytes for the next one, and a mirror heals with
 * ciphertext).  After one copy verified, later calls (a vdev re-checking
 * other copies) decrypt into a scratch buffer and leave `plain` alone. */
struct open_ctx {
    const struct blkptr *bp;
    const struct blk_crypt *bc;
    uint8_t *plain;
    bool done;
};

static bool verify_open(void *ctx, const void *buf, size_t len)
{
    struct open_ctx *o = ctx;
    if (len != o->bp->psize)
        return false;
    if (!o->done)
        return (o->done = blk_open_into(o->bp, o->bc, buf, o->plain) == 0);
    uint8_t *tmp = malloc(len);
    bool good = tmp && blk_open_into(o->bp, o->bc, buf, tmp) == 0;
    free(tmp);
    return good;
}

/* blk_read_crypt's miss path with the key loaded: read the ciphertext into
 * a scratch buffer, decrypt it straight into dst (or into `stored` to
 * decompress from).  One pass over the bytes besides the device read. */
static int read_open(const struct blkio *io, const struct blkptr *bp, unsigned flags,
                     const struct blk_crypt *bc, uint8_t *dst, uint64_t gen)
{
    bool raw = bp->comp == BS_COMPRESS_OFF;
    uint8_t *cipher = malloc(bp->psize), *plain = raw ? dst : malloc(bp->psize);
    int r = -ENOMEM;
    if (cipher && plain) {
        struct open_ctx o = { .bp = bp, .bc = bc, .plain = plain };
        struct vdev_rio rq = {
            .psize = bp->psize, .buf = cipher, .verify = verify_open, .vctx = &o,
            .scrub = (flags & BLK_SCRUB) != 0, .gen = gen,
            .nowait = (flags & BLK_NOWAIT) != 0,
        };
        r = read_copies(io, bp, &rq);
        if (r == 0 && !o.done)
            r = -EIO;
        if (r == 0 && !raw && decompress_block(bp->comp, plain, bp->psize, dst, bp->lsize) < 0) {
            blk_count_bp_error(io, bp); /* authenticated yet undecodable: hostile */
            r = -EIO;
        }
    }
    free(cipher);
    if (!raw)
        free(plain);
    return r;
}

int blk_read(const struct blkio *io, const struct blkptr *bp, unsigned flags, struct cbuf **out)
{
    return blk_read_crypt(io, bp, flags, NULL, out);
}

/* The miss path of a read: the block's stored bytes from its vdev,
 * verified (and decrypted with bc's key), decompressed into dst (bp->lsize
 * bytes).  Not cached here. */
static int read_miss(const struct blkio *io, const struct blkptr *bp, unsigned flags,
                     const struct blk_crypt *bc, uint8_t *dst, uint64_t gen)
{
    if (bc && bc->key)
        return read_open(io, bp, flags, bc, dst, gen);
    bool raw = bp->comp == BS_COMPRESS_OFF;
    uint8_t *stored = raw ? dst : malloc(bp->psize);
    if (!stored)
        return -ENOMEM;
    /* counts read and checksum errors on the leaves, heals what it can */
    int r = read_stored(io, bp, stored, flags, gen);
    if (r == 0 && bc)
        r = blk_unseal(io, bp, bc, stored);
    if (r == 0 && !raw && decompress_block(bp->comp, stored, bp->psize, dst, bp->lsize) < 0) {
        /* checksummed yet undecodable: written corrupt or a hostile pool */
        blk_count_bp_error(io, bp);
        r = -EIO;
    }
    if (!raw)
        free(stored);
    return r;
}

/* The cached copy of bp's block: a new reference, NULL if not cached;
 * -EIO if the cached buffer's size is not bp->lsize. */
static int cache_lookup(const struct blkio *io, const struct blkptr *bp, struct cbuf **out)
{
    uint64_t off = cache_key(bp->dva[0].vdev, bp->dva[0].offset);
    struct cbuf *c = bcache_get(io->cache, io->cache_id, off, bp->birth);
    *out = NULL;
    if (c && c->size != bp->lsize) {
        /* A key maps to one immutable block; a size mismatch means the
         * pointer is not the one that wrote this block: distrust it. */
        cbuf_unref(c);
        blk_count_bp_error(io, bp);
        return -EIO;
    }
    *out = c;
    return 0;
}

int blk_read_crypt(const struct blkio *io, const struct blkptr *bp, unsigned flags,
                   const struct blk_crypt *bc, struct cbuf **out)
{
    /* taken first: the caller's pointer is valid now (see vdev.h heal_gen) */
    uint64_t gen = bp_heal_gen(io, bp);
    *out = NULL;
    if (!bp_readable(io, bp) || !blk_crypt_match(bp, bc)) {
        blk_count_bp_error(io, bp);
        return -EIO;
    }
    if (!(flags & BLK_NOCACHE)) {
        int r = cache_lookup(io, bp, out);
        if (r < 0 || *out)
            return r;
    }
    struct cbuf *c = cbuf_new(bp->lsize);
    if (!c)
        return -ENOMEM;
    int r = read_miss(io, bp, flags, bc, c->data, gen);
    if (r < 0) {
        cbuf_unref(c);
        return r;
    }
    if (!(flags & BLK_NOCACHE))
        bcache_put(io->cache, io->cache_id, cache_key(bp->dva[0].vdev, bp->dva[0].offset),
                   bp->birth, c);
    *out = c;
    return 0;
}

/* The first step of a read into the caller's memory: take the heal
 * generation (the caller's pointer is valid now, see vdev.h heal_gen),
 * refuse a pointer that cannot be read or a key that does not match it
 * (counted; a loaded key or none: a keyless encrypted read fails in
 * read_miss), and copy the block from the cache if it is there.  1: copied,
 * 0: a miss (*gen for read_miss), < 0: an error. */
static int copy_cached(const struct blkio *io, const struct blkptr *bp,
                       const struct blk_crypt *bc, void *dst, uint64_t *gen)
{
    *gen = bp_heal_gen(io, bp);
    if (!bp_readable(io, bp) || !blk_crypt_match(bp, bc)) {
        blk_count_bp_error(io, bp);
        return -EIO;
    }
    struct cbuf *c;
    int r = cache_lookup(io, bp, &c);
    if (r < 0 || !c)
        return r;
    memcpy(dst, c->data, bp->lsize);
    cbuf_unref(c);
    return 1;
}

int blk_read_copy(const struct blkio *io, const struct blkptr *bp, const struct blk_crypt *bc,
                  unsigned flags, struct cbuf *dst)
{
    if (dst->size != bp->lsize) {
        blk_count_bp_error(io, bp);
        return -EIO;
    }
    uint64_t gen;
    int r = copy_cached(io, bp, bc, dst->data, &gen);
    return r != 0 ? (r < 0 ? r : 0) : read_miss(io, bp, flags, bc, dst->data, gen);
}

/* ---- whole blocks straight into the caller's buffers ----
 *
 * A sequential read used to take every block through a cache buffer: one
 * pread per block into a new buffer, a copy into the reply, and an insert
 * that evicted another block (a stream larger than the cache only
 * thrashes it).  Here a contiguous run of blocks on a leaf is one preadv
 * straight into the destinations (stored bytes that need decompression, or
 * padding, into a scratch buffer; an encrypted block is decrypted in
 * place), each block then checked on its own.
 * Nothing is trusted that did not verify: a block that fails is read again
 * through read_miss, the path every read takes (every copy, counted,
 * healed), which returns the verified block or -EIO. */

/* Verify and decode the stored bytes of r's block at `stored` into r->dst
 * (stored may be r->dst itself for an uncompressed block).  Nothing
 * counted: false sends the block to read_miss. */
static bool finish_block(const struct blk_rreq *r, const uint8_t *stored)
{
    const struct blkptr *bp = &r->bp;
    bool raw = bp->comp == BS_COMPRESS_OFF;
    if (r->bc) { /* with the key: the GCM tag instead of the checksum, in
                  * place when stored is dst (a failure zeroes it) */
        uint8_t *plain = raw ? r->dst : malloc(bp->psize);
        bool good = plain && blk_open_into(bp, r->bc, stored, plain) == 0 &&
                    (raw || decompress_block(bp->comp, plain, bp->psize, r->dst, bp->lsize) == 0);
        if (!raw)
            free(plain);
        return good;
    }
    if (!verify_bp((void *)bp, stored, bp->psize))
        return false;
    if (!raw)
        return decompress_block(bp->comp, stored, bp->psize, r->dst, bp->lsize) == 0;
    if (stored != r->dst) /* padded (asize > psize): read into scratch */
        memcpy(r->dst, stored, bp->lsize);
    return true;
}

/* Can r's block be decoded here?  (An encrypted one without its key goes
 * to read_miss alone, which fails it as blk_read_crypt does.) */
static bool can_open(const struct blk_rreq *r)
{
    return !r->bc || r->bc->key;
}

/* Do bp's stored bytes go straight into the destination?  Those of an
 * uncompressed block that fills its allocation, encrypted or not (the
 * decryption runs in place). */
static bool into_dst(const struct blkptr *bp)
{
    return bp->comp == BS_COMPRESS_OFF && bp->dva[0].asize == bp->psize;
}

/* Read r[0..n) (misses, allocated back to back on one top; n > 1 only if
 * all can_open) and verify them; see above. */
static int read_run(const struct blkio *io, const struct blk_rreq *r, size_t n, const uint64_t *gen,
                    bool cache)
{
    const struct blk_top *t = blk_top_of(io, r[0].bp.dva[0].vdev);
    struct iovec iov[BLK_READ_MAX];
    size_t need = 0;
    for (size_t k = 0; k < n; k++) {
        const struct blkptr *bp = &r[k].bp;
        if (!into_dst(bp))
            need += bp->dva[0].asize;
    }
    uint8_t *scratch = need ? malloc(need) : NULL;
    int rr = -ENOTSUP;
    if (t && t->vd->kind == VDEV_KIND_LEAF && can_open(&r[0]) && (!need || scratch)) {
        size_t used = 0;
        for (size_t k = 0; k < n; k++) {
            const struct blkptr *bp = &r[k].bp;
            iov[k].iov_len = bp->dva[0].asize;
            if (!into_dst(bp)) {
                iov[k].iov_base = scratch + used;
                used += bp->dva[0].asize;
            } else {
                iov[k].iov_base = r[k].dst;
            }
        }
        rr = vdev_read_blocks_raw(t->vd, iov, (int)n, r[0].bp.dva[0].offset);
    }
    int ret = 0;
    for (size_t k = 0; k < n && ret == 0; k++) {
        const struct blkptr *bp = &r[k].bp;
        if (rr < 0 || !finish_block(&r[k], iov[k].iov_base))
            ret = read_miss(io, bp, 0, r[k].bc, r[k].dst, gen[k]);
        if (ret == 0 && cache) {
            struct cbuf *c = cbuf_new(bp->lsize);
            if (c) {
                memcpy(c->data, r[k].dst, bp->lsize);
                bcache_put(io->cache, io->cache_id, cache_key(bp->dva[0].vdev, bp->dva[0].offset),
                           bp->birth, c);
                cbuf_unref(c);
            }
        }
    }
    free(scratch);
    return ret;
}

int blk_read_blocks(const struct blkio *io, const struct blk_rreq *r, size_t n, bool cache)
{
    uint64_t gen[BLK_READ_MAX];
    bool hit[BLK_READ_MAX];
    if (n > BLK_READ_MAX)
        return -EINVAL;
    for (size_t k = 0; k < n; k++) {
        int ret = copy_cached(io, &r[k].bp, r[k].bc, r[k].dst, &gen[k]);
        if (ret < 0)
            return ret;
        hit[k] = ret > 0;
    }
    for (size_t i = 0; i < n;) {
        if (hit[i]) {
            i++;
            continue;
        }
        const struct dva *d = &r[i].bp.dva[0];
        size_t j = i + 1;
        while (can_open(&r[i]) && j < n && !hit[j] && can_open(&r[j]) &&
               r[j].bp.dva[0].vdev == d->vdev &&
               r[j].bp.dva[0].offset == r[j - 1].bp.dva[0].offset + r[j - 1].bp.dva[0].asize)
            j++;
        int ret = read_run(io, r + i, j - i, gen + i, cache);
        if (ret < 0)
            return ret;
        i = j;
    }
    return 0;
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
    free(s->bbuf);
    s->buf = s->bbuf = NULL;
    s->cap = s->bcap = 0;
}

/* The fields of a data block pointer that blk_write and blk_write_batch set
 * alike (the DVA and checksum are filled by each). */
static void bp_set_written(struct blkptr *bp, const struct blk_wprops *wp, uint64_t txg,
                           uint32_t lsize, uint32_t psize, uint8_t comp)
{
    bp->birth = txg;
    bp->lsize = lsize;
    bp->psize = psize;
    bp->comp = comp;
    bp->cksum = wp->cksum;
    bp->type = wp->type;
    bp->level = wp->level;
    bp->fill = 1;
}

/* The ditto copy of the block just written at bp->dva[0] (len padded
 * bytes at src): DVA 1 on the same top, far from DVA 0 (alloc_alloc_far).
 * When the top is nearly full (less than 1/64 of it available: half the
 * room pool.c keeps back for a txg's metadata) or has no room for it, the
 * block keeps one copy: the first copies of a txg's metadata must always
 * fit, or the txg fails and the pool faults; a later rewrite of the block
 * gets two again. */
static int write_ditto(const struct blkio *io, const void *src, uint32_t len, uint64_t txg,
                       struct blkptr *bp)
{
    unsigned top = bp->dva[0].vdev;
    const struct blk_top *t = &io->top[top];
    uint64_t asize = bp->dva[0].asize, off, size = 0, avail = 0;
    alloc_space(t->alloc, &size, &avail);
    if (avail < size / 64)
        return 0;
    int r = alloc_alloc_far(t->alloc, asize, bp->dva[0].offset, &off);
    if (r == -ENOSPC)
        return 0;
    if (r < 0)
        return r;
    if (vdev_write_block(t->vd, src, len, off) < 0) {
        alloc_free(t->alloc, off, asize, txg);
        return -EIO;
    }
    if (io->rotor)
        atomic_fetch_add(&io->rotor->allocated[top], asize);
    bp->dva[1].offset = off;
    bp->dva[1].vdev = top;
    bp->dva[1].asize = (uint32_t)asize;
    return 0;
}

int blk_write(const struct blkio *io, const void *data, struct cbuf *cb, uint32_t lsize,
              const struct blk_wprops *wp, uint64_t txg, struct blk_scratch *s,
              struct blkptr *bp)
{
    if (wp->crypt)
        return -EINVAL; /* encrypted data goes through blk_write_batch */
    if (!data)
        data = cb->data;
    if (wp->zero_is_hole && buf_is_zero(data, lsize)) {
        bp_make_hole(bp, txg, wp->level, wp->type);
        return 0;
    }
    /* compress_bound may be smaller than the sector padding of a raw block;
     * leave room for both. */
    long c = compress_block_hist(wp->comp, wp->comp_level, data, lsize, s->buf, s->cap, wp->hist);
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
    uint32_t len = (uint32_t)ROUND_UP((uint64_t)psize, sector);
    if (len != psize) {
        if (len > s->cap)
            return -EOVERFLOW;
        if (src != s->buf)
            memcpy(s->buf, src, psize);
        memset(s->buf + psize, 0, len - psize);
        src = s->buf;
    }
    memset(bp, 0, sizeof *bp);
    checksum_compute(wp->cksum, src, psize, bp->checksum);
    int r = blk_alloc_write(io, src, len, txg, &bp->dva[0]);
    if (r < 0)
        return r;
    if (io->ditto && bp_type_is_meta(wp->type) && (r = write_ditto(io, src, len, txg, bp)) < 0) {
        blk_free(io, bp, txg);
        return r;
    }
    bp_set_written(bp, wp, txg, lsize, psize, comp);
    if (cb)
        bcache_put(io->cache, io->cache_id, cache_key(bp->dva[0].vdev, bp->dva[0].offset), txg,
                   cb);
    return 0;
}

int blk_alloc_write(const struct blkio *io, const void *src, uint32_t len, uint64_t txg,
                    struct dva *dva)
{
    /* a raidz allocates parity and padding besides the data (per top) */
    uint64_t off, asize;
    unsigned top;
    int r = alloc_on_top(io, len, txg, &top, &asize, &off);
    if (r < 0)
        return r;
    if (vdev_write_block(io->top[top].vd, src, len, off) < 0) {
        alloc_free(io->top[top].alloc, off, asize, txg);
        return -EIO;
    }
    dva->offset = off;
    dva->vdev = top;
    dva->asize = (uint32_t)asize;
    return 0;
}

/* ---- batches ----
 *
 * A run is a list of prepared blocks (compressed, padded and checksummed,
 * pointers filled but for the location) allocated back to back on the vdev
 * (each takes vdev_asize of its padded length).  Output that is not the
 * caller's buffer (compressed or padded blocks) lives in s->bbuf until the
 * run is written. */
struct run {
    struct iovec iov[BLK_BATCH_MAX];
    size_t idx[BLK_BATCH_MAX]; /* request of each iov */
    uint32_t asize[BLK_BATCH_MAX]; /* on `top` */
    unsigned top;      /* the top the run is sized for (blk_pick_top) */
    int n;
    uint64_t bytes;    /* allocated bytes */
    size_t used; /* of s->bbuf */
};

/* The blocks of a run are placed: fill in their locations and put them in
 * the block cache; a sequential stream's blocks only while it has room.  A
 * 1 MiB write stream inserted every block, and with the cache full evicted
 * one per block (the random writes' working set first), for blocks that
 * are then read once if at all (scan resistance, like a read stream's,
 * vol.c read_streams; the pool file's page cache still holds them); their
 * buffers go back to the idle pool for the next writes instead. */
static void run_done(const struct blkio *io, struct blk_wreq *r, const struct run *rn,
                     const uint64_t *offs, const unsigned *tops, const uint64_t *asz,
                     uint64_t txg, bool cache)
{
    for (int i = 0; i < rn->n; i++) {
        struct blkptr *bp = r[rn->idx[i]].bp;
        bp->dva[0].offset = offs[i];
        bp->dva[0].vdev = tops[i];
        bp->dva[0].asize = (uint32_t)asz[i];
        if (r[rn->idx[i]].sealed) /* the cache holds plaintext only */
            continue;
        (cache ? bcache_put : bcache_put_spare)(io->cache, io->cache_id,
                                                cache_key(tops[i], offs[i]), txg, r[rn->idx[i]].cb);
    }
}

/* Write a run: one allocation and one write, or one per block. */
static int run_write(const struct blkio *io, struct blk_wreq *r, struct run *rn, uint64_t txg,
                     struct blk_scratch *s, uint64_t *written)
{
    uint64_t offs[BLK_BATCH_MAX], asz[BLK_BATCH_MAX];
    unsigned tops[BLK_BATCH_MAX];
    int ret = 0;
    if (rn->n == 0)
        return 0;
    const struct blk_top *t = &io->top[rn->top];
    /* Warm space first, fragments too, then one run (alloc.h
     * alloc_alloc_blocks): a rewrite then overwrites blocks the vdev still
     * backs; each stretch of blocks placed back to back is one write.  A
     * sequential stream (the blocks are consecutive ones of the dataset)
     * takes one run, never crumbs (the sequential-stream rule, alloc.c). */
    bool seq = rn->n > 1;
    for (int i = 1; seq && i < rn->n; i++)
        seq = r[rn->idx[i]].blkid == r[rn->idx[i - 1]].blkid + 1;
    int w = rn->n > 1 ? alloc_alloc_blocks(t->alloc, rn->asize, rn->n, txg, s->no_run_txg != txg,
                                           seq, offs)
                      : 0;
    for (int i = 0; i < w;) {
        int j = i + 1;
        while (j < w && offs[j] == offs[j - 1] + rn->asize[j - 1])
            j++;
        if (vdev_write_blocks(t->vd, rn->iov + i, j - i, offs[i]) < 0) {
            for (int k = 0; k < w; k++)
                alloc_free(t->alloc, offs[k], rn->asize[k], txg);
            return -EIO;
        }
        i = j;
    }
    uint64_t wbytes = 0;
    for (int i = 0; i < w; i++) {
        tops[i] = rn->top;
        asz[i] = rn->asize[i];
        wbytes += rn->asize[i];
    }
    if (w && io->rotor)
        atomic_fetch_add(&io->rotor->allocated[rn->top], wbytes);
    if (w == rn->n)
        goto done;
    if (w) { /* the placed blocks are done; the rest is a run of its own */
        int rest = rn->n - w;
        rn->n = w;
        run_done(io, r, rn, offs, tops, asz, txg, !seq);
        *written += wbytes;
        memmove(rn->iov, rn->iov + w, (size_t)rest * sizeof rn->iov[0]);
        memmove(rn->idx, rn->idx + w, (size_t)rest * sizeof rn->idx[0]);
        memmove(rn->asize, rn->asize + w, (size_t)rest * sizeof rn->asize[0]);
        rn->n = rest;
        rn->bytes -= wbytes;
    }
    if (w || rn->n > 1) /* alloc_alloc_blocks found no free run that long */
        s->no_run_txg = txg; /* per block from now on */
    for (int i = 0; i < rn->n; i++) {
        ret = alloc_on_top(io, rn->iov[i].iov_len, txg, &tops[i], &asz[i], &offs[i]);
        if (ret < 0)
            return ret;
        const struct blk_top *bt = &io->top[tops[i]];
        if (vdev_write_block(bt->vd, rn->iov[i].iov_base, rn->iov[i].iov_len, offs[i]) < 0) {
            alloc_free(bt->alloc, offs[i], asz[i], txg);
            return -EIO;
        }
    }
done:
    run_done(io, r, rn, offs, tops, asz, txg, !seq);
    *written += rn->bytes;
    rn->n = 0;
    rn->bytes = 0;
    rn->used = 0;
    return 0;
}

int blk_write_batch(const struct blkio *io, struct blk_wreq *r, size_t n,
                    const struct blk_wprops *wp, uint64_t txg, struct blk_scratch *s,
                    uint64_t *written)
{
    const uint32_t sector = 1u << io->ashift;
    if (n > BLK_BATCH_MAX)
        return -EINVAL;
    if (!s->bbuf) {
        size_t cap = BLK_BATCH_BYTES + (size_t)BLK_BATCH_MAX * sector;
        s->bbuf = aligned_alloc(64, ROUND_UP(cap, 64));
        if (!s->bbuf)
            return -ENOMEM;
        s->bcap = cap;
    }
    struct run rn;
    /* one top per batch: the run is sized (vdev_asize) for it */
    rn.top = blk_pick_top(io, n ? (uint64_t)n * r[0].lsize : 0);
    rn.n = 0;
    rn.bytes = 0;
    rn.used = 0;
    for (size_t k = 0; k < n; k++) {
        const uint8_t *data = r[k].cb->data;
        const struct blk_sealed *sb = r[k].sealed;
        const uint32_t lsize = r[k].lsize;
        struct blkptr *bp = r[k].bp;
        if (!sb && wp->zero_is_hole && buf_is_zero(data, lsize)) {
            bp_make_hole(bp, txg, wp->level, wp->type);
            continue;
        }
        /* room for this block's output, whatever it turns out to be */
        size_t need = ROUND_UP((size_t)(sb ? sb->psize : lsize), sector);
        if (need > s->bcap)
            return -EOVERFLOW;
        if (rn.used + need > s->bcap) {
            int ret = run_write(io, r, &rn, txg, s, written);
            if (ret < 0)
                return ret;
        }
        uint8_t *out = s->bbuf + rn.used;
        const uint8_t *src = data;
        uint32_t psize = lsize;
        uint8_t comp = BS_COMPRESS_OFF;
        if (sb) {
            psize = sb->psize;
        } else {
            long c = compress_block_hist(wp->comp, wp->comp_level, data, lsize, out, need,
                                         wp->hist);
            if (c < 0)
                return (int)c;
            if (c > 0) {
                src = out;
                psize = (uint32_t)c;
                comp = wp->comp;
            }
        }
        uint32_t asize = (uint32_t)ROUND_UP((uint64_t)psize, sector);
        if (sb) {
            blk_sealed_prepare(sb, data, wp->cksum, txg, bp); /* the whole pointer but the DVA */
        } else {
            memset(bp, 0, sizeof *bp);
            if (wp->crypt) {
                /* each block its own IV and AAD (its blkid), sealed into the
                 * run's buffer (in place when compressed): the caller's
                 * plaintext stays as it is for the cache */
                struct blk_crypt bc = *wp->crypt;
                bc.blkid = r[k].blkid;
                int ret = blk_seal(wp, &bc, comp, lsize, psize, txg, src, out, bp);
                if (ret < 0)
                    return ret;
                src = out;
            } else {
                checksum_compute(wp->cksum, src, psize, bp->checksum);
            }
            bp_set_written(bp, wp, txg, lsize, psize, comp);
        }
        if (asize != psize) {
            if (src != out)
                memcpy(out, src, psize);
            memset(out + psize, 0, asize - psize);
            src = out;
        }
        if (src == out)
            rn.used += asize;
        rn.iov[rn.n].iov_base = (void *)src;
        rn.iov[rn.n].iov_len = asize;
        rn.idx[rn.n] = k;
        rn.asize[rn.n] = (uint32_t)vdev_asize(io->top[rn.top].vd, asize);
        rn.bytes += rn.asize[rn.n];
        rn.n++;
    }
    return run_write(io, r, &rn, txg, s, written);
}

void blk_free(const struct blkio *io, const struct blkptr *bp, uint64_t txg)
{
    if (bp_is_hole(bp))
        return;
    for (int c = 0; c < bp_ncopies(bp); c++) {
        const struct blk_top *t = blk_top_of(io, bp->dva[c].vdev);
        if (t) /* a pointer naming no top was refused when it was read */
            alloc_free(t->alloc, bp->dva[c].offset, bp->dva[c].asize, txg);
    }
}
