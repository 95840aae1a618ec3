/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the NBD protocol layer without sockets: the request
 * validation table (every rejection path of nbd_request_check, in its
 * documented order), request decoding, export-info sanitising, transmission
 * flags, errno mapping, and replies built by nbd_exec() over the memory
 * backend (simple, structured with holes, DF, block status, errors). */
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "nbd/membackend.h"
#include "nbd/nbd_int.h"
#include "tap.h"

#define MiB (1024u * 1024)
#define ALL_FLAGS                                                                                  \
    (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |           \
     NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO | NBD_FLAG_SEND_DF |                      \
     NBD_FLAG_SEND_CACHE | NBD_FLAG_CAN_MULTI_CONN)

enum sess { FULL, BARE, RO, ALIGNED, NOMETA };

static void mk_session(struct nbd_session *s, enum sess k)
{
    memset(s, 0, sizeof(*s));
    s->size = 64 * MiB;
    s->info.min_block = 1;
    s->info.pref_block = 4096;
    s->info.max_block = 32 * MiB;
    s->eflags = ALL_FLAGS;
    s->structured = true;
    s->meta_alloc = true;
    switch (k) {
    case FULL:
        break;
    case BARE: /* old client: no structured replies, nothing optional */
        s->eflags = NBD_FLAG_HAS_FLAGS;
        s->structured = s->meta_alloc = false;
        break;
    case RO:
        s->eflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH |
                    NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_DF;
        break;
    case ALIGNED:
        s->info.min_block = 512;
        s->info.max_block = 1 * MiB;
        s->size = 64 * MiB + 100; /* an unaligned tail */
        break;
    case NOMETA:
        s->meta_alloc = false;
        break;
    }
}

#define R NBD_CMD_READ
#define W NBD_CMD_WRITE
#define FL NBD_CMD_FLUSH
#define TR NBD_CMD_TRIM
#define CA NBD_CMD_CACHE
#define WZ NBD_CMD_WRITE_ZEROES
#define BS NBD_CMD_BLOCK_STATUS
#define DC NBD_CMD_DISC
#define M NBD_REQUEST_MAGIC
#define DISC NBD_CHECK_DISCONNECT

