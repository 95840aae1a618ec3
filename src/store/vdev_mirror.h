/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Mirror top-level vdevs: the operations vdev.c dispatches to when a vdev's
 * kind is VDEV_KIND_MIRROR (see vdev_mirror.c).  Internal to vdev*.c. */
#ifndef BERTH_STORE_VDEV_MIRROR_H
#define BERTH_STORE_VDEV_MIRROR_H

#include "store/vdev.h"

int mirror_pread(struct vdev *m, void *buf, size_t len, uint64_t off);
int mirror_pwrite(struct vdev *m, const void *buf, size_t len, uint64_t off);
int mirror_flush(struct vdev *m);
int mirror_discard(struct vdev *m, uint64_t off, uint64_t len);
int mirror_read_block(struct vdev *m, struct vdev_rio *rq);
/* Mark FAULTED the ONLINE children with failed[i] set (an operation the top
 * survived failed on them) and recompute the top's state. */
void vdev_fault_failed(struct vdev *top, const bool *failed);

#endif
