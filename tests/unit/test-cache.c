/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/cache.c: refcounts, keys, the byte limit,
 * second-chance eviction order, counters and concurrent use. */
#include "store/cache.h"
#include "tap.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define K16 16384u

static struct cbuf *mk(uint32_t size, uint8_t fill)
{
    struct cbuf *b = cbuf_new(size);
    memset(b->data, fill, size);
    return b;
}

static void test_basic(void)
{
    struct bcache *c = bcache_new(1 << 20); /* small: one shard, exact order */
    struct bcache_stats st;
    struct cbuf *b = mk(K16, 1);
    ok(((uintptr_t)b->data & 63) == 0 && b->refs == 1, "new buffer: 64-byte aligned, one ref");
    ok(bcache_get(c, 0, 4096, 7) == NULL, "miss on empty cache");
    bcache_put(c, 0, 4096, 7, b);
    ok(b->refs == 2, "cache holds its own reference");
    struct cbuf *g = bcache_get(c, 0, 4096, 7);
    ok(g == b && b->refs == 3, "hit returns a new reference to the same buffer");
    cbuf_unref(g);
    ok(bcache_get(c, 0, 4096, 8) == NULL && bcache_get(c, 1, 4096, 7) == NULL &&
           bcache_get(c, 0, 8192, 7) == NULL,
       "key is (vdev, offset, birth)");
    struct cbuf *b2 = mk(K16, 2);
    bcache_put(c, 0, 4096, 7, b2);
    g = bcache_get(c, 0, 4096, 7);
    ok(g == b && b2->refs == 1, "put of an existing key keeps the old entry");
    cbuf_unref(g);
    cbuf_unref(b2);
    bcache_stats(c, &st);
    ok(st.hits == 2 && st.misses == 4 && st.entries == 1 && st.bytes == K16,
       "hit/miss/entries/bytes counters");
    bcache_remove(c, 0, 4096, 7);
    ok(b->refs == 1 && bcache_get(c, 0, 4096, 7) == NULL, "remove drops the cache's reference");
    bcache_remove(c, 0, 4096, 7);
    bcache_put(c, 0, 0, 1, b);
    cbuf_unref(b); /* only the cache holds it now */
    bcache_free(c); /* frees it */
    ok(1, "free with entries held only by the cache");
    cbuf_unref(NULL);
}

/* Second chance: every entry referenced still lets a put evict (the bits
 * are cleared in one pass); a spared entry that is not hit again goes the
 * next time round. */
static void test_clock(void)
{
    uint64_t limit = 4 * K16;
    struct bcache *c = bcache_new(limit);
    struct bcache_stats st;
    for (uint64_t i = 0; i < 4; i++) {
        struct cbuf *b = mk(K16, (uint8_t)i);
        bcache_put(c, 0, i * K16, 1, b);
        cbuf_unref(b);
    }
    for (uint64_t i = 0; i < 4; i++)
        cbuf_unref(bcache_get(c, 0, i * K16, 1)); /* all referenced */
    struct cbuf *b = mk(K16, 4);
    bcache_put(c, 0, 4 * K16, 1, b);
    cbuf_unref(b);
    bcache_stats(c, &st);
    struct cbuf *g0 = bcache_get(c, 0, 0, 1);
    ok(st.entries == 4 && st.evictions == 1 && g0 == NULL,
       "all referenced: one pass clears the bits, the oldest goes (%llu entries)",
       (unsigned long long)st.entries);
    cbuf_unref(g0);
    /* 1, 2, 3 were spared once (bits cleared), 4 is new; hit 3 only */
    cbuf_unref(bcache_get(c, 0, 3 * K16, 1));
    for (uint64_t i = 5; i < 7; i++) {
        b = mk(K16, (uint8_t)i);
        bcache_put(c, 0, i * K16, 1, b);
        cbuf_unref(b);
    }
    struct cbuf *g1 = bcache_get(c, 0, 1 * K16, 1), *g2 = bcache_get(c, 0, 2 * K16, 1),
                *g3 = bcache_get(c, 0, 3 * K16, 1);
    ok(!g1 && !g2 && g3, "spared entries not hit again are evicted next, a hit one stays");
    cbuf_unref(g1);
    cbuf_unref(g2);
    cbuf_unref(g3);
    bcache_free(c);
}

