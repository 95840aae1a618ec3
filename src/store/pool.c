/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pools: create, import, scan, export, close, destroy, sync, trim, stats,
 * properties, fault injection (the engine-wide tunables, memory budget and
 * shared block cache: pool_tunables.c).
 *
 * A pool's life: create (labels, empty allocation map, first txg with an
 * empty directory) or import (newest uberblock whose allocation map and MOS
 * load) -> running (sync thread) -> export/close (final txg, then the sync
 * thread stops) or destroy (labels wiped).  A pool whose sync failed is
 * FAULTED: it keeps serving reads of committed and acknowledged data, writes
 * fail, and close releases it without writing anything. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/util.h"
#include "store/codec.h"
#include "store/maprebuild.h"
#include "store/pool_impl.h"


void bs_pool_opts_init(struct bs_pool_opts *o)
{
    memset(o, 0, sizeof *o);
    o->autotrim = true;
    o->compression = BS_COMPRESS_LZ4;
    o->checksum = BS_CHECKSUM_XXH3;
}

/* ---- construction and teardown ---- */

static bs_pool *pool_alloc(void)
{
    bs_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->admin_lock, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->dtl_lock, NULL);
    return p;
}

/* Free everything; the sync thread must be stopped (or never started). */
static void pool_free(bs_pool *p)
{
    if (!p)
        return;
    scrub_fini(p);
    txg_fini(p);
    while (p->ds_list) {
        struct ds *d = p->ds_list;
        p->ds_list = d->next;
        ds_unref(d);
    }
    vkeys_free(p);
    pool_tops_free_maps(p);
    pool_tops_close(p);
    pool_cache_put(p->io.cache);
    free(p->mos_bytes);
    pthread_mutex_destroy(&p->dtl_lock);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->admin_lock);
    free(p);
}

void pool_abandon(bs_pool *p)
{
    pool_free(p);
}

void pool_update_space(bs_pool *p)
{
    struct alloc_stats st;
    pool_tops_alloc_stats(p, &st);
    atomic_store(&p->free_est, st.available);
    /* Room kept for what the dirty-byte estimate does not count: indirect
     * blocks and the MOS rewritten by a txg.  3%, at least 16 MiB, but never
     * more than a quarter of a tiny pool. */
    p->slop = MIN(MAX(st.size / 32, 16ULL << 20), st.size / 4);
}

static int start(bs_pool *p, uint64_t committed, struct berr *err)
{
    p->io.cache = pool_cache_get(&p->io.cache_id);
    if (!p->io.cache)
        return berr_set(err, ENOMEM, "cannot allocate the block cache");
    pool_update_space(p);
    int r = txg_init(p, committed);
    if (r == 0 && !p->readonly)
        r = txg_start(p);
    if (r < 0)
        return berr_set(err, -r, "cannot start the sync thread of pool '%s'", p->name);
    return 0;
}

uint64_t pool_random_u64(void)
{
    uint64_t v = 0;
    while (v == 0)
        if (getrandom(&v, sizeof v, 0) != sizeof v)
            v = now_ns() * 0x9e3779b97f4a7c15ULL;
    return v;
}

/* "a", or "mirror of a, b, ..." for messages */
static void spec_desc(const struct vdev_spec *specs, unsigned ns, char *buf, size_t len)
{
    size_t w = 0;
    buf[0] = 0;
    for (unsigned t = 0; t < ns && w < len; t++) {
        const struct vdev_spec *s = &specs[t];
        w += (size_t)snprintf(buf + w, len - w, "%s%s", t ? "; " : "",
                              s->top_type == VDEV_TYPE_RAIDZ ? "raidz of "
                              : s->top_type ? "mirror of " : "");
        for (unsigned i = 0; i < s->n && w < len; i++)
            w += (size_t)snprintf(buf + w, len - w, "%s%s", i ? ", " : "", s->paths[i]);
    }
}

