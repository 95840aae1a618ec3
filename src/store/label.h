/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Labels and uberblocks (docs/FORMAT.md sections 1-3).
 *
 * Each leaf carries four 256 KiB labels (two at the front, two at the end):
 * a self-checksummed header describing the pool and the device layout, and a
 * ring of uberblocks.  Writing the uberblock of txg T into slot T % nslots of
 * every label is the commit point of T. */
#ifndef BERTH_STORE_LABEL_H
#define BERTH_STORE_LABEL_H

#include <stddef.h>
#include <stdint.h>

#include "store/bp.h"
#include "store/vdev.h"

#define LABEL_SIZE (256u * 1024)
#define LABEL_HDR_SIZE (16u * 1024)
#define LABEL_MAGIC 0x4c424c4854524542ULL
#define UB_MAGIC 0x0042555448545245ULL
#define UB_SIZE 1024u
#define BERTH_FORMAT_VERSION 1u
#define BITMAP_OFFSET (512u * 1024)
/* Read-only-compatible feature: metadata blocks may carry a ditto copy in
 * DVA 1 (FORMAT.md 5, 9).  A version without it reads such a pool (DVA 0
 * is a complete copy) but must not write it: it would free and account
 * DVA 0 only, leaking every ditto copy.  Set in the labels before the
 * first ditto copy is written (create, or the first writable import). */
#define LABEL_FEAT_RO_DITTO 1ULL
/* Read-only-compatible features this version understands: a pool with
 * other ro_compat bits set is imported read-only. */
#define FEATURES_RO_COMPAT_KNOWN LABEL_FEAT_RO_DITTO
/* Incompatible feature: the pool's top-level vdev is a mirror (label
 * top_type); versions without it must not import one leaf of it alone. */
#define LABEL_FEAT_VDEV_TREE 2ULL
/* Incompatible feature: the top-level vdev is a raidz (top_type 11, nparity
 * 1..3); its data area is interleaved over the leaves (FORMAT.md 2). */
#define LABEL_FEAT_RAIDZ 4ULL
/* Incompatible feature: the pool has several top-level vdevs (FORMAT.md 2,
 * 3): this label's top_id may be non-zero and the uberblocks list the tops;
 * a version without it must not import one top alone. */
#define LABEL_FEAT_MULTI_TOP 16ULL
/* Top-level vdevs per pool (label top_id < this; uberblock top list). */
#define LABEL_MAX_TOPS 16

enum pool_state { POOL_STATE_ACTIVE = 0, POOL_STATE_EXPORTED = 1, POOL_STATE_DESTROYED = 2 };
enum vdev_type { VDEV_TYPE_FILE = 1, VDEV_TYPE_DISK = 2, VDEV_TYPE_MIRROR = 10, VDEV_TYPE_RAIDZ = 11 };

struct label_hdr {
    uint32_t version;
    uint64_t features_incompat, features_ro_compat, features_compat;
    uint64_t pool_guid, vdev_guid, top_guid;
    char pool_name[64];
    uint8_t ashift;
    uint8_t state;      /* enum pool_state */
    uint8_t vdev_type;  /* enum vdev_type */
    uint8_t nparity;
    uint32_t top_id;
    uint64_t dev_size;  /* rounded down to 256 KiB */
    uint64_t data_start, data_end;
    uint64_t bitmap_offset;
    uint64_t bitmap_chunks;
    uint32_t bitmap_slot_size;
    uint32_t bits_per_chunk;
    uint64_t create_txg;
    uint64_t nchildren, child_index;
    uint64_t child_guids[32];
    uint8_t top_type;   /* 0: the leaf is the whole top-level vdev; VDEV_TYPE_MIRROR,
                           VDEV_TYPE_RAIDZ */
    uint32_t stale_mask; /* bit i: child i missed committed txgs and is not
                            repaired yet (a scrub or resilver clears it) */
    /* Header length >= 1024 (FORMAT.md 2): */
    uint64_t label_gen;  /* bumped by every label write of the pool: the
                            highest among a pool's labels is the newest word
                            about DTLs and stale members */
    uint64_t config_txg; /* the txg from which this vdev tree (children,
                            top type) is the pool's: set by replace, attach,
                            detach; in force once an uberblock of a txg >= it
                            exists (pool_vdev_import) */
    struct label_dtl {
        uint64_t lo, hi; /* child i missed the txgs lo..hi (0, 0: nothing) */
    } dtl[32];
    /* where the resilver of the DTLs above has got to (rsv_valid 1): what
     * came before (dataset rsv_id, part rsv_part, block rsv_blk) is copied
     * and durable on the resilvering members */
    uint64_t rsv_id, rsv_blk;
    uint32_t rsv_part, rsv_valid;
    /* Header length >= 1040: a replace of a healthy mirror member waiting
     * for the resilver of the new one (guids; 0, 0: none) */
    uint64_t replace_old, replace_new;
    /* Header length >= 1048: the guid sum of the tree before config_txg
     * (uberblocks of txgs before it carry that sum) */
    uint64_t prev_guid_sum;
    bool rewrite;        /* in memory only: import found labels of other
                            generations; write them all anew */
};

