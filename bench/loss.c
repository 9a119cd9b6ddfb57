/* Fused cross_entropy and BCE-with-logits, forward + backward, on the experiment's shapes:
 * CE logits (4,2,256,256) and (16,2,480,480) with class weight [0.3,2.5] and ignore_index 255
 * (~10% ignored pixels), 'mean'; BCE-with-logits on (4,1,...) and (16,1,...), 'mean'.
 * Prints median and best time per step and logit elements per second (median).
 * Compare with bench/loss_torch.py (same shapes, torch.set_num_threads(2)); run them
 * alternately, e.g.  for i in 1 2 3; do build/bin/bench_loss; python3 bench/loss_torch.py; done
 * Usage: bench_loss [reps=15] [threads=2] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tapegrad.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, int64_t numel, double *t, int reps)
{
    qsort(t, (size_t)reps, sizeof *t, cmp);
    double med = t[reps / 2];
    printf("tapegrad %-32s median %8.3f ms  best %8.3f ms  %8.1f Melem/s\n", name, med * 1e3, t[0] * 1e3,
           numel / med / 1e6);
}

static void bench_ce(int64_t N, int64_t H, int64_t W, int reps)
{
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(N, 2, H, W), &r), true);
    tg_tensor *t = tg_tensor_new(TG_I64, TG_SHAPE(N, H, W));
    for (int64_t i = 0; i < t->numel; i++) t->idata[i] = tg_rng_uniform(&r) < 0.1f ? 255 : tg_rng_below(&r, 2);
    tg_tensor *w = tg_tensor_from_data(TG_SHAPE(2), (float[]){0.3f, 2.5f});
    tg_ce_opts o = {.weight = w, .ignore_index = 255, .has_ignore_index = true};
    double *ts = malloc(sizeof(double) * (size_t)reps);
    for (int k = -2; k < reps; k++) {
        double t0 = now();
        tg_tensor_zero_grad(x);
        tg_tensor *l = tg_cross_entropy(x, t, o);
        if (!l || tg_backward(l) != TG_OK) {
            fprintf(stderr, "bench_loss: %s\n", tg_last_error());
            exit(1);
        }
        tg_tape_clear();
        if (k >= 0) ts[k] = now() - t0;
    }
    char name[64];
    snprintf(name, sizeof name, "cross_entropy (%lld,2,%lld,%lld)", (long long)N, (long long)H, (long long)W);
    report(name, x->numel, ts, reps);
    free(ts);
    tg_tensor_free(x);
    tg_tensor_free(t);
    tg_tensor_free(w);
}

static void bench_bce(int64_t N, int64_t H, int64_t W, int reps)
{
    tg_rng r;
    tg_rng_seed(&r, 2);
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(N, 1, H, W), &r), true);
    tg_tensor *y = tg_tensor_rand(TG_SHAPE(N, 1, H, W), &r);
    for (int64_t i = 0; i < y->numel; i++) y->data[i] = y->data[i] < 0.2f;
    double *ts = malloc(sizeof(double) * (size_t)reps);
    for (int k = -2; k < reps; k++) {
        double t0 = now();
        tg_tensor_zero_grad(x);
        tg_tensor *l = tg_binary_cross_entropy_with_logits(x, y, (tg_bce_opts){0});
        if (!l || tg_backward(l) != TG_OK) {
            fprintf(stderr, "bench_loss: %s\n", tg_last_error());
            exit(1);
        }
        tg_tape_clear();
        if (k >= 0) ts[k] = now() - t0;
    }
    char name[64];
    snprintf(name, sizeof name, "bce_with_logits (%lld,1,%lld,%lld)", (long long)N, (long long)H, (long long)W);
    report(name, x->numel, ts, reps);
    free(ts);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (reps < 1) reps = 1;
    tg_set_num_threads(threads);
    printf("tapegrad loss bench: %d threads, %d reps (forward + backward per step), BLAS core %s\n",
           tg_get_num_threads(), reps, tg_blas_core());
    bench_ce(4, 256, 256, reps);
    bench_ce(16, 480, 480, reps);
    bench_bce(4, 256, 256, reps);
    bench_bce(16, 480, 480, reps);
    return 0;
}
