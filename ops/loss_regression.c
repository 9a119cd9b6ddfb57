/* Regression and distribution losses: mse, l1, smooth_l1, huber, kl_div.
 * Each is a block fn for the elementwise driver (ops/loss_util.c): it writes the
 * loss and, when a gradient is wanted, the derivative w.r.t. the input. */
/* Our kernels never read the floating-point exception flags: without this GCC will not
 * if-convert float selects (clamps in tg_expf_fast, sigmoid's branch) and the loops stay scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>

#include "loss.h"
#include "loss_util.h"

typedef struct {
    const float *x, *y;
    float a; /* beta / delta */
} pair_ctx;

/* ---- mse: (x-y)^2, d = 2(x-y) ---- */

static void mse_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const pair_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0;
    for (int64_t k = 0; k < n; k++) {
        float r = x[k] - y[k];
        l[k] = r * r;
    }
    if (d)
        for (int64_t k = 0; k < n; k++) d[k] = 2.0f * (x[k] - y[k]);
}

TG_OP_DEFINE(MSE_OP, mse_loss, tgl_ew_backward);

tg_tensor *tg_mse_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction)
{
    if (!tgl_check_pair("tg_mse_loss", input, target) || !tgl_check_reduction("tg_mse_loss", reduction, false))
        return NULL;
    pair_ctx c = {input->data, target->data, 0};
    return tgl_ew_run(&MSE_OP, input, target, reduction, 0, mse_block, &c);
}

/* ---- l1: |x-y|, d = sign(x-y) (0 at x == y) ---- */

static void l1_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const pair_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0;
    for (int64_t k = 0; k < n; k++) l[k] = fabsf(x[k] - y[k]);
    if (d)
        for (int64_t k = 0; k < n; k++) {
            float r = x[k] - y[k];
            d[k] = (float)(r > 0) - (float)(r < 0);
        }
}

TG_OP_DEFINE(L1_OP, l1_loss, tgl_ew_backward);

tg_tensor *tg_l1_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction)
{
    if (!tgl_check_pair("tg_l1_loss", input, target) || !tgl_check_reduction("tg_l1_loss", reduction, false))
        return NULL;
    pair_ctx c = {input->data, target->data, 0};
    return tgl_ew_run(&L1_OP, input, target, reduction, 0, l1_block, &c);
}

/* ---- smooth_l1: |r| < beta ? 0.5 r^2/beta : |r| - 0.5 beta (beta 0: |r|) ----
 * Gradient in PyTorch 1.13's order: r <= -beta ? -1 : r >= beta ? 1 : r/beta, so beta = 0 gives
 * -1 (not 0) at r = 0. */

static void smooth_l1_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const pair_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0;
    float beta = c->a;
    for (int64_t k = 0; k < n; k++) {
        float r = x[k] - y[k], a = fabsf(r);
        l[k] = a < beta ? 0.5f * r * r / beta : a - 0.5f * beta;
        if (d) d[k] = r <= -beta ? -1.0f : r >= beta ? 1.0f : r / beta; /* PyTorch's order: -1 at r = 0 = beta */
    }
}

TG_OP_DEFINE(SMOOTH_L1_OP, smooth_l1_loss, tgl_ew_backward);

tg_tensor *tg_smooth_l1_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction, float beta)
{
    const char *op = "tg_smooth_l1_loss";
    if (!tgl_check_pair(op, input, target) || !tgl_check_reduction(op, reduction, false)) return NULL;
    if (!(beta >= 0)) {
        tg_error(TG_ERR_ARG, "%s: beta must be >= 0, got %g", op, beta);
        return NULL;
    }
    pair_ctx c = {input->data, target->data, beta};
    return tgl_ew_run(&SMOOTH_L1_OP, input, target, reduction, 0, smooth_l1_block, &c);
}

/* ---- huber: |r| < delta ? 0.5 r^2 : delta (|r| - 0.5 delta) ---- */

static void huber_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const pair_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0;
    float delta = c->a;
    for (int64_t k = 0; k < n; k++) {
        float r = x[k] - y[k], a = fabsf(r);
        l[k] = a < delta ? 0.5f * r * r : delta * (a - 0.5f * delta);
        if (d) d[k] = r < -delta ? -delta : r > delta ? delta : r; /* PyTorch's order: NaN gives NaN */
    }
}

TG_OP_DEFINE(HUBER_OP, huber_loss, tgl_ew_backward);

tg_tensor *tg_huber_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction, float delta)
{
    const char *op = "tg_huber_loss";
    if (!tgl_check_pair(op, input, target) || !tgl_check_reduction(op, reduction, false)) return NULL;
    if (!(delta > 0)) {
        tg_error(TG_ERR_ARG, "%s: delta must be > 0, got %g", op, delta);
        return NULL;
    }
    pair_ctx c = {input->data, target->data, delta};
    return tgl_ew_run(&HUBER_OP, input, target, reduction, 0, huber_block, &c);
}

/* ---- kl_div: y (ln y - x) where y > 0 (0 where y == 0); log_target: e^y (y - x) ---- */

static void kl_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const pair_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0;
    for (int64_t k = 0; k < n; k++) {
        float t = y[k];
        float xlogy = t == 0.0f ? 0.0f : t * logf(t); /* xlogy(y, y): NaN for y < 0, as PyTorch */
        l[k] = xlogy - t * x[k];
        if (d) d[k] = -t;
    }
}

static void kl_log_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const pair_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0;
    for (int64_t k = 0; k < n; k++) {
        float e = expf(y[k]);
        l[k] = e * (y[k] - x[k]);
        if (d) d[k] = -e;
    }
}

TG_OP_DEFINE(KL_DIV_OP, kl_div, tgl_ew_backward);

tg_tensor *tg_kl_div(tg_tensor *input, tg_tensor *target, tg_kl_div_opts opts)
{
    const char *op = "tg_kl_div";
    if (!tgl_check_pair(op, input, target) || !tgl_check_reduction(op, opts.reduction, true)) return NULL;
    double batch = input->ndim ? (double)input->shape[0] : 1.0;
    pair_ctx c = {input->data, target->data, 0};
    return tgl_ew_run(&KL_DIV_OP, input, target, opts.reduction, batch, opts.log_target ? kl_log_block : kl_block,
                      &c);
}
