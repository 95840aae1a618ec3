/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Labels, the device layout and the uberblock ring (docs/FORMAT.md 1-3).
 *
 * Invariants:
 *  - the layout is a pure function of (rounded device size, ashift):
 *    label_layout computes it and label_hdr_decode recomputes it, so a header
 *    whose layout fields disagree with its own size/ashift is corrupt;
 *  - ring slots are at least one physical sector (slot = max(4K, 1<<ashift)),
 *    so a torn uberblock write can only damage its own slot;
 *  - the uberblock of txg T lives in slot T % nslots; one found elsewhere is
 *    stale or misplaced and ignored;
 *  - every decoded structure passed magic, version, SHA-256 self checksum and
 *    field checks; unknown incompat features give -ENOTSUP, never a guess;
 *  - an uberblock's allocation map digest (bytes 200..219) is opaque here:
 *    alloc.c computes it, import compares it (maprebuild.c). */
#include "store/label.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "common/cleanup.h"
#include "common/le.h"
#include "store/codec.h"
#include "store/crashpt.h"

#define KiB 1024ULL
#define MiB (1024ULL * 1024)
#define LABEL_MIN_DEV (64 * MiB)
#define LABEL_HDR_CKSUM_OFF (LABEL_HDR_SIZE - 32)
#define LABEL_HDR_USED_V1 (208 + 8 * 32) /* labels written before the vdev tree */
#define LABEL_TOP_TYPE_OFF LABEL_HDR_USED_V1
#define LABEL_STALE_OFF (LABEL_TOP_TYPE_OFF + 4) /* u32 stale mask */
#define LABEL_HDR_USED_V2 (LABEL_HDR_USED_V1 + 8) /* + top type, stale mask */
/* + label generation, config txg, per-child DTLs, resilver position */
#define LABEL_GEN_OFF LABEL_HDR_USED_V2
#define LABEL_CONFIG_TXG_OFF (LABEL_GEN_OFF + 8)
#define LABEL_DTL_OFF (LABEL_CONFIG_TXG_OFF + 8)      /* 32 x {u64 lo, u64 hi} */
#define LABEL_RSV_OFF (LABEL_DTL_OFF + 16 * 32)       /* u64 id, u64 blk, u32 part, u32 valid */
#define LABEL_REPLACE_OFF (LABEL_RSV_OFF + 24) /* u64 old guid, u64 new guid */
#define LABEL_PREV_SUM_OFF (LABEL_REPLACE_OFF + 16) /* u64 guid sum of the previous tree */
#define LABEL_HDR_USED (LABEL_PREV_SUM_OFF + 8)
#define UB_CKSUM_OFF (UB_SIZE - 32)
#define UB_MAP_DIGEST_OFF 200
#define UB_MAP_CHUNKS_OFF 216
#define UB_NTOPS_OFF 220
#define UB_TOPS_OFF 224
#define UB_RESERVED_OFF (UB_TOPS_OFF + 8 * LABEL_MAX_TOPS)
#define UB_RING_BYTES (LABEL_SIZE - LABEL_HDR_SIZE)
#define MAX_CHILDREN 32
#define FEATURES_INCOMPAT_KNOWN (LABEL_FEAT_VDEV_TREE | LABEL_FEAT_RAIDZ | LABEL_FEAT_MULTI_TOP)

/* ---- layout ---- */

static uint32_t bitmap_slot_size(int ashift)
{
    /* A slot is at least a physical sector so that writing one slot of a
     * chunk can never tear the other. */
    uint32_t s = 1u << ashift;
    return s < 4096 ? 4096 : s;
}

