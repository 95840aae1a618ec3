/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The public key calls of encrypted volumes: load, unload, add, remove,
 * change, list (include/berth/store.h).
 *
 * Every call runs under pool->admin_lock, so the master key a call uses
 * cannot be unloaded under it.  Slot changes are made on a copy of the slot
 * set, stored in the key record under pool->lock and committed (a txg)
 * before the call returns; a key change is "add the new slot, commit,
 * remove the old slot, commit" (keyslot_change), so after a crash at any
 * point the old or the new key opens the volume.  KDF work (Argon2id can
 * take a second) runs without pool->lock, so I/O and listing go on.
 *
 * Unload protocol: refuse while any dataset sharing the key is open or
 * being received into; mark the key `unloading` (opens fail), commit every
 * dirty block (they were written while the key was loaded and the sync
 * thread encrypts them with it), then drop and wipe the master key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "store/dsauth.h"
#include "store/keyslot.h"
#include "store/pool_impl.h"

/* The key of dataset `name` into *out (pool->lock held).  0 or -errno. */
static int key_of(struct bs_pool *p, const char *name, struct vkey **out, struct berr *err)
{
    *out = NULL;
    struct ds *d = ds_find(p, name);
    if (!d || (d->rec.flags & DS_FLAG_RECV))
        return berr_set(err, ENOENT, "no volume or snapshot '%s' in pool '%s'", name, p->name);
    if (!d->key)
        return berr_set(err, EINVAL, "volume '%s' is not encrypted", name);
    *out = d->key;
    return 0;
}

static int need_loaded(const struct vkey *k, const char *name, struct berr *err)
{
    if (k->master && !k->unloading)
        return 0;
    return berr_set(err, EACCES, "the key of '%s' is not loaded: run 'berth key load' first",
                    name);
}

/* Parse or read the user key: `data` if given, else from `location`. */
static int get_user_key(enum keyformat fmt, const struct bs_key *key, const char *location,
                        struct user_key **uk, struct berr *err)
{
    if (key && key->data)
        return vkey_parse(fmt, key->data, key->len, uk, err);
    if (key && key->location)
        location = key->location;
    if (!location)
        return berr_set(err, EINVAL, "no key given");
    return user_key_load(fmt, location, uk, err);
}

/* Commit the key record after a change (admin_lock held). */
static int commit_key(struct bs_pool *p, struct vkey *k, const struct keyslots *set)
{
    if (p->readonly)
        return -EROFS;
    pthread_mutex_lock(&p->lock);
    k->rec.slots = *set;
    p->mos_dirty = true;
    uint64_t t = txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    return txg_wait(p, t);
}

/* Unlock k with `key` (admin_lock held, k locked).  Returns the slot. */
static int load_key(struct bs_pool *p, struct vkey *k, const struct bs_key *key,
                    const char *name, struct berr *err)
{
    pthread_mutex_lock(&p->lock);
    struct mos_key rec = k->rec;
    pthread_mutex_unlock(&p->lock);
    enum keyformat fmt = key && key->format ? (enum keyformat)key->format
                                            : (enum keyformat)rec.keyformat;
    struct user_key *uk;
    int r = get_user_key(fmt, key, rec.location, &uk, err);
    if (r < 0)
        return berr_wrap(err, "cannot load the key of '%s'", name);
    struct crypt_key *master = NULL;
    int slot = keyslot_unlock(&rec.slots, uk, &master, err);
    user_key_free(uk);
    if (slot < 0)
        return berr_wrap(err, "cannot load the key of '%s'", name);
    uint8_t fp[CRYPT_FINGERPRINT_LEN];
    r = crypt_key_fingerprint(master, fp);
    if (r == 0 && memcmp(fp, rec.fingerprint, sizeof fp) != 0)
        r = -EILSEQ;
    if (r < 0) {
        crypt_key_free(master);
        return berr_set(err, r == -EILSEQ ? EACCES : -r,
                        "cannot load the key of '%s': key slot %d opens a key that is not "
                        "this volume's (its key record is damaged)", name, slot);
    }
    /* every dataset of the key must authenticate before its data is served */
    r = ds_auth_verify_key(p, k, master, name, err);
    if (r < 0) {
        crypt_key_free(master);
        return r;
    }
    pthread_mutex_lock(&p->lock);
    k->master = master;
    k->loaded_slot = slot;
    pthread_mutex_unlock(&p->lock);
    return slot;
}

int bs_key_load(bs_pool *p, const char *name, const struct bs_key *key, struct berr *err)
{
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct vkey *k;
    int r = key_of(p, name, &k, err);
    bool loaded = k && k->master;
    pthread_mutex_unlock(&p->lock);
    if (r == 0)
        r = loaded ? berr_set(err, EEXIST, "the key of '%s' is already loaded", name)
                   : load_key(p, k, key, name, err);
    pthread_mutex_unlock(&p->admin_lock);
    return r < 0 ? r : 0;
}

