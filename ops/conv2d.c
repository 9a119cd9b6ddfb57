/* 2-D convolution (cross-correlation, as PyTorch) and its adjoint, the transposed convolution.
 *
 * conv2d:           x (N,C,H,W), w (O,C/g,kh,kw), b (O) -> y (N,O,Ho,Wo),
 *                   Ho = floor((H + 2p - d(k-1) - 1)/s) + 1.
 *   forward   per image: col = im2col(x_n) (C*kh*kw, Ho*Wo); per group y_g = W_g . col_g (+ b)
 *   backward  dW_g += dY_g . col_gᵀ;  dcol_g = W_gᵀ . dY_g, dx += col2im(dcol);  db += Σ dY
 * conv_transpose2d: x (N,C,H,W), w (C,O/g,kh,kw), b (O) -> y (N,O,Ho,Wo),
 *                   Ho = (H-1)s - 2p + d(k-1) + output_padding + 1.
 *   It is the adjoint of conv2d from (O,Ho,Wo) to (C,H,W): y = col2im(W_gᵀ . x_g), and its
 *   backward runs im2col on dY: dx_g = W_g . im2col(dY)_g, dW_g += x_g . im2col(dY)_gᵀ.
 *
 * Matrix products go through cblas_sgemm (OpenBLAS threads them); im2col/col2im run
 * channels in parallel with OpenMP. 1x1 stride-1 unpadded convs skip im2col entirely.
 */
#include "../core/core_internal.h"
#include "conv_internal.h"
#include "conv_onednn.h"
#include "spatial_internal.h"
#include "nn_ops.h"

#include <cblas.h>
#include <string.h>

/* Geometry of one conv2d: input plane (C,H,W) -> output plane (Ho,Wo). */
typedef struct {
    int64_t C, H, W, Ho, Wo;
    int kh, kw, sh, sw, ph, pw, dh, dw;
} conv_geom;

/* 3x3, stride 1, padding 1, dilation 1 with the same output size: the direct kernel's case. */
static bool geom_is_3x3_same(const conv_geom *g, int64_t groups)
{
    return groups == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->ph == 1 && g->pw == 1 &&
           g->dh == 1 && g->dw == 1;
}

static bool geom_is_pointwise(const conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 && g->Ho == g->H &&
           g->Wo == g->W;
}

/* Valid output columns [lo, hi) for kernel column kj: 0 <= ow*s - p + kj*d < W. */
static void valid_range(int64_t out, int64_t in, int s, int p, int off, int64_t *lo, int64_t *hi)
{
    /* ow*s >= p - off  and  ow*s < in + p - off */
    int64_t a = p - off, b = in + p - off;
    int64_t l = a <= 0 ? 0 : (a + s - 1) / s;
    int64_t h = b <= 0 ? 0 : (b + s - 1) / s;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* col (C*kh*kw, Ho*Wo) from x (C,H,W); zeros where the window hits padding. */
static void im2col(const float *x, const conv_geom *g, float *col)
{
    const int64_t HW = g->H * g->W, L = g->Ho * g->Wo;
#pragma omp parallel for if (g->C * g->kh * g->kw * L > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < g->C; c++) {
        const float *xc = x + c * HW;
        for (int ki = 0; ki < g->kh; ki++) {
            for (int kj = 0; kj < g->kw; kj++) {
                float *row = col + ((c * g->kh + ki) * g->kw + kj) * L;
                int64_t w0, w1;
                valid_range(g->Wo, g->W, g->sw, g->pw, kj * g->dw, &w0, &w1);
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    float *r = row + oh * g->Wo;
                    int64_t ih = oh * g->sh - g->ph + (int64_t)ki * g->dh;
                    if (ih < 0 || ih >= g->H) {
                        memset(r, 0, (size_t)g->Wo * sizeof(float));
                        continue;
                    }
                    const float *xr = xc + ih * g->W;
                    const int64_t shift = (int64_t)kj * g->dw - g->pw; /* iw = ow*sw + shift */
                    for (int64_t ow = 0; ow < w0; ow++) r[ow] = 0.0f;
                    if (g->sw == 1) memcpy(r + w0, xr + w0 + shift, (size_t)(w1 - w0) * sizeof(float));
                    else
                        for (int64_t ow = w0; ow < w1; ow++) r[ow] = xr[ow * g->sw + shift];
                    for (int64_t ow = w1; ow < g->Wo; ow++) r[ow] = 0.0f;
                }
            }
        }
    }
}