int label_layout(struct label_hdr *h, uint64_t size)
{
    if (h->ashift < 9 || h->ashift > 16)
        return -EINVAL;
    uint64_t sector = 1ULL << h->ashift;
    uint64_t dev = size & ~(uint64_t)(LABEL_SIZE - 1);
    if (dev < LABEL_MIN_DEV)
        return -ENOSPC;
    uint32_t slot = bitmap_slot_size(h->ashift);
    uint32_t bits = (slot - 64) * 8;
    uint64_t data_end = (dev - 2 * LABEL_SIZE) & ~(sector - 1);
    /* a raidz's data area spans the same range of every child */
    uint64_t width = h->top_type == VDEV_TYPE_RAIDZ ? h->nchildren : 1;
    if (width == 0 || width > MAX_CHILDREN)
        return -EINVAL;
    /* Size the bitmap for the whole span after the bitmap's start (an upper
     * bound of the data area), then count the chunks the real area needs;
     * the region keeps its upper-bound size so data_start is stable. */
    uint64_t upper = ((data_end - BITMAP_OFFSET) >> h->ashift) * width;
    uint64_t chunks = (upper + bits - 1) / bits;
    uint64_t data_start = BITMAP_OFFSET + chunks * 2 * slot;
    data_start = (data_start + MiB - 1) & ~(MiB - 1);
    if (data_start >= data_end)
        return -ENOSPC;
    uint64_t nsect = ((data_end - data_start) >> h->ashift) * width;
    h->dev_size = dev;
    h->data_start = data_start;
    h->data_end = data_end;
    h->bitmap_offset = BITMAP_OFFSET;
    h->bitmap_chunks = (nsect + bits - 1) / bits;
    h->bitmap_slot_size = slot;
    h->bits_per_chunk = bits;
    return 0;
}

uint64_t label_data_size(const struct label_hdr *h)
{
    uint64_t width = h->top_type == VDEV_TYPE_RAIDZ ? h->nchildren : 1;
    return (h->data_end - h->data_start) * width;
}

static uint64_t label_offset(uint64_t dev_size, int i)
{
    static const uint64_t from_end[4] = {0, 0, 2 * LABEL_SIZE, LABEL_SIZE};
    return i < 2 ? (uint64_t)i * LABEL_SIZE : dev_size - from_end[i];
}

/* ---- label header ---- */

void label_hdr_encode(const struct label_hdr *h, uint8_t out[LABEL_HDR_SIZE])
{
    memset(out, 0, LABEL_HDR_SIZE);
    put_le64(out + 0, LABEL_MAGIC);
    put_le32(out + 8, h->version);
    put_le32(out + 12, LABEL_HDR_USED);
    put_le64(out + 16, h->features_incompat);
    put_le64(out + 24, h->features_ro_compat);
    put_le64(out + 32, h->features_compat);
    put_le64(out + 40, h->pool_guid);
    put_le64(out + 48, h->vdev_guid);
    put_le64(out + 56, h->top_guid);
    memcpy(out + 64, h->pool_name, strnlen(h->pool_name, sizeof(h->pool_name) - 1));
    out[128] = h->ashift;
    out[129] = h->state;
    out[130] = h->vdev_type;
    out[131] = h->nparity;
    put_le32(out + 132, h->top_id);
    put_le64(out + 136, h->dev_size);
    put_le64(out + 144, h->data_start);
    put_le64(out + 152, h->data_end);
    put_le64(out + 160, h->bitmap_offset);
    put_le64(out + 168, h->bitmap_chunks);
    put_le32(out + 176, h->bitmap_slot_size);
    put_le32(out + 180, h->bits_per_chunk);
    put_le64(out + 184, h->create_txg);
    put_le64(out + 192, h->nchildren);
    put_le64(out + 200, h->child_index);
    for (int i = 0; i < MAX_CHILDREN; i++)
        put_le64(out + 208 + 8 * i, h->child_guids[i]);
    out[LABEL_TOP_TYPE_OFF] = h->top_type;
    put_le32(out + LABEL_STALE_OFF, h->stale_mask);
    put_le64(out + LABEL_GEN_OFF, h->label_gen);
    put_le64(out + LABEL_CONFIG_TXG_OFF, h->config_txg);
    for (int i = 0; i < MAX_CHILDREN; i++) {
        put_le64(out + LABEL_DTL_OFF + 16 * i, h->dtl[i].lo);
        put_le64(out + LABEL_DTL_OFF + 16 * i + 8, h->dtl[i].hi);
    }
    put_le64(out + LABEL_RSV_OFF, h->rsv_id);
    put_le64(out + LABEL_RSV_OFF + 8, h->rsv_blk);
    put_le32(out + LABEL_RSV_OFF + 16, h->rsv_part);
    put_le32(out + LABEL_RSV_OFF + 20, h->rsv_valid);
    put_le64(out + LABEL_REPLACE_OFF, h->replace_old);
    put_le64(out + LABEL_REPLACE_OFF + 8, h->replace_new);
    put_le64(out + LABEL_PREV_SUM_OFF, h->prev_guid_sum);
    sha256(out, LABEL_HDR_CKSUM_OFF, out + LABEL_HDR_CKSUM_OFF);
}

