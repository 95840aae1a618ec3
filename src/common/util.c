/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small shared helpers: see util.h. */
#include "common/util.h"
#include "common/cleanup.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int parse_size(const char *s, uint64_t *out, struct berr *err)
{
    if (!s || !*s)
        return berr_set(err, EINVAL, "empty size");
    const char *p = s;
    uint64_t whole = 0;
    if (!isdigit((unsigned char)*p))
        return berr_set(err, EINVAL, "invalid size '%s': expected a number like 10G, 512M or 4096", s);
    while (isdigit((unsigned char)*p)) {
        if (whole > (UINT64_MAX - 9) / 10)
            return berr_set(err, ERANGE, "size '%s' is too large", s);
        whole = whole * 10 + (uint64_t)(*p - '0');
        p++;
    }
    double frac = 0, scale = 0.1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return berr_set(err, EINVAL, "invalid size '%s'", s);
        while (isdigit((unsigned char)*p)) {
            frac += scale * (*p - '0');
            scale /= 10;
            p++;
        }
    }
    unsigned shift = 0;
    switch (toupper((unsigned char)*p)) {
    case '\0': break;
    case 'B': break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    case 'P': shift = 50; break;
    default:
        return berr_set(err, EINVAL, "invalid size '%s': unknown unit (use K, M, G, T or P)", s);
    }
    if (*p && toupper((unsigned char)*p) != 'B') {
        p++;
        if (*p == 'i')
            p++;
        if (toupper((unsigned char)*p) == 'B')
            p++;
    } else if (*p) {
        p++;
    }
    if (*p)
        return berr_set(err, EINVAL, "invalid size '%s': trailing characters '%s'", s, p);
    if (shift && whole > (UINT64_MAX >> shift))
        return berr_set(err, ERANGE, "size '%s' is too large", s);
    uint64_t v = whole << shift;
    if (frac > 0) {
        double extra = frac * (double)(1ULL << shift);
        if (extra >= 1.0)
            v += (uint64_t)extra;
    }
    *out = v;
    return 0;
}

const char *format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char units[] = "BKMGTPE";
    if (bytes < 1024) {
        snprintf(buf, len, "%llu", (unsigned long long)bytes);
        return buf;
    }
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    if (v >= 100 || v == floor(v))
        snprintf(buf, len, "%.0f%c", v, units[u]);
    else if (v >= 10)
        snprintf(buf, len, "%.1f%c", v, units[u]);
    else
        snprintf(buf, len, "%.2f%c", v, units[u]);
    return buf;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, struct berr *err)
{
    if (!s || !*s || !isdigit((unsigned char)*s))
        return berr_set(err, EINVAL, "invalid number '%s'", s ? s : "");
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return berr_set(err, EINVAL, "invalid number '%s'", s);
    if (v < min || v > max)
        return berr_set(err, ERANGE, "%llu is out of range %llu..%llu", v, (unsigned long long)min,
                        (unsigned long long)max);
    *out = v;
    return 0;
}

int validate_name(const char *name, const char *what, struct berr *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0)
        return berr_set(err, EINVAL, "%s name is empty", what);
    if (n > 63)
        return berr_set(err, ENAMETOOLONG, "%s name '%.70s' is longer than 63 characters", what, name);
    if (!isalnum((unsigned char)name[0]))
        return berr_set(err, EINVAL, "%s name '%s' must start with a letter or digit", what, name);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.')
            return berr_set(err, EINVAL,
                            "%s name '%s' has invalid character '%c' (allowed: letters, digits, "
                            "'_', '-', '.')",
                            what, name, isprint(c) ? c : '?');
    }
    return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, int mode, struct berr *err)
{
    size_t plen = strlen(path);
    _cleanup_free_ char *tmp = malloc(plen + 32);
    _cleanup_free_ char *dir = strdup(path);
    if (!tmp || !dir)
        return berr_set(err, ENOMEM, "out of memory");
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");

    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return berr_errno(err, errno, "cannot create %s", tmp);
    int r = write_full(fd, data, len);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return berr_errno(err, -r, "cannot write %s", tmp);
    }
    close(steal_fd(fd));
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return berr_errno(err, e, "cannot rename %s to %s", tmp, path);
    }
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        fsync(dfd);
    return 0;
}

