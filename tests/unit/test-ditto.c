/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Ditto copies of metadata (docs/FORMAT.md 5 and 9, blkio.c).
 *
 *  (a) a new pool: every indirect, MOS and deadlist block has two copies
 *      (DVA 1 on the same top, at least 1/8 of the data area from DVA 0),
 *      data blocks one; the labels carry the ro_compat bit; the checker
 *      agrees with the accounting (both copies counted, none leaked);
 *  (b) DVA 0 of a level-1 indirect and of the newest MOS root damaged on
 *      disk: the import needs no rewind, every block reads back right, two
 *      checksum errors are counted and both bad copies are rewritten from
 *      the good ones (the bytes on disk equal again);
 *  (c) DVA 1 of two indirects damaged: reads do not notice (DVA 0 is
 *      good), a scrub finds and repairs both with no unrepaired error;
 *  (e) snapshots, overwrites and destroys free both copies: the checker
 *      finds no leak or double reference, and the space of a destroyed
 *      volume comes back entirely;
 *  (d) (last on this pool) both copies of an indirect damaged: the blocks
 *      under it fail with EIO (never wrong data), everything else reads;
 *  (f) a pool from before ditto copies (labels without the bit, single
 *      copies): imports, gets the bit, new metadata gets two copies, old
 *      single-copy blocks still read and free right;
 *  (g) (b) on a mirror and a raidz1, with DVA 0 bad on every leaf;
 *  (h) a resilver (attach, then detach of the original) copies DVA 1 too. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 16384u
#define NBLK 2048u /* volume v: 32 MiB, 8 level-1 indirects */

/* The pool's devices: one file (img), or a mirror / raidz of them. */
static const char *img;
static const char *devs[3];
static size_t ndevs = 1;
static const char *layout; /* NULL: img alone; "mirror", "raidz1" */
static uint32_t tags[NBLK];
static uint32_t next_tag = 1;

static void fill(uint8_t *b, uint32_t blk, uint32_t tag)
{
    pattern(b, BS, (uint64_t)blk * BS, tag);
    memcpy(b, &tag, sizeof tag);
}

static int write_range(bs_pool *p, const char *name, uint32_t first, uint32_t n)
{
    struct berr e = {0};
    bs_vol *v;
    if (bs_vol_open(p, name, &v, &e) < 0)
        return -1;
    uint8_t *b = malloc(BS);
    int r = 0;
    for (uint32_t i = first; r == 0 && i < first + n; i++) {
        tags[i] = next_tag++;
        fill(b, i, tags[i]);
        r = bs_vol_pwrite(v, b, BS, (uint64_t)i * BS, 0);
    }
    free(b);
    if (r == 0)
        r = bs_vol_flush(v);
    bs_vol_close(v);
    return r;
}

/* Blocks of v that read back wrong (*eio: that failed with an error). */
static uint32_t verify(bs_pool *p, uint32_t *eio)
{
    struct berr e = {0};
    bs_vol *v;
    *eio = 0;
    if (bs_vol_open(p, "v", &v, &e) < 0)
        return NBLK;
    uint8_t *b = malloc(BS), *x = malloc(BS);
    uint32_t bad = 0;
    for (uint32_t i = 0; i < NBLK; i++) {
        if (bs_vol_pread(v, b, BS, (uint64_t)i * BS) < 0) {
            (*eio)++;
            continue;
        }
        fill(x, i, tags[i]);
        bad += memcmp(b, x, BS) != 0;
    }
    bs_vol_close(v);
    free(b);
    free(x);
    return bad;
}

static bs_pool *import(void)
{
    struct berr e = {0};
    bs_pool *p = NULL;
    if (bs_pool_import(devs, ndevs, "dt", &p, &e) < 0) {
        diag("import: %s", e.msg);
        return NULL;
    }
    return p;
}

