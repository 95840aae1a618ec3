/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAID-Z parity generation and reconstruction over GF(2^8) (see
 * raidz_math.h for the equations).
 *
 * Speed comes from two kernels:
 *  - Horner steps on 32-byte vectors (GCC vector extension: two SSE2 or one
 *    AVX2 op): P ^= D, Q = 2Q ^ D, R = 4R ^ D, where multiplying 8 bytes by 2
 *    at once is a shift, a mask and a conditional xor with 0x1d (no tables).
 *    The stripe is walked in CHUNK-byte slices so the parity being built stays
 *    in L1 while every data column streams through once.
 *  - Multiplication by a constant via a 256-byte row of a 64 KiB table, used
 *    only when solving for missing data.
 *
 * Reconstruction of missing data columns D_m (m in M): take |M| surviving
 * parity rows k, compute the syndromes S_k = parity_k ^ (row k over the
 * surviving data, missing columns as zero) = sum_m coef(k,m) D_m, invert the
 * |M|x|M| matrix coef(k,m) = g_k^(n-1-m) and multiply.  Missing parity is
 * regenerated afterwards from the complete data.  Fast paths: one data column
 * through P is pure xor; two data columns through P and Q need two table
 * lookups and an xor per byte.
 *
 * Invariants: parity and syndrome buffers have the stripe length; a data
 * column is never read or written beyond its own size (its tail counts as
 * zero), so buffers may be exactly as long as their columns. */
#include "store/raidz_math.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define GF_POLY 0x11d
#define CHUNK 4096

static uint8_t gf_exp[512], gf_log[256];
static uint8_t gf_mt[256][256]; /* gf_mt[c] = the row "multiply by c" */
static pthread_once_t gf_once = PTHREAD_ONCE_INIT;

static void gf_init(void)
{
    unsigned x = 1;
    for (int i = 0; i < 255; i++) {
        gf_exp[i] = gf_exp[i + 255] = (uint8_t)x;
        gf_log[x] = (uint8_t)i;
        x <<= 1;
        if (x & 0x100)
            x ^= GF_POLY;
    }
    gf_exp[510] = gf_exp[0];
    gf_exp[511] = gf_exp[1];
    for (int a = 1; a < 256; a++)
        for (int b = 1; b < 256; b++)
            gf_mt[a][b] = gf_exp[gf_log[a] + gf_log[b]];
}

uint8_t raidz_gf_mul(uint8_t a, uint8_t b)
{
    pthread_once(&gf_once, gf_init);
    return gf_mt[a][b];
}

uint8_t raidz_gf_inv(uint8_t a)
{
    pthread_once(&gf_once, gf_init);
    return a ? gf_exp[255 - gf_log[a]] : 0;
}

/* g_k^e for parity row k (g = 1, 2, 4). */
static uint8_t coef(unsigned k, unsigned e)
{
    return gf_exp[(k * e) % 255];
}

/* ---- vector kernels ---- */

/* All users are static inline, so the vector ABI never crosses a call. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef uint64_t vec __attribute__((vector_size(32)));
#define VL 32

static inline vec vld(const uint8_t *p)
{
    vec v;
    memcpy(&v, p, VL);
    return v;
}
static inline void vst(uint8_t *p, vec v)
{
    memcpy(p, &v, VL);
}
static inline vec vmul2(vec x)
{
    vec hi = x & 0x8080808080808080ull;
    return ((x << 1) & 0xfefefefefefefefeull) ^ (((hi << 1) - (hi >> 7)) & 0x1d1d1d1d1d1d1d1dull);
}
static inline uint8_t mul2(uint8_t x)
{
    return (uint8_t)((x << 1) ^ (x & 0x80 ? 0x1d : 0));
}

static void xor_into(uint8_t *restrict dst, const uint8_t *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL)
        vst(dst + i, vld(dst + i) ^ vld(src + i));
    for (; i < n; i++)
        dst[i] ^= src[i];
}

/* One Horner step of the rows in ROWS (bit 0 P, 1 Q, 2 R) over n bytes, the
 * column supplying its first dl bytes (zeros after).  FIRST starts the sums. */
