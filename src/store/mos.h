/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The MOS: the pool directory (docs/FORMAT.md section 7), serialised into
 * the bytes of one object with 16 KiB data blocks.  mos_decode treats its
 * input as hostile: every length and field is checked, -EILSEQ otherwise. */
#ifndef BERTH_STORE_MOS_H
#define BERTH_STORE_MOS_H

#include <stddef.h>
#include <stdint.h>

#include "berth/store.h"
#include "store/keyslot.h"
#include "store/objtree.h"

#define MOS_MAGIC 0x00534f4d48545245ULL
#define MOS_VERSION 4u  /* 4: root MACs; 3: encryption (key records, key id); 2: lineage;
                           1..3 still read (3 with encrypted datasets: read-only, pool.c) */
#define MOS_VERSION_PLAIN 2u /* written while no key or encryption default exists */
#define MOS_DSHIFT 14
#define MOS_BLKSZ (1u << MOS_DSHIFT)
#define MOS_HDR_SIZE 64
#define MOS_MAX_SIZE (64u << 20) /* refuse to read a directory larger than this */
#define MOS_REC_DATASET 1u
#define MOS_DS_FIXED 242    /* v1 dataset payload bytes before the name */
#define MOS_DS_FIXED2 520   /* v2 dataset payload bytes before the strings */
#define MOS_DS_FIXED3 528   /* v3: + key id */
#define MOS_DS_FIXED4 552   /* v4: + root MAC, reserved */
#define DS_ROOT_MAC_LEN 16
#define MOS_REC_KEY 4u      /* key slots of one volume key (moskey.c) */
#define MOS_REC_CRYPTDEF 6u /* the pool's encryption defaults (moskey.c) */
#define MOS_KEY_FIXED 1064  /* key record payload bytes before the keylocation */

#define DS_FLAG_READONLY 0x01u
#define DS_FLAG_SNAPSHOT 0x02u  /* immutable; name "VOL@SNAP" */
#define DS_FLAG_DEFER 0x04u     /* snapshot destroy requested, waits for its clones */
#define DS_FLAG_RECV 0x08u      /* hidden receive target; name "VOL%recv" */
#define DS_FLAGS_KNOWN 0x0fu

#define DL_DSHIFT 14            /* deadlist object: 16 KiB blocks of 32-byte entries */

/* Lineage and space of a dataset (docs/SNAPSHOTS.md).  Written only by the
 * sync thread. */
struct ds_lineage {
    uint64_t prev_id;     /* the snapshot this dataset continues (0: none) */
    uint64_t prev_txg;    /* its create txg (0: none): blocks born after are ours */
    uint64_t born;        /* bytes of tree blocks born in (prev_txg, create/now] still allocated */
    struct objdesc dl;    /* deadlist: blocks of prev that this dataset dropped */
    uint64_t dl_count, dl_bytes;
    uint64_t dl_uniq;     /* bytes of dl entries born after prev's prev_txg: prev's unique */
};

struct mos_recv {         /* DS_FLAG_RECV datasets only */
    uint64_t toguid, fromguid, offset;
    char snapname[64];
};

struct mos_ds {
    uint64_t id, guid, create_txg, volsize, refreservation;
    uint8_t comp, comp_level, cksum, flags;
    uint32_t volblocksize;
    struct objdesc od;
    uint64_t creation;    /* unix time */
    struct ds_lineage lin;
    struct mos_recv recv;
    uint64_t key_id;      /* v3: the key record encrypting its data (0: plaintext) */
    /* v4, encrypted datasets: the keyed MAC of the tree's root digest, size
     * and key (dsauth.h); all zero for plaintext ones */
    uint8_t root_mac[DS_ROOT_MAC_LEN];
    char name[128];       /* VOL, VOL@SNAP or VOL%recv */
    char holds[256];      /* snapshot hold tags, comma-separated */
};

/* A volume key (record type 4): the master key wrapped in key slots.  Its id
 * is the id of the volume that created it; it lives as long as a dataset
 * (the volume, its snapshots, clones) names it in key_id. */
struct mos_key {
    uint64_t id, guid;      /* guid: the key guid bound into every block's AAD */
    uint8_t suite;          /* 1: aes-256-gcm */
    uint8_t keyformat;      /* enum keyformat expected by keylocation */
    uint8_t fingerprint[CRYPT_FINGERPRINT_LEN];
    struct keyslots slots;
    char location[BS_KEYLOCATION_MAX]; /* "prompt" or "file:///..." */
};

/* The pool's encryption defaults for new volumes (record type 6). */
struct mos_cryptdef {
    uint8_t encryption;     /* 0 off, 1 aes-256-gcm */
    uint8_t keyformat;      /* 0: none set */
    char location[BS_KEYLOCATION_MAX];
};

struct mos_dir {
    uint64_t next_id;
    uint8_t autotrim, comp, comp_level, cksum;
    size_t nds;
    struct mos_ds *ds; /* malloc'd array */
    size_t nkeys;
    struct mos_key *keys; /* malloc'd array */
    struct mos_cryptdef def;
    /* decoded from version 3 with encrypted datasets: their metadata has no
     * root MAC or digests (written before metadata authentication) */
    bool legacy_crypt;
};

/* ---- key records (moskey.c) ---- */
size_t mos_key_len(const struct mos_key *k);    /* payload bytes */
void mos_key_encode(const struct mos_key *k, uint8_t *out);
int mos_key_decode(const uint8_t *in, uint32_t len, struct mos_key *k);
size_t mos_cryptdef_len(const struct mos_cryptdef *d);
void mos_cryptdef_encode(const struct mos_cryptdef *d, uint8_t *out);
int mos_cryptdef_decode(const uint8_t *in, uint32_t len, struct mos_cryptdef *d);
/* A keylocation is "prompt" or "file:///abs/path" (no NUL, < BS_KEYLOCATION_MAX). */
bool mos_keylocation_ok(const char *s);

/* 0 if `name` is well formed for a record with `flags`, else -EILSEQ. */
int mos_name_check(const char *name, uint8_t flags);

/* Serialise into a malloc'd buffer. */
int mos_encode(const struct mos_dir *d, uint8_t **out, size_t *len);
/* Parse untrusted bytes; d->ds is malloc'd (mos_dir_free). */
int mos_decode(const uint8_t *buf, size_t len, struct mos_dir *d);
void mos_dir_free(struct mos_dir *d);

/* Read `size` bytes of the MOS object (malloc'd into *out). */
int mos_read(const struct blkio *io, const struct objdesc *od, uint64_t size, uint8_t **out);
/* Store `nbuf` as the new MOS contents: only 16 KiB blocks that differ from
 * `old` are rewritten; the tree is resized to fit. */
int mos_write(const struct objtree_wctx *w, struct objdesc *od, const uint8_t *old, size_t oldlen,
              const uint8_t *nbuf, size_t newlen);

#endif
