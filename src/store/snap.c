/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshots, clones, rollback and promote (docs/SNAPSHOTS.md).
 *
 * Model.  Every dataset (a volume "head" or a snapshot) continues at most one
 * snapshot, its `prev` (lin.prev_id, lin.prev_txg = prev's create txg).  The
 * prev links form a tree: a snapshot's children are the next snapshot of its
 * volume, the volume itself, clones made from it, and the volume again after
 * a rollback to an older snapshot (then the newer snapshots are a branch of
 * their own).  A block is owned by the dataset it was born in: the one in
 * whose interval (prev_txg, create_txg] (heads: (prev_txg, now]) its birth
 * txg falls, along the lineage of the tree holding it.
 *
 * Rules (all applied in syncing context, where the trees are final):
 *  - a head dropping block b (overwrite, trim, shrink): birth > prev_txg ->
 *    only the head had it: free it; else the prev snapshot still has it: put
 *    it on the head's deadlist (snap_kill);
 *  - snapshot of head H at txg T: the snapshot takes H's tree, prev, born and
 *    deadlist; H continues the snapshot with an empty deadlist, born 0;
 *  - destroy a dataset D with no children: free its tree's blocks born after
 *    D.prev_txg (older subtrees are skipped unread), drop its deadlist (those
 *    blocks are prev's);
 *  - destroy a snapshot S with one child N: free N's deadlist entries born
 *    after S.prev_txg (only S had them), then N's deadlist = the rest plus
 *    S's deadlist and N continues S's prev.  The freed blocks are exactly
 *    the ones only S held;
 *  - a snapshot with two or more children is not destroyed (EBUSY), or
 *    deferred (DS_FLAG_DEFER) until it is back to one;
 *  - rollback of V to any of its snapshots S = destroy V's head (no
 *    children) + a new head continuing S under V's name: newer snapshots stay
 *    (they become a branch ending without a head);
 *  - clone = a new head continuing S under another name;
 *  - promote only renames snapshots (the lineage tree does not change).
 *
 * Space: lin.born = bytes of tree blocks owned by the dataset and still
 * allocated; the sum over all datasets plus deadlist objects and the MOS is
 * the pool's allocated space (bs_pool_check verifies it).  A snapshot's
 * unique space is its child's dl_uniq (one child) or its born (no child).
 *
 * Locking: public calls hold admin_lock from validation to commit, so the
 * namespace they validated is the one their sync task sees.  Tasks are
 * queued under pool->lock and run by the sync thread (snap_run_tasks) after
 * the trees of the txg are written and before the MOS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/pool_impl.h"
#include "store/snap.h"
#include "store/sync_impl.h"

enum st_op {
    ST_SNAP,         /* ds (head) -> new snapshot named `name` */
    ST_DESTROY,      /* ds: snapshot (<= 1 child) or head */
    ST_NEW_HEAD,     /* src (snapshot) -> new head from tmpl */
    ST_RENAME,       /* ds -> name, flags = tmpl.flags */
};

struct st_item {
    enum st_op op;
    struct ds *ds, *src;
    char name[BS_SNAP_NAME_MAX];
    uint64_t guid, creation;
    struct mos_ds tmpl;
};

struct synctask {
    struct synctask *next;
    struct st_item *items;
    size_t n, cap;
    int result;
};

/* ---- names ---- */

/* Split "VOL@SNAP"; validates both parts. */
static int split_snap(const char *name, char vol[64], char snap[64], struct berr *err)
{
    const char *at = name ? strchr(name, '@') : NULL;
    if (!at)
        return berr_set(err, EINVAL, "'%s' is not a snapshot name (VOL@SNAP)", name ? name : "");
    size_t vl = (size_t)(at - name);
    if (vl == 0 || vl > 63)
        return berr_set(err, EINVAL, "snapshot '%s': bad volume part", name);
    memcpy(vol, name, vl);
    vol[vl] = '\0';
    int r = validate_name(vol, "volume", err);
    if (r < 0)
        return r;
    if (strlen(at + 1) > 63 || strchr(at + 1, '@'))
        return berr_set(err, EINVAL, "snapshot '%s': bad snapshot part", name);
    snprintf(snap, 64, "%s", at + 1);
    return validate_name(snap, "snapshot", err);
}

/* Volume part of a dataset name. */
static void vol_of(const char *name, char out[64])
{
    size_t n = strcspn(name, "@%");
    if (n > 63)
        n = 63;
    memcpy(out, name, n);
    out[n] = '\0';
}

static bool owned_by(const struct ds *d, const char *vol)
{
    size_t n = strlen(vol);
    return strncmp(d->rec.name, vol, n) == 0 && d->rec.name[n] == '@';
}

static struct ds *find_head(struct bs_pool *p, const char *vol)
{
    return ds_find_vol(p, vol);
}

static struct ds *find_snap(struct bs_pool *p, const char *name)
{
    struct ds *d = ds_find(p, name);
    return d && ds_is_snap(d) ? d : NULL;
}

static size_t nchildren(struct bs_pool *p, const struct ds *s, struct ds **first)
{
    size_t n = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (!d->destroying && d->rec.lin.prev_id == s->rec.id) {
            if (n++ == 0 && first)
                *first = d;
        }
    return n;
}

static uint64_t new_guid(uint64_t salt)
{
    uint64_t g;
    if (getrandom(&g, sizeof g, 0) != sizeof g)
        g = now_ns() ^ (salt * 0x9e3779b97f4a7c15ULL);
    return g ? g : 1;
}

/* ---- the task queue ---- */

static struct st_item *task_add(struct synctask *t, enum st_op op)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        struct st_item *n = realloc(t->items, cap * sizeof *n);
        if (!n)
            return NULL;
        t->items = n;
        t->cap = cap;
    }
    struct st_item *it = &t->items[t->n++];
    memset(it, 0, sizeof *it);
    it->op = op;
    return it;
}

/* Queue t for the open txg and wait for it (admin_lock held, pool->lock
 * not).  Frees t. */
static int task_run(struct bs_pool *p, struct synctask *t, const char *what, struct berr *err)
{
    pthread_mutex_lock(&p->lock);
    struct synctask **pp = &p->tasks;
    while (*pp)
        pp = &(*pp)->next;
    *pp = t;
    t->result = -EINPROGRESS;
    p->mos_dirty = true;
    uint64_t txg = txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    int r = txg_wait(p, txg);
    if (r == 0)
        r = t->result;
    free(t->items);
    free(t);
    if (r < 0)
        return berr_set(err, -r, "%s: pool '%s' could not commit the change (%s)", what, p->name,
                        strerror(-r));
    return 0;
}

/* ---- syncing context ---- */

