/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/alloc.c: ENOSPC, next-fit contiguity, the exact
 * deferred-reuse rule, persistence through the double-slotted chunks and
 * crash simulation, autotrim/trim_all on a real file, fragmentation, chunk
 * slot validation, concurrency and speed. */
#include "store/alloc.h"
#include "common/util.h"
#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1ULL << 20)
#define K4 4096ULL

static char path[256];
static struct vdev *v;
static struct label_hdr h;

static void setup(const char *dir, uint64_t size)
{
    struct berr e = {0};
    snprintf(path, sizeof path, "%s/alloc.img", dir);
    unlink(path);
    vdev_open(path, size, false, &v, &e);
    memset(&h, 0, sizeof h);
    h.ashift = 12;
    label_layout(&h, size);
    if (v) /* where autotrim's discards go (the pool does this at open) */
        vdev_set_data(v, h.ashift, h.data_start, h.data_end - h.data_start);
}

static void teardown(void)
{
    vdev_close(v);
    unlink(path);
}

static uint64_t fill(struct alloc *a, uint64_t txg)
{
    uint64_t off, n = 0;
    while (alloc_alloc(a, MiB, txg, &off) == 0)
        n += MiB;
    while (alloc_alloc(a, K4, txg, &off) == 0)
        n += K4;
    return n;
}

static void test_basic(void)
{
    struct alloc *a;
    struct alloc_stats st;
    struct berr e = {0};
    ok(alloc_create(v, &h, 1, &a, &e) == 0, "create: %s", e.msg);
    alloc_stats(a, &st);
    ok(st.size == h.data_end - h.data_start && st.allocated == 0 && st.free == st.size &&
           st.fragmentation == 0,
       "fresh map: all free, no fragmentation");
    uint64_t off, prev = 0;
    int contiguous = 1;
    for (int i = 0; i < 100; i++) {
        alloc_alloc(a, 16384, 2, &off);
        if (i)
            contiguous &= off == prev + 16384;
        prev = off;
    }
    ok(contiguous, "100 consecutive allocations are contiguous");
    ok(alloc_alloc(a, 1000, 2, &off) == -EINVAL && alloc_alloc(a, 0, 2, &off) == -EINVAL,
       "asize not a sector multiple: EINVAL");
    ok(alloc_is_allocated(a, 0, 100 * 16384) && !alloc_is_allocated(a, 0, 101 * 16384),
       "is_allocated");
    uint64_t got = fill(a, 2) + 100 * 16384;
    alloc_stats(a, &st);
    ok(got == st.size && st.allocated == st.size && st.free == 0,
       "allocate until ENOSPC: every sector handed out once");
    ok(alloc_alloc(a, K4, 2, &off) == -ENOSPC, "then ENOSPC");
    alloc_destroy(a);
}

/* alloc_alloc_far (ditto copies): >= 1/8 of the area from the first copy
 * while such room exists, then anywhere not overlapping it, then ENOSPC. */
static void test_far(void)
{
    struct alloc *a;
    struct alloc_stats st;
    struct berr e = {0};
    ok(alloc_create(v, &h, 1, &a, &e) == 0, "far: create: %s", e.msg);
    alloc_stats(a, &st);
    uint64_t size = st.size, eighth = size / 8, off, first, bad = 0, prev = 0, seq = 1;
    alloc_alloc(a, K4, 2, &first);
    for (int i = 0; i < 64; i++) {
        if (alloc_alloc_far(a, K4, first, &off) < 0) {
            bad++;
            continue;
        }
        if (off < first + K4 + eighth && off + K4 + eighth > first)
            bad++;
        if (i > 0)
            seq &= off == prev + K4;
        prev = off;
    }
    ok(bad == 0 && seq, "far: 64 copies all >= 1/8 away from the first, back to back");
    ok(alloc_alloc_far(a, 1000, first, &off) == -EINVAL, "far: asize not a sector multiple");
    /* fill everything but a few sectors next to `first`: the copy still
     * gets room, not overlapping */
    fill(a, 2);
    alloc_free(a, first + K4, K4, 2);
    alloc_txg_done(a, 2 + ALLOC_DEFER_TXGS, false);
    ok(alloc_alloc_far(a, K4, first, &off) == 0 && off == first + K4,
       "far: no room far away: the free sector next to the first copy");
    ok(alloc_alloc_far(a, K4, first, &off) == -ENOSPC, "far: then ENOSPC");
    alloc_destroy(a);
}

static void test_defer(void)
{
    struct alloc *a;
    struct berr e = {0};
    uint64_t off, x = 5 * MiB;
    alloc_create(v, &h, 1, &a, &e);
    fill(a, 10);
    alloc_free(a, x, 64 * K4, 11);
    ok(!alloc_is_allocated(a, x, K4), "freed: no longer committed");
    alloc_txg_done(a, 11, false);
    ok(alloc_alloc(a, K4, 12, &off) == -ENOSPC, "F=11 durable: still deferred");
    alloc_txg_done(a, 12, false);
    ok(alloc_alloc(a, K4, 13, &off) == -ENOSPC, "F+1 durable: still deferred");
    alloc_txg_done(a, 13, false);
    ok(alloc_alloc(a, 64 * K4, 14, &off) == 0 && off == x,
       "F+ALLOC_DEFER_TXGS-1 durable: reusable in F+3");
    /* a free of unallocated sectors is ignored (never deferred, never reused twice) */
    alloc_free(a, x, 64 * K4, 14);
    alloc_free(a, x, 64 * K4, 14);
    alloc_txg_done(a, 16, false);
    ok(alloc_alloc(a, 64 * K4, 17, &off) == 0 && off == x &&
           alloc_alloc(a, K4, 17, &off) == -ENOSPC,
       "double free releases the range once");
    alloc_free(a, UINT64_MAX - 4095, K4, 17);
    alloc_free(a, 3, K4, 17);
    ok(1, "out-of-range and misaligned frees ignored");
    alloc_destroy(a);
}

