/* Shape ops: reshape, permute/transpose, slice, concat, pad, gather, where.
 * PyTorch golden values (forward and gradients), gradient checks, errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "shape_test_util.h"

/* ---- PyTorch fixtures ---- */

Test(shape_fixtures, reshape) { cr_expect_eq(run_fixture_cases("reshape"), 2); }
Test(shape_fixtures, permute) { cr_expect_eq(run_fixture_cases("permute"), 4); }
Test(shape_fixtures, transpose) { cr_expect_eq(run_fixture_cases("transpose"), 1); }
Test(shape_fixtures, slice) { cr_expect_eq(run_fixture_cases("slice"), 5); }
Test(shape_fixtures, concat) { cr_expect_eq(run_fixture_cases("concat"), 3); }
Test(shape_fixtures, pad) { cr_expect_eq(run_fixture_cases("pad"), 4); }
Test(shape_fixtures, gather) { cr_expect_eq(run_fixture_cases("gather"), 4); }
Test(shape_fixtures, where) { cr_expect_eq(run_fixture_cases("where"), 3); }

/* ---- gradient checks ---- */

static void check1(const char *what, const op_spec *s, int ndim, const int64_t *shape)
{
    tg_tensor *a = randn_leaf(ndim, shape, 77);
    spec_gradcheck(what, s, &a, 1);
    tg_tensor_free(a);
}

Test(shape_grad, reshape)
{
    op_spec s = {.op = "reshape", .nshape = 3, .shape = {3, -1, 2}};
    check1("reshape", &s, TG_SHAPE(2, 3, 4));
}

Test(shape_grad, permute_3d_all)
{
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int k = 0; k < 6; k++) {
        op_spec s = {.op = "permute"};
        memcpy(s.perm, perms[k], sizeof perms[k]);
        char what[64];
        snprintf(what, sizeof what, "permute (%d,%d,%d)", perms[k][0], perms[k][1], perms[k][2]);
        check1(what, &s, TG_SHAPE(2, 3, 4));
    }
}

Test(shape_grad, permute_4d)
{
    static const int perms[4][4] = {{0, 2, 3, 1}, {0, 3, 1, 2}, {3, 2, 1, 0}, {1, 0, 3, 2}};
    for (int k = 0; k < 4; k++) {
        op_spec s = {.op = "permute"};
        memcpy(s.perm, perms[k], sizeof perms[k]);
        check1("permute 4d", &s, TG_SHAPE(2, 3, 2, 3));
    }
}

Test(shape_grad, transpose_negative_dims)
{
    op_spec s = {.op = "transpose", .dim0 = -1, .dim1 = -3};
    check1("transpose", &s, TG_SHAPE(2, 3, 4));
}

Test(shape_grad, slice_with_step)
{
    op_spec s = {.op = "slice", .dim = 1, .start = -6, .end = 100, .step = 2};
    check1("slice step 2", &s, TG_SHAPE(2, 7, 3));
    op_spec s2 = {.op = "slice", .dim = -1, .start = 1, .end = -1, .step = 3};
    check1("slice last dim", &s2, TG_SHAPE(3, 8));
}

static void check_concat(int dim, const int64_t *s0, const int64_t *s1, const int64_t *s2, int nd)
{
    tg_tensor *in[3] = {randn_leaf(nd, s0, 1), randn_leaf(nd, s1, 2), randn_leaf(nd, s2, 3)};
    op_spec s = {.op = "concat", .dim = dim};
    spec_gradcheck("concat", &s, in, 3);
    for (int k = 0; k < 3; k++) tg_tensor_free(in[k]);
}

Test(shape_grad, concat_dim0) { check_concat(0, (int64_t[]){2, 3}, (int64_t[]){1, 3}, (int64_t[]){3, 3}, 2); }
Test(shape_grad, concat_dim1)
{
    check_concat(1, (int64_t[]){2, 2, 3}, (int64_t[]){2, 1, 3}, (int64_t[]){2, 3, 3}, 3);
}

Test(shape_grad, pad_with_negative_values)
{
    op_spec s = {.op = "pad", .npads = 4, .pads = {2, -1, -1, 1}, .value = 0.25f};
    check1("pad crop+pad", &s, TG_SHAPE(2, 3, 4));
    op_spec s2 = {.op = "pad", .npads = 6, .pads = {1, 1, 0, 0, -1, 2}, .value = 0};
    check1("pad 3 dims", &s2, TG_SHAPE(3, 2, 2));
}

Test(shape_grad, gather_nc_dim1)
{
    tg_tensor *a = randn_leaf(TG_SHAPE(4, 5), 9);
    /* repeated indices: their gradients must add up */
    tg_tensor *idx = tg_tensor_from_i64(TG_SHAPE(4, 3), (const int64_t[]){0, 4, 4, 1, 1, 1, 2, 3, 0, 4, 3, 2});
    tg_tensor *in[2] = {a, idx};
    op_spec s = {.op = "gather", .dim = 1};
    spec_gradcheck("gather (N,C) dim 1", &s, in, 2);
    tg_tensor_free(a);
    tg_tensor_free(idx);
}

