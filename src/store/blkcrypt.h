/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The encryption hooks of block I/O (docs/FORMAT.md sections 5 and 10):
 * blk_write_batch calls blk_seal after compression, blk_read calls
 * blk_unseal after the checksum and before decompression.
 *
 * Invariants:
 *  - an encrypted block pointer has BP_FLAG_ENCRYPTED, a random IV at bytes
 *    80..91, its salt in DVA 2 (bytes 32..39), the first 16 bytes of its
 *    checksum over the *ciphertext* (so a scrub verifies it without a key)
 *    and the GCM tag in bytes 112..127;
 *  - a block of an encrypted volume must be encrypted and a block of a
 *    plaintext volume must not: a mismatch is a corrupt pointer (EIO, a
 *    counted checksum error), so a tampered tree cannot downgrade a block to
 *    plaintext;
 *  - a tag that does not verify is EIO and a counted checksum error, and the
 *    buffer is zeroed: unauthenticated plaintext never leaves this file;
 *  - byte 92 of an encrypted pointer (iv[12]) names its AAD version: 0 for
 *    the pool-local version 1 (blocks written before raw send existed), 2
 *    for the portable version every block is written with now; only
 *    portable blocks may be raw-sent (blk_sealed_prepare + blk_write_batch
 *    store them elsewhere exactly as they were). */
#ifndef BERTH_STORE_BLKCRYPT_H
#define BERTH_STORE_BLKCRYPT_H

#include <stdbool.h>
#include <stdint.h>

#include "store/blkio.h"
#include "store/crypt.h"

/* What a data block of an encrypted volume is bound to (the AAD besides
 * the pointer's own fields). */
struct blk_crypt {
    const struct crypt_key *key; /* the volume's master key (loaded) */
    uint64_t key_guid;           /* guid of the key record (a clone shares its origin's) */
    uint64_t object;             /* 0 for volume data (reserved for file datasets) */
    uint64_t blkid;              /* the block's index in its object */
};

/* bp->iv[BLK_AAD_BYTE]: which AAD an encrypted block was sealed with. */
#define BLK_AAD_BYTE 12
#define BLK_AAD_LOCAL 0    /* version 1: binds birth and object (pool-local) */
#define BLK_AAD_PORTABLE 2 /* version 2: portable (crypt_block_aad2) */

/* Everything of a sealed data block that another pool needs to store it and
 * later decrypt it there with the same master key: what a raw send stream
 * carries per block besides the ciphertext (docs/STREAM.md). */
struct blk_sealed {
    uint64_t blkid;
    uint32_t lsize, psize;
    uint8_t comp;                /* of the plaintext under the encryption */
    uint8_t salt[CRYPT_SALT_LEN];
    uint8_t iv[CRYPT_IV_LEN];
    uint8_t mac[CRYPT_MAC_LEN];
};

/* Salt of an encrypted pointer (DVA 2's offset field, little-endian). */
void bp_get_salt(const struct blkptr *bp, uint8_t salt[CRYPT_SALT_LEN]);

/* true if bp may be read with `bc` (NULL: a plaintext volume). */
bool blk_crypt_match(const struct blkptr *bp, const struct blk_crypt *bc);

/* Does `sum` (computed over the stored bytes) match bp's checksum?  An
 * encrypted pointer keeps 16 bytes of it (the MAC takes the rest), so does an
 * authenticated indirect (BP_FLAG_AUTH: its children's digest). */
bool blk_sum_ok(const struct blkptr *bp, const uint8_t sum[32]);

/* Encrypt the `psize` stored bytes at `in` into `out` (the same buffer, or
 * no overlap) under bc's key for block bc->blkid with a fresh IV and the
 * key's current salt, then fill bp's flag, IV, salt, checksum (of the
 * ciphertext) and MAC.  bp must be zeroed; `comp`, `lsize`, `psize`, `txg`
 * are what the writer stores.  Every call draws its own IV, so the blocks of
 * one batch never share one.  0 or -errno (-ENOKEY: key not loaded). */
int blk_seal(const struct blk_wprops *wp, const struct blk_crypt *bc, uint8_t comp,
             uint32_t lsize, uint32_t psize, uint64_t txg, const uint8_t *in, uint8_t *out,
             struct blkptr *bp);

/* Describe the encrypted data pointer `bp` of block blkid for a raw send.
 * -EIO if bp is not an encrypted data block; -ENOTSUP if it was sealed with
 * the pool-local AAD version 1 (it cannot be authenticated in another pool). */
int blk_sealed_of(const struct blkptr *bp, uint64_t blkid, struct blk_sealed *out);

/* Check a block description from a stream (hostile): sizes, compression,
 * IV.  0 or -EILSEQ. */
int blk_sealed_check(const struct blk_sealed *sb, uint32_t volblocksize);

/* The pointer of a sealed block stored as it is (raw receive), but for
 * its DVA: checksum of the `ct` ciphertext (sb->psize bytes) with `cksum`
 * (16 bytes kept, as for any encrypted block), flags, IV with the portable
 * AAD version, salt, MAC, sizes, compression, birth txg.  Needs no key; the
 * block stays out of the block cache (it holds plaintext).  The receiving
 * volume's key decrypts it later because the portable AAD holds nothing this
 * pool changed.  blk_write_batch stores such blocks (blk_wreq.sealed). */
void blk_sealed_prepare(const struct blk_sealed *sb, const uint8_t *ct, uint8_t cksum,
                        uint64_t txg, struct blkptr *bp);

/* Tests only: seal new blocks with the pool-local AAD version 1, as berth
 * did before raw send, to check that such blocks stay readable and that a
 * raw send refuses them. */
void blk_crypt_test_local_aad(bool on);

/* Authenticate and decrypt the bp->psize verified stored bytes in place.
 * -EIO (counted as a checksum error, buf zeroed) if the tag fails. */
int blk_unseal(const struct blkio *io, const struct blkptr *bp, const struct blk_crypt *bc,
               uint8_t *buf);

/* Authenticate and decrypt the bp->psize stored bytes at `in` into `out`
 * (no overlap, or in == out: in place) without counting anything: the verifier of a read with the
 * key loaded (blkio.c).  The tag covers the ciphertext and the block's
 * identity, so it makes the checksum redundant there (the checksum stays
 * for reads without the key: scrub, raw send).  0, -EIO (the tag fails;
 * `out` is zeroed), -ENOKEY. */
int blk_open_into(const struct blkptr *bp, const struct blk_crypt *bc, const uint8_t *in,
                  uint8_t *out);

#endif