static int collect(uint64_t off, uint64_t len, void *o)
{
    uint64_t *acc = o;
    acc[0]++;
    acc[1] += len;
    acc[2] = acc[2] * 31 + off + len;
    return 0;
}

static void fingerprint(struct alloc *a, uint64_t fp[3])
{
    memset(fp, 0, 3 * sizeof(uint64_t));
    alloc_foreach_allocated(a, collect, fp);
}

static void test_persist(void)
{
    struct alloc *a, *b;
    struct berr e = {0};
    uint64_t off, fa[3], fb[3], f2[3], f3[3];
    alloc_create(v, &h, 1, &a, &e);
    ok(alloc_load(v, &h, 1, &b, &e) == 0, "load the fresh map");
    fingerprint(b, fb);
    ok(fb[0] == 0, "loaded fresh map is empty");
    alloc_destroy(b);

    /* txg 2: allocations in several chunks */
    for (int i = 0; i < 50; i++)
        alloc_alloc(a, 3 * K4, 2, &off);
    alloc_alloc(a, 150 * MiB, 2, &off); /* spans chunk boundaries */
    ok(alloc_sync(a, 2) == 0, "sync txg 2");
    alloc_txg_done(a, 2, false);
    fingerprint(a, f2);
    ok(alloc_load(v, &h, 2, &b, &e) == 0, "load at 2: %s", e.msg);
    fingerprint(b, fb);
    ok(memcmp(f2, fb, sizeof fb) == 0, "state at 2 round trips (%llu extents)",
       (unsigned long long)fb[0]);
    alloc_destroy(b);

    /* txg 3: frees and allocations, synced but never committed (crash) */
    alloc_free(a, 0, 3 * K4, 3);
    alloc_alloc(a, MiB, 3, &off);
    ok(alloc_sync(a, 3) == 0, "sync txg 3 (its uberblock never written)");
    fingerprint(a, f3);
    ok(alloc_load(v, &h, 2, &b, &e) == 0, "crash: load at 2");
    fingerprint(b, fb);
    ok(memcmp(f2, fb, sizeof fb) == 0, "slot of txg 3 ignored: state of 2");
    alloc_destroy(a);

    /* recovery continues from 2; txg 3 is redone without touching the chunk
     * that the lost txg 3 changed: the next sync must still replace it */
    alloc_alloc(b, 4 * K4, 3, &off);
    fingerprint(b, fa);
    ok(alloc_sync(b, 3) == 0, "redo txg 3 after recovery");
    alloc_txg_done(b, 3, false);
    ok(alloc_load(v, &h, 3, &a, &e) == 0, "load at 3");
    fingerprint(a, fb);
    ok(memcmp(fa, fb, sizeof fb) == 0 && memcmp(f3, fb, sizeof fb) != 0,
       "load at 3 gives the redone txg, not the lost one");
    alloc_destroy(a);

    /* two syncs without a commit in between: the durable slot survives */
    alloc_alloc(b, K4, 4, &off);
    alloc_sync(b, 4);
    alloc_alloc(b, K4, 5, &off);
    alloc_sync(b, 5);
    ok(alloc_load(v, &h, 3, &a, &e) == 0, "txgs 4, 5 synced, never durable: load at 3");
    fingerprint(a, fb);
    ok(memcmp(fa, fb, sizeof fb) == 0, "durable version of 3 intact");
    alloc_destroy(a);
    ok(alloc_sync(b, 2) == -EINVAL, "sync of a txg older than the durable one: EINVAL");
    alloc_destroy(b);
}

static void test_load_defer(void)
{
    struct alloc *a, *b;
    struct berr e = {0};
    uint64_t off, x = 7 * MiB;
    alloc_create(v, &h, 1, &a, &e);
    fill(a, 2);
    alloc_sync(a, 2);
    alloc_txg_done(a, 2, false);
    alloc_free(a, x, K4, 3);
    alloc_sync(a, 3);
    alloc_txg_done(a, 3, false);
    alloc_destroy(a);
    ok(alloc_load(v, &h, 3, &b, &e) == 0, "load at 3 after a free in 3");
    ok(!alloc_is_allocated(b, x, K4), "freed block is free in the loaded map");
    ok(alloc_alloc(b, K4, 4, &off) == -ENOSPC, "but its reuse is still deferred after import");
    alloc_txg_done(b, 4, false);
    ok(alloc_alloc(b, K4, 5, &off) == -ENOSPC, "still deferred when 4 is durable");
    alloc_txg_done(b, 5, false);
    ok(alloc_alloc(b, K4, 6, &off) == 0 && off == x, "reusable once 5 is durable");
    alloc_destroy(b);
}