/* x (C,H,W) += col2im(col): the adjoint of im2col. */
static void col2im_add(const float *col, const conv_geom *g, float *x)
{
    const int64_t HW = g->H * g->W, L = g->Ho * g->Wo;
#pragma omp parallel for if (g->C * g->kh * g->kw * L > TG_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < g->C; c++) {
        float *xc = x + c * HW;
        for (int ki = 0; ki < g->kh; ki++) {
            for (int kj = 0; kj < g->kw; kj++) {
                const float *row = col + ((c * g->kh + ki) * g->kw + kj) * L;
                int64_t w0, w1;
                valid_range(g->Wo, g->W, g->sw, g->pw, kj * g->dw, &w0, &w1);
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    int64_t ih = oh * g->sh - g->ph + (int64_t)ki * g->dh;
                    if (ih < 0 || ih >= g->H) continue;
                    const float *r = row + oh * g->Wo;
                    float *xr = xc + ih * g->W;
                    const int64_t shift = (int64_t)kj * g->dw - g->pw;
                    if (g->sw == 1)
                        for (int64_t ow = w0; ow < w1; ow++) xr[ow + shift] += r[ow];
                    else
                        for (int64_t ow = w0; ow < w1; ow++) xr[ow * g->sw + shift] += r[ow];
                }
            }
        }
    }
}

/* y (N,O,L) += b broadcast over L. */
static void add_bias(float *y, const float *b, int64_t N, int64_t O, int64_t L)
{
#pragma omp parallel for if (N * O * L > TG_PARALLEL_MIN) schedule(static)
    for (int64_t no = 0; no < N * O; no++) {
        float bv = b[no % O], *yr = y + no * L;
        for (int64_t l = 0; l < L; l++) yr[l] += bv;
    }
}

/* db (O) += Σ_{n,l} dy (N,O,L), summed in double per channel. */
void tg_conv_bias_grad(float *db, const float *dy, int64_t N, int64_t O, int64_t L)
{
#pragma omp parallel for if (N * O * L > TG_PARALLEL_MIN) schedule(static)
    for (int64_t o = 0; o < O; o++) {
        double s = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *r = dy + (n * O + o) * L;
            float part = 0.0f;
            for (int64_t l = 0; l < L; l++) part += r[l];
            s += part;
        }
        db[o] += (float)s;
    }
}

/* ---- options and checks ---------------------------------------------------------------------- */

typedef struct {
    int sh, sw, ph, pw, dh, dw, oph, opw, groups;
} conv_params;

