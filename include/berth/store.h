/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* berth storage engine: the public interface.
 *
 * A pool is a set of vdevs (files or block devices: one, or a mirror) holding
 * a copy-on-write tree of blocks committed in transaction groups (txgs).  A
 * volume is a thin block device inside a pool (like a ZFS zvol).  This header
 * is all that the NBD server, the daemon and the tests may use; nothing here
 * knows about NBD, HTTP or QEMU.
 *
 * Conventions (see src/common/err.h):
 *  - functions return 0 / a non-negative value on success, -errno on failure;
 *  - control-plane calls fill `struct berr *err` (may be NULL) with a message
 *    meant for the user;
 *  - data-path calls (bs_vol_pread ...) are thread-safe, may run concurrently
 *    from many threads on the same volume, and never block on control-plane
 *    work longer than a txg sync;
 *  - a pool handle is used from many threads; control-plane calls on one pool
 *    are serialised internally.
 *
 * Data-path error codes: -EIO (a block failed verification or the vdev
 * failed: never wrong data), -ENOSPC (pool full), -EROFS (read-only volume
 * or snapshot), -EINVAL (range outside the volume), -ENOMEM.
 */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bs_pool bs_pool;

#define BS_POOL_ERROR_NAME 160
typedef struct bs_vol bs_vol;

/* ---- enums shared with the on-disk format (values are stored on disk) ---- */

enum bs_compress {
    BS_COMPRESS_OFF = 0,
    BS_COMPRESS_LZ4 = 1,
    BS_COMPRESS_ZSTD = 2, /* level in bs_vol_props.compress_level (1..19, default 3) */
};

enum bs_checksum {
    BS_CHECKSUM_XXH3 = 1,   /* XXH3-128 */
    BS_CHECKSUM_SHA256 = 2, /* SHA-256 */
};

/* Encryption (docs/FORMAT.md section 10).  A volume is encrypted or not from
 * its creation.  Its data is encrypted (AES-256-GCM) under a random master
 * key that up to BS_KEYSLOTS_MAX user keys wrap ("key slots"); a user key
 * is 32 raw bytes, the same as 64 hex digits, or a passphrase of 8..512
 * bytes (stretched by Argon2id or PBKDF2).  The key is found at the volume's
 * keylocation: "file:///absolute/path" (loaded automatically at import) or
 * "prompt" (the caller supplies it).  Snapshots and clones share the key of
 * their volume. */
#define BS_KEYLOCATION_MAX 1024
#define BS_KEYSLOTS_MAX 8

enum bs_keyformat {
    BS_KEYFORMAT_NONE = 0,
    BS_KEYFORMAT_RAW = 1,        /* 32 bytes */
    BS_KEYFORMAT_HEX = 2,        /* 64 hex digits */
    BS_KEYFORMAT_PASSPHRASE = 3, /* 8..512 bytes */
};

enum bs_kdf { BS_KDF_DEFAULT = 0, BS_KDF_ARGON2ID = 1, BS_KDF_PBKDF2 = 2 };

/* KDF of a new passphrase slot; all zero = Argon2id t=3, 64 MiB, p=1.
 * Ignored for raw and hex keys. */
struct bs_kdf_opts {
    enum bs_kdf kdf;
    uint32_t t_cost;      /* Argon2 passes, or PBKDF2 iterations (0: default) */
    uint32_t m_cost_kib;  /* Argon2 memory (0: default) */
    uint32_t parallelism; /* Argon2 lanes (0: default) */
};

/* A user key handed to the bs_key_* calls.  The engine copies what it needs
 * into locked memory; the caller wipes its own copy of `data`. */
struct bs_key {
    enum bs_keyformat format; /* 0: the volume's keyformat */
    const void *data;         /* key material (a raw key may also be given as 64 hex
                                 digits); NULL: read it from `location` */
    size_t len;
    const char *location;     /* NULL: the volume's keylocation */
    struct bs_kdf_opts kdf;   /* for a new slot (bs_key_add, bs_key_change) */
};

/* ---- pools ---- */

struct bs_pool_opts {
    int ashift;            /* 9..16; 0 = detect from the device (files: 12) */
    bool autotrim;         /* punch holes / discard freed space (default on) */
    bool force;            /* overwrite a device that holds a berth pool label */
    /* defaults for new volumes (the pool "root" properties) */
    enum bs_compress compression; /* default LZ4 */
    int compress_level;           /* zstd level, 0 = default (3) */
    enum bs_checksum checksum;    /* default XXH3 */
    /* encryption defaults for new volumes (zpool create -O encryption=on
     * -O keyformat=... -O keylocation=...); off by default.  With encryption
     * on, keyformat is required and keylocation "" means "prompt"; a file://
     * location must hold a key of that format when the pool is created. */
    bool encryption;
    enum bs_keyformat keyformat;
    char keylocation[BS_KEYLOCATION_MAX];
};
void bs_pool_opts_init(struct bs_pool_opts *o); /* fill with the defaults */

/* Engine-wide tunables, set once before the first pool is opened. */
struct bs_tunables {
    uint64_t cache_bytes;       /* block cache limit (default 512 MiB) */
    uint64_t dirty_max_bytes;   /* writers wait above this (default RAM/16, 64 MiB..1 GiB) */
    unsigned txg_timeout_ms;    /* sync at least this often (default 5000) */
    unsigned sync_threads;      /* compress/checksum workers (default ncpu) */
};
void bs_tunables_get(struct bs_tunables *t);
void bs_tunables_set(const struct bs_tunables *t);

