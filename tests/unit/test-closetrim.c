/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The final autotrim pass when a pool is exported or closed (txg_fini):
 * space freed in the last txgs before the pool goes away, still queued for
 * lazy autotrim (alloc_trim.c), is punched from the pool file then, and not
 * left allocated in the host file until `berth pool trim`.
 *
 * The queue is made deterministic, not raced against the trim thread's 5 s
 * idle pass: after the frees are released, a small write stays dirty in the
 * open txg (txg_timeout is raised to 10 min), and the idle pass neither
 * starts nor continues while dirty data exists; the export's own commit is
 * one allocating txg, fewer than ALLOC_TRIM_DELAY_TXGS, so the runs are not
 * ripe for an ordinary pass either.  Only the final pass can punch them.
 * Both ways out are covered: export, and close (the pool handle freed
 * without marking it exported).  After each, the pool imports, the data is
 * intact, the checker and a scrub find nothing wrong. */
#include <sys/stat.h>
#include <time.h>

#include "berth/store.h"
#include "store/alloc.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1024ULL * 1024)
#define REGION (16 * MiB)

static const char *img;

static uint64_t file_alloc(void)
{
    struct stat st;
    return stat(img, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

static uint64_t queued_bytes(bs_pool *p)
{
    uint64_t warm = 0, queued = 0, total = 0;
    for (unsigned t = 0; t < atomic_load(&p->io.ntops); t++) {
        alloc_warm_stats(p->io.top[t].alloc, &warm, &queued);
        total += queued;
    }
    return total;
}

static void write_region(bs_vol *v, uint64_t off, uint64_t seed)
{
    uint8_t *buf = malloc(REGION);
    random_bytes(buf, REGION, &seed); /* incompressible: allocates REGION */
    ok(bs_vol_pwrite(v, buf, REGION, off, 0) == 0, "write %llu MiB at %llu MiB",
       (unsigned long long)(REGION / MiB), (unsigned long long)(off / MiB));
    free(buf);
}

static bool region_is(bs_vol *v, uint64_t off, uint64_t seed)
{
    uint8_t *want = malloc(REGION), *got = malloc(REGION);
    if (seed)
        random_bytes(want, REGION, &seed);
    else
        memset(want, 0, REGION);
    bool same = bs_vol_pread(v, got, REGION, off) == 0 && memcmp(want, got, REGION) == 0;
    free(want);
    free(got);
    return same;
}

/* Import, check the volume's first three regions (seed 0: zeros), run the
 * checker and a scrub. */
static bs_pool *import_and_verify(const char *what, const uint64_t seeds[3])
{
    struct berr e = {0};
    bs_pool *p = NULL;
    const char *v[] = {img};
    ok(bs_pool_import(v, 1, "tank", &p, &e) == 0, "%s: import: %s", what, e.msg);
    if (!p)
        return NULL;
    bs_vol *vol = NULL;
    ok(bs_vol_open(p, "v", &vol, &e) == 0, "%s: open: %s", what, e.msg);
    if (vol) {
        bool all = true;
        for (int i = 0; i < 3; i++)
            all &= region_is(vol, i * REGION, seeds[i]);
        ok(all, "%s: the data reads back (discarded regions as zeros)", what);
        bs_vol_close(vol);
    }
    ok(bs_pool_check(p, &e) == 0, "%s: checker: %s", what, e.msg);
    ok(bs_pool_scrub(p, BS_SCRUB_START, &e) == 0, "%s: scrub starts: %s", what, e.msg);
    bs_pool_scrub_wait(p);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.scan.state, "finished") == 0 && st.scan.errors == 0 && st.scan.repaired == 0 &&
           st.checksum_errors == 0 && st.scan.examined >= 2 * REGION,
       "%s: scrub clean (%s, %llu MiB examined, %llu errors)", what, st.scan.state,
       (unsigned long long)(st.scan.examined / MiB), (unsigned long long)st.scan.errors);
    return p;
}

/* Free 2 regions' worth in the last txgs (discard one, overwrite another),
 * leave a small write dirty, then export (or close); the freed space must
 * be punched by the time the call returns. */