static bool read_opts(const char *op, tg_conv2d_opts o, bool transposed, conv_params *p)
{
    p->sh = o.stride[0] ? o.stride[0] : 1;
    p->sw = o.stride[1] ? o.stride[1] : 1;
    p->dh = o.dilation[0] ? o.dilation[0] : 1;
    p->dw = o.dilation[1] ? o.dilation[1] : 1;
    p->ph = o.padding[0];
    p->pw = o.padding[1];
    p->oph = o.output_padding[0];
    p->opw = o.output_padding[1];
    p->groups = o.groups ? o.groups : 1;
    if (p->sh < 0 || p->sw < 0) {
        tg_error(TG_ERR_ARG, "%s: stride must be positive, got (%d, %d)", op, o.stride[0], o.stride[1]);
        return false;
    }
    if (p->dh < 0 || p->dw < 0) {
        tg_error(TG_ERR_ARG, "%s: dilation must be positive, got (%d, %d)", op, o.dilation[0], o.dilation[1]);
        return false;
    }
    if (p->ph < 0 || p->pw < 0) {
        tg_error(TG_ERR_ARG, "%s: padding must be non-negative, got (%d, %d)", op, p->ph, p->pw);
        return false;
    }
    if (p->groups < 0) {
        tg_error(TG_ERR_ARG, "%s: groups must be positive, got %d", op, p->groups);
        return false;
    }
    if (!transposed && (p->oph || p->opw)) {
        tg_error(TG_ERR_ARG, "%s: output_padding is for conv_transpose2d only, got (%d, %d)", op, p->oph, p->opw);
        return false;
    }
    if (transposed && (p->oph < 0 || p->opw < 0 || (p->oph >= p->sh && p->oph >= p->dh) ||
                       (p->opw >= p->sw && p->opw >= p->dw))) {
        tg_error(TG_ERR_ARG,
                 "%s: output_padding (%d, %d) must be non-negative and smaller than either stride (%d, %d) or "
                 "dilation (%d, %d)",
                 op, p->oph, p->opw, p->sh, p->sw, p->dh, p->dw);
        return false;
    }
    return true;
}

/* The opening both convolutions share: x and weight 4-D float tensors, valid options, and their
 * shapes as text for messages (sx, sw: 96 chars). false + error naming op otherwise. */
static bool conv_open(const char *op, const tg_tensor *x, const tg_tensor *w, tg_conv2d_opts opts, bool transposed,
                      conv_params *p, char *sx, char *sw)
{
    tg_blas_check_kernel(); /* one stderr line if OpenBLAS runs generic kernels */
    tg_planes px, pw;
    if (!tg_check_planes(op, "x", x, 4, &px) || !tg_check_planes(op, "weight", w, 4, &pw)) return false;
    if (!read_opts(op, opts, transposed, p)) return false;
    tg_shape_str(x, sx, 96);
    tg_shape_str(w, sw, 96);
    return true;
}

static bool check_bias(const char *op, const tg_tensor *b, int64_t O)
{
    if (!b) return true;
    if (!tg_check_f32(op, "bias", b)) return false;
    if (b->ndim != 1 || b->shape[0] != O) {
        char s[96];
        tg_error(TG_ERR_SHAPE, "%s: bias must have shape (%lld) (one value per output channel), got %s", op,
                 (long long)O, tg_shape_str(b, s, sizeof s));
        return false;
    }
    return true;
}

/* ---- conv2d ---------------------------------------------------------------------------------- */

typedef struct {
    conv_geom g;   /* geometry of one image (all C channels) */
    int groups;
    tg_conv_plan plan; /* kernel path of each phase, chosen in forward */
} conv_ctx;

static tg_conv_desc onednn_desc(const conv_geom *g, int64_t N, int64_t O, int64_t G)
{
    return (tg_conv_desc){.N = N, .C = g->C, .H = g->H, .W = g->W, .O = O, .Ho = g->Ho, .Wo = g->Wo, .kh = g->kh,
                          .kw = g->kw, .sh = g->sh, .sw = g->sw, .ph = g->ph, .pw = g->pw, .dh = g->dh, .dw = g->dw,
                          .groups = (int)G};
}

/* tapegrad's own 3x3 kernel of a run kind (tg_conv3x3_direct and tg_conv3x3_winograd take the same
 * arguments), or NULL for im2col and oneDNN. */
typedef bool (*conv3x3_fn)(const float *, int64_t, int64_t, int64_t, int64_t, const float *, int64_t, bool, float *,
                           bool, const float *);
static conv3x3_fn own_3x3(tg_conv_run r)
{
    return r == TG_CONV_RUN_DIRECT ? tg_conv3x3_direct : r == TG_CONV_RUN_WINOGRAD_OWN ? tg_conv3x3_winograd : NULL;
}

