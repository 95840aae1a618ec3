/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/common: sizes, names, LE/BE codecs, zero detection. */
#include "common/le.h"
#include "common/util.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

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

    /* iov_chunk: pieces end at multiples of the chunk, whatever the iovecs */
    static uint8_t src[200000];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 7 + (i >> 9));
    struct iovec in[3] = {{src, 10000}, {src + 10000, 70000}, {src + 80000, 100000}};
    struct iovec out[8];
    int n = iov_chunk(in, 3, 60000, 65536, out, 8);
    ok(n == 1 && out[0].iov_base == src && out[0].iov_len == 5536, "first piece up to 64K: %d %zu", n,
       out[0].iov_len);
    n = iov_chunk(in, 3, 65536 - 10000, 65536, out, 8);
    ok(n == 1 && out[0].iov_len == 10000, "piece ends with the first iovec exactly");
    n = iov_chunk(in + 1, 2, 65536, 65536, out, 8);
    ok(n == 1 && out[0].iov_len == 65536, "aligned: one full chunk");
    n = iov_chunk(in, 3, 0, 1 << 20, out, 8);
    ok(n == 3 && out[2].iov_len == 100000, "all of it under a larger chunk");
    n = iov_chunk(in, 3, 0, 1 << 20, out, 2);
    ok(n == 2 && out[1].iov_len == 70000, "at most outcap entries");
    /* pwritev_chunked writes every byte in place */
    char path[] = "/tmp/test-util-XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0, "temp file");
    if (fd >= 0) {
        unlink(path);
        struct iovec w[4] = {{src, 4096}, {src + 4096, 0}, {src + 4096, 150000}, {src + 154096, 45904}};
        ok(pwritev_chunked(fd, w, 4, 12345, 65536) == 0, "pwritev_chunked");
        static uint8_t back[200000];
        ok(pread_full(fd, back, sizeof back, 12345) == 0 && memcmp(back, src, sizeof back) == 0,
           "every byte where it belongs");
        close(fd);
    }
    return done_testing();
}