static const struct row {
    const char *what;
    enum sess s;
    uint32_t magic;
    uint16_t flags, type;
    uint64_t off;
    uint32_t len;
    int want;
} rows[] = {
    /* 1. magic */
    {"bad magic", FULL, 0x12345678, 0, R, 0, 512, DISC},
    {"reply magic as request", FULL, NBD_SIMPLE_REPLY_MAGIC, 0, R, 0, 512, DISC},
    /* DISC always accepted */
    {"disc", FULL, M, 0, DC, 0, 0, 0},
    {"disc with junk", FULL, M, 0xffff, DC, 5, 5, 0},
    /* 2. oversized write payload */
    {"write 32M+1", FULL, M, 0, W, 0, 32 * MiB + 1, DISC},
    {"write 4G-1", FULL, M, 0, W, 0, UINT32_MAX, DISC},
    {"read 32M+1 is an error", FULL, M, 0, R, 0, 32 * MiB + 1, NBD_EOVERFLOW},
    /* 3. unknown command */
    {"command 8", FULL, M, 0, 8, 0, 512, NBD_EINVAL},
    {"command 0xffff", FULL, M, 0, 0xffff, 0, 512, NBD_EINVAL},
    /* 4. flags */
    {"unknown flag bit 5", FULL, M, 1u << 5, R, 0, 512, NBD_EINVAL},
    {"unknown flag bit 15", FULL, M, 1u << 15, W, 0, 512, NBD_EINVAL},
    {"REQ_ONE on read", FULL, M, NBD_CMD_FLAG_REQ_ONE, R, 0, 512, NBD_EINVAL},
    {"DF on write", FULL, M, NBD_CMD_FLAG_DF, W, 0, 512, NBD_EINVAL},
    {"NO_HOLE on write", FULL, M, NBD_CMD_FLAG_NO_HOLE, W, 0, 512, NBD_EINVAL},
    {"FAST_ZERO on trim", FULL, M, NBD_CMD_FLAG_FAST_ZERO, TR, 0, 512, NBD_EINVAL},
    {"FUA not negotiated", BARE, M, NBD_CMD_FLAG_FUA, W, 0, 512, NBD_EINVAL},
    {"DF without structured", BARE, M, NBD_CMD_FLAG_DF, R, 0, 512, NBD_EINVAL},
    {"FAST_ZERO not negotiated", BARE, M, NBD_CMD_FLAG_FAST_ZERO, WZ, 0, 512, NBD_EINVAL},
    {"FUA on read ok", FULL, M, NBD_CMD_FLAG_FUA, R, 0, 512, 0},
    {"FUA on flush ok", FULL, M, NBD_CMD_FLAG_FUA, FL, 0, 0, 0},
    {"DF on read ok", FULL, M, NBD_CMD_FLAG_DF, R, 0, 512, 0},
    {"REQ_ONE on bs ok", FULL, M, NBD_CMD_FLAG_REQ_ONE, BS, 0, 512, 0},
    {"all zero flags ok", FULL, M,
     NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO, WZ, 0, 512, 0},
    /* 5. read-only */
    {"write on ro", RO, M, 0, W, 0, 512, NBD_EPERM},
    {"trim on ro", RO, M, 0, TR, 0, 512, NBD_EPERM},
    {"zero on ro", RO, M, 0, WZ, 0, 512, NBD_EPERM},
    {"write on ro past end", RO, M, 0, W, 128 * MiB, 512, NBD_EPERM},
    {"read on ro ok", RO, M, 0, R, 0, 512, 0},
    {"flush on ro ok", RO, M, 0, FL, 0, 0, 0},
    /* 6. not advertised */
    {"flush not negotiated", BARE, M, 0, FL, 0, 0, NBD_EINVAL},
    {"trim not negotiated", BARE, M, 0, TR, 0, 512, NBD_EINVAL},
    {"zero not negotiated", BARE, M, 0, WZ, 0, 512, NBD_EINVAL},
    {"cache not negotiated", BARE, M, 0, CA, 0, 512, NBD_EINVAL},
    {"bs without structured", BARE, M, 0, BS, 0, 512, NBD_EINVAL},
    {"bs without meta context", NOMETA, M, 0, BS, 0, 512, NBD_EINVAL},
    {"read on bare ok", BARE, M, 0, R, 0, 512, 0},
    {"write on bare ok", BARE, M, 0, W, 0, 512, 0},
    /* 7. flush */
    {"flush with offset", FULL, M, 0, FL, 1, 0, NBD_EINVAL},
    {"flush with length", FULL, M, 0, FL, 0, 1, NBD_EINVAL},
    /* 8. lengths */
    {"zero-length read", FULL, M, 0, R, 0, 0, NBD_EINVAL},
    {"zero-length write", FULL, M, 0, W, 0, 0, NBD_EINVAL},
    {"zero-length trim", FULL, M, 0, TR, 0, 0, NBD_EINVAL},
    {"zero-length bs", FULL, M, 0, BS, 0, 0, NBD_EINVAL},
    {"read above max_block", ALIGNED, M, 0, R, 0, 1 * MiB + 512, NBD_EOVERFLOW},
    {"write above max_block", ALIGNED, M, 0, W, 0, 1 * MiB + 512, NBD_EOVERFLOW},
    {"trim above max_block ok", ALIGNED, M, 0, TR, 0, 2 * MiB, 0},
    {"bs 4G-512 ok", ALIGNED, M, 0, BS, 0, 64 * MiB, 0},
    {"read 32M ok", FULL, M, 0, R, 0, 32 * MiB, 0},
    /* 9. range */
    {"read past end", FULL, M, 0, R, 64 * MiB, 1, NBD_EINVAL},
    {"read straddling end", FULL, M, 0, R, 64 * MiB - 1, 2, NBD_EINVAL},
    {"read offset overflow", FULL, M, 0, R, UINT64_MAX, 1, NBD_EINVAL},
    {"read offset+len overflow", FULL, M, 0, R, UINT64_MAX - 10, 512, NBD_EINVAL},
    {"write past end", FULL, M, 0, W, 64 * MiB, 512, NBD_ENOSPC},
    {"write straddling end", FULL, M, 0, W, 64 * MiB - 256, 512, NBD_ENOSPC},
    {"trim past end", FULL, M, 0, TR, 64 * MiB, 512, NBD_ENOSPC},
    {"zero past end", FULL, M, 0, WZ, UINT64_MAX, 512, NBD_ENOSPC},
    {"cache past end", FULL, M, 0, CA, 64 * MiB, 512, NBD_EINVAL},
    {"bs past end", FULL, M, 0, BS, 64 * MiB - 4096, 8192, NBD_EINVAL},
    {"read last byte ok", FULL, M, 0, R, 64 * MiB - 1, 1, 0},
    {"write to end ok", FULL, M, 0, W, 60 * MiB, 4 * MiB, 0},
    /* 10. alignment */
    {"unaligned offset", ALIGNED, M, 0, R, 100, 512, NBD_EINVAL},
    {"unaligned length", ALIGNED, M, 0, W, 0, 100, NBD_EINVAL},
    {"unaligned trim", ALIGNED, M, 0, TR, 512, 1000, NBD_EINVAL},
    {"unaligned bs", ALIGNED, M, 0, BS, 1, 512, NBD_EINVAL},
    {"aligned ok", ALIGNED, M, 0, R, 1024, 4096, 0},
    {"unaligned tail to end ok", ALIGNED, M, 0, R, 64 * MiB, 100, 0},
    {"unaligned tail short of end", ALIGNED, M, 0, R, 64 * MiB, 99, NBD_EINVAL},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *t = &rows[i];
        struct nbd_session s;
        mk_session(&s, t->s);
        struct nbd_request rq = {t->magic, t->flags, t->type, 42, t->off, t->len};
        const char *msg = "unset";
        int got = nbd_request_check(&rq, &s, &msg);
        ok(got == t->want, "check: %s (got %d, want %d%s%s)", t->what, got, t->want,
           msg ? ", " : "", msg ? msg : "");
        if (got != 0)
            ok(msg && *msg, "check: %s has a message", t->what);
    }
}

