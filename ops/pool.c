/* 2-D pooling over the last two dims of (N,C,H,W) or (C,H,W): max, average, adaptive average.
 *
 * Output size (PyTorch's pooling_output_shape):
 *   Ho = floor_or_ceil((H + 2p - d(k-1) - 1) / s) + 1, and with ceil_mode the last window
 *   must start inside the input or the left padding: if (Ho-1)*s >= H + p then Ho -= 1.
 * max:  implicit -inf padding; the saved argmax (int32, index within the plane) is the FIRST
 *       maximum in row-major window order (NaN wins, as PyTorch); backward scatters dY there.
 * avg:  divisor = window size clipped to the padded input (count_include_pad, the default)
 *       or to the input itself (exclude_pad); backward spreads dY/divisor over the window.
 * adaptive avg: window i covers [floor(i*in/out), ceil((i+1)*in/out)).
 * Planes (n, c) are independent, so every kernel runs planes in parallel.
 */
#include "../core/core_internal.h"
#include "nn_ops.h"
#include "spatial_internal.h"
#include "fastmath_internal.h"

#include <math.h>
#include <string.h>

typedef struct {
    int64_t planes, H, W, Ho, Wo;
    int kh, kw, sh, sw, ph, pw, dh, dw;
    bool exclude_pad;
} pool_geom;

static int64_t pool_out_size(int64_t in, int k, int p, int s, int d, bool ceil_mode)
{
    int64_t num = in + 2 * p - (int64_t)d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
    int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1; /* floor division */
    if (ceil_mode && (out - 1) * s >= in + p) out--;
    return out;
}

/* Reads options and the input shape; false + error naming op. */
static bool pool_setup(const char *op, const tg_tensor *x, tg_pool2d_opts o, bool with_dilation, pool_geom *g)
{
    tg_planes pl;
    if (!tg_check_planes(op, "x", x, 3, &pl)) return false;
    memset(g, 0, sizeof *g);
    g->kh = o.kernel[0];
    g->kw = o.kernel[1];
    if (g->kh <= 0 || g->kw <= 0) {
        tg_error(TG_ERR_ARG, "%s: kernel must be positive, got (%d, %d)", op, o.kernel[0], o.kernel[1]);
        return false;
    }
    g->sh = o.stride[0] ? o.stride[0] : g->kh;
    g->sw = o.stride[1] ? o.stride[1] : g->kw;
    g->dh = o.dilation[0] ? o.dilation[0] : 1;
    g->dw = o.dilation[1] ? o.dilation[1] : 1;
    g->ph = o.padding[0];
    g->pw = o.padding[1];
    g->exclude_pad = o.exclude_pad;
    if (g->sh <= 0 || g->sw <= 0) {
        tg_error(TG_ERR_ARG, "%s: stride must be positive, got (%d, %d)", op, o.stride[0], o.stride[1]);
        return false;
    }
    if (g->dh <= 0 || g->dw <= 0 || (!with_dilation && (g->dh != 1 || g->dw != 1))) {
        tg_error(TG_ERR_ARG, "%s: dilation must be %s, got (%d, %d)", op, with_dilation ? "positive" : "1 (unsupported)",
                 o.dilation[0], o.dilation[1]);
        return false;
    }
    if (g->ph < 0 || g->pw < 0 || g->ph > g->kh / 2 || g->pw > g->kw / 2) {
        tg_error(TG_ERR_ARG, "%s: padding (%d, %d) must be non-negative and at most half the kernel (%d, %d)", op,
                 g->ph, g->pw, g->kh, g->kw);
        return false;
    }
    g->H = pl.H;
    g->W = pl.W;
    g->planes = pl.planes;
    g->Ho = pool_out_size(g->H, g->kh, g->ph, g->sh, g->dh, o.ceil_mode);
    g->Wo = pool_out_size(g->W, g->kw, g->pw, g->sw, g->dw, o.ceil_mode);
    if (g->Ho < 1 || g->Wo < 1 || g->H < 1 || g->W < 1) {
        char s[96];
        tg_error(TG_ERR_SHAPE, "%s: x %s is too small for kernel (%d, %d), padding (%d, %d), dilation (%d, %d): output (%lld, %lld)",
                 op, tg_shape_str(x, s, sizeof s), g->kh, g->kw, g->ph, g->pw, g->dh, g->dw, (long long)g->Ho,
                 (long long)g->Wo);
        return false;
    }
    return true;
}

