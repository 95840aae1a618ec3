/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Redundancy loose ends: a block no copy can repair is counted on the
 * top-level vdev that holds it (pools of two mirrors and of two raidz1),
 * not on top 0; a scrub clears the stale marks and DTLs of leaves past the
 * 32nd of the pool (three mirrors of 12); a batched resilver of a raidz1
 * interrupted by a power cut resumes at the reimport from the position in
 * the labels, finishes, and leaves a pool whose scrub finds nothing and
 * whose data all compares; a resilver that meets blocks no copy can give
 * copies all the others and reports those; a pool on one block device
 * (a loop device, where one can be made) attached a second. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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
#define VOLSIZE (24 * MiB)
#define NPATH 40

#define okb(cond, ...) (ok(cond, __VA_ARGS__), (cond))

static uint8_t *model;
static char paths[NPATH][512]; /* leaf files: tmp_paths(paths, n, tag) */

static bool all_good(bs_pool *p, const char *what)
{
    return vol_reads_back(p, model, VOLSIZE, BS, what);
}

/* A pool over spec (files of `size` bytes), a volume written with model. */
static bs_pool *make_pool(const char *const *spec, size_t n, uint64_t size, const char *what)
{
    struct test_pool tp = {.name = "rd", .spec = spec, .nspec = n, .filesize = size,
                           .volsize = VOLSIZE, .volblocksize = BS, .uncompressed = true,
                           .fill = model, .fill_seed = 7};
    return test_pool_create(&tp, NULL, what);
}

/* Two tops of `kind` with `w` leaves each; every leaf of top 1 damaged over
 * its data area's first 48 MiB: the blocks there cannot be repaired, and
 * each failed read counts on top 1 only. */
static void test_cksum_top(const char *kind, unsigned w)
{
    struct berr e = {0};
    char tag[32];
    snprintf(tag, sizeof tag, "ck-%s", kind);
    tmp_paths(paths, 2 * w, tag);
    const char *spec[16];
    size_t n = vdev_spec(spec, kind, 2, w, paths);
    bs_pool *p = make_pool(spec, n, 96 * MiB, tag);
    if (!p)
        return;
    ok(bs_pool_export(p, false, &e) == 0, "%s: export (nothing cached)", tag);
    p = import_paths(paths, NULL, 2 * w, &e);
    if (!okb(p != NULL, "%s: import: %s", tag, e.msg))
        return;
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(st.ntops == 2 && st.tops[1].first_leaf == w, "%s: two tops of %u leaves", tag, w);
    bool dmg = true;
    for (unsigned i = 0; i < w; i++) {
        char knob[64];
        snprintf(knob, sizeof knob, "vdev=%u corrupt=%llu:%llu", w + i, (unsigned long long)(2 * MiB),
                 (unsigned long long)(4 * MiB));
        dmg &= bs_pool_debug(p, knob, &e) == 0;
    }
    ok(dmg, "%s: every leaf of top 1 damaged: %s", tag, e.msg);
    int good, eio, wrong;
    vol_compare(p, "vol", model, VOLSIZE, BS, &good, &eio, &wrong);
    ok(eio > 0 && good > 0 && wrong == 0,
       "%s: blocks on top 1 fail with EIO, those on top 0 read (%d good, %d EIO, %d wrong)", tag,
       good, eio, wrong);
    bs_pool_stats(p, &st);
    uint64_t leaves0 = 0;
    for (unsigned i = 0; i < w; i++)
        leaves0 += st.vdevs[i].checksum_errors;
    ok(st.tops[0].checksum_errors == 0 && leaves0 == 0,
       "%s: nothing counted on top 0 (%llu, its leaves %llu)", tag,
       (unsigned long long)st.tops[0].checksum_errors, (unsigned long long)leaves0);
    ok(st.tops[1].checksum_errors >= (uint64_t)eio,
       "%s: top 1 counts the %d blocks no copy verified (%llu)", tag, eio,
       (unsigned long long)st.tops[1].checksum_errors);
    pool_abandon(p);
}

