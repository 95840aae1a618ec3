/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request dispatch, independent of HTTP: match the route, validate captures,
 * query and body, run the handler, and turn a -errno into a JSON error with
 * the fitting status.  http.c calls api_dispatch(); unit tests call it too. */
#include "common/util.h"
#include "api/handlers.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

static const api_handler_fn handlers[R__COUNT] = {
    [R_VERSION] = h_version,
    [R_HEALTH] = h_health,
    [R_POOLS_LIST] = h_pools_list,
    [R_POOL_CREATE] = h_pool_create,
    [R_POOLS_IMPORTABLE] = h_pools_importable,
    [R_POOL_IMPORT] = h_pool_import,
    [R_POOL_GET] = h_pool_get,
    [R_POOL_PATCH] = h_pool_patch,
    [R_POOL_DELETE] = h_pool_delete,
    [R_POOL_EXPORT] = h_pool_export,
    [R_POOL_TRIM] = h_pool_trim,
    [R_POOL_SYNC] = h_pool_sync,
    [R_POOL_CHECK] = h_pool_check,
    [R_POOL_DEBUG] = h_pool_debug,
    [R_POOL_SCRUB] = h_pool_scrub,
    [R_POOL_DEVICE] = h_pool_device,
    [R_POOL_ADD] = h_pool_add,
    [R_VOLS_ALL] = h_vols_all,
    [R_VOLS_LIST] = h_vols_list,
    [R_VOL_CREATE] = h_vol_create,
    [R_VOL_GET] = h_vol_get,
    [R_VOL_PATCH] = h_vol_patch,
    [R_VOL_RESIZE] = h_vol_resize,
    [R_VOL_DELETE] = h_vol_delete,
    [R_VMS_LIST] = h_vms_list,
    [R_VM_CREATE] = h_vm_create,
    [R_VM_GET] = h_vm_get,
    [R_VM_DELETE] = h_vm_delete,
    [R_VM_CONFIG_GET] = h_vm_config_get,
    [R_VM_CONFIG_PATCH] = h_vm_config_patch,
    [R_VM_START] = h_vm_start,
    [R_VM_STOP] = h_vm_stop,
    [R_VM_SHUTDOWN] = h_vm_shutdown,
    [R_VM_RESET] = h_vm_reset,
    [R_VM_SUSPEND] = h_vm_suspend,
    [R_VM_RESUME] = h_vm_resume,
    [R_VM_AGENT] = h_vm_agent,
    [R_VM_CONSOLE] = h_vm_console,
    [R_NETS_LIST] = h_nets_list,
    [R_NET_CREATE] = h_net_create,
    [R_NET_GET] = h_net_get,
    [R_NET_DELETE] = h_net_delete,
    [R_SNAPS_ALL] = h_snaps_all,
    [R_SNAPS_LIST] = h_snaps_list,
    [R_SNAP_CREATE] = h_snap_create,
    [R_SNAP_GET] = h_snap_get,
    [R_SNAP_DELETE] = h_snap_delete,
    [R_SNAP_HOLD] = h_snap_hold,
    [R_SNAP_RELEASE] = h_snap_release,
    [R_SNAP_CLONE] = h_snap_clone,
    [R_SNAP_SEND] = h_stream_only,
    [R_VOL_ROLLBACK] = h_vol_rollback,
    [R_VOL_PROMOTE] = h_vol_promote,
    [R_VOL_RECV] = h_stream_only,
    [R_VOL_RECV_TOKEN] = h_vol_recv_token,
    [R_VOL_RECV_ABORT] = h_vol_recv_abort,
    [R_POOL_KEY_LOAD] = h_pool_key_load,
    [R_VOL_KEY_LOAD] = h_key_load,
    [R_VOL_KEY_UNLOAD] = h_key_unload,
    [R_VOL_KEYS_LIST] = h_keys_list,
    [R_VOL_KEY_ADD] = h_key_add,
    [R_VOL_KEY_REMOVE] = h_key_remove,
    [R_VOL_KEY_CHANGE] = h_key_change,
    [R_VM_SNAPS_LIST] = h_vm_snaps_list,
    [R_VM_SNAP_CREATE] = h_vm_snap_create,
    [R_VM_SNAP_DELETE] = h_vm_snap_delete,
    [R_VM_ROLLBACK] = h_vm_rollback,
    [R_VM_CLONE] = h_vm_clone,
    [R_REPLS_LIST] = h_repls_list,
    [R_REPL_CREATE] = h_repl_create,
    [R_REPL_GET] = h_repl_get,
    [R_REPL_DELETE] = h_repl_delete,
    [R_REPL_RUN] = h_repl_run,
};

