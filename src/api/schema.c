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

/* ---- queries ---- */

static const struct api_field q_force[] = {
    {"force", FT_BOOL, false, NULL, 0, 0, NULL},
    END,
};

static const struct api_field q_dir[] = {
    {"dir", FT_PATH, false, NULL, 0, 0, NULL},
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
    {R_VOLS_ALL, "GET", "/volumes", NULL, NULL, 200},
    {R_VOLS_LIST, "GET", "/pools/{pool}/volumes", NULL, NULL, 200},
    {R_VOL_CREATE, "POST", "/pools/{pool}/volumes", b_vol_create, NULL, 201},
    {R_VOL_GET, "GET", "/pools/{pool}/volumes/{vol}", NULL, NULL, 200},
    {R_VOL_PATCH, "PATCH", "/pools/{pool}/volumes/{vol}", b_vol_patch, NULL, 200},
    {R_VOL_RESIZE, "POST", "/pools/{pool}/volumes/{vol}/resize", b_vol_resize, NULL, 200},
    {R_VOL_DELETE, "DELETE", "/pools/{pool}/volumes/{vol}", NULL, q_force, 200},
};
const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);
_Static_assert(sizeof(api_routes) / sizeof(api_routes[0]) == R__COUNT, "one route per id");
