/* Section 4 of the cross-entropy article, numerically: a 2-channel softmax head and a
 * 1-channel sigmoid head on z = z1 - z0 are the same loss with the same gradient
 * (dz0 = -d, dz1 = d), class weights and ignored pixels included. Plus edge cases
 * (all ignored, extreme logits, unclamped BCE backward), thread-count determinism,
 * large multi-block inputs against a plain double-precision loop, and the accuracy
 * of the vectorizable exp/log the fused kernels use. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <float.h>

#include "ops/loss_util.h"
#include "ops/math_internal.h"
#include "tapegrad.h"
#include "test_support.h"

static float relerr(double a, double b) { return (float)(fabs(a - b) / fmax(fabs(b), 1e-30)); }
/* float losses of one value: |a-b| <= 1e-6 + 1e-5|b| (tiny per-pixel losses carry ~1e-7 absolute rounding) */
static bool close_to(double a, double b) { return fabs(a - b) <= 1e-6 + 1e-5 * fabs(b); }

/* CE([x1,x2], target 0) = -ln softmax([x1,x2])[0] and BCEwl(x1-x2, 1) = -ln sigmoid(x1-x2):
 * equal values mean sigmoid(x1-x2) = softmax([x1,x2])[0]. */
Test(theory, sigmoid_of_difference_is_softmax_first)
{
    const float pairs[][2] = {{0, 0}, {1, -2}, {-3, 4}, {2.5f, 2.4f}, {100, -100}, {-100, 100}, {50, 49}, {-7, -7.5f}};
    for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
        float x1 = pairs[k][0], x2 = pairs[k][1];
        tg_tensor *x = tg_tensor_from_data(TG_SHAPE(2), (float[]){x1, x2});
        tg_tensor *t = tg_tensor_from_i64(0, NULL, (int64_t[]){0});
        tg_tensor *z = tg_tensor_from_data(TG_SHAPE(1), (float[]){x1 - x2}), *one = tg_tensor_ones(TG_SHAPE(1));
        float ce = tg_cross_entropy(x, t, (tg_ce_opts){0})->data[0];
        float bce = tg_binary_cross_entropy_with_logits(z, one, (tg_bce_opts){0})->data[0];
        cr_expect(close_to(ce, bce), "(%g,%g): CE %.9g vs BCE %.9g", x1, x2, ce, bce);
        double p = exp(-(double)ce), s = 1 / (1 + exp(-(double)(x1 - x2)));
        cr_expect(fabs(p - s) < 1e-6, "(%g,%g): softmax %g vs sigmoid %g", x1, x2, p, s);
        tg_tape_clear();
        tg_tensor *all[] = {x, t, z, one};
        for (int i = 0; i < 4; i++) tg_tensor_free(all[i]);
    }
}

/* The same with tg_sigmoid and tg_softmax (ops-math): sigmoid(x1 - x2) == softmax([x1, x2])[0]. */
Test(theory, tg_sigmoid_of_difference_equals_tg_softmax_first)
{
    const float pairs[][2] = {{0, 0}, {1, -2}, {-3, 4}, {2.5f, 2.4f}, {100, -100}, {-100, 100}, {50, 49}, {-7, -7.5f}};
    int n = (int)(sizeof pairs / sizeof *pairs);
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(n, 2)), *z = tg_tensor_zeros(TG_SHAPE(n));
    for (int k = 0; k < n; k++) {
        x->data[2 * k] = pairs[k][0], x->data[2 * k + 1] = pairs[k][1];
        z->data[k] = pairs[k][0] - pairs[k][1];
    }
    tg_tensor *sm = tg_softmax(x, 1), *sg = tg_sigmoid(z);
    cr_assert(sm && sg, "%s", tg_last_error());
    for (int k = 0; k < n; k++)
        cr_expect(fabsf(sm->data[2 * k] - sg->data[k]) <= 1e-7f + 1e-6f * sg->data[k], "(%g,%g): softmax %.9g sigmoid %.9g",
                  pairs[k][0], pairs[k][1], sm->data[2 * k], sg->data[k]);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(z);
}

