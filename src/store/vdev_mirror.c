/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Mirror top-level vdevs: N leaves holding the same bytes at the same
 * offsets (labels and bitmap included; only each leaf's label header
 * differs, by its own guid and index).  A raidz's metadata region (labels,
 * bitmap) is mirrored the same way by the functions here; its data area is
 * vdev_raidz.c's.
 *
 * Invariants:
 *  - a write (block, bitmap chunk, uberblock) goes to every ONLINE leaf and
 *    succeeds if at least one leaf took it; a leaf that failed while another
 *    succeeded becomes FAULTED and receives no I/O until bs_pool_online
 *    (then it is `stale`: it missed txgs, its DTL says which, and a
 *    resilver copies them; normal reads skip it for blocks born then).  When
 *    every leaf fails, none is faulted (reads go on) and the write fails, so
 *    the txg never commits;
 *  - a block is returned only after one copy matched its checksum; copies
 *    that failed to read or verify are counted on their leaf and rewritten
 *    from the good copy, but only while the block's sectors cannot have been
 *    reallocated (heal_gen unchanged, see vdev.h);
 *  - reads rotate over the ONLINE leaves by offset (so random reads spread
 *    over all of them), trying stale leaves last;
 *  - metadata reads (labels, bitmap slots) carry their own checksums, which
 *    this layer cannot check: they come from the first non-stale leaf that
 *    reads without error, and the caller's validation falls back from there
 *    (another label copy, or a rebuild of the allocation map). */
#include "store/vdev_mirror.h"
#include "store/vdev_raidz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"

#define MIRROR_MAX 32

int vdev_mirror_new(struct vdev **leaves, unsigned n, struct vdev **out, struct berr *err)
{
    *out = NULL;
    if (n > MIRROR_MAX) {
        for (unsigned i = 0; i < n; i++)
            vdev_close(leaves[i]);
        return berr_set(err, EINVAL, "at most %d devices per vdev", MIRROR_MAX);
    }
    struct vdev *m = calloc(1, sizeof(*m));
    /* room for 32: attach appends while readers walk the array */
    struct vdev **kids = calloc(MIRROR_MAX, sizeof(*kids));
    if (!m || !kids || !(m->path = strdup("mirror-0"))) {
        free(m);
        free(kids);
        for (unsigned i = 0; i < n; i++)
            vdev_close(leaves[i]);
        return berr_set(err, ENOMEM, "out of memory");
    }
    memcpy(kids, leaves, n * sizeof(*kids));
    m->kind = VDEV_KIND_MIRROR;
    m->fd = -1;
    m->child = kids;
    m->nchild = n;
    m->phys_sector_shift = 9;
    pthread_rwlock_init(&m->heal_lock, NULL);
    for (unsigned i = 0; i < n; i++) {
        struct vdev *c = kids[i];
        if (c->fd < 0)
            continue;
        if (m->size == 0 || c->size < m->size)
            m->size = c->size;
        if (c->phys_sector_shift > m->phys_sector_shift)
            m->phys_sector_shift = c->phys_sector_shift;
        m->is_blockdev |= c->is_blockdev;
    }
    vdev_top_state(m);
    *out = m;
    return 0;
}

int vdev_raidz_new(struct vdev **leaves, unsigned n, unsigned nparity, struct vdev **out,
                   struct berr *err)
{
    if (nparity < 1 || nparity > 3 || n < nparity + 1 || n > MIRROR_MAX) {
        for (unsigned i = 0; i < n; i++)
            vdev_close(leaves[i]);
        return berr_set(err, EINVAL, "raidz%u needs %u to %d devices (got %u)", nparity,
                        nparity + 1, MIRROR_MAX, n);
    }
    /* the same tree as a mirror (size, sector, metadata), other data area */
    int r = vdev_mirror_new(leaves, n, out, err);
    if (r < 0)
        return r;
    struct vdev *z = *out;
    char name[16];
    snprintf(name, sizeof name, "raidz%u-0", nparity);
    char *nm = strdup(name);
    if (!nm) {
        vdev_close(z);
        *out = NULL;
        return berr_set(err, ENOMEM, "out of memory");
    }
    free(z->path);
    z->path = nm;
    z->kind = VDEV_KIND_RAIDZ;
    z->nparity = nparity;
    vdev_top_state(z);
    return 0;
}

