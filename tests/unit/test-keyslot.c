/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/keyslot.c: key material parsing (raw, hex,
 * passphrase, file:// locations and their errors), every keyformat and KDF,
 * wrong keys, slot removal, any slot unlocking, key change with crashes
 * between its steps, corrupted slot bytes and hostile decoder input. */
#include "store/keyslot.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/le.h"

/* Small Argon2 costs keep the test fast; the defaults get one run. */
static const struct kdf_params ARGON_FAST = {KDF_ARGON2ID, 1, 64, 1};
static const struct kdf_params PBKDF2_MIN = {KDF_PBKDF2_SHA256, KDF_PBKDF2_ITER_MIN, 0, 0};

static char tmpdir[64];

static struct user_key *uk(enum keyformat f, const char *s, size_t len)
{
    struct user_key *k = NULL;
    struct berr e = {0};
    if (user_key_parse(f, s, len, &k, &e) < 0)
        diag("parse: %s", e.msg);
    return k;
}

static bool same_key(const struct crypt_key *a, const struct crypt_key *b)
{
    uint8_t fa[16], fb[16];
    return a && b && crypt_key_fingerprint(a, fa) == 0 && crypt_key_fingerprint(b, fb) == 0 &&
           memcmp(fa, fb, 16) == 0;
}

/* Unlock with `k`; returns the slot id or -errno, checks the key is `master`. */
static int try_unlock(const struct keyslots *set, const struct user_key *k,
                      const struct crypt_key *master)
{
    struct crypt_key *got = NULL;
    int rc = keyslot_unlock(set, k, &got, NULL);
    if (rc >= 0 && !same_key(got, master))
        rc = -EBADMSG;
    crypt_key_free(got);
    return rc;
}

static const char RAW1[] = "0123456789abcdef0123456789ABCDEF";
static const char RAW2[] = "zyxwvutsrqponmlkjihgfedcbaZYXWVU";

static void test_parse(void)
{
    struct user_key *k = NULL;
    struct berr e = {0};
    ok(user_key_parse(KEYFORMAT_RAW, RAW1, 32, &k, &e) == 0, "raw key of 32 bytes");
    user_key_free(k);
    ok(user_key_parse(KEYFORMAT_RAW, RAW1, 31, &k, &e) == -EINVAL &&
           strstr(e.msg, "exactly 32 bytes, got 31"),
       "raw key of 31 bytes: %s", e.msg);
    const char *hex = "  000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F\n";
    ok(user_key_parse(KEYFORMAT_HEX, hex, strlen(hex), &k, &e) == 0, "hex key, whitespace trimmed");
    user_key_free(k);
    ok(user_key_parse(KEYFORMAT_HEX, hex, strlen(hex) - 2, &k, &e) == -EINVAL &&
           strstr(e.msg, "64 hex digits, got 63"),
       "short hex key: %s", e.msg);
    char bad[65];
    memset(bad, 'a', 64);
    bad[10] = 'g';
    bad[64] = 0;
    ok(user_key_parse(KEYFORMAT_HEX, bad, 64, &k, &e) == -EINVAL && strstr(e.msg, "position 11"),
       "non-hex digit: %s", e.msg);
    ok(user_key_parse(KEYFORMAT_PASSPHRASE, "1234567", 7, &k, &e) == -EINVAL &&
           strstr(e.msg, "got 7"),
       "7-byte passphrase: %s", e.msg);
    char big[600];
    memset(big, 'p', sizeof big);
    ok(user_key_parse(KEYFORMAT_PASSPHRASE, big, 8, &k, &e) == 0, "8-byte passphrase");
    user_key_free(k);
    ok(user_key_parse(KEYFORMAT_PASSPHRASE, big, 512, &k, &e) == 0, "512-byte passphrase");
    user_key_free(k);
    ok(user_key_parse(KEYFORMAT_PASSPHRASE, big, 513, &k, &e) == -EINVAL, "513-byte passphrase");
    ok(user_key_parse((enum keyformat)9, big, 32, &k, &e) == -EINVAL, "unknown keyformat");

    /* raw and hex forms of one key are the same key */
    struct user_key *r = uk(KEYFORMAT_RAW, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"
                                           "\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17"
                                           "\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
                            32);
    struct user_key *h = uk(KEYFORMAT_HEX, hex, strlen(hex));
    struct crypt_key *m;
    struct keyslots set = {0};
    crypt_key_generate(&m);
    keyslot_add(&set, m, h, NULL, -1, NULL);
    ok(try_unlock(&set, r, m) == 0, "raw form opens a slot made from the hex form");
    crypt_key_free(m);
    user_key_free(r);
    user_key_free(h);
}

static void write_file(const char *name, const void *data, size_t len, char *loc)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fwrite(data, 1, len, f);
    fclose(f);
    snprintf(loc, 160, "file://%s", path);
}

