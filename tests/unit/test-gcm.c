/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for the AVX-512 AES-256-GCM engine (src/store/gcm_vaes.c) and
 * for crypt.c's choice between it and OpenSSL: published AES-256 vectors,
 * thousands of random (key, IV, AAD, length) cases compared byte for byte
 * with OpenSSL in both directions (in place and not; AAD up to 4 KiB),
 * buffers against inaccessible pages (masked loads and stores stay inside),
 * every single-bit flip of ciphertext, AAD and tag refused, and blocks
 * sealed by one engine opened by the other through
 * crypt_encrypt_block/crypt_decrypt_block.
 * `test-gcm --bench` prints per-core throughput of both engines instead.
 * Without VAES (or with BERTH_GCM=openssl) the engine tests are skipped and
 * the crypt.c tests run on OpenSSL alone. */
#include "store/crypt.h"
#include "store/gcm_vaes.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <openssl/evp.h>

#define MAXLEN (64 * 1024 + 80)

static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void rnd_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rnd() >> 32);
}

/* OpenSSL's AES-256-GCM, the reference. */
static void ref_seal(const uint8_t *key, const uint8_t *iv, const uint8_t *aad, size_t aadlen,
                     const uint8_t *in, uint8_t *out, size_t len, uint8_t tag[16])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n, good = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) > 0 &&
                  (!aadlen || EVP_EncryptUpdate(c, NULL, &n, aad, (int)aadlen) > 0) &&
                  (!len || EVP_EncryptUpdate(c, out, &n, in, (int)len) > 0) &&
                  EVP_EncryptFinal_ex(c, out + len, &n) > 0 &&
                  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) > 0;
    EVP_CIPHER_CTX_free(c);
    if (!good) {
        fprintf(stderr, "OpenSSL AES-256-GCM failed\n");
        exit(1);
    }
}

/* ---- published vectors ---- */

struct kat {
    const char *key, *iv, *pt, *aad, *ct, *tag;
};
static const struct kat kats[] = {
    /* McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-16 */
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6"
     "b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056"
     "828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6"
     "b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056"
     "828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
    /* NIST CAVP gcmEncryptExtIV256.rsp (96-bit IV, 128-bit tag) */
    {"b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4", "516c33929df5a3284ff463d7",
     "", "", "", "bdc1ac884d332457a1d2664f168c76f0"},
    {"5fe0861cdc2690ce69b3658c7f26f8458eec1c9243c5ba0845305d897e96ca0f", "770ac1a5a3d476d5d96944a1",
     "", "", "", "196d691e1047093ca4b3d2ef4baba216"},
    {"31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22", "0d18e06c7c725ac9e362e1ce",
     "2db5168e932556f8089a0622981d017d", "", "fa4362189661d163fcd6a56d8bf0405a",
     "d636ac1bbedd5cc3ee727dc2ab4a9489"},
    /* Wycheproof aes_gcm_test.json tcId 128 and 129: extreme tags, IVs of
     * all ones (the 32-bit counter itself cannot wrap within one block:
     * CRYPT_MAX_BLOCK is 64 MiB) */
    {"00112233445566778899aabbccddeeff102132435465768798a9bacbdcedfe0f", "000000000000000000000000",
     "561008fa07a68f5c61285cd013464eaf", "", "23293e9b07ca7d1b0cae7cc489a973b3",
     "ffffffffffffffffffffffffffffffff"},
    {"00112233445566778899aabbccddeeff102132435465768798a9bacbdcedfe0f", "ffffffffffffffffffffffff",
     "c6152244cea1978d3e0bc274cf8c0b3b", "", "7cb6fc7c6abc009efe9551a99f36a421",
     "00000000000000000000000000000000"},
};

static bool g_vaes;
static struct gcm_vaes_key *g_vk; /* secure memory, like crypt.c keeps it */