static void conv2d_backward(tg_node *n)
{
    const conv_ctx *cx = n->ctx;
    const conv_geom *g = &cx->g;
    tg_tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    const float *dy = n->out->grad;
    const int64_t N = x->shape[0], O = w->shape[0], G = cx->groups;
    const int64_t Cg = g->C / G, Og = O / G, K = Cg * g->kh * g->kw, L = g->Ho * g->Wo, HW = g->H * g->W;
    const bool pointwise = geom_is_pointwise(g);
    const bool need_x = tg_needs_grad(x), need_w = tg_needs_grad(w);
    const conv3x3_fn dx_own = need_x ? own_3x3(cx->plan.dx) : NULL;
    const bool dw_direct = need_w && cx->plan.dw == TG_CONV_RUN_DIRECT;
    const bool dx_wino = need_x && cx->plan.dx == TG_CONV_RUN_WINOGRAD;
    const bool dx_dnnl = (need_x && cx->plan.dx == TG_CONV_RUN_ONEDNN) || dx_wino;
    const bool dw_wino = need_w && cx->plan.dw == TG_CONV_RUN_WINOGRAD;
    const bool dw_dnnl = (need_w && cx->plan.dw == TG_CONV_RUN_ONEDNN) || dw_wino;
    const bool dx_col = need_x && cx->plan.dx == TG_CONV_RUN_IM2COL;
    const bool dw_wino_own = need_w && cx->plan.dw == TG_CONV_RUN_WINOGRAD_OWN;
    /* the direct weight gradient sums the bias gradient from the same pass over dy */
    const bool dw_gemm = dw_direct && tg_conv3x3_dw_by_gemm(g->C, O);
    const bool dw_col = (need_w && cx->plan.dw == TG_CONV_RUN_IM2COL) || dw_gemm;
    const bool db_with_dw = (dw_direct && !dw_gemm) || dw_dnnl;
    if (b && tg_needs_grad(b) && !db_with_dw) {
        float *db = tg_grad(b);
        if (!db) return; /* out of memory: the error is set */
        tg_conv_bias_grad(db, dy, N, O, L);
    }
    if (!need_x && !need_w) return;
    /* the direct kernels and oneDNN write every element of dx: a new buffer needs no zero-fill */
    bool fresh = false;
    float *dw = need_w ? tg_grad(w) : NULL;
    if (need_w && !dw) return; /* out of memory: the error is set */
    float *db = db_with_dw && b && tg_needs_grad(b) ? tg_grad(b) : NULL;
    if (db_with_dw && b && tg_needs_grad(b) && !db) return;
    if (dw_direct && !dw_gemm && !tg_conv3x3_direct_dw(x->data, N, g->C, g->H, g->W, dy, O, dw, db)) return;
    if (dw_wino_own && !tg_conv3x3_winograd_dw(x->data, N, g->C, g->H, g->W, dy, O, dw)) return;
    tg_conv_desc d = onednn_desc(g, N, O, G);
    if (dw_wino && !tg_conv_onednn_backward_weights_winograd(&d, x->data, dy, dw, db)) return;
    if (dw_dnnl && !dw_wino && !tg_conv_onednn_backward_weights(&d, x->data, dy, dw, db)) return;
    tg_scratch_give_back(); /* dx after the weight gradient's work memory went back (Winograd's: 77 MB at crop 480) */
    float *dx = !need_x ? NULL : dx_col ? tg_grad(x) : tg_grad_fresh(x, &fresh);
    if (need_x && !dx) return;
    if (dx_dnnl) {
        d.winograd = dx_wino;
        if (dx_dnnl && !tg_conv_onednn_backward_data(&d, dy, w->data, dx, !fresh)) return;
    }
    if (dw_col || dx_col) {
        float *col = pointwise ? NULL : tg_scratch_alloc(0, (size_t)(g->C * g->kh * g->kw * L) * sizeof(float));
        if (!pointwise && !col) return; /* out of memory: error is set */
        for (int64_t i = 0; i < N; i++) {
            const float *xi = x->data + i * g->C * HW;
            const float *dyi = dy + i * O * L;
            if (dw_col) {
                const float *c = xi;
                if (!pointwise) {
                    im2col(xi, g, col);
                    c = col;
                }
                for (int64_t gi = 0; gi < G; gi++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Og, (int)K, (int)L, 1.0f, dyi + gi * Og * L,
                                (int)L, c + gi * K * L, (int)L, 1.0f, dw + gi * Og * K, (int)K);
            }
            if (dx_col) {
                float *dxi = dx + i * g->C * HW;
                for (int64_t gi = 0; gi < G; gi++)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)L, (int)Og, 1.0f,
                                w->data + gi * Og * K, (int)K, dyi + gi * Og * L, (int)L, pointwise ? 1.0f : 0.0f,
                                pointwise ? dxi + gi * K * L : col + gi * K * L, (int)L);
                if (!pointwise) col2im_add(col, g, dxi);
            }
        }
    }
    if (dx_own) dx_own(dy, N, O, g->H, g->W, w->data, g->C, true, dx, !fresh, NULL); /* an error is set if it fails */
}

