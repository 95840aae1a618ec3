/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The NBD server object: listening sockets and their acceptor threads, the
 * shared worker pool, the server-wide memory budget, the connection
 * registry (kick, counting) and orderly shutdown.  Connections themselves
 * live in conn.c.
 *
 * Worker pool: one FIFO of requests from all connections.  Readers append
 * whole batches and wake one idle worker; a worker that dequeues and sees
 * more work wakes the next (chained wake-ups: context switches, not the
 * backend, dominate the cost of a 4 KiB request to a fast backend).  A
 * worker takes a run of quick requests of one connection at once (see
 * NBD_RUN_MAX below), runs nbd_exec() on each and sends their replies
 * itself, so a run costs one hand-over between threads and one send.
 *
 * Shutdown order (nbd_server_free): stop accepting (shutdown() on the
 * listening sockets wakes accept(), then join the acceptors), shut down
 * every connection's socket, wait until every connection has drained and
 * become a zombie, reap them, and only then stop the workers, which the
 * draining connections still needed.
 *
 * Kick (nbd_server_kick_export): under srv->lock the name goes on
 * srv->closing, so no handshake can open it any more and no connection can
 * enter transmission on it (conn.c checks under the same lock); then every
 * connection transmitting on it is shut down, again each time one ends or
 * every 100 ms, until none is left or opts.kick_timeout_ms passed.  The
 * mark is removed when the kick returns. */
#include "nbd/nbd_int.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"

#define NBD_WARN_INTERVAL_MS 10000 /* acceptor warnings: at most one per interval */

int64_t nbd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- workers ------------------------------------------------------------------- */
/* A worker takes a run of up to NBD_RUN_MAX consecutive queued requests of
 * one connection when they are all quick (READ or WRITE of at most
 * NBD_RUN_MAX_LEN bytes, no FUA), executes them in order and sends their
 * replies together: one hand-over, one sendmsg() and one wake-up of the
 * client per run instead of per request.  Anything else (FLUSH, FUA, TRIM,
 * large I/O) goes alone, so a slow request never holds back quick replies
 * and large ones still spread over the workers. */
#define NBD_RUN_MAX_LEN (64u << 10)

static bool run_ok(const struct nbd_req *r)
{
    return (r->rq.type == NBD_CMD_READ || r->rq.type == NBD_CMD_WRITE) &&
           !(r->rq.flags & NBD_CMD_FLAG_FUA) && r->rq.len <= NBD_RUN_MAX_LEN;
}

static void *worker_main(void *arg)
{
    struct nbd_server *srv = arg;
    pthread_mutex_lock(&srv->qlock);
    for (;;) {
        while (!srv->qhead && !srv->qstop) {
            srv->idle++;
            pthread_cond_wait(&srv->qcond, &srv->qlock);
            srv->idle--;
        }
        struct nbd_req *r = srv->qhead;
        if (!r)
            break;
        struct nbd_req *last = r;
        for (unsigned n = 1; n < NBD_RUN_MAX && run_ok(last) && last->next &&
                             last->next->conn == r->conn && run_ok(last->next);
             n++)
            last = last->next;
        srv->qhead = last->next;
        last->next = NULL;
        if (!srv->qhead)
            srv->qtail = &srv->qhead;
        else if (srv->idle)
            pthread_cond_signal(&srv->qcond); /* chain: more work, wake a peer */
        pthread_mutex_unlock(&srv->qlock);

        for (struct nbd_req *q = r; q; q = q->next)
            nbd_exec(&q->conn->sess, q);
        nbd_conn_send(r->conn, r); /* the run's replies, in one sendmsg */

        pthread_mutex_lock(&srv->qlock);
    }
    pthread_mutex_unlock(&srv->qlock);
    return NULL;
}

void nbd_server_submit(struct nbd_server *srv, struct nbd_req *head, struct nbd_req **tail,
                       unsigned n)
{
    pthread_mutex_lock(&srv->qlock);
    *srv->qtail = head;
    srv->qtail = tail;
    /* one wake-up; each worker that finds more queued wakes the next, so
     * a fast backend drains a batch on few threads and a slow one still
     * fans out to every worker within a few hops */
    if (srv->idle)
        pthread_cond_signal(&srv->qcond);
    pthread_mutex_unlock(&srv->qlock);
}

