/* Data parallel = one process: an MLP (no BatchNorm) trained for 30 steps with global batch 64
 * on every rank of `mpirun -np W` (each rank its slice from a sharded loader, gradients averaged
 * by tg_dist_allreduce_grads) ends with the weights of the same training in one process on the
 * whole batch (computed here, on every rank, without any collective): relative L2 <= 1e-5, with
 * SGD momentum and with Adam. Each rank starts from different random weights (seed + rank):
 * the broadcast from rank 0 must make them equal. One run's dataset leaves a last batch of 5
 * (slices of 2 and 3 on 2 ranks: the weighted average). After training every rank holds
 * bit-identical weights. Without mpirun (rank 0 of 1) the two trainings must be bit-identical.
 * Exit 0 on success, 1 with a message otherwise. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dist/dist.h"
#include "tapegrad.h"

typedef struct {
    tg_param_list *list;
    tg_linear_layer l1, l2, l3;
} mlp;

static bool mlp_init(mlp *m, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    m->list = tg_param_list_new();
    return m->list && tg_linear_layer_init(&m->l1, m->list, "fc1", 12, 32, true, &r) == TG_OK &&
           tg_linear_layer_init(&m->l2, m->list, "fc2", 32, 32, true, &r) == TG_OK &&
           tg_linear_layer_init(&m->l3, m->list, "fc3", 32, 5, true, &r) == TG_OK;
}

static tg_tensor *mlp_forward(const mlp *m, tg_tensor *x)
{
    tg_tensor *h = tg_tanh(tg_linear_layer_forward(&m->l1, x));
    h = tg_relu(tg_linear_layer_forward(&m->l2, h));
    return tg_linear_layer_forward(&m->l3, h);
}

static tg_optimizer *make_opt(tg_param_list *list, bool adam)
{
    if (adam) {
        tg_adam_opts o = tg_adam_defaults();
        o.lr = 3e-3;
        return tg_adam_new(list, o);
    }
    return tg_sgd_new(list, (tg_sgd_opts){.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
}

/* Trains for `steps` steps; sharded = the data-parallel version. */
static bool train(mlp *m, const tg_dataset *ds, bool adam, bool sharded, int steps)
{
    tg_optimizer *opt = make_opt(m->list, adam);
    tg_loader_options lo = tg_loader_defaults(64, 7);
    lo.shuffle = true; /* training order (the defaults do not shuffle, as PyTorch) */
    lo.workers = 0;
    if (sharded) {
        lo.shard_rank = tg_dist_rank();
        lo.shard_count = tg_dist_world_size();
    }
    tg_loader *ld = tg_loader_new(ds, &lo);
    bool ok = opt && ld;
    for (int step = 0; ok && step < steps;) {
        tg_batch b;
        if (tg_loader_next(ld, &b) != TG_OK) {
            ok = false;
            break;
        }
        if (!b.x) continue; /* end of an epoch */
        tg_tensor *loss = tg_cross_entropy(mlp_forward(m, b.x), b.y, (tg_ce_opts){0});
        ok = tg_backward(loss) == TG_OK &&
             (!sharded || tg_dist_allreduce_grads(m->list, b.x->shape[0], b.global_size) == TG_OK) &&
             tg_optimizer_step(opt) == TG_OK;
        tg_optimizer_zero_grad(opt);
        tg_tape_clear();
        tg_batch_free(&b);
        step++;
    }
    if (!ok) fprintf(stderr, "rank %d: training failed: %s\n", tg_dist_rank(), tg_last_error());
    tg_loader_free(ld);
    tg_optimizer_free(opt);
    return ok;
}

static double rel_l2(const tg_param_list *a, const tg_param_list *b)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < a->block_numel; i++) {
        double d = (double)a->data[i] - (double)b->data[i];
        num += d * d;
        den += (double)b->data[i] * b->data[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* One case; returns true if it passes. */
static bool run_case(const char *name, bool adam, int64_t n_samples)
{
    tg_rng r;
    tg_rng_seed(&r, 42);
    tg_tensor *x = tg_tensor_randn(TG_SHAPE(n_samples, 12), &r);
    tg_tensor *y = tg_tensor_new(TG_I64, TG_SHAPE(n_samples));
    for (int64_t i = 0; i < n_samples; i++) y->idata[i] = (int64_t)(tg_rng_uniform(&r) * 5) % 5;
    tg_dataset *ds = tg_tensor_dataset_new(x, y);
    mlp dp, ref;
    bool ok = ds && mlp_init(&dp, 1000 + (uint64_t)tg_dist_rank()) && mlp_init(&ref, 1000);
    ok = ok && tg_dist_broadcast_state(dp.list) == TG_OK;
    ok = ok && train(&dp, ds, adam, true, 30) && train(&ref, ds, adam, false, 30);
    bool same = false;
    ok = ok && tg_dist_state_identical(dp.list, &same) == TG_OK;
    double e = ok ? rel_l2(dp.list, ref.list) : INFINITY;
    const int W = tg_dist_world_size();
    bool pass = ok && same && (W == 1 ? e == 0.0 : e <= 1e-5);
    if (tg_dist_is_main() || !pass)
        printf("%s rank %d of %d: %s, %lld samples, 30 steps of global batch 64: relative L2 to one process %.3g "
               "(limit %s), ranks bit-identical: %s -> %s\n",
               pass ? "ok  " : "FAIL", tg_dist_rank(), W, name, (long long)n_samples, e,
               W == 1 ? "0 without mpirun" : "1e-5", same ? "yes" : "NO", pass ? "pass" : "FAIL");
    tg_param_list_free(dp.list);
    tg_param_list_free(ref.list);
    tg_dataset_free(ds);
    tg_tensor_free(x);
    tg_tensor_free(y);
    return pass;
}

int main(int argc, char **argv)
{
    if (tg_dist_init(&argc, &argv) != TG_OK) {
        fprintf(stderr, "dist_equivalence: %s\n", tg_last_error());
        return 1;
    }
    tg_set_num_threads(1);
    bool ok = run_case("SGD momentum 0.9", false, 640);
    ok = run_case("Adam", true, 640) && ok;
    ok = run_case("SGD momentum, last batch of 5", false, 645) && ok;
    /* every rank must agree on the verdict before leaving */
    double bad = ok ? 0 : 1;
    tg_dist_allreduce_sum(&bad, 1);
    if (tg_dist_is_main()) printf("dist_equivalence: %s\n", bad == 0 ? "all cases pass" : "FAILED");
    return tg_dist_finish(bad == 0 ? 0 : 1);
}
