/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the storage engine unit tests: temporary pool files,
 * pools (with a volume) made on them, deterministic data patterns and a
 * small PRNG.  The test binaries link tap.c: helpers may report checks. */
#ifndef BERTH_STORE_TEST_H
#define BERTH_STORE_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/store.h"
#include "tap.h"

static inline uint64_t xrand(uint64_t *s)
{
    /* splitmix64: reproducible from a seed */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Fill with a pattern that depends on the absolute offset and a tag, so any
 * misplaced or stale byte is detected. */
static inline void pattern(uint8_t *buf, uint64_t len, uint64_t off, uint32_t tag)
{
    for (uint64_t i = 0; i < len; i++) {
        uint64_t o = off + i;
        buf[i] = (uint8_t)((o * 2654435761u) >> 13 ^ tag ^ (o >> 9));
    }
}

static inline void random_bytes(uint8_t *buf, size_t len, uint64_t *seed)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = xrand(seed);
        memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
    }
}

/* A temporary directory for pool files, removed by tmp_cleanup. */
static char tmp_dir[256];
static inline const char *tmp_path(const char *name)
{
    static char path[8][512];
    static int k;
    if (!tmp_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmp_dir, sizeof tmp_dir, "%s/berth-test-XXXXXX", t ? t : "/tmp");
        if (!mkdtemp(tmp_dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    k = (k + 1) % 8;
    snprintf(path[k], sizeof path[k], "%s/%s", tmp_dir, name);
    return path[k];
}
static inline void tmp_cleanup(void)
{
    if (!tmp_dir[0])
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_dir);
}

/* paths[0..n) := tmp_path("tag-<i>.img") (512: tmp_path's size): the leaf
 * files of one pool; bs_pool_create makes them, a test may rename or delete
 * them later. */
static inline void tmp_paths(char paths[][512], unsigned n, const char *tag)
{
    for (unsigned i = 0; i < n; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s-%u.img", tag, i);
        snprintf(paths[i], sizeof paths[i], "%s", tmp_path(nm));
    }
}

/* spec := a vdev spec as bs_pool_create takes it: ntops tops of `layout`
 * ("mirror", "raidz1", ...) with `width` leaves each, over paths[0..ntops *
 * width) in order; layout NULL: each of those leaves a top of its own.  spec
 * must hold ntops * (width + 1) entries; returns how many it got. */
static inline size_t vdev_spec(const char **spec, const char *layout, unsigned ntops,
                               unsigned width, char paths[][512])
{
    size_t n = 0;
    for (unsigned t = 0; t < ntops; t++) {
        if (layout)
            spec[n++] = layout;
        for (unsigned i = 0; i < width; i++)
            spec[n++] = paths[t * width + i];
    }
    return n;
}

/* Import the pool on paths[idx[0..n)] (idx NULL: paths[0..n)); NULL, with
 * *e said in a diag, when it does not import. */
static inline bs_pool *import_paths(char paths[][512], const unsigned *idx, size_t n,
                                    struct berr *e)
{
    const char *v[64];
    bs_pool *p = NULL;
    if (n > 64) {
        diag("import: %zu leaves, at most 64", n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = paths[idx ? idx[i] : i];
    if (bs_pool_import(v, n, NULL, &p, e) < 0)
        diag("import: %s", e->msg);
    return p;
}

/* What test_pool_create makes: a pool, and a volume "vol" if volsize is
 * set.  Fields left 0 take the engine's defaults (name: "t"). */
struct test_pool {
    const char *name;
    const char *const *spec; /* the vdev spec, as bs_pool_create */
    size_t nspec;
    uint64_t filesize;       /* each leaf file's size (0: block devices) */
    uint64_t volsize;        /* 0: no volume */
    uint32_t volblocksize;
    bool uncompressed;       /* the volume's compression off */
    uint8_t *fill;           /* set: volsize bytes of random_bytes from */
    uint64_t fill_seed;      /* fill_seed, written to the volume and flushed */
};

/* Make the pool tp describes.  Exactly one check, tagged `tag`: the pool's
 * creation, and the volume's (with its write) when there is one.  NULL if
 * the pool or its volume could not be made, opened or filled (the pool is
 * closed then, *vol NULL); else the volume is left open in *vol if vol is
 * given, else closed. */
static inline bs_pool *test_pool_create(const struct test_pool *tp, bs_vol **vol, const char *tag)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    bs_vol *v = NULL;
    if (vol)
        *vol = NULL;
    if (bs_pool_create(tp->name ? tp->name : "t", tp->spec, tp->nspec, tp->filesize, NULL, &p,
                       &e) < 0) {
        ok(false, "%s: create: %s", tag, e.msg);
        return NULL;
    }
    if (!tp->volsize) {
        ok(true, "%s: create", tag);
        return p;
    }
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "vol");
    vp.volsize = tp->volsize;
    if (tp->volblocksize)
        vp.volblocksize = tp->volblocksize;
    if (tp->uncompressed)
        vp.compression = BS_COMPRESS_OFF;
    bool good = bs_vol_create(p, &vp, false, &e) == 0 && bs_vol_open(p, "vol", &v, &e) == 0;
    if (good && tp->fill) {
        uint64_t seed = tp->fill_seed;
        random_bytes(tp->fill, tp->volsize, &seed);
        int r = bs_vol_pwrite(v, tp->fill, tp->volsize, 0, 0);
        if (r == 0)
            r = bs_vol_flush(v);
        if (r < 0) { /* these take no berr: say what failed */
            snprintf(e.msg, sizeof e.msg, "write or flush: %s", strerror(-r));
            good = false;
        }
    }
    bool mib = tp->volsize % (1 << 20) == 0;
    if (tp->fill)
        ok(good, "%s: create, write %llu %s: %s", tag,
           (unsigned long long)tp->volsize >> (mib ? 20 : 10), mib ? "MiB" : "KiB", e.msg);
    else
        ok(good, "%s: create and open: %s", tag, e.msg);
    if (!good) { /* a failed setup: the caller's checks would only crash */
        if (v)
            bs_vol_close(v);
        bs_pool_close(p);
        return NULL;
    }
    if (vol)
        *vol = v;
    else
        bs_vol_close(v);
    return p;
}

/* Write behind the engine's back (damage for self-healing tests). */
static inline void raw_pwrite(const char *path, const void *buf, size_t len, uint64_t off)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
        fprintf(stderr, "# raw write to %s failed\n", path);
    if (fd >= 0)
        close(fd);
}

