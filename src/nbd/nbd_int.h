/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internals of the NBD server shared by its files, and the entry points
 * that unit tests and fuzz targets drive directly from byte buffers:
 *
 *   handshake.c  nbd_handshake(): option haggling over an abstract byte
 *                stream (struct nbd_hs_io), producing a struct nbd_session
 *   request.c    nbd_request_parse() + nbd_request_check(): the one place
 *                where a transmission request is validated
 *   exec.c       nbd_exec(): run one request against the backend and build
 *                its reply as an iovec in the struct nbd_req
 *   reply.c      reply encoders (simple, structured chunks) and errno mapping
 *   conn.c       a connection: reader thread, request pool, sending
 *   server.c     listeners, acceptors, the worker pool, memory budget, kick
 *                and shutdown
 *
 * Nothing here is stable API; the daemon uses nbd_server.h only. */
#ifndef BERTH_NBD_INT_H
#define BERTH_NBD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nbd/nbd_server.h"
#include "nbd/proto.h"

/* ---- the negotiated state of one connection ----------------------------- */
struct nbd_session {
    const struct nbd_backend *be;
    void *handle;                /* open export once in transmission, else NULL */
    char name[NBD_MAX_STRING + 1];
    struct nbd_export_info info; /* sanitised by nbd_info_sanitise() */
    uint64_t size;               /* refreshed from be->get_size per request */
    uint16_t eflags;             /* transmission flags sent to the client */
    bool structured;             /* NBD_OPT_STRUCTURED_REPLY acked */
    bool meta_alloc;             /* base:allocation selected for `name` */
    bool no_zeroes;              /* client set NBD_FLAG_C_NO_ZEROES */
    uint32_t wbuf_size;          /* be->wbuf_size of the handle, 0: copy writes */
    char *meta_export;           /* export named by SET_META_CONTEXT (malloc) */
    unsigned nopts;              /* options seen, bounded by NBD_MAX_OPTIONS */
};

/* Byte stream of the handshake.  read/write return 0 or -errno; read returns
 * -EPIPE at end of stream.  Sockets in the server, memory in the fuzzers.
 * admit (optional) is asked before an export is opened: 0, or -errno with a
 * static message in *msg for the client (the server refuses exports that
 * are being kicked, and counts admitted ones until their handle is closed).
 * release (optional) follows an admit once the handle opened under it is
 * closed again or failed to open; after GO/EXPORT_NAME it is not called:
 * the handle stays open in the session. */
struct nbd_hs_io {
    int (*read)(void *o, void *buf, size_t len);
    int (*write)(void *o, const void *buf, size_t len);
    void *o;
    int (*admit)(void *o, const char *name, const char **msg);
    void (*release)(void *o);
};

/* Run the fixed newstyle handshake.  Returns 0 when the client entered
 * transmission (s->handle is open and owned by s), or -errno when the
 * connection must be closed (client gone, NBD_OPT_ABORT, violation). */
int nbd_handshake(const struct nbd_backend *be, const struct nbd_hs_io *io, struct nbd_session *s);
/* Close the export handle if open and free what the session owns. */
void nbd_session_close(struct nbd_session *s);
/* Clamp and default the block-size constraints a backend reported; -EINVAL
 * with a message if they cannot be made valid (min_block not a power of 2). */
int nbd_info_sanitise(struct nbd_export_info *info, struct berr *err);
/* Transmission flags for an export given the negotiation so far. */
uint16_t nbd_eflags(const struct nbd_backend *be, const struct nbd_export_info *info,
                    bool structured);

/* ---- requests ------------------------------------------------------------ */
struct nbd_request {
    uint32_t magic;
    uint16_t flags, type;
    uint64_t handle, offset;
    uint32_t len;
};

/* nbd_request_check() result that means "hard disconnect, no reply" */
#define NBD_CHECK_DISCONNECT (-1)

void nbd_request_parse(const uint8_t b[NBD_REQUEST_SIZE], struct nbd_request *rq);
/* Validate a request against the session.  Returns 0 if it may be executed,
 * an NBD error (NBD_EINVAL ...) to reply with, or NBD_CHECK_DISCONNECT.
 * *msg (may be NULL) receives a static human-readable reason.  For a WRITE
 * with an error reply the payload (len <= NBD_MAX_PAYLOAD, guaranteed) must
 * still be consumed.  NBD_CMD_DISC returns 0: the caller stops reading. */
