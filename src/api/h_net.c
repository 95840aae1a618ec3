/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Network endpoints: Linux bridges for VM NICs (src/vm/net.h). */
#include "api/handlers.h"
#include "vm/net.h"
#include "vm/supervisor.h"

#include <stdio.h>
#include <string.h>

static int need_nets(const struct api_call *c, struct berr *err)
{
    return c->ctx->nets ? 0 : berr_set(err, ECANCELED, "networks are not available");
}

int h_nets_list(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_nets(c, err);
    if (r == 0)
        *out = json_pack("{s:o}", "networks", vm_net_list_json(c->ctx->nets));
    return r;
}

int h_net_get(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_nets(c, err);
    if (r == 0 && !(*out = vm_net_json(c->ctx->nets, c->net)))
        r = berr_set(err, ENOENT, "no network named %s", c->net);
    return r;
}

int h_net_create(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_nets(c, err);
    if (r < 0)
        return r;
    struct vm_network n = {0};
    const char *name = api_get_str(c->body, "name"), *cidr = api_get_str(c->body, "cidr"),
               *up = api_get_str(c->body, "uplink");
    if ((r = vm_ifname_check("name", name, err)) < 0)
        return r;
    snprintf(n.name, sizeof n.name, "%s", name);
    snprintf(n.cidr, sizeof n.cidr, "%s", cidr ? cidr : "");
    snprintf(n.uplink, sizeof n.uplink, "%s", up ? up : "");
    if ((r = vm_net_create(c->ctx->nets, &n, err)) < 0)
        return r;
    *out = vm_net_json(c->ctx->nets, name);
    return 0;
}

int h_net_delete(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_nets(c, err);
    if (r < 0)
        return r;
    if (!vm_net_known(c->ctx->nets, c->net))
        return berr_set(err, ENOENT, "no network named %s", c->net);
    uint32_t who = c->ctx->vms ? vmm_bridge_user(c->ctx->vms, c->net) : 0;
    if (who)
        return berr_set(err, EBUSY, "network %s is used by running VM %u (net on bridge %s); "
                        "stop it first", c->net, who, c->net);
    if ((r = vm_net_destroy(c->ctx->nets, c->net, err)) < 0)
        return r;
    *out = json_pack("{s:s,s:b}", "name", c->net, "destroyed", 1);
    return 0;
}
