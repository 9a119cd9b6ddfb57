/* Optimizers: SGD (momentum, dampening, nesterov, weight decay), Adam and AdamW
 * (amsgrad), following PyTorch 1.13's single-tensor code line by line. Hyper-
 * parameters are doubles as in Python and enter the float kernels as float
 * scalars, as ATen does. State blocks share the parameter block's layout. */
#include "nn.h"

#include <math.h>
#include <string.h>

#include "../core/core_internal.h"

tg_adam_opts tg_adam_defaults(void)
{
    return (tg_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
}

tg_adam_opts tg_adamw_defaults(void)
{
    tg_adam_opts o = tg_adam_defaults();
    o.weight_decay = 1e-2;
    return o;
}

static tg_optimizer *optim_new(const char *who, tg_param_list *list, tg_optim_kind kind, double lr)
{
    if (!list) {
        tg_error(TG_ERR_ARG, "%s: parameter list is NULL", who);
        return NULL;
    }
    if (!(lr >= 0.0) || !isfinite(lr)) {
        tg_error(TG_ERR_ARG, "%s: invalid learning rate %g", who, lr);
        return NULL;
    }
    tg_optimizer *o = tg_calloc(1, sizeof *o);
    if (!o) return NULL;
    o->kind = kind;
    o->params = list;
    o->lr = o->initial_lr = lr;
    o->numel = list->block_numel;
    return o;
}

tg_optimizer *tg_sgd_new(tg_param_list *list, tg_sgd_opts opts)
{
    const char *who = "tg_sgd_new";
    if (!(opts.momentum >= 0.0) || !(opts.weight_decay >= 0.0) || !isfinite(opts.dampening)) {
        tg_error(TG_ERR_ARG, "%s: invalid momentum %g, dampening %g or weight_decay %g", who, opts.momentum,
                 opts.dampening, opts.weight_decay);
        return NULL;
    }
    if (opts.nesterov && (opts.momentum <= 0.0 || opts.dampening != 0.0)) {
        tg_error(TG_ERR_ARG, "%s: nesterov momentum requires a momentum and zero dampening", who);
        return NULL;
    }
    tg_optimizer *o = optim_new(who, list, TG_OPTIM_SGD, opts.lr);
    if (!o) return NULL;
    o->momentum = opts.momentum;
    o->dampening = opts.dampening;
    o->weight_decay = opts.weight_decay;
    o->nesterov = opts.nesterov;
    return o;
}

static tg_optimizer *adam_new(const char *who, tg_param_list *list, tg_adam_opts opts, tg_optim_kind kind)
{
    if (!(opts.eps >= 0.0) || !(opts.beta1 >= 0.0 && opts.beta1 < 1.0) || !(opts.beta2 >= 0.0 && opts.beta2 < 1.0) ||
        !(opts.weight_decay >= 0.0)) {
        tg_error(TG_ERR_ARG, "%s: invalid betas (%g, %g), eps %g or weight_decay %g", who, opts.beta1, opts.beta2,
                 opts.eps, opts.weight_decay);
        return NULL;
    }
    tg_optimizer *o = optim_new(who, list, kind, opts.lr);
    if (!o) return NULL;
    o->beta1 = opts.beta1;
    o->beta2 = opts.beta2;
    o->eps = opts.eps;
    o->weight_decay = opts.weight_decay;
    o->amsgrad = opts.amsgrad;
    return o;
}

tg_optimizer *tg_adam_new(tg_param_list *list, tg_adam_opts opts)
{
    return adam_new("tg_adam_new", list, opts, TG_OPTIM_ADAM);
}

tg_optimizer *tg_adamw_new(tg_param_list *list, tg_adam_opts opts)
{
    return adam_new("tg_adamw_new", list, opts, TG_OPTIM_ADAMW);
}

void tg_optimizer_free(tg_optimizer *opt)
{
    if (!opt) return;
    tg_free(opt->buf);
    tg_free(opt->sq);
    tg_free(opt->max_sq);
    tg_free(opt);
}

void tg_optimizer_zero_grad(tg_optimizer *opt)
{
    if (opt) tg_param_list_zero_grad(opt->params);
}

static float *state_block(int64_t n)
{
    float *b = tg_aligned_alloc((size_t)n * sizeof(float));
    if (b) memset(b, 0, (size_t)n * sizeof(float));
    return b;
}

/* ---- kernels: one contiguous segment each -------------------------------- */

/* first: buf = g (PyTorch clones d_p on the first step). */
static void sgd_kernel(float *restrict p, const float *restrict g, float *restrict buf, int64_t n, float lr,
                       float wd, float mom, float one_minus_damp, bool nesterov, bool first)
{
    if (!buf) {
#pragma omp parallel for simd if (n > TG_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            p[i] = p[i] + -lr * d;
        }
        return;
    }
#pragma omp parallel for simd if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float b = first ? d : buf[i] * mom + one_minus_damp * d;
        buf[i] = b;
        float u = nesterov ? d + mom * b : b;
        p[i] = p[i] + -lr * u;
    }
}

