/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Validation of request bodies and query strings against the schemas in
 * schema.c.  Everything here treats its input as hostile: any JSON value of
 * any shape must give either a normalised object or a 400 message that names
 * the offending field.  No engine calls happen here. */
#include "api/schema.h"
#include "common/util.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* A JSON string may contain NUL bytes; none of ours may. */
static int check_string(const char *field, json_t *v, size_t max, struct berr *err)
{
    if (!json_is_string(v))
        return berr_set(err, EINVAL, "field '%s': expected a string, got %s", field,
                        type_name(v));
    size_t len = json_string_length(v);
    if (len == 0)
        return berr_set(err, EINVAL, "field '%s': must not be empty", field);
    if (strlen(json_string_value(v)) != len)
        return berr_set(err, EINVAL, "field '%s': contains a NUL character", field);
    if (len > max)
        return berr_set(err, EINVAL, "field '%s': longer than %zu characters", field, max);
    return 0;
}

static int check_path(const char *field, json_t *v, struct berr *err)
{
    int r = check_string(field, v, PATH_MAX - 1, err);
    if (r < 0)
        return r;
    const char *s = json_string_value(v);
    if (s[0] != '/')
        return berr_set(err, EINVAL, "field '%s': path '%.200s' must be absolute", field, s);
    return 0;
}

int api_validate_snapname(const char *s, bool vol_optional, struct berr *err)
{
    const char *at = strchr(s, '@');
    if (!at && !vol_optional)
        return berr_set(err, EINVAL, "'%.140s' is not a snapshot name (expected VOLUME@SNAPSHOT)",
                        s);
    if (at && strchr(at + 1, '@'))
        return berr_set(err, EINVAL, "snapshot name '%.140s' has more than one '@'", s);
    if (at && (at > s || !vol_optional)) {
        char vol[80];
        size_t n = (size_t)(at - s);
        if (n >= sizeof(vol))
            return berr_set(err, ENAMETOOLONG, "volume name in '%.100s...' is longer than 63 "
                            "characters", s);
        memcpy(vol, s, n);
        vol[n] = '\0';
        int r = validate_name(vol, "volume", err);
        if (r < 0)
            return r;
    }
    return validate_name(at ? at + 1 : s, "snapshot", err);
}

/* Size: integer >= 0 or a size string; returns the byte count. */
static int get_size(const char *field, json_t *v, uint64_t *out, struct berr *err)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return berr_set(err, EINVAL, "field '%s': size must not be negative", field);
        *out = (uint64_t)i;
        return 0;
    }
    if (json_is_string(v)) {
        int r = check_string(field, v, 64, err);
        if (r < 0)
            return r;
        r = parse_size(json_string_value(v), out, err);
        if (r < 0)
            return berr_wrap(err, "field '%s'", field);
        if (*out > INT64_MAX)
            return berr_set(err, ERANGE, "field '%s': size '%s' is too large", field,
                            json_string_value(v));
        return 0;
    }
    return berr_set(err, EINVAL,
                    "field '%s': expected a size (integer bytes or a string like \"4G\"), got %s",
                    field, type_name(v));
}

/* Normalise one property value to the string the engine takes. */
static int prop_value(const char *field, const struct api_prop *p, json_t *v, json_t **out,
                      struct berr *err)
{
    char buf[32];
    uint64_t sz;
    switch (p->kind) {
    case PK_READONLY:
        return berr_set(err, EINVAL, "property '%s' is read-only", p->name);
    case PK_STR:
        if (check_string(field, v, 64, err) < 0)
            return -EINVAL;
        *out = json_string(json_string_value(v));
        break;
    case PK_ONOFF:
        if (json_is_boolean(v)) {
            *out = json_string(json_is_true(v) ? "on" : "off");
        } else if (json_is_string(v) && (strcmp(json_string_value(v), "on") == 0 ||
                                         strcmp(json_string_value(v), "off") == 0)) {
            *out = json_string(json_string_value(v));
        } else {
            return berr_set(err, EINVAL, "field '%s': expected true/false or \"on\"/\"off\"",
                            field);
        }
        break;
    case PK_SIZE_NONE:
        if (json_is_null(v) || (json_is_string(v) && strcmp(json_string_value(v), "none") == 0)) {
            *out = json_string("none");
            break;
        }
        /* fall through */
    case PK_SIZE:
        if (get_size(field, v, &sz, err) < 0)
            return -EINVAL;
        snprintf(buf, sizeof(buf), "%" PRIu64, sz);
        *out = json_string(buf);
        break;
    }
    return *out ? 0 : berr_set(err, ENOMEM, "out of memory");
}

