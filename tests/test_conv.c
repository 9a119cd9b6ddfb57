/* conv2d and conv_transpose2d: PyTorch golden values (outputs and all gradients), finite-difference
 * gradient checks over stride/padding/dilation/groups combinations, and error messages. The
 * fixtures and conv2d's gradient checks run on every kernel path this CPU and build have
 * (ops/conv_testing.h: direct 3x3 kernels per instruction set, im2col + sgemm, oneDNN, oneDNN's
 * Winograd). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "ops/conv_testing.h"
#include "tapegrad.h"
#include "test_support.h"

static tg_tensor *randn(int ndim, const int64_t *shape, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    return tg_tensor_set_requires_grad(tg_tensor_randn(ndim, shape, &r), true);
}

static void int_pair(const cJSON *c, const char *key, int out[2])
{
    const cJSON *a = cJSON_GetObjectItem(c, key);
    cr_assert(cJSON_IsArray(a), "fixture key %s", key);
    out[0] = cJSON_GetArrayItem(a, 0)->valueint;
    out[1] = cJSON_GetArrayItem(a, 1)->valueint;
}

/* ---- kernel paths ---- */

typedef struct {
    tg_conv_path path;
    tg_conv_isa isa;
} conv_path;

/* Every (path, instruction set) this CPU and build run, automatic choice first; n set. */
static int conv_paths(conv_path out[9])
{
    int n = 0;
    out[n++] = (conv_path){TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST};
    /* before any cap below AVX-512 (it stays on oneDNN for good) */
    if (tg_testing_conv_winograd_ok()) out[n++] = (conv_path){TG_CONV_PATH_WINOGRAD, TG_CONV_ISA_BEST};
    for (int isa = TG_CONV_ISA_GENERIC; isa <= tg_testing_conv_isa_best(); isa++)
        out[n++] = (conv_path){TG_CONV_PATH_DIRECT, (tg_conv_isa)isa};
    out[n++] = (conv_path){TG_CONV_PATH_IM2COL, TG_CONV_ISA_BEST};
    if (tg_testing_conv_isa_best() >= TG_CONV_ISA_AVX2) out[n++] = (conv_path){TG_CONV_PATH_WINOGRAD_OWN, TG_CONV_ISA_BEST};
    if (tg_testing_conv_onednn_built()) out[n++] = (conv_path){TG_CONV_PATH_ONEDNN, TG_CONV_ISA_BEST};
    return n;
}

static char g_path_name[48] = "auto/best"; /* for messages */

static void use_path(conv_path p)
{
    cr_assert(tg_testing_conv_path(p.path, p.isa), "%s", tg_last_error());
    snprintf(g_path_name, sizeof g_path_name, "%s/%s", tg_testing_conv_path_name(p.path), tg_testing_conv_isa_name(p.isa));
}

Test(conv_paths, testing_interface_refuses_what_is_missing)
{
    cr_expect_eq(tg_testing_conv_path(TG_CONV_PATH_ONEDNN, TG_CONV_ISA_BEST), tg_testing_conv_onednn_built());
    cr_expect_eq(tg_testing_conv_path(TG_CONV_PATH_WINOGRAD, TG_CONV_ISA_BEST), tg_testing_conv_winograd_ok());
    if (tg_testing_conv_isa_best() >= TG_CONV_ISA_AVX2) { /* Winograd is AVX-512 only */
        cr_expect_not(tg_testing_conv_path(TG_CONV_PATH_WINOGRAD, TG_CONV_ISA_AVX2));
        cr_expect(strstr(tg_last_error(), "Winograd") != NULL, "%s", tg_last_error());
    }
    cr_expect(tg_testing_conv_path_parse("winograd", &(tg_conv_path){0}));
    /* our Winograd: any AVX2 CPU, not under a cap to the baseline kernels */
    cr_expect_eq(tg_testing_conv_path(TG_CONV_PATH_WINOGRAD_OWN, TG_CONV_ISA_BEST),
                 tg_testing_conv_isa_best() >= TG_CONV_ISA_AVX2);
    cr_expect_not(tg_testing_conv_path(TG_CONV_PATH_WINOGRAD_OWN, TG_CONV_ISA_GENERIC));
    cr_expect(strstr(tg_last_error(), "AVX2") != NULL, "%s", tg_last_error());
    tg_conv_path parsed = TG_CONV_PATH_AUTO;
    cr_expect(tg_testing_conv_path_parse("winograd-own", &parsed) && parsed == TG_CONV_PATH_WINOGRAD_OWN);
    cr_expect(tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST));
    if (tg_testing_conv_isa_best() < TG_CONV_ISA_AVX512) {
        cr_expect_not(tg_testing_conv_path(TG_CONV_PATH_DIRECT, TG_CONV_ISA_AVX512));
        cr_expect(strstr(tg_last_error(), "does not run avx512") != NULL, "%s", tg_last_error());
    }
    cr_expect_not(tg_testing_conv_path((tg_conv_path)7, TG_CONV_ISA_BEST));
    tg_conv_path p;
    tg_conv_isa i;
    cr_expect(tg_testing_conv_path_parse("im2col", &p) && p == TG_CONV_PATH_IM2COL);
    cr_expect(tg_testing_conv_isa_parse("avx2", &i) && i == TG_CONV_ISA_AVX2);
    cr_expect_not(tg_testing_conv_path_parse("fast", &p));
    cr_expect(tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST));
}

