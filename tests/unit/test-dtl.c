/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* DTL bookkeeping against the commits that grow it (dtl.c top):
 *  - the end of a resilver and the end of a scrub compare a member's
 *    stale_gen with their start and clear its DTL: a commit that notes the
 *    member as missing its txg (its write failed) while they do so must not
 *    be wiped.  The test knob dtl_clear_delay_ms holds each clear between
 *    its check and its clear while the commit runs (without dtl_lock the
 *    note lands in that window and is wiped: stale false, DTL 0);
 *  - a member whose own label write fails while a commit records another
 *    member's miss (fail_label_writes) is FAULTED and takes no uberblock of
 *    that txg; when faulting it would leave the top short (raidz1 with one
 *    member gone already) the commit fails instead and nothing is faulted;
 *    in every case the members come back, are resilvered, and every block
 *    reads back right, a scrub finds nothing;
 *  - that label write is tried once more when it fails (pool_vdev.c
 *    write_top_labels): one transient failure (fail_label_writes=1) on that
 *    short raidz1 faults nothing and the txg commits, the member's label and
 *    uberblock of it durable (an import without the member that missed it
 *    reads every block); two failures (=2) or a dead label area (=on) are
 *    tried exactly twice and fail the commit as before. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "store/pool_impl.h"
#include "store/resilver.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 16384u
#define VOLSIZE (16 * MiB)

static uint8_t *model;
static char paths[6][512]; /* leaf files: tmp_paths(paths, 6, tag) */

/* A pool over `layout` and n of paths[], a volume written with model. */
static bs_pool *make_pool(const char *layout, unsigned n)
{
    const char *spec[8];
    size_t ns = vdev_spec(spec, layout, 1, n, paths);
    struct test_pool tp = {.name = "dt", .spec = spec, .nspec = ns, .filesize = 64 * MiB,
                           .volsize = VOLSIZE, .volblocksize = BS, .fill = model, .fill_seed = 7};
    return test_pool_create(&tp, NULL, layout);
}

/* Write len bytes of new data at off (model updated only if it was
 * acknowledged) and flush; the flush's result. */
static int write_flush(bs_pool *p, uint64_t off, uint64_t len, uint64_t seed)
{
    struct berr e = {0};
    bs_vol *v = NULL;
    if (bs_vol_open(p, "vol", &v, &e) < 0)
        return -EIO;
    uint8_t *buf = malloc(len);
    random_bytes(buf, len, &seed);
    int r = bs_vol_pwrite(v, buf, len, off, 0);
    if (r == 0)
        r = bs_vol_flush(v);
    if (r == 0)
        memcpy(model + off, buf, len);
    free(buf);
    bs_vol_close(v);
    return r;
}

static bool all_good(bs_pool *p, const char *what)
{
    return vol_reads_back(p, model, VOLSIZE, BS, what);
}

static uint64_t committed(bs_pool *p)
{
    pthread_mutex_lock(&p->txg.lock);
    uint64_t t = p->txg.committed_txg;
    pthread_mutex_unlock(&p->txg.lock);
    return t;
}

/* Wait (up to 20 s) until dtl_clear_if has entered its widened window n
 * times in all. */
static bool wait_window(bs_pool *p, unsigned n)
{
    for (int i = 0; i < 2000; i++) {
        if (atomic_load(&p->dtl_clear_delayed) >= n)
            return true;
        usleep(10000);
    }
    return false;
}

/* The newest label of leaf i of top 0, from leaf `from`: does it record
 * leaf i stale with a DTL holding txg? */
static bool label_notes(bs_pool *p, unsigned from, unsigned i, uint64_t txg)
{
    struct vdev *l = vdev_leaf(p->io.top[0].vd, from);
    struct label_hdr h;
    struct berr e = {0};
    if (label_read_hdr(l, &h, &e) < 0) {
        diag("label of leaf %u: %s", from, e.msg);
        return false;
    }
    return (h.stale_mask >> i & 1) && h.dtl[i].lo <= txg && txg <= h.dtl[i].hi;
}

