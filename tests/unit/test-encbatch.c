/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encrypted leaves written in batches (issue 6, performance): a txg writes
 * the data blocks of an encrypted volume through blk_write_batch like a
 * plaintext one (one allocation and one pwritev per run of up to
 * BLK_BATCH_MAX blocks), each block sealed on its own.  Proves, for a
 * batch-sized run of blocks written in one txg (random, compressible and
 * all-zero blocks mixed): far fewer device writes than blocks; every block
 * encrypted with its own IV (none shared, in that txg or with a rewrite in
 * the next); it reads back with the key (after an import, through the
 * volume); flipping a byte of any one block of the batch, or putting one
 * block's ciphertext in another's place, is EIO for that block only; no
 * 16-byte run of the plaintext is anywhere in the pool file; a raw send of
 * it stores the sealed blocks in another pool as they came (batched there
 * too) and reads back byte for byte there once the key is loaded. */
#include <fcntl.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/objtree.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 16384u
/* With the default two sync threads a txg gives each leaf job
 * njobs / (2 * threads) leaves, at most BLK_BATCH_MAX: 4 * BLK_BATCH_MAX
 * leaves make full batches. */
#define NBLK (4 * BLK_BATCH_MAX)
#define VOLSZ (2 * NBLK * (uint64_t)BS)

static const uint8_t rawkey[32] = "encbatch-key-0123456789abcdefghi";
static char keyurl[600];

static bool is_zero_blk(uint64_t b)
{
    return b % 8 == 3; /* holes in the middle of the batch */
}

/* The plaintext: random blocks, compressible ones (every fourth) and
 * all-zero ones; no byte of a non-zero block is 0 (find_plaintext skips
 * windows of zeros). */
static void make_plain(uint8_t *plain, uint64_t *seed)
{
    for (uint64_t b = 0; b < NBLK; b++) {
        uint8_t *p = plain + b * BS;
        if (is_zero_blk(b)) {
            memset(p, 0, BS);
            continue;
        }
        if (b % 4 == 1) {
            for (size_t i = 0; i < BS; i++)
                p[i] = (uint8_t)("a batch of sealed blocks, each its own IV "[i % 42] + b % 5);
            continue;
        }
        random_bytes(p, BS, seed);
        for (size_t i = 0; i < BS; i++)
            p[i] |= 1;
    }
}

/* ---- searching the pool file for plaintext ---- */

#define TAB_BITS 24
struct windows {
    const uint8_t *plain;
    uint32_t *tab; /* offset + 1 of a distinct 16-byte window, 0 empty */
};

static uint64_t h16(const uint8_t *b)
{
    uint64_t a, c;
    memcpy(&a, b, 8);
    memcpy(&c, b + 8, 8);
    return (a * 0x9e3779b97f4a7c15ULL) ^ (c * 0xc2b2ae3d27d4eb4fULL);
}

static size_t slot_of(const struct windows *w, const uint8_t *b, bool *found)
{
    size_t s = h16(b) >> (64 - TAB_BITS);
    for (; w->tab[s]; s = (s + 1) & ((1u << TAB_BITS) - 1))
        if (memcmp(w->plain + w->tab[s] - 1, b, 16) == 0) {
            *found = true;
            return s;
        }
    *found = false;
    return s;
}

static void windows_init(struct windows *w, const uint8_t *plain, size_t len)
{
    w->plain = plain;
    w->tab = calloc(1u << TAB_BITS, sizeof *w->tab);
    for (size_t i = 0; i + 16 <= len; i++) {
        if (is_zero_blk(i / BS) || is_zero_blk((i + 15) / BS))
            continue;
        bool found;
        size_t s = slot_of(w, plain + i, &found);
        if (!found) /* repeated windows (compressible blocks) once */
            w->tab[s] = (uint32_t)i + 1;
    }
}

