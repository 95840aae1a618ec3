/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AES-256-GCM block encryption, HKDF key derivation, metadata HMAC and
 * secure key memory (see crypt.h for the key hierarchy).
 *
 * Invariants:
 *  - Every secret byte we own is in crypt_secure_alloc() memory or on the
 *    stack for the length of one call, and is cleansed before it goes away.
 *  - A block IV is never reused under one block key: IVs are 96 random bits
 *    from getrandom; the per-thread IV buffer is wiped on fork (and dropped on
 *    a fork generation change where MADV_WIPEONFORK is missing), and a salt is
 *    rotated after CRYPT_SALT_MAX_USES blocks.
 *  - crypt_decrypt_block leaves either authenticated plaintext or zeros.
 *  - A struct crypt_key that is all zeros (wiped by fork) is refused (-ENOKEY)
 *    rather than used as an all-zero key.
 *
 * Concurrency: the per-key derived-key cache and salt state are guarded by
 * the key's mutex.  Each thread caches one EVP context per direction together
 * with the (key uid, salt) whose block key it holds, so repeated blocks under
 * one salt only set a new IV.  Key uids come from a process-wide counter and
 * are never reused, so a freed key can never be mistaken for a new one.
 *
 * Two GCM engines, same bytes: gcm_vaes.c (AVX-512 VAES + VPCLMULQDQ, about
 * 2.5x OpenSSL 3.0 here) when gcm_vaes_supported() and BERTH_GCM is not
 * "openssl", else OpenSSL's EVP.  The thread's expanded VAES keys (round keys
 * and hash-key powers: key material) live in crypt_secure_alloc() memory and
 * are cleansed exactly when the EVP contexts would be. */
#include "store/crypt.h"

#include "berth/store.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "common/le.h"
#include "store/gcm_vaes.h"

#define KEY_MAGIC 0x59454b4854524542ull /* "BERTHKEY" */
#define SEC_HDR 64                      /* keeps the payload cache-line aligned */
#define AAD_VERSION 1
#define AAD_VERSION_PORTABLE 2
#define MAX_AAD (1u << 20)

static const char INFO_BLOCK[] = "berth block key v1";
static const char INFO_META[] = "berth metadata hmac v1";
static const char INFO_CHECK[] = "berth key check v1";

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_rc;
static EVP_CIPHER *g_gcm;
static EVP_KDF *g_hkdf;
static EVP_MAC *g_hmac;
static pthread_key_t g_tls_key;
static atomic_uint_fast64_t g_next_uid = 1;
static atomic_uint g_fork_gen;
static atomic_uint g_key_epoch; /* bumped by crypt_key_free */
static atomic_bool g_mlock_failed;
static bool g_vaes_ok;          /* CPU/OS run gcm_vaes.c and BERTH_GCM allows it */
static atomic_bool g_vaes_off;  /* crypt_test_gcm_openssl */

static void on_fork_child(void)
{
    atomic_fetch_add(&g_fork_gen, 1);
}

static void tls_destroy(void *p);

static void global_init(void)
{
    g_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    g_hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    g_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!g_gcm || !g_hkdf || !g_hmac) {
        g_init_rc = -EIO;
        return;
    }
    const char *force = getenv("BERTH_GCM");
    if (force && *force && strcmp(force, "openssl") != 0)
        blog_warn("crypt: BERTH_GCM=%s ignored (the only value is \"openssl\")", force);
    g_vaes_ok = gcm_vaes_supported() && !(force && strcmp(force, "openssl") == 0);
    if (pthread_key_create(&g_tls_key, tls_destroy) != 0 ||
        pthread_atfork(NULL, NULL, on_fork_child) != 0)
        g_init_rc = -ENOMEM;
}

static int init(void)
{
    pthread_once(&g_once, global_init);
    return g_init_rc;
}

/* Key memory: its own mapping, kept out of core dumps and wiped in a
 * forked child; locked in RAM when `lock` (master keys, KEKs).  The
 * per-thread expanded block keys are not locked: one page per thread would
 * use up RLIMIT_MEMLOCK (64 KiB by default) and leave later master keys
 * swappable, while OpenSSL's own schedules they replace were never locked. */
