/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Send/receive between two pools (src/store/send.c, recv.c): a full stream
 * and chains of incrementals (-i and -I) reproduce every snapshot byte for
 * byte, holes stay holes, compressed blocks travel compressed, incrementals
 * read only what changed; flipped bytes, truncations, a wrong base and a
 * full stream onto an existing volume are refused and leave the target as
 * it was; an interrupted resumable receive resumes from its token and ends
 * identical; a clone is sent incrementally from its origin. */
#include <string.h>
#include <xxhash.h>

#include "common/util.h"
#include "store/pool_impl.h"
#include "store/recv.h"
#include "store/stream.h"
#include "store_test.h"
#include "tap.h"

#define MiB (1ULL << 20)
#define BS 4096u
#define VOLSIZE (4 * MiB)
#define NB (VOLSIZE / BS)

static bs_pool *src, *dst;
static uint64_t seed = 42;

/* ---- memory streams ---- */
struct mstream {
    uint8_t *b;
    size_t len, cap;
    size_t pos, limit; /* reader: position and where the "connection drops" */
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
    if (n > 7777)
        n = 7777; /* short reads, as from a pipe */
    memcpy(buf, m->b + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static int do_send(const char *snap, const char *from, bool inter, const char *token,
                   struct mstream *m, struct bs_send_stats *st)
{
    struct berr e = {0};
    memset(m, 0, sizeof *m);
    struct bs_send_opts o = { .from = from, .intermediates = inter, .resume_token = token };
    int r = bs_send(src, snap, &o, mwrite, m, st, &e);
    if (r < 0)
        diag("send %s: %s", snap, e.msg);
    return r;
}

static int do_recv(const char *vol, struct mstream *m, bool resumable, bool force, struct berr *e)
{
    m->pos = 0;
    memset(e, 0, sizeof *e);
    struct bs_recv_opts o = { .resumable = resumable, .force = force };
    struct bs_recv_stats st;
    return bs_recv(dst, vol, &o, mread, m, &st, e);
}

/* ---- contents ---- */

static int write_blocks(const char *vol, uint64_t first, uint64_t n, int kind)
{
    struct berr e = {0};
    bs_vol *v;
    if (bs_vol_open(src, vol, &v, &e) < 0)
        return -1;
    uint8_t b[BS];
    int r = 0;
    for (uint64_t i = first; i < first + n && r == 0; i++) {
        if (kind == 0) { /* zeros: a hole */
            r = bs_vol_zero(v, BS, i * BS, 0);
            continue;
        }
        if (kind == 1) /* compressible */
            memset(b, (int)(xrand(&seed) & 0xff) | 1, BS), b[i % BS] = (uint8_t)i;
        else
            random_bytes(b, BS, &seed);
        r = bs_vol_pwrite(v, b, BS, i * BS, 0);
    }
    bs_vol_close(v);
    return r;
}

static int snap(const char *name)
{
    struct berr e = {0};
    const char *n[] = { name };
    int r = bs_snap_create(src, n, 1, &e);
    if (r < 0)
        diag("snapshot %s: %s", name, e.msg);
    return r;
}

/* Contents and hole map of a volume or snapshot: XXH3 of the bytes, and a
 * hash of which blocks are holes. */
struct image {
    uint64_t data, holes;
    uint64_t nholes;
};

static int hole_cb(uint64_t off, uint64_t len, unsigned flags, void *opaque)
{
    struct image *im = opaque;
    if (flags & BS_EXTENT_HOLE) {
        im->holes = XXH3_64bits_withSeed(&off, sizeof off, im->holes ^ len);
        im->nholes += len / BS;
    }
    return 0;
}

static struct image image_of(bs_pool *p, const char *name)
{
    struct image im = {0};
    struct berr e = {0};
    bs_vol *v;
    if (bs_vol_open(p, name, &v, &e) < 0) {
        im.data = 1; /* never equal to a real image's */
        return im;
    }
    uint64_t size = bs_vol_size(v); /* volumes may have been resized */
    uint8_t *buf = malloc(size);
    if (bs_vol_pread(v, buf, size, 0) == 0)
        im.data = XXH3_64bits(buf, size) ^ size;
    free(buf);
    bs_vol_block_status(v, size, 0, hole_cb, &im);
    bs_vol_close(v);
    return im;
}

static bool same_image(const char *a, const char *b)
{
    struct image x = image_of(src, a), y = image_of(dst, b);
    if (x.data != y.data || x.holes != y.holes)
        diag("%s vs %s: data %s, holes %llu vs %llu", a, b, x.data == y.data ? "same" : "DIFFER",
             (unsigned long long)x.nholes, (unsigned long long)y.nholes);
    return x.data == y.data && x.holes == y.holes && x.nholes > 0;
}

/* What must not change when a receive fails. */
struct target_state {
    struct image head;
    char snaps[1024];
    int pending;
};

static int list_cb(const struct bs_snap_props *sp, void *opaque)
{
    char *s = opaque;
    size_t l = strlen(s);
    snprintf(s + l, 1024 - l, "%s:%llu,", sp->name, (unsigned long long)sp->guid);
    return 0;
}

static struct target_state target_of(const char *vol)
{
    struct target_state t = {0};
    t.head = image_of(dst, vol);
    bs_snap_list(dst, vol, list_cb, t.snaps, NULL);
    char tok[STREAM_TOKEN_MAX];
    t.pending = bs_recv_token(dst, vol, tok, sizeof tok, NULL);
    return t;
}

static bool same_target(const struct target_state *a, const struct target_state *b)
{
    return a->head.data == b->head.data && a->head.holes == b->head.holes &&
           strcmp(a->snaps, b->snaps) == 0 && a->pending == b->pending;
}

/* Count DATA records that carry compressed bytes. */
static uint64_t compressed_records(const struct mstream *m)
{
    struct stream_parser ps;
    stream_parser_init(&ps);
    uint64_t n = 0;
    size_t off = 0;
    while (ps.phase != SPHASE_DONE && m->len - off >= STREAM_HDR_SIZE) {
        long pl = stream_parse_hdr(&ps, m->b + off, NULL);
        struct stream_rec rec;
        if (pl < 0 || stream_parse_rec(&ps, m->b + off, STREAM_HDR_SIZE + (size_t)pl, &rec,
                                       NULL) < 0)
            break;
        n += rec.type == SREC_DATA && rec.u.data.comp != BS_COMPRESS_OFF &&
             rec.u.data.psize < rec.u.data.lsize;
        off += STREAM_HDR_SIZE + (size_t)pl;
    }
    stream_parser_free(&ps);
    return n;
}

static void test_chain(void)
{
    struct mstream m;
    struct bs_send_stats st, full_st;
    struct berr e;
    /* s1: compressible, random and never-written blocks */
    ok(write_blocks("v", 0, 200, 1) == 0 && write_blocks("v", 300, 300, 2) == 0 &&
           write_blocks("v", 900, 50, 1) == 0 && snap("v@s1") == 0,
       "source v@s1");
    int r = do_send("v@s1", NULL, false, NULL, &m, &full_st);
    ok(r == 0, "full send of v@s1: %llu bytes", (unsigned long long)full_st.bytes_sent);
    ok(full_st.blocks == 550 && full_st.holes >= 2, "550 data records, %llu free records",
       (unsigned long long)full_st.holes);
    ok(compressed_records(&m) >= 200 && full_st.bytes_sent < 400 * BS,
       "compressible blocks travel compressed (%llu compressed records)",
       (unsigned long long)compressed_records(&m));
    r = do_recv("w", &m, false, false, &e);
    ok(r == 0, "received into w: %s", e.msg);
    ok(same_image("v@s1", "w@s1") && same_image("v@s1", "w"), "w@s1 == v@s1, holes included");
    struct bs_snap_props a, b;
    bs_snap_get(src, "v@s1", &a, NULL);
    bs_snap_get(dst, "w@s1", &b, NULL);
    ok(a.guid == b.guid, "the received snapshot keeps the guid");
    free(m.b);

    /* s2: overwrite, zero (data -> hole), trim a range, write into a hole */
    ok(write_blocks("v", 10, 20, 2) == 0 && write_blocks("v", 310, 40, 0) == 0 &&
           write_blocks("v", 700, 10, 2) == 0 && snap("v@s2") == 0,
       "source v@s2");
    r = do_send("v@s2", "@s1", false, NULL, &m, &st);
    ok(r == 0, "incremental s1 -> s2");
    ok(st.blocks == 30 && st.bytes_read < full_st.bytes_read / 4,
       "it reads only changed blocks: %llu data records, %llu bytes read (full: %llu)",
       (unsigned long long)st.blocks, (unsigned long long)st.bytes_read,
       (unsigned long long)full_st.bytes_read);
    ok(do_recv("w", &m, false, false, &e) == 0, "received: %s", e.msg);
    ok(same_image("v@s2", "w@s2") && same_image("v@s1", "w@s1"), "w@s2 == v@s2, w@s1 intact");
    free(m.b);

    /* s3, s4 in one -I stream */
    ok(write_blocks("v", 0, 5, 0) == 0 && snap("v@s3") == 0 && write_blocks("v", 310, 5, 1) == 0 &&
           write_blocks("v", 1000, 24, 2) == 0 && snap("v@s4") == 0,
       "source v@s3, v@s4");
    ok(do_send("v@s4", "v@s2", true, NULL, &m, &st) == 0, "-I s2 -> s4");
    ok(do_recv("w", &m, false, false, &e) == 0, "received: %s", e.msg);
    ok(same_image("v@s3", "w@s3") && same_image("v@s4", "w@s4") && same_image("v@s4", "w"),
       "w@s3 and w@s4 reproduced");
    free(m.b);
}

static void test_rejects(void)
{
    struct mstream m, bad;
    struct berr e;
    struct target_state before = target_of("w"), after;
    ok(before.pending == -ENOENT, "no receive pending");
    ok(write_blocks("v", 100, 30, 2) == 0 && write_blocks("v", 400, 20, 0) == 0 &&
           snap("v@s5") == 0,
       "source v@s5");
    ok(do_send("v@s5", "@s4", false, NULL, &m, NULL) == 0, "incremental s4 -> s5");
    bad.b = malloc(m.len);
    /* flipped bytes: in BEGIN, in a DATA header, in block bytes, in END */
    const size_t at[] = { 3, 60, STREAM_BEGIN_MAX + 10, m.len / 2, m.len - 5 };
    bool all = true, msgs = true;
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        memcpy(bad.b, m.b, m.len);
        bad.len = m.len;
        bad.limit = 0;
        bad.b[at[i]] ^= 0x10;
        int r = do_recv("w", &bad, false, false, &e);
        after = target_of("w");
        all &= r == -EILSEQ && same_target(&before, &after);
        msgs &= strstr(e.msg, "corrupt") || strstr(e.msg, "not a berth");
        if (r != -EILSEQ || !same_target(&before, &after))
            diag("flip at %zu: r=%d %s", at[i], r, e.msg);
    }
    ok(all, "a flipped byte anywhere is refused, target unchanged");
    ok(msgs, "with a message saying the stream is corrupt (%s)", e.msg);
    /* truncations */
    all = true;
    const size_t cut[] = { 0, 10, STREAM_HDR_SIZE, m.len / 3, m.len - 1 };
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        memcpy(bad.b, m.b, m.len);
        bad.len = cut[i];
        bad.limit = 0;
        int r = do_recv("w", &bad, false, false, &e);
        after = target_of("w");
        all &= r == -EPIPE && same_target(&before, &after);
        if (r != -EPIPE)
            diag("cut at %zu: r=%d %s", cut[i], r, e.msg);
    }
    ok(all, "every truncation is refused, target unchanged (%s)", e.msg);
    /* wrong base: s2 -> s5 (w's latest is s4) */
    struct mstream old;
    ok(do_send("v@s5", "@s2", false, NULL, &old, NULL) == 0, "stream s2 -> s5");
    int r = do_recv("w", &old, false, false, &e);
    after = target_of("w");
    ok(r == -EXDEV && same_target(&before, &after) && strstr(e.msg, "w@s4"),
       "an older base refused, target unchanged: %s", e.msg);
    free(old.b);
    /* a base w never had: another volume's snapshots */
    struct bs_vol_props vp;
    bs_vol_props_init(src, &vp);
    snprintf(vp.name, sizeof vp.name, "u");
    vp.volsize = VOLSIZE;
    vp.volblocksize = BS;
    ok(bs_vol_create(src, &vp, false, &e) == 0 && write_blocks("u", 0, 3, 2) == 0 &&
           snap("u@a") == 0 && write_blocks("u", 3, 3, 2) == 0 && snap("u@b") == 0,
       "another volume u with u@a, u@b");
    ok(do_send("u@b", "@a", false, NULL, &old, NULL) == 0, "stream u@a -> u@b");
    r = do_recv("w", &old, false, false, &e);
    after = target_of("w");
    ok(r == -EXDEV && same_target(&before, &after) && strstr(e.msg, "wrong base"),
       "a foreign base refused, target unchanged: %s", e.msg);
    free(old.b);
    /* a full stream onto an existing volume */
    ok(do_send("v@s1", NULL, false, NULL, &old, NULL) == 0, "full stream of s1");
    r = do_recv("w", &old, false, false, &e);
    after = target_of("w");
    ok(r == -EEXIST && same_target(&before, &after), "full stream onto w refused: %s", e.msg);
    free(old.b);
    /* the intact stream still applies */
    ok(do_recv("w", &m, false, false, &e) == 0 && same_image("v@s5", "w@s5"),
       "the intact stream applies afterwards: %s", e.msg);
    /* and not twice */
    r = do_recv("w", &m, false, false, &e);
    ok(r < 0, "the same stream again is refused: %s", e.msg);
    free(m.b);
    free(bad.b);
}

