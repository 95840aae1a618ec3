/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QMP client (see qmp.h).
 *
 * Protocol: QEMU sends {"QMP": {...}} first; we answer qmp_capabilities.
 * Each command carries an "id" ("berth-N"); QEMU echoes it in the
 * {"return"} or {"error"} answer.  Events {"event", "data", "timestamp"}
 * can arrive at any time and are queued in arrival order.  An answer whose
 * id is not the one awaited (a command that timed out earlier) is dropped. */
#include "vm/qmp.h"
#include "vm/jstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QMP_MAX_QUEUED_EVENTS 1024

struct qmp {
    struct jconn conn;
    json_t *greeting;
    uint64_t next_id;
    json_t **events;    /* FIFO of raw event messages */
    size_t n_events, cap_events, head;
    size_t dropped_events;
};

void qmp_event_clear(struct qmp_event *ev)
{
    json_decref(ev->data);
    memset(ev, 0, sizeof(*ev));
}

enum qmp_msg_kind qmp_classify(json_t *m)
{
    if (!json_is_object(m))
        return QMP_MSG_INVALID;
    if (json_is_object(json_object_get(m, "QMP")))
        return QMP_MSG_GREETING;
    if (json_object_get(m, "return"))
        return QMP_MSG_RETURN;
    json_t *e = json_object_get(m, "error");
    if (json_is_object(e))
        return QMP_MSG_ERROR;
    if (json_is_string(json_object_get(m, "event")))
        return QMP_MSG_EVENT;
    return QMP_MSG_INVALID;
}

static int queue_event(struct qmp *q, json_t *m)
{
    if (q->n_events >= QMP_MAX_QUEUED_EVENTS) {
        /* nobody reads them: keep the newest, count the loss */
        json_decref(q->events[q->head]);
        q->head = (q->head + 1) % q->cap_events;
        q->n_events--;
        q->dropped_events++;
    }
    if (q->n_events == q->cap_events) {
        size_t cap = q->cap_events ? q->cap_events * 2 : 16;
        json_t **n = malloc(cap * sizeof(*n));
        if (!n) {
            json_decref(m);
            return -ENOMEM;
        }
        for (size_t i = 0; i < q->n_events; i++)
            n[i] = q->events[(q->head + i) % q->cap_events];
        free(q->events);
        q->events = n;
        q->cap_events = cap;
        q->head = 0;
    }
    q->events[(q->head + q->n_events) % q->cap_events] = m;
    q->n_events++;
    return 0;
}

static void qmp_free(struct qmp *q)
{
    if (!q)
        return;
    jconn_close(&q->conn);
    json_decref(q->greeting);
    for (size_t i = 0; i < q->n_events; i++)
        json_decref(q->events[(q->head + i) % q->cap_events]);
    free(q->events);
    free(q);
}

void qmp_close(struct qmp *q)
{
    qmp_free(q);
}

json_t *qmp_greeting(struct qmp *q)
{
    return json_object_get(q->greeting, "QMP");
}

int qmp_fd(const struct qmp *q)
{
    return q->conn.fd;
}

bool qmp_dead(const struct qmp *q)
{
    return q->conn.dead;
}

static int handshake(struct qmp *q, int timeout_ms, struct berr *err)
{
    uint64_t dl = jdeadline(timeout_ms);
    json_t *m = NULL;
    int r = jconn_recv(&q->conn, &m, dl, err);
    if (r == 0)
        return berr_set(err, ETIMEDOUT, "QMP: no greeting from QEMU within %d ms", timeout_ms);
    if (r < 0)
        return r;
    if (qmp_classify(m) != QMP_MSG_GREETING) {
        json_decref(m);
        return berr_set(err, EPROTO, "QMP: the peer did not greet like QEMU (not a QMP socket?)");
    }
    q->greeting = m;
    return qmp_execute(q, "qmp_capabilities", NULL, timeout_ms, NULL, err);
}

int qmp_open_fd(int fd, int timeout_ms, struct qmp **out, struct berr *err)
{
    *out = NULL;
    struct qmp *q = calloc(1, sizeof(*q));
    if (!q) {
        close(fd);
        return berr_set(err, ENOMEM, "out of memory");
    }
    jconn_adopt(&q->conn, fd, "QMP");
    int r = handshake(q, timeout_ms, err);
    if (r < 0) {
        qmp_free(q);
        return r;
    }
    *out = q;
    return 0;
}

int qmp_open(const char *path, int timeout_ms, struct qmp **out, struct berr *err)
{
    *out = NULL;
    struct jconn c;
    int r = jconn_connect(&c, path, "QMP", err);
    if (r < 0)
        return r;
    int fd = c.fd;
    c.fd = -1;
    jconn_close(&c);
    return qmp_open_fd(fd, timeout_ms, out, err);
}

