/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbd-memd: the berth NBD server over in-memory thin exports.  It exists to
 * test and measure src/nbd alone, with real clients (qemu-img, nbdinfo,
 * nbdcopy, nbdsh, fio) and without the storage engine:
 *
 *   nbd-memd [--socket PATH] [--tcp [HOST:]PORT] [--port-file FILE]
 *            [--workers N] [--max-conns N] [-v]
 *            --export NAME:SIZE[:ro][:bs=MIN] ...
 *
 * SIZE takes K/M/G/T suffixes; "ro" makes the export read-only; bs=MIN
 * sets the minimum block size (alignment) it advertises and enforces.
 * --tcp 0 picks a free port, written to --port-file.  Runs until SIGINT or
 * SIGTERM, then shuts the server down cleanly (exit 0). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "nbd/membackend.h"
#include "nbd/nbd_server.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: nbd-memd [--socket PATH] [--tcp [HOST:]PORT] [--port-file FILE]\n"
               "                [--workers N] [--max-conns N] [-v]\n"
               "                --export NAME:SIZE[:ro][:bs=MIN] ...\n");
}

static int add_export(struct nbd_mem *m, char *spec, struct berr *err)
{
    char *save = NULL;
    char *name = strtok_r(spec, ":", &save);
    char *size = strtok_r(NULL, ":", &save);
    if (!name || !size)
        return berr_set(err, EINVAL, "--export wants NAME:SIZE[:ro][:bs=MIN]");
    uint64_t sz, bs = 0;
    int r = parse_size(size, &sz, err);
    if (r < 0)
        return r;
    bool ro = false;
    for (char *o; (o = strtok_r(NULL, ":", &save));) {
        if (strcmp(o, "ro") == 0)
            ro = true;
        else if (strncmp(o, "bs=", 3) == 0) {
            if ((r = parse_size(o + 3, &bs, err)) < 0)
                return r;
            if (!IS_POW2(bs) || bs > 65536)
                return berr_set(err, EINVAL, "bs=%s: a power of 2 up to 64K", o + 3);
        } else
            return berr_set(err, EINVAL, "unknown export option '%s'", o);
    }
    /* "-" names the default export (the empty name) */
    return nbd_mem_add(m, strcmp(name, "-") == 0 ? "" : name, sz, ro, (uint32_t)bs, err);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"socket", required_argument, NULL, 's'},   {"tcp", required_argument, NULL, 't'},
        {"port-file", required_argument, NULL, 'p'}, {"workers", required_argument, NULL, 'w'},
        {"max-conns", required_argument, NULL, 'c'}, {"export", required_argument, NULL, 'e'},
        {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *sock = NULL, *tcp = NULL, *port_file = NULL;
    struct nbd_server_opts opts = {0};
    struct berr err = {0};
    struct nbd_mem *m = NULL;
    int c, nexp = 0;
    uint64_t v;

    if (nbd_mem_new(&m) < 0)
        return 1;
    while ((c = getopt_long(argc, argv, "s:t:p:w:c:e:vh", lo, NULL)) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 't': tcp = optarg; break;
        case 'p': port_file = optarg; break;
        case 'w':
        case 'c':
            if (parse_u64(optarg, 1, 100000, &v, &err) < 0)
                goto fail;
            if (c == 'w')
                opts.workers = (unsigned)v;
            else
                opts.max_conns = (unsigned)v;
            break;
        case 'e':
            if (add_export(m, optarg, &err) < 0)
                goto fail;
            nexp++;
            break;
        case 'v': blog_max_level = BLOG_DEBUG; break;
        case 'h': usage(stdout); nbd_mem_free(m); return 0;
        default: usage(stderr); nbd_mem_free(m); return 2;
        }
    }
    if (!nexp || (!sock && !tcp)) {
        usage(stderr);
        nbd_mem_free(m);
        return 2;
    }

    /* the server's threads inherit this mask; only sigwait() sees them */
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &ss, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct nbd_backend be;
    struct nbd_server *srv = NULL;
    nbd_mem_backend(m, &be);
    if (nbd_server_new(&be, &opts, &srv, &err) < 0)
        goto fail;
    if (sock && nbd_server_listen_unix(srv, sock, &err) < 0)
        goto fail_srv;
    if (tcp) {
        char host[256] = "127.0.0.1";
        const char *ps = tcp, *colon = strrchr(tcp, ':');
        if (colon) {
            snprintf(host, sizeof(host), "%.*s", (int)(colon - tcp), tcp);
            ps = colon + 1;
        }
        uint16_t port = 0;
        if (parse_u64(ps, 0, 65535, &v, &err) < 0 ||
            nbd_server_listen_tcp(srv, host, (uint16_t)v, &port, &err) < 0)
            goto fail_srv;
        if (port_file) {
            char b[16];
            int n = snprintf(b, sizeof(b), "%u\n", port);
            if (write_file_atomic(port_file, b, (size_t)n, 0644, &err) < 0)
                goto fail_srv;
        }
    }
    blog_info("nbd-memd: serving %d export(s)", nexp);
    int sig = 0;
    sigwait(&ss, &sig);
    blog_info("nbd-memd: signal %d, shutting down", sig);
    nbd_server_free(srv);
    nbd_mem_free(m);
    return 0;

fail_srv:
    nbd_server_free(srv);
fail:
    fprintf(stderr, "nbd-memd: %s\n", err.msg);
    nbd_mem_free(m);
    return 1;
}
