/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Volume administration: create, destroy, list, get, set, resize, open and
 * close, plus the dataset objects behind them.
 *
 * Every call runs under pool->admin_lock (control-plane calls are
 * serialised), changes the in-memory records under pool->lock, marks the
 * open txg dirty and waits until that txg is durable, so a call that returns
 * 0 has its effect on disk.  Destroy and shrink only change the namespace
 * here; the sync thread frees the blocks in the txg that commits the change
 * (txg.c), so the freed space and the new directory land atomically. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/dsauth.h"
#include "store/keyslot.h"
#include "store/pool_impl.h"

/* ---- datasets ---- */

struct ds *ds_new(struct bs_pool *p, const struct mos_ds *rec)
{
    struct ds *ds = calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->pool = p;
    atomic_init(&ds->refs, 1);
    ds->rec = *rec;
    atomic_init(&ds->volsize, rec->volsize);
    atomic_init(&ds->readonly, (rec->flags & (DS_FLAG_READONLY | DS_FLAG_SNAPSHOT)) != 0);
    pthread_mutex_init(&ds->lock, NULL);
    ds->od = rec->od;
    ds->open_txg = p->txg.open_txg;
    if (rec->key_id && !(ds->key = vkey_find(p, rec->key_id))) {
        ds_unref(ds); /* the directory decoder guarantees the key exists */
        return NULL;
    }
    return ds;
}

void ds_ref(struct ds *ds)
{
    atomic_fetch_add(&ds->refs, 1);
}

void ds_unref(struct ds *ds)
{
    if (!ds || atomic_fetch_sub(&ds->refs, 1) != 1)
        return;
    /* whatever is still dirty was never committed: give back its accounting */
    atomic_fetch_sub(&ds->pool->txg.dirty_bytes, ds->open.bytes + ds->syncing.bytes);
    dmap_clear(&ds->open);
    dmap_clear(&ds->syncing);
    free(ds->open.tab);
    free(ds->syncing.tab);
    pthread_mutex_destroy(&ds->lock);
    free(ds);
}

struct ds *ds_find_vol(struct bs_pool *p, const char *name)
{
    struct ds *d = ds_find(p, name);
    return d && !(d->rec.flags & (DS_FLAG_SNAPSHOT | DS_FLAG_RECV)) ? d : NULL;
}

struct ds *ds_find(struct bs_pool *p, const char *name)
{
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (!d->destroying && strcmp(d->rec.name, name) == 0)
            return d;
    return NULL;
}

int ds_insert_new(struct bs_pool *p, const struct mos_ds *rec, struct berr *err)
{
    struct ds *d = ds_new(p, rec);
    if (!d)
        return berr_set(err, ENOMEM, "out of memory");
    d->next = p->ds_list;
    p->ds_list = d;
    p->mos_dirty = true;
    return 0;
}

struct ds *ds_by_id(struct bs_pool *p, uint64_t id)
{
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (d->rec.id == id && !d->destroying)
            return d;
    return NULL;
}

/* ---- helpers ---- */

static int no_vol(struct bs_pool *p, const char *name, struct berr *err)
{
    return berr_set(err, ENOENT, "no volume '%s' in pool '%s'", name, p->name);
}

int admin_commit(struct bs_pool *p, uint64_t t, struct berr *err, const char *what)
{
    int r = txg_wait(p, t);
    if (r < 0)
        return berr_set(err, -r, "%s: pool '%s' could not commit the change (%s)", what, p->name,
                        strerror(-r));
    return 0;
}

