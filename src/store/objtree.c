/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Block trees of objects (see objtree.h and docs/FORMAT.md section 6).
 *
 * Shape: a pointer at level L covers 256^L data blocks; the root sits at
 * level `levels - 1`.  Data block b is found by taking index
 * (b >> 8*(L-1)) & 255 in the indirect at each level L from the top.
 *
 * objtree_sync invariants:
 *  - an indirect is rewritten only if one of its children changed, and then
 *    the old copy is freed in the same txg (COW: nothing is overwritten);
 *  - an indirect whose 256 children are holes is itself a hole;
 *  - growth adds levels on top: the old root becomes child 0 of a new root.
 *    The new upper nodes exist only in memory until written ("virtual"
 *    nodes: level >= old levels, first block 0), so growing never writes a
 *    block that the same txg would free again;
 *  - accounting is kept by deltas in acct_new/acct_free, the only places
 *    that change it.
 * The recursion is depth-first, so one array of 256 children per level
 * suffices (tsync.kids).
 *
 * Authenticated trees (encrypted volumes, docs/FORMAT.md section 10): the
 * writer (objtree_wctx.auth) gives every indirect BP_FLAG_AUTH and its
 * children's digest (objtree_ind_digest) in the MAC field of its pointer.
 * Readers trust a tree whose root carries BP_FLAG_AUTH or BP_FLAG_ENCRYPTED
 * to be authenticated all the way down: every indirect read under an AUTH
 * pointer must hash to that pointer's digest, its indirect children must be
 * AUTH and its data children encrypted (so a forger cannot downgrade a
 * subtree to plain checksums).  The digest is keyless; the root's is bound
 * to the key by the dataset's root MAC (cryptmac.c), checked at key load.
 * A cached indirect keeps its computed digest (cbuf memo), so a lookup
 * through cached blocks costs a 16-byte compare per level. */
#include "store/objtree.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/le.h"
#include "store/codec.h"

#include <openssl/sha.h>

static inline uint64_t span(int level)
{
    return 1ULL << (8 * level);
}

int objtree_levels_for(uint64_t nblocks)
{
    int levels = 1;
    while (levels < OBJ_MAX_LEVELS && span(levels - 1) < nblocks)
        levels++;
    return levels;
}

void objdesc_init(struct objdesc *od, int dshift, uint64_t nblocks)
{
    memset(od, 0, sizeof *od);
    od->levels = (uint8_t)objtree_levels_for(nblocks);
    od->dshift = (uint8_t)dshift;
    od->ishift = IND_SHIFT;
    od->nblocks = nblocks;
}

void objdesc_encode(const struct objdesc *od, uint8_t out[OBJDESC_SIZE])
{
    memset(out, 0, OBJDESC_SIZE);
    bp_encode(&od->root, out);
    out[128] = od->levels;
    out[129] = od->dshift;
    out[130] = od->ishift;
    put_le64(out + 136, od->nblocks);
    put_le64(out + 144, od->allocated);
    put_le64(out + 152, od->logical);
    put_le64(out + 160, od->physical);
}

int objdesc_decode(const uint8_t in[OBJDESC_SIZE], struct objdesc *od)
{
    memset(od, 0, sizeof *od);
    if (bp_decode(in, &od->root) < 0)
        return -EILSEQ;
    od->levels = in[128];
    od->dshift = in[129];
    od->ishift = in[130];
    od->nblocks = get_le64(in + 136);
    od->allocated = get_le64(in + 144);
    od->logical = get_le64(in + 152);
    od->physical = get_le64(in + 160);
    if (od->levels < 1 || od->levels > OBJ_MAX_LEVELS || od->ishift != IND_SHIFT ||
        od->dshift < 9 || od->dshift > 24)
        return -EILSEQ;
    if (od->nblocks > span(od->levels - 1))
        return -EILSEQ;
    if (!bp_is_hole(&od->root) && od->root.level != od->levels - 1)
        return -EILSEQ;
    return 0;
}


