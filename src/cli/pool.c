/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth pool ...: create, list, status, export, import, trim, destroy, sync,
 * check, set, debug.  Each is one API call; status/list format the Pool
 * objects of docs/API.md like zpool does. */
#include "cli.h"
#include "common/cleanup.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void help_pool(FILE *f)
{
    fprintf(f,
            "Usage: berth pool COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "  create [-o ashift=N] [-o autotrim=on|off] [-o size=SIZE]\n"
            "         [-O compression=lz4|zstd|zstd-N|off] [-O checksum=xxh3|sha256] [-f]\n"
            "         [-O encryption=on -O keyformat=raw|hex|passphrase\n"
            "          -O keylocation=prompt|file:///PATH]\n"
            "         NAME VDEV | NAME mirror VDEV VDEV... | NAME raidz1|raidz2|raidz3 VDEV...\n"
            "         (repeat 'mirror DEV...'/'raidzN DEV...', or list several devices, for\n"
            "          several top-level vdevs: data is spread over them)\n"
            "      Create a pool on a file or block device, or on a mirror of several\n"
            "      (a copy of every block on each), or a raidz of several (parity on 1..3\n"
            "      of them: that many may fail).  A missing file is created\n"
            "      with -o size.  ashift is detected when not given (files: 12).  A device\n"
            "      holding a berth pool is never overwritten without -f.  -O encryption=...\n"
            "      makes new volumes encrypted by default (each with its own key slots;\n"
            "      -o encryption=off on a volume opts out).\n"
            "  add [-f] [-o size=SIZE] NAME VDEV | NAME mirror VDEV VDEV... |\n"
            "         NAME raidz1|raidz2|raidz3 VDEV...\n"
            "      Grow a pool online by one or more top-level vdevs (same spec as\n"
            "      create); new writes are spread over all of them, the emptier ones\n"
            "      taking more.  A layout unlike the pool's needs -f.\n"
            "  list [-p] [-H]             one line per pool: size, allocated, free, ratio\n"
            "  status [NAME]              state, space, compression, vdevs and their\n"
            "                             READ/WRITE/CKSUM error counters\n"
            "  export [-f] NAME           commit and release the pool (-f: disconnect its\n"
            "                             NBD clients first)\n"
            "  import [-d DIR] [--rewind] [NAME]\n"
            "                             without NAME: list the pools that can be imported\n"
            "                             (from DIR, or where exported pools lived);\n"
            "                             with NAME: import that pool; --rewind (-F): if\n"
            "                             its newest state is damaged, go back to the\n"
            "                             newest intact txg (its later writes are lost)\n"
            "  trim NAME                  give all free space back to the device\n"
            "  online NAME DEVICE | offline NAME DEVICE\n"
            "                             bring a mirror/raidz member (path or index) back\n"
            "                             (resilvered for what it missed) or take it out\n"
            "                             of service\n"
            "  replace [-f] NAME DEVICE NEW  NEW (file or block device) takes the place of\n"
            "                             a mirror/raidz member and is resilvered\n"
            "  attach [-f] NAME DEVICE NEW   NEW becomes a mirror copy of DEVICE (a single\n"
            "                             device pool becomes a mirror), resilvered\n"
            "  detach NAME DEVICE         a mirror member leaves the pool (refused if it\n"
            "                             holds the last valid copy)\n"
            "  scrub [--pause|--stop] NAME  verify every block on every device in the\n"
            "                             background, repairing bad copies\n"
            "  destroy [-f] NAME          wipe the pool's labels (-f: even with NBD clients)\n"
            "  sync NAME                  commit a transaction group now\n"
            "  check NAME                 verify space accounting (leaks, double references)\n"
            "  set PROP=VALUE NAME        autotrim=on|off, compression=..., checksum=...,\n"
            "                             encryption, keyformat, keylocation (defaults),\n"
            "                             scrub-schedule=off|daily|weekly|monthly|14d|12h\n"
            "  debug NAME KNOB            fault injection (berthd --test only), e.g.\n"
            "                             fail_reads=on, torn_write_after=N\n"
            "\n"
            "Options: -p exact numbers, -H no header, --json the API's JSON.\n");
}

/* Make a path absolute against our cwd (berthd's cwd is not ours). */
static char *abs_path(const char *p)
{
    if (p[0] == '/')
        return strdup(p);
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
        return NULL;
    size_t n = strlen(cwd) + strlen(p) + 2;
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "%s/%s", cwd, p);
    return r;
}

/* Print the response (or its JSON) and free it. */
static int done(struct cli *c, int rc, json_t *resp, const char *fmt, const char *a,
                const char *b)
{
    if (rc == EXIT_OK) {
        if (c->json)
            out_json(resp);
        else if (fmt)
            printf(fmt, a, b);
    }
    json_decref(resp);
    return rc;
}