static void test_resume(void)
{
    struct mstream m, m2;
    struct berr e;
    recv_set_checkpoint_bytes(64 << 10);
    ok(write_blocks("v", 0, 600, 2) == 0 && write_blocks("v", 650, 20, 0) == 0 &&
           snap("v@s6") == 0,
       "source v@s6 (600 changed blocks)");
    int r = do_send("v@s6", "@s5", false, NULL, &m, NULL);
    ok(r == 0, "stream s5 -> s6: %zu bytes", m.len);
    struct target_state before = target_of("w");
    m.limit = m.len * 6 / 10;
    r = do_recv("w", &m, true, false, &e);
    ok(r == -EPIPE && strstr(e.msg, "resume"), "interrupted at 60%%: %s", e.msg);
    struct target_state mid = target_of("w");
    ok(mid.head.data == before.head.data && strcmp(mid.snaps, before.snaps) == 0,
       "w itself is untouched while the receive is pending");
    char tok[STREAM_TOKEN_MAX];
    struct stream_token t;
    ok(bs_recv_token(dst, "w", tok, sizeof tok, &e) == 0 && stream_token_decode(tok, &t, NULL) == 0,
       "token: %s", tok);
    ok(t.resume_blk > 100 && t.resume_blk < NB, "it resumes at block %llu",
       (unsigned long long)t.resume_blk);
    /* a fresh (non-resumed) stream meets the pending receive */
    m.limit = 0;
    r = do_recv("w", &m, true, false, &e);
    ok(r == -EBUSY && strstr(e.msg, "pending"), "a new stream while one is pending: %s", e.msg);
    r = do_send("v@s6", "@s5", false, tok, &m2, NULL);
    ok(r == 0 && m2.len < m.len * 6 / 10, "resumed send: %zu bytes instead of %zu", m2.len,
       m.len);
    /* the resumed stream, itself interrupted once more */
    m2.limit = m2.len / 2;
    r = do_recv("w", &m2, true, false, &e);
    char tok2[STREAM_TOKEN_MAX];
    struct stream_token t2;
    bs_recv_token(dst, "w", tok2, sizeof tok2, NULL);
    stream_token_decode(tok2, &t2, NULL);
    ok(r == -EPIPE && t2.resume_blk >= t.resume_blk, "interrupted again (block %llu)",
       (unsigned long long)t2.resume_blk);
    if (t2.resume_blk != t.resume_blk) {
        m2.limit = 0;
        r = do_recv("w", &m2, true, false, &e);
        ok(r == -EINVAL && strstr(e.msg, "new token"), "a stale resumed stream: %s", e.msg);
    } else {
        ok(1, "no new resume point in the second attempt");
    }
    free(m2.b);
    ok(do_send("v@s6", "@s5", false, tok2, &m2, NULL) == 0, "send from the newer token");
    ok(do_recv("w", &m2, true, false, &e) == 0, "resumed receive completes: %s", e.msg);
    ok(same_image("v@s6", "w@s6") && same_image("v@s6", "w"), "w@s6 == v@s6");
    ok(bs_recv_token(dst, "w", tok, sizeof tok, NULL) == -ENOENT, "nothing pending afterwards");
    free(m.b);
    free(m2.b);

    /* a full resumable receive, interrupted, then aborted */
    ok(do_send("v@s6", NULL, false, NULL, &m, NULL) == 0, "full stream of s6");
    m.limit = m.len / 2;
    r = do_recv("x", &m, true, false, &e);
    struct bs_vol_props vp;
    ok(r == -EPIPE && bs_recv_token(dst, "x", tok, sizeof tok, NULL) == 0 &&
           bs_vol_get(dst, "x", &vp, NULL) == -ENOENT,
       "interrupted full receive: token kept, no volume x yet");
    memset(&e, 0, sizeof e);
    ok(bs_recv_abort(dst, "x", &e) == 0 && bs_recv_token(dst, "x", tok, sizeof tok, NULL) == -ENOENT,
       "aborted: %s", e.msg);
    /* the same, then the receiving side crashes: the resume point that
     * survives is one whose blocks are on disk */
    r = do_recv("x", &m, true, false, &e);
    free(m.b);
    pool_abandon(dst);
    memset(&e, 0, sizeof e);
    const char *pb[] = { tmp_path("dst.img") };
    ok(r == -EPIPE && bs_pool_import(pb, 1, NULL, &dst, &e) == 0,
       "interrupted again, target pool crashed and re-imported: %s", e.msg);
    ok(bs_recv_token(dst, "x", tok, sizeof tok, &e) == 0, "the token survives the crash");
    ok(do_send("v@s6", NULL, false, tok, &m, NULL) == 0 && do_recv("x", &m, true, false, &e) == 0 &&
           same_image("v@s6", "x@s6"),
       "interrupted full receive resumed after the crash: x@s6 == v@s6 %s", e.msg);
    free(m.b);
    /* not resumable: nothing is kept */
    ok(do_send("v@s6", NULL, false, NULL, &m, NULL) == 0, "full stream again");
    m.limit = m.len / 2;
    r = do_recv("y", &m, false, false, &e);
    ok(r == -EPIPE && bs_recv_token(dst, "y", tok, sizeof tok, NULL) == -ENOENT,
       "a non-resumable interrupted receive leaves nothing");
    free(m.b);
    recv_set_checkpoint_bytes(0);
}

