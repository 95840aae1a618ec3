/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/daemon/repl_policy.c: durations, retention grids,
 * snapshot names and pruning decisions on synthetic snapshot lists. */
#include "daemon/repl_policy.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>

#define H 3600
#define D 86400

static void durations(void)
{
    struct berr e = {0};
    uint64_t v = 0;
    ok(repl_parse_duration("15m", &v, &e) == 0 && v == 900, "15m");
    ok(repl_parse_duration("1s", &v, &e) == 0 && v == 1, "1s (tests)");
    ok(repl_parse_duration("1h30m", &v, &e) == 0 && v == 5400, "1h30m");
    ok(repl_parse_duration("2w", &v, &e) == 0 && v == 14 * D, "2w");
    ok(repl_parse_duration("1d12h", &v, &e) == 0 && v == D + 12 * H, "1d12h");
    ok(repl_parse_duration("90", &v, &e) == -EINVAL && strstr(e.msg, "needs a unit"),
       "bare number rejected: %s", e.msg);
    ok(repl_parse_duration("", &v, &e) == -EINVAL, "empty rejected");
    ok(repl_parse_duration("5y", &v, &e) == -EINVAL && strstr(e.msg, "5y"), "unit y: %s", e.msg);
    ok(repl_parse_duration("0s", &v, &e) == -EINVAL && strstr(e.msg, "zero"), "zero: %s", e.msg);
    ok(repl_parse_duration("-5m", &v, &e) == -EINVAL, "negative rejected");
    ok(repl_parse_duration(" 5m", &v, &e) == -EINVAL, "leading space rejected");
    ok(repl_parse_duration("5m ", &v, &e) == -EINVAL, "trailing space rejected");
    ok(repl_parse_duration("m", &v, &e) == -EINVAL, "unit alone rejected");
    ok(repl_parse_duration("99999999999999999999s", &v, &e) == -ERANGE, "overflow rejected");
    ok(repl_parse_duration("3661d", &v, &e) == -ERANGE, "more than ten years rejected");
    ok(repl_parse_duration("5M", &v, &e) == -EINVAL, "units are lower case");
    char b[32];
    ok(strcmp(repl_format_duration(900, b, sizeof b), "15m") == 0, "format 15m: %s", b);
    ok(strcmp(repl_format_duration(5400, b, sizeof b), "1h30m") == 0, "format 1h30m: %s", b);
    ok(strcmp(repl_format_duration(90, b, sizeof b), "1m30s") == 0, "format 1m30s: %s", b);
    ok(strcmp(repl_format_duration(7 * D + 1, b, sizeof b), "1w1s") == 0, "format 1w1s: %s", b);
    ok(strcmp(repl_format_duration(0, b, sizeof b), "0s") == 0, "format 0s");
}

static void grids(void)
{
    struct berr e = {0};
    struct repl_grid g;
    char b[128];
    ok(repl_parse_grid("1h:24,1d:7,1w:4", &g, &e) == 0 && g.n == 3 && g.steps[0].period == H &&
           g.steps[0].count == 24 && g.steps[1].period == D && g.steps[1].count == 7 &&
           g.steps[2].period == 7 * D && g.steps[2].count == 4,
       "1h:24,1d:7,1w:4");
    ok(repl_grid_span(&g) == 24 * H + 7 * D + 28 * D, "span");
    ok(strcmp(repl_format_grid(&g, b, sizeof b), "1h:24,1d:7,1w:4") == 0, "format: %s", b);
    ok(repl_parse_grid(" 2s:3 , 10s : 2 ", &g, &e) == 0 && g.n == 2 && g.steps[1].period == 10,
       "spaces around items");
    ok(strcmp(repl_format_grid(&g, b, sizeof b), "2s:3,10s:2") == 0, "canonical: %s", b);
    ok(repl_parse_grid("60m:2", &g, &e) == 0 &&
           strcmp(repl_format_grid(&g, b, sizeof b), "1h:2") == 0, "60m is 1h");
    static const char *const bad[] = {
        "", "1h", "1h:", ":24", "1h:0", "1h:x", "1h:-1", "1h:24,", ",1h:24", "1h:24,,1d:7",
        "1x:24", "1h:10001", "1h:2:3", "1h;24", "0s:4",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e = (struct berr){0};
        ok(repl_parse_grid(bad[i], &g, &e) < 0 && e.msg[0], "bad grid '%s': %s", bad[i], e.msg);
    }
    char many[256] = "";
    for (int i = 0; i < REPL_GRID_MAX + 1; i++)
        strcat(many, i ? ",1h:1" : "1h:1");
    ok(repl_parse_grid(many, &g, &e) == -EINVAL, "too many items: %s", e.msg);
}

