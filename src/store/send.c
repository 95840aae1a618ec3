/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bs_send: a snapshot (or the change between two) as a stream
 * (docs/STREAM.md).
 *
 * A send is a list of sections, one per snapshot: one for a full or an
 * incremental (-i) send, one per snapshot after the base for -I.  Each
 * section walks the snapshot's tree with treediff, pruned by the base's
 * txg, and writes a DATA record per changed block (its stored bytes as they
 * are on disk, compressed or not) and a FREE record per run of blocks that
 * became holes.
 *
 * Invariants:
 *  - every snapshot a section reads stays open (bs_vol_open) while it is
 *    read, so it cannot be destroyed and its blocks stay where its tree
 *    says;
 *  - the base of an incremental is an ancestor of the sent snapshot
 *    (snap_is_ancestor): births compare only along one lineage;
 *  - a resumed send (token) writes the section the receiver was in from the
 *    token's block on, marked RESUMED, then any later sections whole;
 *  - a raw send never touches a key: it opens the snapshots locked or not
 *    (snap_open_raw), sends each block's stored ciphertext with its salt,
 *    IV and MAC, and the key record's wrapped slots, guid and fingerprint
 *    (CRYPT record); a block sealed with the pool-local AAD version 1
 *    cannot be authenticated elsewhere and stops the send (ENOTSUP). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/blkcrypt.h"
#include "store/dsauth.h"
#include "store/keyslot.h"
#include "store/pool_impl.h"
#include "store/snap.h"
#include "store/stream.h"
#include "store/treediff.h"

#define SEND_BUF (256u << 10) /* coalesce small records into larger writes */
/* Records found but not yet sent: their blocks are being read ahead while
 * the ones before them are sent, so scattered blocks do not cost one
 * device round trip each. */
#define SEND_AHEAD 1024
#define SEND_AHEAD_BYTES (32u << 20)

struct pending {
    struct blkptr bp;        /* a data block (count 0) */
    uint64_t blkid;
    uint64_t count;          /* > 0: a run of holes */
};

struct sender {
    const struct blkio *io;
    const struct ds *ds;     /* the snapshot being sent (its key decrypts) */
    bs_write_fn wr;
    void *opaque;
    struct stream_enc enc;
    uint8_t *out;            /* SEND_BUF bytes not yet written */
    size_t olen;
    uint8_t *blk;            /* one stored block */
    size_t blkcap;
    struct pending *q;       /* ring of SEND_AHEAD records in block order */
    size_t qhead, qlen;
    uint64_t qbytes;         /* stored bytes of the queued data blocks */
    struct bs_send_stats st;
    int werr;                /* a write failed (not a read) */
    uint64_t bad_blk;        /* the block whose read failed */
    bool raw;                /* send encrypted blocks as stored */
};

static int flush_out(struct sender *s)
{
    if (!s->olen)
        return 0;
    int r = s->wr(s->opaque, s->out, s->olen);
    s->olen = 0;
    if (r < 0)
        s->werr = r;
    return r;
}

static int emit(struct sender *s, const void *b, size_t n)
{
    s->st.bytes_sent += n;
    if (s->olen + n > SEND_BUF) {
        int r = flush_out(s);
        if (r < 0)
            return r;
    }
    if (n >= SEND_BUF) {
        int r = s->wr(s->opaque, b, n);
        if (r < 0)
            s->werr = r;
        return r;
    }
    memcpy(s->out + s->olen, b, n);
    s->olen += n;
    return 0;
}

