/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Raidz pools (raidz1/2/3 over 3..6 files): the allocation size of a block
 * (data + parity + padding), create/import, self-healing reads after garbage
 * is written over parity-many leaf files (counted on exactly those leaves),
 * scrub repairs and a second scrub is clean, parity-many members missing at
 * import (DEGRADED, writes go on; back stale, repaired by a scrub), one more
 * missing is refused, parity+1 damaged columns of one block give EIO for
 * that block only (named by the scrub, never wrong data), read and write
 * faults, offline limits, spec errors. */
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
#define VOLSIZE (16 * MiB)
#define SECT 4096u
#define MAXN 6

static uint8_t *model;
static const char *paths[MAXN];
static unsigned nleaf, npar;

struct blocks {
    uint64_t off[4096], asize[4096], blkid[4096];
    size_t n;
};

static int collect(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct blocks *b = opaque;
    if (b->n < 4096) {
        b->off[b->n] = bp->dva[0].offset;
        b->asize[b->n] = bp->dva[0].asize;
        b->blkid[b->n] = bp->level == 0 ? blkid : UINT64_MAX;
        b->n++;
    }
    return 0;
}

/* The blocks of the volume (create): damage() aims at them.  Allocations
 * are not one dense region from the start of the data area (warm space
 * is taken first, and freed ditto copies of metadata are warm far from
 * the start), so ranges drawn over the whole used span could miss them. */
static const struct blocks *damage_at;

/* Import from the leaves whose bit is set in `mask`. */
static bs_pool *import_mask(unsigned mask, struct berr *e)
{
    const char *v[MAXN];
    size_t n = 0;
    for (unsigned i = 0; i < nleaf; i++)
        if (mask & (1u << i))
            v[n++] = paths[i];
    bs_pool *p = NULL;
    if (bs_pool_import(v, n, NULL, &p, e) < 0)
        return NULL;
    return p;
}

static unsigned all_mask(void)
{
    return (1u << nleaf) - 1;
}

static void read_all(bs_pool *p, int *good, int *eio, int *wrong)
{
    vol_compare(p, "vol", model, VOLSIZE, BS, good, eio, wrong);
}

static bool all_good(bs_pool *p, const char *what)
{
    int good, eio, wrong;
    read_all(p, &good, &eio, &wrong);
    bool all = good == (int)(VOLSIZE / BS) && eio == 0 && wrong == 0;
    ok(all, "raidz%u/%u %s: all data reads back (%d good, %d EIO, %d wrong)", npar, nleaf,
       what, good, eio, wrong);
    return all;
}

/* Wait for the resilver a member's return starts; its bytes copied. */
static uint64_t resilver_now(bs_pool *p, struct bs_pool_stats *st)
{
    ok(bs_pool_resilver_wait(p), "the resilver finished");
    bs_pool_stats(p, st);
    return strcmp(st->scan.func, "resilver") == 0 ? st->scan.resilvered : 0;
}

static void scrub_now(bs_pool *p, struct bs_pool_stats *st)
{
    struct berr e = {0};
    bs_pool_resilver_wait(p); /* a scrub waits for a resilver */
    if (bs_pool_scrub(p, BS_SCRUB_START, &e) < 0)
        diag("scrub: %s", e.msg);
    bs_pool_scrub_wait(p);
    bs_pool_stats(p, st);
}

static void test_asize(void)
{
    /* ZFS's vdev_raidz_asize for ashift 12: data sectors, plus nparity per
     * row of (n - nparity), rounded up to nparity + 1 */
    struct vdev z = {.kind = VDEV_KIND_RAIDZ, .ashift = 12, .nchild = 4, .nparity = 1};
    ok(vdev_asize(&z, 4096) == 8192, "raidz1/4: 1 sector -> 2");
    ok(vdev_asize(&z, 16384) == 6 * 4096, "raidz1/4: 4 sectors -> 4 + 2 = 6 -> 6");
    ok(vdev_asize(&z, 12288) == 4 * 4096, "raidz1/4: 3 sectors -> 4");
    z.nchild = 6;
    z.nparity = 3;
    ok(vdev_asize(&z, 16384) == 12 * 4096, "raidz3/6: 4 sectors -> 4 + 6 = 10 -> 12");
    ok(vdev_asize(&z, 4096) == 4 * 4096, "raidz3/6: 1 sector -> 4");
    z.nchild = 5;
    z.nparity = 2;
    ok(vdev_asize(&z, 128 * 1024) == 54 * 4096, "raidz2/5: 32 sectors -> 32 + 22 = 54 -> 54");
    struct vdev m = {.kind = VDEV_KIND_MIRROR, .ashift = 12, .nchild = 2};
    ok(vdev_asize(&m, 16384) == 16384, "a mirror allocates the data only");
}

