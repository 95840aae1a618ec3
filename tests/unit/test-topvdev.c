/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pools with several top-level vdevs: mirror+mirror(+mirror), raidz1+raidz1,
 * raidz2+raidz2, a stripe of three files, and a forced mix.  Random writes
 * against a model with export/import and crash (abandon) + reimport; every
 * top receives blocks; bs_pool_check passes; usable space after parity;
 * growing a populated pool with bs_pool_add (the new, empty top receives
 * more of the new blocks; old and new data verify, also after reimport);
 * import with one top's devices missing fails naming it; corruption in the
 * second top is repaired by a scrub; mismatched replication needs force;
 * fault knobs and offline/online address leaves of any top. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/codec.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 16384u
#define VOLSIZE (24 * MiB)
#define FILESZ (96 * MiB)
#define MAXF 12

static uint8_t *model;
static char *files[MAXF];

static void make_files(const char *tag, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%u.img", tag, i);
        free(files[i]);
        files[i] = strdup(tmp_path(name));
        unlink(files[i]);
    }
}

/* Blocks per top of every tree of the pool. */
struct per_top {
    uint64_t blocks[BLK_MAX_TOPS], bytes[BLK_MAX_TOPS];
    uint64_t bad;
};

static int count_dva(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct per_top *c = opaque;
    (void)blkid;
    if (bp->dva[0].vdev >= BLK_MAX_TOPS) {
        c->bad++;
        return 0;
    }
    c->blocks[bp->dva[0].vdev]++;
    c->bytes[bp->dva[0].vdev] += bp->dva[0].asize;
    return 0;
}

static void count_vol(bs_pool *p, const char *name, struct per_top *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, name);
    struct objdesc od = d ? d->od : (struct objdesc){0};
    pthread_mutex_unlock(&p->lock);
    if (d)
        objtree_walk(&p->io, &od, 0, count_dva, c);
}

static bool all_good(bs_pool *p, const char *what)
{
    int good, eio, wrong;
    vol_compare(p, "vol", model, VOLSIZE, BS, &good, &eio, &wrong);
    bool all = good == (int)(VOLSIZE / BS) && eio == 0 && wrong == 0;
    ok(all, "%s: all data reads back (%d good, %d EIO, %d wrong)", what, good, eio, wrong);
    return all;
}

static bool check(bs_pool *p, const char *what)
{
    struct berr e = {0};
    int r = bs_pool_check(p, &e);
    ok(r == 0, "%s: check passes %s", what, e.msg);
    return r == 0;
}

/* n random writes of 1..4 blocks at random block offsets (model kept). */
static void random_writes(bs_pool *p, int n, uint64_t *seed, bool flush)
{
    struct berr e = {0};
    bs_vol *v = NULL;
    if (bs_vol_open(p, "vol", &v, &e) < 0) {
        diag("open: %s", e.msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        uint64_t nb = 1 + xrand(seed) % 4;
        uint64_t o = (xrand(seed) % (VOLSIZE / BS - nb + 1)) * BS;
        if (xrand(seed) % 3)
            random_bytes(model + o, nb * BS, seed);
        else
            pattern(model + o, nb * BS, o, (uint32_t)xrand(seed)); /* compressible */
        if (bs_vol_pwrite(v, model + o, nb * BS, o, 0) < 0)
            diag("write at %llu failed", (unsigned long long)o);
    }
    if (flush)
        bs_vol_flush(v);
    bs_vol_close(v);
}

static bs_pool *import_files(unsigned n, unsigned skip_from, unsigned skip_to, struct berr *e)
{
    const char *v[MAXF];
    size_t k = 0;
    for (unsigned i = 0; i < n; i++)
        if (i < skip_from || i >= skip_to)
            v[k++] = files[i];
    bs_pool *p = NULL;
    if (bs_pool_import(v, k, NULL, &p, e) < 0)
        return NULL;
    return p;
}

static void make_vol(bs_pool *p)
{
    struct berr e = {0};
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "vol");
    vp.volsize = VOLSIZE;
    vp.volblocksize = BS;
    ok(bs_vol_create(p, &vp, false, &e) == 0, "create volume: %s", e.msg);
    memset(model, 0, VOLSIZE);
}

