/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HTTP/1.1 side of the API: libmicrohttpd on a unix socket we create
 * (mode 0600), one thread per connection.  This file only moves bytes:
 * it collects the body (at most API_BODY_MAX; a larger one is refused with 413
 * without being buffered), the query string and the peer's credentials, and
 * hands the request to api_dispatch().  The streaming routes (send, recv)
 * instead pass their bodies through as they come (api/stream.h). */
#include "api/api.h"
#include "api/schema.h"
#include "api/stream.h"
#include "common/log.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct api_server {
    struct MHD_Daemon *d;
    struct api_ctx *ctx;
    int fd;          /* listening socket while we own it (after quiesce) */
    bool quiesced;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct req_state {
    char *body;
    size_t len, cap;
    bool too_big;
    struct api_stream *stream; /* a streaming route, owned until its response takes it */
};

static enum MHD_Result send_json(struct MHD_Connection *conn, int status, json_t *j,
                                 const char *allow)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        s = strdup("{\"error\":{\"code\":\"no_memory\",\"message\":\"out of memory\"}}");
    if (!s)
        return MHD_NO;
    size_t len = strlen(s);
    char *body = realloc(s, len + 2);
    if (body) {
        s = body;
        s[len++] = '\n';
        s[len] = '\0';
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, s, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow && *allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int code, const char *msg)
{
    return send_json(conn, api_http_status(code), api_error_json(code, msg), NULL);
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    if (key)
        json_object_set_new_nocheck(cls, key, json_string_nocheck(value ? value : ""));
    return MHD_YES;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct api_stream *st = cls;
    ssize_t n = st->ops->read(st, buf, max);
    if (n > 0)
        return n;
    /* END_WITH_ERROR closes the connection without the final empty chunk:
     * the client sees a broken transfer, not a short stream */
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct api_stream *st = cls;
    st->ops->free(st);
}

/* The request of a streaming route is complete: answer JSON, or stream. */
static enum MHD_Result stream_respond(struct MHD_Connection *conn, struct req_state *rs)
{
    json_t *resp = NULL;
    int status = rs->stream->ops->finish(rs->stream, &resp);
    if (resp || !rs->stream->ops->read)
        return send_json(conn, status, resp, NULL);
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 64 * 1024, stream_reader, rs->stream, stream_free);
    if (!r)
        return MHD_NO;
    rs->stream = NULL; /* the response owns it now */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* The first call of a request to a streaming route: take it over. */
static bool stream_open(struct api_server *s, struct MHD_Connection *conn, const char *url,
                        const char *method, struct req_state *rs)
{
    json_t *query = json_object();
    if (!query)
        return false;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, query);
    rs->stream = api_stream_open(s->ctx, method, url, query);
    json_decref(query);
    return rs->stream != NULL;
}

/* Only root and berthd's own user may talk to berthd (the socket is 0600
 * too; this also covers a socket made reachable by a careless chmod). */
static bool peer_allowed(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    return cred.uid == 0 || cred.uid == geteuid();
}

/* Bodies up to this size that are too large are drained before the 413;
 * beyond it the answer comes at once (and the connection is closed). */
