/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Root MACs of encrypted datasets (see cryptmac.h for the construction). */
#include "store/cryptmac.h"

#include <string.h>

#include "common/le.h"

#define ROOT_MAC_VERSION 1
#define ROOT_AAD_LEN 32

static void root_aad(uint64_t key_guid, uint64_t volsize, uint32_t volblocksize,
                     uint8_t aad[ROOT_AAD_LEN])
{
    memset(aad, 0, ROOT_AAD_LEN);
    aad[0] = ROOT_MAC_VERSION;
    put_le64(aad + 8, key_guid);
    put_le64(aad + 16, volsize);
    put_le32(aad + 24, volblocksize);
}

int crypt_root_mac(const struct crypt_key *k, uint64_t key_guid, uint64_t volsize,
                   uint32_t volblocksize, const uint8_t digest[CRYPT_DIGEST_LEN],
                   uint8_t mac[CRYPT_ROOT_MAC_LEN])
{
    uint8_t aad[ROOT_AAD_LEN];
    root_aad(key_guid, volsize, volblocksize, aad);
    return crypt_meta_mac(k, aad, sizeof aad, digest, CRYPT_DIGEST_LEN, mac);
}

int crypt_root_mac_verify(const struct crypt_key *k, uint64_t key_guid, uint64_t volsize,
                          uint32_t volblocksize, const uint8_t digest[CRYPT_DIGEST_LEN],
                          const uint8_t mac[CRYPT_ROOT_MAC_LEN])
{
    uint8_t aad[ROOT_AAD_LEN];
    root_aad(key_guid, volsize, volblocksize, aad);
    return crypt_meta_verify(k, aad, sizeof aad, digest, CRYPT_DIGEST_LEN, mac);
}