typedef struct {
    tg_tensor *ce_x, *ce_t, *ce_w, *bce_z, *bce_y, *bce_w;
    int64_t N, H, W;
    double sum_wy; /* sum of w_y over non-ignored pixels */
} head_pair;

/* Builds z (N,2,H,W), labels with ~20% ignored (255), CE weights [w0,w1], and the equivalent
 * BCE problem: z1 - z0, y = label (0 where ignored), per-pixel weight w_y (0 where ignored). */
static head_pair make_heads(uint64_t seed, float w0, float w1)
{
    head_pair h = {.N = 2, .H = 5, .W = 6};
    tg_rng r;
    tg_rng_seed(&r, seed);
    int64_t S = h.H * h.W;
    h.ce_x = tg_tensor_randn(TG_SHAPE(h.N, 2, h.H, h.W), &r);
    for (int64_t i = 0; i < h.ce_x->numel; i++) h.ce_x->data[i] *= 3;
    h.ce_t = tg_tensor_new(TG_I64, TG_SHAPE(h.N, h.H, h.W));
    h.ce_w = tg_tensor_from_data(TG_SHAPE(2), (float[]){w0, w1});
    h.bce_z = tg_tensor_zeros(TG_SHAPE(h.N, 1, h.H, h.W));
    h.bce_y = tg_tensor_zeros(TG_SHAPE(h.N, 1, h.H, h.W));
    h.bce_w = tg_tensor_zeros(TG_SHAPE(h.N, 1, h.H, h.W));
    for (int64_t n = 0; n < h.N; n++)
        for (int64_t p = 0; p < S; p++) {
            int64_t i = n * S + p, lab = tg_rng_uniform(&r) < 0.2f ? 255 : tg_rng_below(&r, 2);
            h.ce_t->idata[i] = lab;
            h.bce_z->data[i] = h.ce_x->data[(n * 2 + 1) * S + p] - h.ce_x->data[(n * 2) * S + p];
            h.bce_y->data[i] = lab == 1 ? 1.0f : 0.0f;
            h.bce_w->data[i] = lab == 255 ? 0.0f : lab ? w1 : w0;
            h.sum_wy += h.bce_w->data[i];
        }
    return h;
}

static void free_heads(head_pair *h)
{
    tg_tensor *all[] = {h->ce_x, h->ce_t, h->ce_w, h->bce_z, h->bce_y, h->bce_w};
    for (int i = 0; i < 6; i++) tg_tensor_free(all[i]);
}

/* CE mean = sum w_y l / sum w_y; BCE mean = sum w_y l / numel. So CE_mean = BCE_sum / sum w_y
 * = BCE_mean * numel / sum w_y; 'sum' and 'none' agree directly. The gradient of the
 * 2-channel head is (-d, +d) with d the BCE gradient wrt z, divided the same way. */
