/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Send stream records (src/store/stream.c): round trips of every record
 * type and of -I chains; every single flipped byte and every truncation of
 * a stream is rejected; order, range, sequence and length violations are
 * rejected with a message; resume tokens round-trip and refuse damage;
 * raw sections (CRYPT record, raw DATA) round-trip and their placement
 * rules hold; random bytes never crash the parser. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/le.h"
#include "store/keyslot.h"
#include "store/stream.h"
#include "store_test.h"
#include "tap.h"

struct sbuf {
    uint8_t *b;
    size_t len, cap;
};

static void put(struct sbuf *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->b = realloc(s->b, s->cap);
    }
    memcpy(s->b + s->len, p, n);
    s->len += n;
}

#define BS 4096u

static struct stream_begin begin_of(uint64_t to, uint64_t from, uint32_t flags)
{
    struct stream_begin b = {
        .flags = flags, .toguid = to, .fromguid = from, .totxg = to * 10,
        .fromtxg = from ? from * 10 : 0, .volsize = 64 * BS, .volblocksize = BS,
        .comp = BS_COMPRESS_LZ4, .cksum = BS_CHECKSUM_XXH3, .creation = 1700000000,
    };
    snprintf(b.toname, sizeof b.toname, "vm-disk0@s%llu", (unsigned long long)to);
    if (from)
        snprintf(b.fromname, sizeof b.fromname, "vm-disk0@s%llu", (unsigned long long)from);
    return b;
}

static uint8_t blockbuf[BS];

/* A section: BEGIN, DATA 3 (raw), DATA 7 (as if compressed, 100 bytes),
 * FREE 8..19, DATA 40, END. */
static void section(struct sbuf *s, struct stream_enc *e, const struct stream_begin *b)
{
    uint8_t rec[STREAM_BEGIN_MAX];
    put(s, rec, stream_enc_begin(e, b, rec));
    const struct stream_data d[3] = {
        { .blkid = 3, .lsize = BS, .psize = BS, .comp = 0, .bytes = blockbuf },
        { .blkid = 7, .lsize = BS, .psize = 100, .comp = BS_COMPRESS_LZ4, .bytes = blockbuf },
        { .blkid = 40, .lsize = BS, .psize = BS, .comp = 0, .bytes = blockbuf },
    };
    for (int i = 0; i < 2; i++) {
        put(s, rec, stream_enc_data(e, &d[i], rec));
        put(s, d[i].bytes, d[i].psize);
    }
    put(s, rec, stream_enc_hole(e, 8, 12, rec));
    put(s, rec, stream_enc_data(e, &d[2], rec));
    put(s, d[2].bytes, d[2].psize);
    put(s, rec, stream_enc_end(e, b->toguid, rec));
}

/* Parse a whole stream; 0 only if it ends exactly at a complete stream.
 * *nrec counts accepted records. */
static int parse_all(const uint8_t *s, size_t len, struct berr *e, int *nrec,
                     struct stream_rec *recs, int maxrec)
{
    struct stream_parser ps;
    stream_parser_init(&ps);
    size_t off = 0;
    int r = 0, n = 0;
    while (ps.phase != SPHASE_DONE) {
        if (len - off < STREAM_HDR_SIZE) {
            r = -EPIPE;
            break;
        }
        long pl = stream_parse_hdr(&ps, s + off, e);
        if (pl < 0) {
            r = (int)pl;
            break;
        }
        if (len - off - STREAM_HDR_SIZE < (size_t)pl) {
            r = -EPIPE;
            break;
        }
        struct stream_rec rec;
        r = stream_parse_rec(&ps, s + off, STREAM_HDR_SIZE + (size_t)pl, &rec, e);
        if (r < 0)
            break;
        if (n < maxrec)
            recs[n] = rec;
        n++;
        off += STREAM_HDR_SIZE + (size_t)pl;
    }
    if (r == 0 && off != len)
        r = -E2BIG;
    stream_parser_free(&ps);
    if (nrec)
        *nrec = n;
    return r;
}

