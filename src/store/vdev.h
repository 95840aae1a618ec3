/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Vdevs: leaves (a file or a block device that holds (part of) a pool) and
 * the top-level vdev of a pool, which is a leaf itself, a mirror of leaves
 * (vdev_mirror.c) or a raidz over leaves (vdev_raidz.c).  A top-level vdev
 * has two address spaces: the metadata region (labels, allocation bitmap)
 * at the same absolute offsets on every leaf, written to all of them
 * (vdev_pread/vdev_pwrite/...), and the data area, where a DVA offset names
 * a block (vdev_read_block/vdev_write_block/vdev_write_blocks).  For a leaf
 * or a mirror the data area is the leaf's; a raidz's is nchild times as
 * large, interleaved over the children sector by sector, and a block takes
 * vdev_asize(top, len) bytes of it (data, parity and padding).
 *
 * A leaf is opened with O_CLOEXEC and locked with flock(LOCK_EX|LOCK_NB) so
 * two processes never import the same pool.  I/O counts itself (reads, writes,
 * bytes, errors) in atomics read by pool status.  Fault injection knobs (for
 * tests) live here, below everything else, so the whole engine is exercised
 * by them. */
#ifndef BERTH_STORE_VDEV_H
#define BERTH_STORE_VDEV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/err.h"

struct vdev_counters {
    _Atomic uint64_t reads, writes, bytes_read, bytes_written;
    _Atomic uint64_t read_errors, write_errors, checksum_errors;
    _Atomic uint64_t repaired_bytes; /* leaf: bytes rewritten by self-healing */
};

enum vdev_kind { VDEV_KIND_LEAF = 0, VDEV_KIND_MIRROR = 1, VDEV_KIND_RAIDZ = 2 };

/* Health of a vdev.  A leaf is ONLINE, FAULTED (a write or flush failed:
 * nothing more is sent to it until bs_pool_online), OFFLINE (by request) or
 * UNAVAIL (missing at import); a mirror is ONLINE, DEGRADED (some leaf is
 * not ONLINE) or FAULTED (no leaf left); a raidz is ONLINE, DEGRADED (up to
 * nparity leaves not ONLINE) or FAULTED (more). */
enum vdev_state {
    VDEV_STATE_ONLINE = 0,
    VDEV_STATE_DEGRADED = 1,
    VDEV_STATE_FAULTED = 2,
    VDEV_STATE_OFFLINE = 3,
    VDEV_STATE_UNAVAIL = 4,
};
const char *vdev_state_name(enum vdev_state s);

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
    _Atomic bool no_nowait; /* preadv2(RWF_NOWAIT) unsupported here (tmpfs, NFS, FUSE) */
    /* label headers only (label_write_hdr): 0 off, < 0 every one, N > 0 the
     * next N (each failed one counts it down) */
    _Atomic int64_t fail_label_writes;
    /* fdatasync failures of this leaf: after one, pages whose writeback
     * failed may be clean without being on the device, and a later
     * fdatasync succeeds (write_top_labels does not retry over one) */
    _Atomic uint64_t flush_failures;
    /* tree (vdev_mirror.c) */
    enum vdev_kind kind;
    _Atomic int state;          /* enum vdev_state */
    _Atomic bool stale;         /* leaf: missed committed txgs (back after an outage) */
    bool label_damaged;         /* a placeholder (UNAVAIL, no fd) for a device given at
                                   import without a valid label, named by its path */
    _Atomic uint32_t stale_gen; /* leaf: bumped each time it comes back (online) */
    uint64_t guid;              /* leaf guid (from its label) */
    uint64_t data_start;        /* absolute offset of the data area (vdev_set_data) */
    uint64_t data_size;         /* bytes of the data area (raidz: nchild x a leaf's) */
    int ashift;                 /* the pool's sector (vdev_set_data) */
    struct vdev **child;        /* mirror/raidz: nchild leaves (UNAVAIL ones have fd -1) */
    unsigned nchild;
    unsigned nparity;           /* raidz: 1..3 */
    _Atomic unsigned rr;        /* mirror: read rotation */
    /* Self-healing rewrites a block in place; that is only safe while the
     * block's sectors have not been handed out again.  The allocator bumps
     * heal_gen (write-locked) before it releases freed sectors; a repair
     * runs read-locked and only if heal_gen is what it was when the reader
     * started (vdev_heal_gen), when its block pointer was known valid. */
    pthread_rwlock_t heal_lock;
    _Atomic uint64_t heal_gen;
    /* leaf: dirty time log (dtl.c): the txgs dtl_lo..dtl_hi it missed
     * (dtl_hi 0: none).  Set before the leaf is ONLINE again, cleared by a
     * complete resilver or scrub; a normal read never uses this leaf for a
     * block born in that range. */
    _Atomic uint64_t dtl_lo, dtl_hi;
    /* leaf: not usable at a commit, and that miss already made durable in
     * the labels (dtl.c dtl_note_missed; the sync thread's, under
     * sync_mutex); false again at the first commit that finds it usable */
    bool away_noted;
    /* Leaf writes to a regular file take wlock (vdev.c "Leaf writes"); set
     * up by vdev_open only (wlock_init). */
    bool wlock_init;
    pthread_mutex_t wlock;
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

