/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encrypted vs plain sequential read of the engine, in one process: two
 * volumes of the same pool (one AES-256-GCM with a raw key, one plaintext),
 * prefilled with the same incompressible data, then read in 1 MiB requests by
 * NTHR threads (each a contiguous share) in interleaved rounds, the block
 * cache kept small so every block is read from the pool file.  Prints per
 * round the CPU time per GiB (getrusage of the process: user + system) and
 * the throughput of each, and the medians and their ratios, so a loaded,
 * shared machine still gives a comparable figure (docs/PERFORMANCE.md).
 *
 *   encread POOLFILE   env: SIZE_MIB (default 1024), ROUNDS (5), NTHR (2),
 *                           CACHE_MIB (64), VBS (16384)
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

static uint64_t g_size;
static int g_nthr;
static bs_vol *g_cur;

static double cpu_now(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec +
           r.ru_stime.tv_usec / 1e6;
}

static void *reader(void *a)
{
    uint64_t i = (uint64_t)(uintptr_t)a, share = g_size / (uint64_t)g_nthr;
    uint8_t *buf = aligned_alloc(4096, 1 << 20);
    for (uint64_t off = i * share; off < (i + 1) * share; off += 1 << 20)
        if (bs_vol_pread(g_cur, buf, 1 << 20, off) != 0) {
            fprintf(stderr, "read error at %llu\n", (unsigned long long)off);
            exit(1);
        }
    free(buf);
    return NULL;
}

/* One pass over the volume: CPU seconds and wall seconds. */
static void pass(bs_vol *v, double *cpu, double *wall)
{
    pthread_t th[16];
    g_cur = v;
    double c0 = cpu_now();
    uint64_t t0 = now_ns();
    for (int i = 0; i < g_nthr; i++)
        pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)i);
    for (int i = 0; i < g_nthr; i++)
        pthread_join(th[i], NULL);
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
    const char *file = argc > 1 ? argv[1] : "/tmp/encread.img";
    g_size = (uint64_t)envl("SIZE_MIB", 1024) << 20;
    int rounds = (int)envl("ROUNDS", 5);
    g_nthr = (int)envl("NTHR", 2);
    if (g_nthr < 1 || g_nthr > 16 || rounds < 1 || rounds > 64 || g_size < (16u << 20)) {
        fprintf(stderr, "bad SIZE_MIB, ROUNDS or NTHR\n");
        return 1;
    }
    struct bs_tunables tu;
    bs_tunables_get(&tu);
    tu.cache_bytes = (uint64_t)envl("CACHE_MIB", 64) << 20;
    bs_tunables_set(&tu);
    unlink(file);
    struct berr e = {0};
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    bs_pool *p;
    const char *v[] = { file };
    if (bs_pool_create("er", v, 1, 3 * g_size + (1ull << 30), &o, &p, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
    bs_vol *vol[2];
    uint8_t *b = malloc(1 << 20);
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
        uint64_t x = 88172645463325252ULL;
        for (uint64_t off = 0; off < g_size; off += 1 << 20) {
            for (size_t i = 0; i < (1 << 20); i += 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(b + i, &x, 8);
            }
            if (bs_vol_pwrite(vol[k], b, 1 << 20, off, 0)) {
                fprintf(stderr, "write error\n");
                return 1;
            }
        }
        bs_pool_sync(p, &e);
    }
    free(b);
    double cpu[2][64], mbs[2][64];
    double gib = (double)g_size / (1ull << 30);
    printf("%d rounds, %d threads, %.2f GiB per volume, cache %ld MiB\n", rounds, g_nthr, gib,
           envl("CACHE_MIB", 64));
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 2; k++) {
            double c, w;
            pass(vol[k], &c, &w);
            cpu[k][r] = c / gib;
            mbs[k][r] = g_size / w / 1e6;
        }
        printf("round %d: plain %.3f s CPU/GiB %6.0f MB/s | encrypted %.3f s CPU/GiB %6.0f MB/s"
               " | CPU ratio %.2f\n", r + 1, cpu[0][r], mbs[0][r], cpu[1][r], mbs[1][r],
               cpu[0][r] / cpu[1][r]);
    }
    double c0 = median(cpu[0], rounds), c1 = median(cpu[1], rounds);
    double m0 = median(mbs[0], rounds), m1 = median(mbs[1], rounds);
    printf("median: plain %.3f s CPU/GiB %.0f MB/s, encrypted %.3f s CPU/GiB %.0f MB/s\n", c0, m0,
           c1, m1);
    printf("encrypted/plain: throughput %.2f, CPU per GiB plain/encrypted %.2f\n", m1 / m0,
           c0 / c1);
    bs_vol_close(vol[0]);
    bs_vol_close(vol[1]);
    bs_pool_close(p);
    unlink(file);
    return 0;
}
