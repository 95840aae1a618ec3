/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The NBD backend of berthd: export "pool/vol" is volume vol of pool pool,
 * opened with bs_vol_open; "pool/vol@snap" is a snapshot, which the engine
 * opens read-only (the NBD server then advertises NBD_FLAG_READ_ONLY and
 * refuses writes with EPERM).  Opening takes the pool table's read lock briefly;
 * I/O goes straight to the engine with no berthd lock at all.  Every open
 * handle holds a reference on its pool entry and counts in entry->handles,
 * which export/destroy wait on before they release the pool. */
#include "berth/store.h"
#include "common/util.h"
#include "daemon/berthd.h"

#include <stdlib.h>
#include <string.h>

#define NBD_MAX_BLOCK (32u << 20)

_Static_assert(NBD_EXT_HOLE == BS_EXTENT_HOLE && NBD_EXT_ZERO == BS_EXTENT_ZERO,
               "extent flags pass through");
_Static_assert(NBD_IOF_FUA == BS_IO_FUA && NBD_IOF_NO_HOLE == BS_IO_NO_HOLE &&
                   NBD_IOF_FAST_ZERO == BS_IO_FAST_ZERO && NBD_IOF_NOWAIT == BS_IO_NOWAIT,
               "I/O flags pass through");

struct handle {
    bs_vol *vol;
    struct pool_entry *entry;
};

/* Copy the n bytes at s into out (size 64) if they are a valid name. */
static bool name_part(const char *s, size_t n, const char *what, char *out)
{
    if (n >= 64)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return validate_name(out, what, NULL) == 0;
}

/* "POOL/VOL" or "POOL/VOL@SNAP" into pool and vol ("VOL" or "VOL@SNAP"),
 * each part a valid name, so that no engine-internal name (a receive in
 * progress, "VOL%recv") can ever be opened. */
static int split_export(const char *name, char *pool, char *vol, struct berr *err)
{
    const char *slash = strchr(name, '/');
    const char *rest = slash ? slash + 1 : "";
    const char *at = strchr(rest, '@');
    char part[64];
    bool ok = slash && name_part(name, (size_t)(slash - name), "pool", pool) &&
              name_part(rest, at ? (size_t)(at - rest) : strlen(rest), "volume", part) &&
              (!at || name_part(at + 1, strlen(at + 1), "snapshot", part));
    if (!ok)
        return berr_set(err, ENOENT, "no export '%.200s' (exports are named POOL/VOLUME or "
                        "POOL/VOLUME@SNAPSHOT)", name);
    snprintf(vol, BS_SNAP_NAME_MAX, "%s", rest);
    return 0;
}

static int be_open(void *opaque, const char *name, void **out, struct nbd_export_info *info,
                   struct berr *err)
{
    struct pooltab *t = opaque;
    char pool[64], vol[BS_SNAP_NAME_MAX];
    int r = split_export(name, pool, vol, err);
    if (r < 0)
        return r;

    struct handle *h = calloc(1, sizeof(*h));
    if (!h)
        return berr_set(err, ENOMEM, "out of memory");
    pooltab_rdlock(t);
    struct pool_entry *e = pooltab_find(t, pool);
    if (!e || !e->pool) {
        r = berr_set(err, ENOENT, "no export '%.200s': pool %s is %s", name, pool,
                     e ? "UNAVAIL" : "not imported");
    } else {
        r = bs_vol_open(e->pool, vol, &h->vol, err);
        if (r == 0) {
            h->entry = e;
            pool_entry_ref(e);
            atomic_fetch_add(&e->handles, 1);
        }
    }
    pooltab_unlock(t);
    if (r < 0) {
        free(h);
        return r;
    }
    memset(info, 0, sizeof(*info));
    info->size = bs_vol_size(h->vol);
    info->min_block = 1;
    info->pref_block = bs_vol_blocksize(h->vol);
    info->max_block = NBD_MAX_BLOCK;
    info->readonly = bs_vol_readonly(h->vol);
    info->can_trim = info->can_zero = info->can_fast_zero = !info->readonly;
    info->can_fua = !info->readonly;
    info->can_flush = info->can_cache = info->can_multi_conn = true;
    snprintf(info->description, sizeof(info->description), "berth %s %s",
             strchr(vol, '@') ? "snapshot" : "volume", name);
    *out = h;
    return 0;
}

static void be_close(void *handle)
{
    struct handle *h = handle;
    if (!h)
        return;
    bs_vol_close(h->vol);
    atomic_fetch_sub(&h->entry->handles, 1);
    pool_entry_unref(h->entry);
    free(h);
}

struct list_ctx {
    const char *pool;
    struct name_list *nl;
};

/* Names collected under the pool-table lock and sent after it is released:
 * the callback writes to a client socket, and a client that does not read
 * must never hold up pool admin calls (which take the lock for writing). */
struct name_list {
    char (*names)[256]; /* "pool/vol" or "pool/vol@snap" */
    size_t n, cap;
};

