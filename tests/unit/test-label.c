/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/store/label.c: layout, label header and uberblock
 * codecs (round trips, every byte flip, re-signed corrupt fields), and the
 * label/ring I/O on a temporary file vdev. */
#include "store/codec.h"
#include "store/label.h"
#include "common/le.h"
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB (1ULL << 20)

static struct label_hdr sample_hdr(int ashift, uint64_t size)
{
    struct label_hdr h;
    memset(&h, 0, sizeof h);
    h.version = BERTH_FORMAT_VERSION;
    h.pool_guid = 0x1122334455667788ULL;
    h.vdev_guid = 0xabcdef;
    h.top_guid = 0xabcdef;
    strcpy(h.pool_name, "tank");
    h.ashift = (uint8_t)ashift;
    h.vdev_type = VDEV_TYPE_FILE;
    h.create_txg = 4;
    h.nchildren = 1;
    h.child_guids[0] = 0xabcdef;
    label_layout(&h, size);
    return h;
}

static void test_layout(void)
{
    struct label_hdr h = sample_hdr(12, 64 * MiB);
    ok(label_layout(&h, 64 * MiB - 1) == -ENOSPC, "below 64 MiB: ENOSPC");
    h.ashift = 8;
    ok(label_layout(&h, 64 * MiB) == -EINVAL, "ashift 8 rejected");
    int good = 1;
    uint64_t sizes[] = {64 * MiB, 64 * MiB + 300000, 1ULL << 30, 10ULL << 40, 123456789012ULL};
    for (int a = 9; a <= 16; a++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            struct label_hdr l = {.ashift = (uint8_t)a};
            if (label_layout(&l, sizes[i]) != 0) {
                good = 0;
                continue;
            }
            uint64_t nsect = (l.data_end - l.data_start) >> a;
            uint64_t bitmap_end = l.bitmap_offset + 2 * l.bitmap_chunks * l.bitmap_slot_size;
            good &= l.dev_size % LABEL_SIZE == 0 && l.dev_size <= sizes[i];
            good &= l.data_start % MiB == 0 && bitmap_end <= l.data_start;
            good &= l.data_end == ((l.dev_size - 2 * LABEL_SIZE) & ~((1ULL << a) - 1));
            good &= l.bitmap_slot_size == (a < 12 ? 4096u : 1u << a);
            good &= l.bits_per_chunk == (l.bitmap_slot_size - 64) * 8 && l.bits_per_chunk % 64 == 0;
            good &= l.bitmap_chunks * l.bits_per_chunk >= nsect &&
                    (l.bitmap_chunks - 1) * l.bits_per_chunk < nsect;
        }
    }
    ok(good, "layout invariants for ashift 9..16 and several sizes");
    ok(ub_slot_size(9) == 4096 && ub_slot_count(9) == 60, "ring ashift 9: 60 x 4K");
    ok(ub_slot_size(12) == 4096 && ub_slot_count(12) == 60, "ring ashift 12: 60 x 4K");
    ok(ub_slot_size(16) == 65536 && ub_slot_count(16) == 3, "ring ashift 16: 3 x 64K");
}

static void resign_hdr(uint8_t *b)
{
    sha256(b, LABEL_HDR_SIZE - 32, b + LABEL_HDR_SIZE - 32);
}

static void resign_ub(uint8_t *b)
{
    sha256(b, UB_SIZE - 32, b + UB_SIZE - 32);
}