/* A name for key k in messages: a dataset using it (pool->lock held). */
static void key_name(struct bs_pool *p, const struct vkey *k, char *buf, size_t len)
{
    snprintf(buf, len, "key %llu", (unsigned long long)k->rec.id);
    for (struct ds *d = p->ds_list; d; d = d->next)
        if (d->key == k && !d->destroying) {
            snprintf(buf, len, "%s", d->rec.name);
            if (!(d->rec.flags & (DS_FLAG_SNAPSHOT | DS_FLAG_RECV)))
                return;
        }
}

int bs_key_load_all(bs_pool *p, const struct bs_key *key, struct berr *err)
{
    int loaded = 0;
    bool failed = false;
    pthread_mutex_lock(&p->admin_lock);
    for (struct vkey *k = p->keys; k; k = k->next) {
        char name[128];
        pthread_mutex_lock(&p->lock);
        bool skip = k->master || (!key && strncmp(k->rec.location, "file://", 7) != 0);
        key_name(p, k, name, sizeof name);
        pthread_mutex_unlock(&p->lock);
        if (skip)
            continue;
        struct berr e = {0};
        if (load_key(p, k, key, name, &e) >= 0) {
            loaded++;
            continue;
        }
        if (!key) /* at import nobody else sees why the volume stays locked */
            blog_warn("pool %s: key of '%s' not loaded from %s: %s", p->name, name,
                      k->rec.location, e.msg);
        if (!failed) {
            failed = true;
            if (err)
                *err = e;
        }
    }
    pthread_mutex_unlock(&p->admin_lock);
    return loaded;
}

