/* multi_margin, multilabel_margin, hinge_embedding, margin_ranking: PyTorch golden
 * values and gradients, finite-difference gradient checks, documented edge cases, errors. */
#include "loss_extra_cases.h"

#define FIX "loss_extra_margin.json"

Test(multi_margin, golden) { lx_run_golden(FIX, "multi_margin"); }
Test(multi_margin, nonfinite) { lx_run_golden("loss_extra_nonfinite.json", "multi_margin"); } /* NaN, +-Inf: PyTorch's values and gradients */
Test(multilabel_margin, golden) { lx_run_golden(FIX, "multilabel_margin"); }
Test(multilabel_margin, nonfinite) { lx_run_golden("loss_extra_nonfinite.json", "multilabel_margin"); } /* NaN, +-Inf: PyTorch's values and gradients */
Test(hinge_embedding, golden) { lx_run_golden(FIX, "hinge_embedding"); }
Test(hinge_embedding, nonfinite) { lx_run_golden("loss_extra_nonfinite.json", "hinge_embedding"); } /* NaN, +-Inf: PyTorch's values and gradients */
Test(margin_ranking, golden) { lx_run_golden(FIX, "margin_ranking"); }
Test(margin_ranking, nonfinite) { lx_run_golden("loss_extra_nonfinite.json", "margin_ranking"); } /* NaN, +-Inf: PyTorch's values and gradients */

/* ---- gradient checks (inputs chosen away from the hinge kinks) ---- */

typedef struct {
    tg_tensor *target, *weight, *target2;
    tg_reduction r;
    int p;
    float margin;
} margin_ctx;

static tg_tensor *multi_margin_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    margin_ctx *c = ctx;
    tg_multi_margin_opts o = {.reduction = c->r, .p = c->p, .margin = c->margin};
    return tgt_weighted_sum(tg_multi_margin_loss(in[0], c->target, c->weight, o), 11);
}

/* Smallest |z| over the hinge terms, to make sure the finite differences stay on one side. */
static double multi_margin_min_kink(const tg_tensor *x, const tg_tensor *t, float margin)
{
    int64_t C = x->shape[1];
    double m = INFINITY;
    for (int64_t s = 0; s < x->shape[0]; s++)
        for (int64_t i = 0; i < C; i++)
            if (i != t->idata[s]) m = fmin(m, fabs(margin - x->data[s * C + t->idata[s]] + x->data[s * C + i]));
    return m;
}

Test(multi_margin, gradcheck)
{
    tg_tensor *x = lx_randn(TG_SHAPE(4, 5), 1, 1.0f, true);
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(4), (int64_t[]){0, 4, 2, 1});
    tg_tensor *w = tg_tensor_from_data(TG_SHAPE(5), (float[]){0.5f, 1.0f, 1.5f, 2.0f, 0.8f});
    cr_assert_gt(multi_margin_min_kink(x, t, 1.0f), 0.02);
    cr_assert_gt(multi_margin_min_kink(x, t, 0.7f), 0.02);
    margin_ctx c = {.target = t, .r = TG_REDUCTION_NONE, .p = 1};
    tgt_expect_gradcheck("multi_margin p=1 none", multi_margin_fn, &c, &x, 1, 1e-3, 1e-3, 1e-2);
    c = (margin_ctx){.target = t, .weight = w, .r = TG_REDUCTION_MEAN, .p = 2, .margin = 0.7f};
    tgt_expect_gradcheck("multi_margin p=2 weight mean", multi_margin_fn, &c, &x, 1, 1e-3, 1e-3, 1e-2);
    c = (margin_ctx){.target = t, .weight = w, .r = TG_REDUCTION_SUM, .p = 1};
    tgt_expect_gradcheck("multi_margin p=1 weight sum", multi_margin_fn, &c, &x, 1, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(x);
    tg_tensor_free(t);
    tg_tensor_free(w);
}

static tg_tensor *multilabel_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    margin_ctx *c = ctx;
    return tgt_weighted_sum(tg_multilabel_margin_loss(in[0], c->target, (tg_multilabel_margin_opts){c->r}), 12);
}

Test(multilabel_margin, gradcheck)
{
    tg_tensor *x = lx_randn(TG_SHAPE(3, 5), 2, 1.0f, true);
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(3, 5), (int64_t[]){1, 3, -1, 0, 0, 4, -1, 2, 2, 2, 0, 1, 2, 3, -1});
    /* kinks: 1 - x_j + x_i for j in Y, i not in Y */
    double m = INFINITY;
    for (int s = 0; s < 3; s++) {
        bool in_y[5] = {0};
        int k = 0;
        for (; k < 5 && t->idata[s * 5 + k] >= 0; k++) in_y[t->idata[s * 5 + k]] = true;
        for (int jj = 0; jj < k; jj++)
            for (int i = 0; i < 5; i++)
                if (!in_y[i]) m = fmin(m, fabs(1 - x->data[s * 5 + t->idata[s * 5 + jj]] + x->data[s * 5 + i]));
    }
    cr_assert_gt(m, 0.02);
    margin_ctx c = {.target = t, .r = TG_REDUCTION_NONE};
    tgt_expect_gradcheck("multilabel_margin none", multilabel_fn, &c, &x, 1, 1e-3, 1e-3, 1e-2);
    c.r = TG_REDUCTION_MEAN;
    tgt_expect_gradcheck("multilabel_margin mean", multilabel_fn, &c, &x, 1, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(x);
    tg_tensor_free(t);
}

