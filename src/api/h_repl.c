/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replication endpoints (/replications): thin, the jobs live in the daemon
 * and are reached through ctx->repl (api.h); without it (unit tests) the
 * routes answer 503 like the VM routes without a supervisor. */
#include "api/handlers.h"

static int need_repl(const struct api_call *c, struct berr *err)
{
    return c->ctx->repl ? 0 : berr_set(err, ECANCELED, "replication is not available");
}

int h_repls_list(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_repl(c, err);
    return r < 0 ? r : c->ctx->repl->list(c->ctx->repl->opaque, out, err);
}

int h_repl_create(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_repl(c, err);
    return r < 0 ? r : c->ctx->repl->create(c->ctx->repl->opaque, c->body, out, err);
}

int h_repl_get(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_repl(c, err);
    return r < 0 ? r : c->ctx->repl->get(c->ctx->repl->opaque, c->repl, out, err);
}

int h_repl_delete(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_repl(c, err);
    if (r == 0)
        r = c->ctx->repl->destroy(c->ctx->repl->opaque, c->repl, err);
    if (r == 0)
        *out = json_pack("{s:s,s:b}", "name", c->repl, "destroyed", 1);
    return r;
}

int h_repl_run(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_repl(c, err);
    bool wait = api_get_bool(c->body, "wait", true);
    return r < 0 ? r : c->ctx->repl->run(c->ctx->repl->opaque, c->repl, wait, out, err);
}
