/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal interface between the dispatcher (dispatch.c) and the route
 * handlers (h_sys.c, h_pool.c, h_import.c, h_vol.c), plus the JSON renderers
 * (render.c) and helpers they share (h_common.c).
 *
 * A handler receives a validated call (captures are valid names, the body and
 * query are normalised as schema.h says), returns 0 and sets *out (a new
 * object), or returns -errno with `err` filled.  It never logs client errors:
 * the dispatcher logs failed requests once at debug level. */
#ifndef BERTH_API_HANDLERS_H
#define BERTH_API_HANDLERS_H

#include <jansson.h>
#include <stdint.h>

#include "api/api.h"
#include "api/schema.h"
#include "berth/store.h"

/* errno for "pool is UNAVAIL" (HTTP 409, code "unavailable") */
#define API_EUNAVAIL ENXIO

struct api_call {
    struct api_ctx *ctx;
    const char *pool; /* {pool} capture or NULL */
    const char *vol;  /* {vol} capture or NULL */
    uint32_t vmid;    /* {vmid} capture or 0 */
    const char *net;  /* {net} capture or NULL */
    const char *repl; /* {repl} capture or NULL */
    const char *snap; /* {snap} capture ("VOL@SNAP"), {vmsnap} (a VM snapshot
                         name) or NULL */
    json_t *body;     /* normalised object, never NULL */
    json_t *query;    /* typed object, never NULL */
};

typedef int (*api_handler_fn)(const struct api_call *c, json_t **out, struct berr *err);

int h_version(const struct api_call *c, json_t **out, struct berr *err);
int h_health(const struct api_call *c, json_t **out, struct berr *err);

