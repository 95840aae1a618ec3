/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool directory (MOS) codec and its storage as an object.
 *
 * Encoding is field by field (le.h).  Decoding trusts nothing: the header,
 * each record's length against what is left, each dataset's fields against
 * their ranges, names against validate_name, and duplicate ids or names are
 * all rejected with -EILSEQ.  Unknown record types are skipped (forward
 * compatibility, FORMAT.md section 7). */
#include "store/mos.h"

#include <stdlib.h>
#include <string.h>

#include "berth/store.h"
#include "common/cleanup.h"
#include "common/le.h"
#include "common/util.h"

static size_t ds_rec_len(const struct mos_ds *ds)
{
    return 8 + ROUND_UP(MOS_DS_FIXED + strlen(ds->name), 8);
}

int mos_encode(const struct mos_dir *d, uint8_t **out, size_t *len)
{
    size_t total = MOS_HDR_SIZE;
    for (size_t i = 0; i < d->nds; i++)
        total += ds_rec_len(&d->ds[i]);
    uint8_t *b = calloc(1, total);
    if (!b)
        return -ENOMEM;
    put_le64(b, MOS_MAGIC);
    put_le32(b + 8, MOS_VERSION);
    put_le32(b + 12, (uint32_t)d->nds);
    put_le64(b + 16, d->next_id);
    b[24] = d->autotrim;
    b[25] = d->comp;
    b[26] = d->comp_level;
    b[27] = d->cksum;
    uint8_t *p = b + MOS_HDR_SIZE;
    for (size_t i = 0; i < d->nds; i++) {
        const struct mos_ds *ds = &d->ds[i];
        size_t nlen = strlen(ds->name);
        put_le32(p, MOS_REC_DATASET);
        put_le32(p + 4, (uint32_t)(MOS_DS_FIXED + nlen));
        uint8_t *q = p + 8;
        put_le64(q, ds->id);
        put_le64(q + 8, ds->guid);
        put_le64(q + 16, ds->create_txg);
        put_le64(q + 24, ds->volsize);
        put_le64(q + 32, ds->refreservation);
        q[40] = ds->comp;
        q[41] = ds->comp_level;
        q[42] = ds->cksum;
        q[43] = ds->flags;
        put_le32(q + 44, ds->volblocksize);
        objdesc_encode(&ds->od, q + 48);
        put_le16(q + 240, (uint16_t)nlen);
        memcpy(q + 242, ds->name, nlen);
        p += ds_rec_len(ds);
    }
    *out = b;
    *len = total;
    return 0;
}

static int decode_ds(const uint8_t *q, uint32_t rlen, struct mos_ds *ds)
{
    if (rlen < MOS_DS_FIXED)
        return -EILSEQ;
    memset(ds, 0, sizeof *ds);
    ds->id = get_le64(q);
    ds->guid = get_le64(q + 8);
    ds->create_txg = get_le64(q + 16);
    ds->volsize = get_le64(q + 24);
    ds->refreservation = get_le64(q + 32);
    ds->comp = q[40];
    ds->comp_level = q[41];
    ds->cksum = q[42];
    ds->flags = q[43];
    ds->volblocksize = get_le32(q + 44);
    uint16_t nlen = get_le16(q + 240);
    if (nlen == 0 || nlen > 63 || (uint32_t)MOS_DS_FIXED + nlen != rlen)
        return -EILSEQ;
    memcpy(ds->name, q + 242, nlen);
    ds->name[nlen] = '\0';
    if (validate_name(ds->name, "volume", NULL) < 0)
        return -EILSEQ;
    if (ds->comp > BS_COMPRESS_ZSTD || ds->comp_level > 19 ||
        (ds->cksum != BS_CHECKSUM_XXH3 && ds->cksum != BS_CHECKSUM_SHA256) ||
        (ds->flags & ~DS_FLAG_READONLY))
        return -EILSEQ;
    uint32_t bs = ds->volblocksize;
    if (!IS_POW2(bs) || bs < 4096 || bs > 131072)
        return -EILSEQ;
    if (ds->volsize == 0 || ds->volsize % bs)
        return -EILSEQ;
    if (objdesc_decode(q + 48, &ds->od) < 0)
        return -EILSEQ;
    if ((1u << ds->od.dshift) != bs || ds->od.nblocks != ds->volsize / bs)
        return -EILSEQ;
    if (!bp_is_hole(&ds->od.root) && ds->od.root.type != BP_TYPE_INDIRECT &&
        ds->od.root.type != BP_TYPE_VOL_DATA)
        return -EILSEQ;
    return 0;
}

