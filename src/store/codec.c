/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Per-block compression and checksums, and the user-facing names of both.
 *
 * Compression follows the 1/8 rule (docs/FORMAT.md section 5): a block is
 * stored compressed only if that saves at least len/8 bytes, so the
 * compressors are given exactly that much output room and simply fail on
 * anything that would not pay off — no wasted work past the threshold.
 * Blocks of 8 KiB and more are first sampled (compress_probe_incompressible):
 * one that clearly cannot pay off skips the compressor entirely, which on
 * incompressible data (already compressed or encrypted guest data, fio's
 * buffers) costs 2.5-7x less than letting lz4 find out.
 *
 * On top of that a dataset keeps an estimate of how much compression
 * saves on its blocks (struct comp_hist, compress_block_hist): a stream
 * whose compression saves less than 1/16 of its bytes is only sampled every
 * COMP_PROBE_EVERY-th block, like btrfs's per-inode "nocompress" but with
 * periodic retries, so a volume full of encrypted or media data, or one
 * where only a few blocks compress, stops paying for the probe, while a
 * volume whose data turns compressible is noticed within a few tries.  A
 * rate rather than a streak of failures: fio's reused buffers make 5-10 %
 * of the 16K blocks of a random-write run compress (two equal 4K writes in
 * one block), which broke every streak and kept the probe and lz4 at ~15 %
 * of the server's CPU for 1-4 % of space.
 *
 * Decompression treats its input as hostile: it must yield exactly lsize
 * bytes, never write past dst, and any other outcome is -EILSEQ.
 *
 * zstd contexts are expensive to create, so each thread keeps one
 * compression and one decompression context in thread-local storage; a
 * pthread key destructor frees them when the thread exits. */
#include "store/codec.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <openssl/sha.h>
#include <xxhash.h>
#ifdef BERTH_HAVE_XXH3_DISPATCH
#define XXH_DISPATCH_DISABLE_REPLACE /* name the dispatcher explicitly */
#include <xxh_x86dispatch.h>
#endif
#include <zstd.h>
#include <zstd_errors.h>

#include "common/le.h"

#define ZSTD_DEFAULT_LEVEL 3
#define ZSTD_MAX_USER_LEVEL 19

/* ---- per-thread zstd contexts ---- */

struct zstd_tls {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
};

static pthread_key_t zstd_key;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;
static int zstd_key_ok;

static void zstd_tls_free(void *p)
{
    struct zstd_tls *t = p;
    if (!t)
        return;
    ZSTD_freeCCtx(t->cctx);
    ZSTD_freeDCtx(t->dctx);
    free(t);
}

static void zstd_key_init(void)
{
    zstd_key_ok = pthread_key_create(&zstd_key, zstd_tls_free) == 0;
}

