/* The worked examples of the cross-entropy article (shared/seed/000_d52808d37062cce6.txt,
 * "交叉熵损失CrossEntropyLoss"), with the article's printed numbers. Each test says which
 * reduction reproduces the number. Numbers printed with 4 decimals are checked to 5e-5;
 * the article's 2-decimal hand sums to 0.005 per term. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

#define ARTICLE_TOL 5e-5

static tg_tensor *f32(int ndim, const int64_t *shape, const float *v) { return tg_tensor_from_data(ndim, shape, v); }

static float loss_value(tg_tensor *l)
{
    cr_assert_not_null(l, "%s", tg_last_error());
    return l->data[0];
}

/* 2.1: F.binary_cross_entropy(input, target) = 1.5081, i.e. reduction MEAN:
 * -(ln 0.4 + ln 0.1 + ln 0.3 + ln 0.2)/4 = 1.5080716; SUM gives 4x that (6.0323). */
Test(article, bce_1_5081_is_the_mean)
{
    tg_tensor *x = f32(TG_SHAPE(2, 2), (float[]){0.6f, 0.1f, 0.3f, 0.8f});
    tg_tensor *y = f32(TG_SHAPE(2, 2), (float[]){0, 1, 1, 0});
    float mean = loss_value(tg_binary_cross_entropy(x, y, (tg_bce_opts){0}));
    cr_expect(fabsf(mean - 1.5081f) < ARTICLE_TOL, "mean %f", mean);
    cr_expect(fabs(mean - 1.5080716354070594) < 1e-6, "mean %.9f vs the article's numpy 1.5080716354", mean);
    float sum = loss_value(tg_binary_cross_entropy(x, y, (tg_bce_opts){.reduction = TG_REDUCTION_SUM}));
    cr_expect(fabsf(sum - 6.0323f) < ARTICLE_TOL && fabsf(sum - 4 * mean) < 1e-5, "sum %f", sum);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* 2.1: BCE(sigmoid(input)) = BCE-with-logits(input) = 0.8518 on the same input (MEAN);
 * through the tape the two gradients agree too: (sigmoid(x) - y)/4. */
Test(article, bce_after_sigmoid_and_with_logits_0_8518)
{
    tg_tensor *x = tg_tensor_set_requires_grad(f32(TG_SHAPE(2, 2), (float[]){0.6f, 0.1f, 0.3f, 0.8f}), true);
    tg_tensor *y = f32(TG_SHAPE(2, 2), (float[]){0, 1, 1, 0});
    tg_tensor *la = tg_binary_cross_entropy(tg_sigmoid(x), y, (tg_bce_opts){0});
    float a = loss_value(la);
    cr_assert_eq(tg_backward(la), TG_OK, "%s", tg_last_error());
    float ga[4];
    memcpy(ga, x->grad, sizeof ga);
    tg_tape_clear();
    tg_tensor_zero_grad(x);
    tg_tensor *lb = tg_binary_cross_entropy_with_logits(x, y, (tg_bce_opts){0});
    float b = loss_value(lb);
    cr_assert_eq(tg_backward(lb), TG_OK);
    cr_expect(fabsf(a - 0.8518f) < ARTICLE_TOL, "BCE(sigmoid) %f", a);
    cr_expect(fabsf(b - 0.8518f) < ARTICLE_TOL, "BCE-with-logits %f", b);
    cr_expect(fabsf(a - b) < 1e-6);
    for (int i = 0; i < 4; i++) cr_expect(fabsf(ga[i] - x->grad[i]) < 1e-6, "grad %d: %g vs %g", i, ga[i], x->grad[i]);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* 2.2 NLLLoss 1-D: nll_loss([[2,3,1],[3,7,9]], [1,2]) = -6 with the default MEAN: -(3+9)/2.
 * (SUM gives -12.) */
Test(article, nll_minus_6_is_the_mean)
{
    tg_tensor *x = f32(TG_SHAPE(2, 3), (float[]){2, 3, 1, 3, 7, 9});
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){1, 2});
    cr_expect_float_eq(loss_value(tg_nll_loss(x, t, (tg_ce_opts){0})), -6.0f, 1e-6);
    cr_expect_float_eq(loss_value(tg_nll_loss(x, t, (tg_ce_opts){.reduction = TG_REDUCTION_SUM})), -12.0f, 1e-6);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(t);
}

/* 2.2 NLLLoss 2-D: input (2,2,2) read as (N=2, C=2, d1=2), target [[1,1],[0,0]]:
 * MEAN = -(1+5+3+7)/4 = -4. */
