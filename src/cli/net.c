/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth net ...: create, list, destroy.  The Linux bridges berthd manages for
 * VM NICs (tap devices): one API call each on /networks[/{name}]. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void help_net(FILE *f)
{
    fprintf(f,
            "Usage: berth net COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "  create [--cidr ADDR/LEN] BRIDGE\n"
            "      Create a Linux bridge for VM NICs (no uplink).  --cidr gives the\n"
            "      host an address on it, e.g. 10.10.0.1/24.\n"
            "  list [-H]                  NAME CIDR STATE PORTS\n"
            "  destroy BRIDGE             delete the bridge (refused while VMs use it)\n"
            "\n"
            "Options: -H no header, --json the API's JSON.\n");
}

#define GETOPT_LOOP(shortopts, longopts, ...) \
    CLI_GETOPT_LOOP("net", help_net, shortopts, longopts, __VA_ARGS__)

static const struct option common_lo[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};

static json_t *get(json_t *o, const char *k)
{
    return json_object_get(o, k);
}

static int finish(struct cli *c, int rc, json_t *resp, const char *fmt, const char *arg)
{
    if (rc == EXIT_OK) {
        if (c->json)
            out_json(resp);
        else if (fmt)
            printf(fmt, arg);
    }
    json_decref(resp);
    return rc;
}

static int net_create(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS,
                                       {"cidr", required_argument, NULL, 'C'},
                                       {NULL, 0, NULL, 0}};
    const char *cidr = NULL;
    GETOPT_LOOP("", lo, case 'C': cidr = optarg; break;)
    if (argc - optind != 1)
        return cli_usage_error("net", "net create needs exactly one BRIDGE name");
    json_t *body = json_pack("{s:s}", "name", argv[optind]), *resp = NULL;
    if (cidr)
        json_object_set_new(body, "cidr", json_string(cidr));
    int rc = cli_call(c, "POST", "/networks", body, &resp);
    json_decref(body);
    return finish(c, rc, resp, "bridge %s created\n", argv[optind]);
}

/* The number of ports (tap devices) of a network object, if it says. */
static const char *ports(json_t *n, char *buf, size_t len)
{
    static const char *const keys[] = {"ports", "members", "interfaces", "taps"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = get(n, keys[i]);
        if (json_is_array(v)) {
            size_t k;
            json_t *p;
            buf[0] = '\0';
            json_array_foreach(v, k, p) {
                const char *s = json_is_string(p) ? json_string_value(p)
                                                  : json_string_value(get(p, "name"));
                if (s && strlen(buf) + strlen(s) + 2 < len)
                    snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", k ? "," : "", s);
            }
            return buf[0] ? buf : "-";
        }
        if (json_is_integer(v))
            return out_u64(v, buf, len);
    }
    return "-";
}

static int net_list(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 0)
        return cli_usage_error("net", "net list takes no arguments");
    json_t *resp = NULL;
    int rc = cli_call(c, "GET", "/networks", NULL, &resp);
    if (rc != EXIT_OK || c->json)
        return finish(c, rc, resp, NULL, NULL);
    static const char *const hdr[] = {"NAME", "CIDR", "STATE", "PORTS"};
    struct table *t = table_new(c, 4, hdr);
    size_t i;
    json_t *n;
    json_array_foreach(get(resp, "networks"), i, n) {
        char pb[512];
        json_t *st = get(n, "state");
        json_t *up = get(n, "up");
        const char *state = json_is_string(st)   ? json_string_value(st)
                            : json_is_boolean(up) ? (json_is_true(up) ? "up" : "down")
                                                  : "-";
        const char *row[] = {json_string_value(get(n, "name")),
                             json_string_value(get(n, "cidr")), state, ports(n, pb, sizeof(pb))};
        table_row(t, row);
    }
    if (json_array_size(get(resp, "networks")) == 0) {
        table_free(t);
        if (!c->no_header)
            printf("no networks\n");
    } else {
        table_print(t);
    }
    json_decref(resp);
    return EXIT_OK;
}

static int net_destroy(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 1)
        return cli_usage_error("net", "net destroy needs exactly one BRIDGE name");
    char *e = cli_escape(argv[optind]);
    if (!e)
        return cli_fail("out of memory");
    char path[512];
    snprintf(path, sizeof(path), "/networks/%s", e);
    free(e);
    json_t *resp = NULL;
    int rc = cli_call(c, "DELETE", path, NULL, &resp);
    return finish(c, rc, resp, "bridge %s destroyed\n", argv[optind]);
}

int cmd_net(struct cli *c, int argc, char **argv)
{
    static const struct cli_cmd cmds[] = {
        {"create", net_create}, {"list", net_list}, {"destroy", net_destroy},
    };
    return cli_dispatch(c, "net", help_net, cmds, ARRAY_SIZE(cmds), argc, argv);
}
