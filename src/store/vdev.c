/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Leaf vdev I/O: a regular file or a block device.
 *
 * Everything the engine writes goes through vdev_pwrite, so the fault
 * injection knobs here exercise every layer above: a torn write simulates a
 * power cut in the middle of a write (the first half lands, then the device
 * is gone), fail_reads/fail_writes simulate a dead device.
 *
 * Invariants:
 *  - the descriptor is O_CLOEXEC and flock(LOCK_EX) is held while open, so
 *    no child process inherits it and no second importer can open it;
 *  - I/O never leaves [0, size): a bug above cannot grow a file or write past
 *    the labels at the end;
 *  - once a torn write happened, nothing reaches the device again (writes,
 *    flushes and discards all fail) until "reset", as after a real power cut. */
#include "store/vdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/vdev_mirror.h"
#include "store/vdev_raidz.h"

#define FILE_SECTOR_SHIFT 12

/* ---- Leaf writes ----
 *
 * A buffered write to a regular file holds the file's inode lock while the
 * kernel copies the bytes into the page cache; ext4 and xfs let only one
 * writer in at a time.  With the sync workers writing their batches at once,
 * the waiter spun on the lock (rwsem_spin_on_owner: 19-21 % of berthd's CPU
 * in a 1 MiB sequential write over NBD) on the very CPU the holder's copy
 * needed.  So the writes of a file leaf are serialised here first, on a
 * mutex that sleeps: the waiter gives its CPU to the holder, or to the other
 * workers' compression and checksums.  It costs no parallelism, since the
 * file system serialised them anyway.  Block devices take no such lock and
 * keep parallel writes.
 *
 * (O_DIRECT for these writes was tried, docs/PERFORMANCE.md: it saves the
 * page-cache copy, but synchronous direct writes without a deep queue made
 * 4 KiB random writes 2-3x slower, and reads of freshly written data then
 * go to the device instead of the page cache.)
 *
 * A file leaf is written in calls of at most LEAF_FOLIO_MAX bytes that never
 * cross a multiple of it.  The kernel sizes the page-cache folios it creates
 * by the length of the write (ext4, xfs: large folios), so a 1 MiB batch
 * made 1 MiB folios, and every later 16K rewrite of a block inside one (a
 * random write reusing the freed blocks of a stream) walked all 256 buffer
 * heads of the folio three times: in ext4_block_write_begin,
 * block_commit_write and, at writeback, mpage_process_page_bufs (~14 % of
 * berthd's CPU in 4K random writes over a prefilled volume; a plain 16K
 * random pwrite + writeback measured 15-17 us into 1 MiB folios against
 * 7-8 us into 64K ones).  Writing a stream in 64K pieces costs ~0.05 s of
 * CPU per GiB more (16 calls per MiB instead of one). */
#define LEAF_FOLIO_MAX (64u << 10)

static int leaf_writev(struct vdev *v, struct iovec *iov, int cnt, uint64_t off)
{
    bool serial = v->wlock_init && !v->is_blockdev;
    if (serial)
        pthread_mutex_lock(&v->wlock);
    int r = v->is_blockdev ? pwritev_full(v->fd, iov, cnt, off)
                           : pwritev_chunked(v->fd, iov, cnt, off, LEAF_FOLIO_MAX);
    if (serial)
        pthread_mutex_unlock(&v->wlock);
    return r;
}

static int detect_phys_shift(int fd)
{
    unsigned int pbs = 0;
    int lbs = 0;
    if (ioctl(fd, BLKPBSZGET, &pbs) != 0 || pbs == 0) {
        if (ioctl(fd, BLKSSZGET, &lbs) != 0 || lbs <= 0)
            return 9;
        pbs = (unsigned int)lbs;
    }
    int shift = 0;
    while ((1u << shift) < pbs && shift < 31)
        shift++;
    if (shift < 9)
        shift = 9;
    if (shift > 16)
        shift = 16;
    return shift;
}

