/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The NBD server over real sockets, driven by a hand-written client that
 * can misbehave: good handshakes (GO, EXPORT_NAME, INFO, LIST, meta
 * contexts), every option error, malformed and truncated messages, bad
 * request magic, clients vanishing mid-request, a client that never reads
 * its replies, pipelining beyond the per-connection budget, kick, max_conns,
 * TCP, and shutdown with clients attached.  After each abuse a fresh client
 * must still be served. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/le.h"
#include "nbd/membackend.h"
#include "nbd/nbd_int.h"
#include "tap.h"

static char sock_path[108];
static struct nbd_mem *mem;

/* ---- a tiny client ------------------------------------------------------------ */
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

/* a fresh client can still do I/O: the server survived whatever came before */
static bool server_alive(void)
{
    uint16_t ef = 0;
    uint64_t size = 0, h = 0;
    int fd = cl_open("disk", &ef, &size);
    if (fd < 0)
        return false;
    uint8_t b[512];
    memset(b, 0x77, sizeof(b));
    bool good = send_req(fd, 0, NBD_CMD_WRITE, 7, 4096, 512, b) == 0 &&
                read_simple(fd, &h) == 0 && h == 7;
    good = good && send_req(fd, 0, NBD_CMD_DISC, 8, 0, 0, NULL) == 0 && closed_by_server(fd);
    close(fd);
    return good;
}

/* ---- tests ---------------------------------------------------------------------- */
static void test_good(void)
{
    uint16_t ef = 0, fl, ty;
    uint64_t size = 0, h;
    uint32_t len;
    static uint8_t b[1 << 17];
    int fd = cl_open("disk", &ef, &size);
    ok(fd >= 0, "GO handshake with structured replies and base:allocation");
    ok(size == 64u << 20, "export size from NBD_INFO_EXPORT");
    ok((ef & NBD_FLAG_HAS_FLAGS) && (ef & NBD_FLAG_SEND_DF) && (ef & NBD_FLAG_SEND_FAST_ZERO) &&
           (ef & NBD_FLAG_CAN_MULTI_CONN) && !(ef & NBD_FLAG_READ_ONLY),
       "transmission flags 0x%x", ef);
    ok(nbd_mem_open_count(mem, "disk") == 1, "export open once");

    memset(b, 0xab, 65536);
    send_req(fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 1, 65536, 65536, b);
    ok(read_simple(fd, &h) == 0 && h == 1, "write 64K with FUA");
    send_req(fd, 0, NBD_CMD_READ, 2, 0, 131072, NULL);
    ok(read_chunk(fd, &fl, &ty, &h, b, &len, sizeof(b)) == 0 && h == 2 &&
           ty == NBD_REPLY_TYPE_OFFSET_HOLE && fl == 0 && get_be32(b + 8) == 65536,
       "read: hole chunk first");
    ok(read_chunk(fd, &fl, &ty, &h, b, &len, sizeof(b)) == 0 && ty == NBD_REPLY_TYPE_OFFSET_DATA &&
           fl == NBD_REPLY_FLAG_DONE && len == 8 + 65536 && b[8] == 0xab,
       "read: data chunk last, DONE");
    send_req(fd, 0, NBD_CMD_BLOCK_STATUS, 3, 0, 1 << 20, NULL);
    ok(read_chunk(fd, &fl, &ty, &h, b, &len, sizeof(b)) == 0 && ty == NBD_REPLY_TYPE_BLOCK_STATUS &&
           len == 4 + 3 * 8 && get_be32(b + 4) == 65536 && get_be32(b + 8) == 3,
       "block status over the socket");
    send_req(fd, 0, NBD_CMD_READ, 4, 64u << 20, 512, NULL);
    ok(read_chunk(fd, &fl, &ty, &h, b, &len, sizeof(b)) == 0 && ty == NBD_REPLY_TYPE_ERROR &&
           get_be32(b) == NBD_EINVAL && h == 4,
       "read past the end: EINVAL error chunk");
    send_req(fd, 0, 42, 5, 0, 512, NULL);
    ok(read_chunk(fd, &fl, &ty, &h, b, &len, sizeof(b)) == 0 && get_be32(b) == NBD_EINVAL,
       "unknown command: EINVAL, connection stays");
    send_req(fd, 0, NBD_CMD_WRITE, 6, 64u << 20, 4096, b);
    ok(read_chunk(fd, &fl, &ty, &h, b, &len, sizeof(b)) == 0 && get_be32(b) == NBD_ENOSPC &&
           h == 6,
       "write past the end: ENOSPC, payload skipped");
    send_req(fd, 0, NBD_CMD_FLUSH, 7, 0, 0, NULL);
    ok(read_simple(fd, &h) == 0 && h == 7, "flush after a refused write: stream in sync");

    /* pipelining far beyond the in-flight budget; replies may come in any order */
    static int seen[300];
    for (int i = 0; i < 300; i++)
        send_req(fd, 0, NBD_CMD_WRITE, 1000 + i, (uint64_t)i * 4096, 4096, b);
    int good = 0;
    for (int i = 0; i < 300; i++)
        if (read_simple(fd, &h) == 0 && h >= 1000 && h < 1300 && !seen[h - 1000]++)
            good++;
    is_int(good, 300, "300 pipelined writes each answered once");
    send_req(fd, 0, NBD_CMD_DISC, 9, 0, 0, NULL);
    ok(closed_by_server(fd), "DISC closes the connection");
    close(fd);
    usleep(100 * 1000);
    ok(nbd_mem_open_count(mem, "disk") == 0, "export closed after DISC");
}

