/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Transaction groups: the timer commits on its own, flush and FUA are
 * durable across a power cut, the dirty throttle lets big writes through a
 * tiny limit, many txgs keep the pool consistent, and an I/O error during a
 * sync faults the pool without corrupting it (reads keep working, the last
 * committed state imports). */
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)

static uint64_t pool_txg(bs_pool *p)
{
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    return st.txg;
}

static bs_pool *mkpool(const char *file, bs_vol **vol, uint64_t volsize)
{
    struct berr e = {0};
    const char *v[] = { tmp_path(file) };
    bs_pool *p = NULL;
    if (bs_pool_create("t", v, 1, 128 * MiB, NULL, &p, &e) < 0) {
        diag("create: %s", e.msg);
        return NULL;
    }
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = volsize;
    bs_vol_create(p, &vp, false, &e);
    bs_vol_open(p, "v", vol, &e);
    return p;
}

static bs_pool *crash_and_import(bs_pool *p, bs_vol **vol, const char *file)
{
    struct berr e = {0};
    bs_vol_close(*vol);
    *vol = NULL;
    pool_abandon(p);
    const char *v[] = { tmp_path(file) };
    if (bs_pool_import(v, 1, NULL, &p, &e) < 0) {
        diag("import: %s", e.msg);
        return NULL;
    }
    bs_vol_open(p, "v", vol, &e);
    return p;
}

