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
 *    more txgs behind, which import does count. */
#include <stdio.h>
#include <stdlib.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "store/resilver.h"

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
    if (have < last) {
        dtl_add(l, have + 1, last);
        atomic_store(&l->stale, true);
        atomic_fetch_add(&l->stale_gen, 1); /* a running scrub must not clear it */
    }
    atomic_store(&l->state, VDEV_STATE_ONLINE);
    pthread_mutex_unlock(&p->txg.sync_mutex);
}

int dtl_note_missed(bs_pool *p, uint64_t txg)
{
    unsigned nt = atomic_load(&p->io.ntops), noted = 0;
    char names[256] = "";
    size_t w = 0;
    for (unsigned t = 0; t < nt; t++) {
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
            dtl_add(l, txg, txg);
            atomic_store(&l->stale, true);
            atomic_fetch_add(&l->stale_gen, 1); /* a running resilver must not clear it */
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
    return pool_write_labels(p, false);
}
