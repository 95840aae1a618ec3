/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What send and receive need of the snapshot model (snap.h): a snapshot's
 * view and lineage, and the hidden "VOL%recv" volume a receive writes into
 * until recv_finish makes it the volume in one txg. */
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

int snap_open_raw(struct bs_pool *p, const char *name, bs_vol **out, struct berr *err)
{
    bs_vol *v = calloc(1, sizeof *v);
    if (!v)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, name);
    bool ok = d && ds_is_snap(d) && !(d->rec.flags & DS_FLAG_RECV) && d->key;
    if (ok) {
        ds_ref(d);
        d->nopen++;
    }
    pthread_mutex_unlock(&p->lock);
    if (!ok) {
        free(v);
        if (!d || !ds_is_snap(d) || (d->rec.flags & DS_FLAG_RECV))
            return berr_set(err, ENOENT, "no snapshot '%s' in pool '%s'", name, p->name);
        return berr_set(err, EINVAL,
                        "'%s' is not encrypted: a raw stream carries encrypted blocks only "
                        "(send it without --raw)",
                        name);
    }
    v->pool = p;
    v->ds = d;
    *out = v;
    return 0;
}

int snap_key_of(bs_vol *v, struct mos_key *out)
{
    pthread_mutex_lock(&v->pool->lock);
    const struct vkey *k = v->ds->key;
    if (k)
        *out = k->rec;
    pthread_mutex_unlock(&v->pool->lock);
    return k ? 0 : -EINVAL;
}

int recv_check_key(struct bs_pool *p, const char *vol, bool hidden, uint64_t key_guid,
                   const uint8_t fingerprint[16], struct berr *err)
{
    char name[BS_SNAP_NAME_MAX];
    if (hidden)
        recv_name(vol, name);
    else
        snprintf(name, sizeof name, "%s", vol);
    pthread_mutex_lock(&p->lock);
    struct ds *d = hidden ? ds_find(p, name) : find_head(p, name);
    int r = 0;
    if (!d)
        r = berr_set(err, ENOENT, "no volume '%s' in pool '%s'", vol, p->name);
    else if (!d->key)
        r = berr_set(err, EINVAL,
                     "'%s' is not encrypted: a raw stream applies only onto a volume that "
                     "was raw-received (send without --raw, or receive a full raw stream "
                     "into a new volume)",
                     vol);
    else if (d->key->rec.guid != key_guid ||
             memcmp(d->key->rec.fingerprint, fingerprint, CRYPT_FINGERPRINT_LEN) != 0)
        r = berr_set(err, EXDEV,
                     "the raw stream is encrypted with another key (key guid %llu) than "
                     "'%s' (key guid %llu): raw incrementals apply only onto the same key",
                     (unsigned long long)key_guid, vol,
                     (unsigned long long)d->key->rec.guid);
    pthread_mutex_unlock(&p->lock);
    return r;
}

/* recv_begin_full with `key` NULL (plain) or the raw stream's key. */
static int begin_full(struct bs_pool *p, const char *vol, uint64_t volsize,
                      uint32_t volblocksize, const struct recv_state *rs,
                      const struct mos_key *key, struct berr *err)
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
    struct vkey *k = NULL;
    if (key) {
        /* the sender's key, locked: its slots unwrap it once a user key is
         * given ('berth key load'), and its guid is the one in every
         * block's AAD */
        if (!(k = calloc(1, sizeof *k)))
            return berr_set(err, ENOMEM, "out of memory");
        k->rec = *key;
        k->rec.suite = 1;
        snprintf(k->rec.location, sizeof k->rec.location, "prompt");
        k->loaded_slot = -1;
    }
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    /* A key guid names one key record per pool (the directory refuses two):
     * a stream whose key this pool has already (received back into the
     * pool it came from, or a second copy) shares that record, as a clone
     * shares its origin's, provided it is the same master key. */
    struct vkey *same = NULL;
    for (struct vkey *x = p->keys; k && x && !same; x = x->next)
        if (x->rec.guid == key->guid)
            same = x;
    if (same && memcmp(same->rec.fingerprint, key->fingerprint, CRYPT_FINGERPRINT_LEN) != 0) {
        r = berr_set(err, EEXIST,
                     "pool '%s' has another key with the stream's key guid %llu: cannot "
                     "receive it",
                     p->name, (unsigned long long)key->guid);
    } else if (ds_find(p, vol)) {
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
        if (same) {
            rec.key_id = same->rec.id;
        } else if (k) {
            k->rec.id = rec.key_id = rec.id;
            k->next = p->keys;
            p->keys = k;
        }
        r = ds_insert_new(p, &rec, err);
        if (r < 0 && k && !same)
            p->keys = k->next;
        else if (!same)
            k = NULL; /* the pool's now */
    }
    vkey_free(k);
    uint64_t txg = r == 0 ? txg_dirty_open(p) : 0;
    pthread_mutex_unlock(&p->lock);
    if (r == 0)
        r = admin_commit(p, txg, err, "receive");
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int recv_begin_full(struct bs_pool *p, const char *vol, uint64_t volsize, uint32_t volblocksize,
                    const struct recv_state *rs, struct berr *err)
{
    return begin_full(p, vol, volsize, volblocksize, rs, NULL, err);
}

