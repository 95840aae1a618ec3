/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth vm ...: create, list, config, set, start, stop, reset, suspend,
 * resume, shutdown, status, destroy (console and agent are in console.c,
 * snapshot, rollback and clone in vm_snap.c).
 * Each is one call on /vms[/{vmid}[/...]] of docs/API.md.  create and set take
 * `--KEY VALUE` for any config key (qm style), so their options are parsed
 * here by hand rather than with getopt: the keys are berthd's to validate. */
#include "cli.h"
#include "common/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void help_vm(FILE *f)
{
    fprintf(f,
            "Usage: berth vm COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "  create VMID [--name N] [--memory MB] [--cores N]\n"
            "         [--scsi0 POOL:SIZE_GB|POOL:VOL[,opts]] [--net0 virtio,bridge=BR]\n"
            "         [--bios ovmf|seabios] [--tpm] [--cdrom ISO]\n"
            "         [--kernel K --initrd I --append CMDLINE] [--KEY VALUE]...\n"
            "      Define a VM (VMID 100..999999999) with berth's defaults (q35, OVMF with\n"
            "      an efidisk, virtio-scsi-single, agent, half the host's cores, 2048 MB)\n"
            "      changed by the options.  --scsiN POOL:SIZE_GB creates the volume\n"
            "      POOL/vm-VMID-disk-N (decimals allowed: tank:0.5); any config key of\n"
            "      docs/VMS.md can be given as --KEY VALUE or --KEY=VALUE.\n"
            "  list [-H]                  VMID NAME STATUS MEM CORES PID UPTIME ACCEL\n"
            "  config VMID                the config file (key: value)\n"
            "  set VMID [--KEY VALUE]... [--delete KEY[,KEY...]]\n"
            "                             change config keys (an empty VALUE deletes)\n"
            "  start VMID                 start QEMU (warns when it falls back to TCG)\n"
            "  shutdown [--timeout S] VMID\n"
            "                             clean shutdown (guest agent if enabled, else\n"
            "                             ACPI), stopped by force after S seconds\n"
            "  stop VMID                  stop at once (pull the plug)\n"
            "  reset VMID                 hard reset\n"
            "  suspend VMID | resume VMID pause / continue the vCPUs\n"
            "  status VMID                state, pid, uptime, accelerator and why, last exit\n"
            "  console VMID               serial console (interactive on a terminal:\n"
            "                             detach with Ctrl-]; with pipes: copies stdin to\n"
            "                             the guest and the guest to stdout until it stops)\n"
            "  agent [--timeout S] VMID ping|info|fsfreeze|thaw|fsfreeze-status\n"
            "  agent [--timeout S] VMID exec -- CMD [ARGS...]\n"
            "                             talk to qemu-ga in the guest; exec prints the\n"
            "                             command's output and fails if it fails\n"
            "  destroy [--purge] VMID     remove the VM (--purge: and its volumes)\n"
            "  snapshot [--freeze-timeout S] VMID NAME\n"
            "                             snapshot all the VM's volumes at one moment; a\n"
            "                             running VM's filesystems are frozen through its\n"
            "                             agent (without one: crash-consistent, warned)\n"
            "  snapshot list VMID         NAME CREATED FROZEN\n"
            "  snapshot destroy VMID NAME destroy the snapshot of every volume\n"
            "  rollback VMID NAME         volumes and config back to the snapshot (the VM\n"
            "                             must be stopped; newer snapshots are kept)\n"
            "  clone [--linked] [--snapshot NAME] [--name N] VMID NEWID\n"
            "                             a new VM from a snapshot (default: one taken now):\n"
            "                             full copy, or --linked sharing its blocks; new\n"
            "                             MACs and SMBIOS UUID\n"
            "\n"
            "Options: -p exact numbers, -H no header, --json the API's JSON.\n");
}

static json_t *get(json_t *o, const char *k)
{
    return json_object_get(o, k);
}

int cli_vm_path(const char *vmid, const char *suffix, char *out, size_t len)
{
    size_t n = strspn(vmid, "0123456789");
    if (n == 0 || vmid[n] || n > 10)
        return cli_usage_error("vm", "bad VMID '%s': expected a number (100..999999999)", vmid);
    snprintf(out, len, "/vms/%s%s", vmid, suffix);
    return EXIT_OK;
}

#define GETOPT_LOOP(shortopts, longopts, ...) \
    CLI_GETOPT_LOOP("vm", help_vm, shortopts, longopts, __VA_ARGS__)

static const struct option common_lo[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};

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