static void test_options(void)
{
    uint8_t d[8192];
    uint32_t len;
    int fd = cl_connect();
    ok(cl_hello(fd, NBD_FLAG_C_FIXED_NEWSTYLE) == 0, "hello without NO_ZEROES");

    send_opt(fd, 99, "junk", 4);
    ok(read_rep(fd, 99, d, &len) == NBD_REP_ERR_UNSUP && len > 0, "unknown option: ERR_UNSUP + message");
    send_opt(fd, NBD_OPT_STARTTLS, NULL, 0);
    ok(read_rep(fd, NBD_OPT_STARTTLS, d, &len) == NBD_REP_ERR_POLICY, "STARTTLS: ERR_POLICY");
    send_opt(fd, NBD_OPT_STRUCTURED_REPLY, "x", 1);
    ok(read_rep(fd, NBD_OPT_STRUCTURED_REPLY, d, &len) == NBD_REP_ERR_INVALID,
       "STRUCTURED_REPLY with data: ERR_INVALID");
    size_t n = meta_data(d, "disk", NULL);
    send_opt(fd, NBD_OPT_LIST_META_CONTEXT, d, (uint32_t)n);
    ok(read_rep(fd, NBD_OPT_LIST_META_CONTEXT, d, &len) == NBD_REP_ERR_INVALID,
       "LIST_META_CONTEXT before structured replies: ERR_INVALID");
    send_opt(fd, NBD_OPT_LIST, "x", 1);
    ok(read_rep(fd, NBD_OPT_LIST, d, &len) == NBD_REP_ERR_INVALID, "LIST with data: ERR_INVALID");

    send_opt(fd, NBD_OPT_LIST, NULL, 0);
    int names = 0;
    int64_t t;
    while ((t = read_rep(fd, NBD_OPT_LIST, d, &len)) == NBD_REP_SERVER)
        names += len >= 4 && get_be32(d) <= len - 4;
    ok(t == NBD_REP_ACK && names == 3, "LIST: 3 exports then ACK");

    n = go_data(d, "nosuch", 6, true);
    send_opt(fd, NBD_OPT_INFO, d, (uint32_t)n);
    ok(read_rep(fd, NBD_OPT_INFO, d, &len) == NBD_REP_ERR_UNKNOWN && len > 0 &&
           memmem(d, len, "nosuch", 6),
       "INFO unknown export: ERR_UNKNOWN naming it");

    n = go_data(d, "disk", 4, true);
    put_be32(d, 5000); /* name length beyond the option */
    send_opt(fd, NBD_OPT_GO, d, (uint32_t)n);
    ok(read_rep(fd, NBD_OPT_GO, d, &len) == NBD_REP_ERR_INVALID, "GO name length overrun: ERR_INVALID");
    n = go_data(d, "disk", 4, true);
    send_opt(fd, NBD_OPT_GO, d, (uint32_t)n + 1);
    ok(read_rep(fd, NBD_OPT_GO, d, &len) == NBD_REP_ERR_INVALID, "GO trailing byte: ERR_INVALID");
    send_opt(fd, NBD_OPT_GO, d, 3);
    ok(read_rep(fd, NBD_OPT_GO, d, &len) == NBD_REP_ERR_INVALID, "GO too short: ERR_INVALID");

    static uint8_t big[6000];
    static char longname[5000];
    memset(longname, 'a', sizeof(longname));
    n = go_data(big, longname, sizeof(longname), false);
    send_opt(fd, NBD_OPT_GO, big, (uint32_t)n);
    ok(read_rep(fd, NBD_OPT_GO, d, &len) == NBD_REP_ERR_TOO_BIG, "export name > 4096: ERR_TOO_BIG");
    n = go_data(d, "al", 2, false);
    send_opt(fd, NBD_OPT_GO, d, (uint32_t)n);
    ok(read_rep(fd, NBD_OPT_GO, d, &len) == NBD_REP_ERR_BLOCK_SIZE_REQD,
       "GO on a 512-aligned export without asking block sizes: ERR_BLOCK_SIZE_REQD");

    send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    ok(read_rep(fd, NBD_OPT_STRUCTURED_REPLY, d, &len) == NBD_REP_ACK, "STRUCTURED_REPLY: ACK");
    n = meta_data(d, "disk", NULL);
    send_opt(fd, NBD_OPT_LIST_META_CONTEXT, d, (uint32_t)n);
    ok(read_rep(fd, NBD_OPT_LIST_META_CONTEXT, d, &len) == NBD_REP_META_CONTEXT &&
           len == 4 + 15 && memcmp(d + 4, "base:allocation", 15) == 0 &&
           read_rep(fd, NBD_OPT_LIST_META_CONTEXT, d, &len) == NBD_REP_ACK,
       "LIST_META_CONTEXT without queries: base:allocation");
    n = meta_data(d, "disk", "qemu:dirty-bitmap:x");
    send_opt(fd, NBD_OPT_SET_META_CONTEXT, d, (uint32_t)n);
    ok(read_rep(fd, NBD_OPT_SET_META_CONTEXT, d, &len) == NBD_REP_ACK,
       "SET_META_CONTEXT of an unknown context: just ACK");
    n = meta_data(d, "disk", "base:");
    send_opt(fd, NBD_OPT_SET_META_CONTEXT, d, (uint32_t)n - 1);
    ok(read_rep(fd, NBD_OPT_SET_META_CONTEXT, d, &len) == NBD_REP_ERR_INVALID,
       "SET_META_CONTEXT truncated query: ERR_INVALID");
    n = meta_data(d, "nosuch", "base:");
    send_opt(fd, NBD_OPT_SET_META_CONTEXT, d, (uint32_t)n);
    ok(read_rep(fd, NBD_OPT_SET_META_CONTEXT, d, &len) == NBD_REP_ERR_UNKNOWN,
       "SET_META_CONTEXT unknown export: ERR_UNKNOWN");

    /* after all that, the old way in: EXPORT_NAME, 124 zero bytes */
    send_opt(fd, NBD_OPT_EXPORT_NAME, "disk", 4);
    ok(rd(fd, d, 10 + 124) == 0 && get_be64(d) == 64u << 20 && d[133] == 0,
       "EXPORT_NAME: size, flags and padding");
    uint64_t h;
    send_req(fd, 0, NBD_CMD_READ, 11, 4096, 512, NULL);
    ok(read_chunk(fd, &(uint16_t){0}, &(uint16_t){0}, &h, d, &len, sizeof(d)) == 0 && h == 11,
       "then transmission works");
    send_req(fd, 0, NBD_CMD_BLOCK_STATUS, 12, 0, 512, NULL);
    ok(read_chunk(fd, &(uint16_t){0}, &(uint16_t){0}, &h, d, &len, sizeof(d)) == 0 &&
           get_be32(d) == NBD_EINVAL,
       "BLOCK_STATUS without a selected context: EINVAL");
    close(fd);
}