/* ---- golden values ---- */

static void fixture_cases(conv_path path);

Test(conv_fixture, outputs_and_gradients_match_torch)
{
    conv_path paths[9];
    const int n = conv_paths(paths);
    for (int k = 0; k < n; k++) fixture_cases(paths[k]);
    use_path(paths[0]);
}

static void fixture_cases(conv_path path)
{
    use_path(path);
    cJSON *root = tgt_json_load("nn_ops_conv.json");
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        tg_conv2d_opts o = {.groups = cJSON_GetObjectItem(c, "groups")->valueint};
        int_pair(c, "stride", o.stride);
        int_pair(c, "padding", o.padding);
        int_pair(c, "dilation", o.dilation);
        int_pair(c, "output_padding", o.output_padding);
        bool tr = cJSON_IsTrue(cJSON_GetObjectItem(c, "transposed"));
        tg_tensor *x = tg_tensor_set_requires_grad(tgt_json_tensor(cJSON_GetObjectItem(c, "x"), false), true);
        tg_tensor *w = tg_tensor_set_requires_grad(tgt_json_tensor(cJSON_GetObjectItem(c, "w"), false), true);
        const cJSON *jb = cJSON_GetObjectItem(c, "b");
        tg_tensor *b = cJSON_IsNull(jb) ? NULL : tg_tensor_set_requires_grad(tgt_json_tensor(jb, false), true);
        tg_tensor *y = tr ? tg_conv_transpose2d(x, w, b, o) : tg_conv2d(x, w, b, o);
        char what[160];
        snprintf(what, sizeof what, "%s (path %s, isa %s)", name, tg_testing_conv_path_name(path.path),
                 tg_testing_conv_isa_name(path.isa));
        tgt_expect_fixture_case(what, c, y, (tg_tensor *const[]){x, w, b}, (const char *const[]){"gx", "gw", "gb"},
                                3, 1e-4, 1e-4, 1e-4);
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_tensor_free(b);
        n_cases++;
    }
    cr_expect_geq(n_cases, 15);
    cJSON_Delete(root);
}

/* ---- gradient checks ---- */

typedef struct {
    tg_conv2d_opts o;
    bool transposed;
} conv_case;

static tg_tensor *conv_probe(tg_tensor *const *in, int n, void *ctx)
{
    const conv_case *cc = ctx;
    tg_tensor *b = n > 2 ? in[2] : NULL;
    tg_tensor *y = cc->transposed ? tg_conv_transpose2d(in[0], in[1], b, cc->o) : tg_conv2d(in[0], in[1], b, cc->o);
    return tgt_weighted_sum(y, 99);
}

