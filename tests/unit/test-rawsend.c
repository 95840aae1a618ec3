/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Raw send/receive of encrypted volumes (issue 6 item 4, docs/STREAM.md):
 * a locked volume is sent as its ciphertext (full, -i, -I) into a second
 * pool that never had the key; the received volume is encrypted and locked
 * with the sender's key slots, and after `key load` there (any slot: key
 * file or passphrase, also after a re-import) every snapshot reads back
 * byte for byte.  Refused with a clear message and nothing changed: a raw
 * incremental whose key is another, raw into a plaintext volume, plain into
 * a locked volume, flipped or missing bytes, a raw send of blocks sealed
 * with the old pool-local AAD (which stay readable).  A ciphertext forged
 * with fixed-up stream checksums is received (no key to check it) but reads
 * as EIO once the key is loaded.  Resumable raw receives resume; clones of
 * a raw-received volume work.  Key slots follow the sender (STREAM.md
 * 11.4): after key change/remove/add on the source, the next raw
 * incremental (or resumed) receive makes the new keys open the copy and the
 * removed ones not, with the receiver's loaded key still valid and across a
 * re-import; a stream of another key changes nothing; a copy sharing its key
 * record with another lineage (the origin pool, a second copy) keeps its
 * slots; power cuts around the receive leave the old or the new slot set,
 * each with its snapshot, never neither. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/cache.h"
#include "store/keyslot.h"
#include "store/mos.h"
#include "store/pool_impl.h"
#include "store/recv.h"
#include "store/stream.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 4096u
#define VOLSIZE (2 * MiB)
#define NB (VOLSIZE / BS)

static bs_pool *src, *dst;
static uint64_t seed = 7;
static const uint8_t rawkey[32] = "0123456789abcdef0123456789ABCDEF";
static const char pass[] = "correct horse battery staple";
static char keyurl[600];

static const struct bs_kdf_opts fast_kdf = { .kdf = BS_KDF_ARGON2ID, .t_cost = 1,
                                             .m_cost_kib = 64, .parallelism = 1 };

/* ---- memory streams ---- */
struct mstream {
    uint8_t *b;
    size_t len, cap;
    size_t pos, limit;
};

static int mwrite(void *opaque, const void *buf, size_t len)
{
    struct mstream *m = opaque;
    if (m->len + len > m->cap) {
        m->cap = (m->len + len) * 2;
        m->b = realloc(m->b, m->cap);
    }
    memcpy(m->b + m->len, buf, len);
    m->len += len;
    return 0;
}

