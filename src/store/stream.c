/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Send stream records: encoder, parser and resume tokens (docs/STREAM.md).
 *
 * Invariants the parser enforces (and the encoder obeys):
 *  - a stream is one or more sections; a section is BEGIN, then DATA/FREE
 *    records in strictly increasing block order inside the volume, then END;
 *    BEGIN's MORE flag announces another section, which must be an
 *    incremental from the snapshot the previous section delivered;
 *  - records of a section are numbered 0 (BEGIN), 1, 2 ...: a dropped,
 *    repeated or reordered record fails at once, not only at END;
 *  - each record's checksum covers its header and payload; END carries the
 *    byte count and XXH3-128 of everything in its section before it, so a
 *    receiver that accepted END has seen exactly what the sender wrote;
 *  - a payload length is checked against the type's fixed size or the
 *    section's block size before the caller allocates or reads it;
 *  - a raw section (BEGIN flag RAW) has its CRYPT record as record 1 and
 *    nowhere else, and its DATA records carry salt, IV and MAC; a plain
 *    section has no CRYPT record; all sections of a stream are raw or none.
 * Nothing here does I/O or keeps pointers into caller buffers past a call. */
#include "store/stream.h"

#include <string.h>
#include <xxhash.h>

#include "common/cleanup.h"
#include "common/le.h"
#include "common/util.h"
#include "store/keyslot.h"

static const char *type_name(uint32_t t)
{
    switch (t) {
    case SREC_BEGIN: return "BEGIN";
    case SREC_DATA: return "DATA";
    case SREC_FREE: return "FREE";
    case SREC_END: return "END";
    case SREC_CRYPT: return "CRYPT";
    default: return "unknown";
    }
}

/* "VOL@SNAP" with both parts valid names (empty allowed when may_be_empty). */
static bool snapname_ok(const char *s, bool may_be_empty)
{
    if (!s[0])
        return may_be_empty;
    const char *at = strchr(s, '@');
    if (!at || strchr(at + 1, '@') || at == s || (size_t)(at - s) > 63)
        return false;
    char vol[64];
    memcpy(vol, s, (size_t)(at - s));
    vol[at - s] = '\0';
    return validate_name(vol, "volume", NULL) == 0 &&
           validate_name(at + 1, "snapshot", NULL) == 0;
}

/* The rules for a section header; shared by the encoder and the parser. */
static int check_begin(const struct stream_begin *b, struct berr *err)
{
    if (b->flags & ~SBEGIN_FLAGS_KNOWN)
        return berr_set(err, EILSEQ, "unknown stream flags 0x%x", b->flags);
    if (b->toguid == 0 || b->toguid == b->fromguid)
        return berr_set(err, EILSEQ, "bad snapshot guid in the stream header");
    if (!snapname_ok(b->toname, false))
        return berr_set(err, EILSEQ, "bad snapshot name in the stream header");
    bool full = b->fromguid == 0;
    if (!snapname_ok(b->fromname, full) || (full && b->fromname[0]) ||
        (full && b->fromtxg != 0) || (!full && b->fromtxg >= b->totxg))
        return berr_set(err, EILSEQ, "inconsistent base snapshot in the stream header");
    if (b->volblocksize < STREAM_MIN_BLOCK || b->volblocksize > STREAM_MAX_BLOCK ||
        !IS_POW2(b->volblocksize))
        return berr_set(err, EILSEQ, "bad volblocksize %u in the stream header",
                        b->volblocksize);
    if (b->volsize == 0 || b->volsize % b->volblocksize ||
        b->volsize / b->volblocksize > (1ULL << 56))
        return berr_set(err, EILSEQ, "bad volsize %llu in the stream header",
                        (unsigned long long)b->volsize);
    if (b->comp > BS_COMPRESS_ZSTD || b->comp_level > 22 || b->cksum < BS_CHECKSUM_XXH3 ||
        b->cksum > BS_CHECKSUM_SHA256)
        return berr_set(err, EILSEQ, "bad compression or checksum in the stream header");
    if (b->resume_blk > b->volsize / b->volblocksize ||
        (!(b->flags & SBEGIN_RESUMED) && b->resume_blk != 0))
        return berr_set(err, EILSEQ, "bad resume offset in the stream header");
    return 0;
}