Test(shape_grad, gather_nchw_dim1)
{
    tg_tensor *a = randn_leaf(TG_SHAPE(2, 3, 2, 3), 10);
    tg_rng r;
    tg_rng_seed(&r, 3);
    int64_t iv[2 * 4 * 2 * 2];
    for (int i = 0; i < 32; i++) iv[i] = tg_rng_below(&r, 3);
    tg_tensor *idx = tg_tensor_from_i64(TG_SHAPE(2, 4, 2, 2), iv); /* larger on dim, smaller on dim 3 */
    tg_tensor *in[2] = {a, idx};
    op_spec s = {.op = "gather", .dim = 1};
    spec_gradcheck("gather (N,C,H,W) dim 1", &s, in, 2);
    tg_tensor_free(a);
    tg_tensor_free(idx);
}

Test(shape_grad, where_with_broadcasting)
{
    tg_tensor *cond = tg_tensor_from_data(TG_SHAPE(3, 1), (const float[]){1, 0, -2});
    tg_tensor_set_requires_grad(cond, true); /* must still get no gradient */
    tg_tensor *a = randn_leaf(TG_SHAPE(1, 4), 4);
    tg_tensor *b = randn_leaf(TG_SHAPE(2, 3, 4), 5);
    tg_tensor *in[3] = {cond, a, b};
    op_spec s = {.op = "where"};
    tg_tensor_set_requires_grad(cond, false);
    spec_gradcheck("where broadcast", &s, in, 3);
    /* now with cond requiring grad: backward leaves it alone */
    tg_tensor_set_requires_grad(cond, true);
    tg_tape_clear();
    cr_assert_eq(tg_backward(spec_probe(in, 3, &s)), TG_OK, "%s", tg_last_error());
    cr_expect_null(cond->grad);
    tg_tape_clear();
    tg_tensor *ci = tg_tensor_from_i64(TG_SHAPE(4), (const int64_t[]){0, 5, 0, -1});
    in[0] = ci;
    spec_gradcheck("where int64 cond", &s, in, 3);
    for (int k = 0; k < 3; k++) tg_tensor_free(in[k]);
    tg_tensor_free(cond);
}

/* ---- behaviour details ---- */

Test(shape, permute_large_transpose_is_exact)
{
    /* big enough for the tiled path with partial tiles and OpenMP */
    const int64_t R = 333, C = 517;
    tg_tensor *a = tg_tensor_arange(0, (float)(R * C), 1);
    tg_tensor *a2 = tg_reshape(a, TG_SHAPE(R, C));
    tg_tensor *t = tg_transpose(a2, 0, 1);
    cr_assert_not_null(t);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < R; j++) cr_assert_eq(t->data[i * R + j], (float)(j * C + i));
    tg_tape_clear();
    tg_tensor_free(a);
}

Test(shape, slice_python_semantics)
{
    tg_tensor *a = tg_tensor_arange(0, 10, 1);
    struct { int64_t start, end, step, len, first; } c[] = {
        {-3, INT64_MAX, 1, 3, 7}, {INT64_MIN, 3, 1, 3, 0}, {2, INT64_MAX, INT64_MAX, 1, 2}, {-100, 3, 1, 3, 0}, {8, 2, 1, 0, 0}, {1, 10, 4, 3, 1}, {0, -1, 3, 3, 0}, {10, 20, 1, 0, 0},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        tg_tensor *s = tg_slice(a, 0, c[k].start, c[k].end, c[k].step);
        cr_assert_not_null(s, "%s", tg_last_error());
        cr_expect_eq(s->shape[0], c[k].len, "case %zu: len %lld", k, (long long)s->shape[0]);
        if (c[k].len) cr_expect_eq(s->data[0], (float)c[k].first, "case %zu", k);
    }
    tg_tape_clear();
    tg_tensor_free(a);
}

Test(shape, reshape_to_scalar_and_back)
{
    tg_tensor *a = tg_tensor_full(TG_SHAPE(1, 1), 3.5f);
    tg_tensor *s = tg_reshape(a, 0, NULL);
    cr_assert_not_null(s, "%s", tg_last_error());
    cr_expect_eq(s->ndim, 0);
    cr_expect_eq(tg_item(s), 3.5f);
    tg_tape_clear();
    tg_tensor_free(a);
}

/* ---- errors ---- */

Test(shape_errors, reshape)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 3));
    EXPECT_ERROR(tg_reshape(a, TG_SHAPE(4, 2)), "tg_reshape", "(4, 2)", "(2, 3)");
    EXPECT_ERROR(tg_reshape(a, TG_SHAPE(-1, 4)), "tg_reshape", "(-1, 4)", "(2, 3)");
    EXPECT_ERROR(tg_reshape(a, TG_SHAPE(-1, -1)), "tg_reshape", "only one");
    EXPECT_ERROR(tg_reshape(a, TG_SHAPE(-2, 3)), "tg_reshape", "-2");
    tg_tensor_free(a);
}

