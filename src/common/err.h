/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one error convention of berth.
 *
 * Every fallible function returns 0 (or a non-negative count) on success and a
 * negative errno on failure.  Control-plane functions (pool create, volume
 * set, config parsing ...) additionally take a `struct berr *` that receives a
 * human-readable message saying what went wrong and, where possible, what to
 * do about it.  The errno maps to an HTTP status in the API and to an NBD error
 * on the wire; the message is what the user sees.
 *
 * Data-path functions (volume read/write) only return negative errno: they are
 * hot, and the NBD protocol carries no message.
 *
 * Library code never logs an error it returns: the caller that handles the
 * error decides whether to log it.  `err` may be NULL everywhere.
 */
#ifndef BERTH_COMMON_ERR_H
#define BERTH_COMMON_ERR_H

#include <errno.h>
#include <stdarg.h>

#define BERR_MSG_MAX 512

struct berr {
    int code;                  /* positive errno, 0 when unset */
    char msg[BERR_MSG_MAX];    /* NUL-terminated, "" when unset */
};

/* Set `err` (if non-NULL) to code + formatted message.  Returns -code, so
 * callers can write `return berr_set(err, EINVAL, "bad size '%s'", s);`.
 * If `err` already holds a message it is replaced. */
int berr_set(struct berr *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with context: "context: old message".
 * Returns -err->code (or -EIO if err is NULL/unset). */
int berr_wrap(struct berr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Set from errno with a message "<what>: strerror(code)". Returns -code. */
int berr_errno(struct berr *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void berr_clear(struct berr *err);

/* Short machine-readable name for an errno ("EINVAL" -> "invalid"), used as
 * the "code" of JSON errors. */
const char *berr_code_name(int code);

#endif
