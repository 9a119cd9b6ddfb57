/* max/avg/adaptive pooling: PyTorch golden values (ceil_mode, padding, dilation, ties, DRIVE's
 * odd sizes), gradient checks and error messages. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

static void int_pair(const cJSON *c, const char *key, int out[2])
{
    const cJSON *a = cJSON_GetObjectItem(c, key);
    cr_assert(cJSON_IsArray(a), "fixture key %s", key);
    out[0] = cJSON_GetArrayItem(a, 0)->valueint;
    out[1] = cJSON_GetArrayItem(a, 1)->valueint;
}

Test(pool_fixture, outputs_and_gradients_match_torch)
{
    cJSON *root = tgt_json_load("nn_ops_pool.json");
    const cJSON *c;
    int counts[3] = {0, 0, 0};
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *kind = cJSON_GetObjectItem(c, "kind")->valuestring;
        tg_tensor *x = tg_tensor_set_requires_grad(tgt_json_tensor(cJSON_GetObjectItem(c, "x"), false), true);
        tg_tensor *y;
        if (!strcmp(kind, "adaptive")) {
            int out[2];
            int_pair(c, "out_size", out);
            y = tg_adaptive_avg_pool2d(x, out[0], out[1]);
            counts[2]++;
        } else {
            tg_pool2d_opts o = {.ceil_mode = cJSON_IsTrue(cJSON_GetObjectItem(c, "ceil_mode")),
                                .exclude_pad = cJSON_IsTrue(cJSON_GetObjectItem(c, "exclude_pad"))};
            int_pair(c, "kernel", o.kernel);
            int_pair(c, "stride", o.stride);
            int_pair(c, "padding", o.padding);
            int_pair(c, "dilation", o.dilation);
            bool is_max = !strcmp(kind, "max");
            y = is_max ? tg_max_pool2d(x, o) : tg_avg_pool2d(x, o);
            counts[is_max ? 0 : 1]++;
        }
        tgt_expect_fixture_case(name, c, y, &x, (const char *const[]){"gx"}, 1, 1e-5, 1e-5, 1e-5);
        tg_tensor_free(x);
    }
    cr_expect_geq(counts[0], 10);
    cr_expect_geq(counts[1], 6);
    cr_expect_geq(counts[2], 4);
    cJSON_Delete(root);
}

/* ---- gradient checks (inputs are distinct values, so max pooling has no ties to step across) ---- */

typedef struct {
    int kind; /* 0 max, 1 avg, 2 adaptive */
    tg_pool2d_opts o;
    int64_t oh, ow;
} pool_case;

static tg_tensor *pool_probe(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    const pool_case *pc = ctx;
    tg_tensor *y = pc->kind == 0 ? tg_max_pool2d(in[0], pc->o)
                   : pc->kind == 1 ? tg_avg_pool2d(in[0], pc->o)
                                   : tg_adaptive_avg_pool2d(in[0], pc->oh, pc->ow);
    return tgt_weighted_sum(y, 5);
}

/* A permutation of well-separated values: finite differences never reorder them. */
static tg_tensor *distinct_input(int64_t N, int64_t C, int64_t H, int64_t W)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(N, C, H, W));
    int64_t *perm = malloc((size_t)x->numel * sizeof *perm);
    tg_rng r;
    tg_rng_seed(&r, 11);
    tg_rng_permutation(&r, perm, x->numel);
    for (int64_t i = 0; i < x->numel; i++) x->data[i] = 0.05f * (float)(perm[i] - x->numel / 2);
    free(perm);
    return tg_tensor_set_requires_grad(x, true);
}

static void check_pool(const char *what, pool_case pc, int64_t H, int64_t W)
{
    tg_tensor *x = distinct_input(2, 2, H, W);
    /* max pool: a step below half the 0.05 spacing; the linear pools take a larger, more exact one */
    tgt_expect_gradcheck(what, pool_probe, &pc, &x, 1, pc.kind == 0 ? 2e-3 : 1e-2, 1e-3, 1e-2);
    tg_tensor_free(x);
}