static int check_props(const char *field, const struct api_prop *props, json_t *v,
                       json_t **norm, struct berr *err)
{
    if (!json_is_object(v))
        return berr_set(err, EINVAL, "field '%s': expected an object, got %s", field,
                        type_name(v));
    json_t *out = json_object();
    if (!out)
        return berr_set(err, ENOMEM, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        const struct api_prop *p = props;
        while (p->name && strcmp(p->name, key) != 0)
            p++;
        if (!p->name) {
            json_decref(out);
            return berr_set(err, EINVAL, "field '%s': unknown property '%.64s'", field, key);
        }
        char sub[128];
        snprintf(sub, sizeof(sub), "%s.%s", field, key);
        json_t *s = NULL;
        if (prop_value(sub, p, val, &s, err) < 0) {
            json_decref(out);
            return -err->code;
        }
        json_object_set_new(out, key, s);
    }
    *norm = out;
    return 0;
}

/* Check one field; *norm receives a replacement value or stays NULL. */
static int check_field(const struct api_field *f, json_t *v, json_t **norm, struct berr *err)
{
    *norm = NULL;
    uint64_t sz;
    switch (f->type) {
    case FT_STR:
        return check_string(f->name, v, f->max ? (size_t)f->max : 255, err);
    case FT_NAME: {
        int r = check_string(f->name, v, 255, err);
        if (r < 0)
            return r;
        r = validate_name(json_string_value(v), f->what, err);
        return r < 0 ? berr_wrap(err, "field '%s'", f->name) : 0;
    }
    case FT_PATH:
        return check_path(f->name, v, err);
    case FT_PATHS: {
        if (!json_is_array(v))
            return berr_set(err, EINVAL, "field '%s': expected an array of paths, got %s",
                            f->name, type_name(v));
        size_t n = json_array_size(v);
        if ((int64_t)n < f->min || (int64_t)n > f->max)
            return berr_set(err, EINVAL, "field '%s': expected %" PRId64 "..%" PRId64
                            " paths, got %zu", f->name, f->min, f->max, n);
        char sub[64];
        for (size_t i = 0; i < n; i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", f->name, i);
            int r = check_path(sub, json_array_get(v, i), err);
            if (r < 0)
                return r;
        }
        return 0;
    }
    case FT_BOOL:
        if (!json_is_boolean(v))
            return berr_set(err, EINVAL, "field '%s': expected true or false, got %s", f->name,
                            type_name(v));
        return 0;
    case FT_INT:
        if (!json_is_integer(v))
            return berr_set(err, EINVAL, "field '%s': expected an integer, got %s", f->name,
                            type_name(v));
        if (json_integer_value(v) < f->min || json_integer_value(v) > f->max)
            return berr_set(err, ERANGE, "field '%s': %" JSON_INTEGER_FORMAT
                            " is out of range %" PRId64 "..%" PRId64, f->name,
                            json_integer_value(v), f->min, f->max);
        return 0;
    case FT_SIZE:
        if (get_size(f->name, v, &sz, err) < 0)
            return -err->code;
        *norm = json_integer((json_int_t)sz);
        return *norm ? 0 : berr_set(err, ENOMEM, "out of memory");
    case FT_PROPS:
        return check_props(f->name, f->props, v, norm, err);
    case FT_STR_NULL:
        if (json_is_null(v))
            return 0;
        return check_string(f->name, v, f->max ? (size_t)f->max : 255, err);
    case FT_STRMAP: {
        if (!json_is_object(v))
            return berr_set(err, EINVAL, "field '%s': expected an object of strings, got %s",
                            f->name, type_name(v));
        if (f->max && json_object_size(v) > (size_t)f->max)
            return berr_set(err, EINVAL, "field '%s': more than %" PRId64 " keys", f->name,
                            f->max);
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            char sub[128];
            snprintf(sub, sizeof(sub), "%s.%.64s", f->name, k);
            if (!*k || strlen(k) > 64)
                return berr_set(err, EINVAL, "field '%s': bad key '%.64s'", f->name, k);
            if (!json_is_string(e))
                return berr_set(err, EINVAL, "field '%s': expected a string, got %s", sub,
                                type_name(e));
            if (strlen(json_string_value(e)) != json_string_length(e))
                return berr_set(err, EINVAL, "field '%s': contains a NUL character", sub);
            if (json_string_length(e) > 8192)
                return berr_set(err, EINVAL, "field '%s': longer than 8192 characters", sub);
        }
        return 0;
    }
    case FT_STRS: {
        if (!json_is_array(v))
            return berr_set(err, EINVAL, "field '%s': expected an array of strings, got %s",
                            f->name, type_name(v));
        size_t n = json_array_size(v);
        if ((int64_t)n < f->min || (int64_t)n > f->max)
            return berr_set(err, EINVAL, "field '%s': expected %" PRId64 "..%" PRId64
                            " strings, got %zu", f->name, f->min, f->max, n);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_string(e))
                return berr_set(err, EINVAL, "field '%s[%zu]': expected a string, got %s",
                                f->name, i, type_name(e));
            if (strlen(json_string_value(e)) != json_string_length(e))
                return berr_set(err, EINVAL, "field '%s[%zu]': contains a NUL character",
                                f->name, i);
        }
        return 0;
    }
    case FT_SNAP: {
        int r = check_string(f->name, v, 255, err);
        if (r < 0)
            return r;
        r = api_validate_snapname(json_string_value(v), f->min == 1, err);
        return r < 0 ? berr_wrap(err, "field '%s'", f->name) : 0;
    }
    case FT_SNAPS: {
        if (!json_is_array(v))
            return berr_set(err, EINVAL, "field '%s': expected an array of snapshot names, "
                            "got %s", f->name, type_name(v));
        size_t n = json_array_size(v);
        if ((int64_t)n < f->min || (int64_t)n > f->max)
            return berr_set(err, EINVAL, "field '%s': expected %" PRId64 "..%" PRId64
                            " snapshot names, got %zu", f->name, f->min, f->max, n);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            char sub[64];
            snprintf(sub, sizeof(sub), "%s[%zu]", f->name, i);
            int r = check_string(sub, e, 255, err);
            if (r < 0)
                return r;
            if (api_validate_snapname(json_string_value(e), false, err) < 0)
                return berr_wrap(err, "field '%s'", sub);
        }
        return 0;
    }
    case FT_BLOCKSIZE: {
        if (get_size(f->name, v, &sz, err) < 0)
            return -err->code;
        if (sz < (uint64_t)f->min || sz > (uint64_t)f->max || (sz & (sz - 1)) != 0) {
            char shown[80];
            if (json_is_string(v))
                snprintf(shown, sizeof(shown), "%s", json_string_value(v));
            else
                snprintf(shown, sizeof(shown), "%" PRIu64, sz);
            return berr_set(err, EINVAL, "field '%s': %s is invalid: use a power of two from "
                            "%" PRId64 "K to %" PRId64 "K", f->name, shown, f->min >> 10,
                            f->max >> 10);
        }
        *norm = json_integer((json_int_t)sz);
        return *norm ? 0 : berr_set(err, ENOMEM, "out of memory");
    }
    }
    return berr_set(err, EINVAL, "field '%s': bad schema", f->name);
}

