/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the transmission phase without sockets.  The first byte
 * picks the negotiated session (structured replies, meta context, read-only,
 * 512-byte alignment); the rest is a stream of requests (28-byte headers,
 * WRITE payloads inline) run through nbd_request_parse, nbd_request_check
 * and nbd_exec over a 1 MiB memory export.  Every reply built is parsed
 * back and checked: right magic and handle, chunk lengths consistent, a
 * successful READ covering exactly the requested range, a successful
 * BLOCK_STATUS within it. */
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "nbd/membackend.h"
#include "nbd/nbd_int.h"

#define SIZE (1u << 20)

static struct nbd_mem *mem;
static struct nbd_backend be;
static struct nbd_req req;
static uint8_t wire[2 * SIZE];

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_reply(const struct nbd_session *s, const struct nbd_request *rq)
{
    size_t n = 0;
    for (int i = 0; i < req.iovcnt; i++) {
        CHECK(n + req.iov[i].iov_len <= sizeof(wire));
        memcpy(wire + n, req.iov[i].iov_base, req.iov[i].iov_len);
        n += req.iov[i].iov_len;
    }
    if (get_be32(wire) == NBD_SIMPLE_REPLY_MAGIC) {
        CHECK(get_be64(wire + 8) == rq->handle);
        bool data = rq->type == NBD_CMD_READ && get_be32(wire + 4) == 0;
        CHECK(!(rq->type == NBD_CMD_READ && s->structured));
        CHECK(n == NBD_SIMPLE_REPLY_SIZE + (data ? rq->len : 0));
        return;
    }
    CHECK(s->structured);
    uint64_t covered = 0, next = rq->offset;
    bool done = false, error = false;
    size_t pos = 0;
    while (pos < n) {
        CHECK(!done && n - pos >= NBD_CHUNK_HDR_SIZE);
        const uint8_t *c = wire + pos;
        CHECK(get_be32(c) == NBD_STRUCTURED_REPLY_MAGIC && get_be64(c + 8) == rq->handle);
        uint16_t fl = get_be16(c + 4), ty = get_be16(c + 6);
        uint32_t len = get_be32(c + 16);
        CHECK(n - pos - NBD_CHUNK_HDR_SIZE >= len);
        const uint8_t *p = c + NBD_CHUNK_HDR_SIZE;
        done = fl & NBD_REPLY_FLAG_DONE;
        if (ty == NBD_REPLY_TYPE_OFFSET_DATA || ty == NBD_REPLY_TYPE_OFFSET_HOLE) {
            uint64_t off = get_be64(p);
            uint32_t l = ty == NBD_REPLY_TYPE_OFFSET_DATA ? len - 8 : get_be32(p + 8);
            CHECK(rq->type == NBD_CMD_READ && l > 0 && off == next);
            CHECK(ty == NBD_REPLY_TYPE_OFFSET_DATA ? len > 8 : len == 12);
            CHECK(!(ty == NBD_REPLY_TYPE_OFFSET_HOLE && (rq->flags & NBD_CMD_FLAG_DF)));
            next += l;
            covered += l;
        } else if (ty == NBD_REPLY_TYPE_BLOCK_STATUS) {
            CHECK(rq->type == NBD_CMD_BLOCK_STATUS && len >= 12 && (len - 4) % 8 == 0);
            uint64_t sum = 0;
            for (uint32_t i = 4; i < len; i += 8) {
                CHECK(get_be32(p + i) != 0);
                sum += get_be32(p + i);
            }
            CHECK(sum <= rq->len);
            CHECK(!(rq->flags & NBD_CMD_FLAG_REQ_ONE) || len == 12);
        } else if (ty == NBD_REPLY_TYPE_ERROR) {
            CHECK(len >= 6 && get_be32(p) != 0 && get_be16(p + 4) <= len - 6);
            error = true;
        } else {
            CHECK(0);
        }
        pos += NBD_CHUNK_HDR_SIZE + len;
    }
    CHECK(done);
    if (rq->type == NBD_CMD_READ && !error)
        CHECK(covered == rq->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!mem) {
        nbd_mem_new(&mem);
        nbd_mem_add(mem, "x", SIZE, false, 0, NULL);
        nbd_mem_add(mem, "a", SIZE - 100, false, 512, NULL);
        nbd_mem_add(mem, "r", SIZE, true, 0, NULL);
        nbd_mem_backend(mem, &be);
    }
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;

    struct nbd_session s = {.be = &be};
    const char *name = (mode & 4) ? "r" : (mode & 8) ? "a" : "x";
    if (be.open(be.opaque, name, &s.handle, &s.info, NULL) < 0)
        return 0;
    nbd_info_sanitise(&s.info, NULL);
    s.size = s.info.size;
    s.structured = mode & 1;
    s.meta_alloc = s.structured && (mode & 2);
    s.eflags = nbd_eflags(&be, &s.info, s.structured);
    if (mode & 16)
        s.eflags = NBD_FLAG_HAS_FLAGS; /* a server that advertised nothing */

    while (size >= NBD_REQUEST_SIZE) {
        struct nbd_request rq;
        nbd_request_parse(data, &rq);
        data += NBD_REQUEST_SIZE;
        size -= NBD_REQUEST_SIZE;
        const char *msg;
        int err = nbd_request_check(&rq, &s, &msg);
        if (err == NBD_CHECK_DISCONNECT || rq.type == NBD_CMD_DISC)
            break;
        CHECK(err >= 0 && (err == 0 || msg));
        req.rq = rq;
        req.error = err;
        req.errmsg = msg;
        if (nbd_request_has_payload(&rq)) {
            CHECK(rq.len <= NBD_MAX_PAYLOAD);
            if (rq.len > size)
                break;
            CHECK(nbd_req_reserve(&req, rq.len) == 0);
            memcpy(req.buf, data, rq.len);
            data += rq.len;
            size -= rq.len;
        }
        if (err == 0) {
            /* what the check lets through is in range and aligned */
            CHECK(rq.type == NBD_CMD_FLUSH || (rq.len && rq.offset + rq.len <= s.size));
        }
        nbd_exec(&s, &req);
        check_reply(&s, &rq);
        if (req.cap > (1u << 20)) {
            free(req.buf);
            req.buf = NULL;
            req.cap = 0;
        }
    }
    /* keep the export's memory bounded across runs */
    be.trim(s.handle, (uint32_t)s.size, 0, 0);
    be.close(s.handle);
    return 0;
}
