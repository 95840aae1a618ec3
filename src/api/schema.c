/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The route table: every endpoint of /api/v1 with its body and query schema.
 * docs/API.md describes the same table for humans; keep both in step.
 * Literal routes come before captures ("/pools/import" before "/pools/{pool}")
 * because the router takes the first match. */
#include "api/schema.h"
#include "berth/store.h"

#include <limits.h>

/* ---- properties ---- */

static const struct api_prop pool_props[] = {
    {"autotrim", PK_ONOFF},
    {"compression", PK_STR},
    {"checksum", PK_STR},
    {"encryption", PK_STR},
    {"keyformat", PK_STR},
    {"keylocation", PK_STR},
    {"scrub-schedule", PK_STR},
    {"scrub_schedule", PK_STR},
    {"name", PK_READONLY},
    {"guid", PK_READONLY},
    {"state", PK_READONLY},
    {"ashift", PK_READONLY},
    {"size", PK_READONLY},
    {"allocated", PK_READONLY},
    {"free", PK_READONLY},
    {"fragmentation", PK_READONLY},
    {"compressratio", PK_READONLY},
    {NULL, 0},
};

static const struct api_prop vol_create_props[] = {
    {"compression", PK_STR},
    {"checksum", PK_STR},
    {"refreservation", PK_SIZE_NONE},
    {"readonly", PK_ONOFF},
    {"encryption", PK_STR},
    {"keyformat", PK_STR},
    {"keylocation", PK_STR},
    {NULL, 0},
};

static const struct api_prop vol_props[] = {
    {"compression", PK_STR},
    {"checksum", PK_STR},
    {"refreservation", PK_SIZE_NONE},
    {"readonly", PK_ONOFF},
    {"volsize", PK_SIZE},
    {"name", PK_READONLY},
    {"volblocksize", PK_READONLY},
    {"used", PK_READONLY},
    {"referenced", PK_READONLY},
    {"logicalused", PK_READONLY},
    {"compressratio", PK_READONLY},
    {"create_txg", PK_READONLY},
    {"createtxg", PK_READONLY},
    {"guid", PK_READONLY},
    {"encryption", PK_READONLY},
    {"keyformat", PK_READONLY},
    {"keylocation", PK_READONLY},
    {"keystatus", PK_READONLY},
    {NULL, 0},
};

/* bs_vol_clone takes these from its props; the rest comes from the snapshot */
static const struct api_prop clone_props[] = {
    {"compression", PK_STR},
    {"checksum", PK_STR},
    {"readonly", PK_ONOFF},
    {NULL, 0},
};

/* ---- bodies ---- */

#define END {NULL, 0, false, NULL, 0, 0, NULL}

static const struct api_field b_pool_create[] = {
    {"name", FT_NAME, true, "pool", 0, 0, NULL},
    {"vdevs", FT_PATHS, false, NULL, 1, BS_POOL_MAX_DEVICES, NULL},
    {"layout", FT_STR, false, NULL, 0, 16, NULL},
    {"spec", FT_STRS, false, NULL, 1, BS_POOL_MAX_DEVICES + BS_POOL_MAX_TOPS, NULL},
    {"size", FT_SIZE, false, NULL, 0, 0, NULL},
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    {"ashift", FT_INT, false, NULL, 0, 16, NULL},
    {"autotrim", FT_BOOL, false, NULL, 0, 0, NULL},
    {"compression", FT_STR, false, NULL, 0, 32, NULL},
    {"checksum", FT_STR, false, NULL, 0, 32, NULL},
    {"encryption", FT_STR, false, NULL, 0, 16, NULL},
    {"keyformat", FT_STR, false, NULL, 0, 16, NULL},
    {"keylocation", FT_STR, false, NULL, 0, 1023, NULL},
    END,
};