static void test_roundtrip(void)
{
    struct stream_enc e;
    stream_enc_init(&e);
    struct sbuf s = {0};
    struct stream_begin b = begin_of(11, 0, 0);
    section(&s, &e, &b);
    struct berr err = {0};
    struct stream_rec recs[8];
    int n;
    ok(parse_all(s.b, s.len, &err, &n, recs, 8) == 0 && n == 6, "full section parses: %s",
       err.msg);
    const struct stream_begin *g = &recs[0].u.begin;
    ok(recs[0].type == SREC_BEGIN && g->toguid == 11 && g->fromguid == 0 &&
           g->volsize == 64 * BS && g->volblocksize == BS && g->comp == BS_COMPRESS_LZ4 &&
           g->cksum == BS_CHECKSUM_XXH3 && g->creation == 1700000000 && g->totxg == 110 &&
           strcmp(g->toname, "vm-disk0@s11") == 0 && g->fromname[0] == '\0',
       "BEGIN fields survive");
    ok(recs[1].type == SREC_DATA && recs[1].u.data.blkid == 3 && recs[1].u.data.psize == BS &&
           recs[1].u.data.comp == 0 && memcmp(recs[1].u.data.bytes, blockbuf, BS) == 0,
       "raw DATA record");
    ok(recs[2].type == SREC_DATA && recs[2].u.data.blkid == 7 && recs[2].u.data.psize == 100 &&
           recs[2].u.data.lsize == BS && recs[2].u.data.comp == BS_COMPRESS_LZ4,
       "compressed DATA record keeps its stored size and compression");
    ok(recs[3].type == SREC_FREE && recs[3].u.free.blkid == 8 && recs[3].u.free.count == 12,
       "FREE record");
    ok(recs[5].type == SREC_END && recs[5].u.end.toguid == 11 && recs[5].seq == 5,
       "END record numbered after the others");

    /* every single flipped byte is caught */
    size_t undetected = 0;
    for (size_t i = 0; i < s.len; i++) {
        for (unsigned bit = 0; bit < 8; bit += 7) {
            s.b[i] ^= (uint8_t)(1u << bit);
            if (parse_all(s.b, s.len, NULL, NULL, NULL, 0) == 0)
                undetected++;
            s.b[i] ^= (uint8_t)(1u << bit);
        }
    }
    ok(undetected == 0, "every flipped bit of %zu bytes is rejected (%zu missed)", s.len,
       undetected);
    /* every truncation is caught */
    size_t accepted = 0;
    for (size_t l = 0; l < s.len; l++)
        if (parse_all(s.b, l, NULL, NULL, NULL, 0) == 0)
            accepted++;
    ok(accepted == 0, "no truncation of the stream is accepted");
    memset(&err, 0, sizeof err);
    ok(parse_all(s.b, s.len - 1, &err, NULL, NULL, 0) < 0, "cut in END fails");
    /* trailing data after the last END */
    put(&s, s.b, STREAM_HDR_SIZE);
    memset(&err, 0, sizeof err);
    ok(parse_all(s.b, s.len, &err, NULL, NULL, 0) < 0, "data after the end is rejected");
    free(s.b);
    stream_enc_free(&e);
}

