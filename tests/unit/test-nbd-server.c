/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The NBD server over real sockets, driven by a hand-written client that
 * can misbehave: good handshakes (GO, EXPORT_NAME, INFO, LIST, meta
 * contexts), every option error, malformed and truncated messages, bad
 * request magic, clients vanishing mid-request, a client that never reads
 * its replies, pipelining beyond the per-connection budget, kick, max_conns,
 * TCP, and shutdown with clients attached.  After each abuse a fresh client
 * must still be served.  A second server with short timeouts and a small
 * memory budget, over a backend whose open and write can be held at a gate,
 * checks the limits: kick against clients arriving mid-kick, the handshake
 * deadline, the global memory budget, and that fds go when clients go.  A
 * third, over a backend that can say it would block (pwrite_nowait), checks
 * that small writes run on the connection's reader and that one that would
 * block is written again, whole, on a worker. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/le.h"
#include "nbd/membackend.h"
#include "nbd/nbd_int.h"
#include "nbd-client.h"
#include "tap.h"

static struct nbd_mem *mem;

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

    /* pipelined 4K reads go out in runs of replies (server.c NBD_RUN_MAX);
     * a client that reads them only later fills the socket, so parts of
     * runs wait in the flusher's queue: every reply still arrives once,
     * whole, with its own data */
    for (int i = 0; i < 200; i++) {
        memset(b, i % 255 + 1, 4096); /* never zero: a zero block reads as a hole */
        send_req(fd, 0, NBD_CMD_WRITE, 2000 + i, (uint64_t)i * 4096, 4096, b);
    }
    good = 0;
    for (int i = 0; i < 200; i++)
        good += read_simple(fd, &h) == 0 && h >= 2000 && h < 2200;
    is_int(good, 200, "200 pipelined writes of distinct blocks answered");
    static int rseen[200];
    for (int i = 0; i < 200; i++)
        send_req(fd, 0, NBD_CMD_READ, 3000 + i, (uint64_t)i * 4096, 4096, NULL);
    usleep(200 * 1000);
    good = 0;
    for (int i = 0; i < 200; i++) {
        if (read_chunk(fd, &fl, &ty, &h, b, &len, sizeof(b)) != 0 || h < 3000 || h >= 3200 ||
            ty != NBD_REPLY_TYPE_OFFSET_DATA || !(fl & NBD_REPLY_FLAG_DONE) || len != 8 + 4096)
            continue;
        uint8_t want = (uint8_t)((h - 3000) % 255 + 1);
        bool same = true;
        for (int k = 8; k < 8 + 4096; k++)
            same &= b[k] == want;
        good += same && !rseen[h - 3000]++;
    }
    is_int(good, 200, "200 pipelined 4K reads read late: each answered once with its data");
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
    ok(t == NBD_REP_ACK && names == 4, "LIST: 4 exports then ACK");

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

/* ---- limits: a second server over a gated backend ------------------------- */
static struct nbd_backend mem_be;
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool hold_open, hold_write; /* block open("slow") / every pwrite */

