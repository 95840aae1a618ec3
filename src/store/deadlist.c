/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Deadlists (docs/FORMAT.md section 11, docs/SNAPSHOTS.md).
 *
 * A dataset's deadlist names the blocks that its previous snapshot
 * references and the dataset itself no longer does: when a volume overwrites
 * a block born before its latest snapshot, the block cannot be freed (the
 * snapshot still reads it) and goes on the volume's deadlist instead.  The
 * deadlist is an object of 16 KiB blocks holding 32-byte entries
 * (offset, birth, asize, vdev), appended to in the txg that drops the blocks
 * and rewritten whole when a snapshot destroy merges two of them.
 *
 * Invariants:
 *  - every entry's birth is <= the dataset's prev_txg (its previous
 *    snapshot's txg) and the block is allocated (the snapshot holds it);
 *  - lin.dl_count entries are on disk; sv->dlp holds the ones this txg
 *    adds (or, with dl_rewrite, the whole new list, the old object being
 *    already freed);
 *  - dl_bytes / dl_uniq count both (maintained by whoever adds entries). */
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/le.h"
#include "store/pool_impl.h"
#include "store/sync_impl.h"

#define DL_ENT_SIZE 32u
#define DL_BLKSZ (1u << DL_DSHIFT)
#define DL_EPB (DL_BLKSZ / DL_ENT_SIZE) /* entries per block: 512 */

static void ent_encode(const struct dl_ent *e, uint8_t *b)
{
    memset(b, 0, DL_ENT_SIZE);
    put_le64(b, e->offset);
    put_le64(b + 8, e->birth);
    put_le32(b + 16, e->asize);
    put_le32(b + 20, e->vdev);
}

static int ent_decode(const struct bs_pool *p, const uint8_t *b, struct dl_ent *e)
{
    e->offset = get_le64(b);
    e->birth = get_le64(b + 8);
    e->asize = get_le32(b + 16);
    e->vdev = get_le32(b + 20);
    /* a hostile or damaged list must not make us free foreign space */
    if (!pool_tops_dva_ok(p, e->vdev, e->offset, e->asize))
        return -EILSEQ;
    return 0;
}

static struct objtree_wctx dl_wctx(struct sync_ctx *c)
{
    struct objtree_wctx w = {
        .io = &c->p->io, .txg = c->txg, .cksum = c->p->cksum, .dtype = BP_TYPE_MOS_DATA,
        .s = &c->p->txg.scratch,
    };
    return w;
}

int dl_free_object(struct sync_ctx *c, struct ds_lineage *lin)
{
    if (!bp_is_hole(&lin->dl.root)) {
        struct objtree_wctx w = dl_wctx(c);
        int r = objtree_free_all(&w, &lin->dl);
        if (r < 0)
            return r;
    }
    objdesc_init(&lin->dl, DL_DSHIFT, 0);
    lin->dl_count = 0;
    lin->dl_bytes = 0;
    lin->dl_uniq = 0;
    return 0;
}

/* Read block `blk` of a deadlist object into buf (DL_BLKSZ bytes). */
static int read_dl_block(struct sync_ctx *c, const struct objdesc *od, uint64_t blk, uint8_t *buf)
{
    struct blkptr bp;
    int r = objtree_lookup(&c->p->io, od, blk, 0, &bp, NULL);
    if (r < 0)
        return r;
    if (bp_is_hole(&bp) || bp.type != BP_TYPE_MOS_DATA || bp.lsize != DL_BLKSZ) {
        blk_count_cksum_error(&c->p->io);
        return -EIO;
    }
    struct cbuf *cb;
    r = blk_read(&c->p->io, &bp, 0, &cb);
    if (r < 0)
        return r;
    memcpy(buf, cb->data, DL_BLKSZ);
    cbuf_unref(cb);
    return 0;
}

int dl_read_all(struct sync_ctx *c, const struct sync_vol *sv, struct dl_ent **out, size_t *n)
{
    uint64_t ondisk = sv->dl_rewrite ? 0 : sv->rec.lin.dl_count;
    size_t total = (size_t)ondisk + sv->ndlp;
    struct dl_ent *v = malloc((total ? total : 1) * sizeof *v);
    _cleanup_free_ uint8_t *buf = malloc(DL_BLKSZ);
    if (!v || !buf) {
        free(v);
        return -ENOMEM;
    }
    size_t k = 0;
    for (uint64_t blk = 0; k < ondisk; blk++) {
        int r = read_dl_block(c, &sv->rec.lin.dl, blk, buf);
        for (unsigned i = 0; r == 0 && i < DL_EPB && k < ondisk; i++, k++)
            if (ent_decode(c->p, buf + i * DL_ENT_SIZE, &v[k]) < 0) {
                blk_count_cksum_error(&c->p->io);
                r = -EIO;
            }
        if (r < 0) {
            free(v);
            return r;
        }
    }
    if (sv->ndlp) /* dlp may be NULL when empty */
        memcpy(v + k, sv->dlp, sv->ndlp * sizeof *v);
    *out = v;
    *n = total;
    return 0;
}

/* Append sv's pending entries to its deadlist object. */
static int dl_flush(struct sync_ctx *c, struct sync_vol *sv)
{
    struct ds_lineage *lin = &sv->rec.lin;
    if (sv->dl_rewrite)
        lin->dl_count = 0; /* the caller freed the old object */
    uint64_t first = lin->dl_count / DL_EPB;
    uint64_t total = lin->dl_count + sv->ndlp;
    uint64_t nblocks = DIV_ROUND_UP(total, DL_EPB);
    size_t nu = (size_t)(nblocks - first);
    _cleanup_free_ struct leaf_update *u = calloc(nu ? nu : 1, sizeof *u);
    _cleanup_free_ uint8_t *buf = malloc(DL_BLKSZ);
    if (!u || !buf)
        return -ENOMEM;
    struct blk_wprops wp = {
        .type = BP_TYPE_MOS_DATA, .level = 0, .comp = BS_COMPRESS_LZ4, .cksum = c->p->cksum,
        .zero_is_hole = false,
    };
    size_t src = 0;
    for (size_t i = 0; i < nu; i++) {
        uint64_t blk = first + i;
        memset(buf, 0, DL_BLKSZ);
        uint64_t start = blk * DL_EPB; /* entry index of the block's first slot */
        if (start < lin->dl_count) {   /* the partial tail block already on disk */
            int r = read_dl_block(c, &lin->dl, blk, buf);
            if (r < 0)
                return r;
        }
        for (uint64_t e = MAX(start, lin->dl_count); e < MIN(start + DL_EPB, total); e++)
            ent_encode(&sv->dlp[src++], buf + (e - start) * DL_ENT_SIZE);
        u[i].blkid = blk;
        int r = blk_write(&c->p->io, buf, NULL, DL_BLKSZ, &wp, c->txg, &c->p->txg.scratch,
                          &u[i].bp);
        if (r < 0)
            return r;
    }
    struct objtree_wctx w = dl_wctx(c);
    int r = objtree_sync(&w, &lin->dl, u, nu, nblocks);
    if (r < 0)
        return r;
    lin->dl_count = total;
    sv->ndlp = 0;
    sv->dl_rewrite = false;
    return 0;
}

int dl_sync_all(struct sync_ctx *c)
{
    for (size_t i = 0; i < c->nsv; i++) {
        struct sync_vol *sv = &c->sv[i];
        if (sv->destroying || (sv->ndlp == 0 && !sv->dl_rewrite))
            continue;
        int r = dl_flush(c, sv);
        if (r < 0)
            return r;
    }
    return 0;
}
