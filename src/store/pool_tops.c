/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Several top-level vdevs per pool: parsing "mirror A B mirror C D", the
 * pool's tree as the uberblocks record it, the per-top allocation maps and
 * their combined digest, the sync steps over all tops, pool-wide leaf
 * numbering, per-top statistics, and growing a pool online (bs_pool_add).
 *
 * Invariants:
 *  - top i is p->io.top[i] (vdev, allocation map, data size) with its label
 *    template p->top_hdr[i]; a DVA's vdev field is i.  Entries below
 *    io.ntops never change while the pool is open; tops are only added;
 *  - the committed tree is the top list of the newest uberblock (none: top
 *    0 alone, the format of a pool that never had more); every uberblock is
 *    written to every leaf of every top, and its guid sum covers all of them;
 *  - io.ntops changes only under txg.sync_mutex, so one txg writes its maps,
 *    flushes and uberblock over one tree;
 *  - a top added by bs_pool_add takes no allocations (active false) until
 *    the txg whose uberblock lists it is durable.
 *
 * The order of a pool add (FORMAT.md 2), each step durable before the next:
 *  1. the new top's labels (its top_id, the multi-top feature) and its
 *     empty allocation map, stamped with the committed txg;
 *  2. the old tops' labels get the multi-top feature (so that a version
 *     without it refuses the pool instead of importing part of it);
 *  3. under sync_mutex the top joins io.ntops; the next txg's uberblock,
 *     written to all tops, lists it: that txg is the switch.
 * A crash before 3 is durable leaves the old tree in the newest uberblock:
 * import ignores (and closes) the new top's devices if given.  After it, the
 * pool imports with the new top, and fails with a clear error without it.
 * Crash points (crashpt.h, tests/func/t-vdev-crash.sh): add_labels (1, no
 * map yet), add_map (1 done), label_copy/label_torn (2 in the middle: old
 * tops' labels differ only by the feature bit and their generation),
 * label_power (a power cut in a phase of a label write, label.c: in 1 a new
 * device may be left without a whole copy, which import sets aside since
 * the tree in force misses no member; in 2 an old leaf keeps two whole
 * copies, old or new),
 * add_old_labels (2 done), commit_ub (3: top 0 lists the new top, the others
 * do not have the txg yet: the newest uberblock decides, the tops behind are
 * one txg behind, which is consistent), add_committed (3 done). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/le.h"
#include "common/log.h"
#include "common/util.h"
#include "store/crashpt.h"
#include "store/pool_impl.h"

/* ---- specs ---- */

static bool is_keyword(const char *s)
{
    return strcmp(s, "mirror") == 0 || strncmp(s, "raidz", 5) == 0;
}

/* "mirror", "raidz2", "single" for messages and stats */
static void kind_name(int top_type, unsigned nparity, char *buf, size_t len)
{
    if (top_type == VDEV_TYPE_RAIDZ)
        snprintf(buf, len, "raidz%u", nparity);
    else
        snprintf(buf, len, "%s", top_type == VDEV_TYPE_MIRROR ? "mirror" : "single");
}

/* Do two tops have the same replication (kind, parity, width)? */
static bool same_level(int type_a, unsigned par_a, unsigned n_a, int type_b, unsigned par_b,
                       unsigned n_b)
{
    return type_a == type_b && par_a == par_b && n_a == n_b;
}

static int mismatch(int ta, unsigned pa, unsigned na, int tb, unsigned pb, unsigned nb,
                    struct berr *err)
{
    char a[16], b[16];
    kind_name(ta, pa, a, sizeof a);
    kind_name(tb, pb, b, sizeof b);
    return berr_set(err, EINVAL, "mismatched replication level: a %u-device %s and a "
                    "%u-device %s top-level vdev would protect the pool's data unequally; "
                    "use -f (force) to mix them", na, a, nb, b);
}

int pool_tops_spec(const char *const *vdevs, size_t n, bool force, struct vdev_spec *specs,
                   unsigned *nspecs, struct berr *err)
{
    *nspecs = 0;
    if (n == 0)
        return berr_set(err, EINVAL, "no vdevs given");
    for (size_t i = 0; i < n; i++)
        if (!vdevs[i] || !vdevs[i][0])
            return berr_set(err, EINVAL, "empty device path");
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        if (is_keyword(vdevs[i]))
            while (j < n && !is_keyword(vdevs[j]))
                j++;
        if (*nspecs == BLK_MAX_TOPS)
            return berr_set(err, ENOSPC, "at most %d top-level vdevs per pool", BLK_MAX_TOPS);
        int r = pool_vdev_spec(vdevs + i, j - i, &specs[*nspecs], err);
        if (r < 0)
            return r;
        (*nspecs)++;
        i = j;
    }
    /* device paths are unique across the pool */
    for (unsigned a = 0; a < *nspecs; a++)
        for (unsigned b = 0; b < a; b++)
            for (unsigned x = 0; x < specs[a].n; x++)
                for (unsigned y = 0; y < specs[b].n; y++)
                    if (strcmp(specs[a].paths[x], specs[b].paths[y]) == 0)
                        return berr_set(err, EINVAL, "device %s is given twice",
                                        specs[a].paths[x]);
    for (unsigned a = 1; a < *nspecs && !force; a++)
        if (!same_level(specs[a].top_type, specs[a].nparity, specs[a].n, specs[0].top_type,
                        specs[0].nparity, specs[0].n))
            return mismatch(specs[0].top_type, specs[0].nparity, specs[0].n, specs[a].top_type,
                            specs[a].nparity, specs[a].n, err);
    return 0;
}

