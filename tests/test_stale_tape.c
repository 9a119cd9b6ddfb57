/* A tape tensor kept across tg_tape_clear is rejected by every op (NULL and a message naming
 * the op), including the case "keep y, clear, run one op, use y" in the release build;
 * TG_POISON_ARENA=1 fills cleared arena memory with NaN bytes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"
#include "test_support.h"

/* The program: y kept across a clear silently became another op's output. */
Test(stale_tape, kept_tensor_is_rejected_after_one_op)
{
    tg_tensor *x = tg_tensor_full(TG_SHAPE(1), -3.09f);
    tg_tensor *one = tg_tensor_ones(TG_SHAPE(1));
    tg_tensor *y = tg_mul_scalar(x, 1.0f);
    cr_assert_not_null(y);
    tg_tape_clear();
    tg_tensor *z = tg_mul_scalar(one, -154.5f); /* the very next step's first op */
    cr_assert_not_null(z);
    cr_expect_neq(y, z, "the next step handed out the cleared tensor's header again");
    tg_clear_error();
    cr_expect_null(tg_add(y, one), "tg_add accepted a tensor of a cleared tape");
    cr_expect_eq(tg_last_status(), TG_ERR_STATE);
    cr_expect(strstr(tg_last_error(), "tg_add") && strstr(tg_last_error(), "tg_tape_clear"), "%s", tg_last_error());
    /* the other argument position and a longer chain */
    tg_clear_error();
    cr_expect_null(tg_tensor_clone(y), "a stale tensor was cloned");
    cr_expect(isnan(tg_item(y)), "tg_item read a stale tensor");
    cr_expect(strstr(tg_last_error(), "tg_item"), "%s", tg_last_error());
    tg_clear_error();
    cr_expect_null(tg_add(one, y));
    cr_expect(strstr(tg_last_error(), "b belongs to a tape"), "%s", tg_last_error());
    for (int s = 0; s < 3; s++) {
        tg_tape_clear();
        tg_tensor *w = tg_mul_scalar(one, 2.0f);
        cr_assert_not_null(w);
        cr_expect_float_eq(tg_item(tg_add(w, one)), 3.0f, 0.0f, "live tensors still work after clears");
    }
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(one);
}

/* ---- every op, every tensor argument ---------------------------------------------------- */

enum { F23, F23B, I2, F4D, CONVW, C2, C3, LINW, LINB, DICE_T, CTC_LP, CTC_T, CTC_IL, CTC_TL, PM1, ML_T, GATHER_I, N_KINDS };
static tg_tensor *live[N_KINDS];

static void make_live(void)
{
    tg_rng r;
    tg_rng_seed(&r, 5);
    live[F23] = tg_tensor_rand(TG_SHAPE(2, 3), &r);
    live[F23B] = tg_tensor_rand(TG_SHAPE(2, 3), &r);
    for (int i = 0; i < 6; i++) {
        live[F23]->data[i] = 0.1f + 0.8f * live[F23]->data[i];
        live[F23B]->data[i] = 0.1f + 0.8f * live[F23B]->data[i];
    }
    live[I2] = tg_tensor_from_i64(TG_SHAPE(2), (const int64_t[]){0, 2});
    live[F4D] = tg_tensor_randn(TG_SHAPE(2, 3, 4, 4), &r);
    live[CONVW] = tg_tensor_randn(TG_SHAPE(2, 3, 3, 3), &r);
    live[C2] = tg_tensor_randn(TG_SHAPE(2), &r);
    live[C3] = tg_tensor_full(TG_SHAPE(3), 1.0f);
    live[LINW] = tg_tensor_randn(TG_SHAPE(4, 3), &r);
    live[LINB] = tg_tensor_randn(TG_SHAPE(4), &r);
    int64_t dt[32];
    for (int i = 0; i < 32; i++) dt[i] = i % 3;
    live[DICE_T] = tg_tensor_from_i64(TG_SHAPE(2, 4, 4), dt);
    live[CTC_LP] = tg_tensor_full(TG_SHAPE(5, 2, 3), logf(1.0f / 3.0f));
    live[CTC_T] = tg_tensor_from_i64(TG_SHAPE(2, 2), (const int64_t[]){1, 2, 2, 1});
    live[CTC_IL] = tg_tensor_from_i64(TG_SHAPE(2), (const int64_t[]){5, 5});
    live[CTC_TL] = tg_tensor_from_i64(TG_SHAPE(2), (const int64_t[]){2, 2});
    live[PM1] = tg_tensor_from_data(TG_SHAPE(2), (const float[]){1.0f, -1.0f});
    live[ML_T] = tg_tensor_from_i64(TG_SHAPE(2, 3), (const int64_t[]){0, -1, 0, 2, 1, -1});
    live[GATHER_I] = tg_tensor_from_i64(TG_SHAPE(2, 3), (const int64_t[]){0, 1, 2, 2, 1, 0});
    for (int k = 0; k < N_KINDS; k++) cr_assert_not_null(live[k], "kind %d", k);
}

