/* The direct 3x3 kernels (ops/conv3x3.c: stride 1, padding 1, one group) in every instruction-set
 * variant this CPU runs, against a double-precision reference convolution, forward and backward,
 * on sizes that are not multiples of the vector or channel blocks; and the im2col path on the same
 * data. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_internal.h"
#include "ops/conv_internal.h"
#include "ops/conv_testing.h"
#include "tapegrad.h"
#include "test_support.h"

/* y, dx, dw from the definitions, in double. */
static void reference(const float *x, const float *w, const float *b, const float *gy, int N, int C, int O, int H,
                      int W, double *y, double *dx, double *dw)
{
    for (int i = 0; i < N * O * H * W; i++) y[i] = b[i / (H * W) % O];
    for (int i = 0; i < N * C * H * W; i++) dx[i] = 0;
    for (int i = 0; i < O * C * 9; i++) dw[i] = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++)
            for (int h = 0; h < H; h++)
                for (int v = 0; v < W; v++) {
                    const int yi = ((n * O + o) * H + h) * W + v;
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                const int ih = h + ki - 1, iw = v + kj - 1;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                const int xi = ((n * C + c) * H + ih) * W + iw, wi = ((o * C + c) * 3 + ki) * 3 + kj;
                                y[yi] += (double)x[xi] * w[wi];
                                dx[xi] += (double)gy[yi] * w[wi];
                                dw[wi] += (double)gy[yi] * x[xi];
                            }
                }
}

static void expect_close(const char *what, const float *got, const double *want, int n, double scale, int isa,
                         int C, int O, int H, int W)
{
    double worst = 0;
    int at = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / (scale + fabs(want[i]));
        if (e > worst) worst = e, at = i;
    }
    cr_expect_lt(worst, 2e-5, "%s (isa %d, C %d O %d, %dx%d): element %d is %.7g, reference %.7g", what, isa, C, O, H,
                 W, at, (double)got[at], want[at]);
}

enum { PASS_ALL, PASS_IM2COL, PASS_WINOGRAD, PASS_WINOGRAD_OWN };

