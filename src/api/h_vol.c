/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Volume endpoints: list, create, get, set properties, resize, destroy. */
#include "api/handlers.h"
#include "common/log.h"
#include "vm/supervisor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct list_acc {
    struct api_ctx *ctx;
    const char *pool;
    json_t *arr;
};

static int list_cb(const struct bs_vol_props *p, void *opaque)
{
    struct list_acc *a = opaque;
    json_array_append_new(a->arr, render_vol(a->ctx, a->pool, p));
    return 0;
}

int h_vols_all(const struct api_call *c, json_t **out, struct berr *err)
{
    json_t *arr = json_array();
    if (!arr)
        return berr_set(err, ENOMEM, "out of memory");
    int r = 0;
    pooltab_rdlock(c->ctx->pools);
    for (struct pool_entry *e = c->ctx->pools->head; e && r == 0; e = e->next) {
        if (!e->pool)
            continue;
        struct list_acc a = {c->ctx, e->name, arr};
        r = bs_vol_list(e->pool, list_cb, &a, err);
    }
    pooltab_unlock(c->ctx->pools);
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *out = json_pack("{s:o}", "volumes", arr);
    return 0;
}

int h_vols_list(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    json_t *arr = json_array();
    struct list_acc a = {c->ctx, e->name, arr};
    r = arr ? bs_vol_list(e->pool, list_cb, &a, err) : berr_set(err, ENOMEM, "out of memory");
    pooltab_unlock(c->ctx->pools);
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *out = json_pack("{s:o}", "volumes", arr);
    return 0;
}

/* Render the current state of a volume (pool held by the caller). */
static int get_vol(const struct api_call *c, struct pool_entry *e, const char *name,
                   json_t **out, struct berr *err)
{
    struct bs_vol_props props;
    int r = bs_vol_get(e->pool, name, &props, err);
    if (r == 0)
        *out = render_vol(c->ctx, e->name, &props);
    return r;
}

/* Apply the create-time properties to props (strings as validate.c made them). */
static int create_props(json_t *obj, struct bs_vol_props *props, struct berr *err)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        const char *s = json_string_value(val);
        if (strcmp(key, "compression") == 0) {
            if (bs_compress_parse(s, &props->compression, &props->compress_level, err) < 0)
                return berr_wrap(err, "property 'compression'");
        } else if (strcmp(key, "checksum") == 0) {
            if (bs_checksum_parse(s, &props->checksum, err) < 0)
                return berr_wrap(err, "property 'checksum'");
        } else if (strcmp(key, "refreservation") == 0) {
            props->refreservation = strcmp(s, "none") == 0 ? 0 : strtoull(s, NULL, 10);
        } else if (strcmp(key, "readonly") == 0) {
            props->readonly = strcmp(s, "on") == 0;
        }
    }
    return 0;
}

int h_vol_create(const struct api_call *c, json_t **out, struct berr *err)
{
    const char *name = api_get_str(c->body, "name");
    int64_t vbs = api_get_int(c->body, "volblocksize", 0);
    if (vbs > UINT32_MAX)
        return berr_set(err, ERANGE, "field 'volblocksize': %lld is too large (4K..128K)",
                        (long long)vbs);
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    struct bs_vol_props props;
    bs_vol_props_init(e->pool, &props);
    snprintf(props.name, sizeof(props.name), "%s", name);
    props.volsize = (uint64_t)api_get_int(c->body, "size", 0);
    props.volblocksize = (uint32_t)vbs;
    bool thick = api_get_bool(c->body, "thick", false);
    r = create_props(json_object_get(c->body, "properties"), &props, err);
    if (r == 0)
        r = bs_vol_create(e->pool, &props, thick, err);
    if (r == 0) {
        blog_info("volume %s/%s created", e->name, name);
        r = get_vol(c, e, name, out, err);
    }
    pooltab_unlock(c->ctx->pools);
    return r;
}

int h_vol_get(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    r = get_vol(c, e, c->vol, out, err);
    pooltab_unlock(c->ctx->pools);
    return r;
}

int h_vol_patch(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    const char *key;
    json_t *val;
    json_object_foreach(json_object_get(c->body, "properties"), key, val) {
        r = bs_vol_set(e->pool, c->vol, key, json_string_value(val), err);
        if (r < 0)
            break;
    }
    if (r == 0)
        r = get_vol(c, e, c->vol, out, err);
    pooltab_unlock(c->ctx->pools);
    return r;
}

int h_vol_resize(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    uint64_t size = (uint64_t)api_get_int(c->body, "size", 0);
    r = bs_vol_resize(e->pool, c->vol, size, api_get_bool(c->body, "force", false), err);
    if (r == 0)
        r = get_vol(c, e, c->vol, out, err);
    pooltab_unlock(c->ctx->pools);
    return r;
}

int h_vol_delete(const struct api_call *c, json_t **out, struct berr *err)
{
    bool force = api_get_bool(c->query, "force", false);
    uint32_t vm = c->ctx->vms ? vmm_volume_user(c->ctx->vms, c->pool, c->vol) : 0;
    if (vm)
        return berr_set(err, EBUSY, "volume %s/%s is used by running VM %u; stop it first",
                        c->pool, c->vol, vm);
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    struct bs_vol_props props;
    r = bs_vol_get(e->pool, c->vol, &props, err);
    unsigned n = r == 0 ? api_export_conns(c->ctx, e->name, c->vol) : 0;
    if (r == 0 && n && !force)
        r = berr_set(err, EBUSY, "volume %s/%s is in use by %u NBD client%s; use force to "
                     "disconnect them and destroy it", e->name, c->vol, n, n == 1 ? "" : "s");
    else if (r == 0 && n)
        r = api_export_kick(c->ctx, e->name, c->vol, err);
    if (r == 0)
        r = bs_vol_destroy(e->pool, c->vol, force, err);
    if (r == 0)
        blog_info("volume %s/%s destroyed", e->name, c->vol);
    pooltab_unlock(c->ctx->pools);
    if (r == 0) {
        char full[160];
        snprintf(full, sizeof(full), "%s/%s", c->pool, c->vol);
        *out = json_pack("{s:s,s:b}", "name", full, "destroyed", 1);
    }
    return r;
}
