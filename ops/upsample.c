/* Upsampling of (N,C,H,W): bilinear and nearest, with PyTorch 1.13's index formulas.
 *
 * Output size: size if given, else floor(in * scale).
 * bilinear: ratio = align_corners ? (in-1)/(out-1) (0 if out == 1)
 *                                 : (scale given ? 1/scale : in/out);
 *           src = align_corners ? ratio*dst : max(ratio*(dst+0.5) - 0.5, 0);
 *           i0 = floor(src), i1 = min(i0+1, in-1), l1 = src - i0, l0 = 1 - l1 (identity if out == in).
 * nearest:  src = out == in ? dst : out == 2in ? dst/2 : min(floor(dst * scale'), in-1),
 *           scale' = scale given ? 1/scale : in/out (as float).
 * Backward is the transpose: each output's gradient goes back to the inputs it read, weighted.
 * The per-row and per-column index tables are computed once per call and saved for backward.
 */
#include "../core/core_internal.h"
#include "nn_ops.h"
#include "spatial_internal.h"
#include "eval_internal.h"

#include <math.h>
#include <string.h>

typedef struct {
    int64_t *i0, *i1; /* source indices */
    float *l0, *l1;   /* their weights (bilinear) */
} axis_table;

typedef struct {
    int64_t planes, H, W, Ho, Wo;
    axis_table th, tw;
} upsample_ctx;

/* Output size and the scale PyTorch passes down (0 = none). */
static bool resolve_size(const char *op, const tg_tensor *x, tg_upsample_opts o, int64_t *out, double *scale)
{
    for (int a = 0; a < 2; a++) {
        int64_t in = x->shape[2 + a];
        if (o.size[a] > 0 && o.scale[a] > 0) {
            tg_error(TG_ERR_ARG, "%s: give either size or scale for dim %d, not both (size %lld, scale %g)", op, 2 + a,
                     (long long)o.size[a], o.scale[a]);
            return false;
        }
        if (o.size[a] > 0) {
            out[a] = o.size[a];
            scale[a] = 0.0;
        } else if (o.scale[a] > 0 && isfinite(o.scale[a])) {
            out[a] = (int64_t)floor((double)in * o.scale[a]);
            scale[a] = o.scale[a];
        } else {
            tg_error(TG_ERR_ARG, "%s: size[%d] = %lld and scale[%d] = %g: one of them must be positive", op, a,
                     (long long)o.size[a], a, o.scale[a]);
            return false;
        }
        if (out[a] <= 0 || in <= 0) {
            char s[96];
            tg_error(TG_ERR_SHAPE, "%s: input %s and output size %lld on dim %d must be non-empty", op,
                     tg_shape_str(x, s, sizeof s), (long long)out[a], 2 + a);
            return false;
        }
    }
    return true;
}

static bool table_alloc(axis_table *t, int64_t n)
{
    t->i0 = tg_arena_alloc((size_t)n * sizeof(int64_t));
    t->i1 = tg_arena_alloc((size_t)n * sizeof(int64_t));
    t->l0 = tg_arena_alloc((size_t)n * sizeof(float));
    t->l1 = tg_arena_alloc((size_t)n * sizeof(float));
    return t->i0 && t->i1 && t->l0 && t->l1;
}

static void bilinear_table(axis_table *t, int64_t in, int64_t out, double scale, bool align_corners)
{
    float ratio;
    if (align_corners) ratio = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    else ratio = scale > 0 ? (float)(1.0 / scale) : (float)in / (float)out;
    for (int64_t d = 0; d < out; d++) {
        if (in == out) {
            t->i0[d] = t->i1[d] = d;
            t->l0[d] = 1.0f;
            t->l1[d] = 0.0f;
            continue;
        }
        float src = align_corners ? ratio * (float)d : ratio * ((float)d + 0.5f) - 0.5f;
        if (src < 0.0f) src = 0.0f;
        int64_t i0 = (int64_t)src;
        if (i0 > in - 1) i0 = in - 1;
        float l1 = src - (float)i0;
        l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
        t->i0[d] = i0;
        t->i1[d] = i0 + (i0 < in - 1 ? 1 : 0);
        t->l1[d] = l1;
        t->l0[d] = 1.0f - l1;
    }
}

