/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metadata authentication of encrypted volumes (issue 6 item 1,
 * docs/FORMAT.md section 10): a forger who knows the format but not the key
 * rewrites an indirect block of an encrypted volume (swaps two data
 * pointers, replays an older pointer at the same block id, punches a hole)
 * and recomputes every unkeyed checksum up to the uberblock.  If the forger
 * also recomputes the keyless digests, the root digest changes and the key
 * no longer loads (the root MAC fails, naming the dataset); if not, the key
 * loads but every read below the forged indirect is EIO and a counted
 * checksum error, never wrong data.  A forged root MAC fails the key load;
 * crashes, resizes, snapshots, clones, rollback and destroy keep every MAC
 * valid; a scrub without the key finds a forged indirect; the digest of a
 * tree does not depend on its height. */
#include <fcntl.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/le.h"
#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/dsauth.h"
#include "store/keyslot.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 4096u
#define NBLK 512u /* two level-1 indirects: the tree has 3 levels */
#define VOLSZ ((uint64_t)NBLK * BS)

static uint8_t rawkey[32];
static const struct bs_kdf_opts fast_kdf = { .kdf = BS_KDF_ARGON2ID, .t_cost = 1,
                                             .m_cost_kib = 64, .parallelism = 1 };

static bs_pool *import_file(const char *file)
{
    const char *v[] = { file };
    bs_pool *q = NULL;
    struct berr e = {0};
    if (bs_pool_import(v, 1, NULL, &q, &e) < 0)
        diag("import %s: %s", file, e.msg);
    return q;
}

static int key_load(bs_pool *p, const char *name, struct berr *e)
{
    struct bs_key k = { .format = BS_KEYFORMAT_RAW, .data = rawkey, .len = 32 };
    berr_clear(e);
    return bs_key_load(p, name, &k, e);
}

static int create_vol(bs_pool *p, const char *name, uint64_t size)
{
    struct berr e = {0};
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "%s", name);
    vp.volsize = size;
    vp.volblocksize = BS;
    vp.encrypted = true;
    vp.keyformat = BS_KEYFORMAT_RAW;
    snprintf(vp.keylocation, sizeof vp.keylocation, "prompt"); /* no auto-load at import */
    vp.key = rawkey;
    vp.keylen = 32;
    vp.kdf = fast_kdf;
    int r = bs_vol_create(p, &vp, false, &e);
    if (r < 0)
        diag("create %s: %s", name, e.msg);
    return r;
}

static int vol_io(bs_pool *p, const char *name, void *buf, size_t len, uint64_t off, bool wr)
{
    bs_vol *v = NULL;
    int r = bs_vol_open(p, name, &v, NULL);
    if (r == 0)
        r = wr ? bs_vol_pwrite(v, buf, len, off, 0) : bs_vol_pread(v, buf, len, off);
    if (r >= 0 && wr)
        r = bs_vol_flush(v);
    bs_vol_close(v);
    return r < 0 ? r : 0;
}

static uint64_t cksum_errors(bs_pool *p)
{
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    return st.checksum_errors;
}

static struct ds *find_ds(bs_pool *p, const char *name)
{
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, name);
    pthread_mutex_unlock(&p->lock);
    return d;
}

static struct objdesc ds_od(struct ds *d)
{
    pthread_mutex_lock(&d->lock);
    struct objdesc od = d->od;
    pthread_mutex_unlock(&d->lock);
    return od;
}

static void copy_file(const char *from, const char *to)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp --sparse=always '%s' '%s'", from, to);
    if (system(cmd) != 0)
        diag("copy %s failed", from);
}

/* ---- the forger ---- */

enum forge_op { F_SWAP, F_REPLAY, F_HOLE };
static const char *op_name[] = { "two data pointers swapped", "an older pointer replayed",
                                 "a pointer replaced by a hole" };

static int read_kids(bs_pool *p, const struct blkptr *bp, struct blkptr *kids)
{
    struct cbuf *c;
    int r = blk_read(&p->io, bp, BLK_NOCACHE, &c);
    for (unsigned i = 0; r == 0 && i < IND_NBP; i++)
        r = bp_decode(c->data + i * BP_SIZE, &kids[i]);
    if (c)
        cbuf_unref(c);
    return r;
}