/* ---- max pool -------------------------------------------------------------------------------- */

typedef struct {
    pool_geom g;
    int32_t *argmax; /* (planes, Ho, Wo): flat index into the (H, W) plane */
} maxpool_ctx;

static void max_pool2d_backward(tg_node *n)
{
    const maxpool_ctx *cx = n->ctx;
    const pool_geom *g = &cx->g;
    float *dx = tg_input_grad(n, 0);
    if (!dx) return;
    const float *dy = n->out->grad;
    const int64_t HW = g->H * g->W, L = g->Ho * g->Wo;
#pragma omp parallel for if (g->planes * L > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < g->planes; p++) {
        float *dxp = dx + p * HW;
        const float *dyp = dy + p * L;
        const int32_t *am = cx->argmax + p * L;
        for (int64_t l = 0; l < L; l++) dxp[am[l]] += dyp[l];
    }
}

TG_OP_DEFINE(MAX_POOL2D_OP, max_pool2d, max_pool2d_backward);

/* The 2x2 maximum alone over one plane (no record wanted: no argmax), branch-free so it
 * vectorizes; the same value as max_pool_2x2's comparisons (first maximum wins, a NaN replaces
 * the running max). */
TG_CLONES static void max_plane_2x2(const float *restrict x, float *restrict y, int64_t W, int64_t Ho, int64_t Wo)
{
    for (int64_t oh = 0; oh < Ho; oh++) {
        const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
        float *o = y + oh * Wo;
        for (int64_t ow = 0; ow < Wo; ow++) {
            const float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
            float m = a;
            m = (b > m) | (b != b) ? b : m;
            m = (c > m) | (c != c) ? c : m;
            m = (d > m) | (d != d) ? d : m;
            o[ow] = m;
        }
    }
}

static void max_pool_2x2_values(const float *x, float *y, const pool_geom *g)
{
#pragma omp parallel for if (g->planes * g->H * g->W > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < g->planes; p++)
        max_plane_2x2(x + p * g->H * g->W, y + p * g->Ho * g->Wo, g->W, g->Ho, g->Wo);
}

/* 2x2 windows, stride 2, no padding, every window inside the input. */
static void max_pool_2x2(const float *x, float *y, int32_t *am, const pool_geom *g)
{
    const int64_t H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
#pragma omp parallel for if (g->planes * H * W > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < g->planes; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * Ho * Wo;
        int32_t *ap = am + p * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            const float *r0 = xp + 2 * oh * W, *r1 = r0 + W;
            const int32_t base = (int32_t)(2 * oh * W);
            for (int64_t ow = 0; ow < Wo; ow++) {
                float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                float m = a;
                int32_t k = 0;
                /* first maximum wins; a NaN replaces the running max, as PyTorch */
                if (b > m || isnan(b)) { m = b; k = 1; }
                if (c > m || isnan(c)) { m = c; k = 2; }
                if (d > m || isnan(d)) { m = d; k = 3; }
                yp[oh * Wo + ow] = m;
                ap[oh * Wo + ow] = base + (int32_t)(2 * ow) + (k & 1) + (k >> 1) * (int32_t)W;
            }
        }
    }
}

static void max_pool_general(const float *x, float *y, int32_t *am, const pool_geom *g)
{
    const int64_t H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
#pragma omp parallel for if (g->planes * Ho * Wo * g->kh * g->kw > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < g->planes; p++) {
        const float *xp = x + p * H * W;
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0 = oh * g->sh - g->ph, h1 = h0 + (int64_t)(g->kh - 1) * g->dh + 1;
            if (h1 > H) h1 = H;
            while (h0 < 0) h0 += g->dh;
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t w0 = ow * g->sw - g->pw, w1 = w0 + (int64_t)(g->kw - 1) * g->dw + 1;
                if (w1 > W) w1 = W;
                while (w0 < 0) w0 += g->dw;
                float m = -INFINITY;
                int64_t k = h0 * W + w0;
                for (int64_t ih = h0; ih < h1; ih += g->dh)
                    for (int64_t iw = w0; iw < w1; iw += g->dw) {
                        float v = xp[ih * W + iw];
                        if (v > m || isnan(v)) {
                            m = v;
                            k = ih * W + iw;
                        }
                    }
                y[(p * Ho + oh) * Wo + ow] = m;
                am[(p * Ho + oh) * Wo + ow] = (int32_t)k;
            }
        }
    }
}

