/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A worker pool (workpool.h).  Invariant (under m): busy
 * counts the workers still draining generation gen; jobs are handed out by
 * the atomic counter next, so each index runs exactly once. */
#include "store/workpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/blkio.h"

struct wpool {
    pthread_mutex_t m;
    pthread_cond_t cv_go, cv_done;
    unsigned nthreads;
    pthread_t *th;
    struct blk_scratch *scratch;
    uint64_t gen;
    bool stop;
    bool bare; /* no scratch: jobs get NULL */
    unsigned busy;
    wp_fn fn;
    void *ctx;
    size_t n;
    _Atomic size_t next;
};

struct wp_arg {
    struct wpool *wp;
    unsigned idx;
};

static void wp_drain(struct wpool *wp, struct blk_scratch *s)
{
    size_t i;
    while ((i = atomic_fetch_add(&wp->next, 1)) < wp->n)
        wp->fn(wp->ctx, i, s);
}

static void *wp_main(void *arg)
{
    struct wp_arg *a = arg;
    struct wpool *wp = a->wp;
    struct blk_scratch *s = wp->bare ? NULL : &wp->scratch[a->idx];
    free(a);
    uint64_t seen = 0;
    pthread_mutex_lock(&wp->m);
    for (;;) {
        while (!wp->stop && wp->gen == seen)
            pthread_cond_wait(&wp->cv_go, &wp->m);
        if (wp->stop)
            break;
        seen = wp->gen;
        pthread_mutex_unlock(&wp->m);
        wp_drain(wp, s);
        pthread_mutex_lock(&wp->m);
        if (--wp->busy == 0)
            pthread_cond_signal(&wp->cv_done);
    }
    pthread_mutex_unlock(&wp->m);
    return NULL;
}

void wp_free(struct wpool *wp)
{
    if (!wp)
        return;
    pthread_mutex_lock(&wp->m);
    wp->stop = true;
    pthread_cond_broadcast(&wp->cv_go);
    pthread_mutex_unlock(&wp->m);
    for (unsigned i = 0; i < wp->nthreads; i++)
        pthread_join(wp->th[i], NULL);
    for (unsigned i = 0; i < wp->nthreads; i++)
        blk_scratch_free(&wp->scratch[i]);
    free(wp->scratch);
    free(wp->th);
    pthread_cond_destroy(&wp->cv_go);
    pthread_cond_destroy(&wp->cv_done);
    pthread_mutex_destroy(&wp->m);
    free(wp);
}

static int wp_create(unsigned nthreads, int ashift, bool bare, struct wpool **out)
{
    struct wpool *wp = calloc(1, sizeof *wp);
    if (!wp)
        return -ENOMEM;
    pthread_mutex_init(&wp->m, NULL);
    pthread_cond_init(&wp->cv_go, NULL);
    pthread_cond_init(&wp->cv_done, NULL);
    wp->bare = bare;
    wp->th = calloc(nthreads ? nthreads : 1, sizeof *wp->th);
    wp->scratch = calloc(nthreads ? nthreads : 1, sizeof *wp->scratch);
    if (!wp->th || !wp->scratch) {
        wp_free(wp);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < nthreads; i++) {
        struct wp_arg *a = malloc(sizeof *a);
        if (a) {
            a->wp = wp;
            a->idx = i;
        }
        if (!a || (!bare && blk_scratch_init(&wp->scratch[i], 128u << 10, ashift) < 0) ||
            pthread_create(&wp->th[i], NULL, wp_main, a) != 0) {
            free(a);
            blk_scratch_free(&wp->scratch[i]);
            wp_free(wp);
            return -ENOMEM;
        }
        pthread_setname_np(wp->th[i], "txg-worker"); /* else the creator's name */
        wp->nthreads++;
    }
    *out = wp;
    return 0;
}

int wp_new(unsigned nthreads, int ashift, struct wpool **out)
{
    return wp_create(nthreads, ashift, false, out);
}

int wp_new_bare(unsigned nthreads, struct wpool **out)
{
    return wp_create(nthreads, 0, true, out);
}

void wp_run(struct wpool *wp, wp_fn fn, void *ctx, size_t n, struct blk_scratch *own)
{
    pthread_mutex_lock(&wp->m);
    wp->fn = fn;
    wp->ctx = ctx;
    wp->n = n;
    atomic_store(&wp->next, 0);
    wp->busy = wp->nthreads;
    wp->gen++;
    pthread_cond_broadcast(&wp->cv_go);
    pthread_mutex_unlock(&wp->m);
    wp_drain(wp, own);
    pthread_mutex_lock(&wp->m);
    while (wp->busy > 0)
        pthread_cond_wait(&wp->cv_done, &wp->m);
    pthread_mutex_unlock(&wp->m);
}

unsigned wp_nthreads(const struct wpool *wp)
{
    return wp->nthreads;
}
