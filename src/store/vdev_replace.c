/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Changing a pool's vdev tree while it runs: replace a mirror or raidz
 * member, attach a mirror member (a single-device pool becomes a mirror),
 * detach one.  A new member is resilvered (resilver.c): its DTL is every
 * txg so far.  Replacing a healthy mirror member is an attach plus a
 * pending detach of the old one (scan_set_replacing, recorded in the
 * labels), done by the scan thread when the new one's resilver completed
 * (replace_finish); other replaces drop the old member at once.
 *
 * The switch is ordered by txgs (FORMAT.md 2, "Changing the tree").  Under
 * the sync mutex (no txg is being written), with T+1 the open txg:
 *   1. the new device's labels are wiped (no uberblock of its own);
 *   2. the top's label template (p->top_hdr[t]) gets the new tree with
 *      config_txg = T+1 and the previous guid sum, the pool the new sum, and
 *      the in-memory tree is changed;
 *   3. every member's label is rewritten (new and old members alike);
 * then txg T+1 is committed: its uberblocks carry the new tree's guid sum.
 * Import takes the newest tree for which an uberblock of a txg >= its
 * config_txg exists, else the newest (pool_vdev.c pick_config): a crash
 * before T+1 commits imports the old tree (the new device ignored, the old
 * member still there), after it the new tree (the new device stale with its
 * DTL, resilvered).  A member leaving the pool has its label wiped only after
 * T+1 has committed, so it stays importable as the old tree until then.
 *
 * Durable writes and crash points.  Each state below is what a crash (kill
 * -9, power cut) after the named point leaves on the devices, and what
 * import makes of it (tests/func/t-vdev-crash.sh kills berthd at each with
 * the test knob crash_at=POINT[:N], crashpt.h).  berthd lists the new device
 * in pools.json before the change starts (api/h_pool.c), so a restart gives
 * import the old and the new devices; A = members that stay, N = the one
 * that joins (attach, replace), L = the one that leaves (detach, replace).
 *
 *   S0  nothing written                       -> old tree
 *   S1  N wiped and flushed      [new_wiped]  -> old tree; N holds no label:
 *       "holds no berth pool", ignored
 *   S2  N's label written in two flushed phases, copies 0 and 2 then 1 and
 *       3 (label.c), before any of A [label_copy:1..4, label_torn:1..4,
 *       label_power:1..2]                      -> old tree.  A copy torn
 *       mid-write fails its checksum.  A power cut in phase 1 may tear both
 *       0 and 2 (label_power:1): with 1 and 3 still without a label that is
 *       no label (label.c), never "damaged"; and import, given N beside the
 *       members, sets aside a device without any valid copy that the tree
 *       in force misses no member for (pool_vdev.c).  From phase 2 on N has
 *       two whole copies.  N with a label of the new tree is not in the old
 *       one: ignored ("no longer a device"), and may be attached again
 *       without -f (leftover(): of this pool, no member of its tree)
 *   S3  some of A took the new label [tree_labels:k, label_copy, label_torn,
 *       label_power:3..]                       -> old tree: a member still
 *       labelled with it (or L) holds the committed config (a member cut in
 *       phase 1 keeps two whole old copies, in phase 2 two whole new ones);
 *       the new config is
 *       not committed (no uberblock >= T+1 whose guid sum differs from the
 *       previous tree's); mixed generations: the import rewrites the labels
 *   S4  every member's label is new [tree_written]
 *                                              -> with L given and labelled,
 *       the old tree (L's config is the committed one); without it (or with
 *       no L: attach) the new tree at txg T: the uberblocks before T+1 that
 *       carry the previous guid sum count for it (pool_read_ubs), N is stale
 *       with DTL 1..T and resilvered.  Either tree holds every block
 *   S5  T+1's uberblock on some leaves only [ub_leaf:k, commit_ub:k]
 *                                              -> new tree (it is committed);
 *       the leaves without it lag one txg: stale with that txg in their DTL,
 *       except on a raidz whose members (all present) that hold T+1 are fewer
 *       than it needs to serve a block: the uberblock's fan-out was cut, the
 *       laggards hold T+1's blocks (pool_read_ubs "cut")
 *   S6  T+1 committed [tree_committed]        -> new tree; L still labelled
 *       with the old tree, ignored as not in the committed tree
 *   S7  L's label wiped [tree_forgotten]      -> new tree; L holds no label
 *   S8  berthd's pools.json names the new devices (api/h_pool.c)
 *
 * A replace of a healthy mirror member (ZFS's "replacing") runs this twice:
 * attach N with the pair (L, N) recorded in the labels, resilver N, then
 * detach L from the scan thread (points counted on: tree_written:2 ...).
 * A crash between the two, or in the second, imports the tree with both;
 * the pair is taken up again, and if N was resilvered already (no DTL) L is
 * detached at import (pool_refresh_stale), since no resilver will end again.
 * A crash never leaves the newest uberblock unloadable: the refusal of a
 * damaged newest state (pool.c) does not see these states.
 *
 * Concurrency: readers walk a top's child[] without locks (plain loads of
 * aligned pointers and counts; the stores here are atomic releases; TSan
 * calls the pairs races, the hardware does not tear them).  So a leaf taken
 * out of the tree is never freed while the pool lives: it goes OFFLINE (no
 * new I/O, no self-healing write: repairs check vdev_usable under the heal
 * lock, whose write side is taken once as a barrier), its fd is closed, and
 * its struct hangs off a remaining leaf's (unused) child list, freed with the
 * tree by vdev_close.  A mirror's child array has room for 32 from the
 * start, so attach only appends.  A single leaf becomes a mirror in place:
 * the top struct (p->io.top[t].vd) turns into the mirror and keeps its
 * fd open until the pool closes, for reads already under way; the leaf goes
 * on as a new struct over a dup of that fd. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "store/crashpt.h"
#include "store/resilver.h"

static _Atomic bool debug_crash; /* test knob (replace_debug_crash) */

void replace_debug_crash(bool on)
{
    atomic_store(&debug_crash, on);
}

/* Is a device labelled `h` a leftover of this pool: a member of a tree
 * change that never committed (import took the old tree and ignored it) or
 * one that left it, i.e. of this pool but no member of its tree now?  It
 * may be taken again without force: running the interrupted change again
 * is how it completes. */
static bool leftover(bs_pool *p, const struct label_hdr *h)
{
    if (h->pool_guid != p->guid)
        return false;
    for (unsigned i = 0; i < pool_nleaves(p); i++)
        if (pool_leaf(p, i, NULL, NULL)->guid == h->vdev_guid)
            return false;
    return true;
}

/* Open the device that joins the pool.  `replaced`: the leaf it replaces,
 * or NULL; a placeholder of a device whose labels are damaged (no fd: the
 * pool does not use it) may be replaced by that very device. */
static int open_new(bs_pool *p, unsigned tn, const char *path, bool force,
                    const struct vdev *replaced, struct vdev **out, struct berr *err)
{
    uint64_t dev_size = p->top_hdr[tn].dev_size;
    for (unsigned i = 0; i < pool_nleaves(p); i++) {
        const struct vdev *l = pool_leaf(p, i, NULL, NULL);
        if (l == replaced && l->label_damaged && l->fd < 0)
            continue;
        if (strcmp(l->path, path) == 0)
            return berr_set(err, EINVAL, "%s is already a device of pool '%s'", path, p->name);
    }
    /* a new file is made as large as the pool's devices; an existing one
     * (file or block device) is taken as it is */
    struct vdev *v;
    int r = vdev_open(path, access(path, F_OK) == 0 ? 0 : dev_size, false, &v, err);
    if (r < 0)
        return r;
    struct label_hdr old;
    if (v->size < dev_size)
        r = berr_set(err, ENOSPC, "%s is too small: %llu bytes, the pool's devices have %llu",
                     path, (unsigned long long)v->size, (unsigned long long)dev_size);
    else if (label_read_hdr(v, &old, NULL) == 0 && old.state != POOL_STATE_DESTROYED && !force &&
             !leftover(p, &old))
        r = berr_set(err, EEXIST, "device %s holds pool '%s'; use -f to overwrite", path,
                     old.pool_name);
    else if ((r = label_wipe(v)) == 0)
        r = vdev_flush(v);
    if (r < 0 && !err->code)
        berr_set(err, -r, "cannot prepare %s: %s", path, strerror(-r));
    if (r == 0)
        crashpt("new_wiped");
    if (r < 0) {
        vdev_close(v);
        return r;
    }
    *out = v;
    return 0;
}

/* The open txg, with the sync mutex held: the first txg of a new tree. */
static uint64_t open_txg(bs_pool *p)
{
    pthread_mutex_lock(&p->txg.lock);
    uint64_t t = p->txg.open_txg;
    pthread_mutex_unlock(&p->txg.lock);
    return t;
}

static void set_sum(bs_pool *p)
{
    p->guid_sum = pool_tops_guid_sum(p, atomic_load(&p->io.ntops));
}

/* Make nl a member that lacks txgs 1..t-1 (a new device). */
static void new_member(bs_pool *p, unsigned tn, struct vdev *nl, const struct vdev *like,
                       uint64_t t)
{
    struct vdev *top = p->io.top[tn].vd;
    nl->guid = pool_random_u64();
    vdev_set_data(nl, like->ashift, like->data_start,
                  top->kind == VDEV_KIND_RAIDZ ? top->data_size / top->nchild : top->data_size);
    dtl_mark_missed(p, nl, 1, t > 1 ? t - 1 : 0); /* t = 1: nothing missed, stale all the same */
    atomic_store(&nl->state, VDEV_STATE_ONLINE);
}

/* Keep a leaf that left the tree until the pool closes (see the top). */
static void retire(struct vdev *keeper, struct vdev *old, int as_state)
{
    atomic_store(&old->state, as_state);
    struct vdev **k = realloc(keeper->child, (keeper->nchild + 1) * sizeof *k);
    if (k) {
        k[keeper->nchild] = old;
        keeper->child = k;
        keeper->nchild++;
    }
}

/* After txg t (the new tree's first) committed: wipe the label of a member
 * that left (so it never imports as part of the pool), then close it. */
static void forget(bs_pool *p, unsigned tn, struct vdev *old)
{
    struct vdev *top = p->io.top[tn].vd;
    pthread_rwlock_wrlock(&top->heal_lock); /* no repair writes to it after this */
    pthread_rwlock_unlock(&top->heal_lock);
    if (old->fd >= 0) {
        if (label_wipe(old) == 0)
            (void)vdev_flush(old);
        close(old->fd);
        old->fd = -1;
    }
    crashpt("tree_forgotten");
}

/* The tree of top tn (p->top_hdr[tn], p->io.top[tn].vd) changed (sync
 * mutex held): record it in every label, the label of the member that
 * joins (`lead`, -1: none) first. */
static int write_tree(bs_pool *p, unsigned tn, int lead, uint64_t t, struct berr *err)
{
    p->top_hdr[tn].config_txg = t;
    p->top_hdr[tn].prev_guid_sum = p->guid_sum; /* the uberblocks before t carry it */
    set_sum(p);
    pool_tops_state(p);
    crashpt_watch_txg(t);
    int r = pool_write_tree_labels(p, tn, lead);
    if (r < 0)
        berr_set(err, -r, "cannot write the labels of pool '%s': %s", p->name, strerror(-r));
    else
        crashpt("tree_written");
    return r;
}

/* Txg t, the new tree's first, committed (the caller's admin_commit). */
static void committed(void)
{
    crashpt_watch_txg(0);
    crashpt("tree_committed");
}

/* Commit txg t, start the resilver, say what happened. */
static int finish(bs_pool *p, uint64_t t, const char *what, struct berr *err)
{
    if (atomic_exchange(&debug_crash, false))
        return berr_set(err, EIO, "%s: stopped before txg %llu (tree_crash test knob)", what,
                        (unsigned long long)t);
    txg_mark_dirty(p);
    int r = admin_commit(p, t, err, what);
    if (r == 0)
        committed();
    if (r == 0)
        pool_refresh_stale(p); /* bitmap to the new member, resilver */
    return r;
}

/* Can the members other than `skip` serve every block? */
static bool others_hold_all(bs_pool *p, unsigned tn, int skip)
{
    struct vdev *top = p->io.top[tn].vd;
    unsigned fresh = 0, n = vdev_nleaves(top);
    for (unsigned k = 0; k < n; k++) {
        struct vdev *l = vdev_leaf(top, k);
        fresh += (int)k != skip && vdev_usable(l) && !atomic_load(&l->stale);
    }
    unsigned need = top->kind == VDEV_KIND_RAIDZ ? n - top->nparity : 1;
    return fresh >= need;
}

static int check_writable(bs_pool *p, struct berr *err)
{
    if (p->readonly)
        return berr_set(err, EROFS, "pool '%s' is read-only", p->name);
    if (txg_check_writable(p) < 0)
        return berr_set(err, EIO, "pool '%s' is faulted: its devices cannot change", p->name);
    return 0;
}

static int bs_pool_attach_replacing(bs_pool *p, const char *old_dev, const char *new_dev,
                                    bool force, struct berr *err);

int bs_pool_replace(bs_pool *p, const char *old_dev, const char *new_dev, bool force,
                    struct berr *err)
{
    if (!old_dev || !*old_dev || !new_dev || !*new_dev)
        return berr_set(err, EINVAL, "replace needs the old and the new device");
    int r = check_writable(p, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&p->admin_lock);
    unsigned tn = 0;
    int k = pool_find_leaf(p, old_dev, &tn, err);
    struct vdev *nl = NULL, *old = NULL, *top = k >= 0 ? p->io.top[tn].vd : NULL;
    uint64_t t = 0;
    if (k >= 0 && top->kind == VDEV_KIND_LEAF) {
        /* a single device: attach the new one, the old one leaves when the
         * new one is resilvered */
        pthread_mutex_unlock(&p->admin_lock);
        return bs_pool_attach_replacing(p, old_dev, new_dev, force, err);
    }
    /* a healthy mirror member stays until the new one is resilvered (as
     * ZFS's "replacing"): the new one is attached, the old one detached
     * when the resilver is done */
    if (k >= 0 && top->kind == VDEV_KIND_MIRROR && top->nchild < MAX_LEAVES &&
        vdev_usable(top->child[k]) && !atomic_load(&top->child[k]->stale)) {
        pthread_mutex_unlock(&p->admin_lock);
        return bs_pool_attach_replacing(p, old_dev, new_dev, force, err);
    }
    if (k >= 0 && !others_hold_all(p, tn, k))
        k = berr_set(err, EBUSY, "replacing %s would leave pool '%s' without an up-to-date "
                     "copy of its data: the other devices are missing or not resilvered",
                     vdev_leaf(top, (unsigned)k)->path, p->name);
    if (k >= 0)
        k = open_new(p, tn, new_dev, force, vdev_leaf(top, (unsigned)k), &nl, err) < 0 ? -1 : k;
    if (k >= 0) {
        scan_stop(p, true); /* no scan writes labels while the tree changes */
        pthread_mutex_lock(&p->txg.sync_mutex);
        t = open_txg(p);
        old = top->child[k];
        new_member(p, tn, nl, old, t);
        pthread_mutex_lock(&p->lock);
        p->top_hdr[tn].child_guids[k] = nl->guid;
        __atomic_store_n(&top->child[k], nl, __ATOMIC_RELEASE);
        retire(nl, old, VDEV_STATE_OFFLINE); /* shown as "replacing" until resilvered */
        pthread_mutex_unlock(&p->lock);
        r = write_tree(p, tn, k, t, err);
        pthread_mutex_unlock(&p->txg.sync_mutex);
        if (r == 0)
            r = finish(p, t, "replace", err);
        if (r == 0)
            forget(p, tn, old);
        if (r == 0)
            blog_info("pool '%s': %s replaced by %s, resilvering", p->name, old->path,
                      nl->path);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return k < 0 ? k : r;
}

/* A single leaf becomes a mirror of itself (sync mutex and p->lock held). */
static int leaf_to_mirror(bs_pool *p, unsigned tn, struct berr *err)
{
    struct vdev *top = p->io.top[tn].vd;
    struct vdev *l0 = calloc(1, sizeof *l0);
    struct vdev **kids = calloc(MAX_LEAVES, sizeof *kids);
    char *mpath = strdup("mirror-0");
    int fd = top->fd >= 0 ? fcntl(top->fd, F_DUPFD_CLOEXEC, 3) : -1;
    if (!l0 || !kids || !mpath || fd < 0 || !(l0->path = strdup(top->path))) {
        if (fd >= 0)
            close(fd);
        if (l0)
            free(l0->path);
        free(l0);
        free(kids);
        free(mpath);
        return berr_set(err, ENOMEM, "cannot turn pool '%s' into a mirror: out of memory",
                        p->name);
    }
    l0->fd = fd;
    l0->is_blockdev = top->is_blockdev;
    l0->readonly = top->readonly;
    l0->size = top->size;
    l0->phys_sector_shift = top->phys_sector_shift;
    l0->kind = VDEV_KIND_LEAF;
    atomic_store(&l0->state, VDEV_STATE_ONLINE);
    l0->guid = top->guid;
    pthread_rwlock_init(&l0->heal_lock, NULL);
    vdev_set_data(l0, top->ashift, top->data_start, top->data_size);
    kids[0] = l0;
    __atomic_store_n(&top->child, kids, __ATOMIC_RELEASE);
    __atomic_store_n(&top->nchild, 1u, __ATOMIC_RELEASE);
    char *opath = top->path;
    top->path = mpath;
    free(opath);
    /* the top keeps its guid: the uberblocks of a pool of several tops
     * list the tops by it */
    p->top_hdr[tn].top_type = VDEV_TYPE_MIRROR;
    p->top_hdr[tn].features_incompat |= LABEL_FEAT_VDEV_TREE;
    /* last: from here on every new I/O takes the mirror paths */
    __atomic_store_n(&top->kind, VDEV_KIND_MIRROR, __ATOMIC_RELEASE);
    return 0;
}

/* Attach new_dev as a mirror copy of `existing`; with `replacing`, the
 * existing device is to leave when new_dev is resilvered (a replace of a
 * healthy member). */
static int attach_impl(bs_pool *p, const char *existing, const char *new_dev, bool force,
                       bool replacing, struct berr *err)
{
    if (!existing || !*existing || !new_dev || !*new_dev)
        return berr_set(err, EINVAL, "attach needs an existing and a new device");
    int r = check_writable(p, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&p->admin_lock);
    unsigned tn = 0;
    int k = pool_find_leaf(p, existing, &tn, err);
    struct vdev *nl = NULL, *top = k >= 0 ? p->io.top[tn].vd : NULL;
    if (k >= 0 && top->kind == VDEV_KIND_RAIDZ)
        k = berr_set(err, ENOTSUP, "%s is in a raidz of pool '%s': devices cannot be attached "
                     "to it (replace one instead)", existing, p->name);
    else if (k >= 0 && vdev_nleaves(top) >= MAX_LEAVES)
        k = berr_set(err, ENOSPC, "the mirror of %s has %d devices already, the most a mirror "
                     "can have", existing, MAX_LEAVES);
    if (k >= 0)
        k = open_new(p, tn, new_dev, force, NULL, &nl, err) < 0 ? -1 : k;
    if (k >= 0 && replacing) /* pending before the resilver can start (and end) */
        scan_set_replacing(p, vdev_leaf(top, (unsigned)k)->guid, new_dev);
    if (k >= 0) {
        scan_stop(p, true); /* no scan writes labels while the tree changes */
        pthread_mutex_lock(&p->txg.sync_mutex);
        uint64_t t = open_txg(p);
        pthread_mutex_lock(&p->lock);
        if (top->kind == VDEV_KIND_LEAF)
            r = leaf_to_mirror(p, tn, err);
        if (r == 0) {
            new_member(p, tn, nl, top->child[0], t);
            unsigned n = top->nchild;
            __atomic_store_n(&top->child[n], steal_ptr(nl), __ATOMIC_RELEASE);
            p->top_hdr[tn].child_guids[n] = top->child[n]->guid;
            p->top_hdr[tn].nchildren = n + 1;
            __atomic_store_n(&top->nchild, n + 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&p->lock);
        if (r == 0)
            r = write_tree(p, tn, (int)top->nchild - 1, t, err);
        pthread_mutex_unlock(&p->txg.sync_mutex);
        if (r == 0)
            r = finish(p, t, "attach", err);
        if (r == 0)
            blog_info("pool '%s': %s attached, resilvering", p->name, new_dev);
        if (r < 0 && replacing)
            scan_set_replacing(p, 0, NULL);
        vdev_close(nl);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return k < 0 ? k : r;
}

int bs_pool_attach(bs_pool *p, const char *existing, const char *new_dev, bool force,
                   struct berr *err)
{
    return attach_impl(p, existing, new_dev, force, false, err);
}

static int bs_pool_attach_replacing(bs_pool *p, const char *old_dev, const char *new_dev,
                                    bool force, struct berr *err)
{
    return attach_impl(p, old_dev, new_dev, force, true, err);
}

/* Take leaf k out of mirror top tn (admin_lock held, checks done).  From
 * the scan thread (`in_scan`): no scan to stop (it is this one), no
 * resilver to start (it goes on by itself). */
static int detach_leaf(bs_pool *p, unsigned tn, int k, bool in_scan, struct berr *err)
{
    struct vdev *top = p->io.top[tn].vd;
    if (!in_scan)
        scan_stop(p, true); /* no scan writes labels while the tree changes */
    pthread_mutex_lock(&p->txg.sync_mutex);
    uint64_t t = open_txg(p);
    pthread_mutex_lock(&p->lock);
    unsigned n = top->nchild;
    struct vdev *old = top->child[k];
    struct label_hdr *th = &p->top_hdr[tn];
    atomic_store(&old->state, VDEV_STATE_UNAVAIL);
    __atomic_store_n(&top->child[k], top->child[n - 1], __ATOMIC_RELEASE);
    th->child_guids[k] = th->child_guids[n - 1];
    th->child_guids[n - 1] = 0;
    th->nchildren = n - 1;
    __atomic_store_n(&top->nchild, n - 1, __ATOMIC_RELEASE);
    retire(top->child[0], old, VDEV_STATE_UNAVAIL);
    pthread_mutex_unlock(&p->lock);
    int r = write_tree(p, tn, -1, t, err);
    pthread_mutex_unlock(&p->txg.sync_mutex);
    if (r == 0 && in_scan) {
        txg_mark_dirty(p);
        r = admin_commit(p, t, err, "detach");
        if (r == 0)
            committed();
    } else if (r == 0) {
        r = finish(p, t, "detach", err);
    }
    if (r == 0)
        forget(p, tn, old);
    if (r == 0)
        blog_info("pool '%s': %s detached", p->name, old->path);
    return r;
}

int bs_pool_detach(bs_pool *p, const char *dev, struct berr *err)
{
    if (!dev || !*dev)
        return berr_set(err, EINVAL, "detach needs a device");
    int r = check_writable(p, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&p->admin_lock);
    unsigned tn = 0;
    int k = pool_find_leaf(p, dev, &tn, err);
    struct vdev *top = k >= 0 ? p->io.top[tn].vd : NULL;
    if (k >= 0 && top->kind != VDEV_KIND_MIRROR)
        k = berr_set(err, ENOTSUP, "only mirror members can be detached (%s is %s)", dev,
                     top->kind == VDEV_KIND_RAIDZ ? "in a raidz" : "a single device");
    else if (k >= 0 && top->nchild < 2)
        k = berr_set(err, EBUSY, "%s is the only device of its mirror in pool '%s'", dev,
                     p->name);
    else if (k >= 0 && !others_hold_all(p, tn, k))
        k = berr_set(err, EBUSY, "detaching %s would lose the last valid copy of pool '%s''s "
                     "data: the other devices are missing or not resilvered", dev, p->name);
    if (k >= 0)
        r = detach_leaf(p, tn, k, false, err);
    pthread_mutex_unlock(&p->admin_lock);
    return k < 0 ? k : r;
}

int replace_finish(bs_pool *p, uint64_t old_guid, const char *new_path, _Atomic int *stop)
{
    /* the admin lock, unless someone holding it stops this scan meanwhile
     * (then the old device simply stays a mirror member) */
    while (pthread_mutex_trylock(&p->admin_lock) != 0) {
        if (atomic_load(stop))
            return -EINTR;
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    int k = -1, kn = -1;
    unsigned tn = 0;
    for (unsigned t = 0; t < atomic_load(&p->io.ntops) && (k < 0 || kn < 0); t++) {
        struct vdev *top = p->io.top[t].vd;
        k = kn = -1;
        for (unsigned i = 0; top->kind == VDEV_KIND_MIRROR && i < top->nchild; i++) {
            if (top->child[i]->guid == old_guid)
                k = (int)i;
            if (strcmp(top->child[i]->path, new_path) == 0)
                kn = (int)i;
        }
        tn = t;
    }
    int r = -ENOENT;
    struct berr err = {0};
    if (k >= 0 && kn >= 0 && k != kn) {
        struct vdev *top = p->io.top[tn].vd;
        /* only once the new device holds everything (its DTL is gone) */
        r = 1;
        if (!atomic_load(&top->child[kn]->dtl_hi) && vdev_usable(top->child[kn]) &&
            !p->readonly) {
            r = detach_leaf(p, tn, k, true, &err);
            if (r < 0)
                blog_warn("pool '%s': the replaced device stays attached: %s", p->name,
                          err.msg);
        }
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}