static void test_hdr_codec(void)
{
    static uint8_t b[LABEL_HDR_SIZE];
    struct label_hdr h = sample_hdr(12, 1ULL << 30), d;
    label_hdr_encode(&h, b);
    ok(get_le64(b) == LABEL_MAGIC && b[128] == 12 && get_le64(b + 40) == h.pool_guid,
       "header fields at FORMAT.md offsets");
    ok(label_hdr_decode(b, sizeof b, &d) == 0 && memcmp(&h, &d, sizeof h) == 0, "round trip");
    ok(label_hdr_decode(b, sizeof b - 1, &d) == -EILSEQ, "short buffer rejected");
    int all_fail = 1;
    for (size_t i = 0; i < LABEL_HDR_SIZE; i += 7) { /* every 7th byte: keeps the test fast */
        b[i] ^= 0x5a;
        all_fail &= label_hdr_decode(b, sizeof b, &d) != 0;
        b[i] ^= 0x5a;
    }
    ok(all_fail, "a flipped byte anywhere is rejected (checksum)");
    for (size_t i = LABEL_HDR_SIZE - 32; i < LABEL_HDR_SIZE; i++) {
        b[i] ^= 1;
        all_fail &= label_hdr_decode(b, sizeof b, &d) != 0;
        b[i] ^= 1;
    }
    ok(all_fail, "a flipped checksum byte is rejected");

    /* Corrupt fields with a valid checksum: the field checks must catch them. */
    struct {
        const char *what;
        size_t off;
        uint8_t val;
        int want;
    } cases[] = {
        {"version 2", 8, 2, -EILSEQ},           {"header length 0", 13, 0, -EILSEQ},
        {"unknown incompat", 16, 1, -ENOTSUP},  {"ashift 8", 128, 8, -EILSEQ},
        {"ashift 17", 128, 17, -EILSEQ},        {"ashift 13 (layout mismatch)", 128, 13, -EILSEQ},
        {"state 3", 129, 3, -EILSEQ},           {"vdev type mirror", 130, 10, -EILSEQ},
        {"nparity 1", 131, 1, -EILSEQ},         {"dev_size", 137, 0x13, -EILSEQ},
        {"data_start", 145, 0x33, -EILSEQ},     {"data_end", 153, 0x01, -EILSEQ},
        {"bitmap offset", 161, 0x09, -EILSEQ},  {"bitmap chunks", 168, 77, -EILSEQ},
        {"slot size", 177, 0x20, -EILSEQ},      {"bits per chunk", 180, 1, -EILSEQ},
        {"nchildren 0", 192, 0, -EILSEQ},       {"nchildren 33", 192, 33, -EILSEQ},
        {"child index 1 of 1", 200, 1, -EILSEQ}, {"stray child guid", 208 + 8 * 5, 1, -EILSEQ},
        {"empty name", 64, 0, -EILSEQ},         {"garbage after name NUL", 70, 'x', -EILSEQ},
        {"pool guid 0", 40, 0, -EILSEQ},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        label_hdr_encode(&h, b);
        if (strcmp(cases[i].what, "pool guid 0") == 0)
            memset(b + 40, 0, 8);
        else if (strcmp(cases[i].what, "header length 0") == 0)
            memset(b + 12, 0, 4);
        else
            b[cases[i].off] = cases[i].val;
        resign_hdr(b);
        is_int(label_hdr_decode(b, sizeof b, &d), cases[i].want, cases[i].what);
    }
    label_hdr_encode(&h, b);
    memset(b + 64, 'a', 64);
    resign_hdr(b);
    ok(label_hdr_decode(b, sizeof b, &d) == -EILSEQ, "name without NUL rejected");
}

/* The fields after the tree (FORMAT.md 2, offsets 472..1023): label
 * generation, config txg, per-child DTLs, resilver position. */
