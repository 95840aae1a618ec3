/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Import of a pool's vdev tree: the labels found on the given devices are
 * grouped by top-level vdev, the tree in force is chosen (pick_config: a
 * crash in the middle of a tree change is resolved here, before any
 * uberblock is chosen; the states are listed at the top of
 * vdev_replace.c and pool_tops.c), each top is assembled (DEGRADED when a
 * member is missing and redundancy allows; a device without any valid label
 * copy is a missing member or ignored), and the uberblock rings of every
 * leaf are read (pool_read_ubs).  docs/FORMAT.md, "Import".
 * Labels, create and status: pool_vdev.c. */
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

/* A device given without a valid label (set aside by pool_vdev_import). */
struct damaged {
    const char *path;
    bool blockdev;
    bool guessed;                 /* its damaged copies name these guids (unverified) */
    uint64_t pool_guid, vdev_guid;
    bool named;                   /* a placeholder carries its path */
};

/* Give the placeholder of member l the path of damaged device d: status
 * shows it under its own path, UNAVAIL with its labels damaged, instead of
 * "missing-GUID" (a device that is really absent keeps that name). */
static int name_one(struct vdev *l, struct damaged *d, struct berr *err)
{
    char *np = strdup(d->path);
    if (!np)
        return berr_set(err, ENOMEM, "out of memory");
    free(l->path);
    l->path = np;
    l->is_blockdev = d->blockdev;
    l->label_damaged = true;
    d->named = true;
    return 0;
}

/* Which missing member each damaged device is, where that is known: the
 * member whose guid its damaged label copies still carry (with the pool's
 * guid), else, with one member missing in all and one damaged device left
 * whose copies name no guids (they disagree), that one (the import already
 * took it as that member).  In doubt a member keeps its "missing-GUID"
 * name: a wrong path would send a replace or online to the wrong device. */
static int name_damaged(bs_pool *p, const bool found_top[BLK_MAX_TOPS], struct damaged *dmg,
                        size_t nd, uint64_t pool_guid, struct berr *err)
{
    struct vdev *left = NULL;
    unsigned nleft = 0;
    for (unsigned t = 0; t < BLK_MAX_TOPS; t++) {
        struct vdev *top = found_top[t] ? p->io.top[t].vd : NULL;
        for (unsigned i = 0; top && i < vdev_nleaves(top); i++) {
            struct vdev *l = vdev_leaf(top, i);
            if (l->fd >= 0 || l->label_damaged)
                continue;
            size_t k = 0;
            while (k < nd && (dmg[k].named || !dmg[k].guessed || dmg[k].pool_guid != pool_guid ||
                              dmg[k].vdev_guid != l->guid))
                k++;
            if (k < nd) {
                int r = name_one(l, &dmg[k], err);
                if (r < 0)
                    return r;
                continue;
            }
            left = l;
            nleft++;
        }
    }
    size_t k = 0, dleft = 0;
    for (size_t i = 0; i < nd; i++)
        if (!dmg[i].named && !dmg[i].guessed) {
            k = i;
            dleft++;
        }
    if (nleft == 1 && dleft == 1)
        return name_one(left, &dmg[k], err);
    return 0;
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
    struct damaged *dmg = calloc(n, sizeof *dmg);
    if (!found || !hdrs || !present || !dmg) {
        free(found);
        free(hdrs);
        free(present);
        free(dmg);
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
            dmg[ndamaged].path = paths[i];
            dmg[ndamaged].blockdev = found[i]->is_blockdev;
            dmg[ndamaged].guessed =
                label_guess_ids(found[i], &dmg[ndamaged].pool_guid, &dmg[ndamaged].vdev_guid);
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
    if (r == 0 && ndamaged && nmissing)
        r = name_damaged(p, found_top, dmg, ndamaged, hdrs[0].pool_guid, err);
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
    free(dmg);
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
     * members one txg behind missed its uberblock, not its blocks, but for
     * a member that was not usable in T (a write failed, offline,
     * missing): the labels written before uberblock T say so
     * (dtl_note_missed: stale, DTL T..T), and it is resilvered.  Taking
     * them all as stale would refuse the pool (pool_check_fresh) for a
     * crash.  With a member missing the count proves nothing (the
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