struct uberblock {
    uint32_t version;
    uint64_t txg;
    uint64_t pool_guid;
    uint64_t guid_sum;
    uint64_t timestamp;
    uint64_t features_incompat;
    struct blkptr mos_root;
    uint32_t mos_levels;
    uint32_t mos_dblksz;
    uint64_t mos_size;
    /* Digest of the allocation map as of this txg (FORMAT.md 3, 4):
     * XXH3-128 over the txg of each chunk's current version; map_chunks = 0
     * means none was recorded (written by an older version). */
    uint8_t map_digest[16];
    uint32_t map_chunks;
    /* The pool's top-level vdevs as of this txg (FORMAT.md 3): ntops 0 for a
     * pool with one top (whose guid the labels hold), else 2..LABEL_MAX_TOPS
     * with LABEL_FEAT_MULTI_TOP in features_incompat; top_guids[i] is top
     * i's guid (i = the top_id of its labels). */
    uint32_t ntops;
    uint64_t top_guids[LABEL_MAX_TOPS];
};

/* Compute the layout fields (dev_size, data_start, data_end, bitmap_*) of
 * `h` for a device of `size` bytes, h->ashift and, for a raidz (h->top_type,
 * h->nchildren), a bitmap covering the data areas of all children.  -ENOSPC
 * if the device is too small for a pool (minimum 64 MiB). */
int label_layout(struct label_hdr *h, uint64_t size);
/* Bytes of the top-level vdev's data area: a leaf's (data_end - data_start),
 * times nchildren for a raidz. */
uint64_t label_data_size(const struct label_hdr *h);

void label_hdr_encode(const struct label_hdr *h, uint8_t out[LABEL_HDR_SIZE]);
/* -EILSEQ on bad magic/checksum/version or inconsistent layout fields;
 * -ENOTSUP if it needs an unknown incompat feature.  Also -EILSEQ: pool or
 * vdev guid 0, empty or unterminated name (or bytes after its NUL), a vdev
 * type other than file/disk, nchildren not 1..32, child_index >= nchildren,
 * child guids past nchildren; a top type other than 0 (then nchildren 1, no
 * LABEL_FEAT_VDEV_TREE), mirror (nchildren >= 2 and the feature) or raidz
 * (nparity 1..3, nchildren >= nparity + 1, both features), nparity != 0
 * for a non-raidz, a zero or repeated child guid, or
 * child_guids[child_index] != vdev_guid.  Layout fields must equal what
 * label_layout computes for dev_size, ashift and the tree. */
int label_hdr_decode(const uint8_t *in, size_t len, struct label_hdr *h);

void ub_encode(const struct uberblock *ub, uint8_t out[UB_SIZE]);
int ub_decode(const uint8_t *in, size_t len, struct uberblock *ub);

/* The allocation map digest of an uberblock (FORMAT.md 3): XXH3-128 over
 * txgs[0..n) as little-endian u64s, stored low64 then high64, little-endian. */
void ub_map_digest(const uint64_t *txgs, uint64_t n, uint8_t out[16]);

/* Slot size and count of the uberblock ring for an ashift. */
uint32_t ub_slot_size(int ashift);
uint32_t ub_slot_count(int ashift);

/* Write the header into all four labels (rings untouched) in two phases:
 * copies 0 and 2, a flush, then 1 and 3 (the caller flushes after): a power
 * cut leaves two whole copies, old or new.  Stops at the first failure. */
int label_write_hdr(struct vdev *v, const struct label_hdr *h);
/* Read the first valid header of the four; -ENOENT if none is a berth label
 * (or only a first label write cut in its first phase: copies 0/2 bad, 1 and
 * 3 without a label), -EILSEQ if something looks like one but is damaged. */
int label_read_hdr(struct vdev *v, struct label_hdr *h, struct berr *err);
/* For a device whose header copies are all invalid (-EILSEQ above): the
 * pool and vdev guids its damaged copies carry (hdr_fields), if every
 * copy with the magic agrees.  UNVERIFIED bytes: only to name the device
 * (which missing member it was), never to use it. */
bool label_guess_ids(struct vdev *v, uint64_t *pool_guid, uint64_t *vdev_guid);
/* Write ub into its ring slot in all four labels (not flushed). */
int label_write_ub(struct vdev *v, const struct label_hdr *h, const struct uberblock *ub);
/* Collect the valid uberblocks for h->pool_guid from all rings, newest txg
 * first, deduplicated by txg.  *out is malloc'd; returns the count or -errno. */
int label_read_ubs(struct vdev *v, const struct label_hdr *h, struct uberblock **out);
/* Zero all four labels (pool destroy / force create). */
int label_wipe(struct vdev *v);

#endif
