/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the QMP / guest-agent message stream: arbitrary
 * bytes, delivered in chunks whose sizes come from the input, go through
 * the splitter, the JSON parser and the message classifier. */
#include "vm/jstream.h"
#include "vm/qmp.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jstream js;
    struct berr e = {0};
    jstream_init(&js);
    size_t pos = 0;
    while (pos < size) {
        size_t chunk = 1 + data[pos] % 64;
        if (chunk > size - pos)
            chunk = size - pos;
        if (data[pos] == 0xFE)
            jstream_resync(&js);
        if (jstream_feed(&js, data + pos, chunk) < 0)
            break;
        pos += chunk;
        json_t *m;
        int r;
        while ((r = jstream_next(&js, &m, &e)) != 0) {
            if (r == 1) {
                (void)qmp_classify(m);
                json_decref(m);
            }
        }
    }
    jstream_free(&js);
    return 0;
}
