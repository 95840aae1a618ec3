/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What changed in a tree since a txg, found by birth txgs alone.
 *
 * Every block pointer records the txg its block (or hole) was born in, and a
 * copy-on-write parent is rewritten whenever a child changes, so a pointer
 * born at or before `min_birth` heads a subtree that is exactly as it was at
 * min_birth: it is skipped without being read.  That is how an incremental
 * send finds its blocks without comparing any data, and why its reads are
 * proportional to the change, not to the volume. */
#ifndef BERTH_STORE_TREEDIFF_H
#define BERTH_STORE_TREEDIFF_H

#include <stdint.h>

#include "store/blkio.h"
#include "store/objtree.h"

struct treediff_ops {
    /* A data block born after min_birth (bp verified only as a pointer:
     * the callee reads it). */
    int (*data)(const struct blkptr *bp, uint64_t blkid, void *opaque);
    /* count >= 1 blocks from blkid that are holes and may not have been
     * holes at min_birth; adjacent runs are merged. */
    int (*hole)(uint64_t blkid, uint64_t count, void *opaque);
};

struct treediff_stats {
    uint64_t ind_blocks;  /* indirect blocks read */
    uint64_t ind_bytes;   /* their stored (compressed) bytes */
    uint64_t data_blocks; /* data callbacks */
    uint64_t hole_blocks; /* blocks reported as holes */
};

/* Visit, in increasing block order from start_blk (blocks below it are
 * neither visited nor read), every data block and hole of `od` born after
 * min_birth; min_birth 0 visits every block and every hole of the object.
 * A callback's non-zero return stops the walk and is returned; -EIO if an
 * indirect block fails verification or is malformed.  st may be NULL. */
int treediff(const struct blkio *io, const struct objdesc *od, uint64_t min_birth,
             uint64_t start_blk, const struct treediff_ops *ops, void *opaque,
             struct treediff_stats *st);

#endif
