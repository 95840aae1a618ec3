/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vdev tree of a pool: parsing vdev specs, opening and labelling the
 * leaves at create, finding and assembling them at import (DEGRADED when a
 * member is missing and redundancy allows), per-leaf labels and status
 * (fault injection and online/offline: pool_devadmin.c).
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
#include "store/crashpt.h"
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
    memset(out->dtl, 0, sizeof out->dtl);
    for (unsigned k = 0; k < vdev_nleaves(top) && k < 32; k++) {
        struct vdev *c = vdev_leaf(top, k);
        if (atomic_load(&c->stale))
            out->stale_mask |= 1u << k;
        /* the txgs each member missed, and how far their resilver got */
        out->dtl[k].hi = atomic_load(&c->dtl_hi);
        out->dtl[k].lo = out->dtl[k].hi ? MAX(atomic_load(&c->dtl_lo), 1) : 0;
        if (out->dtl[k].lo > out->dtl[k].hi)
            out->dtl[k].lo = out->dtl[k].hi;
    }
    /* a running resilver's durable position; else the template's (one
     * interrupted by an export, kept for the next import): pool-wide, the
     * same in every top's labels */
    struct bs_scrub_pos pos;
    if (scan_label_pos(p, &pos) && pos.part >= 0 && pos.part <= 1) {
        out->rsv_valid = 1;
        out->rsv_id = pos.id;
        out->rsv_blk = pos.blk;
        out->rsv_part = (uint32_t)pos.part;
    } else {
        out->rsv_valid = p->top_hdr[0].rsv_valid;
        out->rsv_id = p->top_hdr[0].rsv_id;
        out->rsv_blk = p->top_hdr[0].rsv_blk;
        out->rsv_part = p->top_hdr[0].rsv_part;
    }
    if (!out->rsv_valid) {
        out->rsv_id = out->rsv_blk = 0;
        out->rsv_part = 0;
    }
    /* a replace waiting to detach the old mirror member (by guids) */
    char np[4096];
    uint64_t og = scan_replacing(p, np, sizeof np), ng = 0;
    bool have_old = false;
    for (unsigned k = 0; og && k < vdev_nleaves(top); k++) {
        struct vdev *c = vdev_leaf(top, k);
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
        for (unsigned k = 0; p->top_hdr[t].replace_old && k < vdev_nleaves(top); k++) {
            fo |= vdev_leaf(top, k)->guid == p->top_hdr[t].replace_old;
            fn |= vdev_leaf(top, k)->guid == p->top_hdr[t].replace_new;
        }
        out->replace_old = fo && fn ? p->top_hdr[t].replace_old : 0;
        out->replace_new = fo && fn ? p->top_hdr[t].replace_new : 0;
    }
}

/* pool_write_labels for one top: 0 if at least one of its leaves took it.
 * Leaf `lead` (-1: none) is written (and flushed) before the others: the
 * member a tree change brings in, so that a crash in the middle never
 * leaves the old members labelled with a tree whose new member has no label
 * yet (import would take that tree, uncommitted, with the new member
 * missing, instead of the old one; vdev_replace.c). */
static int write_top_labels(bs_pool *p, unsigned t, bool wipe_first, int lead)
{
    struct vdev *top = p->io.top[t].vd;
    unsigned n = vdev_nleaves(top), ok = 0;
    int first = 0;
    if (lead >= (int)n)
        lead = -1;
    pthread_mutex_lock(&label_lock);
    p->top_hdr[t].label_gen++;
    for (unsigned j = 0; j < n; j++) {
        /* j = 0 is the lead, the others in index order */
        unsigned i = lead < 0 ? j : j == 0 ? (unsigned)lead : j - (j <= (unsigned)lead);
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
        crashpt("tree_labels");
    }
    pthread_mutex_unlock(&label_lock);
    return ok ? 0 : first ? first : -EIO;
}

/* Every top's labels; top tn first, its leaf `lead` first (-1: in order). */
static int write_all_labels(bs_pool *p, bool wipe_first, unsigned tn, int lead)
{
    int ret = 0;
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned k = 0; k < nt; k++) {
        unsigned t = k == 0 ? tn : k - (k <= tn);
        int r = write_top_labels(p, t, wipe_first, t == tn ? lead : -1);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

int pool_write_labels(bs_pool *p, bool wipe_first)
{
    return write_all_labels(p, wipe_first, 0, -1);
}

int pool_write_tree_labels(bs_pool *p, unsigned tn, int lead)
{
    /* the changed top first (the others only move their generation) */
    return write_all_labels(p, false, tn, lead);
}

/* Labels of one top not (yet) published in io.ntops (pool add). */
int pool_write_top_labels(bs_pool *p, unsigned t, bool wipe_first)
{
    return write_top_labels(p, t, wipe_first, -1);
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

static bool names_member(const struct label_hdr *h, uint64_t guid)
{
    for (uint64_t i = 0; i < h->nchildren; i++)
        if (h->child_guids[i] == guid)
            return true;
    return false;
}

static uint64_t tree_guid_sum(const struct label_hdr *h)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < h->nchildren; i++)
        sum += h->child_guids[i];
    return sum;
}