int read_file_all(const char *path, size_t max_len, char **out, size_t *len, struct berr *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return berr_errno(err, errno, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    _cleanup_free_ char *buf = malloc(cap + 1);
    if (!buf)
        return berr_set(err, ENOMEM, "out of memory");
    for (;;) {
        if (n == cap) {
            if (cap >= max_len)
                return berr_set(err, EFBIG, "%s is larger than %zu bytes", path, max_len);
            cap = MIN(cap * 2, max_len);
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                return berr_set(err, ENOMEM, "out of memory");
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return berr_errno(err, errno, "cannot read %s", path);
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    *out = steal_ptr(buf);
    return 0;
}

int mkdir_p(const char *path, int mode, struct berr *err)
{
    _cleanup_free_ char *p = strdup(path);
    if (!p)
        return berr_set(err, ENOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
                return berr_errno(err, errno, "cannot create directory %s", p);
            *s = '/';
        }
    }
    if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
        return berr_errno(err, errno, "cannot create directory %s", p);
    return 0;
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* pwritev until every byte is written (iov is consumed). */
int pwritev_full(int fd, struct iovec *iov, int cnt, uint64_t off)
{
    while (cnt > 0) {
        ssize_t r = pwritev(fd, iov, cnt, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO;
        off += (uint64_t)r;
        while (cnt > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

int iov_chunk(const struct iovec *iov, int cnt, uint64_t off, size_t chunk, struct iovec *out,
              int outcap)
{
    size_t left = chunk - (size_t)(off & (chunk - 1));
    int n = 0;
    for (; n < cnt && n < outcap && left > 0; n++) {
        out[n] = iov[n];
        if (out[n].iov_len > left)
            out[n].iov_len = left;
        left -= out[n].iov_len;
    }
    return n;
}

int pwritev_chunked(int fd, struct iovec *iov, int cnt, uint64_t off, size_t chunk)
{
    struct iovec piece[64];
    while (cnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            cnt--;
            continue;
        }
        int n = iov_chunk(iov, cnt, off, chunk, piece, 64);
        size_t len = 0;
        for (int i = 0; i < n; i++)
            len += piece[i].iov_len;
        int r = pwritev_full(fd, piece, n, off);
        if (r < 0)
            return r;
        off += len;
        while (cnt > 0 && len >= iov->iov_len) { /* consume what went out */
            len -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + len;
            iov->iov_len -= len;
        }
    }
    return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t r = pwrite(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EPIPE;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t r = write(fd, p, len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

bool buf_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len && ((uintptr_t)p & 7)) {
        if (*p)
            return false;
        p++;
        len--;
    }
    const uint64_t *w = (const uint64_t *)(const void *)p;
    size_t nw = len / 8;
    for (size_t i = 0; i < nw; i += 4) {
        uint64_t acc = w[i];
        if (i + 1 < nw) acc |= w[i + 1];
        if (i + 2 < nw) acc |= w[i + 2];
        if (i + 3 < nw) acc |= w[i + 3];
        if (acc)
            return false;
    }
    p += nw * 8;
    for (size_t i = 0; i < (len & 7); i++)
        if (p[i])
            return false;
    return true;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is not one. */
static size_t utf8_seq_len(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range, or a surrogate */
    return n;
}

void utf8_sanitize(const char *in, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    size_t o = 0;
    while (*p) {
        size_t n = utf8_seq_len(p);
        if (n == 0) {
            if (o + 1 >= outlen)
                break;
            out[o++] = '?';
            p++;
            continue;
        }
        if (o + n >= outlen)
            break;
        memcpy(out + o, p, n);
        o += n;
        p += n;
    }
    out[o] = '\0';
}
