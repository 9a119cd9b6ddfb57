/* Activations: relu, leaky_relu, sigmoid, tanh, softplus; softmax and
 * log_softmax along any dim.
 *
 * Softmax views the input as (outer, C, inner) around the softmax dim. When
 * inner == 1 each row of C is contiguous; otherwise a work item is one outer
 * index and a tile of inner columns, and every pass (max, exp and sum, scale)
 * is a contiguous loop over the tile, once per class. Rows are max-subtracted,
 * so logits in the hundreds stay finite.
 */
/* Hot loops here use selects (x > 0 ? g : 0) and the branch-free tg_expf_fast; GCC only
 * vectorizes those when FP compares may be speculated, i.e. without trapping math.
 * tapegrad never enables FP exception traps, so nothing observable changes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "no-math-errno")
#endif
#include "math_internal.h"
#include "tensor_ops.h"

#include <math.h>
#include <omp.h>

#define TILE 512 /* inner columns per softmax work item */

/* Stable logistic: exp of -|x| only, so no overflow for any x. */
static inline float sigmoidf(float x)
{
    float e = tg_expf_fast(-fabsf(x), TG_EXP_IEEE);
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

/* ---- relu, leaky_relu ---- */

/* y = max(x, 0): dx = g where y > 0 (0 at 0, as PyTorch) */
static void relu_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i]; /* loaded unconditionally so the select vectorizes */
        gx[i] += y[i] > 0.0f ? gi : 0.0f;
    }
}
TG_OP_DEFINE(RELU_OP, relu, relu_backward);

TG_CLONES static void relu_kernel(float *restrict y, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN stays NaN */
}

tg_tensor *tg_relu(tg_tensor *a) { return tg_unary_map("tg_relu", &RELU_OP, a, relu_kernel); }

typedef struct {
    float slope;
} leaky_relu_ctx;

/* y = x > 0 ? x : s x: dx = g or s g */
static void leaky_relu_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
    const float s = ((const leaky_relu_ctx *)node->ctx)->slope;
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) gx[i] += g[i] * (x[i] > 0.0f ? 1.0f : s);
}
TG_OP_DEFINE(LEAKY_RELU_OP, leaky_relu, leaky_relu_backward);

tg_tensor *tg_leaky_relu(tg_tensor *a, float negative_slope)
{
    tg_tensor *out = tg_unary_output("tg_leaky_relu", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
    const float s = negative_slope;
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : s * x[i];
    tg_node *node = tg_record(&LEAKY_RELU_OP, out, 1, &a);
    if (node && !TG_SAVE_CTX(node, leaky_relu_ctx, .slope = negative_slope)) return NULL;
    return out;
}

/* ---- sigmoid, tanh, softplus ---- */

/* y = 1 / (1 + exp(-x)): dx = g y (1 - y) */
static void sigmoid_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) gx[i] += g[i] * y[i] * (1.0f - y[i]);
}
TG_OP_DEFINE(SIGMOID_OP, sigmoid, sigmoid_backward);

TG_CLONES static void sigmoid_kernel(float *restrict y, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = sigmoidf(x[i]);
}

tg_tensor *tg_sigmoid(tg_tensor *a) { return tg_unary_map("tg_sigmoid", &SIGMOID_OP, a, sigmoid_kernel); }

/* y = tanh(x): dx = g (1 - y^2) */
static void tanh_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) gx[i] += g[i] * (1.0f - y[i] * y[i]);
}
TG_OP_DEFINE(TANH_OP, tanh, tanh_backward);

tg_tensor *tg_tanh(tg_tensor *a)
{
    tg_tensor *out = tg_unary_output("tg_tanh", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
#pragma omp parallel for schedule(static) if (n > TG_PARALLEL_MIN / 4)
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
    tg_record(&TANH_OP, out, 1, &a);
    return out;
}

typedef struct {
    float beta, threshold;
} softplus_ctx;

/* y = log(1 + exp(b x)) / b, or x where b x > threshold: dx = g sigmoid(b x), or g */
static void softplus_backward(tg_node *node)
{
    TG_UNARY_GRAD_VARS(node);
    const softplus_ctx *c = node->ctx;
    const float beta = c->beta, th = c->threshold;
#pragma omp parallel for simd schedule(static) if (n > TG_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float bx = beta * x[i];
        gx[i] += bx > th ? g[i] : g[i] * sigmoidf(bx);
    }
}
TG_OP_DEFINE(SOFTPLUS_OP, softplus, softplus_backward);

