/* Reductions: PyTorch golden values and gradients (ties: first element),
 * gradient checks over non-last, several and all dims with keepdim both ways,
 * accuracy and thread-count independence of large sums, and bad dims. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "math_fixtures.h"
#include "tapegrad.h"

static tg_tensor *apply(const char *op, const cJSON *args, tg_tensor *const *in, double *atol)
{
    int dims[TG_MAX_DIMS];
    int nd = cJSON_GetObjectItemCaseSensitive(args, "dims") ? mf_dims(args, dims) : 0;
    bool keep = mf_bool(args, "keepdim");
    *atol = 1e-6; /* float vs double accumulation */
    if (!strcmp(op, "sum")) return tg_sum(in[0], dims, nd, keep);
    if (!strcmp(op, "mean")) return tg_mean(in[0], dims, nd, keep);
    if (!strcmp(op, "max")) return tg_max(in[0], dims, nd, keep);
    if (!strcmp(op, "min")) return tg_min(in[0], dims, nd, keep);
    if (!strcmp(op, "sum_all")) return tg_sum_all(in[0]);
    if (!strcmp(op, "mean_all")) return tg_mean_all(in[0]);
    if (!strcmp(op, "argmax")) return tg_argmax(in[0], (int)mf_num(args, "dim"), keep);
    cr_assert_fail("unknown op %s", op);
    return NULL;
}

Test(reduce, matches_pytorch)
{
    static const char *const ops[] = {"sum", "mean", "max", "min", "sum_all", "mean_all", "argmax"};
    mf_run(ops, (int)(sizeof ops / sizeof *ops), apply, 1e-6, 1e-6);
}

/* ---- gradient checks ---- */

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_SUM_ALL, R_MEAN_ALL };
typedef struct {
    int op, nd;
    int dims[TG_MAX_DIMS];
    bool keep;
} gc_ctx;

static tg_tensor *gc_fn(tg_tensor *const *in, int n, void *vctx)
{
    (void)n;
    const gc_ctx *c = vctx;
    tg_tensor *y = NULL;
    switch (c->op) {
    case R_SUM: y = tg_sum(in[0], c->dims, c->nd, c->keep); break;
    case R_MEAN: y = tg_mean(in[0], c->dims, c->nd, c->keep); break;
    case R_MAX: y = tg_max(in[0], c->dims, c->nd, c->keep); break;
    case R_MIN: y = tg_min(in[0], c->dims, c->nd, c->keep); break;
    case R_SUM_ALL: y = tg_sum_all(in[0]); break;
    case R_MEAN_ALL: y = tg_mean_all(in[0]); break;
    }
    return tgt_weighted_sum(y, 5);
}

/* Distinct values in [-1, 1) spaced 2/numel apart (more than the probe step) in shuffled order,
 * so max/min do not move under the probe. */
static tg_tensor *spaced_tensor(int nd, const int64_t *shape, uint64_t seed)
{
    tg_tensor *t = tg_tensor_zeros(nd, shape);
    int64_t *perm = malloc((size_t)t->numel * sizeof(int64_t));
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_rng_permutation(&r, perm, t->numel);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = 2.0f * (float)perm[i] / (float)t->numel - 1.0f;
    free(perm);
    return tg_tensor_set_requires_grad(t, true);
}