/* ---- keyless digests of authenticated indirects ---- */

#define BPO_FLAGS 68  /* offsets inside an encoded block pointer (bp.c) */
#define BPO_LEVEL 67
#define BPO_ASIZE0 12
#define BPO_MAC (96 + BP_MAC_OFF)
#define DIGEST_VERSION 1
#define MEMO_BUSY 0xff /* a cbuf's memo being written (levels + 1 are <= 9) */

static inline bool raw_hole(const uint8_t *e)
{
    return (e[BPO_FLAGS] & BP_FLAG_HOLE) || get_le32(e + BPO_ASIZE0) == 0;
}

int objtree_ind_digest(int level, const uint8_t *ind, uint8_t out[BP_MAC_LEN])
{
    unsigned used = 0, last = 0;
    for (unsigned i = 0; i < IND_NBP; i++) {
        const uint8_t *e = ind + i * BP_SIZE;
        if (raw_hole(e))
            continue;
        /* an authenticated tree stays authenticated down to its data */
        uint8_t need = level > 1 ? BP_FLAG_AUTH : BP_FLAG_ENCRYPTED;
        if (!(e[BPO_FLAGS] & need) || e[BPO_LEVEL] != level - 1)
            return -EILSEQ;
        used++;
        last = i;
    }
    if (used == 0) {
        memset(out, 0, BP_MAC_LEN);
        return 0;
    }
    if (used == 1 && last == 0) {
        /* only the first child: the same content as that child alone, so a
         * taller tree (grown, then shrunk) digests like the shortest one */
        memcpy(out, ind + BPO_MAC, BP_MAC_LEN);
        return 0;
    }
    uint8_t msg[8 + IND_NBP * BP_MAC_LEN], full[32];
    memset(msg, 0, 8);
    msg[0] = DIGEST_VERSION;
    msg[1] = (uint8_t)level;
    for (unsigned i = 0; i < IND_NBP; i++) {
        const uint8_t *e = ind + i * BP_SIZE;
        uint8_t *f = msg + 8 + i * BP_MAC_LEN;
        if (raw_hole(e))
            memset(f, 0, BP_MAC_LEN);
        else
            memcpy(f, e + BPO_MAC, BP_MAC_LEN);
    }
    SHA256(msg, sizeof msg, full);
    memcpy(out, full, BP_MAC_LEN);
    return 0;
}

int objtree_root_digest(const struct objdesc *od, uint8_t out[BP_MAC_LEN])
{
    const struct blkptr *bp = &od->root;
    if (bp_is_hole(bp)) {
        memset(out, 0, BP_MAC_LEN);
        return 0;
    }
    if (!(bp->flags & (bp->level ? BP_FLAG_AUTH : BP_FLAG_ENCRYPTED)))
        return -EILSEQ;
    memcpy(out, bp->checksum + BP_MAC_OFF, BP_MAC_LEN);
    return 0;
}

int objtree_auth_check(const struct blkio *io, const struct blkptr *bp, struct cbuf *c)
{
    if (!(bp->flags & BP_FLAG_AUTH))
        return 0;
    uint8_t d[BP_MAC_LEN];
    /* memo_ok holds level + 1 once memo is written (the level is part of
     * what was checked); the first thread to claim it (MEMO_BUSY) writes */
    if (atomic_load_explicit(&c->memo_ok, memory_order_acquire) == bp->level + 1) {
        memcpy(d, c->memo, sizeof d);
    } else {
        if (objtree_ind_digest(bp->level, c->data, d) < 0)
            goto bad;
        uint8_t free_memo = 0;
        if (atomic_compare_exchange_strong(&c->memo_ok, &free_memo, MEMO_BUSY)) {
            memcpy(c->memo, d, sizeof d);
            atomic_store_explicit(&c->memo_ok, (uint8_t)(bp->level + 1), memory_order_release);
        }
    }
    if (memcmp(d, bp->checksum + BP_MAC_OFF, BP_MAC_LEN) == 0)
        return 0;
bad:
    blk_count_bp_error(io, bp);
    return -EIO;
}

