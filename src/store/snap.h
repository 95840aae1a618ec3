/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshots, clones and rollback: the engine-internal interface used by
 * send/receive (send.c, recv.c).  The model is in docs/SNAPSHOTS.md and at
 * the top of snap.c. */
#ifndef BERTH_STORE_SNAP_H
#define BERTH_STORE_SNAP_H

#include <stdbool.h>
#include <stdint.h>

#include "berth/store.h"
#include "store/objtree.h"

struct bs_pool;
struct ds;
struct blk_sealed;
struct mos_key;

/* What send needs to know of a snapshot (a consistent copy). */
struct snap_view {
    struct objdesc od;     /* its tree (read-only forever) */
    uint64_t txg;          /* create txg: every block in od has birth <= txg */
    uint64_t guid;
    uint64_t volsize;
    uint32_t volblocksize;
    uint8_t comp, comp_level, cksum;
    uint64_t creation;
    char name[BS_SNAP_NAME_MAX];
};

/* Describe an open handle (bs_vol_open of "VOL@SNAP"): -EINVAL if the handle
 * is a volume, not a snapshot. */
int snap_view_of(bs_vol *v, struct snap_view *out);

/* Is snapshot `anc` (by guid) an ancestor of (or equal to) the snapshot open
 * as v, following prev links across clone origins?  *anc_txg = its txg. */
bool snap_is_ancestor(bs_vol *v, uint64_t anc_guid, uint64_t *anc_txg);

/* The snapshots of vol's lineage strictly after `from_txg` up to and
 * including `to` (names, oldest first; for send -I).  *names malloc'd array
 * of BS_SNAP_NAME_MAX strings. */
int snap_chain_between(struct bs_pool *p, const char *to, uint64_t from_txg,
                       char (**names)[BS_SNAP_NAME_MAX], size_t *n, struct berr *err);

/* Open snapshot `name` for a raw send: like bs_vol_open, but a locked key
 * is fine (a raw send reads only the stored bytes).  -EINVAL if it is not
 * an encrypted snapshot. */
int snap_open_raw(struct bs_pool *p, const char *name, bs_vol **out, struct berr *err);

/* The key record of the encrypted snapshot open as v into *out (a copy: its
 * wrapped slots, guid, fingerprint, format; never the master key). */
int snap_key_of(bs_vol *v, struct mos_key *out);

/* ---- receive support ----
 * A receive writes into a hidden volume named "VOL%recv" (invisible to
 * listings, not exportable), opened with recv_open.  On success
 * recv_finish atomically (one txg) makes it VOL and snapshots it; on
 * failure recv_abort destroys it, or it stays for a resume. */

struct recv_state {            /* persisted in the hidden volume's record */
    uint64_t toguid;           /* guid of the snapshot being received */
    uint64_t fromguid;         /* 0 for a full stream */
    uint64_t offset;           /* stream data offset acknowledged (resume point) */
    char snapname[64];         /* SNAP part of the snapshot being received */
};

/* Full stream: create VOL%recv with these properties.  EEXIST if VOL exists
 * (full streams never overwrite), EBUSY if a receive into VOL is pending. */
int recv_begin_full(struct bs_pool *p, const char *vol, uint64_t volsize, uint32_t volblocksize,
                    const struct recv_state *rs, struct berr *err);
/* The same for a raw stream: VOL%recv is encrypted with a new key record
 * made of `key` (the sender's guid, fingerprint, format and wrapped slots;
 * keylocation prompt), locked. */
int recv_begin_full_raw(struct bs_pool *p, const char *vol, uint64_t volsize,
                        uint32_t volblocksize, const struct recv_state *rs,
                        const struct mos_key *key, struct berr *err);
/* May a raw stream whose key has guid `key_guid` and this fingerprint be
 * applied to VOL (or, resumed, to VOL%recv when `hidden`)?  EINVAL if the
 * target is not encrypted, EXDEV if its key is another. */
int recv_check_key(struct bs_pool *p, const char *vol, bool hidden, uint64_t key_guid,
                   const uint8_t fingerprint[16], struct berr *err);
/* Incremental: VOL%recv becomes a clone of VOL's latest snapshot, which
 * must have guid rs->fromguid (EXDEV otherwise); VOL must be unchanged since
 * that snapshot unless force (its changes are then discarded at finish). */
int recv_begin_incr(struct bs_pool *p, const char *vol, uint64_t volsize,
                    const struct recv_state *rs, bool force, struct berr *err);
/* Open the hidden volume for writing (bs_vol_close when done).  A plain
 * receive needs its key loaded if it is encrypted (EACCES); a raw receive
 * (`raw`) needs it encrypted (EINVAL) and loaded or not. */
int recv_open(struct bs_pool *p, const char *vol, bool raw, bs_vol **out, struct berr *err);
/* Store block sb->blkid of the hidden volume open as v as the sealed block
 * `ct` (sb->psize bytes), as it is: the next txg writes it in a
 * blk_write_batch (blk_sealed_prepare; vol.c).  0 or -errno. */
int vol_write_sealed(bs_vol *v, const struct blk_sealed *sb, const uint8_t *ct);
/* Read / update the persisted receive state (update waits for a txg). */
int recv_get_state(struct bs_pool *p, const char *vol, struct recv_state *out);
int recv_set_offset(struct bs_pool *p, const char *vol, uint64_t offset, struct berr *err);
/* What a raw section did to the key slots of the receiving volume. */
struct recv_slots {
    enum bs_recv_keyslots outcome;
    char shared_with[BS_SNAP_NAME_MAX]; /* KEPT: a dataset of another lineage */
};
/* Make VOL%recv the volume VOL (discarding VOL's changes since the base,
 * for an incremental) and snapshot it as VOL@rs.snapname with guid
 * rs.toguid and creation time `creation`, in one txg.
 *
 * A raw section passes its CRYPT record's key as `skey` (NULL: plain).
 * The rule for its slot set (docs/STREAM.md section 11.4): the key guid and
 * fingerprint must be VOL%recv's (EXDEV); a slot set equal to the record's
 * changes nothing (SAME); when every dataset using the key record is of
 * VOL's lineage (VOL, its snapshots, VOL%recv, clones of its snapshots), the
 * record takes the stream's slots and keyformat in the same txg as the
 * switch (UPDATED: the sender's key change/add/remove reaches the copy);
 * when a dataset of another lineage shares the record (the stream came back
 * into the pool of its origin, or a second copy of the same key), the
 * record's slots stay as they are (KEPT, naming that dataset): a stream
 * never rewrites the key management of volumes it is not the source of. */
int recv_finish(struct bs_pool *p, const char *vol, uint64_t creation,
                const struct mos_key *skey, struct recv_slots *slots, struct berr *err);
/* Destroy VOL%recv (ENOENT if none). */
int recv_discard(struct bs_pool *p, const char *vol, struct berr *err);

#endif