tg_tensor *tg_max_pool2d(tg_tensor *x, tg_pool2d_opts opts)
{
    const char *op = "tg_max_pool2d";
    maxpool_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!cx) return NULL;
    if (!pool_setup(op, x, opts, true, &cx->g)) return NULL;
    const pool_geom *g = &cx->g;
    if (g->H * g->W > INT32_MAX) {
        tg_error(TG_ERR_SHAPE, "%s: planes of %lld x %lld are too large", op, (long long)g->H, (long long)g->W);
        return NULL;
    }
    tg_tensor *y = tg_planes_output(x, g->Ho, g->Wo);
    if (!y) return NULL;
    bool fast = g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 && g->dh == 1 &&
                g->dw == 1 && 2 * g->Ho <= g->H && 2 * g->Wo <= g->W;
    if (fast && !(tg_grad_enabled() && x->requires_grad)) { /* nothing will be recorded: no argmax */
        max_pool_2x2_values(x->data, y->data, g);
        tg_record(&MAX_POOL2D_OP, y, 1, &x); /* records nothing; the profiler counts the call */
        return y;
    }
    cx->argmax = tg_arena_alloc((size_t)(g->planes * g->Ho * g->Wo) * sizeof(int32_t));
    if (!cx->argmax) return NULL;
    if (fast) max_pool_2x2(x->data, y->data, cx->argmax, g);
    else max_pool_general(x->data, y->data, cx->argmax, g);
    tg_node *n = tg_record(&MAX_POOL2D_OP, y, 1, &x);
    if (n) n->ctx = cx;
    return y;
}

/* ---- average pool ---------------------------------------------------------------------------- */

/* Window [h0, h1) x [w0, w1) clipped to the input, and its divisor. */
static inline float avg_window(const pool_geom *g, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1, int64_t *w0,
                               int64_t *w1)
{
    int64_t hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    int64_t he = hs + g->kh, we = ws + g->kw;
    if (he > g->H + g->ph) he = g->H + g->ph;
    if (we > g->W + g->pw) we = g->W + g->pw;
    int64_t pool_size = (he - hs) * (we - ws);
    if (hs < 0) hs = 0;
    if (ws < 0) ws = 0;
    if (he > g->H) he = g->H;
    if (we > g->W) we = g->W;
    *h0 = hs;
    *h1 = he;
    *w0 = ws;
    *w1 = we;
    return (float)(g->exclude_pad ? (he - hs) * (we - ws) : pool_size);
}

static void avg_pool2d_backward(tg_node *n)
{
    const pool_geom *g = n->ctx;
    float *dx = tg_input_grad(n, 0);
    if (!dx) return;
    const float *dy = n->out->grad;
    const int64_t HW = g->H * g->W, L = g->Ho * g->Wo;
#pragma omp parallel for if (g->planes * L * g->kh * g->kw > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < g->planes; p++) {
        float *dxp = dx + p * HW;
        for (int64_t oh = 0; oh < g->Ho; oh++)
            for (int64_t ow = 0; ow < g->Wo; ow++) {
                int64_t h0, h1, w0, w1;
                float div = avg_window(g, oh, ow, &h0, &h1, &w0, &w1);
                float v = dy[p * L + oh * g->Wo + ow] / div;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) dxp[ih * g->W + iw] += v;
            }
    }
}

TG_OP_DEFINE(AVG_POOL2D_OP, avg_pool2d, avg_pool2d_backward);

