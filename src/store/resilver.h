/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Dirty time logs (dtl.c), resilver (resilver.c) and the scan hooks they
 * use (scrub.c).  Internal to the engine.
 *
 * A leaf's DTL is the range of txgs lo..hi whose blocks it may lack (it was
 * offline, faulted or missing then, or it is new).  It lives in the leaf
 * (struct vdev dtl_lo/dtl_hi) and in every label (FORMAT.md 2).  A resilver
 * copies the blocks born in the DTLs of its targets to them and then clears
 * the DTLs. */
#ifndef BERTH_STORE_RESILVER_H
#define BERTH_STORE_RESILVER_H

#include "store/pool_impl.h"

/* ---- DTLs (dtl.c) ---- */

/* Widen l's DTL to cover lo..hi (lo >= 1).  Alone only before the pool's
 * threads run (import); afterwards through dtl_mark_missed. */
void dtl_add(struct vdev *l, uint64_t lo, uint64_t hi);
void dtl_clear(struct vdev *l);
/* l missed lo..hi (hi < lo: nothing more, a new member): DTL widened, stale,
 * stale_gen bumped, as one step under p->dtl_lock (dtl.c top). */
void dtl_mark_missed(bs_pool *p, struct vdev *l, uint64_t lo, uint64_t hi);
/* l's DTL and its stale_gen, read as one step under p->dtl_lock. */
uint32_t dtl_snapshot(bs_pool *p, struct vdev *l, uint64_t *lo, uint64_t *hi);
/* The end of a pass that covered l as of stale_gen `gen`: if stale_gen is
 * still gen, clear l's DTL and stale mark; the check and the clear are one
 * step under p->dtl_lock, so a miss noted meanwhile is never wiped.  -1 if
 * the generation changed (nothing cleared), else whether l was stale. */
int dtl_clear_if(bs_pool *p, struct vdev *l, uint32_t gen);
/* A leaf of p->vd that was OFFLINE or FAULTED comes back (admin_lock held):
 * its DTL gets the txgs after its newest uberblock up to the last one
 * synced, and it is ONLINE (stale if it missed anything) before the next
 * txg syncs.  A running resilver is stopped first: its position in the
 * labels was for the old DTLs. */
void dtl_leaf_back(bs_pool *p, unsigned t, struct vdev *l);
/* Before the uberblock of txg is written (sync thread, sync_mutex held,
 * every block of txg flushed): each leaf of a mirror or raidz that is not
 * usable now (FAULTED during this txg, OFFLINE, missing) and whose absence
 * is not yet in the labels gets txg in its DTL and the stale mark, and the
 * labels are written with them.  A member of such a top whose own label
 * write fails is FAULTED (it takes no uberblock of txg), unless the top
 * could not serve its blocks without it (dtl.c top).  0, or an error (the
 * txg must then not commit: a crash after its uberblock would lose the
 * miss). */
int dtl_note_missed(bs_pool *p, uint64_t txg);
/* The newest txg whose uberblock leaf l of top t holds (0: none readable). */
uint64_t dtl_leaf_newest(bs_pool *p, unsigned t, struct vdev *l);

/* ---- resilver (resilver.c) ---- */

struct rsv_target {
    uint32_t mask[BLK_MAX_TOPS];    /* leaves (bit i: child i of top t) being filled */
    uint64_t lo, hi;                /* the union of their DTLs */
    uint32_t gen[BLK_MAX_TOPS][32]; /* their stale_gen when the resilver started */
};
/* The usable leaves of every top with a DTL; returns how many. */
unsigned resilver_targets(bs_pool *p, struct rsv_target *tg);
/* A batch of blocks to copy (resilver.c "batches"): each block's stored
 * bytes, read verified from a copy outside the targets, are written to the
 * targets whose DTL holds its birth.  The walk adds the
 * blocks it visits, and runs the batch when rsv_batch_add says it is full,
 * before it records a position, and at the end of each unit.  Running it
 * copies every queued block (several at once, in device order) and empties
 * it; *copied is the bytes written, *data the data blocks copied, and fail
 * is called (serialised) for each block that could not be copied. */
struct rsv_batch;
typedef void (*rsv_fail_fn)(void *ctx, const char *name, const struct blkptr *bp);
struct rsv_batch *rsv_batch_new(void);
void rsv_batch_free(struct rsv_batch *b); /* NULL accepted */
/* Queue bp if a target lacks it; true when the batch should run now.
 * `name` (the unit's, for errors) must stay valid until the batch ran. */
bool rsv_batch_add(bs_pool *p, struct rsv_batch *b, const struct rsv_target *tg,
                   const struct blkptr *bp, const char *name);
void rsv_batch_run(bs_pool *p, struct rsv_batch *b, uint64_t *copied, unsigned *data,
                   rsv_fail_fn fail, void *fctx);
/* Make what was copied durable (flush the targets). */
int resilver_flush(bs_pool *p, const struct rsv_target *tg);
/* A whole pass finished: clear the DTLs and stale marks of the targets still
 * usable and unchanged, rewrite the labels. */
void resilver_done(bs_pool *p, const struct rsv_target *tg);
/* Start (or restart) the resilver if a usable leaf has a DTL, from `from`
 * when it resumes a position recorded in the labels for the same DTLs. */
int resilver_request(bs_pool *p, const struct bs_scrub_pos *from);

/* The leaf named by path (or "missing-GUID" name, or pool-wide index): its
 * index in its top, the top in *t; -ENOENT with a message if none
 * (pool_vdev.c). */
int pool_find_leaf(bs_pool *p, const char *path, unsigned *t, struct berr *err);

/* ---- scan hooks (scrub.c) ---- */

/* Start a resilver of the current targets (preempting a scrub, restarting a
 * resilver); nothing if no target.  Caller holds admin_lock or is import. */
int scan_resilver(bs_pool *p, const struct bs_scrub_pos *from, struct berr *err);
/* Stop a running resilver (it ends canceled, its DTLs stay). */
void scan_stop_resilver(bs_pool *p);
/* A writer short of space: the running scrub or resilver lets go of the
 * frees its pass holds (alloc_hold_frees) and goes on from where it is with
 * a new pass; true once it did (waits up to 10 s), false if none held any. */
bool scan_yield_frees(bs_pool *p);
/* The same, and with `any` a scrub too (the vdev tree is about to change:
 * no scan thread may write labels meanwhile). */
void scan_stop(bs_pool *p, bool any);
/* A replace that keeps a healthy mirror member until the new one is
 * resilvered (vdev_replace.c): when a resilver ends, the scan thread calls
 * replace_finish, which detaches the old member if the new one (by path)
 * has no DTL left.  0 detached, 1 not yet, -ENOENT the pair is gone, else
 * an error (-EINTR: the scan was being stopped: the old one stays). */
void scan_set_replacing(bs_pool *p, uint64_t old_guid, const char *new_path);
/* The pending replace: the old member's guid (0: none) and the new path. */
uint64_t scan_replacing(bs_pool *p, char *new_path, size_t len);
int replace_finish(bs_pool *p, uint64_t old_guid, const char *new_path, _Atomic int *stop);
/* Test knob: sleep ms after each data block a resilver copies. */
int scan_set_delay(bs_pool *p, unsigned ms, struct berr *err);
/* Test knob (vdev_replace.c): the next replace/attach/detach stops after
 * writing the labels, before its txg commits, and fails (a crash there). */
void replace_debug_crash(bool on);
/* The durable position of the running resilver, for the labels. */
bool scan_label_pos(bs_pool *p, struct bs_scrub_pos *pos);

#endif
