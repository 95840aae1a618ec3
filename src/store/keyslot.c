/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key slots and user key material (see keyslot.h, docs/FORMAT.md section 10).
 *
 * Invariants:
 *  - User keys and KEKs live only in crypt_secure_alloc() memory and are
 *    wiped when freed; the master key never leaves struct crypt_key.
 *  - Every decoded slot satisfies slot_check(): known format, a KDF that fits
 *    the format, costs inside the KDF_* bounds, zero reserved bytes.  A slot
 *    that fails it is -EILSEQ and is never fed to a KDF.
 *  - A set never loses its last used slot through keyslot_remove, and
 *    keyslot_change keeps a slot for the old or the new key in every set it
 *    persists. */
#include "store/keyslot.h"

#include <argon2.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/le.h"

#define SLOT_MAGIC 0x4c534b42u /* "BKSL" */
#define SLOT_VERSION 1
#define SLOT_HDR 64 /* bytes 0..63: the GCM AAD */
#define ARGON2_WORK_MAX (4u * 1024 * 1024) /* t * m_cost_kib: 4 GiB-passes */
#define KEYFILE_MAX 4096

static const char INFO_KEK[] = "berth keyslot kek v1";

struct user_key {
    uint8_t format;
    size_t len;
    uint8_t bytes[KEYSLOT_PASS_MAX];
};

static bool is_binary(uint8_t fmt)
{
    return fmt == KEYFORMAT_RAW || fmt == KEYFORMAT_HEX;
}

static const char *fmt_name(uint8_t fmt)
{
    return fmt == KEYFORMAT_PASSPHRASE ? "passphrase" : fmt == KEYFORMAT_HEX ? "hex" : "raw";
}

/* ---- user keys ---- */

void user_key_free(struct user_key *uk)
{
    crypt_secure_free(uk);
}

