/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Error objects: see err.h for the convention. */
#include "common/err.h"

#include <stdio.h>
#include <string.h>

int berr_set(struct berr *err, int code, const char *fmt, ...)
{
    if (code < 0)
        code = -code;
    if (code == 0)
        code = EIO;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return -code;
}

int berr_wrap(struct berr *err, const char *fmt, ...)
{
    if (!err)
        return -EIO;
    char prefix[BERR_MSG_MAX], old[BERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    if (old[0])
        snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    else
        snprintf(err->msg, sizeof err->msg, "%s", prefix);
    if (err->code == 0)
        err->code = EIO;
    return -err->code;
}

int berr_errno(struct berr *err, int code, const char *fmt, ...)
{
    if (code < 0)
        code = -code;
    if (code == 0)
        code = EIO;
    if (err) {
        char what[BERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        snprintf(err->msg, sizeof err->msg, "%s: %s", what, strerror(code));
        err->code = code;
    }
    return -code;
}

void berr_clear(struct berr *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *berr_code_name(int code)
{
    if (code < 0)
        code = -code;
    switch (code) {
    case 0: return "ok";
    case EINVAL: return "invalid";
    case ENOENT: return "not_found";
    case EEXIST: return "exists";
    case EBUSY: return "busy";
    case ENOSPC: return "no_space";
    case EIO: return "io_error";
    case EPERM:
    case EACCES: return "permission_denied";
    case ENOTSUP: return "not_supported";
    case EROFS: return "read_only";
    case ERANGE: return "out_of_range";
    case ENOMEM: return "no_memory";
    case ENAMETOOLONG: return "name_too_long";
    case EILSEQ: return "corrupt";
    case EAGAIN: return "try_again";
    case ETIMEDOUT: return "timeout";
    case ENODEV: return "no_device";
    case ENOKEY: return "key_missing";
    default: return "error";
    }
}
