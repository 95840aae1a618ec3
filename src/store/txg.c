/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Transaction groups: the sync thread of a pool.
 *
 * State machine of txg T (docs/FORMAT.md section 8):
 *
 *   open(T) ──quiesce──► syncing(T) ──write, flush, uberblock, flush──► durable(T)
 *                                        │ any error
 *                                        ▼
 *                                   pool FAULTED (T never committed)
 *
 * - open: writers put data into each volume's open dirty map; admin calls
 *   change records under pool->lock and mark the open txg dirty.
 * - quiesce (under pool->lock, then each ds->lock): the open maps become the
 *   syncing maps, T+1 opens, the dataset records are snapshotted.  Writers
 *   continue at once into T+1.
 * - sync: leaves are compressed/checksummed/allocated/written by the worker
 *   pool in parallel; then each tree is rewritten bottom-up (objtree_sync),
 *   destroyed volumes are freed, the MOS is rewritten, alloc_sync writes the
 *   bitmap chunks of T.
 * - commit: vdev_flush; the labels, if a member of a mirror or raidz newly
 *   missed T (dtl_note_missed); uberblock T in all four labels; vdev_flush.
 *   Only now is T durable.
 * - publish: each ds->od = its new tree and the syncing map is dropped (under
 *   ds->lock, so a reader sees either map+old tree or new tree); destroyed
 *   datasets leave the list; alloc_txg_done(T) releases old deferred frees;
 *   waiters wake.
 *
 * Invariants:
 *  - one txg syncs at a time (the sync thread, under sync_mutex), so the
 *    allocator's committed map equals the last committed trees between syncs;
 *  - committed_txg only advances after the second flush;
 *  - on a sync error nothing is published: the old trees and the syncing maps
 *    stay (reads still return acknowledged data), the pool is faulted, new
 *    writes and flushes fail with -EIO, and re-import finds txg T-1 intact;
 *  - dirty_bytes counts open + syncing buffers; writers wait while it exceeds
 *    dirty_max; the sync thread starts early once the open txg alone holds
 *    SYNC_OPEN_EIGHTHS/8 of dirty_max (see "Triggers").
 *
 * The write throttle (ZFS's dirty-data delay curve, dmu_tx_delay): past
 * DELAY_MIN_PCT of dirty_max a writer of len bytes is delayed by
 *     len / sync_rate * (dirty - min) / (dirty_max - dirty)
 * (at most DELAY_MAX_NS), the delays of all writers queued one after the
 * other (each wakes DELAY after the previous one).  Halfway between min and
 * dirty_max writers get in at the rate the last txg's sync retired dirty
 * data, slower above, so dirty data settles below dirty_max instead of
 * hitting it and stopping every writer until a whole txg is synced.
 *
 * Triggers: txg_timeout_ms since the first change of the open txg, the open
 * txg's dirty bytes past SYNC_OPEN_EIGHTHS/8 of dirty_max (kicked), or a
 * waiter for the open txg (flush, admin).  The open txg's own bytes, not
 * open + syncing: counting the syncing txg too kicked the next sync while
 * the current one still ran, so under a steady stream each txg held only
 * what arrived during the previous sync (4-12k leaves of 16K in 4K random
 * writes), and every txg rewrites the indirect blocks above its leaves: the
 * ~1000 level-1 indirects of a 4 GiB volume whatever the txg's size, one
 * per 4-12 leaves.  A txg of 3/8 of dirty_max (~19k leaves with the 4 GiB
 * memory limit) shares them among more leaves; the memory bound stays
 * dirty_max (writers wait there), and the throttle (above) still starts at
 * DELAY_MIN_PCT of open + syncing.
 *
 * The trim thread: after each commit the sync thread asks it for a pass
 * (trim_req); it discards the free ranges whose lazy-trim delay has passed
 * (alloc.c top), concurrently with the next txgs' allocations.  When no txg
 * committed data or frees and nothing was read for TRIM_IDLE_NS (an idle pool:
 * nothing allocates that could reuse them, and no reader waits on the file
 * locks a hole punch takes) it discards all queued ranges; reads postpone
 * that at most until TRIM_READ_MAX_NS after the last such txg.  It
 * only touches free, released space, so it needs no ordering with the sync;
 * an idle pool commits no empty txgs for it. */
#include "store/txg.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/dsauth.h"
#include "store/pool_impl.h"
#include "store/resilver.h"
#include "store/sync_impl.h"
#include "store/workpool.h"

/* The write throttle's delay curve (top of file); a txg that retired less
 * dirty data than SYNC_RATE_MIN_BYTES does not set its pace. */
#define DELAY_MIN_PCT 60u
#define DELAY_MAX_NS (100ULL * 1000000u)
#define SYNC_RATE_MIN_BYTES (16ULL << 20)
/* the open txg's dirty bytes that start a sync early, in eighths of
 * dirty_max (top of file, "Triggers") */
#define SYNC_OPEN_EIGHTHS 3u

/* ---- one txg ---- */

/* The leaves of a txg are written through the page cache; the commit's first
 * flush must wait until all of them reached the device.  Starting the
 * writeback every WB_HINT_BYTES while the txg is still being written lets the
 * device work in parallel with the compression and the tree rewrite, so the
 * flush finds little left (a hint only: durability still comes from the
 * flush alone). */
#define WB_HINT_BYTES (16ULL << 20)

/* Job i writes leaves [i * per, (i + 1) * per) of the txg, consecutive ones
 * of one volume together (blk_write_batch: one allocation and one pwritev
 * per batch instead of one per 16K block). */
static void leaf_job(void *ctx, size_t i, struct blk_scratch *s)
{
    struct sync_ctx *c = ctx;
    size_t j = i * c->per, end = MIN(j + c->per, c->njobs);
    while (j < end) {
        if (atomic_load(&c->err))
            return;
        size_t svi = c->jobs[j].sv;
        struct sync_vol *sv = &c->sv[svi];
        struct blk_wprops wp = {
            .type = BP_TYPE_VOL_DATA, .level = 0, .comp = sv->rec.comp,
            .comp_level = sv->rec.comp_level, .cksum = sv->rec.cksum, .zero_is_hole = true,
            .hist = &sv->ds->comp_hist,
        };
        /* encrypted volumes too: blk_write_batch seals each block with its
         * own IV and AAD; a raw-received block is stored as it came */
        struct blk_crypt bc;
        wp.crypt = ds_blk_crypt(sv->ds, 0, &bc);
        struct blk_wreq rq[BLK_BATCH_MAX];
        size_t n = 0;
        for (; j < end && n < BLK_BATCH_MAX && c->jobs[j].sv == svi; j++, n++) {
            size_t k = c->jobs[j].k;
            rq[n].cb = sv->ents[k]->buf;
            rq[n].lsize = sv->rec.volblocksize;
            rq[n].bp = &sv->u[k].bp;
            rq[n].blkid = sv->u[k].blkid;
            rq[n].sealed = sv->ents[k]->sealed;
        }
        uint64_t a = 0;
        int r = blk_write_batch(&c->p->io, rq, n, &wp, c->txg, s, &a);
        if (r < 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&c->err, &zero, r);
            return;
        }
        uint64_t before = atomic_fetch_add_explicit(&c->wb_bytes, a, memory_order_relaxed);
        if ((before + a) / WB_HINT_BYTES != before / WB_HINT_BYTES)
            pool_tops_writeback_hint(c->p);
    }
}

