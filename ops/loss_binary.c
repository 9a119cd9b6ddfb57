/* Binary losses: binary_cross_entropy (on probabilities), the fused
 * binary_cross_entropy_with_logits, soft_margin, multilabel_soft_margin and
 * torchvision's sigmoid_focal_loss. Formulas in ops/loss.h. */
/* Our kernels never read the floating-point exception flags: without this GCC will not
 * if-convert float selects (clamps in tg_expf_fast, sigmoid's branch) and the loops stay scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>

#include "loss.h"
#include "loss_util.h"

/* ---- binary_cross_entropy ---- */

typedef struct {
    const float *x, *y, *w, *pw; /* w, pw: expanded to numel, or NULL */
} bin_ctx;

static void bce_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const bin_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0, *w = c->w ? c->w + i0 : NULL;
    for (int64_t k = 0; k < n; k++) {
        float lx = fmaxf(logf(x[k]), -100.0f), l1x = fmaxf(log1pf(-x[k]), -100.0f);
        float v = (y[k] - 1.0f) * l1x - y[k] * lx;
        l[k] = w ? w[k] * v : v;
        if (d) {
            float g = (x[k] - y[k]) / fmaxf((1.0f - x[k]) * x[k], 1e-12f); /* unclamped, as PyTorch */
            d[k] = w ? w[k] * g : g;
        }
    }
}

TG_OP_DEFINE(BCE_OP, binary_cross_entropy, tgl_ew_backward);

tg_tensor *tg_binary_cross_entropy(tg_tensor *input, tg_tensor *target, tg_bce_opts opts)
{
    const char *op = "tg_binary_cross_entropy";
    if (!tgl_check_pair(op, input, target) || !tgl_check_reduction(op, opts.reduction, false)) return NULL;
    if (opts.pos_weight) {
        tg_error(TG_ERR_ARG, "%s: pos_weight is only for tg_binary_cross_entropy_with_logits", op);
        return NULL;
    }
    for (int64_t i = 0; i < input->numel; i++) {
        float v = input->data[i];
        if (!(v >= 0.0f && v <= 1.0f)) {
            tg_error(TG_ERR_VALUE, "%s: all elements of input should be between 0 and 1 (input[%lld] = %g)", op,
                     (long long)i, v);
            return NULL;
        }
    }
    bin_ctx c = {input->data, target->data, NULL, NULL};
    if (opts.weight && !(c.w = tgl_expand(op, "weight", opts.weight, target))) return NULL;
    return tgl_ew_run(&BCE_OP, input, target, opts.reduction, 0, bce_block, &c);
}

/* ---- binary_cross_entropy_with_logits: fused, one exp and one log per element ----
 * t = e^-|x|; softplus(-x) = max(-x,0) + ln(1+t); sigmoid(x) = x >= 0 ? 1/(1+t) : t/(1+t). */

TG_CLONES static void bce_logits_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const bin_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0;
    if (!c->w && !c->pw) {
        if (d) {
            for (int64_t k = 0; k < n; k++) {
                float xv = x[k], yv = y[k];
                float t = tg_expf_fast(-fabsf(xv), TG_EXP_FLUSH), u = 1.0f + t;
                float sp = tgl_maxf(-xv, 0.0f) + tg_logf_fast(u);
                l[k] = (1.0f - yv) * xv + sp;
                float sig = (xv >= 0.0f ? 1.0f : t) / u;
                d[k] = sig - yv;
            }
        } else {
            for (int64_t k = 0; k < n; k++) {
                float xv = x[k], t = tg_expf_fast(-fabsf(xv), TG_EXP_FLUSH);
                l[k] = (1.0f - y[k]) * xv + tgl_maxf(-xv, 0.0f) + tg_logf_fast(1.0f + t);
            }
        }
        return;
    }
    const float *w = c->w + i0;
    if (!c->pw) { /* weight only: PyTorch's formula has no pos_weight term (1 + 0*y would be NaN for an
                   * infinite target) */
        for (int64_t k = 0; k < n; k++) {
            float xv = x[k], yv = y[k];
            float t = tg_expf_fast(-fabsf(xv), TG_EXP_FLUSH), u = 1.0f + t;
            float sp = tgl_maxf(-xv, 0.0f) + tg_logf_fast(u);
            l[k] = w[k] * ((1.0f - yv) * xv + sp);
        }
        if (d)
            for (int64_t k = 0; k < n; k++) {
                float xv = x[k], yv = y[k];
                float t = tg_expf_fast(-fabsf(xv), TG_EXP_FLUSH), sig = (xv >= 0.0f ? 1.0f : t) / (1.0f + t);
                /* (y + 1 - y) is the pos_weight-1 formula's factor (1 up to rounding; kept for the same
                 * bits as before); it is NaN only for an infinite (or NaN) y, where PyTorch's sig - y applies */
                float f = yv + 1.0f - yv;
                f = f == f ? f : 1.0f;
                d[k] = w[k] * (f * sig - yv);
            }
        return;
    }
    const float *pw = c->pw + i0; /* expanded; w expanded too (ones where not given) */
    for (int64_t k = 0; k < n; k++) {
        float xv = x[k], yv = y[k];
        float t = tg_expf_fast(-fabsf(xv), TG_EXP_FLUSH), u = 1.0f + t;
        float sp = tgl_maxf(-xv, 0.0f) + tg_logf_fast(u);
        float lw = 1.0f + (pw[k] - 1.0f) * yv;
        l[k] = w[k] * ((1.0f - yv) * xv + lw * sp);
    }
    if (d)
        for (int64_t k = 0; k < n; k++) {
            float xv = x[k], yv = y[k];
            float t = tg_expf_fast(-fabsf(xv), TG_EXP_FLUSH), sig = (xv >= 0.0f ? 1.0f : t) / (1.0f + t);
            float py = pw[k] * yv;
            d[k] = w[k] * ((py + 1.0f - yv) * sig - py);
        }
}

