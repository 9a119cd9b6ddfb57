/* Shared loss helpers: checks, weight broadcasting, deterministic sums and the
 * elementwise-loss driver (forward in blocks, backward = upstream * saved derivative). */
/* Our kernels never read the floating-point exception flags: without this GCC will not
 * if-convert float selects (clamps in tg_expf_fast, sigmoid's branch) and the loops stay scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "loss_util.h"

#include <math.h>

bool tgl_check_reduction(const char *op, tg_reduction r, bool allow_batchmean)
{
    if (r == TG_REDUCTION_MEAN || r == TG_REDUCTION_SUM || r == TG_REDUCTION_NONE) return true;
    if (r == TG_REDUCTION_BATCHMEAN && allow_batchmean) return true;
    if (r == TG_REDUCTION_BATCHMEAN) {
        tg_error(TG_ERR_ARG, "%s: reduction 'batchmean' is only for kl_div (use MEAN, SUM or NONE)", op);
        return false;
    }
    tg_error(TG_ERR_ARG, "%s: unknown reduction %d", op, (int)r);
    return false;
}

bool tgl_check_pair(const char *op, const tg_tensor *input, const tg_tensor *target)
{
    if (!tg_check_f32(op, "input", input) || !tg_check_f32(op, "target", target)) return false;
    if (!tg_tensor_same_shape(input, target)) {
        char a[96], b[96];
        tg_error(TG_ERR_SHAPE, "%s: target shape %s must equal input shape %s", op,
                 tg_shape_str(target, b, sizeof b), tg_shape_str(input, a, sizeof a));
        return false;
    }
    return true;
}

float *tgl_expand(const char *op, const char *arg, const tg_tensor *w, const tg_tensor *like)
{
    if (!tg_check_f32(op, arg, w)) return NULL;
    char a[96], b[96];
    if (w->ndim > like->ndim) goto bad;
    int64_t wstride[TG_MAX_DIMS] = {0}; /* stride in w for each of like's dims (0: broadcast) */
    int off = like->ndim - w->ndim;
    int64_t s = 1;
    for (int d = like->ndim - 1; d >= 0; d--) {
        int wd = d - off;
        if (wd < 0) continue;
        if (w->shape[wd] == like->shape[d]) wstride[d] = w->shape[wd] == 1 ? 0 : s;
        else if (w->shape[wd] != 1) goto bad;
        s *= w->shape[wd];
    }
    float *out = tg_arena_alloc((size_t)(like->numel ? like->numel : 1) * sizeof(float));
    if (!out) return NULL;
    int64_t idx[TG_MAX_DIMS] = {0};
    int64_t wo = 0;
    for (int64_t i = 0; i < like->numel; i++) {
        out[i] = w->data[wo];
        for (int d = like->ndim - 1; d >= 0; d--) { /* odometer */
            idx[d]++;
            wo += wstride[d];
            if (idx[d] < like->shape[d]) break;
            wo -= wstride[d] * idx[d];
            idx[d] = 0;
        }
    }
    return out;
bad:
    tg_error(TG_ERR_SHAPE, "%s: %s of shape %s does not broadcast to the target's shape %s", op, arg,
             tg_shape_str(w, a, sizeof a), tg_shape_str(like, b, sizeof b));
    return NULL;
}

double tgl_sum(const float *x, int64_t n)
{
    int64_t nb = (n + TGL_BLOCK - 1) / TGL_BLOCK;
    if (nb <= 1) return tgl_sum_block(x, n);
    double *part = tg_arena_alloc((size_t)nb * sizeof(double));
    if (!part) return NAN;
#pragma omp parallel for if (n > TG_PARALLEL_MIN) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t i0 = b * TGL_BLOCK, m = n - i0 < TGL_BLOCK ? n - i0 : TGL_BLOCK;
        part[b] = tgl_sum_block(x + i0, m);
    }
    double s = 0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    return s;
}

/* ---- elementwise driver ---- */

typedef struct {
    float *d;      /* saved derivative, numel of input */
    double scale;  /* reduced outputs: dL/dl_i = upstream * scale */
    bool none;     /* NONE: upstream is per element */
} ew_ctx;

void tgl_ew_backward(tg_node *n)
{
    const ew_ctx *c = n->ctx;
    tg_tensor *x = n->in[0];
    if (!c || !c->d || !tg_needs_grad(x)) return;
    float *gx = tg_grad(x);
    if (!gx) return;
    const float *go = n->out->grad, *d = c->d;
    int64_t m = x->numel;
    if (c->none) {
#pragma omp parallel for if (m > TG_PARALLEL_MIN) schedule(static)
        for (int64_t i = 0; i < m; i++) gx[i] += go[i] * d[i];
    } else {
        float g = (float)(go[0] * c->scale);
#pragma omp parallel for if (m > TG_PARALLEL_MIN) schedule(static)
        for (int64_t i = 0; i < m; i++) gx[i] += g * d[i];
    }
}

tg_tensor *tgl_ew_run(const tg_op_def *op, tg_tensor *input, tg_tensor *target, tg_reduction red,
                      double batch_div, tgl_ew_block_fn fn, const void *ctx)
{
    int64_t m = input->numel;
    bool want_d = tg_grad_enabled() && input->requires_grad;
    float *d = NULL;
    if (want_d && !(d = tg_arena_alloc((size_t)(m ? m : 1) * sizeof(float)))) return NULL;
    bool none = red == TG_REDUCTION_NONE;
    tg_tensor *out = none ? tg_output_new(TG_F32, input->ndim, input->shape) : tg_output_new(TG_F32, 0, NULL);
    if (!out) return NULL;
    int64_t nb = (m + TGL_BLOCK - 1) / TGL_BLOCK;
    double *part = NULL;
    if (!none && nb > 0 && !(part = tg_arena_alloc((size_t)nb * sizeof(double)))) return NULL;
#pragma omp parallel for if (m > TG_PARALLEL_MIN) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        float buf[TGL_BLOCK];
        int64_t i0 = b * TGL_BLOCK, k = m - i0 < TGL_BLOCK ? m - i0 : TGL_BLOCK;
        float *l = none ? out->data + i0 : buf;
        fn(ctx, i0, k, l, d ? d + i0 : NULL);
        if (!none) part[b] = tgl_sum_block(l, k);
    }
    double scale = 1.0;
    if (!none) {
        double s = 0;
        for (int64_t b = 0; b < nb; b++) s += part[b];
        if (red == TG_REDUCTION_MEAN) scale = 1.0 / (double)m;
        else if (red == TG_REDUCTION_BATCHMEAN) scale = 1.0 / batch_div;
        out->data[0] = red == TG_REDUCTION_SUM ? (float)s : (float)(s * scale);
        if (red != TG_REDUCTION_SUM && m == 0) out->data[0] = NAN;
    }
    tg_tensor *ins[2] = {input, target};
    tg_node *n = tg_record(op, out, 2, ins);
    if (n) {
        ew_ctx *c = tg_arena_alloc(sizeof *c);
        if (!c) return NULL;
        c->d = d;
        c->scale = scale;
        c->none = none;
        n->ctx = c;
    }
    return out;
}