static void free_live(void)
{
    for (int k = 0; k < N_KINDS; k++) tg_tensor_free(live[k]);
}

/* A tape copy of t (same dtype, shape, values). */
static tg_tensor *tape_copy(const tg_tensor *t)
{
    tg_tensor *c = tg_output_new(t->dtype, t->ndim, t->shape);
    cr_assert_not_null(c);
    if (t->dtype == TG_F32) memcpy(c->data, t->data, (size_t)t->numel * sizeof(float));
    else memcpy(c->idata, t->idata, (size_t)t->numel * sizeof(int64_t));
    return c;
}

typedef tg_tensor *(*op_call)(tg_tensor **a);
typedef struct {
    const char *name; /* the op's name, as its error messages say it */
    int n;
    int kinds[5];
    op_call call;
} op_case;

static const int DIM1[1] = {1};
static const int64_t PADS[2] = {1, 1};
static const int PERM[2] = {1, 0};
static int64_t bn_tracked;

#define OP(NAME, N, KINDS, FN) {NAME, N, KINDS, FN}
#define K(...) {__VA_ARGS__}

static tg_tensor *c_add(tg_tensor **a) { return tg_add(a[0], a[1]); }
static tg_tensor *c_sub(tg_tensor **a) { return tg_sub(a[0], a[1]); }
static tg_tensor *c_mul(tg_tensor **a) { return tg_mul(a[0], a[1]); }
static tg_tensor *c_div(tg_tensor **a) { return tg_div(a[0], a[1]); }
static tg_tensor *c_add_scalar(tg_tensor **a) { return tg_add_scalar(a[0], 1.0f); }
static tg_tensor *c_mul_scalar(tg_tensor **a) { return tg_mul_scalar(a[0], 2.0f); }
static tg_tensor *c_neg(tg_tensor **a) { return tg_neg(a[0]); }
static tg_tensor *c_exp(tg_tensor **a) { return tg_exp(a[0]); }
static tg_tensor *c_log(tg_tensor **a) { return tg_log(a[0]); }
static tg_tensor *c_pow(tg_tensor **a) { return tg_pow(a[0], 2.0f); }
static tg_tensor *c_sqrt(tg_tensor **a) { return tg_sqrt(a[0]); }
static tg_tensor *c_abs(tg_tensor **a) { return tg_abs(a[0]); }
static tg_tensor *c_clamp(tg_tensor **a) { return tg_clamp(a[0], 0.2f, 0.8f); }
static tg_tensor *c_relu(tg_tensor **a) { return tg_relu(a[0]); }
static tg_tensor *c_leaky(tg_tensor **a) { return tg_leaky_relu(a[0], 0.1f); }
static tg_tensor *c_sigmoid(tg_tensor **a) { return tg_sigmoid(a[0]); }
static tg_tensor *c_tanh(tg_tensor **a) { return tg_tanh(a[0]); }
static tg_tensor *c_softplus(tg_tensor **a) { return tg_softplus(a[0], 1.0f, 20.0f); }
static tg_tensor *c_softmax(tg_tensor **a) { return tg_softmax(a[0], 1); }
static tg_tensor *c_log_softmax(tg_tensor **a) { return tg_log_softmax(a[0], 1); }
static tg_tensor *c_sum(tg_tensor **a) { return tg_sum(a[0], DIM1, 1, false); }
static tg_tensor *c_mean(tg_tensor **a) { return tg_mean(a[0], DIM1, 1, false); }
static tg_tensor *c_max(tg_tensor **a) { return tg_max(a[0], DIM1, 1, false); }
static tg_tensor *c_min(tg_tensor **a) { return tg_min(a[0], DIM1, 1, false); }
static tg_tensor *c_sum_all(tg_tensor **a) { return tg_sum_all(a[0]); }
static tg_tensor *c_mean_all(tg_tensor **a) { return tg_mean_all(a[0]); }
static tg_tensor *c_argmax(tg_tensor **a) { return tg_argmax(a[0], 1, false); }
static tg_tensor *c_reshape(tg_tensor **a) { return tg_reshape(a[0], TG_SHAPE(3, 2)); }
static tg_tensor *c_permute(tg_tensor **a) { return tg_permute(a[0], PERM); }
static tg_tensor *c_transpose(tg_tensor **a) { return tg_transpose(a[0], 0, 1); }
static tg_tensor *c_slice(tg_tensor **a) { return tg_slice(a[0], 1, 0, 2, 1); }
static tg_tensor *c_concat(tg_tensor **a) { return tg_concat(a, 2, 0); }
static tg_tensor *c_pad(tg_tensor **a) { return tg_pad(a[0], PADS, 2, 0.0f); }
static tg_tensor *c_gather(tg_tensor **a) { return tg_gather(a[0], 1, a[1]); }
static tg_tensor *c_where(tg_tensor **a) { return tg_where(a[0], a[1], a[2]); }
static tg_tensor *c_conv2d(tg_tensor **a) { return tg_conv2d(a[0], a[1], a[2], (tg_conv2d_opts){.padding = {1, 1}}); }
static tg_tensor *c_conv_t(tg_tensor **a)
{
    return tg_conv_transpose2d(a[0], a[1], a[2], (tg_conv2d_opts){0});
}
static tg_tensor *c_max_pool(tg_tensor **a) { return tg_max_pool2d(a[0], (tg_pool2d_opts){.kernel = {2, 2}}); }
static tg_tensor *c_avg_pool(tg_tensor **a) { return tg_avg_pool2d(a[0], (tg_pool2d_opts){.kernel = {2, 2}}); }
static tg_tensor *c_adaptive(tg_tensor **a) { return tg_adaptive_avg_pool2d(a[0], 2, 2); }
static tg_tensor *c_up_bilinear(tg_tensor **a) { return tg_upsample_bilinear2d(a[0], (tg_upsample_opts){.size = {8, 8}}); }
static tg_tensor *c_up_nearest(tg_tensor **a) { return tg_upsample_nearest2d(a[0], (tg_upsample_opts){.size = {8, 8}}); }
static tg_tensor *c_bn(tg_tensor **a) { return tg_batch_norm(a[0], a[1], a[2], a[3], a[4], &bn_tracked, true, 0.1f, 1e-5f); }
static tg_tensor *c_bn_relu(tg_tensor **a)
{
    return tg_batch_norm_relu(a[0], a[1], a[2], a[3], a[4], &bn_tracked, false, 0.1f, 1e-5f);
}
static tg_tensor *c_dropout(tg_tensor **a) { return tg_dropout(a[0], 0.5f, true, NULL); }
static tg_tensor *c_flatten(tg_tensor **a) { return tg_flatten(a[0], 1, -1); }
static tg_tensor *c_linear(tg_tensor **a) { return tg_linear(a[0], a[1], a[2]); }
static tg_tensor *c_ce(tg_tensor **a) { return tg_cross_entropy(a[0], a[1], (tg_ce_opts){.weight = a[2]}); }
static tg_tensor *c_nll(tg_tensor **a) { return tg_nll_loss(a[0], a[1], (tg_ce_opts){.weight = a[2]}); }
static tg_tensor *c_bce(tg_tensor **a) { return tg_binary_cross_entropy(a[0], a[1], (tg_bce_opts){.weight = a[2]}); }
static tg_tensor *c_bce_logits(tg_tensor **a)
{
    return tg_binary_cross_entropy_with_logits(a[0], a[1], (tg_bce_opts){.weight = a[2], .pos_weight = a[3]});
}
static tg_tensor *c_soft_margin(tg_tensor **a) { return tg_soft_margin_loss(a[0], a[1], TG_REDUCTION_MEAN); }
static tg_tensor *c_ml_soft_margin(tg_tensor **a)
{
    return tg_multilabel_soft_margin_loss(a[0], a[1], a[2], TG_REDUCTION_MEAN);
}
static tg_tensor *c_focal(tg_tensor **a) { return tg_sigmoid_focal_loss(a[0], a[1], 0.25f, 2.0f, TG_REDUCTION_MEAN); }
static tg_tensor *c_mse(tg_tensor **a) { return tg_mse_loss(a[0], a[1], TG_REDUCTION_MEAN); }
static tg_tensor *c_l1(tg_tensor **a) { return tg_l1_loss(a[0], a[1], TG_REDUCTION_MEAN); }
static tg_tensor *c_smooth_l1(tg_tensor **a) { return tg_smooth_l1_loss(a[0], a[1], TG_REDUCTION_MEAN, 1.0f); }
static tg_tensor *c_huber(tg_tensor **a) { return tg_huber_loss(a[0], a[1], TG_REDUCTION_MEAN, 1.0f); }
static tg_tensor *c_kl(tg_tensor **a) { return tg_kl_div(a[0], a[1], (tg_kl_div_opts){0}); }
static tg_tensor *c_dice(tg_tensor **a) { return tg_dice_loss(a[0], a[1], (tg_dice_opts){0}); }
static tg_tensor *c_multi_margin(tg_tensor **a)
{
    return tg_multi_margin_loss(a[0], a[1], a[2], (tg_multi_margin_opts){0});
}
static tg_tensor *c_ml_margin(tg_tensor **a) { return tg_multilabel_margin_loss(a[0], a[1], (tg_multilabel_margin_opts){0}); }
static tg_tensor *c_hinge(tg_tensor **a) { return tg_hinge_embedding_loss(a[0], a[1], (tg_hinge_embedding_opts){0}); }
static tg_tensor *c_cosine(tg_tensor **a) { return tg_cosine_embedding_loss(a[0], a[1], a[2], (tg_cosine_embedding_opts){0}); }
static tg_tensor *c_ranking(tg_tensor **a) { return tg_margin_ranking_loss(a[0], a[1], a[2], (tg_margin_ranking_opts){0}); }
static tg_tensor *c_triplet(tg_tensor **a) { return tg_triplet_margin_loss(a[0], a[1], a[2], (tg_triplet_margin_opts){0}); }
static tg_tensor *c_poisson(tg_tensor **a) { return tg_poisson_nll_loss(a[0], a[1], (tg_poisson_nll_opts){0}); }
static tg_tensor *c_gaussian(tg_tensor **a) { return tg_gaussian_nll_loss(a[0], a[1], a[2], (tg_gaussian_nll_opts){0}); }
static tg_tensor *c_ctc(tg_tensor **a) { return tg_ctc_loss(a[0], a[1], a[2], a[3], (tg_ctc_opts){0}); }

