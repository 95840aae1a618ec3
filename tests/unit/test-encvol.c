/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encrypted volumes end to end through the engine (issue 6, DESIGN.md
 * invariant 8): ciphertext only on the device, keys and key slots (raw, hex,
 * passphrase; wrong, missing, removed), tampering detected, snapshots and
 * clones sharing the key, auto-load of file:// keys at import, scrub without
 * keys, a plain send of an encrypted snapshot, and crash safety of a key
 * change. */
#include <fcntl.h>
#include <sys/stat.h>

#include "common/le.h"
#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/codec.h"
#include "store/keyslot.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 16384u
#define VOLSZ (4 * MiB)
#define PLAIN (256 * 1024) /* known plaintext written */

static const struct bs_kdf_opts fast_kdf = { .kdf = BS_KDF_ARGON2ID, .t_cost = 1,
                                             .m_cost_kib = 64, .parallelism = 1 };

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "w");
    fwrite(buf, 1, len, f);
    fclose(f);
}

static char *file_url(const char *path)
{
    static char url[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(url[k], sizeof url[k], "file://%s", path);
    return url[k];
}

static bs_pool *new_pool(const char *file, const struct bs_pool_opts *extra)
{
    struct bs_pool_opts o;
    if (extra)
        o = *extra;
    else
        bs_pool_opts_init(&o);
    o.force = true;
    const char *v[] = { file };
    bs_pool *p = NULL;
    struct berr e = {0};
    if (bs_pool_create("enc", v, 1, 96 * MiB, &o, &p, &e) < 0)
        diag("pool create: %s", e.msg);
    return p;
}

static bs_pool *reimport(bs_pool *p, const char *file)
{
    struct berr e = {0};
    if (p && bs_pool_export(p, true, &e) < 0)
        diag("export: %s", e.msg);
    const char *v[] = { file };
    bs_pool *q = NULL;
    if (bs_pool_import(v, 1, NULL, &q, &e) < 0)
        diag("import: %s", e.msg);
    return q;
}

static int create_vol(bs_pool *p, const char *name, enum bs_keyformat fmt, const char *loc,
                      const void *key, size_t keylen, struct berr *e)
{
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "%s", name);
    vp.volsize = VOLSZ;
    vp.volblocksize = BS;
    if (fmt) {
        vp.encrypted = true;
        vp.keyformat = fmt;
        snprintf(vp.keylocation, sizeof vp.keylocation, "%s", loc);
        vp.key = key;
        vp.keylen = keylen;
        vp.kdf = fast_kdf;
    }
    return bs_vol_create(p, &vp, false, e);
}

static int vol_write(bs_pool *p, const char *name, const void *buf, size_t len, uint64_t off)
{
    bs_vol *v;
    int r = bs_vol_open(p, name, &v, NULL);
    if (r == 0)
        r = bs_vol_pwrite(v, buf, len, off, 0);
    if (v && r >= 0)
        r = bs_vol_flush(v);
    bs_vol_close(r == -EACCES ? NULL : v);
    return r;
}

static int vol_read(bs_pool *p, const char *name, void *buf, size_t len, uint64_t off)
{
    bs_vol *v = NULL;
    int r = bs_vol_open(p, name, &v, NULL);
    if (r == 0)
        r = bs_vol_pread(v, buf, len, off);
    bs_vol_close(v);
    return r;
}

/* ---- searching the device for plaintext ---- */

#define TAB_BITS 21
struct windows {
    const uint8_t *plain;
    size_t len;
    uint32_t *tab; /* offset + 1 of a 16-byte window, 0 empty */
};

static uint64_t h16(const uint8_t *b)
{
    uint64_t a, c;
    memcpy(&a, b, 8);
    memcpy(&c, b + 8, 8);
    return (a * 0x9e3779b97f4a7c15ULL) ^ (c * 0xc2b2ae3d27d4eb4fULL);
}

static void windows_init(struct windows *w, const uint8_t *plain, size_t len)
{
    w->plain = plain;
    w->len = len;
    w->tab = calloc(1u << TAB_BITS, sizeof *w->tab);
    for (size_t i = 0; i + 16 <= len; i++) {
        size_t s = h16(plain + i) >> (64 - TAB_BITS);
        while (w->tab[s])
            s = (s + 1) & ((1u << TAB_BITS) - 1);
        w->tab[s] = (uint32_t)i + 1;
    }
}