static void names(void)
{
    struct berr e = {0};
    char n[64];
    int64_t t = 0;
    /* 2026-11-26 10:15:00 UTC */
    const int64_t when = 1795688100;
    ok(repl_snap_name("repl_", when, n, sizeof n) == 0 && strcmp(n, "repl_20261126T101500Z") == 0,
       "name: %s", n);
    ok(repl_snap_time("repl_", n, &t) && t == when, "round trip");
    ok(!repl_snap_time("repl_", "other_20261126T101500Z", &t), "other prefix");
    ok(!repl_snap_time("repl_", "repl_20261126T101500", &t), "no Z");
    ok(!repl_snap_time("repl_", "repl_20261126T101500Zx", &t), "trailing");
    ok(!repl_snap_time("repl_", "repl_20261332T101500Z", &t), "invalid date");
    ok(!repl_snap_time("repl_", "repl_20261126T246000Z", &t), "invalid time");
    ok(!repl_snap_time("repl_", "repl_2026112xT101500Z", &t), "letter in stamp");
    ok(!repl_snap_time("r", "repl_20261126T101500Z", &t), "prefix r sees 'epl_...'");
    ok(repl_snap_time("", "20261126T101500Z", &t) && t == when, "empty prefix parses");
    ok(repl_validate_prefix("repl_", &e) == 0, "prefix repl_");
    ok(repl_validate_prefix("", &e) == -EINVAL, "empty prefix");
    ok(repl_validate_prefix("_x", &e) == -EINVAL, "leading underscore");
    ok(repl_validate_prefix("a@b", &e) == -EINVAL && strstr(e.msg, "'@'"), "@: %s", e.msg);
    ok(repl_validate_prefix("a/b", &e) == -EINVAL, "slash");
    char longp[64];
    memset(longp, 'a', REPL_PREFIX_MAX + 1);
    longp[REPL_PREFIX_MAX + 1] = '\0';
    ok(repl_validate_prefix(longp, &e) == -EINVAL, "prefix too long");
    longp[REPL_PREFIX_MAX] = '\0';
    ok(repl_validate_prefix(longp, &e) == 0, "prefix of %d accepted", REPL_PREFIX_MAX);
    ok(repl_snap_name(longp, when, n, sizeof n) == 0 && strlen(n) <= 63,
       "longest prefix + stamp is a valid name (%zu)", strlen(n));
}

/* Build snapshots at `ages` (seconds before base time, ours), run the plan,
 * and return a string of k/d per entry for compact comparisons. */
static const char *plan(const char *grid, const int64_t *ages, size_t n, const bool *protect,
                        const bool *foreign, char *out)
{
    struct repl_grid g;
    struct berr e = {0};
    struct repl_snap s[64];
    if (repl_parse_grid(grid, &g, &e) < 0)
        return "bad grid";
    for (size_t i = 0; i < n; i++)
        s[i] = (struct repl_snap){.time = 1795688100 - ages[i], .ours = !(foreign && foreign[i]),
                                  .protect = protect && protect[i]};
    size_t m = repl_prune_plan(&g, s, n), cnt = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = s[i].destroy ? 'd' : 'k';
        cnt += s[i].destroy;
    }
    out[n] = '\0';
    return m == cnt ? out : "count mismatch";
}

