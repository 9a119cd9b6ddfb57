/* SyncBatchNorm: conv -> BN + ReLU -> conv -> BN, two training steps (SGD) on a global batch of
 * 32 images. W ranks x 32/W images with tg_dist_sync_batchnorm on must match one process with all
 * 32 and ordinary BatchNorm (computed here on every rank, no collective): each step's output
 * (this rank's rows), the running statistics, the averaged parameter gradients and the input
 * gradient (this rank's rows; that of the sum of the W ranks' losses, so W times the one-process
 * one, as in PyTorch's DDP) within 1e-5 (absolute, on values of order 1). The loss is
 * sum(out * R) / n over this rank's n images (R fixed), so the mean over ranks is the
 * one-process loss. With local statistics instead (the default, as DDP) the outputs differ:
 * checked too, so the test cannot pass without synchronisation. Exit 0 on success. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dist/dist.h"
#include "tapegrad.h"

typedef struct {
    tg_param_list *list;
    tg_conv2d_layer c1, c2;
    tg_batchnorm2d_layer b1, b2;
} net;

static bool net_init(net *m)
{
    tg_rng r;
    tg_rng_seed(&r, 5);
    tg_conv2d_opts o = {.stride = {1, 1}, .padding = {1, 1}, .dilation = {1, 1}, .groups = 1};
    m->list = tg_param_list_new();
    return m->list && tg_conv2d_layer_init(&m->c1, m->list, "c1", 3, 4, 3, 3, o, true, &r) == TG_OK &&
           tg_batchnorm2d_layer_init(&m->b1, m->list, "b1", 4, TG_BN_EPS, TG_BN_MOMENTUM) == TG_OK &&
           tg_conv2d_layer_init(&m->c2, m->list, "c2", 4, 3, 3, 3, o, false, &r) == TG_OK &&
           tg_batchnorm2d_layer_init(&m->b2, m->list, "b2", 3, TG_BN_EPS, TG_BN_MOMENTUM) == TG_OK;
}

static tg_tensor *net_forward(const net *m, tg_tensor *x)
{
    tg_tensor *h = tg_batchnorm2d_layer_forward_relu(&m->b1, tg_conv2d_layer_forward(&m->c1, x));
    return tg_batchnorm2d_layer_forward(&m->b2, tg_conv2d_layer_forward(&m->c2, h));
}

static double max_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN counts */
    }
    return m;
}

static int failures;

static void expect(const char *what, int step, double diff, double limit)
{
    bool ok = diff <= limit;
    if (!ok) failures++;
    if (!ok || tg_dist_is_main())
        printf("%s rank %d step %d: %-40s max |difference| %.3g (limit %g)\n", ok ? "ok  " : "FAIL", tg_dist_rank(),
               step, what, diff, limit);
}

/* One forward and backward on rows [r0, r0+n) of the global batch: copies the output to y and
 * x's gradient to gx, clears the tape. */
static bool step(net *m, const tg_tensor *X, const tg_tensor *R, int64_t r0, int64_t n, float *y, float *gx)
{
    int64_t row = X->numel / X->shape[0], orow = R->numel / R->shape[0];
    tg_tensor *x = tg_tensor_set_requires_grad(tg_tensor_from_data(TG_SHAPE(n, 3, 8, 8), X->data + r0 * row), true);
    tg_tensor *rr = tg_tensor_from_data(TG_SHAPE(n, 3, 8, 8), R->data + r0 * orow);
    tg_tensor *out = net_forward(m, x);
    tg_tensor *loss = tg_mul_scalar(tg_sum(tg_mul(out, rr), NULL, 0, false), 1.0f / (float)n);
    if (tg_backward(loss) != TG_OK) {
        fprintf(stderr, "rank %d: %s\n", tg_dist_rank(), tg_last_error());
        tg_tensor_free(x);
        tg_tensor_free(rr);
        tg_tape_clear();
        return false;
    }
    memcpy(gx, x->grad, sizeof(float) * (size_t)(n * row));
    memcpy(y, out->data, sizeof(float) * (size_t)(n * orow));
    tg_tensor_free(x);
    tg_tensor_free(rr);
    tg_tape_clear();
    return true;
}