/* each abuse closes only its own connection */
static void test_abuse(void)
{
    uint8_t d[64];
    uint32_t len;
    int fd;

    fd = cl_connect();
    cl_hello(fd, 0x80);
    ok(closed_by_server(fd), "unknown client flags: closed");
    close(fd);

    fd = cl_connect();
    cl_hello(fd, 1);
    wr(fd, "NOTMAGIC\0\0\0\7\0\0\0\0", 16);
    ok(closed_by_server(fd), "bad option magic: closed");
    close(fd);

    fd = cl_connect();
    cl_hello(fd, 1);
    send_opt(fd, NBD_OPT_GO, NULL, 0);
    /* a zero-length GO is an error reply, then an oversized option */
    read_rep(fd, NBD_OPT_GO, d, &len);
    uint8_t h[16];
    put_be64(h, NBD_IHAVEOPT);
    put_be32(h + 8, NBD_OPT_GO);
    put_be32(h + 12, 1u << 20);
    wr(fd, h, 16);
    ok(read_rep(fd, NBD_OPT_GO, d, &len) == NBD_REP_ERR_TOO_BIG && closed_by_server(fd),
       "1 MiB option: ERR_TOO_BIG, closed");
    close(fd);

    fd = cl_connect();
    cl_hello(fd, 1);
    wr(fd, h, 7);
    close(fd);
    ok(server_alive(), "truncated option header, client gone: server serves others");

    fd = cl_connect();
    close(fd);
    fd = cl_connect();
    cl_hello(fd, 1);
    send_opt(fd, NBD_OPT_EXPORT_NAME, "nosuch", 6);
    ok(closed_by_server(fd), "EXPORT_NAME of an unknown export: closed");
    close(fd);

    fd = cl_connect();
    cl_hello(fd, 1);
    send_opt(fd, NBD_OPT_ABORT, NULL, 0);
    ok(read_rep(fd, NBD_OPT_ABORT, d, &len) == NBD_REP_ACK && closed_by_server(fd),
       "ABORT: ACK, closed");
    close(fd);

    uint16_t ef;
    uint64_t size;
    fd = cl_open("disk", &ef, &size);
    uint8_t rq[28] = {0};
    wr(fd, rq, 28);
    ok(closed_by_server(fd), "bad request magic: closed");
    close(fd);

    fd = cl_open("disk", &ef, &size);
    send_req(fd, 0, NBD_CMD_WRITE, 1, 0, 64u << 20, NULL);
    ok(closed_by_server(fd), "write with a 64 MiB payload: closed");
    close(fd);

    fd = cl_open("disk", &ef, &size);
    send_req(fd, 0, NBD_CMD_WRITE, 1, 0, 65536, NULL);
    wr(fd, d, 64);
    close(fd);
    fd = cl_open("disk", &ef, &size);
    send_req(fd, 0, NBD_CMD_READ, 1, 0, 1 << 20, NULL);
    close(fd);
    ok(server_alive(), "clients gone mid-request: server serves others");
    usleep(200 * 1000);
    ok(nbd_mem_open_count(mem, "disk") == 0, "no export handle leaked");
}