static void test_load(void)
{
    char loc[160], bad[160];
    struct user_key *k = NULL, *p;
    struct berr e = {0};
    snprintf(bad, sizeof bad, "file://%s/missing.key", tmpdir);
    ok(user_key_load(KEYFORMAT_RAW, bad, &k, &e) == -ENOENT && strstr(e.msg, "missing.key") &&
           strstr(e.msg, "No such file"),
       "missing key file: %s", e.msg);
    write_file("raw.key", RAW1, 32, loc);
    ok(user_key_load(KEYFORMAT_RAW, loc, &k, &e) == 0, "raw key file");
    struct user_key *direct = uk(KEYFORMAT_RAW, RAW1, 32);
    struct crypt_key *m;
    crypt_key_generate(&m);
    struct keyslots set = {0};
    keyslot_add(&set, m, direct, NULL, -1, NULL);
    ok(try_unlock(&set, k, m) == 0, "key from file equals key from memory");
    user_key_free(k);
    user_key_free(direct);
    write_file("raw33.key", "0123456789abcdef0123456789abcdef\n", 33, loc);
    ok(user_key_load(KEYFORMAT_RAW, loc, &k, &e) == -EINVAL && strstr(e.msg, "raw33.key") &&
           strstr(e.msg, "exactly 32 bytes, got 33"),
       "raw key file with a newline: %s", e.msg);
    write_file("hex.key", "\t6162636465666768696a6b6c6d6e6f706162636465666768696a6b6c6d6e6f70\r\n",
               67, loc);
    ok(user_key_load(KEYFORMAT_HEX, loc, &k, &e) == 0, "hex key file with CRLF");
    user_key_free(k);
    write_file("pass.key", "correct horse battery\n", 22, loc);
    ok(user_key_load(KEYFORMAT_PASSPHRASE, loc, &k, &e) == 0, "passphrase file");
    p = uk(KEYFORMAT_PASSPHRASE, "correct horse battery", 21);
    struct keyslots ps = {0};
    keyslot_add(&ps, m, p, &ARGON_FAST, -1, NULL);
    ok(try_unlock(&ps, k, m) == 0, "passphrase file loses its trailing newline");
    user_key_free(k);
    user_key_free(p);
    write_file("short.key", "short\n", 6, loc);
    ok(user_key_load(KEYFORMAT_PASSPHRASE, loc, &k, &e) == -EINVAL && strstr(e.msg, "got 5"),
       "short passphrase file: %s", e.msg);
    char *huge = calloc(1, 10000);
    memset(huge, 'a', 9999);
    write_file("huge.key", huge, 9999, loc);
    free(huge);
    ok(user_key_load(KEYFORMAT_HEX, loc, &k, &e) == -EINVAL && strstr(e.msg, "more than"),
       "huge key file: %s", e.msg);
    ok(user_key_load(KEYFORMAT_RAW, "prompt", &k, &e) == -EINVAL, "prompt is not a file");
    ok(user_key_load(KEYFORMAT_RAW, "/etc/key", &k, &e) == -EINVAL && strstr(e.msg, "file:///"),
       "bare path: %s", e.msg);
    ok(user_key_load(KEYFORMAT_RAW, "file://rel/key", &k, &e) == -EINVAL, "relative file:// path");
    snprintf(bad, sizeof bad, "file://%s", tmpdir);
    ok(user_key_load(KEYFORMAT_RAW, bad, &k, &e) == -EISDIR, "directory: %s", e.msg);
    crypt_key_free(m);
}

