/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest agent client (see qmp.h).
 *
 * The agent channel is a byte pipe into the guest that survives guest
 * reboots and agent restarts, so stale input is normal.  Each session starts
 * with a raw 0xFF (resets the agent's JSON parser) and guest-sync-delimited
 * with a random id; the agent answers with 0xFF followed by {"return": id},
 * and everything before that 0xFF is discarded. */
#include "vm/jstream.h"
#include "vm/qmp.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct qga {
    struct jconn conn;
};

void qga_close(struct qga *g)
{
    if (!g)
        return;
    jconn_close(&g->conn);
    free(g);
}

static int qga_sync(struct qga *g, int timeout_ms, struct berr *err)
{
    uint64_t dl = jdeadline(timeout_ms);
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
        rnd = (uint32_t)now_ns();
    json_int_t id = (json_int_t)(rnd & 0x7fffffff);
    static const unsigned char ff = 0xFF;
    int r = jconn_send_raw(&g->conn, &ff, 1, dl, err);
    json_t *msg = json_pack("{s:s, s:{s:I}}", "execute", "guest-sync-delimited", "arguments", "id", id);
    if (!msg)
        return berr_set(err, ENOMEM, "out of memory");
    if (r >= 0)
        r = jconn_send(&g->conn, msg, dl, err);
    json_decref(msg);
    if (r < 0)
        return r;
    jstream_resync(&g->conn.js);
    for (;;) {
        json_t *m = NULL;
        r = jconn_recv(&g->conn, &m, dl, err);
        if (r == 0)
            return berr_set(err, ETIMEDOUT, "guest agent not responding within %d ms (is qemu-ga running in the guest?)", timeout_ms);
        if (r == -EBADMSG)
            continue;
        if (r < 0)
            return r;
        json_t *ret = json_object_get(m, "return");
        bool match = json_is_integer(ret) && json_integer_value(ret) == id;
        json_decref(m);
        if (match)
            return 0;
    }
}

int qga_open_fd(int fd, int timeout_ms, struct qga **out, struct berr *err)
{
    *out = NULL;
    struct qga *g = calloc(1, sizeof(*g));
    if (!g) {
        close(fd);
        return berr_set(err, ENOMEM, "out of memory");
    }
    jconn_adopt(&g->conn, fd, "guest agent");
    int r = qga_sync(g, timeout_ms, err);
    if (r < 0) {
        qga_close(g);
        return r;
    }
    *out = g;
    return 0;
}

int qga_open(const char *path, int timeout_ms, struct qga **out, struct berr *err)
{
    *out = NULL;
    struct jconn c;
    int r = jconn_connect(&c, path, "guest agent", err);
    if (r < 0)
        return r;
    int fd = c.fd;
    c.fd = -1;
    jconn_close(&c);
    return qga_open_fd(fd, timeout_ms, out, err);
}

int qga_execute(struct qga *g, const char *cmd, json_t *args, int timeout_ms, json_t **ret,
                struct berr *err)
{
    if (ret)
        *ret = NULL;
    uint64_t dl = jdeadline(timeout_ms);
    json_t *msg = json_pack("{s:s}", "execute", cmd);
    if (!msg || (args && json_object_set(msg, "arguments", args) < 0)) {
        json_decref(msg);
        return berr_set(err, ENOMEM, "out of memory");
    }
    int r = jconn_send(&g->conn, msg, dl, err);
    json_decref(msg);
    if (r < 0)
        return berr_wrap(err, "%s", cmd);
    json_t *m = NULL;
    r = jconn_recv(&g->conn, &m, dl, err);
    if (r == 0)
        return berr_set(err, ETIMEDOUT, "%s: no answer from the guest agent within %d ms", cmd, timeout_ms);
    if (r < 0)
        return berr_wrap(err, "%s", cmd);
    r = 0;
    json_t *e = json_object_get(m, "error");
    if (e) {
        const char *desc = json_string_value(json_object_get(e, "desc"));
        r = berr_set(err, EREMOTEIO, "%s: %s", cmd, desc ? desc : "failed");
    } else if (!json_object_get(m, "return")) {
        r = berr_set(err, EBADMSG, "%s: unexpected answer from the guest agent", cmd);
    } else if (ret) {
        *ret = json_incref(json_object_get(m, "return"));
    }
    json_decref(m);
    return r;
}

int qga_ping(struct qga *g, int timeout_ms, struct berr *err)
{
    return qga_execute(g, "guest-ping", NULL, timeout_ms, NULL, err);
}

int qga_info(struct qga *g, int timeout_ms, char **version, struct berr *err)
{
    json_t *ret = NULL;
    *version = NULL;
    int r = qga_execute(g, "guest-info", NULL, timeout_ms, &ret, err);
    if (r < 0)
        return r;
    const char *v = json_string_value(json_object_get(ret, "version"));
    *version = strdup(v ? v : "");
    json_decref(ret);
    return *version ? 0 : berr_set(err, ENOMEM, "out of memory");
}