typedef struct {
    float b1, one_minus_b1, b2, one_minus_b2, bc2_sqrt, eps, neg_step_size, decay_mul, wd;
} adam_consts;

static void adam_kernel(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                        float *restrict vmax, int64_t n, adam_consts c)
{
#pragma omp parallel for simd if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i] * c.decay_mul; /* AdamW: p *= 1 - lr*wd (1 for Adam) */
        float d = g[i] + c.wd * pi;    /* Adam: g + wd*p (wd 0 for AdamW) */
        float mi = m[i] * c.b1 + c.one_minus_b1 * d;
        float vi = v[i] * c.b2 + c.one_minus_b2 * d * d;
        m[i] = mi;
        v[i] = vi;
        float s = vi;
        if (vmax) {
            s = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = s;
        }
        float denom = sqrtf(s) / c.bc2_sqrt + c.eps;
        p[i] = pi + c.neg_step_size * mi / denom;
    }
}

tg_status tg_optimizer_step(tg_optimizer *opt)
{
    if (!opt) return tg_error(TG_ERR_ARG, "tg_optimizer_step: optimizer is NULL");
    tg_param_list *list = opt->params;
    if (list->block_numel != opt->numel)
        return tg_error(TG_ERR_STATE,
                        "tg_optimizer_step: parameters were added after the optimizer was made (%lld floats then, "
                        "%lld now)",
                        (long long)opt->numel, (long long)list->block_numel);
    const int64_t n = opt->numel;
    bool first = opt->step_count == 0;
    bool need_buf = opt->kind != TG_OPTIM_SGD || opt->momentum != 0.0;
    if (need_buf && !opt->buf && !(opt->buf = state_block(n))) return tg_last_status();
    if (opt->kind != TG_OPTIM_SGD) {
        if (!opt->sq && !(opt->sq = state_block(n))) return tg_last_status();
        if (opt->amsgrad && !opt->max_sq && !(opt->max_sq = state_block(n))) return tg_last_status();
    }
    if (opt->kind == TG_OPTIM_SGD) {
        /* A buffer loaded from a checkpoint counts as existing (first only when never stepped). */
        for (int k = 0; k < list->count; k++) {
            const tg_param_entry *e = &list->entries[k];
            if (e->kind != TG_KIND_PARAM) continue;
            float wd = e->no_weight_decay ? 0.0f : (float)opt->weight_decay;
            sgd_kernel(list->data + e->offset, list->grad + e->offset, opt->buf ? opt->buf + e->offset : NULL,
                       e->tensor->numel, (float)opt->lr, wd, (float)opt->momentum, (float)(1.0 - opt->dampening),
                       opt->nesterov, first);
        }
        opt->step_count++;
        return TG_OK;
    }
    opt->step_count++;
    const double step = (double)opt->step_count;
    const double bc1 = 1.0 - pow(opt->beta1, step);
    const double bc2 = 1.0 - pow(opt->beta2, step);
    const double step_size = opt->lr / bc1;
    for (int k = 0; k < list->count; k++) {
        const tg_param_entry *e = &list->entries[k];
        if (e->kind != TG_KIND_PARAM) continue;
        double wd = e->no_weight_decay ? 0.0 : opt->weight_decay;
        adam_consts c = {
            .b1 = (float)opt->beta1,
            .one_minus_b1 = (float)(1.0 - opt->beta1),
            .b2 = (float)opt->beta2,
            .one_minus_b2 = (float)(1.0 - opt->beta2),
            .bc2_sqrt = (float)sqrt(bc2),
            .eps = (float)opt->eps,
            .neg_step_size = (float)-step_size,
            .decay_mul = opt->kind == TG_OPTIM_ADAMW ? (float)(1.0 - opt->lr * wd) : 1.0f,
            .wd = opt->kind == TG_OPTIM_ADAM ? (float)wd : 0.0f,
        };
        int64_t o = e->offset;
        adam_kernel(list->data + o, list->grad + o, opt->buf + o, opt->sq + o, opt->max_sq ? opt->max_sq + o : NULL,
                    e->tensor->numel, c);
    }
    return TG_OK;
}