/* Record checksum: XXH3-64 of the payload seeded with XXH3-64 of header
 * bytes 0..23 (so neither can be changed without the other noticing). */
static uint64_t hdr_seed(const uint8_t *hdr)
{
    return XXH3_64bits(hdr, 24);
}

static void put_hdr(uint8_t *out, uint32_t type, uint32_t plen, uint64_t seq)
{
    memset(out, 0, STREAM_HDR_SIZE);
    put_le32(out, STREAM_REC_MAGIC);
    put_le16(out + 4, (uint16_t)type);
    put_le32(out + 8, plen);
    put_le64(out + 16, seq);
}

static void digest_put(const void *state, uint8_t out[16])
{
    XXH128_hash_t h = XXH3_128bits_digest(state);
    put_le64(out, h.low64);
    put_le64(out + 8, h.high64);
}

/* ---- encoder ---- */

int stream_enc_init(struct stream_enc *e)
{
    memset(e, 0, sizeof *e);
    e->digest = XXH3_createState();
    e->rec_state = XXH3_createState();
    if (!e->digest || !e->rec_state) {
        stream_enc_free(e);
        return -ENOMEM;
    }
    XXH3_128bits_reset(e->digest);
    return 0;
}

void stream_enc_free(struct stream_enc *e)
{
    XXH3_freeState(e->digest);
    XXH3_freeState(e->rec_state);
    e->digest = e->rec_state = NULL;
}

/* Seal a record whose payload is contiguous after its header. */
static size_t seal(struct stream_enc *e, uint8_t *out, uint32_t plen)
{
    size_t len = STREAM_HDR_SIZE + (size_t)plen;
    put_le64(out + 24, XXH3_64bits_withSeed(out + STREAM_HDR_SIZE, plen, hdr_seed(out)));
    XXH3_128bits_update(e->digest, out, len);
    e->bytes += len;
    e->seq++;
    return len;
}

size_t stream_enc_begin(struct stream_enc *e, const struct stream_begin *b,
                        uint8_t out[STREAM_BEGIN_MAX])
{
    size_t tl = strnlen(b->toname, sizeof b->toname);
    size_t fl = strnlen(b->fromname, sizeof b->fromname);
    if (tl > STREAM_NAME_MAX || fl > STREAM_NAME_MAX || check_begin(b, NULL) < 0)
        return 0;
    uint32_t plen = (uint32_t)(STREAM_BEGIN_FIXED + tl + fl);
    e->seq = 0;
    e->bytes = 0;
    XXH3_128bits_reset(e->digest);
    put_hdr(out, SREC_BEGIN, plen, 0);
    uint8_t *p = out + STREAM_HDR_SIZE;
    memset(p, 0, plen);
    put_le64(p, STREAM_MAGIC);
    put_le32(p + 8, STREAM_VERSION);
    put_le32(p + 12, b->flags);
    put_le64(p + 16, b->toguid);
    put_le64(p + 24, b->fromguid);
    put_le64(p + 32, b->totxg);
    put_le64(p + 40, b->fromtxg);
    put_le64(p + 48, b->volsize);
    put_le32(p + 56, b->volblocksize);
    p[60] = b->comp;
    p[61] = b->comp_level;
    p[62] = b->cksum;
    put_le64(p + 64, b->creation);
    put_le64(p + 72, b->resume_blk);
    put_le16(p + 80, (uint16_t)tl);
    put_le16(p + 82, (uint16_t)fl);
    memcpy(p + STREAM_BEGIN_FIXED, b->toname, tl);
    memcpy(p + STREAM_BEGIN_FIXED + tl, b->fromname, fl);
    return seal(e, out, plen);
}

