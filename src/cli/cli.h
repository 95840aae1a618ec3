/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth, the command-line client: shared declarations.  main.c parses the
 * global options and picks the command group (pool.c, vol.c, vm.c with
 * console.c, net.c); client.c talks
 * HTTP to berthd; output.c prints tables and sizes.
 *
 * Exit codes: 0 success, 1 operational error (the API said no), 2 usage error
 * (unknown command/option, missing argument), 3 berthd unreachable.  Every
 * function returning an int here returns such an exit code. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cleanup.h"

static inline void cleanup_jsonp(json_t **j)
{
    json_decref(*j);
}
#define _cleanup_json_ __attribute__((cleanup(cleanup_jsonp)))

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct cli {
    const char *socket;
    bool json;      /* print the API's JSON */
    bool parsable;  /* -p: exact numbers */
    bool no_header; /* -H: no table header, tab-separated */
};

/* client.c: one request.  `path` is below /api/v1 (already escaped); body may
 * be NULL (not consumed).  On success returns 0 and *resp (new reference).
 * On failure prints "berth: <message>" and returns 1 or 3. */
int cli_call(struct cli *c, const char *method, const char *path, json_t *body, json_t **resp);
/* A request whose body or answer is a stream (send, recv): the request body
 * is read from `in` to its end (NULL: none); a 2xx answer is copied to `out`
 * (NULL: a JSON answer, returned in *resp).  Errors as cli_call, plus 1 if
 * the stream broke off or `in`/`out` failed. */
int cli_stream(struct cli *c, const char *method, const char *path, FILE *in, FILE *out,
               json_t **resp);
/* Append "?key=value" (or "&key=value" after the first) to path, the value
 * URL-escaped. */
void cli_query_add(char *path, size_t len, const char *key, const char *value);
/* URL-escape one path segment into a malloc'd string (NULL on ENOMEM). */
char *cli_escape(const char *s);

/* output.c */
void out_json(json_t *j);                    /* pretty JSON on stdout */
const char *out_size(struct cli *c, json_t *v, char *buf, size_t len); /* "16K" / "16384" */
const char *out_ratio(struct cli *c, json_t *v, char *buf, size_t len); /* "1.50x" */
const char *out_u64(json_t *v, char *buf, size_t len);
struct table;
struct table *table_new(struct cli *c, int ncols, const char *const *header);
void table_row(struct table *t, const char *const *cells);
void table_print(struct table *t); /* prints and frees */
/* table_print, or if no row was added, `empty` ("no volumes"; nothing with -H) */
void table_print_or(struct table *t, const char *empty);
void table_free(struct table *t);

/* usage errors: print "berth: <msg>" + a hint, return EXIT_USAGE */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One subcommand of a command group ("berth vol create ..."). */
struct cli_cmd {
    const char *name;
    int (*fn)(struct cli *c, int argc, char **argv); /* argv[0] is the subcommand */
};
/* Run the subcommand named by argv[0] among cmds; handles a missing one,
 * --help/-h/help and unknown names the same way for every group. */
int cli_dispatch(struct cli *c, const char *group, void (*help)(FILE *f),
                 const struct cli_cmd *cmds, size_t ncmds, int argc, char **argv);
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The end of a command with a JSON answer: on success print it (--json) or
 * the line fmt (may be NULL); frees resp; returns rc. */
