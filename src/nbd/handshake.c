/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fixed newstyle negotiation (option haggling), server side.
 *
 * State machine of one connection's handshake:
 *
 *   HELLO      S: NBDMAGIC IHAVEOPT flags(FIXED_NEWSTYLE|NO_ZEROES)
 *   CFLAGS     C: client flags; unknown bits -> close
 *   OPTIONS    C: IHAVEOPT option length data   (repeat)
 *                 bad magic, length > NBD_MAX_OPTLEN, more than
 *                 NBD_MAX_OPTIONS options                    -> close
 *                 STRUCTURED_REPLY, LIST, INFO, *_META_CONTEXT,
 *                 failed GO, unknown option (ERR_UNSUP)      -> OPTIONS
 *                 ABORT (ACK)                                -> close
 *                 GO (ACK) / EXPORT_NAME (size+flags)        -> TRANSMISSION
 *                 EXPORT_NAME of an unknown export           -> close (no
 *                                                 error reply exists for it)
 *
 * Before any export is opened io->admit may refuse it (the server refuses
 * exports it is kicking): the client sees the same reply as for an
 * unknown export, with the reason as its message.
 *
 * Every option's data is read completely before it is parsed, so a parse
 * error never desynchronises the stream: the client gets
 * NBD_REP_ERR_INVALID (or _TOO_BIG, _UNKNOWN, _POLICY ...) with a message
 * and may go on.  Lengths inside option data are checked against the option
 * length before use.  The handshake knows nothing of sockets (struct
 * nbd_hs_io), so the fuzzers drive it from a byte buffer. */
#include "nbd/nbd_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/le.h"

/* ---- export info --------------------------------------------------------- */
int nbd_info_sanitise(struct nbd_export_info *in, struct berr *err)
{
    if (in->min_block == 0)
        in->min_block = 1;
    if (!IS_POW2(in->min_block) || in->min_block > NBD_MAX_MIN_BLOCK)
        return berr_set(err, EINVAL, "invalid minimum block size %u", in->min_block);
    if (in->max_block == 0 || in->max_block > NBD_MAX_PAYLOAD)
        in->max_block = NBD_MAX_PAYLOAD;
    in->max_block -= in->max_block % in->min_block;
    if (in->max_block == 0)
        return berr_set(err, EINVAL, "maximum block size below the minimum %u", in->min_block);
    if (in->pref_block == 0 || !IS_POW2(in->pref_block))
        in->pref_block = NBD_DEFAULT_PREF_BLOCK;
    in->pref_block = MAX(in->pref_block, in->min_block);
    if (in->pref_block > in->max_block)
        in->pref_block = in->min_block;
    in->description[sizeof(in->description) - 1] = '\0';
    return 0;
}

uint16_t nbd_eflags(const struct nbd_backend *be, const struct nbd_export_info *in,
                    bool structured)
{
    uint16_t f = NBD_FLAG_HAS_FLAGS;
    bool rw = !in->readonly;

    if (!rw)
        f |= NBD_FLAG_READ_ONLY;
    if (in->can_flush && be->flush)
        f |= NBD_FLAG_SEND_FLUSH;
    if (in->can_fua)
        f |= NBD_FLAG_SEND_FUA;
    if (rw && in->can_trim && be->trim)
        f |= NBD_FLAG_SEND_TRIM;
    if (rw && in->can_zero && be->zero) {
        f |= NBD_FLAG_SEND_WRITE_ZEROES;
        if (in->can_fast_zero)
            f |= NBD_FLAG_SEND_FAST_ZERO;
    }
    if (structured)
        f |= NBD_FLAG_SEND_DF;
    if (in->can_multi_conn)
        f |= NBD_FLAG_CAN_MULTI_CONN;
    if (in->can_cache && be->cache)
        f |= NBD_FLAG_SEND_CACHE;
    return f;
}

void nbd_session_close(struct nbd_session *s)
{
    if (s->handle && s->be->close)
        s->be->close(s->handle);
    s->handle = NULL;
    free(s->meta_export);
    s->meta_export = NULL;
}