/* Fill size/kind fields from the open descriptor; grow a short file. */
static int vdev_probe(struct vdev *v, uint64_t create_size, struct berr *err)
{
    struct stat st;
    if (fstat(v->fd, &st) != 0)
        return berr_errno(err, errno, "cannot stat %s", v->path);
    if (S_ISBLK(st.st_mode)) {
        uint64_t sz = 0;
        if (ioctl(v->fd, BLKGETSIZE64, &sz) != 0)
            return berr_errno(err, errno, "cannot get the size of block device %s", v->path);
        v->is_blockdev = true;
        v->size = sz;
        v->phys_sector_shift = detect_phys_shift(v->fd);
        return 0;
    }
    if (S_ISDIR(st.st_mode))
        return berr_set(err, EISDIR, "%s is a directory, not a file or block device", v->path);
    if (!S_ISREG(st.st_mode))
        return berr_set(err, EINVAL, "%s is neither a regular file nor a block device", v->path);
    v->phys_sector_shift = FILE_SECTOR_SHIFT;
    v->size = (uint64_t)st.st_size;
    if (create_size > v->size && !v->readonly) {
        if (ftruncate(v->fd, (off_t)create_size) != 0)
            return berr_errno(err, errno, "cannot grow %s to %llu bytes", v->path,
                              (unsigned long long)create_size);
        v->size = create_size;
    }
    return 0;
}