/* Write the indirect holding `kids` at `level` in txg, as a forger would:
 * valid checksum, AUTH flag, and as digest either the one computed from
 * the new children (`full`) or `keep` (the old one). */
static int write_ind(bs_pool *p, struct ds *d, const struct blkptr *kids, int level, uint64_t txg,
                     bool full, const uint8_t *keep, struct blk_scratch *s, struct blkptr *out)
{
    struct cbuf *cb = cbuf_new(IND_SIZE);
    uint64_t fill = 0;
    for (unsigned i = 0; i < IND_NBP; i++) {
        bp_encode(&kids[i], cb->data + i * BP_SIZE);
        fill += bp_is_hole(&kids[i]) ? 0 : kids[i].fill;
    }
    uint8_t digest[BP_MAC_LEN];
    int r = full ? objtree_ind_digest(level, cb->data, digest) : 0;
    struct blk_wprops wp = { .type = BP_TYPE_INDIRECT, .level = (uint8_t)level,
                             .comp = BS_COMPRESS_LZ4, .cksum = d->rec.cksum };
    if (r == 0)
        r = blk_write(&p->io, cb->data, NULL, IND_SIZE, &wp, txg, s, out);
    cbuf_unref(cb);
    if (r < 0)
        return r;
    out->fill = fill;
    out->flags |= BP_FLAG_AUTH;
    memcpy(out->checksum + BP_MAC_OFF, full ? digest : keep, BP_MAC_LEN);
    return 0;
}

/* Rewrite the first level-1 indirect of `name` (pool imported without the
 * key) with `op` applied to data pointer 1 (and 2), a new root above it,
 * and commit through the engine, which re-checksums the directory and
 * writes the uberblock but cannot recompute the root MAC. */
static int forge(bs_pool *p, const char *name, enum forge_op op, const struct blkptr *replay,
                 bool full)
{
    struct blkptr *rk = calloc(IND_NBP, sizeof *rk), *lk = calloc(IND_NBP, sizeof *lk);
    struct blk_scratch s = {0};
    blk_scratch_init(&s, IND_SIZE, p->io.ashift);
    pthread_mutex_lock(&p->txg.sync_mutex);
    struct ds *d = find_ds(p, name);
    pthread_mutex_lock(&p->lock);
    uint64_t txg = p->txg.open_txg;
    pthread_mutex_unlock(&p->lock);
    struct objdesc od = ds_od(d);
    int r = od.levels == 3 ? 0 : -EINVAL;
    if (r == 0)
        r = read_kids(p, &od.root, rk);
    if (r == 0)
        r = read_kids(p, &rk[0], lk);
    if (r == 0) {
        struct blkptr t = lk[1];
        switch (op) {
        case F_SWAP: lk[1] = lk[2]; lk[2] = t; break;
        case F_REPLAY: lk[1] = *replay; break;
        case F_HOLE: bp_make_hole(&lk[1], txg, 0, BP_TYPE_VOL_DATA); break;
        }
    }
    struct blkptr nl, nr;
    if (r == 0)
        r = write_ind(p, d, lk, 1, txg, full, rk[0].checksum + BP_MAC_OFF, &s, &nl);
    if (r == 0) {
        blk_free(&p->io, &rk[0], txg);
        rk[0] = nl;
        r = write_ind(p, d, rk, 2, txg, full, od.root.checksum + BP_MAC_OFF, &s, &nr);
    }
    if (r == 0) {
        blk_free(&p->io, &od.root, txg);
        od.root = nr;
        pthread_mutex_lock(&p->lock);
        pthread_mutex_lock(&d->lock);
        d->od = od;
        pthread_mutex_unlock(&d->lock);
        p->mos_dirty = true;
        txg_dirty_open(p);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&p->txg.sync_mutex);
    struct berr e = {0};
    if (r == 0)
        r = bs_pool_sync(p, &e);
    blk_scratch_free(&s);
    free(rk);
    free(lk);
    return r;
}

/* ---- the pristine pool ---- */

static uint8_t *data1, *data2; /* v's contents at v@s1, then block 1 rewritten */
static struct blkptr old_bp1;  /* v@s1's pointer of block 1 (for the replay) */

