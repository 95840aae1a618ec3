/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Minimal TAP producer for unit tests: ok(cond, fmt...), is_int, done_testing.
 * A test binary exits 0 if every check passed, 1 otherwise, 77 to skip. */
#ifndef BERTH_TAP_H
#define BERTH_TAP_H

#include <stdint.h>

void tap_ok(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void tap_is_i64(int64_t got, int64_t want, const char *file, int line, const char *what);
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tap_skip_all(const char *why) __attribute__((noreturn));
int tap_done(void); /* prints the plan; returns the exit code */

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, what) tap_is_i64((int64_t)(got), (int64_t)(want), __FILE__, __LINE__, what)
#define diag(...) tap_diag(__VA_ARGS__)
#define done_testing() tap_done()

#endif