int admin_record_commit(struct bs_pool *p, int r, const char *what, struct berr *err)
{
    uint64_t t = 0;
    if (r == 0) {
        p->mos_dirty = true;
        t = txg_dirty_open(p);
    }
    pthread_mutex_unlock(&p->lock);
    if (r == 0)
        r = admin_commit(p, t, err, what);
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

/* Bytes a new reservation may take: free space minus what existing
 * reservations still hold back and the metadata slop.  pool->lock held. */
static uint64_t reservable(struct bs_pool *p)
{
    uint64_t held = 0;
    for (struct ds *d = p->ds_list; d; d = d->next) {
        if (d->destroying)
            continue;
        pthread_mutex_lock(&d->lock);
        uint64_t alloc = d->od.allocated;
        pthread_mutex_unlock(&d->lock);
        if (d->rec.refreservation > alloc)
            held += d->rec.refreservation - alloc;
    }
    uint64_t free_b = atomic_load(&p->free_est);
    uint64_t dirty = atomic_load(&p->txg.dirty_bytes);
    uint64_t taken = held + p->slop + dirty;
    return free_b > taken ? free_b - taken : 0;
}

static int check_size(uint64_t size, uint32_t bs, const char *what, struct berr *err)
{
    char a[32], b[32];
    if (size == 0)
        return berr_set(err, EINVAL, "%s must be greater than 0", what);
    if (size / bs > (1ULL << 48))
        return berr_set(err, EINVAL, "%s %s is too large", what, format_size(size, a, sizeof a));
    if (size % bs) {
        uint64_t up = ROUND_UP(size, (uint64_t)bs);
        return berr_set(err, EINVAL,
                        "%s %llu is not a multiple of the volblocksize %s; use %llu (%s)", what,
                        (unsigned long long)size, format_size(bs, a, sizeof a),
                        (unsigned long long)up, format_size(up, b, sizeof b));
    }
    return 0;
}

static void fill_props(struct bs_pool *p, struct ds *d, struct bs_vol_props *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", d->rec.name);
    o->volsize = d->rec.volsize;
    o->volblocksize = d->rec.volblocksize;
    o->compression = d->rec.comp;
    o->compress_level = d->rec.comp_level;
    o->checksum = d->rec.cksum;
    o->refreservation = d->rec.refreservation;
    o->readonly = (d->rec.flags & DS_FLAG_READONLY) != 0;
    pthread_mutex_lock(&d->lock);
    struct objdesc od = d->od;
    pthread_mutex_unlock(&d->lock);
    o->referenced = od.allocated;
    struct bs_vol_space sp;
    o->used = vol_space_locked(p, d, &sp) == 0 ? sp.used : MAX(od.allocated, d->rec.refreservation);
    o->logicalused = od.logical;
    o->compressratio =
        od.physical ? (double)od.logical / (od.physical * pool_tops_data_fraction(p)) : 1.0;
    o->create_txg = d->rec.create_txg;
    o->guid = d->rec.guid;
    o->keyloaded = true;
    if (d->key) {
        o->encrypted = true;
        o->keyformat = (enum bs_keyformat)d->key->rec.keyformat;
        snprintf(o->keylocation, sizeof o->keylocation, "%s", d->key->rec.location);
        o->keyloaded = d->key->master != NULL;
        o->keyslots = (unsigned)keyslots_count(&d->key->rec.slots);
    }
}

/* ---- public ---- */

void bs_vol_props_init(bs_pool *p, struct bs_vol_props *props)
{
    memset(props, 0, sizeof *props);
    props->volblocksize = 16384;
    pthread_mutex_lock(&p->lock);
    props->compression = p->comp;
    props->compress_level = p->comp_level;
    props->checksum = p->cksum;
    props->encrypted = p->cryptdef.encryption != 0;
    props->keyformat = (enum bs_keyformat)p->cryptdef.keyformat;
    snprintf(props->keylocation, sizeof props->keylocation, "%s", p->cryptdef.location);
    pthread_mutex_unlock(&p->lock);
    props->compressratio = 1.0;
    props->keyloaded = true;
}

int bs_vol_create(bs_pool *p, const struct bs_vol_props *props, bool thick, struct berr *err)
{
    int r = validate_name(props->name, "volume", err);
    if (r < 0)
        return r;
    uint32_t bs = props->volblocksize ? props->volblocksize : 16384;
    if (!IS_POW2(bs) || bs < 4096 || bs > 131072)
        return berr_set(err, EINVAL,
                        "volblocksize %u is invalid: use a power of two from 4K to 128K", bs);
    if ((r = check_size(props->volsize, bs, "volsize", err)) < 0)
        return r;
    if ((unsigned)props->compression > BS_COMPRESS_ZSTD)
        return berr_set(err, EINVAL, "unknown compression %d", (int)props->compression);
    int lvl = props->compress_level;
    if (props->compression == BS_COMPRESS_ZSTD && lvl == 0)
        lvl = 3;
    if (props->compression != BS_COMPRESS_ZSTD)
        lvl = 0;
    if (lvl < 0 || lvl > 19)
        return berr_set(err, EINVAL, "zstd level %d is invalid: use 1 to 19", lvl);
    if (props->checksum != BS_CHECKSUM_XXH3 && props->checksum != BS_CHECKSUM_SHA256)
        return berr_set(err, EINVAL, "unknown checksum %d", (int)props->checksum);
    if (p->readonly)
        return berr_set(err, EROFS, "pool '%s' is read-only", p->name);
    uint64_t refres = thick ? props->volsize : props->refreservation;
    /* the key first: the KDF may take a second and needs no lock */
    struct vkey *key = NULL;
    if (props->encrypted && (r = vkey_new(p, props, &key, err)) < 0)
        return berr_wrap(err, "cannot create encrypted volume '%s'", props->name);

    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    char a[32], b[32];
    if (ds_find(p, props->name)) {
        r = berr_set(err, EEXIST, "volume '%s' already exists in pool '%s'", props->name, p->name);
    } else if (refres && refres > reservable(p)) {
        r = berr_set(err, ENOSPC,
                     "pool '%s' has %s available for reservations, not enough for %s%s", p->name,
                     format_size(reservable(p), a, sizeof a), format_size(refres, b, sizeof b),
                     thick ? "; create the volume thin (sparse) instead" : "");
    }
    if (r == 0) {
        struct mos_ds rec = {0};
        snprintf(rec.name, sizeof rec.name, "%s", props->name);
        rec.id = p->next_id++;
        if (getrandom(&rec.guid, sizeof rec.guid, 0) != sizeof rec.guid)
            rec.guid = now_ns() ^ rec.id;
        rec.create_txg = p->txg.open_txg;
        rec.volsize = props->volsize;
        rec.refreservation = refres;
        rec.comp = (uint8_t)props->compression;
        rec.comp_level = (uint8_t)lvl;
        rec.cksum = (uint8_t)props->checksum;
        rec.flags = props->readonly ? DS_FLAG_READONLY : 0;
        rec.volblocksize = bs;
        objdesc_init(&rec.od, __builtin_ctz(bs), props->volsize / bs);
        if (key) {
            /* the empty tree's MAC; the sync thread keeps it up to date */
            r = ds_root_mac_compute(key->rec.guid, key->master, &rec.od, rec.root_mac);
            if (r < 0)
                berr_errno(err, -r, "cannot authenticate the metadata of '%s'", props->name);
        }
        if (r == 0 && key) {
            key->rec.id = rec.key_id = rec.id;
            key->next = p->keys;
            p->keys = steal_ptr(key);
        }
        if (r == 0)
            r = ds_insert_new(p, &rec, err);
    }
    uint64_t t = r == 0 ? txg_dirty_open(p) : 0;
    pthread_mutex_unlock(&p->lock);
    vkey_free(key); /* not used: the create failed */
    if (r == 0)
        r = admin_commit(p, t, err, "create volume");
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

static int cmp_props(const void *a, const void *b)
{
    return strcmp(((const struct bs_vol_props *)a)->name, ((const struct bs_vol_props *)b)->name);
}

int bs_vol_list(bs_pool *p, int (*cb)(const struct bs_vol_props *props, void *opaque),
                void *opaque, struct berr *err)
{
    pthread_mutex_lock(&p->lock);
    size_t n = 0, i = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        n += !d->destroying && !(d->rec.flags & (DS_FLAG_SNAPSHOT | DS_FLAG_RECV));
    struct bs_vol_props *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&p->lock);
        return berr_set(err, ENOMEM, "out of memory");
    }
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (!d->destroying && !(d->rec.flags & (DS_FLAG_SNAPSHOT | DS_FLAG_RECV)))
            fill_props(p, d, &v[i++]);
    pthread_mutex_unlock(&p->lock);
    qsort(v, n, sizeof *v, cmp_props);
    int r = 0;
    for (i = 0; i < n && r == 0; i++)
        r = cb(&v[i], opaque);
    free(v);
    return r;
}

