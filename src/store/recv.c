/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bs_recv: apply a send stream (docs/STREAM.md) to a volume.
 *
 * Each section is written into the hidden volume "VOL%recv" (snap.h): a new
 * volume for a full stream, a clone of VOL's latest snapshot for an
 * incremental.  VOL itself is not touched until the section's END record
 * has been verified; only then does recv_finish swap the received tree in
 * and snapshot it, in one txg.
 *
 * Invariants:
 *  - nothing from a record is applied before the parser has checked its
 *    checksum, its sequence number and its block range (stream.c);
 *  - a section is finished only after its END matched the byte count and
 *    the digest of everything before it;
 *  - on failure the hidden volume is destroyed, unless the receive is
 *    resumable and got as far as writing into it: then it stays with its
 *    last resume point, and every block below that point was flushed
 *    (bs_vol_flush) before the point was persisted (recv_set_offset);
 *  - for -I streams every completed section stays received; a failure
 *    affects only the section it happens in;
 *  - a raw section (encrypted blocks as stored) starts at its CRYPT record,
 *    not at BEGIN: the target's key must be known first.  It is received
 *    without any key: a full one into a new volume that takes the stream's
 *    key record (locked), an incremental or a resumed one only into a
 *    volume whose key has the stream's guid and fingerprint; its blocks go
 *    to disk as they came (vol_write_sealed), their MACs are checked when
 *    the key is loaded and they are read;
 *  - a raw section's slot set reaches the target's key record only in the
 *    txg of its finish, and only by the rule of recv_finish (snap.h,
 *    STREAM.md 11.4): a failed or partial section never changes key slots. */
#include "store/recv.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "store/blkcrypt.h"
#include "store/codec.h"
#include "store/dsauth.h"
#include "store/keyslot.h"
#include "store/mos.h"
#include "store/snap.h"
#include "store/stream.h"

static _Atomic uint64_t ckpt_bytes = RECV_CHECKPOINT_BYTES;

void recv_set_checkpoint_bytes(uint64_t bytes)
{
    ckpt_bytes = bytes ? bytes : RECV_CHECKPOINT_BYTES;
}

struct receiver {
    bs_pool *p;
    const char *vol;
    const struct bs_recv_opts *o;
    bs_read_fn rd;
    void *opaque;
    struct stream_parser ps;
    uint8_t *rec;            /* the current record */
    size_t cap;
    uint8_t *blk;            /* one decompressed block */
    size_t blkcap;
    bs_vol *h;               /* VOL%recv while a section is open */
    bool begun;              /* VOL%recv exists for the current section */
    bool keepable;           /* ... and may be kept for a resume */
    uint64_t since_ckpt;     /* stream bytes applied since the last resume point */
    uint64_t bytes;          /* stream bytes read */
    char snap[64];           /* SNAP of the section being received */
    bool raw;                /* the current section is raw: skey is its CRYPT key */
    struct mos_key skey;     /* wrapped slots only: nothing secret */
    uint8_t root_mac[DS_ROOT_MAC_LEN]; /* SAUTH_ROOT_MAC: the snapshot's (dsauth.h) */
};

/* Read up to len bytes, fewer only at the end of the stream. */
static int read_some(struct receiver *rv, void *buf, size_t len, size_t *got)
{
    size_t n = 0;
    while (n < len) {
        ssize_t r = rv->rd(rv->opaque, (uint8_t *)buf + n, len - n);
        if (r < 0)
            return (int)r;
        if (r == 0)
            break;
        if ((size_t)r > len - n)
            return -EIO;
        n += (size_t)r;
    }
    *got = n;
    rv->bytes += n;
    return 0;
}

static int read_exact(struct receiver *rv, void *buf, size_t len, struct berr *err)
{
    size_t got = 0;
    int r = read_some(rv, buf, len, &got);
    if (r < 0)
        return berr_errno(err, r, "reading the stream");
    if (got == len)
        return 0;
    if (rv->bytes == 0)
        return berr_set(err, EPIPE, "the stream is empty");
    return berr_set(err, EPIPE, "stream truncated after %llu bytes",
                    (unsigned long long)rv->bytes);
}