static inline __attribute__((always_inline)) void
horner(const unsigned ROWS, const int FIRST, uint8_t *restrict p, uint8_t *restrict q,
       uint8_t *restrict r, const uint8_t *restrict d, size_t dl, size_t n)
{
    size_t i = 0;
    for (; i + VL <= dl; i += VL) {
        vec x = vld(d + i);
        if (ROWS & 1)
            vst(p + i, FIRST ? x : vld(p + i) ^ x);
        if (ROWS & 2)
            vst(q + i, FIRST ? x : vmul2(vld(q + i)) ^ x);
        if (ROWS & 4)
            vst(r + i, FIRST ? x : vmul2(vmul2(vld(r + i))) ^ x);
    }
    for (; i < dl; i++) {
        uint8_t x = d[i];
        if (ROWS & 1)
            p[i] = FIRST ? x : p[i] ^ x;
        if (ROWS & 2)
            q[i] = FIRST ? x : mul2(q[i]) ^ x;
        if (ROWS & 4)
            r[i] = FIRST ? x : mul2(mul2(r[i])) ^ x;
    }
    if (FIRST) {
        if (ROWS & 1)
            memset(p + dl, 0, n - dl);
        if (ROWS & 2)
            memset(q + dl, 0, n - dl);
        if (ROWS & 4)
            memset(r + dl, 0, n - dl);
        return;
    }
    if (!(ROWS & 6))
        return; /* P ^= 0 */
    for (; i + VL <= n; i += VL) {
        if (ROWS & 2)
            vst(q + i, vmul2(vld(q + i)));
        if (ROWS & 4)
            vst(r + i, vmul2(vmul2(vld(r + i))));
    }
    for (; i < n; i++) {
        if (ROWS & 2)
            q[i] = mul2(q[i]);
        if (ROWS & 4)
            r[i] = mul2(mul2(r[i]));
    }
}

static void horner_any(unsigned rows, int first, uint8_t *p, uint8_t *q, uint8_t *r,
                       const uint8_t *d, size_t dl, size_t n)
{
#define H(R)                                                                                       \
    case R:                                                                                        \
        horner(R, 0, p, q, r, d, dl, n);                                                           \
        break;                                                                                     \
    case R | 8:                                                                                    \
        horner(R, 1, p, q, r, d, dl, n);                                                           \
        break;
    switch (rows | (first ? 8u : 0u)) {
        H(1) H(2) H(3) H(4) H(5) H(6) H(7)
    }
#undef H
}

/* Rows `rows` of the parity over the nd data columns into out[k] (psize
 * bytes each), data columns with skip[j] set counting as zero. */
static void gen_rows(unsigned rows, uint8_t *const out[3], const struct raidz_col *data,
                     unsigned nd, const bool *skip, size_t psize)
{
    for (size_t off = 0; off < psize; off += CHUNK) {
        size_t n = psize - off < CHUNK ? psize - off : CHUNK;
        uint8_t *p = rows & 1 ? out[0] + off : NULL;
        uint8_t *q = rows & 2 ? out[1] + off : NULL;
        uint8_t *r = rows & 4 ? out[2] + off : NULL;
        for (unsigned j = 0; j < nd; j++) {
            size_t dl = 0;
            if (!(skip && skip[j]) && data[j].size > off)
                dl = data[j].size - off < n ? data[j].size - off : n;
            horner_any(rows, j == 0, p, q, r, dl ? data[j].buf + off : NULL, dl, n);
        }
    }
}

/* out[i] = sum_r c[r] * s[r][i] for i < len. */
static void mul_combine(uint8_t *restrict out, size_t len, unsigned nr, const uint8_t *c,
                        uint8_t *const *s)
{
    const uint8_t *t0 = gf_mt[c[0]], *t1 = gf_mt[nr > 1 ? c[1] : 0], *t2 = gf_mt[nr > 2 ? c[2] : 0];
    const uint8_t *s0 = s[0], *s1 = nr > 1 ? s[1] : NULL, *s2 = nr > 2 ? s[2] : NULL;
    size_t i;
    switch (nr) {
    case 1:
        for (i = 0; i < len; i++)
            out[i] = t0[s0[i]];
        break;
    case 2:
        for (i = 0; i < len; i++)
            out[i] = t0[s0[i]] ^ t1[s1[i]];
        break;
    default:
        for (i = 0; i < len; i++)
            out[i] = t0[s0[i]] ^ t1[s1[i]] ^ t2[s2[i]];
        break;
    }
}

/* Invert the n x n matrix a (n <= 3) into b.  -EIO if singular. */
static int gf_invert(unsigned n, uint8_t a[3][3], uint8_t b[3][3])
{
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < n; j++)
            b[i][j] = i == j;
    for (unsigned col = 0; col < n; col++) {
        unsigned piv = col;
        while (piv < n && !a[piv][col])
            piv++;
        if (piv == n)
            return -EIO;
        for (unsigned j = 0; j < n; j++) {
            uint8_t t = a[col][j];
            a[col][j] = a[piv][j], a[piv][j] = t;
            t = b[col][j];
            b[col][j] = b[piv][j], b[piv][j] = t;
        }
        uint8_t inv = raidz_gf_inv(a[col][col]);
        for (unsigned j = 0; j < n; j++) {
            a[col][j] = gf_mt[inv][a[col][j]];
            b[col][j] = gf_mt[inv][b[col][j]];
        }
        for (unsigned i = 0; i < n; i++) {
            uint8_t f = a[i][col];
            if (i == col || !f)
                continue;
            for (unsigned j = 0; j < n; j++) {
                a[i][j] ^= gf_mt[f][a[col][j]];
                b[i][j] ^= gf_mt[f][b[col][j]];
            }
        }
    }
    return 0;
}

/* ---- public entry points ---- */

