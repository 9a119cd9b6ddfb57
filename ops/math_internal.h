/* Kernels shared by the elementwise, activation and reduction ops (and by any
 * op whose backward has to undo a broadcast). Not part of the public API.
 * All buffers are contiguous row-major float arrays owned by the caller. */
#ifndef TG_MATH_INTERNAL_H
#define TG_MATH_INTERNAL_H

#include "../core/core_internal.h"
#include "fastmath_internal.h"

#include <omp.h>

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

/* ---- unary ops (elementwise.c, activation.c): y = f(x), same shape ---- */

/* The output of a unary op on a: a's shape; NULL + error naming op if a is not a live float tensor. */
static inline tg_tensor *tg_unary_output(const char *op, tg_tensor *a)
{
    if (!tg_check_f32(op, "a", a)) return NULL;
    return tg_output_new(TG_F32, a->ndim, a->shape);
}

/* A unary op whose forward is a map kernel: y = kernel(x) over a's elements (tg_parallel_map),
 * recorded as def. NULL + error naming op if a is not a live float tensor. */
static inline tg_tensor *tg_unary_map(const char *op, const tg_op_def *def, tg_tensor *a, tg_map_kernel kernel)
{
    tg_tensor *out = tg_unary_output(op, a);
    if (!out) return NULL;
    tg_parallel_map(kernel, out->data, a->data, a->numel);
    tg_record(def, out, 1, &a);
    return out;
}

/* Declares n, x, y (input data, output data) for a forward loop. */
#define TG_UNARY_VARS(a, out)                                                                                \
    const int64_t n = (a)->numel;                                                                            \
    const float *restrict x = (a)->data;                                                                     \
    float *restrict y = (out)->data

/* Declares n, x, y, g, gx for a backward loop; returns if no gradient is wanted (or out of memory). */
#define TG_UNARY_GRAD_VARS(node)                                                                             \
    float *restrict gx = tg_input_grad((node), 0);                                                           \
    if (!gx) return;                                                                                         \
    const int64_t n = (node)->out->numel;                                                                    \
    const float *restrict x = (node)->in[0]->data;                                                           \
    const float *restrict y = (node)->out->data;                                                             \
    const float *restrict g = (node)->out->grad;                                                             \
    (void)x;                                                                                                 \
    (void)y

#endif
