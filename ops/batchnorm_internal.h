/* What tg_batch_norm (batchnorm.c) and tg_sync_batch_norm (batchnorm_sync.c) share: the argument
 * checks, the per-channel sums, the running-statistics update and the normalised output. Not part
 * of the API.
 *
 * x is viewed as (N, C, S): channel c of image i is the row x + (i*C + c)*S of S values. Every sum
 * over a channel adds a row's S values in float, then the N row sums in double, in this order: the
 * results of both ops (and the experiment's bits) depend on it, so keep it.
 */
#ifndef TG_BATCHNORM_INTERNAL_H
#define TG_BATCHNORM_INTERNAL_H

#include "../core/core_internal.h"

#include <math.h>

#define BN_INLINE static inline __attribute__((always_inline))

typedef struct {
    int64_t N, C, S;
} bn_dims;

static inline bn_dims bn_dims_of(const tg_tensor *x)
{
    const int64_t N = x->shape[0], C = x->shape[1];
    return (bn_dims){N, C, C > 0 && N > 0 ? x->numel / (N * C) : 0};
}

/* ---- argument checks (false: an error naming op is set) ----------------- */

static inline bool bn_check_channel_vec(const char *op, const char *arg, const tg_tensor *t, const tg_tensor *x)
{
    if (!t) return true;
    if (!tg_check_f32(op, arg, t)) return false;
    const int64_t C = x->shape[1];
    if (t->numel != C || t->ndim != 1) {
        char a[96], b[96];
        tg_error(TG_ERR_SHAPE, "%s: %s must have shape (%lld) for x %s, got %s", op, arg, (long long)C,
                 tg_shape_str(x, b, sizeof b), tg_shape_str(t, a, sizeof a));
        return false;
    }
    return true;
}

/* weight, bias and the running statistics: (C) or NULL, running_mean and running_var together; eps >= 0. */
static inline bool bn_check_tensors(const char *op, const tg_tensor *x, const tg_tensor *weight, const tg_tensor *bias,
                                    const tg_tensor *running_mean, const tg_tensor *running_var, float eps)
{
    if (!bn_check_channel_vec(op, "weight", weight, x) || !bn_check_channel_vec(op, "bias", bias, x) ||
        !bn_check_channel_vec(op, "running_mean", running_mean, x) ||
        !bn_check_channel_vec(op, "running_var", running_var, x))
        return false;
    if (!running_mean != !running_var) {
        tg_error(TG_ERR_ARG, "%s: give both running_mean and running_var, or neither", op);
        return false;
    }
    if (!(eps >= 0)) {
        tg_error(TG_ERR_ARG, "%s: eps must be non-negative, got %g", op, eps);
        return false;
    }
    return true;
}

/* Eval needs running statistics; training with them needs a momentum in [0, 1], or NAN (the
 * cumulative average) with a num_batches_tracked to count in. */
static inline bool bn_check_momentum(const char *op, bool training, bool has_running, const int64_t *num_batches_tracked,
                                     float momentum)
{
    if (!training && !has_running) {
        tg_error(TG_ERR_ARG, "%s: eval mode (training=false) needs running_mean and running_var", op);
        return false;
    }
    if (training && has_running && isnan(momentum) && !num_batches_tracked) {
        tg_error(TG_ERR_ARG, "%s: momentum NAN (cumulative average) needs num_batches_tracked", op);
        return false;
    }
    if (training && has_running && !isnan(momentum) && !(momentum >= 0 && momentum <= 1)) {
        tg_error(TG_ERR_ARG, "%s: momentum must be in [0, 1] or NAN, got %g", op, momentum);
        return false;
    }
    return true;
}

/* ---- statistics --------------------------------------------------------- */

/* Row i of channel c. */
#define BN_ROW(x, d, i, c) ((x) + ((i) * (d).C + (c)) * (d).S)

/* Σ x over channel c. Four rows' float sums run side by side (independent addition chains), each in
 * element order, and are added to the double in row order: the same bits as one row at a time. */
