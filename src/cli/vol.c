/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth vol ...: create, list, get, set, resize, destroy, uri.  Each is one
 * API call on /pools/{pool}/volumes[/{vol}]; list and get print zfs-style
 * tables of the Volume objects of docs/API.md (snapshots, clones and
 * rollback are snap.c and clone.c). */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void help_vol(FILE *f)
{
    fprintf(f,
            "Usage: berth vol COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "  create [-b VOLBLOCKSIZE] [--thick] [-o PROP=VALUE]... -V SIZE POOL/VOL\n"
            "      Create a volume (thin unless --thick; volblocksize 4K..128K, default 16K,\n"
            "      fixed forever).  -o: compression=lz4|zstd|zstd-N|off, checksum=xxh3|sha256,\n"
            "      refreservation=SIZE|none, readonly=on|off; encryption=on|off,\n"
            "      keyformat=raw|hex|passphrase, keylocation=prompt|file:///PATH (defaults:\n"
            "      the pool's; encryption=on alone means keylocation=prompt).  A prompted\n"
            "      key is read from --key-file FILE, the terminal or stdin.\n"
            "  list [-p] [-H] [-o space] [POOL]\n"
            "                              NAME USED REFER VOLSIZE RATIO; -o space: NAME USED\n"
            "                              USEDSNAP USEDDS USEDREFRESERV WRITTEN SNAPS ORIGIN\n"
            "  get PROP[,PROP...]|all POOL/VOL\n"
            "                              NAME PROPERTY VALUE; properties: volsize,\n"
            "                              volblocksize, compression, checksum,\n"
            "                              refreservation, readonly, used, usedbysnapshots,\n"
            "                              usedbydataset, usedbyrefreservation, referenced,\n"
            "                              written, logicalused, compressratio, origin,\n"
            "                              snapshot_count, createtxg, guid, nbd_clients, uri,\n"
            "                              encryption, keyformat, keylocation, keystatus,\n"
            "                              keyslots\n"
            "  set PROP=VALUE... POOL/VOL  compression, checksum, refreservation, readonly,\n"
            "                              volsize (grow only)\n"
            "  resize [--force] POOL/VOL SIZE\n"
            "                              grow; shrinking (frees the data past the end)\n"
            "                              needs --force\n"
            "  destroy [-r] [-f] POOL/VOL  destroy (-r: with its snapshots; -f: disconnect\n"
            "                              its NBD clients first)\n"
            "  uri [--tcp] POOL/VOL        print the NBD URI of the volume, e.g.\n"
            "                              nbd+unix:///tank/disk0?socket=/run/berth/nbd.sock\n"
            "\n"
            "Options: -p exact numbers, -H no header, --json the API's JSON.\n");
}

#define GETOPT_LOOP(shortopts, longopts, ...) \
    CLI_GETOPT_LOOP("vol", help_vol, shortopts, longopts, __VA_ARGS__)

static const struct option common_lo[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};

static json_t *get(json_t *o, const char *k)
{
    return json_object_get(o, k);
}

/* "/pools/P/volumes/V" + suffix, from "P/V"; usage error if malformed. */
static int vol_path(const char *arg, const char *suffix, char *out, size_t len)
{
    return cli_vol_path("vol", arg, suffix, out, len);
}

static int vol_create(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"thick", no_argument, NULL, 'T'},
                                       {"key-file", required_argument, NULL, 'k'},
                                       {NULL, 0, NULL, 0}};
    _cleanup_json_ json_t *props = json_object();
    const char *size = NULL, *vbs = NULL, *keyfile = NULL;
    bool thick = false;
    GETOPT_LOOP("b:V:o:sk:", lo,
        case 'k': keyfile = optarg; break;
        case 'b': vbs = optarg; break;
        case 'V': size = optarg; break;
        case 's': break; /* sparse: the default */
        case 'T': thick = true; break;
        case 'o': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return cli_usage_error("vol", "-o expects PROP=VALUE, got '%s'", optarg);
            *eq = '\0';
            json_object_set_new(props, optarg, json_string(eq + 1));
            break;
        })
    if (!size)
        return cli_usage_error("vol", "vol create needs -V SIZE");
    if (argc - optind != 1)
        return cli_usage_error("vol", "vol create needs exactly one POOL/VOL");
    char *p, *v;
    int rc = cli_split_vol("vol", argv[optind], &p, &v);
    if (rc != EXIT_OK)
        return rc;
    const char *slash = strchr(argv[optind], '/');
    json_t *body = json_pack("{s:s,s:s}", "name", slash + 1, "size", size);
    if (vbs)
        json_object_set_new(body, "volblocksize", json_string(vbs));
    if (thick)
        json_object_set_new(body, "thick", json_true());
    /* encryption: the key is read here when it is prompted for */
    const char *enc = json_string_value(json_object_get(props, "encryption"));
    const char *loc = json_string_value(json_object_get(props, "keylocation"));
    if (enc && strcmp(enc, "off") != 0 && !loc)
        json_object_set_new(props, "keylocation", json_string(loc = "prompt"));
    char *key = NULL;
    if (keyfile || (loc && strcmp(loc, "prompt") == 0)) {
        const char *fmt = json_string_value(json_object_get(props, "keyformat"));
        if ((rc = cli_read_key(fmt, keyfile, true, &key)) != EXIT_OK) {
            json_decref(body);
            free(p);
            free(v);
            return rc;
        }
        json_object_set_new(body, "key", json_string(key));
        cli_key_free(key);
    }
    if (json_object_size(props))
        json_object_set(body, "properties", props);
    char path[512];
    snprintf(path, sizeof(path), "/pools/%s/volumes", p);
    free(p);
    free(v);
    json_t *resp = NULL;
    rc = cli_call(c, "POST", path, body, &resp);
    json_t *jk = json_object_get(body, "key");
    if (jk)
        explicit_bzero((char *)json_string_value(jk), json_string_length(jk));
    json_decref(body);
    return cli_done(c, rc, resp, "volume %s created\n", argv[optind]);
}