/* Read the indirect `bp` at `level` into 256 decoded children. */
static int load_kids(const struct blkio *io, const struct blkptr *bp, int level, unsigned flags,
                     struct blkptr *kids)
{
    if (bp_is_hole(bp)) {
        memset(kids, 0, IND_NBP * sizeof *kids);
        return 0;
    }
    if (bp->level != level || bp->type != BP_TYPE_INDIRECT || bp->lsize != IND_SIZE) {
        blk_count_bp_error(io, bp);
        return -EIO;
    }
    struct cbuf *c;
    int r = blk_read(io, bp, flags, &c);
    if (r == 0 && (r = objtree_auth_check(io, bp, c)) < 0)
        cbuf_unref(c);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < IND_NBP; i++) {
        if (bp_decode(c->data + i * BP_SIZE, &kids[i]) < 0 ||
            (!bp_is_hole(&kids[i]) && kids[i].level != level - 1)) {
            cbuf_unref(c);
            blk_count_bp_error(io, bp); /* the indirect block holding garbage */
            return -EIO;
        }
    }
    cbuf_unref(c);
    return 0;
}

/* ---- the lookup walk ----
 *
 * Every lookup walks from the root, and the upper indirects are the same
 * few blocks for every lookup of a volume: each level was a block cache
 * lookup (hash chain, shard lock, an atomic reference on a buffer all
 * threads share), ~20% of the CPU of a 4K random read.  Each thread keeps
 * the last indirect it read per level (a reference), keyed exactly like
 * the block cache (the pool's cache id, DVA, birth: one key names one
 * immutable block, blkio.c cache_lookup), so a walk through the same upper
 * blocks costs a compare per level.  Nothing but a verified block enters
 * the memo; a hit is checked against the pointer's digest like a cache hit
 * (objtree_auth_check, memoized in the buffer). */
struct ind_memo {
    uint32_t cache_id, vdev;
    uint64_t off, birth;
    struct cbuf *c; /* a reference; NULL: empty */
};

static pthread_key_t memo_key;
static pthread_once_t memo_once = PTHREAD_ONCE_INIT;
static bool memo_ok;

static void memo_free(void *arg)
{
    struct ind_memo *m = arg;
    for (int i = 0; i < OBJ_MAX_LEVELS; i++)
        cbuf_unref(m[i].c);
    free(m);
}

static void memo_init(void)
{
    memo_ok = pthread_key_create(&memo_key, memo_free) == 0;
}

/* This thread's memo (OBJ_MAX_LEVELS entries), or NULL (no memory). */
static struct ind_memo *memo_get(void)
{
    pthread_once(&memo_once, memo_init);
    if (!memo_ok)
        return NULL;
    struct ind_memo *m = pthread_getspecific(memo_key);
    if (!m && (m = calloc(OBJ_MAX_LEVELS, sizeof *m)) != NULL && pthread_setspecific(memo_key, m)) {
        free(m);
        m = NULL;
    }
    return m;
}

/* The indirect bp at level L (checked by the caller), verified: a new
 * reference in *out.  flags: 0 or BLK_NOWAIT. */
static int read_ind(const struct blkio *io, const struct blkptr *bp, int L, unsigned flags,
                    struct cbuf **out)
{
    struct ind_memo *m = memo_get(), *e = m ? &m[L] : NULL;
    if (e && e->c && e->cache_id == io->cache_id && e->vdev == bp->dva[0].vdev &&
        e->off == bp->dva[0].offset && e->birth == bp->birth) {
        int r = objtree_auth_check(io, bp, e->c);
        *out = r < 0 ? NULL : cbuf_ref(e->c);
        return r;
    }
    struct cbuf *c;
    int r = blk_read(io, bp, flags, &c);
    if (r == 0 && (r = objtree_auth_check(io, bp, c)) < 0)
        cbuf_unref(c);
    if (r < 0)
        return r;
    if (e) {
        cbuf_unref(e->c);
        *e = (struct ind_memo){.cache_id = io->cache_id,
                               .vdev = bp->dva[0].vdev,
                               .off = bp->dva[0].offset,
                               .birth = bp->birth,
                               .c = cbuf_ref(c)};
    }
    *out = c;
    return 0;
}

