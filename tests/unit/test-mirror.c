/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Mirror pools: create/import of the vdev tree, self-healing reads after
 * garbage is written into one leaf file, scrub repairs (and a second scrub
 * finds nothing), both copies damaged (EIO for exactly those blocks, named
 * by the scrub, never wrong data), a member missing at import (DEGRADED,
 * then back stale and repaired by a scrub), write and read faults on one
 * leaf, offline/online, scrub pause/resume/stop, spec errors. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 16384u
#define VOLSIZE (24 * MiB)

static const char *pa, *pb, *pc;
static uint8_t *model;

struct blocks {
    uint64_t off[4096], asize[4096], psize[4096], blkid[4096];
    size_t n;
};

static int collect(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct blocks *b = opaque;
    if (b->n < 4096) {
        b->off[b->n] = bp->dva[0].offset;
        b->asize[b->n] = bp->dva[0].asize;
        b->psize[b->n] = bp->psize;
        b->blkid[b->n] = bp->level == 0 ? blkid : UINT64_MAX;
        b->n++;
    }
    return 0;
}

static bs_pool *import2(const char *a, const char *b)
{
    struct berr e = {0};
    const char *v[] = { a, b };
    bs_pool *p = NULL;
    if (bs_pool_import(v, b ? 2 : 1, NULL, &p, &e) < 0)
        diag("import failed: %s", e.msg);
    return p;
}

/* Read the whole volume: counts of blocks that matched, failed, were wrong. */
static void read_all(bs_pool *p, int *good, int *eio, int *wrong)
{
    vol_compare(p, "vol", model, VOLSIZE, BS, good, eio, wrong);
}

static void leaf_stats(bs_pool *p, struct bs_pool_stats *st)
{
    bs_pool_stats(p, st);
}

static void scrub_now(bs_pool *p, struct bs_pool_stats *st)
{
    struct berr e = {0};
    ok(bs_pool_scrub(p, BS_SCRUB_START, &e) == 0, "scrub starts: %s", e.msg);
    bs_pool_scrub_wait(p);
    bs_pool_stats(p, st);
}

static bool same_bytes(uint64_t off, uint64_t len)
{
    uint8_t *x = malloc(len), *y = malloc(len);
    int fa = open(pa, O_RDONLY | O_CLOEXEC), fb = open(pb, O_RDONLY | O_CLOEXEC);
    bool same = pread(fa, x, len, (off_t)off) == (ssize_t)len &&
                pread(fb, y, len, (off_t)off) == (ssize_t)len && memcmp(x, y, len) == 0;
    close(fa);
    close(fb);
    free(x);
    free(y);
    return same;
}

static void test_create(struct blocks *blk, uint64_t *data_start)
{
    struct berr e = {0};
    const char *spec[] = { "mirror", pa, pb };
    bs_pool *p = NULL;
    ok(bs_pool_create("m", spec, 3, 128 * MiB, NULL, &p, &e) == 0, "create a 2-way mirror: %s",
       e.msg);
    if (!p)
        return;
    struct bs_pool_stats st;
    leaf_stats(p, &st);
    ok(strcmp(st.layout, "mirror") == 0 && st.nvdevs == 2 && strcmp(st.state, "ONLINE") == 0 &&
           strcmp(st.vdevs[0].state, "ONLINE") == 0 && strcmp(st.vdevs[1].path, pb) == 0,
       "stats: mirror of 2 ONLINE leaves (%s, %zu, %s)", st.layout, st.nvdevs, st.state);
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "vol");
    vp.volsize = VOLSIZE;
    vp.volblocksize = BS;
    ok(bs_vol_create(p, &vp, false, &e) == 0, "create a volume: %s", e.msg);
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    uint64_t seed = 42;
    random_bytes(model, VOLSIZE / 2, &seed);
    pattern(model + VOLSIZE / 2, VOLSIZE / 2, 0, 3); /* compressible half */
    ok(v && bs_vol_pwrite(v, model, VOLSIZE, 0, 0) == 0 && bs_vol_flush(v) == 0,
       "write and flush 24 MiB");
    bs_vol_close(v);
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, "vol");
    struct objdesc od = d->od;
    pthread_mutex_unlock(&p->lock);
    blk->n = 0;
    objtree_walk(&p->io, &od, 0, collect, blk);
    *data_start = p->top_hdr[0].data_start;
    ok(bs_pool_check(p, &e) == 0, "check passes: %s", e.msg);
    ok(bs_pool_export(p, false, &e) == 0, "export: %s", e.msg);
    int good, eio, wrong;
    p = import2(pb, pa); /* any order */
    ok(p != NULL, "import both members in reverse order");
    if (!p)
        return;
    read_all(p, &good, &eio, &wrong);
    ok(good == (int)(VOLSIZE / BS) && eio == 0 && wrong == 0, "all data reads back (%d/%d/%d)",
       good, eio, wrong);
    bs_pool_close(p);
}