struct sync_vol *sync_find(struct sync_ctx *c, const struct ds *d)
{
    for (size_t i = 0; i < c->nsv; i++)
        if (c->sv[i].ds == d)
            return &c->sv[i];
    return NULL;
}

int sync_add(struct sync_ctx *c, struct ds *d, size_t *idx)
{
    if (c->nsv == c->sv_cap) {
        size_t cap = c->sv_cap * 2;
        struct sync_vol *n = realloc(c->sv, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        memset(n + c->sv_cap, 0, (cap - c->sv_cap) * sizeof *n);
        c->sv = n;
        c->sv_cap = cap;
    }
    struct sync_vol *sv = &c->sv[c->nsv];
    ds_ref(d);
    sv->ds = d;
    sv->txg = c->txg;
    sv->rec = d->rec;
    sv->od = d->od;
    sv->created = true;
    *idx = c->nsv++;
    return 0;
}

/* Quiesce: snapshot the records and swap the maps (see the top comment). */
static int quiesce(struct sync_ctx *c)
{
    struct bs_pool *p = c->p;
    pthread_mutex_lock(&p->lock);
    size_t n = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        n++;
    c->sv_cap = n + 16;
    c->sv = calloc(c->sv_cap, sizeof *c->sv);
    if (!c->sv) {
        pthread_mutex_unlock(&p->lock);
        return -ENOMEM;
    }
    p->mos_dirty = false;
    c->tasks = p->tasks; /* the snapshot work queued for this txg */
    p->tasks = NULL;
    pthread_mutex_lock(&p->txg.lock);
    p->txg.open_txg = c->txg + 1;
    atomic_store(&p->txg.open_dirty, false);
    pthread_mutex_unlock(&p->txg.lock);
    uint64_t syncing = 0;
    for (struct ds *d = p->ds_list; d; d = d->next) {
        struct sync_vol *sv = &c->sv[c->nsv++];
        ds_ref(d);
        sv->ds = d;
        sv->txg = c->txg;
        sv->rec = d->rec;
        sv->destroying = d->destroying;
        struct ds *prev = d->rec.lin.prev_id ? ds_by_id(p, d->rec.lin.prev_id) : NULL;
        sv->pp_txg = prev ? prev->rec.lin.prev_txg : 0;
        pthread_mutex_lock(&d->lock);
        /* the syncing map is empty here: the previous txg published it */
        struct dmap tmp = d->syncing;
        d->syncing = d->open;
        d->open = tmp;
        d->open_txg = c->txg + 1;
        d->gen++;
        syncing += d->syncing.bytes;
        pthread_mutex_unlock(&d->lock);
    }
    atomic_store(&p->txg.syncing_bytes, syncing);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* Collect and sort the leaves of each volume; queue the data blocks. */
static int gather(struct sync_ctx *c)
{
    size_t total = 0;
    for (size_t i = 0; i < c->nsv; i++)
        total += c->sv[i].ds->syncing.count;
    c->jobs = calloc(total ? total : 1, sizeof *c->jobs);
    if (!c->jobs)
        return -ENOMEM;
    for (size_t i = 0; i < c->nsv; i++) {
        struct sync_vol *sv = &c->sv[i];
        struct dmap *m = &sv->ds->syncing;
        sv->od = sv->ds->od;
        if (sv->destroying || m->count == 0)
            continue;
        sv->ents = malloc(m->count * sizeof *sv->ents);
        sv->u = calloc(m->count, sizeof *sv->u);
        if (!sv->ents || !sv->u)
            return -ENOMEM;
        uint64_t nblocks = sv->rec.volsize / sv->rec.volblocksize;
        /* beyond nblocks: a shrink raced this write, drop it */
        sv->n = dmap_sorted(m, nblocks, sv->ents);
        for (size_t k = 0; k < sv->n; k++) {
            sv->u[k].blkid = sv->ents[k]->blkid;
            if (sv->ents[k]->buf) {
                c->jobs[c->njobs].sv = i;
                c->jobs[c->njobs].k = k;
                c->njobs++;
            } else {
                bp_make_hole(&sv->u[k].bp, c->txg, 0, BP_TYPE_VOL_DATA);
            }
        }
    }
    return 0;
}

static int write_mos(struct sync_ctx *c, struct objdesc *mos_od, uint8_t **mbytes, size_t *mlen)
{
    struct bs_pool *p = c->p;
    struct mos_dir d = {0};
    d.ds = calloc(c->nsv ? c->nsv : 1, sizeof *d.ds);
    if (!d.ds)
        return -ENOMEM;
    pthread_mutex_lock(&p->lock);
    d.next_id = p->next_id;
    d.autotrim = p->autotrim;
    d.comp = p->comp;
    d.comp_level = p->comp_level;
    d.cksum = p->cksum;
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < c->nsv; i++) {
        if (c->sv[i].destroying)
            continue;
        d.ds[d.nds] = c->sv[i].rec;
        d.ds[d.nds].od = c->sv[i].od;
        d.nds++;
    }
    int r = vkeys_to_dir(p, &d);
    if (r == 0)
        r = mos_encode(&d, mbytes, mlen);
    mos_dir_free(&d);
    if (r < 0)
        return r;
    if (p->mos_bytes && *mlen == p->mos_len && memcmp(*mbytes, p->mos_bytes, *mlen) == 0)
        return 0;
    struct objtree_wctx w = {
        .io = &p->io, .txg = c->txg, .cksum = p->cksum, .dtype = BP_TYPE_MOS_DATA,
        .s = &p->txg.scratch,
    };
    return mos_write(&w, mos_od, p->mos_bytes, p->mos_len, *mbytes, *mlen);
}

/* The txg's dirty buffers (and the cache entries they pushed out) went back
 * to malloc, which keeps freed memory in its per-thread arenas: with a full
 * cache that slack (1.2 GB measured with a 4 GiB limit, 170 MiB with 128
 * MiB) pushed berthd's resident memory past its limit.  So after a txg that
 * dropped data, if the process's resident memory is within 1/16 (at least
 * 16 MiB) of its limit (bs_memory_limit), the free pages go back to the
 * kernel.  Only then (with a 4 GiB limit berthd stays below that): the
 * next txg's buffers fault the trimmed pages in again, which costs ~15 % of
 * a sequential write's CPU if done after every txg. */
static void trim_slack(uint64_t dropped)
{
    uint64_t limit = pool_memory_limit();
    if (!limit || !dropped)
        return;
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size = 0, resident = 0;
    int n = f ? fscanf(f, "%llu %llu", &size, &resident) : 0;
    if (f)
        fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    uint64_t margin = MAX(limit / 16, 16ULL << 20);
    if (n == 2 && page > 0 && resident * (uint64_t)page + margin > limit)
        malloc_trim(0);
}

/* Returns the dirty bytes the txg retired. */
static uint64_t publish(struct sync_ctx *c, struct objdesc *mos_od, uint8_t *mbytes, size_t mlen)
{
    struct bs_pool *p = c->p;
    uint64_t dropped = 0;
    for (size_t i = 0; i < c->nsv; i++) {
        struct sync_vol *sv = &c->sv[i];
        struct ds *d = sv->ds;
        /* the tree and its root MAC change together (dsauth.c reads both
         * under the same two locks, in this order) */
        pthread_mutex_lock(&p->lock);
        d->rec.lin = sv->rec.lin;
        if (sv->mac_new)
            memcpy(d->rec.root_mac, sv->rec.root_mac, sizeof d->rec.root_mac);
        pthread_mutex_lock(&d->lock);
        d->od = sv->od;
        struct dmap old = d->syncing;
        memset(&d->syncing, 0, sizeof d->syncing);
        d->gen++;
        pthread_mutex_unlock(&d->lock);
        pthread_mutex_unlock(&p->lock);
        dropped += old.bytes;
        dmap_clear(&old);
        free(old.tab);
        if (sv->destroying) {
            pthread_mutex_lock(&p->lock);
            for (struct ds **pp = &p->ds_list; *pp; pp = &(*pp)->next) {
                if (*pp == d) {
                    *pp = d->next;
                    ds_unref(d);
                    break;
                }
            }
            pthread_mutex_unlock(&p->lock);
        }
    }
    free(p->mos_bytes);
    p->mos_bytes = mbytes;
    p->mos_len = mlen;
    p->mos_od = *mos_od;
    atomic_fetch_sub(&p->txg.dirty_bytes, dropped);
    atomic_store(&p->txg.syncing_bytes, 0);
    trim_slack(dropped);
    return dropped;
}

static int sync_txg(struct bs_pool *p, uint64_t txg)
{
    struct sync_ctx c = { .p = p, .txg = txg };
    struct objdesc mos_od = p->mos_od;
    uint8_t *mbytes = NULL;
    size_t mlen = 0;
    uint64_t T0 = now_ns(), T1 = 0, T2 = 0, T3 = 0, T4 = 0, T5 = 0;
    int r = quiesce(&c);
    if (r == 0)
        r = gather(&c);
    T1 = now_ns();
    if (r == 0 && c.njobs) {
        /* batches of up to BLK_BATCH_MAX leaves, but at least two per thread
         * so that the threads finish together */
        size_t threads = wp_nthreads(p->txg.workers) + 1;
        c.per = MAX((size_t)1, MIN((size_t)BLK_BATCH_MAX, c.njobs / (2 * threads)));
        wp_run(p->txg.workers, leaf_job, &c, (c.njobs + c.per - 1) / c.per, &p->txg.scratch);
    }
    T2 = now_ns();
    if (r == 0)
        r = atomic_load(&c.err);
    if (r == 0 && c.njobs)
        pool_tops_writeback_hint(p); /* the tail, while the trees are rewritten */
    struct objtree_stats tst = {0};
    for (size_t i = 0; r == 0 && i < c.nsv; i++) {
        struct sync_vol *sv = &c.sv[i];
        struct objtree_wctx w = {
            .io = &p->io, .txg = txg, .cksum = sv->rec.cksum, .dtype = BP_TYPE_VOL_DATA,
            .s = &p->txg.scratch, .auth = sv->rec.key_id != 0, .stats = &tst,
        };
        uint64_t nblocks = sv->rec.volsize / sv->rec.volblocksize;
        if (sv->destroying) {
            /* blocks born up to prev_txg belong to the snapshot before it */
            w.keep_birth = sv->rec.lin.prev_txg;
            r = objtree_free_all(&w, &sv->od);
            if (r == 0)
                r = dl_free_object(&c, &sv->rec.lin);
        } else if (!ds_is_snap(sv->ds) && (sv->n || nblocks != sv->od.nblocks)) {
            uint64_t before = sv->od.allocated;
            w.kill = snap_kill;
            w.kctx = sv;
            r = objtree_sync(&w, &sv->od, sv->u, sv->n, nblocks);
            /* born: blocks written minus blocks freed (deadlisted ones stay
             * allocated, owned by the snapshot) */
            sv->rec.lin.born += sv->od.allocated - before + sv->dl_added;
            /* the root MAC of the tree this txg commits (dsauth.h); without
             * the key only a raw receive changes a tree, and its MAC comes
             * with the stream */
            const struct crypt_key *k = r == 0 ? ds_sync_key(p, sv->ds) : NULL;
            if (k && (r = ds_root_mac_compute(sv->ds->key->rec.guid, k, &sv->od,
                                           sv->rec.root_mac)) == 0)
                sv->mac_new = true;
        }
    }
    if (r == 0)
        r = snap_run_tasks(&c);
    if (r == 0)
        r = dl_sync_all(&c);
    T3 = now_ns();
    if (r == 0)
        r = write_mos(&c, &mos_od, &mbytes, &mlen);
    if (r == 0)
        r = pool_tops_sync_maps(p, txg);
    T4 = now_ns();
    if (r == 0)
        r = pool_tops_flush(p);
    if (r == 0)
        r = dtl_note_missed(p, txg); /* who missed T: durable before T is */
    if (r == 0) {
        struct uberblock ub = {
            .version = BERTH_FORMAT_VERSION, .txg = txg, .pool_guid = p->guid,
            .guid_sum = p->guid_sum, .timestamp = (uint64_t)time(NULL),
            .mos_root = mos_od.root, .mos_levels = mos_od.levels, .mos_dblksz = MOS_BLKSZ,
            .mos_size = mlen,
        };
        r = pool_tops_write_ub(p, &ub); /* map digest and tree too: to every top */
    }
    if (r == 0)
        r = pool_tops_flush(p);
    T5 = now_ns();
    /* busy: it wrote data, or it freed space (still deferred: e.g. a
     * snapshot destroy, which writes only metadata), so that reads hold
     * off the idle trim of what it freed too (trim_idle_at) */
    if (r == 0 && (c.njobs || pool_tops_deferred_pending(p)))
        atomic_store(&p->txg.busy_ns, T5);

    if (r == 0) {
        uint64_t dropped = publish(&c, &mos_od, mbytes, mlen);
        mbytes = NULL;
        /* the throttle's pace: a small txg says little about the rate */
        uint64_t dt = now_ns() - T0;
        if (dropped >= SYNC_RATE_MIN_BYTES && dt)
            atomic_store(&p->txg.sync_rate, (uint64_t)((double)dropped * 1e9 / (double)dt));
        pool_tops_txg_done(p, txg); /* and the free-space estimate */
    }
    blog_debug("pool %s txg %llu: %zu leaves (%llu KiB written); %llu indirects (%llu KiB, "
               "%llu KiB written); quiesce %.1f ms, leaves %.1f ms, trees %.1f ms, "
               "mos+bitmap %.1f ms, commit %.1f ms, publish %.1f ms", p->name,
               (unsigned long long)txg, c.njobs, (unsigned long long)(atomic_load(&c.wb_bytes) >> 10),
               (unsigned long long)tst.ind_written, (unsigned long long)(tst.ind_lbytes >> 10),
               (unsigned long long)(tst.ind_abytes >> 10), (T1 - T0) / 1e6, (T2 - T1) / 1e6,
               (T3 - T2) / 1e6, (T4 - T3) / 1e6, T5 ? (T5 - T4) / 1e6 : 0.0,
               T5 ? (now_ns() - T5) / 1e6 : 0.0);
    free(mbytes);
    snap_tasks_done(&c, r);
    for (size_t i = 0; i < c.nsv; i++) {
        free(c.sv[i].u);
        free(c.sv[i].ents);
        free(c.sv[i].dlp);
        ds_unref(c.sv[i].ds);
    }
    free(c.sv);
    free(c.jobs);
    return r;
}

/* ---- the trim thread ---- */

/* A pool that committed no data for this long is idle: nothing allocates
 * that could reuse the queued free ranges, so all of them are discarded at
 * once.  Longer than the pause between two bursts of writes (a benchmark's
 * workloads, a guest's fsync-separated batches), short enough that space
 * goes back to the host soon after a guest's discard. */
#define TRIM_IDLE_NS (5ULL * 1000000000u)
/* Reads keep a pool from counting as idle: punching thousands of scattered
 * runs takes the pool file's invalidate lock and splits its large page-cache
 * folios under the readers (a 1 MiB read stream right after a 1 MiB write
 * stream that had reused warm pieces cost 0.75-1.47 s of CPU per GiB with
 * the punches, 0.38-0.55 without: docs/PERFORMANCE.md, eighth round).  But
 * a pool that is only read still gives its freed space back, this long
 * after its last data txg. */
#define TRIM_READ_MAX_NS (60ULL * 1000000000u)

void txg_note_read(struct bs_pool *p)
{
    if (!atomic_load_explicit(&p->txg.read_flag, memory_order_relaxed))
        atomic_store_explicit(&p->txg.read_flag, true, memory_order_relaxed);
}

/* When the pool counts as idle (the trim thread's own view; reads seen only
 * when it looks, so a read counts from then on: conservative). */
static uint64_t trim_idle_at(struct txg *tx, uint64_t now)
{
    if (atomic_exchange_explicit(&tx->read_flag, false, memory_order_relaxed))
        tx->read_ns = now;
    uint64_t busy = atomic_load(&tx->busy_ns);
    return MIN(MAX(busy, tx->read_ns) + TRIM_IDLE_NS, busy + TRIM_READ_MAX_NS);
}

static void trim_kick(struct txg *tx)
{
    pthread_mutex_lock(&tx->trim_lock);
    tx->trim_req++;
    pthread_cond_signal(&tx->trim_cv);
    pthread_mutex_unlock(&tx->trim_lock);
}

/* Stop a pass at shutdown; stop an idle pass as soon as writes come in
 * (what it did not punch stays warm for them). */
static bool trim_should_stop(void *arg)
{
    struct txg *tx = arg;
    return atomic_load(&tx->trim_stop) || (tx->trim_idle_pass && atomic_load(&tx->dirty_bytes));
}

static void *trim_main(void *arg)
{
    struct bs_pool *p = arg;
    struct txg *tx = &p->txg;
    bool waited = false;
    pthread_mutex_lock(&tx->trim_lock);
    while (!atomic_load(&tx->trim_stop)) {
        uint64_t now = now_ns(), idle_at = trim_idle_at(tx, now);
        bool all = now >= idle_at && atomic_load(&tx->dirty_bytes) == 0;
        /* a pass when kicked (a commit), or when the pool went idle, then
         * every TRIM_IDLE_NS while it stays idle (cheap when nothing is
         * queued; an idle pool's commits kick passes that take everything) */
        if (tx->trim_done == tx->trim_req && !(all && waited)) {
            uint64_t wake = all ? now + TRIM_IDLE_NS : idle_at + 1000000u;
            struct timespec ts = {(time_t)(wake / 1000000000u), (long)(wake % 1000000000u)};
            pthread_cond_timedwait(&tx->trim_cv, &tx->trim_lock, &ts);
            waited = true;
            continue;
        }
        waited = false;
        uint64_t g = tx->trim_req;
        pthread_mutex_unlock(&tx->trim_lock);
        uint64_t t0 = now_ns();
        tx->trim_idle_pass = all;
        uint64_t bytes = pool_tops_trim_ripe(p, all, trim_should_stop, tx);
        if (bytes)
            blog_debug("pool %s: autotrim discarded %llu KiB in %.1f ms", p->name,
                       (unsigned long long)(bytes >> 10), (now_ns() - t0) / 1e6);
        pthread_mutex_lock(&tx->trim_lock);
        tx->trim_done = g;
    }
    pthread_mutex_unlock(&tx->trim_lock);
    return NULL;
}

/* ---- the sync thread ---- */

static void mark_dirty_locked(struct txg *tx);

static void *sync_main(void *arg)
{
    struct bs_pool *p = arg;
    struct txg *tx = &p->txg;
    pthread_mutex_lock(&tx->lock);
    while (!tx->shutdown) {
        struct bs_tunables tun;
        bs_tunables_get(&tun);
        uint64_t now = now_ns();
        bool dirty = atomic_load(&tx->open_dirty);
        uint64_t deadline = tx->dirty_since_ns + (uint64_t)tun.txg_timeout_ms * 1000000u;
        bool go = !tx->fault && dirty &&
                  (tx->want_txg >= tx->open_txg || atomic_load(&tx->kicked) || now >= deadline);
        if (!go) {
            /* idle: txg_mark_dirty wakes us when the open txg gets a change */
            uint64_t wake = (dirty && !tx->fault) ? deadline : now + 10000000000ull;
            struct timespec ts;
            ts.tv_sec = (time_t)(wake / 1000000000u);
            ts.tv_nsec = (long)(wake % 1000000000u);
            /* now_ns is CLOCK_MONOTONIC; the condvar uses it too (txg_init) */
            pthread_cond_timedwait(&tx->cv_kick, &tx->lock, &ts);
            continue;
        }
        atomic_store(&tx->kicked, false);
        uint64_t t = tx->open_txg;
        pthread_mutex_unlock(&tx->lock);
        pthread_mutex_lock(&tx->sync_mutex);
        int r = sync_txg(p, t);
        pthread_mutex_unlock(&tx->sync_mutex);
        pthread_mutex_lock(&tx->lock);
        tx->last_sync_ns = now_ns();
        if (r < 0) {
            tx->fault = r;
            blog_err("pool %s: sync of txg %llu failed (%s); pool faulted, last durable txg %llu",
                     p->name, (unsigned long long)t, strerror(-r),
                     (unsigned long long)tx->committed_txg);
        } else {
            tx->committed_txg = t;
            /* Deferred frees only become reusable (and are only punched) as
             * later txgs commit: keep committing, even empty txgs, until
             * they drain, or an idle pool would hold freed space forever. */
            if (pool_tops_deferred_pending(p))
                mark_dirty_locked(tx);
            trim_kick(tx);
        }
        pthread_cond_broadcast(&tx->cv_done);
    }
    pthread_mutex_unlock(&tx->lock);
    return NULL;
}

int txg_init(struct bs_pool *p, uint64_t committed)
{
    struct txg *tx = &p->txg;
    pthread_mutex_init(&tx->lock, NULL);
    pthread_mutex_init(&tx->sync_mutex, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tx->cv_kick, &ca);
    pthread_cond_init(&tx->cv_done, NULL);
    pthread_mutex_init(&tx->trim_lock, NULL);
    pthread_cond_init(&tx->trim_cv, &ca); /* timed waits on CLOCK_MONOTONIC too */
    pthread_condattr_destroy(&ca);
    tx->committed_txg = committed;
    tx->open_txg = committed + 1;
    tx->last_sync_ns = now_ns();
    return blk_scratch_init(&tx->scratch, 128u << 10, p->io.ashift);
}

static void trim_stop(struct txg *tx)
{
    if (!tx->trim_started)
        return;
    pthread_mutex_lock(&tx->trim_lock);
    atomic_store(&tx->trim_stop, true);
    pthread_cond_broadcast(&tx->trim_cv);
    pthread_mutex_unlock(&tx->trim_lock);
    pthread_join(tx->trim_thread, NULL);
    tx->trim_started = false;
}

int txg_start(struct bs_pool *p)
{
    struct txg *tx = &p->txg;
    struct bs_tunables tun;
    bs_tunables_get(&tun);
    unsigned helpers = tun.sync_threads > 1 ? tun.sync_threads - 1 : 0;
    int r = wp_new(helpers, p->io.ashift, &tx->workers);
    if (r < 0)
        return r;
    if (pthread_create(&tx->trim_thread, NULL, trim_main, p) != 0) {
        wp_free(tx->workers);
        tx->workers = NULL;
        return -EAGAIN;
    }
    tx->trim_started = true;
    pthread_setname_np(tx->trim_thread, "txg-trim");
    if (pthread_create(&tx->thread, NULL, sync_main, p) != 0) {
        trim_stop(tx);
        wp_free(tx->workers);
        tx->workers = NULL;
        return -EAGAIN;
    }
    tx->started = true;
    pthread_setname_np(tx->thread, "txg-sync");
    return 0;
}

void txg_fini(struct bs_pool *p)
{
    struct txg *tx = &p->txg;
    bool was_started = tx->started;
    if (tx->started) {
        pthread_mutex_lock(&tx->lock);
        tx->shutdown = true;
        pthread_cond_broadcast(&tx->cv_kick);
        pthread_cond_broadcast(&tx->cv_done);
        pthread_mutex_unlock(&tx->lock);
        pthread_join(tx->thread, NULL);
        tx->started = false;
    }
    trim_stop(tx); /* after the sync thread: nothing kicks it any more */
    /* the queue is not persistent: what is still queued goes back to the
     * host now, or it would stay allocated until `berth pool trim` */
    if (was_started && !p->readonly && !tx->fault)
        (void)pool_tops_trim_ripe(p, true, NULL, NULL);
    wp_free(tx->workers);
    tx->workers = NULL;
    blk_scratch_free(&tx->scratch);
    pthread_cond_destroy(&tx->cv_kick);
    pthread_cond_destroy(&tx->cv_done);
    pthread_mutex_destroy(&tx->lock);
    pthread_mutex_destroy(&tx->sync_mutex);
    pthread_cond_destroy(&tx->trim_cv);
    pthread_mutex_destroy(&tx->trim_lock);
}

int txg_wait(struct bs_pool *p, uint64_t t)
{
    struct txg *tx = &p->txg;
    pthread_mutex_lock(&tx->lock);
    while (tx->committed_txg < t && !tx->fault && !tx->shutdown) {
        if (tx->want_txg < t)
            tx->want_txg = t;
        pthread_cond_signal(&tx->cv_kick);
        pthread_cond_wait(&tx->cv_done, &tx->lock);
    }
    int r = tx->committed_txg >= t ? 0 : tx->fault ? -EIO : -ESHUTDOWN;
    pthread_mutex_unlock(&tx->lock);
    return r;
}

int txg_sync_all(struct bs_pool *p)
{
    struct txg *tx = &p->txg;
    pthread_mutex_lock(&tx->lock);
    uint64_t t = atomic_load(&tx->open_dirty) ? tx->open_txg : tx->open_txg - 1;
    int fault = tx->fault;
    pthread_mutex_unlock(&tx->lock);
    if (fault)
        return -EIO;
    return txg_wait(p, t);
}

static void mark_dirty_locked(struct txg *tx)
{
    if (!atomic_load(&tx->open_dirty)) {
        atomic_store(&tx->open_dirty, true);
        tx->dirty_since_ns = now_ns(); /* the txg timer starts at the first change */
        pthread_cond_signal(&tx->cv_kick);
    }
}

void txg_mark_dirty(struct bs_pool *p)
{
    struct txg *tx = &p->txg;
    if (atomic_load_explicit(&tx->open_dirty, memory_order_relaxed))
        return;
    pthread_mutex_lock(&tx->lock);
    mark_dirty_locked(tx);
    pthread_mutex_unlock(&tx->lock);
}

uint64_t txg_dirty_open(struct bs_pool *p)
{
    struct txg *tx = &p->txg;
    pthread_mutex_lock(&tx->lock);
    uint64_t t = tx->open_txg;
    mark_dirty_locked(tx);
    pthread_mutex_unlock(&tx->lock);
    return t;
}

void txg_add_dirty(struct bs_pool *p, int64_t bytes)
{
    struct txg *tx = &p->txg;
    uint64_t now = atomic_fetch_add(&tx->dirty_bytes, (uint64_t)bytes) + (uint64_t)bytes;
    if (bytes <= 0)
        return;
    struct bs_tunables tun;
    bs_tunables_get(&tun);
    uint64_t syncing = atomic_load_explicit(&tx->syncing_bytes, memory_order_relaxed);
    uint64_t open = now > syncing ? now - syncing : 0;
    if (open > tun.dirty_max_bytes / 8 * SYNC_OPEN_EIGHTHS && !atomic_exchange(&tx->kicked, true)) {
        pthread_mutex_lock(&tx->lock);
        pthread_cond_signal(&tx->cv_kick);
        pthread_mutex_unlock(&tx->lock);
    }
}


static void throttle_delay(struct txg *tx, uint64_t dirty, uint64_t max, uint64_t len)
{
    uint64_t min = max / 100 * DELAY_MIN_PCT, rate = atomic_load(&tx->sync_rate);
    if (!len || !rate || dirty <= min || dirty >= max)
        return;
    double d = (double)len * 1e9 / (double)rate * (double)(dirty - min) / (double)(max - dirty);
    uint64_t delay = d < (double)DELAY_MAX_NS ? (uint64_t)d : DELAY_MAX_NS;
    uint64_t now = now_ns(), last = atomic_load(&tx->delay_next), wake;
    do
        wake = MAX(now, last + delay);
    while (!atomic_compare_exchange_weak(&tx->delay_next, &last, wake));
    if (wake <= now)
        return;
    struct timespec ts = {(time_t)(wake / 1000000000u), (long)(wake % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

bool txg_would_throttle(struct bs_pool *p)
{
    struct bs_tunables tun;
    bs_tunables_get(&tun);
    return atomic_load(&p->txg.dirty_bytes) > tun.dirty_max_bytes / 100 * DELAY_MIN_PCT;
}

int txg_throttle(struct bs_pool *p, uint64_t len)
{
    struct txg *tx = &p->txg;
    struct bs_tunables tun;
    bs_tunables_get(&tun);
    uint64_t dirty = atomic_load(&tx->dirty_bytes);
    throttle_delay(tx, dirty, tun.dirty_max_bytes, len);
    if (atomic_load(&tx->dirty_bytes) <= tun.dirty_max_bytes)
        return 0;
    pthread_mutex_lock(&tx->lock);
    while (atomic_load(&tx->dirty_bytes) > tun.dirty_max_bytes && !tx->fault && !tx->shutdown) {
        atomic_store(&tx->kicked, true);
        pthread_cond_signal(&tx->cv_kick);
        pthread_cond_wait(&tx->cv_done, &tx->lock);
    }
    int r = tx->fault ? -EIO : 0;
    pthread_mutex_unlock(&tx->lock);
    return r;
}

int txg_check_writable(struct bs_pool *p)
{
    if (p->readonly)
        return -EROFS;
    /* a racy read is fine: a fault found late fails at the flush */
    return __atomic_load_n(&p->txg.fault, __ATOMIC_RELAXED) ? -EIO : 0;
}