int nbd_request_check(const struct nbd_request *rq, const struct nbd_session *s,
                      const char **msg);
/* Does this request carry a payload after its header? */
static inline bool nbd_request_has_payload(const struct nbd_request *rq)
{
    return rq->type == NBD_CMD_WRITE;
}

/* One request in flight and, after nbd_exec(), its reply.  Pooled per
 * connection; `buf` is kept across reuse so the steady state allocates
 * nothing. */
#define NBD_READ_MAX_CHUNKS 32                       /* content chunks per READ */
#define NBD_REQ_IOV (2 * NBD_READ_MAX_CHUNKS + 2)
#define NBD_REQ_SCRATCH (NBD_READ_MAX_CHUNKS * 32 + 256)
#define NBD_BS_MAX_EXTENTS 1024                      /* descriptors per BLOCK_STATUS */

struct nbd_conn;

struct nbd_req {
    struct nbd_req *next;        /* worker queue / send queue / free list */
    struct nbd_conn *conn;
    struct nbd_request rq;
    int error;                   /* NBD error from validation: reply without I/O */
    const char *errmsg;
    uint8_t *buf;                /* WRITE payload in, READ data / descriptors out */
    size_t cap;
    /* zero-copy WRITE (conn.c recv_payload): the payload's head (whead
     * bytes) is in buf, then nwbufs whole blocks of wbsize bytes in the
     * backend's buffers wbufs[], then the tail in buf + whead.  The arrays
     * are kept across reuse; the buffers belong to the request until
     * nbd_exec hands them to the backend (nwbufs = 0 then). */
    void **wbufs;
    struct iovec *wiov;
    size_t nwbufs, wcap;
    uint32_t whead, wbsize;
    size_t charge;               /* bytes counted against the budgets */
    struct iovec iov[NBD_REQ_IOV];
    int iovcnt, iovpos;          /* reply; iovpos advances on partial sends */
    size_t scratch_used;
    uint8_t scratch[NBD_REQ_SCRATCH]; /* reply headers */
};

/* Make r->buf hold at least len bytes; 0 or -ENOMEM. */
int nbd_req_reserve(struct nbd_req *r, size_t len);
/* Free the zero-copy buffers r still holds (a request that is not run). */
void nbd_req_drop_wbufs(const struct nbd_backend *be, struct nbd_req *r);
/* Execute r (or just reply r->error) and build the reply iovec. */
void nbd_exec(const struct nbd_session *s, struct nbd_req *r);
/* nbd_exec for a WRITE without FUA received into r->buf (no wbufs) that
 * must not block (NBD_IOF_NOWAIT): true if done (reply built), false if the
 * backend would have blocked (no reply; run it through nbd_exec). */
bool nbd_exec_nowait(const struct nbd_session *s, struct nbd_req *r);

/* reply.c */
uint32_t nbd_errno_to_wire(int neg_errno);
void nbd_reply_reset(struct nbd_req *r);
void nbd_reply_simple(struct nbd_req *r, uint32_t error);
void nbd_reply_error(const struct nbd_session *s, struct nbd_req *r, uint32_t error,
                     const char *msg);
/* A content/hole span of a READ reply, in request order. */
struct nbd_span {
    uint64_t off;
    uint32_t len;
    bool hole;
    uint8_t *data; /* for data spans */
};
void nbd_reply_read(const struct nbd_session *s, struct nbd_req *r, const struct nbd_span *sp,
                    unsigned n);
/* descriptors are already encoded (8 bytes each, big endian) in r->buf */
void nbd_reply_block_status(struct nbd_req *r, uint32_t ndesc);
size_t nbd_reply_len(const struct nbd_req *r);

/* ---- server internals ---------------------------------------------------- */
struct nbd_listener {
    struct nbd_listener *next;
    struct nbd_server *srv;
    int fd;
    char *unix_path; /* unlinked at free */
    pthread_t thread;
    int64_t warned_ms;   /* rate limit of the acceptor's warnings */
    unsigned suppressed;
};