/* One layout: spec over nfiles files with ntops tops. */
static void run_layout(const char *tag, const char *const *spec, size_t nspec, unsigned nfiles,
                       unsigned ntops, bool force, double usable)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.force = force;
    int r = bs_pool_create("tv", spec, nspec, FILESZ, &o, &p, &e);
    ok(r == 0, "%s: create: %s", tag, e.msg);
    if (r < 0)
        return;
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(st.ntops == ntops && st.nvdevs == nfiles, "%s: %zu tops, %zu leaves", tag, st.ntops,
       st.nvdevs);
    for (size_t t = 0; t < st.ntops; t++)
        diag("%s: %s %s leaves %u..%u usable %llu MiB raw %llu MiB", tag, st.tops[t].name,
             st.tops[t].state, st.tops[t].first_leaf,
             st.tops[t].first_leaf + st.tops[t].nleaves - 1,
             (unsigned long long)(st.tops[t].size / MiB),
             (unsigned long long)(st.tops[t].raw_size / MiB));
    double ratio = (double)st.size / (double)st.raw_size;
    ok(ratio > usable - 0.02 && ratio < usable + 0.02,
       "%s: usable/raw space %.3f (expected %.3f): %llu of %llu MiB", tag, ratio, usable,
       (unsigned long long)(st.size / MiB), (unsigned long long)(st.raw_size / MiB));
    make_vol(p);
    uint64_t seed = 7 + ntops * 31 + nfiles;
    /* fill once sequentially, then random overwrites */
    {
        bs_vol *v = NULL;
        random_bytes(model, VOLSIZE, &seed);
        bs_vol_open(p, "vol", &v, &e);
        ok(v && bs_vol_pwrite(v, model, VOLSIZE, 0, 0) == 0 && bs_vol_flush(v) == 0,
           "%s: write 24 MiB", tag);
        bs_vol_close(v);
    }
    random_writes(p, 300, &seed, true);
    all_good(p, tag);
    struct per_top c;
    count_vol(p, "vol", &c);
    bool spread = c.bad == 0;
    for (unsigned t = 0; t < ntops; t++) {
        diag("%s: top %u holds %llu blocks, %llu KiB", tag, t, (unsigned long long)c.blocks[t],
             (unsigned long long)(c.bytes[t] >> 10));
        spread &= c.blocks[t] > 0;
    }
    ok(spread, "%s: every top holds blocks of the volume", tag);
    check(p, tag);
    /* export/import */
    ok(bs_pool_export(p, false, &e) == 0, "%s: export: %s", tag, e.msg);
    p = import_files(nfiles, 0, 0, &e);
    ok(p != NULL, "%s: import: %s", tag, e.msg);
    if (!p)
        return;
    all_good(p, "after import");
    /* crash: writes flushed (acknowledged) then the pool is dropped */
    random_writes(p, 200, &seed, true);
    pool_abandon(p);
    p = import_files(nfiles, 0, 0, &e);
    ok(p != NULL, "%s: import after a crash: %s", tag, e.msg);
    if (!p)
        return;
    all_good(p, "after crash");
    check(p, "after crash");
    /* devices shuffled: given in reverse order */
    bs_pool_close(p);
    {
        const char *v[MAXF];
        for (unsigned i = 0; i < nfiles; i++)
            v[i] = files[nfiles - 1 - i];
        p = NULL;
        ok(bs_pool_import(v, nfiles, NULL, &p, &e) == 0, "%s: import in reverse order: %s",
           tag, e.msg);
    }
    if (p) {
        all_good(p, "reverse order");
        bs_pool_close(p);
    }
    /* the last top's devices missing: refused, naming it */
    unsigned per = nfiles / ntops;
    if (ntops < 2)
        goto out;
    p = import_files(nfiles, nfiles - per, nfiles, &e);
    ok(p == NULL && e.code == ENXIO && strstr(e.msg, "top-level vdev") != NULL,
       "%s: last top missing: %s", tag, e.msg);
    bs_pool_close(p);
    /* the first top's devices missing too */
    memset(&e, 0, sizeof e);
    p = import_files(nfiles, 0, per, &e);
    ok(p == NULL && e.code == ENXIO && strstr(e.msg, "top-level vdev 0") != NULL,
       "%s: first top missing: %s", tag, e.msg);
    bs_pool_close(p);
out:
    p = import_files(nfiles, 0, 0, &e);
    if (p)
        bs_pool_destroy(p, true, &e);
}

