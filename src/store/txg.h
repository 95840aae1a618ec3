/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Transaction groups: the sync thread of a pool, the dirty throttle and the
 * waits for durability.  The state machine is described in txg.c. */
#ifndef BERTH_STORE_TXG_H
#define BERTH_STORE_TXG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/blkio.h"

struct bs_pool;
struct wpool;

struct txg {
    pthread_mutex_t lock;     /* protects the fields up to `fault` */
    pthread_cond_t cv_kick;   /* the sync thread waits here */
    pthread_cond_t cv_done;   /* waiters: committed advanced, dirty dropped, fault */
    uint64_t open_txg;        /* txg taking writes (changed under pool->lock too) */
    uint64_t committed_txg;   /* last durable txg */
    uint64_t want_txg;        /* highest txg someone waits for */
    uint64_t last_sync_ns;
    uint64_t dirty_since_ns;  /* first change of the open txg */
    bool shutdown, started;
    int fault;                /* first fatal sync error (-errno); 0 = healthy */
    _Atomic uint64_t dirty_bytes; /* open + syncing dirty buffers */
    _Atomic uint64_t syncing_bytes; /* of those, the syncing txg's (quiesce to publish) */
    _Atomic bool kicked;      /* a writer asked for an early sync */
    _Atomic bool open_dirty;  /* the open txg holds changes */
    pthread_mutex_t sync_mutex; /* held across one whole txg sync */
    pthread_t thread;
    struct wpool *workers;
    struct blk_scratch scratch; /* the sync thread's own */
    /* lazy autotrim (alloc.h alloc_trim_ripe) on a thread of its own, so
     * that hole punching never holds up a txg */
    pthread_mutex_t trim_lock;  /* protects trim_req, trim_done */
    pthread_cond_t trim_cv;     /* the trim thread waits here */
    uint64_t trim_req, trim_done; /* passes asked for / finished */
    _Atomic uint64_t busy_ns;   /* end of the last txg that wrote data or freed space */
    _Atomic bool read_flag;     /* a read since the trim thread last looked */
    uint64_t read_ns;           /* the trim thread's own: when it last saw read_flag */
    _Atomic uint64_t sync_rate; /* dirty bytes per second the last big txg retired */
    _Atomic uint64_t delay_next; /* the write throttle's last wake-up (now_ns) */
    _Atomic bool trim_stop;
    bool trim_idle_pass;        /* the trim thread's own: its pass takes all */
    bool trim_started;
    pthread_t trim_thread;
};

/* Set up (no thread yet); committed = the txg the pool was loaded at. */
int txg_init(struct bs_pool *p, uint64_t committed);
/* Start the sync thread and its workers. */
int txg_start(struct bs_pool *p);
/* Stop the thread (no final sync: call txg_sync_all first if wanted) and
 * free everything.  Safe on a txg that was never started. */
void txg_fini(struct bs_pool *p);

/* Wait until txg t is durable; 0, or the pool's fault (-EIO ...). */
int txg_wait(struct bs_pool *p, uint64_t t);
/* Commit everything changed so far and wait. */
int txg_sync_all(struct bs_pool *p);
/* The txg that will carry a change made now (call under pool->lock) and mark
 * it dirty. */
uint64_t txg_dirty_open(struct bs_pool *p);
/* Writers: the open txg holds a change (cheap when already marked). */
void txg_mark_dirty(struct bs_pool *p);
/* Writers: account new dirty bytes, kick the sync thread once the open txg
 * holds 3/8 of dirty_max (txg.c "Triggers"). */
void txg_add_dirty(struct bs_pool *p, int64_t bytes);
/* Writers, before dirtying `len` bytes: past 60% of dirty_max a delay that
 * grows as dirty data nears dirty_max (txg.c top), then a hard wait while the
 * pool holds more than dirty_max. */
int txg_throttle(struct bs_pool *p, uint64_t len);
/* Would txg_throttle delay or wait now?  (For writers that must not.) */
bool txg_would_throttle(struct bs_pool *p);
/* 0 if the pool can take writes, else -EIO (faulted) or -EROFS. */
int txg_check_writable(struct bs_pool *p);
/* A volume of the pool was read: the pool is not idle (the trim thread
 * postpones its idle pass).  Cheap enough for every read request: a load
 * of a flag that is only written once per trim-thread look. */
void txg_note_read(struct bs_pool *p);

#endif
