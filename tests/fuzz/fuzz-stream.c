/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the send stream parser and the resume token decoder
 * must survive any bytes (docs/STREAM.md): records are parsed one after
 * another as a receiver would, each header validated before its payload
 * is taken. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/le.h"
#include "store/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parse records one after another as a receiver would.  With `reseal`,
 * each record's checksum is recomputed first (as a sender would have), so
 * the fuzzer gets past the checksum into the field decoders and the stream
 * rules instead of stopping at the first mismatch. */
static void parse(const uint8_t *data, size_t size, bool reseal)
{
    struct stream_parser ps;
    if (stream_parser_init(&ps) < 0)
        return;
    size_t off = 0;
    while (ps.phase != SPHASE_DONE && size - off >= STREAM_HDR_SIZE) {
        long plen = stream_parse_hdr(&ps, data + off, NULL);
        if (plen < 0 || size - off - STREAM_HDR_SIZE < (size_t)plen)
            break;
        /* a copy of exactly the record, so reads past it are caught */
        size_t len = STREAM_HDR_SIZE + (size_t)plen;
        uint8_t *rec = malloc(len);
        if (!rec)
            break;
        memcpy(rec, data + off, len);
        if (reseal)
            put_le64(rec + 24, XXH3_64bits_withSeed(rec + STREAM_HDR_SIZE, (size_t)plen,
                                                    XXH3_64bits(rec, 24)));
        struct stream_rec out;
        int r = stream_parse_rec(&ps, rec, len, &out, NULL);
        free(rec);
        if (r < 0)
            break;
        off += len;
    }
    stream_parser_free(&ps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse(data, size, false);
    parse(data, size, true);
    char tok[STREAM_TOKEN_MAX + 8];
    size_t n = size < sizeof tok - 1 ? size : sizeof tok - 1;
    memcpy(tok, data, n);
    tok[n] = '\0';
    struct stream_token t;
    (void)stream_token_decode(tok, &t, NULL);
    return 0;
}