static int next_record(struct receiver *rv, struct stream_rec *out, size_t *reclen,
                       struct berr *err)
{
    uint8_t hdr[STREAM_HDR_SIZE];
    int r = read_exact(rv, hdr, sizeof hdr, err);
    if (r < 0)
        return r;
    long plen = stream_parse_hdr(&rv->ps, hdr, err);
    if (plen < 0)
        return (int)plen;
    /* plen is bounded by the parser: a BEGIN, or one block of the section */
    size_t len = STREAM_HDR_SIZE + (size_t)plen;
    if (len > rv->cap) {
        uint8_t *nb = realloc(rv->rec, len);
        if (!nb)
            return berr_set(err, ENOMEM, "out of memory");
        rv->rec = nb;
        rv->cap = len;
    }
    memcpy(rv->rec, hdr, sizeof hdr);
    if ((r = read_exact(rv, rv->rec + STREAM_HDR_SIZE, (size_t)plen, err)) < 0)
        return r;
    *reclen = len;
    return stream_parse_rec(&rv->ps, rv->rec, len, out, err);
}

struct base_find {
    uint64_t fromguid, toguid;
    bool found_from, found_to;
    struct bs_snap_props latest;
};

static int base_cb(const struct bs_snap_props *sp, void *opaque)
{
    struct base_find *f = opaque;
    f->found_from |= sp->guid == f->fromguid;
    f->found_to |= sp->guid == f->toguid;
    f->latest = *sp; /* listed oldest first */
    return 0;
}

/* An incremental applies only on top of VOL's latest snapshot: say clearly
 * which snapshot is where when it does not. */
static int check_base(struct receiver *rv, const struct stream_begin *b, struct berr *err)
{
    struct bs_vol_props vp;
    if (bs_vol_get(rv->p, rv->vol, &vp, NULL) < 0)
        return berr_set(err, ENOENT,
                        "volume %s does not exist, and the stream is incremental from %s "
                        "(receive a full stream first)",
                        rv->vol, b->fromname);
    struct base_find f = { .fromguid = b->fromguid, .toguid = b->toguid };
    int r = bs_snap_list(rv->p, rv->vol, base_cb, &f, err);
    if (r < 0)
        return r;
    if (f.found_to)
        return berr_set(err, EEXIST, "%s already holds the stream's snapshot %s", rv->vol,
                        b->toname);
    if (!f.latest.name[0])
        return berr_set(err, EXDEV,
                        "the stream is incremental from %s, but %s has no snapshots", b->fromname,
                        rv->vol);
    if (f.latest.guid == b->fromguid)
        return 0;
    if (f.found_from)
        return berr_set(err, EXDEV,
                        "the stream's base %s is not the latest snapshot of %s (%s is newer): "
                        "destroy the newer snapshots first",
                        b->fromname, rv->vol, f.latest.name);
    return berr_set(err, EXDEV,
                    "the stream is incremental from %s (guid %llu), but the latest snapshot of "
                    "%s is %s (guid %llu): wrong base",
                    b->fromname, (unsigned long long)b->fromguid, rv->vol, f.latest.name,
                    (unsigned long long)f.latest.guid);
}

/* A resumed section must continue exactly the receive that was left. */
static int check_resume(struct receiver *rv, const struct stream_begin *b, struct berr *err)
{
    struct recv_state cur;
    int r = recv_get_state(rv->p, rv->vol, &cur);
    if (r == -ENOENT)
        return berr_set(err, ENOENT, "there is no interrupted receive into %s to resume",
                        rv->vol);
    if (r < 0)
        return berr_errno(err, r, "reading the receive state of %s", rv->vol);
    if (cur.toguid != b->toguid || cur.fromguid != b->fromguid)
        return berr_set(err, EXDEV,
                        "the stream resumes %s, but the interrupted receive into %s is of "
                        "another snapshot (%s)",
                        b->toname, rv->vol, cur.snapname);
    if (cur.offset != b->resume_blk)
        return berr_set(err, EINVAL,
                        "the stream resumes at block %llu, but the receive into %s stopped at "
                        "block %llu: ask for a new token",
                        (unsigned long long)b->resume_blk, rv->vol,
                        (unsigned long long)cur.offset);
    return 0;
}

