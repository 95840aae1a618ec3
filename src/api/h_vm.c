/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM endpoints: list, create, status, config get/patch, lifecycle,
 * guest agent, console sockets, destroy (docs/API.md "Virtual machines").
 * The supervisor (src/vm/supervisor.h) does the work; volumes are created
 * and destroyed here, through the engine. */
#include "api/handlers.h"
#include "common/log.h"
#include "vm/defaults.h"
#include "vm/supervisor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGENT_TIMEOUT_S 10
#define SHUTDOWN_TIMEOUT_S 60

static int need_vms(const struct api_call *c, struct berr *err)
{
    return c->ctx->vms ? 0 : berr_set(err, ECANCELED, "virtual machines are not available");
}

static json_t *opt_str(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *summary(const struct vm_info *i)
{
    return json_pack("{s:I,s:o,s:s,s:o,s:o,s:I,s:i,s:i}", "vmid", (json_int_t)i->vmid, "name",
                     opt_str(i->name), "status", vm_status_name(i->status), "accel",
                     i->pid ? json_string(i->accel) : json_null(), "pid",
                     i->pid ? json_integer(i->pid) : json_null(), "uptime",
                     (json_int_t)i->uptime, "memory", i->memory, "cores", i->cores);
}

int h_vms_list(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    if (r < 0)
        return r;
    struct vm_info *v;
    size_t n;
    if (vmm_list(c->ctx->vms, &v, &n) < 0)
        return berr_set(err, ENOMEM, "out of memory");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, summary(&v[i]));
    free(v);
    *out = json_pack("{s:o}", "vms", arr);
    return 0;
}

static int status_json(const struct api_call *c, json_t **out, struct berr *err)
{
    struct vm_info i;
    int r = vmm_info(c->ctx->vms, c->vmid, &i, err);
    if (r < 0)
        return r;
    char qs[32] = "";
    if (i.pid)
        vmm_qmp_status(c->ctx->vms, c->vmid, qs, sizeof qs);
    json_t *o = summary(&i);
    json_object_set_new(o, "accel", i.accel ? json_string(i.accel) : json_null());
    json_object_set_new(o, "accel_reason", json_string(i.accel_reason));
    json_object_set_new(o, "qmp_status", opt_str(qs));
    if (i.last_exit.valid) {
        char *tail = vmm_log_tail(c->ctx->vms, c->vmid);
        json_object_set_new(o, "last_exit",
                            json_pack("{s:s,s:o,s:i,s:I,s:s}", "reason", i.last_exit.reason,
                                      "code", i.last_exit.code >= 0
                                                  ? json_integer(i.last_exit.code)
                                                  : json_null(),
                                      "signal", i.last_exit.signal, "time",
                                      (json_int_t)i.last_exit.time, "log_tail",
                                      tail ? tail : ""));
        free(tail);
    } else {
        json_object_set_new(o, "last_exit", json_null());
    }
    *out = o;
    return 0;
}

int h_vm_get(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    return r < 0 ? r : status_json(c, out, err);
}

/* {"vmid": N, "config": {key: value}, "text": "..."} from a config text */
static json_t *config_json(uint32_t vmid, const char *text, bool with_text)
{
    json_t *cfg = json_object();
    const char *p = text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (*p == '[')
            break; /* snapshot sections are not the current config */
        const char *colon = memchr(p, ':', len);
        if (*p != '#' && colon) {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(colon - p), p);
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            json_object_set_new(cfg, key, json_stringn(v, len - (size_t)(v - p)));
        }
        p = nl ? nl + 1 : NULL;
    }
    json_t *o = json_pack("{s:I,s:o}", "vmid", (json_int_t)vmid, "config", cfg);
    if (with_text)
        json_object_set_new(o, "text", json_string(text));
    return o;
}