static void pruning(void)
{
    char o[65];
    /* the brief's example: 1h:24 buckets, then days, then weeks */
    {
        /* ages: 0, 10m, 59m59s (bucket 0), 1h, 1h30m (bucket 1), 23h59m (bucket 23),
         * 24h (first day), 30h (first day too), 2d (day 2), 31d+ (weeks), 60d (gone) */
        const int64_t ages[] = {0, 600, H - 1, H, H + 1800, 24 * H - 60, 24 * H, 30 * H,
                                24 * H + D, 24 * H + 7 * D, 24 * H + 7 * D + 6 * D, 60 * D};
        const char *want = "kddkdkkdkkdd";
        ok(strcmp(plan("1h:24,1d:7,1w:4", ages, 12, NULL, NULL, o), want) == 0,
           "1h:24,1d:7,1w:4: %s (want %s)", o, want);
    }
    {
        /* 15-minute snapshots over 3 hours with 1h:2: keep age 0 (bucket 0:
         * ages 0..59m) and 60m (bucket 1), everything older goes */
        int64_t ages[13];
        for (int i = 0; i < 13; i++)
            ages[i] = i * 900;
        ok(strcmp(plan("1h:2", ages, 13, NULL, NULL, o), "kdddkdddddddd") == 0,
           "1h:2 over 15m snapshots: %s", o);
    }
    {
        /* order of the list does not matter */
        const int64_t ages[] = {3 * H, 0, H + 5, 2 * H + 7, H + 1};
        ok(strcmp(plan("1h:3", ages, 5, NULL, NULL, o), "dkdkk") == 0, "unordered: %s", o);
    }
    {
        /* protection: the oldest (outside the grid) and a shadowed one stay */
        const int64_t ages[] = {0, 100, 200, 10 * H};
        const bool prot[] = {false, false, true, true};
        ok(strcmp(plan("1h:1", ages, 4, prot, NULL, o), "kdkk") == 0, "protected kept: %s", o);
    }
    {
        /* a protected newest-in-bucket still shadows the older ones */
        const int64_t ages[] = {0, H + 10, H + 20, H + 30};
        const bool prot[] = {false, true, false, false};
        ok(strcmp(plan("1h:2", ages, 4, prot, NULL, o), "kkdd") == 0, "protected shadows: %s", o);
    }
    {
        /* foreign snapshots: never destroyed, never the anchor */
        const int64_t ages[] = {-5 * H, 0, H + 1, 50 * H};
        const bool foreign[] = {true, false, false, true};
        ok(strcmp(plan("1h:1", ages, 4, NULL, foreign, o), "kkdk") == 0, "foreign kept: %s", o);
    }
    {
        /* the anchor is the newest snapshot, not the clock: a job that stopped
         * long ago still keeps its grid */
        const int64_t ages[] = {1000 * D, 1000 * D + 2, 1000 * D + 4, 1000 * D + 6};
        ok(strcmp(plan("2s:2", ages, 4, NULL, NULL, o), "kkdd") == 0, "anchored at newest: %s",
           o);
    }
    {
        /* left-closed, right-open: age == period is the next bucket */
        const int64_t ages[] = {0, 1, 2, 3, 4};
        ok(strcmp(plan("2s:2", ages, 5, NULL, NULL, o), "kdkdd") == 0, "bucket edges: %s", o);
    }
    {
        /* a test-sized grid (what t-replicate.sh uses) over 2-second cycles */
        const int64_t ages[] = {0, 2, 4, 6, 8, 10, 12};
        ok(strcmp(plan("2s:3,10s:1", ages, 7, NULL, NULL, o), "kkkkddd") == 0,
           "2s:3,10s:1: %s", o);
    }
    {
        struct repl_grid g;
        repl_parse_grid("1h:1", &g, NULL);
        ok(repl_prune_plan(&g, NULL, 0) == 0, "empty list");
        struct repl_snap one = {.time = 5, .ours = true};
        ok(repl_prune_plan(&g, &one, 1) == 0 && !one.destroy, "single snapshot kept");
    }
}

static void backoff(void)
{
    ok(repl_backoff(2, 1) == 2, "first retry after every");
    ok(repl_backoff(2, 2) == 4 && repl_backoff(2, 3) == 8, "doubles");
    ok(repl_backoff(2, 40) == 3600, "capped at 1h");
    ok(repl_backoff(900, 3) == 3600 && repl_backoff(900, 4) == 3600, "15m: 15m 30m 1h 1h");
    ok(repl_backoff(7200, 5) == 7200, "longer than 1h: every");
}

int main(void)
{
    durations();
    grids();
    names();
    pruning();
    backoff();
    return done_testing();
}