static void test_layouts(void)
{
    make_files("mm", 4);
    const char *mm[] = {"mirror", files[0], files[1], "mirror", files[2], files[3]};
    run_layout("mirror+mirror", mm, 6, 4, 2, false, 1.0);
    make_files("mmm", 6);
    const char *m3[] = {"mirror", files[0], files[1], "mirror", files[2], files[3],
                        "mirror", files[4], files[5]};
    run_layout("3 mirrors", m3, 9, 6, 3, false, 1.0);
    make_files("zz", 6);
    const char *zz[] = {"raidz1", files[0], files[1], files[2], "raidz1", files[3], files[4],
                        files[5]};
    run_layout("raidz1+raidz1", zz, 8, 6, 2, false, 2.0 / 3);
    make_files("z2", 8);
    const char *z2[] = {"raidz2", files[0], files[1], files[2], files[3],
                        "raidz2", files[4], files[5], files[6], files[7]};
    run_layout("raidz2+raidz2", z2, 10, 8, 2, false, 0.5);
    make_files("st", 3);
    const char *st[] = {files[0], files[1], files[2]};
    run_layout("stripe of 3", st, 3, 3, 3, false, 1.0);
    make_files("z4", 4);
    const char *z4[] = {"raidz1", files[0], files[1], files[2], files[3]};
    run_layout("raidz1 of 4 (one top)", z4, 5, 4, 1, false, 0.75);
}

static void test_mismatch(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    make_files("mx", 5);
    const char *mix[] = {"mirror", files[0], files[1], "raidz1", files[2], files[3], files[4]};
    memset(&e, 0, sizeof e);
    ok(bs_pool_create("mx", mix, 7, FILESZ, NULL, &p, &e) == -EINVAL &&
       strstr(e.msg, "mismatched replication level"), "mirror + raidz1 refused: %s", e.msg);
    const char *wid[] = {"mirror", files[0], files[1], "mirror", files[2], files[3], files[4]};
    ok(bs_pool_create("mx", wid, 7, FILESZ, NULL, &p, &e) == -EINVAL,
       "2-way + 3-way mirror refused: %s", e.msg);
    const char *dup[] = {"mirror", files[0], files[1], "mirror", files[1], files[2]};
    ok(bs_pool_create("mx", dup, 6, FILESZ, NULL, &p, &e) == -EINVAL &&
       strstr(e.msg, "twice"), "a device in two tops refused: %s", e.msg);
    const char *lone[] = {"mirror", files[0], files[1], "mirror", files[2]};
    ok(bs_pool_create("mx", lone, 5, FILESZ, NULL, &p, &e) == -EINVAL,
       "a mirror of one refused: %s", e.msg);
    run_layout("forced mirror+raidz1", mix, 7, 5, 2, true, 0.75); /* (F + 2F) / (F + 3F) */
}