int bs_vol_get(bs_pool *p, const char *name, struct bs_vol_props *out, struct berr *err)
{
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find_vol(p, name);
    if (d)
        fill_props(p, d, out);
    pthread_mutex_unlock(&p->lock);
    return d ? 0 : no_vol(p, name, err);
}

int vol_resize_locked(bs_pool *p, const char *name, uint64_t new_size, bool force,
                      bool recv, struct berr *err)
{
    char a[32], b[32];
    int r = 0;
    pthread_mutex_lock(&p->lock);
    struct ds *d = recv ? ds_find(p, name) : ds_find_vol(p, name);
    if (d && recv && !(d->rec.flags & DS_FLAG_RECV))
        d = NULL;
    if (!d) {
        pthread_mutex_unlock(&p->lock);
        return no_vol(p, name, err);
    }
    uint64_t old = d->rec.volsize;
    uint32_t bs = d->rec.volblocksize;
    if ((r = check_size(new_size, bs, "volsize", err)) < 0)
        goto out;
    /* the size is part of the root MAC, which only the key holder can
     * recompute (a receive target's comes with the stream) */
    if (!recv && d->key && new_size != old && (!d->key->master || d->key->unloading)) {
        r = berr_set(err, EACCES, "the key of '%s' is not loaded: run 'berth key load' before "
                     "resizing it", name);
        goto out;
    }
    if (new_size < old && !force) {
        r = berr_set(err, EINVAL,
                     "shrinking volume '%s' from %s to %s discards the data past the new end; "
                     "use force to do it", name, format_size(old, a, sizeof a),
                     format_size(new_size, b, sizeof b));
        goto out;
    }
    bool thick = d->rec.refreservation == old;
    if (thick && new_size > old && new_size - old > reservable(p)) {
        r = berr_set(err, ENOSPC, "pool '%s' lacks the %s needed to grow thick volume '%s'",
                     p->name, format_size(new_size - old, a, sizeof a), name);
        goto out;
    }
    if (new_size == old)
        goto out;
    d->rec.volsize = new_size;
    if (thick)
        d->rec.refreservation = new_size;
    pthread_mutex_lock(&d->lock);
    atomic_store(&d->volsize, new_size);
    if (new_size < old && d->open.tab) {
        /* writes past the new end that are not syncing yet are dropped here;
         * the syncing txg's ones are truncated by the txg committing this */
        uint64_t nblocks = new_size / bs;
        int64_t dropped = 0;
        for (size_t i = 0; i <= d->open.mask; i++) {
            for (struct dirty_ent **pp = &d->open.tab[i]; *pp;) {
                struct dirty_ent *e = *pp;
                if (e->blkid < nblocks) {
                    pp = &e->next;
                    continue;
                }
                *pp = e->next;
                uint64_t bytes = e->buf ? bs : DIRTY_HOLE_BYTES;
                d->open.bytes -= bytes;
                d->open.count--;
                dropped += (int64_t)bytes;
                cbuf_unref(e->buf);
                free(e->sealed); /* e itself is in the map's slabs */
            }
        }
        txg_add_dirty(p, -dropped);
    }
    pthread_mutex_unlock(&d->lock);
    p->mos_dirty = true;
    uint64_t t = txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    return admin_commit(p, t, err, "resize volume");
out:
    pthread_mutex_unlock(&p->lock);
    return r;
}

