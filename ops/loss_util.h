/* What the loss family (loss_*.c, loss_extra_*.c) shares, private prefix tgl_: argument checks,
 * broadcasting of weights, deterministic blocked sums, the elementwise-loss driver, and the
 * reduced output and upstream gradient of the losses that write their own loops. Hot per-block
 * kernels are TG_CLONES and use tg_expf_fast(x, TG_EXP_FLUSH) / tg_logf_fast (fastmath_internal.h).
 * Not part of the public API. */
#ifndef TG_LOSS_UTIL_H
#define TG_LOSS_UTIL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../core/core_internal.h"
#include "fastmath_internal.h"
#include "loss_common.h"

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
TG_INLINE double tgl_sum_block(const float *x, int64_t n)
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
TG_INLINE float tgl_maxf(float a, float b) { return a > b ? a : b; }
TG_INLINE float tgl_minf(float a, float b) { return a < b ? a : b; }

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

/* ---- losses that write their own loops (loss_extra_*.c) ---- */

/* A value that defaults when zero: a nonzero value, or zero with has_value, is used as given. */
static inline float tgl_default(float value, bool has_value, float dflt)
{
    return (has_value || value != 0.0f) ? value : dflt;
}

/* The output of a loss: the unreduced shape (ndim, shape) under NONE, a scalar otherwise. */
static inline tg_tensor *tgl_output(tg_reduction r, int ndim, const int64_t *shape)
{
    return r == TG_REDUCTION_NONE ? tg_output_new(TG_F32, ndim, shape) : tg_output_new(TG_F32, 0, NULL);
}

/* Writes the reduced value (sum of `count` element losses) into a scalar output. */
static inline void tgl_write_reduced(tg_tensor *out, tg_reduction r, double sum, int64_t count)
{
    if (r == TG_REDUCTION_SUM) out->data[0] = (float)sum;
    else if (r == TG_REDUCTION_MEAN) out->data[0] = (float)(sum / (double)count); /* 0/0 = NaN as PyTorch */
}

/* Upstream gradient of element i of the unreduced loss: g[i * step] * scale. */
typedef struct {
    const float *g;
    int64_t step;
    float scale;
} tgl_upstream;

static inline tgl_upstream tgl_upstream_of(const tg_tensor *out, tg_reduction r, int64_t count)
{
    tgl_upstream u = {out->grad, 0, 1.0f};
    if (r == TG_REDUCTION_NONE) u.step = 1;
    else if (r == TG_REDUCTION_MEAN) u.scale = (float)(1.0 / (double)count);
    return u;
}

static inline float tgl_up(const tgl_upstream *u, int64_t i) { return u->g[i * u->step] * u->scale; }

/* max(z, 0) that keeps NaN, as PyTorch's clamp_min (z > 0 ? z : 0 would turn NaN into 0). */
static inline float tgl_clamp_min0(float z) { return z > 0 || z != z ? z : 0.0f; }

/* Reads element i of a float or int64 target as float. */
static inline float tgl_target_at(const tg_tensor *t, int64_t i)
{
    return t->dtype == TG_F32 ? t->data[i] : (float)t->idata[i];
}

/* A target of either dtype (checks NULL, keeps an earlier error). */
static inline bool tgl_check_target(const char *op, const char *arg, const tg_tensor *t)
{
    if (!t) {
        if (tg_last_status() == TG_OK) tg_error(TG_ERR_ARG, "%s: %s is NULL", op, arg);
        return false;
    }
    return tg_check_live(op, arg, t);
}

/* Same shape, or an error "op: a has shape X but b has shape Y". */
static inline bool tgl_check_same_shape(const char *op, const char *a_name, const tg_tensor *a, const char *b_name,
                                       const tg_tensor *b)
{
    if (tg_tensor_same_shape(a, b)) return true;
    char x[96], y[96];
    tg_error(TG_ERR_SHAPE, "%s: %s has shape %s but %s has shape %s; they must be the same (no broadcasting)", op,
             b_name, tg_shape_str(b, y, sizeof y), a_name, tg_shape_str(a, x, sizeof x));
    return false;
}

#endif