static void test_heal(const struct blocks *blk, uint64_t data_start)
{
    struct berr e = {0};
    /* garbage over the first half of every third block (data and
     * indirects) of leaf b, and random ranges within blocks */
    uint64_t seed = 7, damaged = 0;
    uint8_t junk[65536];
    for (size_t i = 0; i < blk->n; i += 3) {
        size_t len = MIN(blk->asize[i] / 2 + 1, sizeof junk);
        random_bytes(junk, len, &seed);
        raw_pwrite(pb, junk, len, data_start + blk->off[i]);
        damaged++;
    }
    for (int k = 0; k < 20; k++) {
        size_t i = xrand(&seed) % blk->n, len = 1 + xrand(&seed) % 512;
        uint64_t at = xrand(&seed) % (blk->asize[i] - len);
        random_bytes(junk, len, &seed);
        raw_pwrite(pb, junk, len, data_start + blk->off[i] + at);
    }
    bs_pool *p = import2(pa, pb);
    ok(p != NULL, "import with one leaf damaged");
    if (!p)
        return;
    int good, eio, wrong;
    read_all(p, &good, &eio, &wrong);
    struct bs_pool_stats st;
    leaf_stats(p, &st);
    ok(good == (int)(VOLSIZE / BS) && eio == 0 && wrong == 0,
       "reads return correct data (%d good, %d EIO, %d wrong)", good, eio, wrong);
    ok(st.vdevs[1].checksum_errors > 0 && st.vdevs[0].checksum_errors == 0,
       "checksum errors counted on the damaged leaf only (%llu, %llu)",
       (unsigned long long)st.vdevs[0].checksum_errors,
       (unsigned long long)st.vdevs[1].checksum_errors);
    ok(st.vdevs[1].repaired_bytes > 0 && st.vdevs[0].repaired_bytes == 0,
       "reads rewrote bad copies on the damaged leaf (%llu bytes)",
       (unsigned long long)st.vdevs[1].repaired_bytes);
    uint64_t before = st.vdevs[1].checksum_errors;
    scrub_now(p, &st);
    ok(strcmp(st.scan.state, "finished") == 0 && st.scan.errors == 0 && st.scan.repaired > 0,
       "scrub repairs the rest: %s, %llu bytes repaired, %llu errors", st.scan.state,
       (unsigned long long)st.scan.repaired, (unsigned long long)st.scan.errors);
    ok(st.scan.examined >= st.scan.total * 9 / 10 && st.scan.examined <= st.scan.total,
       "scrub examined %llu of %llu allocated bytes", (unsigned long long)st.scan.examined,
       (unsigned long long)st.scan.total);
    diag("scrub rate %.1f MB/s", st.scan.rate / 1e6);
    ok(st.vdevs[1].checksum_errors > before, "scrub counted the copies it found bad");
    bool all_same = true;
    for (size_t i = 0; i < blk->n; i++)
        all_same &= same_bytes(data_start + blk->off[i], blk->psize[i]);
    /* (the padding after psize is not covered by the checksum: damage
     * there is harmless and stays) */
    ok(all_same, "after the scrub both leaves hold identical copies of all %zu blocks", blk->n);
    before = st.vdevs[1].checksum_errors;
    scrub_now(p, &st);
    ok(strcmp(st.scan.state, "finished") == 0 && st.scan.repaired == 0 && st.scan.errors == 0 &&
           st.vdevs[1].checksum_errors == before,
       "a second scrub finds nothing (%llu repaired)", (unsigned long long)st.scan.repaired);
    ok(bs_pool_check(p, &e) == 0, "check passes: %s", e.msg);
    (void)damaged;
    bs_pool_close(p);
}