/* Bytes offsets of the file where some 16-byte run of the plaintext is. */
static long find_plaintext(const struct windows *w, const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    uint8_t *buf = malloc(st.st_size);
    ssize_t n = pread(fd, buf, st.st_size, 0);
    close(fd);
    long hits = 0;
    for (ssize_t i = 0; i + 16 <= n; i++) {
        if (!buf[i] && !buf[i + 7] && !buf[i + 15])
            continue; /* (the plaintext has no such window: see main) */
        size_t s = h16(buf + i) >> (64 - TAB_BITS);
        for (; w->tab[s]; s = (s + 1) & ((1u << TAB_BITS) - 1))
            if (memcmp(w->plain + w->tab[s] - 1, buf + i, 16) == 0) {
                hits++;
                break;
            }
    }
    free(buf);
    return hits;
}

static void test_ciphertext_only(const uint8_t *plain, const uint8_t *rawkey)
{
    const char *kf = tmp_path("key.raw");
    write_file(kf, rawkey, 32);
    struct windows w;
    windows_init(&w, plain, PLAIN);
    struct berr e = {0};
    /* control: the same data in a plaintext volume is found */
    const char *pf = tmp_path("plain.img");
    bs_pool *p = new_pool(pf, NULL);
    ok(create_vol(p, "v", 0, NULL, NULL, 0, &e) == 0, "plaintext volume");
    ok(vol_write(p, "v", plain, PLAIN, 0) == 0, "write known plaintext");
    bs_pool_export(p, false, &e);
    ok(find_plaintext(&w, pf) > 0, "control: plaintext found in the plain pool file");
    /* encrypted */
    const char *ef = tmp_path("enc.img");
    p = new_pool(ef, NULL);
    ok((berr_clear(&e), create_vol(p, "v", BS_KEYFORMAT_RAW, file_url(kf), NULL, 0, &e) == 0),
       "encrypted volume with a raw key file: %s", e.msg);
    ok(vol_write(p, "v", plain, PLAIN, 0) == 0, "write known plaintext");
    ok(vol_write(p, "v", plain, PLAIN, VOLSZ - PLAIN) == 0, "and again at the end");
    uint8_t *got = malloc(PLAIN);
    ok(vol_read(p, "v", got, PLAIN, VOLSZ - PLAIN) == 0 && memcmp(got, plain, PLAIN) == 0,
       "reads back");
    bs_pool_sync(p, &e);
    ok(find_plaintext(&w, ef) == 0, "no 16-byte run of the plaintext in the encrypted pool");
    ok(get_le32(p->mos_bytes + 8) == 4, "directory version 4 once encryption is used");
    bs_pool_export(p, false, &e);
    ok(find_plaintext(&w, ef) == 0, "none after export either");
    p = reimport(NULL, ef);
    memset(got, 0, PLAIN);
    ok(p && vol_read(p, "v", got, PLAIN, 0) == 0 && memcmp(got, plain, PLAIN) == 0,
       "import auto-loads the file:// key; data intact");
    ok((berr_clear(&e), bs_pool_check(p, &e) == 0), "pool check: %s", e.msg);
    bs_pool_export(p, false, &e);
    free(got);
    free(w.tab);
}

