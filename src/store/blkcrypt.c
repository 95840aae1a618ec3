/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encryption of volume data blocks between compression and the checksum
 * (see blkcrypt.h for the invariants).  The AAD binds a ciphertext to its
 * key, block id, sizes, type, level and compression, so a block copied to
 * another block id or key fails authentication.
 *
 * AAD versions.  Version 1 (pointer byte 92 = 0) also bound the block's
 * birth txg and object id.  Both are local to the pool that wrote the block:
 * a raw send stores the same ciphertext in another pool, in another txg, so
 * a version-1 block can never be authenticated there.  Version 2 (byte 92 =
 * 2, crypt_block_aad2) binds only what travels with the block, and is what
 * blk_seal writes now; version-1 blocks stay readable (blk_unseal picks the
 * AAD by that byte, and changing the byte breaks the tag like any other AAD
 * change).  A raw send refuses a version-1 block (blk_sealed_of: -ENOTSUP).
 *
 * Why dropping birth loses nothing:
 *  - birth never protected the confidentiality or integrity of one block:
 *    the IV is 12 random bytes drawn per block and never reused (crypt.h),
 *    so two writes of the same block id never share a keystream, with or
 *    without the txg in the AAD;
 *  - what birth did add is positional freshness: an old ciphertext of the
 *    same key and block id (from an earlier txg, e.g. a snapshot) put back
 *    in place of the current one failed.  Without birth that replay
 *    authenticates.  But the attacker must also rewrite the indirect blocks
 *    above it (their checksums cover the pointer), and stopping a rewritten
 *    tree is the job of the metadata authentication (objtree.c, dsauth.h:
 *    keyless digests of every indirect block over its children's MACs and a
 *    keyed root MAC in each dataset record), which catches such a replay;
 *  - object is 0 for every volume block (reserved for file datasets, which
 *    would bind their object through the metadata MAC of the dnode). */
#include "store/blkcrypt.h"

#include <stdatomic.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/le.h"
#include "common/util.h"
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

/* The AAD of a block sealed with `version` (BLK_AAD_*); returns its length. */
static size_t make_aad(const struct blk_crypt *bc, uint8_t version, uint8_t type, uint8_t level,
                       uint8_t comp, uint64_t birth, uint32_t lsize, uint32_t psize,
                       uint8_t aad[CRYPT_AAD_LEN])
{
    struct crypt_block_id id = {
        .key_guid = bc->key_guid, .object = bc->object, .blkid = bc->blkid, .birth = birth,
        .lsize = lsize, .psize = psize, .type = type, .level = level, .comp = comp,
    };
    if (version == BLK_AAD_PORTABLE) {
        crypt_block_aad2(&id, aad);
        return CRYPT_AAD2_LEN;
    }
    crypt_block_aad(&id, aad);
    return CRYPT_AAD_LEN;
}

static atomic_bool test_local_aad;

void blk_crypt_test_local_aad(bool on)
{
    atomic_store(&test_local_aad, on);
}

int blk_seal(const struct blk_wprops *wp, const struct blk_crypt *bc, uint8_t comp,
             uint32_t lsize, uint32_t psize, uint64_t txg, const uint8_t *in, uint8_t *out,
             struct blkptr *bp)
{
    if (!bc || !bc->key)
        return -ENOKEY;
    uint8_t salt[CRYPT_SALT_LEN], aad[CRYPT_AAD_LEN], mac[CRYPT_MAC_LEN];
    int r = crypt_key_next_salt((struct crypt_key *)bc->key, salt);
    if (r == 0)
        r = crypt_random_iv(bp->iv);
    if (r < 0)
        return r;
    uint8_t ver = atomic_load(&test_local_aad) ? BLK_AAD_LOCAL : BLK_AAD_PORTABLE;
    bp->iv[BLK_AAD_BYTE] = ver;
    size_t alen = make_aad(bc, ver, wp->type, wp->level, comp, txg, lsize, psize, aad);
    r = crypt_encrypt_block(bc->key, salt, bp->iv, aad, alen, in, out, psize, mac);
    if (r < 0)
        return r;
    checksum_compute(wp->cksum, out, psize, bp->checksum);
    memcpy(bp->checksum + MAC_OFF, mac, CRYPT_MAC_LEN);
    bp->flags |= BP_FLAG_ENCRYPTED;
    bp_set_salt(bp, salt);
    return 0;
}

