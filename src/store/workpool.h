/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A worker pool: a parallel for over jobs 0..n-1, run by long-lived
 * workers and the calling thread.  The sync thread's (txg.c) runs the
 * leaves of a txg: each worker owns a blk_scratch (compression/sealing
 * buffers), so a job gets the scratch of the thread that runs it.  The
 * resilver's (resilver.c) copies the blocks of a batch and needs none. */
#pragma once

#include <stddef.h>

struct blk_scratch;
struct wpool;

typedef void (*wp_fn)(void *ctx, size_t i, struct blk_scratch *s);

/* nthreads workers (0: the caller alone), each with a scratch for blocks
 * of up to 128K at this ashift; -ENOMEM. */
int wp_new(unsigned nthreads, int ashift, struct wpool **out);
/* The same without scratch: jobs get NULL (and the caller's `own`). */
int wp_new_bare(unsigned nthreads, struct wpool **out);
void wp_free(struct wpool *wp); /* NULL is fine */
/* Run fn(ctx, i, scratch) for i in [0, n) on the workers and the calling
 * thread (with `own` as its scratch); returns when all are done.  Jobs are
 * started in index order.  One wp_run at a time per pool (its owner's
 * thread calls it). */
void wp_run(struct wpool *wp, wp_fn fn, void *ctx, size_t n, struct blk_scratch *own);
unsigned wp_nthreads(const struct wpool *wp);
