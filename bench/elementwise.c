/* Elementwise throughput in GB/s beside memcpy of the same size, for 1 and 2
 * threads. Bytes counted = bytes read + bytes written once (add: 2 inputs + 1
 * output; unary and softmax: 1 input + 1 output; memcpy: 1 read + 1 write).
 * Each figure is the best of several repetitions; forward only, grad off.
 *
 * Usage: build/bin/bench_elementwise [max_mb]   (default 256)
 */
#include <omp.h>
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

/* memcpy split across the current thread count, as the ops split their loops. */
static void par_memcpy(float *dst, const float *src, int64_t n)
{
#pragma omp parallel
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t per = (n + nt - 1) / nt, a = t * per, b = a + per < n ? a + per : n;
        if (a < b) memcpy(dst + a, src + a, (size_t)(b - a) * sizeof(float));
    }
}

enum { B_MEMCPY, B_ADD, B_MUL, B_BIAS, B_RELU, B_SIGMOID, B_SOFTMAX1, B_SUM, B_COUNT };
static const char *NAMES[B_COUNT] = {"memcpy", "add", "mul", "add (C,1,1) bias", "relu", "sigmoid",
                                     "softmax dim 1", "sum_all"};

typedef struct {
    tg_tensor *a, *b, *bias, *x4;
    float *dst;
} bench_data;

static double run_once(int op, bench_data *d)
{
    double t0 = now();
    switch (op) {
    case B_MEMCPY: par_memcpy(d->dst, d->a->data, d->a->numel); break;
    case B_ADD: tg_add(d->a, d->b); break;
    case B_MUL: tg_mul(d->a, d->b); break;
    case B_BIAS: tg_add(d->x4, d->bias); break;
    case B_RELU: tg_relu(d->a); break;
    case B_SIGMOID: tg_sigmoid(d->a); break;
    case B_SOFTMAX1: tg_softmax(d->x4, 1); break;
    case B_SUM: tg_sum_all(d->a); break;
    }
    double t = now() - t0;
    tg_tape_clear();
    return t;
}

static double bytes_moved(int op, int64_t n)
{
    double s = (double)n * sizeof(float);
    switch (op) {
    case B_ADD:
    case B_MUL: return 3 * s;
    case B_SUM: return s;
    default: return 2 * s; /* bias: the (C,1,1) operand is negligible */
    }
}

int main(int argc, char **argv)
{
    int max_mb = argc > 1 ? atoi(argv[1]) : 256;
    tg_set_grad_enabled(false);
    printf("tapegrad elementwise throughput, GB/s (best of reps; bytes = read + written)\n");
    printf("%-18s %8s | %9s %9s %7s | %9s %9s %7s\n", "op", "MB/input", "1 thread", "memcpy", "ratio",
           "2 threads", "memcpy", "ratio");
    for (int mb = 1; mb <= max_mb; mb *= 4) {
        int64_t n = (int64_t)mb * (1 << 20) / 4;
        bench_data d;
        d.a = tg_tensor_randn(TG_SHAPE(n), NULL);
        d.b = tg_tensor_randn(TG_SHAPE(n), NULL);
        /* NCHW with 2 channels, as the UNet head: (n / (2*P), 2, P) with P a multiple of 480 where possible */
        int64_t N = n >= 2 * 230400 ? n / (2 * 230400) : 1, P = n / (2 * N);
        d.x4 = tg_tensor_randn(TG_SHAPE(N, 2, P), NULL);
        d.bias = tg_tensor_randn(TG_SHAPE(2, 1), NULL);
        d.dst = malloc((size_t)n * sizeof(float));
        memset(d.dst, 0, (size_t)n * sizeof(float));
        double gbs[B_COUNT][2];
        for (int th = 1; th <= 2; th++) {
            tg_set_num_threads(th);
            int reps = mb >= 64 ? 4 : (mb >= 16 ? 8 : 20);
            double best[B_COUNT];
            for (int op = 0; op < B_COUNT; op++) best[op] = 1e30;
            for (int r = 0; r < reps; r++) /* alternate ops within each repetition: same machine state */
                for (int op = 0; op < B_COUNT; op++) {
                    double t = run_once(op, &d);
                    if (t < best[op]) best[op] = t;
                }
            for (int op = 0; op < B_COUNT; op++) {
                int64_t cnt = (op == B_BIAS || op == B_SOFTMAX1) ? d.x4->numel : n;
                gbs[op][th - 1] = bytes_moved(op, cnt) / best[op] / 1e9;
            }
        }
        for (int op = 1; op < B_COUNT; op++)
            printf("%-18s %8d | %9.2f %9.2f %7.2f | %9.2f %9.2f %7.2f\n", NAMES[op], mb, gbs[op][0],
                   gbs[B_MEMCPY][0], gbs[op][0] / gbs[B_MEMCPY][0], gbs[op][1], gbs[B_MEMCPY][1],
                   gbs[op][1] / gbs[B_MEMCPY][1]);
        printf("\n");
        tg_tensor_free(d.a);
        tg_tensor_free(d.b);
        tg_tensor_free(d.x4);
        tg_tensor_free(d.bias);
        free(d.dst);
    }
    /* The UNet head case named in the docs: softmax over dim 1 of (16, 2, 480, 480). */
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(16, 2, 480, 480), NULL);
    for (int th = 1; th <= 2; th++) {
        tg_set_num_threads(th);
        double best = 1e30;
        for (int r = 0; r < 8; r++) {
            double t0 = now();
            tg_softmax(x, 1);
            double t = now() - t0;
            tg_tape_clear();
            if (t < best) best = t;
        }
        printf("softmax dim 1 of (16, 2, 480, 480), %d thread(s): %.2f ms, %.2f GB/s\n", th, best * 1e3,
               2.0 * x->numel * 4 / best / 1e9);
    }
    tg_tensor_free(x);
    return 0;
}
