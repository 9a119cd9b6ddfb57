/* One UNet training step (the unet_drive example's: forward in train mode, weighted
 * cross-entropy with ignore_index 255, backward, SGD momentum step) and one evaluation
 * forward of a full 584x565 DRIVE image. Prints best and median ms after warm-up steps,
 * the cold (first) step, page faults, peak memory, then the op profile of one step.
 * Output lines "name best_ms median_ms" and "# key value" (bench/unet_step_torch.py and
 * bench/perf_table.py read them).
 * Usage: bench_unet_step [reps] [batch] [crop] [base_c] [--isa avx2|avx512|generic] [--no-eval]
 *                        [--profile-eval] [--retain-grad] [--retain-values]   (TG_PROFILE_COLD=1: profile the first step)
 * --retain-grad: keep every intermediate gradient (tg_set_retain_grad(true), the library's default;
 * the bench runs as PyTorch does, without). --retain-values: keep every intermediate value until
 * the tape is cleared (tg_set_retain_values(true), the default; the bench, as PyTorch, hands the
 * memory of values backward has finished with to later gradients). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "tapegrad.h"

#include "ops/conv_testing.h" /* --isa: cap the conv kernels' instruction set (and oneDNN's) */

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv)
{
    tg_blas_select_kernel(argc, argv);
    int pos[4] = {5, 4, 480, 16}, npos = 0;
    bool eval = true, profile_eval = false, retain = false, retain_values = false;
    const char *isa = NULL;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--isa") && a + 1 < argc) isa = argv[++a];
        else if (!strcmp(argv[a], "--no-eval")) eval = false;
        else if (!strcmp(argv[a], "--profile-eval")) profile_eval = true;
        else if (!strcmp(argv[a], "--retain-grad")) retain = true;
        else if (!strcmp(argv[a], "--retain-values")) retain_values = true;
        else if (argv[a][0] != '-' && npos < 4) pos[npos++] = atoi(argv[a]);
        else {
            fprintf(stderr, "bench_unet_step: unknown argument '%s'\n", argv[a]);
            npos = -1;
            break;
        }
    }
    const int reps = pos[0], B = pos[1], crop = pos[2], base = pos[3];
    if (npos < 0 || reps < 1 || reps > 1000 || B < 1 || crop < 16 || base < 1) {
        fprintf(stderr, "usage: bench_unet_step [reps] [batch] [crop >= 16] [base_c] [--isa avx2|avx512|generic] "
                        "[--no-eval] [--profile-eval] [--retain-grad] [--retain-values]\n");
        return 2;
    }
    if (isa) {
        tg_conv_isa want;
        if (!tg_testing_conv_isa_parse(isa, &want) || !tg_testing_conv_path(TG_CONV_PATH_AUTO, want)) {
            fprintf(stderr, "bench_unet_step: --isa '%s' is not one of generic, avx2, avx512 this CPU runs\n", isa);
            return 2;
        }
    }
    tg_set_flush_denormal(true);
    if (!retain) tg_set_retain_grad(false); /* as PyTorch: no gradients kept on intermediate tensors */
    if (!retain_values) tg_set_retain_values(false); /* as PyTorch: saved values freed once backward used them */
    const bool cold_profile = getenv("TG_PROFILE_COLD") != NULL; /* profile the first step instead of the last */
    const char *spin = getenv("GOMP_SPINCOUNT"), *policy = getenv("OMP_WAIT_POLICY");
    printf("# blas core %s, conv isa %s, threads %d, GOMP_SPINCOUNT %s, OMP_WAIT_POLICY %s, batch %d, crop %d, "
           "base %d, reps %d (+2 warm-up)\n",
           tg_blas_core(), isa ? isa : "auto", tg_get_num_threads(), spin ? spin : "-", policy ? policy : "-", B,
           crop, base, reps);
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
    const double rss0 = peak_rss_mb();
    double rss_step = 0;
    for (int r = -2; r < reps; r++) {
        if (r == (cold_profile ? -2 : reps - 1)) {
            tg_profile_reset();
            tg_profile_enable(true);
        }
        const long f0 = minor_faults();
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
        const long f1 = minor_faults();
        if (r == -2) rss_step = peak_rss_mb();
        tg_profile_enable(false);
        if (profile_eval && r == reps - 1) {
            tg_profile_print(stdout);
            tg_profile_reset();
            tg_profile_enable(true);
        }
        tg_tensor *out = NULL;
        if (eval) {
            tg_param_list_train(m->params, false);
            bool prev = tg_set_grad_enabled(false);
            out = tg_unet_forward(m, img);
            tg_set_grad_enabled(prev);
            tg_tape_clear();
            if (!out) return 1;
        }
        double t2 = tg_now();
        if (r == -2)
            printf("# cold (first) step %.0f ms, first eval %.0f ms, page faults %ld\n", 1e3 * (t1 - t0),
                   1e3 * (t2 - t1), f1 - f0);
        if (r == -2) printf("cold_step %.1f %.1f\n", 1e3 * (t1 - t0), 1e3 * (t1 - t0));
        if (r == reps - 1) printf("# page faults of the last step %ld\n", f1 - f0);
        if (r >= 0) t_step[r] = t1 - t0, t_eval[r] = t2 - t1;
    }
    tg_profile_enable(false);
    qsort(t_step, (size_t)reps, sizeof(double), cmp);
    qsort(t_eval, (size_t)reps, sizeof(double), cmp);
    printf("train_step %.1f %.1f\n", 1e3 * t_step[0], 1e3 * t_step[reps / 2]);
    if (eval) printf("eval_584x565 %.1f %.1f\n", 1e3 * t_eval[0], 1e3 * t_eval[reps / 2]);
    printf("peak_mb %.0f %.0f\n", peak_rss_mb(), rss_step - rss0);
    printf("# peak memory %.0f MB (first step added %.0f MB), step arena %.0f MB\n# op profile of the %s:\n",
           peak_rss_mb(), rss_step - rss0, tg_tape_bytes_reserved() / 1e6,
           profile_eval ? "last eval forward" : cold_profile ? "first (cold) step" : "last step");
    tg_profile_print(stdout);
    free(t_step), free(t_eval);
    tg_tensor_free(x), tg_tensor_free(y), tg_tensor_free(w), tg_tensor_free(img);
    tg_optimizer_free(opt);
    tg_unet_free(m);
    return 0;
}
