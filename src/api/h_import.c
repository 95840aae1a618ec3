/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Finding and importing pools: GET /pools/importable and POST /pools/import.
 * Without a directory, berthd looks in the directories of the vdevs of pools
 * that were exported through it (pooltab's `exported` list).  Pools whose
 * vdevs this berthd has imported are never offered. */
#include "api/handlers.h"
#include "common/log.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>

struct found_list {
    struct bs_pool_found *v;
    size_t n, cap;
};

static int found_cb(const struct bs_pool_found *f, void *opaque)
{
    struct found_list *l = opaque;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].vdev_path, f->vdev_path) == 0)
            return 0; /* the same device seen through two directories */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        if (cap > 4096)
            return 1;
        struct bs_pool_found *nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv)
            return 1;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = *f;
    return 0;
}

static bool same_path(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* true if a pool in the table (imported or UNAVAIL) uses this device */
static bool path_in_use(struct pooltab *t, const char *path)
{
    for (struct pool_entry *e = t->head; e; e = e->next)
        for (size_t i = 0; i < e->nvdevs; i++)
            if (same_path(e->vdevs[i], path))
                return true;
    return false;
}

/* Scan `dir`, or the remembered directories; caller holds the table lock. */
static int scan(struct api_ctx *ctx, const char *dir, struct found_list *l, struct berr *err)
{
    if (dir)
        return bs_pool_scan(dir, found_cb, l, err);
    for (struct pool_entry *e = ctx->pools->exported; e; e = e->next) {
        for (size_t i = 0; i < e->nvdevs; i++) {
            char tmp[PATH_MAX];
            snprintf(tmp, sizeof(tmp), "%s", e->vdevs[i]);
            struct berr ignore = {0};
            bs_pool_scan(dirname(tmp), found_cb, l, &ignore); /* a vanished dir is no error */
        }
    }
    return 0;
}

static void drop_in_use(struct api_ctx *ctx, struct found_list *l)
{
    size_t j = 0;
    for (size_t i = 0; i < l->n; i++)
        if (!path_in_use(ctx->pools, l->v[i].vdev_path))
            l->v[j++] = l->v[i];
    l->n = j;
}

/* Group devices by pool guid: [{name, guid, txg, state, vdevs:[...]}]. */
static json_t *group(const struct found_list *l)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l->n; i++) {
        if (l->v[i].problem[0])
            continue; /* listed under "damaged" */
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            if (l->v[k].guid == l->v[i].guid)
                seen = true;
        if (seen)
            continue;
        json_t *paths = json_array();
        for (size_t k = i; k < l->n; k++)
            if (l->v[k].guid == l->v[i].guid)
                json_array_append_new(paths, json_string(l->v[k].vdev_path));
        json_array_append_new(arr, json_pack("{s:s,s:o,s:o,s:s,s:o}", "name", l->v[i].name,
                                             "guid", json_guid(l->v[i].guid), "txg",
                                             json_u64(l->v[i].txg), "state", l->v[i].state,
                                             "vdevs", paths));
    }
    return arr;
}

/* Devices with a berth label that cannot be used: [{vdev, problem}]. */
static json_t *damaged(const struct found_list *l)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l->n; i++)
        if (l->v[i].problem[0])
            json_array_append_new(arr, json_pack("{s:s,s:s}", "vdev", l->v[i].vdev_path,
                                                 "problem", l->v[i].problem));
    return arr;
}

int h_pools_importable(const struct api_call *c, json_t **out, struct berr *err)
{
    struct found_list l = {0};
    pooltab_rdlock(c->ctx->pools);
    int r = scan(c->ctx, api_get_str(c->query, "dir"), &l, err);
    if (r == 0)
        drop_in_use(c->ctx, &l);
    pooltab_unlock(c->ctx->pools);
    if (r == 0)
        *out = json_pack("{s:o,s:o}", "pools", group(&l), "damaged", damaged(&l));
    free(l.v);
    return r < 0 ? r : 0;
}