static void make_pool(const char *file)
{
    struct berr e = {0};
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.force = true;
    const char *v[] = { file };
    bs_pool *p = NULL;
    if (bs_pool_create("em", v, 1, 96 * MiB, &o, &p, &e) < 0)
        diag("pool create: %s", e.msg);
    ok(create_vol(p, "v", VOLSZ) == 0, "encrypted volume of %u blocks", NBLK);
    ok(vol_io(p, "v", data1, VOLSZ, 0, true) == 0, "filled");
    const char *sn[] = { "v@s1" };
    ok(bs_snap_create(p, sn, 1, &e) == 0, "snapshot v@s1");
    ok(vol_io(p, "v", data2 + BS, BS, BS, true) == 0, "block 1 rewritten after it");
    bs_pool_sync(p, &e);
    struct objdesc od = ds_od(find_ds(p, "v"));
    struct objdesc so = ds_od(find_ds(p, "v@s1"));
    ok(od.levels == 3 && (od.root.flags & BP_FLAG_AUTH), "3 levels, authenticated root");
    ok(objtree_lookup(&p->io, &so, 1, 0, &old_bp1, NULL) == 0 && (old_bp1.flags & BP_FLAG_ENCRYPTED),
       "the snapshot's block 1");
    bs_pool_export(p, false, &e);
}

/* Scrub the pool (no key needed): its error count. */
static uint64_t scrub_errors(bs_pool *p)
{
    struct berr e = {0};
    if (bs_pool_scrub(p, BS_SCRUB_START, &e) < 0) {
        diag("scrub: %s", e.msg);
        return UINT64_MAX;
    }
    bs_pool_scrub_wait(p);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    return strcmp(st.scan.state, "finished") == 0 ? st.scan.errors : UINT64_MAX;
}

/* ---- forgeries ---- */

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* Whether some 16-byte-aligned run of `of` appears 16-byte-aligned in buf.
 * The runs of `of` are sorted once and looked up by bisection: a nested
 * memcmp loop over a 64 MiB leaf took minutes under ASan. */
static bool has_run(const uint8_t *buf, size_t len, const uint8_t *of, size_t oflen)
{
    size_t n = oflen / 16;
    uint8_t *keys = malloc(n * 16 + 1);
    if (!keys)
        return true; /* fail the check rather than pass it unsearched */
    memcpy(keys, of, n * 16);
    qsort(keys, n, 16, cmp16);
    bool found = false;
    for (size_t i = 0; !found && i + 16 <= len; i += 16)
        found = bsearch(buf + i, keys, n, 16, cmp16) != NULL;
    free(keys);
    return found;
}

static void test_partial(const char *pristine, enum forge_op op)
{
    struct berr e = {0};
    const char *f = tmp_path("forged.img");
    copy_file(pristine, f);
    bs_pool *p = import_file(f);
    ok(forge(p, "v", op, &old_bp1, false) == 0, "%s, digests kept: forged and committed",
       op_name[op]);
    bs_pool_export(p, false, &e);
    p = import_file(f);
    ok(key_load(p, "v", &e) == 0, "the key still loads (the root digest did not change)");
    uint64_t e0 = cksum_errors(p);
    uint8_t *buf = malloc(VOLSZ);
    int bad = 0;
    bool leaked = false;
    /* blocks 0..255 hang below the forged indirect, 256.. do not */
    uint64_t probes[] = { 0, 1, 2, 3, 255 };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        memset(buf, 0, BS);
        int r = vol_io(p, "v", buf, BS, probes[i] * BS, false);
        bad += r != -EIO;
        leaked |= has_run(buf, BS, data2, 4 * BS);
    }
    ok(bad == 0, "every read below the forged indirect is EIO");
    ok(!leaked, "and hands out no data");
    ok(cksum_errors(p) >= e0 + 5, "each counted as a checksum error (%llu)",
       (unsigned long long)(cksum_errors(p) - e0));
    ok(vol_io(p, "v", buf, VOLSZ - 256 * BS, 256 * BS, false) == 0 &&
           memcmp(buf, data2 + 256 * BS, VOLSZ - 256 * BS) == 0,
       "blocks outside it read correctly");
    ok(vol_io(p, "v@s1", buf, VOLSZ, 0, false) == 0 && memcmp(buf, data1, VOLSZ) == 0,
       "the snapshot, untouched, reads correctly");
    bs_key_unload(p, "v", &e);
    berr_clear(&e);
    ok(bs_pool_check(p, &e) == -EILSEQ, "pool check without the key finds it: %s", e.msg);
    uint64_t se = scrub_errors(p);
    ok(se > 0 && se != UINT64_MAX, "so does a scrub without the key (%llu errors)",
       (unsigned long long)se);
    free(buf);
    bs_pool_export(p, true, &e);
}

