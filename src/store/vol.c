/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The volume data path: read, write, zero/trim, flush, prefetch, block status.
 *
 * Concurrency (docs/ARCHITECTURE.md): per block, under ds->lock, look in the
 * open dirty map, then the syncing map; on a miss copy the committed root and
 * `gen`, drop the lock and walk the tree without it.  Blocks reachable from a
 * root stay valid for ALLOC_DEFER_TXGS txgs after they are freed, and a
 * read that fails verification after `gen` moved is retried on the new
 * root.  A partial write that had to read the committed block re-checks
 * `gen` and the open map before inserting, and starts over if either moved
 * (a quiesce or a publish happened, or another writer got there first).
 *
 * Invariants:
 *  - a block has at most one entry per map; an entry's buffer is written only
 *    while its map is the open one and only under ds->lock;
 *  - a syncing entry is never modified: writers copy it into a new open
 *    entry;
 *  - a full-block write never reads the old block;
 *  - an entry with `sealed` (raw receive, vol_write_sealed) holds ciphertext:
 *    it is only ever replaced whole or written out by the txg, never read
 *    or merged with a partial write (those fail with EIO). */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/pool_impl.h"
#include "store/resilver.h"
#include "store/snap.h"

/* ---- helpers ---- */

static int check_io(bs_vol *v, uint64_t len, uint64_t off, bool write)
{
    struct ds *ds = v->ds;
    if (atomic_load_explicit(&ds->gone, memory_order_relaxed))
        return -ENXIO;
    uint64_t size = atomic_load_explicit(&ds->volsize, memory_order_relaxed);
    if (off > size || len > size - off)
        return -EINVAL;
    if (write) {
        if (atomic_load_explicit(&ds->readonly, memory_order_relaxed))
            return -EROFS;
        return txg_check_writable(v->pool);
    }
    return 0;
}

/* Read committed block blkid into a cache reference (*out NULL = hole). */
static int read_committed(struct ds *ds, const struct objdesc *od, uint64_t blkid,
                          struct cbuf **out)
{
    struct blkptr bp;
    *out = NULL;
    int r = objtree_lookup(&ds->pool->io, od, blkid, 0, &bp, NULL);
    if (r < 0 || bp_is_hole(&bp))
        return r;
    if (bp.type != BP_TYPE_VOL_DATA) {
        blk_count_cksum_error(&ds->pool->io);
        return -EIO;
    }
    struct blk_crypt bc;
    return blk_read_crypt(&ds->pool->io, &bp, 0, ds_blk_crypt(ds, blkid, &bc), out);
}

/* Read committed block blkid into dst (a hole reads as zeroes): the base of
 * a partial write.  A cached copy is copied; otherwise the block is read
 * straight into dst and not cached (its replacement will be).  flags: 0 or
 * BLK_NOWAIT. */
static int read_committed_into(struct ds *ds, const struct objdesc *od, uint64_t blkid,
                               unsigned flags, struct cbuf *dst)
{
    struct blkptr bp;
    int r = objtree_lookup(&ds->pool->io, od, blkid, flags, &bp, NULL);
    if (r < 0)
        return r;
    if (bp_is_hole(&bp)) {
        memset(dst->data, 0, dst->size);
        return 0;
    }
    if (bp.type != BP_TYPE_VOL_DATA) {
        blk_count_cksum_error(&ds->pool->io);
        return -EIO;
    }
    struct blk_crypt bc;
    return blk_read_copy(&ds->pool->io, &bp, ds_blk_crypt(ds, blkid, &bc), flags, dst);
}

/* Account a new open-map change (under ds->lock). */
static void note_write(struct ds *ds, int64_t delta)
{
    ds->open.bytes += (uint64_t)delta;
    ds->last_write_txg = ds->open_txg;
    txg_mark_dirty(ds->pool);
}

/* Write (src != NULL) or zero (src == NULL) [boff, boff+n) of block blkid.
 * *delta receives the change in dirty bytes.  rflags (0 or BLK_NOWAIT) go
 * to the read of a partial block's base; -EAGAIN changes nothing. */
