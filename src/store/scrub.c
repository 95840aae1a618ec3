/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scans: a scrub verifies every allocated block of a pool, repairing bad
 * copies; a resilver (resilver.c) walks the same way but only the blocks
 * born in the txgs its target leaves missed (their DTLs, dtl.c), copying
 * them to those leaves.  A pool has one scan at a time (as ZFS's dsl_scan):
 * a resilver preempts a scrub (the scrub is canceled) and a scrub is
 * refused while a resilver runs; a resilver cannot be paused or stopped by
 * the user.
 *
 * State machine (s->lock):
 *
 *   none|finished|canceled --START--> scanning --walk done--> finished
 *                                      |    ^
 *                                 PAUSE|    |START
 *                                      v    |
 *                                      paused
 *   scanning|paused --STOP (or pool close)--> canceled
 *
 * One thread per pool exists while scanning or paused.  A pass takes a
 * consistent picture of the committed txg T under the sync mutex (the MOS
 * tree, and per dataset its tree, the txg of its previous snapshot and its
 * deadlist object) and holds the allocator's frees of txgs > T
 * (alloc_hold_frees), so every block of T's trees stays on disk, unchanged,
 * while the pass walks them without locks.  Pausing ends the pass and lifts
 * the hold; resuming starts a new pass at the saved position.  A writer
 * that runs short of space (vol.c space_check) makes the pass yield the same
 * way (scan_yield_frees), and a new pass starts at once from the position on
 * the newer txg: a long scan never turns held frees into ENOSPC.
 *
 * What is walked, each block once (the same walk as bs_pool_check): the MOS;
 * each dataset's own blocks, those born after its previous snapshot
 * (objtree_walk_since: shared blocks belong to the older snapshot); each
 * dataset's deadlist object.  Units are ordered by (dataset id, part); the
 * position is (unit, next data block id), so a resumed pass skips what was
 * done (indirect blocks on the way are read again).
 *
 * Every block is read with BLK_SCRUB: all copies are read and verified and
 * bad ones rewritten (vdev_mirror.c).  A block no copy can repair is
 * recorded (dataset name + offset); an unreadable indirect block ends that
 * unit and is recorded as metadata.
 *
 * A resilver walks with min_birth = its DTL's lo - 1 (subtrees older than
 * what the targets missed are skipped unread), copies each block born in
 * lo..hi (in batches, resilver.c: a batch is run to its end before a
 * position past its blocks is saved, and at the end of each unit), and
 * every RSV_DURABLE_BYTES or second flushes the targets and records the
 * position reached in the labels, from where an import after a crash
 * resumes it.  It is finished only when a pass ran to
 * its end: then the targets' DTLs and stale marks are cleared and the labels
 * rewritten; until then they stay (an interrupted resilver is never "done"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/pool_impl.h"
#include "store/resilver.h"

#define SCRUB_MAX_ERRORS 1024

enum scrub_state { SC_NONE, SC_SCANNING, SC_PAUSED, SC_FINISHED, SC_CANCELED };
enum scan_func { SCAN_SCRUB, SCAN_RESILVER };
#define RSV_DURABLE_BYTES (64u << 20)
static const char *const state_names[] = {"none", "scanning", "paused", "finished", "canceled"};

struct unit {
    uint64_t id;       /* dataset id, 0 = the MOS */
    int part;          /* 0 tree, 1 deadlist */
    struct objdesc od;
    uint64_t min_birth;
    char name[BS_POOL_ERROR_NAME];
};

struct scrub {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    pthread_t thread;
    bool have_thread;
    enum scrub_state state;
    _Atomic int req;            /* 0 none, 1 pause, 2 stop */
    /* a writer short of space asks the pass to let go of the frees it holds
     * (scan_yield_frees): the pass ends where it is and a new one starts at
     * once from that position, on the newer txg */
    _Atomic bool yield;
    bool holding;               /* a pass holds frees (lock) */
    uint64_t hold_lifts;        /* passes that let go of their hold (lock) */
    /* progress (lock) */
    uint64_t start_time, end_time, txg, total, repaired0;
    _Atomic uint64_t examined;
    uint64_t errors, scan_ns, pass_start_ns;
    struct bs_pool_error *errs;
    size_t nerr;
    /* leaves usable at the start (bit i of top t: its child i) with their
     * guid and stale_gen: only those, unchanged, hold every block the scrub
     * walked (one onlined mid-scrub does not) */
    uint32_t start_usable[BLK_MAX_TOPS];
    bool resumed;               /* started at a saved position: stale marks stay */
    uint32_t start_gen[BLK_MAX_TOPS][32];
    uint64_t start_guid[BLK_MAX_TOPS][32];
    /* position (scrub thread) */
    uint64_t pos_id, pos_blk;
    int pos_part;
    /* resilver (set at start under lock; the targets change only there) */
    enum scan_func func;
    struct rsv_target tg;
    struct rsv_batch *batch;    /* blocks being copied (scrub thread) */
    _Atomic uint64_t copied;    /* bytes written to the targets */
    _Atomic unsigned delay_ms;  /* test knob: pause per block copied */
    uint64_t copied_at_save, save_ns;
    /* a replace waiting for the resilver to detach the old member (pos_lock:
     * the labels record it) */
    uint64_t rep_old;
    char rep_new[4096];
    /* the durable resilver position (pos_lock, innermost: labels read it) */
    pthread_mutex_t pos_lock;
    bool dpos_valid;
    struct bs_scrub_pos dpos;
};

static uint64_t leaves_repaired(bs_pool *p)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < pool_nleaves(p); i++)
        sum += atomic_load(&pool_leaf(p, i, NULL, NULL)->ctr.repaired_bytes);
    return sum;
}

