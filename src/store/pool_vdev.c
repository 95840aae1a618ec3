/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vdev tree of a pool: parsing vdev specs, opening and labelling the
 * leaves at create, finding and assembling them at import (DEGRADED when a
 * member is missing and redundancy allows), per-leaf labels, status, fault
 * injection, online/offline.
 *
 * Conventions:
 *  - p->hdr is the pool's label template: everything but the per-leaf
 *    fields (vdev_guid, child_index, vdev_type), which pool_write_labels
 *    fills for each leaf;
 *  - every leaf has the same layout (dev_size is the smallest member's), so
 *    the bitmap and uberblock rings sit at the same offsets on all of them;
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
#include "store/resilver.h"

#define MAX_LEAVES 32

/* Serialises label writes (all pools: rare), so that label_gen orders them
 * and two writers never interleave their four copies. */
static pthread_mutex_t label_lock = PTHREAD_MUTEX_INITIALIZER;

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

static void set_guid_sum(bs_pool *p)
{
    p->guid_sum = 0;
    for (uint64_t i = 0; i < p->hdr.nchildren; i++)
        p->guid_sum += p->hdr.child_guids[i];
}

int pool_vdev_create(bs_pool *p, const struct vdev_spec *s, uint64_t size, bool force,
                     struct berr *err)
{
    struct vdev *leaves[MAX_LEAVES] = {NULL};
    struct label_hdr *h = &p->hdr;
    int r = 0;
    for (unsigned i = 0; i < s->n && r == 0; i++) {
        r = vdev_open(s->paths[i], size, false, &leaves[i], err);
        if (r < 0)
            break;
        struct label_hdr old;
        if (label_read_hdr(leaves[i], &old, NULL) == 0 && old.state != POOL_STATE_DESTROYED &&
            !force)
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
    set_guid_sum(p);
    if (!s->top_type) {
        p->vd = leaves[0];
        return 0;
    }
    if (s->top_type == VDEV_TYPE_RAIDZ)
        return vdev_raidz_new(leaves, s->n, s->nparity, &p->vd, err);
    return vdev_mirror_new(leaves, s->n, &p->vd, err);
}

/* The label of leaf i: the template with the leaf's own fields. */
static void leaf_hdr(bs_pool *p, unsigned i, struct label_hdr *out)
{
    struct vdev *l = vdev_leaf(p->vd, i);
    *out = p->hdr;
    out->vdev_guid = p->hdr.child_guids[i];
    out->child_index = i;
    out->vdev_type = l->is_blockdev ? VDEV_TYPE_DISK : VDEV_TYPE_FILE;
    /* which members missed writes: persisted, so that a later import (even
     * of a stale member alone) knows it is not current */
    out->stale_mask = 0;
    memset(out->dtl, 0, sizeof out->dtl);
    for (unsigned k = 0; k < vdev_nleaves(p->vd) && k < 32; k++) {
        struct vdev *c = vdev_leaf(p->vd, k);
        if (atomic_load(&c->stale))
            out->stale_mask |= 1u << k;
        /* the txgs each member missed, and how far their resilver got */
        out->dtl[k].hi = atomic_load(&c->dtl_hi);
        out->dtl[k].lo = out->dtl[k].hi ? MAX(atomic_load(&c->dtl_lo), 1) : 0;
        if (out->dtl[k].lo > out->dtl[k].hi)
            out->dtl[k].lo = out->dtl[k].hi;
    }
    /* a running resilver's durable position; else the template's (one
     * interrupted by an export, kept for the next import) */
    struct bs_scrub_pos pos;
    if (scan_label_pos(p, &pos) && pos.part >= 0 && pos.part <= 1) {
        out->rsv_valid = 1;
        out->rsv_id = pos.id;
        out->rsv_blk = pos.blk;
        out->rsv_part = (uint32_t)pos.part;
    }
    if (!out->rsv_valid) {
        out->rsv_id = out->rsv_blk = 0;
        out->rsv_part = 0;
    }
    /* a replace waiting to detach the old mirror member (by guids) */
    char np[4096];
    uint64_t og = scan_replacing(p, np, sizeof np), ng = 0;
    bool have_old = false;
    for (unsigned k = 0; og && k < vdev_nleaves(p->vd); k++) {
        struct vdev *c = vdev_leaf(p->vd, k);
        have_old |= c->guid == og;
        if (strcmp(c->path, np) == 0)
            ng = c->guid;
    }
    out->replace_old = have_old && ng && ng != og ? og : 0;
    out->replace_new = out->replace_old ? ng : 0;
    if (!og) {
        /* none running yet (import): the one the labels had, if its members
         * are still there */
        bool fo = false, fn = false;
        for (unsigned k = 0; p->hdr.replace_old && k < vdev_nleaves(p->vd); k++) {
            fo |= vdev_leaf(p->vd, k)->guid == p->hdr.replace_old;
            fn |= vdev_leaf(p->vd, k)->guid == p->hdr.replace_new;
        }
        out->replace_old = fo && fn ? p->hdr.replace_old : 0;
        out->replace_new = fo && fn ? p->hdr.replace_new : 0;
    }
}

int pool_write_labels(bs_pool *p, bool wipe_first)
{
    unsigned n = vdev_nleaves(p->vd), ok = 0;
    int first = 0;
    pthread_mutex_lock(&label_lock);
    p->hdr.label_gen++;
    for (unsigned i = 0; i < n; i++) {
        struct vdev *l = vdev_leaf(p->vd, i);
        if (!vdev_usable(l))
            continue;
        struct label_hdr h;
        leaf_hdr(p, i, &h);
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
    pthread_mutex_unlock(&label_lock);
    return ok ? 0 : first ? first : -EIO;
}

int pool_wipe_labels(bs_pool *p)
{
    unsigned n = vdev_nleaves(p->vd);
    int ret = 0;
    for (unsigned i = 0; i < n; i++) {
        struct vdev *l = vdev_leaf(p->vd, i);
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

static uint64_t tree_guid_sum(const struct label_hdr *h)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < h->nchildren; i++)
        sum += h->child_guids[i];
    return sum;
}

/* Is the vdev tree of label c in force: has a txg from its config_txg on
 * been committed with its device set (uberblock guid sum)?  Trees are
 * switched (replace, attach, detach: vdev_replace.c) by writing every label
 * with config_txg T+1 and then committing txg T+1; before that commit the
 * old tree holds. */
static bool config_committed(struct vdev **found, const struct label_hdr *hdrs, size_t n,
                             const struct label_hdr *c)
{
    uint64_t sum = tree_guid_sum(c);
    for (size_t j = 0; j < n; j++) {
        struct uberblock *u = NULL;
        int k = label_read_ubs(found[j], &hdrs[j], &u);
        bool hit = false;
        for (int i = 0; i < k && !hit; i++)
            hit = u[i].txg >= c->config_txg && u[i].guid_sum == sum;
        free(u);
        if (hit)
            return true;
    }
    return false;
}

static bool newer_label(const struct label_hdr *a, const struct label_hdr *b)
{
    return a->config_txg != b->config_txg ? a->config_txg > b->config_txg
                                          : a->label_gen > b->label_gen;
}

/* The label whose tree is in force: the newest committed configuration
 * (the newest label of it), or the newest configuration if none is
 * committed (a pool whose members all took the new labels but not yet the
 * txg: the old members are then all in the new tree too). */
static size_t pick_config(struct vdev **found, const struct label_hdr *hdrs, size_t n)
{
    bool same = true;
    for (size_t i = 1; i < n; i++)
        same &= hdrs[i].config_txg == hdrs[0].config_txg;
    size_t best = SIZE_MAX, newest = 0;
    for (size_t i = 0; i < n; i++) {
        if (newer_label(&hdrs[i], &hdrs[newest]))
            newest = i;
        if (best != SIZE_MAX && !newer_label(&hdrs[i], &hdrs[best]))
            continue;
        if (same || config_committed(found, hdrs, n, &hdrs[i]))
            best = i;
    }
    return best == SIZE_MAX ? newest : best;
}

int pool_vdev_import(bs_pool *p, const char *const *paths, size_t n, struct berr *err)
{
    struct vdev *found[MAX_LEAVES] = {NULL};
    struct label_hdr hdrs[MAX_LEAVES];
    int r = 0;
    if (n == 0 || n > MAX_LEAVES)
        return berr_set(err, EINVAL, "give 1 to %d device paths (got %zu)", MAX_LEAVES, n);
    /* a member path that no longer exists is a missing member (the others'
     * labels say which); the pool imports DEGRADED if redundancy allows */
    const char *present[MAX_LEAVES];
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
        return berr_set(err, ENOENT, "none of the devices exists (%s)", gone.msg);
    paths = present;
    n = np;
    size_t unlabeled = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        r = vdev_open(paths[i], 0, false, &found[i], err);
        if (r < 0)
            break;
        r = label_read_hdr(found[i], &hdrs[i], err);
        if (r == -ENOENT && n > 1 && unlabeled + 1 < n) {
            /* a device that left the pool (replace, detach: its label was
             * wiped) given with its members: not one of them */
            blog_warn("%s holds no berth pool: ignored", paths[i]);
            vdev_close(steal_ptr(found[i]));
            unlabeled++;
            r = 0;
            continue;
        }
        if (r == -ENOENT)
            r = berr_set(err, ENOENT, "%s holds no berth pool", paths[i]);
        else if (r < 0)
            berr_wrap(err, "cannot import from %s", paths[i]);
    }
    /* close the gaps the unlabeled ones left */
    size_t m = 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (!found[i])
            continue;
        found[m] = found[i];
        hdrs[m] = hdrs[i];
        present[m] = present[i];
        m++;
    }
    if (r == 0) {
        for (size_t i = m; i < n; i++)
            found[i] = NULL;
        n = m;
    }
    for (size_t i = 1; r == 0 && i < n; i++)
        if (hdrs[i].pool_guid != hdrs[0].pool_guid)
            r = berr_set(err, EINVAL, "%s and %s belong to different pools ('%s', '%s')",
                         paths[0], paths[i], hdrs[0].pool_name, hdrs[i].pool_name);
    /* the vdev tree in force: labels may disagree after a crash in the
     * middle of a replace, attach or detach (pick_config) */
    size_t wi = r == 0 ? pick_config(found, hdrs, n) : 0;
    const struct label_hdr *h = &hdrs[wi];
    for (size_t i = 0; r == 0 && i < n; i++)
        if (hdrs[i].config_txg == h->config_txg && !same_tree(h, &hdrs[i]))
            r = berr_set(err, EILSEQ, "the labels of %s and %s disagree about the devices "
                         "of pool '%s'", paths[wi], paths[i], h->pool_name);
    struct vdev *slot[MAX_LEAVES] = {NULL};
    for (size_t i = 0; r == 0 && i < n; i++) {
        int k = -1;
        for (uint64_t j = 0; j < h->nchildren; j++)
            if (h->child_guids[j] == hdrs[i].vdev_guid)
                k = (int)j;
        if (k < 0) {
            /* replaced or detached before the configuration in force */
            blog_warn("%s is no longer a device of pool '%s' (replaced or detached): ignored",
                      paths[i], h->pool_name);
            vdev_close(steal_ptr(found[i]));
            continue;
        }
        if (slot[k])
            r = berr_set(err, EINVAL, "%s and %s are the same member of pool '%s'",
                         slot[k]->path, paths[i], h->pool_name);
        slot[k] = found[i];
        found[i]->guid = hdrs[i].vdev_guid;
    }
    /* members the newest labels record as stale stay stale until a resilver
     * or scrub: their uberblocks may be new (they took later txgs) but
     * blocks are missing (their DTL says which txgs) */
    uint32_t stale = 0;
    struct label_dtl dtl[MAX_LEAVES];
    memset(dtl, 0, sizeof dtl);
    bool mixed = false;
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (!found[i])
            continue;
        if (hdrs[i].config_txg != h->config_txg || hdrs[i].label_gen != h->label_gen) {
            mixed = true;
            continue;
        }
        stale |= hdrs[i].stale_mask;
        for (uint64_t k = 0; k < h->nchildren; k++) {
            const struct label_dtl *d = &hdrs[i].dtl[k];
            if (!d->hi)
                continue;
            dtl[k].lo = dtl[k].hi ? MIN(dtl[k].lo, d->lo) : d->lo;
            dtl[k].hi = MAX(dtl[k].hi, d->hi);
        }
    }
    for (uint64_t k = 0; r == 0 && k < h->nchildren; k++) {
        if (!slot[k])
            continue;
        if ((stale >> k) & 1)
            atomic_store(&slot[k]->stale, true);
        if (dtl[k].hi)
            dtl_add(slot[k], dtl[k].lo, dtl[k].hi);
    }
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            vdev_close(found[i]);
        return r;
    }
    p->hdr = *h;
    p->hdr.rewrite = mixed;
    set_guid_sum(p);
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
        r = berr_set(err, ENXIO, "pool '%s' cannot be imported: %u of its %llu devices are "
                     "missing (%s) and its redundancy covers %u", h->pool_name, missing,
                     (unsigned long long)h->nchildren, names, spare);
    if (r < 0) {
        for (uint64_t k = 0; k < h->nchildren; k++)
            vdev_close(slot[k]);
        return r;
    }
    if (h->top_type == 0) {
        p->vd = slot[0];
        return 0;
    }
    if (h->top_type == VDEV_TYPE_RAIDZ)
        r = vdev_raidz_new(slot, (unsigned)h->nchildren, h->nparity, &p->vd, err);
    else
        r = vdev_mirror_new(slot, (unsigned)h->nchildren, &p->vd, err);
    if (r == 0 && missing)
        blog_warn("pool '%s' imported DEGRADED: %s", h->pool_name, names);
    return r;
}

