/* Finite-difference gradient checker: tape gradient vs central differences. */
#include "core_internal.h"

#include <math.h>
#include <string.h>

static tg_status eval_scalar(tg_scalar_fn fn, void *ctx, tg_tensor *const *in, int n, double *value)
{
    tg_tape_clear();
    tg_tensor *y = fn(in, n, ctx);
    if (!y) return tg_last_status() ? tg_last_status() : tg_error(TG_ERR_ARG, "tg_gradcheck: fn returned NULL");
    if (y->numel != 1) {
        char b[96];
        return tg_error(TG_ERR_SHAPE, "tg_gradcheck: fn must return a scalar, got shape %s", tg_shape_str(y, b, sizeof b));
    }
    *value = (double)y->data[0];
    return TG_OK;
}

tg_status tg_gradcheck(tg_scalar_fn fn, void *ctx, tg_tensor *const *inputs, int n_inputs, double eps,
                       double atol, double rtol, tg_gradcheck_report *r)
{
    if (!fn || !inputs || n_inputs <= 0 || !r)
        return tg_error(TG_ERR_ARG, "tg_gradcheck: needs fn, inputs and a report");
    /* <= 0 or NaN: the float32 defaults (core.h says why) */
    if (!(eps > 0)) eps = TG_GRADCHECK_EPS;
    if (!(atol > 0)) atol = TG_GRADCHECK_ATOL;
    if (!(rtol > 0)) rtol = TG_GRADCHECK_RTOL;
    memset(r, 0, sizeof *r);
    r->worst_input = -1;
    r->passed = true;

    /* Analytic gradients. */
    for (int k = 0; k < n_inputs; k++) tg_tensor_zero_grad(inputs[k]);
    tg_tape_clear();
    tg_tensor *y = fn(inputs, n_inputs, ctx);
    if (!y) return tg_last_status() ? tg_last_status() : tg_error(TG_ERR_ARG, "tg_gradcheck: fn returned NULL");
    tg_status st = tg_backward(y);
    if (st != TG_OK) return st;

    bool prev = tg_set_grad_enabled(false);
    double worst_score = -1.0;
    for (int k = 0; k < n_inputs && st == TG_OK; k++) {
        tg_tensor *x = inputs[k];
        if (!x->requires_grad) continue;
        for (int64_t i = 0; i < x->numel; i++) {
            float orig = x->data[i];
            double h = eps * fmax(1.0, fabs((double)orig));
            float xp = (float)(orig + h), xm = (float)(orig - h);
            double fp = 0.0, fm = 0.0;
            x->data[i] = xp;
            st = eval_scalar(fn, ctx, inputs, n_inputs, &fp);
            x->data[i] = xm;
            if (st == TG_OK) st = eval_scalar(fn, ctx, inputs, n_inputs, &fm);
            x->data[i] = orig;
            if (st != TG_OK) break;
            double numeric = (fp - fm) / ((double)xp - (double)xm); /* the step actually taken */
            double analytic = x->grad ? (double)x->grad[i] : 0.0;
            double err = fabs(analytic - numeric);
            double allowed = atol + rtol * fabs(numeric);
            double score = err / allowed; /* > 1 fails */
            if (!(err <= allowed)) r->passed = false;
            if (err > r->max_abs_err || isnan(err)) r->max_abs_err = err;
            if (score > worst_score || isnan(score)) {
                worst_score = isnan(score) ? INFINITY : score;
                r->worst_input = k;
                r->worst_index = i;
                r->analytic = analytic;
                r->numeric = numeric;
                r->max_rel_err = err / fmax(fabs(numeric), 1e-8);
            }
            r->checked++;
        }
    }
    tg_set_grad_enabled(prev);
    tg_tape_clear();
    return st;
}

char *tg_gradcheck_describe(const tg_gradcheck_report *r, char *buf, size_t n)
{
    snprintf(buf, n,
             "%s: %lld elements checked; worst at input %d element %lld: analytic %.8g vs numeric %.8g "
             "(abs err %.3g, rel err %.3g)",
             r->passed ? "passed" : "FAILED", (long long)r->checked, r->worst_input, (long long)r->worst_index,
             r->analytic, r->numeric, fabs(r->analytic - r->numeric), r->max_rel_err);
    return buf;
}