static void nearest_table(axis_table *t, int64_t in, int64_t out, double scale)
{
    float s = scale > 0 ? (float)(1.0 / scale) : (float)in / (float)out;
    for (int64_t d = 0; d < out; d++) {
        int64_t src;
        if (out == in) src = d;
        else if (out == 2 * in) src = d >> 1;
        else {
            src = (int64_t)floorf((float)d * s);
            if (src > in - 1) src = in - 1;
        }
        t->i0[d] = t->i1[d] = src;
        t->l0[d] = 1.0f;
        t->l1[d] = 0.0f;
    }
}

static upsample_ctx *upsample_setup(const char *op, tg_tensor *x, tg_upsample_opts o, bool bilinear)
{
    tg_planes pl;
    if (!tg_check_planes(op, "x", x, 4, &pl)) return NULL;
    int64_t out[2];
    double scale[2];
    if (!resolve_size(op, x, o, out, scale)) return NULL;
    upsample_ctx *cx = tg_arena_alloc(sizeof *cx);
    if (!cx) return NULL;
    cx->planes = pl.planes;
    cx->H = pl.H;
    cx->W = pl.W;
    cx->Ho = out[0];
    cx->Wo = out[1];
    if (!table_alloc(&cx->th, cx->Ho) || !table_alloc(&cx->tw, cx->Wo)) return NULL;
    if (bilinear) {
        bilinear_table(&cx->th, cx->H, cx->Ho, scale[0], o.align_corners);
        bilinear_table(&cx->tw, cx->W, cx->Wo, scale[1], o.align_corners);
    } else {
        nearest_table(&cx->th, cx->H, cx->Ho, scale[0]);
        nearest_table(&cx->tw, cx->W, cx->Wo, scale[1]);
    }
    return cx;
}

/* ---- bilinear -------------------------------------------------------------------------------- */

static void upsample_bilinear2d_backward(tg_node *n)
{
    const upsample_ctx *cx = n->ctx;
    float *dx = tg_input_grad(n, 0);
    if (!dx) return;
    const float *dy = n->out->grad;
    const int64_t HW = cx->H * cx->W, L = cx->Ho * cx->Wo, W = cx->W, Wo = cx->Wo;
    const axis_table *th = &cx->th, *tw = &cx->tw;
#pragma omp parallel for if (cx->planes * L > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < cx->planes; p++) {
        float *dxp = dx + p * HW;
        const float *dyp = dy + p * L;
        for (int64_t oh = 0; oh < cx->Ho; oh++) {
            float *r0 = dxp + th->i0[oh] * W, *r1 = dxp + th->i1[oh] * W;
            const float h0 = th->l0[oh], h1 = th->l1[oh];
            const float *g = dyp + oh * Wo;
            for (int64_t ow = 0; ow < Wo; ow++) {
                const float v0 = h0 * g[ow], v1 = h1 * g[ow];
                r0[tw->i0[ow]] += tw->l0[ow] * v0;
                r0[tw->i1[ow]] += tw->l1[ow] * v0;
                r1[tw->i0[ow]] += tw->l0[ow] * v1;
                r1[tw->i1[ow]] += tw->l1[ow] * v1;
            }
        }
    }
}

TG_OP_DEFINE(UPSAMPLE_BILINEAR2D_OP, upsample_bilinear2d, upsample_bilinear2d_backward);

/* out[ow] = l0[ow]*r[i0[ow]] + l1[ow]*r[i1[ow]]: one input row interpolated along w. */
static void interp_row(const float *r, const axis_table *tw, int64_t Wo, float *out)
{
    for (int64_t ow = 0; ow < Wo; ow++) out[ow] = tw->l0[ow] * r[tw->i0[ow]] + tw->l1[ow] * r[tw->i1[ow]];
}

