/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The state of one txg being synced, shared by the sync thread (txg.c) and
 * the sync-context work of snapshots (snap.c, deadlist.c).  Everything here
 * is touched by the sync thread only. */
#ifndef BERTH_STORE_SYNC_IMPL_H
#define BERTH_STORE_SYNC_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/mos.h"
#include "store/objtree.h"

struct ds;
struct bs_pool;
struct synctask;

/* One deadlist entry: a block of an older snapshot that a dataset dropped
 * (docs/FORMAT.md section 11; 32 bytes on disk). */
struct dl_ent {
    uint64_t offset;
    uint64_t birth;
    uint32_t asize;
    uint32_t vdev;
};

struct sync_vol {
    struct ds *ds;
    uint64_t txg;             /* the syncing txg */
    struct mos_ds rec;        /* record as of quiesce; lineage kept current here */
    bool destroying;
    bool created;             /* made by a sync task in this txg */
    struct objdesc od;        /* new tree */
    struct leaf_update *u;
    struct dirty_ent **ents;  /* parallel to u */
    size_t n;
    uint64_t pp_txg;          /* prev's prev_txg: dl entries born after it are prev's unique */
    uint64_t dl_added;        /* bytes put on the deadlist by this txg's tree sync */
    struct dl_ent *dlp;       /* deadlist entries not yet written */
    size_t ndlp, dlp_cap;
    bool dl_rewrite;          /* the deadlist object must be rewritten from dlp alone */
    bool mac_new;             /* rec.root_mac was recomputed for od (dsauth.h) */
};

struct sync_ctx {
    struct bs_pool *p;
    uint64_t txg;
    struct sync_vol *sv;
    size_t nsv, sv_cap;
    struct { size_t sv; size_t k; } *jobs;
    size_t njobs;
    size_t per;               /* leaves per leaf_job (txg.c) */
    struct synctask *tasks;   /* taken at quiesce */
    _Atomic int err;
    _Atomic uint64_t wb_bytes; /* leaf bytes written, for the writeback hints */
};

/* snap.c: the kill hook for a volume's tree in this txg. */
void snap_kill(void *kctx, const struct blkptr *bp);
/* snap.c: run the queued snapshot tasks after the trees are synced. */
int snap_run_tasks(struct sync_ctx *c);
/* snap.c: finish tasks (result, wake waiters) once the txg committed or failed. */
void snap_tasks_done(struct sync_ctx *c, int r);
/* deadlist.c: write every pending deadlist of the txg. */
int dl_sync_all(struct sync_ctx *c);
/* deadlist.c: free a deadlist object (not the blocks it lists). */
int dl_free_object(struct sync_ctx *c, struct ds_lineage *lin);
/* deadlist.c: read a deadlist's committed entries plus pending ones. */
int dl_read_all(struct sync_ctx *c, const struct sync_vol *sv, struct dl_ent **out, size_t *n);
/* sync_vol of a dataset in this txg (NULL if none). */
struct sync_vol *sync_find(struct sync_ctx *c, const struct ds *d);
/* Append a sync_vol for a dataset created by a task (returns its index). */
int sync_add(struct sync_ctx *c, struct ds *d, size_t *idx);

#endif