static void test_hdr_dtl(void)
{
    static uint8_t b[LABEL_HDR_SIZE];
    struct label_hdr h = sample_hdr(12, 1ULL << 30), d;
    h.top_type = VDEV_TYPE_MIRROR;
    h.features_incompat = LABEL_FEAT_VDEV_TREE;
    h.top_guid = 0x5151;
    h.nchildren = 3;
    h.child_guids[1] = 0x2222;
    h.child_guids[2] = 0x3333;
    h.stale_mask = 4;
    h.label_gen = 77;
    h.config_txg = 1234;
    h.dtl[2] = (struct label_dtl){.lo = 10, .hi = 99};
    h.rsv_valid = 1;
    h.rsv_id = 5;
    h.rsv_blk = 4096;
    h.rsv_part = 1;
    h.replace_old = 0x2222;
    h.replace_new = 0x3333;
    label_hdr_encode(&h, b);
    ok(get_le32(b + 12) == 1048 && get_le64(b + 1024) == 0x2222 && get_le64(b + 1032) == 0x3333 && get_le64(b + 472) == 77 && get_le64(b + 480) == 1234 &&
           get_le64(b + 488 + 32) == 10 && get_le64(b + 488 + 40) == 99 &&
           get_le64(b + 1000) == 5 && get_le64(b + 1008) == 4096 && get_le32(b + 1016) == 1 &&
           get_le32(b + 1020) == 1,
       "generation, config txg, DTL, resilver position, pending replace at FORMAT.md offsets");
    ok(label_hdr_decode(b, sizeof b, &d) == 0 && memcmp(&h, &d, sizeof h) == 0,
       "round trip with DTLs and a resilver position");
    struct {
        const char *what;
        size_t off;
        uint64_t val;
        int len;
    } bad[] = {
        {"DTL lo > hi", 488 + 32, 100, 8},         {"DTL lo 0, hi set", 488 + 32, 0, 8},
        {"DTL hi 0, lo set", 488 + 40, 0, 8},      {"DTL past the children", 488 + 48, 1, 8},
        {"resilver valid 2", 1020, 2, 4},          {"resilver part 2", 1016, 2, 4},
        {"replace of a non-member", 1024, 0x4444, 8}, {"replace new 0", 1032, 0, 8},
        {"replace old = new", 1024, 0x3333, 8},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        label_hdr_encode(&h, b);
        if (bad[i].len == 8)
            put_le64(b + bad[i].off, bad[i].val);
        else
            put_le32(b + bad[i].off, (uint32_t)bad[i].val);
        resign_hdr(b);
        is_int(label_hdr_decode(b, sizeof b, &d), -EILSEQ, bad[i].what);
    }
    label_hdr_encode(&h, b);
    put_le32(b + 1020, 0); /* not valid, but a position left */
    resign_hdr(b);
    is_int(label_hdr_decode(b, sizeof b, &d), -EILSEQ, "a position without the valid flag");
    /* a label of the previous length (472): the new fields read as zero */
    label_hdr_encode(&h, b);
    put_le32(b + 12, 472);
    resign_hdr(b);
    ok(label_hdr_decode(b, sizeof b, &d) == 0 && d.label_gen == 0 && d.config_txg == 0 &&
           d.dtl[2].hi == 0 && d.rsv_valid == 0 && d.stale_mask == 4,
       "an older label (length 472) reads no generation, DTL or position");
    /* a mirror of one member (the others detached) is valid */
    h.nchildren = 1;
    h.child_guids[1] = h.child_guids[2] = 0;
    h.dtl[2] = (struct label_dtl){0, 0};
    h.stale_mask = 0;
    h.replace_old = h.replace_new = 0;
    label_hdr_encode(&h, b);
    ok(label_hdr_decode(b, sizeof b, &d) == 0, "a mirror of one member");
}

static struct uberblock sample_ub(uint64_t txg, uint64_t guid)
{
    struct uberblock u;
    memset(&u, 0, sizeof u);
    u.version = BERTH_FORMAT_VERSION;
    u.txg = txg;
    u.pool_guid = guid;
    u.guid_sum = 99;
    u.timestamp = 1700000000;
    u.mos_root.dva[0] = (struct dva){.offset = 8192, .asize = 16384};
    u.mos_root.lsize = u.mos_root.psize = 16384;
    u.mos_root.cksum = BS_CHECKSUM_XXH3;
    u.mos_root.type = BP_TYPE_MOS_DATA;
    u.mos_root.fill = 1;
    u.mos_root.birth = txg;
    u.mos_levels = 1;
    u.mos_dblksz = 16384;
    u.mos_size = 16384;
    return u;
}