/* Bring member i back (its fault knobs off) and wait for its resilver. */
static void back_online(bs_pool *p, unsigned i, const char *what)
{
    struct berr e = {0};
    char knob[64];
    snprintf(knob, sizeof knob, "vdev=%u reset", i);
    ok(bs_pool_debug(p, knob, &e) == 0 && bs_pool_online(p, paths[i], &e) == 0,
       "%s: member %u back online: %s", what, i, e.msg);
}

static void resilver_clean(bs_pool *p, const char *what)
{
    struct bs_pool_stats st;
    bool done = bs_pool_resilver_wait(p);
    bs_pool_stats(p, &st);
    bool fresh = true;
    for (size_t i = 0; i < st.nvdevs; i++)
        fresh &= !st.vdevs[i].stale && !st.vdevs[i].dtl_hi &&
                 strcmp(st.vdevs[i].state, "ONLINE") == 0;
    ok(done && strcmp(st.state, "ONLINE") == 0 && fresh,
       "%s: resilvered, pool %s, every member ONLINE and not stale", what, st.state);
}

/* ---- 1. the end of a resilver against a commit that notes a miss ---- */

static void test_resilver_end_race(void)
{
    struct berr e = {0};
    tmp_paths(paths, 6, "rsvrace");
    bs_pool *p = make_pool("mirror", 3);
    if (!p)
        return;
    struct vdev *c = vdev_leaf(p->io.top[0].vd, 2);
    /* member 2 away for a write, back: a resilver of its DTL */
    ok(bs_pool_offline(p, paths[2], &e) == 0, "resilver race: offline member 2: %s", e.msg);
    ok(write_flush(p, 2 * MiB, 2 * MiB, 31) == 0, "resilver race: write 2 MiB while it is away");
    /* its clear held open for 1.5 s, the lock held meanwhile */
    ok(bs_pool_debug(p, "dtl_clear_delay_ms=1500", &e) == 0, "resilver race: knob: %s", e.msg);
    unsigned w0 = atomic_load(&p->dtl_clear_delayed);
    ok(bs_pool_online(p, paths[2], &e) == 0, "resilver race: online member 2: %s", e.msg);
    bool in = wait_window(p, w0 + 1);
    ok(in, "resilver race: the resilver's end checked member 2 and is about to clear it");
    /* a commit with member 2 usable: its absence at txg 5 is over (a miss
     * while that one is still counted needs no note: dtl.c top) */
    ok(write_flush(p, 5 * MiB, MiB, 33) == 0, "resilver race: a write committed with it");
    /* now member 2 fails the writes of a txg: the commit notes its miss */
    ok(bs_pool_debug(p, "vdev=2 fail_writes=on", &e) == 0, "resilver race: fail_writes on");
    ok(write_flush(p, 6 * MiB, MiB, 32) == 0, "resilver race: a write committed without it");
    uint64_t t = committed(p);
    bs_pool_resilver_wait(p);
    bs_pool_debug(p, "dtl_clear_delay_ms=0", &e);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.vdevs[2].state, "FAULTED") == 0, "resilver race: member 2 %s",
       st.vdevs[2].state);
    ok(atomic_load(&c->stale) && atomic_load(&c->dtl_hi) > 0 && atomic_load(&c->dtl_hi) <= t,
       "resilver race: its miss survives the resilver's clear (stale %d, DTL %llu..%llu, "
       "txg %llu)", (int)atomic_load(&c->stale), (unsigned long long)atomic_load(&c->dtl_lo),
       (unsigned long long)atomic_load(&c->dtl_hi), (unsigned long long)t);
    ok(label_notes(p, 0, 2, atomic_load(&c->dtl_hi)),
       "resilver race: the labels (member 0's) still record it stale with that DTL");
    back_online(p, 2, "resilver race");
    resilver_clean(p, "resilver race");
    all_good(p, "resilver race");
    scrub_clean(p, "resilver race", false);
    bs_pool_close(p);
}

