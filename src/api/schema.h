/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The declaration of every API route: method, path pattern, the schema of its
 * JSON body and of its query string.  This layer (schema.c, router.c,
 * validate.c) knows nothing of the engine: it turns untrusted HTTP input into
 * a validated, normalised request, so it can be unit-tested and fuzzed alone.
 *
 * Normalisation done by api_validate_body()/api_validate_query():
 *  - FT_SIZE fields become JSON integers (bytes), whatever form was sent;
 *  - FT_PROPS objects become objects of strings ("on"/"off", decimal bytes,
 *    "none", or the string sent), ready for bs_vol_set()/bs_pool_set_prop();
 *  - query values become typed (FT_BOOL -> JSON true/false).
 * Handlers may therefore read validated fields without re-checking types. */
#ifndef BERTH_API_SCHEMA_H
#define BERTH_API_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define API_PREFIX "/api/v1"
#define API_BODY_MAX (64 * 1024)
#define API_MAX_CAPS 4

enum api_route_id {
    R_VERSION,
    R_HEALTH,
    R_POOLS_LIST,
    R_POOL_CREATE,
    R_POOLS_IMPORTABLE,
    R_POOL_IMPORT,
    R_POOL_GET,
    R_POOL_PATCH,
    R_POOL_DELETE,
    R_POOL_EXPORT,
    R_POOL_TRIM,
    R_POOL_SYNC,
    R_POOL_CHECK,
    R_POOL_DEBUG,
    R_POOL_SCRUB,
    R_POOL_DEVICE,
    R_POOL_ADD,
    R_VOLS_ALL,
    R_VOLS_LIST,
    R_VOL_CREATE,
    R_VOL_GET,
    R_VOL_PATCH,
    R_VOL_RESIZE,
    R_VOL_DELETE,
    R_VMS_LIST,
    R_VM_CREATE,
    R_VM_GET,
    R_VM_DELETE,
    R_VM_CONFIG_GET,
    R_VM_CONFIG_PATCH,
    R_VM_START,
    R_VM_STOP,
    R_VM_SHUTDOWN,
    R_VM_RESET,
    R_VM_SUSPEND,
    R_VM_RESUME,
    R_VM_AGENT,
    R_VM_CONSOLE,
    R_NETS_LIST,
    R_NET_CREATE,
    R_NET_GET,
    R_NET_DELETE,
    /* snapshots, clones, rollback, send/receive (h_snap.c, h_clone.c, h_send.c, h_recv.c) */
    R_SNAPS_ALL,
    R_SNAPS_LIST,
    R_SNAP_CREATE,
    R_SNAP_GET,
    R_SNAP_DELETE,
    R_SNAP_HOLD,
    R_SNAP_RELEASE,
    R_SNAP_CLONE,
    R_SNAP_SEND,
    R_VOL_ROLLBACK,
    R_VOL_PROMOTE,
    R_VOL_RECV,
    R_VOL_RECV_TOKEN,
    R_VOL_RECV_ABORT,
    /* keys of encrypted volumes (h_key.c) */
    R_POOL_KEY_LOAD,
    R_VOL_KEY_LOAD,
    R_VOL_KEY_UNLOAD,
    R_VOL_KEYS_LIST,
    R_VOL_KEY_ADD,
    R_VOL_KEY_REMOVE,
    R_VOL_KEY_CHANGE,
    /* VM snapshots, rollback, clones (h_vm_snap.c) */
    R_VM_SNAPS_LIST,
    R_VM_SNAP_CREATE,
    R_VM_SNAP_DELETE,
    R_VM_ROLLBACK,
    R_VM_CLONE,
    /* replication jobs (h_repl.c) */
    R_REPLS_LIST,
    R_REPL_CREATE,
    R_REPL_GET,
    R_REPL_DELETE,
    R_REPL_RUN,
    R__COUNT
};