/* The walk of objtree_lookup and objtree_lookup_run: from the root down to
 * the pointer of blkid at level `stop` (1 or 0).  At stop 1 the level-1
 * indirect holding blkid's pointer is returned in *ind (a reference: the
 * caller unrefs it) with *bp its pointer; a hole or the root reached first
 * comes back in *bp with *ind NULL and *lvl its level. */
static int walk_to(const struct blkio *io, const struct objdesc *od, uint64_t blkid, int stop,
                   unsigned flags, struct blkptr *bp, struct cbuf **ind, int *lvl)
{
    *bp = od->root;
    *ind = NULL;
    for (int L = od->levels - 1; L > 0; L--) {
        *lvl = L;
        if (bp_is_hole(bp))
            return 0;
        if (bp->level != L || bp->type != BP_TYPE_INDIRECT || bp->lsize != IND_SIZE) {
            blk_count_bp_error(io, bp);
            return -EIO;
        }
        if (L == stop)
            break;
        struct cbuf *c;
        int r = read_ind(io, bp, L, flags, &c);
        if (r < 0)
            return r;
        unsigned idx = (unsigned)(blkid >> (8 * (L - 1))) & 0xff;
        struct blkptr parent = *bp;
        r = bp_decode(c->data + idx * BP_SIZE, bp);
        cbuf_unref(c);
        if (r < 0) {
            blk_count_bp_error(io, &parent);
            return -EIO;
        }
    }
    if (stop == 1 && od->levels > 1) {
        int r = read_ind(io, bp, 1, flags, ind);
        if (r < 0)
            return r;
    }
    *lvl = 0;
    return 0;
}

/* A data-level pointer as objtree_lookup returns it: a hole, or level 0 of
 * the tree's block size (anything else is corrupt). */
static bool leaf_shape_ok(const struct objdesc *od, const struct blkptr *bp)
{
    return bp_is_hole(bp) || (bp->level == 0 && bp->lsize == (1u << od->dshift));
}

static int leaf_ok(const struct blkio *io, const struct objdesc *od, const struct blkptr *bp)
{
    if (!leaf_shape_ok(od, bp)) {
        blk_count_cksum_error(io);
        return -EIO;
    }
    return 0;
}

int objtree_lookup(const struct blkio *io, const struct objdesc *od, uint64_t blkid,
                   unsigned flags, struct blkptr *out, uint64_t *hole_blocks)
{
    if (blkid >= span(od->levels - 1) || blkid >= od->nblocks) {
        memset(out, 0, sizeof *out);
        if (hole_blocks)
            *hole_blocks = UINT64_MAX;
        return 0;
    }
    struct cbuf *ind;
    int L;
    int r = walk_to(io, od, blkid, 0, flags, out, &ind, &L);
    if (r < 0)
        return r;
    if (L > 0) { /* a hole above the data level */
        if (hole_blocks)
            *hole_blocks = span(L) - (blkid & (span(L) - 1));
        return 0;
    }
    if ((r = leaf_ok(io, od, out)) < 0)
        return r;
    if (hole_blocks)
        *hole_blocks = 1;
    return 0;
}

