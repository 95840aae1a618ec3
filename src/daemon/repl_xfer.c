/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Moving one send stream to a replication target: bs_send writes into a
 * pipe whose other end is read either by a thread running bs_recv on the
 * target pool (local target, in-process) or by `sh -c TARGET_CMD` (its
 * stdin).  The pipe gives both cases one shape and bounds the memory in
 * flight to the pipe's size.
 *
 * The writing end is non-blocking and polled, so that a cancel (job
 * destroyed, berthd stopping) takes effect within half a second even when
 * the reader has stopped reading.  Whoever reads closes its end as soon as
 * it is done or fails, so the sender gets EPIPE instead of blocking. */
#include "common/cleanup.h"
#include "common/util.h"
#include "daemon/repl.h"
#include "vm/proc.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PIPE_BYTES (1 << 20)     /* fewer wakeups than the default 64K */
#define LOG_MAX (1 << 20)        /* a command's log is truncated above this */
#define KILL_GRACE_MS 5000       /* SIGTERM, then SIGKILL after this */

struct sink {
    int fd;
    atomic_bool *cancel;
    uint64_t bytes;
};

static int sink_write(void *opaque, const void *buf, size_t len)
{
    struct sink *s = opaque;
    const char *p = buf;
    while (len) {
        if (atomic_load(s->cancel))
            return -ECANCELED;
        struct pollfd pfd = {s->fd, POLLOUT, 0};
        int n = poll(&pfd, 1, 500);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0)
            continue;
        ssize_t w = write(s->fd, p, len);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
        s->bytes += (uint64_t)w;
    }
    return 0;
}

static ssize_t fd_read(void *opaque, void *buf, size_t len)
{
    int fd = *(int *)opaque;
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static int make_pipe(int p[2], struct berr *err)
{
    if (pipe2(p, O_CLOEXEC) < 0)
        return berr_errno(err, errno, "pipe");
    fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES); /* best effort: a smaller pipe only costs time */
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    return 0;
}

struct receiver {
    bs_pool *pool;
    const char *vol;
    int fd;
    int rc;
    struct berr err;
};

static void *recv_main(void *arg)
{
    struct receiver *r = arg;
    /* force: a replication target belongs to its job; anything written to
     * it since the last snapshot (e.g. through NBD) is discarded, as with
     * `zfs recv -F`.  resumable: a broken transfer continues next cycle. */
    struct bs_recv_opts ro = {.force = true, .resumable = true};
    struct bs_recv_stats st;
    r->rc = bs_recv(r->pool, r->vol, &ro, fd_read, &r->fd, &st, &r->err);
    close(r->fd);
    return NULL;
}

int repl_xfer_local(bs_pool *src, const char *snap, const struct bs_send_opts *so, bs_pool *dst,
                    const char *vol, atomic_bool *cancel, uint64_t *bytes, struct berr *err)
{
    int p[2];
    int r = make_pipe(p, err);
    if (r < 0)
        return r;
    struct receiver rcv = {.pool = dst, .vol = vol, .fd = p[0]};
    pthread_t t;
    r = pthread_create(&t, NULL, recv_main, &rcv);
    if (r != 0) {
        close(p[0]);
        close(p[1]);
        return berr_errno(err, r, "cannot start the receiving thread");
    }
    struct sink sk = {p[1], cancel, 0};
    struct bs_send_stats ss;
    struct berr serr = {0};
    int rs = bs_send(src, snap, so, sink_write, &sk, &ss, &serr);
    close(p[1]); /* EOF for the receiver, also after a failed send */
    pthread_join(t, NULL);
    *bytes = sk.bytes;
    if (rs == -ECANCELED) /* what the receiver did with its part is worth telling */
        return berr_set(err, ECANCELED, "transfer cancelled%s%s", rcv.rc < 0 ? ": " : "",
                        rcv.rc < 0 ? rcv.err.msg : "");
    /* EPIPE means the receiver gave up first: its error is the cause */
    if (rs < 0 && rs != -EPIPE)
        return berr_set(err, -rs, "send %s: %s", snap, serr.msg[0] ? serr.msg : strerror(-rs));
    if (rcv.rc < 0)
        return berr_set(err, -rcv.rc, "receive into %s/%s: %s", bs_pool_name(dst), vol,
                        rcv.err.msg[0] ? rcv.err.msg : strerror(-rcv.rc));
    if (rs < 0)
        return berr_set(err, EIO, "send %s: the receiver stopped reading", snap);
    return 0;
}

