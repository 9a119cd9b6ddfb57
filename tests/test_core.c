/* Core: tensors, errors, RNG, tape ownership and backward's error cases. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tapegrad.h"
#include "core/core_internal.h"

Test(core, zeros_shape_numel)
{
    tg_tensor *t = tg_tensor_zeros(TG_SHAPE(2, 3, 4));
    cr_assert_not_null(t);
    cr_expect_eq(t->ndim, 3);
    cr_expect_eq(t->numel, 24);
    for (int64_t i = 0; i < t->numel; i++) cr_expect_eq(t->data[i], 0.0f);
    tg_tensor_set(t, TG_INDEX(1, 2, 3), 5.0f);
    cr_expect_eq(t->data[23], 5.0f);
    cr_expect_eq(tg_tensor_get(t, TG_INDEX(1, 2, 3)), 5.0f);
    char b[64];
    cr_expect_str_eq(tg_shape_str(t, b, sizeof b), "(2, 3, 4)");
    tg_tensor_free(t);
}

Test(core, get_set_out_of_range_is_an_error_not_an_abort)
{
    tg_tensor *t = tg_tensor_zeros(TG_SHAPE(2, 3));
    tg_tensor *k = tg_tensor_new(TG_I64, TG_SHAPE(4));
    cr_assert(t && k);
    cr_expect_eq(tg_tensor_set(t, TG_INDEX(1, 2), 7.0f), TG_OK);
    cr_expect_eq(tg_tensor_set(k, TG_INDEX(3), 9.0f), TG_OK);
    cr_expect_eq(tg_tensor_get(k, TG_INDEX(3)), 9.0f);
    const int64_t bad[][2] = {{2, 0}, {0, 3}, {-1, 0}, {0, -1}, {1, INT64_MAX}};
    for (int i = 0; i < 5; i++) {
        tg_clear_error();
        cr_expect_eq(tg_tensor_set(t, bad[i], 1.0f), TG_ERR_ARG, "index (%lld, %lld)", (long long)bad[i][0],
                     (long long)bad[i][1]);
        cr_expect(strstr(tg_last_error(), "out of range") != NULL, "%s", tg_last_error());
        cr_expect(isnan(tg_tensor_get(t, bad[i])));
        cr_expect_eq(tg_tensor_offset(t, bad[i]), -1);
    }
    cr_expect_eq(tg_tensor_set(k, TG_INDEX(4), 1.0f), TG_ERR_ARG);
    cr_expect(strstr(tg_last_error(), "(2, 3)") == NULL && strstr(tg_last_error(), "(4,)") != NULL, "%s",
              tg_last_error());
    cr_expect(isnan(tg_tensor_get(NULL, TG_INDEX(0))));
    cr_expect_eq(tg_tensor_set(NULL, TG_INDEX(0), 1.0f), TG_ERR_ARG);
    for (int64_t i = 0; i < t->numel; i++) cr_expect_eq(t->data[i], i == 5 ? 7.0f : 0.0f); /* nothing else written */
    for (int64_t i = 0; i < k->numel; i++) cr_expect_eq(k->idata[i], i == 3 ? 9 : 0);
    tg_tensor_free(t);
    tg_tensor_free(k);
}

Test(core, too_many_dims_is_an_error)
{
    int64_t shape[7] = {1, 1, 1, 1, 1, 1, 1};
    cr_expect_null(tg_tensor_zeros(7, shape));
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    cr_expect(strstr(tg_last_error(), "7 dimensions") != NULL, "%s", tg_last_error());
    cr_expect_null(tg_tensor_zeros(TG_SHAPE(2, -1)));
    cr_expect(strstr(tg_last_error(), "(2, -1)") != NULL, "%s", tg_last_error());
}

Test(core, arange_matches_torch)
{
    tg_tensor *t = tg_tensor_arange(0, 1, 0.25f);
    cr_assert_not_null(t);
    cr_expect_eq(t->numel, 4);
    cr_expect_float_eq(t->data[3], 0.75f, 1e-7);
    tg_tensor_free(t);
    cr_expect_null(tg_tensor_arange(0, 1, 0));
    cr_expect_null(tg_tensor_arange(0, 1, -1));
}

Test(core, item_of_non_scalar_is_nan_and_error)
{
    tg_tensor *t = tg_tensor_ones(TG_SHAPE(2));
    cr_expect(isnan(tg_item(t)));
    cr_expect(strstr(tg_last_error(), "tg_item") != NULL);
    tg_tensor_free(t);
}

Test(rng, same_seed_same_stream)
{
    tg_rng a, b;
    tg_rng_seed(&a, 42);
    tg_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) cr_assert_eq(tg_rng_u64(&a), tg_rng_u64(&b));
    tg_rng_seed(&b, 43);
    cr_expect_neq(tg_rng_u64(&a), tg_rng_u64(&b));
}

