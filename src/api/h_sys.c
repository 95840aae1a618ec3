/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Service endpoints: /version and /health. */
#include "api/handlers.h"

int h_version(const struct api_call *c, json_t **out, struct berr *err)
{
    *out = json_pack("{s:s,s:s}", "version", c->ctx->version ? c->ctx->version : "unknown",
                     "api", "v1");
    return 0;
}

int h_health(const struct api_call *c, json_t **out, struct berr *err)
{
    unsigned n = 0, unavail = 0;
    pooltab_rdlock(c->ctx->pools);
    for (struct pool_entry *e = c->ctx->pools->head; e; e = e->next) {
        n++;
        if (!e->pool)
            unavail++;
    }
    pooltab_unlock(c->ctx->pools);
    *out = json_pack("{s:s,s:I,s:I,s:b,s:s}", "status", "ok", "pools", (json_int_t)n, "unavail",
                     (json_int_t)unavail, "test_mode", c->ctx->test_mode, "nbd_socket",
                     c->ctx->nbd_socket);
    return 0;
}