/* The key record a raw full stream gives its new volume. */
static int stream_key(const struct stream_crypt *c, struct mos_key *k, struct berr *err)
{
    memset(k, 0, sizeof *k);
    k->guid = c->key_guid;
    k->suite = c->suite;
    k->keyformat = c->keyformat;
    memcpy(k->fingerprint, c->fingerprint, sizeof k->fingerprint);
    if (keyslots_decode(c->slots, sizeof c->slots, &k->slots) < 0) /* the parser checked */
        return berr_set(err, EILSEQ, "stream corrupt: bad key slots");
    return 0;
}

/* Start a section: at BEGIN for a plain one, at CRYPT (`c`) for a raw one. */
static int start_section(struct receiver *rv, const struct stream_begin *b,
                         const struct stream_crypt *c, struct berr *err)
{
    struct recv_state rs = {
        .toguid = b->toguid, .fromguid = b->fromguid, .offset = b->resume_blk,
    };
    snprintf(rv->snap, sizeof rv->snap, "%s", strchr(b->toname, '@') + 1);
    snprintf(rs.snapname, sizeof rs.snapname, "%s", rv->snap);
    int r;
    rv->raw = c != NULL;
    if (c && (r = stream_key(c, &rv->skey, err)) < 0)
        return r;
    if (c && c->auth_type != SAUTH_ROOT_MAC)
        return berr_set(err, EILSEQ, "cannot receive %s into %s: the raw stream carries no root "
                        "MAC of its snapshot (written by an older berth), so its metadata could "
                        "not be authenticated", b->toname, rv->vol);
    if (c)
        memcpy(rv->root_mac, c->auth, sizeof rv->root_mac);
    if (b->flags & SBEGIN_RESUMED) {
        r = check_resume(rv, b, err);
        if (r == 0 && c)
            r = recv_check_key(rv->p, rv->vol, true, c->key_guid, c->fingerprint, err);
    } else if (b->fromguid == 0 && c) {
        r = recv_begin_full_raw(rv->p, rv->vol, b->volsize, b->volblocksize, &rs, &rv->skey,
                                err);
    } else if (b->fromguid == 0) {
        r = recv_begin_full(rv->p, rv->vol, b->volsize, b->volblocksize, &rs, err);
    } else if ((r = check_base(rv, b, err)) == 0 &&
               (!c || (r = recv_check_key(rv->p, rv->vol, false, c->key_guid, c->fingerprint,
                                          err)) == 0)) {
        r = recv_begin_incr(rv->p, rv->vol, b->volsize, &rs, rv->o->force, err);
    }
    if (r < 0)
        return berr_wrap(err, "cannot receive %s into %s", b->toname, rv->vol);
    rv->begun = true;
    if ((r = recv_open(rv->p, rv->vol, c != NULL, &rv->h, err)) < 0)
        return berr_wrap(err, "cannot receive %s into %s", b->toname, rv->vol);
    if (bs_vol_blocksize(rv->h) != b->volblocksize || bs_vol_size(rv->h) != b->volsize)
        return berr_set(err, EINVAL,
                        "cannot receive %s into %s: the stream's volume has %llu bytes in "
                        "%u-byte blocks, the target %llu bytes in %u-byte blocks",
                        b->toname, rv->vol, (unsigned long long)b->volsize, b->volblocksize,
                        (unsigned long long)bs_vol_size(rv->h), bs_vol_blocksize(rv->h));
    if (b->volblocksize > rv->blkcap) {
        free(rv->blk);
        rv->blkcap = 0;
        if (!(rv->blk = malloc(b->volblocksize)))
            return berr_set(err, ENOMEM, "out of memory");
        rv->blkcap = b->volblocksize;
    }
    rv->keepable = true;
    rv->since_ckpt = 0;
    return 0;
}

/* A raw block: stored as it came; its MAC is checked when the key is
 * loaded and it is read (the stream's checksums cover it on the wire). */
