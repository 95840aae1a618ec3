/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One replication cycle (docs/REPLICATION.md):
 *
 *   1. snapshot the source volume as VOL@<prefix><UTC stamp>;
 *   2. local target with an interrupted receive: resume it (the snapshot it
 *      was receiving is in the job's state); a resume the sender rejects is
 *      aborted so that step 3 starts clean;
 *   3. base = the newest source snapshot the target also has (same name and,
 *      for a local target, same guid; for a target command, the last
 *      snapshot it took, remote_base); send base..newest with the
 *      intermediate snapshots (-I), or a full stream when there is no base;
 *   4. after a success prune both sides by their grids (repl_prune_plan),
 *      protecting the new base, held snapshots and other snapshots.
 *
 * A remote target (cfg->remote, repl_remote.c) is listed, resumed and pruned
 * through commands on its host, like a local one.  A bare target command
 * cannot be listed: the job remembers what it took (remote_base) and prunes
 * only the source.  Nothing is pruned after a
 * failure, so a broken link never costs the snapshots it still needs. */
#include "common/log.h"
#include "common/util.h"
#include "daemon/repl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct snaplist {
    struct bs_snap_props *v;
    size_t n, cap;
};

static int collect(const struct bs_snap_props *p, void *opaque)
{
    struct snaplist *l = opaque;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        void *nv = realloc(l->v, cap * sizeof(*l->v));
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = *p;
    return 0;
}

/* Snapshots of vol, oldest first; a missing volume has none. */
static int list_snaps(bs_pool *p, const char *vol, struct snaplist *l, struct berr *err)
{
    l->n = 0;
    struct bs_vol_props props;
    if (bs_vol_get(p, vol, &props, NULL) == -ENOENT)
        return 0;
    return bs_snap_list(p, vol, collect, l, err);
}

struct cycle;
static int list_remote(struct cycle *cy, struct berr *err);

static const char *short_name(const struct bs_snap_props *p)
{
    const char *at = strchr(p->name, '@');
    return at ? at + 1 : p->name;
}

static const struct bs_snap_props *find_snap(const struct snaplist *l, const char *snap)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(short_name(&l->v[i]), snap) == 0)
            return &l->v[i];
    return NULL;
}

/* A pool for the length of the cycle, held like an NBD handle holds it. */
static int pool_get(struct pooltab *t, const char *name, const char *role, struct pool_entry **out,
                    struct berr *err)
{
    int r = 0;
    pooltab_rdlock(t);
    struct pool_entry *e = pooltab_find(t, name);
    if (!e || !e->pool) {
        r = berr_set(err, ENOENT, "%s pool '%s' is %s", role, name, e ? "UNAVAIL" : "not imported");
    } else {
        pool_entry_ref(e);
        atomic_fetch_add(&e->handles, 1);
        *out = e;
    }
    pooltab_unlock(t);
    return r;
}

static void pool_put(struct pool_entry *e)
{
    if (!e)
        return;
    atomic_fetch_sub(&e->handles, 1);
    pool_entry_unref(e);
}

struct cycle {
    struct repl_mgr *m;
    struct repl_job *j;
    const struct repl_cfg *c;
    struct pool_entry *src, *dst; /* dst NULL for a target command or a remote target */
    bool remote;                  /* cfg->remote: the target is on another host */
    struct snaplist ss, ts;       /* source and (local) target snapshots */
    struct repl_outcome *o;
};

/* The remote target's snapshots into cy->ts (oldest first, as listed). */
static int list_remote(struct cycle *cy, struct berr *err)
{
    struct bs_snap_props *v = NULL;
    size_t n = 0;
    int r = repl_remote_list(cy->c, &v, &n, err);
    if (r < 0)
        return r;
    free(cy->ts.v);
    cy->ts.v = v;
    cy->ts.n = cy->ts.cap = n;
    return 0;
}