int bs_pool_create(const char *name, const char *const *vdevs, size_t nvdevs, uint64_t size,
                   const struct bs_pool_opts *opts, bs_pool **out, struct berr *err)
{
    struct bs_pool_opts defaults;
    if (!opts) {
        bs_pool_opts_init(&defaults);
        opts = &defaults;
    }
    int r = validate_name(name, "pool", err);
    if (r < 0)
        return r;
    struct vdev_spec specs[BLK_MAX_TOPS];
    unsigned ns = 0;
    if ((r = pool_tops_spec(vdevs, nvdevs, opts->force, specs, &ns, err)) < 0)
        return r;
    char desc[256];
    spec_desc(specs, ns, desc, sizeof desc);
    if (opts->ashift && (opts->ashift < 9 || opts->ashift > 16))
        return berr_set(err, EINVAL, "ashift %d is invalid: use 9 to 16, or 0 to detect it",
                        opts->ashift);
    if ((unsigned)opts->compression > BS_COMPRESS_ZSTD ||
        (opts->checksum != BS_CHECKSUM_XXH3 && opts->checksum != BS_CHECKSUM_SHA256))
        return berr_set(err, EINVAL, "invalid compression or checksum default");
    struct mos_cryptdef cryptdef;
    if ((r = cryptdef_from_opts(opts, &cryptdef, err)) < 0)
        return r;
    bs_pool *p = pool_alloc();
    if (!p)
        return berr_set(err, ENOMEM, "out of memory");
    p->cryptdef = cryptdef;
    uint64_t pool_guid = pool_random_u64();
    int ashift = 0;
    for (unsigned t = 0; t < ns; t++) {
        r = pool_vdev_create(p, t, &specs[t], size, opts->force, err);
        if (r < 0)
            goto fail;
        atomic_store(&p->io.ntops, t + 1); /* so that a failure closes it */
        struct label_hdr *h = &p->top_hdr[t];
        /* one sector size for the pool: the largest any top's devices need */
        ashift = MAX(ashift, opts->ashift ? opts->ashift : p->io.top[t].vd->phys_sector_shift);
        h->version = BERTH_FORMAT_VERSION;
        h->pool_guid = pool_guid;
        snprintf(h->pool_name, sizeof h->pool_name, "%s", name);
        h->state = POOL_STATE_ACTIVE;
        h->create_txg = 1;
        h->features_ro_compat |= LABEL_FEAT_RO_DITTO;
        if (ns > 1)
            h->features_incompat |= LABEL_FEAT_MULTI_TOP;
    }
    for (unsigned t = 0; t < ns; t++) {
        struct label_hdr *h = &p->top_hdr[t];
        h->ashift = (uint8_t)ashift;
        r = label_layout(h, p->io.top[t].vd->size);
        if (r < 0) {
            r = berr_set(err, -r, "%s: too small for a pool (minimum 64 MiB)", desc);
            goto fail;
        }
    }
    p->guid_sum = pool_tops_guid_sum(p, ns);
    if ((r = pool_tops_setup_io(p)) < 0) {
        r = berr_set(err, ENOMEM, "out of memory");
        goto fail;
    }
    /* old labels go first, so a create cut short never imports as the old pool */
    if ((r = pool_write_labels(p, true)) < 0) {
        r = berr_set(err, -r, "cannot write the labels of %s: %s", desc, strerror(-r));
        goto fail;
    }
    p->io.ditto = true; /* the labels say so (LABEL_FEAT_RO_DITTO) */
    for (unsigned t = 0; t < ns; t++) {
        r = alloc_create(p->io.top[t].vd, &p->top_hdr[t], 1, &p->io.top[t].alloc, err);
        if (r < 0)
            goto fail;
    }
    p->autotrim = opts->autotrim;
    p->comp = (uint8_t)opts->compression;
    p->comp_level = (uint8_t)(opts->compression == BS_COMPRESS_ZSTD
                                  ? (opts->compress_level ? opts->compress_level : 3) : 0);
    p->cksum = (uint8_t)opts->checksum;
    p->next_id = 1;
    objdesc_init(&p->mos_od, MOS_DSHIFT, 0);
    if ((r = start(p, 1, err)) < 0)
        goto fail;
    pthread_mutex_lock(&p->lock);
    p->mos_dirty = true;
    uint64_t t = txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    r = txg_wait(p, t);
    if (r < 0) {
        r = berr_set(err, -r, "cannot write the first transaction group to %s", desc);
        goto fail;
    }
    *out = p;
    return 0;
fail:
    pool_free(p);
    return r;
}

/* Commit the open txg now (dirtying it if need be) and wait for it; a
 * failure faults the pool, which then says so on its own. */
static void pool_commit_now(bs_pool *p)
{
    pthread_mutex_lock(&p->lock);
    uint64_t t = txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    (void)txg_wait(p, t);
}

