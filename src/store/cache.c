/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The block cache: verified, decompressed blocks keyed by (vdev, offset,
 * birth), in reference-counted buffers.
 *
 * The table is split into shards by key hash, each with its own mutex, hash
 * chains, replacement list, byte count and a share of the limit, so readers on many
 * threads rarely meet on a lock.  Small caches use fewer shards (down to
 * one) so that a shard still holds a few blocks.
 *
 * Replacement is second chance (CLOCK): entries sit on a list in the
 * order they were inserted (or last given a second chance), and a hit only
 * sets the entry's `referenced` bit.  Eviction looks at the tail: a
 * referenced entry loses the bit and moves to the head, an unreferenced
 * one is dropped.  A hit used to move the entry to the head of an exact LRU
 * list, which wrote the entry and both neighbours (three scattered cache
 * misses per lookup, under the shard lock, on every level of every tree
 * walk: 4-5% of berthd's CPU in 4K random writes); now it writes one byte of
 * the entry it has already read.
 *
 * Invariants (per shard, under its lock):
 *  - every entry is on exactly one hash chain and on the list (head = most
 *    recently inserted or spared) and holds one reference to its buffer;
 *  - bytes = sum of the entries' buffer sizes, and bytes <= limit after
 *    every put (eviction from the tail, sparing referenced entries once);
 *  - a buffer larger than the shard's limit is never inserted.
 * Eviction or removal drops only the cache's reference; a reader holding its
 * own reference keeps the buffer alive. */
#include "store/cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

#define MAX_SHARDS 16u
#define MIN_SHARD_BYTES (4ULL << 20)
#define INITIAL_BUCKETS 256u

struct centry {
    uint32_t vdev;
    uint64_t off, birth;
    struct cbuf *buf;
    struct centry *hnext;
    struct centry *prev, *next; /* the list (second chance) */
    bool referenced;            /* hit since inserted or last spared */
};

struct shard {
    pthread_mutex_t lock;
    struct centry **buckets;
    size_t nbuckets, entries;
    struct centry *head, *tail;
    uint64_t bytes, limit, hits, misses, evictions;
};

struct bcache {
    unsigned nshards;
    struct shard shards[MAX_SHARDS];
};

/* ---- buffers ---- */

/* Free lists of buffers of the block sizes the engine uses all the time
 * (powers of two, 4 KiB .. 128 KiB: data blocks, indirects).  Every write
 * used to malloc a volblocksize buffer and every txg freed tens of
 * thousands of them; malloc's consolidation and trimming made the next
 * allocations page-fault the memory back in (~15% of the write path's CPU).
 * The lists share one bound, g_idle_limit bytes of idle buffers over all
 * sizes (a share of berthd's memory limit, bs_memory_limit; at most
 * POOL_CLASS_BYTES by default); beyond it buffers go back to malloc.  One
 * shared bound rather than one per size: a stream of 1 MiB writes to 16K
 * blocks frees buffers in bursts (a txg's blocks enter the block cache and
 * evict as many older ones) while the NBD readers take them steadily, and
 * a per-size slice of the bound was too small to carry the burst over
 * (page faults and malloc consolidation were ~12% of berthd's CPU).
 * Lists are LIFO, so the buffer handed out is the one freed last, still in
 * the CPU's cache.
 * A list's lock is innermost (pool_impl.h): it is taken under shard locks
 * and ds->lock, and nothing is locked while it is held. */
#define POOL_MIN_SHIFT 12
#define POOL_MAX_SHIFT 17
#if defined(__SANITIZE_ADDRESS__)
#define POOL_CLASS_BYTES 0ULL /* let ASan see every use after free */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_CLASS_BYTES 0ULL
#endif
#endif
#ifndef POOL_CLASS_BYTES
#define POOL_CLASS_BYTES (32ULL << 20)
#endif

struct buf_pool {
    pthread_mutex_t lock;
    /* a stack of pointers, not a list linked through the buffers: taking
     * 16 buffers reads two cache lines here instead of walking 16 headers
     * that the releasing thread last wrote on the other CPU (a chain of
     * dependent misses, ~3 % of berthd's CPU on 1 MiB writes) */
    struct cbuf **v;
    size_t n, cap;
};

static struct buf_pool g_pools[POOL_MAX_SHIFT - POOL_MIN_SHIFT + 1] = {
#define BP_INIT {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0}
    BP_INIT, BP_INIT, BP_INIT, BP_INIT, BP_INIT, BP_INIT,
#undef BP_INIT
};
/* idle bytes over all lists, reserved before a buffer is pushed */
static _Atomic uint64_t g_idle_bytes;
static _Atomic uint64_t g_idle_limit = POOL_CLASS_BYTES;

/* Magazines: each thread keeps up to MAG_CAP idle buffers per size in a
 * small array of its own and trades them MAG_CAP at a time with the shared
 * list (a thread that only gives buffers back, a sync worker, so holds few).  Buffers flow one way in a write stream (the NBD receiver
 * takes them, the sync workers give them back, on the other CPU), so a
 * shared list's lock and head bounced between the CPUs twice per 16K block
 * (cbuf_new ~3 % of berthd's CPU on 1 MiB writes, nearly all of it that
 * miss); now once per MAG_CAP blocks.  Buffers in magazines are idle
 * bytes like the shared lists' (g_idle_bytes counts them: the limit still
 * bounds all idle buffers).  Each thread's magazines have a lock of their
 * own, taken by the owner (uncontended: its cache line stays on the
 * owner's CPU) and by cbuf_pool_set_limit, which empties every thread's
 * magazines into the shared lists before it drops the excess; a thread's
 * magazines go back to the shared lists when it exits (pthread key
 * destructor).  Lock order: g_mags_lock, a thread's mags.lock, a list's
 * lock. */
#define MAG_CAP 16u
#define NCLASS (POOL_MAX_SHIFT - POOL_MIN_SHIFT + 1)
struct mag {
    unsigned n;
    struct cbuf *b[MAG_CAP];
};
struct mags {
    pthread_mutex_t lock;
    struct mags *next, **pprev; /* on g_mags */
    struct mag m[NCLASS];
};
static _Thread_local struct mags *t_mags;
static pthread_key_t g_mag_key;
static pthread_once_t g_mag_once = PTHREAD_ONCE_INIT;
static bool g_mag_key_ok;
static pthread_mutex_t g_mags_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mags *g_mags;

/* Push n buffers onto a shared list (one lock); those it has no room for
 * (no memory to grow it) are freed. */
static void pool_push(struct buf_pool *bp, struct cbuf *const *v, unsigned n)
{
    if (!n)
        return;
    unsigned i = 0;
    pthread_mutex_lock(&bp->lock);
    if (bp->n + n > bp->cap) {
        size_t cap = MAX(MAX(bp->cap * 2, bp->n + n), (size_t)64);
        struct cbuf **nv = realloc(bp->v, cap * sizeof *nv);
        if (nv) {
            bp->v = nv;
            bp->cap = cap;
        }
    }
    for (; i < n && bp->n < bp->cap; i++)
        bp->v[bp->n++] = v[i];
    pthread_mutex_unlock(&bp->lock);
    for (; i < n; i++) {
        atomic_fetch_sub_explicit(&g_idle_bytes, v[i]->size, memory_order_relaxed);
        free(v[i]);
    }
}

/* Everything in ms to the shared lists (ms->lock held). */
static void mags_empty(struct mags *ms)
{
    for (unsigned c = 0; c < NCLASS; c++) {
        pool_push(&g_pools[c], ms->m[c].b, ms->m[c].n);
        ms->m[c].n = 0;
    }
}

static void mags_exit(void *p)
{
    struct mags *ms = p;
    pthread_mutex_lock(&g_mags_lock);
    *ms->pprev = ms->next;
    if (ms->next)
        ms->next->pprev = ms->pprev;
    pthread_mutex_unlock(&g_mags_lock);
    mags_empty(ms); /* no one else can reach it now */
    pthread_mutex_destroy(&ms->lock);
    free(ms);
    t_mags = NULL;
}

static void mag_key_init(void)
{
    g_mag_key_ok = pthread_key_create(&g_mag_key, mags_exit) == 0;
}

/* This thread's magazines, locked; NULL if there are none (no memory). */
static struct mags *mags_lock(void)
{
    struct mags *ms = t_mags;
    if (!ms) {
        pthread_once(&g_mag_once, mag_key_init);
        ms = g_mag_key_ok ? calloc(1, sizeof *ms) : NULL;
        if (!ms)
            return NULL;
        if (pthread_mutex_init(&ms->lock, NULL) != 0 ||
            pthread_setspecific(g_mag_key, ms) != 0) {
            free(ms);
            return NULL;
        }
        pthread_mutex_lock(&g_mags_lock);
        ms->next = g_mags;
        if (g_mags)
            g_mags->pprev = &ms->next;
        ms->pprev = &g_mags;
        g_mags = ms;
        pthread_mutex_unlock(&g_mags_lock);
        t_mags = ms;
    }
    pthread_mutex_lock(&ms->lock);
    return ms;
}

void cbuf_pool_set_limit(uint64_t total)
{
    /* 0 in sanitizer builds: no idle buffers (POOL_CLASS_BYTES is 0) */
    if (POOL_CLASS_BYTES == 0)
        total = 0;
    atomic_store(&g_idle_limit, total);
    pthread_mutex_lock(&g_mags_lock);
    for (struct mags *ms = g_mags; ms; ms = ms->next) {
        pthread_mutex_lock(&ms->lock);
        mags_empty(ms);
        pthread_mutex_unlock(&ms->lock);
    }
    pthread_mutex_unlock(&g_mags_lock);
    /* a lower limit: drop what is over it now, not as buffers come back
     * (each freed outside the list's lock) */
    for (int s = POOL_MAX_SHIFT; s >= POOL_MIN_SHIFT; s--) {
        struct buf_pool *bp = &g_pools[s - POOL_MIN_SHIFT];
        for (;;) {
            struct cbuf *b = NULL;
            pthread_mutex_lock(&bp->lock);
            if (bp->n && atomic_load(&g_idle_bytes) > total) {
                b = bp->v[--bp->n];
                atomic_fetch_sub(&g_idle_bytes, (uint64_t)1 << s);
            }
            pthread_mutex_unlock(&bp->lock);
            if (!b)
                break;
            free(b);
        }
    }
}

void cbuf_pool_stats(uint64_t *idle_bytes, uint64_t *limit)
{
    *idle_bytes = atomic_load(&g_idle_bytes);
    *limit = atomic_load(&g_idle_limit);
}

static struct buf_pool *pool_of(uint32_t size)
{
    if (size < (1u << POOL_MIN_SHIFT) || size > (1u << POOL_MAX_SHIFT) || (size & (size - 1)))
        return NULL;
    return &g_pools[__builtin_ctz(size) - POOL_MIN_SHIFT];
}

struct cbuf *cbuf_new(uint32_t size)
{
    struct buf_pool *bp = pool_of(size);
    struct cbuf *b = NULL;
    if (bp && atomic_load_explicit(&g_idle_bytes, memory_order_relaxed)) {
        struct mags *ms = mags_lock();
        struct mag *m = ms ? &ms->m[bp - g_pools] : NULL;
        if (m && m->n) {
            b = m->b[--m->n];
        } else {
            /* refill (or, without a magazine, take one) under one lock */
            pthread_mutex_lock(&bp->lock);
            while (m && m->n < MAG_CAP && bp->n)
                m->b[m->n++] = bp->v[--bp->n];
            if (m && m->n)
                b = m->b[--m->n];
            else if (!m && bp->n)
                b = bp->v[--bp->n];
            pthread_mutex_unlock(&bp->lock);
        }
        if (ms)
            pthread_mutex_unlock(&ms->lock);
        if (b)
            atomic_fetch_sub_explicit(&g_idle_bytes, size, memory_order_relaxed);
    }
    if (!b) {
        size_t total = sizeof(struct cbuf) + (size_t)size;
        total = (total + 63) & ~(size_t)63; /* aligned_alloc wants a multiple */
        b = aligned_alloc(64, total);
        if (!b)
            return NULL;
    }
    atomic_init(&b->refs, 1);
    atomic_init(&b->memo_ok, 0);
    atomic_init(&b->adopted, 0);
    b->size = size;
    return b;
}

static void cbuf_release(struct cbuf *b)
{
    struct buf_pool *bp = pool_of(b->size);
    /* reserve the bytes first: concurrent releases cannot overshoot */
    if (bp && atomic_fetch_add_explicit(&g_idle_bytes, b->size, memory_order_relaxed) + b->size <=
                  atomic_load_explicit(&g_idle_limit, memory_order_relaxed)) {
        struct mags *ms = mags_lock();
        if (!ms) {
            pool_push(bp, &b, 1);
            return;
        }
        struct mag *m = &ms->m[bp - g_pools];
        if (m->n == MAG_CAP) {
            pool_push(bp, m->b, m->n);
            m->n = 0;
        }
        m->b[m->n++] = b;
        pthread_mutex_unlock(&ms->lock);
        return;
    }
    if (bp)
        atomic_fetch_sub_explicit(&g_idle_bytes, b->size, memory_order_relaxed);
    free(b);
}

struct cbuf *cbuf_ref(struct cbuf *b)
{
    if (b)
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void cbuf_unref(struct cbuf *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        cbuf_release(b);
}

/* ---- table ---- */

static uint64_t key_hash(uint32_t vdev, uint64_t off, uint64_t birth)
{
    /* splitmix64-style finaliser over the three fields */
    uint64_t h = off * 0x9e3779b97f4a7c15ULL ^ (birth + 0x632be59bd9b4e019ULL) ^
                 ((uint64_t)vdev << 48);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static struct shard *shard_of(struct bcache *c, uint64_t h)
{
    return &c->shards[(h >> 56) % c->nshards];
}

static struct centry **chain_of(struct shard *s, uint64_t h)
{
    return &s->buckets[h & (s->nbuckets - 1)];
}

static struct centry **find_slot(struct shard *s, uint64_t h, uint32_t vdev, uint64_t off,
                                 uint64_t birth)
{
    struct centry **pp = chain_of(s, h);
    while (*pp && !((*pp)->vdev == vdev && (*pp)->off == off && (*pp)->birth == birth))
        pp = &(*pp)->hnext;
    return pp;
}

static void lru_unlink(struct shard *s, struct centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_head(struct shard *s, struct centry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head)
        s->head->prev = e;
    s->head = e;
    if (!s->tail)
        s->tail = e;
}

/* Take e (found at *pp) out of the shard; the caller owns it then. */
static void entry_unlink(struct shard *s, struct centry **pp, struct centry *e)
{
    *pp = e->hnext;
    lru_unlink(s, e);
    s->bytes -= e->buf->size;
    s->entries--;
}

/* Remove e (found at *pp) from the shard and drop the cache's reference. */
static void entry_drop(struct shard *s, struct centry **pp, struct centry *e)
{
    entry_unlink(s, pp, e);
    cbuf_unref(e->buf);
    free(e);
}

/* Free entries taken out by shard_evict (linked through hnext), outside the
 * shard lock: the buffers go back to their free list or to malloc. */
static void entries_free(struct centry *e)
{
    while (e) {
        struct centry *next = e->hnext;
        cbuf_unref(e->buf);
        free(e);
        e = next;
    }
}

/* Evict until `need` more bytes fit under the limit; returns the evicted
 * entries for entries_free.  Runs before an insert, so that the entry being
 * inserted is not the one a pass over referenced entries leaves oldest. */
static struct centry *shard_evict(struct shard *s, uint64_t need)
{
    struct centry *gone = NULL;
    while (s->bytes + need > s->limit && s->tail) {
        struct centry *e = s->tail;
        if (e->referenced) {
            /* second chance: at most one pass over the list before every
             * entry has lost its bit, so the loop ends */
            e->referenced = false;
            lru_unlink(s, e);
            lru_push_head(s, e);
            continue;
        }
        struct centry **pp = find_slot(s, key_hash(e->vdev, e->off, e->birth), e->vdev, e->off,
                                       e->birth);
        entry_unlink(s, pp, e);
        e->hnext = gone;
        gone = e;
        s->evictions++;
    }
    return gone;
}

static void shard_grow(struct shard *s)
{
    size_t n = s->nbuckets * 2;
    struct centry **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct centry *e = s->buckets[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            size_t j = key_hash(e->vdev, e->off, e->birth) & (n - 1);
            e->hnext = nb[j];
            nb[j] = e;
        }
    }
    free(s->buckets);
    s->buckets = nb;
    s->nbuckets = n;
}

static unsigned shards_for(uint64_t limit)
{
    unsigned n = MAX_SHARDS;
    while (n > 1 && limit / n < MIN_SHARD_BYTES)
        n /= 2;
    return n;
}

struct bcache *bcache_new(uint64_t limit_bytes)
{
    struct bcache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->nshards = shards_for(limit_bytes);
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nbuckets = INITIAL_BUCKETS;
        s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
        if (!s->buckets) {
            c->nshards = i + 1;
            bcache_free(c);
            return NULL;
        }
        s->limit = limit_bytes / c->nshards;
    }
    return c;
}

void bcache_free(struct bcache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        struct centry *e = s->head, *next;
        for (; e; e = next) {
            next = e->next;
            cbuf_unref(e->buf);
            free(e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(c);
}

void bcache_set_limit(struct bcache *c, uint64_t limit_bytes)
{
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        s->limit = limit_bytes / c->nshards;
        struct centry *gone = shard_evict(s, 0);
        pthread_mutex_unlock(&s->lock);
        entries_free(gone);
    }
}

struct cbuf *bcache_get(struct bcache *c, uint32_t vdev, uint64_t off, uint64_t birth)
{
    uint64_t h = key_hash(vdev, off, birth);
    struct shard *s = shard_of(c, h);
    struct cbuf *b = NULL;
    pthread_mutex_lock(&s->lock);
    struct centry *e = *find_slot(s, h, vdev, off, birth);
    if (e) {
        if (!e->referenced)
            e->referenced = true;
        b = cbuf_ref(e->buf);
        s->hits++;
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->lock);
    return b;
}

static void put(struct bcache *c, uint32_t vdev, uint64_t off, uint64_t birth, struct cbuf *b,
                bool evict)
{
    uint64_t h = key_hash(vdev, off, birth);
    struct shard *s = shard_of(c, h);
    if (!b)
        return;
    pthread_mutex_lock(&s->lock);
    if (!evict && s->bytes + b->size > s->limit) { /* no room: no chain walk */
        pthread_mutex_unlock(&s->lock);
        return;
    }
    struct centry **pp = find_slot(s, h, vdev, off, birth);
    /* A present key keeps its entry: same key means same contents. */
    if (*pp || b->size > s->limit) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    /* A full cache (the steady state of a stream of writes: every block
     * written enters the cache) evicts about one entry per put: that entry
     * is reused, no calloc and free per block. */
    struct centry *gone = shard_evict(s, b->size);
    struct centry *e = gone;
    struct cbuf *drop = NULL;
    if (e) {
        gone = e->hnext;
        drop = e->buf;
        memset(e, 0, sizeof *e);
        pp = find_slot(s, h, vdev, off, birth); /* the chains changed */
    } else if (!(e = calloc(1, sizeof(*e)))) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    e->vdev = vdev;
    e->off = off;
    e->birth = birth;
    e->buf = cbuf_ref(b);
    *pp = e;
    lru_push_head(s, e);
    s->bytes += b->size;
    s->entries++;
    if (s->entries > s->nbuckets)
        shard_grow(s);
    pthread_mutex_unlock(&s->lock);
    cbuf_unref(drop);
    entries_free(gone);
}

void bcache_put(struct bcache *c, uint32_t vdev, uint64_t off, uint64_t birth, struct cbuf *b)
{
    put(c, vdev, off, birth, b, true);
}

void bcache_put_spare(struct bcache *c, uint32_t vdev, uint64_t off, uint64_t birth,
                      struct cbuf *b)
{
    put(c, vdev, off, birth, b, false);
}

void bcache_remove(struct bcache *c, uint32_t vdev, uint64_t off, uint64_t birth)
{
    uint64_t h = key_hash(vdev, off, birth);
    struct shard *s = shard_of(c, h);
    pthread_mutex_lock(&s->lock);
    struct centry **pp = find_slot(s, h, vdev, off, birth);
    if (*pp)
        entry_drop(s, pp, *pp);
    pthread_mutex_unlock(&s->lock);
}

void bcache_purge(struct bcache *c, uint32_t vdev)
{
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        for (struct centry *e = s->head, *next; e; e = next) {
            next = e->next;
            if (e->vdev != vdev)
                continue;
            /* wipe what nobody else holds now (a reader's copy-out in
             * progress keeps its reference and the bytes until it is done) */
            if (atomic_load(&e->buf->refs) == 1)
                explicit_bzero(e->buf->data, e->buf->size);
            struct centry **pp = find_slot(s, key_hash(e->vdev, e->off, e->birth), e->vdev,
                                           e->off, e->birth);
            entry_drop(s, pp, e);
        }
        pthread_mutex_unlock(&s->lock);
    }
}

void bcache_stats(struct bcache *c, struct bcache_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        st->bytes += s->bytes;
        st->limit += s->limit;
        st->entries += s->entries;
        st->hits += s->hits;
        st->misses += s->misses;
        st->evictions += s->evictions;
        pthread_mutex_unlock(&s->lock);
    }
}