static const struct api_field b_pool_import[] = {
    {"name", FT_NAME, false, "pool", 0, 0, NULL},
    {"dir", FT_PATH, false, NULL, 0, 0, NULL},
    {"vdevs", FT_PATHS, false, NULL, 1, BS_POOL_MAX_DEVICES, NULL},
    {"rewind", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field b_pool_patch[] = {
    {"properties", FT_PROPS, true, NULL, 0, 0, pool_props},
    END,
};

static const struct api_field b_force[] = {
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field b_scrub[] = {
    {"action", FT_STR, false, NULL, 0, 16, NULL},
    END,
};

static const struct api_field b_device[] = {
    {"device", FT_STR, true, NULL, 1, 4096, NULL},
    {"action", FT_STR, true, NULL, 1, 16, NULL},
    {"new_device", FT_STR, false, NULL, 1, 4096, NULL}, /* replace, attach */
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field b_pool_add[] = {
    {"spec", FT_STRS, true, NULL, 1, BS_POOL_MAX_DEVICES + BS_POOL_MAX_TOPS, NULL},
    {"size", FT_SIZE, false, NULL, 0, 0, NULL},
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field b_debug[] = {
    {"knob", FT_STR, true, NULL, 0, 128, NULL},
    END,
};

static const struct api_field b_vol_create[] = {
    {"name", FT_NAME, true, "volume", 0, 0, NULL},
    {"size", FT_SIZE, true, NULL, 0, 0, NULL},
    {"volblocksize", FT_BLOCKSIZE, false, NULL, 4096, 131072, NULL},
    {"thick", FT_BOOL, false, NULL, 0, 0, NULL},
    {"properties", FT_PROPS, false, NULL, 0, 0, vol_create_props},
    {"key", FT_STR, false, NULL, 0, 512, NULL},
    {"kdf", FT_STR, false, NULL, 0, 16, NULL},
    {"iterations", FT_INT, false, NULL, 1, 20000000, NULL},
    END,
};

/* key material and where it is: h_key.c */
static const struct api_field b_key[] = {
    {"key", FT_STR, false, NULL, 0, 512, NULL},
    {"keyformat", FT_STR, false, NULL, 0, 16, NULL},
    {"keylocation", FT_STR, false, NULL, 0, 1023, NULL},
    {"kdf", FT_STR, false, NULL, 0, 16, NULL},
    {"iterations", FT_INT, false, NULL, 1, 20000000, NULL},
    {"slot", FT_INT, false, NULL, 0, 7, NULL},
    END,
};

static const struct api_field q_slot[] = {
    {"slot", FT_STR, true, NULL, 0, 1, NULL}, /* 0..7 (h_key.c) */
    END,
};

static const struct api_field b_vol_patch[] = {
    {"properties", FT_PROPS, true, NULL, 0, 0, vol_props},
    END,
};

static const struct api_field b_vol_resize[] = {
    {"size", FT_SIZE, true, NULL, 0, 0, NULL},
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field b_vm_create[] = {
    {"vmid", FT_INT, true, NULL, 100, 999999999, NULL},
    {"options", FT_STRMAP, false, NULL, 0, 256, NULL},
    END,
};

static const struct api_field b_vm_patch[] = {
    {"set", FT_STRMAP, false, NULL, 0, 256, NULL},
    {"delete", FT_STRS, false, NULL, 0, 256, NULL},
    END,
};

static const struct api_field b_vm_shutdown[] = {
    {"timeout", FT_INT, false, NULL, 0, 3600, NULL},
    END,
};

static const struct api_field b_vm_agent[] = {
    {"command", FT_STR, true, NULL, 0, 32, NULL},
    {"args", FT_STRS, false, NULL, 1, 256, NULL},
    {"timeout", FT_INT, false, NULL, 1, 3600, NULL},
    END,
};

static const struct api_field b_net_create[] = {
    {"name", FT_STR, true, NULL, 0, 15, NULL},
    {"cidr", FT_STR_NULL, false, NULL, 0, 63, NULL},
    {"uplink", FT_STR_NULL, false, NULL, 0, 15, NULL},
    END,
};

static const struct api_field b_snap_create[] = {
    {"names", FT_SNAPS, true, NULL, 1, 256, NULL},
    END,
};

static const struct api_field b_snap_hold[] = {
    {"tag", FT_NAME, true, "hold tag", 0, 0, NULL},
    END,
};

static const struct api_field b_snap_clone[] = {
    {"name", FT_NAME, true, "volume", 0, 0, NULL},
    {"properties", FT_PROPS, false, NULL, 0, 0, clone_props},
    END,
};

static const struct api_field b_vol_rollback[] = {
    {"snapshot", FT_NAME, true, "snapshot", 0, 0, NULL},
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field b_vm_snap_create[] = {
    {"name", FT_NAME, true, "snapshot", 0, 0, NULL},
    {"freeze_timeout", FT_INT, false, NULL, 1, 3600, NULL},
    END,
};

static const struct api_field b_vm_rollback[] = {
    {"snapshot", FT_NAME, true, "snapshot", 0, 0, NULL},
    END,
};

static const struct api_field b_vm_clone[] = {
    {"newid", FT_INT, true, NULL, 100, 999999999, NULL},
    {"linked", FT_BOOL, false, NULL, 0, 0, NULL},
    {"snapshot", FT_NAME, false, "snapshot", 0, 0, NULL},
    {"name", FT_STR, false, NULL, 0, 63, NULL},
    END,
};

static const struct api_field b_repl_create[] = {
    {"name", FT_NAME, true, "replication", 0, 0, NULL},
    {"source", FT_STR, true, NULL, 0, 128, NULL},
    {"target", FT_STR, false, NULL, 0, 128, NULL},
    {"target_cmd", FT_STR, false, NULL, 0, 4095, NULL},
    {"remote", FT_STR, false, NULL, 0, 4095, NULL},
    {"every", FT_STR, true, NULL, 0, 64, NULL},
    {"keep", FT_STR, true, NULL, 0, 255, NULL},
    {"keep_target", FT_STR, false, NULL, 0, 255, NULL},
    {"prefix", FT_STR, false, NULL, 0, 64, NULL},
    {"raw", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field b_repl_run[] = {
    {"wait", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

/* ---- queries ---- */

static const struct api_field q_force[] = {
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field q_dir[] = {
    {"dir", FT_PATH, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field q_purge[] = {
    {"purge", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field q_vol_delete[] = {
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    {"recursive", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field q_snaps_list[] = {
    {"volume", FT_NAME, false, "volume", 0, 0, NULL},
    END,
};

static const struct api_field q_snap_delete[] = {
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    {"defer", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field q_snap_send[] = {
    {"from", FT_SNAP, false, NULL, 1, 0, NULL}, /* "A", "@A" or "VOL@A" */
    {"intermediates", FT_BOOL, false, NULL, 0, 0, NULL},
    {"token", FT_STR, false, NULL, 0, 4096, NULL},
    {"raw", FT_BOOL, false, NULL, 0, 0, NULL}, /* encrypted blocks as stored */
    END,
};

static const struct api_field q_vol_recv[] = {
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    {"resumable", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

/* ---- routes ---- */

const struct api_route api_routes[] = {
    {R_VERSION, "GET", "/version", NULL, NULL, 200},
    {R_HEALTH, "GET", "/health", NULL, NULL, 200},
    {R_POOLS_LIST, "GET", "/pools", NULL, NULL, 200},
    {R_POOL_CREATE, "POST", "/pools", b_pool_create, NULL, 201},
    {R_POOLS_IMPORTABLE, "GET", "/pools/importable", NULL, q_dir, 200},
    {R_POOL_IMPORT, "POST", "/pools/import", b_pool_import, NULL, 201},
    {R_POOL_GET, "GET", "/pools/{pool}", NULL, NULL, 200},
    {R_POOL_PATCH, "PATCH", "/pools/{pool}", b_pool_patch, NULL, 200},
    {R_POOL_DELETE, "DELETE", "/pools/{pool}", NULL, q_force, 200},
    {R_POOL_EXPORT, "POST", "/pools/{pool}/export", b_force, q_force, 200},
    {R_POOL_TRIM, "POST", "/pools/{pool}/trim", NULL, NULL, 200},
    {R_POOL_SYNC, "POST", "/pools/{pool}/sync", NULL, NULL, 200},
    {R_POOL_CHECK, "POST", "/pools/{pool}/check", NULL, NULL, 200},
    {R_POOL_DEBUG, "POST", "/pools/{pool}/debug", b_debug, NULL, 200},
    {R_POOL_SCRUB, "POST", "/pools/{pool}/scrub", b_scrub, NULL, 200},
    {R_POOL_DEVICE, "POST", "/pools/{pool}/devices", b_device, NULL, 200},
    {R_POOL_ADD, "POST", "/pools/{pool}/add", b_pool_add, NULL, 200},
    {R_VOLS_ALL, "GET", "/volumes", NULL, NULL, 200},
    {R_VOLS_LIST, "GET", "/pools/{pool}/volumes", NULL, NULL, 200},
    {R_VOL_CREATE, "POST", "/pools/{pool}/volumes", b_vol_create, NULL, 201},
    {R_VOL_GET, "GET", "/pools/{pool}/volumes/{vol}", NULL, NULL, 200},
    {R_VOL_PATCH, "PATCH", "/pools/{pool}/volumes/{vol}", b_vol_patch, NULL, 200},
    {R_VOL_RESIZE, "POST", "/pools/{pool}/volumes/{vol}/resize", b_vol_resize, NULL, 200},
    {R_VOL_DELETE, "DELETE", "/pools/{pool}/volumes/{vol}", NULL, q_vol_delete, 200},
    {R_VMS_LIST, "GET", "/vms", NULL, NULL, 200},
    {R_VM_CREATE, "POST", "/vms", b_vm_create, NULL, 201},
    {R_VM_GET, "GET", "/vms/{vmid}", NULL, NULL, 200},
    {R_VM_DELETE, "DELETE", "/vms/{vmid}", NULL, q_purge, 200},
    {R_VM_CONFIG_GET, "GET", "/vms/{vmid}/config", NULL, NULL, 200},
    {R_VM_CONFIG_PATCH, "PATCH", "/vms/{vmid}/config", b_vm_patch, NULL, 200},
    {R_VM_START, "POST", "/vms/{vmid}/start", NULL, NULL, 200},
    {R_VM_STOP, "POST", "/vms/{vmid}/stop", NULL, NULL, 200},
    {R_VM_SHUTDOWN, "POST", "/vms/{vmid}/shutdown", b_vm_shutdown, NULL, 200},
    {R_VM_RESET, "POST", "/vms/{vmid}/reset", NULL, NULL, 200},
    {R_VM_SUSPEND, "POST", "/vms/{vmid}/suspend", NULL, NULL, 200},
    {R_VM_RESUME, "POST", "/vms/{vmid}/resume", NULL, NULL, 200},
    {R_VM_AGENT, "POST", "/vms/{vmid}/agent", b_vm_agent, NULL, 200},
    {R_VM_CONSOLE, "GET", "/vms/{vmid}/console", NULL, NULL, 200},
    {R_NETS_LIST, "GET", "/networks", NULL, NULL, 200},
    {R_NET_CREATE, "POST", "/networks", b_net_create, NULL, 201},
    {R_NET_GET, "GET", "/networks/{net}", NULL, NULL, 200},
    {R_NET_DELETE, "DELETE", "/networks/{net}", NULL, NULL, 200},
    /* snapshots, clones, rollback, send/receive; send and recv stream their
     * data outside this table's JSON rules (api/stream.h) */
    {R_SNAPS_ALL, "GET", "/snapshots", NULL, NULL, 200},
    {R_SNAPS_LIST, "GET", "/pools/{pool}/snapshots", NULL, q_snaps_list, 200},
    {R_SNAP_CREATE, "POST", "/pools/{pool}/snapshots", b_snap_create, NULL, 201},
    {R_SNAP_GET, "GET", "/pools/{pool}/snapshots/{snap}", NULL, NULL, 200},
    {R_SNAP_DELETE, "DELETE", "/pools/{pool}/snapshots/{snap}", NULL, q_snap_delete, 200},
    {R_SNAP_HOLD, "POST", "/pools/{pool}/snapshots/{snap}/hold", b_snap_hold, NULL, 200},
    {R_SNAP_RELEASE, "POST", "/pools/{pool}/snapshots/{snap}/release", b_snap_hold, NULL, 200},
    {R_SNAP_CLONE, "POST", "/pools/{pool}/snapshots/{snap}/clone", b_snap_clone, NULL, 201},
    {R_SNAP_SEND, "GET", "/pools/{pool}/snapshots/{snap}/send", NULL, q_snap_send, 200},
    {R_VOL_ROLLBACK, "POST", "/pools/{pool}/volumes/{vol}/rollback", b_vol_rollback, NULL, 200},
    {R_VOL_PROMOTE, "POST", "/pools/{pool}/volumes/{vol}/promote", NULL, NULL, 200},
    {R_VOL_RECV, "POST", "/pools/{pool}/volumes/{vol}/recv", NULL, q_vol_recv, 201},
    {R_VOL_RECV_TOKEN, "GET", "/pools/{pool}/volumes/{vol}/recv-token", NULL, NULL, 200},
    {R_VOL_RECV_ABORT, "DELETE", "/pools/{pool}/volumes/{vol}/recv", NULL, NULL, 200},
    /* keys of encrypted volumes (h_key.c) */
    {R_POOL_KEY_LOAD, "POST", "/pools/{pool}/keys/load", b_key, NULL, 200},
    {R_VOL_KEY_LOAD, "POST", "/pools/{pool}/volumes/{vol}/key/load", b_key, NULL, 200},
    {R_VOL_KEY_UNLOAD, "POST", "/pools/{pool}/volumes/{vol}/key/unload", NULL, NULL, 200},
    {R_VOL_KEYS_LIST, "GET", "/pools/{pool}/volumes/{vol}/keys", NULL, NULL, 200},
    {R_VOL_KEY_ADD, "POST", "/pools/{pool}/volumes/{vol}/keys", b_key, NULL, 201},
    {R_VOL_KEY_REMOVE, "DELETE", "/pools/{pool}/volumes/{vol}/keys", NULL, q_slot, 200},
    {R_VOL_KEY_CHANGE, "POST", "/pools/{pool}/volumes/{vol}/key/change", b_key, NULL, 200},
    /* VM snapshots, rollback, clones */
    {R_VM_SNAPS_LIST, "GET", "/vms/{vmid}/snapshots", NULL, NULL, 200},
    {R_VM_SNAP_CREATE, "POST", "/vms/{vmid}/snapshots", b_vm_snap_create, NULL, 201},
    {R_VM_SNAP_DELETE, "DELETE", "/vms/{vmid}/snapshots/{vmsnap}", NULL, NULL, 200},
    {R_VM_ROLLBACK, "POST", "/vms/{vmid}/rollback", b_vm_rollback, NULL, 200},
    {R_VM_CLONE, "POST", "/vms/{vmid}/clone", b_vm_clone, NULL, 201},
    /* replication jobs (h_repl.c) */
    {R_REPLS_LIST, "GET", "/replications", NULL, NULL, 200},
    {R_REPL_CREATE, "POST", "/replications", b_repl_create, NULL, 201},
    {R_REPL_GET, "GET", "/replications/{repl}", NULL, NULL, 200},
    {R_REPL_DELETE, "DELETE", "/replications/{repl}", NULL, NULL, 200},
    {R_REPL_RUN, "POST", "/replications/{repl}/run", b_repl_run, NULL, 200},
};
const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);
_Static_assert(sizeof(api_routes) / sizeof(api_routes[0]) == R__COUNT, "one route per id");