/* Three mirrors of 12: leaves 0..35.  Two leaves marked stale with a DTL
 * (as one back from an outage whose resilver has not cleared them): leaf 5
 * and leaf 35, past the 32nd.  A full scrub verifies every copy, so both
 * lose the marks. */
static void test_stale_many(void)
{
    struct berr e = {0};
    tmp_paths(paths, 36, "many");
    const char *spec[39];
    size_t n = vdev_spec(spec, "mirror", 3, 12, paths);
    bs_pool *p = make_pool(spec, n, 64 * MiB, "3 mirrors of 12");
    if (!p)
        return;
    struct berr se = {0};
    ok(bs_pool_sync(p, &se) == 0 && pool_nleaves(p) == 36, "36 leaves");
    uint64_t txg = p->txg.committed_txg;
    const unsigned mark[] = {5, 35};
    for (unsigned k = 0; k < 2; k++) {
        struct vdev *l = pool_leaf(p, mark[k], NULL, NULL);
        dtl_add(l, txg > 2 ? txg - 2 : 1, txg);
        atomic_store(&l->stale, true);
    }
    /* leaf 35 is past what bs_pool_stats lists: read the leaf itself */
    struct vdev *l5 = pool_leaf(p, 5, NULL, NULL), *l35 = pool_leaf(p, 35, NULL, NULL);
    ok(atomic_load(&l5->stale) && atomic_load(&l35->stale) && atomic_load(&l35->dtl_hi) == txg,
       "leaves 5 and 35 stale with a DTL");
    scrub_clean(p, "36 leaves", true);
    ok(!atomic_load(&l5->stale) && atomic_load(&l5->dtl_hi) == 0,
       "leaf 5: not stale, no DTL after it");
    ok(!atomic_load(&l35->stale) && atomic_load(&l35->dtl_hi) == 0,
       "leaf 35 (past the 32nd): not stale, no DTL after it (stale %d, DTL hi %llu)",
       atomic_load(&l35->stale), (unsigned long long)atomic_load(&l35->dtl_hi));
    all_good(p, "36 leaves");
    ok(bs_pool_export(p, false, &e) == 0, "export");
    p = import_paths(paths, NULL, 36, &e);
    if (okb(p != NULL, "reimport: %s", e.msg)) {
        struct bs_pool_stats st;
        bs_pool_stats(p, &st);
        l35 = pool_leaf(p, 35, NULL, NULL);
        ok(!atomic_load(&l35->stale) && atomic_load(&l35->dtl_hi) == 0 &&
               strcmp(st.state, "ONLINE") == 0,
           "the labels no longer call leaf 35 stale (%s)", st.state);
    }
    bs_pool_close(p);
}

/* A raidz1 of 4, member 1 offline while 12 MiB are rewritten, online: the
 * batched resilver is cut by a power cut after it saved a position. */