int blk_unseal(const struct blkio *io, const struct blkptr *bp, const struct blk_crypt *bc,
               uint8_t *buf)
{
    if (!bc || !bc->key || !(bp->flags & BP_FLAG_ENCRYPTED)) {
        blk_count_bp_error(io, bp);
        return -EIO;
    }
    uint8_t salt[CRYPT_SALT_LEN], aad[CRYPT_AAD_LEN];
    bp_get_salt(bp, salt);
    size_t alen = make_aad(bc, bp->iv[BLK_AAD_BYTE], bp->type, bp->level, bp->comp, bp->birth,
                           bp->lsize, bp->psize, aad);
    int r = crypt_decrypt_block(bc->key, salt, bp->iv, aad, alen, buf, buf, bp->psize,
                                bp->checksum + MAC_OFF);
    if (r == -EIO)
        blk_count_bp_error(io, bp);
    return r;
}

int blk_open_into(const struct blkptr *bp, const struct blk_crypt *bc, const uint8_t *in,
                  uint8_t *out)
{
    if (!bc || !bc->key || !(bp->flags & BP_FLAG_ENCRYPTED))
        return -EIO;
    uint8_t salt[CRYPT_SALT_LEN], aad[CRYPT_AAD_LEN];
    bp_get_salt(bp, salt);
    size_t alen = make_aad(bc, bp->iv[BLK_AAD_BYTE], bp->type, bp->level, bp->comp, bp->birth,
                           bp->lsize, bp->psize, aad);
    return crypt_decrypt_block(bc->key, salt, bp->iv, aad, alen, in, out, bp->psize,
                               bp->checksum + MAC_OFF);
}

int blk_sealed_of(const struct blkptr *bp, uint64_t blkid, struct blk_sealed *out)
{
    if (!(bp->flags & BP_FLAG_ENCRYPTED) || bp->type != BP_TYPE_VOL_DATA || bp->level != 0 ||
        bp_is_hole(bp))
        return -EIO;
    if (bp->iv[BLK_AAD_BYTE] != BLK_AAD_PORTABLE)
        return -ENOTSUP;
    memset(out, 0, sizeof *out);
    out->blkid = blkid;
    out->lsize = bp->lsize;
    out->psize = bp->psize;
    out->comp = bp->comp;
    bp_get_salt(bp, out->salt);
    memcpy(out->iv, bp->iv, CRYPT_IV_LEN);
    memcpy(out->mac, bp->checksum + MAC_OFF, CRYPT_MAC_LEN);
    return 0;
}

int blk_sealed_check(const struct blk_sealed *sb, uint32_t volblocksize)
{
    if (sb->lsize != volblocksize || sb->psize == 0 || sb->psize > sb->lsize ||
        (sb->comp != BS_COMPRESS_OFF && sb->comp != BS_COMPRESS_LZ4 &&
         sb->comp != BS_COMPRESS_ZSTD) ||
        (sb->comp == BS_COMPRESS_OFF) != (sb->psize == sb->lsize) ||
        buf_is_zero(sb->iv, CRYPT_IV_LEN))
        return -EILSEQ;
    return 0;
}

void blk_sealed_prepare(const struct blk_sealed *sb, const uint8_t *ct, uint8_t cksum,
                        uint64_t txg, struct blkptr *bp)
{
    memset(bp, 0, sizeof *bp);
    checksum_compute(cksum, ct, sb->psize, bp->checksum);
    memcpy(bp->checksum + MAC_OFF, sb->mac, CRYPT_MAC_LEN);
    memcpy(bp->iv, sb->iv, CRYPT_IV_LEN);
    bp->iv[BLK_AAD_BYTE] = BLK_AAD_PORTABLE;
    bp_set_salt(bp, sb->salt);
    bp->birth = txg;
    bp->lsize = sb->lsize;
    bp->psize = sb->psize;
    bp->comp = sb->comp;
    bp->cksum = cksum;
    bp->type = BP_TYPE_VOL_DATA;
    bp->level = 0;
    bp->flags = BP_FLAG_ENCRYPTED;
    bp->fill = 1;
}