static int apply_sealed(struct receiver *rv, const struct stream_data *d, struct berr *err)
{
    struct blk_sealed sb = {
        .blkid = d->blkid, .lsize = d->lsize, .psize = d->psize, .comp = d->comp,
    };
    memcpy(sb.salt, d->salt, sizeof sb.salt);
    memcpy(sb.iv, d->iv, sizeof sb.iv);
    memcpy(sb.mac, d->mac, sizeof sb.mac);
    if (blk_sealed_check(&sb, rv->ps.begin.volblocksize) < 0)
        return berr_set(err, EILSEQ, "stream corrupt: bad encrypted block %llu",
                        (unsigned long long)d->blkid);
    int r = vol_write_sealed(rv->h, &sb, d->bytes);
    if (r < 0)
        return berr_errno(err, r, "writing block %llu of %s", (unsigned long long)d->blkid,
                          rv->vol);
    return 0;
}

static int apply_data(struct receiver *rv, const struct stream_data *d, struct berr *err)
{
    if (d->raw)
        return apply_sealed(rv, d, err);
    const void *src = d->bytes;
    if (d->comp != BS_COMPRESS_OFF) {
        if (decompress_block(d->comp, d->bytes, d->psize, rv->blk, d->lsize) < 0)
            return berr_set(err, EILSEQ, "stream corrupt: block %llu does not decompress",
                            (unsigned long long)d->blkid);
        src = rv->blk;
    }
    int r = bs_vol_pwrite(rv->h, src, d->lsize, d->blkid * d->lsize, 0);
    if (r < 0)
        return berr_errno(err, r, "writing block %llu of %s", (unsigned long long)d->blkid,
                          rv->vol);
    return 0;
}

static int apply_free(struct receiver *rv, const struct stream_free *f, struct berr *err)
{
    uint64_t bs = rv->ps.begin.volblocksize;
    int r = bs_vol_zero(rv->h, f->count * bs, f->blkid * bs, 0);
    if (r < 0)
        return berr_errno(err, r, "freeing blocks %llu+%llu of %s",
                          (unsigned long long)f->blkid, (unsigned long long)f->count, rv->vol);
    return 0;
}

/* Persist a resume point: everything below ps.next_blk is on disk first. */
static int checkpoint(struct receiver *rv, size_t reclen, struct berr *err)
{
    rv->since_ckpt += reclen;
    if (!rv->o->resumable || rv->since_ckpt < ckpt_bytes)
        return 0;
    rv->since_ckpt = 0;
    int r = bs_vol_flush(rv->h);
    if (r < 0)
        return berr_errno(err, r, "flushing %s", rv->vol);
    return recv_set_offset(rv->p, rv->vol, rv->ps.next_blk, err);
}

static int finish_section(struct receiver *rv, struct bs_recv_stats *st, struct berr *err)
{
    int r = bs_vol_flush(rv->h);
    /* the received tree takes the sender's root MAC (the finished snapshot
     * copies it); with the key loaded it is checked against the tree now */
    if (r == 0 && rv->raw) {
        if ((r = ds_set_root_mac(rv->p, rv->h->ds, rv->root_mac)) < 0)
            berr_errno(err, -r, "the raw stream of %s does not authenticate the received "
                       "blocks (root MAC)", rv->ps.begin.toname);
        if (r < 0) {
            bs_vol_close(rv->h);
            rv->h = NULL;
            return r;
        }
    }
    bs_vol_close(rv->h);
    rv->h = NULL;
    if (r < 0)
        return berr_errno(err, r, "flushing %s", rv->vol);
    struct recv_slots ks;
    if ((r = recv_finish(rv->p, rv->vol, rv->ps.begin.creation, rv->raw ? &rv->skey : NULL, &ks,
                         err)) < 0)
        return berr_wrap(err, "cannot finish receiving %s", rv->ps.begin.toname);
    rv->begun = rv->keepable = false;
    if (rv->raw && ks.outcome == BS_RECV_KEYSLOTS_KEPT)
        blog_warn("pool %s: receive of %s into %s: the key slots of the stream were not taken: "
                  "its key record is shared with '%s', of another lineage",
                  bs_pool_name(rv->p), rv->ps.begin.toname, rv->vol, ks.shared_with);
    if (st) {
        snprintf(st->snapshot, sizeof st->snapshot, "%s@%s", rv->vol, rv->snap);
        if (st->keyslots != BS_RECV_KEYSLOTS_KEPT && ks.outcome != BS_RECV_KEYSLOTS_NONE) {
            st->keyslots = ks.outcome;
            snprintf(st->keyslots_shared_with, sizeof st->keyslots_shared_with, "%s",
                     ks.shared_with);
        }
    }
    return 0;
}