#ifdef BERTH_HAVE_GCM_VAES
static void test_kat(void)
{
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        const struct kat *t = &kats[i];
        uint8_t key[32], iv[12], pt[64], aad[32], ct[64], tag[16], out[64], got[16], rt[16];
        unhex(t->key, key);
        unhex(t->iv, iv);
        size_t len = unhex(t->pt, pt), alen = unhex(t->aad, aad);
        unhex(t->ct, ct);
        unhex(t->tag, tag);
        ref_seal(key, iv, aad, alen, pt, out, len, rt);
        ok(memcmp(out, ct, len) == 0 && memcmp(rt, tag, 16) == 0, "vector %zu: OpenSSL agrees", i);
        if (!g_vaes)
            continue;
        gcm_vaes_setkey(g_vk, key);
        gcm_vaes_seal(g_vk, iv, aad, alen, pt, out, len, got);
        ok(memcmp(out, ct, len) == 0 && memcmp(got, tag, 16) == 0, "vector %zu: VAES seal", i);
        bool good = gcm_vaes_open(g_vk, iv, aad, alen, ct, out, len, tag);
        ok(good && memcmp(out, pt, len) == 0, "vector %zu: VAES open", i);
    }
}

/* ---- random cases against OpenSSL ---- */

static size_t pick_len(int i)
{
    if (i < 1100)
        return (size_t)i; /* every length up to 1100: all tail shapes */
    switch (rnd() % 4) {
    case 0: /* around a multiple of 256 (the main loop's stride) */
        return (size_t)(rnd() % 256 + 1) * 256 + (size_t)(rnd() % 33) - 16;
    case 1:
        return (size_t)(rnd() % 16 + 1) * 4096; /* what the engine writes */
    default:
        return (size_t)(rnd() % (64 * 1024 + 1));
    }
}

static void test_random(void)
{
    if (!g_vaes)
        return;
    uint8_t *pt = malloc(MAXLEN), *ref = malloc(MAXLEN + 16), *buf = malloc(MAXLEN);
    int bad_seal = 0, bad_open = 0, bad_inplace = 0, n = 0;
    for (int i = 0; i < 3000; i++, n++) {
        /* AAD: mostly 0..64 bytes (berth's own AAD is short), every 4th
         * case one of the lengths that take the other GHASH paths (several
         * masked 64-byte chunks, the 256-byte loop, both) */
        static const size_t long_aad[] = {65, 128, 200, 255, 256, 257, 511, 1000, 4097};
        uint8_t key[32], iv[12], aad[4097], rt[16], tag[16];
        rnd_fill(key, sizeof key);
        rnd_fill(iv, sizeof iv);
        size_t alen = i % 4 == 3 ? long_aad[(size_t)i / 4 % (sizeof long_aad / sizeof long_aad[0])]
                                 : (size_t)(rnd() % 65),
               len = pick_len(i);
        rnd_fill(aad, alen);
        rnd_fill(pt, len);
        ref_seal(key, iv, aad, alen, pt, ref, len, rt);
        gcm_vaes_setkey(g_vk, key);
        /* out of place, with the source at an odd offset now and then */
        uint8_t *src = pt;
        if (i & 1) {
            memmove(pt + 1, pt, len);
            src = pt + 1;
        }
        gcm_vaes_seal(g_vk, iv, alen ? aad : NULL, alen, src, buf, len, tag);
        if (memcmp(buf, ref, len) != 0 || memcmp(tag, rt, 16) != 0) {
            if (bad_seal++ < 5)
                diag("seal differs: len %zu aad %zu", len, alen);
        }
        if (!gcm_vaes_open(g_vk, iv, aad, alen, ref, buf, len, rt) || memcmp(buf, src, len) != 0) {
            if (bad_open++ < 5)
                diag("open differs: len %zu aad %zu", len, alen);
        }
        /* in place, both directions */
        memcpy(buf, src, len);
        gcm_vaes_seal(g_vk, iv, aad, alen, buf, buf, len, tag);
        bool good = memcmp(buf, ref, len) == 0 && memcmp(tag, rt, 16) == 0;
        good = good && gcm_vaes_open(g_vk, iv, aad, alen, buf, buf, len, tag) &&
               memcmp(buf, src, len) == 0;
        if (!good && bad_inplace++ < 5)
            diag("in place differs: len %zu aad %zu", len, alen);
    }
    ok(bad_seal == 0, "seal = OpenSSL on %d random cases (%d differ)", n, bad_seal);
    ok(bad_open == 0, "open of OpenSSL's output on %d random cases (%d fail)", n, bad_open);
    ok(bad_inplace == 0, "in-place seal and open on %d random cases (%d fail)", n, bad_inplace);
    free(pt);
    free(ref);
    free(buf);
}

