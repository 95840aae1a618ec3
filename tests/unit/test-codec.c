/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/codec.c: the 1/8 compression rule, hostile
 * decompression input, checksum known answers, and the property names. */
#include "store/codec.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static void fill_text(uint8_t *p, size_t n)
{
    static const char w[] = "berth stores blocks copy-on-write with checksums; ";
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)w[i % (sizeof(w) - 1)];
}

static void test_roundtrip(enum bs_compress c, int level, const char *name)
{
    size_t len = 16384;
    uint8_t *src = malloc(len), *dst = malloc(compress_bound(len)), *out = malloc(len);
    fill_text(src, len);
    long p = compress_block(c, level, src, len, dst, compress_bound(len));
    ok(p > 0 && (size_t)p <= len - len / 8, "%s: compressible text kept (%ld bytes)", name, p);
    ok(decompress_block(c, dst, (size_t)p, out, len) == 0 && memcmp(src, out, len) == 0,
       "%s: round trip", name);
    /* wrong lsize, truncated input, garbage: all -EILSEQ, never a crash */
    ok(decompress_block(c, dst, (size_t)p, out, len - 1) == -EILSEQ, "%s: smaller lsize rejected",
       name);
    uint8_t *big = malloc(len + 1);
    ok(decompress_block(c, dst, (size_t)p, big, len + 1) == -EILSEQ, "%s: larger lsize rejected",
       name);
    free(big);
    int bad = 0;
    for (size_t cut = 0; cut < (size_t)p; cut += 1 + (size_t)p / 50)
        bad += decompress_block(c, dst, cut, out, len) == -EILSEQ;
    ok(bad == (int)(((size_t)p - 1) / (1 + (size_t)p / 50)) + 1, "%s: every truncation rejected",
       name);
    int crashes_or_ok = 0;
    for (int i = 0; i < 200; i++) {
        uint8_t junk[512];
        fill_random(junk, sizeof junk, (uint64_t)i * 7919 + 1);
        crashes_or_ok += decompress_block(c, junk, sizeof junk, out, len) == 0;
    }
    ok(crashes_or_ok == 0, "%s: random garbage never decodes to lsize", name);
    /* random data does not compress by 1/8: stored raw */
    fill_random(src, len, 42);
    ok(compress_block(c, level, src, len, dst, compress_bound(len)) == 0,
       "%s: random data stored raw", name);
    free(src);
    free(dst);
    free(out);
}

static void test_threshold(void)
{
    /* Data that compresses to just about 1/8: half random, half zeros with
     * a varying split decides keep-or-raw exactly at len - len/8. */
    size_t len = 4096;
    uint8_t src[4096], dst[8192];
    int kept_ok = 1;
    for (size_t rnd = 3200; rnd <= 4000; rnd += 40) {
        memset(src, 0, len);
        fill_random(src, rnd, rnd);
        long p = compress_block(BS_COMPRESS_LZ4, 0, src, len, dst, sizeof dst);
        if (p < 0 || (p > 0 && (size_t)p > len - len / 8))
            kept_ok = 0;
    }
    ok(kept_ok, "lz4: a kept result is never above len - len/8");
    memset(src, 0, len);
    ok(compress_block(BS_COMPRESS_OFF, 0, src, len, dst, sizeof dst) == 0, "off: always raw");
    ok(compress_block(BS_COMPRESS_ZSTD, 99, src, len, dst, sizeof dst) == -EINVAL,
       "zstd level 99 rejected");
    ok(compress_block((enum bs_compress)7, 0, src, len, dst, sizeof dst) == -EINVAL,
       "unknown compression rejected");
    ok(decompress_block((enum bs_compress)7, src, 10, dst, 10) == -EILSEQ,
       "unknown compression cannot decode");
    ok(decompress_block(BS_COMPRESS_OFF, src, 10, dst, 11) == -EILSEQ, "off with psize != lsize");
    ok(decompress_block(BS_COMPRESS_LZ4, src, 0, dst, 10) == -EILSEQ, "lz4 empty input");
    ok(decompress_block(BS_COMPRESS_ZSTD, src, 0, dst, 10) == -EILSEQ, "zstd empty input");
}

