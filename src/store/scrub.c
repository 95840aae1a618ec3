/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scrub: verify every allocated block of a pool, repairing bad copies.
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
 * the hold; resuming starts a new pass at the saved position.
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
 * unit and is recorded as metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/pool_impl.h"

#define SCRUB_MAX_ERRORS 1024

enum scrub_state { SC_NONE, SC_SCANNING, SC_PAUSED, SC_FINISHED, SC_CANCELED };
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
    /* progress (lock) */
    uint64_t start_time, end_time, txg, total, repaired0;
    _Atomic uint64_t examined;
    uint64_t errors, scan_ns, pass_start_ns;
    struct bs_pool_error *errs;
    size_t nerr;
    /* leaves usable at the start and their stale_gen: only those, unchanged,
     * hold every block the scrub walked (one onlined mid-scrub does not) */
    uint32_t start_usable;
    bool resumed;               /* started at a saved position: stale marks stay */
    uint32_t start_gen[32];
    /* position (scrub thread) */
    uint64_t pos_id, pos_blk;
    int pos_part;
};

static uint64_t leaves_repaired(bs_pool *p)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < pool_nleaves(p); i++)
        sum += atomic_load(&pool_leaf(p, i, NULL, NULL)->ctr.repaired_bytes);
    return sum;
}

static void record(struct scrub *s, const struct unit *u, const char *what, uint64_t blk,
                   uint64_t len)
{
    pthread_mutex_lock(&s->lock);
    s->errors++;
    if (s->nerr < SCRUB_MAX_ERRORS) {
        struct bs_pool_error *e = &s->errs[s->nerr++];
        memset(e, 0, sizeof *e);
        snprintf(e->dataset, sizeof e->dataset, "%s", u->name);
        snprintf(e->what, sizeof e->what, "%s", what);
        e->offset = blk << u->od.dshift;
        e->length = len;
    }
    pthread_mutex_unlock(&s->lock);
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

struct visit_ctx {
    bs_pool *p;
    struct scrub *s;
    const struct unit *u;
};

static int visit(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct visit_ctx *v = opaque;
    struct scrub *s = v->s;
    if (atomic_load(&s->req))
        return 1; /* pause or stop: end the pass here */
    if (bp->level > 0) {
        /* the walk reads and verifies it (BLK_SCRUB) right after this; one
         * on the path to the resume position was counted before the pause */
        if (blkid >= s->pos_blk)
            atomic_fetch_add(&s->examined, bp->dva[0].asize);
        return 0;
    }
    if (blkid < s->pos_blk)
        return 0; /* done before a pause */
    struct cbuf *c = NULL;
    /* an encrypted block's checksum covers its ciphertext: no key needed */
    int r = (bp->flags & BP_FLAG_ENCRYPTED)
                ? blk_verify_stored(&v->p->io, bp, BLK_NOCACHE | BLK_SCRUB)
                : blk_read(&v->p->io, bp, BLK_NOCACHE | BLK_SCRUB, &c);
    if (r < 0)
        record(s, v->u, "data", blkid, (uint64_t)1 << v->u->od.dshift);
    cbuf_unref(c);
    atomic_fetch_add(&s->examined, bp->dva[0].asize);
    s->pos_blk = blkid + 1;
    return 0;
}

/* One pass from the saved position: 0 done, 1 interrupted (pause/stop). */
static int run_pass(bs_pool *p, struct scrub *s)
{
    struct unit *u = NULL;
    size_t n = 0;
    uint64_t txg;
    int r = snapshot(p, &u, &n, &txg);
    if (r < 0)
        return r;
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
        r = objtree_walk_since(&p->io, &u[i].od, u[i].min_birth, BLK_NOCACHE | BLK_SCRUB, visit,
                               &v);
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
    return r;
}

static void *scrub_main(void *arg)
{
    bs_pool *p = arg;
    struct scrub *s = p->scrub;
    bool done = false;
    pthread_mutex_lock(&s->lock);
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
        if (r <= 0) {
            done = r == 0; /* a pass that ran to its end finishes even if stopped late */
            break;
        }
        if (req == 2)
            break;
        s->state = SC_PAUSED;
        pthread_cond_broadcast(&s->cv);
    }
    if (done) {
        /* every block of the scrub's txg was verified on every copy: leaves
         * that came back stale hold everything now (cleared before waiters
         * see "finished") */
        bool cleared = false;
        for (unsigned i = 0; i < pool_nleaves(p) && i < 32; i++) {
            struct vdev *l = pool_leaf(p, i, NULL, NULL);
            if (!s->resumed && vdev_usable(l) && (s->start_usable >> i & 1) &&
                atomic_load(&l->stale_gen) == s->start_gen[i])
                cleared |= atomic_exchange(&l->stale, false);
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

static struct scrub *scrub_get(bs_pool *p)
{
    if (p->scrub)
        return p->scrub;
    struct scrub *s = calloc(1, sizeof *s);
    if (!s || !(s->errs = calloc(SCRUB_MAX_ERRORS, sizeof *s->errs))) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
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
    if (cmd == BS_SCRUB_START) {
        if (s->state == SC_SCANNING) {
            r = berr_set(err, EBUSY, "pool '%s' is being scrubbed already", p->name);
        } else if (s->state == SC_PAUSED) {
            s->state = SC_SCANNING;
            pthread_cond_broadcast(&s->cv);
        } else {
            join_locked(s);
            struct alloc_stats st;
            pool_tops_alloc_stats(p, &st);
            s->state = SC_SCANNING;
            s->start_time = (uint64_t)time(NULL);
            s->end_time = 0;
            s->total = st.allocated;
            s->repaired0 = leaves_repaired(p);
            atomic_store(&s->examined, 0);
            s->errors = s->nerr = 0;
            s->scan_ns = 0;
            s->pos_id = 0;
            s->pos_part = 0;
            s->pos_blk = 0;
            s->resumed = from != NULL;
            if (from) {
                s->pos_id = from->id;
                s->pos_part = from->part;
                s->pos_blk = from->blk;
            }
            s->start_usable = 0;
            for (unsigned i = 0; i < pool_nleaves(p) && i < 32; i++) {
                struct vdev *l = pool_leaf(p, i, NULL, NULL);
                s->start_gen[i] = atomic_load(&l->stale_gen);
                if (vdev_usable(l))
                    s->start_usable |= 1u << i;
            }
            atomic_store(&s->req, 0);
            pthread_mutex_lock(&p->txg.lock);
            s->txg = p->txg.committed_txg;
            pthread_mutex_unlock(&p->txg.lock);
            if (pthread_create(&s->thread, NULL, scrub_main, p) != 0) {
                s->state = SC_NONE;
                r = berr_set(err, EAGAIN, "cannot start the scrub thread");
            } else {
                s->have_thread = true;
            }
        }
    } else if (s->state != SC_SCANNING && s->state != SC_PAUSED) {
        r = berr_set(err, ENOENT, "pool '%s' has no scrub in progress", p->name);
    } else if (cmd == BS_SCRUB_PAUSE) {
        if (s->state == SC_SCANNING) {
            atomic_store(&s->req, 1);
            while (s->state == SC_SCANNING)
                pthread_cond_wait(&s->cv, &s->lock);
        }
    } else {
        atomic_store(&s->req, 2);
        pthread_cond_broadcast(&s->cv);
        join_locked(s);
    }
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&p->admin_lock);
    return r;
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
    p->scrub = NULL;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->lock);
    free(s->errs);
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
