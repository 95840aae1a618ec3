/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The block cache (a small ARC): decompressed, verified blocks keyed by where
 * they live and when they were born, (vdev, offset, birth).  Because blocks
 * are copy-on-write, a key's contents never change; a freed and reused
 * location gets a new birth txg and thus a new key, so there is no
 * invalidation on write.  Entries are reference-counted buffers: a reader
 * holds a reference while it copies out, eviction only drops the cache's own
 * reference.  Second-chance (CLOCK) replacement with a byte limit;
 * thread-safe (sharded locks). */
#ifndef BERTH_STORE_CACHE_H
#define BERTH_STORE_CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct cbuf {
    _Atomic uint32_t refs;
    uint32_t size;
    /* 16 bytes derived from `data` by its user, computed once and kept while
     * the (immutable, cached) block is: objtree.c stores the digest of an
     * indirect block's children here.  Valid once memo_ok is set (release
     * after memo is written); cbuf_new clears it. */
    _Atomic uint8_t memo_ok;
    /* handed to a volume by bs_vol_pwrite_bufs (vol.c): never again */
    _Atomic uint8_t adopted;
    uint8_t memo[16];
    _Alignas(64) uint8_t data[];
};

/* A new buffer with one reference; NULL on ENOMEM. */
struct cbuf *cbuf_new(uint32_t size);
struct cbuf *cbuf_ref(struct cbuf *b);
void cbuf_unref(struct cbuf *b); /* NULL accepted */

/* Idle buffers kept for reuse, over all sizes, at most `total` bytes. */
void cbuf_pool_set_limit(uint64_t total);
/* Idle bytes kept now and the limit (tests, stats). */
void cbuf_pool_stats(uint64_t *idle_bytes, uint64_t *limit);

struct bcache;

struct bcache *bcache_new(uint64_t limit_bytes);
void bcache_free(struct bcache *c);
void bcache_set_limit(struct bcache *c, uint64_t limit_bytes);

/* A new reference to the cached buffer, or NULL. */
struct cbuf *bcache_get(struct bcache *c, uint32_t vdev, uint64_t off, uint64_t birth);
/* Insert (the cache takes its own reference; replaces nothing if present). */
void bcache_put(struct bcache *c, uint32_t vdev, uint64_t off, uint64_t birth, struct cbuf *b);
/* bcache_put only while the cache has room: nothing is evicted for it (a
 * sequential stream's blocks, blkio.c run_done: they fill an empty cache
 * but never push out what is there). */
void bcache_put_spare(struct bcache *c, uint32_t vdev, uint64_t off, uint64_t birth,
                      struct cbuf *b);
/* Drop (and wipe where no one else holds them) every entry of one key space
 * `vdev`: the decrypted blocks of a pool whose key was unloaded. */
void bcache_purge(struct bcache *c, uint32_t vdev);
/* Drop an entry (e.g. a block found corrupt). */
void bcache_remove(struct bcache *c, uint32_t vdev, uint64_t off, uint64_t birth);

struct bcache_stats {
    uint64_t bytes, limit, entries, hits, misses, evictions;
};
void bcache_stats(struct bcache *c, struct bcache_stats *st);

#endif