static bool bytes_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void hdr_fields(const uint8_t *in, uint32_t used, struct label_hdr *h)
{
    h->version = get_le32(in + 8);
    h->features_incompat = get_le64(in + 16);
    h->features_ro_compat = get_le64(in + 24);
    h->features_compat = get_le64(in + 32);
    h->pool_guid = get_le64(in + 40);
    h->vdev_guid = get_le64(in + 48);
    h->top_guid = get_le64(in + 56);
    memcpy(h->pool_name, in + 64, sizeof(h->pool_name));
    h->ashift = in[128];
    h->state = in[129];
    h->vdev_type = in[130];
    h->nparity = in[131];
    h->top_id = get_le32(in + 132);
    h->dev_size = get_le64(in + 136);
    h->data_start = get_le64(in + 144);
    h->data_end = get_le64(in + 152);
    h->bitmap_offset = get_le64(in + 160);
    h->bitmap_chunks = get_le64(in + 168);
    h->bitmap_slot_size = get_le32(in + 176);
    h->bits_per_chunk = get_le32(in + 180);
    h->create_txg = get_le64(in + 184);
    h->nchildren = get_le64(in + 192);
    h->child_index = get_le64(in + 200);
    for (int i = 0; i < MAX_CHILDREN; i++)
        h->child_guids[i] = get_le64(in + 208 + 8 * i);
    h->top_type = used >= LABEL_HDR_USED_V2 ? in[LABEL_TOP_TYPE_OFF] : 0;
    h->stale_mask = used >= LABEL_HDR_USED_V2 ? get_le32(in + LABEL_STALE_OFF) : 0;
    if (h->nchildren < 32)
        h->stale_mask &= (1u << h->nchildren) - 1;
    if (used < LABEL_RSV_OFF + 24)
        return; /* older labels: no generation, config txg, DTLs (all zero) */
    h->label_gen = get_le64(in + LABEL_GEN_OFF);
    h->config_txg = get_le64(in + LABEL_CONFIG_TXG_OFF);
    for (int i = 0; i < MAX_CHILDREN; i++) {
        h->dtl[i].lo = get_le64(in + LABEL_DTL_OFF + 16 * i);
        h->dtl[i].hi = get_le64(in + LABEL_DTL_OFF + 16 * i + 8);
    }
    h->rsv_id = get_le64(in + LABEL_RSV_OFF);
    h->rsv_blk = get_le64(in + LABEL_RSV_OFF + 8);
    h->rsv_part = get_le32(in + LABEL_RSV_OFF + 16);
    h->rsv_valid = get_le32(in + LABEL_RSV_OFF + 20);
    if (used < LABEL_REPLACE_OFF + 16)
        return;
    h->replace_old = get_le64(in + LABEL_REPLACE_OFF);
    h->replace_new = get_le64(in + LABEL_REPLACE_OFF + 8);
    h->prev_guid_sum = get_le64(in + LABEL_PREV_SUM_OFF);
}

static bool hdr_layout_ok(const struct label_hdr *h)
{
    struct label_hdr l = {.ashift = h->ashift, .top_type = h->top_type,
                          .nchildren = h->nchildren};
    if (h->dev_size % LABEL_SIZE || label_layout(&l, h->dev_size) != 0)
        return false;
    return l.dev_size == h->dev_size && l.data_start == h->data_start &&
           l.data_end == h->data_end && l.bitmap_offset == h->bitmap_offset &&
           l.bitmap_chunks == h->bitmap_chunks && l.bitmap_slot_size == h->bitmap_slot_size &&
           l.bits_per_chunk == h->bits_per_chunk;
}

/* The vdev tree (FORMAT.md 2): a single leaf, a mirror of 2..32 leaves
 * marked with the incompat feature, or a raidz1..3 of nparity+1..32 leaves
 * marked with both; every child guid set and distinct, this leaf's own at
 * its index. */