#define API_BODY_DRAIN_MAX (16u << 20)

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct api_server *s = cls;
    struct req_state *rs = *con_cls;
    if (!rs) {
        rs = calloc(1, sizeof(*rs));
        if (!rs)
            return MHD_NO;
        *con_cls = rs;
        if (!peer_allowed(conn))
            return send_error(conn, -EACCES, "only root and berthd's user may use this socket");
        if (stream_open(s, conn, url, method, rs))
            return MHD_YES; /* no body limit: the stream takes it as it comes */
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
        if (clen > API_BODY_MAX && clen <= API_BODY_DRAIN_MAX) {
            /* Read (and drop) the body, then answer 413: answering first and
             * closing with the body unread resets the connection, and the
             * client may never see the answer. */
            rs->too_big = true;
            return MHD_YES;
        }
        if (clen > API_BODY_MAX) {
            char msg[128];
            snprintf(msg, sizeof(msg), "request body of %.24s bytes is larger than the limit "
                     "of %d", cl, API_BODY_MAX);
            return send_error(conn, -EFBIG, msg);
        }
        return MHD_YES;
    }
    if (rs->stream) {
        if (*upload_data_size == 0)
            return stream_respond(conn, rs);
        if (rs->stream->ops->feed)
            rs->stream->ops->feed(rs->stream, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rs->too_big)
            return MHD_YES;
        if (rs->len + n > API_BODY_MAX) {
            rs->too_big = true;
            free(rs->body);
            rs->body = NULL;
            return MHD_YES;
        }
        if (rs->len + n + 1 > rs->cap) {
            size_t cap = rs->cap ? rs->cap : 1024;
            while (cap < rs->len + n + 1)
                cap *= 2;
            char *nb = realloc(rs->body, cap);
            if (!nb)
                return MHD_NO;
            rs->body = nb;
            rs->cap = cap;
        }
        memcpy(rs->body + rs->len, upload_data, n);
        rs->len += n;
        return MHD_YES;
    }
    if (rs->too_big) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body is larger than the limit of %d bytes",
                 API_BODY_MAX);
        return send_error(conn, -EFBIG, msg);
    }
    json_t *query = json_object();
    if (!query)
        return MHD_NO;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, query);
    json_t *resp = NULL;
    char allow[64];
    int status = api_dispatch(s->ctx, method, url, query, rs->body ? rs->body : "", rs->len,
                              &resp, allow, sizeof(allow));
    json_decref(query);
    return send_json(conn, status, resp, status == 405 ? allow : NULL);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req_state *rs = *con_cls;
    if (rs) {
        if (rs->stream)
            rs->stream->ops->free(rs->stream);
        if (rs->body) /* it may carry key material (h_key.c) */
            explicit_bzero(rs->body, rs->cap);
        free(rs->body);
        free(rs);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    if (BLOG_WARN > blog_max_level)
        return;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t l = strlen(buf);
    while (l && buf[l - 1] == '\n')
        buf[--l] = '\0';
    blog_warn("api: http: %s", buf);
}

static int listen_unix(const char *path, struct berr *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return berr_set(err, ENAMETOOLONG, "socket path '%s' is too long", path);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return berr_errno(err, errno, "socket");
    unlink(path); /* a stale socket of a previous (killed) berthd; we hold the pidfile */
    /* Nobody can connect before listen(), so chmod between the two is race-free. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
        listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        return berr_errno(err, e, "cannot listen on %s", path);
    }
    return fd;
}

int api_server_start(struct api_ctx *ctx, const char *sock_path, struct api_server **out,
                     struct berr *err)
{
    struct api_server *s = calloc(1, sizeof(*s));
    if (!s)
        return berr_set(err, ENOMEM, "out of memory");
    s->ctx = ctx;
    snprintf(s->path, sizeof(s->path), "%s", sock_path);
    s->fd = listen_unix(sock_path, err);
    if (s->fd < 0) {
        int r = s->fd;
        free(s);
        return r;
    }
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                MHD_USE_POLL /* not select(): fds above 1024 */ |
                                MHD_USE_ITC | MHD_USE_ERROR_LOG,
                            0, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->fd,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)128,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                            MHD_OPTION_END);
    if (!s->d) {
        close(s->fd);
        unlink(sock_path);
        free(s);
        return berr_set(err, EIO, "cannot start the HTTP server on %s", sock_path);
    }
    *out = s;
    return 0;
}

void api_server_quiesce(struct api_server *s)
{
    if (!s || s->quiesced)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    s->quiesced = true;
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
        unlink(s->path);
    }
}

void api_server_stop(struct api_server *s)
{
    if (!s)
        return;
    api_server_quiesce(s);
    MHD_stop_daemon(s->d);
    free(s);
}