/* ---- memory budget --------------------------------------------------------------- */
/* Charges of the requests in flight on all connections (see "Budget" in
 * conn.c for the rule that keeps every connection progressing). */

/* Add n to *v unless the sum passes limit (or `force`); the sum in *sum. */
static bool add_capped(atomic_uint_least64_t *v, uint64_t n, uint64_t limit, bool force,
                       uint64_t *sum)
{
    uint64_t cur = atomic_load(v);
    do {
        if (!force && (cur > limit || n > limit - cur))
            return false;
    } while (!atomic_compare_exchange_weak(v, &cur, cur + n));
    *sum = cur + n;
    return true;
}

bool nbd_mem_take(struct nbd_server *srv, size_t charge, bool idle)
{
    uint64_t sum;
    if (!add_capped(&srv->mem_used, charge, srv->opts.mem_budget, idle, &sum))
        return false;
    uint64_t peak = atomic_load_explicit(&srv->mem_peak, memory_order_relaxed);
    while (sum > peak && !atomic_compare_exchange_weak(&srv->mem_peak, &peak, sum))
        ;
    return true;
}

void nbd_mem_release(struct nbd_server *srv, size_t charge)
{
    atomic_fetch_sub(&srv->mem_used, charge);
    /* seq_cst: either a waiter registered before our load and we wake it,
     * or its check after registering sees our release */
    if (atomic_load(&srv->mem_waiters)) {
        pthread_mutex_lock(&srv->mlock);
        pthread_cond_broadcast(&srv->mcond);
        pthread_mutex_unlock(&srv->mlock);
    }
}

void nbd_mem_wait(struct nbd_server *srv, size_t charge, atomic_uint *inflight)
{
    pthread_mutex_lock(&srv->mlock);
    atomic_fetch_add(&srv->mem_waiters, 1);
    while (!nbd_mem_take(srv, charge, atomic_load(inflight) == 0))
        pthread_cond_wait(&srv->mcond, &srv->mlock);
    atomic_fetch_sub(&srv->mem_waiters, 1);
    pthread_mutex_unlock(&srv->mlock);
}

bool nbd_mem_keep(struct nbd_server *srv, size_t cap)
{
    uint64_t sum;
    return add_capped(&srv->mem_cached, cap, srv->opts.mem_budget / 4, false, &sum);
}

/* ---- acceptors ----------------------------------------------------------------- */
/* A client hammering a full server (max_conns) or a full fd table must not
 * flood the log: one line per interval, counting what it left out. */
static void __attribute__((format(printf, 2, 3)))
warn_limited(struct nbd_listener *l, const char *fmt, ...)
{
    int64_t now = nbd_now_ms();
    if (l->warned_ms && now - l->warned_ms < NBD_WARN_INTERVAL_MS) {
        l->suppressed++;
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (l->suppressed)
        blog_warn("%s (%u similar messages suppressed)", msg, l->suppressed);
    else
        blog_warn("%s", msg);
    l->warned_ms = now;
    l->suppressed = 0;
}

static void *acceptor_main(void *arg)
{
    struct nbd_listener *l = arg;
    struct nbd_server *srv = l->srv;
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            pthread_mutex_lock(&srv->lock);
            bool stop = srv->stopping;
            pthread_mutex_unlock(&srv->lock);
            if (stop)
                break;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            warn_limited(l, "nbd: accept: %s", strerror(e));
            /* EMFILE and friends: back off instead of spinning */
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
            continue;
        }
        nbd_conn_reap(srv);
        if (!l->unix_path) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        int ret = nbd_conn_start(srv, fd);
        if (ret < 0)
            warn_limited(l, "nbd: refusing connection: %s", strerror(-ret));
    }
    return NULL;
}

