/* Likelihood losses for regression targets: poisson_nll and gaussian_nll
 * (PyTorch 1.13 semantics, see loss_extra.h). Element terms are computed in
 * float in PyTorch's order; sums accumulate in double. */
#include "loss_extra.h"
#include "loss_util.h"

#define TGL_PI 3.14159265358979323846

/* ---- poisson_nll_loss ---------------------------------------------------
 * Shapes: input, target one shape.
 * l = exp(x) - y x  (log input)  |  x - y log(x + eps); full: + y log y - y + 0.5 log(2 pi y) where y > 1.
 * dl/dx = exp(x) - y  |  1 - y / (x + eps). */

/* What the backward of poisson_nll and gaussian_nll keeps. */
typedef struct {
    tg_reduction reduction;
    float eps;
    bool log_input;   /* poisson_nll */
    int64_t per_var;  /* gaussian_nll: input elements per var element */
} nll_ctx;

static void poisson_nll_backward(tg_node *n)
{
    const tg_tensor *x = n->in[0], *t = n->in[1];
    const nll_ctx *c = n->ctx;
    float *gx = tg_input_grad(n, 0);
    if (!gx) return;
    const bool log_input = c->log_input;
    const float eps = c->eps;
    tgl_upstream up = tgl_upstream_of(n->out, c->reduction, x->numel);
    const float *xd = x->data, *yd = t->data;
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < x->numel; i++) {
        float d = log_input ? expf(xd[i]) - yd[i] : 1.0f - yd[i] / (xd[i] + eps);
        gx[i] += d * tgl_up(&up, i);
    }
}

TG_OP_DEFINE(POISSON_NLL_OP, poisson_nll_loss, poisson_nll_backward);

tg_tensor *tg_poisson_nll_loss(tg_tensor *input, tg_tensor *target, tg_poisson_nll_opts o)
{
    const char *op = "tg_poisson_nll_loss";
    if (!tg_check_f32(op, "input", input) || !tg_check_f32(op, "target", target)) return NULL;
    if (!tgl_check_reduction(op, o.reduction, false) || !tgl_check_same_shape(op, "input", input, "target", target))
        return NULL;
    const float eps = tgl_default(o.eps, o.has_eps, 1e-8f);
    const bool log_input = !o.no_log_input, full = o.full, none = o.reduction == TG_REDUCTION_NONE;
    tg_tensor *out = tgl_output(o.reduction, input->ndim, input->shape);
    nll_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!out || !cx) return NULL;
    *cx = (nll_ctx){.reduction = o.reduction, .eps = eps, .log_input = log_input};
    const float *xd = input->data, *yd = target->data;
    const float two_pi = (float)(2.0 * TGL_PI);
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) if (input->numel > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < input->numel; i++) {
        float x = xd[i], y = yd[i];
        float l = log_input ? expf(x) - y * x : x - y * logf(x + eps);
        if (full && y > 1.0f) l += y * logf(y) - y + 0.5f * logf(two_pi * y);
        if (none) out->data[i] = l;
        total += l;
    }
    tgl_write_reduced(out, o.reduction, total, input->numel);
    tg_tensor *in[2] = {input, target};
    tg_node *n = tg_record(&POISSON_NLL_OP, out, 2, in);
    if (n) n->ctx = cx;
    return out;
}

/* ---- gaussian_nll_loss --------------------------------------------------
 * Shapes: input, target (S); var (S), or one value per row of the last dim: S[:-1] or S[:-1]+(1).
 * l = 0.5 (log v + (x - y)^2 / v) [+ 0.5 log 2 pi], v = max(var, eps) (clamp invisible to autograd).
 * dl/dx = (x - y) / v; dl/dvar = 0.5 (1/v - (x - y)^2 / v^2), summed over the row for per-row var. */