int objtree_lookup_run(const struct blkio *io, const struct objdesc *od, uint64_t blkid, size_t n,
                       struct blkptr *out, uint64_t *hole_blocks)
{
    if (n == 0)
        return -EINVAL;
    n = MIN(n, (size_t)1 << 30); /* the count is returned as an int */
    if (blkid >= span(od->levels - 1) || blkid >= od->nblocks) {
        memset(out, 0, n * sizeof *out);
        *hole_blocks = UINT64_MAX;
        return (int)n;
    }
    struct cbuf *ind;
    int L;
    int r = walk_to(io, od, blkid, 1, 0, out, &ind, &L);
    if (r < 0)
        return r;
    if (!ind) {
        /* a hole at level L (> 0) spans the rest of its range; or a tree
         * of one level, whose root is the only data pointer */
        if (L == 0) {
            *hole_blocks = 1;
            return (r = leaf_ok(io, od, out)) < 0 ? r : 1;
        }
        uint64_t h = span(L) - (blkid & (span(L) - 1));
        *hole_blocks = h;
        size_t k = (size_t)MIN((uint64_t)n, h);
        for (size_t i = 1; i < k; i++)
            out[i] = out[0];
        return (int)k;
    }
    /* the children of one level-1 indirect, not past the object's end */
    struct blkptr parent = *out;
    unsigned idx = (unsigned)(blkid & 0xff);
    size_t k = MIN(n, (size_t)(IND_NBP - idx));
    k = (size_t)MIN((uint64_t)k, od->nblocks - blkid);
    size_t i = 0;
    for (; i < k; i++) {
        /* a bad entry ends the run; as the first one it is the error */
        if (bp_decode(ind->data + (idx + i) * BP_SIZE, &out[i]) < 0) {
            if (i == 0) {
                blk_count_bp_error(io, &parent);
                r = -EIO;
            }
            break;
        }
        if (!leaf_shape_ok(od, &out[i])) {
            if (i == 0)
                r = leaf_ok(io, od, &out[i]);
            break;
        }
    }
    cbuf_unref(ind);
    *hole_blocks = 1;
    return r < 0 ? r : (int)i;
}

struct tsync {
    const struct objtree_wctx *w;
    struct objdesc *od;
    const struct leaf_update *u;
    uint64_t nblocks;
    int old_levels;      /* levels before growth; nodes at or above are virtual */
    bool grown;
    struct blkptr old_root;
    struct blkptr (*kids)[IND_NBP];
};

static void acct_free(struct tsync *t, const struct blkptr *bp)
{
    if (bp_is_hole(bp))
        return;
    t->od->allocated -= bp_asize(bp);
    if (bp->level == 0) {
        t->od->logical -= bp->lsize;
        t->od->physical -= bp_asize(bp);
    }
    if (t->w->kill)
        t->w->kill(t->w->kctx, bp);
    else
        blk_free(t->w->io, bp, t->w->txg);
}

static void acct_new(struct tsync *t, const struct blkptr *bp)
{
    if (bp_is_hole(bp))
        return;
    t->od->allocated += bp_asize(bp);
    if (bp->level == 0) {
        t->od->logical += bp->lsize;
        t->od->physical += bp_asize(bp);
    }
}

/* Free the subtree under bp (at `level`) and bp itself. */
static int free_tree(struct tsync *t, const struct blkptr *bp, int level)
{
    if (bp_is_hole(bp) || bp->birth <= t->w->keep_birth)
        return 0;
    if (level > 0) {
        struct blkptr *kids = t->kids[level];
        int r = load_kids(t->w->io, bp, level, 0, kids);
        if (r < 0)
            return r;
        for (unsigned i = 0; i < IND_NBP; i++) {
            r = free_tree(t, &kids[i], level - 1);
            if (r < 0)
                return r;
        }
    }
    acct_free(t, bp);
    return 0;
}