static int send_data(struct sender *s, const struct blkptr *bp, uint64_t blkid)
{
    struct stream_data d = {
        .blkid = blkid, .lsize = bp->lsize, .psize = bp->psize, .comp = bp->comp,
        .bytes = s->blk, .raw = s->raw,
    };
    struct blk_sealed sb;
    int r = s->raw ? blk_sealed_of(bp, blkid, &sb) : 0;
    if (r == 0)
        r = blk_read_raw(s->io, bp, s->blk, s->blkcap);
    struct blk_crypt bc;
    if (r == 0 && !s->raw && (bp->flags & BP_FLAG_ENCRYPTED)) /* plain: decrypt, keep compressed */
        r = blk_unseal(s->io, bp, ds_blk_crypt(s->ds, blkid, &bc), s->blk);
    if (r < 0) {
        s->bad_blk = blkid;
        return r;
    }
    if (s->raw) {
        memcpy(d.salt, sb.salt, sizeof d.salt);
        memcpy(d.iv, sb.iv, sizeof d.iv);
        memcpy(d.mac, sb.mac, sizeof d.mac);
    }
    s->st.bytes_read += bp->psize;
    uint8_t pre[STREAM_RAWDATA_PREFIX];
    size_t n = stream_enc_data(&s->enc, &d, pre);
    s->st.blocks++;
    if ((r = emit(s, pre, n)) < 0)
        return r;
    return emit(s, s->blk, bp->psize);
}

/* The CRYPT record of a raw section of snapshot v: its key as stored. */
static int send_crypt(struct sender *s, bs_vol *v, const char *name, struct berr *err)
{
    struct mos_key k;
    if (snap_key_of(v, &k) < 0)
        return berr_set(err, EINVAL, "'%s' is not encrypted: send it without --raw", name);
    struct stream_crypt c = {
        .key_guid = k.guid, .suite = k.suite, .keyformat = k.keyformat, .aad_version = 2,
        .auth_type = SAUTH_ROOT_MAC,
    };
    /* the snapshot's root MAC: the receiver stores it, its key load checks it */
    if (ds_get_root_mac(v->pool, v->ds, c.auth) < 0)
        return berr_set(err, EINVAL, "'%s' is not encrypted: send it without --raw", name);
    memcpy(c.fingerprint, k.fingerprint, sizeof c.fingerprint);
    keyslots_encode(&k.slots, c.slots);
    uint8_t rec[STREAM_CRYPT_SIZE];
    size_t n = stream_enc_crypt(&s->enc, &c, rec);
    if (n == 0)
        return berr_set(err, EINVAL, "cannot describe the key of %s in a stream", name);
    int r = emit(s, rec, n);
    return r < 0 ? berr_errno(err, r, "writing the stream") : 0;
}

static int send_hole(struct sender *s, uint64_t blkid, uint64_t count)
{
    uint8_t rec[STREAM_FREE_SIZE];
    size_t n = stream_enc_hole(&s->enc, blkid, count, rec);
    s->st.holes++;
    return emit(s, rec, n);
}

static int send_oldest(struct sender *s)
{
    struct pending *e = &s->q[s->qhead];
    s->qhead = (s->qhead + 1) % SEND_AHEAD;
    s->qlen--;
    if (e->count)
        return send_hole(s, e->blkid, e->count);
    s->qbytes -= e->bp.psize;
    return send_data(s, &e->bp, e->blkid);
}

static int send_queued(struct sender *s)
{
    int r = 0;
    while (s->qlen && r == 0)
        r = send_oldest(s);
    return r;
}

/* Queue a record, sending the oldest ones while the window is full. */
static int enqueue(struct sender *s, const struct pending *e)
{
    uint32_t psize = e->count ? 0 : e->bp.psize;
    while (s->qlen == SEND_AHEAD || (s->qlen && s->qbytes + psize > SEND_AHEAD_BYTES)) {
        int r = send_oldest(s);
        if (r)
            return r;
    }
    s->q[(s->qhead + s->qlen) % SEND_AHEAD] = *e;
    s->qlen++;
    s->qbytes += psize;
    if (psize)
        blk_prefetch(s->io, &e->bp);
    return 0;
}

static int on_data(const struct blkptr *bp, uint64_t blkid, void *opaque)
{
    const struct pending e = { .bp = *bp, .blkid = blkid };
    return enqueue(opaque, &e);
}