Test(theory, two_channel_ce_equals_bce_on_difference_with_weights_and_ignore)
{
    const float wts[][2] = {{1, 1}, {0.3f, 2.5f}, {4, 0.5f}};
    const tg_reduction reds[3] = {TG_REDUCTION_MEAN, TG_REDUCTION_SUM, TG_REDUCTION_NONE};
    for (int wi = 0; wi < 3; wi++)
        for (int ri = 0; ri < 3; ri++) {
            head_pair h = make_heads(10 + wi, wts[wi][0], wts[wi][1]);
            tg_tensor_set_requires_grad(h.ce_x, true);
            tg_tensor_set_requires_grad(h.bce_z, true);
            tg_reduction red = reds[ri];
            /* CE forward + backward (the tape is walked once per forward) */
            tg_tensor *ce = tg_cross_entropy(h.ce_x, h.ce_t,
                                             (tg_ce_opts){.weight = h.ce_w, .ignore_index = 255,
                                                          .has_ignore_index = true, .reduction = red});
            cr_assert_not_null(ce, "%s", tg_last_error());
            int64_t m = ce->numel;
            float *cev = malloc((size_t)m * sizeof(float));
            memcpy(cev, ce->data, (size_t)m * sizeof(float));
            tg_tensor *go = tg_tensor_ones(ce->ndim, ce->shape);
            for (int64_t i = 0; i < go->numel; i++) go->data[i] = 0.5f + (float)(i % 7) / 7.0f;
            cr_assert_eq(tg_backward_with(ce, go), TG_OK, "%s", tg_last_error());
            tg_tape_clear();
            /* BCE side: for 'mean' take the sum and divide by sum w_y (CE's denominator) */
            tg_reduction bred = red == TG_REDUCTION_MEAN ? TG_REDUCTION_SUM : red;
            tg_tensor *bce = tg_binary_cross_entropy_with_logits(h.bce_z, h.bce_y,
                                                                 (tg_bce_opts){.weight = h.bce_w, .reduction = bred});
            cr_assert_not_null(bce, "%s", tg_last_error());
            double k = red == TG_REDUCTION_MEAN ? 1.0 / h.sum_wy : 1.0;
            cr_assert_eq(m, bce->numel);
            for (int64_t i = 0; i < m; i++)
                cr_expect(close_to(cev[i], bce->data[i] * k), "w%d r%d [%lld]: CE %.9g vs BCE %.9g", wi, ri,
                          (long long)i, cev[i], bce->data[i] * k);
            cr_assert_eq(tg_backward_with(bce, go), TG_OK, "%s", tg_last_error());
            if (red == TG_REDUCTION_MEAN) { /* and via BCE's own mean: times numel / sum w_y */
                tg_tensor *bm = tg_binary_cross_entropy_with_logits(h.bce_z, h.bce_y, (tg_bce_opts){.weight = h.bce_w});
                cr_expect(close_to(cev[0], bm->data[0] * (double)h.bce_z->numel / h.sum_wy));
            }
            free(cev);
            int64_t S = h.H * h.W;
            for (int64_t n = 0; n < h.N; n++)
                for (int64_t p = 0; p < S; p++) {
                    double d = h.bce_z->grad[n * S + p] * k;
                    float g0 = h.ce_x->grad[(n * 2) * S + p], g1 = h.ce_x->grad[(n * 2 + 1) * S + p];
                    /* softmax - 1 cancels in float (as in PyTorch): w_y * upstream * ulp(1) absolute */
                    double at = 1e-6 * k;
                    cr_expect(fabs(g1 - d) <= at + 1e-5 * fabs(d) && fabs(g0 + d) <= at + 1e-5 * fabs(d),
                              "w%d r%d pixel %lld: dz0 %g dz1 %g, BCE d %g", wi, ri, (long long)(n * S + p), g0, g1, d);
                    if (h.ce_t->idata[n * S + p] == 255) cr_expect(g0 == 0.0f && g1 == 0.0f);
                }
            tg_tape_clear();
            tg_tensor_free(go);
            free_heads(&h);
        }
}

/* Without ignored pixels, CE weight [w0,w1] is also BCE weight w0 with pos_weight w1/w0. */
Test(theory, class_weights_as_bce_weight_and_pos_weight)
{
    head_pair h = make_heads(20, 0.4f, 3.0f);
    for (int64_t i = 0; i < h.ce_t->numel; i++)
        if (h.ce_t->idata[i] == 255) h.ce_t->idata[i] = 1, h.bce_y->data[i] = 1;
    tg_tensor *w = tg_tensor_from_data(TG_SHAPE(1), (float[]){0.4f}), *pw = tg_tensor_from_data(TG_SHAPE(1), (float[]){3.0f / 0.4f});
    tg_tensor *ce = tg_cross_entropy(h.ce_x, h.ce_t, (tg_ce_opts){.weight = h.ce_w, .reduction = TG_REDUCTION_NONE});
    tg_tensor *bce = tg_binary_cross_entropy_with_logits(
        h.bce_z, h.bce_y, (tg_bce_opts){.weight = w, .pos_weight = pw, .reduction = TG_REDUCTION_NONE});
    cr_assert(ce && bce, "%s", tg_last_error());
    for (int64_t i = 0; i < ce->numel; i++)
        cr_expect(close_to(ce->data[i], bce->data[i]), "[%lld] %g vs %g", (long long)i, ce->data[i], bce->data[i]);
    tg_tape_clear();
    tg_tensor_free(w);
    tg_tensor_free(pw);
    free_heads(&h);
}

