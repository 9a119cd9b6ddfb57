/* Forward+backward time of the UNet's layer shapes (base width 16, crop 256, batch 4), max pool
 * and bilinear upsampling, beside raw sgemm GFLOP/s for the same GEMM sizes.
 * Output lines: "name ms gflops sgemm_gflops" (bench/conv_torch.py reads them).
 * Usage: bench_conv [reps] [isa] [path]
 *   isa   best (default), avx2 or generic: cap the conv kernels' instruction set (and oneDNN's),
 *         e.g. avx2 with OPENBLAS_CORETYPE=Haswell emulates an AVX2-only CPU on an AVX-512 one
 *   path  auto (default), direct, im2col, onednn or winograd: force one kernel path (ops/conv_testing.h) */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops/conv_testing.h"
#include "tapegrad.h"

typedef struct {
    const char *name;
    int cin, cout, k, hw;
} layer;

static double now(void) { return omp_get_wtime(); }

static double time_sgemm(int M, int N, int K, int reps)
{
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)K * N, 4), *c = calloc((size_t)M * N, 4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, a, K, b, N, 0, c, N);
    double t = now();
    for (int r = 0; r < reps; r++) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, a, K, b, N, 0, c, N);
    t = (now() - t) / reps;
    free(a), free(b), free(c);
    return 2.0 * M * N * K / t * 1e-9;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 3;
    tg_conv_isa isa = TG_CONV_ISA_BEST;
    tg_conv_path path = TG_CONV_PATH_AUTO;
    if (reps < 1 || (argc > 2 && !tg_testing_conv_isa_parse(argv[2], &isa)) ||
        (argc > 3 && !tg_testing_conv_path_parse(argv[3], &path))) {
        fprintf(stderr, "usage: bench_conv [reps >= 1] [best|avx512|avx2|generic] [auto|direct|im2col|onednn|winograd]\n");
        return 2;
    }
    if (!tg_testing_conv_path(path, isa)) {
        fprintf(stderr, "bench_conv: %s\n", tg_last_error());
        return 2;
    }
    tg_set_num_threads(2);
    printf("# blas core %s, threads %d, reps %d, conv isa %s (cpu: %s), path %s, oneDNN %s\n", tg_blas_core(),
           tg_get_num_threads(), reps, tg_testing_conv_isa_name(isa), tg_testing_conv_isa_name(tg_testing_conv_isa_best()),
           tg_testing_conv_path_name(path), tg_testing_conv_onednn_built() ? "built" : "not built");
    const layer L[] = {{"conv3x3_3to16_256", 3, 16, 3, 256},    {"conv3x3_16to16_256", 16, 16, 3, 256},
                       {"conv3x3_32to32_128", 32, 32, 3, 128},  {"conv3x3_64to64_64", 64, 64, 3, 64},
                       {"conv3x3_128to128_32", 128, 128, 3, 32}, {"conv3x3_256to64_32", 256, 64, 3, 32},
                       {"conv1x1_16to2_256", 16, 2, 1, 256}};
    const int B = 4;
    tg_rng r;
    tg_rng_seed(&r, 1);
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        const layer *l = &L[i];
        tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(B, l->cin, l->hw, l->hw), &r), true);
        tg_tensor *w = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(l->cout, l->cin, l->k, l->k), &r), true);
        tg_tensor *b = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(l->cout), &r), true);
        tg_tensor *gy = tg_tensor_ones(TG_SHAPE(B, l->cout, l->hw, l->hw));
        tg_conv2d_opts o = {.padding = {l->k / 2, l->k / 2}};
        double best = 1e9;
        for (int rep = 0; rep <= reps; rep++) { /* rep 0 warms the arena up */
            double t = now();
            tg_tensor *y = tg_conv2d(x, w, b, o);
            if (!y || tg_backward_with(y, gy) != TG_OK) {
                fprintf(stderr, "%s\n", tg_last_error());
                return 1;
            }
            tg_tape_clear();
            t = now() - t;
            if (rep && t < best) best = t;
        }
        double flops = 3.0 * 2.0 * B * l->cout * (double)l->hw * l->hw * l->cin * l->k * l->k;
        double g = time_sgemm(l->cout, l->hw * l->hw, l->cin * l->k * l->k, reps);
        printf("%s %.3f %.2f %.2f\n", l->name, best * 1e3, flops / best * 1e-9, g);
        tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b), tg_tensor_free(gy);
    }
    /* max pool 2x2 on (4,16,256,256) and bilinear x2 (align_corners=True) on (4,16,128,128) */
    for (int which = 0; which < 2; which++) {
        int hw = which == 0 ? 256 : 128;
        tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(B, 16, hw, hw), &r), true);
        int oh = which == 0 ? hw / 2 : hw * 2;
        tg_tensor *gy = tg_tensor_ones(TG_SHAPE(B, 16, oh, oh));
        double best = 1e9;
        for (int rep = 0; rep <= reps; rep++) {
            double t = now();
            tg_tensor *y = which == 0 ? tg_max_pool2d(x, (tg_pool2d_opts){.kernel = {2, 2}})
                                      : tg_upsample_bilinear2d(x, (tg_upsample_opts){.scale = {2, 2}, .align_corners = true});
            if (!y || tg_backward_with(y, gy) != TG_OK) return 1;
            tg_tape_clear();
            t = now() - t;
            if (rep && t < best) best = t;
        }
        printf("%s %.3f 0 0\n", which == 0 ? "maxpool2x2_16_256" : "upsample_bilinear_x2_16_128", best * 1e3);
        tg_tensor_free(x), tg_tensor_free(gy);
    }
    return 0;
}
