/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VM supervisor: berthd's table of defined VMs (configs parsed in
 * memory, written atomically to <state>/vm/<VMID>.conf) and their QEMU
 * processes: start, stop, shutdown, reset, suspend, resume, the guest agent,
 * watching QMP events, and reattaching to running QEMUs after a berthd
 * restart.  The lifecycle state machine is drawn at the top of
 * supervisor.c.  No HTTP and no engine calls here: volumes are reached
 * through struct vm_store_ops (swtpm.h).
 *
 * Errors: -errno + message; EBUSY for "wrong state" (HTTP 409), ENOENT for
 * an unknown VMID, ETIMEDOUT when QEMU or the agent does not answer.
 * All functions are thread-safe (API handlers call them concurrently). */
#ifndef BERTH_VM_SUPERVISOR_H
#define BERTH_VM_SUPERVISOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vm/config.h"
#include "vm/swtpm.h"

enum vm_status {
    VM_ST_STOPPED,
    VM_ST_STARTING,
    VM_ST_RUNNING,
    VM_ST_PAUSED,
    VM_ST_SHUTTING_DOWN,
    VM_ST_CRASHED,
};
const char *vm_status_name(enum vm_status s);

struct vm_exit {
    bool valid;
    char reason[320];
    int code;       /* QEMU's exit code, -1 if unknown / killed */
    int signal;     /* 0 or the signal that killed QEMU */
    int64_t time;   /* Unix time */
};

struct vm_info {
    uint32_t vmid;
    char name[VM_NAME_MAX + 1];     /* "" when unset */
    enum vm_status status;
    const char *accel;              /* "kvm"/"tcg" (static), NULL if undecidable */
    char accel_reason[320];
    pid_t pid;                      /* 0 when no QEMU */
    int64_t uptime;                 /* seconds */
    int memory, cores;
    struct vm_exit last_exit;
};

struct vmm_opts {
    const char *state_dir;      /* configs in <state>/vm, logs in <state>/log */
    const char *run_dir;        /* <run>/vm/<VMID>/ */
    const char *nbd_socket;     /* berthd's NBD socket, served before any VM starts */
    const char *qemu_binary;    /* NULL: qemu-system-x86_64 */
    const char *ovmf_dir;       /* NULL: /usr/share/OVMF */
    struct vm_store_ops store;
};

struct vmm;

int vmm_new(const struct vmm_opts *o, struct vmm **out, struct berr *err);
/* Load every <state>/vm/VMID.conf and reattach to QEMUs still running (their
 * pidfile and /proc cmdline match).  Problems are logged per VM. */
void vmm_load(struct vmm *m);
/* Start the VMs with `onboot: 1` that are not running, once per host boot
 * (the boot id is remembered in <run>/vm/onboot.bootid): a berthd restart does
 * not start VMs the user stopped on purpose.  Returns how many it started. */
unsigned vmm_autostart(struct vmm *m);
/* berthd is stopping: wake every waiter (shutdown timeouts end early). */
void vmm_quiesce(struct vmm *m);
/* Stop watching and free; running VMs keep running.  NULL accepted. */
void vmm_free(struct vmm *m);

/* All defined VMs sorted by vmid; *out malloc'd. */
int vmm_list(struct vmm *m, struct vm_info **out, size_t *n);
int vmm_info(struct vmm *m, uint32_t vmid, struct vm_info *out, struct berr *err);
/* End of the VM's log (about 2 KiB, whole lines); *out malloc'd or NULL. */
char *vmm_log_tail(struct vmm *m, uint32_t vmid);
/* QEMU's query-status word, or "" when not running / not answering. */
void vmm_qmp_status(struct vmm *m, uint32_t vmid, char *buf, size_t len);
void vmm_console_paths(struct vmm *m, uint32_t vmid, char *serial, char *vnc, size_t len);
/* Default log path of a VM. */
void vmm_log_path(struct vmm *m, uint32_t vmid, char *buf, size_t len);

/* A copy of the config (caller frees with vm_config_free) and its text. */
int vmm_config_get(struct vmm *m, uint32_t vmid, struct vm_config *copy, char **text,
                   struct berr *err);
/* Creation in two steps: reserve the VMID (EEXIST if taken; hidden from
 * lists), then define it (validated, written) or unreserve it. */
int vmm_reserve(struct vmm *m, uint32_t vmid, struct berr *err);
int vmm_define(struct vmm *m, uint32_t vmid, const struct vm_config *c, struct berr *err);
void vmm_unreserve(struct vmm *m, uint32_t vmid);
/* Change a config: fn edits a copy under the VM's operation lock; the
 * result is validated and written atomically, and replaces the config.
 * *running says whether QEMU runs (changes apply at next start). */
typedef int (*vmm_edit_fn)(struct vm_config *c, void *opaque, struct berr *err);
int vmm_config_edit(struct vmm *m, uint32_t vmid, vmm_edit_fn fn, void *opaque, bool *running,
                    struct berr *err);
/* Remove a stopped VM's config; *old receives it (caller frees). */
int vmm_undefine(struct vmm *m, uint32_t vmid, struct vm_config *old, struct berr *err);

/* Lifecycle (see the state machine). */
int vmm_start(struct vmm *m, uint32_t vmid, struct berr *err);
int vmm_stop(struct vmm *m, uint32_t vmid, struct berr *err);
/* method: "agent" or "acpi"; forced: stopped after the timeout. */
int vmm_shutdown(struct vmm *m, uint32_t vmid, int timeout_s, bool *forced,
                 const char **method, struct berr *err);
int vmm_reset(struct vmm *m, uint32_t vmid, struct berr *err);
int vmm_suspend(struct vmm *m, uint32_t vmid, struct berr *err);
int vmm_resume(struct vmm *m, uint32_t vmid, struct berr *err);

/* Guest agent: ping, info, fsfreeze, thaw, fsfreeze-status, exec (argv). */
int vmm_agent(struct vmm *m, uint32_t vmid, const char *command, const char *const *argv,
              int timeout_ms, json_t **result, struct berr *err);

/* VMID of a VM with a QEMU process that uses POOL/VOL (or has a NIC on the
 * bridge); 0 if none. */
uint32_t vmm_volume_user(struct vmm *m, const char *pool, const char *vol);
uint32_t vmm_bridge_user(struct vmm *m, const char *bridge);

#endif
