/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Volume I/O for the VM supervisor (src/vm knows no engine): size, read
 * and durable write of POOL/VOL through the pool table, used to keep the
 * swtpm state on its tpmstate0 volume and to check a VM's volumes before
 * it starts. */
#include "api/handlers.h"
#include "vm/swtpm.h"

#include <string.h>

static int with_vol(struct api_ctx *ctx, const char *pool, const char *vol, bs_vol **v,
                    struct berr *err)
{
    pooltab_rdlock(ctx->pools);
    struct pool_entry *e = pooltab_find(ctx->pools, pool);
    int r;
    if (!e)
        r = berr_set(err, ENOENT, "pool '%s' does not exist", pool);
    else if (!e->pool)
        r = berr_set(err, API_EUNAVAIL, "pool '%s' is UNAVAIL: %s", pool, e->error);
    else if ((r = bs_vol_open(e->pool, vol, v, err)) == -ENOENT)
        r = berr_set(err, ENOENT, "volume %s/%s does not exist", pool, vol);
    if (r < 0)
        pooltab_unlock(ctx->pools);
    return r; /* on success the read lock stays held until done() */
}

static void done(struct api_ctx *ctx, bs_vol *v)
{
    bs_vol_close(v);
    pooltab_unlock(ctx->pools);
}

static int st_size(void *opaque, const char *pool, const char *vol, uint64_t *size,
                   struct berr *err)
{
    struct api_ctx *ctx = opaque;
    pooltab_rdlock(ctx->pools);
    struct pool_entry *e = pooltab_find(ctx->pools, pool);
    struct bs_vol_props p;
    int r;
    if (!e)
        r = berr_set(err, ENOENT, "pool '%s' does not exist", pool);
    else if (!e->pool)
        r = berr_set(err, API_EUNAVAIL, "pool '%s' is UNAVAIL: %s", pool, e->error);
    else if ((r = bs_vol_get(e->pool, vol, &p, err)) == -ENOENT)
        r = berr_set(err, ENOENT, "volume %s/%s does not exist", pool, vol);
    else if (r == 0 && p.encrypted && !p.keyloaded)
        r = berr_set(err, EACCES, "volume %s/%s is encrypted and its key is not loaded: run "
                     "'berth key load %s/%s' first", pool, vol, pool, vol);
    else if (r == 0)
        *size = p.volsize;
    pooltab_unlock(ctx->pools);
    return r;
}

static int st_read(void *opaque, const char *pool, const char *vol, void *buf, size_t len,
                   uint64_t off, struct berr *err)
{
    struct api_ctx *ctx = opaque;
    bs_vol *v;
    int r = with_vol(ctx, pool, vol, &v, err);
    if (r < 0)
        return r;
    if (off + len > bs_vol_size(v))
        r = berr_set(err, EINVAL, "volume %s/%s is smaller than %llu bytes", pool, vol,
                     (unsigned long long)(off + len));
    else if ((r = bs_vol_pread(v, buf, len, off)) < 0)
        berr_errno(err, -r, "read of %s/%s", pool, vol);
    done(ctx, v);
    return r;
}

static int st_write(void *opaque, const char *pool, const char *vol, const void *buf,
                    size_t len, uint64_t off, struct berr *err)
{
    struct api_ctx *ctx = opaque;
    bs_vol *v;
    int r = with_vol(ctx, pool, vol, &v, err);
    if (r < 0)
        return r;
    if (off + len > bs_vol_size(v))
        r = berr_set(err, EINVAL, "volume %s/%s is smaller than %llu bytes", pool, vol,
                     (unsigned long long)(off + len));
    else if ((r = bs_vol_pwrite(v, buf, len, off, BS_IO_FUA)) < 0)
        berr_errno(err, -r, "write to %s/%s", pool, vol);
    done(ctx, v);
    return r;
}

void api_vm_store_ops(struct api_ctx *ctx, struct vm_store_ops *ops)
{
    memset(ops, 0, sizeof(*ops));
    ops->opaque = ctx;
    ops->vol_size = st_size;
    ops->vol_read = st_read;
    ops->vol_write = st_write;
}
