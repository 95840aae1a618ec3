/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the storage engine unit tests: temporary pool files,
 * deterministic data patterns and a small PRNG. */
#ifndef BERTH_STORE_TEST_H
#define BERTH_STORE_TEST_H

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

#endif
