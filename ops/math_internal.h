/* Kernels shared by the elementwise, activation and reduction ops (and by any
 * op whose backward has to undo a broadcast). Not part of the public API.
 * All buffers are contiguous row-major float arrays owned by the caller. */
#ifndef TG_MATH_INTERNAL_H
#define TG_MATH_INTERNAL_H

#include "../core/core_internal.h"

#include <omp.h>

/* Compute-bound kernels (exp, sigmoid, softmax) are compiled for AVX-512, AVX2+FMA
 * and baseline x86-64; the loader picks the best for the CPU (GCC target_clones). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(TG_NO_CLONES)
#define TG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TG_CLONES
#endif

/* y[i] = f(x[i]) over n elements, split into one contiguous chunk per OpenMP
 * thread when n > TG_PARALLEL_MIN (one kernel call per chunk, not per element). */
typedef void (*tg_map_kernel)(float *restrict y, const float *restrict x, int64_t n);
static inline void tg_parallel_map(tg_map_kernel kernel, float *y, const float *x, int64_t n)
{
    if (n <= TG_PARALLEL_MIN) {
        kernel(y, x, n);
        return;
    }
#pragma omp parallel
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t per = ((n + nt - 1) / nt + 15) & ~(int64_t)15, a = t * per, b = a + per < n ? a + per : n;
        if (a < b) kernel(y + a, x + a, b - a);
    }
}

/* dst[i] += scale * src[broadcast(i)]: src has `ndim` dims (same count as dst,
 * size 1 where it is broadcast). Vectorized inner loops, OpenMP when large. */
void tg_broadcast_accumulate(float *dst, int ndim, const int64_t *dst_shape, const float *src,
                             const int64_t *src_shape, float scale);

/* Sums src (shape `shape`, ndim dims) down to dst_shape (same ndim, size 1 on
 * the summed dims), times scale; dst = result, or dst += result if accumulate.
 * Partial sums in double over fixed chunks: the result does not depend on the
 * thread count. */
void tg_reduce_sum_to(const float *src, int ndim, const int64_t *shape, const int64_t *dst_shape, float *dst,
                      double scale, bool accumulate);

/* Sums a gradient of shape (out_ndim, out_shape) into the gradient of an input
 * of shape (in_ndim, in_shape) that was broadcast to it (leading dims added,
 * size-1 dims expanded): gin += scale * sum_to(g). */
void tg_unbroadcast_accumulate(float *gin, int in_ndim, const int64_t *in_shape, const float *g, int out_ndim,
                               const int64_t *out_shape, float scale);

/* exp(x) to about 1 ulp without libm calls, so loops around it vectorize;
 * inf/NaN/underflow (denormals included) behave as expf. */
static inline float tg_fast_expf(float x)
{
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x >= -104.0f ? x : -104.0f; /* exp(-104) underflows to 0; NaN handled at the end */
    xc = xc <= 89.0f ? xc : 89.0f;         /* exp(89) overflows to inf */
    float k = (xc * log2e + round_magic) - round_magic;
    float r = (xc - k * ln2_hi) - k * ln2_lo; /* |r| <= ln2/2, Cody-Waite */
    /* Taylor series of exp(r) to r^7: truncation error < 4e-9 relative. */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^k in two factors so that k down to -150 (denormal results) stays representable. */
    int32_t ki = (int32_t)k;
    int32_t k1 = ki >> 1, k2 = ki - k1;
    union { int32_t i; float f; } s1 = {.i = (k1 + 127) << 23}, s2 = {.i = (k2 + 127) << 23};
    float e = p * s1.f * s2.f;
    return x == x ? e : x;
}

#endif
