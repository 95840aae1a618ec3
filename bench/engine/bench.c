/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In-process benchmark of the storage engine alone (no NBD): a pool file, a
 * 4 GiB volume, writer/reader threads calling the store API directly.
 * Environment: RANDDATA=1 (incompressible buffers, like fio's), FIO=SECS
 * (fio-like mode: prefill, then each workload), WHICH=rwRW (rand write/read,
 * seq Write/Read), NOTRIM=1 (autotrim off), DIRTY=MiB (dirty limit), NTHR=N,
 * DBG=1 (per-txg timings), COMP=off|lz4|zstd (volume compression, default
 * the pool's: lz4), ENC=1 (an encrypted volume, AES-256-GCM with a raw key),
 * POOL_LAYOUT=TYPE:N (a mirror or raidz1..3 of N files POOL.0 .. POOL.N-1
 * instead of one file POOL; "stripe": N single-file top-level vdevs).  Build and run: see docs/PERFORMANCE.md. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include "berth/store.h"
#include "common/util.h"
#include "common/log.h"
static bs_vol *g_vol; static uint64_t g_size; static int g_mode; static uint64_t g_bs; static double g_secs;
static _Atomic uint64_t g_ops;
static void *run(void *a) {
    uint64_t seed = (uint64_t)(uintptr_t)a * 7919 + 1;
    uint8_t *buf = aligned_alloc(4096, 1 << 20);
    if (getenv("RANDDATA")) { uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 12345; for (size_t i = 0; i < (1<<20); i += 8) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; memcpy(buf + i, &x, 8); } } else for (size_t i = 0; i < (1<<20); i++) buf[i] = (uint8_t)(i * 31 + (i >> 7));
    uint64_t t0 = now_ns(), n = 0, seq = ((uint64_t)(uintptr_t)a - 1) * (g_size / 4);
    while (now_ns() - t0 < g_secs * 1e9) {
        for (int k = 0; k < 64; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t off;
            if (g_mode < 2) off = ((seed >> 11) % (g_size / g_bs)) * g_bs;
            else { off = seq; seq += g_bs; if (seq >= g_size) seq = 0; }
            buf[0] = (uint8_t)seed; buf[100] = (uint8_t)(seed>>8); if (g_bs >= 4096 && getenv("RANDDATA")) { memcpy(buf + 8, &seed, 8); }
            int r = (g_mode & 1) ? bs_vol_pread(g_vol, buf, g_bs, off) : bs_vol_pwrite(g_vol, buf, g_bs, off, 0);
            if (r) { fprintf(stderr, "io err %d\n", r); exit(1); }
            n++;
        }
    }
    g_ops += n; free(buf); return NULL;
}
static struct rusage g_ru0;
static double ru_cpu(const struct rusage *a, const struct rusage *b) {
    return (b->ru_utime.tv_sec - a->ru_utime.tv_sec) + (b->ru_utime.tv_usec - a->ru_utime.tv_usec) / 1e6 + (b->ru_stime.tv_sec - a->ru_stime.tv_sec) + (b->ru_stime.tv_usec - a->ru_stime.tv_usec) / 1e6;
}
static void bench(const char *name, int mode, uint64_t bs, int nthr, double secs) {
    g_mode = mode; g_bs = bs; g_secs = secs; g_ops = 0;
    pthread_t th[16]; uint64_t t0 = now_ns(); struct rusage ru1; getrusage(RUSAGE_SELF, &g_ru0);
    for (int i = 0; i < nthr; i++) pthread_create(&th[i], NULL, run, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < nthr; i++) pthread_join(th[i], NULL);
    double dt = (now_ns() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = ru_cpu(&g_ru0, &ru1);
    printf("%-22s %9.0f IOPS %8.1f MB/s  cpu %.1f us/op (%.2f cores)\n", name, g_ops / dt, g_ops * bs / dt / 1e6, cpu * 1e6 / g_ops, cpu / dt);
}
/* After the sync that follows a write workload: CPU and minor page faults
 * per operation including that sync (all the work the writes caused). */
static void after_sync(double sync_s) {
    struct rusage ru1; getrusage(RUSAGE_SELF, &ru1);
    printf("  sync after %.2f s; incl. sync: cpu %.1f us/op, %.2f minor faults/op\n", sync_s, ru_cpu(&g_ru0, &ru1) * 1e6 / g_ops, (double)(ru1.ru_minflt - g_ru0.ru_minflt) / g_ops);
}
int main(int argc, char **argv) {
    struct berr e = {0}; bs_pool *p;
    const char *base = argc > 1 ? argv[1] : "/tmp/bench/pool.img";
    const char *v[17] = { base }; char names[16][512], lay[16] = ""; size_t nv = 1;
    if (getenv("POOL_LAYOUT")) {
        unsigned n = 0;
        if (sscanf(getenv("POOL_LAYOUT"), "%15[a-z0-9]:%u", lay, &n) != 2 || n < 2 || n > 16) { printf("POOL_LAYOUT is TYPE:N (N 2..16)\n"); return 1; }
        v[0] = lay;
        for (unsigned i = 0; i < n; i++) { snprintf(names[i], sizeof names[i], "%s.%u", base, i); v[nv++] = names[i]; unlink(names[i]); }
        if (strcmp(lay, "stripe") == 0) { for (size_t i = 0; i + 1 < nv; i++) v[i] = v[i + 1]; nv--; } /* plain files: one top each */
    }
    unlink(base);
    if (getenv("DIRTY")) { struct bs_tunables tu; bs_tunables_get(&tu); tu.dirty_max_bytes = strtoull(getenv("DIRTY"), 0, 0) << 20; bs_tunables_set(&tu); }
    struct bs_pool_opts o; bs_pool_opts_init(&o); if (getenv("NOTRIM")) o.autotrim = false;
    if (bs_pool_create("b", v, nv, 8ULL << 30, &o, &p, &e)) { printf("%s\n", e.msg); return 1; }
    struct bs_vol_props vp; bs_vol_props_init(p, &vp);
    strcpy(vp.name, "v"); vp.volsize = 4ULL << 30;
    if (getenv("COMP") && bs_compress_parse(getenv("COMP"), &vp.compression, &vp.compress_level, &e)) { printf("%s\n", e.msg); return 1; }
    static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
    if (getenv("ENC")) { vp.encrypted = true; vp.keyformat = BS_KEYFORMAT_RAW; strcpy(vp.keylocation, "prompt"); vp.key = key; vp.keylen = 32; }
    if (bs_vol_create(p, &vp, false, &e)) { printf("%s\n", e.msg); return 1; }
    bs_vol_open(p, "v", &g_vol, &e); g_size = vp.volsize;
    int nthr = getenv("NTHR") ? atoi(getenv("NTHR")) : 4;
    if (getenv("DBG")) blog_max_level = 3;
    if (getenv("FIO")) {
        double T = atof(getenv("FIO")); if (T <= 0) T = 8;
        uint64_t t0 = now_ns(); uint8_t *b = malloc(1 << 20);
        uint64_t x = 88172645463325252ULL; for (size_t i = 0; i < (1<<20); i += 8) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; memcpy(b + i, &x, 8); }
        for (uint64_t o = 0; o < g_size; o += 1 << 20) { memcpy(b, &o, 8); if (bs_vol_pwrite(g_vol, b, 1 << 20, o, 0)) return 1; }
        bs_pool_sync(p, &e); printf("prefill %.1f s\n", (now_ns() - t0) / 1e9); free(b);
        const char *w = getenv("WHICH") ? getenv("WHICH") : "rwRW";
        for (const char *c = w; *c; c++) {
            if (*c == 'w') { bench("rand write 4K", 0, 4096, nthr, T); t0 = now_ns(); bs_pool_sync(p, &e); after_sync((now_ns()-t0)/1e9); }
            if (*c == 'r') bench("rand read 4K", 1, 4096, nthr, T);
            if (*c == 'W') { bench("seq write 1M", 2, 1 << 20, nthr, T); t0 = now_ns(); bs_pool_sync(p, &e); after_sync((now_ns()-t0)/1e9); }
            if (*c == 'R') bench("seq read 1M", 3, 1 << 20, nthr, T);
        }
        bs_vol_close(g_vol); bs_pool_close(p); unlink(base); for (size_t i = 1; i < nv; i++) unlink(v[i]); return 0;
    }
    if (getenv("SEQONLY")) { bench("seq write 1M", 2, 1 << 20, nthr, 5); return 0; }
    if (getenv("RANDFIRST")) { bench("rand write 4K fresh", 0, 4096, nthr, 6); bs_pool_sync(p, &e); bench("rand read 4K", 1, 4096, nthr, 4); }
    bench("seq write 1M", 2, 1 << 20, nthr, 5);
    bs_pool_sync(p, &e);
    bench("seq read 1M", 3, 1 << 20, nthr, 4);
    bench("rand write 4K", 0, 4096, nthr, 6);
    bs_pool_sync(p, &e);
    bench("rand read 4K", 1, 4096, nthr, 4);
    struct bs_pool_stats st; bs_pool_stats(p, &st);
    printf("txg %llu cache hits %llu misses %llu alloc %llu\n", (unsigned long long)st.txg, (unsigned long long)st.cache_hits, (unsigned long long)st.cache_misses, (unsigned long long)st.allocated);
    bs_vol_close(g_vol); bs_pool_close(p); unlink(base); for (size_t i = 1; i < nv; i++) unlink(v[i]);
    return 0;
}
