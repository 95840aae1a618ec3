/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encryption of volume data blocks between compression and the checksum
 * (see blkcrypt.h for the invariants).  The AAD binds a ciphertext to its
 * key, block id, birth txg, sizes, type, level and compression, so a block
 * copied elsewhere in the pool fails authentication. */
#include "store/blkcrypt.h"

#include <string.h>

#include "common/le.h"
#include "store/codec.h"

#define MAC_OFF 16 /* the MAC lives in checksum[16..31] (bp bytes 112..127) */

void bp_get_salt(const struct blkptr *bp, uint8_t salt[CRYPT_SALT_LEN])
{
    put_le64(salt, bp->dva[2].offset);
}

static void bp_set_salt(struct blkptr *bp, const uint8_t salt[CRYPT_SALT_LEN])
{
    bp->dva[2].offset = get_le64(salt);
    bp->dva[2].vdev = 0;
    bp->dva[2].asize = 0;
}

bool blk_crypt_match(const struct blkptr *bp, const struct blk_crypt *bc)
{
    return !!(bp->flags & BP_FLAG_ENCRYPTED) == (bc != NULL);
}

bool blk_sum_ok(const struct blkptr *bp, const uint8_t sum[32])
{
    /* an authenticated indirect keeps its children's digest there instead */
    if (bp->flags & (BP_FLAG_ENCRYPTED | BP_FLAG_AUTH))
        return memcmp(sum, bp->checksum, MAC_OFF) == 0;
    return checksum_equal(bp->cksum, sum, bp->checksum);
}

static void make_aad(const struct blk_crypt *bc, uint8_t type, uint8_t level, uint8_t comp,
                     uint64_t birth, uint32_t lsize, uint32_t psize, uint8_t aad[CRYPT_AAD_LEN])
{
    struct crypt_block_id id = {
        .key_guid = bc->key_guid, .object = bc->object, .blkid = bc->blkid, .birth = birth,
        .lsize = lsize, .psize = psize, .type = type, .level = level, .comp = comp,
    };
    crypt_block_aad(&id, aad);
}

int blk_seal(const struct blk_wprops *wp, uint8_t comp, uint32_t lsize, uint32_t psize,
             uint64_t txg, struct blk_scratch *s, const uint8_t **src, struct blkptr *bp)
{
    const struct blk_crypt *bc = wp->crypt;
    if (!bc->key)
        return -ENOKEY;
    if (psize > s->cap)
        return -EOVERFLOW;
    uint8_t salt[CRYPT_SALT_LEN], aad[CRYPT_AAD_LEN], mac[CRYPT_MAC_LEN];
    int r = crypt_key_next_salt((struct crypt_key *)bc->key, salt);
    if (r == 0)
        r = crypt_random_iv(bp->iv);
    if (r < 0)
        return r;
    make_aad(bc, wp->type, wp->level, comp, txg, lsize, psize, aad);
    /* out of place when the bytes are still the caller's (uncompressed) */
    r = crypt_encrypt_block(bc->key, salt, bp->iv, aad, sizeof aad, *src, s->buf, psize, mac);
    if (r < 0)
        return r;
    *src = s->buf;
    checksum_compute(wp->cksum, s->buf, psize, bp->checksum);
    memcpy(bp->checksum + MAC_OFF, mac, CRYPT_MAC_LEN);
    bp->flags |= BP_FLAG_ENCRYPTED;
    bp_set_salt(bp, salt);
    return 0;
}

int blk_unseal(const struct blkio *io, const struct blkptr *bp, const struct blk_crypt *bc,
               uint8_t *buf)
{
    if (!bc || !bc->key || !(bp->flags & BP_FLAG_ENCRYPTED)) {
        blk_count_cksum_error(io);
        return -EIO;
    }
    uint8_t salt[CRYPT_SALT_LEN], aad[CRYPT_AAD_LEN];
    bp_get_salt(bp, salt);
    make_aad(bc, bp->type, bp->level, bp->comp, bp->birth, bp->lsize, bp->psize, aad);
    int r = crypt_decrypt_block(bc->key, salt, bp->iv, aad, sizeof aad, buf, buf, bp->psize,
                                bp->checksum + MAC_OFF);
    if (r == -EIO)
        blk_count_cksum_error(io);
    return r;
}

int blk_open_into(const struct blkptr *bp, const struct blk_crypt *bc, const uint8_t *in,
                  uint8_t *out)
{
    if (!bc || !bc->key || !(bp->flags & BP_FLAG_ENCRYPTED))
        return -EIO;
    uint8_t salt[CRYPT_SALT_LEN], aad[CRYPT_AAD_LEN];
    bp_get_salt(bp, salt);
    make_aad(bc, bp->type, bp->level, bp->comp, bp->birth, bp->lsize, bp->psize, aad);
    return crypt_decrypt_block(bc->key, salt, bp->iv, aad, sizeof aad, in, out, bp->psize,
                               bp->checksum + MAC_OFF);
}
