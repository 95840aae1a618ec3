/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replication jobs: the table, the scheduler thread and the API callbacks
 * (locking rules at the top of repl.h).
 *
 * Scheduling: a job's first cycle runs as soon as it is created (or when
 * berthd starts, if its last run is older than `every`).  After a success
 * the next cycle starts `every` after the previous one started (at once if
 * the cycle took longer); after n consecutive failures it waits
 * repl_backoff(every, n) from the failure.  `run` requests go first.  The
 * one thread runs one cycle at a time, so two jobs never write to the same
 * pool concurrently and a cycle never races with itself.  No failure of a
 * cycle is fatal: it is recorded in the job's state and retried. */
#include "common/log.h"
#include "common/util.h"
#include "daemon/repl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Wake at least this often, so that a wall-clock step back cannot put the
 * scheduler to sleep for hours. */
#define SCHED_MAX_SLEEP 60

static void job_unref(struct repl_job *j)
{
    if (j && --j->refs == 0)
        free(j);
}

static struct repl_job *find(struct repl_mgr *m, const char *name)
{
    for (struct repl_job *j = m->jobs; j; j = j->next)
        if (strcmp(j->cfg.name, name) == 0)
            return j;
    return NULL;
}

static int64_t next_after(const struct repl_job *j, int64_t now)
{
    /* never run, or a transfer was cut short by a stop: go now (resume) */
    if (!j->st.last_run || j->st.inflight[0])
        return now;
    int64_t t = j->st.failures ? j->st.last_error_time +
                                     (int64_t)repl_backoff(j->cfg.every, j->st.failures)
                               : j->st.last_run + (int64_t)j->cfg.every;
    return t > now ? t : now;
}

/* Insert sorted by name; the list owns the reference. */
static void add_job(struct repl_mgr *m, struct repl_job *j)
{
    struct repl_job **pp = &m->jobs;
    while (*pp && strcmp((*pp)->cfg.name, j->cfg.name) < 0)
        pp = &(*pp)->next;
    j->next = *pp;
    *pp = j;
    j->refs = 1;
    atomic_init(&j->cancel, false);
    j->st.running = false;
    j->st.next_run = next_after(j, (int64_t)time(NULL));
}

void repl_note_inflight(struct repl_mgr *m, struct repl_job *j, const char *to, const char *from)
{
    pthread_mutex_lock(&m->lock);
    snprintf(j->st.inflight, sizeof(j->st.inflight), "%s", to ? to : "");
    snprintf(j->st.inflight_from, sizeof(j->st.inflight_from), "%s", from ? from : "");
    if (!j->deleted)
        repl_store_save(m);
    pthread_mutex_unlock(&m->lock);
}

/* Fold a cycle's outcome into the job's state (m->lock held). */
static void apply(struct repl_job *j, int rc, const struct repl_outcome *o, const struct berr *err)
{
    struct repl_state *s = &j->st;
    int64_t now = (int64_t)time(NULL);
    s->running = false;
    s->runs++;
    s->bytes_last = o->bytes;
    s->bytes_total += o->bytes;
    s->pruned_total += o->pruned;
    if (o->newest_target[0]) {
        snprintf(s->newest_target, sizeof(s->newest_target), "%s", o->newest_target);
        s->newest_target_time = o->newest_target_time;
    }
    if (o->remote_base[0])
        snprintf(s->remote_base, sizeof(s->remote_base), "%s", o->remote_base);
    if (rc == 0 || o->prune_error[0])
        snprintf(s->prune_error, sizeof(s->prune_error), "%s", o->prune_error);
    if (rc == 0) {
        s->last_success = now;
        s->failures = 0;
        blog_info("replication %s: cycle done, %llu bytes sent, newest on target %s",
                  j->cfg.name, (unsigned long long)o->bytes, s->newest_target);
    } else {
        s->failures++;
        s->last_error_time = now;
        snprintf(s->last_error, sizeof(s->last_error), "%s",
                 err->msg[0] ? err->msg : strerror(-rc));
        blog_warn("replication %s: cycle failed (%u in a row): %s", j->cfg.name, s->failures,
                  s->last_error);
    }
    s->next_run = next_after(j, now);
    j->run_rc = rc;
}

/* Run one cycle of j; called and returns with m->lock held. */
static void run_one(struct repl_mgr *m, struct repl_job *j)
{
    uint64_t gen = j->run_req;
    j->refs++;
    j->st.running = true;
    j->st.last_run = (int64_t)time(NULL);
    atomic_store(&j->cancel, false);
    pthread_mutex_unlock(&m->lock);

    struct repl_outcome o = {0};
    struct berr err = {0};
    int rc = repl_cycle(m, j, &o, &err);

    pthread_mutex_lock(&m->lock);
    if (rc == -ECANCELED && (m->stopping || j->deleted)) {
        j->st.running = false; /* not a failure: the next start resumes it */
        blog_info("replication %s: cycle stopped: %s", j->cfg.name, err.msg);
    } else {
        apply(j, rc, &o, &err);
    }
    j->run_done = gen;
    if (!j->deleted)
        repl_store_save(m);
    pthread_cond_broadcast(&m->done);
    job_unref(j);
}

