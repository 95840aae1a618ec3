/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AES-256-GCM with VAES + VPCLMULQDQ on 512-bit vectors (x86-64 AVX-512),
 * the fast path of crypt.c's block encryption.  Same input, same output as
 * OpenSSL's AES-256-GCM with a 96-bit IV and a 16-byte tag, for any AAD and
 * data length (docs/ARCHITECTURE.md, "Block encryption speed").
 *
 * Only call gcm_vaes_setkey/seal/open after gcm_vaes_supported() said yes:
 * gcm_vaes.c is compiled for AVX-512 and faults on any other CPU.
 * gcm_vaes_supported() itself lives in gcm_cpu.c, compiled for plain x86-64.
 *
 * A struct gcm_vaes_key is key material (the expanded AES round keys and
 * powers of the hash key H): keep it in crypt_secure_alloc() memory and
 * cleanse it when done.  The functions keep no state between calls and are
 * constant-time: no table lookups, no branch on key or data, only on lengths. */
#ifndef BERTH_STORE_GCM_VAES_H
#define BERTH_STORE_GCM_VAES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hash-key powers kept: H^16..H^1 plus zero padding the tail loads may touch. */
#define GCM_VAES_NPOW    16
#define GCM_VAES_POW_PAD 4

struct gcm_vaes_key {
    /* round key r broadcast to the four 128-bit lanes */
    _Alignas(64) uint8_t rk[15][64];
    /* hpow[i] = H^(16-i) in the bit-reflected Montgomery form gcm_vaes.c
     * multiplies in; entries 16.. are zero */
    _Alignas(64) uint8_t hpow[GCM_VAES_NPOW + GCM_VAES_POW_PAD][16];
    uint32_t loaded; /* 1 once set; 0 in fresh or wiped memory */
};

/* True when this CPU and OS run gcm_vaes.c: AES-NI, PCLMULQDQ, AVX-512F/BW/VL,
 * VAES, VPCLMULQDQ and the OS saving zmm state (XGETBV).  Built without
 * the kernel (non-x86-64 or an old compiler) it is always false. */
bool gcm_vaes_supported(void);

/* Expand a 32-byte AES-256 key into `k`. */
void gcm_vaes_setkey(struct gcm_vaes_key *k, const uint8_t key[32]);

/* Encrypt `len` bytes of `in` into `out` (the same buffer or disjoint ones)
 * under IV `iv`, authenticating `aad` too; the 16-byte tag goes to `tag`. */
void gcm_vaes_seal(const struct gcm_vaes_key *k, const uint8_t iv[12], const void *aad,
                   size_t aadlen, const void *in, void *out, size_t len, uint8_t tag[16]);

/* Decrypt `len` bytes of `in` into `out` (same or disjoint) and check `tag`
 * in constant time.  false: the tag does not match, and `out` holds
 * unauthenticated plaintext the caller must wipe before anything reads it. */
bool gcm_vaes_open(const struct gcm_vaes_key *k, const uint8_t iv[12], const void *aad,
                   size_t aadlen, const void *in, void *out, size_t len, const uint8_t tag[16]);

#endif