Test(edge, all_ignored_mean_is_nan_with_zero_grad_sum_is_zero)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(2, 2, 3, 3), NULL), true);
    tg_tensor *t = tg_tensor_new(TG_I64, TG_SHAPE(2, 3, 3));
    for (int64_t i = 0; i < t->numel; i++) t->idata[i] = 255;
    tg_ce_opts o = {.ignore_index = 255, .has_ignore_index = true};
    tg_tensor *m = tg_cross_entropy(x, t, o);
    cr_assert_not_null(m);
    cr_expect(isnan(m->data[0]));
    cr_assert_eq(tg_backward(m), TG_OK);
    for (int64_t i = 0; i < x->numel; i++) cr_expect_eq(x->grad[i], 0.0f);
    tg_tape_clear();
    o.reduction = TG_REDUCTION_SUM;
    cr_expect_eq(tg_cross_entropy(x, t, o)->data[0], 0.0f);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(t);
}

Test(edge, bce_unclamped_backward_and_clamped_log)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_from_data(TG_SHAPE(2), (float[]){0, 1}), true);
    tg_tensor *y = tg_tensor_from_data(TG_SHAPE(2), (float[]){1, 0});
    tg_tensor *l = tg_binary_cross_entropy(x, y, (tg_bce_opts){.reduction = TG_REDUCTION_SUM});
    cr_expect_float_eq(l->data[0], 200.0f, 1e-4);
    cr_assert_eq(tg_backward(l), TG_OK);
    cr_expect(relerr(x->grad[0], -1e12) < 1e-6 && relerr(x->grad[1], 1e12) < 1e-6, "%g %g", x->grad[0], x->grad[1]);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

Test(edge, bce_with_logits_extremes_finite_and_inf_gives_nan)
{
    tg_tensor *x = tg_tensor_set_requires_grad(
        tg_tensor_from_data(TG_SHAPE(6), (float[]){1000, -1000, 300, -300, INFINITY, -INFINITY}), true);
    tg_tensor *y = tg_tensor_from_data(TG_SHAPE(6), (float[]){0, 1, 1, 0, 1, 0});
    tg_tensor *l = tg_binary_cross_entropy_with_logits(x, y, (tg_bce_opts){.reduction = TG_REDUCTION_NONE});
    cr_expect_float_eq(l->data[0], 1000.0f, 1e-3);
    cr_expect_float_eq(l->data[1], 1000.0f, 1e-3);
    cr_expect_eq(l->data[2], 0.0f);
    cr_expect_eq(l->data[3], 0.0f);
    cr_expect(isnan(l->data[4]) && isnan(l->data[5]), "%g %g (PyTorch gives NaN)", l->data[4], l->data[5]);
    tg_tensor *go = tg_tensor_ones(TG_SHAPE(6));
    cr_assert_eq(tg_backward_with(l, go), TG_OK);
    tg_tensor_free(go);
    cr_expect_float_eq(x->grad[0], 1.0f, 1e-7);
    cr_expect_float_eq(x->grad[1], -1.0f, 1e-7);
    cr_expect_float_eq(x->grad[2], 0.0f, 1e-7);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* A -inf logit (a masked class) that is not the target: finite loss, zero gradient there,
 * the same loss as without that class (PyTorch: F.cross_entropy([[0,-inf,1]], [2]) = 0.3133). */
Test(edge, minus_inf_logit_in_other_class)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_from_data(TG_SHAPE(1, 3), (float[]){0, -INFINITY, 1}), true);
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(1), (int64_t[]){2});
    tg_tensor *l = tg_cross_entropy(x, t, (tg_ce_opts){0});
    cr_assert_not_null(l);
    cr_expect(fabsf(l->data[0] - 0.31326169f) < 1e-6f, "%.9g", l->data[0]);
    cr_assert_eq(tg_backward(l), TG_OK);
    cr_expect_eq(x->grad[1], 0.0f);
    cr_expect(fabsf(x->grad[0] - 0.26894142f) < 1e-6f && fabsf(x->grad[2] + 0.26894142f) < 1e-6f, "%g %g", x->grad[0],
              x->grad[2]);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(t);
}