/* Step 1.  Two cycles in the same second (a `run` right after a scheduled
 * one) would want the same name: the second one reuses the snapshot. */
static int take_snapshot(struct cycle *cy, struct berr *err)
{
    char snap[REPL_SNAP_MAX], full[BS_SNAP_NAME_MAX];
    int r = repl_snap_name(cy->c->prefix, (int64_t)time(NULL), snap, sizeof(snap));
    if (r < 0)
        return berr_set(err, -r, "cannot name a snapshot at this time");
    snprintf(full, sizeof(full), "%s@%s", cy->c->src_vol, snap);
    const char *names[] = {full};
    r = bs_snap_create(cy->src->pool, names, 1, err);
    if (r == -EEXIST)
        return 0;
    return r < 0 ? berr_wrap(err, "snapshot %s/%s", cy->c->src_pool, full) : 0;
}

int repl_check_source(const struct repl_cfg *c, const struct bs_vol_props *props,
                      struct berr *err)
{
    if (c->raw && !props->encrypted)
        return berr_set(err, EINVAL, "source volume %s/%s is not encrypted: a raw job (--raw) "
                        "replicates encrypted volumes only", c->src_pool, c->src_vol);
    if (!c->raw && props->encrypted && !props->keyloaded)
        return berr_set(err, EACCES, "source volume %s/%s is encrypted and its key is not "
                        "loaded: a job without --raw sends plaintext and needs the key (berth "
                        "key load); a job with --raw replicates it locked", c->src_pool,
                        c->src_vol);
    return 0;
}

static void send_opts(struct cycle *cy, const char *from, char *frombuf, size_t len,
                      struct bs_send_opts *so)
{
    memset(so, 0, sizeof(*so));
    so->raw = cy->c->raw; /* full, incremental and resumed alike */
    if (from && *from) {
        snprintf(frombuf, len, "@%s", from);
        so->from = frombuf;
        so->intermediates = true; /* the target gets every snapshot taken meanwhile */
    }
}

/* Send source snapshot `to` (short name) from `from` ("" = full). */
static int transfer(struct cycle *cy, const char *to, const char *from, const char *token,
                    struct berr *err)
{
    char snap[BS_SNAP_NAME_MAX], fromb[REPL_SNAP_MAX + 2];
    snprintf(snap, sizeof(snap), "%s@%s", cy->c->src_vol, to);
    struct bs_send_opts so;
    send_opts(cy, from, fromb, sizeof(fromb), &so);
    so.resume_token = token;
    uint64_t bytes = 0;
    int r;
    if (cy->dst) {
        r = repl_xfer_local(cy->src->pool, snap, &so, cy->dst->pool, cy->c->dst_vol,
                            &cy->j->cancel, &bytes, err);
    } else {
        char log[PATH_MAX + 128], cmd[REPL_CMD_MAX + 160];
        snprintf(log, sizeof(log), "%s/%s.log", cy->m->log_dir, cy->c->name);
        if (cy->remote)
            repl_remote_recv_cmd(cy->c, cmd, sizeof(cmd));
        else
            snprintf(cmd, sizeof(cmd), "%s", cy->c->target_cmd);
        r = repl_xfer_cmd(cy->src->pool, snap, &so, cmd, log, &cy->j->cancel, &bytes, err);
    }
    cy->o->bytes += bytes;
    return r;
}

