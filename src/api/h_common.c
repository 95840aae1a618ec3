/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the handlers: taking a pool out of the table, counting
 * and disconnecting NBD clients, persisting the set of pools. */
#include "api/handlers.h"
#include "common/util.h"
#include "nbd/nbd_server.h"
#include "vm/supervisor.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* How long export/destroy wait for kicked NBD clients to close. */
#define KICK_WAIT_MS 10000

int api_pool_acquire(const struct api_call *c, struct pool_entry **out, struct berr *err)
{
    pooltab_rdlock(c->ctx->pools);
    struct pool_entry *e = pooltab_find(c->ctx->pools, c->pool);
    if (!e) {
        pooltab_unlock(c->ctx->pools);
        return berr_set(err, ENOENT, "no such pool '%s'", c->pool);
    }
    if (!e->pool) {
        berr_set(err, API_EUNAVAIL, "pool '%s' is UNAVAIL: %s", e->name, e->error);
        pooltab_unlock(c->ctx->pools);
        return -API_EUNAVAIL;
    }
    *out = e;
    return 0;
}

unsigned api_export_conns(struct api_ctx *ctx, const char *pool, const char *vol)
{
    if (!ctx->nbd)
        return 0;
    char name[256]; /* "pool/vol@snap" for a snapshot */
    snprintf(name, sizeof(name), "%s/%s", pool, vol);
    return nbd_server_export_conns(ctx->nbd, name);
}

struct conns_acc {
    struct api_ctx *ctx;
    const char *pool;
    unsigned total;
    char *names;
    size_t len;
};

/* Count the clients of export "pool/name" and note it in a->names if busy. */
static void count_export(struct conns_acc *a, const char *name)
{
    unsigned n = api_export_conns(a->ctx, a->pool, name);
    a->total += n;
    if (n && a->names && a->len) {
        size_t l = strlen(a->names);
        snprintf(a->names + l, a->len - l, "%s%s/%s", l ? ", " : "", a->pool, name);
    }
}

static int conns_cb(const struct bs_vol_props *p, void *opaque)
{
    count_export(opaque, p->name);
    return 0;
}

/* Snapshots are exports too ("pool/vol@snap", read-only). */
static int snap_conns_cb(const struct bs_snap_props *p, void *opaque)
{
    count_export(opaque, p->name);
    return 0;
}

unsigned api_pool_conns(struct api_ctx *ctx, bs_pool *p, char *names, size_t len)
{
    if (names && len)
        names[0] = '\0';
    if (!ctx->nbd)
        return 0;
    struct conns_acc a = {ctx, bs_pool_name(p), 0, names, len};
    bs_vol_list(p, conns_cb, &a, NULL);
    bs_snap_list(p, NULL, snap_conns_cb, &a, NULL);
    return a.total;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void kick_one(struct conns_acc *a, const char *name)
{
    char full[256];
    snprintf(full, sizeof(full), "%s/%s", a->pool, name);
    nbd_server_kick_export(a->ctx->nbd, full);
}

static int kick_cb(const struct bs_vol_props *p, void *opaque)
{
    kick_one(opaque, p->name);
    return 0;
}

/* Snapshot names are collected and kicked after the listing: a kick waits
 * for the backend to close its handles, which must not happen inside an
 * engine callback. */
static int snap_name_cb(const struct bs_snap_props *p, void *opaque)
{
    json_array_append_new(opaque, json_string(p->name));
    return 0;
}

int api_pool_kick(struct api_ctx *ctx, struct pool_entry *e, struct berr *err)
{
    if (ctx->nbd) {
        struct conns_acc a = {ctx, e->name, 0, NULL, 0};
        bs_vol_list(e->pool, kick_cb, &a, NULL);
        json_t *snaps = json_array();
        if (snaps)
            bs_snap_list(e->pool, NULL, snap_name_cb, snaps, NULL);
        size_t i;
        json_t *v;
        json_array_foreach(snaps, i, v)
            kick_one(&a, json_string_value(v));
        json_decref(snaps);
    }
    for (unsigned waited = 0; atomic_load(&e->handles) > 0; waited += 10) {
        if (waited >= KICK_WAIT_MS)
            return berr_set(err, EBUSY, "pool '%s': %u NBD handles still open after "
                            "disconnecting its clients", e->name, atomic_load(&e->handles));
        sleep_ms(10);
    }
    return 0;
}

int api_export_kick(struct api_ctx *ctx, const char *pool, const char *vol, struct berr *err)
{
    if (!ctx->nbd)
        return 0;
    char name[256];
    snprintf(name, sizeof(name), "%s/%s", pool, vol);
    nbd_server_kick_export(ctx->nbd, name);
    for (unsigned waited = 0; nbd_server_export_conns(ctx->nbd, name) > 0; waited += 10) {
        if (waited >= KICK_WAIT_MS)
            return berr_set(err, EBUSY, "volume %s: NBD clients still connected after "
                            "disconnecting them", name);
        sleep_ms(10);
    }
    return 0;
}

int api_export_claim(struct api_ctx *ctx, const char *pool, const char *name, bool force,
                     const char *verb, struct berr *err)
{
    unsigned n = api_export_conns(ctx, pool, name);
    if (!n)
        return 0;
    if (!force)
        return berr_set(err, EBUSY, "%s %s/%s is in use by %u NBD client%s; use force to "
                        "disconnect them and %s", strchr(name, '@') ? "snapshot" : "volume",
                        pool, name, n, n == 1 ? "" : "s", verb);
    return api_export_kick(ctx, pool, name, err);
}

int api_vol_vm_check(struct api_ctx *ctx, const char *pool, const char *vol, struct berr *err)
{
    uint32_t vm = ctx->vms ? vmm_volume_user(ctx->vms, pool, vol) : 0;
    if (vm)
        return berr_set(err, EBUSY, "volume %s/%s is used by running VM %u; stop it first",
                        pool, vol, vm);
    return 0;
}

int api_list(const struct api_call *c, bool all_pools, const char *key, api_fill_fn fill,
             json_t **out, struct berr *err)
{
    json_t *arr = json_array();
    if (!arr)
        return berr_set(err, ENOMEM, "out of memory");
    int r = 0;
    if (all_pools) {
        pooltab_rdlock(c->ctx->pools);
        for (struct pool_entry *e = c->ctx->pools->head; e && r == 0; e = e->next)
            if (e->pool)
                r = fill(c, e, arr, err);
        pooltab_unlock(c->ctx->pools);
    } else {
        struct pool_entry *e;
        r = api_pool_acquire(c, &e, err);
        if (r == 0) {
            r = fill(c, e, arr, err);
            pooltab_unlock(c->ctx->pools);
        }
    }
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *out = json_pack("{s:o}", key, arr);
    return 0;
}

void api_persist(struct api_ctx *ctx)
{
    if (ctx->persist)
        ctx->persist(ctx->persist_opaque);
}