int h_pools_list(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_create(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_get(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_patch(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_delete(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_export(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_trim(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_sync(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_check(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_debug(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_scrub(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_device(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_add(const struct api_call *c, json_t **out, struct berr *err);

int h_pools_importable(const struct api_call *c, json_t **out, struct berr *err);
int h_pool_import(const struct api_call *c, json_t **out, struct berr *err);

int h_vols_all(const struct api_call *c, json_t **out, struct berr *err);
int h_vols_list(const struct api_call *c, json_t **out, struct berr *err);
int h_vol_create(const struct api_call *c, json_t **out, struct berr *err);
int h_vol_get(const struct api_call *c, json_t **out, struct berr *err);
int h_vol_patch(const struct api_call *c, json_t **out, struct berr *err);
int h_vol_resize(const struct api_call *c, json_t **out, struct berr *err);
int h_vol_delete(const struct api_call *c, json_t **out, struct berr *err);

int h_vms_list(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_create(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_get(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_delete(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_config_get(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_config_patch(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_start(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_stop(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_shutdown(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_reset(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_suspend(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_resume(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_agent(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_console(const struct api_call *c, json_t **out, struct berr *err);

int h_nets_list(const struct api_call *c, json_t **out, struct berr *err);
int h_net_create(const struct api_call *c, json_t **out, struct berr *err);
int h_net_get(const struct api_call *c, json_t **out, struct berr *err);
int h_net_delete(const struct api_call *c, json_t **out, struct berr *err);

/* snapshots (h_snap.c), clones and rollback (h_clone.c), receive state
 * (h_recv.c); send and recv themselves stream (api/stream.h) and answer
 * h_stream_only when reached through api_dispatch */
int h_snaps_all(const struct api_call *c, json_t **out, struct berr *err);
int h_snaps_list(const struct api_call *c, json_t **out, struct berr *err);
int h_snap_create(const struct api_call *c, json_t **out, struct berr *err);
int h_snap_get(const struct api_call *c, json_t **out, struct berr *err);
int h_snap_delete(const struct api_call *c, json_t **out, struct berr *err);
int h_snap_hold(const struct api_call *c, json_t **out, struct berr *err);
int h_snap_release(const struct api_call *c, json_t **out, struct berr *err);
int h_snap_clone(const struct api_call *c, json_t **out, struct berr *err);
int h_vol_rollback(const struct api_call *c, json_t **out, struct berr *err);
int h_vol_promote(const struct api_call *c, json_t **out, struct berr *err);
int h_vol_recv_token(const struct api_call *c, json_t **out, struct berr *err);
int h_vol_recv_abort(const struct api_call *c, json_t **out, struct berr *err);

/* keys of encrypted volumes (h_key.c) */
int h_pool_key_load(const struct api_call *c, json_t **out, struct berr *err);
int h_key_load(const struct api_call *c, json_t **out, struct berr *err);
int h_key_unload(const struct api_call *c, json_t **out, struct berr *err);
int h_keys_list(const struct api_call *c, json_t **out, struct berr *err);
int h_key_add(const struct api_call *c, json_t **out, struct berr *err);
int h_key_remove(const struct api_call *c, json_t **out, struct berr *err);
int h_key_change(const struct api_call *c, json_t **out, struct berr *err);
/* The bs_key of a body ("key", "keyformat", "keylocation", "kdf",
 * "iterations"); pointers into the body.  api_key_wipe cleanses "key". */
int api_key_from_body(json_t *body, struct bs_key *k, struct berr *err);
void api_key_wipe(json_t *body);
int h_stream_only(const struct api_call *c, json_t **out, struct berr *err);

/* VM snapshots, rollback, clones (h_vm_snap.c) */
int h_vm_snaps_list(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_snap_create(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_snap_delete(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_rollback(const struct api_call *c, json_t **out, struct berr *err);
int h_vm_clone(const struct api_call *c, json_t **out, struct berr *err);
/* The engine side of VM snapshots (vmstore_snap.c); ops->opaque is ctx. */
struct vm_snap_ops;
void api_vm_snap_ops(struct api_ctx *ctx, struct vm_snap_ops *ops);

/* replication jobs (h_repl.c, over ctx->repl) */
int h_repls_list(const struct api_call *c, json_t **out, struct berr *err);
int h_repl_create(const struct api_call *c, json_t **out, struct berr *err);
int h_repl_get(const struct api_call *c, json_t **out, struct berr *err);
int h_repl_delete(const struct api_call *c, json_t **out, struct berr *err);
int h_repl_run(const struct api_call *c, json_t **out, struct berr *err);

/* ---- h_vm_opts.c: create options / config edits that allocate volumes ---- */

struct vm_config;
/* Apply `opts` (object of strings, validated shape) to c, as POST /vms and
 * PATCH set do: POOL:SIZE disks are created (names recorded in *created,
 * a JSON array of "pool/vol" the caller destroys on a later failure).
 * creating: also the create-only keys (tpm, cdrom) and the create defaults
 * (efidisk for ovmf, disk options). */
int api_vm_apply_opts(struct api_ctx *ctx, uint32_t vmid, struct vm_config *c, json_t *opts,
                      bool creating, json_t *created, struct berr *err);
/* Destroy the volumes listed in `created` (best effort, logged). */
void api_vm_destroy_vols(struct api_ctx *ctx, json_t *created);

/* ---- h_common.c ---- */

/* Read-lock the table and find an available pool; on failure the lock is
 * released and -ENOENT / -API_EUNAVAIL returned.  On success the caller
 * must call pooltab_unlock(c->ctx->pools). */
int api_pool_acquire(const struct api_call *c, struct pool_entry **e, struct berr *err);

/* NBD connections to "pool/vol" (0 without an NBD server). */
unsigned api_export_conns(struct api_ctx *ctx, const char *pool, const char *vol);
/* Connections to every volume of a pool; `names` receives a list of the busy
 * exports ("tank/a, tank/b"). */
unsigned api_pool_conns(struct api_ctx *ctx, bs_pool *p, char *names, size_t len);
/* Disconnect every NBD client of the pool's volumes and wait (bounded) until
 * the backend closed their handles; -EBUSY if some remain. */
int api_pool_kick(struct api_ctx *ctx, struct pool_entry *e, struct berr *err);
/* Disconnect the clients of one export and wait (bounded) for them to go. */
int api_export_kick(struct api_ctx *ctx, const char *pool, const char *vol, struct berr *err);

/* Before changing export "pool/name" (a volume or "vol@snap") under its
 * clients: EBUSY naming the client count (`verb`: what force
 * would then do, "destroy it")
 * unless force, which disconnects them. */
int api_export_claim(struct api_ctx *ctx, const char *pool, const char *name, bool force,
                     const char *verb, struct berr *err);
/* EBUSY if a running VM uses pool/vol. */
int api_vol_vm_check(struct api_ctx *ctx, const char *pool, const char *vol, struct berr *err);

/* A listing {key: [...]} of one pool (c->pool) or of every available pool:
 * fill appends the objects of pool e to arr (the table read-locked). */
typedef int (*api_fill_fn)(const struct api_call *c, struct pool_entry *e, json_t *arr,
                           struct berr *err);
int api_list(const struct api_call *c, bool all_pools, const char *key, api_fill_fn fill,
             json_t **out, struct berr *err);

void api_persist(struct api_ctx *ctx);

/* ---- h_vol.c: shared with h_clone.c ---- */

/* Render a volume with its space accounting (pool held by the caller). */
int api_get_vol(struct api_ctx *ctx, struct pool_entry *e, const char *name, json_t **out,
                struct berr *err);
/* Apply create-time properties (an FT_PROPS object of strings: compression,
 * checksum, refreservation, readonly) to props. */
int api_vol_apply_props(json_t *obj, struct bs_vol_props *props, struct berr *err);

/* ---- render.c ---- */

json_t *render_pool(struct api_ctx *ctx, struct pool_entry *e);
/* off|none|daily|weekly|monthly|N{s,m,h,d} -> seconds (0 = off). */
int parse_scrub_schedule(const char *v, uint64_t *every, struct berr *err);
json_t *render_vol(struct api_ctx *ctx, const char *pool, const struct bs_vol_props *p);
/* "uri" (and "uri_tcp" with --nbd-tcp) of the NBD export "pool/vol[@snap]". */
void render_nbd_uris(struct api_ctx *ctx, json_t *o, const char *export_name);
/* A ratio rounded to 2 decimals (1.00 for nonsense values). */
json_t *json_ratio(double r);
/* json_integer for uint64 values (saturating; sizes never get near 2^63). */
json_t *json_u64(uint64_t v);
/* Decimal string of a 64-bit GUID. */
json_t *json_guid(uint64_t v);

#endif
