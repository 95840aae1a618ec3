/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Spawning and waiting for the supervisor's child processes (see proc.h). */
#include "vm/proc.h"
#include "vm/internal.h"
#include "common/cleanup.h"
#include "common/util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

void vm_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int64_t vm_now(void)
{
    return (int64_t)time(NULL);
}

/* posix_spawn with fds 0/1/2 set up and everything else closed. */
static int spawn(char *const *argv, int in_fd, int out_fd, int err_fd, bool setsid, pid_t *pid,
                 struct berr *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    /* berthd blocks SIGTERM/SIGINT/SIGHUP and ignores SIGPIPE: the child
     * starts with a clean mask and default dispositions */
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (setsid)
        flags |= POSIX_SPAWN_SETSID;
    posix_spawnattr_setflags(&at, flags);
    if (in_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    int r = posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (r != 0)
        return berr_errno(err, r, "cannot run %s", argv[0]);
    return 0;
}

int vm_proc_spawn(char *const *argv, int out_fd, pid_t *pid, struct berr *err)
{
    return spawn(argv, -1, out_fd, out_fd, true, pid, err);
}

int vm_proc_spawn_in(char *const *argv, int in_fd, int out_fd, pid_t *pid, struct berr *err)
{
    return spawn(argv, in_fd, out_fd, out_fd, true, pid, err);
}

static int64_t mono_ms(void)
{
    return (int64_t)(now_ns() / 1000000u);
}

int vm_proc_run(char *const *argv, int timeout_ms, struct berr *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return berr_errno(err, errno, "pipe");
    _cleanup_close_ int rd = p[0];
    pid_t pid;
    int r = spawn(argv, -1, p[1], p[1], false, &pid, err);
    close(p[1]);
    if (r < 0)
        return r;
    char out[1024];
    size_t len = 0;
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {rd, POLLIN, 0};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        char tmp[512];
        ssize_t got = read(rd, tmp, sizeof tmp);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t take = MIN((size_t)got, sizeof out - 1 - len);
        memcpy(out + len, tmp, take);
        len += take;
    }
    out[len] = '\0';
    int st = 0;
    r = vm_proc_wait(pid, true, (int)MAX(deadline - mono_ms(), 0), &st);
    if (r == -ETIMEDOUT) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return berr_set(err, ETIMEDOUT, "%s: timed out after %d ms", argv[0], timeout_ms);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
        out[--len] = '\0';
    struct sbuf cmd = {0};
    for (size_t i = 0; argv[i] && i < 8; i++)
        sbuf_printf(&cmd, "%s%s", i ? " " : "", argv[i]);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        r = berr_set(err, ENOENT, "%s: command not found", argv[0]);
    else
        r = berr_set(err, EIO, "%s: %s", cmd.s ? cmd.s : argv[0],
                     len ? out : "failed without a message");
    sbuf_free(&cmd);
    return r;
}

int vm_proc_pidfd(pid_t pid)
{
    int fd = pidfd_open(pid, 0);
    return fd < 0 ? -errno : fd;
}

bool vm_proc_matches(pid_t pid, const char *exe_part, const char *needle)
{
    if (pid <= 0)
        return false;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    if (read_file_all(path, 1 << 20, &buf, &len, NULL) < 0 || len == 0)
        return false;
    /* argv[0] must name the program; then look for the needle */
    if (exe_part && !strstr(buf, exe_part))
        return false;
    for (size_t off = 0; off < len; off += strlen(buf + off) + 1)
        if (strstr(buf + off, needle))
            return true;
    return false;
}

int vm_proc_wait(pid_t pid, bool child, int timeout_ms, int *wstatus)
{
    int64_t deadline = mono_ms() + timeout_ms;
    unsigned step = 1;
    for (;;) {
        if (child) {
            int st;
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid) {
                if (wstatus)
                    *wstatus = st;
                return 1;
            }
            if (r < 0 && errno == ECHILD)
                return 0;
        } else if (kill(pid, 0) < 0 && errno == ESRCH) {
            return 0;
        }
        if (mono_ms() >= deadline)
            return -ETIMEDOUT;
        vm_sleep_ms(step);
        if (step < 20)
            step *= 2;
    }
}

pid_t vm_proc_read_pidfile(const char *path)
{
    _cleanup_free_ char *buf = NULL;
    size_t len;
    if (read_file_all(path, 64, &buf, &len, NULL) < 0)
        return 0;
    long v = strtol(buf, NULL, 10);
    return v > 1 && v < (1L << 22) ? (pid_t)v : 0;
}
