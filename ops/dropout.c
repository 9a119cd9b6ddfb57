/* Inverted dropout: y = x * mask, mask = 1/(1-p) with probability 1-p, else 0 (p = 1: all 0).
 * The mask is drawn from a tg_rng (NULL = the global generator) in element order, so a seed
 * reproduces it; it is saved for backward: dx += dy * mask. Eval (training = false) and p = 0
 * copy x and pass the gradient straight through.
 */
#include "../core/core_internal.h"
#include "nn_ops.h"

#include <math.h>
#include <string.h>

static void dropout_backward(tg_node *n)
{
    tg_tensor *x = n->in[0];
    if (!tg_needs_grad(x)) return;
    float *dx = tg_grad(x);
    if (!dx) return;
    const float *dy = n->out->grad, *mask = n->ctx;
    if (mask) {
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
        for (int64_t i = 0; i < x->numel; i++) dx[i] += dy[i] * mask[i];
    } else {
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
        for (int64_t i = 0; i < x->numel; i++) dx[i] += dy[i];
    }
}

TG_OP_DEFINE(DROPOUT_OP, dropout, dropout_backward);

tg_tensor *tg_dropout(tg_tensor *x, float p, bool training, tg_rng *rng)
{
    const char *op = "tg_dropout";
    if (!tg_check_f32(op, "x", x)) return NULL;
    if (!(p >= 0.0f && p <= 1.0f)) {
        tg_error(TG_ERR_ARG, "%s: p must be in [0, 1], got %g", op, p);
        return NULL;
    }
    tg_tensor *y = tg_output_new(TG_F32, x->ndim, x->shape);
    if (!y) return NULL;
    float *mask = NULL;
    if (training && p > 0.0f) {
        mask = tg_arena_alloc((size_t)x->numel * sizeof(float));
        if (!mask) return NULL;
        if (!rng) rng = tg_rng_global();
        const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
        for (int64_t i = 0; i < x->numel; i++) mask[i] = tg_rng_uniform(rng) < p ? 0.0f : scale;
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
        for (int64_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] * mask[i];
    } else {
        memcpy(y->data, x->data, (size_t)x->numel * sizeof(float));
    }
    tg_node *n = tg_record(&DROPOUT_OP, y, 1, &x);
    if (n) n->ctx = mask;
    return y;
}