int bs_key_unload(bs_pool *p, const char *name, struct berr *err)
{
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    struct vkey *k;
    int r = key_of(p, name, &k, err);
    if (k && !k->master)
        r = berr_set(err, ENOENT, "the key of '%s' is not loaded", name);
    for (struct ds *d = p->ds_list; d && r == 0; d = d->next) {
        if (d->key != k || d->destroying)
            continue;
        if (d->nopen)
            r = berr_set(err, EBUSY, "cannot unload the key of '%s': '%s' is open", name,
                         d->rec.name);
        else if (d->rec.flags & DS_FLAG_RECV)
            r = berr_set(err, EBUSY, "cannot unload the key of '%s': a receive into it is "
                         "in progress", name);
    }
    if (r == 0)
        k->unloading = true;
    pthread_mutex_unlock(&p->lock);
    if (r == 0 && !p->readonly && (r = txg_sync_all(p)) < 0)
        berr_set(err, -r, "cannot unload the key of '%s': its data could not be committed",
                 name);
    struct crypt_key *old = NULL;
    if (k && k->unloading) {
        pthread_mutex_lock(&p->lock);
        if (r == 0) {
            old = k->master;
            k->master = NULL;
            k->loaded_slot = -1;
        }
        k->unloading = false;
        pthread_mutex_unlock(&p->lock);
    }
    crypt_key_free(old);
    if (old) /* decrypted blocks of its volumes must not outlive the key */
        bcache_purge(p->io.cache, p->io.cache_id);
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

/* Look up a loaded key for a slot change; copies its slots (admin_lock held). */
static struct vkey *loaded_key(struct bs_pool *p, const char *name, struct keyslots *slots,
                               struct berr *err, int *r)
{
    if (p->readonly) {
        *r = berr_set(err, EROFS, "pool '%s' is read-only", p->name);
        return NULL;
    }
    pthread_mutex_lock(&p->lock);
    struct vkey *k;
    *r = key_of(p, name, &k, err);
    if (*r == 0)
        *r = need_loaded(k, name, err);
    if (*r == 0)
        *slots = k->rec.slots;
    pthread_mutex_unlock(&p->lock);
    return *r == 0 ? k : NULL;
}

static int new_user_key(const struct vkey *k, const struct bs_key *nk, struct user_key **uk,
                        struct kdf_params *kdf, struct berr *err)
{
    if (!nk || (!nk->data && !nk->location))
        return berr_set(err, EINVAL, "give the new key (its material or a file:// location)");
    enum keyformat fmt = nk->format ? (enum keyformat)nk->format
                                    : (enum keyformat)k->rec.keyformat;
    vkey_kdf(fmt, &nk->kdf, kdf);
    return get_user_key(fmt, nk, NULL, uk, err);
}

int bs_key_add(bs_pool *p, const char *name, const struct bs_key *newkey, int slot,
               struct berr *err)
{
    struct keyslots set;
    struct user_key *uk = NULL;
    struct kdf_params kdf;
    int r;
    pthread_mutex_lock(&p->admin_lock);
    struct vkey *k = loaded_key(p, name, &set, err, &r);
    if (k && (r = new_user_key(k, newkey, &uk, &kdf, err)) == 0)
        r = keyslot_add(&set, k->master, uk, &kdf, slot, err);
    user_key_free(uk);
    int e = r >= 0 ? commit_key(p, k, &set) : 0;
    if (e < 0)
        r = berr_set(err, -e, "cannot save the new key slot of '%s' (%s)", name, strerror(-e));
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int bs_key_remove(bs_pool *p, const char *name, int slot, struct berr *err)
{
    struct keyslots set;
    int r;
    pthread_mutex_lock(&p->admin_lock);
    struct vkey *k = loaded_key(p, name, &set, err, &r);
    if (k && (r = keyslot_remove(&set, slot, err)) == 0 && (r = commit_key(p, k, &set)) < 0)
        berr_set(err, -r, "cannot save the removal of key slot %d of '%s' (%s)", slot, name,
                 strerror(-r));
    if (k && r == 0 && k->loaded_slot == slot)
        k->loaded_slot = -1;
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

struct change_ctx {
    struct bs_pool *p;
    struct vkey *k;
    const struct bs_key *nk;
    int stage;
};

/* keyslot_change's persist step: the first one also switches keyformat and
 * keylocation to the new key's, so they are never ahead of the slots. */
static int persist_change(const struct keyslots *set, void *opaque)
{
    struct change_ctx *c = opaque;
    if (c->stage++ == 0 && (c->nk->format || c->nk->location)) {
        pthread_mutex_lock(&c->p->lock);
        if (c->nk->format)
            c->k->rec.keyformat = (uint8_t)c->nk->format;
        if (c->nk->location)
            snprintf(c->k->rec.location, sizeof c->k->rec.location, "%s", c->nk->location);
        pthread_mutex_unlock(&c->p->lock);
    }
    return commit_key(c->p, c->k, set);
}

int bs_key_change(bs_pool *p, const char *name, int slot, const struct bs_key *newkey,
                  struct berr *err)
{
    struct keyslots set;
    struct user_key *uk = NULL;
    struct kdf_params kdf;
    int r;
    if (newkey && newkey->location && !mos_keylocation_ok(newkey->location))
        return berr_set(err, EINVAL, "keylocation '%s' is invalid: use prompt or file:///path",
                        newkey->location);
    pthread_mutex_lock(&p->admin_lock);
    struct vkey *k = loaded_key(p, name, &set, err, &r);
    int old = k && slot < 0 ? k->loaded_slot : slot;
    if (k && old < 0)
        r = berr_set(err, EINVAL, "say which key slot of '%s' to change (see 'berth key list')",
                     name);
    if (k && r == 0 && (r = new_user_key(k, newkey, &uk, &kdf, err)) == 0) {
        struct change_ctx c = { .p = p, .k = k, .nk = newkey };
        r = keyslot_change(&set, k->master, old, uk, &kdf, persist_change, &c, err);
        pthread_mutex_lock(&p->lock);
        k->rec.slots = set; /* what keyslot_change left in memory */
        if (r >= 0)
            k->loaded_slot = r;
        pthread_mutex_unlock(&p->lock);
    }
    user_key_free(uk);
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}

int bs_key_list(bs_pool *p, const char *name, struct bs_keyslot_info out[BS_KEYSLOTS_MAX],
                struct berr *err)
{
    pthread_mutex_lock(&p->lock);
    struct vkey *k;
    int n = key_of(p, name, &k, err);
    for (int i = 0; k && i < KEYSLOT_MAX; i++) {
        const struct keyslot *s = &k->rec.slots.slot[i];
        if (!s->used)
            continue;
        struct bs_keyslot_info *o = &out[n++];
        memset(o, 0, sizeof *o);
        o->slot = i;
        o->format = (enum bs_keyformat)s->keyformat;
        o->kdf = s->kdf.kdf == KDF_ARGON2ID ? BS_KDF_ARGON2ID
                 : s->kdf.kdf == KDF_PBKDF2_SHA256 ? BS_KDF_PBKDF2 : BS_KDF_DEFAULT;
        o->t_cost = s->kdf.t_cost;
        o->m_cost_kib = s->kdf.m_cost_kib;
        o->parallelism = s->kdf.parallelism;
        o->created = s->created;
        o->loaded_by = k->master && k->loaded_slot == i;
    }
    pthread_mutex_unlock(&p->lock);
    return n;
}