BN_INLINE double bn_channel_sum(const float *x, bn_dims d, int64_t c)
{
    double s = 0.0;
    int64_t i = 0;
    for (; i + 4 <= d.N; i += 4) {
        const float *x0 = BN_ROW(x, d, i, c), *x1 = x0 + d.C * d.S, *x2 = x1 + d.C * d.S, *x3 = x2 + d.C * d.S;
        float p0 = 0.0f, p1 = 0.0f, p2 = 0.0f, p3 = 0.0f;
        for (int64_t k = 0; k < d.S; k++) p0 += x0[k], p1 += x1[k], p2 += x2[k], p3 += x3[k];
        s += p0, s += p1, s += p2, s += p3;
    }
    for (; i < d.N; i++) {
        const float *xr = BN_ROW(x, d, i, c);
        float part = 0.0f;
        for (int64_t k = 0; k < d.S; k++) part += xr[k];
        s += part;
    }
    return s;
}

/* Σ (x - m)^2 over channel c, in the same order as bn_channel_sum. */
BN_INLINE double bn_channel_sqdev(const float *x, bn_dims d, int64_t c, float m)
{
    double ss = 0.0;
    int64_t i = 0;
    for (; i + 4 <= d.N; i += 4) {
        const float *x0 = BN_ROW(x, d, i, c), *x1 = x0 + d.C * d.S, *x2 = x1 + d.C * d.S, *x3 = x2 + d.C * d.S;
        float p0 = 0.0f, p1 = 0.0f, p2 = 0.0f, p3 = 0.0f;
        for (int64_t k = 0; k < d.S; k++) {
            p0 += (x0[k] - m) * (x0[k] - m), p1 += (x1[k] - m) * (x1[k] - m);
            p2 += (x2[k] - m) * (x2[k] - m), p3 += (x3[k] - m) * (x3[k] - m);
        }
        ss += p0, ss += p1, ss += p2, ss += p3;
    }
    for (; i < d.N; i++) {
        const float *xr = BN_ROW(x, d, i, c);
        float part = 0.0f;
        for (int64_t k = 0; k < d.S; k++) part += (xr[k] - m) * (xr[k] - m);
        ss += part;
    }
    return ss;
}

static inline float bn_invstd(double var, float eps) { return (float)(1.0 / sqrt(var + eps)); }

/* Counts a training batch in *num_batches_tracked (if given) and returns the running statistics'
 * update factor: momentum, or 1/num_batches_tracked for momentum NAN; 0 without running statistics. */
static inline double bn_count_batch(bool training, bool has_running, int64_t *num_batches_tracked, float momentum)
{
    if (!training) return 0.0;
    if (num_batches_tracked) (*num_batches_tracked)++;
    if (!has_running) return 0.0;
    return isnan(momentum) ? 1.0 / (double)*num_batches_tracked : (double)momentum;
}

/* r = (1 - factor) r + factor * stat, with the unbiased variance ss / (M - 1). */
static inline void bn_running_update(float *rmean, float *rvar, double factor, double mean, double ss, double M)
{
    *rmean = (float)((1.0 - factor) * *rmean + factor * mean);
    *rvar = (float)((1.0 - factor) * *rvar + factor * ss / (M - 1.0));
}

/* ---- output ------------------------------------------------------------- */

/* yr = xr * a + b over one row of S values (a = invstd * gamma, b = beta - mean * a), then relu if
 * asked. yr may be xr (in place). */
BN_INLINE void bn_normalize_row(const float *xr, float *yr, int64_t S, float a, float b, bool relu)
{
    if (relu)
        for (int64_t k = 0; k < S; k++) {
            const float v = xr[k] * a + b;
            yr[k] = v < 0.0f ? 0.0f : v; /* as tg_relu: NaN stays NaN */
        }
    else
        for (int64_t k = 0; k < S; k++) yr[k] = xr[k] * a + b;
}

/* bn_normalize_row over channel c of every image. */
BN_INLINE void bn_normalize_channel(const float *x, float *y, bn_dims d, int64_t c, float a, float b, bool relu)
{
    for (int64_t i = 0; i < d.N; i++)
        bn_normalize_row(x + (i * d.C + c) * d.S, y + (i * d.C + c) * d.S, d.S, a, b, relu);
}

#endif