size_t stream_enc_data(struct stream_enc *e, const struct stream_data *d, uint8_t *out)
{
    uint32_t fixed = d->raw ? STREAM_RAWDATA_FIXED : STREAM_DATA_FIXED;
    uint32_t plen = fixed + d->psize;
    put_hdr(out, SREC_DATA, plen, e->seq);
    uint8_t *p = out + STREAM_HDR_SIZE;
    memset(p, 0, fixed);
    put_le64(p, d->blkid);
    put_le32(p + 8, d->lsize);
    put_le32(p + 12, d->psize);
    p[16] = d->comp;
    if (d->raw) {
        p[18] = 2; /* the portable AAD version (blkcrypt.h) */
        memcpy(p + 24, d->salt, 8);
        memcpy(p + 32, d->iv, 12);
        memcpy(p + 48, d->mac, 16);
    }
    /* the payload is split between `out` and the block: hash it in two parts */
    XXH3_64bits_reset_withSeed(e->rec_state, hdr_seed(out));
    XXH3_64bits_update(e->rec_state, p, fixed);
    XXH3_64bits_update(e->rec_state, d->bytes, d->psize);
    put_le64(out + 24, XXH3_64bits_digest(e->rec_state));
    XXH3_128bits_update(e->digest, out, STREAM_HDR_SIZE + fixed);
    XXH3_128bits_update(e->digest, d->bytes, d->psize);
    e->bytes += STREAM_HDR_SIZE + fixed + (uint64_t)d->psize;
    e->seq++;
    return STREAM_HDR_SIZE + fixed;
}

/* The rules for a CRYPT payload; shared by the encoder and the parser. */
static int check_crypt(const struct stream_crypt *c, struct berr *err)
{
    struct keyslots set;
    if (c->key_guid == 0 || c->suite != 1 || c->keyformat < KEYFORMAT_RAW ||
        c->keyformat > KEYFORMAT_PASSPHRASE || c->aad_version != 2)
        return berr_set(err, EILSEQ, "bad key description in the raw stream's CRYPT record");
    if (c->auth_type != SAUTH_NONE && c->auth_type != SAUTH_ROOT_MAC)
        return berr_set(err, EILSEQ,
                        "the raw stream authenticates its snapshot with a method (%u) this "
                        "berth does not know (written by a newer berth)",
                        c->auth_type);
    /* none: 32 zero bytes; a root MAC: 16 bytes, then 16 zero bytes */
    size_t used = c->auth_type == SAUTH_ROOT_MAC ? 16 : 0;
    if (!buf_is_zero(c->auth + used, sizeof c->auth - used))
        return berr_set(err, EILSEQ, "reserved snapshot authentication bytes set in the "
                        "raw stream's CRYPT record");
    if (keyslots_decode(c->slots, sizeof c->slots, &set) < 0 || keyslots_count(&set) == 0)
        return berr_set(err, EILSEQ, "bad key slots in the raw stream's CRYPT record");
    return 0;
}

size_t stream_enc_crypt(struct stream_enc *e, const struct stream_crypt *c,
                        uint8_t out[STREAM_CRYPT_SIZE])
{
    if (check_crypt(c, NULL) < 0)
        return 0;
    uint32_t plen = STREAM_CRYPT_FIXED + STREAM_SLOTS_SIZE;
    put_hdr(out, SREC_CRYPT, plen, e->seq);
    uint8_t *p = out + STREAM_HDR_SIZE;
    memset(p, 0, STREAM_CRYPT_FIXED);
    put_le64(p, c->key_guid);
    p[8] = c->suite;
    p[9] = c->keyformat;
    p[10] = c->aad_version;
    p[11] = c->auth_type;
    memcpy(p + 16, c->fingerprint, 16);
    memcpy(p + 32, c->auth, STREAM_AUTH_LEN);
    memcpy(p + STREAM_CRYPT_FIXED, c->slots, STREAM_SLOTS_SIZE);
    return seal(e, out, plen);
}

size_t stream_enc_hole(struct stream_enc *e, uint64_t blkid, uint64_t count,
                       uint8_t out[STREAM_FREE_SIZE])
{
    put_hdr(out, SREC_FREE, 16, e->seq);
    put_le64(out + STREAM_HDR_SIZE, blkid);
    put_le64(out + STREAM_HDR_SIZE + 8, count);
    return seal(e, out, 16);
}

