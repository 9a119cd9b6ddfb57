/* Optimizers: SGD (momentum, dampening, nesterov, weight decay), Adam and AdamW
 * (amsgrad), following PyTorch 1.13's single-tensor code line by line. Hyper-
 * parameters are doubles as in Python and enter the float kernels as float
 * scalars, as ATen does. State blocks share the parameter block's layout. */
#include "nn_internal.h"

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

/* Per-entry arrays (group, frozen steps) sized for the list's current entries; entries added
 * since (buffers: new parameters are refused by the block-size check) start in group 0. */
bool tg_optim_sync_entries(tg_optimizer *o)
{
    const int n = o->params->count;
    if (n <= o->n_entries && o->group_of) return true;
    int *g = tg_calloc((size_t)(n ? n : 1), sizeof *g);
    int64_t *f = g ? tg_calloc((size_t)(n ? n : 1), sizeof *f) : NULL;
    if (!f) {
        tg_free(g);
        return false;
    }
    if (o->n_entries) {
        memcpy(g, o->group_of, (size_t)o->n_entries * sizeof *g);
        memcpy(f, o->frozen_steps, (size_t)o->n_entries * sizeof *f);
    }
    tg_free(o->group_of);
    tg_free(o->frozen_steps);
    o->group_of = g;
    o->frozen_steps = f;
    o->n_entries = n;
    return true;
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
    o->n_groups = 1;
    o->groups[0].lr = o->groups[0].initial_lr = lr;
    o->numel = list->block_numel;
    if (!tg_optim_sync_entries(o)) {
        tg_free(o);
        return NULL;
    }
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
    o->groups[0].momentum = opts.momentum;
    o->groups[0].weight_decay = opts.weight_decay;
    o->dampening = opts.dampening;
    o->nesterov = opts.nesterov;
    return o;
}

static bool adam_betas_ok(double b1, double b2) { return b1 >= 0.0 && b1 < 1.0 && b2 >= 0.0 && b2 < 1.0; }