static int check_map(unsigned np, const struct raidz_col *cols, unsigned ncols)
{
    pthread_once(&gf_once, gf_init);
    if (np < 1 || np > RAIDZ_MAXPARITY || !cols || ncols <= np || ncols > RAIDZ_MAXCOLS)
        return -EINVAL;
    size_t psize = cols[0].size;
    for (unsigned i = 0; i < ncols; i++) {
        if ((i < np && cols[i].size != psize) || cols[i].size > psize ||
            (cols[i].size && !cols[i].buf))
            return -EINVAL;
    }
    return 0;
}

int raidz_generate(unsigned nparity, struct raidz_col *cols, unsigned ncols)
{
    int rc = check_map(nparity, cols, ncols);
    if (rc < 0)
        return rc;
    uint8_t *out[3] = {cols[0].buf, nparity > 1 ? cols[1].buf : NULL,
                       nparity > 2 ? cols[2].buf : NULL};
    gen_rows((1u << nparity) - 1, out, cols + nparity, ncols - nparity, NULL, cols[0].size);
    return 0;
}

/* Solve for the nmd missing data columns md[] from parity rows rowsel[]. */
static int solve_data(unsigned np, struct raidz_col *cols, unsigned nd, const bool *dmiss,
                      const unsigned *md, unsigned nmd, const unsigned *rowsel)
{
    struct raidz_col *data = cols + np;
    size_t psize = cols[0].size;
    if (nmd == 1 && rowsel[0] == 0) { /* D = P ^ the other data */
        struct raidz_col *x = &data[md[0]];
        if (!x->size)
            return 0;
        memcpy(x->buf, cols[0].buf, x->size);
        for (unsigned j = 0; j < nd; j++)
            if (j != md[0])
                xor_into(x->buf, data[j].buf, data[j].size < x->size ? data[j].size : x->size);
        return 0;
    }
    uint8_t *mem = malloc(nmd * psize), *s[3] = {NULL, NULL, NULL}, *gen[3] = {NULL, NULL, NULL};
    if (!mem)
        return -ENOMEM;
    unsigned rows = 0;
    for (unsigned r = 0; r < nmd; r++) {
        s[r] = gen[rowsel[r]] = mem + r * psize;
        rows |= 1u << rowsel[r];
    }
    gen_rows(rows, gen, data, nd, dmiss, psize);
    uint8_t a[3][3], b[3][3];
    for (unsigned r = 0; r < nmd; r++) {
        xor_into(s[r], cols[rowsel[r]].buf, psize); /* syndrome */
        for (unsigned m = 0; m < nmd; m++)
            a[r][m] = coef(rowsel[r], nd - 1 - md[m]);
    }
    int rc = gf_invert(nmd, a, b);
    if (rc == 0 && nmd == 2 && rowsel[0] == 0 && rowsel[1] == 1) {
        /* P+Q: Dx = b00*Sp ^ b01*Sq, Dy = Sp ^ Dx (Dx counts as zero past its size) */
        struct raidz_col *x = &data[md[0]], *y = &data[md[1]];
        mul_combine(x->buf, x->size, 2, b[0], s);
        size_t both = x->size < y->size ? x->size : y->size;
        if (y->size) {
            memcpy(y->buf, s[0], y->size);
            xor_into(y->buf, x->buf, both);
        }
    } else if (rc == 0) {
        for (unsigned m = 0; m < nmd; m++)
            mul_combine(data[md[m]].buf, data[md[m]].size, nmd, b[m], s);
    }
    free(mem);
    return rc;
}

int raidz_reconstruct(unsigned nparity, struct raidz_col *cols, unsigned ncols,
                      const unsigned *missing, unsigned nmissing)
{
    int rc = check_map(nparity, cols, ncols);
    if (rc < 0)
        return rc;
    if (nmissing > nparity)
        return -EIO;
    if (nmissing && !missing)
        return -EINVAL;
    if (cols[0].size == 0)
        return 0; /* an empty stripe: every column is empty */
    unsigned nd = ncols - nparity, md[3], nmd = 0, pmiss = 0;
    bool dmiss[RAIDZ_MAXCOLS] = {false};
    for (unsigned i = 0; i < nmissing; i++) {
        unsigned c = missing[i];
        if (c >= ncols || (c < nparity && (pmiss & (1u << c))) || (c >= nparity && dmiss[c - nparity]))
            return -EINVAL;
        if (c < nparity)
            pmiss |= 1u << c;
        else {
            dmiss[c - nparity] = true;
            md[nmd++] = c - nparity;
        }
    }
    if (nmd) {
        unsigned rowsel[3], nr = 0;
        for (unsigned k = 0; k < nparity && nr < nmd; k++)
            if (!(pmiss & (1u << k)))
                rowsel[nr++] = k;
        rc = solve_data(nparity, cols, nd, dmiss, md, nmd, rowsel);
        if (rc < 0)
            return rc;
    }
    if (pmiss) {
        uint8_t *out[3] = {cols[0].buf, nparity > 1 ? cols[1].buf : NULL,
                           nparity > 2 ? cols[2].buf : NULL};
        gen_rows(pmiss, out, cols + nparity, nd, NULL, cols[0].size);
    }
    return 0;
}