static int write_block(struct ds *ds, uint64_t blkid, uint32_t boff, const uint8_t *src,
                       uint32_t n, unsigned rflags, int64_t *delta)
{
    const uint32_t bs = ds->rec.volblocksize;
    const bool full = n == bs;
    struct cbuf *nb = NULL, *old = NULL;
    bool have_base = false;
    int r = 0;
    *delta = 0;
    /* allocate outside the lock for the common cases */
    if (src || !full) {
        nb = cbuf_new(bs);
        if (!nb)
            return -ENOMEM;
    }
    /* A full block is copied before the lock is taken (nb is still private):
     * the copy, and the page faults of a buffer fresh from malloc, no longer
     * hold up the other writers and readers of the volume. */
    if (src && full)
        memcpy(nb->data, src, n);
    pthread_mutex_lock(&ds->lock);
    for (;;) {
        struct dirty_ent *e = dmap_find(&ds->open, blkid);
        if (e && e->sealed) {
            if (!full) { /* ciphertext cannot be merged with plaintext */
                pthread_mutex_unlock(&ds->lock);
                r = -EIO;
                goto out;
            }
            free(e->sealed);
            e->sealed = NULL;
        }
        if (e) {
            if (src && full) {
                /* nobody holds an open entry's buffer outside ds->lock:
                 * swap in the new one */
                old = e->buf;
                e->buf = steal_ptr(nb);
                *delta = old ? 0 : bs - DIRTY_HOLE_BYTES;
            } else if (!src && full) {
                if (e->buf) {
                    cbuf_unref(e->buf);
                    e->buf = NULL;
                    *delta = -(int64_t)(bs - DIRTY_HOLE_BYTES);
                }
            } else {
                if (!e->buf) {
                    memset(nb->data, 0, bs);
                    e->buf = steal_ptr(nb);
                    *delta = bs - DIRTY_HOLE_BYTES;
                }
                if (src)
                    memcpy(e->buf->data + boff, src, n);
                else
                    memset(e->buf->data + boff, 0, n);
            }
            break;
        }
        if (full) {
            *delta = nb ? bs : DIRTY_HOLE_BYTES; /* nb already filled if src */
        } else {
            struct dirty_ent *s = dmap_find(&ds->syncing, blkid);
            if (s && s->sealed) {
                pthread_mutex_unlock(&ds->lock);
                r = -EIO;
                goto out;
            }
            if (s) {
                if (s->buf)
                    memcpy(nb->data, s->buf->data, bs);
                else
                    memset(nb->data, 0, bs);
            } else if (!have_base) {
                /* nb is still private: the committed block goes straight
                 * into it */
                struct objdesc od = ds->od;
                uint64_t gen = ds->gen;
                pthread_mutex_unlock(&ds->lock);
                r = read_committed_into(ds, &od, blkid, rflags, nb);
                if (r < 0)
                    goto out;
                pthread_mutex_lock(&ds->lock);
                /* valid while we hold the lock; if a quiesce or publish
                 * moved the block, read again */
                have_base = ds->gen == gen;
                continue; /* re-check the open map */
            }
            if (src)
                memcpy(nb->data + boff, src, n);
            else
                memset(nb->data + boff, 0, n);
            *delta = bs;
        }
        if (!dmap_add(&ds->open, blkid, nb)) {
            *delta = 0;
            r = -ENOMEM;
            pthread_mutex_unlock(&ds->lock);
            goto out;
        }
        nb = NULL; /* the entry's */
        break;
    }
    note_write(ds, *delta);
    pthread_mutex_unlock(&ds->lock);
out:
    cbuf_unref(old);
    cbuf_unref(nb);
    return r;
}

static bool space_short(struct bs_pool *p, uint64_t len)
{
    uint64_t dirty = atomic_load_explicit(&p->txg.dirty_bytes, memory_order_relaxed);
    uint64_t free_b = atomic_load_explicit(&p->free_est, memory_order_relaxed);
    return dirty + len + p->slop > free_b;
}

/* Refuse a write that might not fit when its txg syncs (a sync that runs out
 * of space would fault the pool).  Space is only short for now while dirty
 * data is pending or frees are deferred: then wait for txgs to commit and
 * look again; -ENOSPC only when the pool is really full. */
static int space_check(struct bs_pool *p, uint64_t len)
{
    bool yielded = false;
    for (int i = 0; space_short(p, len); i++) {
        if (i > ALLOC_DEFER_TXGS + 1 ||
            (atomic_load(&p->txg.dirty_bytes) == 0 && !pool_tops_deferred_pending(p))) {
            /* frees a scrub or resilver holds (scrub.c) are space too: it
             * lets go of them and goes on; then the txgs drain them */
            if (yielded || !scan_yield_frees(p))
                return -ENOSPC;
            yielded = true;
            i = -1;
            continue;
        }
        int r = txg_sync_all(p);
        if (r < 0)
            return r;
    }
    return 0;
}

