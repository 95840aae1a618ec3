/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Objects: radix trees of block pointers over fixed-size data blocks
 * (docs/FORMAT.md section 6).  Volumes and the MOS are objects.
 *
 * Lookups are lock-free walks from a copied root.  objtree_sync applies one
 * txg's sorted leaf updates bottom-up, copy-on-write: every touched indirect
 * is written anew and the old one freed in the syncing txg; an indirect
 * whose children are all holes becomes a hole.  The descriptor's accounting
 * (allocated, logical, physical bytes) is kept exact by deltas. */
#ifndef BERTH_STORE_OBJTREE_H
#define BERTH_STORE_OBJTREE_H

#include <stddef.h>
#include <stdint.h>

#include "store/blkio.h"

#define OBJDESC_SIZE 192
#define IND_SHIFT 15
#define IND_SIZE (1u << IND_SHIFT)
#define IND_NBP (IND_SIZE / BP_SIZE) /* 256 */
#define OBJ_MAX_LEVELS 8 /* root level <= 7: 2^56 blocks */

struct objdesc {
    struct blkptr root;
    uint8_t levels;  /* 1 = root is data block 0 */
    uint8_t dshift;  /* log2 data block size */
    uint8_t ishift;  /* IND_SHIFT */
    uint64_t nblocks;   /* max block id + 1 covered */
    uint64_t allocated; /* asize of every block of the tree */
    uint64_t logical;   /* lsize of non-hole data blocks */
    uint64_t physical;  /* asize of data blocks */
};

/* An empty object of `nblocks` blocks of 1<<dshift bytes. */
void objdesc_init(struct objdesc *od, int dshift, uint64_t nblocks);
void objdesc_encode(const struct objdesc *od, uint8_t out[OBJDESC_SIZE]);
/* -EILSEQ if the descriptor is inconsistent. */
int objdesc_decode(const uint8_t in[OBJDESC_SIZE], struct objdesc *od);
/* Levels needed to address nblocks data blocks. */
int objtree_levels_for(uint64_t nblocks);

/* The keyless digest of an authenticated indirect at `level` from its
 * IND_SIZE encoded bytes (docs/FORMAT.md section 10): 16 zero bytes if
 * every child is a hole; the first child's MAC field if it is the only
 * child (so the digest does not depend on the tree's height); else the
 * first 16 bytes of SHA-256(u8 1, u8 level, 6 zero bytes, the 256 children's
 * MAC fields in order, a hole contributing 16 zero bytes).  It depends only
 * on what the children's MACs and digests cover, never on where blocks
 * live or when they were born, so a raw receiver that rebuilds a tree from
 * the same data blocks gets the same digests without the key.  -EILSEQ if
 * a non-hole child is not authenticated (an indirect child without
 * BP_FLAG_AUTH, a data child without BP_FLAG_ENCRYPTED) or has a wrong
 * level. */
int objtree_ind_digest(int level, const uint8_t *ind, uint8_t out[BP_MAC_LEN]);
/* The root digest of an authenticated tree: its root pointer's MAC field
 * (16 zeros for a hole).  -EILSEQ if the root is not authenticated. */
int objtree_root_digest(const struct objdesc *od, uint8_t out[BP_MAC_LEN]);

/* The indirect `c`, read through `bp`, against bp's digest (nothing to do
 * unless bp has BP_FLAG_AUTH; the digest is computed once per cached
 * block).  0, or -EIO and a counted checksum error on a mismatch.  For
 * readers of indirects outside this file (treediff.c). */
struct cbuf;
int objtree_auth_check(const struct blkio *io, const struct blkptr *bp, struct cbuf *c);

/* Find the pointer of data block blkid (a hole beyond the tree).  When the
 * answer is a hole found at an indirect level, *hole_blocks (if non-NULL)
 * is the number of blocks from blkid to the end of that hole's span (1 for a
 * data-level hole).  -EIO if a block on the path fails verification (its
 * checksum, or in an authenticated tree its digest).  flags: 0, or
 * BLK_NOWAIT (blkio.h: -EAGAIN rather than wait for a device). */
int objtree_lookup(const struct blkio *io, const struct objdesc *od, uint64_t blkid,
                   unsigned flags, struct blkptr *out, uint64_t *hole_blocks);
/* The pointers of blocks blkid, blkid+1, ... (at most n, n > 0) in out[]:
 * the children of one level-1 indirect block read once (instead of one walk
 * per block), ending at that block's last child, at the object's end, or
 * before a child that does not decode (that child is the error of the next
 * call).  Returns how many (>= 1), or the error objtree_lookup would return
 * for blkid.  A hole above the data level fills out[] with up to n copies
 * of it and *hole_blocks is the number of blocks from blkid to the end of
 * its span (as objtree_lookup's); otherwise *hole_blocks is 1. */
int objtree_lookup_run(const struct blkio *io, const struct objdesc *od, uint64_t blkid, size_t n,
                       struct blkptr *out, uint64_t *hole_blocks);

struct leaf_update {
    uint64_t blkid;
    struct blkptr bp; /* new pointer (data block or hole) */
};

struct objtree_wctx {
    const struct blkio *io;
    uint64_t txg;
    uint8_t cksum;         /* checksum type for indirect blocks */
    uint8_t dtype;         /* bp type of the data blocks (for holes) */
    struct blk_scratch *s;
    /* Dropping a block the tree no longer references: NULL frees it in txg;
     * a snapshot-aware caller decides between freeing it and keeping it on
     * a deadlist (snap.c). */
    void (*kill)(void *kctx, const struct blkptr *bp);
    void *kctx;
    /* objtree_free_all: subtrees whose bp birth is <= keep_birth belong to an
     * older snapshot and are left alone without being read. */
    uint64_t keep_birth;
    /* An encrypted volume's tree: indirects get BP_FLAG_AUTH and the digest
     * of their children (objtree_ind_digest). */
    bool auth;
    /* non-NULL: count the indirects written and their stored bytes (the
     * debug log's metadata figures per txg) */
    struct objtree_stats *stats;
};

struct objtree_stats {
    uint64_t ind_written; /* indirect blocks written */
    uint64_t ind_lbytes;  /* their logical bytes */
    uint64_t ind_abytes;  /* their allocated bytes on the vdev */
};

/* Apply updates u[0..n) (sorted by blkid, unique, all < new_nblocks) and
 * resize the object to new_nblocks (freeing blocks at or beyond it).  The
 * old leaves replaced by the updates are freed in w->txg.  On error the
 * descriptor is unchanged but blocks may have been allocated/freed: the txg
 * must not commit. */
int objtree_sync(const struct objtree_wctx *w, struct objdesc *od, const struct leaf_update *u,
                 size_t n, uint64_t new_nblocks);

/* Free every block of the object in w->txg (volume destroy). */
int objtree_free_all(const struct objtree_wctx *w, struct objdesc *od);

/* Visit every non-hole block pointer of the tree (indirects before their
 * children), reading and verifying every indirect with `flags`.  cb returns
 * non-zero to stop (that value is returned). */
typedef int (*objtree_visit_fn)(const struct blkptr *bp, uint64_t blkid, void *opaque);
int objtree_walk(const struct blkio *io, const struct objdesc *od, unsigned flags,
                 objtree_visit_fn cb, void *opaque);
/* The same, skipping (unread) every subtree whose bp birth is <= min_birth:
 * the blocks a dataset owns, those born after its previous snapshot. */
int objtree_walk_since(const struct blkio *io, const struct objdesc *od, uint64_t min_birth,
                       unsigned flags, objtree_visit_fn cb, void *opaque);

#endif
