/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reply encoders.  A reply is built as an iovec inside its struct nbd_req:
 * headers go to the request's scratch area, data stays where the backend put
 * it (r->buf), so a whole reply, whatever its chunks, leaves in one
 * sendmsg() and nothing is copied.
 *
 * Without structured replies every reply is a simple reply (READ data
 * follows the header; an error READ carries no data).  With structured
 * replies a READ is a sequence of OFFSET_DATA / OFFSET_HOLE chunks in offset
 * order, the last one flagged DONE (nbd_exec() has finished all I/O before a
 * reply is built, so no error can follow), errors are ERROR chunks with a
 * message, and other successful commands still use the simple reply, which
 * the protocol allows for replies without payload. */
#include "nbd/nbd_int.h"

#include <assert.h>
#include <string.h>

#include "common/le.h"

uint32_t nbd_errno_to_wire(int neg_errno)
{
    switch (-neg_errno) {
    case 0:
        return NBD_SUCCESS;
    case EPERM:
    case EACCES:
    case EROFS:
        return NBD_EPERM;
    case ENOMEM:
        return NBD_ENOMEM;
    case EINVAL:
        return NBD_EINVAL;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return NBD_ENOSPC;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOTSUP:
#if EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP:
#endif
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    default:
        return NBD_EIO;
    }
}

void nbd_reply_reset(struct nbd_req *r)
{
    r->iovcnt = 0;
    r->iovpos = 0;
    r->scratch_used = 0;
}

/* The bounds below hold by construction (NBD_READ_MAX_CHUNKS spans at most,
 * a fixed number of headers otherwise); asserts document that, they cannot
 * be reached from client input. */
static uint8_t *scratch(struct nbd_req *r, size_t n)
{
    assert(r->scratch_used + n <= sizeof(r->scratch));
    uint8_t *p = r->scratch + r->scratch_used;
    r->scratch_used += n;
    return p;
}

static void add_iov(struct nbd_req *r, void *p, size_t len)
{
    assert(r->iovcnt < NBD_REQ_IOV);
    /* headers written back to back in scratch coalesce into one iov */
    if (r->iovcnt > 0) {
        struct iovec *last = &r->iov[r->iovcnt - 1];
        if ((uint8_t *)last->iov_base + last->iov_len == (uint8_t *)p) {
            last->iov_len += len;
            return;
        }
    }
    r->iov[r->iovcnt].iov_base = p;
    r->iov[r->iovcnt].iov_len = len;
    r->iovcnt++;
}

static uint8_t *chunk(struct nbd_req *r, uint16_t flags, uint16_t type, uint32_t len,
                      size_t extra)
{
    uint8_t *p = scratch(r, NBD_CHUNK_HDR_SIZE + extra);
    put_be32(p, NBD_STRUCTURED_REPLY_MAGIC);
    put_be16(p + 4, flags);
    put_be16(p + 6, type);
    put_be64(p + 8, r->rq.handle);
    put_be32(p + 16, len);
    add_iov(r, p, NBD_CHUNK_HDR_SIZE + extra);
    return p + NBD_CHUNK_HDR_SIZE;
}

void nbd_reply_simple(struct nbd_req *r, uint32_t error)
{
    uint8_t *p = scratch(r, NBD_SIMPLE_REPLY_SIZE);
    put_be32(p, NBD_SIMPLE_REPLY_MAGIC);
    put_be32(p + 4, error);
    put_be64(p + 8, r->rq.handle);
    add_iov(r, p, NBD_SIMPLE_REPLY_SIZE);
}

void nbd_reply_error(const struct nbd_session *s, struct nbd_req *r, uint32_t error,
                     const char *msg)
{
    nbd_reply_reset(r);
    if (!s->structured) {
        nbd_reply_simple(r, error);
        return;
    }
    size_t mlen = msg ? strnlen(msg, 128) : 0;
    uint8_t *p = chunk(r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
                       (uint32_t)(NBD_ERROR_HDR + mlen), NBD_ERROR_HDR + mlen);
    put_be32(p, error);
    put_be16(p + 4, (uint16_t)mlen);
    if (mlen)
        memcpy(p + NBD_ERROR_HDR, msg, mlen);
}

void nbd_reply_read(const struct nbd_session *s, struct nbd_req *r, const struct nbd_span *sp,
                    unsigned n)
{
    nbd_reply_reset(r);
    if (!s->structured) {
        /* exec never produces holes without structured replies */
        nbd_reply_simple(r, NBD_SUCCESS);
        for (unsigned i = 0; i < n; i++)
            add_iov(r, sp[i].data, sp[i].len);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        uint16_t fl = i + 1 == n ? NBD_REPLY_FLAG_DONE : 0;
        if (sp[i].hole) {
            uint8_t *p = chunk(r, fl, NBD_REPLY_TYPE_OFFSET_HOLE, NBD_OFFSET_HOLE_SIZE,
                               NBD_OFFSET_HOLE_SIZE);
            put_be64(p, sp[i].off);
            put_be32(p + 8, sp[i].len);
        } else {
            uint8_t *p = chunk(r, fl, NBD_REPLY_TYPE_OFFSET_DATA,
                               NBD_OFFSET_DATA_HDR + sp[i].len, NBD_OFFSET_DATA_HDR);
            put_be64(p, sp[i].off);
            add_iov(r, sp[i].data, sp[i].len);
        }
    }
}

void nbd_reply_block_status(struct nbd_req *r, uint32_t ndesc)
{
    nbd_reply_reset(r);
    uint8_t *p = chunk(r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
                       NBD_BS_HDR + ndesc * NBD_BS_DESC, NBD_BS_HDR);
    put_be32(p, NBD_META_ID_BASE_ALLOCATION);
    add_iov(r, r->buf, (size_t)ndesc * NBD_BS_DESC);
}

size_t nbd_reply_len(const struct nbd_req *r)
{
    size_t n = 0;
    for (int i = 0; i < r->iovcnt; i++)
        n += r->iov[i].iov_len;
    return n;
}
