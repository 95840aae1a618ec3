/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encrypted vs plain writes of the engine, in one process: two volumes of the
 * same pool (one AES-256-GCM with a raw key, one plaintext), prefilled with
 * the same incompressible data, then in interleaved rounds (plain and
 * encrypted, which one first alternates) a sequential rewrite of each volume in 1 MiB requests and RAND_MIB of 4 KiB
 * random writes, each followed by a pool sync (so the txg's leaf writes,
 * where encryption happens, are counted).  NTHR writer threads.  Prints per
 * round the CPU time (getrusage of the process: user + system) per GiB
 * written and the throughput, then the medians and their ratios: a loaded,
 * shared machine still gives a comparable figure (docs/PERFORMANCE.md).
 *
 *   encwrite POOLFILE   env: SIZE_MIB (default 512), RAND_MIB (64),
 *                            ROUNDS (5), NTHR (2), VBS (16384)
 *
 * BERTH_GCM=openssl makes crypt.c use OpenSSL instead of its VAES engine:
 * the same binary run both ways is an A/B of the cipher alone.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "berth/store.h"
#include "common/util.h"

#define SRC_BYTES (16u << 20) /* random source the requests are cut from */

static uint64_t g_size, g_rand;
static int g_nthr, g_round, g_random;
static bs_vol *g_cur;
static uint8_t *g_src;

static double cpu_now(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec +
           r.ru_stime.tv_usec / 1e6;
}

static uint64_t xs(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Request data: a window of the random source that moves with the offset
 * and the round, so every round writes other bytes (4 KiB aligned). */
static const uint8_t *data_at(uint64_t off, size_t len)
{
    uint64_t s = (off / 4096 * 7 + (uint64_t)g_round * 4099) * 4096 % (SRC_BYTES - len);
    return g_src + (s & ~(uint64_t)4095);
}

static void *writer(void *a)
{
    uint64_t i = (uint64_t)(uintptr_t)a;
    if (!g_random) {
        uint64_t share = g_size / (uint64_t)g_nthr;
        for (uint64_t off = i * share; off < (i + 1) * share; off += 1 << 20)
            if (bs_vol_pwrite(g_cur, data_at(off, 1 << 20), 1 << 20, off, 0) != 0)
                goto fail;
        return NULL;
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL * (i + 1) + (uint64_t)g_round;
    for (uint64_t n = 0; n < g_rand / 4096 / (uint64_t)g_nthr; n++) {
        uint64_t off = xs(&x) % (g_size / 4096) * 4096;
        if (bs_vol_pwrite(g_cur, data_at(off + n, 4096), 4096, off, 0) != 0)
            goto fail;
    }
    return NULL;
fail:
    fprintf(stderr, "write error\n");
    exit(1);
}

/* One pass (threads, then a pool sync): CPU seconds and wall seconds. */
static void pass(bs_pool *p, bs_vol *v, double *cpu, double *wall)
{
    pthread_t th[16];
    struct berr e = {0};
    g_cur = v;
    double c0 = cpu_now();
    uint64_t t0 = now_ns();
    for (int i = 0; i < g_nthr; i++)
        pthread_create(&th[i], NULL, writer, (void *)(uintptr_t)i);
    for (int i = 0; i < g_nthr; i++)
        pthread_join(th[i], NULL);
    if (bs_pool_sync(p, &e) < 0) {
        fprintf(stderr, "sync: %s\n", e.msg);
        exit(1);
    }
    *wall = (now_ns() - t0) / 1e9;
    *cpu = cpu_now() - c0;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long envl(const char *name, long def)
{
    const char *s = getenv(name);
    return s ? atol(s) : def;
}

int main(int argc, char **argv)
{
    const char *file = argc > 1 ? argv[1] : "/tmp/encwrite.img";
    g_size = (uint64_t)envl("SIZE_MIB", 512) << 20;
    g_rand = (uint64_t)envl("RAND_MIB", 64) << 20;
    int rounds = (int)envl("ROUNDS", 5);
    g_nthr = (int)envl("NTHR", 2);
    if (g_nthr < 1 || g_nthr > 16 || rounds < 1 || rounds > 64 || g_size < (16u << 20) ||
        g_rand < (1u << 20)) {
        fprintf(stderr, "bad SIZE_MIB, RAND_MIB, ROUNDS or NTHR\n");
        return 1;
    }
    g_src = malloc(SRC_BYTES);
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < SRC_BYTES; i += 8) {
        uint64_t r = xs(&x);
        memcpy(g_src + i, &r, 8);
    }
    unlink(file);
    struct berr e = {0};
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    bs_pool *p;
    const char *v[] = { file };
    if (bs_pool_create("ew", v, 1, 3 * g_size + (1ull << 30), &o, &p, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
    bs_vol *vol[2];
    for (int k = 0; k < 2; k++) {
        struct bs_vol_props vp;
        bs_vol_props_init(p, &vp);
        strcpy(vp.name, k ? "enc" : "plain");
        vp.volsize = g_size;
        vp.volblocksize = (uint32_t)envl("VBS", 16384);
        if (k) {
            vp.encrypted = true;
            vp.keyformat = BS_KEYFORMAT_RAW;
            strcpy(vp.keylocation, "prompt");
            vp.key = key;
            vp.keylen = 32;
        }
        if (bs_vol_create(p, &vp, false, &e) || bs_vol_open(p, vp.name, &vol[k], &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        double c, w;
        pass(p, vol[k], &c, &w); /* prefill */
    }
    double cpu[2][2][64], mbs[2][2][64];
    const char *what[2] = { "1 MiB sequential", "4 KiB random" };
    printf("%d rounds, %d threads, %llu MiB per volume, %llu MiB of random writes\n", rounds,
           g_nthr, (unsigned long long)(g_size >> 20), (unsigned long long)(g_rand >> 20));
    for (int r = 0; r < rounds; r++) {
        g_round = r + 1;
        for (int w = 0; w < 2; w++) {
            g_random = w;
            double bytes = w ? (double)g_rand : (double)g_size;
            for (int j = 0; j < 2; j++) {
                int k = (j + r) % 2; /* who goes first alternates: the second pays
                                      * for the first one's writeback and trims */
                double c, t;
                pass(p, vol[k], &c, &t);
                cpu[w][k][r] = c / (bytes / (1ull << 30));
                mbs[w][k][r] = bytes / t / 1e6;
            }
            printf("round %d %-16s: plain %.3f s CPU/GiB %6.0f MB/s | encrypted %.3f s CPU/GiB "
                   "%6.0f MB/s\n", r + 1, what[w], cpu[w][0][r], mbs[w][0][r], cpu[w][1][r],
                   mbs[w][1][r]);
        }
    }
    for (int w = 0; w < 2; w++) {
        double c0 = median(cpu[w][0], rounds), c1 = median(cpu[w][1], rounds);
        double m0 = median(mbs[w][0], rounds), m1 = median(mbs[w][1], rounds);
        printf("median %-16s: plain %.3f s CPU/GiB %.0f MB/s, encrypted %.3f s CPU/GiB %.0f "
               "MB/s; encrypted/plain throughput %.2f, CPU plain/encrypted %.2f\n", what[w], c0,
               m0, c1, m1, m1 / m0, c0 / c1);
    }
    bs_vol_close(vol[0]);
    bs_vol_close(vol[1]);
    bs_pool_close(p);
    unlink(file);
    free(g_src);
    return 0;
}
