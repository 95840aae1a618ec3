/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for the API's body and query validation (src/api/validate.c):
 * good bodies are normalised, and every bad body (invalid JSON, not an
 * object, wrong type, missing field, unknown field, huge) is refused with
 * EINVAL/ERANGE/EFBIG and a message naming the field. */
#include "api/schema.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static const struct api_route *route(enum api_route_id id)
{
    for (size_t i = 0; i < api_nroutes; i++)
        if (api_routes[i].id == id)
            return &api_routes[i];
    return NULL;
}

/* Validate `body` for route `id`: returns the rc; *msg gets the message. */
static int check(enum api_route_id id, const char *body, json_t **out, char *msg)
{
    struct berr err = {0};
    json_t *o = NULL;
    int r = api_validate_body(route(id), body, strlen(body), &o, &err);
    if (msg)
        strcpy(msg, err.msg);
    if (out)
        *out = o;
    else
        json_decref(o);
    return r;
}

#define BAD(id, body, code, needle)                                                              \
    do {                                                                                         \
        char m_[BERR_MSG_MAX];                                                                   \
        int r_ = check(id, body, NULL, m_);                                                      \
        ok(r_ == -(code) && strstr(m_, needle), "%s -> %s", body, m_);                           \
    } while (0)

static void good_bodies(void)
{
    json_t *o;
    char msg[BERR_MSG_MAX];
    ok(check(R_POOL_CREATE, "{\"name\":\"tank\",\"vdevs\":[\"/tmp/t.img\"],\"size\":\"4G\","
             "\"ashift\":12,\"autotrim\":false,\"force\":true,\"compression\":\"zstd-3\","
             "\"checksum\":\"sha256\"}", &o, msg) == 0, "full pool create body: %s", msg);
    is_int(api_get_int(o, "size", 0), 4LL << 30, "size string normalised to bytes");
    ok(api_get_bool(o, "autotrim", true) == false, "autotrim false");
    json_decref(o);

    ok(check(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"/x\"],\"size\":1048576}", &o, msg) == 0,
       "integer size");
    is_int(api_get_int(o, "size", 0), 1048576, "integer size kept");
    json_decref(o);

    ok(check(R_VOL_CREATE, "{\"name\":\"disk0\",\"size\":\"10G\",\"volblocksize\":\"16K\","
             "\"thick\":true,\"properties\":{\"compression\":\"lz4\",\"readonly\":true,"
             "\"refreservation\":null}}", &o, msg) == 0, "vol create: %s", msg);
    json_t *p = json_object_get(o, "properties");
    ok(strcmp(api_get_str(p, "readonly"), "on") == 0, "readonly true -> on");
    ok(strcmp(api_get_str(p, "refreservation"), "none") == 0, "refreservation null -> none");
    is_int(api_get_int(o, "volblocksize", 0), 16384, "volblocksize 16K");
    json_decref(o);

    ok(check(R_VOL_PATCH, "{\"properties\":{\"volsize\":\"2G\",\"refreservation\":4096}}", &o,
             msg) == 0, "vol patch");
    p = json_object_get(o, "properties");
    ok(strcmp(api_get_str(p, "volsize"), "2147483648") == 0, "volsize -> decimal string");
    ok(strcmp(api_get_str(p, "refreservation"), "4096") == 0, "refreservation int -> string");
    json_decref(o);

    ok(check(R_POOL_TRIM, "", NULL, msg) == 0, "empty body where none is taken");
    ok(check(R_POOL_TRIM, " {} \n", NULL, msg) == 0, "{} where no body is taken");
    ok(check(R_POOL_EXPORT, "{\"force\":true}", NULL, msg) == 0, "export force");
    ok(check(R_POOL_PATCH, "{\"properties\":{\"autotrim\":\"off\"}}", NULL, msg) == 0,
       "pool patch");
    ok(check(R_POOL_IMPORT, "{\"name\":\"tank\",\"dir\":\"/srv\"}", NULL, msg) == 0,
       "import by name");
}