static int add_listener(struct nbd_server *s, int fd, const char *path, struct berr *err)
{
    struct nbd_listener *l = calloc(1, sizeof(*l));
    if (!l || (path && !(l->unix_path = strdup(path)))) {
        free(l);
        close(fd);
        return berr_set(err, ENOMEM, "out of memory");
    }
    l->srv = s;
    l->fd = fd;
    int e = pthread_create(&l->thread, NULL, acceptor_main, l);
    if (e) {
        free(l->unix_path);
        free(l);
        close(fd);
        return berr_errno(err, e, "cannot start NBD acceptor thread");
    }
    pthread_setname_np(l->thread, "nbd-accept");
    pthread_mutex_lock(&s->lock);
    l->next = s->listeners;
    s->listeners = l;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int nbd_server_listen_unix(struct nbd_server *s, const char *path, struct berr *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return berr_set(err, ENAMETOOLONG, "NBD socket path too long: %s", path);
    strcpy(sa.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return berr_errno(err, errno, "cannot create unix socket");
    if (unlink(path) < 0 && errno != ENOENT)
        return berr_errno(err, errno, "cannot remove old socket %s", path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return berr_errno(err, errno, "cannot bind %s", path);
    /* before listen(): nobody can connect while the mode is still wide */
    if (chmod(path, 0600) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        unlink(path);
        return berr_errno(err, e, "cannot listen on %s", path);
    }
    return add_listener(s, steal_fd(fd), path, err);
}

int nbd_server_listen_tcp(struct nbd_server *s, const char *host, uint16_t port,
                          uint16_t *bound_port, struct berr *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0)
        return berr_set(err, EINVAL, "cannot resolve NBD listen address %s: %s", host ? host : "*",
                        gai_strerror(g));
    _cleanup_close_ int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return berr_errno(err, errno, "cannot create TCP socket");
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        freeaddrinfo(ai);
        return berr_errno(err, e, "cannot listen on %s:%u", host ? host : "*", port);
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return berr_errno(err, errno, "getsockname");
    if (bound_port)
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    return add_listener(s, steal_fd(fd), NULL, err);
}

/* ---- registry -------------------------------------------------------------------- */
/* Is c on `name`: transmitting on it, or opened it in the handshake? */
static bool conn_is(const struct nbd_conn *c, const char *name)
{
    return (c->transmitting && strcmp(c->sess.name, name) == 0) ||
           (c->opening && strcmp(c->opening, name) == 0);
}

bool nbd_server_closing(const struct nbd_server *srv, const char *name)
{
    for (const struct nbd_closing *k = srv->closing; k; k = k->next)
        if (strcmp(k->name, name) == 0)
            return true;
    return false;
}

/* Mark `name` as being kicked (refcounted); srv->lock held.  false on ENOMEM. */
static bool closing_add(struct nbd_server *s, const char *name)
{
    struct nbd_closing *k;
    for (k = s->closing; k; k = k->next)
        if (strcmp(k->name, name) == 0) {
            k->refs++;
            return true;
        }
    size_t len = strlen(name) + 1;
    if (!(k = malloc(sizeof(*k) + len)))
        return false;
    memcpy(k->name, name, len);
    k->refs = 1;
    k->next = s->closing;
    s->closing = k;
    return true;
}

static void closing_del(struct nbd_server *s, const char *name)
{
    for (struct nbd_closing **p = &s->closing; *p; p = &(*p)->next) {
        struct nbd_closing *k = *p;
        if (strcmp(k->name, name) == 0) {
            if (--k->refs == 0) {
                *p = k->next;
                free(k);
            }
            return;
        }
    }
}

/* Shut down every connection transmitting on `name`; how many there are. */
static unsigned shutdown_export(struct nbd_server *s, const char *name)
{
    unsigned n = 0;
    for (struct nbd_conn *c = s->conns; c; c = c->next)
        if (conn_is(c, name)) {
            shutdown(c->fd, SHUT_RDWR);
            n++;
        }
    return n;
}

unsigned nbd_server_kick_export(struct nbd_server *s, const char *name)
{
    int64_t deadline = nbd_now_ms() + s->opts.kick_timeout_ms;
    pthread_mutex_lock(&s->lock);
    /* without the mark (ENOMEM) new clients may slip in: still kick */
    bool marked = closing_add(s, name);
    unsigned left;
    /* shutting down again is harmless; it catches any connection that got
     * past an unmarked name */
    while ((left = shutdown_export(s, name)) > 0) {
        int64_t now = nbd_now_ms();
        if (now >= deadline)
            break;
        int64_t until = MIN(deadline, now + 100); /* s->cond runs on CLOCK_MONOTONIC */
        struct timespec ts = {.tv_sec = (time_t)(until / 1000),
                              .tv_nsec = (long)(until % 1000) * 1000000L};
        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
    if (marked)
        closing_del(s, name);
    pthread_mutex_unlock(&s->lock);
    nbd_conn_reap(s);
    if (left)
        blog_warn("nbd: %s: %u connection%s still draining after %u ms", name, left,
                  left == 1 ? "" : "s", s->opts.kick_timeout_ms);
    return left;
}

unsigned nbd_server_export_conns(struct nbd_server *s, const char *name)
{
    unsigned n = 0;
    pthread_mutex_lock(&s->lock);
    for (struct nbd_conn *c = s->conns; c; c = c->next)
        n += conn_is(c, name);
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- life ------------------------------------------------------------------------- */
int nbd_server_new(const struct nbd_backend *be, const struct nbd_server_opts *opts,
                   struct nbd_server **out, struct berr *err)
{
    if (!be || be->size < offsetof(struct nbd_backend, pread) + sizeof(be->pread) || !be->open ||
        !be->pread)
        return berr_set(err, EINVAL, "NBD backend lacks open or pread");
    struct nbd_server *s = calloc(1, sizeof(*s));
    if (!s)
        return berr_set(err, ENOMEM, "out of memory");
    /* a smaller (older) backend struct leaves the newer members NULL */
    memcpy(&s->be, be, MIN((size_t)be->size, sizeof(s->be)));
    s->be.size = sizeof(s->be);
    if (opts)
        s->opts = *opts;
    if (!s->opts.workers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->opts.workers = (unsigned)MAX(4, 2 * (n > 0 ? n : 1));
    }
    s->opts.workers = MIN(s->opts.workers, 256u);
    if (!s->opts.max_conns)
        s->opts.max_conns = 1024;
    if (!s->opts.handshake_timeout_ms)
        s->opts.handshake_timeout_ms = 60000;
    if (!s->opts.kick_timeout_ms)
        s->opts.kick_timeout_ms = 10000;
    if (!s->opts.mem_budget)
        s->opts.mem_budget = UINT64_C(1) << 30;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mlock, NULL);
    pthread_cond_init(&s->mcond, NULL);
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    s->qtail = &s->qhead;
    s->workers = calloc(s->opts.workers, sizeof(*s->workers));
    if (!s->workers) {
        nbd_server_free(s);
        return berr_set(err, ENOMEM, "out of memory");
    }
    for (unsigned i = 0; i < s->opts.workers; i++) {
        int e = pthread_create(&s->workers[i], NULL, worker_main, s);
        if (e) {
            nbd_server_free(s);
            return berr_errno(err, e, "cannot start NBD worker threads");
        }
        pthread_setname_np(s->workers[i], "nbd-worker");
        s->nworkers++;
    }
    *out = s;
    return 0;
}

void nbd_server_free(struct nbd_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    struct nbd_listener *ls = s->listeners;
    s->listeners = NULL;
    for (struct nbd_listener *l = ls; l; l = l->next)
        shutdown(l->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->lock);
    while (ls) {
        struct nbd_listener *next = ls->next;
        pthread_join(ls->thread, NULL);
        close(ls->fd);
        if (ls->unix_path)
            unlink(ls->unix_path);
        free(ls->unix_path);
        free(ls);
        ls = next;
    }

    pthread_mutex_lock(&s->lock);
    for (struct nbd_conn *c = s->conns; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    while (s->conns)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    nbd_conn_reap(s);

    pthread_mutex_lock(&s->qlock);
    s->qstop = true;
    pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mlock);
    pthread_cond_destroy(&s->mcond);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    free(s);
}