static void *sched_main(void *arg)
{
    struct repl_mgr *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        int64_t now = (int64_t)time(NULL);
        struct repl_job *due = NULL, *soonest = NULL;
        for (struct repl_job *j = m->jobs; j && !due; j = j->next) {
            if (j->run_req > j->run_done)
                due = j;
            else if (!soonest || j->st.next_run < soonest->st.next_run)
                soonest = j;
        }
        if (!due && soonest && soonest->st.next_run <= now)
            due = soonest;
        if (due) {
            run_one(m, due);
            continue;
        }
        int64_t until = now + SCHED_MAX_SLEEP;
        if (soonest && soonest->st.next_run < until)
            until = soonest->st.next_run;
        struct timespec ts = {.tv_sec = (time_t)until};
        pthread_cond_timedwait(&m->wake, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---- API callbacks ---- */

static int stopping(struct repl_mgr *m, struct berr *err)
{
    return m->stopping ? berr_set(err, ECANCELED, "berthd is shutting down") : 0;
}

/* The source volume and the target pool must exist when the job is created
 * (typos are caught now rather than at 3 am); later they may come and go.
 * The source must suit the job's rawness (repl_check_source); *plain_crypt
 * says it is encrypted and the job sends plaintext off this host. */
static int check_exists(struct repl_mgr *m, const struct repl_cfg *c, bool *plain_crypt,
                        struct berr *err)
{
    int r = 0;
    pooltab_rdlock(m->pools);
    struct pool_entry *src = pooltab_find(m->pools, c->src_pool);
    struct pool_entry *dst = c->dst_pool[0] ? pooltab_find(m->pools, c->dst_pool) : NULL;
    struct bs_vol_props props;
    if (!src || !src->pool)
        r = berr_set(err, ENOENT, "source pool '%s' is %s", c->src_pool,
                     src ? "UNAVAIL" : "not imported");
    else if (bs_vol_get(src->pool, c->src_vol, &props, NULL) < 0)
        r = berr_set(err, ENOENT, "source volume %s/%s does not exist", c->src_pool,
                     c->src_vol);
    else if ((r = repl_check_source(c, &props, err)) < 0)
        ;
    else if (c->dst_pool[0] && (!dst || !dst->pool))
        r = berr_set(err, ENOENT, "target pool '%s' is %s", c->dst_pool,
                     dst ? "UNAVAIL" : "not imported");
    pooltab_unlock(m->pools);
    *plain_crypt = r == 0 && props.encrypted && !c->raw && (c->remote[0] || c->target_cmd[0]);
    return r;
}

static int op_create(void *opaque, json_t *body, json_t **out, struct berr *err)
{
    struct repl_mgr *m = opaque;
    struct repl_job *j = calloc(1, sizeof(*j));
    if (!j)
        return berr_set(err, ENOMEM, "out of memory");
    int r = repl_cfg_from_json(body, &j->cfg, err);
    bool plain_crypt = false;
    if (r == 0)
        r = check_exists(m, &j->cfg, &plain_crypt, err);
    if (r < 0) {
        free(j);
        return r;
    }
    pthread_mutex_lock(&m->lock);
    r = stopping(m, err);
    if (r == 0 && find(m, j->cfg.name))
        r = berr_set(err, EEXIST, "replication '%s' exists", j->cfg.name);
    for (struct repl_job *o = m->jobs; r == 0 && o && j->cfg.dst_pool[0]; o = o->next)
        if (strcmp(o->cfg.dst_pool, j->cfg.dst_pool) == 0 &&
            strcmp(o->cfg.dst_vol, j->cfg.dst_vol) == 0)
            r = berr_set(err, EEXIST, "replication '%s' already writes to %s/%s", o->cfg.name,
                         o->cfg.dst_pool, o->cfg.dst_vol);
    if (r < 0) {
        pthread_mutex_unlock(&m->lock);
        free(j);
        return r;
    }
    j->st.created = (int64_t)time(NULL);
    add_job(m, j);
    repl_store_save(m);
    *out = repl_job_json(j, (int64_t)time(NULL));
    if (*out && plain_crypt) /* the CLI prints it */
        json_object_set_new(*out, "warning",
                            json_string("the source volume is encrypted, but this job sends "
                                        "plaintext (decrypted with the loaded key) to another "
                                        "host; create the job with --raw to send ciphertext "
                                        "that the target stores without the key"));
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    blog_info("replication %s created: %s/%s every %llus%s", j->cfg.name, j->cfg.src_pool,
              j->cfg.src_vol, (unsigned long long)j->cfg.every, j->cfg.raw ? ", raw" : "");
    return 0;
}

static int op_list(void *opaque, json_t **out, struct berr *err)
{
    struct repl_mgr *m = opaque;
    json_t *arr = json_array();
    if (!arr)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_lock(&m->lock);
    int64_t now = (int64_t)time(NULL);
    for (struct repl_job *j = m->jobs; j; j = j->next)
        json_array_append_new(arr, repl_job_json(j, now));
    pthread_mutex_unlock(&m->lock);
    *out = json_pack("{s:o}", "replications", arr);
    return 0;
}

static int op_get(void *opaque, const char *name, json_t **out, struct berr *err)
{
    struct repl_mgr *m = opaque;
    pthread_mutex_lock(&m->lock);
    struct repl_job *j = find(m, name);
    if (j)
        *out = repl_job_json(j, (int64_t)time(NULL));
    pthread_mutex_unlock(&m->lock);
    return j ? 0 : berr_set(err, ENOENT, "no such replication '%s'", name);
}

static int op_destroy(void *opaque, const char *name, struct berr *err)
{
    struct repl_mgr *m = opaque;
    pthread_mutex_lock(&m->lock);
    int r = stopping(m, err);
    struct repl_job **pp = &m->jobs;
    while (r == 0 && *pp && strcmp((*pp)->cfg.name, name) != 0)
        pp = &(*pp)->next;
    if (r == 0 && !*pp)
        r = berr_set(err, ENOENT, "no such replication '%s'", name);
    if (r == 0) {
        struct repl_job *j = *pp;
        *pp = j->next;
        j->deleted = true;
        atomic_store(&j->cancel, true); /* a cycle in progress stops at its next write */
        repl_store_save(m);
        pthread_cond_broadcast(&m->done);
        job_unref(j);
        blog_info("replication %s destroyed (its snapshots are kept)", name);
    }
    pthread_mutex_unlock(&m->lock);
    return r;
}

static int op_run(void *opaque, const char *name, bool wait, json_t **out, struct berr *err)
{
    struct repl_mgr *m = opaque;
    pthread_mutex_lock(&m->lock);
    int r = stopping(m, err);
    struct repl_job *j = r == 0 ? find(m, name) : NULL;
    if (r == 0 && !j)
        r = berr_set(err, ENOENT, "no such replication '%s'", name);
    if (r < 0) {
        pthread_mutex_unlock(&m->lock);
        return r;
    }
    uint64_t gen = ++j->run_req;
    pthread_cond_signal(&m->wake);
    j->refs++;
    while (wait && j->run_done < gen && !j->deleted && !m->stopping)
        pthread_cond_wait(&m->done, &m->lock);
    if (wait && j->deleted)
        r = berr_set(err, ECANCELED, "replication '%s' was destroyed", name);
    else if (wait && j->run_done < gen)
        r = berr_set(err, ECANCELED, "berthd is shutting down");
    else if (wait && j->run_rc < 0)
        r = berr_set(err, -j->run_rc, "replication %s: %s", name, j->st.last_error);
    if (r == 0)
        *out = repl_job_json(j, (int64_t)time(NULL));
    job_unref(j);
    pthread_mutex_unlock(&m->lock);
    return r;
}

/* ---- lifecycle ---- */

static void add_loaded(struct repl_mgr *m, struct repl_job *j)
{
    if (find(m, j->cfg.name)) {
        blog_err("%s: duplicate replication '%s' skipped", m->path, j->cfg.name);
        free(j);
        return;
    }
    add_job(m, j);
}

int repl_mgr_new(const char *state_dir, struct pooltab *pools, struct repl_mgr **out,
                 struct berr *err)
{
    struct repl_mgr *m = calloc(1, sizeof(*m));
    if (!m)
        return berr_set(err, ENOMEM, "out of memory");
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->save_lock, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_cond_init(&m->done, NULL);
    m->pools = pools;
    snprintf(m->path, sizeof(m->path), "%s/replications.json", state_dir);
    snprintf(m->log_dir, sizeof(m->log_dir), "%s/replication", state_dir);
    m->ops = (struct api_repl_ops){op_create, op_list, op_get, op_destroy, op_run, m};
    int r = mkdir_p(m->log_dir, 0700, err);
    if (r < 0) {
        repl_mgr_free(m);
        return r;
    }
    repl_store_load(m, add_loaded);
    *out = m;
    return 0;
}

int repl_mgr_start(struct repl_mgr *m, struct api_ctx *ctx, struct berr *err)
{
    int r = pthread_create(&m->thread, NULL, sched_main, m);
    if (r != 0)
        return berr_errno(err, r, "cannot start the replication scheduler");
    m->started = true;
    ctx->repl = &m->ops;
    return 0;
}

void repl_mgr_stop(struct repl_mgr *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    for (struct repl_job *j = m->jobs; j; j = j->next)
        atomic_store(&j->cancel, true);
    pthread_cond_broadcast(&m->wake);
    pthread_cond_broadcast(&m->done);
    pthread_mutex_unlock(&m->lock);
    if (m->started)
        pthread_join(m->thread, NULL);
    m->started = false;
}

void repl_mgr_free(struct repl_mgr *m)
{
    if (!m)
        return;
    repl_mgr_stop(m);
    while (m->jobs) {
        struct repl_job *j = m->jobs;
        m->jobs = j->next;
        free(j);
    }
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->done);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->save_lock);
    free(m);
}