static struct zstd_tls *zstd_tls_get(void)
{
    pthread_once(&zstd_once, zstd_key_init);
    if (!zstd_key_ok)
        return NULL;
    struct zstd_tls *t = pthread_getspecific(zstd_key);
    if (t)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (pthread_setspecific(zstd_key, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

static ZSTD_CCtx *tls_cctx(void)
{
    struct zstd_tls *t = zstd_tls_get();
    if (t && !t->cctx)
        t->cctx = ZSTD_createCCtx();
    return t ? t->cctx : NULL;
}

static ZSTD_DCtx *tls_dctx(void)
{
    struct zstd_tls *t = zstd_tls_get();
    if (t && !t->dctx)
        t->dctx = ZSTD_createDCtx();
    return t ? t->dctx : NULL;
}

/* ---- incompressibility probe ----
 *
 * lz4 on 16 KiB of random bytes takes ~2-3 us, but on data that is random
 * except for a few zero bytes here and there (fio's default buffers: a
 * 64-byte header with zeroes every 512 bytes, and skewed byte values) it
 * takes ~18 us: it finds many short matches that never add up to the 1/8
 * it needs.  zstd-3 takes longer still.  The probe copies PROBE_CHUNKS
 * chunks of PROBE_CHUNK contiguous bytes spread over the block (2 KiB, 1/8
 * of a 16K block; contiguous so that the hardware prefetcher helps, the
 * block is usually cold) into a sample and answers "surely incompressible"
 * when (~0.7 us on random bytes, ~3 us on fio's buffers):
 *
 *  - lz4 cannot save 1/PROBE_LZ4_SAVE of the sample.  Runs and repeats
 *    inside the block show up inside the sample too; chunk i starts at
 *    i * stride + jitter[i % 4], so chunks half the block apart sample the
 *    same relative offsets and a block made of repeated halves or quarters
 *    compresses in the sample as well.  The sample lacks context (matches
 *    to bytes outside it), so it compresses worse than the block: the bar
 *    is half the 1/8 the block must reach.  The four jitters are not
 *    multiples of each other, so records of a power-of-two size cannot
 *    alias with the chunks;
 *  - and, for zstd (which also entropy-codes), the sample's byte histogram
 *    has a collision probability sum p_i^2 (unbiased estimate
 *    sum c(c-1) / (S(S-1))) below 1/PROBE_COLL, i.e. Renyi-2 entropy above
 *    7.2 bits per byte.  Shannon entropy is at least that, so the entropy
 *    coder saves at most 0.8/8 < 1/8 of such a block.
 *
 * A wrong "incompressible" only costs space (the block is stored raw, as
 * the 1/8 rule allows); it never changes what a read returns. */
#define PROBE_MIN_LEN 8192u
#define PROBE_CHUNKS 16u
#define PROBE_CHUNK 128u
#define PROBE_SAMPLE (PROBE_CHUNKS * PROBE_CHUNK)
#define PROBE_LZ4_SAVE 16u
#define PROBE_COLL 147u

/* The byte distribution of the sample is close enough to uniform that no
 * entropy coder could save 1/8. */
static bool sample_flat(const uint8_t *p)
{
    /* four histograms so that runs of one byte value do not serialise on
     * one counter */
    uint16_t h[4][256];
    memset(h, 0, sizeof h);
    for (size_t k = 0; k < PROBE_SAMPLE; k += 4) {
        h[0][p[k]]++;
        h[1][p[k + 1]]++;
        h[2][p[k + 2]]++;
        h[3][p[k + 3]]++;
    }
    const uint64_t S = PROBE_SAMPLE;
    uint64_t coll = 0;
    for (unsigned b = 0; b < 256; b++) {
        uint64_t c = (uint64_t)h[0][b] + h[1][b] + h[2][b] + h[3][b];
        coll += c * (c - (c > 0));
    }
    return coll * PROBE_COLL < S * (S - 1);
}

bool compress_probe_incompressible(enum bs_compress c, const void *src, size_t len)
{
    if (len < PROBE_MIN_LEN || (c != BS_COMPRESS_LZ4 && c != BS_COMPRESS_ZSTD))
        return false;
    const uint8_t *p = src;
    const size_t stride = len / PROBE_CHUNKS; /* >= 512 */
    const size_t room = stride - PROBE_CHUNK;
    const size_t jitter[4] = {(room * 3 / 16) & ~(size_t)7, (room * 7 / 16) & ~(size_t)7,
                              (room * 10 / 16) & ~(size_t)7, (room * 13 / 16) & ~(size_t)7};
    uint8_t sample[PROBE_SAMPLE], out[PROBE_SAMPLE];
    for (size_t i = 0; i < PROBE_CHUNKS; i++)
        memcpy(sample + i * PROBE_CHUNK, p + i * stride + jitter[i % 4], PROBE_CHUNK);
    if (c == BS_COMPRESS_ZSTD && !sample_flat(sample))
        return false;
    int cap = (int)(PROBE_SAMPLE - PROBE_SAMPLE / PROBE_LZ4_SAVE);
    return LZ4_compress_default((const char *)sample, (char *)out, (int)PROBE_SAMPLE, cap) <= 0;
}

/* ---- compression ---- */

size_t compress_bound(size_t len)
{
    size_t z = ZSTD_compressBound(len);
    size_t l = len <= (size_t)LZ4_MAX_INPUT_SIZE ? (size_t)LZ4_compressBound((int)len) : 0;
    return z > l ? z : l;
}

long compress_block(enum bs_compress c, int level, const void *src, size_t len, void *dst,
                    size_t dstcap)
{
    if (c == BS_COMPRESS_OFF || len == 0)
        return 0;
    /* Output room is capped at the largest size worth keeping: a compressor
     * that runs out of room means "store raw". */
    size_t limit = len - len / 8;
    if (limit > dstcap)
        limit = dstcap;
    if (compress_probe_incompressible(c, src, len))
        return 0;

    if (c == BS_COMPRESS_LZ4) {
        if (len > (size_t)LZ4_MAX_INPUT_SIZE)
            return 0;
        int cap = limit > INT_MAX ? INT_MAX : (int)limit;
        int r = LZ4_compress_default(src, dst, (int)len, cap);
        return r > 0 && (size_t)r <= limit ? r : 0;
    }
    if (c == BS_COMPRESS_ZSTD) {
        if (level == 0)
            level = ZSTD_DEFAULT_LEVEL;
        if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
            return -EINVAL;
        ZSTD_CCtx *cctx = tls_cctx();
        if (!cctx)
            return -ENOMEM;
        size_t r = ZSTD_compressCCtx(cctx, dst, limit, src, len, level);
        if (ZSTD_isError(r)) {
            if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
                return 0;
            return -EIO;
        }
        return r <= limit ? (long)r : 0;
    }
    return -EINVAL;
}

long compress_block_hist(enum bs_compress c, int level, const void *src, size_t len, void *dst,
                         size_t dstcap, struct comp_hist *h)
{
    if (!h || c == BS_COMPRESS_OFF || len == 0)
        return compress_block(c, level, src, len, dst, dstcap);
    bool skip = atomic_load_explicit(&h->skip, memory_order_relaxed);
    unsigned gap = 0;
    if (skip) {
        /* unsigned arithmetic: the tick may wrap */
        unsigned t = atomic_fetch_add_explicit(&h->tick, 1, memory_order_relaxed);
        unsigned next = atomic_load_explicit(&h->next, memory_order_relaxed);
        if ((int)(t - next) < 0)
            return 0;
        gap = atomic_load_explicit(&h->gap, memory_order_relaxed);
        if (gap < COMP_PROBE_EVERY)
            gap = COMP_PROBE_EVERY;
        atomic_store_explicit(&h->next, t + gap, memory_order_relaxed);
    }
    long r = compress_block(c, level, src, len, dst, dstcap);
    if (r < 0)
        return r;
    if (skip) /* the back-off of COMP_PROBE_EVERY_MAX */
        atomic_store_explicit(&h->gap, r > 0                            ? COMP_PROBE_EVERY
                                       : gap * 2 > COMP_PROBE_EVERY_MAX ? COMP_PROBE_EVERY_MAX
                                                                        : gap * 2,
                              memory_order_relaxed);
    /* unsaved += (sample - unsaved) / 2^shift, the sample being the
     * fraction of this block not saved (1 when stored raw) */
    int64_t sample = (int64_t)COMP_HIST_ONE;
    if (r > 0)
        sample = (int64_t)(((uint64_t)r * COMP_HIST_ONE) / len);
    int64_t u = atomic_load_explicit(&h->unsaved, memory_order_relaxed);
    unsigned shift = skip ? COMP_HIST_SKIP_SHIFT : COMP_HIST_SHIFT;
    u += (sample - u) / (1 << shift);
    if (u < 0)
        u = 0;
    if (u > (int64_t)COMP_HIST_ONE)
        u = COMP_HIST_ONE;
    atomic_store_explicit(&h->unsaved, (unsigned)u, memory_order_relaxed);
    uint64_t saved = COMP_HIST_ONE - (uint64_t)u;
    if (!skip && saved < COMP_SKIP_BELOW) {
        atomic_store_explicit(&h->gap, COMP_PROBE_EVERY, memory_order_relaxed);
        atomic_store_explicit(&h->next, atomic_load_explicit(&h->tick, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&h->skip, 1, memory_order_relaxed);
    }
    else if (skip && saved >= COMP_RESUME_AT)
        atomic_store_explicit(&h->skip, 0, memory_order_relaxed);
    return r;
}

int decompress_block(enum bs_compress c, const void *src, size_t psize, void *dst, size_t lsize)
{
    switch (c) {
    case BS_COMPRESS_OFF:
        if (psize != lsize)
            return -EILSEQ;
        memcpy(dst, src, lsize);
        return 0;
    case BS_COMPRESS_LZ4: {
        if (psize == 0 || psize > INT_MAX || lsize > INT_MAX)
            return -EILSEQ;
        int r = LZ4_decompress_safe(src, dst, (int)psize, (int)lsize);
        return r >= 0 && (size_t)r == lsize ? 0 : -EILSEQ;
    }
    case BS_COMPRESS_ZSTD: {
        if (psize == 0)
            return -EILSEQ;
        ZSTD_DCtx *dctx = tls_dctx();
        if (!dctx)
            return -ENOMEM;
        /* One-shot decompression into dst needs no window buffer, so a
         * hostile frame header cannot make us allocate; a frame that would
         * produce more than lsize bytes fails with dstSize_tooSmall. */
        size_t r = ZSTD_decompressDCtx(dctx, dst, lsize, src, psize);
        return !ZSTD_isError(r) && r == lsize ? 0 : -EILSEQ;
    }
    }
    return -EILSEQ;
}

/* ---- checksums ---- */

void xxh3_128(const void *buf, size_t len, uint8_t out[16])
{
#ifdef BERTH_HAVE_XXH3_DISPATCH
    /* the vector kernel this CPU has (meson.build); the same hash */
    XXH128_hash_t h = XXH3_128bits_dispatch(buf, len);
#else
    XXH128_hash_t h = XXH3_128bits(buf, len);
#endif
    put_le64(out, h.low64);
    put_le64(out + 8, h.high64);
}

void sha256(const void *buf, size_t len, uint8_t out[32])
{
    SHA256(buf, len, out);
}

void checksum_compute(enum bs_checksum c, const void *buf, size_t len, uint8_t out[32])
{
    memset(out, 0, 32);
    if (c == BS_CHECKSUM_XXH3)
        xxh3_128(buf, len, out);
    else if (c == BS_CHECKSUM_SHA256)
        sha256(buf, len, out);
}

int checksum_equal(enum bs_checksum c, const uint8_t a[32], const uint8_t b[32])
{
    if (c == BS_CHECKSUM_XXH3)
        return memcmp(a, b, 16) == 0;
    if (c == BS_CHECKSUM_SHA256)
        return memcmp(a, b, 32) == 0;
    return 0;
}

/* ---- names (include/berth/store.h) ---- */

const char *bs_compress_name(enum bs_compress c, int level, char *buf, size_t len)
{
    const char *fixed = NULL;
    switch (c) {
    case BS_COMPRESS_OFF:
        fixed = "off";
        break;
    case BS_COMPRESS_LZ4:
        fixed = "lz4";
        break;
    case BS_COMPRESS_ZSTD:
        if (level == 0 || level == ZSTD_DEFAULT_LEVEL)
            fixed = "zstd";
        break;
    default:
        fixed = "unknown";
        break;
    }
    if (!buf || len == 0)
        return fixed ? fixed : "zstd";
    if (fixed)
        snprintf(buf, len, "%s", fixed);
    else
        snprintf(buf, len, "zstd-%d", level);
    return buf;
}

static int parse_zstd_level(const char *s, int *level)
{
    /* Strict decimal 1..19: no sign, no spaces, no leading zeros games. */
    int v = 0;
    if (!*s || *s == '0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > ZSTD_MAX_USER_LEVEL)
            return -1;
    }
    *level = v;
    return 0;
}

int bs_compress_parse(const char *s, enum bs_compress *c, int *level, struct berr *err)
{
    int lvl = 0;
    if (!s)
        s = "";
    if (strcmp(s, "lz4") == 0 || strcmp(s, "on") == 0) {
        *c = BS_COMPRESS_LZ4;
    } else if (strcmp(s, "off") == 0) {
        *c = BS_COMPRESS_OFF;
    } else if (strcmp(s, "zstd") == 0) {
        *c = BS_COMPRESS_ZSTD;
        lvl = ZSTD_DEFAULT_LEVEL;
    } else if (strncmp(s, "zstd-", 5) == 0 && parse_zstd_level(s + 5, &lvl) == 0) {
        *c = BS_COMPRESS_ZSTD;
    } else {
        return berr_set(err, EINVAL,
                        "invalid compression '%s': use lz4, zstd, zstd-1 .. zstd-19, off "
                        "(on = lz4)",
                        s);
    }
    if (level)
        *level = lvl;
    return 0;
}

const char *bs_checksum_name(enum bs_checksum c)
{
    switch (c) {
    case BS_CHECKSUM_XXH3:
        return "xxh3";
    case BS_CHECKSUM_SHA256:
        return "sha256";
    }
    return "unknown";
}

int bs_checksum_parse(const char *s, enum bs_checksum *c, struct berr *err)
{
    if (!s)
        s = "";
    if (strcmp(s, "xxh3") == 0 || strcmp(s, "on") == 0)
        *c = BS_CHECKSUM_XXH3;
    else if (strcmp(s, "sha256") == 0)
        *c = BS_CHECKSUM_SHA256;
    else
        return berr_set(err, EINVAL, "invalid checksum '%s': use xxh3 or sha256 (on = xxh3)", s);
    return 0;
}
