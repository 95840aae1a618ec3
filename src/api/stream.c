/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Entry to the streaming endpoints (stream.h): route and validate like
 * api_dispatch, then hand over to send (h_send.c) or receive (h_recv.c).
 * A request that fails before it starts becomes an "error stream", which
 * swallows any upload and then answers the JSON error: answering while the
 * client is still sending would make it fail on a broken pipe instead of
 * reading our answer. */
#include "api/stream.h"
#include "api/handlers.h"
#include "common/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

struct err_stream {
    struct api_stream base;
    int rc;
    struct berr err;
};

static int err_finish(struct api_stream *s, json_t **resp)
{
    struct err_stream *es = (struct err_stream *)s;
    *resp = api_error_json(es->rc, es->err.msg);
    return api_http_status(es->rc);
}

static void err_free(struct api_stream *s)
{
    free(s);
}

static const struct api_stream_ops err_ops = {
    .finish = err_finish,
    .free = err_free,
};

static struct api_stream *error_stream(int rc, const struct berr *err, const char *method,
                                       const char *path)
{
    int status = api_http_status(rc);
    if (status >= 500)
        blog_err("api: %s %s -> %d %s", method, path, status, err->msg);
    else
        blog_debug("api: %s %s -> %d %s", method, path, status, err->msg);
    struct err_stream *es = calloc(1, sizeof(*es));
    if (!es)
        return NULL; /* http.c then fails the connection */
    es->base.ops = &err_ops;
    es->rc = rc;
    es->err = *err;
    return &es->base;
}

struct api_stream *api_stream_open(struct api_ctx *ctx, const char *method, const char *path,
                                   json_t *query)
{
    struct api_match m;
    struct berr err = {0};
    if (api_route_match(method, path, &m, NULL, 0, &err) < 0)
        return NULL;
    enum api_route_id id = m.route->id;
    if (id != R_SNAP_SEND && id != R_VOL_RECV) {
        api_match_free(&m);
        return NULL;
    }
    json_t *q = NULL, *body = json_object();
    int rc = body ? api_validate_caps(&m, &err) : berr_set(&err, ENOMEM, "out of memory");
    if (rc == 0)
        rc = api_validate_query(m.route, query, &q, &err);
    struct api_stream *s = NULL;
    if (rc == 0) {
        struct api_call call = {.ctx = ctx, .pool = m.caps[0], .body = body, .query = q};
        if (id == R_SNAP_SEND) {
            call.snap = m.caps[1];
            rc = api_send_open(&call, &s, &err);
        } else {
            call.vol = m.caps[1];
            rc = api_recv_open(&call, &s, &err);
        }
    }
    if (rc < 0)
        s = error_stream(rc, &err, method, path);
    json_decref(q);
    json_decref(body);
    api_match_free(&m);
    return s;
}

int api_stream_pin(const struct api_call *c, struct pool_entry **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    pool_entry_ref(e);
    atomic_fetch_add(&e->handles, 1);
    pooltab_unlock(c->ctx->pools);
    *out = e;
    return 0;
}

void api_stream_unpin(struct pool_entry *e)
{
    if (!e)
        return;
    atomic_fetch_sub(&e->handles, 1);
    pool_entry_unref(e);
}

int api_worker_start(struct api_worker *w, void *(*fn)(void *), void *arg, const char *what,
                     struct berr *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return berr_errno(err, errno, "pipe");
    w->rfd = fds[0];
    w->wfd = fds[1];
    int e = pthread_create(&w->thread, NULL, fn, arg);
    if (e)
        return berr_errno(err, e, "cannot start the %s thread", what);
    w->running = true;
    return 0;
}

void api_worker_join(struct api_worker *w)
{
    if (w->running) {
        pthread_join(w->thread, NULL);
        w->running = false;
    }
}