static tg_optimizer *adam_new(const char *who, tg_param_list *list, tg_adam_opts opts, tg_optim_kind kind)
{
    if (!(opts.eps >= 0.0) || !adam_betas_ok(opts.beta1, opts.beta2) || !(opts.weight_decay >= 0.0)) {
        tg_error(TG_ERR_ARG, "%s: invalid betas (%g, %g), eps %g or weight_decay %g", who, opts.beta1, opts.beta2,
                 opts.eps, opts.weight_decay);
        return NULL;
    }
    tg_optimizer *o = optim_new(who, list, kind, opts.lr);
    if (!o) return NULL;
    o->groups[0].beta1 = opts.beta1;
    o->groups[0].beta2 = opts.beta2;
    o->groups[0].weight_decay = opts.weight_decay;
    o->eps = opts.eps;
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

tg_param_group tg_optimizer_group_defaults(const tg_optimizer *opt)
{
    tg_param_group g = {0};
    if (opt) g = opt->groups[0];
    g.initial_lr = g.lr;
    return g;
}

/* The list entry holding tensor t, or -1. */
static int entry_of(const tg_param_list *list, const tg_tensor *t)
{
    for (int i = 0; i < list->count; i++)
        if (list->entries[i].tensor == t) return i;
    return -1;
}

int tg_optimizer_add_group(tg_optimizer *opt, tg_tensor *const *params, int n, tg_param_group g)
{
    const char *who = "tg_optimizer_add_group";
    if (!opt || (n > 0 && !params) || n < 0) {
        tg_error(TG_ERR_ARG, "%s: optimizer or parameters are NULL", who);
        return -1;
    }
    if (opt->n_groups >= TG_OPTIM_MAX_GROUPS) {
        tg_error(TG_ERR_ARG, "%s: at most %d groups", who, TG_OPTIM_MAX_GROUPS);
        return -1;
    }
    if (!(g.lr >= 0.0) || !isfinite(g.lr) || !(g.weight_decay >= 0.0) || !isfinite(g.weight_decay) ||
        !(g.momentum >= 0.0) || !isfinite(g.momentum) ||
        (opt->kind != TG_OPTIM_SGD && !adam_betas_ok(g.beta1, g.beta2))) {
        tg_error(TG_ERR_ARG, "%s: invalid lr %g, weight_decay %g, momentum %g or betas (%g, %g)", who, g.lr,
                 g.weight_decay, g.momentum, g.beta1, g.beta2);
        return -1;
    }
    if (opt->kind == TG_OPTIM_SGD && opt->nesterov && g.momentum <= 0.0) {
        tg_error(TG_ERR_ARG, "%s: nesterov momentum requires a momentum in every group", who);
        return -1;
    }
    if (!tg_optim_sync_entries(opt)) return -1;
    const tg_param_list *list = opt->params;
    for (int k = 0; k < n; k++) {
        int i = params[k] ? entry_of(list, params[k]) : -1;
        if (i < 0 || list->entries[i].kind != TG_KIND_PARAM) {
            tg_error(TG_ERR_ARG, "%s: parameter %d (%s) is not a parameter of the optimizer's list", who, k,
                     params[k] && params[k]->name[0] ? params[k]->name : "unnamed");
            return -1;
        }
        if (opt->group_of[i] != 0) {
            tg_error(TG_ERR_ARG, "%s: '%s' is already in group %d (a parameter belongs to one group)", who,
                     list->entries[i].name, opt->group_of[i]);
            return -1;
        }
        for (int j = 0; j < k; j++)
            if (params[j] == params[k]) {
                tg_error(TG_ERR_ARG, "%s: '%s' is given twice", who, list->entries[i].name);
                return -1;
            }
    }
    const int id = opt->n_groups++;
    g.initial_lr = g.lr;
    opt->groups[id] = g;
    for (int k = 0; k < n; k++) opt->group_of[entry_of(list, params[k])] = id;
    return id;
}

void tg_optimizer_free(tg_optimizer *opt)
{
    if (!opt) return;
    tg_free(opt->buf);
    tg_free(opt->sq);
    tg_free(opt->max_sq);
    tg_free(opt->group_of);
    tg_free(opt->frozen_steps);
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
    if (!tg_optim_sync_entries(opt)) return tg_last_status();
    const int64_t n = opt->numel;
    bool any_momentum = false;
    for (int g = 0; g < opt->n_groups; g++) any_momentum |= opt->groups[g].momentum != 0.0;
    bool need_buf = opt->kind != TG_OPTIM_SGD || any_momentum;
    if (need_buf && !opt->buf && !(opt->buf = state_block(n))) return tg_last_status();
    if (opt->kind != TG_OPTIM_SGD) {
        if (!opt->sq && !(opt->sq = state_block(n))) return tg_last_status();
        if (opt->amsgrad && !opt->max_sq && !(opt->max_sq = state_block(n))) return tg_last_status();
    }
    opt->step_count++;
    for (int k = 0; k < list->count; k++) {
        const tg_param_entry *e = &list->entries[k];
        if (e->kind != TG_KIND_PARAM) continue;
        if (!e->tensor->requires_grad) { /* frozen: PyTorch skips a parameter whose grad is None */
            opt->frozen_steps[k]++;
            continue;
        }
        const tg_param_group *g = &opt->groups[opt->group_of[k]];
        const int64_t step = opt->step_count - opt->frozen_steps[k]; /* this parameter's state["step"] */
        const int64_t o = e->offset;
        if (opt->kind == TG_OPTIM_SGD) {
            /* A buffer loaded from a checkpoint counts as existing (first only when never stepped). */
            float wd = e->no_weight_decay ? 0.0f : (float)g->weight_decay;
            sgd_kernel(list->data + o, list->grad + o, g->momentum != 0.0 ? opt->buf + o : NULL, e->tensor->numel,
                       (float)g->lr, wd, (float)g->momentum, (float)(1.0 - opt->dampening), opt->nesterov,
                       step == 1);
            continue;
        }
        const double bc1 = 1.0 - pow(g->beta1, (double)step);
        const double bc2 = 1.0 - pow(g->beta2, (double)step);
        const double step_size = g->lr / bc1;
        double wd = e->no_weight_decay ? 0.0 : g->weight_decay;
        adam_consts c = {
            .b1 = (float)g->beta1,
            .one_minus_b1 = (float)(1.0 - g->beta1),
            .b2 = (float)g->beta2,
            .one_minus_b2 = (float)(1.0 - g->beta2),
            .bc2_sqrt = (float)sqrt(bc2),
            .eps = (float)opt->eps,
            .neg_step_size = (float)-step_size,
            .decay_mul = opt->kind == TG_OPTIM_ADAMW ? (float)(1.0 - g->lr * wd) : 1.0f,
            .wd = opt->kind == TG_OPTIM_ADAM ? (float)wd : 0.0f,
        };
        adam_kernel(list->data + o, list->grad + o, opt->buf + o, opt->sq + o, opt->max_sq ? opt->max_sq + o : NULL,
                    e->tensor->numel, c);
    }
    return TG_OK;
}
