/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Block encryption primitives for encrypted volumes (DESIGN.md invariant 8,
 * docs/FORMAT.md section 5: IV at bp bytes 80..91, MAC at 112..127, salt in
 * DVA 2).  Standalone: nothing here knows about pools or trees.
 *
 * Key hierarchy (the ZFS shape):
 *
 *   user key ──KDF──► KEK ──AES-GCM wrap──► master data key (32 B, per volume)
 *                                              │
 *          HKDF-SHA256(master, salt8, "berth block key v1") ──► block key
 *          HKDF-SHA256(master, -, "berth metadata hmac v1")  ──► metadata MAC key
 *          HKDF-SHA256(master, -, "berth key check v1")      ──► key fingerprint
 *
 * A data block is AES-256-GCM(block key for its salt, random 96-bit IV,
 * AAD = the block's identity) and its 16-byte tag is the MAC.  A salt is used
 * for at most CRYPT_SALT_MAX_USES blocks (crypt_key_next_salt rotates it), so
 * one derived key sees far fewer than the 2^32 random-IV invocations NIST
 * allows.  Metadata that stays plaintext (MOS, indirect blocks) gets a
 * truncated HMAC-SHA256 instead, so it is tamper-evident without a key to
 * read it.
 *
 * Every secret (master key, derived keys, user keys) lives in memory from
 * crypt_secure_alloc(): mlock'ed where RLIMIT_MEMLOCK allows, excluded from
 * core dumps, wiped in a forked child, and cleansed before it is unmapped.
 * OpenSSL's own copies (key schedules inside EVP contexts) and the expanded
 * keys of the VAES engine (gcm_vaes.h, kept in secure memory) are cleansed
 * when a context is reset or freed: a thread resets its cached contexts at
 * its next crypt call after any key is freed, and frees them when it exits.
 *
 * All functions are thread-safe; a struct crypt_key may be shared by any
 * number of threads.  Each thread keeps its own EVP contexts (and the last
 * block key it loaded), so the hot path takes no lock. */
#ifndef BERTH_STORE_CRYPT_H
#define BERTH_STORE_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPT_KEY_LEN 32
#define CRYPT_SALT_LEN 8
#define CRYPT_IV_LEN 12
#define CRYPT_MAC_LEN 16
#define CRYPT_AAD_LEN 48  /* version 1 (pool-local: birth, object) */
#define CRYPT_AAD2_LEN 32 /* version 2 (portable: survives a raw send) */
#define CRYPT_FINGERPRINT_LEN 16
/* Blocks encrypted under one salt before crypt_key_next_salt picks a new one
 * (2^24: the chance of any random-IV collision under one key stays < 2^-49). */
#define CRYPT_SALT_MAX_USES (1ull << 24)
/* Derived block keys cached per master key (reads of old data hit old salts). */
#define CRYPT_DK_CACHE 16
/* Largest block crypt_{en,de}crypt_block accept (the engine's max is 16 MiB). */
#define CRYPT_MAX_BLOCK (64u << 20)

/* ---- secure memory ---- */

/* Zeroed memory for secrets: page-granular mmap, mlock (best effort),
 * MADV_DONTDUMP and MADV_WIPEONFORK.  NULL (errno set) on failure.  Free with
 * crypt_secure_free, which cleanses the bytes first; NULL is accepted. */
void *crypt_secure_alloc(size_t len);
void crypt_secure_free(void *p);
/* true once any mlock failed (RLIMIT_MEMLOCK): the daemon may warn once. */
bool crypt_secure_mlock_failed(void);

/* Cryptographically secure random bytes (getrandom).  0 or -errno. */
int crypt_random(void *buf, size_t len);
/* A fresh block IV.  Comes from a per-thread buffer refilled by getrandom,
 * wiped on fork, so two processes never share IVs. */
int crypt_random_iv(uint8_t iv[CRYPT_IV_LEN]);

/* ---- master keys ---- */

struct crypt_key; /* opaque, lives in secure memory */

/* A new random master key.  0 or -errno (-ENOMEM). */
int crypt_key_generate(struct crypt_key **out);
/* A master key from 32 bytes (an unwrapped key).  The caller wipes its copy. */
int crypt_key_from_bytes(const uint8_t raw[CRYPT_KEY_LEN], struct crypt_key **out);
/* Wipe and release; NULL is fine.  No other thread may be using `k`. */
void crypt_key_free(struct crypt_key *k);

/* 16 bytes that identify the key without revealing it: the engine can store
 * them with the volume to tell "unwrapped some key" from "unwrapped this
 * volume's key".  0 or -ENOKEY (wiped key, e.g. in a forked child). */
int crypt_key_fingerprint(const struct crypt_key *k, uint8_t out[CRYPT_FINGERPRINT_LEN]);

/* The salt for the next block written under `k`: the current salt until it
 * has been handed out `limit` times (CRYPT_SALT_MAX_USES by default), then a
 * new random one.  0 or -errno. */
int crypt_key_next_salt(struct crypt_key *k, uint8_t salt[CRYPT_SALT_LEN]);
/* Forget the current salt so the next block starts a new one (the engine may
 * call this per txg); a non-zero `limit` replaces the rotation limit. */
int crypt_key_rotate_salt(struct crypt_key *k, uint64_t limit);

/* ---- block encryption ---- */

/* The identity a data block's ciphertext is bound to (the AAD).  Moving a
 * ciphertext to another block id, volume or txg, or changing its recorded
 * sizes, type or compression, makes authentication fail.  `key_guid` is the
 * guid of the volume whose master key encrypted the block — a clone keeps its
 * origin's, raw send keeps it too; `birth` is the txg the block was written
 * in, which a raw receive must preserve. */
struct crypt_block_id {
    uint64_t key_guid;
    uint64_t object;
    uint64_t blkid;
    uint64_t birth;
    uint32_t lsize;
    uint32_t psize;
    uint8_t type;
    uint8_t level;
    uint8_t comp;
};
/* Serialise `id` into the fixed AAD layout (little-endian, versioned).
 * Version 1, 48 bytes: binds every field of `id`, birth and object included.
 * Blocks written before raw send existed carry it; it is still read. */
void crypt_block_aad(const struct crypt_block_id *id, uint8_t aad[CRYPT_AAD_LEN]);
/* Version 2, 32 bytes, what every block is written with now: binds only what
 * a block keeps when it is copied to another pool by a raw send (key guid,
 * blkid, lsize, psize, type, level, comp) and ignores `birth` and `object`,
 * which are local to the pool that wrote it (docs/FORMAT.md section 10 says
 * why dropping them loses nothing). */
void crypt_block_aad2(const struct crypt_block_id *id, uint8_t aad[CRYPT_AAD2_LEN]);

/* AES-256-GCM of `len` bytes from `in` to `out` (which may be the same
 * buffer; no partial overlap) under the block key of (k, salt), with `iv`
 * (from crypt_random_iv: never reuse one) and `aad`.  Writes the 16-byte tag
 * to `mac`.  0, -EINVAL (len > CRYPT_MAX_BLOCK), -ENOKEY, -ENOMEM or -EIO
 * (OpenSSL failure; `out` is then undefined). */
int crypt_encrypt_block(const struct crypt_key *k, const uint8_t salt[CRYPT_SALT_LEN],
                        const uint8_t iv[CRYPT_IV_LEN], const void *aad, size_t aadlen,
                        const void *in, void *out, size_t len, uint8_t mac[CRYPT_MAC_LEN]);

/* The inverse.  Returns 0 only if `mac` authenticates ciphertext, AAD, IV and
 * salt; otherwise -EIO and `out` is zeroed (so an in-place decrypt loses the
 * ciphertext: re-read it to try another copy).  Unauthenticated plaintext is
 * never left in `out`. */
int crypt_decrypt_block(const struct crypt_key *k, const uint8_t salt[CRYPT_SALT_LEN],
                        const uint8_t iv[CRYPT_IV_LEN], const void *aad, size_t aadlen,
                        const void *in, void *out, size_t len, const uint8_t mac[CRYPT_MAC_LEN]);

/* Block encryption runs on gcm_vaes.c (AVX-512 VAES + VPCLMULQDQ) when the
 * CPU and OS support it and the environment variable BERTH_GCM is not
 * "openssl" (read once, at the first crypt call), else on OpenSSL: the same
 * bytes either way.  true when the VAES engine is in use. */
bool crypt_gcm_accelerated(void);
/* Tests: true makes block encryption use OpenSSL from the next call on
 * (every thread), false goes back to the choice above. */
void crypt_test_gcm_openssl(bool on);

/* ---- metadata authentication ---- */

/* HMAC-SHA256(metadata key, aad || data) truncated to 16 bytes, for blocks
 * that stay plaintext but must be tamper-evident. */
int crypt_meta_mac(const struct crypt_key *k, const void *aad, size_t aadlen, const void *data,
                   size_t len, uint8_t mac[CRYPT_MAC_LEN]);
/* 0 if `mac` matches (constant-time compare), -EIO if not, -ENOKEY/-ENOMEM. */
int crypt_meta_verify(const struct crypt_key *k, const void *aad, size_t aadlen, const void *data,
                      size_t len, const uint8_t mac[CRYPT_MAC_LEN]);

/* ---- one-shot AES-256-GCM with an explicit key ---- */

/* For key wrapping and known-answer tests: no derivation, no caching. */
int crypt_gcm_seal(const uint8_t key[CRYPT_KEY_LEN], const uint8_t iv[CRYPT_IV_LEN],
                   const void *aad, size_t aadlen, const void *in, void *out, size_t len,
                   uint8_t mac[CRYPT_MAC_LEN]);
/* 0, or -EACCES when the tag does not verify (`out` is then zeroed), -EINVAL,
 * -ENOMEM, -EIO. */
int crypt_gcm_open(const uint8_t key[CRYPT_KEY_LEN], const uint8_t iv[CRYPT_IV_LEN],
                   const void *aad, size_t aadlen, const void *in, void *out, size_t len,
                   const uint8_t mac[CRYPT_MAC_LEN]);

/* ---- key wrapping (used by keyslot.c) ---- */

/* Wrap the master key of `k` with a 32-byte KEK: AES-256-GCM, `iv` fresh,
 * `aad` the slot header.  `kek` should itself live in secure memory. */
int crypt_key_wrap(const struct crypt_key *k, const uint8_t kek[CRYPT_KEY_LEN],
                   const uint8_t iv[CRYPT_IV_LEN], const void *aad, size_t aadlen,
                   uint8_t wrapped[CRYPT_KEY_LEN], uint8_t mac[CRYPT_MAC_LEN]);
/* Unwrap into a new master key.  -EACCES if the tag does not verify (wrong
 * KEK or tampered slot), -ENOMEM, -EIO. */
int crypt_key_unwrap(const uint8_t kek[CRYPT_KEY_LEN], const uint8_t iv[CRYPT_IV_LEN],
                     const void *aad, size_t aadlen, const uint8_t wrapped[CRYPT_KEY_LEN],
                     const uint8_t mac[CRYPT_MAC_LEN], struct crypt_key **out);

/* HKDF-SHA256 (RFC 5869) into `out` (the caller's, ideally secure, buffer).
 * 0, -EINVAL or -EIO. */
int crypt_hkdf(const void *ikm, size_t ikmlen, const void *salt, size_t saltlen, const char *info,
               void *out, size_t outlen);

#endif