/* An error the scan could not repair, listed by `pool status -v`. */
static void record_at(struct scrub *s, const char *name, const char *what, uint64_t offset,
                      uint64_t len)
{
    pthread_mutex_lock(&s->lock);
    s->errors++;
    if (s->nerr < SCRUB_MAX_ERRORS) {
        struct bs_pool_error *e = &s->errs[s->nerr++];
        memset(e, 0, sizeof *e);
        snprintf(e->dataset, sizeof e->dataset, "%s", name);
        snprintf(e->what, sizeof e->what, "%s", what);
        e->offset = offset;
        e->length = len;
    }
    pthread_mutex_unlock(&s->lock);
}

static void record(struct scrub *s, const struct unit *u, const char *what, uint64_t blk,
                   uint64_t len)
{
    record_at(s, u->name, what, blk << u->od.dshift, len);
}

/* ---- a pass ---- */

static int cmp_unit(const struct unit *a, uint64_t id, int part)
{
    return a->id != id ? (a->id < id ? -1 : 1) : a->part != part ? (a->part < part ? -1 : 1) : 0;
}

static int unit_order(const void *a, const void *b)
{
    const struct unit *y = b;
    return cmp_unit(a, y->id, y->part);
}

/* The units of the committed txg, sorted; holds frees from later txgs. */
static int snapshot(bs_pool *p, struct unit **out, size_t *n, uint64_t *txg)
{
    pthread_mutex_lock(&p->txg.sync_mutex);
    pthread_mutex_lock(&p->lock);
    size_t cap = 1;
    for (struct ds *d = p->ds_list; d; d = d->next)
        cap += 2;
    struct unit *u = calloc(cap, sizeof *u);
    size_t k = 0;
    if (u) {
        u[k].od = p->mos_od;
        snprintf(u[k].name, sizeof u[k].name, "(pool directory)");
        k++;
        for (struct ds *d = p->ds_list; d; d = d->next) {
            struct unit *t = &u[k++], *l = &u[k++];
            t->id = l->id = d->rec.id;
            l->part = 1;
            pthread_mutex_lock(&d->lock);
            t->od = d->od;
            pthread_mutex_unlock(&d->lock);
            t->min_birth = d->rec.lin.prev_txg;
            l->od = d->rec.lin.dl;
            snprintf(t->name, sizeof t->name, "%s", d->rec.name);
            snprintf(l->name, sizeof l->name, "deadlist of %s", d->rec.name);
        }
    }
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_lock(&p->txg.lock);
    *txg = p->txg.committed_txg;
    pthread_mutex_unlock(&p->txg.lock);
    if (u)
        pool_tops_hold_frees(p, *txg);
    pthread_mutex_unlock(&p->txg.sync_mutex);
    if (!u)
        return -ENOMEM;
    qsort(u, k, sizeof *u, unit_order);
    *out = u;
    *n = k;
    return 0;
}