void vm_print_warnings(json_t *resp)
{
    const char *w = json_string_value(get(resp, "warning"));
    if (w)
        fprintf(stderr, "berth: warning: %s\n", w);
    size_t i;
    json_t *v;
    json_array_foreach(get(resp, "warnings"), i, v) {
        if (json_is_string(v))
            fprintf(stderr, "berth: warning: %s\n", json_string_value(v));
    }
}

/* The qm-style option parser of create and set: --json/-p/-H/--help, --tpm
 * (a flag), --delete LIST (set), --KEY VALUE / --KEY=VALUE into `opts`, and
 * exactly one positional VMID.  Returns EXIT_OK or a usage error; -1 when
 * help was printed. */
static int parse_kv(struct cli *c, const char *verb, int argc, char **argv, json_t *opts,
                    json_t *del, const char **vmid)
{
    *vmid = NULL;
    bool dashdash = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dashdash || a[0] != '-' || a[1] == '\0') {
            if (*vmid)
                return cli_usage_error("vm", "vm %s takes one VMID, got '%s' and '%s'", verb,
                                       *vmid, a);
            *vmid = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            dashdash = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help_vm(stdout);
            return -1;
        }
        if (strcmp(a, "--json") == 0 || strcmp(a, "-p") == 0 || strcmp(a, "-H") == 0) {
            cli_common_opt(c, a[1] == 'p' ? 'p' : a[1] == 'H' ? 'H' : 'J');
            continue;
        }
        if (a[1] != '-')
            return cli_usage_error("vm", "unknown option '%s' (config keys are given as "
                                   "--KEY VALUE)", a);
        const char *key = a + 2;
        const char *eq = strchr(key, '=');
        size_t klen = eq ? (size_t)(eq - key) : strlen(key);
        char k[64];
        if (klen == 0 || klen >= sizeof(k) || strspn(key, "abcdefghijklmnopqrstuvwxyz"
                                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") < klen)
            return cli_usage_error("vm", "bad option '%s': expected --KEY VALUE", a);
        memcpy(k, key, klen);
        k[klen] = '\0';
        const char *val = eq ? eq + 1 : NULL;
        if (strcmp(k, "tpm") == 0) {
            /* a flag: --tpm, or --tpm=0|1 */
            if (val && strcmp(val, "0") != 0 && strcmp(val, "1") != 0)
                return cli_usage_error("vm", "--tpm takes no value (or =0/=1), got '%s'", val);
            json_object_set_new(opts, "tpm", json_string(val ? val : "1"));
            continue;
        }
        if (!val) {
            if (i + 1 >= argc)
                return cli_usage_error("vm", "option '--%s' needs a value", k);
            val = argv[++i];
        }
        if (del && strcmp(k, "delete") == 0) {
            char *list = strdup(val);
            for (char *save = NULL, *t = strtok_r(list, ", ", &save); t;
                 t = strtok_r(NULL, ", ", &save))
                json_array_append_new(del, json_string(t));
            free(list);
            continue;
        }
        if (json_object_get(opts, k))
            return cli_usage_error("vm", "option '--%s' given twice", k);
        json_object_set_new(opts, k, json_string(val));
    }
    if (!*vmid)
        return cli_usage_error("vm", "vm %s needs a VMID", verb);
    return EXIT_OK;
}

static int vm_create(struct cli *c, int argc, char **argv)
{
    _cleanup_json_ json_t *opts = json_object();
    const char *vmid;
    int rc = parse_kv(c, "create", argc, argv, opts, NULL, &vmid);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    char path[64];
    if ((rc = cli_vm_path(vmid, "", path, sizeof(path))) != EXIT_OK)
        return rc;
    /* relative file paths are relative to our cwd, not berthd's */
    static const char *const file_keys[] = {"kernel", "initrd", "cdrom"};
    for (size_t i = 0; i < sizeof(file_keys) / sizeof(file_keys[0]); i++) {
        const char *v = json_string_value(get(opts, file_keys[i]));
        char *abs = v && v[0] && v[0] != '/' ? realpath(v, NULL) : NULL;
        if (abs)
            json_object_set_new(opts, file_keys[i], json_string(abs));
        free(abs);
    }
    json_t *body = json_pack("{s:I,s:O}", "vmid", (json_int_t)strtoll(vmid, NULL, 10),
                             "options", opts);
    json_t *resp = NULL;
    rc = cli_call(c, "POST", "/vms", body, &resp);
    json_decref(body);
    if (rc == EXIT_OK)
        vm_print_warnings(resp);
    return finish(c, rc, resp, "VM %s created\n", vmid);
}