/* ---- the tree ---- */

uint64_t pool_tops_guid_sum(bs_pool *p, unsigned ntops)
{
    uint64_t sum = 0;
    for (unsigned t = 0; t < ntops; t++)
        for (uint64_t i = 0; i < p->top_hdr[t].nchildren; i++)
            sum += p->top_hdr[t].child_guids[i];
    return sum;
}

int pool_tops_for_ub(bs_pool *p, const struct uberblock *ub, const bool found[BLK_MAX_TOPS],
                     struct berr *err)
{
    unsigned nt = ub->ntops ? ub->ntops : 1;
    for (unsigned t = 0; t < nt; t++) {
        /* a legacy uberblock (no list) names top 0 by the labels' top guid */
        if (!found[t])
            return berr_set(err, ENXIO, "pool '%s' cannot be imported: its top-level vdev %u "
                            "(guid %016llx) is missing: none of its devices was given or has "
                            "its label (the pool has %u top-level vdevs as of txg %llu; give "
                            "the devices of all of them)%s%s%s", p->name, t,
                            (unsigned long long)(ub->ntops ? ub->top_guids[t] : 0), nt,
                            (unsigned long long)ub->txg,
                            p->import_damaged[0] ? "; no valid label on " : "",
                            p->import_damaged, p->import_damaged[0] ? " (damaged)" : "");
        if (ub->ntops && p->top_hdr[t].top_guid != ub->top_guids[t])
            return berr_set(err, EILSEQ, "pool '%s': the devices labelled as top-level vdev %u "
                            "(guid %016llx) are not the one txg %llu names (guid %016llx)",
                            p->name, t, (unsigned long long)p->top_hdr[t].top_guid,
                            (unsigned long long)ub->txg,
                            (unsigned long long)ub->top_guids[t]);
    }
    atomic_store(&p->io.ntops, nt);
    p->guid_sum = pool_tops_guid_sum(p, nt);
    return 0;
}

void pool_tops_drop_unlisted(bs_pool *p, const bool found[BLK_MAX_TOPS])
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = nt; t < BLK_MAX_TOPS; t++) {
        if (!found[t] || !p->io.top[t].vd)
            continue;
        blog_warn("pool '%s': top-level vdev %u (%s%s) is not part of the committed pool "
                  "(an interrupted pool add?): left alone", p->name, t,
                  vdev_leaf(p->io.top[t].vd, 0)->path,
                  vdev_nleaves(p->io.top[t].vd) > 1 ? ", ..." : "");
        vdev_close(p->io.top[t].vd);
        p->io.top[t].vd = NULL;
    }
}