int main(int argc, char **argv)
{
    if (tg_dist_init(&argc, &argv) != TG_OK) return 1;
    tg_set_num_threads(1);
    const int W = tg_dist_world_size(), rank = tg_dist_rank();
    const int64_t B = 32, n = B / W, r0 = rank * n, row = 3 * 8 * 8;
    tg_rng r;
    tg_rng_seed(&r, 11);
    tg_tensor *X = tg_tensor_randn(TG_SHAPE(B, 3, 8, 8), &r), *R = tg_tensor_randn(TG_SHAPE(B, 3, 8, 8), &r);
    for (int64_t i = 0; i < X->numel; i++) X->data[i] = 2.0f * X->data[i] + 0.5f; /* non-trivial stats */
    net dp, ref, local;
    if (!net_init(&dp) || !net_init(&ref) || !net_init(&local)) return tg_dist_finish(1);
    tg_dist_broadcast_state(dp.list);
    tg_dist_sync_batchnorm(dp.list, true);
    tg_optimizer *odp = tg_sgd_new(dp.list, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    tg_optimizer *oref = tg_sgd_new(ref.list, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    tg_tensor *gxt = tg_tensor_zeros(TG_SHAPE(B * row)), *gxt_ref = tg_tensor_zeros(TG_SHAPE(B * row));
    float *gx = gxt->data, *gx_ref = gxt_ref->data;
    tg_tensor *yt = tg_tensor_zeros(TG_SHAPE(B * row)), *yt_ref = tg_tensor_zeros(TG_SHAPE(B * row));
    float *o_dp = yt->data, *o_ref = yt_ref->data;
    double local_out_diff = 0;
    for (int s = 1; s <= 2; s++) {
        if (!step(&ref, X, R, 0, B, o_ref, gx_ref) || !step(&dp, X, R, r0, n, o_dp, gx)) return tg_dist_finish(1);
        tg_dist_allreduce_grads(dp.list, n, B);
        expect("forward output (this rank's rows)", s, max_diff(o_dp, o_ref + r0 * row, n * row), 1e-5);
        /* x's gradient is that of the sum of the ranks' losses (W times the mean loss): not averaged */
        for (int64_t i = 0; i < n * row; i++) gx[i] /= (float)W;
        expect("input gradient / W (this rank's rows)", s, max_diff(gx, gx_ref + r0 * row, n * row), 1e-5);
        expect("parameter gradients (averaged)", s, max_diff(dp.list->grad, ref.list->grad, ref.list->block_numel),
               1e-5);
        double rs = 0;
        const tg_batchnorm2d_layer *bd[2] = {&dp.b1, &dp.b2}, *br[2] = {&ref.b1, &ref.b2};
        for (int k = 0; k < 2; k++) {
            double a = max_diff(bd[k]->running_mean->data, br[k]->running_mean->data, bd[k]->num_features);
            double v = max_diff(bd[k]->running_var->data, br[k]->running_var->data, bd[k]->num_features);
            rs = fmax(rs, fmax(a, v));
            if (bd[k]->num_batches_tracked->idata[0] != br[k]->num_batches_tracked->idata[0]) rs = INFINITY;
        }
        expect("running mean and var, num_batches_tracked", s, rs, 1e-5);
        /* the same rows with each rank's own statistics (no sync): must differ when W > 1 */
        if (s == 1) {
            tg_dist_broadcast_state(local.list);
            local_out_diff = step(&local, X, R, r0, n, o_dp, gx) ? max_diff(o_dp, o_ref + r0 * row, n * row) : INFINITY;
        }
        tg_optimizer_step(odp);
        tg_optimizer_step(oref);
        tg_optimizer_zero_grad(odp);
        tg_optimizer_zero_grad(oref);
        tg_param_list_zero_grad(local.list);
    }
    if (W > 1) {
        bool differs = local_out_diff > 1e-3;
        if (!differs) failures++;
        if (!differs || tg_dist_is_main())
            printf("%s rank %d: local statistics (no sync) give outputs %.3g away from one process (must differ)\n",
                   differs ? "ok  " : "FAIL", rank, local_out_diff);
    }
    tg_optimizer_free(odp);
    tg_optimizer_free(oref);
    tg_param_list_free(dp.list);
    tg_param_list_free(ref.list);
    tg_param_list_free(local.list);
    tg_tensor_free(gxt);
    tg_tensor_free(gxt_ref);
    tg_tensor_free(yt);
    tg_tensor_free(yt_ref);
    tg_tensor_free(X);
    tg_tensor_free(R);
    double bad = failures;
    tg_dist_allreduce_sum(&bad, 1);
    if (tg_dist_is_main())
        printf("dist_syncbn: %d ranks x %lld vs 1 process x %lld: %s\n", W, (long long)n, (long long)B,
               bad == 0 ? "all checks pass" : "FAILED");
    return tg_dist_finish(bad == 0 ? 0 : 1);
}
