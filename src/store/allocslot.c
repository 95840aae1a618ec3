/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The on-disk codec of one allocation bitmap chunk slot (docs/FORMAT.md 4):
 * a 64-byte header (magic, txg, chunk index, bit count, set-bit count,
 * XXH3-128 self checksum) followed by the bits, LSB first.
 *
 * Invariant: alloc_chunk_decode treats its input as hostile; it accepts a
 * slot only if every header field, the checksum, the set-bit count and the
 * zero padding agree, and it never reads past buf[len). */
#include "store/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "store/codec.h"

#define CHUNK_MAGIC 0x50414d5448545245ULL
#define CHUNK_HDR 64u

static void chunk_cksum(const uint8_t *buf, uint32_t slot_size, uint8_t out[16])
{
    /* The checksum covers the slot with its own field zeroed: hash a copy. */
    uint8_t *tmp = malloc(slot_size);
    if (!tmp) {
        memset(out, 0, 16);
        return;
    }
    memcpy(tmp, buf, slot_size);
    memset(tmp + 32, 0, 16);
    xxh3_128(tmp, slot_size, out);
    free(tmp);
}

void alloc_chunk_encode(uint8_t *buf, uint32_t slot_size, uint64_t chunk, uint32_t nbits,
                        uint64_t txg, const uint64_t *words)
{
    uint32_t nset = 0, nw = (nbits + 63) / 64;
    memset(buf, 0, slot_size);
    for (uint32_t i = 0; i < nw; i++) {
        uint64_t w = words[i];
        if (i == nw - 1 && nbits % 64)
            w &= ~0ULL >> (64 - nbits % 64);
        put_le64(buf + CHUNK_HDR + 8 * i, w);
        nset += (uint32_t)__builtin_popcountll(w);
    }
    put_le64(buf, CHUNK_MAGIC);
    put_le64(buf + 8, txg);
    put_le64(buf + 16, chunk);
    put_le32(buf + 24, nbits);
    put_le32(buf + 28, nset);
    chunk_cksum(buf, slot_size, buf + 32);
}

int alloc_chunk_decode(const uint8_t *buf, size_t len, uint32_t slot_size, uint64_t chunk,
                       uint32_t nbits, uint64_t *txg, uint64_t *words)
{
    uint8_t ck[16];
    if (slot_size < CHUNK_HDR + 8 || slot_size % 8 || len < slot_size)
        return -EILSEQ;
    if (nbits == 0 || nbits > (slot_size - CHUNK_HDR) * 8 || get_le64(buf) != CHUNK_MAGIC)
        return -EILSEQ;
    if (get_le64(buf + 16) != chunk || get_le32(buf + 24) != nbits)
        return -EILSEQ;
    for (int i = 48; i < 64; i++)
        if (buf[i])
            return -EILSEQ;
    chunk_cksum(buf, slot_size, ck);
    if (memcmp(ck, buf + 32, 16) != 0)
        return -EILSEQ;
    /* Bits past nbits must be clear, and nset must match the bits. */
    uint32_t nset = 0, nw = (slot_size - CHUNK_HDR) / 8;
    for (uint32_t i = 0; i < nw; i++) {
        uint64_t w = get_le64(buf + CHUNK_HDR + 8 * i);
        uint64_t lo = (uint64_t)i * 64;
        if (lo >= nbits && w)
            return -EILSEQ;
        if (lo < nbits && nbits - lo < 64 && (w >> (nbits - lo)))
            return -EILSEQ;
        nset += (uint32_t)__builtin_popcountll(w);
        if (words && lo < nbits)
            words[i] = w;
    }
    if (nset != get_le32(buf + 28))
        return -EILSEQ;
    if (txg)
        *txg = get_le64(buf + 8);
    return 0;
}