static void test_probe(void)
{
    size_t len = 16384;
    uint8_t *src = malloc(len), *dst = malloc(compress_bound(len));
    fill_random(src, len, 7);
    ok(compress_probe_incompressible(BS_COMPRESS_LZ4, src, len) &&
           compress_probe_incompressible(BS_COMPRESS_ZSTD, src, len),
       "probe: random bytes are incompressible");
    ok(!compress_probe_incompressible(BS_COMPRESS_LZ4, src, 4096), "probe: small blocks not sampled");
    ok(!compress_probe_incompressible(BS_COMPRESS_OFF, src, len), "probe: nothing for off");
    /* repeated random halves and quarters: lz4 saves far more than 1/8 */
    memcpy(src + len / 2, src, len / 2);
    ok(!compress_probe_incompressible(BS_COMPRESS_LZ4, src, len) &&
           compress_block(BS_COMPRESS_LZ4, 0, src, len, dst, compress_bound(len)) > 0,
       "probe: repeated halves are compressed");
    for (int q = 1; q < 4; q++)
        memcpy(src + q * len / 4, src, len / 4);
    ok(!compress_probe_incompressible(BS_COMPRESS_LZ4, src, len), "probe: repeated quarters");
    /* a random 32-byte hash at the start of every 256-byte record: the
     * sample must not alias with the records */
    fill_random(src, len, 8);
    for (size_t r = 0; r < len; r += 256)
        memset(src + r + 32, 0, 224);
    ok(!compress_probe_incompressible(BS_COMPRESS_LZ4, src, len) &&
           compress_block(BS_COMPRESS_LZ4, 0, src, len, dst, compress_bound(len)) > 0,
       "probe: sparse records are compressed");
    /* random with 1/4 zeroes in one place */
    fill_random(src, len, 9);
    memset(src + 5000, 0, len / 4);
    ok(!compress_probe_incompressible(BS_COMPRESS_LZ4, src, len), "probe: a quarter of zeroes");
    /* text-like data, and bytes of 6 bits' entropy that only zstd shrinks */
    fill_text(src, len);
    ok(!compress_probe_incompressible(BS_COMPRESS_LZ4, src, len) &&
           !compress_probe_incompressible(BS_COMPRESS_ZSTD, src, len),
       "probe: text is compressed");
    fill_random(src, len, 10);
    for (size_t i = 0; i < len; i++)
        src[i] &= 0x3f;
    ok(!compress_probe_incompressible(BS_COMPRESS_ZSTD, src, len) &&
           compress_block(BS_COMPRESS_ZSTD, 0, src, len, dst, compress_bound(len)) > 0,
       "probe: skewed bytes still go to zstd");
    free(src);
    free(dst);
}

/* A random block whose first `dup` bytes repeat right after themselves
 * (fio's reused buffers: two equal 4K writes in one 16K block). */
static void fill_dup(uint8_t *p, size_t n, size_t dup, uint64_t seed)
{
    fill_random(p, n, seed);
    memcpy(p + dup, p, dup);
}

static long hist_block(const uint8_t *src, size_t len, uint8_t *dst, struct comp_hist *h)
{
    return compress_block_hist(BS_COMPRESS_LZ4, 0, src, len, dst, compress_bound(len), h);
}

/* compress_block_hist: a fresh stream of random blocks is tried block by
 * block for ~700 blocks, then only every COMP_PROBE_EVERY-th, backing off to
 * every COMP_PROBE_EVERY_MAX-th while the tries fail; when the data
 * turns compressible the first try notices it and every block is tried again;
 * a stream where few blocks save little (1 in 20 saves 25 %) starts skipping
 * too, one where enough save enough (1 in 4 saves 50 %, 1 in 4 saves ~all)
 * never does; the result always decodes. */
