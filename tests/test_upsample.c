/* Bilinear and nearest upsampling: PyTorch golden values (both align_corners, sizes and
 * non-integer scales, DRIVE's 36x35 -> 72x70 / 73x70), gradient checks and errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tapegrad.h"
#include "test_support.h"

Test(upsample_fixture, outputs_and_gradients_match_torch)
{
    cJSON *root = tgt_json_load("nn_ops_upsample.json");
    const cJSON *c;
    int n_bilinear = 0, n_nearest = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        bool bilinear = !strcmp(cJSON_GetObjectItem(c, "mode")->valuestring, "bilinear");
        tg_upsample_opts o = {.align_corners = cJSON_IsTrue(cJSON_GetObjectItem(c, "align_corners")) && bilinear};
        const cJSON *size = cJSON_GetObjectItem(c, "size"), *scale = cJSON_GetObjectItem(c, "scale");
        if (cJSON_IsArray(size)) {
            o.size[0] = cJSON_GetArrayItem(size, 0)->valueint;
            o.size[1] = cJSON_GetArrayItem(size, 1)->valueint;
        } else {
            o.scale[0] = o.scale[1] = scale->valuedouble;
        }
        tg_tensor *x = tg_tensor_set_requires_grad(tgt_json_tensor(cJSON_GetObjectItem(c, "x"), false), true);
        tg_tensor *y = bilinear ? tg_upsample_bilinear2d(x, o) : tg_upsample_nearest2d(x, o);
        bilinear ? n_bilinear++ : n_nearest++;
        tgt_expect_fixture_case(name, c, y, &x, (const char *const[]){"gx"}, 1, 1e-5, 1e-4, 1e-5);
        tg_tensor_free(x);
    }
    cr_expect_geq(n_bilinear, 10);
    cr_expect_geq(n_nearest, 5);
    cJSON_Delete(root);
}

typedef struct {
    bool nearest;
    tg_upsample_opts o;
} up_case;

static tg_tensor *up_probe(tg_tensor *const *in, int n, void *ctx)
{
    (void)n;
    const up_case *uc = ctx;
    tg_tensor *y = uc->nearest ? tg_upsample_nearest2d(in[0], uc->o) : tg_upsample_bilinear2d(in[0], uc->o);
    return tgt_weighted_sum(y, 3);
}

static void check_up(const char *what, up_case uc, int64_t H, int64_t W)
{
    tg_rng r;
    tg_rng_seed(&r, 21);
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(2, 2, H, W), &r), true);
    tgt_expect_gradcheck(what, up_probe, &uc, &x, 1, 1e-2, 1e-3, 1e-2);
    tg_tensor_free(x);
}

Test(upsample_gradcheck, bilinear_and_nearest)
{
    check_up("bilinear x2 align", (up_case){.o = {.scale = {2, 2}, .align_corners = true}}, 4, 5);
    check_up("bilinear x2", (up_case){.o = {.scale = {2, 2}}}, 4, 5);
    check_up("bilinear odd target", (up_case){.o = {.size = {9, 7}, .align_corners = true}}, 4, 3);
    check_up("bilinear scale 1.7", (up_case){.o = {.scale = {1.7, 1.3}}}, 5, 4);
    check_up("bilinear down", (up_case){.o = {.size = {3, 2}}}, 7, 5);
    check_up("nearest size", (up_case){.nearest = true, .o = {.size = {7, 6}}}, 3, 4);
    check_up("nearest scale 2", (up_case){.nearest = true, .o = {.scale = {2, 2}}}, 3, 4);
}

/* align_corners=true keeps the corner pixels exactly. */
Test(upsample_property, align_corners_keeps_corners)
{
    tg_rng r;
    tg_rng_seed(&r, 4);
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(1, 1, 36, 35), &r);
    tg_tensor *y = tg_upsample_bilinear2d(x, (tg_upsample_opts){.scale = {2, 2}, .align_corners = true});
    cr_assert_not_null(y);
    cr_expect_eq(y->shape[2], 72);
    cr_expect_eq(y->shape[3], 70);
    cr_expect_eq(y->data[0], x->data[0]);
    cr_expect_eq(y->data[y->numel - 1], x->data[x->numel - 1]);
    tg_tape_clear();
    tg_tensor_free(x);
}

Test(upsample_errors, clear_messages)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(1, 1, 3, 3));
    cr_expect_null(tg_upsample_bilinear2d(x, (tg_upsample_opts){0}));
    cr_expect(strstr(tg_last_error(), "size") && strstr(tg_last_error(), "scale"), "%s", tg_last_error());
    cr_expect_null(tg_upsample_bilinear2d(x, (tg_upsample_opts){.size = {4, 4}, .scale = {2, 2}}));
    cr_expect(strstr(tg_last_error(), "not both"), "%s", tg_last_error());
    cr_expect_null(tg_upsample_nearest2d(x, (tg_upsample_opts){.scale = {0.2, 1}}));
    cr_expect(strstr(tg_last_error(), "non-empty"), "%s", tg_last_error());
    cr_expect_null(tg_upsample_nearest2d(x, (tg_upsample_opts){.scale = {2, 2}, .align_corners = true}));
    cr_expect(strstr(tg_last_error(), "align_corners"), "%s", tg_last_error());
    tg_tensor *x3 = tg_tensor_zeros(TG_SHAPE(1, 3, 3));
    cr_expect_null(tg_upsample_bilinear2d(x3, (tg_upsample_opts){.scale = {2, 2}}));
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_tensor_free(x);
    tg_tensor_free(x3);
}
