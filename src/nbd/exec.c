/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Executing one validated request against the backend (called from worker
 * threads, many at once per connection) and building its reply.
 *
 * READ with structured replies asks the backend's block_status first and
 * turns extents that read as zeroes into OFFSET_HOLE chunks; only data
 * extents are read.  Extents are merged and capped at NBD_READ_MAX_CHUNKS so
 * a fragmented export cannot make a reply unboundedly large: past the cap
 * everything is sent as data (the backend reads zeroes for holes anyway).
 * With DF, without structured replies or without block_status, a READ is
 * one pread and one data span.
 *
 * Backend extents are treated as untrusted too: a gap is reported as data,
 * overlap is clipped, anything outside the request is ignored. */
#include "nbd/nbd_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/le.h"

/* holes smaller than this go out as data: a chunk header costs 32 bytes */
#define NBD_MIN_HOLE 512u
/* buffers are page aligned so backends can use O_DIRECT on them */
#define NBD_BUF_ALIGN 4096u

int nbd_req_reserve(struct nbd_req *r, size_t len)
{
    if (len <= r->cap)
        return 0;
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    size_t cap = ROUND_UP(len, (size_t)NBD_BUF_ALIGN);
    void *p;
    if (posix_memalign(&p, NBD_BUF_ALIGN, cap) != 0)
        return -ENOMEM;
    r->buf = p;
    r->cap = cap;
    return 0;
}

void nbd_req_drop_wbufs(const struct nbd_backend *be, struct nbd_req *r)
{
    for (size_t i = 0; i < r->nwbufs; i++)
        be->wbuf_free(r->wbufs[i]);
    r->nwbufs = 0;
}

/* A WRITE received into whole-block buffers: head and tail (in r->buf)
 * through pwrite, the blocks through pwrite_bufs.  FUA makes the whole
 * request durable: one flush after all the parts (each part with FUA would
 * wait for the disk up to three times). */
static int exec_write_bufs(const struct nbd_session *s, struct nbd_req *r, unsigned iof)
{
    const struct nbd_backend *be = s->be;
    const struct nbd_request *rq = &r->rq;
    unsigned piof = be->flush ? iof & ~NBD_IOF_FUA : iof;
    uint64_t mid = (uint64_t)r->nwbufs * r->wbsize;
    uint32_t tail = (uint32_t)(rq->len - r->whead - mid);
    int ret = 0;
    if (r->whead)
        ret = be->pwrite(s->handle, r->buf, r->whead, rq->offset, piof);
    if (ret < 0) {
        nbd_req_drop_wbufs(be, r);
        return ret;
    }
    size_t n = r->nwbufs;
    r->nwbufs = 0; /* the backend's now, whatever happens */
    ret = be->pwrite_bufs(s->handle, r->wbufs, n, rq->offset + r->whead, piof);
    if (ret == 0 && tail)
        ret = be->pwrite(s->handle, r->buf + r->whead, tail, rq->offset + r->whead + mid, piof);
    if (ret == 0 && piof != iof)
        ret = be->flush(s->handle);
    return ret;
}

/* ---- extents of the request range, clipped ------------------------------ */
struct clip {
    uint64_t pos, end;
};

/* Clip a backend extent to what is still unreported of the range.  Returns
 * the gap before it (reported as data) in *gap and the usable length. */
static uint64_t clip_extent(struct clip *c, uint64_t off, uint64_t len, uint64_t *gap)
{
    uint64_t e = len > UINT64_MAX - off ? UINT64_MAX : off + len;
    *gap = 0;
    if (off > c->pos)
        *gap = MIN(off, c->end) - c->pos;
    uint64_t s = MAX(off, c->pos + *gap);
    e = MIN(e, c->end);
    return e > s ? e - s : 0;
}

/* ---- READ ------------------------------------------------------------------ */
struct read_ctx {
    struct clip c;
    uint64_t start;
    struct nbd_span sp[NBD_READ_MAX_CHUNKS];
    unsigned n;
};

