/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AES-256-GCM on 512-bit vectors: VAES for the counter mode, VPCLMULQDQ for
 * GHASH, four 16-byte blocks per zmm register, 16 blocks (256 bytes) per
 * loop.  Compiled with -mavx512f -mavx512bw -mavx512vl -mvaes -mvpclmulqdq
 * -maes -mpclmul (src/store/meson.build); callers check gcm_vaes_supported()
 * first.  See gcm_vaes.h for the contract.
 *
 * GHASH arithmetic.  GCM's field is GF(2)[x]/g, g = x^128 + x^7 + x^2 + x + 1,
 * with a block's first bit as the coefficient of x^0.  Loading a block and
 * reversing its 16 bytes gives the integer R(a) whose bit 127-k is the
 * coefficient of x^k.  Read R(a) as a polynomial in t: R(a) = t^127 a(1/t),
 * and x -> 1/t maps the field onto GF(2)[t]/g*, g* = t^128 + t^127 + t^126 +
 * t^121 + 1, so a carry-less multiply of two such integers is a product in
 * that field: R(a) R(b) = t^127 R(ab) (mod g*).  We reduce products the
 * Montgomery way, mont(C) = C t^-128 mod g*, which only needs to cancel the
 * low 128 bits of C, 64 at a time: with L the low 64 bits, C + L g* is
 * divisible by t^64 and, since g* = t^128 + t^64 P + 1 with
 * P = t^63 + t^62 + t^57 (0xc2000000_00000000), (C + L g*) / t^64 =
 * (C >> 64) + L t^64 + L P: one carry-less multiply by P, a swap of the two
 * 64-bit halves and a three-way xor per step (reduce_*() below).
 * The hash key is kept as K_n = t^128 psi(H)^n (psi: x -> 1/t), i.e.
 * K_1 = R(H) t mod g* (R(H) shifted left one bit, 0xc2..01 folded in on a
 * carry), and then mont(R(a) K_n) = R(a H^n) exactly, and
 * mont(K_i K_j) = K_{i+j} gives the powers.  As mont() is linear, the 16
 * products of a loop ((Y + X_1) H^16 + X_2 H^15 + ... + X_16 H) are summed
 * unreduced (three accumulators: low, middle and high 128-bit parts) and
 * reduced once.
 *
 * Counter blocks.  With a 96-bit IV the data counters are IV || BE32(2 + i).
 * We keep them with bytes 12..15 reversed, so a 32-bit lane add increments
 * them (mod 2^32, GCM's inc32), and swap those bytes back before AES.
 *
 * Constant time: the only branches and address computations depend on the
 * lengths; masked byte loads and stores handle the last partial 256 bytes
 * (masked-off bytes are neither read nor written, so no overread). */
#include "store/gcm_vaes.h"

#include <immintrin.h>
#include <string.h>

#define ROUNDS 14

/* byte i of each 128-bit lane <- byte 15 - i */
#define BSWAP128                                                                                   \
    _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
/* bytes 12..15 of each lane reversed: big-endian counter <-> little-endian */
#define CTRSWAP                                                                                    \
    _mm512_broadcast_i32x4(_mm_set_epi8(12, 13, 14, 15, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0))
#define POLY 0xc200000000000000ull

static inline __m512i rk512(const struct gcm_vaes_key *k, int r)
{
    return _mm512_load_si512((const void *)k->rk[r]);
}

static inline __m128i rk128(const struct gcm_vaes_key *k, int r)
{
    return _mm_load_si128((const __m128i *)k->rk[r]);
}

static inline __m512i xor3(__m512i a, __m512i b, __m512i c)
{
    return _mm512_ternarylogic_epi64(a, b, c, 0x96);
}

/* ---- GHASH ---- */

/* mont(lo + mi t^64 + hi t^128) in each lane (see the top of the file). */
static inline __m512i reduce512(__m512i lo, __m512i mi, __m512i hi)
{
    const __m512i p = _mm512_set1_epi64((long long)POLY);
    mi = xor3(mi, _mm512_shuffle_epi32(lo, _MM_PERM_BADC), _mm512_clmulepi64_epi128(lo, p, 0x10));
    return xor3(hi, _mm512_shuffle_epi32(mi, _MM_PERM_BADC), _mm512_clmulepi64_epi128(mi, p, 0x10));
}

static inline __m128i reduce128(__m128i lo, __m128i mi, __m128i hi)
{
    const __m128i p = _mm_set1_epi64x((long long)POLY);
    mi = _mm_ternarylogic_epi64(mi, _mm_shuffle_epi32(lo, 0x4e), _mm_clmulepi64_si128(lo, p, 0x10),
                                0x96);
    return _mm_ternarylogic_epi64(hi, _mm_shuffle_epi32(mi, 0x4e),
                                  _mm_clmulepi64_si128(mi, p, 0x10), 0x96);
}

static inline __m128i gmul128(__m128i a, __m128i b)
{
    __m128i lo = _mm_clmulepi64_si128(a, b, 0x00);
    __m128i hi = _mm_clmulepi64_si128(a, b, 0x11);
    __m128i mi = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10));
    return reduce128(lo, mi, hi);
}