static void test_keys(const uint8_t *plain, const uint8_t *rawkey)
{
    struct berr e = {0};
    const char *f = tmp_path("keys.img");
    bs_pool *p = new_pool(f, NULL);
    const char pass[] = "correct horse battery staple";
    ok((berr_clear(&e), create_vol(p, "pv", BS_KEYFORMAT_PASSPHRASE, "prompt", NULL, 0, &e) == -EINVAL &&
           strstr(e.msg, "prompt")),
       "prompt without a passphrase refused: %s", e.msg);
    ok((berr_clear(&e), create_vol(p, "pv", BS_KEYFORMAT_PASSPHRASE, "prompt", "short", 5, &e) == -EINVAL),
       "short passphrase refused: %s", e.msg);
    ok(create_vol(p, "pv", BS_KEYFORMAT_PASSPHRASE, "prompt", pass, strlen(pass), &e) == 0,
       "passphrase volume");
    ok((berr_clear(&e), create_vol(p, "mf", BS_KEYFORMAT_RAW, file_url(tmp_path("nope.key")), NULL, 0, &e) ==
               -ENOENT && strstr(e.msg, "nope.key")),
       "missing key file named: %s", e.msg);
    ok(vol_write(p, "pv", plain, 65536, 0) == 0, "write");
    struct bs_vol_props vp;
    ok(bs_vol_get(p, "pv", &vp, &e) == 0 && vp.encrypted && vp.keyloaded && vp.keyslots == 1 &&
           vp.keyformat == BS_KEYFORMAT_PASSPHRASE && strcmp(vp.keylocation, "prompt") == 0,
       "properties: encrypted, loaded, 1 slot, passphrase, prompt");
    /* more slots: a raw key, a hex key */
    struct bs_key raw = { .format = BS_KEYFORMAT_RAW, .data = rawkey, .len = 32 };
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", rawkey[31 - i]);
    struct bs_key hx = { .format = BS_KEYFORMAT_HEX, .data = hex, .len = 64 };
    ok((berr_clear(&e), bs_key_add(p, "pv", &raw, -1, &e) == 1), "raw key added in slot 1: %s", e.msg);
    ok((berr_clear(&e), bs_key_add(p, "pv", &hx, 5, &e) == 5), "hex key added in slot 5: %s", e.msg);
    ok(bs_key_add(p, "pv", &hx, 5, &e) == -EEXIST, "slot 5 taken");
    struct bs_keyslot_info li[BS_KEYSLOTS_MAX];
    int n = bs_key_list(p, "pv", li, &e);
    ok(n == 3 && li[0].slot == 0 && li[0].format == BS_KEYFORMAT_PASSPHRASE &&
           li[0].kdf == BS_KDF_ARGON2ID && li[0].loaded_by && li[1].slot == 1 &&
           li[1].format == BS_KEYFORMAT_RAW && li[2].slot == 5,
       "list: 3 slots");
    bs_vol *v;
    ok(bs_vol_open(p, "pv", &v, &e) == 0, "open");
    ok((berr_clear(&e), bs_key_unload(p, "pv", &e) == -EBUSY), "unload refused while open: %s", e.msg);
    bs_vol_close(v);
    ok(bs_snap_create(p, (const char *[]){ "pv@s1" }, 1, &e) == 0, "snapshot");
    {
        /* read the volume so that its plaintext is cached, then unload */
        uint8_t b[16384];
        ok(bs_vol_open(p, "pv", &v, &e) == 0 && bs_vol_pread(v, b, sizeof b, 0) == 0, "read");
        bs_vol_close(v);
    }
    struct bs_pool_stats cs0, cs1;
    bs_pool_stats(p, &cs0);
    ok((berr_clear(&e), bs_key_unload(p, "pv", &e) == 0), "unload: %s", e.msg);
    bs_pool_stats(p, &cs1);
    ok(cs0.cache_bytes > 0 && cs1.cache_bytes < cs0.cache_bytes,
       "unload drops the pool's cached (decrypted) blocks: %llu -> %llu bytes",
       (unsigned long long)cs0.cache_bytes, (unsigned long long)cs1.cache_bytes);
    ok((berr_clear(&e), bs_vol_open(p, "pv", &v, &e) == -EACCES && strstr(e.msg, "key load")),
       "locked volume does not open: %s", e.msg);
    ok(bs_vol_open(p, "pv@s1", &v, &e) == -EACCES, "nor its snapshot");
    ok(bs_vol_get(p, "pv", &vp, &e) == 0 && !vp.keyloaded, "lists as locked");
    struct bs_snap_props sp;
    ok(bs_snap_get(p, "pv@s1", &sp, &e) == 0 && sp.encrypted && !sp.keyloaded,
       "snapshot lists as locked");
    ok(bs_key_add(p, "pv", &raw, -1, &e) == -EACCES, "add needs the key loaded");
    ok((berr_clear(&e), bs_pool_check(p, &e) == 0), "pool check (scrub) works without keys: %s", e.msg);
    /* wrong keys */
    const char wrongp[] = "incorrect horse battery";
    struct bs_key wk = { .data = wrongp, .len = strlen(wrongp) };
    ok((berr_clear(&e), bs_key_load(p, "pv", &wk, &e) == -EACCES && strstr(e.msg, "wrong")),
       "wrong passphrase: %s", e.msg);
    uint8_t other[32];
    memcpy(other, rawkey, 32);
    other[0] ^= 1;
    struct bs_key wr = { .format = BS_KEYFORMAT_RAW, .data = other, .len = 32 };
    ok((berr_clear(&e), bs_key_load(p, "pv", &wr, &e) == -EACCES), "wrong raw key: %s", e.msg);
    ok((berr_clear(&e), bs_key_load(p, "pv", NULL, &e) == -EINVAL && strstr(e.msg, "prompt")),
       "no key for a prompt location: %s", e.msg);
    struct bs_key missing = { .format = BS_KEYFORMAT_RAW,
                              .location = file_url(tmp_path("missing.key")) };
    ok((berr_clear(&e), bs_key_load(p, "pv", &missing, &e) == -ENOENT && strstr(e.msg, "missing.key")),
       "missing key file: %s", e.msg);
    /* the right key in any slot */
    struct bs_key pk = { .data = pass, .len = strlen(pass) };
    const struct bs_key *rights[] = { &pk, &raw, &hx };
    const char *what[] = { "passphrase", "raw", "hex" };
    uint8_t *got = malloc(65536);
    for (int i = 0; i < 3; i++) {
        bool okk = bs_key_load(p, "pv@s1", rights[i], &e) == 0;
        memset(got, 0, 65536);
        okk = okk && vol_read(p, "pv", got, 65536, 0) == 0 && memcmp(got, plain, 65536) == 0;
        ok((berr_clear(&e), okk), "the %s key unlocks (loaded through the snapshot): %s", what[i], e.msg);
        ok(bs_key_load(p, "pv", rights[i], &e) == -EEXIST, "already loaded");
        ok(bs_key_unload(p, "pv", &e) == 0, "unload");
    }
    /* removing a slot makes its key useless */
    ok(bs_key_load(p, "pv", &pk, &e) == 0, "load");
    ok(bs_key_remove(p, "pv", 1, &e) == 0, "remove the raw slot");
    ok(bs_key_remove(p, "pv", 1, &e) == -ENOENT, "gone");
    bs_key_unload(p, "pv", &e);
    ok((berr_clear(&e), bs_key_load(p, "pv", &raw, &e) == -EACCES), "removed key no longer unlocks: %s", e.msg);
    /* change (rewrap): the old passphrase stops working, the new one works */
    ok(bs_key_load(p, "pv", &pk, &e) == 0, "load");
    const char np[] = "new passphrase 2";
    struct bs_key nk = { .data = np, .len = strlen(np), .kdf = fast_kdf };
    int slot = bs_key_change(p, "pv", -1, &nk, &e);
    ok(slot >= 0 && slot != 0, "change the loaded slot: new slot %d", slot);
    n = bs_key_list(p, "pv", li, &e);
    ok(n == 2, "still 2 slots (hex + new)");
    p = reimport(p, f);
    ok(bs_key_load(p, "pv", &pk, &e) == -EACCES, "old passphrase rejected after change");
    ok(bs_key_load(p, "pv", &nk, &e) == 0, "new passphrase works after export/import");
    ok(vol_read(p, "pv@s1", got, 65536, 0) == 0 && memcmp(got, plain, 65536) == 0,
       "data unchanged (rewrap only)");
    /* removing the last slot is refused */
    ok(bs_key_remove(p, "pv", 5, &e) == 0, "remove hex slot");
    ok((berr_clear(&e), bs_key_remove(p, "pv", slot, &e) == -EBUSY), "the last slot stays: %s", e.msg);
    /* a plaintext volume has no keys */
    ok(create_vol(p, "plain", 0, NULL, NULL, 0, &e) == 0, "plain volume");
    ok((berr_clear(&e), bs_key_load(p, "plain", &pk, &e) == -EINVAL), "key load on a plain volume: %s", e.msg);
    /* unload with dirty data: committed first */
    ok(vol_write(p, "pv", plain + 65536, 65536, 65536) == 0, "write");
    ok(bs_key_unload(p, "pv", &e) == 0, "unload");
    ok(bs_key_load(p, "pv", &nk, &e) == 0, "reload");
    ok(vol_read(p, "pv", got, 65536, 65536) == 0 && memcmp(got, plain + 65536, 65536) == 0,
       "data written before the unload is there");
    ok((berr_clear(&e), bs_pool_check(p, &e) == 0), "pool check: %s", e.msg);
    /* without the key: snapshot, clone (locked too), destroy */
    ok(bs_key_unload(p, "pv", &e) == 0, "unload");
    ok((berr_clear(&e), bs_snap_create(p, (const char *[]){ "pv@s2" }, 1, &e) == 0),
       "snapshot of a locked volume: %s", e.msg);
    ok((berr_clear(&e), bs_vol_clone(p, "pv@s2", "pc", NULL, &e) == 0),
       "clone of a locked snapshot: %s", e.msg);
    ok(bs_vol_open(p, "pc", &v, &e) == -EACCES, "the clone is locked as well");
    ok(bs_key_load(p, "pc", &nk, &e) == 0, "its key is the origin's");
    ok(vol_read(p, "pv", got, 65536, 65536) == 0 && memcmp(got, plain + 65536, 65536) == 0,
       "loading through the clone unlocks the origin");
    ok(bs_key_unload(p, "pv", &e) == 0, "unload");
    ok((berr_clear(&e), bs_vol_destroy_ex(p, "pc", 0, &e) == 0), "destroy the locked clone: %s",
       e.msg);
    ok((berr_clear(&e), bs_vol_destroy_ex(p, "pv", BS_DESTROY_RECURSIVE, &e) == 0),
       "destroy the locked volume with its snapshots: %s", e.msg);
    ok((berr_clear(&e), bs_pool_check(p, &e) == 0), "pool check after: %s", e.msg);
    p = reimport(p, f);
    ok(p && get_le32(p->mos_bytes + 8) == 2, "no key records left: directory version 2 again");
    bs_pool_export(p, false, &e);
    free(got);
}