static void test_formats(void)
{
    struct crypt_key *m;
    crypt_key_generate(&m);
    struct keyslots set = {0};
    struct user_key *raw = uk(KEYFORMAT_RAW, RAW1, 32);
    struct user_key *hex = uk(KEYFORMAT_HEX, "ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00", 64);
    struct user_key *pa = uk(KEYFORMAT_PASSPHRASE, "argon passphrase", 16);
    struct user_key *pp = uk(KEYFORMAT_PASSPHRASE, "pbkdf2 passphrase", 17);
    struct berr e = {0};
    is_int(keyslot_add(&set, m, raw, NULL, -1, &e), 0, "raw key into slot 0");
    is_int(keyslot_add(&set, m, hex, NULL, 5, &e), 5, "hex key into slot 5");
    is_int(keyslot_add(&set, m, pa, &ARGON_FAST, -1, &e), 1, "argon2id passphrase into slot 1");
    is_int(keyslot_add(&set, m, pp, &PBKDF2_MIN, -1, &e), 2, "pbkdf2 passphrase into slot 2");
    is_int(keyslot_add(&set, m, raw, NULL, 5, &e), -EEXIST, "slot 5 is taken");
    is_int(keyslot_add(&set, m, raw, NULL, 8, &e), -EINVAL, "slot 8 does not exist");
    is_int(try_unlock(&set, raw, m), 0, "raw key unlocks slot 0");
    is_int(try_unlock(&set, hex, m), 5, "hex key unlocks slot 5");
    is_int(try_unlock(&set, pa, m), 1, "argon2id passphrase unlocks slot 1");
    is_int(try_unlock(&set, pp, m), 2, "pbkdf2 passphrase unlocks slot 2");

    struct user_key *wr = uk(KEYFORMAT_RAW, RAW2, 32);
    struct user_key *wp = uk(KEYFORMAT_PASSPHRASE, "argon passphrasf", 16);
    struct crypt_key *got = NULL;
    ok(keyslot_unlock(&set, wr, &got, &e) == -EACCES && !got &&
           strcmp(e.msg, "wrong key or passphrase") == 0,
       "wrong raw key: %s", e.msg);
    ok(keyslot_unlock(&set, wp, &got, &e) == -EACCES && !got, "wrong passphrase: EACCES");

    /* bad KDF choices */
    struct kdf_params k = ARGON_FAST;
    ok(keyslot_add(&set, m, raw, &k, -1, &e) == -EINVAL, "raw key with argon2: EINVAL");
    k.t_cost = 0;
    ok(keyslot_add(&set, m, pa, &k, -1, &e) == -EINVAL, "argon2 t=0: EINVAL");
    k = (struct kdf_params){KDF_PBKDF2_SHA256, 1000, 0, 0};
    ok(keyslot_add(&set, m, pa, &k, -1, &e) == -EINVAL && strstr(e.msg, "350000"),
       "pbkdf2 with 1000 iterations: %s", e.msg);
    k = (struct kdf_params){KDF_NONE, 0, 0, 0};
    ok(keyslot_add(&set, m, pa, &k, -1, &e) == -EINVAL, "passphrase without a KDF: EINVAL");

    /* removing a slot makes its key useless, the others still work */
    ok(keyslot_remove(&set, 1, &e) == 0, "remove slot 1");
    ok(try_unlock(&set, pa, m) == -EACCES, "removed passphrase no longer unlocks");
    is_int(try_unlock(&set, pp, m), 2, "other passphrase still unlocks");
    is_int(keyslot_remove(&set, 1, &e), -ENOENT, "remove an empty slot: ENOENT");
    keyslot_remove(&set, 2, NULL);
    ok(keyslot_unlock(&set, pp, &got, &e) == -EACCES && strstr(e.msg, "no key slot takes"),
       "passphrase with only key slots: %s", e.msg);
    keyslot_remove(&set, 5, NULL);
    ok(keyslot_remove(&set, 0, &e) == -EBUSY, "last slot cannot be removed: %s", e.msg);
    is_int(try_unlock(&set, raw, m), 0, "last slot still works");
    struct keyslots empty = {0};
    is_int(keyslot_unlock(&empty, raw, &got, NULL), -ENOENT, "no slots at all: ENOENT");

    /* full set; each slot opens */
    struct keyslots full = {0};
    int ids = 0;
    struct user_key *keys[KEYSLOT_MAX];
    for (int i = 0; i < KEYSLOT_MAX; i++) {
        char r[32];
        memset(r, 'A' + i, 32);
        keys[i] = uk(KEYFORMAT_RAW, r, 32);
        ids += keyslot_add(&full, m, keys[i], NULL, -1, NULL) == i;
    }
    is_int(ids, KEYSLOT_MAX, "8 slots filled in order");
    is_int(keyslot_add(&full, m, raw, NULL, -1, &e), -ENOSPC, "a 9th slot: ENOSPC");
    int opened = 0;
    for (int i = 0; i < KEYSLOT_MAX; i++) {
        opened += try_unlock(&full, keys[i], m) == i;
        user_key_free(keys[i]);
    }
    is_int(opened, KEYSLOT_MAX, "the right key in any slot unlocks it");

    /* a new volume key */
    struct keyslots fresh = {0};
    struct crypt_key *nk = NULL, *nk2 = NULL;
    ok(keyslot_create(&fresh, pp, &PBKDF2_MIN, &nk, &e) == 0 && keyslots_count(&fresh) == 1 &&
           try_unlock(&fresh, pp, nk) == 0 && !same_key(nk, m),
       "create: a new master key in slot 0");
    ok(keyslot_create(&fresh, raw, NULL, &nk2, &e) == -EEXIST && !nk2,
       "create on a set with slots: EEXIST");
    crypt_key_free(nk);

    /* the default (slow) parameters, once */
    struct keyslots def = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int id = keyslot_add(&def, m, pa, NULL, -1, &e);
    int un = try_unlock(&def, pa, m);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ok(id == 0 && un == 0 && def.slot[0].kdf.kdf == KDF_ARGON2ID && def.slot[0].kdf.t_cost == 3 &&
           def.slot[0].kdf.m_cost_kib == 65536 && def.slot[0].kdf.parallelism == 1,
       "default passphrase KDF is argon2id t=3 m=64MiB p=1");
    diag("argon2id t=3 m=64MiB p=1: add + unlock took %.2f s",
         (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    crypt_key_free(m);
    for (struct user_key **p = (struct user_key *[]){raw, hex, pa, pp, wr, wp, NULL}; *p; p++)
        user_key_free(*p);
}

/* ---- encoding, corruption, hostile input ---- */

static void test_encoding(void)
{
    struct crypt_key *m;
    crypt_key_generate(&m);
    struct keyslots set = {0}, back;
    struct user_key *raw = uk(KEYFORMAT_RAW, RAW1, 32);
    struct user_key *pa = uk(KEYFORMAT_PASSPHRASE, "argon passphrase", 16);
    keyslot_add(&set, m, raw, NULL, 3, NULL);
    keyslot_add(&set, m, pa, &ARGON_FAST, 6, NULL);
    uint8_t b[KEYSLOTS_SIZE], b2[KEYSLOTS_SIZE];
    keyslots_encode(&set, b);
    ok(keyslots_decode(b, sizeof b, &back) == 0 && keyslots_count(&back) == 2,
       "set round trip");
    keyslots_encode(&back, b2);
    ok(memcmp(b, b2, sizeof b) == 0, "re-encode is byte identical");
    const uint8_t *s3 = b + 3 * KEYSLOT_SIZE;
    ok(get_le32(s3) == 0x4c534b42 && s3[6] == 3 && s3[7] == KEYFORMAT_RAW && s3[8] == KDF_NONE,
       "slot fields at the FORMAT.md offsets");
    is_int(try_unlock(&back, raw, m), 3, "decoded set unlocks (raw)");
    is_int(try_unlock(&back, pa, m), 6, "decoded set unlocks (passphrase)");
    ok(keyslots_decode(b, sizeof b - 1, &back) == -EILSEQ, "short set: EILSEQ");

    /* every single-bit flip of the raw slot: rejected by the decoder or the MAC */
    int never_opens = 0, total = 0;
    for (int i = 0; i < KEYSLOT_SIZE; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t c[KEYSLOTS_SIZE];
            memcpy(c, b, sizeof c);
            c[3 * KEYSLOT_SIZE + i] ^= (uint8_t)(1u << bit);
            total++;
            struct crypt_key *got = NULL;
            int rc = keyslots_decode(c, sizeof c, &back);
            if (rc == -EILSEQ || keyslot_unlock(&back, raw, &got, NULL) == -EACCES)
                never_opens++;
            crypt_key_free(got);
        }
    }
    is_int(never_opens, total, "every bit flip in a raw slot is rejected");
    /* header flips of the argon2 slot (its costs, salt, IV) */
    never_opens = total = 0;
    for (int i = 0; i < 64; i++) {
        uint8_t c[KEYSLOTS_SIZE];
        memcpy(c, b, sizeof c);
        c[6 * KEYSLOT_SIZE + i] ^= 0x01;
        total++;
        struct crypt_key *got = NULL;
        if (keyslots_decode(c, sizeof c, &back) == -EILSEQ ||
            keyslot_unlock(&back, pa, &got, NULL) == -EACCES)
            never_opens++;
        crypt_key_free(got);
    }
    is_int(never_opens, total, "every header flip of a passphrase slot is rejected");

    /* a valid slot copied to another index is refused */
    uint8_t c[KEYSLOTS_SIZE];
    memcpy(c, b, sizeof c);
    memcpy(c, b + 3 * KEYSLOT_SIZE, KEYSLOT_SIZE);
    ok(keyslots_decode(c, sizeof c, &back) == -EILSEQ, "slot id must match its index");
    user_key_free(raw);
    user_key_free(pa);
    crypt_key_free(m);
}

static int decode_with(uint8_t fmt, uint8_t kdf, uint32_t t, uint32_t mem, uint32_t p)
{
    uint8_t s[KEYSLOT_SIZE] = {0};
    struct keyslot out;
    put_le32(s, 0x4c534b42);
    put_le16(s + 4, 1);
    s[6] = 2;
    s[7] = fmt;
    s[8] = kdf;
    put_le32(s + 12, t);
    put_le32(s + 16, mem);
    put_le32(s + 20, p);
    s[40] = 1;
    return keyslot_decode(s, &out);
}

static void test_hostile(void)
{
    ok(decode_with(KEYFORMAT_PASSPHRASE, KDF_ARGON2ID, 3, 65536, 1) == 0, "sane argon2 slot decodes");
    ok(decode_with(KEYFORMAT_PASSPHRASE, KDF_ARGON2ID, 17, 65536, 1) == -EILSEQ, "argon2 t=17");
    ok(decode_with(KEYFORMAT_PASSPHRASE, KDF_ARGON2ID, 1, 0x80000000u, 1) == -EILSEQ,
       "argon2 m=2 TiB");
    ok(decode_with(KEYFORMAT_PASSPHRASE, KDF_ARGON2ID, 16, 1u << 20, 1) == -EILSEQ,
       "argon2 t*m over the work cap");
    ok(decode_with(KEYFORMAT_PASSPHRASE, KDF_ARGON2ID, 1, 64, 0) == -EILSEQ, "argon2 p=0");
    ok(decode_with(KEYFORMAT_PASSPHRASE, KDF_ARGON2ID, 1, 64, 9) == -EILSEQ, "argon2 m < 8p");
    ok(decode_with(KEYFORMAT_PASSPHRASE, KDF_PBKDF2_SHA256, 1000000000u, 0, 0) == -EILSEQ,
       "pbkdf2 1e9 iterations");
    ok(decode_with(KEYFORMAT_PASSPHRASE, KDF_PBKDF2_SHA256, 1000, 0, 0) == -EILSEQ,
       "pbkdf2 1000 iterations");
    ok(decode_with(KEYFORMAT_PASSPHRASE, KDF_NONE, 0, 0, 0) == -EILSEQ, "passphrase without KDF");
    ok(decode_with(KEYFORMAT_RAW, KDF_ARGON2ID, 1, 64, 1) == -EILSEQ, "raw key with a KDF");
    ok(decode_with(KEYFORMAT_RAW, KDF_NONE, 1, 0, 0) == -EILSEQ, "raw key with a cost");
    ok(decode_with(4, KDF_NONE, 0, 0, 0) == -EILSEQ, "unknown format");
    ok(decode_with(KEYFORMAT_PASSPHRASE, 3, 1, 64, 1) == -EILSEQ, "unknown KDF");

    srand(7);
    int accepted = 0;
    for (int i = 0; i < 200000; i++) {
        uint8_t s[KEYSLOT_SIZE];
        struct keyslot out;
        for (int j = 0; j < KEYSLOT_SIZE; j++)
            s[j] = (uint8_t)rand();
        if (i & 1) { /* a plausible header, random rest */
            put_le32(s, 0x4c534b42);
            put_le16(s + 4, 1);
            memset(s + 9, 0, 3);
        }
        int rc = keyslot_decode(s, &out);
        accepted += rc == 0 || out.used;
    }
    ok(accepted == 0, "200000 random slots (half with a valid magic): all rejected");
}

static int persist_fail_at, persist_calls;
static uint8_t persisted[4][KEYSLOTS_SIZE];

static int persist(const struct keyslots *set, void *opaque)
{
    int n = persist_calls++;
    if (n == persist_fail_at)
        return -EIO;
    keyslots_encode(set, persisted[n & 3]);
    return 0;
}

static void test_change(void)
{
    struct crypt_key *m;
    crypt_key_generate(&m);
    struct user_key *old = uk(KEYFORMAT_PASSPHRASE, "old passphrase", 14);
    struct user_key *new = uk(KEYFORMAT_RAW, RAW2, 32);
    struct user_key *other = uk(KEYFORMAT_RAW, RAW1, 32);
    struct keyslots set = {0};
    keyslot_add(&set, m, other, NULL, -1, NULL);
    int oid = keyslot_add(&set, m, old, &ARGON_FAST, -1, NULL);
    struct berr e = {0};

    persist_fail_at = -1, persist_calls = 0;
    int nid = keyslot_change(&set, m, oid, new, NULL, persist, NULL, &e);
    ok(nid >= 0 && persist_calls == 2, "change key: add, persist, remove, persist");
    ok(try_unlock(&set, old, m) == -EACCES && try_unlock(&set, new, m) == nid &&
           try_unlock(&set, other, m) == 0,
       "old key useless, new key and untouched slot work");
    /* a crash after each persist: both durable states open with old or new */
    int states_ok = 0;
    for (int i = 0; i < 2; i++) {
        struct keyslots st;
        keyslots_decode(persisted[i], KEYSLOTS_SIZE, &st);
        states_ok += try_unlock(&st, new, m) >= 0 || try_unlock(&st, old, m) >= 0;
    }
    is_int(states_ok, 2, "every persisted intermediate state opens");
    struct keyslots mid;
    keyslots_decode(persisted[0], KEYSLOTS_SIZE, &mid);
    ok(try_unlock(&mid, old, m) == oid && try_unlock(&mid, new, m) == nid,
       "crash between add and remove: both keys work");

    /* failing persists roll back so memory never claims less than disk has */
    struct keyslots s2 = {0};
    keyslot_add(&s2, m, old, &ARGON_FAST, -1, NULL);
    persist_fail_at = 0, persist_calls = 0;
    ok(keyslot_change(&s2, m, 0, new, NULL, persist, NULL, &e) == -EIO &&
           keyslots_count(&s2) == 1 && try_unlock(&s2, old, m) == 0,
       "first persist fails: change undone (%s)", e.msg);
    persist_fail_at = 1, persist_calls = 0;
    ok(keyslot_change(&s2, m, 0, new, NULL, persist, NULL, &e) == -EIO &&
           try_unlock(&s2, old, m) == 0 && try_unlock(&s2, new, m) == 1,
       "second persist fails: both keys work (%s)", e.msg);
    ok(keyslot_change(&s2, m, 5, new, NULL, NULL, NULL, &e) == -ENOENT, "change an empty slot");
    user_key_free(old);
    user_key_free(new);
    user_key_free(other);
    crypt_key_free(m);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test-keyslot.XXXXXX");
    if (!mkdtemp(tmpdir))
        tap_skip_all("no temp dir");
    test_parse();
    test_load();
    test_formats();
    test_encoding();
    test_hostile();
    test_change();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        diag("could not remove %s", tmpdir);
    return done_testing();
}
