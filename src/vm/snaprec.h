/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The records of VM snapshots inside a config file's section tail
 * (vm_config.sections, kept verbatim by the config parser).  One record:
 *
 *   [NAME]
 *   <the VM's config at that time, canonical text>
 *   fsfreeze: 0|1
 *   snaptime: UNIX-TIME
 *
 * which is Proxmox's layout (plus `fsfreeze`), so a Proxmox config with
 * snapshots is read too.  Sections that are not snapshots ([PENDING],
 * [special:...]) are skipped and kept.  Pure text functions, no I/O. */
#ifndef BERTH_VM_SNAPREC_H
#define BERTH_VM_SNAPREC_H

#include "vm/vm_snap.h"

/* Every snapshot record of `sections` (may be NULL), oldest first; *out is
 * malloc'd (vm_snap_info_free), its config texts stripped of the record keys. */
int snaprec_parse(const char *sections, struct vm_snap_info **out, size_t *n, struct berr *err);
/* The record NAME (copied into *out, which the caller frees with
 * vm_snap_info_free(out, 0)-style free of out->config), or -ENOENT. */
int snaprec_find(const char *sections, const char *name, struct vm_snap_info *out,
                 struct berr *err);
/* New section text with record s appended / record NAME removed.  *out is
 * malloc'd, or NULL when no section is left. */
int snaprec_append(const char *sections, const struct vm_snap_info *s, char **out,
                   struct berr *err);
int snaprec_remove(const char *sections, const char *name, char **out, struct berr *err);

#endif