static void test_ub_codec(void)
{
    uint8_t b[UB_SIZE];
    struct uberblock u = sample_ub(1234, 7), d;
    ub_encode(&u, b);
    ok(get_le64(b) == UB_MAGIC && get_le64(b + 16) == 1234 && get_le32(b + 188) == 16384,
       "uberblock fields at FORMAT.md offsets");
    ok(ub_decode(b, sizeof b, &d) == 0 && memcmp(&u, &d, sizeof u) == 0, "round trip");
    int all_fail = 1;
    for (size_t i = 0; i < UB_SIZE; i++) {
        b[i] ^= 0x01;
        all_fail &= ub_decode(b, sizeof b, &d) != 0;
        b[i] ^= 0x01;
    }
    ok(all_fail, "every flipped byte is rejected");
    ok(ub_decode(b, UB_SIZE - 1, &d) == -EILSEQ, "short buffer rejected");
    b[300] = 1;
    resign_ub(b);
    ok(ub_decode(b, sizeof b, &d) == -EILSEQ, "non-zero reserved area rejected");
    ub_encode(&u, b);
    b[12] = 1;
    resign_ub(b);
    ok(ub_decode(b, sizeof b, &d) == -EILSEQ, "non-zero reserved word rejected");
    u.features_incompat = 1;
    ub_encode(&u, b);
    ok(ub_decode(b, sizeof b, &d) == -ENOTSUP, "unknown incompat feature: ENOTSUP");
    u = sample_ub(5, 7);
    u.mos_root.comp = 9;
    ub_encode(&u, b);
    ok(ub_decode(b, sizeof b, &d) == -EILSEQ, "corrupt MOS root pointer rejected");
    u = sample_ub(5, 7);
    u.mos_dblksz = 3000;
    ub_encode(&u, b);
    ok(ub_decode(b, sizeof b, &d) == -EILSEQ, "MOS block size not a power of two rejected");
    u = sample_ub(5, 7);
    u.version = 2;
    ub_encode(&u, b);
    ok(ub_decode(b, sizeof b, &d) == -EILSEQ, "version 2 rejected");
}

/* A 96 MiB temporary vdev DIR/NAME (its path in path[256]); NULL, after a
 * failed check, if it cannot be opened. */
static struct vdev *open_temp(const char *dir, const char *name, char path[256])
{
    struct vdev *v = NULL;
    struct berr e = {0};
    snprintf(path, 256, "%s/%s", dir, name);
    ok(vdev_open(path, 96 * MiB, false, &v, &e) == 0, "open temp vdev %s: %s", name, e.msg);
    return v;
}

