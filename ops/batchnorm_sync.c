/* Synchronized batch normalisation (PyTorch's SyncBatchNorm) in training mode: the batch is
 * split over several processes and the per-channel statistics are those of the whole batch.
 * The processes meet through a reducer (tg_bn_reducer: an element-wise sum of doubles over all
 * processes, in place; tapegrad_dist gives one over MPI); this file never talks to MPI.
 *
 * forward:  local Σx and count -> sum -> mean; local Σ(x - mean)^2 -> sum -> var (biased);
 *           y = (x - mean) * invstd * gamma + beta (then relu if asked), M = global count.
 *           Running stats with the unbiased global variance var * M/(M-1), as tg_batch_norm.
 * backward: local Σg and Σ g (x - mean) -> sum; dx = gamma*invstd/M * (M g - Σg - xhat Σ(g xhat))
 *           with the global sums (each process's g is the gradient of its own loss, so dx is the
 *           gradient of the sum of all processes' losses); dgamma = Σ g xhat and dbeta = Σ g over
 *           the local part only (averaging the gradients over processes then gives the gradient
 *           of the mean loss, as DistributedDataParallel).
 * A reducer that returns its input (one process) gives tg_batch_norm's results (up to float
 * summation order). Every process must call it at the same point: it is a collective.
 */
#include "../core/core_internal.h"
#include "batchnorm_internal.h"
#include "nn_ops.h"

typedef struct {
    int64_t N, C, S;
    double M;             /* values per channel over all processes */
    float *mean, *invstd;
    bool relu;
    tg_bn_reducer red;
} sbn_ctx;

static void sync_bn_backward(tg_node *n)
{
    const sbn_ctx *cx = n->ctx;
    tg_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    const int64_t N = cx->N, C = cx->C, S = cx->S;
    const float *dy = n->out->grad, *out = n->out->data;
    double *sums = tg_arena_alloc((size_t)(2 * C) * sizeof(double));
    if (!sums) return; /* out of memory: the error is set; the reducer is not reached */
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < C; c++) {
        const float mu = cx->mean[c];
        double sg = 0.0, sgx = 0.0;
        for (int64_t i = 0; i < N; i++) {
            const float *xr = x->data + (i * C + c) * S, *gr = dy + (i * C + c) * S, *yr = out + (i * C + c) * S;
            float a = 0.0f, bs = 0.0f;
            for (int64_t s = 0; s < S; s++) {
                const float g = cx->relu && !(yr[s] > 0.0f) ? 0.0f : gr[s];
                a += g;
                bs += g * (xr[s] - mu);
            }
            sg += a;
            sgx += bs;
        }
        sums[c] = sg;
        sums[C + c] = sgx;
    }
    float *dw = w && tg_needs_grad(w) ? tg_grad(w) : NULL;
    float *db = b && tg_needs_grad(b) ? tg_grad(b) : NULL;
    for (int64_t c = 0; c < C; c++) { /* the local part of dgamma and dbeta, before the sum */
        if (dw) dw[c] += (float)(sums[C + c] * cx->invstd[c]);
        if (db) db[c] += (float)sums[c];
    }
    if (cx->red.sum(sums, 2 * C, cx->red.ctx) != TG_OK) return;
    if (!tg_needs_grad(x)) return;
    float *dx = tg_grad(x);
    if (!dx) return;
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < C; c++) {
        const float mu = cx->mean[c], inv = cx->invstd[c], gamma = w ? w->data[c] : 1.0f;
        const float k = gamma * inv, mg = (float)(sums[c] / cx->M), mgx = (float)(sums[C + c] * inv / cx->M) * inv;
        for (int64_t i = 0; i < N; i++) {
            const float *xr = x->data + (i * C + c) * S, *gr = dy + (i * C + c) * S, *yr = out + (i * C + c) * S;
            float *dr = dx + (i * C + c) * S;
            for (int64_t s = 0; s < S; s++) {
                const float g = cx->relu && !(yr[s] > 0.0f) ? 0.0f : gr[s];
                dr[s] += k * (g - mg - (xr[s] - mu) * mgx);
            }
        }
    }
}

TG_OP_DEFINE(SYNC_BN_OP, sync_batch_norm, sync_bn_backward);

/* Σx per channel and the local count, summed over the processes: the global count M and each
 * channel's mean (float in cx, double in mean_d). */
