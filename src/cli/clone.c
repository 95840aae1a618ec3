/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth rollback, clone, promote: the commands that make a snapshot a
 * writable volume again.  Each is one API call; they print one line, or the
 * changed Volume object with --json. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void help_clone(FILE *f)
{
    fprintf(f,
            "Usage: berth rollback [-f] POOL/VOL@NAME\n"
            "       berth clone [-o PROP=VALUE]... POOL/VOL@NAME POOL/NEWVOL\n"
            "       berth promote POOL/VOL\n"
            "\n"
            "  rollback   make the volume's contents those of the snapshot, which may be any\n"
            "             of its snapshots: newer snapshots are kept.  Writes since the\n"
            "             snapshot are lost.  Refused while a running VM uses the volume;\n"
            "             -f disconnects its NBD clients first.\n"
            "  clone      create a volume from a snapshot, instantly, sharing its blocks\n"
            "             (-o compression=..., checksum=..., readonly=on|off)\n"
            "  promote    make a clone independent of its origin: the origin snapshot and\n"
            "             those before it move to the clone, the origin becomes its clone\n"
            "\n"
            "Options: --json the API's JSON.\n");
}

static const struct option common_lo[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};

int cmd_rollback(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"force", no_argument, NULL, 'f'},
                                       {NULL, 0, NULL, 0}};
    bool force = false;
    CLI_GETOPT_LOOP("rollback", help_clone, "f", lo, case 'f': force = true; break;)
    if (argc - optind != 1)
        return cli_usage_error("rollback", "rollback needs exactly one POOL/VOL@NAME");
    _cleanup_free_ char *pool = NULL, *snap = NULL;
    int rc = cli_split_snap("rollback", argv[optind], &pool, &snap);
    if (rc != EXIT_OK)
        return rc;
    char *at = strchr(snap, '@');
    *at = '\0';
    _cleanup_free_ char *p = cli_escape(pool), *v = cli_escape(snap);
    if (!p || !v)
        return cli_fail("out of memory");
    char path[512];
    snprintf(path, sizeof(path), "/pools/%s/volumes/%s/rollback", p, v);
    json_t *body = json_pack("{s:s,s:b}", "snapshot", at + 1, "force", force), *resp = NULL;
    rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    char vol[256];
    snprintf(vol, sizeof(vol), "%s/%s", pool, snap);
    return cli_done(c, rc, resp, "volume %s rolled back to %s\n", vol, argv[optind]);
}

int cmd_clone(struct cli *c, int argc, char **argv)
{
    _cleanup_json_ json_t *props = json_object();
    CLI_GETOPT_LOOP("clone", help_clone, "o:", common_lo,
        case 'o': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return cli_usage_error("clone", "-o expects PROP=VALUE, got '%s'", optarg);
            *eq = '\0';
            json_object_set_new(props, optarg, json_string(eq + 1));
            break;
        })
    if (argc - optind != 2)
        return cli_usage_error("clone", "clone needs POOL/VOL@NAME and POOL/NEWVOL");
    const char *target = argv[optind + 1];
    char *tpool, *tvol;
    int rc = cli_split_vol("clone", target, &tpool, &tvol); /* checks the form */
    if (rc != EXIT_OK)
        return rc;
    free(tpool);
    free(tvol);
    _cleanup_free_ char *spool = NULL, *snap = NULL;
    rc = cli_split_snap("clone", argv[optind], &spool, &snap);
    if (rc != EXIT_OK)
        return rc;
    size_t plen = (size_t)(strchr(target, '/') - target);
    if (strlen(spool) != plen || strncmp(spool, target, plen) != 0)
        return cli_usage_error("clone", "a clone is made in the pool of its snapshot: '%s' and "
                               "'%s' are in different pools", argv[optind], target);
    char path[512];
    rc = cli_snap_path("clone", argv[optind], "/clone", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:s}", "name", strchr(target, '/') + 1), *resp = NULL;
    if (json_object_size(props))
        json_object_set(body, "properties", props);
    rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    return cli_done(c, rc, resp, "volume %s cloned from %s\n", target, argv[optind]);
}

int cmd_promote(struct cli *c, int argc, char **argv)
{
    CLI_GETOPT_LOOP("promote", help_clone, "", common_lo, )
    if (argc - optind != 1)
        return cli_usage_error("promote", "promote needs exactly one POOL/VOL");
    char *p, *v;
    int rc = cli_split_vol("promote", argv[optind], &p, &v);
    if (rc != EXIT_OK)
        return rc;
    char path[512];
    snprintf(path, sizeof(path), "/pools/%s/volumes/%s/promote", p, v);
    free(p);
    free(v);
    json_t *resp = NULL;
    rc = cli_call(c, "POST", path, NULL, &resp);
    return cli_done(c, rc, resp, "volume %s promoted\n", argv[optind]);
}