void snap_kill(void *kctx, const struct blkptr *bp)
{
    struct sync_vol *sv = kctx;
    struct bs_pool *p = sv->ds->pool;
    if (bp_is_hole(bp))
        return;
    if (bp->birth > sv->rec.lin.prev_txg) {
        blk_free(&p->io, bp, sv->txg);
        return;
    }
    if (sv->ndlp == sv->dlp_cap) {
        size_t cap = sv->dlp_cap ? sv->dlp_cap * 2 : 256;
        struct dl_ent *n = realloc(sv->dlp, cap * sizeof *n);
        if (!n) {
            /* cannot record it: leak the block rather than free what a
             * snapshot still reads (bs_pool_check reports the leak) */
            return;
        }
        sv->dlp = n;
        sv->dlp_cap = cap;
    }
    sv->dlp[sv->ndlp++] = (struct dl_ent){
        .offset = bp->dva[0].offset, .birth = bp->birth, .asize = bp->dva[0].asize,
        .vdev = bp->dva[0].vdev,
    };
    sv->dl_added += bp->dva[0].asize;
    sv->rec.lin.dl_bytes += bp->dva[0].asize;
    if (bp->birth > sv->pp_txg)
        sv->rec.lin.dl_uniq += bp->dva[0].asize;
}

/* The sync_vol of d, adding one if d was not quiesced (created by an earlier
 * item of this txg is the only case). */
static struct sync_vol *sv_of(struct sync_ctx *c, struct ds *d)
{
    struct sync_vol *sv = sync_find(c, d);
    size_t idx;
    if (!sv && sync_add(c, d, &idx) == 0)
        sv = &c->sv[idx];
    return sv;
}

static void mark_destroyed(struct sync_ctx *c, struct sync_vol *sv)
{
    struct bs_pool *p = c->p;
    pthread_mutex_lock(&p->lock);
    sv->ds->destroying = true;
    atomic_store(&sv->ds->gone, true);
    pthread_mutex_unlock(&p->lock);
    sv->destroying = true;
}

static struct ds *insert_ds(struct sync_ctx *c, struct mos_ds *rec, struct sync_vol **svp)
{
    struct bs_pool *p = c->p;
    pthread_mutex_lock(&p->lock);
    rec->id = p->next_id++;
    struct ds *d = ds_new(p, rec);
    if (d) {
        d->next = p->ds_list;
        p->ds_list = d;
    }
    pthread_mutex_unlock(&p->lock);
    size_t idx;
    if (!d || sync_add(c, d, &idx) < 0)
        return NULL; /* (a ds already inserted stays; the txg fails) */
    *svp = &c->sv[idx];
    return d;
}

static int do_snap(struct sync_ctx *c, struct st_item *it)
{
    struct sync_vol *hv = sv_of(c, it->ds);
    if (!hv)
        return -ENOMEM;
    struct mos_ds rec = hv->rec;
    snprintf(rec.name, sizeof rec.name, "%s", it->name);
    rec.flags = DS_FLAG_SNAPSHOT;
    rec.guid = it->guid ? it->guid : new_guid(c->txg);
    rec.create_txg = c->txg;
    rec.creation = it->creation ? it->creation : (uint64_t)time(NULL);
    rec.refreservation = 0;
    rec.holds[0] = '\0';
    memset(&rec.recv, 0, sizeof rec.recv);
    rec.od = hv->od;
    rec.lin = hv->rec.lin;
    uint64_t old_prev_txg = hv->rec.lin.prev_txg;
    struct dl_ent *dlp = hv->dlp;
    size_t ndlp = hv->ndlp, cap = hv->dlp_cap;
    bool rewrite = hv->dl_rewrite;
    struct sync_vol *sv;
    struct ds *s = insert_ds(c, &rec, &sv);
    if (!s)
        return -ENOMEM;
    hv = sync_find(c, it->ds); /* sync_add may have moved the array */
    sv->dlp = dlp;
    sv->ndlp = ndlp;
    sv->dlp_cap = cap;
    sv->dl_rewrite = rewrite;
    sv->pp_txg = hv->pp_txg;
    hv->dlp = NULL;
    hv->ndlp = hv->dlp_cap = 0;
    hv->dl_rewrite = false;
    struct ds_lineage *lin = &hv->rec.lin;
    lin->prev_id = s->rec.id;
    lin->prev_txg = c->txg;
    lin->born = 0;
    objdesc_init(&lin->dl, DL_DSHIFT, 0);
    lin->dl_count = lin->dl_bytes = lin->dl_uniq = 0;
    hv->pp_txg = old_prev_txg;
    pthread_mutex_lock(&c->p->lock);
    it->ds->rec.lin = *lin; /* readers (nchildren) see the new link at once */
    pthread_mutex_unlock(&c->p->lock);
    return 0;
}

static int destroy_ds(struct sync_ctx *c, struct ds *d);

/* A deferred-destroy snapshot goes once it has no holds and <= 1 child. */
static int maybe_deferred(struct sync_ctx *c, uint64_t id)
{
    struct bs_pool *p = c->p;
    pthread_mutex_lock(&p->lock);
    struct ds *s = id ? ds_by_id(p, id) : NULL;
    bool go = s && (s->rec.flags & DS_FLAG_DEFER) && !s->rec.holds[0] && s->nopen == 0 &&
              nchildren(p, s, NULL) <= 1;
    pthread_mutex_unlock(&p->lock);
    return go ? destroy_ds(c, s) : 0;
}

static int destroy_leaf(struct sync_ctx *c, struct sync_vol *sv)
{
    struct objtree_wctx w = {
        .io = &c->p->io, .txg = c->txg, .cksum = sv->rec.cksum, .dtype = BP_TYPE_VOL_DATA,
        .s = &c->p->txg.scratch, .keep_birth = sv->rec.lin.prev_txg,
    };
    struct objdesc od = sv->od;
    int r = objtree_free_all(&w, &od);
    if (r == 0)
        r = dl_free_object(c, &sv->rec.lin);
    if (r < 0)
        return r;
    free(sv->dlp);
    sv->dlp = NULL;
    sv->ndlp = sv->dlp_cap = 0;
    mark_destroyed(c, sv);
    return maybe_deferred(c, sv->rec.lin.prev_id);
}

