/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `get PROP[,PROP...]|all NAME` for any object of the API (volumes,
 * snapshots): picking properties by name and printing them zfs-get style as
 * NAME PROPERTY VALUE rows. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *cli_prop_value(struct cli *c, json_t *v, enum cli_pfmt fmt, char *buf, size_t len)
{
    switch (fmt) {
    case P_SIZE: return out_size(c, v, buf, len);
    case P_RATIO: return out_ratio(c, v, buf, len);
    case P_ONOFF: return json_is_true(v) ? "on" : "off";
    case P_TIME: {
        time_t t = json_is_integer(v) ? (time_t)json_integer_value(v) : 0;
        struct tm tm;
        if (c->parsable || !json_is_integer(v) || !localtime_r(&t, &tm) ||
            !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
            return out_u64(v, buf, len);
        return buf;
    }
    case P_LIST: {
        size_t i, l = 0;
        json_t *e;
        buf[0] = '\0';
        json_array_foreach(v, i, e)
            l += (size_t)snprintf(buf + l, l < len ? len - l : 0, "%s%s", i ? "," : "",
                                  json_string_value(e) ? json_string_value(e) : "?");
        return buf[0] ? buf : "-";
    }
    case P_NUM:
    case P_STR: break;
    }
    return out_u64(v, buf, len);
}

int cli_props_select(const char *group, const char *what, const struct cli_prop *props,
                     size_t n, const char *list, bool *want)
{
    _cleanup_free_ char *copy = strdup(list);
    if (!copy)
        return cli_fail("out of memory");
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        bool found = strcmp(tok, "all") == 0;
        for (size_t i = 0; i < n; i++) {
            if (found && strcmp(tok, "all") == 0)
                want[i] = true;
            else if (strcmp(props[i].name, tok) == 0 || strcmp(props[i].key, tok) == 0)
                want[i] = found = true;
        }
        if (!found)
            return cli_usage_error(group, "unknown %s property '%s'", what, tok);
    }
    return EXIT_OK;
}

/* NAME PROPERTY VALUE rows of the wanted properties of obj. */
static void props_print(struct cli *c, json_t *obj, const char *name,
                        const struct cli_prop *props, size_t n, const bool *want)
{
    static const char *const hdr[] = {"NAME", "PROPERTY", "VALUE"};
    struct table *t = table_new(c, 3, hdr);
    for (size_t i = 0; i < n; i++) {
        if (!want[i])
            continue;
        char b[4200];
        const char *row[] = {name, props[i].name,
                             cli_prop_value(c, json_object_get(obj, props[i].key), props[i].fmt,
                                            b, sizeof(b))};
        table_row(t, row);
    }
    table_print(t);
}

int cli_props_get(struct cli *c, const char *path, const struct cli_prop *props, size_t n,
                  const bool *want)
{
    json_t *resp = NULL;
    int rc = cli_call(c, "GET", path, NULL, &resp);
    if (rc == EXIT_OK && !c->json)
        props_print(c, resp, json_string_value(json_object_get(resp, "full_name")), props, n,
                    want);
    return cli_done(c, rc, resp, NULL);
}
