/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The NBD server: serves exports from a backend over unix sockets and
 * loopback TCP.  It knows nothing of pools: the daemon gives it a
 * `struct nbd_backend` that opens exports by name (for berthd: "pool/vol",
 * read-write, and later "pool/vol@snap", read-only) and does I/O.
 *
 * Threads: one acceptor thread per listening socket, one reader thread per
 * connection, a shared pool of worker threads executing requests; replies
 * on a connection are serialised by a per-connection write lock.  Backend
 * I/O functions are called concurrently from workers. */
#ifndef BERTH_NBD_SERVER_H
#define BERTH_NBD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define NBD_EXT_HOLE 1u /* as BS_EXTENT_HOLE */
#define NBD_EXT_ZERO 2u /* as BS_EXTENT_ZERO */

#define NBD_IOF_FUA 1u
#define NBD_IOF_NO_HOLE 2u
#define NBD_IOF_FAST_ZERO 4u
/* pwrite: -EAGAIN rather than block (see nbd_backend.pwrite_nowait) */
#define NBD_IOF_NOWAIT 8u

struct nbd_export_info {
    uint64_t size;
    uint32_t min_block, pref_block, max_block; /* block-size constraints */
    bool readonly;
    bool can_trim, can_zero, can_fast_zero, can_flush, can_fua, can_cache, can_multi_conn;
    char description[128];
};

/* All I/O functions return 0 or -errno; they may be called from many threads
 * at once for the same handle. */
struct nbd_backend {
    uint32_t size;  /* sizeof(struct nbd_backend): new members only at the end */
    void *opaque;
    /* open an export by name; -ENOENT if unknown (the message goes to the
     * client in NBD_REP_ERR_UNKNOWN) */
    int (*open)(void *opaque, const char *name, void **handle, struct nbd_export_info *info,
                struct berr *err);
    void (*close)(void *handle);
    /* names for NBD_OPT_LIST; cb returns non-zero to stop */
    int (*list)(void *opaque, int (*cb)(const char *name, const char *desc, void *o), void *o);
    int (*pread)(void *handle, void *buf, uint32_t len, uint64_t off);
    int (*pwrite)(void *handle, const void *buf, uint32_t len, uint64_t off, unsigned flags);
    int (*zero)(void *handle, uint32_t len, uint64_t off, unsigned flags);
    int (*trim)(void *handle, uint32_t len, uint64_t off, unsigned flags);
    int (*flush)(void *handle);
    int (*cache)(void *handle, uint32_t len, uint64_t off);
    /* extents of [off, off+len), consecutive, flags NBD_EXT_*; cb returns
     * non-zero to stop early */
    int (*block_status)(void *handle, uint32_t len, uint64_t off,
                        int (*cb)(uint64_t off, uint64_t len, unsigned flags, void *o), void *o);
    /* current size (a volume may be resized while connected); optional */
    uint64_t (*get_size)(void *handle);
    /* Zero-copy WRITEs (optional: all four or none).  wbuf_size: the block
     * size, a power of two, of the whole buffers the handle takes (0: none).
     * The whole, aligned blocks of a WRITE payload are received straight
     * into buffers from wbuf_new (their bytes at *data) and handed to
     * pwrite_bufs, which writes n of them at off and takes every one over,
     * whatever it returns; wbuf_free drops a buffer not handed over.  The
     * unaligned head and tail of a payload still go through pwrite. */
    uint32_t (*wbuf_size)(void *handle);
    void *(*wbuf_new)(void *handle, void **data);
    void (*wbuf_free)(void *buf);
    int (*pwrite_bufs)(void *handle, void *const *bufs, size_t n, uint64_t off, unsigned flags);
    /* pwrite honours NBD_IOF_NOWAIT (never with FUA): it returns -EAGAIN,
     * and may have written part of the range, where it would block (a
     * device read, a throttle); the server then writes the whole range
     * again without the flag on a worker thread.  With it, the connection's
     * reader executes small writes itself (conn.c). */
    bool pwrite_nowait;
};

struct nbd_server;

/* Zero members take their defaults; new members only at the end. */
struct nbd_server_opts {
    unsigned workers;        /* worker threads (default 2 * ncpu, at least 4) */
    unsigned max_conns;      /* refuse beyond this (default 1024) */
    /* whole-handshake deadline: a client that has not entered transmission
     * by then, or stops reading replies during it, is dropped (60000) */
    unsigned handshake_timeout_ms;
    /* how long nbd_server_kick_export() waits for connections to go (10000) */
    unsigned kick_timeout_ms;
    /* request buffers in flight over all connections (1 GiB).  A connection
     * with nothing in flight is always admitted one request, so the bound is
     * mem_budget + max_conns * (one request of at most 32 MiB). */
    uint64_t mem_budget;
};

/* Create a server (no listeners yet).  The backend struct is copied. */
int nbd_server_new(const struct nbd_backend *be, const struct nbd_server_opts *opts,
                   struct nbd_server **out, struct berr *err);
/* Listen on a unix socket path (removed and re-created, mode 0600) */
int nbd_server_listen_unix(struct nbd_server *s, const char *path, struct berr *err);
/* Listen on TCP host:port ("127.0.0.1", port; 0 picks a port, see bound_port) */
int nbd_server_listen_tcp(struct nbd_server *s, const char *host, uint16_t port,
                          uint16_t *bound_port, struct berr *err);
/* Drop every connection to an export (volume destroyed/exported).  While it
 * runs, new clients asking for `name` are refused ("export is being
 * removed"); the refusal ends when it returns, so a later export of the
 * same name is served again.  Synchronous: waits until every such
 * connection has drained and closed its backend handle, but at most
 * opts.kick_timeout_ms, so never call it from a backend callback.  Returns
 * the number of connections still open (0: the export is free). */
unsigned nbd_server_kick_export(struct nbd_server *s, const char *name);
/* Number of open connections to an export (EBUSY checks): those in
 * transmission on it and those opening it in their handshake. */
unsigned nbd_server_export_conns(struct nbd_server *s, const char *name);
/* Stop listening, close every connection, wait for workers; NULL accepted. */
void nbd_server_free(struct nbd_server *s);

#endif