static void test_full(const char *pristine, enum forge_op op)
{
    struct berr e = {0};
    const char *f = tmp_path("forged.img");
    copy_file(pristine, f);
    bs_pool *p = import_file(f);
    ok(forge(p, "v", op, &old_bp1, true) == 0, "%s, digests recomputed: forged and committed",
       op_name[op]);
    /* (this forger leaves the space accounting stale, which the check
     * reports; what matters is that every digest matches) */
    berr_clear(&e);
    ok(bs_pool_check(p, &e) == 0 || !strstr(e.msg, "unreadable"),
       "every digest of a consistent forgery matches without the key (%s)", e.msg);
    bs_pool_export(p, false, &e);
    p = import_file(f);
    int r = key_load(p, "v@s1", &e);
    ok(r < 0 && strstr(e.msg, "'v'") && strstr(e.msg, "authentication"),
       "the key load fails, naming the dataset: %s", e.msg);
    uint8_t buf[BS];
    ok(vol_io(p, "v", buf, BS, BS, false) < 0, "nothing of the volume is readable");
    bs_pool_export(p, true, &e);
}

static void test_root_mac(const char *pristine)
{
    struct berr e = {0};
    const char *f = tmp_path("forged.img");
    copy_file(pristine, f);
    bs_pool *p = import_file(f);
    struct ds *d = find_ds(p, "v@s1");
    pthread_mutex_lock(&p->lock);
    d->rec.root_mac[3] ^= 0x10;
    p->mos_dirty = true;
    txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    bs_pool_sync(p, &e);
    bs_pool_export(p, false, &e);
    p = import_file(f);
    int r = key_load(p, "v", &e);
    ok(r < 0 && strstr(e.msg, "'v@s1'") && strstr(e.msg, "root MAC"),
       "a changed root MAC in the directory fails the key load: %s", e.msg);
    /* and one that is right again loads */
    d = find_ds(p, "v@s1");
    pthread_mutex_lock(&p->lock);
    d->rec.root_mac[3] ^= 0x10;
    pthread_mutex_unlock(&p->lock);
    ok(key_load(p, "v", &e) == 0, "restored, it loads: %s", e.msg);
    bs_pool_export(p, true, &e);
}

/* ---- life cycle: everything the engine does keeps the MACs valid ---- */