static void test_corrupt(void)
{
    struct alloc *a;
    struct berr e = {0};
    uint64_t off;
    alloc_create(v, &h, 1, &a, &e);
    alloc_alloc(a, K4, 2, &off);
    alloc_sync(a, 2); /* chunk 0: slot 0 @1, slot 1 @2 */
    alloc_txg_done(a, 2, false);
    alloc_destroy(a);
    uint8_t junk[16] = {1, 2, 3};
    vdev_pwrite(v, junk, sizeof junk, h.bitmap_offset + h.bitmap_slot_size + 100);
    ok(alloc_load(v, &h, 2, &a, &e) == 0 && !alloc_is_allocated(a, 0, K4),
       "damaged newest slot: falls back to the older version");
    alloc_destroy(a);
    vdev_pwrite(v, junk, sizeof junk, h.bitmap_offset + 200);
    ok(alloc_load(v, &h, 2, &a, &e) == -EILSEQ && strstr(e.msg, "chunk 0"),
       "both slots damaged: EILSEQ: %s", e.msg);

    /* the slot codec itself */
    uint32_t ss = h.bitmap_slot_size, nb = h.bits_per_chunk;
    uint8_t *s = calloc(1, ss);
    uint64_t *w = calloc(nb / 64, 8), *w2 = calloc(nb / 64, 8), t;
    for (uint32_t i = 0; i < nb / 64; i++)
        w[i] = 0x0123456789abcdefULL * (i + 1);
    alloc_chunk_encode(s, ss, 5, nb, 77, w);
    ok(alloc_chunk_decode(s, ss, ss, 5, nb, &t, w2) == 0 && t == 77 &&
           memcmp(w, w2, nb / 8) == 0,
       "chunk slot round trip");
    ok(alloc_chunk_decode(s, ss, ss, 6, nb, &t, NULL) == -EILSEQ, "wrong chunk index");
    ok(alloc_chunk_decode(s, ss, ss, 5, nb - 64, &t, NULL) == -EILSEQ, "wrong bit count");
    ok(alloc_chunk_decode(s, ss - 1, ss, 5, nb, &t, NULL) == -EILSEQ, "short buffer");
    int all = 1;
    for (uint32_t i = 0; i < ss; i += 3) {
        s[i] ^= 0x10;
        all &= alloc_chunk_decode(s, ss, ss, 5, nb, &t, NULL) == -EILSEQ;
        s[i] ^= 0x10;
    }
    ok(all, "every flipped byte rejected");
    alloc_chunk_encode(s, ss, 5, 100, 77, w); /* short last chunk: tail bits must be zero */
    ok(alloc_chunk_decode(s, ss, ss, 5, 100, &t, NULL) == 0, "partial chunk round trip");
    free(s);
    free(w);
    free(w2);
}

static uint64_t blocks(void)
{
    struct stat st;
    stat(path, &st);
    return (uint64_t)st.st_blocks;
}

/* A durable txg that allocated something: the lazy trim delay counts these. */
static void busy_txg(struct alloc *a, uint64_t txg, bool autotrim)
{
    uint64_t off;
    alloc_alloc(a, K4, txg, &off);
    alloc_txg_done(a, txg, autotrim);
}

static void test_trim(void)
{
    struct alloc *a;
    struct berr e = {0};
    uint64_t off, off2, n;
    uint8_t *buf = malloc(8 * MiB), *r = malloc(8 * MiB);
    memset(buf, 0x77, 8 * MiB);
    alloc_create(v, &h, 1, &a, &e);
    alloc_alloc(a, 8 * MiB, 2, &off);
    alloc_alloc(a, 8 * MiB, 2, &off2);
    vdev_pwrite(v, buf, 8 * MiB, h.data_start + off);
    vdev_pwrite(v, buf, 8 * MiB, h.data_start + off2);
    vdev_flush(v);
    uint64_t b0 = blocks();
    alloc_free(a, off, 8 * MiB, 3);
    alloc_txg_done(a, 4, true);
    ok(alloc_trim_ripe(a, true, false, 0, NULL, NULL) == 0 && blocks() == b0,
       "not discarded while deferred");
    alloc_txg_done(a, 5, true);
    uint64_t warm, queued;
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 8 * MiB && queued == 8 * MiB, "released: warm and queued for lazy trim");
    for (uint64_t t = 6; t < 6 + 2 * ALLOC_TRIM_DELAY_TXGS; t++)
        alloc_txg_done(a, t, true);
    ok(alloc_trim_ripe(a, true, false, 0, NULL, NULL) == 0 && blocks() == b0,
       "lazy: empty txgs do not age the queue");
    for (uint64_t t = 20; t < 20 + ALLOC_TRIM_DELAY_TXGS - 1; t++)
        busy_txg(a, t, true);
    ok(alloc_trim_ripe(a, true, false, 0, NULL, NULL) == 0 && blocks() == b0,
       "lazy: not discarded before ALLOC_TRIM_DELAY_TXGS allocating txgs");
    busy_txg(a, 20 + ALLOC_TRIM_DELAY_TXGS, true);
    /* the delay's allocations took 4K each of the warm range */
    ok(alloc_trim_ripe(a, true, false, 0, NULL, NULL) == 8 * MiB - ALLOC_TRIM_DELAY_TXGS * K4 &&
           blocks() + 16000 <= b0,
       "autotrim: ripe range punched (%llu -> %llu blocks)", (unsigned long long)b0,
       (unsigned long long)blocks());
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 0 && queued == 0, "punched: neither warm nor queued");
    vdev_pread(v, r, 8 * MiB, h.data_start + off2);
    ok(memcmp(buf, r, 8 * MiB) == 0, "allocated neighbour untouched");
    /* data left in free space (e.g. from before a crash) goes with trim_all */
    vdev_pwrite(v, buf, 8 * MiB, h.data_start + 100 * MiB);
    vdev_flush(v);
    b0 = blocks();
    ok(alloc_trim_all(a, &n) == 0 && n > 100 * MiB, "trim_all discards free runs (%llu MiB)",
       (unsigned long long)(n >> 20));
    ok(blocks() + 16000 <= b0, "trim_all gave space back");
    vdev_pread(v, r, 8 * MiB, h.data_start + off2);
    ok(memcmp(buf, r, 8 * MiB) == 0, "trim_all leaves allocated data alone");
    ok(alloc_alloc(a, 8 * MiB, 40, &off) == 0, "allocation works after trim_all");
    free(buf);
    free(r);
    alloc_destroy(a);
}