Test(shape_errors, permute_and_transpose)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 3, 4));
    EXPECT_ERROR(tg_permute(a, (const int[]){0, 0, 1}), "tg_permute", "twice");
    EXPECT_ERROR(tg_permute(a, (const int[]){0, 3, 1}), "tg_permute", "dim 3", "out of range");
    EXPECT_ERROR(tg_transpose(a, 0, 5), "tg_transpose", "dim 5");
    tg_tensor_free(a);
}

Test(shape_errors, slice)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 3));
    EXPECT_ERROR(tg_slice(a, 0, 0, 2, 0), "tg_slice", "step", "0");
    EXPECT_ERROR(tg_slice(a, 0, 0, 2, -1), "tg_slice", "step", "-1");
    EXPECT_ERROR(tg_slice(a, 2, 0, 2, 1), "tg_slice", "dim 2");
    tg_tensor_free(a);
}

Test(shape_errors, concat)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 3));
    tg_tensor *b = tg_tensor_zeros(TG_SHAPE(2, 4));
    tg_tensor *c = tg_tensor_zeros(TG_SHAPE(2, 3, 1));
    EXPECT_ERROR(tg_concat((tg_tensor *[]){a, b}, 2, 0), "tg_concat", "ts[1]", "(2, 4)", "(2, 3)", "dim 0");
    EXPECT_ERROR(tg_concat((tg_tensor *[]){a, c}, 2, 1), "tg_concat", "(2, 3, 1)");
    EXPECT_ERROR(tg_concat((tg_tensor *[]){a, b}, 0, 1), "tg_concat", "n = 0");
    EXPECT_ERROR(tg_concat((tg_tensor *[]){a, b}, 2, 2), "tg_concat", "dim 2");
    tg_tensor *ok = tg_concat((tg_tensor *[]){a, b}, 2, 1);
    cr_expect_not_null(ok);
    cr_expect_eq(ok->shape[1], 7);
    tg_tape_clear();
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(c);
}

Test(shape_errors, pad)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 3));
    EXPECT_ERROR(tg_pad(a, (const int64_t[]){1}, 1, 0), "tg_pad", "even");
    EXPECT_ERROR(tg_pad(a, (const int64_t[]){1, 1, 1, 1, 1, 1}, 6, 0), "tg_pad", "2*ndim = 4");
    EXPECT_ERROR(tg_pad(a, (const int64_t[]){-2, -2}, 2, 0), "tg_pad", "negative size -1", "dim 1");
    EXPECT_ERROR(tg_pad(a, (const int64_t[]){INT64_MAX, 1}, 2, 0), "tg_pad", "out of range");
    tg_tensor *z = tg_pad(a, (const int64_t[]){-2, -1}, 2, 0); /* size 0 is allowed */
    cr_expect_not_null(z, "%s", tg_last_error());
    if (z) cr_expect_eq(z->shape[1], 0);
    tg_tape_clear();
    tg_tensor_free(a);
}

Test(shape_errors, gather)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 3));
    tg_tensor *bad = tg_tensor_from_i64(TG_SHAPE(2, 1), (const int64_t[]){1, 3});
    tg_tensor *neg = tg_tensor_from_i64(TG_SHAPE(2, 1), (const int64_t[]){-1, 0});
    tg_tensor *nd1 = tg_tensor_from_i64(TG_SHAPE(2), (const int64_t[]){0, 1});
    tg_tensor *big = tg_tensor_from_i64(TG_SHAPE(3, 1), (const int64_t[]){0, 1, 2});
    tg_tensor *f = tg_tensor_zeros(TG_SHAPE(2, 1));
    EXPECT_ERROR(tg_gather(a, 1, bad), "tg_gather", "index 3", "size 3", "(1, 0)");
    EXPECT_ERROR(tg_gather(a, 1, neg), "tg_gather", "index -1", "size 3");
    EXPECT_ERROR(tg_gather(a, 1, nd1), "tg_gather", "dimensions");
    EXPECT_ERROR(tg_gather(a, 1, big), "tg_gather", "(3, 1)", "dim 0");
    EXPECT_ERROR(tg_gather(a, 1, f), "tg_gather", "index", "int64");
    EXPECT_ERROR(tg_gather(a, 2, nd1), "tg_gather");
    tg_tape_clear();
    tg_tensor_free(a);
    tg_tensor_free(bad);
    tg_tensor_free(neg);
    tg_tensor_free(nd1);
    tg_tensor_free(big);
    tg_tensor_free(f);
}

Test(shape_errors, where)
{
    tg_tensor *c = tg_tensor_zeros(TG_SHAPE(3));
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 4));
    tg_tensor *b = tg_tensor_zeros(TG_SHAPE(2, 3));
    EXPECT_ERROR(tg_where(c, a, b), "tg_where", "cannot be broadcast");
    EXPECT_ERROR(tg_where(NULL, a, b), "tg_where", "cond is NULL");
    tg_tensor *i = tg_tensor_from_i64(TG_SHAPE(3), (const int64_t[]){1, 2, 3});
    EXPECT_ERROR(tg_where(c, i, b), "tg_where", "a", "float32");
    tg_tape_clear();
    tg_tensor_free(c);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(i);
}
