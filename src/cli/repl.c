/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth replicate ...: create, list, run, status, destroy.  Scheduled
 * replication jobs of berthd (docs/REPLICATION.md), one API call each on
 * /replications[/{name}[/run]]. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void help_repl(FILE *f)
{
    fprintf(f,
            "Usage: berth replicate COMMAND [OPTIONS] [ARGS]\n"
            "\n"
            "  create NAME --source POOL/VOL (--target POOL/VOL [--remote CMD] | --target-cmd CMD)\n"
            "         --every DURATION --keep GRID [--keep-target GRID] [--prefix PREFIX]\n"
            "         [--raw]\n"
            "      Every DURATION (15m, 1h, 1h30m; seconds such as 2s are accepted),\n"
            "      snapshot the source as VOL@PREFIX<UTC time> (prefix default repl_),\n"
            "      send it (incrementally from the newest snapshot both sides have) to\n"
            "      the target volume (with --remote 'ssh host berth': that volume on\n"
            "      the other host, listed, resumed and pruned through the command), or\n"
            "      into `sh -c CMD` (e.g. 'ssh host berth recv tank/vm1'; that side is\n"
            "      not pruned), then prune both sides by GRID: PERIOD:COUNT,... e.g.\n"
            "      1h:24,1d:7,1w:4 keeps the newest snapshot of each of 24 hourly, then\n"
            "      7 daily, then 4 weekly intervals (--keep-target: another grid for\n"
            "      the target).  --raw (-w): send raw streams of an encrypted source:\n"
            "      the target stores the ciphertext, stays locked and never needs the\n"
            "      key (a locked source replicates only so); key changes on the source\n"
            "      reach the target.  Without it an encrypted source is sent decrypted.\n"
            "  list [-H]                   NAME SOURCE TARGET EVERY STATE LAST-SUCCESS LAG\n"
            "  run [--no-wait] NAME        run a cycle now (and wait for its result)\n"
            "  status [-p] NAME            last success, lag, bytes sent, last error,\n"
            "                              next run\n"
            "  destroy NAME                stop replicating (snapshots are kept)\n"
            "\n"
            "Options: -p exact numbers, -H no header, --json the API's JSON.\n");
}

#define GETOPT_LOOP(shortopts, longopts, ...) \
    CLI_GETOPT_LOOP("replicate", help_repl, shortopts, longopts, __VA_ARGS__)

static const struct option common_lo[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};

static json_t *get(json_t *o, const char *k)
{
    return json_object_get(o, k);
}

