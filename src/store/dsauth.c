/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Root MACs of encrypted datasets: compute, verify at key load, and the
 * get/set pair raw send and receive use (see dsauth.h for the invariants). */
#include "store/dsauth.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/cryptmac.h"

int ds_root_mac_compute(uint64_t key_guid, const struct crypt_key *master,
                        const struct objdesc *od, uint8_t mac[DS_ROOT_MAC_LEN])
{
    uint8_t digest[CRYPT_DIGEST_LEN];
    if (objtree_root_digest(od, digest) < 0)
        return -EILSEQ;
    return crypt_root_mac(master, key_guid, od->nblocks << od->dshift,
                          1u << od->dshift, digest, mac);
}

const struct crypt_key *ds_sync_key(struct bs_pool *p, const struct ds *d)
{
    const struct crypt_key *k = NULL;
    if (!d->key)
        return NULL;
    /* an unload commits the key's dirty data (with the key) before it
     * drops the key: those txgs need the MAC too */
    pthread_mutex_lock(&p->lock);
    k = d->key->master;
    pthread_mutex_unlock(&p->lock);
    return k;
}

/* Check d's committed tree and MAC with `master`: 0, -EILSEQ (no match),
 * other -errno. */
static int check_one(struct bs_pool *p, struct ds *d, const struct crypt_key *master)
{
    /* the same lock order as quiesce: pool->lock, then ds->lock; publish
     * stores the MAC and the tree of a txg before either is seen alone */
    pthread_mutex_lock(&p->lock);
    pthread_mutex_lock(&d->lock);
    struct objdesc od = d->od;
    uint8_t mac[DS_ROOT_MAC_LEN];
    memcpy(mac, d->rec.root_mac, sizeof mac);
    pthread_mutex_unlock(&d->lock);
    pthread_mutex_unlock(&p->lock);
    uint8_t digest[CRYPT_DIGEST_LEN];
    if (objtree_root_digest(&od, digest) < 0)
        return -EILSEQ;
    int r = crypt_root_mac_verify(master, d->key->rec.guid, od.nblocks << od.dshift,
                                  1u << od.dshift, digest, mac);
    return r == -EIO ? -EILSEQ : r;
}

static int fail(struct berr *err, const char *name, const struct ds *d, int r)
{
    /* EACCES like a key that is not the volume's: the API says 403 */
    if (r == -EILSEQ)
        return berr_set(err, EACCES, "cannot load the key of '%s': the metadata of '%s' fails "
                        "authentication (root MAC mismatch): its blocks were changed by "
                        "someone without the key, or are damaged", name, d->rec.name);
    return berr_errno(err, -r, "cannot load the key of '%s': cannot check the metadata of '%s'",
                      name, d->rec.name);
}

int ds_auth_verify_key(struct bs_pool *p, struct vkey *k, const struct crypt_key *master,
                       const char *name, struct berr *err)
{
    /* the datasets to check, referenced so none goes away meanwhile */
    pthread_mutex_lock(&p->lock);
    size_t n = 0, i = 0;
    for (struct ds *d = p->ds_list; d; d = d->next)
        n += d->key == k;
    struct ds **v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&p->lock);
        return berr_set(err, ENOMEM, "out of memory");
    }
    for (struct ds *d = p->ds_list; d; d = d->next) {
        /* a receive in progress has a partial tree; its MAC comes at the end */
        if (d->key == k && !d->destroying && !(d->rec.flags & DS_FLAG_RECV)) {
            ds_ref(d);
            v[i++] = d;
        }
    }
    bool legacy = p->legacy_crypt;
    pthread_mutex_unlock(&p->lock);
    int r = 0;
    for (size_t j = 0; j < i && r == 0; j++) {
        if (legacy) {
            blog_warn("pool %s: the metadata of '%s' is not authenticated (made before berth "
                      "authenticated encrypted metadata): a pool file changed by someone "
                      "without the key could roll its data back", p->name, v[j]->rec.name);
            continue;
        }
        r = check_one(p, v[j], master);
        if (r == -EILSEQ && !p->readonly) {
            /* a txg publishing this dataset's new tree and MAC may have been
             * between the two: check the settled state once more */
            int s = txg_sync_all(p);
            r = s < 0 ? s : check_one(p, v[j], master);
        }
        if (r < 0)
            r = fail(err, name, v[j], r);
    }
    for (size_t j = 0; j < i; j++)
        ds_unref(v[j]);
    free(v);
    return r;
}

int ds_verify_root_mac(struct bs_pool *p, struct ds *d, struct berr *err)
{
    const struct crypt_key *master = ds_sync_key(p, d);
    if (!master)
        return berr_set(err, ENOKEY, "the key of '%s' is not loaded", d->rec.name);
    int r = check_one(p, d, master);
    if (r == -EILSEQ)
        return berr_set(err, EILSEQ, "the metadata of '%s' fails authentication (root MAC "
                        "mismatch)", d->rec.name);
    return r < 0 ? berr_errno(err, -r, "cannot check the metadata of '%s'", d->rec.name) : 0;
}

int ds_get_root_mac(struct bs_pool *p, struct ds *d, uint8_t mac[DS_ROOT_MAC_LEN])
{
    if (!d->key)
        return -EINVAL;
    pthread_mutex_lock(&p->lock);
    memcpy(mac, d->rec.root_mac, DS_ROOT_MAC_LEN);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int ds_set_root_mac(struct bs_pool *p, struct ds *d, const uint8_t mac[DS_ROOT_MAC_LEN])
{
    if (!d->key)
        return -EINVAL;
    const struct crypt_key *k = ds_sync_key(p, d);
    if (k) {
        /* the key is here: the committed tree must be what the MAC says */
        pthread_mutex_lock(&d->lock);
        struct objdesc od = d->od;
        pthread_mutex_unlock(&d->lock);
        uint8_t digest[CRYPT_DIGEST_LEN];
        int r = objtree_root_digest(&od, digest) < 0 ? -EBADMSG
                : crypt_root_mac_verify(k, d->key->rec.guid, od.nblocks << od.dshift,
                                        1u << od.dshift, digest, mac);
        if (r < 0)
            return r == -EIO ? -EBADMSG : r;
    }
    pthread_mutex_lock(&p->lock);
    memcpy(d->rec.root_mac, mac, DS_ROOT_MAC_LEN);
    p->mos_dirty = true;
    txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    return 0;
}