static void gaussian_nll_backward(tg_node *n)
{
    const tg_tensor *x = n->in[0], *t = n->in[1], *var = n->in[2];
    const nll_ctx *c = n->ctx;
    float *gx = tg_input_grad(n, 0), *gv = tg_input_grad(n, 2);
    if ((tg_needs_grad(x) && !gx) || (tg_needs_grad(var) && !gv)) return; /* out of memory */
    const float eps = c->eps;
    const int64_t D = c->per_var;
    tgl_upstream up = tgl_upstream_of(n->out, c->reduction, x->numel);
    const int64_t R = var->numel;
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN)
    for (int64_t r = 0; r < R; r++) {
        float v = var->data[r] < eps ? eps : var->data[r];
        if (isnan(var->data[r])) v = var->data[r];
        double acc = 0.0;
        for (int64_t k = 0; k < D; k++) {
            int64_t i = r * D + k;
            float d = x->data[i] - t->data[i], g = tgl_up(&up, i);
            if (gx) gx[i] += g * d / v;
            acc += (double)g * 0.5 * (1.0 / v - (double)d * d / ((double)v * v));
        }
        if (gv) gv[r] += (float)acc;
    }
}

TG_OP_DEFINE(GAUSSIAN_NLL_OP, gaussian_nll_loss, gaussian_nll_backward);

tg_tensor *tg_gaussian_nll_loss(tg_tensor *input, tg_tensor *target, tg_tensor *var, tg_gaussian_nll_opts o)
{
    const char *op = "tg_gaussian_nll_loss";
    if (!tg_check_f32(op, "input", input) || !tg_check_f32(op, "target", target) || !tg_check_f32(op, "var", var))
        return NULL;
    if (!tgl_check_reduction(op, o.reduction, false) || !tgl_check_same_shape(op, "input", input, "target", target))
        return NULL;
    /* var: same shape (D = 1), or per row of the last dim (D = last dim). */
    int64_t D = 1;
    if (!tg_tensor_same_shape(input, var)) {
        bool ok = input->ndim >= 1;
        int lead = input->ndim - 1;
        if (ok && var->ndim == lead) {
            for (int d = 0; d < lead; d++) ok &= var->shape[d] == input->shape[d];
        } else if (ok && var->ndim == input->ndim) {
            for (int d = 0; d < lead; d++) ok &= var->shape[d] == input->shape[d];
            ok &= var->shape[lead] == 1;
        } else {
            ok = false;
        }
        if (!ok) {
            char a[96], b[96];
            tg_error(TG_ERR_SHAPE,
                     "%s: var has shape %s; for input %s it must have the same shape, the last dim 1, "
                     "or the last dim dropped",
                     op, tg_shape_str(var, b, sizeof b), tg_shape_str(input, a, sizeof a));
            return NULL;
        }
        D = input->shape[lead];
    }
    for (int64_t r = 0; r < var->numel; r++) {
        if (var->data[r] < 0) {
            tg_error(TG_ERR_VALUE, "%s: var has a negative entry (var[%lld] = %g); variances must be >= 0", op,
                     (long long)r, (double)var->data[r]);
            return NULL;
        }
    }
    const float eps = tgl_default(o.eps, o.has_eps, 1e-6f);
    const bool none = o.reduction == TG_REDUCTION_NONE;
    const float half_log_2pi = (float)(0.5 * log(2.0 * TGL_PI));
    tg_tensor *out = tgl_output(o.reduction, input->ndim, input->shape);
    nll_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!out || !cx) return NULL;
    *cx = (nll_ctx){.reduction = o.reduction, .eps = eps, .per_var = D};
    double total = 0.0;
    const int64_t R = var->numel;
#pragma omp parallel for reduction(+ : total) if (input->numel > TG_PARALLEL_MIN)
    for (int64_t r = 0; r < R; r++) {
        float v = var->data[r] < eps ? eps : var->data[r];
        if (isnan(var->data[r])) v = var->data[r];
        float lv = logf(v);
        for (int64_t k = 0; k < D; k++) {
            int64_t i = r * D + k;
            float d = input->data[i] - target->data[i];
            float l = 0.5f * (lv + d * d / v);
            if (o.full) l += half_log_2pi;
            if (none) out->data[i] = l;
            total += l;
        }
    }
    tgl_write_reduced(out, o.reduction, total, input->numel);
    tg_tensor *in[3] = {input, target, var};
    tg_node *n = tg_record(&GAUSSIAN_NLL_OP, out, 3, in);
    if (n) n->ctx = cx;
    return out;
}