static int vm_set(struct cli *c, int argc, char **argv)
{
    _cleanup_json_ json_t *opts = json_object();
    _cleanup_json_ json_t *del = json_array();
    const char *vmid;
    int rc = parse_kv(c, "set", argc, argv, opts, del, &vmid);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (json_object_size(opts) == 0 && json_array_size(del) == 0)
        return cli_usage_error("vm", "vm set needs at least one --KEY VALUE or --delete KEY");
    char path[64];
    if ((rc = cli_vm_path(vmid, "/config", path, sizeof(path))) != EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:O,s:O}", "set", opts, "delete", del), *resp = NULL;
    rc = cli_call(c, "PATCH", path, body, &resp);
    json_decref(body);
    if (rc == EXIT_OK && !c->json) {
        vm_print_warnings(resp);
        printf("VM %s updated\n", vmid);
        if (json_is_true(get(resp, "pending_restart")))
            printf("the change takes effect at the next start (the VM is running)\n");
    }
    return finish(c, rc, resp, NULL, NULL);
}

/* "1d02h", "3h04m", "5m03s", "42s" */
static const char *fmt_uptime(struct cli *c, json_t *v, char *buf, size_t len)
{
    if (!json_is_integer(v) || c->parsable)
        return out_u64(v, buf, len);
    long long s = json_integer_value(v);
    if (s >= 86400)
        snprintf(buf, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, len, "%llds", s);
    return buf;
}

/* memory is MB, as a number or a string */
static const char *fmt_mem(struct cli *c, json_t *v, char *buf, size_t len)
{
    long long mb = json_is_integer(v) ? json_integer_value(v)
                   : json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : -1;
    if (mb < 0)
        return out_u64(v, buf, len);
    if (c->parsable)
        snprintf(buf, len, "%lld", mb << 20);
    else
        format_size((uint64_t)mb << 20, buf, len);
    return buf;
}

static int vm_list(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 0)
        return cli_usage_error("vm", "vm list takes no arguments");
    json_t *resp = NULL;
    int rc = cli_call(c, "GET", "/vms", NULL, &resp);
    if (rc != EXIT_OK || c->json)
        return finish(c, rc, resp, NULL, NULL);
    static const char *const hdr[] = {"VMID", "NAME",   "STATUS", "MEM",
                                      "CORES", "PID", "UPTIME", "ACCEL"};
    struct table *t = table_new(c, 8, hdr);
    size_t i;
    json_t *v;
    json_array_foreach(get(resp, "vms"), i, v) {
        char id[32], mem[32], cores[32], pid[32], up[32];
        json_t *jpid = get(v, "pid");
        bool has_pid = json_is_integer(jpid) && json_integer_value(jpid) > 0;
        const char *st = json_string_value(get(v, "status"));
        bool live = st && strcmp(st, "stopped") != 0 && strcmp(st, "crashed") != 0;
        const char *row[] = {out_u64(get(v, "vmid"), id, sizeof(id)),
                             json_string_value(get(v, "name")),
                             st,
                             fmt_mem(c, get(v, "memory"), mem, sizeof(mem)),
                             out_u64(get(v, "cores"), cores, sizeof(cores)),
                             has_pid ? out_u64(jpid, pid, sizeof(pid)) : "-",
                             live ? fmt_uptime(c, get(v, "uptime"), up, sizeof(up)) : "-",
                             live ? json_string_value(get(v, "accel")) : "-"};
        table_row(t, row);
    }
    if (json_array_size(get(resp, "vms")) == 0) {
        table_free(t);
        if (!c->no_header)
            printf("no VMs\n");
    } else {
        table_print(t);
    }
    json_decref(resp);
    return EXIT_OK;
}

/* The verbs that take just a VMID: config, status, start, stop, ... */
static int one_vmid(struct cli *c, const char *verb, int argc, char **argv, const char **vmid,
                    char *path, size_t len, const char *suffix)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 1)
        return cli_usage_error("vm", "vm %s needs exactly one VMID", verb);
    *vmid = argv[optind];
    return cli_vm_path(*vmid, suffix, path, len);
}