int main(void)
{
    struct berr e = {0};
    struct bs_tunables old, tun;
    bs_tunables_get(&old);
    tun = old;
    tun.txg_timeout_ms = 100;
    bs_tunables_set(&tun);

    bs_vol *vol;
    bs_pool *p = mkpool("timer.img", &vol, 8 * MiB);
    uint8_t buf[65536], rd[65536];
    pattern(buf, sizeof buf, 0, 1);
    uint64_t t0 = pool_txg(p);
    bs_vol_pwrite(vol, buf, sizeof buf, 0, 0);
    struct timespec ts = { 0, 400 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    ok(pool_txg(p) > t0, "the timer committed a txg (%llu -> %llu)", (unsigned long long)t0,
       (unsigned long long)pool_txg(p));
    /* the write's txg is followed by empty ones until its deferred frees
     * drain (txg.c); wait for that to end (a loaded machine stretches it),
     * then nothing more may commit */
    uint64_t t1 = pool_txg(p);
    for (int i = 0; i < 50; i++) {
        struct timespec quiet = { 0, 600 * 1000 * 1000 };
        nanosleep(&quiet, NULL);
        if (pool_txg(p) == t1)
            break;
        t1 = pool_txg(p);
    }
    nanosleep(&ts, NULL);
    ok(pool_txg(p) == t1, "an idle pool commits nothing (settled at txg %llu)",
       (unsigned long long)t1);
    bs_tunables_set(&old);

    /* flush and FUA survive a power cut */
    pattern(buf, sizeof buf, 100000, 2);
    ok(bs_vol_pwrite(vol, buf, sizeof buf, 100000, 0) == 0 && bs_vol_flush(vol) == 0, "flush");
    pattern(buf, sizeof buf, 300000, 3);
    ok(bs_vol_pwrite(vol, buf, sizeof buf, 300000, BS_IO_FUA) == 0, "FUA write");
    p = crash_and_import(p, &vol, "timer.img");
    ok(p != NULL, "import after the cut");
    pattern(buf, sizeof buf, 100000, 2);
    ok(p && bs_vol_pread(vol, rd, sizeof rd, 100000) == 0 && memcmp(rd, buf, sizeof rd) == 0,
       "flushed write is durable");
    pattern(buf, sizeof buf, 300000, 3);
    ok(p && bs_vol_pread(vol, rd, sizeof rd, 300000) == 0 && memcmp(rd, buf, sizeof rd) == 0,
       "FUA write is durable");
    bs_vol_close(vol);
    bs_pool_close(p);

    /* a tiny dirty limit throttles but lets everything through */
    tun = old;
    tun.dirty_max_bytes = 1 * MiB;
    bs_tunables_set(&tun);
    p = mkpool("throttle.img", &vol, 48 * MiB);
    uint8_t *big = malloc(MiB);
    int errs = 0;
    for (uint64_t off = 0; off < 48 * MiB; off += MiB) {
        pattern(big, MiB, off, 4);
        errs += bs_vol_pwrite(vol, big, MiB, off, 0) != 0;
    }
    ok(errs == 0 && pool_txg(p) > 10, "48M through a 1M dirty limit (%llu txgs)",
       (unsigned long long)pool_txg(p));
    int bad = 0;
    for (uint64_t off = 0; off < 48 * MiB; off += MiB) {
        pattern(big, MiB, off, 4);
        bad += bs_vol_pread(vol, rd, sizeof rd, off + 5000) != 0 ||
               memcmp(rd, big + 5000, sizeof rd) != 0;
    }
    ok(bad == 0, "data intact");
    bs_tunables_set(&old);

    /* many txgs, each checked */
    uint64_t seed = 3;
    int checks_ok = 0;
    for (int i = 0; i < 60; i++) {
        for (int k = 0; k < 20; k++) {
            uint64_t len = 1 + xrand(&seed) % sizeof buf;
            uint64_t off = xrand(&seed) % (48 * MiB - len);
            pattern(buf, len, off, 5);
            if (k % 5 == 4)
                bs_vol_trim(vol, len, off, 0);
            else
                bs_vol_pwrite(vol, buf, len, off, 0);
        }
        if (bs_pool_sync(p, &e) == 0 && bs_pool_check(p, &e) == 0)
            checks_ok++;
        else
            diag("txg %d: %s", i, e.msg);
    }
    ok(checks_ok == 60, "60 txgs, bs_pool_check passed after each");

    /* I/O errors during sync fault the pool without damage */
    pattern(buf, sizeof buf, 0, 6);
    bs_vol_pwrite(vol, buf, sizeof buf, 0, 0);
    bs_vol_flush(vol);
    uint64_t durable = pool_txg(p);
    ok(bs_pool_debug(p, "fail_writes=on", &e) == 0, "fail_writes=on");
    pattern(buf, sizeof buf, 0, 7);
    ok(bs_vol_pwrite(vol, buf, sizeof buf, 0, 0) == 0, "write is accepted into memory");
    ok(bs_vol_flush(vol) == -EIO, "flush fails with EIO");
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.state, "FAULTED") == 0 && st.txg == durable && st.write_errors > 0,
       "pool FAULTED at txg %llu, %llu write errors", (unsigned long long)st.txg,
       (unsigned long long)st.write_errors);
    ok(bs_vol_pread(vol, rd, sizeof rd, 0) == 0 && memcmp(rd, buf, sizeof rd) == 0,
       "reads still see the acknowledged data");
    ok(bs_vol_pwrite(vol, buf, 100, 0, 0) == -EIO, "new writes fail with EIO");
    ok(bs_pool_sync(p, &e) == -EIO, "sync: %s", e.msg);
    ok(bs_pool_debug(p, "fail_writes=off", &e) == 0, "device back");
    p = crash_and_import(p, &vol, "throttle.img");
    pattern(buf, sizeof buf, 0, 6);
    ok(p && pool_txg(p) == durable && bs_vol_pread(vol, rd, sizeof rd, 0) == 0 &&
           memcmp(rd, buf, sizeof rd) == 0,
       "re-import finds the last durable txg");
    ok(p && bs_pool_check(p, &e) == 0, "and it checks clean: %s", e.msg);
    ok(bs_pool_debug(p, "fail_reads=on", &e) == 0, "fail_reads=on");
    ok(bs_vol_pread(vol, rd, 4096, 40 * MiB) == -EIO, "uncached read fails with EIO");
    bs_pool_debug(p, "fail_reads=off", &e);
    bs_vol_close(vol);
    bs_pool_close(p);

    /* the early sync starts when the open txg alone holds 3/8 of dirty_max
     * (txg.c "Triggers"): 2.5 of 8 MiB waits for the (long) timer, 3.5
     * starts it */
    tun = old;
    tun.dirty_max_bytes = 8 * MiB;
    tun.txg_timeout_ms = 60000;
    bs_tunables_set(&tun);
    p = mkpool("trigger.img", &vol, 16 * MiB);
    errs = 0;
    uint64_t tk = pool_txg(p);
    for (uint64_t off = 0; off < 5 * MiB / 2; off += MiB / 2) {
        pattern(big, MiB / 2, off, 6);
        errs += bs_vol_pwrite(vol, big, MiB / 2, off, 0) != 0;
    }
    struct timespec wait = { 0, 500 * 1000 * 1000 };
    nanosleep(&wait, NULL);
    ok(errs == 0 && pool_txg(p) == tk, "2.5 MiB of an 8 MiB limit: no early sync (txg %llu -> %llu)",
       (unsigned long long)tk, (unsigned long long)pool_txg(p));
    pattern(big, MiB, 5 * MiB / 2, 6);
    errs += bs_vol_pwrite(vol, big, MiB, 5 * MiB / 2, 0) != 0;
    for (int i = 0; i < 100 && pool_txg(p) == tk; i++) {
        struct timespec step = { 0, 50 * 1000 * 1000 };
        nanosleep(&step, NULL);
    }
    ok(errs == 0 && pool_txg(p) > tk, "3.5 MiB: the sync started early (txg %llu -> %llu)",
       (unsigned long long)tk, (unsigned long long)pool_txg(p));
    bs_tunables_set(&old);
    bs_vol_close(vol);
    bs_pool_close(p);

    free(big);
    tmp_cleanup();
    return done_testing();
}
