/* linear (PyTorch golden values, gradient checks), flatten and dropout (seeding, scaling,
 * mask reuse in backward, p edge cases), and their errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

Test(linear_fixture, outputs_and_gradients_match_torch)
{
    cJSON *root = tgt_json_load("nn_ops_linear.json");
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        tg_tensor *x = tg_tensor_set_requires_grad(tgt_json_tensor(cJSON_GetObjectItem(c, "x"), false), true);
        tg_tensor *w = tg_tensor_set_requires_grad(tgt_json_tensor(cJSON_GetObjectItem(c, "w"), false), true);
        const cJSON *jb = cJSON_GetObjectItem(c, "b");
        tg_tensor *b = cJSON_IsNull(jb) ? NULL : tg_tensor_set_requires_grad(tgt_json_tensor(jb, false), true);
        tg_tensor *y = tg_linear(x, w, b);
        tgt_expect_fixture_case(name, c, y, (tg_tensor *const[]){x, w, b}, (const char *const[]){"gx", "gw", "gb"},
                                3, 1e-5, 1e-5, 1e-5);
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_tensor_free(b);
        n_cases++;
    }
    cr_expect_eq(n_cases, 3);
    cJSON_Delete(root);
}

static tg_tensor *linear_probe(tg_tensor *const *in, int n, void *ctx)
{
    (void)ctx;
    return tgt_weighted_sum(tg_linear(in[0], in[1], n > 2 ? in[2] : NULL), 17);
}

static tg_tensor *flatten_linear_probe(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tgt_weighted_sum(tg_linear(tg_flatten(in[0], 1, -1), in[1], NULL), 17);
}

Test(linear_gradcheck, linear_and_flatten)
{
    tg_rng r;
    tg_rng_seed(&r, 2);
    tg_tensor *in[3] = {tg_tensor_randn(TG_SHAPE(2, 3, 4), &r), tg_tensor_randn(TG_SHAPE(5, 4), &r),
                        tg_tensor_randn(TG_SHAPE(5), &r)};
    for (int k = 0; k < 3; k++) tg_tensor_set_requires_grad(in[k], true);
    tgt_expect_gradcheck("linear 3-d with bias", linear_probe, NULL, in, 3, 1e-2, 1e-3, 1e-2);
    tg_tensor *f[2] = {tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(2, 2, 2, 3), &r), true),
                       tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(3, 12), &r), true)};
    tgt_expect_gradcheck("flatten then linear", flatten_linear_probe, NULL, f, 2, 1e-2, 1e-3, 1e-2);
    for (int k = 0; k < 3; k++) tg_tensor_free(in[k]);
    tg_tensor_free(f[0]);
    tg_tensor_free(f[1]);
}

Test(flatten, shapes_like_torch)
{
    tg_tensor *x = tg_tensor_arange(0, 24, 1);
    tg_tensor *x4 = tg_tensor_from_data(TG_SHAPE(2, 3, 2, 2), x->data);
    char b[64];
    tg_tensor *a = tg_flatten(x4, 1, -1);
    cr_assert_not_null(a, "%s", tg_last_error());
    cr_expect_str_eq(tg_shape_str(a, b, sizeof b), "(2, 12)");
    cr_expect_eq(a->data[13], 13.0f);
    a = tg_flatten(x4, 0, -1);
    cr_expect_str_eq(tg_shape_str(a, b, sizeof b), "(24,)");
    a = tg_flatten(x4, 1, 2);
    cr_expect_str_eq(tg_shape_str(a, b, sizeof b), "(2, 6, 2)");
    a = tg_flatten(x4, -2, -2);
    cr_expect_str_eq(tg_shape_str(a, b, sizeof b), "(2, 3, 2, 2)");
    cr_expect_null(tg_flatten(x4, 2, 1));
    cr_expect(strstr(tg_last_error(), "start_dim"), "%s", tg_last_error());
    cr_expect_null(tg_flatten(x4, 0, 4));
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(x4);
}

Test(linear_errors, clear_messages)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 3)), *w = tg_tensor_zeros(TG_SHAPE(4, 5)), *b = tg_tensor_zeros(TG_SHAPE(3));
    cr_expect_null(tg_linear(x, w, NULL));
    cr_expect(strstr(tg_last_error(), "(2, 3)") && strstr(tg_last_error(), "(4, 5)"), "%s", tg_last_error());
    tg_tensor *w2 = tg_tensor_zeros(TG_SHAPE(4, 3));
    cr_expect_null(tg_linear(x, w2, b));
    cr_expect(strstr(tg_last_error(), "bias") && strstr(tg_last_error(), "(3,)"), "%s", tg_last_error());
    cr_expect_not_null(tg_linear(x, w2, NULL));
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(w2);
    tg_tensor_free(b);
}

/* ---- dropout ---- */

