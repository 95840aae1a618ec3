/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the handlers: taking a pool out of the table, counting
 * and disconnecting NBD clients, persisting the set of pools. */
#include "api/handlers.h"
#include "common/util.h"
#include "nbd/nbd_server.h"

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
    char name[160];
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

static int conns_cb(const struct bs_vol_props *p, void *opaque)
{
    struct conns_acc *a = opaque;
    unsigned n = api_export_conns(a->ctx, a->pool, p->name);
    a->total += n;
    if (n && a->names && a->len) {
        size_t l = strlen(a->names);
        snprintf(a->names + l, a->len - l, "%s%s/%s", l ? ", " : "", a->pool, p->name);
    }
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
    return a.total;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int kick_cb(const struct bs_vol_props *p, void *opaque)
{
    struct conns_acc *a = opaque;
    char name[160];
    snprintf(name, sizeof(name), "%s/%s", a->pool, p->name);
    nbd_server_kick_export(a->ctx->nbd, name);
    return 0;
}

int api_pool_kick(struct api_ctx *ctx, struct pool_entry *e, struct berr *err)
{
    if (ctx->nbd) {
        struct conns_acc a = {ctx, e->name, 0, NULL, 0};
        bs_vol_list(e->pool, kick_cb, &a, NULL);
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
    char name[160];
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

void api_persist(struct api_ctx *ctx)
{
    if (ctx->persist)
        ctx->persist(ctx->persist_opaque);
}