Test(article, nll_minus_4_on_the_2x2x2_example)
{
    tg_tensor *x = f32(TG_SHAPE(2, 2, 2), (float[]){2, 3, 1, 5, 3, 7, 1, 9});
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(2, 2), (int64_t[]){1, 1, 0, 0});
    cr_expect_float_eq(loss_value(tg_nll_loss(x, t, (tg_ce_opts){0})), -4.0f, 1e-6);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(t);
}

/* 3.1: cross_entropy on [[[1,2],[3,5]],[[4,7],[4,6]]], target [[0,0],[1,1]]:
 * 1.7955 (MEAN); with weight [1,9] 1.1617 (MEAN = sum w_y l / sum w_y). */
Test(article, cross_entropy_1_7955_and_weighted_1_1617)
{
    tg_tensor *x = f32(TG_SHAPE(2, 2, 2), (float[]){1, 2, 3, 5, 4, 7, 4, 6});
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(2, 2), (int64_t[]){0, 0, 1, 1});
    tg_tensor *w = f32(TG_SHAPE(2), (float[]){1, 9});
    float a = loss_value(tg_cross_entropy(x, t, (tg_ce_opts){0}));
    float b = loss_value(tg_cross_entropy(x, t, (tg_ce_opts){.weight = w}));
    cr_expect(fabsf(a - 1.7955f) < ARTICLE_TOL, "unweighted %f", a);
    cr_expect(fabsf(b - 1.1617f) < ARTICLE_TOL, "weighted %f", b);
    /* the weighted 'none' losses' plain mean is NOT the weighted 'mean' */
    tg_tensor *none = tg_cross_entropy(x, t, (tg_ce_opts){.weight = w, .reduction = TG_REDUCTION_NONE});
    cr_assert_not_null(none);
    float m = (none->data[0] + none->data[1] + none->data[2] + none->data[3]) / 4;
    cr_expect(fabsf(m - b) > 0.1f, "none.mean() %f vs mean %f", m, b);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(t);
    tg_tensor_free(w);
}

/* 3.2: BCE with per-element weights from class weights [0.1, 0.9] on the printed 3x3
 * input: 0.4621 (MEAN over the 9 elements). */
Test(article, weighted_bce_0_4621)
{
    float in[9] = {0.1531f, 0.3302f, 0.7537f, 0.2200f, 0.6875f, 0.2268f, 0.5109f, 0.5873f, 0.9275f};
    float tg[9] = {1, 0, 0, 0, 0, 1, 0, 1, 0}, wv[9];
    for (int i = 0; i < 9; i++) wv[i] = tg[i] == 1 ? 0.9f : 0.1f;
    tg_tensor *x = f32(TG_SHAPE(3, 3), in), *y = f32(TG_SHAPE(3, 3), tg), *w = f32(TG_SHAPE(3, 3), wv);
    float l = loss_value(tg_binary_cross_entropy(x, y, (tg_bce_opts){.weight = w}));
    cr_expect(fabsf(l - 0.4621f) < ARTICLE_TOL, "%f", l);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(w);
}

/* 1.2 multi-label: per-class BCE terms (NONE), summed (SUM). The article rounds each term
 * (to 2 and 1 decimals) before adding: 0.05+0.31+0.05 = 0.41 (exact sum 0.4173) and
 * 1.2+0.7+1.2 = 3.1 (exact 3.1011); the second example's target is [1,1,0] too. */