int mos_decode(const uint8_t *buf, size_t len, struct mos_dir *d)
{
    memset(d, 0, sizeof *d);
    if (len < MOS_HDR_SIZE || get_le64(buf) != MOS_MAGIC || get_le32(buf + 8) != MOS_VERSION)
        return -EILSEQ;
    uint32_t nrec = get_le32(buf + 12);
    d->next_id = get_le64(buf + 16);
    d->autotrim = buf[24];
    d->comp = buf[25];
    d->comp_level = buf[26];
    d->cksum = buf[27];
    if (d->autotrim > 1 || d->comp > BS_COMPRESS_ZSTD || d->comp_level > 19 ||
        (d->cksum != BS_CHECKSUM_XXH3 && d->cksum != BS_CHECKSUM_SHA256))
        return -EILSEQ;
    /* every record takes at least 8 bytes: bound the array by the input */
    if (nrec > (len - MOS_HDR_SIZE) / 8)
        return -EILSEQ;
    d->ds = calloc(nrec ? nrec : 1, sizeof *d->ds);
    if (!d->ds)
        return -ENOMEM;
    size_t pos = MOS_HDR_SIZE;
    for (uint32_t i = 0; i < nrec; i++) {
        if (len - pos < 8)
            goto bad;
        uint32_t type = get_le32(buf + pos);
        uint32_t rlen = get_le32(buf + pos + 4);
        size_t padded = ROUND_UP((size_t)rlen, 8);
        if (rlen > len - pos - 8 || padded > len - pos - 8)
            goto bad;
        if (type == MOS_REC_DATASET) {
            struct mos_ds *ds = &d->ds[d->nds];
            if (decode_ds(buf + pos + 8, rlen, ds) < 0)
                goto bad;
            if (ds->id == 0 || ds->id >= d->next_id)
                goto bad;
            for (size_t k = 0; k < d->nds; k++)
                if (d->ds[k].id == ds->id || strcmp(d->ds[k].name, ds->name) == 0)
                    goto bad;
            d->nds++;
        }
        pos += 8 + padded;
    }
    return 0;
bad:
    mos_dir_free(d);
    return -EILSEQ;
}

void mos_dir_free(struct mos_dir *d)
{
    free(d->ds);
    d->ds = NULL;
    d->nds = 0;
}

int mos_read(const struct blkio *io, const struct objdesc *od, uint64_t size, uint8_t **out)
{
    *out = NULL;
    if (size < MOS_HDR_SIZE || size > MOS_MAX_SIZE || od->dshift != MOS_DSHIFT ||
        od->nblocks < DIV_ROUND_UP(size, MOS_BLKSZ))
        return -EILSEQ;
    uint8_t *b = malloc(size);
    if (!b)
        return -ENOMEM;
    for (uint64_t blk = 0; blk * MOS_BLKSZ < size; blk++) {
        uint64_t off = blk * MOS_BLKSZ;
        size_t n = (size_t)MIN((uint64_t)MOS_BLKSZ, size - off);
        struct blkptr bp;
        int r = objtree_lookup(io, od, blk, &bp, NULL);
        if (r == 0 && !bp_is_hole(&bp) && bp.type != BP_TYPE_MOS_DATA) {
            blk_count_cksum_error(io);
            r = -EIO;
        }
        if (r < 0) {
            free(b);
            return r;
        }
        if (bp_is_hole(&bp)) {
            memset(b + off, 0, n);
            continue;
        }
        struct cbuf *c;
        r = blk_read(io, &bp, 0, &c);
        if (r < 0) {
            free(b);
            return r;
        }
        memcpy(b + off, c->data, n);
        cbuf_unref(c);
    }
    *out = b;
    return 0;
}

int mos_write(const struct objtree_wctx *w, struct objdesc *od, const uint8_t *old, size_t oldlen,
              const uint8_t *nbuf, size_t newlen)
{
    uint64_t nblocks = DIV_ROUND_UP(newlen, MOS_BLKSZ);
    struct leaf_update *u = calloc(nblocks ? nblocks : 1, sizeof *u);
    uint8_t *blk = malloc(MOS_BLKSZ);
    int r = 0;
    size_t n = 0;
    if (!u || !blk) {
        r = -ENOMEM;
        goto out;
    }
    struct blk_wprops wp = {
        .type = BP_TYPE_MOS_DATA, .level = 0, .comp = BS_COMPRESS_LZ4, .cksum = w->cksum,
        .zero_is_hole = true,
    };
    for (uint64_t i = 0; i < nblocks; i++) {
        size_t off = i * MOS_BLKSZ;
        size_t len = MIN((size_t)MOS_BLKSZ, newlen - off);
        /* a block is unchanged if the old bytes are the same and its length,
         * hence the zero padding, is too */
        if (old && off + len <= oldlen && memcmp(old + off, nbuf + off, len) == 0 &&
            (len == MOS_BLKSZ || off + len == oldlen))
            continue;
        memset(blk, 0, MOS_BLKSZ);
        memcpy(blk, nbuf + off, len);
        u[n].blkid = i;
        r = blk_write(w->io, blk, NULL, MOS_BLKSZ, &wp, w->txg, w->s, &u[n].bp);
        if (r < 0)
            goto out;
        n++;
    }
    r = objtree_sync(w, od, u, n, nblocks);
out:
    free(u);
    free(blk);
    return r;
}