/* The interpolation of x's planes: plane p (= image n, channel c of C) is written to
 * y + n*img + c*plane, its rows ld floats apart. false (and an error) if out of memory. */
static bool bilinear_run(const tg_tensor *x, const upsample_ctx *cx, float *y, int64_t C, int64_t img, int64_t plane,
                         int64_t ld)
{
    const int64_t HW = cx->H * cx->W, L = cx->Ho * cx->Wo, W = cx->W, Wo = cx->Wo;
    const axis_table *th = &cx->th, *tw = &cx->tw;
    /* Separable: each input row is interpolated along w once (into one of two cached rows), then
     * output rows blend two of them; the same float operations as the direct formula
     * h0*(l0*r0[a] + l1*r0[b]) + h1*(l0*r1[a] + l1*r1[b]), with half the gathers for x2. */
    bool ok = true;
#pragma omp parallel if (cx->planes * L > TG_PARALLEL_MIN)
    {
        float *rows = tg_scratch_alloc(0, (size_t)(2 * Wo) * sizeof(float));
        if (!rows) {
#pragma omp atomic write
            ok = false;
        }
#pragma omp for schedule(static)
        for (int64_t p = 0; p < cx->planes; p++) {
            if (!rows) continue;
            const float *xp = x->data + p * HW;
            float *yp = y + p / C * img + p % C * plane;
            int64_t cached[2] = {-1, -1}; /* the input row held by each buffer */
            for (int64_t oh = 0; oh < cx->Ho; oh++) {
                const int64_t i0 = th->i0[oh], i1 = th->i1[oh];
                int s0 = cached[0] == i0 ? 0 : cached[1] == i0 ? 1 : -1;
                if (s0 < 0) {
                    s0 = cached[0] == i1 ? 1 : 0; /* keep the buffer holding i1 */
                    interp_row(xp + i0 * W, tw, Wo, rows + s0 * Wo);
                    cached[s0] = i0;
                }
                int s1 = cached[s0] == i1 ? s0 : cached[s0 ^ 1] == i1 ? s0 ^ 1 : -1;
                if (s1 < 0) {
                    s1 = s0 ^ 1;
                    interp_row(xp + i1 * W, tw, Wo, rows + s1 * Wo);
                    cached[s1] = i1;
                }
                const float *t[2] = {rows + s0 * Wo, rows + s1 * Wo};
                const float h0 = th->l0[oh], h1 = th->l1[oh];
                float *o = yp + oh * ld;
                for (int64_t ow = 0; ow < Wo; ow++) o[ow] = h0 * t[0][ow] + h1 * t[1][ow];
            }
        }
    }
    if (!ok) tg_error(TG_ERR_NOMEM, "tg_upsample_bilinear2d: out of memory for %lld-float row buffers", (long long)(2 * Wo));
    return ok;
}

tg_tensor *tg_upsample_bilinear2d(tg_tensor *x, tg_upsample_opts opts)
{
    upsample_ctx *cx = upsample_setup("tg_upsample_bilinear2d", x, opts, true);
    if (!cx) return NULL;
    tg_tensor *y = tg_planes_output(x, cx->Ho, cx->Wo);
    if (!y) return NULL;
    const int64_t L = cx->Ho * cx->Wo;
    if (!bilinear_run(x, cx, y->data, 1, L, L, cx->Wo)) return NULL;
    tg_node *n = tg_record(&UPSAMPLE_BILINEAR2D_OP, y, 1, &x);
    if (n) n->ctx = cx;
    return y;
}