/* The resilver's position reached so far is made durable: the targets
 * flushed, then the labels record it (leaf_hdr asks scan_label_pos). */
static void resilver_save(bs_pool *p, struct scrub *s)
{
    if (resilver_flush(p, &s->tg) < 0)
        return;
    pthread_mutex_lock(&s->pos_lock);
    s->dpos_valid = true;
    s->dpos.id = s->pos_id;
    s->dpos.part = s->pos_part;
    s->dpos.blk = s->pos_blk;
    pthread_mutex_unlock(&s->pos_lock);
    if (!p->readonly)
        (void)pool_write_labels(p, false);
    s->copied_at_save = atomic_load(&s->copied);
    s->save_ns = now_ns();
}

static void resilver_failed(void *ctx, const char *name, const struct blkptr *bp)
{
    record_at(ctx, name, bp->level ? "metadata" : "data", 0, bp->lsize);
}

/* Copy the blocks queued in the batch (resilver.c) to the targets. */
static void resilver_run(bs_pool *p, struct scrub *s)
{
    uint64_t copied;
    unsigned data;
    rsv_batch_run(p, s->batch, &copied, &data, resilver_failed, s);
    atomic_fetch_add(&s->copied, copied);
    /* the test knob's pause, per data block copied as before batches */
    uint64_t ms = (uint64_t)atomic_load(&s->delay_ms) * data;
    if (ms)
        nanosleep(&(struct timespec){.tv_sec = (time_t)(ms / 1000),
                                     .tv_nsec = (long)(ms % 1000) * 1000000},
                  NULL);
}

static int resilver_visit(bs_pool *p, struct scrub *s, const char *name,
                          const struct blkptr *bp)
{
    atomic_fetch_add(&s->examined, bp_asize(bp));
    if (rsv_batch_add(p, s->batch, &s->tg, bp, name))
        resilver_run(p, s);
    if (bp->level == 0 && (atomic_load(&s->copied) - s->copied_at_save >= RSV_DURABLE_BYTES ||
                           now_ns() - s->save_ns >= 1000000000ull)) {
        /* the position saved is this block's: every block visited before
         * it (and it) must be on the targets first */
        resilver_run(p, s);
        resilver_save(p, s);
    }
    return 0;
}

bool scan_label_pos(bs_pool *p, struct bs_scrub_pos *pos)
{
    struct scrub *s = p->scrub;
    if (!s)
        return false;
    pthread_mutex_lock(&s->pos_lock);
    bool v = s->dpos_valid;
    if (v)
        *pos = s->dpos;
    pthread_mutex_unlock(&s->pos_lock);
    return v;
}

struct visit_ctx {
    bs_pool *p;
    struct scrub *s;
    const struct unit *u;
};

