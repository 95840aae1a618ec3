/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sync thread's worker pool: a parallel for over the leaves of a txg.
 * Each worker owns a blk_scratch (compression/sealing buffers), so a job
 * gets the scratch of the thread that runs it. */
#pragma once

#include <stddef.h>

struct blk_scratch;
struct wpool;

typedef void (*wp_fn)(void *ctx, size_t i, struct blk_scratch *s);

/* nthreads workers (0: the caller alone), each with a scratch for blocks
 * of up to 128K at this ashift; -ENOMEM. */
int wp_new(unsigned nthreads, int ashift, struct wpool **out);
void wp_free(struct wpool *wp); /* NULL is fine */
/* Run fn(ctx, i, scratch) for i in [0, n) on the workers and the calling
 * thread (with `own` as its scratch); returns when all are done. */
void wp_run(struct wpool *wp, wp_fn fn, void *ctx, size_t n, struct blk_scratch *own);
unsigned wp_nthreads(const struct wpool *wp);