static void test_eviction(void)
{
    uint64_t limit = 10 * K16;
    struct bcache *c = bcache_new(limit);
    struct bcache_stats st;
    struct cbuf *first = mk(K16, 0);
    bcache_put(c, 0, 0, 1, first); /* reader keeps its reference */
    for (uint64_t i = 1; i < 10; i++) {
        struct cbuf *b = mk(K16, (uint8_t)i);
        bcache_put(c, 0, i * K16, 1, b);
        cbuf_unref(b);
    }
    struct cbuf *g = bcache_get(c, 0, 0, 1); /* touch 0: now most recently used */
    cbuf_unref(g);
    for (uint64_t i = 10; i < 13; i++) {
        struct cbuf *b = mk(K16, (uint8_t)i);
        bcache_put(c, 0, i * K16, 1, b);
        cbuf_unref(b);
    }
    bcache_stats(c, &st);
    ok(st.bytes <= limit && st.entries == 10 && st.evictions == 3, "limit respected (%llu bytes)",
       (unsigned long long)st.bytes);
    int lru = 1;
    for (uint64_t i = 1; i <= 3; i++)
        lru &= bcache_get(c, 0, i * K16, 1) == NULL;
    ok(lru, "oldest unreferenced entries evicted first");
    g = bcache_get(c, 0, 0, 1);
    ok(g == first, "the referenced oldest entry got a second chance");
    cbuf_unref(g);
    bcache_set_limit(c, 2 * K16);
    bcache_stats(c, &st);
    ok(st.entries == 2 && st.bytes == 2 * K16, "lowering the limit evicts at once");
    g = bcache_get(c, 0, 0, 1);
    ok(g == first && first->data[5] == 0, "entry still cached after eviction pass");
    cbuf_unref(g);
    bcache_set_limit(c, 0);
    bcache_stats(c, &st);
    ok(st.entries == 0 && first->refs == 1 && first->data[100] == 0,
       "evicted buffer stays valid for its reader");
    cbuf_unref(first);
    struct cbuf *big = mk(K16, 9);
    bcache_put(c, 0, 0, 2, big);
    bcache_stats(c, &st);
    ok(st.entries == 0 && big->refs == 1, "a buffer larger than the limit is not cached");
    cbuf_unref(big);
    bcache_free(c);
}

static struct bcache *shared;

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    int bad = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        uint64_t off = ((i * 2654435761u) % 4000) * 4096;
        struct cbuf *b = bcache_get(shared, 0, off, 1);
        if (!b) {
            b = cbuf_new(4096);
            memset(b->data, (uint8_t)(off >> 12), 4096);
            bcache_put(shared, 0, off, 1, b);
        }
        bad += b->data[4095] != (uint8_t)(off >> 12);
        cbuf_unref(b);
    }
    (void)id;
    return (void *)(uintptr_t)bad;
}

static void test_threads(void)
{
    struct bcache_stats st;
    shared = bcache_new(64ULL << 20); /* 16 shards */
    pthread_t t[4];
    uintptr_t bad = 0;
    void *r;
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], &r);
        bad += (uintptr_t)r;
    }
    bcache_stats(shared, &st);
    ok(bad == 0 && st.hits + st.misses == 80000 && st.entries <= 4000 &&
           st.bytes == st.entries * 4096 && st.bytes <= st.limit,
       "4 threads: consistent contents and counters (%llu hits)", (unsigned long long)st.hits);
    bcache_set_limit(shared, 1 << 20);
    bcache_stats(shared, &st);
    ok(st.bytes <= 1 << 20, "sharded limit respected after shrinking");
    bcache_free(shared);
}

/* The idle-buffer pool: freed buffers are reused (LIFO, fields reset),
 * idle bytes over all sizes stay within the limit, a lower limit drops
 * the excess at once.  Sanitizer builds keep no idle buffers at all. */
static void test_pool(void)
{
    uint64_t idle, limit;
    cbuf_pool_set_limit(0);
    cbuf_pool_stats(&idle, &limit);
    ok(idle == 0 && limit == 0, "pool: a zero limit empties it");
    cbuf_pool_set_limit(4 * K16);
    cbuf_pool_stats(&idle, &limit);
    bool pooling = limit != 0;
    struct cbuf *b[6];
    for (int i = 0; i < 6; i++)
        b[i] = mk(K16, (uint8_t)i);
    for (int i = 0; i < 6; i++)
        cbuf_unref(b[i]);
    cbuf_pool_stats(&idle, &limit);
    ok(idle == (pooling ? 4 * K16 : 0), "pool: 6 buffers freed, %llu bytes kept (limit %llu)",
       (unsigned long long)idle, (unsigned long long)limit);
    struct cbuf *big = mk(4 * K16, 9);
    cbuf_unref(big);
    cbuf_pool_stats(&idle, &limit);
    ok(idle <= limit || !pooling, "pool: one bound over all sizes (%llu idle)",
       (unsigned long long)idle);
    if (pooling) {
        struct cbuf *r = cbuf_new(K16);
        ok(r == b[3], "pool: the buffer freed last (and kept) comes back first");
        ok(atomic_load(&r->refs) == 1 && atomic_load(&r->memo_ok) == 0 &&
               atomic_load(&r->adopted) == 0 && r->size == K16,
           "pool: a reused buffer is reset");
        struct cbuf *r2 = cbuf_new(K16);
        ok(r2 != r && r2 == b[2], "pool: two live buffers are never the same one");
        memset(r->data, 1, K16);
        memset(r2->data, 2, K16);
        ok(r->data[0] == 1 && r2->data[K16 - 1] == 2, "pool: their data are apart");
        cbuf_unref(r);
        cbuf_unref(r2);
    } else {
        struct cbuf *r = cbuf_new(K16);
        ok(r && atomic_load(&r->refs) == 1, "pool: sanitizer build, buffers come from malloc");
        cbuf_unref(r);
    }
    cbuf_pool_set_limit(K16);
    cbuf_pool_stats(&idle, &limit);
    ok(idle <= K16, "pool: a lower limit drops the excess at once (%llu idle)",
       (unsigned long long)idle);
    cbuf_pool_set_limit(32u << 20);
}

int main(void)
{
    test_basic();
    test_eviction();
    test_clock();
    test_threads();
    test_pool();
    return done_testing();
}
