/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the pool directory (MOS) parser and the object
 * descriptor decoder must survive any bytes (docs/FORMAT.md 6, 7). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/mos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mos_dir d;
    if (mos_decode(data, size, &d) == 0) {
        /* a parsed directory must encode again */
        uint8_t *out;
        size_t len;
        if (mos_encode(&d, &out, &len) == 0)
            free(out);
        mos_dir_free(&d);
    }
    if (size >= OBJDESC_SIZE) {
        struct objdesc od;
        (void)objdesc_decode(data, &od);
    }
    return 0;
}