Test(reduce, gradcheck_dims_and_keepdim)
{
    struct {
        int nd;
        int dims[3];
    } sets[] = {{1, {0}}, {1, {1}}, {1, {-1}}, {2, {0, 2}}, {2, {2, 1}}, {3, {0, 1, 2}}, {0, {0}}};
    const char *names[] = {"sum", "mean", "max", "min"};
    tg_tensor *x = spaced_tensor(TG_SHAPE(2, 3, 4), 3);
    for (int op = R_SUM; op <= R_MIN; op++)
        for (size_t k = 0; k < sizeof sets / sizeof *sets; k++)
            for (int keep = 0; keep < 2; keep++) {
                gc_ctx c = {op, sets[k].nd, {sets[k].dims[0], sets[k].dims[1], sets[k].dims[2]}, keep};
                char what[96];
                snprintf(what, sizeof what, "%s over %d dims (first %d) keepdim=%d", names[op], sets[k].nd,
                         sets[k].dims[0], keep);
                tgt_expect_gradcheck(what, gc_fn, &c, &x, 1, 1e-3, 1e-3, 1e-2);
            }
    gc_ctx all = {R_SUM_ALL, 0, {0}, false}, mall = {R_MEAN_ALL, 0, {0}, false};
    tgt_expect_gradcheck("sum_all", gc_fn, &all, &x, 1, 1e-3, 1e-3, 1e-2);
    tgt_expect_gradcheck("mean_all", gc_fn, &mall, &x, 1, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(x);
    /* 4-D: the per-channel pattern (0, 2, 3) and a column reduction wider than one tile */
    tg_tensor *y = spaced_tensor(TG_SHAPE(2, 3, 2, 5), 4), *z = spaced_tensor(TG_SHAPE(3, 300), 6);
    gc_ctx bias = {R_SUM, 3, {0, 2, 3}, true}, bmax = {R_MAX, 3, {0, 2, 3}, false};
    gc_ctx cols = {R_MEAN, 1, {0}, false}, cmin = {R_MIN, 1, {0}, true};
    tgt_expect_gradcheck("sum (0,2,3)", gc_fn, &bias, &y, 1, 1e-3, 1e-3, 1e-2);
    tgt_expect_gradcheck("max (0,2,3)", gc_fn, &bmax, &y, 1, 1e-3, 1e-3, 1e-2);
    tgt_expect_gradcheck("mean cols", gc_fn, &cols, &z, 1, 1e-3, 1e-3, 1e-2);
    tgt_expect_gradcheck("min cols", gc_fn, &cmin, &z, 1, 1e-3, 1e-3, 1e-2);
    tg_tensor_free(y);
    tg_tensor_free(z);
}

Test(reduce, output_shapes)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 3, 4));
    tg_tensor *a = tg_sum(x, (int[]){0, 2}, 2, true), *b = tg_sum(x, (int[]){0, 2}, 2, false);
    tg_tensor *c = tg_mean_all(x), *d = tg_argmax(x, 1, true);
    char s[64];
    cr_expect_str_eq(tg_shape_str(a, s, sizeof s), "(1, 3, 1)");
    cr_expect_str_eq(tg_shape_str(b, s, sizeof s), "(3,)");
    cr_expect_eq(c->ndim, 0);
    cr_expect_str_eq(tg_shape_str(d, s, sizeof s), "(2, 1, 4)");
    cr_expect_eq(d->dtype, TG_I64);
    tg_tape_clear();
    tg_tensor_free(x);
}

Test(reduce, empty_inputs)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(0, 3));
    tg_tensor *s = tg_sum(x, (int[]){0}, 1, false), *m = tg_mean(x, (int[]){0}, 1, false);
    cr_assert_not_null(s);
    cr_assert_not_null(m);
    cr_expect_eq(s->numel, 3);
    cr_expect_eq(s->data[0], 0.0f);
    cr_expect(isnan(m->data[2]));
    cr_expect_null(tg_max(x, (int[]){0}, 1, false));
    cr_expect(strstr(tg_last_error(), "size 0") != NULL, "%s", tg_last_error());
    tg_tape_clear();
    tg_tensor_free(x);
}

/* ---- large reductions: accuracy and the same bits for any thread count ---- */

