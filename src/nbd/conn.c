/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One client connection: its reader thread, its pool of requests and the
 * way replies leave the socket.
 *
 * State machine (the reader thread drives it):
 *
 *   HANDSHAKE     nbd_handshake() under one deadline for the whole of it
 *        |        (opts.handshake_timeout_ms), sends and receives alike
 *        | GO / EXPORT_NAME            \ ABORT, EOF, violation, deadline,
 *        | (export not being kicked)    \ export being kicked
 *        v                              v
 *   TRANSMISSION  read header (+payload), validate, queue to the workers;
 *        |        batches are handed over before the reader can block; up
 *        |        to NBD_RUN_MAX small writes of each it runs itself, if
 *        |        they cannot block (batch_flush)
 *        | DISC, EOF, bad magic, oversized write, socket error, kick
 *        v
 *   DRAINING      stop reading; wait until every request has been replied
 *        |        to or dropped (inflight == 0); stop the flusher
 *        v
 *   ZOMBIE        export closed, request pool freed, off srv->conns, fd
 *                 closed (so the fd count falls as clients leave), on
 *                 srv->zombies: the next connection to end (or an accept,
 *                 a kick, nbd_server_free) joins the thread and frees the
 *                 struct, so at most one zombie outlives its neighbours
 *
 * Kick: the handshake asks conn_admit() before it opens an export; that
 * refuses a name being kicked (srv->closing) and otherwise records it in
 * c->opening until the handle is closed again (conn_release) or the
 * connection enters TRANSMISSION, where `transmitting` is set under
 * srv->lock only if the name is still not being kicked (if it is, `opening`
 * stays until the connection ends).  A kick marks the name under the same
 * lock before it shuts connections down, so it sees every connection that
 * holds or may still open a handle of that export.
 *
 * Sending: a worker that finished a run of requests (server.c) takes
 * c->wlock and, if nothing is queued before it, writes their replies with
 * one non-blocking sendmsg().  If the socket is full the rest of the run is
 * queued and the connection's flusher thread (started on first need) writes
 * the queue with blocking sends.  So a client that stops reading its replies stalls only
 * its own flusher, never the shared workers; and since queued replies count
 * as in flight, its reader stops at the budget below and memory stays
 * bounded.  Once a send fails the connection is "broken": later replies are
 * dropped and the socket is shut down, which ends the reader.
 *
 * Budget: at most NBD_CONN_MAX_INFLIGHT requests and NBD_CONN_MAX_BYTES of
 * buffers per connection, and opts.mem_budget bytes over all connections
 * (srv->mem_used).  A connection with nothing in flight is always admitted
 * one request, whatever its size and the global budget: replies stuck in
 * the flushers of clients that do not read may hold the global budget
 * forever, and must not starve everybody else.  So memory is bounded by
 * mem_budget + max_conns * (one request), and every connection progresses.
 * Idle request buffers kept in the per-connection free lists count against
 * a separate cap (srv->mem_cached <= mem_budget / 4).
 *
 * Locks: srv->lock > c->lock; srv->mlock (only held to sleep on mcond) and
 * c->wlock are never held with another lock (req_put() takes c->lock after
 * releasing c->wlock). */
#include "nbd/nbd_int.h"

#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/cleanup.h"
#include "common/log.h"

#define NBD_CONN_MAX_INFLIGHT 64u
#define NBD_CONN_MAX_BYTES (64u << 20)
#define NBD_RBUF_SIZE (128u * 1024)
#define NBD_KEEP_BUF (1u << 20)       /* pooled requests keep buffers up to this */
#define NBD_REQ_OVERHEAD 4096u        /* charge of a request without data */
#define NBD_BATCH 16u
#define NBD_THREAD_STACK (512u * 1024)

/* ---- socket I/O ------------------------------------------------------------ */
/* During the handshake (hs_deadline set) every read and write waits at most
 * until the deadline: a client that stops reading our option replies must
 * not pin the reader thread in send(), nor one that trickles bytes keep it
 * forever.  In transmission the socket blocks (a kick shuts it down). */
