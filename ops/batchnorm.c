/* Batch normalisation over (N,C,...) per channel c, M = N * (spatial size) values each.
 *
 * training: mean, var = biased batch statistics; y = (x - mean) * invstd * gamma + beta,
 *           invstd = 1/sqrt(var + eps). Running stats (if given): r = (1-m) r + m * stat, with the
 *           UNBIASED variance var * M/(M-1); m = NAN means 1/num_batches_tracked (cumulative average).
 *           backward: dx = gamma * invstd / M * (M g - Σg - xhat Σ(g xhat)).
 * eval:     running statistics: y = (x - rmean) * rinvstd * gamma + beta; dx = gamma * rinvstd * g.
 * Both:     dgamma = Σ g xhat, dbeta = Σ g.
 * Channels are independent: every loop runs channels in parallel with OpenMP.
 * tg_batch_norm_relu is tg_relu(tg_batch_norm(...)) bit for bit in one op: relu applied as the
 * output is written, and backward masks the incoming gradient by that output (one pass over
 * memory less each way; the UNet's DoubleConv uses it).
 */
#include "../core/core_internal.h"
#include "batchnorm_internal.h"
#include "nn_ops.h"

#include <string.h>

typedef struct {
    int64_t N, C, S; /* x viewed as (N, C, S) */
    float *mean, *invstd;
    bool training, relu;
} bn_ctx;

/* The gradient reaching the normalisation: g itself, or with relu the value relu's backward
 * would leave in a zeroed buffer (0 + (y > 0 ? g : 0)). Loaded unconditionally: a select. */
static inline float bn_grad_in(bool relu, const float *g, const float *y, int64_t i)
{
    const float gi = g[i];
    if (!relu) return gi;
    /* the select as a bit mask: GCC otherwise emits a branch, mispredicted on half the pixels */
    uint32_t u;
    memcpy(&u, &gi, sizeof u);
    u &= -(uint32_t)(y[i] > 0.0f);
    float r;
    memcpy(&r, &u, sizeof r);
    return 0.0f + r;
}

