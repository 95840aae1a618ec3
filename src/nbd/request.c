/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Transmission requests: decoding the 28-byte header and the one function
 * that decides whether a request may run.  Every rule a client can break is
 * checked here, in a fixed order, so the error a client gets is predictable
 * and tests/unit/test-nbd-proto.c can walk every rejection path:
 *
 *   1. magic                     wrong -> disconnect (the stream is lost)
 *   2. WRITE payload > 32 MiB    -> disconnect (we will not buffer or skip it)
 *   3. command known             else EINVAL
 *   4. flags known and allowed for the command and negotiated, else EINVAL
 *   5. read-only export          WRITE/TRIM/WRITE_ZEROES -> EPERM
 *   6. command advertised        FLUSH/TRIM/WRITE_ZEROES/CACHE/BLOCK_STATUS
 *                                without the flag or meta context -> EINVAL
 *   7. FLUSH                     offset and length must be 0, else EINVAL
 *      (DISC is accepted whatever it carries: there is no reply to it)
 *   8. length                    0 -> EINVAL; READ/WRITE > max_block -> EOVERFLOW
 *   9. range                     offset+length past the end (or overflowing):
 *                                writes ENOSPC, others EINVAL
 *  10. alignment                 offset and length multiples of min_block
 *                                (a tail ending exactly at the export end is
 *                                fine) else EINVAL
 */
#include "nbd/nbd_int.h"

#include "common/le.h"

void nbd_request_parse(const uint8_t b[NBD_REQUEST_SIZE], struct nbd_request *rq)
{
    rq->magic = get_be32(b);
    rq->flags = get_be16(b + 4);
    rq->type = get_be16(b + 6);
    rq->handle = get_be64(b + 8);
    rq->offset = get_be64(b + 16);
    rq->len = get_be32(b + 24);
}

/* flags each command may carry at all (before negotiation is considered) */
static uint16_t cmd_flags(uint16_t type)
{
    switch (type) {
    case NBD_CMD_READ:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF;
    case NBD_CMD_WRITE_ZEROES:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
    case NBD_CMD_BLOCK_STATUS:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
    default:
        /* the spec lets clients set FUA on any command once negotiated */
        return NBD_CMD_FLAG_FUA;
    }
}

#define FAIL(code, why)                                                                            \
    do {                                                                                           \
        if (msg)                                                                                   \
            *msg = (why);                                                                          \
        return (code);                                                                             \
    } while (0)

int nbd_request_check(const struct nbd_request *rq, const struct nbd_session *s, const char **msg)
{
    const uint16_t ef = s->eflags;

    if (msg)
        *msg = NULL;
    if (rq->magic != NBD_REQUEST_MAGIC)
        FAIL(NBD_CHECK_DISCONNECT, "bad request magic");
    if (rq->type == NBD_CMD_DISC)
        return 0; /* no reply is possible: the caller just disconnects */
    if (rq->type == NBD_CMD_WRITE && rq->len > NBD_MAX_PAYLOAD)
        FAIL(NBD_CHECK_DISCONNECT, "write payload larger than 32 MiB");

    switch (rq->type) {
    case NBD_CMD_READ:
    case NBD_CMD_WRITE:
    case NBD_CMD_FLUSH:
    case NBD_CMD_TRIM:
    case NBD_CMD_CACHE:
    case NBD_CMD_WRITE_ZEROES:
    case NBD_CMD_BLOCK_STATUS:
        break;
    default:
        FAIL(NBD_EINVAL, "unknown command");
    }

    if (rq->flags & ~cmd_flags(rq->type))
        FAIL(NBD_EINVAL, "flag not valid for this command");
    if ((rq->flags & NBD_CMD_FLAG_FUA) && !(ef & NBD_FLAG_SEND_FUA))
        FAIL(NBD_EINVAL, "FUA not negotiated");
    if ((rq->flags & NBD_CMD_FLAG_DF) && !(ef & NBD_FLAG_SEND_DF))
        FAIL(NBD_EINVAL, "DF needs structured replies");
    if ((rq->flags & NBD_CMD_FLAG_FAST_ZERO) && !(ef & NBD_FLAG_SEND_FAST_ZERO))
        FAIL(NBD_EINVAL, "FAST_ZERO not negotiated");

    bool writes = rq->type == NBD_CMD_WRITE || rq->type == NBD_CMD_TRIM ||
                  rq->type == NBD_CMD_WRITE_ZEROES;
    if (writes && (ef & NBD_FLAG_READ_ONLY))
        FAIL(NBD_EPERM, "export is read-only");

    switch (rq->type) {
    case NBD_CMD_FLUSH:
        if (!(ef & NBD_FLAG_SEND_FLUSH))
            FAIL(NBD_EINVAL, "FLUSH not negotiated");
        if (rq->offset || rq->len)
            FAIL(NBD_EINVAL, "offset and length must be zero");
        return 0;
    case NBD_CMD_TRIM:
        if (!(ef & NBD_FLAG_SEND_TRIM))
            FAIL(NBD_EINVAL, "TRIM not negotiated");
        break;
    case NBD_CMD_WRITE_ZEROES:
        if (!(ef & NBD_FLAG_SEND_WRITE_ZEROES))
            FAIL(NBD_EINVAL, "WRITE_ZEROES not negotiated");
        break;
    case NBD_CMD_CACHE:
        if (!(ef & NBD_FLAG_SEND_CACHE))
            FAIL(NBD_EINVAL, "CACHE not negotiated");
        break;
    case NBD_CMD_BLOCK_STATUS:
        if (!s->structured || !s->meta_alloc)
            FAIL(NBD_EINVAL, "no metadata context negotiated");
        break;
    }

    if (rq->len == 0)
        FAIL(NBD_EINVAL, "zero length");
    if ((rq->type == NBD_CMD_READ || rq->type == NBD_CMD_WRITE) && rq->len > s->info.max_block)
        FAIL(NBD_EOVERFLOW, "length exceeds the maximum block size");

    /* written so that offset + len cannot overflow */
    if (rq->offset > s->size || rq->len > s->size - rq->offset)
        FAIL(writes ? NBD_ENOSPC : NBD_EINVAL, "request beyond the end of the export");

    uint64_t mask = s->info.min_block - 1;
    if ((rq->offset & mask) || ((rq->len & mask) && rq->offset + rq->len != s->size))
        FAIL(NBD_EINVAL, "request not aligned to the minimum block size");
    return 0;
}
