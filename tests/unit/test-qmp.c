/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for the QMP and guest-agent clients against fake servers run
 * in a thread on the other end of a socketpair: greeting + capabilities,
 * events interleaved with answers, stale answers, QEMU errors, timeouts,
 * byte-by-byte delivery, malformed JSON, a server that closes mid-message,
 * a non-QMP peer; the agent's 0xFF sync with stale input, ping/info/
 * fsfreeze/exec; and the stream splitter's limits. */
#include "vm/jstream.h"
#include "vm/qmp.h"
#include "common/util.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"capabilities\": [\"oob\"]}}\r\n"

static void srv_send(int fd, const char *s)
{
    (void)!write(fd, s, strlen(s));
}

/* Read one line the client sent and parse it (client sends compact JSON + \n). */
static json_t *srv_recv(int fd)
{
    char line[4096];
    size_t n = 0;
    while (n < sizeof line - 1) {
        char ch;
        if (read(fd, &ch, 1) != 1)
            return NULL;
        if ((unsigned char)ch == 0xFF)
            continue;
        if (ch == '\n')
            break;
        line[n++] = ch;
    }
    line[n] = '\0';
    return json_loads(line, 0, NULL);
}

static void srv_answer(int fd, json_t *req, const char *ret_json)
{
    char buf[4096];
    const char *id = json_string_value(json_object_get(req, "id"));
    snprintf(buf, sizeof buf, "{\"return\": %s, \"id\": \"%s\"}\r\n", ret_json, id ? id : "");
    srv_send(fd, buf);
}

static void srv_caps(int fd)
{
    srv_send(fd, GREETING);
    json_t *r = srv_recv(fd);
    srv_answer(fd, r, "{}");
    json_decref(r);
}

typedef void (*scenario_fn)(int fd);
struct srv {
    int fd;
    scenario_fn fn;
    pthread_t th;
};
static void *srv_main(void *p)
{
    struct srv *s = p;
    s->fn(s->fd);
    close(s->fd);
    return NULL;
}
static int start(struct srv *s, scenario_fn fn)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    s->fd = sv[1];
    s->fn = fn;
    pthread_create(&s->th, NULL, srv_main, s);
    return sv[0];
}
static void finish(struct srv *s)
{
    pthread_join(s->th, NULL);
}

/* ---- scenarios ---- */

static void sc_normal(int fd)
{
    srv_caps(fd);
    json_t *r = srv_recv(fd); /* query-status */
    srv_send(fd, "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 5}}\r\n");
    srv_send(fd, "{\"return\": {}, \"id\": \"berth-0-stale\"}\r\n");
    srv_answer(fd, r, "{\"status\": \"paused\", \"running\": false, \"note\": \"a } and a \\\" inside\"}");
    json_decref(r);
    r = srv_recv(fd); /* cont: an error */
    char buf[512];
    snprintf(buf, sizeof buf, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Resetting the Virtual Machine is required\"}, \"id\": \"%s\"}\n",
             json_string_value(json_object_get(r, "id")));
    srv_send(fd, buf);
    json_decref(r);
    r = srv_recv(fd); /* frobnicate */
    snprintf(buf, sizeof buf, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command frobnicate has not been found\"}, \"id\": \"%s\"}\n",
             json_string_value(json_object_get(r, "id")));
    srv_send(fd, buf);
    json_decref(r);
    r = srv_recv(fd); /* system_reset with arguments echo check */
    srv_answer(fd, r, json_object_get(r, "arguments") ? "{\"had_args\": true}" : "{}");
    json_decref(r);
    srv_send(fd, "{\"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": \"guest-reset\"}, \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\n");
    srv_send(fd, "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}, \"timestamp\": {\"seconds\": 1, \"microseconds\": 3}}\n");
    usleep(100000);
}

