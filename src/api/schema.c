/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The route table: every endpoint of /api/v1 with its body and query schema.
 * docs/API.md describes the same table for humans; keep both in step.
 * Literal routes come before captures ("/pools/import" before "/pools/{pool}")
 * because the router takes the first match. */
#include "api/schema.h"

#include <limits.h>

/* ---- properties ---- */

static const struct api_prop pool_props[] = {
    {"autotrim", PK_ONOFF},
    {"compression", PK_STR},
    {"checksum", PK_STR},
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
    {NULL, 0},
};

/* ---- bodies ---- */

#define END {NULL, 0, false, NULL, 0, 0, NULL}

static const struct api_field b_pool_create[] = {
    {"name", FT_NAME, true, "pool", 0, 0, NULL},
    {"vdevs", FT_PATHS, true, NULL, 1, 8, NULL},
    {"layout", FT_STR, false, NULL, 0, 16, NULL},
    {"size", FT_SIZE, false, NULL, 0, 0, NULL},
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    {"ashift", FT_INT, false, NULL, 0, 16, NULL},
    {"autotrim", FT_BOOL, false, NULL, 0, 0, NULL},
    {"compression", FT_STR, false, NULL, 0, 32, NULL},
    {"checksum", FT_STR, false, NULL, 0, 32, NULL},
    END,
};

static const struct api_field b_pool_import[] = {
    {"name", FT_NAME, false, "pool", 0, 0, NULL},
    {"dir", FT_PATH, false, NULL, 0, 0, NULL},
    {"vdevs", FT_PATHS, false, NULL, 1, 8, NULL},
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
    {R_VOLS_ALL, "GET", "/volumes", NULL, NULL, 200},
    {R_VOLS_LIST, "GET", "/pools/{pool}/volumes", NULL, NULL, 200},
    {R_VOL_CREATE, "POST", "/pools/{pool}/volumes", b_vol_create, NULL, 201},
    {R_VOL_GET, "GET", "/pools/{pool}/volumes/{vol}", NULL, NULL, 200},
    {R_VOL_PATCH, "PATCH", "/pools/{pool}/volumes/{vol}", b_vol_patch, NULL, 200},
    {R_VOL_RESIZE, "POST", "/pools/{pool}/volumes/{vol}/resize", b_vol_resize, NULL, 200},
    {R_VOL_DELETE, "DELETE", "/pools/{pool}/volumes/{vol}", NULL, q_force, 200},
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
};
const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);
_Static_assert(sizeof(api_routes) / sizeof(api_routes[0]) == R__COUNT, "one route per id");
