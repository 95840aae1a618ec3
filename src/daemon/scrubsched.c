/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scheduled scrubs (`berth pool set NAME scrub-schedule=monthly`) and
 * scrubs that survive a restart: a thread that, once a second, looks at
 * every imported pool:
 *
 *   - a scrub scanning or paused: its position is saved in pools.json (every
 *     5 s, and when it starts, pauses or ends), and the next berthd start
 *     resumes it there (registry.c, bs_pool_scrub_resume).  A resilver's
 *     position is not: the engine keeps it in the labels and resumes it at
 *     import (resilver.c);
 *
 * and, for a pool with a schedule:
 *
 *   - a scrub that finished since we last looked moves last_scrub to its end
 *     time (persisted in pools.json, so a restart keeps the rhythm);
 *   - no scrub scanning or paused, and last_scrub + every in the past: start
 *     one (a paused scrub is the user's: it is left alone).
 *
 * It also keeps the devices berthd imports each pool from (pools.json) in
 * step with the pool's own: a replace detaches its old device when the
 * resilver ends, inside the engine.
 *
 * Nothing here can fail berthd: an error starting a scrub is logged and
 * tried again at the next period. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "daemon/berthd.h"

struct scrubsched {
    struct berthd *d;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool stop;
};

/* Remember where a scrub in progress is (pools.json), or that none is. */
static bool save_progress(struct pool_entry *e, const struct bs_scan_stats *sc, int64_t now,
                          int64_t *last_save)
{
    int saved = strcmp(sc->state, "scanning") == 0 ? 1 : strcmp(sc->state, "paused") == 0 ? 2 : 0;
    /* a resilver keeps its own position, in the pool's labels (the import
     * resumes it): only a scrub's goes to pools.json */
    if (strcmp(sc->func, "resilver") == 0)
        saved = 0;
    int was = atomic_load(&e->scrub_saved);
    if (saved == was && (saved == 0 || now < *last_save + 5))
        return false; /* the position is written every 5 s while scanning */
    atomic_store(&e->scrub_pos_id, sc->pos.id);
    atomic_store(&e->scrub_pos_part, sc->pos.part);
    atomic_store(&e->scrub_pos_blk, sc->pos.blk);
    atomic_store(&e->scrub_saved, saved);
    *last_save = now;
    return true;
}

/* Do the devices berthd imports e's pool from differ from its devices now?
 * (a replace detaches the old one when its resilver ends, inside the engine) */
static bool devices_moved(const struct pool_entry *e, const struct bs_pool_stats *st)
{
    if (atomic_load(&e->dev_changing))
        return false; /* an attach/replace/add is under way (h_pool.c) */
    size_t n = 0;
    for (size_t i = 0; i < st->nvdevs && i < BS_POOL_MAX_LEAVES_SHOWN; i++) {
        if (st->vdevs[i].path[0] != '/')
            continue; /* missing: keep what we had for it */
        bool known = false;
        for (size_t k = 0; k < e->nvdevs; k++)
            known |= strcmp(e->vdevs[k], st->vdevs[i].path) == 0;
        if (!known)
            return true;
        n++;
    }
    return n && n < e->nvdevs && n == st->nvdevs;
}

/* Take the devices of the pools named in `names` from their pools now. */
static bool update_devices(struct berthd *d, char (*names)[64], size_t cnt)
{
    bool changed = false;
    struct bs_pool_stats *st = calloc(1, sizeof(*st));
    pooltab_wrlock(&d->pools);
    for (size_t j = 0; st && j < cnt; j++) {
        struct pool_entry *e = pooltab_find(&d->pools, names[j]);
        if (!e || !e->pool || bs_pool_stats(e->pool, st) < 0 || !devices_moved(e, st))
            continue;
        char **paths = calloc(BS_POOL_MAX_LEAVES_SHOWN, sizeof(*paths));
        size_t n = 0;
        for (size_t i = 0; paths && i < st->nvdevs && i < BS_POOL_MAX_LEAVES_SHOWN; i++)
            if (st->vdevs[i].path[0] == '/' && (paths[n] = strdup(st->vdevs[i].path)))
                n++;
        if (!paths || n == 0) {
            free(paths);
            continue;
        }
        for (size_t i = 0; i < e->nvdevs; i++)
            free(e->vdevs[i]);
        free(e->vdevs);
        e->vdevs = paths;
        e->nvdevs = n;
        changed = true;
        blog_info("pool %s: devices are now %s%s", e->name, paths[0], n > 1 ? " ..." : "");
    }
    pooltab_unlock(&d->pools);
    free(st);
    return changed;
}

static void tick(struct berthd *d, int64_t *last_save)
{
    bool changed = false;
    char moved[8][64];
    size_t nmoved = 0;
    int64_t now = (int64_t)time(NULL);
    pooltab_rdlock(&d->pools);
    for (struct pool_entry *e = d->pools.head; e; e = e->next) {
        if (!e->pool)
            continue;
        struct bs_pool_stats *st = calloc(1, sizeof(*st));
        if (!st || bs_pool_stats(e->pool, st) < 0) {
            free(st);
            continue;
        }
        changed |= save_progress(e, &st->scan, now, last_save);
        if (nmoved < 8 && devices_moved(e, st))
            snprintf(moved[nmoved++], sizeof moved[0], "%s", e->name);
        uint64_t every = atomic_load(&e->scrub_every);
        if (!every) {
            free(st);
            continue;
        }
        const char *state = st->scan.state;
        int64_t end = (int64_t)st->scan.end_time;
        if (strcmp(state, "finished") == 0 && end > atomic_load(&e->last_scrub)) {
            atomic_store(&e->last_scrub, end);
            changed = true;
        }
        /* a scheduled scrub waits for a resilver to finish */
        bool busy = strcmp(state, "scanning") == 0 || strcmp(state, "paused") == 0;
        if (!busy && now >= atomic_load(&e->last_scrub) + (int64_t)every) {
            struct berr err = {0};
            if (bs_pool_scrub(e->pool, BS_SCRUB_START, &err) == 0) {
                blog_info("pool %s: scheduled scrub started", e->name);
                /* the next one counts from this one's end (set when it finishes);
                 * until then, do not start it again */
                atomic_store(&e->last_scrub, now);
                changed = true;
            } else {
                blog_warn("pool %s: scheduled scrub: %s", e->name, err.msg);
                atomic_store(&e->last_scrub, now); /* retry after a period */
            }
        }
        free(st);
    }
    pooltab_unlock(&d->pools);
    if (nmoved)
        changed |= update_devices(d, moved, nmoved);
    if (changed)
        registry_save(d);
}

static void *main_loop(void *arg)
{
    struct scrubsched *s = arg;
    int64_t last_save = 0;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        tick(s->d, &last_save);
        pthread_mutex_lock(&s->lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        if (!s->stop)
            pthread_cond_timedwait(&s->cv, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

struct scrubsched *scrubsched_start(struct berthd *d)
{
    struct scrubsched *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->d = d;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, main_loop, s) != 0) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cv);
        free(s);
        return NULL;
    }
    return s;
}

void scrubsched_stop(struct scrubsched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cv);
    free(s);
}