static tg_tensor *hinge_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    margin_ctx *c = ctx;
    tg_hinge_embedding_opts o = {.reduction = c->r, .margin = c->margin};
    return tgt_weighted_sum(tg_hinge_embedding_loss(in[0], c->target, o), 13);
}

Test(hinge_embedding, gradcheck)
{
    tg_tensor *x = lx_randn(TG_SHAPE(2, 6), 3, 1.5f, true);
    tg_tensor *t = tg_tensor_from_data(TG_SHAPE(2, 6), (float[]){1, -1, 1, -1, 0, 2, -1, -1, 1, 1, -1, 3});
    for (int64_t i = 0; i < x->numel; i++) {
        cr_assert_gt(fabs(1.0 - x->data[i]), 0.02);
        cr_assert_gt(fabs(0.5 - x->data[i]), 0.02);
    }
    margin_ctx c = {.target = t, .r = TG_REDUCTION_NONE};
    tgt_expect_gradcheck("hinge none", hinge_fn, &c, &x, 1, 1e-3, 1e-3, 1e-2);
    c = (margin_ctx){.target = t, .r = TG_REDUCTION_MEAN, .margin = 0.5f};
    tgt_expect_gradcheck("hinge mean margin 0.5", hinge_fn, &c, &x, 1, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(x);
    tg_tensor_free(t);
}

static tg_tensor *ranking_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    margin_ctx *c = ctx;
    tg_margin_ranking_opts o = {.reduction = c->r, .margin = c->margin};
    return tgt_weighted_sum(tg_margin_ranking_loss(in[0], in[1], c->target, o), 14);
}

Test(margin_ranking, gradcheck)
{
    tg_tensor *in[2] = {lx_randn(TG_SHAPE(8), 4, 1.0f, true), lx_randn(TG_SHAPE(8), 5, 1.0f, true)};
    tg_tensor *t = tg_tensor_from_data(TG_SHAPE(8), (float[]){1, -1, 1, 1, -1, -1, 1, -1});
    for (int i = 0; i < 8; i++) cr_assert_gt(fabs(-t->data[i] * (in[0]->data[i] - in[1]->data[i]) + 0.3), 0.02);
    margin_ctx c = {.target = t, .r = TG_REDUCTION_NONE, .margin = 0.3f};
    tgt_expect_gradcheck("margin_ranking none", ranking_fn, &c, in, 2, 1e-3, 1e-3, 1e-2);
    c.r = TG_REDUCTION_SUM;
    tgt_expect_gradcheck("margin_ranking sum", ranking_fn, &c, in, 2, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(in[0]);
    tg_tensor_free(in[1]);
    tg_tensor_free(t);
}

/* ---- documented edge cases ---- */

Test(multilabel_margin, docs_example_is_0_85)
{
    tg_tensor *x = tg_tensor_from_data(TG_SHAPE(1, 4), (float[]){0.1f, 0.2f, 0.4f, 0.8f});
    tg_tensor *y = tg_tensor_from_i64(TG_SHAPE(1, 4), (int64_t[]){3, 0, -1, 1});
    tg_tensor *l = tg_multilabel_margin_loss(x, y, (tg_multilabel_margin_opts){0});
    cr_assert_not_null(l, "%s", tg_last_error());
    cr_expect_float_eq(l->data[0], 0.85f, 1e-6);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

Test(hinge_embedding, default_margin_is_one_and_has_margin_gives_zero)
{
    tg_tensor *x = tg_tensor_from_data(TG_SHAPE(1), (float[]){0.25f});
    tg_tensor *y = tg_tensor_from_data(TG_SHAPE(1), (float[]){-1});
    tg_tensor *d = tg_hinge_embedding_loss(x, y, (tg_hinge_embedding_opts){0});
    tg_tensor *z = tg_hinge_embedding_loss(x, y, (tg_hinge_embedding_opts){.has_margin = true});
    cr_assert(d && z);
    cr_expect_float_eq(d->data[0], 0.75f, 1e-7);
    cr_expect_float_eq(z->data[0], 0.0f, 1e-7);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

Test(hinge_embedding, empty_input_mean_nan_sum_zero)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(0));
    tg_tensor *y = tg_tensor_zeros(TG_SHAPE(0));
    tg_tensor *m = tg_hinge_embedding_loss(x, y, (tg_hinge_embedding_opts){0});
    tg_tensor *s = tg_hinge_embedding_loss(x, y, (tg_hinge_embedding_opts){.reduction = TG_REDUCTION_SUM});
    cr_assert(m && s);
    cr_expect(isnan(m->data[0]));
    cr_expect_eq(s->data[0], 0.0f);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* ---- errors ---- */

Test(multi_margin, errors)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(3, 4)), *x3 = tg_tensor_zeros(TG_SHAPE(2, 3, 4));
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(3), (int64_t[]){0, 1, 3});
    tg_tensor *t_bad = tg_tensor_from_i64(TG_SHAPE(3), (int64_t[]){0, 4, 1});
    tg_tensor *t_short = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){0, 1});
    tg_tensor *tf = tg_tensor_zeros(TG_SHAPE(3));
    tg_tensor *w_bad = tg_tensor_ones(TG_SHAPE(3));
    tg_multi_margin_opts o = {0};
    LX_EXPECT_ERROR(tg_multi_margin_loss(x, t, NULL, (tg_multi_margin_opts){.p = 3}), TG_ERR_ARG, "p must be 1 or 2");
    LX_EXPECT_ERROR(tg_multi_margin_loss(x, t_bad, NULL, o), TG_ERR_VALUE, "target[1] = 4 is out of range");
    LX_EXPECT_ERROR(tg_multi_margin_loss(x, t_short, NULL, o), TG_ERR_SHAPE, "target must have shape (3)");
    LX_EXPECT_ERROR(tg_multi_margin_loss(x, tf, NULL, o), TG_ERR_ARG, "target must be an int64");
    LX_EXPECT_ERROR(tg_multi_margin_loss(x3, t, NULL, o), TG_ERR_SHAPE, "input must have 0 to 2 dimensions");
    LX_EXPECT_ERROR(tg_multi_margin_loss(x, t, w_bad, o), TG_ERR_SHAPE, "weight must have shape (4)");
    LX_EXPECT_ERROR(tg_multi_margin_loss(x, t, NULL, (tg_multi_margin_opts){.reduction = TG_REDUCTION_BATCHMEAN}),
                    TG_ERR_ARG, "batchmean");
    LX_EXPECT_ERROR(tg_multi_margin_loss(NULL, t, NULL, o), TG_ERR_ARG, "input is NULL");
    tg_tensor *ts[] = {x, x3, t, t_bad, t_short, tf, w_bad};
    for (int k = 0; k < 7; k++) tg_tensor_free(ts[k]);
}

