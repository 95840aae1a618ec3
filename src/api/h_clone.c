/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Clones, promote and rollback: the endpoints that turn a snapshot back
 * into a writable volume.  Each answers with the Volume it changed or made. */
#include "api/handlers.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

int h_snap_clone(const struct api_call *c, json_t **out, struct berr *err)
{
    const char *name = api_get_str(c->body, "name");
    json_t *props_in = json_object_get(c->body, "properties");
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    /* bs_vol_clone takes compression, checksum and readonly from props as a
     * whole, so unnamed ones start from the origin volume's, not the pool's */
    struct bs_vol_props props;
    if (props_in) {
        char origin[64];
        snprintf(origin, sizeof(origin), "%.*s", (int)(strchr(c->snap, '@') - c->snap), c->snap);
        r = bs_vol_get(e->pool, origin, &props, err);
        if (r == 0)
            r = api_vol_apply_props(props_in, &props, err);
    }
    if (r == 0)
        r = bs_vol_clone(e->pool, c->snap, name, props_in ? &props : NULL, err);
    if (r == 0) {
        blog_info("volume %s/%s cloned from %s", e->name, name, c->snap);
        r = api_get_vol(c->ctx, e, name, out, err);
    }
    pooltab_unlock(c->ctx->pools);
    return r;
}

int h_vol_rollback(const struct api_call *c, json_t **out, struct berr *err)
{
    bool force = api_get_bool(c->body, "force", false);
    char snap[BS_SNAP_NAME_MAX];
    snprintf(snap, sizeof(snap), "%s@%s", c->vol, api_get_str(c->body, "snapshot"));
    /* even force never pulls a disk from under a running guest */
    int r = api_vol_vm_check(c->ctx, c->pool, c->vol, err);
    if (r < 0)
        return r;
    struct pool_entry *e;
    r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    struct bs_snap_props sp;
    r = bs_snap_get(e->pool, snap, &sp, err);
    if (r == 0)
        r = api_export_claim(c->ctx, e->name, c->vol, force, "roll it back", err);
    if (r == 0)
        r = bs_vol_rollback(e->pool, snap, force ? BS_DESTROY_FORCE : 0, err);
    if (r == 0) {
        blog_info("volume %s/%s rolled back to %s", e->name, c->vol, snap);
        r = api_get_vol(c->ctx, e, c->vol, out, err);
    }
    pooltab_unlock(c->ctx->pools);
    return r;
}

int h_vol_promote(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    r = bs_vol_promote(e->pool, c->vol, err);
    if (r == 0) {
        blog_info("volume %s/%s promoted", e->name, c->vol);
        r = api_get_vol(c->ctx, e, c->vol, out, err);
    }
    pooltab_unlock(c->ctx->pools);
    return r;
}
