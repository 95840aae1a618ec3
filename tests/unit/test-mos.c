/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool directory codec: round trips, and hostile inputs (flipped bytes,
 * truncation, forged lengths, duplicates) that must give -EILSEQ or a valid
 * directory, never a crash or an out-of-bounds access (run under ASan). */
#include <string.h>

#include "store/mos.h"
#include "store_test.h"
#include "tap.h"
#include "common/le.h"

static void make_dir(struct mos_dir *d, size_t n)
{
    memset(d, 0, sizeof *d);
    d->next_id = n + 1;
    d->autotrim = 1;
    d->comp = BS_COMPRESS_LZ4;
    d->cksum = BS_CHECKSUM_XXH3;
    d->nds = n;
    d->ds = calloc(n ? n : 1, sizeof *d->ds);
    for (size_t i = 0; i < n; i++) {
        struct mos_ds *s = &d->ds[i];
        s->id = i + 1;
        s->guid = 0x1234 + i;
        s->create_txg = 5 + i;
        s->volblocksize = 4096u << (i % 6);
        s->volsize = (uint64_t)s->volblocksize * (1000 + i);
        s->refreservation = i % 2 ? s->volsize : 0;
        s->comp = (uint8_t)(i % 3);
        s->comp_level = s->comp == BS_COMPRESS_ZSTD ? 3 : 0;
        s->cksum = i % 2 ? BS_CHECKSUM_SHA256 : BS_CHECKSUM_XXH3;
        s->flags = i % 4 == 0 ? DS_FLAG_READONLY : 0;
        objdesc_init(&s->od, __builtin_ctz(s->volblocksize), s->volsize / s->volblocksize);
        s->od.allocated = 4096 * i;
        snprintf(s->name, sizeof s->name, "vol-%zu%s", i, i == 3 ? "-with-a-longer-name" : "");
    }
}

int main(void)
{
    struct mos_dir d, back;
    make_dir(&d, 7);
    uint8_t *buf;
    size_t len;
    ok(mos_encode(&d, &buf, &len) == 0 && len % 8 == 0, "encode 7 datasets (%zu bytes)", len);
    ok(mos_decode(buf, len, &back) == 0 && back.nds == 7, "decode");
    int same = back.next_id == d.next_id && back.autotrim == 1 && back.cksum == d.cksum;
    for (size_t i = 0; i < 7 && same; i++) {
        same = strcmp(back.ds[i].name, d.ds[i].name) == 0 && back.ds[i].id == d.ds[i].id &&
               back.ds[i].volsize == d.ds[i].volsize &&
               back.ds[i].volblocksize == d.ds[i].volblocksize &&
               back.ds[i].refreservation == d.ds[i].refreservation &&
               back.ds[i].flags == d.ds[i].flags && back.ds[i].comp == d.ds[i].comp &&
               back.ds[i].od.levels == d.ds[i].od.levels &&
               back.ds[i].od.allocated == d.ds[i].od.allocated;
    }
    ok(same, "round trip preserves every field");
    mos_dir_free(&back);

    /* an unknown record type in the middle is skipped */
    size_t xl = len + 24;
    uint8_t *x = calloc(1, xl);
    memcpy(x, buf, 64);
    put_le32(x + 12, 8);
    put_le32(x + 64, 77);
    put_le32(x + 68, 13);
    memcpy(x + 64 + 24, buf + 64, len - 64);
    ok(mos_decode(x, xl, &back) == 0 && back.nds == 7, "unknown record type skipped");
    mos_dir_free(&back);
    free(x);

    ok(mos_decode(buf, 10, &back) == -EILSEQ, "short header");
    for (size_t cut = 64; cut < len; cut += 37)
        if (mos_decode(buf, cut, &back) != -EILSEQ) {
            ok(0, "truncated at %zu accepted", cut);
            mos_dir_free(&back);
        }
    ok(1, "every truncation rejected");

    /* forged fields */
    uint8_t *c = malloc(len);
    memcpy(c, buf, len);
    put_le32(c + 12, 0xffffffffu);
    ok(mos_decode(c, len, &back) == -EILSEQ, "huge record count");
    memcpy(c, buf, len);
    put_le32(c + 64 + 4, 0xfffffff0u);
    ok(mos_decode(c, len, &back) == -EILSEQ, "record length past the end");
    memcpy(c, buf, len);
    put_le64(c + 64 + 8, 2); /* first record's id = the second's */
    ok(mos_decode(c, len, &back) == -EILSEQ, "duplicate id");
    memcpy(c, buf, len);
    c[64 + 8 + MOS_DS_FIXED2] = '/';
    ok(mos_decode(c, len, &back) == -EILSEQ, "bad name");
    memcpy(c, buf, len);
    put_le32(c + 64 + 8 + 44, 5000);
    ok(mos_decode(c, len, &back) == -EILSEQ, "bad volblocksize");

    /* random damage: decode must return 0 or -EILSEQ, ASan watches */
    uint64_t seed = 1;
    int accepted = 0, rejected = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(c, buf, len);
        int nflip = 1 + (int)(xrand(&seed) % 4);
        for (int k = 0; k < nflip; k++)
            c[xrand(&seed) % len] ^= (uint8_t)(1u << (xrand(&seed) % 8));
        size_t l = xrand(&seed) % 4 ? len : xrand(&seed) % (len + 1);
        int r = mos_decode(c, l, &back);
        if (r == 0) {
            accepted++;
            mos_dir_free(&back);
        } else if (r == -EILSEQ) {
            rejected++;
        }
    }
    ok(accepted + rejected == 20000, "20000 damaged directories: %d accepted, %d rejected",
       accepted, rejected);

    /* objdesc validation */
    struct objdesc od, od2;
    objdesc_init(&od, 14, 300);
    uint8_t ob[OBJDESC_SIZE];
    objdesc_encode(&od, ob);
    ok(objdesc_decode(ob, &od2) == 0 && od2.levels == 3 && od2.nblocks == 300, "objdesc");
    ob[128] = 0;
    ok(objdesc_decode(ob, &od2) == -EILSEQ, "objdesc levels 0 rejected");
    ob[128] = 2; /* 256 blocks < 300 */
    ok(objdesc_decode(ob, &od2) == -EILSEQ, "objdesc too few levels rejected");
    ob[128] = 3;
    ob[130] = 12;
    ok(objdesc_decode(ob, &od2) == -EILSEQ, "objdesc indirect shift rejected");
    ok(objtree_levels_for(0) == 1 && objtree_levels_for(1) == 1 && objtree_levels_for(2) == 2 &&
           objtree_levels_for(256) == 2 && objtree_levels_for(257) == 3 &&
           objtree_levels_for(65536) == 3 && objtree_levels_for(65537) == 4,
       "levels_for boundaries");
    free(c);
    free(buf);
    mos_dir_free(&d);
    return done_testing();
}