/* The busy rule: while the pool is busy a pass discards ripe runs only
 * while more than `keep` bytes of the queue are still warm, oldest first;
 * a run the allocator took back leaves the queue and no longer counts; an
 * idle pass (`all`) discards everything whatever `keep` says. */
static void test_busy_keep(void)
{
    const uint64_t B = 2000;
    struct alloc *a;
    struct berr e = {0};
    uint64_t r[4], warm, queued, off;
    uint8_t *buf = malloc(2 * MiB);
    memset(buf, 0x3c, 2 * MiB);
    ok(alloc_create(v, &h, B + 1, &a, &e) == 0, "busy: create");
    for (int i = 0; i < 4; i++) {
        uint64_t spacer; /* stays allocated: the released runs do not merge */
        alloc_alloc(a, 2 * MiB, B + 2, &r[i]);
        alloc_alloc(a, 1 * MiB, B + 2, &spacer);
        vdev_pwrite(v, buf, 2 * MiB, h.data_start + r[i]);
    }
    alloc_sync(a, B + 2);
    alloc_txg_done(a, B + 2, true);
    /* r0, r1 freed first (older), r2, r3 one busy txg later */
    alloc_free(a, r[0], 2 * MiB, B + 3);
    alloc_free(a, r[1], 2 * MiB, B + 3);
    for (uint64_t t = B + 3; t <= B + 5; t++)
        alloc_txg_done(a, t, true);
    alloc_free(a, r[2], 2 * MiB, B + 6);
    alloc_free(a, r[3], 2 * MiB, B + 6);
    busy_txg(a, B + 6, true); /* its 4K comes out of r0, the first warm space */
    for (uint64_t t = B + 7; t <= B + 8; t++)
        alloc_txg_done(a, t, true);
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 8 * MiB - K4 && queued == 8 * MiB, "busy: four runs released and queued");
    for (uint64_t t = B + 9; t < B + 9 + ALLOC_TRIM_DELAY_TXGS; t++) {
        alloc_alloc(a, K4, t, &off); /* busy txgs, taking 4K of r0 each */
        alloc_txg_done(a, t, true);
    }
    uint64_t taken = (1 + ALLOC_TRIM_DELAY_TXGS) * K4;
    uint64_t b0 = blocks();
    ok(alloc_trim_ripe(a, true, false, 16 * MiB, NULL, NULL) == 0 && blocks() == b0,
       "busy: 8 MiB queued, keep 16 MiB: nothing discarded");
    /* keep 5 MiB: r0 (oldest) then r1 go, r2 and r3 stay warm */
    uint64_t d = alloc_trim_ripe(a, true, false, 5 * MiB, NULL, NULL);
    ok(d == 4 * MiB - taken, "busy: keep 5 MiB discards the two oldest runs (%llu KiB)",
       (unsigned long long)(d >> 10));
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 4 * MiB && queued == 4 * MiB, "busy: the two newer runs stay warm and queued");
    /* the allocator takes r2 back: it leaves the queue, r3 alone counts */
    ok(alloc_alloc(a, 2 * MiB, B + 20, &off) == 0 && (off == r[2] || off == r[3]),
       "busy: a rewrite takes one of them back whole");
    alloc_txg_done(a, B + 20, true);
    ok(alloc_trim_ripe(a, true, false, 2 * MiB, NULL, NULL) == 0,
       "busy: 2 MiB still warm, keep 2 MiB: nothing discarded");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 2 * MiB && queued == 2 * MiB, "busy: the reused run left the queue");
    /* ALLOC_TRIM_MAX_AGE_TXGS busy txgs after its release a run goes
     * whatever keep says (a guest's discard on a pool that never idles) */
    unsigned more = 0;
    uint64_t d2 = 0;
    for (uint64_t t = B + 21; !d2 && more <= ALLOC_TRIM_MAX_AGE_TXGS; t++, more++) {
        alloc_alloc(a, K4, t, &off); /* a busy txg */
        alloc_txg_done(a, t, true);
        d2 = alloc_trim_ripe(a, true, false, 64 * MiB, NULL, NULL);
    }
    /* released at most ALLOC_TRIM_DELAY_TXGS + 2 busy txgs before the loop */
    ok(d2 > 0 && more + ALLOC_TRIM_DELAY_TXGS + 2 >= ALLOC_TRIM_MAX_AGE_TXGS &&
           more <= ALLOC_TRIM_MAX_AGE_TXGS,
       "busy: keep 64 MiB, yet the run is discarded at its maximum age (%u txgs later, %llu KiB)",
       more, (unsigned long long)(d2 >> 10));
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 0 && queued == 0, "busy: nothing warm or queued after it");
    /* an idle pass discards everything at once, whatever keep says */
    uint64_t r4;
    alloc_alloc(a, 2 * MiB, B + 60, &r4);
    alloc_alloc(a, 1 * MiB, B + 60, &off); /* spacer */
    vdev_pwrite(v, buf, 2 * MiB, h.data_start + r4);
    alloc_txg_done(a, B + 60, true);
    alloc_free(a, r4, 2 * MiB, B + 61);
    for (uint64_t t = B + 61; t <= B + 63; t++)
        alloc_txg_done(a, t, true);
    b0 = blocks();
    ok(alloc_trim_ripe(a, true, true, 64 * MiB, NULL, NULL) == 2 * MiB && blocks() + 500 <= b0,
       "idle: everything queued is discarded whatever keep says");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 0 && queued == 0, "idle: nothing warm or queued");
    /* a run too short to punch counts for nothing: once ripe it leaves
     * the queue while busy whatever keep says, and stays warm */
    uint64_t small, sp;
    alloc_alloc(a, 64 * 1024, B + 70, &small);
    alloc_alloc(a, 1 * MiB, B + 70, &sp);
    alloc_txg_done(a, B + 70, true);
    alloc_free(a, small, 64 * 1024, B + 71);
    for (uint64_t t = B + 71; t <= B + 73; t++)
        alloc_txg_done(a, t, true);
    for (uint64_t t = B + 74; t < B + 74 + ALLOC_TRIM_DELAY_TXGS; t++) {
        alloc_alloc(a, K4, t, &off);
        alloc_txg_done(a, t, true);
    }
    uint64_t w0;
    alloc_warm_stats(a, &w0, &queued);
    ok(queued == 64 * 1024, "busy: a 64K run queued");
    ok(alloc_trim_ripe(a, true, false, 64 * MiB, NULL, NULL) == 0, "busy: nothing punched");
    alloc_warm_stats(a, &warm, &queued);
    ok(queued == 0 && warm == w0, "busy: the short ripe run left the queue and stays warm");
    alloc_destroy(a);
    free(buf);
}

