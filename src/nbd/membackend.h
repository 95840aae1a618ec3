/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An in-memory, thin NBD backend: exports are sparse page tables (4 KiB
 * pages allocated on first non-zero write, freed by TRIM/WRITE_ZEROES and by
 * writes of whole zero pages), so BLOCK_STATUS reports holes.  It serves
 * nbd-memd, the unit tests and the fuzzers, and measures the server alone.
 *
 * Exports are added before the backend is served; nothing is removed until
 * nbd_mem_free().  I/O is thread-safe (per-page striped locks). */
#ifndef BERTH_NBD_MEMBACKEND_H
#define BERTH_NBD_MEMBACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "nbd/nbd_server.h"

#define NBD_MEM_PAGE 4096u
#define NBD_MEM_MAX_SIZE (UINT64_C(1) << 44) /* 16 TiB */

struct nbd_mem;

int nbd_mem_new(struct nbd_mem **out);
/* Add an export.  min_block 0 means 1.  -EEXIST, -EINVAL (size, name). */
int nbd_mem_add(struct nbd_mem *m, const char *name, uint64_t size, bool readonly,
                uint32_t min_block, struct berr *err);
/* From now on every I/O on `name` fails with -error (0 heals); for tests. */
void nbd_mem_set_fail(struct nbd_mem *m, const char *name, int error);
/* Bytes of allocated pages of `name` (0 if unknown). */
uint64_t nbd_mem_allocated(struct nbd_mem *m, const char *name);
/* Number of open handles of `name`. */
unsigned nbd_mem_open_count(struct nbd_mem *m, const char *name);
/* Fill *be with this backend (opaque = m). */
void nbd_mem_backend(struct nbd_mem *m, struct nbd_backend *be);
void nbd_mem_free(struct nbd_mem *m);

#endif
