/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One swtpm per VM with a TPM, its state kept on the pool.
 *
 * Choice (swtpm 0.7 here): swtpm keeps its state in one file through
 * `--tpmstate backend-uri=file://<run>/vm/<VMID>/tpm-state.bin` (the
 * "linear" NVRAM store), in the VM's run directory.  The tpmstate0 volume
 * is the durable copy: at start the state is copied from the volume into
 * that file, and when the VM stops (swtpm exits once QEMU closes its control
 * socket: --terminate) it is copied back through the engine.  The volume
 * holds a 4 KiB header ("BERTHTPM", length, checksum) and the file's bytes
 * after it; an empty (all-zero) volume means a new, unprovisioned TPM.
 * Consequence: a host crash while the VM runs loses TPM changes made since
 * the VM started (the old state stays intact, never a torn one).
 * (swtpm cannot use the volume directly: it would need a kernel NBD device.)
 *
 * Volume I/O goes through vm_store_ops, which berthd implements on top of
 * include/berth/store.h; src/vm itself never calls the engine. */
#ifndef BERTH_VM_SWTPM_H
#define BERTH_VM_SWTPM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vm/config.h"

struct vm_store_ops {
    void *opaque;
    /* volsize of POOL/VOL, -ENOENT with a message if missing */
    int (*vol_size)(void *opaque, const char *pool, const char *vol, uint64_t *size,
                    struct berr *err);
    int (*vol_read)(void *opaque, const char *pool, const char *vol, void *buf, size_t len,
                    uint64_t off, struct berr *err);
    /* write and flush (durable on return) */
    int (*vol_write)(void *opaque, const char *pool, const char *vol, const void *buf,
                     size_t len, uint64_t off, struct berr *err);
};

#define VM_TPM_HDR 4096u

/* Copy the state from the volume to the run dir and start swtpm (our child,
 * own session, output to log_fd).  Returns when its control socket
 * accepts connections. */
int vm_swtpm_start(const struct vm_store_ops *ops, const struct vm_tpmstate *t,
                   const char *run_dir, const char *swtpm_sock, int log_fd, pid_t *pid,
                   struct berr *err);
/* Copy <run_dir>/tpm-state.bin back to the volume (no-op if the file does
 * not exist). */
int vm_swtpm_save(const struct vm_store_ops *ops, const struct vm_tpmstate *t,
                  const char *run_dir, struct berr *err);
/* Make sure swtpm has exited (it normally terminates with QEMU): wait a
 * little, then SIGTERM, then SIGKILL.  child: reap it with waitpid. */
void vm_swtpm_stop(pid_t pid, bool child);

#endif