struct acc3 {
    __m512i lo, mi, hi;
};

/* Add the unreduced lane-wise products x * h to `a`. */
static inline void mul_acc(struct acc3 *a, __m512i x, __m512i h)
{
    a->lo = _mm512_xor_si512(a->lo, _mm512_clmulepi64_epi128(x, h, 0x00));
    a->hi = _mm512_xor_si512(a->hi, _mm512_clmulepi64_epi128(x, h, 0x11));
    a->mi = xor3(a->mi, _mm512_clmulepi64_epi128(x, h, 0x01), _mm512_clmulepi64_epi128(x, h, 0x10));
}

/* Reduce and add up the four lanes: the new GHASH state. */
static inline __m128i acc_finish(const struct acc3 *a)
{
    __m512i r = reduce512(a->lo, a->mi, a->hi);
    __m256i s = _mm256_xor_si256(_mm512_castsi512_si256(r), _mm512_extracti64x4_epi64(r, 1));
    return _mm_xor_si128(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

static inline struct acc3 acc_zero(void)
{
    return (struct acc3){_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
}

/* GHASH of m (1..16) byte-reflected blocks in d[0..3] (lanes past m zero),
 * the running state already added into block 0. */
static inline __m128i ghash_n(const struct gcm_vaes_key *k, const __m512i d[4], unsigned m)
{
    struct acc3 a = acc_zero();
    const uint8_t *pw = k->hpow[GCM_VAES_NPOW - m];
    for (unsigned j = 0; j < (m + 3) / 4; j++)
        mul_acc(&a, d[j], _mm512_loadu_si512((const void *)(pw + 64 * j)));
    return acc_finish(&a);
}

static inline __mmask64 byte_mask(size_t n)
{
    return n >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1;
}

/* Hash `n` bytes of `p` (the last block zero-padded) into state `y`. */
static __m128i ghash_update(const struct gcm_vaes_key *k, __m128i y, const uint8_t *p, size_t n)
{
    const __m512i bswap = BSWAP128;
    const __m512i h16 = _mm512_load_si512((const void *)k->hpow[0]);
    const __m512i h12 = _mm512_load_si512((const void *)k->hpow[4]);
    const __m512i h8 = _mm512_load_si512((const void *)k->hpow[8]);
    const __m512i h4 = _mm512_load_si512((const void *)k->hpow[12]);
    for (; n >= 256; p += 256, n -= 256) {
        struct acc3 a = acc_zero();
        __m512i d0 = _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)p), bswap);
        mul_acc(&a, _mm512_xor_si512(d0, _mm512_zextsi128_si512(y)), h16);
        mul_acc(&a, _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(p + 64)), bswap), h12);
        mul_acc(&a, _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(p + 128)), bswap), h8);
        mul_acc(&a, _mm512_shuffle_epi8(_mm512_loadu_si512((const void *)(p + 192)), bswap), h4);
        y = acc_finish(&a);
    }
    if (n == 0)
        return y;
    __m512i d[4];
    for (unsigned j = 0; j < 4; j++) {
        size_t off = 64 * j;
        __mmask64 m = off < n ? byte_mask(n - off) : 0;
        d[j] = _mm512_shuffle_epi8(_mm512_maskz_loadu_epi8(m, p + off), bswap);
    }
    d[0] = _mm512_xor_si512(d[0], _mm512_zextsi128_si512(y));
    y = ghash_n(k, d, (unsigned)((n + 15) / 16));
    explicit_bzero(d, sizeof d); /* d[0] holds the GHASH state: H-dependent */
    return y;
}