/* Offsets of the file where some 16-byte run of the plaintext is. */
static long find_plaintext(const struct windows *w, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    fstat(fd, &st);
    uint8_t *buf = malloc(1 << 20);
    long hits = 0;
    for (off_t at = 0; at < st.st_size; at += (1 << 20) - 15) {
        ssize_t n = pread(fd, buf, 1 << 20, at);
        for (ssize_t i = 0; i + 16 <= n; i++) {
            if (!buf[i] && !buf[i + 7] && !buf[i + 15])
                continue;
            bool found;
            slot_of(w, buf + i, &found);
            hits += found;
        }
        if (n < (1 << 20))
            break;
    }
    free(buf);
    close(fd);
    return hits;
}

/* ---- helpers ---- */

static bs_pool *new_pool(const char *file, const char *name)
{
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.force = true;
    const char *v[] = { file };
    bs_pool *p = NULL;
    struct berr e = {0};
    if (bs_pool_create(name, v, 1, 64 * MiB, &o, &p, &e) < 0)
        diag("pool create: %s", e.msg);
    return p;
}

static bs_pool *reimport(bs_pool *p, const char *file)
{
    struct berr e = {0};
    if (p && bs_pool_export(p, false, &e) < 0)
        diag("export: %s", e.msg);
    const char *v[] = { file };
    bs_pool *q = NULL;
    if (bs_pool_import(v, 1, NULL, &q, &e) < 0)
        diag("import: %s", e.msg);
    return q;
}

static struct ds *find_ds(bs_pool *p, const char *name)
{
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, name);
    pthread_mutex_unlock(&p->lock);
    return d;
}

/* The committed pointers of blocks 0..NBLK-1 of `name`. */
static int get_bps(bs_pool *p, const char *name, struct blkptr *bps)
{
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, name);
    struct objdesc od = d->od;
    pthread_mutex_unlock(&p->lock);
    for (uint64_t b = 0; b < NBLK; b++) {
        int r = objtree_lookup(&p->io, &od, b, 0, &bps[b], NULL);
        if (r < 0)
            return r;
    }
    return 0;
}

static uint64_t dev_writes(bs_pool *p)
{
    return atomic_load(&p->io.top[0].vd->ctr.writes);
}

static uint64_t cksum_errors(bs_pool *p)
{
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    return st.checksum_errors;
}

/* Read block b of volume d directly (no cache) with its key. */
static int read_blk(bs_pool *p, struct ds *d, const struct blkptr *bp, uint64_t b, uint8_t *out)
{
    struct blk_crypt bc;
    struct cbuf *c = NULL;
    int r = blk_read_crypt(&p->io, bp, BLK_NOCACHE, ds_blk_crypt(d, b, &bc), &c);
    if (r == 0) {
        memcpy(out, c->data, BS);
        cbuf_unref(c);
    }
    return r;
}

static uint64_t dev_off(bs_pool *p, const struct blkptr *bp)
{
    return p->top_hdr[0].data_start + bp->dva[0].offset;
}

/* ---- the tests ---- */