/* One memory limit for the engine, like ZFS's ARC limit but covering dirty
 * data too: of `bytes` minus `reserve` (what the caller keeps for itself,
 * e.g. NBD request buffers) minus the process's own overhead (bytes/8 +
 * 24 MiB: code, stacks, metadata, malloc's slack), 1/4 (at most 1 GiB)
 * bounds dirty data, 1/32 the idle buffers kept for reuse, the rest the
 * block cache.  So the whole process stays within `bytes` when the caller's
 * `reserve` is honest. */
void bs_memory_limit(uint64_t bytes, uint64_t reserve);
/* The default limit: RAM/4, from 256 MiB to 4 GiB. */
uint64_t bs_memory_default(void);

/* Create a pool on vdev paths (files are created if missing; `size` is
 * used for a new or shorter file and ignored for block devices, 0 = require an
 * existing file/device).  Fails with EEXIST if a device carries a berth
 * label and !opts->force.
 *
 * The vdev spec (like zpool create): {PATH} is a pool on one device;
 * {"mirror", PATH, PATH, ...} (2..32 devices) keeps a copy of every block on
 * each of them, and its size is the smallest device's; {"raidzN", PATH, ...}
 * (N = 1..3, "raidz" = raidz1; N+1..32 devices) stripes every block with N
 * parity columns over them (docs/FORMAT.md 2), so any N may fail.  Several
 * top-level vdevs (up to BS_POOL_MAX_TOPS): {"mirror", A, B, "mirror", C,
 * D}, {"raidz1", A, B, C, "raidz1", D, E, F}, or plain paths {A, B} (one
 * single-device top each: a stripe without redundancy); a keyword starts a
 * top that runs to the next keyword; blocks are spread over all tops.  Tops
 * of different kinds, widths or parities need opts->force (EINVAL
 * "mismatched replication level" otherwise). */
int bs_pool_create(const char *name, const char *const *vdevs, size_t nvdevs, uint64_t size,
                   const struct bs_pool_opts *opts, bs_pool **out, struct berr *err);

/* Import a pool from the given vdev paths (every member of every top-level
 * vdev that is present, in any order; no "mirror" keyword).  Every top the
 * newest uberblock lists must be there (ENXIO naming a missing one);
 * devices of a top it does not list (an interrupted bs_pool_add) are
 * ignored.  `name` may be NULL (take
 * the pool on those devices) or the expected pool name (ENOENT if
 * different).  A mirror with members missing imports DEGRADED as long as
 * one member is there, a raidzN as long as at most N are missing (ENXIO
 * naming the missing ones otherwise).  A pool not
 * cleanly exported is imported all the same (that is crash recovery);
 * another process holding it open gives EBUSY. */
int bs_pool_import(const char *const *vdevs, size_t nvdevs, const char *name, bs_pool **out,
                   struct berr *err);

/* Import options (bs_pool_import_opts; NULL or all zero: the defaults). */
struct bs_import_opts {
    /* The newest uberblock's state must load (MOS readable, directory
     * consistent); if it does not, the import fails (EILSEQ) and says so.
     * With rewind, the newest older uberblock whose state loads is taken
     * instead, as ZFS's `zpool import -F`: the writes of the txgs after it
     * are lost, and berthd logs which txg the pool went back to. */
    bool rewind;
};
int bs_pool_import_opts(const char *const *vdevs, size_t nvdevs, const char *name,
                        const struct bs_import_opts *opts, bs_pool **out, struct berr *err);
/* The txg an import rewound from (0: it took the newest uberblock), and
 * in *to (may be NULL) the txg whose state it took. */
uint64_t bs_pool_rewound_from(const bs_pool *p, uint64_t *to);

/* Description of one importable pool found by bs_pool_scan. */
struct bs_pool_found {
    char name[64];
    uint64_t guid;
    uint64_t txg;
    char state[16];       /* "active" (not exported), "exported", or "damaged" */
    char vdev_path[4096]; /* the device/file it was found on */
    char problem[256];    /* state "damaged": why the label cannot be used (name "" then) */
};
/* Scan a directory (files and block devices in it) for pool labels.  Calls
 * cb for each vdev with a valid label, and for each that holds a berth label
 * it cannot use (damaged, or from a newer format: state "damaged", `problem`
 * says why), so that an import can say why a pool was not found; cb returns
 * non-zero to stop. */
int bs_pool_scan(const char *dir, int (*cb)(const struct bs_pool_found *f, void *opaque),
                 void *opaque, struct berr *err);

/* Commit everything, mark the pool exported and release it.  The handle is
 * freed even on error.  EBUSY (and nothing done) if volumes are open and
 * !force. */
int bs_pool_export(bs_pool *p, bool force, struct berr *err);

/* Commit everything and release without marking exported (daemon shutdown:
 * the pool is re-imported at next start).  NULL is accepted. */
void bs_pool_close(bs_pool *p);

/* Destroy: wipe the labels so the device no longer imports; frees p. */
int bs_pool_destroy(bs_pool *p, bool force, struct berr *err);

/* Force a txg commit and wait until it is durable. */
int bs_pool_sync(bs_pool *p, struct berr *err);