bool tg_upsample_bilinear2d_pad_into(tg_tensor *x, tg_upsample_opts opts, float *dst, int64_t img, int64_t Hd,
                                     int64_t Wd, int64_t top, int64_t left)
{
    const char *op = "tg_upsample_bilinear2d_pad_into";
    upsample_ctx *cx = upsample_setup(op, x, opts, true);
    if (!cx) return false;
    const int64_t C = x->shape[1], N = x->shape[0];
    if (top < 0 || left < 0 || top + cx->Ho > Hd || left + cx->Wo > Wd || img < C * Hd * Wd) {
        tg_error(TG_ERR_SHAPE, "%s: the (%lld, %lld) output at (%lld, %lld) does not fit a %lld x %lld plane", op,
                 (long long)cx->Ho, (long long)cx->Wo, (long long)top, (long long)left, (long long)Hd, (long long)Wd);
        return false;
    }
    const int64_t right = Wd - left - cx->Wo, bottom = Hd - top - cx->Ho;
    if (top || left || right || bottom) { /* the zero border around each plane */
#pragma omp parallel for if (N * C * Hd * Wd > TG_PARALLEL_MIN) schedule(static)
        for (int64_t p = 0; p < N * C; p++) {
            float *d = dst + p / C * img + p % C * Hd * Wd;
            memset(d, 0, (size_t)(top * Wd) * sizeof(float));
            for (int64_t h = top; h < top + cx->Ho; h++) {
                memset(d + h * Wd, 0, (size_t)left * sizeof(float));
                memset(d + h * Wd + left + cx->Wo, 0, (size_t)right * sizeof(float));
            }
            memset(d + (top + cx->Ho) * Wd, 0, (size_t)(bottom * Wd) * sizeof(float));
        }
    }
    return bilinear_run(x, cx, dst + top * Wd + left, C, img, Hd * Wd, Wd);
}

/* ---- nearest --------------------------------------------------------------------------------- */

static void upsample_nearest2d_backward(tg_node *n)
{
    const upsample_ctx *cx = n->ctx;
    float *dx = tg_input_grad(n, 0);
    if (!dx) return;
    const float *dy = n->out->grad;
    const int64_t HW = cx->H * cx->W, L = cx->Ho * cx->Wo, W = cx->W, Wo = cx->Wo;
#pragma omp parallel for if (cx->planes * L > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < cx->planes; p++)
        for (int64_t oh = 0; oh < cx->Ho; oh++) {
            float *r = dx + p * HW + cx->th.i0[oh] * W;
            const float *g = dy + p * L + oh * Wo;
            for (int64_t ow = 0; ow < Wo; ow++) r[cx->tw.i0[ow]] += g[ow];
        }
}

TG_OP_DEFINE(UPSAMPLE_NEAREST2D_OP, upsample_nearest2d, upsample_nearest2d_backward);

tg_tensor *tg_upsample_nearest2d(tg_tensor *x, tg_upsample_opts opts)
{
    if (opts.align_corners) {
        tg_error(TG_ERR_ARG, "tg_upsample_nearest2d: align_corners applies to bilinear only");
        return NULL;
    }
    upsample_ctx *cx = upsample_setup("tg_upsample_nearest2d", x, opts, false);
    if (!cx) return NULL;
    tg_tensor *y = tg_planes_output(x, cx->Ho, cx->Wo);
    if (!y) return NULL;
    const int64_t HW = cx->H * cx->W, L = cx->Ho * cx->Wo, W = cx->W, Wo = cx->Wo;
#pragma omp parallel for if (cx->planes * L > TG_PARALLEL_MIN) schedule(static)
    for (int64_t p = 0; p < cx->planes; p++)
        for (int64_t oh = 0; oh < cx->Ho; oh++) {
            const float *r = x->data + p * HW + cx->th.i0[oh] * W;
            float *o = y->data + p * L + oh * Wo;
            for (int64_t ow = 0; ow < Wo; ow++) o[ow] = r[cx->tw.i0[ow]];
        }
    tg_node *n = tg_record(&UPSAMPLE_NEAREST2D_OP, y, 1, &x);
    if (n) n->ctx = cx;
    return y;
}