static int finish_write(bs_vol *v, unsigned flags, int r)
{
    if (r == 0 && (flags & BS_IO_FUA))
        r = bs_vol_flush(v);
    return r;
}

int bs_vol_pwrite(bs_vol *v, const void *buf, uint64_t len, uint64_t off, unsigned flags)
{
    int r = check_io(v, len, off, true);
    if (r < 0)
        return r;
    const bool nowait = flags & BS_IO_NOWAIT;
    const unsigned rflags = nowait ? BLK_NOWAIT : 0;
    if (nowait) { /* -EAGAIN may leave earlier blocks written: the retry rewrites them */
        if (flags & BS_IO_FUA)
            return -EINVAL;
        if (txg_would_throttle(v->pool) || space_short(v->pool, len))
            return -EAGAIN;
    } else if ((r = txg_throttle(v->pool, len)) < 0 || (r = space_check(v->pool, len)) < 0) {
        return r;
    }
    struct ds *ds = v->ds;
    const uint32_t bs = ds->rec.volblocksize;
    const uint8_t *src = buf;
    int64_t total = 0;
    while (len > 0) {
        uint64_t blkid = off / bs;
        uint32_t boff = (uint32_t)(off % bs);
        uint32_t n = (uint32_t)MIN((uint64_t)(bs - boff), len);
        int64_t delta;
        r = write_block(ds, blkid, boff, src, n, rflags, &delta);
        total += delta;
        if (r < 0)
            break;
        src += n;
        off += n;
        len -= n;
    }
    if (total)
        txg_add_dirty(v->pool, total);
    return finish_write(v, flags, r);
}

/* ---- whole-block buffers (store.h: bs_vol_wbuf_new) ---- */

#define ADOPT_BATCH 64 /* blocks per hold of ds->lock: 1 MiB of 16K blocks */

/* Make bufs[0..n) (filled, whole blocks) the open dirty copies of blocks
 * blkid0.. under one hold of ds->lock: a full-block write never reads the
 * old block, so nothing drops the lock in between (one lock round trip
 * per block was ~1% of a 1 MiB write stream).  *done: buffers taken (all
 * but on ENOMEM); *total += the change in dirty bytes. */
static int adopt_blocks(struct ds *ds, uint64_t blkid0, struct cbuf *const *bufs, size_t n,
                        size_t *done, int64_t *total)
{
    const uint32_t bs = ds->rec.volblocksize;
    struct cbuf *old[ADOPT_BATCH];
    struct blk_sealed *olds[ADOPT_BATCH];
    size_t nold = 0, nolds = 0, i = 0;
    int64_t delta = 0;
    int r = 0;
    if (n == 0)
        return 0;
    pthread_mutex_lock(&ds->lock);
    for (; i < n; i++) {
        struct dirty_ent *e = dmap_find(&ds->open, blkid0 + i);
        if (e) {
            /* nobody holds an open entry's buffer outside ds->lock; a
             * sealed entry is replaced whole */
            if (e->sealed)
                olds[nolds++] = steal_ptr(e->sealed);
            if (e->buf)
                old[nold++] = e->buf;
            else
                delta += bs - DIRTY_HOLE_BYTES;
            e->buf = bufs[i];
        } else if (dmap_add(&ds->open, blkid0 + i, bufs[i])) {
            delta += bs;
        } else {
            r = -ENOMEM;
            break;
        }
    }
    note_write(ds, delta);
    pthread_mutex_unlock(&ds->lock);
    for (size_t j = 0; j < nold; j++)
        cbuf_unref(old[j]);
    for (size_t j = 0; j < nolds; j++)
        free(olds[j]);
    *done = i;
    *total += delta;
    return r;
}

bs_wbuf *bs_vol_wbuf_new(bs_vol *v)
{
    return (bs_wbuf *)cbuf_new(v->ds->rec.volblocksize);
}

void *bs_wbuf_data(bs_wbuf *b)
{
    return ((struct cbuf *)b)->data;
}

void bs_wbuf_free(bs_wbuf *b)
{
    cbuf_unref((struct cbuf *)b);
}