#define GETOPT_LOOP(cmd, shortopts, longopts, ...) \
    CLI_GETOPT_LOOP(cmd, help_pool, shortopts, longopts, __VA_ARGS__)

static const struct option common_lo[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};

static json_t *get(json_t *o, const char *k)
{
    return json_object_get(o, k);
}

/* The API's "spec" from "[mirror|raidzN] DEV... [mirror|raidzN DEV...]...":
 * device paths made absolute, each layout checked for its device count.
 * NULL after a usage message. */
static json_t *vdev_spec(int n, char **args)
{
    static const char *const layouts[] = {"mirror", "raidz", "raidz1", "raidz2", "raidz3"};
    json_t *spec = json_array();
    const char *layout = NULL;
    int count = 0;
    for (int i = 0; spec && i <= n; i++) {
        const char *kw = NULL;
        for (size_t k = 0; i < n && k < 5; k++)
            if (strcmp(args[i], layouts[k]) == 0)
                kw = layouts[k];
        if (i == n || kw) {
            /* the group before ends here */
            unsigned need = !layout ? 0 : layout[0] == 'm' ? 2
                          : layout[5] ? (unsigned)(layout[5] - '0') + 1 : 2;
            if (layout && (unsigned)count < need) {
                cli_usage_error("pool", "%s needs at least %u devices", layout, need);
                json_decref(spec);
                return NULL;
            }
            if (i == n)
                break;
            layout = kw;
            count = 0;
            json_array_append_new(spec, json_string(kw));
            continue;
        }
        char *vdev = abs_path(args[i]);
        json_array_append_new(spec, json_string(vdev ? vdev : args[i]));
        free(vdev);
        count++;
    }
    return spec;
}

/* zpool's warning: a top-level vdev that is a lone device has no redundancy,
 * and with several tops losing it loses the whole pool. */
static void warn_no_redundancy(json_t *pool, const char *name)
{
    size_t i, lone = 0, n = json_array_size(get(pool, "tops"));
    json_t *t;
    json_array_foreach(get(pool, "tops"), i, t) {
        const char *type = json_string_value(get(t, "type"));
        lone += type && strcmp(type, "single") == 0;
    }
    if (lone && n > 1)
        fprintf(stderr, "warning: pool %s has %zu top-level vdev%s without redundancy (a "
                "single device): data is striped over all %zu, so losing any such device "
                "loses the pool\n", name, lone, lone == 1 ? "" : "s", n);
}

static int pool_create(struct cli *c, int argc, char **argv)
{
    _cleanup_json_ json_t *body = json_object();
    int rc = EXIT_OK;
    GETOPT_LOOP("pool", "o:O:f", common_lo,
        case 'f': json_object_set_new(body, "force", json_true()); break;
        case 'o':
        case 'O': {
            char *eq = strchr(optarg, '=');
            if (!eq) {
                return cli_usage_error("pool", "-%c expects PROPERTY=VALUE, got '%s'", opt_,
                                       optarg);
            }
            *eq = '\0';
            const char *k = optarg, *v = eq + 1;
            uint64_t n;
            if (opt_ == 'o' && strcmp(k, "ashift") == 0 && parse_u64(v, 0, 16, &n, NULL) == 0 &&
                (n == 0 || n >= 9)) {
                json_object_set_new(body, "ashift", json_integer((json_int_t)n));
            } else if (opt_ == 'o' && strcmp(k, "autotrim") == 0 &&
                       (strcmp(v, "on") == 0 || strcmp(v, "off") == 0)) {
                json_object_set_new(body, "autotrim", json_boolean(strcmp(v, "on") == 0));
            } else if (opt_ == 'o' && strcmp(k, "size") == 0) {
                json_object_set_new(body, "size", json_string(v));
            } else if (opt_ == 'O' && (strcmp(k, "compression") == 0 ||
                                       strcmp(k, "checksum") == 0 ||
                                       strcmp(k, "encryption") == 0 ||
                                       strcmp(k, "keyformat") == 0 ||
                                       strcmp(k, "keylocation") == 0)) {
                json_object_set_new(body, k, json_string(v));
            } else {
                if (opt_ == 'o' && (strcmp(k, "ashift") == 0 || strcmp(k, "autotrim") == 0))
                    return cli_usage_error("pool", "bad value '%s' for %s (ashift: 0 or 9..16, "
                                           "autotrim: on|off)", v, k);
                return cli_usage_error("pool", "unknown %s property '%s' (-o: ashift, autotrim, "
                                       "size; -O: compression, checksum, encryption, "
                                       "keyformat, keylocation)",
                                       opt_ == 'o' ? "pool" : "volume-default", k);
            }
            break;
        })
    if (argc - optind < 2)
        return cli_usage_error("pool", "pool create needs NAME and VDEV (or mirror|raidz1|raidz2|"
                               "raidz3 VDEV VDEV..., several times for several top-level "
                               "vdevs)");
    json_t *spec = vdev_spec(argc - optind - 1, argv + optind + 1);
    if (!spec)
        return EXIT_USAGE;
    json_object_set_new(body, "name", json_string(argv[optind]));
    json_object_set_new(body, "spec", spec);
    json_t *resp = NULL;
    rc = cli_call(c, "POST", "/pools", body, &resp);
    if (rc == EXIT_OK && !c->json)
        warn_no_redundancy(resp, argv[optind]);
    return done(c, rc, resp, "pool %s created\n", argv[optind], NULL);
}