size_t stream_enc_end(struct stream_enc *e, uint64_t toguid, uint8_t out[STREAM_END_SIZE])
{
    put_hdr(out, SREC_END, 32, e->seq);
    uint8_t *p = out + STREAM_HDR_SIZE;
    put_le64(p, toguid);
    put_le64(p + 8, e->bytes);
    digest_put(e->digest, p + 16);
    return seal(e, out, 32);
}

/* ---- parser ---- */

int stream_parser_init(struct stream_parser *ps)
{
    memset(ps, 0, sizeof *ps);
    ps->digest = XXH3_createState();
    if (!ps->digest)
        return -ENOMEM;
    XXH3_128bits_reset(ps->digest);
    return 0;
}

void stream_parser_free(struct stream_parser *ps)
{
    XXH3_freeState(ps->digest);
    ps->digest = NULL;
}

long stream_parse_hdr(const struct stream_parser *ps, const uint8_t hdr[STREAM_HDR_SIZE],
                      struct berr *err)
{
    unsigned long long at = (unsigned long long)ps->offset;
    if (get_le32(hdr) != STREAM_REC_MAGIC)
        return berr_set(err, EILSEQ,
                        at == 0 ? "not a berth send stream (bad magic)"
                                : "stream corrupt at byte %llu: bad record magic",
                        at);
    uint32_t type = get_le16(hdr + 4);
    uint32_t plen = get_le32(hdr + 8);
    if (get_le16(hdr + 6) != 0 || get_le32(hdr + 12) != 0)
        return berr_set(err, EILSEQ, "stream corrupt at byte %llu: reserved header bits set",
                        at);
    if (type < SREC_BEGIN || type > SREC_CRYPT)
        return berr_set(err, EILSEQ,
                        "stream corrupt at byte %llu: unknown record type %u (corrupt, or "
                        "written by a newer berth)",
                        at, type);
    if (ps->phase == SPHASE_DONE)
        return berr_set(err, EILSEQ, "stream has data after its end (byte %llu)", at);
    if ((ps->phase == SPHASE_BEGIN) != (type == SREC_BEGIN))
        return berr_set(err, EILSEQ, "stream corrupt at byte %llu: %s record where %s",
                        at, type_name(type),
                        ps->phase == SPHASE_BEGIN ? "a BEGIN record must come"
                                                  : "a section is still open");
    if (ps->phase == SPHASE_SECTION && ps->need_crypt != (type == SREC_CRYPT))
        return berr_set(err, EILSEQ, "stream corrupt at byte %llu: %s record where %s", at,
                        type_name(type),
                        ps->need_crypt ? "the raw section's CRYPT record must come"
                                       : "no CRYPT record belongs");
    bool raw = (ps->begin.flags & SBEGIN_RAW) != 0;
    uint64_t lo, hi;
    switch (type) {
    case SREC_BEGIN:
        lo = STREAM_BEGIN_FIXED + 1;
        hi = STREAM_BEGIN_FIXED + 2 * STREAM_NAME_MAX;
        break;
    case SREC_DATA:
        lo = (raw ? STREAM_RAWDATA_FIXED : STREAM_DATA_FIXED) + 1;
        hi = lo - 1 + (uint64_t)ps->begin.volblocksize;
        break;
    case SREC_CRYPT:
        lo = hi = STREAM_CRYPT_FIXED + STREAM_SLOTS_SIZE;
        break;
    case SREC_FREE:
        lo = hi = 16;
        break;
    default:
        lo = hi = 32;
        break;
    }
    if (plen < lo || plen > hi)
        return berr_set(err, EILSEQ, "stream corrupt at byte %llu: %s record of %u bytes",
                        at, type_name(type), plen);
    return (long)plen;
}

