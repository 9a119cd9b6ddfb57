/* Batch norm: PyTorch golden values over two training steps (outputs, gradients, running
 * statistics with momentum and momentum=None, num_batches_tracked) then eval; gradient checks
 * in both modes; errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

static tg_tensor *opt_tensor(const cJSON *v, bool grad)
{
    if (!v || cJSON_IsNull(v)) return NULL;
    return tg_tensor_set_requires_grad(tgt_json_tensor(v, false), grad);
}

/* Runs one batch through tg_batch_norm and compares y and the gradients from gy. */
static void check_step(const char *name, const cJSON *s, tg_tensor *w, tg_tensor *b, tg_tensor *rm, tg_tensor *rv,
                       int64_t *nbt, bool training, float momentum, float eps)
{
    tg_tensor *x = opt_tensor(cJSON_GetObjectItem(s, "x"), true);
    tg_tensor_zero_grad(w);
    tg_tensor_zero_grad(b);
    tg_tensor *y = tg_batch_norm(x, w, b, rm, rv, nbt, training, momentum, eps);
    tgt_expect_fixture_case(name, s, y, (tg_tensor *const[]){x, w, b}, (const char *const[]){"gx", "gw", "gb"}, 3,
                            1e-4, 1e-4, 1e-4);
    tg_tensor_free(x);
}

Test(batchnorm_fixture, train_two_steps_then_eval_match_torch)
{
    cJSON *root = tgt_json_load("nn_ops_batchnorm.json");
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        float momentum = (float)tgt_json_number(cJSON_GetObjectItem(c, "momentum"));
        float eps = (float)cJSON_GetObjectItem(c, "eps")->valuedouble;
        tg_tensor *w = opt_tensor(cJSON_GetObjectItem(c, "weight"), true);
        tg_tensor *b = opt_tensor(cJSON_GetObjectItem(c, "bias"), true);
        const cJSON *steps = cJSON_GetObjectItem(c, "train_steps");
        const cJSON *x0 = cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 0), "x");
        int64_t C = cJSON_GetArraySize(x0->child);
        tg_tensor *rm = tg_tensor_zeros(TG_SHAPE(C)), *rv = tg_tensor_ones(TG_SHAPE(C));
        int64_t nbt = 0;
        const cJSON *s;
        int k = 0;
        cJSON_ArrayForEach(s, steps)
        {
            char what[128];
            snprintf(what, sizeof what, "%s step %d", name, k++);
            check_step(what, s, w, b, rm, rv, &nbt, true, momentum, eps);
            tg_tensor *erm = tgt_json_tensor(cJSON_GetObjectItem(s, "running_mean"), false);
            tg_tensor *erv = tgt_json_tensor(cJSON_GetObjectItem(s, "running_var"), false);
            char w2[160];
            snprintf(w2, sizeof w2, "%s running_mean", what);
            tgt_expect_tensor_close(w2, rm, erm, 1e-5, 1e-6);
            snprintf(w2, sizeof w2, "%s running_var", what);
            tgt_expect_tensor_close(w2, rv, erv, 1e-5, 1e-6);
            cr_expect_eq(nbt, (int64_t)cJSON_GetObjectItem(s, "num_batches_tracked")->valueint, "%s", what);
            tg_tensor_free(erm);
            tg_tensor_free(erv);
        }
        char what[128];
        snprintf(what, sizeof what, "%s eval", name);
        float rm0 = rm->data[0];
        check_step(what, cJSON_GetObjectItem(c, "eval"), w, b, rm, rv, &nbt, false, momentum, eps);
        cr_expect_eq(rm->data[0], rm0, "eval must not touch the running stats");
        cr_expect_eq(nbt, 2, "eval must not count batches");
        tg_tensor_free(w);
        tg_tensor_free(b);
        tg_tensor_free(rm);
        tg_tensor_free(rv);
        n_cases++;
    }
    cr_expect_geq(n_cases, 5);
    cJSON_Delete(root);
}

typedef struct {
    bool training, relu;
    tg_tensor *rm, *rv;
} bn_case;

static tg_tensor *bn_probe(tg_tensor *const *in, int n, void *ctx)
{
    const bn_case *bc = ctx;
    tg_tensor *y = (bc->relu ? tg_batch_norm_relu : tg_batch_norm)(
        in[0], n > 1 ? in[1] : NULL, n > 2 ? in[2] : NULL, bc->training ? NULL : bc->rm, bc->training ? NULL : bc->rv,
        NULL, bc->training, 0.1f, 1e-5f);
    return tgt_weighted_sum(y, 8);
}

static void check_bn(const char *what, bool training, int ndim, const int64_t *shape, bool affine, bool relu)
{
    tg_rng r;
    tg_rng_seed(&r, 13);
    tg_tensor *in[3] = {tg_tensor_set_requires_grad(tg_tensor_randn(ndim, shape, &r), true), NULL, NULL};
    int64_t C = shape[1];
    if (affine) {
        in[1] = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(C), &r), true);
        in[2] = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(C), &r), true);
    }
    bn_case bc = {training, relu, tg_tensor_randn(TG_SHAPE(C), &r), tg_tensor_full(TG_SHAPE(C), 0.7f)};
    tgt_expect_gradcheck(what, bn_probe, &bc, in, affine ? 3 : 1, 1e-2, 2e-3, 2e-2);
    for (int k = 0; k < 3; k++) tg_tensor_free(in[k]);
    tg_tensor_free(bc.rm);
    tg_tensor_free(bc.rv);
}

