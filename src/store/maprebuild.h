/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Import-time check of the allocation map against its uberblock digest, and
 * its rebuild from the block trees when it is damaged or stale
 * (docs/FORMAT.md 3, 4).  Used by pool.c only. */
#ifndef BERTH_STORE_MAPREBUILD_H
#define BERTH_STORE_MAPREBUILD_H

#include "store/alloc.h"
#include "store/label.h"

struct bs_pool;

/* Called by import once the pool state of `ub` is loaded (p->io.alloc from
 * alloc_load_checked with *li, p->mos_od, p->ds_list) and before the sync
 * thread starts.  If a chunk had no valid version or li's digest differs from
 * the uberblock's, rebuilds p->io.alloc from the MOS and every volume tree,
 * logs a warning and sets p->map_rebuilt; if the trees cannot all be walked
 * or two blocks overlap, logs an error and sets p->readonly.  Returns 0: a
 * damaged map never fails the import by itself. */
int map_verify(struct bs_pool *p, const struct uberblock *ub, const struct alloc_load_info *li);

/* After import started the pool: if the map was rebuilt (and the pool is
 * writable), commit a txg now, so the whole rebuilt map is on disk with an
 * uberblock whose digest matches it.  A failure faults the pool (logged by
 * the sync thread). */
void map_rebuild_commit(struct bs_pool *p);

#endif
