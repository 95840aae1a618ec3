/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Leaf vdevs: a file or a block device that holds (part of) a pool.
 *
 * A leaf is opened with O_CLOEXEC and locked with flock(LOCK_EX|LOCK_NB) so
 * two processes never import the same pool.  I/O counts itself (reads, writes,
 * bytes, errors) in atomics read by pool status.  Fault injection knobs (for
 * tests) live here, below everything else, so the whole engine is exercised
 * by them. */
#ifndef BERTH_STORE_VDEV_H
#define BERTH_STORE_VDEV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/err.h"

struct vdev_counters {
    _Atomic uint64_t reads, writes, bytes_read, bytes_written;
    _Atomic uint64_t read_errors, write_errors, checksum_errors;
};

struct vdev {
    char *path;
    int fd;
    bool is_blockdev;
    bool readonly;
    uint64_t size;            /* device size in bytes (as found) */
    int phys_sector_shift;    /* detected: log2 physical sector size (files: 12) */
    struct vdev_counters ctr;
    /* fault injection */
    _Atomic int64_t torn_after; /* >0: countdown of writes until a torn write; 0 = off */
    _Atomic bool torn_done;     /* after the torn write every write fails */
    _Atomic bool fail_reads, fail_writes;
};

/* Open (and lock) a leaf.  If `create_size` > 0 and path does not exist, a
 * sparse file of that size is created; an existing regular file shorter than
 * create_size is extended.  EBUSY if another process holds it. */
int vdev_open(const char *path, uint64_t create_size, bool readonly, struct vdev **out,
              struct berr *err);
void vdev_close(struct vdev *v); /* NULL accepted */

/* Full-length I/O at absolute device offsets; -EIO etc.  Counts errors. */
int vdev_pread(struct vdev *v, void *buf, size_t len, uint64_t off);
int vdev_pwrite(struct vdev *v, const void *buf, size_t len, uint64_t off);
/* One write of cnt (1..VDEV_IOV_MAX) buffers to consecutive bytes from off
 * (counted, checked and fault-injected as one vdev_pwrite of their total
 * length). */
#define VDEV_IOV_MAX 64
int vdev_pwritev(struct vdev *v, const struct iovec *iov, int cnt, uint64_t off);
int vdev_flush(struct vdev *v);
/* Start writing back [off, off+len) (len 0: to the end) without waiting,
 * so that a later vdev_flush finds little left to do.  Only a hint: it
 * makes nothing durable, errors are ignored (the flush reports them). */
void vdev_writeback_hint(struct vdev *v, uint64_t off, uint64_t len);
/* Give a range back to the host: punch a hole in a file, BLKDISCARD on a
 * device.  Failure to discard is not an error of the pool (returns 0 if
 * unsupported). */
int vdev_discard(struct vdev *v, uint64_t off, uint64_t len);

/* Fault injection: "torn_write_after=N", "fail_reads=on|off",
 * "fail_writes=on|off", "reset".  EINVAL for anything else. */
int vdev_debug(struct vdev *v, const char *knob, struct berr *err);

#endif