static const op_case CASES[] = {
    OP("tg_add", 2, K(F23, F23B), c_add), OP("tg_sub", 2, K(F23, F23B), c_sub), OP("tg_mul", 2, K(F23, F23B), c_mul),
    OP("tg_div", 2, K(F23, F23B), c_div), OP("tg_add_scalar", 1, K(F23), c_add_scalar),
    OP("tg_mul_scalar", 1, K(F23), c_mul_scalar), OP("tg_neg", 1, K(F23), c_neg), OP("tg_exp", 1, K(F23), c_exp),
    OP("tg_log", 1, K(F23), c_log), OP("tg_pow", 1, K(F23), c_pow), OP("tg_sqrt", 1, K(F23), c_sqrt),
    OP("tg_abs", 1, K(F23), c_abs), OP("tg_clamp", 1, K(F23), c_clamp), OP("tg_relu", 1, K(F23), c_relu),
    OP("tg_leaky_relu", 1, K(F23), c_leaky), OP("tg_sigmoid", 1, K(F23), c_sigmoid), OP("tg_tanh", 1, K(F23), c_tanh),
    OP("tg_softplus", 1, K(F23), c_softplus), OP("tg_softmax", 1, K(F23), c_softmax),
    OP("tg_log_softmax", 1, K(F23), c_log_softmax), OP("tg_sum", 1, K(F23), c_sum), OP("tg_mean", 1, K(F23), c_mean),
    OP("tg_max", 1, K(F23), c_max), OP("tg_min", 1, K(F23), c_min), OP("tg_sum_all", 1, K(F23), c_sum_all),
    OP("tg_mean_all", 1, K(F23), c_mean_all), OP("tg_argmax", 1, K(F23), c_argmax),
    OP("tg_matmul", 2, K(F23, LINW), NULL), /* patched below: (2,3) @ (3,4) needs LINW transposed */
    OP("tg_reshape", 1, K(F23), c_reshape), OP("tg_permute", 1, K(F23), c_permute),
    OP("tg_transpose", 1, K(F23), c_transpose), OP("tg_slice", 1, K(F23), c_slice),
    OP("tg_concat", 2, K(F23, F23B), c_concat), OP("tg_pad", 1, K(F23), c_pad),
    OP("tg_gather", 2, K(F23, GATHER_I), c_gather), OP("tg_where", 3, K(F23B, F23, F23B), c_where),
    OP("tg_conv2d", 3, K(F4D, CONVW, C2), c_conv2d), OP("tg_conv_transpose2d", 3, K(F4D, CONVW, C2), NULL),
    OP("tg_max_pool2d", 1, K(F4D), c_max_pool), OP("tg_avg_pool2d", 1, K(F4D), c_avg_pool),
    OP("tg_adaptive_avg_pool2d", 1, K(F4D), c_adaptive), OP("tg_upsample_bilinear2d", 1, K(F4D), c_up_bilinear),
    OP("tg_upsample_nearest2d", 1, K(F4D), c_up_nearest), OP("tg_batch_norm", 5, K(F4D, C3, C3, C3, C3), c_bn),
    OP("tg_batch_norm_relu", 5, K(F4D, C3, C3, C3, C3), c_bn_relu), OP("tg_dropout", 1, K(F23), c_dropout),
    OP("tg_flatten", 1, K(F4D), c_flatten), OP("tg_linear", 3, K(F23, LINW, LINB), c_linear),
    OP("tg_cross_entropy", 3, K(F23, I2, C3), c_ce), OP("tg_nll_loss", 3, K(F23, I2, C3), c_nll),
    OP("tg_binary_cross_entropy", 3, K(F23, F23B, F23), c_bce),
    OP("tg_binary_cross_entropy_with_logits", 4, K(F23, F23B, F23, C3), c_bce_logits),
    OP("tg_soft_margin_loss", 2, K(F23, F23B), c_soft_margin),
    OP("tg_multilabel_soft_margin_loss", 3, K(F23, F23B, C3), c_ml_soft_margin),
    OP("tg_sigmoid_focal_loss", 2, K(F23, F23B), c_focal), OP("tg_mse_loss", 2, K(F23, F23B), c_mse),
    OP("tg_l1_loss", 2, K(F23, F23B), c_l1), OP("tg_smooth_l1_loss", 2, K(F23, F23B), c_smooth_l1),
    OP("tg_huber_loss", 2, K(F23, F23B), c_huber), OP("tg_kl_div", 2, K(F23, F23B), c_kl),
    OP("tg_dice_loss", 2, K(F4D, DICE_T), c_dice), OP("tg_multi_margin_loss", 3, K(F23, I2, C3), c_multi_margin),
    OP("tg_multilabel_margin_loss", 2, K(F23, ML_T), c_ml_margin),
    OP("tg_hinge_embedding_loss", 2, K(F23, F23B), c_hinge),
    OP("tg_cosine_embedding_loss", 3, K(F23, F23B, PM1), c_cosine),
    OP("tg_margin_ranking_loss", 3, K(F23, F23B, F23B), c_ranking),
    OP("tg_triplet_margin_loss", 3, K(F23, F23B, F23), c_triplet), OP("tg_poisson_nll_loss", 2, K(F23, F23B), c_poisson),
    OP("tg_gaussian_nll_loss", 3, K(F23, F23B, F23B), c_gaussian),
    OP("tg_ctc_loss", 4, K(CTC_LP, CTC_T, CTC_IL, CTC_TL), c_ctc),
};