tg_tensor *tg_softplus(tg_tensor *a, float beta, float threshold)
{
    if (!(beta != 0.0f && isfinite(beta)) || isnan(threshold)) {
        if (!a) return NULL;
        tg_error(TG_ERR_ARG, "tg_softplus: beta must be finite and nonzero and threshold not NaN (got beta=%g, "
                 "threshold=%g)", beta, threshold);
        return NULL;
    }
    tg_tensor *out = tg_unary_output("tg_softplus", a);
    if (!out) return NULL;
    TG_UNARY_VARS(a, out);
#pragma omp parallel for schedule(static) if (n > TG_PARALLEL_MIN / 4)
    for (int64_t i = 0; i < n; i++) {
        float bx = beta * x[i];
        y[i] = bx > threshold ? x[i] : log1pf(tg_expf_fast(bx, TG_EXP_IEEE)) / beta;
    }
    tg_node *node = tg_record(&SOFTPLUS_OP, out, 1, &a);
    if (node && !TG_SAVE_CTX(node, softplus_ctx, .beta = beta, .threshold = threshold)) return NULL;
    return out;
}

/* ---- softmax, log_softmax ---- */

static void split_at_dim(const tg_tensor *a, int dim, int64_t *outer, int64_t *C, int64_t *inner)
{
    *outer = *inner = 1;
    *C = a->ndim ? a->shape[dim] : 1;
    for (int d = 0; d < dim; d++) *outer *= a->shape[d];
    for (int d = dim + 1; d < a->ndim; d++) *inner *= a->shape[d];
}

static float row_max(const float *restrict x, int64_t n)
{
    float lane[16];
    for (int l = 0; l < 16; l++) lane[l] = -INFINITY;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) lane[l] = x[i + l] > lane[l] ? x[i + l] : lane[l];
    float m = -INFINITY;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int l = 0; l < 16; l++) m = lane[l] > m ? lane[l] : m;
    return m;
}

static float row_sum(const float *restrict x, int64_t n)
{
    float lane[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) lane[l] += x[i + l];
    double s = 0.0;
    for (; i < n; i++) s += x[i];
    for (int l = 0; l < 16; l++) s += lane[l];
    return (float)s;
}

/* One contiguous row of C logits. */
TG_CLONES static void softmax_row(const float *restrict x, float *restrict y, int64_t C, bool log_out)
{
    const float m = row_max(x, C);
    for (int64_t c = 0; c < C; c++) y[c] = tg_expf_fast(x[c] - m, TG_EXP_IEEE);
    const float s = row_sum(y, C);
    if (log_out) {
        const float ls = logf(s);
        for (int64_t c = 0; c < C; c++) y[c] = (x[c] - m) - ls;
    } else {
        const float inv = 1.0f / s;
        for (int64_t c = 0; c < C; c++) y[c] *= inv;
    }
}

/* C classes at stride `inner`, w contiguous columns each. */
TG_CLONES static void softmax_tile(const float *restrict x, float *restrict y, int64_t C, int64_t inner, int64_t w,
                         bool log_out)
{
    float m[TILE], s[TILE];
    for (int64_t j = 0; j < w; j++) {
        m[j] = -INFINITY;
        s[j] = 0.0f;
    }
    for (int64_t c = 0; c < C; c++) {
        const float *xc = x + c * inner;
        for (int64_t j = 0; j < w; j++) m[j] = xc[j] > m[j] ? xc[j] : m[j];
    }
    for (int64_t c = 0; c < C; c++) {
        const float *xc = x + c * inner;
        float *yc = y + c * inner;
        for (int64_t j = 0; j < w; j++) {
            float e = tg_expf_fast(xc[j] - m[j], TG_EXP_IEEE);
            yc[j] = e;
            s[j] += e;
        }
    }
    if (log_out) {
        for (int64_t j = 0; j < w; j++) s[j] = logf(s[j]);
        for (int64_t c = 0; c < C; c++) {
            const float *xc = x + c * inner;
            float *yc = y + c * inner;
            for (int64_t j = 0; j < w; j++) yc[j] = (xc[j] - m[j]) - s[j];
        }
    } else {
        for (int64_t j = 0; j < w; j++) s[j] = 1.0f / s[j];
        for (int64_t c = 0; c < C; c++) {
            float *yc = y + c * inner;
            for (int64_t j = 0; j < w; j++) yc[j] *= s[j];
        }
    }
}