int cli_done(struct cli *c, int rc, json_t *resp, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parse the common options of a subcommand in the getopt loop: returns true
 * if `opt` was one of them (-p, -H, --json). */
bool cli_common_opt(struct cli *c, int opt);
#define CLI_COMMON_LONGOPTS {"json", no_argument, NULL, 'J'}, {"help", no_argument, NULL, 'h'}

/* The option loop every command group uses: common options (-h, --json ...)
 * first, then the cases given; `help` prints the group's usage and `group`
 * names it in errors.  Expects `c`, `argc` and `argv` in scope. */
#define CLI_GETOPT_LOOP(group, help, shortopts, longopts, ...)                                     \
    optind = 0;                                                                                  \
    opterr = 0;                                                                                  \
    for (int opt_; (opt_ = getopt_long(argc, argv, ":" CLI_COMMON_SHORTOPTS shortopts,           \
                                       longopts, NULL)) != -1;) {                                \
        if (opt_ == 'h') {                                                                       \
            help(stdout);                                                                        \
            return EXIT_OK;                                                                      \
        }                                                                                        \
        if (cli_common_opt(c, opt_))                                                             \
            continue;                                                                            \
        switch (opt_) {                                                                          \
            __VA_ARGS__                                                                          \
        default: return cli_getopt_error(group, opt_, argv);                                     \
        }                                                                                        \
    }
#define CLI_COMMON_SHORTOPTS "pHh"
/* Report a getopt error ('?' or ':') for command `cmd`. */
int cli_getopt_error(const char *cmd, int opt, char **argv);

/* props.c: `get PROP[,PROP...]|all NAME` over an API object.  A property is
 * shown under `name` (also accepted: `key`, the JSON field) formatted as fmt. */
enum cli_pfmt { P_SIZE, P_STR, P_NUM, P_RATIO, P_ONOFF, P_TIME, P_LIST };
struct cli_prop {
    const char *name, *key;
    enum cli_pfmt fmt;
};
/* One value as text (sizes and times follow -p); may return buf or a literal. */
const char *cli_prop_value(struct cli *c, json_t *v, enum cli_pfmt fmt, char *buf, size_t len);
/* Mark in want[] the properties named in `list` ("all" for every one); a
 * usage error of `group` naming an unknown one. */
int cli_props_select(const char *group, const char *what, const struct cli_prop *props,
                     size_t n, const char *list, bool *want);
/* GET path (an object with "full_name") and print its wanted properties as
 * NAME PROPERTY VALUE rows (--json: the object). */
int cli_props_get(struct cli *c, const char *path, const struct cli_prop *props, size_t n,
                  const bool *want);

/* Split "POOL/VOL" into escaped segments; usage error if malformed. */
int cli_split_vol(const char *cmd, const char *arg, char **pool, char **vol);
/* "/pools/P/volumes/V" + suffix from "P/V" (usage error of cmd if malformed). */
int cli_vol_path(const char *cmd, const char *arg, const char *suffix, char *out, size_t len);

/* "/vms/{vmid}" + suffix into out, after checking that `vmid` is a decimal
 * VMID (usage error naming it otherwise). */
int cli_vm_path(const char *vmid, const char *suffix, char *out, size_t len);

/* snap.c: "POOL/VOL@NAME" into the raw POOL and "VOL@NAME" (malloc'd), and
 * into the API path "/pools/P/snapshots/VOL@NAME" + suffix; usage errors of
 * `cmd` if malformed. */
int cli_split_snap(const char *cmd, const char *arg, char **pool, char **snap);
int cli_snap_path(const char *cmd, const char *arg, const char *suffix, char *out, size_t len);

int cmd_pool(struct cli *c, int argc, char **argv);
int cmd_vol(struct cli *c, int argc, char **argv);
int cmd_vm(struct cli *c, int argc, char **argv);
int cmd_net(struct cli *c, int argc, char **argv);
int cmd_repl(struct cli *c, int argc, char **argv); /* repl.c: berth replicate */
/* console.c: `vm console` and `vm agent` (argv[0] is the verb) */
int vm_console(struct cli *c, int argc, char **argv);
int vm_agent(struct cli *c, int argc, char **argv);
/* vm_snap.c: `vm snapshot [list|destroy]`, `vm rollback`, `vm clone` */
int vm_snapshot(struct cli *c, int argc, char **argv);
int vm_rollback(struct cli *c, int argc, char **argv);
int vm_clone(struct cli *c, int argc, char **argv);
/* vm.c: print the "warning"/"warnings" of an API answer on stderr */
void vm_print_warnings(json_t *resp);
/* snapshots (snap.c), rollback/clone/promote (clone.c), send/recv (send.c) */
int cmd_snapshot(struct cli *c, int argc, char **argv);
int cmd_rollback(struct cli *c, int argc, char **argv);
int cmd_clone(struct cli *c, int argc, char **argv);
int cmd_promote(struct cli *c, int argc, char **argv);
int cmd_send(struct cli *c, int argc, char **argv);
int cmd_recv(struct cli *c, int argc, char **argv);
void help_snapshot(FILE *f);
void help_clone(FILE *f);
void help_send(FILE *f);
void help_main(FILE *f);
void help_pool(FILE *f);
void help_vol(FILE *f);
void help_vm(FILE *f);
void help_net(FILE *f);
void help_repl(FILE *f);
/* key.c: berth key ...; key material for it and for `vol create`: from
 * `file`, the terminal (asked twice if `confirm`) or stdin; raw keys become
 * 64 hex digits.  *out is freed with cli_key_free (wipes it). */
int cmd_key(struct cli *c, int argc, char **argv);
void help_key(FILE *f);
int cli_read_key(const char *keyformat, const char *file, bool confirm, char **out);
void cli_key_free(char *key);

#endif
