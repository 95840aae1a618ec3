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
#include "store/keyslot.h"
#include "store/pool_impl.h"
#include "store/snap.h"
#include "store/snap_impl.h"
#include "store/sync_impl.h"

/* ---- names ---- */

/* Split "VOL@SNAP"; validates both parts. */
int split_snap(const char *name, char vol[64], char snap[64], struct berr *err)
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
void vol_of(const char *name, char out[64])
{
    size_t n = strcspn(name, "@%");
    if (n > 63)
        n = 63;
    memcpy(out, name, n);
    out[n] = '\0';
}

bool owned_by(const struct ds *d, const char *vol)
{
    size_t n = strlen(vol);
    return strncmp(d->rec.name, vol, n) == 0 && d->rec.name[n] == '@';
}

struct ds *find_head(struct bs_pool *p, const char *vol)
{
    return ds_find_vol(p, vol);
}

struct ds *find_snap(struct bs_pool *p, const char *name)
{
    struct ds *d = ds_find(p, name);
    return d && ds_is_snap(d) ? d : NULL;
}

size_t nchildren(struct bs_pool *p, const struct ds *s, struct ds **first)
{
    size_t n = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (!d->destroying && d->rec.lin.prev_id == s->rec.id) {
            if (n++ == 0 && first)
                *first = d;
        }
    return n;
}

uint64_t new_guid(uint64_t salt)
{
    uint64_t g;
    if (getrandom(&g, sizeof g, 0) != sizeof g)
        g = now_ns() ^ (salt * 0x9e3779b97f4a7c15ULL);
    return g ? g : 1;
}

/* ---- the task queue ---- */

struct st_item *task_add(struct synctask *t, enum st_op op)
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
int task_run(struct bs_pool *p, struct synctask *t, const char *what, struct berr *err)
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

int busy_open(const struct ds *d, const char *what, struct berr *err)
{
    return berr_set(err, EBUSY, "%s '%s' is in use (%d open handle%s); close it or force", what,
                    d->rec.name, d->nopen, d->nopen == 1 ? "" : "s");
}

int writable(struct bs_pool *p, struct berr *err)
{
    if (p->readonly)
        return berr_set(err, EROFS, "pool '%s' is read-only", p->name);
    return 0;
}

struct synctask *task_new(void)
{
    return calloc(1, sizeof(struct synctask));
}

/* A head template continuing s (props of `like`, name `name`). */
void head_tmpl(struct mos_ds *tm, const struct mos_ds *like, const char *name)
{
    *tm = *like;
    snprintf(tm->name, sizeof tm->name, "%s", name);
    tm->flags = like->flags & DS_FLAG_READONLY;
    tm->holds[0] = '\0';
    memset(&tm->recv, 0, sizeof tm->recv);
}

/* The origin of head h: the first snapshot up its prev chain that belongs
 * to another volume (pool->lock held). */
struct ds *origin_of(struct bs_pool *p, struct ds *h, const char *vol)
{
    for (struct ds *d = ds_by_id(p, h->rec.lin.prev_id); d; d = ds_by_id(p, d->rec.lin.prev_id))
        if (!owned_by(d, vol))
            return d;
    return NULL;
}

int task_finish(struct bs_pool *p, struct synctask *t, int r, const char *what,
                struct berr *err)
{
    if (r == 0) {
        r = task_run(p, t, what, err);
    } else {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
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
    /* one entry per copy: a deadlist lists allocations (a ditto copy is
     * freed like any other, by its own entry) */
    while (sv->ndlp + (size_t)bp_ncopies(bp) > sv->dlp_cap) {
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
    for (int c = 0; c < bp_ncopies(bp); c++)
        sv->dlp[sv->ndlp++] = (struct dl_ent){
            .offset = bp->dva[c].offset, .birth = bp->birth, .asize = bp->dva[c].asize,
            .vdev = bp->dva[c].vdev,
        };
    sv->dl_added += bp_asize(bp);
    sv->rec.lin.dl_bytes += bp_asize(bp);
    if (bp->birth > sv->pp_txg)
        sv->rec.lin.dl_uniq += bp_asize(bp);
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
            pool_tops_free(p, e->vdev, e->offset, e->asize, c->txg);
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
    /* the same tree, size and key: the snapshot's MAC holds (dsauth.h) */
    memcpy(rec.root_mac, ssv->rec.root_mac, sizeof rec.root_mac);
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

/* A raw receive's new slot set, in the txg that makes the received data the
 * volume (vkeys_to_dir writes the key records after the tasks ran). */
static int do_keyslots(struct sync_ctx *c, struct st_item *it)
{
    pthread_mutex_lock(&c->p->lock);
    struct vkey *k = it->key;
    /* the slot that unlocked a loaded key may be gone or another now: the
     * master key stays (same data key), only the slot number is unknown */
    uint8_t a[KEYSLOTS_SIZE], b[KEYSLOTS_SIZE];
    keyslots_encode(&k->rec.slots, a);
    keyslots_encode(&it->slots->slots, b);
    size_t at = (size_t)k->loaded_slot * KEYSLOT_SIZE;
    if (k->loaded_slot >= 0 && memcmp(a + at, b + at, KEYSLOT_SIZE) != 0)
        k->loaded_slot = -1;
    k->rec.slots = it->slots->slots;
    k->rec.keyformat = it->slots->keyformat;
    pthread_mutex_unlock(&c->p->lock);
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
            case ST_KEYSLOTS: r = do_keyslots(c, it); break;
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