/* `vol list -o space`: where the space goes (zfs list -o space) */
static void space_row(struct cli *c, struct table *t, json_t *v)
{
    char u[32], s[32], d[32], r[32], w[32], n[32];
    const char *origin = json_string_value(get(v, "origin"));
    const char *row[] = {json_string_value(get(v, "full_name")),
                         out_size(c, get(v, "used"), u, sizeof(u)),
                         out_size(c, get(v, "usedbysnapshots"), s, sizeof(s)),
                         out_size(c, get(v, "usedbydataset"), d, sizeof(d)),
                         out_size(c, get(v, "usedbyrefreservation"), r, sizeof(r)),
                         out_size(c, get(v, "written"), w, sizeof(w)),
                         out_u64(get(v, "snapshot_count"), n, sizeof(n)),
                         origin ? origin : "-"};
    table_row(t, row);
}

static int vol_list(struct cli *c, int argc, char **argv)
{
    bool space = false;
    GETOPT_LOOP("o:", common_lo,
        case 'o':
            if (strcmp(optarg, "space") != 0)
                return cli_usage_error("vol", "vol list -o takes only 'space', got '%s'", optarg);
            space = true;
            break;)
    if (argc - optind > 1)
        return cli_usage_error("vol", "vol list takes at most one POOL");
    char path[512] = "/volumes";
    if (optind < argc) {
        char *e = cli_escape(argv[optind]);
        snprintf(path, sizeof(path), "/pools/%s/volumes", e ? e : "");
        free(e);
    }
    json_t *resp = NULL;
    int rc = cli_call(c, "GET", path, NULL, &resp);
    if (rc != EXIT_OK || c->json)
        return cli_done(c, rc, resp, NULL);
    static const char *const hdr[] = {"NAME", "USED", "REFER", "VOLSIZE", "RATIO"};
    static const char *const space_hdr[] = {"NAME",          "USED",    "USEDSNAP", "USEDDS",
                                            "USEDREFRESERV", "WRITTEN", "SNAPS",    "ORIGIN"};
    struct table *t = space ? table_new(c, 8, space_hdr) : table_new(c, 5, hdr);
    size_t i;
    json_t *v;
    json_array_foreach(get(resp, "volumes"), i, v) {
        if (space) {
            space_row(c, t, v);
            continue;
        }
        char u[32], r[32], s[32], x[32];
        const char *row[] = {json_string_value(get(v, "full_name")),
                             out_size(c, get(v, "used"), u, sizeof(u)),
                             out_size(c, get(v, "referenced"), r, sizeof(r)),
                             out_size(c, get(v, "volsize"), s, sizeof(s)),
                             out_ratio(c, get(v, "compressratio"), x, sizeof(x))};
        table_row(t, row);
    }
    table_print_or(t, "no volumes");
    json_decref(resp);
    return EXIT_OK;
}

static const struct cli_prop vol_props[] = {
    {"volsize", "volsize", P_SIZE},
    {"volblocksize", "volblocksize", P_SIZE},
    {"compression", "compression", P_STR},
    {"checksum", "checksum", P_STR},
    {"refreservation", "refreservation", P_SIZE},
    {"readonly", "readonly", P_ONOFF},
    {"used", "used", P_SIZE},
    {"usedbysnapshots", "usedbysnapshots", P_SIZE},
    {"usedbydataset", "usedbydataset", P_SIZE},
    {"usedbyrefreservation", "usedbyrefreservation", P_SIZE},
    {"referenced", "referenced", P_SIZE},
    {"written", "written", P_SIZE},
    {"logicalused", "logicalused", P_SIZE},
    {"compressratio", "compressratio", P_RATIO},
    {"origin", "origin", P_STR},
    {"snapshot_count", "snapshot_count", P_NUM},
    {"createtxg", "create_txg", P_NUM},
    {"guid", "guid", P_STR},
    {"nbd_clients", "nbd_clients", P_NUM},
    {"uri", "uri", P_STR},
    {"encryption", "encryption", P_STR},
    {"keyformat", "keyformat", P_STR},
    {"keylocation", "keylocation", P_STR},
    {"keystatus", "keystatus", P_STR},
    {"keyslots", "keyslots", P_NUM},
};
#define NPROPS ARRAY_SIZE(vol_props)

