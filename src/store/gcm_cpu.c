/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whether gcm_vaes.c can run here: the CPU has the instructions and the OS
 * saves the registers they use.  Compiled for baseline x86-64 (unlike
 * gcm_vaes.c), so it runs safely on any CPU. */
#include "store/gcm_vaes.h"

#if defined(BERTH_HAVE_GCM_VAES) && defined(__x86_64__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

bool gcm_vaes_supported(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    /* ecx: 1 pclmulqdq, 25 aes, 27 osxsave */
    if (!(c & (1u << 1)) || !(c & (1u << 25)) || !(c & (1u << 27)))
        return false;
    /* XCR0: SSE, AVX, opmask, upper halves of zmm0-15, zmm16-31 */
    if ((xgetbv0() & 0xe6) != 0xe6)
        return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    /* ebx: 16 avx512f, 30 avx512bw, 31 avx512vl; ecx: 9 vaes, 10 vpclmulqdq */
    return (b & (1u << 16)) && (b & (1u << 30)) && (b & (1u << 31)) && (c & (1u << 9)) &&
           (c & (1u << 10));
}
#else
bool gcm_vaes_supported(void)
{
    return false;
}
#endif