static bool hdr_tree_ok(const struct label_hdr *h)
{
    bool tree = (h->features_incompat & LABEL_FEAT_VDEV_TREE) != 0;
    bool raidz = (h->features_incompat & LABEL_FEAT_RAIDZ) != 0;
    if (h->top_type == VDEV_TYPE_RAIDZ) {
        if (!tree || !raidz || h->nparity < 1 || h->nparity > 3 ||
            h->nchildren < h->nparity + 1u)
            return false;
    } else if (raidz || h->nparity != 0) {
        return false;
    } else if (h->top_type == 0) {
        if (tree || h->nchildren != 1)
            return false;
    } else if (h->top_type == VDEV_TYPE_MIRROR) {
        if (!tree || h->nchildren < 1) /* 1: a mirror its other members left (detach) */
            return false;
    } else {
        return false;
    }
    for (uint64_t i = 0; i < h->nchildren; i++) {
        if (h->child_guids[i] == 0)
            return false;
        for (uint64_t j = 0; j < i; j++)
            if (h->child_guids[j] == h->child_guids[i])
                return false;
    }
    return h->child_guids[h->child_index] == h->vdev_guid;
}

static bool hdr_fields_ok(const struct label_hdr *h, uint32_t used)
{
    if (h->version != BERTH_FORMAT_VERSION || used < LABEL_HDR_USED_V1 ||
        used > LABEL_HDR_CKSUM_OFF)
        return false;
    size_t nlen = strnlen(h->pool_name, sizeof(h->pool_name));
    if (nlen == 0 || nlen == sizeof(h->pool_name))
        return false;
    for (size_t i = nlen; i < sizeof(h->pool_name); i++)
        if (h->pool_name[i])
            return false;
    if (h->ashift < 9 || h->ashift > 16 || h->state > POOL_STATE_DESTROYED)
        return false;
    if (h->vdev_type != VDEV_TYPE_FILE && h->vdev_type != VDEV_TYPE_DISK)
        return false;
    if (h->pool_guid == 0 || h->vdev_guid == 0)
        return false;
    /* a top other than 0 only in a pool marked as having several */
    if (h->top_id >= LABEL_MAX_TOPS ||
        (h->top_id != 0 && !(h->features_incompat & LABEL_FEAT_MULTI_TOP)))
        return false;
    if (h->nchildren == 0 || h->nchildren > MAX_CHILDREN || h->child_index >= h->nchildren)
        return false;
    for (uint64_t i = h->nchildren; i < MAX_CHILDREN; i++)
        if (h->child_guids[i] || h->dtl[i].lo || h->dtl[i].hi)
            return false;
    /* a DTL is empty (0, 0) or a txg range lo <= hi; a resilver position
     * names part 0 or 1 */
    for (uint64_t i = 0; i < h->nchildren; i++)
        if ((h->dtl[i].lo == 0) != (h->dtl[i].hi == 0) || h->dtl[i].lo > h->dtl[i].hi)
            return false;
    if (h->rsv_valid > 1 || h->rsv_part > 1 || (!h->rsv_valid && (h->rsv_id || h->rsv_blk ||
                                                                    h->rsv_part)))
        return false;
    /* a pending replace names two distinct members */
    if ((h->replace_old == 0) != (h->replace_new == 0) ||
        (h->replace_old && h->replace_old == h->replace_new))
        return false;
    bool fo = !h->replace_old, fn = !h->replace_new;
    for (uint64_t i = 0; i < h->nchildren; i++) {
        fo |= h->child_guids[i] == h->replace_old;
        fn |= h->child_guids[i] == h->replace_new;
    }
    return fo && fn && hdr_tree_ok(h) && hdr_layout_ok(h);
}