static bs_pool *create(bool ditto)
{
    struct berr e = {0};
    const char *v[4] = {layout, devs[0], devs[1], devs[2]};
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.force = true;
    bs_pool *p = NULL;
    if (bs_pool_create("dt", layout ? v : v + 1, ndevs + (layout != NULL), 256 * MiB, &o, &p,
                       &e) < 0) {
        diag("create: %s", e.msg);
        return NULL;
    }
    if (!ditto) { /* what a berth from before ditto copies made */
        p->io.ditto = false;
        p->top_hdr[0].features_ro_compat = 0;
        if (pool_write_labels(p, false) < 0)
            diag("cannot rewrite the labels");
    }
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = (uint64_t)NBLK * BS;
    vp.volblocksize = BS;
    vp.compression = BS_COMPRESS_OFF;
    if (bs_vol_create(p, &vp, false, &e) < 0 || write_range(p, "v", 0, NBLK) < 0) {
        diag("volume: %s", e.msg);
        bs_pool_close(p);
        return NULL;
    }
    return p;
}

/* ---- looking at the trees ---- */

struct census {
    uint64_t meta, meta2, data, data2, near, dsize;
    uint64_t meta_bytes, meta_dva0; /* bp_asize, DVA 0's asize of metadata */
    struct blkptr l1[16], root; /* level-1 indirects, the top indirect */
    unsigned nl1;
};

static int count(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    (void)blkid;
    struct census *c = opaque;
    bool two = bp_ncopies(bp) == 2;
    if (bp_type_is_meta(bp->type)) {
        c->meta++;
        c->meta2 += two;
        c->meta_bytes += bp_asize(bp);
        c->meta_dva0 += bp->dva[0].asize;
        uint64_t a = bp->dva[0].offset, b = bp->dva[1].offset;
        if (two && (bp->dva[1].vdev != bp->dva[0].vdev || (a > b ? a - b : b - a) < c->dsize / 8))
            c->near++;
    } else {
        c->data++;
        c->data2 += two;
    }
    if (bp->level == 1 && c->nl1 < 16)
        c->l1[c->nl1++] = *bp;
    if (bp->level == 2)
        c->root = *bp;
    return 0;
}

static void census_of(bs_pool *p, const char *vol, struct census *c, bool mos_too)
{
    memset(c, 0, sizeof *c);
    c->dsize = p->io.top[0].data_size;
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, vol);
    struct objdesc od = d->od, dl = d->rec.lin.dl;
    pthread_mutex_unlock(&p->lock);
    objtree_walk(&p->io, &od, 0, count, c);
    if (dl.root.birth)
        objtree_walk(&p->io, &dl, 0, count, c);
    if (mos_too)
        objtree_walk(&p->io, &p->mos_od, 0, count, c);
}

/* ---- raw access to the pool file ---- */

static uint64_t data_start;

/* Garbage in a copy of a block: on every leaf (a mirror: every copy of
 * it; a raidz: every sector of its allocation, all columns and parity, so
 * no reconstruction can bring it back) */
static void smash(const struct dva *d)
{
    uint8_t junk[64];
    memset(junk, 0xa5, sizeof junk);
    if (!layout || strcmp(layout, "mirror") == 0) {
        for (size_t i = 0; i < ndevs; i++)
            raw_pwrite(devs[i], junk, sizeof junk, data_start + d->offset + 100);
        return;
    }
    const uint64_t S = 4096; /* raidz sector t: child t % n, row t / n */
    for (uint64_t t = d->offset / S; t < (d->offset + d->asize) / S; t++)
        raw_pwrite(devs[t % ndevs], junk, sizeof junk, data_start + t / ndevs * S + 100);
}

/* Do both copies of bp hold the same bytes on disk? */
static bool copies_equal(const struct blkptr *bp)
{
    int fd = open(devs[0], O_RDONLY | O_CLOEXEC);
    uint8_t *a = malloc(bp->dva[0].asize), *b = malloc(bp->dva[0].asize);
    bool same = fd >= 0 && a && b &&
                pread(fd, a, bp->dva[0].asize, (off_t)(data_start + bp->dva[0].offset)) ==
                    (ssize_t)bp->dva[0].asize &&
                pread(fd, b, bp->dva[1].asize, (off_t)(data_start + bp->dva[1].offset)) ==
                    (ssize_t)bp->dva[1].asize &&
                memcmp(a, b, bp->dva[0].asize) == 0;
    if (fd >= 0)
        close(fd);
    free(a);
    free(b);
    return same;
}

