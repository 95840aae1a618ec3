/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Volume keys inside the engine: the in-memory key records (struct vkey),
 * their creation for a new encrypted volume, their round trip through the
 * pool directory, the encryption context of a data block, and the pool's
 * encryption defaults.  The public key calls are in keyadmin.c.
 *
 * Invariants:
 *  - a dataset's key (ds->key) is fixed for its life; a key record outlives
 *    the volume that created it while snapshots or clones name it, and is
 *    written to the directory only while some dataset names it;
 *  - a master key is only in struct crypt_key (locked memory); user keys
 *    only in struct user_key, freed (wiped) before each call returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/keyslot.h"
#include "store/pool_impl.h"

struct vkey *vkey_find(struct bs_pool *p, uint64_t id)
{
    for (struct vkey *k = p->keys; k; k = k->next)
        if (k->rec.id == id)
            return k;
    return NULL;
}

const struct blk_crypt *ds_blk_crypt(const struct ds *d, uint64_t blkid, struct blk_crypt *bc)
{
    if (!d->key)
        return NULL;
    bc->key = d->key->master;
    bc->key_guid = d->key->rec.guid;
    bc->object = 0;
    bc->blkid = blkid;
    return bc;
}

void vkey_free(struct vkey *k)
{
    if (!k)
        return;
    crypt_key_free(k->master);
    free(k);
}

void vkeys_free(struct bs_pool *p)
{
    while (p->keys) {
        struct vkey *k = p->keys;
        p->keys = k->next;
        vkey_free(k);
    }
}

int vkey_parse(enum keyformat fmt, const void *buf, size_t len, struct user_key **uk,
               struct berr *err)
{
    /* 32 raw bytes are also accepted as 64 hex digits: a raw key is exactly
     * 32 bytes, so there is no ambiguity (and text channels can carry it) */
    if (fmt == KEYFORMAT_RAW && len == 2 * CRYPT_KEY_LEN)
        fmt = KEYFORMAT_HEX;
    return user_key_parse(fmt, buf, len, uk, err);
}

int vkey_new(struct bs_pool *p, const struct bs_vol_props *props, struct vkey **out,
             struct berr *err)
{
    (void)p;
    *out = NULL;
    enum keyformat fmt = (enum keyformat)props->keyformat;
    if (fmt < KEYFORMAT_RAW || fmt > KEYFORMAT_PASSPHRASE)
        return berr_set(err, EINVAL,
                        "an encrypted volume needs a keyformat: raw, hex or passphrase");
    const char *loc = props->keylocation[0] ? props->keylocation : "prompt";
    if (!mos_keylocation_ok(loc))
        return berr_set(err, EINVAL, "keylocation '%s' is invalid: use prompt or file:///path",
                        loc);
    if (!props->key && strcmp(loc, "prompt") == 0)
        return berr_set(err, EINVAL, "keylocation=prompt: the %s must be given when creating "
                        "the volume", fmt == KEYFORMAT_PASSPHRASE ? "passphrase" : "key");
    struct user_key *uk = NULL;
    int r = props->key ? vkey_parse(fmt, props->key, props->keylen, &uk, err)
                       : user_key_load(fmt, loc, &uk, err);
    if (r < 0)
        return r;
    struct kdf_params kdf;
    vkey_kdf(fmt, &props->kdf, &kdf);
    struct vkey *k = calloc(1, sizeof *k);
    if (!k) {
        user_key_free(uk);
        return berr_set(err, ENOMEM, "out of memory");
    }
    k->loaded_slot = 0;
    k->rec.suite = 1;
    k->rec.keyformat = (uint8_t)fmt;
    snprintf(k->rec.location, sizeof k->rec.location, "%s", loc);
    r = keyslot_create(&k->rec.slots, uk, &kdf, &k->master, err);
    user_key_free(uk);
    if (r == 0 && (r = crypt_random(&k->rec.guid, sizeof k->rec.guid)) < 0)
        berr_errno(err, -r, "cannot make a key guid");
    if (r == 0 && (r = crypt_key_fingerprint(k->master, k->rec.fingerprint)) < 0)
        berr_errno(err, -r, "cannot fingerprint the volume key");
    if (r < 0) {
        vkey_free(k);
        return r;
    }
    *out = k;
    return 0;
}

void vkey_kdf(enum keyformat fmt, const struct bs_kdf_opts *o, struct kdf_params *out)
{
    *out = keyslot_default_kdf(fmt);
    if (fmt != KEYFORMAT_PASSPHRASE || !o)
        return;
    if (o->kdf == BS_KDF_PBKDF2) {
        out->kdf = KDF_PBKDF2_SHA256;
        out->t_cost = o->t_cost ? o->t_cost : KDF_PBKDF2_ITER_DEFAULT;
        out->m_cost_kib = 0;
        out->parallelism = 0;
        return;
    }
    if (o->t_cost)
        out->t_cost = o->t_cost;
    if (o->m_cost_kib)
        out->m_cost_kib = o->m_cost_kib;
    if (o->parallelism)
        out->parallelism = o->parallelism;
}

