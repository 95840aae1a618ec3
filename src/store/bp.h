/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Block pointers: the 128-byte on-disk reference to a block (docs/FORMAT.md
 * section 5).  A block pointer carries where the block is (up to three DVAs),
 * how big it is (logical/physical/allocated), how it is encoded (compression,
 * checksum type) and the checksum of its stored bytes — the parent holds the
 * child's checksum, so the tree is a Merkle tree up to the uberblock. */
#ifndef BERTH_STORE_BP_H
#define BERTH_STORE_BP_H

#include <stdbool.h>
#include <stdint.h>

#define BP_SIZE 128
#define BP_MAX_LSIZE (16u << 20)
#define BP_MAX_LEVEL 8

enum bp_type { BP_TYPE_NONE = 0, BP_TYPE_VOL_DATA = 1, BP_TYPE_INDIRECT = 2, BP_TYPE_MOS_DATA = 3 };

#define BP_FLAG_HOLE 0x01u
#define BP_FLAG_ENCRYPTED 0x02u
#define BP_FLAG_EMBEDDED 0x04u
/* An indirect block of an encrypted volume: its checksum keeps 16 bytes and
 * checksum[16..31] holds the keyless digest of its children's MACs
 * (objtree.h, docs/FORMAT.md section 10). */
#define BP_FLAG_AUTH 0x08u
#define BP_FLAGS_KNOWN 0x0bu /* holes, encrypted volume data, authenticated indirects */
/* Where an encrypted block keeps its MAC, an authenticated indirect its digest. */
#define BP_MAC_OFF 16
#define BP_MAC_LEN 16

struct dva {
    uint64_t offset; /* bytes from the start of the vdev's data area */
    uint32_t vdev;   /* top-level vdev id */
    uint32_t asize;  /* allocated bytes, 0 = unused */
};

struct blkptr {
    struct dva dva[3];
    uint64_t birth;  /* txg the block (or hole) was written */
    uint32_t lsize;  /* logical size */
    uint32_t psize;  /* stored size before padding */
    uint8_t comp;    /* enum bs_compress */
    uint8_t cksum;   /* enum bs_checksum */
    uint8_t type;    /* enum bp_type */
    uint8_t level;
    uint8_t flags;   /* BP_FLAG_* */
    uint64_t fill;   /* non-hole data blocks beneath (1 for data) */
    uint8_t iv[16];
    uint8_t checksum[32];
};

/* Encode into exactly BP_SIZE bytes. */
void bp_encode(const struct blkptr *bp, uint8_t out[BP_SIZE]);

/* Decode and validate the structure (known enums, sizes, flags, level, an
 * allocated block has DVA 0 with asize >= psize).  Returns 0 or -EILSEQ.
 * Range checks against the device happen in the engine (bp_check_range). */
int bp_decode(const uint8_t in[BP_SIZE], struct blkptr *bp);

/* A hole: no storage.  A zeroed blkptr is a never-written hole. */
static inline bool bp_is_hole(const struct blkptr *bp)
{
    return (bp->flags & BP_FLAG_HOLE) || bp->dva[0].asize == 0;
}

/* Ditto copies (docs/FORMAT.md section 5): metadata blocks (indirects, MOS
 * and deadlist data, i.e. every type but volume data) are written twice, the
 * second copy in DVA 1 on the same top-level vdev as DVA 0, far from it.
 * DVA 2 is never a copy (it holds an encrypted block's salt). */
static inline bool bp_type_is_meta(uint8_t type)
{
    return type == BP_TYPE_INDIRECT || type == BP_TYPE_MOS_DATA;
}

/* Copies of a block that is not a hole: 2 when DVA 1 is used, else 1. */
static inline int bp_ncopies(const struct blkptr *bp)
{
    return bp->dva[1].asize != 0 ? 2 : 1;
}

/* Bytes the block allocates: the sum over its copies (0 for a hole).  Every
 * space figure (object descriptors, born, deadlists, the checker) counts
 * this, so a ditto copy is accounted like any other allocation. */
static inline uint64_t bp_asize(const struct blkptr *bp)
{
    if (bp_is_hole(bp))
        return 0;
    return (uint64_t)bp->dva[0].asize + bp->dva[1].asize;
}

/* Make `bp` a hole born in `txg` at `level`. */
void bp_make_hole(struct blkptr *bp, uint64_t txg, uint8_t level, uint8_t type);

/* Check every used DVA lies in [0, data_size) and asize is a multiple of
 * 1<<ashift.  Returns 0 or -EILSEQ. */
int bp_check_range(const struct blkptr *bp, uint64_t data_size, int ashift, uint32_t nvdevs);

#endif
