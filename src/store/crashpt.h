/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Crash points: a test knob that kills the process (SIGKILL, as kill -9 or
 * a power cut would stop it) at a named step of a multi-step change of the
 * devices (vdev_replace.c, pool_tops.c, label.c).  The steps and what
 * import makes of a crash after each are listed at the top of
 * vdev_replace.c.  Only armed through bs_pool_debug ("crash_at=POINT[:N]",
 * berthd --test); unarmed, a point costs one relaxed atomic load. */
#ifndef BERTH_STORE_CRASHPT_H
#define BERTH_STORE_CRASHPT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* Arm "POINT[:N]": die at the N-th time (default 1) POINT is reached from
 * now on; "off" disarms.  EINVAL (with the list of points) for anything
 * else. */
int crashpt_arm(const char *spec, struct berr *err);

/* POINT was reached: dies if it is the armed one and its count is up. */
void crashpt(const char *point);

/* For a write that can be torn there: true if this is the armed hit (the
 * caller writes part of it and calls crashpt_die). */
bool crashpt_tear(const char *point);
_Noreturn void crashpt_die(const char *point);

/* The uberblock points ("commit_ub") count only the uberblocks of this txg
 * (the first txg of a new vdev tree); 0: none. */
void crashpt_watch_txg(uint64_t txg);
void crashpt_ub(uint64_t txg);
/* Is "ub_leaf" armed for txg's uberblock (or "any_ub_leaf"): its name, and
 * label_write_ub then writes the uberblock to one leaf after the other (all
 * four copies each), the point after each; else NULL. */
const char *crashpt_ub_by_leaf(uint64_t txg);

#endif
