/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scope-bound cleanup for locals (the systemd/crun idiom).  Ownership that
 * leaves the scope is taken explicitly with steal_ptr()/steal_fd(). */
#ifndef BERTH_COMMON_CLEANUP_H
#define BERTH_COMMON_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>

static inline void cleanup_freep(void *p)
{
    free(*(void **)p);
}
static inline void cleanup_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void cleanup_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define _cleanup_free_ __attribute__((cleanup(cleanup_freep)))
#define _cleanup_close_ __attribute__((cleanup(cleanup_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(cleanup_fclosep)))

#define steal_ptr(p)                                                                               \
    ({                                                                                             \
        __typeof__(p) steal_tmp_ = (p);                                                            \
        (p) = NULL;                                                                                \
        steal_tmp_;                                                                                \
    })
#define steal_fd(fd)                                                                               \
    ({                                                                                             \
        int steal_fd_tmp_ = (fd);                                                                  \
        (fd) = -1;                                                                                 \
        steal_fd_tmp_;                                                                             \
    })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define ROUND_UP(n, a) (DIV_ROUND_UP((n), (a)) * (a))
#define IS_POW2(x) ((x) != 0 && ((x) & ((x) - 1)) == 0)

#endif
