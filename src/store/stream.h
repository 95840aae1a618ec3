/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Send streams: encoding and validating records (docs/STREAM.md).
 *
 * Pure code, no I/O: the sender asks the encoder for the bytes of each
 * record and writes them itself; the receiver reads a record header, asks
 * the parser how long the payload is (validated against limits before it
 * allocates anything), reads the payload and hands the whole record back to
 * the parser, which verifies its checksum and its place in the stream.
 * Every rule a stream must obey is checked in stream_parse_rec and nowhere
 * else, so a hostile stream meets one gate. */
#ifndef BERTH_STORE_STREAM_H
#define BERTH_STORE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/store.h"
#include "common/err.h"

#define STREAM_VERSION 1
#define STREAM_MAGIC 0x444e534854524542ULL /* "BERTHSND" little-endian */
#define STREAM_REC_MAGIC 0x52485442u       /* "BTHR" little-endian */

#define STREAM_HDR_SIZE 32        /* every record starts with this header */
#define STREAM_BEGIN_FIXED 96     /* BEGIN payload before the names */
#define STREAM_NAME_MAX 127       /* bytes of a "VOL@SNAP" name in a stream */
#define STREAM_BEGIN_MAX (STREAM_HDR_SIZE + STREAM_BEGIN_FIXED + 2 * STREAM_NAME_MAX)
#define STREAM_DATA_FIXED 24      /* DATA payload before the block bytes */
#define STREAM_DATA_PREFIX (STREAM_HDR_SIZE + STREAM_DATA_FIXED)
#define STREAM_RAWDATA_FIXED 64   /* DATA payload before the ciphertext (raw sections) */
#define STREAM_RAWDATA_PREFIX (STREAM_HDR_SIZE + STREAM_RAWDATA_FIXED)
#define STREAM_CRYPT_FIXED 64     /* CRYPT payload before the key slot set */
#define STREAM_SLOTS_SIZE 1024    /* the key slot set (docs/FORMAT.md section 10) */
#define STREAM_CRYPT_SIZE (STREAM_HDR_SIZE + STREAM_CRYPT_FIXED + STREAM_SLOTS_SIZE)
#define STREAM_AUTH_LEN 32        /* per-snapshot authentication (CRYPT record) */
#define STREAM_FREE_SIZE (STREAM_HDR_SIZE + 16)
#define STREAM_END_SIZE (STREAM_HDR_SIZE + 32)
#define STREAM_MIN_BLOCK 512u
#define STREAM_MAX_BLOCK (16u << 20) /* what a block pointer can describe */

enum stream_rec_type {
    SREC_BEGIN = 1,
    SREC_DATA = 2,
    SREC_FREE = 3,
    SREC_END = 4,
    SREC_CRYPT = 5, /* raw sections only: right after BEGIN */
};

#define SBEGIN_MORE 1u    /* another section (the next snapshot of -I) follows */
#define SBEGIN_RESUMED 2u /* the section starts at resume_blk (resumed send) */
#define SBEGIN_RAW 4u     /* encrypted blocks as stored (CRYPT record, raw DATA) */
#define SBEGIN_FLAGS_KNOWN (SBEGIN_MORE | SBEGIN_RESUMED | SBEGIN_RAW)

/* Snapshot authentication kinds of a CRYPT record; a receiver refuses a
 * kind it does not know.  ROOT_MAC: bytes 0..15 of the 32 are the keyed
 * root MAC of the snapshot's dataset record (metadata authentication,
 * dsauth.h), 16..31 zero; the receiver stores it with the received snapshot
 * and the key load checks it. */
#define SAUTH_NONE 0u
#define SAUTH_ROOT_MAC 1u

struct stream_begin {
    uint32_t flags;          /* SBEGIN_* */
    uint64_t toguid;
    uint64_t fromguid;       /* 0: full stream */
    uint64_t totxg, fromtxg; /* informational: the source's txgs */
    uint64_t volsize;
    uint32_t volblocksize;
    uint8_t comp, comp_level, cksum; /* the source volume's settings */
    uint64_t creation;       /* unix time the snapshot was taken */
    uint64_t resume_blk;     /* first block of a resumed section, else 0 */
    char toname[STREAM_NAME_MAX + 1];   /* "VOL@SNAP" */
    char fromname[STREAM_NAME_MAX + 1]; /* "" for a full stream */
};

struct stream_data {
    uint64_t blkid;
    uint32_t lsize;          /* logical size: the volblocksize */
    uint32_t psize;          /* stored bytes that follow */
    uint8_t comp;            /* enum bs_compress of the stored bytes */
    const uint8_t *bytes;    /* psize bytes (parser: points into the record) */
    /* raw sections: the block's ciphertext and its encryption (else zero) */
    bool raw;
    uint8_t salt[8];
    uint8_t iv[12];
    uint8_t mac[16];
};

/* The key of a raw section: what a receiver needs to store the volume
 * locked and unlock it later with the sender's keys.  Never key material
 * in the clear: the master key only wrapped in its slots. */