static void check_conv(const char *what, conv_case cc, int64_t N, int64_t C, int64_t H, int64_t W, int64_t O,
                       int64_t kh, int64_t kw, bool bias)
{
    int g = cc.o.groups ? cc.o.groups : 1;
    tg_tensor *in[3];
    in[0] = randn(TG_SHAPE(N, C, H, W), 1);
    in[1] = cc.transposed ? randn(TG_SHAPE(C, O / g, kh, kw), 2) : randn(TG_SHAPE(O, C / g, kh, kw), 2);
    in[2] = bias ? randn(TG_SHAPE(O), 3) : NULL;
    char msg[160];
    snprintf(msg, sizeof msg, "%s (conv path %s)", what, g_path_name);
    tgt_expect_gradcheck(msg, conv_probe, &cc, in, bias ? 3 : 2, 1e-2, 2e-3, 1e-2);
    for (int k = 0; k < 3; k++) tg_tensor_free(in[k]);
}

/* On the automatic choice, im2col and oneDNN; the direct kernels of each instruction set are
 * checked against a double-precision reference in test_conv3x3 (keeps the sanitizer run short). */
Test(conv_gradcheck, conv2d_combinations)
{
    conv_path paths[9];
    const int n = conv_paths(paths);
    for (int k = 0; k < n; k++) {
        if (paths[k].path == TG_CONV_PATH_DIRECT) continue;
        use_path(paths[k]);
        check_conv("plain 3x3", (conv_case){.o = {.padding = {1, 1}}}, 2, 2, 5, 4, 3, 3, 3, true);
        check_conv("stride 2 odd size", (conv_case){.o = {.stride = {2, 2}, .padding = {1, 1}}}, 1, 2, 7, 6, 2, 3, 3, true);
        check_conv("dilation 2", (conv_case){.o = {.padding = {2, 1}, .dilation = {2, 1}}}, 1, 2, 6, 5, 2, 3, 3, false);
        check_conv("groups 2", (conv_case){.o = {.groups = 2, .stride = {1, 2}}}, 2, 4, 5, 6, 4, 2, 3, true);
        check_conv("pointwise", (conv_case){.transposed = false}, 2, 3, 3, 4, 2, 1, 1, true);
        check_conv("pointwise stride 2", (conv_case){.o = {.stride = {2, 2}}}, 1, 3, 5, 4, 2, 1, 1, true);
        check_conv("depthwise", (conv_case){.o = {.groups = 3, .padding = {1, 1}}}, 1, 3, 4, 4, 3, 3, 3, true);
    }
    use_path(paths[0]);
}

Test(conv_gradcheck, conv_transpose2d_combinations)
{
    check_conv("t plain", (conv_case){.transposed = true}, 2, 2, 3, 4, 3, 3, 3, true);
    check_conv("t stride 2 output_padding", (conv_case){.transposed = true, .o = {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 0}}},
               1, 2, 3, 3, 2, 3, 3, true);
    check_conv("t groups dilation", (conv_case){.transposed = true, .o = {.groups = 2, .dilation = {2, 1}, .padding = {1, 0}}}, 1, 4, 3, 3,
               2, 2, 2, false);
    check_conv("t pointwise", (conv_case){.transposed = true}, 2, 3, 2, 3, 2, 1, 1, true);
}

/* conv_transpose2d is the adjoint of conv2d: <conv(u), v> = <u, conv_t(v)> with the same weight. */
Test(conv_property, transpose_is_adjoint)
{
    tg_conv2d_opts o = {.stride = {2, 3}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2};
    tg_tensor *u = randn(TG_SHAPE(2, 4, 9, 11), 5), *w = randn(TG_SHAPE(6, 2, 3, 3), 6);
    tg_tensor *cu = tg_conv2d(u, w, NULL, o);
    cr_assert_not_null(cu, "%s", tg_last_error());
    tg_tensor *v = randn(cu->ndim, cu->shape, 7);
    tg_tensor *tv = tg_conv_transpose2d(v, w, NULL, (tg_conv2d_opts){.stride = {2, 3}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2, .output_padding = {0, 1}});
    cr_assert_not_null(tv, "%s", tg_last_error());
    cr_assert(tg_tensor_same_shape(tv, u));
    double a = 0, b = 0;
    for (int64_t i = 0; i < cu->numel; i++) a += (double)cu->data[i] * v->data[i];
    for (int64_t i = 0; i < u->numel; i++) b += (double)u->data[i] * tv->data[i];
    cr_expect(fabs(a - b) <= 1e-4 * fabs(a) + 1e-3, "<conv u, v> = %f but <u, conv_t v> = %f", a, b);
    tg_tape_clear();
    tg_tensor_free(u);
    tg_tensor_free(w);
    tg_tensor_free(v);
}