/* Read volume `name` in bs-byte blocks and compare with model: counts of
 * blocks that matched, failed with EIO, or came back wrong (or the volume
 * did not open: one wrong). */
static inline void vol_compare(bs_pool *p, const char *name, const uint8_t *model, uint64_t size,
                               uint32_t bs, int *good, int *eio, int *wrong)
{
    struct berr e = {0};
    bs_vol *v = NULL;
    *good = *eio = *wrong = 0;
    if (bs_vol_open(p, name, &v, &e) < 0) {
        fprintf(stderr, "# open %s: %s\n", name, e.msg);
        (*wrong)++;
        return;
    }
    uint8_t *rd = malloc(bs);
    for (uint64_t off = 0; off < size; off += bs) {
        int r = bs_vol_pread(v, rd, bs, off);
        if (r == -EIO)
            (*eio)++;
        else if (r == 0 && memcmp(rd, model + off, bs) == 0)
            (*good)++;
        else
            (*wrong)++;
    }
    free(rd);
    bs_vol_close(v);
}

/* Volume "vol" of p reads back as model[0..size) in bs-byte blocks: one
 * check; whether it did. */
static inline bool vol_reads_back(bs_pool *p, const uint8_t *model, uint64_t size, uint32_t bs,
                                  const char *what)
{
    int good, eio, wrong;
    vol_compare(p, "vol", model, size, bs, &good, &eio, &wrong);
    bool all = good == (int)(size / bs) && eio == 0 && wrong == 0;
    ok(all, "%s: all data reads back (%d good, %d EIO, %d wrong)", what, good, eio, wrong);
    return all;
}

/* A whole scrub of p finishes, repairs nothing and finds no error; with
 * cksum, the pool has also counted no checksum error since its import.
 * One check. */
static inline void scrub_clean(bs_pool *p, const char *what, bool cksum)
{
    struct berr e = {0};
    struct bs_pool_stats st;
    bool started = bs_pool_scrub(p, BS_SCRUB_START, &e) == 0;
    bs_pool_scrub_wait(p);
    bs_pool_stats(p, &st);
    ok(started && strcmp(st.scan.state, "finished") == 0 && st.scan.errors == 0 &&
           st.scan.repaired == 0 && (!cksum || st.checksum_errors == 0),
       "%s: a scrub finds nothing (%s, %llu repaired, %llu errors, %llu cksum)", what, e.msg,
       (unsigned long long)st.scan.repaired, (unsigned long long)st.scan.errors,
       (unsigned long long)st.checksum_errors);
}

#endif
