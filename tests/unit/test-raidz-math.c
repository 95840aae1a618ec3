/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/raidz_math.c: GF(2^8) against a bit-by-bit
 * reference, parity against a naive reference, and for raidz1/2/3 at widths
 * 3..12 with equal, ZFS-style (first columns one sector longer) and random
 * uneven column sizes, every combination of up to nparity missing columns
 * rebuilt byte for byte; too many missing gives EIO; bad maps give EINVAL.
 * `test-raidz-math --bench` prints single-core throughput instead. */
#include "store/raidz_math.h"
#include "tap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Reference multiply, bit by bit, polynomial 0x11d. */
static uint8_t ref_mul(uint8_t a, uint8_t b)
{
    unsigned r = 0, x = a;
    for (; b; b >>= 1) {
        if (b & 1)
            r ^= x;
        x <<= 1;
        if (x & 0x100)
            x ^= 0x11d;
    }
    return (uint8_t)r;
}

static uint8_t ref_pow(uint8_t g, unsigned e)
{
    uint8_t r = 1;
    while (e--)
        r = ref_mul(r, g);
    return r;
}

static void test_gf(void)
{
    int bad = 0;
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++)
            bad += raidz_gf_mul((uint8_t)a, (uint8_t)b) != ref_mul((uint8_t)a, (uint8_t)b);
    is_int(bad, 0, "GF(2^8) multiply matches the bit-by-bit reference (65536 pairs)");
    bad = 0;
    for (int a = 1; a < 256; a++)
        bad += raidz_gf_mul((uint8_t)a, raidz_gf_inv((uint8_t)a)) != 1;
    is_int(bad, 0, "a * inv(a) = 1 for all a != 0");
    ok(raidz_gf_mul(2, 0x80) == 0x1d && raidz_gf_inv(0) == 0, "2 * 0x80 = 0x1d (poly 0x11d)");
}

struct stripe {
    unsigned np, ncols;
    struct raidz_col col[RAIDZ_MAXCOLS];
};

static void stripe_free(struct stripe *s)
{
    for (unsigned i = 0; i < s->ncols; i++)
        free(s->col[i].buf);
}

/* Data sizes by pattern: 0 all equal, 1 ZFS-like (first `big` columns one
 * 512-byte sector longer), 2 random sizes <= psize. */
static void stripe_make(struct stripe *s, unsigned np, unsigned ncols, size_t psize, int pattern)
{
    s->np = np;
    s->ncols = ncols;
    unsigned nd = ncols - np, big = 1 + (unsigned)(rnd() % nd);
    for (unsigned i = 0; i < ncols; i++) {
        size_t sz = psize;
        if (i >= np && pattern == 1 && i - np >= big)
            sz = psize > 512 ? psize - 512 : 0;
        if (i >= np && pattern == 2)
            sz = rnd() % (psize + 1);
        s->col[i].size = sz;
        s->col[i].buf = malloc(sz ? sz : 1);
        for (size_t j = 0; j < sz; j++)
            s->col[i].buf[j] = (uint8_t)rnd();
    }
}

/* Naive parity: row k, byte i. */
static uint8_t ref_parity(const struct stripe *s, unsigned k, size_t i)
{
    unsigned nd = s->ncols - s->np;
    uint8_t v = 0, g = (uint8_t)(1u << k);
    for (unsigned j = 0; j < nd; j++) {
        const struct raidz_col *c = &s->col[s->np + j];
        if (i < c->size)
            v ^= ref_mul(ref_pow(g, nd - 1 - j), c->buf[i]);
    }
    return v;
}

static bool parity_matches_ref(const struct stripe *s)
{
    for (unsigned k = 0; k < s->np; k++)
        for (size_t i = 0; i < s->col[0].size; i++)
            if (s->col[k].buf[i] != ref_parity(s, k, i))
                return false;
    return true;
}

/* Wipe the listed columns, rebuild, compare with the saved copy. */
static bool rebuild_ok(struct stripe *s, struct stripe *orig, const unsigned *miss, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        memset(s->col[miss[i]].buf, 0xa5, s->col[miss[i]].size);
    if (raidz_reconstruct(s->np, s->col, s->ncols, miss, n) != 0)
        return false;
    bool good = true;
    for (unsigned i = 0; i < s->ncols; i++)
        good &= memcmp(s->col[i].buf, orig->col[i].buf, s->col[i].size) == 0;
    return good;
}