static bs_pool *write_batch(const char *file, const uint8_t *plain, struct blkptr *bps)
{
    struct berr e = {0};
    bs_pool *p = new_pool(file, "encb");
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = VOLSZ;
    vp.volblocksize = BS;
    vp.encrypted = true;
    vp.keyformat = BS_KEYFORMAT_RAW;
    snprintf(vp.keylocation, sizeof vp.keylocation, "%s", keyurl);
    ok(p && bs_vol_create(p, &vp, false, &e) == 0, "encrypted volume: %s", e.msg);
    bs_pool_sync(p, &e);
    bs_vol *v = NULL;
    uint64_t w0 = dev_writes(p);
    ok(bs_vol_open(p, "v", &v, &e) == 0 && bs_vol_pwrite(v, plain, NBLK * BS, 0, 0) == 0 &&
           bs_vol_flush(v) == 0,
       "write %u blocks (%u KiB) and flush", NBLK, NBLK * BS / 1024);
    bs_vol_close(v);
    uint64_t writes = dev_writes(p) - w0;
    ok(get_bps(p, "v", bps) == 0, "look up every block pointer");
    size_t stored = 0, holes = 0, encrypted = 0, portable = 0, one_txg = 0;
    for (uint64_t b = 0; b < NBLK; b++) {
        const struct blkptr *bp = &bps[b];
        if (bp_is_hole(bp)) {
            holes += is_zero_blk(b);
            continue;
        }
        stored++;
        encrypted += (bp->flags & BP_FLAG_ENCRYPTED) != 0 && !buf_is_zero(bp->iv, 12);
        portable += bp->iv[BLK_AAD_BYTE] == BLK_AAD_PORTABLE;
        one_txg += bp->birth == bps[0].birth;
    }
    size_t nzero = 0;
    for (uint64_t b = 0; b < NBLK; b++)
        nzero += is_zero_blk(b);
    ok(holes == nzero && stored == NBLK - nzero, "%zu blocks stored, the %zu zero ones are holes",
       stored, holes);
    ok(encrypted == stored && portable == stored,
       "every stored block is encrypted with a non-zero IV and the portable AAD");
    ok(one_txg == stored, "all born in one txg (%llu)", (unsigned long long)bps[0].birth);
    /* one at a time, each stored block was one write of its own */
    ok(writes < stored / 4, "batched: %llu device writes for %zu blocks and the txg's metadata",
       (unsigned long long)writes, stored);
    size_t dup = 0;
    for (uint64_t a = 0; a < NBLK; a++)
        for (uint64_t b = a + 1; b < NBLK; b++)
            if (!bp_is_hole(&bps[a]) && !bp_is_hole(&bps[b]) &&
                memcmp(bps[a].iv, bps[b].iv, CRYPT_IV_LEN) == 0)
                dup++;
    ok(dup == 0, "every block of the batch has its own IV (%zu pairs shared one)", dup);
    return p;
}

static void test_rewrite_ivs(bs_pool *p, const uint8_t *plain, const struct blkptr *old)
{
    /* the same data again in the next txg: new IVs, never an old one */
    struct berr e = {0};
    bs_vol *v = NULL;
    ok(bs_vol_open(p, "v", &v, &e) == 0 && bs_vol_pwrite(v, plain, NBLK * BS, 0, 0) == 0 &&
           bs_vol_flush(v) == 0,
       "the same blocks written again");
    bs_vol_close(v);
    struct blkptr *nb = calloc(NBLK, sizeof *nb);
    ok(get_bps(p, "v", nb) == 0, "look up the new pointers");
    size_t reused = 0, rewritten = 0;
    for (uint64_t a = 0; a < NBLK; a++) {
        if (bp_is_hole(&nb[a]))
            continue;
        rewritten += nb[a].birth > old[a].birth;
        for (uint64_t b = 0; b < NBLK; b++)
            if (!bp_is_hole(&old[b]) && memcmp(nb[a].iv, old[b].iv, CRYPT_IV_LEN) == 0)
                reused++;
    }
    ok(rewritten > 0 && reused == 0, "%zu blocks rewritten in a later txg, no IV of the first "
       "batch used again (%zu)", rewritten, reused);
    free(nb);
}