int label_hdr_decode(const uint8_t *in, size_t len, struct label_hdr *h)
{
    uint8_t ck[32];
    memset(h, 0, sizeof(*h));
    if (!in || len < LABEL_HDR_SIZE || get_le64(in) != LABEL_MAGIC)
        return -EILSEQ;
    sha256(in, LABEL_HDR_CKSUM_OFF, ck);
    if (memcmp(ck, in + LABEL_HDR_CKSUM_OFF, 32) != 0)
        return -EILSEQ;
    struct label_hdr t;
    memset(&t, 0, sizeof(t)); /* padding too: callers may memcmp headers */
    hdr_fields(in, get_le32(in + 12), &t);
    /* A newer version's feature words are checked before its layout: the
     * right answer to "needs features we lack" is ENOTSUP, not "corrupt". */
    if (t.version == BERTH_FORMAT_VERSION && (t.features_incompat & ~FEATURES_INCOMPAT_KNOWN))
        return -ENOTSUP;
    if (!hdr_fields_ok(&t, get_le32(in + 12)))
        return -EILSEQ;
    *h = t;
    return 0;
}

/* ---- uberblocks ---- */

void ub_encode(const struct uberblock *ub, uint8_t out[UB_SIZE])
{
    memset(out, 0, UB_SIZE);
    put_le64(out + 0, UB_MAGIC);
    put_le32(out + 8, ub->version);
    put_le64(out + 16, ub->txg);
    put_le64(out + 24, ub->pool_guid);
    put_le64(out + 32, ub->guid_sum);
    put_le64(out + 40, ub->timestamp);
    put_le64(out + 48, ub->features_incompat);
    bp_encode(&ub->mos_root, out + 56);
    put_le32(out + 184, ub->mos_levels);
    put_le32(out + 188, ub->mos_dblksz);
    put_le64(out + 192, ub->mos_size);
    memcpy(out + UB_MAP_DIGEST_OFF, ub->map_digest, 16);
    put_le32(out + UB_MAP_CHUNKS_OFF, ub->map_chunks);
    put_le32(out + UB_NTOPS_OFF, ub->ntops);
    for (uint32_t i = 0; i < ub->ntops && i < LABEL_MAX_TOPS; i++)
        put_le64(out + UB_TOPS_OFF + 8 * i, ub->top_guids[i]);
    sha256(out, UB_CKSUM_OFF, out + UB_CKSUM_OFF);
}

int ub_decode(const uint8_t *in, size_t len, struct uberblock *ub)
{
    uint8_t ck[32];
    struct uberblock t;
    memset(ub, 0, sizeof(*ub));
    if (!in || len < UB_SIZE || get_le64(in) != UB_MAGIC)
        return -EILSEQ;
    sha256(in, UB_CKSUM_OFF, ck);
    if (memcmp(ck, in + UB_CKSUM_OFF, 32) != 0)
        return -EILSEQ;
    memset(&t, 0, sizeof(t));
    t.version = get_le32(in + 8);
    t.txg = get_le64(in + 16);
    t.pool_guid = get_le64(in + 24);
    t.guid_sum = get_le64(in + 32);
    t.timestamp = get_le64(in + 40);
    t.features_incompat = get_le64(in + 48);
    t.mos_levels = get_le32(in + 184);
    t.mos_dblksz = get_le32(in + 188);
    t.mos_size = get_le64(in + 192);
    memcpy(t.map_digest, in + UB_MAP_DIGEST_OFF, 16);
    t.map_chunks = get_le32(in + UB_MAP_CHUNKS_OFF);
    t.ntops = get_le32(in + UB_NTOPS_OFF);
    for (uint32_t i = 0; i < LABEL_MAX_TOPS; i++)
        t.top_guids[i] = get_le64(in + UB_TOPS_OFF + 8 * i);
    /* the top list: none (one top), or 2.. distinct non-zero guids marked
     * with the feature, zeros after them */
    bool multi = (t.features_incompat & LABEL_FEAT_MULTI_TOP) != 0;
    if (t.ntops == 1 || t.ntops > LABEL_MAX_TOPS || multi != (t.ntops != 0))
        return -EILSEQ;
    for (uint32_t i = 0; i < LABEL_MAX_TOPS; i++) {
        if ((i < t.ntops) != (t.top_guids[i] != 0))
            return -EILSEQ;
        for (uint32_t j = 0; j < i && i < t.ntops; j++)
            if (t.top_guids[j] == t.top_guids[i])
                return -EILSEQ;
    }
    if (t.version != BERTH_FORMAT_VERSION || get_le32(in + 12) != 0 ||
        !bytes_zero(in + UB_RESERVED_OFF, UB_CKSUM_OFF - UB_RESERVED_OFF))
        return -EILSEQ;
    /* no chunk count: no digest either (an uberblock of an older version) */
    if (t.map_chunks == 0 && !bytes_zero(t.map_digest, 16))
        return -EILSEQ;
    if (t.features_incompat & ~FEATURES_INCOMPAT_KNOWN)
        return -ENOTSUP;
    if (bp_decode(in + 56, &t.mos_root) != 0)
        return -EILSEQ;
    if (t.mos_levels > BP_MAX_LEVEL + 1)
        return -EILSEQ;
    if (t.mos_dblksz != 0 &&
        ((t.mos_dblksz & (t.mos_dblksz - 1)) || t.mos_dblksz < 512 || t.mos_dblksz > BP_MAX_LSIZE))
        return -EILSEQ;
    *ub = t;
    return 0;
}