/* berth pool add [-f] [-o size=SIZE] NAME SPEC...: grow the pool online. */
static int pool_add(struct cli *c, int argc, char **argv)
{
    _cleanup_json_ json_t *body = json_object();
    GETOPT_LOOP("pool", "o:f", common_lo,
        case 'f': json_object_set_new(body, "force", json_true()); break;
        case 'o':
            if (strncmp(optarg, "size=", 5) != 0)
                return cli_usage_error("pool", "pool add: -o takes size=SIZE, got '%s'",
                                       optarg);
            json_object_set_new(body, "size", json_string(optarg + 5));
            break;)
    if (argc - optind < 2)
        return cli_usage_error("pool", "pool add needs NAME and VDEV (or mirror|raidz1|raidz2|"
                               "raidz3 VDEV VDEV...)");
    json_t *spec = vdev_spec(argc - optind - 1, argv + optind + 1);
    if (!spec)
        return EXIT_USAGE;
    json_object_set_new(body, "spec", spec);
    char *n = cli_escape(argv[optind]), path[512];
    snprintf(path, sizeof(path), "/pools/%s/add", n ? n : "");
    free(n);
    json_t *resp = NULL;
    int rc = cli_call(c, "POST", path, body, &resp);
    if (rc == EXIT_OK && !c->json)
        warn_no_redundancy(resp, argv[optind]);
    return done(c, rc, resp, "pool %s: added\n", argv[optind], NULL);
}


static int pool_list(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("pool", "", common_lo, )
    if (argc - optind > 1)
        return cli_usage_error("pool", "pool list takes at most one NAME");
    json_t *resp = NULL;
    int rc = cli_call(c, "GET", "/pools", NULL, &resp);
    if (rc != EXIT_OK || c->json)
        return done(c, rc, resp, NULL, NULL, NULL);
    static const char *const hdr[] = {"NAME", "SIZE", "ALLOC", "FREE", "FRAG", "CAP", "RATIO",
                                      "HEALTH"};
    struct table *t = table_new(c, 8, hdr);
    size_t i;
    json_t *p;
    bool found = false;
    json_array_foreach(get(resp, "pools"), i, p) {
        const char *name = json_string_value(get(p, "name"));
        if (optind < argc && (!name || strcmp(name, argv[optind]) != 0))
            continue;
        found = true;
        char s[32], a[32], f[32], fr[32], cap[32], r[32];
        bool ok = json_is_integer(get(p, "size"));
        if (ok) {
            snprintf(fr, sizeof(fr), "%" JSON_INTEGER_FORMAT "%%",
                     json_integer_value(get(p, "fragmentation")));
            snprintf(cap, sizeof(cap), "%" JSON_INTEGER_FORMAT "%%",
                     json_integer_value(get(p, "capacity")));
        }
        const char *row[] = {name, ok ? out_size(c, get(p, "size"), s, sizeof(s)) : "-",
                             ok ? out_size(c, get(p, "allocated"), a, sizeof(a)) : "-",
                             ok ? out_size(c, get(p, "free"), f, sizeof(f)) : "-",
                             ok ? fr : "-", ok ? cap : "-",
                             ok ? out_ratio(c, get(p, "compressratio"), r, sizeof(r)) : "-",
                             json_string_value(get(p, "state"))};
        table_row(t, row);
    }
    if (!found) {
        table_free(t);
        json_decref(resp);
        if (optind < argc)
            return cli_fail("no such pool '%s'", argv[optind]);
        if (!c->no_header)
            printf("no pools\n");
        return EXIT_OK;
    }
    table_print(t);
    json_decref(resp);
    return EXIT_OK;
}

