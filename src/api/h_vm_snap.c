/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM snapshot, rollback and clone endpoints (docs/API.md "VM snapshots and
 * clones").  The supervisor does the work (src/vm/vm_snap.h) with the
 * engine calls of vmstore_snap.c. */
#include "api/handlers.h"
#include "common/log.h"
#include "vm/supervisor.h"
#include "vm/vm_snap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int need_vms(const struct api_call *c, struct berr *err)
{
    return c->ctx->vms ? 0 : berr_set(err, ECANCELED, "virtual machines are not available");
}

/* How the snapshot was taken, added to a response. */
static void add_result(json_t *o, const struct vm_snap_result *res)
{
    json_object_set_new(o, "frozen", json_boolean(res->frozen));
    json_object_set_new(o, "frozen_filesystems", json_integer(res->frozen_fs));
    if (res->warning[0])
        json_object_set_new(o, "warning", json_string(res->warning));
}

int h_vm_snap_create(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    if (r < 0)
        return r;
    const char *name = api_get_str(c->body, "name");
    int freeze_ms = (int)api_get_int(c->body, "freeze_timeout", 0) * 1000;
    struct vm_snap_ops ops;
    struct vm_snap_result res;
    api_vm_snap_ops(c->ctx, &ops);
    if ((r = vmm_snapshot(c->ctx->vms, c->vmid, name, freeze_ms, &ops, &res, err)) < 0)
        return r;
    blog_info("VM %u: snapshot %s (%s)", c->vmid, name,
              res.frozen ? "frozen" : res.warning[0] ? "crash-consistent" : "stopped");
    *out = json_pack("{s:I,s:s,s:I}", "vmid", (json_int_t)c->vmid, "name", name, "volumes",
                     (json_int_t)res.nvols);
    if (*out)
        add_result(*out, &res);
    return 0;
}

int h_vm_snaps_list(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    struct vm_snap_info *v = NULL;
    size_t n = 0;
    if (r < 0 || (r = vmm_snapshot_list(c->ctx->vms, c->vmid, &v, &n, err)) < 0)
        return r;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:I,s:b,s:s}", "name", v[i].name, "time",
                                             (json_int_t)v[i].time, "frozen", v[i].frozen,
                                             "config", v[i].config));
    vm_snap_info_free(v, n);
    *out = json_pack("{s:I,s:o}", "vmid", (json_int_t)c->vmid, "snapshots", arr);
    return 0;
}

int h_vm_snap_delete(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    struct vm_snap_ops ops;
    api_vm_snap_ops(c->ctx, &ops);
    if (r < 0 || (r = vmm_snapshot_destroy(c->ctx->vms, c->vmid, c->snap, &ops, err)) < 0)
        return r;
    blog_info("VM %u: snapshot %s destroyed", c->vmid, c->snap);
    *out = json_pack("{s:I,s:s,s:b}", "vmid", (json_int_t)c->vmid, "name", c->snap,
                     "destroyed", 1);
    return 0;
}

int h_vm_rollback(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    const char *name = api_get_str(c->body, "snapshot");
    struct vm_snap_ops ops;
    api_vm_snap_ops(c->ctx, &ops);
    if (r < 0 || (r = vmm_rollback(c->ctx->vms, c->vmid, name, &ops, err)) < 0)
        return r;
    blog_info("VM %u rolled back to snapshot %s", c->vmid, name);
    *out = json_pack("{s:I,s:s,s:b}", "vmid", (json_int_t)c->vmid, "snapshot", name,
                     "rolled_back", 1);
    return 0;
}

int h_vm_clone(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    if (r < 0)
        return r;
    struct vm_clone_opts o = {
        .newid = (uint32_t)api_get_int(c->body, "newid", 0),
        .linked = api_get_bool(c->body, "linked", false),
        .snapshot = api_get_str(c->body, "snapshot"),
        .name = api_get_str(c->body, "name"),
    };
    struct vm_snap_ops ops;
    struct vm_snap_result res;
    api_vm_snap_ops(c->ctx, &ops);
    if ((r = vmm_clone(c->ctx->vms, c->vmid, &o, &ops, &res, err)) < 0)
        return r;
    char *text = NULL;
    if ((r = vmm_config_get(c->ctx->vms, o.newid, NULL, &text, err)) < 0)
        return r;
    *out = json_pack("{s:I,s:I,s:b,s:s,s:s}", "vmid", (json_int_t)o.newid, "source",
                     (json_int_t)c->vmid, "linked", o.linked, "snapshot", res.snapshot, "text",
                     text);
    free(text);
    if (*out && !o.snapshot)
        add_result(*out, &res);
    return 0;
}