static int ub_cmp_desc(const void *a, const void *b)
{
    const struct uberblock *x = a, *y = b;
    return x->txg < y->txg ? 1 : x->txg > y->txg ? -1 : 0;
}

int pool_read_ubs(bs_pool *p, struct uberblock **out)
{
    unsigned n = vdev_nleaves(p->vd);
    struct uberblock *all = NULL;
    size_t total = 0;
    uint64_t best[MAX_LEAVES] = {0}, newest = 0;
    int last = -EIO;
    *out = NULL;
    for (unsigned i = 0; i < n; i++) {
        struct vdev *l = vdev_leaf(p->vd, i);
        struct uberblock *u = NULL;
        if (l->fd < 0)
            continue;
        int k = label_read_ubs(l, &p->hdr, &u);
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
        newest = MAX(newest, best[i]);
        free(u);
        last = 0;
    }
    if (!all)
        return last;
    /* uberblocks of txgs before the tree's config txg were written under
     * the previous tree (its guid sum): they hold for this one too, whose
     * members have every block of them but for their DTLs (a crash between
     * the labels of a tree change and its first txg imports the last of
     * them, with the new tree) */
    for (size_t i = 0; p->hdr.prev_guid_sum && i < total; i++)
        if (all[i].txg < p->hdr.config_txg && all[i].guid_sum == p->hdr.prev_guid_sum)
            all[i].guid_sum = p->guid_sum;
    qsort(all, total, sizeof *all, ub_cmp_desc);
    size_t k = 0;
    for (size_t i = 0; i < total; i++)
        if (k == 0 || all[k - 1].txg != all[i].txg)
            all[k++] = all[i];
    /* a leaf that missed the newest txgs was away: read it last, and let a
     * scrub repair it */
    for (unsigned i = 0; i < n; i++) {
        struct vdev *l = vdev_leaf(p->vd, i);
        if (l->fd < 0 || n < 2)
            continue;
        uint64_t lo = 0, hi = atomic_load(&l->dtl_hi);
        if (best[i] < newest)
            lo = best[i] + 1; /* it missed the txgs after its newest uberblock */
        else if (atomic_load(&l->stale) && !hi)
            lo = 1; /* stale in a label of a version without DTLs: all of it */
        if (lo && (!hi || lo < atomic_load(&l->dtl_lo) || newest > hi)) {
            dtl_add(l, lo, newest);
            p->hdr.rsv_valid = 0; /* a saved resilver position was for other DTLs */
        }
        if (lo)
            atomic_store(&l->stale, true);
    }
    vdev_top_state(p->vd);
    *out = all;
    return (int)k;
}

