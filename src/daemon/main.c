/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berthd: options, startup and shutdown.
 *
 * Startup: directories, single-instance locks (<run>/berthd.pid and
 * <state>/berthd.lock), engine tunables, re-import of the pools in
 * <state>/pools.json, the NBD server on <run>/nbd.sock (+ TCP when asked),
 * the bridges of <state>/networks.json, the VM supervisor (configs of
 * <state>/vm, reattach to QEMUs still running: the NBD server is up by
 * then, so their disks reconnect), the replication scheduler
 * (<state>/replications.json), the API on <run>/berthd.sock.  Signals
 * are blocked in every thread and taken by the main thread with sigwait().
 * Shutdown (SIGTERM/SIGINT): stop the replication scheduler (a transfer in
 * progress is cancelled, resumed at the next start), stop the API (waits
 * for requests in flight),
 * stop watching VMs (they keep running; their NBD disks pause until berthd
 * is back), close every NBD connection, close every pool (final txg sync),
 * exit 0.  SIGKILL needs nothing: the next start re-imports the pools and
 * reattaches to the VMs. */
#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/berthd.h"
#include "daemon/repl.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BERTH_VERSION
#define BERTH_VERSION "0.0.0"
#endif

struct opts {
    const char *state_dir, *run_dir, *nbd_tcp;
    uint64_t cache_size;
    bool test_mode;
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: berthd [OPTIONS]\n"
            "\n"
            "The berth daemon: owns the storage pools, serves volumes over NBD and the\n"
            "REST API on a unix socket.  Runs in the foreground and logs to stderr.\n"
            "\n"
            "  --state-dir DIR     persistent state (pools.json)       [/var/lib/berth]\n"
            "  --run-dir DIR       sockets and pidfile                  [/run/berth]\n"
            "                      API: DIR/berthd.sock, NBD: DIR/nbd.sock, DIR/berthd.pid\n"
            "  --nbd-tcp HOST:PORT also serve NBD on TCP (port 0: pick one, logged)\n"
            "  --cache-size SIZE   memory limit of the storage engine and NBD server:\n"
            "                      block cache + dirty data + request buffers [RAM/4, <= 4G]\n"
            "  --test              enable test-only endpoints (fault injection)\n"
            "  --log-level LEVEL   err, warn, info or debug             [info]\n"
            "  -h, --help          this help\n"
            "  -V, --version       print the version\n"
            "\n"
            "Signals: SIGTERM/SIGINT shut down cleanly (final txg sync of every pool);\n"
            "running VMs keep running and are reattached at the next start.\n"
            "See docs/CLI.md and docs/API.md.\n");
}

static int parse_level(const char *s)
{
    static const char *const names[][2] = {{"err", "error"}, {"warn", "warning"},
                                           {"info", "info"}, {"debug", "debug"}};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i][0]) == 0 || strcmp(s, names[i][1]) == 0)
            return i;
    return -1;
}

