/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scheduled replication of volumes (the zrepl part of berthd), shared by
 * its files: repl_sched.c (the job table, the scheduler thread, the API
 * callbacks), repl_store.c (<state>/replications.json and the JSON form of a
 * job), repl_run.c (one cycle: snapshot, send, prune), repl_xfer.c (moving
 * a stream into a local pool or into a target command).  The policy (grids,
 * names, pruning decisions) is pure: repl_policy.h.  docs/REPLICATION.md
 * is the user's view.
 *
 * Threads and locks: one scheduler thread runs the cycles, one job at a
 * time.  mgr->lock protects the job list and every job's `st` and
 * bookkeeping fields; a job's `cfg` never changes after creation and is
 * read without the lock.  A cycle runs without mgr->lock (it may take
 * minutes); it holds a reference on its job, so a job destroyed meanwhile
 * is freed when the cycle ends.  Pools are used like NBD handles do: a
 * reference on the pool entry and a count in entry->handles, taken under
 * the table's read lock and kept for the cycle (export/destroy of the pool
 * wait for it, see pooltab.h).  Lock order: mgr->lock -> save_lock; the
 * pool table lock is never taken under mgr->lock. */
#ifndef BERTH_DAEMON_REPL_H
#define BERTH_DAEMON_REPL_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"
#include "api/pooltab.h"
#include "common/err.h"
#include "daemon/repl_policy.h"

#define REPL_CMD_MAX 4096
#define REPL_SNAP_MAX 64 /* the part after '@' */

/* What the user asked for; immutable once the job exists. */
struct repl_cfg {
    char name[64];
    char src_pool[64], src_vol[64];
    char dst_pool[64], dst_vol[64]; /* "" when target_cmd is used */
    char target_cmd[REPL_CMD_MAX];  /* "" for a local target */
    char remote[REPL_CMD_MAX];      /* a prefix running berth on the target host: then
                                       dst_pool/dst_vol name the volume there */
    uint64_t every;                 /* seconds */
    struct repl_grid keep, keep_target;
    char prefix[REPL_PREFIX_MAX + 1];
    bool raw;                       /* send raw streams (encrypted sources only): the
                                       target stores ciphertext and never needs the key */
};

/* What happened; persisted with the job (times are unix seconds, 0 = never). */
struct repl_state {
    int64_t created;
    int64_t last_run, last_success, last_error_time;
    char last_error[BERR_MSG_MAX];
    char prune_error[BERR_MSG_MAX]; /* last snapshot that could not be pruned */
    unsigned failures;              /* consecutive */
    uint64_t runs, bytes_last, bytes_total, pruned_total;
    char newest_target[REPL_SNAP_MAX]; /* newest snapshot known on the target */
    int64_t newest_target_time;
    char remote_base[REPL_SNAP_MAX];   /* target_cmd: last snapshot the command took */
    char inflight[REPL_SNAP_MAX];      /* local: snapshot of an unfinished receive */
    char inflight_from[REPL_SNAP_MAX]; /* and its incremental base ("" = full) */
    int64_t next_run;                  /* runtime only */
    bool running;                      /* runtime only */
};

struct repl_job {
    struct repl_cfg cfg;
    struct repl_state st;
    unsigned refs;             /* list + cycles + waiting API calls */
    bool deleted;
    atomic_bool cancel;        /* abort the transfer in progress */
    uint64_t run_req, run_done; /* `run` requests queued and served */
    int run_rc;                /* result of the last cycle */
    struct repl_job *next;
};

struct repl_mgr {
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* the scheduler: a job was added or asked to run */
    pthread_cond_t done;      /* a cycle ended (for `run` waiters) */
    pthread_mutex_t save_lock; /* one writer of replications.json at a time */
    struct repl_job *jobs;    /* sorted by name */
    struct pooltab *pools;
    char path[PATH_MAX + 32];    /* <state>/replications.json */
    char log_dir[PATH_MAX + 32]; /* <state>/replication: target command output */
    pthread_t thread;
    bool started, stopping;
    struct api_repl_ops ops;
};

/* ---- repl_sched.c: the daemon's interface ---- */

/* Load <state>/replications.json (a corrupt file is moved aside, logged). */
int repl_mgr_new(const char *state_dir, struct pooltab *pools, struct repl_mgr **out,
                 struct berr *err);
