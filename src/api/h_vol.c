/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Volume endpoints: list, create, get, set properties, resize, destroy.
 * A Volume object is render_vol()'s properties plus the space accounting of
 * bs_vol_space (usedby*, written, origin, snapshot_count). */
#include "api/handlers.h"
#include "common/log.h"

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

/* Add the bs_vol_space fields to a rendered volume.  A failure (the volume
 * went away since it was listed) leaves them out rather than failing a list. */
static void add_space(bs_pool *p, const char *pool, json_t *o)
{
    struct bs_vol_space sp;
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || bs_vol_space(p, name, &sp, NULL) < 0)
        return;
    json_object_set_new(o, "usedbysnapshots", json_u64(sp.usedbysnapshots));
    json_object_set_new(o, "usedbydataset", json_u64(sp.usedbydataset));
    json_object_set_new(o, "usedbyrefreservation", json_u64(sp.usedbyrefreservation));
    json_object_set_new(o, "written", json_u64(sp.written));
    json_object_set_new(o, "snapshot_count", json_u64(sp.nsnapshots));
    if (sp.origin[0]) {
        char full[256];
        snprintf(full, sizeof(full), "%s/%s", pool, sp.origin);
        json_object_set_new(o, "origin", json_string(full));
    } else {
        json_object_set_new(o, "origin", json_null());
    }
}

/* One pool's volumes with their space (bs_vol_space is a control-plane call:
 * made after bs_vol_list returns, not from inside its callback). */
static int fill_vols(const struct api_call *c, struct pool_entry *e, json_t *arr,
                     struct berr *err)
{
    size_t first = json_array_size(arr);
    struct list_acc a = {c->ctx, e->name, arr};
    int r = bs_vol_list(e->pool, list_cb, &a, err);
    for (size_t i = first; r == 0 && i < json_array_size(arr); i++)
        add_space(e->pool, e->name, json_array_get(arr, i));
    return r;
}

int h_vols_all(const struct api_call *c, json_t **out, struct berr *err)
{
    return api_list(c, true, "volumes", fill_vols, out, err);
}

int h_vols_list(const struct api_call *c, json_t **out, struct berr *err)
{
    return api_list(c, false, "volumes", fill_vols, out, err);
}

int api_get_vol(struct api_ctx *ctx, struct pool_entry *e, const char *name, json_t **out,
                struct berr *err)
{
    struct bs_vol_props props;
    int r = bs_vol_get(e->pool, name, &props, err);
    if (r == 0) {
        *out = render_vol(ctx, e->name, &props);
        if (*out)
            add_space(e->pool, e->name, *out);
    }
    return r;
}

static int get_vol(const struct api_call *c, struct pool_entry *e, const char *name,
                   json_t **out, struct berr *err)
{
    return api_get_vol(c->ctx, e, name, out, err);
}

int api_vol_apply_props(json_t *obj, struct bs_vol_props *props, struct berr *err)
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
        } else if (strcmp(key, "encryption") == 0) {
            props->encrypted = strcmp(s, "on") == 0 || strcmp(s, "aes-256-gcm") == 0;
            if (!props->encrypted && strcmp(s, "off") != 0)
                return berr_set(err, EINVAL, "property 'encryption': use on, aes-256-gcm or "
                                "off, not '%s'", s);
        } else if (strcmp(key, "keyformat") == 0) {
            if (bs_keyformat_parse(s, &props->keyformat, err) < 0)
                return berr_wrap(err, "property 'keyformat'");
        } else if (strcmp(key, "keylocation") == 0) {
            snprintf(props->keylocation, sizeof(props->keylocation), "%s", s);
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
    r = api_vol_apply_props(json_object_get(c->body, "properties"), &props, err);
    struct bs_key k;
    if (r == 0 && (r = api_key_from_body(c->body, &k, err)) == 0) {
        props.key = k.data;
        props.keylen = k.len;
        props.kdf = k.kdf;
    }
    if (r == 0)
        r = bs_vol_create(e->pool, &props, thick, err);
    api_key_wipe(c->body);
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

static int snap_name_cb(const struct bs_snap_props *p, void *opaque)
{
    json_array_append_new(opaque, json_string(p->name));
    return 0;
}

/* A recursive destroy takes the volume's snapshots too: their NBD exports
 * are claimed like the volume's own. */
static int claim_snapshots(const struct api_call *c, struct pool_entry *e, bool force,
                           struct berr *err)
{
    json_t *names = json_array();
    if (!names)
        return berr_set(err, ENOMEM, "out of memory");
    int r = bs_snap_list(e->pool, c->vol, snap_name_cb, names, err);
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) {
        if (r < 0)
            break;
        r = api_export_claim(c->ctx, e->name, json_string_value(v), force, "destroy it", err);
    }
    json_decref(names);
    return r;
}

int h_vol_delete(const struct api_call *c, json_t **out, struct berr *err)
{
    bool force = api_get_bool(c->query, "force", false);
    bool recursive = api_get_bool(c->query, "recursive", false);
    int r = api_vol_vm_check(c->ctx, c->pool, c->vol, err);
    if (r < 0)
        return r;
    struct pool_entry *e;
    r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    struct bs_vol_props props;
    r = bs_vol_get(e->pool, c->vol, &props, err);
    if (r == 0)
        r = api_export_claim(c->ctx, e->name, c->vol, force, "destroy it", err);
    if (r == 0 && recursive)
        r = claim_snapshots(c, e, force, err);
    unsigned flags = (force ? BS_DESTROY_FORCE : 0) | (recursive ? BS_DESTROY_RECURSIVE : 0);
    if (r == 0)
        r = bs_vol_destroy_ex(e->pool, c->vol, flags, err);
    if (r == 0)
        blog_info("volume %s/%s destroyed%s", e->name, c->vol,
                  recursive ? " with its snapshots" : "");
    pooltab_unlock(c->ctx->pools);
    if (r == 0) {
        char full[160];
        snprintf(full, sizeof(full), "%s/%s", c->pool, c->vol);
        *out = json_pack("{s:s,s:b}", "name", full, "destroyed", 1);
    }
    return r;
}
