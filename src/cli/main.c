/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth: global options, the command groups, and the usage reference
 * (docs/CLI.md says the same at greater length). */
#include "cli.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BERTH_VERSION
#define BERTH_VERSION "0.0.0"
#endif

void help_main(FILE *f)
{
    fprintf(f,
            "Usage: berth [--socket PATH] [--json] COMMAND [ARGS...]\n"
            "\n"
            "The command-line client of berthd (virtualization host with its own\n"
            "ZFS-like storage).  Every command is one call of berthd's REST API.\n"
            "\n"
            "Global options:\n"
            "  --socket PATH   berthd's API socket (env BERTH_SOCKET)  [/run/berth/berthd.sock]\n"
            "  --json          print the API's JSON instead of tables\n"
            "  -p              exact numbers (bytes) instead of human sizes\n"
            "  -H              tables without header, tab-separated\n"
            "  -h, --help      this help;  berth COMMAND --help for a command group\n"
            "  --version       print the version\n"
            "\n"
            "Commands:\n"
            "  pool create|list|status|export|import|trim|destroy|sync|check|set|debug\n"
            "  vol  create|list|get|set|resize|destroy|uri\n"
            "  vm   create|list|config|set|start|shutdown|stop|reset|suspend|resume|\n"
            "       status|console|agent|destroy\n"
            "  net  create|list|destroy\n"
            "  replicate create|list|run|status|destroy\n"
            "  key  load|unload|list|add|remove|change   keys of encrypted volumes\n"
            "  snapshot [-r] POOL/VOL@NAME...;  snapshot list|get|destroy|hold|release\n"
            "  rollback, clone, promote          snapshots back to volumes\n"
            "  send, recv                        snapshots as streams (between pools, hosts)\n"
            "\n"
            "Exit status: 0 success, 1 the operation failed, 2 usage error,\n"
            "3 berthd is unreachable.\n");
}

/* snapshots, clones, rollback, send/receive (snap.c, clone.c, send.c):
 * argv[0] is the command */
static const struct cli_cmd snap_cmds[] = {
    {"snapshot", cmd_snapshot}, {"snap", cmd_snapshot},   {"rollback", cmd_rollback},
    {"clone", cmd_clone},       {"promote", cmd_promote}, {"send", cmd_send},
    {"recv", cmd_recv},         {"receive", cmd_recv},
};

static bool is_snap_cmd(const char *cmd)
{
    for (size_t i = 0; i < ARRAY_SIZE(snap_cmds); i++)
        if (strcmp(cmd, snap_cmds[i].name) == 0)
            return true;
    return false;
}

static void help_snap_cmds(FILE *f, const char *cmd)
{
    if (strncmp(cmd, "snap", 4) == 0)
        help_snapshot(f);
    else if (strcmp(cmd, "send") == 0 || strncmp(cmd, "rec", 3) == 0)
        help_send(f);
    else
        help_clone(f);
}

static int dispatch(struct cli *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    for (size_t i = 0; i < ARRAY_SIZE(snap_cmds); i++)
        if (strcmp(cmd, snap_cmds[i].name) == 0)
            return snap_cmds[i].fn(c, argc, argv);
    if (strcmp(cmd, "pool") == 0)
        return cmd_pool(c, argc - 1, argv + 1);
    if (strcmp(cmd, "vol") == 0 || strcmp(cmd, "volume") == 0)
        return cmd_vol(c, argc - 1, argv + 1);
    if (strcmp(cmd, "vm") == 0)
        return cmd_vm(c, argc - 1, argv + 1);
    if (strcmp(cmd, "net") == 0 || strcmp(cmd, "network") == 0)
        return cmd_net(c, argc - 1, argv + 1);
    if (strcmp(cmd, "replicate") == 0 || strcmp(cmd, "replication") == 0)
        return cmd_repl(c, argc - 1, argv + 1);
    if (strcmp(cmd, "key") == 0)
        return cmd_key(c, argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0) {
        if (argc > 1 && strcmp(argv[1], "pool") == 0)
            help_pool(stdout);
        else if (argc > 1 && (strcmp(argv[1], "vol") == 0 || strcmp(argv[1], "volume") == 0))
            help_vol(stdout);
        else if (argc > 1 && strcmp(argv[1], "replicate") == 0)
            help_repl(stdout);
        else if (argc > 1 && strcmp(argv[1], "key") == 0)
            help_key(stdout);
        else if (argc > 1 && is_snap_cmd(argv[1]))
            help_snap_cmds(stdout, argv[1]);
        else if (argc > 1 && strcmp(argv[1], "vm") == 0)
            help_vm(stdout);
        else if (argc > 1 && (strcmp(argv[1], "net") == 0 || strcmp(argv[1], "network") == 0))
            help_net(stdout);
        else
            help_main(stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0) {
        printf("berth %s\n", BERTH_VERSION);
        json_t *r = NULL;
        int rc = cli_call(c, "GET", "/version", NULL, &r);
        if (rc == EXIT_OK)
            printf("berthd %s\n", json_string_value(json_object_get(r, "version")));
        json_decref(r);
        return rc;
    }
    fprintf(stderr, "berth: unknown command '%s'\nTry 'berth --help' for the list of "
            "commands.\n", cmd);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"socket", required_argument, NULL, 'S'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct cli c = {.socket = getenv("BERTH_SOCKET")};
    if (!c.socket || !*c.socket)
        c.socket = "/run/berth/berthd.sock";
    opterr = 0;
    int opt;
    /* '+': stop at the command; its options are its own */
    while ((opt = getopt_long(argc, argv, "+:pHh", lo, NULL)) != -1) {
        switch (opt) {
        case 'S': c.socket = optarg; break;
        case 'h': help_main(stdout); return EXIT_OK;
        case 'V': printf("berth %s\n", BERTH_VERSION); return EXIT_OK;
        default:
            if (cli_common_opt(&c, opt))
                break;
            if (opt == ':') {
                fprintf(stderr, "berth: option '%s' needs an argument\n", argv[optind - 1]);
            } else if (optopt && argv[optind - 1][1] != '-') {
                fprintf(stderr, "berth: unknown option '-%c'\n", optopt);
            } else {
                fprintf(stderr, "berth: unknown option '%s'\n", argv[optind - 1]);
            }
            fprintf(stderr, "Try 'berth --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        help_main(stderr);
        return EXIT_USAGE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = dispatch(&c, argc - optind, argv + optind);
    curl_global_cleanup();
    return rc;
}