static int on_hole(uint64_t blkid, uint64_t count, void *opaque)
{
    const struct pending e = { .blkid = blkid, .count = count };
    return enqueue(opaque, &e);
}

/* One section: snapshot `to` (named toname) relative to `from` (NULL:
 * full), from block resume_blk on. */
static int send_section(struct sender *s, bs_vol *tov, const char *toname,
                        const struct snap_view *to, const char *fromname,
                        const struct snap_view *from, uint32_t flags, uint64_t resume_blk,
                        struct berr *err)
{
    struct stream_begin b = {
        .flags = flags | (s->raw ? SBEGIN_RAW : 0), .toguid = to->guid,
        .fromguid = from ? from->guid : 0,
        .totxg = to->txg, .fromtxg = from ? from->txg : 0, .volsize = to->volsize,
        .volblocksize = to->volblocksize, .comp = to->comp, .comp_level = to->comp_level,
        .cksum = to->cksum, .creation = to->creation, .resume_blk = resume_blk,
    };
    snprintf(b.toname, sizeof b.toname, "%s", toname);
    if (from)
        snprintf(b.fromname, sizeof b.fromname, "%s", fromname);
    uint8_t rec[STREAM_BEGIN_MAX];
    size_t n = stream_enc_begin(&s->enc, &b, rec);
    if (n == 0)
        return berr_set(err, EINVAL, "cannot describe %s in a stream (bad name or properties)",
                        toname);
    if (to->volblocksize != 1u << to->od.dshift)
        return berr_set(err, EINVAL, "%s: block size %u does not match its tree", toname,
                        to->volblocksize);
    if (to->volblocksize > s->blkcap) {
        uint8_t *nb = realloc(s->blk, to->volblocksize);
        if (!nb)
            return berr_set(err, ENOMEM, "out of memory");
        s->blk = nb;
        s->blkcap = to->volblocksize;
    }
    int r = emit(s, rec, n);
    if (r < 0)
        return berr_errno(err, r, "writing the stream");
    if (s->raw && (r = send_crypt(s, tov, toname, err)) < 0)
        return r;
    const struct treediff_ops ops = { .data = on_data, .hole = on_hole };
    struct treediff_stats ts = {0};
    s->qhead = s->qlen = 0;
    s->qbytes = 0;
    r = treediff(s->io, &to->od, from ? from->txg : 0, resume_blk, &ops, s, &ts);
    if (r == 0)
        r = send_queued(s);
    s->st.bytes_read += ts.ind_bytes;
    if (r < 0) {
        if (s->werr)
            return berr_errno(err, r, "writing the stream");
        if (r == -ENOTSUP)
            return berr_set(err, ENOTSUP,
                            "cannot raw-send %s: block %llu was written by an older berth, "
                            "whose encryption binds it to this pool (pool-local AAD); send "
                            "without --raw, or rewrite the volume's data and snapshot again",
                            toname, (unsigned long long)s->bad_blk);
        return berr_errno(err, r, "reading %s (near block %llu)", toname,
                          (unsigned long long)s->bad_blk);
    }
    uint8_t end[STREAM_END_SIZE];
    n = stream_enc_end(&s->enc, to->guid, end);
    if ((r = emit(s, end, n)) < 0 || (r = flush_out(s)) < 0)
        return berr_errno(err, r, "writing the stream");
    return 0;
}

/* An open snapshot and what send needs of it. */
struct snap_ref {
    bs_vol *v;
    struct snap_view view;
    char name[BS_SNAP_NAME_MAX];
};