static int receive(struct receiver *rv, struct bs_recv_stats *st, struct berr *err)
{
    for (;;) {
        struct stream_rec rec;
        size_t reclen = 0;
        int r = next_record(rv, &rec, &reclen, err);
        if (r < 0)
            return r;
        switch (rec.type) {
        case SREC_BEGIN: /* a raw section starts at its CRYPT record */
            if (!(rec.u.begin.flags & SBEGIN_RAW))
                r = start_section(rv, &rec.u.begin, NULL, err);
            break;
        case SREC_CRYPT:
            r = start_section(rv, &rv->ps.begin, &rec.u.crypt, err);
            break;
        case SREC_DATA:
            r = apply_data(rv, &rec.u.data, err);
            break;
        case SREC_FREE:
            r = apply_free(rv, &rec.u.free, err);
            break;
        default:
            r = finish_section(rv, st, err);
            if (r == 0 && rv->ps.phase == SPHASE_DONE)
                return 0;
            break;
        }
        if (r == 0 && (rec.type == SREC_DATA || rec.type == SREC_FREE))
            r = checkpoint(rv, reclen, err);
        if (r < 0)
            return r;
    }
}

int bs_recv(bs_pool *p, const char *vol, const struct bs_recv_opts *opts, bs_read_fn rd,
            void *opaque, struct bs_recv_stats *st, struct berr *err)
{
    static const struct bs_recv_opts none;
    if (st)
        memset(st, 0, sizeof *st);
    int r = validate_name(vol, "volume", err);
    if (r < 0)
        return r;
    struct receiver rv = { .p = p, .vol = vol, .o = opts ? opts : &none, .rd = rd,
                           .opaque = opaque };
    if (stream_parser_init(&rv.ps) < 0)
        return berr_set(err, ENOMEM, "out of memory");
    r = receive(&rv, st, err);
    bs_vol_close(rv.h);
    if (r < 0 && rv.begun) {
        if (rv.o->resumable && rv.keepable) {
            char msg[BERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
            berr_set(err, -r, "%s (the partial receive is kept: resume it with its token)",
                     msg);
        } else {
            recv_discard(p, vol, NULL);
        }
    }
    if (st)
        st->bytes_received = rv.bytes;
    stream_parser_free(&rv.ps);
    free(rv.rec);
    free(rv.blk);
    return r;
}

int bs_recv_token(bs_pool *p, const char *vol, char *buf, size_t len, struct berr *err)
{
    struct recv_state rs;
    int r = recv_get_state(p, vol, &rs);
    if (r == -ENOENT)
        return berr_set(err, ENOENT, "there is no interrupted receive into %s", vol);
    if (r < 0)
        return berr_errno(err, r, "reading the receive state of %s", vol);
    struct stream_token t = {
        .toguid = rs.toguid, .fromguid = rs.fromguid, .resume_blk = rs.offset,
    };
    snprintf(t.vol, sizeof t.vol, "%s", vol);
    snprintf(t.snap, sizeof t.snap, "%s", rs.snapname);
    r = stream_token_encode(&t, buf, len);
    if (r < 0)
        return berr_set(err, ERANGE, "resume token buffer too small (%zu bytes)", len);
    return 0;
}

int bs_recv_abort(bs_pool *p, const char *vol, struct berr *err)
{
    int r = recv_discard(p, vol, err);
    if (r == -ENOENT && err && !err->msg[0])
        berr_set(err, ENOENT, "there is no interrupted receive into %s", vol);
    return r;
}