/* Step 2: finish (or drop) an interrupted local receive. */
static int resume(struct cycle *cy, struct berr *err)
{
    char token[4096];
    int r = cy->remote ? repl_remote_token(cy->c, token, sizeof(token), NULL)
                       : bs_recv_token(cy->dst->pool, cy->c->dst_vol, token, sizeof(token), NULL);
    if (r == -ENOENT)
        return 0;
    char to[REPL_SNAP_MAX], from[REPL_SNAP_MAX];
    pthread_mutex_lock(&cy->m->lock);
    snprintf(to, sizeof(to), "%s", cy->j->st.inflight);
    snprintf(from, sizeof(from), "%s", cy->j->st.inflight_from);
    pthread_mutex_unlock(&cy->m->lock);
    if (r == 0 && to[0] && find_snap(&cy->ss, to)) {
        blog_info("replication %s: resuming the receive of %s", cy->c->name, to);
        r = transfer(cy, to, from, token, err);
        if (r == 0) {
            repl_note_inflight(cy->m, cy->j, NULL, NULL);
            return 0;
        }
        if (r == -ECANCELED)
            return r;
        /* a stale token, a snapshot gone, a damaged partial state: a fresh
         * transfer in this same cycle is the way forward */
        blog_warn("replication %s: resuming %s failed (%s); starting it over", cy->c->name, to,
                  err->msg);
    }
    berr_clear(err);
    r = cy->remote ? repl_remote_abort(cy->c, err) : bs_recv_abort(cy->dst->pool, cy->c->dst_vol, err);
    return r == -ENOENT ? 0 : r;
}

/* Step 3: the newest source snapshot the target has (NULL: none). */
static const char *shared_base(struct cycle *cy)
{
    const char *base = NULL;
    for (size_t i = 0; i < cy->ss.n; i++) {
        const char *n = short_name(&cy->ss.v[i]);
        if (cy->dst || cy->remote) {
            const struct bs_snap_props *t = find_snap(&cy->ts, n);
            if (t && t->guid == cy->ss.v[i].guid)
                base = n;
        } else if (strcmp(n, cy->o->remote_base[0] ? cy->o->remote_base : "") == 0) {
            base = n;
        }
    }
    return base;
}

/* Step 4 on one side. */
static void prune(struct cycle *cy, bs_pool *p, const char *pool, const struct snaplist *l,
                  const struct repl_grid *g, const char *base)
/* p NULL: the remote target */
{
    if (l->n == 0)
        return;
    struct repl_snap *s = calloc(l->n, sizeof(*s));
    if (!s)
        return;
    for (size_t i = 0; i < l->n; i++) {
        const char *n = short_name(&l->v[i]);
        s[i].ours = repl_snap_time(cy->c->prefix, n, &s[i].time);
        s[i].protect = l->v[i].nholds > 0 || strcmp(n, base) == 0;
    }
    repl_prune_plan(g, s, l->n);
    for (size_t i = 0; i < l->n; i++) {
        if (!s[i].destroy)
            continue;
        struct berr e = {0};
        int r = p ? bs_snap_destroy(p, l->v[i].name, 0, &e)
                  : repl_remote_destroy(cy->c, short_name(&l->v[i]), &e);
        if (r == 0) {
            cy->o->pruned++;
            blog_debug("replication %s: pruned %s/%s", cy->c->name, pool, l->v[i].name);
        } else if (r != -ENOENT) {
            /* clones or an NBD reader keep it: try again next cycle */
            snprintf(cy->o->prune_error, sizeof(cy->o->prune_error), "%s/%s: %s", pool,
                     l->v[i].name, e.msg[0] ? e.msg : strerror(-r));
        }
    }
    free(s);
}

static void note_newest(struct cycle *cy, const char *snap)
{
    snprintf(cy->o->newest_target, sizeof(cy->o->newest_target), "%s", snap);
    const struct bs_snap_props *p = find_snap(&cy->ss, snap);
    if (!repl_snap_time(cy->c->prefix, snap, &cy->o->newest_target_time))
        cy->o->newest_target_time = p ? (int64_t)p->creation : (int64_t)time(NULL);
}