/* Masked loads and stores must stay inside the buffers: AAD, input and
 * output each end (or start) right against an inaccessible page, for the
 * lengths around every chunk size; a stray byte faults the test. */
static uint8_t *guarded(size_t len, bool at_end, uint8_t **map, size_t *maplen)
{
    size_t pg = 4096, span = (len + pg - 1) / pg * pg;
    *maplen = span + 2 * pg;
    *map = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (*map == MAP_FAILED)
        return NULL;
    mprotect(*map, pg, PROT_NONE);
    mprotect(*map + pg + span, pg, PROT_NONE);
    return at_end ? *map + pg + span - len : *map + pg;
}

static void test_guard_pages(void)
{
    if (!g_vaes)
        return;
    static const size_t lens[] = {0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 191, 192, 193,
                                  255, 256, 257, 511, 512, 513, 1000, 4095, 4096, 4097, 16384};
    const size_t nl = sizeof lens / sizeof lens[0];
    int bad = 0, n = 0;
    for (size_t c = 0; c < 2 * nl; c++) {
        size_t len = lens[c % nl], alen = lens[(c * 7 + 3) % nl];
        bool at_end = c < nl;
        uint8_t *m1, *m2, *m3, key[32], iv[12], tag[16], rt[16];
        size_t l1, l2, l3;
        uint8_t *aad = guarded(alen, at_end, &m1, &l1), *in = guarded(len, at_end, &m2, &l2),
                *out = guarded(len, at_end, &m3, &l3);
        uint8_t *ref = malloc(len + 16), *pt = malloc(len + 1);
        if (!aad || !in || !out || !ref || !pt) {
            ok(0, "guard pages: out of memory");
            return;
        }
        rnd_fill(key, sizeof key);
        memset(iv, 0xff, sizeof iv); /* and a counter block of ones */
        rnd_fill(aad, alen);
        rnd_fill(in, len);
        memcpy(pt, in, len);
        ref_seal(key, iv, aad, alen, pt, ref, len, rt);
        gcm_vaes_setkey(g_vk, key);
        gcm_vaes_seal(g_vk, iv, aad, alen, in, out, len, tag);
        bool good = memcmp(out, ref, len) == 0 && memcmp(tag, rt, 16) == 0;
        memcpy(in, ref, len);
        good = good && gcm_vaes_open(g_vk, iv, aad, alen, in, out, len, rt) &&
               memcmp(out, pt, len) == 0;
        if (!good && bad++ < 5)
            diag("guard pages: len %zu aad %zu %s differs", len, alen, at_end ? "end" : "start");
        n++;
        munmap(m1, l1);
        munmap(m2, l2);
        munmap(m3, l3);
        free(ref);
        free(pt);
    }
    ok(bad == 0, "%d cases with AAD, input and output against inaccessible pages: %d differ", n,
       bad);
}

