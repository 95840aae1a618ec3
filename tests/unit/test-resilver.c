/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Device replacement and resilver: a deleted member of a mirror and of
 * raidz1/2/3 replaced by a new file (the resilver writes only allocated
 * bytes, then a scrub finds nothing and the new members alone hold the
 * data); a member offline while writes go on, back online, or missing at
 * one import and back at the next (the resilver copies only what was written
 * meanwhile: its DTL); a replace of a healthy member (kept, "replacing",
 * until the new one is resilvered) with a crash in the middle of the
 * resilver (the reimport resumes it where it got, completes it, detaches the
 * old member); crashes between the labels of a tree change and its txg (the
 * old tree, or the new one from the old tree's last uberblock, imports);
 * attach to a single device and to a mirror, detach (refused when it would
 * lose the last valid copy). */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 16384u
#define VOLSIZE (24 * MiB)

/* ok() that also yields the condition (side-effect free conditions only) */
#define okb(cond, ...) (ok(cond, __VA_ARGS__), (cond))

static uint8_t *model;
static char paths[8][512]; /* leaf files: tmp_paths(paths, 8, tag) */

static const char *leaf_path(unsigned i)
{
    return paths[i];
}

static bool all_good(bs_pool *p, const char *what)
{
    return vol_reads_back(p, model, VOLSIZE, BS, what);
}

/* Create a pool over spec, a volume written with model; stays open. */
static bs_pool *make_pool(const char *const *spec, size_t n)
{
    struct test_pool tp = {.name = "rs", .spec = spec, .nspec = n, .filesize = 128 * MiB,
                           .volsize = VOLSIZE, .volblocksize = BS, .fill = model, .fill_seed = 99};
    return test_pool_create(&tp, NULL, spec[0]);
}

/* Wait for the resilver; its bytes (0 if the last scan is not one). */
static uint64_t resilver_wait(bs_pool *p, struct bs_pool_stats *st)
{
    bool done = bs_pool_resilver_wait(p);
    bs_pool_stats(p, st);
    ok(done && strcmp(st->scan.func, "resilver") == 0 && strcmp(st->scan.state, "finished") == 0 &&
           st->scan.errors == 0,
       "the resilver finished (%s %s, %llu errors)", st->scan.func, st->scan.state,
       (unsigned long long)st->scan.errors);
    return strcmp(st->scan.func, "resilver") == 0 ? st->scan.resilvered : 0;
}

/* Delete `nrep` members of a layout, import DEGRADED, replace each by a new
 * file; the resilver copies only allocated bytes; the new members hold
 * their part. */
static void test_replace(const char *layout, unsigned nleaf, unsigned nrep)
{
    struct berr e = {0};
    tmp_paths(paths, 8, layout);
    const char *spec[9];
    bs_pool *p = make_pool(spec, vdev_spec(spec, layout, 1, nleaf, paths));
    if (!p)
        return;
    ok(bs_pool_export(p, false, &e) == 0, "%s: export", layout);
    for (unsigned i = 0; i < nrep; i++)
        unlink(leaf_path(i));
    unsigned idx[8], n = 0;
    for (unsigned i = 0; i < nleaf; i++)
        idx[n++] = i;
    p = import_paths(paths, idx, n, &e);
    struct bs_pool_stats st;
    if (!okb(p != NULL, "%s: import with %u members deleted: %s", layout, nrep, e.msg))
        return;
    bs_pool_stats(p, &st);
    ok(strcmp(st.state, "DEGRADED") == 0, "%s: DEGRADED", layout);
    uint64_t allocated = st.raw_allocated;
    /* replace the missing members one by one by their missing-GUID names */
    for (unsigned i = 0; i < nrep; i++) {
        char newp[600], old[64];
        snprintf(newp, sizeof newp, "%s.new", leaf_path(i));
        snprintf(old, sizeof old, "%u", i);
        ok(bs_pool_replace(p, old, newp, false, &e) == 0, "%s: replace member %u by a new file: "
           "%s", layout, i, e.msg);
        bs_pool_resilver_wait(p); /* one at a time: each counted alone */
        bs_pool_stats(p, &st);
        uint64_t rs = st.scan.resilvered;
        /* mirror: the whole allocation once; raidz: this leaf's columns, a
         * 1/n share of the allocation give or take the rotation */
        uint64_t want = strcmp(layout, "mirror") == 0 ? allocated : allocated / nleaf;
        ok(strcmp(st.scan.state, "finished") == 0 && st.scan.errors == 0 && rs <= allocated &&
               rs >= want * 8 / 10 && rs <= want * 12 / 10 + MiB,
           "%s: resilvered %llu bytes of %llu allocated (expected about %llu)", layout,
           (unsigned long long)rs, (unsigned long long)allocated, (unsigned long long)want);
        ok(strcmp(st.vdevs[i].path, newp) == 0 && !st.vdevs[i].stale && st.vdevs[i].dtl_hi == 0,
           "%s: member %u is %s, not stale, no DTL", layout, i, st.vdevs[i].path);
    }
    bs_pool_stats(p, &st);
    ok(strcmp(st.state, "ONLINE") == 0, "%s: ONLINE after the replacements (%s)", layout,
       st.state);
    all_good(p, layout);
    scrub_clean(p, layout, true);
    ok(bs_pool_export(p, false, &e) == 0, "%s: export", layout);
    /* the new members with the fewest others: they must hold their part */
    for (unsigned i = 0; i < nrep; i++) {
        char newp[600];
        snprintf(newp, sizeof newp, "%s.new", leaf_path(i));
        snprintf(paths[i], sizeof paths[i], "%s", newp);
    }
    n = 0;
    unsigned need = strcmp(layout, "mirror") == 0 ? 1 : nleaf - nrep;
    for (unsigned i = 0; i < nleaf && n < need; i++)
        idx[n++] = i;
    p = import_paths(paths, idx, n, &e);
    if (okb(p != NULL, "%s: import the new members with the fewest old ones: %s", layout, e.msg))
        all_good(p, "the new members");
    bs_pool_close(p);
}

/* A member offline while 2 MiB are written: back online, the resilver
 * copies about that, far less than allocated. */
static void test_dtl(const char *layout, unsigned nleaf)
{
    struct berr e = {0};
    char tag[32];
    snprintf(tag, sizeof tag, "dtl-%s", layout);
    tmp_paths(paths, 8, tag);
    const char *spec[9];
    bs_pool *p = make_pool(spec, vdev_spec(spec, layout, 1, nleaf, paths));
    if (!p)
        return;
    ok(bs_pool_offline(p, "1", &e) == 0, "%s: offline member 1: %s", layout, e.msg);
    bs_vol *v = NULL;
    uint64_t seed = 5;
    random_bytes(model + 4 * MiB, 2 * MiB, &seed);
    ok(bs_vol_open(p, "vol", &v, &e) == 0 &&
           bs_vol_pwrite(v, model + 4 * MiB, 2 * MiB, 4 * MiB, 0) == 0 && bs_vol_flush(v) == 0,
       "%s: write 2 MiB while it is away", layout);
    bs_vol_close(v);
    struct berr se = {0};
    ok(bs_pool_sync(p, &se) == 0, "%s: sync", layout);
    /* a slow resilver: meanwhile reads must not use member 1 for the
     * blocks it missed (no checksum error on it, all data right) */
    ok(bs_pool_debug(p, "resilver_delay_ms=20", &e) == 0, "%s: slow resilver", layout);
    ok(bs_pool_online(p, "1", &e) == 0, "%s: online it: %s", layout, e.msg);
    struct bs_pool_stats st;
    all_good(p, "while member 1 resilvers");
    bs_pool_stats(p, &st);
    ok(strcmp(st.scan.state, "scanning") == 0 && st.vdevs[1].checksum_errors == 0 &&
           st.vdevs[1].dtl_hi > 0 && st.vdevs[1].resilvering,
       "%s: reads during the resilver skip member 1 for its DTL %llu..%llu (%llu checksum "
       "errors on it, scan %s)", layout, (unsigned long long)st.vdevs[1].dtl_lo,
       (unsigned long long)st.vdevs[1].dtl_hi, (unsigned long long)st.vdevs[1].checksum_errors,
       st.scan.state);
    bs_pool_debug(p, "resilver_delay_ms=0", &e);
    uint64_t rs = resilver_wait(p, &st);
    /* mirror: the 2 MiB of data plus the indirect and MOS blocks rewritten
     * with them; raidz: this leaf's columns of those */
    uint64_t data = strcmp(layout, "mirror") == 0 ? 2 * MiB : 2 * MiB / (nleaf - 1);
    ok(rs >= data && rs < data + 2 * MiB && rs < st.raw_allocated / 4,
       "%s: resilvered %llu bytes after 2 MiB written (%llu allocated)", layout,
       (unsigned long long)rs, (unsigned long long)st.raw_allocated);
    ok(strcmp(st.state, "ONLINE") == 0 && !st.vdevs[1].stale, "%s: ONLINE, not stale",
       layout);
    all_good(p, layout);
    scrub_clean(p, layout, true);
    ok(bs_pool_export(p, false, &e) == 0, "%s: export", layout);
    /* the member that was away, with the fewest others */
    unsigned idx[8], n = 0;
    idx[n++] = 1;
    unsigned need = strcmp(layout, "mirror") == 0 ? 1 : nleaf - 1;
    for (unsigned i = 0; n < need; i++)
        if (i != 1)
            idx[n++] = i;
    p = import_paths(paths, idx, n, &e);
    if (okb(p != NULL, "%s: import member 1 with the fewest others: %s", layout, e.msg))
        all_good(p, "the member that was away");
    bs_pool_close(p);
}

/* A member missing at one import, back at the next: resilvered for what
 * was written meanwhile only (its DTL from its older uberblocks). */
static void test_dtl_import(void)
{
    struct berr e = {0};
    tmp_paths(paths, 8, "dtlimp");
    const char *spec[] = { "raidz1", leaf_path(0), leaf_path(1), leaf_path(2) };
    bs_pool *p = make_pool(spec, 4);
    if (!p)
        return;
    ok(bs_pool_export(p, false, &e) == 0, "export");
    unsigned two[] = { 0, 1 }, all[] = { 0, 1, 2 };
    p = import_paths(paths, two, 2, &e);
    if (!okb(p != NULL, "import without member 2: %s", e.msg))
        return;
    bs_vol *v = NULL;
    uint64_t seed = 11;
    random_bytes(model + 8 * MiB, 2 * MiB, &seed);
    ok(bs_vol_open(p, "vol", &v, &e) == 0 &&
           bs_vol_pwrite(v, model + 8 * MiB, 2 * MiB, 8 * MiB, 0) == 0 && bs_vol_flush(v) == 0,
       "write 2 MiB while member 2 is missing");
    bs_vol_close(v);
    ok(bs_pool_export(p, false, &e) == 0, "export");
    p = import_paths(paths, all, 3, &e);
    if (!okb(p != NULL, "import with member 2 back: %s", e.msg))
        return;
    struct bs_pool_stats st;
    uint64_t rs = resilver_wait(p, &st);
    ok(rs >= MiB * 9 / 10 && rs < 2 * MiB && rs < st.raw_allocated / 8,
       "member 2 back at import: resilvered %llu bytes for 2 MiB written (its third: about "
       "1 MiB; %llu allocated)", (unsigned long long)rs, (unsigned long long)st.raw_allocated);
    all_good(p, "member back at import");
    scrub_clean(p, "member back at import", true);
    bs_pool_close(p);
}

/* A pool of two mirror tops: a member of top 1 offline while writes go on,
 * online: resilvered for what reached top 1 meanwhile; a member of top 1
 * replaced by a new file: resilvered for top 1's allocation only. */
static void test_two_tops(void)
{
    struct berr e = {0};
    tmp_paths(paths, 8, "tops");
    const char *spec[6];
    bs_pool *p = make_pool(spec, vdev_spec(spec, "mirror", 2, 2, paths));
    if (!p)
        return;
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(st.ntops == 2 && st.nvdevs == 4, "two mirror tops (%zu tops, %zu devices)", st.ntops,
       st.nvdevs);
    ok(bs_pool_offline(p, leaf_path(3), &e) == 0, "offline a member of top 1: %s", e.msg);
    bs_vol *v = NULL;
    uint64_t seed = 21;
    random_bytes(model + 12 * MiB, 4 * MiB, &seed);
    ok(bs_vol_open(p, "vol", &v, &e) == 0 &&
           bs_vol_pwrite(v, model + 12 * MiB, 4 * MiB, 12 * MiB, 0) == 0 && bs_vol_flush(v) == 0,
       "write 4 MiB over both tops");
    bs_vol_close(v);
    ok(bs_pool_online(p, leaf_path(3), &e) == 0, "online it: %s", e.msg);
    uint64_t rs = resilver_wait(p, &st);
    ok(rs > 0 && rs < 4 * MiB + MiB && rs < st.tops[1].raw_allocated / 2,
       "resilvered %llu bytes of top 1's %llu (4 MiB written over two tops)",
       (unsigned long long)rs, (unsigned long long)st.tops[1].raw_allocated);
    all_good(p, "two tops, after the DTL resilver");
    ok(bs_pool_replace(p, leaf_path(2), leaf_path(4), false, &e) == 0,
       "replace a member of top 1: %s", e.msg);
    rs = resilver_wait(p, &st);
    ok(rs > 0 && rs <= st.tops[1].raw_allocated && strcmp(st.vdevs[2].path, leaf_path(4)) == 0 &&
           st.nvdevs == 4,
       "resilvered %llu bytes = top 1's allocation %llu (not top 0's %llu), %s in place",
       (unsigned long long)rs, (unsigned long long)st.tops[1].raw_allocated,
       (unsigned long long)st.tops[0].raw_allocated, st.vdevs[2].path);
    all_good(p, "two tops, after the replace");
    scrub_clean(p, "two tops", true);
    ok(bs_pool_export(p, false, &e) == 0, "export");
    unsigned some[] = { 1, 4 };
    p = import_paths(paths, some, 2, &e);
    if (okb(p != NULL, "one member of each top, the new one of top 1: %s", e.msg))
        all_good(p, "two tops, one member each");
    bs_pool_close(p);
}

/* A crash in the middle of a resilver: the reimport resumes it. */
static void test_crash(void)
{
    struct berr e = {0};
    tmp_paths(paths, 8, "crash");
    const char *spec[] = { "mirror", leaf_path(0), leaf_path(1) };
    bs_pool *p = make_pool(spec, 3);
    if (!p)
        return;
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    uint64_t allocated = st.raw_allocated;
    ok(bs_pool_debug(p, "resilver_delay_ms=3", &e) == 0, "slow resilver knob: %s", e.msg);
    ok(bs_pool_replace(p, leaf_path(1), leaf_path(2), false, &e) == 0, "replace 1 by 2: %s",
       e.msg);
    /* past a third, and a second for the position to be saved */
    uint64_t t0 = now_ns();
    do {
        usleep(50000);
        bs_pool_stats(p, &st);
    } while ((st.scan.resilvered < allocated / 3 || now_ns() - t0 < 1500000000ull) &&
             strcmp(st.scan.state, "scanning") == 0 && now_ns() - t0 < 60000000000ull);
    uint64_t before = st.scan.resilvered;
    ok(strcmp(st.scan.state, "scanning") == 0 && before < allocated,
       "resilver in progress: %llu of %llu bytes", (unsigned long long)before,
       (unsigned long long)allocated);
    ok(st.nvdevs == 3 && st.vdevs[2].resilvering && strcmp(st.vdevs[2].replacing, leaf_path(1)) == 0 &&
           strcmp(st.vdevs[1].state, "ONLINE") == 0,
       "the old member stays while the new one resilvers, shown as replacing it (%s)",
       st.vdevs[2].replacing);
    pool_abandon(p); /* power cut */
    /* what the labels say after the crash: the new member still stale, its
     * DTL kept, and where the resilver got */
    struct vdev *lv = NULL;
    struct label_hdr lh;
    memset(&lh, 0, sizeof lh);
    bool read = vdev_open(leaf_path(0), 0, true, &lv, &e) == 0 &&
                label_read_hdr(lv, &lh, &e) == 0;
    ok(read && (lh.stale_mask & 4) && lh.dtl[2].hi > 0 && lh.rsv_valid &&
           lh.replace_old == lh.child_guids[1] && lh.replace_new == lh.child_guids[2],
       "labels after the crash: new member 2 stale, DTL %llu..%llu, resilver position "
       "%llu/%u/%llu, replacing member 1",
       (unsigned long long)lh.dtl[2].lo, (unsigned long long)lh.dtl[2].hi,
       (unsigned long long)lh.rsv_id, lh.rsv_part, (unsigned long long)lh.rsv_blk);
    vdev_close(lv);
    unsigned idx[] = { 0, 1, 2 };
    p = import_paths(paths, idx, 3, &e);
    if (!okb(p != NULL, "reimport after the crash: %s", e.msg))
        return;
    uint64_t rs = resilver_wait(p, &st);
    ok(rs > 0 && rs < allocated - MiB,
       "the resilver resumed: %llu more bytes (%llu before the crash, %llu allocated)",
       (unsigned long long)rs, (unsigned long long)before, (unsigned long long)allocated);
    ok(st.nvdevs == 2 && strcmp(st.vdevs[1].path, leaf_path(2)) == 0 && !st.vdevs[1].stale &&
           strcmp(st.state, "ONLINE") == 0,
       "ONLINE, the new member in place of the old one, not stale (%s)", st.vdevs[1].path);
    scrub_clean(p, "resumed resilver", true);
    ok(bs_pool_export(p, false, &e) == 0, "export");
    unsigned only[] = { 2 };
    p = import_paths(paths, only, 1, &e);
    if (okb(p != NULL, "import the new member alone: %s", e.msg))
        all_good(p, "the resumed member alone");
    bs_pool_close(p);
}

/* Crashes between the labels of a tree change and its txg.
 * A: a replace of a healthy mirror member (the new one attached, the old one
 * kept until resilvered): every member took the new labels, no txg yet: the
 * new tree imports from the last uberblock of the old one, the new member is
 * resilvered and the old one detached (the labels kept the pending replace).
 * B: a replace of an offline member (it leaves at once; its label stays
 * old): the old tree imports; and with only the new member's label written
 * (member 0's old label put back), member 0 and the new one import the old
 * tree too, the new device ignored. */
static void test_tree_crash(void)
{
    struct berr e = {0};
    tmp_paths(paths, 8, "treea");
    const char *spec[] = { "mirror", leaf_path(0), leaf_path(1) };
    bs_pool *p = make_pool(spec, 3);
    if (!p)
        return;
    struct bs_pool_stats st;
    ok(bs_pool_sync(p, &e) == 0, "A: sync");
    ok(bs_pool_debug(p, "tree_crash=on", &e) == 0, "A: tree crash knob");
    ok(bs_pool_replace(p, leaf_path(1), leaf_path(2), false, &e) < 0,
       "A: replace of a healthy member stops before its txg: %s", e.msg);
    pool_abandon(p);
    unsigned all[] = { 0, 1, 2 };
    p = import_paths(paths, all, 3, &e);
    if (okb(p != NULL, "A: import all three: %s", e.msg)) {
        all_good(p, "A: new tree from the old tree's last uberblock");
        resilver_wait(p, &st);
        ok(st.nvdevs == 2 && strcmp(st.vdevs[1].path, leaf_path(2)) == 0 &&
               strcmp(st.state, "ONLINE") == 0,
           "A: resilvered, the old member detached (%zu devices, %s, %s)", st.nvdevs,
           st.vdevs[1].path, st.state);
        all_good(p, "A: after the replace");
        ok(bs_pool_export(p, false, &e) == 0, "A: export");
    }
    unsigned one[] = { 2 };
    p = import_paths(paths, one, 1, &e);
    if (okb(p != NULL, "A: the new member alone: %s", e.msg))
        all_good(p, "A: the new member alone");
    bs_pool_close(p);

    tmp_paths(paths, 8, "treeb");
    p = make_pool(spec, 3);
    if (!p)
        return;
    ok(bs_pool_offline(p, leaf_path(1), &e) == 0, "B: member 1 offline: %s", e.msg);
    ok(bs_pool_sync(p, &e) == 0, "B: sync");
    /* the label headers of member 0 as they are before the replace */
    uint64_t dev = p->top_hdr[0].dev_size, at[4] = { 0, 256 << 10, dev - (512 << 10), dev - (256 << 10) };
    static uint8_t saved[4][16384];
    int fd = open(leaf_path(0), O_RDWR | O_CLOEXEC);
    for (int i = 0; i < 4; i++)
        ok(pread(fd, saved[i], sizeof saved[i], (off_t)at[i]) == (ssize_t)sizeof saved[i],
           "B: save label %d of member 0", i);
    ok(bs_pool_debug(p, "tree_crash=on", &e) == 0, "B: tree crash knob");
    ok(bs_pool_replace(p, leaf_path(1), leaf_path(2), false, &e) < 0,
       "B: replace of an offline member stops before its txg: %s", e.msg);
    pool_abandon(p);
    p = import_paths(paths, all, 3, &e);
    if (okb(p != NULL, "B: import all three: %s", e.msg)) {
        bs_pool_stats(p, &st);
        ok(st.nvdevs == 2 && strcmp(st.vdevs[1].path, leaf_path(1)) == 0,
           "B: the old tree is in force (%zu devices, %s)", st.nvdevs, st.vdevs[1].path);
        all_good(p, "B: old tree");
        resilver_wait(p, &st); /* member 1 missed the txg after its offline */
    }
    pool_abandon(p);
    /* only the new member's label written: member 0's old one put back */
    for (int i = 0; i < 4; i++)
        ok(pwrite(fd, saved[i], sizeof saved[i], (off_t)at[i]) == (ssize_t)sizeof saved[i],
           "B: put back the old label %d of member 0", i);
    close(fd);
    unsigned two[] = { 0, 2 };
    p = import_paths(paths, two, 2, &e);
    if (okb(p != NULL, "B: member 0 (old label) and the new member: %s", e.msg)) {
        bs_pool_stats(p, &st);
        ok(st.nvdevs == 2 && strcmp(st.vdevs[1].state, "UNAVAIL") == 0 &&
               strcmp(st.state, "DEGRADED") == 0,
           "B: the old tree, its member 1 missing (%s, %s)", st.vdevs[1].path, st.state);
        all_good(p, "B: old tree from member 0");
    }
    bs_pool_close(p);
}

/* I/O that goes on while the vdev tree changes: rewrites the model's own
 * bytes (so the data stays as the model says) and reads them back. */
struct io_load {
    bs_pool *p;
    _Atomic bool stop;
    int errors, rounds;
};

static void *io_loop(void *arg)
{
    struct io_load *l = arg;
    struct berr e = {0};
    bs_vol *v = NULL;
    if (bs_vol_open(l->p, "vol", &v, &e) < 0) {
        l->errors++;
        return NULL;
    }
    uint8_t *buf = malloc(BS);
    uint64_t seed = 3;
    while (!atomic_load(&l->stop) && buf) {
        uint64_t off = (xrand(&seed) % (VOLSIZE / BS)) * BS;
        ssize_t w = bs_vol_pwrite(v, model + off, BS, off, 0), rd = w < 0 ? 0 : bs_vol_pread(v, buf, BS, off);
        if (w < 0 || rd < 0 || memcmp(buf, model + off, BS) != 0) {
            if (!l->errors++)
                diag("first I/O error at round %d, offset %llu: write %zd, read %zd%s", l->rounds,
                     (unsigned long long)off, w, rd, w >= 0 && rd >= 0 ? ", wrong data" : "");
        }
        if (++l->rounds % 64 == 0 && bs_vol_flush(v) < 0)
            l->errors++;
    }
    free(buf);
    bs_vol_close(v);
    return NULL;
}

static void test_attach_detach(void)
{
    struct berr e = {0};
    tmp_paths(paths, 8, "att");
    const char *spec[] = { leaf_path(0) };
    bs_pool *p = make_pool(spec, 1);
    if (!p)
        return;
    struct bs_pool_stats st;
    ok(bs_pool_detach(p, leaf_path(0), &e) < 0 && e.code == ENOTSUP,
       "detach from a single device: %s", e.msg);
    struct io_load load = { .p = p };
    pthread_t th;
    bool running = pthread_create(&th, NULL, io_loop, &load) == 0;
    usleep(100000);
    ok(bs_pool_attach(p, leaf_path(0), leaf_path(1), false, &e) == 0,
       "attach to a single device while I/O goes on: %s", e.msg);
    uint64_t rs = resilver_wait(p, &st);
    usleep(100000);
    atomic_store(&load.stop, true);
    if (running)
        pthread_join(th, NULL);
    ok(running && load.errors == 0 && load.rounds > 0,
       "the I/O during the change: %d rounds, %d errors", load.rounds, load.errors);
    ok(strcmp(st.layout, "mirror") == 0 && st.nvdevs == 2 && rs > 0 && rs <= st.raw_allocated &&
           strcmp(st.state, "ONLINE") == 0,
       "a 2-way mirror, resilvered %llu of %llu bytes", (unsigned long long)rs,
       (unsigned long long)st.raw_allocated);
    all_good(p, "after attach");
    /* a third member, slowly: detaching the only up-to-date ones is refused */
    ok(bs_pool_debug(p, "resilver_delay_ms=2", &e) == 0, "slow resilver");
    struct io_load load2 = { .p = p };
    running = pthread_create(&th, NULL, io_loop, &load2) == 0;
    ok(bs_pool_attach(p, leaf_path(1), leaf_path(2), false, &e) == 0, "attach a third: %s",
       e.msg);
    ok(bs_pool_detach(p, leaf_path(0), &e) == 0, "detach the first: %s", e.msg);
    e = (struct berr){0};
    ok(bs_pool_detach(p, leaf_path(1), &e) < 0 && e.code == EBUSY && strstr(e.msg, "last valid"),
       "detaching the last up-to-date member is refused: %s", e.msg);
    bs_pool_debug(p, "resilver_delay_ms=0", &e);
    resilver_wait(p, &st);
    e = (struct berr){0};
    ok(bs_pool_detach(p, leaf_path(1), &e) == 0, "once resilvered it can go: %s", e.msg);
    atomic_store(&load2.stop, true);
    if (running)
        pthread_join(th, NULL);
    ok(running && load2.errors == 0 && load2.rounds > 0,
       "the I/O during attach and detaches: %d rounds, %d errors", load2.rounds, load2.errors);
    bs_pool_stats(p, &st);
    ok(st.nvdevs == 1 && strcmp(st.vdevs[0].path, leaf_path(2)) == 0, "one member left: %s",
       st.vdevs[0].path);
    e = (struct berr){0};
    ok(bs_pool_detach(p, leaf_path(2), &e) < 0 && e.code == EBUSY, "not the last one: %s",
       e.msg);
    ok(bs_pool_attach(p, leaf_path(2), leaf_path(2), false, &e) < 0 && e.code == EINVAL,
       "a device twice: %s", e.msg);
    ok(bs_pool_replace(p, "nosuch", leaf_path(3), false, &e) < 0 && e.code == ENOENT,
       "replace an unknown device: %s", e.msg);
    ok(bs_pool_export(p, false, &e) == 0, "export");
    unsigned only[] = { 2 };
    p = import_paths(paths, only, 1, &e);
    if (okb(p != NULL, "import the last member alone: %s", e.msg))
        all_good(p, "after attach, detach");
    bs_pool_close(p);
    /* the detached devices are no pool members any more */
    unsigned old[] = { 0 };
    p = import_paths(paths, old, 1, &e);
    ok(p == NULL, "a detached device does not import: %s", e.msg);
    bs_pool_close(p);
}

/* A resilver holds the frees of later txgs while it walks; rewrites of more
 * than the pool's free space meanwhile must not fail with ENOSPC: the pass
 * lets go of its hold when a writer runs short and goes on from there. */
static void test_rewrite_during_resilver(void)
{
    struct berr e = {0};
    tmp_paths(paths, 8, "full");
    const char *spec[] = { leaf_path(0) };
    bs_pool *p = make_pool(spec, 1);
    if (!p)
        return;
    ok(bs_pool_debug(p, "resilver_delay_ms=5", &e) == 0, "slow resilver");
    ok(bs_pool_attach(p, leaf_path(0), leaf_path(1), false, &e) == 0, "attach: %s", e.msg);
    bs_vol *v = NULL;
    int failed = 0, passes = 8, first = 0;
    if (bs_vol_open(p, "vol", &v, &e) == 0) {
        /* 8 x 24 MiB rewritten into a 128 MiB pool */
        for (int pass = 0; pass < passes; pass++) {
            uint64_t seed = 1000 + (uint64_t)pass;
            random_bytes(model, VOLSIZE, &seed);
            for (uint64_t off = 0; off < VOLSIZE; off += MiB) {
                int r = bs_vol_pwrite(v, model + off, MiB, off, 0);
                if (r < 0 && !failed++)
                    first = r;
            }
            if (bs_vol_flush(v) < 0)
                failed++;
        }
        bs_vol_close(v);
    }
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(v && failed == 0, "%d x 24 MiB rewritten during the resilver: %d failed (first %s), scan %s",
       passes, failed, first ? strerror(-first) : "-", st.scan.state);
    bs_pool_debug(p, "resilver_delay_ms=0", &e);
    resilver_wait(p, &st);
    all_good(p, "after rewrites during the resilver");
    scrub_clean(p, "after rewrites during the resilver", true);
    bs_pool_close(p);
}

int main(void)
{
    model = malloc(VOLSIZE);
    if (!model)
        return 1;
    test_replace("mirror", 2, 1);
    test_replace("raidz1", 3, 1);
    test_replace("raidz2", 4, 2);
    test_replace("raidz3", 5, 3);
    test_dtl("mirror", 2);
    test_dtl("raidz1", 3);
    test_dtl_import();
    test_two_tops();
    test_crash();
    test_tree_crash();
    test_attach_detach();
    test_rewrite_during_resilver();
    free(model);
    tmp_cleanup();
    return done_testing();
}
