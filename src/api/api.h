/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The REST API of berthd: an HTTP/1.1 server on a unix socket (http.c) that
 * routes /api/v1 requests (schema.c, router.c), validates them (validate.c)
 * and runs handlers (h_*.c) over the pool table, the engine and the NBD
 * server.  The daemon owns the context and everything it points to; the API
 * never exits or aborts on client input.
 *
 * Handlers run on MHD's connection threads, concurrently.  They take the pool
 * table lock as pooltab.h says and never touch the NBD data path. */
#ifndef BERTH_API_H
#define BERTH_API_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>

#include "api/pooltab.h"
#include "common/err.h"

struct nbd_server;
struct vmm;
struct vm_nettab;

/* Replication jobs live in the daemon (src/daemon/repl*.c); the API reaches
 * them through these callbacks so that this library does not link the
 * daemon.  `body` is the validated body of POST /replications; *out
 * receives a new reference (a Replication object of docs/API.md). */
struct api_repl_ops {
    int (*create)(void *opaque, json_t *body, json_t **out, struct berr *err);
    int (*list)(void *opaque, json_t **out, struct berr *err);
    int (*get)(void *opaque, const char *name, json_t **out, struct berr *err);
    int (*destroy)(void *opaque, const char *name, struct berr *err);
    /* Run a cycle now; with `wait`, return when it is over (its error, if
     * it failed), else as soon as it is queued. */
    int (*run)(void *opaque, const char *name, bool wait, json_t **out, struct berr *err);
    void *opaque;
};

struct api_ctx {
    struct pooltab *pools;
    struct nbd_server *nbd;     /* NULL in unit tests: no clients, nothing to kick */
    char nbd_socket[PATH_MAX];  /* for volume URIs */
    char nbd_tcp[128];          /* "host:port" or "" */
    bool test_mode;             /* allow /debug */
    struct vmm *vms;            /* VM supervisor; NULL: the VM routes answer 503 */
    struct vm_nettab *nets;     /* bridges; NULL likewise */
    const struct api_repl_ops *repl; /* replication jobs; NULL likewise */
    const char *ovmf_dir;       /* NULL: /usr/share/OVMF (efidisk templates) */
    const char *version;
    /* Called with the table write-locked after every change of the set of
     * pools (create, import, export, destroy); the daemon rewrites
     * pools.json.  Errors are the callee's to log. */
    void (*persist)(void *opaque);
    void *persist_opaque;
};

/* Serve one request without HTTP: route, validate, run.  `query` is an object
 * of strings (may be NULL).  Returns the HTTP status; *resp (new reference) is
 * the response body, an {"error":...} object on failure.  `allow` receives the
 * allowed methods for a 405. */
int api_dispatch(struct api_ctx *ctx, const char *method, const char *path, json_t *query,
                 const char *body, size_t body_len, json_t **resp, char *allow,
                 size_t allow_len);

/* Volume I/O for the VM supervisor (swtpm state) over the pool table:
 * fills a struct vm_store_ops whose opaque is ctx (api/vmstore.c). */
struct vm_store_ops;
void api_vm_store_ops(struct api_ctx *ctx, struct vm_store_ops *ops);

/* HTTP status for a negative errno. */
int api_http_status(int code);

/* Build {"error": {"code": ..., "message": ...}}. */
json_t *api_error_json(int code, const char *message);

struct api_server;

/* Listen on a unix socket path (removed and re-created, mode 0600) and serve. */
int api_server_start(struct api_ctx *ctx, const char *sock_path, struct api_server **out,
                     struct berr *err);
/* Stop accepting new connections (requests in flight finish). */
void api_server_quiesce(struct api_server *s);
/* Stop, wait for in-flight requests, remove the socket; NULL accepted. */
void api_server_stop(struct api_server *s);

#endif