/* Give every free range of the pool back to the device (punch/discard). */
int bs_pool_trim(bs_pool *p, uint64_t *trimmed_bytes, struct berr *err);

const char *bs_pool_name(const bs_pool *p);

/* One leaf device of a pool. */
struct bs_vdev_stats {
    char path[4096];         /* "missing-GUID" for a member missing since import (not
                                given, or given but not its label's device); the path of
                                one given whose labels are all damaged */
    char type[16];           /* "file" or "disk" */
    char state[16];          /* "ONLINE", "FAULTED" (a write failed), "OFFLINE",
                                "UNAVAIL" (missing or damaged: see reason) */
    char reason[32];         /* why UNAVAIL, as zpool says it: "cannot open" (missing),
                                "corrupted data" (its labels all damaged); else "" */
    uint64_t size;           /* usable bytes */
    uint64_t read_errors, write_errors, checksum_errors;
    uint64_t reads, writes, bytes_read, bytes_written;
    uint64_t guid;
    bool stale;              /* missed txgs while away: a resilver (or scrub) repairs it */
    uint64_t repaired_bytes; /* rewritten from a good copy (self-healing, scrub) */
    uint64_t dtl_lo, dtl_hi; /* the txgs it missed and lacks (0, 0: none) */
    bool resilvering;        /* a running resilver is filling it */
    char replacing[256];     /* "" or the path of the device it replaced (until resilvered) */
};

/* Top-level vdevs per pool, and leaves listed in bs_pool_stats. */
#define BS_POOL_MAX_TOPS 16
#define BS_POOL_MAX_LEAVES_SHOWN 32
/* Device paths berthd keeps and passes per pool (API bodies, pools.json). */
#define BS_POOL_MAX_DEVICES 64

/* One top-level vdev. */
struct bs_top_stats {
    char name[24];           /* as zpool status names them: "mirror-0", "raidz1-1", or
                                for a single device "disk-2" (its leaf is vdevs[first_leaf]) */
    char type[16];           /* "single", "mirror", "raidz1", "raidz2", "raidz3" */
    char state[16];          /* "ONLINE", "DEGRADED", "FAULTED" */
    unsigned first_leaf, nleaves; /* its leaves: vdevs[first_leaf .. first_leaf+nleaves) */
    uint64_t guid;
    uint64_t size, allocated, free;  /* usable bytes (after parity) */
    uint64_t raw_size, raw_allocated; /* bytes of its data area, parity included */
    uint64_t checksum_errors;        /* blocks of it no copy verified */
    uint64_t alloc_bytes;            /* bytes allocated on it since the pool was opened */
};

/* The last or current scan: a scrub or a resilver. */
struct bs_scan_stats {
    char state[16];          /* "none", "scanning", "paused", "finished", "canceled" */
    char func[16];           /* "scrub" or "resilver" */
    uint64_t resilvered;     /* resilver: bytes written to the resilvering devices */
    uint64_t start_time, end_time; /* unix seconds (end 0 while running) */
    uint64_t txg;            /* the committed txg whose blocks it verifies */
    uint64_t examined;       /* bytes of blocks verified so far */
    uint64_t total;          /* allocated bytes when it started */
    uint64_t repaired;       /* bytes rewritten from good copies */
    uint64_t errors;         /* blocks no copy could repair (bs_pool_errors) */
    double rate;             /* bytes/s while scanning */
    uint64_t eta_seconds;    /* 0 when unknown or done */
    struct bs_scrub_pos {    /* where a scanning or paused scrub is (to resume it */
        uint64_t id, blk;    /* after a restart: bs_pool_scrub_resume) */
        int part;
    } pos;
};

struct bs_pool_stats {
    char name[64];
    uint64_t guid;
    char state[16];          /* "ONLINE", "DEGRADED", "FAULTED" */
    uint64_t txg;            /* last committed txg */
    int ashift;
    bool autotrim;
    uint64_t size;           /* allocatable bytes */
    uint64_t allocated;      /* allocated bytes (incl. metadata) */
    uint64_t free;
    unsigned fragmentation;  /* percent of free space in runs < 1 MiB */
    uint64_t logical_bytes;  /* sum of logical sizes of data blocks */
    uint64_t physical_bytes; /* sum of allocated sizes of data blocks */
    double compressratio;    /* logical / physical data, 1.00 when empty */
    uint64_t read_errors, write_errors, checksum_errors; /* sums over vdevs */
    uint64_t nvols;
    enum bs_compress compression; /* root defaults */
    int compress_level;
    enum bs_checksum checksum;
    uint64_t cache_bytes, cache_hits, cache_misses;
    bool encryption;              /* encryption defaults for new volumes */
    enum bs_keyformat keyformat;
    char keylocation[BS_KEYLOCATION_MAX];
    size_t nvdevs;
    struct bs_vdev_stats vdevs[BS_POOL_MAX_LEAVES_SHOWN]; /* leaves of all tops, in order */
    char layout[16];         /* "single", "mirror", "raidz1", "raidz2", "raidz3" (top 0's;
                                "mixed" if the tops differ) */
    struct bs_scan_stats scan;
    /* The top-level vdevs (size, allocated and free above are their sums,
     * usable bytes: after parity and mirroring; raw_* include parity). */
    uint64_t raw_size, raw_allocated, raw_free;
    size_t ntops;
    struct bs_top_stats tops[BS_POOL_MAX_TOPS];
};
/* state: "ONLINE", "DEGRADED" (a leaf is not ONLINE or is stale: redundancy
 * is reduced but everything is served), "FAULTED" (a txg failed: reads only),
 * "READONLY". */