static void multilabel_case(const float p[3], const float terms[3], float scale, float article_sum, float exact_sum)
{
    tg_tensor *x = f32(TG_SHAPE(3), p), *y = f32(TG_SHAPE(3), (float[]){1, 1, 0});
    tg_tensor *none = tg_binary_cross_entropy(x, y, (tg_bce_opts){.reduction = TG_REDUCTION_NONE});
    cr_assert_not_null(none);
    float rounded = 0;
    for (int i = 0; i < 3; i++) {
        float r = roundf(none->data[i] * scale) / scale; /* the article's decimals */
        cr_expect(fabsf(r - terms[i]) < 1e-6, "term %d: %f rounds to %f, article %f", i, none->data[i], r, terms[i]);
        rounded += r;
    }
    cr_expect(fabsf(rounded - article_sum) < 1e-5, "rounded terms add to %f", rounded);
    float sum = loss_value(tg_binary_cross_entropy(x, y, (tg_bce_opts){.reduction = TG_REDUCTION_SUM}));
    cr_expect(fabsf(sum - exact_sum) < 1e-4, "sum %f", sum);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

Test(article, multilabel_sum_0_41) { multilabel_case((float[]){0.95f, 0.73f, 0.05f}, (float[]){0.05f, 0.31f, 0.05f}, 100, 0.41f, 0.4173f); }
Test(article, multilabel_sum_3_1) { multilabel_case((float[]){0.3f, 0.5f, 0.7f}, (float[]){1.2f, 0.7f, 1.2f}, 10, 3.1f, 3.1011f); }

/* 2.2 softmax([3,1,-3]) = [0.88, 0.12, 0.00], read from tg_cross_entropy's gradient:
 * d(CE sum)/dx = softmax - onehot, so softmax = grad + onehot (target 0). */
Test(article, softmax_3_1_minus3_via_cross_entropy_gradient)
{
    tg_tensor *x = tg_tensor_set_requires_grad(f32(TG_SHAPE(3), (float[]){3, 1, -3}), true);
    tg_tensor *t = tg_tensor_from_i64(0, NULL, (int64_t[]){0});
    tg_tensor *l = tg_cross_entropy(x, t, (tg_ce_opts){.reduction = TG_REDUCTION_SUM});
    cr_assert_eq(tg_backward(l), TG_OK, "%s", tg_last_error());
    float p[3] = {x->grad[0] + 1, x->grad[1], x->grad[2]};
    float want[3] = {0.88f, 0.12f, 0.00f};
    for (int i = 0; i < 3; i++) cr_expect(fabsf(roundf(p[i] * 100) / 100 - want[i]) < 1e-6, "p[%d] = %f", i, p[i]);
    cr_expect(fabsf(p[0] - 0.8789f) < 1e-4 && fabsf(p[2] - 0.0022f) < 1e-4);
    /* the article's exponentials [20.09, 2.72, 0.05]: p * sum(e^x) */
    float se = 20.0855f + 2.71828f + 0.049787f;
    cr_expect(fabsf(p[1] * se - 2.72f) < 0.005f && fabsf(p[2] * se - 0.05f) < 0.005f);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(t);
}

/* 2.2 softmax([3,1,-3]) = [0.88, 0.12, 0.00] with tg_softmax (ops-math), and the same
 * probabilities out of tg_cross_entropy's gradient. */
Test(article, softmax_3_1_minus3_with_tg_softmax)
{
    tg_tensor *x = tg_tensor_from_data(TG_SHAPE(3), (float[]){3, 1, -3});
    tg_tensor *p = tg_softmax(x, 0);
    cr_assert_not_null(p, "%s", tg_last_error());
    float want[3] = {0.88f, 0.12f, 0.00f};
    for (int i = 0; i < 3; i++)
        cr_expect(fabsf(roundf(p->data[i] * 100) / 100 - want[i]) < 1e-6, "p[%d] = %f", i, p->data[i]);
    tg_tape_clear();
    tg_tensor_free(x);
}

/* 1.1 three-class example: probabilities [0.9, 0.1, 0] vs [1,0,0] give -ln 0.9 = 0.105 ("≈ 0.1");
 * [0.1, 0.9, 0] gives -ln 0.1 = 2.303 in natural log. The article writes "= 1": that is
 * -log10(0.1). Logits ln p (with -100 for p = 0) make softmax reproduce p. */
Test(article, three_class_natural_log_not_base_10)
{
    tg_tensor *good = f32(TG_SHAPE(3), (float[]){logf(0.9f), logf(0.1f), -100});
    tg_tensor *bad = f32(TG_SHAPE(3), (float[]){logf(0.1f), logf(0.9f), -100});
    tg_tensor *t = tg_tensor_from_i64(0, NULL, (int64_t[]){0});
    float a = loss_value(tg_cross_entropy(good, t, (tg_ce_opts){0}));
    float b = loss_value(tg_cross_entropy(bad, t, (tg_ce_opts){0}));
    cr_expect(fabsf(a - 0.1054f) < 1e-4, "%f", a);
    cr_expect(fabsf(b - 2.3026f) < 1e-4, "-ln 0.1 = %f (natural log)", b);
    cr_expect(fabsf(b / logf(10.0f) - 1.0f) < 1e-5, "the article's 1 is the base-10 value");
    tg_tape_clear();
    tg_tensor_free(good);
    tg_tensor_free(bad);
    tg_tensor_free(t);
}

/* 1.1 binary: logits 2 -> sigmoid 0.881 (the article rounds to 0.9); loss -ln 0.881 = 0.127
 * (the article's "≈ 0.1" is -ln 0.9 = 0.105). */
Test(article, binary_logit_2)
{
    tg_tensor *x = f32(TG_SHAPE(1), (float[]){2}), *y = f32(TG_SHAPE(1), (float[]){1});
    float l = loss_value(tg_binary_cross_entropy_with_logits(x, y, (tg_bce_opts){0}));
    cr_expect(fabsf(l - 0.1269f) < 1e-4, "%f", l);
    cr_expect(fabsf(l + logf(1.0f / (1.0f + expf(-2.0f)))) < 1e-6);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}