/* ---- option replies ------------------------------------------------------- */
static int send_rep(const struct nbd_hs_io *io, uint32_t opt, uint32_t type, const void *d1,
                    size_t l1, const void *d2, size_t l2)
{
    uint8_t b[NBD_OPT_REPLY_HDR_SIZE + 16 + NBD_MAX_STRING];
    if (l1 + l2 > sizeof(b) - NBD_OPT_REPLY_HDR_SIZE)
        return -EINVAL;
    put_be64(b, NBD_REP_MAGIC);
    put_be32(b + 8, opt);
    put_be32(b + 12, type);
    put_be32(b + 16, (uint32_t)(l1 + l2));
    if (l1)
        memcpy(b + NBD_OPT_REPLY_HDR_SIZE, d1, l1);
    if (l2)
        memcpy(b + NBD_OPT_REPLY_HDR_SIZE + l1, d2, l2);
    return io->write(io->o, b, NBD_OPT_REPLY_HDR_SIZE + l1 + l2);
}

static int send_ack(const struct nbd_hs_io *io, uint32_t opt)
{
    return send_rep(io, opt, NBD_REP_ACK, NULL, 0, NULL, 0);
}

static int __attribute__((format(printf, 4, 5)))
send_err(const struct nbd_hs_io *io, uint32_t opt, uint32_t type, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = n < 0 ? 0 : MIN(n, (int)sizeof(msg) - 1);
    return send_rep(io, opt, type, msg, (size_t)n, NULL, 0);
}

static int send_info(const struct nbd_hs_io *io, uint32_t opt, uint16_t type, const void *d,
                     size_t len)
{
    uint8_t t[2];
    put_be16(t, type);
    return send_rep(io, opt, NBD_REP_INFO, t, 2, d, len);
}

/* an NBD string: bounded, no NUL inside */
static bool valid_string(const uint8_t *p, size_t len)
{
    return len <= NBD_MAX_STRING && memchr(p, '\0', len) == NULL;
}

static uint32_t open_error_rep(int code)
{
    switch (code) {
    case ENOENT:
        return NBD_REP_ERR_UNKNOWN;
    case EPERM:
    case EACCES:
    case EBUSY:
    case EROFS:
        return NBD_REP_ERR_POLICY;
    case ESHUTDOWN:
        return NBD_REP_ERR_SHUTDOWN;
    case EINVAL:
        return NBD_REP_ERR_INVALID;
    default:
        return NBD_REP_ERR_UNKNOWN;
    }
}

/* Close a handle open_export() gave us (not the session's). */
static void close_export(const struct nbd_hs_io *io, struct nbd_session *s, void *h)
{
    if (s->be->close)
        s->be->close(h);
    if (io->release)
        io->release(io->o);
}

/* Open `name`; on failure reply to `opt` (unless opt is 0) and return the
 * reply's write result or 1 ("replied, go on"). */
static int open_export(const struct nbd_hs_io *io, struct nbd_session *s, uint32_t opt,
                       const char *name, void **handle, struct nbd_export_info *info)
{
    struct berr err = {0};
    memset(info, 0, sizeof(*info));
    *handle = NULL;
    const char *why = NULL;
    int ret = io->admit ? io->admit(io->o, name, &why) : 0;
    if (ret < 0) {
        berr_set(&err, -ret, "export '%.200s': %s", name, why ? why : "refused");
    } else {
        ret = s->be->open(s->be->opaque, name, handle, info, &err);
        if (ret < 0 && io->release)
            io->release(io->o);
    }
    if (ret >= 0 && !s->be->pwrite)
        info->readonly = true;
    if (ret >= 0 && nbd_info_sanitise(info, &err) < 0) {
        close_export(io, s, *handle);
        *handle = NULL;
        ret = -EINVAL;
    }
    if (ret >= 0)
        return 0;
    if (!opt)
        return ret;
    int code = err.code ? err.code : -ret;
    if (err.msg[0])
        ret = send_err(io, opt, open_error_rep(code), "%s", err.msg);
    else
        ret = send_err(io, opt, open_error_rep(code), "cannot open export '%.200s': %s", name,
                       code == ENOENT ? "no such export" : "open failed");
    return ret < 0 ? ret : 1;
}

/* ---- options -------------------------------------------------------------- */
struct list_ctx {
    const struct nbd_hs_io *io;
    int ret;
};