/* One device row of the config table. */
static void print_leaf(json_t *v, const char *indent, int w)
{
    char b1[32], b2[32], b3[32], name[4200];
    snprintf(name, sizeof(name), "%s%s%s", indent, json_string_value(get(v, "path")),
             json_is_true(get(v, "resilvering")) ? " (resilvering)"
             : json_is_true(get(v, "stale"))     ? " (stale)" : "");
    /* why it is UNAVAIL, after the counters as zpool prints it */
    const char *why = json_string_value(get(v, "reason"));
    printf("\t%-*s  %-8s %5s %5s %5s%s%s\n", w, name, json_string_value(get(v, "state")),
           out_u64(get(v, "read_errors"), b1, sizeof(b1)),
           out_u64(get(v, "write_errors"), b2, sizeof(b2)),
           out_u64(get(v, "checksum_errors"), b3, sizeof(b3)), why ? "  " : "", why ? why : "");
    if (json_is_string(get(v, "replacing")))
        printf("\t%s  (replacing %s)\n", indent, json_string_value(get(v, "replacing")));
}

/* The config tree as zpool prints it: each top-level vdev (mirror-0,
 * raidz1-1; a lone device is its own top) with its devices below, then the
 * space of each top, usable (after parity) and raw. */
static void print_tops(struct cli *c, json_t *p, json_t *tops, int w)
{
    char b1[32], b2[32], b3[32], b4[32];
    size_t i;
    json_t *t;
    json_t *vdevs = get(p, "vdevs");
    json_array_foreach(tops, i, t) {
        json_int_t first = json_integer_value(get(t, "first_leaf"));
        json_int_t n = json_integer_value(get(t, "nleaves"));
        const char *type = json_string_value(get(t, "type"));
        bool lone = type && strcmp(type, "single") == 0;
        if (!lone) {
            char name[40];
            uint64_t rd = 0, wr = 0;
            for (json_int_t k = first; k < first + n; k++) {
                rd += (uint64_t)json_integer_value(get(json_array_get(vdevs, (size_t)k),
                                                       "read_errors"));
                wr += (uint64_t)json_integer_value(get(json_array_get(vdevs, (size_t)k),
                                                       "write_errors"));
            }
            snprintf(name, sizeof name, "  %s", json_string_value(get(t, "name")));
            printf("\t%-*s  %-8s %5llu %5llu %5s\n", w, name,
                   json_string_value(get(t, "state")), (unsigned long long)rd,
                   (unsigned long long)wr, out_u64(get(t, "checksum_errors"), b1, sizeof(b1)));
        }
        for (json_int_t k = first; k < first + n; k++) {
            json_t *v = json_array_get(vdevs, (size_t)k);
            if (v)
                print_leaf(v, lone ? "  " : "    ", w);
        }
    }
    printf("\n\t%-*s  %8s %8s %8s %8s\n", w, "SPACE", "SIZE", "ALLOC", "FREE", "RAW");
    json_array_foreach(tops, i, t) {
        char name[40];
        snprintf(name, sizeof name, "  %s", json_string_value(get(t, "name")));
        printf("\t%-*s  %8s %8s %8s %8s\n", w, name, out_size(c, get(t, "size"), b1, sizeof(b1)),
               out_size(c, get(t, "allocated"), b2, sizeof(b2)),
               out_size(c, get(t, "free"), b3, sizeof(b3)),
               out_size(c, get(t, "raw_size"), b4, sizeof(b4)));
    }
}