static int snap_ref_open(bs_pool *p, const char *name, bool raw, struct snap_ref *ref,
                         struct berr *err)
{
    memset(ref, 0, sizeof *ref);
    snprintf(ref->name, sizeof ref->name, "%s", name);
    int r = raw ? snap_open_raw(p, name, &ref->v, err) : bs_vol_open(p, name, &ref->v, err);
    if (r < 0)
        return r;
    if (snap_view_of(ref->v, &ref->view) < 0) {
        bs_vol_close(ref->v);
        ref->v = NULL;
        return berr_set(err, EINVAL, "'%s' is not a snapshot", name);
    }
    return 0;
}

static void snap_ref_close(struct snap_ref *ref)
{
    bs_vol_close(ref->v);
    ref->v = NULL;
}

struct guid_find {
    uint64_t guid;
    char name[BS_SNAP_NAME_MAX];
};

static int find_guid_cb(const struct bs_snap_props *props, void *opaque)
{
    struct guid_find *f = opaque;
    if (props->guid != f->guid)
        return 0;
    snprintf(f->name, sizeof f->name, "%s", props->name);
    return 1;
}

/* Resolve the base: "@A" is a snapshot of the sent snapshot's volume. */
static int base_name(bs_pool *p, const char *snapname, const struct bs_send_opts *o,
                     const struct stream_token *tok, char out[BS_SNAP_NAME_MAX],
                     struct berr *err)
{
    out[0] = '\0';
    if (o->from && o->from[0] == '@') {
        int vl = (int)(strchr(snapname, '@') - snapname);
        if ((size_t)snprintf(out, BS_SNAP_NAME_MAX, "%.*s%s", vl, snapname, o->from) >=
            BS_SNAP_NAME_MAX)
            return berr_set(err, ENAMETOOLONG, "snapshot name '%s' is too long", o->from);
    } else if (o->from) {
        if (snprintf(out, BS_SNAP_NAME_MAX, "%s", o->from) >= BS_SNAP_NAME_MAX)
            return berr_set(err, ENAMETOOLONG, "snapshot name '%s' is too long", o->from);
    } else if (tok && tok->fromguid) {
        struct guid_find f = { .guid = tok->fromguid };
        int r = bs_snap_list(p, NULL, find_guid_cb, &f, err);
        if (r < 0)
            return r;
        if (!f.name[0])
            return berr_set(err, ENOENT,
                            "the resume token needs base snapshot guid %llu, which this pool "
                            "does not have",
                            (unsigned long long)tok->fromguid);
        memcpy(out, f.name, BS_SNAP_NAME_MAX);
    }
    return 0;
}

/* The snapshots to send, oldest first (the last is snapname). */
static int section_names(bs_pool *p, const char *snapname, const struct snap_ref *from,
                         bool intermediates, char (**names)[BS_SNAP_NAME_MAX], size_t *n,
                         struct berr *err)
{
    if (intermediates && from->v)
        return snap_chain_between(p, snapname, from->view.txg, names, n, err);
    *names = malloc(BS_SNAP_NAME_MAX);
    if (!*names)
        return berr_set(err, ENOMEM, "out of memory");
    snprintf((*names)[0], BS_SNAP_NAME_MAX, "%s", snapname);
    *n = 1;
    return 0;
}

/* Where a token says to start: the index of its section in names. */
static int resume_index(bs_pool *p, char (*names)[BS_SNAP_NAME_MAX], size_t n,
                        const struct snap_ref *from, const struct stream_token *tok, size_t *k,
                        struct berr *err)
{
    uint64_t prev = from->v ? from->view.guid : 0;
    for (size_t i = 0; i < n; i++) {
        struct bs_snap_props sp;
        int r = bs_snap_get(p, names[i], &sp, err);
        if (r < 0)
            return r;
        if (sp.guid == tok->toguid) {
            if (prev != tok->fromguid)
                break;
            *k = i;
            return 0;
        }
        prev = sp.guid;
    }
    return berr_set(err, EINVAL,
                    "the resume token (receive into %s@%s) does not continue this send: its "
                    "snapshot or base differs",
                    tok->vol, tok->snap);
}