/* Every single-bit flip of ciphertext, AAD and tag fails to open. */
static void test_bitflips(void)
{
    if (!g_vaes)
        return;
    static const size_t lens[] = {0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 300, 1000};
    uint8_t pt[1000], ct[1000], out[1000], aad[64], key[32], iv[12], tag[16];
    long tried = 0, accepted = 0;
    for (size_t c = 0; c < sizeof lens / sizeof lens[0]; c++) {
        size_t len = lens[c], alen = c * 5 % 65;
        rnd_fill(key, sizeof key);
        rnd_fill(iv, sizeof iv);
        rnd_fill(aad, alen);
        rnd_fill(pt, len);
        gcm_vaes_setkey(g_vk, key);
        gcm_vaes_seal(g_vk, iv, aad, alen, pt, ct, len, tag);
        for (size_t b = 0; b < 8 * (len + alen + 16); b++, tried++) {
            uint8_t *p = b < 8 * len            ? ct + b / 8
                         : b < 8 * (len + alen) ? aad + (b / 8 - len)
                                                : tag + (b / 8 - len - alen);
            *p ^= (uint8_t)(1u << (b % 8));
            accepted += gcm_vaes_open(g_vk, iv, aad, alen, ct, out, len, tag);
            *p ^= (uint8_t)(1u << (b % 8));
        }
        ok(gcm_vaes_open(g_vk, iv, aad, alen, ct, out, len, tag) && memcmp(out, pt, len) == 0,
           "len %zu aad %zu: the untouched block opens", len, alen);
    }
    ok(accepted == 0, "%ld single-bit flips of ciphertext, AAD or tag: %ld accepted", tried,
       accepted);
}

#else
/* built without gcm_vaes.c: only the OpenSSL side of the vectors */
static void test_kat(void)
{
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        const struct kat *t = &kats[i];
        uint8_t key[32], iv[12], pt[64], aad[32], ct[64], tag[16], out[64], rt[16];
        unhex(t->key, key);
        unhex(t->iv, iv);
        size_t len = unhex(t->pt, pt), alen = unhex(t->aad, aad);
        unhex(t->ct, ct);
        unhex(t->tag, tag);
        ref_seal(key, iv, aad, alen, pt, out, len, rt);
        ok(memcmp(out, ct, len) == 0 && memcmp(rt, tag, 16) == 0, "vector %zu: OpenSSL agrees", i);
    }
}
#endif

/* ---- crypt.c: both engines, same bytes ---- */

static void test_crypt_engines(void)
{
    struct crypt_key *k;
    if (crypt_key_generate(&k) != 0) {
        ok(false, "crypt_key_generate");
        return;
    }
    ok(crypt_gcm_accelerated() == g_vaes, "crypt.c uses VAES exactly when it is available (%s)",
       g_vaes ? "VAES" : "OpenSSL");
    static uint8_t pt[65536], ct[2][65536], out[65536];
    uint8_t salt[8], iv[12], aad[CRYPT_AAD2_LEN], mac[2][16];
    int same = 0, cross = 0, tamper = 0, n = 0;
    for (int i = 0; i < 200; i++, n++) {
        size_t len = i < 100 ? (size_t)i * 97 % 5000 : (size_t)(rnd() % sizeof pt);
        rnd_fill(pt, len);
        rnd_fill(aad, sizeof aad);
        rnd_fill(salt, sizeof salt);
        crypt_random_iv(iv);
        for (int e = 0; e < 2; e++) { /* 0: default engine, 1: OpenSSL forced */
            crypt_test_gcm_openssl(e == 1);
            crypt_encrypt_block(k, salt, iv, aad, sizeof aad, pt, ct[e], len, mac[e]);
        }
        same += memcmp(ct[0], ct[1], len) == 0 && memcmp(mac[0], mac[1], 16) == 0;
        for (int e = 0; e < 2; e++) { /* open what the other engine sealed */
            crypt_test_gcm_openssl(e == 1);
            int rc = crypt_decrypt_block(k, salt, iv, aad, sizeof aad, ct[!e], out, len, mac[!e]);
            cross += rc == 0 && memcmp(out, pt, len) == 0;
            if (len) {
                ct[!e][len / 2] ^= 0x40;
                memcpy(out, pt, len);
                rc = crypt_decrypt_block(k, salt, iv, aad, sizeof aad, ct[!e], out, len, mac[!e]);
                bool zero = true;
                for (size_t j = 0; j < len; j++)
                    zero = zero && out[j] == 0;
                tamper += rc == -EIO && zero;
                ct[!e][len / 2] ^= 0x40;
            } else {
                tamper++;
            }
        }
    }
    crypt_test_gcm_openssl(false);
    ok(same == n, "default engine and OpenSSL seal the same bytes (%d/%d)", same, n);
    ok(cross == 2 * n, "each engine opens the other's blocks (%d/%d)", cross, 2 * n);
    ok(tamper == 2 * n, "a flipped ciphertext bit is -EIO with zeros in out (%d/%d)", tamper,
       2 * n);
    crypt_key_free(k);
}

