/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The table of pools berthd owns, shared by the API handlers and the NBD
 * backend (src/daemon/backend.c).
 *
 * Locking: one rwlock over the table.  Anything that uses a pool handle holds
 * the read lock for the duration of the call (so the pool cannot be exported
 * or destroyed under it); adding, removing or replacing entries takes the
 * write lock.  The NBD data path never takes this lock: a volume handle holds
 * a reference on its entry, and export/destroy wait (under the write lock)
 * until `handles` drops to zero before they release the pool.
 *
 * Entries are reference-counted: the table holds one reference, every open
 * NBD volume handle another.  An entry with pool == NULL is UNAVAIL (it was
 * remembered but failed to import; `error` says why). */
#ifndef BERTH_API_POOLTAB_H
#define BERTH_API_POOLTAB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "berth/store.h"
#include "common/err.h"

struct pool_entry {
    char name[64];
    bs_pool *pool;      /* NULL when UNAVAIL */
    char **vdevs;       /* absolute paths, owned */
    size_t nvdevs;
    char error[BERR_MSG_MAX];
    atomic_uint refs;
    atomic_uint handles; /* open NBD volume handles on this pool */
    /* scrub schedule (berthd, persisted in pools.json; scrubsched.c) */
    _Atomic uint64_t scrub_every;  /* seconds, 0 = off */
    _Atomic int64_t last_scrub;    /* unix time the last scrub finished (or the
                                      schedule was set), 0 = never */
    /* a scrub in progress, saved so that a restart resumes it (scrubsched.c):
     * 0 none, 1 scanning, 2 paused; and its position */
    _Atomic int scrub_saved;
    _Atomic uint64_t scrub_pos_id, scrub_pos_blk;
    _Atomic int scrub_pos_part;
    /* attach/replace/add requests running: their new devices are in vdevs
     * before the pool has them, so the scrub scheduler must not take vdevs
     * from the pool's devices meanwhile (a crash would lose them) */
    _Atomic int dev_changing;
    struct pool_entry *next;
};

struct pooltab {
    pthread_rwlock_t lock;
    struct pool_entry *head;     /* imported or UNAVAIL, sorted by name */
    struct pool_entry *exported; /* pools exported through berthd: where to look for imports */
};

int pooltab_init(struct pooltab *t);
/* Frees every entry; pools must have been closed (entries' pool set NULL). */
void pooltab_destroy(struct pooltab *t);

void pooltab_rdlock(struct pooltab *t);
void pooltab_wrlock(struct pooltab *t);
void pooltab_unlock(struct pooltab *t);

/* Lookups and changes below need the lock (read for find, write for the rest). */
struct pool_entry *pooltab_find(struct pooltab *t, const char *name);
/* Insert a new entry (pool may be NULL + error for UNAVAIL).  EEXIST if the
 * name is present.  On success the table owns `pool`. */
int pooltab_add(struct pooltab *t, const char *name, bs_pool *pool, const char *const *vdevs,
                size_t nvdevs, const char *error, struct berr *err);
/* Replace an entry's device paths (pool add); the table's write lock held.
 * ENOMEM leaves the old list. */
int pooltab_set_vdevs(struct pool_entry *e, const char *const *vdevs, size_t nvdevs);
/* Unlink an entry and drop the table's reference. */
void pooltab_remove(struct pooltab *t, struct pool_entry *e);

/* Remember / forget the vdevs of an exported pool. */
int pooltab_remember_exported(struct pooltab *t, const char *name, const char *const *vdevs,
                              size_t nvdevs);
void pooltab_forget_exported(struct pooltab *t, const char *name);

void pool_entry_ref(struct pool_entry *e);
void pool_entry_unref(struct pool_entry *e); /* frees at zero; NULL accepted */

#endif