/* Create the pool and the volume; the blocks of the volume and the bytes of
 * each leaf's data area in use. */
static bool create(struct blocks *blk, uint64_t *data_start, uint64_t *leaf_used)
{
    struct berr e = {0};
    char layout[16];
    const char *spec[MAXN + 1];
    snprintf(layout, sizeof layout, "raidz%u", npar);
    spec[0] = layout;
    for (unsigned i = 0; i < nleaf; i++)
        spec[i + 1] = paths[i];
    bs_pool *p = NULL;
    int r = bs_pool_create("rz", spec, nleaf + 1, 128 * MiB, NULL, &p, &e);
    ok(r == 0, "create raidz%u of %u files: %s", npar, nleaf, e.msg);
    if (r < 0)
        return false;
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.layout, layout) == 0 && st.nvdevs == nleaf && strcmp(st.state, "ONLINE") == 0,
       "stats: %s of %zu leaves, %s", st.layout, st.nvdevs, st.state);
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "vol");
    vp.volsize = VOLSIZE;
    vp.volblocksize = BS;
    bs_vol_create(p, &vp, false, &e);
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    uint64_t seed = 42 + nleaf * 7 + npar;
    random_bytes(model, VOLSIZE / 2, &seed);
    /* compressible half: small blocks, narrow stripes */
    for (uint64_t o = VOLSIZE / 2; o < VOLSIZE; o += BS) {
        memset(model + o, (int)(o / BS), BS);
        pattern(model + o, (o / BS % 7) * 2048, o, 3); /* 0..12K of noise */
    }
    ok(v && bs_vol_pwrite(v, model, VOLSIZE, 0, 0) == 0 && bs_vol_flush(v) == 0,
       "write and flush 16 MiB");
    /* a few single small writes too (not batched) */
    for (int i = 0; i < 16; i++) {
        uint64_t o = (xrand(&seed) % (VOLSIZE / BS)) * BS;
        random_bytes(model + o, BS, &seed);
        bs_vol_pwrite(v, model + o, BS, o, 0);
        bs_vol_flush(v);
    }
    bs_vol_close(v);
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, "vol");
    struct objdesc od = d->od;
    pthread_mutex_unlock(&p->lock);
    blk->n = 0;
    objtree_walk(&p->io, &od, 0, collect, blk);
    damage_at = blk;
    *data_start = p->top_hdr[0].data_start;
    uint64_t hi = 0;
    for (size_t i = 0; i < blk->n; i++)
        hi = MAX(hi, blk->off[i] + blk->asize[i]);
    *leaf_used = ROUND_UP(hi / nleaf + SECT, SECT) + 4 * MiB; /* + the MOS, roughly */
    ok(bs_pool_check(p, &e) == 0, "check passes: %s", e.msg);
    all_good(p, "after create");
    ok(bs_pool_export(p, false, &e) == 0, "export: %s", e.msg);
    p = import_mask(all_mask(), &e);
    ok(p != NULL, "import all members: %s", e.msg);
    if (p) {
        all_good(p, "after import");
        bs_pool_close(p);
    }
    return p != NULL;
}

/* Garbage over random ranges of `npar` leaves' used data areas, each
 * around a random block of the volume; returns the set of damaged leaves. */
static unsigned damage(uint64_t data_start, uint64_t leaf_used, uint64_t seed)
{
    unsigned bad = 0;
    uint8_t *junk = malloc(256 * 1024);
    for (unsigned k = 0; k < npar; k++) {
        unsigned leaf = (k * 2 + 1) % nleaf;
        if (bad & (1u << leaf))
            leaf = (leaf + 1) % nleaf;
        bad |= 1u << leaf;
        for (int r = 0; r < 24; r++) {
            size_t len = 512 + xrand(&seed) % (256 * 1024 - 512);
            uint64_t at = xrand(&seed) % (leaf_used - len);
            if (damage_at && damage_at->n) {
                uint64_t row = damage_at->off[xrand(&seed) % damage_at->n] / nleaf;
                at = row > len / 2 ? row - len / 2 : 0;
                at = MIN(at, leaf_used - len);
            }
            random_bytes(junk, len, &seed);
            raw_pwrite(paths[leaf], junk, len, data_start + at);
        }
    }
    free(junk);
    return bad;
}