static int vm_config(struct cli *c, int argc, char **argv)
{
    const char *vmid;
    char path[64];
    int rc = one_vmid(c, "config", argc, argv, &vmid, path, sizeof(path), "/config");
    if (rc != EXIT_OK)
        return rc;
    json_t *resp = NULL;
    rc = cli_call(c, "GET", path, NULL, &resp);
    if (rc == EXIT_OK && !c->json) {
        const char *text = json_string_value(get(resp, "text"));
        if (text) {
            fputs(text, stdout);
            if (*text && text[strlen(text) - 1] != '\n')
                putchar('\n');
        } else {
            const char *k;
            json_t *v;
            json_object_foreach(get(resp, "config"), k, v) {
                char b[4096];
                printf("%s: %s\n", k, out_u64(v, b, sizeof(b)));
            }
        }
    }
    return finish(c, rc, resp, NULL, NULL);
}

/* The accelerator's reason, said plainly: "software emulation: /dev/kvm is
 * ..." for TCG (berthd's reason may start with "tcg: " and may already say
 * "software emulation"), "hardware virtualization" for KVM. */
static const char *accel_why(const char *accel, const char *reason, char *buf, size_t len)
{
    bool tcg = strcmp(accel, "tcg") == 0;
    if (reason && strncmp(reason, accel, strlen(accel)) == 0 && reason[strlen(accel)] == ':')
        reason += strlen(accel) + 1 + (reason[strlen(accel) + 1] == ' ');
    if (!reason || !*reason)
        snprintf(buf, len, "%s", tcg ? "software emulation, slow" : "hardware virtualization");
    else if (tcg && !strstr(reason, "emulation"))
        snprintf(buf, len, "software emulation: %s", reason);
    else
        snprintf(buf, len, "%s", reason);
    return buf;
}