struct nbd_conn {
    struct nbd_conn *prev, *next; /* srv->conns or srv->zombies, under srv->lock */
    struct nbd_server *srv;
    int fd;
    pthread_t reader;
    struct nbd_session sess;
    bool transmitting;            /* counted by export_conns (srv->lock) */
    char *opening;                /* export admitted in the handshake, its
                                     handle maybe open (srv->lock, malloc) */
    int64_t hs_deadline;          /* CLOCK_MONOTONIC ms; 0 once transmitting */

    pthread_mutex_t lock;         /* budget, free list */
    pthread_cond_t cond;
    atomic_uint inflight;         /* written under lock; read bare by mem_wait */
    size_t inflight_bytes;
    struct nbd_req *free_reqs;
    unsigned nfree;

    pthread_mutex_t wlock;        /* socket writes, send queue, flusher */
    pthread_cond_t wcond;
    struct nbd_req *sendq, **sendq_tail;
    bool flusher_busy, flusher_started, closing, broken;
    pthread_t flusher;
};

/* An export name being kicked: handshakes refuse it (srv->lock) */
struct nbd_closing {
    struct nbd_closing *next;
    unsigned refs;                /* concurrent kicks of the same name */
    char name[];
};

struct nbd_server {
    struct nbd_backend be;
    struct nbd_server_opts opts;

    pthread_mutex_t lock;         /* listeners, conns, zombies, closing, stopping */
    pthread_cond_t cond;          /* a connection ended */
    struct nbd_listener *listeners;
    struct nbd_conn *conns, *zombies;
    struct nbd_closing *closing;
    unsigned nconns;
    bool stopping;

    /* global memory budget (conn.c): charges of requests in flight */
    atomic_uint_least64_t mem_used, mem_peak;
    atomic_uint mem_waiters;
    pthread_mutex_t mlock;        /* only to sleep on mcond */
    pthread_cond_t mcond;         /* mem_used fell (or a conn went idle) */
    atomic_uint_least64_t mem_cached; /* buffer bytes kept in free lists */

    pthread_mutex_t qlock;        /* worker queue */
    pthread_cond_t qcond;
    struct nbd_req *qhead, **qtail;
    unsigned idle;
    bool qstop;
    pthread_t *workers;
    unsigned nworkers;
};

/* Replies sent together, at most: a worker's run of quick requests
 * (server.c), the reader's run of writes it executed itself (conn.c). */
#define NBD_RUN_MAX 8u

/* conn.c */
int nbd_conn_start(struct nbd_server *srv, int fd);
/* Send the replies of r and of the requests chained from it by r->next (all
 * of connection c, in order; the chain ends with NULL), then give them back
 * to c's pool; what the socket cannot take now goes to c's flusher. */
void nbd_conn_send(struct nbd_conn *c, struct nbd_req *r);
void nbd_conn_reap(struct nbd_server *srv); /* join zombies; srv->lock NOT held */
/* server.c */
void nbd_server_submit(struct nbd_server *srv, struct nbd_req *head, struct nbd_req **tail,
                       unsigned n);
/* The server-wide memory budget (opts.mem_budget).  take: add `charge` to
 * mem_used if it fits, or anyway if `idle` (the caller's connection has
 * nothing in flight); release: give it back and wake waiters; wait: sleep
 * until take succeeds, `idle` being *inflight == 0; keep: may a free list
 * keep a buffer of `cap` bytes (mem_cached, capped at mem_budget / 4)?  The
 * caller subtracts kept bytes from mem_cached when it reuses or frees them. */
bool nbd_mem_take(struct nbd_server *srv, size_t charge, bool idle);
void nbd_mem_release(struct nbd_server *srv, size_t charge);
void nbd_mem_wait(struct nbd_server *srv, size_t charge, atomic_uint *inflight);
bool nbd_mem_keep(struct nbd_server *srv, size_t cap);
/* Is `name` being kicked?  srv->lock held. */
bool nbd_server_closing(const struct nbd_server *srv, const char *name);
int64_t nbd_now_ms(void); /* CLOCK_MONOTONIC */

#endif