static void print_status(struct cli *c, json_t *p)
{
    char b1[32], b2[32], b3[32], b4[32];
    const char *state = json_string_value(get(p, "state"));
    printf("  pool: %s\n", json_string_value(get(p, "name")));
    printf(" state: %s\n", state ? state : "?");
    if (json_is_string(get(p, "error")))
        printf("status: %s\n", json_string_value(get(p, "error")));
    if (json_is_integer(get(p, "size"))) {
        printf("  guid: %s\n", json_string_value(get(p, "guid")));
        printf("   txg: %s\n", out_u64(get(p, "txg"), b1, sizeof(b1)));
        printf("  size: %s  allocated: %s  free: %s  fragmentation: %" JSON_INTEGER_FORMAT
               "%%  capacity: %" JSON_INTEGER_FORMAT "%%\n",
               out_size(c, get(p, "size"), b1, sizeof(b1)),
               out_size(c, get(p, "allocated"), b2, sizeof(b2)),
               out_size(c, get(p, "free"), b3, sizeof(b3)),
               json_integer_value(get(p, "fragmentation")),
               json_integer_value(get(p, "capacity")));
        if (json_is_integer(get(p, "raw_size")))
            printf("        (usable, after parity; raw: size %s, allocated %s)\n",
                   out_size(c, get(p, "raw_size"), b1, sizeof(b1)),
                   out_size(c, get(p, "raw_allocated"), b2, sizeof(b2)));
        printf(" ratio: %s  (logical %s, physical %s)\n",
               out_ratio(c, get(p, "compressratio"), b1, sizeof(b1)),
               out_size(c, get(p, "logical_bytes"), b2, sizeof(b2)),
               out_size(c, get(p, "physical_bytes"), b3, sizeof(b3)));
        printf(" props: ashift=%" JSON_INTEGER_FORMAT " autotrim=%s compression=%s "
               "checksum=%s\n",
               json_integer_value(get(p, "ashift")), json_is_true(get(p, "autotrim")) ? "on" : "off",
               json_string_value(get(p, "compression")), json_string_value(get(p, "checksum")));
        json_int_t every = json_integer_value(get(p, "scrub_schedule_seconds"));
        if (every > 0)
            printf("        scrub-schedule: every %" JSON_INTEGER_FORMAT " s (%.1f days)\n", every,
                   (double)every / 86400);
        const char *enc = json_string_value(get(p, "encryption"));
        if (enc && strcmp(enc, "off") != 0)
            printf("        encryption=%s keyformat=%s keylocation=%s (defaults for new "
                   "volumes)\n", enc, json_string_value(get(p, "keyformat")),
                   json_string_value(get(p, "keylocation")));
        printf("  vols: %s  NBD clients: %s  cache: %s (hits %s)\n",
               out_u64(get(p, "nvols"), b1, sizeof(b1)),
               out_u64(get(p, "nbd_clients"), b2, sizeof(b2)),
               out_size(c, get(p, "cache_bytes"), b3, sizeof(b3)),
               out_u64(get(p, "cache_hits"), b4, sizeof(b4)));
    }
    json_t *scan = get(p, "scan");
    const char *sst = json_string_value(get(scan, "state"));
    const char *func = json_string_value(get(scan, "func"));
    if (sst && strcmp(sst, "none") != 0 && func && strcmp(func, "resilver") == 0) {
        /* as zpool status: in progress with X of Y, rate and ETA; done
         * with the bytes resilvered */
        char e1[32], e2[32], e3[32];
        bool run = strcmp(sst, "scanning") == 0;
        if (run)
            printf("  scan: resilver in progress, %s of %s, %s/s, %" JSON_INTEGER_FORMAT
                   " s to go, %s resilvered", out_size(c, get(scan, "examined"), e1, sizeof(e1)),
                   out_size(c, get(scan, "total"), e2, sizeof(e2)),
                   out_size(c, get(scan, "rate"), e3, sizeof(e3)),
                   json_integer_value(get(scan, "eta_seconds")),
                   out_size(c, get(scan, "resilvered"), b4, sizeof(b4)));
        else
            printf("  scan: %s %s%s", strcmp(sst, "finished") == 0 ? "resilvered"
                   : "resilver interrupted after", out_size(c, get(scan, "resilvered"), e1,
                   sizeof(e1)), strcmp(sst, "finished") == 0 ? "" : " (it resumes at import)");
        printf(", %" JSON_INTEGER_FORMAT " errors\n", json_integer_value(get(scan, "errors")));
    } else if (sst && strcmp(sst, "none") != 0) {
        char e1[32], e2[32], e3[32];
        printf("  scan: scrub %s: %s of %s examined, %s repaired, %" JSON_INTEGER_FORMAT
               " errors", sst, out_size(c, get(scan, "examined"), e1, sizeof(e1)),
               out_size(c, get(scan, "total"), e2, sizeof(e2)),
               out_size(c, get(scan, "repaired"), e3, sizeof(e3)),
               json_integer_value(get(scan, "errors")));
        if (strcmp(sst, "scanning") == 0)
            printf(", %s/s, %" JSON_INTEGER_FORMAT " s to go",
                   out_size(c, get(scan, "rate"), e1, sizeof(e1)),
                   json_integer_value(get(scan, "eta_seconds")));
        printf("\n");
    }
    printf("config:\n\n");
    const char *lay = json_string_value(get(p, "layout"));
    bool mirror = lay && strcmp(lay, "single") != 0; /* a tree: mirror-0, raidz1-0, ... */
    /* the NAME column fits the pool name and every device as printed:
     * indented by 2 (4 under a mirror or raidz), " (stale)" after it */
    size_t w = strlen(json_string_value(get(p, "name")));
    size_t i;
    json_t *v;
    json_array_foreach(get(p, "vdevs"), i, v) {
        const char *path = json_string_value(get(v, "path"));
        size_t n = (path ? strlen(path) : 0) + (mirror ? 4 : 2) +
                   (json_is_true(get(v, "stale")) ? strlen(" (stale)") : 0) +
                   (json_is_true(get(v, "resilvering")) ? strlen(" (resilvering)") : 0);
        if (n > w)
            w = n;
    }
    if (w < 10)
        w = 10;
    printf("\t%-*s  %-8s %5s %5s %5s\n", (int)w, "NAME", "STATE", "READ", "WRITE", "CKSUM");
    printf("\t%-*s  %-8s %5s %5s %5s\n", (int)w, json_string_value(get(p, "name")), state,
           out_u64(get(p, "read_errors"), b1, sizeof(b1)),
           out_u64(get(p, "write_errors"), b2, sizeof(b2)),
           out_u64(get(p, "checksum_errors"), b3, sizeof(b3)));
    json_t *tops = get(p, "tops");
    if (json_array_size(tops) > 0) {
        print_tops(c, p, tops, (int)w);
    } else {
        if (mirror) {
            char top[32];
            snprintf(top, sizeof top, "  %s-0", lay);
            printf("\t%-*s  %s\n", (int)w, top, state);
        }
        json_array_foreach(get(p, "vdevs"), i, v)
            print_leaf(v, mirror ? "    " : "  ", (int)w);
    }
    json_int_t errs = json_integer_value(get(p, "read_errors")) +
                      json_integer_value(get(p, "write_errors")) +
                      json_integer_value(get(p, "checksum_errors"));
    if (!json_is_integer(get(p, "size"))) {
        printf("\nerrors: pool unavailable\n");
        return;
    }
    size_t ne = json_array_size(get(p, "scan_errors"));
    if (ne) {
        printf("\nerrors: %zu blocks the last scrub could not repair:\n", ne);
        json_array_foreach(get(p, "scan_errors"), i, v)
            printf("\t%s %s at offset %" JSON_INTEGER_FORMAT "\n",
                   json_string_value(get(v, "dataset")), json_string_value(get(v, "what")),
                   json_integer_value(get(v, "offset")));
    } else if (errs && mirror)
        printf("\nerrors: %" JSON_INTEGER_FORMAT " device errors (the counters above); "
               "reads were served from a good copy where one existed, and `berth pool scrub` "
               "lists blocks that have none\n", errs);
    else if (errs)
        printf("\nerrors: %" JSON_INTEGER_FORMAT " I/O or checksum errors (reads that failed "
               "verification returned EIO, never wrong data)\n", errs);
    else
        printf("\nerrors: No known data errors\n");
}

