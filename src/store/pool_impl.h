/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal state of a pool and its volumes, shared by the engine core
 * (pool.c, vol.c, voladmin.c, txg.c, check.c).
 *
 * Lock order (docs/ARCHITECTURE.md):
 *   pool->admin_lock (control-plane calls, held across their txg waits)
 *   -> pool->lock (namespace: dataset list, records, props)
 *   -> ds->lock (dirty maps, committed root)
 *   -> txg.lock
 *   -> alloc / cache shard locks
 *   -> the idle-buffer locks of cache.c (innermost: cbuf_new/cbuf_unref may
 *      be called under any of the above; among themselves g_mags_lock (a
 *      thread's first call, cbuf_pool_set_limit) -> a thread's magazine
 *      lock -> a shared list's lock, and they take no other lock).
 * pool->dtl_lock is innermost too: held only around the stores that grow,
 * read or clear one leaf's DTL, stale mark and stale_gen together (dtl.c
 * top), under any of the above, sync_mutex and the scan's s->lock; nothing
 * else is taken or done (no I/O) while it is held.
 * pool->txg.sync_mutex is held by the sync thread across a whole txg; it is
 * taken before pool->lock and never while holding ds->lock or txg.lock.
 * No lock is held across device I/O except sync_mutex.
 *
 * Ownership: a `struct ds` (dataset: a volume) is reference-counted: the
 * pool's list holds one reference until the txg that destroys it has
 * committed, every open bs_vol handle holds one, the sync thread holds one
 * per txg.  The committed tree `od` and the syncing map are written only by
 * the sync thread (at publish, under ds->lock); the open map by writers under
 * ds->lock. */
#ifndef BERTH_STORE_POOL_IMPL_H
#define BERTH_STORE_POOL_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "berth/store.h"
#include "store/alloc.h"
#include "store/blkio.h"
#include "store/codec.h"
#include "store/label.h"
#include "store/mos.h"
#include "store/objtree.h"
#include "store/txg.h"
#include "store/vdev.h"

/* A dirty block of an open or syncing txg. */
struct dirty_ent {
    struct dirty_ent *next; /* hash chain */
    uint64_t blkid;
    struct cbuf *buf;       /* NULL: the whole block reads as zeros (hole) */
    struct blk_sealed *sealed; /* raw receive: buf holds this sealed block's
                                * ciphertext, written as it is (never read) */
};

#define MAX_LEAVES 32 /* leaves of one top-level vdev */
#define DIRTY_HOLE_BYTES 256 /* accounted per hole entry, so trims push syncs too */

/* Entries of a dmap are carved from slabs the map owns (vol.c dmap_add);
 * they are freed together by dmap_clear, never one by one. */
#define DENT_SLAB_N 512
struct dent_slab {
    struct dent_slab *next;
    unsigned used;
    struct dirty_ent ents[DENT_SLAB_N];
};

/* Hash map blkid -> dirty_ent (power-of-two buckets, grows at load 1). */
struct dmap {
    struct dirty_ent **tab;
    size_t mask;
    size_t count;
    uint64_t bytes;
    struct dent_slab *slabs; /* the entries' memory */
};

struct ds {
    struct bs_pool *pool;
    _Atomic int refs;
    struct ds *next;          /* pool list (pool->lock) */
    /* pool->lock: */
    struct mos_ds rec;        /* persistent record; rec.od unused (see od) */
    bool destroying;          /* gone from the namespace, freed by the next txg */
    int nopen;                /* open handles */
    /* lock-free copies for the data path */
    _Atomic uint64_t volsize;
    _Atomic bool readonly;
    _Atomic bool gone;        /* destroyed while open: I/O fails */
    _Atomic uint64_t read_next; /* where the last read ended (vol.c read_streams) */
    /* ds->lock: */
    pthread_mutex_t lock;
    struct dmap open, syncing;
    uint64_t open_txg;        /* txg of the open map */
    uint64_t gen;             /* bumped at quiesce and publish */
    uint64_t last_write_txg;  /* for bs_vol_flush */
    struct objdesc od;        /* committed tree */
    struct vkey *key;         /* rec.key_id's key, fixed for the ds's life (NULL: plaintext) */
    struct comp_hist comp_hist; /* recent compression outcomes of its data blocks (sync workers) */
};

static inline bool ds_is_snap(const struct ds *d)
{
    return (d->rec.flags & DS_FLAG_SNAPSHOT) != 0;
}

struct bs_vol {
    struct bs_pool *pool;
    struct ds *ds;
};

struct bs_pool {
    char name[64];
    uint64_t guid;
    uint64_t guid_sum;        /* of all leaves of all tops (uberblocks carry it) */
    uint64_t rewound_from;    /* import: the newest txg, when it went back from it */
    uint64_t rewound_to;      /* ... and the txg whose state it took */
    /* import: the devices given whose labels are all invalid (set aside by
     * pool_vdev_import, "" if none): errors about missing members name them */
    char import_damaged[256];
    /* The top-level vdevs (pool_tops.c): io.top[i] and top_hdr[i] (its label
     * template: everything but the per-leaf fields) for i < io.ntops.  The
     * pool-wide fields (name, guids, ashift, state) are the same in every
     * top_hdr; top_hdr[0] is the one read.  Tops are added (bs_pool_add)
     * under admin_lock + txg.sync_mutex and never removed while open. */
    struct label_hdr top_hdr[BLK_MAX_TOPS];
    struct blkio io;
    bool readonly;
    bool map_rebuilt;         /* import rebuilt the allocation map (maprebuild.c) */
    bool legacy_crypt;        /* MOS v3 encrypted volumes: no metadata MACs (read-only) */
    pthread_mutex_t admin_lock;
    pthread_mutex_t lock;
    struct ds *ds_list;
    uint64_t next_id;
    uint8_t autotrim, comp, comp_level, cksum;
    bool mos_dirty;           /* a namespace/property change waits for a txg */
    /* committed MOS (sync thread; read by check under sync_mutex) */
    struct objdesc mos_od;
    struct synctask *tasks;   /* queued for the open txg (pool->lock; snap.c) */
    uint8_t *mos_bytes;
    size_t mos_len;
    struct vkey *keys;         /* volume keys (pool->lock; keyadmin.c) */
    struct mos_cryptdef cryptdef; /* encryption defaults (pool->lock) */
    _Atomic uint64_t free_est; /* free bytes after the last txg (ENOSPC guard) */
    uint64_t slop;             /* bytes kept free for metadata COW */
    struct txg txg;
    struct scrub *scrub;      /* scrub.c; NULL until the first scrub */
    /* leaves' DTL + stale + stale_gen change under it as one step (dtl.c) */
    pthread_mutex_t dtl_lock;
    _Atomic unsigned dtl_clear_delay_ms; /* test knob: widen dtl_clear_if's window */
    _Atomic unsigned dtl_clear_delayed;  /* ... and how often it did (tests wait for it) */
};

/* Recompute free_est and the slop from the allocators (pool.c; at start
 * and after a top-level vdev joined). */
void pool_update_space(bs_pool *p);
/* A non-zero random 64-bit value (guids; pool.c). */
uint64_t pool_random_u64(void);

/* ---- the vdev tree (pool_vdev.c) ---- */

/* A parsed vdev spec: {"mirror", PATH, PATH...} or {PATH}. */
struct vdev_spec {
    int top_type; /* 0: one leaf; VDEV_TYPE_MIRROR, VDEV_TYPE_RAIDZ */
    unsigned nparity; /* raidz: 1..3 */
    const char *paths[32];
    unsigned n;
};
int pool_vdev_spec(const char *const *vdevs, size_t n, struct vdev_spec *s, struct berr *err);
/* Open the leaves of a new top-level vdev `top` (checking for old labels
 * unless force) and build p->io.top[top].vd; fills the tree fields of
 * p->top_hdr[top] (guids, top type, features).  Does not publish it. */
int pool_vdev_create(bs_pool *p, unsigned top, const struct vdev_spec *s, uint64_t size,
                     bool force, struct berr *err);
/* Open the given members, check their labels agree, group them by top
 * (label top_id) and assemble each top found in p->io.top[id].vd with
 * placeholders for missing members (refused when redundancy cannot cover
 * them), set p->top_hdr[id] from the labels; found[id] tells which tops
 * were found (io.ntops is left for pool_tops_for_ub).  A device without
 * a valid label copy given with others is set aside (p->import_damaged):
 * a missing member if the tree in force lacks one, else not a member.  On
 * error nothing stays open. */
int pool_vdev_import(bs_pool *p, const char *const *paths, size_t n, bool found[BLK_MAX_TOPS],
                     struct berr *err);
/* The uberblocks of all present leaves, newest first, deduplicated; marks
 * leaves that missed the newest txgs stale.  Count, or -errno. */
int pool_read_ubs(bs_pool *p, struct uberblock **out);
/* Write every usable leaf's label header (optionally wiping first) and
 * flush it: 0 if at least one leaf took it. */
int pool_write_labels(bs_pool *p, bool wipe_first);
/* The same (no wipe) for dtl_note_missed: also the usable leaves whose
 * write or flush failed, failed[t] bit i for child i of top t (a write that
 * failed quickly is retried once first: write_top_labels). */
int pool_write_labels_failed(bs_pool *p, uint32_t failed[BLK_MAX_TOPS]);
/* The same after the vdev tree of top tn changed: that top first, and in
 * it leaf `lead` (the member the change brings in; -1: none) before the
 * others (vdev_replace.c). */
int pool_write_tree_labels(bs_pool *p, unsigned tn, int lead);
/* If a leaf is stale, have the next txg rewrite the whole allocation map
 * (its chunks are on every leaf; the stale one lacks recent versions). */
void pool_refresh_stale(bs_pool *p);
/* Import: refuse (ENXIO) when the present members that are not stale cannot
 * provide every block (a mirror: none; a raidz: fewer than n - parity). */
int pool_check_fresh(bs_pool *p, struct berr *err);
int pool_wipe_labels(bs_pool *p);
/* Per-leaf status and the pool state into o (nvdevs, vdevs[], error sums). */
void pool_vdev_stats(bs_pool *p, bool faulted, uint64_t size, struct bs_pool_stats *o);

/* ---- several top-level vdevs (pool_tops.c) ---- */

/* Split a vdev list into top-level specs: "mirror A B mirror C D",
 * "raidz1 A B C raidz1 D E F", "A B" (two single-leaf tops); a keyword
 * starts a new top that runs to the next keyword.  Mixed kinds, widths or
 * parities need force (zpool's "mismatched replication level"). */
int pool_tops_spec(const char *const *vdevs, size_t n, bool force, struct vdev_spec *specs,
                   unsigned *nspecs, struct berr *err);
/* Sum of the guids of all leaves of tops [0, ntops). */
uint64_t pool_tops_guid_sum(bs_pool *p, unsigned ntops);
/* Fix the pool's tree to the one uberblock ub names (its top list, or top 0
 * alone): every listed top must have been found at import (else ENXIO
 * naming the missing top) with that guid; sets io.ntops. */
int pool_tops_for_ub(bs_pool *p, const struct uberblock *ub, const bool found[BLK_MAX_TOPS],
                     struct berr *err);
/* Close the tops found at import that the chosen tree does not list (an
 * interrupted pool add): they are not part of the pool. */
void pool_tops_drop_unlisted(bs_pool *p, const bool found[BLK_MAX_TOPS]);
/* Set up io.top[i] (data area of every top < ntops) and the rotor. */
int pool_tops_setup_io(bs_pool *p);
/* Load the allocation maps of all tops as of ub (alloc_load_checked each);
 * *li combines them (digest as pool_tops_digest, counts summed). */
int pool_tops_load_maps(bs_pool *p, const struct uberblock *ub, struct alloc_load_info *li,
                        struct berr *err);
void pool_tops_free_maps(bs_pool *p);
/* The map digest of the uberblock of txg (FORMAT.md 3): one top's own, or
 * over several the XXH3-128 of their digests; returns the chunk count. */
uint32_t pool_tops_digest(bs_pool *p, uint64_t txg, uint8_t out[16]);
/* The sync steps over all tops: write the changed map chunks; flush every
 * top; fill the uberblock's tree fields (digest, top list, feature) and
 * write it to every leaf of every top; after the txg is durable release
 * deferred frees (and update the free-space estimate). */
int pool_tops_sync_maps(bs_pool *p, uint64_t txg);
int pool_tops_flush(bs_pool *p);
int pool_tops_write_ub(bs_pool *p, struct uberblock *ub);
void pool_tops_txg_done(bs_pool *p, uint64_t txg);
void pool_tops_writeback_hint(bs_pool *p);
/* Lazy autotrim over all tops (alloc_trim_ripe): the trim thread's pass,
 * returning the bytes discarded. */
uint64_t pool_tops_trim_ripe(bs_pool *p, bool all, bool (*stop)(void *), void *sctx);
/* Pool-wide: are frees still deferred on any top; hold/release frees for a
 * scrub (alloc_hold_frees on every top); allocator statistics summed (raw
 * bytes, parity included); the share of raw bytes that is data. */
bool pool_tops_deferred_pending(bs_pool *p);
void pool_tops_hold_frees(bs_pool *p, uint64_t txg);
void pool_tops_alloc_stats(bs_pool *p, struct alloc_stats *st);
double pool_tops_data_fraction(bs_pool *p);
/* Free a block given by its DVA fields (deadlists), in txg. */
void pool_tops_free(bs_pool *p, uint32_t vdev, uint64_t off, uint64_t asize, uint64_t txg);
/* Is [off, off+asize) inside top vdev's data area, sector aligned? */
bool pool_tops_dva_ok(const bs_pool *p, uint32_t vdev, uint64_t off, uint64_t asize);
/* Leaves of all tops in order (top 0's first): the pool-wide leaf index
 * used by status, fault knobs and online/offline.  *top (if non-NULL) gets
 * the leaf's top and *child its index in it. */
unsigned pool_nleaves(bs_pool *p);
struct vdev *pool_leaf(bs_pool *p, unsigned i, unsigned *top, unsigned *child);
/* Recompute every top's state; the worst (ONLINE < DEGRADED < FAULTED). */
enum vdev_state pool_tops_state(bs_pool *p);
/* Set the state (active, exported) written by the next pool_write_labels. */
void pool_set_state(bs_pool *p, enum pool_state st);
/* Close every top's vdev (teardown). */
void pool_tops_close(bs_pool *p);
/* The per-top part of bs_pool_stats: tops[], ntops, and size/allocated/free
 * as usable bytes (raw_* with parity). */
void pool_tops_stats(bs_pool *p, struct bs_pool_stats *o);
/* Tests only: 1 or 2 makes bs_pool_add stop (ECANCELED) after that step of
 * its order (pool_tops.c), as a crash there would; 0 (default) off. */
extern _Atomic int pool_tops_test_stop;
/* pool_write_labels for top t alone (also before it is published). */
int pool_write_top_labels(bs_pool *p, unsigned t, bool wipe_first);

/* ---- scrub (scrub.c) ---- */
void scrub_stats(bs_pool *p, struct bs_pool_stats *o);
/* Stop the scrub thread (pool teardown). */
void scrub_fini(bs_pool *p);
/* A volume key in memory (keyadmin.c).  Entries live until the pool is
 * freed; `rec` changes under admin_lock + pool->lock.  `master` is set
 * under pool->lock and cleared only while no dataset using it is open and
 * after a sync, so the data path and the sync thread read it unlocked. */
struct vkey {
    struct vkey *next;
    struct mos_key rec;
    struct crypt_key *master; /* NULL: locked */
    int loaded_slot;          /* slot that unlocked it, -1 unknown */
    bool unloading;           /* bs_key_unload in progress: opens fail */
};

/* keys (keyadmin.c); pool->lock held for vkey_find */
struct vkey *vkey_find(struct bs_pool *p, uint64_t id);
/* The encryption context of block blkid of d, in *bc; NULL if plaintext. */
const struct blk_crypt *ds_blk_crypt(const struct ds *d, uint64_t blkid, struct blk_crypt *bc);
/* A new key for a volume being created from props (KDF work: no lock held). */
int vkey_new(struct bs_pool *p, const struct bs_vol_props *props, struct vkey **out,
             struct berr *err);
void vkey_free(struct vkey *k);
/* user_key_parse, also taking a raw key written as 64 hex digits. */
int vkey_parse(enum keyformat fmt, const void *buf, size_t len, struct user_key **uk,
               struct berr *err);
/* KDF parameters for a new slot of format fmt from the public options. */
void vkey_kdf(enum keyformat fmt, const struct bs_kdf_opts *o, struct kdf_params *out);
void vkeys_free(struct bs_pool *p);
/* Import: key records of the directory into p->keys (before the datasets). */
int vkeys_load_dir(struct bs_pool *p, const struct mos_dir *dir);
/* Sync: copy the keys named by d->ds and the defaults into d (takes pool->lock). */
int vkeys_to_dir(struct bs_pool *p, struct mos_dir *d);
/* Pool create: check and store the encryption defaults. */
int cryptdef_from_opts(const struct bs_pool_opts *o, struct mos_cryptdef *d, struct berr *err);
/* bs_pool_set_prop for "encryption", "keyformat", "keylocation" (pool->lock held);
 * 1 if prop is not one of them. */
int cryptdef_set(struct bs_pool *p, const char *prop, const char *value, struct berr *err);

/* datasets (voladmin.c) */
struct ds *ds_new(struct bs_pool *p, const struct mos_ds *rec);
void ds_ref(struct ds *ds);
void ds_unref(struct ds *ds);
/* Find a live (not destroying) dataset by name; caller holds pool->lock. */
struct ds *ds_find(struct bs_pool *p, const char *name);

/* A volume (not a snapshot, not a receive in progress) by name. */
struct ds *ds_find_vol(struct bs_pool *p, const char *name);
/* Resize a volume (recv: the hidden receive volume of that name); admin_lock
 * held. */
int vol_resize_locked(bs_pool *p, const char *name, uint64_t new_size, bool force, bool recv,
                      struct berr *err);
/* Space of volume h (pool->lock held; snap.c). */
int vol_space_locked(struct bs_pool *p, struct ds *h, struct bs_vol_space *o);

/* A new dataset from rec, linked into the pool (pool->lock held). */
int ds_insert_new(struct bs_pool *p, const struct mos_ds *rec, struct berr *err);
/* The end of an admin call that changed records (pool->lock and admin_lock
 * held, both released): if r is 0 mark the directory dirty and wait for the
 * txg carrying it.  Returns the result. */
int admin_record_commit(struct bs_pool *p, int r, const char *what, struct berr *err);
/* Wait until txg t, the one carrying an admin change, is durable. */
int admin_commit(struct bs_pool *p, uint64_t t, struct berr *err, const char *what);

/* Find a dataset by id (pool->lock held); NULL if none. */
struct ds *ds_by_id(struct bs_pool *p, uint64_t id);

/* dirty maps (dmap.c) */
struct dirty_ent *dmap_find(const struct dmap *m, uint64_t blkid); /* NULL if absent */
/* A new entry blkid -> buf (buf taken only on success); NULL on ENOMEM. */
struct dirty_ent *dmap_add(struct dmap *m, uint64_t blkid, struct cbuf *buf);
void dmap_clear(struct dmap *m); /* unref buffers, free entries */
/* The entries of m with blkid < nblocks into out (room for m->count),
 * sorted by blkid; returns how many. */
size_t dmap_sorted(const struct dmap *m, uint64_t nblocks, struct dirty_ent **out);

/* shared block cache (pool.c) */
uint32_t pool_cache_id(void);

/* Drop the pool without syncing or touching the labels: what a crash leaves
 * behind.  For tests only. */
void pool_abandon(bs_pool *p);

/* The whole process's memory limit given to bs_memory_limit (0: none). */
uint64_t pool_memory_limit(void);
/* The block cache shared by all pools (pool_tunables.c): a reference and a
 * cache id for the pool; NULL without memory.  put(NULL) is a no-op. */
struct bcache *pool_cache_get(uint32_t *id);
void pool_cache_put(struct bcache *c);

#endif
