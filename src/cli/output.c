/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Output helpers of berth: aligned tables (zfs-list style; -H gives
 * tab-separated rows without a header), human or exact (-p) sizes, and the
 * error/usage reporting shared by all commands. */
#include "cli.h"
#include "common/util.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void out_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
}

const char *out_u64(json_t *v, char *buf, size_t len)
{
    if (json_is_integer(v))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else
        snprintf(buf, len, "-");
    return buf;
}

const char *out_size(struct cli *c, json_t *v, char *buf, size_t len)
{
    if (!json_is_integer(v) || c->parsable)
        return out_u64(v, buf, len);
    return format_size((uint64_t)json_integer_value(v), buf, len);
}

const char *out_ratio(struct cli *c, json_t *v, char *buf, size_t len)
{
    if (!json_is_number(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, c->parsable ? "%.2f" : "%.2fx", json_number_value(v));
    return buf;
}

struct table {
    struct cli *c;
    int ncols;
    size_t nrows, cap;
    char **cells; /* nrows * ncols, row 0 = header */
};

struct table *table_new(struct cli *c, int ncols, const char *const *header)
{
    struct table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->c = c;
    t->ncols = ncols;
    table_row(t, header);
    return t;
}

void table_row(struct table *t, const char *const *cells)
{
    if (!t)
        return;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cells, cap * (size_t)t->ncols * sizeof(char *));
        if (!nc)
            return;
        t->cells = nc;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++)
        t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = strdup(cells[i] ? cells[i] : "-");
    t->nrows++;
}

void table_print(struct table *t)
{
    if (!t)
        return;
    size_t w[16] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (int i = 0; i < t->ncols && i < 16; i++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)i];
            size_t l = s ? strlen(s) : 0;
            if (l > w[i])
                w[i] = l;
        }
    for (size_t r = t->c->no_header ? 1 : 0; r < t->nrows; r++) {
        for (int i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)i];
            if (!s)
                s = "-";
            if (t->c->no_header)
                printf("%s%s", s, i + 1 < t->ncols ? "\t" : "\n");
            else if (i + 1 < t->ncols)
                printf("%-*s  ", (int)w[i], s);
            else
                printf("%s\n", s);
        }
    }
    table_free(t);
}

void table_print_or(struct table *t, const char *empty)
{
    if (t && t->nrows <= 1) {
        if (!t->c->no_header)
            printf("%s\n", empty);
        table_free(t);
        return;
    }
    table_print(t);
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t k = 0; k < t->nrows * (size_t)t->ncols; k++)
        free(t->cells[k]);
    free(t->cells);
    free(t);
}

int cli_done(struct cli *c, int rc, json_t *resp, const char *fmt, ...)
{
    if (rc == EXIT_OK && c->json) {
        out_json(resp);
    } else if (rc == EXIT_OK && fmt) {
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
    }
    json_decref(resp);
    return rc;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("berth: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("berth: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'berth %s --help' for more information.\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_dispatch(struct cli *c, const char *group, void (*help)(FILE *f),
                 const struct cli_cmd *cmds, size_t ncmds, int argc, char **argv)
{
    if (argc < 1) {
        help(stderr);
        return EXIT_USAGE;
    }
    const char *v = argv[0];
    if (strcmp(v, "--help") == 0 || strcmp(v, "-h") == 0 || strcmp(v, "help") == 0) {
        help(stdout);
        return EXIT_OK;
    }
    for (size_t i = 0; i < ncmds; i++)
        if (strcmp(v, cmds[i].name) == 0)
            return cmds[i].fn(c, argc, argv);
    return cli_usage_error(group, "unknown %s command '%s'", group, v);
}

bool cli_common_opt(struct cli *c, int opt)
{
    switch (opt) {
    case 'p': c->parsable = true; return true;
    case 'H': c->no_header = true; return true;
    case 'J': c->json = true; return true;
    default: return false;
    }
}

int cli_getopt_error(const char *cmd, int opt, char **argv)
{
    const char *arg = argv[optind - 1];
    if (opt == ':')
        return cli_usage_error(cmd, "option '%s' needs an argument", arg);
    if (optopt && arg[0] == '-' && arg[1] != '-')
        return cli_usage_error(cmd, "unknown option '-%c'", optopt);
    return cli_usage_error(cmd, "unknown option '%s'", arg);
}

int cli_split_vol(const char *cmd, const char *arg, char **pool, char **vol)
{
    *pool = *vol = NULL;
    const char *slash = strchr(arg, '/');
    if (!slash || slash == arg || !slash[1] || strchr(slash + 1, '/'))
        return cli_usage_error(cmd, "'%s' is not a volume: expected POOL/VOLUME", arg);
    char *p = strndup(arg, (size_t)(slash - arg));
    *pool = p ? cli_escape(p) : NULL;
    *vol = cli_escape(slash + 1);
    free(p);
    if (!*pool || !*vol) {
        free(*pool);
        free(*vol);
        return cli_fail("out of memory");
    }
    return EXIT_OK;
}

int cli_vol_path(const char *cmd, const char *arg, const char *suffix, char *out, size_t len)
{
    char *p, *v;
    int rc = cli_split_vol(cmd, arg, &p, &v);
    if (rc != EXIT_OK)
        return rc;
    snprintf(out, len, "/pools/%s/volumes/%s%s", p, v, suffix);
    free(p);
    free(v);
    return EXIT_OK;
}