static int add_name(struct list_ctx *l, const char *name)
{
    struct name_list *nl = l->nl;
    if (nl->n == nl->cap) {
        size_t cap = nl->cap ? nl->cap * 2 : 64;
        void *nn = realloc(nl->names, cap * sizeof(*nl->names));
        if (!nn)
            return -ENOMEM;
        nl->names = nn;
        nl->cap = cap;
    }
    snprintf(nl->names[nl->n++], sizeof(nl->names[0]), "%s/%s", l->pool, name);
    return 0;
}

static int list_vol(const struct bs_vol_props *p, void *opaque)
{
    return add_name(opaque, p->name);
}

static int list_snap(const struct bs_snap_props *p, void *opaque)
{
    return add_name(opaque, p->name);
}

/* NBD_OPT_LIST: every volume, then every snapshot (read-only exports). */
static int be_list(void *opaque, int (*cb)(const char *name, const char *desc, void *o), void *o)
{
    struct pooltab *t = opaque;
    struct name_list nl = {0};
    int r = 0;
    pooltab_rdlock(t);
    for (struct pool_entry *e = t->head; e && r == 0; e = e->next) {
        if (!e->pool)
            continue;
        struct list_ctx l = {e->name, &nl};
        r = bs_vol_list(e->pool, list_vol, &l, NULL);
        if (r == 0)
            r = bs_snap_list(e->pool, NULL, list_snap, &l, NULL);
    }
    pooltab_unlock(t);
    for (size_t i = 0; r == 0 && i < nl.n; i++)
        r = cb(nl.names[i], strchr(nl.names[i], '@') ? "berth snapshot (read-only)"
                                                      : "berth volume", o);
    free(nl.names);
    return r < 0 ? r : 0;
}

static int be_pread(void *handle, void *buf, uint32_t len, uint64_t off)
{
    return bs_vol_pread(((struct handle *)handle)->vol, buf, len, off);
}

static int be_pwrite(void *handle, const void *buf, uint32_t len, uint64_t off, unsigned flags)
{
    return bs_vol_pwrite(((struct handle *)handle)->vol, buf, len, off, flags);
}

/* Whole blocks of a WRITE are received into the engine's block buffers,
 * which become the dirty blocks without a copy (bs_vol_pwrite_bufs). */
static uint32_t be_wbuf_size(void *handle)
{
    bs_vol *v = ((struct handle *)handle)->vol;
    return bs_vol_readonly(v) ? 0 : bs_vol_blocksize(v);
}

static void *be_wbuf_new(void *handle, void **data)
{
    bs_wbuf *b = bs_vol_wbuf_new(((struct handle *)handle)->vol);
    if (b)
        *data = bs_wbuf_data(b);
    return b;
}

static void be_wbuf_free(void *buf)
{
    bs_wbuf_free(buf);
}

static int be_pwrite_bufs(void *handle, void *const *bufs, size_t n, uint64_t off, unsigned flags)
{
    return bs_vol_pwrite_bufs(((struct handle *)handle)->vol, (bs_wbuf *const *)bufs, n, off,
                              flags);
}

static int be_zero(void *handle, uint32_t len, uint64_t off, unsigned flags)
{
    return bs_vol_zero(((struct handle *)handle)->vol, len, off, flags);
}

static int be_trim(void *handle, uint32_t len, uint64_t off, unsigned flags)
{
    return bs_vol_trim(((struct handle *)handle)->vol, len, off, flags);
}

static int be_flush(void *handle)
{
    return bs_vol_flush(((struct handle *)handle)->vol);
}

static int be_cache(void *handle, uint32_t len, uint64_t off)
{
    return bs_vol_cache(((struct handle *)handle)->vol, len, off);
}

static int be_block_status(void *handle, uint32_t len, uint64_t off,
                           int (*cb)(uint64_t off, uint64_t len, unsigned flags, void *o),
                           void *o)
{
    return bs_vol_block_status(((struct handle *)handle)->vol, len, off, cb, o);
}

static uint64_t be_get_size(void *handle)
{
    return bs_vol_size(((struct handle *)handle)->vol);
}

void backend_init(struct nbd_backend *be, struct pooltab *t)
{
    memset(be, 0, sizeof(*be));
    be->size = sizeof(*be);
    be->opaque = t;
    be->open = be_open;
    be->close = be_close;
    be->list = be_list;
    be->pread = be_pread;
    be->pwrite = be_pwrite;
    be->zero = be_zero;
    be->trim = be_trim;
    be->flush = be_flush;
    be->cache = be_cache;
    be->block_status = be_block_status;
    be->get_size = be_get_size;
    be->wbuf_size = be_wbuf_size;
    be->wbuf_new = be_wbuf_new;
    be->wbuf_free = be_wbuf_free;
    be->pwrite_bufs = be_pwrite_bufs;
    be->pwrite_nowait = true;
}