static void test_read_tamper(bs_pool **pp, const char *file, const uint8_t *plain,
                             const struct blkptr *bps)
{
    bs_pool *p = *pp = reimport(*pp, file); /* cold cache, key loaded from its file */
    int good, eio, wrong;
    vol_compare(p, "v", plain, NBLK * (uint64_t)BS, BS, &good, &eio, &wrong);
    ok(p && good == NBLK && eio == 0 && wrong == 0,
       "after an import every block reads back through the volume (%d good, %d EIO, %d wrong)",
       good, eio, wrong);
    struct ds *d = find_ds(p, "v");
    uint8_t *got = malloc(BS), *raw = malloc(BS);
    int fd = open(file, O_RDWR | O_CLOEXEC);
    size_t tampered = 0, caught = 0, others_ok = 0, restored = 0;
    uint64_t e0 = cksum_errors(p);
    for (uint64_t b = 0; b < NBLK; b++) {
        const struct blkptr *bp = &bps[b];
        if (bp_is_hole(bp))
            continue;
        uint64_t at = dev_off(p, bp);
        uint32_t pos = (uint32_t)((b * 7919) % bp->psize);
        if (pread(fd, raw, bp->psize, (off_t)at) != (ssize_t)bp->psize)
            break;
        uint8_t orig = raw[pos];
        raw[pos] ^= (uint8_t)(1u << (b % 8));
        if (pwrite(fd, raw + pos, 1, (off_t)(at + pos)) != 1)
            break;
        tampered++;
        caught += read_blk(p, d, bp, b, got) == -EIO;
        /* its neighbours in the batch are untouched */
        bool fine = true;
        for (int dlt = -1; dlt <= 1; dlt += 2) {
            uint64_t nbk = b + (uint64_t)(int64_t)dlt;
            if (nbk >= NBLK || bp_is_hole(&bps[nbk]))
                continue;
            fine = fine && read_blk(p, d, &bps[nbk], nbk, got) == 0 &&
                   memcmp(got, plain + nbk * BS, BS) == 0;
        }
        others_ok += fine;
        raw[pos] = orig;
        if (pwrite(fd, raw + pos, 1, (off_t)(at + pos)) == 1 && read_blk(p, d, bp, b, got) == 0 &&
            memcmp(got, plain + b * BS, BS) == 0)
            restored++;
    }
    ok(tampered > 0 && caught == tampered,
       "a flipped bit in any one block of the batch is EIO (%zu of %zu)", caught, tampered);
    ok(others_ok == tampered, "its neighbours still read right every time");
    ok(restored == tampered, "and it reads right again once restored");
    ok(cksum_errors(p) >= e0 + tampered, "every failure counted");

    /* one block's ciphertext in the place of another of the same size */
    uint64_t x = NBLK, y = 0;
    for (uint64_t b = 0; b < NBLK && !y; b++) {
        if (bp_is_hole(&bps[b]) || bps[b].comp != BS_COMPRESS_OFF)
            continue;
        if (x == NBLK)
            x = b;
        else
            y = b;
    }
    uint8_t *rx = malloc(BS), *ry = malloc(BS);
    bool swapped = y && pread(fd, rx, BS, (off_t)dev_off(p, &bps[x])) == BS &&
                   pread(fd, ry, BS, (off_t)dev_off(p, &bps[y])) == BS &&
                   pwrite(fd, rx, BS, (off_t)dev_off(p, &bps[y])) == BS;
    ok(swapped && read_blk(p, d, &bps[y], y, got) == -EIO,
       "block %llu's ciphertext in block %llu's place: EIO", (unsigned long long)x,
       (unsigned long long)y);
    /* and through the volume after an import (no cached plaintext) */
    close(fd);
    p = *pp = reimport(p, file);
    vol_compare(p, "v", plain, NBLK * (uint64_t)BS, BS, &good, &eio, &wrong);
    ok(p && good == NBLK - 1 && eio == 1 && wrong == 0,
       "through the volume: only that block fails (%d good, %d EIO, %d wrong)", good, eio, wrong);
    fd = open(file, O_RDWR | O_CLOEXEC);
    ok(pwrite(fd, ry, BS, (off_t)dev_off(p, &bps[y])) == BS, "put it back");
    close(fd);
    p = *pp = reimport(p, file);
    vol_compare(p, "v", plain, NBLK * (uint64_t)BS, BS, &good, &eio, &wrong);
    ok(p && good == NBLK, "all good again (%d)", good);
    free(rx);
    free(ry);
    free(got);
    free(raw);
}

/* ---- raw send into another pool ---- */

struct mstream {
    uint8_t *b;
    size_t len, cap, pos;
};

static int mwrite(void *opaque, const void *buf, size_t len)
{
    struct mstream *m = opaque;
    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2;
        m->b = realloc(m->b, m->cap);
    }
    memcpy(m->b + m->len, buf, len);
    m->len += len;
    return 0;
}

