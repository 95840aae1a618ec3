/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/workpool.c: every job runs exactly once, on the
 * workers and the caller; the threads are long-lived (a run starts none:
 * the resilver runs a batch of copies on them every few milliseconds);
 * scratch per worker for the sync thread's pool, none for a bare one. */
#include "store/workpool.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/blkio.h"
#include "tap.h"

#define NJOBS 1000
#define MAXT 8

struct ctx {
    _Atomic unsigned ran[NJOBS];
    pthread_mutex_t m;
    pthread_t who[MAXT];
    struct blk_scratch *scr[MAXT];
    unsigned nwho;
    bool bad_scratch;
    struct blk_scratch *own;
};

static void job(void *arg, size_t i, struct blk_scratch *s)
{
    struct ctx *c = arg;
    atomic_fetch_add(&c->ran[i], 1);
    if (i % 50 == 0)
        usleep(200); /* some jobs wait (as a copy waits for I/O): others go on */
    pthread_mutex_lock(&c->m);
    unsigned k = 0;
    while (k < c->nwho && !pthread_equal(c->who[k], pthread_self()))
        k++;
    if (k == c->nwho && k < MAXT) {
        c->who[k] = pthread_self();
        c->scr[k] = s;
        c->nwho++;
    } else if (k < c->nwho && c->scr[k] != s) {
        c->bad_scratch = true; /* a thread's jobs always get its own scratch */
    }
    pthread_mutex_unlock(&c->m);
}

static int nthreads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static bool each_once(struct ctx *c, size_t n)
{
    for (size_t i = 0; i < NJOBS; i++)
        if (atomic_load(&c->ran[i]) != (i < n ? 1u : 0u))
            return false;
    return true;
}

static void reset(struct ctx *c)
{
    for (size_t i = 0; i < NJOBS; i++)
        atomic_store(&c->ran[i], 0);
}

int main(void)
{
    static struct ctx c;
    pthread_mutex_init(&c.m, NULL);
    wp_free(NULL);

    struct wpool *wp = NULL;
    int t0 = nthreads_now();
    ok(wp_new_bare(3, &wp) == 0 && wp && wp_nthreads(wp) == 3, "bare pool of 3 workers");
    if (!wp)
        return done_testing();
    int t1 = nthreads_now();
    ok(t0 < 0 || t1 == t0 + 3, "3 threads started (%d -> %d)", t0, t1);
    bool once = true, steady = true;
    for (int run = 0; run < 200; run++) {
        reset(&c);
        size_t n = run == 0 ? 0 : run % 3 == 0 ? 1 : NJOBS;
        wp_run(wp, job, &c, n, NULL);
        once &= each_once(&c, n);
        steady &= t0 < 0 || nthreads_now() == t1;
    }
    ok(once, "200 runs (0, 1 and %d jobs): every job ran exactly once", NJOBS);
    ok(steady, "no thread started or ended by a run");
    ok(c.nwho >= 2, "jobs ran on %u threads (caller and workers)", c.nwho);
    bool null = !c.bad_scratch;
    for (unsigned k = 0; k < c.nwho; k++)
        null &= c.scr[k] == NULL;
    ok(null, "a bare pool's jobs get no scratch");
    wp_free(wp);
    ok(t0 < 0 || nthreads_now() == t0, "wp_free ends the workers");

    /* the sync thread's kind: a scratch per worker, the caller's own */
    struct blk_scratch own = {0};
    ok(blk_scratch_init(&own, 128u << 10, 12) == 0, "caller's scratch");
    memset(&c.who, 0, sizeof c.who);
    c.nwho = 0;
    c.bad_scratch = false;
    ok(wp_new(2, 12, &wp) == 0 && wp_nthreads(wp) == 2, "pool of 2 workers with scratch");
    if (!wp)
        return done_testing();
    once = true;
    for (int run = 0; run < 50; run++) {
        reset(&c);
        wp_run(wp, job, &c, NJOBS, &own);
        once &= each_once(&c, NJOBS);
    }
    ok(once, "50 runs: every job ran exactly once");
    bool distinct = !c.bad_scratch, caller_own = false;
    for (unsigned k = 0; k < c.nwho; k++) {
        distinct &= c.scr[k] != NULL && c.scr[k]->buf != NULL;
        for (unsigned j = 0; j < k; j++)
            distinct &= c.scr[j] != c.scr[k];
        if (pthread_equal(c.who[k], pthread_self()))
            caller_own = c.scr[k] == &own;
    }
    ok(distinct, "each of %u threads has a scratch of its own", c.nwho);
    ok(caller_own, "the caller's jobs get its own scratch");
    wp_free(wp);

    ok(wp_new_bare(0, &wp) == 0 && wp_nthreads(wp) == 0, "no workers: the caller alone");
    reset(&c);
    wp_run(wp, job, &c, NJOBS, NULL);
    ok(each_once(&c, NJOBS), "every job ran once on the caller");
    wp_free(wp);
    blk_scratch_free(&own);
    return done_testing();
}