enum vdev_state vdev_top_state(struct vdev *top)
{
    if (top->kind == VDEV_KIND_LEAF)
        return (enum vdev_state)atomic_load(&top->state);
    unsigned usable = 0, fresh = 0;
    for (unsigned i = 0; i < top->nchild; i++) {
        if (!vdev_usable(top->child[i]))
            continue;
        usable++;
        fresh += !atomic_load(&top->child[i]->stale);
    }
    /* a mirror needs one leaf, a raidz all but nparity */
    unsigned need = top->kind == VDEV_KIND_RAIDZ ? top->nchild - top->nparity : 1;
    enum vdev_state s = fresh == top->nchild ? VDEV_STATE_ONLINE
                        : usable < need     ? VDEV_STATE_FAULTED
                                            : VDEV_STATE_DEGRADED;
    atomic_store(&top->state, (int)s);
    return s;
}

/* The usable leaves in the order to read them: rotated by `start`, stale
 * ones last; unless `all`, none whose DTL holds `birth` (it lacks the
 * block: the resilver has not copied it yet).  Returns their count. */
static unsigned read_order(struct vdev *m, unsigned start, unsigned *order, uint64_t birth,
                           bool all)
{
    unsigned k = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned j = 0; j < m->nchild; j++) {
            struct vdev *c = m->child[(start + j) % m->nchild];
            if (vdev_usable(c) && atomic_load(&c->stale) == (pass == 1) &&
                (all || !vdev_dtl_has(c, birth)))
                order[k++] = (start + j) % m->nchild;
        }
    }
    return k;
}

int mirror_pread(struct vdev *m, void *buf, size_t len, uint64_t off)
{
    unsigned order[MIRROR_MAX];
    unsigned n = read_order(m, 0, order, 0, true);
    int r = -EIO;
    for (unsigned k = 0; k < n; k++) {
        r = vdev_pread(m->child[order[k]], buf, len, off);
        if (r == 0)
            return 0;
    }
    return r;
}

void vdev_fault_failed(struct vdev *top, const bool *failed)
{
    bool changed = false;
    for (unsigned i = 0; i < top->nchild; i++) {
        int online = VDEV_STATE_ONLINE;
        if (failed[i])
            changed |= atomic_compare_exchange_strong(&top->child[i]->state, &online,
                                                      VDEV_STATE_FAULTED);
    }
    if (changed)
        vdev_top_state(top);
}

/* Fault the leaves that failed an operation others completed. */
static int settle(struct vdev *m, const bool *failed, unsigned ok)
{
    if (ok == 0)
        return -EIO;
    vdev_fault_failed(m, failed);
    return 0;
}

/* ---- writes of vectors to leaves ---- */

static void leaf_job_main(struct leaf_job *j)
{
    uint64_t off = j->off;
    j->r = 0;
    for (int k = 0; k < j->nv && j->r == 0; k += VDEV_IOV_MAX) {
        int m = MIN(j->nv - k, VDEV_IOV_MAX);
        j->r = vdev_pwritev(j->l, j->v + k, m, off);
        for (int i = k; i < k + m; i++)
            off += j->v[i].iov_len;
    }
}

void leaf_jobs_run(struct leaf_job *j, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        leaf_job_main(&j[i]);
}