static int decode_begin(const uint8_t *p, uint32_t plen, struct stream_begin *b,
                        struct berr *err)
{
    memset(b, 0, sizeof *b);
    if (get_le64(p) != STREAM_MAGIC)
        return berr_set(err, EILSEQ, "not a berth send stream (bad header magic)");
    uint32_t version = get_le32(p + 8);
    if (version != STREAM_VERSION)
        return berr_set(err, EILSEQ,
                        "stream format version %u is not supported (this berth reads %u)",
                        version, STREAM_VERSION);
    b->flags = get_le32(p + 12);
    b->toguid = get_le64(p + 16);
    b->fromguid = get_le64(p + 24);
    b->totxg = get_le64(p + 32);
    b->fromtxg = get_le64(p + 40);
    b->volsize = get_le64(p + 48);
    b->volblocksize = get_le32(p + 56);
    b->comp = p[60];
    b->comp_level = p[61];
    b->cksum = p[62];
    b->creation = get_le64(p + 64);
    b->resume_blk = get_le64(p + 72);
    uint32_t tl = get_le16(p + 80), fl = get_le16(p + 82);
    if (p[63] != 0 || !buf_is_zero(p + 84, STREAM_BEGIN_FIXED - 84))
        return berr_set(err, EILSEQ, "reserved bytes set in the stream header");
    if (tl > STREAM_NAME_MAX || fl > STREAM_NAME_MAX || STREAM_BEGIN_FIXED + tl + fl != plen)
        return berr_set(err, EILSEQ, "bad name lengths in the stream header");
    const uint8_t *names = p + STREAM_BEGIN_FIXED;
    if (memchr(names, 0, tl + fl))
        return berr_set(err, EILSEQ, "bad snapshot name in the stream header");
    memcpy(b->toname, names, tl);
    memcpy(b->fromname, names + tl, fl);
    return check_begin(b, err);
}

/* Decode and check the payload of a DATA / FREE / END record against the
 * open section. */
static int decode_body(struct stream_parser *ps, uint32_t type, const uint8_t *p, uint32_t plen,
                       struct stream_rec *out, struct berr *err)
{
    const struct stream_begin *b = &ps->begin;
    unsigned long long at = (unsigned long long)ps->offset;
    if (type == SREC_CRYPT) {
        struct stream_crypt *c = &out->u.crypt;
        c->key_guid = get_le64(p);
        c->suite = p[8];
        c->keyformat = p[9];
        c->aad_version = p[10];
        c->auth_type = p[11];
        memcpy(c->fingerprint, p + 16, 16);
        memcpy(c->auth, p + 32, STREAM_AUTH_LEN);
        memcpy(c->slots, p + STREAM_CRYPT_FIXED, STREAM_SLOTS_SIZE);
        if (get_le32(p + 12) != 0)
            return berr_set(err, EILSEQ, "stream corrupt at byte %llu: bad CRYPT record", at);
        int r = check_crypt(c, err);
        if (r < 0)
            return r;
        ps->need_crypt = false;
        return 0;
    }
    if (type == SREC_DATA) {
        struct stream_data *d = &out->u.data;
        bool raw = (b->flags & SBEGIN_RAW) != 0;
        uint32_t fixed = raw ? STREAM_RAWDATA_FIXED : STREAM_DATA_FIXED;
        d->blkid = get_le64(p);
        d->lsize = get_le32(p + 8);
        d->psize = get_le32(p + 12);
        d->comp = p[16];
        d->bytes = p + fixed;
        bool rsv_ok = raw ? p[17] == 0 && p[18] == 2 && buf_is_zero(p + 19, 5) &&
                                buf_is_zero(p + 44, 4) && !buf_is_zero(p + 32, 12)
                          : buf_is_zero(p + 17, 7);
        if (raw) {
            d->raw = true;
            memcpy(d->salt, p + 24, 8);
            memcpy(d->iv, p + 32, 12);
            memcpy(d->mac, p + 48, 16);
        }
        if (!rsv_ok || d->comp > BS_COMPRESS_ZSTD ||
            d->lsize != b->volblocksize || d->psize == 0 || d->psize > d->lsize ||
            (d->comp == BS_COMPRESS_OFF && d->psize != d->lsize) ||
            (raw && d->comp != BS_COMPRESS_OFF && d->psize == d->lsize) ||
            plen != fixed + d->psize)
            return berr_set(err, EILSEQ, "stream corrupt at byte %llu: bad DATA record", at);
        if (d->blkid < ps->next_blk || d->blkid >= ps->nblocks)
            return berr_set(err, EILSEQ,
                            "stream corrupt at byte %llu: block %llu out of order or range", at,
                            (unsigned long long)d->blkid);
        ps->next_blk = d->blkid + 1;
        return 0;
    }
    if (type == SREC_FREE) {
        struct stream_free *f = &out->u.free;
        f->blkid = get_le64(p);
        f->count = get_le64(p + 8);
        if (f->blkid < ps->next_blk || f->blkid >= ps->nblocks || f->count == 0 ||
            f->count > ps->nblocks - f->blkid)
            return berr_set(err, EILSEQ,
                            "stream corrupt at byte %llu: FREE of blocks %llu+%llu out of order "
                            "or range",
                            at, (unsigned long long)f->blkid, (unsigned long long)f->count);
        ps->next_blk = f->blkid + f->count;
        return 0;
    }
    struct stream_end *e = &out->u.end;
    e->toguid = get_le64(p);
    e->bytes = get_le64(p + 8);
    memcpy(e->digest, p + 16, 16);
    uint8_t want[16];
    digest_put(ps->digest, want);
    if (e->toguid != b->toguid || e->bytes != ps->bytes || memcmp(want, e->digest, 16) != 0)
        return berr_set(err, EILSEQ,
                        "stream corrupt: the END record at byte %llu does not match the "
                        "%llu bytes of its section",
                        at, (unsigned long long)ps->bytes);
    return 0;
}