/* Grow a populated mirror pool; more writes; old and new data verify. */
static void test_add(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    make_files("add", 6);
    const char *m[] = {"mirror", files[0], files[1]};
    ok(bs_pool_create("ad", m, 3, FILESZ, NULL, &p, &e) == 0, "add: create mirror: %s", e.msg);
    if (!p)
        return;
    make_vol(p);
    uint64_t seed = 99;
    {
        bs_vol *v = NULL;
        random_bytes(model, VOLSIZE, &seed);
        bs_vol_open(p, "vol", &v, &e);
        ok(v && bs_vol_pwrite(v, model, VOLSIZE, 0, 0) == 0 && bs_vol_flush(v) == 0,
           "add: write 24 MiB to one top");
        bs_vol_close(v);
    }
    struct bs_pool_stats st0, st1;
    bs_pool_stats(p, &st0);
    /* mismatched: needs force */
    const char *bad[] = {files[2]};
    ok(bs_pool_add(p, bad, 1, FILESZ, false, &e) == -EINVAL, "add a single file to a mirror "
       "pool refused: %s", e.msg);
    const char *again[] = {"mirror", files[0], files[2]};
    ok(bs_pool_add(p, again, 3, FILESZ, false, &e) == -EEXIST, "add a member again refused: %s",
       e.msg);
    const char *m2[] = {"mirror", files[2], files[3]};
    ok(bs_pool_add(p, m2, 3, FILESZ, false, &e) == 0, "add mirror C D: %s", e.msg);
    bs_pool_stats(p, &st1);
    ok(st1.ntops == 2 && st1.nvdevs == 4 && strcmp(st1.tops[1].name, "mirror-1") == 0 &&
       st1.size > st0.size + st0.size / 2, "stats: %zu tops (%s, %s), size %llu -> %llu MiB",
       st1.ntops, st1.tops[0].name, st1.tops[1].name, (unsigned long long)(st0.size / MiB),
       (unsigned long long)(st1.size / MiB));
    all_good(p, "add: old data right after the add");
    /* rewrite a third of the volume: the emptier new top takes more */
    uint64_t a0 = st1.tops[0].alloc_bytes, a1 = st1.tops[1].alloc_bytes;
    random_writes(p, 400, &seed, true);
    bs_pool_stats(p, &st1);
    uint64_t d0 = st1.tops[0].alloc_bytes - a0, d1 = st1.tops[1].alloc_bytes - a1;
    diag("add: after the add top 0 got %llu KiB, top 1 %llu KiB (top 0 %llu%% full)",
         (unsigned long long)(d0 >> 10), (unsigned long long)(d1 >> 10),
         (unsigned long long)(st1.tops[0].raw_allocated * 100 / st1.tops[0].raw_size));
    ok(d1 > d0, "add: the new, empty top receives more of the new blocks (%llu > %llu KiB)",
       (unsigned long long)(d1 >> 10), (unsigned long long)(d0 >> 10));
    all_good(p, "add: after more writes");
    check(p, "add");
    struct per_top c;
    count_vol(p, "vol", &c);
    ok(c.blocks[0] > 0 && c.blocks[1] > 0, "add: volume blocks on both tops (%llu, %llu)",
       (unsigned long long)c.blocks[0], (unsigned long long)c.blocks[1]);
    /* forced: a third top of another kind */
    const char *z[] = {"raidz1", files[4], files[5], tmp_path("add-6.img")};
    char *z2 = strdup(z[3]);
    z[3] = z2;
    ok(bs_pool_add(p, z, 4, FILESZ, true, &e) == 0, "add -f raidz1 as a third top: %s", e.msg);
    random_writes(p, 100, &seed, true);
    all_good(p, "add: three tops");
    ok(bs_pool_export(p, false, &e) == 0, "add: export: %s", e.msg);
    const char *all[] = {files[0], files[1], files[2], files[3], files[4], files[5], z2};
    p = NULL;
    ok(bs_pool_import(all, 7, NULL, &p, &e) == 0, "add: import all 7: %s", e.msg);
    if (p) {
        bs_pool_stats(p, &st1);
        ok(st1.ntops == 3, "add: 3 tops after import (%s)", st1.layout);
        all_good(p, "add: after import");
        check(p, "add: after import");
        /* crash right after an add */
        bs_pool_close(p);
    }
    /* without the new top: refused */
    p = NULL;
    ok(bs_pool_import(all, 4, NULL, &p, &e) == -ENXIO && strstr(e.msg, "top-level vdev 2"),
       "add: import without the raidz top refused: %s", e.msg);
    bs_pool_close(p);
    p = NULL;
    bs_pool_import(all, 7, NULL, &p, &e);
    if (p)
        bs_pool_destroy(p, true, &e);
    free(z2);
}

/* A crash in the middle of an add (after step 1 or 2 of its order): the
 * pool imports as before, the new devices are ignored, and the add can be
 * done again with the same devices. */
static void test_interrupted_add(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    make_files("ia", 4);
    const char *m[] = {"mirror", files[0], files[1]};
    ok(bs_pool_create("ia", m, 3, FILESZ, NULL, &p, &e) == 0, "interrupted add: create: %s",
       e.msg);
    if (!p)
        return;
    make_vol(p);
    uint64_t seed = 3;
    random_writes(p, 200, &seed, true);
    const char *all[] = {files[0], files[1], files[2], files[3]};
    const char *m2[] = {"mirror", files[2], files[3]};
    for (int step = 1; step <= 2 && p; step++) {
        atomic_store(&pool_tops_test_stop, step);
        ok(bs_pool_add(p, m2, 3, FILESZ, false, &e) == -ECANCELED, "add stopped after step %d: %s",
           step, e.msg);
        atomic_store(&pool_tops_test_stop, 0);
        pool_abandon(p);
        p = NULL;
        ok(bs_pool_import(all, 4, NULL, &p, &e) == 0, "import with the new devices given: %s",
           e.msg);
        if (!p)
            return;
        struct bs_pool_stats st;
        bs_pool_stats(p, &st);
        ok(st.ntops == 1 && st.nvdevs == 2 && strcmp(st.state, "ONLINE") == 0,
           "after a crash in step %d: %zu top, %zu devices, %s", step, st.ntops, st.nvdevs,
           st.state);
        all_good(p, "interrupted add");
        check(p, "interrupted add");
        random_writes(p, 50, &seed, true);
    }
    if (!p)
        return;
    ok(bs_pool_add(p, m2, 3, FILESZ, false, &e) == 0, "the add done again without -f: %s",
       e.msg);
    random_writes(p, 200, &seed, true);
    pool_abandon(p);
    p = NULL;
    ok(bs_pool_import(all, 4, NULL, &p, &e) == 0, "import after the add and a crash: %s", e.msg);
    if (!p)
        return;
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(st.ntops == 2, "two tops");
    all_good(p, "after the add");
    check(p, "after the add");
    bs_pool_destroy(p, true, &e);
}

