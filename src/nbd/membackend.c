/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The in-memory thin backend (see membackend.h).
 *
 * Layout: export -> top array of leaves (allocated lazily, published with a
 * CAS, freed only with the export) -> 512 page pointers per leaf -> 4 KiB
 * pages.  A page pointer is read and written with atomics; the page's bytes
 * are touched only under the stripe mutex of its index, which also orders a
 * page's free (TRIM) against readers copying from it.  BLOCK_STATUS reads
 * page pointers without the mutex: it is a hint by nature. */
#include "nbd/membackend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/util.h"

#define LEAF_PAGES 512u
#define NSTRIPES 256u
#define PAGE_SHIFT 12

struct leaf {
    uint8_t *page[LEAF_PAGES];
};

struct mem_export {
    struct mem_export *next;
    struct nbd_mem *m;
    char *name;
    uint64_t size;
    bool readonly;
    uint32_t min_block;
    uint64_t nleaves;
    struct leaf **top;
    int fail;      /* atomic */
    unsigned opens; /* atomic */
    uint64_t allocated; /* atomic, bytes */
    pthread_mutex_t stripe[NSTRIPES];
};

struct nbd_mem {
    struct mem_export *exports;
};

int nbd_mem_new(struct nbd_mem **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -ENOMEM;
}