/* Write the encoded indirect cb (taken) at `level` with `fill`. */
static int write_indirect_buf(struct tsync *t, struct cbuf *cb, int level, uint64_t fill,
                              struct blkptr *nbp)
{
    uint8_t digest[BP_MAC_LEN];
    if (t->w->auth) {
        /* the same function the readers check with, over the same bytes */
        if (objtree_ind_digest(level, cb->data, digest) < 0) {
            cbuf_unref(cb);
            return -EILSEQ; /* a child is not authenticated: never write it so */
        }
        memcpy(cb->memo, digest, sizeof digest);
        atomic_store_explicit(&cb->memo_ok, (uint8_t)(level + 1), memory_order_release);
    }
    struct blk_wprops wp = {
        .type = BP_TYPE_INDIRECT, .level = (uint8_t)level, .comp = BS_COMPRESS_LZ4,
        .cksum = t->w->cksum, .zero_is_hole = false,
    };
    int r = blk_write(t->w->io, NULL, cb, IND_SIZE, &wp, t->w->txg, t->w->s, nbp);
    cbuf_unref(cb);
    if (r < 0)
        return r;
    nbp->fill = fill;
    if (t->w->stats) {
        t->w->stats->ind_written++;
        t->w->stats->ind_lbytes += IND_SIZE;
        t->w->stats->ind_abytes += bp_asize(nbp);
    }
    if (t->w->auth) {
        memcpy(nbp->checksum + BP_MAC_OFF, digest, BP_MAC_LEN);
        nbp->flags |= BP_FLAG_AUTH;
    }
    return 0;
}

static int write_indirect(struct tsync *t, const struct blkptr *kids, int level,
                          struct blkptr *nbp)
{
    uint64_t fill = 0;
    bool any = false;
    for (unsigned i = 0; i < IND_NBP; i++) {
        if (!bp_is_hole(&kids[i])) {
            any = true;
            fill += kids[i].fill;
        }
    }
    if (!any) {
        bp_make_hole(nbp, t->w->txg, (uint8_t)level, BP_TYPE_INDIRECT);
        return 0;
    }
    struct cbuf *cb = cbuf_new(IND_SIZE);
    if (!cb)
        return -ENOMEM;
    for (unsigned i = 0; i < IND_NBP; i++)
        bp_encode(&kids[i], cb->data + i * BP_SIZE);
    return write_indirect_buf(t, cb, level, fill, nbp);
}

/* The last level above the data, patched: the new indirect is a copy of the
 * old one's bytes with only the pointers of u[i..j) re-encoded.  Random
 * writes dirty most of these blocks in every txg with a few updates each
 * (a 4 GiB volume: 1024 of them for ~20k leaves), and decoding and encoding
 * all 256 children of each was ~4 % of berthd's CPU.  The untouched entries
 * keep the bytes the last sync encoded (and the read verified); each
 * replaced one is decoded and checked as load_kids would.  Level 1 only:
 * a data child's fill is 1 (bp.c validates it), so the fill is the count of
 * entries that are not holes. */