/* The pool's checksum errors (its leaves', plus a raidz's for blocks no
 * reconstruction verified) and the leaves' repaired bytes. */
static void errors_of(bs_pool *p, uint64_t *cksum, uint64_t *repaired)
{
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    *cksum = st.checksum_errors;
    *repaired = 0;
    for (size_t i = 0; i < st.nvdevs; i++)
        *repaired += st.vdevs[i].repaired_bytes;
}

/* The committed state's pointers, read from an import that writes nothing. */
static void committed(struct census *c, struct blkptr *mosroot)
{
    bs_pool *p = import();
    if (!p)
        return;
    census_of(p, "v", c, false);
    *mosroot = p->mos_od.root;
    data_start = p->top_hdr[0].data_start;
    pool_abandon(p);
}

/* ---- the tests ---- */

static void test_layout(void)
{
    struct berr e = {0};
    bs_pool *p = create(true);
    ok(p != NULL, "(a) pool created, v written");
    if (!p)
        return;
    ok(p->io.ditto && (p->top_hdr[0].features_ro_compat & LABEL_FEAT_RO_DITTO),
       "(a) a new pool writes ditto copies; its labels say so (ro_compat bit 0)");
    struct census c, vc;
    census_of(p, "v", &c, true);
    ok(c.meta > 0 && c.meta2 == c.meta,
       "(a) every metadata block (volume and MOS) has two copies (%llu of %llu)",
       (unsigned long long)c.meta2, (unsigned long long)c.meta);
    ok(c.data == NBLK && c.data2 == 0, "(a) data blocks have one (%llu blocks, %llu with two)",
       (unsigned long long)c.data, (unsigned long long)c.data2);
    ok(c.near == 0, "(a) the copies are on the same top, >= 1/8 of the data area apart (%llu not)",
       (unsigned long long)c.near);
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, "v");
    uint64_t alloc = d->od.allocated, phys = d->od.physical;
    pthread_mutex_unlock(&p->lock);
    census_of(p, "v", &vc, false);
    ok(alloc - phys == vc.meta_bytes && vc.meta_bytes == 2 * vc.meta_dva0,
       "(a) the tree's allocated bytes count both copies of its indirects (%llu bytes of "
       "metadata, %llu per copy)", (unsigned long long)(alloc - phys),
       (unsigned long long)vc.meta_dva0);
    ok(bs_pool_check(p, &e) == 0, "(a) check: %s", e.msg);
    bs_pool_close(p);
}

static void test_heal_dva0(void)
{
    struct census c;
    struct blkptr mos = {0};
    committed(&c, &mos);
    ok(c.nl1 >= 2 && bp_ncopies(&c.l1[1]) == 2 && bp_ncopies(&mos) == 2,
       "(b) a level-1 indirect and the MOS root have two copies");
    smash(&c.l1[1].dva[0]);
    smash(&mos.dva[0]);
    ok(!copies_equal(&c.l1[1]) && !copies_equal(&mos), "(b) DVA 0 of both damaged on disk");
    bs_pool *p = import();
    ok(p && p->rewound_from == 0, "(b) the pool imports without a rewind");
    if (!p)
        return;
    uint32_t eio, bad = verify(p, &eio);
    ok(bad == 0 && eio == 0, "(b) every block reads back right (%u wrong, %u EIO)", bad, eio);
    uint64_t ck, rep;
    errors_of(p, &ck, &rep);
    ok(ck == 2, "(b) two checksum errors counted (%llu)", (unsigned long long)ck);
    ok(rep == (uint64_t)c.l1[1].dva[0].asize + mos.dva[0].asize,
       "(b) both bad copies rewritten (%llu bytes)", (unsigned long long)rep);
    pool_abandon(p);
    ok(copies_equal(&c.l1[1]) && copies_equal(&mos), "(b) on disk both copies are equal again");
    p = import();
    if (p) {
        errors_of(p, &ck, &rep);
        bad = verify(p, &eio);
        ok(bad == 0 && eio == 0 && ck == 0, "(b) the next import reads it all with no error");
        bs_pool_close(p);
    }
}