static bool sync_mean(const char *op, sbn_ctx *cx, const tg_tensor *x, const tg_bn_reducer *red, double *buf,
                      double *mean_d)
{
    const bn_dims d = {cx->N, cx->C, cx->S};
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < d.C; c++) buf[c] = bn_channel_sum(x->data, d, c);
    buf[d.C] = (double)(d.N * d.S);
    if (red->sum(buf, d.C + 1, red->ctx) != TG_OK) return false;
    const double M = buf[d.C];
    cx->M = M;
    if (M <= 1) {
        char sx[96];
        tg_error(TG_ERR_VALUE, "%s: expected more than 1 value per channel over all processes, got %.0f (x %s here)",
                 op, M, tg_shape_str(x, sx, sizeof sx));
        return false;
    }
    for (int64_t c = 0; c < d.C; c++) cx->mean[c] = (float)(buf[c] / M);
    for (int64_t c = 0; c < d.C; c++) mean_d[c] = buf[c] / M;
    return true;
}

/* Σ(x - mean)^2 per channel, summed over the processes, into buf. */
static bool sync_sqdev(const sbn_ctx *cx, const tg_tensor *x, const tg_bn_reducer *red, double *buf)
{
    const bn_dims d = {cx->N, cx->C, cx->S};
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < d.C; c++) buf[c] = bn_channel_sqdev(x->data, d, c, cx->mean[c]);
    return red->sum(buf, d.C, red->ctx) == TG_OK;
}

tg_tensor *tg_sync_batch_norm(tg_tensor *x, tg_tensor *weight, tg_tensor *bias, tg_tensor *running_mean,
                              tg_tensor *running_var, int64_t *num_batches_tracked, float momentum, float eps,
                              bool relu, const tg_bn_reducer *red)
{
    const char *op = "tg_sync_batch_norm";
    if (!red || !red->sum) {
        tg_error(TG_ERR_ARG, "%s: the reducer is NULL", op);
        return NULL;
    }
    if (!tg_check_f32(op, "x", x) || !tg_check_ndim(op, "x", x, 2, TG_MAX_DIMS)) return NULL;
    const bn_dims d = bn_dims_of(x);
    if (!bn_check_tensors(op, x, weight, bias, running_mean, running_var, eps) ||
        !bn_check_momentum(op, true, running_mean != NULL, num_batches_tracked, momentum))
        return NULL;
    sbn_ctx *cx = tg_arena_alloc(sizeof *cx);
    tg_tensor *y = tg_output_new(TG_F32, x->ndim, x->shape);
    double *buf = tg_arena_alloc((size_t)(d.C + 1) * sizeof(double));
    double *mean_d = tg_arena_alloc((size_t)(d.C > 0 ? d.C : 1) * sizeof(double));
    if (!cx || !y || !buf || !mean_d) return NULL;
    *cx = (sbn_ctx){.N = d.N, .C = d.C, .S = d.S, .relu = relu, .red = *red};
    cx->mean = tg_arena_alloc((size_t)(d.C > 0 ? d.C : 1) * sizeof(float));
    cx->invstd = tg_arena_alloc((size_t)(d.C > 0 ? d.C : 1) * sizeof(float));
    if (!cx->mean || !cx->invstd) return NULL;
    /* every allocation is done: an out-of-memory cannot leave the other processes waiting in a sum */
    if (!sync_mean(op, cx, x, red, buf, mean_d) || !sync_sqdev(cx, x, red, buf)) return NULL;

    const double factor = bn_count_batch(true, running_mean != NULL, num_batches_tracked, momentum);
    for (int64_t c = 0; c < d.C; c++) {
        cx->invstd[c] = bn_invstd(buf[c] / cx->M, eps);
        if (running_mean)
            bn_running_update(&running_mean->data[c], &running_var->data[c], factor, mean_d[c], buf[c], cx->M);
    }
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < d.C; c++) {
        const float a = cx->invstd[c] * (weight ? weight->data[c] : 1.0f);
        const float b = (bias ? bias->data[c] : 0.0f) - cx->mean[c] * a;
        bn_normalize_channel(x->data, y->data, d, c, a, b, relu);
    }
    tg_tensor *in[3] = {x, weight, bias};
    tg_node *n = tg_record(&SYNC_BN_OP, y, 3, in);
    if (n) n->ctx = cx;
    return y;
}