static void test_hist(void)
{
    size_t len = 16384;
    uint8_t *src = malloc(len), *dst = malloc(compress_bound(len)), *out = malloc(len);
    struct comp_hist h = {0};
    unsigned raw = 0, skip_at = 0;
    const unsigned N = 2003; /* not a multiple: the switch lands between two tries */
    for (unsigned i = 0; i < N; i++) {
        fill_random(src, len, 100 + i);
        raw += hist_block(src, len, dst, &h) == 0;
        if (!skip_at && atomic_load(&h.skip))
            skip_at = i + 1;
    }
    /* ln(1/16) / ln(255/256) = 708 blocks from "saves everything" */
    ok(raw == N && skip_at >= 650 && skip_at <= 800,
       "hist: %u random blocks stored raw, skipping from block %u", N, skip_at);
    unsigned ticks = atomic_load(&h.tick);
    ok(ticks == N - skip_at, "hist: %u blocks seen while skipping (1 in %u tried at the end)",
       ticks, atomic_load(&h.gap));
    ok(atomic_load(&h.gap) == COMP_PROBE_EVERY_MAX, "hist: the tries backed off to 1 in %u",
       COMP_PROBE_EVERY_MAX);
    /* data turns compressible: how many go raw before the history notices */
    unsigned lost = 0, kept = 0;
    bool good = true;
    for (unsigned i = 0; i < 200; i++) {
        fill_text(src, len);
        src[i % len] = (uint8_t)i;
        long p = hist_block(src, len, dst, &h);
        if (p == 0) {
            lost++;
            good &= kept < 1; /* raw ones only before the first try */
        } else {
            kept++;
            good &= p > 0 && decompress_block(BS_COMPRESS_LZ4, dst, (size_t)p, out, len) == 0 &&
                    memcmp(out, src, len) == 0;
        }
    }
    ok(good && lost > 0 && lost < COMP_PROBE_EVERY_MAX && kept == 200 - lost &&
           !atomic_load(&h.skip),
       "hist: compressible data after random data: %u raw, then all %u compressed", lost, kept);
    /* fio-like: 1 block in 20 saves 25 % (a duplicated 4K): 1.25 % of the
     * bytes, below COMP_SKIP_BELOW: skipping starts, and then only about 1
     * in COMP_PROBE_EVERY..COMP_PROBE_EVERY_MAX of those blocks is compressed */
    struct comp_hist f = {0};
    unsigned fcomp = 0, fdup = 0, fskip = 0;
    for (unsigned i = 0; i < 6000; i++) {
        uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull; /* not periodic: no aliasing with the tries */
        bool d = (x >> 40) % 20 == 0;
        if (d)
            fill_dup(src, len, 4096, 7000 + i);
        else
            fill_random(src, len, 7000 + i);
        long p = hist_block(src, len, dst, &f);
        if (i >= 3000) {
            fdup += d;
            fcomp += p > 0;
            fskip += atomic_load(&f.skip);
        }
    }
    ok(fskip == 3000 && fcomp > 0 && fcomp * 4 < fdup,
       "hist: 1 in 20 blocks saving 25 %%: skipping, %u of %u such blocks compressed", fcomp,
       fdup);
    /* 1 block in 4 saves 50 %: 12.5 % of the bytes, worth trying every block */
    struct comp_hist e = {0};
    unsigned ecomp = 0;
    for (unsigned i = 0; i < 4000; i++) {
        if (i % 4 == 3)
            fill_dup(src, len, 8192, 9000 + i);
        else
            fill_random(src, len, 9000 + i);
        ecomp += hist_block(src, len, dst, &e) > 0;
    }
    ok(ecomp == 1000 && !atomic_load(&e.skip),
       "hist: 1 in 4 blocks saving 50 %%: all %u compressed, never skipping", ecomp);
    /* a mix of 3 random blocks to 1 compressible one never reaches the
     * streak, so every compressible block is compressed */
    struct comp_hist m = {0};
    unsigned comp = 0;
    for (unsigned i = 0; i < 400; i++) {
        if (i % 4 == 3)
            fill_text(src, len);
        else
            fill_random(src, len, 5000 + i);
        comp += compress_block_hist(BS_COMPRESS_ZSTD, 0, src, len, dst, compress_bound(len), &m) > 0;
    }
    ok(comp == 100, "hist: a 3:1 mix keeps all %u compressible blocks compressed", comp);
    /* no history: exactly compress_block */
    fill_text(src, len);
    ok(compress_block_hist(BS_COMPRESS_LZ4, 0, src, len, dst, compress_bound(len), NULL) ==
           compress_block(BS_COMPRESS_LZ4, 0, src, len, dst, compress_bound(len)),
       "hist: NULL history is compress_block");
    ok(compress_block_hist(BS_COMPRESS_OFF, 0, src, len, dst, compress_bound(len), &h) == 0,
       "hist: off stores raw");
    free(src);
    free(dst);
    free(out);
}

