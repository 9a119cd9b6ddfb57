/* Helpers shared by the loss_extra_*.c files: reduction checks, reduced output,
 * and the upstream gradient of one unreduced element. Not public API. */
#ifndef TG_LOSS_EXTRA_INTERNAL_H
#define TG_LOSS_EXTRA_INTERNAL_H

#include <math.h>

#include "../core/core_internal.h"
#include "loss_extra.h"

/* false + error naming op if r is not mean/sum/none. */
static inline bool lx_check_reduction(const char *op, tg_reduction r)
{
    if (r == TG_REDUCTION_MEAN || r == TG_REDUCTION_SUM || r == TG_REDUCTION_NONE) return true;
    if (r == TG_REDUCTION_BATCHMEAN)
        tg_error(TG_ERR_ARG, "%s: reduction batchmean is only for kl_div; use mean, sum or none", op);
    else
        tg_error(TG_ERR_ARG, "%s: unknown reduction %d", op, (int)r);
    return false;
}

/* A value that defaults when zero: a nonzero value, or zero with has_value, is used as given. */
static inline float lx_default(float value, bool has_value, float dflt)
{
    return (has_value || value != 0.0f) ? value : dflt;
}

/* The output of a loss: the unreduced shape (ndim, shape) under NONE, a scalar otherwise. */
static inline tg_tensor *lx_output(tg_reduction r, int ndim, const int64_t *shape)
{
    return r == TG_REDUCTION_NONE ? tg_output_new(TG_F32, ndim, shape) : tg_output_new(TG_F32, 0, NULL);
}

/* Writes the reduced value (sum of `count` element losses) into a scalar output. */
static inline void lx_write_reduced(tg_tensor *out, tg_reduction r, double sum, int64_t count)
{
    if (r == TG_REDUCTION_SUM) out->data[0] = (float)sum;
    else if (r == TG_REDUCTION_MEAN) out->data[0] = (float)(sum / (double)count); /* 0/0 = NaN as PyTorch */
}

/* Upstream gradient of element i of the unreduced loss: g[i * step] * scale. */
typedef struct {
    const float *g;
    int64_t step;
    float scale;
} lx_upstream;

static inline lx_upstream lx_upstream_of(const tg_tensor *out, tg_reduction r, int64_t count)
{
    lx_upstream u = {out->grad, 0, 1.0f};
    if (r == TG_REDUCTION_NONE) u.step = 1;
    else if (r == TG_REDUCTION_MEAN) u.scale = (float)(1.0 / (double)count);
    return u;
}

static inline float lx_up(const lx_upstream *u, int64_t i) { return u->g[i * u->step] * u->scale; }

/* max(z, 0) that keeps NaN, as PyTorch's clamp_min (z > 0 ? z : 0 would turn NaN into 0). */
static inline float lx_clamp_min0(float z) { return z > 0 || z != z ? z : 0.0f; }

/* Reads element i of a float or int64 target as float. */
static inline float lx_target_at(const tg_tensor *t, int64_t i)
{
    return t->dtype == TG_F32 ? t->data[i] : (float)t->idata[i];
}

/* A target of either dtype (checks NULL, keeps an earlier error). */
static inline bool lx_check_target(const char *op, const char *arg, const tg_tensor *t)
{
    if (!t) {
        if (tg_last_status() == TG_OK) tg_error(TG_ERR_ARG, "%s: %s is NULL", op, arg);
        return false;
    }
    return tg_check_live(op, arg, t);
}

/* Same shape, or an error "op: a has shape X but b has shape Y". */
static inline bool lx_check_same_shape(const char *op, const char *a_name, const tg_tensor *a, const char *b_name,
                                       const tg_tensor *b)
{
    if (tg_tensor_same_shape(a, b)) return true;
    char x[96], y[96];
    tg_error(TG_ERR_SHAPE, "%s: %s has shape %s but %s has shape %s; they must be the same (no broadcasting)", op,
             b_name, tg_shape_str(b, y, sizeof y), a_name, tg_shape_str(a, x, sizeof x));
    return false;
}

#endif
