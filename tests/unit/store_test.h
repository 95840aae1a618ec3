/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the storage engine unit tests: temporary pool files,
 * deterministic data patterns and a small PRNG. */
#ifndef BERTH_STORE_TEST_H
#define BERTH_STORE_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/store.h"

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

#endif