static int visit(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct visit_ctx *v = opaque;
    struct scrub *s = v->s;
    if (atomic_load(&s->req) || atomic_load(&s->yield))
        return 1; /* pause, stop or yield: end the pass here */
    if (bp->level > 0 && s->func == SCAN_RESILVER) /* copied again on a resume: harmless */
        return resilver_visit(v->p, s, v->u->name, bp);
    if (bp->level > 0) {
        /* the walk reads and verifies it (BLK_SCRUB) right after this; one
         * on the path to the resume position was counted before the pause */
        if (blkid >= s->pos_blk)
            atomic_fetch_add(&s->examined, bp_asize(bp));
        return 0;
    }
    if (blkid < s->pos_blk)
        return 0; /* done before a pause */
    if (s->func == SCAN_RESILVER) {
        int r = resilver_visit(v->p, s, v->u->name, bp);
        s->pos_blk = blkid + 1;
        return r;
    }
    struct cbuf *c = NULL;
    /* an encrypted block's checksum covers its ciphertext: no key needed */
    int r = (bp->flags & BP_FLAG_ENCRYPTED)
                ? blk_verify_stored(&v->p->io, bp, BLK_NOCACHE | BLK_SCRUB)
                : blk_read(&v->p->io, bp, BLK_NOCACHE | BLK_SCRUB, &c);
    if (r < 0)
        record(s, v->u, "data", blkid, (uint64_t)1 << v->u->od.dshift);
    cbuf_unref(c);
    atomic_fetch_add(&s->examined, bp_asize(bp));
    s->pos_blk = blkid + 1;
    return 0;
}

/* One pass from the saved position: 0 done, 1 interrupted (pause/stop). */
static int run_pass(bs_pool *p, struct scrub *s)
{
    struct unit *u = NULL;
    size_t n = 0;
    uint64_t txg;
    /* holding before snapshot() takes the hold: a writer short of space in
     * between must find it (scan_yield_frees) */
    pthread_mutex_lock(&s->lock);
    s->holding = true;
    pthread_mutex_unlock(&s->lock);
    int r = snapshot(p, &u, &n, &txg);
    if (r < 0) {
        pthread_mutex_lock(&s->lock);
        s->holding = false;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->lock);
        return r;
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        int c = cmp_unit(&u[i], s->pos_id, s->pos_part);
        if (c < 0)
            continue;
        if (c > 0) {
            s->pos_id = u[i].id;
            s->pos_part = u[i].part;
            s->pos_blk = 0;
        }
        struct visit_ctx v = { .p = p, .s = s, .u = &u[i] };
        uint64_t min_birth = u[i].min_birth;
        unsigned flags = BLK_NOCACHE | BLK_SCRUB;
        if (s->func == SCAN_RESILVER) {
            /* only what the targets missed; reads avoid them (their DTL) */
            min_birth = MAX(min_birth, s->tg.lo - 1);
            flags = BLK_NOCACHE;
        }
        r = objtree_walk_since(&p->io, &u[i].od, min_birth, flags, visit, &v);
        if (s->func == SCAN_RESILVER)
            resilver_run(p, s); /* what the unit queued, before its name goes */
        if (r < 0) {
            record(s, &u[i], "metadata", s->pos_blk, 0);
            r = 0;
        }
        if (r == 0) {
            /* the unit is done: the next one starts at its beginning */
            s->pos_part = u[i].part + 1;
            s->pos_blk = 0;
        }
    }
    free(u);
    pool_tops_hold_frees(p, 0);
    txg_mark_dirty(p); /* let the frees held meanwhile drain */
    pthread_mutex_lock(&s->lock);
    s->holding = false;
    s->hold_lifts++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Reset the progress of a new scan (s->lock held). */