Test(rng, uniform_and_normal_moments)
{
    tg_rng r;
    tg_rng_seed(&r, 7);
    double su = 0, sn = 0, sn2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = tg_rng_uniform(&r);
        cr_assert(u >= 0.0f && u < 1.0f);
        su += u;
        double z = tg_rng_normal(&r);
        sn += z;
        sn2 += z * z;
    }
    cr_expect(fabs(su / n - 0.5) < 0.005, "uniform mean %f", su / n);
    cr_expect(fabs(sn / n) < 0.01, "normal mean %f", sn / n);
    cr_expect(fabs(sn2 / n - 1.0) < 0.02, "normal var %f", sn2 / n);
}

Test(rng, permutation_is_a_permutation)
{
    tg_rng r;
    tg_rng_seed(&r, 1);
    int64_t p[100];
    int seen[100] = {0};
    tg_rng_permutation(&r, p, 100);
    int moved = 0;
    for (int i = 0; i < 100; i++) {
        cr_assert(p[i] >= 0 && p[i] < 100);
        seen[p[i]]++;
        moved += p[i] != i;
    }
    for (int i = 0; i < 100; i++) cr_expect_eq(seen[i], 1);
    cr_expect(moved > 90);
}

Test(rng, randn_tensor_reproducible_with_manual_seed)
{
    tg_manual_seed(123);
    tg_tensor *a = tg_tensor_randn(TG_SHAPE(5, 5), NULL);
    tg_manual_seed(123);
    tg_tensor *b = tg_tensor_randn(TG_SHAPE(5, 5), NULL);
    cr_expect_arr_eq(a->data, b->data, 25 * sizeof(float));
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(tape, backward_on_tensor_without_grad_is_error)
{
    tg_tensor *x = tg_tensor_ones(TG_SHAPE(1));
    tg_tensor *y = tg_mul_scalar(x, 2.0f);
    cr_assert_not_null(y);
    cr_expect_eq(tg_backward(y), TG_ERR_STATE);
    cr_expect(strstr(tg_last_error(), "does not require grad") != NULL, "%s", tg_last_error());
    tg_tape_clear();
    tg_tensor_free(x);
}

Test(tape, backward_twice_and_after_clear_are_errors)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_full(TG_SHAPE(3), 2.0f), true);
    tg_tensor *y = tg_sum_all(tg_mul(x, x));
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_expect_eq(tg_backward(y), TG_OK);
    cr_expect_float_eq(x->grad[0], 4.0f, 1e-6);
    cr_expect_eq(tg_backward(y), TG_ERR_STATE);
    cr_expect(strstr(tg_last_error(), "already walked") != NULL, "%s", tg_last_error());
    tg_tape_clear();
    cr_expect_eq(tg_backward(y), TG_ERR_STATE);
    cr_expect(strstr(tg_last_error(), "released") != NULL, "%s", tg_last_error());
    tg_tensor_free(x);
}

Test(tape, tensor_used_twice_accumulates)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_full(TG_SHAPE(2), 3.0f), true);
    /* y = sum(x*x + x) -> dy/dx = 2x + 1 = 7 */
    tg_tensor *y = tg_sum_all(tg_add(tg_mul(x, x), x));
    cr_assert_eq(tg_backward(y), TG_OK, "%s", tg_last_error());
    cr_expect_float_eq(x->grad[0], 7.0f, 1e-6);
    cr_expect_float_eq(x->grad[1], 7.0f, 1e-6);
    tg_tape_clear();
    /* parameters keep accumulating across steps until zeroed, as PyTorch */
    y = tg_sum_all(x);
    tg_backward(y);
    cr_expect_float_eq(x->grad[0], 8.0f, 1e-6);
    tg_tape_clear();
    tg_tensor_free(x);
}

Test(tape, no_grad_scope_records_nothing)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_ones(TG_SHAPE(4)), true);
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *y = tg_sum_all(tg_exp(x));
    cr_assert_not_null(y);
    cr_expect_eq(tg_tape_size(), 0);
    cr_expect(!y->requires_grad);
    tg_set_grad_enabled(prev);
    tg_tape_clear();
    tg_tensor_free(x);
}

Test(tape, null_input_keeps_first_error)
{
    tg_tensor *bad = tg_tensor_zeros(TG_SHAPE(-3));
    cr_expect_null(bad);
    char first[256];
    snprintf(first, sizeof first, "%s", tg_last_error());
    tg_tensor *y = tg_exp(tg_add(bad, bad));
    cr_expect_null(y);
    cr_expect_str_eq(tg_last_error(), first);
}