/* Try to load the pool state as of uberblock ub. */
static int load_ub(bs_pool *p, const struct uberblock *ub, struct berr *err)
{
    struct objdesc od;
    objdesc_init(&od, MOS_DSHIFT, DIV_ROUND_UP(ub->mos_size, MOS_BLKSZ));
    if (ub->mos_dblksz != MOS_BLKSZ || ub->mos_levels < od.levels ||
        ub->mos_levels > OBJ_MAX_LEVELS || ub->mos_size > MOS_MAX_SIZE ||
        (!bp_is_hole(&ub->mos_root) && ub->mos_root.level != ub->mos_levels - 1))
        return berr_set(err, EILSEQ, "uberblock %llu: bad MOS descriptor",
                        (unsigned long long)ub->txg);
    od.levels = (uint8_t)ub->mos_levels;
    od.root = ub->mos_root;
    struct alloc_load_info li;
    int r = pool_tops_load_maps(p, ub, &li, err);
    if (r < 0)
        return r;
    uint8_t *bytes = NULL;
    struct mos_dir dir;
    r = mos_read(&p->io, &od, ub->mos_size, &bytes);
    if (r == 0)
        r = mos_decode(bytes, ub->mos_size, &dir);
    if (r < 0) {
        free(bytes);
        pool_tops_free_maps(p);
        return berr_set(err, EILSEQ, "txg %llu: the pool directory is unreadable (%s)",
                        (unsigned long long)ub->txg, strerror(-r));
    }
    if (dir.legacy_crypt && !p->readonly) {
        /* No root MACs or digests to keep up: writing would need them */
        p->readonly = p->io.readonly = true;
        blog_warn("pool '%s' has encrypted volumes from before berth authenticated their "
                  "metadata (directory version 3): imported read-only; copy their data to "
                  "new volumes", p->name);
    }
    p->legacy_crypt = dir.legacy_crypt;
    p->mos_od = od;
    p->mos_bytes = bytes;
    p->mos_len = ub->mos_size;
    p->next_id = dir.next_id;
    p->autotrim = dir.autotrim;
    p->comp = dir.comp;
    p->comp_level = dir.comp_level;
    p->cksum = dir.cksum;
    p->txg.open_txg = ub->txg + 1; /* ds_new reads it */
    if (vkeys_load_dir(p, &dir) < 0) { /* before the datasets, which point at them */
        mos_dir_free(&dir);
        return berr_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < dir.nds; i++) {
        struct ds *d = ds_new(p, &dir.ds[i]);
        if (!d) {
            mos_dir_free(&dir);
            return berr_set(err, ENOMEM, "out of memory");
        }
        d->next = p->ds_list;
        p->ds_list = d;
    }
    mos_dir_free(&dir);
    /* every prev link must name a snapshot of exactly that txg: the
     * freeing rules trust it (a wrong one would free live blocks) */
    for (struct ds *d = p->ds_list; d; d = d->next) {
        if (!d->rec.lin.prev_id)
            continue;
        struct ds *pv = ds_by_id(p, d->rec.lin.prev_id);
        if (!pv || !(pv->rec.flags & DS_FLAG_SNAPSHOT) ||
            pv->rec.create_txg != d->rec.lin.prev_txg) {
            berr_set(err, EILSEQ, "txg %llu: the pool directory is inconsistent ('%s' "
                     "continues a snapshot that is missing or different)",
                     (unsigned long long)ub->txg, d->rec.name);
            /* undo this attempt: the caller tries an older uberblock */
            while (p->ds_list) {
                struct ds *n = p->ds_list->next;
                ds_unref(p->ds_list);
                p->ds_list = n;
            }
            vkeys_free(p);
            free(p->mos_bytes);
            p->mos_bytes = NULL;
            pool_tops_free_maps(p);
            return -EILSEQ;
        }
    }
    /* a damaged or stale map is rebuilt from the trees (maprebuild.c) */
    return map_verify(p, ub, &li);
}

/* A writable pool writes ditto copies of its metadata (FORMAT.md 5, 9):
 * a pool from before them gets LABEL_FEAT_RO_DITTO in its labels first
 * (a berth without it then imports the pool read-only instead of leaking
 * the copies), and only once the labels took it.  If they did not, the
 * pool goes on with single copies, as before. */
