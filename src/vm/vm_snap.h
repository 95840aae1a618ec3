/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM snapshots, rollback and clones (docs/VMS.md "Snapshots and clones").
 *
 * A VM snapshot NAME is one volume snapshot POOL/VOL@NAME of every volume
 * the VM's config references (disks, efidisk0, tpmstate0; cdrom volumes are
 * shared media and left out), taken in one atomic engine call per pool,
 * plus a record in the VM's config file: a `[NAME]` section holding the
 * config as it was, `snaptime` and `fsfreeze` (Proxmox's layout; the
 * record tells which volumes to roll back and what config to restore).
 *
 * Consistency: when the VM runs and its guest agent answers, the guest's
 * filesystems are frozen (guest-fsfreeze-freeze flushes them) around the
 * snapshot and thawed on every path afterwards; otherwise the snapshot is
 * crash-consistent (what a power cut would leave) and the result carries a
 * warning.  The TPM state of a running VM lives in swtpm's file until the VM
 * stops (swtpm.h), so its tpmstate0 snapshot holds the state of the last stop.
 *
 * src/vm never calls the engine: volumes are reached through struct
 * vm_snap_ops, which berthd implements over include/berth/store.h
 * (api/vmstore_snap.c).  Every function takes the VM's operation lock, so a
 * snapshot, rollback or clone never overlaps a start, stop or config edit
 * of the same VM.  Errors: -errno + message as in supervisor.h (EBUSY: the
 * VM is running or a snapshot is in use, EEXIST, ENOENT). */
#ifndef BERTH_VM_SNAP_H
#define BERTH_VM_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/supervisor.h"

#define VM_SNAP_NAME_MAX 40 /* Proxmox's limit; the engine allows 63 */

/* Engine calls, all on volumes of one pool.  `snap` is the part after '@'. */
struct vm_snap_ops {
    void *opaque;
    /* POOL/VOLS[i]@SNAP for all i in one atomic step (nothing created on error) */
    int (*snap_create)(void *opaque, const char *pool, const char *const *vols, size_t n,
                       const char *snap, struct berr *err);
    /* -ENOENT (with a message) if it does not exist */
    int (*snap_destroy)(void *opaque, const char *pool, const char *vol, const char *snap,
                        struct berr *err);
    /* 0 if it exists (*nclones = volumes cloned from it, *nholds = holds), -ENOENT if not */
    int (*snap_info)(void *opaque, const char *pool, const char *vol, const char *snap,
                     unsigned *nclones, unsigned *nholds, struct berr *err);
    int (*rollback)(void *opaque, const char *pool, const char *vol, const char *snap,
                    struct berr *err);
    /* new volume POOL/NEWVOL: linked (sharing blocks with the snapshot) or a full copy */
    int (*clone)(void *opaque, const char *pool, const char *vol, const char *snap,
                 const char *newvol, bool linked, struct berr *err);
    int (*vol_destroy)(void *opaque, const char *pool, const char *vol, struct berr *err);
};

/* One recorded VM snapshot. */
struct vm_snap_info {
    char name[VM_SNAP_NAME_MAX + 1];
    int64_t time;      /* Unix time of its creation */
    bool frozen;       /* the guest's filesystems were frozen */
    char *config;      /* the VM's config text at that time (owned) */
};
void vm_snap_info_free(struct vm_snap_info *v, size_t n); /* frees the array too */

struct vm_snap_result {
    bool frozen;          /* guest-fsfreeze-freeze succeeded */
    int frozen_fs;        /* filesystems it froze */
    char warning[512];    /* "" or why the snapshot is only crash-consistent */
    size_t nvols;         /* volumes snapshotted */
    char snapshot[VM_SNAP_NAME_MAX + 1]; /* vmm_clone: the snapshot it cloned */
};

/* Snapshot the VM (running or not) as NAME and record it.  freeze_ms bounds
 * the freeze call (0: 30 s). */
int vmm_snapshot(struct vmm *m, uint32_t vmid, const char *name, int freeze_ms,
                 const struct vm_snap_ops *ops, struct vm_snap_result *res, struct berr *err);
/* The VM's snapshots, oldest first; *out malloc'd (vm_snap_info_free). */
int vmm_snapshot_list(struct vmm *m, uint32_t vmid, struct vm_snap_info **out, size_t *n,
                      struct berr *err);
/* Destroy every volume snapshot of NAME and its record.  Refused (EBUSY,
 * nothing destroyed) while one of them has clones or holds. */
int vmm_snapshot_destroy(struct vmm *m, uint32_t vmid, const char *name,
                         const struct vm_snap_ops *ops, struct berr *err);
/* Roll every volume of the snapshot back to @NAME and restore its config
 * (with a new vmgenid, which tells the guest it was rolled back).  Refused
 * (EBUSY) while the VM runs.  Snapshots newer than NAME are kept. */
int vmm_rollback(struct vmm *m, uint32_t vmid, const char *name, const struct vm_snap_ops *ops,
                 struct berr *err);

struct vm_clone_opts {
    uint32_t newid;
    bool linked;          /* share blocks with the snapshot (instant) */
    const char *snapshot; /* clone this VM snapshot; NULL: the VM as it is now */
    const char *name;     /* the new VM's name; NULL: "copy-of-<name>" */
};
/* Define VM newid as a copy of vmid: volumes vm-NEWID-... (cloned or copied
 * from the snapshot), new MAC addresses, new SMBIOS UUID and vmgenid, no
 * snapshots.  A linked clone without opts->snapshot records the snapshot
 * "clone-NEWID" on the source (it cannot be destroyed while the clone
 * lives); a full clone without one copies from a temporary snapshot.
 * EEXIST if newid exists; on error nothing is left behind. */
int vmm_clone(struct vmm *m, uint32_t vmid, const struct vm_clone_opts *opts,
              const struct vm_snap_ops *ops, struct vm_snap_result *res, struct berr *err);

/* Snapshot name check: a valid volume name (letters, digits, '_', '-', '.',
 * starting with a letter or digit), at most VM_SNAP_NAME_MAX characters, not
 * "PENDING" or "current" (reserved by Proxmox). */
int vm_snap_name_check(const char *name, struct berr *err);

#endif