/* Corruption in the second top's leaf: reads heal, a scrub repairs. */
static void test_scrub_second_top(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    make_files("sc", 4);
    const char *m[] = {"mirror", files[0], files[1], "mirror", files[2], files[3]};
    ok(bs_pool_create("sc", m, 6, FILESZ, NULL, &p, &e) == 0, "scrub: create: %s", e.msg);
    if (!p)
        return;
    make_vol(p);
    uint64_t seed = 5;
    random_bytes(model, VOLSIZE, &seed);
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    bs_vol_pwrite(v, model, VOLSIZE, 0, 0);
    bs_vol_flush(v);
    bs_vol_close(v);
    uint64_t ds1 = p->top_hdr[1].data_start;
    struct per_top c;
    count_vol(p, "vol", &c);
    uint64_t used = c.bytes[1] + 8 * MiB;
    bs_pool_close(p);
    /* garbage over the used part of top 1's first leaf (files[2]) */
    uint8_t *junk = malloc(1 * MiB);
    for (int i = 0; i < 8; i++) {
        random_bytes(junk, MiB, &seed);
        raw_pwrite(files[2], junk, 256 * 1024, ds1 + (xrand(&seed) % (used / MiB)) * MiB);
    }
    free(junk);
    const char *all[] = {files[0], files[1], files[2], files[3]};
    p = NULL;
    ok(bs_pool_import(all, 4, NULL, &p, &e) == 0, "scrub: import: %s", e.msg);
    if (!p)
        return;
    ok(bs_pool_scrub(p, BS_SCRUB_START, &e) == 0, "scrub: start: %s", e.msg);
    bs_pool_scrub_wait(p);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    diag("scrub: repaired %llu bytes, errors %llu; leaf 2 cksum %llu",
         (unsigned long long)st.scan.repaired, (unsigned long long)st.scan.errors,
         (unsigned long long)st.vdevs[2].checksum_errors);
    ok(st.scan.repaired > 0 && st.scan.errors == 0 && st.vdevs[2].checksum_errors > 0 &&
       st.vdevs[0].checksum_errors == 0 && st.vdevs[3].checksum_errors == 0,
       "scrub: damage in top 1 repaired, counted on its damaged leaf only");
    bs_pool_scrub(p, BS_SCRUB_START, &e);
    bs_pool_scrub_wait(p);
    bs_pool_stats(p, &st);
    ok(st.scan.repaired == 0 && st.scan.errors == 0, "scrub: a second scrub finds nothing");
    all_good(p, "scrub");
    /* fault knobs and offline/online by pool-wide leaf index (3: top 1's second) */
    ok(bs_pool_debug(p, "vdev=3 fail_reads=on", &e) == 0, "knob on leaf 3: %s", e.msg);
    ok(bs_pool_offline(p, files[3], &e) == 0, "offline %s (top 1): %s", "leaf 3", e.msg);
    ok(bs_pool_offline(p, files[2], &e) == -EBUSY, "offline its partner refused: %s", e.msg);
    bs_pool_stats(p, &st);
    ok(strcmp(st.state, "DEGRADED") == 0 && strcmp(st.tops[1].state, "DEGRADED") == 0 &&
       strcmp(st.tops[0].state, "ONLINE") == 0, "pool %s, top 0 %s, top 1 %s", st.state,
       st.tops[0].state, st.tops[1].state);
    bs_pool_debug(p, "vdev=3 reset", &e);
    ok(bs_pool_online(p, files[3], &e) == 0, "online leaf 3: %s", e.msg);
    check(p, "scrub");
    bs_pool_destroy(p, true, &e);
}

/* The second top's allocation map destroyed (both mirror copies): import
 * rebuilds every top's map from the block trees; check passes; trim works
 * over all tops. */