/* The pointer of block blkid of volume name (committed tree). */
static int find_bp(bs_pool *p, const char *name, uint64_t blkid, struct blkptr *bp)
{
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, name);
    struct objdesc od = d->od;
    pthread_mutex_unlock(&p->lock);
    return objtree_lookup(&p->io, &od, blkid, 0, bp, NULL);
}

static uint64_t cksum_errors(bs_pool *p)
{
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    return st.checksum_errors;
}

static void test_tamper(const uint8_t *plain, const uint8_t *rawkey)
{
    struct berr e = {0};
    const char *kf = tmp_path("tamper.key");
    write_file(kf, rawkey, 32);
    const char *f = tmp_path("tamper.img");
    bs_pool *p = new_pool(f, NULL);
    create_vol(p, "v", BS_KEYFORMAT_RAW, file_url(kf), NULL, 0, &e);
    vol_write(p, "v", plain, 4 * BS, 0);
    bs_pool_sync(p, &e);
    struct blkptr bp;
    ok(find_bp(p, "v", 1, &bp) == 0 && (bp.flags & BP_FLAG_ENCRYPTED), "block 1 is encrypted");
    uint64_t at = p->top_hdr[0].data_start + bp.dva[0].offset;
    /* the MAC itself: a pointer whose checksum is right but whose AAD, IV
     * or ciphertext differ */
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, "v");
    pthread_mutex_unlock(&p->lock);
    struct blk_crypt bc;
    struct cbuf *c = NULL;
    ok(blk_read_crypt(&p->io, &bp, BLK_NOCACHE, ds_blk_crypt(d, 1, &bc), &c) == 0 &&
           memcmp(c->data, plain + BS, BS) == 0,
       "direct read decrypts");
    cbuf_unref(c);
    uint64_t e0 = cksum_errors(p);
    ok(blk_read_crypt(&p->io, &bp, BLK_NOCACHE, ds_blk_crypt(d, 2, &bc), &c) == -EIO && !c,
       "the block read as block 2 (moved ciphertext) fails the MAC");
    struct blkptr t = bp;
    t.iv[0] ^= 1;
    ok(blk_read_crypt(&p->io, &t, BLK_NOCACHE, ds_blk_crypt(d, 1, &bc), &c) == -EIO,
       "a changed IV fails the MAC");
    t = bp;
    t.iv[12] = 0; /* claims the pool-local AAD version 1 */
    ok(blk_read_crypt(&p->io, &t, BLK_NOCACHE, ds_blk_crypt(d, 1, &bc), &c) == -EIO,
       "a changed AAD version fails the MAC");
    /* the portable AAD (version 2) does not bind birth: a raw receive stores
     * the block in another txg (blkcrypt.c says why that is safe) */
    t = bp;
    t.birth++;
    ok(bp.iv[12] == 2 &&
           blk_read_crypt(&p->io, &t, BLK_NOCACHE, ds_blk_crypt(d, 1, &bc), &c) == 0 &&
           memcmp(c->data, plain + BS, BS) == 0,
       "a block written now has the portable AAD: another birth txg still decrypts");
    cbuf_unref(c);
    c = NULL;
    ok(blk_read_crypt(&p->io, &bp, BLK_NOCACHE, NULL, &c) == -EIO,
       "an encrypted block read as plaintext is refused");
    /* ciphertext changed and its checksum fixed up (a forged tree) */
    uint8_t *raw = malloc(bp.psize);
    blk_read_raw(&p->io, &bp, raw, bp.psize);
    raw[100] ^= 0x40;
    int fd = open(f, O_RDWR);
    ok(pwrite(fd, raw, bp.psize, (off_t)at) == (ssize_t)bp.psize, "forge the ciphertext");
    t = bp;
    uint8_t sum[32];
    checksum_compute(t.cksum, raw, t.psize, sum);
    memcpy(t.checksum, sum, 16);
    ok(blk_read_crypt(&p->io, &t, BLK_NOCACHE, ds_blk_crypt(d, 1, &bc), &c) == -EIO,
       "forged ciphertext with a matching checksum fails the MAC");
    ok(cksum_errors(p) >= e0 + 5, "every failure counted (%llu)",
       (unsigned long long)(cksum_errors(p) - e0));
    /* bit rot on the device: checksum error through the normal read path */
    bs_pool_export(p, false, &e);
    p = reimport(NULL, f); /* fresh cache */
    e0 = cksum_errors(p);
    uint8_t *got = malloc(4 * BS);
    memset(got, 0x77, 4 * BS);
    int r = vol_read(p, "v", got, BS, BS);
    ok(r == -EIO, "read of the tampered block: EIO (%d)", r);
    ok(cksum_errors(p) > e0, "checksum error counted");
    bool leaked = false;
    for (size_t i = 0; i + 16 <= BS; i++)
        leaked |= memcmp(got + i, plain + BS + i, 16) == 0;
    ok(!leaked, "no plaintext of the tampered block handed out");
    ok(vol_read(p, "v", got, BS, 0) == 0 && memcmp(got, plain, BS) == 0,
       "the other blocks still read");
    /* whole blocks in one request: read as a run straight into the
     * caller's buffer and decrypted there in place (blk_read_blocks) */
    ok(vol_read(p, "v", got, 2 * BS, 2 * BS) == 0 && memcmp(got, plain + 2 * BS, 2 * BS) == 0,
       "blocks 2-3 read as one run decrypt");
    memset(got, 0x77, 4 * BS);
    r = vol_read(p, "v", got, 4 * BS, 0);
    leaked = false;
    for (size_t i = 0; i + 16 <= BS; i++)
        leaked |= memcmp(got + BS + i, plain + BS + i, 16) == 0;
    ok(r == -EIO && !leaked, "the 4 blocks in one request: EIO (%d), no plaintext of the bad one",
       r);
    ok((berr_clear(&e), bs_pool_check(p, &e) == -EILSEQ), "pool check finds it without the key: %s", e.msg);
    close(fd);
    free(raw);
    free(got);
    bs_pool_export(p, true, &e);
}