int bs_pool_stats(bs_pool *p, struct bs_pool_stats *out);

/* Take a mirror or raidz member out of service (OFFLINE; not remembered
 * across import) or bring one back (ONLINE; stale, with a DTL of the txgs it
 * missed, until the resilver this starts has copied them).  `dev` is the leaf's path or index; a member missing since
 * import is brought back by its (new) path.  EBUSY if the members left up to
 * date could not serve every block (a mirror: none left; a raidz: fewer than
 * all but nparity); ENOTSUP on a single-device pool. */
int bs_pool_offline(bs_pool *p, const char *dev, struct berr *err);
int bs_pool_online(bs_pool *p, const char *dev, struct berr *err);

/* Device replacement (vdev_replace.c).  Each changes the pool's vdev tree
 * crash-safely (FORMAT.md 2, "Changing the tree": every label is rewritten
 * with the next txg as config_txg, then that txg commits) and, for a new
 * device, starts a resilver that copies the allocated blocks to it
 * (progress in bs_pool_stats().scan with func "resilver").
 *
 * replace: `new_dev` (a file, created if absent, or a block device of at
 * least the pool's device size, not in use by a pool unless force) takes the
 * place of mirror or raidz member `old_dev` (path, index, or the
 * "missing-GUID" name of a member missing since import).  A healthy mirror
 * member stays until new_dev is resilvered and is detached then (the
 * labels keep this across a crash); any other old device leaves the pool
 * at once (its label is wiped if it is readable), so the members left must
 * hold every block (EBUSY otherwise).
 * attach: `new_dev` becomes a mirror copy of `existing` (a single-device
 * pool becomes a 2-way mirror; a mirror gains a member, up to 32; ENOTSUP
 * on raidz).
 * detach: a mirror member leaves the pool (its label is wiped); EBUSY if
 * the members left would not hold an up-to-date copy of every block; a
 * 2-way mirror becomes a mirror of one (it can be attached to again). */
int bs_pool_replace(bs_pool *p, const char *old_dev, const char *new_dev, bool force,
                    struct berr *err);
int bs_pool_attach(bs_pool *p, const char *existing, const char *new_dev, bool force,
                   struct berr *err);
int bs_pool_detach(bs_pool *p, const char *dev, struct berr *err);
/* Wait until no scan is scanning; true if there was no resilver or the
 * last one finished and copied every block (false: it was interrupted, or
 * some block had no good copy: the devices keep their DTLs, stale). */
bool bs_pool_resilver_wait(bs_pool *p);

/* Grow the pool by one or more top-level vdevs, online (I/O continues):
 * vdevs is a spec as for bs_pool_create ("mirror A B", "raidz1 A B C",
 * "A", or several of them).  Each new top's labels and empty allocation map
 * are written first, then one txg switches the pool's tree to include it
 * (FORMAT.md 2); new blocks are spread over all tops, the emptier ones
 * receiving more.  A top whose kind, width or parity differs from the
 * pool's needs force (EINVAL otherwise, as zpool's "mismatched replication
 * level"); so does a device holding another pool's labels.  EROFS on a
 * read-only or faulted pool; ENOSPC past BS_POOL_MAX_TOPS tops.  `size`
 * as for bs_pool_create: files that do not exist are created that large
 * (0: they must exist). */
int bs_pool_add(bs_pool *p, const char *const *vdevs, size_t nvdevs, uint64_t size, bool force,
                struct berr *err);

/* Scrub: a background thread reads every allocated block of the pool as of
 * the txg it starts from (the MOS, each volume's and snapshot's own blocks,
 * deadlists), verifies every copy and rewrites bad ones from a good copy;
 * blocks no copy can repair are listed by bs_pool_errors.  START begins a
 * scrub (or resumes a paused one; EBUSY if one runs), PAUSE suspends it
 * (freed space held for it is released), STOP cancels it.  While it runs,
 * space freed by new writes is not reused until it finishes or pauses.
 * Progress is in bs_pool_stats().scan.  Not resumed after export/import. */
enum bs_scrub_cmd { BS_SCRUB_START = 0, BS_SCRUB_PAUSE = 1, BS_SCRUB_STOP = 2 };
int bs_pool_scrub(bs_pool *p, enum bs_scrub_cmd cmd, struct berr *err);
/* Start a scrub at `pos` (a position bs_pool_stats reported before a
 * restart): what came before it was verified by the interrupted scrub.  A
 * resumed scrub does not clear the stale marks of devices (only a whole one
 * proves they hold everything).  EBUSY if a scrub runs. */
int bs_pool_scrub_resume(bs_pool *p, const struct bs_scrub_pos *pos, struct berr *err);
/* Wait until no scrub is scanning (finished, canceled, paused or none). */
void bs_pool_scrub_wait(bs_pool *p);