enum api_ftype {
    FT_STR,   /* non-empty string without NUL, at most `max` bytes (0: 255) */
    FT_NAME,  /* pool/volume name (validate_name with `what`) */
    FT_PATH,  /* absolute path, < PATH_MAX, no NUL */
    FT_PATHS, /* array of FT_PATH, min..max elements */
    FT_BOOL,  /* JSON true/false (in a query string: 1/0/true/false/yes/no/on/off/empty) */
    FT_INT,   /* integer in min..max */
    FT_SIZE,  /* integer bytes >= 0, or a size string ("4G"); normalised to integer */
    FT_PROPS, /* object of properties, see struct api_prop */
    FT_BLOCKSIZE, /* FT_SIZE that is a power of two in min..max */
    FT_STRMAP,    /* object whose values are strings (VM config options), <= max keys */
    FT_STRS,      /* array of strings, min..max elements (each may be empty) */
    FT_STR_NULL,  /* FT_STR or null (null: as if absent; removed by normalisation) */
    FT_SNAP,      /* snapshot name "VOL@SNAP", each part a valid name; min 1: the
                     "VOL" part is optional ("@SNAP" or "SNAP" also accepted) */
    FT_SNAPS,     /* array of FT_SNAP (VOL part required), min..max elements */
};

enum api_pkind {
    PK_STR,       /* a non-empty string */
    PK_ONOFF,     /* bool or "on"/"off" -> "on"/"off" */
    PK_SIZE,      /* size -> decimal bytes */
    PK_SIZE_NONE, /* size, "none" or null -> decimal bytes or "none" */
    PK_READONLY,  /* known but not settable: rejected naming it */
};

struct api_prop {
    const char *name;
    enum api_pkind kind;
};

struct api_field {
    const char *name;
    enum api_ftype type;
    bool required;
    const char *what;             /* FT_NAME: "pool" / "volume" */
    int64_t min, max;             /* FT_INT range; FT_PATHS element count; FT_STR max len */
    const struct api_prop *props; /* FT_PROPS: allowed properties, NULL-terminated */
};

struct api_route {
    enum api_route_id id;
    const char *method;
    const char *pattern; /* below API_PREFIX; "{pool}" / "{vol}" / "{snap}" ("VOL@SNAP") /
                            "{vmid}" / "{net}" / "{vmsnap}" (a VM snapshot name)
                            capture a segment */
    const struct api_field *body;  /* NULL-name-terminated; NULL = no body fields */
    const struct api_field *query; /* idem for the query string */
    int ok_status;                 /* 200, 201 */
};

extern const struct api_route api_routes[];
extern const size_t api_nroutes;

/* A matched request path: captures point into `buf` (owned; api_match_free). */
struct api_match {
    const struct api_route *route;
    char *buf;
    const char *caps[API_MAX_CAPS];
    int ncaps;
};

/* Match method + full path ("/api/v1/pools/tank").  Returns 0 and fills m, or
 * -ENOENT (no such path: 404) or -EOPNOTSUPP (path exists with another method:
 * 405; `allow` receives e.g. "GET, DELETE").  Captures are not validated here. */
int api_route_match(const char *method, const char *path, struct api_match *m, char *allow,
                    size_t allow_len, struct berr *err);
void api_match_free(struct api_match *m);

/* Validate the captures of a match ({pool} and {vol} names, {snap} a
 * snapshot name, {vmid} a VMID 100..999999999, {net} an interface name). */
int api_validate_caps(const struct api_match *m, struct berr *err);

/* A snapshot name "VOL@SNAP": both parts valid names (validate_name).  With
 * vol_optional, "@SNAP" and "SNAP" are accepted too (a snapshot of the
 * volume the context implies). */
int api_validate_snapname(const char *s, bool vol_optional, struct berr *err);

/* Parse and validate a body against a route.  An empty body is an empty
 * object.  *out (new reference) is the normalised object. */
int api_validate_body(const struct api_route *r, const char *body, size_t len, json_t **out,
                      struct berr *err);

/* Validate a query (object of strings, as collected from the URL); *out (new
 * reference) holds typed values. */
int api_validate_query(const struct api_route *r, json_t *query, json_t **out, struct berr *err);

/* Accessors for validated objects (types are known to be right). */
const char *api_get_str(json_t *o, const char *key); /* NULL if absent */
bool api_get_bool(json_t *o, const char *key, bool dflt);
int64_t api_get_int(json_t *o, const char *key, int64_t dflt);

#endif
