/* One UNet training step (the unet_drive example's: forward in train mode, weighted
 * cross-entropy with ignore_index 255, backward, SGD momentum step) and one evaluation
 * forward of a full 584x565 DRIVE image, base width 16. Prints best and median ms after
 * warm-up steps, then the op profile of one step.
 * Output lines "name best_ms median_ms" (bench/unet_step_torch.py reads them).
 * Usage: bench_unet_step [reps] [batch] [crop] [base_c]   (TG_PROFILE_COLD=1: profile the first step) */
#include <stdio.h>
#include <stdlib.h>

#include "common/cli.h"
#include "tapegrad.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    tg_blas_select_kernel(argc, argv);
    const int reps = argc > 1 ? atoi(argv[1]) : 5, B = argc > 2 ? atoi(argv[2]) : 4;
    const int crop = argc > 3 ? atoi(argv[3]) : 480, base = argc > 4 ? atoi(argv[4]) : 16;
    if (reps < 1 || reps > 1000 || B < 1 || crop < 16 || base < 1) {
        fprintf(stderr, "usage: bench_unet_step [reps] [batch] [crop >= 16] [base_c]\n");
        return 2;
    }
    tg_set_flush_denormal(true);
    const bool cold_profile = getenv("TG_PROFILE_COLD") != NULL; /* profile the first step instead of the last */
    printf("# blas core %s, threads %d, batch %d, crop %d, base %d, reps %d (+2 warm-up)\n", tg_blas_core(),
           tg_get_num_threads(), B, crop, base, reps);
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    tg_unet *m = tg_unet_new(3, 2, base, &rng);
    tg_optimizer *opt = m ? tg_sgd_new(m->params, (tg_sgd_opts){.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4})
                          : NULL;
    if (!opt) {
        fprintf(stderr, "%s\n", tg_last_error());
        return 1;
    }
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(B, 3, crop, crop), &rng);
    tg_tensor *y = tg_tensor_new(TG_I64, TG_SHAPE(B, crop, crop));
    for (int64_t i = 0; i < y->numel; i++) y->idata[i] = i % 11 == 0 ? 255 : (i % 7 == 0);
    tg_tensor *w = tg_tensor_from_data(TG_SHAPE(2), (const float[]){1.0f, 2.0f});
    tg_tensor *img = tg_tensor_randn(TG_SHAPE(1, 3, 584, 565), &rng);
    double *t_step = calloc((size_t)reps, sizeof(double)), *t_eval = calloc((size_t)reps, sizeof(double));
    for (int r = -2; r < reps; r++) {
        if (r == (cold_profile ? -2 : reps - 1)) {
            tg_profile_reset();
            tg_profile_enable(true);
        }
        double t0 = tg_now();
        tg_param_list_train(m->params, true);
        tg_tensor *loss = tg_cross_entropy(tg_unet_forward(m, x), y,
                                           (tg_ce_opts){.weight = w, .ignore_index = 255, .has_ignore_index = true});
        if (!loss || tg_backward(loss) != TG_OK || tg_optimizer_step(opt) != TG_OK) {
            fprintf(stderr, "%s\n", tg_last_error());
            return 1;
        }
        tg_optimizer_zero_grad(opt);
        tg_tape_clear();
        double t1 = tg_now();
        tg_profile_enable(false);
        tg_param_list_train(m->params, false);
        bool prev = tg_set_grad_enabled(false);
        tg_tensor *out = tg_unet_forward(m, img);
        tg_set_grad_enabled(prev);
        tg_tape_clear();
        double t2 = tg_now();
        if (!out) return 1;
        if (r == -2) printf("# cold (first) step %.0f ms, first eval %.0f ms\n", 1e3 * (t1 - t0), 1e3 * (t2 - t1));
        if (r >= 0) t_step[r] = t1 - t0, t_eval[r] = t2 - t1;
    }
    qsort(t_step, (size_t)reps, sizeof(double), cmp);
    qsort(t_eval, (size_t)reps, sizeof(double), cmp);
    printf("train_step %.1f %.1f\n", 1e3 * t_step[0], 1e3 * t_step[reps / 2]);
    printf("eval_584x565 %.1f %.1f\n", 1e3 * t_eval[0], 1e3 * t_eval[reps / 2]);
    printf("# peak memory %.0f MB, step arena %.0f MB\n# op profile of the %s step:\n", cli_peak_rss_mb(),
           tg_tape_bytes_reserved() / 1e6, cold_profile ? "first (cold)" : "last");
    tg_profile_print(stdout);
    free(t_step), free(t_eval);
    tg_tensor_free(x), tg_tensor_free(y), tg_tensor_free(w), tg_tensor_free(img);
    tg_optimizer_free(opt);
    tg_unet_free(m);
    return 0;
}
