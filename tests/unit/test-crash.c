/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Crash consistency: a write + flush workload runs until a simulated power
 * cut (vdev "torn_write_after=N": the N-th write lands half, then the device
 * is gone); the pool is dropped without any further write (pool_abandon) and
 * re-imported.  Every block acknowledged by a flush must hold its flushed
 * contents or a later write's, never anything else; bs_pool_check must pass,
 * and the pool must keep working (more txgs, check again). */
#include <string.h>

#include "common/util.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 16384u
#define NBLK 1024u
#define MAXP 64

struct blkstate {
    uint32_t acked;        /* tag durable per the last successful flush (0 = zeros) */
    uint32_t pend[MAXP];   /* tags written since */
    unsigned npend;
};

static void fill(uint8_t *b, uint32_t blk, uint32_t tag)
{
    pattern(b, BS, (uint64_t)blk * BS, tag);
    memcpy(b, &tag, sizeof tag);
}

static bool matches(const uint8_t *got, uint32_t blk, uint32_t tag, uint8_t *tmp)
{
    if (tag == 0)
        return buf_is_zero(got, BS);
    fill(tmp, blk, tag);
    return memcmp(got, tmp, BS) == 0;
}

/* Returns the number of blocks with wrong contents, or -1 on setup trouble. */
static int one_run(int torn_after, uint64_t seed, int *flushes_ok, struct berr *e)
{
    const char *path = tmp_path("crash.img");
    const char *v[] = { path };
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.force = true;
    bs_pool *p;
    if (bs_pool_create("crash", v, 1, 128 * MiB, &o, &p, e) < 0)
        return -1;
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = (uint64_t)NBLK * BS;
    if (bs_vol_create(p, &vp, false, e) < 0)
        return -1;
    bs_vol *vol;
    bs_vol_open(p, "v", &vol, e);
    struct blkstate *st = calloc(NBLK, sizeof *st);
    uint8_t *b = malloc(BS), *tmp = malloc(BS);
    uint32_t tag = 1;
    char knob[64];
    snprintf(knob, sizeof knob, "torn_write_after=%d", torn_after);
    bs_pool_debug(p, knob, e);
    *flushes_ok = 0;
    for (int round = 0; round < 40; round++) {
        bool failed = false;
        for (int k = 0; k < 24; k++) {
            uint32_t blk = (uint32_t)(xrand(&seed) % NBLK);
            if (st[blk].npend >= MAXP)
                continue;
            uint32_t t = ++tag;
            if (xrand(&seed) % 8 == 0) {
                t = 0; /* trims too */
                if (bs_vol_trim(vol, BS, (uint64_t)blk * BS, 0) < 0)
                    failed = true;
            } else {
                fill(b, blk, t);
                if (bs_vol_pwrite(vol, b, BS, (uint64_t)blk * BS, 0) < 0)
                    failed = true;
            }
            st[blk].pend[st[blk].npend++] = t;
        }
        if (failed || bs_vol_flush(vol) < 0)
            break;
        (*flushes_ok)++;
        for (uint32_t i = 0; i < NBLK; i++) {
            if (st[i].npend)
                st[i].acked = st[i].pend[st[i].npend - 1];
            st[i].npend = 0;
        }
    }
    bs_vol_close(vol);
    pool_abandon(p); /* power cut: nothing more reaches the device */

    int bad = 0;
    if (bs_pool_import(v, 1, "crash", &p, e) < 0) {
        diag("import after crash failed: %s", e->msg);
        bad = -1;
        goto out;
    }
    bs_vol_open(p, "v", &vol, e);
    for (uint32_t i = 0; i < NBLK; i++) {
        if (bs_vol_pread(vol, b, BS, (uint64_t)i * BS) < 0) {
            bad++;
            continue;
        }
        bool okb = matches(b, i, st[i].acked, tmp);
        for (unsigned k = 0; !okb && k < st[i].npend; k++)
            okb = matches(b, i, st[i].pend[k], tmp);
        if (!okb)
            bad++;
    }
    if (bs_pool_check(p, e) < 0) {
        diag("check after crash (torn %d): %s", torn_after, e->msg);
        bad++;
    }
    /* the pool keeps working after recovery */
    for (int k = 0; k < 50; k++) {
        uint32_t blk = (uint32_t)(xrand(&seed) % NBLK);
        fill(b, blk, ++tag);
        bs_vol_pwrite(vol, b, BS, (uint64_t)blk * BS, 0);
        if (k % 10 == 9 && bs_vol_flush(vol) < 0)
            bad++;
    }
    if (bs_pool_check(p, e) < 0) {
        diag("check after recovery writes (torn %d): %s", torn_after, e->msg);
        bad++;
    }
    bs_vol_close(vol);
    bs_pool_close(p);
out:
    free(st);
    free(b);
    free(tmp);
    return bad;
}

int main(void)
{
    struct berr e = {0};
    int total_bad = 0, runs = 0, total_flushes = 0;
    static const int ns[] = { 1,  2,  3,  4,  5,  7,  9,  12, 15, 19, 24, 30, 37, 45,
                              55, 68, 83, 100, 130, 170, 220, 300, 400, 600, 900 };
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        int flushes = 0;
        berr_clear(&e);
        int bad = one_run(ns[i], 1000 + i, &flushes, &e);
        ok(bad == 0, "torn write after %d writes: %d flushes acknowledged, %d bad blocks %s",
           ns[i], flushes, bad, bad ? e.msg : "");
        total_bad += bad != 0;
        total_flushes += flushes;
        runs++;
    }
    diag("%d crash runs (%d with damage), %d acknowledged flushes verified", runs, total_bad,
         total_flushes);
    tmp_cleanup();
    return done_testing();
}