static void test_crash_raidz(void)
{
    struct berr e = {0};
    tmp_paths(paths, 4, "crash");
    const char *spec[] = {"raidz1", paths[0], paths[1], paths[2], paths[3]};
    bs_pool *p = make_pool(spec, 5, 96 * MiB, "raidz1 of 4");
    if (!p)
        return;
    ok(bs_pool_offline(p, "1", &e) == 0, "offline member 1: %s", e.msg);
    bs_vol *v = NULL;
    uint64_t seed = 11;
    random_bytes(model, 12 * MiB, &seed);
    struct berr se = {0};
    ok(bs_vol_open(p, "vol", &v, &e) == 0 && bs_vol_pwrite(v, model, 12 * MiB, 0, 0) == 0 &&
           bs_vol_flush(v) == 0 && bs_pool_sync(p, &se) == 0,
       "12 MiB rewritten while it is away");
    bs_vol_close(v);
    ok(bs_pool_debug(p, "resilver_delay_ms=3", &e) == 0, "slow resilver: %s", e.msg);
    ok(bs_pool_online(p, "1", &e) == 0, "online: %s", e.msg);
    struct bs_pool_stats st;
    uint64_t t0 = now_ns();
    do {
        usleep(50000);
        bs_pool_stats(p, &st);
    } while ((st.scan.resilvered < 5 * MiB / 2 || now_ns() - t0 < 1500000000ull) &&
             strcmp(st.scan.state, "scanning") == 0 && now_ns() - t0 < 60000000000ull);
    uint64_t before = st.scan.resilvered;
    ok(strcmp(st.scan.state, "scanning") == 0 && before > 0,
       "resilver in progress: %llu bytes", (unsigned long long)before);
    pool_abandon(p); /* power cut */
    p = import_paths(paths, NULL, 4, &e);
    if (!okb(p != NULL, "reimport after the cut: %s", e.msg))
        return;
    bool done = bs_pool_resilver_wait(p);
    bs_pool_stats(p, &st);
    /* member 1's columns of the 12 MiB: about 4 MiB in all, what a resilver
     * started over would copy; resumed at most a second (at the knob's pace
     * about 1.3 MB) behind the 2.5 MiB copied before the cut, it copies less */
    uint64_t rs = st.scan.resilvered;
    ok(done && strcmp(st.scan.func, "resilver") == 0 && st.scan.errors == 0 && rs > 0 &&
           rs < 4 * MiB,
       "the resilver resumed and finished: %llu more bytes (%llu before the cut)",
       (unsigned long long)rs, (unsigned long long)before);
    ok(strcmp(st.state, "ONLINE") == 0 && !st.vdevs[1].stale && st.vdevs[1].dtl_hi == 0,
       "ONLINE, member 1 not stale, no DTL (%s)", st.state);
    all_good(p, "after the resumed resilver");
    scrub_clean(p, "after the resumed resilver", true);
    ok(bs_pool_export(p, false, &e) == 0, "export");
    /* member 1 must hold its share now: without member 0 */
    const char *three[] = {paths[1], paths[2], paths[3]};
    p = NULL;
    ok(bs_pool_import(three, 3, NULL, &p, &e) == 0, "import without member 0: %s", e.msg);
    if (p)
        all_good(p, "member 1 in place of member 0");
    bs_pool_close(p);
}

/* A replace in a mirror of 2 whose both copies of some blocks are damaged:
 * the batched resilver copies every other block (those beside a damaged one
 * in a run one by one), counts each damaged one as an error and keeps the
 * new member's DTL (not done); reads of the good blocks stay right. */
static void test_resilver_damaged(void)
{
    struct berr e = {0};
    tmp_paths(paths, 3, "dmg");
    const char *spec[] = {"mirror", paths[0], paths[1]};
    bs_pool *p = make_pool(spec, 3, 96 * MiB, "mirror of 2");
    if (!p)
        return;
    ok(bs_pool_export(p, false, &e) == 0, "damaged: export (nothing cached)");
    p = import_paths(paths, NULL, 2, &e);
    if (!okb(p != NULL, "damaged: import: %s", e.msg))
        return;
    /* 64 KiB in the middle of the data written: 4 or 5 blocks (as they lie)
     * on both copies */
    bool dmg = bs_pool_debug(p, "vdev=0 corrupt=8388608:65536", &e) == 0 &&
               bs_pool_debug(p, "vdev=1 corrupt=8388608:65536", &e) == 0;
    ok(dmg, "damaged: both copies of 64 KiB damaged: %s", e.msg);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    uint64_t alloc = st.raw_allocated;
    ok(bs_pool_replace(p, paths[1], paths[2], false, &e) == 0, "damaged: replace 1 by 2: %s",
       e.msg);
    bool done = bs_pool_resilver_wait(p);
    bs_pool_stats(p, &st);
    int good, eio, wrong;
    vol_compare(p, "vol", model, VOLSIZE, BS, &good, &eio, &wrong);
    ok(!done && strcmp(st.scan.func, "resilver") == 0 && st.scan.errors == (uint64_t)eio &&
           eio >= 4 && eio <= 5 && wrong == 0 && good == (int)(VOLSIZE / BS) - eio,
       "damaged: the resilver reports the %d unreadable blocks (%llu errors, %d good, %d "
       "wrong)", eio, (unsigned long long)st.scan.errors, good, wrong);
    ok(st.scan.resilvered == alloc - (uint64_t)eio * BS,
       "damaged: every other block copied (%llu of %llu bytes)",
       (unsigned long long)st.scan.resilvered, (unsigned long long)alloc);
    ok(st.nvdevs == 3 && st.vdevs[2].dtl_hi > 0,
       "damaged: the new member keeps its DTL, the old one stays (%zu devices)",
       (size_t)st.nvdevs);
    pool_abandon(p);
}