/* 0 ok, 2 usage error (message printed), 1 exit 0 after --help/--version */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 's'}, {"run-dir", required_argument, NULL, 'r'},
        {"nbd-tcp", required_argument, NULL, 't'},   {"cache-size", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 'T'},            {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},            {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct berr err = {0};
    int c, lvl;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
        switch (c) {
        case 's': o->state_dir = optarg; break;
        case 'r': o->run_dir = optarg; break;
        case 't': o->nbd_tcp = optarg; break;
        case 'T': o->test_mode = true; break;
        case 'c':
            if (parse_size(optarg, &o->cache_size, &err) < 0) {
                fprintf(stderr, "berthd: --cache-size: %s\n", err.msg);
                return 2;
            }
            break;
        case 'l':
            if ((lvl = parse_level(optarg)) < 0) {
                fprintf(stderr, "berthd: --log-level: unknown level '%s' (err, warn, info, "
                        "debug)\n", optarg);
                return 2;
            }
            blog_max_level = lvl;
            break;
        case 'h': usage(stdout); return 1;
        case 'V': printf("berthd %s\n", BERTH_VERSION); return 1;
        case ':':
            fprintf(stderr, "berthd: option '%s' needs an argument\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "berthd: unknown option '%s' (see berthd --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "berthd: unexpected argument '%s' (see berthd --help)\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* mkdir -p and make absolute (URIs and pools.json need absolute paths). */
static int prepare_dir(const char *in, char *out, int mode, struct berr *err)
{
    int r = mkdir_p(in, mode, err);
    if (r < 0)
        return r;
    if (!realpath(in, out))
        return berr_errno(err, errno, "%s", in);
    return 0;
}

static int start_nbd(struct berthd *d, const char *tcp, struct berr *err)
{
    struct nbd_backend be;
    backend_init(&be, &d->pools);
    struct nbd_server_opts no = { .mem_budget = d->nbd_budget };
    int r = nbd_server_new(&be, &no, &d->nbd, err);
    if (r < 0)
        return r;
    r = nbd_server_listen_unix(d->nbd, d->ctx.nbd_socket, err);
    if (r < 0 || !tcp)
        return r;
    char host[128];
    const char *colon = strrchr(tcp, ':');
    uint64_t port;
    if (!colon || colon == tcp || (size_t)(colon - tcp) >= sizeof(host) ||
        parse_u64(colon + 1, 0, 65535, &port, NULL) < 0)
        return berr_set(err, EINVAL, "--nbd-tcp '%s': expected HOST:PORT", tcp);
    memcpy(host, tcp, (size_t)(colon - tcp));
    host[colon - tcp] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    uint16_t bound = 0;
    r = nbd_server_listen_tcp(d->nbd, host, (uint16_t)port, &bound, err);
    if (r < 0)
        return r;
    snprintf(d->ctx.nbd_tcp, sizeof(d->ctx.nbd_tcp), strchr(host, ':') ? "[%s]:%u" : "%s:%u",
             host, bound);
    blog_info("NBD on tcp %s", d->ctx.nbd_tcp);
    return 0;
}

static int start_vms(struct berthd *d, struct berr *err)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/networks.json", d->state_dir);
    if (vm_nettab_init(&d->nets, path) < 0)
        return berr_set(err, ENOMEM, "cannot initialise the network table");
    vm_nettab_load(&d->nets);
    d->ctx.nets = &d->nets;
    struct vmm_opts vo = {.state_dir = d->state_dir, .run_dir = d->run_dir,
                          .nbd_socket = d->ctx.nbd_socket};
    api_vm_store_ops(&d->ctx, &vo.store);
    int r = vmm_new(&vo, &d->vms, err);
    if (r < 0)
        return r;
    vmm_load(d->vms);
    d->ctx.vms = d->vms;
    return 0;
}

static void stop_vms(struct berthd *d)
{
    vmm_free(d->vms); /* VMs keep running */
    d->vms = NULL;
    d->ctx.vms = NULL;
    if (d->ctx.nets) {
        vm_nettab_destroy(&d->nets);
        d->ctx.nets = NULL;
    }
}

static int run(struct berthd *d, const struct opts *o)
{
    struct berr err = {0};
    char path[PATH_MAX + 32];
    int pidfd = -1, lockfd = -1;
    if (prepare_dir(o->state_dir, d->state_dir, 0700, &err) < 0 ||
        prepare_dir(o->run_dir, d->run_dir, 0755, &err) < 0)
        goto fail;
    if (strlen(d->run_dir) + 16 > sizeof(d->ctx.nbd_socket) ||
        strlen(d->state_dir) + 16 > sizeof(d->pools_json)) {
        berr_set(&err, ENAMETOOLONG, "directory names are too long");
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/berthd.pid", d->run_dir);
    snprintf(d->pools_json, sizeof(d->pools_json), "%s/pools.json", d->state_dir);
    char what[PATH_MAX + 32];
    snprintf(what, sizeof(what), "run dir %s", d->run_dir);
    if (pidfile_lock(path, what, &pidfd, &err) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/berthd.lock", d->state_dir);
    snprintf(what, sizeof(what), "state dir %s", d->state_dir);
    if (pidfile_lock(path, what, &lockfd, &err) < 0)
        goto fail;

    /* one limit bounds berthd's data memory: NBD request buffers take 1/8
     * (at most 1 GiB), the engine the rest (bs_memory_limit) */
    uint64_t mem = o->cache_size ? o->cache_size : bs_memory_default();
    d->nbd_budget = MAX(MIN(mem / 8, 1ULL << 30), 1ULL << 20);
    bs_memory_limit(mem, d->nbd_budget);
    blog_info("memory limit %llu MiB: block cache, dirty data and buffers %llu MiB, NBD requests "
              "%llu MiB", (unsigned long long)(mem >> 20),
              (unsigned long long)((mem - d->nbd_budget) >> 20),
              (unsigned long long)(d->nbd_budget >> 20));
    blog_info("AES-256-GCM engine: %s", bs_crypt_engine());
    if (pooltab_init(&d->pools) < 0) {
        berr_set(&err, ENOMEM, "cannot initialise the pool table");
        goto fail;
    }
    d->ctx.pools = &d->pools;
    d->ctx.test_mode = o->test_mode;
    d->ctx.version = BERTH_VERSION;
    d->ctx.persist = registry_save;
    d->ctx.persist_opaque = d;
    snprintf(d->ctx.nbd_socket, sizeof(d->ctx.nbd_socket), "%s/nbd.sock", d->run_dir);

    registry_load(d);
    if (start_nbd(d, o->nbd_tcp, &err) < 0)
        goto fail_pools;
    d->ctx.nbd = d->nbd;
    if (start_vms(d, &err) < 0)
        goto fail_pools;
    /* replication cycles need the pools only; a job's first cycle may start now */
    if (repl_mgr_new(d->state_dir, &d->pools, &d->repl, &err) < 0 ||
        repl_mgr_start(d->repl, &d->ctx, &err) < 0)
        goto fail_pools;
    d->scrubs = scrubsched_start(d);
    if (!d->scrubs)
        blog_warn("cannot start the scrub scheduler: scheduled scrubs will not run");
    snprintf(path, sizeof(path), "%s/berthd.sock", d->run_dir);
    if (api_server_start(&d->ctx, path, &d->api, &err) < 0)
        goto fail_pools;
    blog_info("berthd %s ready: API %s, NBD %s%s", BERTH_VERSION, path, d->ctx.nbd_socket,
              o->test_mode ? " (test mode)" : "");
    vmm_autostart(d->vms); /* onboot VMs, once per host boot */

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            blog_info("SIGHUP ignored");
            continue;
        }
        blog_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    vmm_quiesce(d->vms);
    repl_mgr_stop(d->repl); /* cancels a transfer in progress; resumed at next start */
    api_server_stop(d->api);
    scrubsched_stop(d->scrubs);
    repl_mgr_free(d->repl);
    stop_vms(d);
    nbd_server_free(d->nbd);
    registry_close_all(d);
    pooltab_destroy(&d->pools);
    blog_info("berthd stopped");
    close(pidfd);
    close(lockfd);
    return 0;

fail_pools:
    scrubsched_stop(d->scrubs);
    repl_mgr_free(d->repl);
    stop_vms(d);
    nbd_server_free(d->nbd);
    registry_close_all(d);
    pooltab_destroy(&d->pools);
fail:
    fprintf(stderr, "berthd: %s\n", err.msg);
    if (pidfd >= 0)
        close(pidfd);
    if (lockfd >= 0)
        close(lockfd);
    return 1;
}

int main(int argc, char **argv)
{
    struct opts o = {.state_dir = "/var/lib/berth", .run_dir = "/run/berth"};
    int r = parse_args(argc, argv, &o);
    if (r)
        return r == 1 ? 0 : 2;

    /* Before any thread exists: signals go to sigwait() in main only, and a
     * peer closing its socket must not kill the daemon. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct berthd d;
    return run(&d, &o);
}