void ub_map_digest(const uint64_t *txgs, uint64_t n, uint8_t out[16])
{
    XXH3_state_t st;
    uint8_t buf[512];
    XXH3_128bits_reset(&st);
    for (uint64_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof buf / 8 && i < n; k++, i++)
            put_le64(buf + 8 * k, txgs[i]);
        XXH3_128bits_update(&st, buf, 8 * k);
    }
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    put_le64(out, h.low64);
    put_le64(out + 8, h.high64);
}

uint32_t ub_slot_size(int ashift)
{
    if (ashift < 9 || ashift > 16)
        ashift = 12;
    uint32_t s = 1u << ashift;
    return s < 4096 ? 4096 : s;
}

uint32_t ub_slot_count(int ashift)
{
    return UB_RING_BYTES / ub_slot_size(ashift);
}

/* ---- device I/O ---- */

/* The four copies go in two phases, as ZFS writes its labels: copies 0 and
 * 2 (one at each end), a flush, then copies 1 and 3.  A power cut may keep
 * any subset of the pages written since the last flush, so it can tear
 * every copy of a phase; the flush between them means it never tears both
 * phases: at least two whole copies remain, all old (cut in phase 1) or all
 * new (cut in phase 2).  The caller flushes after phase 2.  The only state
 * without a whole copy is a device's very first label cut in phase 1:
 * copies 0 and 2 torn, 1 and 3 still without a label (label_read_hdr). */
static const int phase_copies[2][2] = {{0, 2}, {1, 3}};

/* Test knob fail_label_writes (vdev.h): does this label write fail?  A
 * count is taken down one per failed write (a CAS: concurrent writers never
 * fail more than N between them). */
static bool label_write_fails(struct vdev *v)
{
    int64_t n = atomic_load(&v->fail_label_writes);
    while (n > 0 && !atomic_compare_exchange_weak(&v->fail_label_writes, &n, n - 1))
        ;
    return n != 0;
}

int label_write_hdr(struct vdev *v, const struct label_hdr *h)
{
    _cleanup_free_ uint8_t *buf = malloc(LABEL_HDR_SIZE);
    int ret = 0;
    if (!buf)
        return -ENOMEM;
    if (label_write_fails(v)) {
        /* test knob: this leaf's label area does not take writes */
        atomic_fetch_add(&v->ctr.write_errors, 1);
        return -EIO;
    }
    label_hdr_encode(h, buf);
    for (int ph = 0; ph < 2; ph++) {
        /* test knob: a power cut in this phase, its two copies torn (the
         * first half of each reached the disk), the other phase untouched */
        if (crashpt_tear("label_power")) {
            for (int k = 0; k < 2; k++)
                (void)vdev_pwrite(v, buf, LABEL_HDR_SIZE / 2,
                                  label_offset(h->dev_size, phase_copies[ph][k]));
            crashpt_die("label_power");
        }
        for (int k = 0; k < 2; k++) {
            uint64_t off = label_offset(h->dev_size, phase_copies[ph][k]);
            /* test knob: this copy torn (its checksum fails: readers take
             * another copy), or the crash right after it */
            if (crashpt_tear("label_torn")) {
                (void)vdev_pwrite(v, buf, LABEL_HDR_SIZE / 2, off);
                crashpt_die("label_torn");
            }
            int r = vdev_pwrite(v, buf, LABEL_HDR_SIZE, off);
            if (r < 0 && ret == 0)
                ret = r;
            crashpt("label_copy");
        }
        /* phase 2 only over a durable phase 1 */
        if (ph == 0 && ret == 0)
            ret = vdev_flush(v);
        if (ret < 0)
            return ret;
    }
    return ret;
}

