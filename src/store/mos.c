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

static size_t ds_fixed(uint32_t version)
{
    return version >= 4 ? MOS_DS_FIXED4 : version == 3 ? MOS_DS_FIXED3 : MOS_DS_FIXED2;
}

static size_t ds_rec_len(const struct mos_ds *ds, uint32_t version)
{
    return 8 + ROUND_UP(ds_fixed(version) + strlen(ds->name) + strlen(ds->holds) +
                            strlen(ds->recv.snapname), 8);
}

/* Version 3 only when encryption is in use, so plaintext pools stay
 * readable by version-2 readers. */
static uint32_t dir_version(const struct mos_dir *d)
{
    bool crypt = d->nkeys || d->def.encryption || d->def.keyformat || d->def.location[0];
    for (size_t i = 0; i < d->nds && !crypt; i++)
        crypt = d->ds[i].key_id != 0;
    return crypt ? MOS_VERSION : MOS_VERSION_PLAIN;
}

static bool has_def(const struct mos_dir *d)
{
    return d->def.encryption || d->def.keyformat || d->def.location[0];
}

int mos_encode(const struct mos_dir *d, uint8_t **out, size_t *len)
{
    uint32_t version = dir_version(d);
    size_t fixed = ds_fixed(version);
    size_t total = MOS_HDR_SIZE;
    for (size_t i = 0; i < d->nds; i++)
        total += ds_rec_len(&d->ds[i], version);
    for (size_t i = 0; i < d->nkeys; i++)
        total += 8 + ROUND_UP(mos_key_len(&d->keys[i]), 8);
    if (has_def(d))
        total += 8 + ROUND_UP(mos_cryptdef_len(&d->def), 8);
    uint8_t *b = calloc(1, total);
    if (!b)
        return -ENOMEM;
    put_le64(b, MOS_MAGIC);
    put_le32(b + 8, version);
    put_le32(b + 12, (uint32_t)(d->nds + d->nkeys + has_def(d)));
    put_le64(b + 16, d->next_id);
    b[24] = d->autotrim;
    b[25] = d->comp;
    b[26] = d->comp_level;
    b[27] = d->cksum;
    uint8_t *p = b + MOS_HDR_SIZE;
    for (size_t i = 0; i < d->nds; i++) {
        const struct mos_ds *ds = &d->ds[i];
        size_t nlen = strlen(ds->name), hlen = strlen(ds->holds),
               slen = strlen(ds->recv.snapname);
        put_le32(p, MOS_REC_DATASET);
        put_le32(p + 4, (uint32_t)(fixed + nlen + hlen + slen));
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
        put_le64(q + 240, ds->creation);
        put_le64(q + 248, ds->lin.prev_id);
        put_le64(q + 256, ds->lin.prev_txg);
        put_le64(q + 264, ds->lin.born);
        put_le64(q + 272, ds->lin.dl_count);
        put_le64(q + 280, ds->lin.dl_bytes);
        put_le64(q + 288, ds->lin.dl_uniq);
        put_le64(q + 296, ds->recv.toguid);
        put_le64(q + 304, ds->recv.fromguid);
        put_le64(q + 312, ds->recv.offset);
        struct objdesc dl = ds->lin.dl;
        if (dl.dshift == 0) /* a record made with {0}: an empty deadlist */
            objdesc_init(&dl, DL_DSHIFT, 0);
        objdesc_encode(&dl, q + 320);
        put_le16(q + 512, (uint16_t)nlen);
        put_le16(q + 514, (uint16_t)hlen);
        put_le16(q + 516, (uint16_t)slen);
        if (version >= 3)
            put_le64(q + MOS_DS_FIXED2, ds->key_id);
        if (version >= 4) /* 544..551 reserved, zero */
            memcpy(q + MOS_DS_FIXED3, ds->root_mac, DS_ROOT_MAC_LEN);
        memcpy(q + fixed, ds->name, nlen);
        memcpy(q + fixed + nlen, ds->holds, hlen);
        memcpy(q + fixed + nlen + hlen, ds->recv.snapname, slen);
        p += ds_rec_len(ds, version);
    }
    for (size_t i = 0; i < d->nkeys; i++) {
        size_t n = mos_key_len(&d->keys[i]);
        put_le32(p, MOS_REC_KEY);
        put_le32(p + 4, (uint32_t)n);
        mos_key_encode(&d->keys[i], p + 8);
        p += 8 + ROUND_UP(n, 8);
    }
    if (has_def(d)) {
        put_le32(p, MOS_REC_CRYPTDEF);
        put_le32(p + 4, (uint32_t)mos_cryptdef_len(&d->def));
        mos_cryptdef_encode(&d->def, p + 8);
    }
    *out = b;
    *len = total;
    return 0;
}

