/* GFLOP/s of tg_matmul against raw cblas_sgemm on square n x n matrices.
 *
 * forward:          tg_matmul (+ tg_tape_clear)  vs  one sgemm
 * forward+backward: tg_matmul, tg_backward_with, tg_tape_clear  vs  three sgemms
 *                   (C = A.B, dA += dC.B^T, dB += A^T.dC)
 * The two sides alternate sample by sample so machine noise hits both; each
 * sample times `reps` calls; the best and the median sample are reported.
 * Usage: bench_matmul [samples]   (OPENBLAS_CORETYPE=SkylakeX picks the AVX-512 kernels)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tapegrad.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int n;
    tg_tensor *a, *b, *gout;
    float *c, *da, *db;
} bench_data;

static void raw_forward(bench_data *d)
{
    const int n = d->n;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, d->a->data, n, d->b->data, n, 0.0f, d->c, n);
}

static void raw_forward_backward(bench_data *d)
{
    const int n = d->n;
    const float *dc = d->gout->data;
    raw_forward(d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, dc, n, d->b->data, n, 1.0f, d->da, n);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0f, d->a->data, n, dc, n, 1.0f, d->db, n);
}

static void tg_forward(bench_data *d)
{
    tg_tensor *c = tg_matmul(d->a, d->b);
    if (!c) {
        fprintf(stderr, "tg_matmul failed: %s\n", tg_last_error());
        exit(1);
    }
    tg_tape_clear();
}

static void tg_forward_backward(bench_data *d)
{
    tg_tensor *c = tg_matmul(d->a, d->b);
    if (!c || tg_backward_with(c, d->gout) != TG_OK) {
        fprintf(stderr, "tg_matmul backward failed: %s\n", tg_last_error());
        exit(1);
    }
    tg_tape_clear();
}

typedef void (*bench_fn)(bench_data *);

/* Alternates raw and tapegrad samples; fills best/median GFLOP/s for both. */
static void measure(bench_data *d, bench_fn raw, bench_fn tg, double flops, int reps, int samples, double *raw_best,
                    double *raw_med, double *tg_best, double *tg_med)
{
    double *tr = malloc(sizeof(double) * samples), *tt = malloc(sizeof(double) * samples);
    raw(d); /* warm-up: threads, arena, caches */
    tg(d);
    for (int s = 0; s < samples; s++) {
        for (int side = 0; side < 2; side++) {
            bench_fn f = (side ^ (s & 1)) ? tg : raw; /* alternate which side goes first */
            double t0 = now();
            for (int r = 0; r < reps; r++) f(d);
            double t = (now() - t0) / reps;
            if (f == raw) tr[s] = t;
            else tt[s] = t;
        }
    }
    qsort(tr, samples, sizeof(double), cmp_double);
    qsort(tt, samples, sizeof(double), cmp_double);
    *raw_best = flops / tr[0] * 1e-9;
    *raw_med = flops / tr[samples / 2] * 1e-9;
    *tg_best = flops / tt[0] * 1e-9;
    *tg_med = flops / tt[samples / 2] * 1e-9;
    free(tr);
    free(tt);
}

int main(int argc, char **argv)
{
    int samples = argc > 1 ? atoi(argv[1]) : 7;
    if (samples < 1) samples = 1;
    printf("OpenBLAS core: %s\n", tg_blas_core());
    printf("OpenBLAS config: %s\n", tg_blas_config());
    printf("threads: %d; %d alternating samples per figure (best / median GFLOP/s)\n\n", tg_get_num_threads(),
           samples);
    printf("%6s  %-10s %17s %17s  %12s\n", "n", "pass", "raw sgemm", "tapegrad", "tg/raw best");
    const int sizes[] = {256, 1024, 2048};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int n = sizes[k];
        tg_rng rng;
        tg_rng_seed(&rng, 1);
        bench_data d = {.n = n};
        d.a = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(n, n), &rng), true);
        d.b = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(n, n), &rng), true);
        d.gout = tg_tensor_randn(TG_SHAPE(n, n), &rng);
        d.c = calloc((size_t)n * n, sizeof(float));
        d.da = calloc((size_t)n * n, sizeof(float));
        d.db = calloc((size_t)n * n, sizeof(float));
        if (!d.a || !d.b || !d.gout || !d.c || !d.da || !d.db) {
            fprintf(stderr, "out of memory at n=%d\n", n);
            return 1;
        }
        const double flops = 2.0 * n * n * n;
        const int reps = n <= 256 ? 40 : n <= 1024 ? 3 : 1;
        double rb, rm, tb, tm;
        measure(&d, raw_forward, tg_forward, flops, reps, samples, &rb, &rm, &tb, &tm);
        printf("%6d  %-10s %8.1f / %6.1f %8.1f / %6.1f  %12.3f\n", n, "forward", rb, rm, tb, tm, tb / rb);
        measure(&d, raw_forward_backward, tg_forward_backward, 3 * flops, reps, samples, &rb, &rm, &tb, &tm);
        printf("%6d  %-10s %8.1f / %6.1f %8.1f / %6.1f  %12.3f\n", n, "fwd+bwd", rb, rm, tb, tm, tb / rb);
        fflush(stdout);
        tg_tensor_free(d.a);
        tg_tensor_free(d.b);
        tg_tensor_free(d.gout);
        free(d.c);
        free(d.da);
        free(d.db);
    }
    return 0;
}