/* Drop the buffers of bufs[i..n) that were not adopted (the same pointer
 * twice in the array: its first place adopted it, the map owns it). */
static void wbufs_drop(bs_wbuf *const *bufs, size_t i, size_t n)
{
    for (; i < n; i++) {
        struct cbuf *b = (struct cbuf *)bufs[i];
        if (b && !atomic_load_explicit(&b->adopted, memory_order_relaxed))
            cbuf_unref(b);
    }
}

int bs_vol_pwrite_bufs(bs_vol *v, bs_wbuf *const *bufs, size_t n, uint64_t off, unsigned flags)
{
    struct ds *ds = v->ds;
    const uint32_t bs = ds->rec.volblocksize;
    int r = 0;
    if (n == 0) {
        r = -EINVAL;
    } else if (off % bs || n > UINT64_MAX / bs) {
        r = -EINVAL;
    } else if ((r = check_io(v, n * bs, off, true)) == 0 &&
               (r = txg_throttle(v->pool, n * bs)) == 0) {
        r = space_check(v->pool, n * bs);
    }
    if (r < 0) {
        wbufs_drop(bufs, 0, n);
        return r;
    }
    int64_t total = 0;
    size_t i = 0;
    while (i < n && r == 0) {
        size_t k = MIN(n - i, (size_t)ADOPT_BATCH);
        for (size_t j = 0; j < k; j++) {
            struct cbuf *b = (struct cbuf *)bufs[i + j];
            /* one buffer is the dirty copy of one block: a buffer given
             * twice (or again after an earlier call took it) is refused */
            if (!b || b->size != bs || atomic_exchange(&b->adopted, 1)) {
                r = -EINVAL;
                k = j;
                break;
            }
        }
        size_t done = 0;
        int r2 = adopt_blocks(ds, off / bs + i, (struct cbuf *const *)bufs + i, k, &done, &total);
        i += done;
        if (r == 0)
            r = r2;
        if (r < 0 && done < k) {
            /* marked above but not taken: still ours to free */
            for (size_t j = done; j < k; j++)
                atomic_store(&((struct cbuf *)bufs[i + j - done])->adopted, 0);
        }
    }
    if (r < 0)
        wbufs_drop(bufs, i, n);
    if (total)
        txg_add_dirty(v->pool, total);
    return finish_write(v, flags, r);
}

int vol_write_sealed(bs_vol *v, const struct blk_sealed *sb, const uint8_t *ct)
{
    struct ds *ds = v->ds;
    const uint32_t bs = ds->rec.volblocksize;
    if (sb->lsize != bs || sb->psize == 0 || sb->psize > bs || !ds->key)
        return -EINVAL;
    int r = check_io(v, bs, sb->blkid * bs, true);
    if (r < 0)
        return r;
    if ((r = txg_throttle(v->pool, bs)) < 0 || (r = space_check(v->pool, bs)) < 0)
        return r;
    struct cbuf *nb = cbuf_new(bs);
    struct blk_sealed *ns = malloc(sizeof *ns);
    if (!nb || !ns) {
        cbuf_unref(nb);
        free(ns);
        return -ENOMEM;
    }
    memcpy(nb->data, ct, sb->psize);
    memset(nb->data + sb->psize, 0, bs - sb->psize);
    *ns = *sb;
    int64_t delta;
    struct cbuf *old = NULL;
    struct blk_sealed *olds = NULL;
    pthread_mutex_lock(&ds->lock);
    struct dirty_ent *e = dmap_find(&ds->open, sb->blkid);
    if (e) {
        old = e->buf;
        olds = e->sealed;
        e->buf = nb;
        e->sealed = ns;
        delta = old ? 0 : bs - DIRTY_HOLE_BYTES;
    } else {
        struct dirty_ent *ne = dmap_add(&ds->open, sb->blkid, nb);
        if (!ne) {
            pthread_mutex_unlock(&ds->lock);
            cbuf_unref(nb);
            free(ns);
            return -ENOMEM;
        }
        ne->sealed = ns;
        delta = bs;
    }
    note_write(ds, delta);
    pthread_mutex_unlock(&ds->lock);
    cbuf_unref(old);
    free(olds);
    if (delta)
        txg_add_dirty(v->pool, delta);
    return 0;
}

/* Is block blkid a hole in the committed tree and in no dirty map?  Caches
 * the span of the hole found in [h0, h1) for the same gen. */