TG_OP_DEFINE(CONV2D_OP, conv2d, conv2d_backward);

tg_tensor *tg_conv2d(tg_tensor *x, tg_tensor *w, tg_tensor *bias, tg_conv2d_opts opts)
{
    const char *op = "tg_conv2d";
    conv_params p;
    char sx[96], sw[96];
    if (!conv_open(op, x, w, opts, false, &p, sx, sw)) return NULL;
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t O = w->shape[0], kh = w->shape[2], kw = w->shape[3], G = p.groups;
    if (C % G || O % G) {
        tg_error(TG_ERR_SHAPE, "%s: groups=%lld must divide both input channels %lld (x %s) and output channels %lld (weight %s)",
                 op, (long long)G, (long long)C, sx, (long long)O, sw);
        return NULL;
    }
    if (w->shape[1] * G != C) {
        tg_error(TG_ERR_SHAPE,
                 "%s: x %s has %lld channels but weight %s expects %lld (weight.shape[1]=%lld times groups=%lld)", op,
                 sx, (long long)C, sw, (long long)(w->shape[1] * G), (long long)w->shape[1], (long long)G);
        return NULL;
    }
    if (!check_bias(op, bias, O)) return NULL;
    const int64_t ekh = (int64_t)p.dh * (kh - 1) + 1, ekw = (int64_t)p.dw * (kw - 1) + 1;
    if (H + 2 * p.ph < ekh || W + 2 * p.pw < ekw) {
        tg_error(TG_ERR_SHAPE, "%s: kernel size (%lld, %lld) (dilated: (%lld, %lld)) is larger than the padded input (%lld, %lld) of x %s",
                 op, (long long)kh, (long long)kw, (long long)ekh, (long long)ekw, (long long)(H + 2 * p.ph),
                 (long long)(W + 2 * p.pw), sx);
        return NULL;
    }
    conv_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!cx) return NULL;
    conv_geom *g = &cx->g;
    *g = (conv_geom){.C = C, .H = H, .W = W, .Ho = (H + 2 * p.ph - ekh) / p.sh + 1, .Wo = (W + 2 * p.pw - ekw) / p.sw + 1,
                     .kh = (int)kh, .kw = (int)kw, .sh = p.sh, .sw = p.sw, .ph = p.ph, .pw = p.pw, .dh = p.dh, .dw = p.dw};
    cx->groups = (int)G;
    tg_tensor *y = tg_output_new(TG_F32, 4, (const int64_t[]){N, O, g->Ho, g->Wo});
    if (!y) return NULL;
    const int64_t Cg = C / G, Og = O / G, K = Cg * kh * kw, L = g->Ho * g->Wo;
    const bool pointwise = geom_is_pointwise(g);
    cx->plan = tg_conv_choose(N, C, O, H, W, (int)kh, (int)kw, geom_is_3x3_same(g, G), tg_conv_onednn_built());
    const conv3x3_fn own = own_3x3(cx->plan.fwd);
    const bool direct = own != NULL;
    const bool dnnl = cx->plan.fwd == TG_CONV_RUN_ONEDNN || cx->plan.fwd == TG_CONV_RUN_WINOGRAD;
    if (dnnl) {
        tg_conv_desc d = onednn_desc(g, N, O, G);
        d.winograd = cx->plan.fwd == TG_CONV_RUN_WINOGRAD;
        if (!tg_conv_onednn_forward(&d, x->data, w->data, bias ? bias->data : NULL, y->data)) return NULL;
    }
    float *col = pointwise || direct || dnnl ? NULL : tg_scratch_alloc(0, (size_t)(C * kh * kw * L) * sizeof(float));
    if (!pointwise && !direct && !dnnl && !col) return NULL;
    if (own && !own(x->data, N, C, H, W, w->data, O, false, y->data, false, bias ? bias->data : NULL)) return NULL;
    for (int64_t i = 0; i < N && !direct && !dnnl; i++) {
        const float *xi = x->data + i * C * H * W, *c = xi;
        if (!pointwise) {
            im2col(xi, g, col);
            c = col;
        }
        for (int64_t gi = 0; gi < G; gi++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Og, (int)L, (int)K, 1.0f, w->data + gi * Og * K,
                        (int)K, c + gi * K * L, (int)L, 0.0f, y->data + (i * O + gi * Og) * L, (int)L);
    }
    if (bias && !direct && !dnnl) add_bias(y->data, bias->data, N, O, L);
    tg_tensor *in[3] = {x, w, bias};
    tg_node *n = tg_record(&CONV2D_OP, y, bias ? 3 : 2, in);
    if (n) n->ctx = cx;
    return y;
}