static void gate_wait(const bool *held)
{
    pthread_mutex_lock(&gate_lock);
    while (*held)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void gate_set(bool *held, bool v)
{
    pthread_mutex_lock(&gate_lock);
    *held = v;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static int gated_open(void *o, const char *name, void **h, struct nbd_export_info *info,
                      struct berr *err)
{
    if (strcmp(name, "slow") == 0)
        gate_wait(&hold_open);
    return mem_be.open(o, name, h, info, err);
}

static int gated_pwrite(void *h, const void *buf, uint32_t len, uint64_t off, unsigned flags)
{
    gate_wait(&hold_write);
    return mem_be.pwrite(h, buf, len, off, flags);
}

/* 200 names of 4000 bytes: 800 KB of replies to one NBD_OPT_LIST */
static int big_list(void *o, int (*cb)(const char *name, const char *desc, void *o), void *co)
{
    static char name[4001];
    (void)o;
    memset(name, 'n', 4000);
    for (int i = 0; i < 200; i++)
        if (cb(name, "", co))
            break;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned srv_nconns(struct nbd_server *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->nconns;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static unsigned open_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* poll for cond for up to ms */
#define WAIT_FOR(cond, ms)                                                                         \
    for (int64_t wait_end_ = now_ms() + (ms); !(cond) && now_ms() < wait_end_;)                    \
        usleep(5 * 1000)

struct kick {
    struct nbd_server *srv;
    pthread_t t;
    unsigned left;
    int64_t ms;
    atomic_bool done;
};

static void *kick_main(void *arg)
{
    struct kick *k = arg;
    int64_t t0 = now_ms();
    k->left = nbd_server_kick_export(k->srv, "slow");
    k->ms = now_ms() - t0;
    atomic_store(&k->done, true);
    return NULL;
}

/* connect and send GO for `name` without reading the replies */
static int go_nowait(const char *name)
{
    uint8_t d[64];
    int fd = cl_connect();
    if (fd >= 0 &&
        (cl_hello(fd, NBD_FLAG_C_FIXED_NEWSTYLE) < 0 ||
         send_opt(fd, NBD_OPT_GO, d, (uint32_t)go_data(d, name, strlen(name), true)) < 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void test_kick_race(struct nbd_server *srv)
{
    struct kick k = {.srv = srv};
    uint8_t d[8192];
    uint32_t len;

    /* a client whose GO is in progress when the kick starts */
    gate_set(&hold_open, true);
    int b = go_nowait("slow");
    WAIT_FOR(nbd_server_export_conns(srv, "slow") == 1, 2000);
    ok(nbd_server_export_conns(srv, "slow") == 1, "a handshake opening the export counts");
    pthread_create(&k.t, NULL, kick_main, &k);
    usleep(200 * 1000);
    ok(!atomic_load(&k.done), "kick waits for the handshake holding the export open");
    gate_set(&hold_open, false);
    pthread_join(k.t, NULL);
    ok(k.left == 0 && k.ms < 1000, "kick returns 0 in %lld ms, within the bound", (long long)k.ms);
    ok(nbd_mem_open_count(mem, "slow") == 0, "no handle of the export open after the kick");
    ok(closed_by_server(b), "the client that completed GO during the kick is disconnected");
    close(b);

    /* a connection that cannot drain (its write is stuck in the backend) */
    uint16_t ef;
    uint64_t size;
    int a = cl_open("slow", &ef, &size);
    gate_set(&hold_write, true);
    memset(d, 1, 4096);
    send_req(a, 0, NBD_CMD_WRITE, 1, 0, 4096, d);
    usleep(100 * 1000);
    atomic_store(&k.done, false);
    pthread_create(&k.t, NULL, kick_main, &k);
    usleep(100 * 1000);
    b = go_nowait("slow");
    ok(read_rep(b, NBD_OPT_GO, d, &len) == NBD_REP_ERR_UNKNOWN &&
           memmem(d, len, "being removed", 13),
       "GO during a kick: ERR_UNKNOWN, export is being removed");
    close(b);
    pthread_join(k.t, NULL);
    ok(k.left == 1 && k.ms >= 900 && k.ms < 3000,
       "kick gives up after its timeout (%lld ms) and says 1 is left", (long long)k.ms);
    b = cl_open("slow", &ef, &size);
    ok(b >= 0, "after the kick returns the export is served again");
    close(b);
    gate_set(&hold_write, false);
    ok(closed_by_server(a), "the stuck client is disconnected once its write ends");
    close(a);
    WAIT_FOR(nbd_server_export_conns(srv, "slow") == 0, 2000);
    ok(nbd_server_export_conns(srv, "slow") == 0 && nbd_mem_open_count(mem, "slow") == 0,
       "all gone");
}

static void test_hs_deadline(struct nbd_server *srv)
{
    /* asks for an 800 KB export list and never reads it */
    int fd = cl_connect();
    cl_hello(fd, NBD_FLAG_C_FIXED_NEWSTYLE);
    send_opt(fd, NBD_OPT_LIST, NULL, 0);
    int silent = cl_connect();
    usleep(200 * 1000);
    ok(srv_nconns(srv) == 2, "a client not reading the handshake and a silent one");
    int64_t t0 = now_ms();
    WAIT_FOR(srv_nconns(srv) == 0, 5000);
    ok(srv_nconns(srv) == 0, "both dropped at the 1 s handshake deadline (%lld ms more)",
       (long long)(now_ms() - t0));
    ok(closed_by_server(fd) && closed_by_server(silent), "and they see EOF");
    close(fd);
    close(silent);
}

static void test_mem_budget(struct nbd_server *srv, uint64_t budget)
{
    uint16_t ef;
    uint64_t size, h;
    static uint8_t b[(1 << 20) + 64];
    const uint32_t rl = 1u << 20;
    enum { NC = 4, NR = 32 };
    int fds[NC];

    memset(b, 0x5a, sizeof(b)); /* data, so READ replies are not holes */
    int w = cl_open("disk", &ef, &size);
    ok(send_req(w, 0, NBD_CMD_WRITE, 1, 0, rl, b) == 0 && read_simple(w, &h) == 0,
       "1 MiB of data written");
    close(w);
    /* each would be admitted 32 MiB by the per-connection budget */
    for (int i = 0; i < NC; i++) {
        fds[i] = cl_open("disk", &ef, &size);
        for (int j = 0; j < NR; j++)
            send_req(fds[i], 0, NBD_CMD_READ, (uint64_t)j, 0, rl, NULL);
    }
    uint64_t full = budget - (rl + 4096); /* no other request fits */
    WAIT_FOR(atomic_load(&srv->mem_used) > full, 3000);
    usleep(100 * 1000);
    uint64_t peak = atomic_load(&srv->mem_peak), bound = budget + (NC + 1) * (rl + 4096);
    ok(peak <= bound && atomic_load(&srv->mem_used) > full,
       "%d clients x %d READs of 1 MiB, unread: peak %llu KiB <= %llu KiB", NC, NR,
       (unsigned long long)(peak >> 10), (unsigned long long)(bound >> 10));
    ok(server_alive(), "an idle newcomer is still served");
    /* the first client reads its replies: it progresses while the others are stuck */
    int got = 0;
    for (int j = 0; j < NR; j++) {
        uint16_t fl, ty;
        uint32_t len;
        if (read_chunk(fds[0], &fl, &ty, &h, b, &len, sizeof(b)) == 0 && len == 8 + rl)
            got++;
    }
    is_int(got, NR, "every READ of the reading client answered");
    for (int i = 0; i < NC; i++)
        close(fds[i]);
    WAIT_FOR(srv_nconns(srv) == 0 && atomic_load(&srv->mem_used) == 0, 5000);
    ok(atomic_load(&srv->mem_used) == 0, "budget all returned when the clients are gone");
    ok(atomic_load(&srv->mem_cached) <= budget / 4, "kept buffers within their cap");
}

static void test_fds_released(struct nbd_server *srv)
{
    enum { N = 50 };
    int fds[N];
    uint8_t hello[18];
    unsigned base = open_fds();
    for (int i = 0; i < N; i++) {
        fds[i] = cl_connect();
        rd(fds[i], hello, sizeof(hello));
    }
    ok(open_fds() == base + 2 * N, "%d connections: %u fds (both ends)", N, open_fds() - base);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    WAIT_FOR(open_fds() == base, 3000);
    ok(open_fds() == base && srv_nconns(srv) == 0,
       "their server side fds are closed without a new accept (%u left)", open_fds() - base);
}

/* ---- small writes on the reader (conn.c inline_ok) ---- */
static _Atomic unsigned nw_tries, nw_again, nw_inline_elsewhere, nw_retry_on_reader,
    nw_big_or_fua_nowait, nw_retries;
static _Atomic unsigned char nw_state[1024]; /* per 4K block: 1 would block, 2 written again */

static bool on_thread(const char *want)
{
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    return strcmp(name, want) == 0;
}

/* Every write of a 4K block with an odd index would block: half of it is
 * written (as a backend may, bs_vol_pwrite) and -EAGAIN returned.  Writes
 * that may not be tried (FUA, large) must never come with the flag. */
static int nowait_pwrite(void *h, const void *buf, uint32_t len, uint64_t off, unsigned flags)
{
    if (flags & NBD_IOF_NOWAIT) {
        nw_tries++;
        if (!on_thread("nbd-conn"))
            nw_inline_elsewhere++;
        if ((flags & NBD_IOF_FUA) || len > (64u << 10))
            nw_big_or_fua_nowait++;
        if (off / 4096 % 2 == 1) {
            nw_again++;
            nw_state[off / 4096 % 1024] = 1;
            mem_be.pwrite(h, buf, len / 2, off, 0);
            return -EAGAIN;
        }
        return mem_be.pwrite(h, buf, len, off, 0);
    }
    if (len == 4096 && nw_state[off / 4096 % 1024] == 1) {
        nw_retries++;
        nw_state[off / 4096 % 1024] = 2;
        if (on_thread("nbd-conn"))
            nw_retry_on_reader++;
    }
    return mem_be.pwrite(h, buf, len, off, flags);
}

static void test_nowait(void)
{
    struct nbd_server *srv;
    struct berr err = {0};
    char path1[sizeof(sock_path)];
    struct nbd_backend be = mem_be;
    be.pwrite = nowait_pwrite;
    be.pwrite_nowait = true;
    memcpy(path1, sock_path, sizeof(path1));
    snprintf(sock_path, sizeof(sock_path), "%s.3", path1);
    ok(nbd_server_new(&be, &(struct nbd_server_opts){.workers = 2}, &srv, &err) == 0 &&
           nbd_server_listen_unix(srv, sock_path, &err) == 0,
       "nowait server");
    uint16_t ef, fl, ty;
    uint64_t size, h;
    uint32_t len;
    int fd = cl_open("disk", &ef, &size);
    static uint8_t b[1 << 17];
    enum { N = 256 };
    /* pipelined, so the reader has batches to run; every block distinct */
    for (int i = 0; i < N; i++) {
        memset(b, i % 251 + 1, 4096);
        send_req(fd, 0, NBD_CMD_WRITE, 100 + i, (uint64_t)i * 4096, 4096, b);
    }
    memset(b, 0xee, sizeof b);
    send_req(fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 1, (uint64_t)N * 4096, 4096, b);
    send_req(fd, 0, NBD_CMD_WRITE, 2, (uint64_t)(N + 2) * 4096, 1 << 17, b);
    static int seen[N];
    int good = 0, extra = 0;
    for (int i = 0; i < N + 2; i++) {
        if (read_simple(fd, &h) != 0)
            continue;
        if (h >= 100 && h < 100 + N && !seen[h - 100]++)
            good++;
        else if (h == 1 || h == 2)
            extra++;
    }
    ok(good == N && extra == 2, "%d writes, half of which would block, each answered once "
       "(%d of %d)", N + 2, good + extra, N + 2);
    good = 0;
    for (int i = 0; i < N; i++) {
        send_req(fd, 0, NBD_CMD_READ, 5000, (uint64_t)i * 4096, 4096, NULL);
        bool same = read_chunk(fd, &fl, &ty, &h, b, &len, sizeof(b)) == 0 && len == 8 + 4096;
        for (int k = 8; same && k < 8 + 4096; k++)
            same = b[k] == i % 251 + 1;
        good += same;
    }
    is_int(good, N, "every block reads back whole, those written again too");
    ok(nw_tries > 0 && nw_inline_elsewhere == 0,
       "small writes tried on the connection's reader (%u tries)", (unsigned)nw_tries);
    ok(nw_again > 0 && nw_retries == nw_again && nw_retry_on_reader == 0,
       "each write that would block written again on a worker (%u would block, %u written "
       "again)", (unsigned)nw_again, (unsigned)nw_retries);
    ok(nw_big_or_fua_nowait == 0, "FUA and large writes never tried on the reader");
    send_req(fd, 0, NBD_CMD_DISC, 9, 0, 0, NULL);
    close(fd);
    nbd_server_free(srv);
    memcpy(sock_path, path1, sizeof(path1));
}

static void test_limits(void)
{
    struct nbd_server *srv;
    struct berr err = {0};
    char path1[sizeof(sock_path)];
    uint64_t budget = 8u << 20;
    struct nbd_backend be = mem_be;
    be.open = gated_open;
    be.pwrite = gated_pwrite;
    be.list = big_list;
    struct nbd_server_opts o = {.workers = 4, .handshake_timeout_ms = 1000,
                                .kick_timeout_ms = 1000, .mem_budget = budget};
    memcpy(path1, sock_path, sizeof(path1));
    snprintf(sock_path, sizeof(sock_path), "%s.2", path1);
    ok(nbd_server_new(&be, &o, &srv, &err) == 0 &&
           nbd_server_listen_unix(srv, sock_path, &err) == 0,
       "limits server: 1 s handshake, 1 s kick, 8 MiB budget");
    test_kick_race(srv);
    test_hs_deadline(srv);
    test_mem_budget(srv, budget);
    test_fds_released(srv);
    nbd_server_free(srv);
    memcpy(sock_path, path1, sizeof(path1));
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
    nbd_mem_add(mem, "slow", 1u << 20, false, 0, &err);
    nbd_mem_backend(mem, &be);
    mem_be = be;
    ok(nbd_server_new(&be, &(struct nbd_server_opts){.workers = 4}, &srv, &err) == 0,
       "server created");
    ok(nbd_server_listen_unix(srv, sock_path, &err) == 0, "listening on %s", sock_path);

    test_good();
    test_options();
    test_abuse();
    test_stuck_client(srv);
    test_limits_tcp();
    test_limits();
    test_nowait();

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