static void bad_bodies(void)
{
    BAD(R_POOL_CREATE, "{", EINVAL, "invalid JSON");
    BAD(R_POOL_CREATE, "[1,2]", EINVAL, "must be a JSON object");
    BAD(R_POOL_CREATE, "\"tank\"", EINVAL, "JSON object");
    BAD(R_POOL_CREATE, "{\"vdevs\":[\"/x\"]}", EINVAL, "missing required field 'name'");
    /* neither 'vdevs' nor 'spec': the handler refuses it (either is enough) */
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"spec\":[]}", EINVAL, "field 'spec'");
    BAD(R_POOL_ADD, "{\"force\":true}", EINVAL, "missing required field 'spec'");
    BAD(R_POOL_CREATE, "{\"name\":5,\"vdevs\":[\"/x\"]}", EINVAL, "field 'name': expected a string");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":\"/x\"}", EINVAL, "field 'vdevs': expected an array");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[]}", EINVAL, "field 'vdevs'");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"rel/path\"]}", EINVAL, "must be absolute");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[7]}", EINVAL, "field 'vdevs[0]'");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"/x\"],\"sise\":1}", EINVAL,
        "unknown field 'sise'");
    BAD(R_POOL_CREATE, "{\"name\":\"a/b\",\"vdevs\":[\"/x\"]}", EINVAL, "field 'name'");
    BAD(R_POOL_CREATE, "{\"name\":\"\",\"vdevs\":[\"/x\"]}", EINVAL, "field 'name'");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"/x\"],\"size\":-1}", EINVAL, "negative");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"/x\"],\"size\":\"4Q\"}", EINVAL,
        "field 'size'");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"/x\"],\"size\":1.5}", EINVAL,
        "field 'size': expected a size");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"/x\"],\"size\":\"99999999P\"}", ERANGE,
        "too large");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"/x\"],\"ashift\":40}", ERANGE,
        "field 'ashift'");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"/x\"],\"ashift\":\"12\"}", EINVAL,
        "field 'ashift': expected an integer");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"vdevs\":[\"/x\"],\"force\":1}", EINVAL,
        "field 'force': expected true or false");
    BAD(R_POOL_CREATE, "{\"name\":\"t\",\"name\":\"u\",\"vdevs\":[\"/x\"]}", EINVAL, "duplicate");
    BAD(R_POOL_CREATE, "{\"name\":\"t\\u0000x\",\"vdevs\":[\"/x\"]}", EINVAL, "NUL");
    BAD(R_VOL_CREATE, "{\"name\":\"d\"}", EINVAL, "missing required field 'size'");
    BAD(R_VOL_CREATE, "{\"name\":\"d\",\"size\":\"1G\",\"properties\":[]}", EINVAL,
        "field 'properties': expected an object");
    BAD(R_VOL_CREATE, "{\"name\":\"d\",\"size\":\"1G\",\"properties\":{\"used\":1}}", EINVAL,
        "unknown property 'used'");
    BAD(R_VOL_CREATE, "{\"name\":\"d\",\"size\":\"1G\",\"properties\":{\"readonly\":\"maybe\"}}",
        EINVAL, "properties.readonly");
    BAD(R_VOL_PATCH, "{\"properties\":{\"used\":\"1G\"}}", EINVAL, "property 'used' is read-only");
    BAD(R_VOL_PATCH, "{\"properties\":{\"bogus\":\"1\"}}", EINVAL, "unknown property 'bogus'");
    BAD(R_VOL_PATCH, "{}", EINVAL, "missing required field 'properties'");
    BAD(R_VOL_PATCH, "{\"properties\":{\"compression\":5}}", EINVAL,
        "properties.compression");
    BAD(R_VOL_RESIZE, "{\"size\":true}", EINVAL, "field 'size'");
    BAD(R_VOL_CREATE, "{\"name\":\"d\",\"size\":\"1G\",\"volblocksize\":\"3K\"}", EINVAL,
        "3K is invalid: use a power of two from 4K to 128K");
    BAD(R_VOL_CREATE, "{\"name\":\"d\",\"size\":\"1G\",\"volblocksize\":262144}", EINVAL,
        "262144 is invalid");
    BAD(R_POOL_TRIM, "{\"x\":1}", EINVAL, "takes none");
    BAD(R_POOL_DEBUG, "{}", EINVAL, "'knob'");
    BAD(R_POOL_PATCH, "{\"properties\":{\"ashift\":9}}", EINVAL, "read-only");

    /* huge: over the body limit, and a valid but deep document under it */
    size_t n = API_BODY_MAX + 10;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    struct berr err = {0};
    json_t *o = NULL;
    ok(api_validate_body(route(R_POOL_CREATE), big, n, &o, &err) == -EFBIG && !o,
       "body over the limit: %s", err.msg);
    size_t depth = 20000;
    for (size_t i = 0; i < depth; i++) {
        big[i] = '[';
        big[2 * depth - 1 - i] = ']';
    }
    ok(api_validate_body(route(R_POOL_CREATE), big, 2 * depth, &o, &err) < 0 && !o,
       "deeply nested array refused: %s", err.msg);
    free(big);
}

static void queries(void)
{
    struct berr err = {0};
    json_t *q = json_object(), *out = NULL;
    json_object_set_new(q, "force", json_string(""));
    ok(api_validate_query(route(R_VOL_DELETE), q, &out, &err) == 0 &&
       api_get_bool(out, "force", false), "?force is true");
    json_decref(out);
    json_object_set_new(q, "force", json_string("no"));
    ok(api_validate_query(route(R_VOL_DELETE), q, &out, &err) == 0 &&
       !api_get_bool(out, "force", true), "?force=no is false");
    json_decref(out);
    json_object_set_new(q, "force", json_string("perhaps"));
    ok(api_validate_query(route(R_VOL_DELETE), q, &out, &err) == -EINVAL &&
       strstr(err.msg, "'force'"), "?force=perhaps: %s", err.msg);
    json_object_clear(q);
    json_object_set_new(q, "forse", json_string("1"));
    ok(api_validate_query(route(R_VOL_DELETE), q, &out, &err) == -EINVAL &&
       strstr(err.msg, "unknown query parameter 'forse'"), "unknown query: %s", err.msg);
    json_object_clear(q);
    json_object_set_new(q, "dir", json_string("relative"));
    ok(api_validate_query(route(R_POOLS_IMPORTABLE), q, &out, &err) == -EINVAL &&
       strstr(err.msg, "absolute"), "relative dir: %s", err.msg);
    json_object_set_new(q, "dir", json_string("/srv"));
    ok(api_validate_query(route(R_POOLS_IMPORTABLE), q, &out, &err) == 0, "dir=/srv");
    json_decref(out);
    json_object_clear(q);
    json_object_set_new(q, "x", json_string("1"));
    ok(api_validate_query(route(R_POOLS_LIST), q, &out, &err) == -EINVAL,
       "query on a route that takes none");
    json_decref(q);
}

int main(void)
{
    good_bodies();
    bad_bodies();
    queries();
    return done_testing();
}
