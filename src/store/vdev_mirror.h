/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Mirror top-level vdevs: the operations vdev.c dispatches to when a vdev's
 * kind is VDEV_KIND_MIRROR (see vdev_mirror.c).  Internal to vdev*.c. */
#ifndef BERTH_STORE_VDEV_MIRROR_H
#define BERTH_STORE_VDEV_MIRROR_H

#include "store/vdev.h"

int mirror_pread(struct vdev *m, void *buf, size_t len, uint64_t off);
int mirror_pwrite(struct vdev *m, const void *buf, size_t len, uint64_t off);
/* As vdev_pwritev on every ONLINE leaf (one write of the vector each). */
int mirror_pwritev(struct vdev *m, const struct iovec *iov, int cnt, uint64_t off);
int mirror_flush(struct vdev *m);

/* A write of nv pieces (any number: VDEV_IOV_MAX at a time) to one leaf;
 * r is its result (0 or -errno). */
struct leaf_job {
    struct vdev *l;
    const struct iovec *v;
    int nv;
    uint64_t off;
    int r;
};
/* Run the jobs, one after another (leaf writes are buffered: they copy
 * into the page cache and return; docs/PERFORMANCE.md has why they are not
 * O_DIRECT on block devices either). */
void leaf_jobs_run(struct leaf_job *j, unsigned n);
int mirror_discard(struct vdev *m, uint64_t off, uint64_t len);
int mirror_read_block(struct vdev *m, struct vdev_rio *rq);
/* Read-ahead of [off, off+len) of the data area on the leaves reads of it
 * will use. */
void mirror_prefetch_block(struct vdev *m, uint64_t off, uint64_t len);
/* Mark FAULTED the ONLINE children with failed[i] set (an operation the top
 * survived failed on them) and recompute the top's state. */
void vdev_fault_failed(struct vdev *top, const bool *failed);

#endif
