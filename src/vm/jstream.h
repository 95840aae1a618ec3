/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A JSON message stream over a socket, as QMP and the guest agent speak it:
 * top-level objects one after another, optionally separated by whitespace,
 * newlines or the agent's 0xFF sync byte.
 *
 * The splitter never trusts the peer: it tracks strings/escapes/nesting
 * itself, bounds a message at JSTREAM_MAX bytes, parses each complete object
 * with jansson, and reports a malformed message as -EBADMSG after dropping
 * it, so the next message can still be read.  A peer that closes mid-message
 * gives -EPIPE ("connection closed"), never a crash. */
#ifndef BERTH_VM_JSTREAM_H
#define BERTH_VM_JSTREAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define JSTREAM_MAX (8u << 20)

struct jstream {
    char *buf;
    size_t len, cap;
    size_t scan;        /* bytes of buf[0..scan) already scanned */
    int depth;
    bool in_str, esc, started;
    bool want_ff;       /* drop bytes up to and including the next 0xFF */
};

void jstream_init(struct jstream *js);
void jstream_free(struct jstream *js);
/* Append received bytes; -EMSGSIZE if a message grows past JSTREAM_MAX. */
int jstream_feed(struct jstream *js, const void *data, size_t len);
/* Next complete object: 1 and *out (owned), 0 if more bytes are needed,
 * -EBADMSG (message dropped, err says why).  Non-object JSON is malformed. */
int jstream_next(struct jstream *js, json_t **out, struct berr *err);
/* Forget buffered bytes and skip input up to the next 0xFF (agent sync). */
void jstream_resync(struct jstream *js);

/* A connection: fd + stream, with deadline-bounded I/O. */
struct jconn {
    int fd;
    struct jstream js;
    bool dead;          /* EOF or fatal error seen: every later call fails */
    const char *peer;   /* "QMP" / "guest agent", for messages */
};
/* Connect to a unix socket (SOCK_CLOEXEC, non-blocking afterwards). */
int jconn_connect(struct jconn *c, const char *path, const char *peer, struct berr *err);
/* Adopt a connected fd (made non-blocking; set O_CLOEXEC yourself). */
void jconn_adopt(struct jconn *c, int fd, const char *peer);
void jconn_close(struct jconn *c);
/* Send a JSON value followed by "\n" (MSG_NOSIGNAL, bounded by deadline). */
int jconn_send(struct jconn *c, json_t *msg, uint64_t deadline_ns, struct berr *err);
int jconn_send_raw(struct jconn *c, const void *buf, size_t len, uint64_t deadline_ns,
                   struct berr *err);
/* Receive the next object, waiting until deadline_ns (0: do not wait).
 * 1: *out set; 0: timed out; <0: -EPIPE (closed), -EBADMSG, -EMSGSIZE, ... */
int jconn_recv(struct jconn *c, json_t **out, uint64_t deadline_ns, struct berr *err);

/* now + ms as an absolute deadline; ms < 0 means "forever" (UINT64_MAX). */
uint64_t jdeadline(int timeout_ms);

#endif