static int error_answer(json_t *m, const char *cmd, struct berr *err)
{
    json_t *e = json_object_get(m, "error");
    const char *cls = json_string_value(json_object_get(e, "class"));
    const char *desc = json_string_value(json_object_get(e, "desc"));
    int code = EREMOTEIO;
    if (cls && strcmp(cls, "CommandNotFound") == 0)
        code = ENOSYS;
    else if (cls && (strcmp(cls, "DeviceNotFound") == 0 || strcmp(cls, "DeviceNotActive") == 0))
        code = ENODEV;
    return berr_set(err, code, "%s: %s", cmd, desc ? desc : (cls ? cls : "failed"));
}

int qmp_execute(struct qmp *q, const char *cmd, json_t *args, int timeout_ms, json_t **ret,
                struct berr *err)
{
    if (ret)
        *ret = NULL;
    uint64_t dl = jdeadline(timeout_ms);
    char id[32];
    snprintf(id, sizeof id, "berth-%llu", (unsigned long long)++q->next_id);
    json_t *msg = json_pack("{s:s, s:s}", "execute", cmd, "id", id);
    if (!msg)
        return berr_set(err, ENOMEM, "out of memory");
    if (args && json_object_set(msg, "arguments", args) < 0) {
        json_decref(msg);
        return berr_set(err, ENOMEM, "out of memory");
    }
    int r = jconn_send(&q->conn, msg, dl, err);
    json_decref(msg);
    if (r < 0)
        return berr_wrap(err, "%s", cmd);
    /* a malformed message is skipped (it may be noise, or our answer): if
     * no good answer follows before the deadline, that is the error */
    struct berr bad = {0};
    for (;;) {
        json_t *m = NULL;
        r = jconn_recv(&q->conn, &m, dl, err);
        if (r == -EBADMSG && err) {
            bad = *err;
            continue;
        }
        if (r == -EBADMSG)
            continue;
        if (r == 0 && bad.code) {
            *err = bad;
            return berr_wrap(err, "%s: no valid answer within %d ms", cmd, timeout_ms);
        }
        if (r == 0)
            return berr_set(err, ETIMEDOUT, "%s: no answer from QEMU within %d ms", cmd, timeout_ms);
        if (r < 0)
            return berr_wrap(err, "%s", cmd);
        enum qmp_msg_kind k = qmp_classify(m);
        if (k == QMP_MSG_EVENT) {
            if ((r = queue_event(q, m)) < 0)
                return berr_set(err, -r, "out of memory");
            continue;
        }
        const char *mid = json_string_value(json_object_get(m, "id"));
        if ((k == QMP_MSG_RETURN || k == QMP_MSG_ERROR) && mid && strcmp(mid, id) == 0) {
            if (k == QMP_MSG_ERROR) {
                r = error_answer(m, cmd, err);
                json_decref(m);
                return r;
            }
            if (ret)
                *ret = json_incref(json_object_get(m, "return"));
            json_decref(m);
            return 0;
        }
        /* a late answer to an earlier command that timed out, or noise */
        json_decref(m);
    }
}

int qmp_pump(struct qmp *q, struct berr *err)
{
    for (;;) {
        json_t *m = NULL;
        int r = jconn_recv(&q->conn, &m, 0, err);
        if (r <= 0)
            return r;
        if (qmp_classify(m) == QMP_MSG_EVENT) {
            if ((r = queue_event(q, m)) < 0)
                return berr_set(err, -r, "out of memory");
        } else {
            json_decref(m);
        }
    }
}

int qmp_next_event(struct qmp *q, int timeout_ms, struct qmp_event *ev, struct berr *err)
{
    memset(ev, 0, sizeof(*ev));
    uint64_t dl = timeout_ms == 0 ? 0 : jdeadline(timeout_ms);
    while (!q->n_events) {
        json_t *m = NULL;
        int r = jconn_recv(&q->conn, &m, dl, err);
        if (r <= 0)
            return r;
        if (qmp_classify(m) == QMP_MSG_EVENT) {
            if ((r = queue_event(q, m)) < 0)
                return berr_set(err, -r, "out of memory");
        } else {
            json_decref(m);
        }
    }
    json_t *m = q->events[q->head];
    q->head = (q->head + 1) % q->cap_events;
    q->n_events--;
    snprintf(ev->name, sizeof ev->name, "%s", json_string_value(json_object_get(m, "event")));
    json_t *d = json_object_get(m, "data");
    ev->data = d ? json_incref(d) : NULL;
    json_t *ts = json_object_get(m, "timestamp");
    ev->seconds = json_integer_value(json_object_get(ts, "seconds"));
    ev->microseconds = json_integer_value(json_object_get(ts, "microseconds"));
    json_decref(m);
    return 1;
}
