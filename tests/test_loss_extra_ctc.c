/* ctc_loss: PyTorch golden values and gradients (including the impossible
 * alignment and zero_infinity), a finite-difference gradient check through a
 * log_softmax, and errors. */
#include "loss_extra_cases.h"

#include "core/core_internal.h"

#define FIX "loss_extra_ctc.json"

Test(ctc, golden) { lx_run_golden(FIX, "ctc"); }
Test(ctc, nonfinite) { lx_run_golden("loss_extra_nonfinite.json", "ctc"); } /* NaN, +-Inf: PyTorch's values and gradients */

/* ---- a test-local log_softmax over the last dim (so the check needs no other op) ---- */

static void log_softmax_backward(tg_node *n)
{
    const tg_tensor *y = n->out;
    const int64_t C = n->i[0], R = y->numel / C;
    float *gx = tg_grad(n->in[0]);
    if (!gx) return;
    for (int64_t r = 0; r < R; r++) {
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += y->grad[r * C + c];
        for (int64_t c = 0; c < C; c++) gx[r * C + c] += (float)(y->grad[r * C + c] - exp(y->data[r * C + c]) * s);
    }
}

static const tg_op_def LOG_SOFTMAX_OP = {"test_log_softmax", log_softmax_backward, TG_OP_NONE};

static tg_tensor *log_softmax_last(tg_tensor *x)
{
    tg_tensor *y = tg_output_new(TG_F32, x->ndim, x->shape);
    const int64_t C = x->shape[x->ndim - 1], R = x->numel / C;
    for (int64_t r = 0; r < R; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t c = 0; c < C; c++) m = fmax(m, x->data[r * C + c]);
        for (int64_t c = 0; c < C; c++) s += exp(x->data[r * C + c] - m);
        for (int64_t c = 0; c < C; c++) y->data[r * C + c] = (float)(x->data[r * C + c] - m - log(s));
    }
    tg_node *n = tg_record(&LOG_SOFTMAX_OP, y, 1, &x);
    if (n) n->i[0] = C;
    return y;
}

typedef struct {
    tg_tensor *targets, *il, *tl;
    tg_ctc_opts o;
} ctc_ctx_t;

static tg_tensor *ctc_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    ctc_ctx_t *c = ctx;
    return tgt_weighted_sum(tg_ctc_loss(log_softmax_last(in[0]), c->targets, c->il, c->tl, c->o), 41);
}

Test(ctc, gradcheck_through_log_softmax)
{
    tg_tensor *logits = lx_randn(TG_SHAPE(7, 3, 4), 61, 1.0f, true);
    tg_tensor *targets = tg_tensor_from_i64(TG_SHAPE(3, 3), (int64_t[]){1, 2, 2, 3, 0, 0, 1, 3, 1});
    tg_tensor *il = tg_tensor_from_i64(TG_SHAPE(3), (int64_t[]){7, 5, 6});
    tg_tensor *tl = tg_tensor_from_i64(TG_SHAPE(3), (int64_t[]){3, 1, 3});
    ctc_ctx_t c = {targets, il, tl, {.reduction = TG_REDUCTION_NONE}};
    tgt_expect_gradcheck("ctc none", ctc_fn, &c, &logits, 1, 1e-3, 1e-3, 1e-2);
    c.o = (tg_ctc_opts){.reduction = TG_REDUCTION_MEAN, .blank = 3};
    tl->idata[1] = 0; /* an empty target too */
    targets->idata[6] = 0; /* labels other than blank 3 */
    targets->idata[7] = 2;
    targets->idata[8] = 0;
    tgt_expect_gradcheck("ctc mean blank 3", ctc_fn, &c, &logits, 1, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(logits);
    tg_tensor_free(targets);
    tg_tensor_free(il);
    tg_tensor_free(tl);
}

Test(ctc, gradcheck_unbatched_sum)
{
    tg_tensor *logits = lx_randn(TG_SHAPE(6, 5), 62, 1.0f, true);
    tg_tensor *targets = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){4, 4});
    tg_tensor *il = tg_tensor_from_i64(0, NULL, (int64_t[]){6});
    tg_tensor *tl = tg_tensor_from_i64(0, NULL, (int64_t[]){2});
    ctc_ctx_t c = {targets, il, tl, {.reduction = TG_REDUCTION_SUM}};
    tgt_expect_gradcheck("ctc unbatched sum", ctc_fn, &c, &logits, 1, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(logits);
    tg_tensor_free(targets);
    tg_tensor_free(il);
    tg_tensor_free(tl);
}

/* ---- edge cases ---- */