static void test_heal(uint64_t data_start, uint64_t leaf_used)
{
    struct berr e = {0};
    unsigned bad = damage(data_start, leaf_used, 1000 + nleaf);
    bs_pool *p = import_mask(all_mask(), &e);
    ok(p != NULL, "import with %u leaves damaged: %s", npar, e.msg);
    if (!p)
        return;
    all_good(p, "damaged");
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    uint64_t on_bad = 0, on_good = 0, rep = 0;
    for (unsigned i = 0; i < nleaf; i++) {
        diag("leaf %u%s: cksum %llu repaired %llu", i, bad & (1u << i) ? " (damaged)" : "",
             (unsigned long long)st.vdevs[i].checksum_errors,
             (unsigned long long)st.vdevs[i].repaired_bytes);
        if (bad & (1u << i))
            on_bad += st.vdevs[i].checksum_errors, rep += st.vdevs[i].repaired_bytes;
        else
            on_good += st.vdevs[i].checksum_errors + st.vdevs[i].repaired_bytes;
    }
    ok(on_bad > 0 && on_good == 0 && rep > 0,
       "errors counted and healed on the damaged leaves only (%llu errors, %llu bytes "
       "rewritten; %llu elsewhere)", (unsigned long long)on_bad, (unsigned long long)rep,
       (unsigned long long)on_good);
    scrub_now(p, &st);
    ok(strcmp(st.scan.state, "finished") == 0 && st.scan.errors == 0,
       "scrub repairs the rest (parity the reads did not need): %llu bytes, %llu errors",
       (unsigned long long)st.scan.repaired, (unsigned long long)st.scan.errors);
    scrub_now(p, &st);
    ok(strcmp(st.scan.state, "finished") == 0 && st.scan.errors == 0 && st.scan.repaired == 0,
       "a second scrub is clean (%llu repaired)", (unsigned long long)st.scan.repaired);
    ok(bs_pool_check(p, &e) == 0, "check passes: %s", e.msg);
    bs_pool_close(p);
    /* again, other leaves and ranges, and a scrub before any read */
    damage(data_start, leaf_used, 2000 + nleaf);
    p = import_mask(all_mask(), &e);
    if (!p) {
        ok(0, "import: %s", e.msg);
        return;
    }
    scrub_now(p, &st);
    ok(strcmp(st.scan.state, "finished") == 0 && st.scan.errors == 0 && st.scan.repaired > 0,
       "a scrub repairs fresh damage: %llu bytes, %llu errors",
       (unsigned long long)st.scan.repaired, (unsigned long long)st.scan.errors);
    scrub_now(p, &st);
    ok(st.scan.errors == 0 && st.scan.repaired == 0, "a second scrub is clean");
    all_good(p, "scrubbed");
    bs_pool_close(p);
}

static void test_missing(void)
{
    struct berr e = {0};
    unsigned gone = 0;
    for (unsigned k = 0; k < npar; k++)
        gone |= 1u << (nleaf - 1 - 2 * k % nleaf);
    if ((unsigned)__builtin_popcount(gone) < npar)
        gone = (1u << npar) - 1;
    bs_pool *p = import_mask(all_mask() & ~gone, &e);
    ok(p != NULL, "import with %u members missing: %s", npar, e.msg);
    if (!p)
        return;
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.state, "DEGRADED") == 0, "pool DEGRADED (%s)", st.state);
    all_good(p, "degraded");
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    uint64_t seed = 77 + nleaf;
    random_bytes(model + 2 * MiB, 3 * MiB, &seed);
    ok(v && bs_vol_pwrite(v, model + 2 * MiB, 3 * MiB, 2 * MiB, 0) == 0 && bs_vol_flush(v) == 0,
       "writes go on while degraded");
    bs_vol_close(v);
    all_good(p, "degraded, after writes");
    ok(bs_pool_check(p, &e) == 0, "check passes: %s", e.msg);
    bs_pool_close(p);
    /* one more than parity: refused */
    unsigned more = gone;
    for (unsigned i = 0; i < nleaf && (unsigned)__builtin_popcount(more) <= npar; i++)
        more |= 1u << i;
    p = import_mask(all_mask() & ~more, &e);
    ok(p == NULL && e.code == ENXIO && strstr(e.msg, "missing"),
       "%u missing: refused (%s)", npar + 1, e.msg);
    bs_pool_close(p);
    p = import_mask(all_mask(), &e);
    ok(p != NULL, "import with the members back: %s", e.msg);
    if (!p)
        return;
    all_good(p, "stale members back");
    uint64_t rs = resilver_now(p, &st);
    unsigned stale = 0;
    for (unsigned i = 0; i < nleaf; i++)
        stale += st.vdevs[i].stale;
    ok(stale == 0 && rs > 0 && st.scan.errors == 0 && strcmp(st.state, "ONLINE") == 0,
       "the %u members back are resilvered at import: %llu bytes, %s", npar,
       (unsigned long long)rs, st.state);
    scrub_now(p, &st);
    ok(st.scan.errors == 0 && st.scan.repaired == 0, "a second scrub is clean");
    bs_pool_close(p);
    /* the repaired members hold their part: drop others instead */
    unsigned other = 0;
    for (unsigned i = 0; i < nleaf && (unsigned)__builtin_popcount(other) < npar; i++)
        if (!(gone & (1u << i)))
            other |= 1u << i;
    p = import_mask(all_mask() & ~other, &e);
    ok(p != NULL, "import without %u other members: %s", npar, e.msg);
    if (p) {
        all_good(p, "resilvered members serve");
        bs_pool_close(p);
    }
}