static void span_add(struct read_ctx *x, uint64_t len, bool hole)
{
    if (!len)
        return;
    if (len < NBD_MIN_HOLE)
        hole = false;
    struct nbd_span *last = x->n ? &x->sp[x->n - 1] : NULL;
    if (last && (last->hole == hole || x->n == NBD_READ_MAX_CHUNKS)) {
        last->hole = last->hole && hole;
        last->len += (uint32_t)len; /* sum <= request length < 2^32 */
    } else {
        x->sp[x->n++] = (struct nbd_span){.off = x->c.pos, .len = (uint32_t)len, .hole = hole};
    }
    x->c.pos += len;
}

static int read_ext_cb(uint64_t off, uint64_t len, unsigned flags, void *o)
{
    struct read_ctx *x = o;
    uint64_t gap, n = clip_extent(&x->c, off, len, &gap);
    span_add(x, gap, false);
    span_add(x, n, flags & NBD_EXT_ZERO);
    return x->c.pos >= x->c.end;
}

static void exec_read(const struct nbd_session *s, struct nbd_req *r)
{
    const struct nbd_backend *be = s->be;
    const struct nbd_request *rq = &r->rq;
    struct read_ctx x = {.c = {rq->offset, rq->offset + rq->len}, .start = rq->offset};

    if (nbd_req_reserve(r, rq->len) < 0) {
        nbd_reply_error(s, r, NBD_ENOMEM, "out of memory");
        return;
    }
    if (s->structured && !(rq->flags & NBD_CMD_FLAG_DF) && be->block_status) {
        /* an error here only costs the hole optimisation */
        be->block_status(s->handle, rq->len, rq->offset, read_ext_cb, &x);
    }
    span_add(&x, x.c.end - x.c.pos, false);

    for (unsigned i = 0; i < x.n; i++) {
        struct nbd_span *sp = &x.sp[i];
        sp->data = r->buf + (sp->off - x.start);
        if (sp->hole)
            continue;
        int ret = be->pread(s->handle, sp->data, sp->len, sp->off);
        if (ret < 0) {
            nbd_reply_error(s, r, nbd_errno_to_wire(ret), "read failed");
            return;
        }
    }
    if (!s->structured) {
        /* simple replies carry every byte: zero the holes (none expected) */
        for (unsigned i = 0; i < x.n; i++)
            if (x.sp[i].hole)
                memset(x.sp[i].data, 0, x.sp[i].len);
    }
    nbd_reply_read(s, r, x.sp, x.n);
}

/* ---- BLOCK_STATUS -------------------------------------------------------- */
struct bs_ctx {
    struct clip c;
    uint32_t *d; /* native (length, status) pairs, encoded at the end */
    uint32_t n, max;
};

static void desc_add(struct bs_ctx *x, uint64_t len, uint32_t status)
{
    if (!len || x->n == x->max)
        return;
    if (x->n && x->d[2 * (x->n - 1) + 1] == status) {
        x->d[2 * (x->n - 1)] += (uint32_t)len; /* sum <= request length */
    } else {
        x->d[2 * x->n] = (uint32_t)len;
        x->d[2 * x->n + 1] = status;
        x->n++;
    }
    x->c.pos += len;
}

static int bs_ext_cb(uint64_t off, uint64_t len, unsigned flags, void *o)
{
    struct bs_ctx *x = o;
    uint64_t gap, n = clip_extent(&x->c, off, len, &gap);
    desc_add(x, gap, 0);
    uint32_t st = ((flags & NBD_EXT_HOLE) ? NBD_STATE_HOLE : 0) |
                  ((flags & NBD_EXT_ZERO) ? NBD_STATE_ZERO : 0);
    desc_add(x, n, st);
    return x->c.pos >= x->c.end || x->n == x->max;
}