/* Streams in memory. */
struct sink {
    uint8_t *b;
    size_t *len, cap;
};
static int wr(void *op, const void *buf, size_t n)
{
    struct sink *s = op;
    if (*s->len + n > s->cap)
        return -ENOSPC;
    memcpy(s->b + *s->len, buf, n);
    *s->len += n;
    return 0;
}
struct src {
    uint8_t *b;
    size_t len, *pos;
};
static ssize_t rd(void *op, void *buf, size_t n)
{
    struct src *s = op;
    size_t k = n < s->len - *s->pos ? n : s->len - *s->pos;
    memcpy(buf, s->b + *s->pos, k);
    *s->pos += k;
    return (ssize_t)k;
}

static void test_snap_clone(const uint8_t *plain, const uint8_t *rawkey)
{
    struct berr e = {0};
    const char *kf = tmp_path("sc.key");
    write_file(kf, rawkey, 32);
    /* encryption from the pool's root settings */
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.encryption = true;
    o.keyformat = BS_KEYFORMAT_RAW;
    snprintf(o.keylocation, sizeof o.keylocation, "%s", file_url(kf));
    const char *f = tmp_path("sc.img");
    bs_pool *p = new_pool(f, &o);
    ok(p != NULL, "pool with encryption defaults");
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    ok(vp.encrypted && vp.keyformat == BS_KEYFORMAT_RAW, "volume props inherit them");
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = VOLSZ;
    ok((berr_clear(&e), bs_vol_create(p, &vp, false, &e) == 0), "inherited encrypted volume: %s", e.msg);
    snprintf(vp.name, sizeof vp.name, "u");
    vp.encrypted = false;
    ok(bs_vol_create(p, &vp, false, &e) == 0, "explicitly unencrypted child");
    ok(bs_vol_get(p, "u", &vp, &e) == 0 && !vp.encrypted, "u is plaintext");
    ok(bs_vol_get(p, "v", &vp, &e) == 0 && vp.encrypted, "v is encrypted");
    const uint8_t *a = plain, *b = plain + 65536, *cc = plain + 131072;
    vol_write(p, "v", a, 65536, 0);
    ok(bs_snap_create(p, (const char *[]){ "v@a" }, 1, &e) == 0, "snapshot v@a");
    vol_write(p, "v", b, 65536, 0);
    ok((berr_clear(&e), bs_vol_clone(p, "v@a", "c", NULL, &e) == 0), "clone c of v@a: %s", e.msg);
    ok(bs_vol_get(p, "c", &vp, &e) == 0 && vp.encrypted && vp.keyloaded, "clone shares the key");
    vol_write(p, "c", cc, 16384, 16384);
    uint8_t *got = malloc(65536), *want = malloc(65536);
    for (int round = 0; round < 2; round++) {
        const char *tag = round ? " after import" : "";
        ok(vol_read(p, "v@a", got, 65536, 0) == 0 && memcmp(got, a, 65536) == 0,
           "snapshot reads A%s", tag);
        ok(vol_read(p, "v", got, 65536, 0) == 0 && memcmp(got, b, 65536) == 0,
           "volume reads B%s", tag);
        memcpy(want, a, 65536);
        memcpy(want + 16384, cc, 16384);
        ok(vol_read(p, "c", got, 65536, 0) == 0 && memcmp(got, want, 65536) == 0,
           "clone reads A with its own write%s", tag);
        ok((berr_clear(&e), bs_pool_check(p, &e) == 0), "pool check%s: %s", tag, e.msg);
        p = reimport(p, f);
    }
    /* a plain send of the encrypted snapshot into a pool without the key */
    size_t cap = 8 * MiB, len = 0;
    uint8_t *stream = malloc(cap);
    struct sink sk = { stream, &len, cap };
    ok((berr_clear(&e), bs_send(p, "v@a", NULL, wr, &sk, NULL, &e) == 0), "send v@a: %s", e.msg);
    bool found = false;
    for (size_t i = 0; i + 16 <= len && !found; i++)
        found = memcmp(stream + i, a + 4096, 16) == 0;
    ok(found, "a plain (non-raw) stream carries the plaintext");
    bs_pool *q = new_pool(tmp_path("recv.img"), NULL);
    size_t pos = 0;
    struct src sr = { stream, len, &pos };
    ok((berr_clear(&e), bs_recv(q, "r", NULL, rd, &sr, NULL, &e) == 0), "receive: %s", e.msg);
    ok(vol_read(q, "r", got, 65536, 0) == 0 && memcmp(got, a, 65536) == 0,
       "received copy matches");
    bs_pool_export(q, false, &e);
    /* the key file gone: the pool imports, the volumes stay locked */
    unlink(kf);
    p = reimport(p, f);
    ok(p != NULL, "import without the key file");
    ok(bs_vol_get(p, "v", &vp, &e) == 0 && vp.encrypted && !vp.keyloaded, "v locked");
    ok(bs_vol_get(p, "c", &vp, &e) == 0 && !vp.keyloaded, "its clone locked");
    ok(vol_read(p, "u", got, 4096, 0) == 0, "the plaintext child opens");
    struct bs_key rk = { .format = BS_KEYFORMAT_RAW, .data = rawkey, .len = 32 };
    ok(bs_key_load_all(p, &rk, &e) == 1, "load all with the key given");
    ok(vol_read(p, "c", got, 65536, 0) == 0 && memcmp(got, want, 65536) == 0, "clone reads");
    bs_pool_export(p, false, &e);
    free(stream);
    free(got);
    free(want);
}