static struct mem_export *find(struct nbd_mem *m, const char *name)
{
    for (struct mem_export *e = m->exports; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

int nbd_mem_add(struct nbd_mem *m, const char *name, uint64_t size, bool readonly,
                uint32_t min_block, struct berr *err)
{
    if (find(m, name))
        return berr_set(err, EEXIST, "export '%s' already exists", name);
    if (size > NBD_MEM_MAX_SIZE)
        return berr_set(err, EINVAL, "export '%s': size above 16 TiB", name);
    if (strlen(name) > 4096)
        return berr_set(err, EINVAL, "export name too long");
    struct mem_export *e = calloc(1, sizeof(*e));
    if (!e)
        return berr_set(err, ENOMEM, "out of memory");
    e->m = m;
    e->size = size;
    e->readonly = readonly;
    e->min_block = min_block ? min_block : 1;
    e->nleaves = DIV_ROUND_UP(DIV_ROUND_UP(size, NBD_MEM_PAGE), LEAF_PAGES);
    e->name = strdup(name);
    e->top = calloc(e->nleaves ? e->nleaves : 1, sizeof(*e->top));
    if (!e->name || !e->top) {
        free(e->name);
        free(e->top);
        free(e);
        return berr_set(err, ENOMEM, "out of memory");
    }
    for (unsigned i = 0; i < NSTRIPES; i++)
        pthread_mutex_init(&e->stripe[i], NULL);
    e->next = m->exports;
    m->exports = e;
    return 0;
}

void nbd_mem_set_fail(struct nbd_mem *m, const char *name, int error)
{
    struct mem_export *e = find(m, name);
    if (e)
        __atomic_store_n(&e->fail, error, __ATOMIC_RELAXED);
}

uint64_t nbd_mem_allocated(struct nbd_mem *m, const char *name)
{
    struct mem_export *e = find(m, name);
    return e ? __atomic_load_n(&e->allocated, __ATOMIC_RELAXED) : 0;
}

unsigned nbd_mem_open_count(struct nbd_mem *m, const char *name)
{
    struct mem_export *e = find(m, name);
    return e ? __atomic_load_n(&e->opens, __ATOMIC_RELAXED) : 0;
}

/* ---- pages ---------------------------------------------------------------------- */
static struct leaf *get_leaf(struct mem_export *e, uint64_t pg, bool create)
{
    struct leaf **slot = &e->top[pg / LEAF_PAGES];
    struct leaf *l = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (l || !create)
        return l;
    struct leaf *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    if (__atomic_compare_exchange_n(slot, &l, n, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return n;
    free(n); /* another thread won; l holds its leaf */
    return l;
}

static pthread_mutex_t *stripe(struct mem_export *e, uint64_t pg)
{
    return &e->stripe[pg % NSTRIPES];
}

static uint8_t **page_slot(struct leaf *l, uint64_t pg)
{
    return &l->page[pg % LEAF_PAGES];
}

/* Free page pg (stripe locked). */
static void drop_page(struct mem_export *e, uint8_t **slot)
{
    uint8_t *p = *slot;
    if (p) {
        __atomic_store_n(slot, NULL, __ATOMIC_RELEASE);
        __atomic_fetch_sub(&e->allocated, NBD_MEM_PAGE, __ATOMIC_RELAXED);
        free(p);
    }
}

/* Allocate page pg (stripe locked); NULL on ENOMEM. */
static uint8_t *make_page(struct mem_export *e, uint8_t **slot)
{
    if (*slot)
        return *slot;
    uint8_t *p = calloc(1, NBD_MEM_PAGE);
    if (p) {
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
        __atomic_fetch_add(&e->allocated, NBD_MEM_PAGE, __ATOMIC_RELAXED);
    }
    return p;
}

enum op { OP_READ, OP_WRITE, OP_ZERO, OP_ZERO_ALLOC, OP_TRIM };

static int page_io(struct mem_export *e, enum op op, uint8_t *buf, uint32_t len, uint64_t off)
{
    int f = __atomic_load_n(&e->fail, __ATOMIC_RELAXED);
    if (f)
        return -f;
    if (off > e->size || len > e->size - off)
        return -EINVAL; /* the server validated; a backend checks anyway */
    uint64_t end = off + len;
    while (off < end) {
        uint64_t pg = off >> PAGE_SHIFT;
        uint32_t o = (uint32_t)(off & (NBD_MEM_PAGE - 1));
        uint32_t n = (uint32_t)MIN((uint64_t)(NBD_MEM_PAGE - o), end - off);
        bool whole = n == NBD_MEM_PAGE;
        bool zero = op == OP_WRITE && buf_is_zero(buf, n);
        bool create = op == OP_ZERO_ALLOC || (op == OP_WRITE && !zero);
        struct leaf *l = get_leaf(e, pg, create);
        if (!l && create)
            return -ENOMEM;
        if (l) {
            uint8_t **slot = page_slot(l, pg);
            pthread_mutex_t *mx = stripe(e, pg);
            pthread_mutex_lock(mx);
            uint8_t *p = *slot;
            if (op == OP_READ) {
                if (p)
                    memcpy(buf, p + o, n);
                else
                    memset(buf, 0, n);
            } else if ((op == OP_TRIM || op == OP_ZERO || (op == OP_WRITE && zero)) && whole) {
                drop_page(e, slot); /* thin: whole zero pages are holes */
            } else if (op == OP_TRIM || ((op == OP_ZERO || zero) && !p)) {
                /* partial trim is a no-op; zeroes over a hole are already there */
            } else if (!p && !(p = make_page(e, slot))) {
                pthread_mutex_unlock(mx);
                return -ENOMEM;
            } else if (op == OP_WRITE) {
                memcpy(p + o, buf, n);
            } else {
                memset(p + o, 0, n);
            }
            pthread_mutex_unlock(mx);
        } else if (op == OP_READ) {
            memset(buf, 0, n);
        }
        off += n;
        if (buf)
            buf += n;
    }
    return 0;
}

/* ---- the backend ---------------------------------------------------------------- */
static int mem_open(void *opaque, const char *name, void **handle, struct nbd_export_info *info,
                    struct berr *err)
{
    struct mem_export *e = find(opaque, name);
    if (!e)
        return berr_set(err, ENOENT, "no export named '%.200s'", name);
    memset(info, 0, sizeof(*info));
    info->size = e->size;
    info->min_block = e->min_block;
    info->pref_block = MAX(NBD_MEM_PAGE, e->min_block);
    info->max_block = 32u << 20;
    info->readonly = e->readonly;
    info->can_trim = info->can_zero = info->can_fast_zero = true;
    info->can_flush = info->can_fua = info->can_cache = info->can_multi_conn = true;
    snprintf(info->description, sizeof(info->description), "memory export %.80s", e->name);
    __atomic_fetch_add(&e->opens, 1, __ATOMIC_RELAXED);
    *handle = e;
    return 0;
}

static void mem_close(void *h)
{
    struct mem_export *e = h;
    __atomic_fetch_sub(&e->opens, 1, __ATOMIC_RELAXED);
}

static int mem_list(void *opaque, int (*cb)(const char *, const char *, void *), void *o)
{
    struct nbd_mem *m = opaque;
    for (struct mem_export *e = m->exports; e; e = e->next)
        if (cb(e->name, "", o))
            break;
    return 0;
}

static int mem_pread(void *h, void *buf, uint32_t len, uint64_t off)
{
    return page_io(h, OP_READ, buf, len, off);
}

static int mem_pwrite(void *h, const void *buf, uint32_t len, uint64_t off, unsigned flags)
{
    struct mem_export *e = h;
    if (e->readonly)
        return -EROFS;
    return page_io(h, OP_WRITE, (uint8_t *)buf, len, off);
}

static int mem_zero(void *h, uint32_t len, uint64_t off, unsigned flags)
{
    struct mem_export *e = h;
    if (e->readonly)
        return -EROFS;
    return page_io(h, (flags & NBD_IOF_NO_HOLE) ? OP_ZERO_ALLOC : OP_ZERO, NULL, len, off);
}

static int mem_trim(void *h, uint32_t len, uint64_t off, unsigned flags)
{
    struct mem_export *e = h;
    if (e->readonly)
        return -EROFS;
    return page_io(h, OP_TRIM, NULL, len, off);
}

static int mem_flush(void *h)
{
    struct mem_export *e = h;
    int f = __atomic_load_n(&e->fail, __ATOMIC_RELAXED);
    return f ? -f : 0;
}

static int mem_cache(void *h, uint32_t len, uint64_t off)
{
    return mem_flush(h);
}

static int mem_block_status(void *h, uint32_t len, uint64_t off,
                            int (*cb)(uint64_t, uint64_t, unsigned, void *), void *o)
{
    struct mem_export *e = h;
    int f = __atomic_load_n(&e->fail, __ATOMIC_RELAXED);
    if (f)
        return -f;
    uint64_t end = MIN(off + len, e->size), run = off;
    unsigned cur = 0;
    while (off < end) {
        uint64_t pg = off >> PAGE_SHIFT;
        struct leaf *l = get_leaf(e, pg, false);
        unsigned st;
        uint64_t next;
        if (!l) {
            st = NBD_EXT_HOLE | NBD_EXT_ZERO;
            next = (pg / LEAF_PAGES + 1) * LEAF_PAGES * (uint64_t)NBD_MEM_PAGE;
        } else {
            st = __atomic_load_n(page_slot(l, pg), __ATOMIC_RELAXED) ? 0
                                                                     : NBD_EXT_HOLE | NBD_EXT_ZERO;
            next = (pg + 1) * (uint64_t)NBD_MEM_PAGE;
        }
        next = MIN(next, end);
        if (off != run && st != cur) {
            if (cb(run, off - run, cur, o))
                return 0;
            run = off;
        }
        cur = st;
        off = next;
    }
    if (off > run)
        cb(run, off - run, cur, o);
    return 0;
}

static uint64_t mem_get_size(void *h)
{
    return ((struct mem_export *)h)->size;
}

void nbd_mem_backend(struct nbd_mem *m, struct nbd_backend *be)
{
    *be = (struct nbd_backend){
        .size = sizeof(*be),
        .opaque = m,
        .open = mem_open,
        .close = mem_close,
        .list = mem_list,
        .pread = mem_pread,
        .pwrite = mem_pwrite,
        .zero = mem_zero,
        .trim = mem_trim,
        .flush = mem_flush,
        .cache = mem_cache,
        .block_status = mem_block_status,
        .get_size = mem_get_size,
    };
}

void nbd_mem_free(struct nbd_mem *m)
{
    if (!m)
        return;
    while (m->exports) {
        struct mem_export *e = m->exports;
        m->exports = e->next;
        for (uint64_t i = 0; i < e->nleaves; i++) {
            struct leaf *l = e->top[i];
            if (!l)
                continue;
            for (unsigned j = 0; j < LEAF_PAGES; j++)
                free(l->page[j]);
            free(l);
        }
        for (unsigned i = 0; i < NSTRIPES; i++)
            pthread_mutex_destroy(&e->stripe[i]);
        free(e->top);
        free(e->name);
        free(e);
    }
    free(m);
}
