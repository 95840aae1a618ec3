/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Raidz top-level vdevs: the data-area operations vdev.c dispatches to when
 * a vdev's kind is VDEV_KIND_RAIDZ (see vdev_raidz.c).  Metadata I/O (labels,
 * bitmap) of a raidz is mirrored to every leaf by the mirror functions.
 * Internal to vdev*.c. */
#ifndef BERTH_STORE_VDEV_RAIDZ_H
#define BERTH_STORE_VDEV_RAIDZ_H

#include "store/vdev.h"

uint64_t raidz_asize(const struct vdev *rz, uint64_t len);
int raidz_read_block(struct vdev *rz, struct vdev_rio *rq);
int raidz_write_blocks(struct vdev *rz, const struct iovec *iov, int cnt, uint64_t off);
int raidz_flush(struct vdev *rz);
void raidz_discard_block(struct vdev *rz, uint64_t off, uint64_t len);
/* Write the columns (and padding) that children in mask hold of the block
 * of psize verified bytes at off; *written += bytes written.  A child that
 * fails is FAULTED; -EIO then. */
/* As raidz_resilver_write for cnt blocks allocated back to back from off,
 * block i's bytes zero padded to the sector in iov[i]: each target child
 * gets its columns of all of them in one write. */
int raidz_resilver_write_blocks(struct vdev *rz, const struct iovec *iov, int cnt, uint64_t off,
                                uint32_t mask, uint64_t *written);
int raidz_resilver_write(struct vdev *rz, const void *data, size_t psize, uint64_t off,
                         uint32_t mask, uint64_t *written);
void raidz_prefetch_block(struct vdev *rz, uint64_t off, uint64_t len);

#endif