int stream_parse_rec(struct stream_parser *ps, const uint8_t *rec, size_t len,
                     struct stream_rec *out, struct berr *err)
{
    memset(out, 0, sizeof *out);
    if (len < STREAM_HDR_SIZE)
        return berr_set(err, EILSEQ, "stream truncated at byte %llu",
                        (unsigned long long)ps->offset);
    long plen = stream_parse_hdr(ps, rec, err);
    if (plen < 0)
        return (int)plen;
    if (len != STREAM_HDR_SIZE + (size_t)plen)
        return berr_set(err, EILSEQ, "stream truncated at byte %llu",
                        (unsigned long long)ps->offset);
    out->type = get_le16(rec + 4);
    out->seq = get_le64(rec + 16);
    const uint8_t *p = rec + STREAM_HDR_SIZE;
    if (XXH3_64bits_withSeed(p, (size_t)plen, hdr_seed(rec)) != get_le64(rec + 24))
        return berr_set(err, EILSEQ, "stream corrupt: checksum mismatch in the %s record at byte %llu",
                        type_name(out->type), (unsigned long long)ps->offset);
    uint64_t want_seq = out->type == SREC_BEGIN ? 0 : ps->seq;
    if (out->seq != want_seq)
        return berr_set(err, EILSEQ,
                        "stream corrupt at byte %llu: record %llu where record %llu was due "
                        "(records lost or reordered)",
                        (unsigned long long)ps->offset, (unsigned long long)out->seq,
                        (unsigned long long)want_seq);
    if (out->type == SREC_BEGIN) {
        struct stream_begin *b = &out->u.begin;
        int r = decode_begin(p, (uint32_t)plen, b, err);
        if (r < 0)
            return r;
        if (ps->prev_toguid && (b->fromguid != ps->prev_toguid || (b->flags & SBEGIN_RESUMED) ||
                                ((b->flags ^ ps->begin.flags) & SBEGIN_RAW)))
            return berr_set(err, EILSEQ,
                            "stream corrupt: section %s does not follow the previous snapshot",
                            b->toname);
        ps->begin = *b;
        ps->need_crypt = (b->flags & SBEGIN_RAW) != 0;
        ps->phase = SPHASE_SECTION;
        ps->seq = 0;
        ps->bytes = 0;
        ps->next_blk = b->resume_blk;
        ps->nblocks = b->volsize / b->volblocksize;
        XXH3_128bits_reset(ps->digest);
    } else {
        int r = decode_body(ps, out->type, p, (uint32_t)plen, out, err);
        if (r < 0)
            return r;
    }
    if (out->type == SREC_END) {
        ps->prev_toguid = ps->begin.toguid;
        ps->phase = (ps->begin.flags & SBEGIN_MORE) ? SPHASE_BEGIN : SPHASE_DONE;
    } else {
        XXH3_128bits_update(ps->digest, rec, len);
        ps->bytes += len;
    }
    ps->seq++;
    ps->offset += len;
    return 0;
}

