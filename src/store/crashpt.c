/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Crash points (crashpt.h): one armed point for the whole process, a
 * countdown, and SIGKILL when it runs out.  SIGKILL and not exit(): nothing
 * of the process may run after the point (no atexit, no flush of buffered
 * state, no sanitizer report), exactly as after kill -9; what was written
 * with pwrite before stays in the page cache as it would after a kill -9,
 * and the points between the copies of a label (label_copy, label_torn,
 * label_power) stand for what a power cut can leave of writes not yet
 * flushed (label_power: every copy of the phase being written torn). */
#include "store/crashpt.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

/* The points, in the order a change passes them (vdev_replace.c). */
static const char *const points[] = {
    "new_wiped",      /* attach/replace: the new device's old labels wiped, flushed */
    "label_copy",     /* after each copy (of 4 per leaf) of a label header written */
    "label_torn",     /* that copy written half, then the crash */
    "label_power",    /* a power cut in a phase (2 per leaf) of a label write: its two
                         copies written half, the other phase's untouched */
    "tree_labels",    /* after each leaf's new label is durable (tree change) */
    "tree_written",   /* every member's label written, the first txg not yet */
    "commit_ub",      /* after each top got the uberblock of the new tree's first txg */
    "ub_leaf",        /* that uberblock written leaf by leaf: after each leaf */
    "any_ub_leaf",    /* the same for the uberblock of any txg (plain commits) */
    "tree_committed", /* that txg committed; the leaving member's label not yet wiped */
    "tree_forgotten", /* the leaving member's label wiped (the change is done) */
    "add_labels",     /* pool add step 1: the new top's labels durable, no map yet */
    "add_map",        /* step 1 done: its empty map durable */
    "add_old_labels", /* step 2 done: the old tops' labels carry the feature */
    "add_committed",  /* step 3 done: the txg listing the new top committed */
};
#define NPOINTS (sizeof points / sizeof *points)

static _Atomic int armed = -1;      /* index into points[], -1: none */
static _Atomic long countdown;      /* hits left before the armed one */
static _Atomic uint64_t watched_txg; /* commit_ub counts this txg's uberblocks */

int crashpt_arm(const char *spec, struct berr *err)
{
    if (spec && strcmp(spec, "off") == 0) {
        atomic_store(&armed, -1);
        return 0;
    }
    size_t len = spec ? strcspn(spec, ":") : 0;
    long n = 1;
    if (spec && spec[len] == ':') {
        char *end;
        errno = 0;
        n = strtol(spec + len + 1, &end, 10);
        if (errno || end == spec + len + 1 || *end || n < 1 || n > 100000)
            return berr_set(err, EINVAL, "crash_at=POINT:N takes N in 1..100000");
    }
    for (size_t i = 0; spec && i < NPOINTS; i++)
        if (strlen(points[i]) == len && strncmp(spec, points[i], len) == 0) {
            atomic_store(&countdown, n);
            atomic_store(&armed, (int)i);
            return 0;
        }
    char list[512];
    size_t w = 0;
    for (size_t i = 0; i < NPOINTS && w < sizeof list; i++)
        w += (size_t)snprintf(list + w, sizeof list - w, "%s%s", i ? ", " : "", points[i]);
    return berr_set(err, EINVAL, "crash_at takes off or POINT[:N], POINT one of: %s", list);
}

static bool hit(const char *point)
{
    int a = atomic_load_explicit(&armed, memory_order_relaxed);
    if (a < 0 || strcmp(points[a], point) != 0)
        return false;
    if (atomic_fetch_sub(&countdown, 1) != 1)
        return false;
    atomic_store(&armed, -1);
    return true;
}

_Noreturn void crashpt_die(const char *point)
{
    blog_warn("crash point %s reached: killing the process (test knob crash_at)", point);
    raise(SIGKILL);
    _exit(137); /* not reached */
}

void crashpt(const char *point)
{
    if (hit(point))
        crashpt_die(point);
}

bool crashpt_tear(const char *point)
{
    return hit(point);
}

void crashpt_watch_txg(uint64_t txg)
{
    atomic_store(&watched_txg, txg);
}

const char *crashpt_ub_by_leaf(uint64_t txg)
{
    int a = atomic_load_explicit(&armed, memory_order_relaxed);
    if (a < 0)
        return NULL;
    if (strcmp(points[a], "any_ub_leaf") == 0)
        return points[a];
    if (strcmp(points[a], "ub_leaf") == 0 && txg && txg == atomic_load(&watched_txg))
        return points[a];
    return NULL;
}

void crashpt_ub(uint64_t txg)
{
    if (txg && txg == atomic_load_explicit(&watched_txg, memory_order_relaxed))
        crashpt("commit_ub");
}
