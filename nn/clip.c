/* Gradient clipping as torch.nn.utils.clip_grad_norm_ / clip_grad_value_, over the
 * gradients of a parameter list's parameters that require grad. */
#include "nn.h"

#include <math.h>

#include "../core/core_internal.h"

double tg_clip_grad_norm(tg_param_list *list, double max_norm)
{
    const char *who = "tg_clip_grad_norm";
    if (!list) {
        tg_error(TG_ERR_ARG, "%s: parameter list is NULL", who);
        return -1.0;
    }
    if (!(max_norm >= 0.0)) {
        tg_error(TG_ERR_ARG, "%s: max_norm must be >= 0, got %g", who, max_norm);
        return -1.0;
    }
    /* PyTorch: total = norm(stack([norm(g) for g in grads])); the sum of squares in double
     * gives the same value to float precision, in one pass. */
    double sum = 0.0;
    for (int k = 0; k < list->count; k++) {
        const tg_param_entry *e = &list->entries[k];
        if (e->kind != TG_KIND_PARAM || !e->tensor->requires_grad) continue;
        const float *g = list->grad + e->offset;
        double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (e->tensor->numel > TG_PARALLEL_MIN)
        for (int64_t i = 0; i < e->tensor->numel; i++) s += (double)g[i] * (double)g[i];
        sum += s;
    }
    const float total = (float)sqrt(sum); /* a float32 norm, as PyTorch returns */
    /* max_norm / (total_norm + 1e-6) on a float tensor: PyTorch computes reciprocal() * max_norm */
    const float coef = 1.0f / (total + 1e-6f) * (float)max_norm;
    if (coef < 1.0f || isnan(coef)) { /* clip_coef_clamped = clamp(coef, max=1.0); NaN propagates */
        for (int k = 0; k < list->count; k++) {
            const tg_param_entry *e = &list->entries[k];
            if (e->kind != TG_KIND_PARAM || !e->tensor->requires_grad) continue;
            float *g = list->grad + e->offset;
#pragma omp parallel for simd if (e->tensor->numel > TG_PARALLEL_MIN)
            for (int64_t i = 0; i < e->tensor->numel; i++) g[i] *= coef;
        }
    }
    return total;
}

tg_status tg_clip_grad_value(tg_param_list *list, double clip_value)
{
    const char *who = "tg_clip_grad_value";
    if (!list) return tg_error(TG_ERR_ARG, "%s: parameter list is NULL", who);
    if (!(clip_value >= 0.0)) return tg_error(TG_ERR_ARG, "%s: clip_value must be >= 0, got %g", who, clip_value);
    const float c = (float)clip_value;
    for (int k = 0; k < list->count; k++) {
        const tg_param_entry *e = &list->entries[k];
        if (e->kind != TG_KIND_PARAM || !e->tensor->requires_grad) continue;
        float *g = list->grad + e->offset;
#pragma omp parallel for simd if (e->tensor->numel > TG_PARALLEL_MIN)
        for (int64_t i = 0; i < e->tensor->numel; i++) g[i] = g[i] < -c ? -c : g[i] > c ? c : g[i];
    }
    return TG_OK;
}