static int check_object(const struct api_field *spec, json_t *obj, const char *kind,
                        struct berr *err)
{
    static const struct api_field none[] = {{NULL, 0, false, NULL, 0, 0, NULL}};
    if (!spec)
        spec = none;
    const char *key;
    json_t *val;
    void *tmp;
    json_object_foreach_safe(obj, tmp, key, val) {
        const struct api_field *f = spec;
        while (f->name && strcmp(f->name, key) != 0)
            f++;
        if (!f->name) {
            if (spec == none)
                return berr_set(err, EINVAL, "unknown %s '%.64s' (this endpoint takes none)",
                                kind, key);
            return berr_set(err, EINVAL, "unknown %s '%.64s'", kind, key);
        }
        json_t *norm = NULL;
        int r = check_field(f, val, &norm, err);
        if (r < 0)
            return r;
        if (f->type == FT_STR_NULL && json_is_null(val)) {
            json_object_del(obj, key);
            continue;
        }
        if (norm && json_object_set_new(obj, key, norm) < 0)
            return berr_set(err, ENOMEM, "out of memory");
    }
    for (const struct api_field *f = spec; f->name; f++)
        if (f->required && !json_object_get(obj, f->name))
            return berr_set(err, EINVAL, "missing required %s '%s'", kind, f->name);
    return 0;
}

