/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging to stderr with a level; the level check happens before any
 * formatting.  Daemons log errors once, where they are handled. */
#ifndef BERTH_COMMON_LOG_H
#define BERTH_COMMON_LOG_H

enum blog_level { BLOG_ERR = 0, BLOG_WARN = 1, BLOG_INFO = 2, BLOG_DEBUG = 3 };

extern int blog_max_level; /* default BLOG_INFO */

void blog_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define blog(level, ...)                                                                           \
    do {                                                                                           \
        if ((level) <= blog_max_level)                                                             \
            blog_write((level), __VA_ARGS__);                                                      \
    } while (0)
#define blog_err(...) blog(BLOG_ERR, __VA_ARGS__)
#define blog_warn(...) blog(BLOG_WARN, __VA_ARGS__)
#define blog_info(...) blog(BLOG_INFO, __VA_ARGS__)
#define blog_debug(...) blog(BLOG_DEBUG, __VA_ARGS__)

#endif