static void test_normal(void)
{
    struct srv s;
    struct berr e = {0};
    struct qmp *q = NULL;
    int fd = start(&s, sc_normal);
    ok(qmp_open_fd(fd, 2000, &q, &e) == 0, "handshake: %s", e.msg);
    if (!q) {
        finish(&s);
        return;
    }
    json_t *ver = json_object_get(json_object_get(qmp_greeting(q), "version"), "qemu");
    is_int(json_integer_value(json_object_get(ver, "major")), 7, "greeting version");
    json_t *ret = NULL;
    ok(qmp_execute(q, "query-status", NULL, 2000, &ret, &e) == 0, "query-status: %s", e.msg);
    ok(ret && strcmp(json_string_value(json_object_get(ret, "status")), "paused") == 0,
       "return value (stale answer skipped, braces in strings)");
    json_decref(ret);
    ok(qmp_execute(q, "cont", NULL, 2000, NULL, &e) == -EREMOTEIO &&
           strcmp(e.msg, "cont: Resetting the Virtual Machine is required") == 0, "error: %s", e.msg);
    ok(qmp_execute(q, "frobnicate", NULL, 2000, NULL, &e) == -ENOSYS, "CommandNotFound -> ENOSYS");
    json_t *args = json_pack("{s:b}", "force", 1);
    ok(qmp_execute(q, "system_reset", args, 2000, &ret, &e) == 0 &&
           json_is_true(json_object_get(ret, "had_args")), "arguments sent");
    json_decref(args);
    json_decref(ret);
    struct qmp_event ev;
    ok(qmp_next_event(q, 0, &ev, &e) == 1 && strcmp(ev.name, "STOP") == 0 &&
           ev.seconds == 1700000000 && ev.microseconds == 5, "queued STOP event");
    qmp_event_clear(&ev);
    ok(qmp_next_event(q, 2000, &ev, &e) == 1 && strcmp(ev.name, "RESET") == 0 &&
           strcmp(json_string_value(json_object_get(ev.data, "reason")), "guest-reset") == 0,
       "RESET with data");
    qmp_event_clear(&ev);
    /* the fake server sends SHUTDOWN on its own time: pump (never blocks)
     * until it is there, as an event loop would on each wakeup; a loaded
     * machine may take far longer than one short sleep */
    int got = 0, pumped = 0;
    for (int i = 0; i < 400 && got == 0 && pumped == 0; i++) {
        usleep(5000);
        pumped = qmp_pump(q, &e);
        got = pumped == 0 ? qmp_next_event(q, 0, &ev, &e) : -1;
    }
    ok(pumped == 0 && got == 1 && strcmp(ev.name, "SHUTDOWN") == 0, "pump + SHUTDOWN (event loop use)");
    qmp_event_clear(&ev);
    ok(qmp_next_event(q, 0, &ev, &e) == 0, "no more events");
    ok(qmp_next_event(q, 2000, &ev, &e) == -EPIPE && qmp_dead(q), "server gone: %s", e.msg);
    ok(qmp_execute(q, "query-status", NULL, 100, NULL, &e) == -EPIPE, "dead stays dead: %s", e.msg);
    qmp_close(q);
    finish(&s);
}

static void sc_slow(int fd)
{
    srv_caps(fd);
    json_t *r = srv_recv(fd);
    usleep(400000); /* answer after the client gave up */
    srv_answer(fd, r, "{\"late\": true}");
    json_decref(r);
    r = srv_recv(fd);
    srv_answer(fd, r, "{\"fresh\": true}");
    json_decref(r);
}

static void test_timeout(void)
{
    struct srv s;
    struct berr e = {0};
    struct qmp *q = NULL;
    ok(qmp_open_fd(start(&s, sc_slow), 2000, &q, &e) == 0, "slow server handshake");
    uint64_t t0 = now_ns();
    ok(qmp_execute(q, "query-status", NULL, 150, NULL, &e) == -ETIMEDOUT &&
           strstr(e.msg, "query-status") && strstr(e.msg, "150 ms"), "timeout: %s", e.msg);
    ok(now_ns() - t0 < 1000000000ull, "timeout honoured");
    json_t *ret = NULL;
    ok(qmp_execute(q, "query-name", NULL, 2000, &ret, &e) == 0 &&
           json_is_true(json_object_get(ret, "fresh")), "late answer to the timed-out command dropped");
    json_decref(ret);
    qmp_close(q);
    finish(&s);
}

static void sc_bytewise(int fd)
{
    const char *g = GREETING;
    for (const char *p = g; *p; p++)
        (void)!write(fd, p, 1);
    json_t *r = srv_recv(fd);
    char buf[256];
    snprintf(buf, sizeof buf, "{\"return\":{},\"id\":\"%s\"}", json_string_value(json_object_get(r, "id")));
    for (const char *p = buf; *p; p++) {
        (void)!write(fd, p, 1);
        usleep(1000);
    }
    json_decref(r);
}

static void sc_malformed(int fd)
{
    srv_caps(fd);
    json_t *r = srv_recv(fd);
    srv_send(fd, "{\"return\": {\"status\": tru}}\n");  /* bad literal */
    json_decref(r);
    r = srv_recv(fd);
    srv_send(fd, "garbage line\n[1,2]\n");
    srv_answer(fd, r, "{\"ok\": 1}");
    json_decref(r);
    r = srv_recv(fd);
    srv_answer(fd, r, "{\"ok\": 2}");
    json_decref(r);
}