/* Start the scheduler thread; ctx->repl then serves the API routes. */
int repl_mgr_start(struct repl_mgr *m, struct api_ctx *ctx, struct berr *err);
/* Cancel the transfer in progress and join the thread; the API callbacks
 * answer 503 from now on.  Call before the pools close. */
void repl_mgr_stop(struct repl_mgr *m);
/* Free everything (after the API server stopped); NULL accepted. */
void repl_mgr_free(struct repl_mgr *m);

/* Record (and persist) the receive a cycle is about to start, so that a
 * cycle after a failure or a restart can resume it; NULLs clear it. */
void repl_note_inflight(struct repl_mgr *m, struct repl_job *j, const char *to,
                        const char *from);

/* ---- repl_store.c ---- */

/* Parse a job's configuration from the API body or the file (same keys:
 * name, source, target | target_cmd, remote, every, keep, keep_target,
 * prefix, raw). */
int repl_cfg_from_json(json_t *o, struct repl_cfg *c, struct berr *err);
/* A job as JSON: configuration and state; with `now` != 0 also the runtime
 * fields (running, next_run, lag) for the API.  New reference. */
json_t *repl_job_json(const struct repl_job *j, int64_t now);
/* Fill st from a job's JSON (missing fields stay 0). */
void repl_state_from_json(json_t *o, struct repl_state *st);
/* Rewrite replications.json from the job list (caller holds m->lock);
 * errors are logged here. */
void repl_store_save(struct repl_mgr *m);
/* Read it: calls add() for each valid job (logged and skipped otherwise). */
void repl_store_load(struct repl_mgr *m, void (*add)(struct repl_mgr *m, struct repl_job *j));

/* ---- repl_run.c ---- */

/* May job c send source volume `props` now?  A raw job needs an encrypted
 * source (EINVAL); a plain job on an encrypted source needs its key loaded
 * (EACCES: it would send plaintext; a raw job replicates it locked). */
int repl_check_source(const struct repl_cfg *c, const struct bs_vol_props *props,
                      struct berr *err);

/* What a cycle learned, applied to the job's state by the scheduler. */
struct repl_outcome {
    uint64_t bytes;
    uint64_t pruned;
    char newest_target[REPL_SNAP_MAX];
    int64_t newest_target_time;
    char remote_base[REPL_SNAP_MAX]; /* target_cmd: set on success */
    char prune_error[BERR_MSG_MAX];
};
/* One cycle of job j: snapshot the source, bring the target up to it
 * (resuming an interrupted receive first), prune both sides. */
int repl_cycle(struct repl_mgr *m, struct repl_job *j, struct repl_outcome *o,
               struct berr *err);

/* ---- repl_xfer.c ---- */

/* Send `snap` ("VOL@SNAP") of src with opts into volume `vol` of dst,
 * received in-process by a thread (resumable).  *bytes: stream bytes sent. */
int repl_xfer_local(bs_pool *src, const char *snap, const struct bs_send_opts *so,
                    bs_pool *dst, const char *vol, atomic_bool *cancel, uint64_t *bytes,
                    struct berr *err);
/* Send into `sh -c cmd` (its stdin; stdout and stderr appended to log_path).
 * A non-zero exit fails with the end of its output in the message. */
int repl_xfer_cmd(bs_pool *src, const char *snap, const struct bs_send_opts *so,
                  const char *cmd, const char *log_path, atomic_bool *cancel, uint64_t *bytes,
                  struct berr *err);

/* A target on another host (repl_remote.c): cfg->remote is a command prefix
 * that runs the berth CLI there.  List: its snapshots (name VOL@SNAP, guid,
 * holds, creation) into *v (malloc'd); a missing volume has none. */
int repl_remote_list(const struct repl_cfg *c, struct bs_snap_props **v, size_t *n,
                     struct berr *err);
int repl_remote_destroy(const struct repl_cfg *c, const char *snap, struct berr *err);
/* The resume token of an interrupted receive there (-ENOENT: none). */
int repl_remote_token(const struct repl_cfg *c, char *buf, size_t len, struct berr *err);
int repl_remote_abort(const struct repl_cfg *c, struct berr *err);
/* The command that receives a stream there. */
void repl_remote_recv_cmd(const struct repl_cfg *c, char *buf, size_t len);

#endif