void pool_refresh_stale(bs_pool *p)
{
    /* a replace that waited for its resilver when the pool went away goes
     * on waiting (the labels name the old and the new member) */
    for (unsigned k = 0; p->hdr.replace_old && !p->readonly && k < vdev_nleaves(p->vd); k++)
        if (vdev_leaf(p->vd, k)->guid == p->hdr.replace_new)
            scan_set_replacing(p, p->hdr.replace_old, vdev_leaf(p->vd, k)->path);
    p->hdr.replace_old = p->hdr.replace_new = 0;
    bool any = false;
    for (unsigned i = 0; i < vdev_nleaves(p->vd); i++)
        any |= atomic_load(&vdev_leaf(p->vd, i)->stale);
    if (p->hdr.rewrite && !p->readonly)
        (void)pool_write_labels(p, false); /* labels of several generations: one now */
    p->hdr.rewrite = false;
    if (!any || p->readonly || !p->io.alloc)
        return;
    /* resilver what they missed, from where an interrupted resilver of the
     * same DTLs got (the labels' position; it stays in them meanwhile) */
    struct bs_scrub_pos pos = {.id = p->hdr.rsv_id, .blk = p->hdr.rsv_blk,
                               .part = (int)p->hdr.rsv_part};
    bool resume = p->hdr.rsv_valid;
    p->hdr.rsv_valid = 0;
    (void)resilver_request(p, resume ? &pos : NULL);
    (void)pool_write_labels(p, false); /* record who is stale before new txgs land */
    alloc_dirty_all(p->io.alloc);
    txg_mark_dirty(p);
}