int recv_begin_full_raw(struct bs_pool *p, const char *vol, uint64_t volsize,
                        uint32_t volblocksize, const struct recv_state *rs,
                        const struct mos_key *key, struct berr *err)
{
    return begin_full(p, vol, volsize, volblocksize, rs, key, err);
}

int recv_begin_incr(struct bs_pool *p, const char *vol, uint64_t volsize,
                    const struct recv_state *rs, bool force, struct berr *err)
{
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
        /* the clone has the base's size; the stream's snapshot may differ */
        if (r == 0)
            r = vol_resize_locked(p, hidden, volsize, true, true, err);
    } else {
        free(t->items);
        free(t);
    }
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int recv_open(struct bs_pool *p, const char *vol, bool raw, bs_vol **out, struct berr *err)
{
    char hidden[BS_SNAP_NAME_MAX];
    recv_name(vol, hidden);
    bs_vol *v = calloc(1, sizeof *v);
    if (!v)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, hidden);
    bool locked = !raw && d && d->key && (!d->key->master || d->key->unloading);
    bool plain = raw && d && !d->key;
    if (d && !locked && !plain) {
        ds_ref(d);
        d->nopen++;
    }
    pthread_mutex_unlock(&p->lock);
    if (!d || locked || plain) {
        free(v);
        if (plain)
            return berr_set(err, EINVAL, "'%s' is not encrypted: a raw stream cannot be "
                            "received into it", vol);
        return locked ? berr_set(err, EACCES, "'%s' is encrypted and its key is not loaded: "
                                 "run 'berth key load %s/%s' first, or send the stream with "
                                 "--raw", vol, p->name, vol)
                      : berr_set(err, ENOENT, "no receive in progress into '%s'", vol);
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

/* Is d of vol's lineage: vol, its snapshots, its pending receive, or a
 * clone made from one of its snapshots (pool->lock held)? */
static bool of_lineage(struct bs_pool *p, struct ds *d, const char *vol, const char *hidden)
{
    for (struct ds *x = d; x; x = ds_by_id(p, x->rec.lin.prev_id))
        if (strcmp(x->rec.name, vol) == 0 || strcmp(x->rec.name, hidden) == 0 ||
            owned_by(x, vol))
            return true;
    return false;
}

/* What a raw section's slot set does to the key record of VOL%recv (hd),
 * pool->lock held; the rule is in snap.h.  Queues ST_KEYSLOTS on t when
 * the record follows the stream. */
static int slots_rule(struct bs_pool *p, struct ds *hd, const char *vol, const char *hidden,
                      const struct mos_key *sk, struct synctask *t, struct recv_slots *out,
                      struct berr *err)
{
    struct vkey *k = hd->key;
    if (!k)
        return berr_set(err, EINVAL, "'%s' is not encrypted: a raw stream cannot be "
                        "received into it", vol);
    if (k->rec.guid != sk->guid ||
        memcmp(k->rec.fingerprint, sk->fingerprint, CRYPT_FINGERPRINT_LEN) != 0)
        return berr_set(err, EXDEV, "the raw stream is encrypted with another key (key guid "
                        "%llu) than '%s' (key guid %llu)", (unsigned long long)sk->guid, vol,
                        (unsigned long long)k->rec.guid);
    uint8_t a[KEYSLOTS_SIZE], b[KEYSLOTS_SIZE];
    keyslots_encode(&k->rec.slots, a);
    keyslots_encode(&sk->slots, b);
    if (memcmp(a, b, sizeof a) == 0 && k->rec.keyformat == sk->keyformat) {
        out->outcome = BS_RECV_KEYSLOTS_SAME;
        return 0;
    }
    for (struct ds *d = p->ds_list; d; d = d->next) {
        if (d->key != k || d->destroying || of_lineage(p, d, vol, hidden))
            continue;
        out->outcome = BS_RECV_KEYSLOTS_KEPT;
        snprintf(out->shared_with, sizeof out->shared_with, "%s", d->rec.name);
        return 0;
    }
    struct st_item *it = task_add(t, ST_KEYSLOTS);
    if (!it)
        return berr_set(err, ENOMEM, "out of memory");
    it->key = k;
    it->slots = sk;
    out->outcome = BS_RECV_KEYSLOTS_UPDATED;
    return 0;
}

int recv_finish(struct bs_pool *p, const char *vol, uint64_t creation,
                const struct mos_key *skey, struct recv_slots *slots, struct berr *err)
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
        }
    }
    if (slots)
        memset(slots, 0, sizeof *slots);
    if (r == 0 && skey && slots)
        r = slots_rule(p, hd, vol, hidden, skey, t, slots, err);
    /* only once nothing here can refuse: a refused finish leaves the old
     * head usable (gone makes all its I/O fail) */
    if (r == 0 && h)
        atomic_store(&h->gone, true);
    pthread_mutex_unlock(&p->lock);
    return task_finish(p, t, r, "receive", err);
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
    return task_finish(p, t, r, "abort receive", err);
}