int api_validate_body(const struct api_route *r, const char *body, size_t len, json_t **out,
                      struct berr *err)
{
    *out = NULL;
    if (len > API_BODY_MAX)
        return berr_set(err, EFBIG, "request body of %zu bytes is larger than the limit of %d",
                        len, API_BODY_MAX);
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    json_t *obj;
    if (i == len) {
        obj = json_object();
        if (!obj)
            return berr_set(err, ENOMEM, "out of memory");
    } else {
        json_error_t je;
        obj = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        if (!obj)
            return berr_set(err, EINVAL, "invalid JSON at line %d column %d: %s", je.line,
                            je.column, je.text);
        if (!json_is_object(obj)) {
            berr_set(err, EINVAL, "the request body must be a JSON object, got %s",
                     type_name(obj));
            json_decref(obj);
            return -EINVAL;
        }
    }
    int rc = check_object(r->body, obj, "field", err);
    if (rc < 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

static int query_bool(const char *key, const char *s, bool *b, struct berr *err)
{
    static const char *const yes[] = {"", "1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *b = true, 0;
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (strcasecmp(s, no[i]) == 0)
            return *b = false, 0;
    return berr_set(err, EINVAL, "query parameter '%s': expected true or false, got '%.64s'",
                    key, s);
}

int api_validate_query(const struct api_route *r, json_t *query, json_t **out, struct berr *err)
{
    *out = NULL;
    json_t *typed = json_object();
    if (!typed)
        return berr_set(err, ENOMEM, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(query, key, val) {
        const struct api_field *f = r->query;
        while (f && f->name && strcmp(f->name, key) != 0)
            f++;
        if (!f || !f->name) {
            json_decref(typed);
            return berr_set(err, EINVAL, "unknown query parameter '%.64s'", key);
        }
        const char *s = json_is_string(val) ? json_string_value(val) : "";
        json_t *v = NULL;
        int rc = 0;
        if (f->type == FT_BOOL) {
            bool b = false;
            rc = query_bool(key, s, &b, err);
            v = json_boolean(b);
        } else {
            /* strings are checked like body fields of the same type */
            v = json_string_nocheck(s);
            json_t *norm = NULL;
            if (!v)
                rc = berr_set(err, ENOMEM, "out of memory");
            else if (f->type == FT_PATH)
                rc = check_path(key, v, err);
            else
                rc = check_field(f, v, &norm, err);
            json_decref(norm);
        }
        if (rc < 0) {
            json_decref(v);
            json_decref(typed);
            if (strncmp(err->msg, "field ", 6) == 0) {
                char tmp[BERR_MSG_MAX];
                snprintf(tmp, sizeof(tmp), "query parameter %s", err->msg + 6);
                snprintf(err->msg, sizeof(err->msg), "%s", tmp);
            }
            return rc;
        }
        json_object_set_new(typed, key, v);
    }
    *out = typed;
    return 0;
}

const char *api_get_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool api_get_bool(json_t *o, const char *key, bool dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int64_t api_get_int(json_t *o, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}