static int clean_hole(struct ds *ds, uint64_t blkid, uint64_t *hgen, uint64_t *h0, uint64_t *h1)
{
    pthread_mutex_lock(&ds->lock);
    bool dirty = dmap_find(&ds->open, blkid) || dmap_find(&ds->syncing, blkid);
    uint64_t gen = ds->gen;
    struct objdesc od = ds->od;
    pthread_mutex_unlock(&ds->lock);
    if (dirty)
        return 0;
    if (gen == *hgen && blkid >= *h0 && blkid < *h1)
        return 1;
    struct blkptr bp;
    uint64_t hb;
    int r = objtree_lookup(&ds->pool->io, &od, blkid, 0, &bp, &hb);
    if (r < 0 || !bp_is_hole(&bp))
        return r < 0 ? r : 0;
    *hgen = gen;
    *h0 = blkid;
    *h1 = hb > UINT64_MAX - blkid ? UINT64_MAX : blkid + hb;
    return 1;
}

int bs_vol_zero(bs_vol *v, uint64_t len, uint64_t off, unsigned flags)
{
    int r = check_io(v, len, off, true);
    if (r < 0)
        return r;
    if ((r = txg_throttle(v->pool, 0)) < 0) /* zeroes dirty next to nothing */
        return r;
    struct ds *ds = v->ds;
    const uint32_t bs = ds->rec.volblocksize;
    int64_t total = 0;
    uint64_t hgen = UINT64_MAX, h0 = 0, h1 = 0;
    while (len > 0) {
        uint64_t blkid = off / bs;
        uint32_t boff = (uint32_t)(off % bs);
        uint32_t n = (uint32_t)MIN((uint64_t)(bs - boff), len);
        int64_t delta = 0;
        /* a whole block that is already a clean hole needs no entry (trim of
         * never-written space, e.g. mkfs discarding the device) */
        r = n == bs ? clean_hole(ds, blkid, &hgen, &h0, &h1) : 0;
        if (r == 0)
            r = write_block(ds, blkid, boff, NULL, n, 0, &delta);
        else if (r > 0)
            r = 0;
        total += delta;
        if (r < 0)
            break;
        off += n;
        len -= n;
    }
    if (total)
        txg_add_dirty(v->pool, total);
    return finish_write(v, flags, r);
}

int bs_vol_trim(bs_vol *v, uint64_t len, uint64_t off, unsigned flags)
{
    return bs_vol_zero(v, len, off, flags & ~BS_IO_FAST_ZERO);
}

/* ---- reads ----
 *
 * A read goes in runs of up to BLK_READ_MAX blocks: one ds->lock to check
 * the dirty maps of all of them and copy the committed root, one tree walk
 * per level-1 indirect (objtree_lookup_run) instead of one per block, and
 * the whole blocks read straight into the caller's buffer (blk_read_blocks:
 * one preadv per contiguous run, no cache buffer, no copy).  A partial
 * block still goes through the cache (a 4K reader reads its 16K block
 * several times).  A sequential stream of whole blocks does not insert
 * what it reads into the block cache: a stream larger than the cache would
 * evict everything, itself included, before any block is read again. */

/* How many of the max blocks from blkid have no dirty entry, stopping at
 * the first that has one (0: blkid itself is dirty).  Under ds->lock. */
static size_t clean_run(const struct ds *ds, uint64_t blkid, size_t max)
{
    if (ds->open.count == 0 && ds->syncing.count == 0)
        return max;
    size_t k = 0;
    while (k < max && !dmap_find(&ds->open, blkid + k) && !dmap_find(&ds->syncing, blkid + k))
        k++;
    return k;
}

/* Reads within this distance of where the last one ended are a stream (the
 * workers take a queue depth of requests out of order). */
#define READ_STREAM_WINDOW (32ULL << 20)

/* Is the read [off, off+len) part of a sequential stream?  Records where
 * it ends for the next one (racy by design: it only steers caching). */
static bool read_streams(struct ds *ds, uint64_t off, uint64_t len)
{
    uint64_t prev = atomic_exchange_explicit(&ds->read_next, off + len, memory_order_relaxed);
    return off <= prev + READ_STREAM_WINDOW && prev <= off + READ_STREAM_WINDOW;
}

/* Read the committed blocks blkid.. (at most k, all clean when the root od
 * was copied) into dst, starting boff into the first block, at most len
 * bytes; *done gets the bytes read. */
