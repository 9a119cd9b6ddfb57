/* Optimizer step throughput on one contiguous parameter block (N floats, default 8M,
 * about a third of a 31M-parameter UNet). Prints ms per step for SGD (momentum,
 * nesterov, weight decay), Adam and AdamW (amsgrad). PyTorch beside it:
 * /usr/bin/python3 bench/optim_step_torch.py N  (same N, same options). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tapegrad.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double time_steps(tg_optimizer *o, int reps)
{
    tg_optimizer_step(o); /* allocates state */
    double t0 = now();
    for (int r = 0; r < reps; r++) tg_optimizer_step(o);
    return (now() - t0) / reps * 1e3;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 8 * 1000 * 1000;
    int reps = 10;
    printf("threads %d, N %lld floats\n", tg_get_num_threads(), (long long)n);
    tg_param_list *l = tg_param_list_new();
    tg_tensor *p = tg_param_list_add_param(l, "w", 1, &n);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    for (int64_t i = 0; i < n; i++) {
        p->data[i] = tg_rng_uniform(&rng);
        p->grad[i] = tg_rng_uniform(&rng) - 0.5f;
    }
    tg_optimizer *o = tg_sgd_new(l, (tg_sgd_opts){.lr = 1e-3, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-4});
    printf("sgd(momentum, nesterov, wd)  %8.2f ms/step\n", time_steps(o, reps));
    tg_optimizer_free(o);
    o = tg_adam_new(l, tg_adam_defaults());
    printf("adam                         %8.2f ms/step\n", time_steps(o, reps));
    tg_optimizer_free(o);
    tg_adam_opts ao = tg_adamw_defaults();
    ao.amsgrad = true;
    o = tg_adamw_new(l, ao);
    printf("adamw(amsgrad)               %8.2f ms/step\n", time_steps(o, reps));
    tg_optimizer_free(o);
    tg_param_list_free(l);
    return 0;
}
