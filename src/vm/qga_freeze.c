/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Freeze/thaw of the guest's filesystems through the agent (qga_freeze.h). */
#include "vm/qga_freeze.h"
#include "vm/proc.h"
#include "common/util.h"

#include <string.h>

#define THAW_SESSION_MS 5000 /* sync of a new session: waits for a late freeze */
#define THAW_CALL_MS 10000
#define THAW_RETRY_MS 200

int qga_freeze_begin(struct qga_freeze *f, const char *path, int probe_ms, int freeze_ms,
                     struct berr *err)
{
    memset(f, 0, sizeof(*f));
    f->path = path;
    int r = qga_open(path, probe_ms, &f->g, err);
    if (r < 0)
        return r; /* nothing sent: nothing to thaw */
    f->need_thaw = true;
    r = qga_fsfreeze(f->g, freeze_ms, &f->frozen, err);
    if (r == -EREMOTEIO)
        return r; /* answered: the session is in step (qemu-ga thaws what it froze) */
    if (r < 0) {
        /* timeout or broken answer: the session is out of step */
        qga_close(f->g);
        f->g = NULL;
    }
    return r;
}

static int ms_left(uint64_t deadline)
{
    uint64_t now = now_ns();
    return now >= deadline ? 0 : (int)((deadline - now) / 1000000u);
}

static int min_ms(int a, int b)
{
    return a < b ? a : b;
}

int qga_freeze_end(struct qga_freeze *f, int thaw_ms, int *thawed, struct berr *err)
{
    int r = 0, n = 0;
    uint64_t deadline = now_ns() + (uint64_t)thaw_ms * 1000000u;
    while (f->need_thaw) {
        struct berr e = {0};
        int left = ms_left(deadline);
        r = f->g ? 0 : qga_open(f->path, min_ms(THAW_SESSION_MS, left > 0 ? left : 1), &f->g, &e);
        if (r == 0)
            r = qga_fsthaw(f->g, min_ms(THAW_CALL_MS, left > 0 ? left : 1), &n, &e);
        if (r == 0 || r == -EREMOTEIO || ms_left(deadline) == 0) {
            if (r < 0)
                berr_set(err, -r, "the guest's filesystems may still be frozen: %s", e.msg);
            f->need_thaw = false;
            break;
        }
        /* no answer: a new session waits behind whatever the agent still does */
        qga_close(f->g);
        f->g = NULL;
        vm_sleep_ms(THAW_RETRY_MS);
    }
    qga_close(f->g);
    f->g = NULL;
    if (thawed)
        *thawed = n;
    return r;
}