int label_read_hdr(struct vdev *v, struct label_hdr *h, struct berr *err)
{
    _cleanup_free_ uint8_t *buf = malloc(LABEL_HDR_SIZE);
    uint64_t dev = v->size & ~(uint64_t)(LABEL_SIZE - 1);
    int worst = -ENOENT, nbad = 0, nnone = 0;
    unsigned bad_mask = 0;
    if (!buf)
        return berr_set(err, ENOMEM, "out of memory reading labels of %s", v->path);
    if (dev < 4 * LABEL_SIZE)
        return berr_set(err, ENOENT, "%s is too small to hold a berth pool", v->path);
    for (int i = 0; i < 4; i++) {
        if (vdev_pread(v, buf, LABEL_HDR_SIZE, label_offset(dev, i)) < 0) {
            if (worst == -ENOENT)
                worst = -EIO;
            continue;
        }
        if (get_le64(buf) != LABEL_MAGIC) {
            nnone++;
            continue;
        }
        int r = label_hdr_decode(buf, LABEL_HDR_SIZE, h);
        if (r == 0 && h->dev_size > v->size)
            r = -EILSEQ; /* the device shrank under the pool */
        if (r == 0)
            return 0;
        nbad += r == -EILSEQ;
        if (r == -EILSEQ)
            bad_mask |= 1u << i;
        if (r == -ENOTSUP || worst != -ENOTSUP)
            worst = r;
    }
    memset(h, 0, sizeof(*h));
    /* The copies are written in two flushed phases, 0 and 2 then 1 and 3
     * (label_write_hdr), so a crash leaves two whole copies, except in the
     * first label write of a wiped device (a device joining a pool) cut in
     * phase 1: copies 0 and/or 2 torn, 1 and 3 without a label.  Such a
     * device holds no label, as before that write.  Any other state without
     * a valid copy is damage, which a crash cannot leave. */
    if (worst == -EILSEQ && nbad >= 1 && !(bad_mask & 0xa) && nbad + nnone == 4)
        return berr_set(err, ENOENT, "%s holds no berth pool (only a label write that was "
                        "interrupted)", v->path);
    if (worst == -ENOTSUP)
        return berr_set(err, ENOTSUP,
                        "%s holds a berth pool that needs features this version does not "
                        "support",
                        v->path);
    if (worst == -EILSEQ)
        return berr_set(err, EILSEQ, "%s has a damaged berth label (no valid copy of four)",
                        v->path);
    if (worst == -EIO)
        return berr_set(err, EIO, "cannot read the labels of %s", v->path);
    return berr_set(err, ENOENT, "%s does not hold a berth pool", v->path);
}

bool label_guess_ids(struct vdev *v, uint64_t *pool_guid, uint64_t *vdev_guid)
{
    _cleanup_free_ uint8_t *buf = malloc(LABEL_HDR_SIZE);
    uint64_t dev = v->size & ~(uint64_t)(LABEL_SIZE - 1);
    unsigned n = 0;
    if (!buf || dev < 4 * LABEL_SIZE)
        return false;
    for (int i = 0; i < 4; i++) {
        struct label_hdr h;
        if (vdev_pread(v, buf, LABEL_HDR_SIZE, label_offset(dev, i)) < 0 ||
            get_le64(buf) != LABEL_MAGIC)
            continue;
        hdr_fields(buf, 0, &h); /* the fixed fields, unverified */
        if (n && (h.pool_guid != *pool_guid || h.vdev_guid != *vdev_guid))
            return false; /* the copies disagree: no guess */
        *pool_guid = h.pool_guid;
        *vdev_guid = h.vdev_guid;
        n++;
    }
    return n > 0 && *pool_guid && *vdev_guid;
}