static int count_err(const struct bs_pool_error *er, void *opaque)
{
    uint64_t *want = opaque;
    if (strcmp(er->dataset, "vol") == 0 && strcmp(er->what, "data") == 0 && er->offset == want[0])
        want[1]++;
    return 0;
}

static void test_both_damaged(const struct blocks *blk, uint64_t data_start)
{
    struct berr e = {0};
    /* one data block bad on both leaves: EIO for exactly it */
    size_t i = 0;
    while (i < blk->n && (blk->blkid[i] == UINT64_MAX || blk->blkid[i] < 10))
        i++;
    uint8_t junk[512];
    uint64_t seed = 99;
    random_bytes(junk, sizeof junk, &seed);
    raw_pwrite(pa, junk, sizeof junk, data_start + blk->off[i]);
    raw_pwrite(pb, junk, sizeof junk, data_start + blk->off[i]);
    bs_pool *p = import2(pa, pb);
    if (!p) {
        ok(0, "import");
        return;
    }
    int good, eio, wrong;
    read_all(p, &good, &eio, &wrong);
    ok(eio == 1 && wrong == 0 && good == (int)(VOLSIZE / BS) - 1,
       "both copies bad: EIO for that block only (%d good, %d EIO, %d wrong)", good, eio, wrong);
    struct bs_pool_stats st;
    scrub_now(p, &st);
    uint64_t want[2] = { blk->blkid[i] * BS, 0 };
    int n = bs_pool_errors(p, count_err, want);
    ok(st.scan.errors == 1 && n == 1 && want[1] == 1,
       "the scrub names it: vol at offset %llu (%d errors)", (unsigned long long)want[0], n);
    /* overwriting the block cures it */
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    bs_vol_pwrite(v, model + want[0], BS, want[0], 0);
    bs_vol_flush(v);
    bs_vol_close(v);
    read_all(p, &good, &eio, &wrong);
    ok(eio == 0 && wrong == 0, "rewritten, it reads back");
    bs_pool_close(p);
}

static void test_missing(void)
{
    struct berr e = {0};
    bs_pool *p = import2(pb, NULL);
    ok(p != NULL, "import with one member missing");
    if (!p)
        return;
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.state, "DEGRADED") == 0 && strcmp(st.vdevs[0].state, "UNAVAIL") == 0 &&
           strcmp(st.vdevs[1].state, "ONLINE") == 0,
       "pool DEGRADED, the missing leaf UNAVAIL (%s, %s)", st.state, st.vdevs[0].state);
    int good, eio, wrong;
    read_all(p, &good, &eio, &wrong);
    ok(eio == 0 && wrong == 0, "degraded pool serves all data");
    /* write while degraded: a changed region the missing leaf lacks */
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    uint64_t seed = 1234;
    random_bytes(model + 4 * MiB, 2 * MiB, &seed);
    ok(bs_vol_pwrite(v, model + 4 * MiB, 2 * MiB, 4 * MiB, 0) == 0 && bs_vol_flush(v) == 0,
       "writes go on while degraded");
    bs_vol_close(v);
    ok(bs_pool_check(p, &e) == 0, "check passes: %s", e.msg);
    bs_pool_close(p);
    p = import2(pa, pb);
    ok(p != NULL, "import with the member back");
    if (!p)
        return;
    bs_pool_stats(p, &st);
    ok(st.vdevs[0].stale && strcmp(st.state, "DEGRADED") == 0,
       "the member that was away is stale, the pool DEGRADED (%s)", st.state);
    read_all(p, &good, &eio, &wrong);
    ok(eio == 0 && wrong == 0, "all data correct (stale copies healed or skipped)");
    scrub_now(p, &st);
    bs_pool_stats(p, &st);
    ok(!st.vdevs[0].stale && strcmp(st.state, "ONLINE") == 0 && st.scan.errors == 0,
       "after a scrub the pool is ONLINE (%s, repaired %llu)", st.state,
       (unsigned long long)st.scan.repaired);
    bs_pool_close(p);
    /* only the stale-then-repaired leaf: everything must be there */
    p = import2(pa, NULL);
    read_all(p, &good, &eio, &wrong);
    ok(p && eio == 0 && wrong == 0, "the repaired leaf alone holds all data");
    bs_pool_close(p);
}