static void enable_ditto(bs_pool *p)
{
    unsigned nt = atomic_load(&p->io.ntops);
    bool have = true;
    for (unsigned t = 0; t < nt; t++)
        have &= (p->top_hdr[t].features_ro_compat & LABEL_FEAT_RO_DITTO) != 0;
    if (!have) {
        for (unsigned t = 0; t < nt; t++)
            p->top_hdr[t].features_ro_compat |= LABEL_FEAT_RO_DITTO;
        int r = pool_write_labels(p, false);
        if (r < 0) {
            blog_warn("pool '%s': cannot record the ditto feature in the labels (%s): "
                      "metadata keeps one copy", p->name, strerror(-r));
            for (unsigned t = 0; t < nt; t++)
                p->top_hdr[t].features_ro_compat &= ~LABEL_FEAT_RO_DITTO;
            return;
        }
        blog_info("pool '%s': metadata written from now on gets a ditto copy "
                  "(read-only compatible feature 'ditto' enabled)", p->name);
    }
    p->io.ditto = true;
}

static int add_mos_bytes(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    struct objdesc *od = opaque;
    od->allocated += bp_asize(bp);
    if (bp->level == 0) {
        od->logical += bp->lsize;
        od->physical += bp_asize(bp);
    }
    return 0;
}

int bs_pool_import(const char *const *vdevs, size_t nvdevs, const char *name, bs_pool **out,
                   struct berr *err)
{
    return bs_pool_import_opts(vdevs, nvdevs, name, NULL, out, err);
}

uint64_t bs_pool_rewound_from(const bs_pool *p, uint64_t *to)
{
    if (to)
        *to = p->rewound_to;
    return p->rewound_from;
}