static int list_cb(const char *name, const char *desc, void *o)
{
    struct list_ctx *c = o;
    size_t len = strlen(name);
    if (len > NBD_MAX_STRING)
        return 0;
    uint8_t l[4];
    put_be32(l, (uint32_t)len);
    c->ret = send_rep(c->io, NBD_OPT_LIST, NBD_REP_SERVER, l, 4, name, len);
    return c->ret < 0;
}

static int opt_list(const struct nbd_hs_io *io, struct nbd_session *s, uint32_t len)
{
    if (len != 0)
        return send_err(io, NBD_OPT_LIST, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
    if (!s->be->list)
        return send_err(io, NBD_OPT_LIST, NBD_REP_ERR_POLICY, "export listing is disabled");
    struct list_ctx c = {io, 0};
    int ret = s->be->list(s->be->opaque, list_cb, &c);
    if (c.ret < 0)
        return c.ret;
    if (ret < 0)
        return send_err(io, NBD_OPT_LIST, NBD_REP_ERR_SHUTDOWN, "cannot list exports");
    return send_ack(io, NBD_OPT_LIST);
}

/* NBD_OPT_INFO / NBD_OPT_GO: name length(4) name nreq(2) nreq x type(2).
 * Returns 1 when GO succeeded (transmission), 0 to continue, -errno. */
static int opt_info_go(const struct nbd_hs_io *io, struct nbd_session *s, uint32_t opt,
                       const uint8_t *d, uint32_t len)
{
    if (len < 6)
        return send_err(io, opt, NBD_REP_ERR_INVALID, "option data too short");
    uint32_t nlen = get_be32(d);
    if (nlen > len - 6)
        return send_err(io, opt, NBD_REP_ERR_INVALID, "export name length beyond the option");
    uint16_t nreq = get_be16(d + 4 + nlen);
    if (len != 6 + nlen + 2u * nreq)
        return send_err(io, opt, NBD_REP_ERR_INVALID, "option length does not match its data");
    if (nlen > NBD_MAX_STRING)
        return send_err(io, opt, NBD_REP_ERR_TOO_BIG, "export name longer than %d bytes",
                        NBD_MAX_STRING);
    if (!valid_string(d + 4, nlen))
        return send_err(io, opt, NBD_REP_ERR_INVALID, "export name contains NUL");

    char name[NBD_MAX_STRING + 1];
    memcpy(name, d + 4, nlen);
    name[nlen] = '\0';
    bool want_name = false, want_desc = false, want_bs = false;
    for (unsigned i = 0; i < nreq; i++) {
        uint16_t t = get_be16(d + 6 + nlen + 2 * i);
        want_name |= t == NBD_INFO_NAME;
        want_desc |= t == NBD_INFO_DESCRIPTION;
        want_bs |= t == NBD_INFO_BLOCK_SIZE;
    }

    void *h;
    struct nbd_export_info info;
    int ret = open_export(io, s, opt, name, &h, &info);
    if (ret != 0)
        return ret < 0 ? ret : 0;
    /* a client that does not ask for block sizes may send unaligned
     * requests: refuse GO rather than fail its I/O later */
    if (opt == NBD_OPT_GO && !want_bs && info.min_block > 1) {
        close_export(io, s, h);
        return send_err(io, opt, NBD_REP_ERR_BLOCK_SIZE_REQD,
                        "export '%.200s' needs %u-byte aligned requests", name, info.min_block);
    }

    uint16_t eflags = nbd_eflags(s->be, &info, s->structured);
    uint8_t b[NBD_INFO_BLOCK_SIZE_SIZE];
    put_be64(b, info.size);
    put_be16(b + 8, eflags);
    ret = send_info(io, opt, NBD_INFO_EXPORT, b, NBD_INFO_EXPORT_SIZE - 2);
    if (ret == 0 && want_name)
        ret = send_info(io, opt, NBD_INFO_NAME, name, nlen);
    if (ret == 0 && want_desc && info.description[0])
        ret = send_info(io, opt, NBD_INFO_DESCRIPTION, info.description,
                        strlen(info.description));
    if (ret == 0) {
        /* sent even unasked: the spec allows it and clients honour it */
        put_be32(b, info.min_block);
        put_be32(b + 4, info.pref_block);
        put_be32(b + 8, info.max_block);
        ret = send_info(io, opt, NBD_INFO_BLOCK_SIZE, b, NBD_INFO_BLOCK_SIZE_SIZE - 2);
    }
    if (ret == 0)
        ret = send_ack(io, opt);
    if (ret < 0 || opt == NBD_OPT_INFO) {
        close_export(io, s, h);
        return ret;
    }
    s->handle = h;
    s->info = info;
    s->size = info.size;
    s->eflags = eflags;
    memcpy(s->name, name, nlen + 1);
    if (s->meta_alloc && (!s->meta_export || strcmp(s->meta_export, name) != 0))
        s->meta_alloc = false;
    return 1;
}

/* NBD_OPT_{LIST,SET}_META_CONTEXT: name length(4) name nq(4) nq x (len(4) query) */
static int opt_meta(const struct nbd_hs_io *io, struct nbd_session *s, uint32_t opt,
                    const uint8_t *d, uint32_t len)
{
    if (opt == NBD_OPT_SET_META_CONTEXT)
        s->meta_alloc = false; /* every SET replaces the selection */
    if (!s->structured)
        return send_err(io, opt, NBD_REP_ERR_INVALID, "structured replies not negotiated");
    if (len < 8)
        return send_err(io, opt, NBD_REP_ERR_INVALID, "option data too short");
    uint32_t nlen = get_be32(d);
    if (nlen > len - 8)
        return send_err(io, opt, NBD_REP_ERR_INVALID, "export name length beyond the option");
    if (nlen > NBD_MAX_STRING)
        return send_err(io, opt, NBD_REP_ERR_TOO_BIG, "export name too long");
    if (!valid_string(d + 4, nlen))
        return send_err(io, opt, NBD_REP_ERR_INVALID, "export name contains NUL");
    uint32_t nq = get_be32(d + 4 + nlen);
    const uint8_t *p = d + 8 + nlen;
    size_t rest = len - 8 - nlen;
    bool match = nq == 0 && opt == NBD_OPT_LIST_META_CONTEXT;
    for (uint32_t i = 0; i < nq; i++) {
        if (rest < 4)
            return send_err(io, opt, NBD_REP_ERR_INVALID, "truncated query list");
        uint32_t ql = get_be32(p);
        if (ql > rest - 4)
            return send_err(io, opt, NBD_REP_ERR_INVALID, "query length beyond the option");
        if (ql > NBD_MAX_STRING)
            return send_err(io, opt, NBD_REP_ERR_TOO_BIG, "query too long");
        const char *q = (const char *)p + 4;
        if ((ql == 5 && memcmp(q, "base:", 5) == 0) ||
            (ql == strlen(NBD_META_BASE_ALLOCATION) &&
             memcmp(q, NBD_META_BASE_ALLOCATION, ql) == 0))
            match = true;
        p += 4 + ql;
        rest -= 4 + ql;
    }
    if (rest != 0)
        return send_err(io, opt, NBD_REP_ERR_INVALID, "trailing data after the queries");

    char name[NBD_MAX_STRING + 1];
    memcpy(name, d + 4, nlen);
    name[nlen] = '\0';
    void *h;
    struct nbd_export_info info;
    int ret = open_export(io, s, opt, name, &h, &info);
    if (ret != 0)
        return ret < 0 ? ret : 0;
    close_export(io, s, h);

    if (match) {
        uint8_t id[4];
        put_be32(id, opt == NBD_OPT_SET_META_CONTEXT ? NBD_META_ID_BASE_ALLOCATION : 0);
        ret = send_rep(io, opt, NBD_REP_META_CONTEXT, id, 4, NBD_META_BASE_ALLOCATION,
                       strlen(NBD_META_BASE_ALLOCATION));
        if (ret < 0)
            return ret;
    }
    if (opt == NBD_OPT_SET_META_CONTEXT) {
        free(s->meta_export);
        s->meta_export = strdup(name);
        if (!s->meta_export)
            return -ENOMEM;
        s->meta_alloc = match;
    }
    return send_ack(io, opt);
}

/* NBD_OPT_EXPORT_NAME: no error reply exists, failures close the connection */
static int opt_export_name(const struct nbd_hs_io *io, struct nbd_session *s, const uint8_t *d,
                           uint32_t len)
{
    if (!valid_string(d, len))
        return -EPROTO;
    char name[NBD_MAX_STRING + 1];
    memcpy(name, d, len);
    name[len] = '\0';
    void *h;
    struct nbd_export_info info;
    int ret = open_export(io, s, 0, name, &h, &info);
    if (ret < 0)
        return ret;
    s->handle = h;
    s->info = info;
    s->size = info.size;
    s->eflags = nbd_eflags(s->be, &info, s->structured);
    memcpy(s->name, name, len + 1);
    if (s->meta_alloc && (!s->meta_export || strcmp(s->meta_export, name) != 0))
        s->meta_alloc = false;

    uint8_t b[NBD_EXPORT_NAME_REPLY_SIZE + NBD_EXPORT_NAME_PAD] = {0};
    put_be64(b, info.size);
    put_be16(b + 8, s->eflags);
    return io->write(io->o, b, NBD_EXPORT_NAME_REPLY_SIZE + (s->no_zeroes ? 0 : NBD_EXPORT_NAME_PAD));
}

static int haggle(const struct nbd_hs_io *io, struct nbd_session *s)
{
    uint8_t b[MAX(NBD_OPT_HDR_SIZE, NBD_SERVER_HELLO_SIZE)];
    int ret;

    put_be64(b, NBD_MAGIC);
    put_be64(b + 8, NBD_IHAVEOPT);
    put_be16(b + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    if ((ret = io->write(io->o, b, NBD_SERVER_HELLO_SIZE)) < 0)
        return ret;
    if ((ret = io->read(io->o, b, NBD_CLIENT_FLAGS_SIZE)) < 0)
        return ret;
    uint32_t cflags = get_be32(b);
    if (cflags & ~NBD_FLAG_C_KNOWN)
        return -EPROTO;
    s->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

    for (;;) {
        if ((ret = io->read(io->o, b, NBD_OPT_HDR_SIZE)) < 0)
            return ret;
        if (get_be64(b) != NBD_IHAVEOPT)
            return -EPROTO;
        uint32_t opt = get_be32(b + 8), len = get_be32(b + 12);
        if (++s->nopts > NBD_MAX_OPTIONS)
            return -EPROTO;
        if (len > NBD_MAX_OPTLEN) {
            /* we will not read (or skip) that much: say why, then close */
            if (opt != NBD_OPT_EXPORT_NAME)
                send_err(io, opt, NBD_REP_ERR_TOO_BIG, "option data longer than %u bytes",
                         NBD_MAX_OPTLEN);
            return -E2BIG;
        }
        _cleanup_free_ uint8_t *d = malloc(len + 1);
        if (!d)
            return -ENOMEM;
        if (len && (ret = io->read(io->o, d, len)) < 0)
            return ret;

        switch (opt) {
        case NBD_OPT_EXPORT_NAME:
            return opt_export_name(io, s, d, len);
        case NBD_OPT_ABORT:
            send_ack(io, opt); /* the client may already be gone */
            return -ECONNABORTED;
        case NBD_OPT_LIST:
            ret = opt_list(io, s, len);
            break;
        case NBD_OPT_STARTTLS:
            ret = send_err(io, opt, NBD_REP_ERR_POLICY, "TLS is not supported by this server");
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            ret = opt_info_go(io, s, opt, d, len);
            if (ret == 1)
                return 0;
            break;
        case NBD_OPT_STRUCTURED_REPLY:
            if (len != 0) {
                ret = send_err(io, opt, NBD_REP_ERR_INVALID, "option takes no data");
                break;
            }
            s->structured = true;
            ret = send_ack(io, opt);
            break;
        case NBD_OPT_LIST_META_CONTEXT:
        case NBD_OPT_SET_META_CONTEXT:
            ret = opt_meta(io, s, opt, d, len);
            break;
        default:
            ret = send_err(io, opt, NBD_REP_ERR_UNSUP, "option %u is not supported", opt);
            break;
        }
        if (ret < 0)
            return ret;
    }
}

int nbd_handshake(const struct nbd_backend *be, const struct nbd_hs_io *io, struct nbd_session *s)
{
    memset(s, 0, sizeof(*s));
    s->be = be;
    int ret = haggle(io, s);
    if (ret < 0)
        nbd_session_close(s);
    return ret;
}