static void test_faults(void)
{
    struct berr e = {0};
    bs_pool *p = import2(pa, pb);
    if (!p) {
        ok(0, "import");
        return;
    }
    ok(bs_pool_debug(p, "vdev=1 fail_writes=on", &e) == 0, "leaf 1 fails writes");
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    uint64_t seed = 555;
    random_bytes(model, MiB, &seed);
    ok(bs_vol_pwrite(v, model, MiB, 0, 0) == 0 && bs_vol_flush(v) == 0,
       "writes succeed with one failing leaf");
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.vdevs[1].state, "FAULTED") == 0 && strcmp(st.state, "DEGRADED") == 0 &&
           st.vdevs[1].write_errors > 0,
       "the leaf is FAULTED, the pool DEGRADED (%s, %s)", st.vdevs[1].state, st.state);
    random_bytes(model + MiB, MiB, &seed);
    ok(bs_vol_pwrite(v, model + MiB, MiB, MiB, 0) == 0 && bs_vol_flush(v) == 0,
       "more writes on the remaining leaf");
    bs_vol_close(v);
    bs_pool_debug(p, "vdev=1 reset", &e);
    ok(bs_pool_online(p, pb, &e) == 0, "online it again: %s", e.msg);
    bs_pool_stats(p, &st);
    ok(strcmp(st.vdevs[1].state, "ONLINE") == 0 && st.vdevs[1].stale, "back ONLINE, stale");
    scrub_now(p, &st);
    ok(strcmp(st.state, "ONLINE") == 0 && st.scan.repaired > 0, "scrub resilvers it (%llu bytes)",
       (unsigned long long)st.scan.repaired);
    /* reads: a leaf failing every read is worked around */
    ok(bs_pool_debug(p, "vdev=0 fail_reads=on", &e) == 0, "leaf 0 fails reads");
    bs_pool_close(p);
    p = import2(pa, pb);
    if (!p)
        return;
    bs_pool_debug(p, "vdev=0 fail_reads=on", &e);
    int good, eio, wrong;
    read_all(p, &good, &eio, &wrong);
    bs_pool_stats(p, &st);
    ok(eio == 0 && wrong == 0 && st.vdevs[0].read_errors > 0,
       "reads served by leaf 1 (%llu read errors on leaf 0)",
       (unsigned long long)st.vdevs[0].read_errors);
    bs_pool_debug(p, "reset", &e);
    /* corrupt knob */
    ok(bs_pool_debug(p, "vdev=0 corrupt=0:1048576", &e) == 0, "corrupt knob: %s", e.msg);
    ok(bs_pool_debug(p, "vdev=0 corrupt=zz", &e) == -EINVAL, "bad corrupt value: %s", e.msg);
    ok(bs_pool_debug(p, "vdev=7 reset", &e) == -EINVAL, "bad leaf index: %s", e.msg);
    scrub_now(p, &st);
    ok(st.scan.errors == 0, "scrub after the corrupt knob: %llu repaired, no errors",
       (unsigned long long)st.scan.repaired);
    /* offline / online */
    ok(bs_pool_offline(p, pa, &e) == 0, "offline leaf 0: %s", e.msg);
    ok(bs_pool_offline(p, "1", &e) == -EBUSY, "the last copy cannot go offline: %s", e.msg);
    bs_pool_stats(p, &st);
    ok(strcmp(st.vdevs[0].state, "OFFLINE") == 0 && strcmp(st.state, "DEGRADED") == 0,
       "OFFLINE, pool DEGRADED");
    read_all(p, &good, &eio, &wrong);
    ok(eio == 0 && wrong == 0, "reads while a leaf is offline");
    ok(bs_pool_online(p, "0", &e) == 0, "online by index: %s", e.msg);
    scrub_now(p, &st);
    ok(strcmp(st.state, "ONLINE") == 0, "ONLINE after scrub");
    ok(bs_pool_check(p, &e) == 0, "check passes: %s", e.msg);
    bs_pool_close(p);
}