static void test_lifecycle(const char *pristine)
{
    struct berr e = {0};
    const char *f = tmp_path("life.img");
    copy_file(pristine, f);
    bs_pool *p = import_file(f);
    ok(key_load(p, "v", &e) == 0, "pristine pool: the key loads (%s)", e.msg);
    uint8_t *buf = malloc(VOLSZ), *pat = malloc(VOLSZ);
    pattern(pat, VOLSZ, 0, 9);
    /* crash: writes committed by a flush survive a power cut */
    ok(vol_io(p, "v", pat, 64 * BS, 100 * BS, true) == 0, "write and flush");
    pool_abandon(p);
    p = import_file(f);
    ok(key_load(p, "v", &e) == 0, "after a crash the MACs verify (%s)", e.msg);
    memcpy(data2 + 100 * BS, pat, 64 * BS);
    ok(vol_io(p, "v", buf, VOLSZ, 0, false) == 0 && memcmp(buf, data2, VOLSZ) == 0,
       "the flushed data is there");
    /* snapshot, clone, write to the clone, rollback, destroy */
    const char *sn[] = { "v@s2" };
    ok(bs_snap_create(p, sn, 1, &e) == 0, "snapshot v@s2");
    ok(bs_vol_clone(p, "v@s2", "c", NULL, &e) == 0, "clone c of it");
    ok(vol_io(p, "c", pat, 8 * BS, 300 * BS, true) == 0, "write to the clone");
    ok(vol_io(p, "v", pat, 4 * BS, 0, true) == 0, "and to the volume");
    ok(bs_vol_rollback(p, "v@s1", 0, &e) == 0, "roll v back to v@s1 (%s)", e.msg);
    ok(bs_vol_resize(p, "c", VOLSZ * 2, false, &e) == 0, "grow the clone");
    bs_pool_sync(p, &e);
    bs_pool_export(p, false, &e);
    p = import_file(f);
    ok(key_load(p, "v", &e) == 0, "reimported: every dataset of the key verifies (%s)", e.msg);
    ok(vol_io(p, "v", buf, VOLSZ, 0, false) == 0 && memcmp(buf, data1, VOLSZ) == 0,
       "v reads as v@s1");
    memcpy(data2 + 300 * BS, pat, 8 * BS);
    ok(vol_io(p, "c", buf, VOLSZ, 0, false) == 0 && memcmp(buf, data2, VOLSZ) == 0,
       "c reads its writes over v@s2");
    /* writes the unload commits (the txg runs while the key is unloading) */
    bs_vol *h = NULL;
    ok(bs_vol_open(p, "v", &h, &e) == 0 && bs_vol_pwrite(h, pat, 2 * BS, 40 * BS, 0) == 0,
       "write without a flush");
    bs_vol_close(h);
    ok(bs_key_unload(p, "v", &e) == 0, "unload commits it (%s)", e.msg);
    ok(key_load(p, "v", &e) == 0, "and the MAC of that txg verifies (%s)", e.msg);
    ok(bs_vol_destroy(p, "c", false, &e) == 0, "destroy the clone (%s)", e.msg);
    ok(bs_snap_destroy(p, "v@s2", 0, &e) == 0, "destroy v@s2 (%s)", e.msg);
    bs_key_unload(p, "v", &e);
    berr_clear(&e);
    ok(bs_vol_resize(p, "v", VOLSZ * 2, false, &e) == -EACCES,
       "resizing without the key is refused: %s", e.msg);
    ok(key_load(p, "v", &e) == 0, "still verifies after destroys (%s)", e.msg);
    bs_key_unload(p, "v", &e);
    berr_clear(&e);
    ok(bs_pool_check(p, &e) == 0, "pool check without the key: clean (%s)", e.msg);
    ok(scrub_errors(p) == 0, "a scrub without the key: no errors");
    free(buf);
    free(pat);
    bs_pool_export(p, true, &e);
}

/* The digest does not depend on the tree's height: a volume grown to 3
 * levels and shrunk back digests like one that never grew. */
static void test_height(void)
{
    struct berr e = {0};
    const char *f = tmp_path("height.img");
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.force = true;
    const char *v[] = { f };
    bs_pool *p = NULL;
    bs_pool_create("eh", v, 1, 64 * MiB, &o, &p, &e);
    create_vol(p, "a", 200 * BS);
    uint8_t *pat = malloc(200 * BS);
    pattern(pat, 200 * BS, 0, 3);
    vol_io(p, "a", pat, 200 * BS, 0, true);
    bs_pool_sync(p, &e);
    uint8_t d0[16], d1[16], d2[16];
    struct objdesc od = ds_od(find_ds(p, "a"));
    ok(od.levels == 2 && objtree_root_digest(&od, d0) == 0, "2 levels");
    bs_vol_resize(p, "a", 700 * BS, false, &e);
    bs_pool_sync(p, &e);
    od = ds_od(find_ds(p, "a"));
    ok(od.levels == 3 && objtree_root_digest(&od, d1) == 0 && memcmp(d0, d1, 16) == 0,
       "grown to 3 levels: the same root digest");
    bs_vol_resize(p, "a", 200 * BS, true, &e);
    bs_pool_sync(p, &e);
    od = ds_od(find_ds(p, "a"));
    ok(od.levels == 3 && objtree_root_digest(&od, d2) == 0 && memcmp(d0, d2, 16) == 0,
       "shrunk back, still 3 levels: the same root digest");
    vol_io(p, "a", pat, BS, 199 * BS, true);
    bs_pool_sync(p, &e);
    od = ds_od(find_ds(p, "a"));
    ok(objtree_root_digest(&od, d2) == 0 && memcmp(d0, d2, 16) != 0,
       "a rewritten block changes it");
    bs_pool_export(p, false, &e);
    p = import_file(f);
    ok(key_load(p, "a", &e) == 0, "and the MAC verifies after the resizes (%s)", e.msg);
    free(pat);
    bs_pool_export(p, true, &e);
}

