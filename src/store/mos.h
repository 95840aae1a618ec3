/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The MOS: the pool directory (docs/FORMAT.md section 7), serialised into
 * the bytes of one object with 16 KiB data blocks.  mos_decode treats its
 * input as hostile: every length and field is checked, -EILSEQ otherwise. */
#ifndef BERTH_STORE_MOS_H
#define BERTH_STORE_MOS_H

#include <stddef.h>
#include <stdint.h>

#include "store/objtree.h"

#define MOS_MAGIC 0x00534f4d48545245ULL
#define MOS_VERSION 1u
#define MOS_DSHIFT 14
#define MOS_BLKSZ (1u << MOS_DSHIFT)
#define MOS_HDR_SIZE 64
#define MOS_MAX_SIZE (64u << 20) /* refuse to read a directory larger than this */
#define MOS_REC_DATASET 1u
#define MOS_DS_FIXED 242 /* dataset payload bytes before the name */

#define DS_FLAG_READONLY 0x01u

struct mos_ds {
    uint64_t id, guid, create_txg, volsize, refreservation;
    uint8_t comp, comp_level, cksum, flags;
    uint32_t volblocksize;
    struct objdesc od;
    char name[64];
};

struct mos_dir {
    uint64_t next_id;
    uint8_t autotrim, comp, comp_level, cksum;
    size_t nds;
    struct mos_ds *ds; /* malloc'd array */
};

/* Serialise into a malloc'd buffer. */
int mos_encode(const struct mos_dir *d, uint8_t **out, size_t *len);
/* Parse untrusted bytes; d->ds is malloc'd (mos_dir_free). */
int mos_decode(const uint8_t *buf, size_t len, struct mos_dir *d);
void mos_dir_free(struct mos_dir *d);

/* Read `size` bytes of the MOS object (malloc'd into *out). */
int mos_read(const struct blkio *io, const struct objdesc *od, uint64_t size, uint8_t **out);
/* Store `nbuf` as the new MOS contents: only 16 KiB blocks that differ from
 * `old` are rewritten; the tree is resized to fit. */
int mos_write(const struct objtree_wctx *w, struct objdesc *od, const uint8_t *old, size_t oldlen,
              const uint8_t *nbuf, size_t newlen);

#endif
