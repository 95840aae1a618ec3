/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The keyed root MAC of an encrypted dataset (docs/FORMAT.md section 10,
 * "Metadata authentication").  Standalone like crypt.h: nothing here knows
 * about pools.
 *
 * The tree of an encrypted volume is authenticated bottom-up without a key:
 * data blocks carry their GCM tag, every indirect the keyless digest of its
 * children (objtree_ind_digest).  The root digest is then bound to the key
 * and the dataset's shape by
 *
 *   root MAC = HMAC-SHA256(metadata key, le64(32) || aad || root digest)[0..16]
 *   aad      = u8 1, 7 zero bytes, key guid u64, volsize u64,
 *              volblocksize u32, 4 zero bytes
 *
 * with metadata key = HKDF-SHA256(master key, no salt, "berth metadata hmac
 * v1") (crypt_meta_mac).  Only the key holder can make one, so a forger who
 * rewrites blocks and recomputes every checksum and digest up to the root
 * still fails the MAC.  Every input is portable (no DVAs, births or txgs):
 * a raw receiver stores the sender's MAC and it verifies there. */
#ifndef BERTH_STORE_CRYPTMAC_H
#define BERTH_STORE_CRYPTMAC_H

#include <stdint.h>

#include "store/crypt.h"

#define CRYPT_ROOT_MAC_LEN 16
#define CRYPT_DIGEST_LEN 16

/* The root MAC of a dataset whose tree has root digest `digest`, of
 * `volsize` bytes in blocks of `volblocksize`, under master key `k` whose
 * key record has guid `key_guid`.  0, -ENOKEY, -ENOMEM or -EIO. */
int crypt_root_mac(const struct crypt_key *k, uint64_t key_guid, uint64_t volsize,
                   uint32_t volblocksize, const uint8_t digest[CRYPT_DIGEST_LEN],
                   uint8_t mac[CRYPT_ROOT_MAC_LEN]);

/* 0 if `mac` is the root MAC of these inputs (constant-time compare), -EIO
 * if not, or the errors of crypt_root_mac. */
int crypt_root_mac_verify(const struct crypt_key *k, uint64_t key_guid, uint64_t volsize,
                          uint32_t volblocksize, const uint8_t digest[CRYPT_DIGEST_LEN],
                          const uint8_t mac[CRYPT_ROOT_MAC_LEN]);

#endif
