/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshots, clones, rollback, promote against an in-memory model: random
 * writes, zeroes, snapshots, snapshot destroys in random order, rollbacks to
 * any snapshot, clones and clone destroys, with bs_pool_check (leaks, double
 * references and per-dataset space accounting) and a byte-for-byte compare
 * of every volume and snapshot after each step; export/import and crash
 * (abandon without sync) round trips. */
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"
#include "store/pool_impl.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define VOLSZ (8 * MiB)
#define MAXDS 64

struct mds {
    char name[BS_SNAP_NAME_MAX];
    uint8_t *data;
};

static struct mds model[MAXDS];
static size_t nmodel;
static const char *path;

static struct mds *mfind(const char *name)
{
    for (size_t i = 0; i < nmodel; i++)
        if (strcmp(model[i].name, name) == 0)
            return &model[i];
    return NULL;
}

static struct mds *madd(const char *name, const uint8_t *src)
{
    struct mds *m = &model[nmodel++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->data = malloc(VOLSZ);
    if (src)
        memcpy(m->data, src, VOLSZ);
    else
        memset(m->data, 0, VOLSZ);
    return m;
}

static void mdel(const char *name)
{
    struct mds *m = mfind(name);
    free(m->data);
    *m = model[--nmodel];
}

static bool quiet;

static int compare_all(bs_pool *p)
{
    int bad = 0;
    uint8_t *buf = malloc(VOLSZ);
    for (size_t i = 0; i < nmodel; i++) {
        bs_vol *v;
        struct berr e = {0};
        if (bs_vol_open(p, model[i].name, &v, &e) < 0) {
            diag("open %s: %s", model[i].name, e.msg);
            bad++;
            continue;
        }
        if (bs_vol_pread(v, buf, VOLSZ, 0) < 0 || memcmp(buf, model[i].data, VOLSZ) != 0) {
            if (!quiet)
                diag("%s differs from the model", model[i].name);
            bad++;
        }
        bs_vol_close(v);
    }
    free(buf);
    return bad;
}

struct usum {
    bs_pool *p;
    uint64_t sum;
};

static int add_used(const struct bs_vol_props *pr, void *o)
{
    struct usum *u = o;
    struct bs_vol_space sp;
    if (bs_vol_space(u->p, pr->name, &sp, NULL) == 0)
        u->sum += sp.used - sp.usedbyrefreservation;
    return 0;
}

/* The space of every volume (dataset + snapshots + deadlists) plus the pool
 * directory adds up to the pool's allocated bytes, exactly (after a sync). */
static int space_adds_up(bs_pool *p, const char *when)
{
    struct usum u = { .p = p };
    bs_vol_list(p, add_used, &u, NULL);
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    uint64_t mos = p->mos_od.allocated;
    if (u.sum + mos != st.allocated) {
        diag("after %s: volumes use %llu + directory %llu != pool allocated %llu", when,
             (unsigned long long)u.sum, (unsigned long long)mos,
             (unsigned long long)st.allocated);
        return -1;
    }
    return 0;
}

static int check(bs_pool *p, const char *when)
{
    struct berr e = {0};
    int r = bs_pool_check(p, &e);
    if (r < 0)
        diag("check after %s: %s", when, e.msg);
    if (r == 0 && space_adds_up(p, when) < 0)
        r = -EILSEQ;
    return r;
}

static bs_pool *reopen(bs_pool *p, bool crash)
{
    struct berr e = {0};
    if (crash)
        pool_abandon(p);
    else
        bs_pool_close(p);
    const char *v[] = { path };
    bs_pool *np = NULL;
    if (bs_pool_import(v, 1, NULL, &np, &e) < 0)
        diag("import: %s", e.msg);
    return np;
}

static void vwrite(bs_pool *p, const char *vol, uint64_t off, uint64_t len, uint32_t tag,
                   bool zero)
{
    bs_vol *v;
    struct berr e = {0};
    if (bs_vol_open(p, vol, &v, &e) < 0) {
        diag("open %s: %s", vol, e.msg);
        return;
    }
    struct mds *m = mfind(vol);
    if (zero) {
        bs_vol_zero(v, len, off, 0);
        memset(m->data + off, 0, len);
    } else {
        pattern(m->data + off, len, off, tag);
        bs_vol_pwrite(v, m->data + off, len, off, 0);
    }
    bs_vol_close(v);
}

static void basics(void)
{
    struct berr e = {0};
    const char *v[] = { path };
    bs_pool *p;
    ok(bs_pool_create("s", v, 1, 256 * MiB, NULL, &p, &e) == 0, "create pool");
    struct bs_vol_props pr;
    bs_vol_props_init(p, &pr);
    snprintf(pr.name, sizeof pr.name, "vol");
    pr.volsize = VOLSZ;
    ok(bs_vol_create(p, &pr, false, &e) == 0, "create volume");
    madd("vol", NULL);
    vwrite(p, "vol", 0, VOLSZ, 1, false);
    const char *n1[] = { "vol@a" };
    ok(bs_snap_create(p, n1, 1, &e) == 0, "snapshot vol@a");
    madd("vol@a", mfind("vol")->data);
    ok(bs_snap_create(p, n1, 1, &e) == -EEXIST, "duplicate snapshot refused");
    const char *bad[] = { "vol@" };
    ok(bs_snap_create(p, bad, 1, &e) == -EINVAL, "empty snapshot part refused: %s", e.msg);
    const char *nov[] = { "nov@x" };
    ok(bs_snap_create(p, nov, 1, &e) == -ENOENT, "snapshot of a missing volume refused");
    vwrite(p, "vol", 100000, 300000, 2, false);
    vwrite(p, "vol", 2 * MiB, MiB, 0, true);
    ok(compare_all(p) == 0, "snapshot keeps old bytes after overwrite and zero");
    bs_vol *sv;
    ok(bs_vol_open(p, "vol@a", &sv, &e) == 0 && bs_vol_readonly(sv), "snapshot opens read-only");
    uint8_t b[4096] = {0};
    ok(bs_vol_pwrite(sv, b, sizeof b, 0, 0) == -EROFS, "write to a snapshot fails EROFS");
    ok(bs_snap_destroy(p, "vol@a", 0, &e) == -EBUSY, "open snapshot not destroyed: %s", e.msg);
    bs_vol_close(sv);
    ok(check(p, "basics") == 0, "pool check with a snapshot");

    const char *n2[] = { "vol@b" };
    ok(bs_snap_create(p, n2, 1, &e) == 0, "snapshot vol@b");
    madd("vol@b", mfind("vol")->data);
    vwrite(p, "vol", 0, 3 * MiB, 3, false);
    /* rollback to the OLDER snapshot keeps the newer one */
    ok(bs_vol_rollback(p, "vol@a", 0, &e) == 0, "rollback to the older snapshot: %s", e.msg);
    memcpy(mfind("vol")->data, mfind("vol@a")->data, VOLSZ);
    ok(compare_all(p) == 0, "volume = @a, @b still intact");
    ok(check(p, "rollback") == 0, "pool check after rollback");
    ok(bs_snap_destroy(p, "vol@a", 0, &e) == -EBUSY, "@a has two dependents: %s", e.msg);

    ok(bs_snap_hold(p, "vol@b", "keep", &e) == 0, "hold @b");
    ok(bs_snap_hold(p, "vol@b", "keep", &e) == -EEXIST, "same hold twice refused");
    ok(bs_snap_destroy(p, "vol@b", 0, &e) == -EBUSY, "held snapshot not destroyed: %s", e.msg);
    ok(bs_snap_release(p, "vol@b", "nope", &e) == -ENOENT, "release of unknown tag refused");
    ok(bs_snap_release(p, "vol@b", "keep", &e) == 0, "release @b");
    ok(bs_snap_destroy(p, "vol@b", 0, &e) == 0, "destroy @b (no children)");
    mdel("vol@b");
    ok(check(p, "destroy @b") == 0, "pool check after destroying a childless snapshot");

    /* clone and promote */
    ok(bs_vol_clone(p, "vol@a", "cl", NULL, &e) == 0, "clone vol@a -> cl");
    madd("cl", mfind("vol@a")->data);
    vwrite(p, "cl", 5 * MiB, MiB, 4, false);
    ok(bs_vol_destroy_ex(p, "vol", BS_DESTROY_RECURSIVE, &e) == -EBUSY,
       "origin volume with a clone not destroyed: %s", e.msg);
    struct bs_vol_space sp;
    ok(bs_vol_space(p, "cl", &sp, &e) == 0 && strcmp(sp.origin, "vol@a") == 0, "clone origin");
    ok(bs_vol_promote(p, "cl", &e) == 0, "promote cl");
    ok(bs_vol_space(p, "vol", &sp, &e) == 0 && strcmp(sp.origin, "cl@a") == 0,
       "after promote vol is a clone of cl@a (origin '%s')", sp.origin);
    snprintf(mfind("vol@a")->name, sizeof model[0].name, "cl@a");
    ok(compare_all(p) == 0, "contents after promote");
    ok(bs_vol_destroy_ex(p, "vol", BS_DESTROY_RECURSIVE, &e) == 0, "destroy old origin: %s",
       e.msg);
    mdel("vol");
    ok(compare_all(p) == 0 && check(p, "promote") == 0, "clone intact and pool consistent");
    p = reopen(p, false);
    ok(p && compare_all(p) == 0 && check(p, "reopen") == 0, "after close/import");
    ok(bs_vol_destroy_ex(p, "cl", 0, &e) == -EBUSY, "volume with snapshots needs -r");
    ok(bs_vol_destroy_ex(p, "cl", BS_DESTROY_RECURSIVE, &e) == 0, "destroy -r cl");
    mdel("cl");
    mdel("cl@a");
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(check(p, "all gone") == 0, "no leaks when everything is destroyed");
    diag("allocated with no volumes: %llu", (unsigned long long)st.allocated);
    bs_pool_close(p);
}

/* Random operations; returns nothing, reports through ok(). */
static void random_ops(uint64_t seed, int steps)
{
    struct berr e = {0};
    const char *v[] = { path };
    bs_pool *p;
    if (bs_pool_create("r", v, 1, 512 * MiB, NULL, &p, &e) < 0) {
        ok(0, "create: %s", e.msg);
        return;
    }
    uint64_t base_alloc;
    {
        struct bs_pool_stats st;
        bs_pool_stats(p, &st);
        base_alloc = st.allocated;
    }
    struct bs_vol_props pr;
    bs_vol_props_init(p, &pr);
    snprintf(pr.name, sizeof pr.name, "v0");
    pr.volsize = VOLSZ;
    bs_vol_create(p, &pr, false, &e);
    madd("v0", NULL);
    int nsnap = 0, nvol = 1, fails = 0;
    for (int step = 0; step < steps; step++) {
        uint64_t r = xrand(&seed) % 100;
        /* a random volume and a random snapshot of the model */
        const char *vols[MAXDS], *snaps[MAXDS];
        size_t nv = 0, ns = 0;
        for (size_t i = 0; i < nmodel; i++) {
            if (strchr(model[i].name, '@'))
                snaps[ns++] = model[i].name;
            else
                vols[nv++] = model[i].name;
        }
        const char *vol = nv ? vols[xrand(&seed) % nv] : NULL;
        const char *snap = ns ? snaps[xrand(&seed) % ns] : NULL;
        char nm[BS_SNAP_NAME_MAX];
        if (r < 45 && vol) {
            uint64_t off = xrand(&seed) % VOLSZ, len = 1 + xrand(&seed) % (512 * 1024);
            if (len > VOLSZ - off)
                len = VOLSZ - off;
            vwrite(p, vol, off, len, (uint32_t)step, r < 8);
        } else if (r < 60 && vol && nmodel < MAXDS - 2) {
            snprintf(nm, sizeof nm, "%s@s%d", vol, nsnap++);
            const char *n1[] = { nm };
            if (bs_snap_create(p, n1, 1, &e) < 0) {
                diag("snapshot %s: %s", nm, e.msg);
                fails++;
            } else {
                madd(nm, mfind(vol)->data);
            }
        } else if (r < 72 && snap) {
            int rr = bs_snap_destroy(p, snap, 0, &e);
            if (rr == 0)
                mdel(snap);
            else if (rr != -EBUSY) {
                diag("destroy %s: %s", snap, e.msg);
                fails++;
            }
        } else if (r < 80 && snap) {
            char vn[64];
            snprintf(vn, sizeof vn, "%.*s", (int)(strchr(snap, '@') - snap), snap);
            if (mfind(vn)) {
                if (bs_vol_rollback(p, snap, 0, &e) < 0) {
                    diag("rollback %s: %s", snap, e.msg);
                    fails++;
                } else {
                    memcpy(mfind(vn)->data, mfind(snap)->data, VOLSZ);
                }
            }
        } else if (r < 86 && snap && nmodel < MAXDS - 2) {
            snprintf(nm, sizeof nm, "c%d", nvol++);
            if (bs_vol_clone(p, snap, nm, NULL, &e) < 0) {
                diag("clone %s: %s", snap, e.msg);
                fails++;
            } else {
                madd(nm, mfind(snap)->data);
            }
        } else if (r < 90 && vol && nv > 1) {
            int rr = bs_vol_destroy_ex(p, vol, BS_DESTROY_RECURSIVE, &e);
            if (rr == 0) {
                char pre[80];
                snprintf(pre, sizeof pre, "%s@", vol);
                for (size_t i = nmodel; i-- > 0;)
                    if (strncmp(model[i].name, pre, strlen(pre)) == 0)
                        mdel(model[i].name);
                mdel(vol);
            } else if (rr != -EBUSY) {
                diag("destroy -r %s: %s", vol, e.msg);
                fails++;
            }
        } else if (r < 93) {
            /* a crash loses unflushed writes: flush first, so the model
             * holds; admin changes are durable on return anyway */
            if (r == 92)
                bs_pool_sync(p, NULL);
            p = reopen(p, r == 92);
            if (!p) {
                ok(0, "reimport at step %d", step);
                return;
            }
        } else {
            bs_pool_sync(p, NULL);
            if (check(p, "random step") < 0 || compare_all(p) != 0) {
                ok(0, "consistent at step %d", step);
                fails++;
                break;
            }
        }
    }
    ok(fails == 0, "random ops (seed-driven, %d steps): no failures", steps);
    ok(compare_all(p) == 0, "every volume, clone and snapshot matches the model");
    ok(check(p, "random ops") == 0, "pool check: no leak, accounting exact");
    /* destroy everything: the pool must return to its empty size.  A
     * volume whose snapshots have clones cannot go; promoting one clone at
     * a time (when no destroy succeeds) untangles any lineage. */
    for (int round = 0; nmodel && round < 200; round++) {
        bool progress = false;
        for (size_t i = nmodel; i-- > 0;) {
            if (i >= nmodel || strchr(model[i].name, '@'))
                continue;
            char vn[64];
            snprintf(vn, sizeof vn, "%s", model[i].name);
            if (bs_vol_destroy_ex(p, vn, BS_DESTROY_RECURSIVE, &e) == 0) {
                char pre[80];
                snprintf(pre, sizeof pre, "%s@", vn);
                for (size_t k = nmodel; k-- > 0;)
                    if (strncmp(model[k].name, pre, strlen(pre)) == 0)
                        mdel(model[k].name);
                mdel(vn);
                progress = true;
            }
        }
        if (progress)
            continue;
        for (size_t i = 0; i < nmodel; i++) {
            if (strchr(model[i].name, '@'))
                continue;
            struct bs_vol_space sp;
            if (bs_vol_space(p, model[i].name, &sp, NULL) == 0 && sp.origin[0] &&
                (xrand(&seed) & 1) && bs_vol_promote(p, model[i].name, NULL) == 0) {
                /* the moved snapshots change owner in the model too */
                char ovol[64];
                snprintf(ovol, sizeof ovol, "%.*s", (int)(strchr(sp.origin, '@') - sp.origin),
                         sp.origin);
                for (size_t k = 0; k < nmodel; k++) {
                    char nn[BS_SNAP_NAME_MAX];
                    const char *at = strchr(model[k].name, '@');
                    if (!at || strncmp(model[k].name, ovol, strlen(ovol)) != 0 ||
                        model[k].name[strlen(ovol)] != '@')
                        continue;
                    snprintf(nn, sizeof nn, "%s%s", model[i].name, at);
                    struct bs_snap_props spp;
                    if (bs_snap_get(p, nn, &spp, NULL) == 0)
                        snprintf(model[k].name, sizeof model[k].name, "%s", nn);
                }
                break;
            }
        }
    }
    ok(nmodel == 0, "all volumes destroyed (%zu left)", nmodel);
    bs_pool_sync(p, NULL);
    ok(check(p, "all destroyed") == 0, "pool check after destroying everything");
    struct bs_pool_stats st;
    bs_pool_stats(p, &st);
    ok(st.allocated <= base_alloc + 64 * 1024,
       "allocated space back to the empty pool's (%llu vs %llu)",
       (unsigned long long)st.allocated, (unsigned long long)base_alloc);
    bs_pool_close(p);
}

/* Power cut (torn write, then a dead device) at every point of a sequence
 * of snapshot operations: after import the pool checks clean, every
 * snapshot that exists holds exactly its bytes, and every operation that
 * returned success is there. */
static void crash_points(void)
{
    int bad = 0, points = 0, all = 0;
    for (int n = 1; n <= 60; n++) {
        struct berr e = {0};
        const char *v[] = { path };
        bs_pool *p;
        unlink(path);
        if (bs_pool_create("k", v, 1, 128 * MiB, NULL, &p, &e) < 0)
            break;
        struct bs_vol_props pr;
        bs_vol_props_init(p, &pr);
        snprintf(pr.name, sizeof pr.name, "v");
        pr.volsize = VOLSZ;
        bs_vol_create(p, &pr, false, &e);
        madd("v", NULL);
        vwrite(p, "v", 0, VOLSZ, 1, false);
        const char *s1[] = { "v@s1" }, *s2[] = { "v@s2" }, *s3[] = { "v@s3" };
        bs_snap_create(p, s1, 1, &e);
        madd("v@s1", mfind("v")->data);
        vwrite(p, "v", MiB, 3 * MiB, 2, false);
        bs_snap_create(p, s2, 1, &e);
        madd("v@s2", mfind("v")->data);
        vwrite(p, "v", 2 * MiB, 4 * MiB, 3, false);
        bs_pool_sync(p, NULL);
        char knob[64];
        snprintf(knob, sizeof knob, "torn_write_after=%d", n);
        bs_pool_debug(p, knob, &e);
        bool d1 = bs_snap_destroy(p, "v@s1", 0, &e) == 0;
        bool c3 = d1 && bs_snap_create(p, s3, 1, &e) == 0;
        bool rb = c3 && bs_vol_rollback(p, "v@s2", 0, &e) == 0;
        bool cl = rb && bs_vol_clone(p, "v@s3", "c", NULL, &e) == 0;
        all += cl;
        struct mds *mv = mfind("v");
        uint8_t *before = malloc(VOLSZ);
        memcpy(before, mv->data, VOLSZ);
        p = reopen(p, true);
        points++;
        if (!p) {
            bad++;
            continue;
        }
        struct bs_snap_props sp;
        bool has1 = bs_snap_get(p, "v@s1", &sp, NULL) == 0;
        bool has3 = bs_snap_get(p, "v@s3", &sp, NULL) == 0;
        bool hasc = bs_vol_space(p, "c", &(struct bs_vol_space){0}, NULL) == 0;
        if (check(p, "crash") < 0 || (d1 && has1) || (c3 && !has3) || (cl && !hasc))
            bad++;
        if (!has1)
            mdel("v@s1");
        if (has3)
            madd("v@s3", before);
        if (hasc)
            madd("c", before);
        /* v is either as before the rollback or as @s2 */
        quiet = true;
        int diff = compare_all(p);
        quiet = false;
        if (diff) {
            memcpy(mv->data, mfind("v@s2")->data, VOLSZ);
            diff = compare_all(p);
        }
        bad += diff != 0;
        free(before);
        while (nmodel)
            mdel(model[0].name);
        bs_pool_close(p);
    }
    ok(all > 0 && all < points, "cuts fell before, inside and after the sequence (%d of %d "
       "completed it)", all, points);
    ok(points > 0 && bad == 0, "power cut at %d points of destroy/snapshot/rollback/clone: "
       "consistent, completed operations durable (%d bad)", points, bad);
}

int main(void)
{
    path = tmp_path("snap.img");
    basics();
    unlink(path);
    crash_points();
    unlink(path);
    /* BERTH_LONG=1 (make check-long): many more seeds */
    uint64_t nseeds = getenv("BERTH_LONG") ? 40 : 3;
    for (uint64_t seed = 1; seed <= nseeds; seed++) {
        random_ops(seed * 7919, 300);
        while (nmodel)
            mdel(model[0].name);
        unlink(path);
    }
    tmp_cleanup();
    return done_testing();
}
