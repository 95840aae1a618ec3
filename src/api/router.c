/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Path router: matches "METHOD /api/v1/a/b/c" against the route table,
 * segment by segment, capturing "{name}" segments.  A trailing slash is
 * ignored; empty segments never match.  First match in table order wins. */
#include "api/schema.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Split a mutable path into segments in place (no leading '/'). */
static int split(char *s, char **seg, int max)
{
    int n = 0;
    if (*s == '/')
        s++;
    size_t l = strlen(s);
    if (l > 0 && s[l - 1] == '/')
        s[l - 1] = '\0';
    if (*s == '\0')
        return 0;
    for (;;) {
        if (n == max)
            return -1;
        seg[n++] = s;
        char *slash = strchr(s, '/');
        if (!slash)
            break;
        *slash = '\0';
        s = slash + 1;
    }
    for (int i = 0; i < n; i++)
        if (*seg[i] == '\0')
            return -1;
    return n;
}

/* Compare a route pattern with the request segments; fill caps on match. */
static bool pattern_match(const char *pattern, char **seg, int nseg, const char **caps, int *ncaps)
{
    const char *p = pattern;
    int i = 0, nc = 0;
    if (*p == '/')
        p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (i >= nseg)
            return false;
        if (p[0] == '{') {
            if (nc == API_MAX_CAPS)
                return false;
            caps[nc++] = seg[i];
        } else if (strlen(seg[i]) != plen || memcmp(seg[i], p, plen) != 0) {
            return false;
        }
        i++;
        p += plen;
        if (*p == '/')
            p++;
    }
    if (i != nseg)
        return false;
    *ncaps = nc;
    return true;
}

int api_route_match(const char *method, const char *path, struct api_match *m, char *allow,
                    size_t allow_len, struct berr *err)
{
    memset(m, 0, sizeof(*m));
    if (allow && allow_len)
        allow[0] = '\0';
    size_t plen = strlen(API_PREFIX);
    if (strncmp(path, API_PREFIX, plen) != 0 || (path[plen] != '/' && path[plen] != '\0'))
        return berr_set(err, ENOENT, "no such path '%.200s' (the API lives under %s)", path,
                        API_PREFIX);
    char *buf = strdup(path + plen);
    if (!buf)
        return berr_set(err, ENOMEM, "out of memory");
    char *seg[16];
    int nseg = split(buf, seg, 16);
    bool path_found = false;
    if (nseg >= 0) {
        for (size_t r = 0; r < api_nroutes; r++) {
            const char *caps[API_MAX_CAPS];
            int ncaps = 0;
            if (!pattern_match(api_routes[r].pattern, seg, nseg, caps, &ncaps))
                continue;
            if (strcmp(api_routes[r].method, method) == 0) {
                m->route = &api_routes[r];
                m->buf = buf;
                memcpy(m->caps, caps, sizeof(caps));
                m->ncaps = ncaps;
                return 0;
            }
            /* The same path with another method: remember it for 405, but a
             * literal route shadowing a capture (GET /pools/import is not
             * GET /pools/{pool}) must not hide the capture's methods. */
            path_found = true;
            if (allow && !strstr(allow, api_routes[r].method)) {
                size_t al = strlen(allow);
                snprintf(allow + al, allow_len - al, "%s%s", al ? ", " : "",
                         api_routes[r].method);
            }
        }
    }
    free(buf);
    if (path_found)
        return berr_set(err, EOPNOTSUPP, "method %.16s is not allowed on %.200s (allowed: %s)",
                        method, path, allow ? allow : "?");
    return berr_set(err, ENOENT, "no such path '%.200s'", path);
}

void api_match_free(struct api_match *m)
{
    if (!m)
        return;
    free(m->buf);
    m->buf = NULL;
    m->route = NULL;
}

/* VMIDs: 100..999999999, decimal, no sign or leading zero (config.h). */
static int validate_vmid(const char *s, struct berr *err)
{
    size_t l = strlen(s);
    bool ok = l >= 3 && l <= 9 && s[0] != '0';
    for (size_t i = 0; ok && i < l; i++)
        ok = s[i] >= '0' && s[i] <= '9';
    if (!ok)
        return berr_set(err, EINVAL, "invalid VMID '%.32s' (a number from 100 to 999999999)", s);
    return 0;
}

/* Linux interface names: 1..15 of [A-Za-z0-9_.-]. */
static int validate_ifname(const char *s, struct berr *err)
{
    size_t l = strlen(s);
    bool ok = l >= 1 && l <= 15 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
    for (size_t i = 0; ok && i < l; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
             (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-';
    if (!ok)
        return berr_set(err, EINVAL, "invalid network name '%.32s' (1..15 letters, digits, "
                        "'_', '.', '-')", s);
    return 0;
}

int api_validate_caps(const struct api_match *m, struct berr *err)
{
    /* Captures are named in the pattern; map "{vol}" to "volume", "{snap}"
     * to a snapshot name (each part a valid name). */
    const char *p = m->route->pattern;
    int i = 0;
    while ((p = strchr(p, '{')) != NULL && i < m->ncaps) {
        if (strncmp(p, "{vmid}", 6) == 0 || strncmp(p, "{net}", 5) == 0) {
            int r = p[1] == 'v' ? validate_vmid(m->caps[i], err) : validate_ifname(m->caps[i], err);
            if (r < 0)
                return r;
            i++;
            p++;
            continue;
        }
        int r;
        if (strncmp(p, "{snap}", 6) == 0)
            r = api_validate_snapname(m->caps[i], false, err);
        else if (strncmp(p, "{vmsnap}", 8) == 0)
            r = validate_name(m->caps[i], "snapshot", err); /* no VOL@ part */
        else
            r = validate_name(m->caps[i], strncmp(p, "{vol}", 5) == 0    ? "volume"
                                          : strncmp(p, "{repl}", 6) == 0 ? "replication"
                                                                         : "pool", err);
        if (r < 0)
            return r;
        i++;
        p++;
    }
    return 0;
}
