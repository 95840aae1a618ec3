/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the fixed newstyle handshake (src/nbd/handshake.c) fed
 * from a byte buffer as the client's side of the stream, over the memory
 * backend (exports "", "disk", "ro" read-only, "al" 512-byte aligned).  The
 * server's replies are parsed back and must be well framed: option replies
 * with the reply magic and a length that matches, or the EXPORT_NAME reply.
 * Must never crash, leak or leave an export handle open. */
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "nbd/membackend.h"
#include "nbd/nbd_int.h"

struct mio {
    const uint8_t *p;
    size_t left;
    int writes;
};

static int mread(void *o, void *buf, size_t len)
{
    struct mio *m = o;
    if (len > m->left)
        return -EPIPE;
    memcpy(buf, m->p, len);
    m->p += len;
    m->left -= len;
    return 0;
}

static int mwrite(void *o, const void *buf, size_t len)
{
    struct mio *m = o;
    const uint8_t *b = buf;
    /* the hello, option replies, or the 10/134-byte EXPORT_NAME reply */
    if (m->writes++ == 0) {
        if (len != NBD_SERVER_HELLO_SIZE || get_be64(b) != NBD_MAGIC)
            __builtin_trap();
    } else if (len >= NBD_OPT_REPLY_HDR_SIZE && get_be64(b) == NBD_REP_MAGIC) {
        if (get_be32(b + 16) != len - NBD_OPT_REPLY_HDR_SIZE)
            __builtin_trap();
    } else if (len != NBD_EXPORT_NAME_REPLY_SIZE &&
               len != NBD_EXPORT_NAME_REPLY_SIZE + NBD_EXPORT_NAME_PAD) {
        __builtin_trap();
    }
    return 0;
}

static struct nbd_mem *mem;
static struct nbd_backend be;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!mem) {
        nbd_mem_new(&mem);
        nbd_mem_add(mem, "", 1 << 20, false, 0, NULL);
        nbd_mem_add(mem, "disk", 1 << 20, false, 0, NULL);
        nbd_mem_add(mem, "ro", 1 << 20, true, 0, NULL);
        nbd_mem_add(mem, "al", 1 << 20, false, 512, NULL);
        nbd_mem_backend(mem, &be);
    }
    struct mio m = {data, size, 0};
    struct nbd_hs_io io = {.read = mread, .write = mwrite, .o = &m};
    struct nbd_session s;
    int ret = nbd_handshake(&be, &io, &s);
    if (ret == 0) {
        if (!s.handle || s.info.min_block == 0 || s.info.max_block > NBD_MAX_PAYLOAD ||
            (s.meta_alloc && !s.structured))
            __builtin_trap();
        nbd_session_close(&s);
    } else if (s.handle || s.meta_export) {
        __builtin_trap(); /* a failed handshake cleans up after itself */
    }
    if (nbd_mem_open_count(mem, "disk") || nbd_mem_open_count(mem, "") ||
        nbd_mem_open_count(mem, "ro") || nbd_mem_open_count(mem, "al"))
        __builtin_trap();
    return 0;
}