/* Empty input: 'mean' is NaN (0/0), 'sum' is 0, as PyTorch. */
Test(edge, empty_input_mean_nan_sum_zero)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(0, 3)), *y = tg_tensor_zeros(TG_SHAPE(0, 3));
    tg_tensor *t = tg_tensor_new(TG_I64, TG_SHAPE(0));
    cr_assert(x && y && t, "%s", tg_last_error());
    cr_expect(isnan(tg_mse_loss(x, y, TG_REDUCTION_MEAN)->data[0]));
    cr_expect_eq(tg_mse_loss(x, y, TG_REDUCTION_SUM)->data[0], 0.0f);
    cr_expect(isnan(tg_binary_cross_entropy_with_logits(x, y, (tg_bce_opts){0})->data[0]));
    cr_expect(isnan(tg_cross_entropy(x, t, (tg_ce_opts){0})->data[0]));
    cr_expect_eq(tg_cross_entropy(x, t, (tg_ce_opts){.reduction = TG_REDUCTION_SUM})->data[0], 0.0f);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(t);
}

/* ---- large inputs: many blocks, OpenMP on; against a plain double loop ---- */

static void ce_reference(const tg_tensor *x, const tg_tensor *t, const float *w, int64_t ignore, double eps,
                         double *loss, double *grad)
{
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C);
    double sl = 0, sw = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t p = 0; p < S; p++) {
            int64_t y = t->idata[n * S + p];
            if (y == ignore) continue;
            double m = -INFINITY, s = 0, W = 0;
            for (int64_t c = 0; c < C; c++) m = fmax(m, x->data[(n * C + c) * S + p]);
            for (int64_t c = 0; c < C; c++) s += exp(x->data[(n * C + c) * S + p] - m), W += w[c];
            double lse = m + log(s), smooth = 0;
            for (int64_t c = 0; c < C; c++) smooth += w[c] * (lse - x->data[(n * C + c) * S + p]);
            sl += (1 - eps) * w[y] * (lse - x->data[(n * C + y) * S + p]) + eps / C * smooth;
            sw += w[y];
            for (int64_t c = 0; c < C; c++) {
                double pc = exp(x->data[(n * C + c) * S + p] - lse);
                grad[(n * C + c) * S + p] = (1 - eps) * w[y] * (pc - (c == y)) + eps / C * (W * pc - w[c]);
            }
        }
    *loss = sl / sw;
    for (int64_t i = 0; i < x->numel; i++) grad[i] /= sw;
}