static void test_map_rebuild(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    make_files("mr", 4);
    const char *m[] = {"mirror", files[0], files[1], "mirror", files[2], files[3]};
    ok(bs_pool_create("mr", m, 6, FILESZ, NULL, &p, &e) == 0, "rebuild: create: %s", e.msg);
    if (!p)
        return;
    make_vol(p);
    uint64_t seed = 17;
    random_writes(p, 400, &seed, true);
    uint64_t bo = p->top_hdr[1].bitmap_offset, ds = p->top_hdr[1].data_start;
    bs_pool_close(p);
    uint8_t *junk = malloc(ds - bo);
    random_bytes(junk, ds - bo, &seed);
    raw_pwrite(files[2], junk, ds - bo, bo);
    raw_pwrite(files[3], junk, ds - bo, bo);
    free(junk);
    const char *all[] = {files[0], files[1], files[2], files[3]};
    p = NULL;
    ok(bs_pool_import(all, 4, NULL, &p, &e) == 0, "rebuild: import: %s", e.msg);
    if (!p)
        return;
    ok(p->map_rebuilt && !p->readonly, "rebuild: the maps were rebuilt (writable)");
    all_good(p, "rebuild");
    check(p, "rebuild");
    random_writes(p, 200, &seed, true);
    all_good(p, "rebuild: more writes");
    check(p, "rebuild: more writes");
    uint64_t trimmed = 0;
    ok(bs_pool_trim(p, &trimmed, &e) == 0 && trimmed > 0, "trim over both tops: %llu MiB",
       (unsigned long long)(trimmed / MiB));
    bs_pool_close(p);
    p = NULL;
    ok(bs_pool_import(all, 4, NULL, &p, &e) == 0 && !p->map_rebuilt, "the rebuilt maps were "
       "written: a clean import: %s", e.msg);
    if (p) {
        all_good(p, "rebuild: reimport");
        bs_pool_destroy(p, true, &e);
    }
}

/* A crash while the uberblock of the last txg went to the tops one after
 * the other: top 1 lacks it.  The pool imports at that txg, ONLINE: a whole
 * top one txg behind is not a stale device. */
static void test_ub_partial(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    make_files("ub", 4);
    const char *m[] = {"mirror", files[0], files[1], "mirror", files[2], files[3]};
    ok(bs_pool_create("ub", m, 6, FILESZ, NULL, &p, &e) == 0, "partial ub: create: %s", e.msg);
    if (!p)
        return;
    make_vol(p);
    uint64_t seed = 23;
    random_writes(p, 300, &seed, true);
    bs_pool_close(p);
    uint64_t newest = 0;
    for (unsigned f = 2; f < 4; f++) {
        struct vdev *v = NULL;
        struct label_hdr h;
        struct uberblock *u = NULL;
        if (vdev_open(files[f], 0, false, &v, &e) < 0 || label_read_hdr(v, &h, &e) < 0 ||
            label_read_ubs(v, &h, &u) <= 0) {
            diag("read the ring of %s: %s", files[f], e.msg);
            vdev_close(v);
            return;
        }
        newest = u[0].txg;
        uint32_t ss = ub_slot_size(h.ashift);
        uint64_t slot = LABEL_HDR_SIZE + (newest % ub_slot_count(h.ashift)) * ss;
        uint64_t lab[4] = {0, LABEL_SIZE, h.dev_size - 2 * LABEL_SIZE, h.dev_size - LABEL_SIZE};
        uint8_t *zero = calloc(1, ss);
        for (int k = 0; k < 4; k++)
            vdev_pwrite(v, zero, ss, lab[k] + slot);
        free(zero);
        free(u);
        vdev_close(v);
    }
    const char *all[] = {files[0], files[1], files[2], files[3]};
    p = NULL;
    ok(bs_pool_import(all, 4, NULL, &p, &e) == 0, "partial ub: import: %s", e.msg);
    if (!p)
        return;
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(st.txg == newest && strcmp(st.state, "ONLINE") == 0 && !st.vdevs[2].stale &&
       !st.vdevs[3].stale, "imported at txg %llu (top 1 had %llu), %s, no device stale",
       (unsigned long long)st.txg, (unsigned long long)newest - 1, st.state);
    all_good(p, "partial ub");
    check(p, "partial ub");
    bs_pool_destroy(p, true, &e);
}

/* Tops of different sizes: the larger takes more, and writes go on into
 * the one with room when the other is full. */