/* Fault injection on a leaf: "torn_write_after=N", "fail_reads=on|off",
 * "fail_writes=on|off", "fail_label_writes=on|off|N" (the writes of its
 * label header fail, every other write lands: bad sectors where the labels
 * are; N: only the next N of them, a transient failure; 0 is off), "reset".
 * EINVAL for anything else. */
int vdev_debug(struct vdev *v, const char *knob, struct berr *err);

/* ---- the tree ---- */

/* A placeholder leaf for a member missing at import (state UNAVAIL, no fd);
 * `path` is shown in status. */
struct vdev *vdev_missing(const char *path, uint64_t guid);
/* A mirror over `n` leaves (taking ownership of them, also on error).  Its
 * size is the smallest leaf's. */
int vdev_mirror_new(struct vdev **leaves, unsigned n, struct vdev **out, struct berr *err);
/* A raidz with `nparity` (1..3) over `n` (nparity+1..32) leaves, taking
 * ownership of them, also on error.  Its size is the smallest leaf's. */
int vdev_raidz_new(struct vdev **leaves, unsigned n, unsigned nparity, struct vdev **out,
                   struct berr *err);
/* Record where the data area is on every leaf (leaf_size bytes from
 * data_start) and the pool's sector; the top's data_size becomes its whole
 * data area (a raidz: nchild * leaf_size). */
void vdev_set_data(struct vdev *top, int ashift, uint64_t data_start, uint64_t leaf_size);
/* Bytes a block of `len` bytes (a multiple of the sector) allocates on top:
 * len itself, or for a raidz len plus parity and padding. */
uint64_t vdev_asize(const struct vdev *top, uint64_t len);
/* The share of allocated bytes that holds data, not parity ((n - p) / n for
 * a raidz, about: padding aside): compression ratios divide by it so that
 * parity does not count as "stored data". */
double vdev_data_fraction(const struct vdev *top);
/* How many leaves may be lost without losing data (0 for a single leaf). */
unsigned vdev_redundancy(const struct vdev *top);
/* Leaves of a top-level vdev: the vdev itself when it is a leaf. */
unsigned vdev_nleaves(const struct vdev *top);
struct vdev *vdev_leaf(struct vdev *top, unsigned i);
/* Recompute a mirror's or raidz's state from its leaves; returns it. */
enum vdev_state vdev_top_state(struct vdev *top);

/* A leaf is usable for I/O (ONLINE). */
static inline bool vdev_usable(struct vdev *v)
{
    return atomic_load(&v->state) == VDEV_STATE_ONLINE;
}

/* Verify the bytes of a block read from one copy. */
typedef bool (*vdev_verify_fn)(void *ctx, const void *buf, size_t len);

/* A read of one block of the data area. */
struct vdev_rio {
    uint64_t off;            /* DVA offset (from the start of the data area) */
    size_t psize, asize;     /* bytes to verify; the DVA's allocated bytes (vdev_asize of
                                psize padded with zeros to the sector) */
    void *buf;               /* psize bytes: the verified block on success */
    vdev_verify_fn verify;
    void *vctx;
    bool scrub;              /* read and verify every copy, repair each bad one */
    uint64_t gen;            /* vdev_heal_gen when the caller got the block pointer */
    uint64_t birth;          /* the block's birth txg (0: unknown): leaves whose DTL
                                holds it are not read (unless scrub) */
    bool nowait;             /* only if it costs no wait for the device: see below */
};

/* Does leaf l lack blocks born in txg birth (its DTL holds it)?  birth 0
 * (unknown): whether it has a DTL at all. */
static inline bool vdev_dtl_has(struct vdev *l, uint64_t birth)
{
    uint64_t hi = atomic_load(&l->dtl_hi);
    return hi && (birth == 0 || (birth >= atomic_load(&l->dtl_lo) && birth <= hi));
}