static void test_chain(void)
{
    struct stream_enc e;
    stream_enc_init(&e);
    struct sbuf s = {0};
    struct stream_begin b1 = begin_of(21, 11, SBEGIN_MORE), b2 = begin_of(31, 21, SBEGIN_MORE),
                        b3 = begin_of(41, 31, 0);
    section(&s, &e, &b1);
    section(&s, &e, &b2);
    section(&s, &e, &b3);
    struct berr err = {0};
    int n;
    ok(parse_all(s.b, s.len, &err, &n, NULL, 0) == 0 && n == 18, "-I chain of 3 parses: %s",
       err.msg);
    /* a chain whose second section does not continue the first */
    struct sbuf t = {0};
    struct stream_begin bad = begin_of(31, 12, 0);
    section(&t, &e, &b1);
    section(&t, &e, &bad);
    memset(&err, 0, sizeof err);
    ok(parse_all(t.b, t.len, &err, NULL, NULL, 0) == -EILSEQ && strstr(err.msg, "follow"),
       "a section not following the previous is rejected: %s", err.msg);
    /* MORE promised but the stream ends after the first section */
    struct sbuf u = {0};
    section(&u, &e, &b1);
    ok(parse_all(u.b, u.len, NULL, NULL, NULL, 0) == -EPIPE, "missing next section detected");
    free(s.b);
    free(t.b);
    free(u.b);
    stream_enc_free(&e);
}

/* Encode a custom section body through fn and parse it. */
static int parse_custom(void (*fn)(struct sbuf *, struct stream_enc *), struct berr *err)
{
    struct stream_enc e;
    stream_enc_init(&e);
    struct sbuf s = {0};
    uint8_t rec[STREAM_BEGIN_MAX];
    struct stream_begin b = begin_of(5, 0, 0);
    put(&s, rec, stream_enc_begin(&e, &b, rec));
    fn(&s, &e);
    put(&s, rec, stream_enc_end(&e, 5, rec));
    memset(err, 0, sizeof *err);
    int r = parse_all(s.b, s.len, err, NULL, NULL, 0);
    free(s.b);
    stream_enc_free(&e);
    return r;
}

static void data_at(struct sbuf *s, struct stream_enc *e, uint64_t blk)
{
    uint8_t rec[STREAM_DATA_PREFIX];
    struct stream_data d = { .blkid = blk, .lsize = BS, .psize = BS, .bytes = blockbuf };
    put(s, rec, stream_enc_data(e, &d, rec));
    put(s, blockbuf, BS);
}
static void body_backwards(struct sbuf *s, struct stream_enc *e)
{
    data_at(s, e, 9);
    data_at(s, e, 4);
}
static void body_repeat(struct sbuf *s, struct stream_enc *e)
{
    data_at(s, e, 9);
    data_at(s, e, 9);
}
static void body_beyond(struct sbuf *s, struct stream_enc *e)
{
    data_at(s, e, 64);
}
static void body_free_overlap(struct sbuf *s, struct stream_enc *e)
{
    uint8_t rec[STREAM_FREE_SIZE];
    put(s, rec, stream_enc_hole(e, 10, 5, rec));
    data_at(s, e, 12);
}
static void body_free_past_end(struct sbuf *s, struct stream_enc *e)
{
    uint8_t rec[STREAM_FREE_SIZE];
    put(s, rec, stream_enc_hole(e, 60, 5, rec));
}
static void body_free_overflow(struct sbuf *s, struct stream_enc *e)
{
    uint8_t rec[STREAM_FREE_SIZE];
    put(s, rec, stream_enc_hole(e, 1, UINT64_MAX, rec));
}
static void body_skip_seq(struct sbuf *s, struct stream_enc *e)
{
    data_at(s, e, 1);
    e->seq++; /* as if a record had been dropped */
    data_at(s, e, 2);
}
static void body_wrong_lsize(struct sbuf *s, struct stream_enc *e)
{
    uint8_t rec[STREAM_DATA_PREFIX];
    struct stream_data d = { .blkid = 1, .lsize = BS * 2, .psize = BS, .comp = 1,
                             .bytes = blockbuf };
    put(s, rec, stream_enc_data(e, &d, rec));
    put(s, blockbuf, BS);
}
static void body_raw_short(struct sbuf *s, struct stream_enc *e)
{
    uint8_t rec[STREAM_DATA_PREFIX];
    struct stream_data d = { .blkid = 1, .lsize = BS, .psize = 10, .comp = 0,
                             .bytes = blockbuf };
    put(s, rec, stream_enc_data(e, &d, rec));
    put(s, blockbuf, 10);
}
static void body_ok(struct sbuf *s, struct stream_enc *e)
{
    data_at(s, e, 0);
    data_at(s, e, 63);
}