static void test_uneven_fill(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    make_files("uf", 2);
    int fd = open(files[1], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ok(fd >= 0 && ftruncate(fd, (off_t)(128 * MiB)) == 0, "a 128 MiB file");
    if (fd >= 0)
        close(fd);
    const char *st2[] = {files[0], files[1]}; /* files[0] created 64 MiB */
    ok(bs_pool_create("uf", st2, 2, 64 * MiB, NULL, &p, &e) == 0, "stripe of 64 + 128 MiB: %s",
       e.msg);
    if (!p)
        return;
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "big");
    vp.volsize = 168 * MiB;
    vp.volblocksize = 128 * 1024;
    bs_vol_create(p, &vp, false, &e);
    bs_vol *v = NULL;
    bs_vol_open(p, "big", &v, &e);
    uint8_t *buf = malloc(4 * MiB), *rd = malloc(4 * MiB);
    uint64_t seed = 1234, written = 0;
    int r = 0;
    for (uint64_t off = 0; v && r == 0 && off < 168 * MiB; off += 4 * MiB) {
        random_bytes(buf, 4 * MiB, &seed);
        r = bs_vol_pwrite(v, buf, 4 * MiB, off, 0);
        if (r == 0)
            written += 4 * MiB;
    }
    bs_vol_flush(v);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    diag("uneven: wrote %llu MiB (%d); top 0 %llu of %llu MiB, top 1 %llu of %llu MiB",
         (unsigned long long)(written / MiB), r,
         (unsigned long long)(st.tops[0].raw_allocated / MiB),
         (unsigned long long)(st.tops[0].raw_size / MiB),
         (unsigned long long)(st.tops[1].raw_allocated / MiB),
         (unsigned long long)(st.tops[1].raw_size / MiB));
    ok(written >= 160 * MiB, "uneven: %llu MiB written into %llu MiB of space (ENOSPC only at "
       "the end: %d)", (unsigned long long)(written / MiB),
       (unsigned long long)(st.raw_size / MiB), r);
    ok(st.tops[0].raw_allocated > st.tops[0].raw_size * 8 / 10 &&
       st.tops[1].raw_allocated > st.tops[1].raw_size * 6 / 10,
       "uneven: both tops used (the small one nearly full)");
    seed = 1234;
    bool same = true;
    for (uint64_t off = 0; v && off < written; off += 4 * MiB) {
        random_bytes(buf, 4 * MiB, &seed);
        same &= bs_vol_pread(v, rd, 4 * MiB, off) == 0 && memcmp(buf, rd, 4 * MiB) == 0;
    }
    ok(same, "uneven: all of it reads back");
    bs_vol_close(v);
    free(buf);
    free(rd);
    check(p, "uneven");
    bs_pool_destroy(p, true, &e);
}

/* raidz1 + raidz1: garbage over one leaf of the second raidz; reads heal,
 * a scrub repairs, counted on that leaf only. */
static void test_scrub_raidz_second_top(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    make_files("sz", 6);
    const char *z[] = {"raidz1", files[0], files[1], files[2], "raidz1", files[3], files[4],
                       files[5]};
    ok(bs_pool_create("sz", z, 8, FILESZ, NULL, &p, &e) == 0, "raidz scrub: create: %s", e.msg);
    if (!p)
        return;
    make_vol(p);
    uint64_t seed = 8;
    random_bytes(model, VOLSIZE, &seed);
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    bs_vol_pwrite(v, model, VOLSIZE, 0, 0);
    bs_vol_flush(v);
    bs_vol_close(v);
    uint64_t ds1 = p->top_hdr[1].data_start;
    struct per_top c;
    count_vol(p, "vol", &c);
    uint64_t used = c.bytes[1] / 3 + 4 * MiB; /* per leaf */
    bs_pool_close(p);
    uint8_t *junk = malloc(MiB);
    for (int i = 0; i < 8; i++) {
        random_bytes(junk, MiB, &seed);
        raw_pwrite(files[4], junk, 128 * 1024, ds1 + (xrand(&seed) % (used / MiB)) * MiB);
    }
    free(junk);
    const char *all[] = {files[0], files[1], files[2], files[3], files[4], files[5]};
    p = NULL;
    ok(bs_pool_import(all, 6, NULL, &p, &e) == 0, "raidz scrub: import: %s", e.msg);
    if (!p)
        return;
    all_good(p, "raidz scrub: damaged second top reads");
    bs_pool_scrub(p, BS_SCRUB_START, &e);
    bs_pool_scrub_wait(p);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    uint64_t others = 0;
    for (unsigned i = 0; i < 6; i++)
        others += i == 4 ? 0 : st.vdevs[i].checksum_errors;
    diag("raidz scrub: repaired %llu bytes, errors %llu; leaf 4 cksum %llu, others %llu",
         (unsigned long long)st.scan.repaired, (unsigned long long)st.scan.errors,
         (unsigned long long)st.vdevs[4].checksum_errors, (unsigned long long)others);
    ok(st.vdevs[4].checksum_errors > 0 && others == 0 && st.scan.errors == 0,
       "raidz scrub: damage in top 1 counted on its damaged leaf only");
    bs_pool_scrub(p, BS_SCRUB_START, &e);
    bs_pool_scrub_wait(p);
    bs_pool_stats(p, &st);
    ok(st.scan.repaired == 0 && st.scan.errors == 0, "raidz scrub: a second scrub finds nothing");
    check(p, "raidz scrub");
    bs_pool_destroy(p, true, &e);
}

