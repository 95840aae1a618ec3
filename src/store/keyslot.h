/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key slots: a volume's master data key wrapped by up to KEYSLOT_MAX user
 * keys (docs/FORMAT.md section 10), and the parsing of user key material.
 *
 * A slot holds the master key encrypted (AES-256-GCM) under a key-encryption
 * key derived from one user key:
 *   raw / hex  : KEK = HKDF-SHA256(32-byte key, slot salt, "berth keyslot kek v1")
 *   passphrase : KEK = Argon2id(passphrase, slot salt, t, m, p)
 *                   or PBKDF2-HMAC-SHA256(passphrase, slot salt, iterations)
 * The slot header (everything but the wrapped key and its tag) is the GCM AAD,
 * so changing a KDF parameter, the slot id or the format breaks the slot
 * instead of weakening it.  Raw and hex keys are the same 32 bytes written two
 * ways: either form opens a slot made with the other.
 *
 * Adding or changing a key rewraps the master key; data is never rewritten.
 * A key change is "add the new slot, persist, remove the old slot, persist"
 * (keyslot_change), so a crash at any point leaves a durable set that the old
 * or the new key opens.
 *
 * Slot bytes come from disk and are hostile: keyslot_decode checks every
 * field (and bounds the KDF cost a slot may demand) before anything uses it. */
#ifndef BERTH_STORE_KEYSLOT_H
#define BERTH_STORE_KEYSLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/crypt.h"

#define KEYSLOT_MAX 8
#define KEYSLOT_SIZE 128
#define KEYSLOTS_SIZE (KEYSLOT_MAX * KEYSLOT_SIZE)
#define KEYSLOT_SALT_LEN 16
#define KEYSLOT_PASS_MIN 8
#define KEYSLOT_PASS_MAX 512

enum keyformat { KEYFORMAT_RAW = 1, KEYFORMAT_HEX = 2, KEYFORMAT_PASSPHRASE = 3 };
enum keyslot_kdf { KDF_NONE = 0, KDF_ARGON2ID = 1, KDF_PBKDF2_SHA256 = 2 };

/* Defaults and the bounds a slot (ours or hostile) may use. */
#define KDF_ARGON2_T_DEFAULT 3
#define KDF_ARGON2_M_DEFAULT (64u * 1024) /* KiB: 64 MiB */
#define KDF_ARGON2_P_DEFAULT 1
#define KDF_ARGON2_T_MAX 16
#define KDF_ARGON2_M_MIN 64u               /* KiB; tests use small costs */
#define KDF_ARGON2_M_MAX (1024u * 1024)    /* KiB: 1 GiB */
#define KDF_ARGON2_P_MAX 16
#define KDF_PBKDF2_ITER_DEFAULT 600000u
#define KDF_PBKDF2_ITER_MIN 350000u
#define KDF_PBKDF2_ITER_MAX 20000000u

struct kdf_params {
    uint8_t kdf;          /* enum keyslot_kdf */
    uint32_t t_cost;      /* argon2 passes, or PBKDF2 iterations */
    uint32_t m_cost_kib;  /* argon2 memory in KiB; 0 for PBKDF2 */
    uint32_t parallelism; /* argon2 lanes; 0 for PBKDF2 */
};

/* One decoded slot.  `used` false = empty (all-zero on disk). */
struct keyslot {
    bool used;
    uint8_t id;        /* its index, 0 .. KEYSLOT_MAX-1 */
    uint8_t keyformat; /* enum keyformat of the key that opens it */
    struct kdf_params kdf;
    uint64_t created; /* seconds since the epoch, informational */
    uint8_t salt[KEYSLOT_SALT_LEN];
    uint8_t iv[CRYPT_IV_LEN];
    uint8_t wrapped[CRYPT_KEY_LEN];
    uint8_t mac[CRYPT_MAC_LEN];
};

struct keyslots {
    struct keyslot slot[KEYSLOT_MAX];
};

/* ---- user keys ---- */

