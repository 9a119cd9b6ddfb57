/* tg_matmul: PyTorch golden values (forward and gradients), gradient checks of
 * every layout (2-D, batched, broadcast batch, 1-D operands), errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "shape_test_util.h"

Test(matmul, pytorch_fixtures)
{
    cr_expect_eq(run_fixture_cases("matmul"), 10);
}

/* A small exact case computed by hand: [[1,2],[3,4]] x [[5,6],[7,8]] = [[19,22],[43,50]]. */
Test(matmul, hand_computed_2x2)
{
    tg_tensor *a = tg_tensor_from_data(TG_SHAPE(2, 2), (const float[]){1, 2, 3, 4});
    tg_tensor *b = tg_tensor_from_data(TG_SHAPE(2, 2), (const float[]){5, 6, 7, 8});
    tg_tensor *c = tg_matmul(a, b);
    cr_assert_not_null(c, "%s", tg_last_error());
    const float want[] = {19, 22, 43, 50};
    for (int i = 0; i < 4; i++) cr_expect_eq(c->data[i], want[i]);
    tg_tape_clear();
    tg_tensor_free(a);
    tg_tensor_free(b);
}

static void check_pair(const char *what, const int64_t *sa, int na, const int64_t *sb, int nb)
{
    op_spec s = {.op = "matmul"};
    tg_tensor *in[2] = {randn_leaf(na, sa, 11), randn_leaf(nb, sb, 22)};
    spec_gradcheck(what, &s, in, 2);
    tg_tensor_free(in[0]);
    tg_tensor_free(in[1]);
}

#define PAIR(what, A, B)                                                                              \
    check_pair(what, (const int64_t[])A, sizeof((int64_t[])A) / sizeof(int64_t), (const int64_t[])B, \
               sizeof((int64_t[])B) / sizeof(int64_t))
#define S(...) {__VA_ARGS__}

Test(matmul, gradcheck_2d) { PAIR("2d", S(3, 4), S(4, 5)); }
Test(matmul, gradcheck_batched) { PAIR("batched", S(2, 3, 4), S(2, 4, 5)); }
Test(matmul, gradcheck_broadcast_batch) { PAIR("broadcast batch", S(2, 1, 3, 4), S(3, 4, 2)); }
Test(matmul, gradcheck_broadcast_both_sides) { PAIR("broadcast both", S(2, 1, 3, 2), S(1, 3, 2, 4)); }
Test(matmul, gradcheck_batched_x_2d_flat) { PAIR("batched x 2d", S(2, 3, 3, 4), S(4, 2)); }
Test(matmul, gradcheck_2d_x_batched) { PAIR("2d x batched", S(3, 4), S(2, 4, 5)); }
Test(matmul, gradcheck_vec_mat) { PAIR("vec x mat", S(4), S(4, 3)); }
Test(matmul, gradcheck_mat_vec) { PAIR("mat x vec", S(3, 4), S(4)); }
Test(matmul, gradcheck_dot) { PAIR("dot", S(5), S(5)); }
Test(matmul, gradcheck_vec_batched) { PAIR("vec x batched", S(4), S(2, 4, 3)); }
Test(matmul, gradcheck_batched_vec) { PAIR("batched x vec", S(2, 3, 4), S(4)); }

/* Only one operand requires grad: the other must get nothing, the first its full gradient. */
Test(matmul, grad_to_one_side_only)
{
    tg_tensor *a = randn_leaf(TG_SHAPE(2, 3, 4), 1);
    tg_tensor *b = randn_leaf(TG_SHAPE(4, 5), 2);
    tg_tensor_set_requires_grad(b, false);
    op_spec s = {.op = "matmul"};
    tg_tensor *in[2] = {a, b};
    spec_gradcheck("a only", &s, in, 2);
    cr_expect_null(b->grad);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

/* K = 0: the product is a zero matrix (as torch.matmul). */
Test(matmul, empty_inner_dim_gives_zeros)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 0));
    tg_tensor *b = tg_tensor_zeros(TG_SHAPE(0, 3));
    tg_tensor *c = tg_matmul(a, b);
    cr_assert_not_null(c, "%s", tg_last_error());
    cr_expect_eq(c->ndim, 2);
    cr_expect_eq(c->shape[0], 2);
    cr_expect_eq(c->shape[1], 3);
    for (int i = 0; i < 6; i++) cr_expect_eq(c->data[i], 0.0f);
    tg_tape_clear();
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(matmul, errors)
{
    tg_tensor *a = tg_tensor_zeros(TG_SHAPE(2, 3));
    tg_tensor *b = tg_tensor_zeros(TG_SHAPE(4, 5));
    tg_tensor *s = tg_tensor_scalar(1);
    tg_tensor *ba = tg_tensor_zeros(TG_SHAPE(2, 3, 4));
    tg_tensor *bb = tg_tensor_zeros(TG_SHAPE(3, 4, 5));
    tg_tensor *idx = tg_tensor_from_i64(TG_SHAPE(3), (const int64_t[]){0, 1, 2});
    EXPECT_ERROR(tg_matmul(a, b), "tg_matmul", "(2, 3)", "(4, 5)");
    EXPECT_ERROR(tg_matmul(s, b), "tg_matmul", "at least 1 dimension");
    EXPECT_ERROR(tg_matmul(ba, bb), "tg_matmul", "cannot be broadcast", "(2, 3, 4)", "(3, 4, 5)");
    EXPECT_ERROR(tg_matmul(idx, b), "tg_matmul", "a", "float32");
    EXPECT_ERROR(tg_matmul(NULL, b), "tg_matmul", "a is NULL");
    /* a NULL input keeps the earlier error */
    tg_clear_error();
    tg_error(TG_ERR_VALUE, "an earlier error");
    cr_expect_null(tg_matmul(NULL, b));
    cr_expect_str_eq(tg_last_error(), "an earlier error");
    tg_tape_clear();
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(s);
    tg_tensor_free(ba);
    tg_tensor_free(bb);
    tg_tensor_free(idx);
}

/* A (..., M, K) x (K, N) product is one sgemm over the flattened batch: its values
 * must match the per-batch 2-D products. */
Test(matmul, flat_batch_matches_per_matrix_products)
{
    tg_tensor *a = randn_leaf(TG_SHAPE(3, 5, 7), 5);
    tg_tensor *b = randn_leaf(TG_SHAPE(7, 4), 6);
    tg_tensor *c = tg_matmul(a, b);
    cr_assert_not_null(c);
    for (int bi = 0; bi < 3; bi++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 4; j++) {
                double s = 0;
                for (int k = 0; k < 7; k++) s += (double)a->data[(bi * 5 + i) * 7 + k] * b->data[k * 4 + j];
                cr_expect(fabs(c->data[(bi * 5 + i) * 4 + j] - s) < 1e-4, "(%d,%d,%d)", bi, i, j);
            }
    tg_tape_clear();
    tg_tensor_free(a);
    tg_tensor_free(b);
}