Test(tape, upstream_gradient)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_full(TG_SHAPE(3), 1.0f), true);
    tg_tensor *g = tg_tensor_from_data(TG_SHAPE(3), (float[]){1, 2, 3});
    tg_tensor *y = tg_mul_scalar(x, 5.0f);
    cr_assert_eq(tg_backward_with(y, g), TG_OK, "%s", tg_last_error());
    cr_expect_float_eq(x->grad[2], 15.0f, 1e-6);
    tg_tape_clear();
    tg_tensor_free(g);
    tg_tensor_free(x);
}

Test(tape, arena_is_reused_across_steps)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(64, 64), NULL), true);
    size_t reserved_after_warmup = 0;
    for (int step = 0; step < 50; step++) {
        tg_tensor *y = tg_sum_all(tg_tanh(tg_matmul(x, x)));
        cr_assert_eq(tg_backward(y), TG_OK, "%s", tg_last_error());
        tg_tape_clear();
        if (step == 3) reserved_after_warmup = tg_tape_bytes_reserved();
    }
    cr_expect_eq(tg_tape_bytes_reserved(), reserved_after_warmup);
    tg_tensor_free(x);
}

Test(tape, scratch_slots_are_reused_and_independent)
{
    float *a = tg_scratch_alloc(0, 1000 * sizeof(float));
    float *b = tg_scratch_alloc(1, 10 * sizeof(float));
    cr_assert(a && b && a != b);
    for (int i = 0; i < 1000; i++) a[i] = (float)i; /* the whole requested size is writable */
    b[9] = -1.0f;
    cr_expect_eq(((uintptr_t)a) % 64, 0, "scratch memory is 64-byte aligned");
#if !defined(__SANITIZE_ADDRESS__)
    cr_expect_eq(tg_scratch_alloc(0, 500 * sizeof(float)), a, "a smaller request reuses the buffer");
#endif
    float *c = tg_scratch_alloc(0, 5000 * sizeof(float));
    cr_assert_not_null(c);
    c[4999] = 1.0f;
    cr_expect_eq(b[9], -1.0f, "growing slot 0 leaves slot 1 alone");
    tg_scratch_release();
    cr_expect_not_null(tg_scratch_alloc(1, 16), "usable again after release");
    tg_scratch_release();
}

Test(tape, profiler_counts_forward_and_backward_per_op)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(8, 8), NULL), true);
    tg_profile_reset();
    tg_profile_enable(true);
    for (int step = 0; step < 3; step++) {
        tg_tensor *y = tg_sum_all(tg_tanh(tg_matmul(x, x)));
        cr_assert_eq(tg_backward(y), TG_OK, "%s", tg_last_error());
        tg_tape_clear();
    }
    tg_profile_enable(false);
    (void)tg_sum_all(tg_tanh(x)); /* not counted */
    tg_tape_clear();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    tg_profile_print(f);
    fclose(f);
    long calls = -1, bwd_calls = -1;
    const char *row = strstr(text, "\ntanh ");
    cr_assert_not_null(row, "no tanh row in:\n%s", text);
    double fwd_ms, bwd_ms;
    cr_assert_eq(sscanf(row, " tanh %ld %lf %ld %lf", &calls, &fwd_ms, &bwd_calls, &bwd_ms), 4, "%s", text);
    cr_expect_eq(calls, 3);
    cr_expect_eq(bwd_calls, 3);
    cr_expect(fwd_ms >= 0.0 && bwd_ms >= 0.0);
    cr_expect_not_null(strstr(text, "\nmatmul "), "%s", text);
    free(text);
    tg_profile_reset();
    tg_tensor_free(x);
}

Test(blas, recommended_core_fixes_generic_fallback)
{
    cr_expect_str_eq(tg_blas_recommended_core("Prescott", true, true), "SkylakeX");
    cr_expect_str_eq(tg_blas_recommended_core("Prescott", false, true), "Haswell");
    cr_expect_null(tg_blas_recommended_core("Cooperlake", true, true));
    cr_expect_null(tg_blas_recommended_core("SkylakeX", true, true));
    cr_expect_null(tg_blas_recommended_core("Haswell", false, true));
    cr_expect_null(tg_blas_recommended_core("Prescott", false, false)); /* nothing better to ask for */
    cr_expect_null(tg_blas_recommended_core(NULL, true, true));
}

Test(blas, core_name_is_reported)
{
    const char *core = tg_blas_core();
    cr_assert_not_null(core);
    cr_expect_gt(strlen(core), 0);
    cr_expect(strstr(tg_blas_config(), "OpenBLAS") != NULL, "%s", tg_blas_config());
}
