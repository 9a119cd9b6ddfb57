/* Bad input to the losses of ops/loss.h: NULL and a clear message naming the argument. */
#include <criterion/criterion.h>
#include <string.h>

#include "tapegrad.h"

#define EXPECT_ERR(call, status, text)                                                                   \
    do {                                                                                                 \
        tg_clear_error();                                                                                \
        tg_tensor *r_ = (call);                                                                          \
        cr_expect_null(r_, "%s should fail", #call);                                                     \
        cr_expect_eq(tg_last_status(), status, "%s: status %d (%s)", #call, tg_last_status(), tg_last_error()); \
        cr_expect(strstr(tg_last_error(), text) != NULL, "%s: message \"%s\" lacks \"%s\"", #call,         \
                  tg_last_error(), text);                                                                \
    } while (0)

static tg_tensor *x23, *y23, *x4, *t2, *x2322, *t222;

static void setup(void)
{
    x23 = tg_tensor_rand(TG_SHAPE(2, 3), NULL);
    y23 = tg_tensor_rand(TG_SHAPE(2, 3), NULL);
    x4 = tg_tensor_rand(TG_SHAPE(4), NULL);
    t2 = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){0, 2});
    x2322 = tg_tensor_randn(TG_SHAPE(2, 3, 2, 2), NULL);
    t222 = tg_tensor_from_i64(TG_SHAPE(2, 2, 2), (int64_t[]){0, 1, 2, 0, 1, 2, 0, 1});
}

static void teardown(void)
{
    tg_tape_clear();
    tg_tensor *all[] = {x23, y23, x4, t2, x2322, t222};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tg_tensor_free(all[i]);
}

TestSuite(loss_errors, .init = setup, .fini = teardown);

Test(loss_errors, cross_entropy_target_out_of_bounds)
{
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){0, 5});
    EXPECT_ERR(tg_cross_entropy(x23, t, (tg_ce_opts){0}), TG_ERR_VALUE, "Target 5 is out of bounds");
    t->idata[1] = -1;
    EXPECT_ERR(tg_cross_entropy(x23, t, (tg_ce_opts){0}), TG_ERR_VALUE, "Target -1 is out of bounds");
    EXPECT_ERR(tg_nll_loss(x23, t, (tg_ce_opts){0}), TG_ERR_VALUE, "Target -1 is out of bounds");
    /* but -1 as ignore_index is fine, and 255 only when it is the ignore_index */
    cr_expect_not_null(tg_cross_entropy(x23, t, (tg_ce_opts){.ignore_index = -1, .has_ignore_index = true}));
    t->idata[1] = 255;
    EXPECT_ERR(tg_cross_entropy(x23, t, (tg_ce_opts){0}), TG_ERR_VALUE, "Target 255 is out of bounds");
    cr_expect_not_null(tg_cross_entropy(x23, t, (tg_ce_opts){.ignore_index = 255, .has_ignore_index = true}));
    /* a K-dim input reports the bad target too */
    t222->idata[5] = 3;
    EXPECT_ERR(tg_cross_entropy(x2322, t222, (tg_ce_opts){0}), TG_ERR_VALUE, "Target 3 is out of bounds");
    tg_tensor_free(t);
}

