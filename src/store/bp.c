/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Block pointer codec (docs/FORMAT.md section 5).
 *
 * A block pointer is read from untrusted storage, so bp_decode accepts only
 * pointers that a v1 writer can produce:
 *  - an all-zero pointer (a hole never written);
 *  - a hole (flag bit0, or no DVA 0): no DVA at all, no checksum, fill 0;
 *  - a block: DVA 0 used, every used DVA with asize >= psize and a multiple
 *    of 512, 0 < psize <= lsize <= 16 MiB, psize == lsize iff uncompressed,
 *    known compression/checksum/type, data blocks at level 0 with fill 1,
 *    indirect blocks at levels 1..8.
 * Reserved bytes and the IV must be zero, so a decoded pointer re-encodes to
 * exactly the bytes it came from.  An encrypted block (flag bit1: volume
 * data only, never a hole) instead carries a 12-byte IV (its last 4 bytes
 * zero), its salt in DVA 2's offset (vdev and asize zero) and its MAC in the
 * last 16 checksum bytes.  Whether DVAs point
 * inside the device is checked by bp_check_range, which needs the layout. */
#include "store/bp.h"

#include <errno.h>
#include <string.h>

#include "berth/store.h"
#include "common/le.h"

#define BP_OFF_DVA 0
#define BP_OFF_BIRTH 48
#define BP_OFF_LSIZE 56
#define BP_OFF_PSIZE 60
#define BP_OFF_COMP 64
#define BP_OFF_CKSUM 65
#define BP_OFF_TYPE 66
#define BP_OFF_LEVEL 67
#define BP_OFF_FLAGS 68
#define BP_OFF_RSVD 69
#define BP_OFF_FILL 72
#define BP_OFF_IV 80
#define BP_OFF_CHECKSUM 96

#define MIN_SECTOR 512u

