/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/bp.c: round trips, holes, every rejection rule,
 * byte-flip robustness and range checks. */
#include "store/bp.h"
#include "berth/store.h"
#include "common/le.h"
#include "tap.h"

#include <errno.h>
#include <string.h>

static struct blkptr sample(void)
{
    struct blkptr bp;
    memset(&bp, 0, sizeof bp);
    bp.dva[0] = (struct dva){.offset = 1 << 20, .vdev = 0, .asize = 8192};
    bp.birth = 77;
    bp.lsize = 16384;
    bp.psize = 5000;
    bp.comp = BS_COMPRESS_LZ4;
    bp.cksum = BS_CHECKSUM_SHA256;
    bp.type = BP_TYPE_VOL_DATA;
    bp.level = 0;
    bp.fill = 1;
    for (int i = 0; i < 32; i++)
        bp.checksum[i] = (uint8_t)(i * 7 + 1);
    return bp;
}

static int enc_dec(const struct blkptr *in, struct blkptr *out)
{
    uint8_t b[BP_SIZE];
    bp_encode(in, b);
    return bp_decode(b, out);
}

static void test_roundtrip(void)
{
    struct blkptr a = sample(), b;
    uint8_t e1[BP_SIZE], e2[BP_SIZE];
    ok(enc_dec(&a, &b) == 0 && memcmp(&a, &b, sizeof a) == 0, "data bp round trip");
    bp_encode(&a, e1);
    ok(get_le64(e1) == 1 << 20 && get_le32(e1 + 12) == 8192 && get_le64(e1 + 48) == 77 &&
           get_le32(e1 + 56) == 16384 && get_le32(e1 + 60) == 5000 && e1[64] == 1 &&
           e1[65] == 2 && e1[66] == 1 && get_le64(e1 + 72) == 1 && e1[96] == 1,
       "fields at the FORMAT.md offsets");
    bp_decode(e1, &b);
    bp_encode(&b, e2);
    ok(memcmp(e1, e2, BP_SIZE) == 0, "re-encode is byte identical");

    struct blkptr ind = sample();
    ind.type = BP_TYPE_INDIRECT;
    ind.level = 3;
    ind.fill = 12345;
    ind.cksum = BS_CHECKSUM_XXH3;
    memset(ind.checksum + 16, 0, 16);
    ind.dva[1] = (struct dva){.offset = 4096 * 100, .vdev = 0, .asize = 8192};
    ok(enc_dec(&ind, &b) == 0 && memcmp(&ind, &b, sizeof b) == 0, "indirect, 2 DVAs round trip");
    ok(bp_ncopies(&ind) == 2 && bp_asize(&ind) == 16384, "a ditto copy counts as a copy");
    /* a ditto copy is DVA 0's allocation again, on the same top, elsewhere */
    struct blkptr bad = ind;
    bad.dva[1].vdev = 1;
    ok(enc_dec(&bad, &b) == -EILSEQ, "rejects a ditto copy on another top");
    bad = ind;
    bad.dva[1].asize = 4096;
    ok(enc_dec(&bad, &b) == -EILSEQ, "rejects a ditto copy of another size");
    bad = ind;
    bad.dva[1].offset = (1 << 20) + 4096;
    ok(enc_dec(&bad, &b) == -EILSEQ, "rejects a ditto copy overlapping DVA 0");

    uint8_t zero[BP_SIZE] = {0};
    ok(bp_decode(zero, &b) == 0 && bp_is_hole(&b) && b.birth == 0, "all-zero is a hole");
    struct blkptr h;
    bp_make_hole(&h, 42, 2, BP_TYPE_INDIRECT);
    ok(enc_dec(&h, &b) == 0 && bp_is_hole(&b) && b.birth == 42 && b.level == 2 &&
           b.type == BP_TYPE_INDIRECT,
       "made hole round trip");
    ok(bp_check_range(&h, 0, 12, 0) == 0, "holes always in range");
}