int h_vm_create(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    if (r < 0)
        return r;
    uint32_t vmid = (uint32_t)api_get_int(c->body, "vmid", 0);
    json_t *opts = json_object_get(c->body, "options");
    json_t *empty = json_object(), *created = json_array();
    if ((r = vmm_reserve(c->ctx->vms, vmid, err)) < 0)
        goto out;
    const char *name = api_get_str(opts, "name");
    struct vm_defaults_opts d = {.vmid = vmid, .bridge = ""};
    struct vm_config cfg;
    if ((r = vm_config_defaults(&cfg, &d, err)) == 0) {
        /* defaults.c says seabios without a pool: berth's default is UEFI,
         * whose efidisk is planned with the disks */
        if ((r = vm_config_set(&cfg, "bios", "ovmf", err)) == 0 &&
            (r = vm_config_set(&cfg, "serial0", "socket", err)) == 0)
            r = api_vm_apply_opts(c->ctx, vmid, &cfg, opts ? opts : empty, true, created, err);
        if (r == 0)
            r = vmm_define(c->ctx->vms, vmid, &cfg, err);
        vm_config_free(&cfg);
    }
    if (r < 0) {
        api_vm_destroy_vols(c->ctx, created);
        vmm_unreserve(c->ctx->vms, vmid);
        goto out;
    }
    char *text = NULL;
    if ((r = vmm_config_get(c->ctx->vms, vmid, NULL, &text, err)) == 0) {
        *out = config_json(vmid, text, false);
        blog_info("VM %u created%s%s", vmid, name ? ": " : "", name ? name : "");
    }
    free(text);
out:
    json_decref(empty);
    json_decref(created);
    return r;
}

int h_vm_config_get(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    char *text = NULL;
    if (r == 0 && (r = vmm_config_get(c->ctx->vms, c->vmid, NULL, &text, err)) == 0)
        *out = config_json(c->vmid, text, true);
    free(text);
    return r;
}

struct patch {
    const struct api_call *c;
    json_t *created;
    bool pending;
};

static bool hot_key(const char *k)
{
    return strcmp(k, "name") == 0 || strcmp(k, "description") == 0 ||
           strcmp(k, "onboot") == 0 || strcmp(k, "meta") == 0;
}

static int patch_fn(struct vm_config *cfg, void *opaque, struct berr *err)
{
    struct patch *p = opaque;
    json_t *set = json_object_get(p->c->body, "set"), *del = json_object_get(p->c->body, "delete");
    size_t i;
    json_t *v;
    const char *k;
    int r = 0;
    json_array_foreach(del, i, v) {
        if ((r = vm_config_set(cfg, json_string_value(v), "", err)) < 0)
            return r;
        p->pending |= !hot_key(json_string_value(v));
    }
    json_object_foreach(set, k, v) {
        if (json_object_get(del, k))
            return berr_set(err, EINVAL, "%s: both set and deleted", k);
        p->pending |= !hot_key(k);
    }
    return set ? api_vm_apply_opts(p->c->ctx, p->c->vmid, cfg, set, false, p->created, err) : 0;
}

int h_vm_config_patch(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    if (r < 0)
        return r;
    struct patch p = {c, json_array(), false};
    bool running = false;
    r = vmm_config_edit(c->ctx->vms, c->vmid, patch_fn, &p, &running, err);
    if (r < 0)
        api_vm_destroy_vols(c->ctx, p.created);
    json_decref(p.created);
    char *text = NULL;
    if (r == 0 && (r = vmm_config_get(c->ctx->vms, c->vmid, NULL, &text, err)) == 0) {
        *out = config_json(c->vmid, text, true);
        json_object_set_new(*out, "pending_restart", json_boolean(running && p.pending));
    }
    free(text);
    return r;
}

static int lifecycle(const struct api_call *c, json_t **out, struct berr *err,
                     int (*fn)(struct vmm *, uint32_t, struct berr *))
{
    int r = need_vms(c, err);
    if (r == 0)
        r = fn(c->ctx->vms, c->vmid, err);
    return r < 0 ? r : status_json(c, out, err);
}

