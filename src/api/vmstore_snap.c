/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Engine side of VM snapshots, rollback and clones: struct vm_snap_ops
 * (src/vm/vm_snap.h) over the pool table.  A full clone copies a snapshot
 * into a new volume here, block by block, skipping holes and zeros. */
#include "api/handlers.h"
#include "common/log.h"
#include "common/util.h"
#include "vm/vm_snap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COPY_CHUNK (1u << 20)
#define COPY_WINDOW (256ull << 20) /* block status asked per window */
#define ROLLBACK_BUSY_MS 5000      /* QEMU's NBD handles close shortly after it exits */

/* The pool, with the table read-locked on success (unlock when done). */
static int pool_get(struct api_ctx *ctx, const char *pool, bs_pool **p, struct berr *err)
{
    pooltab_rdlock(ctx->pools);
    struct pool_entry *e = pooltab_find(ctx->pools, pool);
    if (e && e->pool) {
        *p = e->pool;
        return 0;
    }
    pooltab_unlock(ctx->pools);
    return e ? berr_set(err, API_EUNAVAIL, "pool '%s' is UNAVAIL: %s", pool, e->error)
             : berr_set(err, ENOENT, "pool '%s' does not exist", pool);
}

static void full_name(char *buf, size_t len, const char *vol, const char *snap)
{
    snprintf(buf, len, "%s@%s", vol, snap);
}

/* One call on snapshot POOL/VOL@SNAP: its full name and its pool, the
 * table read-locked between snap_begin (success) and snap_end. */
struct snapref {
    struct api_ctx *ctx;
    bs_pool *p;
    bool locked;
    char name[BS_SNAP_NAME_MAX];
};

static int snap_begin(void *opaque, const char *pool, const char *vol, const char *snap,
                      struct snapref *s, struct berr *err)
{
    s->ctx = opaque;
    full_name(s->name, sizeof s->name, vol, snap);
    int r = pool_get(s->ctx, pool, &s->p, err);
    s->locked = r == 0;
    return r;
}

static int snap_end(struct snapref *s, int r)
{
    if (s->locked)
        pooltab_unlock(s->ctx->pools);
    s->locked = false;
    return r;
}

static int op_snap_create(void *opaque, const char *pool, const char *const *vols, size_t n,
                          const char *snap, struct berr *err)
{
    struct api_ctx *ctx = opaque;
    char(*names)[BS_SNAP_NAME_MAX] = calloc(n, sizeof(*names));
    const char **v = calloc(n, sizeof(*v));
    bs_pool *p;
    int r = names && v ? pool_get(ctx, pool, &p, err) : berr_set(err, ENOMEM, "out of memory");
    if (r == 0) {
        for (size_t i = 0; i < n; i++) {
            full_name(names[i], sizeof names[i], vols[i], snap);
            v[i] = names[i];
        }
        r = bs_snap_create(p, v, n, err);
        pooltab_unlock(ctx->pools);
    }
    free(names);
    free(v);
    return r;
}

static int op_snap_destroy(void *opaque, const char *pool, const char *vol, const char *snap,
                           struct berr *err)
{
    struct snapref s;
    int r = snap_begin(opaque, pool, vol, snap, &s, err);
    /* an NBD client reading the snapshot keeps it: say so rather than cut it off */
    if (r == 0 && (r = api_export_claim(s.ctx, pool, s.name, false, "destroy it", err)) == 0)
        r = bs_snap_destroy(s.p, s.name, 0, err);
    return snap_end(&s, r);
}

static int op_snap_info(void *opaque, const char *pool, const char *vol, const char *snap,
                        unsigned *nclones, unsigned *nholds, struct berr *err)
{
    struct snapref s;
    struct bs_snap_props sp;
    int r = snap_begin(opaque, pool, vol, snap, &s, err);
    if (r == 0 && (r = bs_snap_get(s.p, s.name, &sp, err)) == 0) {
        *nclones = sp.nclones;
        *nholds = sp.nholds;
    }
    return snap_end(&s, r);
}

