/* Finite-difference gradient checks (tg_gradcheck, probe tgt_weighted_sum) for every loss of
 * ops/loss.h over its option combinations and reductions. Inputs stay away from kinks
 * (|x-y| away from 0 and from beta/delta; BCE probabilities inside (0.05, 0.95)).
 * Tolerance: |analytic - numeric| <= 2e-3 + 2e-2|numeric|, step 5e-3 (float forward). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "ops/op_list.h"
#include "tapegrad.h"
#include "test_support.h"

#define GC_EPS 5e-3
#define GC_ATOL 2e-3
#define GC_RTOL 2e-2

typedef struct {
    tg_op_id kind; /* which loss: its id in ops/op_list.h */
    tg_tensor *t, *w, *pw;
    tg_reduction red;
    float a, b, ls;
    bool has_ign, log_target;
    int64_t ign;
} lcase;

static tg_tensor *run(const lcase *c, tg_tensor *x)
{
    tg_ce_opts ce = {.weight = c->w, .reduction = c->red, .label_smoothing = c->ls, .ignore_index = c->ign,
                     .has_ignore_index = c->has_ign};
    tg_bce_opts bo = {.weight = c->w, .pos_weight = c->pw, .reduction = c->red};
    switch (c->kind) {
    case TG_OP_cross_entropy: return tg_cross_entropy(x, c->t, ce);
    case TG_OP_nll_loss: return tg_nll_loss(x, c->t, ce);
    case TG_OP_binary_cross_entropy: return tg_binary_cross_entropy(x, c->t, bo);
    case TG_OP_binary_cross_entropy_with_logits: return tg_binary_cross_entropy_with_logits(x, c->t, bo);
    case TG_OP_soft_margin_loss: return tg_soft_margin_loss(x, c->t, c->red);
    case TG_OP_multilabel_soft_margin_loss: return tg_multilabel_soft_margin_loss(x, c->t, c->w, c->red);
    case TG_OP_sigmoid_focal_loss: return tg_sigmoid_focal_loss(x, c->t, c->a, c->b, c->red);
    case TG_OP_mse_loss: return tg_mse_loss(x, c->t, c->red);
    case TG_OP_l1_loss: return tg_l1_loss(x, c->t, c->red);
    case TG_OP_smooth_l1_loss: return tg_smooth_l1_loss(x, c->t, c->red, c->a);
    case TG_OP_huber_loss: return tg_huber_loss(x, c->t, c->red, c->a);
    case TG_OP_kl_div: return tg_kl_div(x, c->t, (tg_kl_div_opts){.reduction = c->red, .log_target = c->log_target});
    case TG_OP_dice_loss:
        return tg_dice_loss(x, c->t, (tg_dice_opts){.ignore_index = c->ign, .has_ignore_index = c->has_ign});
    default: break; /* the losses of ops/loss_extra.h have their own tests */
    }
    return NULL;
}

static tg_tensor *probe(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    return tgt_weighted_sum(run(ctx, in[0]), 99);
}

static void check(const char *what, lcase *c, tg_tensor *x)
{
    tg_tensor_set_requires_grad(x, true);
    tgt_expect_gradcheck(what, probe, c, &x, 1, GC_EPS, GC_ATOL, GC_RTOL);
}

static const tg_reduction REDS[3] = {TG_REDUCTION_MEAN, TG_REDUCTION_SUM, TG_REDUCTION_NONE};
static const char *RED_NAMES[3] = {"mean", "sum", "none"};

static tg_tensor *randn(tg_rng *r, int ndim, const int64_t *shape, float scale)
{
    tg_tensor *t = tg_tensor_randn(ndim, shape, r);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] *= scale;
    return t;
}

static tg_tensor *labels(tg_rng *r, int ndim, const int64_t *shape, int64_t C, int64_t ignore, double frac)
{
    tg_tensor *t = tg_tensor_new(TG_I64, ndim, shape);
    for (int64_t i = 0; i < t->numel; i++)
        t->idata[i] = frac > 0 && tg_rng_uniform(r) < frac ? ignore : tg_rng_below(r, C);
    return t;
}