Test(batchnorm_gradcheck, train_and_eval)
{
    check_bn("train nchw affine", true, TG_SHAPE(2, 3, 3, 2), true, false);
    check_bn("train nc", true, TG_SHAPE(5, 3), true, false);
    check_bn("train no affine", true, TG_SHAPE(3, 2, 4), false, false);
    check_bn("eval nchw affine", false, TG_SHAPE(2, 3, 2, 2), true, false);
    check_bn("train nchw affine, fused relu", true, TG_SHAPE(2, 3, 3, 2), true, true);
    check_bn("eval nchw affine, fused relu", false, TG_SHAPE(2, 3, 2, 2), true, true);
}

/* tg_batch_norm_relu against tg_relu(tg_batch_norm(...)), bit for bit: output, running stats and
 * every gradient, in training and eval, with an output that is exactly 0 where beta cancels. */
static void expect_same_bits(const char *what, const tg_tensor *a, const tg_tensor *b, bool grad)
{
    const float *p = grad ? a->grad : a->data, *q = grad ? b->grad : b->data;
    cr_assert(p && q, "%s: missing", what);
    cr_expect_eq(memcmp(p, q, sizeof(float) * (size_t)a->numel), 0, "%s differs", what);
}

Test(batchnorm_relu, fused_equals_batch_norm_then_relu_bit_for_bit)
{
    for (int training = 1; training >= 0; training--) {
        tg_tensor *x[2], *w[2], *b[2], *rm[2], *rv[2], *y[2];
        float *yd[2];
        int64_t nbt[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            tg_rng r;
            tg_rng_seed(&r, 77);
            x[k] = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(3, 4, 9, 7), &r), true);
            x[k]->data[5] = x[k]->data[6] = 0.0f;
            w[k] = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(4), &r), true);
            b[k] = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(4), &r), true);
            rm[k] = tg_tensor_randn(TG_SHAPE(4), &r);
            rv[k] = tg_tensor_full(TG_SHAPE(4), 0.7f);
            if (!training) b[k]->data[0] = rm[k]->data[0] * w[k]->data[0] / sqrtf(0.7f + 1e-5f); /* y = 0 at x = 0 */
            y[k] = k == 0 ? tg_relu(tg_batch_norm(x[k], w[k], b[k], rm[k], rv[k], &nbt[k], training, 0.1f, 1e-5f))
                          : tg_batch_norm_relu(x[k], w[k], b[k], rm[k], rv[k], &nbt[k], training, 0.1f, 1e-5f);
            cr_assert_not_null(y[k], "%s", tg_last_error());
            cr_assert_eq(tg_backward(tgt_weighted_sum(y[k], 9)), TG_OK, "%s", tg_last_error());
            yd[k] = malloc(sizeof(float) * (size_t)y[k]->numel);
            memcpy(yd[k], y[k]->data, sizeof(float) * (size_t)y[k]->numel);
            tg_tape_clear(); /* the outputs live on the tape: kept in yd */
        }
        const int64_t ny = x[0]->numel;
        cr_expect_eq(memcmp(yd[0], yd[1], sizeof(float) * (size_t)ny), 0, "output differs");
        expect_same_bits("running mean", rm[0], rm[1], false);
        expect_same_bits("running var", rv[0], rv[1], false);
        expect_same_bits("dx", x[0], x[1], true);
        expect_same_bits("dgamma", w[0], w[1], true);
        expect_same_bits("dbeta", b[0], b[1], true);
        int zeros = 0;
        for (int64_t i = 0; i < ny; i++) zeros += yd[1][i] == 0.0f;
        cr_expect_gt(zeros, ny / 4, "relu should clip about half the outputs");
        for (int k = 0; k < 2; k++) {
            free(yd[k]);
            tg_tensor_free(x[k]), tg_tensor_free(w[k]), tg_tensor_free(b[k]);
            tg_tensor_free(rm[k]), tg_tensor_free(rv[k]);
        }
    }
}

Test(batchnorm_errors, clear_messages)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(1, 4)), *w = tg_tensor_ones(TG_SHAPE(3));
    cr_expect_null(tg_batch_norm(x, NULL, NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f));
    cr_expect(strstr(tg_last_error(), "more than 1 value per channel") && strstr(tg_last_error(), "(1, 4)"), "%s",
              tg_last_error());
    tg_tensor *x2 = tg_tensor_zeros(TG_SHAPE(2, 4, 3));
    cr_expect_null(tg_batch_norm(x2, w, NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f));
    cr_expect(strstr(tg_last_error(), "weight") && strstr(tg_last_error(), "(3,)") && strstr(tg_last_error(), "(2, 4, 3)"),
              "%s", tg_last_error());
    cr_expect_null(tg_batch_norm(x2, NULL, NULL, NULL, NULL, NULL, false, 0.1f, 1e-5f));
    cr_expect(strstr(tg_last_error(), "running_mean"), "%s", tg_last_error());
    tg_tensor *rm = tg_tensor_zeros(TG_SHAPE(4)), *rv = tg_tensor_ones(TG_SHAPE(4));
    cr_expect_null(tg_batch_norm(x2, NULL, NULL, rm, rv, NULL, true, NAN, 1e-5f));
    cr_expect(strstr(tg_last_error(), "num_batches_tracked"), "%s", tg_last_error());
    cr_expect_null(tg_batch_norm(x2, NULL, NULL, rm, NULL, NULL, true, 0.1f, 1e-5f));
    cr_expect(strstr(tg_last_error(), "both"), "%s", tg_last_error());
    tg_tensor *x1 = tg_tensor_zeros(TG_SHAPE(4));
    cr_expect_null(tg_batch_norm(x1, NULL, NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f));
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(x2);
    tg_tensor_free(rm);
    tg_tensor_free(rv);
    tg_tensor_free(x1);
}