static void *zstd_thread(void *arg)
{
    size_t len = 65536;
    uint8_t *src = malloc(len), *dst = malloc(compress_bound(len)), *out = malloc(len);
    long good = 1;
    fill_text(src, len);
    for (int i = 0; i < 50 && good; i++) {
        long p = compress_block(BS_COMPRESS_ZSTD, 1 + i % 5, src, len, dst, compress_bound(len));
        good = p > 0 && decompress_block(BS_COMPRESS_ZSTD, dst, (size_t)p, out, len) == 0 &&
               memcmp(src, out, len) == 0;
    }
    free(src);
    free(dst);
    free(out);
    return (void *)good;
}

static void test_threads(void)
{
    pthread_t t[4];
    void *res;
    int good = 1;
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, zstd_thread, NULL);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], &res);
        good &= res != NULL;
    }
    ok(good, "zstd from 4 threads with per-thread contexts");
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_checksums(void)
{
    uint8_t c[32], d[32];
    char h[65];
    checksum_compute(BS_CHECKSUM_SHA256, "abc", 3, c);
    hex(c, 32, h);
    ok(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
       "SHA-256(abc) known answer");
    sha256("", 0, c);
    hex(c, 32, h);
    ok(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0,
       "SHA-256(\"\") known answer");
    checksum_compute(BS_CHECKSUM_XXH3, "abc", 3, c);
    ok(c[16] == 0 && memcmp(c + 16, (uint8_t[16]){0}, 16) == 0, "xxh3 zeroes bytes 16..31");
    uint8_t x[16];
    xxh3_128("abc", 3, x);
    ok(memcmp(x, c, 16) == 0, "xxh3_128 matches checksum_compute");
    /* XXH3-128("") = 0x99aa06d3014798d8_6001c324468d497f (xxhsum -H2), stored low64 first */
    xxh3_128("", 0, x);
    hex(x, 16, h);
    ok(strcmp(h, "7f498d4624c30160d8984701d306aa99") == 0, "XXH3-128(\"\") known answer: %s", h);
    memcpy(d, c, 32);
    ok(checksum_equal(BS_CHECKSUM_XXH3, c, d), "xxh3 equal");
    d[20] ^= 1;
    ok(checksum_equal(BS_CHECKSUM_XXH3, c, d), "xxh3 compares only 16 bytes");
    d[3] ^= 1;
    ok(!checksum_equal(BS_CHECKSUM_XXH3, c, d), "xxh3 differs");
    checksum_compute(BS_CHECKSUM_SHA256, "abc", 3, c);
    memcpy(d, c, 32);
    d[31] ^= 1;
    ok(!checksum_equal(BS_CHECKSUM_SHA256, c, d), "sha256 compares all 32 bytes");
    ok(!checksum_equal((enum bs_checksum)9, c, c), "unknown checksum type never equal");
    checksum_compute((enum bs_checksum)9, "abc", 3, c);
    ok(memcmp(c, (uint8_t[32]){0}, 32) == 0, "unknown checksum type gives zeroes");
}

/* codec.c may call libxxhash's run-time dispatcher (AVX2/AVX-512): the
 * bytes must be those of the library's plain XXH3_128bits on every length
 * class (0-16, 17-128, 129-240, the long loop with its stripes and a partial
 * last one) and every alignment, or a pool's checksums would depend on the
 * CPU that wrote them. */