static void copy_stripe(struct stripe *dst, const struct stripe *src)
{
    *dst = *src;
    for (unsigned i = 0; i < src->ncols; i++) {
        dst->col[i].buf = malloc(src->col[i].size ? src->col[i].size : 1);
        memcpy(dst->col[i].buf, src->col[i].buf, src->col[i].size);
    }
}

static void test_all_combinations(void)
{
    static const size_t psizes[] = {1, 100, 4096, 4097 + 512, 10000};
    static const char *pat[] = {"equal", "zfs-uneven", "random"};
    for (unsigned np = 1; np <= 3; np++) {
        long combos = 0, good = 0, genok = 0, gens = 0, eio = 0, eiotries = 0;
        for (unsigned ncols = np + 1 > 3 ? np + 1 : 3; ncols <= 12; ncols++) {
            for (int pattern = 0; pattern < 3; pattern++) {
                for (size_t pi = 0; pi < sizeof psizes / sizeof psizes[0]; pi++) {
                    struct stripe s, orig;
                    stripe_make(&s, np, ncols, psizes[pi], pattern);
                    gens++;
                    if (raidz_generate(np, s.col, ncols) == 0 &&
                        parity_matches_ref(&s))
                        genok++;
                    else
                        diag("generate failed: raidz%u ncols %u %s psize %zu", np, ncols,
                             pat[pattern], psizes[pi]);
                    copy_stripe(&orig, &s);
                    unsigned m[4];
                    for (m[0] = 0; m[0] < ncols; m[0]++) {
                        combos++, good += rebuild_ok(&s, &orig, m, 1);
                        for (m[1] = m[0] + 1; np >= 2 && m[1] < ncols; m[1]++) {
                            combos++, good += rebuild_ok(&s, &orig, m, 2);
                            for (m[2] = m[1] + 1; np >= 3 && m[2] < ncols; m[2]++)
                                combos++, good += rebuild_ok(&s, &orig, m, 3);
                        }
                    }
                    /* one more than parity */
                    for (unsigned i = 0; i <= np; i++)
                        m[i] = ncols - 1 - i;
                    eiotries++;
                    eio += raidz_reconstruct(np, s.col, ncols, m, np + 1) == -EIO;
                    stripe_free(&s);
                    stripe_free(&orig);
                }
            }
        }
        is_int(genok, gens, "parity equals the naive reference");
        ok(good == combos, "raidz%u, widths %u..12, 3 size patterns x 5 sizes: %ld/%ld missing-"
                           "column combinations rebuilt exactly",
           np, np + 1 > 3 ? np + 1 : 3, good, combos);
        is_int(eio, eiotries, "more missing columns than parity: EIO");
    }
}

static void test_known_answer(void)
{
    uint8_t d0[2] = {0x80, 1}, d1[2] = {0, 0}, p[2], q[2], r[2];
    struct raidz_col c[5] = {{p, 2}, {q, 2}, {r, 2}, {d0, 2}, {d1, 2}};
    ok(raidz_generate(3, c, 5) == 0 && p[0] == 0x80 && q[0] == 0x1d && r[0] == 0x3a && p[1] == 1 &&
           q[1] == 2 && r[1] == 4,
       "known answer: D0 gets coefficient 2^(n-1) in Q and 4^(n-1) in R");
}