/* What a raw receiver does without the key: rebuild a tree from the same
 * encrypted data pointers (new indirects, other DVAs and births, a taller
 * tree) and take the sender's MAC: digests and MAC match. */
static int collect(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct leaf_update *u = opaque;
    if (bp->level == 0) {
        u[blkid].blkid = blkid;
        u[blkid].bp = *bp;
    }
    return 0;
}

static void test_portable(const char *pristine)
{
    struct berr e = {0};
    const char *f = tmp_path("portable.img");
    copy_file(pristine, f);
    bs_pool *p = import_file(f);
    struct ds *s1 = find_ds(p, "v@s1");
    struct objdesc so = ds_od(s1);
    struct leaf_update *u = calloc(NBLK, sizeof *u);
    objtree_walk(&p->io, &so, 0, collect, u);
    size_t n = 0;
    for (size_t i = 0; i < NBLK; i++)
        if (u[i].bp.flags & BP_FLAG_ENCRYPTED)
            u[n++] = u[i];
    struct blk_scratch sc = {0};
    blk_scratch_init(&sc, IND_SIZE, p->io.ashift);
    pthread_mutex_lock(&p->txg.sync_mutex);
    pthread_mutex_lock(&p->lock);
    uint64_t txg = p->txg.open_txg;
    pthread_mutex_unlock(&p->lock);
    struct objtree_wctx w = { .io = &p->io, .txg = txg, .cksum = BS_CHECKSUM_SHA256,
                              .dtype = BP_TYPE_VOL_DATA, .s = &sc, .auth = true };
    struct objdesc od;
    objdesc_init(&od, __builtin_ctz(BS), 70000); /* 4 levels, kept when it shrinks */
    int r = objtree_sync(&w, &od, u, n, NBLK);
    pthread_mutex_unlock(&p->txg.sync_mutex);
    uint8_t d0[16], d1[16], mac[DS_ROOT_MAC_LEN], want[DS_ROOT_MAC_LEN];
    ok(r == 0 && n == NBLK && od.levels == 4 && so.levels == 3 &&
           od.root.dva[0].offset != so.root.dva[0].offset,
       "a tree rebuilt from the %zu data pointers: other blocks, 4 levels instead of 3", n);
    ok(objtree_root_digest(&od, d0) == 0 && objtree_root_digest(&so, d1) == 0 &&
           memcmp(d0, d1, 16) == 0,
       "the same root digest");
    ok(ds_get_root_mac(p, s1, want) == 0 && key_load(p, "v", &e) == 0 &&
           ds_root_mac_compute(s1->key->rec.guid, s1->key->master, &od, mac) == 0 &&
           memcmp(mac, want, sizeof mac) == 0,
       "so the sender's root MAC verifies it");
    ok(ds_verify_root_mac(p, s1, &e) == 0, "the snapshot verifies (%s)", e.msg);
    /* a receive target takes a MAC from the stream: checked at once with
     * the key, at the next key load without it */
    uint8_t bad[DS_ROOT_MAC_LEN], cur[DS_ROOT_MAC_LEN];
    struct ds *v = find_ds(p, "v");
    ds_get_root_mac(p, v, cur);
    memcpy(bad, cur, sizeof bad);
    bad[0] ^= 1;
    ok(ds_set_root_mac(p, v, bad) == -EBADMSG, "with the key loaded a wrong MAC is refused");
    ok(ds_set_root_mac(p, v, cur) == 0, "the right one is taken");
    ok(bs_key_unload(p, "v", &e) == 0, "unload (%s)", e.msg);
    ok(ds_set_root_mac(p, v, bad) == 0, "without the key a MAC is taken as a raw receive does");
    bs_pool_sync(p, &e);
    ok(key_load(p, "v", &e) < 0 && strstr(e.msg, "'v'"), "a wrong one fails the key load: %s",
       e.msg);
    free(u);
    blk_scratch_free(&sc);
    bs_pool_export(p, true, &e);
}

/* ---- the directory codec: version 4 records, version 3 read as legacy ---- */

/* The same directory as version 3: dataset records without the root MAC
 * and reserved bytes (24 bytes fewer), everything else copied. */