static void test_rules(void)
{
    struct berr err;
    ok(parse_custom(body_ok, &err) == 0, "first and last block accepted: %s", err.msg);
    ok(parse_custom(body_backwards, &err) == -EILSEQ && strstr(err.msg, "order"),
       "blocks out of order rejected: %s", err.msg);
    ok(parse_custom(body_repeat, &err) == -EILSEQ, "a repeated block rejected");
    ok(parse_custom(body_beyond, &err) == -EILSEQ && strstr(err.msg, "range"),
       "a block past the volume rejected: %s", err.msg);
    ok(parse_custom(body_free_overlap, &err) == -EILSEQ, "data inside a freed run rejected");
    ok(parse_custom(body_free_past_end, &err) == -EILSEQ, "FREE past the end rejected");
    ok(parse_custom(body_free_overflow, &err) == -EILSEQ, "FREE count overflow rejected");
    ok(parse_custom(body_skip_seq, &err) == -EILSEQ && strstr(err.msg, "lost"),
       "a dropped record is noticed at the next one: %s", err.msg);
    ok(parse_custom(body_wrong_lsize, &err) == -EILSEQ, "DATA of another block size rejected");
    ok(parse_custom(body_raw_short, &err) == -EILSEQ, "uncompressed DATA shorter than a block");

    /* limits are checked on the header, before a payload is read */
    struct stream_parser ps;
    stream_parser_init(&ps);
    uint8_t hdr[STREAM_HDR_SIZE] = {0};
    put_le32(hdr, STREAM_REC_MAGIC);
    put_le16(hdr + 4, SREC_BEGIN);
    put_le32(hdr + 8, 0xffffffffu);
    memset(&err, 0, sizeof err);
    ok(stream_parse_hdr(&ps, hdr, &err) == -EILSEQ, "a 4 GiB BEGIN is refused: %s", err.msg);
    put_le16(hdr + 4, SREC_DATA);
    put_le32(hdr + 8, 100);
    ok(stream_parse_hdr(&ps, hdr, &err) == -EILSEQ, "DATA before BEGIN refused: %s", err.msg);
    put_le16(hdr + 4, 9);
    ok(stream_parse_hdr(&ps, hdr, &err) == -EILSEQ && strstr(err.msg, "type 9"),
       "unknown type named: %s", err.msg);
    put_le32(hdr, 0x12345678);
    ok(stream_parse_hdr(&ps, hdr, &err) == -EILSEQ && strstr(err.msg, "not a berth"),
       "foreign data: %s", err.msg);
    /* inside a section, DATA is limited by the block size */
    struct stream_enc e;
    stream_enc_init(&e);
    uint8_t rec[STREAM_BEGIN_MAX];
    struct stream_begin b = begin_of(5, 0, 0);
    size_t n = stream_enc_begin(&e, &b, rec);
    struct stream_rec out;
    ok(stream_parse_rec(&ps, rec, n, &out, &err) == 0, "BEGIN accepted");
    put_le32(hdr, STREAM_REC_MAGIC);
    put_le16(hdr + 4, SREC_DATA);
    put_le32(hdr + 8, STREAM_DATA_FIXED + BS + 1);
    ok(stream_parse_hdr(&ps, hdr, &err) == -EILSEQ, "DATA longer than a block refused");
    put_le32(hdr + 8, STREAM_DATA_FIXED + BS);
    ok(stream_parse_hdr(&ps, hdr, &err) == (long)(STREAM_DATA_FIXED + BS),
       "DATA of one block allowed");
    stream_parser_free(&ps);

    /* the encoder refuses headers the parser would refuse */
    struct stream_begin bad = begin_of(5, 0, 0);
    bad.volsize = BS * 3 + 1;
    ok(stream_enc_begin(&e, &bad, rec) == 0, "encoder: volsize not a multiple of the block");
    bad = begin_of(5, 0, 0);
    snprintf(bad.toname, sizeof bad.toname, "no-at-sign");
    ok(stream_enc_begin(&e, &bad, rec) == 0, "encoder: name without @");
    bad = begin_of(5, 5, 0);
    ok(stream_enc_begin(&e, &bad, rec) == 0, "encoder: base equal to the snapshot");
    bad = begin_of(5, 0, 0);
    bad.resume_blk = 3;
    ok(stream_enc_begin(&e, &bad, rec) == 0, "encoder: resume offset without RESUMED");

    /* a newer version is named as such (re-sealed so the checksum holds) */
    n = stream_enc_begin(&e, &b, rec);
    put_le32(rec + STREAM_HDR_SIZE + 8, 2);
    put_le64(rec + 24, XXH3_64bits_withSeed(rec + STREAM_HDR_SIZE, n - STREAM_HDR_SIZE,
                                            XXH3_64bits(rec, 24)));
    stream_parser_init(&ps);
    memset(&err, 0, sizeof err);
    ok(stream_parse_rec(&ps, rec, n, &out, &err) == -EILSEQ && strstr(err.msg, "version 2"),
       "a newer stream version is refused by name: %s", err.msg);
    stream_parser_free(&ps);
    stream_enc_free(&e);
}

