/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/common: sizes, names, LE/BE codecs, zero detection. */
#include "common/le.h"
#include "common/util.h"
#include "tap.h"

#include <string.h>

int main(void)
{
    uint64_t v;
    struct berr e = {0};
    ok(parse_size("10G", &v, &e) == 0 && v == 10ULL << 30, "10G");
    ok(parse_size("16K", &v, &e) == 0 && v == 16384, "16K");
    ok(parse_size("4096", &v, &e) == 0 && v == 4096, "4096");
    ok(parse_size("1.5M", &v, &e) == 0 && v == 3ULL << 19, "1.5M");
    ok(parse_size("2GiB", &v, &e) == 0 && v == 2ULL << 30, "2GiB");
    ok(parse_size("-1", &v, &e) == -EINVAL, "negative rejected");
    ok(parse_size("12Q", &v, &e) == -EINVAL && strstr(e.msg, "12Q"), "unknown unit named: %s", e.msg);
    ok(parse_size("99999999999P", &v, &e) == -ERANGE, "overflow rejected");
    ok(parse_size("", &v, &e) == -EINVAL, "empty rejected");
    char buf[32];
    ok(strcmp(format_size(16384, buf, sizeof buf), "16K") == 0, "format 16K: %s", buf);
    ok(strcmp(format_size(1536ULL << 20, buf, sizeof buf), "1.50G") == 0, "format 1.5G: %s", buf);
    ok(validate_name("tank", "pool", &e) == 0, "name tank");
    ok(validate_name("a/b", "pool", &e) == -EINVAL && strstr(e.msg, "'/'"), "slash: %s", e.msg);
    ok(validate_name("", "volume", &e) == -EINVAL, "empty name");
    ok(validate_name("-x", "volume", &e) == -EINVAL, "leading dash");
    uint8_t b[8];
    put_le64(b, 0x0102030405060708ULL);
    ok(b[0] == 8 && b[7] == 1 && get_le64(b) == 0x0102030405060708ULL, "le64");
    put_be32(b, 0x11223344);
    ok(b[0] == 0x11 && get_be32(b) == 0x11223344, "be32");
    static uint8_t z[4099];
    ok(buf_is_zero(z, sizeof z), "zero buffer");
    z[4098] = 1;
    ok(!buf_is_zero(z, sizeof z), "last byte non-zero");
    z[4098] = 0;
    z[1] = 1;
    ok(!buf_is_zero(z + 1, 100), "unaligned start non-zero");
    char u[16];
    utf8_sanitize("ab\xff" "c", u, sizeof u);
    ok(strcmp(u, "ab?c") == 0, "invalid byte replaced: %s", u);
    utf8_sanitize("caf\xc3\xa9", u, sizeof u);
    ok(strcmp(u, "caf\xc3\xa9") == 0, "valid 2-byte sequence kept");
    utf8_sanitize("abcd\xc3\xa9", u, 6);
    ok(strcmp(u, "abcd") == 0, "a character is never cut in half: %s", u);
    utf8_sanitize("\xc3", u, sizeof u);
    ok(strcmp(u, "?") == 0, "truncated sequence replaced");
    utf8_sanitize("\xed\xa0\x80x", u, sizeof u);
    ok(strcmp(u, "???x") == 0, "surrogate rejected: %s", u);
    utf8_sanitize("\xc0\xafx", u, sizeof u);
    ok(strcmp(u, "??x") == 0, "overlong rejected");
    return done_testing();
}