static int read_clean(struct ds *ds, const struct objdesc *od, uint64_t blkid, size_t k,
                      uint8_t *dst, uint32_t boff, uint64_t len, bool cache, uint64_t *done)
{
    const struct blkio *io = &ds->pool->io;
    const uint32_t bs = ds->rec.volblocksize;
    struct blkptr bps[BLK_READ_MAX];
    struct blk_rreq rq[BLK_READ_MAX];
    struct blk_crypt bcs[BLK_READ_MAX];
    uint64_t hb;
    size_t nrq = 0;
    int m = objtree_lookup_run(io, od, blkid, k, bps, &hb);
    if (m < 0)
        return m;
    uint64_t pos = 0;
    for (int i = 0; i < m && pos < len; i++, boff = 0) {
        uint32_t n = (uint32_t)MIN((uint64_t)(bs - boff), len - pos);
        const struct blkptr *bp = &bps[i];
        if (bp_is_hole(bp)) {
            memset(dst + pos, 0, n);
        } else if (bp->type != BP_TYPE_VOL_DATA) {
            blk_count_cksum_error(io);
            return -EIO;
        } else if (n == bs) {
            rq[nrq].bp = *bp;
            rq[nrq].bc = ds_blk_crypt(ds, blkid + (uint64_t)i, &bcs[nrq]);
            rq[nrq].dst = dst + pos;
            nrq++;
        } else {
            struct blk_crypt bc;
            struct cbuf *c;
            int r = blk_read_crypt(io, bp, 0, ds_blk_crypt(ds, blkid + (uint64_t)i, &bc), &c);
            if (r < 0)
                return r;
            memcpy(dst + pos, c->data + boff, n);
            cbuf_unref(c);
        }
        pos += n;
    }
    *done = pos;
    return nrq ? blk_read_blocks(io, rq, nrq, cache) : 0;
}

int bs_vol_pread(bs_vol *v, void *buf, uint64_t len, uint64_t off)
{
    int r = check_io(v, len, off, false);
    if (r < 0)
        return r;
    struct ds *ds = v->ds;
    const uint32_t bs = ds->rec.volblocksize;
    const bool cache = !read_streams(ds, off, len);
    txg_note_read(ds->pool);
    uint8_t *dst = buf;
    while (len > 0) {
        uint64_t blkid = off / bs;
        uint32_t boff = (uint32_t)(off % bs);
        /* the blocks [off, off+len) touches, up to a run */
        size_t want = (size_t)MIN((uint64_t)BLK_READ_MAX, (boff + len + bs - 1) / bs);
        uint64_t done = 0;
        for (int tries = 0;; tries++) {
            pthread_mutex_lock(&ds->lock);
            size_t k = clean_run(ds, blkid, want);
            if (k == 0) {
                struct dirty_ent *e = dmap_find(&ds->open, blkid);
                if (!e)
                    e = dmap_find(&ds->syncing, blkid);
                if (e->sealed) {
                    pthread_mutex_unlock(&ds->lock);
                    return -EIO;
                }
                done = MIN((uint64_t)(bs - boff), len);
                if (e->buf)
                    memcpy(dst, e->buf->data + boff, done);
                else
                    memset(dst, 0, done);
                pthread_mutex_unlock(&ds->lock);
                break;
            }
            struct objdesc od = ds->od;
            uint64_t gen = ds->gen;
            pthread_mutex_unlock(&ds->lock);
            r = read_clean(ds, &od, blkid, k, dst, boff, len, cache, &done);
            if (r == 0)
                break;
            /* a walk that raced the reuse of freed blocks fails verification;
             * only a failure on an unchanged root is real */
            pthread_mutex_lock(&ds->lock);
            bool moved = ds->gen != gen;
            pthread_mutex_unlock(&ds->lock);
            if (!moved || tries >= 3)
                return r;
        }
        dst += done;
        off += done;
        len -= done;
    }
    return 0;
}

int bs_vol_flush(bs_vol *v)
{
    struct ds *ds = v->ds;
    pthread_mutex_lock(&ds->lock);
    uint64_t t = ds->last_write_txg;
    pthread_mutex_unlock(&ds->lock);
    if (t == 0)
        return 0;
    return txg_wait(v->pool, t);
}