static ssize_t mread(void *opaque, void *buf, size_t len)
{
    struct mstream *m = opaque;
    size_t end = m->limit ? m->limit : m->len;
    size_t n = end - m->pos < len ? end - m->pos : len;
    if (n > 5000)
        n = 5000;
    if (n == 0) /* the end, or a stream that was never sent */
        return 0;
    memcpy(buf, m->b + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

/* Free a stream and leave it empty.  An assertion like `ok(x && do_send(..,
 * &m, ..))` skips the send when x fails: m must then be an empty stream, not
 * the last one freed, or the receive after it reads freed memory and the
 * next free is a double free.  That is the "corrupted size vs. prev_size"
 * abort once seen here: a key load failed root-MAC verification (raw streams
 * carried no root MAC yet), `bs_key_unload(dst, "r") == 0 && do_send(..)` in
 * test_key_follow skipped the send, and the stream freed just before was
 * received from and freed again. */
static void mfree(struct mstream *m)
{
    free(m->b);
    memset(m, 0, sizeof *m);
}

static int do_send(bs_pool *p, const char *snap, const char *from, bool inter, bool raw,
                   const char *token, struct mstream *m, struct berr *e)
{
    memset(m, 0, sizeof *m);
    memset(e, 0, sizeof *e);
    struct bs_send_opts o = { .from = from, .intermediates = inter, .raw = raw,
                              .resume_token = token };
    int r = bs_send(p, snap, &o, mwrite, m, NULL, e);
    if (r < 0)
        diag("send %s: %s", snap, e->msg);
    return r;
}

static int do_recv(const char *vol, struct mstream *m, bool resumable, struct berr *e)
{
    m->pos = 0;
    memset(e, 0, sizeof *e);
    struct bs_recv_opts o = { .resumable = resumable };
    return bs_recv(dst, vol, &o, mread, m, NULL, e);
}

/* ---- contents ---- */

static int write_blocks(bs_pool *p, const char *vol, uint64_t first, uint64_t n, int kind)
{
    bs_vol *v;
    if (bs_vol_open(p, vol, &v, NULL) < 0)
        return -1;
    uint8_t b[BS];
    int r = 0;
    for (uint64_t i = first; i < first + n && r == 0; i++) {
        if (kind == 0) {
            r = bs_vol_zero(v, BS, i * BS, 0);
            continue;
        }
        if (kind == 1) /* compressible: travels compressed and encrypted */
            memset(b, (int)(xrand(&seed) & 0xff) | 1, BS), b[i % BS] = (uint8_t)i;
        else
            random_bytes(b, BS, &seed);
        r = bs_vol_pwrite(v, b, BS, i * BS, 0);
    }
    bs_vol_close(v);
    return r;
}

static int snap(bs_pool *p, const char *name)
{
    struct berr e = {0};
    const char *n[] = { name };
    int r = bs_snap_create(p, n, 1, &e);
    if (r < 0)
        diag("snapshot %s: %s", name, e.msg);
    return r;
}

/* XXH3 of every byte of a volume or snapshot (1 if it cannot be read). */
static uint64_t hash_of(bs_pool *p, const char *name)
{
    bs_vol *v;
    struct berr e = {0};
    int r = bs_vol_open(p, name, &v, &e);
    if (r < 0) {
        diag("open %s: %s", name, e.msg);
        return 1;
    }
    uint64_t size = bs_vol_size(v);
    uint8_t *buf = malloc(size);
    r = bs_vol_pread(v, buf, size, 0);
    if (r < 0)
        diag("read %s: %s", name, strerror(-r));
    uint64_t h = r == 0 ? XXH3_64bits(buf, size) : 1;
    free(buf);
    bs_vol_close(v);
    return h;
}

static bool same(const char *s, const char *d)
{
    uint64_t a = hash_of(src, s), b = hash_of(dst, d);
    if (a != b || a == 1)
        diag("%s: %016llx, %s: %016llx", s, (unsigned long long)a, d, (unsigned long long)b);
    return a == b && a != 1;
}

static int count_snaps_cb(const struct bs_snap_props *sp, void *opaque)
{
    (void)sp;
    (*(int *)opaque)++;
    return 0;
}

static int nsnaps(bs_pool *p, const char *vol)
{
    int n = 0;
    bs_snap_list(p, vol, count_snaps_cb, &n, NULL);
    return n;
}

static int key_load(bs_pool *p, const char *vol, const char *loc, const char *phrase)
{
    struct berr e = {0};
    struct bs_key k = { .location = loc };
    if (phrase) {
        k.format = BS_KEYFORMAT_PASSPHRASE;
        k.data = phrase;
        k.len = strlen(phrase);
    }
    int r = bs_key_load(p, vol, &k, &e);
    if (r < 0)
        diag("key load %s: %s", vol, e.msg);
    return r;
}

static uint64_t key_guid(bs_pool *p, const char *name)
{
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, name);
    uint64_t g = d && d->key ? d->key->rec.guid : 0;
    pthread_mutex_unlock(&p->lock);
    return g;
}

static bool locked(bs_pool *p, const char *name)
{
    struct berr e = {0};
    bs_vol *v;
    int r = bs_vol_open(p, name, &v, &e);
    if (r == 0)
        bs_vol_close(v);
    return r == -EACCES;
}

/* ---- re-encoding a stream (a sender that lies) ----
 * Parses every record and writes it again through the encoder, after
 * `edit` may change it: the result has valid record checksums and END
 * digests, so only the receiver's own checks can refuse it. */
typedef void edit_fn(struct stream_rec *rec, uint8_t *blk);

/* A CRYPT record with an unknown snapshot authentication kind (the encoder
 * refuses to write one: patched after encoding, its record checksum
 * recomputed). */
static bool patch_auth;
static uint8_t patch_kind = 0x7f; /* 0: no root MAC (an older sender) */
static void unknown_auth(uint8_t *rec)
{
    rec[STREAM_HDR_SIZE + 11] = patch_kind;
    if (patch_kind == 0)
        memset(rec + STREAM_HDR_SIZE + 32, 0, STREAM_AUTH_LEN);
    uint64_t sum = XXH3_64bits_withSeed(rec + STREAM_HDR_SIZE, STREAM_CRYPT_SIZE - STREAM_HDR_SIZE,
                                        XXH3_64bits(rec, 24));
    for (int i = 0; i < 8; i++)
        rec[24 + i] = (uint8_t)(sum >> (8 * i));
}


static int reencode(const struct mstream *in, struct mstream *out, edit_fn *edit)
{
    struct stream_parser ps;
    struct stream_enc enc;
    stream_parser_init(&ps);
    stream_enc_init(&enc);
    memset(out, 0, sizeof *out);
    size_t pos = 0;
    int r = 0;
    uint8_t *rec = malloc(STREAM_CRYPT_SIZE + STREAM_MAX_BLOCK + STREAM_RAWDATA_PREFIX);
    static uint8_t blk[STREAM_MAX_BLOCK];
    while (pos < in->len && r == 0) {
        long plen = stream_parse_hdr(&ps, in->b + pos, NULL);
        if (plen < 0) {
            r = -EILSEQ;
            break;
        }
        size_t len = STREAM_HDR_SIZE + (size_t)plen;
        struct stream_rec sr;
        if ((r = stream_parse_rec(&ps, in->b + pos, len, &sr, NULL)) < 0)
            break;
        pos += len;
        if (sr.type == SREC_DATA) {
            memcpy(blk, sr.u.data.bytes, sr.u.data.psize);
            sr.u.data.bytes = blk;
        }
        if (edit)
            edit(&sr, blk);
        size_t n = 0;
        switch (sr.type) {
        case SREC_BEGIN:
            n = stream_enc_begin(&enc, &sr.u.begin, rec);
            break;
        case SREC_CRYPT:
            n = stream_enc_crypt(&enc, &sr.u.crypt, rec);
            if (patch_auth)
                unknown_auth(rec);
            break;
        case SREC_DATA:
            n = stream_enc_data(&enc, &sr.u.data, rec);
            memcpy(rec + n, blk, sr.u.data.psize);
            n += sr.u.data.psize;
            break;
        case SREC_FREE:
            n = stream_enc_hole(&enc, sr.u.free.blkid, sr.u.free.count, rec);
            break;
        default:
            n = stream_enc_end(&enc, sr.u.end.toguid, rec);
            break;
        }
        mwrite(out, rec, n);
    }
    free(rec);
    stream_parser_free(&ps);
    stream_enc_free(&enc);
    return r;
}

static void other_key(struct stream_rec *rec, uint8_t *blk)
{
    (void)blk;
    if (rec->type == SREC_CRYPT)
        rec->u.crypt.key_guid ^= 0x5a5a;
}

static void other_fingerprint(struct stream_rec *rec, uint8_t *blk)
{
    (void)blk;
    if (rec->type == SREC_CRYPT)
        rec->u.crypt.fingerprint[3] ^= 1;
}

static int forged;
static void forge_block(struct stream_rec *rec, uint8_t *blk)
{
    if (rec->type == SREC_DATA && !forged) {
        blk[rec->u.data.psize / 2] ^= 0x10;
        forged = 1;
    }
}


/* ---- the key slots of a raw-received copy ---- */

static int do_recv_st(bs_pool *p, const char *vol, struct mstream *m, bool resumable,
                      struct bs_recv_stats *st, struct berr *e)
{
    m->pos = 0;
    memset(e, 0, sizeof *e);
    struct bs_recv_opts o = { .resumable = resumable };
    int r = bs_recv(p, vol, &o, mread, m, st, e);
    if (r < 0)
        diag("receive into %s: %s", vol, e->msg);
    return r;
}

/* XXH3 of the encoded slot set of name's key record (0: none). */
static uint64_t slots_hash(bs_pool *p, const char *name)
{
    uint8_t b[KEYSLOTS_SIZE];
    pthread_mutex_lock(&p->lock);
    struct ds *d = ds_find(p, name);
    bool k = d && d->key;
    if (k)
        keyslots_encode(&d->key->rec.slots, b);
    pthread_mutex_unlock(&p->lock);
    return k ? XXH3_64bits(b, sizeof b) : 0;
}

/* Does this raw key (or passphrase) open name's key?  Unloads it again. */
static bool opens(bs_pool *p, const char *name, const uint8_t *raw, const char *phrase)
{
    struct bs_key k = { .format = BS_KEYFORMAT_RAW, .data = raw, .len = 32 };
    if (phrase) {
        k.format = BS_KEYFORMAT_PASSPHRASE;
        k.data = phrase;
        k.len = strlen(phrase);
    }
    struct berr e = {0};
    bs_key_unload(p, name, NULL);
    bool r = bs_key_load(p, name, &k, &e) == 0;
    if (r)
        bs_key_unload(p, name, NULL);
    return r;
}

static const uint8_t rawkey2[32] = "ZYXWVUTSRQPONMLKzyxwvutsrqponmlk";
static const uint8_t rawkey3[32] = "33333333333333334444444444444444";
static const char pass2[] = "a second passphrase, newer";

/* ---- tests ---- */

static void setup_source(void)
{
    struct berr e = {0};
    struct bs_vol_props vp;
    bs_vol_props_init(src, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = VOLSIZE;
    vp.volblocksize = BS;
    vp.encrypted = true;
    vp.keyformat = BS_KEYFORMAT_RAW;
    snprintf(vp.keylocation, sizeof vp.keylocation, "%s", keyurl);
    ok(bs_vol_create(src, &vp, false, &e) == 0, "encrypted source volume: %s", e.msg);
    struct bs_key pk = { .format = BS_KEYFORMAT_PASSPHRASE, .data = pass, .len = strlen(pass),
                         .kdf = fast_kdf };
    ok(bs_key_add(src, "v", &pk, -1, &e) == 1, "a passphrase in slot 1: %s", e.msg);
    ok(write_blocks(src, "v", 0, 200, 2) == 0 && write_blocks(src, "v", 200, 100, 1) == 0 &&
           snap(src, "v@a") == 0,
       "v@a: 200 random + 100 compressible blocks");
    ok(write_blocks(src, "v", 50, 30, 2) == 0 && write_blocks(src, "v", 210, 20, 0) == 0 &&
           snap(src, "v@b") == 0,
       "v@b: 30 changed, 20 made holes");
    ok(write_blocks(src, "v", 400, 40, 1) == 0 && snap(src, "v@c") == 0, "v@c: 40 new");
    ok(write_blocks(src, "v", 0, 10, 2) == 0 && write_blocks(src, "v", 400, 5, 0) == 0 &&
           snap(src, "v@d") == 0,
       "v@d: 10 changed, 5 holes");
    ok(bs_key_unload(src, "v", &e) == 0 && locked(src, "v@a"), "source key unloaded: %s",
       e.msg);
}

static void test_round_trip(void)
{
    struct mstream m = {0};
    struct berr e;
    ok(do_send(src, "v@a", NULL, false, false, NULL, &m, &e) == -EACCES,
       "a plain send of the locked volume needs its key: %s", e.msg);
    mfree(&m);
    int r = do_send(src, "v@a", NULL, false, true, NULL, &m, &e);
    ok(r == 0, "raw full send, locked: %zu bytes", m.len);
    ok(do_recv("r", &m, false, &e) == 0, "raw receive into the other pool: %s", e.msg);
    mfree(&m);
    ok(locked(dst, "r") && locked(dst, "r@a"), "the received volume is encrypted and locked");
    ok(key_guid(dst, "r") == key_guid(src, "v") && key_guid(dst, "r") != 0,
       "it keeps the sender's key guid");
    struct bs_keyslot_info ks[BS_KEYSLOTS_MAX];
    ok(bs_key_list(dst, "r", ks, NULL) == 2, "and both of its key slots");

    ok(do_send(src, "v@b", "@a", false, true, NULL, &m, &e) == 0, "raw -i @a v@b: %zu bytes",
       m.len);
    ok(do_recv("r", &m, false, &e) == 0, "received onto the locked volume: %s", e.msg);
    mfree(&m);
    ok(do_send(src, "v@d", "@b", true, true, NULL, &m, &e) == 0, "raw -I @b v@d: %zu bytes",
       m.len);
    ok(do_recv("r", &m, false, &e) == 0, "received: %s", e.msg);
    mfree(&m);
    ok(nsnaps(dst, "r") == 4, "r has @a @b @c @d");
    struct bs_pool_stats ps;
    struct berr ce = {0};
    ok(bs_pool_check(dst, &ce) == 0 && bs_pool_stats(dst, &ps) == 0 && ps.checksum_errors == 0,
       "the locked copy checks clean without a key (ciphertext checksums, space map): %s",
       ce.msg);

    ok(key_load(dst, "r", keyurl, NULL) == 0, "key load on the receiver with the key file");
    ok(key_load(src, "v", NULL, NULL) == 0, "(and on the source, to compare)");
    ok(same("v@a", "r@a") && same("v@b", "r@b") && same("v@c", "r@c") && same("v@d", "r@d") &&
           same("v@d", "r"),
       "every snapshot reads back byte for byte");

    /* the passphrase slot opens it too, and the pool keeps it over an import */
    struct berr e2 = {0};
    ok(bs_key_unload(dst, "r", &e2) == 0, "unload on the receiver");
    const char *f = tmp_path("dst.img");
    bs_pool_export(dst, false, &e2);
    const char *v[] = { f };
    dst = NULL;
    ok(bs_pool_import(v, 1, NULL, &dst, &e2) == 0, "receiver re-imported: %s", e2.msg);
    ok(locked(dst, "r"), "still locked after the import (keylocation prompt)");
    ok(key_load(dst, "r", NULL, "wrong passphrase!") == -EACCES, "a wrong passphrase: EACCES");
    ok(key_load(dst, "r", NULL, pass) == 0, "the passphrase slot opens it");
    ok(same("v@b", "r@b") && same("v@d", "r"), "and the data is there");

    /* a clone of a raw-received snapshot */
    ok(bs_vol_clone(dst, "r@b", "rc", NULL, &e2) == 0, "clone r@b: %s", e2.msg);
    ok(same("v@b", "rc"), "the clone reads r@b");
    bs_vol *h;
    uint8_t blk[BS], back[BS];
    random_bytes(blk, BS, &seed);
    ok(bs_vol_open(dst, "rc", &h, NULL) == 0 && bs_vol_pwrite(h, blk, BS, 7 * BS, 0) == 0 &&
           bs_vol_flush(h) == 0 && bs_vol_pread(h, back, BS, 7 * BS) == 0 &&
           memcmp(blk, back, BS) == 0,
       "and takes writes (encrypted with the received key)");
    bs_vol_close(h);
    ok(same("v@b", "r@b"), "its origin is unchanged");

    /* with its key loaded, the copy plain-sends like any encrypted volume */
    struct mstream m2 = {0};
    memset(&m2, 0, sizeof m2);
    struct bs_send_opts po = {0};
    ok(bs_send(dst, "r@c", &po, mwrite, &m2, NULL, &e2) == 0, "plain send of r@c: %s", e2.msg);
    bs_pool *saved = dst;
    dst = src; /* receive it back into the source pool */
    ok(do_recv("back", &m2, false, &e2) == 0, "received back into the source pool: %s", e2.msg);
    dst = saved;
    ok(hash_of(src, "back@c") == hash_of(src, "v@c") && hash_of(src, "back@c") != 1,
       "back@c == v@c");
    mfree(&m2);

    /* a raw-received volume raw-sends on (a chain of replicas), even back
     * into the pool of its origin: there it shares v's key record (one
     * record per key guid), like a clone */
    memset(&m2, 0, sizeof m2);
    po.raw = true;
    ok(bs_send(dst, "r@b", &po, mwrite, &m2, NULL, &e2) == 0, "raw send of r@b: %s", e2.msg);
    dst = src;
    ok(do_recv("rr", &m2, false, &e2) == 0, "raw-received back into the source pool: %s",
       e2.msg);
    dst = saved;
    pthread_mutex_lock(&src->lock);
    bool shared = ds_find(src, "rr")->key == ds_find(src, "v")->key;
    pthread_mutex_unlock(&src->lock);
    ok(shared, "it shares v's key record");
    ok(!locked(src, "rr") && hash_of(src, "rr@b") == hash_of(src, "v@b"),
       "unlocked with it, and rr@b == v@b");
    mfree(&m2);
}

static void test_refusals(void)
{
    struct mstream m = {0}, m2 = {0};
    struct berr e;
    int r;
    ok(write_blocks(src, "v", 450, 30, 2) == 0 && snap(src, "v@e") == 0, "v@e");
    ok(do_send(src, "v@e", "@d", false, true, NULL, &m, &e) == 0, "raw -i @d v@e");
    int before = nsnaps(dst, "r");
    uint64_t h0 = hash_of(dst, "r");

    /* the same incremental from a volume with another key */
    ok(reencode(&m, &m2, other_key) == 0, "re-encoded with another key guid");
    ok(do_recv("r", &m2, false, &e) == -EXDEV && strstr(e.msg, "another key"),
       "refused: %s", e.msg);
    mfree(&m2);
    ok(reencode(&m, &m2, other_fingerprint) == 0 && do_recv("r", &m2, false, &e) == -EXDEV,
       "another key fingerprint: refused too");
    mfree(&m2);
    patch_auth = true;
    r = reencode(&m, &m2, NULL);
    patch_auth = false;
    ok(r == 0 && do_recv("r", &m2, false, &e) == -EILSEQ &&
           strstr(e.msg, "newer berth"),
       "an unknown snapshot authentication: %s", e.msg);
    mfree(&m2);
    patch_auth = true;
    patch_kind = 0;
    r = reencode(&m, &m2, NULL);
    patch_auth = false;
    patch_kind = 0x7f;
    ok(r == 0 && do_recv("r", &m2, false, &e) == -EILSEQ && strstr(e.msg, "no root MAC"),
       "a raw stream without the snapshot's root MAC: %s", e.msg);
    mfree(&m2);

    /* flipped bytes and truncations anywhere */
    int refused = 0, tries = 0;
    for (size_t at = 17; at < m.len; at += m.len / 23 + 1, tries++) {
        m.b[at] ^= 0x20;
        refused += do_recv("r", &m, false, &e) == -EILSEQ;
        m.b[at] ^= 0x20;
    }
    ok(refused == tries, "every flipped byte refused (%d of %d places)", refused, tries);
    m.limit = m.len - 10;
    ok(do_recv("r", &m, false, &e) == -EPIPE, "truncated: %s", e.msg);
    m.limit = 0;
    ok(nsnaps(dst, "r") == before && hash_of(dst, "r") == h0, "r is unchanged");

    /* plain stream into the locked volume, raw stream into a plaintext one */
    ok(bs_key_unload(dst, "r", &e) == 0, "receiver key unloaded: %s", e.msg);
    ok(do_send(src, "v@e", "@d", false, false, NULL, &m2, &e) == 0, "plain -i @d v@e");
    ok(do_recv("r", &m2, false, &e) == -EACCES && strstr(e.msg, "--raw"),
       "a plain stream into the locked volume: %s", e.msg);
    mfree(&m2);
    ok(do_send(src, "v@d", NULL, false, false, NULL, &m2, &e) == 0 &&
           do_recv("p", &m2, false, &e) == 0,
       "a plain full stream makes plaintext volume p");
    mfree(&m2);
    ok(do_send(src, "v@e", "@d", false, true, NULL, &m2, &e) == 0 &&
           do_recv("p", &m2, false, &e) == -EINVAL && strstr(e.msg, "not encrypted"),
       "a raw incremental into it: %s", e.msg);
    mfree(&m2);
    ok(nsnaps(dst, "r") == before && nsnaps(dst, "p") == 1, "nothing received");

    /* the genuine stream still applies; then a forged ciphertext */
    ok(do_recv("r", &m, false, &e) == 0, "the untouched raw stream applies: %s", e.msg);
    ok(write_blocks(src, "v", 500, 3, 2) == 0 && snap(src, "v@f") == 0 &&
           do_send(src, "v@f", "@e", false, true, NULL, &m2, &e) == 0,
       "raw -i @e v@f");
    struct mstream m3 = {0};
    forged = 0;
    ok(reencode(&m2, &m3, forge_block) == 0 && forged, "a ciphertext byte forged, stream "
       "checksums fixed up");
    ok(do_recv("r", &m3, false, &e) == 0, "received without a key (nothing can tell)");
    ok(key_load(dst, "r", keyurl, NULL) == 0, "key loaded");
    uint8_t buf[BS];
    bs_vol *h;
    r = bs_vol_open(dst, "r@f", &h, NULL);
    if (r == 0) {
        r = bs_vol_pread(h, buf, BS, 500 * BS);
        bs_vol_close(h);
    }
    ok(r == -EIO, "the forged block reads as EIO, never as wrong data (%d)", r);
    ok(same("v@e", "r@e"), "the blocks before it are fine");
    mfree(&m);
    mfree(&m2);
    mfree(&m3);
}

static void test_resume(void)
{
    struct mstream m = {0}, m2 = {0};
    struct berr e;
    recv_set_checkpoint_bytes(32 << 10);
    ok(write_blocks(src, "v", 0, 300, 2) == 0 && snap(src, "v@g") == 0, "v@g: 300 changed");
    ok(bs_key_unload(src, "v", NULL) == 0, "source locked again");
    ok(do_send(src, "v@g", NULL, false, true, NULL, &m, &e) == 0, "raw full v@g");
    ok(bs_key_unload(dst, "r", &e) == 0, "the receiver's key unloaded: %s", e.msg);
    m.limit = m.len / 2;
    int r = do_recv("s", &m, true, &e);
    ok(r == -EPIPE, "interrupted: %s", e.msg);
    char tok[STREAM_TOKEN_MAX];
    ok(bs_recv_token(dst, "s", tok, sizeof tok, &e) == 0, "token %s", tok);
    struct bs_send_stats st;
    memset(&m2, 0, sizeof m2);
    struct bs_send_opts so = { .raw = true, .resume_token = tok };
    r = bs_send(src, "v@g", &so, mwrite, &m2, &st, &e);
    ok(r == 0 && m2.len < m.len && m2.len > m.len / 4,
       "resumed raw send: %zu of %zu bytes, %llu blocks", m2.len, m.len,
       (unsigned long long)st.blocks);
    ok(do_recv("s", &m2, true, &e) == 0, "resumed raw receive completes: %s", e.msg);
    ok(locked(dst, "s") && key_load(dst, "s", keyurl, NULL) == 0 && !locked(dst, "r"),
       "s (sharing r's key record) locked, then loaded");
    ok(key_load(src, "v", NULL, NULL) == 0 && same("v@g", "s@g"), "s@g == v@g");
    recv_set_checkpoint_bytes(0);
    mfree(&m);
    mfree(&m2);
}


/* A power cut at every point of a raw incremental that brings a new slot
 * set: after the import the copy is either before the receive (old slot
 * set: the old key opens it) or after it (new slot set: the new key opens
 * it, the removed old one does not), and its data is the matching snapshot. */
static void test_crash_follow(const struct mstream *full, const struct mstream *inc,
                              const uint8_t *newkey, uint64_t h_old, uint64_t h_new)
{
    const char *f = tmp_path("crash.img");
    int runs = 0, bad = 0, before = 0, after = 0;
    bool completed = false;
    for (int n = 1; n < 400 && !completed; n += n < 40 ? 1 : 7) {
        struct berr e = {0};
        struct bs_pool_opts o;
        bs_pool_opts_init(&o);
        o.force = true;
        const char *v[] = { f };
        bs_pool *p;
        if (bs_pool_create("crashp", v, 1, 64 * MiB, &o, &p, &e) < 0) {
            bad++, diag("pool create: %s", e.msg);
            break;
        }
        struct mstream m = *full;
        struct bs_recv_stats st;
        if (do_recv_st(p, "c", &m, false, NULL, &e) < 0 || bs_pool_sync(p, &e) < 0) {
            bad++;
            bs_pool_close(p);
            break;
        }
        char knob[64];
        snprintf(knob, sizeof knob, "torn_write_after=%d", n);
        bs_pool_debug(p, knob, &e);
        m = *inc;
        m.pos = 0;
        struct bs_recv_opts ro = {0};
        completed = bs_recv(p, "c", &ro, mread, &m, &st, &e) == 0;
        pool_abandon(p);
        if (bs_pool_import(v, 1, NULL, &p, &e) < 0) {
            bad++, diag("run %d: import failed: %s", n, e.msg);
            continue;
        }
        bool old = opens(p, "c", rawkey, NULL), nw = opens(p, "c", newkey, NULL);
        int snaps = nsnaps(p, "c");
        uint64_t h = 1;
        if (old || nw) {
            bs_key_load(p, "c", &(struct bs_key){ .format = BS_KEYFORMAT_RAW,
                                                 .data = nw ? newkey : rawkey, .len = 32 }, &e);
            h = hash_of(p, "c");
        }
        bool okay = old != nw && ((old && snaps == 1 && h == h_old) ||
                                  (nw && snaps == 2 && h == h_new)) &&
                    (!completed || nw);
        if (!okay)
            bad++, diag("run %d: old key %d, new key %d, %d snapshots, data %s, completed %d",
                        n, old, nw, snaps, h == h_old ? "old" : h == h_new ? "new" : "wrong",
                        completed);
        before += old;
        after += nw;
        runs++;
        bs_pool_export(p, true, &e);
    }
    ok(completed, "the receive completes once the cut comes late enough");
    ok(bad == 0, "%d power cuts around a raw incremental with a new slot set: %d before "
       "(old key), %d after (new key), none with both or neither", runs, before, after);
    ok(before > 0 && after > 0, "cuts hit before and after the commit");
}

/* The sender's key change/add/remove between snapshots reaches the copy
 * with the next raw incremental (or resumed) receive; a copy whose key
 * record is shared with a volume of another lineage keeps its slots. */
static void test_key_follow(void)
{
    struct mstream full = {0}, m = {0}, m2 = {0};
    struct berr e = {0};
    struct bs_recv_stats st;
    const char *k2f = tmp_path("k2.key");
    FILE *fp = fopen(k2f, "w");
    fwrite(rawkey2, 1, 32, fp);
    fclose(fp);
    char k2url[600];
    snprintf(k2url, sizeof k2url, "file://%s", k2f);

    /* s (from test_resume) shares r's key record: it goes, so r's lineage
     * (r, its snapshots, the clone rc) is the record's only user */
    ok(bs_vol_destroy_ex(dst, "s", BS_DESTROY_RECURSIVE, &e) == 0, "destroy s: %s", e.msg);
    ok(do_send(src, "v@g", NULL, false, true, NULL, &full, &e) == 0,
       "raw full v@g with the old slot set (for the crash runs)");
    uint64_t h_g = hash_of(src, "v@g");

    struct bs_key k2 = { .format = BS_KEYFORMAT_RAW, .location = k2url };
    struct bs_key p2 = { .format = BS_KEYFORMAT_PASSPHRASE, .data = pass2, .len = strlen(pass2),
                         .kdf = fast_kdf };
    int ns = bs_key_change(src, "v", 0, &k2, &e);
    ok(ns >= 0, "source: key change of slot 0 to a second key file (slot %d): %s", ns, e.msg);
    ok(bs_key_remove(src, "v", 1, &e) == 0, "source: the passphrase slot removed: %s", e.msg);
    ok(bs_key_add(src, "v", &p2, -1, &e) >= 0, "source: another passphrase added: %s", e.msg);
    /* (v@h rewrites the blocks of r@f that test_refusals forged) */
    ok(write_blocks(src, "v", 100, 20, 2) == 0 && write_blocks(src, "v", 500, 3, 2) == 0 &&
           snap(src, "v@h") == 0,
       "v@h");
    ok(do_send(src, "v@h", "@f", false, true, NULL, &m, &e) == 0, "raw -i @f v@h");

    /* a stream with another key fingerprint: refused, the slots untouched */
    uint64_t before = slots_hash(dst, "r");
    ok(reencode(&m, &m2, other_fingerprint) == 0 &&
           do_recv_st(dst, "r", &m2, false, &st, &e) == -EXDEV && slots_hash(dst, "r") == before,
       "the incremental with another key fingerprint: refused, slots unchanged (%s)", e.msg);
    mfree(&m2);
    ok(reencode(&m, &m2, other_key) == 0 &&
           do_recv_st(dst, "r", &m2, false, &st, &e) == -EXDEV && slots_hash(dst, "r") == before,
       "with another key guid: refused too");
    mfree(&m2);

    ok(!locked(dst, "r"), "the receiver has the key loaded meanwhile");
    ok(do_recv_st(dst, "r", &m, false, &st, &e) == 0 && st.keyslots == BS_RECV_KEYSLOTS_UPDATED,
       "the incremental raw receive takes the sender's slot set (keyslots %d)", st.keyslots);
    mfree(&m);
    ok(slots_hash(dst, "r") == slots_hash(src, "v") && slots_hash(dst, "rc") == slots_hash(dst, "r"),
       "r's key record (shared by the clone rc) has the source's slots now");
    ok(!locked(dst, "r") && same("v@h", "r@h"), "the loaded key stays valid: r@h == v@h");
    struct bs_keyslot_info ks[BS_KEYSLOTS_MAX];
    ok(bs_key_list(dst, "r", ks, NULL) == 2, "two slots listed, as on the source");
    ok(!opens(dst, "r", rawkey, NULL), "the changed-away key file no longer opens the copy");
    ok(!opens(dst, "r", NULL, pass), "nor the removed passphrase");
    ok(opens(dst, "r", rawkey2, NULL), "the new key file does");
    ok(opens(dst, "r", NULL, pass2), "and the added passphrase");

    const char *df = tmp_path("dst.img");
    bs_pool_export(dst, false, &e);
    const char *dv[] = { df };
    dst = NULL;
    ok(bs_pool_import(dv, 1, NULL, &dst, &e) == 0, "receiver re-imported: %s", e.msg);
    ok(opens(dst, "r", rawkey2, NULL) && !opens(dst, "r", rawkey, NULL),
       "after the import too: the new key opens r, the old one does not");

    /* a resumed raw incremental brings the slot set the sender had when
     * the resume was sent */
    recv_set_checkpoint_bytes(16 << 10);
    ok(write_blocks(src, "v", 0, 200, 2) == 0 && snap(src, "v@i") == 0, "v@i: 200 changed");
    ok(do_send(src, "v@i", "@h", false, true, NULL, &m, &e) == 0, "raw -i @h v@i");
    m.limit = m.len / 2;
    ok(do_recv_st(dst, "r", &m, true, &st, &e) == -EPIPE, "its receive is interrupted");
    mfree(&m);
    struct bs_key k3 = { .format = BS_KEYFORMAT_RAW, .data = rawkey3, .len = 32 };
    ok(bs_key_change(src, "v", -1, &k3, &e) >= 0, "source: key change to a third key: %s",
       e.msg);
    char tok[STREAM_TOKEN_MAX];
    ok(bs_recv_token(dst, "r", tok, sizeof tok, &e) == 0 &&
           do_send(src, "v@i", "@h", false, true, tok, &m, &e) == 0,
       "resumed raw send");
    ok(do_recv_st(dst, "r", &m, true, &st, &e) == 0 && st.keyslots == BS_RECV_KEYSLOTS_UPDATED,
       "the resumed receive completes and takes the newer slot set");
    mfree(&m);
    recv_set_checkpoint_bytes(0);
    ok(opens(dst, "r", rawkey3, NULL) && !opens(dst, "r", rawkey2, NULL),
       "the third key opens r, the second no longer");
    ok(key_load(dst, "r", NULL, pass2) == 0 && same("v@i", "r@i"), "r@i == v@i");

    /* another lineage shares the key record: the origin pool.  rr (from
     * r@b, in src) shares v's record; a key added on the copy r and an
     * incremental from r into rr must not change v's slots */
    struct bs_key pl = { .format = BS_KEYFORMAT_PASSPHRASE, .data = "local to the copy only",
                         .len = 22, .kdf = fast_kdf };
    ok(bs_key_add(dst, "r", &pl, -1, &e) >= 0, "a key added on the copy r: %s", e.msg);
    uint64_t vs = slots_hash(src, "v");
    ok(bs_key_unload(dst, "r", &e) == 0 && do_send(dst, "r@i", "@b", false, true, NULL, &m, &e) == 0,
       "raw -i @b r@i from the locked copy");
    ok(do_recv_st(src, "rr", &m, false, &st, &e) == 0 && st.keyslots == BS_RECV_KEYSLOTS_KEPT &&
           strcmp(st.keyslots_shared_with, "rr") != 0,
       "received into rr in the origin pool: slots kept (shared with %s)",
       st.keyslots_shared_with);
    mfree(&m);
    ok(slots_hash(src, "v") == vs && slots_hash(src, "rr") == vs,
       "v's key record is unchanged");
    ok(!opens(src, "v", NULL, "local to the copy only") && opens(src, "v", rawkey3, NULL),
       "the copy's local key does not open v; v's own key does");
    ok(key_load(src, "v", NULL, pass2) == 0 && hash_of(src, "rr@i") == hash_of(src, "v@i"),
       "rr@i == v@i");

    /* two copies of the same key in one pool share one key record: neither
     * stream rewrites the other's slots; once the other copy is gone, the
     * slots follow again */
    ok(do_send(src, "v@i", NULL, false, true, NULL, &m, &e) == 0 &&
           do_recv_st(dst, "r2", &m, false, &st, &e) == 0,
       "a second raw copy r2 in the receiving pool: %s", e.msg);
    mfree(&m);
    ok(st.keyslots == BS_RECV_KEYSLOTS_KEPT && strncmp(st.keyslots_shared_with, "r", 1) == 0,
       "it shares r's key record, whose slots (with the copy's local key) it keeps (%s)",
       st.keyslots_shared_with);
    const char pass3[] = "a third passphrase";
    struct bs_key p3 = { .format = BS_KEYFORMAT_PASSPHRASE, .data = pass3, .len = strlen(pass3),
                         .kdf = fast_kdf };
    ok(bs_key_add(src, "v", &p3, -1, &e) >= 0 && write_blocks(src, "v", 300, 5, 2) == 0 &&
           snap(src, "v@j") == 0 && do_send(src, "v@j", "@i", false, true, NULL, &m, &e) == 0,
       "source: a third passphrase added, v@j, raw -i @i v@j");
    before = slots_hash(dst, "r");
    ok(do_recv_st(dst, "r", &m, false, &st, &e) == 0 && st.keyslots == BS_RECV_KEYSLOTS_KEPT &&
           strncmp(st.keyslots_shared_with, "r2", 2) == 0 && slots_hash(dst, "r") == before,
       "into r: received, slots kept (shared with %s)", st.keyslots_shared_with);
    ok(!opens(dst, "r", NULL, pass3), "the third passphrase does not open r");
    ok(bs_vol_destroy_ex(dst, "r2", BS_DESTROY_RECURSIVE, &e) == 0 &&
           bs_snap_destroy(dst, "r@j", 0, &e) == 0 && bs_vol_rollback(dst, "r@i", 0, &e) == 0,
       "r2 destroyed, r back at @i: %s", e.msg);
    ok(do_recv_st(dst, "r", &m, false, &st, &e) == 0 && st.keyslots == BS_RECV_KEYSLOTS_UPDATED &&
           slots_hash(dst, "r") == slots_hash(src, "v"),
       "the same stream again: r's slots follow the source");
    ok(opens(dst, "r", NULL, pass3), "the third passphrase opens r");
    mfree(&m);

    ok(do_send(src, "v@i", "@g", false, true, NULL, &m, &e) == 0, "raw -i @g v@i");
    test_crash_follow(&full, &m, rawkey3, h_g, hash_of(src, "v@i"));
    mfree(&m);
    mfree(&full);
}

static void test_local_aad(void)
{
    struct berr e = {0};
    struct mstream m = {0};
    blk_crypt_test_local_aad(true);
    struct bs_vol_props vp;
    bs_vol_props_init(src, &vp);
    snprintf(vp.name, sizeof vp.name, "old");
    vp.volsize = VOLSIZE;
    vp.volblocksize = BS;
    vp.encrypted = true;
    vp.keyformat = BS_KEYFORMAT_RAW;
    snprintf(vp.keylocation, sizeof vp.keylocation, "%s", keyurl);
    ok(bs_vol_create(src, &vp, false, &e) == 0 && write_blocks(src, "old", 0, 64, 2) == 0 &&
           snap(src, "old@o") == 0,
       "a volume written with the old pool-local AAD");
    blk_crypt_test_local_aad(false);
    uint64_t h = hash_of(src, "old@o");
    /* drop the cache: read from the device */
    const char *f = tmp_path("src.img");
    bs_pool_export(src, false, &e);
    const char *v[] = { f };
    src = NULL;
    ok(bs_pool_import(v, 1, NULL, &src, &e) == 0, "source re-imported: %s", e.msg);
    ok(!locked(src, "old@o") && hash_of(src, "old@o") == h && h != 1,
       "old-AAD blocks still read back (key auto-loaded from its file)");
    ok(do_send(src, "old@o", NULL, false, true, NULL, &m, &e) == -ENOTSUP &&
           strstr(e.msg, "older berth"),
       "a raw send refuses them: %s", e.msg);
    mfree(&m);
    /* rewritten with the portable AAD, the volume raw-sends */
    ok(write_blocks(src, "old", 0, 64, 2) == 0 && snap(src, "old@n") == 0, "rewritten");
    ok(do_send(src, "old@n", NULL, false, true, NULL, &m, &e) == 0 &&
           do_recv("o2", &m, false, &e) == 0 && key_load(dst, "o2", keyurl, NULL) == 0 &&
           same("old@n", "o2@n"),
       "then a raw round trip works");
    mfree(&m);
    ok(do_send(src, "old@n", NULL, false, false, NULL, &m, &e) == 0, "a plain send of it too");
    mfree(&m);
}

/* The key record's AAD version byte (FORMAT.md section 10): written as 2,
 * 0 (older pools) still read, anything else refused. */
static void test_key_record(void)
{
    pthread_mutex_lock(&dst->lock);
    struct ds *d = ds_find(dst, "r");
    struct mos_key k = d->key->rec;
    pthread_mutex_unlock(&dst->lock);
    size_t n = mos_key_len(&k);
    uint8_t *b = malloc(n);
    struct mos_key back;
    mos_key_encode(&k, b);
    ok(b[20] == 2 && mos_key_decode(b, (uint32_t)n, &back) == 0 && back.guid == k.guid,
       "a key record is written with AAD version 2 and reads back");
    b[20] = 0;
    ok(mos_key_decode(b, (uint32_t)n, &back) == 0, "one from before portable AADs (0) reads");
    b[20] = 1;
    ok(mos_key_decode(b, (uint32_t)n, &back) == -EILSEQ, "AAD version 1 in a key record: refused");
    b[20] = 2;
    b[22] = 1;
    ok(mos_key_decode(b, (uint32_t)n, &back) == -EILSEQ, "its reserved bytes must stay zero");
    free(b);
}

/* ---- error paths of raw receive and key load (heap corruption hunt) ----
 * A glibc "corrupted size vs. prev_size" was seen once in this test in an
 * error path (a raw-received volume whose key load failed root-MAC
 * verification).  This drives every such path, each followed by a retry
 * and a re-import, so ASan, MALLOC_CHECK_ and valgrind see them all. */

static const uint8_t errkey[32] = "eeeeeeeeeeeeeeeeffffffffffffffff";

/* Offset of the n-th record of `type` in m (0: none). */
static size_t rec_at(const struct mstream *m, int type, int n)
{
    struct stream_parser ps;
    stream_parser_init(&ps);
    size_t pos = 0, found = 0;
    while (pos < m->len) {
        long plen = stream_parse_hdr(&ps, m->b + pos, NULL);
        struct stream_rec sr;
        if (plen < 0 ||
            stream_parse_rec(&ps, m->b + pos, STREAM_HDR_SIZE + (size_t)plen, &sr, NULL) < 0)
            break;
        if ((int)sr.type == type && n-- == 0) {
            found = pos;
            break;
        }
        pos += STREAM_HDR_SIZE + (size_t)plen;
    }
    stream_parser_free(&ps);
    return found;
}

/* A root MAC that is not the snapshot's (the kind stays SAUTH_ROOT_MAC). */
static void forge_mac(struct stream_rec *rec, uint8_t *blk)
{
    (void)blk;
    if (rec->type == SREC_CRYPT)
        rec->u.crypt.auth[5] ^= 0x41;
}

static int load_raw(bs_pool *p, const char *vol, const uint8_t *k, struct berr *e)
{
    memset(e, 0, sizeof *e);
    struct bs_key bk = { .format = BS_KEYFORMAT_RAW, .data = k, .len = 32 };
    return bs_key_load(p, vol, &bk, e);
}

static bool no_pending(bs_pool *p, const char *vol)
{
    char tok[STREAM_TOKEN_MAX];
    return bs_recv_token(p, vol, tok, sizeof tok, NULL) == -ENOENT;
}

static void reimport_dst(void)
{
    struct berr e = {0};
    const char *f = tmp_path("dst.img");
    bs_pool_export(dst, false, &e);
    const char *v[] = { f };
    dst = NULL;
    ok(bs_pool_import(v, 1, NULL, &dst, &e) == 0, "receiver re-imported: %s", e.msg);
}

static void test_error_paths(void)
{
    struct berr e = {0};
    struct bs_vol_props vp;
    bs_vol_props_init(src, &vp);
    snprintf(vp.name, sizeof vp.name, "w");
    vp.volsize = VOLSIZE;
    vp.volblocksize = BS;
    vp.encrypted = true;
    vp.keyformat = BS_KEYFORMAT_RAW;
    vp.key = errkey;
    vp.keylen = sizeof errkey;
    ok(bs_vol_create(src, &vp, false, &e) == 0, "encrypted source w: %s", e.msg);
    ok(write_blocks(src, "w", 0, 40, 2) == 0 && write_blocks(src, "w", 40, 20, 1) == 0 &&
           snap(src, "w@1") == 0 && write_blocks(src, "w", 10, 15, 2) == 0 &&
           write_blocks(src, "w", 50, 5, 0) == 0 && snap(src, "w@2") == 0,
       "w@1, w@2");
    ok(bs_key_unload(src, "w", &e) == 0, "w locked: %s", e.msg);
    struct mstream f = {0}, i = {0}, t = {0};
    ok(do_send(src, "w@1", NULL, false, true, NULL, &f, &e) == 0 &&
           do_send(src, "w@2", "@1", false, true, NULL, &i, &e) == 0,
       "raw full w@1 and raw -i @1 w@2");
    size_t fcrypt = rec_at(&f, SREC_CRYPT, 0), fdata = rec_at(&f, SREC_DATA, 7);
    size_t icrypt = rec_at(&i, SREC_CRYPT, 0), idata = rec_at(&i, SREC_DATA, 3);
    ok(fcrypt && fdata && icrypt && idata, "records found (CRYPT %zu, DATA %zu; %zu, %zu)",
       fcrypt, fdata, icrypt, idata);

    /* a full raw receive refused at each stage: nothing is left behind */
    f.b[fcrypt + STREAM_HDR_SIZE + 40] ^= 0x08;
    ok(do_recv("x", &f, false, &e) == -EILSEQ && no_pending(dst, "x"),
       "a damaged CRYPT record: %s", e.msg);
    f.b[fcrypt + STREAM_HDR_SIZE + 40] ^= 0x08;
    patch_auth = true;
    int r = reencode(&f, &t, NULL);
    patch_auth = false;
    ok(r == 0 && do_recv("x", &t, false, &e) == -EILSEQ && no_pending(dst, "x"),
       "an unknown MAC kind: %s", e.msg);
    mfree(&t);
    f.limit = fdata + STREAM_HDR_SIZE + 20;
    ok(do_recv("x", &f, false, &e) == -EPIPE && no_pending(dst, "x") && nsnaps(dst, "x") == 0,
       "truncated inside a DATA record: %s", e.msg);
    ok(do_recv("x", &f, true, &e) == -EPIPE && !no_pending(dst, "x"),
       "the same, resumable: the partial receive is kept");
    reimport_dst();
    ok(bs_key_unload(dst, "x", &e) < 0 && load_raw(dst, "x", errkey, &e) == -ENOENT,
       "no key calls on a pending receive: %s", e.msg);
    memset(&e, 0, sizeof e);
    ok(bs_recv_abort(dst, "x", &e) == 0 && no_pending(dst, "x"), "aborted: %s", e.msg);
    f.limit = 0;

    /* a root MAC that is not the snapshot's: received locked (nothing can
     * tell), then every key load fails authentication, also after an import */
    ok(reencode(&f, &t, forge_mac) == 0, "root MAC forged, checksums fixed up");
    ok(do_recv("x", &t, false, &e) == 0 && locked(dst, "x"), "received locked: %s", e.msg);
    for (int k = 0; k < 3; k++) {
        ok(load_raw(dst, "x", errkey, &e) == -EACCES && strstr(e.msg, "authentication"),
           "the right key fails root-MAC verification (%d): %s", k, e.msg);
        ok(load_raw(dst, "x", rawkey2, &e) == -EACCES && locked(dst, "x"),
           "a wrong key: %s", e.msg);
        ok(bs_key_unload(dst, "x", &e) == -ENOENT, "nothing to unload");
    }
    struct bs_key ek = { .format = BS_KEYFORMAT_RAW, .data = errkey, .len = 32 };
    memset(&e, 0, sizeof e);
    ok(bs_key_load_all(dst, &ek, &e) == 0 && e.msg[0] && locked(dst, "x"),
       "load-all with the key loads nothing: %s", e.msg);
    reimport_dst();
    ok(load_raw(dst, "x", errkey, &e) == -EACCES && locked(dst, "x"),
       "after the import too: %s", e.msg);
    /* an incremental onto it is received (locked) but cannot fix it */
    ok(do_recv("x", &i, false, &e) == 0 && nsnaps(dst, "x") == 2 &&
           load_raw(dst, "x", errkey, &e) == -EACCES,
       "the genuine incremental on top still fails at x@1: %s", e.msg);
    memset(&e, 0, sizeof e);
    ok(bs_vol_destroy_ex(dst, "x", BS_DESTROY_RECURSIVE, &e) == 0, "destroy x: %s", e.msg);
    mfree(&t);

    /* the genuine stream still applies after all that */
    ok(do_recv("x", &f, false, &e) == 0, "the genuine full stream: %s", e.msg);
    ok(load_raw(dst, "x", rawkey2, &e) == -EACCES, "a wrong key on the raw copy: %s", e.msg);
    ok(load_raw(dst, "x", errkey, &e) == 0, "the right one: %s", e.msg);
    ok(bs_key_unload(dst, "x", &e) == 0, "unloaded again");

    /* an incremental raw receive refused at each stage */
    ok(reencode(&i, &t, other_key) == 0 && do_recv("x", &t, false, &e) == -EXDEV &&
           no_pending(dst, "x"),
       "another key guid: %s", e.msg);
    mfree(&t);
    i.b[icrypt + STREAM_HDR_SIZE + 40] ^= 0x08;
    ok(do_recv("x", &i, false, &e) == -EILSEQ && no_pending(dst, "x"),
       "a damaged CRYPT record: %s", e.msg);
    i.b[icrypt + STREAM_HDR_SIZE + 40] ^= 0x08;
    patch_auth = true;
    r = reencode(&i, &t, NULL);
    patch_auth = false;
    ok(r == 0 && do_recv("x", &t, false, &e) == -EILSEQ && no_pending(dst, "x"),
       "an unknown MAC kind: %s", e.msg);
    mfree(&t);
    i.limit = idata + STREAM_HDR_SIZE + 20;
    ok(do_recv("x", &i, false, &e) == -EPIPE && no_pending(dst, "x"),
       "truncated inside a DATA record: %s", e.msg);
    ok(do_recv("x", &i, true, &e) == -EPIPE && !no_pending(dst, "x"), "resumable: kept");
    i.limit = 0;
    reimport_dst();
    ok(do_recv("x", &i, false, &e) == -EBUSY && !no_pending(dst, "x"), "a new receive while one is pending: %s", e.msg);
    memset(&e, 0, sizeof e);
    ok(bs_recv_abort(dst, "x", &e) == 0, "aborted");
    /* with the key loaded, a forged root MAC is refused at the end */
    ok(load_raw(dst, "x", errkey, &e) == 0, "key loaded: %s", e.msg);
    ok(reencode(&i, &t, forge_mac) == 0 && do_recv("x", &t, false, &e) < 0 &&
           strstr(e.msg, "root MAC") && no_pending(dst, "x") && nsnaps(dst, "x") == 1,
       "a forged root MAC with the key loaded: %s", e.msg);
    mfree(&t);
    /* what a skipped do_send leaves (mfree): an empty stream, refused */
    ok(t.b == NULL && do_recv("x", &t, false, &e) == -EPIPE && strstr(e.msg, "empty"),
       "a stream freed by mfree reads as empty: %s", e.msg);
    ok(do_recv("x", &i, false, &e) == 0 && nsnaps(dst, "x") == 2, "the genuine one: %s", e.msg);
    reimport_dst();
    ok(load_raw(dst, "x", rawkey2, &e) == -EACCES && load_raw(dst, "x", errkey, &e) == 0,
       "after the import: the wrong key refused, the right one loads");
    ok(load_raw(src, "w", errkey, &e) == 0 && same("w@1", "x@1") && same("w@2", "x@2") &&
           same("w@2", "x"),
       "x@1, x@2 and x read back as w's");
    mfree(&f);
    mfree(&i);
}

int main(void)
{
    /* every cbuf back to malloc instead of the idle lists (as in ASan
     * builds): MALLOC_CHECK_ and valgrind then see a buffer's misuse */
    if (getenv("BERTH_TEST_NO_BUF_POOL"))
        cbuf_pool_set_limit(0);
    const char *kf = tmp_path("k.key");
    FILE *fp = fopen(kf, "w");
    fwrite(rawkey, 1, 32, fp);
    fclose(fp);
    snprintf(keyurl, sizeof keyurl, "file://%s", kf);
    struct berr e = {0};
    struct bs_pool_opts o;
    bs_pool_opts_init(&o);
    o.force = true;
    o.compression = BS_COMPRESS_LZ4;
    const char *a[] = { tmp_path("src.img") };
    const char *b[] = { tmp_path("dst.img") };
    if (bs_pool_create("srcp", a, 1, 64 * MiB, &o, &src, &e) < 0 ||
        bs_pool_create("dstp", b, 1, 64 * MiB, &o, &dst, &e) < 0) {
        diag("pool create: %s", e.msg);
        return 1;
    }
    setup_source();
    test_round_trip();
    test_refusals();
    test_key_record();
    test_resume();
    test_key_follow();
    test_local_aad();
    test_error_paths();
    bs_pool_close(src);
    bs_pool_close(dst);
    tmp_cleanup();
    return done_testing();
}