static void *secure_map(size_t len, bool lock)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0)
        pg = 4096;
    if (len > SIZE_MAX / 2) {
        errno = ENOMEM;
        return NULL;
    }
    size_t maplen = (len + SEC_HDR + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
    uint8_t *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (lock && mlock(m, maplen) != 0 && !atomic_exchange(&g_mlock_failed, true))
        blog_warn("crypt: cannot lock key memory in RAM (%s): keys may be swapped out; raise "
                  "RLIMIT_MEMLOCK or run berthd with CAP_IPC_LOCK", strerror(errno));
    (void)madvise(m, maplen, MADV_DONTDUMP);
    (void)madvise(m, maplen, MADV_WIPEONFORK); /* EINVAL before Linux 4.14: fine */
    memcpy(m, &maplen, sizeof maplen);
    return m + SEC_HDR;
}

void *crypt_secure_alloc(size_t len)
{
    return secure_map(len, true);
}

void crypt_secure_free(void *p)
{
    if (!p)
        return;
    uint8_t *base = (uint8_t *)p - SEC_HDR;
    size_t maplen;
    memcpy(&maplen, base, sizeof maplen);
    if (maplen == 0)
        return; /* wiped by fork: nothing secret left, size unknown */
    OPENSSL_cleanse(base, maplen);
    munlock(base, maplen);
    munmap(base, maplen);
}

bool crypt_secure_mlock_failed(void)
{
    return atomic_load(&g_mlock_failed);
}

int crypt_random(void *buf, size_t len)
{
    for (uint8_t *b = buf; len > 0;) {
        ssize_t n = getrandom(b, len, 0);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0) {
            b += n;
            len -= (size_t)n;
        }
    }
    return 0;
}

#define IVP_PAGE 4096
#define IVP_N 336 /* IVs per refill: 4032 bytes */

struct iv_pool {
    uint32_t avail;    /* 0 after a fork wipe: forces a refill */
    uint32_t fork_gen; /* backup for kernels without MADV_WIPEONFORK */
    uint8_t bytes[IVP_N * CRYPT_IV_LEN];
};
_Static_assert(sizeof(struct iv_pool) <= IVP_PAGE, "iv pool fits a page");

struct crypt_tls {
    EVP_CIPHER_CTX *ctx[2]; /* [0] encrypt, [1] decrypt */
    struct gcm_vaes_key *vk; /* [2] likewise, secure_map (unlocked), NULL until used */
    bool vk_failed;         /* no mapping for vk: this thread stays on OpenSSL */
    uint64_t uid[2];        /* key uid whose block key ctx[i] or vk[i] holds, 0 = none */
    bool vaes[2];           /* which of the two holds it */
    unsigned epoch;         /* g_key_epoch when the contexts were last checked */
    uint8_t salt[2][CRYPT_SALT_LEN];
    struct iv_pool *ivp;
};

static __thread struct crypt_tls *tls_cur;

static void tls_destroy(void *p)
{
    struct crypt_tls *t = p; /* never NULL: pthread skips NULL values */
    EVP_CIPHER_CTX_free(t->ctx[0]); /* cleanses the cached block keys */
    EVP_CIPHER_CTX_free(t->ctx[1]);
    crypt_secure_free(t->vk); /* cleanses the expanded keys */
    if (t->ivp)
        munmap(t->ivp, IVP_PAGE);
    free(t);
    tls_cur = NULL;
}