int mirror_pwritev(struct vdev *m, const struct iovec *iov, int cnt, uint64_t off)
{
    struct leaf_job j[MIRROR_MAX];
    unsigned idx[MIRROR_MAX], n = 0;
    for (unsigned i = 0; i < m->nchild; i++) {
        if (!vdev_usable(m->child[i]))
            continue;
        j[n] = (struct leaf_job){.l = m->child[i], .v = iov, .nv = cnt, .off = off};
        idx[n++] = i;
    }
    leaf_jobs_run(j, n);
    bool failed[MIRROR_MAX] = {false};
    unsigned ok = 0;
    for (unsigned k = 0; k < n; k++) {
        if (j[k].r == 0)
            ok++;
        else
            failed[idx[k]] = true;
    }
    return settle(m, failed, ok);
}

int mirror_pwrite(struct vdev *m, const void *buf, size_t len, uint64_t off)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return mirror_pwritev(m, &iov, 1, off);
}

int mirror_flush(struct vdev *m)
{
    bool failed[MIRROR_MAX] = {false};
    unsigned ok = 0;
    for (unsigned i = 0; i < m->nchild; i++) {
        struct vdev *c = m->child[i];
        if (!vdev_usable(c))
            continue;
        if (vdev_flush(c) == 0)
            ok++;
        else
            failed[i] = true;
    }
    return settle(m, failed, ok);
}

int mirror_discard(struct vdev *m, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < m->nchild; i++)
        if (vdev_usable(m->child[i]))
            (void)vdev_discard(m->child[i], off, len);
    return 0;
}

/* Rewrite the copies marked bad with the verified bytes in rq->buf. */
static void repair(struct vdev *m, const struct vdev_rio *rq, const bool *bad)
{
    _cleanup_free_ uint8_t *abuf = malloc(rq->asize);
    if (!abuf)
        return;
    memcpy(abuf, rq->buf, rq->psize);
    memset(abuf + rq->psize, 0, rq->asize - rq->psize);
    pthread_rwlock_rdlock(&m->heal_lock);
    if (atomic_load(&m->heal_gen) == rq->gen) {
        for (unsigned i = 0; i < m->nchild; i++) {
            struct vdev *c = m->child[i];
            if (!bad[i] || !vdev_usable(c) || c->readonly)
                continue;
            if (vdev_pwrite(c, abuf, rq->asize, c->data_start + rq->off) == 0)
                atomic_fetch_add(&c->ctr.repaired_bytes, rq->asize);
        }
    }
    pthread_rwlock_unlock(&m->heal_lock);
}

/* The leaf a read of DVA offset off tries first: reads rotate by 1 MiB
 * regions, so sequential reads stay on one leaf and random reads spread
 * over all of them. */
static unsigned rotation(const struct vdev *m, uint64_t off)
{
    return (unsigned)(((off >> 20) * 0x9e3779b97f4a7c15ULL) >> 40) % m->nchild;
}

void mirror_prefetch_block(struct vdev *m, uint64_t off, uint64_t len)
{
    /* each 1 MiB region on the leaf its reads will go to (one without a
     * DTL: a read skips a leaf that may lack the block) */
    while (len > 0) {
        uint64_t n = MIN(len, (1ULL << 20) - (off & ((1ULL << 20) - 1)));
        unsigned order[MIRROR_MAX];
        if (read_order(m, rotation(m, off), order, 0, false) > 0) {
            struct vdev *c = m->child[order[0]];
            if (c->fd >= 0)
                (void)posix_fadvise(c->fd, (off_t)(c->data_start + off), (off_t)n,
                                    POSIX_FADV_WILLNEED);
        }
        off += n;
        len -= n;
    }
}