static void test_parse(void)
{
    uint8_t b[NBD_REQUEST_SIZE];
    put_be32(b, NBD_REQUEST_MAGIC);
    put_be16(b + 4, 0x8001);
    put_be16(b + 6, NBD_CMD_WRITE);
    put_be64(b + 8, 0x0102030405060708ull);
    put_be64(b + 16, 0xfffffffffffffe00ull);
    put_be32(b + 24, 0xdeadbeef);
    struct nbd_request rq;
    nbd_request_parse(b, &rq);
    ok(rq.magic == NBD_REQUEST_MAGIC && rq.flags == 0x8001 && rq.type == NBD_CMD_WRITE &&
           rq.handle == 0x0102030405060708ull && rq.offset == 0xfffffffffffffe00ull &&
           rq.len == 0xdeadbeef,
       "request header decodes big-endian fields");
}

static void test_info(void)
{
    struct nbd_export_info in = {0};
    struct berr err = {0};
    ok(nbd_info_sanitise(&in, &err) == 0, "sanitise zeroes");
    ok(in.min_block == 1 && in.pref_block == 4096 && in.max_block == 32 * MiB, "defaults 1/4K/32M");
    in = (struct nbd_export_info){.min_block = 512, .pref_block = 3000, .max_block = 0xffffffff};
    ok(nbd_info_sanitise(&in, &err) == 0 && in.pref_block == 4096 && in.max_block == 32 * MiB,
       "bad preferred and huge max are clamped");
    in = (struct nbd_export_info){.min_block = 4096, .max_block = 10000};
    ok(nbd_info_sanitise(&in, &err) == 0 && in.max_block == 8192 && in.pref_block == 4096,
       "max rounded down to a multiple of min");
    in = (struct nbd_export_info){.min_block = 768};
    ok(nbd_info_sanitise(&in, &err) == -EINVAL && err.msg[0], "min not a power of 2 refused");
    in = (struct nbd_export_info){.min_block = 128 * 1024};
    ok(nbd_info_sanitise(&in, &err) == -EINVAL, "min above 64K refused");

    struct nbd_mem *m;
    struct nbd_backend be;
    nbd_mem_new(&m);
    nbd_mem_backend(m, &be);
    in = (struct nbd_export_info){.can_trim = true, .can_zero = true, .can_fast_zero = true,
                                  .can_flush = true, .can_fua = true, .can_cache = true,
                                  .can_multi_conn = true};
    is_int(nbd_eflags(&be, &in, true), ALL_FLAGS, "eflags: everything");
    is_int(nbd_eflags(&be, &in, false), ALL_FLAGS & ~NBD_FLAG_SEND_DF, "eflags: DF needs structured");
    in.readonly = true;
    is_int(nbd_eflags(&be, &in, false),
           NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
               NBD_FLAG_SEND_CACHE | NBD_FLAG_CAN_MULTI_CONN,
           "eflags: read-only drops trim/zero");
    in = (struct nbd_export_info){.can_fast_zero = true};
    is_int(nbd_eflags(&be, &in, false), NBD_FLAG_HAS_FLAGS, "eflags: fast zero needs zero");
    be.trim = NULL;
    in.can_trim = true;
    is_int(nbd_eflags(&be, &in, false), NBD_FLAG_HAS_FLAGS, "eflags: no trim without a function");
    nbd_mem_free(m);
}

