/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Streaming endpoints: send (a response body of unknown length, from
 * bs_send) and recv (a request body of any length, into bs_recv).  They
 * bypass api_dispatch's JSON bodies and its 64 KiB limit; http.c drives them:
 *
 *   first call of a request   api_stream_open(): NULL for every other route
 *   each upload chunk         ops->feed (recv; a stream without feed discards)
 *   end of the upload         ops->finish(): an HTTP status with a JSON body,
 *                             or 200 and no body: the response is then read
 *                             with ops->read until it returns 0 (complete) or
 *                             -1 (failed after the status was sent: the HTTP
 *                             stream is cut, so the client sees it broken)
 *   always, at the end        ops->free (owned by whoever holds the stream:
 *                             the request, then the response)
 *
 * Both directions run the engine in a thread of their own connected by a
 * pipe, so neither side ever holds more than a pipe's and a buffer's worth
 * of the stream in memory.  While it runs, a stream holds a reference on its
 * pool entry and counts in entry->handles, like an NBD handle. */
#ifndef BERTH_API_STREAM_H
#define BERTH_API_STREAM_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "api/api.h"

struct api_stream;

struct api_stream_ops {
    void (*feed)(struct api_stream *s, const char *data, size_t len); /* may be NULL */
    int (*finish)(struct api_stream *s, json_t **resp);
    ssize_t (*read)(struct api_stream *s, char *buf, size_t max); /* may be NULL */
    void (*free)(struct api_stream *s);
};

struct api_stream {
    const struct api_stream_ops *ops;
};

/* If method + path is a streaming route, validate its captures and query
 * and start it.  Returns NULL if the route does not stream (an ordinary
 * request); a request that fails validation or cannot start returns a
 * stream that discards any body and finishes with the error. */
struct api_stream *api_stream_open(struct api_ctx *ctx, const char *method, const char *path,
                                   json_t *query);

/* ---- for the stream implementations (h_send.c, h_recv.c) ---- */

struct api_call;
/* Start a send / a receive; *out is the new stream.  -errno with err set. */
int api_send_open(const struct api_call *c, struct api_stream **out, struct berr *err);
int api_recv_open(const struct api_call *c, struct api_stream **out, struct berr *err);

/* Pin the call's pool for the life of a stream (a reference, counted in
 * entry->handles so export and destroy wait or refuse) without holding the
 * table lock; api_stream_unpin releases it. */
struct pool_entry;
int api_stream_pin(const struct api_call *c, struct pool_entry **e, struct berr *err);
void api_stream_unpin(struct pool_entry *e);

/* The engine side of a stream: a thread and the pipe between it and the
 * connection.  rfd/wfd are -1 once closed (by whichever side owns them). */
struct api_worker {
    int rfd, wfd;
    pthread_t thread;
    bool running; /* started and not joined */
};
/* Create the pipe (O_CLOEXEC) and start fn(arg); `what` names the thread in
 * errors.  On failure the pipe ends that exist are left for the caller's
 * cleanup (which closes them) and nothing runs. */
int api_worker_start(struct api_worker *w, void *(*fn)(void *), void *arg, const char *what,
                     struct berr *err);
/* Wait for the thread to end (once; later calls do nothing). */
void api_worker_join(struct api_worker *w);

#endif
