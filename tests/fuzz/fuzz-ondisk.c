/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the on-disk decoders: label header, uberblock, block
 * pointer (+ range check) and allocation bitmap chunk slot.
 *
 * Self-checksums would stop a fuzzer at the first gate, so the first input
 * byte picks a mode: raw bytes as read from disk, or bytes "re-signed" with
 * a valid checksum so that the field validation behind the gate is explored.
 * Decoders must never crash, and whatever they accept must re-encode to the
 * very bytes they accepted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "store/alloc.h"
#include "store/bp.h"
#include "store/codec.h"
#include "store/label.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_bp(const uint8_t *p, size_t n)
{
    uint8_t in[BP_SIZE] = {0}, out[BP_SIZE];
    struct blkptr bp;
    memcpy(in, p, n < BP_SIZE ? n : BP_SIZE);
    if (bp_decode(in, &bp) == 0) {
        bp_encode(&bp, out);
        if (memcmp(in, out, BP_SIZE) != 0)
            abort();
        uint64_t sz = n > BP_SIZE + 8 ? get_le64(p + BP_SIZE) : 1ULL << 30;
        (void)bp_check_range(&bp, sz, 9 + (int)(sz % 10), (uint32_t)(sz % 3));
    }
}

static void fuzz_hdr(const uint8_t *p, size_t n, int sign)
{
    static uint8_t buf[LABEL_HDR_SIZE], out[LABEL_HDR_SIZE];
    struct label_hdr h;
    memset(buf, 0, sizeof buf);
    memcpy(buf, p, n < sizeof buf ? n : sizeof buf);
    if (sign)
        sha256(buf, LABEL_HDR_SIZE - 32, buf + LABEL_HDR_SIZE - 32);
    if (label_hdr_decode(buf, sign ? sizeof buf : n, &h) == 0) {
        label_hdr_encode(&h, out);
        /* the used length (12..15) and bytes past it are not part of the
         * model; the fields and the pool name must round trip */
        if (memcmp(buf, out, 12) != 0 || memcmp(buf + 16, out + 16, 464 - 16) != 0)
            abort();
    }
}

static void fuzz_ub(const uint8_t *p, size_t n, int sign)
{
    uint8_t buf[UB_SIZE] = {0}, out[UB_SIZE];
    struct uberblock ub;
    memcpy(buf, p, n < sizeof buf ? n : sizeof buf);
    if (sign)
        sha256(buf, UB_SIZE - 32, buf + UB_SIZE - 32);
    if (ub_decode(buf, sign ? sizeof buf : n, &ub) == 0) {
        ub_encode(&ub, out);
        if (memcmp(buf, out, UB_SIZE) != 0)
            abort();
    }
}

static void fuzz_chunk(const uint8_t *p, size_t n, int sign)
{
    static uint8_t buf[4096], tmp[4096];
    static uint64_t words[504];
    uint64_t txg;
    memset(buf, 0, sizeof buf);
    memcpy(buf, p, n < sizeof buf ? n : sizeof buf);
    uint32_t nbits = n >= 28 ? get_le32(buf + 24) : 100;
    uint64_t chunk = n >= 24 ? get_le64(buf + 16) : 0;
    if (sign) {
        memcpy(tmp, buf, sizeof tmp);
        memset(tmp + 32, 0, 16);
        xxh3_128(tmp, sizeof tmp, buf + 32);
    }
    if (alloc_chunk_decode(buf, sign ? sizeof buf : n, sizeof buf, chunk, nbits, &txg, words) ==
        0) {
        alloc_chunk_encode(tmp, sizeof tmp, chunk, nbits, txg, words);
        if (memcmp(tmp, buf, sizeof tmp) != 0)
            abort();
    }
}

static void fuzz_layout(const uint8_t *p, size_t n)
{
    struct label_hdr h = {0};
    if (n < 9)
        return;
    h.ashift = p[0];
    (void)label_layout(&h, get_le64(p + 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    int sign = mode & 1;
    switch ((mode >> 1) % 5) {
    case 0:
        fuzz_bp(p, n);
        break;
    case 1:
        fuzz_hdr(p, n, sign);
        break;
    case 2:
        fuzz_ub(p, n, sign);
        break;
    case 3:
        fuzz_chunk(p, n, sign);
        break;
    case 4:
        fuzz_layout(p, n);
        break;
    }
    return 0;
}