Test(multilabel_margin, errors)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 3));
    tg_tensor *t_lo = tg_tensor_from_i64(TG_SHAPE(2, 3), (int64_t[]){0, -1, -2, 1, -1, -1});
    tg_tensor *t_hi = tg_tensor_from_i64(TG_SHAPE(2, 3), (int64_t[]){0, 3, -1, 1, -1, -1});
    tg_tensor *t_shape = tg_tensor_from_i64(TG_SHAPE(3), (int64_t[]){0, 1, -1});
    tg_multilabel_margin_opts o = {0};
    LX_EXPECT_ERROR(tg_multilabel_margin_loss(x, t_lo, o), TG_ERR_VALUE, "target entry 2 = -2 is out of range");
    LX_EXPECT_ERROR(tg_multilabel_margin_loss(x, t_hi, o), TG_ERR_VALUE, "target entry 1 = 3 is out of range");
    LX_EXPECT_ERROR(tg_multilabel_margin_loss(x, t_shape, o), TG_ERR_SHAPE, "target must have the input's shape");
    tg_tensor_free(x);
    tg_tensor_free(t_lo);
    tg_tensor_free(t_hi);
    tg_tensor_free(t_shape);
}

Test(hinge_and_ranking, errors)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 3)), *y = tg_tensor_zeros(TG_SHAPE(3));
    tg_tensor *x2 = tg_tensor_zeros(TG_SHAPE(2, 3)), *x_other = tg_tensor_zeros(TG_SHAPE(3, 2));
    LX_EXPECT_ERROR(tg_hinge_embedding_loss(x, y, (tg_hinge_embedding_opts){0}), TG_ERR_SHAPE, "target has shape (3,)");
    LX_EXPECT_ERROR(tg_hinge_embedding_loss(x, NULL, (tg_hinge_embedding_opts){0}), TG_ERR_ARG, "target is NULL");
    LX_EXPECT_ERROR(tg_margin_ranking_loss(x, x_other, x2, (tg_margin_ranking_opts){0}), TG_ERR_SHAPE,
                    "input2 has shape (3, 2)");
    LX_EXPECT_ERROR(tg_margin_ranking_loss(x, x2, y, (tg_margin_ranking_opts){0}), TG_ERR_SHAPE, "target has shape (3,)");
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(x2);
    tg_tensor_free(x_other);
}
