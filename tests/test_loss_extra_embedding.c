/* cosine_embedding and triplet_margin: PyTorch golden values and gradients,
 * finite-difference gradient checks, documented edge cases, errors. */
#include "loss_extra_cases.h"

#define FIX "loss_extra_embedding.json"

Test(cosine_embedding, golden) { lx_run_golden(FIX, "cosine_embedding"); }
Test(cosine_embedding, nonfinite) { lx_run_golden("loss_extra_nonfinite.json", "cosine_embedding"); } /* NaN, +-Inf: PyTorch's values and gradients */
Test(triplet_margin, golden) { lx_run_golden(FIX, "triplet_margin"); }
Test(triplet_margin, nonfinite) { lx_run_golden("loss_extra_nonfinite.json", "triplet_margin"); } /* NaN, +-Inf: PyTorch's values and gradients */

typedef struct {
    tg_tensor *target;
    tg_cosine_embedding_opts co;
    tg_triplet_margin_opts to;
} emb_ctx;

static tg_tensor *cosine_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    emb_ctx *c = ctx;
    return tgt_weighted_sum(tg_cosine_embedding_loss(in[0], in[1], c->target, c->co), 21);
}

Test(cosine_embedding, gradcheck)
{
    tg_tensor *in[2] = {lx_randn(TG_SHAPE(4, 6), 31, 1.0f, true), lx_randn(TG_SHAPE(4, 6), 32, 1.0f, true)};
    tg_tensor *t = tg_tensor_from_data(TG_SHAPE(4), (float[]){1, -1, -1, 1});
    /* the y = -1 rows need cos above the margin (active hinge): pull input2 toward input1 there */
    for (int d = 0; d < 6; d++) {
        in[1]->data[6 + d] = in[0]->data[6 + d] + 0.5f * in[1]->data[6 + d];
        in[1]->data[12 + d] = in[0]->data[12 + d] + 0.7f * in[1]->data[12 + d];
    }
    emb_ctx c = {.target = t, .co = {.reduction = TG_REDUCTION_NONE, .margin = 0.1f}};
    tgt_expect_gradcheck("cosine none", cosine_fn, &c, in, 2, 1e-3, 1e-3, 1e-2);
    c.co = (tg_cosine_embedding_opts){.reduction = TG_REDUCTION_MEAN, .margin = -0.2f};
    tgt_expect_gradcheck("cosine mean", cosine_fn, &c, in, 2, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(in[0]);
    tg_tensor_free(in[1]);
    tg_tensor_free(t);
}

static tg_tensor *triplet_fn(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    emb_ctx *c = ctx;
    return tgt_weighted_sum(tg_triplet_margin_loss(in[0], in[1], in[2], c->to), 22);
}

Test(triplet_margin, gradcheck)
{
    tg_tensor *in[3] = {lx_randn(TG_SHAPE(5, 4), 41, 1.0f, true), lx_randn(TG_SHAPE(5, 4), 42, 1.0f, true),
                        lx_randn(TG_SHAPE(5, 4), 43, 1.0f, true)};
    const char *names[] = {"p2 none", "p1 swap sum", "p3 mean margin 2", "p2 swap eps 0.1 none"};
    tg_triplet_margin_opts opts[] = {
        {.reduction = TG_REDUCTION_NONE, .margin = 2.0f},
        {.reduction = TG_REDUCTION_SUM, .p = 1, .swap = true, .margin = 3.0f},
        {.reduction = TG_REDUCTION_MEAN, .p = 3, .margin = 2.0f},
        {.reduction = TG_REDUCTION_NONE, .swap = true, .eps = 0.1f, .margin = 2.5f},
    };
    for (int k = 0; k < 4; k++) {
        /* every row active and away from the clamp's kink */
        tg_tensor *l = tg_triplet_margin_loss(in[0], in[1], in[2],
                                              (tg_triplet_margin_opts){.reduction = TG_REDUCTION_NONE,
                                                                       .margin = opts[k].margin, .p = opts[k].p,
                                                                       .swap = opts[k].swap, .eps = opts[k].eps});
        cr_assert_not_null(l);
        for (int64_t s = 0; s < l->numel; s++) cr_assert_gt(l->data[s], 0.05, "%s row %lld", names[k], (long long)s);
        tg_tape_clear();
        emb_ctx c = {.to = opts[k]};
        tgt_expect_gradcheck(names[k], triplet_fn, &c, in, 3, 1e-3, 1e-3, 1e-2);
    }
    for (int k = 0; k < 3; k++) tg_tensor_free(in[k]);
}

/* ---- documented edge cases ---- */

Test(cosine_embedding, zero_vector_gives_loss_one)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(3));
    tg_tensor *b = tg_tensor_from_data(TG_SHAPE(3), (float[]){1, 2, 3});
    tg_tensor *y = tg_tensor_full(0, NULL, 1.0f);
    tg_tensor *l = tg_cosine_embedding_loss(a, b, y, (tg_cosine_embedding_opts){0});
    cr_assert_not_null(l, "%s", tg_last_error());
    cr_expect_eq(l->ndim, 0);
    cr_expect_float_eq(l->data[0], 1.0f, 1e-7);
    tg_tape_clear();
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(y);
}

