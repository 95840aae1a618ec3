/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Talking to the guest: `berth vm console` (the serial console) and
 * `berth vm agent` (qemu-ga through berthd).
 *
 * The console asks berthd where the VM's serial socket is
 * (GET /vms/{vmid}/console) and connects to it directly: bytes are copied
 * both ways by a poll loop, nothing goes through HTTP.  On a terminal, stdin
 * is put in raw mode (every key, Ctrl-C included, goes to the guest) and
 * Ctrl-] detaches.  Invariant: once raw mode is set, every return path of
 * console_loop() goes through term_restore(), and SIGTERM/SIGHUP/SIGINT only
 * set a flag that ends the loop, so the terminal is always given back.  With
 * pipes, stdin is copied until its EOF, and the guest's output until the
 * socket closes (the VM stopped) or a signal arrives. */
#include "cli.h"
#include "common/util.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define ESCAPE_CHAR 0x1d /* Ctrl-] */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

struct term {
    bool raw;
    struct termios saved;
};

static void term_restore(struct term *t)
{
    if (t->raw) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
        t->raw = false;
    }
}

static int term_raw(struct term *t)
{
    if (tcgetattr(STDIN_FILENO, &t->saved) != 0)
        return -errno;
    struct termios raw = t->saved;
    cfmakeraw(&raw);
    /* keep output post-processing so our own messages get \r\n */
    raw.c_oflag |= OPOST;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0)
        return -errno;
    t->raw = true;
    return 0;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Returns 0 when detached or the guest side closed, -errno on I/O errors. */
static int console_loop(int sock, bool tty)
{
    char buf[4096];
    bool in_open = true;
    while (!got_signal) {
        struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
                              {.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[0].revents) {
            ssize_t n = read(sock, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0)
                return n < 0 ? -errno : 0; /* the VM stopped */
            if (write_full(STDOUT_FILENO, buf, (size_t)n) != 0)
                return -EPIPE;
        }
        if (p[1].revents) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                in_open = false; /* keep showing the guest's output */
                continue;
            }
            if (tty) {
                char *esc = memchr(buf, ESCAPE_CHAR, (size_t)n);
                if (esc) {
                    if (esc > buf)
                        write_full(sock, buf, (size_t)(esc - buf));
                    return 1;
                }
            }
            if (write_full(sock, buf, (size_t)n) != 0)
                return -EPIPE;
        }
    }
    return 0;
}

int vm_console(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    optind = 0;
    opterr = 0;
    for (int opt; (opt = getopt_long(argc, argv, ":" CLI_COMMON_SHORTOPTS, lo, NULL)) != -1;) {
        if (opt == 'h') {
            help_vm(stdout);
            return EXIT_OK;
        }
        if (!cli_common_opt(c, opt))
            return cli_getopt_error("vm", opt, argv);
    }
    if (argc - optind != 1)
        return cli_usage_error("vm", "vm console needs exactly one VMID");
    const char *vmid = argv[optind];
    char path[64];
    int rc = cli_vm_path(vmid, "/console", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    json_t *resp = NULL;
    if ((rc = cli_call(c, "GET", path, NULL, &resp)) != EXIT_OK)
        return rc;
    if (c->json) {
        out_json(resp);
        json_decref(resp);
        return EXIT_OK;
    }
    const char *sp = json_string_value(json_object_get(resp, "serial_socket"));
    if (!sp || !*sp) {
        json_decref(resp);
        return cli_fail("VM %s has no serial console socket", vmid);
    }
    int sock = connect_unix(sp);
    if (sock < 0) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            rc = cli_fail("VM %s is not running (no serial console at %s)", vmid, sp);
        else
            rc = cli_fail("cannot connect to the serial console of VM %s at %s: %s", vmid, sp,
                          strerror(e));
        json_decref(resp);
        return rc;
    }
    json_decref(resp);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    bool tty = isatty(STDIN_FILENO);
    struct term t = {0};
    if (tty) {
        int e = term_raw(&t);
        if (e < 0) {
            close(sock);
            return cli_fail("cannot put the terminal in raw mode: %s", strerror(-e));
        }
        fprintf(stderr, "Connected to the serial console of VM %s (detach: Ctrl-])\r\n", vmid);
    }
    int r = console_loop(sock, tty);
    term_restore(&t);
    close(sock);
    if (tty)
        fprintf(stderr, "\n%s\n",
                r == 1 ? "[detached]" : r == 0 && !got_signal ? "[console closed: the VM stopped]"
                                                              : "[console closed]");
    if (r < 0 && r != -EPIPE)
        return cli_fail("serial console of VM %s: %s", vmid, strerror(-r));
    return EXIT_OK;
}