static size_t to_v3(const uint8_t *in, size_t len, uint8_t *out)
{
    memcpy(out, in, MOS_HDR_SIZE);
    put_le32(out + 8, 3);
    size_t ip = MOS_HDR_SIZE, op = MOS_HDR_SIZE;
    uint32_t nrec = get_le32(in + 12);
    for (uint32_t i = 0; i < nrec && ip + 8 <= len; i++) {
        uint32_t type = get_le32(in + ip), rlen = get_le32(in + ip + 4);
        const uint8_t *q = in + ip + 8;
        if (type == MOS_REC_DATASET) {
            uint32_t nlen = rlen - MOS_DS_FIXED4;
            memset(out + op, 0, 8 + ROUND_UP(MOS_DS_FIXED3 + nlen, 8));
            put_le32(out + op, type);
            put_le32(out + op + 4, MOS_DS_FIXED3 + nlen);
            memcpy(out + op + 8, q, MOS_DS_FIXED3);
            memcpy(out + op + 8 + MOS_DS_FIXED3, q + MOS_DS_FIXED4, nlen);
            op += 8 + ROUND_UP(MOS_DS_FIXED3 + nlen, 8);
        } else {
            memcpy(out + op, in + ip, 8 + ROUND_UP(rlen, 8));
            op += 8 + ROUND_UP(rlen, 8);
        }
        ip += 8 + ROUND_UP(rlen, 8);
    }
    return op;
}

static void test_mos_v4(void)
{
    struct mos_dir d = {0};
    struct mos_ds ds[2] = {{0}};
    struct mos_key k = {0};
    struct user_key *uk;
    struct crypt_key *master;
    user_key_parse(KEYFORMAT_RAW, rawkey, 32, &uk, NULL);
    keyslot_create(&k.slots, uk, NULL, &master, NULL);
    user_key_free(uk);
    crypt_key_free(master);
    k.id = 1;
    k.guid = 77;
    k.suite = 1;
    k.keyformat = KEYFORMAT_RAW;
    snprintf(k.location, sizeof k.location, "prompt");
    for (int i = 0; i < 2; i++) {
        snprintf(ds[i].name, sizeof ds[i].name, i ? "plain" : "enc");
        ds[i].id = (uint64_t)i + 1;
        ds[i].volsize = ds[i].volblocksize = 16384;
        ds[i].cksum = BS_CHECKSUM_XXH3;
        objdesc_init(&ds[i].od, 14, 1);
        objdesc_init(&ds[i].lin.dl, DL_DSHIFT, 0);
    }
    ds[0].key_id = 1;
    memset(ds[0].root_mac, 0x5a, sizeof ds[0].root_mac);
    d.next_id = 3;
    d.cksum = BS_CHECKSUM_XXH3;
    d.ds = ds;
    d.nds = 2;
    d.keys = &k;
    d.nkeys = 1;
    uint8_t *b, *v3;
    size_t len;
    struct mos_dir o;
    ok(mos_encode(&d, &b, &len) == 0 && get_le32(b + 8) == 4, "directory version 4");
    ok(mos_decode(b, len, &o) == 0 && !o.legacy_crypt &&
           memcmp(o.ds[0].root_mac, ds[0].root_mac, DS_ROOT_MAC_LEN) == 0 &&
           o.ds[1].root_mac[0] == 0,
       "the root MAC round-trips");
    mos_dir_free(&o);
    v3 = calloc(1, len);
    size_t l3 = to_v3(b, len, v3);
    ok(mos_decode(v3, l3, &o) == 0 && o.legacy_crypt && o.ds[0].key_id == 1 &&
           o.ds[0].root_mac[0] == 0 && strcmp(o.ds[1].name, "plain") == 0,
       "version 3 with an encrypted volume still decodes, marked legacy");
    mos_dir_free(&o);
    free(v3);
    free(b);
    /* hostile version-4 records */
    ds[1].root_mac[0] = 1;
    ok(mos_encode(&d, &b, &len) == 0 && mos_decode(b, len, &o) == -EILSEQ,
       "a root MAC on a plaintext dataset is refused");
    free(b);
    ds[1].root_mac[0] = 0;
    mos_encode(&d, &b, &len);
    b[MOS_HDR_SIZE + 8 + MOS_DS_FIXED3 + DS_ROOT_MAC_LEN + 3] = 1;
    ok(mos_decode(b, len, &o) == -EILSEQ, "non-zero reserved bytes are refused");
    free(b);
}