/* ---- 2. the end of a scrub against a commit that notes a miss ---- */

static void test_scrub_end_race(void)
{
    struct berr e = {0};
    tmp_paths(paths, 6, "scrrace");
    bs_pool *p = make_pool("raidz1", 3);
    if (!p)
        return;
    struct vdev *c = vdev_leaf(p->io.top[0].vd, 2);
    /* member 2 stale with no DTL (as a label of a version without DTLs
     * leaves it): only a whole scrub clears that */
    dtl_mark_missed(p, c, 1, 0);
    ok(bs_pool_debug(p, "dtl_clear_delay_ms=1500", &e) == 0, "scrub race: knob: %s", e.msg);
    unsigned w0 = atomic_load(&p->dtl_clear_delayed);
    ok(bs_pool_scrub(p, BS_SCRUB_START, &e) == 0, "scrub race: scrub: %s", e.msg);
    ok(wait_window(p, w0 + 1), "scrub race: the scrub's end checked member 2, about to clear it");
    ok(bs_pool_debug(p, "vdev=2 fail_writes=on", &e) == 0, "scrub race: fail_writes on");
    ok(write_flush(p, 4 * MiB, MiB, 41) == 0, "scrub race: a write committed without it");
    uint64_t t = committed(p);
    bs_pool_scrub_wait(p);
    bs_pool_debug(p, "dtl_clear_delay_ms=0", &e);
    ok(atomic_load(&c->stale) && atomic_load(&c->dtl_hi) > 0 &&
           atomic_load(&c->dtl_hi) <= t,
       "scrub race: its miss survives the scrub's clear (stale %d, DTL %llu..%llu, txg %llu)",
       (int)atomic_load(&c->stale), (unsigned long long)atomic_load(&c->dtl_lo),
       (unsigned long long)atomic_load(&c->dtl_hi), (unsigned long long)t);
    ok(label_notes(p, 0, 2, atomic_load(&c->dtl_hi)),
       "scrub race: the labels (member 0's) still record it stale with that DTL");
    back_online(p, 2, "scrub race");
    resilver_clean(p, "scrub race");
    all_good(p, "scrub race");
    scrub_clean(p, "scrub race", false);
    bs_pool_close(p);
}

/* ---- 3. a member that cannot write the label recording a miss ---- */

/* layout over n members: member `miss` fails the writes of a txg, member
 * `nolabel` fails only its label write in that commit. */
static void test_label_fail(const char *layout, unsigned n, unsigned miss, unsigned nolabel)
{
    struct berr e = {0};
    char tag[32], what[64];
    snprintf(tag, sizeof tag, "lbl-%s%u", layout, n);
    snprintf(what, sizeof what, "%s of %u", layout, n);
    tmp_paths(paths, 6, tag);
    bs_pool *p = make_pool(layout, n);
    if (!p)
        return;
    struct vdev *top = p->io.top[0].vd;
    char knob[64];
    snprintf(knob, sizeof knob, "vdev=%u fail_writes=on", miss);
    ok(bs_pool_debug(p, knob, &e) == 0, "%s: member %u fails writes", what, miss);
    snprintf(knob, sizeof knob, "vdev=%u fail_label_writes=on", nolabel);
    ok(bs_pool_debug(p, knob, &e) == 0, "%s: member %u fails label writes", what, nolabel);
    uint64_t before = committed(p);
    ok(write_flush(p, 8 * MiB, MiB, 51) == 0, "%s: the write commits", what);
    uint64_t t = committed(p);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.vdevs[miss].state, "FAULTED") == 0 && st.vdevs[miss].stale,
       "%s: member %u FAULTED (%s), stale", what, miss, st.vdevs[miss].state);
    ok(strcmp(st.vdevs[nolabel].state, "FAULTED") == 0,
       "%s: member %u, whose label write failed, FAULTED (%s)", what, nolabel,
       st.vdevs[nolabel].state);
    /* the txg member `miss` missed first: the commit whose labels failed */
    uint64_t noted = atomic_load(&vdev_leaf(top, miss)->dtl_lo);
    uint64_t nl_newest = dtl_leaf_newest(p, 0, vdev_leaf(top, nolabel));
    ok(noted > before && noted <= t && nl_newest > 0 && nl_newest < noted,
       "%s: it holds no uberblock of txg %llu, the one whose miss it could not record "
       "(its newest %llu, committed %llu)", what, (unsigned long long)noted,
       (unsigned long long)nl_newest, (unsigned long long)t);
    ok(label_notes(p, 0, miss, noted), "%s: member 0's label records member %u's miss",
       what, miss);
    all_good(p, "with two members down");
    /* both back: resilvered, everything right (also through an export) */
    back_online(p, nolabel, what);
    back_online(p, miss, what);
    resilver_clean(p, what);
    all_good(p, what);
    scrub_clean(p, what, false);
    ok(bs_pool_export(p, false, &e) == 0, "%s: export: %s", what, e.msg);
    p = import_paths(paths, NULL, n, &e);
    ok(p != NULL, "%s: import: %s", what, e.msg);
    if (p) {
        bs_pool_stats(p, &st);
        ok(strcmp(st.state, "ONLINE") == 0, "%s: ONLINE after import (%s)", what, st.state);
        all_good(p, "after import");
        bs_pool_close(p);
    }
}