void bp_encode(const struct blkptr *bp, uint8_t out[BP_SIZE])
{
    memset(out, 0, BP_SIZE);
    for (int i = 0; i < 3; i++) {
        uint8_t *d = out + BP_OFF_DVA + 16 * i;
        put_le64(d, bp->dva[i].offset);
        put_le32(d + 8, bp->dva[i].vdev);
        put_le32(d + 12, bp->dva[i].asize);
    }
    put_le64(out + BP_OFF_BIRTH, bp->birth);
    put_le32(out + BP_OFF_LSIZE, bp->lsize);
    put_le32(out + BP_OFF_PSIZE, bp->psize);
    out[BP_OFF_COMP] = bp->comp;
    out[BP_OFF_CKSUM] = bp->cksum;
    out[BP_OFF_TYPE] = bp->type;
    out[BP_OFF_LEVEL] = bp->level;
    out[BP_OFF_FLAGS] = bp->flags;
    put_le64(out + BP_OFF_FILL, bp->fill);
    memcpy(out + BP_OFF_IV, bp->iv, sizeof(bp->iv));
    memcpy(out + BP_OFF_CHECKSUM, bp->checksum, sizeof(bp->checksum));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void decode_fields(const uint8_t *in, struct blkptr *bp)
{
    for (int i = 0; i < 3; i++) {
        const uint8_t *d = in + BP_OFF_DVA + 16 * i;
        bp->dva[i].offset = get_le64(d);
        bp->dva[i].vdev = get_le32(d + 8);
        bp->dva[i].asize = get_le32(d + 12);
    }
    bp->birth = get_le64(in + BP_OFF_BIRTH);
    bp->lsize = get_le32(in + BP_OFF_LSIZE);
    bp->psize = get_le32(in + BP_OFF_PSIZE);
    bp->comp = in[BP_OFF_COMP];
    bp->cksum = in[BP_OFF_CKSUM];
    bp->type = in[BP_OFF_TYPE];
    bp->level = in[BP_OFF_LEVEL];
    bp->flags = in[BP_OFF_FLAGS];
    bp->fill = get_le64(in + BP_OFF_FILL);
    memcpy(bp->iv, in + BP_OFF_IV, sizeof(bp->iv));
    memcpy(bp->checksum, in + BP_OFF_CHECKSUM, sizeof(bp->checksum));
}

static bool dva_unused(const struct dva *d)
{
    return d->offset == 0 && d->vdev == 0 && d->asize == 0;
}

static int validate_hole(const struct blkptr *bp)
{
    for (int i = 0; i < 3; i++)
        if (!dva_unused(&bp->dva[i]))
            return -EILSEQ;
    if (bp->psize > bp->lsize || bp->lsize > BP_MAX_LSIZE)
        return -EILSEQ;
    if (bp->comp != 0 || bp->cksum != 0 || bp->fill != 0)
        return -EILSEQ;
    if (!all_zero(bp->checksum, sizeof(bp->checksum)))
        return -EILSEQ;
    return 0;
}

static int validate_block(const struct blkptr *bp)
{
    if (bp->lsize == 0 || bp->lsize > BP_MAX_LSIZE || bp->psize == 0 || bp->psize > bp->lsize)
        return -EILSEQ;
    if (bp->comp != BS_COMPRESS_OFF && bp->comp != BS_COMPRESS_LZ4 && bp->comp != BS_COMPRESS_ZSTD)
        return -EILSEQ;
    /* Compression is only kept when it saves space, so a compressed block is
     * always smaller than its logical size and a raw one is exactly it. */
    if ((bp->comp == BS_COMPRESS_OFF) != (bp->psize == bp->lsize))
        return -EILSEQ;
    if (bp->cksum != BS_CHECKSUM_XXH3 && bp->cksum != BS_CHECKSUM_SHA256)
        return -EILSEQ;
    bool enc = (bp->flags & BP_FLAG_ENCRYPTED) != 0;
    bool auth = (bp->flags & BP_FLAG_AUTH) != 0;
    if (bp->cksum == BS_CHECKSUM_XXH3 && !enc && !auth && !all_zero(bp->checksum + 16, 16))
        return -EILSEQ;
    /* the digest of an authenticated indirect is never all zero (holes are) */
    if (auth && (enc || bp->type != BP_TYPE_INDIRECT || all_zero(bp->checksum + 16, 16)))
        return -EILSEQ;
    /* iv[12]: the AAD version, 0 (pool-local) or 2 (portable), blkcrypt.h */
    if (enc && (bp->type != BP_TYPE_VOL_DATA || (bp->iv[12] != 0 && bp->iv[12] != 2) ||
                !all_zero(bp->iv + 13, 3) ||
                all_zero(bp->iv, 12) ||
                bp->dva[2].vdev != 0 || bp->dva[2].asize != 0))
        return -EILSEQ;
    switch (bp->type) {
    case BP_TYPE_VOL_DATA:
    case BP_TYPE_MOS_DATA:
        if (bp->level != 0 || bp->fill != 1)
            return -EILSEQ;
        break;
    case BP_TYPE_INDIRECT:
        if (bp->level == 0 || bp->fill == 0)
            return -EILSEQ;
        break;
    default:
        return -EILSEQ;
    }
    for (int i = 0; i < (enc ? 2 : 3); i++) {
        const struct dva *d = &bp->dva[i];
        if (d->asize == 0) {
            if (!dva_unused(d))
                return -EILSEQ;
            continue;
        }
        if (d->asize < bp->psize || d->asize % MIN_SECTOR || d->offset % MIN_SECTOR)
            return -EILSEQ;
        if (d->offset > UINT64_MAX - d->asize)
            return -EILSEQ;
    }
    /* a ditto copy (DVA 1): the same allocation as DVA 0 on the same top,
     * elsewhere (the two copies never overlap) */
    const struct dva *d0 = &bp->dva[0], *d1 = &bp->dva[1];
    if (d1->asize != 0 && (d1->vdev != d0->vdev || d1->asize != d0->asize ||
                           (d1->offset < d0->offset + d0->asize &&
                            d0->offset < d1->offset + d1->asize)))
        return -EILSEQ;
    return 0;
}

int bp_decode(const uint8_t in[BP_SIZE], struct blkptr *bp)
{
    memset(bp, 0, sizeof(*bp));
    if (all_zero(in, BP_SIZE))
        return 0;
    decode_fields(in, bp);
    if (!all_zero(in + BP_OFF_RSVD, 3) ||
        (!(bp->flags & BP_FLAG_ENCRYPTED) && !all_zero(bp->iv, sizeof(bp->iv))))
        goto bad;
    if (bp->flags & ~BP_FLAGS_KNOWN)
        goto bad;
    if (bp->level > BP_MAX_LEVEL || bp->type > BP_TYPE_MOS_DATA)
        goto bad;
    if (bp_is_hole(bp) ? (bp->flags & (BP_FLAG_ENCRYPTED | BP_FLAG_AUTH)) || validate_hole(bp)
                       : validate_block(bp))
        goto bad;
    return 0;
bad:
    memset(bp, 0, sizeof(*bp));
    return -EILSEQ;
}

void bp_make_hole(struct blkptr *bp, uint64_t txg, uint8_t level, uint8_t type)
{
    memset(bp, 0, sizeof(*bp));
    bp->birth = txg;
    bp->level = level;
    bp->type = type;
    bp->flags = BP_FLAG_HOLE;
}

int bp_check_range(const struct blkptr *bp, uint64_t data_size, int ashift, uint32_t nvdevs)
{
    if (bp_is_hole(bp))
        return 0;
    if (ashift < 9 || ashift > 16)
        return -EILSEQ;
    uint64_t mask = (1ULL << ashift) - 1;
    for (int i = 0; i < 3; i++) {
        const struct dva *d = &bp->dva[i];
        if (d->asize == 0)
            continue;
        if (d->vdev >= nvdevs || (d->asize & mask) || (d->offset & mask))
            return -EILSEQ;
        if (d->offset >= data_size || d->asize > data_size - d->offset)
            return -EILSEQ;
    }
    return 0;
}
