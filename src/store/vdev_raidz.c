/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Raidz top-level vdevs: variable-width stripes of data and parity columns
 * over nchild leaves (docs/FORMAT.md, "Raidz layout"); parity math in
 * raidz_math.c.
 *
 * Layout.  The data area is an array of sectors S = 0 .. nchild * L - 1 (L
 * sectors per leaf): sector S lives on child S % nchild at row S / nchild
 * (child offset data_start + row * sector).  A block of s data sectors at
 * DVA offset off (sector b = off >> ashift) has w = nchild - nparity data
 * columns' worth of rows: q = s / w full rows, r = s % w sectors left over,
 * bc = r ? r + nparity : 0 "big" columns of q + 1 sectors, the others q.
 * Columns 0 .. nparity-1 are parity (P, Q, R), then the data columns, each
 * a contiguous slice of the block in order.  Column c starts at sector b + c
 * and its k-th sector is b + c + k * nchild (raidz1 in odd MiBs swaps the
 * places of columns 0 and 1, to spread parity), so the block fills exactly the
 * sectors [b, b + tot), tot = s + nparity * ceil(s / w); its allocation is
 * tot rounded up to a multiple of nparity + 1 (as ZFS's vdev_raidz_asize),
 * the padding ("skip") sectors written as zeros.
 *
 * Invariants:
 *  - a block's columns lie inside its own allocation [b, b + asize): blocks
 *    never share a sector, so rewriting one column heals one block only;
 *  - blocks allocated back to back occupy, on each child, one contiguous
 *    range: a batch is one pwritev per child;
 *  - a write succeeds only if at most nparity children failed (or were not
 *    usable) for it; then the failing children are FAULTED;
 *  - a read returns only bytes that matched the block checksum (and a zero
 *    tail after psize: parity covers it): the data columns as read, or a
 *    reconstruction that treats up to nparity columns
 *    (those that failed to read first, then every combination of others) as
 *    missing.  Columns found wrong are counted (checksum error on their leaf)
 *    and rewritten, under the heal fence (vdev.h heal_gen);
 *  - a scrub read reads parity too and rewrites parity that does not match
 *    the verified data. */
#include "store/vdev_raidz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/raidz_math.h"
#include "store/vdev_mirror.h"

#define RZ_MAXCHILD 32

static const uint8_t rz_zero[1u << 16]; /* a skip sector (ashift <= 16) */

struct rz_col {
    unsigned child;
    uint64_t off;  /* absolute offset on the child */
    size_t size;   /* bytes */
};

struct rz_map {
    unsigned acols;  /* columns holding sectors, parity first */
    uint64_t b;      /* first sector */
    uint64_t tot;    /* sectors of data and parity */
    uint64_t asect;  /* allocated sectors (tot + skip) */
    struct rz_col col[RZ_MAXCHILD];
};

static uint64_t rz_asect(const struct vdev *rz, uint64_t s, uint64_t *tot)
{
    uint64_t w = rz->nchild - rz->nparity, p1 = rz->nparity + 1;
    uint64_t t = s + rz->nparity * ((s + w - 1) / w);
    if (tot)
        *tot = t;
    return (t + p1 - 1) / p1 * p1;
}

uint64_t raidz_asize(const struct vdev *rz, uint64_t len)
{
    uint64_t s = (len + (1ULL << rz->ashift) - 1) >> rz->ashift;
    return rz_asect(rz, s, NULL) << rz->ashift;
}

/* The columns of the block of len bytes (a multiple of the sector) at off. */
static void rz_map(const struct vdev *rz, uint64_t off, size_t len, struct rz_map *m)
{
    unsigned n = rz->nchild, p = rz->nparity, sh = (unsigned)rz->ashift;
    uint64_t s = len >> sh, w = n - p;
    uint64_t q = s / w, r = s % w;
    unsigned bc = r ? (unsigned)r + p : 0;
    m->b = off >> sh;
    m->asect = rz_asect(rz, s, &m->tot);
    m->acols = q ? n : bc;
    unsigned first = (unsigned)(m->b % n);
    uint64_t row = m->b / n;
    for (unsigned c = 0; c < m->acols; c++) {
        unsigned ch = first + c;
        uint64_t rw = row;
        if (ch >= n) {
            ch -= n;
            rw++;
        }
        m->col[c].child = ch;
        m->col[c].off = rz->data_start + (rw << sh);
        m->col[c].size = (size_t)((q + (c < bc)) << sh);
    }
    /* raidz1 with every block of one width would put all parity on the same
     * children; as ZFS, blocks in odd MiBs swap the places of P and the
     * first data column (both are always the same size) */
    if (p == 1 && (off & (1ULL << 20))) {
        struct rz_col t = m->col[0];
        m->col[0].child = m->col[1].child;
        m->col[0].off = m->col[1].off;
        m->col[1].child = t.child;
        m->col[1].off = t.off;
    }
}

/* Point cols at the block's buffers: data columns are consecutive slices of
 * data, parity columns consecutive in par.  Returns the parity bytes used. */
static size_t rz_bufs(const struct vdev *rz, const struct rz_map *m, uint8_t *data,
                      uint8_t *par, struct raidz_col *cols)
{
    size_t d = 0, pb = 0;
    for (unsigned c = 0; c < m->acols; c++) {
        cols[c].size = m->col[c].size;
        if (c < rz->nparity) {
            cols[c].buf = par + pb;
            pb += m->col[c].size;
        } else {
            cols[c].buf = data + d;
            d += m->col[c].size;
        }
    }
    return pb;
}

static size_t rz_parity_bytes(const struct vdev *rz, const struct rz_map *m)
{
    return rz->nparity * m->col[0].size;
}

/* ---- writes ---- */

/* Gather child k's pieces of the run (columns and skip sectors, in sector
 * order) into v; *start is where they begin.  Returns the count, or -EIO if
 * they are not contiguous (a layout bug: write nothing). */
static int child_pieces(const struct vdev *rz, unsigned k, const struct rz_map *maps,
                        struct raidz_col *const *cols, int cnt, struct iovec *v,
                        uint64_t *start)
{
    unsigned n = rz->nchild, sh = (unsigned)rz->ashift;
    uint64_t next = 0;
    int nv = 0;
    for (int i = 0; i < cnt; i++) {
        const struct rz_map *m = &maps[i];
        unsigned c = 0;
        while (c < m->acols && m->col[c].child != k)
            c++;
        uint64_t off[2];
        size_t len[2];
        void *buf[2];
        int np = 0;
        if (c < m->acols) {
            off[np] = m->col[c].off;
            len[np] = m->col[c].size;
            buf[np++] = cols[i][c].buf;
        }
        /* at most one skip sector per child: asect - tot <= nparity < n */
        for (uint64_t t = m->b + m->tot; t < m->b + m->asect; t++) {
            if (t % n == k) {
                off[np] = rz->data_start + ((t / n) << sh);
                len[np] = (size_t)1 << sh;
                buf[np++] = (void *)rz_zero;
            }
        }
        for (int j = 0; j < np; j++) {
            if (nv == 0)
                *start = next = off[j];
            if (off[j] != next)
                return -EIO;
            v[nv].iov_base = buf[j];
            v[nv].iov_len = len[j];
            nv++;
            next += len[j];
        }
    }
    return nv;
}


/* Write cnt blocks allocated back to back from off (iov[i]: block i padded
 * to the sector).  A normal write (mask 0) goes to every usable child and
 * fails if more than nparity could not take it (faulting nobody), else
 * faults the failed ones.  A resilver write (mask: the children to fill)
 * goes to those only; one that fails is FAULTED and the call -EIO;
 * *written += the bytes written. */
static int rz_write(struct vdev *rz, const struct iovec *iov, int cnt, uint64_t off, uint32_t mask,
                    uint64_t *written)
{
    if (cnt < 1 || cnt > VDEV_IOV_MAX)
        return -EINVAL;
    _cleanup_free_ struct rz_map *maps = calloc((size_t)cnt, sizeof *maps);
    _cleanup_free_ struct raidz_col *colmem = calloc((size_t)cnt * rz->nchild, sizeof *colmem);
    _cleanup_free_ struct raidz_col **cols = calloc((size_t)cnt, sizeof *cols);
    /* each child's pieces: at most a column and a skip sector per block */
    _cleanup_free_ struct iovec *v = calloc(2 * (size_t)cnt * rz->nchild, sizeof *v);
    if (!maps || !colmem || !cols || !v)
        return -ENOMEM;
    size_t pbytes = 0;
    for (int i = 0; i < cnt; i++) {
        rz_map(rz, off, iov[i].iov_len, &maps[i]);
        off += maps[i].asect << rz->ashift;
        pbytes += rz_parity_bytes(rz, &maps[i]);
    }
    _cleanup_free_ uint8_t *par = malloc(pbytes ? pbytes : 1);
    if (!par)
        return -ENOMEM;
    size_t pused = 0;
    for (int i = 0; i < cnt; i++) {
        cols[i] = colmem + (size_t)i * rz->nchild;
        pused += rz_bufs(rz, &maps[i], iov[i].iov_base, par + pused, cols[i]);
        if (raidz_generate(rz->nparity, cols[i], maps[i].acols) < 0)
            return -EIO;
    }
    bool failed[RZ_MAXCHILD] = {false};
    unsigned bad = 0, nj = 0, who[RZ_MAXCHILD];
    struct leaf_job jobs[RZ_MAXCHILD];
    for (unsigned k = 0; k < rz->nchild; k++) {
        struct vdev *l = rz->child[k];
        if (mask && (!(mask >> k & 1) || !vdev_usable(l)))
            continue;
        uint64_t start = 0;
        struct iovec *cv = v + 2 * (size_t)cnt * k;
        int nv = child_pieces(rz, k, maps, cols, cnt, cv, &start);
        if (nv < 0)
            return nv;
        if (nv == 0)
            continue;
        if (!vdev_usable(l)) {
            bad++;
            continue;
        }
        jobs[nj] = (struct leaf_job){.l = l, .v = cv, .nv = nv, .off = start};
        who[nj++] = k;
    }
    leaf_jobs_run(jobs, nj);
    for (unsigned j = 0; j < nj; j++) {
        if (jobs[j].r < 0) {
            failed[who[j]] = true;
            bad++;
        } else if (written) {
            for (int i = 0; i < jobs[j].nv; i++)
                *written += jobs[j].v[i].iov_len;
        }
    }
    if (mask) {
        if (bad)
            vdev_fault_failed(rz, failed);
        return bad ? -EIO : 0;
    }
    if (bad > rz->nparity)
        return -EIO; /* not readable back: the txg fails, nobody is faulted */
    vdev_fault_failed(rz, failed);
    return 0;
}

int raidz_write_blocks(struct vdev *rz, const struct iovec *iov, int cnt, uint64_t off)
{
    return rz_write(rz, iov, cnt, off, 0, NULL);
}

int raidz_resilver_write_blocks(struct vdev *rz, const struct iovec *iov, int cnt, uint64_t off,
                                uint32_t mask, uint64_t *written)
{
    if (!mask)
        return 0;
    if (cnt < 1 || cnt > VDEV_IOV_MAX || off > rz->data_size)
        return -EIO;
    uint64_t end = off;
    for (int i = 0; i < cnt; i++)
        if (iov[i].iov_len == 0 || (end += raidz_asize(rz, iov[i].iov_len)) > rz->data_size)
            return -EIO;
    return rz_write(rz, iov, cnt, off, mask, written);
}

int raidz_flush(struct vdev *rz)
{
    bool failed[RZ_MAXCHILD] = {false};
    unsigned bad = 0;
    for (unsigned k = 0; k < rz->nchild; k++) {
        struct vdev *l = rz->child[k];
        if (!vdev_usable(l))
            bad++;
        else if (vdev_flush(l) < 0)
            failed[k] = true, bad++;
    }
    if (bad > rz->nparity)
        return -EIO;
    vdev_fault_failed(rz, failed);
    return 0;
}

/* ---- reads ---- */

struct rz_read {
    struct vdev *rz;
    struct vdev_rio *rq;
    struct rz_map m;
    struct raidz_col cols[RZ_MAXCHILD];
    uint8_t *data;           /* the data columns, back to back */
    bool err[RZ_MAXCHILD];   /* column not read (leaf unusable or read error) */
    bool read[RZ_MAXCHILD];  /* read attempted (or the leaf is unusable) */
    uint8_t *orig;           /* the columns as read, each at ooff[c] */
    size_t ooff[RZ_MAXCHILD];
};

static void read_col(struct rz_read *x, unsigned c)
{
    struct vdev *l = x->rz->child[x->m.col[c].child];
    if (!x->rq->scrub && vdev_usable(l) && vdev_dtl_has(l, x->rq->birth)) {
        /* the leaf missed this block's txg and no resilver wrote it yet:
         * a missing column (reconstructed, not read, not "healed") */
        x->read[c] = false;
        x->err[c] = true;
        return;
    }
    x->read[c] = true;
    x->err[c] = !vdev_usable(l) ||
                vdev_pread(l, x->cols[c].buf, x->cols[c].size, x->m.col[c].off) < 0;
}

/* The data is the block: it matches the checksum and the padding after
 * psize (which parity covers, the checksum not) is zero as written. */
static bool verified(struct rz_read *x)
{
    size_t dlen = ROUND_UP(x->rq->psize, (size_t)1 << x->rz->ashift);
    for (size_t i = x->rq->psize; i < dlen; i++)
        if (x->data[i])
            return false;
    return x->rq->verify(x->rq->vctx, x->data, x->rq->psize);
}

static bool data_ok(struct rz_read *x)
{
    for (unsigned c = x->rz->nparity; c < x->m.acols; c++)
        if (x->err[c])
            return false;
    return verified(x);
}

static void restore(struct rz_read *x, const unsigned *cs, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        memcpy(x->cols[cs[i]].buf, x->orig + x->ooff[cs[i]], x->cols[cs[i]].size);
}

/* Try M = the unread columns plus every combination of up to nparity of
 * the others as missing; true when a reconstruction verified (x->cols then
 * hold it). */
static bool reconstruct(struct rz_read *x)
{
    unsigned p = x->rz->nparity, acols = x->m.acols;
    unsigned miss[RAIDZ_MAXPARITY], nk = 0, cand[RZ_MAXCHILD], ncand = 0;
    for (unsigned c = 0; c < acols; c++) {
        if (!x->err[c])
            cand[ncand++] = c;
        else if (nk < p)
            miss[nk++] = c;
        else
            return false; /* more columns lost than parity */
    }
    for (unsigned t = 0; t + nk <= p; t++) {
        unsigned idx[RAIDZ_MAXPARITY];
        if (t > ncand)
            break;
        for (unsigned i = 0; i < t; i++)
            idx[i] = i;
        for (;;) {
            unsigned all[RAIDZ_MAXPARITY], na = nk;
            bool anydata = false;
            memcpy(all, miss, nk * sizeof *all);
            for (unsigned i = 0; i < t; i++)
                all[na++] = cand[idx[i]];
            for (unsigned i = 0; i < na; i++)
                anydata |= all[i] >= p;
            if (anydata && raidz_reconstruct(p, x->cols, acols, all, na) == 0 && verified(x))
                return true;
            if (anydata)
                restore(x, all, na);
            /* next combination of t out of ncand */
            int i = (int)t - 1;
            while (i >= 0 && idx[i] == ncand - t + (unsigned)i)
                i--;
            if (i < 0)
                break;
            idx[i]++;
            for (unsigned j = (unsigned)i + 1; j < t; j++)
                idx[j] = idx[j - 1] + 1;
        }
    }
    return false;
}

/* x->cols hold verified data: regenerate parity, count and rewrite every
 * column that differs from what was read or could not be read. */
static void heal(struct rz_read *x)
{
    struct vdev *rz = x->rz;
    bool bad[RZ_MAXCHILD] = {false}, any = false;
    (void)raidz_generate(rz->nparity, x->cols, x->m.acols);
    for (unsigned c = 0; c < x->m.acols; c++) {
        struct vdev *l = rz->child[x->m.col[c].child];
        if (!x->read[c])
            continue;
        if (x->err[c]) {
            bad[c] = vdev_usable(l);
        } else if (memcmp(x->cols[c].buf, x->orig + x->ooff[c], x->cols[c].size) != 0) {
            atomic_fetch_add(&l->ctr.checksum_errors, 1);
            bad[c] = true;
        }
        any |= bad[c];
    }
    if (!any)
        return;
    pthread_rwlock_rdlock(&rz->heal_lock);
    if (atomic_load(&rz->heal_gen) == x->rq->gen) {
        for (unsigned c = 0; c < x->m.acols; c++) {
            struct vdev *l = rz->child[x->m.col[c].child];
            if (!bad[c] || !vdev_usable(l) || l->readonly)
                continue;
            if (vdev_pwrite(l, x->cols[c].buf, x->cols[c].size, x->m.col[c].off) == 0)
                atomic_fetch_add(&l->ctr.repaired_bytes, x->cols[c].size);
        }
    }
    pthread_rwlock_unlock(&rz->heal_lock);
}

int raidz_read_block(struct vdev *rz, struct vdev_rio *rq)
{
    size_t sector = (size_t)1 << rz->ashift;
    size_t dlen = ROUND_UP(rq->psize, sector);
    /* a pointer whose sizes do not describe one raidz allocation is not
     * ours to read (nor to heal: its columns might be another block's) */
    if (rq->psize == 0 || raidz_asize(rz, dlen) != rq->asize || rq->off > rz->data_size ||
        rq->asize > rz->data_size - rq->off) {
        atomic_fetch_add(&rz->ctr.checksum_errors, 1);
        return -EIO;
    }
    struct rz_read x = {.rz = rz, .rq = rq};
    rz_map(rz, rq->off, dlen, &x.m);
    size_t pbytes = rz_parity_bytes(rz, &x.m), total = dlen + pbytes;
    _cleanup_free_ uint8_t *own = NULL, *orig = NULL;
    _cleanup_free_ uint8_t *par = malloc(pbytes);
    uint8_t *data = rq->buf;
    if (dlen != rq->psize && !(data = own = malloc(dlen)))
        return -ENOMEM;
    if (!par)
        return -ENOMEM;
    x.data = data;
    rz_bufs(rz, &x.m, data, par, x.cols);
    unsigned p = rz->nparity;
    for (unsigned c = p; c < x.m.acols; c++)
        read_col(&x, c);
    bool good = data_ok(&x);
    if (good && !rq->scrub)
        goto done;
    for (unsigned c = 0; c < p; c++)
        read_col(&x, c);
    orig = x.orig = malloc(total);
    if (!orig)
        return -ENOMEM;
    size_t o = 0;
    for (unsigned c = 0; c < x.m.acols; c++) {
        x.ooff[c] = o;
        memcpy(orig + o, x.cols[c].buf, x.cols[c].size);
        o += x.cols[c].size;
    }
    if (!good && !reconstruct(&x)) {
        atomic_fetch_add(&rz->ctr.checksum_errors, 1);
        return -EIO;
    }
    heal(&x);
done:
    if (own)
        memcpy(rq->buf, own, rq->psize);
    return 0;
}

/* ---- space ---- */

void raidz_discard_block(struct vdev *rz, uint64_t off, uint64_t len)
{
    unsigned n = rz->nchild, sh = (unsigned)rz->ashift;
    uint64_t s0 = off >> sh, s1 = (off + len) >> sh;
    if (s1 <= s0)
        return;
    for (unsigned k = 0; k < n; k++) {
        struct vdev *l = rz->child[k];
        /* the first and last sectors of child k in [s0, s1) */
        uint64_t t0 = s0 + (k + n - s0 % n) % n;
        uint64_t t1 = (s1 - 1) - ((s1 - 1) % n + n - k) % n;
        if (t0 >= s1 || t1 < t0 || !vdev_usable(l))
            continue;
        (void)vdev_discard(l, rz->data_start + ((t0 / n) << sh),
                           ((t1 / n - t0 / n) + 1) << sh);
    }
}

void raidz_prefetch_block(struct vdev *rz, uint64_t off, uint64_t len)
{
    unsigned n = rz->nchild, sh = (unsigned)rz->ashift;
    uint64_t s = (len + (1ULL << sh) - 1) >> sh, tot;
    (void)rz_asect(rz, s, &tot);
    uint64_t b = off >> sh, r0 = b / n, r1 = (b + tot - 1) / n;
    for (unsigned k = 0; k < n; k++) {
        struct vdev *l = rz->child[k];
        /* not a leaf with a DTL: reads skip it (a resilver's target) */
        if (vdev_usable(l) && l->fd >= 0 && !vdev_dtl_has(l, 0))
            (void)posix_fadvise(l->fd, (off_t)(rz->data_start + (r0 << sh)),
                                (off_t)((r1 - r0 + 1) << sh), POSIX_FADV_WILLNEED);
    }
}

/* ---- resilver ---- */

int raidz_resilver_write(struct vdev *rz, const void *data, size_t psize, uint64_t off,
                         uint32_t mask, uint64_t *written)
{
    size_t dlen = ROUND_UP(psize, (size_t)1 << rz->ashift);
    if (psize == 0)
        return -EIO;
    _cleanup_free_ uint8_t *buf = calloc(1, dlen);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, data, psize);
    struct iovec iov = {.iov_base = buf, .iov_len = dlen};
    return raidz_resilver_write_blocks(rz, &iov, 1, off, mask, written);
}