int pool_check_fresh(bs_pool *p, struct berr *err)
{
    unsigned n = vdev_nleaves(p->vd), fresh = 0, present = 0;
    if (n < 2)
        return 0;
    char stale[512] = "";
    size_t w = 0;
    for (unsigned i = 0; i < n; i++) {
        struct vdev *l = vdev_leaf(p->vd, i);
        if (l->fd < 0)
            continue;
        present++;
        if (!atomic_load(&l->stale))
            fresh++;
        else if (w < sizeof stale)
            w += (size_t)snprintf(stale + w, sizeof stale - w, "%s%s", w ? ", " : "", l->path);
    }
    unsigned need = p->vd->kind == VDEV_KIND_RAIDZ ? n - p->vd->nparity : 1;
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

/* ---- status ---- */

void pool_vdev_stats(bs_pool *p, bool faulted, uint64_t size, struct bs_pool_stats *o)
{
    enum vdev_state top = vdev_top_state(p->vd);
    unsigned n = vdev_nleaves(p->vd);
    if (p->vd->kind == VDEV_KIND_RAIDZ)
        snprintf(o->layout, sizeof o->layout, "raidz%u", p->vd->nparity);
    else
        snprintf(o->layout, sizeof o->layout, "%s",
                 p->vd->kind == VDEV_KIND_MIRROR ? "mirror" : "single");
    o->nvdevs = MIN(n, 8u);
    char rep_new[4096];
    uint64_t rep_old = scan_replacing(p, rep_new, sizeof rep_new);
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < n; i++) {
        struct vdev *v = vdev_leaf(p->vd, i);
        enum vdev_state s = (enum vdev_state)atomic_load(&v->state);
        o->read_errors += atomic_load(&v->ctr.read_errors);
        o->write_errors += atomic_load(&v->ctr.write_errors);
        o->checksum_errors += atomic_load(&v->ctr.checksum_errors);
        if (i >= 8)
            continue;
        struct bs_vdev_stats *vs = &o->vdevs[i];
        snprintf(vs->path, sizeof vs->path, "%s", v->path);
        snprintf(vs->type, sizeof vs->type, "%s", v->is_blockdev ? "disk" : "file");
        if (faulted && p->vd->kind == VDEV_KIND_LEAF)
            s = VDEV_STATE_FAULTED;
        snprintf(vs->state, sizeof vs->state, "%s", vdev_state_name(s));
        vs->stale = atomic_load(&v->stale);
        vs->dtl_hi = atomic_load(&v->dtl_hi);
        vs->dtl_lo = vs->dtl_hi ? atomic_load(&v->dtl_lo) : 0;
        vs->resilvering = vs->dtl_hi && s == VDEV_STATE_ONLINE;
        /* a replaced device hangs off its successor until the pool closes */
        vs->replacing[0] = 0;
        if (vs->resilvering && v->nchild && atomic_load(&v->child[0]->state) == VDEV_STATE_OFFLINE)
            snprintf(vs->replacing, sizeof vs->replacing, "%s", v->child[0]->path);
        /* a replace of a healthy mirror member: the old one is still there */
        for (unsigned k = 0; rep_old && k < n; k++)
            if (vdev_leaf(p->vd, k)->guid == rep_old && strcmp(v->path, rep_new) == 0)
                snprintf(vs->replacing, sizeof vs->replacing, "%s", vdev_leaf(p->vd, k)->path);
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
    if (p->vd->kind != VDEV_KIND_LEAF)
        o->checksum_errors += atomic_load(&p->vd->ctr.checksum_errors);
    const char *st = faulted ? "FAULTED" : p->readonly ? "READONLY"
                   : top == VDEV_STATE_ONLINE ? "ONLINE" : vdev_state_name(top);
    snprintf(o->state, sizeof o->state, "%s", st);
}

/* ---- fault injection, online/offline ---- */

int bs_pool_debug(bs_pool *p, const char *knob, struct berr *err)
{
    if (knob && strncmp(knob, "resilver_delay_ms=", 18) == 0) {
        char *end;
        errno = 0;
        unsigned long ms = strtoul(knob + 18, &end, 10);
        if (errno || end == knob + 18 || *end || ms > 10000)
            return berr_set(err, EINVAL, "resilver_delay_ms takes 0..10000");
        return scan_set_delay(p, (unsigned)ms, err);
    }
    if (knob && strncmp(knob, "tree_crash=", 11) == 0) {
        if (strcmp(knob + 11, "on") && strcmp(knob + 11, "off"))
            return berr_set(err, EINVAL, "tree_crash takes on or off");
        replace_debug_crash(strcmp(knob + 11, "on") == 0);
        return 0;
    }
    unsigned n = vdev_nleaves(p->vd), first = 0, last = n;
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
        struct vdev *l = vdev_leaf(p->vd, i);
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

int pool_find_leaf(bs_pool *p, const char *path, struct berr *err)
{
    unsigned n = vdev_nleaves(p->vd);
    for (unsigned i = 0; i < n; i++)
        if (strcmp(vdev_leaf(p->vd, i)->path, path) == 0)
            return (int)i;
    char *end;
    unsigned long i = strtoul(path, &end, 10);
    if (*path && !*end && i < n)
        return (int)i; /* a leaf index */
    return berr_set(err, ENOENT, "pool '%s' has no device %s", p->name, path);
}

int bs_pool_offline(bs_pool *p, const char *path, struct berr *err)
{
    if (p->vd->kind == VDEV_KIND_LEAF)
        return berr_set(err, ENOTSUP, "pool '%s' has no redundancy: its only device cannot "
                        "go offline", p->name);
    pthread_mutex_lock(&p->admin_lock);
    int i = pool_find_leaf(p, path, err);
    if (i >= 0) {
        struct vdev *l = p->vd->child[i];
        unsigned others = 0;
        for (unsigned k = 0; k < p->vd->nchild; k++)
            others += (int)k != i && vdev_usable(p->vd->child[k]) &&
                      !atomic_load(&p->vd->child[k]->stale);
        /* the up-to-date leaves left must still hold every block */
        if (vdev_usable(l) && p->vd->nchild - others > vdev_redundancy(p->vd))
            i = berr_set(err, EBUSY, "taking %s offline would leave pool '%s' without an "
                         "up-to-date copy of its data", l->path, p->name);
        else
            atomic_store(&l->state, VDEV_STATE_OFFLINE);
        vdev_top_state(p->vd);
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
    if (r == 0 && v->size < p->hdr.dev_size)
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
    if (p->vd->kind == VDEV_KIND_LEAF)
        return berr_set(err, ENOTSUP, "pool '%s' has a single device; it is always online",
                        p->name);
    pthread_mutex_lock(&p->admin_lock);
    int i = pool_find_leaf(p, path, err);
    if (i < 0 && p->vd->nchild) {
        /* a missing member given by its new path */
        for (unsigned k = 0; k < p->vd->nchild && i < 0; k++)
            if (p->vd->child[k]->fd < 0 && reopen(p, p->vd->child[k], path, NULL) == 0)
                i = (int)k;
        if (i < 0)
            i = berr_set(err, ENOENT, "%s is neither a device of pool '%s' nor one of its "
                     "missing members", path, p->name);
    }
    if (i >= 0) {
        struct vdev *l = p->vd->child[i];
        if (l->fd < 0) {
            i = berr_set(err, ENXIO, "%s is missing: online it by its path", l->path);
        } else if (!vdev_usable(l)) {
            /* it missed writes: its DTL says which txgs, reads avoid it for
             * those, a resilver copies them, the next txg rewrites the
             * whole allocation map */
            dtl_leaf_back(p, l);
            pool_refresh_stale(p);
        }
        vdev_top_state(p->vd);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return i < 0 ? i : 0;
}