/* ---- AES ---- */

static inline __m128i expand_step(__m128i a, __m128i t)
{
    a = _mm_xor_si128(a, _mm_slli_si128(a, 4));
    a = _mm_xor_si128(a, _mm_slli_si128(a, 4));
    a = _mm_xor_si128(a, _mm_slli_si128(a, 4));
    return _mm_xor_si128(a, t);
}

/* Round keys 2i and 2i+1 from the two before them (FIPS 197 key expansion
 * for Nk = 8: RotWord+SubWord+Rcon for the first word of an even round key,
 * SubWord only for an odd one). */
#define EXPAND_PAIR(rk, i, rcon)                                                                   \
    do {                                                                                           \
        rk[i] = expand_step(rk[(i)-2],                                                             \
                            _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[(i)-1], rcon), 0xff));  \
        if ((i) + 1 <= ROUNDS)                                                                     \
            rk[(i) + 1] = expand_step(                                                             \
                rk[(i)-1], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[i], 0), 0xaa));          \
    } while (0)

static inline __m128i aes_block(const struct gcm_vaes_key *k, __m128i x)
{
    x = _mm_xor_si128(x, rk128(k, 0));
    for (int r = 1; r < ROUNDS; r++)
        x = _mm_aesenc_si128(x, rk128(k, r));
    return _mm_aesenclast_si128(x, rk128(k, ROUNDS));
}

static inline __m512i aes_zmm(const struct gcm_vaes_key *k, __m512i x)
{
    x = _mm512_xor_si512(x, rk512(k, 0));
    for (int r = 1; r < ROUNDS; r++)
        x = _mm512_aesenc_epi128(x, rk512(k, r));
    return _mm512_aesenclast_epi128(x, rk512(k, ROUNDS));
}

void gcm_vaes_setkey(struct gcm_vaes_key *k, const uint8_t key[32])
{
    __m128i rk[ROUNDS + 1];
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    rk[1] = _mm_loadu_si128((const __m128i *)(key + 16));
    EXPAND_PAIR(rk, 2, 0x01);
    EXPAND_PAIR(rk, 4, 0x02);
    EXPAND_PAIR(rk, 6, 0x04);
    EXPAND_PAIR(rk, 8, 0x08);
    EXPAND_PAIR(rk, 10, 0x10);
    EXPAND_PAIR(rk, 12, 0x20);
    EXPAND_PAIR(rk, 14, 0x40);
    for (int r = 0; r <= ROUNDS; r++)
        _mm512_store_si512((void *)k->rk[r], _mm512_broadcast_i32x4(rk[r]));

    /* K_1 = R(H) t mod g*: shift left one bit, fold the carry with g* */
    __m128i h =
        _mm_shuffle_epi8(aes_block(k, _mm_setzero_si128()),
                         _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(h), hi = (uint64_t)_mm_extract_epi64(h, 1);
    uint64_t carry = 0 - (hi >> 63);
    hi = (hi << 1 | lo >> 63) ^ (carry & POLY);
    lo = (lo << 1) ^ (carry & 1);
    __m128i h1 = _mm_set_epi64x((long long)hi, (long long)lo);
    __m128i pw = h1;
    for (int i = GCM_VAES_NPOW - 1; i >= 0; i--) {
        _mm_store_si128((__m128i *)k->hpow[i], pw);
        pw = gmul128(pw, h1);
    }
    memset(k->hpow[GCM_VAES_NPOW], 0, sizeof k->hpow[0] * GCM_VAES_POW_PAD);
    k->loaded = 1;
    explicit_bzero(rk, sizeof rk); /* the key schedule must not stay on the stack */
}

/* ---- GCM ---- */

/* The data counters 2..5 of `iv`, bytes 12..15 reversed (see the top). */
static inline __m512i ctr_first(const uint8_t iv[12])
{
    uint8_t b[16] = {0};
    memcpy(b, iv, 12);
    return _mm512_add_epi32(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)b)),
                            _mm512_set_epi32(5, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0));
}