int pool_tops_setup_io(bs_pool *p)
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++) {
        const struct label_hdr *h = &p->top_hdr[t];
        struct blk_top *bt = &p->io.top[t];
        vdev_set_data(bt->vd, h->ashift, h->data_start, h->data_end - h->data_start);
        bt->data_size = bt->vd->data_size; /* a raidz's spans all its leaves */
        atomic_store(&bt->active, true);
    }
    p->io.ashift = p->top_hdr[0].ashift;
    memcpy(p->name, p->top_hdr[0].pool_name, sizeof p->name); /* NUL-padded in labels */
    p->name[sizeof p->name - 1] = 0;
    p->guid = p->top_hdr[0].pool_guid;
    if (!p->io.rotor) {
        p->io.rotor = calloc(1, sizeof *p->io.rotor);
        if (!p->io.rotor)
            return -ENOMEM;
        pthread_mutex_init(&p->io.rotor->lock, NULL);
    }
    return 0;
}

/* ---- allocation maps ---- */

uint32_t pool_tops_digest(bs_pool *p, uint64_t txg, uint8_t out[16])
{
    unsigned nt = atomic_load(&p->io.ntops);
    if (nt == 1)
        return alloc_digest(p->io.top[0].alloc, txg, out);
    /* the tops' digests, each as two little-endian u64 (low, high) */
    uint64_t words[2 * BLK_MAX_TOPS];
    uint32_t chunks = 0;
    for (unsigned t = 0; t < nt; t++) {
        uint8_t d[16];
        uint32_t c = alloc_digest(p->io.top[t].alloc, txg, d);
        if (c == 0) {
            memset(out, 0, 16);
            return 0;
        }
        chunks += c;
        words[2 * t] = get_le64(d);
        words[2 * t + 1] = get_le64(d + 8);
    }
    ub_map_digest(words, 2 * (uint64_t)nt, out);
    return chunks;
}

void pool_tops_free_maps(bs_pool *p)
{
    for (unsigned t = 0; t < BLK_MAX_TOPS; t++) {
        alloc_destroy(p->io.top[t].alloc);
        p->io.top[t].alloc = NULL;
    }
}

int pool_tops_load_maps(bs_pool *p, const struct uberblock *ub, struct alloc_load_info *li,
                        struct berr *err)
{
    unsigned nt = atomic_load(&p->io.ntops);
    memset(li, 0, sizeof *li);
    uint64_t words[2 * BLK_MAX_TOPS];
    bool any_none = false;
    for (unsigned t = 0; t < nt; t++) {
        struct alloc_load_info l;
        int r = alloc_load_checked(p->io.top[t].vd, &p->top_hdr[t], ub->txg, &p->io.top[t].alloc,
                                   &l, err);
        if (r < 0) {
            if (nt > 1)
                berr_wrap(err, "top-level vdev %u", t);
            pool_tops_free_maps(p);
            return r;
        }
        if ((l.nbad && !li->nbad) || (l.ndamaged && !li->nbad && !li->ndamaged))
            li->bad_top = t;
        if (l.nbad && !li->nbad)
            li->first_bad = l.first_bad;
        if (l.ndamaged && !li->ndamaged)
            li->first_damaged = l.first_damaged;
        li->nbad += l.nbad;
        li->ndamaged += l.ndamaged;
        li->nchunks += l.nchunks;
        any_none |= l.nchunks == 0;
        words[2 * t] = get_le64(l.digest);
        words[2 * t + 1] = get_le64(l.digest + 8);
        if (nt == 1)
            memcpy(li->digest, l.digest, 16);
    }
    if (nt > 1 && !any_none)
        ub_map_digest(words, 2 * (uint64_t)nt, li->digest);
    return 0;
}

/* ---- sync ---- */

int pool_tops_sync_maps(bs_pool *p, uint64_t txg)
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++) {
        int r = alloc_sync(p->io.top[t].alloc, txg);
        if (r < 0)
            return r;
    }
    return 0;
}

