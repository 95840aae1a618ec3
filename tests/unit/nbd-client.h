/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A tiny hand-written NBD client for test-nbd-server.c: it can misbehave
 * (truncate, skip reads, send garbage), which real clients cannot.  Static
 * functions in a header because one test binary includes it. */
#ifndef BERTH_TESTS_NBD_CLIENT_H
#define BERTH_TESTS_NBD_CLIENT_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/le.h"
#include "nbd/proto.h"

static char sock_path[108]; /* where cl_connect() connects */

static int cl_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, sock_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int rd(int fd, void *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (uint8_t *)b + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int wr(int fd, const void *b, size_t n)
{
    return send(fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* true if the server closed the connection (EOF or reset) */
static bool closed_by_server(int fd)
{
    uint8_t b[256];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof(b), 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false; /* timeout */
    }
}

static int cl_hello(int fd, uint32_t cflags)
{
    uint8_t b[18];
    if (rd(fd, b, 18) < 0 || get_be64(b) != NBD_MAGIC || get_be64(b + 8) != NBD_IHAVEOPT ||
        get_be16(b + 16) != (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES))
        return -1;
    put_be32(b, cflags);
    return wr(fd, b, 4);
}

static int send_opt(int fd, uint32_t opt, const void *d, uint32_t len)
{
    uint8_t h[16];
    put_be64(h, NBD_IHAVEOPT);
    put_be32(h + 8, opt);
    put_be32(h + 12, len);
    if (wr(fd, h, 16) < 0)
        return -1;
    return len ? wr(fd, d, len) : 0;
}

/* read one option reply; returns its type, data in b (len in *len) */
static int64_t read_rep(int fd, uint32_t opt, uint8_t *b, uint32_t *len)
{
    uint8_t h[20];
    if (rd(fd, h, 20) < 0 || get_be64(h) != NBD_REP_MAGIC || get_be32(h + 8) != opt)
        return -1;
    *len = get_be32(h + 16);
    if (*len > 8192 || rd(fd, b, *len) < 0)
        return -1;
    return get_be32(h + 12);
}

/* INFO/GO data for name with the given info requests */
static size_t go_data(uint8_t *d, const char *name, size_t nlen, bool want_bs)
{
    put_be32(d, (uint32_t)nlen);
    memcpy(d + 4, name, nlen);
    put_be16(d + 4 + nlen, want_bs ? 2 : 1);
    put_be16(d + 6 + nlen, NBD_INFO_NAME);
    put_be16(d + 8 + nlen, NBD_INFO_BLOCK_SIZE);
    return 6 + nlen + (want_bs ? 4 : 2);
}

static size_t meta_data(uint8_t *d, const char *name, const char *q)
{
    size_t nl = strlen(name), ql = q ? strlen(q) : 0;
    put_be32(d, (uint32_t)nl);
    memcpy(d + 4, name, nl);
    put_be32(d + 4 + nl, q ? 1 : 0);
    if (!q)
        return 8 + nl;
    put_be32(d + 8 + nl, (uint32_t)ql);
    memcpy(d + 12 + nl, q, ql);
    return 12 + nl + ql;
}

/* Full modern handshake: structured replies, base:allocation, GO.  Returns
 * the fd in transmission or -1; eflags and size from NBD_INFO_EXPORT. */
static int cl_open(const char *name, uint16_t *eflags, uint64_t *size)
{
    uint8_t d[8192];
    uint32_t len;
    int fd = cl_connect();
    if (fd < 0 || cl_hello(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) < 0)
        goto fail;
    if (send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0) < 0 ||
        read_rep(fd, NBD_OPT_STRUCTURED_REPLY, d, &len) != NBD_REP_ACK)
        goto fail;
    size_t n = meta_data(d, name, NBD_META_BASE_ALLOCATION);
    if (send_opt(fd, NBD_OPT_SET_META_CONTEXT, d, (uint32_t)n) < 0 ||
        read_rep(fd, NBD_OPT_SET_META_CONTEXT, d, &len) != NBD_REP_META_CONTEXT ||
        read_rep(fd, NBD_OPT_SET_META_CONTEXT, d, &len) != NBD_REP_ACK)
        goto fail;
    n = go_data(d, name, strlen(name), true);
    if (send_opt(fd, NBD_OPT_GO, d, (uint32_t)n) < 0)
        goto fail;
    for (;;) {
        int64_t t = read_rep(fd, NBD_OPT_GO, d, &len);
        if (t == NBD_REP_ACK)
            return fd;
        if (t != NBD_REP_INFO)
            goto fail;
        if (get_be16(d) == NBD_INFO_EXPORT) {
            *size = get_be64(d + 2);
            *eflags = get_be16(d + 10);
        }
    }
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

static int send_req(int fd, uint16_t flags, uint16_t type, uint64_t handle, uint64_t off,
                    uint32_t len, const void *payload)
{
    uint8_t h[28];
    put_be32(h, NBD_REQUEST_MAGIC);
    put_be16(h + 4, flags);
    put_be16(h + 6, type);
    put_be64(h + 8, handle);
    put_be64(h + 16, off);
    put_be32(h + 24, len);
    if (wr(fd, h, 28) < 0)
        return -1;
    return payload ? wr(fd, payload, len) : 0;
}

/* read a simple reply; returns error field or -1 */
static int64_t read_simple(int fd, uint64_t *handle)
{
    uint8_t h[16];
    if (rd(fd, h, 16) < 0 || get_be32(h) != NBD_SIMPLE_REPLY_MAGIC)
        return -1;
    *handle = get_be64(h + 8);
    return get_be32(h + 4);
}

/* read one structured chunk header + payload into b */
static int read_chunk(int fd, uint16_t *flags, uint16_t *type, uint64_t *handle, uint8_t *b,
                      uint32_t *len, uint32_t cap)
{
    uint8_t h[20];
    if (rd(fd, h, 20) < 0 || get_be32(h) != NBD_STRUCTURED_REPLY_MAGIC)
        return -1;
    *flags = get_be16(h + 4);
    *type = get_be16(h + 6);
    *handle = get_be64(h + 8);
    *len = get_be32(h + 16);
    return *len <= cap ? rd(fd, b, *len) : -1;
}

#endif