/* A block the last scrub could not repair. */
struct bs_pool_error {
    char dataset[BS_POOL_ERROR_NAME]; /* "VOL", "VOL@SNAP", "(pool directory)",
                                         "deadlist of VOL@SNAP" */
    char what[16];           /* "data" or "metadata" (an indirect block and below) */
    uint64_t offset;         /* byte offset in the dataset (data), or of the first
                                block the unreadable indirect covers */
    uint64_t length;         /* bytes affected (data: the block size) */
};
/* cb for each error of the last scrub (at most 1024 are kept); returns the
 * number of errors. */
int bs_pool_errors(bs_pool *p, int (*cb)(const struct bs_pool_error *e, void *opaque),
                   void *opaque);

/* Change a pool property ("autotrim", "compression", "checksum", and the
 * encryption defaults "encryption" (on|off|aes-256-gcm), "keyformat"
 * (raw|hex|passphrase), "keylocation" (prompt|file:///path)). */
int bs_pool_set_prop(bs_pool *p, const char *prop, const char *value, struct berr *err);

/* ---- volumes ---- */

struct bs_vol_props {
    char name[64];
    uint64_t volsize;
    uint32_t volblocksize;      /* 4K..128K, power of two; fixed at creation */
    enum bs_compress compression;
    int compress_level;
    enum bs_checksum checksum;
    uint64_t refreservation;    /* bytes kept for the volume (thick: = volsize) */
    bool readonly;
    /* read-only accounting */
    uint64_t used;              /* allocated bytes incl. indirect blocks, or
                                   refreservation if larger */
    uint64_t referenced;        /* allocated bytes reachable from the volume */
    uint64_t logicalused;       /* logical bytes of non-hole data blocks */
    double compressratio;
    uint64_t create_txg;
    uint64_t guid;
    /* encryption: bs_vol_props_init takes the pool's defaults; fixed at
     * creation (keyformat/keylocation change with bs_key_change) */
    bool encrypted;
    enum bs_keyformat keyformat;
    char keylocation[BS_KEYLOCATION_MAX];
    const void *key;            /* create: key material (needed for keylocation=prompt;
                                   else read from the file); the caller wipes it */
    size_t keylen;
    struct bs_kdf_opts kdf;     /* create: KDF of the first slot */
    bool keyloaded;             /* read-only: "keystatus" available (or not encrypted) */
    unsigned keyslots;          /* read-only: key slots in use */
};

/* Create a volume.  props->name, volsize must be set; volblocksize 0 means
 * 16K; compression/checksum < 0 ... use bs_vol_props_init to take the pool's
 * defaults, then override.  thick = set refreservation to volsize. */
void bs_vol_props_init(bs_pool *p, struct bs_vol_props *props);
int bs_vol_create(bs_pool *p, const struct bs_vol_props *props, bool thick, struct berr *err);

/* Destroy a volume and free its blocks (EBUSY if open, unless force). */
int bs_vol_destroy(bs_pool *p, const char *name, bool force, struct berr *err);

/* List volumes: cb called with each volume's properties (sorted by name). */
int bs_vol_list(bs_pool *p, int (*cb)(const struct bs_vol_props *props, void *opaque),
                void *opaque, struct berr *err);

int bs_vol_get(bs_pool *p, const char *name, struct bs_vol_props *out, struct berr *err);

/* Set a property by name: "compression" (lz4|zstd|zstd-N|off), "checksum"
 * (xxh3|sha256), "refreservation" (size|none), "readonly" (on|off),
 * "volsize" (same as resize without force).  Read-only or unknown
 * properties give EINVAL with a message naming them. */
int bs_vol_set(bs_pool *p, const char *name, const char *prop, const char *value,
               struct berr *err);

/* Grow (or, with force, shrink: data past the new end is freed). */
int bs_vol_resize(bs_pool *p, const char *name, uint64_t new_size, bool force,
                  struct berr *err);

/* Open a volume for I/O.  Handles are reference-counted by the pool; many may
 * be open at once (one per NBD connection).  The pool must outlive them.
 * An encrypted volume or snapshot whose key is not loaded: EACCES. */
int bs_vol_open(bs_pool *p, const char *name, bs_vol **out, struct berr *err);
void bs_vol_close(bs_vol *v); /* NULL accepted */

uint64_t bs_vol_size(bs_vol *v);        /* current volsize (may change by resize) */
uint32_t bs_vol_blocksize(bs_vol *v);   /* volblocksize */
bool bs_vol_readonly(bs_vol *v);

/* ---- the data path ---- */

#define BS_IO_FUA 1u       /* durable when the call returns */
#define BS_IO_NO_HOLE 2u   /* bs_vol_zero: the caller asked not to punch (we may still store
                              zero blocks as holes; the range reads as zeros either way) */
#define BS_IO_FAST_ZERO 4u /* bs_vol_zero: fail with -ENOTSUP rather than doing slow work */
/* bs_vol_pwrite: -EAGAIN rather than wait, for a caller that must not block
 * (the NBD reader, nbd/conn.c): for the dirty-data throttle or space to
 * free up, or for a device read (the old contents of a partly written
 * block that neither the block cache nor the pool file's page cache holds;
 * a mirror or raidz pool always reads through the blocking path).  After
 * -EAGAIN part of the range may already be written; the caller writes the
 * whole range again without the flag.  Not with BS_IO_FUA (-EINVAL). */
#define BS_IO_NOWAIT 8u

/* Read/write [off, off+len) of the volume.  The range must lie inside the
 * volume (-EINVAL otherwise).  Unwritten ranges read as zeros. */