/* E(K, J0) with J0 = IV || BE32(1): what the GHASH result is masked with. */
static inline __m128i tag_mask(const struct gcm_vaes_key *k, const uint8_t iv[12])
{
    uint8_t b[16] = {0};
    memcpy(b, iv, 12);
    b[15] = 1;
    return aes_block(k, _mm_loadu_si128((const __m128i *)b));
}

/* The last 1..255 bytes: counter mode block by block with masked loads and
 * stores, then GHASH of the ciphertext; returns the new state. */
static __m128i crypt_tail(const struct gcm_vaes_key *k, __m512i ctr, const uint8_t *src,
                          uint8_t *dst, size_t n, __m128i y, int enc)
{
    const __m512i bswap = BSWAP128, cswap = CTRSWAP;
    const __m512i four = _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);
    __m512i d[4];
    for (unsigned j = 0; j < 4; j++) {
        size_t off = 64 * j;
        d[j] = _mm512_setzero_si512();
        if (off >= n)
            continue;
        __mmask64 m = byte_mask(n - off);
        __m512i in = _mm512_maskz_loadu_epi8(m, src + off);
        __m512i ks = aes_zmm(k, _mm512_shuffle_epi8(ctr, cswap));
        __m512i o = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(in, ks));
        _mm512_mask_storeu_epi8(dst + off, m, o);
        d[j] = _mm512_shuffle_epi8(enc ? o : in, bswap);
        ctr = _mm512_add_epi32(ctr, four);
    }
    d[0] = _mm512_xor_si512(d[0], _mm512_zextsi128_si512(y));
    y = ghash_n(k, d, (unsigned)((n + 15) / 16));
    explicit_bzero(d, sizeof d); /* d[0] holds the GHASH state: H-dependent */
    return y;
}