static void print_exit(json_t *le)
{
    if (!json_is_object(le))
        return;
    char b[64];
    const char *reason = json_string_value(get(le, "reason"));
    printf("last exit: %s", reason ? reason : "?");
    /* add the numbers unless the sentence already says them */
    if (json_is_integer(get(le, "signal")) && json_integer_value(get(le, "signal")) > 0) {
        if (!reason || !strstr(reason, "signal"))
            printf(" (signal %s)", out_u64(get(le, "signal"), b, sizeof(b)));
    } else if (json_is_integer(get(le, "code")) && json_integer_value(get(le, "code")) != 0 &&
               (!reason || !strstr(reason, "code"))) {
        printf(" (exit code %s)", out_u64(get(le, "code"), b, sizeof(b)));
    }
    if (json_is_integer(get(le, "time")) && json_integer_value(get(le, "time")) > 0) {
        time_t t = (time_t)json_integer_value(get(le, "time"));
        struct tm tm;
        if (localtime_r(&t, &tm) && strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%S", &tm))
            printf(" at %s", b);
    }
    printf("\n");
    const char *tail = json_string_value(get(le, "log_tail"));
    if (tail && *tail) {
        printf("log:\n");
        for (const char *p = tail; *p;) {
            const char *nl = strchr(p, '\n');
            int n = nl ? (int)(nl - p) : (int)strlen(p);
            printf("  | %.*s\n", n, p);
            p += n + (nl ? 1 : 0);
        }
    }
}

static int vm_status(struct cli *c, int argc, char **argv)
{
    const char *vmid;
    char path[64];
    int rc = one_vmid(c, "status", argc, argv, &vmid, path, sizeof(path), "");
    if (rc != EXIT_OK)
        return rc;
    json_t *resp = NULL;
    rc = cli_call(c, "GET", path, NULL, &resp);
    if (rc != EXIT_OK || c->json)
        return finish(c, rc, resp, NULL, NULL);
    char b[64];
    const char *st = json_string_value(get(resp, "status"));
    printf("vmid: %s\n", out_u64(get(resp, "vmid"), b, sizeof(b)));
    if (json_string_value(get(resp, "name")))
        printf("name: %s\n", json_string_value(get(resp, "name")));
    printf("status: %s", st ?: "?");
    const char *qs = json_string_value(get(resp, "qmp_status"));
    if (qs && st && strcmp(qs, st) != 0)
        printf(" (QEMU: %s)", qs);
    printf("\n");
    json_t *pid = get(resp, "pid");
    if (json_is_integer(pid) && json_integer_value(pid) > 0) {
        printf("pid: %s\n", out_u64(pid, b, sizeof(b)));
        printf("uptime: %s\n", fmt_uptime(c, get(resp, "uptime"), b, sizeof(b)));
    }
    const char *accel = json_string_value(get(resp, "accel"));
    char why[512];
    if (accel)
        printf("accelerator: %s (%s)\n", accel,
               accel_why(accel, json_string_value(get(resp, "accel_reason")), why, sizeof(why)));
    print_exit(get(resp, "last_exit"));
    json_decref(resp);
    return EXIT_OK;
}

static int vm_action(struct cli *c, int argc, char **argv)
{
    static const struct {
        const char *verb, *done;
    } acts[] = {{"start", "started"},     {"stop", "stopped"},  {"reset", "reset"},
                {"suspend", "suspended"}, {"resume", "resumed"}};
    const char *verb = argv[0], *done = "done";
    for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
        if (strcmp(verb, acts[i].verb) == 0)
            done = acts[i].done;
    const char *vmid;
    char path[64], suffix[32];
    snprintf(suffix, sizeof(suffix), "/%s", verb);
    int rc = one_vmid(c, verb, argc, argv, &vmid, path, sizeof(path), suffix);
    if (rc != EXIT_OK)
        return rc;
    json_t *resp = NULL;
    rc = cli_call(c, "POST", path, NULL, &resp);
    if (rc == EXIT_OK && !c->json) {
        vm_print_warnings(resp);
        const char *accel = json_string_value(get(resp, "accel"));
        char why[512];
        if (strcmp(verb, "start") == 0 && accel && strcmp(accel, "tcg") == 0 &&
            !get(resp, "warning") && !get(resp, "warnings"))
            fprintf(stderr, "berth: warning: VM %s runs without KVM: %s\n", vmid,
                    accel_why(accel, json_string_value(get(resp, "accel_reason")), why,
                              sizeof(why)));
        printf("VM %s %s\n", vmid, done);
    }
    return finish(c, rc, resp, NULL, NULL);
}

static int vm_shutdown(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS,
                                       {"timeout", required_argument, NULL, 't'},
                                       {NULL, 0, NULL, 0}};
    uint64_t timeout = 0;
    bool have_timeout = false;
    GETOPT_LOOP("t:", lo, case 't':
        if (parse_u64(optarg, 0, 3600, &timeout, NULL) != 0)
            return cli_usage_error("vm", "bad --timeout '%s': expected seconds (0..3600)",
                                   optarg);
        have_timeout = true;
        break;)
    if (argc - optind != 1)
        return cli_usage_error("vm", "vm shutdown needs exactly one VMID");
    const char *vmid = argv[optind];
    char path[64];
    int rc = cli_vm_path(vmid, "/shutdown", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    json_t *body = json_object(), *resp = NULL;
    if (have_timeout)
        json_object_set_new(body, "timeout", json_integer((json_int_t)timeout));
    rc = cli_call(c, "POST", path, body, &resp);
    json_decref(body);
    if (rc == EXIT_OK && !c->json) {
        vm_print_warnings(resp);
        const char *how = json_string_value(get(resp, "method"));
        bool forced = json_is_true(get(resp, "forced"));
        if (forced)
            printf("VM %s did not shut down in time (%s); stopped by force\n", vmid,
                   how ? how : "?");
        else
            printf("VM %s shut down%s%s%s\n", vmid, how ? " (" : "", how ? how : "",
                   how ? ")" : "");
    }
    return finish(c, rc, resp, NULL, NULL);
}

static int vm_destroy(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS, {"purge", no_argument, NULL, 'P'},
                                       {NULL, 0, NULL, 0}};
    bool purge = false;
    GETOPT_LOOP("", lo, case 'P': purge = true; break;)
    if (argc - optind != 1)
        return cli_usage_error("vm", "vm destroy needs exactly one VMID");
    const char *vmid = argv[optind];
    char path[64];
    int rc = cli_vm_path(vmid, purge ? "?purge=1" : "", path, sizeof(path));
    if (rc != EXIT_OK)
        return rc;
    json_t *resp = NULL;
    rc = cli_call(c, "DELETE", path, NULL, &resp);
    return finish(c, rc, resp, purge ? "VM %s destroyed with its volumes\n" : "VM %s destroyed\n",
                  vmid);
}

int cmd_vm(struct cli *c, int argc, char **argv)
{
    static const struct cli_cmd cmds[] = {
        {"create", vm_create},   {"list", vm_list},       {"config", vm_config},
        {"set", vm_set},         {"start", vm_action},    {"stop", vm_action},
        {"reset", vm_action},    {"suspend", vm_action},  {"resume", vm_action},
        {"shutdown", vm_shutdown}, {"status", vm_status}, {"console", vm_console},
        {"agent", vm_agent},     {"destroy", vm_destroy},   {"snapshot", vm_snapshot},
        {"rollback", vm_rollback}, {"clone", vm_clone},
    };
    return cli_dispatch(c, "vm", help_vm, cmds, ARRAY_SIZE(cmds), argc, argv);
}
