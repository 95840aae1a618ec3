/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by super_snap.c (snapshot, list, destroy, rollback) and
 * super_clone.c: the volumes of a snapshot, taking one, recording and
 * dropping it.  Functions named *_locked expect the VM's op_lock held. */
#ifndef BERTH_VM_SNAP_INT_H
#define BERTH_VM_SNAP_INT_H

#include "vm/super_int.h"
#include "vm/vm_snap.h"

/* vm_get + its op_lock; the reverse. */
struct vm *snap_get_op_locked(struct vmm *m, uint32_t vmid, struct berr *err);
void snap_put_op_locked(struct vm *vm);

/* A volume a VM snapshot covers: disks (not cdroms), efidisk0, tpmstate0. */
struct snapvol {
    char key[16]; /* "scsi0", "efidisk0" */
    struct vm_volref ref;
};
/* *out malloc'd (may be empty). */
int snap_vols(const struct vm_config *c, struct snapvol **out, size_t *n, struct berr *err);

/* The config the VM's volumes match now (the running config while QEMU
 * runs), copied into *out; *running / *agent: QEMU runs and its config has
 * the agent channel; *paused: its vCPUs are stopped. */
void snap_current_locked(struct vm *vm, struct vm_config *out, bool *running, bool *paused,
                         bool *agent);

/* Snapshot the volumes of `c` as @name (guest frozen when `running` and
 * `agent`).  Records nothing. */
int snap_take_locked(struct vm *vm, const char *name, const struct vm_config *c, bool running,
                     bool paused, bool agent, int freeze_ms, const struct vm_snap_ops *ops,
                     struct vm_snap_result *res, struct berr *err);
/* Add / remove the record of a snapshot in the config file. */
int snap_record_locked(struct vm *vm, const struct vm_snap_info *rec, struct berr *err);
int snap_unrecord_locked(struct vm *vm, const char *name, struct berr *err);
/* Whether the VM has a snapshot record `name`. */
bool snap_recorded_locked(struct vm *vm, const char *name);
/* The recorded config of snapshot `name`, parsed into *c (initialised
 * here); ENOENT naming the VM if there is no such snapshot. */
int snap_recorded_config_locked(struct vm *vm, const char *name, struct vm_config *c,
                                struct berr *err);
/* Destroy the volume snapshots @name of `c` (missing ones are fine);
 * check_only: just refuse (EBUSY) if one has clones or holds. */
int snap_destroy_vols(const struct vm_config *c, const char *name, const struct vm_snap_ops *ops,
                      bool check_only, struct berr *err);

#endif