Test(large, cross_entropy_matches_double_reference_and_is_thread_count_independent)
{
    tg_rng r;
    tg_rng_seed(&r, 77);
    const int64_t N = 3, C = 3, H = 70, W = 90, S = H * W;
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(N, C, H, W), &r), true);
    for (int64_t i = 0; i < x->numel; i++) x->data[i] *= 4;
    tg_tensor *t = tg_tensor_new(TG_I64, TG_SHAPE(N, H, W));
    for (int64_t i = 0; i < N * S; i++) t->idata[i] = tg_rng_uniform(&r) < 0.1f ? 255 : tg_rng_below(&r, C);
    float wv[3] = {0.2f, 1.0f, 3.0f};
    tg_tensor *w = tg_tensor_from_data(TG_SHAPE(3), wv);
    double *ref = calloc((size_t)x->numel, sizeof(double)), refl;
    ce_reference(x, t, wv, 255, 0.1, &refl, ref);
    float *g1 = malloc((size_t)x->numel * sizeof(float));
    float l1 = 0;
    int threads[2] = {1, 2};
    for (int k = 0; k < 2; k++) {
        tg_set_num_threads(threads[k]);
        tg_tensor_zero_grad(x);
        tg_tensor *l = tg_cross_entropy(
            x, t, (tg_ce_opts){.weight = w, .ignore_index = 255, .has_ignore_index = true, .label_smoothing = 0.1f});
        cr_assert_eq(tg_backward(l), TG_OK, "%s", tg_last_error());
        cr_expect(relerr(l->data[0], refl) < 1e-5, "loss %.9g vs %.9g", l->data[0], refl);
        for (int64_t i = 0; i < x->numel; i++)
            if (fabs(x->grad[i] - ref[i]) > 1e-9 + 1e-4 * fabs(ref[i])) {
                cr_expect_fail("grad[%lld] %g vs %g", (long long)i, x->grad[i], ref[i]);
                break;
            }
        if (k == 0) {
            l1 = l->data[0];
            memcpy(g1, x->grad, (size_t)x->numel * sizeof(float));
        } else {
            cr_expect_eq(l->data[0], l1, "1 vs 2 threads: %.9g vs %.9g", l1, l->data[0]);
            cr_expect(memcmp(g1, x->grad, (size_t)x->numel * sizeof(float)) == 0, "gradients differ across threads");
        }
        tg_tape_clear();
    }
    tg_set_num_threads(0);
    free(ref);
    free(g1);
    tg_tensor_free(x);
    tg_tensor_free(t);
    tg_tensor_free(w);
}

Test(large, bce_with_logits_matches_double_reference)
{
    tg_rng r;
    tg_rng_seed(&r, 78);
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(4, 1, 100, 90), &r), true);
    tg_tensor *y = tg_tensor_rand(TG_SHAPE(4, 1, 100, 90), &r);
    for (int64_t i = 0; i < x->numel; i++) x->data[i] *= 8, y->data[i] = y->data[i] < 0.3f;
    tg_set_num_threads(1);
    float l1 = tg_binary_cross_entropy_with_logits(x, y, (tg_bce_opts){0})->data[0];
    tg_tape_clear();
    tg_set_num_threads(2);
    tg_tensor *l = tg_binary_cross_entropy_with_logits(x, y, (tg_bce_opts){0});
    tg_set_num_threads(0);
    cr_expect_eq(l->data[0], l1, "1 vs 2 threads: %.9g vs %.9g", l1, l->data[0]);
    cr_assert_eq(tg_backward(l), TG_OK);
    double s = 0, atol = 2e-7 / (double)x->numel; /* sigmoid(x) - 1 cancels in float (as in PyTorch) */
    for (int64_t i = 0; i < x->numel; i++) {
        double xv = x->data[i], yv = y->data[i];
        s += (1 - yv) * xv + fmax(-xv, 0) + log1p(exp(-fabs(xv)));
    }
    for (int64_t i = 0; i < x->numel; i++) {
        double xv = x->data[i], yv = y->data[i];
        double g = (1 / (1 + exp(-xv)) - yv) / (double)x->numel;
        if (fabs(x->grad[i] - g) > atol + 1e-5 * fabs(g)) {
            cr_expect_fail("grad[%lld] %g vs %g", (long long)i, x->grad[i], g);
            break;
        }
    }
    cr_expect(relerr(l->data[0], s / (double)x->numel) < 1e-5, "%.9g vs %.9g", l->data[0], s / (double)x->numel);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* The fused kernels' exp and log: within 2 ulp-ish (3e-7 relative) of libm. */
Test(internals, vectorizable_exp_and_log_accuracy)
{
    double worst_e = 0, worst_l = 0;
    for (float v = -87.0f; v <= 0.0f; v += 0.00137f) {
        double e = exp((double)v);
        worst_e = fmax(worst_e, fabs(tg_expf_fast(v, TG_EXP_FLUSH) - e) / e);
    }
    for (float v = 1.0f; v <= 64.0f; v *= 1.000913f) worst_l = fmax(worst_l, fabs(tg_logf_fast(v) - log((double)v)) / fmax(log((double)v), 1e-3));
    for (float v = 1e-30f; v <= 1.0f; v *= 1.0131f) worst_l = fmax(worst_l, fabs(tg_logf_fast(v) - log((double)v)) / fabs(log((double)v)) );
    cr_expect(worst_e < 3e-7, "exp worst relative error %g", worst_e);
    cr_expect(worst_l < 3e-7, "log worst relative error %g", worst_l);
    cr_expect_eq(tg_expf_fast(-100.0f, TG_EXP_FLUSH), 0.0f);
    cr_expect_eq(tg_logf_fast(1.0f), 0.0f);
}

