/* The program fault.sh runs under mpirun -np 2: a small data-parallel training in which rank 1
 * fails at step 5 in the way $TG_FAULT says:
 *   error  an error path: the message, then `return tg_dist_finish(1)` from main
 *   exit   exit(3) from deep inside (no tg_dist_finalize: the atexit handler stops the job)
 *   hang   rank 1 stops answering (sleeps): rank 0's allreduce times out (TG_DIST_TIMEOUT)
 *   kill   rank 1 is killed (SIGKILL): mpirun notices
 * Rank 0 trains on; every case must end the whole job quickly, non-zero, naming rank 1. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/dist.h"
#include "tapegrad.h"

int main(int argc, char **argv)
{
    if (tg_dist_init(&argc, &argv) != TG_OK) return 1;
    const char *mode = getenv("TG_FAULT");
    if (!mode) mode = "error";
    tg_rng r;
    tg_rng_seed(&r, 1);
    tg_param_list *list = tg_param_list_new();
    tg_linear_layer l;
    tg_linear_layer_init(&l, list, "fc", 8, 4, true, &r);
    tg_dist_broadcast_state(list);
    tg_optimizer *opt = tg_sgd_new(list, (tg_sgd_opts){.lr = 0.1});
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(16, 8), &r), *y = tg_tensor_new(TG_I64, TG_SHAPE(16));
    int rc = 0;
    for (int step = 0; step < 1000000 && rc == 0; step++) {
        if (tg_dist_rank() == 1 && step == 5) {
            fprintf(stderr, "dist_fault: rank 1 fails at step 5 (%s)\n", mode);
            fflush(stderr);
            if (!strcmp(mode, "exit")) exit(3);
            if (!strcmp(mode, "hang")) sleep(100000);
            if (!strcmp(mode, "kill")) raise(SIGKILL);
            rc = 1; /* error */
            break;
        }
        tg_tensor *loss = tg_cross_entropy(tg_linear_layer_forward(&l, x), y, (tg_ce_opts){0});
        if (tg_backward(loss) != TG_OK || tg_dist_allreduce_grads(list, 16, 16 * tg_dist_world_size()) != TG_OK ||
            tg_optimizer_step(opt) != TG_OK)
            rc = 1;
        tg_optimizer_zero_grad(opt);
        tg_tape_clear();
    }
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_optimizer_free(opt);
    tg_param_list_free(list);
    return tg_dist_finish(rc);
}