/* User key material in secure memory: 32 key bytes for raw/hex, the
 * passphrase bytes otherwise. */
struct user_key;

/* Parse key material as typed or read: raw = exactly 32 bytes; hex = 64 hex
 * digits, surrounding whitespace ignored; passphrase = 8..512 bytes taken as
 * is.  The caller wipes `buf`.  -EINVAL with a message saying expected vs got. */
int user_key_parse(enum keyformat fmt, const void *buf, size_t len, struct user_key **out,
                   struct berr *err);
/* Read key material from a keylocation "file:///abs/path".  A passphrase file
 * loses one trailing newline.  Errors name the file: -ENOENT, -EACCES ...,
 * -EINVAL for a bad location or a wrong length ("expected 32 bytes, got 31"). */
int user_key_load(enum keyformat fmt, const char *location, struct user_key **out,
                  struct berr *err);
void user_key_free(struct user_key *uk);
enum keyformat user_key_format(const struct user_key *uk);

/* ---- slot encoding ---- */

/* Empty slots encode as zeros.  keyslot_decode: 0 or -EILSEQ. */
void keyslot_encode(const struct keyslot *s, uint8_t out[KEYSLOT_SIZE]);
int keyslot_decode(const uint8_t in[KEYSLOT_SIZE], struct keyslot *s);
/* The whole set, slot i at i * KEYSLOT_SIZE.  decode: `len` must be
 * KEYSLOTS_SIZE and slot i must carry id i; 0 or -EILSEQ. */
void keyslots_encode(const struct keyslots *set, uint8_t out[KEYSLOTS_SIZE]);
int keyslots_decode(const uint8_t *in, size_t len, struct keyslots *set);
int keyslots_count(const struct keyslots *set);

/* ---- operations ---- */

/* Default KDF for a format: none for raw/hex, Argon2id t=3 m=64MiB p=1 for
 * passphrases. */
struct kdf_params keyslot_default_kdf(enum keyformat fmt);

/* A new volume key: generate a master key and wrap it under `uk` into slot 0
 * of the empty `set`.  *master is the caller's (crypt_key_free).  -EEXIST if
 * the set already has slots. */
int keyslot_create(struct keyslots *set, const struct user_key *uk, const struct kdf_params *kdf,
                   struct crypt_key **master, struct berr *err);

/* Wrap the unlocked `master` under `uk` into slot `want` (or the first free
 * one when want < 0).  `kdf` NULL means the default; it must fit the key's
 * format and the bounds above.  Returns the slot id, or -ENOSPC (all slots
 * used), -EEXIST (slot taken), -EINVAL (bad params), -ENOMEM, -ENOKEY. */
int keyslot_add(struct keyslots *set, const struct crypt_key *master, const struct user_key *uk,
                const struct kdf_params *kdf, int want, struct berr *err);

/* Empty slot `id` (its bytes become zeros).  Refuses to remove the last used
 * slot (-EBUSY: the volume would be unrecoverable); -ENOENT if empty. */
int keyslot_remove(struct keyslots *set, int id, struct berr *err);

/* Try `uk` on every used slot of its format; on success *out is the master
 * key (caller frees) and the return value is the slot id that matched.
 * -EACCES "wrong key or passphrase" when none opens, -ENOENT with no slots. */
int keyslot_unlock(const struct keyslots *set, const struct user_key *uk, struct crypt_key **out,
                   struct berr *err);

/* Make the set durable (write it to the pool); 0 or -errno. */
typedef int keyslot_persist_fn(const struct keyslots *set, void *opaque);

/* Replace slot `old_id` by a slot for `newkey`: add, persist, remove,
 * persist.  If the first persist fails the add is undone; if the second
 * fails the old slot is put back (both keys work).  Returns the new slot id. */
int keyslot_change(struct keyslots *set, const struct crypt_key *master, int old_id,
                   const struct user_key *newkey, const struct kdf_params *kdf,
                   keyslot_persist_fn *persist, void *opaque, struct berr *err);

#endif