static void test_scrub_dva1(void)
{
    struct census c;
    struct blkptr mos;
    committed(&c, &mos);
    smash(&c.l1[2].dva[1]);
    smash(&c.root.dva[1]);
    bs_pool *p = import();
    if (!p) {
        ok(0, "(c) import");
        return;
    }
    uint32_t eio, bad = verify(p, &eio);
    uint64_t ck, rep;
    errors_of(p, &ck, &rep);
    ok(bad == 0 && eio == 0 && ck == 0, "(c) DVA 1 damaged: reads use DVA 0, nothing noticed");
    struct berr e = {0};
    bs_pool_scrub(p, BS_SCRUB_START, &e);
    bs_pool_scrub_wait(p);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(strcmp(st.scan.state, "finished") == 0 && st.scan.errors == 0 &&
           st.vdevs[0].checksum_errors == 2 &&
           st.vdevs[0].repaired_bytes == (uint64_t)c.l1[2].dva[1].asize + c.root.dva[1].asize,
       "(c) a scrub finds both and repairs them (%llu errors counted, %llu bytes, %llu "
       "unrepaired)", (unsigned long long)st.vdevs[0].checksum_errors,
       (unsigned long long)st.vdevs[0].repaired_bytes, (unsigned long long)st.scan.errors);
    pool_abandon(p);
    ok(copies_equal(&c.l1[2]) && copies_equal(&c.root), "(c) on disk the copies are equal again");
}

static void test_both_bad(void)
{
    struct census c;
    struct blkptr mos;
    committed(&c, &mos);
    smash(&c.l1[3].dva[0]);
    smash(&c.l1[3].dva[1]);
    bs_pool *p = import();
    if (!p) {
        ok(0, "(d) import");
        return;
    }
    uint32_t eio, bad = verify(p, &eio);
    uint64_t ck, rep;
    errors_of(p, &ck, &rep);
    ok(bad == 0 && eio == 256, "(d) both copies bad: the 256 blocks under it fail with EIO, "
       "never wrong data (%u wrong, %u EIO)", bad, eio);
    ok(ck >= 2 && rep == 0, "(d) counted (%llu), nothing to heal from", (unsigned long long)ck);
    pool_abandon(p); /* the last test of this pool */
}