static const char *sget(json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(get(o, k));
    return s ? s : dflt;
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

/* One call on "/replications/NAME" + suffix (NAME escaped). */
static int job_call(struct cli *c, const char *method, const char *name, const char *suffix,
                    json_t *body, json_t **resp)
{
    char *e = cli_escape(name);
    if (!e)
        return cli_fail("out of memory");
    char path[512];
    snprintf(path, sizeof(path), "/replications/%s%s", e, suffix);
    free(e);
    return cli_call(c, method, path, body, resp);
}

/* "1h2m3s" (the API's durations: seconds); "-" for null. */
static const char *dur(json_t *v, char *buf, size_t len)
{
    if (!json_is_integer(v))
        return "-";
    long long s = json_integer_value(v), neg = s < 0;
    if (neg)
        s = -s;
    static const struct {
        long long secs;
        char unit;
    } u[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    size_t off = 0;
    buf[0] = '\0';
    if (neg)
        off += (size_t)snprintf(buf, len, "-");
    for (size_t i = 0; i < 4 && off < len; i++)
        if (s >= u[i].secs || (s == 0 && u[i].secs == 1)) {
            off += (size_t)snprintf(buf + off, len - off, "%lld%c", s / u[i].secs, u[i].unit);
            s %= u[i].secs;
        }
    return buf;
}

/* UTC time of a unix time; "-" for null. */
static const char *when(json_t *v, char *buf, size_t len)
{
    if (!json_is_integer(v))
        return "-";
    time_t t = (time_t)json_integer_value(v);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static int repl_create(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {
        CLI_COMMON_LONGOPTS,
        {"source", required_argument, NULL, 'S'},
        {"target", required_argument, NULL, 'T'},
        {"target-cmd", required_argument, NULL, 'C'},
        {"remote", required_argument, NULL, 'R'},
        {"every", required_argument, NULL, 'E'},
        {"keep", required_argument, NULL, 'K'},
        {"keep-target", required_argument, NULL, 'k'},
        {"prefix", required_argument, NULL, 'P'},
        {"raw", no_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    static const char *const keys[] = {
        ['S'] = "source", ['T'] = "target", ['C'] = "target_cmd", ['E'] = "every",
        ['K'] = "keep", ['k'] = "keep_target", ['P'] = "prefix", ['R'] = "remote",
    };
    _cleanup_json_ json_t *body = json_object();
    GETOPT_LOOP("w", lo,
        case 'S': case 'T': case 'C': case 'E': case 'K': case 'k': case 'P': case 'R':
            json_object_set_new(body, keys[opt_], json_string(optarg));
            break;
        case 'w':
            json_object_set_new(body, "raw", json_true());
            break;)
    if (argc - optind != 1)
        return cli_usage_error("replicate", "replicate create needs exactly one NAME");
    static const char *const need[][2] = {
        {"source", "--source POOL/VOL"}, {"every", "--every DURATION"}, {"keep", "--keep GRID"}};
    for (size_t i = 0; i < ARRAY_SIZE(need); i++)
        if (!get(body, need[i][0]))
            return cli_usage_error("replicate", "replicate create needs %s", need[i][1]);
    if (!get(body, "target") == !get(body, "target_cmd"))
        return cli_usage_error("replicate", "replicate create needs one of --target POOL/VOL "
                               "and --target-cmd CMD");
    json_object_set_new(body, "name", json_string(argv[optind]));
    json_t *resp = NULL;
    int rc = cli_call(c, "POST", "/replications", body, &resp);
    /* an encrypted source sent as plaintext to another host: say so */
    const char *warn = rc == EXIT_OK ? json_string_value(get(resp, "warning")) : NULL;
    if (warn)
        fprintf(stderr, "berth: warning: %s\n", warn);
    return finish(c, rc, resp, "replication %s created\n", argv[optind]);
}

static const char *target_of(json_t *j, char *buf, size_t len)
{
    const char *t = json_string_value(get(j, "target"));
    if (t)
        return t;
    snprintf(buf, len, "cmd: %s", sget(j, "target_cmd", "?"));
    if (strlen(buf) > 40)
        strcpy(buf + 37, "...");
    return buf;
}

static int repl_list(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 0)
        return cli_usage_error("replicate", "replicate list takes no arguments");
    json_t *resp = NULL;
    int rc = cli_call(c, "GET", "/replications", NULL, &resp);
    if (rc != EXIT_OK || c->json)
        return finish(c, rc, resp, NULL, NULL);
    static const char *const hdr[] = {"NAME", "SOURCE", "TARGET", "EVERY", "STATE",
                                      "LAST-SUCCESS", "LAG"};
    json_t *arr = get(resp, "replications");
    if (json_array_size(arr) == 0) {
        if (!c->no_header)
            printf("no replications\n");
        json_decref(resp);
        return EXIT_OK;
    }
    struct table *t = table_new(c, 7, hdr);
    size_t i;
    json_t *j;
    json_array_foreach(arr, i, j) {
        char tb[64], wb[32], lb[32];
        const char *row[] = {sget(j, "name", "?"), sget(j, "source", "?"),
                             target_of(j, tb, sizeof(tb)), sget(j, "every", "?"),
                             sget(j, "state", "?"), when(get(j, "last_success"), wb, sizeof(wb)),
                             dur(get(j, "lag"), lb, sizeof(lb))};
        table_row(t, row);
    }
    table_print(t);
    json_decref(resp);
    return EXIT_OK;
}

static void print_status(struct cli *c, json_t *j)
{
    char a[64], b[64], d[32];
    const char *cmd = json_string_value(get(j, "target_cmd"));
    printf("name:           %s\n", sget(j, "name", "?"));
    printf("source:         %s\n", sget(j, "source", "?"));
    if (cmd)
        printf("target command: %s\n", cmd);
    else
        printf("target:         %s\n", sget(j, "target", "?"));
    printf("every:          %s\n", sget(j, "every", "?"));
    printf("keep:           %s\n", sget(j, "keep", "?"));
    printf("keep target:    %s%s\n", sget(j, "keep_target", "?"),
           cmd ? " (not applied: a target command cannot be pruned)" : "");
    printf("prefix:         %s\n", sget(j, "prefix", "?"));
    printf("raw:            %s\n", json_is_true(get(j, "raw"))
                                       ? "yes (ciphertext: the target never needs the key)"
                                       : "no");
    printf("state:          %s\n", sget(j, "state", "?"));
    printf("last success:   %s\n", when(get(j, "last_success"), a, sizeof(a)));
    printf("lag:            %s\n", dur(get(j, "lag"), d, sizeof(d)));
    printf("newest target:  %s\n", sget(j, "newest_target_snapshot", "-"));
    printf("bytes sent:     %s last cycle, %s in total\n",
           out_size(c, get(j, "bytes_sent_last"), a, sizeof(a)),
           out_size(c, get(j, "bytes_sent_total"), b, sizeof(b)));
    printf("runs:           %s (%s failed in a row)\n", out_u64(get(j, "runs"), a, sizeof(a)),
           out_u64(get(j, "failures"), b, sizeof(b)));
    const char *e = json_string_value(get(j, "last_error"));
    printf("last error:     %s%s%s\n", e ? when(get(j, "last_error_time"), a, sizeof(a)) : "-",
           e ? " " : "", e ? e : "");
    const char *pe = json_string_value(get(j, "prune_error"));
    if (pe)
        printf("prune error:    %s\n", pe);
    printf("pruned:         %s snapshots\n", out_u64(get(j, "snapshots_pruned"), a, sizeof(a)));
    printf("next run:       %s\n", json_is_integer(get(j, "next_run"))
                                       ? when(get(j, "next_run"), a, sizeof(a))
                                       : "now (running)");
}

static int repl_status(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 1)
        return cli_usage_error("replicate", "replicate status needs exactly one NAME");
    json_t *resp = NULL;
    int rc = job_call(c, "GET", argv[optind], "", NULL, &resp);
    if (rc == EXIT_OK && !c->json)
        print_status(c, resp);
    return finish(c, rc, resp, NULL, NULL);
}

static int repl_run(struct cli *c, int argc, char **argv)
{
    static const struct option lo[] = {CLI_COMMON_LONGOPTS,
                                       {"no-wait", no_argument, NULL, 'N'},
                                       {NULL, 0, NULL, 0}};
    bool wait = true;
    GETOPT_LOOP("", lo, case 'N': wait = false; break;)
    if (argc - optind != 1)
        return cli_usage_error("replicate", "replicate run needs exactly one NAME");
    json_t *body = json_pack("{s:b}", "wait", wait), *resp = NULL;
    int rc = job_call(c, "POST", argv[optind], "/run", body, &resp);
    json_decref(body);
    if (rc == EXIT_OK && !c->json) {
        char b[32];
        if (wait)
            printf("replication %s: cycle done, %s sent, newest on target %s\n", argv[optind],
                   out_size(c, get(resp, "bytes_sent_last"), b, sizeof(b)),
                   sget(resp, "newest_target_snapshot", "-"));
        else
            printf("replication %s: cycle queued\n", argv[optind]);
    }
    return finish(c, rc, resp, NULL, NULL);
}

static int repl_destroy(struct cli *c, int argc, char **argv)
{
    GETOPT_LOOP("", common_lo, )
    if (argc - optind != 1)
        return cli_usage_error("replicate", "replicate destroy needs exactly one NAME");
    json_t *resp = NULL;
    int rc = job_call(c, "DELETE", argv[optind], "", NULL, &resp);
    return finish(c, rc, resp, "replication %s destroyed (its snapshots are kept)\n",
                  argv[optind]);
}

int cmd_repl(struct cli *c, int argc, char **argv)
{
    static const struct cli_cmd cmds[] = {
        {"create", repl_create}, {"list", repl_list},       {"run", repl_run},
        {"status", repl_status}, {"destroy", repl_destroy},
    };
    return cli_dispatch(c, "replicate", help_repl, cmds, ARRAY_SIZE(cmds), argc, argv);
}
