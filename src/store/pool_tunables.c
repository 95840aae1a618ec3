/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The engine-wide settings every pool shares: tunables (cache size, dirty
 * limit, txg timeout, sync threads), the memory budget that splits
 * berthd's one limit between them (bs_memory_limit), and the block cache
 * all pools share (pool_cache_get/put: created by the first pool, freed
 * with the last). */
#include <malloc.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/pool_impl.h"

/* ---- tunables and the shared cache ---- */

/* tun_dirty 0: the default, dirty_default() */
static _Atomic uint64_t tun_cache = 512ULL << 20, tun_dirty = 0;
static _Atomic unsigned tun_timeout = 5000, tun_threads = 0;
static _Atomic uint64_t mem_limit; /* bs_memory_limit's bytes; 0: none set */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bcache *g_cache;
static unsigned g_cache_users;
static uint32_t g_cache_next_id = 1;

/* Default dirty limit: RAM/16, at least 64 MiB and at most 1 GiB.  Big
 * txgs let random writes share the rewrite of their indirect blocks (with
 * 256 MiB, ~1000 L1 indirects of a 4 GiB volume were rewritten for every
 * 4-16k leaves); the limit bounds the memory the dirty buffers can take. */
static uint64_t dirty_default(void)
{
    static _Atomic uint64_t cached;
    uint64_t d = atomic_load_explicit(&cached, memory_order_relaxed);
    if (d)
        return d;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    d = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 16 : 256ULL << 20;
    d = MIN(MAX(d, 64ULL << 20), 1ULL << 30);
    atomic_store_explicit(&cached, d, memory_order_relaxed);
    return d;
}

void bs_tunables_get(struct bs_tunables *t)
{
    t->cache_bytes = atomic_load_explicit(&tun_cache, memory_order_relaxed);
    t->dirty_max_bytes = atomic_load_explicit(&tun_dirty, memory_order_relaxed);
    if (t->dirty_max_bytes == 0)
        t->dirty_max_bytes = dirty_default();
    t->txg_timeout_ms = atomic_load_explicit(&tun_timeout, memory_order_relaxed);
    t->sync_threads = atomic_load_explicit(&tun_threads, memory_order_relaxed);
    if (t->sync_threads == 0) {
        /* sysconf reads /sys: called on the write path, so ask once */
        static _Atomic unsigned ncpu;
        unsigned n = atomic_load_explicit(&ncpu, memory_order_relaxed);
        if (n == 0) {
            long c = sysconf(_SC_NPROCESSORS_ONLN);
            n = c > 0 ? (unsigned)MIN(c, 64) : 1;
            atomic_store_explicit(&ncpu, n, memory_order_relaxed);
        }
        t->sync_threads = n;
    }
}

uint64_t bs_memory_default(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    uint64_t ram = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 4ULL << 30;
    return MIN(MAX(ram / 4, 256ULL << 20), 4ULL << 30);
}

void bs_memory_limit(uint64_t bytes, uint64_t reserve)
{
    /* What the process needs besides the engine's buffers: code and
     * libraries, thread stacks, metadata (cache entries, dirty map entries,
     * allocator maps), and malloc's slack between the trims after each txg
     * (txg.c publish).  Measured (docs/PERFORMANCE.md): ~11 MiB for an idle
     * berthd with a pool, and peaks of up to 1/8 over the buffers' sum until
     * NBD payloads went straight into block buffers; since then a 4 GiB
     * limit peaked at 4187 MiB in bench/run.sh with 1/8 kept, so 1/6. */
    uint64_t overhead = bytes / 6 + (24ULL << 20);
    reserve += overhead;
    atomic_store(&mem_limit, bytes);
    /* glibc gives threads their own arenas (up to 8 per CPU), and memory
     * freed into one arena is only reused by the threads of that arena:
     * the NBD workers' buffers freed by the sync thread and the cache's
     * evictions piled up as free memory in each worker's arena (with a 128
     * MiB limit, 4 arenas of 45 MiB holding 5.5 MiB each).  One arena keeps
     * the freed memory reusable by everyone: with NBD payloads received
     * into block buffers (allocated by the connection's reader, freed by
     * the sync side) two arenas peaked at 517-552 MiB in bench/mem.sh
     * --cache-size 512M, one at 498-523; no CPU cost measured (4K random
     * write 43.9 vs 45.0 us per request, 1 MiB write 1.53 vs 1.54 s per
     * GiB): the allocations that matter go through the buffer free lists
     * (cache.c) and malloc's per-thread caches anyway. */
    mallopt(M_ARENA_MAX, 1);
    uint64_t avail = bytes > reserve ? bytes - reserve : 0;
    struct bs_tunables t;
    bs_tunables_get(&t);
    t.dirty_max_bytes = MAX(MIN(avail / 4, 1ULL << 30), 1ULL << 20);
    /* idle buffers carry the block buffers from the txg that frees them
     * (block cache evictions, or a stream's blocks, which the cache only
     * takes while it has room) to the writers that take them: 1/32 left
     * writers of 1 MiB streams faulting fresh malloc memory in (1.5-1.7 s
     * of CPU per GiB after random writes, 1.3-1.5 with 1/16); at least half
     * of dirty_max, so that a whole txg's buffers (up to 3/8 of it, txg.c
     * SYNC_OPEN_EIGHTHS) come back to the list, not to malloc (its
     * consolidation was ~3 % of a 1 MiB stream's CPU) */
    uint64_t idle = MAX(avail / 16, t.dirty_max_bytes / 2);
    uint64_t used = t.dirty_max_bytes + idle;
    uint64_t rest = avail > used ? avail - used : 0; /* a tiny limit: minimal budgets */
    t.cache_bytes = MAX(rest, 1ULL << 20);
    bs_tunables_set(&t);
    cbuf_pool_set_limit(idle);
}

uint64_t pool_memory_limit(void)
{
    return atomic_load_explicit(&mem_limit, memory_order_relaxed);
}

void bs_tunables_set(const struct bs_tunables *t)
{
    if (t->cache_bytes)
        atomic_store(&tun_cache, t->cache_bytes);
    if (t->dirty_max_bytes)
        atomic_store(&tun_dirty, MAX(t->dirty_max_bytes, 1ULL << 20));
    if (t->txg_timeout_ms)
        atomic_store(&tun_timeout, t->txg_timeout_ms);
    atomic_store(&tun_threads, MIN(t->sync_threads, 64u));
    pthread_mutex_lock(&g_lock);
    if (g_cache && t->cache_bytes)
        bcache_set_limit(g_cache, t->cache_bytes);
    pthread_mutex_unlock(&g_lock);
}

struct bcache *pool_cache_get(uint32_t *id)
{
    pthread_mutex_lock(&g_lock);
    if (!g_cache)
        g_cache = bcache_new(atomic_load(&tun_cache));
    struct bcache *c = g_cache;
    if (c) {
        g_cache_users++;
        *id = g_cache_next_id++;
    }
    pthread_mutex_unlock(&g_lock);
    return c;
}

void pool_cache_put(struct bcache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g_lock);
    if (--g_cache_users == 0) {
        bcache_free(g_cache);
        g_cache = NULL;
    }
    pthread_mutex_unlock(&g_lock);
}