enum keyformat user_key_format(const struct user_key *uk)
{
    return (enum keyformat)uk->format;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int user_key_parse(enum keyformat fmt, const void *buf, size_t len, struct user_key **out,
                   struct berr *err)
{
    const uint8_t *b = buf;
    if (fmt != KEYFORMAT_RAW && fmt != KEYFORMAT_HEX && fmt != KEYFORMAT_PASSPHRASE)
        return berr_set(err, EINVAL, "unknown keyformat %d", (int)fmt);
    if (len && !b)
        return berr_set(err, EINVAL, "no key material");
    if (fmt == KEYFORMAT_RAW && len != CRYPT_KEY_LEN)
        return berr_set(err, EINVAL, "raw key must be exactly %d bytes, got %zu", CRYPT_KEY_LEN,
                        len);
    if (fmt == KEYFORMAT_PASSPHRASE && (len < KEYSLOT_PASS_MIN || len > KEYSLOT_PASS_MAX))
        return berr_set(err, EINVAL, "passphrase must be %d to %d bytes, got %zu",
                        KEYSLOT_PASS_MIN, KEYSLOT_PASS_MAX, len);
    if (fmt == KEYFORMAT_HEX) {
        while (len && isspace(b[0]))
            b++, len--;
        while (len && isspace(b[len - 1]))
            len--;
        if (len != 2 * CRYPT_KEY_LEN)
            return berr_set(err, EINVAL, "hex key must be %d hex digits, got %zu characters",
                            2 * CRYPT_KEY_LEN, len);
        for (size_t i = 0; i < len; i++)
            if (hexval(b[i]) < 0)
                return berr_set(err, EINVAL, "hex key has a non-hex character at position %zu",
                                i + 1);
    }
    struct user_key *uk = crypt_secure_alloc(sizeof *uk);
    if (!uk)
        return berr_set(err, ENOMEM, "cannot allocate locked memory for a key");
    uk->format = (uint8_t)fmt;
    if (fmt == KEYFORMAT_HEX) {
        for (size_t i = 0; i < CRYPT_KEY_LEN; i++)
            uk->bytes[i] = (uint8_t)(hexval(b[2 * i]) << 4 | hexval(b[2 * i + 1]));
        uk->len = CRYPT_KEY_LEN;
    } else {
        memcpy(uk->bytes, b, len);
        uk->len = len;
    }
    *out = uk;
    return 0;
}

int user_key_load(enum keyformat fmt, const char *location, struct user_key **out,
                  struct berr *err)
{
    static const char scheme[] = "file://";
    if (!location)
        return berr_set(err, EINVAL, "no keylocation");
    if (strcmp(location, "prompt") == 0)
        return berr_set(err, EINVAL, "keylocation=prompt: the key has to be typed in");
    if (strncmp(location, scheme, strlen(scheme)) != 0 || location[strlen(scheme)] != '/')
        return berr_set(err, EINVAL,
                        "unsupported keylocation '%s' (expected file:///absolute/path or prompt)",
                        location);
    const char *path = location + strlen(scheme);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return berr_errno(err, errno, "key file %s", path);
    struct stat st;
    int e = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (e) {
        close(fd);
        return berr_errno(err, e, "key file %s", path);
    }
    uint8_t *buf = crypt_secure_alloc(KEYFILE_MAX + 1);
    if (!buf) {
        close(fd);
        return berr_set(err, ENOMEM, "cannot allocate locked memory for a key");
    }
    size_t len = 0;
    int rc = 0;
    while (len <= KEYFILE_MAX) {
        ssize_t n = read(fd, buf + len, KEYFILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = berr_errno(err, errno, "key file %s", path);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (rc == 0 && len > KEYFILE_MAX)
        rc = berr_set(err, EINVAL, "key file %s: expected a %s key, got more than %d bytes", path,
                      fmt_name((uint8_t)fmt), KEYFILE_MAX);
    if (rc == 0 && fmt == KEYFORMAT_PASSPHRASE && len && buf[len - 1] == '\n')
        len -= len > 1 && buf[len - 2] == '\r' ? 2 : 1;
    if (rc == 0 && (rc = user_key_parse(fmt, buf, len, out, err)) < 0)
        berr_wrap(err, "key file %s", path);
    crypt_secure_free(buf);
    return rc;
}

/* ---- encoding ---- */

static bool zero_bytes(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* The KDF fits the format and its costs are inside the bounds. */
static bool kdf_check(uint8_t fmt, const struct kdf_params *k)
{
    if (is_binary(fmt))
        return k->kdf == KDF_NONE && !k->t_cost && !k->m_cost_kib && !k->parallelism;
    if (fmt != KEYFORMAT_PASSPHRASE)
        return false;
    if (k->kdf == KDF_PBKDF2_SHA256)
        return k->t_cost >= KDF_PBKDF2_ITER_MIN && k->t_cost <= KDF_PBKDF2_ITER_MAX &&
               !k->m_cost_kib && !k->parallelism;
    return k->kdf == KDF_ARGON2ID && k->t_cost >= 1 && k->t_cost <= KDF_ARGON2_T_MAX &&
           k->parallelism >= 1 && k->parallelism <= KDF_ARGON2_P_MAX &&
           k->m_cost_kib >= KDF_ARGON2_M_MIN && k->m_cost_kib <= KDF_ARGON2_M_MAX &&
           k->m_cost_kib >= 8 * k->parallelism &&
           (uint64_t)k->t_cost * k->m_cost_kib <= ARGON2_WORK_MAX;
}

void keyslot_encode(const struct keyslot *s, uint8_t out[KEYSLOT_SIZE])
{
    memset(out, 0, KEYSLOT_SIZE);
    if (!s->used)
        return;
    put_le32(out, SLOT_MAGIC);
    put_le16(out + 4, SLOT_VERSION);
    out[6] = s->id;
    out[7] = s->keyformat;
    out[8] = s->kdf.kdf;
    put_le32(out + 12, s->kdf.t_cost);
    put_le32(out + 16, s->kdf.m_cost_kib);
    put_le32(out + 20, s->kdf.parallelism);
    put_le64(out + 24, s->created);
    memcpy(out + 32, s->salt, KEYSLOT_SALT_LEN);
    memcpy(out + 48, s->iv, CRYPT_IV_LEN);
    memcpy(out + 64, s->wrapped, CRYPT_KEY_LEN);
    memcpy(out + 96, s->mac, CRYPT_MAC_LEN);
}

int keyslot_decode(const uint8_t in[KEYSLOT_SIZE], struct keyslot *s)
{
    memset(s, 0, sizeof *s);
    if (zero_bytes(in, KEYSLOT_SIZE))
        return 0;
    if (get_le32(in) != SLOT_MAGIC || get_le16(in + 4) != SLOT_VERSION || in[6] >= KEYSLOT_MAX ||
        !zero_bytes(in + 9, 3) || !zero_bytes(in + 60, 4) || !zero_bytes(in + 112, 16))
        return -EILSEQ;
    s->id = in[6];
    s->keyformat = in[7];
    s->kdf.kdf = in[8];
    s->kdf.t_cost = get_le32(in + 12);
    s->kdf.m_cost_kib = get_le32(in + 16);
    s->kdf.parallelism = get_le32(in + 20);
    if (!kdf_check(s->keyformat, &s->kdf)) {
        memset(s, 0, sizeof *s);
        return -EILSEQ;
    }
    s->created = get_le64(in + 24);
    memcpy(s->salt, in + 32, KEYSLOT_SALT_LEN);
    memcpy(s->iv, in + 48, CRYPT_IV_LEN);
    memcpy(s->wrapped, in + 64, CRYPT_KEY_LEN);
    memcpy(s->mac, in + 96, CRYPT_MAC_LEN);
    s->used = true;
    return 0;
}

void keyslots_encode(const struct keyslots *set, uint8_t out[KEYSLOTS_SIZE])
{
    for (int i = 0; i < KEYSLOT_MAX; i++)
        keyslot_encode(&set->slot[i], out + i * KEYSLOT_SIZE);
}

int keyslots_decode(const uint8_t *in, size_t len, struct keyslots *set)
{
    memset(set, 0, sizeof *set);
    if (!in || len != KEYSLOTS_SIZE)
        return -EILSEQ;
    for (int i = 0; i < KEYSLOT_MAX; i++) {
        struct keyslot *s = &set->slot[i];
        if (keyslot_decode(in + i * KEYSLOT_SIZE, s) < 0 || (s->used && s->id != i)) {
            memset(set, 0, sizeof *set);
            return -EILSEQ;
        }
    }
    return 0;
}

int keyslots_count(const struct keyslots *set)
{
    int n = 0;
    for (int i = 0; i < KEYSLOT_MAX; i++)
        n += set->slot[i].used;
    return n;
}

/* ---- operations ---- */

struct kdf_params keyslot_default_kdf(enum keyformat fmt)
{
    if (fmt != KEYFORMAT_PASSPHRASE)
        return (struct kdf_params){.kdf = KDF_NONE};
    return (struct kdf_params){.kdf = KDF_ARGON2ID, .t_cost = KDF_ARGON2_T_DEFAULT,
                               .m_cost_kib = KDF_ARGON2_M_DEFAULT,
                               .parallelism = KDF_ARGON2_P_DEFAULT};
}

/* The KEK of slot `s` for user key `uk`, into secure `kek`. */
static int derive_kek(const struct user_key *uk, const struct keyslot *s,
                      uint8_t kek[CRYPT_KEY_LEN])
{
    switch (s->kdf.kdf) {
    case KDF_NONE:
        return crypt_hkdf(uk->bytes, uk->len, s->salt, KEYSLOT_SALT_LEN, INFO_KEK, kek,
                          CRYPT_KEY_LEN);
    case KDF_PBKDF2_SHA256:
        return PKCS5_PBKDF2_HMAC((const char *)uk->bytes, (int)uk->len, s->salt,
                                 KEYSLOT_SALT_LEN, (int)s->kdf.t_cost, EVP_sha256(),
                                 CRYPT_KEY_LEN, kek) == 1
                   ? 0
                   : -EIO;
    case KDF_ARGON2ID: {
        int rc = argon2id_hash_raw(s->kdf.t_cost, s->kdf.m_cost_kib, s->kdf.parallelism,
                                   uk->bytes, uk->len, s->salt, KEYSLOT_SALT_LEN, kek,
                                   CRYPT_KEY_LEN);
        return rc == ARGON2_OK ? 0 : rc == ARGON2_MEMORY_ALLOCATION_ERROR ? -ENOMEM : -EIO;
    }
    }
    return -EINVAL;
}

/* Derive the KEK for slot `s` and wrap (enc) or unwrap with it. */
static int slot_crypt(const struct user_key *uk, struct keyslot *s, const struct crypt_key *master,
                      struct crypt_key **out)
{
    uint8_t hdr[KEYSLOT_SIZE];
    keyslot_encode(s, hdr); /* bytes 0..63 are the AAD */
    uint8_t *kek = crypt_secure_alloc(CRYPT_KEY_LEN);
    if (!kek)
        return -ENOMEM;
    int rc = derive_kek(uk, s, kek);
    if (rc == 0 && master)
        rc = crypt_key_wrap(master, kek, s->iv, hdr, SLOT_HDR, s->wrapped, s->mac);
    else if (rc == 0)
        rc = crypt_key_unwrap(kek, s->iv, hdr, SLOT_HDR, s->wrapped, s->mac, out);
    crypt_secure_free(kek);
    return rc;
}

int keyslot_add(struct keyslots *set, const struct crypt_key *master, const struct user_key *uk,
                const struct kdf_params *kdf, int want, struct berr *err)
{
    if (!set || !master || !uk)
        return berr_set(err, EINVAL, "keyslot_add: missing argument");
    if (want >= KEYSLOT_MAX)
        return berr_set(err, EINVAL, "key slot %d does not exist (0..%d)", want, KEYSLOT_MAX - 1);
    int id = want;
    for (int i = 0; id < 0 && i < KEYSLOT_MAX; i++)
        if (!set->slot[i].used)
            id = i;
    if (id < 0)
        return berr_set(err, ENOSPC, "all %d key slots are in use; remove one first",
                        KEYSLOT_MAX);
    if (set->slot[id].used)
        return berr_set(err, EEXIST, "key slot %d is in use", id);
    struct keyslot s = {.used = true, .id = (uint8_t)id, .keyformat = uk->format};
    s.kdf = kdf ? *kdf : keyslot_default_kdf((enum keyformat)uk->format);
    if (!kdf_check(s.keyformat, &s.kdf))
        return berr_set(err, EINVAL,
                        "KDF parameters do not fit a %s key (raw/hex: none; passphrase: "
                        "argon2id t 1..%d, m %u..%u KiB, p 1..%d, or pbkdf2 %u..%u iterations)",
                        fmt_name(s.keyformat), KDF_ARGON2_T_MAX, KDF_ARGON2_M_MIN,
                        KDF_ARGON2_M_MAX, KDF_ARGON2_P_MAX, KDF_PBKDF2_ITER_MIN,
                        KDF_PBKDF2_ITER_MAX);
    s.created = (uint64_t)time(NULL);
    int rc = crypt_random(s.salt, sizeof s.salt);
    if (rc == 0)
        rc = crypt_random_iv(s.iv);
    if (rc == 0)
        rc = slot_crypt(uk, &s, master, NULL);
    if (rc < 0)
        return berr_errno(err, -rc, "cannot wrap the key into slot %d", id);
    set->slot[id] = s;
    return id;
}

int keyslot_create(struct keyslots *set, const struct user_key *uk, const struct kdf_params *kdf,
                   struct crypt_key **master, struct berr *err)
{
    if (!set || !uk || !master)
        return berr_set(err, EINVAL, "keyslot_create: missing argument");
    if (keyslots_count(set))
        return berr_set(err, EEXIST, "the volume already has a key");
    struct crypt_key *k;
    int rc = crypt_key_generate(&k);
    if (rc < 0)
        return berr_errno(err, -rc, "cannot create a volume key");
    rc = keyslot_add(set, k, uk, kdf, 0, err);
    if (rc < 0) {
        crypt_key_free(k);
        return rc;
    }
    *master = k;
    return 0;
}

int keyslot_remove(struct keyslots *set, int id, struct berr *err)
{
    if (!set || id < 0 || id >= KEYSLOT_MAX)
        return berr_set(err, EINVAL, "key slot %d does not exist (0..%d)", id, KEYSLOT_MAX - 1);
    if (!set->slot[id].used)
        return berr_set(err, ENOENT, "key slot %d is empty", id);
    if (keyslots_count(set) == 1)
        return berr_set(err, EBUSY,
                        "key slot %d is the last one: removing it would lock the data away "
                        "for good (add another key first)",
                        id);
    OPENSSL_cleanse(&set->slot[id], sizeof set->slot[id]);
    return 0;
}

int keyslot_unlock(const struct keyslots *set, const struct user_key *uk, struct crypt_key **out,
                   struct berr *err)
{
    if (!set || !uk || !out)
        return berr_set(err, EINVAL, "keyslot_unlock: missing argument");
    if (keyslots_count(set) == 0)
        return berr_set(err, ENOENT, "no key slots: the volume has no key");
    int tried = 0, other = 0, other_slot = -1;
    for (int i = 0; i < KEYSLOT_MAX; i++) {
        struct keyslot s = set->slot[i];
        if (!s.used || is_binary(s.keyformat) != is_binary(uk->format))
            continue;
        tried++;
        int rc = slot_crypt(uk, &s, NULL, out);
        if (rc == 0)
            return i;
        if (rc != -EACCES && !other) {
            other = -rc;
            other_slot = i;
        }
    }
    if (!tried)
        return berr_set(err, EACCES, "wrong key or passphrase: no key slot takes a %s",
                        is_binary(uk->format) ? "raw or hex key" : "passphrase");
    if (other)
        return berr_errno(err, other, "cannot derive the key of slot %d", other_slot);
    return berr_set(err, EACCES, "wrong key or passphrase");
}

int keyslot_change(struct keyslots *set, const struct crypt_key *master, int old_id,
                   const struct user_key *newkey, const struct kdf_params *kdf,
                   keyslot_persist_fn *persist, void *opaque, struct berr *err)
{
    if (!set || old_id < 0 || old_id >= KEYSLOT_MAX || !set->slot[old_id].used)
        return berr_set(err, ENOENT, "key slot %d is empty", old_id);
    int id = keyslot_add(set, master, newkey, kdf, -1, err);
    if (id < 0)
        return id;
    int rc = persist ? persist(set, opaque) : 0;
    if (rc < 0) {
        OPENSSL_cleanse(&set->slot[id], sizeof set->slot[id]);
        return berr_errno(err, -rc, "cannot save the new key slot (the old key still works)");
    }
    struct keyslot old = set->slot[old_id];
    OPENSSL_cleanse(&set->slot[old_id], sizeof set->slot[old_id]);
    rc = persist ? persist(set, opaque) : 0;
    if (rc < 0) {
        set->slot[old_id] = old;
        return berr_errno(err, -rc,
                          "added key slot %d but could not save the removal of slot %d "
                          "(both keys work)",
                          id, old_id);
    }
    return id;
}