/* A client that never reads its replies must not stall anybody else. */
static void test_stuck_client(struct nbd_server *srv)
{
    uint16_t ef;
    uint64_t size;
    int fd = cl_open("disk", &ef, &size);
    for (int i = 0; i < 64; i++)
        send_req(fd, 0, NBD_CMD_READ, (uint64_t)i, 0, 1 << 20, NULL);
    usleep(200 * 1000);
    bool alive = true;
    for (int i = 0; i < 20 && alive; i++)
        alive = server_alive();
    ok(alive, "a client not reading 64 MiB of replies stalls nobody else");
    /* the checking clients above may still be draining on the server side */
    for (int i = 0; i < 200 && nbd_server_export_conns(srv, "disk") != 1; i++)
        usleep(10 * 1000);
    ok(nbd_server_export_conns(srv, "disk") == 1, "export_conns counts it");
    nbd_server_kick_export(srv, "disk");
    ok(nbd_server_export_conns(srv, "disk") == 0 && nbd_mem_open_count(mem, "disk") == 0,
       "kick_export drops it synchronously");
    ok(closed_by_server(fd), "the kicked client sees EOF");
    close(fd);
    ok(server_alive(), "server serves new clients after a kick");
}

static void test_limits_tcp(void)
{
    struct nbd_backend be;
    struct nbd_server *srv;
    struct berr err = {0};
    nbd_mem_backend(mem, &be);
    struct nbd_server_opts o = {.workers = 2, .max_conns = 2};
    ok(nbd_server_new(&be, &o, &srv, &err) == 0, "second server");
    uint16_t port = 0;
    ok(nbd_server_listen_tcp(srv, "127.0.0.1", 0, &port, &err) == 0 && port != 0,
       "TCP listener on port %u", port);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connect(fds[i], (struct sockaddr *)&sa, sizeof(sa));
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    ok(cl_hello(fds[0], 1) == 0 && cl_hello(fds[1], 1) == 0, "two TCP clients greeted");
    ok(closed_by_server(fds[2]), "third client beyond max_conns: closed");
    /* free with clients attached mid-handshake */
    nbd_server_free(srv);
    ok(closed_by_server(fds[0]) && closed_by_server(fds[1]), "free closes attached clients");
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}

int main(void)
{
    struct berr err = {0};
    struct nbd_backend be;
    struct nbd_server *srv;

    snprintf(sock_path, sizeof(sock_path), "/tmp/test-nbd-server.%d.sock", getpid());
    nbd_mem_new(&mem);
    nbd_mem_add(mem, "disk", 64u << 20, false, 0, &err);
    nbd_mem_add(mem, "ro", 1u << 20, true, 0, &err);
    nbd_mem_add(mem, "al", 1u << 20, false, 512, &err);
    nbd_mem_backend(mem, &be);
    ok(nbd_server_new(&be, &(struct nbd_server_opts){.workers = 4}, &srv, &err) == 0,
       "server created");
    ok(nbd_server_listen_unix(srv, sock_path, &err) == 0, "listening on %s", sock_path);

    test_good();
    test_options();
    test_abuse();
    test_stuck_client(srv);
    test_limits_tcp();

    /* free with a client in transmission */
    uint16_t ef;
    uint64_t size;
    int fd = cl_open("disk", &ef, &size);
    nbd_server_free(srv);
    ok(closed_by_server(fd), "nbd_server_free closes a transmitting client");
    close(fd);
    ok(access(sock_path, F_OK) != 0, "socket file removed");
    ok(nbd_mem_open_count(mem, "disk") == 0, "every export handle closed");
    nbd_mem_free(mem);
    return done_testing();
}
