/* Data-parallel throughput (tapegrad_dist): training steps of the MNIST CNN (examples/mnist,
 * global batch 64) and of the UNet (base 16, global batch 4, crop 480: unet_drive's step) on
 * random data, in one process or under mpirun, each rank on its slice of the global batch.
 * Prints, from rank 0, one line per model:
 *   NAME world W threads T images_per_s X allreduce_share S step_ms M
 * (median over the measured steps; wait_share: the share of the step spent waiting for the slower
 * rank before the allreduce (a barrier, timed apart); allreduce_share: the gradient allreduce's
 * share once every rank is there, i.e. the communication itself). bench/dist_compare.sh alternates
 * 1 process x 2 threads and 2 processes x 1 thread and prints the table.
 * Usage: bench_dist [--threads T] [--mnist-steps N] [--unet-steps N] [--crop C] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../examples/mnist/model.h"
#include "dist/dist.h"
#include "tapegrad.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef tg_tensor *(*forward_fn)(void *model, tg_tensor *x, tg_tensor *y);

static tg_tensor *mnist_step(void *m, tg_tensor *x, tg_tensor *y)
{
    return tg_cross_entropy(mnist_model_forward(m, x), y, (tg_ce_opts){0});
}

static tg_tensor *class_w;
static tg_tensor *unet_step(void *m, tg_tensor *x, tg_tensor *y)
{
    return tg_cross_entropy(tg_unet_forward(m, x), y,
                            (tg_ce_opts){.weight = class_w, .ignore_index = 255, .has_ignore_index = true});
}

/* steps measured after 2 warm-up steps; x/y hold this rank's slice. */
static int run(const char *name, void *model, tg_param_list *params, forward_fn f, tg_tensor *x, tg_tensor *y,
               int64_t global_batch, int steps)
{
    tg_optimizer *opt = tg_sgd_new(params, (tg_sgd_opts){.lr = 0.01, .momentum = 0.9});
    double *t = calloc((size_t)steps, sizeof *t), *share = calloc((size_t)steps, sizeof *share);
    double *wait = calloc((size_t)steps, sizeof *wait);
    if (!opt || !t || !share || !wait || tg_dist_broadcast_state(params) != TG_OK) return 1;
    for (int s = -2; s < steps; s++) {
        tg_dist_barrier(); /* every rank starts the step together */
        tg_dist_reset_stats();
        double t0 = tg_now();
        tg_tensor *loss = f(model, x, y);
        bool ok = loss && tg_backward(loss) == TG_OK;
        double tw = tg_now();
        tg_dist_barrier();
        tw = tg_now() - tw;
        tg_dist_reset_stats();
        if (!ok || tg_dist_allreduce_grads(params, x->shape[0], global_batch) != TG_OK || tg_optimizer_step(opt) != TG_OK) {
            fprintf(stderr, "bench_dist: %s\n", tg_last_error());
            return 1;
        }
        tg_optimizer_zero_grad(opt);
        tg_tape_clear();
        double dt = tg_now() - t0;
        if (s >= 0) t[s] = dt, share[s] = tg_dist_get_stats().allreduce_seconds / dt, wait[s] = tw / dt;
    }
    double tt[steps];
    memcpy(tt, t, sizeof tt);
    qsort(tt, (size_t)steps, sizeof(double), cmp);
    double med = tt[steps / 2], sh = 0, wt = 0;
    for (int s = 0; s < steps; s++) sh += share[s] / steps, wt += wait[s] / steps;
    printf("%s world %d threads %d images_per_s %.4g allreduce_share %.4f wait_share %.4f step_ms %.2f grad_mb %.2f\n",
           name, tg_dist_world_size(), tg_get_num_threads(), (double)global_batch / med, sh, wt, 1e3 * med,
           params->block_numel * 4 / 1e6);
    fflush(stdout);
    free(t);
    free(share);
    free(wait);
    tg_optimizer_free(opt);
    return 0;
}

int main(int argc, char **argv)
{
    tg_blas_select_kernel(argc, argv);
    if (tg_dist_init(&argc, &argv) != TG_OK) return 1;
    tg_dist_quiet_others();
    int threads = 0, mnist_steps = 60, unet_steps = 3, crop = 480;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mnist-steps")) mnist_steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--unet-steps")) unet_steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--crop")) crop = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_dist [--threads T] [--mnist-steps N] [--unet-steps N] [--crop C]\n");
            return tg_dist_finish(2);
        }
    }
    if (threads > 0) tg_set_num_threads(threads);
    tg_set_flush_denormal(true);
    const int W = tg_dist_world_size();
    printf("# bench_dist: %s, %d rank%s x %d thread%s, blas %s\n", tg_dist_backend(), W, W == 1 ? "" : "s",
           tg_get_num_threads(), tg_get_num_threads() == 1 ? "" : "s", tg_blas_core());
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    int rc = 0;
    if (mnist_steps > 0) {
        const int64_t B = 64;
        if (tg_dist_check_batch(B) != TG_OK) return tg_dist_finish(2);
        mnist_model *m = mnist_model_new(MNIST_CNN, &rng);
        tg_tensor *x = tg_tensor_rand(TG_SHAPE(B / W, 1, 28, 28), &rng), *y = tg_tensor_new(TG_I64, TG_SHAPE(B / W));
        for (int64_t i = 0; i < y->numel; i++) y->idata[i] = i % 10;
        rc = m ? run("mnist_cnn", m, m->params, mnist_step, x, y, B, mnist_steps) : 1;
        tg_tensor_free(x);
        tg_tensor_free(y);
        mnist_model_free(m);
    }
    if (rc == 0 && unet_steps > 0) {
        const int64_t B = 4;
        if (tg_dist_check_batch(B) != TG_OK) return tg_dist_finish(2);
        tg_unet *m = tg_unet_new(3, 2, 16, &rng);
        tg_tensor *x = tg_tensor_randn(TG_SHAPE(B / W, 3, crop, crop), &rng);
        tg_tensor *y = tg_tensor_new(TG_I64, TG_SHAPE(B / W, crop, crop));
        for (int64_t i = 0; i < y->numel; i++) y->idata[i] = i % 11 == 0 ? 255 : (i % 7 == 0);
        class_w = tg_tensor_from_data(TG_SHAPE(2), (const float[]){1.0f, 2.0f});
        rc = m ? run("unet_step", m, m->params, unet_step, x, y, B, unet_steps) : 1;
        tg_tensor_free(x);
        tg_tensor_free(y);
        tg_tensor_free(class_w);
        tg_unet_free(m);
    }
    return tg_dist_finish(rc);
}