static ssize_t mread(void *opaque, void *buf, size_t len)
{
    struct mstream *m = opaque;
    size_t n = MIN(len, m->len - m->pos);
    memcpy(buf, m->b + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static void test_raw_send(bs_pool *p, const char *dfile, const uint8_t *plain,
                          const struct windows *w)
{
    struct berr e = {0};
    const char *n[] = { "v@s" };
    ok(bs_snap_create(p, n, 1, &e) == 0, "snapshot v@s: %s", e.msg);
    struct blkptr *sb = calloc(NBLK, sizeof *sb), *rb = calloc(NBLK, sizeof *rb);
    ok(get_bps(p, "v@s", sb) == 0, "the sender's pointers");
    ok(bs_key_unload(p, "v", &e) == 0, "sender's key unloaded: %s", e.msg);
    struct mstream m = {0};
    struct bs_send_opts so = { .raw = true };
    int r = bs_send(p, "v@s", &so, mwrite, &m, NULL, &e);
    ok(r == 0, "raw send of the locked snapshot: %zu bytes %s", m.len, e.msg);
    bs_pool *q = new_pool(dfile, "encr");
    uint64_t w0 = q ? dev_writes(q) : 0;
    struct bs_recv_opts ro = {0};
    ok(q && bs_recv(q, "r", &ro, mread, &m, NULL, &e) == 0, "raw receive: %s", e.msg);
    uint64_t writes = q ? dev_writes(q) - w0 : 0;
    free(m.b);
    ok(get_bps(q, "r@s", rb) == 0, "the receiver's pointers");
    size_t stored = 0, as_came = 0;
    for (uint64_t b = 0; b < NBLK; b++) {
        if (bp_is_hole(&sb[b]))
            continue;
        stored++;
        as_came += (rb[b].flags & BP_FLAG_ENCRYPTED) && rb[b].psize == sb[b].psize &&
                   memcmp(rb[b].iv, sb[b].iv, 16) == 0 &&
                   memcmp(rb[b].checksum + 16, sb[b].checksum + 16, 16) == 0 &&
                   rb[b].dva[2].offset == sb[b].dva[2].offset;
    }
    ok(as_came == stored, "every sealed block stored as it came (IV, salt, MAC): %zu of %zu",
       as_came, stored);
    ok(writes < stored / 2, "received in batches too: %llu device writes for %zu blocks",
       (unsigned long long)writes, stored);
    struct bs_key k = { .location = keyurl };
    ok(bs_key_load(q, "r", &k, &e) == 0, "key loaded on the receiver: %s", e.msg);
    int good, eio, wrong;
    vol_compare(q, "r", plain, NBLK * (uint64_t)BS, BS, &good, &eio, &wrong);
    ok(good == NBLK && eio == 0 && wrong == 0,
       "the received copy reads back byte for byte (%d good, %d EIO, %d wrong)", good, eio,
       wrong);
    vol_compare(q, "r@s", plain, NBLK * (uint64_t)BS, BS, &good, &eio, &wrong);
    ok(good == NBLK, "and so does its snapshot r@s");
    bs_pool_export(q, false, &e);
    ok(find_plaintext(w, dfile) == 0, "no 16-byte run of the plaintext in the receiver's file");
    free(sb);
    free(rb);
}

int main(void)
{
    uint64_t seed = 0xba7c4;
    uint8_t *plain = malloc(NBLK * (size_t)BS);
    make_plain(plain, &seed);
    const char *kf = tmp_path("k.raw");
    FILE *f = fopen(kf, "w");
    fwrite(rawkey, 1, 32, f);
    fclose(f);
    snprintf(keyurl, sizeof keyurl, "file://%s", kf);
    struct windows w;
    windows_init(&w, plain, NBLK * (size_t)BS);

    const char *file = tmp_path("src.img");
    struct blkptr *bps = calloc(NBLK, sizeof *bps);
    bs_pool *p = write_batch(file, plain, bps);
    struct berr e = {0};
    bs_pool_sync(p, &e);
    ok(find_plaintext(&w, file) == 0, "no 16-byte run of the plaintext in the pool file");
    test_read_tamper(&p, file, plain, bps);
    ok((berr_clear(&e), bs_pool_check(p, &e) == 0), "pool check: %s", e.msg);
    test_raw_send(p, tmp_path("dst.img"), plain, &w);
    /* after the send, which needs the first batch as written */
    struct bs_key k = { .location = keyurl };
    ok(bs_key_load(p, "v", &k, &e) == 0, "sender's key loaded again: %s", e.msg);
    test_rewrite_ivs(p, plain, bps);
    bs_pool_close(p);
    free(bps);
    free(w.tab);
    free(plain);
    tmp_cleanup();
    return done_testing();
}