int pool_tops_flush(bs_pool *p)
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++) {
        int r = vdev_flush(p->io.top[t].vd);
        if (r < 0)
            return r;
    }
    return 0;
}

int pool_tops_write_ub(bs_pool *p, struct uberblock *ub)
{
    unsigned nt = atomic_load(&p->io.ntops);
    ub->map_chunks = pool_tops_digest(p, ub->txg, ub->map_digest); /* import checks it */
    ub->ntops = nt > 1 ? nt : 0;
    memset(ub->top_guids, 0, sizeof ub->top_guids);
    for (unsigned t = 0; t < nt && nt > 1; t++)
        ub->top_guids[t] = p->top_hdr[t].top_guid;
    if (nt > 1)
        ub->features_incompat |= LABEL_FEAT_MULTI_TOP;
    for (unsigned t = 0; t < nt; t++) {
        int r = label_write_ub(p->io.top[t].vd, &p->top_hdr[t], ub);
        if (r < 0)
            return r;
        crashpt_ub(ub->txg); /* test knob: a crash with only some tops at this txg */
    }
    return 0;
}

void pool_tops_txg_done(bs_pool *p, uint64_t txg)
{
    unsigned nt = atomic_load(&p->io.ntops);
    uint64_t avail = 0;
    for (unsigned t = 0; t < nt; t++) {
        struct blk_top *bt = &p->io.top[t];
        alloc_txg_done(bt->alloc, txg, p->autotrim);
        uint64_t size, a;
        alloc_space(bt->alloc, &size, &a);
        if (atomic_load(&bt->active))
            avail += a;
    }
    /* not free: space freed in the last txgs is not reusable yet */
    atomic_store(&p->free_est, avail);
}

uint64_t pool_tops_trim_ripe(bs_pool *p, bool all, bool (*stop)(void *), void *sctx)
{
    unsigned nt = atomic_load(&p->io.ntops);
    uint64_t bytes = 0;
    /* A busy pool keeps up to two txgs' worth of dirty data warm over its
     * tops: about what a stream of rewrites frees and takes back over the
     * txgs of the deferred-reuse rule (alloc_trim.c, the busy rule). */
    struct bs_tunables tun;
    bs_tunables_get(&tun);
    uint64_t keep = nt ? 2 * tun.dirty_max_bytes / nt : 0;
    for (unsigned t = 0; t < nt; t++) {
        if (p->io.top[t].alloc)
            bytes += alloc_trim_ripe(p->io.top[t].alloc, p->autotrim, all, keep, stop, sctx);
    }
    return bytes;
}

void pool_tops_writeback_hint(bs_pool *p)
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++)
        vdev_writeback_hint(p->io.top[t].vd, 0, 0);
}

/* ---- pool-wide views ---- */

bool pool_tops_deferred_pending(bs_pool *p)
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++)
        if (alloc_deferred_pending(p->io.top[t].alloc))
            return true;
    return false;
}

void pool_tops_hold_frees(bs_pool *p, uint64_t txg)
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++)
        alloc_hold_frees(p->io.top[t].alloc, txg);
}

void pool_tops_alloc_stats(bs_pool *p, struct alloc_stats *st)
{
    unsigned nt = atomic_load(&p->io.ntops);
    uint64_t fragfree = 0;
    memset(st, 0, sizeof *st);
    for (unsigned t = 0; t < nt; t++) {
        struct alloc_stats s;
        alloc_stats(p->io.top[t].alloc, &s);
        st->size += s.size;
        st->allocated += s.allocated;
        st->free += s.free;
        st->available += s.available;
        fragfree += s.free * s.fragmentation;
    }
    st->fragmentation = st->free ? (unsigned)(fragfree / st->free) : 0;
}

double pool_tops_data_fraction(bs_pool *p)
{
    /* weighted by raw size: the share of the pool's raw bytes that hold data */
    unsigned nt = atomic_load(&p->io.ntops);
    double raw = 0, data = 0;
    for (unsigned t = 0; t < nt; t++) {
        double sz = (double)p->io.top[t].data_size;
        raw += sz;
        data += sz * vdev_data_fraction(p->io.top[t].vd);
    }
    return raw > 0 ? data / raw : 1.0;
}