static void test_device(const char *dir)
{
    char path[256];
    struct berr e = {0};
    struct label_hdr h = sample_hdr(12, 96 * MiB), r;
    struct vdev *v = open_temp(dir, "label.img", path);
    if (!v)
        return;
    ok(label_read_hdr(v, &r, &e) == -ENOENT, "blank device: ENOENT (%s)", e.msg);
    ok(label_write_hdr(v, &h) == 0, "write header to 4 labels");
    ok(label_read_hdr(v, &r, &e) == 0 && memcmp(&h, &r, sizeof h) == 0, "read it back");
    static uint8_t junk[LABEL_HDR_SIZE];
    memset(junk, 0xee, sizeof junk);
    put_le64(junk, LABEL_MAGIC);
    uint64_t offs[4] = {0, LABEL_SIZE, h.dev_size - 2 * LABEL_SIZE, h.dev_size - LABEL_SIZE};
    for (int i = 0; i < 3; i++) {
        vdev_pwrite(v, junk, sizeof junk, offs[i]);
        ok(label_read_hdr(v, &r, &e) == 0 && r.pool_guid == h.pool_guid,
           "labels 0..%d damaged: found in a later copy", i);
    }
    vdev_pwrite(v, junk, sizeof junk, offs[3]);
    ok(label_read_hdr(v, &r, &e) == -EILSEQ, "all four damaged: EILSEQ (%s)", e.msg);
    /* the guids a damaged device still carries (to name it, unverified) */
    uint64_t pg = 0, vg = 0;
    ok(label_guess_ids(v, &pg, &vg) && pg == 0xeeeeeeeeeeeeeeeeULL && vg == pg,
       "all four garbled alike: their (garbage) guids guessed");
    label_write_hdr(v, &h);
    static uint8_t hb[LABEL_HDR_SIZE];
    label_hdr_encode(&h, hb);
    memset(hb + 64, 0x55, 16); /* the pool name: every copy fails its checksum */
    for (int i = 0; i < 4; i++)
        vdev_pwrite(v, hb, sizeof hb, offs[i]);
    ok(label_read_hdr(v, &r, &e) == -EILSEQ, "pool name garbled in all four: EILSEQ");
    ok(label_guess_ids(v, &pg, &vg) && pg == h.pool_guid && vg == h.vdev_guid,
       "their pool and vdev guids guessed");
    put_le64(hb + 48, h.vdev_guid + 1);
    vdev_pwrite(v, hb, sizeof hb, offs[2]);
    ok(!label_guess_ids(v, &pg, &vg), "copies naming different vdevs: no guess");
    memset(hb, 0, sizeof hb);
    for (int i = 0; i < 4; i++)
        vdev_pwrite(v, hb, sizeof hb, offs[i]);
    ok(!label_guess_ids(v, &pg, &vg), "no label at all: no guess");
    label_write_hdr(v, &h);

    /* uberblock ring */
    uint32_t n = ub_slot_count(12);
    for (uint64_t t = 1; t <= n + 10; t++) {
        struct uberblock u = sample_ub(t, h.pool_guid);
        label_write_ub(v, &h, &u);
    }
    struct uberblock other = sample_ub(n + 11, 0xdead);
    label_write_ub(v, &h, &other);
    struct uberblock *ubs = NULL;
    int cnt = label_read_ubs(v, &h, &ubs);
    /* slot of txg n+11 now holds the foreign pool's uberblock */
    is_int(cnt, n - 1, "ring holds nslots-1 of ours (one slot taken by another pool)");
    int sorted = cnt > 0 && ubs[0].txg == n + 10;
    for (int i = 1; i < cnt; i++)
        sorted &= ubs[i].txg == ubs[i - 1].txg - 1;
    ok(sorted, "newest first, deduplicated across the four labels");
    free(ubs);
    /* damage the newest slot in labels 0..2: still found in label 3 */
    static uint8_t zero[4096];
    uint64_t in_label = LABEL_HDR_SIZE + ((n + 10) % n) * 4096;
    for (int i = 0; i < 3; i++)
        vdev_pwrite(v, zero, sizeof zero, offs[i] + in_label);
    cnt = label_read_ubs(v, &h, &ubs);
    ok(cnt > 0 && ubs[0].txg == n + 10, "newest uberblock survives in one label of four");
    free(ubs);
    vdev_pwrite(v, zero, sizeof zero, offs[3] + in_label);
    cnt = label_read_ubs(v, &h, &ubs);
    ok(cnt > 0 && ubs[0].txg == n + 9, "torn newest in all labels: falls back to the previous");
    free(ubs);
    /* an uberblock copied into the wrong slot is ignored */
    uint8_t slot[4096] = {0};
    struct uberblock wrong = sample_ub(n + 100, h.pool_guid);
    ub_encode(&wrong, slot);
    vdev_pwrite(v, slot, sizeof slot, offs[0] + LABEL_HDR_SIZE + ((n + 101) % n) * 4096);
    cnt = label_read_ubs(v, &h, &ubs);
    ok(cnt > 0 && ubs[0].txg == n + 9, "uberblock in the wrong slot ignored");
    free(ubs);

    ok(label_wipe(v) == 0, "wipe");
    ok(label_read_hdr(v, &r, &e) == -ENOENT, "wiped: ENOENT");
    cnt = label_read_ubs(v, &h, &ubs);
    ok(cnt == 0 && ubs == NULL, "wiped: no uberblocks");

    /* A crash in the first label write of a wiped device (a device joining
     * a pool) tears at most one copy, the others hold no label yet: that is
     * no label, not damage.  A second bad copy is damage. */
    static uint8_t hdr[LABEL_HDR_SIZE];
    label_hdr_encode(&h, hdr);
    vdev_pwrite(v, hdr, sizeof hdr / 2, offs[0]);
    ok(label_read_hdr(v, &r, &e) == -ENOENT, "first copy torn, no label in the others: "
       "ENOENT (%s)", e.msg);
    vdev_pwrite(v, hdr, sizeof hdr, offs[0]);
    vdev_pwrite(v, hdr, sizeof hdr / 2, offs[1]);
    ok(label_read_hdr(v, &r, &e) == 0 && r.pool_guid == h.pool_guid,
       "first copy written, second torn: the first is the label");
    vdev_pwrite(v, junk, sizeof junk, offs[0]);
    ok(label_read_hdr(v, &r, &e) == -EILSEQ, "two bad copies: damage, EILSEQ (%s)", e.msg);
    ok(label_wipe(v) == 0, "wipe");
    label_write_hdr(v, &h);
    vdev_pwrite(v, junk, sizeof junk, offs[3]);
    ok(label_read_hdr(v, &r, &e) == 0, "last copy torn over a complete label: the first");
    vdev_close(v);
    unlink(path);
}