/* ---- errors ---- */

static void expect_error(tg_tensor *y, tg_status st, const char *a, const char *b)
{
    cr_expect_null(y);
    cr_expect_eq(tg_last_status(), st, "status %d: %s", tg_last_status(), tg_last_error());
    cr_expect(strstr(tg_last_error(), a) != NULL, "'%s' not in: %s", a, tg_last_error());
    if (b) cr_expect(strstr(tg_last_error(), b) != NULL, "'%s' not in: %s", b, tg_last_error());
}

Test(conv_errors, clear_messages)
{
    tg_tensor *x = tg_tensor_zeros(TG_SHAPE(2, 3, 8, 8));
    tg_tensor *w = tg_tensor_zeros(TG_SHAPE(4, 2, 3, 3));
    expect_error(tg_conv2d(x, w, NULL, (tg_conv2d_opts){0}), TG_ERR_SHAPE, "(2, 3, 8, 8)", "(4, 2, 3, 3)");
    expect_error(tg_conv2d(x, w, NULL, (tg_conv2d_opts){.groups = 2}), TG_ERR_SHAPE, "groups=2", "3");
    tg_tensor *w4 = tg_tensor_zeros(TG_SHAPE(4, 3, 9, 3));
    expect_error(tg_conv2d(x, w4, NULL, (tg_conv2d_opts){0}), TG_ERR_SHAPE, "larger than the padded input", "(8, 8)");
    cr_expect_not_null(tg_conv2d(x, w4, NULL, (tg_conv2d_opts){.padding = {1, 0}}), "%s", tg_last_error());
    expect_error(tg_conv2d(x, w4, NULL, (tg_conv2d_opts){.dilation = {1, 4}}), TG_ERR_SHAPE, "dilated", NULL);
    tg_tensor *b = tg_tensor_zeros(TG_SHAPE(5));
    expect_error(tg_conv2d(x, w4, b, (tg_conv2d_opts){.padding = {1, 0}}), TG_ERR_SHAPE, "bias", "(5,)");
    expect_error(tg_conv2d(x, w4, NULL, (tg_conv2d_opts){.stride = {-1, 1}}), TG_ERR_ARG, "stride", NULL);
    expect_error(tg_conv2d(x, w4, NULL, (tg_conv2d_opts){.padding = {-1, 0}}), TG_ERR_ARG, "padding", NULL);
    expect_error(tg_conv2d(x, w4, NULL, (tg_conv2d_opts){.output_padding = {1, 0}}), TG_ERR_ARG, "output_padding", NULL);
    tg_tensor *x3 = tg_tensor_zeros(TG_SHAPE(3, 8, 8));
    expect_error(tg_conv2d(x3, w4, NULL, (tg_conv2d_opts){0}), TG_ERR_SHAPE, "x must have 4 dimensions", NULL);
    /* transposed: weight (Cin, Cout/groups, kh, kw) */
    expect_error(tg_conv_transpose2d(x, w, NULL, (tg_conv2d_opts){0}), TG_ERR_SHAPE, "(2, 3, 8, 8)", "(4, 2, 3, 3)");
    tg_tensor *wt = tg_tensor_zeros(TG_SHAPE(3, 2, 3, 3));
    expect_error(tg_conv_transpose2d(x, wt, NULL, (tg_conv2d_opts){.stride = {2, 2}, .output_padding = {2, 0}}),
                 TG_ERR_ARG, "output_padding", NULL);
    expect_error(tg_conv_transpose2d(x, wt, NULL, (tg_conv2d_opts){.groups = 2}), TG_ERR_SHAPE, "groups=2", NULL);
    /* a NULL input keeps the earlier error */
    tg_error(TG_ERR_VALUE, "earlier failure");
    cr_expect_null(tg_conv2d(NULL, w, NULL, (tg_conv2d_opts){0}));
    cr_expect(strstr(tg_last_error(), "earlier failure") != NULL, "%s", tg_last_error());
    tg_tape_clear();
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(w4);
    tg_tensor_free(b);
    tg_tensor_free(x3);
    tg_tensor_free(wt);
}