static int op_rollback(void *opaque, const char *pool, const char *vol, const char *snap,
                       struct berr *err)
{
    for (unsigned waited = 0;; waited += 50) {
        struct snapref s;
        int r = snap_begin(opaque, pool, vol, snap, &s, err);
        if (r == 0 && (r = api_export_claim(s.ctx, pool, vol, false, "roll it back", err)) == 0)
            r = bs_vol_rollback(s.p, s.name, 0, err);
        snap_end(&s, r);
        /* EBUSY without NBD clients: the handles of a VM that just stopped
         * are still closing */
        if (r != -EBUSY || api_export_conns(s.ctx, pool, vol) || waited >= ROLLBACK_BUSY_MS)
            return r;
        nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
}

/* ---- full copy ---- */

struct extents {
    uint64_t (*v)[2]; /* offset, length of data */
    size_t n, cap;
};

static int extent_cb(uint64_t off, uint64_t len, unsigned flags, void *opaque)
{
    struct extents *x = opaque;
    if (flags & (BS_EXTENT_HOLE | BS_EXTENT_ZERO))
        return 0; /* reads as zeros: the new volume already does */
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        void *nv = realloc(x->v, cap * sizeof(*x->v));
        if (!nv)
            return -ENOMEM;
        x->v = nv;
        x->cap = cap;
    }
    x->v[x->n][0] = off;
    x->v[x->n][1] = len;
    x->n++;
    return 0;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Copy the data of src into dst (same size), leaving holes as holes. */
static int copy_data(bs_vol *src, bs_vol *dst, struct berr *err)
{
    uint64_t size = bs_vol_size(src);
    uint8_t *buf = malloc(COPY_CHUNK);
    struct extents x = {0};
    int r = buf ? 0 : -ENOMEM;
    for (uint64_t w = 0; r == 0 && w < size; w += COPY_WINDOW) {
        uint64_t wl = size - w < COPY_WINDOW ? size - w : COPY_WINDOW;
        x.n = 0;
        /* collect first, copy after: no I/O inside the engine's callback */
        if ((r = bs_vol_block_status(src, wl, w, extent_cb, &x)) < 0)
            break;
        for (size_t i = 0; r == 0 && i < x.n; i++) {
            for (uint64_t o = x.v[i][0]; r == 0 && o < x.v[i][0] + x.v[i][1]; o += COPY_CHUNK) {
                uint64_t end = x.v[i][0] + x.v[i][1];
                size_t l = end - o < COPY_CHUNK ? (size_t)(end - o) : COPY_CHUNK;
                if ((r = bs_vol_pread(src, buf, l, o)) == 0 && !all_zero(buf, l))
                    r = bs_vol_pwrite(dst, buf, l, o, 0);
            }
        }
    }
    if (r == 0)
        r = bs_vol_flush(dst);
    free(buf);
    free(x.v);
    return r < 0 ? berr_errno(err, -r, "copying the data") : 0;
}

static int full_copy(bs_pool *p, const char *vol, const char *snapname, const char *newvol,
                     struct berr *err)
{
    struct bs_snap_props sp;
    struct bs_vol_props vp, np;
    int r = bs_snap_get(p, snapname, &sp, err);
    if (r == 0)
        r = bs_vol_get(p, vol, &vp, err);
    if (r < 0)
        return r;
    /* the copy keeps the layout and codecs of the original */
    bs_vol_props_init(p, &np);
    snprintf(np.name, sizeof np.name, "%s", newvol);
    np.volsize = sp.volsize;
    np.volblocksize = sp.volblocksize;
    np.compression = vp.compression;
    np.compress_level = vp.compress_level;
    np.checksum = vp.checksum;
    if ((r = bs_vol_create(p, &np, vp.refreservation >= vp.volsize, err)) < 0)
        return r;
    bs_vol *src = NULL, *dst = NULL;
    if ((r = bs_vol_open(p, snapname, &src, err)) == 0 &&
        (r = bs_vol_open(p, newvol, &dst, err)) == 0)
        r = copy_data(src, dst, err);
    bs_vol_close(src);
    bs_vol_close(dst);
    if (r < 0)
        bs_vol_destroy(p, newvol, true, NULL);
    return r;
}

static int op_clone(void *opaque, const char *pool, const char *vol, const char *snap,
                    const char *newvol, bool linked, struct berr *err)
{
    struct snapref s;
    int r = snap_begin(opaque, pool, vol, snap, &s, err);
    if (r == 0)
        r = linked ? bs_vol_clone(s.p, s.name, newvol, NULL, err)
                   : full_copy(s.p, vol, s.name, newvol, err);
    if (snap_end(&s, r) < 0)
        return berr_wrap(err, "%s %s/%s -> %s/%s", linked ? "clone" : "copy", pool, s.name,
                         pool, newvol);
    return 0;
}

static int op_vol_destroy(void *opaque, const char *pool, const char *vol, struct berr *err)
{
    struct api_ctx *ctx = opaque;
    struct berr e = {0};
    bs_pool *p;
    int r = pool_get(ctx, pool, &p, &e);
    if (r == 0) {
        r = bs_vol_destroy(p, vol, true, &e);
        pooltab_unlock(ctx->pools);
    }
    if (r < 0) /* a cleanup: its failure leaves a volume behind, so say so */
        blog_err("cannot destroy volume %s/%s: %s", pool, vol, e.msg);
    if (r < 0 && err)
        *err = e;
    return r;
}

void api_vm_snap_ops(struct api_ctx *ctx, struct vm_snap_ops *ops)
{
    memset(ops, 0, sizeof(*ops));
    ops->opaque = ctx;
    ops->snap_create = op_snap_create;
    ops->snap_destroy = op_snap_destroy;
    ops->snap_info = op_snap_info;
    ops->rollback = op_rollback;
    ops->clone = op_clone;
    ops->vol_destroy = op_vol_destroy;
}
