/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Clients for QEMU's two JSON protocols, over unix sockets:
 *
 * QMP (the monitor): connect, read the greeting, negotiate capabilities,
 * execute commands and wait for their answer (matched by "id"; events that
 * arrive meanwhile are queued, stale answers dropped), and read events.
 * Usable from a thread per VM (blocking calls with timeouts) or from an
 * event loop (poll qmp_fd(), then qmp_pump() and qmp_next_event() with a
 * zero timeout).  One struct qmp must not be used by two threads at once.
 *
 * The guest agent (qemu-ga on the virtio-serial channel
 * org.qemu.guest_agent.0): no greeting; every session starts with
 * guest-sync-delimited so stale bytes of an earlier session (or a guest
 * that rebooted) cannot be mistaken for an answer.
 *
 * Errors: -ETIMEDOUT (no answer in time), -EPIPE (QEMU/agent went away, also
 * in the middle of a message), -EBADMSG (malformed message), -EREMOTEIO (the
 * command failed; the message is QEMU's own "desc"), -ENOENT/-ECONNREFUSED
 * (socket not there).  Nothing here aborts on what the peer sends.
 */
#ifndef BERTH_VM_QMP_H
#define BERTH_VM_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct qmp;

struct qmp_event {
    char name[64];      /* "SHUTDOWN", "STOP", "RESUME", "RESET", "GUEST_PANICKED", ... */
    json_t *data;       /* owned, may be NULL */
    int64_t seconds, microseconds;
};
void qmp_event_clear(struct qmp_event *ev);

/* Connect and negotiate; *out owned, free with qmp_close(). */
int qmp_open(const char *path, int timeout_ms, struct qmp **out, struct berr *err);
/* Same over an already connected fd (taken over, closed by qmp_close). */
int qmp_open_fd(int fd, int timeout_ms, struct qmp **out, struct berr *err);
void qmp_close(struct qmp *q);

/* The greeting's "QMP" object (borrowed; valid until qmp_close). */
json_t *qmp_greeting(struct qmp *q);
/* The fd to poll for input (event-loop use). */
int qmp_fd(const struct qmp *q);
/* True once the connection is known to be gone. */
bool qmp_dead(const struct qmp *q);

/* Execute `cmd` with `args` (borrowed, may be NULL); on success *ret (may
 * be NULL if not wanted) is the "return" value, owned. */
int qmp_execute(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, json_t **ret,
                struct berr *err);
/* Read whatever input is available without waiting and queue the events. */
int qmp_pump(struct qmp *q, struct berr *err);
/* Next event: 1 and *ev filled, 0 on timeout (timeout 0: just check). */
int qmp_next_event(struct qmp *q, int timeout_ms, struct qmp_event *ev, struct berr *err);

/* Classify one received QMP message (exported for the fuzzer and tests). */
enum qmp_msg_kind { QMP_MSG_INVALID, QMP_MSG_GREETING, QMP_MSG_RETURN, QMP_MSG_ERROR,
                    QMP_MSG_EVENT };
enum qmp_msg_kind qmp_classify(json_t *msg);

/* ---- guest agent ---- */
struct qga;
int qga_open(const char *path, int timeout_ms, struct qga **out, struct berr *err);
int qga_open_fd(int fd, int timeout_ms, struct qga **out, struct berr *err);
void qga_close(struct qga *g);
int qga_execute(struct qga *g, const char *cmd, json_t *args, int timeout_ms, json_t **ret,
                struct berr *err);
int qga_ping(struct qga *g, int timeout_ms, struct berr *err);
/* guest-info: the agent version (owned string) */
int qga_info(struct qga *g, int timeout_ms, char **version, struct berr *err);
/* guest-fsfreeze-freeze / -thaw: number of filesystems affected */
int qga_fsfreeze(struct qga *g, int timeout_ms, int *count, struct berr *err);
int qga_fsthaw(struct qga *g, int timeout_ms, int *count, struct berr *err);

struct qga_exec_result {
    bool exited;
    int exitcode;       /* valid when exited and !signal */
    int signal;         /* 0 or the signal that killed it */
    char *out, *err;    /* owned, NUL-terminated (decoded base64) */
    size_t out_len, err_len;
};
void qga_exec_result_clear(struct qga_exec_result *r);
/* guest-exec argv[0] with argv[1..] (NULL-terminated), optional stdin, then
 * poll guest-exec-status until it exits or the timeout passes (-ETIMEDOUT,
 * with whatever is known so far in *res). */
int qga_exec(struct qga *g, const char *const *argv, const char *input, int timeout_ms,
             struct qga_exec_result *res, struct berr *err);

/* base64 (RFC 4648) helpers shared with the agent client. */
char *qga_b64_encode(const void *data, size_t len);
int qga_b64_decode(const char *s, char **out, size_t *len);

#endif
