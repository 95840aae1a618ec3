/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metadata authentication of encrypted datasets in the engine
 * (docs/FORMAT.md section 10, "Metadata authentication").
 *
 * Each encrypted dataset record (volume, snapshot, clone, receive target)
 * carries a root MAC (mos_ds.root_mac, cryptmac.h) over its tree's root
 * digest (objtree_root_digest), its size and its key.
 *
 * Invariants:
 *  - the sync thread recomputes the root MAC of an encrypted volume (not a
 *    snapshot) whose key is loaded in every txg that changes its tree,
 *    so a committed record's MAC always matches its committed tree; a
 *    dataset whose key is not loaded cannot change its tree (writes need
 *    the key, resize refuses) except a raw receive target, whose MAC comes
 *    from the stream (ds_set_root_mac);
 *  - snapshots, clones and rollback heads copy the MAC of the dataset whose
 *    tree they take (snap.c);
 *  - a key is loaded only after the MAC of every dataset using it (but
 *    receive targets in progress) verified: from then on the in-memory roots
 *    are trusted, and every indirect read below them is checked against its
 *    parent's digest (objtree.c). */
#ifndef BERTH_STORE_DSAUTH_H
#define BERTH_STORE_DSAUTH_H

#include <stdint.h>

#include "store/pool_impl.h"

/* The root MAC of tree `od` (its size and block size) under master key
 * `master` of the key record with guid `key_guid`.  -EILSEQ if od's root is
 * not authenticated, else the errors of crypt_root_mac. */
int ds_root_mac_compute(uint64_t key_guid, const struct crypt_key *master,
                        const struct objdesc *od, uint8_t mac[DS_ROOT_MAC_LEN]);

/* Key load: check the root MAC of every dataset using key k against its
 * committed tree with `master` (k is not loaded yet).  0, or -EACCES with
 * err naming the first dataset that fails ("cannot load the key of
 * 'name': the metadata of 'ds' fails authentication ..."). A pool from before metadata authentication (read-only) is
 * let through with a warning.  admin_lock held, pool->lock not. */
int ds_auth_verify_key(struct bs_pool *p, struct vkey *k, const struct crypt_key *master,
                       const char *name, struct berr *err);

/* Verify one committed dataset with its loaded key: 0, -ENOKEY (key not
 * loaded), -EILSEQ (the MAC does not match: err says which dataset). */
int ds_verify_root_mac(struct bs_pool *p, struct ds *d, struct berr *err);

/* Raw send: the root MAC of committed dataset d (a snapshot's never
 * changes).  -EINVAL if d is not encrypted. */
int ds_get_root_mac(struct bs_pool *p, struct ds *d, uint8_t mac[DS_ROOT_MAC_LEN]);

/* Raw receive, no key needed: d (the receive target) takes the MAC the
 * sender's snapshot had; the next txg stores it.  Call it once the last
 * block of the stream is committed (bs_vol_flush) and before the receive
 * finishes (the snapshot it turns into copies the target's MAC).  -EINVAL
 * if d is not encrypted.  When d's key is loaded the committed tree is
 * checked against `mac` at once: -EBADMSG if it does not match (a forged
 * stream).  Without the key the check happens at the next key load
 * (ds_auth_verify_key covers the finished snapshot and volume). */
int ds_set_root_mac(struct bs_pool *p, struct ds *d, const uint8_t mac[DS_ROOT_MAC_LEN]);

/* Sync thread: the master key of d if it is loaded (also while an unload
 * commits its last dirty data), else NULL.  Only used for a dataset whose
 * tree changed in the syncing txg: an unload first commits and then frees
 * the key while no dataset of it is open, so nothing can change such a tree
 * after that commit but a raw receive (which never needs the key). */
const struct crypt_key *ds_sync_key(struct bs_pool *p, const struct ds *d);

#endif