static void test_errno(void)
{
    static const int map[][2] = {
        {0, 0},          {-EPERM, 1},     {-EROFS, 1},      {-EACCES, 1},  {-EIO, 5},
        {-ENOMEM, 12},   {-EINVAL, 22},   {-ENOSPC, 28},    {-EDQUOT, 28}, {-EFBIG, 28},
        {-EOVERFLOW, 75}, {-ENOTSUP, 95}, {-EOPNOTSUPP, 95}, {-ESHUTDOWN, 108},
        {-ENOENT, 5},    {-EBADMSG, 5},   {-9999, 5},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        ok(nbd_errno_to_wire(map[i][0]) == (uint32_t)map[i][1], "errno %d -> NBD %d", map[i][0],
           map[i][1]);
}

/* ---- replies over the memory backend --------------------------------------- */
static size_t flatten(const struct nbd_req *r, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < r->iovcnt; i++) {
        if (n + r->iov[i].iov_len > cap)
            return SIZE_MAX;
        memcpy(out + n, r->iov[i].iov_base, r->iov[i].iov_len);
        n += r->iov[i].iov_len;
    }
    return n;
}

static struct nbd_req req;
static uint8_t wire[300000];

static size_t run(struct nbd_session *s, uint16_t type, uint16_t flags, uint64_t off, uint32_t len)
{
    req.rq = (struct nbd_request){NBD_REQUEST_MAGIC, flags, type, 0x1122334455667788ull, off, len};
    req.error = nbd_request_check(&req.rq, s, &req.errmsg);
    nbd_exec(s, &req);
    return flatten(&req, wire, sizeof(wire));
}

