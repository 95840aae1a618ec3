/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth snapshot ...: create (several volumes in one atomic call), list,
 * get, destroy, hold, release.  Each is one call on /pools/{pool}/snapshots;
 * a snapshot is named POOL/VOL@NAME on the command line and VOL@NAME in the
 * API, within its pool. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void help_snapshot(FILE *f)
{
    fprintf(f,
            "Usage: berth snapshot [-r] POOL/VOL@NAME [POOL/VOL@NAME...]\n"
            "       berth snapshot COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "  POOL/VOL@NAME...            snapshot the volumes, all in one atomic step (they\n"
            "                              capture the same moment); one pool per call\n"
            "  -r POOL@NAME                snapshot every volume of POOL the same way\n"
            "  list [-p] [-H] [POOL[/VOL]] NAME USED REFER CREATION HOLDS\n"
            "  get PROP[,PROP...]|all POOL/VOL@NAME\n"
            "                              NAME PROPERTY VALUE; properties: used, referenced,\n"
            "                              logicalreferenced, compressratio, volsize,\n"
            "                              volblocksize, creation, createtxg, guid, userrefs,\n"
            "                              holds, clones, defer_destroy, nbd_clients, uri\n"
            "  destroy [-d] [-f] POOL/VOL@NAME\n"
            "                              destroy (-d: if clones depend on it, hide it now and\n"
            "                              destroy it with the last clone; -f: disconnect its\n"
            "                              NBD clients first)\n"
            "  hold TAG POOL/VOL@NAME      keep it from being destroyed until released\n"
            "  release TAG POOL/VOL@NAME\n"
            "\n"
            "A snapshot is the read-only NBD export POOL/VOL@NAME.  See also berth rollback,\n"
            "clone, promote, send, recv.\n"
            "Options: -p exact numbers, -H no header, --json the API's JSON.\n");
}

#define GETOPT_LOOP(shortopts, longopts, ...) \
    CLI_GETOPT_LOOP("snapshot", help_snapshot, shortopts, longopts, __VA_ARGS__)

static const struct option common_lo[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};

static json_t *get(json_t *o, const char *k)
{
    return json_object_get(o, k);
}

int cli_split_snap(const char *cmd, const char *arg, char **pool, char **snap)
{
    *pool = *snap = NULL;
    const char *slash = strchr(arg, '/');
    const char *at = strchr(arg, '@');
    if (!slash || slash == arg || !at || at < slash || at == slash + 1 || !at[1] ||
        strchr(slash + 1, '/') || strchr(at + 1, '@'))
        return cli_usage_error(cmd, "'%s' is not a snapshot: expected POOL/VOLUME@NAME", arg);
    *pool = strndup(arg, (size_t)(slash - arg));
    *snap = strdup(slash + 1);
    if (!*pool || !*snap) {
        free(*pool);
        free(*snap);
        return cli_fail("out of memory");
    }
    return EXIT_OK;
}

int cli_snap_path(const char *cmd, const char *arg, const char *suffix, char *out, size_t len)
{
    _cleanup_free_ char *pool = NULL, *snap = NULL;
    int rc = cli_split_snap(cmd, arg, &pool, &snap);
    if (rc != EXIT_OK)
        return rc;
    _cleanup_free_ char *p = cli_escape(pool), *s = cli_escape(snap);
    if (!p || !s)
        return cli_fail("out of memory");
    snprintf(out, len, "/pools/%s/snapshots/%s%s", p, s, suffix);
    return EXIT_OK;
}

/* -r POOL@NAME: NAME for every volume of POOL, appended to names. */
static int add_pool_volumes(struct cli *c, const char *arg, json_t *names, char **pool)
{
    const char *at = strchr(arg, '@');
    if (!at || at == arg || !at[1] || strchr(arg, '/') || strchr(at + 1, '@'))
        return cli_usage_error("snapshot", "'%s' is neither POOL@NAME nor POOL/VOLUME@NAME", arg);
    *pool = strndup(arg, (size_t)(at - arg));
    _cleanup_free_ char *e = *pool ? cli_escape(*pool) : NULL;
    if (!e)
        return cli_fail("out of memory");
    char path[512];
    snprintf(path, sizeof(path), "/pools/%s/volumes", e);
    _cleanup_json_ json_t *resp = NULL;
    int rc = cli_call(c, "GET", path, NULL, &resp);
    if (rc != EXIT_OK)
        return rc;
    size_t i;
    json_t *v;
    json_array_foreach(get(resp, "volumes"), i, v) {
        char name[256];
        snprintf(name, sizeof(name), "%s%s", json_string_value(get(v, "name")), at);
        json_array_append_new(names, json_string(name));
    }
    if (json_array_size(names) == 0)
        return cli_fail("pool %s has no volumes to snapshot", *pool);
    return EXIT_OK;
}

static int snap_create(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS,
                                       {"recursive", no_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
    bool recursive = false;
    GETOPT_LOOP("r", lo, case 'r': recursive = true; break;)
    if (optind >= argc)
        return cli_usage_error("snapshot", "snapshot needs at least one POOL/VOL@NAME");
    _cleanup_json_ json_t *names = json_array();
    _cleanup_free_ char *pool = NULL;
    for (int i = optind; i < argc; i++) {
        char *p = NULL, *s = NULL;
        int rc;
        if (recursive && !strchr(argv[i], '/'))
            rc = add_pool_volumes(c, argv[i], names, &p);
        else if ((rc = cli_split_snap("snapshot", argv[i], &p, &s)) == EXIT_OK)
            json_array_append_new(names, json_string(s));
        free(s);
        if (rc == EXIT_OK && pool && strcmp(pool, p) != 0)
            rc = cli_usage_error("snapshot", "snapshots taken together must be in one pool "
                                 "('%s' and '%s')", pool, p);
        if (!pool)
            pool = steal_ptr(p);
        free(p);
        if (rc != EXIT_OK)
            return rc;
    }
    _cleanup_free_ char *e = cli_escape(pool);
    char path[512];
    snprintf(path, sizeof(path), "/pools/%s/snapshots", e ? e : "");
    json_t *body = json_pack("{s:O}", "names", names), *resp = NULL;
    int rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    if (rc == EXIT_OK && !c->json) {
        size_t i;
        json_t *v;
        json_array_foreach(get(resp, "snapshots"), i, v)
            printf("snapshot %s created\n", json_string_value(get(v, "full_name")));
    }
    return cli_done(c, rc, resp, NULL);
}

static int snap_list(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind > 1)
        return cli_usage_error("snapshot", "snapshot list takes at most one POOL or POOL/VOL");
    char path[512] = "/snapshots";
    if (optind < argc) {
        const char *arg = argv[optind], *slash = strchr(arg, '/');
        _cleanup_free_ char *pool = slash ? strndup(arg, (size_t)(slash - arg)) : strdup(arg);
        _cleanup_free_ char *p = pool ? cli_escape(pool) : NULL;
        if (!p)
            return cli_fail("out of memory");
        if (!*pool || (slash && (!slash[1] || strchr(slash + 1, '/') || strchr(arg, '@'))))
            return cli_usage_error("snapshot", "'%s' is not a pool or a volume", arg);
        snprintf(path, sizeof(path), "/pools/%s/snapshots", p);
        if (slash)
            cli_query_add(path, sizeof(path), "volume", slash + 1);
    }
    json_t *resp = NULL;
    int rc = cli_call(c, "GET", path, NULL, &resp);
    if (rc != EXIT_OK || c->json)
        return cli_done(c, rc, resp, NULL);
    static const char *const hdr[] = {"NAME", "USED", "REFER", "CREATION", "HOLDS"};
    struct table *t = table_new(c, 5, hdr);
    size_t i;
    json_t *v;
    json_array_foreach(get(resp, "snapshots"), i, v) {
        char u[32], r[32], cr[64], h[32];
        const char *row[] = {json_string_value(get(v, "full_name")),
                             out_size(c, get(v, "used"), u, sizeof(u)),
                             out_size(c, get(v, "referenced"), r, sizeof(r)),
                             cli_prop_value(c, get(v, "creation"), P_TIME, cr, sizeof(cr)),
                             out_u64(get(v, "userrefs"), h, sizeof(h))};
        table_row(t, row);
    }
    table_print_or(t, "no snapshots");
    json_decref(resp);
    return EXIT_OK;
}

static const struct cli_prop snap_props[] = {
    {"used", "used", P_SIZE},
    {"referenced", "referenced", P_SIZE},
    {"logicalreferenced", "logicalreferenced", P_SIZE},
    {"compressratio", "compressratio", P_RATIO},
    {"volsize", "volsize", P_SIZE},
    {"volblocksize", "volblocksize", P_SIZE},
    {"creation", "creation", P_TIME},
    {"createtxg", "create_txg", P_NUM},
    {"guid", "guid", P_STR},
    {"userrefs", "userrefs", P_NUM},
    {"holds", "holds", P_LIST},
    {"clones", "clones", P_NUM},
    {"defer_destroy", "defer_destroy", P_ONOFF},
    {"nbd_clients", "nbd_clients", P_NUM},
    {"uri", "uri", P_STR},
};
#define NPROPS ARRAY_SIZE(snap_props)

static int snap_get(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 2)
        return cli_usage_error("snapshot", "snapshot get needs PROP|all and POOL/VOL@NAME");
    bool want[NPROPS] = {false};
    int rc = cli_props_select("snapshot", "snapshot", snap_props, NPROPS, argv[optind], want);
    if (rc != EXIT_OK)
        return rc;
    char path[512];
    rc = cli_snap_path("snapshot", argv[optind + 1], "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    return cli_props_get(c, path, snap_props, NPROPS, want);
}

static int snap_destroy(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"force", no_argument, NULL, 'f'},
                                       {"defer", no_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    bool force = false, defer = false;
    GETOPT_LOOP("fd", lo, case 'f': force = true; break; case 'd': defer = true; break;)
    if (argc - optind != 1)
        return cli_usage_error("snapshot", "snapshot destroy needs exactly one POOL/VOL@NAME");
    char path[512];
    int rc = cli_snap_path("snapshot", argv[optind], "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    if (force)
        cli_query_add(path, sizeof(path), "force", "1");
    if (defer)
        cli_query_add(path, sizeof(path), "defer", "1");
    json_t *resp = NULL;
    rc = cli_call(c, "DELETE", path, NULL, &resp);
    bool deferred = rc == EXIT_OK && json_is_true(get(resp, "deferred"));
    return cli_done(c, rc, resp,
                  deferred ? "snapshot %s hidden; it goes with its last clone\n"
                           : "snapshot %s destroyed\n",
                  argv[optind]);
}

/* hold TAG SNAP / release TAG SNAP */
static int snap_hold(struct cli *c, int argc, char **argv)
{
    bool hold = strcmp(argv[0], "hold") == 0;
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 2)
        return cli_usage_error("snapshot", "snapshot %s needs TAG and POOL/VOL@NAME",
                               hold ? "hold" : "release");
    char path[512];
    int rc = cli_snap_path("snapshot", argv[optind + 1], hold ? "/hold" : "/release", path,
                           sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:s}", "tag", argv[optind]), *resp = NULL;
    rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    if (rc == EXIT_OK && !c->json)
        printf("snapshot %s: hold '%s' %s\n", argv[optind + 1], argv[optind],
               hold ? "added" : "released");
    return cli_done(c, rc, resp, NULL);
}

int cmd_snapshot(struct cli *c, int argc, char **argv)
{
    static const struct cli_cmd cmds[] = {
        {"list", snap_list}, {"get", snap_get},      {"destroy", snap_destroy},
        {"hold", snap_hold}, {"release", snap_hold},
    };
    /* argv[0] is "snapshot".  Anything after it that is no subcommand is a
     * snapshot to take ("-r", "tank/a@s"). */
    const char *a = argc > 1 ? argv[1] : "";
    if (strchr(a, '@') ||
        (a[0] == '-' && strcmp(a, "-h") != 0 && strcmp(a, "--help") != 0))
        return snap_create(c, argc, argv);
    return cli_dispatch(c, "snapshot", help_snapshot, cmds, ARRAY_SIZE(cmds), argc - 1, argv + 1);
}
