/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RAID-Z parity math: generation of P, Q and R for a stripe and
 * reconstruction of up to three missing columns.  Pure computation on
 * caller-owned buffers: no I/O, no layout decisions (the raidz vdev decides
 * which sectors form a stripe).
 *
 * A stripe has `ncols` columns: columns 0 .. nparity-1 are parity (P, Q, R),
 * the rest are data columns D_0 .. D_{n-1} (n = ncols - nparity).  Every
 * parity column has the stripe's full length `psize` = cols[0].size; a data
 * column may be shorter (in ZFS raidz the first columns are one sector longer
 * than the last) and counts as zero-padded to psize.
 *
 * Over GF(2^8) with polynomial x^8+x^4+x^3+x^2+1 (0x11d), as in ZFS:
 *   P = D_0 ^ D_1 ^ ... ^ D_{n-1}
 *   Q = sum 2^(n-1-i) * D_i     (Horner: Q = 2*Q ^ D_i)
 *   R = sum 4^(n-1-i) * D_i
 * With n <= 255 any nparity columns of a stripe can be lost: every square
 * submatrix of the rows {1, 2^j, 4^j} used in a reconstruction is invertible.
 *
 * All functions are thread-safe (the tables are built once, under
 * pthread_once) and never abort on bad arguments. */
#ifndef BERTH_STORE_RAIDZ_MATH_H
#define BERTH_STORE_RAIDZ_MATH_H

#include <stddef.h>
#include <stdint.h>

#define RAIDZ_MAXPARITY 3
#define RAIDZ_MAXCOLS 255

struct raidz_col {
    uint8_t *buf;
    size_t size; /* parity: the stripe length; data: <= the stripe length */
};

/* Compute the nparity parity columns from the data columns.  0, or -EINVAL
 * (nparity not 1..3, fewer than one data column, more than RAIDZ_MAXCOLS
 * columns, parity sizes differ, a data column longer than parity, NULL
 * buffer). */
int raidz_generate(unsigned nparity, struct raidz_col *cols, unsigned ncols);

/* Rebuild the columns listed in `missing` (indices into cols, any mix of
 * parity and data, no duplicates) from the others, writing each missing
 * column's buffer in full (its own size).  0; -EIO if more columns are
 * missing than there is parity; -EINVAL for bad arguments; -ENOMEM.
 * The caller verifies the result with the block checksum: parity math cannot
 * tell which surviving column is silently wrong. */
int raidz_reconstruct(unsigned nparity, struct raidz_col *cols, unsigned ncols,
                      const unsigned *missing, unsigned nmissing);

/* GF(2^8) helpers (exposed for tests). */
uint8_t raidz_gf_mul(uint8_t a, uint8_t b);
uint8_t raidz_gf_inv(uint8_t a); /* inverse of a != 0; 0 for 0 */

#endif
