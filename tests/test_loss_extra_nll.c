/* poisson_nll and gaussian_nll: PyTorch golden values and gradients,
 * finite-difference gradient checks, documented edge cases, errors. */
#include "loss_extra_cases.h"

#define FIX "loss_extra_nll.json"

Test(poisson_nll, golden) { lx_run_golden(FIX, "poisson_nll"); }
Test(poisson_nll, nonfinite) { lx_run_golden("loss_extra_nonfinite.json", "poisson_nll"); } /* NaN, +-Inf: PyTorch's values and gradients */
Test(gaussian_nll, golden) { lx_run_golden(FIX, "gaussian_nll"); }
Test(gaussian_nll, nonfinite) { lx_run_golden("loss_extra_nonfinite.json", "gaussian_nll"); } /* NaN, +-Inf: PyTorch's values and gradients */

typedef struct {
    tg_tensor *target;
    tg_poisson_nll_opts po;
    tg_gaussian_nll_opts go;
} nll_ctx;

static tg_tensor *poisson_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    nll_ctx *c = ctx;
    return tgt_weighted_sum(tg_poisson_nll_loss(in[0], c->target, c->po), 31);
}

Test(poisson_nll, gradcheck)
{
    tg_tensor *x = lx_randn(TG_SHAPE(3, 4), 51, 0.7f, true);
    tg_tensor *rate = tg_tensor_set_requires_grad(tg_tensor_rand(TG_SHAPE(3, 4), NULL), true);
    for (int64_t i = 0; i < rate->numel; i++) rate->data[i] = 0.2f + 2.0f * rate->data[i];
    tg_tensor *y = tg_tensor_from_data(TG_SHAPE(3, 4), (float[]){0, 0.5f, 1, 1.5f, 2, 3, 7, 0.2f, 1, 1.01f, 4, 0});
    nll_ctx c = {.target = y, .po = {.reduction = TG_REDUCTION_NONE, .full = true}};
    tgt_expect_gradcheck("poisson log none full", poisson_fn, &c, &x, 1, 1e-3, 1e-3, 1e-2);
    c.po = (tg_poisson_nll_opts){.reduction = TG_REDUCTION_MEAN, .no_log_input = true};
    tgt_expect_gradcheck("poisson rate mean", poisson_fn, &c, &rate, 1, 1e-3, 1e-3, 1e-2);
    c.po = (tg_poisson_nll_opts){.reduction = TG_REDUCTION_SUM, .no_log_input = true, .eps = 0.3f};
    tgt_expect_gradcheck("poisson rate sum eps", poisson_fn, &c, &rate, 1, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(x);
    tg_tensor_free(rate);
    tg_tensor_free(y);
}

static tg_tensor *gaussian_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    nll_ctx *c = ctx;
    return tgt_weighted_sum(tg_gaussian_nll_loss(in[0], c->target, in[1], c->go), 32);
}

Test(gaussian_nll, gradcheck)
{
    tg_tensor *x = lx_randn(TG_SHAPE(3, 4), 52, 1.0f, true);
    tg_tensor *y = lx_randn(TG_SHAPE(3, 4), 53, 1.0f, false);
    tg_tensor *v_same = tg_tensor_set_requires_grad(tg_tensor_rand(TG_SHAPE(3, 4), NULL), true);
    for (int64_t i = 0; i < v_same->numel; i++) v_same->data[i] = 0.3f + v_same->data[i];
    tg_tensor *v_col = tg_tensor_set_requires_grad(tg_tensor_from_data(TG_SHAPE(3, 1), (float[]){0.5f, 1.2f, 2.0f}), true);
    tg_tensor *v_row = tg_tensor_set_requires_grad(tg_tensor_from_data(TG_SHAPE(3), (float[]){0.8f, 0.4f, 1.5f}), true);
    nll_ctx c = {.target = y, .go = {.reduction = TG_REDUCTION_NONE, .full = true}};
    tgt_expect_gradcheck("gaussian same-shape var none", gaussian_fn, &c, (tg_tensor *[]){x, v_same}, 2, 1e-3, 1e-3,
                         1e-2);
    c.go.reduction = TG_REDUCTION_MEAN;
    tgt_expect_gradcheck("gaussian var (N,1) mean", gaussian_fn, &c, (tg_tensor *[]){x, v_col}, 2, 1e-3, 1e-3, 1e-2);
    c.go.reduction = TG_REDUCTION_SUM;
    tgt_expect_gradcheck("gaussian var (N) sum", gaussian_fn, &c, (tg_tensor *[]){x, v_row}, 2, 1e-3, 1e-3, 1e-2);
    tg_tensor *ts[] = {x, y, v_same, v_col, v_row};
    for (int k = 0; k < 5; k++) tg_tensor_free(ts[k]);
}

/* ---- documented edge cases ---- */

