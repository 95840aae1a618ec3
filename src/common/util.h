/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small shared helpers: human sizes, names, crash-safe file writes. */
#ifndef BERTH_COMMON_UTIL_H
#define BERTH_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Parse "10G", "512M", "16K", "4096", "1.5T" (binary units, case-insensitive,
 * optional trailing "B"/"iB") into bytes.  Rejects negatives, overflow and
 * trailing garbage with a message naming the input. */
int parse_size(const char *s, uint64_t *out, struct berr *err);

/* Format bytes as "1.50G", "16K", "0" into buf (at least 16 bytes). */
const char *format_size(uint64_t bytes, char *buf, size_t len);

/* Parse a non-negative decimal integer with bounds. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, struct berr *err);

/* Pool and volume names: 1..63 chars of [A-Za-z0-9_.-], starting with a
 * letter or digit (no '/', '@', spaces).  `what` is "pool" or "volume". */
int validate_name(const char *name, const char *what, struct berr *err);

/* Write a file crash-safely: temp file in the same directory, fsync, rename,
 * fsync the directory. */
int write_file_atomic(const char *path, const void *data, size_t len, int mode,
                      struct berr *err);

/* Read a whole (small) file; *out is malloc'd and NUL-terminated.  Fails with
 * EFBIG above max_len. */
int read_file_all(const char *path, size_t max_len, char **out, size_t *len, struct berr *err);

/* mkdir -p with mode. */
int mkdir_p(const char *path, int mode, struct berr *err);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/* Full-length pread/pwrite retrying on EINTR and short transfers.  Return 0 or
 * -errno (-EIO on unexpected EOF for reads). */
int pread_full(int fd, void *buf, size_t len, uint64_t off);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
struct iovec;
/* The same for a vector; iov is consumed. */
int pwritev_full(int fd, struct iovec *iov, int cnt, uint64_t off);
/* The first piece of iov[0..cnt) that pwritev_chunked writes with one call
 * at file offset off: at most up to the next multiple of `chunk` (a power of
 * two) and at most outcap entries.  Fills out[] and returns its count. */
int iov_chunk(const struct iovec *iov, int cnt, uint64_t off, size_t chunk, struct iovec *out,
              int outcap);
/* pwritev_full in calls that never cross a multiple of `chunk` bytes of the
 * file (iov is consumed). */
int pwritev_chunked(int fd, struct iovec *iov, int cnt, uint64_t off, size_t chunk);
int read_full(int fd, void *buf, size_t len);   /* -EPIPE on EOF before len */
int write_full(int fd, const void *buf, size_t len);

/* Copy `in` into out (size outlen, NUL-terminated), replacing every byte that
 * is not part of a valid UTF-8 sequence with '?' and never cutting a
 * character in half: for text that goes into JSON. */
void utf8_sanitize(const char *in, char *out, size_t outlen);

/* true if the buffer is all zero bytes (fast: word compares). */
bool buf_is_zero(const void *buf, size_t len);

#endif