/* ---- raw sections ---- */

static struct stream_crypt crypt_rec;

static void make_crypt(void)
{
    struct user_key *uk = NULL;
    struct crypt_key *master = NULL;
    struct keyslots set;
    memset(&set, 0, sizeof set);
    static const uint8_t k[32] = "0123456789abcdef0123456789abcdef";
    struct kdf_params kdf = keyslot_default_kdf(KEYFORMAT_RAW);
    ok(user_key_parse(KEYFORMAT_RAW, k, 32, &uk, NULL) == 0 &&
           keyslot_create(&set, uk, &kdf, &master, NULL) == 0,
       "a key slot set for CRYPT records");
    memset(&crypt_rec, 0, sizeof crypt_rec);
    crypt_rec.key_guid = 0x1122334455667788ull;
    crypt_rec.suite = 1;
    crypt_rec.keyformat = KEYFORMAT_RAW;
    crypt_rec.aad_version = 2;
    crypt_key_fingerprint(master, crypt_rec.fingerprint);
    keyslots_encode(&set, crypt_rec.slots);
    user_key_free(uk);
    crypt_key_free(master);
}

/* BEGIN (RAW unless `plain`), CRYPT unless `no_crypt`, one raw DATA (`d`),
 * END. */
static void raw_section(struct sbuf *s, struct stream_enc *e, const struct stream_begin *b,
                        bool no_crypt, const struct stream_data *d)
{
    uint8_t rec[STREAM_CRYPT_SIZE];
    put(s, rec, stream_enc_begin(e, b, rec));
    if (!no_crypt)
        put(s, rec, stream_enc_crypt(e, &crypt_rec, rec));
    if (d) {
        put(s, rec, stream_enc_data(e, d, rec));
        put(s, d->bytes, d->psize);
    }
    put(s, rec, stream_enc_end(e, b->toguid, rec));
}

