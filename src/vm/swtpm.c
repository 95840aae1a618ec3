/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* swtpm processes and their state file <-> tpmstate0 volume (see swtpm.h). */
#include "vm/swtpm.h"
#include "vm/proc.h"
#include "common/cleanup.h"
#include "common/le.h"
#include "common/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TPM_MAGIC "BERTHTPM"
#define TPM_STATE_MAX (1u << 20)   /* swtpm's TPM2 state is ~100 KiB at most */
#define SWTPM_READY_MS 5000

/* FNV-1a: enough to tell a complete copy from a torn or stale one. */
static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void state_path(const char *run_dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/tpm-state.bin", run_dir);
}

/* Volume -> file.  No valid header: start fresh (no file). */
static int load_state(const struct vm_store_ops *ops, const struct vm_tpmstate *t,
                      const char *file, struct berr *err)
{
    uint8_t hdr[64];
    unlink(file);
    int r = ops->vol_read(ops->opaque, t->vol.pool, t->vol.vol, hdr, sizeof hdr, 0, err);
    if (r < 0)
        return berr_wrap(err, "tpmstate0");
    if (memcmp(hdr, TPM_MAGIC, 8) != 0)
        return 0;
    uint64_t len = get_le64(hdr + 8), sum = get_le64(hdr + 16);
    if (len == 0 || len > TPM_STATE_MAX)
        return berr_set(err, EIO, "tpmstate0: volume %s/%s has a bad state header (length %llu)",
                        t->vol.pool, t->vol.vol, (unsigned long long)len);
    _cleanup_free_ uint8_t *buf = malloc(len);
    if (!buf)
        return berr_set(err, ENOMEM, "out of memory");
    if ((r = ops->vol_read(ops->opaque, t->vol.pool, t->vol.vol, buf, len, VM_TPM_HDR, err)) < 0)
        return berr_wrap(err, "tpmstate0");
    if (fnv(buf, len) != sum)
        return berr_set(err, EIO, "tpmstate0: the TPM state on %s/%s fails its checksum",
                        t->vol.pool, t->vol.vol);
    return write_file_atomic(file, buf, len, 0600, err);
}

int vm_swtpm_save(const struct vm_store_ops *ops, const struct vm_tpmstate *t,
                  const char *run_dir, struct berr *err)
{
    char file[4200];
    state_path(run_dir, file, sizeof file);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_file_all(file, TPM_STATE_MAX, &data, &len, err);
    if (r == -ENOENT || (r == 0 && len == 0))
        return 0;
    if (r < 0)
        return r;
    uint64_t vsize = 0;
    if ((r = ops->vol_size(ops->opaque, t->vol.pool, t->vol.vol, &vsize, err)) < 0)
        return r;
    if (vsize < VM_TPM_HDR + len)
        return berr_set(err, ENOSPC, "tpmstate0: volume %s/%s (%llu bytes) is too small for "
                        "%zu bytes of TPM state", t->vol.pool, t->vol.vol,
                        (unsigned long long)vsize, len);
    /* data first, header last: a crash in between leaves the old header,
     * whose checksum then fails rather than returning mixed state */
    if ((r = ops->vol_write(ops->opaque, t->vol.pool, t->vol.vol, data, len, VM_TPM_HDR, err)) < 0)
        return r;
    uint8_t hdr[64] = {0};
    memcpy(hdr, TPM_MAGIC, 8);
    put_le64(hdr + 8, len);
    put_le64(hdr + 16, fnv((const uint8_t *)data, len));
    return ops->vol_write(ops->opaque, t->vol.pool, t->vol.vol, hdr, sizeof hdr, 0, err);
}

int vm_swtpm_start(const struct vm_store_ops *ops, const struct vm_tpmstate *t,
                   const char *run_dir, const char *swtpm_sock, int log_fd, pid_t *pid,
                   struct berr *err)
{
    char file[4200], uri[4300], ctrl[4300], pidf[4300];
    state_path(run_dir, file, sizeof file);
    int r = load_state(ops, t, file, err);
    if (r < 0)
        return r;
    unlink(swtpm_sock);
    snprintf(uri, sizeof uri, "backend-uri=file://%s", file);
    snprintf(ctrl, sizeof ctrl, "type=unixio,path=%s,mode=0600", swtpm_sock);
    snprintf(pidf, sizeof pidf, "file=%s/swtpm.pid", run_dir);
    char *argv[] = {"swtpm", "socket", "--tpmstate", uri, "--ctrl", ctrl, "--terminate",
                    "--pid", pidf, t->version == 20 ? "--tpm2" : NULL, NULL};
    if ((r = vm_proc_spawn(argv, log_fd, pid, err)) < 0)
        return r;
    /* --terminate: swtpm exits once QEMU's control connection closes.  Our
     * probe connection must not count: probe only once the socket exists,
     * and swtpm only terminates after a client that sent a command. */
    unsigned step = 1;
    for (unsigned waited = 0; waited < SWTPM_READY_MS; waited += step) {
        struct stat st;
        if (stat(swtpm_sock, &st) == 0)
            return 0;
        int ws;
        if (vm_proc_wait(*pid, true, 0, &ws) == 1) {
            *pid = 0;
            return berr_set(err, EIO, "swtpm exited at start (status %d); see the VM's log", ws);
        }
        vm_sleep_ms(step);
        if (step < 8)
            step *= 2;
    }
    kill(*pid, SIGKILL);
    vm_proc_wait(*pid, true, 1000, NULL);
    *pid = 0;
    return berr_set(err, ETIMEDOUT, "swtpm did not create %s within %d ms", swtpm_sock,
                    SWTPM_READY_MS);
}

void vm_swtpm_stop(pid_t pid, bool child)
{
    if (pid <= 0)
        return;
    if (vm_proc_wait(pid, child, 2000, NULL) != -ETIMEDOUT)
        return;
    kill(pid, SIGTERM);
    if (vm_proc_wait(pid, child, 2000, NULL) != -ETIMEDOUT)
        return;
    kill(pid, SIGKILL);
    vm_proc_wait(pid, child, 2000, NULL);
}