static void test_exec(void)
{
    struct nbd_mem *m;
    struct nbd_backend be;
    struct nbd_session s;
    struct berr err = {0};
    nbd_mem_new(&m);
    nbd_mem_add(m, "x", 1 * MiB, false, 0, &err);
    nbd_mem_backend(m, &be);
    memset(&s, 0, sizeof(s));
    s.be = &be;
    ok(be.open(m, "x", &s.handle, &s.info, &err) == 0, "open x");
    nbd_info_sanitise(&s.info, &err);
    s.size = s.info.size;
    s.eflags = nbd_eflags(&be, &s.info, true);
    s.structured = s.meta_alloc = true;

    /* write 8K of 0x5a at 64K */
    nbd_req_reserve(&req, 8192);
    memset(req.buf, 0x5a, 8192);
    size_t n = run(&s, NBD_CMD_WRITE, 0, 65536, 8192);
    ok(n == 16 && get_be32(wire) == NBD_SIMPLE_REPLY_MAGIC && get_be32(wire + 4) == 0 &&
           get_be64(wire + 8) == 0x1122334455667788ull,
       "write: simple success reply with the handle");

    /* structured read of [60K, 76K): hole 4K, data 8K, hole 4K */
    n = run(&s, NBD_CMD_READ, 0, 61440, 16384);
    const uint8_t *p = wire;
    ok(get_be32(p) == NBD_STRUCTURED_REPLY_MAGIC && get_be16(p + 4) == 0 &&
           get_be16(p + 6) == NBD_REPLY_TYPE_OFFSET_HOLE && get_be32(p + 16) == 12 &&
           get_be64(p + 20) == 61440 && get_be32(p + 28) == 4096,
       "read: first chunk is a 4K hole");
    p += 32;
    ok(get_be16(p + 6) == NBD_REPLY_TYPE_OFFSET_DATA && get_be32(p + 16) == 8 + 8192 &&
           get_be64(p + 20) == 65536 && p[28] == 0x5a && p[28 + 8191] == 0x5a,
       "read: then 8K of data");
    p += 28 + 8192;
    ok(get_be16(p + 4) == NBD_REPLY_FLAG_DONE && get_be16(p + 6) == NBD_REPLY_TYPE_OFFSET_HOLE &&
           get_be64(p + 20) == 73728 && get_be32(p + 28) == 4096,
       "read: last chunk is a hole flagged DONE");
    ok(n == (size_t)(p + 32 - wire), "read: nothing else (%zu bytes)", n);

    /* DF: one data chunk with the zeroes present */
    n = run(&s, NBD_CMD_READ, NBD_CMD_FLAG_DF, 61440, 16384);
    ok(n == 28 + 16384 && get_be16(wire + 4) == NBD_REPLY_FLAG_DONE &&
           get_be16(wire + 6) == NBD_REPLY_TYPE_OFFSET_DATA && wire[28] == 0 &&
           wire[28 + 4096] == 0x5a,
       "read DF: a single data chunk");

    /* simple replies: header + data */
    s.structured = false;
    n = run(&s, NBD_CMD_READ, 0, 61440, 16384);
    ok(n == 16 + 16384 && get_be32(wire) == NBD_SIMPLE_REPLY_MAGIC && wire[16] == 0 &&
           wire[16 + 4096] == 0x5a,
       "read without structured replies: simple reply with data");
    n = run(&s, NBD_CMD_READ, 0, 2 * MiB, 512);
    ok(n == 16 && get_be32(wire + 4) == NBD_EINVAL, "bad read, simple: error, no payload");
    s.structured = true;

    /* errors as structured ERROR chunks with a message */
    n = run(&s, NBD_CMD_READ, 0, 2 * MiB, 512);
    ok(n > 26 && get_be16(wire + 4) == NBD_REPLY_FLAG_DONE &&
           get_be16(wire + 6) == NBD_REPLY_TYPE_ERROR && get_be32(wire + 20) == NBD_EINVAL &&
           get_be16(wire + 24) == n - 26 && get_be32(wire + 16) == n - 20,
       "bad read, structured: ERROR chunk with message '%.*s'", (int)(n > 26 ? n - 26 : 0),
       wire + 26);
    nbd_mem_set_fail(m, "x", EIO);
    n = run(&s, NBD_CMD_READ, 0, 0, 512);
    ok(get_be16(wire + 6) == NBD_REPLY_TYPE_ERROR && get_be32(wire + 20) == NBD_EIO,
       "backend EIO on read -> NBD_EIO");
    n = run(&s, NBD_CMD_WRITE, 0, 0, 512);
    ok(get_be32(wire + 20) == NBD_EIO, "backend EIO on write -> NBD_EIO");
    nbd_mem_set_fail(m, "x", ENOSPC);
    n = run(&s, NBD_CMD_FLUSH, 0, 0, 0);
    ok(get_be32(wire + 20) == NBD_ENOSPC, "backend ENOSPC on flush -> NBD_ENOSPC");
    nbd_mem_set_fail(m, "x", 0);

    /* block status */
    n = run(&s, NBD_CMD_BLOCK_STATUS, 0, 0, 1 * MiB);
    ok(n == 20 + 4 + 3 * 8 && get_be16(wire + 6) == NBD_REPLY_TYPE_BLOCK_STATUS &&
           get_be32(wire + 20) == NBD_META_ID_BASE_ALLOCATION,
       "block status: one chunk, three extents");
    ok(get_be32(wire + 24) == 65536 && get_be32(wire + 28) == 3 && get_be32(wire + 32) == 8192 &&
           get_be32(wire + 36) == 0 && get_be32(wire + 40) == 1 * MiB - 73728 &&
           get_be32(wire + 44) == 3,
       "block status: hole, data, hole");
    n = run(&s, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 4096, 1 * MiB - 4096);
    ok(n == 32 && get_be32(wire + 24) == 61440 && get_be32(wire + 28) == 3,
       "block status REQ_ONE: one extent");

    /* trim punches, zero NO_HOLE allocates */
    run(&s, NBD_CMD_TRIM, 0, 65536, 8192);
    ok(nbd_mem_allocated(m, "x") == 0, "trim freed the pages");
    run(&s, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 0, 4096);
    ok(nbd_mem_allocated(m, "x") == 4096, "zero NO_HOLE allocated a page");
    run(&s, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 0, 4096);
    ok(get_be32(wire + 4) == 0 && nbd_mem_allocated(m, "x") == 0, "fast zero punched it");

    be.close(s.handle);
    free(req.buf);
    nbd_mem_free(m);
}

int main(void)
{
    test_table();
    test_parse();
    test_info();
    test_errno();
    test_exec();
    return done_testing();
}