int bs_vol_resize(bs_pool *p, const char *name, uint64_t new_size, bool force,
                  struct berr *err)
{
    if (p->readonly)
        return berr_set(err, EROFS, "pool '%s' is read-only", p->name);
    pthread_mutex_lock(&p->admin_lock);
    int r = vol_resize_locked(p, name, new_size, force, false, err);
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

static int set_locked(bs_pool *p, struct ds *d, const char *prop, const char *value,
                      struct berr *err)
{
    if (strcmp(prop, "compression") == 0) {
        enum bs_compress c;
        int lvl;
        int r = bs_compress_parse(value, &c, &lvl, err);
        if (r < 0)
            return r;
        d->rec.comp = (uint8_t)c;
        d->rec.comp_level = (uint8_t)(c == BS_COMPRESS_ZSTD ? (lvl ? lvl : 3) : 0);
    } else if (strcmp(prop, "checksum") == 0) {
        enum bs_checksum c;
        int r = bs_checksum_parse(value, &c, err);
        if (r < 0)
            return r;
        d->rec.cksum = (uint8_t)c;
    } else if (strcmp(prop, "refreservation") == 0) {
        uint64_t v = 0;
        if (strcmp(value, "none") != 0) {
            int r = parse_size(value, &v, err);
            if (r < 0)
                return r;
        }
        if (v > d->rec.refreservation && v - d->rec.refreservation > reservable(p)) {
            char a[32];
            return berr_set(err, ENOSPC, "pool '%s' cannot reserve %s more", p->name,
                            format_size(v - d->rec.refreservation, a, sizeof a));
        }
        d->rec.refreservation = v;
    } else if (strcmp(prop, "readonly") == 0) {
        bool on = strcmp(value, "on") == 0 || strcmp(value, "true") == 0;
        if (!on && strcmp(value, "off") != 0 && strcmp(value, "false") != 0)
            return berr_set(err, EINVAL, "readonly must be 'on' or 'off', not '%s'", value);
        d->rec.flags = (uint8_t)((d->rec.flags & ~DS_FLAG_READONLY) | (on ? DS_FLAG_READONLY : 0));
        atomic_store(&d->readonly, on);
    } else {
        static const char *const ro[] = { "name", "volblocksize", "used", "referenced",
                                          "logicalused", "compressratio", "create_txg", "guid",
                                          "encryption", "keyformat", "keylocation", "keystatus" };
        for (size_t i = 0; i < ARRAY_SIZE(ro); i++)
            if (strcmp(prop, ro[i]) == 0)
                return berr_set(err, EINVAL, "property '%s' is read-only%s", prop,
                                i == 1 || i == 8 ? " (fixed when the volume is created)"
                                : i > 8 ? " (use 'berth key change' / 'key load')" : "");
        return berr_set(err, EINVAL, "unknown volume property '%s'", prop);
    }
    return 0;
}

int bs_vol_set(bs_pool *p, const char *name, const char *prop, const char *value,
               struct berr *err)
{
    if (strcmp(prop, "volsize") == 0) {
        uint64_t v;
        int r = parse_size(value, &v, err);
        return r < 0 ? r : bs_vol_resize(p, name, v, false, err);
    }
    if (p->readonly)
        return berr_set(err, EROFS, "pool '%s' is read-only", p->name);
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find_vol(p, name);
    int r = d ? set_locked(p, d, prop, value, err) : no_vol(p, name, err);
    return admin_record_commit(p, r, "set property", err);
}

int bs_vol_open(bs_pool *p, const char *name, bs_vol **out, struct berr *err)
{
    bs_vol *v = calloc(1, sizeof *v);
    if (!v)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, name);
    if (d && (d->rec.flags & DS_FLAG_RECV))
        d = NULL; /* a receive in progress is not a volume yet */
    bool locked = d && d->key && (!d->key->master || d->key->unloading);
    if (locked) {
        pthread_mutex_unlock(&p->lock);
        free(v);
        return berr_set(err, EACCES, "'%s' is encrypted and its key is not loaded: run "
                        "'berth key load %s/%.*s'", name, p->name, (int)strcspn(name, "@"),
                        name);
    }
    if (d) {
        ds_ref(d);
        d->nopen++;
    }
    pthread_mutex_unlock(&p->lock);
    if (!d) {
        free(v);
        if (strchr(name, '@'))
            return berr_set(err, ENOENT, "no snapshot '%s' in pool '%s'", name, p->name);
        return no_vol(p, name, err);
    }
    v->pool = p;
    v->ds = d;
    *out = v;
    return 0;
}

void bs_vol_close(bs_vol *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->pool->lock);
    v->ds->nopen--;
    pthread_mutex_unlock(&v->pool->lock);
    ds_unref(v->ds);
    free(v);
}