Test(loss_gradcheck, cross_entropy_and_nll_options)
{
    tg_rng r;
    tg_rng_seed(&r, 1);
    const int64_t shapes[3][4] = {{4, 3, 0, 0}, {2, 3, 2, 3}, {5, 0, 0, 0}};
    const int ndims[3] = {2, 4, 1};
    for (int s = 0; s < 3; s++) {
        int nd = ndims[s];
        int64_t C = nd == 1 ? shapes[s][0] : shapes[s][1];
        int64_t tshape[4] = {shapes[s][0], shapes[s][2], shapes[s][3]};
        int tnd = nd == 1 ? 0 : nd - 1;
        for (int ri = 0; ri < 3; ri++)
            for (int wi = 0; wi < 2; wi++)
                for (int ii = 0; ii < 2; ii++)
                    for (int li = 0; li < 3; li++) {
                        tg_tensor *x = randn(&r, nd, shapes[s], 2.0f);
                        tg_tensor *t = labels(&r, tnd, tshape, C, 255, ii && nd > 1 ? 0.3 : 0);
                        tg_tensor *w = wi ? tg_tensor_rand(TG_SHAPE(C), &r) : NULL;
                        if (w)
                            for (int64_t k = 0; k < C; k++) w->data[k] += 0.2f;
                        float ls = li == 0 ? 0.0f : li == 1 ? 0.1f : 1.0f;
                        lcase c = {.kind = TG_OP_cross_entropy, .t = t, .w = w, .red = REDS[ri], .ls = ls,
                                   .ign = 255, .has_ign = ii};
                        char what[128];
                        snprintf(what, sizeof what, "cross_entropy shape%d %s w%d ign%d ls%.1f", s, RED_NAMES[ri], wi,
                                 ii, ls);
                        check(what, &c, x);
                        if (li == 0) {
                            c.kind = TG_OP_nll_loss;
                            snprintf(what, sizeof what, "nll_loss shape%d %s w%d ign%d", s, RED_NAMES[ri], wi, ii);
                            check(what, &c, x);
                        }
                        tg_tensor_free(x);
                        tg_tensor_free(t);
                        tg_tensor_free(w);
                    }
    }
}

Test(loss_gradcheck, cross_entropy_probability_targets)
{
    tg_rng r;
    tg_rng_seed(&r, 2);
    for (int ri = 0; ri < 3; ri++)
        for (int wi = 0; wi < 2; wi++)
            for (int li = 0; li < 2; li++) {
                tg_tensor *x = randn(&r, TG_SHAPE(2, 3, 2, 2), 2.0f);
                tg_tensor *t = tg_tensor_rand(TG_SHAPE(2, 3, 2, 2), &r); /* need not sum to 1 */
                tg_tensor *w = wi ? tg_tensor_from_data(TG_SHAPE(3), (float[]){0.5f, 1.0f, 2.0f}) : NULL;
                lcase c = {.kind = TG_OP_cross_entropy, .t = t, .w = w, .red = REDS[ri], .ls = li ? 0.2f : 0.0f};
                char what[96];
                snprintf(what, sizeof what, "cross_entropy prob %s w%d ls%d", RED_NAMES[ri], wi, li);
                check(what, &c, x);
                tg_tensor_free(x);
                tg_tensor_free(t);
                tg_tensor_free(w);
            }
}

Test(loss_gradcheck, binary_cross_entropy_and_logits)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    for (int ri = 0; ri < 3; ri++)
        for (int wi = 0; wi < 2; wi++)
            for (int pi = 0; pi < 2; pi++) {
                tg_tensor *x = tg_tensor_rand(TG_SHAPE(2, 3, 4), &r);
                for (int64_t i = 0; i < x->numel; i++) x->data[i] = 0.1f + 0.8f * x->data[i];
                tg_tensor *y = tg_tensor_rand(TG_SHAPE(2, 3, 4), &r);
                tg_tensor *w = wi ? tg_tensor_full(TG_SHAPE(3, 1), 0.7f) : NULL;
                if (w) w->data[1] = 1.6f;
                tg_tensor *pw = pi ? tg_tensor_from_data(TG_SHAPE(4), (float[]){0.5f, 1, 2, 3}) : NULL;
                char what[96];
                if (!pi) {
                    lcase c = {.kind = TG_OP_binary_cross_entropy, .t = y, .w = w, .red = REDS[ri]};
                    snprintf(what, sizeof what, "bce %s w%d", RED_NAMES[ri], wi);
                    check(what, &c, x);
                }
                tg_tensor *z = randn(&r, TG_SHAPE(2, 3, 4), 4.0f);
                z->data[0] = 30.0f, z->data[1] = -30.0f, z->data[2] = 0.0f;
                lcase c = {.kind = TG_OP_binary_cross_entropy_with_logits, .t = y, .w = w, .pw = pw, .red = REDS[ri]};
                snprintf(what, sizeof what, "bce_with_logits %s w%d pw%d", RED_NAMES[ri], wi, pi);
                check(what, &c, z);
                tg_tensor_free(x);
                tg_tensor_free(y);
                tg_tensor_free(z);
                tg_tensor_free(w);
                tg_tensor_free(pw);
            }
}

