/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vdev tree of a pool: parsing vdev specs, opening and labelling the
 * leaves at create, finding and assembling them at import (DEGRADED when a
 * member is missing and redundancy allows), per-leaf labels, status, fault
 * injection, online/offline.
 *
 * Conventions:
 *  - p->top_hdr[t] is top t's label template: everything but the per-leaf
 *    fields (vdev_guid, child_index, vdev_type), which pool_write_labels
 *    fills for each leaf;
 *  - every leaf of a top has the same layout (dev_size is the smallest
 *    member's), so its bitmap and uberblock rings sit at the same offsets on
 *    all of them; tops differ in size and layout (pool_tops.c);
 *  - a leaf is named pool-wide by its index over all tops (pool_leaf);
 *  - leaf paths change only under p->lock (online of a member that was
 *    missing); status copies them under it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "store/pool_impl.h"

#define MAX_LEAVES 32

int pool_vdev_spec(const char *const *vdevs, size_t n, struct vdev_spec *s, struct berr *err)
{
    memset(s, 0, sizeof *s);
    if (n == 0 || !vdevs[0])
        return berr_set(err, EINVAL, "no vdevs given");
    size_t first = 0;
    if (strcmp(vdevs[0], "mirror") == 0) {
        s->top_type = VDEV_TYPE_MIRROR;
        first = 1;
        if (n - first < 2)
            return berr_set(err, EINVAL, "a mirror needs at least two devices (got %zu)",
                            n - first);
    } else if (strncmp(vdevs[0], "raidz", 5) == 0) {
        const char *k = vdevs[0] + 5;
        if (*k == 0 || (k[0] >= '1' && k[0] <= '3' && k[1] == 0))
            s->nparity = *k ? (unsigned)(k[0] - '0') : 1; /* "raidz" is raidz1, as in ZFS */
        else
            return berr_set(err, EINVAL, "unknown layout '%s': use raidz1, raidz2 or raidz3",
                            vdevs[0]);
        s->top_type = VDEV_TYPE_RAIDZ;
        first = 1;
        if (n - first < s->nparity + 1)
            return berr_set(err, EINVAL, "raidz%u needs at least %u devices (got %zu)",
                            s->nparity, s->nparity + 1, n - first);
    } else if (n != 1) {
        return berr_set(err, ENOTSUP, "several devices need a layout: \"mirror DEV DEV...\" "
                        "or \"raidz1|raidz2|raidz3 DEV DEV...\" (striping over plain "
                        "devices is not supported)");
    }
    if (n - first > MAX_LEAVES)
        return berr_set(err, EINVAL, "at most %d devices per vdev (got %zu)", MAX_LEAVES,
                        n - first);
    for (size_t i = first; i < n; i++) {
        if (!vdevs[i] || !vdevs[i][0])
            return berr_set(err, EINVAL, "empty device path");
        for (size_t j = first; j < i; j++)
            if (strcmp(vdevs[i], vdevs[j]) == 0)
                return berr_set(err, EINVAL, "device %s is given twice", vdevs[i]);
        s->paths[s->n++] = vdevs[i];
    }
    return 0;
}

int pool_vdev_create(bs_pool *p, unsigned top, const struct vdev_spec *s, uint64_t size,
                     bool force, struct berr *err)
{
    struct vdev *leaves[MAX_LEAVES] = {NULL};
    struct label_hdr *h = &p->top_hdr[top];
    struct vdev **vd = &p->io.top[top].vd;
    int r = 0;
    for (unsigned i = 0; i < s->n && r == 0; i++) {
        r = vdev_open(s->paths[i], size, false, &leaves[i], err);
        if (r < 0)
            break;
        struct label_hdr old;
        /* a device of an add to this pool that never committed (its top is
         * not in the tree) may be taken again without force */
        if (label_read_hdr(leaves[i], &old, NULL) == 0 && old.state != POOL_STATE_DESTROYED &&
            !force && !(p->guid && old.pool_guid == p->guid && old.top_id >= top))
            r = berr_set(err, EEXIST, "device %s holds pool '%s'; use -f to overwrite",
                         s->paths[i], old.pool_name);
        leaves[i]->guid = pool_random_u64();
        h->child_guids[i] = leaves[i]->guid;
    }
    if (r < 0) {
        for (unsigned i = 0; i < s->n; i++)
            vdev_close(leaves[i]);
        return r;
    }
    h->nchildren = s->n;
    h->top_type = (uint8_t)s->top_type;
    h->nparity = (uint8_t)s->nparity;
    h->features_incompat = s->top_type ? LABEL_FEAT_VDEV_TREE : 0;
    if (s->top_type == VDEV_TYPE_RAIDZ)
        h->features_incompat |= LABEL_FEAT_RAIDZ;
    h->top_guid = s->top_type ? pool_random_u64() : leaves[0]->guid;
    h->vdev_guid = leaves[0]->guid;
    h->child_index = 0;
    h->vdev_type = leaves[0]->is_blockdev ? VDEV_TYPE_DISK : VDEV_TYPE_FILE;
    h->top_id = top;
    if (!s->top_type) {
        *vd = leaves[0];
        return 0;
    }
    if (s->top_type == VDEV_TYPE_RAIDZ)
        return vdev_raidz_new(leaves, s->n, s->nparity, vd, err);
    return vdev_mirror_new(leaves, s->n, vd, err);
}

/* The label of leaf i of top t: the template with the leaf's own fields. */
static void leaf_hdr(bs_pool *p, unsigned t, unsigned i, struct label_hdr *out)
{
    struct vdev *top = p->io.top[t].vd;
    struct vdev *l = vdev_leaf(top, i);
    *out = p->top_hdr[t];
    out->vdev_guid = p->top_hdr[t].child_guids[i];
    out->child_index = i;
    out->vdev_type = l->is_blockdev ? VDEV_TYPE_DISK : VDEV_TYPE_FILE;
    /* which members missed writes: persisted, so that a later import (even
     * of a stale member alone) knows it is not current */
    out->stale_mask = 0;
    for (unsigned k = 0; k < vdev_nleaves(top) && k < 32; k++)
        if (atomic_load(&vdev_leaf(top, k)->stale))
            out->stale_mask |= 1u << k;
}

/* pool_write_labels for one top: 0 if at least one of its leaves took it. */
static int write_top_labels(bs_pool *p, unsigned t, bool wipe_first)
{
    struct vdev *top = p->io.top[t].vd;
    unsigned n = vdev_nleaves(top), ok = 0;
    int first = 0;
    for (unsigned i = 0; i < n; i++) {
        struct vdev *l = vdev_leaf(top, i);
        if (!vdev_usable(l))
            continue;
        struct label_hdr h;
        leaf_hdr(p, t, i, &h);
        int r = wipe_first ? label_wipe(l) : 0;
        if (r == 0)
            r = label_write_hdr(l, &h);
        if (r == 0)
            r = vdev_flush(l);
        if (r == 0)
            ok++;
        else if (!first)
            first = r;
    }
    return ok ? 0 : first ? first : -EIO;
}

int pool_write_labels(bs_pool *p, bool wipe_first)
{
    int ret = 0;
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++) {
        int r = write_top_labels(p, t, wipe_first);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

/* Labels of one top not (yet) published in io.ntops (pool add). */
int pool_write_top_labels(bs_pool *p, unsigned t, bool wipe_first)
{
    return write_top_labels(p, t, wipe_first);
}

int pool_wipe_labels(bs_pool *p)
{
    unsigned n = pool_nleaves(p);
    int ret = 0;
    for (unsigned i = 0; i < n; i++) {
        struct vdev *l = pool_leaf(p, i, NULL, NULL);
        if (l->fd < 0)
            continue;
        int r = label_wipe(l);
        if (r == 0)
            r = vdev_flush(l);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

/* ---- import ---- */

/* Do two leaves' labels describe the same pool and tree? */
static bool same_tree(const struct label_hdr *a, const struct label_hdr *b)
{
    return a->pool_guid == b->pool_guid && a->top_guid == b->top_guid &&
           a->top_type == b->top_type && a->nchildren == b->nchildren &&
           a->nparity == b->nparity &&
           a->ashift == b->ashift && a->dev_size == b->dev_size &&
           memcmp(a->child_guids, b->child_guids, sizeof a->child_guids) == 0;
}

/* Assemble top `t` from the n leaves found for it (labels hdrs[], all of
 * that top, agreeing): placeholders for missing members, refused when its
 * redundancy cannot cover them.  Takes the leaves (closed on error). */
static int assemble_top(bs_pool *p, unsigned t, struct vdev **found, const struct label_hdr *hdrs,
                        size_t n, struct berr *err)
{
    int r = 0;
    struct vdev *slot[MAX_LEAVES] = {NULL};
    const struct label_hdr *h = &hdrs[0];
    for (size_t i = 0; r == 0 && i < n; i++) {
        uint64_t k = hdrs[i].child_index;
        if (slot[k])
            r = berr_set(err, EINVAL, "%s and %s are the same member of pool '%s'",
                         slot[k]->path, found[i]->path, h->pool_name);
        slot[k] = found[i];
        found[i]->guid = hdrs[i].vdev_guid;
    }
    /* members any label records as stale stay stale until a scrub: their
     * uberblocks may be new (they took later txgs) but blocks are missing */
    uint32_t stale = 0;
    for (size_t i = 0; r == 0 && i < n; i++)
        stale |= hdrs[i].stale_mask;
    for (size_t i = 0; r == 0 && i < n; i++)
        if (hdrs[i].child_index < 32 && (stale >> hdrs[i].child_index) & 1)
            atomic_store(&found[i]->stale, true);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            vdev_close(found[i]);
        return r;
    }
    p->top_hdr[t] = *h;
    unsigned missing = 0;
    char names[256] = "";
    size_t w = 0;
    for (uint64_t k = 0; k < h->nchildren; k++) {
        if (slot[k])
            continue;
        char desc[64];
        snprintf(desc, sizeof desc, "missing-%016llx", (unsigned long long)h->child_guids[k]);
        if (w < sizeof names)
            w += (size_t)snprintf(names + w, sizeof names - w, "%s%s", missing ? ", " : "",
                                  desc);
        missing++;
        slot[k] = vdev_missing(desc, h->child_guids[k]);
        if (!slot[k])
            r = berr_set(err, ENOMEM, "out of memory");
    }
    /* how many members the layout can do without */
    unsigned spare = h->top_type == VDEV_TYPE_RAIDZ    ? h->nparity
                     : h->top_type == VDEV_TYPE_MIRROR ? (unsigned)h->nchildren - 1
                                                       : 0;
    if (r == 0 && missing > spare)
        r = berr_set(err, ENXIO, "pool '%s' cannot be imported: %u of the %llu devices of its "
                     "top-level vdev %u are missing (%s) and its redundancy covers %u",
                     h->pool_name, missing, (unsigned long long)h->nchildren, t, names, spare);
    if (r < 0) {
        for (uint64_t k = 0; k < h->nchildren; k++)
            vdev_close(slot[k]);
        return r;
    }
    struct vdev **vd = &p->io.top[t].vd;
    if (h->top_type == 0) {
        *vd = slot[0];
        return 0;
    }
    if (h->top_type == VDEV_TYPE_RAIDZ)
        r = vdev_raidz_new(slot, (unsigned)h->nchildren, h->nparity, vd, err);
    else
        r = vdev_mirror_new(slot, (unsigned)h->nchildren, vd, err);
    if (r == 0 && missing)
        blog_warn("pool '%s' imported DEGRADED: %s", h->pool_name, names);
    return r;
}

int pool_vdev_import(bs_pool *p, const char *const *paths, size_t n, bool found_top[BLK_MAX_TOPS],
                     struct berr *err)
{
    enum { MAX_PATHS = MAX_LEAVES * BLK_MAX_TOPS };
    int r = 0;
    memset(found_top, 0, BLK_MAX_TOPS * sizeof *found_top);
    if (n == 0 || n > MAX_PATHS)
        return berr_set(err, EINVAL, "give 1 to %d device paths (got %zu)", MAX_PATHS, n);
    struct vdev **found = calloc(n, sizeof *found);
    struct label_hdr *hdrs = calloc(n, sizeof *hdrs);
    const char **present = calloc(n, sizeof *present);
    if (!found || !hdrs || !present) {
        free(found);
        free(hdrs);
        free(present);
        return berr_set(err, ENOMEM, "out of memory");
    }
    /* a member path that no longer exists is a missing member (the others'
     * labels say which); the pool imports DEGRADED if redundancy allows */
    size_t np = 0;
    struct berr gone = {0};
    for (size_t i = 0; i < n; i++) {
        if (n > 1 && access(paths[i], F_OK) < 0 && errno == ENOENT) {
            if (!gone.code)
                berr_set(&gone, ENOENT, "%s does not exist", paths[i]);
            continue;
        }
        present[np++] = paths[i];
    }
    if (np == 0)
        r = berr_set(err, ENOENT, "none of the devices exists (%s)", gone.msg);
    paths = present;
    n = np;
    size_t first_of[BLK_MAX_TOPS];
    for (size_t i = 0; i < n && r == 0; i++) {
        r = vdev_open(paths[i], 0, false, &found[i], err);
        if (r < 0)
            break;
        r = label_read_hdr(found[i], &hdrs[i], err);
        unsigned t = hdrs[i].top_id;
        if (r == -ENOENT)
            r = berr_set(err, ENOENT, "%s holds no berth pool", paths[i]);
        else if (r < 0)
            berr_wrap(err, "cannot import from %s", paths[i]);
        else if (i > 0 && hdrs[i].pool_guid != hdrs[0].pool_guid)
            r = berr_set(err, EINVAL, "%s and %s belong to different pools ('%s', '%s')",
                         paths[0], paths[i], hdrs[0].pool_name, hdrs[i].pool_name);
        else if (found_top[t] && !same_tree(&hdrs[first_of[t]], &hdrs[i]))
            r = berr_set(err, EILSEQ, "the labels of %s and %s disagree about the devices "
                         "of pool '%s'", paths[first_of[t]], paths[i], hdrs[0].pool_name);
        else if (hdrs[i].ashift != hdrs[0].ashift)
            r = berr_set(err, EILSEQ, "%s and %s of pool '%s' have different sector sizes",
                         paths[0], paths[i], hdrs[0].pool_name);
        else if (!found_top[t]) {
            found_top[t] = true;
            first_of[t] = i;
        }
    }
    /* each top from its own leaves (taken by assemble_top) */
    struct vdev **grp = r == 0 ? calloc(n, sizeof *grp) : NULL;
    struct label_hdr *gh = r == 0 ? calloc(n, sizeof *gh) : NULL;
    if (r == 0 && (!grp || !gh))
        r = berr_set(err, ENOMEM, "out of memory");
    for (unsigned t = 0; r == 0 && t < BLK_MAX_TOPS; t++) {
        if (!found_top[t])
            continue;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (found[i] && hdrs[i].top_id == t) {
                grp[k] = steal_ptr(found[i]);
                gh[k++] = hdrs[i];
            }
        r = assemble_top(p, t, grp, gh, k, err);
        if (r < 0)
            found_top[t] = false;
    }
    free(grp);
    free(gh);
    for (size_t i = 0; i < n; i++)
        vdev_close(found[i]);
    if (r < 0) {
        for (unsigned t = 0; t < BLK_MAX_TOPS; t++) {
            if (found_top[t])
                vdev_close(steal_ptr(p->io.top[t].vd));
            found_top[t] = false;
        }
    }
    free(found);
    free(hdrs);
    free(present);
    return r;
}

static int ub_cmp_desc(const void *a, const void *b)
{
    const struct uberblock *x = a, *y = b;
    return x->txg < y->txg ? 1 : x->txg > y->txg ? -1 : 0;
}

int pool_read_ubs(bs_pool *p, struct uberblock **out)
{
    unsigned n = pool_nleaves(p);
    struct uberblock *all = NULL;
    size_t total = 0;
    uint64_t newest[BLK_MAX_TOPS] = {0}; /* per top: a crash while the uberblock went to
                                           the tops one after the other leaves whole
                                           tops one txg behind, which is not stale */
    _cleanup_free_ uint64_t *best = calloc(n ? n : 1, sizeof *best);
    int last = -EIO;
    *out = NULL;
    if (!best)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        unsigned t;
        struct vdev *l = pool_leaf(p, i, &t, NULL);
        struct uberblock *u = NULL;
        if (l->fd < 0)
            continue;
        int k = label_read_ubs(l, &p->top_hdr[t], &u);
        if (k < 0) {
            last = k;
            continue;
        }
        struct uberblock *m = realloc(all, (total + (size_t)k + 1) * sizeof *m);
        if (!m) {
            free(u);
            free(all);
            return -ENOMEM;
        }
        all = m;
        if (k > 0)
            memcpy(all + total, u, (size_t)k * sizeof *u);
        total += (size_t)k;
        best[i] = k > 0 ? u[0].txg : 0;
        newest[t] = MAX(newest[t], best[i]);
        free(u);
        last = 0;
    }
    if (!all)
        return last;
    qsort(all, total, sizeof *all, ub_cmp_desc);
    size_t k = 0;
    for (size_t i = 0; i < total; i++)
        if (k == 0 || all[k - 1].txg != all[i].txg)
            all[k++] = all[i];
    /* a leaf that missed the newest txgs was away: read it last, and let a
     * scrub repair it (a top added by a pool add that never committed has
     * no uberblock at all: it is dropped, not stale) */
    for (unsigned i = 0; i < n; i++) {
        unsigned t;
        struct vdev *l = pool_leaf(p, i, &t, NULL);
        if (l->fd >= 0 && best[i] < newest[t] && vdev_nleaves(p->io.top[t].vd) > 1)
            atomic_store(&l->stale, true);
    }
    pool_tops_state(p);
    *out = all;
    return (int)k;
}

void pool_refresh_stale(bs_pool *p)
{
    bool any = false;
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++) {
        struct vdev *top = p->io.top[t].vd;
        bool stale = false;
        for (unsigned i = 0; i < vdev_nleaves(top); i++)
            stale |= atomic_load(&vdev_leaf(top, i)->stale);
        if (stale && p->io.top[t].alloc && !p->readonly)
            alloc_dirty_all(p->io.top[t].alloc);
        any |= stale;
    }
    if (!any || p->readonly || !p->io.top[0].alloc)
        return;
    (void)pool_write_labels(p, false); /* record who is stale before new txgs land */
    txg_mark_dirty(p);
}

/* pool_check_fresh for one top. */
static int check_fresh_top(bs_pool *p, struct vdev *top, struct berr *err)
{
    unsigned n = vdev_nleaves(top), fresh = 0, present = 0;
    if (n < 2)
        return 0;
    char stale[512] = "";
    size_t w = 0;
    for (unsigned i = 0; i < n; i++) {
        struct vdev *l = vdev_leaf(top, i);
        if (l->fd < 0)
            continue;
        present++;
        if (!atomic_load(&l->stale))
            fresh++;
        else if (w < sizeof stale)
            w += (size_t)snprintf(stale + w, sizeof stale - w, "%s%s", w ? ", " : "", l->path);
    }
    unsigned need = top->kind == VDEV_KIND_RAIDZ ? n - top->nparity : 1;
    if (fresh >= need)
        return 0;
    return berr_set(err, ENXIO,
                    "pool '%s': %s missed writes while away and %s not repaired; the "
                    "device%s with the newest data %s missing: bring %s back (importing "
                    "without %s would go back in time)",
                    p->name, stale, present - fresh == 1 ? "is" : "are", need - fresh == 1 ? "" : "s",
                    need - fresh == 1 ? "is" : "are", need - fresh == 1 ? "it" : "them",
                    need - fresh == 1 ? "it" : "them");
}

int pool_check_fresh(bs_pool *p, struct berr *err)
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++) {
        int r = check_fresh_top(p, p->io.top[t].vd, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- status ---- */

void pool_vdev_stats(bs_pool *p, bool faulted, uint64_t size, struct bs_pool_stats *o)
{
    enum vdev_state top = pool_tops_state(p);
    unsigned n = pool_nleaves(p);
    struct vdev *top0 = p->io.top[0].vd;
    if (top0->kind == VDEV_KIND_RAIDZ)
        snprintf(o->layout, sizeof o->layout, "raidz%u", top0->nparity);
    else
        snprintf(o->layout, sizeof o->layout, "%s",
                 top0->kind == VDEV_KIND_MIRROR ? "mirror" : "single");
    o->nvdevs = MIN(n, (unsigned)BS_POOL_MAX_LEAVES_SHOWN);
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < n; i++) {
        unsigned t;
        struct vdev *v = pool_leaf(p, i, &t, NULL);
        enum vdev_state s = (enum vdev_state)atomic_load(&v->state);
        o->read_errors += atomic_load(&v->ctr.read_errors);
        o->write_errors += atomic_load(&v->ctr.write_errors);
        o->checksum_errors += atomic_load(&v->ctr.checksum_errors);
        if (i >= BS_POOL_MAX_LEAVES_SHOWN)
            continue;
        struct bs_vdev_stats *vs = &o->vdevs[i];
        snprintf(vs->path, sizeof vs->path, "%s", v->path);
        snprintf(vs->type, sizeof vs->type, "%s", v->is_blockdev ? "disk" : "file");
        if (faulted && p->io.top[t].vd->kind == VDEV_KIND_LEAF)
            s = VDEV_STATE_FAULTED;
        snprintf(vs->state, sizeof vs->state, "%s", vdev_state_name(s));
        vs->stale = atomic_load(&v->stale);
        vs->guid = v->guid;
        vs->size = size;
        vs->read_errors = atomic_load(&v->ctr.read_errors);
        vs->write_errors = atomic_load(&v->ctr.write_errors);
        vs->checksum_errors = atomic_load(&v->ctr.checksum_errors);
        vs->repaired_bytes = atomic_load(&v->ctr.repaired_bytes);
        vs->reads = atomic_load(&v->ctr.reads);
        vs->writes = atomic_load(&v->ctr.writes);
        vs->bytes_read = atomic_load(&v->ctr.bytes_read);
        vs->bytes_written = atomic_load(&v->ctr.bytes_written);
    }
    pthread_mutex_unlock(&p->lock);
    for (unsigned t = 0; t < atomic_load(&p->io.ntops); t++)
        if (p->io.top[t].vd->kind != VDEV_KIND_LEAF)
            o->checksum_errors += atomic_load(&p->io.top[t].vd->ctr.checksum_errors);
    const char *st = faulted ? "FAULTED" : p->readonly ? "READONLY"
                   : top == VDEV_STATE_ONLINE ? "ONLINE" : vdev_state_name(top);
    snprintf(o->state, sizeof o->state, "%s", st);
}

/* ---- fault injection, online/offline ---- */

int bs_pool_debug(bs_pool *p, const char *knob, struct berr *err)
{
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
static int find_leaf(bs_pool *p, const char *path, struct vdev **top, struct berr *err)
{
    unsigned n = pool_nleaves(p), t, c;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(pool_leaf(p, i, &t, &c)->path, path) == 0) {
            *top = p->io.top[t].vd;
            return (int)c;
        }
    char *end;
    unsigned long i = strtoul(path, &end, 10);
    if (*path && !*end && i < n) { /* a leaf index */
        pool_leaf(p, (unsigned)i, &t, &c);
        *top = p->io.top[t].vd;
        return (int)c;
    }
    return berr_set(err, ENOENT, "pool '%s' has no device %s", p->name, path);
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
        if (l->fd < 0) {
            i = berr_set(err, ENXIO, "%s is missing: online it by its path", l->path);
        } else if (!vdev_usable(l)) {
            /* it missed writes: reads of it are verified, a scrub repairs
             * the blocks, the next txg rewrites the whole allocation map */
            atomic_store(&l->stale, true);
            atomic_fetch_add(&l->stale_gen, 1); /* a running scrub must not clear it */
            atomic_store(&l->state, VDEV_STATE_ONLINE);
            pool_refresh_stale(p);
        }
        vdev_top_state(top);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return i < 0 ? i : 0;
}
