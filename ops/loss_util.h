/* What the loss files share (private): argument checks, broadcasting of weights,
 * deterministic blocked sums, vectorizable exp/log, and the elementwise-loss driver.
 * Not part of the public API. */
#ifndef TG_LOSS_UTIL_H
#define TG_LOSS_UTIL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../core/core_internal.h"
#include "loss_common.h"

/* Hot per-block kernels are compiled twice, for AVX2 and for baseline x86-64, and the
 * loader picks one (GCC function multiversioning); same IEEE operations in the same order,
 * so results do not depend on the clone. Helpers they call must be TGL_INLINE. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__)
#define TGL_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define TGL_KERNEL
#endif
#define TGL_INLINE static inline __attribute__((always_inline))

/* Elements per block of the deterministic reductions (and per call of an elementwise block fn). */
#define TGL_BLOCK 4096

/* A valid reduction for `op` (BATCHMEAN only if allow_batchmean); false + error otherwise. */
bool tgl_check_reduction(const char *op, tg_reduction r, bool allow_batchmean);
/* Float input and float target of the same shape; false + error naming op otherwise. */
bool tgl_check_pair(const char *op, const tg_tensor *input, const tg_tensor *target);
/* w broadcast to like's shape, as an arena array of like->numel floats (w's shape must
 * broadcast INTO like's shape). NULL + error naming op/arg otherwise. */
float *tgl_expand(const char *op, const char *arg, const tg_tensor *w, const tg_tensor *like);
/* sum of x[0..n) in a fixed order (blocks of TGL_BLOCK, 8 double lanes):
 * the same result whatever the thread count. */
double tgl_sum(const float *x, int64_t n);
/* Sum of one block (n <= TGL_BLOCK) in 8 double lanes, combined in a fixed order. */
TGL_INLINE double tgl_sum_block(const float *x, int64_t n)
{
    double acc[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[k + j];
    double s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; k < n; k++) s += x[k];
    return s;
}

/* max/min as a plain select (fmaxf is a libm call on baseline x86-64 and blocks vectorization). */
TGL_INLINE float tgl_maxf(float a, float b) { return a > b ? a : b; }
TGL_INLINE float tgl_minf(float a, float b) { return a < b ? a : b; }

/* exp for x <= 88 (Cephes polynomial, ~1 ulp); 0 below -87.3 (and for -inf); NaN gives NaN;
 * x > 88 (+inf included) gives exp(88). Written so loops vectorize. No undefined behaviour for
 * any x: 2^n is built from the bits of the rounding sum in unsigned arithmetic (a float -> int
 * conversion of NaN, and a shift of the negative int it gave, were undefined); a NaN x stays NaN
 * through the clamps and the polynomial, at no cost. */
TGL_INLINE float tgl_expf(float x)
{
    float xc = x > 88.0f ? 88.0f : x; /* (NaN passes both clamps) */
    xc = xc < -87.3f ? -87.3f : xc;
    float t = xc * 1.44269504088896341f + 12582912.0f; /* round to nearest via 1.5*2^23: t = 1.5*2^23 + n */
    float fn = t - 12582912.0f;
    float r = xc - fn * 0.693359375f;
    r = r + fn * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint32_t bits = (tb - 0x4B400000u + 127u) << 23; /* (n + 127) << 23 for n in [-126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    /* a multiply by the mask, not a branch: keeps the loop free of control flow (NaN * 0 stays NaN) */
    return y * scale * (float)(x >= -87.3f);
}

/* Natural log for positive normal finite x (Cephes polynomial, ~1 ulp); vectorizable.
 * Other x (NaN, inf, 0, negatives, denormals) give a finite meaningless value, without undefined
 * behaviour: a caller that can meet NaN selects it itself (a select here costs BCE 4%). */
TGL_INLINE float tgl_logf(float x)
{
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = ((bits >> 23) & 0xff) - 126;
    int32_t mbits = (bits & 0x807fffff) | 0x3f000000; /* mantissa in [0.5, 1) */
    float m;
    memcpy(&m, &mbits, sizeof m);
    float fe = (float)e;
    float small = (float)(m < 0.707106781186547524f); /* 1 or 0, no branch */
    fe -= small;
    m = m + m * small - 1.0f;
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    return m + y + 0.693359375f * fe;
}

/* ---- elementwise losses ------------------------------------------------
 * A block fn computes, for elements [i0, i0+n), the loss l[k] and (if d != NULL)
 * its derivative d[k] = dl/dinput. One call per block of <= TGL_BLOCK elements. */
typedef void (*tgl_ew_block_fn)(const void *ctx, int64_t i0, int64_t n, float *l, float *d);

/* Runs fn over input->numel elements in parallel blocks, reduces as `red`
 * (MEAN divides by numel, BATCHMEAN by batch_div), records `op` whose backward
 * is grad_input += upstream * d. Output: input's shape for NONE, a scalar otherwise. */
tg_tensor *tgl_ew_run(const tg_op_def *op, tg_tensor *input, tg_tensor *target, tg_reduction red,
                      double batch_div, tgl_ew_block_fn fn, const void *ctx);
/* The backward of every tgl_ew_run op (name it in your tg_op_def). */
void tgl_ew_backward(tg_node *n);

#endif