TG_OP_DEFINE(BCE_LOGITS_OP, binary_cross_entropy_with_logits, tgl_ew_backward);

static float *ones_like(const tg_tensor *t)
{
    float *o = tg_arena_alloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (o)
        for (int64_t i = 0; i < t->numel; i++) o[i] = 1.0f;
    return o;
}

tg_tensor *tg_binary_cross_entropy_with_logits(tg_tensor *input, tg_tensor *target, tg_bce_opts opts)
{
    const char *op = "tg_binary_cross_entropy_with_logits";
    if (!tgl_check_pair(op, input, target) || !tgl_check_reduction(op, opts.reduction, false)) return NULL;
    bin_ctx c = {input->data, target->data, NULL, NULL};
    if (opts.weight && !(c.w = tgl_expand(op, "weight", opts.weight, target))) return NULL;
    if (opts.pos_weight && !(c.pw = tgl_expand(op, "pos_weight", opts.pos_weight, target))) return NULL;
    if (c.pw && !c.w && !(c.w = ones_like(target))) return NULL;
    return tgl_ew_run(&BCE_LOGITS_OP, input, target, opts.reduction, 0, bce_logits_block, &c);
}

/* ---- soft_margin: ln(1 + e^(-y x)), naive as PyTorch; d = -y z/(1+z), z = e^(-y x) ---- */

static void soft_margin_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const bin_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0;
    for (int64_t k = 0; k < n; k++) {
        float z = expf(-y[k] * x[k]);
        l[k] = logf(1.0f + z);
        if (d) d[k] = -y[k] * z / (1.0f + z);
    }
}

TG_OP_DEFINE(SOFT_MARGIN_OP, soft_margin_loss, tgl_ew_backward);

tg_tensor *tg_soft_margin_loss(tg_tensor *input, tg_tensor *target, tg_reduction reduction)
{
    const char *op = "tg_soft_margin_loss";
    if (!tgl_check_pair(op, input, target) || !tgl_check_reduction(op, reduction, false)) return NULL;
    bin_ctx c = {input->data, target->data, NULL, NULL};
    return tgl_ew_run(&SOFT_MARGIN_OP, input, target, reduction, 0, soft_margin_block, &c);
}

/* ---- sigmoid_focal_loss (torchvision), computed in double per element ---- */

typedef struct {
    const float *x, *y;
    double alpha, gamma;
} focal_ctx;

static void focal_block(const void *vc, int64_t i0, int64_t n, float *l, float *d)
{
    const focal_ctx *c = vc;
    const float *x = c->x + i0, *y = c->y + i0;
    double g = c->gamma;
    for (int64_t k = 0; k < n; k++) {
        double xv = x[k], yv = y[k];
        double t = exp(-fabs(xv)), sig = (xv >= 0 ? 1.0 : t) / (1.0 + t);
        double ce = (1.0 - yv) * xv + fmax(-xv, 0.0) + log1p(t);
        double pt = sig * yv + (1.0 - sig) * (1.0 - yv), m = 1.0 - pt;
        double at = c->alpha >= 0 ? c->alpha * yv + (1.0 - c->alpha) * (1.0 - yv) : 1.0;
        double mg = pow(m, g);
        l[k] = (float)(at * ce * mg);
        if (d) {
            double dm = -sig * (1.0 - sig) * (2.0 * yv - 1.0);
            double term = g == 0 ? 0.0 : ce * g * pow(m, g - 1.0) * dm;
            d[k] = (float)(at * ((sig - yv) * mg + term));
        }
    }
}