Test(poisson_nll, full_adds_stirling_only_where_target_above_one)
{
    tg_tensor *x = tg_tensor_from_data(TG_SHAPE(4), (float[]){0.3f, 0.3f, 0.3f, 0.3f});
    tg_tensor *y = tg_tensor_from_data(TG_SHAPE(4), (float[]){0.5f, 1.0f, 2.0f, 5.0f});
    tg_tensor *a = tg_poisson_nll_loss(x, y, (tg_poisson_nll_opts){.reduction = TG_REDUCTION_NONE});
    tg_tensor *b = tg_poisson_nll_loss(x, y, (tg_poisson_nll_opts){.reduction = TG_REDUCTION_NONE, .full = true});
    cr_assert(a && b);
    cr_expect_eq(b->data[0], a->data[0]);
    cr_expect_eq(b->data[1], a->data[1]);
    for (int i = 2; i < 4; i++) {
        double t = y->data[i], stirling = t * log(t) - t + 0.5 * log(2 * M_PI * t);
        cr_expect_float_eq(b->data[i] - a->data[i], (float)stirling, 1e-5);
    }
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

Test(gaussian_nll, clamped_var_still_gets_gradient)
{
    tg_tensor *x = tg_tensor_from_data(TG_SHAPE(2), (float[]){0.001f, 1.0f});
    tg_tensor *y = tg_tensor_zeros(TG_SHAPE(2));
    tg_tensor *v = tg_tensor_set_requires_grad(tg_tensor_from_data(TG_SHAPE(2), (float[]){0.0f, 2.0f}), true);
    tg_tensor *l = tg_gaussian_nll_loss(x, y, v, (tg_gaussian_nll_opts){.reduction = TG_REDUCTION_SUM, .eps = 0.01f});
    cr_assert_not_null(l);
    cr_assert_eq(tg_backward(l), TG_OK);
    /* v = 0.01: 0.5 * (1/v - d^2/v^2) with d = 0.001 */
    cr_expect_float_eq(v->grad[0], 0.5f * (100.0f - 1e-6f / 1e-4f), 1e-3);
    cr_expect_float_eq(v->grad[1], 0.5f * (0.5f - 0.25f), 1e-6);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(v);
}

Test(nll, parallel_paths_match_formulas)
{
    const int64_t R = 2048, D = 20; /* numel above TG_PARALLEL_MIN */
    tg_tensor *x = lx_randn(TG_SHAPE(R, D), 81, 1.0f, true);
    tg_tensor *y = lx_randn(TG_SHAPE(R, D), 82, 1.0f, false);
    tg_tensor *v = tg_tensor_set_requires_grad(tg_tensor_rand(TG_SHAPE(R), NULL), true);
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = fabsf(y->data[i]) * 3;
    tg_tensor *l = tg_poisson_nll_loss(x, y, (tg_poisson_nll_opts){.reduction = TG_REDUCTION_SUM});
    cr_assert_not_null(l);
    cr_assert_eq(tg_backward(l), TG_OK);
    double want = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        want += exp(x->data[i]) - (double)y->data[i] * x->data[i];
        cr_assert_float_eq(x->grad[i], (float)(exp(x->data[i]) - y->data[i]), 1e-5 * (1 + fabs(exp(x->data[i]))));
    }
    cr_expect_float_eq(l->data[0], (float)want, 1e-5 * fabs(want));
    tg_tape_clear();
    tg_tensor_zero_grad(x);
    l = tg_gaussian_nll_loss(x, y, v, (tg_gaussian_nll_opts){.reduction = TG_REDUCTION_SUM, .has_eps = true});
    cr_assert_not_null(l);
    cr_assert_eq(tg_backward(l), TG_OK);
    for (int64_t r = 0; r < R; r++) {
        double gv = 0, var = v->data[r];
        for (int64_t k = 0; k < D; k++) {
            double d = (double)x->data[r * D + k] - y->data[r * D + k];
            gv += 0.5 * (1 / var - d * d / (var * var));
            cr_assert_float_eq(x->grad[r * D + k], (float)(d / var), 1e-5 * (1 + fabs(d / var)));
        }
        cr_assert_float_eq(v->grad[r], (float)gv, 1e-4 * (1 + fabs(gv)));
    }
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(v);
}

/* ---- errors ---- */

Test(poisson_nll, errors)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 3)), *y = tg_tensor_zeros(TG_SHAPE(3, 2));
    tg_tensor *yi = tg_tensor_new(TG_I64, TG_SHAPE(2, 3));
    LX_EXPECT_ERROR(tg_poisson_nll_loss(x, y, (tg_poisson_nll_opts){0}), TG_ERR_SHAPE, "target has shape (3, 2)");
    LX_EXPECT_ERROR(tg_poisson_nll_loss(x, yi, (tg_poisson_nll_opts){0}), TG_ERR_ARG, "target must be a float32");
    LX_EXPECT_ERROR(tg_poisson_nll_loss(x, x, (tg_poisson_nll_opts){.reduction = (tg_reduction)9}), TG_ERR_ARG,
                    "unknown reduction 9");
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(yi);
}

Test(gaussian_nll, errors)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 3)), *v_neg = tg_tensor_full(TG_SHAPE(2, 3), 0.5f);
    v_neg->data[4] = -0.1f;
    tg_tensor *v_bad = tg_tensor_ones(TG_SHAPE(1, 3)), *v_bad2 = tg_tensor_ones(TG_SHAPE(3));
    tg_tensor *y_bad = tg_tensor_zeros(TG_SHAPE(3, 2));
    tg_gaussian_nll_opts o = {0};
    LX_EXPECT_ERROR(tg_gaussian_nll_loss(x, x, v_neg, o), TG_ERR_VALUE, "var has a negative entry (var[4]");
    LX_EXPECT_ERROR(tg_gaussian_nll_loss(x, x, v_bad, o), TG_ERR_SHAPE, "var has shape (1, 3)");
    LX_EXPECT_ERROR(tg_gaussian_nll_loss(x, x, v_bad2, o), TG_ERR_SHAPE, "var has shape (3,)");
    LX_EXPECT_ERROR(tg_gaussian_nll_loss(x, y_bad, v_bad, o), TG_ERR_SHAPE, "target has shape (3, 2)");
    LX_EXPECT_ERROR(tg_gaussian_nll_loss(x, x, NULL, o), TG_ERR_ARG, "var is NULL");
    tg_tensor *ts[] = {x, v_neg, v_bad, v_bad2, y_bad};
    for (int k = 0; k < 5; k++) tg_tensor_free(ts[k]);
}