Test(loss_gradcheck, soft_margin_multilabel_focal)
{
    tg_rng r;
    tg_rng_seed(&r, 4);
    for (int ri = 0; ri < 3; ri++) {
        tg_tensor *x = randn(&r, TG_SHAPE(3, 4), 2.0f);
        tg_tensor *ypm = tg_tensor_rand(TG_SHAPE(3, 4), &r), *y01 = tg_tensor_rand(TG_SHAPE(3, 4), &r);
        for (int64_t i = 0; i < 12; i++) {
            ypm->data[i] = ypm->data[i] < 0.5f ? -1.0f : 1.0f;
            y01->data[i] = y01->data[i] < 0.5f ? 0.0f : 1.0f;
        }
        tg_tensor *w = tg_tensor_from_data(TG_SHAPE(4), (float[]){0.5f, 1, 2, 0.3f});
        char what[96];
        lcase c = {.kind = TG_OP_soft_margin_loss, .t = ypm, .red = REDS[ri]};
        snprintf(what, sizeof what, "soft_margin %s", RED_NAMES[ri]);
        check(what, &c, x);
        for (int wi = 0; wi < 2; wi++) {
            c = (lcase){.kind = TG_OP_multilabel_soft_margin_loss, .t = y01, .w = wi ? w : NULL, .red = REDS[ri]};
            snprintf(what, sizeof what, "multilabel_soft_margin %s w%d", RED_NAMES[ri], wi);
            check(what, &c, x);
        }
        const float ag[5][2] = {{0.25f, 2}, {-1, 2}, {0.6f, 0}, {0.25f, 1.5f}, {0.25f, 1}};
        for (int k = 0; k < 5; k++) {
            c = (lcase){.kind = TG_OP_sigmoid_focal_loss, .t = y01, .red = REDS[ri], .a = ag[k][0], .b = ag[k][1]};
            snprintf(what, sizeof what, "sigmoid_focal %s alpha %g gamma %g", RED_NAMES[ri], ag[k][0], ag[k][1]);
            check(what, &c, x);
        }
        tg_tensor_free(x);
        tg_tensor_free(ypm);
        tg_tensor_free(y01);
        tg_tensor_free(w);
    }
}

/* x = y + offsets whose |d| avoids 0, beta and delta by >= 0.05 */
Test(loss_gradcheck, regression_losses_away_from_kinks)
{
    float off[8] = {-2.1f, -0.8f, -0.3f, -0.12f, 0.1f, 0.35f, 0.7f, 1.9f};
    tg_rng r;
    tg_rng_seed(&r, 5);
    for (int ri = 0; ri < 3; ri++) {
        tg_tensor *y = randn(&r, TG_SHAPE(2, 4), 1.0f), *x = tg_tensor_zeros(TG_SHAPE(2, 4));
        for (int i = 0; i < 8; i++) x->data[i] = y->data[i] + off[i];
        char what[96];
        tg_op_id kinds[2] = {TG_OP_mse_loss, TG_OP_l1_loss};
        for (int k = 0; k < 2; k++) {
            lcase c = {.kind = kinds[k], .t = y, .red = REDS[ri]};
            snprintf(what, sizeof what, "%s %s", k ? "l1" : "mse", RED_NAMES[ri]);
            check(what, &c, x);
        }
        const float params[4] = {1.0f, 0.5f, 0.2f, 3.0f};
        for (int k = 0; k < 4; k++) {
            lcase c = {.kind = TG_OP_smooth_l1_loss, .t = y, .red = REDS[ri], .a = params[k]};
            snprintf(what, sizeof what, "smooth_l1 %s beta %g", RED_NAMES[ri], params[k]);
            check(what, &c, x);
            c.kind = TG_OP_huber_loss;
            snprintf(what, sizeof what, "huber %s delta %g", RED_NAMES[ri], params[k]);
            check(what, &c, x);
        }
        lcase c = {.kind = TG_OP_smooth_l1_loss, .t = y, .red = REDS[ri], .a = 0.0f};
        snprintf(what, sizeof what, "smooth_l1 %s beta 0", RED_NAMES[ri]);
        check(what, &c, x);
        tg_tensor_free(x);
        tg_tensor_free(y);
    }
}

Test(loss_gradcheck, kl_div_all_reductions)
{
    tg_rng r;
    tg_rng_seed(&r, 6);
    const tg_reduction reds[4] = {TG_REDUCTION_MEAN, TG_REDUCTION_SUM, TG_REDUCTION_NONE, TG_REDUCTION_BATCHMEAN};
    for (int ri = 0; ri < 4; ri++)
        for (int lt = 0; lt < 2; lt++) {
            tg_tensor *x = randn(&r, TG_SHAPE(3, 4), 1.0f), *y = tg_tensor_rand(TG_SHAPE(3, 4), &r);
            if (lt)
                for (int64_t i = 0; i < 12; i++) y->data[i] = logf(y->data[i] + 0.05f);
            else y->data[3] = 0.0f;
            lcase c = {.kind = TG_OP_kl_div, .t = y, .red = reds[ri], .log_target = lt};
            char what[64];
            snprintf(what, sizeof what, "kl_div reduction %d log_target %d", ri, lt);
            check(what, &c, x);
            tg_tensor_free(x);
            tg_tensor_free(y);
        }
}

Test(loss_gradcheck, dice_softmax_sigmoid_ignore)
{
    tg_rng r;
    tg_rng_seed(&r, 7);
    for (int C = 1; C <= 3; C++)
        for (int ii = 0; ii < 2; ii++) {
            tg_tensor *x = randn(&r, TG_SHAPE(2, C, 3, 4), 1.5f);
            tg_tensor *t = labels(&r, TG_SHAPE(2, 3, 4), C == 1 ? 2 : C, 255, ii ? 0.25 : 0);
            lcase c = {.kind = TG_OP_dice_loss, .t = t, .ign = 255, .has_ign = ii};
            char what[64];
            snprintf(what, sizeof what, "dice C=%d ignore %d", C, ii);
            check(what, &c, x);
            tg_tensor_free(x);
            tg_tensor_free(t);
        }
}