static bool always(void *arg)
{
    (void)arg;
    return true;
}

/* Lazy autotrim: space rewritten before its trim delay passed is not
 * punched; the allocator prefers warm (unpunched) space; what is left is
 * punched; a "crash" (the map loaded again) forgets the queue, loses
 * nothing, and trim_all still gets it back. */
static void test_lazy_trim(void)
{
    /* txgs above any other test's, whose chunk versions are in the file */
    const uint64_t B = 1000;
    struct alloc *a;
    struct berr e = {0};
    uint64_t x, y, off, warm, queued, n;
    uint8_t *buf = malloc(4 * MiB), *r = malloc(4 * MiB);
    memset(buf, 0x5a, 4 * MiB);
    ok(alloc_create(v, &h, B + 1, &a, &e) == 0, "create");
    alloc_alloc(a, 4 * MiB, B + 2, &x);
    alloc_alloc(a, 4 * MiB, B + 2, &y);
    vdev_pwrite(v, buf, 4 * MiB, h.data_start + x);
    vdev_pwrite(v, buf, 4 * MiB, h.data_start + y);
    alloc_sync(a, B + 2);
    alloc_txg_done(a, B + 2, true);
    alloc_free(a, x, 4 * MiB, B + 3);
    alloc_free(a, y, 4 * MiB, B + 3);
    for (uint64_t t = B + 3; t <= B + 5; t++)
        alloc_txg_done(a, t, true);
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 8 * MiB && queued == 8 * MiB, "both runs released, warm, queued");
    uint64_t b0 = blocks();
    /* the next allocation takes warm space, not the (hole) space after y */
    ok(alloc_alloc(a, 1 * MiB, B + 6, &off) == 0 && off == x, "allocation prefers warm space");
    uint64_t z;
    ok(alloc_alloc(a, 3 * MiB, B + 6, &z) == 0 && z == x + MiB, "next fit within warm space");
    vdev_pwrite(v, buf, 4 * MiB, h.data_start + x); /* the rewrite lands on x */
    alloc_txg_done(a, B + 6, true);
    ok(alloc_trim_ripe(a, true, false, 0, NULL, NULL) == 0, "not ripe yet");
    for (uint64_t t = B + 7; t <= B + 6 + ALLOC_TRIM_DELAY_TXGS; t++)
        busy_txg(a, t, true);
    ok(alloc_trim_ripe(a, true, false, 0, NULL, NULL) == 4 * MiB - ALLOC_TRIM_DELAY_TXGS * K4,
       "only the range not reused is punched");
    ok(blocks() + 8000 <= b0 && blocks() + 9000 >= b0, "the file lost y's 4 MiB, not x's");
    vdev_pread(v, r, 4 * MiB, h.data_start + x);
    ok(memcmp(r, buf, 4 * MiB) == 0, "the reused range keeps its new data");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 0 && queued == 0, "nothing warm or queued after the pass");

    /* autotrim off: released space is warm but never queued */
    alloc_free(a, x, 4 * MiB, B + 11);
    alloc_sync(a, B + 11);
    for (uint64_t t = B + 11; t <= B + 13; t++)
        alloc_txg_done(a, t, false);
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 4 * MiB && queued == 0, "autotrim off: warm, not queued");
    ok(alloc_trim_ripe(a, false, true, 0, NULL, NULL) == 0, "autotrim off: nothing punched");
    ok(alloc_alloc(a, 4 * MiB, B + 14, &x) == 0 && x + MiB == z, "warm space reused");
    vdev_pwrite(v, buf, 4 * MiB, h.data_start + x);
    alloc_sync(a, B + 14);
    alloc_txg_done(a, B + 14, true);

    /* a crash with runs queued: the reloaded map knows nothing of them, the
     * data of the live block is intact, and trim_all punches the rest */
    alloc_free(a, x, 1 * MiB, B + 15); /* [z, z + 3 MiB) stays live */
    alloc_sync(a, B + 15);
    for (uint64_t t = B + 15; t <= B + 17; t++)
        alloc_txg_done(a, t, true);
    alloc_warm_stats(a, &warm, &queued);
    ok(queued == 1 * MiB, "queued before the crash");
    ok(alloc_trim_ripe(a, true, true, 0, always, NULL) == 0, "a stopped pass punches nothing");
    alloc_warm_stats(a, &warm, &queued);
    ok(queued == 1 * MiB && warm == 1 * MiB, "and leaves the runs queued");
    struct alloc *b;
    ok(alloc_load(v, &h, B + 17, &b, &e) == 0, "reload after the crash: %s", e.msg);
    alloc_warm_stats(b, &warm, &queued);
    ok(warm == 0 && queued == 0, "the queue is not persistent");
    ok(!alloc_is_allocated(b, x, 1 * MiB) && alloc_is_allocated(b, z, 3 * MiB),
       "the free stays free, the live run stays allocated");
    b0 = blocks();
    ok(alloc_trim_all(b, &n) == 0 && blocks() + 2000 <= b0, "trim_all punches what was queued");
    vdev_pread(v, r, 3 * MiB, h.data_start + z);
    ok(memcmp(r, buf, 3 * MiB) == 0, "live data intact after trim_all");
    alloc_destroy(b);
    alloc_destroy(a);
    free(buf);
    free(r);
}