int h_vm_start(const struct api_call *c, json_t **out, struct berr *err)
{
    return lifecycle(c, out, err, vmm_start);
}
int h_vm_stop(const struct api_call *c, json_t **out, struct berr *err)
{
    return lifecycle(c, out, err, vmm_stop);
}
int h_vm_reset(const struct api_call *c, json_t **out, struct berr *err)
{
    return lifecycle(c, out, err, vmm_reset);
}
int h_vm_suspend(const struct api_call *c, json_t **out, struct berr *err)
{
    return lifecycle(c, out, err, vmm_suspend);
}
int h_vm_resume(const struct api_call *c, json_t **out, struct berr *err)
{
    return lifecycle(c, out, err, vmm_resume);
}

int h_vm_shutdown(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    if (r < 0)
        return r;
    bool forced = false;
    const char *method = "acpi";
    int timeout = (int)api_get_int(c->body, "timeout", SHUTDOWN_TIMEOUT_S);
    if ((r = vmm_shutdown(c->ctx->vms, c->vmid, timeout, &forced, &method, err)) < 0)
        return r;
    if ((r = status_json(c, out, err)) == 0) {
        json_object_set_new(*out, "forced", json_boolean(forced));
        json_object_set_new(*out, "method", json_string(method));
    }
    return r;
}

int h_vm_agent(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    if (r < 0)
        return r;
    const char *cmd = api_get_str(c->body, "command");
    json_t *args = json_object_get(c->body, "args");
    int timeout = (int)api_get_int(c->body, "timeout", AGENT_TIMEOUT_S);
    const char **argv = NULL;
    if (args) {
        argv = calloc(json_array_size(args) + 1, sizeof(*argv));
        if (!argv)
            return berr_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < json_array_size(args); i++)
            argv[i] = json_string_value(json_array_get(args, i));
    }
    json_t *res = NULL;
    r = vmm_agent(c->ctx->vms, c->vmid, cmd, argv, timeout * 1000, &res, err);
    free(argv);
    if (r == 0)
        *out = json_pack("{s:o}", "result", res);
    return r;
}

int h_vm_console(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    struct vm_info i;
    if (r < 0 || (r = vmm_info(c->ctx->vms, c->vmid, &i, err)) < 0)
        return r;
    char serial[4200], vnc[4200];
    vmm_console_paths(c->ctx->vms, c->vmid, serial, vnc, sizeof serial);
    *out = json_pack("{s:s,s:s}", "serial_socket", serial, "vnc_socket", vnc);
    return 0;
}

struct purge {
    char prefix[32];
    json_t *vols;
};

static int purge_cb(const char *key, const struct vm_volref *v, void *opaque)
{
    struct purge *p = opaque;
    if (strncmp(v->vol, p->prefix, strlen(p->prefix)) == 0) {
        char full[160];
        snprintf(full, sizeof full, "%s/%s", v->pool, v->vol);
        json_array_append_new(p->vols, json_string(full));
    }
    return 0;
}

int h_vm_delete(const struct api_call *c, json_t **out, struct berr *err)
{
    int r = need_vms(c, err);
    if (r < 0)
        return r;
    struct vm_config old;
    vm_config_init(&old);
    if ((r = vmm_undefine(c->ctx->vms, c->vmid, &old, err)) < 0)
        return r;
    struct purge p = {.vols = json_array()};
    snprintf(p.prefix, sizeof p.prefix, "vm-%u-", c->vmid);
    if (api_get_bool(c->query, "purge", false))
        vm_config_foreach_volume(&old, purge_cb, &p);
    vm_config_free(&old);
    api_vm_destroy_vols(c->ctx, p.vols);
    blog_info("VM %u destroyed", c->vmid);
    *out = json_pack("{s:I,s:b,s:o}", "vmid", (json_int_t)c->vmid, "destroyed", 1, "volumes",
                     p.vols);
    return 0;
}