/* Read and verify a block: 0 and a verified copy in rq->buf, or -EIO if no
 * copy verifies (never wrong data).  A copy that fails to read or verify is
 * counted on its leaf (read or checksum error) and, when a good copy was
 * found, rewritten with it (counted in repaired_bytes). */
int vdev_read_block(struct vdev *top, struct vdev_rio *rq);
/* With rq->nowait the read is only tried, for a caller that must not block
 * (the NBD reader executing a small write itself, nbd/conn.c): on a single
 * leaf the bytes come from the page cache if it holds all of them now
 * (preadv2 RWF_NOWAIT) and verify; anything else (not cached, a short read,
 * an error, a copy that does not verify, a mirror or raidz top, a file
 * system without RWF_NOWAIT, remembered in no_nowait) is -EAGAIN
 * with nothing counted or healed, for the caller's blocking retry to do
 * properly.  Never with scrub. */
/* Read cnt (1..VDEV_IOV_MAX) blocks allocated back to back from DVA offset
 * off, iov[i] taking block i's allocated bytes, in one system call and
 * UNVERIFIED: the caller checks every block and reads a block that fails
 * (or all of them, when this fails) through vdev_read_block, which counts
 * and heals.  Only a leaf top can do this (a mirror or raidz: -ENOTSUP);
 * -EIO on any failure, nothing counted but the successful read. */
int vdev_read_blocks_raw(struct vdev *top, const struct iovec *iov, int cnt, uint64_t off);
/* Write a block of len bytes (psize padded to the sector) at DVA offset off,
 * allocated with vdev_asize(top, len): every copy, or data and parity
 * columns.  0 if enough was written to read it back (a mirror: one copy; a
 * raidz: all but nparity columns), else -EIO; a leaf that fails is FAULTED
 * (unless too many failed: then the write fails and nothing is faulted). */
int vdev_write_block(struct vdev *top, const void *buf, size_t len, uint64_t off);
/* Write cnt (1..VDEV_IOV_MAX) blocks allocated back to back from DVA offset
 * off: block i has iov[i].iov_len bytes and starts vdev_asize() of the
 * previous ones after off.  As vdev_write_block, in few large writes. */
int vdev_write_blocks(struct vdev *top, const struct iovec *iov, int cnt, uint64_t off);
/* Give a freed range [off, off+len) of the data area back to the host
 * (vdev_discard on the leaves' part of it; errors as vdev_discard's). */
int vdev_discard_block(struct vdev *top, uint64_t off, uint64_t len);
/* Hint that the block of len bytes at off will be read soon. */
void vdev_prefetch_block(struct vdev *top, uint64_t off, uint64_t len);

/* Resilver: write the copies (mirror) or columns (raidz) that the leaves in
 * `mask` (bit i: child i) hold of the block at DVA offset off, from its
 * psize verified stored bytes (allocated asize bytes).  *written += the
 * bytes written.  A leaf that fails is FAULTED, and the call -EIO.
 * (vdev_mirror.c) */
int vdev_resilver_write(struct vdev *top, const void *data, size_t psize, size_t asize,
                        uint64_t off, uint32_t mask, uint64_t *written);
/* The same for cnt (1..VDEV_IOV_MAX) blocks allocated back to back from
 * off: iov[i] holds block i's stored bytes zero padded to its allocation
 * (mirror) or to the sector (raidz).  Each target gets one write of its
 * part of all of them. */
int vdev_resilver_write_blocks(struct vdev *top, const struct iovec *iov, int cnt, uint64_t off,
                               uint32_t mask, uint64_t *written);

static inline uint64_t vdev_heal_gen(struct vdev *top)
{
    return atomic_load(&top->heal_gen);
}
/* Called by the allocator before sectors freed earlier become reusable. */
void vdev_heal_fence(struct vdev *top);
/* Rewrite the block at DVA offset off (len bytes: psize padded to the
 * sector, allocated asize) with verified bytes from another copy of it (a
 * ditto copy, blkio.c): every copy of a mirror, every column of a raidz.
 * Only while heal_gen is still `gen` (the sectors cannot have been
 * reallocated since the reader took the pointer) and no leaf is read-only;
 * counted in repaired_bytes (on each mirror copy or leaf written; on the
 * first usable leaf for a raidz).  0 if rewritten, else -EAGAIN (fenced or
 * read-only) or -EIO. */
int vdev_heal_block(struct vdev *top, const void *buf, size_t len, size_t asize, uint64_t off,
                    uint64_t gen);

#endif