static bool file_has_run(const char *path, const uint8_t *of, size_t oflen)
{
    FILE *f = fopen(path, "r");
    static uint8_t chunk[1 << 20];
    size_t n;
    bool found = false;
    while (!found && f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        found = has_run(chunk, n, of, oflen);
    if (f)
        fclose(f);
    return found;
}

/* An encrypted block with one bad copy on a mirror: the GCM tag picks the
 * good copy, the read returns the data, and the repair writes ciphertext. */
static void test_mirror_heal(void)
{
    struct berr e = {0};
    char a[600], b[600];
    snprintf(a, sizeof a, "%s", tmp_path("ma.img"));
    snprintf(b, sizeof b, "%s", tmp_path("mb.img"));
    const char *spec[] = { "mirror", a, b };
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.force = true;
    bs_pool *p = NULL;
    ok(bs_pool_create("mh", spec, 3, 64 * MiB, &o, &p, &e) == 0, "mirror pool (%s)", e.msg);
    create_vol(p, "m", 64 * BS);
    uint8_t *pat = malloc(8 * BS), *got = malloc(8 * BS);
    pattern(pat, 8 * BS, 0, 5);
    vol_io(p, "m", pat, 8 * BS, 0, true);
    struct blkptr bp;
    struct objdesc od = ds_od(find_ds(p, "m"));
    objtree_lookup(&p->io, &od, 3, 0, &bp, NULL);
    uint64_t at = p->top_hdr[0].data_start + bp.dva[0].offset;
    bs_pool_export(p, false, &e);
    uint8_t junk[512];
    memset(junk, 0xa5, sizeof junk);
    raw_pwrite(a, junk, sizeof junk, at + 1024); /* copy 0 of block 3 damaged */
    const char *v2[] = { a, b };
    p = NULL;
    bs_pool_import(v2, 2, NULL, &p, &e);
    ok(key_load(p, "m", &e) == 0, "key loads");
    ok(vol_io(p, "m", got, 8 * BS, 0, false) == 0 && memcmp(got, pat, 8 * BS) == 0,
       "the read returns the good copy");
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    uint64_t rep = 0, cks = 0;
    for (size_t i = 0; i < st.nvdevs; i++) {
        rep += st.vdevs[i].repaired_bytes;
        cks += st.vdevs[i].checksum_errors;
    }
    ok(rep > 0 && cks > 0, "the bad copy counted (%llu) and repaired (%llu bytes)",
       (unsigned long long)cks, (unsigned long long)rep);
    bs_pool_export(p, true, &e);
    raw_pwrite(b, junk, sizeof junk, at + 2048); /* now copy 1, found by a scrub */
    p = NULL;
    bs_pool_import(v2, 2, NULL, &p, &e);
    ok(scrub_errors(p) == 0, "a scrub without the key repairs it: no errors left");
    bs_pool_stats(p, &st);
    rep = 0;
    for (size_t i = 0; i < st.nvdevs; i++)
        rep += st.vdevs[i].repaired_bytes;
    ok(rep > 0 && st.scan.repaired > 0, "repaired %llu bytes", (unsigned long long)rep);
    bs_pool_export(p, true, &e);
    ok(!file_has_run(a, pat, 8 * BS) && !file_has_run(b, pat, 8 * BS),
       "no plaintext on either leaf after the repairs");
    free(pat);
    free(got);
}

int main(void)
{
    uint64_t seed = 0xe7c;
    random_bytes(rawkey, 32, &seed);
    data1 = malloc(VOLSZ);
    data2 = malloc(VOLSZ);
    random_bytes(data1, VOLSZ, &seed);
    memcpy(data2, data1, VOLSZ);
    random_bytes(data2 + BS, BS, &seed);
    char pristine[600];
    snprintf(pristine, sizeof pristine, "%s", tmp_path("pristine.img"));
    test_mos_v4();
    make_pool(pristine);
    for (int op = F_SWAP; op <= F_HOLE; op++)
        test_partial(pristine, (enum forge_op)op);
    for (int op = F_SWAP; op <= F_HOLE; op++)
        test_full(pristine, (enum forge_op)op);
    test_root_mac(pristine);
    test_lifecycle(pristine);
    test_portable(pristine);
    test_height();
    test_mirror_heal();
    free(data1);
    free(data2);
    tmp_cleanup();
    return done_testing();
}