/* ---- benchmark ---- */

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* other load does not count */
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int bench(void)
{
    static const size_t sizes[] = {4096, 16384, 131072};
    struct crypt_key *k;
    if (crypt_key_generate(&k) != 0)
        return 1;
    uint8_t *pt = malloc(131072), *ct = malloc(131072), *out = malloc(131072);
    uint8_t salt[8], iv[12], mac[16], aad[CRYPT_AAD2_LEN] = {0};
    rnd_fill(pt, 131072);
    crypt_key_next_salt(k, salt);
    printf("AES-256-GCM through crypt_{en,de}crypt_block, one core (thread CPU time), GB/s\n");
    printf("%-8s %8s %8s %8s %8s\n", "block", "enc", "dec", "enc-ossl", "dec-ossl");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        double r[4] = {0};
        for (int e = 0; e < 2; e++) {
            crypt_test_gcm_openssl(e == 1);
            if (e == 0 && !crypt_gcm_accelerated())
                continue;
            /* batches of 64 under one IV (a benchmark: reuse does not matter), so
             * the clock is read per batch, not per block */
            double te = 0, td = 0, t0 = secs();
            long n = 0;
            crypt_random_iv(iv);
            while (secs() - t0 < 1.5) {
                double a = secs();
                for (int i = 0; i < 64; i++)
                    crypt_encrypt_block(k, salt, iv, aad, sizeof aad, pt, ct, sizes[s], mac);
                double b = secs();
                for (int i = 0; i < 64; i++)
                    if (crypt_decrypt_block(k, salt, iv, aad, sizeof aad, ct, out, sizes[s], mac))
                        return 1;
                te += b - a;
                td += secs() - b;
                n += 64;
            }
            r[2 * e] = (double)n * sizes[s] / te / 1e9;
            r[2 * e + 1] = (double)n * sizes[s] / td / 1e9;
        }
        printf("%-8zu %8.2f %8.2f %8.2f %8.2f\n", sizes[s], r[0], r[1], r[2], r[3]);
    }
    crypt_test_gcm_openssl(false);
    crypt_key_free(k);
    free(pt);
    free(ct);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench();
    g_vaes = gcm_vaes_supported();
    const char *force = getenv("BERTH_GCM");
    if (force && strcmp(force, "openssl") == 0)
        g_vaes = false;
    if (g_vaes && !(g_vk = crypt_secure_alloc(sizeof *g_vk))) {
        ok(false, "crypt_secure_alloc");
        return done_testing();
    }
    if (!g_vaes)
        diag("no VAES/AVX-512 here (or BERTH_GCM=openssl): engine tests skipped");
    test_kat();
#ifdef BERTH_HAVE_GCM_VAES
    test_random();
    test_guard_pages();
    test_bitflips();
#endif
    test_crypt_engines();
    crypt_secure_free(g_vk);
    return done_testing();
}