static int pool_status(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("pool", "", common_lo, )
    if (argc - optind > 1)
        return cli_usage_error("pool", "pool status takes at most one NAME");
    json_t *resp = NULL;
    int rc;
    if (optind < argc) {
        char *n = cli_escape(argv[optind]), path[512];
        snprintf(path, sizeof(path), "/pools/%s", n ? n : "");
        free(n);
        rc = cli_call(c, "GET", path, NULL, &resp);
        if (rc == EXIT_OK && !c->json)
            print_status(c, resp);
    } else {
        rc = cli_call(c, "GET", "/pools", NULL, &resp);
        if (rc == EXIT_OK && !c->json) {
            size_t i;
            json_t *p;
            json_array_foreach(get(resp, "pools"), i, p) {
                if (i)
                    printf("\n");
                print_status(c, p);
            }
            if (json_array_size(get(resp, "pools")) == 0)
                printf("no pools available\n");
        }
    }
    return done(c, rc, resp, NULL, NULL, NULL);
}

/* The simple verbs: NAME [-f] -> one POST/DELETE. */
static int pool_simple(struct cli *c, int argc, char **argv, const char *verb)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"force", no_argument, NULL, 'f'},
                                       {NULL, 0, NULL, 0}};
    bool force = false;
    bool takes_force = strcmp(verb, "export") == 0 || strcmp(verb, "destroy") == 0;
    GETOPT_LOOP("pool", "f", lo,
        case 'f':
            if (!takes_force)
                return cli_usage_error("pool", "pool %s has no option -f", verb);
            force = true;
            break;)
    if (argc - optind != 1)
        return cli_usage_error("pool", "pool %s needs exactly one NAME", verb);
    const char *name = argv[optind];
    char *n = cli_escape(name), path[512];
    json_t *resp = NULL;
    int rc;
    if (strcmp(verb, "destroy") == 0) {
        snprintf(path, sizeof(path), "/pools/%s%s", n ? n : "", force ? "?force=1" : "");
        rc = cli_call(c, "DELETE", path, NULL, &resp);
    } else {
        snprintf(path, sizeof(path), "/pools/%s/%s", n ? n : "", verb);
        json_t *body = force ? json_pack("{s:b}", "force", 1) : NULL;
        rc = cli_call(c, "POST", path, body, &resp);
        json_decref(body);
    }
    free(n);
    if (rc != EXIT_OK || c->json)
        return done(c, rc, resp, NULL, NULL, NULL);
    char b[32];
    if (strcmp(verb, "trim") == 0) {
        printf("pool %s: trimmed %s\n", name, out_size(c, get(resp, "trimmed"), b, sizeof(b)));
    } else if (strcmp(verb, "sync") == 0) {
        printf("pool %s: synced, txg %s\n", name, out_u64(get(resp, "txg"), b, sizeof(b)));
    } else if (strcmp(verb, "check") == 0) {
        if (!json_is_true(get(resp, "consistent"))) {
            rc = cli_fail("pool %s: inconsistent: %s", name,
                          json_string_value(get(resp, "problem")));
        } else {
            printf("pool %s: consistent (no leaked or doubly referenced blocks)\n", name);
        }
    } else {
        printf("pool %s %s\n", name, strcmp(verb, "export") == 0 ? "exported" : "destroyed");
    }
    json_decref(resp);
    return rc;
}