static void test_raw(void)
{
    make_crypt();
    struct stream_data d = { .blkid = 9, .lsize = BS, .psize = 200, .comp = BS_COMPRESS_LZ4,
                             .bytes = blockbuf, .raw = true };
    memset(d.salt, 0x11, 8);
    memset(d.iv, 0x22, 12);
    memset(d.mac, 0x33, 16);
    struct sbuf s = {0};
    struct stream_enc e;
    struct berr err = {0};
    struct stream_rec recs[8];
    int n = 0;
    stream_enc_init(&e);
    struct stream_begin b = begin_of(5, 0, SBEGIN_RAW);
    raw_section(&s, &e, &b, false, &d);
    ok(parse_all(s.b, s.len, &err, &n, recs, 8) == 0 && n == 4, "a raw section parses: %s",
       err.msg);
    ok(recs[1].type == SREC_CRYPT && recs[1].u.crypt.key_guid == crypt_rec.key_guid &&
           memcmp(recs[1].u.crypt.slots, crypt_rec.slots, STREAM_SLOTS_SIZE) == 0 &&
           memcmp(recs[1].u.crypt.fingerprint, crypt_rec.fingerprint, 16) == 0,
       "CRYPT round-trips (guid, fingerprint, slots)");
    ok(recs[2].type == SREC_DATA && recs[2].u.data.raw && recs[2].u.data.psize == 200 &&
           recs[2].u.data.salt[7] == 0x11 && recs[2].u.data.iv[11] == 0x22 &&
           recs[2].u.data.mac[15] == 0x33,
       "raw DATA round-trips (salt, IV, MAC)");
    int refused = 0;
    for (size_t i = 0; i < s.len; i++) {
        s.b[i] ^= 0x01;
        refused += parse_all(s.b, s.len, NULL, NULL, NULL, 0) < 0;
        s.b[i] ^= 0x01;
    }
    ok(refused == (int)s.len, "every flipped byte of a raw section refused (%d of %zu)", refused,
       s.len);

    s.len = 0;
    raw_section(&s, &e, &b, true, &d);
    ok(parse_all(s.b, s.len, &err, NULL, NULL, 0) == -EILSEQ && strstr(err.msg, "CRYPT"),
       "a raw section without CRYPT: %s", err.msg);
    s.len = 0;
    struct stream_begin pb = begin_of(5, 0, 0);
    raw_section(&s, &e, &pb, false, NULL);
    ok(parse_all(s.b, s.len, &err, NULL, NULL, 0) == -EILSEQ && strstr(err.msg, "no CRYPT"),
       "CRYPT in a plain section: %s", err.msg);
    s.len = 0;
    struct stream_begin b1 = begin_of(5, 0, SBEGIN_RAW | SBEGIN_MORE), b2 = begin_of(6, 5, 0);
    raw_section(&s, &e, &b1, false, NULL);
    section(&s, &e, &b2);
    ok(parse_all(s.b, s.len, &err, NULL, NULL, 0) == -EILSEQ && strstr(err.msg, "follow"),
       "a plain section after a raw one: %s", err.msg);
    s.len = 0;
    struct stream_data bad = d;
    bad.psize = BS; /* "compressed" yet a whole block */
    raw_section(&s, &e, &b, false, &bad);
    ok(parse_all(s.b, s.len, &err, NULL, NULL, 0) == -EILSEQ, "raw DATA compressed to lsize");
    struct stream_crypt c = crypt_rec;
    memset(c.slots, 0, sizeof c.slots);
    uint8_t rec[STREAM_CRYPT_SIZE];
    ok(stream_enc_crypt(&e, &c, rec) == 0, "encoder: CRYPT without a key slot");
    c = crypt_rec;
    c.aad_version = 1;
    ok(stream_enc_crypt(&e, &c, rec) == 0, "encoder: CRYPT with the pool-local AAD");
    /* an older berth's view: the RAW flag is unknown there; here a flag we
     * do not know is refused the same way */
    s.len = 0;
    struct stream_begin fb = begin_of(5, 0, 0);
    raw_section(&s, &e, &fb, true, NULL);
    put_le32(s.b + STREAM_HDR_SIZE + 12, 8u);
    put_le64(s.b + 24, XXH3_64bits_withSeed(s.b + STREAM_HDR_SIZE,
                                             get_le32(s.b + 8), XXH3_64bits(s.b, 24)));
    ok(parse_all(s.b, s.len, &err, NULL, NULL, 0) == -EILSEQ && strstr(err.msg, "flags 0x8"),
       "an unknown BEGIN flag is refused by name: %s", err.msg);
    stream_enc_free(&e);
    free(s.b);
}