/* Is the vdev tree of label c (of one top) in force: has a txg from its
 * config_txg on been committed with its device set?  The uberblock's guid
 * sum is the pool's (all tops): it must differ from the previous tree's by
 * what this top's tree changed.  Trees are switched (replace, attach,
 * detach: vdev_replace.c) by writing every label of the top with
 * config_txg T+1 and then committing txg T+1; before that commit the old
 * tree holds. */
static bool config_committed(struct vdev **found, const struct label_hdr *hdrs, size_t n,
                             const struct label_hdr *c)
{
    for (size_t j = 0; j < n; j++) {
        struct uberblock *u = NULL;
        int k = label_read_ubs(found[j], &hdrs[j], &u);
        bool hit = false;
        for (int i = 0; i < k && !hit; i++)
            hit = u[i].txg >= c->config_txg &&
                  (c->prev_guid_sum == 0 || u[i].guid_sum != c->prev_guid_sum);
        free(u);
        if (hit)
            return true;
    }
    (void)tree_guid_sum;
    return false;
}

static bool newer_label(const struct label_hdr *a, const struct label_hdr *b)
{
    return a->config_txg != b->config_txg ? a->config_txg > b->config_txg
                                          : a->label_gen > b->label_gen;
}

/* The label whose tree is in force: the newest committed configuration
 * (the newest label of it), or the newest configuration if none is
 * committed (a top whose members all took the new labels but not yet the
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

/* Assemble top `t` from the n leaves found for it (labels hdrs[], all of
 * that top, agreeing): placeholders for missing members, refused when its
 * redundancy cannot cover them.  Takes the leaves (closed on error). */
