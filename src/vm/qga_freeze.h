/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A guest filesystem freeze around a host-side operation (a snapshot):
 * guest-fsfreeze-freeze with a timeout, then guest-fsfreeze-thaw on every
 * path.  A frozen guest blocks every writer, so the thaw is retried (with new
 * agent sessions) until it is answered or its time is up.
 *
 * Why a new session for the thaw after a timeout or broken answer: the agent
 * executes commands one after the other, so a freeze that outlived our
 * timeout is still running; the new session's guest-sync-delimited is
 * answered only after it, which drops the stale freeze answer instead of
 * mistaking it for the thaw's.  The caller holds the VM's agent lock. */
#ifndef BERTH_VM_QGA_FREEZE_H
#define BERTH_VM_QGA_FREEZE_H

#include <stdbool.h>

#include "vm/qmp.h"

struct qga_freeze {
    const char *path;   /* the agent socket (borrowed) */
    struct qga *g;      /* the session, NULL when closed */
    bool need_thaw;     /* a freeze was sent (even if it failed or timed out) */
    int frozen;         /* filesystems frozen (after success) */
};

/* Connect (probe_ms for the agent to answer its sync) and freeze
 * (freeze_ms).  0: frozen.  <0: not frozen (f->need_thaw says whether
 * qga_freeze_end must still thaw). */
int qga_freeze_begin(struct qga_freeze *f, const char *path, int probe_ms, int freeze_ms,
                     struct berr *err);
/* Thaw if needed, retrying for up to thaw_ms; closes the session.  <0: the
 * guest may still be frozen (the message says so). */
int qga_freeze_end(struct qga_freeze *f, int thaw_ms, int *thawed, struct berr *err);

#endif