static void test_xxh3_dispatch(void)
{
    static const size_t lens[] = {0,   1,    3,    16,   17,    128,   129,   240,
                                  241, 1023, 1024, 4096, 16383, 16384, 16385, 131072};
    uint8_t *buf = malloc(131072 + 64);
    fill_random(buf, 131072 + 64, 42);
    bool same = true;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (size_t a = 0; a < 64; a += 13) {
            uint8_t x[16], y[16];
            xxh3_128(buf + a, lens[i], x);
            XXH128_hash_t h = XXH3_128bits(buf + a, lens[i]);
            for (int k = 0; k < 8; k++) {
                y[k] = (uint8_t)(h.low64 >> (8 * k));
                y[8 + k] = (uint8_t)(h.high64 >> (8 * k));
            }
            if (memcmp(x, y, 16) != 0) {
                diag("xxh3_128 differs from XXH3_128bits: len %zu, offset %zu", lens[i], a);
                same = false;
            }
        }
    }
    ok(same, "xxh3_128 equals libxxhash's portable XXH3_128bits on 16 lengths x 5 alignments");
    free(buf);
}

static void test_names(void)
{
    char b[32];
    struct berr e = {0};
    enum bs_compress c;
    int lvl;
    ok(strcmp(bs_compress_name(BS_COMPRESS_OFF, 0, b, sizeof b), "off") == 0, "name off");
    ok(strcmp(bs_compress_name(BS_COMPRESS_LZ4, 0, b, sizeof b), "lz4") == 0, "name lz4");
    ok(strcmp(bs_compress_name(BS_COMPRESS_ZSTD, 3, b, sizeof b), "zstd") == 0, "name zstd");
    ok(strcmp(bs_compress_name(BS_COMPRESS_ZSTD, 0, b, sizeof b), "zstd") == 0, "name zstd/0");
    ok(strcmp(bs_compress_name(BS_COMPRESS_ZSTD, 19, b, sizeof b), "zstd-19") == 0, "zstd-19");
    ok(bs_compress_parse("lz4", &c, &lvl, &e) == 0 && c == BS_COMPRESS_LZ4, "parse lz4");
    ok(bs_compress_parse("on", &c, &lvl, &e) == 0 && c == BS_COMPRESS_LZ4, "parse on = lz4");
    ok(bs_compress_parse("off", &c, &lvl, &e) == 0 && c == BS_COMPRESS_OFF, "parse off");
    ok(bs_compress_parse("zstd", &c, &lvl, &e) == 0 && c == BS_COMPRESS_ZSTD && lvl == 3,
       "parse zstd = level 3");
    ok(bs_compress_parse("zstd-7", &c, &lvl, &e) == 0 && c == BS_COMPRESS_ZSTD && lvl == 7,
       "parse zstd-7");
    ok(bs_compress_parse("zstd-19", &c, &lvl, &e) == 0 && lvl == 19, "parse zstd-19");
    const char *bad[] = {"zstd-0", "zstd-20", "zstd-", "zstd-1x", "zstd--1", "zstd-01", "LZ4",
                         "", "gzip"};
    int rejected = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        rejected += bs_compress_parse(bad[i], &c, &lvl, &e) == -EINVAL;
    ok(rejected == (int)(sizeof bad / sizeof bad[0]), "bad compression names rejected");
    ok(strstr(e.msg, "zstd-19") && strstr(e.msg, "gzip"), "message names input and values: %s",
       e.msg);
    enum bs_checksum k;
    ok(bs_checksum_parse("xxh3", &k, &e) == 0 && k == BS_CHECKSUM_XXH3, "parse xxh3");
    ok(bs_checksum_parse("on", &k, &e) == 0 && k == BS_CHECKSUM_XXH3, "parse on = xxh3");
    ok(bs_checksum_parse("sha256", &k, &e) == 0 && k == BS_CHECKSUM_SHA256, "parse sha256");
    ok(bs_checksum_parse("md5", &k, &e) == -EINVAL && strstr(e.msg, "md5"), "md5: %s", e.msg);
    ok(strcmp(bs_checksum_name(BS_CHECKSUM_XXH3), "xxh3") == 0 &&
           strcmp(bs_checksum_name(BS_CHECKSUM_SHA256), "sha256") == 0,
       "checksum names");
}

int main(void)
{
    test_roundtrip(BS_COMPRESS_LZ4, 0, "lz4");
    test_roundtrip(BS_COMPRESS_ZSTD, 0, "zstd");
    test_roundtrip(BS_COMPRESS_ZSTD, 19, "zstd-19");
    test_threshold();
    test_probe();
    test_hist();
    test_threads();
    test_checksums();
    test_xxh3_dispatch();
    test_names();
    return done_testing();
}