/* softmax: dx = y (g - sum_c g y); log_softmax: dx = g - exp(y) sum_c g. */
TG_CLONES static void softmax_grad_tile(const float *restrict y, const float *restrict g, float *restrict gx, int64_t C,
                              int64_t inner, int64_t w, bool log_out)
{
    float d[TILE];
    for (int64_t j = 0; j < w; j++) d[j] = 0.0f;
    for (int64_t c = 0; c < C; c++) {
        const float *yc = y + c * inner, *gc = g + c * inner;
        if (log_out)
            for (int64_t j = 0; j < w; j++) d[j] += gc[j];
        else
            for (int64_t j = 0; j < w; j++) d[j] += gc[j] * yc[j];
    }
    for (int64_t c = 0; c < C; c++) {
        const float *yc = y + c * inner, *gc = g + c * inner;
        float *gxc = gx + c * inner;
        if (log_out)
            for (int64_t j = 0; j < w; j++) gxc[j] += gc[j] - tg_expf_fast(yc[j], TG_EXP_IEEE) * d[j];
        else
            for (int64_t j = 0; j < w; j++) gxc[j] += yc[j] * (gc[j] - d[j]);
    }
}

TG_CLONES static void softmax_grad_row(const float *restrict y, const float *restrict g, float *restrict gx, int64_t C,
                             bool log_out)
{
    double d = 0.0;
    if (log_out) d = row_sum(g, C);
    else
        for (int64_t c = 0; c < C; c++) d += (double)g[c] * y[c];
    const float df = (float)d;
    if (log_out)
        for (int64_t c = 0; c < C; c++) gx[c] += g[c] - tg_expf_fast(y[c], TG_EXP_IEEE) * df;
    else
        for (int64_t c = 0; c < C; c++) gx[c] += y[c] * (g[c] - df);
}

typedef struct {
    int dim; /* normalized */
    bool log_out;
} softmax_ctx;

static void softmax_backward(tg_node *node)
{
    tg_tensor *a = node->in[0], *out = node->out;
    float *gx = tg_input_grad(node, 0);
    if (!gx) return;
    const softmax_ctx *c = node->ctx;
    const bool log_out = c->log_out;
    int64_t outer, C, inner;
    split_at_dim(a, c->dim, &outer, &C, &inner);
    const float *y = out->data, *g = out->grad;
    const bool par = a->numel > TG_PARALLEL_MIN;
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t r = 0; r < outer; r++) softmax_grad_row(y + r * C, g + r * C, gx + r * C, C, log_out);
        return;
    }
    const int64_t tiles = (inner + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t it = 0; it < outer * tiles; it++) {
        int64_t o = it / tiles, j0 = it % tiles * TILE, w = inner - j0 < TILE ? inner - j0 : TILE;
        int64_t off = o * C * inner + j0;
        softmax_grad_tile(y + off, g + off, gx + off, C, inner, w, log_out);
    }
}
TG_OP_DEFINE(SOFTMAX_OP, softmax, softmax_backward);
TG_OP_DEFINE(LOG_SOFTMAX_OP, log_softmax, softmax_backward);

static tg_tensor *softmax_forward(const char *name, const tg_op_def *def, tg_tensor *a, int dim, bool log_out)
{
    if (!tg_check_f32(name, "a", a) || !tg_normalize_dim(name, a->ndim, &dim)) return NULL;
    tg_tensor *out = tg_output_new(TG_F32, a->ndim, a->shape);
    if (!out) return NULL;
    int64_t outer, C, inner;
    split_at_dim(a, dim, &outer, &C, &inner);
    const float *x = a->data;
    float *y = out->data;
    const bool par = a->numel > TG_PARALLEL_MIN;
    if (C > 0 && inner == 1) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t r = 0; r < outer; r++) softmax_row(x + r * C, y + r * C, C, log_out);
    } else if (C > 0) {
        const int64_t tiles = (inner + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (par)
        for (int64_t it = 0; it < outer * tiles; it++) {
            int64_t o = it / tiles, j0 = it % tiles * TILE, w = inner - j0 < TILE ? inner - j0 : TILE;
            int64_t off = o * C * inner + j0;
            softmax_tile(x + off, y + off, C, inner, w, log_out);
        }
    }
    tg_node *node = tg_record(def, out, 1, &a);
    if (node && !TG_SAVE_CTX(node, softmax_ctx, .dim = dim, .log_out = log_out)) return NULL;
    return out;
}

tg_tensor *tg_softmax(tg_tensor *a, int dim) { return softmax_forward("tg_softmax", &SOFTMAX_OP, a, dim, false); }

tg_tensor *tg_log_softmax(tg_tensor *a, int dim)
{
    return softmax_forward("tg_log_softmax", &LOG_SOFTMAX_OP, a, dim, true);
}
