/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The NBD wire protocol: every constant and every wire size berth uses, in
 * one place (NetworkBlockDevice/nbd doc/proto.md, fixed newstyle only, no
 * TLS, no extended headers).  Messages are (de)serialised field by field with
 * the big-endian helpers of common/le.h, never by casting a buffer to a
 * struct, so the offsets below are the documentation of each layout. */
#ifndef BERTH_NBD_PROTO_H
#define BERTH_NBD_PROTO_H

#include <stdint.h>

/* ---- handshake ---------------------------------------------------------- */
#define NBD_MAGIC UINT64_C(0x4e42444d41474943)      /* "NBDMAGIC" */
#define NBD_IHAVEOPT UINT64_C(0x49484156454F5054)   /* "IHAVEOPT" */
#define NBD_REP_MAGIC UINT64_C(0x0003e889045565a9)  /* option reply magic */

/* S: magic(8) IHAVEOPT(8) handshake flags(2) */
#define NBD_SERVER_HELLO_SIZE 18
/* C: client flags(4) */
#define NBD_CLIENT_FLAGS_SIZE 4
/* C: IHAVEOPT(8) option(4) length(4), then data */
#define NBD_OPT_HDR_SIZE 16
/* S: magic(8) option(4) reply type(4) length(4), then data */
#define NBD_OPT_REPLY_HDR_SIZE 20
/* S (after NBD_OPT_EXPORT_NAME): size(8) transmission flags(2) zeroes(124) */
#define NBD_EXPORT_NAME_REPLY_SIZE 10
#define NBD_EXPORT_NAME_PAD 124

/* handshake flags (server) */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES (1u << 1)
/* client flags */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES (1u << 1)
#define NBD_FLAG_C_KNOWN (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)

/* transmission flags */
#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_ROTATIONAL (1u << 4)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define NBD_FLAG_SEND_RESIZE (1u << 9)
#define NBD_FLAG_SEND_CACHE (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1u << 11)

/* options */
#define NBD_OPT_EXPORT_NAME 1
#define NBD_OPT_ABORT 2
#define NBD_OPT_LIST 3
#define NBD_OPT_STARTTLS 5
#define NBD_OPT_INFO 6
#define NBD_OPT_GO 7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10

/* option replies */
#define NBD_REP_ACK 1u
#define NBD_REP_SERVER 2u
#define NBD_REP_INFO 3u
#define NBD_REP_META_CONTEXT 4u
#define NBD_REP_ERR(n) (0x80000000u | (n))
#define NBD_REP_ERR_UNSUP NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG NBD_REP_ERR(9)

/* NBD_REP_INFO payloads: type(2) then ... */
#define NBD_INFO_EXPORT 0      /* size(8) transmission flags(2) */
#define NBD_INFO_NAME 1        /* name */
#define NBD_INFO_DESCRIPTION 2 /* description */
#define NBD_INFO_BLOCK_SIZE 3  /* min(4) preferred(4) max(4) */
#define NBD_INFO_EXPORT_SIZE 12
#define NBD_INFO_BLOCK_SIZE_SIZE 14

/* strings (export names, queries, messages) MUST be at most this long */
#define NBD_MAX_STRING 4096
/* option data we are willing to read; larger options end the connection
 * (a SET_META_CONTEXT with a name and a few queries fits easily) */
#define NBD_MAX_OPTLEN (64u * 1024)
/* options per connection before we call it a denial of service */
#define NBD_MAX_OPTIONS 1024u

/* metadata contexts */
#define NBD_META_BASE_ALLOCATION "base:allocation"
#define NBD_META_ID_BASE_ALLOCATION 1u
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* ---- transmission ------------------------------------------------------- */
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

/* C: magic(4) flags(2) type(2) handle(8) offset(8) length(4) */
#define NBD_REQUEST_SIZE 28
/* S: magic(4) error(4) handle(8) */
#define NBD_SIMPLE_REPLY_SIZE 16
/* S: magic(4) flags(2) type(2) handle(8) length(4) */
#define NBD_CHUNK_HDR_SIZE 20
/* payloads of chunks */
#define NBD_OFFSET_DATA_HDR 8      /* offset(8), then data */
#define NBD_OFFSET_HOLE_SIZE 12    /* offset(8) length(4) */
#define NBD_ERROR_HDR 6            /* error(4) message length(2), then message */
#define NBD_BS_HDR 4               /* context id(4), then descriptors */
#define NBD_BS_DESC 8              /* length(4) status(4) */

#define NBD_CMD_READ 0
#define NBD_CMD_WRITE 1
#define NBD_CMD_DISC 2
#define NBD_CMD_FLUSH 3
#define NBD_CMD_TRIM 4
#define NBD_CMD_CACHE 5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7

#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

#define NBD_REPLY_FLAG_DONE (1u << 0)

#define NBD_REPLY_TYPE_NONE 0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR ((1u << 15) | 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1u << 15) | 2)

/* error values on the wire (not host errno values) */
#define NBD_SUCCESS 0
#define NBD_EPERM 1
#define NBD_EIO 5
#define NBD_ENOMEM 12
#define NBD_EINVAL 22
#define NBD_ENOSPC 28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP 95
#define NBD_ESHUTDOWN 108

/* ---- berth's limits ----------------------------------------------------- */
/* largest READ/WRITE payload we ever accept or advertise (the interoperable
 * maximum the spec recommends clients stay within) */
#define NBD_MAX_PAYLOAD (32u * 1024 * 1024)
#define NBD_DEFAULT_PREF_BLOCK 4096u
/* largest min_block the spec allows */
#define NBD_MAX_MIN_BLOCK (64u * 1024)

#endif