/* Both modes of the fast exp (ops/fastmath_internal.h) on NaN, +-Inf and huge arguments: expf's
 * results (NaN for NaN), no undefined behaviour (the sanitizer build aborts on UBSan's "left shift
 * of negative value" that a NaN used to cause in the FLUSH mode). */
Test(internals, fast_exp_and_log_nonfinite_arguments)
{
    volatile float in[] = {NAN, -NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, 1e30f, -1e30f, 88.5f, -200.0f, 1e-40f};
    for (size_t k = 0; k < sizeof in / sizeof *in; k++) {
        float x = in[k], e1 = tg_expf_fast(x, TG_EXP_FLUSH), e2 = tg_expf_fast(x, TG_EXP_IEEE), want = expf(x);
        if (isnan(x)) {
            cr_expect(isnan(e1) && isnan(e2), "exp(NaN): %g %g", e1, e2);
            (void)tg_logf_fast(x); /* documented as meaningless for NaN; it must only be free of UB */
            continue;
        }
        /* TG_EXP_IEEE follows expf everywhere; TG_EXP_FLUSH is for x <= 88 (exp(88) above it) */
        cr_expect(e2 == want || fabsf(e2 - want) <= 3e-7f * want, "tg_expf_fast(%g, IEEE) = %g, expf %g", x, e2, want);
        float want1 = x > 88.0f ? expf(88.0f) : want;
        cr_expect(fabsf(e1 - want1) <= 3e-7f * want1, "tg_expf_fast(%g, TG_EXP_FLUSH) = %g, expected %g", x, e1, want1);
    }
    /* through the loops that vectorize: a block with NaN and infinities between finite values */
    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = in[i % (sizeof in / sizeof *in)];
    for (int i = 0; i < 64; i++) y[i] = tg_expf_fast(x[i], TG_EXP_FLUSH);
    for (int i = 0; i < 64; i++) cr_expect(isnan(x[i]) == isnan(y[i]), "element %d: exp(%g) = %g", i, x[i], y[i]);
}

/* The two modes of the fast exp differ where fastmath_internal.h says: below -87.3 (IEEE gives
 * expf's denormals, FLUSH 0) and above 88 (IEEE overflows to inf as expf, FLUSH stays at exp(88)). */
Test(internals, fast_exp_modes_differ_as_documented)
{
    volatile float lo[] = {-87.5f, -95.0f, -100.0f, -103.5f}, hi[] = {88.5f, 89.0f, 100.0f};
    for (size_t k = 0; k < sizeof lo / sizeof *lo; k++) {
        float ieee = tg_expf_fast(lo[k], TG_EXP_IEEE), flush = tg_expf_fast(lo[k], TG_EXP_FLUSH);
        cr_expect(ieee > 0.0f && ieee < FLT_MIN && flush == 0.0f, "exp(%g): IEEE %g (denormal), FLUSH %g (0)",
                  lo[k], ieee, flush);
    }
    for (size_t k = 0; k < sizeof hi / sizeof *hi; k++) {
        float ieee = tg_expf_fast(hi[k], TG_EXP_IEEE), flush = tg_expf_fast(hi[k], TG_EXP_FLUSH);
        cr_expect(isinf(expf(hi[k])) == isinf(ieee) && flush == tg_expf_fast(88.0f, TG_EXP_FLUSH),
                  "exp(%g): IEEE %g (expf %g), FLUSH %g (exp(88))", hi[k], ieee, expf(hi[k]), flush);
    }
    cr_expect(tg_expf_fast(-104.5f, TG_EXP_IEEE) == 0.0f && tg_expf_fast(-104.5f, TG_EXP_FLUSH) == 0.0f);
}