static void scan_reset(bs_pool *p, struct scrub *s, const struct bs_scrub_pos *from)
{
    struct alloc_stats st;
    pool_tops_alloc_stats(p, &st);
    s->start_time = (uint64_t)time(NULL);
    s->end_time = 0;
    s->total = st.allocated;
    s->repaired0 = leaves_repaired(p);
    atomic_store(&s->examined, 0);
    atomic_store(&s->copied, 0);
    s->copied_at_save = 0;
    s->save_ns = now_ns();
    s->errors = s->nerr = 0;
    s->scan_ns = 0;
    s->pos_id = from ? from->id : 0;
    s->pos_part = from ? from->part : 0;
    s->pos_blk = from ? from->blk : 0;
    s->resumed = from != NULL;
    memset(s->start_usable, 0, sizeof s->start_usable);
    for (unsigned t = 0; t < atomic_load(&p->io.ntops) && t < BLK_MAX_TOPS; t++) {
        struct vdev *top = p->io.top[t].vd;
        for (unsigned i = 0; i < vdev_nleaves(top) && i < 32; i++) {
            struct vdev *l = vdev_leaf(top, i);
            s->start_gen[t][i] = atomic_load(&l->stale_gen);
            s->start_guid[t][i] = l->guid;
            if (vdev_usable(l))
                s->start_usable[t] |= 1u << i;
        }
    }
    pthread_mutex_lock(&p->txg.lock);
    s->txg = p->txg.committed_txg;
    pthread_mutex_unlock(&p->txg.lock);
    /* a resilver resumed at a position the labels recorded keeps it there
     * until it gets further */
    pthread_mutex_lock(&s->pos_lock);
    s->dpos_valid = from && s->func == SCAN_RESILVER;
    if (from)
        s->dpos = *from;
    pthread_mutex_unlock(&s->pos_lock);
}

