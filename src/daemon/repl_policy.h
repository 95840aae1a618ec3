/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replication policy: the pure parts of a replication job (docs/REPLICATION.md).
 * Durations ("15m", "1h30m", "2s"), retention grids ("1h:24,1d:7,1w:4"),
 * the names of the snapshots a job takes ("<prefix>20261126T101500Z") and
 * the pruning decision over a list of snapshots.  No I/O, no clock, no
 * locks: everything here is unit-tested (tests/unit/test-repl-policy.c). */
#ifndef BERTH_DAEMON_REPL_POLICY_H
#define BERTH_DAEMON_REPL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define REPL_GRID_MAX 16              /* intervals of one grid */
#define REPL_GRID_COUNT_MAX 10000     /* buckets of one interval */
#define REPL_DURATION_MAX (10ULL * 366 * 86400) /* ten years */
#define REPL_PREFIX_MAX 46            /* + 16 timestamp characters <= 63 (a name) */
#define REPL_STAMP_LEN 16             /* "20261126T101500Z" */

/* Parse a duration: one or more NUMBER+UNIT with units s, m, h, d, w
 * ("15m", "1h30m", "2s").  A bare number, an unknown unit, zero, or more
 * than REPL_DURATION_MAX give EINVAL/ERANGE with a message naming `s`. */
int repl_parse_duration(const char *s, uint64_t *secs, struct berr *err);
/* The shortest spelling of secs ("1w", "1h30m", "90s" -> "1m30s"); "0s" for 0. */
const char *repl_format_duration(uint64_t secs, char *buf, size_t len);

/* A retention grid: consecutive intervals going back in time, each step
 * `count` buckets of `period` seconds (see repl_prune_plan). */
struct repl_grid_step {
    uint64_t period;
    uint32_t count;
};
struct repl_grid {
    size_t n;
    struct repl_grid_step steps[REPL_GRID_MAX];
};
/* Parse "PERIOD:COUNT[,PERIOD:COUNT...]" (spaces around items allowed),
 * e.g. "1h:24,1d:7,1w:4".  COUNT is 1..REPL_GRID_COUNT_MAX. */
int repl_parse_grid(const char *s, struct repl_grid *g, struct berr *err);
/* Canonical spelling ("1h:24,1d:7,1w:4"). */
const char *repl_format_grid(const struct repl_grid *g, char *buf, size_t len);
/* The time span the grid covers (sum of period * count). */
uint64_t repl_grid_span(const struct repl_grid *g);

/* Snapshot prefixes: 1..REPL_PREFIX_MAX characters of [A-Za-z0-9_.-],
 * starting with a letter or digit (a snapshot name is prefix + stamp). */
int repl_validate_prefix(const char *prefix, struct berr *err);
/* prefix + UTC stamp of unix time t ("repl_20261126T101500Z"). */
int repl_snap_name(const char *prefix, int64_t t, char *buf, size_t len);
/* Is `snap` (the part after '@') prefix + a valid stamp?  Then *t is its
 * unix time.  Anything else is a snapshot this job did not take. */
bool repl_snap_time(const char *prefix, const char *snap, int64_t *t);

/* One snapshot of a volume as the pruner sees it. */
struct repl_snap {
    int64_t time;    /* from its name (valid only if ours) */
    bool ours;       /* taken by this job: repl_snap_time() matched */
    bool protect;    /* never destroy (held, the newest shared snapshot ...) */
    bool destroy;    /* out: the plan destroys it */
};

/* Decide which snapshots to destroy, zrepl's grid semantics:
 *  - only snapshots with `ours` take part; the others are never destroyed;
 *  - the anchor A is the time of the newest of ours; a snapshot's age is
 *    A - time;
 *  - the grid's buckets are laid end to end going back from A: step 0 gives
 *    count0 buckets [0,p0), [p0,2p0) ... then step 1 continues where step 0
 *    ended, and so on (left-closed, right-open, in age);
 *  - in each bucket the newest snapshot is kept, the others are destroyed;
 *    a snapshot older than the grid's span is destroyed;
 *  - `protect`ed snapshots are kept whatever the grid says (they still
 *    count as their bucket's newest).
 * The newest snapshot (age 0) is therefore always kept.  Sets destroy on each
 * entry; returns the number marked.  Order of `s` does not matter. */
size_t repl_prune_plan(const struct repl_grid *g, struct repl_snap *s, size_t n);

/* Delay before the next attempt after `nfail` (>= 1) consecutive failures:
 * every * 2^(nfail-1), at most max(every, 1 hour). */
uint64_t repl_backoff(uint64_t every, unsigned nfail);

#endif