static int destroy_merge(struct sync_ctx *c, struct sync_vol *sv, struct ds *child)
{
    struct bs_pool *p = c->p;
    size_t sidx = (size_t)(sv - c->sv);
    struct sync_vol *nv = sv_of(c, child);
    if (!nv)
        return -ENOMEM;
    sv = &c->sv[sidx];
    _cleanup_free_ struct dl_ent *ne = NULL;
    _cleanup_free_ struct dl_ent *se = NULL;
    size_t nn = 0, ns = 0;
    int r = dl_read_all(c, nv, &ne, &nn);
    if (r == 0)
        r = dl_read_all(c, sv, &se, &ns);
    if (r < 0)
        return r;
    uint64_t s_prev = sv->rec.lin.prev_txg;
    struct ds *pp = sv->rec.lin.prev_id ? ds_by_id(p, sv->rec.lin.prev_id) : NULL;
    uint64_t new_pp = pp ? pp->rec.lin.prev_txg : 0;
    struct dl_ent *m = malloc((nn + ns ? nn + ns : 1) * sizeof *m);
    if (!m)
        return -ENOMEM;
    size_t k = 0;
    uint64_t freed = 0, bytes = 0, uniq = 0;
    for (size_t i = 0; i < nn + ns; i++) {
        const struct dl_ent *e = i < nn ? &ne[i] : &se[i - nn];
        if (i < nn && e->birth > s_prev) { /* born in S, dropped by N: only S had it */
            alloc_free(p->io.alloc, e->offset, e->asize, c->txg);
            freed += e->asize;
            continue;
        }
        m[k++] = *e;
        bytes += e->asize;
        if (e->birth > new_pp)
            uniq += e->asize;
    }
    r = dl_free_object(c, &nv->rec.lin);
    if (r == 0)
        r = dl_free_object(c, &sv->rec.lin);
    if (r < 0) {
        free(m);
        return r;
    }
    free(nv->dlp);
    nv->dlp = m;
    nv->ndlp = nv->dlp_cap = k;
    nv->dl_rewrite = true;
    struct ds_lineage *nl = &nv->rec.lin;
    nl->dl_bytes = bytes;
    nl->dl_uniq = uniq;
    nl->born += sv->rec.lin.born > freed ? sv->rec.lin.born - freed : 0;
    nl->prev_id = sv->rec.lin.prev_id;
    nl->prev_txg = s_prev;
    nv->pp_txg = new_pp;
    pthread_mutex_lock(&p->lock);
    child->rec.lin = *nl;
    pthread_mutex_unlock(&p->lock);
    mark_destroyed(c, sv);
    return 0;
}

static int destroy_ds(struct sync_ctx *c, struct ds *d)
{
    struct sync_vol *sv = sv_of(c, d);
    if (!sv)
        return -ENOMEM;
    if (sv->destroying)
        return 0;
    struct ds *child = NULL;
    pthread_mutex_lock(&c->p->lock);
    size_t n = nchildren(c->p, d, &child);
    pthread_mutex_unlock(&c->p->lock);
    if (n == 0)
        return destroy_leaf(c, sv);
    if (n == 1)
        return destroy_merge(c, sv, child);
    return -EBUSY;
}

static int do_new_head(struct sync_ctx *c, struct st_item *it)
{
    struct sync_vol *ssv = sv_of(c, it->src);
    if (!ssv)
        return -ENOMEM;
    struct mos_ds rec = it->tmpl;
    rec.create_txg = c->txg;
    rec.creation = (uint64_t)time(NULL);
    rec.volsize = ssv->rec.volsize;
    rec.volblocksize = ssv->rec.volblocksize;
    rec.od = ssv->od;
    memset(&rec.lin, 0, sizeof rec.lin);
    rec.lin.prev_id = ssv->rec.id;
    rec.lin.prev_txg = ssv->rec.create_txg;
    objdesc_init(&rec.lin.dl, DL_DSHIFT, 0);
    uint64_t pp = ssv->rec.lin.prev_txg;
    struct sync_vol *sv;
    if (!insert_ds(c, &rec, &sv))
        return -ENOMEM;
    sv->pp_txg = pp;
    return 0;
}

static int do_rename(struct sync_ctx *c, struct st_item *it)
{
    struct sync_vol *sv = sv_of(c, it->ds);
    if (!sv)
        return -ENOMEM;
    pthread_mutex_lock(&c->p->lock);
    snprintf(it->ds->rec.name, sizeof it->ds->rec.name, "%s", it->name);
    it->ds->rec.flags = it->tmpl.flags;
    it->ds->rec.recv = it->tmpl.recv;
    pthread_mutex_unlock(&c->p->lock);
    snprintf(sv->rec.name, sizeof sv->rec.name, "%s", it->name);
    sv->rec.flags = it->tmpl.flags;
    sv->rec.recv = it->tmpl.recv;
    atomic_store(&it->ds->readonly, (it->tmpl.flags & DS_FLAG_READONLY) != 0);
    return 0;
}

int snap_run_tasks(struct sync_ctx *c)
{
    for (struct synctask *t = c->tasks; t; t = t->next) {
        int r = 0;
        for (size_t i = 0; r == 0 && i < t->n; i++) {
            struct st_item *it = &t->items[i];
            switch (it->op) {
            case ST_SNAP: r = do_snap(c, it); break;
            case ST_DESTROY: r = destroy_ds(c, it->ds); break;
            case ST_NEW_HEAD: r = do_new_head(c, it); break;
            case ST_RENAME: r = do_rename(c, it); break;
            }
        }
        t->result = r;
        /* validation happened under admin_lock: a failure here is I/O or
         * memory, after changes were made: the txg must not commit */
        if (r < 0 && r != -EBUSY)
            return r;
    }
    return 0;
}

void snap_tasks_done(struct sync_ctx *c, int r)
{
    for (struct synctask *t = c->tasks; t; t = t->next)
        if (t->result == -EINPROGRESS || (r < 0 && t->result == 0))
            t->result = r < 0 ? r : 0;
    /* the waiters own the tasks; they read result after txg_wait */
    c->tasks = NULL;
}

/* ---- public: snapshots ---- */

static int busy_open(const struct ds *d, const char *what, struct berr *err)
{
    return berr_set(err, EBUSY, "%s '%s' is in use (%d open handle%s); close it or force", what,
                    d->rec.name, d->nopen, d->nopen == 1 ? "" : "s");
}

static int writable(struct bs_pool *p, struct berr *err)
{
    if (p->readonly)
        return berr_set(err, EROFS, "pool '%s' is read-only", p->name);
    return 0;
}

static struct synctask *task_new(void)
{
    return calloc(1, sizeof(struct synctask));
}

