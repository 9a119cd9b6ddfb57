/* Times forward + backward of the heavier loss_extra ops on fixed sizes and
 * prints ms per call. Compare with bench/loss_extra_torch.py (same sizes):
 *   ./build/bin/bench_loss_extra; /usr/bin/python3 bench/loss_extra_torch.py */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "tapegrad.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static tg_tensor *log_probs_new(int64_t T, int64_t N, int64_t C)
{
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(T, N, C), NULL);
    for (int64_t r = 0; r < T * N; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t c = 0; c < C; c++) m = fmax(m, x->data[r * C + c]);
        for (int64_t c = 0; c < C; c++) s += exp(x->data[r * C + c] - m);
        for (int64_t c = 0; c < C; c++) x->data[r * C + c] = (float)(x->data[r * C + c] - m - log(s));
    }
    return tg_tensor_set_requires_grad(x, true);
}

int main(void)
{
    tg_manual_seed(0);
    printf("threads %d\n", tg_get_num_threads());
    const int64_t T = 100, N = 16, C = 30, S = 30;
    tg_tensor *lp = log_probs_new(T, N, C);
    tg_tensor *tg = tg_tensor_new(TG_I64, TG_SHAPE(N, S));
    tg_tensor *il = tg_tensor_new(TG_I64, TG_SHAPE(N)), *tl = tg_tensor_new(TG_I64, TG_SHAPE(N));
    for (int64_t i = 0; i < N * S; i++) tg->idata[i] = 1 + (i * 7) % (C - 1);
    for (int64_t b = 0; b < N; b++) {
        il->idata[b] = T - b;
        tl->idata[b] = S - b;
    }
    int reps = 50;
    double t0 = now_ms();
    for (int r = 0; r < reps; r++) {
        tg_tensor *l = tg_ctc_loss(lp, tg, il, tl, (tg_ctc_opts){0});
        tg_backward(l);
        tg_tape_clear();
    }
    printf("ctc_loss T=%lld N=%lld C=%lld S=%lld fwd+bwd: %.3f ms\n", (long long)T, (long long)N, (long long)C,
           (long long)S, (now_ms() - t0) / reps);

    const int64_t B = 1024, D = 128;
    tg_tensor *a = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(B, D), NULL), true);
    tg_tensor *p = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(B, D), NULL), true);
    tg_tensor *n = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(B, D), NULL), true);
    reps = 200;
    t0 = now_ms();
    for (int r = 0; r < reps; r++) {
        tg_tensor *l = tg_triplet_margin_loss(a, p, n, (tg_triplet_margin_opts){.margin = 3.0f});
        tg_backward(l);
        tg_tape_clear();
    }
    printf("triplet_margin_loss B=%lld D=%lld fwd+bwd: %.3f ms\n", (long long)B, (long long)D, (now_ms() - t0) / reps);

    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_randn(TG_SHAPE(B, D), NULL), true);
    tg_tensor *y = tg_tensor_randn(TG_SHAPE(B, D), NULL);
    tg_tensor *v = tg_tensor_set_requires_grad(tg_tensor_rand(TG_SHAPE(B, D), NULL), true);
    t0 = now_ms();
    for (int r = 0; r < reps; r++) {
        tg_tensor *l = tg_gaussian_nll_loss(x, y, v, (tg_gaussian_nll_opts){0});
        tg_backward(l);
        tg_tape_clear();
    }
    printf("gaussian_nll_loss B=%lld D=%lld fwd+bwd: %.3f ms\n", (long long)B, (long long)D, (now_ms() - t0) / reps);
    tg_tensor *ts[] = {lp, tg, il, tl, a, p, n, x, y, v};
    for (int k = 0; k < 10; k++) tg_tensor_free(ts[k]);
    return 0;
}