/* Each mutation makes an otherwise valid pointer invalid. */
static void test_rejections(void)
{
    struct blkptr b;
#define REJECT(desc, stmt)                                                                         \
    do {                                                                                           \
        struct blkptr m = sample();                                                                \
        stmt;                                                                                      \
        ok(enc_dec(&m, &b) == -EILSEQ, "rejects " desc);                                          \
    } while (0)
    REJECT("unknown compression", m.comp = 3);
    REJECT("unknown checksum", m.cksum = 3);
    REJECT("checksum 0 on a block", m.cksum = 0);
    REJECT("unknown type", m.type = 4);
    REJECT("type none on a block", m.type = BP_TYPE_NONE);
    REJECT("level 9", (m.type = BP_TYPE_INDIRECT, m.level = 9));
    REJECT("data at level 1", m.level = 1);
    REJECT("indirect at level 0", m.type = BP_TYPE_INDIRECT);
    REJECT("data fill 0", m.fill = 0);
    REJECT("psize > lsize", m.psize = m.lsize + 1);
    REJECT("lsize > 16M", (m.lsize = BP_MAX_LSIZE + 512, m.dva[0].asize = m.lsize));
    REJECT("psize 0", m.psize = 0);
    REJECT("compressed but psize == lsize", m.psize = m.lsize);
    REJECT("raw but psize != lsize", m.comp = BS_COMPRESS_OFF);
    REJECT("asize < psize", m.dva[0].asize = 4096);
    REJECT("asize not 512-aligned", m.dva[0].asize = 8193);
    REJECT("offset not 512-aligned", m.dva[0].offset = 100);
    REJECT("offset+asize overflow", m.dva[0].offset = UINT64_MAX - 511);
    REJECT("unknown flag", m.flags = 0x80);
    REJECT("encrypted flag without an IV", m.flags = BP_FLAG_ENCRYPTED);
    REJECT("encrypted indirect", (m.flags = BP_FLAG_ENCRYPTED, m.iv[0] = 1,
                                  m.type = BP_TYPE_INDIRECT, m.level = 1));
    REJECT("encrypted with AAD version 1 at byte 92", (m.flags = BP_FLAG_ENCRYPTED,
                                                       m.iv[0] = 1, m.iv[12] = 1));
    REJECT("encrypted with IV bytes 13..15", (m.flags = BP_FLAG_ENCRYPTED, m.iv[0] = 1,
                                              m.iv[12] = 2, m.iv[14] = 1));
    REJECT("encrypted with a DVA 2 size", (m.flags = BP_FLAG_ENCRYPTED, m.iv[0] = 1,
                                           m.dva[2].offset = 7, m.dva[2].asize = 512));
    REJECT("encrypted hole", (m.flags = BP_FLAG_ENCRYPTED | BP_FLAG_HOLE, m.iv[0] = 1,
                              m.dva[0] = (struct dva){0}));
    REJECT("non-zero IV", m.iv[3] = 1);
    REJECT("unused DVA with offset", m.dva[2].offset = 4096);
    REJECT("xxh3 with bytes 16..31 set", m.cksum = BS_CHECKSUM_XXH3);
    REJECT("hole with a DVA", m.flags = BP_FLAG_HOLE);
    REJECT("flagless hole with DVA 1", (m.dva[1] = m.dva[0], m.dva[0] = (struct dva){0}));
    struct blkptr h;
    bp_make_hole(&h, 5, 0, BP_TYPE_VOL_DATA);
    h.fill = 1;
    ok(enc_dec(&h, &b) == -EILSEQ, "rejects hole with fill");
    bp_make_hole(&h, 5, 0, BP_TYPE_VOL_DATA);
    h.checksum[0] = 1;
    ok(enc_dec(&h, &b) == -EILSEQ, "rejects hole with checksum");
    struct blkptr en = sample();
    en.flags = BP_FLAG_ENCRYPTED;
    memset(en.iv, 0xa5, 12);
    en.dva[2].offset = 0x0123456789abcdefULL; /* the salt */
    memset(en.checksum + 16, 0x5a, 16);       /* the MAC */
    ok(enc_dec(&en, &b) == 0 && b.flags == BP_FLAG_ENCRYPTED && b.iv[11] == 0xa5 &&
           b.dva[2].offset == en.dva[2].offset && b.checksum[31] == 0x5a,
       "encrypted data pointer round trip (IV, salt, MAC)");
    en.iv[12] = 2; /* the portable AAD version (blkcrypt.h) */
    ok(enc_dec(&en, &b) == 0 && b.iv[12] == 2, "byte 92 = 2 (portable AAD) accepted");
    uint8_t e[BP_SIZE];
    bp_encode(&(struct blkptr){0}, e);
    e[70] = 1;
    ok(bp_decode(e, &b) == -EILSEQ, "rejects non-zero reserved byte");
}

/* Flip every bit of an encoded pointer: decode either fails or gives a
 * pointer that re-encodes to the same bytes (no silent normalisation). */
static void test_flips(void)
{
    struct blkptr base[3];
    memset(base, 0, sizeof base);
    base[0] = sample();
    bp_make_hole(&base[1], 9, 1, BP_TYPE_INDIRECT);
    int consistent = 1, accepted = 0, total = 0;
    for (int k = 0; k < 3; k++) {
        uint8_t e[BP_SIZE], r[BP_SIZE];
        bp_encode(&base[k], e);
        for (int i = 0; i < BP_SIZE * 8; i++) {
            struct blkptr b;
            e[i / 8] ^= (uint8_t)(1 << (i % 8));
            if (bp_decode(e, &b) == 0) {
                bp_encode(&b, r);
                consistent &= memcmp(e, r, BP_SIZE) == 0;
                accepted++;
            } else {
                struct blkptr z = {0};
                consistent &= memcmp(&b, &z, sizeof z) == 0;
            }
            total++;
            e[i / 8] ^= (uint8_t)(1 << (i % 8));
        }
    }
    ok(consistent, "bit flips: reject (zeroed output) or exact round trip (%d of %d accepted)",
       accepted, total);
}

static void test_range(void)
{
    struct blkptr a = sample();
    uint64_t size = 1 << 24;
    ok(bp_check_range(&a, size, 12, 1) == 0, "in range");
    ok(bp_check_range(&a, (1 << 20) + 8192, 12, 1) == 0, "ends exactly at the end");
    ok(bp_check_range(&a, (1 << 20) + 4096, 12, 1) == -EILSEQ, "crosses the end");
    ok(bp_check_range(&a, 1 << 20, 12, 1) == -EILSEQ, "starts at the end");
    ok(bp_check_range(&a, size, 12, 0) == -EILSEQ, "vdev id out of range");
    ok(bp_check_range(&a, size, 14, 1) == -EILSEQ, "asize not a multiple of 16K sectors");
    a.dva[0].offset += 512;
    ok(bp_check_range(&a, size, 12, 1) == -EILSEQ, "offset not sector aligned");
    ok(bp_check_range(&a, size, 9, 1) == 0, "fine with 512 sectors");
    a = sample();
    a.dva[1] = (struct dva){.offset = size, .asize = 8192};
    ok(bp_check_range(&a, size, 12, 1) == -EILSEQ, "second DVA checked too");
    ok(bp_check_range(&a, size, 40, 1) == -EILSEQ, "absurd ashift");
}

int main(void)
{
    test_roundtrip();
    test_rejections();
    test_flips();
    test_range();
    return done_testing();
}