int mos_name_check(const char *name, uint8_t flags)
{
    char buf[128];
    if (strlen(name) >= sizeof buf)
        return -EILSEQ;
    strcpy(buf, name);
    char *at = strchr(buf, '@'), *pct = strchr(buf, '%');
    if (flags & DS_FLAG_SNAPSHOT) {
        if (!at || pct)
            return -EILSEQ;
        *at = '\0';
        return validate_name(buf, "volume", NULL) < 0 || validate_name(at + 1, "snapshot", NULL) < 0
                   ? -EILSEQ
                   : 0;
    }
    if (flags & DS_FLAG_RECV) {
        if (at || !pct || strcmp(pct, "%recv") != 0)
            return -EILSEQ;
        *pct = '\0';
    }
    return validate_name(buf, "volume", NULL) < 0 ? -EILSEQ : 0;
}

/* Copy a length-prefixed string of the record (no NUL inside, fits dst). */
static int get_str(const uint8_t *src, size_t n, char *dst, size_t dstlen)
{
    if (n >= dstlen || memchr(src, 0, n))
        return -EILSEQ;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static int decode_ds(const uint8_t *q, uint32_t rlen, uint32_t version, struct mos_ds *ds)
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
    if (version == 1) {
        uint16_t nlen = get_le16(q + 240);
        if (nlen == 0 || nlen > 63 || (uint32_t)MOS_DS_FIXED + nlen != rlen)
            return -EILSEQ;
        memcpy(ds->name, q + 242, nlen);
        ds->name[nlen] = '\0';
        objdesc_init(&ds->lin.dl, DL_DSHIFT, 0);
        ds->lin.born = 0; /* recomputed at import (pool.c) */
        if (ds->flags & ~DS_FLAG_READONLY)
            return -EILSEQ;
    } else {
        uint32_t fixed = (uint32_t)ds_fixed(version);
        if (rlen < fixed)
            return -EILSEQ;
        uint16_t nlen = get_le16(q + 512), hlen = get_le16(q + 514), slen = get_le16(q + 516);
        if (fixed + nlen + hlen + slen != rlen || nlen == 0 || get_le16(q + 518) != 0)
            return -EILSEQ;
        if (version >= 3)
            ds->key_id = get_le64(q + MOS_DS_FIXED2);
        if (version >= 4) {
            static const uint8_t zero[DS_ROOT_MAC_LEN];
            memcpy(ds->root_mac, q + MOS_DS_FIXED3, DS_ROOT_MAC_LEN);
            /* a plaintext dataset has no MAC; the reserved bytes are zero */
            if ((!ds->key_id && memcmp(ds->root_mac, zero, DS_ROOT_MAC_LEN) != 0) ||
                memcmp(q + MOS_DS_FIXED3 + DS_ROOT_MAC_LEN, zero, 8) != 0)
                return -EILSEQ;
        }
        const uint8_t *sp = q + fixed;
        if (get_str(sp, nlen, ds->name, sizeof ds->name) < 0 ||
            get_str(sp + nlen, hlen, ds->holds, sizeof ds->holds) < 0 ||
            get_str(sp + nlen + hlen, slen, ds->recv.snapname, sizeof ds->recv.snapname) < 0)
            return -EILSEQ;
        ds->creation = get_le64(q + 240);
        ds->lin.prev_id = get_le64(q + 248);
        ds->lin.prev_txg = get_le64(q + 256);
        ds->lin.born = get_le64(q + 264);
        ds->lin.dl_count = get_le64(q + 272);
        ds->lin.dl_bytes = get_le64(q + 280);
        ds->lin.dl_uniq = get_le64(q + 288);
        ds->recv.toguid = get_le64(q + 296);
        ds->recv.fromguid = get_le64(q + 304);
        ds->recv.offset = get_le64(q + 312);
        if (objdesc_decode(q + 320, &ds->lin.dl) < 0 || ds->lin.dl.dshift != DL_DSHIFT ||
            ds->lin.dl.nblocks != DIV_ROUND_UP(ds->lin.dl_count, (1u << DL_DSHIFT) / 32) ||
            ds->lin.dl_uniq > ds->lin.dl_bytes || (ds->flags & ~DS_FLAGS_KNOWN) ||
            ((ds->flags & DS_FLAG_SNAPSHOT) && (ds->flags & DS_FLAG_RECV)) ||
            (ds->lin.prev_id == 0) != (ds->lin.prev_txg == 0) ||
            ((ds->flags & DS_FLAG_SNAPSHOT) && ds->lin.prev_txg >= ds->create_txg) ||
            ds->lin.prev_id == ds->id)
            return -EILSEQ;
        if (ds->holds[0]) {
            if (!(ds->flags & DS_FLAG_SNAPSHOT))
                return -EILSEQ;
            char tags[256];
            strcpy(tags, ds->holds);
            char *save = NULL;
            for (char *t = strtok_r(tags, ",", &save); t; t = strtok_r(NULL, ",", &save))
                if (validate_name(t, "hold tag", NULL) < 0)
                    return -EILSEQ;
        }
    }
    if (mos_name_check(ds->name, ds->flags) < 0)
        return -EILSEQ;
    if (ds->comp > BS_COMPRESS_ZSTD || ds->comp_level > 19 ||
        (ds->cksum != BS_CHECKSUM_XXH3 && ds->cksum != BS_CHECKSUM_SHA256))
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
    if (version == 1)
        ds->lin.born = ds->od.allocated; /* no snapshots: every block is its own */
    if (!bp_is_hole(&ds->od.root) && ds->od.root.type != BP_TYPE_INDIRECT &&
        ds->od.root.type != BP_TYPE_VOL_DATA)
        return -EILSEQ;
    return 0;
}

