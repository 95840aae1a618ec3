/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Per-block compression (lz4, zstd-N) and checksums (XXH3-128, SHA-256).
 * Thread-safe; no global state besides per-thread zstd contexts. */
#ifndef BERTH_STORE_CODEC_H
#define BERTH_STORE_CODEC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/store.h"

/* Bytes `dst` must hold for compress_block of `len` input bytes. */
size_t compress_bound(size_t len);

/* Compress src[0..len) into dst (capacity dstcap >= compress_bound(len)).
 * Returns the compressed size if it saves at least len/8 (psize <= len -
 * len/8), 0 if the block should be stored raw (incompressible, or
 * BS_COMPRESS_OFF), or -errno on internal failure. */
long compress_block(enum bs_compress c, int level, const void *src, size_t len, void *dst,
                    size_t dstcap);

/* Recent compression outcomes of one stream of blocks (a dataset's data
 * blocks): an estimate of the fraction of its bytes that compression saves,
 * an exponentially weighted average over the blocks tried (a block not worth
 * compressing counts as saving nothing).  When trying saves less than
 * COMP_SKIP_BELOW (1/16) of the bytes written, only every
 * COMP_PROBE_EVERY-th block is tried (probe and compressor), backing off to
 * every COMP_PROBE_EVERY_MAX-th while the tries keep failing, and the others
 * are stored raw at once; when the estimate is back at COMP_RESUME_AT
 * (3/32), every block is tried again.  So a stream that does not pay for
 * its compression costs 1/64 of a try per block, and a stream that saves
 * less than 1/16 gives away most of that saving.  fio's reused
 * buffers are such a stream: after a while of 4K random writes 5-10 % of
 * the 16K blocks compress (two or more equal 4K writes in one block), 1-4 %
 * of the bytes, and trying every block cost ~15 % of berthd's CPU.  Real
 * compressible data saves far more (a tar of /usr/lib 27 %) and is tried
 * block by block as before.
 *
 * Weights: a tried block moves the estimate by 1/2^COMP_HIST_SHIFT of the
 * difference (a memory of ~256 blocks: a fresh stream, zero-initialised,
 * counts as saving everything, so ~700 incompressible blocks, 11 MiB of 16K
 * blocks, pass before the skipping starts, and data that alternates in runs
 * of a few MiB never starts it); while skipping, each tried block stands for
 * COMP_PROBE_EVERY and moves it by 1/2^COMP_HIST_SKIP_SHIFT, so data that
 * turns compressible is noticed within 1-5 tries (8-40 blocks: 1 for text,
 * 2 when the blocks save half, 5 when they save 20 %), while the rare
 * savers of a fio-like stream seldom end the skipping (simulated, blocks
 * skipped: 1 block in 20 saving 25 % (1.25 % of the bytes): 87 %; 1 in 10
 * saving 40 % (4 %): 49 %; 1 in 10 saving 50 % (5 %): 28 %; 1 in 7 saving
 * 50 % (7.5 %): 2 %; 1 in 5 saving 50 %: none).  On the 16K blocks of a
 * tar of /usr/lib (sampled offline) this stores 0.14 % more than trying
 * every block, on /usr/share 0.10 %.
 * Zero-initialised; updated with relaxed atomics by any number of threads
 * (a lost update only shifts when a block is tried). */
#define COMP_PROBE_EVERY 8u
/* While skipping, every tried block that saves nothing doubles the gap to
 * the next try, up to COMP_PROBE_EVERY_MAX; one that saves anything sets it
 * back to COMP_PROBE_EVERY.  A stream that stays incompressible (encrypted
 * or media data, fio's buffers) then pays for 1 try in 64 blocks: the
 * probe's lz4 pass over fio's 2 KiB samples cost ~3 us in a quiet loop but
 * ~10 us in berthd under load, 5-8 % of its CPU on 1 MiB writes at 1 in 8
 * (docs/PERFORMANCE.md, ninth round).  Data that turns compressible is
 * still noticed on the next try, within 64 blocks (1 MiB of 16K blocks),
 * and the tries after it come every COMP_PROBE_EVERY blocks again. */
#define COMP_PROBE_EVERY_MAX 64u
#define COMP_HIST_ONE 65536u                       /* fixed point of comp_hist.unsaved */
#define COMP_SKIP_BELOW (COMP_HIST_ONE / 16)       /* saved fraction, fixed point */
#define COMP_RESUME_AT (COMP_HIST_ONE * 3 / 32)
#define COMP_HIST_SHIFT 8u
#define COMP_HIST_SKIP_SHIFT 3u
struct comp_hist {
    atomic_uint unsaved; /* COMP_HIST_ONE x (1 - estimated fraction saved) */
    atomic_uint skip;    /* 1 while only every COMP_PROBE_EVERY-th block is tried */
    atomic_uint tick;    /* blocks seen while skipping */
    atomic_uint next;    /* tick at which the next block is tried */
    atomic_uint gap;     /* ticks from one try to the next (0: COMP_PROBE_EVERY) */
};

/* compress_block with a history (NULL: exactly compress_block): the same
 * result, except that while `h` says the stream is incompressible a block
 * may be declared raw (0) untried.  Never changes what a read returns. */
long compress_block_hist(enum bs_compress c, int level, const void *src, size_t len, void *dst,
                         size_t dstcap, struct comp_hist *h);

/* The sampling test compress_block runs first on blocks of 8 KiB and more:
 * true when src[0..len) is surely not worth compressing with c (lz4 cannot
 * shrink a 2 KiB sample of it by 1/16; for zstd also a near-uniform byte
 * distribution); false for shorter blocks and BS_COMPRESS_OFF.
 * Deterministic; 1-3 us for any block size. */
bool compress_probe_incompressible(enum bs_compress c, const void *src, size_t len);

/* Decompress exactly lsize bytes; -EILSEQ if src is not a valid stream that
 * yields exactly lsize bytes (never reads or writes out of bounds). */
int decompress_block(enum bs_compress c, const void *src, size_t psize, void *dst, size_t lsize);

/* Checksum buf[0..len) into out (32 bytes; XXH3-128 fills 16 and zeroes the
 * rest).  Unknown type: zeroes. */
void checksum_compute(enum bs_checksum c, const void *buf, size_t len, uint8_t out[32]);

/* 1 if equal, 0 otherwise (compares 16 bytes for XXH3, 32 for SHA-256). */
int checksum_equal(enum bs_checksum c, const uint8_t a[32], const uint8_t b[32]);

/* XXH3-128 as 16 bytes (little-endian low64 then high64): for self-checksums. */
void xxh3_128(const void *buf, size_t len, uint8_t out[16]);
void sha256(const void *buf, size_t len, uint8_t out[32]);

#endif