static void sc_close_mid(int fd)
{
    srv_caps(fd);
    json_t *r = srv_recv(fd);
    srv_send(fd, "{\"return\": {\"status\": \"runn");
    json_decref(r);
}

static void sc_not_qmp(int fd)
{
    srv_send(fd, "{\"hello\": \"I am not QEMU\"}\n");
    usleep(100000);
}

static void sc_silent(int fd)
{
    usleep(300000);
}

static void test_robustness(void)
{
    struct srv s;
    struct berr e = {0};
    struct qmp *q = NULL;
    ok(qmp_open_fd(start(&s, sc_bytewise), 2000, &q, &e) == 0, "byte-by-byte delivery: %s", e.msg);
    qmp_close(q);
    finish(&s);

    q = NULL;
    ok(qmp_open_fd(start(&s, sc_malformed), 2000, &q, &e) == 0, "malformed: handshake");
    json_t *ret = NULL;
    ok(qmp_execute(q, "query-status", NULL, 300, &ret, &e) == -EBADMSG && strstr(e.msg, "malformed"),
       "malformed JSON reported: %s", e.msg);
    ok(qmp_execute(q, "query-name", NULL, 2000, &ret, &e) == 0 &&
           json_integer_value(json_object_get(ret, "ok")) == 1,
       "garbage line and non-object skipped, stream recovers: %s", e.msg);
    json_decref(ret);
    ok(qmp_execute(q, "query-name", NULL, 2000, &ret, &e) == 0 &&
           json_integer_value(json_object_get(ret, "ok")) == 2, "next command fine");
    json_decref(ret);
    qmp_close(q);
    finish(&s);

    q = NULL;
    ok(qmp_open_fd(start(&s, sc_close_mid), 2000, &q, &e) == 0, "close-mid: handshake");
    ok(qmp_execute(q, "query-status", NULL, 2000, NULL, &e) == -EPIPE &&
           strstr(e.msg, "in the middle of a message"), "QEMU died mid-message: %s", e.msg);
    qmp_close(q);
    finish(&s);

    q = NULL;
    ok(qmp_open_fd(start(&s, sc_not_qmp), 2000, &q, &e) == -EPROTO && !q, "not QMP: %s", e.msg);
    finish(&s);
    ok(qmp_open_fd(start(&s, sc_silent), 100, &q, &e) == -ETIMEDOUT && !q, "no greeting: %s", e.msg);
    finish(&s);
    ok(qmp_open("/nonexistent/qmp.sock", 100, &q, &e) == -ENOENT && strstr(e.msg, "/nonexistent/qmp.sock"),
       "missing socket: %s", e.msg);
}

static void test_jstream(void)
{
    struct jstream js;
    struct berr e = {0};
    json_t *m;
    jstream_init(&js);
    const char *t = "  {\"a\": \"x{[\\\"\"}\r\n\xff{\"b\": [1, {\"c\": 2}]}{\"d\":1}";
    jstream_feed(&js, t, strlen(t));
    ok(jstream_next(&js, &m, &e) == 1 && json_is_string(json_object_get(m, "a")), "string with brackets");
    json_decref(m);
    ok(jstream_next(&js, &m, &e) == 1 && json_is_array(json_object_get(m, "b")), "after 0xFF");
    json_decref(m);
    ok(jstream_next(&js, &m, &e) == 1 && json_object_get(m, "d"), "back to back");
    json_decref(m);
    ok(jstream_next(&js, &m, &e) == 0, "empty");
    jstream_feed(&js, "{\"a\":1,\"a\":2}", 13);
    ok(jstream_next(&js, &m, &e) == -EBADMSG, "duplicate keys rejected: %s", e.msg);
    jstream_feed(&js, "}}}\n{\"ok\":1}", 12);
    ok(jstream_next(&js, &m, &e) == -EBADMSG, "stray closers");
    ok(jstream_next(&js, &m, &e) == 1, "then recovers");
    json_decref(m);
    jstream_resync(&js);
    jstream_feed(&js, "{\"stale\":1}\xff{\"fresh\":1}", 23);
    ok(jstream_next(&js, &m, &e) == 1 && json_object_get(m, "fresh"), "resync skips to 0xFF");
    json_decref(m);
    size_t big = JSTREAM_MAX + 10;
    char *b = malloc(big);
    if (b) {
        memset(b, ' ', big);
        b[0] = '{';
        ok(jstream_feed(&js, b, big) == -EMSGSIZE, "oversized message refused");
        free(b);
    }
    jstream_free(&js);
    char *enc = qga_b64_encode("hello, world\n", 13), *dec = NULL;
    size_t dl;
    ok(enc && strcmp(enc, "aGVsbG8sIHdvcmxkCg==") == 0, "base64 encode");
    ok(qga_b64_decode(enc, &dec, &dl) == 0 && dl == 13 && memcmp(dec, "hello, world\n", 13) == 0,
       "base64 decode");
    free(enc);
    free(dec);
    ok(qga_b64_decode("a$b=", &dec, &dl) == -EBADMSG, "bad base64");
}

