/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the VM config parser: any bytes either parse (and
 * then must format to text that parses again to the same text) or fail
 * with a message; never crash, leak or hang. */
#include "vm/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vm_config c, c2;
    struct berr e = {0};
    if (vm_config_parse((const char *)data, size, &c, &e) < 0)
        return 0;
    char *t1 = NULL, *t2 = NULL;
    if (vm_config_format(&c, &t1, &e) == 0) {
        if (vm_config_parse(t1, strlen(t1), &c2, &e) != 0)
            abort(); /* canonical text must parse */
        if (vm_config_format(&c2, &t2, &e) != 0 || strcmp(t1, t2) != 0)
            abort(); /* and be stable */
        vm_config_free(&c2);
    }
    free(t1);
    free(t2);
    vm_config_free(&c);
    return 0;
}