static int pool_import(struct cli *c, int argc, char **argv)
{
    _cleanup_free_ char *dir = NULL;
    bool rewind = false;
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"rewind", no_argument, NULL, 'F'},
                                       {NULL, 0, NULL, 0}};
    GETOPT_LOOP("pool", "d:F", lo,
        case 'd':
            free(dir);
            dir = abs_path(optarg);
            break;
        case 'F':
            rewind = true;
            break;)
    if (rewind && optind == argc)
        return cli_usage_error("pool", "pool import --rewind needs the NAME of the pool");
    if (argc - optind > 1)
        return cli_usage_error("pool", "pool import takes at most one NAME");
    json_t *resp = NULL;
    int rc;
    if (optind == argc) {
        char path[4200] = "/pools/importable";
        if (dir) {
            char *e = cli_escape(dir);
            snprintf(path, sizeof(path), "/pools/importable?dir=%s", e ? e : "");
            free(e);
        }
        rc = cli_call(c, "GET", path, NULL, &resp);
        if (rc == EXIT_OK && !c->json) {
            size_t i, k;
            json_t *p, *v;
            json_array_foreach(get(resp, "pools"), i, p) {
                char b[32];
                printf("   pool: %s\n     id: %s\n  state: %s (txg %s)\n", 
                       json_string_value(get(p, "name")), json_string_value(get(p, "guid")),
                       json_string_value(get(p, "state")), out_u64(get(p, "txg"), b, sizeof(b)));
                json_array_foreach(get(p, "vdevs"), k, v)
                    printf("   vdev: %s\n", json_string_value(v));
                printf("\n");
            }
            json_array_foreach(get(resp, "damaged"), i, p)
                printf("damaged: %s\n  problem: %s\n\n", json_string_value(get(p, "vdev")),
                       json_string_value(get(p, "problem")));
            if (json_array_size(get(resp, "pools")) == 0)
                printf("no pools available to import%s\n", dir ? "" : " (try -d DIR)");
            else
                printf("import one with: berth pool import %s%sNAME\n", dir ? "-d " : "",
                       dir ? "DIR " : "");
        }
    } else {
        json_t *body = json_pack("{s:s}", "name", argv[optind]);
        if (dir)
            json_object_set_new(body, "dir", json_string(dir));
        if (rewind)
            json_object_set_new(body, "rewind", json_true());
        rc = cli_call(c, "POST", "/pools/import", body, &resp);
        json_decref(body);
        if (rc == EXIT_OK && !c->json) {
            json_t *from = get(resp, "rewound_from");
            char b1[32], b2[32];
            if (from && !json_is_null(from))
                printf("pool %s imported, rewound from txg %s to txg %s: the writes made "
                       "after txg %s are lost\n",
                       argv[optind], out_u64(from, b1, sizeof(b1)),
                       out_u64(get(resp, "rewound_to"), b2, sizeof(b2)), b2);
            else
                printf("pool %s imported\n", argv[optind]);
        }
    }
    return done(c, rc, resp, NULL, NULL, NULL);
}

static int pool_set(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("pool", "", common_lo, )
    if (argc - optind < 2)
        return cli_usage_error("pool", "pool set needs PROP=VALUE... NAME");
    _cleanup_json_ json_t *props = json_object();
    for (int i = optind; i < argc - 1; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i])
            return cli_usage_error("pool", "expected PROP=VALUE, got '%s'", argv[i]);
        *eq = '\0';
        json_object_set_new(props, argv[i], json_string(eq + 1));
    }
    const char *name = argv[argc - 1];
    char *n = cli_escape(name), path[512];
    snprintf(path, sizeof(path), "/pools/%s", n ? n : "");
    free(n);
    json_t *body = json_pack("{s:O}", "properties", props), *resp = NULL;
    int rc = cli_call(c, "PATCH", path, body, &resp);
    json_decref(body);
    return done(c, rc, resp, NULL, NULL, NULL);
}