int bs_pool_import_opts(const char *const *vdevs, size_t nvdevs, const char *name,
                        const struct bs_import_opts *opts, bs_pool **out, struct berr *err)
{
    const bool rewind = opts && opts->rewind;
    bs_pool *p = pool_alloc();
    if (!p)
        return berr_set(err, ENOMEM, "out of memory");
    struct uberblock *ubs = NULL;
    bool found[BLK_MAX_TOPS];
    int r = pool_vdev_import(p, vdevs, nvdevs, found, err);
    if (r < 0)
        goto fail;
    /* pool-wide fields from the first top found (the same in all) */
    unsigned ft = 0;
    while (!found[ft])
        ft++;
    struct label_hdr *ph = &p->top_hdr[ft];
    /* the name comes from the device: it names API paths and NBD exports */
    if (validate_name(ph->pool_name, "pool", NULL) < 0) {
        char shown[96];
        utf8_sanitize(ph->pool_name, shown, sizeof shown);
        r = berr_set(err, EILSEQ, "the label of %s holds an invalid pool name '%s'", vdevs[0],
                     shown);
        goto fail;
    }
    if (ph->state == POOL_STATE_DESTROYED) {
        r = berr_set(err, ENOENT, "pool '%s' on %s was destroyed", ph->pool_name, vdevs[0]);
        goto fail;
    }
    if (name && strcmp(name, ph->pool_name) != 0) {
        r = berr_set(err, ENOENT, "%s holds pool '%s', not '%s'", vdevs[0], ph->pool_name,
                     name);
        goto fail;
    }
    for (unsigned t = 0; t < BLK_MAX_TOPS; t++)
        if (found[t] && (p->top_hdr[t].ashift < 9 || p->top_hdr[t].ashift > 16 ||
                         p->top_hdr[t].data_end <= p->top_hdr[t].data_start)) {
            r = berr_set(err, EILSEQ, "the label of %s has an invalid layout",
                         p->io.top[t].vd->path);
            goto fail;
        }
    /* Features a reader may ignore but must not write under (FORMAT.md 2):
     * import read-only, never touching the device. */
    if (ph->features_ro_compat & ~FEATURES_RO_COMPAT_KNOWN) {
        p->readonly = p->io.readonly = true;
        blog_warn("pool '%s' on %s uses features this version cannot write (ro_compat %#llx): "
                  "imported read-only", ph->pool_name, vdevs[0],
                  (unsigned long long)(ph->features_ro_compat & ~FEATURES_RO_COMPAT_KNOWN));
    }
    memcpy(p->name, ph->pool_name, sizeof p->name); /* NUL-terminated: validated above */
    p->name[sizeof p->name - 1] = 0;
    /* every top found takes part in choosing the newest uberblock */
    unsigned nfound = 0;
    for (unsigned t = 0; t < BLK_MAX_TOPS; t++)
        if (found[t])
            nfound = t + 1;
    for (unsigned t = 0; t < nfound; t++)
        if (!found[t]) {
            /* a hole: the uberblock's tree decides whether it matters */
            nfound = t;
            break;
        }
    atomic_store(&p->io.ntops, nfound);
    int n = nfound ? pool_read_ubs(p, &ubs) : 0;
    if (nfound == 0 || n <= 0) {
        /* top 0 (or a top before the ones found) is missing: find the
         * newest uberblock on what was found to name it */
        for (unsigned t = 0; t < BLK_MAX_TOPS && n <= 0; t++) {
            struct uberblock *u = NULL;
            if (!found[t])
                continue;
            struct vdev *tv = p->io.top[t].vd;
            for (unsigned i = 0; i < vdev_nleaves(tv) && r == 0; i++) {
                if (vdev_leaf(tv, i)->fd < 0)
                    continue;
                int k = label_read_ubs(vdev_leaf(tv, i), &p->top_hdr[t], &u);
                if (k > 0)
                    r = pool_tops_for_ub(p, &u[0], found, err);
                free(steal_ptr(u));
                if (k > 0)
                    break;
            }
            if (r < 0)
                goto fail;
        }
        r = berr_set(err, n < 0 ? -n : EILSEQ, "pool '%s' on %s has no valid uberblock", p->name,
                     vdevs[0]);
        goto fail;
    }
    /* the newest uberblock's tree: a top it lists that is missing fails the
     * import (going back to an older tree would lose what was written since) */
    if ((r = pool_tops_for_ub(p, &ubs[0], found, err)) < 0)
        goto fail;
    pool_tops_drop_unlisted(p, found);
    if ((r = pool_tops_setup_io(p)) < 0) {
        r = berr_set(err, ENOMEM, "out of memory");
        goto fail;
    }
    if ((r = pool_check_fresh(p, err)) < 0)
        goto fail;
    struct berr last = {0};
    p->io.cache = pool_cache_get(&p->io.cache_id);
    if (!p->io.cache) {
        r = berr_set(err, ENOMEM, "out of memory");
        goto fail;
    }
    /* The newest uberblock is the pool: it only reached the labels after
     * every block of its txg was durable (FORMAT.md 8), so a crash never
     * calls for an older one.  If its state does not load, blocks were
     * damaged after the fact (bit rot, a stray write): going back silently
     * would drop acknowledged writes and then overwrite them, so that takes
     * the user's say (rewind), as ZFS's `zpool import -F` does. */
    r = -EILSEQ;
    for (int i = 0; i < n && r < 0; i++) {
        if (i > 0 && !rewind && (ubs[0].features_incompat & ~LABEL_FEAT_MULTI_TOP)) {
            /* not damage: a newer berth wrote it; going back is no fix */
            r = berr_set(err, ENOTSUP,
                         "cannot import pool '%s' from %s: its newest txg %llu uses features "
                         "this version of berth does not support (incompat %#llx); import it "
                         "with a newer berth",
                         p->name, vdevs[0], (unsigned long long)ubs[0].txg,
                         (unsigned long long)(ubs[0].features_incompat & ~LABEL_FEAT_MULTI_TOP));
            goto fail;
        }
        if (i > 0 && !rewind) {
            r = berr_set(err, EILSEQ,
                         "cannot import pool '%s' from %s: its newest state (txg %llu) is "
                         "damaged: %s; `berth pool import --rewind %s` goes back to the newest "
                         "older txg that is intact, losing the writes made after it",
                         p->name, vdevs[0], (unsigned long long)ubs[0].txg,
                         last.msg[0] ? last.msg : "it does not match the devices found", p->name);
            goto fail;
        }
        /* an older uberblock with a smaller tree (before a pool add) */
        unsigned nt = ubs[i].ntops ? ubs[i].ntops : 1;
        if (nt != atomic_load(&p->io.ntops)) {
            if (nt > atomic_load(&p->io.ntops))
                continue;
            atomic_store(&p->io.ntops, nt);
            p->guid_sum = pool_tops_guid_sum(p, nt);
        }
        if (ubs[i].guid_sum != p->guid_sum ||
            (ubs[i].features_incompat & ~LABEL_FEAT_MULTI_TOP)) {
            berr_set(&last, EILSEQ, "uberblock %llu does not match the device set",
                     (unsigned long long)ubs[i].txg);
            continue;
        }
        r = load_ub(p, &ubs[i], &last);
        if (r == 0) {
            p->txg.committed_txg = ubs[i].txg;
            if (i > 0 && ubs[i].txg < ubs[0].txg) {
                p->rewound_from = ubs[0].txg;
                p->rewound_to = ubs[i].txg;
                blog_warn("pool '%s' rewound from txg %llu to txg %llu: the newer state was "
                          "damaged (%s); the writes of txgs %llu..%llu are lost",
                          p->name, (unsigned long long)ubs[0].txg, (unsigned long long)ubs[i].txg,
                          last.msg, (unsigned long long)ubs[i].txg + 1,
                          (unsigned long long)ubs[0].txg);
            }
            break;
        }
    }
    if (r < 0) {
        r = berr_set(err, -r, "cannot import pool '%s' from %s: %s", p->name, vdevs[0], last.msg);
        goto fail;
    }
    /* a fallback to an uberblock from before a pool add: that top is not
     * part of the pool */
    pool_tops_drop_unlisted(p, found);
    uint64_t committed = p->txg.committed_txg;
    free(steal_ptr(ubs));
    objtree_walk(&p->io, &p->mos_od, 0, add_mos_bytes, &p->mos_od);
    if (p->top_hdr[0].state != POOL_STATE_ACTIVE && !p->readonly) {
        pool_set_state(p, POOL_STATE_ACTIVE);
        if ((r = pool_write_labels(p, false)) < 0) {
            r = berr_set(err, -r, "cannot mark pool '%s' active on %s", p->name, vdevs[0]);
            goto fail;
        }
    }
    if (!p->readonly)
        enable_ditto(p);
    /* running takes a fresh cache namespace: an attempt on a newer, abandoned
     * uberblock may have cached blocks whose (offset, birth) keys the next
     * txgs will reuse for different contents */
    pool_cache_put(steal_ptr(p->io.cache));
    /* After a rewind the txgs are numbered on from the damaged newest one,
     * whose uberblock is still in the labels: the commit below puts an
     * intact newer one in front of it, or a plain import would find the
     * damaged state first and refuse again.  (Nothing of the skipped txgs
     * is reachable: their blocks' space is free in the maps as loaded.) */
    if ((r = start(p, p->rewound_from ? p->rewound_from : committed, err)) < 0)
        goto fail;
    if (p->rewound_from && !p->readonly)
        pool_commit_now(p);
    map_rebuild_commit(p);
    pool_refresh_stale(p);
    /* keys at file:// locations unlock their volumes now; a missing or wrong
     * key file leaves its volumes locked (they list with keystatus
     * unavailable; bs_vol_open says why) */
    bs_key_load_all(p, NULL, NULL);
    *out = p;
    return 0;
fail:
    free(ubs);
    pool_free(p);
    return r;
}