/* A resumed section: records below resume_blk are refused. */
static void test_resume_section(void)
{
    struct stream_enc e;
    stream_enc_init(&e);
    struct stream_begin b = begin_of(5, 0, SBEGIN_RESUMED);
    b.resume_blk = 10;
    struct sbuf s = {0};
    uint8_t rec[STREAM_BEGIN_MAX];
    put(&s, rec, stream_enc_begin(&e, &b, rec));
    data_at(&s, &e, 10);
    put(&s, rec, stream_enc_end(&e, 5, rec));
    struct berr err = {0};
    struct stream_rec recs[3];
    int n;
    ok(parse_all(s.b, s.len, &err, &n, recs, 3) == 0 && recs[0].u.begin.resume_blk == 10 &&
           (recs[0].u.begin.flags & SBEGIN_RESUMED),
       "resumed section parses: %s", err.msg);
    s.len = 0;
    put(&s, rec, stream_enc_begin(&e, &b, rec));
    data_at(&s, &e, 9);
    put(&s, rec, stream_enc_end(&e, 5, rec));
    ok(parse_all(s.b, s.len, &err, NULL, NULL, 0) == -EILSEQ,
       "a block before the resume point is refused");
    free(s.b);
    stream_enc_free(&e);
}

static void test_token(void)
{
    struct stream_token t = { .toguid = 0x1122334455667788ULL, .fromguid = 42,
                              .resume_blk = 123456 };
    snprintf(t.vol, sizeof t.vol, "backup.vm-100");
    snprintf(t.snap, sizeof t.snap, "hourly-2026");
    char buf[STREAM_TOKEN_MAX];
    int n = stream_token_encode(&t, buf, sizeof buf);
    ok(n > 0 && (size_t)n == strlen(buf) && strncmp(buf, "1-", 2) == 0, "token: %s", buf);
    struct stream_token g;
    struct berr err = {0};
    ok(stream_token_decode(buf, &g, &err) == 0 && g.toguid == t.toguid && g.fromguid == 42 &&
           g.resume_blk == 123456 && strcmp(g.vol, t.vol) == 0 && strcmp(g.snap, t.snap) == 0,
       "token round trip: %s", err.msg);
    size_t bad = 0;
    for (size_t i = 0; i < strlen(buf); i++) {
        char c = buf[i];
        buf[i] = c == '0' ? '1' : '0';
        if (stream_token_decode(buf, &g, NULL) == 0)
            bad++;
        buf[i] = c;
    }
    ok(bad == 0, "every changed character is refused (%zu accepted)", bad);
    ok(stream_token_decode("", &g, &err) == -EINVAL && stream_token_decode("1-", &g, NULL) < 0 &&
           stream_token_decode("1-zz", &g, NULL) < 0 &&
           stream_token_decode("2-00112233", &g, NULL) < 0,
       "garbage tokens refused: %s", err.msg);
    buf[strlen(buf) - 2] = '\0';
    ok(stream_token_decode(buf, &g, NULL) < 0, "a shortened token is refused");
    char tiny[20];
    ok(stream_token_encode(&t, tiny, sizeof tiny) == -ERANGE, "short buffer: -ERANGE");
}

static void test_random(void)
{
    uint64_t seed = 7;
    uint8_t buf[512];
    int survived = 1;
    for (int i = 0; i < 20000; i++) {
        size_t len = xrand(&seed) % sizeof buf;
        random_bytes(buf, len, &seed);
        if (i % 2 && len >= 8) /* half of them start like a record */
            put_le32(buf, STREAM_REC_MAGIC);
        if (parse_all(buf, len, NULL, NULL, NULL, 0) == 0)
            survived = 0;
    }
    ok(survived, "20000 random buffers: none accepted, no crash");
}

int main(void)
{
    uint64_t seed = 1;
    random_bytes(blockbuf, sizeof blockbuf, &seed);
    test_roundtrip();
    test_chain();
    test_rules();
    test_resume_section();
    test_raw();
    test_token();
    test_random();
    return done_testing();
}