tg_tensor *tg_avg_pool2d(tg_tensor *x, tg_pool2d_opts opts)
{
    const char *op = "tg_avg_pool2d";
    pool_geom *g = tg_arena_alloc(sizeof *g);
    if (!g) return NULL;
    if (!pool_setup(op, x, opts, false, g)) return NULL;
    tg_tensor *y = tg_planes_output(x, g->Ho, g->Wo);
    if (!y) return NULL;
    const int64_t HW = g->H * g->W, L = g->Ho * g->Wo;
#pragma omp parallel for if (g->planes * L * g->kh * g->kw > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < g->planes; p++) {
        const float *xp = x->data + p * HW;
        for (int64_t oh = 0; oh < g->Ho; oh++)
            for (int64_t ow = 0; ow < g->Wo; ow++) {
                int64_t h0, h1, w0, w1;
                float div = avg_window(g, oh, ow, &h0, &h1, &w0, &w1);
                float s = 0.0f;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) s += xp[ih * g->W + iw];
                y->data[p * L + oh * g->Wo + ow] = s / div;
            }
    }
    tg_node *n = tg_record(&AVG_POOL2D_OP, y, 1, &x);
    if (n) n->ctx = g;
    return y;
}

/* ---- adaptive average pool ------------------------------------------------------------------- */

static inline int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
static inline int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

typedef struct {
    int64_t Ho, Wo;
} adaptive_ctx;

static void adaptive_avg_pool2d_backward(tg_node *n)
{
    tg_tensor *x = n->in[0];
    const adaptive_ctx *c = n->ctx;
    float *dx = tg_input_grad(n, 0);
    if (!dx) return;
    const float *dy = n->out->grad;
    const int64_t H = x->shape[x->ndim - 2], W = x->shape[x->ndim - 1], Ho = c->Ho, Wo = c->Wo;
    const int64_t planes = x->numel / (H * W);
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        float *dxp = dx + p * H * W;
        for (int64_t oh = 0; oh < Ho; oh++) {
            int64_t h0 = adaptive_start(oh, H, Ho), h1 = adaptive_end(oh, H, Ho);
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t w0 = adaptive_start(ow, W, Wo), w1 = adaptive_end(ow, W, Wo);
                float v = dy[(p * Ho + oh) * Wo + ow] / (float)((h1 - h0) * (w1 - w0));
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) dxp[ih * W + iw] += v;
            }
        }
    }
}

TG_OP_DEFINE(ADAPTIVE_AVG_POOL2D_OP, adaptive_avg_pool2d, adaptive_avg_pool2d_backward);

tg_tensor *tg_adaptive_avg_pool2d(tg_tensor *x, int64_t out_h, int64_t out_w)
{
    const char *op = "tg_adaptive_avg_pool2d";
    tg_planes pl;
    if (!tg_check_planes(op, "x", x, 3, &pl)) return NULL;
    const int64_t H = pl.H, W = pl.W;
    if (out_h <= 0 || out_w <= 0 || H <= 0 || W <= 0) {
        char s[96];
        tg_error(TG_ERR_ARG, "%s: output size (%lld, %lld) must be positive and x %s non-empty", op, (long long)out_h,
                 (long long)out_w, tg_shape_str(x, s, sizeof s));
        return NULL;
    }
    tg_tensor *y = tg_planes_output(x, out_h, out_w);
    if (!y) return NULL;
    const int64_t planes = pl.planes;
#pragma omp parallel for if (x->numel > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x->data + p * H * W;
        for (int64_t oh = 0; oh < out_h; oh++) {
            int64_t h0 = adaptive_start(oh, H, out_h), h1 = adaptive_end(oh, H, out_h);
            for (int64_t ow = 0; ow < out_w; ow++) {
                int64_t w0 = adaptive_start(ow, W, out_w), w1 = adaptive_end(ow, W, out_w);
                float s = 0.0f;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) s += xp[ih * W + iw];
                y->data[(p * out_h + oh) * out_w + ow] = s / (float)((h1 - h0) * (w1 - w0));
            }
        }
    }
    tg_node *n = tg_record(&ADAPTIVE_AVG_POOL2D_OP, y, 1, &x);
    if (n && !TG_SAVE_CTX(n, adaptive_ctx, .Ho = out_h, .Wo = out_w)) return NULL;
    return y;
}