/* A power cut at every point of a key change: after import, the old or the
 * new key opens the volume, and the data is intact. */
static void test_crash_change(const uint8_t *plain, const uint8_t *rawkey)
{
    const char *f = tmp_path("crash.img");
    uint8_t newkey[32];
    memcpy(newkey, rawkey, 32);
    newkey[5] ^= 0xff;
    struct bs_key oldk = { .format = BS_KEYFORMAT_RAW, .data = rawkey, .len = 32 };
    struct bs_key newk = { .format = BS_KEYFORMAT_RAW, .data = newkey, .len = 32 };
    int runs = 0, bad = 0, old_only = 0, new_only = 0, both = 0;
    bool completed = false;
    uint8_t *got = malloc(65536);
    for (int n = 1; n < 40 && !completed; n++) {
        struct berr e = {0};
        bs_pool *p = new_pool(f, NULL);
        create_vol(p, "v", BS_KEYFORMAT_RAW, "prompt", rawkey, 32, &e);
        vol_write(p, "v", plain, 65536, 0);
        bs_pool_sync(p, &e);
        char knob[64];
        snprintf(knob, sizeof knob, "torn_write_after=%d", n);
        bs_pool_debug(p, knob, &e);
        int r = bs_key_change(p, "v", 0, &newk, &e);
        completed = r >= 0;
        pool_abandon(p);
        const char *v[] = { f };
        if (bs_pool_import(v, 1, NULL, &p, &e) < 0) {
            bad++;
            diag("run %d: import failed: %s", n, e.msg);
            continue;
        }
        bool o = bs_key_load(p, "v", &oldk, &e) == 0;
        bool data = o && vol_read(p, "v", got, 65536, 0) == 0 && !memcmp(got, plain, 65536);
        if (o)
            bs_key_unload(p, "v", &e);
        bool nw = bs_key_load(p, "v", &newk, &e) == 0;
        data = data || (nw && vol_read(p, "v", got, 65536, 0) == 0 &&
                        !memcmp(got, plain, 65536));
        if ((!o && !nw) || !data || (completed && !nw))
            bad++, diag("run %d: old %d new %d data %d completed %d", n, o, nw, data, completed);
        both += o && nw;
        old_only += o && !nw;
        new_only += !o && nw;
        runs++;
        bs_pool_export(p, true, &e);
    }
    ok(completed, "the change completes once the cut comes late enough");
    ok(bad == 0, "%d power cuts during a key change: old key only %d, both %d, new only %d",
       runs, old_only, both, new_only);
    ok(old_only > 0 && new_only > 0, "cuts hit before and after the commits");
    free(got);
}

