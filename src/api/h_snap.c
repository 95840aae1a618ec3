/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshot endpoints: create (several at once, atomically), list, get,
 * destroy, hold and release, and the Snapshot object of docs/API.md.
 * A snapshot "VOL@SNAP" of pool P is also the read-only NBD export
 * "P/VOL@SNAP", so destroy refuses while that export has clients. */
#include "api/handlers.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set(json_t *o, const char *k, json_t *v)
{
    json_object_set_new(o, k, v);
}

/* "a,b" (the engine's comma-separated tags) -> ["a", "b"] */
static json_t *hold_tags(const char *s)
{
    json_t *arr = json_array();
    while (arr && *s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n)
            json_array_append_new(arr, json_stringn(s, n));
        s += n + (comma ? 1 : 0);
    }
    return arr;
}

static json_t *render_snap(struct api_ctx *ctx, const char *pool, const struct bs_snap_props *p)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    char full[256];
    const char *at = strchr(p->name, '@');
    snprintf(full, sizeof(full), "%s/%s", pool, p->name);
    set(o, "name", json_string(p->name));
    set(o, "pool", json_string(pool));
    set(o, "volume", json_string(p->volume));
    set(o, "snapshot", json_string(at ? at + 1 : p->name));
    set(o, "full_name", json_string(full));
    set(o, "guid", json_guid(p->guid));
    set(o, "create_txg", json_u64(p->create_txg));
    set(o, "creation", json_u64(p->creation));
    set(o, "volsize", json_u64(p->volsize));
    set(o, "volblocksize", json_u64(p->volblocksize));
    set(o, "used", json_u64(p->used));
    set(o, "referenced", json_u64(p->referenced));
    set(o, "logicalreferenced", json_u64(p->logicalreferenced));
    set(o, "compressratio", json_ratio(p->compressratio));
    set(o, "userrefs", json_integer(p->nholds));
    set(o, "holds", hold_tags(p->holds));
    set(o, "clones", json_integer(p->nclones));
    set(o, "defer_destroy", json_boolean(p->defer_destroy));
    set(o, "nbd_clients", json_integer(api_export_conns(ctx, pool, p->name)));
    render_nbd_uris(ctx, o, full);
    return o;
}

/* Render one snapshot (pool held by the caller). */
static int get_snap(const struct api_call *c, struct pool_entry *e, const char *name,
                    json_t **out, struct berr *err)
{
    struct bs_snap_props props;
    int r = bs_snap_get(e->pool, name, &props, err);
    if (r == 0)
        *out = render_snap(c->ctx, e->name, &props);
    return r;
}

struct list_acc {
    struct api_ctx *ctx;
    const char *pool;
    json_t *arr;
};

static int list_cb(const struct bs_snap_props *p, void *opaque)
{
    struct list_acc *a = opaque;
    json_array_append_new(a->arr, render_snap(a->ctx, a->pool, p));
    return 0;
}

static int fill_snaps(const struct api_call *c, struct pool_entry *e, json_t *arr,
                      struct berr *err)
{
    struct list_acc a = {c->ctx, e->name, arr};
    return bs_snap_list(e->pool, api_get_str(c->query, "volume"), list_cb, &a, err);
}

int h_snaps_all(const struct api_call *c, json_t **out, struct berr *err)
{
    return api_list(c, true, "snapshots", fill_snaps, out, err);
}

int h_snaps_list(const struct api_call *c, json_t **out, struct berr *err)
{
    return api_list(c, false, "snapshots", fill_snaps, out, err);
}

int h_snap_create(const struct api_call *c, json_t **out, struct berr *err)
{
    json_t *names = json_object_get(c->body, "names");
    size_t n = json_array_size(names);
    const char **v = calloc(n, sizeof(*v));
    json_t *arr = json_array();
    if (!v || !arr) {
        free(v);
        json_decref(arr);
        return berr_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_string_value(json_array_get(names, i));
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r == 0) {
        r = bs_snap_create(e->pool, v, n, err);
        for (size_t i = 0; r == 0 && i < n; i++) {
            json_t *o = NULL;
            r = get_snap(c, e, v[i], &o, err);
            json_array_append_new(arr, o);
        }
        if (r == 0)
            blog_info("pool %s: %zu snapshot%s created (%s%s)", e->name, n, n == 1 ? "" : "s",
                      v[0], n > 1 ? ", ..." : "");
        pooltab_unlock(c->ctx->pools);
    }
    free(v);
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *out = json_pack("{s:o}", "snapshots", arr);
    return 0;
}

int h_snap_get(const struct api_call *c, json_t **out, struct berr *err)
{
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    r = get_snap(c, e, c->snap, out, err);
    pooltab_unlock(c->ctx->pools);
    return r;
}

int h_snap_delete(const struct api_call *c, json_t **out, struct berr *err)
{
    bool force = api_get_bool(c->query, "force", false);
    bool defer = api_get_bool(c->query, "defer", false);
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    struct bs_snap_props props;
    r = bs_snap_get(e->pool, c->snap, &props, err);
    if (r == 0)
        r = api_export_claim(c->ctx, e->name, c->snap, force, "destroy it", err);
    unsigned flags = (force ? BS_DESTROY_FORCE : 0) | (defer ? BS_DESTROY_DEFER : 0);
    if (r == 0)
        r = bs_snap_destroy(e->pool, c->snap, flags, err);
    /* with defer, a snapshot that clones depend on only disappears from view */
    bool deferred = r == 0 && defer && props.nclones > 0;
    if (r == 0)
        blog_info("snapshot %s/%s %s", e->name, c->snap,
                  deferred ? "marked for destruction (it has clones)" : "destroyed");
    pooltab_unlock(c->ctx->pools);
    if (r == 0) {
        char full[256];
        snprintf(full, sizeof(full), "%s/%s", c->pool, c->snap);
        *out = json_pack("{s:s,s:b,s:b}", "name", full, "destroyed", 1, "deferred", deferred);
    }
    return r;
}

/* hold and release: one tag, then the snapshot as it is now */
static int hold_or_release(const struct api_call *c, bool hold, json_t **out, struct berr *err)
{
    const char *tag = api_get_str(c->body, "tag");
    struct pool_entry *e;
    int r = api_pool_acquire(c, &e, err);
    if (r < 0)
        return r;
    r = hold ? bs_snap_hold(e->pool, c->snap, tag, err)
             : bs_snap_release(e->pool, c->snap, tag, err);
    if (r == 0)
        r = get_snap(c, e, c->snap, out, err);
    pooltab_unlock(c->ctx->pools);
    return r;
}

int h_snap_hold(const struct api_call *c, json_t **out, struct berr *err)
{
    return hold_or_release(c, true, out, err);
}

int h_snap_release(const struct api_call *c, json_t **out, struct berr *err)
{
    return hold_or_release(c, false, out, err);
}