int bs_vol_pread(bs_vol *v, void *buf, uint64_t len, uint64_t off);
int bs_vol_pwrite(bs_vol *v, const void *buf, uint64_t len, uint64_t off, unsigned flags);

/* Writes of whole blocks without a copy.  A front end that receives data
 * (an NBD WRITE payload) gets block buffers of volblocksize bytes with
 * bs_vol_wbuf_new, fills them (bs_wbuf_data, 64-byte aligned) and hands them
 * to bs_vol_pwrite_bufs, which makes each one the dirty copy of its block:
 * the data is not copied again.  bs_vol_pwrite_bufs takes over every buffer
 * it is given, whatever it returns (the caller must not touch them
 * afterwards); a buffer that is not handed over is freed with
 * bs_wbuf_free.  Buffers come from the engine's idle-buffer pool, so the
 * steady state allocates nothing.  A buffer already handed over once is
 * refused (-EINVAL): one buffer never backs two blocks. */
typedef struct bs_wbuf bs_wbuf;
bs_wbuf *bs_vol_wbuf_new(bs_vol *v); /* NULL on ENOMEM */
void *bs_wbuf_data(bs_wbuf *b);
void bs_wbuf_free(bs_wbuf *b); /* NULL accepted */
/* Write n whole blocks from bufs[0..n) at off (a multiple of the block
 * size), flags as bs_vol_pwrite.  Every buffer must come from
 * bs_vol_wbuf_new of a volume with the same block size. */
int bs_vol_pwrite_bufs(bs_vol *v, bs_wbuf *const *bufs, size_t n, uint64_t off, unsigned flags);

/* Make the range read as zeros; whole blocks become holes (space freed). */
int bs_vol_zero(bs_vol *v, uint64_t len, uint64_t off, unsigned flags);

/* Discard: like zero (berth always returns zeros for trimmed ranges). */
int bs_vol_trim(bs_vol *v, uint64_t len, uint64_t off, unsigned flags);

/* All writes completed before this call are durable when it returns. */
int bs_vol_flush(bs_vol *v);

/* Prefetch the range into the cache (NBD_CMD_CACHE). */
int bs_vol_cache(bs_vol *v, uint64_t len, uint64_t off);

#define BS_EXTENT_HOLE 1u /* no storage allocated */
#define BS_EXTENT_ZERO 2u /* reads as zeros */
/* Describe the allocation of [off, off+len): cb is called with consecutive
 * extents, each starting where the previous ended, merged where flags match;
 * stops early if cb returns non-zero (that value is returned). */
int bs_vol_block_status(bs_vol *v, uint64_t len, uint64_t off,
                        int (*cb)(uint64_t off, uint64_t len, unsigned flags, void *opaque),
                        void *opaque);

/* ---- snapshots, clones, rollback (docs/SNAPSHOTS.md) ----
 *
 * A snapshot is named "VOL@SNAP" (each part a valid name of at most 63
 * characters).  It is read-only and costs O(1) to create: it shares every
 * block with its volume until the volume overwrites it.  bs_vol_open accepts
 * a snapshot name and returns a read-only handle (bs_vol_readonly() true).
 * A clone is a volume created from a snapshot, sharing its blocks. */

#define BS_SNAP_NAME_MAX 128 /* "VOL@SNAP" plus NUL */

struct bs_snap_props {
    char name[BS_SNAP_NAME_MAX]; /* "VOL@SNAP" */
    char volume[64];             /* VOL */
    uint64_t guid;               /* identifies the snapshot in send streams */
    uint64_t create_txg;         /* txg whose state it holds */
    uint64_t creation;           /* unix time */
    uint64_t volsize;
    uint32_t volblocksize;
    uint64_t used;               /* bytes freed if it were destroyed now (unique) */
    uint64_t referenced;         /* allocated bytes reachable from it */
    uint64_t logicalreferenced;  /* logical bytes of its non-hole data blocks */
    double compressratio;
    uint32_t nholds;             /* user holds (bs_snap_hold); > 0 blocks destroy */
    char holds[256];             /* hold tags, comma-separated */
    uint32_t nclones;            /* volumes created from it (bs_vol_clone) */
    bool defer_destroy;          /* destroy requested; waits for its clones */
    bool encrypted;              /* shares its volume's key */
    bool keyloaded;
};

/* Create snapshots "VOL@SNAP" of several volumes atomically: all of them
 * capture the same txg (the writes acknowledged before the call).  EEXIST if
 * a name exists, ENOENT if a volume does not; nothing is created on error. */
int bs_snap_create(bs_pool *p, const char *const *names, size_t n, struct berr *err);

#define BS_DESTROY_FORCE 1u     /* volumes: close open handles (I/O then fails) */
#define BS_DESTROY_RECURSIVE 2u /* volumes: also destroy its snapshots */
#define BS_DESTROY_DEFER 4u     /* snapshots: if clones depend on it, hide it now and
                                   destroy it when the last clone goes */

/* Destroy a snapshot, freeing exactly the blocks only it held.  EBUSY if it
 * has holds, or clones (unless BS_DESTROY_DEFER), or is open (unless
 * BS_DESTROY_FORCE). */
int bs_snap_destroy(bs_pool *p, const char *name, unsigned flags, struct berr *err);

/* List snapshots of one volume (vol non-NULL) or of all volumes, ordered by
 * volume name then creation txg. */