static int assemble_top(bs_pool *p, unsigned t, struct vdev **found, const struct label_hdr *hdrs,
                        size_t n, unsigned *nmissing, struct berr *err)
{
    int r = 0;
    struct vdev *slot[MAX_LEAVES] = {NULL};
    /* the vdev tree in force (pick_config) */
    size_t wi = pick_config(found, hdrs, n);
    const struct label_hdr *h = &hdrs[wi];
    /* members of that tree must agree with it; a device it does not name
     * is a leftover (ignored below) whatever its label says: a change that
     * never committed may have labelled it with the config txg the next
     * change then took again */
    for (size_t i = 0; r == 0 && i < n; i++)
        if (hdrs[i].config_txg == h->config_txg && !same_tree(h, &hdrs[i]) &&
            names_member(h, hdrs[i].vdev_guid))
            r = berr_set(err, EILSEQ, "the labels of %s and %s disagree about the devices "
                         "of pool '%s'", found[wi]->path, found[i]->path, h->pool_name);
    for (size_t i = 0; r == 0 && i < n; i++) {
        int k = -1;
        for (uint64_t j = 0; j < h->nchildren; j++)
            if (h->child_guids[j] == hdrs[i].vdev_guid)
                k = (int)j;
        if (k < 0) {
            /* replaced or detached before the configuration in force */
            blog_warn("%s is no longer a device of pool '%s' (replaced or detached): ignored",
                      found[i]->path, h->pool_name);
            vdev_close(steal_ptr(found[i]));
            continue;
        }
        if (slot[k])
            r = berr_set(err, EINVAL, "%s and %s are the same member of pool '%s'",
                         slot[k]->path, found[i]->path, h->pool_name);
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
    p->top_hdr[t] = *h;
    p->top_hdr[t].rewrite = mixed;
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
    /* devices given without a valid label (pool_vdev_import): the missing
     * members may be them */
    const char *dmg = p->import_damaged;
    if (r == 0 && missing > spare)
        r = berr_set(err, ENXIO, "pool '%s' cannot be imported: %u of the %llu devices of its "
                     "top-level vdev %u are missing (%s) and its redundancy covers %u%s%s%s",
                     h->pool_name, missing, (unsigned long long)h->nchildren, t, names, spare,
                     dmg[0] ? "; no valid label on " : "", dmg,
                     dmg[0] ? " (damaged: a missing member)" : "");
    *nmissing += missing;
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
        blog_warn("pool '%s' imported DEGRADED: %s%s%s%s", h->pool_name, names,
                  dmg[0] ? " (no valid label on " : "", dmg,
                  dmg[0] ? ": damaged, taken as a missing member; replace it)" : "");
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
    size_t unlabeled = 0, ndamaged = 0, dw = 0;
    p->import_damaged[0] = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        r = vdev_open(paths[i], 0, false, &found[i], err);
        if (r < 0)
            break;
        struct berr le = {0};
        r = label_read_hdr(found[i], &hdrs[i], &le);
        if (r < 0)
            berr_set(err, le.code, "%s", le.msg);
        if (r == -EILSEQ && unlabeled + ndamaged + 1 < n) {
            /* no valid copy of its label, given with others: what it is
             * depends on the tree in force, from the others' labels.  A
             * member the tree names but nobody found: it is taken as that
             * missing member (DEGRADED if redundancy covers it, else the
             * error names it); no member missing: not one of them (a first
             * label write cut by a power loss in a way label_read_hdr
             * cannot tell, or a foreign device): ignored.  (With the
             * two-phase label writes a crash leaves every labelled device
             * two whole copies: this is damage or a first label.) */
            blog_warn("%s", le.msg);
            if (dw < sizeof p->import_damaged)
                dw += (size_t)snprintf(p->import_damaged + dw, sizeof p->import_damaged - dw,
                                       "%s%s", ndamaged ? ", " : "", paths[i]);
            vdev_close(steal_ptr(found[i]));
            ndamaged++;
            r = 0;
            continue;
        }
        if (r == -ENOENT && n > 1 && unlabeled + ndamaged + 1 < n) {
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
    /* the labels of one top may disagree after a crash in the middle of a
     * replace, attach or detach: assemble_top picks the tree in force */
    for (size_t i = 0; i < n && r == 0; i++) {
        unsigned t = hdrs[i].top_id;
        if (i > 0 && hdrs[i].pool_guid != hdrs[0].pool_guid)
            r = berr_set(err, EINVAL, "%s and %s belong to different pools ('%s', '%s')",
                         paths[0], paths[i], hdrs[0].pool_name, hdrs[i].pool_name);
        else if (hdrs[i].ashift != hdrs[0].ashift)
            r = berr_set(err, EILSEQ, "%s and %s of pool '%s' have different sector sizes",
                         paths[0], paths[i], hdrs[0].pool_name);
        else
            found_top[t] = true;
    }
    /* each top from its own leaves (taken by assemble_top) */
    unsigned nmissing = 0;
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
        r = assemble_top(p, t, grp, gh, k, &nmissing, err);
        if (r < 0)
            found_top[t] = false;
    }
    if (r == 0 && ndamaged && !nmissing)
        blog_warn("pool '%s': every member of the tops found is present: %s, without a valid "
                  "label, is not one of them (ignored)", hdrs[0].pool_name, p->import_damaged);
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
    /* uberblocks of txgs before a top's config txg were written under its
     * previous tree (the pool's guid sum then): they hold for this one too,
     * whose members have every block of them but for their DTLs (a crash
     * between the labels of a tree change and its first txg imports the
     * last of them, with the new tree) */
    for (unsigned t = 0; t < atomic_load(&p->io.ntops); t++) {
        const struct label_hdr *th = &p->top_hdr[t];
        for (size_t i = 0; th->prev_guid_sum && i < total; i++)
            if (all[i].txg < th->config_txg && all[i].guid_sum == th->prev_guid_sum)
                all[i].guid_sum = pool_tops_guid_sum(p, all[i].ntops ? all[i].ntops : 1);
    }
    qsort(all, total, sizeof *all, ub_cmp_desc);
    size_t k = 0;
    for (size_t i = 0; i < total; i++)
        if (k == 0 || all[k - 1].txg != all[i].txg)
            all[k++] = all[i];
    /* Which tops' newest uberblock was cut short by a crash: every member
     * present, and fewer of them hold it than the top needs to serve a
     * block.  Txg T's uberblock goes to the members one after the other,
     * only after every block of T was flushed to every usable member, and
     * T could only commit if at least that many took its blocks: so the
     * members one txg behind missed its uberblock, not its blocks (at most
     * nparity of them lack any, which the checksums find and the parity
     * repairs).  Taking them as stale would refuse the pool (pool_check_fresh)
     * for a crash.  With a member missing the count proves nothing (the
     * missing one may hold T): the members behind stay stale. */
    bool cut[BLK_MAX_TOPS] = {false};
    for (unsigned t = 0; t < atomic_load(&p->io.ntops) && t < BLK_MAX_TOPS; t++) {
        struct vdev *top = p->io.top[t].vd;
        unsigned nl = vdev_nleaves(top), holders = 0, present = 0;
        for (unsigned i = 0; i < n; i++) {
            unsigned tt;
            struct vdev *l = pool_leaf(p, i, &tt, NULL);
            if (tt != t)
                continue;
            present += l->fd >= 0;
            holders += l->fd >= 0 && best[i] == newest[t];
        }
        unsigned need = top->kind == VDEV_KIND_RAIDZ ? nl - top->nparity : 1;
        cut[t] = nl >= 2 && present == nl && holders < need;
        if (cut[t])
            blog_warn("pool '%s': the uberblock of txg %llu reached %u of the %u devices of "
                      "top-level vdev %u (a crash while it was written): the devices one txg "
                      "behind hold its blocks", p->name, (unsigned long long)newest[t], holders,
                      nl, t);
    }
    /* a leaf that missed the newest txgs was away: read it last, and let a
     * scrub repair it (a top added by a pool add that never committed has
     * no uberblock at all: it is dropped, not stale) */
    for (unsigned i = 0; i < n; i++) {
        unsigned t;
        struct vdev *l = pool_leaf(p, i, &t, NULL);
        if (l->fd < 0 || vdev_nleaves(p->io.top[t].vd) < 2)
            continue;
        uint64_t lo = 0, hi = atomic_load(&l->dtl_hi);
        if (best[i] < newest[t] && !(cut[t] && best[i] + 1 == newest[t]))
            lo = best[i] + 1; /* it missed the txgs after its newest uberblock */
        else if (atomic_load(&l->stale) && !hi)
            lo = 1; /* stale in a label of a version without DTLs: all of it */
        if (lo && (!hi || lo < atomic_load(&l->dtl_lo) || newest[t] > hi)) {
            dtl_add(l, lo, newest[t]);
            p->top_hdr[0].rsv_valid = 0; /* a saved resilver position was for other DTLs */
        }
        if (lo)
            atomic_store(&l->stale, true);
    }
    pool_tops_state(p);
    *out = all;
    return (int)k;
}

void pool_refresh_stale(bs_pool *p)
{
    bool any = false, rewrite = false;
    unsigned nt = atomic_load(&p->io.ntops);
    /* a replace that waited for its resilver when the pool went away goes
     * on waiting (the labels of its top name the old and the new member) */
    uint64_t done_old = 0;
    char done_new[4096] = "";
    for (unsigned t = 0; t < nt; t++) {
        struct label_hdr *th = &p->top_hdr[t];
        struct vdev *top = p->io.top[t].vd;
        for (unsigned k = 0; th->replace_old && !p->readonly && k < vdev_nleaves(top); k++) {
            struct vdev *nl = vdev_leaf(top, k);
            if (nl->guid != th->replace_new)
                continue;
            scan_set_replacing(p, th->replace_old, nl->path);
            /* its resilver had completed: the crash came in the detach of
             * the old member, which no resilver will call again */
            if (!atomic_load(&nl->stale) && !atomic_load(&nl->dtl_hi) && vdev_usable(nl)) {
                done_old = th->replace_old;
                snprintf(done_new, sizeof done_new, "%s", nl->path);
            }
        }
        th->replace_old = th->replace_new = 0;
        rewrite |= th->rewrite;
        th->rewrite = false;
    }
    if (rewrite && !p->readonly)
        (void)pool_write_labels(p, false); /* labels of several generations: one now */
    if (done_old) {
        _Atomic int stop = 0;
        if (replace_finish(p, done_old, done_new, &stop) == 0)
            scan_set_replacing(p, 0, NULL);
    }
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
    /* resilver what they missed, from where an interrupted resilver of the
     * same DTLs got (the labels' position; it stays in them meanwhile) */
    struct label_hdr *h0 = &p->top_hdr[0];
    struct bs_scrub_pos pos = {.id = h0->rsv_id, .blk = h0->rsv_blk, .part = (int)h0->rsv_part};
    bool resume = h0->rsv_valid;
    h0->rsv_valid = 0;
    (void)resilver_request(p, resume ? &pos : NULL);
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
    char rep_new[4096];
    uint64_t rep_old = scan_replacing(p, rep_new, sizeof rep_new);
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
        vs->dtl_hi = atomic_load(&v->dtl_hi);
        vs->dtl_lo = vs->dtl_hi ? atomic_load(&v->dtl_lo) : 0;
        vs->resilvering = vs->dtl_hi && s == VDEV_STATE_ONLINE;
        /* a replaced device hangs off its successor until the pool closes */
        vs->replacing[0] = 0;
        if (vs->resilvering && v->nchild && atomic_load(&v->child[0]->state) == VDEV_STATE_OFFLINE)
            snprintf(vs->replacing, sizeof vs->replacing, "%s", v->child[0]->path);
        /* a replace of a healthy mirror member: the old one is still there */
        for (unsigned k = 0; rep_old && k < n; k++)
            if (pool_leaf(p, k, NULL, NULL)->guid == rep_old && strcmp(v->path, rep_new) == 0)
                snprintf(vs->replacing, sizeof vs->replacing, "%s",
                         pool_leaf(p, k, NULL, NULL)->path);
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
