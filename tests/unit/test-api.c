/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for the API router (src/api/router.c): every route matches its
 * own method and path with the right captures, literal routes win over
 * captures, unknown paths give ENOENT (404) and known paths with another
 * method EOPNOTSUPP (405) with an Allow list; captures are validated. */
#include "api/schema.h"
#include "tap.h"

#include <string.h>

static void expect(const char *method, const char *path, enum api_route_id id, const char *cap0,
                   const char *cap1)
{
    struct api_match m;
    struct berr err = {0};
    char allow[64];
    int r = api_route_match(method, path, &m, allow, sizeof(allow), &err);
    ok(r == 0 && m.route && m.route->id == id &&
       (!cap0 || (m.ncaps >= 1 && strcmp(m.caps[0], cap0) == 0)) &&
       (!cap1 || (m.ncaps >= 2 && strcmp(m.caps[1], cap1) == 0)),
       "%s %s -> route %d (%s)", method, path, (int)id, r ? err.msg : "");
    api_match_free(&m);
}

static void expect_fail(const char *method, const char *path, int code, const char *allow_want)
{
    struct api_match m;
    struct berr err = {0};
    char allow[64] = "";
    int r = api_route_match(method, path, &m, allow, sizeof(allow), &err);
    ok(r == -code && (!allow_want || strcmp(allow, allow_want) == 0),
       "%s %s -> %d (%s) allow='%s'", method, path, r, err.msg, allow);
    api_match_free(&m);
}

int main(void)
{
    /* every route's own pattern, with captures substituted */
    for (size_t i = 0; i < api_nroutes; i++) {
        char path[256] = API_PREFIX;
        const char *p = api_routes[i].pattern;
        while (*p) {
            if (strncmp(p, "{pool}", 6) == 0) {
                strcat(path, "tank");
                p += 6;
            } else if (strncmp(p, "{vol}", 5) == 0) {
                strcat(path, "disk0");
                p += 5;
            } else {
                strncat(path, p++, 1);
            }
        }
        expect(api_routes[i].method, path, api_routes[i].id,
               strstr(api_routes[i].pattern, "{pool}") ? "tank" : NULL,
               strstr(api_routes[i].pattern, "{vol}") ? "disk0" : NULL);
    }
    expect("GET", "/api/v1/pools/", R_POOLS_LIST, NULL, NULL);
    expect("POST", "/api/v1/pools/import", R_POOL_IMPORT, NULL, NULL);
    expect("GET", "/api/v1/pools/importable", R_POOLS_IMPORTABLE, NULL, NULL);
    expect("GET", "/api/v1/pools/import", R_POOL_GET, "import", NULL); /* a pool named import */
    expect("DELETE", "/api/v1/pools/t/volumes/v/", R_VOL_DELETE, "t", "v");

    expect_fail("GET", "/api/v2/pools", ENOENT, NULL);
    expect_fail("GET", "/api/v1", ENOENT, NULL);
    expect_fail("GET", "/api/v1x/pools", ENOENT, NULL);
    expect_fail("GET", "/api/v1/nothing", ENOENT, NULL);
    expect_fail("GET", "/api/v1/pools//volumes", ENOENT, NULL);
    expect_fail("GET", "/api/v1/pools/t/volumes/v/extra/deep", ENOENT, NULL);
    expect_fail("GET", "/api/v1/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s", ENOENT, NULL);
    expect_fail("PUT", "/api/v1/pools", EOPNOTSUPP, "GET, POST");
    expect_fail("DELETE", "/api/v1/volumes", EOPNOTSUPP, "GET");
    expect_fail("GET", "/api/v1/pools/t/trim", EOPNOTSUPP, "POST");
    expect_fail("POST", "/api/v1/pools/t/volumes/v", EOPNOTSUPP, "GET, PATCH, DELETE");

    /* captures are validated as names */
    struct api_match m;
    struct berr err = {0};
    ok(api_route_match("GET", "/api/v1/pools/bad name/volumes/-x", &m, NULL, 0, &err) == 0,
       "odd captures still route");
    ok(api_validate_caps(&m, &err) == -EINVAL && strstr(err.msg, "pool name"),
       "bad pool capture: %s", err.msg);
    api_match_free(&m);
    ok(api_route_match("GET", "/api/v1/pools/ok/volumes/-x", &m, NULL, 0, &err) == 0, "route");
    ok(api_validate_caps(&m, &err) == -EINVAL && strstr(err.msg, "volume name"),
       "bad volume capture: %s", err.msg);
    api_match_free(&m);
    char longname[120];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    char path[200];
    snprintf(path, sizeof(path), "/api/v1/pools/%s", longname);
    ok(api_route_match("GET", path, &m, NULL, 0, &err) == 0 &&
       api_validate_caps(&m, &err) == -ENAMETOOLONG, "long pool name: %s", err.msg);
    api_match_free(&m);
    return done_testing();
}