static void check_shape(int N, int C, int O, int H, int W, int mode)
{
    tg_rng r;
    tg_rng_seed(&r, (uint64_t)(C * 1000 + O * 100 + H * 10 + W));
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(N, C, H, W), &r), true);
    tg_tensor *w = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(O, C, 3, 3), &r), true);
    tg_tensor *b = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(O), &r), true);
    tg_tensor *gy = tg_tensor_randn(TG_SHAPE(N, O, H, W), &r);
    double *y = malloc(sizeof(double) * (size_t)(N * O * H * W)), *dx = malloc(sizeof(double) * (size_t)(N * C * H * W)),
           *dw = malloc(sizeof(double) * (size_t)(O * C * 9));
    reference(x->data, w->data, b->data, gy->data, N, C, O, H, W, y, dx, dw);
    /* passes: the direct kernels on each instruction set, then oneDNN (if built); or only im2col;
     * or only oneDNN's Winograd (its own test: a cap below AVX-512 stays on oneDNN for good) */
    const int best = tg_testing_conv_isa_best(), last = best + (mode == PASS_ALL && tg_testing_conv_onednn_built());
    /* tapegrad's Winograd: its 16-lane kernels on AVX-512, then its 8-lane ones under the AVX2 cap */
    const int first = mode == PASS_WINOGRAD_OWN ? TG_CONV_ISA_AVX2 : mode != PASS_ALL ? best : 0;
    for (int isa = first; isa <= last; isa++) {
        const tg_conv_path path = mode == PASS_IM2COL     ? TG_CONV_PATH_IM2COL
                                  : mode == PASS_WINOGRAD ? TG_CONV_PATH_WINOGRAD
                                  : mode == PASS_WINOGRAD_OWN ? TG_CONV_PATH_WINOGRAD_OWN
                                  : isa > best            ? TG_CONV_PATH_ONEDNN
                                                          : TG_CONV_PATH_DIRECT;
        cr_assert(tg_testing_conv_path(path, isa > best ? TG_CONV_ISA_BEST : (tg_conv_isa)isa), "%s", tg_last_error());
        /* dx starts non-zero: backward must add to it; on the best instruction set also from no
         * buffer at all (the kernels write a fresh gradient instead of adding to zeros) */
        const bool fresh = isa == best && mode != PASS_IM2COL;
        tg_grad(x), tg_grad(w), tg_grad(b); /* allocates the leaf gradients */
        tg_tensor_zero_grad(w), tg_tensor_zero_grad(b);
        cr_assert(x->grad && w->grad);
        for (int64_t i = 0; i < x->numel; i++) x->grad[i] = 1.0f;
        if (fresh) {
            tg_free(x->grad);
            x->grad = NULL;
        }
        tg_tensor *out = tg_conv2d(x, w, b, (tg_conv2d_opts){.padding = {1, 1}});
        cr_assert_not_null(out, "%s", tg_last_error());
        cr_assert_eq(tg_backward_with(out, gy), TG_OK, "%s", tg_last_error());
        const double sy = 3.0 * sqrt(C * 9.0), sg = 3.0 * sqrt(O * 9.0), sw = 3.0 * sqrt((double)N * H * W);
        expect_close("forward", out->data, y, N * O * H * W, sy, isa, C, O, H, W);
        cr_assert_not_null(x->grad);
        for (int64_t i = 0; i < x->numel && !fresh; i++) x->grad[i] -= 1.0f;
        expect_close("input gradient", x->grad, dx, N * C * H * W, sg, isa, C, O, H, W);
        expect_close("weight gradient", w->grad, dw, O * C * 9, sw, isa, C, O, H, W);
        double *db = calloc((size_t)O, sizeof(double));
        for (int i = 0; i < N * O * H * W; i++) db[i / (H * W) % O] += gy->data[i];
        expect_close("bias gradient", b->grad, db, O, sw, isa, C, O, H, W);
        free(db);
        tg_tape_clear();
    }
    cr_assert(tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST));
    free(y), free(dx), free(dw);
    tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b), tg_tensor_free(gy);
}

/* channel counts around the register blocks (4, 8, 16) and the kernels' thresholds (channels
 * in the lanes from 8 inputs and one vector of outputs), widths around the vectors and the
 * in-register transposes (4, 8, 16, 32), row counts around the bands */
static const int shapes[][5] = {{1, 1, 1, 1, 1},    {2, 3, 5, 7, 9},    {1, 4, 8, 16, 16},  {2, 9, 3, 13, 31},
                                    {1, 16, 17, 6, 33}, {1, 5, 2, 1, 40},   {1, 2, 11, 37, 1},  {2, 7, 12, 20, 18},
                                    {1, 33, 4, 9, 10},  {2, 48, 49, 5, 7},  {2, 20, 40, 11, 45}, {1, 64, 32, 3, 17},
                                    {1, 8, 16, 41, 2},  {3, 17, 8, 19, 64}, {1, 9, 17, 1, 1},   {2, 16, 16, 1, 40},
                                    {1, 16, 32, 50, 1}};

Test(conv3x3, direct_kernels_match_the_definition)
{
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int *s = shapes[k];
        check_shape(s[0], s[1], s[2], s[3], s[4], PASS_ALL);
    }
}

/* oneDNN's Winograd F(4x4,3x3) (forward and input gradient; the weight gradient stays on the
 * direct kernels) on the same shapes and a few of the UNet's channel counts, same tolerance. */
Test(conv3x3, winograd_matches_the_definition)
{
    if (!tg_testing_conv_winograd_ok()) cr_skip_test("no oneDNN or no AVX-512 here");
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int *s = shapes[k];
        check_shape(s[0], s[1], s[2], s[3], s[4], PASS_WINOGRAD);
    }
    check_shape(2, 64, 32, 12, 12, PASS_WINOGRAD);
    check_shape(1, 128, 128, 8, 8, PASS_WINOGRAD);
}