static struct crypt_tls *tls_get(void)
{
    if (tls_cur)
        return tls_cur;
    if (init() < 0)
        return NULL;
    struct crypt_tls *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ctx[0] = EVP_CIPHER_CTX_new();
    t->ctx[1] = EVP_CIPHER_CTX_new();
    void *m = mmap(NULL, IVP_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    t->ivp = m == MAP_FAILED ? NULL : m;
    if (!t->ctx[0] || !t->ctx[1] || !t->ivp || pthread_setspecific(g_tls_key, t) != 0) {
        tls_destroy(t);
        return NULL;
    }
    (void)madvise(t->ivp, IVP_PAGE, MADV_WIPEONFORK);
    tls_cur = t;
    return t;
}

int crypt_random_iv(uint8_t iv[CRYPT_IV_LEN])
{
    struct crypt_tls *t = tls_get();
    if (!t)
        return -ENOMEM;
    struct iv_pool *p = t->ivp;
    unsigned gen = atomic_load(&g_fork_gen);
    if (p->avail == 0 || p->avail > IVP_N || p->fork_gen != gen) {
        int rc = crypt_random(p->bytes, sizeof p->bytes);
        if (rc < 0)
            return rc;
        p->avail = IVP_N;
        p->fork_gen = gen;
    }
    uint8_t *src = p->bytes + (size_t)(IVP_N - p->avail) * CRYPT_IV_LEN;
    memcpy(iv, src, CRYPT_IV_LEN);
    memset(src, 0, CRYPT_IV_LEN); /* a handed-out IV never stays around to be handed out again */
    p->avail--;
    return 0;
}

int crypt_hkdf(const void *ikm, size_t ikmlen, const void *salt, size_t saltlen, const char *info,
               void *out, size_t outlen)
{
    int rc = init();
    if (rc == 0 && (!ikm || ikmlen == 0 || !out || outlen == 0 || (saltlen && !salt)))
        rc = -EINVAL;
    if (rc < 0)
        return rc;
    EVP_KDF_CTX *kc = EVP_KDF_CTX_new(g_hkdf);
    if (!kc)
        return -ENOMEM;
    OSSL_PARAM params[5], *q = params;
    *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen);
    if (saltlen)
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
    if (info)
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    *q = OSSL_PARAM_construct_end();
    rc = EVP_KDF_derive(kc, out, outlen, params) > 0 ? 0 : -EIO;
    EVP_KDF_CTX_free(kc);
    return rc;
}

struct dk_entry {
    uint64_t lru; /* 0 = empty */
    uint8_t salt[CRYPT_SALT_LEN];
    uint8_t key[CRYPT_KEY_LEN];
};

struct crypt_key {
    uint64_t magic; /* KEY_MAGIC while usable; 0 once wiped */
    uint64_t uid;
    pthread_mutex_t lock; /* guards everything below master/meta */
    uint8_t master[CRYPT_KEY_LEN];
    uint8_t meta[CRYPT_KEY_LEN]; /* metadata HMAC key */
    uint8_t salt[CRYPT_SALT_LEN];
    bool have_salt;
    uint64_t salt_uses, salt_limit;
    uint64_t tick;
    struct dk_entry dk[CRYPT_DK_CACHE];
};

static bool key_ok(const struct crypt_key *k)
{
    return k && k->magic == KEY_MAGIC;
}

/* A key with its master bytes still to be filled in. */
static int key_alloc(struct crypt_key **out)
{
    int rc = init();
    struct crypt_key *k = rc < 0 ? NULL : crypt_secure_alloc(sizeof *k);
    if (!k || pthread_mutex_init(&k->lock, NULL) != 0) {
        crypt_secure_free(k);
        return rc < 0 ? rc : -ENOMEM;
    }
    k->uid = atomic_fetch_add(&g_next_uid, 1);
    k->salt_limit = CRYPT_SALT_MAX_USES;
    *out = k;
    return 0;
}

/* Finish a key whose master bytes are in place (frees it on failure). */
static int key_finish(struct crypt_key *k, struct crypt_key **out)
{
    int rc = crypt_hkdf(k->master, CRYPT_KEY_LEN, NULL, 0, INFO_META, k->meta, CRYPT_KEY_LEN);
    if (rc < 0) {
        crypt_key_free(k);
        return rc;
    }
    k->magic = KEY_MAGIC;
    *out = k;
    return 0;
}

/* From `raw`, or random bytes when raw is NULL. */
static int key_new(const uint8_t *raw, struct crypt_key **out)
{
    struct crypt_key *k;
    int rc = key_alloc(&k);
    if (rc < 0)
        return rc;
    if (raw)
        memcpy(k->master, raw, CRYPT_KEY_LEN);
    else if ((rc = crypt_random(k->master, CRYPT_KEY_LEN)) < 0) {
        crypt_key_free(k);
        return rc;
    }
    return key_finish(k, out);
}

int crypt_key_generate(struct crypt_key **out)
{
    return key_new(NULL, out);
}