/* A stripe's single-device tops cannot go offline. */
static void test_stripe_offline(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    make_files("so", 2);
    const char *s[] = {files[0], files[1]};
    ok(bs_pool_create("so", s, 2, FILESZ, NULL, &p, &e) == 0, "stripe: create: %s", e.msg);
    if (!p)
        return;
    ok(bs_pool_offline(p, files[1], &e) == -ENOTSUP, "stripe: offline refused: %s", e.msg);
    bs_pool_destroy(p, true, &e);
}

/* The uberblock's top list: round trip and every malformed form refused. */
static void test_ub_tops(void)
{
    struct uberblock u, d;
    uint8_t buf[UB_SIZE];
    memset(&u, 0, sizeof u);
    u.version = BERTH_FORMAT_VERSION;
    u.txg = 9;
    u.pool_guid = 77;
    u.mos_dblksz = 4096;
    u.ntops = 3;
    u.top_guids[0] = 11, u.top_guids[1] = 22, u.top_guids[2] = 33;
    u.features_incompat = LABEL_FEAT_MULTI_TOP;
    ub_encode(&u, buf);
    ok(ub_decode(buf, UB_SIZE, &d) == 0 && d.ntops == 3 && d.top_guids[2] == 33 &&
       d.top_guids[3] == 0, "uberblock with 3 tops round-trips");
    struct {
        const char *what;
        uint32_t ntops;
        uint64_t feat, g1, g3;
    } bad[] = {
        {"ntops 1", 1, LABEL_FEAT_MULTI_TOP, 22, 0},
        {"tops without the feature", 3, 0, 22, 0},
        {"the feature without tops", 0, LABEL_FEAT_MULTI_TOP, 0, 0},
        {"a repeated guid", 3, LABEL_FEAT_MULTI_TOP, 11, 0},
        {"a guid past ntops", 3, LABEL_FEAT_MULTI_TOP, 22, 44},
        {"a zero guid", 3, LABEL_FEAT_MULTI_TOP, 0, 0},
        {"ntops 17", 17, LABEL_FEAT_MULTI_TOP, 22, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct uberblock b = u;
        b.ntops = bad[i].ntops;
        b.features_incompat = bad[i].feat;
        b.top_guids[1] = bad[i].g1;
        b.top_guids[3] = bad[i].g3;
        if (b.ntops == 0)
            memset(b.top_guids, 0, sizeof b.top_guids);
        ub_encode(&b, buf);
        /* what ub_encode would not write: patched in, checksum redone */
        if (bad[i].ntops > LABEL_MAX_TOPS)
            buf[220] = (uint8_t)bad[i].ntops;
        if (bad[i].g3)
            buf[224 + 3 * 8] = (uint8_t)bad[i].g3;
        sha256(buf, UB_SIZE - 32, buf + UB_SIZE - 32);
        struct uberblock x;
        ok(ub_decode(buf, UB_SIZE, &x) < 0, "uberblock refused: %s", bad[i].what);
    }
}

int main(void)
{
    model = malloc(VOLSIZE);
    test_ub_tops();
    test_layouts();
    test_mismatch();
    test_add();
    test_interrupted_add();
    test_scrub_second_top();
    test_scrub_raidz_second_top();
    test_map_rebuild();
    test_ub_partial();
    test_uneven_fill();
    test_stripe_offline();
    for (unsigned i = 0; i < MAXF; i++)
        free(files[i]);
    free(model);
    tmp_cleanup();
    return done_testing();
}