static int count_call(struct qga *g, const char *cmd, int timeout_ms, int *count, struct berr *err)
{
    json_t *ret = NULL;
    int r = qga_execute(g, cmd, NULL, timeout_ms, &ret, err);
    if (r < 0)
        return r;
    if (count)
        *count = json_is_integer(ret) ? (int)json_integer_value(ret) : 0;
    json_decref(ret);
    return 0;
}

int qga_fsfreeze(struct qga *g, int timeout_ms, int *count, struct berr *err)
{
    return count_call(g, "guest-fsfreeze-freeze", timeout_ms, count, err);
}

int qga_fsthaw(struct qga *g, int timeout_ms, int *count, struct berr *err)
{
    return count_call(g, "guest-fsfreeze-thaw", timeout_ms, count, err);
}

void qga_exec_result_clear(struct qga_exec_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *qga_b64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *o = malloc(4 * ((len + 2) / 3) + 1), *q = o;
    if (!o)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < len ? p[i + 2] : 0);
        *q++ = b64[v >> 18 & 63];
        *q++ = b64[v >> 12 & 63];
        *q++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
        *q++ = i + 2 < len ? b64[v & 63] : '=';
    }
    *q = '\0';
    return o;
}

int qga_b64_decode(const char *s, char **out, size_t *len)
{
    size_t n = strlen(s);
    char *o = malloc(n / 4 * 3 + 4);
    if (!o)
        return -ENOMEM;
    size_t ol = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=')
            break;
        if (s[i] == '\n' || s[i] == '\r')
            continue;
        const char *c = strchr(b64, s[i]);
        if (!c || !s[i]) {
            free(o);
            return -EBADMSG;
        }
        acc = acc << 6 | (unsigned)(c - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[ol++] = (char)(acc >> bits & 0xFF);
        }
    }
    o[ol] = '\0';
    *out = o;
    *len = ol;
    return 0;
}

static int get_data(json_t *ret, const char *key, char **out, size_t *len)
{
    const char *s = json_string_value(json_object_get(ret, key));
    if (!s)
        return 0;
    free(*out);
    *out = NULL;
    return qga_b64_decode(s, out, len);
}

int qga_exec(struct qga *g, const char *const *argv, const char *input, int timeout_ms,
             struct qga_exec_result *res, struct berr *err)
{
    memset(res, 0, sizeof(*res));
    if (!argv || !argv[0])
        return berr_set(err, EINVAL, "guest-exec: empty command");
    uint64_t dl = jdeadline(timeout_ms);
    json_t *args = json_pack("{s:s, s:b}", "path", argv[0], "capture-output", 1);
    json_t *arr = json_array();
    if (!args || !arr) {
        json_decref(args);
        json_decref(arr);
        return berr_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 1; argv[i]; i++)
        json_array_append_new(arr, json_string(argv[i]));
    json_object_set_new(args, "arg", arr);
    if (input) {
        char *b = qga_b64_encode(input, strlen(input));
        if (b)
            json_object_set_new(args, "input-data", json_string(b));
        free(b);
    }
    json_t *ret = NULL;
    int r = qga_execute(g, "guest-exec", args, timeout_ms, &ret, err);
    json_decref(args);
    if (r < 0)
        return r;
    json_t *pidv = json_object_get(ret, "pid");
    if (!json_is_integer(pidv)) {
        json_decref(ret);
        return berr_set(err, EBADMSG, "guest-exec: no pid in the answer");
    }
    json_int_t pid = json_integer_value(pidv);
    json_decref(ret);
    for (unsigned delay_ms = 10;; delay_ms = delay_ms < 200 ? delay_ms * 2 : 200) {
        json_t *a = json_pack("{s:I}", "pid", pid);
        uint64_t now = now_ns();
        int left = dl == UINT64_MAX ? -1 : dl > now ? (int)((dl - now) / 1000000) : 0;
        r = qga_execute(g, "guest-exec-status", a, left < 0 ? 10000 : left, &ret, err);
        json_decref(a);
        if (r < 0)
            return r;
        res->exited = json_is_true(json_object_get(ret, "exited"));
        if (get_data(ret, "out-data", &res->out, &res->out_len) < 0 ||
            get_data(ret, "err-data", &res->err, &res->err_len) < 0) {
            json_decref(ret);
            return berr_set(err, EBADMSG, "guest-exec-status: bad base64 output");
        }
        res->exitcode = (int)json_integer_value(json_object_get(ret, "exitcode"));
        res->signal = (int)json_integer_value(json_object_get(ret, "signal"));
        json_decref(ret);
        if (res->exited)
            return 0;
        if (now_ns() + delay_ms * 1000000ull >= dl)
            return berr_set(err, ETIMEDOUT, "guest-exec: '%s' still running after %d ms", argv[0], timeout_ms);
        struct timespec ts = {0, (long)delay_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
}