/* Copy i of the label header, decoded: 0, or the decode error. */
static int copy_gen(struct vdev *v, uint64_t off, uint64_t *gen)
{
    static uint8_t b[LABEL_HDR_SIZE];
    struct label_hdr d;
    *gen = 0;
    if (vdev_pread(v, b, sizeof b, off) < 0)
        return -EIO;
    int r = label_hdr_decode(b, sizeof b, &d);
    *gen = d.label_gen;
    return r;
}

/* Label writes in two flushed phases (copies 0 and 2, then 1 and 3), and
 * what a power cut can leave of them. */
static void test_power_cut(const char *dir)
{
    char path[256];
    struct berr e = {0};
    struct label_hdr h = sample_hdr(12, 96 * MiB), h2, r;
    struct vdev *v = open_temp(dir, "power.img", path);
    if (!v)
        return;
    uint64_t offs[4] = {0, LABEL_SIZE, h.dev_size - 2 * LABEL_SIZE, h.dev_size - LABEL_SIZE};
    uint64_t g[4];
    int rc[4];
    h.label_gen = 1;
    h2 = h;
    h2.label_gen = 2;

    /* The order of the writes: the 3rd write of a rewrite is torn (the
     * device fails every write after it, as after a power cut).  In two
     * phases that is copy 1: copies 0 and 2 are new, 3 old. */
    ok(label_write_hdr(v, &h) == 0, "old label written");
    ok(vdev_debug(v, "torn_write_after=3", &e) == 0, "power cut at the 3rd write");
    ok(label_write_hdr(v, &h2) < 0, "the rewrite fails");
    for (int i = 0; i < 4; i++)
        rc[i] = copy_gen(v, offs[i], &g[i]);
    ok(rc[0] == 0 && g[0] == 2 && rc[2] == 0 && g[2] == 2, "copies 0 and 2 new (phase 1)");
    ok(rc[1] == -EILSEQ, "copy 1 torn (first of phase 2)");
    ok(rc[3] == 0 && g[3] == 1, "copy 3 old (not reached)");
    ok(label_read_hdr(v, &r, &e) == 0 && r.label_gen == 2, "the new label is read");
    vdev_debug(v, "reset", &e);
    ok(vdev_debug(v, "torn_write_after=2", &e) == 0, "power cut at the 2nd write");
    ok(label_write_hdr(v, &h) < 0, "the rewrite fails");
    rc[2] = copy_gen(v, offs[2], &g[2]);
    rc[1] = copy_gen(v, offs[1], &g[1]);
    ok(rc[2] == -EILSEQ, "copy 2 torn (second of phase 1)");
    ok(rc[1] == -EILSEQ && copy_gen(v, offs[3], &g[3]) == 0 && g[3] == 1,
       "phase 2 not written after the failed phase 1 (copies 1, 3 as they were)");
    vdev_debug(v, "reset", &e);

    /* A power cut in phase 1 of a rewrite keeps any part of copies 0 and
     * 2: both torn, 1 and 3 whole and old. */
    static uint8_t hdr[LABEL_HDR_SIZE];
    ok(label_write_hdr(v, &h) == 0, "old label written");
    label_hdr_encode(&h2, hdr);
    vdev_pwrite(v, hdr, sizeof hdr / 2, offs[0]);
    vdev_pwrite(v, hdr, 4096, offs[2]);
    ok(label_read_hdr(v, &r, &e) == 0 && r.label_gen == 1,
       "rewrite cut in phase 1 (0, 2 torn): the old label");
    /* ... in phase 2: 0 and 2 whole and new, 1 and 3 torn */
    vdev_pwrite(v, hdr, sizeof hdr, offs[0]);
    vdev_pwrite(v, hdr, sizeof hdr, offs[2]);
    vdev_pwrite(v, hdr, 4096, offs[1]);
    vdev_pwrite(v, hdr, sizeof hdr / 2, offs[3]);
    ok(label_read_hdr(v, &r, &e) == 0 && r.label_gen == 2,
       "rewrite cut in phase 2 (1, 3 torn): the new label");

    /* The first label of a wiped device cut in phase 1: copies 0 and 2 (or
     * one of them) torn, 1 and 3 without a label: no label, not damage. */
    ok(label_wipe(v) == 0, "wipe");
    vdev_pwrite(v, hdr, sizeof hdr / 2, offs[0]);
    vdev_pwrite(v, hdr, 4096, offs[2]);
    ok(label_read_hdr(v, &r, &e) == -ENOENT, "first label, copies 0 and 2 torn: ENOENT (%s)",
       e.msg);
    ok(label_wipe(v) == 0, "wipe");
    vdev_pwrite(v, hdr, 4096, offs[2]);
    ok(label_read_hdr(v, &r, &e) == -ENOENT, "first label, copy 2 torn: ENOENT");
    /* an odd copy torn with no whole copy anywhere: no crash leaves that */
    vdev_pwrite(v, hdr, 4096, offs[1]);
    ok(label_read_hdr(v, &r, &e) == -EILSEQ, "copies 1 and 2 torn, none whole: EILSEQ (%s)",
       e.msg);
    ok(label_wipe(v) == 0, "wipe");
    vdev_pwrite(v, hdr, 4096, offs[3]);
    ok(label_read_hdr(v, &r, &e) == -EILSEQ, "copy 3 torn alone: EILSEQ");
    vdev_close(v);
    unlink(path);
}