Test(ctc, impossible_alignment_inf_or_zero_with_zero_grad)
{
    /* target (1, 1) needs 3 frames (a blank between the repeats); T = 2 */
    tg_tensor *lp = tg_tensor_set_requires_grad(tg_tensor_full(TG_SHAPE(2, 1, 3), (float)log(1.0 / 3)), true);
    tg_tensor *tg = tg_tensor_from_i64(TG_SHAPE(1, 2), (int64_t[]){1, 1});
    tg_tensor *il = tg_tensor_from_i64(TG_SHAPE(1), (int64_t[]){2});
    tg_tensor *tl = tg_tensor_from_i64(TG_SHAPE(1), (int64_t[]){2});
    tg_tensor *l = tg_ctc_loss(lp, tg, il, tl, (tg_ctc_opts){.reduction = TG_REDUCTION_SUM});
    cr_assert_not_null(l);
    cr_expect(isinf(l->data[0]) && l->data[0] > 0, "loss %g", l->data[0]);
    tg_tape_clear();
    l = tg_ctc_loss(lp, tg, il, tl, (tg_ctc_opts){.zero_infinity = true});
    cr_assert_not_null(l);
    cr_expect_eq(l->data[0], 0.0f);
    cr_assert_eq(tg_backward(l), TG_OK);
    for (int i = 0; i < 6; i++) cr_expect_eq(lp->grad[i], 0.0f);
    tg_tape_clear();
    tg_tensor *ts[] = {lp, tg, il, tl};
    for (int k = 0; k < 4; k++) tg_tensor_free(ts[k]);
}

Test(ctc, uniform_single_frame_probability)
{
    /* T = 1, target empty: p = p(blank) = 1/4 -> loss ln 4; target (2): p = 1/4 too */
    tg_tensor *lp = tg_tensor_full(TG_SHAPE(1, 2, 4), (float)log(0.25));
    tg_tensor *tg = tg_tensor_from_i64(TG_SHAPE(1), (int64_t[]){2});
    tg_tensor *il = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){1, 1});
    tg_tensor *tl = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){0, 1});
    tg_tensor *l = tg_ctc_loss(lp, tg, il, tl, (tg_ctc_opts){.reduction = TG_REDUCTION_NONE});
    cr_assert_not_null(l, "%s", tg_last_error());
    cr_expect_float_eq(l->data[0], (float)log(4.0), 1e-6);
    cr_expect_float_eq(l->data[1], (float)log(4.0), 1e-6);
    tg_tape_clear();
    tg_tensor *ts[] = {lp, tg, il, tl};
    for (int k = 0; k < 4; k++) tg_tensor_free(ts[k]);
}

Test(ctc, zero_input_length)
{
    /* PyTorch reads out of bounds here; tapegrad defines it: empty target -> 0, else impossible (inf). */
    tg_tensor *lp = tg_tensor_set_requires_grad(tg_tensor_full(TG_SHAPE(3, 2, 4), (float)log(0.25)), true);
    tg_tensor *tg = tg_tensor_from_i64(TG_SHAPE(1), (int64_t[]){2});
    tg_tensor *il = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){0, 0});
    tg_tensor *tl = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){0, 1});
    tg_tensor *l = tg_ctc_loss(lp, tg, il, tl, (tg_ctc_opts){.reduction = TG_REDUCTION_NONE});
    cr_assert_not_null(l, "%s", tg_last_error());
    cr_expect_eq(l->data[0], 0.0f);
    cr_expect(isinf(l->data[1]));
    tg_tape_clear();
    l = tg_ctc_loss(lp, tg, il, tl, (tg_ctc_opts){.zero_infinity = true});
    cr_assert_eq(tg_backward(l), TG_OK);
    for (int i = 0; i < 24; i++) cr_expect_eq(lp->grad[i], 0.0f);
    tg_tape_clear();
    tg_tensor *ts[] = {lp, tg, il, tl};
    for (int k = 0; k < 4; k++) tg_tensor_free(ts[k]);
}

/* Caller-owned log-softmaxed random (T, N, C) values. */
static tg_tensor *random_log_probs(int64_t T, int64_t N, int64_t C, uint64_t seed)
{
    tg_tensor *x = lx_randn(TG_SHAPE(T, N, C), seed, 1.5f, true);
    for (int64_t r = 0; r < T * N; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t c = 0; c < C; c++) m = fmax(m, x->data[r * C + c]);
        for (int64_t c = 0; c < C; c++) s += exp(x->data[r * C + c] - m);
        for (int64_t c = 0; c < C; c++) x->data[r * C + c] = (float)(x->data[r * C + c] - m - log(s));
    }
    return x;
}