int bs_snap_list(bs_pool *p, const char *vol,
                 int (*cb)(const struct bs_snap_props *props, void *opaque), void *opaque,
                 struct berr *err);
int bs_snap_get(bs_pool *p, const char *name, struct bs_snap_props *out, struct berr *err);

/* Holds: a tag (valid name) per hold; a held snapshot cannot be destroyed.
 * EEXIST if the tag is already held, ENOENT on release of an unknown tag. */
int bs_snap_hold(bs_pool *p, const char *name, const char *tag, struct berr *err);
int bs_snap_release(bs_pool *p, const char *name, const char *tag, struct berr *err);

/* Roll the volume back to any of its snapshots (not only the latest): its
 * contents become the snapshot's; newer snapshots are KEPT and stay
 * readable.  Writes since then are lost.  EBUSY if the volume is open,
 * unless BS_DESTROY_FORCE (open handles then fail with ENXIO). */
int bs_vol_rollback(bs_pool *p, const char *snapname, unsigned flags, struct berr *err);

/* Create volume `newvol` from snapshot `snapname` instantly, sharing its
 * blocks.  props (may be NULL) overrides compression/checksum/readonly. */
int bs_vol_clone(bs_pool *p, const char *snapname, const char *newvol,
                 const struct bs_vol_props *props, struct berr *err);

/* Make clone `vol` independent of its origin volume: the origin snapshot and
 * the snapshots before it move to `vol` (renamed vol@...); the former origin
 * volume becomes a clone of vol@origin.  EEXIST on a snapshot name clash. */
int bs_vol_promote(bs_pool *p, const char *vol, struct berr *err);

/* Destroy with BS_DESTROY_* flags.  With snapshots and without
 * BS_DESTROY_RECURSIVE: EBUSY.  A volume whose snapshots have clones: EBUSY
 * (promote or destroy the clones first). */
int bs_vol_destroy_ex(bs_pool *p, const char *name, unsigned flags, struct berr *err);

/* Space of a volume and its snapshots (ZFS's definitions). */
struct bs_vol_space {
    uint64_t used;                 /* = the four usedby* below */
    uint64_t usedbydataset;        /* freed if the volume (not its snapshots) went */
    uint64_t usedbysnapshots;      /* freed if all its snapshots went */
    uint64_t usedbyrefreservation; /* reserved but not yet written */
    uint64_t usedbymeta;           /* deadlist objects of its snapshots */
    uint64_t referenced;           /* allocated bytes reachable from the volume */
    uint64_t written;              /* referenced bytes written since the latest snapshot */
    uint64_t nsnapshots;
    char origin[BS_SNAP_NAME_MAX]; /* "VOL@SNAP" for a clone, "" otherwise */
};
int bs_vol_space(bs_pool *p, const char *vol, struct bs_vol_space *out, struct berr *err);

/* ---- send / receive (docs/STREAM.md) ---- */

/* Sink and source of a stream: write all `len` bytes or return -errno;
 * read up to `len` bytes, return the count (0 = end of stream) or -errno. */
typedef int (*bs_write_fn)(void *opaque, const void *buf, size_t len);
typedef ssize_t (*bs_read_fn)(void *opaque, void *buf, size_t len);

struct bs_send_opts {
    const char *from;        /* NULL: full stream; "VOL@A" or "@A": incremental from A */
    bool intermediates;      /* -I: also every snapshot between from and snap */
    const char *resume_token; /* continue a stream a receiver reported (bs_recv_token) */
    bool raw;                /* encrypted blocks as stored, no key needed (docs/STREAM.md) */
};
struct bs_send_stats {
    uint64_t bytes_sent;      /* stream bytes */
    uint64_t bytes_read;      /* block bytes read from the pool */
    uint64_t blocks, holes;   /* data records, free records */
};
int bs_send(bs_pool *p, const char *snapname, const struct bs_send_opts *opts, bs_write_fn wr,
            void *opaque, struct bs_send_stats *st, struct berr *err);

struct bs_recv_opts {
    bool force;           /* roll the target back to the stream's base first (zfs recv -F) */
    bool resumable;       /* keep a partial receive on error so it can be resumed */
};
/* What a raw receive did to the key slots of the target (docs/STREAM.md
 * section 11.4). */
enum bs_recv_keyslots {
    BS_RECV_KEYSLOTS_NONE = 0, /* a plain stream */
    BS_RECV_KEYSLOTS_SAME,     /* the stream's slot set is the target's */
    BS_RECV_KEYSLOTS_UPDATED,  /* the target's key record took the stream's slots */
    BS_RECV_KEYSLOTS_KEPT,     /* they differ, but the key record is shared with a volume
                                * of another lineage (keyslots_shared_with): kept */
};
struct bs_recv_stats {
    uint64_t bytes_received;
    char snapshot[BS_SNAP_NAME_MAX]; /* the last snapshot created */
    enum bs_recv_keyslots keyslots;  /* of the last raw section (KEPT if any kept) */
    char keyslots_shared_with[BS_SNAP_NAME_MAX];
};
/* Receive a stream into volume `vol` (a full stream creates it; an
 * incremental one needs its base as vol's latest snapshot).  A bad,
 * truncated or mismatched stream fails with a message and leaves `vol` as it
 * was. */
