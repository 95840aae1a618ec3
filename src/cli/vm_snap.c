/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth vm snapshot|rollback|clone: VM snapshots (all the VM's disks at one
 * moment, the guest frozen through its agent), rollback and clones.  Each is
 * one call on /vms/{vmid}/snapshots, /rollback or /clone (docs/API.md). */
#include "cli.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GETOPT_LOOP(shortopts, longopts, ...) \
    CLI_GETOPT_LOOP("vm", help_vm, shortopts, longopts, __VA_ARGS__)

static const struct option common_lo[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};

static json_t *get(json_t *o, const char *k)
{
    return json_object_get(o, k);
}

static int done(struct cli *c, int rc, json_t *resp)
{
    if (rc == EXIT_OK && c->json)
        out_json(resp);
    json_decref(resp);
    return rc;
}

/* "/vms/ID/snapshots/NAME" (NAME escaped) */
static int snap_path(const char *vmid, const char *name, char *out, size_t len)
{
    char *esc = cli_escape(name);
    if (!esc)
        return cli_fail("out of memory");
    char suffix[512];
    snprintf(suffix, sizeof suffix, "/snapshots/%s", esc);
    free(esc);
    return cli_vm_path(vmid, suffix, out, len);
}

/* berth vm snapshot list VMID */
static int snap_list(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 1)
        return cli_usage_error("vm", "vm snapshot list needs exactly one VMID");
    char path[64];
    int rc = cli_vm_path(argv[optind], "/snapshots", path, sizeof path);
    json_t *resp = NULL;
    if (rc != EXIT_OK || (rc = cli_call(c, "GET", path, NULL, &resp)) != EXIT_OK || c->json)
        return done(c, rc, resp);
    static const char *const hdr[] = {"NAME", "CREATED", "FROZEN"};
    struct table *t = table_new(c, 3, hdr);
    size_t i;
    json_t *v;
    json_array_foreach(get(resp, "snapshots"), i, v) {
        char when[64];
        time_t tt = (time_t)json_integer_value(get(v, "time"));
        struct tm tm;
        if (c->parsable || !localtime_r(&tt, &tm) ||
            !strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm))
            snprintf(when, sizeof when, "%lld", (long long)tt);
        const char *row[] = {json_string_value(get(v, "name")), when,
                             json_is_true(get(v, "frozen")) ? "yes" : "no"};
        table_row(t, row);
    }
    if (json_array_size(get(resp, "snapshots")) == 0) {
        table_free(t);
        if (!c->no_header)
            printf("no snapshots\n");
    } else {
        table_print(t);
    }
    json_decref(resp);
    return EXIT_OK;
}

/* berth vm snapshot destroy VMID NAME */
static int snap_destroy(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 2)
        return cli_usage_error("vm", "vm snapshot destroy needs a VMID and a snapshot name");
    char path[600];
    int rc = snap_path(argv[optind], argv[optind + 1], path, sizeof path);
    json_t *resp = NULL;
    if (rc == EXIT_OK && (rc = cli_call(c, "DELETE", path, NULL, &resp)) == EXIT_OK && !c->json)
        printf("VM %s: snapshot %s destroyed\n", argv[optind], argv[optind + 1]);
    return done(c, rc, resp);
}

/* berth vm snapshot [--freeze-timeout S] VMID NAME */
static int snap_create(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS,
                                       {"freeze-timeout", required_argument, NULL, 't'},
                                       {NULL, 0, NULL, 0}};
    uint64_t timeout = 0;
    GETOPT_LOOP("", lo, case 't':
        if (parse_u64(optarg, 1, 3600, &timeout, NULL) != 0)
            return cli_usage_error("vm", "bad --freeze-timeout '%s': expected seconds "
                                   "(1..3600)", optarg);
        break;)
    if (argc - optind != 2)
        return cli_usage_error("vm", "vm snapshot needs a VMID and a snapshot name "
                               "(or: vm snapshot list|destroy ...)");
    const char *vmid = argv[optind], *name = argv[optind + 1];
    char path[64];
    int rc = cli_vm_path(vmid, "/snapshots", path, sizeof path);
    if (rc != EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:s}", "name", name), *resp = NULL;
    if (timeout)
        json_object_set_new(body, "freeze_timeout", json_integer((json_int_t)timeout));
    rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    if (rc == EXIT_OK && !c->json) {
        vm_print_warnings(resp);
        if (json_is_true(get(resp, "frozen")))
            printf("VM %s: snapshot %s taken (guest filesystems frozen: %lld)\n", vmid, name,
                   (long long)json_integer_value(get(resp, "frozen_filesystems")));
        else
            printf("VM %s: snapshot %s taken\n", vmid, name);
    }
    return done(c, rc, resp);
}

int vm_snapshot(struct cli *c, int argc, char **argv)
{
    /* VMIDs are numbers, so "list" and "destroy" cannot be one */
    if (argc > 1 && strcmp(argv[1], "list") == 0)
        return snap_list(c, argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "destroy") == 0)
        return snap_destroy(c, argc - 1, argv + 1);
    return snap_create(c, argc, argv);
}

int vm_rollback(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 2)
        return cli_usage_error("vm", "vm rollback needs a VMID and a snapshot name");
    const char *vmid = argv[optind], *name = argv[optind + 1];
    char path[64];
    int rc = cli_vm_path(vmid, "/rollback", path, sizeof path);
    if (rc != EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:s}", "snapshot", name), *resp = NULL;
    rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    if (rc == EXIT_OK && !c->json)
        printf("VM %s rolled back to snapshot %s\n", vmid, name);
    return done(c, rc, resp);
}

int vm_clone(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS,
                                       {"linked", no_argument, NULL, 'l'},
                                       {"snapshot", required_argument, NULL, 's'},
                                       {"name", required_argument, NULL, 'n'},
                                       {NULL, 0, NULL, 0}};
    bool linked = false;
    const char *snap = NULL, *name = NULL;
    GETOPT_LOOP("", lo, case 'l': linked = true; break;
                case 's': snap = optarg; break;
                case 'n': name = optarg; break;)
    if (argc - optind != 2)
        return cli_usage_error("vm", "vm clone needs the VMID and the new VMID");
    const char *vmid = argv[optind], *newid = argv[optind + 1];
    char path[64], check[64];
    int rc = cli_vm_path(vmid, "/clone", path, sizeof path);
    if (rc != EXIT_OK || (rc = cli_vm_path(newid, "", check, sizeof check)) != EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:I,s:b}", "newid", (json_int_t)strtoll(newid, NULL, 10),
                             "linked", linked),
           *resp = NULL;
    if (snap)
        json_object_set_new(body, "snapshot", json_string(snap));
    if (name)
        json_object_set_new(body, "name", json_string(name));
    rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    if (rc == EXIT_OK && !c->json) {
        vm_print_warnings(resp);
        const char *s = json_string_value(get(resp, "snapshot"));
        bool named = (linked || snap) && s; /* a full clone's own snapshot is gone */
        printf("VM %s cloned from VM %s (%s%s%s)\n", newid, vmid,
               linked ? "linked clone" : "full copy", named ? " of snapshot " : "",
               named ? s : "");
    }
    return done(c, rc, resp);
}