/* alloc_alloc_blocks: blocks packed back to back into warm extents; warm
 * crumbs too small for a block are passed over, and the next call goes on
 * past them instead of scanning them again. */
static void test_warm_frags(void)
{
    const uint64_t B = 2000;
    struct alloc *a;
    struct berr e = {0};
    uint64_t crumb[140], r, off;
    ok(alloc_create(v, &h, B + 1, &a, &e) == 0, "create");
    for (int i = 0; i < 140; i++)
        alloc_alloc(a, K4, B + 2, &crumb[i]);
    alloc_alloc(a, MiB, B + 2, &r);
    alloc_alloc(a, 64 * K4, B + 2, &off); /* keeps r from touching fresh space */
    for (int i = 0; i < 140; i += 2) /* 70 isolated 4K crumbs */
        alloc_free(a, crumb[i], K4, B + 3);
    alloc_free(a, r, MiB, B + 3);
    for (uint64_t t = B + 3; t <= B + 5; t++)
        alloc_txg_done(a, t, false);
    uint32_t asz[3] = {16384, 16384, 8192};
    uint64_t offs[3];
    int placed = 0, calls = 0;
    while (placed == 0 && calls < 3) {
        placed = alloc_alloc_blocks(a, asz, 3, B + 6, false, false, offs);
        calls++;
    }
    ok(placed == 3 && calls == 2 && offs[0] == r && offs[1] == r + 16384 &&
           offs[2] == r + 32768,
       "past 64 crumbs in one call, then packed into the warm extent (%d calls)", calls);
    ok(alloc_is_allocated(a, r, 40960) && !alloc_is_allocated(a, r + 40960, K4),
       "exactly the placed blocks are allocated");
    uint64_t warm, queued;
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 70 * K4 + MiB - 40960 && queued == 0, "the rest stays warm (autotrim off: not queued)");
    alloc_destroy(a);
}

/* The one warm-first search (alloc.c warm_extent) serves single blocks and
 * batches: a batch fills warm fragments, then the rest goes back to back in
 * one fresh run; without `run`, or when no run is long enough, only the
 * leading blocks that found warm space are placed (nothing else is taken).
 * A single allocation takes warm space first too; one that found no warm
 * run that long searches again once a release made more space warm. */
static void test_alloc_blocks(void)
{
    const uint64_t B = 3000, K16 = 16384;
    struct alloc *a;
    struct alloc_stats st;
    struct berr e = {0};
    uint64_t x, y, g, off, warm, queued;
    ok(alloc_create(v, &h, B + 1, &a, &e) == 0, "create");
    alloc_alloc(a, 4 * K16, B + 2, &x);
    alloc_alloc(a, K4, B + 2, &g); /* live between the two warm extents */
    alloc_alloc(a, 4 * K16, B + 2, &y);
    alloc_alloc(a, K4, B + 2, &g);
    alloc_free(a, x, 4 * K16, B + 3);
    alloc_free(a, y, 4 * K16, B + 3);
    for (uint64_t t = B + 3; t <= B + 5; t++)
        alloc_txg_done(a, t, false);
    uint32_t asz[10];
    uint64_t offs[10];
    for (int i = 0; i < 10; i++)
        asz[i] = (uint32_t)K16;
    ok(alloc_alloc_blocks(a, asz, 10, B + 6, true, false, offs) == 10, "10 blocks placed");
    bool inx = true, iny = true;
    for (int i = 0; i < 4; i++) {
        inx &= offs[i] == x + (uint64_t)i * K16;
        iny &= offs[4 + i] == y + (uint64_t)i * K16;
    }
    ok(inx && iny, "blocks 0-3 fill the first warm extent, 4-7 the second");
    ok(offs[9] == offs[8] + K16 && offs[8] > g, "blocks 8-9: one fresh run past the live blocks");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 0 && alloc_is_allocated(a, x, 4 * K16) && alloc_is_allocated(a, y, 4 * K16) &&
           alloc_is_allocated(a, offs[8], 2 * K16),
       "everything placed is allocated, nothing stays warm");
    ok(alloc_alloc_blocks(a, asz, 2, B + 6, false, false, offs) == 0,
       "no warm space and no run: 0");
    alloc_stats(a, &st);
    uint64_t before = st.allocated;
    uint32_t big[40];
    uint64_t boffs[40];
    for (int i = 0; i < 40; i++)
        big[i] = (uint32_t)(8 * MiB);
    ok(alloc_alloc_blocks(a, big, 40, B + 6, true, false, boffs) == 0,
       "no run of 320 MiB: 0 placed");
    alloc_stats(a, &st);
    ok(st.allocated == before, "and nothing taken");

    /* a warm crumb too small: the single allocation goes to fresh space,
     * and finds warm space again after the next release */
    alloc_free(a, x, K4, B + 7);
    for (uint64_t t = B + 7; t <= B + 9; t++)
        alloc_txg_done(a, t, false);
    ok(alloc_alloc(a, K16, B + 10, &off) == 0 && off != x && off > g, "crumb passed over");
    ok(alloc_alloc_blocks(a, asz, 1, B + 10, false, false, offs) == 0,
       "a batch does not take the crumb either");
    alloc_free(a, y, 4 * K16, B + 10);
    for (uint64_t t = B + 10; t <= B + 12; t++)
        alloc_txg_done(a, t, false);
    ok(alloc_alloc(a, K16, B + 13, &off) == 0 && off == y, "after a release: warm space first");
    ok(alloc_alloc(a, 3 * K16, B + 13, &off) == 0 && off == y + K16, "next fit in warm space");
    ok(alloc_alloc(a, K4, B + 13, &off) == 0 && off == x, "then the crumb, for a block it fits");
    alloc_destroy(a);
}