/* The test knob fail_label_writes (vdev.h): on fails every label write,
 * N only the next N (a transient failure), off and reset none. */
static void test_fail_knob(const char *dir)
{
    char path[256];
    struct berr e = {0};
    struct label_hdr h = sample_hdr(12, 96 * MiB), r;
    struct vdev *v = open_temp(dir, "failknob.img", path);
    if (!v)
        return;
    h.label_gen = 1;
    ok(vdev_debug(v, "fail_label_writes=on", &e) == 0, "fail_label_writes=on: %s", e.msg);
    bool all = true;
    for (int i = 0; i < 3; i++)
        all &= label_write_hdr(v, &h) == -EIO;
    ok(all, "on: every label write fails");
    ok(vdev_debug(v, "fail_label_writes=off", &e) == 0 && label_write_hdr(v, &h) == 0,
       "off: the label write lands");
    ok(vdev_debug(v, "fail_label_writes=2", &e) == 0, "fail_label_writes=2: %s", e.msg);
    h.label_gen = 2;
    ok(label_write_hdr(v, &h) == -EIO && label_write_hdr(v, &h) == -EIO,
       "2: the next two label writes fail");
    ok(label_read_hdr(v, &r, &e) == 0 && r.label_gen == 1, "the old label stays");
    ok(label_write_hdr(v, &h) == 0 && label_read_hdr(v, &r, &e) == 0 && r.label_gen == 2,
       "the third lands");
    ok(vdev_debug(v, "fail_label_writes=5", &e) == 0 && vdev_debug(v, "reset", &e) == 0 &&
           label_write_hdr(v, &h) == 0,
       "reset clears a count");
    ok(vdev_debug(v, "fail_label_writes=0", &e) == 0 && label_write_hdr(v, &h) == 0,
       "0: off");
    ok(vdev_debug(v, "fail_label_writes=maybe", &e) == -EINVAL &&
           strstr(e.msg, "on, off or N") != NULL,
       "a bad value: EINVAL (%s)", e.msg);
    vdev_close(v);
    unlink(path);
}

int main(void)
{
    char dir[] = "/tmp/berth-test-label-XXXXXX";
    if (!mkdtemp(dir))
        tap_skip_all("cannot make a temp dir");
    test_layout();
    test_hdr_codec();
    test_hdr_dtl();
    test_ub_codec();
    test_device(dir);
    test_power_cut(dir);
    test_fail_knob(dir);
    rmdir(dir);
    return done_testing();
}