int vkeys_load_dir(struct bs_pool *p, const struct mos_dir *dir)
{
    p->cryptdef = dir->def;
    for (size_t i = 0; i < dir->nkeys; i++) {
        struct vkey *k = calloc(1, sizeof *k);
        if (!k)
            return -ENOMEM;
        k->rec = dir->keys[i];
        k->loaded_slot = -1;
        k->next = p->keys;
        p->keys = k;
    }
    return 0;
}

int vkeys_to_dir(struct bs_pool *p, struct mos_dir *d)
{
    pthread_mutex_lock(&p->lock);
    d->def = p->cryptdef;
    size_t n = 0;
    for (struct vkey *k = p->keys; k; k = k->next)
        n++;
    d->keys = calloc(n ? n : 1, sizeof *d->keys);
    if (!d->keys) {
        pthread_mutex_unlock(&p->lock);
        return -ENOMEM;
    }
    for (struct vkey *k = p->keys; k; k = k->next) {
        bool used = false;
        for (size_t i = 0; i < d->nds && !used; i++)
            used = d->ds[i].key_id == k->rec.id;
        if (used)
            d->keys[d->nkeys++] = k->rec;
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* ---- the pool's defaults ---- */

static int check_location(enum keyformat fmt, const char *loc, struct berr *err)
{
    if (!mos_keylocation_ok(loc))
        return berr_set(err, EINVAL, "keylocation '%s' is invalid: use prompt or file:///path",
                        loc);
    if (strcmp(loc, "prompt") == 0 || fmt == 0)
        return 0;
    struct user_key *uk;
    int r = user_key_load(fmt, loc, &uk, err);
    user_key_free(r == 0 ? uk : NULL);
    return r;
}

int cryptdef_from_opts(const struct bs_pool_opts *o, struct mos_cryptdef *d, struct berr *err)
{
    memset(d, 0, sizeof *d);
    if (!o->encryption) {
        if (o->keyformat || o->keylocation[0])
            return berr_set(err, EINVAL, "keyformat and keylocation need encryption=on");
        return 0;
    }
    if (o->keyformat < BS_KEYFORMAT_RAW || o->keyformat > BS_KEYFORMAT_PASSPHRASE)
        return berr_set(err, EINVAL,
                        "encryption=on needs a keyformat: raw, hex or passphrase");
    const char *loc = o->keylocation[0] ? o->keylocation : "prompt";
    int r = check_location((enum keyformat)o->keyformat, loc, err);
    if (r < 0)
        return r;
    d->encryption = 1;
    d->keyformat = (uint8_t)o->keyformat;
    snprintf(d->location, sizeof d->location, "%s", loc);
    return 0;
}

int cryptdef_set(struct bs_pool *p, const char *prop, const char *value, struct berr *err)
{
    struct mos_cryptdef *d = &p->cryptdef;
    if (strcmp(prop, "encryption") == 0) {
        bool on = strcmp(value, "on") == 0 || strcmp(value, "aes-256-gcm") == 0;
        if (!on && strcmp(value, "off") != 0)
            return berr_set(err, EINVAL, "encryption must be on, aes-256-gcm or off, not '%s'",
                            value);
        if (on && !d->keyformat)
            return berr_set(err, EINVAL, "set keyformat (raw, hex or passphrase) before "
                            "turning encryption on");
        d->encryption = on;
        if (on && !d->location[0])
            snprintf(d->location, sizeof d->location, "prompt");
    } else if (strcmp(prop, "keyformat") == 0) {
        enum bs_keyformat f = BS_KEYFORMAT_NONE;
        int r = strcmp(value, "none") == 0 ? 0 : bs_keyformat_parse(value, &f, err);
        if (r < 0)
            return r;
        if (f == BS_KEYFORMAT_NONE && d->encryption)
            return berr_set(err, EINVAL, "keyformat is needed while encryption is on");
        d->keyformat = (uint8_t)f;
    } else if (strcmp(prop, "keylocation") == 0) {
        int r = check_location((enum keyformat)d->keyformat, value, err);
        if (r < 0)
            return r;
        snprintf(d->location, sizeof d->location, "%s", value);
    } else {
        return 1;
    }
    return 0;
}

const char *bs_keyformat_name(enum bs_keyformat f)
{
    switch (f) {
    case BS_KEYFORMAT_RAW: return "raw";
    case BS_KEYFORMAT_HEX: return "hex";
    case BS_KEYFORMAT_PASSPHRASE: return "passphrase";
    default: return "none";
    }
}

int bs_keyformat_parse(const char *s, enum bs_keyformat *f, struct berr *err)
{
    for (int i = BS_KEYFORMAT_RAW; i <= BS_KEYFORMAT_PASSPHRASE; i++)
        if (strcmp(s, bs_keyformat_name((enum bs_keyformat)i)) == 0) {
            *f = (enum bs_keyformat)i;
            return 0;
        }
    return berr_set(err, EINVAL, "unknown keyformat '%s': use raw, hex or passphrase", s);
}
