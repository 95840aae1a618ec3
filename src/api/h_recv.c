/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Receiving a send stream: POST /pools/{pool}/volumes/{vol}/recv with the
 * stream as an application/octet-stream body of any length, and the state
 * of an interrupted resumable receive (GET .../recv-token, DELETE .../recv).
 *
 * bs_recv runs in a thread of its own reading a pipe; http.c feeds the
 * upload chunks into the other end as they arrive, so the stream is never
 * held in memory.  The end of the pipe is only the end of the stream when
 * the whole upload arrived (`complete`); a connection that breaks off reads
 * as -EPIPE, never as a clean end.  If bs_recv gives up early, the rest of
 * the upload is swallowed and the error answered when it is over (see
 * stream.c for why). */
#include "api/handlers.h"
#include "api/stream.h"
#include "common/log.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct recv_stream {
    struct api_stream base;
    struct pool_entry *e; /* pinned (api_stream_pin) */
    char pool[64], vol[64];
    struct bs_recv_opts opts;
    struct api_worker w;  /* bs_recv's thread and its pipe */
    atomic_bool complete;  /* the whole upload arrived */
    bool finished;         /* finish answered */
    /* written by the thread, read after joining it */
    int rc;
    struct berr err;
    struct bs_recv_stats stats;
};

static ssize_t pipe_read(void *opaque, void *buf, size_t len)
{
    struct recv_stream *s = opaque;
    for (;;) {
        ssize_t n = read(s->w.rfd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0 && !atomic_load(&s->complete))
            return -EPIPE; /* the upload broke off */
        return n;
    }
}

static void *recv_thread(void *arg)
{
    struct recv_stream *s = arg;
    s->rc = bs_recv(s->e->pool, s->vol, &s->opts, pipe_read, s, &s->stats, &s->err);
    /* a writer still feeding us gets EPIPE and swallows the rest */
    close(s->w.rfd);
    s->w.rfd = -1;
    return NULL;
}

static void recv_feed(struct api_stream *base, const char *data, size_t len)
{
    struct recv_stream *s = (struct recv_stream *)base;
    if (s->w.wfd < 0)
        return;
    if (write_full(s->w.wfd, data, len) < 0) {
        /* the receiver stopped reading (it failed): discard from now on */
        close(s->w.wfd);
        s->w.wfd = -1;
    }
}

static int recv_finish(struct api_stream *base, json_t **resp)
{
    struct recv_stream *s = (struct recv_stream *)base;
    atomic_store(&s->complete, true);
    if (s->w.wfd >= 0) {
        close(s->w.wfd);
        s->w.wfd = -1;
    }
    api_worker_join(&s->w);
    s->finished = true;
    /* a stream that fails its checks (corrupt, truncated) is the client's
     * bad input (400 bad_stream), not a failure of this pool */
    if (s->rc == -EILSEQ || s->rc == -EPIPE)
        s->rc = -EBADMSG;
    if (s->rc < 0) {
        int status = api_http_status(s->rc);
        if (status >= 500)
            blog_err("api: receive into %s/%s: %s", s->pool, s->vol, s->err.msg);
        else
            blog_debug("api: receive into %s/%s: %s", s->pool, s->vol, s->err.msg);
        *resp = api_error_json(s->rc, s->err.msg);
        return status;
    }
    blog_info("api: received %s/%s (%" PRIu64 " bytes)", s->pool, s->stats.snapshot,
              s->stats.bytes_received);
    char full[160], snap[256];
    snprintf(full, sizeof(full), "%s/%s", s->pool, s->vol);
    snprintf(snap, sizeof(snap), "%s/%s", s->pool, s->stats.snapshot);
    *resp = json_pack("{s:s,s:s,s:o}", "name", full, "snapshot", snap, "bytes_received",
                      json_u64(s->stats.bytes_received));
    /* a raw receive says what it did to the target's key slots */
    static const char *const ks[] = { NULL, "same", "updated", "kept" };
    if (*resp && s->stats.keyslots > BS_RECV_KEYSLOTS_NONE &&
        s->stats.keyslots <= BS_RECV_KEYSLOTS_KEPT) {
        json_object_set_new(*resp, "keyslots", json_string(ks[s->stats.keyslots]));
        if (s->stats.keyslots == BS_RECV_KEYSLOTS_KEPT)
            json_object_set_new(*resp, "keyslots_shared_with",
                                json_string(s->stats.keyslots_shared_with));
    }
    return *resp ? 201 : 500;
}

static void recv_free(struct api_stream *base)
{
    struct recv_stream *s = (struct recv_stream *)base;
    if (!s)
        return;
    if (s->w.wfd >= 0)
        close(s->w.wfd); /* not complete: the receiver reads -EPIPE and stops */
    api_worker_join(&s->w);
    if (!s->finished && s->rc < 0)
        blog_warn("api: receive into %s/%s interrupted: %s", s->pool, s->vol, s->err.msg);
    if (s->w.rfd >= 0)
        close(s->w.rfd);
    api_stream_unpin(s->e);
    free(s);
}

static const struct api_stream_ops recv_ops = {
    .feed = recv_feed,
    .finish = recv_finish,
    .free = recv_free,
};

int api_recv_open(const struct api_call *c, struct api_stream **out, struct berr *err)
{
    bool force = api_get_bool(c->query, "force", false);
    /* a received stream replaces the volume's contents: never under a guest */
    int r = api_vol_vm_check(c->ctx, c->pool, c->vol, err);
    if (r < 0)
        return r;
    r = api_export_claim(c->ctx, c->pool, c->vol, force, "receive into it", err);
    if (r < 0)
        return r;
    struct recv_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return berr_set(err, ENOMEM, "out of memory");
    s->base.ops = &recv_ops;
    s->w.rfd = s->w.wfd = -1;
    s->finished = true; /* until the thread runs, failures are the caller's to answer */
    snprintf(s->pool, sizeof(s->pool), "%s", c->pool);
    snprintf(s->vol, sizeof(s->vol), "%s", c->vol);
    s->opts.force = force;
    s->opts.resumable = api_get_bool(c->query, "resumable", false);
    r = api_stream_pin(c, &s->e, err);
    if (r == 0)
        r = api_worker_start(&s->w, recv_thread, s, "receive", err);
    if (r < 0) {
        recv_free(&s->base);
        return r;
    }
    s->finished = false;
    *out = &s->base;
    return 0;
}

int h_stream_only(const struct api_call *c, json_t **out, struct berr *err)
{
    return berr_set(err, ENOTSUP, "this endpoint streams its data and is only served over "
                    "HTTP");
}

int h_vol_recv_token(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    char token[4096];
    r = bs_recv_token(e->pool, c->vol, token, sizeof(token), err);
    pooltab_unlock(c->ctx->pools);
    if (r == 0) {
        char full[160];
        snprintf(full, sizeof(full), "%s/%s", c->pool, c->vol);
        *out = json_pack("{s:s,s:s}", "name", full, "token", token);
    }
    return r;
}

int h_vol_recv_abort(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    r = bs_recv_abort(e->pool, c->vol, err);
    if (r == 0)
        blog_info("volume %s/%s: interrupted receive aborted", e->name, c->vol);
    pooltab_unlock(c->ctx->pools);
    if (r == 0) {
        char full[160];
        snprintf(full, sizeof(full), "%s/%s", c->pool, c->vol);
        *out = json_pack("{s:s,s:b}", "name", full, "aborted", 1);
    }
    return r;
}