Test(triplet_margin, defaults_are_margin1_p2_eps1e6)
{
    /* a = 0, p = (3,4) - eps..., n = 0: d(a,p) = ||(-3+eps, -4+eps)||, d(a,n) = ||(eps, eps)|| */
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2));
    tg_tensor *p = tg_tensor_from_data(TG_SHAPE(2), (float[]){3, 4});
    tg_tensor *n = tg_tensor_zeros(TG_SHAPE(2));
    tg_tensor *l = tg_triplet_margin_loss(a, p, n, (tg_triplet_margin_opts){0});
    cr_assert_not_null(l);
    double e = 1e-6, want = 1.0 + sqrt((3 - e) * (3 - e) + (4 - e) * (4 - e)) - sqrt(2 * e * e);
    cr_expect_float_eq(l->data[0], (float)want, 1e-5);
    tg_tape_clear();
    tg_tensor_free(a);
    tg_tensor_free(p);
    tg_tensor_free(n);
}

Test(triplet_margin, parallel_rows_match_single_rows)
{
    const int64_t R = 300, D = 128; /* R*D above TG_PARALLEL_MIN: the OpenMP path */
    tg_tensor *a = lx_randn(TG_SHAPE(R, D), 91, 1.0f, false), *p = lx_randn(TG_SHAPE(R, D), 92, 1.0f, false),
              *n = lx_randn(TG_SHAPE(R, D), 93, 1.0f, false);
    tg_triplet_margin_opts o = {.reduction = TG_REDUCTION_NONE, .swap = true, .p = 1.5f};
    tg_tensor *l = tg_triplet_margin_loss(a, p, n, o);
    cr_assert_not_null(l, "%s", tg_last_error());
    tg_tensor *all = tg_tensor_clone(l);
    tg_tape_clear();
    for (int64_t r = 0; r < R; r += 37) {
        tg_tensor *ar = tg_tensor_from_data(TG_SHAPE(D), a->data + r * D), *pr = tg_tensor_from_data(TG_SHAPE(D), p->data + r * D),
                  *nr = tg_tensor_from_data(TG_SHAPE(D), n->data + r * D);
        tg_tensor *lr = tg_triplet_margin_loss(ar, pr, nr, o);
        cr_assert_not_null(lr);
        cr_expect_float_eq(all->data[r], lr->data[0], 1e-6, "row %lld", (long long)r);
        tg_tape_clear();
        tg_tensor_free(ar);
        tg_tensor_free(pr);
        tg_tensor_free(nr);
    }
    tg_tensor_free(all);
    tg_tensor_free(a);
    tg_tensor_free(p);
    tg_tensor_free(n);
}

/* ---- errors ---- */

Test(cosine_embedding, errors)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(3, 4)), *x2 = tg_tensor_zeros(TG_SHAPE(3, 5));
    tg_tensor *v = tg_tensor_zeros(TG_SHAPE(4));
    tg_tensor *t = tg_tensor_ones(TG_SHAPE(3)), *t2 = tg_tensor_ones(TG_SHAPE(2)), *tm = tg_tensor_ones(TG_SHAPE(3, 1));
    tg_cosine_embedding_opts o = {0};
    LX_EXPECT_ERROR(tg_cosine_embedding_loss(x, x2, t, o), TG_ERR_SHAPE, "input2 has shape (3, 5)");
    LX_EXPECT_ERROR(tg_cosine_embedding_loss(x, x, t2, o), TG_ERR_SHAPE, "target must have shape (3)");
    LX_EXPECT_ERROR(tg_cosine_embedding_loss(v, v, t, o), TG_ERR_SHAPE, "1-D target expects 2-D input1");
    LX_EXPECT_ERROR(tg_cosine_embedding_loss(x, x, tm, o), TG_ERR_SHAPE, "multi-target");
    tg_tensor *ts[] = {x, x2, v, t, t2, tm};
    for (int k = 0; k < 6; k++) tg_tensor_free(ts[k]);
}

Test(triplet_margin, errors)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(3, 4)), *b = tg_tensor_zeros(TG_SHAPE(3, 5)), *s = tg_tensor_scalar(1);
    LX_EXPECT_ERROR(tg_triplet_margin_loss(a, b, a, (tg_triplet_margin_opts){0}), TG_ERR_SHAPE, "positive has shape");
    LX_EXPECT_ERROR(tg_triplet_margin_loss(a, a, b, (tg_triplet_margin_opts){0}), TG_ERR_SHAPE, "negative has shape");
    LX_EXPECT_ERROR(tg_triplet_margin_loss(a, a, a, (tg_triplet_margin_opts){.p = -1}), TG_ERR_ARG, "p must be");
    LX_EXPECT_ERROR(tg_triplet_margin_loss(a, a, a, (tg_triplet_margin_opts){.p = INFINITY}), TG_ERR_ARG, "p must be");
    LX_EXPECT_ERROR(tg_triplet_margin_loss(s, s, s, (tg_triplet_margin_opts){0}), TG_ERR_SHAPE, "anchor must have");
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(s);
}