int crypt_key_from_bytes(const uint8_t raw[CRYPT_KEY_LEN], struct crypt_key **out)
{
    return key_new(raw, out);
}

void crypt_key_free(struct crypt_key *k)
{
    if (!k)
        return;
    if (k->uid != 0) /* else wiped by fork: the mutex was never ours */
        pthread_mutex_destroy(&k->lock);
    crypt_secure_free(k);
    atomic_fetch_add(&g_key_epoch, 1);
}

int crypt_key_fingerprint(const struct crypt_key *k, uint8_t out[CRYPT_FINGERPRINT_LEN])
{
    return key_ok(k) ? crypt_hkdf(k->master, CRYPT_KEY_LEN, NULL, 0, INFO_CHECK, out,
                                  CRYPT_FINGERPRINT_LEN)
                     : -ENOKEY;
}

int crypt_key_next_salt(struct crypt_key *k, uint8_t salt[CRYPT_SALT_LEN])
{
    if (!key_ok(k))
        return -ENOKEY;
    int rc = 0;
    pthread_mutex_lock(&k->lock);
    if (!k->have_salt || k->salt_uses >= k->salt_limit) {
        rc = crypt_random(k->salt, CRYPT_SALT_LEN);
        k->have_salt = rc == 0;
        k->salt_uses = 0;
    }
    if (rc == 0) {
        k->salt_uses++;
        memcpy(salt, k->salt, CRYPT_SALT_LEN);
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

int crypt_key_rotate_salt(struct crypt_key *k, uint64_t limit)
{
    if (!key_ok(k))
        return -ENOKEY;
    pthread_mutex_lock(&k->lock);
    k->have_salt = false;
    k->salt_limit = limit ? limit : k->salt_limit;
    pthread_mutex_unlock(&k->lock);
    return 0;
}

/* The block key of (k, salt) into `out`, from the cache or freshly derived.
 * The cache is logically const: it never changes what a key computes. */
static int block_key(const struct crypt_key *ck, const uint8_t salt[CRYPT_SALT_LEN],
                     uint8_t out[CRYPT_KEY_LEN])
{
    struct crypt_key *k = (struct crypt_key *)ck;
    int rc = 0;
    pthread_mutex_lock(&k->lock);
    struct dk_entry *hit = NULL, *victim = &k->dk[0];
    for (int i = 0; i < CRYPT_DK_CACHE; i++) {
        struct dk_entry *e = &k->dk[i];
        if (e->lru && memcmp(e->salt, salt, CRYPT_SALT_LEN) == 0) {
            hit = e;
            break;
        }
        victim = e->lru < victim->lru ? e : victim;
    }
    if (!hit) {
        hit = victim;
        hit->lru = 0; /* stays empty if derivation fails */
        memcpy(hit->salt, salt, CRYPT_SALT_LEN);
        rc = crypt_hkdf(k->master, CRYPT_KEY_LEN, salt, CRYPT_SALT_LEN, INFO_BLOCK, hit->key,
                        CRYPT_KEY_LEN);
    }
    if (rc == 0) {
        hit->lru = ++k->tick;
        memcpy(out, hit->key, CRYPT_KEY_LEN);
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

bool crypt_gcm_accelerated(void)
{
    return init() == 0 && g_vaes_ok && !atomic_load(&g_vaes_off);
}

const char *bs_crypt_engine(void)
{
    return crypt_gcm_accelerated() ? "VAES AVX-512" : "OpenSSL";
}

void crypt_test_gcm_openssl(bool on)
{
    atomic_store(&g_vaes_off, on);
}

/* What one block operation runs on: an EVP context with key and IV set, or
 * an expanded VAES key (the IV goes with the call). */
struct gcm_engine {
    EVP_CIPHER_CTX *evp;
    const struct gcm_vaes_key *vk;
};

/* Load a freshly derived block key into this thread's engine for `dir`. */
static int engine_load(struct crypt_tls *t, int dir, bool vaes, const uint8_t key[CRYPT_KEY_LEN],
                       const uint8_t iv[CRYPT_IV_LEN])
{
    if (vaes) {
#ifdef BERTH_HAVE_GCM_VAES
        gcm_vaes_setkey(&t->vk[dir], key);
        return 0;
#else
        return -EIO; /* not reached: without gcm_vaes.c, gcm_vaes_supported() is false */
#endif
    }
    return EVP_CipherInit_ex2(t->ctx[dir], g_gcm, key, iv, dir == 0, NULL) > 0 ? 0 : -EIO;
}

/* This thread's engine for `dir` (0 enc, 1 dec), keyed for (k, salt) with `iv` set. */
static int block_ctx(int dir, const struct crypt_key *k, const uint8_t salt[CRYPT_SALT_LEN],
                     const uint8_t iv[CRYPT_IV_LEN], struct gcm_engine *out)
{
    struct crypt_tls *t = tls_get();
    if (!t)
        return -ENOMEM;
    unsigned epoch = atomic_load(&g_key_epoch);
    if (t->epoch != epoch) { /* a key was freed: cleanse the cached schedules */
        EVP_CIPHER_CTX_reset(t->ctx[0]);
        EVP_CIPHER_CTX_reset(t->ctx[1]);
        if (t->vk)
            OPENSSL_cleanse(t->vk, 2 * sizeof *t->vk);
        t->uid[0] = t->uid[1] = 0;
        t->epoch = epoch;
    }
    bool vaes = crypt_gcm_accelerated();
    if (vaes && !t->vk && (t->vk_failed || !(t->vk = secure_map(2 * sizeof *t->vk, false)))) {
        t->vk_failed = true; /* no page for the keys: OpenSSL still works */
        vaes = false;
    }
    EVP_CIPHER_CTX *c = t->ctx[dir];
    *out = (struct gcm_engine){vaes ? NULL : c, vaes ? &t->vk[dir] : NULL};
    /* a VAES key wiped by fork (MADV_WIPEONFORK) reads as not loaded */
    if (t->uid[dir] == k->uid && t->vaes[dir] == vaes &&
        memcmp(t->salt[dir], salt, CRYPT_SALT_LEN) == 0 && (!vaes || t->vk[dir].loaded)) {
        if (!vaes && EVP_CipherInit_ex2(c, NULL, NULL, iv, dir == 0, NULL) <= 0) {
            t->uid[dir] = 0;
            return -EIO;
        }
        return 0;
    }
    uint8_t key[CRYPT_KEY_LEN];
    t->uid[dir] = 0;
    int rc = block_key(k, salt, key);
    if (rc == 0)
        rc = engine_load(t, dir, vaes, key, iv);
    OPENSSL_cleanse(key, sizeof key);
    if (rc < 0)
        return rc;
    t->uid[dir] = k->uid;
    t->vaes[dir] = vaes;
    memcpy(t->salt[dir], salt, CRYPT_SALT_LEN);
    return 0;
}

/* ---- block encryption ---- */

void crypt_block_aad(const struct crypt_block_id *id, uint8_t aad[CRYPT_AAD_LEN])
{
    memset(aad, 0, CRYPT_AAD_LEN);
    aad[0] = AAD_VERSION;
    aad[1] = id->type;
    aad[2] = id->level;
    aad[3] = id->comp;
    /* 4..7 reserved, zero */
    put_le64(aad + 8, id->key_guid);
    put_le64(aad + 16, id->object);
    put_le64(aad + 24, id->blkid);
    put_le64(aad + 32, id->birth);
    put_le32(aad + 40, id->lsize);
    put_le32(aad + 44, id->psize);
}

void crypt_block_aad2(const struct crypt_block_id *id, uint8_t aad[CRYPT_AAD2_LEN])
{
    memset(aad, 0, CRYPT_AAD2_LEN);
    aad[0] = AAD_VERSION_PORTABLE;
    aad[1] = id->type;
    aad[2] = id->level;
    aad[3] = id->comp;
    /* 4..7 reserved, zero */
    put_le64(aad + 8, id->key_guid);
    put_le64(aad + 16, id->blkid);
    put_le32(aad + 24, id->lsize);
    put_le32(aad + 28, id->psize);
}

/* One GCM operation on a context that already has key and IV.  A failed
 * decrypt leaves zeros in `out`; one whose tag does not verify is -EACCES. */
static int gcm_run(EVP_CIPHER_CTX *c, int enc, const void *aad, size_t aadlen, const void *in,
                   void *out, size_t len, uint8_t mac[CRYPT_MAC_LEN])
{
    int n;
    int good = (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, CRYPT_MAC_LEN, mac) > 0) &&
               (!aadlen || EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen) > 0) &&
               (!len || EVP_CipherUpdate(c, out, &n, in, (int)len) > 0);
    int rc = good ? 0 : -EIO;
    if (rc == 0 && EVP_CipherFinal_ex(c, (uint8_t *)out + len, &n) <= 0)
        rc = enc ? -EIO : -EACCES;
    if (rc == 0 && enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, CRYPT_MAC_LEN, mac) <= 0)
        rc = -EIO;
    if (rc < 0 && len && !enc)
        OPENSSL_cleanse(out, len);
    return rc;
}

/* gcm_run on the VAES engine. */
static int vaes_run(const struct gcm_vaes_key *vk, int enc, const uint8_t iv[CRYPT_IV_LEN],
                    const void *aad, size_t aadlen, const void *in, void *out, size_t len,
                    uint8_t mac[CRYPT_MAC_LEN])
{
#ifdef BERTH_HAVE_GCM_VAES
    if (enc) {
        gcm_vaes_seal(vk, iv, aad, aadlen, in, out, len, mac);
        return 0;
    }
    if (gcm_vaes_open(vk, iv, aad, aadlen, in, out, len, mac))
        return 0;
#endif
    if (len && !enc)
        OPENSSL_cleanse(out, len); /* never leave unauthenticated plaintext */
    return enc ? -EIO : -EACCES;
}

static int check_args(const void *aad, size_t aadlen, const void *in, const void *out, size_t len)
{
    if (len > CRYPT_MAX_BLOCK || aadlen > MAX_AAD || (aadlen && !aad) || (len && (!in || !out)))
        return -EINVAL;
    return init();
}

static int block_op(int enc, const struct crypt_key *k, const uint8_t salt[CRYPT_SALT_LEN],
                    const uint8_t iv[CRYPT_IV_LEN], const void *aad, size_t aadlen,
                    const void *in, void *out, size_t len, uint8_t mac[CRYPT_MAC_LEN])
{
    int rc = key_ok(k) ? check_args(aad, aadlen, in, out, len) : -ENOKEY;
    struct gcm_engine e = {0};
    if (rc == 0)
        rc = block_ctx(enc ? 0 : 1, k, salt, iv, &e);
    if (rc < 0) {
        if (!enc && len && out)
            OPENSSL_cleanse(out, len);
        return rc;
    }
    rc = e.vk ? vaes_run(e.vk, enc, iv, aad, aadlen, in, out, len, mac)
              : gcm_run(e.evp, enc, aad, aadlen, in, out, len, mac);
    return rc == -EACCES ? -EIO : rc;
}

int crypt_encrypt_block(const struct crypt_key *k, const uint8_t salt[CRYPT_SALT_LEN],
                        const uint8_t iv[CRYPT_IV_LEN], const void *aad, size_t aadlen,
                        const void *in, void *out, size_t len, uint8_t mac[CRYPT_MAC_LEN])
{
    return block_op(1, k, salt, iv, aad, aadlen, in, out, len, mac);
}

int crypt_decrypt_block(const struct crypt_key *k, const uint8_t salt[CRYPT_SALT_LEN],
                        const uint8_t iv[CRYPT_IV_LEN], const void *aad, size_t aadlen,
                        const void *in, void *out, size_t len, const uint8_t mac[CRYPT_MAC_LEN])
{
    return block_op(0, k, salt, iv, aad, aadlen, in, out, len, (uint8_t *)mac);
}

/* ---- metadata authentication ---- */

int crypt_meta_mac(const struct crypt_key *k, const void *aad, size_t aadlen, const void *data,
                   size_t len, uint8_t mac[CRYPT_MAC_LEN])
{
    if (!key_ok(k) || (aadlen && !aad) || (len && !data))
        return key_ok(k) ? -EINVAL : -ENOKEY;
    EVP_MAC_CTX *mc = EVP_MAC_CTX_new(g_hmac);
    if (!mc)
        return -ENOMEM;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    uint8_t prefix[8], full[32];
    size_t outl = 0;
    put_le64(prefix, aadlen); /* frames aad || data unambiguously */
    int good = EVP_MAC_init(mc, k->meta, CRYPT_KEY_LEN, params) > 0 &&
               EVP_MAC_update(mc, prefix, sizeof prefix) > 0 &&
               (!aadlen || EVP_MAC_update(mc, aad, aadlen) > 0) &&
               (!len || EVP_MAC_update(mc, data, len) > 0) &&
               EVP_MAC_final(mc, full, &outl, sizeof full) > 0 && outl == sizeof full;
    EVP_MAC_CTX_free(mc);
    if (good)
        memcpy(mac, full, CRYPT_MAC_LEN);
    OPENSSL_cleanse(full, sizeof full);
    return good ? 0 : -EIO;
}

int crypt_meta_verify(const struct crypt_key *k, const void *aad, size_t aadlen, const void *data,
                      size_t len, const uint8_t mac[CRYPT_MAC_LEN])
{
    uint8_t want[CRYPT_MAC_LEN];
    int rc = crypt_meta_mac(k, aad, aadlen, data, len, want);
    return rc < 0 ? rc : CRYPTO_memcmp(want, mac, CRYPT_MAC_LEN) == 0 ? 0 : -EIO;
}

static int gcm_oneshot(int enc, const uint8_t key[CRYPT_KEY_LEN], const uint8_t iv[CRYPT_IV_LEN],
                       const void *aad, size_t aadlen, const void *in, void *out, size_t len,
                       uint8_t mac[CRYPT_MAC_LEN])
{
    int rc = check_args(aad, aadlen, in, out, len);
    if (rc < 0)
        return rc;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        return -ENOMEM;
    rc = EVP_CipherInit_ex2(c, g_gcm, key, iv, enc, NULL) > 0
             ? gcm_run(c, enc, aad, aadlen, in, out, len, mac)
             : -EIO;
    EVP_CIPHER_CTX_free(c); /* cleanses the key schedule */
    return rc;
}

int crypt_gcm_seal(const uint8_t key[CRYPT_KEY_LEN], const uint8_t iv[CRYPT_IV_LEN],
                   const void *aad, size_t aadlen, const void *in, void *out, size_t len,
                   uint8_t mac[CRYPT_MAC_LEN])
{
    return gcm_oneshot(1, key, iv, aad, aadlen, in, out, len, mac);
}

int crypt_gcm_open(const uint8_t key[CRYPT_KEY_LEN], const uint8_t iv[CRYPT_IV_LEN],
                   const void *aad, size_t aadlen, const void *in, void *out, size_t len,
                   const uint8_t mac[CRYPT_MAC_LEN])
{
    return gcm_oneshot(0, key, iv, aad, aadlen, in, out, len, (uint8_t *)mac);
}

int crypt_key_wrap(const struct crypt_key *k, const uint8_t kek[CRYPT_KEY_LEN],
                   const uint8_t iv[CRYPT_IV_LEN], const void *aad, size_t aadlen,
                   uint8_t wrapped[CRYPT_KEY_LEN], uint8_t mac[CRYPT_MAC_LEN])
{
    return !key_ok(k) ? -ENOKEY : crypt_gcm_seal(kek, iv, aad, aadlen, k->master, wrapped, CRYPT_KEY_LEN, mac);
}

int crypt_key_unwrap(const uint8_t kek[CRYPT_KEY_LEN], const uint8_t iv[CRYPT_IV_LEN],
                     const void *aad, size_t aadlen, const uint8_t wrapped[CRYPT_KEY_LEN],
                     const uint8_t mac[CRYPT_MAC_LEN], struct crypt_key **out)
{
    struct crypt_key *k;
    int rc = key_alloc(&k);
    if (rc < 0)
        return rc;
    rc = crypt_gcm_open(kek, iv, aad, aadlen, wrapped, k->master, CRYPT_KEY_LEN, mac);
    if (rc < 0) {
        crypt_key_free(k); /* cleanses whatever was decrypted */
        return rc;
    }
    return key_finish(k, out);
}