int bs_snap_create(bs_pool *p, const char *const *names, size_t n, struct berr *err)
{
    int r = writable(p, err);
    if (r < 0)
        return r;
    if (n == 0)
        return berr_set(err, EINVAL, "no snapshot name given");
    struct synctask *t = task_new();
    if (!t)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    uint64_t now = (uint64_t)time(NULL);
    for (size_t i = 0; r == 0 && i < n; i++) {
        char vol[64], snap[64];
        if ((r = split_snap(names[i], vol, snap, err)) < 0)
            break;
        struct ds *h = find_head(p, vol);
        if (!h) {
            r = berr_set(err, ENOENT, "no volume '%s' in pool '%s'", vol, p->name);
            break;
        }
        if (ds_find(p, names[i])) {
            r = berr_set(err, EEXIST, "snapshot '%s' already exists in pool '%s'", names[i],
                         p->name);
            break;
        }
        for (size_t k = 0; k < t->n; k++)
            if (t->items[k].ds == h)
                r = berr_set(err, EINVAL, "volume '%s' is named twice in one snapshot call",
                             vol);
        struct st_item *it = r == 0 ? task_add(t, ST_SNAP) : NULL;
        if (r == 0 && !it)
            r = berr_set(err, ENOMEM, "out of memory");
        if (it) {
            it->ds = h;
            it->creation = now;
            snprintf(it->name, sizeof it->name, "%s", names[i]);
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (r == 0) {
        r = task_run(p, t, "snapshot", err);
    } else {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

/* Names of the datasets continuing s, comma-separated (pool->lock held). */
static void dependents(struct bs_pool *p, const struct ds *s, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t used = 0;
    for (struct ds *d = p->ds_list; d; d = d->next) {
        if (d->destroying || d->rec.lin.prev_id != s->rec.id)
            continue;
        char nm[BS_SNAP_NAME_MAX];
        if (d->rec.flags & DS_FLAG_RECV)
            snprintf(nm, sizeof nm, "a receive into %.63s", d->rec.name);
        else
            snprintf(nm, sizeof nm, "%s", d->rec.name);
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", nm);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

int bs_snap_destroy(bs_pool *p, const char *name, unsigned flags, struct berr *err)
{
    int r = writable(p, err);
    if (r < 0)
        return r;
    struct synctask *t = task_new();
    if (!t)
        return berr_set(err, ENOMEM, "out of memory");
    bool queued = false;
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *s = find_snap(p, name);
    char deps[512];
    if (!s) {
        r = berr_set(err, ENOENT, "no snapshot '%s' in pool '%s'", name, p->name);
    } else if (s->rec.holds[0]) {
        r = berr_set(err, EBUSY, "snapshot '%s' is held (tags: %s); release the holds first",
                     name, s->rec.holds);
    } else if (s->nopen > 0 && !(flags & BS_DESTROY_FORCE)) {
        r = busy_open(s, "snapshot", err);
    } else if (nchildren(p, s, NULL) > 1) {
        dependents(p, s, deps, sizeof deps);
        if (flags & BS_DESTROY_DEFER) {
            s->rec.flags |= DS_FLAG_DEFER;
            p->mos_dirty = true;
        } else {
            r = berr_set(err, EBUSY,
                         "snapshot '%s' is the origin of %s; destroy or promote those first, or "
                         "defer the destroy (-d)",
                         name, deps);
        }
    } else {
        struct st_item *it = task_add(t, ST_DESTROY);
        if (!it) {
            r = berr_set(err, ENOMEM, "out of memory");
        } else {
            it->ds = s;
            atomic_store(&s->gone, true);
            queued = true;
        }
    }
    uint64_t txg = r == 0 && !queued ? txg_dirty_open(p) : 0;
    pthread_mutex_unlock(&p->lock);
    if (queued) {
        r = task_run(p, t, "destroy snapshot", err);
        t = NULL;
    } else if (r == 0) {
        int w = txg_wait(p, txg);
        if (w < 0)
            r = berr_set(err, -w, "destroy snapshot: pool '%s' could not commit (%s)", p->name,
                         strerror(-w));
    }
    if (t) {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

/* pool->lock held */
static void fill_snap(struct bs_pool *p, struct ds *s, struct bs_snap_props *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", s->rec.name);
    vol_of(s->rec.name, o->volume);
    o->guid = s->rec.guid;
    o->create_txg = s->rec.create_txg;
    o->creation = s->rec.creation;
    o->volsize = s->rec.volsize;
    o->volblocksize = s->rec.volblocksize;
    o->referenced = s->od.allocated;
    o->logicalreferenced = s->od.logical;
    o->compressratio = s->od.physical ? (double)s->od.logical / (double)s->od.physical : 1.0;
    snprintf(o->holds, sizeof o->holds, "%s", s->rec.holds);
    for (const char *c = s->rec.holds; *c; c++)
        if (c == s->rec.holds || *c == ',')
            o->nholds++;
    o->defer_destroy = (s->rec.flags & DS_FLAG_DEFER) != 0;
    struct ds *child = NULL;
    size_t n = 0;
    for (struct ds *d = p->ds_list; d; d = d->next) {
        if (d->destroying || d->rec.lin.prev_id != s->rec.id)
            continue;
        if (n++ == 0)
            child = d;
        char v[64];
        vol_of(d->rec.name, v);
        if (strcmp(v, o->volume) != 0)
            o->nclones++;
    }
    /* what a destroy would free now (0 while it cannot be destroyed) */
    o->used = n == 0 ? s->rec.lin.born : n == 1 ? child->rec.lin.dl_uniq : 0;
}

struct snap_row {
    struct bs_snap_props pr;
};

static int cmp_snap(const void *a, const void *b)
{
    const struct bs_snap_props *x = a, *y = b;
    int c = strcmp(x->volume, y->volume);
    if (c)
        return c;
    return x->create_txg < y->create_txg ? -1 : x->create_txg > y->create_txg;
}

int bs_snap_list(bs_pool *p, const char *vol,
                 int (*cb)(const struct bs_snap_props *props, void *opaque), void *opaque,
                 struct berr *err)
{
    pthread_mutex_lock(&p->lock);
    if (vol && !find_head(p, vol)) {
        bool any = false;
        for (struct ds *d = p->ds_list; d && !any; d = d->next)
            any = !d->destroying && ds_is_snap(d) && owned_by(d, vol);
        if (!any) {
            pthread_mutex_unlock(&p->lock);
            return berr_set(err, ENOENT, "no volume '%s' in pool '%s'", vol, p->name);
        }
    }
    size_t n = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        n++;
    struct bs_snap_props *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&p->lock);
        return berr_set(err, ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (!d->destroying && ds_is_snap(d) && (!vol || owned_by(d, vol)))
            fill_snap(p, d, &v[k++]);
    pthread_mutex_unlock(&p->lock);
    qsort(v, k, sizeof *v, cmp_snap);
    int r = 0;
    for (size_t i = 0; i < k && r == 0; i++)
        r = cb(&v[i], opaque);
    free(v);
    return r;
}

int bs_snap_get(bs_pool *p, const char *name, struct bs_snap_props *out, struct berr *err)
{
    pthread_mutex_lock(&p->lock);
    struct ds *s = find_snap(p, name);
    if (s)
        fill_snap(p, s, out);
    pthread_mutex_unlock(&p->lock);
    if (!s)
        return berr_set(err, ENOENT, "no snapshot '%s' in pool '%s'", name, p->name);
    return 0;
}

static bool has_tag(const char *holds, const char *tag)
{
    size_t n = strlen(tag);
    for (const char *c = holds; *c;) {
        size_t l = strcspn(c, ",");
        if (l == n && strncmp(c, tag, n) == 0)
            return true;
        c += l + (c[l] == ',');
    }
    return false;
}

static int hold_change(bs_pool *p, const char *name, const char *tag, bool add, struct berr *err)
{
    int r = writable(p, err);
    if (r == 0)
        r = validate_name(tag, "hold tag", err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *s = find_snap(p, name);
    char *h = s ? s->rec.holds : NULL;
    if (!s) {
        r = berr_set(err, ENOENT, "no snapshot '%s' in pool '%s'", name, p->name);
    } else if (add && has_tag(h, tag)) {
        r = berr_set(err, EEXIST, "snapshot '%s' already has a hold '%s'", name, tag);
    } else if (!add && !has_tag(h, tag)) {
        r = berr_set(err, ENOENT, "snapshot '%s' has no hold '%s'", name, tag);
    } else if (add) {
        size_t len = strlen(h);
        if (len + strlen(tag) + 2 > sizeof s->rec.holds)
            r = berr_set(err, ENOSPC, "snapshot '%s' has too many holds", name);
        else
            snprintf(h + len, sizeof s->rec.holds - len, "%s%s", len ? "," : "", tag);
    } else {
        char nh[sizeof s->rec.holds] = "";
        size_t n = strlen(tag), used = 0;
        for (const char *c = h; *c;) {
            size_t l = strcspn(c, ",");
            if (!(l == n && strncmp(c, tag, n) == 0)) {
                used += (size_t)snprintf(nh + used, sizeof nh - used, "%s%.*s", used ? "," : "",
                                         (int)l, c);
            }
            c += l + (c[l] == ',');
        }
        memcpy(h, nh, sizeof nh);
    }
    bool deferred = r == 0 && !add && !h[0] && (s->rec.flags & DS_FLAG_DEFER);
    uint64_t txg = 0;
    if (r == 0) {
        p->mos_dirty = true;
        txg = txg_dirty_open(p);
    }
    pthread_mutex_unlock(&p->lock);
    if (r == 0) {
        int w = txg_wait(p, txg);
        if (w < 0)
            r = berr_set(err, -w, "pool '%s' could not commit the hold (%s)", p->name,
                         strerror(-w));
    }
    pthread_mutex_unlock(&p->admin_lock);
    if (r == 0 && deferred) /* the last hold of a deferred destroy */
        (void)bs_snap_destroy(p, name, BS_DESTROY_DEFER, NULL);
    return r;
}

int bs_snap_hold(bs_pool *p, const char *name, const char *tag, struct berr *err)
{
    return hold_change(p, name, tag, true, err);
}

int bs_snap_release(bs_pool *p, const char *name, const char *tag, struct berr *err)
{
    return hold_change(p, name, tag, false, err);
}

/* ---- public: rollback, clone, promote, destroy ---- */

/* A head template continuing s (props of `like`, name `name`). */
static void head_tmpl(struct mos_ds *tm, const struct mos_ds *like, const char *name)
{
    *tm = *like;
    snprintf(tm->name, sizeof tm->name, "%s", name);
    tm->flags = like->flags & DS_FLAG_READONLY;
    tm->holds[0] = '\0';
    memset(&tm->recv, 0, sizeof tm->recv);
}

int bs_vol_rollback(bs_pool *p, const char *snapname, unsigned flags, struct berr *err)
{
    char vol[64], sn[64];
    int r = writable(p, err);
    if (r == 0)
        r = split_snap(snapname, vol, sn, err);
    if (r < 0)
        return r;
    struct synctask *t = task_new();
    if (!t)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *s = find_snap(p, snapname);
    struct ds *h = find_head(p, vol);
    struct st_item *a = NULL, *b = NULL;
    if (!s) {
        r = berr_set(err, ENOENT, "no snapshot '%s' in pool '%s'", snapname, p->name);
    } else if (!h) {
        r = berr_set(err, ENOENT, "no volume '%s' in pool '%s'", vol, p->name);
    } else if (h->nopen > 0 && !(flags & BS_DESTROY_FORCE)) {
        r = berr_set(err, EBUSY,
                     "volume '%s' is in use (%d open handle%s, e.g. a running VM); stop it "
                     "before rolling back",
                     vol, h->nopen, h->nopen == 1 ? "" : "s");
    } else if (!(a = task_add(t, ST_DESTROY)) || !(b = task_add(t, ST_NEW_HEAD))) {
        r = berr_set(err, ENOMEM, "out of memory");
    } else {
        a = &t->items[0];
        b = &t->items[1];
        a->ds = h;
        b->src = s;
        head_tmpl(&b->tmpl, &h->rec, vol);
        atomic_store(&h->gone, true);
    }
    pthread_mutex_unlock(&p->lock);
    if (r == 0) {
        r = task_run(p, t, "rollback", err);
    } else {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int bs_vol_clone(bs_pool *p, const char *snapname, const char *newvol,
                 const struct bs_vol_props *props, struct berr *err)
{
    char vol[64], sn[64];
    int r = writable(p, err);
    if (r == 0)
        r = split_snap(snapname, vol, sn, err);
    if (r == 0)
        r = validate_name(newvol, "volume", err);
    if (r < 0)
        return r;
    struct synctask *t = task_new();
    if (!t)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *s = find_snap(p, snapname);
    struct st_item *it = NULL;
    if (!s) {
        r = berr_set(err, ENOENT, "no snapshot '%s' in pool '%s'", snapname, p->name);
    } else if (ds_find(p, newvol)) {
        r = berr_set(err, EEXIST, "volume '%s' already exists in pool '%s'", newvol, p->name);
    } else if (!(it = task_add(t, ST_NEW_HEAD))) {
        r = berr_set(err, ENOMEM, "out of memory");
    } else {
        it->src = s;
        head_tmpl(&it->tmpl, &s->rec, newvol);
        it->tmpl.guid = new_guid(s->rec.id);
        it->tmpl.refreservation = 0;
        if (props) {
            if ((unsigned)props->compression <= BS_COMPRESS_ZSTD) {
                it->tmpl.comp = (uint8_t)props->compression;
                it->tmpl.comp_level = (uint8_t)(props->compression == BS_COMPRESS_ZSTD
                                                    ? (props->compress_level ? props->compress_level : 3)
                                                    : 0);
            }
            if (props->checksum == BS_CHECKSUM_XXH3 || props->checksum == BS_CHECKSUM_SHA256)
                it->tmpl.cksum = (uint8_t)props->checksum;
            it->tmpl.flags = props->readonly ? DS_FLAG_READONLY : 0;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (r == 0) {
        r = task_run(p, t, "clone", err);
    } else {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

/* The origin of head h: the first snapshot up its prev chain that belongs
 * to another volume (pool->lock held). */
static struct ds *origin_of(struct bs_pool *p, struct ds *h, const char *vol)
{
    for (struct ds *d = ds_by_id(p, h->rec.lin.prev_id); d; d = ds_by_id(p, d->rec.lin.prev_id))
        if (!owned_by(d, vol))
            return d;
    return NULL;
}

int bs_vol_promote(bs_pool *p, const char *vol, struct berr *err)
{
    int r = writable(p, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *h = find_head(p, vol);
    struct ds *o = h ? origin_of(p, h, vol) : NULL;
    char ovol[64] = "";
    if (!h) {
        r = berr_set(err, ENOENT, "no volume '%s' in pool '%s'", vol, p->name);
    } else if (!o) {
        r = berr_set(err, EINVAL, "volume '%s' is not a clone: nothing to promote", vol);
    } else {
        vol_of(o->rec.name, ovol);
        /* every snapshot from the origin back while it belongs to ovol */
        for (struct ds *d = o; r == 0 && d && owned_by(d, ovol);
             d = ds_by_id(p, d->rec.lin.prev_id)) {
            char nn[BS_SNAP_NAME_MAX];
            snprintf(nn, sizeof nn, "%s%s", vol, strchr(d->rec.name, '@'));
            if (ds_find(p, nn))
                r = berr_set(err, EEXIST,
                             "promote would move '%s' to '%s', which exists; rename or destroy "
                             "it first",
                             d->rec.name, nn);
        }
        for (struct ds *d = o; r == 0 && d && owned_by(d, ovol);
             d = ds_by_id(p, d->rec.lin.prev_id)) {
            char nn[BS_SNAP_NAME_MAX];
            snprintf(nn, sizeof nn, "%s%s", vol, strchr(d->rec.name, '@'));
            snprintf(d->rec.name, sizeof d->rec.name, "%s", nn);
        }
    }
    uint64_t txg = 0;
    if (r == 0) {
        p->mos_dirty = true;
        txg = txg_dirty_open(p);
    }
    pthread_mutex_unlock(&p->lock);
    if (r == 0) {
        int w = txg_wait(p, txg);
        if (w < 0)
            r = berr_set(err, -w, "promote: pool '%s' could not commit (%s)", p->name,
                         strerror(-w));
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

static int cmp_txg_desc(const void *a, const void *b)
{
    const struct ds *x = *(struct ds *const *)a, *y = *(struct ds *const *)b;
    return x->rec.create_txg > y->rec.create_txg ? -1 : x->rec.create_txg < y->rec.create_txg;
}

int bs_vol_destroy_ex(bs_pool *p, const char *name, unsigned flags, struct berr *err)
{
    int r = writable(p, err);
    if (r < 0)
        return r;
    struct synctask *t = task_new();
    if (!t)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *h = find_head(p, name);
    size_t nsnap = 0, n = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (!d->destroying && ds_is_snap(d) && owned_by(d, name))
            nsnap++;
    struct ds **snaps = calloc(nsnap + 1, sizeof *snaps);
    if (!h) {
        r = berr_set(err, ENOENT, "no volume '%s' in pool '%s'", name, p->name);
    } else if (!snaps) {
        r = berr_set(err, ENOMEM, "out of memory");
    } else if (h->nopen > 0 && !(flags & BS_DESTROY_FORCE)) {
        r = busy_open(h, "volume", err);
    } else if (nsnap && !(flags & BS_DESTROY_RECURSIVE)) {
        r = berr_set(err, EBUSY,
                     "volume '%s' has %zu snapshot%s; destroy them first or destroy recursively "
                     "(-r)",
                     name, nsnap, nsnap == 1 ? "" : "s");
    }
    for (struct ds *d = p->ds_list; r == 0 && d; d = d->next) {
        if (d->destroying || !ds_is_snap(d) || !owned_by(d, name))
            continue;
        snaps[n++] = d;
        if (d->nopen > 0 && !(flags & BS_DESTROY_FORCE))
            r = busy_open(d, "snapshot", err);
        else if (d->rec.holds[0])
            r = berr_set(err, EBUSY, "snapshot '%s' is held (tags: %s); release it first",
                         d->rec.name, d->rec.holds);
        for (struct ds *c = p->ds_list; r == 0 && c; c = c->next) {
            if (c->destroying || c->rec.lin.prev_id != d->rec.id || c == h || owned_by(c, name))
                continue;
            r = berr_set(err, EBUSY,
                         "snapshot '%s' is the origin of '%s'; destroy or promote it first",
                         d->rec.name, c->rec.name);
        }
    }
    if (r == 0) {
        /* leaves first: the head, then snapshots newest first (a child is
         * always newer than its prev) */
        qsort(snaps, n, sizeof *snaps, cmp_txg_desc);
        struct st_item *it = task_add(t, ST_DESTROY);
        if (it)
            it->ds = h;
        for (size_t i = 0; it && i < n; i++) {
            it = task_add(t, ST_DESTROY);
            if (it)
                it->ds = snaps[i];
        }
        if (!it) {
            r = berr_set(err, ENOMEM, "out of memory");
        } else {
            atomic_store(&h->gone, true);
            for (size_t i = 0; i < n; i++)
                atomic_store(&snaps[i]->gone, true);
        }
    }
    pthread_mutex_unlock(&p->lock);
    free(snaps);
    if (r == 0) {
        r = task_run(p, t, "destroy volume", err);
    } else {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int bs_vol_destroy(bs_pool *p, const char *name, bool force, struct berr *err)
{
    return bs_vol_destroy_ex(p, name, force ? BS_DESTROY_FORCE : 0, err);
}

int vol_space_locked(struct bs_pool *p, struct ds *h, struct bs_vol_space *o)
{
    const char *vol = h->rec.name;
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&h->lock);
    o->referenced = h->od.allocated;
    pthread_mutex_unlock(&h->lock);
    o->usedbydataset = h->rec.lin.born;
    o->written = h->rec.lin.born;
    o->usedbymeta = h->rec.lin.dl.allocated;
    for (struct ds *d = p->ds_list; d; d = d->next) {
        if (d->destroying || !ds_is_snap(d) || !owned_by(d, vol))
            continue;
        o->nsnapshots++;
        o->usedbysnapshots += d->rec.lin.born;
        o->usedbymeta += d->rec.lin.dl.allocated;
    }
    if (h->rec.refreservation > o->usedbydataset)
        o->usedbyrefreservation = h->rec.refreservation - o->usedbydataset;
    o->used = o->usedbydataset + o->usedbysnapshots + o->usedbyrefreservation + o->usedbymeta;
    struct ds *org = origin_of(p, h, vol);
    if (org)
        snprintf(o->origin, sizeof o->origin, "%s", org->rec.name);
    return 0;
}

int bs_vol_space(bs_pool *p, const char *vol, struct bs_vol_space *o, struct berr *err)
{
    pthread_mutex_lock(&p->lock);
    struct ds *h = find_head(p, vol);
    int r = h ? vol_space_locked(p, h, o) : -ENOENT;
    pthread_mutex_unlock(&p->lock);
    if (r < 0)
        return berr_set(err, ENOENT, "no volume '%s' in pool '%s'", vol, p->name);
    return 0;
}

/* ---- send/receive support (snap.h) ---- */

int snap_view_of(bs_vol *v, struct snap_view *out)
{
    struct ds *d = v->ds;
    if (!ds_is_snap(d))
        return -EINVAL;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&v->pool->lock);
    out->od = d->od;
    out->txg = d->rec.create_txg;
    out->guid = d->rec.guid;
    out->volsize = d->rec.volsize;
    out->volblocksize = d->rec.volblocksize;
    out->comp = d->rec.comp;
    out->comp_level = d->rec.comp_level;
    out->cksum = d->rec.cksum;
    out->creation = d->rec.creation;
    snprintf(out->name, sizeof out->name, "%s", d->rec.name);
    pthread_mutex_unlock(&v->pool->lock);
    return 0;
}

bool snap_is_ancestor(bs_vol *v, uint64_t anc_guid, uint64_t *anc_txg)
{
    struct bs_pool *p = v->pool;
    bool found = false;
    pthread_mutex_lock(&p->lock);
    for (struct ds *d = v->ds; d; d = ds_by_id(p, d->rec.lin.prev_id)) {
        if (ds_is_snap(d) && d->rec.guid == anc_guid) {
            if (anc_txg)
                *anc_txg = d->rec.create_txg;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return found;
}

int snap_chain_between(struct bs_pool *p, const char *to, uint64_t from_txg,
                       char (**names)[BS_SNAP_NAME_MAX], size_t *n, struct berr *err)
{
    *names = NULL;
    *n = 0;
    pthread_mutex_lock(&p->lock);
    struct ds *s = find_snap(p, to);
    size_t cnt = 0;
    for (struct ds *d = s; d && d->rec.create_txg > from_txg; d = ds_by_id(p, d->rec.lin.prev_id))
        cnt++;
    char(*v)[BS_SNAP_NAME_MAX] = s ? calloc(cnt ? cnt : 1, sizeof *v) : NULL;
    size_t k = cnt;
    for (struct ds *d = s; v && d && d->rec.create_txg > from_txg;
         d = ds_by_id(p, d->rec.lin.prev_id))
        snprintf(v[--k], BS_SNAP_NAME_MAX, "%s", d->rec.name);
    pthread_mutex_unlock(&p->lock);
    if (!s)
        return berr_set(err, ENOENT, "no snapshot '%s' in pool '%s'", to, p->name);
    if (!v)
        return berr_set(err, ENOMEM, "out of memory");
    *names = v;
    *n = cnt;
    return 0;
}

static void recv_name(const char *vol, char out[BS_SNAP_NAME_MAX])
{
    snprintf(out, BS_SNAP_NAME_MAX, "%s%%recv", vol);
}

int recv_begin_full(struct bs_pool *p, const char *vol, uint64_t volsize, uint32_t volblocksize,
                    const struct recv_state *rs, struct berr *err)
{
    int r = writable(p, err);
    if (r == 0)
        r = validate_name(vol, "volume", err);
    if (r < 0)
        return r;
    if (!IS_POW2(volblocksize) || volblocksize < 4096 || volblocksize > 131072 || volsize == 0 ||
        volsize % volblocksize || volsize / volblocksize > (1ULL << 48))
        return berr_set(err, EINVAL, "stream has an invalid volume geometry (%llu bytes, %u)",
                        (unsigned long long)volsize, volblocksize);
    char hidden[BS_SNAP_NAME_MAX];
    recv_name(vol, hidden);
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    if (ds_find(p, vol)) {
        r = berr_set(err, EEXIST,
                     "volume '%s' exists; a full stream creates a new volume (receive an "
                     "incremental, or destroy it first)",
                     vol);
    } else if (ds_find(p, hidden)) {
        r = berr_set(err, EBUSY,
                     "a receive into '%s' is pending; resume it with its token or abort it", vol);
    } else {
        struct mos_ds rec = {0};
        snprintf(rec.name, sizeof rec.name, "%s", hidden);
        rec.id = p->next_id++;
        rec.guid = new_guid(rec.id);
        rec.create_txg = p->txg.open_txg;
        rec.creation = (uint64_t)time(NULL);
        rec.volsize = volsize;
        rec.volblocksize = volblocksize;
        rec.comp = p->comp;
        rec.comp_level = p->comp_level;
        rec.cksum = p->cksum;
        rec.flags = DS_FLAG_RECV;
        rec.recv.toguid = rs->toguid;
        rec.recv.fromguid = rs->fromguid;
        rec.recv.offset = rs->offset;
        snprintf(rec.recv.snapname, sizeof rec.recv.snapname, "%s", rs->snapname);
        objdesc_init(&rec.od, __builtin_ctz(volblocksize), volsize / volblocksize);
        objdesc_init(&rec.lin.dl, DL_DSHIFT, 0);
        struct ds *d = ds_new(p, &rec);
        if (!d) {
            r = berr_set(err, ENOMEM, "out of memory");
        } else {
            d->next = p->ds_list;
            p->ds_list = d;
            p->mos_dirty = true;
        }
    }
    uint64_t txg = r == 0 ? txg_dirty_open(p) : 0;
    pthread_mutex_unlock(&p->lock);
    if (r == 0) {
        int w = txg_wait(p, txg);
        if (w < 0)
            r = berr_set(err, -w, "receive: pool '%s' could not commit (%s)", p->name,
                         strerror(-w));
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int recv_begin_incr(struct bs_pool *p, const char *vol, uint64_t volsize,
                    const struct recv_state *rs, bool force, struct berr *err)
{
    (void)volsize; /* the clone takes the base's size; the stream resizes it */
    int r = writable(p, err);
    if (r < 0)
        return r;
    char hidden[BS_SNAP_NAME_MAX];
    recv_name(vol, hidden);
    struct synctask *t = task_new();
    if (!t)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&p->admin_lock);
    r = txg_sync_all(p); /* so that `born` tells whether vol changed since its snapshot */
    pthread_mutex_lock(&p->lock);
    struct ds *h = find_head(p, vol);
    struct ds *base = h ? ds_by_id(p, h->rec.lin.prev_id) : NULL;
    struct st_item *it = NULL;
    if (r < 0) {
        r = berr_set(err, -r, "receive: pool '%s' could not sync (%s)", p->name, strerror(-r));
    } else if (!h) {
        r = berr_set(err, ENOENT, "no volume '%s' in pool '%s' to receive an incremental into",
                     vol, p->name);
    } else if (ds_find(p, hidden)) {
        r = berr_set(err, EBUSY,
                     "a receive into '%s' is pending; resume it with its token or abort it", vol);
    } else if (!base || !owned_by(base, vol) || base->rec.guid != rs->fromguid) {
        r = berr_set(err, EXDEV,
                     "the stream's base snapshot is not the latest snapshot of '%s'%s%s%s", vol,
                     base ? " (which is " : "", base ? base->rec.name : "", base ? ")" : "");
    } else if (!force && (h->rec.lin.born || h->rec.lin.dl_count)) {
        r = berr_set(err, EBUSY,
                     "volume '%s' was modified since snapshot '%s'; roll it back or receive with "
                     "force (-F)",
                     vol, base->rec.name);
    } else if (!(it = task_add(t, ST_NEW_HEAD))) {
        r = berr_set(err, ENOMEM, "out of memory");
    } else {
        it->src = base;
        head_tmpl(&it->tmpl, &h->rec, hidden);
        it->tmpl.flags = DS_FLAG_RECV;
        it->tmpl.guid = new_guid(h->rec.id);
        it->tmpl.refreservation = 0;
        it->tmpl.recv.toguid = rs->toguid;
        it->tmpl.recv.fromguid = rs->fromguid;
        it->tmpl.recv.offset = rs->offset;
        snprintf(it->tmpl.recv.snapname, sizeof it->tmpl.recv.snapname, "%s", rs->snapname);
    }
    pthread_mutex_unlock(&p->lock);
    if (r == 0) {
        r = task_run(p, t, "receive", err);
    } else {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int recv_open(struct bs_pool *p, const char *vol, bs_vol **out, struct berr *err)
{
    char hidden[BS_SNAP_NAME_MAX];
    recv_name(vol, hidden);
    bs_vol *v = calloc(1, sizeof *v);
    if (!v)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, hidden);
    if (d) {
        ds_ref(d);
        d->nopen++;
    }
    pthread_mutex_unlock(&p->lock);
    if (!d) {
        free(v);
        return berr_set(err, ENOENT, "no receive in progress into '%s'", vol);
    }
    v->pool = p;
    v->ds = d;
    *out = v;
    return 0;
}

int recv_get_state(struct bs_pool *p, const char *vol, struct recv_state *out)
{
    char hidden[BS_SNAP_NAME_MAX];
    recv_name(vol, hidden);
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, hidden);
    if (d) {
        out->toguid = d->rec.recv.toguid;
        out->fromguid = d->rec.recv.fromguid;
        out->offset = d->rec.recv.offset;
        snprintf(out->snapname, sizeof out->snapname, "%s", d->rec.recv.snapname);
    }
    pthread_mutex_unlock(&p->lock);
    return d ? 0 : -ENOENT;
}

int recv_set_offset(struct bs_pool *p, const char *vol, uint64_t offset, struct berr *err)
{
    char hidden[BS_SNAP_NAME_MAX];
    recv_name(vol, hidden);
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, hidden);
    uint64_t txg = 0;
    if (d) {
        d->rec.recv.offset = offset;
        p->mos_dirty = true;
        txg = txg_dirty_open(p);
    }
    pthread_mutex_unlock(&p->lock);
    int r = d ? txg_wait(p, txg) : -ENOENT;
    pthread_mutex_unlock(&p->admin_lock);
    if (r < 0)
        return berr_set(err, -r, "receive into '%s': cannot record progress (%s)", vol,
                        strerror(-r));
    return 0;
}

int recv_finish(struct bs_pool *p, const char *vol, uint64_t creation, struct berr *err)
{
    char hidden[BS_SNAP_NAME_MAX];
    recv_name(vol, hidden);
    struct synctask *t = task_new();
    if (!t)
        return berr_set(err, ENOMEM, "out of memory");
    int r = 0;
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *hd = ds_find(p, hidden);
    struct ds *h = find_head(p, vol);
    char snapname[BS_SNAP_NAME_MAX];
    if (!hd) {
        r = berr_set(err, ENOENT, "no receive in progress into '%s'", vol);
    } else {
        snprintf(snapname, sizeof snapname, "%s@%s", vol, hd->rec.recv.snapname);
        if (ds_find(p, snapname)) {
            r = berr_set(err, EEXIST, "snapshot '%s' already exists", snapname);
        } else if (hd->rec.recv.fromguid && !h) {
            r = berr_set(err, ENOENT, "volume '%s' went away during the receive", vol);
        } else if (!hd->rec.recv.fromguid && h) {
            r = berr_set(err, EEXIST, "volume '%s' was created during the receive", vol);
        } else if (h && h->nopen > 0) {
            r = berr_set(err, EBUSY,
                         "volume '%s' is in use (%d open handle%s); close it to finish the "
                         "receive",
                         vol, h->nopen, h->nopen == 1 ? "" : "s");
        }
    }
    if (r == 0 && h) {
        struct st_item *it = task_add(t, ST_DESTROY);
        if (it)
            it->ds = h;
        else
            r = berr_set(err, ENOMEM, "out of memory");
    }
    if (r == 0) {
        struct st_item *a = task_add(t, ST_RENAME);
        struct st_item *b = a ? task_add(t, ST_SNAP) : NULL;
        if (!b) {
            r = berr_set(err, ENOMEM, "out of memory");
        } else {
            a = &t->items[t->n - 2];
            a->ds = hd;
            snprintf(a->name, sizeof a->name, "%s", vol);
            a->tmpl.flags = 0;
            b->ds = hd;
            snprintf(b->name, sizeof b->name, "%s", snapname);
            b->guid = hd->rec.recv.toguid;
            b->creation = creation;
            if (h)
                atomic_store(&h->gone, true);
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (r == 0) {
        r = task_run(p, t, "receive", err);
    } else {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int recv_discard(struct bs_pool *p, const char *vol, struct berr *err)
{
    char hidden[BS_SNAP_NAME_MAX];
    recv_name(vol, hidden);
    struct synctask *t = task_new();
    if (!t)
        return berr_set(err, ENOMEM, "out of memory");
    int r = 0;
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *hd = ds_find(p, hidden);
    struct st_item *it = NULL;
    if (!hd)
        r = berr_set(err, ENOENT, "no receive in progress into '%s'", vol);
    else if (!(it = task_add(t, ST_DESTROY)))
        r = berr_set(err, ENOMEM, "out of memory");
    else {
        it->ds = hd;
        atomic_store(&hd->gone, true);
    }
    pthread_mutex_unlock(&p->lock);
    if (r == 0) {
        r = task_run(p, t, "abort receive", err);
    } else {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}