/* tapegrad's Winograd F(4x4,3x3) (ops/conv_winograd.c: forward, input and weight gradient; 8
 * lanes, and 16 on an AVX-512 CPU, then again capped at AVX2's 8) on the
 * same shapes (partial tiles, channel counts around the vector of 8 and the 6-row register
 * blocks, units cut across rows and columns) and the UNet's channel counts, same tolerance. */
Test(conv3x3, own_winograd_matches_the_definition)
{
    if (tg_testing_conv_isa_best() < TG_CONV_ISA_AVX2) cr_skip_test("no AVX2 here");
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int *s = shapes[k];
        check_shape(s[0], s[1], s[2], s[3], s[4], PASS_WINOGRAD_OWN);
    }
    check_shape(2, 64, 32, 12, 12, PASS_WINOGRAD_OWN);
    check_shape(1, 128, 128, 8, 8, PASS_WINOGRAD_OWN);
    check_shape(1, 16, 16, 9, 130, PASS_WINOGRAD_OWN);
    check_shape(1, 8, 8, 73, 70, PASS_WINOGRAD_OWN);
}

/* Its 8- and 16-lane kernels sum the same terms in the same order (the cut into units counts
 * channels in 8s either way): an AVX2 and an AVX-512 machine compute the same bits. */
Test(conv3x3, own_winograd_gives_the_same_bits_with_8_and_16_lanes)
{
    if (tg_testing_conv_isa_best() < TG_CONV_ISA_AVX512) cr_skip_test("no AVX-512 here");
    static const int shapes[][4] = {{2, 16, 16, 40}, {1, 24, 40, 19}, {2, 64, 32, 12}, {1, 9, 17, 70}};
    tg_rng r;
    tg_rng_seed(&r, 45);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int N = shapes[k][0], C = shapes[k][1], O = shapes[k][2], HW = shapes[k][3];
        tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(N, C, HW, HW), &r), true);
        tg_tensor *w = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(O, C, 3, 3), &r), true);
        tg_tensor *gy = tg_tensor_randn(TG_SHAPE(N, O, HW, HW), &r);
        float *got[2][3];
        for (int pass = 0; pass < 2; pass++) {
            cr_assert(tg_testing_conv_path(TG_CONV_PATH_WINOGRAD_OWN, pass ? TG_CONV_ISA_AVX2 : TG_CONV_ISA_BEST));
            tg_tensor *y = tg_conv2d(x, w, NULL, (tg_conv2d_opts){.padding = {1, 1}});
            cr_assert_not_null(y, "%s", tg_last_error());
            cr_assert_eq(tg_backward_with(y, gy), TG_OK, "%s", tg_last_error());
            const float *src[3] = {y->data, x->grad, w->grad};
            const int64_t n[3] = {y->numel, x->numel, w->numel};
            for (int j = 0; j < 3; j++) {
                got[pass][j] = malloc(sizeof(float) * (size_t)n[j]);
                memcpy(got[pass][j], src[j], sizeof(float) * (size_t)n[j]);
                if (pass) {
                    cr_expect_eq(memcmp(got[0][j], got[1][j], sizeof(float) * (size_t)n[j]), 0,
                                 "%s differs between 16 and 8 lanes (%d -> %d @%d, batch %d)",
                                 j == 0 ? "output" : j == 1 ? "dx" : "dw", C, O, HW, N);
                    free(got[0][j]), free(got[1][j]);
                }
            }
            tg_tape_clear();
            tg_tensor_zero_grad(x), tg_tensor_zero_grad(w);
        }
        tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(gy);
    }
    cr_assert(tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST));
}

Test(conv3x3, im2col_path_matches_the_definition_too)
{
    check_shape(2, 9, 3, 13, 31, PASS_IM2COL);
    check_shape(1, 16, 17, 6, 33, PASS_IM2COL);
}