/* ---- resume tokens ----
 * Binary: version u8 (1), toguid, fromguid, resume_blk (u64 each), volume
 * name length u8 + bytes, snapshot name length u8 + bytes, then XXH3-64 of
 * everything before it; written as "1-" and lowercase hex. */

#define TOKEN_BIN_MAX (1 + 24 + 1 + 63 + 1 + 63 + 8)

int stream_token_encode(const struct stream_token *t, char *buf, size_t len)
{
    uint8_t bin[TOKEN_BIN_MAX];
    size_t vl = strnlen(t->vol, 63), sl = strnlen(t->snap, 63), n = 0;
    bin[n++] = 1;
    put_le64(bin + n, t->toguid);
    put_le64(bin + n + 8, t->fromguid);
    put_le64(bin + n + 16, t->resume_blk);
    n += 24;
    bin[n++] = (uint8_t)vl;
    memcpy(bin + n, t->vol, vl);
    n += vl;
    bin[n++] = (uint8_t)sl;
    memcpy(bin + n, t->snap, sl);
    n += sl;
    put_le64(bin + n, XXH3_64bits(bin, n));
    n += 8;
    if (len < 2 + 2 * n + 1)
        return -ERANGE;
    static const char hex[] = "0123456789abcdef";
    buf[0] = '1';
    buf[1] = '-';
    for (size_t i = 0; i < n; i++) {
        buf[2 + 2 * i] = hex[bin[i] >> 4];
        buf[3 + 2 * i] = hex[bin[i] & 15];
    }
    buf[2 + 2 * n] = '\0';
    return (int)(2 + 2 * n);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Copy a length-prefixed valid name out of the token. */
static bool token_name(const uint8_t *bin, size_t n, size_t *pos, char out[64], const char *what)
{
    if (*pos >= n)
        return false;
    size_t l = bin[(*pos)++];
    if (l == 0 || l > 63 || l > n - *pos)
        return false;
    memcpy(out, bin + *pos, l);
    out[l] = '\0';
    *pos += l;
    return strlen(out) == l && validate_name(out, what, NULL) == 0;
}

int stream_token_decode(const char *s, struct stream_token *t, struct berr *err)
{
    memset(t, 0, sizeof *t);
    size_t sl = strnlen(s, STREAM_TOKEN_MAX);
    uint8_t bin[TOKEN_BIN_MAX];
    if (sl < 2 || s[0] != '1' || s[1] != '-' || (sl - 2) % 2 || (sl - 2) / 2 > TOKEN_BIN_MAX ||
        (sl - 2) / 2 < 1 + 24 + 2 + 8)
        return berr_set(err, EINVAL, "not a berth resume token");
    size_t n = (sl - 2) / 2;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 + 2 * i]), lo = hexval(s[3 + 2 * i]);
        if (hi < 0 || lo < 0)
            return berr_set(err, EINVAL, "not a berth resume token (bad character)");
        bin[i] = (uint8_t)(hi << 4 | lo);
    }
    if (get_le64(bin + n - 8) != XXH3_64bits(bin, n - 8))
        return berr_set(err, EINVAL, "resume token damaged (check value mismatch)");
    if (bin[0] != 1)
        return berr_set(err, EINVAL, "resume token version %u is not supported", bin[0]);
    t->toguid = get_le64(bin + 1);
    t->fromguid = get_le64(bin + 9);
    t->resume_blk = get_le64(bin + 17);
    size_t pos = 25;
    if (!token_name(bin, n - 8, &pos, t->vol, "volume") ||
        !token_name(bin, n - 8, &pos, t->snap, "snapshot") || pos != n - 8 || t->toguid == 0 ||
        t->toguid == t->fromguid)
        return berr_set(err, EINVAL, "resume token damaged (bad fields)");
    return 0;
}