/* The sequential-stream rule: a batch of consecutive blocks (seq) takes one
 * run, a warm extent long enough or else fresh space, and leaves the warm
 * crumbs alone; a random batch still fills the crumbs. */
static void test_alloc_blocks_seq(void)
{
    const uint64_t B = 4000, K16 = 16384;
    struct alloc *a;
    struct berr e = {0};
    uint64_t c1, c2, w, g, warm, queued;
    ok(alloc_create(v, &h, B + 1, &a, &e) == 0, "seq: create");
    alloc_alloc(a, K16, B + 2, &c1);
    alloc_alloc(a, K4, B + 2, &g); /* live blocks keep the extents apart */
    alloc_alloc(a, K16, B + 2, &c2);
    alloc_alloc(a, K4, B + 2, &g);
    alloc_alloc(a, 8 * K16, B + 2, &w);
    alloc_alloc(a, K4, B + 2, &g);
    alloc_free(a, c1, K16, B + 3);
    alloc_free(a, c2, K16, B + 3);
    alloc_free(a, w, 8 * K16, B + 3);
    for (uint64_t t = B + 3; t <= B + 5; t++)
        alloc_txg_done(a, t, false);
    uint32_t asz[6];
    uint64_t offs[6];
    for (int i = 0; i < 6; i++)
        asz[i] = (uint32_t)K16;
    ok(alloc_alloc_blocks(a, asz, 4, B + 6, true, true, offs) == 4, "seq: 4 blocks placed");
    bool run = true;
    for (int i = 0; i < 4; i++)
        run &= offs[i] == w + (uint64_t)i * K16;
    ok(run, "seq: one run in the warm extent long enough, not the crumbs before it");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 6 * K16, "seq: the crumbs and the rest of the extent stay warm");
    ok(alloc_alloc_blocks(a, asz, 6, B + 6, true, true, offs) == 6, "seq: 6 more placed");
    run = offs[0] > g;
    for (int i = 1; i < 6; i++)
        run &= offs[i] == offs[0] + (uint64_t)i * K16;
    ok(run, "seq: no warm extent holds 6 blocks: one fresh run");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 6 * K16, "seq: nothing warm taken");
    ok(alloc_alloc_blocks(a, asz, 6, B + 6, true, false, offs) == 6, "random: 6 placed");
    int n_c = 0, n_w = 0; /* in next-fit order from the warm cursor */
    for (int i = 0; i < 6; i++) {
        n_c += offs[i] == c1 || offs[i] == c2;
        n_w += offs[i] >= w + 4 * K16 && offs[i] < w + 8 * K16 && (offs[i] - w) % K16 == 0;
    }
    ok(n_c == 2 && n_w == 4 && offs[0] != offs[1], "random: the crumbs and the rest of the extent");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 0, "random: nothing stays warm");
    alloc_destroy(a);
}

/* The sequential-stream rule when no warm extent holds the whole batch:
 * the warm extents of at least 128 KiB take it in pieces, in address order
 * (their pages are still cached: cheaper than fresh space), shorter ones and
 * crumbs stay warm; what the pieces leave goes into one fresh run. */
