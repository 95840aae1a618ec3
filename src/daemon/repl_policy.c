/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replication policy: durations, retention grids, snapshot names, the
 * pruning plan.  Pure functions, see repl_policy.h. */
#include "daemon/repl_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    char unit;
    uint64_t secs;
} units[] = {{'w', 7 * 86400}, {'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};

static uint64_t unit_secs(char c)
{
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (units[i].unit == c)
            return units[i].secs;
    return 0;
}

int repl_parse_duration(const char *s, uint64_t *secs, struct berr *err)
{
    const char *p = s ? s : "";
    uint64_t total = 0;
    if (!*p)
        return berr_set(err, EINVAL, "empty duration (expected e.g. 15m, 1h, 30s)");
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return berr_set(err, EINVAL, "invalid duration '%.64s' (expected NUMBER+UNIT, "
                            "units s, m, h, d, w: e.g. 15m, 1h30m, 30s)", s);
        uint64_t n = 0;
        /* digits are bounded by hand: strtoull would accept signs and spaces */
        for (; isdigit((unsigned char)*p); p++) {
            n = n * 10 + (uint64_t)(*p - '0');
            if (n > REPL_DURATION_MAX)
                return berr_set(err, ERANGE, "duration '%.64s' is too long (at most ten years)",
                                s);
        }
        uint64_t u = unit_secs(*p);
        if (!u)
            return berr_set(err, EINVAL, "invalid duration '%.64s': %s (units s, m, h, d, w)", s,
                            *p ? "unknown unit" : "a number needs a unit");
        p++;
        total += n * u;
        if (total > REPL_DURATION_MAX)
            return berr_set(err, ERANGE, "duration '%.64s' is too long (at most ten years)", s);
    }
    if (total == 0)
        return berr_set(err, EINVAL, "duration '%.64s' is zero", s);
    *secs = total;
    return 0;
}

const char *repl_format_duration(uint64_t secs, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    if (secs == 0) {
        snprintf(buf, len, "0s");
        return buf;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && off < len; i++) {
        uint64_t n = secs / units[i].secs;
        if (!n)
            continue;
        secs -= n * units[i].secs;
        int w = snprintf(buf + off, len - off, "%llu%c", (unsigned long long)n, units[i].unit);
        off += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t l = strlen(s);
    while (l && isspace((unsigned char)s[l - 1]))
        s[--l] = '\0';
    return s;
}

int repl_parse_grid(const char *s, struct repl_grid *g, struct berr *err)
{
    char buf[512];
    if (!s || !*s)
        return berr_set(err, EINVAL, "empty retention grid (expected e.g. 1h:24,1d:7,1w:4)");
    if (strlen(s) >= sizeof(buf))
        return berr_set(err, EINVAL, "retention grid '%.64s...' is too long", s);
    snprintf(buf, sizeof(buf), "%s", s);
    struct repl_grid out = {0};
    char *save = NULL;
    /* strtok_r would silently skip empty items ("1h:2,,1d:3"): split by hand */
    for (char *item = buf; item; item = save) {
        save = strchr(item, ',');
        if (save)
            *save++ = '\0';
        char *t = trim(item);
        char *colon = strchr(t, ':');
        if (!*t || !colon)
            return berr_set(err, EINVAL, "retention grid '%.128s': item '%s' is not "
                            "PERIOD:COUNT (e.g. 1h:24)", s, t);
        if (out.n == REPL_GRID_MAX)
            return berr_set(err, EINVAL, "retention grid '%.128s' has more than %d items", s,
                            REPL_GRID_MAX);
        *colon = '\0';
        char *ps = trim(t), *cs = trim(colon + 1);
        struct berr e2 = {0};
        uint64_t period;
        if (repl_parse_duration(ps, &period, &e2) < 0)
            return berr_set(err, e2.code, "retention grid '%.128s': %s", s, e2.msg);
        char *end;
        unsigned long count = isdigit((unsigned char)*cs) ? strtoul(cs, &end, 10) : 0;
        if (!isdigit((unsigned char)*cs) || *end || count < 1 || count > REPL_GRID_COUNT_MAX)
            return berr_set(err, EINVAL, "retention grid '%.128s': count '%s' of %s is not a "
                            "number from 1 to %d", s, cs, ps, REPL_GRID_COUNT_MAX);
        out.steps[out.n].period = period;
        out.steps[out.n].count = (uint32_t)count;
        out.n++;
    }
    *g = out;
    return 0;
}

const char *repl_format_grid(const struct repl_grid *g, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < g->n && off < len; i++) {
        char d[32];
        int w = snprintf(buf + off, len - off, "%s%s:%u", i ? "," : "",
                         repl_format_duration(g->steps[i].period, d, sizeof(d)),
                         g->steps[i].count);
        off += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

uint64_t repl_grid_span(const struct repl_grid *g)
{
    uint64_t span = 0;
    for (size_t i = 0; i < g->n; i++)
        span += g->steps[i].period * g->steps[i].count; /* <= 16 * 1e4 * 10y: no overflow */
    return span;
}

int repl_validate_prefix(const char *prefix, struct berr *err)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (n == 0 || n > REPL_PREFIX_MAX)
        return berr_set(err, EINVAL, "snapshot prefix '%.64s' must have 1 to %d characters",
                        prefix ? prefix : "", REPL_PREFIX_MAX);
    if (!isalnum((unsigned char)prefix[0]))
        return berr_set(err, EINVAL, "snapshot prefix '%s' must start with a letter or digit",
                        prefix);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)prefix[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.')
            return berr_set(err, EINVAL, "snapshot prefix '%s' has invalid character '%c' "
                            "(allowed: letters, digits, '_', '-', '.')", prefix,
                            isprint(c) ? c : '?');
    }
    return 0;
}

int repl_snap_name(const char *prefix, int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 < 1970 || tm.tm_year + 1900 > 9999)
        return -ERANGE;
    int w = snprintf(buf, len, "%s%04d%02d%02dT%02d%02d%02dZ", prefix, tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

bool repl_snap_time(const char *prefix, const char *snap, int64_t *t)
{
    size_t pl = strlen(prefix);
    if (strncmp(snap, prefix, pl) != 0 || strlen(snap + pl) != REPL_STAMP_LEN)
        return false;
    const char *s = snap + pl;
    for (int i = 0; i < REPL_STAMP_LEN; i++) {
        bool digit = isdigit((unsigned char)s[i]);
        if ((i == 8 && s[i] != 'T') || (i == 15 && s[i] != 'Z') || (i != 8 && i != 15 && !digit))
            return false;
    }
    struct tm tm = {0};
    tm.tm_year = atoi((char[]){s[0], s[1], s[2], s[3], 0}) - 1900;
    tm.tm_mon = atoi((char[]){s[4], s[5], 0}) - 1;
    tm.tm_mday = atoi((char[]){s[6], s[7], 0});
    tm.tm_hour = atoi((char[]){s[9], s[10], 0});
    tm.tm_min = atoi((char[]){s[11], s[12], 0});
    tm.tm_sec = atoi((char[]){s[13], s[14], 0});
    time_t v = timegm(&tm);
    /* timegm normalises 20261332: accept only a stamp that round-trips */
    char back[64];
    if (repl_snap_name("", (int64_t)v, back, sizeof(back)) < 0 || strcmp(back, s) != 0)
        return false;
    *t = (int64_t)v;
    return true;
}

/* The bucket of an age, or -1 if it is older than the grid. */
static int64_t bucket_of(const struct repl_grid *g, uint64_t age)
{
    uint64_t base = 0;
    int64_t first = 0;
    for (size_t i = 0; i < g->n; i++) {
        uint64_t span = g->steps[i].period * g->steps[i].count;
        if (age < base + span)
            return first + (int64_t)((age - base) / g->steps[i].period);
        base += span;
        first += g->steps[i].count;
    }
    return -1;
}

size_t repl_prune_plan(const struct repl_grid *g, struct repl_snap *s, size_t n)
{
    bool any = false;
    int64_t anchor = 0;
    for (size_t i = 0; i < n; i++) {
        s[i].destroy = false;
        if (s[i].ours && (!any || s[i].time > anchor)) {
            anchor = s[i].time;
            any = true;
        }
    }
    /* Quadratic on purpose: a volume has at most a few thousand snapshots of
     * a job and this runs once per cycle; a sort would need a scratch array. */
    size_t marked = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s[i].ours || s[i].protect)
            continue;
        int64_t b = bucket_of(g, (uint64_t)(anchor - s[i].time));
        bool newer_in_bucket = false;
        for (size_t j = 0; b >= 0 && j < n && !newer_in_bucket; j++) {
            if (j == i || !s[j].ours)
                continue;
            /* equal times cannot happen within one volume (the name is the
             * time); the index breaks the tie all the same */
            bool newer = s[j].time > s[i].time || (s[j].time == s[i].time && j > i);
            newer_in_bucket = newer && bucket_of(g, (uint64_t)(anchor - s[j].time)) == b;
        }
        if (b < 0 || newer_in_bucket) {
            s[i].destroy = true;
            marked++;
        }
    }
    return marked;
}

uint64_t repl_backoff(uint64_t every, unsigned nfail)
{
    uint64_t cap = every > 3600 ? every : 3600;
    uint64_t d = every;
    for (unsigned i = 1; i < nfail && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}
