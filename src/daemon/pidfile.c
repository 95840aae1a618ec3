/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The single-instance lock: an flock()ed pidfile.  The lock dies with the
 * process (also on SIGKILL), so a stale file never blocks a restart. */
#include "daemon/berthd.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int pidfile_lock(const char *path, const char *what, int *out, struct berr *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return berr_errno(err, errno, "cannot open %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        close(fd);
        if (e != EWOULDBLOCK)
            return berr_errno(err, e, "cannot lock %s", path);
        long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        if (pid > 0)
            return berr_set(err, EBUSY, "another berthd (pid %ld) is already running with %s",
                            pid, what);
        return berr_set(err, EBUSY, "another berthd is already running with %s", what);
    }
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
        int e = errno;
        close(fd);
        return berr_errno(err, e, "cannot write %s", path);
    }
    *out = fd;
    return 0;
}