/* Pick the vdevs of the pool called `name` among the scan results. */
static int choose(const struct found_list *l, const char *name, const char *dir,
                  const char **vdevs, size_t *nv, struct berr *err)
{
    uint64_t guid = 0;
    bool have = false;
    *nv = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].problem[0] || strcmp(l->v[i].name, name) != 0)
            continue;
        if (have && l->v[i].guid != guid)
            return berr_set(err, EEXIST, "several different pools named '%s' were found; "
                            "import one by giving its vdevs", name);
        have = true;
        guid = l->v[i].guid;
        if (*nv < BS_POOL_MAX_DEVICES)
            vdevs[(*nv)++] = l->v[i].vdev_path;
    }
    if (!have) {
        /* say why devices that look like pools were passed over */
        char why[BERR_MSG_MAX] = "";
        size_t w = 0;
        for (size_t i = 0; i < l->n && w < sizeof why - 1; i++)
            if (l->v[i].problem[0])
                w += (size_t)snprintf(why + w, sizeof why - w, "; %s", l->v[i].problem);
        return berr_set(err, ENOENT, "no importable pool named '%s' found %s%s%s", name,
                        dir ? "in " : "where exported pools lived (give a directory)",
                        dir ? dir : "", why);
    }
    return 0;
}

int h_pool_import(const struct api_call *c, json_t **out, struct berr *err)
{
    const char *name = api_get_str(c->body, "name");
    const char *dir = api_get_str(c->body, "dir");
    json_t *jv = json_object_get(c->body, "vdevs");
    if (!name && !jv)
        return berr_set(err, EINVAL, "missing field 'name' or 'vdevs': say which pool to import");
    if (jv && dir)
        return berr_set(err, EINVAL, "fields 'dir' and 'vdevs' exclude each other");

    const char *vdevs[BS_POOL_MAX_DEVICES];
    size_t nv = 0;
    struct found_list l = {0};
    pooltab_wrlock(c->ctx->pools);
    struct pool_entry *old = name ? pooltab_find(c->ctx->pools, name) : NULL;
    int r = 0;
    if (old && old->pool)
        r = berr_set(err, EEXIST, "pool '%s' is already imported", name);
    if (r == 0 && jv) {
        for (size_t i = 0; i < json_array_size(jv) && i < BS_POOL_MAX_DEVICES; i++)
            vdevs[nv++] = json_string_value(json_array_get(jv, i));
    } else if (r == 0 && old && !dir) {
        /* retry an UNAVAIL pool on its remembered devices */
        for (size_t i = 0; i < old->nvdevs && i < BS_POOL_MAX_DEVICES; i++)
            vdevs[nv++] = old->vdevs[i];
    } else if (r == 0) {
        r = scan(c->ctx, dir, &l, err);
        if (r == 0) {
            drop_in_use(c->ctx, &l);
            r = choose(&l, name, dir, vdevs, &nv, err);
        }
    }
    bs_pool *p = NULL;
    /* the schema (schema.c) made sure "rewind" is a boolean if given */
    struct bs_import_opts io = {.rewind = json_is_true(json_object_get(c->body, "rewind"))};
    if (r == 0)
        r = bs_pool_import_opts(vdevs, nv, name, &io, &p, err);
    if (r == 0) {
        const char *pname = bs_pool_name(p);
        struct pool_entry *clash = pooltab_find(c->ctx->pools, pname);
        if (clash && clash->pool) {
            bs_pool_close(p);
            r = berr_set(err, EEXIST, "a pool named '%s' is already imported", pname);
        } else {
            /* An UNAVAIL entry of that name is replaced; `vdevs` may point
             * into it, so keep it alive until the new entry has copied them. */
            if (clash) {
                pool_entry_ref(clash);
                pooltab_remove(c->ctx->pools, clash);
            }
            r = pooltab_add(c->ctx->pools, pname, p, vdevs, nv, NULL, err);
            if (r < 0) {
                bs_pool_close(p);
            } else {
                pooltab_forget_exported(c->ctx->pools, pname);
                api_persist(c->ctx);
                blog_info("pool %s imported from %s", pname, vdevs[0]);
                *out = render_pool(c->ctx, pooltab_find(c->ctx->pools, pname));
                uint64_t to, from = bs_pool_rewound_from(p, &to);
                if (*out && from) {
                    json_object_set_new(*out, "rewound_from", json_u64(from));
                    json_object_set_new(*out, "rewound_to", json_u64(to));
                }
            }
            pool_entry_unref(clash);
        }
    }
    pooltab_unlock(c->ctx->pools);
    free(l.v);
    return r;
}