int bs_recv(bs_pool *p, const char *vol, const struct bs_recv_opts *opts, bs_read_fn rd,
            void *opaque, struct bs_recv_stats *st, struct berr *err);
/* The resume token of an interrupted resumable receive into vol (ENOENT if none). */
int bs_recv_token(bs_pool *p, const char *vol, char *buf, size_t len, struct berr *err);
/* Drop an interrupted receive's partial state. */
int bs_recv_abort(bs_pool *p, const char *vol, struct berr *err);

/* ---- keys of encrypted volumes ----
 *
 * `name` is a volume or a snapshot: a key belongs to the volume that created
 * it and is shared by its snapshots and clones, so loading or unloading it
 * affects all of them.  Adding, removing or changing a key rewraps the
 * master key in the key slots; data is never rewritten.  Wrong keys give
 * EACCES, a volume that is not encrypted EINVAL, a locked key (where the
 * call needs it loaded) EACCES. */

/* Unlock with `key` (NULL: read the volume's keylocation) in any slot of
 * its format.  EEXIST if already loaded. */
int bs_key_load(bs_pool *p, const char *name, const struct bs_key *key, struct berr *err);
/* Load every locked key of the pool: with key NULL from each file://
 * keylocation, else by trying `key`.  Returns how many keys were loaded;
 * when some could not be, also sets err to the first failure. */
int bs_key_load_all(bs_pool *p, const struct bs_key *key, struct berr *err);
/* Forget the key (wiped from memory).  EBUSY if the volume, a snapshot or a
 * clone sharing the key is open or being received into. */
int bs_key_unload(bs_pool *p, const char *name, struct berr *err);
/* Add `newkey` in slot `slot` (-1: the first free one); the key must be
 * loaded.  Returns the slot id; ENOSPC when all slots are used. */
int bs_key_add(bs_pool *p, const char *name, const struct bs_key *newkey, int slot,
               struct berr *err);
/* Empty slot `slot`; the key must be loaded; the last slot cannot go (EBUSY). */
int bs_key_remove(bs_pool *p, const char *name, int slot, struct berr *err);
/* Replace slot `slot` (-1: the slot that loaded the key) by `newkey`,
 * crash-safely (add, commit, remove, commit: a crash leaves the old or the
 * new key working).  newkey->format and ->location, when set, become the
 * volume's keyformat and keylocation.  Returns the new slot id. */
int bs_key_change(bs_pool *p, const char *name, int slot, const struct bs_key *newkey,
                  struct berr *err);

struct bs_keyslot_info {
    int slot;
    enum bs_keyformat format;
    enum bs_kdf kdf;          /* BS_KDF_DEFAULT: none (raw/hex) */
    uint32_t t_cost, m_cost_kib, parallelism;
    uint64_t created;         /* unix time */
    bool loaded_by;           /* this slot unlocked the loaded key */
};
/* The used slots, in slot order; returns their count. */
int bs_key_list(bs_pool *p, const char *name, struct bs_keyslot_info out[BS_KEYSLOTS_MAX],
                struct berr *err);

/* What seals and opens encrypted blocks in this process: "VAES AVX-512"
 * (berth's own AES-256-GCM, docs/ARCHITECTURE.md) or "OpenSSL" (the CPU
 * lacks VAES/VPCLMULQDQ/AVX-512, or BERTH_GCM=openssl).  Same output. */
const char *bs_crypt_engine(void);

/* Names: "raw", "hex", "passphrase"; "none" for 0.  parse: EINVAL + message. */
const char *bs_keyformat_name(enum bs_keyformat f);
int bs_keyformat_parse(const char *s, enum bs_keyformat *f, struct berr *err);

/* ---- debugging / fault injection (only used by tests) ---- */

/* Knobs on a pool's leaves: "vdev=N KNOB" sets KNOB on leaf N (the index
 * in bs_pool_stats().vdevs), a bare KNOB on every leaf:
 *  "torn_write_after=N": the N-th vdev write from now writes only its first
 *      half and every later write fails with EIO (a simulated power cut);
 *  "fail_writes=on|off", "fail_reads=on|off": every I/O fails with EIO;
 *  "corrupt=OFFSET:LEN": overwrite LEN bytes (<= 64 MiB) at OFFSET of the
 *      data area (the offset of block pointers) with garbage, once;
 *  "reset": every knob off.
 * Pool-wide, process-wide: "crash_at=POINT[:N]" kills the process with
 *  SIGKILL the N-th time a change of the vdev tree reaches POINT (crashpt.h;
 *  the points: top of src/store/vdev_replace.c), "crash_at=off" disarms.
 * EINVAL for unknown knobs. */
int bs_pool_debug(bs_pool *p, const char *knob, struct berr *err);

/* Walk every block of every volume and compare with the allocation map:
 * returns 0 if consistent, -EILSEQ with a description of the first leak or
 * double reference otherwise. */
int bs_pool_check(bs_pool *p, struct berr *err);

/* Names for enums ("lz4", "zstd-3", "off", "xxh3", "sha256"). */
const char *bs_compress_name(enum bs_compress c, int level, char *buf, size_t len);
int bs_compress_parse(const char *s, enum bs_compress *c, int *level, struct berr *err);
const char *bs_checksum_name(enum bs_checksum c);
int bs_checksum_parse(const char *s, enum bs_checksum *c, struct berr *err);

#ifdef __cplusplus
}
#endif
#endif