static void test_frees(void)
{
    struct berr e = {0};
    bs_pool *p = import();
    if (!p) {
        ok(0, "(e) import");
        return;
    }
    const char *s1[] = {"v@s1"}, *s2[] = {"v@s2"};
    int r = bs_snap_create(p, s1, 1, &e);
    r = r ?: write_range(p, "v", 0, NBLK / 2);
    r = r ?: bs_snap_create(p, s2, 1, &e);
    r = r ?: write_range(p, "v", NBLK / 4, NBLK / 2);
    ok(r == 0, "(e) snapshots and overwrites: %s", e.msg);
    struct census c;
    census_of(p, "v", &c, false);
    ok(c.meta2 == c.meta && c.meta > 0, "(e) the deadlist object has two copies too");
    ok(bs_pool_check(p, &e) == 0, "(e) check with snapshots: %s", e.msg);
    r = bs_snap_destroy(p, "v@s1", 0, &e);
    ok(r == 0 && bs_pool_check(p, &e) == 0, "(e) destroy the older snapshot, check: %s", e.msg);
    r = bs_snap_destroy(p, "v@s2", 0, &e);
    ok(r == 0 && bs_pool_check(p, &e) == 0, "(e) destroy the other, check: %s", e.msg);
    uint32_t eio, bad = verify(p, &eio);
    ok(bad == 0 && eio == 0, "(e) v reads back");
    /* a second volume, destroyed: all of its space (both copies) returns */
    struct bs_pool_stats st0, st1;
    bs_pool_sync(p, &e);
    bs_pool_stats(p, &st0);
    struct bs_vol_props vp;
    bs_vol_props_init(p, &vp);
    snprintf(vp.name, sizeof vp.name, "w");
    vp.volsize = (uint64_t)NBLK * BS;
    vp.volblocksize = BS;
    r = bs_vol_create(p, &vp, false, &e);
    uint32_t saved[NBLK];
    memcpy(saved, tags, sizeof tags);
    r = r ?: write_range(p, "w", 0, NBLK);
    memcpy(tags, saved, sizeof tags);
    r = r ?: bs_vol_destroy(p, "w", false, &e);
    for (int i = 0; i < 6 && r == 0; i++) /* deferred frees drain */
        r = bs_pool_sync(p, &e);
    bs_pool_stats(p, &st1);
    ok(r == 0 && st1.allocated == st0.allocated,
       "(e) a destroyed volume gives back all its space (%llu -> %llu): %s",
       (unsigned long long)st0.allocated, (unsigned long long)st1.allocated, e.msg);
    ok(bs_pool_check(p, &e) == 0, "(e) check: %s", e.msg);
    bs_pool_close(p);
}

static void test_old_pool(void)
{
    struct berr e = {0};
    bs_pool *p = create(false);
    ok(p != NULL && !p->io.ditto, "(f) a pool as a berth before ditto copies wrote it");
    if (!p)
        return;
    struct census c;
    census_of(p, "v", &c, true);
    ok(c.meta > 0 && c.meta2 == 0, "(f) its metadata has one copy (%llu blocks)",
       (unsigned long long)c.meta);
    bs_pool_close(p);
    p = import();
    ok(p && p->io.ditto && (p->top_hdr[0].features_ro_compat & LABEL_FEAT_RO_DITTO),
       "(f) it imports; the labels get the ro_compat bit and new writes get ditto copies");
    if (!p)
        return;
    uint32_t eio, bad = verify(p, &eio);
    ok(bad == 0 && eio == 0, "(f) it reads back");
    write_range(p, "v", 0, 256); /* rewrites the first level-1 indirect and the root */
    census_of(p, "v", &c, false);
    ok(bp_ncopies(&c.l1[0]) == 2 && bp_ncopies(&c.root) == 2 && bp_ncopies(&c.l1[5]) == 1,
       "(f) rewritten indirects have two copies, untouched ones still one");
    ok(bs_pool_check(p, &e) == 0, "(f) check with both kinds: %s", e.msg);
    const char *s1[] = {"v@old"};
    int r = bs_snap_create(p, s1, 1, &e);
    r = r ?: write_range(p, "v", 0, NBLK);
    r = r ?: bs_snap_destroy(p, "v@old", 0, &e);
    ok(r == 0 && bs_pool_check(p, &e) == 0, "(f) single copies freed through a deadlist: %s",
       e.msg);
    bad = verify(p, &eio);
    ok(bad == 0 && eio == 0, "(f) v reads back");
    bs_pool_close(p);
}

/* (g) the same on a mirror and a raidz: DVA 0 of an indirect and of the
 * MOS root bad on every leaf (beyond what the vdev can repair): the ditto
 * copies bring them back, every copy is rewritten. */