static void test_force_and_clone(void)
{
    struct mstream m;
    struct berr e = {0};
    /* the target was written to since its latest snapshot */
    bs_vol *v;
    uint8_t b[BS];
    memset(b, 0x5a, BS);
    ok(bs_vol_open(dst, "w", &v, &e) == 0 && bs_vol_pwrite(v, b, BS, 0, 0) == 0, "w modified");
    bs_vol_close(v);
    bs_pool_sync(dst, NULL);
    ok(write_blocks("v", 5, 5, 2) == 0 && snap("v@s7") == 0, "source v@s7");
    int r = do_send("v@s7", "@s6", false, NULL, &m, NULL);
    ok(r == 0, "stream s6 -> s7");
    r = do_recv("w", &m, false, false, &e);
    ok(r == -EBUSY, "refused without force: %s", e.msg);
    ok(do_recv("w", &m, false, true, &e) == 0 && same_image("v@s7", "w"),
       "with force the change is discarded and s7 received: %s", e.msg);
    free(m.b);
    /* a clone, sent incrementally from its origin */
    ok(bs_vol_clone(src, "v@s2", "c", NULL, &e) == 0 && write_blocks("c", 50, 10, 2) == 0 &&
           snap("c@c1") == 0,
       "clone c of v@s2, changed, c@c1: %s", e.msg);
    ok(do_send("v@s2", NULL, false, NULL, &m, NULL) == 0 && do_recv("z", &m, false, false, &e) == 0,
       "full v@s2 into z");
    free(m.b);
    struct bs_send_stats st;
    r = do_send("c@c1", "v@s2", false, NULL, &m, &st);
    ok(r == 0 && st.blocks == 10, "incremental v@s2 -> c@c1: %llu blocks",
       (unsigned long long)st.blocks);
    ok(do_recv("z", &m, false, false, &e) == 0 && same_image("c@c1", "z@c1"),
       "z@c1 == c@c1: %s", e.msg);
    free(m.b);
    /* an incremental across a grow and then a shrink of the source */
    ok(bs_vol_resize(src, "v", VOLSIZE * 2, false, &e) == 0 &&
           write_blocks("v", NB + 3, 4, 2) == 0 && snap("v@grown") == 0,
       "v grown to %u MiB, written past the old end", (unsigned)(VOLSIZE * 2 / MiB));
    ok(do_send("v@grown", "@s7", false, NULL, &m, NULL) == 0 &&
           do_recv("w", &m, false, false, &e) == 0 && same_image("v@grown", "w@grown"),
       "incremental across a grow: %s", e.msg);
    free(m.b);
    ok(bs_vol_resize(src, "v", VOLSIZE / 2, true, &e) == 0 && write_blocks("v", 1, 2, 0) == 0 &&
           snap("v@shrunk") == 0,
       "v shrunk (and two blocks zeroed)");
    ok(do_send("v@shrunk", "@grown", false, NULL, &m, NULL) == 0 &&
           do_recv("w", &m, false, false, &e) == 0 && same_image("v@shrunk", "w@shrunk"),
       "incremental across a shrink: %s", e.msg);
    free(m.b);
    /* not an ancestor */
    memset(&e, 0, sizeof e);
    struct bs_send_opts o = { .from = "v@s5" };
    ok(bs_send(src, "c@c1", &o, mwrite, &m, NULL, &e) == -EXDEV, "v@s5 is no base of c@c1: %s",
       e.msg);
}

int main(void)
{
    struct berr e = {0};
    const char *pa[] = { tmp_path("src.img") }, *pb[] = { tmp_path("dst.img") };
    ok(bs_pool_create("a", pa, 1, 256 * MiB, NULL, &src, &e) == 0, "source pool: %s", e.msg);
    ok(bs_pool_create("b", pb, 1, 256 * MiB, NULL, &dst, &e) == 0, "target pool: %s", e.msg);
    struct bs_vol_props vp;
    bs_vol_props_init(src, &vp);
    snprintf(vp.name, sizeof vp.name, "v");
    vp.volsize = VOLSIZE;
    vp.volblocksize = BS;
    ok(bs_vol_create(src, &vp, false, &e) == 0, "volume v: %s", e.msg);
    test_chain();
    test_rejects();
    test_resume();
    test_force_and_clone();
    ok(bs_pool_check(src, &e) == 0, "source pool consistent: %s", e.msg);
    ok(bs_pool_check(dst, &e) == 0, "target pool consistent: %s", e.msg);
    bs_pool_close(src);
    bs_pool_close(dst);
    tmp_cleanup();
    return done_testing();
}