/* raidz1 a b c: c misses a txg, b cannot write its label: faulting b would
 * leave a alone (2 needed): the commit fails, b stays ONLINE; a reimport
 * has the txg before, c resilvered for its noted miss. */
static void test_label_fail_short(void)
{
    struct berr e = {0};
    tmp_paths(paths, 6, "lblshort");
    bs_pool *p = make_pool("raidz1", 3);
    if (!p)
        return;
    ok(bs_pool_debug(p, "vdev=2 fail_writes=on", &e) == 0 &&
           bs_pool_debug(p, "vdev=1 fail_label_writes=on", &e) == 0,
       "short: member 2 fails writes, member 1 label writes");
    uint64_t before = committed(p);
    int r = write_flush(p, 8 * MiB, MiB, 61);
    ok(r < 0, "short: the write's commit fails (%d)", r);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.state, "FAULTED") == 0 && strcmp(st.vdevs[1].state, "ONLINE") == 0,
       "short: pool %s, member 1 not faulted (%s)", st.state, st.vdevs[1].state);
    ok(committed(p) == before, "short: nothing committed after txg %llu (%llu)",
       (unsigned long long)before, (unsigned long long)committed(p));
    bs_pool_close(p);
    p = import_paths(paths, NULL, 3, &e);
    ok(p != NULL, "short: import: %s", e.msg);
    if (!p)
        return;
    resilver_clean(p, "short");
    all_good(p, "short: the data of the last commit");
    scrub_clean(p, "short", false);
    bs_pool_close(p);
}

/* ---- 4. the one retry of that label write ---- */

/* raidz1 a b c, c misses a txg, b's label writes fail as `knob` says
 * (fail_label_writes=knob): "1" is one transient failure (the retry takes
 * it: the txg commits, nothing but c faulted), "2" and "on" fail the retry
 * too (the commit fails, b not faulted: test_label_fail_short). */