Test(dropout, inverted_scaling_seeded_and_mask_reused)
{
    const int64_t n = 100000;
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_full(TG_SHAPE(n), 2.0f), true);
    tg_rng r1, r2;
    tg_rng_seed(&r1, 77);
    tg_rng_seed(&r2, 77);
    tg_tensor *y = tg_dropout(x, 0.3f, true, &r1);
    tg_tensor *y2 = tg_dropout(x, 0.3f, true, &r2);
    cr_assert_not_null(y);
    cr_assert_not_null(y2);
    int64_t zeros = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(y->data[i] == 0.0f || fabsf(y->data[i] - 2.0f / 0.7f) < 1e-6f, "value %g", y->data[i]);
        zeros += y->data[i] == 0.0f;
        sum += y->data[i];
        cr_assert_eq(y->data[i], y2->data[i], "same seed, same mask");
    }
    cr_expect(fabs((double)zeros / n - 0.3) < 0.01, "dropped fraction %f", (double)zeros / n);
    cr_expect(fabs(sum / n - 2.0) < 0.03, "mean %f stays E[x]", sum / n);
    tg_tensor *gy = tg_tensor_full(TG_SHAPE(n), 1.0f);
    cr_assert_eq(tg_backward_with(y, gy), TG_OK);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(x->grad[i], y->data[i] / 2.0f, "gradient uses the forward mask at %lld", (long long)i);
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(gy);
}

/* The mask is drawn from the rng, reseeded at every call: the function is then deterministic. */
static tg_tensor *dropout_probe(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    tg_rng r;
    tg_rng_seed(&r, *(const uint64_t *)ctx);
    return tgt_weighted_sum(tg_dropout(in[0], 0.4f, true, &r), 23);
}

Test(dropout, gradcheck_fixed_mask)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(4, 5), &r), true);
    uint64_t seed = 41;
    tgt_expect_gradcheck("dropout p 0.4", dropout_probe, &seed, &x, 1, 1e-2, 1e-3, 1e-2);
    tg_tensor_free(x);
}

Test(dropout, eval_p0_and_p1)
{
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(3, 4), &r), true);
    tg_tensor *e = tg_dropout(x, 0.5f, false, &r);
    tg_tensor *z = tg_dropout(x, 0.0f, true, &r);
    tg_tensor *one = tg_dropout(x, 1.0f, true, &r);
    cr_assert_not_null(e);
    cr_assert_not_null(z);
    cr_assert_not_null(one);
    for (int64_t i = 0; i < x->numel; i++) {
        cr_expect_eq(e->data[i], x->data[i]);
        cr_expect_eq(z->data[i], x->data[i]);
        cr_expect_eq(one->data[i], 0.0f);
    }
    tg_tensor *g = tg_tensor_ones(TG_SHAPE(3, 4));
    cr_assert_eq(tg_backward_with(one, g), TG_OK);
    for (int64_t i = 0; i < x->numel; i++) cr_expect_eq(x->grad[i], 0.0f);
    cr_expect_null(tg_dropout(x, 1.5f, true, &r));
    cr_expect(strstr(tg_last_error(), "p must be in [0, 1]"), "%s", tg_last_error());
    cr_expect_null(tg_dropout(x, -0.1f, true, &r));
    cr_expect_null(tg_dropout(x, NAN, true, &r));
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(g);
}