Test(reduce, large_sums_accurate_and_thread_count_independent)
{
    const int64_t n = 1 << 22;
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(n));
    tg_rng r;
    tg_rng_seed(&r, 1);
    double ref = 0;
    for (int64_t i = 0; i < n; i++) {
        x->data[i] = 1.0f + tg_rng_uniform(&r); /* float32 naive summation drifts by ~1e-3 here */
        ref += x->data[i];
    }
    int saved = tg_get_num_threads();
    float got[2], cols[2][3], bias[2][4];
    tg_tensor *x2 = tg_tensor_from_data(TG_SHAPE(n / 3, 3), x->data);
    tg_tensor *x4 = tg_tensor_from_data(TG_SHAPE(16, 4, 256, 256), x->data);
    for (int t = 0; t < 2; t++) {
        tg_set_num_threads(t + 1);
        got[t] = tg_sum_all(x)->data[0];
        tg_tensor *c = tg_sum(x2, (int[]){0}, 1, false);
        tg_tensor *b = tg_mean(x4, (int[]){0, 2, 3}, 3, false);
        memcpy(cols[t], c->data, sizeof cols[t]);
        memcpy(bias[t], b->data, sizeof bias[t]);
        tg_tape_clear();
    }
    tg_set_num_threads(saved);
    cr_expect(fabs(got[0] - ref) <= 1e-7 * ref, "sum %.9g, double reference %.9g", got[0], ref);
    cr_expect_eq(got[0], got[1], "1 thread %.9g, 2 threads %.9g", got[0], got[1]);
    cr_expect_arr_eq(cols[0], cols[1], sizeof cols[0]);
    cr_expect_arr_eq(bias[0], bias[1], sizeof bias[0]);
    double c0 = 0, b1 = 0;
    for (int64_t i = 0; i < n / 3; i++) c0 += x->data[3 * i];
    for (int64_t k = 0; k < 16; k++)
        for (int64_t j = 0; j < 65536; j++) b1 += x->data[(k * 4 + 1) * 65536 + j];
    b1 /= 16.0 * 65536.0;
    cr_expect(fabs(cols[0][0] - c0) <= 1e-7 * c0, "column sum %.9g vs %.9g", cols[0][0], c0);
    cr_expect(fabs(bias[0][1] - b1) <= 1e-7 * b1, "channel mean %.9g vs %.9g", bias[0][1], b1);
    tg_tensor_free(x);
    tg_tensor_free(x2);
    tg_tensor_free(x4);
}

Test(reduce, large_max_picks_first_of_ties_across_chunks)
{
    const int64_t n = 100000; /* several fixed chunks */
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, n));
    x->data[70000] = 5.0f;
    x->data[90000] = 5.0f;
    x->data[n + 40000] = -3.0f;
    x->data[n + 99999] = -3.0f;
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *m = tg_max(x, (int[]){1}, 1, false), *mn = tg_min(x, (int[]){-1}, 1, true);
    tg_tensor *am = tg_argmax(x, 1, false);
    cr_assert_not_null(m);
    cr_assert_not_null(am);
    cr_expect_eq(m->data[0], 5.0f);
    cr_expect_eq(m->data[1], 0.0f);
    cr_expect_eq(am->idata[0], 70000);
    cr_expect_eq(am->idata[1], 0);
    cr_expect_eq(mn->data[1], -3.0f);
    cr_assert_eq(tg_backward(tg_add(tg_sum_all(m), tg_sum_all(mn))), TG_OK, "%s", tg_last_error());
    cr_expect_eq(x->grad[70000], 1.0f);
    cr_expect_eq(x->grad[90000], 0.0f);
    cr_expect_eq(x->grad[n], 1.0f);  /* row 1 max: first zero */
    cr_expect_eq(x->grad[0], 1.0f);  /* row 0 min: first zero */
    cr_expect_eq(x->grad[n + 40000], 1.0f);
    cr_expect_eq(x->grad[n + 99999], 0.0f);
    tg_tape_clear();
    tg_tensor_free(x);
}

/* ---- errors ---- */

Test(reduce, bad_dims)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 3, 4));
    cr_expect_null(tg_sum(x, (int[]){3}, 1, false));
    cr_expect(strstr(tg_last_error(), "tg_sum") && strstr(tg_last_error(), "dim 3"), "%s", tg_last_error());
    cr_expect_null(tg_mean(x, (int[]){1, -2}, 2, false));
    cr_expect(strstr(tg_last_error(), "tg_mean") && strstr(tg_last_error(), "more than once"), "%s",
              tg_last_error());
    cr_expect_null(tg_max(x, (int[]){-4}, 1, true));
    cr_expect(strstr(tg_last_error(), "tg_max") && strstr(tg_last_error(), "dim -4"), "%s", tg_last_error());
    cr_expect_null(tg_min(x, NULL, 2, true));
    cr_expect(strstr(tg_last_error(), "dims is NULL") != NULL, "%s", tg_last_error());
    cr_expect_null(tg_sum(x, (int[]){0}, -1, true));
    cr_expect(strstr(tg_last_error(), "n_dims") != NULL, "%s", tg_last_error());
    cr_expect_null(tg_argmax(x, 5, false));
    cr_expect(strstr(tg_last_error(), "tg_argmax") && strstr(tg_last_error(), "dim 5"), "%s", tg_last_error());
    tg_clear_error();
    cr_expect_null(tg_sum_all(NULL));
    cr_expect(strstr(tg_last_error(), "tg_sum_all: a is NULL") != NULL, "%s", tg_last_error());
    tg_tensor_free(x);
}
