/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Receive internals visible to tests (bs_recv itself is in store.h). */
#ifndef BERTH_STORE_RECV_H
#define BERTH_STORE_RECV_H

#include <stdint.h>

#define RECV_CHECKPOINT_BYTES (64ULL << 20)

/* How many stream bytes a resumable receive applies between two persisted
 * resume points (0 restores RECV_CHECKPOINT_BYTES).  Tests lower it to see
 * resumes in small streams. */
void recv_set_checkpoint_bytes(uint64_t bytes);

#endif
