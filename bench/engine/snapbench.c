/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshot costs in the engine, no daemon (issue 4 targets):
 *  - bs_snap_create time for volumes of 1, 4, 16, 64 GiB (each with data
 *    spread over its whole size, so the trees are as tall as they get);
 *  - bs_snap_create time with 0, 100, 1000 existing snapshots;
 *  - bs_snap_list of 1000 snapshots;
 *  - destroying 1000 snapshots (each with unique blocks).
 * Usage: snapbench POOLFILE   (the file is created sparse, 256 GiB)
 * Build: see docs/PERFORMANCE.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "berth/store.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int count_cb(const struct bs_snap_props *pr, void *o)
{
    (void)pr;
    (*(size_t *)o)++;
    return 0;
}

static double median(double *v, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (v[j] < v[i]) {
                double t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
    return v[n / 2];
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s POOLFILE\n", argv[0]);
        return 2;
    }
    unlink(argv[1]);
    struct berr e = {0};
    const char *v[] = { argv[1] };
    bs_pool *p;
    if (bs_pool_create("bench", v, 1, 256ULL << 30, NULL, &p, &e) < 0) {
        fprintf(stderr, "create: %s\n", e.msg);
        return 1;
    }
    static uint8_t buf[1 << 20];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 1);
    printf("| measure | result |\n|---|---|\n");
    const unsigned gib[] = { 1, 4, 16, 64 };
    for (int k = 0; k < 4; k++) {
        char name[32];
        snprintf(name, sizeof name, "v%u", gib[k]);
        struct bs_vol_props pr;
        bs_vol_props_init(p, &pr);
        snprintf(pr.name, sizeof pr.name, "%s", name);
        pr.volsize = (uint64_t)gib[k] << 30;
        bs_vol_create(p, &pr, false, &e);
        bs_vol *vol;
        bs_vol_open(p, name, &vol, &e);
        /* 1 MiB every 64 MiB: every top-level indirect block exists */
        for (uint64_t off = 0; off < pr.volsize; off += 64ULL << 20)
            bs_vol_pwrite(vol, buf, sizeof buf, off, 0);
        bs_vol_close(vol);
        bs_pool_sync(p, NULL);
        double t[5];
        for (int i = 0; i < 5; i++) {
            char sn[64];
            snprintf(sn, sizeof sn, "%s@t%d", name, i);
            const char *n1[] = { sn };
            double t0 = now_ms();
            if (bs_snap_create(p, n1, 1, &e) < 0)
                fprintf(stderr, "snapshot: %s\n", e.msg);
            t[i] = now_ms() - t0;
        }
        printf("| snapshot create, %u GiB volume (median of 5) | %.2f ms |\n", gib[k],
               median(t, 5));
    }
    /* many snapshots of one small volume, each after a unique write */
    struct bs_vol_props pr;
    bs_vol_props_init(p, &pr);
    snprintf(pr.name, sizeof pr.name, "many");
    pr.volsize = 1ULL << 30;
    bs_vol_create(p, &pr, false, &e);
    bs_vol *vol;
    bs_vol_open(p, "many", &vol, &e);
    double at[3] = {0};
    double t_all0 = now_ms();
    for (int i = 0; i < 1000; i++) {
        bs_vol_pwrite(vol, buf, 65536, (uint64_t)i * 65536, 0);
        char sn[64];
        snprintf(sn, sizeof sn, "many@s%04d", i);
        const char *n1[] = { sn };
        double t0 = now_ms();
        bs_snap_create(p, n1, 1, &e);
        double dt = now_ms() - t0;
        if (i == 0)
            at[0] = dt;
        else if (i == 100)
            at[1] = dt;
        else if (i == 999)
            at[2] = dt;
    }
    double t_all = now_ms() - t_all0;
    bs_vol_close(vol);
    printf("| snapshot create with 0 / 100 / 999 existing snapshots | %.2f / %.2f / %.2f ms |\n",
           at[0], at[1], at[2]);
    printf("| 1000 snapshots created, each after a 64 KiB write | %.0f ms total |\n", t_all);
    double lt[5];
    size_t cnt = 0;
    for (int i = 0; i < 5; i++) {
        cnt = 0;
        double t0 = now_ms();
        bs_snap_list(p, NULL, count_cb, &cnt, &e);
        lt[i] = now_ms() - t0;
    }
    printf("| list all %zu snapshots (engine, median of 5) | %.2f ms |\n", cnt, median(lt, 5));
    struct bs_pool_stats st0, st1;
    bs_pool_stats(p, &st0);
    double d0 = now_ms();
    for (int i = 0; i < 1000; i += 2) { /* every other one: each merge frees blocks */
        char sn[64];
        snprintf(sn, sizeof sn, "many@s%04d", i);
        if (bs_snap_destroy(p, sn, 0, &e) < 0)
            fprintf(stderr, "destroy: %s\n", e.msg);
    }
    double dd = now_ms() - d0;
    bs_pool_sync(p, NULL);
    bs_pool_stats(p, &st1);
    printf("| destroy 500 snapshots (every other one) | %.0f ms (%.2f ms each) |\n", dd, dd / 500);
    printf("| check after destroys | %s |\n", bs_pool_check(p, &e) == 0 ? "clean" : e.msg);
    bs_pool_close(p);
    unlink(argv[1]);
    return 0;
}