int vdev_open(const char *path, uint64_t create_size, bool readonly, struct vdev **out,
              struct berr *err)
{
    int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if (create_size > 0 && !readonly)
        flags |= O_CREAT;
    *out = NULL;
    struct vdev *v = calloc(1, sizeof(*v));
    if (!v || !(v->path = strdup(path))) {
        free(v);
        return berr_set(err, ENOMEM, "out of memory opening %s", path);
    }
    v->readonly = readonly;
    pthread_rwlock_init(&v->heal_lock, NULL);
    pthread_mutex_init(&v->wlock, NULL);
    v->wlock_init = true;
    v->fd = open(path, flags, 0600);
    if (v->fd < 0) {
        int e = errno;
        vdev_close(v);
        return berr_errno(err, e, "cannot open %s", path);
    }
    /* A non-blocking exclusive lock: a second importer (another berthd, or
     * this one twice) must fail fast, not wait. */
    if (flock(v->fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        vdev_close(v);
        if (e == EWOULDBLOCK)
            return berr_set(err, EBUSY, "%s is in use by another process (it is locked)",
                            path);
        return berr_errno(err, e, "cannot lock %s", path);
    }
    int r = vdev_probe(v, create_size, err);
    if (r < 0) {
        vdev_close(v);
        return r;
    }
    *out = v;
    return 0;
}

struct vdev *vdev_missing(const char *path, uint64_t guid)
{
    struct vdev *v = calloc(1, sizeof(*v));
    if (!v || !(v->path = strdup(path))) {
        free(v);
        return NULL;
    }
    v->fd = -1;
    v->guid = guid;
    v->state = VDEV_STATE_UNAVAIL;
    v->phys_sector_shift = FILE_SECTOR_SHIFT;
    pthread_rwlock_init(&v->heal_lock, NULL);
    return v;
}

void vdev_close(struct vdev *v)
{
    if (!v)
        return;
    for (unsigned i = 0; i < v->nchild; i++)
        vdev_close(v->child[i]);
    free(v->child);
    if (v->fd >= 0)
        close(v->fd); /* drops the flock too */
    if (v->wlock_init)
        pthread_mutex_destroy(&v->wlock);
    pthread_rwlock_destroy(&v->heal_lock);
    free(v->path);
    free(v);
}

const char *vdev_state_name(enum vdev_state s)
{
    static const char *const names[] = {"ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "UNAVAIL"};
    return (unsigned)s < 5 ? names[s] : "UNKNOWN";
}

void vdev_set_data(struct vdev *top, int ashift, uint64_t data_start, uint64_t leaf_size)
{
    top->ashift = ashift;
    top->data_start = data_start;
    top->data_size = top->kind == VDEV_KIND_RAIDZ ? leaf_size * top->nchild : leaf_size;
    for (unsigned i = 0; i < top->nchild; i++)
        vdev_set_data(top->child[i], ashift, data_start, leaf_size);
}

uint64_t vdev_asize(const struct vdev *top, uint64_t len)
{
    return top->kind == VDEV_KIND_RAIDZ ? raidz_asize(top, len) : len;
}

double vdev_data_fraction(const struct vdev *top)
{
    if (top->kind == VDEV_KIND_RAIDZ && top->nchild > top->nparity)
        return (double)(top->nchild - top->nparity) / (double)top->nchild;
    return 1.0;
}

unsigned vdev_redundancy(const struct vdev *top)
{
    switch (top->kind) {
    case VDEV_KIND_MIRROR:
        return top->nchild - 1;
    case VDEV_KIND_RAIDZ:
        return top->nparity;
    default:
        return 0;
    }
}

unsigned vdev_nleaves(const struct vdev *top)
{
    return top->kind == VDEV_KIND_LEAF ? 1 : top->nchild;
}

struct vdev *vdev_leaf(struct vdev *top, unsigned i)
{
    return top->kind == VDEV_KIND_LEAF ? top : top->child[i];
}

void vdev_heal_fence(struct vdev *top)
{
    pthread_rwlock_wrlock(&top->heal_lock);
    atomic_fetch_add(&top->heal_gen, 1);
    pthread_rwlock_unlock(&top->heal_lock);
}

int vdev_heal_block(struct vdev *top, const void *buf, size_t len, size_t asize, uint64_t off,
                    uint64_t gen)
{
    unsigned n = vdev_nleaves(top);
    for (unsigned i = 0; i < n; i++)
        if (vdev_leaf(top, i)->readonly)
            return -EAGAIN;
    int r = -EAGAIN;
    pthread_rwlock_rdlock(&top->heal_lock);
    if (atomic_load(&top->heal_gen) == gen) {
        r = -EIO;
        if (top->kind == VDEV_KIND_RAIDZ) {
            struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
            if (raidz_write_blocks(top, &iov, 1, off) == 0) {
                r = 0;
                for (unsigned i = 0; i < n; i++)
                    if (vdev_usable(top->child[i])) {
                        atomic_fetch_add(&top->child[i]->ctr.repaired_bytes, asize);
                        break;
                    }
            }
        } else {
            /* each copy on its own (a mirror's): one that fails stays as
             * it is, nothing is faulted by a repair */
            for (unsigned i = 0; i < n; i++) {
                struct vdev *l = vdev_leaf(top, i);
                if (top->kind != VDEV_KIND_LEAF && !vdev_usable(l))
                    continue;
                if (vdev_pwrite(l, buf, len, l->data_start + off) == 0) {
                    atomic_fetch_add(&l->ctr.repaired_bytes, asize);
                    r = 0;
                }
            }
        }
    }
    pthread_rwlock_unlock(&top->heal_lock);
    return r;
}

static bool in_range(const struct vdev *v, size_t len, uint64_t off);

/* vdev_rio.nowait on a single leaf (vdev.h): the page cache's bytes or
 * -EAGAIN, nothing counted but a successful read. */
static int leaf_read_nowait(struct vdev *v, struct vdev_rio *rq)
{
    uint64_t off = v->data_start + rq->off;
    if (v->fd < 0 || !in_range(v, rq->psize, off) || atomic_load(&v->fail_reads) ||
        atomic_load_explicit(&v->no_nowait, memory_order_relaxed))
        return -EAGAIN;
    struct iovec iov = {.iov_base = rq->buf, .iov_len = rq->psize};
    ssize_t n = preadv2(v->fd, &iov, 1, (off_t)off, RWF_NOWAIT);
    if (n < 0 && (errno == EOPNOTSUPP || errno == EINVAL))
        atomic_store(&v->no_nowait, true); /* never again a syscall for nothing */
    if (n < 0 || (size_t)n != rq->psize || !rq->verify(rq->vctx, rq->buf, rq->psize))
        return -EAGAIN;
    atomic_fetch_add(&v->ctr.reads, 1);
    atomic_fetch_add(&v->ctr.bytes_read, rq->psize);
    return 0;
}

/* A single leaf holds one copy: verify it, nothing to heal from. */
static int leaf_read_block(struct vdev *v, struct vdev_rio *rq)
{
    if (rq->nowait)
        return leaf_read_nowait(v, rq);
    if (vdev_pread(v, rq->buf, rq->psize, v->data_start + rq->off) < 0)
        return -EIO;
    if (!rq->verify(rq->vctx, rq->buf, rq->psize)) {
        atomic_fetch_add(&v->ctr.checksum_errors, 1);
        return -EIO;
    }
    return 0;
}

int vdev_read_block(struct vdev *top, struct vdev_rio *rq)
{
    if (rq->nowait && top->kind != VDEV_KIND_LEAF)
        return -EAGAIN; /* several leaves: the blocking path chooses and heals */
    if (top->kind == VDEV_KIND_MIRROR)
        return mirror_read_block(top, rq);
    if (top->kind == VDEV_KIND_RAIDZ)
        return raidz_read_block(top, rq);
    return leaf_read_block(top, rq);
}

int vdev_write_block(struct vdev *top, const void *buf, size_t len, uint64_t off)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return vdev_write_blocks(top, &iov, 1, off);
}

int vdev_write_blocks(struct vdev *top, const struct iovec *iov, int cnt, uint64_t off)
{
    if (top->kind == VDEV_KIND_RAIDZ)
        return raidz_write_blocks(top, iov, cnt, off);
    /* a mirror's vdev_pwritev gives every copy every piece */
    return vdev_pwritev(top, iov, cnt, top->data_start + off) < 0 ? -EIO : 0;
}

int vdev_discard_block(struct vdev *top, uint64_t off, uint64_t len)
{
    if (top->kind == VDEV_KIND_RAIDZ) {
        raidz_discard_block(top, off, len);
        return 0;
    }
    return vdev_discard(top, top->data_start + off, len);
}

void vdev_prefetch_block(struct vdev *top, uint64_t off, uint64_t len)
{
    if (top->kind == VDEV_KIND_RAIDZ) {
        raidz_prefetch_block(top, off, len);
        return;
    }
    if (top->kind == VDEV_KIND_MIRROR) {
        mirror_prefetch_block(top, off, len);
        return;
    }
    if (top->fd >= 0)
        (void)posix_fadvise(top->fd, (off_t)(top->data_start + off), (off_t)len,
                            POSIX_FADV_WILLNEED);
}

static bool in_range(const struct vdev *v, size_t len, uint64_t off)
{
    return off <= v->size && len <= v->size - off;
}

int vdev_pread(struct vdev *v, void *buf, size_t len, uint64_t off)
{
    int r;
    if (v->kind != VDEV_KIND_LEAF)
        return mirror_pread(v, buf, len, off);
    if (v->fd < 0)
        return -ENXIO;
    if (!in_range(v, len, off))
        r = -EINVAL;
    else if (atomic_load(&v->fail_reads))
        r = -EIO;
    else
        r = pread_full(v->fd, buf, len, off);
    if (r < 0) {
        atomic_fetch_add(&v->ctr.read_errors, 1);
        return r;
    }
    atomic_fetch_add(&v->ctr.reads, 1);
    atomic_fetch_add(&v->ctr.bytes_read, len);
    return 0;
}

int vdev_read_blocks_raw(struct vdev *top, const struct iovec *iov, int cnt, uint64_t off)
{
    if (top->kind != VDEV_KIND_LEAF)
        return -ENOTSUP;
    size_t len = 0;
    for (int i = 0; i < cnt; i++)
        len += iov[i].iov_len;
    off += top->data_start;
    /* any failure (fault injection too) is left to the per-block path,
     * which reads, counts and reports it */
    if (top->fd < 0 || cnt < 1 || cnt > VDEV_IOV_MAX || !in_range(top, len, off) ||
        atomic_load(&top->fail_reads))
        return -EIO;
    ssize_t r = preadv(top->fd, iov, cnt, (off_t)off);
    if (r < 0 || (size_t)r != len)
        return -EIO;
    atomic_fetch_add(&top->ctr.reads, 1);
    atomic_fetch_add(&top->ctr.bytes_read, len);
    return 0;
}

/* Decide whether this write is the torn one: returns true exactly once, for
 * the write that takes the countdown from 1 to 0. */
static bool take_torn_turn(struct vdev *v)
{
    int64_t t = atomic_load(&v->torn_after);
    while (t > 0) {
        if (atomic_compare_exchange_weak(&v->torn_after, &t, t - 1))
            return t == 1;
    }
    return false;
}

static bool writes_dead(struct vdev *v)
{
    return atomic_load(&v->fail_writes) || atomic_load(&v->torn_done);
}

int vdev_pwrite(struct vdev *v, const void *buf, size_t len, uint64_t off)
{
    int r;
    if (v->kind != VDEV_KIND_LEAF)
        return mirror_pwrite(v, buf, len, off);
    if (v->fd < 0)
        return -ENXIO;
    if (!in_range(v, len, off)) {
        r = -EINVAL;
    } else if (writes_dead(v)) {
        r = -EIO;
    } else if (take_torn_turn(v)) {
        /* A power cut mid-write: the first half (whole 512-byte sectors)
         * reaches the medium, the rest and everything after does not. */
        size_t half = (len / 2) & ~(size_t)511;
        atomic_store(&v->torn_done, true);
        if (half)
            (void)pwrite_full(v->fd, buf, half, off);
        r = -EIO;
    } else {
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        r = leaf_writev(v, &iov, 1, off);
    }
    if (r < 0) {
        atomic_fetch_add(&v->ctr.write_errors, 1);
        return r;
    }
    atomic_fetch_add(&v->ctr.writes, 1);
    atomic_fetch_add(&v->ctr.bytes_written, len);
    return 0;
}

int vdev_pwritev(struct vdev *v, const struct iovec *iov, int cnt, uint64_t off)
{
    if (v->kind != VDEV_KIND_LEAF) /* every copy gets all pieces, failing leaves marked */
        return mirror_pwritev(v, iov, cnt, off);
    size_t len = 0;
    for (int i = 0; i < cnt; i++)
        len += iov[i].iov_len;
    if (cnt == 1)
        return vdev_pwrite(v, iov[0].iov_base, len, off);
    struct iovec w[VDEV_IOV_MAX];
    int r;
    if (cnt < 1 || cnt > VDEV_IOV_MAX) {
        r = -EINVAL;
    } else if (!in_range(v, len, off)) {
        r = -EINVAL;
    } else if (writes_dead(v)) {
        r = -EIO;
    } else if (take_torn_turn(v)) {
        /* as in vdev_pwrite: the first half of the bytes lands */
        size_t half = (len / 2) & ~(size_t)511;
        int n = 0;
        atomic_store(&v->torn_done, true);
        for (size_t left = half; left > 0 && n < cnt; n++) {
            w[n] = iov[n];
            if (w[n].iov_len > left)
                w[n].iov_len = left;
            left -= w[n].iov_len;
        }
        if (half)
            (void)pwritev_full(v->fd, w, n, off);
        r = -EIO;
    } else {
        memcpy(w, iov, (size_t)cnt * sizeof *w);
        r = leaf_writev(v, w, cnt, off);
    }
    if (r < 0) {
        atomic_fetch_add(&v->ctr.write_errors, 1);
        return r;
    }
    atomic_fetch_add(&v->ctr.writes, 1);
    atomic_fetch_add(&v->ctr.bytes_written, len);
    return 0;
}

int vdev_flush(struct vdev *v)
{
    if (v->kind == VDEV_KIND_MIRROR)
        return mirror_flush(v);
    if (v->kind == VDEV_KIND_RAIDZ)
        return raidz_flush(v);
    if (v->fd < 0)
        return -ENXIO;
    if (writes_dead(v)) {
        atomic_fetch_add(&v->ctr.write_errors, 1);
        return -EIO;
    }
    if (v->readonly)
        return 0;
    if (fdatasync(v->fd) != 0) {
        int e = errno;
        atomic_fetch_add(&v->ctr.write_errors, 1);
        atomic_fetch_add(&v->flush_failures, 1);
        return -e;
    }
    return 0;
}

void vdev_writeback_hint(struct vdev *v, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < v->nchild; i++)
        if (vdev_usable(v->child[i]))
            vdev_writeback_hint(v->child[i], off, len);
    if (v->fd < 0 || v->readonly || writes_dead(v))
        return;
    /* SYNC_FILE_RANGE_WRITE queues the dirty pages for writeback and does
     * not wait for them (it may wait for a free slot in the device queue);
     * the page cache keeps them readable as before. */
    (void)sync_file_range(v->fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
}

int vdev_discard(struct vdev *v, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    if (v->kind != VDEV_KIND_LEAF)
        return mirror_discard(v, off, len);
    if (v->fd < 0)
        return -ENXIO;
    if (!in_range(v, len, off))
        return -EINVAL;
    if (v->readonly)
        return -EROFS;
    /* Discarding changes what the device holds: after a simulated power
     * cut it must not happen any more than a write. */
    if (writes_dead(v))
        return -EIO;
    int r;
    if (v->is_blockdev) {
        uint64_t range[2] = {off, len};
        r = ioctl(v->fd, BLKDISCARD, range);
    } else {
        r = fallocate(v->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
    }
    if (r == 0)
        return 0;
    int e = errno;
    if (e == EOPNOTSUPP || e == ENOTTY || e == ENOSYS || e == EINVAL)
        return 0; /* the device cannot give space back: not a pool error */
    return -e;
}

static int parse_onoff(const char *s, bool *out)
{
    if (strcmp(s, "on") == 0 || strcmp(s, "1") == 0)
        *out = true;
    else if (strcmp(s, "off") == 0 || strcmp(s, "0") == 0)
        *out = false;
    else
        return -EINVAL;
    return 0;
}

/* Overwrite [off, off+len) of the data area with garbage behind the
 * engine's back (bit rot, a misdirected write): no counter moves. */
static int corrupt_range(struct vdev *v, const char *val, struct berr *err)
{
    char *end;
    errno = 0;
    unsigned long long off = strtoull(val, &end, 0), len = 0;
    if (errno == 0 && *end == ':')
        len = strtoull(end + 1, &end, 0);
    if (errno || *end || len == 0 || len > (64ULL << 20) || off > v->data_size ||
        len > v->data_size - off)
        return berr_set(err, EINVAL, "corrupt takes OFFSET:LEN inside the data area (%llu "
                        "bytes), LEN at most 64 MiB, not '%s'", (unsigned long long)v->data_size,
                        val);
    if (v->fd < 0)
        return berr_set(err, ENXIO, "%s is not open", v->path);
    _cleanup_free_ uint8_t *junk = malloc(len);
    if (!junk)
        return berr_set(err, ENOMEM, "out of memory");
    uint64_t x = off * 0x9e3779b97f4a7c15ULL + 0x1234567;
    for (unsigned long long i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        junk[i] = (uint8_t)(x >> 24);
    }
    int r = pwrite_full(v->fd, junk, len, v->data_start + off);
    if (r < 0)
        return berr_set(err, -r, "cannot corrupt %s: %s", v->path, strerror(-r));
    return 0;
}

int vdev_debug(struct vdev *v, const char *knob, struct berr *err)
{
    static const char valid[] = "valid knobs: torn_write_after=N, fail_reads=on|off, "
                                "fail_writes=on|off, fail_label_writes=on|off|N, "
                                "corrupt=OFFSET:LEN, reset";
    const char *eq = knob ? strchr(knob, '=') : NULL;
    bool b;

    if (knob && strcmp(knob, "reset") == 0) {
        atomic_store(&v->torn_after, 0);
        atomic_store(&v->torn_done, false);
        atomic_store(&v->fail_reads, false);
        atomic_store(&v->fail_writes, false);
        atomic_store(&v->fail_label_writes, 0);
        return 0;
    }
    if (!eq)
        return berr_set(err, EINVAL, "unknown fault injection knob '%s': %s",
                        knob ? knob : "", valid);
    size_t nlen = (size_t)(eq - knob);
    const char *val = eq + 1;
    if (nlen == 16 && strncmp(knob, "torn_write_after", nlen) == 0) {
        uint64_t n;
        int r = parse_u64(val, 0, INT64_MAX, &n, err);
        if (r < 0)
            return berr_wrap(err, "torn_write_after");
        /* 0 turns the knob off; N >= 1 tears the N-th write from now. */
        atomic_store(&v->torn_after, (int64_t)n);
        return 0;
    }
    if (nlen == 7 && strncmp(knob, "corrupt", nlen) == 0)
        return corrupt_range(v, val, err);
    if (nlen == 10 && strncmp(knob, "fail_reads", nlen) == 0) {
        if (parse_onoff(val, &b) < 0)
            return berr_set(err, EINVAL, "fail_reads takes on or off, not '%s'", val);
        atomic_store(&v->fail_reads, b);
        return 0;
    }
    if (nlen == 11 && strncmp(knob, "fail_writes", nlen) == 0) {
        if (parse_onoff(val, &b) < 0)
            return berr_set(err, EINVAL, "fail_writes takes on or off, not '%s'", val);
        atomic_store(&v->fail_writes, b);
        return 0;
    }
    if (nlen == 17 && strncmp(knob, "fail_label_writes", nlen) == 0) {
        /* on: every label write fails; N: the next N (a transient failure:
         * pool_vdev.c retries some once); a number is always a count here,
         * so 1 is one write, not on as for the other knobs */
        uint64_t n;
        struct berr ignore = {0};
        if (strcmp(val, "on") == 0)
            atomic_store(&v->fail_label_writes, -1);
        else if (strcmp(val, "off") == 0)
            atomic_store(&v->fail_label_writes, 0);
        else if (parse_u64(val, 0, INT64_MAX, &n, &ignore) == 0)
            atomic_store(&v->fail_label_writes, (int64_t)n);
        else
            return berr_set(err, EINVAL, "fail_label_writes takes on, off or N (fail the "
                            "next N label writes, 0 is off), not '%s'", val);
        return 0;
    }
    return berr_set(err, EINVAL, "unknown fault injection knob '%s': %s", knob, valid);
}