static int sock_wait(struct nbd_conn *c, short events)
{
    if (!c->hs_deadline)
        return 0;
    for (;;) {
        int64_t left = c->hs_deadline - nbd_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, (int)MIN(left, (int64_t)INT_MAX));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int sock_read(void *o, void *buf, size_t len)
{
    struct nbd_conn *c = o;
    uint8_t *p = buf;
    while (len) {
        int ret = sock_wait(c, POLLIN);
        if (ret < 0)
            return ret;
        ssize_t n = recv(c->fd, p, len, c->hs_deadline ? MSG_DONTWAIT : MSG_WAITALL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int sock_write(void *o, const void *buf, size_t len)
{
    struct nbd_conn *c = o;
    const uint8_t *p = buf;
    while (len) {
        int ret = sock_wait(c, POLLOUT);
        if (ret < 0)
            return ret;
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | (c->hs_deadline ? MSG_DONTWAIT : 0));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Move `left` sent bytes through r's reply; true when all of it is sent. */
static bool reply_advance(struct nbd_req *r, size_t *left)
{
    while (*left && r->iovpos < r->iovcnt) {
        struct iovec *v = &r->iov[r->iovpos];
        if (*left >= v->iov_len) {
            *left -= v->iov_len;
            r->iovpos++;
        } else {
            v->iov_base = (uint8_t *)v->iov_base + *left;
            v->iov_len -= *left;
            *left = 0;
        }
    }
    return r->iovpos >= r->iovcnt;
}

/* Send what is left of the replies chained from *head (r->next), as many
 * per sendmsg() as fit in NBD_SEND_IOV iovecs: the client wakes once for a
 * run of replies, not once each.  Fully sent replies move from *head to
 * **done_tail, in order.  1 when all is sent, 0 when the socket is full
 * (only with MSG_DONTWAIT), -errno on error. */
#define NBD_SEND_IOV (2 * NBD_REQ_IOV)
static int send_replies(int fd, struct nbd_req **head, struct nbd_req ***done_tail, int flags)
{
    while (*head) {
        struct iovec v[NBD_SEND_IOV];
        int nv = 0;
        for (struct nbd_req *r = *head; r; r = r->next) {
            int k = r->iovcnt - r->iovpos;
            if (nv + k > NBD_SEND_IOV)
                break; /* the first always fits: NBD_REQ_IOV <= NBD_SEND_IOV */
            memcpy(v + nv, r->iov + r->iovpos, (size_t)k * sizeof(*v));
            nv += k;
        }
        struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)nv};
        ssize_t n = nv ? sendmsg(fd, &m, flags | MSG_NOSIGNAL) : 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        size_t left = (size_t)n;
        while (*head && reply_advance(*head, &left)) {
            struct nbd_req *r = *head;
            *head = r->next;
            r->next = NULL;
            **done_tail = r;
            *done_tail = &r->next;
        }
    }
    return 1;
}

/* ---- request pool and budget ---------------------------------------------- */
static bool budget_ok(const struct nbd_conn *c, size_t charge)
{
    return c->inflight == 0 ||
           (c->inflight < NBD_CONN_MAX_INFLIGHT && c->inflight_bytes + charge <= NBD_CONN_MAX_BYTES);
}

/* Take a request, waiting for budget if `wait`; NULL if !wait and no budget,
 * or on allocation failure.  Only the reader calls this, so budget it has
 * seen stays available while it sleeps on the other budget. */
static struct nbd_req *req_get(struct nbd_conn *c, size_t charge, bool wait)
{
    struct nbd_server *srv = c->srv;
    pthread_mutex_lock(&c->lock);
    while (!budget_ok(c, charge)) {
        if (!wait) {
            pthread_mutex_unlock(&c->lock);
            return NULL;
        }
        pthread_cond_wait(&c->cond, &c->lock);
    }
    if (!nbd_mem_take(srv, charge, c->inflight == 0)) {
        pthread_mutex_unlock(&c->lock);
        if (!wait)
            return NULL;
        nbd_mem_wait(srv, charge, &c->inflight);
        pthread_mutex_lock(&c->lock);
    }
    struct nbd_req *r = c->free_reqs;
    if (r) {
        c->free_reqs = r->next;
        c->nfree--;
        atomic_fetch_sub(&srv->mem_cached, r->cap);
    }
    c->inflight++;
    c->inflight_bytes += charge;
    pthread_mutex_unlock(&c->lock);
    if (!r && !(r = calloc(1, sizeof(*r)))) {
        pthread_mutex_lock(&c->lock);
        c->inflight--;
        c->inflight_bytes -= charge;
        pthread_mutex_unlock(&c->lock);
        nbd_mem_release(srv, charge);
        return NULL;
    }
    r->next = NULL;
    r->conn = c;
    r->charge = charge;
    r->error = 0;
    r->errmsg = NULL;
    return r;
}

static void req_free(struct nbd_req *r)
{
    free(r->buf);
    free(r->wbufs);
    free(r->wiov);
    free(r);
}

static void req_put(struct nbd_conn *c, struct nbd_req *r)
{
    struct nbd_server *srv = c->srv;
    size_t charge = r->charge;
    nbd_req_drop_wbufs(c->sess.be, r); /* a payload read that failed */
    pthread_mutex_lock(&c->lock);
    c->inflight--;
    c->inflight_bytes -= charge;
    if (c->nfree < NBD_CONN_MAX_INFLIGHT && r->cap <= NBD_KEEP_BUF && nbd_mem_keep(srv, r->cap)) {
        r->next = c->free_reqs;
        c->free_reqs = r;
        c->nfree++;
        r = NULL;
    }
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    nbd_mem_release(srv, charge);
    if (r)
        req_free(r);
}

/* Free the idle requests (the connection is ending). */
static void pool_free(struct nbd_conn *c)
{
    pthread_mutex_lock(&c->lock);
    struct nbd_req *r = c->free_reqs;
    c->free_reqs = NULL;
    c->nfree = 0;
    pthread_mutex_unlock(&c->lock);
    while (r) {
        struct nbd_req *next = r->next;
        atomic_fetch_sub(&c->srv->mem_cached, r->cap);
        req_free(r);
        r = next;
    }
}

/* ---- sending ---------------------------------------------------------------- */
static void set_broken(struct nbd_conn *c)
{
    /* wlock held */
    if (!c->broken) {
        c->broken = true;
        shutdown(c->fd, SHUT_RDWR);
    }
}

static void *flusher_main(void *arg)
{
    struct nbd_conn *c = arg;
    pthread_mutex_lock(&c->wlock);
    for (;;) {
        while (!c->sendq && !c->closing)
            pthread_cond_wait(&c->wcond, &c->wlock);
        struct nbd_req *r = c->sendq;
        if (!r)
            break;
        c->sendq = r->next;
        if (!c->sendq)
            c->sendq_tail = &c->sendq;
        c->flusher_busy = true;
        bool broken = c->broken;
        pthread_mutex_unlock(&c->wlock);

        r->next = NULL;
        struct nbd_req *done = NULL, **dtail = &done, *rest = r;
        int ret = broken ? -EPIPE : send_replies(c->fd, &rest, &dtail, 0);
        req_put(c, r);

        pthread_mutex_lock(&c->wlock);
        if (ret < 0)
            set_broken(c);
        c->flusher_busy = false;
    }
    pthread_mutex_unlock(&c->wlock);
    return NULL;
}

static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, NBD_THREAD_STACK);
    int e = pthread_create(t, &a, fn, arg);
    pthread_attr_destroy(&a);
    if (e == 0)
        pthread_setname_np(*t, name); /* for perf and top; else the acceptor's */
    return -e;
}

void nbd_conn_send(struct nbd_conn *c, struct nbd_req *r)
{
    struct nbd_req *done = NULL, **dtail = &done;
    pthread_mutex_lock(&c->wlock);
    if (c->broken)
        goto drop;
    if (!c->sendq && !c->flusher_busy) {
        int ret = send_replies(c->fd, &r, &dtail, MSG_DONTWAIT);
        if (ret < 0)
            set_broken(c);
        if (ret != 0)
            goto drop;
    }
    if (!c->flusher_started) {
        if (start_thread(&c->flusher, flusher_main, c, "nbd-flush") < 0) {
            set_broken(c);
            goto drop;
        }
        c->flusher_started = true;
    }
    *c->sendq_tail = r;
    while (r->next)
        r = r->next;
    c->sendq_tail = &r->next;
    pthread_cond_signal(&c->wcond);
    r = NULL;
drop:
    *dtail = r; /* the unsent rest, if dropped */
    pthread_mutex_unlock(&c->wlock);
    while (done) {
        struct nbd_req *next = done->next;
        req_put(c, done);
        done = next;
    }
}

/* ---- reading ------------------------------------------------------------------ */
struct batch {
    struct nbd_req *head, **tail;
    unsigned n;
};

/* Small writes the reader runs itself.  Handing 4 KiB writes to a worker
 * cost wake-ups and ~1.4 context switches per request, about as much as
 * the write (docs/PERFORMANCE.md, tenth round); executing it here, where
 * its payload is still in the CPU's cache, does not.  Only what cannot
 * block: a WRITE
 * of at most NBD_INLINE_MAX_LEN bytes, without FUA, received into r->buf,
 * on a backend that says when it would block (pwrite_nowait: a device read
 * of a partly written block's old contents, a throttle).  Then it goes to
 * the workers, so one slow request never holds up the reading of the
 * connection's next ones. */
#define NBD_INLINE_MAX_LEN (64u << 10)

static bool inline_ok(const struct nbd_session *s, const struct nbd_req *r)
{
    return s->be->pwrite_nowait && r->rq.type == NBD_CMD_WRITE && r->error == 0 &&
           r->nwbufs == 0 && !(r->rq.flags & NBD_CMD_FLAG_FUA) && r->rq.len <= NBD_INLINE_MAX_LEN;
}

/* Hand the batch over (the reader is about to block or the batch is full).
 * The leading inline_ok requests, at most NBD_RUN_MAX, stay with the
 * reader; the rest go to the workers first, so a long batch still spreads
 * over the CPUs while the reader runs its share.  Of its share, what would
 * block follows to the workers; the others' replies leave in one send. */
static void batch_submit(struct nbd_conn *c, struct batch *b)
{
    if (b->n)
        nbd_server_submit(c->srv, b->head, b->tail, b->n);
    b->head = NULL;
    b->tail = &b->head;
    b->n = 0;
}

static void batch_flush(struct nbd_conn *c, struct batch *b)
{
    /* cut the reader's share off the head of the batch */
    struct nbd_req **cut = &b->head;
    unsigned nmine = 0;
    while (*cut && nmine < NBD_RUN_MAX && inline_ok(&c->sess, *cut)) {
        cut = &(*cut)->next;
        nmine++;
    }
    struct nbd_req *mine = nmine ? b->head : NULL;
    if (nmine) {
        b->head = *cut;
        *cut = NULL;
        b->n -= nmine;
        if (!b->head)
            b->tail = &b->head;
    }
    batch_submit(c, b);
    struct nbd_req *done = NULL, **dtail = &done;
    while (mine) {
        struct nbd_req *r = mine;
        mine = r->next;
        r->next = NULL;
        if (nbd_exec_nowait(&c->sess, r)) {
            *dtail = r;
            dtail = &r->next;
        } else { /* it would block: a worker writes it again */
            *b->tail = r;
            b->tail = &r->next;
            b->n++;
        }
    }
    batch_submit(c, b);
    if (done)
        nbd_conn_send(c, done);
}

static size_t req_charge(const struct nbd_request *rq)
{
    switch (rq->type) {
    case NBD_CMD_READ:
    case NBD_CMD_WRITE:
        return NBD_REQ_OVERHEAD + rq->len;
    case NBD_CMD_BLOCK_STATUS:
        return NBD_REQ_OVERHEAD + NBD_BS_MAX_EXTENTS * NBD_BS_DESC;
    default:
        return NBD_REQ_OVERHEAD;
    }
}

/* Read len bytes into iov[0..cnt), the first `have` of them from `pre` (what
 * the reader's buffer already holds).  0 or -errno. */
static int recv_iov(struct nbd_conn *c, struct iovec *iov, size_t cnt, const uint8_t *pre,
                    size_t have)
{
    size_t i = 0;
    for (; i < cnt && have; i++) { /* iov is ours to advance */
        size_t k = MIN(have, iov[i].iov_len);
        memcpy(iov[i].iov_base, pre, k);
        pre += k;
        have -= k;
        iov[i].iov_base = (uint8_t *)iov[i].iov_base + k;
        iov[i].iov_len -= k;
        if (iov[i].iov_len)
            break;
    }
    while (i < cnt) {
        if (iov[i].iov_len == 0) {
            i++;
            continue;
        }
        struct msghdr m = {.msg_iov = iov + i, .msg_iovlen = MIN(cnt - i, (size_t)IOV_MAX)};
        ssize_t n = recvmsg(c->fd, &m, MSG_WAITALL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EPIPE;
        for (size_t left = (size_t)n; left;) {
            size_t k = MIN(left, iov[i].iov_len);
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + k;
            iov[i].iov_len -= k;
            left -= k;
            if (iov[i].iov_len == 0)
                i++;
        }
    }
    return 0;
}

/* Receive the payload of an accepted WRITE whose range holds whole blocks
 * of the backend's buffer size straight into buffers of the backend, which
 * its pwrite_bufs then takes without copying: head and tail (unaligned
 * parts) go to r->buf.  `pre`/`have`: payload bytes already in the reader's
 * buffer.  1 done, 0 not for this request (nothing consumed), -errno. */
static int recv_payload_bufs(struct nbd_conn *c, struct nbd_req *r, const uint8_t *pre, size_t have)
{
    const struct nbd_session *s = &c->sess;
    const struct nbd_backend *be = s->be;
    const uint32_t bs = s->wbuf_size;
    const uint64_t off = r->rq.offset, len = r->rq.len;
    uint64_t head = (bs - off % bs) % bs;
    if (head >= len)
        return 0;
    size_t n = (size_t)((len - head) / bs);
    if (n == 0)
        return 0;
    uint64_t tail = len - head - (uint64_t)n * bs;
    if (n + 2 > r->wcap) {
        void **w = realloc(r->wbufs, (n + 2) * sizeof *w);
        if (w)
            r->wbufs = w;
        struct iovec *v = w ? realloc(r->wiov, (n + 2) * sizeof *v) : NULL;
        if (!v)
            return 0;
        r->wiov = v;
        r->wcap = n + 2;
    }
    if (nbd_req_reserve(r, (size_t)(head + tail)) < 0)
        return 0;
    size_t cnt = 0;
    r->whead = (uint32_t)head;
    r->wbsize = bs;
    if (head)
        r->wiov[cnt++] = (struct iovec){r->buf, (size_t)head};
    for (; r->nwbufs < n; r->nwbufs++) {
        void *data;
        void *b = be->wbuf_new(s->handle, &data);
        if (!b) {
            nbd_req_drop_wbufs(be, r); /* short of memory: copy as before */
            return 0;
        }
        r->wbufs[r->nwbufs] = b;
        r->wiov[cnt++] = (struct iovec){data, bs};
    }
    if (tail)
        r->wiov[cnt++] = (struct iovec){r->buf + head, (size_t)tail};
    int ret = recv_iov(c, r->wiov, cnt, pre, have);
    return ret < 0 ? ret : 1;
}

static void transmit(struct nbd_conn *c)
{
    struct nbd_session *s = &c->sess;
    _cleanup_free_ uint8_t *rb = malloc(NBD_RBUF_SIZE);
    size_t rpos = 0, rlen = 0;
    struct batch b = {NULL, &b.head, 0};
    /* after a payload received into block buffers the next one is likely
     * the same: read just its header, so its payload is not copied */
    bool header_only = false;

    if (!rb)
        return;
    s->wbuf_size = 0;
    if (s->be->pwrite_bufs && s->be->wbuf_size && s->be->wbuf_new && s->be->wbuf_free) {
        uint32_t bs = s->be->wbuf_size(s->handle);
        if (bs >= 512 && !(bs & (bs - 1)))
            s->wbuf_size = bs;
    }
    for (;;) {
        if (rlen - rpos < NBD_REQUEST_SIZE) {
            /* about to block: let the workers start on what we have */
            batch_flush(c, &b);
            memmove(rb, rb + rpos, rlen - rpos);
            rlen -= rpos;
            rpos = 0;
            size_t want = header_only ? NBD_REQUEST_SIZE - rlen : NBD_RBUF_SIZE - rlen;
            ssize_t n = recv(c->fd, rb + rlen, want, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            rlen += (size_t)n;
            continue;
        }
        struct nbd_request rq;
        nbd_request_parse(rb + rpos, &rq);
        rpos += NBD_REQUEST_SIZE;
        if (s->be->get_size)
            s->size = s->be->get_size(s->handle);
        const char *msg;
        int err = nbd_request_check(&rq, s, &msg);
        if (err == NBD_CHECK_DISCONNECT) {
            blog_debug("nbd: %s: closing connection: %s", s->name, msg);
            break;
        }
        if (rq.type == NBD_CMD_DISC)
            break;

        size_t charge = req_charge(&rq);
        struct nbd_req *r = req_get(c, charge, false);
        if (!r) {
            batch_flush(c, &b);
            if (!(r = req_get(c, charge, true)))
                break;
        }
        r->rq = rq;
        r->error = err;
        r->errmsg = msg;
        header_only = false;
        if (nbd_request_has_payload(&rq) && err == 0 && s->wbuf_size) {
            size_t have = MIN(rlen - rpos, (size_t)rq.len);
            batch_flush(c, &b);
            int got = recv_payload_bufs(c, r, rb + rpos, have);
            if (got < 0) {
                req_put(c, r);
                break;
            }
            if (got > 0) {
                rpos += have;
                header_only = true;
                *b.tail = r;
                b.tail = &r->next;
                b.n++;
                batch_flush(c, &b);
                continue;
            }
        }
        if (nbd_request_has_payload(&rq)) {
            /* read it even when the request is refused, to stay in sync */
            if (nbd_req_reserve(r, rq.len) < 0) {
                req_put(c, r);
                break;
            }
            size_t have = MIN(rlen - rpos, (size_t)rq.len);
            memcpy(r->buf, rb + rpos, have);
            rpos += have;
            if (have < rq.len) {
                batch_flush(c, &b);
                if (sock_read(c, r->buf + have, rq.len - have) < 0) {
                    req_put(c, r);
                    break;
                }
            }
        }
        *b.tail = r;
        b.tail = &r->next;
        if (++b.n >= NBD_BATCH)
            batch_flush(c, &b);
    }
    batch_flush(c, &b);
}

/* ---- lifecycle -------------------------------------------------------------------- */
/* The handshake is about to open `name`: refuse it if it is being kicked,
 * else let a kick count us until the handle is closed (conn_release) or the
 * connection ends. */
static int conn_admit(void *o, const char *name, const char **msg)
{
    struct nbd_conn *c = o;
    char *copy = strdup(name);
    int ret = 0;
    pthread_mutex_lock(&c->srv->lock);
    if (nbd_server_closing(c->srv, name)) {
        *msg = "export is being removed";
        ret = -ENOENT;
    } else if (!copy) {
        *msg = "out of memory";
        ret = -ENOMEM;
    } else {
        free(c->opening);
        c->opening = steal_ptr(copy);
    }
    pthread_mutex_unlock(&c->srv->lock);
    free(copy);
    return ret;
}

static void conn_release(void *o)
{
    struct nbd_conn *c = o;
    pthread_mutex_lock(&c->srv->lock);
    char *name = steal_ptr(c->opening);
    pthread_mutex_unlock(&c->srv->lock);
    free(name);
}

static void conn_free(struct nbd_conn *c);

static void *reader_main(void *arg)
{
    struct nbd_conn *c = arg;
    struct nbd_server *srv = c->srv;
    struct nbd_hs_io io = {.read = sock_read, .write = sock_write, .o = c, .admit = conn_admit,
                           .release = conn_release};

    c->hs_deadline = nbd_now_ms() + srv->opts.handshake_timeout_ms;
    int ret = nbd_handshake(&srv->be, &io, &c->sess);
    c->hs_deadline = 0;
    if (ret == 0) {
        /* a kick that began after conn_admit() said yes must not miss us;
         * if refused, `opening` keeps us counted until the handle closes */
        char *name = NULL;
        pthread_mutex_lock(&srv->lock);
        bool refused = nbd_server_closing(srv, c->sess.name);
        if (!refused) {
            c->transmitting = true;
            name = steal_ptr(c->opening);
        }
        pthread_mutex_unlock(&srv->lock);
        free(name);
        if (refused)
            blog_debug("nbd: %s: export is being removed, closing", c->sess.name);
        else
            transmit(c);
    } else {
        blog_debug("nbd: handshake ended: %s", strerror(-ret));
    }

    /* DRAINING */
    pthread_mutex_lock(&c->lock);
    while (c->inflight)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_lock(&c->wlock);
    c->closing = true;
    pthread_cond_signal(&c->wcond);
    pthread_mutex_unlock(&c->wlock);
    if (c->flusher_started)
        pthread_join(c->flusher, NULL);

    /* ZOMBIE: the peer sees EOF now */
    shutdown(c->fd, SHUT_RDWR);
    nbd_session_close(&c->sess);
    pool_free(c);
    pthread_mutex_lock(&srv->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->transmitting = false;
    char *opening = steal_ptr(c->opening);
    srv->nconns--;
    /* we are the only zombie left; the earlier ones are ours to reap */
    struct nbd_conn *z = srv->zombies;
    c->prev = NULL;
    c->next = NULL;
    srv->zombies = c;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
    free(opening);
    /* off srv->conns nobody shuts the fd down any more: the number cannot
     * be reused under a kick */
    close(c->fd);
    c->fd = -1;
    /* older zombies have released every lock, so joining them cannot wait
     * on us; whoever reaps us waits for this */
    while (z) {
        struct nbd_conn *next = z->next;
        pthread_join(z->reader, NULL);
        conn_free(z);
        z = next;
    }
    return NULL;
}

static void conn_free(struct nbd_conn *c)
{
    while (c->free_reqs) {
        struct nbd_req *r = c->free_reqs;
        c->free_reqs = r->next;
        req_free(r);
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c->opening);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->wlock);
    pthread_cond_destroy(&c->wcond);
    free(c);
}

void nbd_conn_reap(struct nbd_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    struct nbd_conn *z = srv->zombies;
    srv->zombies = NULL;
    pthread_mutex_unlock(&srv->lock);
    while (z) {
        struct nbd_conn *next = z->next;
        pthread_join(z->reader, NULL);
        conn_free(z);
        z = next;
    }
}

int nbd_conn_start(struct nbd_server *srv, int fd)
{
    struct nbd_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->srv = srv;
    c->fd = fd;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    pthread_mutex_init(&c->wlock, NULL);
    pthread_cond_init(&c->wcond, NULL);
    c->sendq_tail = &c->sendq;

    pthread_mutex_lock(&srv->lock);
    if (srv->stopping || srv->nconns >= srv->opts.max_conns) {
        pthread_mutex_unlock(&srv->lock);
        conn_free(c);
        return -EBUSY;
    }
    int ret = start_thread(&c->reader, reader_main, c, "nbd-conn");
    if (ret < 0) {
        pthread_mutex_unlock(&srv->lock);
        conn_free(c);
        return ret;
    }
    /* the reader cannot unlink itself before we release srv->lock */
    c->next = srv->conns;
    if (c->next)
        c->next->prev = c;
    srv->conns = c;
    srv->nconns++;
    pthread_mutex_unlock(&srv->lock);
    return 0;
}
