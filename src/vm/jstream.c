/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON message stream and connection (see jstream.h). */
#include "vm/jstream.h"
#include "common/cleanup.h"
#include "common/util.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void jstream_init(struct jstream *js)
{
    memset(js, 0, sizeof(*js));
}

void jstream_free(struct jstream *js)
{
    free(js->buf);
    jstream_init(js);
}

static void reset_scan(struct jstream *js)
{
    js->scan = 0;
    js->depth = 0;
    js->in_str = js->esc = js->started = false;
}

static void consume(struct jstream *js, size_t n)
{
    if (js->len > n)
        memmove(js->buf, js->buf + n, js->len - n);
    js->len -= n;
    reset_scan(js);
}

int jstream_feed(struct jstream *js, const void *data, size_t len)
{
    const uint8_t *d = data;
    if (!len)
        return 0;
    if (js->want_ff) {
        const uint8_t *ff = memchr(d, 0xFF, len);
        if (!ff)
            return 0;
        js->want_ff = false;
        len -= (size_t)(ff + 1 - d);
        d = ff + 1;
    }
    if (!len)
        return 0;
    if (js->len + len > JSTREAM_MAX)
        return -EMSGSIZE;
    if (js->len + len > js->cap) {
        size_t cap = js->cap ? js->cap : 4096;
        while (cap < js->len + len)
            cap *= 2;
        char *n = realloc(js->buf, cap);
        if (!n)
            return -ENOMEM;
        js->buf = n;
        js->cap = cap;
    }
    memcpy(js->buf + js->len, d, len);
    js->len += len;
    return 0;
}

void jstream_resync(struct jstream *js)
{
    js->len = 0;
    reset_scan(js);
    js->want_ff = true;
}

int jstream_next(struct jstream *js, json_t **out, struct berr *err)
{
    *out = NULL;
    for (;;) {
        if (!js->started) {
            /* skip separators between messages */
            size_t i = 0;
            while (i < js->len && (js->buf[i] == ' ' || js->buf[i] == '\t' || js->buf[i] == '\r' ||
                                   js->buf[i] == '\n' || (uint8_t)js->buf[i] == 0xFF))
                i++;
            if (i)
                consume(js, i);
            if (!js->len)
                return 0;
            if (js->buf[0] != '{') {
                /* garbage: drop up to the end of the line */
                char *nl = memchr(js->buf, '\n', js->len);
                size_t n = nl ? (size_t)(nl - js->buf) + 1 : js->len;
                berr_set(err, EBADMSG, "malformed message: expected a JSON object, got '%.*s'",
                         (int)MIN(n, 40), js->buf);
                consume(js, n);
                return -EBADMSG;
            }
            js->started = true;
            js->scan = 0;
        }
        for (; js->scan < js->len; js->scan++) {
            char ch = js->buf[js->scan];
            if (js->in_str) {
                if (js->esc)
                    js->esc = false;
                else if (ch == '\\')
                    js->esc = true;
                else if (ch == '"')
                    js->in_str = false;
                continue;
            }
            if (ch == '"')
                js->in_str = true;
            else if (ch == '{' || ch == '[')
                js->depth++;
            else if (ch == '}' || ch == ']') {
                if (--js->depth == 0) {
                    size_t n = js->scan + 1;
                    json_error_t je;
                    json_t *v = json_loadb(js->buf, n, JSON_REJECT_DUPLICATES, &je);
                    consume(js, n);
                    if (!v)
                        return berr_set(err, EBADMSG, "malformed JSON message: %s", je.text);
                    if (!json_is_object(v)) {
                        json_decref(v);
                        return berr_set(err, EBADMSG, "malformed message: not a JSON object");
                    }
                    *out = v;
                    return 1;
                }
                if (js->depth < 0) {
                    consume(js, js->scan + 1);
                    return berr_set(err, EBADMSG, "malformed message: unbalanced brackets");
                }
            }
        }
        return 0;
    }
}

/* ---- connection --------------------------------------------------------- */

uint64_t jdeadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return UINT64_MAX;
    return now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

static int wait_fd(int fd, short ev, uint64_t deadline)
{
    for (;;) {
        int ms;
        if (deadline == UINT64_MAX) {
            ms = -1;
        } else {
            uint64_t now = now_ns();
            if (now >= deadline)
                ms = 0;
            else
                ms = (int)MIN((deadline - now + 999999) / 1000000, (uint64_t)INT32_MAX);
        }
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        return r; /* 0: timeout */
    }
}

int jconn_connect(struct jconn *c, const char *path, const char *peer, struct berr *err)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->peer = peer;
    jstream_init(&c->js);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path)
        return berr_set(err, ENAMETOOLONG, "%s socket path too long: %s", peer, path);
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return berr_errno(err, errno, "%s: socket", peer);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return berr_errno(err, e, "cannot connect to %s socket %s", peer, path);
    }
    jconn_adopt(c, fd, peer);
    return 0;
}

void jconn_adopt(struct jconn *c, int fd, const char *peer)
{
    memset(c, 0, sizeof(*c));
    jstream_init(&c->js);
    c->fd = fd;
    c->peer = peer;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void jconn_close(struct jconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    jstream_free(&c->js);
    c->dead = true;
}

int jconn_send_raw(struct jconn *c, const void *buf, size_t len, uint64_t deadline,
                   struct berr *err)
{
    if (c->dead)
        return berr_set(err, EPIPE, "%s connection is closed", c->peer);
    const char *p = buf;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(c->fd, POLLOUT, deadline);
            if (r < 0)
                return berr_errno(err, -r, "%s: poll", c->peer);
            if (r == 0)
                return berr_set(err, ETIMEDOUT, "%s: timed out sending", c->peer);
            continue;
        }
        c->dead = true;
        return berr_errno(err, n < 0 ? errno : EPIPE, "%s: send", c->peer);
    }
    return 0;
}

int jconn_send(struct jconn *c, json_t *msg, uint64_t deadline, struct berr *err)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    if (!s)
        return berr_set(err, ENOMEM, "out of memory");
    size_t l = strlen(s);
    char *line = realloc(s, l + 2);
    if (!line) {
        free(s);
        return berr_set(err, ENOMEM, "out of memory");
    }
    line[l] = '\n';
    line[l + 1] = '\0';
    int r = jconn_send_raw(c, line, l + 1, deadline, err);
    free(line);
    return r;
}

int jconn_recv(struct jconn *c, json_t **out, uint64_t deadline, struct berr *err)
{
    *out = NULL;
    for (;;) {
        int r = jstream_next(&c->js, out, err);
        if (r != 0) {
            if (r < 0)
                berr_wrap(err, "%s", c->peer);
            return r;
        }
        if (c->dead)
            return berr_set(err, EPIPE, "%s connection closed", c->peer);
        char buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
            if ((r = jstream_feed(&c->js, buf, (size_t)n)) < 0) {
                c->dead = true;
                return berr_set(err, -r, "%s: message larger than %u bytes", c->peer, JSTREAM_MAX);
            }
            continue;
        }
        if (n == 0) {
            c->dead = true;
            if (c->js.len)
                return berr_set(err, EPIPE, "%s connection closed in the middle of a message", c->peer);
            return berr_set(err, EPIPE, "%s connection closed", c->peer);
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            c->dead = true;
            return berr_errno(err, errno, "%s: recv", c->peer);
        }
        if (deadline == 0)
            return 0;
        r = wait_fd(c->fd, POLLIN, deadline);
        if (r < 0)
            return berr_errno(err, -r, "%s: poll", c->peer);
        if (r == 0)
            return 0;
    }
}