struct stream_crypt {
    uint64_t key_guid;       /* bound into every block's AAD */
    uint8_t suite;           /* 1: AES-256-GCM */
    uint8_t keyformat;       /* of the key location (1 raw, 2 hex, 3 passphrase) */
    uint8_t aad_version;     /* 2: portable (the only one a stream carries) */
    uint8_t auth_type;       /* SAUTH_* */
    uint8_t fingerprint[16]; /* of the master key */
    uint8_t auth[STREAM_AUTH_LEN]; /* per-snapshot authentication, zero for SAUTH_NONE */
    uint8_t slots[STREAM_SLOTS_SIZE]; /* the encoded key slot set */
};

struct stream_free {
    uint64_t blkid;
    uint64_t count;          /* >= 1 blocks that read as zeros */
};

struct stream_end {
    uint64_t toguid;
    uint64_t bytes;          /* section bytes before this record */
    uint8_t digest[16];      /* XXH3-128 of those bytes */
};

struct stream_rec {
    uint32_t type;           /* enum stream_rec_type */
    uint64_t seq;
    union {
        struct stream_begin begin;
        struct stream_data data;
        struct stream_free free;
        struct stream_end end;
        struct stream_crypt crypt;
    } u;
};

/* ---- encoder (sender) ----
 * Tracks the sequence number and the running digest of the section.  Every
 * function writes one record's bytes into `out` and returns their count; a
 * DATA record's block bytes are not copied: the caller writes `out`
 * (STREAM_DATA_PREFIX bytes) and then d->bytes. */
struct stream_enc {
    uint64_t seq;            /* of the next record */
    uint64_t bytes;          /* section bytes so far */
    void *digest;            /* XXH3-128 state over the section */
    void *rec_state;         /* XXH3-64 state for split payloads */
};
int stream_enc_init(struct stream_enc *e);   /* -ENOMEM */
void stream_enc_free(struct stream_enc *e);
/* Starts a section.  Returns 0 if b is not a valid header (a bug in the
 * caller: the same rules as the parser). */
size_t stream_enc_begin(struct stream_enc *e, const struct stream_begin *b,
                        uint8_t out[STREAM_BEGIN_MAX]);
/* Writes STREAM_DATA_PREFIX bytes, or STREAM_RAWDATA_PREFIX when d->raw. */
size_t stream_enc_data(struct stream_enc *e, const struct stream_data *d, uint8_t *out);
/* The CRYPT record of a raw section (right after its BEGIN).  0 if c is not
 * valid (a bug in the caller). */
size_t stream_enc_crypt(struct stream_enc *e, const struct stream_crypt *c,
                        uint8_t out[STREAM_CRYPT_SIZE]);
size_t stream_enc_hole(struct stream_enc *e, uint64_t blkid, uint64_t count,
                       uint8_t out[STREAM_FREE_SIZE]);
size_t stream_enc_end(struct stream_enc *e, uint64_t toguid, uint8_t out[STREAM_END_SIZE]);

/* ---- parser (receiver) ---- */
enum stream_phase { SPHASE_BEGIN, SPHASE_SECTION, SPHASE_DONE };

struct stream_parser {
    enum stream_phase phase;
    uint64_t offset;         /* stream bytes consumed (for messages) */
    uint64_t seq;            /* expected sequence number */
    uint64_t bytes;          /* section bytes before the current record */
    uint64_t next_blk;       /* records must start at or after this block */
    uint64_t nblocks;        /* of the current section's volume */
    uint64_t prev_toguid;    /* the section before (for -I chains), 0 if none */
    struct stream_begin begin; /* the current section's header */
    bool need_crypt;         /* a raw section's CRYPT record is due next */
    void *digest;
};
int stream_parser_init(struct stream_parser *ps);
void stream_parser_free(struct stream_parser *ps);

/* Validate a record header (magic, type, reserved bits, the payload length
 * against the limits of the type and of the current section).  Returns the
 * payload length to read next, or -EILSEQ with a message. */
long stream_parse_hdr(const struct stream_parser *ps, const uint8_t hdr[STREAM_HDR_SIZE],
                      struct berr *err);

/* Validate a whole record (its header again, its checksum, its fields, and
 * its place in the stream: sequence, block order and range, section
 * boundaries, the END digest) and decode it into *out.  On success the
 * parser advances; on failure (-EILSEQ with a message naming the stream
 * offset) its state is unspecified.  out->u.data.bytes points into rec. */
int stream_parse_rec(struct stream_parser *ps, const uint8_t *rec, size_t len,
                     struct stream_rec *out, struct berr *err);

/* ---- resume tokens ---- */
#define STREAM_TOKEN_MAX 400 /* bytes of a token string including the NUL */

struct stream_token {
    uint64_t toguid;
    uint64_t fromguid;        /* 0: full stream */
    uint64_t resume_blk;      /* first block the resumed send must carry */
    char vol[64];             /* the receiving volume */
    char snap[64];            /* SNAP of the snapshot being received */
};
/* Encode as "1-<hex>"; returns the string length or -ERANGE if len is short. */
int stream_token_encode(const struct stream_token *t, char *buf, size_t len);
/* Decode and validate (hex, lengths, names, check value): 0 or -EINVAL. */
int stream_token_decode(const char *s, struct stream_token *t, struct berr *err);

#endif
