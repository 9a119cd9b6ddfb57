/* Eval-mode batch normalisation (+ReLU) written where the caller says, with no tape record: the
 * no-grad evaluation forward normalises a conv output in place, or straight into the buffer a
 * later concatenation reads (ops/eval_internal.h). Per element the same operations as
 * tg_batch_norm(_relu) in eval mode (batchnorm_internal.h, bn_normalize_channel):
 * a = invstd * gamma, b = beta - mean * a, y = x * a + b, then relu. */
#include "../core/core_internal.h"
#include "batchnorm_internal.h"
#include "eval_internal.h"

bool tg_batch_norm_eval_into(const char *op, const tg_tensor *x, const tg_tensor *weight, const tg_tensor *bias,
                             const tg_tensor *running_mean, const tg_tensor *running_var, float eps, bool relu,
                             float *dst, int64_t img)
{
    if (!tg_check_f32(op, "x", x) || !tg_check_ndim(op, "x", x, 2, TG_MAX_DIMS)) return false;
    if (!bn_check_tensors(op, x, weight, bias, running_mean, running_var, eps)) return false;
    if (!bn_check_momentum(op, false, running_mean != NULL, NULL, 0.0f)) return false;
    const bn_dims d = bn_dims_of(x);
    if (!dst || img < d.C * d.S) {
        tg_error(TG_ERR_ARG, "%s: no destination, or an image stride %lld below C*S = %lld", op, (long long)img,
                 (long long)(d.C * d.S));
        return false;
    }
    float *ab = tg_arena_alloc((size_t)(2 * (d.C > 0 ? d.C : 1)) * sizeof(float));
    if (!ab) return false;
    for (int64_t c = 0; c < d.C; c++) {
        const float mu = running_mean->data[c], inv = bn_invstd((double)running_var->data[c], eps);
        const float a = inv * (weight ? weight->data[c] : 1.0f);
        ab[2 * c] = a;
        ab[2 * c + 1] = (bias ? bias->data[c] : 0.0f) - mu * a;
    }
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t r = 0; r < d.N * d.C; r++) {
        const int64_t n = r / d.C, c = r % d.C;
        bn_normalize_row(x->data + r * d.S, dst + n * img + c * d.S, d.S, ab[2 * c], ab[2 * c + 1], relu);
    }
    return true;
}