Test(conv3x3, odd_drive_sizes_through_both_paths)
{
    check_shape(1, 8, 8, 73, 70, PASS_ALL);
    check_shape(1, 8, 8, 73, 70, PASS_IM2COL);
    if (tg_testing_conv_winograd_ok()) check_shape(1, 8, 8, 73, 70, PASS_WINOGRAD);
}

static void check_thread_independence(tg_rng *r, int C, int isa);
static void check_threads(tg_rng *r, int64_t N, int C, int64_t O, int64_t HW, int isa);

/* Same numbers whatever the thread count: the weight gradient's partial sums are per fixed
 * band of rows, not per thread (both weight-gradient kernels: 8 and 16 input channels), and the
 * automatic choice of kernel path on every instruction set (oneDNN only where it keeps this). */
Test(conv3x3, results_do_not_depend_on_the_thread_count)
{
    tg_rng r;
    tg_rng_seed(&r, 42);
    for (int isa = TG_CONV_ISA_GENERIC; isa <= tg_testing_conv_isa_best(); isa++) {
        cr_assert(tg_testing_conv_path(TG_CONV_PATH_AUTO, (tg_conv_isa)isa));
        for (int C = 4; C <= 64; C *= 4) check_thread_independence(&r, C, isa);
    }
    cr_assert(tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST));
}

/* oneDNN's Winograd picks its schedule from the thread count unless told otherwise
 * (ops/conv_onednn.c): at these shapes and batch 4 the forward (128 -> 64 @32) and the input
 * gradient (64 -> 128 @32) gave other bits at 1 and 2 threads before the fix. The automatic
 * choice (which takes Winograd from 32 channels on AVX-512) on the same shapes. */
Test(conv3x3, winograd_results_do_not_depend_on_the_thread_count)
{
    if (!tg_testing_conv_winograd_ok()) cr_skip_test("no oneDNN or no AVX-512 here");
    tg_rng r;
    tg_rng_seed(&r, 43);
    for (int pass = 0; pass < 2; pass++) {
        cr_assert(tg_testing_conv_path(pass ? TG_CONV_PATH_AUTO : TG_CONV_PATH_WINOGRAD, TG_CONV_ISA_BEST));
        check_threads(&r, 4, 128, 64, 32, pass);
        check_threads(&r, 4, 64, 128, 32, pass);
        check_threads(&r, 2, 64, 64, 16, pass);
    }
    cr_assert(tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST));
}

/* An image gives the same bits alone as in a batch (data-parallel ranks with fewer images per
 * rank match one process): oneDNN's Winograd blocks its channel sum by the call's tile count, so
 * conv2d runs it one image per call. Forward and input gradient of each image of a batch of 3
 * against the image alone, Winograd forced and automatic (192 -> 32 @12 forward and 32 -> 192 @12
 * input gradient differed when the batch went through in one call). */