Test(loss_errors, cross_entropy_shapes_and_options)
{
    tg_tensor *t3 = tg_tensor_from_i64(TG_SHAPE(3), (int64_t[]){0, 1, 2});
    EXPECT_ERR(tg_cross_entropy(x23, t3, (tg_ce_opts){0}), TG_ERR_SHAPE, "target (3,) does not fit input (2, 3)");
    tg_tensor *t22 = tg_tensor_from_i64(TG_SHAPE(2, 3), (int64_t[]){0, 0, 0, 0, 0, 0});
    EXPECT_ERR(tg_cross_entropy(x2322, t22, (tg_ce_opts){0}), TG_ERR_SHAPE, "does not fit");
    tg_tensor *p = tg_tensor_rand(TG_SHAPE(2, 4), NULL);
    EXPECT_ERR(tg_cross_entropy(x23, p, (tg_ce_opts){0}), TG_ERR_SHAPE, "must have the input's shape");
    EXPECT_ERR(tg_cross_entropy(x23, y23, (tg_ce_opts){.ignore_index = 0, .has_ignore_index = true}), TG_ERR_ARG,
               "ignore_index");
    tg_tensor *w2 = tg_tensor_ones(TG_SHAPE(2));
    EXPECT_ERR(tg_cross_entropy(x23, t2, (tg_ce_opts){.weight = w2}), TG_ERR_SHAPE, "weight must have shape (3)");
    EXPECT_ERR(tg_nll_loss(x23, t2, (tg_ce_opts){.weight = w2}), TG_ERR_SHAPE, "weight");
    EXPECT_ERR(tg_cross_entropy(x23, t2, (tg_ce_opts){.label_smoothing = 1.5f}), TG_ERR_ARG,
               "label_smoothing must be in [0, 1]");
    EXPECT_ERR(tg_cross_entropy(x23, t2, (tg_ce_opts){.label_smoothing = -0.1f}), TG_ERR_ARG, "label_smoothing");
    EXPECT_ERR(tg_nll_loss(x23, t2, (tg_ce_opts){.label_smoothing = 0.1f}), TG_ERR_ARG, "label_smoothing");
    EXPECT_ERR(tg_nll_loss(x23, y23, (tg_ce_opts){0}), TG_ERR_ARG, "int64");
    EXPECT_ERR(tg_cross_entropy(x23, t2, (tg_ce_opts){.reduction = TG_REDUCTION_BATCHMEAN}), TG_ERR_ARG,
               "batchmean");
    EXPECT_ERR(tg_cross_entropy(x23, t2, (tg_ce_opts){.reduction = (tg_reduction)42}), TG_ERR_ARG,
               "unknown reduction");
    tg_tensor *s = tg_tensor_scalar(1.0f);
    EXPECT_ERR(tg_cross_entropy(s, t2, (tg_ce_opts){0}), TG_ERR_SHAPE, "scalar");
    /* an int64 input */
    EXPECT_ERR(tg_cross_entropy(t22, t2, (tg_ce_opts){0}), TG_ERR_ARG, "input");
    tg_tensor *all[] = {t3, t22, p, w2, s};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tg_tensor_free(all[i]);
}

Test(loss_errors, null_input_keeps_the_first_error)
{
    tg_error(TG_ERR_SHAPE, "earlier failure");
    cr_expect_null(tg_cross_entropy(NULL, t2, (tg_ce_opts){0}));
    cr_expect_null(tg_binary_cross_entropy_with_logits(NULL, y23, (tg_bce_opts){0}));
    cr_expect_null(tg_mse_loss(x23, NULL, TG_REDUCTION_MEAN));
    cr_expect_null(tg_dice_loss(NULL, t222, (tg_dice_opts){0}));
    cr_expect_str_eq(tg_last_error(), "earlier failure");
}

Test(loss_errors, bce_input_outside_0_1_and_shapes)
{
    x23->data[4] = 1.5f;
    EXPECT_ERR(tg_binary_cross_entropy(x23, y23, (tg_bce_opts){0}), TG_ERR_VALUE, "between 0 and 1 (input[4] = 1.5)");
    x23->data[4] = -0.01f;
    EXPECT_ERR(tg_binary_cross_entropy(x23, y23, (tg_bce_opts){0}), TG_ERR_VALUE, "between 0 and 1");
    x23->data[4] = 0.5f;
    tg_tensor *y32 = tg_tensor_rand(TG_SHAPE(3, 2), NULL);
    EXPECT_ERR(tg_binary_cross_entropy(x23, y32, (tg_bce_opts){0}), TG_ERR_SHAPE, "target shape (3, 2) must equal");
    EXPECT_ERR(tg_binary_cross_entropy_with_logits(x23, y32, (tg_bce_opts){0}), TG_ERR_SHAPE, "target shape");
    tg_tensor *w4 = tg_tensor_ones(TG_SHAPE(4));
    EXPECT_ERR(tg_binary_cross_entropy(x23, y23, (tg_bce_opts){.weight = w4}), TG_ERR_SHAPE,
               "weight of shape (4,) does not broadcast");
    EXPECT_ERR(tg_binary_cross_entropy_with_logits(x23, y23, (tg_bce_opts){.pos_weight = w4}), TG_ERR_SHAPE,
               "pos_weight of shape (4,)");
    /* pos_weight (2) on (2,3): broadcasts from the LAST dim, so it does not fit */
    tg_tensor *w2 = tg_tensor_ones(TG_SHAPE(2));
    EXPECT_ERR(tg_binary_cross_entropy_with_logits(x23, y23, (tg_bce_opts){.pos_weight = w2}), TG_ERR_SHAPE,
               "pos_weight");
    EXPECT_ERR(tg_binary_cross_entropy(x23, y23, (tg_bce_opts){.pos_weight = w2}), TG_ERR_ARG, "pos_weight");
    EXPECT_ERR(tg_binary_cross_entropy(x23, t2, (tg_bce_opts){0}), TG_ERR_ARG, "target");
    tg_tensor *w123 = tg_tensor_ones(TG_SHAPE(1, 2, 3));
    EXPECT_ERR(tg_binary_cross_entropy(x23, y23, (tg_bce_opts){.weight = w123}), TG_ERR_SHAPE, "weight");
    EXPECT_ERR(tg_multilabel_soft_margin_loss(x23, y23, w4, TG_REDUCTION_MEAN), TG_ERR_SHAPE, "weight");
    tg_tensor *s = tg_tensor_scalar(0.5f);
    EXPECT_ERR(tg_multilabel_soft_margin_loss(s, s, NULL, TG_REDUCTION_MEAN), TG_ERR_SHAPE, "class dim");
    tg_tensor *all[] = {y32, w4, w2, w123, s};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tg_tensor_free(all[i]);
}