static int vol_get(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 2)
        return cli_usage_error("vol", "vol get needs PROP|all and POOL/VOL");
    bool want[NPROPS] = {false};
    int rc = cli_props_select("vol", "volume", vol_props, NPROPS, argv[optind], want);
    if (rc != EXIT_OK)
        return rc;
    char path[512];
    rc = vol_path(argv[optind + 1], "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    return cli_props_get(c, path, vol_props, NPROPS, want);
}

static int vol_set(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind < 2)
        return cli_usage_error("vol", "vol set needs PROP=VALUE... POOL/VOL");
    char path[512];
    int rc = vol_path(argv[argc - 1], "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    _cleanup_json_ json_t *props = json_object();
    for (int i = optind; i < argc - 1; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i])
            return cli_usage_error("vol", "expected PROP=VALUE, got '%s'", argv[i]);
        *eq = '\0';
        json_object_set_new(props, argv[i], json_string(eq + 1));
    }
    json_t *body = json_pack("{s:O}", "properties", props), *resp = NULL;
    rc = cli_call(c, "PATCH", path, body, &resp);
    json_decref(body);
    return cli_done(c, rc, resp, NULL);
}

static int vol_resize(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"force", no_argument, NULL, 'f'},
                                       {NULL, 0, NULL, 0}};
    bool force = false;
    GETOPT_LOOP("f", lo, case 'f': force = true; break;)
    if (argc - optind != 2)
        return cli_usage_error("vol", "vol resize needs POOL/VOL and SIZE");
    char path[512];
    int rc = vol_path(argv[optind], "/resize", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:s,s:b}", "size", argv[optind + 1], "force", force), *resp = NULL;
    rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    if (rc == EXIT_OK && !c->json) {
        char b[32];
        printf("volume %s: volsize %s\n", argv[optind],
               out_size(c, get(resp, "volsize"), b, sizeof(b)));
    }
    return cli_done(c, rc, resp, NULL);
}

static int vol_destroy(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"force", no_argument, NULL, 'f'},
                                       {"recursive", no_argument, NULL, 'r'},
                                       {NULL, 0, NULL, 0}};
    bool force = false, recursive = false;
    GETOPT_LOOP("fr", lo, case 'f': force = true; break; case 'r': recursive = true; break;)
    if (argc - optind != 1)
        return cli_usage_error("vol", "vol destroy needs exactly one POOL/VOL");
    char path[512];
    int rc = vol_path(argv[optind], "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    if (force)
        cli_query_add(path, sizeof(path), "force", "1");
    if (recursive)
        cli_query_add(path, sizeof(path), "recursive", "1");
    json_t *resp = NULL;
    rc = cli_call(c, "DELETE", path, NULL, &resp);
    return cli_done(c, rc, resp, "volume %s destroyed\n", argv[optind]);
}

static int vol_uri(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"tcp", no_argument, NULL, 'T'},
                                       {NULL, 0, NULL, 0}};
    bool tcp = false;
    GETOPT_LOOP("", lo, case 'T': tcp = true; break;)
    if (argc - optind != 1)
        return cli_usage_error("vol", "vol uri needs exactly one POOL/VOL");
    char path[512];
    int rc = vol_path(argv[optind], "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    json_t *resp = NULL;
    rc = cli_call(c, "GET", path, NULL, &resp);
    if (rc == EXIT_OK && !c->json) {
        const char *uri = json_string_value(get(resp, tcp ? "uri_tcp" : "uri"));
        if (uri)
            printf("%s\n", uri);
        else
            rc = cli_fail("berthd does not serve NBD on TCP (start it with --nbd-tcp)");
    }
    return cli_done(c, rc, resp, NULL);
}

int cmd_vol(struct cli *c, int argc, char **argv)
{
    static const struct cli_cmd cmds[] = {
        {"create", vol_create}, {"list", vol_list},       {"get", vol_get}, {"set", vol_set},
        {"resize", vol_resize}, {"destroy", vol_destroy}, {"uri", vol_uri},
    };
    return cli_dispatch(c, "vol", help_vol, cmds, ARRAY_SIZE(cmds), argc, argv);
}