static void test_label_retry(const char *knob_val)
{
    struct berr e = {0};
    char tag[32], what[64], knob[64];
    snprintf(tag, sizeof tag, "lblretry%s", knob_val);
    snprintf(what, sizeof what, "retry, fail_label_writes=%s", knob_val);
    bool transient = strcmp(knob_val, "1") == 0;
    tmp_paths(paths, 6, tag);
    bs_pool *p = make_pool("raidz1", 3);
    if (!p)
        return;
    struct vdev *top = p->io.top[0].vd, *b = vdev_leaf(top, 1);
    snprintf(knob, sizeof knob, "vdev=1 fail_label_writes=%s", knob_val);
    ok(bs_pool_debug(p, "vdev=2 fail_writes=on", &e) == 0 && bs_pool_debug(p, knob, &e) == 0,
       "%s: member 2 fails writes, member 1 label writes: %s", what, e.msg);
    uint64_t before = committed(p);
    uint64_t errs0 = atomic_load(&b->ctr.write_errors);
    int r = write_flush(p, 8 * MiB, MiB, 71);
    uint64_t errs = atomic_load(&b->ctr.write_errors) - errs0;
    /* the failures were injected, the first retried once, never more */
    ok(errs == (transient ? 1 : 2), "%s: member 1's label write failed %llu time(s) (%u "
       "expected: one try and one retry)", what, (unsigned long long)errs, transient ? 1 : 2);
    int64_t left = atomic_load(&b->fail_label_writes);
    ok(strcmp(knob_val, "on") == 0 ? left < 0 : left == 0,
       "%s: the knob counted down (%lld left)", what, (long long)left);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    if (transient) {
        uint64_t t = committed(p);
        ok(r == 0 && t > before, "%s: the write commits (%d, txg %llu after %llu)", what, r,
           (unsigned long long)t, (unsigned long long)before);
        ok(strcmp(st.state, "DEGRADED") == 0 && strcmp(st.vdevs[1].state, "ONLINE") == 0 &&
               strcmp(st.vdevs[0].state, "ONLINE") == 0 &&
               strcmp(st.vdevs[2].state, "FAULTED") == 0 && st.vdevs[2].stale,
           "%s: pool %s, member 1 not faulted (%s), member 2 FAULTED (%s), stale", what,
           st.state, st.vdevs[1].state, st.vdevs[2].state);
        uint64_t noted = atomic_load(&vdev_leaf(top, 2)->dtl_lo);
        uint64_t b_newest = dtl_leaf_newest(p, 0, b);
        ok(noted > before && noted <= t && b_newest >= noted,
           "%s: member 1 holds an uberblock of txg %llu, whose miss it recorded (its "
           "newest %llu)", what, (unsigned long long)noted, (unsigned long long)b_newest);
        ok(label_notes(p, 1, 2, noted) && label_notes(p, 0, 2, noted),
           "%s: the labels of members 0 and 1 record member 2's miss", what);
        all_good(p, what);
        ok(bs_pool_export(p, false, &e) == 0, "%s: export: %s", what, e.msg);
        /* members 0 and 1 alone hold everything committed */
        p = import_paths(paths, NULL, 2, &e);
        ok(p != NULL, "%s: import without member 2: %s", what, e.msg);
        if (!p)
            return;
        bs_pool_stats(p, &st);
        ok(strcmp(st.state, "DEGRADED") == 0, "%s: DEGRADED without member 2 (%s)", what,
           st.state);
        all_good(p, "retry: after import without member 2");
        ok(bs_pool_export(p, false, &e) == 0, "%s: export: %s", what, e.msg);
    } else {
        ok(r < 0 && committed(p) == before,
           "%s: the write's commit fails (%d), nothing committed after txg %llu (%llu)", what,
           r, (unsigned long long)before, (unsigned long long)committed(p));
        ok(strcmp(st.state, "FAULTED") == 0 && strcmp(st.vdevs[1].state, "ONLINE") == 0,
           "%s: pool %s, member 1 not faulted (%s)", what, st.state, st.vdevs[1].state);
        bs_pool_close(p);
    }
    /* every member: member 2 resilvered, the data of the last commit */
    p = import_paths(paths, NULL, 3, &e);
    ok(p != NULL, "%s: import: %s", what, e.msg);
    if (!p)
        return;
    resilver_clean(p, what);
    all_good(p, what);
    scrub_clean(p, what, false);
    bs_pool_close(p);
}

int main(void)
{
    model = malloc(VOLSIZE);
    test_resilver_end_race();
    test_scrub_end_race();
    test_label_fail("mirror", 3, 2, 1);
    test_label_fail("raidz2", 4, 2, 1);
    test_label_fail_short();
    test_label_retry("1");
    test_label_retry("2");
    test_label_retry("on");
    free(model);
    tmp_cleanup();
    return done_testing();
}