int bs_vol_cache(bs_vol *v, uint64_t len, uint64_t off)
{
    int r = check_io(v, len, off, false);
    if (r < 0)
        return r;
    struct ds *ds = v->ds;
    const uint32_t bs = ds->rec.volblocksize;
    uint64_t end = off + len;
    for (uint64_t blkid = off / bs; blkid * bs < end; blkid++) {
        pthread_mutex_lock(&ds->lock);
        bool dirty = dmap_find(&ds->open, blkid) || dmap_find(&ds->syncing, blkid);
        struct objdesc od = ds->od;
        pthread_mutex_unlock(&ds->lock);
        if (dirty)
            continue;
        struct cbuf *c;
        r = read_committed(ds, &od, blkid, &c);
        cbuf_unref(c);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The extents being merged by bs_vol_block_status. */
struct ext_acc {
    uint64_t off;   /* start of the pending extent */
    unsigned flags; /* its flags */
    bool have;
};

/* Add [pos, next) with flags fl; a change of flags reports the pending
 * extent.  cb's non-zero answer (stop, or an error) is returned. */
static int ext_add(struct ext_acc *a, uint64_t pos, unsigned fl,
                   int (*cb)(uint64_t off, uint64_t len, unsigned flags, void *opaque),
                   void *opaque)
{
    if (a->have && fl != a->flags) {
        int r = cb(a->off, pos - a->off, a->flags, opaque);
        if (r)
            return r;
        a->off = pos;
    }
    a->flags = fl;
    a->have = true;
    return 0;
}

int bs_vol_block_status(bs_vol *v, uint64_t len, uint64_t off,
                        int (*cb)(uint64_t off, uint64_t len, unsigned flags, void *opaque),
                        void *opaque)
{
    int r = check_io(v, len, off, false);
    if (r < 0)
        return r;
    struct ds *ds = v->ds;
    const uint32_t bs = ds->rec.volblocksize;
    uint64_t end = off + len, pos = off;
    struct ext_acc a = {.off = off};
    struct blkptr bps[BLK_READ_MAX];
    while (pos < end) {
        uint64_t blkid = pos / bs;
        size_t want = (size_t)MIN((uint64_t)BLK_READ_MAX, (end - blkid * bs + bs - 1) / bs);
        pthread_mutex_lock(&ds->lock);
        /* a run of clean blocks, or the one dirty block at pos (read its
         * entry under the lock: publish frees syncing entries) */
        size_t k = clean_run(ds, blkid, want);
        struct dirty_ent *e = NULL;
        if (k == 0 && !(e = dmap_find(&ds->open, blkid)))
            e = dmap_find(&ds->syncing, blkid);
        bool dirty_hole = e && !e->buf;
        bool maps_empty = ds->open.count == 0 && ds->syncing.count == 0;
        struct objdesc od = ds->od;
        pthread_mutex_unlock(&ds->lock);
        int m = 1;
        uint64_t hb = 1;
        if (k > 0 && (m = objtree_lookup_run(&ds->pool->io, &od, blkid, k, bps, &hb)) < 0)
            return m;
        for (int i = 0; i < m && pos < end; i++) {
            unsigned fl = k == 0 ? (dirty_hole ? BS_EXTENT_HOLE | BS_EXTENT_ZERO : 0)
                                 : (bp_is_hole(&bps[i]) ? BS_EXTENT_HOLE | BS_EXTENT_ZERO : 0);
            uint64_t nblk = 1;
            /* a hole high in the tree covers many blocks: skip them when no
             * dirty block can hide among them */
            if (k > 0 && i == 0 && fl && maps_empty && hb > 1)
                nblk = hb;
            uint64_t next = (blkid + (uint64_t)i) * bs;
            next = nblk > (UINT64_MAX - next) / bs ? end : next + nblk * bs;
            if (next > end)
                next = end;
            if ((r = ext_add(&a, pos, fl, cb, opaque)) != 0)
                return r;
            pos = next;
            if (nblk > 1)
                break;
        }
    }
    if (a.have)
        return cb(a.off, end - a.off, a.flags, opaque);
    return 0;
}

uint64_t bs_vol_size(bs_vol *v)
{
    return atomic_load(&v->ds->volsize);
}

uint32_t bs_vol_blocksize(bs_vol *v)
{
    return v->ds->rec.volblocksize;
}

bool bs_vol_readonly(bs_vol *v)
{
    return v->pool->readonly || atomic_load(&v->ds->readonly);
}