int api_http_status(int code)
{
    if (code < 0)
        code = -code;
    switch (code) {
    case 0: return 200;
    case EINVAL:
    case ERANGE:
    case ENAMETOOLONG:
    case EISDIR:
    case ENOTDIR:
    case ENOTBLK:
    case ENOTSUP: return 400;
    case EPERM:
    case EACCES: return 403;
    case ENOENT: return 404;
    case EEXIST:
    case EBUSY:
    case EROFS:
    case API_EUNAVAIL: return 409;
    case EFBIG: return 413;
    case EBADMSG:
    case EPROTO: return 400; /* a send stream that fails its checks */
    case EXDEV: return 409;  /* an incremental stream on the wrong base */
    case ENOSPC: return 507;
    case ECANCELED: return 503;
    case ETIMEDOUT: return 504;
    default: return 500;
    }
}

static const char *code_name(int code)
{
    if (code < 0)
        code = -code;
    if (code == EFBIG)
        return "too_large";
    if (code == API_EUNAVAIL)
        return "unavailable";
    if (code == EBADMSG || code == EPROTO)
        return "bad_stream";
    if (code == EXDEV)
        return "mismatch";
    return berr_code_name(code);
}

json_t *api_error_json(int code, const char *message)
{
    /* messages quote client input: jansson refuses invalid UTF-8 */
    char clean[BERR_MSG_MAX * 2];
    utf8_sanitize(message && *message ? message : strerror(code < 0 ? -code : code), clean,
                  sizeof clean);
    return json_pack("{s:{s:s,s:s}}", "error", "code", code_name(code), "message", clean);
}

static int fail(int rc, const struct berr *err, json_t **resp)
{
    *resp = api_error_json(rc, err->msg);
    return api_http_status(rc);
}

int api_dispatch(struct api_ctx *ctx, const char *method, const char *path, json_t *query,
                 const char *body, size_t body_len, json_t **resp, char *allow,
                 size_t allow_len)
{
    struct berr err = {0};
    struct api_match m;
    *resp = NULL;
    int rc = api_route_match(method, path, &m, allow, allow_len, &err);
    if (rc == -EOPNOTSUPP) {
        *resp = json_pack("{s:{s:s,s:s}}", "error", "code", "method_not_allowed", "message",
                          err.msg);
        return 405;
    }
    if (rc < 0)
        return fail(rc, &err, resp);

    json_t *empty = NULL, *q = NULL, *b = NULL;
    if (!query)
        query = empty = json_object();
    rc = api_validate_caps(&m, &err);
    if (rc == 0)
        rc = api_validate_query(m.route, query, &q, &err);
    if (rc == 0)
        rc = api_validate_body(m.route, body, body_len, &b, &err);
    int status;
    if (rc < 0) {
        status = fail(rc, &err, resp);
    } else {
        struct api_call call = {
            .ctx = ctx,
            .pool = m.ncaps > 0 ? m.caps[0] : NULL,
            .vol = m.ncaps > 1 ? m.caps[1] : NULL,
            .body = b,
            .query = q,
        };
        /* {vmid} and {net} come first in their routes; {vmsnap} follows {vmid} */
        if (strstr(m.route->pattern, "{vmid}")) {
            call.vmid = (uint32_t)strtoul(m.caps[0], NULL, 10);
            call.pool = NULL;
            call.vol = NULL;
            call.snap = strstr(m.route->pattern, "{vmsnap}") ? m.caps[1] : NULL;
        } else if (strstr(m.route->pattern, "{net}")) {
            call.net = m.caps[0];
            call.pool = NULL;
        } else if (strstr(m.route->pattern, "{repl}")) {
            call.repl = m.caps[0];
            call.pool = NULL;
        } else if (strstr(m.route->pattern, "{snap}")) {
            call.snap = call.vol;
            call.vol = NULL;
        }
        json_t *out = NULL;
        rc = handlers[m.route->id](&call, &out, &err);
        if (rc < 0) {
            json_decref(out);
            status = fail(rc, &err, resp);
        } else if (!out) {
            err.code = ENOMEM;
            status = fail(-ENOMEM, &err, resp);
        } else {
            *resp = out;
            status = m.route->ok_status;
        }
    }
    if (status >= 500)
        blog_err("api: %s %s -> %d %s", method, path, status, err.msg);
    else if (status >= 400)
        blog_debug("api: %s %s -> %d %s", method, path, status, err.msg);
    json_decref(empty);
    json_decref(q);
    json_decref(b);
    api_match_free(&m);
    return status;
}