/* ---- target commands ---- */

/* Reap the command; on cancel, TERM its process group, then KILL it. */
static int wait_child(pid_t pid, atomic_bool *cancel, int *status)
{
    uint64_t killed_at = 0;
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -errno;
        uint64_t now = now_ns() / 1000000;
        if (atomic_load(cancel) && !killed_at) {
            kill(-pid, SIGTERM);
            killed_at = now;
        } else if (killed_at && now - killed_at > KILL_GRACE_MS) {
            kill(-pid, SIGKILL);
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* The last line or so of what the command printed since `from` (fd is O_RDWR). */
static void log_tail(int fd, off_t from, char *out, size_t len)
{
    struct stat sb;
    out[0] = '\0';
    if (fstat(fd, &sb) < 0 || sb.st_size <= from)
        return;
    char buf[256];
    off_t off = sb.st_size - (off_t)sizeof(buf) + 1 > from ? sb.st_size - (off_t)sizeof(buf) + 1
                                                            : from;
    ssize_t n = pread(fd, buf, (size_t)(sb.st_size - off), off);
    if (n <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')
            buf[i] = ' ';
    utf8_sanitize(buf, out, len);
}

int repl_xfer_cmd(bs_pool *src, const char *snap, const struct bs_send_opts *so, const char *cmd,
                  const char *log_path, atomic_bool *cancel, uint64_t *bytes, struct berr *err)
{
    _cleanup_close_ int log = open(log_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0)
        return berr_errno(err, errno, "cannot open %s", log_path);
    struct stat sb;
    if (fstat(log, &sb) == 0 && sb.st_size > LOG_MAX)
        (void)!ftruncate(log, 0);
    char head[256];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int hl = snprintf(head, sizeof(head), "---- %04d-%02d-%02dT%02d:%02d:%02dZ send %s%s%s\n",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                      tm.tm_sec, snap, so->from ? " from " : " (full)", so->from ? so->from : "");
    (void)!write(log, head, (size_t)MIN(hl, (int)sizeof(head) - 1));
    off_t start = lseek(log, 0, SEEK_END);

    int p[2];
    int r = make_pipe(p, err);
    if (r < 0)
        return r;
    pid_t pid;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    r = vm_proc_spawn_in(argv, p[0], log, &pid, err);
    close(p[0]);
    if (r < 0) {
        close(p[1]);
        return r;
    }
    struct sink sk = {p[1], cancel, 0};
    struct bs_send_stats ss;
    struct berr serr = {0};
    int rs = bs_send(src, snap, so, sink_write, &sk, &ss, &serr);
    close(p[1]);
    int status = 0;
    r = wait_child(pid, cancel, &status);
    *bytes = sk.bytes;
    char tail[200];
    log_tail(log, start, tail, sizeof(tail));
    if (r < 0)
        return berr_errno(err, -r, "waiting for the target command");
    if (atomic_load(cancel))
        return berr_set(err, ECANCELED, "transfer cancelled");
    if (WIFSIGNALED(status))
        return berr_set(err, EIO, "target command killed by signal %d%s%s", WTERMSIG(status),
                        tail[0] ? ": " : "", tail);
    if (WEXITSTATUS(status) != 0)
        return berr_set(err, EIO, "target command exited with status %d%s%s",
                        WEXITSTATUS(status), tail[0] ? ": " : "", tail);
    if (rs == -EPIPE)
        return berr_set(err, EIO, "target command exited (status 0) before reading the whole "
                        "stream");
    if (rs < 0)
        return berr_set(err, -rs, "send %s: %s", snap, serr.msg[0] ? serr.msg : strerror(-rs));
    return 0;
}