/* The directory codec of key records: round trip and hostile variants. */
static void test_mos_keys(const uint8_t *rawkey)
{
    struct mos_dir d = {0};
    struct mos_ds ds = {0};
    struct mos_key k = {0};
    struct user_key *uk;
    struct crypt_key *master;
    user_key_parse(KEYFORMAT_RAW, rawkey, 32, &uk, NULL);
    ok(keyslot_create(&k.slots, uk, NULL, &master, NULL) == 0, "a slot set");
    user_key_free(uk);
    crypt_key_free(master);
    k.id = 1;
    k.guid = 77;
    k.suite = 1;
    k.keyformat = KEYFORMAT_RAW;
    snprintf(k.location, sizeof k.location, "file:///etc/k");
    snprintf(ds.name, sizeof ds.name, "v");
    ds.id = 1;
    ds.key_id = 1;
    ds.volsize = ds.volblocksize = 16384;
    ds.cksum = BS_CHECKSUM_XXH3;
    objdesc_init(&ds.od, 14, 1);
    objdesc_init(&ds.lin.dl, DL_DSHIFT, 0);
    d.next_id = 2;
    d.cksum = BS_CHECKSUM_XXH3;
    d.ds = &ds;
    d.nds = 1;
    d.keys = &k;
    d.nkeys = 1;
    d.def.encryption = 1;
    d.def.keyformat = KEYFORMAT_HEX;
    snprintf(d.def.location, sizeof d.def.location, "prompt");
    uint8_t *b;
    size_t len;
    ok(mos_encode(&d, &b, &len) == 0 && get_le32(b + 8) == 4, "encodes as version 4");
    struct mos_dir o;
    ok(mos_decode(b, len, &o) == 0 && o.nkeys == 1 && o.keys[0].guid == 77 &&
           o.ds[0].key_id == 1 && strcmp(o.keys[0].location, "file:///etc/k") == 0 &&
           o.def.encryption == 1 && o.def.keyformat == KEYFORMAT_HEX &&
           keyslots_count(&o.keys[0].slots) == 1,
       "round trip: key record, key id, defaults");
    mos_dir_free(&o);
    free(b);
    struct { const char *what; int field; } bad[] = {
        { "a key id naming no key", 0 }, { "an unknown suite", 1 },
        { "a bad keylocation", 2 }, { "a key without slots", 3 },
        { "a key id beyond next id", 4 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mos_key kk = k;
        struct mos_ds dd = ds;
        d.keys = &kk;
        d.ds = &dd;
        switch (bad[i].field) {
        case 0: dd.key_id = 5; d.next_id = 6; break;
        case 1: kk.suite = 2; break;
        case 2: snprintf(kk.location, sizeof kk.location, "http://x"); break;
        case 3: memset(&kk.slots, 0, sizeof kk.slots); break;
        case 4: kk.id = dd.key_id = 9; break;
        }
        ok(mos_encode(&d, &b, &len) == 0 && mos_decode(b, len, &o) == -EILSEQ,
           "decoder rejects %s", bad[i].what);
        free(b);
        d.next_id = 2;
    }
}

static void test_mos_compat(void)
{
    struct berr e = {0};
    bs_pool *p = new_pool(tmp_path("v2.img"), NULL);
    create_vol(p, "v", 0, NULL, NULL, 0, &e);
    ok(get_le32(p->mos_bytes + 8) == 2, "a pool without encryption keeps directory version 2");
    bs_pool_export(p, false, &e);
}

int main(void)
{
    uint64_t seed = 0x5eed;
    uint8_t *plain = malloc(PLAIN), rawkey[32];
    random_bytes(plain, PLAIN, &seed);
    /* half compressible text, so the compressed path is covered too */
    for (size_t i = PLAIN / 2; i < PLAIN; i++)
        plain[i] = (uint8_t)("berth encrypts this known plaintext "[i % 36] + (i / 4096) % 7);
    for (size_t i = 0; i + 16 <= PLAIN; i++)
        if (!plain[i] && !plain[i + 7] && !plain[i + 15])
            plain[i + 7] = 1;
    random_bytes(rawkey, 32, &seed);
    test_mos_compat();
    test_mos_keys(rawkey);
    test_ciphertext_only(plain, rawkey);
    test_keys(plain, rawkey);
    test_tamper(plain, rawkey);
    test_snap_clone(plain, rawkey);
    test_crash_change(plain, rawkey);
    free(plain);
    tmp_cleanup();
    return done_testing();
}