static tg_tensor *c_matmul_t(tg_tensor **a) { return tg_matmul(a[0], a[1]); }

Test(stale_tape, every_op_rejects_a_stale_input_in_every_position)
{
    make_live();
    tg_tensor *linw_t = tg_tensor_randn(TG_SHAPE(3, 4), NULL); /* matmul's right operand */
    tg_tensor *convt_w = tg_tensor_randn(TG_SHAPE(3, 2, 3, 3), NULL); /* conv_transpose2d: (Cin, Cout, kh, kw) */
    int checked = 0;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        const op_case *oc = &CASES[c];
        op_call call = oc->call;
        tg_tensor *args[5];
        for (int k = 0; k < oc->n; k++) args[k] = live[oc->kinds[k]];
        if (!strcmp(oc->name, "tg_matmul")) {
            call = c_matmul_t;
            args[1] = linw_t;
        }
        if (!strcmp(oc->name, "tg_conv_transpose2d")) {
            call = c_conv_t;
            args[1] = convt_w;
        }
        /* all live: the op works */
        tg_tape_clear();
        tg_clear_error();
        bn_tracked = 0;
        cr_assert_not_null(call(args), "%s with live inputs: %s", oc->name, tg_last_error());
        for (int k = 0; k < oc->n; k++) {
            tg_tape_clear();
            tg_tensor *saved = args[k];
            args[k] = tape_copy(saved);
            tg_tape_clear();
            tg_tensor *next = tg_mul_scalar(live[F23], 3.0f); /* the next step runs an op */
            cr_assert_not_null(next);
            tg_clear_error();
            tg_tensor *out = call(args);
            cr_expect_null(out, "%s accepted a stale tensor as argument %d", oc->name, k);
            cr_expect_eq(tg_last_status(), TG_ERR_STATE, "%s arg %d: %s", oc->name, k, tg_last_error());
            cr_expect(strstr(tg_last_error(), oc->name) && strstr(tg_last_error(), "tg_tape_clear"),
                      "%s arg %d: message '%s'", oc->name, k, tg_last_error());
            args[k] = saved;
            checked++;
        }
    }
    cr_expect_geq(checked, 120);
    tg_tape_clear();
    tg_tensor_free(linw_t);
    tg_tensor_free(convt_w);
    free_live();
}

Test(stale_tape, poison_fills_cleared_arena_with_nan)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("under AddressSanitizer cleared tensor data is freed (and a read reported) instead");
#endif
    setenv("TG_POISON_ARENA", "1", 1); /* read at the first clear of this process */
    tg_tensor *x = tg_tensor_ones(TG_SHAPE(64));
    tg_tensor *y = tg_mul_scalar(x, 2.0f);
    cr_assert_not_null(y);
    float *data = y->data; /* a pointer into the arena kept past the clear: exactly the misuse to expose */
    tg_tape_clear();
    bool all_nan = true;
    for (int i = 0; i < 64; i++) all_nan &= isnan(data[i]);
    cr_expect(all_nan, "cleared arena memory still holds the old values");
    tg_tensor_free(x);
}