int label_write_ub(struct vdev *v, const struct label_hdr *h, const struct uberblock *ub)
{
    uint32_t ssize = ub_slot_size(h->ashift), n = ub_slot_count(h->ashift);
    _cleanup_free_ uint8_t *buf = calloc(1, ssize);
    int ret = 0;
    if (!buf)
        return -ENOMEM;
    ub_encode(ub, buf);
    uint64_t in_label = LABEL_HDR_SIZE + (ub->txg % n) * ssize;
    const char *pt = v->kind != VDEV_KIND_LEAF ? crashpt_ub_by_leaf(ub->txg) : NULL;
    if (pt) {
        /* test knob: a crash with the uberblock on some leaves only (what
         * a crash while a mirror or raidz fans it out can leave) */
        for (unsigned l = 0; l < vdev_nleaves(v); l++) {
            struct vdev *c = vdev_leaf(v, l);
            for (int i = 0; vdev_usable(c) && i < 4; i++)
                (void)vdev_pwrite(c, buf, ssize, label_offset(h->dev_size, i) + in_label);
            crashpt(pt);
        }
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        int r = vdev_pwrite(v, buf, ssize, label_offset(h->dev_size, i) + in_label);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

static int ub_cmp_desc(const void *a, const void *b)
{
    const struct uberblock *x = a, *y = b;
    return x->txg < y->txg ? 1 : x->txg > y->txg ? -1 : 0;
}

/* Decode one label's ring, appending valid uberblocks of the pool. */
static size_t collect_ring(const uint8_t *ring, const struct label_hdr *h, struct uberblock *out,
                           size_t n)
{
    uint32_t ssize = ub_slot_size(h->ashift), nslots = ub_slot_count(h->ashift);
    for (uint32_t s = 0; s < nslots; s++) {
        struct uberblock ub;
        if (ub_decode(ring + (size_t)s * ssize, ssize, &ub) != 0)
            continue;
        if (ub.pool_guid != h->pool_guid || ub.txg % nslots != s)
            continue;
        out[n++] = ub;
    }
    return n;
}

int label_read_ubs(struct vdev *v, const struct label_hdr *h, struct uberblock **out)
{
    uint32_t nslots = ub_slot_count(h->ashift);
    _cleanup_free_ uint8_t *ring = malloc(UB_RING_BYTES);
    _cleanup_free_ struct uberblock *ubs = calloc(4 * (size_t)nslots, sizeof(*ubs));
    size_t n = 0;
    int nread = 0, last_err = 0;

    *out = NULL;
    if (!ring || !ubs)
        return -ENOMEM;
    for (int i = 0; i < 4; i++) {
        int r = vdev_pread(v, ring, UB_RING_BYTES, label_offset(h->dev_size, i) + LABEL_HDR_SIZE);
        if (r < 0) {
            last_err = r;
            continue;
        }
        nread++;
        n = collect_ring(ring, h, ubs, n);
    }
    if (nread == 0)
        return last_err;
    qsort(ubs, n, sizeof(*ubs), ub_cmp_desc);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || ubs[k - 1].txg != ubs[i].txg)
            ubs[k++] = ubs[i];
    if (k == 0)
        return 0;
    *out = steal_ptr(ubs);
    return (int)k;
}

static int wipe_at(struct vdev *v, const uint8_t *zero, uint64_t dev)
{
    int ret = 0;
    for (int i = 0; i < 4; i++) {
        int r = vdev_pwrite(v, zero, LABEL_SIZE, label_offset(dev, i));
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

int label_wipe(struct vdev *v)
{
    _cleanup_free_ uint8_t *zero = calloc(1, LABEL_SIZE);
    struct label_hdr h;
    uint64_t dev = v->size & ~(uint64_t)(LABEL_SIZE - 1);
    if (!zero)
        return -ENOMEM;
    if (dev < 4 * LABEL_SIZE)
        return -ENOSPC;
    /* The pool may have been made when the device was smaller: its end
     * labels are then not at the current end, and must go too. */
    bool other = label_read_hdr(v, &h, NULL) == 0 && h.dev_size != dev;
    int ret = wipe_at(v, zero, dev);
    if (other) {
        int r = wipe_at(v, zero, h.dev_size);
        if (ret == 0)
            ret = r;
    }
    return ret;
}