static void test_scrub_control(void)
{
    struct berr e = {0};
    bs_pool *p = import2(pa, pb);
    if (!p) {
        ok(0, "import");
        return;
    }
    ok(bs_pool_scrub(p, BS_SCRUB_PAUSE, &e) == -ENOENT, "pause without a scrub: ENOENT");
    ok(bs_pool_scrub(p, BS_SCRUB_START, &e) == 0, "start");
    int r = bs_pool_scrub(p, BS_SCRUB_PAUSE, &e);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok((r == 0 && strcmp(st.scan.state, "paused") == 0) ||
           (r == -ENOENT && strcmp(st.scan.state, "finished") == 0),
       "pause: %s", st.scan.state);
    ok(bs_pool_scrub(p, BS_SCRUB_START, &e) == 0 || strcmp(st.scan.state, "finished") == 0,
       "resume");
    bs_pool_scrub_wait(p);
    bs_pool_stats(p, &st);
    ok(strcmp(st.scan.state, "finished") == 0 && st.scan.errors == 0 &&
           st.scan.examined <= st.scan.total,
       "finished after resume (%llu/%llu)", (unsigned long long)st.scan.examined,
       (unsigned long long)st.scan.total);
    ok(bs_pool_scrub(p, BS_SCRUB_START, &e) == 0, "start again");
    r = bs_pool_scrub(p, BS_SCRUB_STOP, &e);
    bs_pool_stats(p, &st);
    ok((r == 0 && strcmp(st.scan.state, "canceled") == 0) || strcmp(st.scan.state, "finished") == 0,
       "stop: %s", st.scan.state);
    /* a scrub running while the pool is written and closed */
    ok(bs_pool_scrub(p, BS_SCRUB_START, &e) == 0, "start before close");
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    for (int i = 0; i < 8; i++)
        bs_vol_pwrite(v, model + (uint64_t)i * MiB, MiB, (uint64_t)i * MiB, 0);
    bs_vol_flush(v);
    bs_vol_close(v);
    bs_pool_scrub_wait(p);
    ok(bs_pool_check(p, &e) == 0, "check after scrub + writes: %s", e.msg);
    bs_pool_close(p);
}

static void test_spec_errors(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    const char *one[] = { "mirror", pc };
    ok(bs_pool_create("x", one, 2, 128 * MiB, NULL, &p, &e) == -EINVAL, "mirror of one: %s",
       e.msg);
    const char *two[] = { pa, pc };
    /* a plain list is a stripe of single-device tops (test-topvdev.c); here
     * it is refused because a member still holds pool 'm' */
    ok(bs_pool_create("x", two, 2, 128 * MiB, NULL, &p, &e) == -EEXIST, "plain list: %s",
       e.msg);
    const char *rz[] = { "raidz4", pa, pb, pc };
    ok(bs_pool_create("x", rz, 4, 128 * MiB, NULL, &p, &e) == -EINVAL, "raidz4: %s", e.msg);
    const char *dup[] = { "mirror", pc, pc };
    ok(bs_pool_create("x", dup, 3, 128 * MiB, NULL, &p, &e) == -EINVAL, "same file twice: %s",
       e.msg);
    const char *used[] = { "mirror", pa, pc };
    ok(bs_pool_create("x", used, 3, 128 * MiB, NULL, &p, &e) == -EEXIST,
       "a member holds a pool: %s", e.msg);
    /* a single pool and a leaf of the mirror do not import together */
    const char *s1[] = { pc };
    ok(bs_pool_create("s", s1, 1, 128 * MiB, NULL, &p, &e) == 0, "single pool");
    bs_pool_close(p);
    p = NULL;
    const char *mix[] = { pa, pc };
    ok(bs_pool_import(mix, 2, NULL, &p, &e) == -EINVAL && !p, "members of two pools: %s", e.msg);
    ok(bs_pool_import(s1, 1, NULL, &p, &e) == 0, "the single pool still imports");
    bs_pool_close(p);
}

int main(void)
{
    pa = strdup(tmp_path("a.img"));
    pb = strdup(tmp_path("b.img"));
    pc = strdup(tmp_path("c.img"));
    model = malloc(VOLSIZE);
    static struct blocks blk;
    uint64_t data_start = 0;
    test_create(&blk, &data_start);
    if (blk.n) {
        test_heal(&blk, data_start);
        test_both_damaged(&blk, data_start);
    }
    test_missing();
    test_faults();
    test_scrub_control();
    test_spec_errors();
    free(model);
    tmp_cleanup();
    return done_testing();
}