static void *scrub_main(void *arg)
{
    bs_pool *p = arg;
    struct scrub *s = p->scrub;
    bool done = false;
    pthread_mutex_lock(&s->lock);
again:
    for (;;) {
        if (s->state == SC_PAUSED) {
            if (atomic_load(&s->req) == 2)
                break;
            pthread_cond_wait(&s->cv, &s->lock);
            continue;
        }
        s->pass_start_ns = now_ns();
        pthread_mutex_unlock(&s->lock);
        int r = run_pass(p, s);
        pthread_mutex_lock(&s->lock);
        s->scan_ns += now_ns() - s->pass_start_ns;
        int req = atomic_exchange(&s->req, 0);
        bool yielded = atomic_exchange(&s->yield, false);
        if (r <= 0) {
            done = r == 0; /* a pass that ran to its end finishes even if stopped late */
            break;
        }
        if (req == 2)
            break;
        if (req == 0 && yielded)
            continue; /* the hold is lifted: go on from the position */
        s->state = SC_PAUSED;
        pthread_cond_broadcast(&s->cv);
    }
    if (done && s->func == SCAN_RESILVER) {
        /* every block the targets missed is on them once flushed: their
         * DTLs and stale marks go (a target that failed or went away and
         * came back meanwhile keeps its own) */
        pthread_mutex_unlock(&s->lock);
        bool ok = resilver_flush(p, &s->tg) == 0;
        pthread_mutex_lock(&s->lock);
        pthread_mutex_lock(&s->pos_lock);
        s->dpos_valid = false;
        pthread_mutex_unlock(&s->pos_lock);
        if (ok && s->errors == 0)
            resilver_done(p, &s->tg);
        char np[sizeof s->rep_new];
        uint64_t og = scan_replacing(p, np, sizeof np);
        if (ok && s->errors == 0 && og && atomic_load(&s->req) != 2) {
            /* a replace kept the old mirror member until now */
            pthread_mutex_unlock(&s->lock);
            int rr = replace_finish(p, og, np, &s->req);
            pthread_mutex_lock(&s->lock);
            pthread_mutex_lock(&s->pos_lock);
            if ((rr == 0 || rr == -ENOENT) && s->rep_old == og)
                s->rep_old = 0;
            pthread_mutex_unlock(&s->pos_lock);
        }
        if (s->errors == 0 && atomic_load(&s->req) != 2 && resilver_targets(p, &s->tg) > 0) {
            /* another leaf came back meanwhile (its own DTL): go on with it */
            scan_reset(p, s, NULL);
            done = false;
            goto again;
        }
    } else if (done) {
        /* every block of the scrub's txg was verified on every copy: leaves
         * that came back stale hold everything now (cleared before waiters
         * see "finished") */
        bool cleared = false;
        for (unsigned t = 0; t < atomic_load(&p->io.ntops) && t < BLK_MAX_TOPS; t++) {
            struct vdev *top = p->io.top[t].vd;
            for (unsigned i = 0; i < vdev_nleaves(top) && i < 32; i++) {
                struct vdev *l = vdev_leaf(top, i);
                /* stale_gen compared and the DTL cleared in one step
                 * (dtl.c top): a miss noted by a commit meanwhile stays */
                if (!s->resumed && vdev_usable(l) && (s->start_usable[t] >> i & 1) &&
                    l->guid == s->start_guid[t][i])
                    cleared |= dtl_clear_if(p, l, s->start_gen[t][i]) > 0;
            }
        }
        pool_tops_state(p);
        if (cleared && !p->readonly) /* the labels stop calling them stale */
            (void)pool_write_labels(p, false);
    }
    s->state = done ? SC_FINISHED : SC_CANCELED;
    s->end_time = (uint64_t)time(NULL);
    atomic_store(&s->req, 0);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- control ---- */

bool scan_yield_frees(bs_pool *p)
{
    struct scrub *s = p->scrub;
    if (!s)
        return false;
    pthread_mutex_lock(&s->lock);
    bool lifted = false;
    if (s->holding) {
        uint64_t g = s->hold_lifts;
        atomic_store(&s->yield, true);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 10;
        while (s->hold_lifts == g && s->holding &&
               pthread_cond_timedwait(&s->cv, &s->lock, &dl) == 0)
            ;
        lifted = s->hold_lifts != g;
    }
    pthread_mutex_unlock(&s->lock);
    return lifted;
}

static struct scrub *scrub_get(bs_pool *p)
{
    if (p->scrub)
        return p->scrub;
    struct scrub *s = calloc(1, sizeof *s);
    if (!s || !(s->errs = calloc(SCRUB_MAX_ERRORS, sizeof *s->errs)) ||
        !(s->batch = rsv_batch_new())) {
        if (s)
            free(s->errs);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->pos_lock, NULL);
    pthread_cond_init(&s->cv, NULL);
    p->scrub = s;
    return s;
}

static void join_locked(struct scrub *s)
{
    if (!s->have_thread)
        return;
    pthread_t t = s->thread;
    s->have_thread = false;
    pthread_mutex_unlock(&s->lock);
    pthread_join(t, NULL);
    pthread_mutex_lock(&s->lock);
}

/* Start a scan of kind func (s->lock held, no scan scanning or paused). */
static int scan_start(bs_pool *p, struct scrub *s, enum scan_func func,
                      const struct bs_scrub_pos *from, struct berr *err)
{
    join_locked(s);
    s->func = func;
    s->state = SC_SCANNING;
    scan_reset(p, s, from);
    atomic_store(&s->req, 0);
    if (pthread_create(&s->thread, NULL, scrub_main, p) != 0) {
        s->state = SC_NONE;
        return berr_set(err, EAGAIN, "cannot start the %s thread",
                        func == SCAN_RESILVER ? "resilver" : "scrub");
    }
    s->have_thread = true;
    return 0;
}

/* Stop the scan that runs (s->lock held): it ends canceled. */
static void scan_stop_locked(struct scrub *s)
{
    if (s->state != SC_SCANNING && s->state != SC_PAUSED)
        return;
    atomic_store(&s->req, 2);
    pthread_cond_broadcast(&s->cv);
    join_locked(s);
}

static int scrub_cmd(bs_pool *p, enum bs_scrub_cmd cmd, const struct bs_scrub_pos *from,
                     struct berr *err)
{
    if (p->readonly)
        return berr_set(err, EROFS, "pool '%s' is read-only: a scrub could not repair it",
                        p->name);
    pthread_mutex_lock(&p->admin_lock);
    struct scrub *s = scrub_get(p);
    int r = 0;
    if (!s) {
        pthread_mutex_unlock(&p->admin_lock);
        return berr_set(err, ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&s->lock);
    bool active = s->state == SC_SCANNING || s->state == SC_PAUSED;
    if (active && s->func == SCAN_RESILVER) {
        r = berr_set(err, EBUSY, "pool '%s' is being resilvered; a scrub can start when it "
                     "has finished (a resilver cannot be paused or stopped)", p->name);
    } else if (cmd == BS_SCRUB_START) {
        if (s->state == SC_SCANNING) {
            r = berr_set(err, EBUSY, "pool '%s' is being scrubbed already", p->name);
        } else if (s->state == SC_PAUSED) {
            s->state = SC_SCANNING;
            pthread_cond_broadcast(&s->cv);
        } else {
            r = scan_start(p, s, SCAN_SCRUB, from, err);
        }
    } else if (!active) {
        r = berr_set(err, ENOENT, "pool '%s' has no scrub in progress", p->name);
    } else if (cmd == BS_SCRUB_PAUSE) {
        if (s->state == SC_SCANNING) {
            atomic_store(&s->req, 1);
            while (s->state == SC_SCANNING)
                pthread_cond_wait(&s->cv, &s->lock);
        }
    } else {
        scan_stop_locked(s);
    }
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int scan_resilver(bs_pool *p, const struct bs_scrub_pos *from, struct berr *err)
{
    if (p->readonly)
        return 0; /* nothing can be written: the DTLs stay for a writable import */
    struct scrub *s = scrub_get(p);
    if (!s)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&s->lock);
    /* a resilver preempts a scrub; a running resilver starts over with
     * the targets as they are now */
    scan_stop_locked(s);
    join_locked(s);
    int r = 0;
    if (resilver_targets(p, &s->tg) > 0)
        r = scan_start(p, s, SCAN_RESILVER, from, err);
    pthread_mutex_unlock(&s->lock);
    return r;
}

void scan_stop_resilver(bs_pool *p)
{
    scan_stop(p, false);
}

void scan_stop(bs_pool *p, bool any)
{
    /* the DTLs are about to change: a position saved for the old ones
     * must not reach the labels with the new ones */
    p->top_hdr[0].rsv_valid = 0;
    struct scrub *s = p->scrub;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    if (any || s->func == SCAN_RESILVER)
        scan_stop_locked(s);
    pthread_mutex_lock(&s->pos_lock);
    s->dpos_valid = false;
    pthread_mutex_unlock(&s->pos_lock);
    pthread_mutex_unlock(&s->lock);
}

void scan_set_replacing(bs_pool *p, uint64_t old_guid, const char *new_path)
{
    struct scrub *s = scrub_get(p);
    if (!s)
        return; /* then the old member just stays attached */
    pthread_mutex_lock(&s->pos_lock);
    s->rep_old = old_guid;
    snprintf(s->rep_new, sizeof s->rep_new, "%s", new_path ? new_path : "");
    pthread_mutex_unlock(&s->pos_lock);
}

uint64_t scan_replacing(bs_pool *p, char *new_path, size_t len)
{
    struct scrub *s = p->scrub;
    if (!s)
        return 0;
    pthread_mutex_lock(&s->pos_lock);
    uint64_t g = s->rep_old;
    snprintf(new_path, len, "%s", s->rep_new);
    pthread_mutex_unlock(&s->pos_lock);
    return g;
}

int scan_set_delay(bs_pool *p, unsigned ms, struct berr *err)
{
    pthread_mutex_lock(&p->admin_lock);
    struct scrub *s = scrub_get(p);
    pthread_mutex_unlock(&p->admin_lock);
    if (!s)
        return berr_set(err, ENOMEM, "out of memory");
    atomic_store(&s->delay_ms, ms);
    return 0;
}

int bs_pool_scrub(bs_pool *p, enum bs_scrub_cmd cmd, struct berr *err)
{
    return scrub_cmd(p, cmd, NULL, err);
}

int bs_pool_scrub_resume(bs_pool *p, const struct bs_scrub_pos *pos, struct berr *err)
{
    if (pos->part < 0 || pos->part > 1)
        return berr_set(err, EINVAL, "bad scrub position");
    return scrub_cmd(p, BS_SCRUB_START, pos, err);
}

void bs_pool_scrub_wait(bs_pool *p)
{
    pthread_mutex_lock(&p->admin_lock);
    struct scrub *s = p->scrub;
    pthread_mutex_unlock(&p->admin_lock);
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    while (s->state == SC_SCANNING)
        pthread_cond_wait(&s->cv, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

bool bs_pool_resilver_wait(bs_pool *p)
{
    bs_pool_scrub_wait(p);
    struct scrub *s = p->scrub;
    if (!s)
        return true;
    pthread_mutex_lock(&s->lock);
    /* a resilver that could not copy every block leaves its DTLs: not done */
    bool ok = s->func != SCAN_RESILVER || (s->state == SC_FINISHED && s->errors == 0);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void scrub_fini(bs_pool *p)
{
    struct scrub *s = p->scrub;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->have_thread) {
        atomic_store(&s->req, 2);
        pthread_cond_broadcast(&s->cv);
        join_locked(s);
    }
    pthread_mutex_unlock(&s->lock);
    /* an interrupted resilver's durable position stays in the labels (the
     * export writes them once more) for the next import */
    struct bs_scrub_pos pos;
    if (scan_label_pos(p, &pos)) {
        p->top_hdr[0].rsv_valid = 1;
        p->top_hdr[0].rsv_id = pos.id;
        p->top_hdr[0].rsv_blk = pos.blk;
        p->top_hdr[0].rsv_part = (uint32_t)pos.part;
    }
    p->scrub = NULL;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->pos_lock);
    pthread_mutex_destroy(&s->lock);
    free(s->errs);
    rsv_batch_free(s->batch);
    free(s);
}

void scrub_stats(bs_pool *p, struct bs_pool_stats *o)
{
    struct bs_scan_stats *sc = &o->scan;
    snprintf(sc->state, sizeof sc->state, "none");
    struct scrub *s = p->scrub; /* set once, freed only at teardown */
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    snprintf(sc->state, sizeof sc->state, "%s", state_names[s->state]);
    snprintf(sc->func, sizeof sc->func, "%s", s->func == SCAN_RESILVER ? "resilver" : "scrub");
    sc->resilvered = atomic_load(&s->copied);
    sc->start_time = s->start_time;
    sc->end_time = s->end_time;
    sc->txg = s->txg;
    sc->total = s->total;
    /* blocks written after the start (a resumed pass walks a newer txg) may
     * add a little: progress never shows more than 100% */
    sc->examined = MIN(atomic_load(&s->examined), s->total);
    sc->repaired = leaves_repaired(p) - s->repaired0;
    sc->errors = s->errors;
    uint64_t ns = s->scan_ns + (s->state == SC_SCANNING ? now_ns() - s->pass_start_ns : 0);
    sc->rate = ns ? (double)sc->examined * 1e9 / (double)ns : 0;
    sc->pos.id = s->pos_id;
    sc->pos.part = s->pos_part;
    sc->pos.blk = s->pos_blk; /* written by the scrub thread: a hint, read racily */
    if (s->state == SC_SCANNING && sc->rate > 0 && sc->total > sc->examined)
        sc->eta_seconds = (uint64_t)((double)(sc->total - sc->examined) / sc->rate) + 1;
    pthread_mutex_unlock(&s->lock);
}

int bs_pool_errors(bs_pool *p, int (*cb)(const struct bs_pool_error *e, void *opaque),
                   void *opaque)
{
    pthread_mutex_lock(&p->admin_lock);
    struct scrub *s = p->scrub;
    pthread_mutex_unlock(&p->admin_lock);
    if (!s)
        return 0;
    pthread_mutex_lock(&s->lock);
    size_t n = s->nerr;
    struct bs_pool_error *copy = n ? malloc(n * sizeof *copy) : NULL;
    if (copy)
        memcpy(copy, s->errs, n * sizeof *copy);
    int count = (int)MIN(s->errors, (uint64_t)INT32_MAX);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; copy && cb && i < n; i++)
        if (cb(&copy[i], opaque))
            break;
    free(copy);
    return count;
}
