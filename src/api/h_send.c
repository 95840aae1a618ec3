/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /pools/{pool}/snapshots/{snap}/send: a send stream (docs/STREAM.md)
 * as an application/octet-stream response of unknown length (?raw: the
 * encrypted blocks as stored, no key needed).
 *
 * bs_send runs in a thread of its own and writes into a pipe; http.c's
 * response callback reads the other end.  The HTTP status is only decided
 * once SEND_PREFIX bytes have come through (or the stream ended), so that
 * the errors bs_send finds at the start (unknown snapshot, a `from` that is
 * no ancestor, a bad token) are JSON errors with their status.  An error
 * after that cuts the chunked response short: the client sees an incomplete
 * transfer, and a receiver that missed that would still reject the stream
 * on its checksums.  Such errors are logged here, where they are handled.
 *
 * Lifetime: open (pool pinned, thread started) -> finish (prefix read) ->
 * read... -> free.  free closes the read end first, so a thread blocked on
 * a client that went away gets EPIPE and ends; then it is joined. */
#include "api/handlers.h"
#include "api/stream.h"
#include "common/log.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEND_PREFIX (256u << 10)

struct send_stream {
    struct api_stream base;
    struct pool_entry *e; /* pinned (api_stream_pin) */
    char name[256];       /* "pool/vol@snap", for messages */
    char snap[BS_SNAP_NAME_MAX];
    char from[BS_SNAP_NAME_MAX];
    char *token;
    struct bs_send_opts opts;
    struct api_worker w;  /* bs_send's thread and its pipe */
    /* written by the thread, read after joining it */
    int rc;
    struct berr err;
    struct bs_send_stats stats;
    /* the first bytes, read before the status was decided */
    char *prefix;
    size_t plen, poff;
    bool eof;
    bool reported; /* the outcome has been answered or logged */
};

static int pipe_write(void *opaque, const void *buf, size_t len)
{
    struct send_stream *s = opaque;
    return write_full(s->w.wfd, buf, len);
}

static void *send_thread(void *arg)
{
    struct send_stream *s = arg;
    s->rc = bs_send(s->e->pool, s->snap, &s->opts, pipe_write, s, &s->stats, &s->err);
    /* EOF for the reader: the stream is over, for better or worse */
    close(s->w.wfd);
    s->w.wfd = -1;
    return NULL;
}

/* Read from the pipe, retrying on EINTR: bytes, 0 at the end, -errno. */
static ssize_t pipe_read(int fd, char *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0 || errno != EINTR)
            return n < 0 ? -errno : n;
    }
}

static int send_finish(struct api_stream *base, json_t **resp)
{
    struct send_stream *s = (struct send_stream *)base;
    *resp = NULL;
    while (s->plen < SEND_PREFIX && !s->eof) {
        ssize_t n = pipe_read(s->w.rfd, s->prefix + s->plen, SEND_PREFIX - s->plen);
        if (n < 0) {
            *resp = api_error_json((int)n, "reading the send stream failed");
            return api_http_status((int)n);
        }
        if (n == 0)
            s->eof = true;
        s->plen += (size_t)n;
    }
    if (s->eof) {
        api_worker_join(&s->w);
        if (s->rc < 0) {
            s->reported = true;
            int status = api_http_status(s->rc);
            if (status >= 500)
                blog_err("api: send %s: %s", s->name, s->err.msg);
            else
                blog_debug("api: send %s: %s", s->name, s->err.msg);
            *resp = api_error_json(s->rc, s->err.msg);
            return status;
        }
    }
    return 200;
}

static ssize_t send_read(struct api_stream *base, char *buf, size_t max)
{
    struct send_stream *s = (struct send_stream *)base;
    if (s->poff < s->plen) {
        size_t n = s->plen - s->poff < max ? s->plen - s->poff : max;
        memcpy(buf, s->prefix + s->poff, n);
        s->poff += n;
        return (ssize_t)n;
    }
    ssize_t n = s->eof ? 0 : pipe_read(s->w.rfd, buf, max);
    if (n > 0)
        return n;
    s->eof = true;
    api_worker_join(&s->w);
    s->reported = true;
    if (n < 0 || s->rc < 0) {
        blog_err("api: send %s failed after %" PRIu64 " bytes; the stream was cut short: %s",
                 s->name, s->stats.bytes_sent, n < 0 ? strerror((int)-n) : s->err.msg);
        return -1;
    }
    blog_info("api: send %s: %" PRIu64 " bytes (%" PRIu64 " data blocks, %" PRIu64
              " holes, %" PRIu64 " bytes read)", s->name, s->stats.bytes_sent, s->stats.blocks,
              s->stats.holes, s->stats.bytes_read);
    return 0;
}

static void send_free(struct api_stream *base)
{
    struct send_stream *s = (struct send_stream *)base;
    if (!s)
        return;
    if (s->w.rfd >= 0)
        close(s->w.rfd); /* a thread still writing gets EPIPE */
    api_worker_join(&s->w);
    if (!s->reported && s->rc < 0)
        blog_warn("api: send %s: stopped (%s)", s->name, s->err.msg);
    else if (!s->reported)
        blog_warn("api: send %s: the client went away after %" PRIu64 " bytes", s->name,
                  s->stats.bytes_sent);
    if (s->w.wfd >= 0)
        close(s->w.wfd);
    api_stream_unpin(s->e);
    free(s->token);
    free(s->prefix);
    free(s);
}

static const struct api_stream_ops send_ops = {
    .finish = send_finish,
    .read = send_read,
    .free = send_free,
};

/* `from` as given ("A", "@A", "VOL@A") in the form bs_send takes ("@A" or
 * "VOL@A"). */
static void set_from(struct send_stream *s, const char *from)
{
    if (!from)
        return;
    snprintf(s->from, sizeof(s->from), "%s%s", strchr(from, '@') ? "" : "@", from);
    s->opts.from = s->from;
}

int api_send_open(const struct api_call *c, struct api_stream **out, struct berr *err)
{
    struct send_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return berr_set(err, ENOMEM, "out of memory");
    s->base.ops = &send_ops;
    s->w.rfd = s->w.wfd = -1;
    snprintf(s->name, sizeof(s->name), "%s/%s", c->pool, c->snap);
    snprintf(s->snap, sizeof(s->snap), "%s", c->snap);
    set_from(s, api_get_str(c->query, "from"));
    s->opts.intermediates = api_get_bool(c->query, "intermediates", false);
    /* raw: the encrypted blocks as stored, with the wrapped key slots; the
     * snapshot may be locked (docs/STREAM.md) */
    s->opts.raw = api_get_bool(c->query, "raw", false);
    const char *token = api_get_str(c->query, "token");
    s->token = token ? strdup(token) : NULL;
    s->opts.resume_token = s->token;
    s->prefix = malloc(SEND_PREFIX);
    int r = 0;
    if (!s->prefix || (token && !s->token))
        r = berr_set(err, ENOMEM, "out of memory");
    else if (s->opts.intermediates && !s->opts.from)
        r = berr_set(err, EINVAL, "query parameter 'intermediates' needs 'from'");
    if (r == 0)
        r = api_stream_pin(c, &s->e, err);
    s->reported = true; /* until the thread runs, failures are the caller's to answer */
    if (r == 0)
        r = api_worker_start(&s->w, send_thread, s, "send", err);
    if (r < 0) {
        send_free(&s->base);
        return r;
    }
    s->reported = false;
    *out = &s->base;
    return 0;
}