static int send_all(bs_pool *p, struct sender *s, const char *snapname,
                    const struct bs_send_opts *o, struct berr *err)
{
    struct stream_token tok;
    const struct stream_token *tp = NULL;
    if (o->resume_token) {
        int r = stream_token_decode(o->resume_token, &tok, err);
        if (r < 0)
            return r;
        tp = &tok;
    }
    if (o->intermediates && !o->from && !(tp && tp->fromguid))
        return berr_set(err, EINVAL, "sending intermediate snapshots (-I) needs a base (@FROM)");
    char fromname[BS_SNAP_NAME_MAX];
    int r = base_name(p, snapname, o, tp, fromname, err);
    if (r < 0)
        return r;
    struct snap_ref from = {0}, to = {0};
    if ((r = snap_ref_open(p, snapname, o->raw, &to, err)) < 0)
        return r;
    if (fromname[0]) {
        if ((r = snap_ref_open(p, fromname, o->raw, &from, err)) < 0)
            goto out;
        uint64_t anc_txg;
        if (from.view.guid == to.view.guid ||
            !snap_is_ancestor(to.v, from.view.guid, &anc_txg)) {
            r = berr_set(err, EXDEV, "'%s' is not an earlier snapshot of '%s'", fromname,
                         snapname);
            goto out;
        }
    }
    char(*names)[BS_SNAP_NAME_MAX] = NULL;
    size_t n = 0, k = 0;
    if ((r = section_names(p, snapname, &from, o->intermediates, &names, &n, err)) < 0)
        goto out;
    if (n == 0) {
        r = berr_set(err, ENOENT, "no snapshots between '%s' and '%s'", fromname, snapname);
        goto out_names;
    }
    if (tp && (r = resume_index(p, names, n, &from, tp, &k, err)) < 0)
        goto out_names;
    /* each section's base is the section before it; the first's is `from` */
    struct snap_ref prev = from, cur;
    from.v = NULL; /* now owned by prev */
    for (size_t i = 0; i < n && r == 0; i++) {
        if (i + 1 == n) {
            cur = to;
            to.v = NULL;
        } else if ((r = snap_ref_open(p, names[i], o->raw, &cur, err)) < 0) {
            break;
        }
        s->ds = cur.v->ds;
        if (i >= k) {
            uint32_t flags = (i + 1 < n ? SBEGIN_MORE : 0) | (tp && i == k ? SBEGIN_RESUMED : 0);
            r = send_section(s, cur.v, cur.name, &cur.view, prev.name,
                             prev.v ? &prev.view : NULL, flags,
                             tp && i == k ? tp->resume_blk : 0, err);
        }
        snap_ref_close(&prev);
        prev = cur;
    }
    snap_ref_close(&prev);
out_names:
    free(names);
out:
    snap_ref_close(&from);
    snap_ref_close(&to);
    return r;
}

int bs_send(bs_pool *p, const char *snapname, const struct bs_send_opts *opts, bs_write_fn wr,
            void *opaque, struct bs_send_stats *st, struct berr *err)
{
    static const struct bs_send_opts none;
    if (!opts)
        opts = &none;
    if (st)
        memset(st, 0, sizeof *st);
    if (!snapname || !strchr(snapname, '@'))
        return berr_set(err, EINVAL, "send needs a snapshot (VOL@SNAP), not '%s'",
                        snapname ? snapname : "");
    struct sender s = { .io = &p->io, .wr = wr, .opaque = opaque, .raw = opts->raw };
    int r = stream_enc_init(&s.enc);
    s.out = malloc(SEND_BUF);
    s.q = malloc(SEND_AHEAD * sizeof *s.q);
    if (r < 0 || !s.out || !s.q)
        r = berr_set(err, ENOMEM, "out of memory");
    else
        r = send_all(p, &s, snapname, opts, err);
    stream_enc_free(&s.enc);
    free(s.out);
    free(s.q);
    free(s.blk);
    if (st)
        *st = s.st;
    return r;
}