static bs_pool *free_then_leave(bs_pool *p, uint64_t seeds[3], bool export, const char *what)
{
    struct berr e = {0};
    bs_vol *vol = NULL;
    ok(bs_vol_open(p, "v", &vol, &e) == 0, "%s: open: %s", what, e.msg);
    if (!vol)
        return p;
    ok(bs_vol_trim(vol, REGION, 0, 0) == 0, "%s: discard region 0", what);
    seeds[0] = 0;
    seeds[1] += 100;
    write_region(vol, REGION, seeds[1]); /* overwrite: the old copy is freed */
    ok(bs_vol_flush(vol) == 0, "%s: flush", what);
    /* commits until the frees are released: warm and queued for autotrim */
    ok(bs_pool_sync(p, &e) == 0, "%s: pool sync: %s", what, e.msg);
    uint8_t small[4096];
    memset(small, 0x5c, sizeof small);
    ok(bs_vol_pwrite(vol, small, sizeof small, 3 * REGION + REGION - sizeof small, 0) == 0,
       "%s: a small write stays dirty (holds off the idle pass)", what);
    uint64_t q = queued_bytes(p);
    ok(q >= 2 * REGION - MiB, "%s: %llu MiB queued for lazy autotrim before leaving", what,
       (unsigned long long)(q / MiB));
    uint64_t before = file_alloc();
    bs_vol_close(vol);
    if (export) {
        ok(bs_pool_export(p, false, &e) == 0, "%s: export: %s", what, e.msg);
    } else {
        bs_pool_close(p);
    }
    uint64_t after = file_alloc();
    ok(after + 2 * REGION - 2 * MiB <= before,
       "%s: the pool file's allocated size dropped by the freed space (%llu -> %llu MiB)", what,
       (unsigned long long)(before / MiB), (unsigned long long)(after / MiB));
    return NULL;
}

int main(void)
{
    struct bs_tunables tun;
    bs_tunables_get(&tun);
    tun.txg_timeout_ms = 600000; /* only explicit syncs commit (top of file) */
    bs_tunables_set(&tun);

    img = tmp_path("pool.img");
    const char *v[] = {img};
    struct berr e = {0};
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    bs_pool *p = NULL;
    ok(bs_pool_create("tank", v, 1, 256 * MiB, &o, &p, &e) == 0, "create: %s", e.msg);
    if (!p)
        return done_testing();
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(st.autotrim, "autotrim is on by default");
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = 4 * REGION;
    ok(bs_vol_create(p, &vp, false, &e) == 0, "create volume: %s", e.msg);
    bs_vol *vol = NULL;
    ok(bs_vol_open(p, "v", &vol, &e) == 0, "open: %s", e.msg);
    if (!vol)
        return done_testing();
    uint64_t seeds[3] = {11, 22, 33};
    for (int i = 0; i < 3; i++)
        write_region(vol, i * REGION, seeds[i]);
    ok(bs_vol_flush(vol) == 0, "flush");
    bs_vol_close(vol);
    ok(bs_pool_sync(p, &e) == 0, "sync: %s", e.msg);

    p = free_then_leave(p, seeds, true, "export");
    p = import_and_verify("after export", seeds);
    if (!p)
        return done_testing();
    ok(bs_vol_open(p, "v", &vol, &e) == 0, "open: %s", e.msg);
    if (!vol)
        return done_testing();
    uint8_t small[4096];
    ok(bs_vol_pread(vol, small, sizeof small, 4 * REGION - sizeof small) == 0 && small[0] == 0x5c &&
           small[4095] == 0x5c, "the write left dirty at export is there");
    /* rewrite region 0 so that the close round has something to discard */
    seeds[0] = 44;
    write_region(vol, 0, seeds[0]);
    ok(bs_vol_trim(vol, sizeof small, 4 * REGION - sizeof small, 0) == 0, "discard the 4K");
    ok(bs_vol_flush(vol) == 0, "flush");
    bs_vol_close(vol);
    ok(bs_pool_sync(p, &e) == 0, "sync: %s", e.msg);

    p = free_then_leave(p, seeds, false, "close");
    p = import_and_verify("after close", seeds);
    if (p) {
        ok(bs_vol_open(p, "v", &vol, &e) == 0, "open: %s", e.msg);
        if (vol) {
            ok(bs_vol_pread(vol, small, sizeof small, 4 * REGION - sizeof small) == 0 &&
                   small[0] == 0x5c && small[4095] == 0x5c,
               "the write left dirty at close is there");
            bs_vol_close(vol);
        }
        ok(bs_pool_export(p, false, &e) == 0, "export: %s", e.msg);
    }
    tmp_cleanup();
    return done_testing();
}
