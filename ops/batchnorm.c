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
#include "nn_ops.h"

#include <math.h>
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
    float *dx = tg_needs_grad(x) ? tg_grad_fresh(x, &dx_fresh) : NULL;
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

static bool check_channel_vec(const char *op, const char *arg, const tg_tensor *t, int64_t C, const tg_tensor *x)
{
    if (!t) return true;
    if (!tg_check_f32(op, arg, t)) return false;
    if (t->numel != C || t->ndim != 1) {
        char a[96], b[96];
        tg_error(TG_ERR_SHAPE, "%s: %s must have shape (%lld) for x %s, got %s", op, arg, (long long)C,
                 tg_shape_str(x, b, sizeof b), tg_shape_str(t, a, sizeof a));
        return false;
    }
    return true;
}

static tg_tensor *batch_norm(const char *op, bool relu, tg_tensor *x, tg_tensor *weight, tg_tensor *bias,
                             tg_tensor *running_mean, tg_tensor *running_var, int64_t *num_batches_tracked,
                             bool training, float momentum, float eps)
{
    if (!tg_check_f32(op, "x", x) || !tg_check_ndim(op, "x", x, 2, TG_MAX_DIMS)) return NULL;
    const int64_t N = x->shape[0], C = x->shape[1], S = C > 0 && N > 0 ? x->numel / (N * C) : 0;
    if (!check_channel_vec(op, "weight", weight, C, x) || !check_channel_vec(op, "bias", bias, C, x) ||
        !check_channel_vec(op, "running_mean", running_mean, C, x) ||
        !check_channel_vec(op, "running_var", running_var, C, x))
        return NULL;
    if (!running_mean != !running_var) {
        tg_error(TG_ERR_ARG, "%s: give both running_mean and running_var, or neither", op);
        return NULL;
    }
    if (!(eps >= 0)) {
        tg_error(TG_ERR_ARG, "%s: eps must be non-negative, got %g", op, eps);
        return NULL;
    }
    char sx[96];
    tg_shape_str(x, sx, sizeof sx);
    if (training && N * S <= 1) {
        tg_error(TG_ERR_VALUE, "%s: expected more than 1 value per channel when training, got x %s", op, sx);
        return NULL;
    }
    if (!training && !running_mean) {
        tg_error(TG_ERR_ARG, "%s: eval mode (training=false) needs running_mean and running_var", op);
        return NULL;
    }
    if (training && running_mean && isnan(momentum) && !num_batches_tracked) {
        tg_error(TG_ERR_ARG, "%s: momentum NAN (cumulative average) needs num_batches_tracked", op);
        return NULL;
    }
    if (training && running_mean && !isnan(momentum) && !(momentum >= 0 && momentum <= 1)) {
        tg_error(TG_ERR_ARG, "%s: momentum must be in [0, 1] or NAN, got %g", op, momentum);
        return NULL;
    }
    bn_ctx *cx = tg_arena_alloc(sizeof *cx);
    tg_tensor *y = tg_output_new(TG_F32, x->ndim, x->shape);
    if (!cx || !y) return NULL;
    *cx = (bn_ctx){.N = N, .C = C, .S = S, .training = training, .relu = relu};
    cx->mean = tg_arena_alloc((size_t)(C > 0 ? C : 1) * sizeof(float));
    cx->invstd = tg_arena_alloc((size_t)(C > 0 ? C : 1) * sizeof(float));
    if (!cx->mean || !cx->invstd) return NULL;

    double factor = 0.0;
    if (training && running_mean) {
        if (num_batches_tracked) (*num_batches_tracked)++;
        factor = isnan(momentum) ? 1.0 / (double)*num_batches_tracked : (double)momentum;
    } else if (training && num_batches_tracked) {
        (*num_batches_tracked)++;
    }
    const double M = (double)(N * S);
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < C; c++) {
        float mu, inv;
        if (training) {
            /* each row's float sum in element order, four rows side by side (independent chains) */
            double s = 0.0;
            int64_t i = 0;
            for (; i + 4 <= N; i += 4) {
                const float *x0 = x->data + (i * C + c) * S, *x1 = x0 + C * S, *x2 = x1 + C * S, *x3 = x2 + C * S;
                float p0 = 0.0f, p1 = 0.0f, p2 = 0.0f, p3 = 0.0f;
                for (int64_t k = 0; k < S; k++) p0 += x0[k], p1 += x1[k], p2 += x2[k], p3 += x3[k];
                s += p0, s += p1, s += p2, s += p3;
            }
            for (; i < N; i++) {
                const float *xr = x->data + (i * C + c) * S;
                float part = 0.0f;
                for (int64_t k = 0; k < S; k++) part += xr[k];
                s += part;
            }
            const double mean = s / M;
            const float m = (float)mean;
            double ss = 0.0;
            for (i = 0; i + 4 <= N; i += 4) {
                const float *x0 = x->data + (i * C + c) * S, *x1 = x0 + C * S, *x2 = x1 + C * S, *x3 = x2 + C * S;
                float p0 = 0.0f, p1 = 0.0f, p2 = 0.0f, p3 = 0.0f;
                for (int64_t k = 0; k < S; k++) {
                    p0 += (x0[k] - m) * (x0[k] - m), p1 += (x1[k] - m) * (x1[k] - m);
                    p2 += (x2[k] - m) * (x2[k] - m), p3 += (x3[k] - m) * (x3[k] - m);
                }
                ss += p0, ss += p1, ss += p2, ss += p3;
            }
            for (; i < N; i++) {
                const float *xr = x->data + (i * C + c) * S;
                float part = 0.0f;
                for (int64_t k = 0; k < S; k++) part += (xr[k] - m) * (xr[k] - m);
                ss += part;
            }
            const double var = ss / M;
            mu = (float)mean;
            inv = (float)(1.0 / sqrt(var + eps));
            if (running_mean) {
                running_mean->data[c] = (float)((1.0 - factor) * running_mean->data[c] + factor * mean);
                running_var->data[c] = (float)((1.0 - factor) * running_var->data[c] + factor * ss / (M - 1.0));
            }
        } else {
            mu = running_mean->data[c];
            inv = (float)(1.0 / sqrt((double)running_var->data[c] + eps));
        }
        cx->mean[c] = mu;
        cx->invstd[c] = inv;
        const float a = inv * (weight ? weight->data[c] : 1.0f);
        const float b = (bias ? bias->data[c] : 0.0f) - mu * a;
        for (int64_t i = 0; i < N; i++) {
            const float *xr = x->data + (i * C + c) * S;
            float *yr = y->data + (i * C + c) * S;
            if (relu)
                for (int64_t k = 0; k < S; k++) {
                    const float v = xr[k] * a + b;
                    yr[k] = v < 0.0f ? 0.0f : v; /* as tg_relu: NaN stays NaN */
                }
            else
                for (int64_t k = 0; k < S; k++) yr[k] = xr[k] * a + b;
        }
    }
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