static void test_alloc_blocks_seq_pieces(void)
{
    const uint64_t B = 5000, K16 = 16384;
    struct alloc *a;
    struct berr e = {0};
    uint64_t c, s64, w128, w256, w2, g, warm, queued;
    ok(alloc_create(v, &h, B + 1, &a, &e) == 0, "pieces: create");
    alloc_alloc(a, K16, B + 2, &c);
    alloc_alloc(a, K4, B + 2, &g); /* live blocks keep the extents apart */
    alloc_alloc(a, 4 * K16, B + 2, &s64);
    alloc_alloc(a, K4, B + 2, &g);
    alloc_alloc(a, 8 * K16, B + 2, &w128);
    alloc_alloc(a, K4, B + 2, &g);
    alloc_alloc(a, 16 * K16, B + 2, &w256);
    alloc_alloc(a, K4, B + 2, &g);
    alloc_alloc(a, 8 * K16, B + 2, &w2);
    alloc_alloc(a, K4, B + 2, &g);
    alloc_free(a, c, K16, B + 3);
    alloc_free(a, s64, 4 * K16, B + 3);
    alloc_free(a, w128, 8 * K16, B + 3);
    alloc_free(a, w256, 16 * K16, B + 3);
    alloc_free(a, w2, 8 * K16, B + 3);
    for (uint64_t t = B + 3; t <= B + 5; t++)
        alloc_txg_done(a, t, false);
    uint32_t asz[32];
    uint64_t offs[32];
    for (int i = 0; i < 32; i++)
        asz[i] = (uint32_t)K16;
    /* 24 blocks: no warm extent of 384K; 128K + 256K hold them */
    ok(alloc_alloc_blocks(a, asz, 24, B + 6, true, true, offs) == 24, "pieces: 24 placed");
    bool in = true;
    for (int i = 0; i < 8; i++)
        in &= offs[i] == w128 + (uint64_t)i * K16;
    for (int i = 0; i < 16; i++)
        in &= offs[8 + i] == w256 + (uint64_t)i * K16;
    ok(in, "pieces: blocks 0-7 fill the 128K extent, 8-23 the 256K one, in address order");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 13 * K16, "pieces: the crumb, the 64K extent and the last 128K stay warm");
    /* 12 blocks: the last 128K extent takes 8, the other 4 go into one
     * fresh run; the crumb and the 64K extent are passed over */
    ok(alloc_alloc_blocks(a, asz, 12, B + 6, true, true, offs) == 12, "pieces: 12 placed");
    in = true;
    for (int i = 0; i < 8; i++)
        in &= offs[i] == w2 + (uint64_t)i * K16;
    bool fresh = offs[8] > g;
    for (int i = 9; i < 12; i++)
        fresh &= offs[i] == offs[8] + (uint64_t)(i - 8) * K16;
    ok(in && fresh, "pieces: 8 in the warm 128K extent, the rest one fresh run");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 5 * K16 && alloc_is_allocated(a, w2, 8 * K16) &&
           alloc_is_allocated(a, offs[8], 4 * K16),
       "pieces: only the crumb and the 64K extent stay warm");
    /* nothing of 128K is warm any more: a batch of 5 goes to fresh space;
     * one of 3 fits the 64K extent whole (one write) and takes it */
    ok(alloc_alloc_blocks(a, asz, 5, B + 6, true, true, offs) == 5 && offs[0] > g &&
           offs[4] == offs[0] + 4 * K16,
       "pieces: 5 blocks, one fresh run, not the 64K extent and the crumb");
    alloc_warm_stats(a, &warm, &queued);
    ok(warm == 5 * K16, "pieces: nothing warm taken");
    ok(alloc_alloc_blocks(a, asz, 3, B + 6, true, true, offs) == 3 && offs[0] == s64 &&
           offs[2] == s64 + 2 * K16,
       "pieces: 3 blocks, one run in the 64K extent that holds them all");
    alloc_destroy(a);
}

static void test_frag(void)
{
    struct alloc *a;
    struct alloc_stats st;
    struct berr e = {0};
    uint64_t off;
    alloc_create(v, &h, 1, &a, &e);
    fill(a, 2);
    for (uint64_t o = 0; o < 64 * MiB; o += 2 * K4)
        alloc_free(a, o, K4, 3);
    alloc_stats(a, &st);
    ok(st.fragmentation == 100, "every other 4K free: fragmentation 100 (%u)", st.fragmentation);
    alloc_free(a, 100 * MiB, 64 * MiB, 3);
    alloc_stats(a, &st);
    ok(st.fragmentation == 33, "plus one 64M run: 33%% (%u)", st.fragmentation);
    ok(st.free == 96 * MiB && st.allocated == st.size - st.free, "free and allocated bytes");
    (void)off;
    alloc_destroy(a);
}

struct thr {
    struct alloc *a;
    int fails;
};

static void *thr_alloc(void *p)
{
    struct thr *t = p;
    uint64_t off;
    for (int i = 0; i < 5000; i++)
        t->fails += alloc_alloc(t->a, K4, 2, &off) != 0;
    return NULL;
}

static void test_threads_speed(void)
{
    struct alloc *a;
    struct alloc_stats st;
    struct berr e = {0};
    alloc_create(v, &h, 1, &a, &e);
    pthread_t tid[4];
    struct thr t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct thr){a, 0};
        pthread_create(&tid[i], NULL, thr_alloc, &t[i]);
    }
    int fails = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(tid[i], NULL);
        fails += t[i].fails;
    }
    alloc_stats(a, &st);
    ok(fails == 0 && st.allocated == 20000 * K4, "4 threads x 5000 allocations, no overlap");
    alloc_destroy(a);

    alloc_create(v, &h, 1, &a, &e);
    uint64_t off, t0 = now_ns();
    int n = 0;
    for (int i = 0; i < 60000; i++)
        n += alloc_alloc(a, K4, 2, &off) == 0;
    for (uint64_t o = 0; o < 60000 * K4; o += 2 * K4) /* fragment, then allocate again */
        alloc_free(a, o, K4, 3);
    alloc_txg_done(a, 5, false);
    for (int i = 0; i < 30000; i++)
        n += alloc_alloc(a, K4, 6, &off) == 0;
    double s = (double)(now_ns() - t0) / 1e9;
    diag("90000 allocations + 30000 frees in %.3f s", s);
    ok(n == 90000 && s < 1.0, "fast: 90k allocations well under a second");
    alloc_destroy(a);
}

int main(void)
{
    char dir[] = "/tmp/berth-test-alloc-XXXXXX";
    if (!mkdtemp(dir))
        tap_skip_all("cannot make a temp dir");
    setup(dir, 300 * MiB);
    diag("data area %llu MiB, %llu chunks", (unsigned long long)((h.data_end - h.data_start) >> 20),
         (unsigned long long)h.bitmap_chunks);
    test_basic();
    test_far();
    test_defer();
    test_persist();
    test_load_defer();
    test_corrupt();
    test_trim();
    test_lazy_trim();
    test_busy_keep();
    test_warm_frags();
    test_alloc_blocks();
    test_alloc_blocks_seq();
    test_alloc_blocks_seq_pieces();
    test_frag();
    test_threads_speed();
    teardown();
    rmdir(dir);
    return done_testing();
}