static int count_err(const struct bs_pool_error *er, void *opaque)
{
    uint64_t *want = opaque;
    if (strcmp(er->dataset, "vol") == 0 && er->offset == want[0])
        want[1]++;
    return 0;
}

/* Garbage over the first sector of columns 0..ncols-1 of a block. */
static void smash_columns(const struct blocks *blk, size_t i, uint64_t data_start,
                          unsigned ncols)
{
    uint8_t junk[SECT];
    uint64_t seed = 4242 + i;
    uint64_t b = blk->off[i] / SECT;
    for (unsigned c = 0; c < ncols; c++) {
        uint64_t s = b + c; /* column c starts at sector b + c */
        random_bytes(junk, sizeof junk, &seed);
        raw_pwrite(paths[s % nleaf], junk, sizeof junk, data_start + s / nleaf * SECT);
    }
}

static void test_too_much(struct blocks *blk, uint64_t data_start)
{
    struct berr e = {0};
    /* re-read the block list: test_missing rewrote part of the volume */
    bs_pool *p = import_mask(all_mask(), &e);
    if (!p) {
        ok(0, "import: %s", e.msg);
        return;
    }
    pthread_mutex_lock(&p->lock);
    struct objdesc od = ds_find(p, "vol")->od;
    pthread_mutex_unlock(&p->lock);
    blk->n = 0;
    objtree_walk(&p->io, &od, 0, collect, blk);
    damage_at = blk;
    bs_pool_close(p);
    /* two full random blocks: one loses npar columns, one npar + 1 */
    size_t i = 0, j;
    while (i < blk->n && (blk->blkid[i] == UINT64_MAX || blk->blkid[i] < 8))
        i++;
    j = i + 1;
    while (j < blk->n && blk->blkid[j] == UINT64_MAX)
        j++;
    if (j >= blk->n) {
        ok(0, "no data blocks found");
        return;
    }
    smash_columns(blk, i, data_start, npar + 1);
    smash_columns(blk, j, data_start, npar);
    p = import_mask(all_mask(), &e);
    if (!p) {
        ok(0, "import: %s", e.msg);
        return;
    }
    int good, eio, wrong;
    read_all(p, &good, &eio, &wrong);
    ok(eio == 1 && wrong == 0 && good == (int)(VOLSIZE / BS) - 1,
       "raidz%u/%u: %u columns lost: EIO for that block only, %u lost: repaired (%d good, %d "
       "EIO, %d wrong)", npar, nleaf, npar + 1, npar, good, eio, wrong);
    struct bs_pool_stats st;
    scrub_now(p, &st);
    uint64_t want[2] = {blk->blkid[i] * BS, 0};
    int n = bs_pool_errors(p, count_err, want);
    ok(st.scan.errors == 1 && n == 1 && want[1] == 1, "the scrub names it (%d errors)", n);
    ok(st.checksum_errors > 0, "the pool counts checksum errors (%llu)",
       (unsigned long long)st.checksum_errors);
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    bs_vol_pwrite(v, model + want[0], BS, want[0], 0);
    bs_vol_flush(v);
    bs_vol_close(v);
    all_good(p, "after rewriting the lost block");
    scrub_now(p, &st);
    ok(st.scan.errors == 0 && st.scan.repaired == 0, "then a scrub is clean");
    bs_pool_close(p);
}