Test(conv3x3, winograd_results_do_not_depend_on_the_batch)
{
    if (!tg_testing_conv_winograd_ok()) cr_skip_test("no oneDNN or no AVX-512 here");
    static const int shapes[][3] = {{192, 32, 12}, {32, 192, 12}, {64, 64, 32}, {48, 40, 20}};
    tg_rng r;
    tg_rng_seed(&r, 44);
    for (int pass = 0; pass < 2; pass++) {
        cr_assert(tg_testing_conv_path(pass ? TG_CONV_PATH_AUTO : TG_CONV_PATH_WINOGRAD, TG_CONV_ISA_BEST));
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            const int C = shapes[k][0], O = shapes[k][1], HW = shapes[k][2];
            tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(3, C, HW, HW), &r), true);
            tg_tensor *w = tg_tensor_randn(TG_SHAPE(O, C, 3, 3), &r);
            tg_tensor *gy = tg_tensor_randn(TG_SHAPE(3, O, HW, HW), &r);
            tg_tensor *y = tg_conv2d(x, w, NULL, (tg_conv2d_opts){.padding = {1, 1}});
            cr_assert_not_null(y, "%s", tg_last_error());
            cr_assert_eq(tg_backward_with(y, gy), TG_OK, "%s", tg_last_error());
            const int64_t ny = (int64_t)O * HW * HW, nx = (int64_t)C * HW * HW;
            float *ys = malloc(sizeof(float) * (size_t)(3 * ny)), *dxs = malloc(sizeof(float) * (size_t)(3 * nx));
            memcpy(ys, y->data, sizeof(float) * (size_t)(3 * ny));
            memcpy(dxs, x->grad, sizeof(float) * (size_t)(3 * nx));
            tg_tape_clear();
            for (int i = 0; i < 3; i++) {
                tg_tensor *xi = tg_tensor_set_requires_grad(tg_tensor_from_data(TG_SHAPE(1, C, HW, HW), x->data + i * nx), true);
                tg_tensor *gi = tg_tensor_from_data(TG_SHAPE(1, O, HW, HW), gy->data + i * ny);
                tg_tensor *yi = tg_conv2d(xi, w, NULL, (tg_conv2d_opts){.padding = {1, 1}});
                cr_assert_not_null(yi, "%s", tg_last_error());
                cr_assert_eq(tg_backward_with(yi, gi), TG_OK, "%s", tg_last_error());
                cr_expect_eq(memcmp(yi->data, ys + i * ny, sizeof(float) * (size_t)ny), 0,
                             "output of image %d differs alone and in the batch (%d -> %d @%d, pass %d)", i, C, O, HW, pass);
                cr_expect_eq(memcmp(xi->grad, dxs + i * nx, sizeof(float) * (size_t)nx), 0,
                             "dx of image %d differs alone and in the batch (%d -> %d @%d, pass %d)", i, C, O, HW, pass);
                tg_tape_clear();
                tg_tensor_free(xi), tg_tensor_free(gi);
            }
            free(ys), free(dxs);
            tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(gy);
        }
    }
    cr_assert(tg_testing_conv_path(TG_CONV_PATH_AUTO, TG_CONV_ISA_BEST));
}

static void check_thread_independence(tg_rng *r, int C, int isa)
{
    check_threads(r, 2, C, C > 16 ? 64 : 24, C > 16 ? 16 : 64, isa);
}

static void check_threads(tg_rng *r, int64_t N, int C, int64_t O, int64_t HW, int isa)
{
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(N, C, HW, HW), r), true);
    tg_tensor *w = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(O, C, 3, 3), r), true);
    tg_tensor *b = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(O), r), true);
    float *saved[2][4];
    for (int run = 0; run < 2; run++) {
        tg_set_num_threads(run == 0 ? 1 : 2);
        tg_testing_conv_forget_primitives(); /* oneDNN's are created anew at this thread count */
        tg_tensor_zero_grad(x), tg_tensor_zero_grad(w), tg_tensor_zero_grad(b);
        tg_tensor *y = tg_conv2d(x, w, b, (tg_conv2d_opts){.padding = {1, 1}});
        cr_assert_not_null(y, "%s", tg_last_error());
        cr_assert_eq(tg_backward(tgt_weighted_sum(y, 7)), TG_OK, "%s", tg_last_error());
        const float *data[4] = {y->data, x->grad, w->grad, b->grad};
        const int64_t n[4] = {y->numel, x->numel, w->numel, b->numel};
        for (int k = 0; k < 4; k++) {
            saved[run][k] = malloc(sizeof(float) * (size_t)n[k]);
            memcpy(saved[run][k], data[k], sizeof(float) * (size_t)n[k]);
        }
        tg_tape_clear();
        if (run == 1)
            for (int k = 0; k < 4; k++) {
                cr_expect_eq(memcmp(saved[0][k], saved[1][k], sizeof(float) * (size_t)n[k]), 0,
                             "%s differs between 1 and 2 threads (%d -> %d channels @%d, isa/pass %d)",
                             (const char *[]){"output", "dx", "dw", "db"}[k], C, (int)O, (int)HW, isa);
                free(saved[0][k]), free(saved[1][k]);
            }
    }
    tg_set_num_threads(0);
    tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b);
}