Test(loss_errors, regression_parameters)
{
    EXPECT_ERR(tg_smooth_l1_loss(x23, y23, TG_REDUCTION_MEAN, -1.0f), TG_ERR_ARG, "beta must be >= 0");
    EXPECT_ERR(tg_huber_loss(x23, y23, TG_REDUCTION_MEAN, 0.0f), TG_ERR_ARG, "delta must be > 0");
    EXPECT_ERR(tg_huber_loss(x23, y23, TG_REDUCTION_MEAN, -2.0f), TG_ERR_ARG, "delta");
    EXPECT_ERR(tg_sigmoid_focal_loss(x23, y23, 0.25f, -1.0f, TG_REDUCTION_NONE), TG_ERR_ARG, "gamma");
    EXPECT_ERR(tg_mse_loss(x23, x4, TG_REDUCTION_MEAN), TG_ERR_SHAPE, "must equal input shape (2, 3)");
    EXPECT_ERR(tg_l1_loss(x23, x4, TG_REDUCTION_MEAN), TG_ERR_SHAPE, "tg_l1_loss");
    EXPECT_ERR(tg_soft_margin_loss(x23, x4, TG_REDUCTION_MEAN), TG_ERR_SHAPE, "tg_soft_margin_loss");
    EXPECT_ERR(tg_mse_loss(x23, y23, TG_REDUCTION_BATCHMEAN), TG_ERR_ARG, "only for kl_div");
    EXPECT_ERR(tg_kl_div(x23, x4, (tg_kl_div_opts){0}), TG_ERR_SHAPE, "tg_kl_div");
    cr_expect_not_null(tg_kl_div(x23, y23, (tg_kl_div_opts){.reduction = TG_REDUCTION_BATCHMEAN}));
}

Test(loss_errors, dice_shapes_and_targets)
{
    EXPECT_ERR(tg_dice_loss(x23, t2, (tg_dice_opts){0}), TG_ERR_SHAPE, "at least 3 dims");
    tg_tensor *t = tg_tensor_from_i64(TG_SHAPE(2, 2), (int64_t[]){0, 1, 0, 1});
    EXPECT_ERR(tg_dice_loss(x2322, t, (tg_dice_opts){0}), TG_ERR_SHAPE, "does not fit");
    t222->idata[0] = 3;
    EXPECT_ERR(tg_dice_loss(x2322, t222, (tg_dice_opts){0}), TG_ERR_VALUE, "Target 3 is out of bounds");
    t222->idata[0] = 255;
    EXPECT_ERR(tg_dice_loss(x2322, t222, (tg_dice_opts){0}), TG_ERR_VALUE, "Target 255");
    cr_expect_not_null(tg_dice_loss(x2322, t222, (tg_dice_opts){.ignore_index = 255, .has_ignore_index = true}));
    tg_tensor *x1 = tg_tensor_randn(TG_SHAPE(2, 1, 2, 2), NULL);
    t222->idata[0] = 2; /* a sigmoid head takes 0 and 1 only */
    EXPECT_ERR(tg_dice_loss(x1, t222, (tg_dice_opts){0}), TG_ERR_VALUE, "sigmoid head");
    tg_tensor *tf = tg_tensor_rand(TG_SHAPE(2, 2, 2), NULL);
    EXPECT_ERR(tg_dice_loss(x2322, tf, (tg_dice_opts){0}), TG_ERR_ARG, "target");
    tg_tensor_free(t);
    tg_tensor_free(x1);
    tg_tensor_free(tf);
}