void pool_tops_free(bs_pool *p, uint32_t vdev, uint64_t off, uint64_t asize, uint64_t txg)
{
    const struct blk_top *t = blk_top_of(&p->io, vdev);
    if (t)
        alloc_free(t->alloc, off, asize, txg);
}

bool pool_tops_dva_ok(const bs_pool *p, uint32_t vdev, uint64_t off, uint64_t asize)
{
    const struct blk_top *t = blk_top_of(&p->io, vdev);
    return t && asize != 0 && off <= t->data_size && asize <= t->data_size - off &&
           ((off | asize) & ((1u << p->io.ashift) - 1)) == 0;
}

unsigned pool_nleaves(bs_pool *p)
{
    unsigned nt = atomic_load(&p->io.ntops), n = 0;
    for (unsigned t = 0; t < nt; t++)
        n += vdev_nleaves(p->io.top[t].vd);
    return n;
}

struct vdev *pool_leaf(bs_pool *p, unsigned i, unsigned *top, unsigned *child)
{
    unsigned nt = atomic_load(&p->io.ntops);
    for (unsigned t = 0; t < nt; t++) {
        unsigned k = vdev_nleaves(p->io.top[t].vd);
        if (i < k) {
            if (top)
                *top = t;
            if (child)
                *child = i;
            return vdev_leaf(p->io.top[t].vd, i);
        }
        i -= k;
    }
    return NULL; /* callers stay below pool_nleaves */
}

enum vdev_state pool_tops_state(bs_pool *p)
{
    unsigned nt = atomic_load(&p->io.ntops);
    enum vdev_state worst = VDEV_STATE_ONLINE;
    for (unsigned t = 0; t < nt; t++) {
        enum vdev_state s = vdev_top_state(p->io.top[t].vd);
        if (s == VDEV_STATE_FAULTED || (s != VDEV_STATE_ONLINE && worst == VDEV_STATE_ONLINE))
            worst = s == VDEV_STATE_FAULTED ? VDEV_STATE_FAULTED : VDEV_STATE_DEGRADED;
    }
    return worst;
}

void pool_set_state(bs_pool *p, enum pool_state st)
{
    for (unsigned t = 0; t < BLK_MAX_TOPS; t++)
        p->top_hdr[t].state = (uint8_t)st;
}

void pool_tops_close(bs_pool *p)
{
    for (unsigned t = 0; t < BLK_MAX_TOPS; t++) {
        vdev_close(p->io.top[t].vd);
        p->io.top[t].vd = NULL;
    }
    if (p->io.rotor) {
        pthread_mutex_destroy(&p->io.rotor->lock);
        free(p->io.rotor);
        p->io.rotor = NULL;
    }
}