/* A loop device over a new file of `size` bytes; "" when none can be made
 * (not root, no loop devices). */
static void make_loop(const char *file, uint64_t size, char *dev, size_t len)
{
    dev[0] = 0;
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int r = ftruncate(fd, (off_t)size);
    close(fd);
    if (r != 0 || getuid() != 0 || access("/dev/loop-control", F_OK) != 0)
        return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "PATH=/usr/sbin:/sbin:$PATH losetup -f --show --direct-io=on %s "
             "2>/dev/null", file);
    FILE *f = popen(cmd, "r");
    if (!f)
        return;
    if (!fgets(dev, (int)len, f))
        dev[0] = 0;
    pclose(f);
    dev[strcspn(dev, "\n")] = 0;
}

static void drop_loop(const char *dev)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "PATH=/usr/sbin:/sbin:$PATH losetup -d %s", dev);
    if (dev[0] && system(cmd) != 0)
        diag("losetup -d %s failed", dev);
}

/* A pool on one block device becomes a mirror by attach of a second: the
 * batched resilver fills it, everything reads back, a scrub is clean. */
static void test_attach_blockdev(void)
{
    struct berr e = {0};
    char dev[2][64];
    tmp_paths(paths, 2, "bd");
    make_loop(paths[0], 96 * MiB, dev[0], sizeof dev[0]);
    make_loop(paths[1], 96 * MiB, dev[1], sizeof dev[1]);
    if (!dev[0][0] || !dev[1][0]) {
        ok(1, "# SKIP attach to a block device: cannot make loop devices here");
        drop_loop(dev[0]);
        drop_loop(dev[1]);
        return;
    }
    const char *spec[] = {dev[0]};
    bs_pool *p = make_pool(spec, 1, 0, "one block device");
    if (p) {
        ok(bs_pool_attach(p, dev[0], dev[1], false, &e) == 0, "attach a second: %s", e.msg);
        bool done = bs_pool_resilver_wait(p);
        struct bs_pool_stats st;
        bs_pool_stats(p, &st);
        ok(done && pool_nleaves(p) == 2 && st.scan.resilvered >= st.raw_allocated,
           "resilvered: %llu bytes, the allocation %llu", (unsigned long long)st.scan.resilvered,
           (unsigned long long)st.raw_allocated);
        all_good(p, "mirror of block devices");
        scrub_clean(p, "mirror of block devices", true);
        bs_pool_close(p);
    }
    drop_loop(dev[0]);
    drop_loop(dev[1]);
}

int main(void)
{
    model = malloc(VOLSIZE);
    test_cksum_top("mirror", 2);
    test_cksum_top("raidz1", 3);
    test_stale_many();
    test_crash_raidz();
    test_resilver_damaged();
    test_attach_blockdev();
    free(model);
    tmp_cleanup();
    return done_testing();
}