TG_OP_DEFINE(FOCAL_OP, sigmoid_focal_loss, tgl_ew_backward);

tg_tensor *tg_sigmoid_focal_loss(tg_tensor *input, tg_tensor *target, float alpha, float gamma,
                                 tg_reduction reduction)
{
    const char *op = "tg_sigmoid_focal_loss";
    if (!tgl_check_pair(op, input, target) || !tgl_check_reduction(op, reduction, false)) return NULL;
    if (!(gamma >= 0)) {
        tg_error(TG_ERR_ARG, "%s: gamma must be >= 0, got %g", op, gamma);
        return NULL;
    }
    focal_ctx c = {input->data, target->data, alpha, gamma};
    return tgl_ew_run(&FOCAL_OP, input, target, reduction, 0, focal_block, &c);
}

/* ---- multilabel_soft_margin: rows over the last dim ---- */

typedef struct {
    float *d;      /* (w_c/C)(sigmoid(x) - y), numel of input */
    double scale;
    bool none;
    int64_t C;
} mlsm_ctx;

static void mlsm_backward(tg_node *n)
{
    const mlsm_ctx *c = n->ctx;
    tg_tensor *x = n->in[0];
    if (!c || !tg_needs_grad(x)) return;
    float *gx = tg_grad(x);
    if (!gx) return;
    const float *go = n->out->grad;
    int64_t rows = c->C ? x->numel / c->C : 0;
    for (int64_t r = 0; r < rows; r++) {
        float g = c->none ? go[r] : (float)(go[0] * c->scale);
        for (int64_t k = 0; k < c->C; k++) gx[r * c->C + k] += g * c->d[r * c->C + k];
    }
}

TG_OP_DEFINE(MLSM_OP, multilabel_soft_margin_loss, mlsm_backward);

tg_tensor *tg_multilabel_soft_margin_loss(tg_tensor *input, tg_tensor *target, tg_tensor *weight,
                                          tg_reduction reduction)
{
    const char *op = "tg_multilabel_soft_margin_loss";
    if (!tgl_check_pair(op, input, target) || !tgl_check_reduction(op, reduction, false)) return NULL;
    if (input->ndim < 1) {
        tg_error(TG_ERR_SHAPE, "%s: input must have a class dim (got a scalar)", op);
        return NULL;
    }
    float *w = NULL;
    if (weight && !(w = tgl_expand(op, "weight", weight, input))) return NULL;
    int64_t C = input->shape[input->ndim - 1], rows = C ? input->numel / C : 0;
    float *d = tg_arena_alloc((size_t)(input->numel ? input->numel : 1) * sizeof(float));
    bool none = reduction == TG_REDUCTION_NONE;
    tg_tensor *out = none ? tg_output_new(TG_F32, input->ndim - 1, input->shape) : tg_output_new(TG_F32, 0, NULL);
    if (!d || !out) return NULL;
    double total = 0;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t k = 0; k < C; k++) {
            int64_t i = r * C + k;
            float xv = input->data[i], yv = target->data[i], wv = w ? w[i] : 1.0f;
            float lp = log1pf(expf(-fabsf(xv)));
            float ls_pos = fminf(xv, 0.0f) - lp, ls_neg = fminf(-xv, 0.0f) - lp; /* logsigmoid(+-x) */
            s += wv * -(yv * ls_pos + (1.0f - yv) * ls_neg);
            float t = expf(-fabsf(xv)), sig = (xv >= 0 ? 1.0f : t) / (1.0f + t);
            d[i] = wv * (sig - yv) / (float)C;
            /* PyTorch's autograd differentiates w*y*logsigmoid(x) + w*(1-y)*logsigmoid(-x) term by term:
             * an infinite weight gives inf*0 or inf - inf there, NaN */
            if (isinf(wv)) d[i] = NAN;
        }
        float lr = (float)(s / (double)C);
        if (none) out->data[r] = lr;
        total += lr;
    }
    double scale = 1.0;
    if (!none) {
        if (reduction == TG_REDUCTION_MEAN) scale = 1.0 / (double)rows;
        out->data[0] = (float)(total * scale);
    }
    tg_tensor *ins[2] = {input, target};
    tg_node *n = tg_record(&MLSM_OP, out, 2, ins);
    if (n) {
        mlsm_ctx *c = tg_arena_alloc(sizeof *c);
        if (!c) return NULL;
        *c = (mlsm_ctx){d, scale, none, C};
        n->ctx = c;
    }
    return out;
}