int mirror_read_block(struct vdev *m, struct vdev_rio *rq)
{
    unsigned order[MIRROR_MAX];
    unsigned start = rotation(m, rq->off);
    /* a scrub reads and repairs every copy, those in a DTL included; a
     * normal read skips copies a resilver has not written yet */
    unsigned n = read_order(m, start, order, rq->birth, rq->scrub);
    bool bad[MIRROR_MAX] = {false}, anybad = false;
    _cleanup_free_ uint8_t *tmp = NULL;
    bool good = false;
    for (unsigned k = 0; k < n; k++) {
        struct vdev *c = m->child[order[k]];
        uint8_t *dst = rq->buf;
        if (good) {
            if (!tmp && !(tmp = malloc(rq->psize)))
                break;
            dst = tmp;
        }
        bool ok = vdev_pread(c, dst, rq->psize, c->data_start + rq->off) == 0;
        if (ok && !rq->verify(rq->vctx, dst, rq->psize)) {
            atomic_fetch_add(&c->ctr.checksum_errors, 1);
            ok = false;
        }
        if (!ok) {
            bad[order[k]] = anybad = true;
            continue;
        }
        if (!good) {
            good = true;
            if (!rq->scrub)
                break;
        }
    }
    if (!good) {
        /* a block of this top that no copy verified (as a raidz counts it):
         * the leaves counted their own bad copies above */
        atomic_fetch_add(&m->ctr.checksum_errors, 1);
        return -EIO;
    }
    if (anybad)
        repair(m, rq, bad);
    return 0;
}

/* ---- resilver ---- */

int vdev_resilver_write(struct vdev *top, const void *data, size_t psize, size_t asize,
                        uint64_t off, uint32_t mask, uint64_t *written)
{
    if (top->kind == VDEV_KIND_RAIDZ)
        return raidz_resilver_write(top, data, psize, off, mask, written);
    if (top->kind != VDEV_KIND_MIRROR)
        return 0; /* a single leaf has no other copy to fill */
    if (psize > asize || off > top->data_size || asize > top->data_size - off)
        return -EIO;
    _cleanup_free_ uint8_t *abuf = calloc(1, asize);
    if (!abuf)
        return -ENOMEM;
    memcpy(abuf, data, psize);
    bool failed[MIRROR_MAX] = {false}, any = false;
    int ret = 0;
    for (unsigned i = 0; i < top->nchild; i++) {
        struct vdev *c = top->child[i];
        if (!(mask >> i & 1) || !vdev_usable(c))
            continue;
        if (vdev_pwrite(c, abuf, asize, c->data_start + off) < 0) {
            failed[i] = any = true;
            ret = -EIO;
        } else {
            *written += asize;
        }
    }
    if (any)
        vdev_fault_failed(top, failed);
    return ret;
}

int vdev_resilver_write_blocks(struct vdev *top, const struct iovec *iov, int cnt, uint64_t off,
                               uint32_t mask, uint64_t *written)
{
    if (top->kind == VDEV_KIND_RAIDZ)
        return raidz_resilver_write_blocks(top, iov, cnt, off, mask, written);
    if (top->kind != VDEV_KIND_MIRROR)
        return 0;
    uint64_t len = 0;
    for (int i = 0; i < cnt; i++)
        len += iov[i].iov_len;
    if (cnt < 1 || cnt > VDEV_IOV_MAX || off > top->data_size || len > top->data_size - off)
        return -EIO;
    struct leaf_job j[MIRROR_MAX];
    unsigned idx[MIRROR_MAX], n = 0;
    for (unsigned i = 0; i < top->nchild; i++) {
        struct vdev *c = top->child[i];
        if (!(mask >> i & 1) || !vdev_usable(c))
            continue;
        j[n] = (struct leaf_job){.l = c, .v = iov, .nv = cnt, .off = c->data_start + off};
        idx[n++] = i;
    }
    leaf_jobs_run(j, n);
    bool failed[MIRROR_MAX] = {false}, any = false;
    for (unsigned k = 0; k < n; k++) {
        if (j[k].r < 0)
            failed[idx[k]] = any = true;
        else
            *written += len;
    }
    if (any)
        vdev_fault_failed(top, failed);
    return any ? -EIO : 0;
}