static int patch_level1(struct tsync *t, struct blkptr *bp, uint64_t base, size_t i, size_t j,
                        bool *changed)
{
    const struct objtree_wctx *w = t->w;
    /* the shape load_kids checks: a valid checksum on a pointer of another
     * size would have the copy below read past the block */
    if (bp->level != 1 || bp->type != BP_TYPE_INDIRECT || bp->lsize != IND_SIZE) {
        blk_count_bp_error(w->io, bp);
        return -EIO;
    }
    struct cbuf *old;
    int r = blk_read(w->io, bp, 0, &old);
    if (r == 0 && (r = objtree_auth_check(w->io, bp, old)) < 0)
        cbuf_unref(old);
    if (r < 0)
        return r;
    struct cbuf *cb = cbuf_new(IND_SIZE);
    if (!cb) {
        cbuf_unref(old);
        return -ENOMEM;
    }
    memcpy(cb->data, old->data, IND_SIZE);
    cbuf_unref(old);
    bool kchanged = false;
    for (size_t k = i; k < j; k++) {
        uint64_t idx = t->u[k].blkid - base;
        if (idx >= IND_NBP) { /* the caller passes this indirect's updates only */
            cbuf_unref(cb);
            return -EINVAL;
        }
        uint8_t *e = cb->data + idx * BP_SIZE;
        struct blkptr okid;
        if (bp_decode(e, &okid) < 0 || (!bp_is_hole(&okid) && okid.level != 0)) {
            cbuf_unref(cb);
            blk_count_bp_error(w->io, bp); /* the indirect holding garbage */
            return -EIO;
        }
        const struct blkptr *nkid = &t->u[k].bp;
        if (bp_is_hole(&okid) && bp_is_hole(nkid))
            continue;
        acct_free(t, &okid);
        acct_new(t, nkid);
        bp_encode(nkid, e);
        kchanged = true;
    }
    if (!kchanged) {
        cbuf_unref(cb);
        return 0;
    }
    struct blkptr nbp;
    uint64_t fill = 0;
    for (unsigned k = 0; k < IND_NBP; k++)
        fill += !raw_hole(cb->data + k * BP_SIZE);
    if (fill == 0) {
        cbuf_unref(cb);
        bp_make_hole(&nbp, w->txg, 1, BP_TYPE_INDIRECT);
    } else if ((r = write_indirect_buf(t, cb, 1, fill, &nbp)) < 0) {
        return r;
    }
    acct_free(t, bp);
    acct_new(t, &nbp);
    *bp = nbp;
    *changed = true;
    return 0;
}

/* Rewrite the subtree of *bp (level L, first block `base`) with updates
 * u[i..j) and the truncation at t->nblocks; *changed tells the parent. */
static int sync_bp(struct tsync *t, struct blkptr *bp, int L, uint64_t base, size_t i, size_t j,
                   bool *changed)
{
    const struct objtree_wctx *w = t->w;
    bool virt = t->grown && L >= t->old_levels && base == 0;
    int r;
    if (L == 0) {
        struct blkptr nbp;
        if (i < j && base < t->nblocks)
            nbp = t->u[i].bp;
        else
            bp_make_hole(&nbp, w->txg, 0, w->dtype);
        if (bp_is_hole(bp) && bp_is_hole(&nbp))
            return 0;
        acct_free(t, bp);
        acct_new(t, &nbp);
        *bp = nbp;
        *changed = true;
        return 0;
    }
    uint64_t kspan = span(L - 1);
    if (base >= t->nblocks && !virt) {
        if (bp_is_hole(bp))
            return 0;
        r = free_tree(t, bp, L);
        if (r < 0)
            return r;
        bp_make_hole(bp, w->txg, (uint8_t)L, BP_TYPE_INDIRECT);
        *changed = true;
        return 0;
    }
    bool trunc = !bp_is_hole(bp) && base + span(L) > t->nblocks;
    if (i == j && !trunc && !virt)
        return 0;
    if (L == 1 && !virt && !trunc && !bp_is_hole(bp))
        return patch_level1(t, bp, base, i, j, changed);
    struct blkptr *kids = t->kids[L];
    if (virt) {
        memset(kids, 0, IND_NBP * sizeof *kids);
        if (L == t->old_levels)
            kids[0] = t->old_root;
    } else {
        r = load_kids(w->io, bp, L, 0, kids);
        if (r < 0)
            return r;
    }
    bool kchanged = virt;
    size_t a = i;
    for (unsigned idx = 0; idx < IND_NBP; idx++) {
        uint64_t cbase = base + idx * kspan;
        size_t b = a;
        while (b < j && t->u[b].blkid < cbase + kspan)
            b++;
        bool ktrunc = !bp_is_hole(&kids[idx]) && cbase + kspan > t->nblocks;
        bool kvirt = virt && idx == 0 && L - 1 >= t->old_levels;
        if (a < b || ktrunc || kvirt) {
            r = sync_bp(t, &kids[idx], L - 1, cbase, a, b, &kchanged);
            if (r < 0)
                return r;
            /* the recursion reused deeper kids arrays only */
        }
        a = b;
        if (a == j && !trunc && !virt)
            break;
    }
    if (!kchanged)
        return 0;
    struct blkptr nbp;
    r = write_indirect(t, kids, L, &nbp);
    if (r < 0)
        return r;
    if (!virt)
        acct_free(t, bp);
    acct_new(t, &nbp);
    *bp = nbp;
    *changed = true;
    return 0;
}