int mos_decode(const uint8_t *buf, size_t len, struct mos_dir *d)
{
    memset(d, 0, sizeof *d);
    if (len < MOS_HDR_SIZE || get_le64(buf) != MOS_MAGIC || get_le32(buf + 8) < 1 ||
        get_le32(buf + 8) > MOS_VERSION)
        return -EILSEQ;
    uint32_t version = get_le32(buf + 8);
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
    /* a key record takes more than MOS_KEY_FIXED bytes: bound them too */
    size_t maxkeys = MIN((size_t)nrec, (len - MOS_HDR_SIZE) / (8 + MOS_KEY_FIXED)) + 1;
    d->keys = calloc(maxkeys, sizeof *d->keys);
    bool seen_def = false;
    if (!d->ds || !d->keys) {
        mos_dir_free(d);
        return -ENOMEM;
    }
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
            if (decode_ds(buf + pos + 8, rlen, version, ds) < 0)
                goto bad;
            if (ds->id == 0 || ds->id >= d->next_id)
                goto bad;
            for (size_t k = 0; k < d->nds; k++)
                if (d->ds[k].id == ds->id || strcmp(d->ds[k].name, ds->name) == 0)
                    goto bad;
            d->nds++;
        } else if (type == MOS_REC_KEY && version >= 3) {
            struct mos_key *k = &d->keys[d->nkeys];
            if (d->nkeys + 1 >= maxkeys || mos_key_decode(buf + pos + 8, rlen, k) < 0 ||
                k->id >= d->next_id)
                goto bad;
            for (size_t j = 0; j < d->nkeys; j++)
                if (d->keys[j].id == k->id || d->keys[j].guid == k->guid)
                    goto bad;
            d->nkeys++;
        } else if (type == MOS_REC_CRYPTDEF && version >= 3) {
            if (seen_def || mos_cryptdef_decode(buf + pos + 8, rlen, &d->def) < 0)
                goto bad;
            seen_def = true;
        }
        pos += 8 + padded;
    }
    /* every encrypted dataset names a key that is there */
    for (size_t i = 0; i < d->nds; i++) {
        size_t j = 0;
        while (d->ds[i].key_id && j < d->nkeys && d->keys[j].id != d->ds[i].key_id)
            j++;
        if (d->ds[i].key_id && j == d->nkeys)
            goto bad;
        if (d->ds[i].key_id && version < 4)
            d->legacy_crypt = true;
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
    free(d->keys); /* wrapped keys only: nothing secret */
    d->keys = NULL;
    d->nkeys = 0;
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
        int r = objtree_lookup(io, od, blk, 0, &bp, NULL);
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