/* One channel's backward; relu is a constant after inlining (both loops stay vectorized). */
static inline __attribute__((always_inline)) void bn_backward_channel(const bn_ctx *cx, const bool relu, int64_t c,
                                                                      const float *x, const float *dy,
                                                                      const float *out, const float *w, float *dx,
                                                                      const bool dx_fresh, float *dw, float *db)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S;
    const double M = (double)(N * S);
    const float mu = cx->mean[c], inv = cx->invstd[c];
    double sg = 0.0, sgx = 0.0; /* Σg and Σ g (x - mean) */
    int64_t i = 0;
    /* Each row's float sums run in element order (the results' bits); four rows side by side
     * give four independent chains of additions instead of one latency-bound chain. */
    for (; i + 4 <= N; i += 4) {
        const float *x0 = x + (i * C + c) * S, *x1 = x0 + C * S, *x2 = x1 + C * S, *x3 = x2 + C * S;
        const float *g0 = dy + (i * C + c) * S, *g1 = g0 + C * S, *g2 = g1 + C * S, *g3 = g2 + C * S;
        const float *y0 = out + (i * C + c) * S, *y1 = y0 + C * S, *y2 = y1 + C * S, *y3 = y2 + C * S;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
        for (int64_t s = 0; s < S; s++) {
            const float h0 = bn_grad_in(relu, g0, y0, s), h1 = bn_grad_in(relu, g1, y1, s);
            const float h2 = bn_grad_in(relu, g2, y2, s), h3 = bn_grad_in(relu, g3, y3, s);
            a0 += h0, a1 += h1, a2 += h2, a3 += h3;
            b0 += h0 * (x0[s] - mu), b1 += h1 * (x1[s] - mu), b2 += h2 * (x2[s] - mu), b3 += h3 * (x3[s] - mu);
        }
        sg += a0, sgx += b0;
        sg += a1, sgx += b1;
        sg += a2, sgx += b2;
        sg += a3, sgx += b3;
    }
    for (; i < N; i++) {
        const float *xr = x + (i * C + c) * S, *gr = dy + (i * C + c) * S, *yr = out + (i * C + c) * S;
        float a = 0.0f, bsum = 0.0f;
        for (int64_t s = 0; s < S; s++) {
            const float g = bn_grad_in(relu, gr, yr, s);
            a += g;
            bsum += g * (xr[s] - mu);
        }
        sg += a;
        sgx += bsum;
    }
    const double sgxhat = sgx * inv; /* Σ g xhat */
    if (dw) dw[c] += (float)sgxhat;
    if (db) db[c] += (float)sg;
    if (!dx) return;
    const float gamma = w ? w[c] : 1.0f;
    /* dx_fresh: dx was just allocated, not zeroed; dr[s] = 0 + v is what += into zeros gives */
    if (cx->training) {
        /* dx = k * (g - Σg/M - xhat * Σ(g xhat)/M), k = gamma * invstd */
        const float k = gamma * inv, mg = (float)(sg / M), mgx = (float)(sgxhat / M) * inv;
        for (int64_t i = 0; i < N; i++) {
            const float *xr = x + (i * C + c) * S, *gr = dy + (i * C + c) * S, *yr = out + (i * C + c) * S;
            float *dr = dx + (i * C + c) * S;
            if (dx_fresh)
                for (int64_t s = 0; s < S; s++) dr[s] = 0.0f + k * (bn_grad_in(relu, gr, yr, s) - mg - (xr[s] - mu) * mgx);
            else
                for (int64_t s = 0; s < S; s++) dr[s] += k * (bn_grad_in(relu, gr, yr, s) - mg - (xr[s] - mu) * mgx);
        }
    } else {
        const float k = gamma * inv;
        for (int64_t i = 0; i < N; i++) {
            const float *gr = dy + (i * C + c) * S, *yr = out + (i * C + c) * S;
            float *dr = dx + (i * C + c) * S;
            if (dx_fresh)
                for (int64_t s = 0; s < S; s++) dr[s] = 0.0f + k * bn_grad_in(relu, gr, yr, s);
            else
                for (int64_t s = 0; s < S; s++) dr[s] += k * bn_grad_in(relu, gr, yr, s);
        }
    }
}

static void batch_norm_backward(tg_node *n)
{
    const bn_ctx *cx = n->ctx;
    tg_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    const float *dy = n->out->grad, *out = n->out->data, *wd = w ? w->data : NULL;
    bool dx_fresh = false;
    /* dx over dy when dy is dead after this backward: each element is read before it is written
     * (channel by channel: the sums first, then the elements) */
    float *dx = tg_needs_grad(x) ? tg_grad_take_over(x, n->out) : NULL;
    if (dx) dx_fresh = true;
    else if (tg_needs_grad(x)) dx = tg_grad_fresh(x, &dx_fresh);
    float *dw = w && tg_needs_grad(w) ? tg_grad(w) : NULL;
    float *db = b && tg_needs_grad(b) ? tg_grad(b) : NULL;
    if ((tg_needs_grad(x) && !dx) || (w && tg_needs_grad(w) && !dw) || (b && tg_needs_grad(b) && !db)) return;
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < cx->C; c++) {
        if (cx->relu) bn_backward_channel(cx, true, c, x->data, dy, out, wd, dx, dx_fresh, dw, db);
        else bn_backward_channel(cx, false, c, x->data, dy, out, wd, dx, dx_fresh, dw, db);
    }
}

TG_OP_DEFINE(BATCH_NORM_OP, batch_norm, batch_norm_backward);
TG_OP_DEFINE(BATCH_NORM_RELU_OP, batch_norm_relu, batch_norm_backward);

/* Channel c's statistics (batch statistics when training, updating the running ones; else the
 * running ones), saved in cx for backward, then its output. */