static int run_steps(struct cycle *cy, struct berr *err)
{
    const struct repl_cfg *c = cy->c;
    /* checked before the snapshot: a cycle that cannot send takes none */
    struct bs_vol_props props;
    int r = bs_vol_get(cy->src->pool, c->src_vol, &props, err);
    if (r < 0)
        return berr_wrap(err, "source %s/%s", c->src_pool, c->src_vol);
    if ((r = repl_check_source(c, &props, err)) < 0)
        return r;
    r = take_snapshot(cy, err);
    if (r == 0)
        r = list_snaps(cy->src->pool, c->src_vol, &cy->ss, err);
    if (r == 0 && (cy->dst || cy->remote))
        r = resume(cy, err);
    if (r == 0 && cy->dst)
        r = list_snaps(cy->dst->pool, c->dst_vol, &cy->ts, err);
    if (r == 0 && cy->remote)
        r = list_remote(cy, err);
    if (r < 0)
        return r;
    /* the newest source snapshot of this job is what the target should reach */
    const char *to = NULL;
    int64_t t;
    for (size_t i = 0; i < cy->ss.n; i++)
        if (repl_snap_time(c->prefix, short_name(&cy->ss.v[i]), &t))
            to = short_name(&cy->ss.v[i]);
    if (!to)
        return berr_set(err, ENOENT, "%s/%s has no snapshot of this job", c->src_pool,
                        c->src_vol);
    const char *base = shared_base(cy);
    if (base)
        note_newest(cy, base);
    if (!base && cy->dst && bs_vol_get(cy->dst->pool, c->dst_vol, &props, NULL) == 0)
        return berr_set(err, EEXIST, "target %s/%s exists and shares no snapshot with %s/%s: "
                        "destroy it (or choose another target) for a full send", c->dst_pool,
                        c->dst_vol, c->src_pool, c->src_vol);
    if (!base && cy->remote && cy->ts.n)
        return berr_set(err, EEXIST, "remote target %s/%s has snapshots but none shared with "
                        "%s/%s: destroy it there (or choose another target) for a full send",
                        c->dst_pool, c->dst_vol, c->src_pool, c->src_vol);
    if (!base || strcmp(base, to) != 0) {
        if (cy->dst || cy->remote)
            repl_note_inflight(cy->m, cy->j, to, base);
        r = transfer(cy, to, base ? base : "", NULL, err);
        if (r < 0)
            return r;
        if (cy->dst || cy->remote)
            repl_note_inflight(cy->m, cy->j, NULL, NULL);
        note_newest(cy, to);
        if (!cy->dst && !cy->remote)
            snprintf(cy->o->remote_base, sizeof(cy->o->remote_base), "%s", to);
    }
    /* prune with fresh lists: the transfer added snapshots to the target */
    prune(cy, cy->src->pool, c->src_pool, &cy->ss, &c->keep, to);
    if (cy->dst && list_snaps(cy->dst->pool, c->dst_vol, &cy->ts, NULL) == 0)
        prune(cy, cy->dst->pool, c->dst_pool, &cy->ts, &c->keep_target, to);
    if (cy->remote && list_remote(cy, NULL) == 0)
        prune(cy, NULL, c->dst_pool, &cy->ts, &c->keep_target, to);
    return 0;
}

int repl_cycle(struct repl_mgr *m, struct repl_job *j, struct repl_outcome *o, struct berr *err)
{
    struct cycle cy = {.m = m, .j = j, .c = &j->cfg, .o = o, .remote = j->cfg.remote[0] != 0};
    pthread_mutex_lock(&m->lock);
    snprintf(o->remote_base, sizeof(o->remote_base), "%s", j->st.remote_base);
    pthread_mutex_unlock(&m->lock);
    int r = pool_get(m->pools, cy.c->src_pool, "source", &cy.src, err);
    if (r == 0 && cy.c->dst_pool[0] && !cy.remote)
        r = pool_get(m->pools, cy.c->dst_pool, "target", &cy.dst, err);
    if (r == 0)
        r = run_steps(&cy, err);
    pool_put(cy.src);
    pool_put(cy.dst);
    free(cy.ss.v);
    free(cy.ts.v);
    return r;
}