static void test_faults(void)
{
    struct berr e = {0};
    bs_pool *p = import_mask(all_mask(), &e);
    if (!p) {
        ok(0, "import: %s", e.msg);
        return;
    }
    char knob[64];
    snprintf(knob, sizeof knob, "vdev=%u fail_writes=on", nleaf - 1);
    bs_pool_debug(p, knob, &e);
    bs_vol *v = NULL;
    bs_vol_open(p, "vol", &v, &e);
    uint64_t seed = 31337;
    random_bytes(model + 8 * MiB, 2 * MiB, &seed);
    ok(v && bs_vol_pwrite(v, model + 8 * MiB, 2 * MiB, 8 * MiB, 0) == 0 && bs_vol_flush(v) == 0,
       "writes succeed with a leaf failing writes");
    bs_vol_close(v);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.vdevs[nleaf - 1].state, "FAULTED") == 0 && strcmp(st.state, "DEGRADED") == 0,
       "the leaf is FAULTED, the pool DEGRADED (%s)", st.state);
    bs_pool_debug(p, "reset", &e);
    char idx[8];
    snprintf(idx, sizeof idx, "%u", nleaf - 1);
    ok(bs_pool_online(p, idx, &e) == 0, "online it: %s", e.msg);
    uint64_t rs = resilver_now(p, &st);
    ok(strcmp(st.state, "ONLINE") == 0 && st.scan.errors == 0 && rs > 0,
       "a resilver fills it (%llu bytes)", (unsigned long long)rs);
    all_good(p, "resilvered");
    for (unsigned k = 0; k < npar; k++) {
        snprintf(knob, sizeof knob, "vdev=%u fail_reads=on", k);
        bs_pool_debug(p, knob, &e);
    }
    bs_pool_close(p);
    p = import_mask(all_mask(), &e);
    if (!p) {
        ok(0, "import: %s", e.msg);
        return;
    }
    for (unsigned k = 0; k < npar; k++) {
        snprintf(knob, sizeof knob, "vdev=%u fail_reads=on", k);
        bs_pool_debug(p, knob, &e);
    }
    all_good(p, "leaves failing reads");
    bs_pool_debug(p, "reset", &e);
    /* offline: up to npar leaves */
    unsigned off = 0;
    for (unsigned k = 0; k < nleaf; k++) {
        snprintf(idx, sizeof idx, "%u", k);
        if (bs_pool_offline(p, idx, &e) < 0)
            break;
        off++;
    }
    ok(off == npar && e.code == EBUSY, "%u leaves can go offline, not more: %s", off, e.msg);
    all_good(p, "leaves offline");
    for (unsigned k = 0; k < off; k++) {
        snprintf(idx, sizeof idx, "%u", k);
        bs_pool_online(p, idx, &e);
    }
    scrub_now(p, &st);
    ok(strcmp(st.state, "ONLINE") == 0 && st.scan.errors == 0, "online again, scrubbed: %s",
       st.state);
    ok(bs_pool_check(p, &e) == 0, "check passes: %s", e.msg);
    bs_pool_close(p);
}

static void run(unsigned parity, unsigned n)
{
    static struct blocks blk;
    char name[16];
    npar = parity;
    nleaf = n;
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof name, "z%u-%u-%u.img", parity, n, i);
        paths[i] = strdup(tmp_path(name));
    }
    uint64_t data_start = 0, leaf_used = 0;
    if (create(&blk, &data_start, &leaf_used)) {
        test_heal(data_start, leaf_used);
        test_missing();
        test_too_much(&blk, data_start);
        test_faults();
    }
    for (unsigned i = 0; i < n; i++) {
        unlink(paths[i]);
        free((void *)paths[i]);
    }
}

static void test_spec_errors(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    const char *a = tmp_path("s0.img"), *b = tmp_path("s1.img"), *c = tmp_path("s2.img");
    const char *two[] = {"raidz2", a, b};
    ok(bs_pool_create("x", two, 3, 128 * MiB, NULL, &p, &e) == -EINVAL, "raidz2 of two: %s",
       e.msg);
    const char *bad[] = {"raidz9", a, b, c};
    ok(bs_pool_create("x", bad, 4, 128 * MiB, NULL, &p, &e) == -EINVAL, "raidz9: %s", e.msg);
    const char *plain[] = {"raidz", a, b, c};
    ok(bs_pool_create("x", plain, 4, 128 * MiB, NULL, &p, &e) == 0, "raidz means raidz1: %s",
       e.msg);
    struct bs_pool_stats st;
    if (p) {
        bs_pool_stats(p, &st);
        ok(strcmp(st.layout, "raidz1") == 0, "layout %s", st.layout);
        bs_pool_close(p);
    }
}

int main(void)
{
    model = malloc(VOLSIZE);
    test_asize();
    static const unsigned cfg[][2] = {{1, 3}, {1, 4}, {2, 4}, {2, 5}, {3, 5}, {3, 6}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++)
        run(cfg[i][0], cfg[i][1]);
    test_spec_errors();
    free(model);
    tmp_cleanup();
    return done_testing();
}