BN_INLINE void bn_forward_channel(bn_ctx *cx, int64_t c, const tg_tensor *x, tg_tensor *y, const tg_tensor *weight,
                                  const tg_tensor *bias, tg_tensor *running_mean, tg_tensor *running_var,
                                  double factor, float eps)
{
    const bn_dims d = {cx->N, cx->C, cx->S};
    float mu, inv;
    if (cx->training) {
        const double M = (double)(d.N * d.S);
        const double mean = bn_channel_sum(x->data, d, c) / M;
        const double ss = bn_channel_sqdev(x->data, d, c, (float)mean);
        mu = (float)mean;
        inv = bn_invstd(ss / M, eps);
        if (running_mean) bn_running_update(&running_mean->data[c], &running_var->data[c], factor, mean, ss, M);
    } else {
        mu = running_mean->data[c];
        inv = bn_invstd((double)running_var->data[c], eps);
    }
    cx->mean[c] = mu;
    cx->invstd[c] = inv;
    const float a = inv * (weight ? weight->data[c] : 1.0f);
    const float b = (bias ? bias->data[c] : 0.0f) - mu * a;
    bn_normalize_channel(x->data, y->data, d, c, a, b, cx->relu);
}

static tg_tensor *batch_norm(const char *op, bool relu, tg_tensor *x, tg_tensor *weight, tg_tensor *bias,
                             tg_tensor *running_mean, tg_tensor *running_var, int64_t *num_batches_tracked,
                             bool training, float momentum, float eps)
{
    if (!tg_check_f32(op, "x", x) || !tg_check_ndim(op, "x", x, 2, TG_MAX_DIMS)) return NULL;
    const bn_dims d = bn_dims_of(x);
    if (!bn_check_tensors(op, x, weight, bias, running_mean, running_var, eps)) return NULL;
    if (training && d.N * d.S <= 1) {
        char sx[96];
        tg_error(TG_ERR_VALUE, "%s: expected more than 1 value per channel when training, got x %s", op,
                 tg_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    if (!bn_check_momentum(op, training, running_mean != NULL, num_batches_tracked, momentum)) return NULL;
    bn_ctx *cx = tg_arena_alloc(sizeof *cx);
    tg_tensor *y = tg_output_new(TG_F32, x->ndim, x->shape);
    if (!cx || !y) return NULL;
    *cx = (bn_ctx){.N = d.N, .C = d.C, .S = d.S, .training = training, .relu = relu};
    cx->mean = tg_arena_alloc((size_t)(d.C > 0 ? d.C : 1) * sizeof(float));
    cx->invstd = tg_arena_alloc((size_t)(d.C > 0 ? d.C : 1) * sizeof(float));
    if (!cx->mean || !cx->invstd) return NULL;

    const double factor = bn_count_batch(training, running_mean != NULL, num_batches_tracked, momentum);
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < d.C; c++)
        bn_forward_channel(cx, c, x, y, weight, bias, running_mean, running_var, factor, eps);
    tg_tensor *in[3] = {x, weight, bias};
    tg_node *n = tg_record(relu ? &BATCH_NORM_RELU_OP : &BATCH_NORM_OP, y, 3, in);
    if (n) n->ctx = cx;
    return y;
}

tg_tensor *tg_batch_norm(tg_tensor *x, tg_tensor *weight, tg_tensor *bias, tg_tensor *running_mean,
                         tg_tensor *running_var, int64_t *num_batches_tracked, bool training, float momentum,
                         float eps)
{
    return batch_norm("tg_batch_norm", false, x, weight, bias, running_mean, running_var, num_batches_tracked,
                      training, momentum, eps);
}

tg_tensor *tg_batch_norm_relu(tg_tensor *x, tg_tensor *weight, tg_tensor *bias, tg_tensor *running_mean,
                              tg_tensor *running_var, int64_t *num_batches_tracked, bool training, float momentum,
                              float eps)
{
    return batch_norm("tg_batch_norm_relu", true, x, weight, bias, running_mean, running_var, num_batches_tracked,
                      training, momentum, eps);
}