int objtree_sync(const struct objtree_wctx *w, struct objdesc *od, const struct leaf_update *u,
                 size_t n, uint64_t new_nblocks)
{
    struct objdesc nod = *od;
    struct tsync t = { .w = w, .od = &nod, .u = u, .nblocks = new_nblocks };
    int need = objtree_levels_for(new_nblocks);
    if (need < nod.levels)
        need = nod.levels; /* never shrink the height */
    if (need > nod.levels) {
        if (bp_is_hole(&nod.root)) {
            bp_make_hole(&nod.root, nod.root.birth, (uint8_t)(need - 1), BP_TYPE_INDIRECT);
        } else {
            t.grown = true;
            t.old_levels = nod.levels;
            t.old_root = nod.root;
        }
        nod.levels = (uint8_t)need;
    }
    t.kids = malloc(sizeof(*t.kids) * OBJ_MAX_LEVELS);
    if (!t.kids)
        return -ENOMEM;
    bool changed = false;
    int r = sync_bp(&t, &nod.root, nod.levels - 1, 0, 0, n, &changed);
    free(t.kids);
    if (r < 0)
        return r;
    nod.nblocks = new_nblocks;
    *od = nod;
    return 0;
}

int objtree_free_all(const struct objtree_wctx *w, struct objdesc *od)
{
    struct objdesc nod = *od;
    struct tsync t = { .w = w, .od = &nod, .nblocks = 0 };
    t.kids = malloc(sizeof(*t.kids) * OBJ_MAX_LEVELS);
    if (!t.kids)
        return -ENOMEM;
    int r = free_tree(&t, &nod.root, nod.levels - 1);
    free(t.kids);
    if (r < 0)
        return r;
    bp_make_hole(&nod.root, w->txg, (uint8_t)(nod.levels - 1),
                 nod.levels > 1 ? BP_TYPE_INDIRECT : w->dtype);
    *od = nod;
    return 0;
}

struct twalk {
    const struct blkio *io;
    unsigned flags;
    uint64_t min_birth;
    objtree_visit_fn cb;
    void *opaque;
    struct blkptr (*kids)[IND_NBP];
};

static int walk_bp(struct twalk *t, const struct blkptr *bp, int L, uint64_t base)
{
    if (bp_is_hole(bp) || bp->birth <= t->min_birth)
        return 0;
    int r = t->cb(bp, base, t->opaque);
    if (r || L == 0)
        return r;
    struct blkptr *kids = t->kids[L];
    r = load_kids(t->io, bp, L, t->flags, kids);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < IND_NBP; i++) {
        r = walk_bp(t, &kids[i], L - 1, base + i * span(L - 1));
        if (r)
            return r;
    }
    return 0;
}

int objtree_walk(const struct blkio *io, const struct objdesc *od, unsigned flags,
                 objtree_visit_fn cb, void *opaque)
{
    return objtree_walk_since(io, od, 0, flags, cb, opaque);
}

int objtree_walk_since(const struct blkio *io, const struct objdesc *od, uint64_t min_birth,
                       unsigned flags, objtree_visit_fn cb, void *opaque)
{
    struct twalk t = { .io = io, .flags = flags, .min_birth = min_birth, .cb = cb,
                       .opaque = opaque };
    t.kids = malloc(sizeof(*t.kids) * OBJ_MAX_LEVELS);
    if (!t.kids)
        return -ENOMEM;
    int r = walk_bp(&t, &od->root, od->levels - 1, 0);
    free(t.kids);
    return r;
}