void pool_tops_stats(bs_pool *p, struct bs_pool_stats *o)
{
    unsigned nt = atomic_load(&p->io.ntops), first = 0;
    o->ntops = nt;
    o->size = o->allocated = o->free = 0;
    o->raw_size = o->raw_allocated = o->raw_free = 0;
    bool mixed = false;
    for (unsigned t = 0; t < nt; t++) {
        struct blk_top *bt = &p->io.top[t];
        struct bs_top_stats *ts = &o->tops[t];
        const struct label_hdr *h = &p->top_hdr[t];
        struct alloc_stats st;
        alloc_stats(bt->alloc, &st);
        char kind[16];
        kind_name(h->top_type, h->nparity, kind, sizeof kind);
        memcpy(ts->type, kind, sizeof ts->type);
        if (h->top_type)
            snprintf(ts->name, sizeof ts->name, "%s-%u", kind, t);
        else
            snprintf(ts->name, sizeof ts->name, "%s-%u",
                     bt->vd->is_blockdev ? "disk" : "file", t);
        snprintf(ts->state, sizeof ts->state, "%s", vdev_state_name(vdev_top_state(bt->vd)));
        ts->first_leaf = first;
        ts->nleaves = vdev_nleaves(bt->vd);
        first += ts->nleaves;
        ts->guid = h->top_guid;
        ts->raw_size = st.size;
        ts->raw_allocated = st.allocated;
        /* usable: a raidz's raw bytes hold (n - p) / n data; a mirror's data
         * area is already one copy */
        double f = vdev_data_fraction(bt->vd);
        ts->size = (uint64_t)((double)st.size * f);
        ts->allocated = (uint64_t)((double)st.allocated * f);
        ts->free = ts->size - MIN(ts->size, ts->allocated);
        ts->checksum_errors = bt->vd->kind != VDEV_KIND_LEAF
                                  ? atomic_load(&bt->vd->ctr.checksum_errors) : 0;
        ts->alloc_bytes = p->io.rotor ? atomic_load(&p->io.rotor->allocated[t]) : 0;
        o->size += ts->size;
        o->allocated += ts->allocated;
        o->free += ts->free;
        o->raw_size += st.size;
        o->raw_allocated += st.allocated;
        o->raw_free += st.free;
        mixed |= strcmp(ts->type, o->tops[0].type) != 0 || h->nchildren != p->top_hdr[0].nchildren;
    }
    if (mixed)
        snprintf(o->layout, sizeof o->layout, "mixed");
}

/* ---- growing the pool ---- */

/* Is path a leaf of the pool already? */
static bool is_member(bs_pool *p, const char *path)
{
    unsigned n = pool_nleaves(p);
    for (unsigned i = 0; i < n; i++)
        if (strcmp(pool_leaf(p, i, NULL, NULL)->path, path) == 0)
            return true;
    return false;
}

_Atomic int pool_tops_test_stop;

