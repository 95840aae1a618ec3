/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Child processes of the VM supervisor: QEMU and swtpm (long-running, in
 * their own session so they outlive berthd) and short helper commands
 * (`ip ...`) whose stderr becomes the error message.
 *
 * Every spawn goes through posix_spawn with closefrom(3): whatever berthd
 * has open (sockets, pool files, the API listener) never reaches a child,
 * even a descriptor some library forgot to mark O_CLOEXEC. */
#ifndef BERTH_VM_PROC_H
#define BERTH_VM_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* Start argv[0] (searched in PATH) in a new session, stdin /dev/null,
 * stdout and stderr to out_fd (the VM's log).  *pid is the child. */
int vm_proc_spawn(char *const *argv, int out_fd, pid_t *pid, struct berr *err);
/* The same with stdin from in_fd (replication target commands read a send
 * stream there); the session makes the child a process group leader, so
 * kill(-pid) reaches everything it started. */
int vm_proc_spawn_in(char *const *argv, int in_fd, int out_fd, pid_t *pid, struct berr *err);

/* Run a helper command to completion (at most timeout_ms; then it is
 * killed).  A non-zero exit gives -EIO with "ARGV0 ARGV1 ...: <its stderr>";
 * ENOENT if the program is missing. */
int vm_proc_run(char *const *argv, int timeout_ms, struct berr *err);

/* pidfd of a process (-errno if the kernel has no pidfd_open). */
int vm_proc_pidfd(pid_t pid);

/* Is `pid` alive and is its command line one that contains `needle` as a
 * whole argument or inside one (/proc/PID/cmdline)?  Used to recognise our
 * QEMU (its QMP socket path names the VM's run dir) after a berthd restart. */
bool vm_proc_matches(pid_t pid, const char *exe_part, const char *needle);

/* Wait up to timeout_ms for a process to end: reaps it if it is our child
 * (then *wstatus is filled and 1 returned), else polls kill(pid, 0)
 * (returns 0 when gone).  -ETIMEDOUT if still alive. */
int vm_proc_wait(pid_t pid, bool child, int timeout_ms, int *wstatus);

/* Read the pid in a pidfile (0 if none / unreadable). */
pid_t vm_proc_read_pidfile(const char *path);

/* Sleep for ms milliseconds (restarting on EINTR). */
void vm_sleep_ms(unsigned ms);
/* Wall clock seconds. */
int64_t vm_now(void);

#endif
