/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The public snapshot calls (store.h): create, destroy, list, holds,
 * rollback, clone, promote, volume destroy and space.  Each validates under
 * admin_lock + pool->lock, queues its sync task (snap.c has the model and
 * the syncing-context side) and waits for the txg that carries it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/pool_impl.h"
#include "store/snap.h"
#include "store/snap_impl.h"
#include "store/sync_impl.h"

/* ---- public: snapshots ---- */




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
    return task_finish(p, t, r, "snapshot", err);
}

/* Names of the datasets continuing s, comma-separated (pool->lock held). */
static void dependents(struct bs_pool *p, const struct ds *s, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t used = 0;
    for (struct ds *d = p->ds_list; d; d = d->next) {
        if (d->destroying || d->rec.lin.prev_id != s->rec.id)
            continue;
        char nm[BS_SNAP_NAME_MAX + 32], sv[64], dv[64];
        vol_of(s->rec.name, sv);
        vol_of(d->rec.name, dv);
        if (d->rec.flags & DS_FLAG_RECV)
            snprintf(nm, sizeof nm, "a receive into '%s'", dv);
        else if (ds_is_snap(d))
            snprintf(nm, sizeof nm, "%ssnapshot '%s'", strcmp(sv, dv) ? "" : "the newer ",
                     d->rec.name);
        else if (strcmp(sv, dv) == 0)
            snprintf(nm, sizeof nm, "volume '%s' (rolled back to it)", dv);
        else
            snprintf(nm, sizeof nm, "clone '%s'", dv);
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
                         "snapshot '%s' is the base of %s; destroy one of them first (promote a "
                         "clone to keep it), or defer the destroy (-d)",
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
        r = admin_commit(p, txg, err, "destroy snapshot");
    }
    if (t) {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

/* pool->lock held */
/* The datasets continuing a snapshot: how many, one of them, how many are
 * other volumes (clones). */
struct kids {
    size_t n;
    struct ds *first;
    uint32_t nclones;
};

static void kids_add(struct kids *k, const struct ds *s, struct ds *d)
{
    if (k->n++ == 0)
        k->first = d;
    char sv[64], dv[64];
    vol_of(s->rec.name, sv);
    vol_of(d->rec.name, dv);
    if (strcmp(sv, dv) != 0)
        k->nclones++;
}

/* pool->lock held */
static void fill_snap(struct ds *s, const struct kids *k, struct bs_snap_props *o)
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
    o->compressratio = s->od.physical ? (double)s->od.logical /
                                            (s->od.physical * pool_tops_data_fraction(s->pool))
                                      : 1.0;
    snprintf(o->holds, sizeof o->holds, "%s", s->rec.holds);
    for (const char *c = s->rec.holds; *c; c++)
        if (c == s->rec.holds || *c == ',')
            o->nholds++;
    o->defer_destroy = (s->rec.flags & DS_FLAG_DEFER) != 0;
    o->nclones = k->nclones;
    o->encrypted = s->key != NULL;
    o->keyloaded = !s->key || s->key->master;
    /* what a destroy would free now (0 while it cannot be destroyed) */
    o->used = k->n == 0 ? s->rec.lin.born : k->n == 1 ? k->first->rec.lin.dl_uniq : 0;
}

static void kids_of(struct bs_pool *p, struct ds *s, struct kids *k)
{
    memset(k, 0, sizeof *k);
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (!d->destroying && d->rec.lin.prev_id == s->rec.id)
            kids_add(k, s, d);
}

static int cmp_ds_id(const void *a, const void *b)
{
    const struct ds *x = *(struct ds *const *)a, *y = *(struct ds *const *)b;
    return x->rec.id < y->rec.id ? -1 : x->rec.id > y->rec.id;
}

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
    /* children of every snapshot in one pass: datasets sorted by id, each
     * prev link found by binary search (n log n, not n^2, for many) */
    size_t n = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        n += !d->destroying;
    struct bs_snap_props *v = malloc((n ? n : 1) * sizeof *v);
    struct ds **all = malloc((n ? n : 1) * sizeof *all);
    struct kids *kid = calloc(n ? n : 1, sizeof *kid);
    if (!v || !all || !kid) {
        pthread_mutex_unlock(&p->lock);
        free(v);
        free(all);
        free(kid);
        return berr_set(err, ENOMEM, "out of memory");
    }
    size_t m = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (!d->destroying)
            all[m++] = d;
    qsort(all, m, sizeof *all, cmp_ds_id);
    for (size_t i = 0; i < m; i++) {
        if (!all[i]->rec.lin.prev_id)
            continue;
        struct ds key_ds = { .rec.id = all[i]->rec.lin.prev_id }, *key = &key_ds;
        struct ds **hit = bsearch(&key, all, m, sizeof *all, cmp_ds_id);
        if (hit)
            kids_add(&kid[hit - all], *hit, all[i]);
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (ds_is_snap(all[i]) && (!vol || owned_by(all[i], vol)))
            fill_snap(all[i], &kid[i], &v[k++]);
    pthread_mutex_unlock(&p->lock);
    free(all);
    free(kid);
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
    if (s) {
        struct kids k;
        kids_of(p, s, &k);
        fill_snap(s, &k, out);
    }
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
    r = admin_record_commit(p, r, "hold", err);
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
    return task_finish(p, t, r, "rollback", err);
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
    return task_finish(p, t, r, "clone", err);
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
    r = admin_record_commit(p, r, "promote", err);
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
            char cv[64];
            vol_of(c->rec.name, cv);
            r = berr_set(err, EBUSY,
                         "snapshot '%s' is the origin of volume '%s'%s%s%s; destroy that volume "
                         "or promote it first",
                         d->rec.name, cv, ds_is_snap(c) ? " (through its snapshot '" : "",
                         ds_is_snap(c) ? c->rec.name : "", ds_is_snap(c) ? "')" : "");
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
    return task_finish(p, t, r, "destroy volume", err);
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