Test(pool_gradcheck, max_avg_adaptive)
{
    check_pool("max 2x2 fast path", (pool_case){0, {.kernel = {2, 2}}, 0, 0}, 6, 8);
    check_pool("max 2x2 ceil odd", (pool_case){0, {.kernel = {2, 2}, .ceil_mode = true}, 0, 0}, 5, 7);
    check_pool("max 3x3 s2 p1 dil", (pool_case){0, {.kernel = {3, 3}, .stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 2}}, 0, 0}, 7, 8);
    check_pool("avg include pad ceil", (pool_case){1, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true}, 0, 0}, 6, 7);
    check_pool("avg exclude pad", (pool_case){1, {.kernel = {3, 2}, .stride = {2, 2}, .padding = {1, 1}, .exclude_pad = true}, 0, 0}, 7, 6);
    check_pool("adaptive 3x2", (pool_case){.kind = 2, .oh = 3, .ow = 2}, 7, 5);
    check_pool("adaptive up", (pool_case){.kind = 2, .oh = 5, .ow = 6}, 3, 4);
}

/* The 2x2 fast path against a plain reference written here: value and first-max gradient, with ties. */
Test(pool_property, fast_path_matches_reference_with_ties)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    const int64_t P = 6, H = 10, W = 12;
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_zeros(TG_SHAPE(2, 3, H, W)), true);
    for (int64_t i = 0; i < x->numel; i++) x->data[i] = (float)tg_rng_below(&r, 3); /* many ties */
    tg_tensor *y = tg_max_pool2d(x, (tg_pool2d_opts){.kernel = {2, 2}});
    cr_assert_not_null(y);
    tg_tensor *ones = tg_tensor_ones(y->ndim, y->shape);
    cr_assert_eq(tg_backward_with(y, ones), TG_OK);
    for (int64_t p = 0; p < P; p++)
        for (int64_t oh = 0; oh < H / 2; oh++)
            for (int64_t ow = 0; ow < W / 2; ow++) {
                const float *xp = x->data + p * H * W;
                int64_t best = (2 * oh) * W + 2 * ow;
                for (int k = 1; k < 4; k++) {
                    int64_t idx = (2 * oh + k / 2) * W + 2 * ow + k % 2;
                    if (xp[idx] > xp[best]) best = idx;
                }
                cr_assert_eq(y->data[(p * (H / 2) + oh) * (W / 2) + ow], xp[best]);
                cr_assert_eq(x->grad[p * H * W + best], 1.0f, "plane %lld window (%lld, %lld)", (long long)p,
                             (long long)oh, (long long)ow);
            }
    double total = 0;
    for (int64_t i = 0; i < x->numel; i++) total += x->grad[i];
    cr_expect_eq(total, (double)y->numel, "each window sends its gradient to exactly one input");
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(ones);
}

Test(pool_property, nan_propagates_like_torch)
{
    tg_tensor *x = tg_tensor_from_data(TG_SHAPE(1, 1, 2, 4), (const float[]){1, NAN, 3, 4, 5, 6, 7, NAN});
    tg_tensor *y = tg_max_pool2d(x, (tg_pool2d_opts){.kernel = {2, 2}});
    cr_assert_not_null(y);
    cr_expect(isnan(y->data[0]) && isnan(y->data[1]));
    tg_tape_clear();
    tg_tensor_free(x);
}

/* ---- errors ---- */

static void expect_error(tg_tensor *y, tg_status st, const char *a)
{
    cr_expect_null(y);
    cr_expect_eq(tg_last_status(), st, "status %d: %s", tg_last_status(), tg_last_error());
    cr_expect(strstr(tg_last_error(), a) != NULL, "'%s' not in: %s", a, tg_last_error());
}

Test(pool_errors, clear_messages)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(1, 2, 3, 3));
    expect_error(tg_max_pool2d(x, (tg_pool2d_opts){.kernel = {0, 2}}), TG_ERR_ARG, "kernel");
    expect_error(tg_max_pool2d(x, (tg_pool2d_opts){.kernel = {2, 2}, .padding = {2, 0}}), TG_ERR_ARG, "half the kernel");
    expect_error(tg_max_pool2d(x, (tg_pool2d_opts){.kernel = {4, 4}}), TG_ERR_SHAPE, "too small");
    expect_error(tg_max_pool2d(x, (tg_pool2d_opts){.kernel = {2, 2}, .stride = {-1, 1}}), TG_ERR_ARG, "stride");
    expect_error(tg_avg_pool2d(x, (tg_pool2d_opts){.kernel = {2, 2}, .dilation = {2, 2}}), TG_ERR_ARG, "dilation");
    expect_error(tg_adaptive_avg_pool2d(x, 0, 2), TG_ERR_ARG, "output size");
    tg_tensor *x2 = tg_tensor_zeros(TG_SHAPE(4, 4));
    expect_error(tg_max_pool2d(x2, (tg_pool2d_opts){.kernel = {2, 2}}), TG_ERR_SHAPE, "dimensions");
    tg_tensor_free(x);
    tg_tensor_free(x2);
}