/* ---- conv_transpose2d ------------------------------------------------------------------------ */

/* Here the conv geometry g runs the other way: its "input" plane is the output y (O,Ho,Wo)
 * and its "output" plane is x's (H,W); K = Og*kh*kw rows of col per group. */
static void conv_transpose2d_backward(tg_node *n)
{
    const conv_ctx *cx = n->ctx;
    const conv_geom *g = &cx->g;
    tg_tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    const float *dy = n->out->grad;
    const int64_t N = x->shape[0], C = x->shape[1], G = cx->groups, O = g->C;
    const int64_t Cg = C / G, Og = O / G, K = Og * g->kh * g->kw, L = g->Ho * g->Wo, OHW = O * g->H * g->W;
    const bool pointwise = geom_is_pointwise(g);
    if (b && tg_needs_grad(b)) {
        float *db = tg_grad(b);
        if (!db) return; /* out of memory: the error is set */
        tg_conv_bias_grad(db, dy, N, O, g->H * g->W);
    }
    bool need_x = tg_needs_grad(x), need_w = tg_needs_grad(w);
    if (!need_x && !need_w) return;
    float *dx = need_x ? tg_grad(x) : NULL, *dw = need_w ? tg_grad(w) : NULL;
    float *col = pointwise ? NULL : tg_scratch_alloc(0, (size_t)(O * g->kh * g->kw * L) * sizeof(float));
    if ((need_x && !dx) || (need_w && !dw) || (!pointwise && !col)) return;
    for (int64_t i = 0; i < N; i++) {
        const float *c = dy + i * OHW;
        if (!pointwise) {
            im2col(c, g, col);
            c = col;
        }
        for (int64_t gi = 0; gi < G; gi++) {
            const float *xg = x->data + (i * C + gi * Cg) * L;
            if (need_x) /* dx_g (Cg, L) += W_g (Cg, K) . col_g (K, L) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Cg, (int)L, (int)K, 1.0f, w->data + gi * Cg * K,
                            (int)K, c + gi * K * L, (int)L, 1.0f, dx + (i * C + gi * Cg) * L, (int)L);
            if (need_w) /* dW_g (Cg, K) += x_g (Cg, L) . col_gᵀ (L, K) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Cg, (int)K, (int)L, 1.0f, xg, (int)L,
                            c + gi * K * L, (int)L, 1.0f, dw + gi * Cg * K, (int)K);
        }
    }
}

TG_OP_DEFINE(CONV_TRANSPOSE2D_OP, conv_transpose2d, conv_transpose2d_backward);

tg_tensor *tg_conv_transpose2d(tg_tensor *x, tg_tensor *w, tg_tensor *bias, tg_conv2d_opts opts)
{
    const char *op = "tg_conv_transpose2d";
    conv_params p;
    char sx[96], sw[96];
    if (!conv_open(op, x, w, opts, true, &p, sx, sw)) return NULL;
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t G = p.groups, O = w->shape[1] * G, kh = w->shape[2], kw = w->shape[3];
    if (C % G) {
        tg_error(TG_ERR_SHAPE, "%s: groups=%lld must divide the input channels %lld of x %s", op, (long long)G,
                 (long long)C, sx);
        return NULL;
    }
    if (w->shape[0] != C) {
        tg_error(TG_ERR_SHAPE, "%s: x %s has %lld channels but weight %s expects %lld (weight.shape[0])", op, sx,
                 (long long)C, sw, (long long)w->shape[0]);
        return NULL;
    }
    if (!check_bias(op, bias, O)) return NULL;
    const int64_t Ho = (H - 1) * p.sh - 2 * p.ph + (int64_t)p.dh * (kh - 1) + p.oph + 1;
    const int64_t Wo = (W - 1) * p.sw - 2 * p.pw + (int64_t)p.dw * (kw - 1) + p.opw + 1;
    if (Ho <= 0 || Wo <= 0) {
        tg_error(TG_ERR_SHAPE, "%s: output size (%lld, %lld) is too small for x %s and weight %s", op, (long long)Ho,
                 (long long)Wo, sx, sw);
        return NULL;
    }
    conv_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!cx) return NULL;
    conv_geom *g = &cx->g;
    *g = (conv_geom){.C = O, .H = Ho, .W = Wo, .Ho = H, .Wo = W, .kh = (int)kh, .kw = (int)kw, .sh = p.sh, .sw = p.sw,
                     .ph = p.ph, .pw = p.pw, .dh = p.dh, .dw = p.dw};
    cx->groups = (int)G;
    tg_tensor *y = tg_output_new(TG_F32, 4, (const int64_t[]){N, O, Ho, Wo});
    if (!y) return NULL;
    const int64_t Cg = C / G, Og = O / G, K = Og * kh * kw, L = H * W;
    const bool pointwise = geom_is_pointwise(g);
    float *col = pointwise ? NULL : tg_scratch_alloc(0, (size_t)(O * kh * kw * L) * sizeof(float));
    if (!pointwise && !col) return NULL;
    for (int64_t i = 0; i < N; i++) {
        float *yi = y->data + i * O * Ho * Wo;
        float *c = pointwise ? yi : col;
        for (int64_t gi = 0; gi < G; gi++) /* col_g (K, L) = W_gᵀ (K, Cg) . x_g (Cg, L) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)L, (int)Cg, 1.0f, w->data + gi * Cg * K,
                        (int)K, x->data + (i * C + gi * Cg) * L, (int)L, 0.0f, c + gi * K * L, (int)L);
        if (!pointwise) {
            memset(yi, 0, (size_t)(O * Ho * Wo) * sizeof(float));
            col2im_add(col, g, yi);
        }
    }
    if (bias) add_bias(y->data, bias->data, N, O, Ho * Wo);
    tg_tensor *in[3] = {x, w, bias};
    tg_node *n = tg_record(&CONV_TRANSPOSE2D_OP, y, bias ? 3 : 2, in);
    if (n) n->ctx = cx;
    return y;
}