Test(ctc, parallel_batch_matches_per_sample)
{
    const int64_t T = 64, N = 8, C = 80, S = 20; /* T*N*C above TG_PARALLEL_MIN: the OpenMP path */
    tg_tensor *lp = random_log_probs(T, N, C, 71);
    tg_tensor *tg = tg_tensor_new(TG_I64, TG_SHAPE(N, S));
    tg_tensor *il = tg_tensor_new(TG_I64, TG_SHAPE(N)), *tl = tg_tensor_new(TG_I64, TG_SHAPE(N));
    tg_rng r;
    tg_rng_seed(&r, 72);
    for (int64_t i = 0; i < N * S; i++) tg->idata[i] = 1 + tg_rng_below(&r, C - 1);
    for (int64_t b = 0; b < N; b++) {
        tl->idata[b] = 5 + tg_rng_below(&r, S - 4);
        il->idata[b] = 44 + tg_rng_below(&r, T - 43);
    }
    tg_tensor *l = tg_ctc_loss(lp, tg, il, tl, (tg_ctc_opts){.reduction = TG_REDUCTION_SUM});
    cr_assert_not_null(l, "%s", tg_last_error());
    cr_assert_eq(tg_backward(l), TG_OK);
    float total = l->data[0];
    tg_tape_clear();
    double sum = 0;
    for (int64_t b = 0; b < N; b++) {
        tg_tensor *one = tg_tensor_set_requires_grad(tg_tensor_zeros(TG_SHAPE(T, C)), true);
        for (int64_t t = 0; t < T; t++)
            for (int64_t c = 0; c < C; c++) one->data[t * C + c] = lp->data[(t * N + b) * C + c];
        tg_tensor *tgb = tg_tensor_from_i64(TG_SHAPE(1, S), tg->idata + b * S);
        tg_tensor *ilb = tg_tensor_from_i64(TG_SHAPE(1), il->idata + b), *tlb = tg_tensor_from_i64(TG_SHAPE(1), tl->idata + b);
        tg_tensor *lb = tg_ctc_loss(one, tgb, ilb, tlb, (tg_ctc_opts){.reduction = TG_REDUCTION_SUM});
        cr_assert_not_null(lb, "%s", tg_last_error());
        cr_assert_eq(tg_backward(lb), TG_OK);
        sum += lb->data[0];
        for (int64_t t = 0; t < T; t++)
            tgt_expect_close("batched vs per-sample grad", lp->grad + (t * N + b) * C, one->grad + t * C, C, 1e-6, 1e-7);
        tg_tape_clear();
        tg_tensor *ts[] = {one, tgb, ilb, tlb};
        for (int k = 0; k < 4; k++) tg_tensor_free(ts[k]);
    }
    cr_expect_float_eq(total, (float)sum, 1e-5 * sum);
    tg_tensor *ts[] = {lp, tg, il, tl};
    for (int k = 0; k < 4; k++) tg_tensor_free(ts[k]);
}

/* ---- errors ---- */

Test(ctc, errors)
{
    tg_tensor *lp = tg_tensor_zeros(TG_SHAPE(5, 2, 4)), *lp1 = tg_tensor_zeros(TG_SHAPE(5));
    tg_tensor *tg = tg_tensor_from_i64(TG_SHAPE(2, 3), (int64_t[]){1, 2, 3, 1, 1, 0});
    tg_tensor *tg_bad = tg_tensor_from_i64(TG_SHAPE(2, 3), (int64_t[]){1, 4, 3, 1, 1, 0});
    tg_tensor *tg_cat = tg_tensor_from_i64(TG_SHAPE(4), (int64_t[]){1, 2, 3, 1});
    tg_tensor *il = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){5, 4});
    tg_tensor *il_long = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){6, 4});
    tg_tensor *il_neg = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){5, -1});
    tg_tensor *il_3 = tg_tensor_from_i64(TG_SHAPE(3), (int64_t[]){5, 4, 4});
    tg_tensor *tl = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){3, 2});
    tg_tensor *tl_long = tg_tensor_from_i64(TG_SHAPE(2), (int64_t[]){4, 2});
    tg_tensor *il_f = tg_tensor_ones(TG_SHAPE(2));
    tg_ctc_opts o = {0};
    LX_EXPECT_ERROR(tg_ctc_loss(lp, tg_bad, il, tl, o), TG_ERR_VALUE, "targets: label 1 of sample 0 is 4");
    LX_EXPECT_ERROR(tg_ctc_loss(lp, tg, il_long, tl, o), TG_ERR_VALUE, "input_lengths[0] = 6 is out of range [0, 5]");
    LX_EXPECT_ERROR(tg_ctc_loss(lp, tg, il_neg, tl, o), TG_ERR_VALUE, "input_lengths[1] = -1");
    LX_EXPECT_ERROR(tg_ctc_loss(lp, tg, il_3, tl, o), TG_ERR_SHAPE, "input_lengths must have shape (2)");
    LX_EXPECT_ERROR(tg_ctc_loss(lp, tg, il, tl_long, o), TG_ERR_SHAPE, "max target length 4");
    LX_EXPECT_ERROR(tg_ctc_loss(lp, tg_cat, il, tl, o), TG_ERR_SHAPE, "sum(target_lengths) = 5");
    LX_EXPECT_ERROR(tg_ctc_loss(lp, tg, il, tl, (tg_ctc_opts){.blank = 4}), TG_ERR_ARG, "blank = 4");
    LX_EXPECT_ERROR(tg_ctc_loss(lp1, tg, il, tl, o), TG_ERR_SHAPE, "log_probs must have 2 to 3 dimensions");
    LX_EXPECT_ERROR(tg_ctc_loss(lp, tg, il_f, tl, o), TG_ERR_ARG, "input_lengths must be an int64");
    tg_tensor *ts[] = {lp, lp1, tg, tg_bad, tg_cat, il, il_long, il_neg, il_3, tl, tl_long, il_f};
    for (int k = 0; k < 12; k++) tg_tensor_free(ts[k]);
}
