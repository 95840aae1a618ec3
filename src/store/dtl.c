/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Dirty time logs: which txgs a leaf missed (resilver.h).
 *
 * Invariants:
 *  - a leaf's DTL is set before it is ONLINE again, so no normal read uses
 *    it for a block it lacks (vdev_mirror.c, vdev_raidz.c skip it);
 *  - it only grows (dtl_add unions) until a complete resilver or scrub that
 *    started after its last growth clears it (stale_gen guards that);
 *  - the range is conservative: txgs the leaf did get may be in it (its
 *    blocks are then copied again), never a txg it missed outside it.  A
 *    leaf back after an outage missed the txgs after its newest uberblock
 *    (uberblock T is written to a leaf only after all of T's blocks were)
 *    up to the last txg synced before it was ONLINE again (taken under the
 *    sync mutex, so no txg is half written meanwhile);
 *  - a leaf that misses the blocks of txg T has that in the labels before
 *    uberblock T is written anywhere (dtl_note_missed: DTL T..T, stale).
 *    Import's own rule above cannot see it after every crash: a commit cut
 *    short (uberblock T on fewer raidz members than hold T's blocks) makes
 *    it take the members one txg behind as whole (pool_import.c), and in a
 *    pool of several tops a top that got no uberblock of T has T-1 as its
 *    newest, which its member that missed T also holds.  Once noted, later
 *    txgs need no label write: the leaf keeps its older uberblock, two or
 *    more txgs behind, which import does count.
 *
 * Growing and clearing (p->dtl_lock).  A leaf's DTL, stale mark and
 * stale_gen change together: every growth (dtl_mark_missed: a miss noted
 * by the sync thread, a leaf back online, a new member) adds to the DTL,
 * sets stale and bumps stale_gen in one step under the pool's dtl_lock; a
 * clear (dtl_clear_if: the end of a resilver or scrub) compares stale_gen
 * with the value its pass started with and clears in the same step under
 * that lock.  So a growth is either before the comparison (stale_gen
 * differs: nothing cleared) or after the clear (it stays): a clear never
 * wipes a miss its pass did not cover.  Before, the comparison and the
 * clear were two steps, and dtl_note_missed of a leaf that faulted in the
 * commit running meanwhile could land between them and be wiped (the leaf
 * taken as whole later: blocks missing, redundancy silently reduced).  The
 * sync mutex cannot serve: the scan thread clears under its s->lock, and
 * the sync thread must never wait for a scan.  dtl_lock is innermost and
 * held for these few stores only (never across I/O or another lock);
 * resilver_targets reads a leaf's DTL and stale_gen under it too, so a
 * pass's targets and their generations are one consistent snapshot.
 *
 * A member whose label write fails in dtl_note_missed.  The labels that
 * record a miss go to every usable member of the top (pool_write_labels); a
 * member whose write or flush of its label fails (a write that failed
 * quickly is tried once more at once, so that one transient failure faults
 * nothing; a failed flush is not: write_top_labels) keeps its old label,
 * which does not name the member that missed T.  Left ONLINE it would take
 * uberblock T next, and an import that finds it without the members that
 * took the note would take it as the word on the top.  The rule is the one
 * of every other write (vdev_mirror.c, vdev_raidz.c; those have no retry): a
 * leaf that fails a write others completed is FAULTED (no uberblock T, no
 * further I/O; when it is onlined, dtl_leaf_back counts its misses from its
 * own newest uberblock, T-1 or older, and the next commit notes it in the
 * labels of the others), unless too many failed: if the top could no longer
 * serve every block with them FAULTED (a mirror: no member took the note; a
 * raidz: fewer than nchild - nparity usable would remain), nothing is
 * faulted and the commit fails (the pool is FAULTED, txg T never commits;
 * an import finds T-1), as a data write that too many members failed.  A
 * top where no member newly missed T carries no note: a label write that
 * fails on some of its members is left to the uberblock write that follows
 * (it faults the leaf if the device is really failing); one that fails on
 * every usable member of a top still fails the commit (pool_write_labels'
 * own rule, older than this one).  What no rule here can save: a
 * crash before the uberblock of T reached that top at all, then an import
 * without every member that took the note (the failed member's old label
 * is all that is left there to read). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "store/resilver.h"
#include "store/vdev_mirror.h"

void dtl_add(struct vdev *l, uint64_t lo, uint64_t hi)
{
    if (lo == 0)
        lo = 1;
    if (hi < lo)
        return;
    uint64_t ohi = atomic_load(&l->dtl_hi);
    if (ohi) {
        lo = MIN(lo, atomic_load(&l->dtl_lo));
        hi = MAX(hi, ohi);
    }
    /* lo first: a reader that sees the new hi sees a lo at least as low */
    atomic_store(&l->dtl_lo, lo);
    atomic_store(&l->dtl_hi, hi);
}

void dtl_clear(struct vdev *l)
{
    atomic_store(&l->dtl_hi, 0);
    atomic_store(&l->dtl_lo, 0);
}

void dtl_mark_missed(bs_pool *p, struct vdev *l, uint64_t lo, uint64_t hi)
{
    pthread_mutex_lock(&p->dtl_lock);
    dtl_add(l, lo, hi);
    atomic_store(&l->stale, true);
    atomic_fetch_add(&l->stale_gen, 1); /* a running resilver or scrub must not clear it */
    pthread_mutex_unlock(&p->dtl_lock);
}

uint32_t dtl_snapshot(bs_pool *p, struct vdev *l, uint64_t *lo, uint64_t *hi)
{
    pthread_mutex_lock(&p->dtl_lock);
    *lo = atomic_load(&l->dtl_lo);
    *hi = atomic_load(&l->dtl_hi);
    uint32_t gen = atomic_load(&l->stale_gen);
    pthread_mutex_unlock(&p->dtl_lock);
    return gen;
}

int dtl_clear_if(bs_pool *p, struct vdev *l, uint32_t gen)
{
    pthread_mutex_lock(&p->dtl_lock);
    if (atomic_load(&l->stale_gen) != gen) {
        pthread_mutex_unlock(&p->dtl_lock);
        return -1;
    }
    unsigned ms = atomic_load(&p->dtl_clear_delay_ms);
    if (ms && (atomic_load(&l->stale) || atomic_load(&l->dtl_hi))) {
        /* test knob: widen the window between the check and the clear (a
         * growth meanwhile must wait for the lock, not be wiped) */
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
        atomic_fetch_add(&p->dtl_clear_delayed, 1);
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    bool was = atomic_exchange(&l->stale, false);
    dtl_clear(l);
    pthread_mutex_unlock(&p->dtl_lock);
    return was;
}

uint64_t dtl_leaf_newest(bs_pool *p, unsigned t, struct vdev *l)
{
    struct uberblock *u = NULL;
    int k = l->fd >= 0 ? label_read_ubs(l, &p->top_hdr[t], &u) : 0;
    uint64_t newest = 0;
    for (int i = 0; i < k; i++)
        if (u[i].guid_sum == p->guid_sum)
            newest = MAX(newest, u[i].txg);
    free(u);
    return newest;
}

void dtl_leaf_back(bs_pool *p, unsigned t, struct vdev *l)
{
    scan_stop_resilver(p);
    uint64_t have = dtl_leaf_newest(p, t, l);
    pthread_mutex_lock(&p->txg.sync_mutex);
    pthread_mutex_lock(&p->txg.lock);
    uint64_t last = p->txg.open_txg - 1; /* every txg before the open one is done */
    pthread_mutex_unlock(&p->txg.lock);
    if (have < last)
        dtl_mark_missed(p, l, have + 1, last);
    atomic_store(&l->state, VDEV_STATE_ONLINE);
    pthread_mutex_unlock(&p->txg.sync_mutex);
}

/* Fault the members of the tops in `noted` whose label write failed
 * (failed[t]: bit i for child i), unless that leaves a top unable to serve
 * its blocks: then -EIO and nothing is faulted (see the top). */
static int fault_unrecorded(bs_pool *p, uint64_t txg, const bool *noted, const uint32_t *failed)
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt && t < BLK_MAX_TOPS; t++) {
        struct vdev *top = p->io.top[t].vd;
        if (!noted[t] || !failed[t])
            continue;
        unsigned n = vdev_nleaves(top), usable = 0;
        for (unsigned i = 0; i < n && i < 32; i++)
            usable += vdev_usable(vdev_leaf(top, i)) && !(failed[t] >> i & 1);
        unsigned need = top->kind == VDEV_KIND_RAIDZ ? n - top->nparity : 1;
        if (usable < need) {
            blog_err("pool '%s': the labels recording who missed txg %llu could not be "
                     "written to enough devices of top-level vdev %u (%u of %u took them, "
                     "%u needed): txg %llu does not commit",
                     p->name, (unsigned long long)txg, t, usable, n, need, (unsigned long long)txg);
            return -EIO;
        }
    }
    for (unsigned t = 0; t < nt && t < BLK_MAX_TOPS; t++) {
        struct vdev *top = p->io.top[t].vd;
        if (!noted[t] || !failed[t])
            continue;
        bool f[32] = {false};
        for (unsigned i = 0; i < vdev_nleaves(top) && i < 32; i++) {
            f[i] = failed[t] >> i & 1;
            if (f[i])
                blog_warn("pool '%s': device %u/%u (%016llx) could not write its label before "
                          "txg %llu: FAULTED (it does not take that txg's uberblock)", p->name,
                          t, i, (unsigned long long)vdev_leaf(top, i)->guid,
                          (unsigned long long)txg);
        }
        vdev_fault_failed(top, f);
    }
    pool_tops_state(p);
    return 0;
}

int dtl_note_missed(bs_pool *p, uint64_t txg)
{
    unsigned nt = atomic_load(&p->io.ntops), noted = 0;
    bool top_noted[BLK_MAX_TOPS] = {false};
    char names[256] = "";
    size_t w = 0;
    for (unsigned t = 0; t < nt && t < BLK_MAX_TOPS; t++) {
        struct vdev *top = p->io.top[t].vd;
        if (vdev_nleaves(top) < 2)
            continue; /* no redundancy: the txg cannot commit without it */
        for (unsigned i = 0; i < vdev_nleaves(top); i++) {
            struct vdev *l = vdev_leaf(top, i);
            if (vdev_usable(l)) {
                l->away_noted = false;
                continue;
            }
            if (l->away_noted)
                continue;
            l->away_noted = true;
            dtl_mark_missed(p, l, txg, txg);
            top_noted[t] = true;
            noted++;
            /* by place and guid: a path may change under p->lock meanwhile */
            if (w < sizeof names)
                w += (size_t)snprintf(names + w, sizeof names - w, "%s%u/%u (%016llx)",
                                      w ? ", " : "", t, i, (unsigned long long)l->guid);
        }
    }
    if (!noted)
        return 0;
    blog_warn("pool '%s': device%s %s (top/index) missed txg %llu: recorded in the labels "
              "before it commits (resilvered when back)", p->name, noted > 1 ? "s" : "", names,
              (unsigned long long)txg);
    uint32_t failed[BLK_MAX_TOPS] = {0};
    int r = pool_write_labels_failed(p, failed);
    if (r < 0)
        return r;
    return fault_unrecorded(p, txg, top_noted, failed);
}