/* ---- berth vm agent ---- */

static void print_exec(json_t *res, int *rc)
{
    const char *out = json_string_value(json_object_get(res, "stdout"));
    const char *err = json_string_value(json_object_get(res, "stderr"));
    if (out)
        fputs(out, stdout);
    if (err)
        fputs(err, stderr);
    json_t *code = json_object_get(res, "exitcode");
    json_t *sig = json_object_get(res, "signal");
    if (json_is_integer(sig) && json_integer_value(sig) > 0) {
        *rc = cli_fail("the guest command was killed by signal %" JSON_INTEGER_FORMAT,
                       json_integer_value(sig));
    } else if (json_is_integer(code) && json_integer_value(code) != 0) {
        *rc = cli_fail("the guest command exited with status %" JSON_INTEGER_FORMAT,
                       json_integer_value(code));
    }
}

int vm_agent(struct cli *c, int argc, char **argv)
{
    static const char *const cmds[] = {"ping", "info", "fsfreeze", "thaw", "fsfreeze-status",
                                       "exec"};
    const char *vmid = NULL, *cmd = NULL;
    long timeout = -1;
    _cleanup_json_ json_t *args = json_array();
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (cmd && strcmp(cmd, "exec") == 0) {
            if (strcmp(a, "--") == 0 && json_array_size(args) == 0)
                continue;
            json_array_append_new(args, json_string(a));
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help_vm(stdout);
            return EXIT_OK;
        }
        if (strcmp(a, "--json") == 0 || strcmp(a, "-p") == 0 || strcmp(a, "-H") == 0) {
            cli_common_opt(c, a[1] == 'p' ? 'p' : a[1] == 'H' ? 'H' : 'J');
        } else if (strcmp(a, "--timeout") == 0 || strncmp(a, "--timeout=", 10) == 0) {
            const char *v = a[9] == '=' ? a + 10 : i + 1 < argc ? argv[++i] : NULL;
            char *end;
            if (!v)
                return cli_usage_error("vm", "option '--timeout' needs a value");
            timeout = strtol(v, &end, 10);
            if (!*v || *end || timeout < 1 || timeout > 3600)
                return cli_usage_error("vm", "bad --timeout '%s': expected seconds (1..3600)",
                                       v);
        } else if (a[0] == '-' && strcmp(a, "--") != 0) {
            return cli_usage_error("vm", "unknown option '%s'", a);
        } else if (!vmid) {
            vmid = a;
        } else if (!cmd) {
            cmd = a;
            bool ok = false;
            for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
                ok |= strcmp(cmd, cmds[k]) == 0;
            if (!ok)
                return cli_usage_error("vm", "unknown agent command '%s' (ping, info, fsfreeze, "
                                       "thaw, fsfreeze-status, exec)", cmd);
        } else {
            return cli_usage_error("vm", "agent %s takes no arguments, got '%s'", cmd, a);
        }
    }
    if (!vmid || !cmd)
        return cli_usage_error("vm", "vm agent needs a VMID and a command");
    if (strcmp(cmd, "exec") == 0 && json_array_size(args) == 0)
        return cli_usage_error("vm", "agent exec needs a command: exec -- CMD [ARGS...]");
    char path[64];
    int rc = cli_vm_path(vmid, "/agent", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:s}", "command", cmd), *resp = NULL;
    if (json_array_size(args))
        json_object_set(body, "args", args);
    if (timeout > 0)
        json_object_set_new(body, "timeout", json_integer(timeout));
    rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    if (rc != EXIT_OK || c->json) {
        if (rc == EXIT_OK)
            out_json(resp);
        json_decref(resp);
        return rc;
    }
    json_t *res = json_object_get(resp, "result");
    if (strcmp(cmd, "ping") == 0) {
        printf("VM %s: the guest agent answered\n", vmid);
    } else if (strcmp(cmd, "exec") == 0) {
        print_exec(res, &rc);
    } else if (json_is_string(res)) {
        printf("%s\n", json_string_value(res)); /* fsfreeze-status */
    } else if (json_is_integer(json_object_get(res, "frozen")) ||
               json_is_integer(json_object_get(res, "thawed"))) {
        const char *k = json_object_get(res, "frozen") ? "frozen" : "thawed";
        printf("VM %s: %" JSON_INTEGER_FORMAT " filesystem(s) %s\n", vmid,
               json_integer_value(json_object_get(res, k)), k);
    } else if (strcmp(cmd, "info") == 0 && json_is_string(json_object_get(res, "version"))) {
        printf("qemu-ga %s\n", json_string_value(json_object_get(res, "version")));
    } else {
        out_json(res ? res : resp);
    }
    json_decref(resp);
    return rc;
}