static int pool_debug(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("pool", "", common_lo, )
    if (argc - optind != 2)
        return cli_usage_error("pool", "pool debug needs NAME and KNOB");
    char *n = cli_escape(argv[optind]), path[512];
    snprintf(path, sizeof(path), "/pools/%s/debug", n ? n : "");
    free(n);
    json_t *body = json_pack("{s:s}", "knob", argv[optind + 1]), *resp = NULL;
    int rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    return done(c, rc, resp, "pool %s: debug knob %s set\n", argv[optind], argv[optind + 1]);
}

/* export, trim, destroy, sync, check: POOL and maybe -f, one API call */
static int pool_scrub(struct cli *c, int argc, char **argv)
{
    const char *action = "start", *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pause") == 0)
            action = "pause";
        else if (strcmp(argv[i], "--stop") == 0)
            action = "stop";
        else if (argv[i][0] == '-' || name)
            return cli_usage_error("pool", "usage: berth pool scrub [--pause|--stop] NAME");
        else
            name = argv[i];
    }
    if (!name)
        return cli_usage_error("pool", "pool scrub needs NAME");
    _cleanup_json_ json_t *body = json_pack("{s:s}", "action", action);
    char path[256];
    snprintf(path, sizeof path, "/pools/%s/scrub", name);
    json_t *resp = NULL;
    int rc = cli_call(c, "POST", path, body, &resp);
    return done(c, rc, resp, strcmp(action, "start") == 0 ? "scrub of %s started\n"
                             : strcmp(action, "pause") == 0 ? "scrub of %s paused\n"
                                                             : "scrub of %s stopped\n",
                name, NULL);
}

/* online|offline|detach NAME DEV, replace|attach [-f] NAME DEV NEWDEV */
static int pool_device(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"force", no_argument, NULL, 'f'},
                                       {NULL, 0, NULL, 0}};
    bool two = strcmp(argv[0], "replace") == 0 || strcmp(argv[0], "attach") == 0;
    bool force = false;
    const char *verb = argv[0];
    GETOPT_LOOP("pool", "f", lo,
        case 'f':
            if (!two)
                return cli_usage_error("pool", "pool %s has no option -f", verb);
            force = true;
            break;)
    argc -= optind - 1;
    argv += optind - 1;
    if (argc != (two ? 4 : 3) || argv[1][0] == '-' || argv[2][0] == '\0' ||
        (two && argv[3][0] == '\0'))
        return cli_usage_error("pool", two ? "usage: berth pool %s [-f] NAME DEVICE NEW_DEVICE"
                                           : "usage: berth pool %s NAME DEVICE", verb);
    _cleanup_json_ json_t *body = json_pack("{s:s,s:s}", "device", argv[2], "action", verb);
    if (two) {
        /* the daemon opens it: a path relative to here means nothing there */
        _cleanup_free_ char *nd = abs_path(argv[3]);
        json_object_set_new(body, "new_device", json_string(nd ? nd : argv[3]));
        if (force)
            json_object_set_new(body, "force", json_true());
    }
    char path[256];
    snprintf(path, sizeof path, "/pools/%s/devices", argv[1]);
    json_t *resp = NULL;
    int rc = cli_call(c, "POST", path, body, &resp);
    return done(c, rc, resp,
                strcmp(verb, "online") == 0
                    ? "%s: device back online (a resilver copies what it missed: see "
                      "`berth pool status`)\n"
                : strcmp(verb, "offline") == 0 ? "%s: device offline\n"
                : strcmp(verb, "detach") == 0  ? "%s: device detached\n"
                : strcmp(verb, "replace") == 0
                    ? "%s: device replaced, resilvering (see `berth pool status`)\n"
                    : "%s: device attached, resilvering (see `berth pool status`)\n",
                argv[1], NULL);
}

static int pool_simple_cmd(struct cli *c, int argc, char **argv)
{
    return pool_simple(c, argc, argv, argv[0]);
}

int cmd_pool(struct cli *c, int argc, char **argv)
{
    static const struct cli_cmd cmds[] = {
        {"create", pool_create},     {"add", pool_add},     {"list", pool_list},         {"status", pool_status},
        {"import", pool_import},     {"set", pool_set},           {"debug", pool_debug},
        {"export", pool_simple_cmd}, {"trim", pool_simple_cmd},   {"destroy", pool_simple_cmd},
        {"sync", pool_simple_cmd},   {"check", pool_simple_cmd},  {"scrub", pool_scrub},
        {"online", pool_device},     {"offline", pool_device},    {"replace", pool_device},
        {"attach", pool_device},     {"detach", pool_device},
    };
    return cli_dispatch(c, "pool", help_pool, cmds, ARRAY_SIZE(cmds), argc, argv);
}