static void exec_block_status(const struct nbd_session *s, struct nbd_req *r)
{
    const struct nbd_request *rq = &r->rq;
    uint32_t max = (rq->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_BS_MAX_EXTENTS;

    if (nbd_req_reserve(r, (size_t)max * NBD_BS_DESC) < 0) {
        nbd_reply_error(s, r, NBD_ENOMEM, "out of memory");
        return;
    }
    struct bs_ctx x = {.c = {rq->offset, rq->offset + rq->len}, .d = (uint32_t *)r->buf,
                       .max = max};
    if (s->be->block_status) {
        int ret = s->be->block_status(s->handle, rq->len, rq->offset, bs_ext_cb, &x);
        if (ret < 0) {
            nbd_reply_error(s, r, nbd_errno_to_wire(ret), "block status failed");
            return;
        }
    }
    /* at least one descriptor; "allocated, contents unknown" is always true */
    if (x.n == 0)
        desc_add(&x, rq->len, 0);
    for (uint32_t i = 0; i < 2 * x.n; i++)
        put_be32(r->buf + 4 * i, x.d[i]);
    nbd_reply_block_status(r, x.n);
}

/* ---- dispatch ------------------------------------------------------------- */
/* The reply of a command that returned ret (0 or -errno) from the backend. */
static void reply_result(const struct nbd_session *s, struct nbd_req *r, int ret, unsigned iof)
{
    if (ret < 0) {
        nbd_reply_error(s, r, nbd_errno_to_wire(ret),
                        ret == -ENOTSUP && (iof & NBD_IOF_FAST_ZERO) ? "zeroing would not be fast"
                                                                     : "backend I/O failed");
        return;
    }
    nbd_reply_reset(r);
    nbd_reply_simple(r, NBD_SUCCESS);
}

bool nbd_exec_nowait(const struct nbd_session *s, struct nbd_req *r)
{
    const struct nbd_request *rq = &r->rq;
    int ret = s->be->pwrite(s->handle, r->buf, rq->len, rq->offset, NBD_IOF_NOWAIT);
    if (ret == -EAGAIN)
        return false;
    reply_result(s, r, ret, 0);
    return true;
}

void nbd_exec(const struct nbd_session *s, struct nbd_req *r)
{
    const struct nbd_backend *be = s->be;
    const struct nbd_request *rq = &r->rq;
    void *h = s->handle;
    unsigned iof = 0;
    int ret = 0;

    if (r->error) {
        nbd_req_drop_wbufs(be, r);
        nbd_reply_error(s, r, (uint32_t)r->error, r->errmsg);
        return;
    }
    if (rq->flags & NBD_CMD_FLAG_FUA)
        iof |= NBD_IOF_FUA;
    if (rq->flags & NBD_CMD_FLAG_NO_HOLE)
        iof |= NBD_IOF_NO_HOLE;
    if (rq->flags & NBD_CMD_FLAG_FAST_ZERO)
        iof |= NBD_IOF_FAST_ZERO;

    switch (rq->type) {
    case NBD_CMD_READ:
        exec_read(s, r);
        return;
    case NBD_CMD_BLOCK_STATUS:
        exec_block_status(s, r);
        return;
    case NBD_CMD_WRITE:
        ret = r->nwbufs ? exec_write_bufs(s, r, iof)
                        : be->pwrite(h, r->buf, rq->len, rq->offset, iof);
        break;
    case NBD_CMD_FLUSH:
        ret = be->flush ? be->flush(h) : 0;
        break;
    case NBD_CMD_TRIM:
        ret = be->trim ? be->trim(h, rq->len, rq->offset, iof & NBD_IOF_FUA) : 0;
        break;
    case NBD_CMD_CACHE:
        ret = be->cache ? be->cache(h, rq->len, rq->offset) : 0;
        break;
    case NBD_CMD_WRITE_ZEROES:
        ret = be->zero ? be->zero(h, rq->len, rq->offset, iof) : -ENOTSUP;
        break;
    default:
        ret = -EINVAL; /* nbd_request_check() lets no other command through */
        break;
    }
    reply_result(s, r, ret, iof);
}