static uint64_t blkdev_size(int fd, const struct stat *st)
{
    uint64_t sz = (uint64_t)st->st_size;
    if (S_ISBLK(st->st_mode) && ioctl(fd, BLKGETSIZE64, &sz) != 0)
        sz = 0;
    return sz;
}

int bs_pool_scan(const char *dir, int (*cb)(const struct bs_pool_found *f, void *opaque),
                 void *opaque, struct berr *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return berr_errno(err, errno, "cannot open directory %s", dir);
    struct dirent *de;
    int r = 0;
    while (r == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        struct bs_pool_found f;
        memset(&f, 0, sizeof f);
        if ((size_t)snprintf(f.vdev_path, sizeof f.vdev_path, "%s/%s", dir, de->d_name) >=
            sizeof f.vdev_path)
            continue;
        _cleanup_close_ int fd = open(f.vdev_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
            continue;
        /* read without vdev_open: a pool imported by this process holds
         * the flock, and scanning must still see it */
        struct vdev v = { .path = f.vdev_path, .fd = fd, .readonly = true,
                          .is_blockdev = S_ISBLK(st.st_mode) };
        v.size = blkdev_size(fd, &st);
        if (v.size < (64ULL << 20))
            continue;
        struct label_hdr h;
        struct berr le = {0};
        int lr = label_read_hdr(&v, &h, &le);
        if (lr == -ENOENT || (lr == 0 && h.state == POOL_STATE_DESTROYED))
            continue; /* not berth's, or deliberately destroyed */
        if (lr < 0) {
            snprintf(f.state, sizeof f.state, "damaged");
            utf8_sanitize(le.msg[0] ? le.msg : strerror(-lr), f.problem, sizeof f.problem);
            r = cb(&f, opaque);
            if (r)
                break;
            continue;
        }
        struct uberblock *ubs = NULL;
        int n = label_read_ubs(&v, &h, &ubs);
        if (n > 0)
            f.txg = ubs[0].txg;
        free(ubs);
        /* shown to users and put into JSON: never raw device bytes */
        utf8_sanitize(h.pool_name, f.name, sizeof f.name);
        f.guid = h.pool_guid;
        snprintf(f.state, sizeof f.state, "%s",
                 h.state == POOL_STATE_EXPORTED ? "exported" : "active");
        r = cb(&f, opaque);
    }
    closedir(d);
    return r > 0 ? 0 : r;
}

static int open_handles(bs_pool *p)
{
    int n = 0;
    pthread_mutex_lock(&p->lock);
    for (struct ds *d = p->ds_list; d; d = d->next)
        n += d->nopen;
    pthread_mutex_unlock(&p->lock);
    return n;
}

static bool faulted(bs_pool *p)
{
    pthread_mutex_lock(&p->txg.lock);
    bool f = p->txg.fault != 0;
    pthread_mutex_unlock(&p->txg.lock);
    return f;
}

int bs_pool_export(bs_pool *p, bool force, struct berr *err)
{
    int n = open_handles(p);
    if (n > 0 && !force)
        return berr_set(err, EBUSY, "pool '%s' has %d open volume handle%s; close them or force",
                        p->name, n, n == 1 ? "" : "s");
    int r = 0;
    scrub_fini(p);
    if (!p->readonly) {
        r = txg_sync_all(p);
        if (r < 0 || faulted(p)) {
            r = berr_set(err, EIO, "pool '%s' is faulted: released without exporting; the "
                         "last committed state will be imported", p->name);
        } else {
            txg_fini(p);
            pool_set_state(p, POOL_STATE_EXPORTED);
            if ((r = pool_write_labels(p, false)) < 0)
                r = berr_set(err, -r, "cannot mark pool '%s' exported: %s", p->name,
                             strerror(-r));
        }
    }
    pool_free(p);
    return r;
}

void bs_pool_close(bs_pool *p)
{
    if (!p)
        return;
    scrub_fini(p);
    if (!p->readonly)
        txg_sync_all(p);
    pool_free(p);
}

int bs_pool_destroy(bs_pool *p, bool force, struct berr *err)
{
    int n = open_handles(p);
    if (n > 0 && !force)
        return berr_set(err, EBUSY, "pool '%s' has %d open volume handle%s; close them or force",
                        p->name, n, n == 1 ? "" : "s");
    scrub_fini(p);
    txg_fini(p);
    int r = pool_wipe_labels(p);
    if (r < 0)
        r = berr_set(err, -r, "cannot wipe the labels of pool '%s': %s", p->name, strerror(-r));
    pool_free(p);
    return r;
}

int bs_pool_sync(bs_pool *p, struct berr *err)
{
    if (p->readonly)
        return 0;
    /* Commit, then keep committing until frees deferred by earlier txgs
     * have become reusable: after `berth pool sync` the space of what was
     * deleted or trimmed is free.  Autotrim punches it lazily (alloc.c top:
     * after ALLOC_TRIM_DELAY_TXGS more txgs, or once the pool idles), not
     * here: a sync between two workloads must not punch the space the next
     * one would rewrite in place. */
    for (int i = 0; i <= ALLOC_DEFER_TXGS; i++) {
        int r = txg_sync_all(p);
        if (r < 0)
            return berr_set(err, -r, "pool '%s' cannot commit: it is faulted after an I/O error",
                            p->name);
        if (!pool_tops_deferred_pending(p))
            break;
    }
    return 0;
}

int bs_pool_trim(bs_pool *p, uint64_t *trimmed_bytes, struct berr *err)
{
    uint64_t bytes = 0;
    int r = 0;
    for (unsigned t = 0; r == 0 && t < atomic_load(&p->io.ntops); t++) {
        uint64_t b = 0;
        r = alloc_trim_all(p->io.top[t].alloc, &b);
        bytes += b;
    }
    if (trimmed_bytes)
        *trimmed_bytes = bytes;
    if (r < 0)
        return berr_set(err, -r, "trim of pool '%s' failed: %s", p->name, strerror(-r));
    return 0;
}

const char *bs_pool_name(const bs_pool *p)
{
    return p->name;
}

int bs_pool_stats(bs_pool *p, struct bs_pool_stats *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", p->name);
    o->guid = p->guid;
    bool f = faulted(p);
    pthread_mutex_lock(&p->txg.lock);
    o->txg = p->txg.committed_txg;
    pthread_mutex_unlock(&p->txg.lock);
    o->ashift = p->io.ashift;
    struct alloc_stats st;
    pool_tops_alloc_stats(p, &st);
    o->fragmentation = st.fragmentation;
    pthread_mutex_lock(&p->lock);
    o->autotrim = p->autotrim;
    o->compression = p->comp;
    o->compress_level = p->comp_level;
    o->checksum = p->cksum;
    for (struct ds *d = p->ds_list; d; d = d->next) {
        /* volumes only: snapshots share their blocks */
        if (d->destroying || (d->rec.flags & (DS_FLAG_SNAPSHOT | DS_FLAG_RECV)))
            continue;
        pthread_mutex_lock(&d->lock);
        o->logical_bytes += d->od.logical;
        o->physical_bytes += d->od.physical;
        pthread_mutex_unlock(&d->lock);
        o->nvols++;
    }
    pthread_mutex_unlock(&p->lock);
    o->compressratio = o->physical_bytes ? (double)o->logical_bytes /
                                               (o->physical_bytes * pool_tops_data_fraction(p))
                                         : 1.0;
    pool_vdev_stats(p, f, st.size, o);
    pool_tops_stats(p, o); /* size, allocated, free: usable, after parity */
    for (size_t i = 0; i < o->ntops; i++)
        for (unsigned k = 0; k < o->tops[i].nleaves; k++)
            if (o->tops[i].first_leaf + k < o->nvdevs)
                o->vdevs[o->tops[i].first_leaf + k].size =
                    o->tops[i].type[0] == 'r' ? o->tops[i].raw_size / o->tops[i].nleaves
                                              : o->tops[i].raw_size;
    scrub_stats(p, o);
    struct bcache_stats cs;
    bcache_stats(p->io.cache, &cs);
    o->cache_bytes = cs.bytes;
    o->cache_hits = cs.hits;
    o->cache_misses = cs.misses;
    pthread_mutex_lock(&p->lock);
    o->encryption = p->cryptdef.encryption != 0;
    o->keyformat = (enum bs_keyformat)p->cryptdef.keyformat;
    snprintf(o->keylocation, sizeof o->keylocation, "%s", p->cryptdef.location);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int bs_pool_set_prop(bs_pool *p, const char *prop, const char *value, struct berr *err)
{
    if (p->readonly)
        return berr_set(err, EROFS, "pool '%s' is read-only", p->name);
    int r = 0;
    enum bs_compress c = 0;
    enum bs_checksum ck = 0;
    int lvl = 0;
    bool on = false;
    if (strcmp(prop, "autotrim") == 0) {
        on = strcmp(value, "on") == 0 || strcmp(value, "true") == 0;
        if (!on && strcmp(value, "off") != 0 && strcmp(value, "false") != 0)
            return berr_set(err, EINVAL, "autotrim must be 'on' or 'off', not '%s'", value);
    } else if (strcmp(prop, "compression") == 0) {
        r = bs_compress_parse(value, &c, &lvl, err);
    } else if (strcmp(prop, "checksum") == 0) {
        r = bs_checksum_parse(value, &ck, err);
    } else if (strcmp(prop, "encryption") && strcmp(prop, "keyformat") &&
               strcmp(prop, "keylocation")) {
        return berr_set(err, EINVAL, "unknown pool property '%s' (autotrim, compression, "
                        "checksum, encryption, keyformat, keylocation can be set)", prop);
    }
    if (r < 0)
        return r;
    pthread_mutex_lock(&p->admin_lock);
    pthread_mutex_lock(&p->lock);
    if ((r = cryptdef_set(p, prop, value, err)) <= 0) {
        if (r < 0) {
            pthread_mutex_unlock(&p->lock);
            pthread_mutex_unlock(&p->admin_lock);
            return r;
        }
    } else if (prop[0] == 'a') {
        p->autotrim = on;
    } else if (prop[1] == 'o') {
        p->comp = (uint8_t)c;
        p->comp_level = (uint8_t)(c == BS_COMPRESS_ZSTD ? (lvl ? lvl : 3) : 0);
    } else {
        p->cksum = (uint8_t)ck;
    }
    p->mos_dirty = true;
    uint64_t t = txg_dirty_open(p);
    pthread_mutex_unlock(&p->lock);
    r = txg_wait(p, t);
    pthread_mutex_unlock(&p->admin_lock);
    if (r < 0)
        return berr_set(err, -r, "pool '%s' could not commit the change", p->name);
    return 0;
}
