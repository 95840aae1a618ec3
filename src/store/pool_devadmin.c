/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Administration of a pool's devices while it runs: fault-injection knobs
 * (tests), finding a leaf by path or pool-wide index, offline and online.
 * The tree itself (specs, labels, import) is pool_vdev.c's; replace, attach
 * and detach are vdev_replace.c's.  Leaf paths change only under p->lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "store/crashpt.h"
#include "store/pool_impl.h"
#include "store/resilver.h"

/* A "NAME=MS" delay knob (0..10000 ms): 1 and *ms if knob is one, 0 if
 * it is another knob, -EINVAL (err set) if its value is bad. */
static int delay_knob(const char *knob, const char *name, unsigned *ms, struct berr *err)
{
    size_t n = strlen(name);
    if (strncmp(knob, name, n) != 0 || knob[n] != '=')
        return 0;
    char *end;
    errno = 0;
    unsigned long v = strtoul(knob + n + 1, &end, 10);
    if (errno || end == knob + n + 1 || *end || v > 10000)
        return berr_set(err, EINVAL, "%s takes 0..10000", name);
    *ms = (unsigned)v;
    return 1;
}

int bs_pool_debug(bs_pool *p, const char *knob, struct berr *err)
{
    unsigned ms;
    int k;
    if (knob && (k = delay_knob(knob, "resilver_delay_ms", &ms, err)) != 0)
        return k < 0 ? k : scan_set_delay(p, ms, err);
    if (knob && (k = delay_knob(knob, "dtl_clear_delay_ms", &ms, err)) != 0) {
        if (k > 0) /* dtl_clear_if sleeps this long between its check and its clear */
            atomic_store(&p->dtl_clear_delay_ms, ms);
        return k < 0 ? k : 0;
    }
    if (knob && strncmp(knob, "tree_crash=", 11) == 0) {
        if (strcmp(knob + 11, "on") && strcmp(knob + 11, "off"))
            return berr_set(err, EINVAL, "tree_crash takes on or off");
        replace_debug_crash(strcmp(knob + 11, "on") == 0);
        return 0;
    }
    if (knob && strncmp(knob, "crash_at=", 9) == 0)
        return crashpt_arm(knob + 9, err); /* process-wide: kills berthd there */
    unsigned n = pool_nleaves(p), first = 0, last = n;
    if (knob && strncmp(knob, "vdev=", 5) == 0) {
        char *end;
        errno = 0;
        unsigned long i = strtoul(knob + 5, &end, 10);
        if (errno || end == knob + 5 || *end != ' ' || i >= n)
            return berr_set(err, EINVAL, "'vdev=N KNOB': N must be a leaf index below %u", n);
        first = (unsigned)i;
        last = first + 1;
        knob = end + 1;
    }
    for (unsigned i = first; i < last; i++) {
        struct vdev *l = pool_leaf(p, i, NULL, NULL);
        if (l->fd < 0) {
            if (last - first == 1)
                return berr_set(err, ENXIO, "vdev %u (%s) is not present", i, l->path);
            continue;
        }
        int r = vdev_debug(l, knob, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* A leaf by path or pool-wide index: its top in *top, its index in the top
 * returned (or -errno). */
int pool_find_leaf(bs_pool *p, const char *path, unsigned *tn, struct berr *err)
{
    unsigned n = pool_nleaves(p), t, c;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(pool_leaf(p, i, &t, &c)->path, path) == 0) {
            *tn = t;
            return (int)c;
        }
    /* a damaged member shown by its path keeps its "missing-GUID" name */
    unsigned long long g;
    int used = 0;
    if (sscanf(path, "missing-%16llx%n", &g, &used) == 1 && !path[used])
        for (unsigned i = 0; i < n; i++) {
            struct vdev *l = pool_leaf(p, i, &t, &c);
            if (l->fd < 0 && l->guid == g) {
                *tn = t;
                return (int)c;
            }
        }
    char *end;
    unsigned long i = strtoul(path, &end, 10);
    if (*path && !*end && i < n) { /* a leaf index */
        pool_leaf(p, (unsigned)i, &t, &c);
        *tn = t;
        return (int)c;
    }
    return berr_set(err, ENOENT, "pool '%s' has no device %s", p->name, path);
}

static int find_leaf(bs_pool *p, const char *path, struct vdev **top, struct berr *err)
{
    unsigned t;
    int c = pool_find_leaf(p, path, &t, err);
    if (c >= 0)
        *top = p->io.top[t].vd;
    return c;
}

int bs_pool_offline(bs_pool *p, const char *path, struct berr *err)
{
    pthread_mutex_lock(&p->admin_lock);
    struct vdev *top = NULL;
    int i = find_leaf(p, path, &top, err);
    if (i >= 0 && top->kind == VDEV_KIND_LEAF) {
        i = berr_set(err, ENOTSUP, "%s has no redundancy in pool '%s' (a top-level vdev of "
                     "its own): it cannot go offline", top->path, p->name);
    } else if (i >= 0) {
        struct vdev *l = top->child[i];
        unsigned others = 0;
        for (unsigned k = 0; k < top->nchild; k++)
            others += (int)k != i && vdev_usable(top->child[k]) &&
                      !atomic_load(&top->child[k]->stale);
        /* the up-to-date leaves left must still hold every block */
        if (vdev_usable(l) && top->nchild - others > vdev_redundancy(top))
            i = berr_set(err, EBUSY, "taking %s offline would leave pool '%s' without an "
                         "up-to-date copy of its data", l->path, p->name);
        else
            atomic_store(&l->state, VDEV_STATE_OFFLINE);
        vdev_top_state(top);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return i < 0 ? i : 0;
}

/* Bring back a member that was missing at import: open it, check it is that
 * member, move its descriptor into the placeholder (published by the state
 * store last, readers skip it until then). */
static int reopen(bs_pool *p, struct vdev *ph, const char *path, struct berr *err)
{
    struct vdev *v;
    struct label_hdr h;
    int r = vdev_open(path, 0, false, &v, err);
    if (r < 0)
        return r;
    r = label_read_hdr(v, &h, err);
    if (r == 0 && (h.pool_guid != p->guid || h.vdev_guid != ph->guid))
        r = berr_set(err, EINVAL, "%s is not the missing member %s of pool '%s'", path, ph->path,
                     p->name);
    if (r == 0 && v->size < p->top_hdr[h.top_id < BLK_MAX_TOPS ? h.top_id : 0].dev_size)
        r = berr_set(err, ENOSPC, "%s is smaller than the pool's devices", path);
    if (r < 0) {
        vdev_close(v);
        return r;
    }
    pthread_mutex_lock(&p->lock);
    char *old = ph->path;
    ph->path = steal_ptr(v->path);
    v->path = old;
    ph->size = v->size;
    ph->is_blockdev = v->is_blockdev;
    ph->phys_sector_shift = v->phys_sector_shift;
    ph->fd = v->fd;
    v->fd = -1;
    pthread_mutex_unlock(&p->lock);
    vdev_close(v);
    return 0;
}

int bs_pool_online(bs_pool *p, const char *path, struct berr *err)
{
    pthread_mutex_lock(&p->admin_lock);
    struct vdev *top = NULL;
    int i = find_leaf(p, path, &top, NULL);
    if (i < 0) {
        /* a missing member given by its new path */
        for (unsigned t = 0; t < atomic_load(&p->io.ntops) && i < 0; t++) {
            struct vdev *tv = p->io.top[t].vd;
            for (unsigned k = 0; k < tv->nchild && i < 0; k++)
                if (tv->child[k]->fd < 0 && reopen(p, tv->child[k], path, NULL) == 0) {
                    i = (int)k;
                    top = tv;
                }
        }
        if (i < 0)
            i = berr_set(err, ENOENT, "%s is neither a device of pool '%s' nor one of its "
                     "missing members", path, p->name);
    }
    if (i >= 0 && top->kind == VDEV_KIND_LEAF) {
        i = berr_set(err, ENOTSUP, "%s is a top-level vdev of its own in pool '%s'; it is "
                     "always online", top->path, p->name);
    } else if (i >= 0) {
        struct vdev *l = top->child[i];
        /* a device whose labels were damaged at import, given by its path:
         * opened again (refused while its labels are still damaged) */
        bool own = l->label_damaged && strcmp(l->path, path) == 0;
        int rr = 0;
        if (l->fd < 0 && !own) {
            i = berr_set(err, ENXIO, "%s is missing: online it by its path", l->path);
        } else if (l->fd < 0 && (rr = reopen(p, l, path, err)) < 0) {
            i = rr;
        } else if (!vdev_usable(l)) {
            l->label_damaged = false;
            /* it missed writes: its DTL says which txgs, reads avoid it for
             * those, a resilver copies them, the next txg rewrites the
             * whole allocation map */
            unsigned t = 0;
            while (p->io.top[t].vd != top)
                t++;
            dtl_leaf_back(p, t, l);
            pool_refresh_stale(p);
        }
        vdev_top_state(top);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return i < 0 ? i : 0;
}