/* ---- guest agent ---- */

static void sc_agent(int fd)
{
    srv_send(fd, "{\"return\": 12345}\n{\"retu"); /* stale bytes from a previous session */
    json_t *r = srv_recv(fd);                    /* guest-sync-delimited */
    char buf[512];
    snprintf(buf, sizeof buf, "\xff{\"return\": %lld}\n",
             (long long)json_integer_value(json_object_get(json_object_get(r, "arguments"), "id")));
    srv_send(fd, buf);
    json_decref(r);
    r = srv_recv(fd);
    srv_send(fd, strcmp(json_string_value(json_object_get(r, "execute")), "guest-ping") == 0
                     ? "{\"return\": {}}\n" : "{\"error\": {\"desc\": \"wrong\"}}\n");
    json_decref(r);
    json_decref(srv_recv(fd));
    srv_send(fd, "{\"return\": {\"version\": \"7.2.0\", \"supported_commands\": []}}\n");
    json_decref(srv_recv(fd));
    srv_send(fd, "{\"return\": 2}\n");
    json_decref(srv_recv(fd));
    srv_send(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"fsfreeze is disabled\"}}\n");
    r = srv_recv(fd); /* guest-exec */
    json_t *a = json_object_get(r, "arguments");
    bool good = strcmp(json_string_value(json_object_get(a, "path")), "/bin/sh") == 0 &&
                json_array_size(json_object_get(a, "arg")) == 2;
    srv_send(fd, good ? "{\"return\": {\"pid\": 77}}\n" : "{\"error\": {\"desc\": \"bad args\"}}\n");
    json_decref(r);
    json_decref(srv_recv(fd));
    srv_send(fd, "{\"return\": {\"exited\": false}}\n");
    json_decref(srv_recv(fd));
    srv_send(fd, "{\"return\": {\"exited\": true, \"exitcode\": 3, \"out-data\": \"aGVsbG8K\", \"err-data\": \"b29wcwo=\"}}\n");
    usleep(50000);
}

static void test_agent(void)
{
    struct srv s;
    struct berr e = {0};
    struct qga *g = NULL;
    ok(qga_open_fd(start(&s, sc_agent), 2000, &g, &e) == 0, "agent sync past stale bytes: %s", e.msg);
    if (!g) {
        finish(&s);
        return;
    }
    ok(qga_ping(g, 2000, &e) == 0, "ping: %s", e.msg);
    char *ver = NULL;
    ok(qga_info(g, 2000, &ver, &e) == 0 && ver && strcmp(ver, "7.2.0") == 0, "info version");
    free(ver);
    int n = -1;
    ok(qga_fsfreeze(g, 2000, &n, &e) == 0 && n == 2, "fsfreeze count");
    ok(qga_fsthaw(g, 2000, &n, &e) == -EREMOTEIO && strstr(e.msg, "fsfreeze is disabled"),
       "agent error: %s", e.msg);
    struct qga_exec_result res;
    const char *argv[] = {"/bin/sh", "-c", "echo hello; echo oops >&2; exit 3", NULL};
    ok(qga_exec(g, argv, NULL, 5000, &res, &e) == 0 && res.exited && res.exitcode == 3 &&
           strcmp(res.out, "hello\n") == 0 && strcmp(res.err, "oops\n") == 0, "exec: %s", e.msg);
    qga_exec_result_clear(&res);
    qga_close(g);
    finish(&s);
    g = NULL;
    ok(qga_open_fd(start(&s, sc_silent), 150, &g, &e) == -ETIMEDOUT && strstr(e.msg, "qemu-ga"),
       "no agent in the guest: %s", e.msg);
    finish(&s);
}

int main(void)
{
    test_normal();
    test_timeout();
    test_robustness();
    test_jstream();
    test_agent();
    return done_testing();
}
