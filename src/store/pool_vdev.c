/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vdev tree of a pool: parsing vdev specs, opening and labelling the
 * leaves at create, per-leaf labels, stale leaves and status (finding and
 * assembling them at import: pool_import.c; fault injection and
 * online/offline: pool_devadmin.c).
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

/* Serialises label writes (all pools: rare), so that label_gen orders them
 * and two writers never interleave their four copies. */
static pthread_mutex_t label_lock = PTHREAD_MUTEX_INITIALIZER;

/* A failed label write is retried (write_top_labels) only if it failed
 * within this long: a device that took longer is hanging, not blinking. */
#define LABEL_RETRY_WITHIN_NS (1000ULL * 1000 * 1000)

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

/* One leaf's label: written and flushed (wiped first if asked). */
static int write_leaf_label(struct vdev *l, const struct label_hdr *h, bool wipe_first)
{
    int r = wipe_first ? label_wipe(l) : 0;
    if (r == 0)
        r = label_write_hdr(l, h);
    if (r == 0)
        r = vdev_flush(l);
    return r;
}

/* pool_write_labels for one top: 0 if at least one of its leaves took it;
 * the usable leaves that did not (write or flush failed) in *failed (bit i:
 * child i) if not NULL.  Leaf `lead` (-1: none) is written (and flushed)
 * before the others: the member a tree change brings in, so that a crash in
 * the middle never leaves the old members labelled with a tree whose new
 * member has no label yet (import would take that tree, uncommitted, with
 * the new member missing, instead of the old one; vdev_replace.c).  With
 * `failed`, a leaf whose label write fails quickly (not its flush) is tried
 * once more (below). */
static int write_top_labels(bs_pool *p, unsigned t, bool wipe_first, int lead, uint32_t *failed)
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
        uint64_t flush_fails = atomic_load(&l->flush_failures), t0 = now_ns();
        int r = write_leaf_label(l, &h, wipe_first);
        if (r < 0 && failed && atomic_load(&l->flush_failures) == flush_fails &&
            now_ns() - t0 < LABEL_RETRY_WITHIN_NS) {
            /* On a top where a member missed T (dtl_note_missed), the
             * caller faults a leaf reported here (fault_unrecorded), and on
             * a top already short of a member that fails the commit and the
             * pool: one failed write of a device that takes the next must
             * not do that.  One retry, not a loop, and none after a slow
             * failure: a hanging device must not stall the commit (and
             * label_lock, every pool's) twice as long.  None after a failed
             * flush either: the pages whose writeback failed may now be
             * clean without being on the device, so a second fdatasync
             * would report success for writes (a resilver's, a repair's)
             * that never landed; that leaf is faulted as before.  Elsewhere
             * the retry is not needed (a later write faults a failing
             * device): those callers keep their single try. */
            blog_warn("pool '%s': device %u/%u (%016llx): label write failed (%s), "
                      "trying once more", p->name, t, i, (unsigned long long)l->guid,
                      strerror(-r));
            r = write_leaf_label(l, &h, wipe_first);
        }
        if (r == 0)
            ok++;
        else if (!first)
            first = r;
        if (r < 0 && failed && i < 32)
            *failed |= 1u << i;
        crashpt("tree_labels");
    }
    pthread_mutex_unlock(&label_lock);
    return ok ? 0 : first ? first : -EIO;
}

/* Every top's labels; top tn first, its leaf `lead` first (-1: in order);
 * the leaves that failed in failed[t] (write_top_labels) if not NULL. */
static int write_all_labels(bs_pool *p, bool wipe_first, unsigned tn, int lead, uint32_t *failed)
{
    int ret = 0;
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned k = 0; k < nt; k++) {
        unsigned t = k == 0 ? tn : k - (k <= tn);
        int r = write_top_labels(p, t, wipe_first, t == tn ? lead : -1,
                                 failed && t < BLK_MAX_TOPS ? &failed[t] : NULL);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

int pool_write_labels(bs_pool *p, bool wipe_first)
{
    return write_all_labels(p, wipe_first, 0, -1, NULL);
}

int pool_write_labels_failed(bs_pool *p, uint32_t failed[BLK_MAX_TOPS])
{
    return write_all_labels(p, false, 0, -1, failed);
}

int pool_write_tree_labels(bs_pool *p, unsigned tn, int lead)
{
    /* the changed top first (the others only move their generation) */
    return write_all_labels(p, false, tn, lead, NULL);
}

/* Labels of one top not (yet) published in io.ntops (pool add). */
int pool_write_top_labels(bs_pool *p, unsigned t, bool wipe_first)
{
    return write_top_labels(p, t, wipe_first, -1, NULL);
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
        vs->reason[0] = 0;
        if (v->fd < 0 && s == VDEV_STATE_UNAVAIL)
            snprintf(vs->reason, sizeof vs->reason, "%s",
                     v->label_damaged ? "corrupted data" : "cannot open");
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