/* The GHASH state after the length block, masked: the tag, byte order of the wire. */
static inline __m128i finish(const struct gcm_vaes_key *k, __m128i y, size_t aadlen, size_t len,
                             __m128i mask)
{
    __m128i l = _mm_set_epi64x((long long)((uint64_t)aadlen * 8), (long long)((uint64_t)len * 8));
    y = gmul128(_mm_xor_si128(y, l), _mm_load_si128((const __m128i *)k->hpow[GCM_VAES_NPOW - 1]));
    y = _mm_shuffle_epi8(y, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    return _mm_xor_si128(y, mask);
}

/* Four counter blocks through AES round 0 (whitening). */
#define CTR4(x, ctr)                                                                               \
    do {                                                                                           \
        x##0 = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, cswap), rk0);                             \
        x##1 = _mm512_xor_si512(_mm512_shuffle_epi8(_mm512_add_epi32(ctr, four), cswap), rk0);     \
        x##2 = _mm512_xor_si512(_mm512_shuffle_epi8(_mm512_add_epi32(ctr, eight), cswap), rk0);    \
        x##3 = _mm512_xor_si512(_mm512_shuffle_epi8(_mm512_add_epi32(ctr, twelve), cswap), rk0);   \
        ctr = _mm512_add_epi32(ctr, sixteen);                                                      \
    } while (0)

#define ROUND4(x, r)                                                                               \
    do {                                                                                           \
        const __m512i rk_ = rk512(k, r);                                                           \
        x##0 = _mm512_aesenc_epi128(x##0, rk_);                                                    \
        x##1 = _mm512_aesenc_epi128(x##1, rk_);                                                    \
        x##2 = _mm512_aesenc_epi128(x##2, rk_);                                                    \
        x##3 = _mm512_aesenc_epi128(x##3, rk_);                                                    \
    } while (0)

#define LAST4(x)                                                                                   \
    do {                                                                                           \
        const __m512i rk_ = rk512(k, ROUNDS);                                                      \
        x##0 = _mm512_aesenclast_epi128(x##0, rk_);                                                \
        x##1 = _mm512_aesenclast_epi128(x##1, rk_);                                                \
        x##2 = _mm512_aesenclast_epi128(x##2, rk_);                                                \
        x##3 = _mm512_aesenclast_epi128(x##3, rk_);                                                \
    } while (0)

/* 16 counter blocks through AES while GHASH of the 16 byte-reflected blocks
 * d0..d3 runs between the rounds (independent work for the other port). */
#define AES16_GHASH16(x, d, y)                                                                     \
    do {                                                                                           \
        struct acc3 a_ = acc_zero();                                                               \
        ROUND4(x, 1);                                                                              \
        mul_acc(&a_, _mm512_xor_si512(d##0, _mm512_zextsi128_si512(y)), h16);                      \
        ROUND4(x, 2);                                                                              \
        mul_acc(&a_, d##1, h12);                                                                   \
        ROUND4(x, 3);                                                                              \
        mul_acc(&a_, d##2, h8);                                                                    \
        ROUND4(x, 4);                                                                              \
        mul_acc(&a_, d##3, h4);                                                                    \
        ROUND4(x, 5);                                                                              \
        y = acc_finish(&a_);                                                                       \
        ROUND4(x, 6);                                                                              \
        ROUND4(x, 7);                                                                              \
        ROUND4(x, 8);                                                                              \
        ROUND4(x, 9);                                                                              \
        ROUND4(x, 10);                                                                             \
        ROUND4(x, 11);                                                                             \
        ROUND4(x, 12);                                                                             \
        ROUND4(x, 13);                                                                             \
        LAST4(x);                                                                                  \
    } while (0)

#define LOOP_CONSTANTS                                                                             \
    const __m512i bswap = BSWAP128, cswap = CTRSWAP, rk0 = rk512(k, 0);                            \
    const __m512i four = _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);         \
    const __m512i eight = _mm512_add_epi32(four, four);                                            \
    const __m512i twelve = _mm512_add_epi32(eight, four);                                          \
    const __m512i sixteen = _mm512_add_epi32(eight, eight);                                        \
    const __m512i h16 = _mm512_load_si512((const void *)k->hpow[0]);                               \
    const __m512i h12 = _mm512_load_si512((const void *)k->hpow[4]);                               \
    const __m512i h8 = _mm512_load_si512((const void *)k->hpow[8]);                                \
    const __m512i h4 = _mm512_load_si512((const void *)k->hpow[12])

/* The input is often cold (a block the NBD thread filled on the other core,
 * or one just read from the page cache): asking for it 1 KiB ahead made
 * cold 16 KiB blocks ~10% faster.  A prefetch past the end of the buffer
 * never faults. */
#define PREFETCH_AHEAD 1024
#define PREFETCH(p)                                                                                \
    do {                                                                                           \
        for (int l_ = 0; l_ < 4; l_++)                                                             \
            _mm_prefetch((const char *)((uintptr_t)(p) + PREFETCH_AHEAD + 64 * l_), _MM_HINT_T0);  \
    } while (0)
#define LD(p, i)    _mm512_loadu_si512((const void *)((p) + 64 * (i)))
#define ST(p, i, v) _mm512_storeu_si512((void *)((p) + 64 * (i)), v)

void gcm_vaes_seal(const struct gcm_vaes_key *k, const uint8_t iv[12], const void *aad,
                   size_t aadlen, const void *in, void *out, size_t len, uint8_t tag[16])
{
    LOOP_CONSTANTS;
    const uint8_t *src = in;
    uint8_t *dst = out;
    size_t n = len;
    __m128i mask = tag_mask(k, iv);
    __m128i y = ghash_update(k, _mm_setzero_si128(), aad, aadlen);
    __m512i ctr = ctr_first(iv);
    if (n >= 256) {
        /* the ciphertext of each 16 blocks is hashed while the next 16 are encrypted */
        __m512i x0, x1, x2, x3, d0, d1, d2, d3;
        CTR4(x, ctr);
        for (int r = 1; r < ROUNDS; r++)
            ROUND4(x, r);
        LAST4(x);
        for (;;) {
            PREFETCH(src);
            x0 = _mm512_xor_si512(x0, LD(src, 0));
            x1 = _mm512_xor_si512(x1, LD(src, 1));
            x2 = _mm512_xor_si512(x2, LD(src, 2));
            x3 = _mm512_xor_si512(x3, LD(src, 3));
            ST(dst, 0, x0);
            ST(dst, 1, x1);
            ST(dst, 2, x2);
            ST(dst, 3, x3);
            d0 = _mm512_shuffle_epi8(x0, bswap);
            d1 = _mm512_shuffle_epi8(x1, bswap);
            d2 = _mm512_shuffle_epi8(x2, bswap);
            d3 = _mm512_shuffle_epi8(x3, bswap);
            src += 256;
            dst += 256;
            n -= 256;
            if (n < 256)
                break;
            CTR4(x, ctr);
            AES16_GHASH16(x, d, y);
        }
        struct acc3 a = acc_zero();
        mul_acc(&a, _mm512_xor_si512(d0, _mm512_zextsi128_si512(y)), h16);
        mul_acc(&a, d1, h12);
        mul_acc(&a, d2, h8);
        mul_acc(&a, d3, h4);
        y = acc_finish(&a);
    }
    if (n)
        y = crypt_tail(k, ctr, src, dst, n, y, 1);
    _mm_storeu_si128((__m128i *)tag, finish(k, y, aadlen, len, mask));
}

bool gcm_vaes_open(const struct gcm_vaes_key *k, const uint8_t iv[12], const void *aad,
                   size_t aadlen, const void *in, void *out, size_t len, const uint8_t tag[16])
{
    LOOP_CONSTANTS;
    const uint8_t *src = in;
    uint8_t *dst = out;
    size_t n = len;
    __m128i mask = tag_mask(k, iv);
    __m128i y = ghash_update(k, _mm_setzero_si128(), aad, aadlen);
    __m512i ctr = ctr_first(iv);
    for (; n >= 256; src += 256, dst += 256, n -= 256) {
        PREFETCH(src);
        /* everything is loaded before anything is stored: in == out works */
        __m512i c0 = LD(src, 0), c1 = LD(src, 1), c2 = LD(src, 2), c3 = LD(src, 3);
        __m512i d0 = _mm512_shuffle_epi8(c0, bswap), d1 = _mm512_shuffle_epi8(c1, bswap);
        __m512i d2 = _mm512_shuffle_epi8(c2, bswap), d3 = _mm512_shuffle_epi8(c3, bswap);
        __m512i x0, x1, x2, x3;
        CTR4(x, ctr);
        AES16_GHASH16(x, d, y);
        ST(dst, 0, _mm512_xor_si512(x0, c0));
        ST(dst, 1, _mm512_xor_si512(x1, c1));
        ST(dst, 2, _mm512_xor_si512(x2, c2));
        ST(dst, 3, _mm512_xor_si512(x3, c3));
    }
    if (n)
        y = crypt_tail(k, ctr, src, dst, n, y, 0);
    __m128i diff =
        _mm_xor_si128(finish(k, y, aadlen, len, mask), _mm_loadu_si128((const __m128i *)tag));
    return _mm_testz_si128(diff, diff) != 0;
}