static void test_wide_and_invalid(void)
{
    struct stripe s, orig;
    stripe_make(&s, 3, RAIDZ_MAXCOLS, 37, 2);
    ok(raidz_generate(3, s.col, s.ncols) == 0 && parity_matches_ref(&s), "255-column raidz3");
    copy_stripe(&orig, &s);
    int good = 0;
    for (int t = 0; t < 200; t++) {
        unsigned m[3];
        m[0] = (unsigned)(rnd() % 255);
        do
            m[1] = (unsigned)(rnd() % 255);
        while (m[1] == m[0]);
        do
            m[2] = (unsigned)(rnd() % 255);
        while (m[2] == m[0] || m[2] == m[1]);
        good += rebuild_ok(&s, &orig, m, 3);
    }
    is_int(good, 200, "255 columns: 200 random triples rebuilt");

    /* empty columns may have no buffer at all */
    uint8_t pb[3][64], d0[64], d1[64], keep0[64];
    for (int i = 0; i < 64; i++)
        d0[i] = (uint8_t)(i * 7), d1[i] = (uint8_t)(i * 13 + 1);
    memcpy(keep0, d0, 64);
    struct raidz_col e[6] = {{pb[0], 64}, {pb[1], 64}, {pb[2], 64}, {d0, 64}, {NULL, 0}, {d1, 64}};
    ok(raidz_generate(3, e, 6) == 0, "generate with an empty data column");
    memset(d0, 0, 64);
    memset(pb[0], 0, 64);
    ok(raidz_reconstruct(3, e, 6, (unsigned[]){4, 3, 0}, 3) == 0 && memcmp(d0, keep0, 64) == 0,
       "rebuild with an empty, bufferless data column missing");
    struct raidz_col z[4] = {{NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};
    ok(raidz_generate(2, z, 4) == 0 && raidz_reconstruct(2, z, 4, (unsigned[]){2, 3}, 2) == 0,
       "an empty stripe");

    struct raidz_col *c = s.col;
    unsigned dup[2] = {4, 4}, out[1] = {255};
    is_int(raidz_generate(0, c, 5), -EINVAL, "nparity 0");
    is_int(raidz_generate(4, c, 6), -EINVAL, "nparity 4");
    is_int(raidz_generate(3, c, 3), -EINVAL, "no data column");
    is_int(raidz_generate(3, c, 256), -EINVAL, "256 columns");
    is_int(raidz_reconstruct(3, c, 10, dup, 2), -EINVAL, "duplicate missing column");
    is_int(raidz_reconstruct(3, c, 10, out, 1), -EINVAL, "missing column out of range");
    is_int(raidz_reconstruct(3, c, 10, NULL, 1), -EINVAL, "NULL missing list");
    is_int(raidz_reconstruct(3, c, 10, NULL, 0), 0, "nothing missing: nothing to do");
    size_t keep = c[5].size;
    c[5].size = c[0].size + 1;
    is_int(raidz_generate(3, c, 10), -EINVAL, "data column longer than parity");
    c[5].size = keep;
    keep = c[1].size;
    c[1].size--;
    is_int(raidz_generate(3, c, 10), -EINVAL, "parity columns of different sizes");
    c[1].size = keep;
    stripe_free(&s);
    stripe_free(&orig);
}

/* ---- benchmark ---- */

static double secs(void)
{
    struct timespec ts;
    /* thread CPU time: other load on a busy host does not count */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench_one(const char *what, unsigned np, unsigned nd, size_t colsize,
                      const unsigned *miss, unsigned nmiss)
{
    struct stripe s;
    stripe_make(&s, np, np + nd, colsize, 0);
    raidz_generate(np, s.col, s.ncols);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) { /* best of 3: a busy host only slows runs down */
        long n = 0;
        double t0 = secs(), t;
        do {
            for (int i = 0; i < 64; i++, n++) {
                if (nmiss)
                    raidz_reconstruct(np, s.col, s.ncols, miss, nmiss);
                else
                    raidz_generate(np, s.col, s.ncols);
            }
            t = secs() - t0;
        } while (t < 0.2);
        double rate = (double)n * nd * colsize / 1e6 / t;
        best = rate > best ? rate : best;
    }
    printf("%-40s %2u x %3zu KiB data: %6.0f MB/s of data\n", what, nd, colsize >> 10, best);
    stripe_free(&s);
}

static int bench(void)
{
    static const struct {
        unsigned nd;
        size_t cs;
    } shapes[] = {{8, 16384}, {4, 4096}, {10, 131072}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        unsigned nd = shapes[i].nd;
        size_t cs = shapes[i].cs;
        bench_one("generate P (raidz1)", 1, nd, cs, NULL, 0);
        bench_one("generate P+Q (raidz2)", 2, nd, cs, NULL, 0);
        bench_one("generate P+Q+R (raidz3)", 3, nd, cs, NULL, 0);
        bench_one("rebuild 1 data from P", 1, nd, cs, (unsigned[]){2}, 1);
        bench_one("rebuild 2 data from P+Q", 2, nd, cs, (unsigned[]){2, 4}, 2);
        bench_one("rebuild 1 data from Q (P lost too)", 2, nd, cs, (unsigned[]){0, 3}, 2);
        bench_one("rebuild 3 data from P+Q+R", 3, nd, cs, (unsigned[]){3, 5, 6}, 3);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench();
    test_gf();
    test_known_answer();
    test_all_combinations();
    test_wide_and_invalid();
    return done_testing();
}