/* Steps 1-3 of the add order (top of the file) for one spec. */
static int add_top(bs_pool *p, const struct vdev_spec *s, uint64_t size, bool force,
                   struct berr *err)
{
    unsigned id = atomic_load(&p->io.ntops);
    if (id >= BLK_MAX_TOPS)
        return berr_set(err, ENOSPC, "pool '%s' has %u top-level vdevs, the most it can have",
                        p->name, id);
    const struct label_hdr *h0 = &p->top_hdr[0];
    if (!force && !same_level(s->top_type, s->nparity, s->n, h0->top_type, h0->nparity,
                              (unsigned)h0->nchildren))
        return mismatch(h0->top_type, h0->nparity, (unsigned)h0->nchildren, s->top_type,
                        s->nparity, s->n, err);
    for (unsigned i = 0; i < s->n; i++)
        if (is_member(p, s->paths[i]))
            return berr_set(err, EEXIST, "%s is already a device of pool '%s'", s->paths[i],
                            p->name);
    pthread_mutex_lock(&p->txg.lock);
    uint64_t committed = p->txg.committed_txg;
    pthread_mutex_unlock(&p->txg.lock);
    memset(&p->top_hdr[id], 0, sizeof p->top_hdr[id]);
    int r = pool_vdev_create(p, id, s, size, force, err);
    if (r < 0)
        return r;
    struct blk_top *bt = &p->io.top[id];
    struct label_hdr *h = &p->top_hdr[id];
    h->version = BERTH_FORMAT_VERSION;
    h->pool_guid = h0->pool_guid;
    memcpy(h->pool_name, h0->pool_name, sizeof h->pool_name);
    h->ashift = h0->ashift;
    h->state = POOL_STATE_ACTIVE;
    h->create_txg = committed;
    h->features_incompat |= LABEL_FEAT_MULTI_TOP;
    h->features_ro_compat = h0->features_ro_compat;
    h->features_compat = h0->features_compat;
    if ((r = label_layout(h, bt->vd->size)) < 0) {
        r = berr_set(err, -r, "%s: too small for a top-level vdev (minimum 64 MiB)",
                     bt->vd->path);
        goto fail;
    }
    vdev_set_data(bt->vd, h->ashift, h->data_start, h->data_end - h->data_start);
    bt->data_size = bt->vd->data_size;
    /* 1: its labels (old ones wiped first) and an empty map, durable */
    if ((r = pool_write_top_labels(p, id, true)) < 0) {
        r = berr_set(err, -r, "cannot write the labels of %s: %s", bt->vd->path, strerror(-r));
        goto fail;
    }
    crashpt("add_labels");
    if ((r = alloc_create(bt->vd, h, committed, &bt->alloc, err)) < 0)
        goto fail;
    if ((r = vdev_flush(bt->vd)) < 0) {
        r = berr_set(err, -r, "cannot flush %s: %s", bt->vd->path, strerror(-r));
        goto fail;
    }
    crashpt("add_map");
    if (atomic_load(&pool_tops_test_stop) == 1) {
        r = berr_set(err, ECANCELED, "stopped after step 1 (test)");
        goto fail;
    }
    /* 2: the old tops' labels say the pool has several tops */
    for (unsigned t = 0; t < id; t++)
        p->top_hdr[t].features_incompat |= LABEL_FEAT_MULTI_TOP;
    if ((r = pool_write_labels(p, false)) < 0) {
        r = berr_set(err, -r, "cannot update the labels of pool '%s': %s", p->name,
                     strerror(-r));
        goto fail;
    }
    crashpt("add_old_labels");
    if (atomic_load(&pool_tops_test_stop) == 2) {
        r = berr_set(err, ECANCELED, "stopped after step 2 (test)");
        goto fail;
    }
    /* 3: the switch: the next txg's uberblock lists the new top */
    pthread_mutex_lock(&p->txg.sync_mutex);
    atomic_store(&bt->active, false);
    atomic_store_explicit(&p->io.ntops, id + 1, memory_order_release);
    p->guid_sum = pool_tops_guid_sum(p, id + 1);
    pthread_mutex_lock(&p->txg.lock);
    crashpt_watch_txg(p->txg.open_txg); /* the txg that lists the new top */
    pthread_mutex_unlock(&p->txg.lock);
    pthread_mutex_unlock(&p->txg.sync_mutex);
    pthread_mutex_lock(&p->lock);
    p->mos_dirty = true;
    uint64_t t = txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    r = txg_wait(p, t);
    if (r < 0)
        return berr_set(err, -r, "pool '%s' could not commit the new top-level vdev (it is "
                        "faulted; the last committed tree is imported)", p->name);
    crashpt_watch_txg(0);
    crashpt("add_committed");
    atomic_store(&bt->active, true);
    pool_update_space(p); /* its free space counts from now on */
    blog_info("pool %s: top-level vdev %u (%s, %u device%s) added in txg %llu", p->name, id,
              s->top_type == VDEV_TYPE_RAIDZ ? "raidz" : s->top_type ? "mirror" : "single",
              s->n, s->n == 1 ? "" : "s", (unsigned long long)t);
    return 0;
fail:
    alloc_destroy(steal_ptr(bt->alloc));
    vdev_close(steal_ptr(bt->vd));
    return r;
}

int bs_pool_add(bs_pool *p, const char *const *vdevs, size_t nvdevs, uint64_t size, bool force,
                struct berr *err)
{
    struct vdev_spec specs[BLK_MAX_TOPS];
    unsigned ns = 0;
    if (p->readonly)
        return berr_set(err, EROFS, "pool '%s' is read-only", p->name);
    int r = pool_tops_spec(vdevs, nvdevs, force, specs, &ns, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->txg.lock);
    bool faulted = p->txg.fault != 0;
    pthread_mutex_unlock(&p->txg.lock);
    if (faulted)
        r = berr_set(err, EROFS, "pool '%s' is faulted: it cannot grow", p->name);
    else if (atomic_load(&p->io.ntops) + ns > BLK_MAX_TOPS)
        r = berr_set(err, ENOSPC, "pool '%s' would have more than %d top-level vdevs",
                     p->name, BLK_MAX_TOPS);
    for (unsigned i = 0; r == 0 && i < ns; i++)
        r = add_top(p, &specs[i], size, force, err);
    pthread_mutex_unlock(&p->admin_lock);
    return r;
}