static void test_redundant(const char *kind, size_t n)
{
    char name[32];
    layout = kind;
    ndevs = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s-%zu.img", kind, i);
        devs[i] = strdup(tmp_path(name));
    }
    bs_pool *p = create(true);
    ok(p != NULL, "(g) %s of %zu: pool created, v written", kind, n);
    if (!p)
        return;
    struct census c;
    census_of(p, "v", &c, true);
    ok(c.meta > 0 && c.meta2 == c.meta && c.data2 == 0 && c.near == 0,
       "(g) %s: metadata has two copies far apart, data one", kind);
    bs_pool_close(p);
    struct blkptr mos = {0};
    committed(&c, &mos);
    smash(&c.l1[1].dva[0]);
    smash(&mos.dva[0]);
    p = import();
    ok(p && p->rewound_from == 0, "(g) %s: imports without a rewind", kind);
    if (!p)
        return;
    uint32_t eio, bad = verify(p, &eio);
    uint64_t ck, rep;
    errors_of(p, &ck, &rep);
    ok(bad == 0 && eio == 0, "(g) %s: every block reads back right (%u wrong, %u EIO)", kind,
       bad, eio);
    ok(ck >= 2 && rep >= (uint64_t)c.l1[1].dva[0].asize + mos.dva[0].asize,
       "(g) %s: counted (%llu checksum errors) and rewritten (%llu bytes)", kind,
       (unsigned long long)ck, (unsigned long long)rep);
    pool_abandon(p);
    if (strcmp(kind, "mirror") == 0)
        ok(copies_equal(&c.l1[1]) && copies_equal(&mos), "(g) %s: on disk the copies are equal",
           kind);
    p = import();
    if (p) {
        bad = verify(p, &eio);
        errors_of(p, &ck, &rep);
        ok(bad == 0 && eio == 0 && ck == 0, "(g) %s: the next import reads all with no error "
           "(%llu)", kind, (unsigned long long)ck);
        struct berr e = {0};
        ok(bs_pool_check(p, &e) == 0, "(g) %s: check: %s", kind, e.msg);
        bs_pool_close(p);
    }
    for (size_t i = 0; i < n; i++) {
        unlink(devs[i]);
        free((void *)devs[i]);
    }
}

/* (h) a resilver copies the ditto copies too: a single device with ditto
 * copies gets a mirror member attached, resilvered, then the original is
 * detached; on the new device alone, DVA 0 of an indirect damaged reads
 * from its DVA 1 (which only the resilver put there). */
static void test_attach(void)
{
    struct berr e = {0};
    layout = NULL;
    ndevs = 1;
    devs[0] = img;
    bs_pool *p = create(true);
    if (!p) {
        ok(0, "(h) create");
        return;
    }
    char *att = strdup(tmp_path("attached.img"));
    ok(bs_pool_attach(p, img, att, false, &e) == 0 && bs_pool_resilver_wait(p),
       "(h) attach a member, resilvered: %s", e.msg);
    ok(bs_pool_detach(p, img, &e) == 0, "(h) detach the original: %s", e.msg);
    bs_pool_close(p);
    devs[0] = att;
    struct census c;
    struct blkptr mos;
    committed(&c, &mos);
    smash(&c.l1[4].dva[0]);
    smash(&mos.dva[0]);
    p = import();
    ok(p != NULL, "(h) the new device alone imports with DVA 0 of the MOS root damaged");
    if (p) {
        uint32_t eio, bad = verify(p, &eio);
        uint64_t ck, rep;
        errors_of(p, &ck, &rep);
        ok(bad == 0 && eio == 0 && ck >= 2 && rep > 0,
           "(h) it reads back from the resilvered ditto copies (%u wrong, %u EIO, %llu "
           "errors, %llu bytes healed)", bad, eio, (unsigned long long)ck,
           (unsigned long long)rep);
        ok(bs_pool_check(p, &e) == 0, "(h) check: %s", e.msg);
        bs_pool_close(p);
    }
    devs[0] = img;
    unlink(att);
    free(att);
}

int main(void)
{
    img = strdup(tmp_path("ditto.img"));
    devs[0] = img;
    test_layout();
    test_heal_dva0();
    test_scrub_dva1();
    test_frees();
    test_both_bad();
    test_old_pool();
    test_attach();
    test_redundant("mirror", 2);
    test_redundant("raidz1", 3);
    tmp_cleanup();
    return tap_done();
}
